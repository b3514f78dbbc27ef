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
    if report.manifest.wheelhouses is not None:
        from pybundle.cli.wheels import wheelhouse_lines

        lines.extend(wheelhouse_lines(report.manifest.wheelhouses, pins=False))
        lines.append(f"  wheels resolved and fetched by pip in {report.wheel_seconds:.1f} s")
    lines.extend(
        self_install_lines(
            report.output.name, report.manifest, report.stub_bytes, volumes=bool(report.parts)
        )
    )
    hits = sum(1 for d in report.downloads if d.cached)
    total = sum(a.size for a in report.manifest.artifacts)
    solid = report.manifest.solid
    if solid is not None:
        inside = sum(a.size for a in report.manifest.artifacts if a.solid is not None)
        lines.append(
            f"compact: {size(inside)} of archives -> {size(solid.size)} solid LZMA2 stream "
            f"({solid.size / inside:.0%}; {report.compact_seconds:.1f} s)"
        )
    if report.parts:
        lines.append(
            f"volumes: {', '.join(p.name for p in report.parts)} "
            f"(join: cat {report.output.name}.0* > {report.output.name})"
        )
    signed = f", signed by key {key.public_key.key_id_hex}" if key else ", UNSIGNED"
    paths = report.parts or [report.output]
    written = sum(p.stat().st_size for p in paths if p.exists()) or total
    lines.append(
        f"wrote {report.output} ({plural(len(report.manifest.artifacts), 'interpreter')}, "
        f"{size(written)}{signed}; {plural(len(report.downloads), 'download')}, {hits} from cache; "
        f"{report.seconds:.1f} s)"
    )
    if getattr(report, "file_signature", None) is not None:
        lines.append(f"wrote {report.file_signature} (minisign signature of the whole file)")
    return lines


def self_install_lines(
    name: str, manifest: Any, stub_bytes: int, *, volumes: bool = False
) -> list[str]:
    """A self-installing bundle's bootstraps and overhead (none for a plain bundle): ``name``
    is the file's name (a volume set's joined name), ``stub_bytes`` the size of the sh stub in
    front of the zip; with ``volumes`` (a volume set), how to join it first (sh reads one
    file)."""
    section = manifest.self_install
    if section is None:
        return []
    from pybundle.selfinstall.section import Overhead

    by_member = {a.member: a for a in manifest.artifacts}
    overhead = Overhead(stub_bytes, section.carried_bytes, sum(a.size for a in manifest.artifacts))
    lines = [
        f"  self-installing (sh {name} install): stub {overhead.stub} bytes + carried "
        f"{size(overhead.carried)} = {size(overhead.total)}, {overhead.percent:.1f}% of the "
        f"interpreters' {size(overhead.interpreters)}"
    ]
    for b in section.bootstraps:
        a = by_member.get(b.artifact)
        label = a.install_name if a is not None else b.artifact
        lines.append(
            f"    bootstrap {b.key}: {label}, {plural(len(b.wheels), 'wheel')} "
            f"({size(section.wheel_bytes(b))})"
        )
    if volumes:
        lines.append(
            f"    sh reads one file: join the volumes first (cat {name}.0* > {name}), then "
            f"sh {name} install"
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
        parts = list(zip(source.file.parts, source.file.sizes))
        stub_bytes = source.preamble_size()
    doc = manifest.to_json()
    doc["container"] = container_doc(manifest, parts, volume_set=source.file.is_volume_set)
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
    if manifest.wheelhouses is not None:
        from pybundle.cli.wheels import wheelhouse_doc

        doc["wheelhouse_sizes"] = wheelhouse_doc(manifest.wheelhouses)
    if manifest.self_install is not None:
        from pybundle.selfinstall.section import Overhead

        doc["self_install_overhead"] = Overhead(
            stub_bytes,
            manifest.self_install.carried_bytes,
            sum(a.size for a in manifest.artifacts),
        ).to_json()
    return doc, manifest, signer


def container_doc(
    manifest: Any, parts: Sequence[tuple[Path, int]], *, volume_set: bool
) -> dict[str, Any]:
    """``inspect``'s ``container``: ``kind`` (``zip``, or ``zip+7z`` for a compact bundle),
    ``compression`` (``stored`` or the solid stream's ``lzma2``), ``archives_bytes`` (the
    upstream archives' sizes added up), ``carried_bytes`` (what carries them in the file),
    ``ratio`` (carried / archives), ``file_bytes`` and ``volumes`` (``[{"file", "bytes"}]``
    for a volume set, else empty)."""
    solid = manifest.solid
    archives = sum(a.size for a in manifest.artifacts)
    carried = sum(a.size for a in manifest.artifacts if a.solid is None) + (
        solid.size if solid else 0
    )
    return {
        "kind": "zip+7z" if solid else "zip",
        "compression": solid.compression if solid else "stored",
        "dictionary": solid.dictionary if solid else None,
        "solid_archives": sum(1 for a in manifest.artifacts if a.solid is not None),
        "archives_bytes": archives,
        "carried_bytes": carried,
        "ratio": round(carried / archives, 4) if archives else None,
        "file_bytes": sum(n for _, n in parts),
        "volumes": [{"file": str(p), "bytes": n} for p, n in parts] if volume_set else [],
    }


def inspect_lines(
    doc: dict[str, Any], manifest: Any, signer: Optional[Any], path: Optional[Path] = None
) -> list[str]:
    """``inspect`` as text: bundle id, serial, signer, container, one line per archive, and a
    self-installing bundle's bootstraps and overhead (``doc["self_install_overhead"]``; the
    file named as ``path``, a volume set by its joined name)."""
    lines = [
        f"bundle {manifest.bundle_id}  serial {manifest.serial}  created {doc['created']}",
        f"signer key id: {signer.key_id_hex if signer else '(unsigned)'} (not verified)",
    ]
    c = doc["container"]
    if c["kind"] == "zip":
        lines.append(f"container: zip, archives stored as published ({size(c['file_bytes'])})")
    else:
        lines.append(
            f"container: zip with a solid 7z stream, {c['compression']} "
            f"(dictionary {c['dictionary'] // 1024**2} MiB): {c['solid_archives']} archives, "
            f"{size(c['archives_bytes'])} as published -> {size(c['carried_bytes'])} "
            f"(ratio {c['ratio']:.2f})"
        )
    if c["volumes"]:
        lines.append(
            f"volumes: {len(c['volumes'])} ("
            + ", ".join(f"{Path(v['file']).name} {size(v['bytes'])}" for v in c["volumes"])
            + ")"
        )
    for a in manifest.artifacts:
        where = "  [solid]" if a.solid is not None else ""
        lines.append(f"  {a.install_name:48} {size(a.size):>10}  {a.flavour}  {a.file_name}{where}")
        if a.portability is not None:
            lines.append(f"    needs from the host: {', '.join(a.portability.libraries)}")
    if manifest.wheelhouses is not None:
        from pybundle.cli.wheels import wheelhouse_lines

        lines.extend(wheelhouse_lines(manifest.wheelhouses))
    if manifest.self_install is not None and "self_install_overhead" in doc:
        name = path.name if path is not None else "FILE"
        if c["volumes"]:
            name = Path(c["volumes"][0]["file"]).name.rpartition(".")[0]
        stub = doc["self_install_overhead"]["stub_bytes"]
        lines.extend(self_install_lines(name, manifest, stub, volumes=bool(c["volumes"])))
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
