"""Structure-aware fuzzing of every boundary where pybundle parses outside bytes.

Each *family* below is a hypothesis strategy that takes a real bundle written by pybundle's own
packer (a small interpreter tree as ``.tar.gz`` and ``.tar.zst``) and damages one layer of it:

- ``zip``: fields of the end record, central directory and local headers, or raw bytes;
- ``manifest``: any field of the JSON document replaced, removed or added (then re-signed with
  the trusted key, so the damage reaches the manifest checks instead of the signature check);
- ``signature``: the lines of the ``.minisig`` file (algorithm, key id, base64, comments);
- ``tar``: header fields and PAX records of the archive (recompressed, re-hashed, re-signed);
- ``compression``: the gzip and zstd framing of the archive (re-hashed, re-signed);
- ``wheelhouse``: a bundle carrying a wheelhouse (``bundle -r/--with``, manifest v2): any field
  of the ``wheelhouses`` section replaced, removed or added with hostile values, or its members
  damaged, renamed, dropped or duplicated (re-signed);
- ``fileindex``: a bundle carrying the archive's file index (manifest v3): its lines renamed,
  resized, dropped, duplicated, swapped or added, its bytes damaged outside the digests
  (header, sizes, names, line ends: CR, NUL, non-UTF-8, a missing final newline), the index
  re-hashed and re-signed so the damage reaches the index reader and the lockstep check;
- ``solid``: a compact bundle's 7z container (``bundle --compact``): its start header, its
  header fields, methods, dictionary, encryption, entries and payload (CRCs fixed up where
  asked, re-hashed, re-signed, so the damage reaches the 7z checks and py7zr).

Every mutated bundle goes through the real CLI (``pybundle.cli.main``, in process) as
``inspect``, ``verify`` and ``install``, and :func:`check_outcome` asserts the invariants: the
exit code is a documented one and never 1, a refusal is one ``pybundle: error:`` line, an
earlier install is unchanged, nothing appears outside the install directory, and no staging or
partial file remains. ``tests/fuzz/run.py`` (``make fuzz``) runs the families for as long as
asked and keeps failing inputs in ``tests/corpus/``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from hypothesis import strategies as st

from conftest import TEST_BUILD, make_tar, tar_dir, tar_file, tar_link, tiny_interpreter_members
from pybundle.bundler.pack import write_bundle
from pybundle.errors import UsageError
from pybundle.hashing import sha256_file
from pybundle.manifest import Artifact
from pybundle.signing import SecretKey, sign

DOCUMENTED_EXIT_CODES = {0, 2, 3, 4, 5, 6, 7, 8, 9}
FUZZ_KEY = SecretKey(b"pybfuzz!", hashlib.sha256(b"pybundle fuzz key, tests only").digest())
"""A fixed test key, so that a failing input kept in tests/corpus/ replays with the same trust."""
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
INSTALL_NAME = "cpython-3.12.1-linux-x86_64-gnu"


def base_members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The tiny interpreter plus what real trees have: nested dirs, a long (PAX) name, a
    symlink into a sibling dir, a hard link, an executable script and an empty file."""
    long_dir = "python/lib/python3.12/site-packages/" + "a" * 120
    return [
        *tiny_interpreter_members(),
        tar_dir("python/lib/python3.12/site-packages"),
        tar_dir(long_dir),
        tar_file(f"{long_dir}/" + "b" * 120 + ".py", b"x = 1\n"),
        tar_file("python/lib/python3.12/os.py", b"import sys\n" * 50),
        tar_link("python/lib/python3.12/os2.py", "python/lib/python3.12/os.py", hard=True),
        tar_link("python/bin/pydoc", "../lib/python3.12/os.py"),
        tar_file("python/bin/pip3", b"#!/opt/fake/bin/python3.12\nimport pip\n", 0o755),
        tar_file("python/lib/python3.12/empty.py", b""),
    ]


