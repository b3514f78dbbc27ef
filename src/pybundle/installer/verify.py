"""Verifying a bundle offline: trusted keys, the manifest's signature, every archive's sha256.

Trust comes only from public keys the operator names (``--trusted-key``) or has installed in
``<user config dir>/pybundle/trusted-keys/*.pub``; never from the bundle itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from pybundle.errors import ManifestError, SignatureError, UntrustedKeyError
from pybundle.hashing import check_digest
from pybundle.installer.policy import check_freshness
from pybundle.installer.source import BundleSource
from pybundle.manifest import Artifact, Manifest, Member
from pybundle.signing import PublicKey, Signature, load_public_key, parse_signature, verify


def trusted_keys_dir() -> Path:
    """``<user config dir>/pybundle/trusted-keys`` (e.g. ``~/.config/pybundle/trusted-keys``)."""
    return Path(platformdirs.user_config_dir("pybundle")) / "trusted-keys"


def load_trusted_keys(
    paths: Sequence[Path], *, include_default_dir: bool = True
) -> list[PublicKey]:
    """Load the named minisign public keys plus every ``*.pub`` in :func:`trusted_keys_dir`.

    Raises KeyFileError for a named key that cannot be parsed; an unparsable file in the
    directory is an error too (a trust store must not fail silently).
    """
    keys = [load_public_key(Path(p)) for p in paths]
    if include_default_dir:
        directory = trusted_keys_dir()
        if directory.is_dir():
            keys.extend(load_public_key(p) for p in sorted(directory.glob("*.pub")))
    unique: dict[bytes, PublicKey] = {}
    for key in keys:
        unique.setdefault(key.key_id + key.public_bytes, key)
    return list(unique.values())


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose manifest is signed by a trusted key and valid against the schema."""

    manifest: Manifest
    key: PublicKey
    signature: Signature


def read_signer(source: BundleSource) -> Signature | None:
    """Parse the bundle's signature without trusting it (for display); None if unsigned."""
    data = source.signature_bytes()
    return None if data is None else parse_signature(data, f"{source.path}")


def verify_manifest(source: BundleSource, trusted: Sequence[PublicKey]) -> VerifiedBundle:
    """Check the signature over the manifest's bytes, then parse and validate the manifest.

    The signature's trusted comment must name this manifest's bundle id and serial.
    Raises SignatureError (unsigned, malformed, bad signature), UntrustedKeyError (signer not
    trusted; the message names its key id), ManifestError (invalid manifest, extra or missing
    members).
    """
    manifest_bytes = source.manifest_bytes()
    signature_bytes = source.signature_bytes()
    if signature_bytes is None:
        raise SignatureError(
            f"{source.path}: bundle is unsigned; pybundle installs only signed bundles"
        )
    if not trusted:
        signer = parse_signature(signature_bytes, f"{source.path}")
        raise UntrustedKeyError(
            f"{source.path} is signed by key {signer.key_id_hex}, but no trusted key was given: "
            f"name its public key with --trusted-key PUB, or copy it into {trusted_keys_dir()} "
            "(every *.pub file there is trusted)"
        )
    verified = verify(manifest_bytes, signature_bytes, trusted, f"{source.path}")
    manifest = Manifest.from_bytes(manifest_bytes, f"{source.path}")
    _check_trusted_comment(source.path, verified.signature.trusted_comment, manifest)
    source.check_members(manifest)
    return VerifiedBundle(manifest, verified.key, verified.signature)


def _check_trusted_comment(path: Path, comment: str, manifest: Manifest) -> None:
    fields = dict(re.findall(r"(\w+)=(\S+)", comment))
    if fields.get("bundle_id") != manifest.bundle_id or fields.get("serial") != str(
        manifest.serial
    ):
        raise ManifestError(
            f"{path}: the signature's trusted comment does not name this manifest's bundle id "
            "and serial"
        )


def verify_archive(source: BundleSource, artifact: Member) -> None:
    """Re-hash one archive member (streaming, exactly its recorded size) against the manifest
    (also a file carried for a self-installing bundle's installer).

    Raises HashMismatchError naming the bundle and member.
    """
    actual = source.hash_archive(artifact)
    check_digest(f"{source.path}: {artifact.member}", actual, artifact.sha256, artifact.size)


def verify_solid_container(source: BundleSource, manifest: Manifest) -> None:
    """Re-hash a compact bundle's solid stream member against the manifest (nothing of it is
    parsed before this passes). Raises HashMismatchError; nothing without a solid stream."""
    container = manifest.solid
    if container is None:
        return
    actual = source.hash_member(container.member, container.size)
    check_digest(f"{source.path}: {container.member}", actual, container.sha256, container.size)


def verify_archives(
    source: BundleSource, artifacts: Sequence[Member], manifest: Manifest | None = None
) -> None:
    """Re-hash several archive members in parallel threads (one per CPU at most), since
    hashlib releases the GIL. Raises the first member's HashMismatchError (in manifest order)
    after all have been checked. ``artifacts`` are any members the manifest hashes (archives,
    carried files, the solid stream); archives in a compact bundle's solid stream are covered
    by the solid member's sha256 (``manifest`` needed), checked once."""
    plain = [a for a in artifacts if not (isinstance(a, Artifact) and a.solid is not None)]
    if manifest is not None and len(plain) != len(artifacts):
        verify_solid_container(source, manifest)
    if len(plain) <= 1:
        for artifact in plain:
            verify_archive(source, artifact)
        return
    workers = min(len(plain), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(verify_archive, source, a) for a in plain]
    for future in futures:
        future.result()


def verify_solid_entries(source: BundleSource, manifest: Manifest) -> None:
    """Decode a compact bundle's whole solid stream (after its sha256 was checked) and check
    every tar's sha256 and size against the manifest. Raises HashMismatchError and the errors
    of :mod:`pybundle.installer.solid`."""
    wanted = [a for a in manifest.artifacts if a.solid is not None]
    if not wanted:
        return
    with source.solid_pass(manifest, wanted):
        for artifact in wanted:
            with source.open_archive(artifact) as stream:
                actual = stream.finish()
            check_digest(f"{source.path}: {artifact.member}", actual, *artifact.read_digest)


def verify_bundle(
    path: Path, trusted: Sequence[PublicKey], *, archives: bool = True, allow_expired: bool = False
) -> VerifiedBundle:
    """Verify signature, manifest, freshness (unless ``allow_expired``) and (unless ``archives``
    is False) the sha256 of every member the manifest lists (archives, a compact bundle's
    solid stream and, in a self-installing file, the files it carries), then, in a compact
    bundle, every tar's in the solid stream, decoded. Raises the errors of the steps it runs."""
    with BundleSource(path) as source:
        verified = verify_manifest(source, trusted)
        check_freshness(verified.manifest, str(path), allow_expired=allow_expired)
        if archives:
            verify_archives(source, verified.manifest.members())
            verify_solid_entries(source, verified.manifest)
    return verified
