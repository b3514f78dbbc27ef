"""Behaviour of pybundle.signing, checked against the real minisign binary where possible."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from pybundle.errors import (
    AlreadyExistsError,
    KeyFileError,
    SignatureError,
    StorageError,
    UntrustedKeyError,
    UsageError,
)
from pybundle.signing import (
    MAX_SIGNATURE_BYTES,
    PublicKey,
    SecretKey,
    generate_secret_key,
    key_id_to_hex,
    load_public_key,
    load_secret_key,
    parse_public_key,
    parse_public_key_base64,
    parse_secret_key,
    parse_signature,
    prehash,
    prehash_file,
    sign,
    verify,
    verify_prehashed,
    write_keypair,
)

needs_minisign = pytest.mark.tool("minisign")

DATA = b"python-build-standalone bundle contents\n" * 100


def run_minisign(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    """Run minisign, fail the test with its output if it fails; return stdout + stderr."""
    proc = subprocess.run(
        ["minisign", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"minisign {' '.join(args)} failed: {output}"
    return output


def shown_id(key_id_hex: str) -> str:
    """Regex for a key id as minisign prints it: 0.11 drops leading zeros, 0.12 pads to 16."""
    return "0*" + (key_id_hex.lstrip("0") or "0") + r"\b"


@pytest.fixture
def minisign_keys(tmp_path: Path) -> tuple[Path, Path]:
    """An unencrypted key pair made by minisign itself: (secret key path, public key path)."""
    secret, public = tmp_path / "mk.key", tmp_path / "mk.pub"
    run_minisign("-G", "-W", "-p", str(public), "-s", str(secret))
    return secret, public


@pytest.fixture
def our_keys(tmp_path: Path) -> tuple[SecretKey, Path, Path]:
    """A key pair made by pybundle: (secret key, secret key path, public key path)."""
    secret, public = tmp_path / "keys" / "ours.key", tmp_path / "keys" / "ours.pub"
    key = write_keypair(secret, public)
    return key, secret, public


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


# --------------------------------------------------------------------------- interop


@needs_minisign
def test_minisign_verifies_our_keys_and_signature(
    our_keys: tuple[SecretKey, Path, Path], data_file: Path
) -> None:
    key, _secret_path, public_path = our_keys
    sig = sign(DATA, key, trusted_comment="pybundle test\twith a tab")
    Path(f"{data_file}.minisig").write_bytes(sig)

    output = run_minisign("-V", "-H", "-p", str(public_path), "-m", str(data_file))

    assert "Trusted comment: pybundle test\twith a tab" in output


@needs_minisign
def test_minisign_signs_with_our_secret_key_file(
    our_keys: tuple[SecretKey, Path, Path], data_file: Path
) -> None:
    key, secret_path, public_path = our_keys
    # No password prompt: minisign sees the key is unencrypted (stdin is empty anyway).
    run_minisign("-S", "-s", str(secret_path), "-m", str(data_file), "-t", "by minisign", stdin="")

    result = verify(
        DATA, Path(f"{data_file}.minisig").read_bytes(), [key.public_key], "file data.bin"
    )

    assert result.signature.trusted_comment == "by minisign"
    assert load_public_key(public_path) == key.public_key


@needs_minisign
def test_minisign_keys_and_signatures_load_and_verify(
    minisign_keys: tuple[Path, Path], data_file: Path
) -> None:
    secret_path, public_path = minisign_keys
    run_minisign("-S", "-s", str(secret_path), "-m", str(data_file), "-t", "release 1.0 é")

    public = load_public_key(public_path)
    result = verify(DATA, Path(f"{data_file}.minisig").read_bytes(), [public], "file data.bin")

    assert result.key == public
    assert result.signature.trusted_comment == "release 1.0 é"
    assert result.signature.algorithm == "ED"
    # minisign's public key comment is "minisign public key <KEY ID HEX>".
    comment = public_path.read_text().splitlines()[0]
    assert re.fullmatch(
        f"untrusted comment: minisign public key {shown_id(public.key_id_hex)}", comment
    )
    assert load_secret_key(secret_path).public_key == public


@needs_minisign
def test_key_id_hex_matches_minisign_output(tmp_path: Path, data_file: Path) -> None:
    key = generate_secret_key()
    secret_path = tmp_path / "k.key"
    secret_path.write_text(key.to_file_text())
    # A public key file whose key id disagrees makes minisign print both ids.
    other = replace(key.public_key, key_id=bytes(range(1, 9)))
    other_path = tmp_path / "other.pub"
    other_path.write_text(other.to_file_text())
    Path(f"{data_file}.minisig").write_bytes(sign(DATA, key, "x"))

    proc = subprocess.run(
        ["minisign", "-V", "-p", str(other_path), "-m", str(data_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert proc.returncode != 0
    assert re.search(f"minisig is {shown_id(key.key_id_hex)}", proc.stderr), proc.stderr
    assert re.search(f"public key is {shown_id('0807060504030201')}", proc.stderr), proc.stderr
    assert other.key_id_hex == "0807060504030201"
    assert key_id_to_hex(bytes.fromhex("1b116f9ff302b6e3")) == "E3B602F39F6F111B"


@needs_minisign
def test_minisign_recreates_our_public_key_from_our_secret_key(
    our_keys: tuple[SecretKey, Path, Path], tmp_path: Path
) -> None:
    key, secret_path, _public_path = our_keys
    recreated = tmp_path / "recreated.pub"
    run_minisign("-R", "-s", str(secret_path), "-p", str(recreated), stdin="")

    assert load_public_key(recreated) == key.public_key


@needs_minisign
def test_our_sign_with_minisign_secret_key_verifies_in_minisign(
    minisign_keys: tuple[Path, Path], data_file: Path
) -> None:
    secret_path, public_path = minisign_keys
    key = load_secret_key(secret_path)
    Path(f"{data_file}.minisig").write_bytes(sign(DATA, key, "signed by pybundle"))

    output = run_minisign("-V", "-H", "-p", str(public_path), "-m", str(data_file))

    assert "Trusted comment: signed by pybundle" in output


def test_round_trip_and_file_formats() -> None:
    key = generate_secret_key()
    public = key.public_key

    assert parse_secret_key(key.to_file_text(), "k") == key
    assert parse_public_key(public.to_file_text("my key"), "p") == public
    assert parse_public_key_base64(public.to_base64(), "p") == public
    assert public.to_file_text().startswith(
        f"untrusted comment: minisign public key {public.key_id_hex}\n"
    )
    assert key.seed.hex() not in repr(key)
    sig = sign(DATA, key, "tc", untrusted_comment="uc")
    lines = sig.decode().split("\n")
    assert len(lines) == 5 and lines[4] == ""
    assert lines[0] == "untrusted comment: uc"
    assert lines[2] == "trusted comment: tc"
    assert base64.b64decode(lines[1])[:2] == b"ED"
    parsed = parse_signature(sig, "sig")
    assert (parsed.key_id, parsed.trusted_comment, parsed.untrusted_comment) == (
        key.key_id,
        "tc",
        "uc",
    )
    assert parsed.key_id_hex == key.key_id_hex


def test_prehashed_helpers_agree(tmp_path: Path) -> None:
    key = generate_secret_key()
    path = tmp_path / "d"
    path.write_bytes(DATA)
    sig = sign(DATA, key, "tc")

    assert prehash_file(path) == prehash(DATA)
    assert verify_prehashed(prehash_file(path), sig, [key.public_key], "d").key == key.public_key


# --------------------------------------------------------------------------- refusals


@needs_minisign
def test_legacy_signature_is_refused(minisign_keys: tuple[Path, Path], data_file: Path) -> None:
    secret_path, public_path = minisign_keys
    run_minisign("-S", "-l", "-s", str(secret_path), "-m", str(data_file), "-t", "legacy")
    sig = Path(f"{data_file}.minisig").read_bytes()

    assert parse_signature(sig, "sig").algorithm == "Ed"
    with pytest.raises(SignatureError, match=r"legacy non-prehashed mode \(Ed\)") as info:
        verify(DATA, sig, [load_public_key(public_path)], "file data.bin")
    assert not isinstance(info.value, UntrustedKeyError)
    # The refusal comes before any trust decision: an unrelated trusted key still gets it.
    with pytest.raises(SignatureError, match="legacy") as info:
        verify(DATA, sig, [generate_secret_key().public_key], "file data.bin")
    assert not isinstance(info.value, UntrustedKeyError)
    with pytest.raises(SignatureError, match="legacy") as info:
        verify(DATA, sig, [], "file data.bin")
    assert not isinstance(info.value, UntrustedKeyError)


def test_unknown_key_is_refused_naming_both_key_ids() -> None:
    signer, other1, other2 = generate_secret_key(), generate_secret_key(), generate_secret_key()
    sig = sign(DATA, signer, "tc")

    with pytest.raises(UntrustedKeyError) as info:
        verify(DATA, sig, [other1.public_key, other2.public_key], "bundle py.pybundle")

    message = str(info.value)
    assert "bundle py.pybundle" in message
    assert signer.key_id_hex in message
    assert other1.key_id_hex in message and other2.key_id_hex in message


def test_empty_trusted_list_is_refused() -> None:
    signer = generate_secret_key()

    with pytest.raises(UntrustedKeyError, match="no trusted key") as info:
        verify(DATA, sign(DATA, signer, "tc"), [], "bundle py.pybundle")
    assert signer.key_id_hex in str(info.value)


def test_forged_key_id_fails_signature_check() -> None:
    trusted_key = generate_secret_key()
    attacker = SecretKey(key_id=trusted_key.key_id, seed=generate_secret_key().seed)
    sig = sign(DATA, attacker, "evil")

    with pytest.raises(SignatureError) as info:
        verify(DATA, sig, [trusted_key.public_key], "bundle py.pybundle")
    assert not isinstance(info.value, UntrustedKeyError)
    assert "does not verify" in str(info.value)


def test_flipped_bit_in_data_fails() -> None:
    key = generate_secret_key()
    sig = sign(DATA, key, "tc")
    tampered = bytearray(DATA)
    tampered[len(DATA) // 2] ^= 0x01

    with pytest.raises(SignatureError, match="does not verify"):
        verify(bytes(tampered), sig, [key.public_key], "bundle py.pybundle")


def test_edited_trusted_comment_fails() -> None:
    key = generate_secret_key()
    sig = sign(DATA, key, "version 1.0").replace(b"version 1.0", b"version 9.9")

    with pytest.raises(SignatureError, match="trusted comment was altered"):
        verify(DATA, sig, [key.public_key], "bundle py.pybundle")


def test_edited_untrusted_comment_is_ignored() -> None:
    key = generate_secret_key()
    sig = sign(DATA, key, "tc", untrusted_comment="a").replace(b"comment: a\n", b"comment: b\n")

    assert verify(DATA, sig, [key.public_key], "x").signature.untrusted_comment == "b"


def _good_sig() -> bytes:
    return sign(DATA, generate_secret_key(), "tc")


def _lines(sig: bytes) -> list[bytes]:
    return sig.split(b"\n")[:4]


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda s: b"\n".join(_lines(s)[:3]) + b"\n", "3 line"),
        (lambda s: s + b"extra\n", "5 line"),
        (lambda s: b"", "1 line"),
        (lambda s: s.replace(b"\n", b"\r\n"), "carriage return"),
        (lambda s: s.replace(b"untrusted comment: ", b"untrusted-comment: "), "line 1"),
        (lambda s: s.replace(b"trusted comment: tc", b"comment: tc"), "line 3"),
        (
            lambda s: (
                b"\n".join(
                    [
                        _lines(s)[0],
                        base64.b64encode(base64.b64decode(_lines(s)[1])[:-1]),
                        *_lines(s)[2:],
                    ]
                )
                + b"\n"
            ),
            "line 2 is not the base64 of 74 bytes",
        ),
        (
            lambda s: b"\n".join([_lines(s)[0], b"!!not base64!!", *_lines(s)[2:]]) + b"\n",
            "line 2",
        ),
        (
            lambda s: b"\n".join([*_lines(s)[:3], _lines(s)[3][:-4]]) + b"\n",
            "line 4",
        ),
        (
            lambda s: b"\n".join([_lines(s)[0], b"RX" + _lines(s)[1][2:], *_lines(s)[2:]]) + b"\n",
            "unknown signature algorithm",
        ),
        (lambda s: s.replace(b"trusted comment: tc", b"trusted comment: t\x1bc"), r"U\+001B"),
        (lambda s: s.replace(b"trusted comment: tc", b"trusted comment: \xff"), "UTF-8"),
        (lambda s: s + b" " * MAX_SIGNATURE_BYTES, "larger than the 65536 bytes"),
    ],
    ids=[
        "missing-line",
        "extra-line",
        "empty",
        "crlf",
        "bad-untrusted-prefix",
        "bad-trusted-prefix",
        "short-blob",
        "non-base64",
        "short-global-signature",
        "unknown-algorithm",
        "control-char",
        "not-utf8",
        "too-large",
    ],
)
def test_malformed_signatures_are_refused(mutate: object, pattern: str) -> None:
    key = generate_secret_key()
    good = sign(DATA, key, "tc")
    assert callable(mutate)
    bad = mutate(good)
    assert isinstance(bad, bytes) and bad != good

    with pytest.raises(SignatureError, match=pattern) as info:
        verify(DATA, bad, [key.public_key], "bundle py.pybundle")
    message = str(info.value)
    assert "bundle py.pybundle" in message
    assert "\n" not in message


def test_signature_without_final_newline_is_accepted() -> None:
    key = generate_secret_key()
    sig = sign(DATA, key, "tc")

    assert verify(DATA, sig.rstrip(b"\n"), [key.public_key], "x").signature.trusted_comment == "tc"


def test_non_canonical_base64_is_refused() -> None:
    key = generate_secret_key()
    lines = _lines(sign(DATA, key, "tc"))
    # The global signature is 64 bytes: base64 ends in "==" and the last data char has
    # 4 unused low bits; setting one of them gives the same bytes in a non-canonical form.
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = lines[3][-3]
    twisted = lines[3][:-3] + bytes([alphabet[alphabet.index(last) ^ 1]]) + b"=="
    assert base64.b64decode(twisted) == base64.b64decode(lines[3])

    with pytest.raises(SignatureError, match="line 4"):
        parse_signature(b"\n".join([*lines[:3], twisted]) + b"\n", "sig")


def test_bad_comments_are_refused_when_signing() -> None:
    key = generate_secret_key()

    with pytest.raises(UsageError, match="control character"):
        sign(DATA, key, "two\nlines")
    with pytest.raises(UsageError, match="bytes long"):
        sign(DATA, key, "x" * 9000)
    with pytest.raises(UsageError, match="control character"):
        sign(DATA, key, "tc", untrusted_comment="a\rb")


# --------------------------------------------------------------------------- key files


#: Cheap scrypt limits for tests that do not need minisign's defaults (N=2^14, r=8, p=1).
FAST_KDF = {"opslimit": 524288, "memlimit": 16777216}


@needs_minisign
def test_encrypted_minisign_key_reads_with_its_password(tmp_path: Path, data_file: Path) -> None:
    """``minisign -G`` (encrypted, minisign's default scrypt cost) -> pybundle signs with it."""
    secret, public = tmp_path / "enc.key", tmp_path / "enc.pub"
    run_minisign("-G", "-p", str(public), "-s", str(secret), stdin="hunter2\nhunter2\n")

    with pytest.raises(KeyFileError, match="is encrypted and no password was given") as info:
        load_secret_key(secret)
    assert str(secret) in str(info.value)
    with pytest.raises(KeyFileError, match="wrong password"):
        load_secret_key(secret, "hunter3")
    asked: list[str] = []
    key = load_secret_key(secret, lambda: asked.append("asked") or "hunter2")
    assert asked == ["asked"]
    assert key.public_key == load_public_key(public)
    Path(f"{data_file}.minisig").write_bytes(sign(DATA, key, trusted_comment="signed by pybundle"))
    output = run_minisign("-V", "-H", "-p", str(public), "-m", str(data_file))
    assert "Trusted comment: signed by pybundle" in output


@needs_minisign
def test_minisign_signs_with_our_encrypted_key(tmp_path: Path, data_file: Path) -> None:
    """pybundle's encrypted key (minisign's default cost) -> ``minisign -S`` asks for the
    password and signs; a wrong password is refused by minisign too."""
    secret, public = tmp_path / "ours.key", tmp_path / "ours.pub"
    key = write_keypair(secret, public, password="correct horse")
    assert secret.read_text().startswith("untrusted comment: minisign encrypted secret key ")
    blob = base64.b64decode(secret.read_text().split("\n")[1])
    assert blob[2:4] == b"Sc" and int.from_bytes(blob[38:46], "little") == 33554432

    bad = subprocess.run(
        ["minisign", "-S", "-s", str(secret), "-m", str(data_file)],
        input="wrong\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "Wrong password" in bad.stdout + bad.stderr
    run_minisign("-S", "-s", str(secret), "-m", str(data_file), "-t", "t", stdin="correct horse\n")
    result = verify(DATA, Path(f"{data_file}.minisig").read_bytes(), [key.public_key], "data")
    assert result.signature.trusted_comment == "t"
    assert load_secret_key(secret, "correct horse") == key


def test_encrypted_key_round_trip_and_tampering() -> None:
    key = generate_secret_key()
    text = key.to_file_text(password="pw é", **FAST_KDF)
    assert parse_secret_key(text, "k", "pw é") == key
    assert parse_secret_key(text, "k", "pw é".encode()) == key
    assert text != key.to_file_text(password="pw é", **FAST_KDF)  # a fresh salt each time
    lines = text.split("\n")
    blob = bytearray(base64.b64decode(lines[1]))

    def with_blob(new: bytes) -> str:
        return f"{lines[0]}\n{base64.b64encode(new).decode()}\n"

    flipped = bytearray(blob)
    flipped[-40] ^= 1  # inside the encrypted seed: the checksum no longer matches
    with pytest.raises(KeyFileError, match="wrong password"):
        parse_secret_key(with_blob(bytes(flipped)), "k", "pw é")
    with pytest.raises(UsageError, match="empty password"):
        key.to_file_text(password="")


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [(2**40, 2**40), (2**62, 33554432), (2**27, 2**40), (2**63 - 1, 2**63 - 1)],
)
def test_hostile_scrypt_limits_are_refused_before_the_password_is_asked(
    opslimit: int, memlimit: int
) -> None:
    lines = generate_secret_key().to_file_text(password="x", **FAST_KDF).split("\n")
    blob = bytearray(base64.b64decode(lines[1]))
    blob[38:46] = opslimit.to_bytes(8, "little")
    blob[46:54] = memlimit.to_bytes(8, "little")
    text = f"{lines[0]}\n{base64.b64encode(bytes(blob)).decode()}\n"

    def never() -> str:
        raise AssertionError("the password must not be asked for")

    with pytest.raises(KeyFileError, match="scrypt parameters"):
        parse_secret_key(text, "k", never)


def test_scrypt_parameters_follow_libsodium() -> None:
    from pybundle.signing import scrypt_parameters

    assert scrypt_parameters(33554432, 1073741824) == (2**20, 8, 1)  # minisign's default
    assert scrypt_parameters(524288, 16777216) == (2**14, 8, 1)
    assert scrypt_parameters(16384, 2**30) == (2**10, 8, 1)  # ops-bound: p = 1
    assert scrypt_parameters(2**28, 2**24) == (2**14, 8, 512)  # memory-bound: p grows


def test_constructed_encrypted_key_needs_a_password() -> None:
    lines = generate_secret_key().to_file_text().split("\n")
    blob = bytearray(base64.b64decode(lines[1]))
    blob[2:4] = b"Sc"
    text = f"{lines[0]}\n{base64.b64encode(bytes(blob)).decode()}\n"

    with pytest.raises(KeyFileError, match="is encrypted"):
        parse_secret_key(text, "secret key file k.key")


def test_secret_key_checksum_and_consistency_are_checked() -> None:
    key = generate_secret_key()
    lines = key.to_file_text().split("\n")
    blob = base64.b64decode(lines[1])

    def with_blob(new: bytes) -> str:
        return f"{lines[0]}\n{base64.b64encode(new).decode()}\n"

    bad_checksum = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyFileError, match="checksum"):
        parse_secret_key(with_blob(bad_checksum), "k")
    # Flip a bit of the seed: the checksum no longer matches.
    seed_at = 2 + 2 + 2 + 32 + 8 + 8 + 8
    bad_seed = bytearray(blob)
    bad_seed[seed_at] ^= 1
    with pytest.raises(KeyFileError, match="checksum"):
        parse_secret_key(with_blob(bytes(bad_seed)), "k")
    # Same, with minisign -G -W's all-zero checksum: the public half catches it.
    bad_seed[-32:] = bytes(32)
    with pytest.raises(KeyFileError, match="public half"):
        parse_secret_key(with_blob(bytes(bad_seed)), "k")
    zero_checksum = blob[:-32] + bytes(32)
    assert parse_secret_key(with_blob(zero_checksum), "k") == key


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("untrusted comment: x\n", "1 line"),
        ("untrusted comment: x\r\nRWQ=\r\n", "carriage return"),
        ("comment: x\nRWQ=\n", "line 1"),
        ("untrusted comment: x\nnot base64\n", "base64 of 42 bytes"),
        ("x" * 5000, "larger than"),
    ],
)
def test_malformed_public_keys_are_refused(text: str, pattern: str) -> None:
    with pytest.raises(KeyFileError, match=pattern):
        parse_public_key(text, "public key file k.pub")


