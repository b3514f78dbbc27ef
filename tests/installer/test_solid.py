"""The solid stream reader against hostile 7z containers: each is signed and hashed into the
manifest (so the damage reaches the 7z checks, not the signature check) and must be refused
with one typed error, exit 5 or 6, before anything is placed. The fuzzer (tests/fuzz, family
``solid``) varies the same layers at random."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import py7zr
import pytest

from conftest import TEST_BUILD, make_tar, tiny_artifact, tiny_interpreter_members
from pybundle.bundler.pack import write_bundle
from pybundle.errors import ManifestError, UnsafeArchiveError
from pybundle.installer.install import install_bundle
from pybundle.installer.solid import MAX_HEADER_BYTES, lzma2_dictionary
from pybundle.installer.verify import verify_bundle
from pybundle.manifest import SolidContainer, SolidEntry
from pybundle.signing import SecretKey

NAME = f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only"
LZMA2 = [{"id": py7zr.FILTER_LZMA2, "preset": 1, "dict_size": 1 << 20}]


def _seven_zip(
    entries: list[tuple[str, bytes]],
    filters: list[dict[str, Any]] = LZMA2,
    *,
    encoded: bool = False,
    password: str | None = None,
) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", filters=filters, password=password) as z:
        z.set_encoded_header_mode(encoded)
        for name, data in entries:
            z.writestr(data, name)
    return buf.getvalue()


def _fix_crcs(raw: bytearray) -> bytes:
    offset, size = struct.unpack_from("<QQ", raw, 12)
    struct.pack_into("<L", raw, 28, zlib.crc32(bytes(raw[32 + offset : 32 + offset + size])))
    struct.pack_into("<L", raw, 8, zlib.crc32(bytes(raw[12:32])))
    return bytes(raw)


@pytest.fixture
def tar_bytes(tmp_path: Path) -> tuple[Path, bytes]:
    import gzip

    archive = make_tar(tmp_path / f"{NAME}.tar.gz", tiny_interpreter_members())
    return archive, gzip.decompress(archive.read_bytes())


def _bundle(
    tmp_path: Path, key: SecretKey, archive: Path, tar: bytes, container: bytes,
    dictionary: int = 1 << 20,
) -> Path:  # fmt: skip
    """A signed compact bundle whose solid member is ``container`` and whose manifest says
    the entry holds ``tar``."""
    seven = tmp_path / "c.7z"
    seven.write_bytes(container)
    artifact = replace(
        tiny_artifact(archive),
        solid=SolidEntry(f"{NAME}.tar", len(tar), hashlib.sha256(tar).hexdigest()),
    )
    record = SolidContainer(
        member="archives/interpreters.7z", size=len(container),
        sha256=hashlib.sha256(container).hexdigest(), compression="lzma2",
        dictionary=dictionary, unpacked_size=len(tar),
    )  # fmt: skip
    out = tmp_path / "hostile.pybundle"
    write_bundle(out, [(artifact, archive)], secret_key=key, solid=(record, seven), force=True)
    return out


def _refused(tmp_path: Path, key: SecretKey, bundle: Path, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        verify_bundle(bundle, [key.public_key])
    dest = tmp_path / "installs"
    with pytest.raises(error, match=words):
        install_bundle(bundle, [key.public_key], install_dir=dest)
    assert not dest.exists() or not [p for p in dest.iterdir() if not p.name.startswith(".")]


def test_a_valid_container_installs(
    tmp_path: Path, signing_key: SecretKey, tar_bytes: tuple[Path, bytes]
) -> None:
    archive, tar = tar_bytes
    bundle = _bundle(tmp_path, signing_key, archive, tar, _seven_zip([(f"{NAME}.tar", tar)]))
    verify_bundle(bundle, [signing_key.public_key])
    (result,) = install_bundle(bundle, [signing_key.public_key], install_dir=tmp_path / "i")
    assert (result.path / "bin" / "python3.12").is_file()


@pytest.mark.parametrize(
    ("case", "error", "words"),
    [
        ("encoded-header", UnsafeArchiveError, "encoded"),
        ("zstd", UnsafeArchiveError, "method pybundle does not write"),
        ("bcj", UnsafeArchiveError, "method pybundle does not write"),
        ("copy", UnsafeArchiveError, "method pybundle does not write"),
        ("encrypted", UnsafeArchiveError, "encrypted"),
        ("extra-entry", ManifestError, "are not the manifest's"),
        ("renamed", ManifestError, "are not the manifest's"),
        ("other-tar", Exception, "sha256 is"),
        ("huge-dictionary", UnsafeArchiveError, "dictionary"),
        ("other-dictionary", ManifestError, "dictionary"),
        ("huge-header", UnsafeArchiveError, "header is"),
        ("trailing-bytes", UnsafeArchiveError, "does not end where the member ends"),
        ("payload-flip", UnsafeArchiveError, "cannot be read"),
        ("not-7z", UnsafeArchiveError, "not a 7z archive"),
    ],
)
def test_hostile_containers_are_refused(
    tmp_path: Path,
    signing_key: SecretKey,
    tar_bytes: tuple[Path, bytes],
    case: str,
    error: type,
    words: str,
) -> None:
    archive, tar = tar_bytes
    name = f"{NAME}.tar"
    dictionary = 1 << 20
    if case == "encoded-header":
        raw = _seven_zip([(name, tar)], encoded=True)
    elif case == "zstd":
        raw = _seven_zip([(name, tar)], [{"id": py7zr.FILTER_ZSTD, "level": 3}])
    elif case == "bcj":
        raw = _seven_zip([(name, tar)], [{"id": py7zr.FILTER_X86}, *LZMA2])
    elif case == "copy":
        raw = _seven_zip([(name, tar)], [{"id": py7zr.FILTER_COPY}])
    elif case == "encrypted":
        raw = _seven_zip(
            [(name, tar)], [*LZMA2, {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}], password="x"
        )
    elif case == "extra-entry":
        raw = _seven_zip([(name, tar), ("more.tar", tar)])
    elif case == "renamed":
        raw = _seven_zip([("other.tar", tar)])
    elif case == "other-tar":
        raw = _seven_zip([(name, tar.replace(b"fake python", b"evil python"))])
    elif case in ("huge-dictionary", "other-dictionary"):
        data = bytearray(_seven_zip([(name, tar)]))
        at = data.rfind(b"\x21\x01")  # LZMA2's id and its one property byte
        data[at + 2] = 40 if case == "huge-dictionary" else 22
        raw = _fix_crcs(data)
        if case == "huge-dictionary":
            dictionary = 1 << 30  # what a signer could claim: still refused
    elif case == "huge-header":
        data = bytearray(_seven_zip([(name, tar)]))
        struct.pack_into("<Q", data, 20, MAX_HEADER_BYTES + 1)
        struct.pack_into("<L", data, 8, zlib.crc32(bytes(data[12:32])))
        raw = bytes(data)
    elif case == "trailing-bytes":
        raw = _seven_zip([(name, tar)]) + b"\0" * 16
    elif case == "payload-flip":
        data = bytearray(_seven_zip([(name, tar)]))
        data[40] ^= 0x55
        raw = bytes(data)
    else:
        raw = b"PK\x03\x04" + bytes(200)
    bundle = _bundle(tmp_path, signing_key, archive, tar, raw, dictionary)
    _refused(tmp_path, signing_key, bundle, error, words)


def test_dictionary_property_bytes() -> None:
    assert lzma2_dictionary(0) == 4096
    assert lzma2_dictionary(18) == 2 * 1024 * 1024
    assert lzma2_dictionary(19) == 3 * 1024 * 1024
    assert lzma2_dictionary(40) == 0xFFFFFFFF
    with pytest.raises(ValueError):
        lzma2_dictionary(41)