@dataclass
class Base:
    """A valid signed bundle taken apart: the manifest document, the archive bytes per format,
    the key that signs and the public key file that trusts it."""

    key: SecretKey
    pub: Path
    doc: dict[str, Any]
    manifest: bytes
    signature: bytes
    archive_name: str
    archive: bytes
    archive_format: str
    tar: bytes
    """The archive's uncompressed tar stream."""

    def bundle(
        self,
        path: Path,
        *,
        manifest: bytes | None = None,
        signature: bytes | None = None,
        archive: bytes | None = None,
    ) -> Path:
        """Write a bundle from these parts (any part replaced), in pybundle's member order."""
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("pybundle.json", self.manifest if manifest is None else manifest)
            zf.writestr("pybundle.json.minisig", self.signature if signature is None else signature)
            zf.writestr(
                f"archives/{self.archive_name}", self.archive if archive is None else archive
            )
        return path

    def signed(self, doc: dict[str, Any]) -> tuple[bytes, bytes]:
        """Manifest bytes for ``doc`` and a valid signature over them (trusted comment bound to
        the document's id and serial when they are printable)."""
        data = (json.dumps(doc, indent=2) + "\n").encode()
        comment = f"pybundle bundle_id={doc.get('bundle_id')} serial={doc.get('serial')} created=x"
        comment = "".join(c if " " <= c != "\x7f" else "?" for c in comment)[:1000]
        try:
            return data, sign(data, self.key, comment)
        except UsageError:  # a comment minisign cannot carry (other control characters)
            return data, sign(data, self.key, "pybundle bundle_id=? serial=? created=x")

    def with_archive(self, archive: bytes, keep_budget: bool) -> tuple[bytes, bytes, bytes]:
        """(manifest, signature, archive) with the manifest's sha256/size updated for a new
        archive; the recorded unpacked size and member count are kept or dropped."""
        doc = json.loads(self.manifest)
        entry = doc["artifacts"][0]
        entry["sha256"] = hashlib.sha256(archive).hexdigest()
        entry["size"] = max(1, len(archive))
        if not keep_budget:
            entry["unpacked_size"] = None
            entry["file_count"] = None
        manifest, signature = self.signed(doc)
        return manifest, signature, archive


def make_base(directory: Path, archive_format: str, key: SecretKey = FUZZ_KEY) -> Base:
    """Pack :func:`base_members` with pybundle's packer and sign it; write the public key."""
    name = f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.{archive_format}"
    archive = make_tar(directory / name, base_members(), archive_format)
    from pybundle.archives import scan_archive

    with open(archive, "rb") as f:
        shape = scan_archive(f, archive_format, name)
    digest, size = sha256_file(archive)
    artifact = Artifact(
        file_name=name,
        size=size,
        sha256=digest,
        implementation="cpython",
        version="3.12.1",
        build=TEST_BUILD,
        target=__import__("pybundle.targets", fromlist=["Target"]).Target("linux", "x86_64", "gnu"),
        variant="default",
        flavour="install_only",
        archive_format=archive_format,
        strip_prefix="python",
        build_prefix="/opt/fake",
        source_url=f"https://example.invalid/{name}",
        unpacked_size=shape.unpacked_size,
        file_count=shape.file_count,
    )
    bundle = directory / f"base-{archive_format}.pybundle"
    manifest = write_bundle(bundle, [(artifact, archive)], secret_key=key)
    pub = directory / "trusted.pub"
    pub.write_text(key.public_key.to_file_text())
    with zipfile.ZipFile(bundle) as zf:
        manifest_bytes = zf.read("pybundle.json")
        signature = zf.read("pybundle.json.minisig")
    raw = archive.read_bytes()
    tar = (
        gzip.decompress(raw)
        if archive_format == "tar.gz"
        else zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    )
    del manifest
    return Base(
        key, pub, json.loads(manifest_bytes), manifest_bytes, signature, name, raw,
        archive_format, tar,
    )  # fmt: skip


# ---------------------------------------------------------------- interesting values

INTERESTING_INTS = [0, 1, -1, 127, 128, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF,
                    2**32, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30]  # fmt: skip
NASTY_STRINGS = ["", ".", "..", "../../etc/passwd", "/", "/etc", "a\nb", "a\x00b", "\x1b[2J",
                 "é", "日本", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
                 "a" * 300, "a/" * 2100, "%2e%2e", "archives/../x", "C:\\x", "~", "$HOME",
                 "`id`", "'", '"', "\\", "python/../../x"]  # fmt: skip


def json_values(depth: int = 2) -> st.SearchStrategy[Any]:
    """JSON values that stress a manifest reader: nasty ints, floats, strings, nesting."""
    leaves = st.one_of(
        st.sampled_from(INTERESTING_INTS),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
        st.sampled_from(NASTY_STRINGS),
        st.text(max_size=40),
    )
    if depth <= 0:
        return leaves
    return st.one_of(
        leaves,
        st.lists(json_values(depth - 1), max_size=3),
        st.dictionaries(st.text(max_size=10), json_values(depth - 1), max_size=3),
    )


# ---------------------------------------------------------------- families

Mutation = Callable[[Base, Path], Path]


def _zip_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of every numeric field of the zip's records, for targeted pokes."""
    fields: list[tuple[int, int]] = []
    eocd = data.rindex(b"PK\x05\x06")
    fields += [
        (eocd + o, w) for o, w in ((4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2))
    ]
    cd = struct.unpack_from("<I", data, eocd + 16)[0]
    count = struct.unpack_from("<H", data, eocd + 10)[0]
    at = cd
    for _ in range(count):
        if data[at : at + 4] != b"PK\x01\x02":
            break
        fields += [(at + o, w) for o, w in ((4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2),
                                            (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2),
                                            (34, 2), (36, 2), (38, 4), (42, 4))]  # fmt: skip
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, at + 28)
        local = struct.unpack_from("<I", data, at + 42)[0]
        fields += [(local + o, w) for o, w in ((0, 4), (4, 2), (6, 2), (8, 2), (14, 4), (18, 4),
                                               (22, 4), (26, 2), (28, 2))]  # fmt: skip
        at += 46 + name_len + extra_len + comment_len
    return fields


@st.composite
def zip_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    pokes = draw(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(INTERESTING_INTS)),
                          min_size=1, max_size=3))  # fmt: skip
    flips = draw(st.lists(st.integers(0, 10**9), max_size=2))
    cut = draw(st.one_of(st.none(), st.integers(0, 10**9)))
    prepend = draw(st.sampled_from([b"", b"#!/bin/sh\nexit 0\n", b"PK\x05\x06" + b"\0" * 18]))

    def mutate(base: Base, path: Path) -> Path:
        base.bundle(path)
        data = bytearray(path.read_bytes())
        fields = _zip_fields(bytes(data))
        for index, value in pokes:
            offset, width = fields[index % len(fields)]
            data[offset : offset + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
        for at in flips:
            data[at % len(data)] ^= 1 << (at % 8)
        if cut is not None:
            del data[cut % len(data) :]
        path.write_bytes(prepend + bytes(data))
        return path

    return mutate


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def manifest_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    edits = draw(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(["set", "del", "add"]),
                                    json_values(), st.text(max_size=12)),
                          min_size=1, max_size=3))  # fmt: skip
    deep = draw(st.sampled_from([0, 0, 0, 40, 5000]))

    def mutate(base: Base, path: Path) -> Path:
        doc = json.loads(base.manifest)
        for index, op, value, key in edits:
            paths = _paths(doc)[1:]
            where = paths[index % len(paths)]
            parent = doc
            for part in where[:-1]:
                parent = parent[part]
            if op == "set":
                parent[where[-1]] = value
            elif op == "del" and isinstance(parent, dict):
                parent.pop(where[-1], None)
            elif isinstance(parent, dict):
                parent[key] = value
            elif isinstance(parent, list):
                parent.append(value)
        if deep:
            nested: Any = 1
            for _ in range(deep):
                nested = [nested]
            doc["nested"] = nested
        try:
            manifest, signature = base.signed(doc)
        except (RecursionError, ValueError):
            manifest = b"[" * deep
            signature = sign(manifest, base.key, "c")
        return base.bundle(path, manifest=manifest, signature=signature)

    return mutate


@st.composite
def signature_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    line = draw(st.integers(0, 5))
    kind = draw(st.sampled_from(["text", "b64", "algo", "keyid", "drop", "dup", "crlf", "bytes"]))
    text = draw(st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=200)))
    blob = draw(st.binary(max_size=200))

    def mutate(base: Base, path: Path) -> Path:
        lines = base.signature.split(b"\n")
        i = line % len(lines)
        if kind == "text":
            lines[i] = text.encode("utf-8", "surrogatepass")
        elif kind == "b64":
            lines[i] = base64.b64encode(blob)
        elif kind in ("algo", "keyid"):
            raw = bytearray(base64.b64decode(lines[1]))
            span = slice(0, 2) if kind == "algo" else slice(2, 10)
            raw[span] = (blob + b"\0" * 10)[: span.stop - span.start]
            lines[1] = base64.b64encode(bytes(raw))
        elif kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "bytes":
            lines[i] = blob
        signature = b"\n".join(lines)
        if kind == "crlf":
            signature = signature.replace(b"\n", b"\r\n")
        return base.bundle(path, signature=signature)

    return mutate


TAR_FIELDS = [("name", 0, 100), ("mode", 100, 8), ("uid", 108, 8), ("gid", 116, 8),
              ("size", 124, 12), ("mtime", 136, 12), ("chksum", 148, 8), ("typeflag", 156, 1),
              ("linkname", 157, 100), ("magic", 257, 6), ("version", 263, 2),
              ("prefix", 345, 155)]  # fmt: skip
PAX_KEYS = ["path", "linkpath", "size", "mtime", "uid", "atime", "GNU.sparse.map",
            "GNU.sparse.size", "hdrcharset", "SCHILY.xattr.user.x", "comment"]  # fmt: skip


def _checksum(header: bytearray) -> None:
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % (sum(header) & 0o777777) + b" "


TAR_VALUES = [b"../../x", b"/etc/passwd", b"77777777777", b"\x80" + b"\xff" * 11, b"\xff" * 12,
              b"-1", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"S", b"L", b"K", b"x", b"g",
              b"V"]  # fmt: skip
PAX_VALUES = [*NASTY_STRINGS, "9" * 30, "-5", "1e400", "nan", "1.5", "99999999999999999999"]


@st.composite
def tar_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    value = st.one_of(st.binary(max_size=160), st.sampled_from(TAR_VALUES))
    edits = draw(
        st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(TAR_FIELDS), value), max_size=3)
    )
    pax_value = st.one_of(st.sampled_from(PAX_VALUES), st.text(max_size=40))
    pax = draw(st.lists(st.tuples(st.sampled_from(PAX_KEYS), pax_value), max_size=2))
    fix_checksum = draw(st.booleans())
    keep_budget = draw(st.booleans())
    truncate = draw(st.one_of(st.none(), st.integers(0, 10**9)))
    append = draw(st.sampled_from([b"", b"\0" * 512, b"garbage" * 100]))

    def mutate(base: Base, path: Path) -> Path:
        tar = bytearray(base.tar)
        headers = _tar_headers(bytes(tar))
        for index, (_name, offset, width), value in edits:
            at = headers[index % len(headers)]
            header = tar[at : at + 512]
            header[offset : offset + width] = (value + b"\0" * width)[:width]
            if fix_checksum:
                _checksum(header)
            tar[at : at + 512] = header
        if pax:
            tar = bytearray(_with_pax(bytes(tar), headers[len(headers) // 2], pax))
        if truncate is not None:
            del tar[truncate % max(1, len(tar)) :]
        tar += append
        raw = (
            gzip.compress(bytes(tar), compresslevel=1)
            if base.archive_format == "tar.gz"
            else zstandard.ZstdCompressor().compress(bytes(tar))
        )
        manifest, signature, archive = base.with_archive(raw, keep_budget)
        return base.bundle(path, manifest=manifest, signature=signature, archive=archive)

    return mutate


def _tar_headers(tar: bytes) -> list[int]:
    """Offsets of the member headers of a tar stream (walking sizes, stopping at the end)."""
    out, at = [], 0
    while at + 512 <= len(tar) and tar[at : at + 512] != b"\0" * 512:
        out.append(at)
        try:
            size = int(tar[at + 124 : at + 136].split(b"\0")[0].strip() or b"0", 8)
        except ValueError:
            break
        at += 512 + (size + 511) // 512 * 512
    return out or [0]


def _with_pax(tar: bytes, at: int, records: list[tuple[str, str]]) -> bytes:
    """Insert a PAX extended header with ``records`` before the member header at ``at``."""
    body = b""
    for key, value in records:
        rec = f" {key}={value}\n".encode("utf-8", "surrogatepass")
        n = len(rec) + 1
        while len(str(n)) + len(rec) != n:
            n = len(str(n)) + len(rec)
        body += str(n).encode() + rec
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(body)
    header = info.tobuf(tarfile.USTAR_FORMAT)
    padded = body + b"\0" * ((512 - len(body) % 512) % 512)
    return tar[:at] + header + padded + tar[at:]


@st.composite
def compression_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    kind = draw(st.sampled_from(["gzip-flags", "gzip-trailer", "gzip-concat", "gzip-method",
                                 "zstd-window", "zstd-skippable", "zstd-concat", "zstd-checksum",
                                 "swap-format", "bytes"]))  # fmt: skip
    value = draw(st.sampled_from(INTERESTING_INTS))
    blob = draw(st.binary(max_size=64))
    keep_budget = draw(st.booleans())

    def mutate(base: Base, path: Path) -> Path:
        tar = base.tar
        if base.archive_format == "tar.gz" or kind.startswith("gzip"):
            raw = bytearray(gzip.compress(tar, compresslevel=1))
        else:
            raw = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(tar))
        if kind == "gzip-flags":
            raw[3] = value & 0xFF
            raw[10:10] = blob
        elif kind == "gzip-trailer":
            raw[-8:] = (blob + b"\0" * 8)[:8]
        elif kind == "gzip-concat":
            raw += gzip.compress(blob) if value % 2 else blob
        elif kind == "gzip-method":
            raw[2] = value & 0xFF
        elif kind == "zstd-window":
            raw = bytearray(
                zstandard.ZstdCompressor(
                    compression_params=zstandard.ZstdCompressionParameters(
                        window_log=min(31, 10 + value % 22)
                    )
                ).compress(tar)
            )
            if value % 3 == 0:
                raw[4] = 0x00  # frame header descriptor: no single-segment, window byte follows
                raw[5:5] = bytes([0xF8])  # a 2 GiB window descriptor
        elif kind == "zstd-skippable":
            raw[0:0] = struct.pack("<II", 0x184D2A50 + value % 16, len(blob)) + blob
        elif kind == "zstd-concat":
            raw += zstandard.ZstdCompressor().compress(blob) if value % 2 else blob
        elif kind == "zstd-checksum":
            raw[-4:] = (blob + b"\0" * 4)[:4]
        elif kind == "swap-format":
            raw = (
                bytearray(zstandard.ZstdCompressor().compress(tar))
                if base.archive_format == "tar.gz"
                else bytearray(gzip.compress(tar))
            )
        else:
            at = value % len(raw)
            raw[at : at + len(blob)] = blob
        manifest, signature, archive = base.with_archive(bytes(raw), keep_budget)
        return base.bundle(path, manifest=manifest, signature=signature, archive=archive)

    return mutate


SOLID_NAME = "archives/interpreters.7z"


def make_7z(
    entries: list[tuple[str, bytes]],
    filters: list[dict[str, Any]] | None = None,
    *,
    encoded_header: bool = False,
    password: str | None = None,
) -> bytes:
    """A 7z archive of ``entries`` (name, data) written by py7zr, one solid folder."""
    import py7zr

    buf = io.BytesIO()
    filters = filters or [{"id": py7zr.FILTER_LZMA2, "preset": 1, "dict_size": 1 << 20}]
    with py7zr.SevenZipFile(buf, "w", filters=filters, password=password) as z:
        z.set_encoded_header_mode(encoded_header)
        for name, data in entries:
            z.writestr(data, name)
    return buf.getvalue()


def fix_7z_crcs(raw: bytearray) -> None:
    """Recompute the next header's CRC and the start header's CRC (7zFormat.txt)."""
    import zlib

    if len(raw) < 32:
        return
    offset, size = struct.unpack_from("<QQ", raw, 12)
    header = bytes(raw[32 + offset : 32 + offset + size]) if 32 + offset <= len(raw) else b""
    struct.pack_into("<L", raw, 28, zlib.crc32(header))
    struct.pack_into("<L", raw, 8, zlib.crc32(bytes(raw[12:32])))


def compact_bundle(
    base: Base,
    path: Path,
    container: bytes,
    *,
    tar: bytes | None = None,
    dictionary: int = 1 << 20,
    entry: str | None = None,
) -> Path:
    """A signed compact bundle of ``base`` whose solid member is ``container``; the manifest
    records ``tar`` (default: the base's) as the entry's content and ``dictionary``."""
    tar = base.tar if tar is None else tar
    doc = json.loads(base.manifest)
    doc["schema_version"] = 2
    art = doc["artifacts"][0]
    name = entry or base.archive_name[: -len(base.archive_format)] + "tar"
    art["solid"] = {"name": name, "size": max(1024, len(tar)),
                    "sha256": hashlib.sha256(tar).hexdigest()}  # fmt: skip
    doc["solid"] = {
        "member": SOLID_NAME, "format": "7z", "compression": "lzma2", "dictionary": dictionary,
        "size": max(32, len(container)), "sha256": hashlib.sha256(container).hexdigest(),
        "unpacked_size": max(1024, len(tar)),
    }  # fmt: skip
    manifest, signature = base.signed(doc)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("pybundle.json", manifest)
        zf.writestr("pybundle.json.minisig", signature)
        zf.writestr(SOLID_NAME, container)
    return path


@st.composite
def solid_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    kind = draw(st.sampled_from(["intact", "bytes", "header-bytes", "start-header", "method",
                                 "dictionary", "encoded-header", "encrypted", "entries",
                                 "truncate", "tar-bytes"]))  # fmt: skip
    value = draw(st.sampled_from(INTERESTING_INTS))
    blob = draw(st.binary(min_size=1, max_size=32))
    fix_crcs = draw(st.booleans())

    def mutate(base: Base, path: Path) -> Path:
        import py7zr

        name = base.archive_name[: -len(base.archive_format)] + "tar"
        tar = base.tar
        entries = [(name, tar)]
        filters = None
        encoded = False
        password = None
        if kind == "method":
            choices = [
                [{"id": py7zr.FILTER_ZSTD, "level": 3}],
                [{"id": py7zr.FILTER_COPY}],
                [{"id": py7zr.FILTER_BZIP2}],
                [{"id": py7zr.FILTER_DEFLATE}],
                [{"id": py7zr.FILTER_LZMA}],
                [{"id": py7zr.FILTER_X86}, {"id": py7zr.FILTER_LZMA2, "preset": 1}],
                [{"id": py7zr.FILTER_DELTA}, {"id": py7zr.FILTER_LZMA2, "preset": 1}],
                [{"id": py7zr.FILTER_PPMD, "order": 6, "mem": 24}],
            ]
            filters = choices[value % len(choices)]
        elif kind == "encoded-header":
            encoded = True
        elif kind == "encrypted":
            password = "x"
            filters = [{"id": py7zr.FILTER_LZMA2, "preset": 1},
                       {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}]  # fmt: skip
        elif kind == "entries":
            variants = [
                [(name, tar), (name, tar)],
                [(name, tar), ("extra.tar", blob)],
                [("sub/" + name, tar)],
                [(name + "x", tar)],
                [("extra.tar", blob), (name, tar)],
                [(name, b"")],
            ]
            entries = variants[value % len(variants)]
        elif kind == "tar-bytes":
            mutated = bytearray(tar)
            at = value % len(mutated)
            mutated[at : at + len(blob)] = blob
            entries = [(name, bytes(mutated))]
        raw = bytearray(make_7z(entries, filters, encoded_header=encoded, password=password))
        if kind == "bytes":
            at = value % len(raw)
            raw[at : at + len(blob)] = blob
        elif kind == "header-bytes":
            offset, size = struct.unpack_from("<QQ", raw, 12)
            at = 32 + offset + value % max(1, size)
            raw[at : at + len(blob)] = blob
        elif kind == "start-header":
            at = 6 + value % 26
            raw[at : at + len(blob)] = blob
        elif kind == "dictionary":
            at = raw.rfind(b"\x21\x01")  # the LZMA2 coder: id 0x21, 1 property byte
            if at >= 0:
                raw[at + 2] = value & 0xFF
        elif kind == "truncate":
            offset, size = struct.unpack_from("<QQ", raw, 12)
            cut = value % max(1, 32 + offset)
            raw = raw[:32] + raw[32 + cut :]
            struct.pack_into("<Q", raw, 12, max(0, offset - cut))
        if fix_crcs and kind not in ("intact", "start-header"):
            fix_7z_crcs(raw)
        return compact_bundle(base, path, bytes(raw), tar=None if kind == "tar-bytes" else tar)

    return mutate


WHEEL_NAME = "demo-1.0-py3-none-any.whl"
HOSTILE_MEMBERS = ["wheels/../pybundle.json", "wheels/a/b.whl", "archives/x.whl", "wheels/.whl",
                   "locks/../x.txt", "pybundle.json", "wheels/" + "a" * 300 + ".whl",
                   "wheels/x.whl\x00", "/wheels/x.whl",
                   "wheels/demo-1.0-py3-none-any.whl"]  # fmt: skip


def wheelhouse_bundle(
    base: Base, path: Path, doc: dict[str, Any], members: list[tuple[str, bytes]]
) -> Path:
    """A signed bundle of ``base`` with ``doc`` as its manifest and ``members`` after the
    archive."""
    import warnings

    manifest, signature = base.signed(doc)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a duplicated member is the point
        zf.writestr("pybundle.json", manifest)
        zf.writestr("pybundle.json.minisig", signature)
        zf.writestr(f"archives/{base.archive_name}", base.archive)
        for name, data in members:
            zf.writestr(name, data)
    return path


def wheelhouse_doc(base: Base) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """A valid v2 manifest of ``base`` with a one-wheel wheelhouse, and its members."""
    wheel = b"PK\x05\x06" + b"\x00" * 18  # an empty zip: the bytes are only hashed here
    lock = (f"demo==1.0 \\\n    --hash=sha256:{hashlib.sha256(wheel).hexdigest()}\n").encode()
    doc = json.loads(base.manifest)
    doc["schema_version"] = 2
    key = "cpython-3.12-linux-x86_64-gnu"
    doc["wheelhouses"] = {
        "wheels": [{"member": f"wheels/{WHEEL_NAME}", "size": len(wheel),
                    "sha256": hashlib.sha256(wheel).hexdigest(), "tags": ["py3-none-any"]}],
        "targets": [{"key": key, "python": "3.12", "abi": "cp312", "os": "linux",
                     "arch": "x86_64", "libc": "gnu",
                     "artifacts": [f"archives/{base.archive_name}"],
                     "wheels": [f"wheels/{WHEEL_NAME}"],
                     "lock": {"member": f"locks/{key}.txt", "size": len(lock),
                              "sha256": hashlib.sha256(lock).hexdigest()},
                     "missing": []}],
    }  # fmt: skip
    return doc, [(f"wheels/{WHEEL_NAME}", wheel), (f"locks/{key}.txt", lock)]


@st.composite
def wheelhouse_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    edits = draw(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(["set", "del", "add"]),
                                    st.one_of(json_values(), st.sampled_from(HOSTILE_MEMBERS)),
                                    st.text(max_size=12)),
                          min_size=0, max_size=3))  # fmt: skip
    damage = draw(st.sampled_from(["none", "bytes", "drop", "duplicate", "rename", "extra"]))
    which = draw(st.integers(0, 1))
    blob = draw(st.binary(min_size=1, max_size=64))
    hostile = draw(st.sampled_from(HOSTILE_MEMBERS))

    def mutate(base: Base, path: Path) -> Path:
        doc, members = wheelhouse_doc(base)
        section = doc["wheelhouses"]
        for index, op, value, key in edits:
            paths = _paths(section)
            if not paths:
                break
            where = paths[index % len(paths)]
            if not where:
                continue
            parent = section
            for part in where[:-1]:
                parent = parent[part]
            if op == "set":
                parent[where[-1]] = value
            elif op == "del" and isinstance(parent, dict):
                parent.pop(where[-1], None)
            elif isinstance(parent, dict):
                parent[key] = value
            elif isinstance(parent, list):
                parent.append(value)
        name, data = members[which]
        if damage == "bytes":
            members[which] = (name, blob + data[len(blob) :])
        elif damage == "drop":
            del members[which]
        elif damage == "duplicate":
            members.append((name, data))
        elif damage == "rename":
            members[which] = (hostile, data)
        elif damage == "extra":
            members.append((hostile, blob))
        return wheelhouse_bundle(base, path, doc, members)

    return mutate


def file_index_of(tar: bytes) -> bytes:
    """The file index of an uncompressed tar, computed independently with tarfile: one
    ``<sha256> <size> <name>`` line per regular member, in archive order."""
    lines = [b"pybundle-file-index 1\n"]
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as tf:
        for member in tf:
            if member.isreg():
                data = tf.extractfile(member).read()  # type: ignore[union-attr]
                digest = hashlib.sha256(data).hexdigest()
                lines.append(f"{digest} {member.size} {member.name}\n".encode())
    return b"".join(lines)


def index_bundle(base: Base, path: Path, index: bytes) -> Path:
    """A signed v3 bundle of ``base`` carrying ``index`` as its archive's file index (the
    manifest records the index's real sha256 and size)."""
    doc = json.loads(base.manifest)
    doc["schema_version"] = 3
    member = f"indexes/{base.archive_name}.files"
    doc["artifacts"][0]["file_index"] = {
        "member": member, "sha256": hashlib.sha256(index).hexdigest(), "size": len(index),
    }  # fmt: skip
    manifest, signature = base.signed(doc)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("pybundle.json", manifest)
        zf.writestr("pybundle.json.minisig", signature)
        zf.writestr(f"archives/{base.archive_name}", base.archive)
        zf.writestr(member, index)
    return path


