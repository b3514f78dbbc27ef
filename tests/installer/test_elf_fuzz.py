"""The ELF reader and writer on damaged ELF files: read_runpath returns a value or None, and
set_runpath either works or raises RelocationError/StorageError (exit 6/9), never another
exception (a hostile extension module must not end an install with exit 1)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import discover_prefix
from pybundle.errors import RelocationError, StorageError
from pybundle.installer.elf import read_runpath, set_runpath

EXAMPLES = int(os.environ.get("PYBUNDLE_FUZZ_EXAMPLES", "150"))


def _sample_elf() -> bytes:
    prefix = discover_prefix("12") or discover_prefix("11")
    if prefix is None:
        pytest.skip("needs a pyenv CPython build for a real ELF file")
    dynload = next(prefix.glob("lib/python3.*/lib-dynload"))
    return min(dynload.glob("_json*.so")).read_bytes()


@pytest.fixture(scope="module")
def elf() -> bytes:
    return _sample_elf()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(
    pokes=st.lists(
        st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)),
        min_size=1,
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(0, 1 << 20)),
    value=st.sampled_from(["$ORIGIN", "$ORIGIN/../lib", "$ORIGIN/" + "x" * 200, "/a:/b"]),
)
def test_damaged_elf_files(elf: bytes, pokes: list[tuple[int, bytes]], cut: int | None,
                           value: str) -> None:  # fmt: skip
    data = bytearray(elf)
    # most pokes land in the headers, where the reader's decisions are made
    for where, blob in pokes:
        at = where % (4096 if where % 3 else len(data))
        data[at : at + len(blob)] = blob
    if cut is not None:
        del data[cut % len(data) :]
    work = Path(tempfile.mkdtemp(prefix="elf-fuzz-"))
    try:
        path = work / "ext.so"
        path.write_bytes(bytes(data))
        read_runpath(path)
        try:
            set_runpath(path, value)
        except (RelocationError, StorageError):
            return
        # a search path that was set reads back
        got = read_runpath(path)
        assert got is not None and got[1] == value, got
    finally:
        shutil.rmtree(work, ignore_errors=True)
