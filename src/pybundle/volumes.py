"""Bundles split into volumes: ``NAME.001``, ``NAME.002``, ... read back as one file.

A volume set is the single-file bundle cut into consecutive byte ranges, nothing added:
``cat NAME.0* > NAME`` gives the single-file bundle back (the shell sorts the names, and the
numbers have a fixed width). Every part but the last is exactly the volume size; the last is
not larger and not empty. The bundler writes them (:func:`write_volumes`); the installer reads
them through :class:`BundleFile`, which checks before anything is read that the parts are all
there, numbered without a gap, and of consistent sizes, naming the part at fault
(:class:`VolumeError`, exit 5). Parts in the wrong order, or damaged, are caught by the zip
structure checks and the sha256 of every member that follow (exit 5 as well).

Volume sizes (:func:`parse_volume_size`): a number of bytes with an optional binary unit
(``700M``, ``4G``, ``512K``; ``MiB``/``GiB`` too; ``MB``/``GB`` are decimal), or ``fat32``, the
largest file FAT32 holds (4 GiB - 1 byte, Microsoft's FAT specification).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from pybundle.errors import AlreadyExistsError, IntegrityError, StorageError, UsageError

VOLUME_DIGITS = 3
"""Width of a part number: ``.001`` to ``.999``."""
MAX_VOLUMES = 10**VOLUME_DIGITS - 1
MIN_VOLUME_SIZE = 4096
"""Smallest volume size accepted, in bytes (keeps a mistyped unit from making 999 parts)."""
FAT32_MAX_FILE = 4 * 1024**3 - 1
"""The largest file FAT32 can store, in bytes (its size field is 32 bits)."""

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KIB": 1024,
    "M": 1024**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TIB": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
_NAMES = {"FAT32": FAT32_MAX_FILE}
_PART = re.compile(rf"^(?P<stem>.+)\.(?P<number>[0-9]{{{VOLUME_DIGITS}}})$")


class VolumeError(IntegrityError):
    """A volume set is incomplete or inconsistent: a missing, short or extra part (exit 5).
    The message names the part."""


def parse_volume_size(text: str) -> int:
    """Bytes per volume for ``--volume-size``: ``4G``, ``700M``, ``4GiB``, ``4GB`` (decimal),
    ``123456`` (bytes), or ``fat32`` (4 GiB - 1). Raises UsageError for anything else, or a
    size below MIN_VOLUME_SIZE."""
    spec = text.strip().upper()
    if spec in _NAMES:
        return _NAMES[spec]
    match = re.fullmatch(r"([0-9]+)\s*([A-Z]*)", spec)
    if match is None or match.group(2) not in _UNITS:
        raise UsageError(f"--volume-size {text!r}: give a size such as 700M, 4G or 4GB, or 'fat32'")
    size = int(match.group(1)) * _UNITS[match.group(2)]
    if size < MIN_VOLUME_SIZE:
        raise UsageError(
            f"--volume-size {text!r}: a volume must hold at least {MIN_VOLUME_SIZE} bytes"
        )
    return size


def part_path(output: Path, number: int) -> Path:
    """``NAME.001`` for part 1 of the bundle ``NAME``."""
    return output.with_name(f"{output.name}.{number:0{VOLUME_DIGITS}d}")


def volume_count(total: int, volume_size: int) -> int:
    """How many parts of at most ``volume_size`` bytes a ``total``-byte file needs (>= 1)."""
    return max(1, -(-total // volume_size))


def existing_parts(output: Path) -> list[Path]:
    """The parts ``NAME.001``, ``NAME.002``, ... that exist now, up to the first gap."""
    parts = []
    for number in range(1, MAX_VOLUMES + 1):
        candidate = part_path(output, number)
        if not os.path.lexists(candidate):
            break
        parts.append(candidate)
    return parts


def write_volumes(
    source: Path, output: Path, volume_size: int, *, force: bool = False
) -> list[Path]:
    """Cut the finished bundle ``source`` into ``NAME.001``, ``NAME.002``, ... beside
    ``output`` (``NAME``), each at most ``volume_size`` bytes, and return their paths.

    Each part is written to a temporary name (``.NAME.XXXXXXXX.tmp``, the bundler's work file
    convention: :mod:`pybundle.bundler.workfiles`), flushed to disk, then all are renamed into
    place; ``source`` is left as it is (the caller removes it). Existing parts are kept
    unless ``force``, which replaces them and removes the higher-numbered parts of an
    earlier, longer set of the same name (``NAME.NNN`` files continuing the new set), so
    that the set on disk is exactly the new one. Raises UsageError (more than MAX_VOLUMES
    parts), AlreadyExistsError, StorageError.
    """
    total = source.stat().st_size
    count = volume_count(total, volume_size)
    if count > MAX_VOLUMES:
        raise UsageError(
            f"{output}: the bundle ({total} bytes) would need {count} volumes of {volume_size} "
            f"bytes; at most {MAX_VOLUMES} are possible"
        )
    targets = [part_path(output, n) for n in range(1, count + 1)]
    stale = existing_parts(output)[count:]
    if not force:
        for target in [*targets, *stale]:
            if os.path.lexists(target):
                raise AlreadyExistsError(f"{target}: already exists (use --force to replace it)")
    temps: list[Path] = []
    try:
        with open(source, "rb") as src:
            for number, _target in enumerate(targets, start=1):
                # .NAME.XXXXXXXX.tmp: the name the bundler's next run cleans up after a kill
                fd, name = tempfile.mkstemp(
                    prefix=f".{output.name}.", suffix=".tmp", dir=output.parent
                )
                temps.append(Path(name))
                offset = (number - 1) * volume_size
                _copy_range(src, fd, offset, min(volume_size, total - offset))
        for temp, target in zip(temps, targets):
            os.replace(temp, target)
        for old in stale:
            old.unlink(missing_ok=True)
    except OSError as exc:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise StorageError(f"{output}: cannot write the volumes: {exc}") from exc
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    return targets


def _copy_range(src: io.BufferedReader, fd: int, offset: int, length: int) -> None:
    """Copy ``length`` bytes at ``offset`` of ``src`` into the new, empty file open as ``fd``
    (made mode 0644, fsynced, closed), in kernel space where the platform allows."""
    try:
        os.fchmod(fd, 0o644)
        done = 0
        while done < length:
            n = 0
            if hasattr(os, "copy_file_range"):
                try:
                    n = os.copy_file_range(src.fileno(), fd, length - done, offset + done)
                except OSError:
                    n = 0
            if n <= 0:
                chunk = os.pread(src.fileno(), min(4 * 1024 * 1024, length - done), offset + done)
                if not chunk:
                    raise OSError(f"{src.name}: ended early")
                n = os.write(fd, chunk)
            done += n
        os.fsync(fd)
    finally:
        os.close(fd)


def discover_parts(path: Path) -> Optional[list[Path]]:
    """The parts of the volume set whose first part is ``path`` (``NAME.001``), in order, or
    None when ``path`` does not end in ``.001`` (a single-file bundle).

    Raises VolumeError when ``path`` names a later part (``NAME.002``: give ``NAME.001``).
    """
    match = _PART.match(path.name)
    if match is None:
        return None
    if int(match.group("number")) != 1:
        first = path.with_name(f"{match.group('stem')}.{1:0{VOLUME_DIGITS}d}")
        raise VolumeError(f"{path}: is a later part of a volume set; give the first part, {first}")
    output = path.with_name(match.group("stem"))
    parts = existing_parts(output)
    if not parts:
        raise VolumeError(f"{path}: part 1 of the volume set is missing")
    later = _later_parts(output, len(parts))
    if later:
        missing = part_path(output, len(parts) + 1)
        raise VolumeError(
            f"{missing}: part {len(parts) + 1} of the volume set is missing "
            f"({later[0].name} is there)"
        )
    return parts


def _later_parts(output: Path, count: int) -> list[Path]:
    """Parts numbered above ``count + 1`` that exist (a gap before them)."""
    try:
        names = os.listdir(output.parent)
    except OSError:
        return []
    found = []
    for name in names:
        match = _PART.match(name)
        if match and match.group("stem") == output.name and int(match.group("number")) > count + 1:
            found.append(output.with_name(name))
    return sorted(found)


def missing_end(bundle: BundleFile) -> VolumeError:
    """The error for a volume set whose last part does not end the bundle: the next part is
    missing, or the last one is truncated."""
    last = bundle.parts[-1]
    match = _PART.match(last.name)
    number = int(match.group("number")) if match else len(bundle.parts)
    following = last.with_name(
        f"{match.group('stem') if match else last.name}.{number + 1:0{VOLUME_DIGITS}d}"
    )
    return VolumeError(
        f"{following}: part {number + 1} of the volume set is missing, or {last.name} is "
        "truncated (the parts found end without the bundle's end record)"
    )


def check_parts(parts: Sequence[Path], sizes: Sequence[int]) -> None:
    """Refuse a volume set whose part sizes cannot be a cut of one file: a part that is
    empty, a part before the last that is shorter than the first (truncated), or a last part
    larger than the first. Raises VolumeError naming the part."""
    first = sizes[0]
    for number, (part, size) in enumerate(zip(parts, sizes), start=1):
        if size == 0:
            raise VolumeError(f"{part}: part {number} of the volume set is empty")
        last = number == len(parts)
        if not last and size != first:
            raise VolumeError(
                f"{part}: part {number} is {size} bytes, part 1 is {first}; every part but "
                "the last has the same size, so this one is truncated or from another set"
            )
        if last and size > first:
            raise VolumeError(
                f"{part}: the last part is {size} bytes, larger than part 1 ({first}); it is "
                "from another set"
            )


class BundleFile(io.RawIOBase):
    """A bundle opened for reading, as one seekable file whether it is a single file or a
    volume set (``NAME.001`` given: the parts found by :func:`discover_parts`, checked by
    :func:`check_parts`). ``path`` is what the user named; ``parts`` the files behind it.

    Besides the file interface (read, readinto, seek, tell), :meth:`pread_into` reads at an
    offset without moving the position, so several readers can share one BundleFile (each
    through its own window). Raises StorageError when a part cannot be opened, VolumeError
    for an inconsistent set.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        parts = discover_parts(path) or [path]
        self.parts = parts
        self._fds: list[int] = []
        try:
            for part in parts:
                try:
                    self._fds.append(os.open(part, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
                except FileNotFoundError as exc:
                    raise VolumeError(f"{part}: part of the volume set is missing") from exc
                except OSError as exc:
                    raise StorageError(f"{part}: cannot open: {exc.strerror or exc}") from exc
            self.sizes = [os.fstat(fd).st_size for fd in self._fds]
            if len(parts) > 1:
                check_parts(parts, self.sizes)
        except BaseException:
            self._close_fds()
            raise
        self._starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.size = sum(self.sizes)
        self._pos = 0

    @property
    def is_volume_set(self) -> bool:
        """True when the bundle was named as ``NAME.001`` (one part or more)."""
        return _PART.match(self.path.name) is not None

    @property
    def name(self) -> str:  # type: ignore[override]
        """The path the user named (for messages)."""
        return str(self.path)

    def part_at(self, offset: int) -> Path:
        """The part holding byte ``offset`` (for messages)."""
        for part, start, size in zip(self.parts, self._starts, self.sizes):
            if offset < start + size:
                return part
        return self.parts[-1]

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def close(self) -> None:
        if not self.closed:
            self._close_fds()
        super().close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        n = self.pread_into(buffer, self._pos)
        self._pos += n
        return n

    def pread_into(self, buffer: Any, offset: int) -> int:
        """Read up to ``len(buffer)`` bytes at ``offset`` into ``buffer``; 0 at the end.
        Crosses part boundaries; never reads beyond the last part."""
        view = memoryview(buffer).cast("B")
        done = 0
        want = len(view)
        while done < want and offset + done < self.size:
            pos = offset + done
            index = self._index(pos)
            inside = pos - self._starts[index]
            take = min(want - done, self.sizes[index] - inside)
            n = os.preadv(self._fds[index], [view[done : done + take]], inside)
            if n <= 0:
                raise VolumeError(
                    f"{self.parts[index]}: ended before its size was read (it shrank while "
                    "being read)"
                )
            done += n
        return done

    def _index(self, pos: int) -> int:
        starts = self._starts
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo
