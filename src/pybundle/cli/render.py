"""Text lines and JSON documents the commands print (kept out of the command functions so
each command stays parse-call-print). Sizes in text are decimal MB (:func:`common.size`);
JSON sizes are bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from pybundle.cli.common import plural, size


def plan_lines(plan: Any) -> list[str]:
    """``bundle --dry-run``: a summary line, one line per archive, one per skipped pair."""
    artifacts = plan.artifacts
    known = sum(a.entry.size or 0 for a in artifacts)
    unknown = sum(1 for a in artifacts if a.entry.size is None)
    hits = sum(1 for a in artifacts if a.cached)
    lines = [
        f"plan: {plural(len(artifacts), 'archive')}, {hits} already cached, {size(known)} known"
        + (f", {unknown} of unknown size" if unknown else "")
    ]
    for a in artifacts:
        e = a.entry
        shown = size(e.size) if e.size is not None else "size unknown"
        state = "cached" if a.cached else "download"
        target = a.target.friendly if a.target else e.target.friendly
        lines.append(
            f"  {e.key:48} {e.flavour:22} {shown:>12}  {state:8}  {a.url}  "
            f"[{a.request} on {target}]"
        )
    lines.extend(f"  skipped {s.request} on {s.target.friendly}: {s.reason}" for s in plan.skipped)
    return lines


def bundle_lines(report: Any, key: Any) -> list[str]:
    """``bundle``: one line per packed archive, skipped pairs, the download summary, and the
    closing ``wrote ...`` line."""
    lines = []
    for artifact in report.manifest.artifacts:
        computed = (
            " (sha256 computed: no catalog hash)" if artifact.sha256_source == "computed" else ""
        )
        lines.append(f"  {artifact.label}  {size(artifact.size)}{computed}")
    if report.plan is not None:
        lines.extend(
            f"  skipped {s.request} on {s.target.friendly}: {s.reason}" for s in report.plan.skipped
        )
    summary = report.summary
    if summary is not None:
        lines.append(
            f"downloads: {plural(summary.files, 'file')}, {plural(summary.hits, 'cache hit')}, "
            f"{size(summary.transferred)} in {summary.seconds:.1f} s "
            f"({summary.mb_per_s:.1f} MB/s)"
        )
    lines.extend(self_install_lines(report.output, report.manifest))
    hits = sum(1 for d in report.downloads if d.cached)
    total = sum(a.size for a in report.manifest.artifacts)
    signed = f", signed by key {key.public_key.key_id_hex}" if key else ", UNSIGNED"
    lines.append(
        f"wrote {report.output} ({plural(len(report.manifest.artifacts), 'interpreter')}, "
        f"{size(total)}{signed}; {plural(len(report.downloads), 'download')}, {hits} from cache; "
        f"{report.seconds:.1f} s)"
    )
    if getattr(report, "file_signature", None) is not None:
        lines.append(f"wrote {report.file_signature} (minisign signature of the whole file)")
    return lines


def self_install_lines(path: Path, manifest: Any) -> list[str]:
    """A self-installing bundle's bootstraps and overhead (none for a plain bundle)."""
    section = manifest.self_install
    if section is None:
        return []
    from pybundle.selfinstall.section import measure_overhead

    by_member = {a.member: a for a in manifest.artifacts}
    overhead = measure_overhead(str(path), section, [a.size for a in manifest.artifacts])
    lines = [
        f"  self-installing (sh {path.name} install): stub {overhead.stub} bytes + carried "
        f"{size(overhead.carried)} = {size(overhead.total)}, {overhead.percent:.1f}% of the "
        f"interpreters' {size(overhead.interpreters)}"
    ]
    for b in section.bootstraps:
        a = by_member.get(b.artifact)
        name = a.install_name if a is not None else b.artifact
        lines.append(
            f"    bootstrap {b.key}: {name}, {plural(len(b.wheels), 'wheel')} "
            f"({size(section.wheel_bytes(b))})"
        )
    return lines


