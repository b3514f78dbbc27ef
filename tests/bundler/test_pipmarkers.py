"""Environment markers are evaluated for the target, not for the interpreter running pip: the
real pip, offline on synthetic wheels built here (``--no-index --find-links``), through the
real :func:`~pybundle.bundler.wheels.download_wheels`; and the runner's refusal when the
installed pip does not let its markers be set (a ``sitecustomize`` on ``PYTHONPATH`` alters
the real pip's marker module the way an incompatible pip would be)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_pure_wheel
from pybundle.bundler.pipmarkers import ENV_VAR, REFUSED
from pybundle.bundler.wheels import WheelCache, WheelTarget, download_wheels
from pybundle.errors import DownloadError, PipMarkersError
from pybundle.targets import Target

LINUX_X86 = Target("linux", "x86_64", "gnu")
LINUX_ARM = Target("linux", "aarch64", "gnu")
WINDOWS = Target("windows", "x86_64", "none")
MAC_ARM = Target("darwin", "aarch64", "none")

APP_REQUIRES = (
    'oldonly; python_version < "3.11"',
    'winonly; sys_platform == "win32"',
    'armonly; platform_machine == "aarch64"',
    'notwin; sys_platform != "win32"',
    'maconly; platform_system == "Darwin" and platform_machine == "arm64"',
    'newpatch; python_full_version >= "3.12.1"',
)
"""What the synthetic ``app`` requires; each requirement is a pure wheel of its own."""


@pytest.fixture
def links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """pip's options for the synthetic wheels, with this machine's pip configuration out."""
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    directory = tmp_path / "links"
    directory.mkdir()
    make_pure_wheel(directory, "app", "1.0", APP_REQUIRES)
    for name in ("oldonly", "winonly", "armonly", "notwin", "maconly", "newpatch"):
        make_pure_wheel(directory, name, "1.0")
    return ["--no-index", "--find-links", str(directory)]


def resolved(target: Target, version: str, cache: WheelCache, options: list[str]) -> set[str]:
    wheels = download_wheels(["app"], WheelTarget.for_interpreter(target, version), cache,
                             options=options)  # fmt: skip
    return {w.project for w in wheels}


@pytest.mark.parametrize(
    ("target", "version", "expected"),
    [
        (LINUX_X86, "3.10", {"oldonly", "notwin"}),
        (LINUX_X86, "3.12", {"notwin"}),
        (LINUX_X86, "3.12.1", {"notwin", "newpatch"}),
        (LINUX_ARM, "3.10", {"oldonly", "armonly", "notwin"}),
        (LINUX_ARM, "3.12", {"armonly", "notwin"}),
        (WINDOWS, "3.10", {"oldonly", "winonly"}),
        (WINDOWS, "3.12", {"winonly"}),
        (MAC_ARM, "3.10", {"oldonly", "notwin", "maconly"}),
        (MAC_ARM, "3.12.4", {"notwin", "maconly", "newpatch"}),
    ],
)
def test_markers_are_evaluated_for_the_target(
    tmp_path: Path, links: list[str], target: Target, version: str, expected: set[str]
) -> None:
    cache = WheelCache(tmp_path / "cache")
    assert resolved(target, version, cache, links) == {"app"} | expected


def test_requirement_markers_of_the_command_line_are_the_targets_too(
    tmp_path: Path, links: list[str]
) -> None:
    """The requirements given to pip (``-r`` lines, ``--with``) carry markers as well."""
    cache = WheelCache(tmp_path / "cache")
    requirements = ['winonly; os_name == "nt"', 'notwin; os_name == "posix"']
    for target, expected in ((WINDOWS, ["winonly"]), (LINUX_ARM, ["notwin"])):
        wheel_target = WheelTarget.for_interpreter(target, "3.11")
        found = download_wheels(requirements, wheel_target, cache, options=links)
        assert [w.project for w in found] == expected


def test_a_resolution_is_remembered_per_marker_environment(
    tmp_path: Path, links: list[str]
) -> None:
    """When pip fails, only a resolution made for the same markers stands in: not one for a
    target with the same tags and another patch version, nor a record written before
    markers were part of the question (which held this machine's markers)."""
    import hashlib
    import json

    failing = [sys.executable, "-c", "import sys; sys.exit('ERROR: no index reachable')"]
    cache = WheelCache(tmp_path / "cache")
    x = WheelTarget.for_interpreter(LINUX_X86, "3.12.1")
    y = WheelTarget.for_interpreter(LINUX_X86, "3.12.4")
    assert x.platforms == y.platforms and x.abis == y.abis
    first = download_wheels(["app"], x, cache, options=links)
    assert download_wheels(["app"], x, cache, options=links, pip=failing) == first
    with pytest.raises(DownloadError, match="no index reachable"):
        download_wheels(["app"], y, cache, options=links, pip=failing)
    # the record an earlier release kept for y: its question had no markers
    question = {
        "requirements": [*links, "app"],
        "target": {"python_version": "3.12", "implementation": "cp",
                   "abis": list(y.abis), "platforms": list(y.platforms)},
    }  # fmt: skip
    name = hashlib.sha256(json.dumps(question, sort_keys=True).encode()).hexdigest()
    wheels = [{"file_name": w.file_name, "size": w.size, "sha256": w.sha256} for w in first]
    (cache.sets / f"{name}.json").write_text(json.dumps({**question, "wheels": wheels}))
    with pytest.raises(DownloadError, match="no index reachable"):
        download_wheels(["app"], y, cache, options=links, pip=failing)


def test_the_marker_environment_of_a_windows_target() -> None:
    assert dict(WheelTarget.for_interpreter(WINDOWS, "3.12").markers) == {
        "implementation_name": "cpython",
        "implementation_version": "3.12.0",
        "os_name": "nt",
        "platform_machine": "AMD64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Windows",
        "platform_version": "",
        "python_full_version": "3.12.0",
        "python_version": "3.12",
        "sys_platform": "win32",
    }
    assert (
        dict(WheelTarget.for_interpreter(MAC_ARM, "3.13.0rc2").markers)["python_full_version"]
        == "3.13.0rc2"
    )


SITECUSTOMIZE = """
import os, types
from pip._vendor.packaging import markers

if os.environ.get("BREAK_PIP_MARKERS") == "missing":
    # a pip whose vendored packaging has no default_environment
    del markers.default_environment
elif os.environ.get("BREAK_PIP_MARKERS") == "ignored":
    # a pip whose Marker.evaluate does not look the name up: setting it has no effect
    class Ignoring(types.ModuleType):
        def __setattr__(self, name, value):
            if name != "default_environment":
                super().__setattr__(name, value)

    markers.__class__ = Ignoring
"""


@pytest.fixture
def broken_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))

    def use(how: str) -> None:
        monkeypatch.setenv("BREAK_PIP_MARKERS", how)

    return use


