"""The bundle manifest: what a ``.pybundle`` file holds, in typed form.

A bundle is a zip file whose first member is ``pybundle.json`` (this manifest, UTF-8 JSON),
followed by ``pybundle.json.minisig`` (a minisign signature over the manifest's exact bytes)
and one STORED member ``archives/<file name>`` per artifact. The manifest is validated
against ``schemas/manifest-v1.schema.json`` both when written and when read.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional, Protocol

from pybundle import __version__
from pybundle.errors import ManifestError
from pybundle.fileindex import index_member
from pybundle.jsondoc import load_json
from pybundle.schema import validate_manifest_document
from pybundle.selfinstall.section import SelfInstall
from pybundle.targets import Target
from pybundle.wheelhouse import Wheelhouses

SCHEMA_VERSION = 1
MANIFEST_NAME = "pybundle.json"
SIGNATURE_NAME = "pybundle.json.minisig"
ARCHIVES_DIR = "archives"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Upper bound on the manifest size in bytes, checked before parsing."""


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix and whole seconds, e.g. ``2026-11-21T05:00:00Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


def parse_timestamp(text: str) -> datetime:
    """Parse the timestamp form written by :func:`format_timestamp`; ValueError if malformed
    or not a real date and time. (Not ``datetime.strptime``: importing ``_strptime`` costs
    more start-up time than every other step of reading a manifest.)"""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not of the form YYYY-MM-DDTHH:MM:SSZ")
    year, month, day, hour, minute, second = map(int, match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Portability:
    """What a ``--from-prefix`` archive needs from the host: for each ELF file (``file``,
    relative to the prefix) the libraries (``needs``, DT_NEEDED names) found neither inside
    the prefix nor on the ``policy``'s allowlist (e.g. ``manylinux``: the PyPA policy's
    ``lib_whitelist``). Recorded only when something is needed (manifest schema version 2)."""

    policy: str
    external: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def libraries(self) -> list[str]:
        """Every needed library once, sorted."""
        return sorted({lib for _, needs in self.external for lib in needs})

    def to_json(self) -> dict[str, Any]:
        """``{"policy", "external_libraries": [{"file", "needs"}]}``."""
        return {
            "policy": self.policy,
            "external_libraries": [
                {"file": file, "needs": list(needs)} for file, needs in self.external
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Portability:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(
            policy=data["policy"],
            external=tuple((e["file"], tuple(e["needs"])) for e in data["external_libraries"]),
        )


@dataclass(frozen=True)
class FileIndexRef:
    """An archive's file index (:mod:`pybundle.fileindex`) as the manifest records it: the zip
    ``member`` (``indexes/<archive file name>.files``, STORED), its ``sha256`` (hex) and
    ``size`` in bytes (manifest schema version 3)."""

    member: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """``{"member", "sha256", "size"}``."""
        return {"member": self.member, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileIndexRef:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(member=data["member"], sha256=data["sha256"], size=data["size"])


TAR_FORMAT = "tar"
"""The read format of an archive carried in a solid stream: an uncompressed tar."""


@dataclass(frozen=True)
class SolidEntry:
    """An archive's place in a compact bundle's solid stream: the 7z entry ``name`` (the
    upstream file name with the compression suffix dropped, e.g. ``...install_only.tar``)
    and the ``size`` (bytes) and ``sha256`` (hex) of that uncompressed tar stream, which the
    installer reads and checks before it places a tree."""

    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """``{"name", "size", "sha256"}``."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SolidEntry:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(name=data["name"], size=data["size"], sha256=data["sha256"])


@dataclass(frozen=True)
class SolidContainer:
    """A compact bundle's solid stream: one zip member (``member``, STORED, ``size`` bytes,
    ``sha256``) holding a 7z archive (7-Zip's format, 7zFormat.txt) whose one folder
    compresses the tars of every artifact with a ``solid`` entry, in manifest order.
    ``compression`` is the 7z coder (``lzma2``); ``dictionary`` its dictionary size in bytes
    (the decoder's memory); ``unpacked_size`` the sum of the tar sizes in bytes."""

    member: str
    size: int
    sha256: str
    compression: str
    dictionary: int
    unpacked_size: int
    format: str = "7z"

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``solid`` object."""
        return {
            "member": self.member,
            "format": self.format,
            "compression": self.compression,
            "dictionary": self.dictionary,
            "size": self.size,
            "sha256": self.sha256,
            "unpacked_size": self.unpacked_size,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SolidContainer:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(
            member=data["member"],
            size=data["size"],
            sha256=data["sha256"],
            compression=data["compression"],
            dictionary=data["dictionary"],
            unpacked_size=data["unpacked_size"],
            format=data["format"],
        )


@dataclass(frozen=True)
class Artifact:
    """One interpreter archive inside a bundle.

    ``size`` is in bytes; ``sha256`` is lower-case hex of the archive bytes, which are stored
    unmodified, so an upstream sha256 stays checkable. Exactly one of ``source_url`` and
    ``local_prefix`` is set. ``strip_prefix`` is the leading directory of every archive member
    (``python`` for PBS install_only archives, see PBS docs/distributions.rst).
    ``build_prefix`` is the prefix the interpreter was configured with (``/install`` for PBS).
    """

    file_name: str
    size: int
    sha256: str
    implementation: str
    version: str
    build: str
    target: Target
    variant: str
    flavour: str
    archive_format: str
    strip_prefix: str
    build_prefix: Optional[str]
    source_url: Optional[str] = None
    local_prefix: Optional[str] = None
    unpacked_size: Optional[int] = None
    file_count: Optional[int] = None
    sha256_source: Optional[str] = None
    """``"catalog"``: the sha256 came from the catalog and the download matched it;
    ``"computed"``: the catalog had none (``--allow-unhashed``) and it was computed at bundle
    time; None: not recorded (local prefixes, older bundles)."""
    portability: Optional[Portability] = None
    """Host libraries a ``--from-prefix`` archive needs (manifest v2 only), or None."""
    solid: Optional[SolidEntry] = None
    """In a compact bundle (manifest v2 only): the archive travels decompressed, as a tar in
    the bundle's solid stream (:class:`SolidContainer`), and ``member`` names no zip member.
    ``size``/``sha256`` stay those of the upstream archive (checked at bundle time)."""
    file_index: Optional[FileIndexRef] = None
    """The signed member listing the sha256 of every regular file of the archive (manifest
    v3 only), which the installer's receipt takes instead of hashing; or None."""

    @property
    def read_format(self) -> str:
        """The format of the stream the installer reads: ``tar`` (uncompressed) for an
        archive in the solid stream, else ``archive_format``."""
        return TAR_FORMAT if self.solid is not None else self.archive_format

    @property
    def read_digest(self) -> tuple[str, int]:
        """``(sha256, size)`` of the bytes the installer reads and checks before placing a
        tree: the tar stream's for an archive in the solid stream, else the archive's."""
        if self.solid is not None:
            return self.solid.sha256, self.solid.size
        return self.sha256, self.size

    @property
    def member(self) -> str:
        """The zip member name: ``archives/<file name>``."""
        return f"{ARCHIVES_DIR}/{self.file_name}"

    @property
    def install_name(self) -> str:
        """uv's install directory name, e.g. ``cpython-3.12.1-linux-x86_64-gnu``.

        Non-default variants are appended to the version with ``+``, as uv does
        (``cpython-3.13.0+freethreaded-linux-x86_64-gnu``).
        """
        version = self.version if self.variant == "default" else f"{self.version}+{self.variant}"
        return f"{self.implementation}-{version}-{self.target.install_key}"

    @property
    def label(self) -> str:
        """Short human description: ``cpython 3.12.1 (linux-x86_64-gnu, install_only)``."""
        variant = "" if self.variant == "default" else f" {self.variant}"
        return (
            f"{self.implementation} {self.version}{variant} "
            f"({self.target.key}, {self.flavour}, build {self.build})"
        )

    def to_json(self) -> dict[str, Any]:
        """The artifact as the manifest's JSON object."""
        source: dict[str, str] = (
            {"url": self.source_url}
            if self.source_url is not None
            else {"local_prefix": self.local_prefix or ""}
        )
        return {
            "member": self.member,
            "file_name": self.file_name,
            "size": self.size,
            "sha256": self.sha256,
            "source": source,
            "implementation": self.implementation,
            "version": self.version,
            "build": self.build,
            "os": self.target.os,
            "arch": self.target.arch,
            "arch_variant": self.target.arch_variant,
            "libc": self.target.libc,
            "target_triple": self.target.triple,
            "variant": self.variant,
            "flavour": self.flavour,
            "archive_format": self.archive_format,
            "strip_prefix": self.strip_prefix,
            "build_prefix": self.build_prefix,
            "unpacked_size": self.unpacked_size,
            "file_count": self.file_count,
            **({"sha256_source": self.sha256_source} if self.sha256_source else {}),
            **({"portability": self.portability.to_json()} if self.portability else {}),
            **({"solid": self.solid.to_json()} if self.solid else {}),
            **({"file_index": self.file_index.to_json()} if self.file_index else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        """Build from a schema-valid manifest object (validation happens before)."""
        source = data["source"]
        return cls(
            file_name=data["file_name"],
            size=data["size"],
            sha256=data["sha256"],
            implementation=data["implementation"],
            version=data["version"],
            build=data["build"],
            target=Target(
                os=data["os"],
                arch=data["arch"],
                libc=data["libc"],
                arch_variant=data["arch_variant"],
            ),
            variant=data["variant"],
            flavour=data["flavour"],
            archive_format=data["archive_format"],
            strip_prefix=data["strip_prefix"],
            build_prefix=data["build_prefix"],
            source_url=source.get("url"),
            local_prefix=source.get("local_prefix"),
            unpacked_size=data.get("unpacked_size"),
            file_count=data.get("file_count"),
            sha256_source=data.get("sha256_source"),
            portability=(
                Portability.from_json(data["portability"]) if data.get("portability") else None
            ),
            solid=SolidEntry.from_json(data["solid"]) if data.get("solid") else None,
            file_index=(
                FileIndexRef.from_json(data["file_index"]) if data.get("file_index") else None
            ),
        )


V2_ARTIFACT_FIELDS = ("portability", "solid")
"""Artifact fields that exist only from manifest schema version 2."""
V3_ARTIFACT_FIELDS = ("file_index",)
"""Artifact fields that exist only from manifest schema version 3."""


class Member(Protocol):
    """A zip member the manifest hashes: an interpreter archive (:class:`Artifact`), a compact
    bundle's solid stream (:class:`SolidContainer`) or a file carried for a self-installing
    bundle's installer (:class:`pybundle.selfinstall.section.CarriedFile`)."""

    @property
    def member(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...


def required_schema_version(
    artifacts: Sequence[Artifact],
    solid: Optional[SolidContainer] = None,
    self_install: Optional[SelfInstall] = None,
    wheelhouses: Optional[Wheelhouses] = None,
) -> int:
    """The lowest manifest schema version that can hold ``artifacts``, ``solid``,
    ``self_install`` and ``wheelhouses``: 3 when an artifact has a ``file_index``; 2 when an
    artifact records ``portability`` or ``solid``, the bundle has a solid stream, installs
    itself or carries wheelhouses (v2 fields); else 1 (what every pybundle reads)."""
    if any(a.file_index is not None for a in artifacts):
        return 3
    if (
        solid is not None
        or self_install is not None
        or wheelhouses is not None
        or any(a.portability is not None or a.solid is not None for a in artifacts)
    ):
        return 2
    return SCHEMA_VERSION


@dataclass(frozen=True)
class Manifest:
    """The whole manifest. ``serial`` is an integer that grows with each bundle of a signer.

    ``created`` / ``expires`` are aware UTC datetimes (whole seconds).
    """

    bundle_id: str
    serial: int
    created: datetime
    artifacts: tuple[Artifact, ...]
    tool_version: str = __version__
    expires: Optional[datetime] = None
    schema_version: int = field(default=SCHEMA_VERSION)
    solid: Optional[SolidContainer] = None
    """The compact bundle's solid stream (manifest v2 only), or None."""
    self_install: Optional[SelfInstall] = None
    """What a self-installing bundle carries for its own installer (schema v2), or None."""
    wheelhouses: Optional[Wheelhouses] = None
    """The wheels carried for users' packages, per target (schema v2), or None."""

    def members(self) -> list[Member]:
        """Every zip member the manifest hashes, in bundle order: the solid stream (a compact
        bundle's), the archives that are members (not in the solid stream), their file
        indexes, the files carried for the installer, then the wheelhouses' wheels and locks
        (a wheel that is also a carried file is listed once)."""
        container: list[Member] = [self.solid] if self.solid is not None else []
        plain = [a for a in self.artifacts if a.solid is None]
        return [
            *container,
            *plain,
            *self.index_files(),
            *self.carried_files(),
            *self.wheelhouse_files(),
        ]

    def index_files(self, artifacts: Optional[Sequence[Artifact]] = None) -> list[Member]:
        """The file indexes of ``artifacts`` (default: every artifact), in manifest order."""
        chosen = self.artifacts if artifacts is None else artifacts
        return [a.file_index for a in chosen if a.file_index is not None]

    def wheelhouse_files(self) -> list[Member]:
        """The wheelhouses' members that are not carried files too (none without
        wheelhouses)."""
        if self.wheelhouses is None:
            return []
        carried = {m.member for m in self.carried_files()}
        return [f for f in self.wheelhouses.files() if f.member not in carried]

    def carried_files(self) -> list[Member]:
        """The files carried for a self-installing bundle's installer (none for a plain one)."""
        return list(self.self_install.files) if self.self_install is not None else []

    @classmethod
    def new(
        cls,
        artifacts: list[Artifact],
        *,
        serial: int | None = None,
        expires: datetime | None = None,
        now: datetime | None = None,
        solid: SolidContainer | None = None,
        bundle_id: str | None = None,
        self_install: SelfInstall | None = None,
        wheelhouses: Wheelhouses | None = None,
    ) -> Manifest:
        """A fresh manifest; the serial defaults to ``created`` in Unix seconds, so later
        bundles of one signer get higher serials. ``bundle_id`` defaults to a random UUID
        (:mod:`pybundle.bundler.reproducible` derives one from the inputs instead).
        ``self_install`` makes it a self-installing bundle's, ``wheelhouses`` one that carries
        wheels (schema version 2)."""
        created = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        return cls(
            bundle_id=bundle_id or str(uuid.uuid4()),
            serial=int(created.timestamp()) if serial is None else serial,
            created=created,
            artifacts=tuple(artifacts),
            expires=expires,
            schema_version=required_schema_version(artifacts, solid, self_install, wheelhouses),
            solid=solid,
            self_install=self_install,
            wheelhouses=wheelhouses,
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict."""
        doc: dict[str, Any] = {
            "schema_version": self.schema_version,
            "bundle_id": self.bundle_id,
            "serial": self.serial,
            "created": format_timestamp(self.created),
        }
        if self.expires is not None:
            doc["expires"] = format_timestamp(self.expires)
        doc["tool"] = {"name": "pybundle", "version": self.tool_version}
        doc["artifacts"] = [a.to_json() for a in self.artifacts]
        if self.solid is not None:
            doc["solid"] = self.solid.to_json()
        if self.self_install is not None:
            doc["self_install"] = self.self_install.to_json()
        if self.wheelhouses is not None:
            doc["wheelhouses"] = self.wheelhouses.to_json()
        return doc

    def to_bytes(self) -> bytes:
        """Serialise to the exact bytes stored (and signed) in the bundle.

        Validates against the schema first; raises ManifestError if the manifest is invalid.
        """
        doc = self.to_json()
        validate_manifest_document(doc, "new manifest")
        _check_semantics(self, "new manifest")
        return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> Manifest:
        """Parse and validate manifest bytes read from ``source`` (named in errors).

        Raises ManifestError when the data is larger than MAX_MANIFEST_BYTES, is not strict
        UTF-8 JSON (:func:`pybundle.jsondoc.load_json`: no floats, no repeated keys, bounded
        depth), fails the schema, or is inconsistent (duplicate members or install
        directories, bad timestamps).
        """
        doc = load_json(data, source, "manifest", ManifestError, max_bytes=MAX_MANIFEST_BYTES)
        validate_manifest_document(doc, source)
        try:
            created = parse_timestamp(doc["created"])
            expires = parse_timestamp(doc["expires"]) if doc.get("expires") else None
        except ValueError as exc:
            raise ManifestError(f"{source}: manifest has an invalid timestamp: {exc}") from exc
        manifest = cls(
            bundle_id=doc["bundle_id"],
            serial=doc["serial"],
            created=created,
            expires=expires,
            tool_version=doc["tool"]["version"],
            artifacts=tuple(Artifact.from_json(a) for a in doc["artifacts"]),
            schema_version=doc["schema_version"],
            solid=SolidContainer.from_json(doc["solid"]) if doc.get("solid") else None,
            self_install=(
                SelfInstall.from_json(doc["self_install"]) if "self_install" in doc else None
            ),
            wheelhouses=(
                Wheelhouses.from_json(doc["wheelhouses"]) if "wheelhouses" in doc else None
            ),
        )
        _check_semantics(manifest, source)
        return manifest


def _check_semantics(manifest: Manifest, source: str) -> None:
    """Checks the schema cannot express: unique members, consistent member names, and one
    artifact per install directory (two artifacts that would install to the same place, such
    as install_only and install_only_stripped of one build, make the whole selection
    ambiguous, so such a manifest is refused when written and when read)."""
    seen: set[str] = set()
    places: dict[str, str] = {}
    _check_solid(manifest, source)
    for artifact in manifest.artifacts:
        if artifact.member in seen:
            raise ManifestError(f"{source}: manifest lists {artifact.member} twice")
        seen.add(artifact.member)
        other = places.setdefault(artifact.install_name, artifact.file_name)
        if other != artifact.file_name:
            raise ManifestError(
                f"{source}: {other} and {artifact.file_name} would both install to "
                f"{artifact.install_name}; a bundle may hold only one of them"
            )
        if artifact.file_name in (".", "..") or "/" in artifact.file_name:
            raise ManifestError(
                f"{source}: manifest has an unsafe file name {artifact.file_name!r}"
            )
        if artifact.file_index is not None and artifact.file_index.member != index_member(
            artifact.file_name
        ):
            raise ManifestError(
                f"{source}: the file index of {artifact.file_name} must be the member "
                f"{index_member(artifact.file_name)}, not {artifact.file_index.member}"
            )
        if not artifact.file_name.endswith("." + artifact.archive_format):
            raise ManifestError(
                f"{source}: {artifact.file_name} does not end with .{artifact.archive_format}"
            )
        parts = artifact.strip_prefix.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ManifestError(
                f"{source}: {artifact.file_name} has an unsafe strip_prefix "
                f"{artifact.strip_prefix!r}"
            )
    if manifest.self_install is not None:
        manifest.self_install.check(manifest.artifacts, source)
        by_member = {a.member: a for a in manifest.artifacts}
        for b in manifest.self_install.bootstraps:
            if by_member[b.artifact].solid is not None:
                raise ManifestError(
                    f"{source}: the bootstrap for {b.key} is in the solid stream; it must be a "
                    "plain member (the sh stub unpacks it with tar and gzip)"
                )
        if manifest.solid is not None and manifest.self_install.file(manifest.solid.member):
            raise ManifestError(
                f"{source}: the solid stream's member {manifest.solid.member} is also a "
                "carried file's"
            )
    if manifest.wheelhouses is not None:
        manifest.wheelhouses.check(manifest.artifacts, manifest.carried_files(), source)


def _check_solid(manifest: Manifest, source: str) -> None:
    """A solid stream and the artifacts in it go together: artifacts with a ``solid`` entry
    need the manifest's ``solid`` container (and it needs at least one of them), entry names
    are unique, and the container's member is no artifact's member."""
    entries = [a.solid.name for a in manifest.artifacts if a.solid is not None]
    container = manifest.solid
    if container is None:
        if entries:
            raise ManifestError(f"{source}: manifest puts archives in a solid stream it lacks")
        return
    if not entries:
        raise ManifestError(f"{source}: manifest has a solid stream that holds no archive")
    if len(set(entries)) != len(entries):
        raise ManifestError(f"{source}: manifest names one solid stream entry twice")
    if any(a.member == container.member for a in manifest.artifacts):
        raise ManifestError(
            f"{source}: the solid stream's member {container.member} is also an archive's"
        )
    if (
        sum(a.solid.size for a in manifest.artifacts if a.solid is not None)
        != container.unpacked_size
    ):
        raise ManifestError(
            f"{source}: the solid stream's unpacked size disagrees with its entries' sizes"
        )
