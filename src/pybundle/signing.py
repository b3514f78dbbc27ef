"""Ed25519 keys and signatures in minisign's file formats.

Everything here reads and writes the formats described by minisign's documentation
(https://jedisct1.github.io/minisign/, section "Signature format") and produced by the
``minisign`` tool itself, so that keys and signatures are interchangeable with it:

* public key file (``.pub``), two LF-terminated lines::

      untrusted comment: <text>
      base64( "Ed" | key id (8 bytes) | Ed25519 public key (32 bytes) )

* secret key file (``.key``), two LF-terminated lines; the blob is 158 bytes::

      untrusted comment: <text>
      base64( "Ed" | kdf alg (2) | "B2" | kdf salt (32) | kdf opslimit (8, LE)
              | kdf memlimit (8, LE) | key id (8) | secret key (64 = seed + public key)
              | checksum (32) )

  where checksum = BLAKE2b-256("Ed" | key id | secret key). With kdf alg ``"Sc"`` (what
  ``minisign -G`` writes by default) the last 104 bytes (key id, secret key, checksum) are
  XORed with 104 bytes of scrypt(password, kdf salt), whose cost parameters N, r, p are derived
  from the stored opslimit and memlimit the way libsodium's
  ``crypto_pwhash_scryptsalsa208sha256`` derives them (:func:`scrypt_parameters`; minisign
  stores libsodium's ``OPSLIMIT_SENSITIVE`` 33554432 and ``MEMLIMIT_SENSITIVE`` 1073741824:
  N = 2^20, r = 8, p = 1, 1 GiB of memory). The checksum is computed before encryption, so a
  wrong password shows as a checksum mismatch. kdf alg ``"\\0\\0"`` means unencrypted (salt and
  limits zero). pybundle reads both and writes either (sources: minisign's ``src/minisign.c``
  ``decrypt_key``/``encrypt_key``, libsodium's ``pwhash_scryptsalsa208sha256.c``).

* signature file (``.minisig``), four LF-terminated lines::

      untrusted comment: <text>
      base64( "ED" | key id (8) | Ed25519 signature of BLAKE2b-512(data) (64) )
      trusted comment: <text>
      base64( Ed25519 signature of (the 64-byte signature above | trusted comment bytes) )

  ``"Ed"`` instead of ``"ED"`` marks minisign's legacy mode, which signs the raw data
  instead of its BLAKE2b-512 digest; pybundle never produces it and refuses it on verify.

A key id is 8 random bytes chosen at key generation. minisign displays it as the 8 bytes
read as a little-endian unsigned 64-bit integer, in 16 upper-case hex digits, e.g.
``E3B602F39F6F111B`` for the stored bytes ``1b 11 6f 9f f3 02 b6 e3``; see
:func:`key_id_to_hex`.

Compatibility notes on minisign 0.11 (checked against the real binary):

* ``minisign -G -W`` leaves the checksum of an unencrypted secret key as 32 zero bytes and
  does not check it when loading. pybundle therefore accepts an all-zero checksum on read
  (any other checksum must be correct), always checks that the stored public half matches
  the one derived from the seed, and writes the real checksum.
* minisign itself tolerates CR characters in signature and key files; pybundle refuses them,
  so that exactly one byte sequence is accepted for a given signature.
* minisign's default trusted comment contains TAB characters
  (``timestamp:<n>\\tfile:<name>\\thashed``), so TAB is the one control character allowed in
  comments.

This module is shared vocabulary: it imports neither the bundler, the installer nor the CLI.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pybundle.errors import (
    AlreadyExistsError,
    KeyFileError,
    SignatureError,
    StorageError,
    UntrustedKeyError,
    UsageError,
)

__all__ = [
    "KDF_MEMLIMIT_SENSITIVE",
    "KDF_OPSLIMIT_SENSITIVE",
    "MAX_KDF_MEMORY",
    "MAX_KDF_WORK",
    "MAX_KEY_FILE_BYTES",
    "PasswordSource",
    "MAX_SIGNATURE_BYTES",
    "MAX_TRUSTED_COMMENT_BYTES",
    "MAX_UNTRUSTED_COMMENT_BYTES",
    "PublicKey",
    "SecretKey",
    "Signature",
    "VerifiedSignature",
    "generate_secret_key",
    "key_id_to_hex",
    "load_public_key",
    "load_secret_key",
    "parse_public_key",
    "parse_public_key_base64",
    "parse_secret_key",
    "parse_signature",
    "prehash",
    "scrypt_parameters",
    "prehash_file",
    "sign",
    "sign_prehashed",
    "verify",
    "verify_prehashed",
    "write_keypair",
]

MAX_SIGNATURE_BYTES = 64 * 1024
"""Largest signature file parsed, in bytes; larger input is refused before parsing."""

MAX_KEY_FILE_BYTES = 4 * 1024
"""Largest public or secret key file parsed, in bytes."""

MAX_UNTRUSTED_COMMENT_BYTES = 1003
"""Longest untrusted comment, in UTF-8 bytes: minisign reads the comment line into a
1024-byte buffer (prefix, text, newline and NUL must fit)."""

MAX_TRUSTED_COMMENT_BYTES = 8173
"""Longest trusted comment, in UTF-8 bytes: minisign's limit (8192-byte buffer, the
``trusted comment: `` prefix, newline and NUL must fit)."""

UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "

SIG_ALG = b"Ed"
"""Signature algorithm bytes in keys, and in legacy (non-prehashed) signatures."""
SIG_ALG_PREHASHED = b"ED"
"""Signature algorithm bytes of prehashed signatures (Ed25519 over BLAKE2b-512(data))."""
KDF_NONE = b"\x00\x00"
KDF_SCRYPT = b"Sc"
CHK_ALG = b"B2"
KDF_OPSLIMIT_SENSITIVE = 33554432
"""libsodium's ``crypto_pwhash_scryptsalsa208sha256_OPSLIMIT_SENSITIVE``: minisign's default."""
KDF_MEMLIMIT_SENSITIVE = 1073741824
"""libsodium's ``crypto_pwhash_scryptsalsa208sha256_MEMLIMIT_SENSITIVE`` (bytes): minisign's."""
MAX_KDF_MEMORY = 2 * 1024**3
"""The most memory (bytes) a key file may make scrypt use; more is refused as hostile."""
MAX_KDF_WORK = 4 * 2**20 * 8
"""The most scrypt work (N * r * p) a key file may ask for: 4 times minisign's default."""