def verified_json(path: Path, verified: Any) -> dict[str, Any]:
    """``verify --json``: what was checked and found good."""
    manifest = verified.manifest
    doc = manifest.to_json()
    return {
        "file": str(path),
        "verified": True,
        "bundle_id": manifest.bundle_id,
        "serial": manifest.serial,
        "created": doc["created"],
        "expires": doc.get("expires"),
        "signer_key_id": verified.key.key_id_hex,
        "trusted_comment": verified.signature.trusted_comment,
        "artifacts": [
            {
                "install_name": a.install_name,
                "file_name": a.file_name,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in manifest.artifacts
        ],
    }


def inspect_doc(path: Path) -> tuple[dict[str, Any], Any, Any]:
    """``inspect``: the manifest as JSON plus the (unverified) signer; returns
    ``(document, manifest, signer or None)``."""
    from pybundle.installer.source import BundleSource
    from pybundle.installer.verify import read_signer
    from pybundle.manifest import Manifest

    with BundleSource(path) as source:
        manifest = Manifest.from_bytes(source.manifest_bytes(), str(path))
        signer = read_signer(source)
    doc = manifest.to_json()
    doc["signature"] = (
        {
            "key_id": signer.key_id_hex,
            "algorithm": signer.algorithm,
            "trusted_comment": signer.trusted_comment,
        }
        if signer
        else None
    )
    doc["verified"] = False
    if manifest.self_install is not None:
        from pybundle.selfinstall.section import measure_overhead

        doc["self_install_overhead"] = measure_overhead(
            str(path), manifest.self_install, [a.size for a in manifest.artifacts]
        ).to_json()
    return doc, manifest, signer


def inspect_lines(
    doc: dict[str, Any], manifest: Any, signer: Optional[Any], path: Optional[Path] = None
) -> list[str]:
    """``inspect`` as text: bundle id, serial, signer, one line per archive, and a
    self-installing bundle's bootstraps and overhead (read from ``path``)."""
    lines = [
        f"bundle {manifest.bundle_id}  serial {manifest.serial}  created {doc['created']}",
        f"signer key id: {signer.key_id_hex if signer else '(unsigned)'} (not verified)",
    ]
    for a in manifest.artifacts:
        lines.append(f"  {a.install_name:48} {size(a.size):>10}  {a.flavour}  {a.file_name}")
        if a.portability is not None:
            lines.append(f"    needs from the host: {', '.join(a.portability.libraries)}")
    if manifest.self_install is not None and path is not None:
        lines.extend(self_install_lines(path, manifest))
    return lines


def install_json(path: Path, results: Sequence[Any], links: Any = None) -> dict[str, Any]:
    """``install --json``: the bundle and, per interpreter, what was installed where.

    ``installs[]`` holds ``name`` (uv's install name), ``implementation``, ``version``,
    ``variant``, ``target`` (uv platform key), ``path``, ``layout``, ``replaced``, ``files``
    and ``bytes`` written, ``links`` made and ``warnings``; ``bin_dir`` and
    ``bin_dir_on_path`` describe where executable links go (null with ``--no-bin``; ``links``
    is the LinkRequest)."""
    return {
        "bundle": str(path),
        "bin_dir": str(links.directory) if links is not None else None,
        "bin_dir_on_path": links.on_path if links is not None else None,
        "installs": [
            {
                "name": r.artifact.install_name,
                "implementation": r.artifact.implementation,
                "version": r.artifact.version,
                "variant": r.artifact.variant,
                "target": r.artifact.target.key,
                "path": str(r.path),
                "layout": r.layout,
                "replaced": r.replaced,
                "files": r.stats.files + r.stats.hardlinks,
                "bytes": r.stats.bytes,
                "links": list(r.links),
                "warnings": list(r.warnings),
            }
            for r in results
        ],
    }
