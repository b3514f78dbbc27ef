"""Commands for life after install: ``list``, ``uninstall``, ``relocate``, ``check``; and the
report that ``install`` prints (links made, the PATH hint, ``--json``).

Each command parses, calls one function of :mod:`pybundle.installer.lifecycle` or
:mod:`pybundle.installer.check`, and prints. Registered on the app of :mod:`pybundle.cli.app`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from pybundle.cli.app import app

_JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _out(text: str) -> None:
    print(text)


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def report_install(results: list[Any], links: Any, as_json: bool) -> None:
    """Print what ``install`` did: one line per interpreter, its links, warnings, and (when
    links were made into a directory that is not on PATH) the line to add to the shell
    profile. ``results`` are InstallResults, ``links`` the LinkRequest (or None)."""
    made = [link for r in results for link in r.links if links and _in_dir(link, links.directory)]
    hint = None
    if links is not None and made and not links.on_path:
        from pybundle.installer.links import path_hint

        hint = path_hint(links.directory)
    if as_json:
        doc = {
            "installed": [
                {
                    "implementation": r.artifact.implementation,
                    "version": r.artifact.version,
                    "target": r.artifact.target.key,
                    "path": str(r.path),
                    "layout": r.layout,
                    "replaced": r.replaced,
                    "links": list(r.links),
                    "warnings": list(r.warnings),
                }
                for r in results
            ],
            "bin_dir": str(links.directory) if links is not None else None,
            "bin_dir_on_path": links.on_path if links is not None else None,
        }
        _out(json.dumps(doc, indent=2))
        return
    for r in results:
        verb = "replaced" if r.replaced else "installed"
        a = r.artifact
        _out(f"{verb} {a.implementation} {a.version} ({a.target.key}) -> {r.path}")
        for link in r.links:
            _out(f"  linked {link}")
        for warning in r.warnings:
            _err(f"pybundle: warning: {warning}")
    if hint is not None:
        _err(
            f"pybundle: warning: {links.directory} is not on PATH; add it (e.g. to ~/.profile): "
            f"{hint}"
        )


def warn_portability(manifest: Any) -> None:
    """After ``bundle``: one warning per ``--from-prefix`` archive that needs host libraries."""
    from pybundle.bundler.portability import describe

    for a in manifest.artifacts:
        if a.portability is not None:
            where = a.local_prefix or a.file_name
            _err(
                f"pybundle: warning: {describe(a.portability, where)}; they must be installed "
                "on every target host (--strict-portability refuses such a prefix)"
            )


def _in_dir(path: str, directory: Path) -> bool:
    return Path(path).parent == directory


def _install_json(inst: Any) -> dict[str, Any]:
    r = inst.receipt
    if r is None:
        return {"path": str(inst.path), "problem": inst.problem}
    a = r.artifact
    return {
        "path": str(inst.path),
        "key": inst.key,
        "implementation": a.implementation,
        "version": a.version,
        "variant": a.variant,
        "target": a.target.key,
        "layout": r.layout,
        "installed_at": r.installed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bundle_id": r.bundle.bundle_id,
        "bundle_serial": r.bundle.serial,
        "signer_key_id": r.bundle.signer_key_id,
        "links": list(r.links),
        "problem": inst.problem,
    }


@app.command("list")
def list_command(as_json: bool = _JSON) -> None:
    """List the interpreters pybundle installed (every layout), with their links."""
    from pybundle.installer.lifecycle import find_installs, missing_installs
    from pybundle.installer.registry import InstallIndex

    installs = find_installs()
    gone = missing_installs()
    InstallIndex().update(remove=[str(p) for p in gone])  # reported once, then forgotten
    if as_json:
        docs = [_install_json(i) for i in installs]
        docs += [{"path": str(p), "problem": "missing"} for p in gone]
        _out(json.dumps(docs, indent=2))
        return
    for path in gone:
        _err(
            f"pybundle: warning: {path}: recorded as installed but gone (removed, or moved: "
            f"`pybundle relocate {path} NEW` repairs an install moved with mv)"
        )
    if not installs:
        _out("no interpreters installed by pybundle")
        return
    for inst in installs:
        r = inst.receipt
        if r is None:
            _out(f"?  {inst.path}  ({inst.problem})")
            continue
        a = r.artifact
        variant = "" if a.variant == "default" else f"+{a.variant}"
        _out(
            f"{a.implementation}-{a.version}{variant}  {a.target.key}  {r.layout:8}  "
            f"serial {r.bundle.serial}  key {r.bundle.signer_key_id}  {inst.path}"
        )
        for link in r.links:
            _out(f"    link {link}")
        if inst.problem:
            _out(f"    {inst.problem}")
    n = len(installs)
    _out(f"{n} interpreter{'s' if n != 1 else ''}")


@app.command("uninstall")
def uninstall_command(
    target: str = typer.Argument(
        ..., help="A version (3.12), an install key (cpython-3.12.1-linux-x86_64-gnu) or a path."
    ),
    as_json: bool = _JSON,
) -> None:
    """Remove an install pybundle made, and its links; never anything without a receipt."""
    from pybundle.installer.lifecycle import uninstall

    result = uninstall(target)
    a = result.receipt.artifact
    if as_json:
        doc = {
            "removed": str(result.path),
            "implementation": a.implementation,
            "version": a.version,
            "removed_links": list(result.removed_links),
            "kept_links": list(result.kept_links),
            "warnings": list(result.warnings),
        }
        _out(json.dumps(doc, indent=2))
        return
    _out(f"removed {a.implementation} {a.version} from {result.path}")
    for link in result.removed_links:
        _out(f"  removed link {link}")
    for link in result.kept_links:
        _out(f"  left {link}: it no longer points into the install")
    for warning in result.warnings:
        _err(f"pybundle: warning: {warning}")


@app.command("relocate")
def relocate_command(
    old: str = typer.Argument(
        ..., help="The install to move: its path, key or version (or its old path after mv)."
    ),
    new: Optional[Path] = typer.Argument(None, help="Where it goes (or use --to)."),
    to: Optional[Path] = typer.Option(None, "--to", help="Where it goes."),
    as_json: bool = _JSON,
) -> None:
    """Move an install and rewrite its paths; or fix one already moved with mv (OLD NEW)."""
    from pybundle.errors import UsageError
    from pybundle.installer.lifecycle import relocate_install, resolve_one

    if (new is None) == (to is None):
        raise UsageError("give the new place either as a second argument or with --to")
    dest = new if new is not None else to
    assert dest is not None
    source: str | Path = old
    if "/" not in old and not Path(old).exists():
        source = resolve_one(old).path
    result = relocate_install(source, dest)
    if as_json:
        doc = {
            "path": str(result.path),
            "old_prefix": result.old_prefix,
            "layout": result.layout,
            "rewritten": list(result.rewritten),
            "links": list(result.links),
            "removed_links": list(result.removed_links),
            "warnings": list(result.warnings),
        }
        _out(json.dumps(doc, indent=2))
        return
    _out(
        f"relocated {result.old_prefix} -> {result.path} ({len(result.rewritten)} files rewritten)"
    )
    for link in result.links:
        _out(f"  updated link {link}")
    for link in result.removed_links:
        _out(f"  removed link {link}")
    for warning in result.warnings:
        _err(f"pybundle: warning: {warning}")


@app.command("check")
def check_command(
    target: Optional[str] = typer.Argument(
        None, help="A path, key or version (default: every pybundle install)."
    ),
    as_json: bool = _JSON,
) -> None:
    """Re-hash installs against their receipts: modified, removed and added files (exit 10)."""
    from pybundle.errors import PybundleError
    from pybundle.installer.check import InstallModifiedError, check_install
    from pybundle.installer.lifecycle import find_installs, resolve_installs

    installs = resolve_installs(target) if target else find_installs()
    docs: list[dict[str, Any]] = []
    failed = 0
    for inst in installs:
        try:
            report = check_install(inst.path)
        except PybundleError as exc:
            failed += 1
            docs.append({"path": str(inst.path), "clean": False, "error": exc.message})
            if not as_json:
                _out(f"FAILED {inst.path}: {exc.message}")
            continue
        docs.append(report.to_json())
        failed += 0 if report.clean else 1
        if as_json:
            continue
        a = report.receipt.artifact
        what = f"{a.implementation} {a.version}"
        if report.clean:
            _out(f"OK     {inst.path} ({what}): {report.files} files match the receipt")
        else:
            counts = ", ".join(
                f"{report.count(s)} {s}"
                for s in ("modified", "removed", "added")
                if report.count(s)
            )
            _out(f"FAILED {inst.path} ({what}): {counts}")
            for change in report.changes:
                detail = f" ({', '.join(change.what)})" if change.what else ""
                _out(f"  {change.status:8} {change.path}{detail}")
        if report.bytecode:
            _out(
                f"       {len(report.bytecode)} bytecode cache file(s) written or changed by "
                "Python since install (not counted)"
            )
    if as_json:
        _out(json.dumps(docs, indent=2))
    elif not installs:
        _out("no interpreters installed by pybundle")
    if failed:
        n = len(installs)
        noun = "install" if n == 1 else "installs"
        verb = "differs from its receipt" if failed == 1 else "differ from their receipts"
        raise InstallModifiedError(f"{failed} of {n} {noun} {verb}")