KEY_ID_BYTES = 8
PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64
CHECKSUM_BYTES = 32
KDF_SALT_BYTES = 32

_PUBLIC_BLOB_BYTES = 2 + KEY_ID_BYTES + PUBLIC_KEY_BYTES  # 42
_SECRET_BLOB_BYTES = 2 + 2 + 2 + KDF_SALT_BYTES + 8 + 8 + KEY_ID_BYTES + 64 + CHECKSUM_BYTES  # 158
_ENCRYPTED_BYTES = KEY_ID_BYTES + 64 + CHECKSUM_BYTES  # 104: minisign's KeynumSK
_SIGNATURE_BLOB_BYTES = 2 + KEY_ID_BYTES + SIGNATURE_BYTES  # 74

_PREHASH_CHUNK = 1024 * 1024


# --------------------------------------------------------------------------- helpers


def key_id_to_hex(key_id: bytes) -> str:
    """Format an 8-byte key id as minisign displays it: 16 upper-case hex digits.

    minisign prints the stored bytes read as a little-endian u64 (``%016llX``), i.e. the
    bytes in reverse order. Raises ValueError if ``key_id`` is not 8 bytes.
    """
    if len(key_id) != KEY_ID_BYTES:
        raise ValueError(f"a minisign key id is {KEY_ID_BYTES} bytes, not {len(key_id)}")
    return f"{int.from_bytes(key_id, 'little'):016X}"


def _b64encode(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _b64decode_exact(text: str, length: int) -> bytes | None:
    """Decode canonical standard base64 of exactly ``length`` bytes, or return None."""
    try:
        blob = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    if len(blob) != length or _b64encode(blob) != text:
        return None
    return blob


def _comment_problem(text: str, max_bytes: int) -> str | None:
    """Return why ``text`` is not an acceptable comment, or None if it is."""
    for char in text:
        if char == "\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            return f"contains the control character U+{ord(char):04X}"
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        return f"is {size} bytes long, more than the {max_bytes} minisign accepts"
    return None


def _as_text(
    data: str | bytes, source: str, what: str, max_bytes: int, error: type[Exception]
) -> str:
    """Check size, UTF-8 and LF-only line endings; return the text."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise error(
            f"{source} is {size} bytes, larger than the {max_bytes} bytes allowed for {what}"
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{source} is not UTF-8 text, so it is not {what}") from None
    else:
        text = data
    if "\r" in text:
        raise error(
            f"{source} contains a carriage return (CRLF line endings?); "
            f"only LF-terminated {what} files are accepted"
        )
    return text


def _split_lines(
    text: str, count: int, source: str, what: str, error: type[Exception]
) -> list[str]:
    """Split ``text`` into exactly ``count`` LF-separated lines (one final LF optional)."""
    body = text[:-1] if text.endswith("\n") else text
    lines = body.split("\n")
    if len(lines) != count:
        raise error(f"{source} has {len(lines)} line(s) where {what} has exactly {count}")
    return lines


def _comment_after(
    lines: list[str],
    index: int,
    prefix: str,
    max_bytes: int,
    source: str,
    what: str,
    error: type[Exception],
) -> str:
    line = lines[index]
    if not line.startswith(prefix):
        raise error(f'{source} is not {what}: line {index + 1} should start with "{prefix}"')
    comment = line[len(prefix) :]
    problem = _comment_problem(comment, max_bytes)
    if problem is not None:
        raise error(f'{source} is not {what}: its "{prefix.rstrip(": ")}" {problem}')
    return comment


def _public_from_seed(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def _secret_checksum(key_id: bytes, seed: bytes, public_bytes: bytes) -> bytes:
    data = SIG_ALG + key_id + seed + public_bytes
    return hashlib.blake2b(data, digest_size=CHECKSUM_BYTES).digest()


def scrypt_parameters(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """scrypt's ``(N, r, p)`` for a key file's opslimit and memlimit (bytes), exactly as
    libsodium's ``crypto_pwhash_scryptsalsa208sha256`` picks them (``pickparams``), which is
    what minisign calls. ``opslimit`` is raised to 32768 first; r = 8; the bound B is
    ``opslimit / (4 r)`` when ``opslimit < memlimit / 32`` (then p = 1), else
    ``memlimit / (128 r)`` (then p = ``min(opslimit / 4 / N, 2^30 - 1) / r``); N = 2^e for the
    first e >= 1 with 2^e > B / 2 (integer divisions throughout)."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
    else:
        max_n = memlimit // (r * 128)
    n_log2 = 1
    while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
        n_log2 += 1
    if not opslimit < memlimit // 32:
        max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
        p = max_rp // r
    return 1 << n_log2, r, p


def _kdf_parameters(opslimit: int, memlimit: int, source: str) -> tuple[int, int, int]:
    """:func:`scrypt_parameters`, refused (KeyFileError) when they would need more than
    :data:`MAX_KDF_MEMORY` bytes or :data:`MAX_KDF_WORK` work (a hostile or broken key file)."""
    n, r, p = scrypt_parameters(opslimit, memlimit)
    if p < 1 or 128 * r * (n + p) > MAX_KDF_MEMORY or n * r * p > MAX_KDF_WORK:
        raise KeyFileError(
            f"{source} asks for scrypt parameters N={n}, r={r}, p={p} beyond what pybundle "
            f"accepts ({MAX_KDF_MEMORY} bytes of memory, 4 times minisign's default work)"
        )
    return n, r, p


def _key_stream(password: bytes, salt: bytes, opslimit: int, memlimit: int, source: str) -> bytes:
    """The 104 bytes XORed over an encrypted key's key id, secret key and checksum.

    Raises KeyFileError for refused parameters (:func:`_kdf_parameters`) or a failing scrypt.
    """
    n, r, p = _kdf_parameters(opslimit, memlimit, source)
    try:
        return Scrypt(salt=salt, length=_ENCRYPTED_BYTES, n=n, r=r, p=p).derive(password)
    except (ValueError, MemoryError) as exc:
        raise KeyFileError(f"{source}: scrypt failed: {exc}") from exc


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream))


PasswordSource = Union[str, bytes, Callable[[], Union[str, bytes]], None]
"""A key password: the text itself, a function asked only when the key is encrypted (e.g. a
prompt), or None (no password: an encrypted key is then refused)."""


def _password_bytes(password: str | bytes) -> bytes:
    return password.encode("utf-8") if isinstance(password, str) else password


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class PublicKey:
    """A minisign Ed25519 public key.

    ``key_id`` is the 8-byte key id in stored (file) byte order; ``public_bytes`` is the
    32-byte raw Ed25519 public key. Construction raises ValueError on wrong lengths.
    """

    key_id: bytes
    public_bytes: bytes

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_BYTES:
            raise ValueError(f"key id must be {KEY_ID_BYTES} bytes, got {len(self.key_id)}")
        if len(self.public_bytes) != PUBLIC_KEY_BYTES:
            raise ValueError(
                f"Ed25519 public key must be {PUBLIC_KEY_BYTES} bytes, got {len(self.public_bytes)}"
            )

    @property
    def key_id_hex(self) -> str:
        """Key id as minisign displays it: 16 upper-case hex digits (little-endian u64)."""
        return key_id_to_hex(self.key_id)

    def to_base64(self) -> str:
        """The single base64 line of the key, as accepted by ``minisign -P``."""
        return _b64encode(SIG_ALG + self.key_id + self.public_bytes)

    def to_file_text(self, comment: str | None = None) -> str:
        """Content of a minisign ``.pub`` file: comment line, base64 line, final newline.

        The default comment is minisign's own, ``minisign public key <KEY ID HEX>``.
        Raises UsageError if the comment has a control character (TAB excepted) or exceeds
        :data:`MAX_UNTRUSTED_COMMENT_BYTES`.
        """
        if comment is None:
            comment = f"minisign public key {self.key_id_hex}"
        _require_comment(comment, MAX_UNTRUSTED_COMMENT_BYTES, "public key comment")
        return f"{UNTRUSTED_PREFIX}{comment}\n{self.to_base64()}\n"


@dataclass(frozen=True)
class SecretKey:
    """A minisign Ed25519 secret key.

    ``key_id`` is the 8-byte key id in stored byte order; ``seed`` is the 32-byte Ed25519
    private seed (the first half of minisign's 64-byte secret key; the second half is the
    public key, derived from the seed). Construction raises ValueError on wrong lengths.
    The seed is left out of ``repr``.
    """

    key_id: bytes
    seed: bytes

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_BYTES:
            raise ValueError(f"key id must be {KEY_ID_BYTES} bytes, got {len(self.key_id)}")
        if len(self.seed) != SEED_BYTES:
            raise ValueError(f"Ed25519 seed must be {SEED_BYTES} bytes, got {len(self.seed)}")

    def __repr__(self) -> str:
        return f"SecretKey(key_id={self.key_id_hex}, seed=<hidden>)"

    @property
    def key_id_hex(self) -> str:
        """Key id as minisign displays it: 16 upper-case hex digits (little-endian u64)."""
        return key_id_to_hex(self.key_id)

    @property
    def public_key(self) -> PublicKey:
        """The matching public key (same key id, public half derived from the seed)."""
        return PublicKey(self.key_id, _public_from_seed(self.seed))

    def to_file_text(
        self,
        comment: str | None = None,
        *,
        password: str | bytes | None = None,
        opslimit: int = KDF_OPSLIMIT_SENSITIVE,
        memlimit: int = KDF_MEMLIMIT_SENSITIVE,
    ) -> str:
        """Content of a minisign ``.key`` file: encrypted with ``password`` (kdf alg ``Sc``,
        a random 32-byte salt, ``opslimit``/``memlimit`` as minisign stores them, by default
        minisign's own), or unencrypted when ``password`` is None (kdf alg ``\\0\\0``, salt and
        limits zero). Either way the BLAKE2b-256 checksum is filled in, and minisign reads the
        file (asking for the password when there is one).
        Raises UsageError for a bad comment, as :meth:`PublicKey.to_file_text`, or an empty
        password.
        """
        if comment is None:
            kind = "unencrypted" if password is None else "encrypted"
            comment = f"minisign {kind} secret key {self.key_id_hex}"
        _require_comment(comment, MAX_UNTRUSTED_COMMENT_BYTES, "secret key comment")
        public_bytes = _public_from_seed(self.seed)
        secret = (
            self.key_id
            + self.seed
            + public_bytes
            + _secret_checksum(self.key_id, self.seed, public_bytes)
        )
        if password is None:
            header = KDF_NONE + CHK_ALG + bytes(KDF_SALT_BYTES) + bytes(8) + bytes(8)
        else:
            if not password:
                raise UsageError("an empty password does not protect a secret key")
            salt = secrets.token_bytes(KDF_SALT_BYTES)
            stream = _key_stream(
                _password_bytes(password), salt, opslimit, memlimit, "the new secret key"
            )
            secret = _xor(secret, stream)
            header = (
                KDF_SCRYPT
                + CHK_ALG
                + salt
                + opslimit.to_bytes(8, "little")
                + memlimit.to_bytes(8, "little")
            )
        blob = SIG_ALG + header + secret
        assert len(blob) == _SECRET_BLOB_BYTES
        return f"{UNTRUSTED_PREFIX}{comment}\n{_b64encode(blob)}\n"


def _require_comment(comment: str, max_bytes: int, what: str) -> None:
    problem = _comment_problem(comment, max_bytes)
    if problem is not None:
        raise UsageError(f"the {what} {comment[:40]!r} {problem}")


def generate_secret_key() -> SecretKey:
    """Generate a new key: random 8-byte key id and random 32-byte Ed25519 seed."""
    return SecretKey(secrets.token_bytes(KEY_ID_BYTES), secrets.token_bytes(SEED_BYTES))