INDEX_BYTES = [b"\r", b"\x00", b"\xff", b"\xc3", b"\n", b" ", b"  ", b"0", b"-", b"+", b"\t",
               b"/", b"..", b"\xe2\x80\xa8", b"x" * 5000]  # fmt: skip


@st.composite
def fileindex_family(draw: st.DrawFn) -> Callable[[Base, Path], Path]:
    ops = draw(st.lists(st.tuples(
        st.sampled_from(["rename", "size", "drop", "duplicate", "swap", "add", "insert",
                         "truncate", "header", "none"]),
        st.integers(0, 10_000), st.integers(-3, 2**64), st.sampled_from(INDEX_BYTES),
        st.sampled_from(NASTY_STRINGS) | st.text(max_size=20)),
        min_size=1, max_size=3))  # fmt: skip

    def mutate(base: Base, path: Path) -> Path:
        index = file_index_of(base.tar)
        header, *lines = index.splitlines(keepends=True)
        for op, at, number, blob, text in ops:
            i = at % len(lines) if lines else 0
            if op == "rename" and lines:
                digest, size, _ = [*lines[i].split(b" ", 2), b"", b""][:3]
                lines[i] = digest + b" " + size + b" " + text.encode("utf-8", "replace") + b"\n"
            elif op == "size" and lines:
                digest, _, name = [*lines[i].split(b" ", 2), b"", b""][:3]
                lines[i] = digest + b" " + str(number).encode() + b" " + name
            elif op == "drop" and lines:
                del lines[i]
            elif op == "duplicate" and lines:
                lines.insert(i, lines[i])
            elif op == "swap" and len(lines) > 1:
                j = (i + 1) % len(lines)
                lines[i], lines[j] = lines[j], lines[i]
            elif op == "add":
                lines.insert(i, b"0" * 64 + b" 1 " + text.encode("utf-8", "replace") + b"\n")
            elif op == "insert" and lines:  # raw bytes outside the digest: size, name, line end
                line = lines[i]
                pos = 65 + at % max(1, len(line) - 65)
                lines[i] = line[:pos] + blob + line[pos:]
            elif op == "truncate":
                joined = b"".join(lines)
                lines = [joined[: at % (len(joined) + 1)]]
            elif op == "header":
                header = blob + header[at % len(header) :]
        return index_bundle(base, path, header + b"".join(lines))

    return mutate