def test_public_key_with_other_algorithm_is_refused() -> None:
    public = generate_secret_key().public_key
    blob = b"XX" + public.key_id + public.public_bytes
    text = f"untrusted comment: x\n{base64.b64encode(blob).decode()}\n"

    with pytest.raises(KeyFileError, match="only Ed25519"):
        parse_public_key(text, "k.pub")


def test_load_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read public key file"):
        load_public_key(tmp_path / "missing.pub")
    big = tmp_path / "big.key"
    big.write_bytes(b"x" * 10_000)
    with pytest.raises(KeyFileError, match="larger than 4096"):
        load_secret_key(big)


# --------------------------------------------------------------------------- write_keypair


def test_write_keypair_modes_and_parents(tmp_path: Path) -> None:
    secret, public = tmp_path / "a" / "b" / "k.key", tmp_path / "c" / "k.pub"
    key = write_keypair(secret, public)

    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert load_secret_key(secret) == key
    assert load_public_key(public) == key.public_key
    assert sorted(p.name for p in secret.parent.iterdir()) == ["k.key"]  # no temp left


def test_write_keypair_refuses_to_overwrite(tmp_path: Path) -> None:
    secret, public = tmp_path / "k.key", tmp_path / "k.pub"
    public.write_text("keep me")

    with pytest.raises(AlreadyExistsError, match=str(public)):
        write_keypair(secret, public)
    assert not secret.exists()
    assert public.read_text() == "keep me"

    public.unlink()
    secret.write_text("keep me too")
    with pytest.raises(AlreadyExistsError, match=str(secret)):
        write_keypair(secret, public)
    assert secret.read_text() == "keep me too"
    assert not public.exists()


def test_write_keypair_force_overwrites_with_mode_0600(tmp_path: Path) -> None:
    secret, public = tmp_path / "k.key", tmp_path / "k.pub"
    first = write_keypair(secret, public)
    os.chmod(secret, 0o666)

    second = write_keypair(secret, public, force=True)

    assert second != first
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert load_secret_key(secret) == second
    assert load_public_key(public) == second.public_key


def test_write_keypair_storage_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")

    with pytest.raises(StorageError, match=re.escape(str(not_a_dir / "k.key"))):
        write_keypair(not_a_dir / "k.key", tmp_path / "k.pub")
    assert not (tmp_path / "k.pub").exists()


def test_public_key_dataclass_checks_lengths() -> None:
    with pytest.raises(ValueError):
        PublicKey(b"short", bytes(32))
    with pytest.raises(ValueError):
        SecretKey(bytes(8), bytes(31))