def parse_public_key_base64(text: str, source: str) -> PublicKey:
    """Parse the base64 line of a public key (what ``minisign -P`` takes).

    ``source`` names where the text came from, for messages. Raises KeyFileError if the
    text is not canonical base64 of 42 bytes starting with ``Ed``, or not a valid key.
    """
    blob = _b64decode_exact(text, _PUBLIC_BLOB_BYTES)
    if blob is None:
        raise KeyFileError(
            f"{source} is not a minisign public key: expected the base64 of "
            f"{_PUBLIC_BLOB_BYTES} bytes"
        )
    if blob[:2] != SIG_ALG:
        raise KeyFileError(
            f"{source} uses the signature algorithm {blob[:2]!r}; only Ed25519 (Ed) is supported"
        )
    public_bytes = blob[2 + KEY_ID_BYTES :]
    try:
        Ed25519PublicKey.from_public_bytes(public_bytes)
    except ValueError:
        raise KeyFileError(f"{source} does not hold a valid Ed25519 public key") from None
    return PublicKey(blob[2 : 2 + KEY_ID_BYTES], public_bytes)


def parse_public_key(text: str | bytes, source: str) -> PublicKey:
    """Parse the content of a minisign ``.pub`` file.

    Accepts exactly two LF-separated lines (a final newline is optional):
    ``untrusted comment: <text>`` and the base64 key. ``source`` names the file for
    messages. Raises KeyFileError on anything else: more than 4 KiB, not UTF-8, CR
    characters, wrong line count or prefix, bad base64 or length, non-Ed25519 algorithm.
    """
    what = "a minisign public key"
    text = _as_text(text, source, what, MAX_KEY_FILE_BYTES, KeyFileError)
    lines = _split_lines(text, 2, source, what, KeyFileError)
    _comment_after(
        lines, 0, UNTRUSTED_PREFIX, MAX_UNTRUSTED_COMMENT_BYTES, source, what, KeyFileError
    )
    return parse_public_key_base64(lines[1], source)


def parse_secret_key(text: str | bytes, source: str, password: PasswordSource = None) -> SecretKey:
    """Parse the content of a minisign ``.key`` file, encrypted or not.

    Two LF-separated lines as for public keys; the blob is 158 bytes (see module doc).
    Checks: signature algorithm ``Ed``, checksum algorithm ``B2``, kdf ``\\0\\0`` or ``Sc``
    (then ``password`` decrypts it: the text, or a function called for it, e.g. a prompt; the
    scrypt cost is bounded by :data:`MAX_KDF_MEMORY` and :data:`MAX_KDF_WORK`), the BLAKE2b-256
    checksum (an all-zero checksum, as written by ``minisign -G -W``, is accepted for
    unencrypted keys; for an encrypted key a mismatch means a wrong password), and that the
    stored public half matches the seed. Raises KeyFileError naming ``source`` on any failure
    (an encrypted key without a password included).
    """
    what = "a minisign secret key"
    text = _as_text(text, source, what, MAX_KEY_FILE_BYTES, KeyFileError)
    lines = _split_lines(text, 2, source, what, KeyFileError)
    _comment_after(
        lines, 0, UNTRUSTED_PREFIX, MAX_UNTRUSTED_COMMENT_BYTES, source, what, KeyFileError
    )
    blob = _b64decode_exact(lines[1], _SECRET_BLOB_BYTES)
    if blob is None:
        raise KeyFileError(
            f"{source} is not {what}: expected the base64 of {_SECRET_BLOB_BYTES} bytes"
        )
    sig_alg, kdf_alg, chk_alg = blob[0:2], blob[2:4], blob[4:6]
    if sig_alg != SIG_ALG:
        raise KeyFileError(
            f"{source} uses the signature algorithm {sig_alg!r}; only Ed25519 (Ed) is supported"
        )
    if kdf_alg not in (KDF_NONE, KDF_SCRYPT):
        raise KeyFileError(f"{source} uses the unknown key derivation function {kdf_alg!r}")
    if chk_alg != CHK_ALG:
        raise KeyFileError(f"{source} uses the unknown checksum algorithm {chk_alg!r}")
    offset = 6 + KDF_SALT_BYTES + 8 + 8
    encrypted = kdf_alg == KDF_SCRYPT
    if encrypted:
        if password is None:
            raise KeyFileError(
                f"{source} is encrypted and no password was given for it (minisign -G -W "
                "makes keys without a password)"
            )
        salt = blob[6 : 6 + KDF_SALT_BYTES]
        opslimit = int.from_bytes(blob[6 + KDF_SALT_BYTES : 14 + KDF_SALT_BYTES], "little")
        memlimit = int.from_bytes(blob[14 + KDF_SALT_BYTES : offset], "little")
        _kdf_parameters(opslimit, memlimit, source)  # refuse a hostile cost before asking
        given = password() if callable(password) else password
        stream = _key_stream(_password_bytes(given), salt, opslimit, memlimit, source)
        blob = blob[:offset] + _xor(blob[offset:], stream)
    key_id = blob[offset : offset + KEY_ID_BYTES]
    offset += KEY_ID_BYTES
    seed = blob[offset : offset + SEED_BYTES]
    stored_public = blob[offset + SEED_BYTES : offset + 64]
    checksum = blob[offset + 64 :]
    if encrypted and checksum != _secret_checksum(key_id, seed, stored_public):
        raise KeyFileError(
            f"{source}: wrong password (the decrypted key's checksum does not match)"
        )
    if checksum != bytes(CHECKSUM_BYTES) and checksum != _secret_checksum(
        key_id, seed, stored_public
    ):
        raise KeyFileError(f"{source} is corrupted: its BLAKE2b checksum does not match")
    if _public_from_seed(seed) != stored_public:
        raise KeyFileError(
            f"{source} is corrupted: its public half does not match its private seed"
        )
    return SecretKey(key_id, seed)


