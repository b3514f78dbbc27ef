"""pip run with a target's environment markers: what ``pip download`` needs to resolve the
dependencies of another Python version or platform.

``pip download --platform ... --python-version ...`` selects wheels and checks
``Requires-Python`` for the target, but evaluates PEP 508 environment markers
(``python_version``, ``sys_platform``, ``platform_machine``, ...) against the interpreter that
runs it (checked with pip 26.3): a 3.10 wheelhouse made on 3.12 would miss ``tomli;
python_version < "3.11"``, a Windows one ``colorama; sys_platform == "win32"``. So pybundle does
not run ``python -m pip`` but ``python -m pybundle.bundler.pipmarkers ARGS``, which reads the
target's marker environment (a JSON object, :func:`marker_environment`) from the environment
variable :data:`ENV_VAR`, replaces ``pip._vendor.packaging.markers.default_environment`` (the
function ``Marker.evaluate`` of pip's vendored ``packaging`` looks up in its module namespace
on every call: packaging ``markers.py``; pip's metadata backends, importlib and pkg_resources,
evaluate through ``Marker.evaluate``) with one returning it, checks that a marker naming every
key now evaluates as the target's, and then runs pip's own ``__main__`` in the same process
with ``ARGS``.

This relies on pip internals (the vendored module and its function name). When they are not
there, or the check fails, the runner writes one line starting with :data:`REFUSAL` to stderr
and exits with :data:`REFUSED`, unless the target's Python ``X.Y``, implementation, OS and
machine are those of the running interpreter (then pip's own evaluation is right and pip runs
unpatched). Checked with pip 22.0.4, 23.0.1 (both on their pkg_resources metadata backend),
23.2.1, 24.2 and 26.3: a Windows 3.10 and a Linux aarch64 3.12 target, resolved by each, got
exactly the dependencies their markers select.

The child side (:func:`main`) imports only the standard library and pip.
"""

from __future__ import annotations

import json
import os
import platform
import runpy
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from pybundle.targets import Target

__all__ = ["ENV_VAR", "REFUSAL", "REFUSED", "main", "marker_environment", "runner_command"]

ENV_VAR = "PYBUNDLE_PIP_MARKERS"
"""The environment variable that carries the target's marker environment (JSON) to the runner."""

REFUSED = 86
"""The runner's exit status when pip's markers cannot be set for the target."""

REFUSAL = "pybundle-pip-markers: "
"""How the runner's refusal line on stderr starts."""

_SYSTEMS: dict[str, tuple[str, str, str]] = {
    "linux": ("posix", "linux", "Linux"),
    "darwin": ("posix", "darwin", "Darwin"),
    "windows": ("nt", "win32", "Windows"),
}
"""``os_name``, ``sys_platform`` and ``platform_system`` per catalog OS (what ``os.name``,
``sys.platform`` and ``platform.system()`` give there; PEP 508)."""

_MACHINES: dict[str, dict[str, str]] = {
    "linux": {"armv7": "armv7l", "powerpc64le": "ppc64le"},
    "darwin": {"aarch64": "arm64"},
    "windows": {"x86_64": "AMD64", "aarch64": "ARM64", "i686": "x86"},
}
"""``platform.machine()`` per catalog OS and architecture where it differs from the catalog's
name (``uname -m`` on Linux and macOS; Windows reports ``PROCESSOR_ARCHITECTURE``, ``x86`` on
32-bit Windows)."""


def marker_environment(target: Target, python_version: str, full_version: str) -> dict[str, str]:
    """The PEP 508 marker environment of CPython ``full_version`` (``"3.12.1"``; its ``X.Y``
    is ``python_version``) built for ``target`` (catalog terms): every name PEP 508 defines,
    ``platform_release`` and ``platform_version`` empty (unknown before the host runs it).
    Raises KeyError for an OS not in :data:`_SYSTEMS` (callers refuse those earlier)."""
    os_name, sys_platform, system = _SYSTEMS[target.os]
    machine = _MACHINES[target.os].get(target.arch, target.arch)
    return {
        "implementation_name": "cpython",
        "implementation_version": full_version,
        "os_name": os_name,
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": full_version,
        "python_version": python_version,
        "sys_platform": sys_platform,
    }


def runner_command() -> list[str]:
    """The command that runs pip through this runner with the running interpreter."""
    return [sys.executable, "-m", "pybundle.bundler.pipmarkers"]


_SAME_HERE = ("python_version", "implementation_name", "os_name", "sys_platform")


def _here() -> dict[str, str]:
    """This interpreter's own values of the names :func:`_same_as_here` compares."""
    return {
        "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "implementation_name": sys.implementation.name,
        "os_name": os.name,
        "sys_platform": sys.platform,
        "platform_machine": platform.machine(),
    }


def _same_as_here(wanted: Mapping[str, str]) -> bool:
    here = _here()
    return all(wanted.get(k) == here[k] for k in _SAME_HERE) and (
        wanted.get("platform_machine", "").lower() == here["platform_machine"].lower()
    )


def _patch(wanted: dict[str, str]) -> Optional[str]:
    """Make pip's markers evaluate against ``wanted``; None when done, else why not."""
    try:
        from pip._vendor.packaging import markers
    except ImportError as exc:
        return f"pip._vendor.packaging.markers cannot be imported ({exc})"
    original = getattr(markers, "default_environment", None)
    marker_class = getattr(markers, "Marker", None)
    if not callable(original) or marker_class is None:
        return "pip._vendor.packaging.markers has no default_environment or Marker"

    def target_environment() -> Any:  # pip's Environment, a TypedDict of these names
        return dict(wanted)

    markers.default_environment = target_environment
    probe = " and ".join(f'{k} == "{v}"' for k, v in sorted(wanted.items()) if v)
    try:
        holds = bool(marker_class(probe).evaluate())
    except Exception as exc:  # any failure of pip internals here means "cannot"
        holds = False
        detail = f"a test marker failed to evaluate ({type(exc).__name__}: {exc})"
    else:
        detail = "a test marker did not evaluate as the target's"
    if not holds:
        markers.default_environment = original
        return detail
    return None


def _pip_version() -> str:
    try:
        import pip
    except ImportError:
        return "(not importable)"
    return str(getattr(pip, "__version__", "(unknown version)"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run pip with ``argv`` (default ``sys.argv[1:]``) and the markers of :data:`ENV_VAR`.
    Returns :data:`REFUSED` (after one :data:`REFUSAL` line on stderr) when they cannot be set
    for a target other than this interpreter, 2 when :data:`ENV_VAR` is missing or not a JSON
    object of strings; otherwise pip's exit status (pip exits through SystemExit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        wanted = json.loads(os.environ[ENV_VAR])
        if not isinstance(wanted, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and '"' not in v for k, v in wanted.items()
        ):
            raise ValueError("not a JSON object of strings")
    except (KeyError, ValueError) as exc:
        sys.stderr.write(f"{REFUSAL}{ENV_VAR} must hold the target's marker environment ({exc})\n")
        return 2
    why = _patch(wanted)
    if why is not None and not _same_as_here(wanted):
        sys.stderr.write(
            f"{REFUSAL}pip {_pip_version()} of {sys.executable} does not let its environment "
            f"markers be set ({why}); resolving wheels for another Python version or platform "
            "needs a pip whose markers can be set (upgrade pip there)\n"
        )
        return REFUSED
    sys.argv = ["pip", *args]
    runpy.run_module("pip", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
