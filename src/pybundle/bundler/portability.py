"""Portability audit of a local prefix (``bundle --from-prefix``): which host libraries does it
need?

A pyenv build links the host's ``libssl.so.3``, ``libffi.so.8``, ``libsqlite3.so.0``...; on a
host without them ``import ssl`` fails long after the bundle was made. At bundle time every ELF
file of the prefix is read (its DT_NEEDED list, :func:`pybundle.installer.elf.read_needed`) and
each needed library is classified:

* *inside*: a file or symlink of that name exists in the prefix (what ld.so looks up is the
  DT_NEEDED file name; pybundle's installer makes in-prefix RUNPATHs ``$ORIGIN``-relative);
* *allowed*: on the PyPA policy's allowlist for the target's C library: the union of the
  ``lib_whitelist`` of every ``manylinux_*`` policy (glibc) or ``musllinux_*`` policy (musl) in
  the policy files auditwheel ships (:data:`POLICY_SOURCE`, vendored in ``pybundle/data``), plus
  the dynamic loader itself (``ld-linux-x86-64.so.2``..., which auditwheel handles apart);
* *external*: anything else, reported per file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pybundle.errors import PybundleError
from pybundle.installer.elf import ELF_MAGIC, read_needed
from pybundle.manifest import Portability

POLICY_SOURCE = "auditwheel 6.8.2 (src/auditwheel/policy/*-policy.json, MIT)"
POLICY_FILES = {"manylinux": "manylinux-policy.json", "musllinux": "musllinux-policy.json"}
DYNAMIC_LOADERS = frozenset(
    {
        "ld-linux.so.2",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "ld-linux-armhf.so.3",
        "ld-linux.so.3",
        "ld64.so.1",
        "ld64.so.2",
        "ld-linux-riscv64-lp64d.so.1",
        "ld-linux-loongarch-lp64d.so.1",
    }
)
"""glibc's dynamic loader names per architecture (glibc ``shlib-versions`` files); musl's are
``ld-musl-<arch>.so.1``."""


class PortabilityError(PybundleError):
    """``--strict-portability``: a prefix needs libraries from the host (exit 7)."""

    exit_code = 7


def policy_name(libc: str) -> str:
    """``musllinux`` for musl targets, else ``manylinux``."""
    return "musllinux" if libc == "musl" else "manylinux"


@lru_cache(maxsize=2)
def allowed_libraries(policy: str) -> frozenset[str]:
    """The union of ``lib_whitelist`` over every ``<policy>_*`` policy of the vendored file,
    plus the dynamic loaders. Raises KeyError for an unknown policy name."""
    text = resources.files("pybundle").joinpath("data", POLICY_FILES[policy]).read_text("utf-8")
    allowed: set[str] = set(DYNAMIC_LOADERS)
    for entry in json.loads(text):
        if str(entry.get("name", "")).startswith(policy + "_"):
            allowed.update(entry.get("lib_whitelist", []))
    return frozenset(allowed)


def _is_allowed(name: str, allowed: frozenset[str]) -> bool:
    return name in allowed or (name.startswith("ld-musl-") and name.endswith(".so.1"))


def audit_tree(
    root: Path, *, libc: str = "gnu", include: Callable[[str], bool] | None = None
) -> Portability | None:
    """Audit the tree at ``root`` (see the module docstring). ``include(rel)`` selects the
    files that will be shipped (POSIX paths relative to ``root``; default: all). Returns a
    :class:`pybundle.manifest.Portability` listing, per ELF file, the external libraries
    (files sorted by path, names in DT_NEEDED order), or None when there are none.
    Symlinks are not followed (they are checked through the file they name). Raises
    StorageError when an ELF file cannot be read."""
    policy = policy_name(libc)
    allowed = allowed_libraries(policy)
    names: set[str] = set()
    elf_files: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                names.add(name)
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if include is not None and not include(rel):
                continue
            names.add(name)
            full = os.path.join(dirpath, name)
            if not os.path.islink(full) and _has_elf_magic(full):
                elf_files.append((rel, full))
    external: list[tuple[str, tuple[str, ...]]] = []
    for rel, full in sorted(elf_files):
        needed = read_needed(Path(full)) or []
        missing = tuple(n for n in needed if n not in names and not _is_allowed(n, allowed))
        if missing:
            external.append((rel, missing))
    return Portability(policy, tuple(external)) if external else None


def _has_elf_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def describe(portability: Portability, prefix: str) -> str:
    """One line for a warning or error: what ``prefix`` needs from the host, and by whom."""
    by_lib: dict[str, list[str]] = {}
    for file, needs in portability.external:
        for lib in needs:
            by_lib.setdefault(lib, []).append(os.path.basename(file))
    parts = []
    for lib in sorted(by_lib):
        users = by_lib[lib]
        shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
        parts.append(f"{lib} ({shown})")
    return (
        f"{prefix}: needs {len(by_lib)} librar{'y' if len(by_lib) == 1 else 'ies'} from the "
        f"host that are neither in the prefix nor on the {portability.policy} allowlist: "
        + "; ".join(parts)
    )