@pytest.mark.parametrize("how", ["missing", "ignored"])
def test_a_pip_whose_markers_cannot_be_set_is_refused_for_another_target(
    tmp_path: Path,
    links: list[str],
    broken_pip,
    how: str,  # type: ignore[no-untyped-def]
) -> None:
    import pip

    broken_pip(how)
    cache = WheelCache(tmp_path / "cache")
    with pytest.raises(PipMarkersError) as caught:
        resolved(WINDOWS, "3.10", cache, links)
    message = str(caught.value)
    assert caught.value.exit_code == 3
    assert "\n" not in message
    assert message.startswith("cannot resolve wheels for cp310 on win_amd64: ")
    assert f"pip {pip.__version__} of {sys.executable}" in message
    assert "needs a pip whose markers can be set" in message
    assert list(cache.partials.iterdir()) == []


def test_a_pip_whose_markers_cannot_be_set_still_serves_its_own_interpreter(
    tmp_path: Path,
    links: list[str],
    broken_pip,  # type: ignore[no-untyped-def]
) -> None:
    """Target = this interpreter (X.Y, OS, machine): pip's own evaluation is right."""
    import platform

    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        pytest.fail("this test runs on Linux x86_64 or aarch64")
    here = LINUX_X86 if platform.machine() == "x86_64" else LINUX_ARM
    broken_pip("ignored")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = resolved(here, version, WheelCache(tmp_path / "cache"), links)
    expected = {"app", "notwin"} | ({"oldonly"} if sys.version_info < (3, 11) else set())
    expected |= {"armonly"} if here == LINUX_ARM else set()
    expected |= {"newpatch"} if sys.version_info >= (3, 12, 1) else set()
    assert found == expected


def test_the_runner_refuses_without_a_marker_environment() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.run(
        [sys.executable, "-m", "pybundle.bundler.pipmarkers", "--version"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.returncode != REFUSED
    assert f"{ENV_VAR} must hold the target's marker environment" in proc.stderr
