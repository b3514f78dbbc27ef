"""The file index format (pybundle.fileindex): writer, strict reader, hostile cases, fuzzing."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybundle.errors import UnsafeArchiveError
from pybundle.fileindex import (
    HEADER,
    MAX_NAME_BYTES,
    IndexEntry,
    IndexReader,
    format_index,
    parse_index,
)

D1 = hashlib.sha256(b"one").hexdigest()
D2 = hashlib.sha256(b"two").hexdigest()
GOOD = [IndexEntry(D1, 3, "python/bin/python3.12"), IndexEntry(D2, 0, "python/a b c")]


def test_round_trip_and_exact_bytes() -> None:
    data = format_index(GOOD)
    assert data == (
        b"pybundle-file-index 1\n" + f"{D1} 3 python/bin/python3.12\n{D2} 0 python/a b c\n".encode()
    )
    assert parse_index(data, "x") == GOOD
    assert parse_index(HEADER, "x") == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a file index"),
        (b"pybundle-file-index 2\n", "not a file index"),
        (b"pybundle-file-index 1\r\n", "not a file index"),
        (b"pybundle-file-index 1", "not a file index"),
        (HEADER + f"{D1} 3 a\r\n".encode(), "carriage return"),
        (HEADER + f"{D1} 3 a\n{D2} 1 b".encode(), "does not end with a newline"),
        (HEADER + f"{D1.upper()} 3 a\n".encode(), "malformed line"),
        (HEADER + f"{D1[:-1]} 3 a\n".encode(), "malformed line"),
        (HEADER + f"{D1} 03 a\n".encode(), "malformed line"),
        (HEADER + f"{D1} -3 a\n".encode(), "malformed line"),
        (HEADER + f"{D1} 3\n".encode(), "malformed line"),
        (HEADER + f"{D1} 3 \n".encode(), "malformed line"),
        (HEADER + f"{D1}  3 a\n".encode(), "malformed line"),
        (HEADER + f"{D1} 3 a\x00b\n".encode(), "malformed line"),
        (HEADER + f"{D1} 3 ".encode() + b"\xff\xfe\n", "not UTF-8"),
        (HEADER + f"{D1} 3 ".encode() + b"a" * (MAX_NAME_BYTES + 1) + b"\n", "longer than"),
        (HEADER + f"{D1} 99999999999 a\n".encode(), "budget"),
        (HEADER + f"{D1} 600 a\n{D1} 600 b\n".encode(), "budget"),
        (HEADER + f"{D1} 1 a\n{D1} 1 b\n{D1} 1 c\n".encode(), "more than 2 files"),
    ],
)
def test_hostile_indexes_are_refused_naming_source_and_line(data: bytes, reason: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=re.escape(reason)) as info:
        parse_index(data, "b.pybundle: indexes/x.files", max_lines=2, max_size=1000)
    message = str(info.value)
    assert message.startswith("b.pybundle: indexes/x.files: line ") and "\n" not in message


def test_the_reader_stops_at_the_recorded_size() -> None:
    data = format_index(GOOD)
    reader = IndexReader(
        io.BytesIO(data + b"x" * 100), "s", max_lines=10, max_size=100, max_bytes=len(data)
    )
    assert reader.entries() == GOOD  # what follows the recorded size is never read
    longer = IndexReader(io.BytesIO(data), "s", max_lines=10, max_size=100, max_bytes=len(data) - 5)
    with pytest.raises(UnsafeArchiveError, match="longer than"):
        longer.entries()


def test_lockstep_expect_and_finish() -> None:
    def reader() -> IndexReader:
        data = format_index(GOOD)
        return IndexReader(io.BytesIO(data), "idx", max_lines=9, max_size=99, max_bytes=len(data))

    ok = reader()
    assert ok.expect("python/bin/python3.12", 3, "arc") == D1
    assert ok.expect("python/a b c", 0, "arc") == D2
    ok.finish("arc")
    with pytest.raises(UnsafeArchiveError, match=r"idx: line 2: .*'python/other'"):
        reader().expect("python/other", 3, "arc")
    with pytest.raises(UnsafeArchiveError, match=r"\(3 bytes\) where arc has .*\(4 bytes\)"):
        reader().expect("python/bin/python3.12", 4, "arc")
    short = reader()
    short.expect("python/bin/python3.12", 3, "arc")
    short.expect("python/a b c", 0, "arc")
    with pytest.raises(UnsafeArchiveError, match="ends before member 'python/z' of arc"):
        short.expect("python/z", 1, "arc")
    extra = reader()
    extra.expect("python/bin/python3.12", 3, "arc")
    with pytest.raises(UnsafeArchiveError, match="'python/a b c', which is not a regular file"):
        extra.finish("arc")


def test_the_writer_refuses_names_it_cannot_represent() -> None:
    for name in ("a\nb", "a\rb", "a\x00b", "", "\udcff", "a" * (MAX_NAME_BYTES + 1)):
        with pytest.raises(ValueError):
            format_index([IndexEntry(D1, 1, name)])
    with pytest.raises(ValueError):
        format_index([IndexEntry("0" * 63, 1, "a")])


names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"),
    min_size=1,
    max_size=40,
)
entries = st.lists(
    st.builds(
        IndexEntry,
        st.binary(min_size=32, max_size=32).map(bytes.hex),
        st.integers(0, 2**40),
        names,
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(entries=entries)
def test_writer_reader_round_trip(entries: list[IndexEntry]) -> None:
    assert parse_index(format_index(entries), "x") == entries


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    entries=entries,
    edits=st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.sampled_from(["flip", "insert", "delete", "cut"]),
            st.binary(min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_indexes_parse_or_raise_the_typed_error(
    entries: list[IndexEntry], edits: list[tuple[int, str, bytes]]
) -> None:
    data = bytearray(format_index(entries))
    for at, op, blob in edits:
        i = at % (len(data) + 1)
        if op == "flip" and i < len(data):
            data[i] ^= blob[0] or 1
        elif op == "insert":
            data[i:i] = blob
        elif op == "delete":
            del data[i : i + len(blob)]
        elif op == "cut":
            del data[i:]
    try:
        parsed = parse_index(bytes(data), "x", max_lines=20, max_size=2**62)
    except UnsafeArchiveError as exc:
        assert str(exc).startswith("x: line ") or "x: " in str(exc)
        return
    # what parses is exactly what the writer would write for it
    assert format_index(parsed) == bytes(data)
