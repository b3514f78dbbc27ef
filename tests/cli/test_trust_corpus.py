"""The signature and manifest corpus of hostile bundles, built in tmp dirs and signed with a
test key where the attack needs a valid signature. Every case goes through the real CLI and
must end with its exit code, one line naming the file, and the install dir unchanged."""

from __future__ import annotations

import base64
import json
import subprocess
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_refusals import assert_refused, install, snapshot

from conftest import run_cli
from pybundle.bundler.pack import trusted_comment_for
from pybundle.manifest import Manifest, format_timestamp
from pybundle.signing import SecretKey, generate_secret_key, sign


def members_of(bundle: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(bundle) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def assemble(
    path: Path,
    manifest: bytes,
    signature: bytes | None,
    archives: list[tuple[str, bytes]],
    extra: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
) -> Path:
    """Write a bundle zip from parts, in the canonical member order."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("pybundle.json", manifest)
        if signature is not None:
            zf.writestr("pybundle.json.minisig", signature)
        for name, data in [*archives, *extra]:
            zf.writestr(name, data)
    return path


class Parts:
    """A valid tiny bundle taken apart: manifest document, archives, and the signing key."""

    def __init__(self, bundle: Path, key: SecretKey) -> None:
        parts = members_of(bundle)
        self.doc = json.loads(parts[0][1])
        self.archives = [(i.filename, d) for i, d in parts if i.filename.startswith("archives/")]
        self.key = key

    def manifest_bytes(self) -> bytes:
        return (json.dumps(self.doc, indent=2) + "\n").encode()

    def comment(self) -> str:
        return f"pybundle bundle_id={self.doc['bundle_id']} serial={self.doc['serial']} created=x"

    def build(
        self,
        path: Path,
        *,
        key: SecretKey | None = None,
        mutate_signature: Callable[[bytes], bytes] | None = None,
        extra: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    ) -> Path:
        data = self.manifest_bytes()
        sig = sign(data, key or self.key, self.comment())
        if mutate_signature is not None:
            sig = mutate_signature(sig)
        return assemble(path, data, sig, self.archives, extra)


@pytest.fixture
def parts(tiny_bundle, signing_key: SecretKey) -> Parts:  # type: ignore[no-untyped-def]
    return Parts(tiny_bundle(), signing_key)


@pytest.fixture
def installs(tmp_path: Path) -> Path:
    root = tmp_path / "installs"
    (root / "cpython-3.11.9-linux-x86_64-gnu").mkdir(parents=True)
    (root / "cpython-3.11.9-linux-x86_64-gnu" / "keep").write_text("earlier install")
    return root


def refused(bundle: Path, pub: Path, installs: Path, code: int, *needles: str) -> None:
    before = snapshot(installs)
    assert_refused(install(bundle, pub, installs), code, installs, before, str(bundle), *needles)


def _sig_lines(sig: bytes) -> list[bytes]:
    return sig.split(b"\n")


def _with_key_id(sig: bytes, key_id: bytes) -> bytes:
    lines = _sig_lines(sig)
    blob = bytearray(base64.b64decode(lines[1]))
    blob[2:10] = key_id
    lines[1] = base64.b64encode(bytes(blob))
    return b"\n".join(lines)


def test_unknown_key_message_shows_both_key_ids(
    parts: Parts, key_files, installs, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    other = generate_secret_key()
    bundle = parts.build(tmp_path / "other.pybundle", key=other)
    refused(
        bundle,
        key_files[1],
        installs,
        5,
        other.public_key.key_id_hex,
        parts.key.public_key.key_id_hex,
    )


def test_second_key_claiming_the_trusted_key_id(
    parts: Parts, key_files, installs, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    impostor = generate_secret_key()
    bundle = parts.build(
        tmp_path / "impostor.pybundle",
        key=impostor,
        mutate_signature=lambda s: _with_key_id(s, parts.key.key_id),
    )
    refused(bundle, key_files[1], installs, 5, "does not verify")


def test_one_bit_flipped_in_the_manifest(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(parts.manifest_bytes())
    sig = sign(bytes(data), parts.key, parts.comment())
    data[len(data) // 2] ^= 0x04
    bundle = assemble(tmp_path / "flip.pybundle", bytes(data), sig, parts.archives)
    refused(bundle, key_files[1], installs, 5, "does not verify")


def test_trusted_comment_edited(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def edit(sig: bytes) -> bytes:
        lines = _sig_lines(sig)
        lines[2] = lines[2].replace(b"serial=", b"serial=9")
        return b"\n".join(lines)

    bundle = parts.build(tmp_path / "comment.pybundle", mutate_signature=edit)
    refused(bundle, key_files[1], installs, 5, "trusted comment")


@pytest.mark.tool("minisign")
def test_legacy_minisign_signature_is_refused(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "m.json"
    manifest.write_bytes(parts.manifest_bytes())
    subprocess.run(
        [
            "minisign",
            "-S",
            "-l",
            "-s",
            str(key_files[0]),
            "-m",
            str(manifest),
            "-t",
            parts.comment(),
        ],
        check=True,
        capture_output=True,
        input=b"",
    )
    sig = (tmp_path / "m.json.minisig").read_bytes()
    bundle = assemble(tmp_path / "legacy.pybundle", manifest.read_bytes(), sig, parts.archives)
    refused(bundle, key_files[1], installs, 5, "legacy")


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "missing-line": lambda s: b"\n".join(_sig_lines(s)[:3]) + b"\n",
    "short-blob": lambda s: b"\n".join(
        [
            _sig_lines(s)[0],
            base64.b64encode(base64.b64decode(_sig_lines(s)[1])[:40]),
            *_sig_lines(s)[2:],
        ]
    ),
    "non-base64": lambda s: b"\n".join([_sig_lines(s)[0], b"!!not base64!!", *_sig_lines(s)[2:]]),
    "crlf": lambda s: s.replace(b"\n", b"\r\n"),
    "ten-megabytes": lambda s: s + b"A" * (10 * 1024 * 1024),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_signature_files(parts: Parts, key_files, installs, tmp_path, case: str) -> None:  # type: ignore[no-untyped-def]
    bundle = parts.build(tmp_path / f"{case}.pybundle", mutate_signature=MALFORMED[case])
    refused(bundle, key_files[1], installs, 5, "signature")


def test_key_shipped_inside_the_bundle_is_not_trusted(
    parts: Parts, key_files, installs, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    evil = generate_secret_key()
    shipped = [("trusted-keys/evil.pub", evil.public_key.to_file_text().encode())]
    bundle = parts.build(tmp_path / "shipped.pybundle", key=evil, extra=shipped)
    refused(bundle, key_files[1], installs, 5, evil.public_key.key_id_hex, "not trusted")
    before = snapshot(installs)
    proc = run_cli("install", "--from", str(bundle), "--install-dir", str(installs))
    assert_refused(proc, 5, installs, before, "no trusted key")


def _resigned(parts: Parts, path: Path, **changes: object) -> Path:
    parts.doc.update(changes)
    return parts.build(path)


def test_expired_bundle(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    past = format_timestamp(datetime.now(timezone.utc) - timedelta(days=1))
    bundle = _resigned(parts, tmp_path / "expired.pybundle", expires=past)
    refused(bundle, key_files[1], installs, 5, "expired")
    verify = run_cli("verify", str(bundle), "--trusted-key", str(key_files[1]))
    assert verify.returncode == 5 and "expired" in verify.stderr
    ok = install(bundle, key_files[1], installs, "--allow-expired")
    assert ok.returncode == 0, ok.stderr


def test_created_in_the_future(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    future = format_timestamp(datetime.now(timezone.utc) + timedelta(days=2))
    bundle = _resigned(parts, tmp_path / "future.pybundle", created=future)
    refused(bundle, key_files[1], installs, 5, "future")


def test_older_serial_after_a_newer_one(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    newer = _resigned(parts, tmp_path / "newer.pybundle", serial=200)
    assert install(newer, key_files[1], installs).returncode == 0
    older = _resigned(parts, tmp_path / "older.pybundle", serial=100)
    refused(older, key_files[1], installs, 5, "serial 100", "serial 200")
    ok = install(older, key_files[1], installs, "--allow-downgrade", "--force")
    assert ok.returncode == 0, ok.stderr
    # the same serial again (a reinstall) is not a downgrade
    again = install(newer, key_files[1], installs, "--force")
    assert again.returncode == 0, again.stderr


def test_hundred_megabyte_manifest(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    big = parts.manifest_bytes()[:-2] + b" " * (100 * 1024 * 1024) + b"}\n"
    sig = sign(parts.manifest_bytes(), parts.key, parts.comment())
    bundle = assemble(tmp_path / "big.pybundle", big, sig, parts.archives)
    refused(bundle, key_files[1], installs, 5, "bytes allowed")


def test_manifest_failing_the_schema(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    parts.doc["artifacts"][0]["os"] = "plan9"
    bundle = parts.build(tmp_path / "schema.pybundle")
    refused(bundle, key_files[1], installs, 5, "fails the schema")


def test_manifest_naming_an_absent_member(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = parts.manifest_bytes()
    sig = sign(data, parts.key, parts.comment())
    bundle = assemble(tmp_path / "absent.pybundle", data, sig, [])
    refused(bundle, key_files[1], installs, 5, "not in the bundle")


def test_archive_swapped_in_from_another_valid_bundle(
    tiny_bundle, parts: Parts, key_files, installs, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from conftest import tar_file, tiny_interpreter_members

    other = Parts(
        tiny_bundle("other.pybundle", members=[*tiny_interpreter_members(), tar_file("python/x")]),
        parts.key,
    )
    swapped = [(parts.archives[0][0], other.archives[0][1])]
    data = parts.manifest_bytes()
    bundle = assemble(
        tmp_path / "swapped.pybundle", data, sign(data, parts.key, parts.comment()), swapped
    )
    refused(bundle, key_files[1], installs, 5)


def test_manifest_round_trip_keeps_trusted_comment_binding(parts: Parts) -> None:
    manifest = Manifest.from_bytes(parts.manifest_bytes(), "x")
    assert f"bundle_id={manifest.bundle_id}" in trusted_comment_for(manifest)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [("unpacked_size", 10, "budget of 10 bytes"), ("file_count", 2, "budget of 2 members")],
)
def test_archive_larger_than_the_manifest_budget(
    parts: Parts, key_files, installs, tmp_path, field: str, value: int, needle: str
) -> None:  # type: ignore[no-untyped-def]
    parts.doc["artifacts"][0][field] = value
    bundle = parts.build(tmp_path / f"budget-{field}.pybundle")
    refused(bundle, key_files[1], installs, 6, needle)


def test_manifest_nested_200000_levels_deep(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    deep = b'{"a":' * 200_000 + b"1" + b"}" * 200_000
    bundle = assemble(tmp_path / "deep.pybundle", deep, None, parts.archives)
    for command in (("inspect", str(bundle)), ("inspect", "--json", str(bundle))):
        proc = run_cli(*command)
        assert proc.returncode == 5 and "nested too deeply" in proc.stderr, proc.stderr
    data = b"[" * 200_000 + b"]" * 200_000
    bundle = assemble(tmp_path / "deep2.pybundle", data, sign(data, parts.key, "c"), [])
    refused(bundle, key_files[1], installs, 5, "nested too deeply")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("serial", 1.0, "not an integer"),
        ("serial", "NaN", "not valid JSON"),
        ("build_prefix", "/opt/py\nthon", "build_prefix"),
        ("build_prefix", "/", "build_prefix"),
        ("source", {"url": "https://x/\x1b[2Jevil"}, "source"),
        ("size", 2**70, "size"),
    ],
)
def test_manifest_fields_the_installer_relies_on(
    parts: Parts, key_files, installs, tmp_path, field: str, value: object, needle: str
) -> None:  # type: ignore[no-untyped-def]
    target = parts.doc if field == "serial" else parts.doc["artifacts"][0]
    target[field] = value
    data = parts.manifest_bytes()
    if value == "NaN":
        data = data.replace(b'"NaN"', b"NaN")
    bundle = assemble(
        tmp_path / "field.pybundle", data, sign(data, parts.key, parts.comment()), parts.archives
    )
    refused(bundle, key_files[1], installs, 5, needle)


def test_duplicate_keys_in_the_manifest(parts: Parts, key_files, installs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two readers could disagree on which of two "version" keys counts: refuse both."""
    data = parts.manifest_bytes().replace(
        b'"version": "3.12.1"', b'"version": "3.12.1", "version": "3.9.0"'
    )
    bundle = assemble(
        tmp_path / "dup.pybundle", data, sign(data, parts.key, parts.comment()), parts.archives
    )
    refused(bundle, key_files[1], installs, 5, "appears twice")