def _read_capped(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(
            f"{what} file {path} is larger than {MAX_KEY_FILE_BYTES} bytes, "
            "so it is not a minisign key"
        )
    return data


def load_public_key(path: Path) -> PublicKey:
    """Read and parse a minisign ``.pub`` file (at most 4 KiB is read).

    Raises KeyFileError if the file cannot be read, is too large, or does not parse.
    """
    return parse_public_key(_read_capped(path, "public key"), f"public key file {path}")


def load_secret_key(path: Path, password: PasswordSource = None) -> SecretKey:
    """Read and parse a minisign ``.key`` file (at most 4 KiB is read), decrypting it with
    ``password`` when it is encrypted (see :func:`parse_secret_key`).

    Raises KeyFileError if the file cannot be read, is too large, is encrypted and no or a
    wrong password is given, or does not parse.
    """
    return parse_secret_key(_read_capped(path, "secret key"), f"secret key file {path}", password)


def _write_new_file(tmp: Path, content: bytes, mode: int) -> None:
    """Write ``content`` to ``tmp`` (created exclusively with ``mode``) and fsync it."""
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed it; we want exactly ``mode``
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _cleanup([tmp])
        raise


def _install(tmp: Path, final: Path, force: bool) -> None:
    """Give ``tmp`` the name ``final``: replace when forced, never clobber otherwise."""
    if force:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # atomic and refuses to clobber an existing file
    except FileExistsError:
        raise AlreadyExistsError(
            f"{final} already exists; use --force to overwrite the key pair"
        ) from None
    except OSError:
        # File systems without hard links: check, then rename.
        if final.exists():
            raise AlreadyExistsError(
                f"{final} already exists; use --force to overwrite the key pair"
            ) from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


def write_keypair(
    secret_path: Path,
    public_path: Path,
    *,
    force: bool = False,
    password: str | bytes | None = None,
    opslimit: int = KDF_OPSLIMIT_SENSITIVE,
    memlimit: int = KDF_MEMLIMIT_SENSITIVE,
) -> SecretKey:
    """Generate a key pair and write it as minisign files; return the secret key.

    The secret key file is encrypted with ``password`` (scrypt with ``opslimit``/``memlimit``,
    minisign's defaults unless given) or, when it is None, unencrypted (kdf ``\\0\\0``); it
    has mode 0600, the public key file
    has mode 0644; parent directories are created. Each file is first written to a
    temporary file in its own directory and then renamed, so no partial file ever has the
    final name, and an overwritten secret key file gets mode 0600 too.

    Raises AlreadyExistsError naming the file if either exists and ``force`` is false (then
    nothing is written), and StorageError naming the path if the file system refuses.
    """
    if not force:
        for path in (secret_path, public_path):
            if path.exists() or path.is_symlink():
                raise AlreadyExistsError(
                    f"{path} already exists; use --force to overwrite the key pair"
                )
    key = generate_secret_key()
    plan = [
        (
            secret_path,
            key.to_file_text(password=password, opslimit=opslimit, memlimit=memlimit).encode(),
            0o600,
        ),
        (public_path, key.public_key.to_file_text().encode("utf-8"), 0o644),
    ]
    temps: list[Path] = []
    installed: list[Path] = []
    current = secret_path
    try:
        for path, content, mode in plan:
            current = path
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            _write_new_file(tmp, content, mode)
            temps.append(tmp)
        for (path, _content, _mode), tmp in zip(plan, temps):
            current = path
            _install(tmp, path, force)
            installed.append(path)
    except OSError as exc:
        _cleanup(temps + ([] if force else installed))
        raise StorageError(f"cannot write key file {current}: {exc.strerror or exc}") from exc
    except AlreadyExistsError:
        _cleanup(temps + installed)
        raise
    return key


def _cleanup(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


# --------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class Signature:
    """A parsed minisign signature file.

    ``algorithm`` is ``"ED"`` (prehashed: Ed25519 over BLAKE2b-512 of the data) or ``"Ed"``
    (legacy: over the raw data). ``key_id`` is 8 bytes in stored order; ``signature`` and
    ``global_signature`` are 64-byte Ed25519 signatures, the latter over ``signature`` +
    the UTF-8 bytes of ``trusted_comment``. Comments are without their line prefixes.
    """

    algorithm: str
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str

    @property
    def key_id_hex(self) -> str:
        """Signer's key id as minisign displays it: 16 upper-case hex digits."""
        return key_id_to_hex(self.key_id)


@dataclass(frozen=True)
class VerifiedSignature:
    """The outcome of a successful :func:`verify`: the trusted key that verified it, and
    the signature (whose ``trusted_comment`` is now authenticated)."""

    key: PublicKey
    signature: Signature


def prehash(data: bytes) -> bytes:
    """BLAKE2b-512 of ``data`` (64 bytes): what a prehashed (``ED``) signature signs."""
    return hashlib.blake2b(data, digest_size=64).digest()


def prehash_file(path: Path) -> bytes:
    """BLAKE2b-512 of a file's content, read in 1 MiB chunks (memory stays flat).

    Raises StorageError naming the path if the file cannot be read.
    """
    digest = hashlib.blake2b(digest_size=64)
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(_PREHASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.digest()


def sign(
    data: bytes,
    key: SecretKey,
    trusted_comment: str,
    untrusted_comment: str = "signature from pybundle secret key",
) -> bytes:
    """Sign ``data`` in prehashed (``ED``) mode; return the full ``.minisig`` file bytes.

    The result is four LF-terminated lines, verifiable by ``minisign -V [-H]``. Comments
    may not contain control characters other than TAB; the trusted comment is limited to
    :data:`MAX_TRUSTED_COMMENT_BYTES` and the untrusted one to
    :data:`MAX_UNTRUSTED_COMMENT_BYTES` UTF-8 bytes (minisign's limits). Raises UsageError
    for a bad comment.
    """
    return sign_prehashed(prehash(data), key, trusted_comment, untrusted_comment)


def sign_prehashed(
    digest: bytes,
    key: SecretKey,
    trusted_comment: str,
    untrusted_comment: str = "signature from pybundle secret key",
) -> bytes:
    """As :func:`sign`, given the 64-byte BLAKE2b-512 ``digest`` (see :func:`prehash_file`).

    Raises ValueError if ``digest`` is not 64 bytes, UsageError for a bad comment.
    """
    if len(digest) != 64:
        raise ValueError(f"a BLAKE2b-512 digest is 64 bytes, not {len(digest)}")
    _require_comment(trusted_comment, MAX_TRUSTED_COMMENT_BYTES, "trusted comment")
    _require_comment(untrusted_comment, MAX_UNTRUSTED_COMMENT_BYTES, "untrusted comment")
    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    signature = private.sign(digest)
    global_signature = private.sign(signature + trusted_comment.encode("utf-8"))
    blob = SIG_ALG_PREHASHED + key.key_id + signature
    text = (
        f"{UNTRUSTED_PREFIX}{untrusted_comment}\n"
        f"{_b64encode(blob)}\n"
        f"{TRUSTED_PREFIX}{trusted_comment}\n"
        f"{_b64encode(global_signature)}\n"
    )
    return text.encode("utf-8")


def parse_signature(data: bytes, source: str) -> Signature:
    """Parse the bytes of a minisign ``.minisig`` file, strictly.

    Accepted: at most :data:`MAX_SIGNATURE_BYTES` bytes of UTF-8, exactly four LF-separated
    lines (a final LF optional, no CR anywhere): ``untrusted comment: ...``, canonical
    base64 of 74 bytes (algorithm ``ED`` or ``Ed``, key id, signature), ``trusted comment:
    ...``, canonical base64 of the 64-byte global signature. Comments may contain no
    control character but TAB and must fit minisign's limits. Legacy ``Ed`` signatures
    parse (so they can be reported); :func:`verify` refuses them. No cryptographic check is
    done here. Raises SignatureError naming ``source``.
    """
    what = "a minisign signature"
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureError(
            f"{source} is {len(data)} bytes, larger than the {MAX_SIGNATURE_BYTES} bytes "
            "allowed for a minisign signature"
        )
    text = _as_text(data, source, what, MAX_SIGNATURE_BYTES, SignatureError)
    lines = _split_lines(text, 4, source, what, SignatureError)
    untrusted = _comment_after(
        lines, 0, UNTRUSTED_PREFIX, MAX_UNTRUSTED_COMMENT_BYTES, source, what, SignatureError
    )
    blob = _b64decode_exact(lines[1], _SIGNATURE_BLOB_BYTES)
    if blob is None:
        raise SignatureError(
            f"{source} is not {what}: line 2 is not the base64 of {_SIGNATURE_BLOB_BYTES} bytes"
        )
    trusted = _comment_after(
        lines, 2, TRUSTED_PREFIX, MAX_TRUSTED_COMMENT_BYTES, source, what, SignatureError
    )
    global_signature = _b64decode_exact(lines[3], SIGNATURE_BYTES)
    if global_signature is None:
        raise SignatureError(
            f"{source} is not {what}: line 4 is not the base64 of {SIGNATURE_BYTES} bytes"
        )
    algorithm = blob[:2]
    if algorithm not in (SIG_ALG_PREHASHED, SIG_ALG):
        raise SignatureError(f"{source} uses the unknown signature algorithm {algorithm!r}")
    return Signature(
        algorithm=algorithm.decode("ascii"),
        key_id=blob[2 : 2 + KEY_ID_BYTES],
        signature=blob[2 + KEY_ID_BYTES :],
        trusted_comment=trusted,
        global_signature=global_signature,
        untrusted_comment=untrusted,
    )


def verify(
    data: bytes, signature_data: bytes, trusted: Sequence[PublicKey], source: str
) -> VerifiedSignature:
    """Verify a minisign signature of ``data`` against the ``trusted`` public keys.

    ``signature_data`` is the ``.minisig`` file content; ``source`` names the signed thing
    for messages (e.g. ``"bundle py.pybundle"``). Steps, in order: parse (SignatureError);
    refuse legacy ``Ed`` signatures (SignatureError); select the trusted key(s) whose key
    id matches (UntrustedKeyError naming the signer's and the trusted key ids, also when
    ``trusted`` is empty); check the Ed25519 signature over BLAKE2b-512(data)
    (SignatureError); check the global signature over signature + trusted comment
    (SignatureError: the trusted comment was altered). Returns the key and signature.
    """
    return verify_prehashed(prehash(data), signature_data, trusted, source)


def verify_prehashed(
    digest: bytes, signature_data: bytes, trusted: Sequence[PublicKey], source: str
) -> VerifiedSignature:
    """As :func:`verify`, given the 64-byte BLAKE2b-512 ``digest`` of the signed data."""
    if len(digest) != 64:
        raise ValueError(f"a BLAKE2b-512 digest is 64 bytes, not {len(digest)}")
    sig = parse_signature(signature_data, f"signature of {source}")
    if sig.algorithm != SIG_ALG_PREHASHED.decode("ascii"):
        raise SignatureError(
            f"signature of {source} uses minisign's legacy non-prehashed mode (Ed); "
            "only prehashed signatures (ED) are accepted"
        )
    if not trusted:
        raise UntrustedKeyError(
            f"{source} is signed by key {sig.key_id_hex}, but no trusted key was given"
        )
    candidates = [key for key in trusted if key.key_id == sig.key_id]
    if not candidates:
        trusted_ids = ", ".join(dict.fromkeys(key.key_id_hex for key in trusted))
        raise UntrustedKeyError(
            f"{source} is signed by key {sig.key_id_hex}, which is not trusted "
            f"(trusted: {trusted_ids})"
        )
    for key in candidates:
        public = Ed25519PublicKey.from_public_bytes(key.public_bytes)
        try:
            public.verify(sig.signature, digest)
        except InvalidSignature:
            continue
        try:
            public.verify(sig.global_signature, sig.signature + sig.trusted_comment.encode("utf-8"))
        except InvalidSignature:
            raise SignatureError(
                f"signature of {source} is invalid: its trusted comment was altered "
                "(the comment signature does not verify)"
            ) from None
        return VerifiedSignature(key=key, signature=sig)
    raise SignatureError(
        f"signature of {source} does not verify with trusted key {sig.key_id_hex}: "
        "the data or the signature was altered"
    )