FAMILIES: dict[str, Callable[[], st.SearchStrategy[Mutation]]] = {
    "fileindex": fileindex_family,
    "zip": zip_family,
    "wheelhouse": wheelhouse_family,
    "manifest": manifest_family,
    "signature": signature_family,
    "tar": tar_family,
    "compression": compression_family,
    "solid": solid_family,
}


# ---------------------------------------------------------------- running and checking


@dataclass
class Outcome:
    command: tuple[str, ...]
    code: int
    stdout: str
    stderr: str


def run_cli_in_process(*argv: str) -> Outcome:
    """``pybundle ARGV`` through :func:`pybundle.cli.main` in this process."""
    from pybundle.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Outcome(tuple(argv), code, out.getvalue(), err.getvalue())


def tree_digest(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content digest, link target or ``dir``."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Arena:
    """Where one fuzz run works: ``earlier`` holds an install that must never change, ``fresh``
    receives new installs (emptied after each example), ``outside`` stands for everything
    else the installer must not touch."""

    root: Path
    pub: Path

    @property
    def earlier(self) -> Path:
        return self.root / "earlier"

    @property
    def fresh(self) -> Path:
        return self.root / "fresh"

    @property
    def outside(self) -> Path:
        return self.root / "outside"


def make_arena(root: Path, base: Base) -> Arena:
    """Install the valid base bundle into ``earlier`` (the install that must survive)."""
    arena = Arena(root, base.pub)
    for d in (arena.earlier, arena.fresh, arena.outside):
        d.mkdir(parents=True, exist_ok=True)
    (arena.outside / "precious.txt").write_text("must never change\n")
    good = base.bundle(root / "good.pybundle")
    result = run_cli_in_process(
        "install", "--from", str(good), "--trusted-key", str(base.pub),
        "--install-dir", str(arena.earlier),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return arena


def check_outcome(outcome: Outcome) -> None:
    """The exit code is documented and not 1; a failure is exactly one error line; no
    traceback."""
    assert outcome.code in DOCUMENTED_EXIT_CODES, (outcome.command, outcome.code, outcome.stderr)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert "pybundle: error: unexpected" not in outcome.stderr, outcome.stderr
    if outcome.code != 0:
        errors = [ln for ln in outcome.stderr.splitlines() if ln.startswith("pybundle: error:")]
        assert len(errors) == 1, outcome.stderr


def exercise(arena: Arena, bundle: Path) -> list[Outcome]:
    """Run inspect, verify and two installs (a fresh dir, and over the earlier install without
    --force) on ``bundle``; assert every invariant; leave ``fresh`` empty again."""
    earlier = tree_digest(arena.earlier)
    outside = tree_digest(arena.outside)
    siblings = sorted(p.name for p in arena.root.iterdir())
    key = str(arena.pub)
    # each example starts with no rollback record: a serial recorded by one mutant must not
    # turn every later one into a downgrade refusal
    state = Path(tempfile.mkdtemp(prefix="state-", dir=bundle.parent))
    os.environ["PYBUNDLE_STATE_DIR"] = str(state)
    # --no-bin: with the rollback record reset, the links the earlier install made would no
    # longer be known as pybundle's, and every install would stop there (exit 8) before
    # extracting anything
    outcomes = [
        run_cli_in_process("inspect", "--json", str(bundle)),
        run_cli_in_process("verify", str(bundle), "--trusted-key", key),
        run_cli_in_process("install", "--from", str(bundle), "--trusted-key", key,
                           "--install-dir", str(arena.fresh), "--no-bin"),
        run_cli_in_process("install", "--from", str(bundle), "--trusted-key", key,
                           "--install-dir", str(arena.earlier), "--no-bin"),
    ]  # fmt: skip
    for outcome in outcomes:
        check_outcome(outcome)
    assert tree_digest(arena.earlier) == earlier, "the earlier install changed"
    assert tree_digest(arena.outside) == outside, "a file outside the install dir changed"
    assert sorted(p.name for p in arena.root.iterdir()) == siblings, "a file appeared beside"
    leftovers = [p.name for p in arena.fresh.iterdir() if p.name != ".pybundle.lock"]
    if outcomes[2].code == 0:
        assert leftovers == [INSTALL_NAME], leftovers
        from pybundle.installer.receipts import read_receipt, scan_tree

        receipt = read_receipt(arena.fresh / INSTALL_NAME)
        assert receipt is not None
        assert list(receipt.files) == scan_tree(arena.fresh / INSTALL_NAME)
    else:
        assert leftovers == [], f"left behind after exit {outcomes[2].code}: {leftovers}"
    shutil.rmtree(arena.fresh)
    arena.fresh.mkdir()
    return outcomes


PENDING = CORPUS / "pending"


def keep_pending(family: str, bundle: Path, error: BaseException) -> None:
    """Overwrite ``tests/corpus/pending/<family>.pybundle`` with a failing input (hypothesis
    replays its shrunk example last, so that is the one left); ``run.py`` files it away."""
    PENDING.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle, PENDING / f"{family}.pybundle")
    (PENDING / f"{family}.txt").write_text(f"{type(error).__name__}: {error}\n"[:4000])


def file_pending() -> list[Path]:
    """Move pending failures into tests/corpus/ under ``<family>-<sha256 prefix>`` names."""
    kept: list[Path] = []
    for bundle in sorted(PENDING.glob("*.pybundle")) if PENDING.is_dir() else []:
        digest = hashlib.sha256(bundle.read_bytes()).hexdigest()[:16]
        target = CORPUS / f"{bundle.stem}-{digest}.pybundle"
        os.replace(bundle, target)
        note = bundle.with_suffix(".txt")
        if note.exists():
            os.replace(note, target.with_suffix(".txt"))
        kept.append(target)
    shutil.rmtree(PENDING, ignore_errors=True)
    return kept


@contextlib.contextmanager
def scratch() -> Any:
    """A temporary directory for one example."""
    path = Path(tempfile.mkdtemp(prefix="pybundle-fuzz-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
