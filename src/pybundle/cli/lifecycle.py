"""Commands for life after install: ``list``, ``uninstall``, ``relocate``, ``check``; and the
report that ``install`` prints (links made, the PATH hint, ``--json``).

Each command parses, calls one function of :mod:`pybundle.installer.lifecycle` or
:mod:`pybundle.installer.check`, and prints. Registered on the app of :mod:`pybundle.cli.app`.
"""

# No `from __future__ import annotations`: Typer would compile and eval every annotation
# string of every command at each start (about 5 ms; see bench/README.md, start-up).

from pathlib import Path
from typing import Any, Optional

import typer

from pybundle.cli.app import app
from pybundle.cli.common import JSON, QUIET, VERBOSE, emit, emit_json, plural, say, warn


def report_install(
    path: Path, results: list[Any], links: Any, as_json: bool, kept: Any = None, venv: Any = None
) -> None:
    """Print what ``install`` did: one line per interpreter, its links, warnings, the kept
    pybundle (``--keep-installer``: a KeptInstaller, or None), and (when links were made into a
    directory that is not on PATH) the line to add to the shell profile; or, with ``as_json``,
    :func:`pybundle.cli.render.install_json`. ``results`` are InstallResults, ``links`` the
    LinkRequest (or None), ``venv`` the VenvResult of ``--venv`` (JSON ``venv``; its text line is
    printed by :func:`pybundle.cli.wheels.venv_step`)."""
    from pybundle.cli.render import install_json

    if as_json:
        doc = install_json(path, results, links)
        if kept is not None:
            doc["installer"] = kept.to_json()
        if venv is not None:  # install --venv: a VenvResult (pybundle.installer.venv)
            doc["venv"] = venv.to_json()
        emit_json(doc)
        return
    made = [link for r in results for link in r.links if links and _in_dir(link, links.directory)]
    if kept is not None and kept.link is not None:
        made.append(str(kept.link))
    for r in results:
        verb = "replaced" if r.replaced else "installed"
        a = r.artifact
        say(f"{verb} {a.implementation} {a.version} ({a.target.key}) -> {r.path}")
        for link in r.links:
            say(f"  linked {link}")
        for warning in r.warnings:
            warn(warning)
    if kept is not None:
        say(f"kept pybundle {kept.version} in {kept.env} (on {kept.python})")
        if kept.link is not None:
            say(f"  linked {kept.link}")
    if links is not None and made and not links.on_path:
        from pybundle.installer.links import path_hint

        warn(
            f"{links.directory} is not on PATH; add it (e.g. to ~/.profile): "
            f"{path_hint(links.directory)}"
        )


def warn_portability(manifest: Any) -> None:
    """After ``bundle``: one warning per ``--from-prefix`` archive that needs host libraries."""
    for a in manifest.artifacts:
        if a.portability is not None:
            from pybundle.bundler.portability import describe

            where = a.local_prefix or a.file_name
            warn(
                f"{describe(a.portability, where)}; they must be installed "
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


@app.command("list", short_help="List the interpreters pybundle installed.")
def list_command(as_json: bool = JSON, verbose: bool = VERBOSE, quiet: bool = QUIET) -> None:
    """List the interpreters pybundle installed (every layout), with their links."""
    from pybundle.installer.lifecycle import find_installs, missing_installs
    from pybundle.installer.registry import InstallIndex

    installs = find_installs()
    gone = missing_installs()
    InstallIndex().update(remove=[str(p) for p in gone])  # reported once, then forgotten
    if as_json:
        docs = [_install_json(i) for i in installs]
        docs += [{"path": str(p), "problem": "missing"} for p in gone]
        emit_json(docs)
        return
    for path in gone:
        warn(
            f"{path}: recorded as installed but gone (removed, or moved: "
            f"`pybundle relocate {path} NEW` repairs an install moved with mv)"
        )
    if not installs:
        emit("no interpreters installed by pybundle")
        return
    for inst in installs:
        r = inst.receipt
        if r is None:
            emit(f"?  {inst.path}  ({inst.problem})")
            continue
        a = r.artifact
        variant = "" if a.variant == "default" else f"+{a.variant}"
        emit(
            f"{a.implementation}-{a.version}{variant}  {a.target.key}  {r.layout:8}  "
            f"serial {r.bundle.serial}  key {r.bundle.signer_key_id}  {inst.path}"
        )
        for link in r.links:
            emit(f"    link {link}")
        if inst.problem:
            emit(f"    {inst.problem}")
    emit(plural(len(installs), "interpreter"))


@app.command("uninstall", short_help="Remove an install pybundle made, and its links.")
def uninstall_command(
    target: str = typer.Argument(
        ...,
        metavar="TARGET",
        show_default=False,
        hidden=True,
    ),
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Remove the install TARGET (a version such as 3.12, an install key such as
    cpython-3.12.1-linux-x86_64-gnu, or a path) and its links; never anything without a
    receipt."""
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
        emit_json(doc)
        return
    say(f"removed {a.implementation} {a.version} from {result.path}")
    for link in result.removed_links:
        say(f"  removed link {link}")
    for link in result.kept_links:
        say(f"  left {link}: it no longer points into the install")
    for warning in result.warnings:
        warn(warning)


@app.command("relocate", short_help="Move an install and rewrite its paths.")
def relocate_command(
    old: str = typer.Argument(
        ...,
        metavar="OLD",
        show_default=False,
        hidden=True,
    ),
    new: Optional[Path] = typer.Argument(None, metavar="NEW", show_default=False, hidden=True),
    to: Optional[Path] = typer.Option(None, "--to", metavar="DIR", help="Where it goes."),
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Move the install OLD (its path, key or version) to NEW (or --to DIR) and rewrite its
    paths; or repair an install already moved with mv (OLD is then its old path)."""
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
        emit_json(doc)
        return
    say(
        f"relocated {result.old_prefix} -> {result.path} "
        f"({plural(len(result.rewritten), 'file')} rewritten)"
    )
    for link in result.links:
        say(f"  updated link {link}")
    for link in result.removed_links:
        say(f"  removed link {link}")
    for warning in result.warnings:
        warn(warning)


@app.command("check", short_help="Re-hash installs against their receipts.")
def check_command(
    target: Optional[str] = typer.Argument(
        None,
        metavar="TARGET",
        show_default=False,
        hidden=True,
    ),
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Re-hash the install TARGET (a path, key or version; default: every pybundle install)
    against its receipt and report modified, removed and added files (exit 10 if any)."""
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
                emit(f"FAILED {inst.path}: {exc.message}")
            continue
        docs.append(report.to_json())
        failed += 0 if report.clean else 1
        if as_json:
            continue
        a = report.receipt.artifact
        what = f"{a.implementation} {a.version}"
        if report.clean:
            emit(f"OK     {inst.path} ({what}): {report.files} files match the receipt")
        else:
            counts = ", ".join(
                f"{report.count(s)} {s}"
                for s in ("modified", "removed", "added")
                if report.count(s)
            )
            emit(f"FAILED {inst.path} ({what}): {counts}")
            for change in report.changes:
                detail = f" ({', '.join(change.what)})" if change.what else ""
                emit(f"  {change.status:8} {change.path}{detail}")
        if report.bytecode:
            emit(
                f"       {plural(len(report.bytecode), 'bytecode cache file')} written or "
                "changed by Python since install (not counted)"
            )
    if as_json:
        emit_json(docs)
    elif not installs:
        emit("no interpreters installed by pybundle")
    if failed:
        n = len(installs)
        noun = "install" if n == 1 else "installs"
        verb = "differs from its receipt" if failed == 1 else "differ from their receipts"
        raise InstallModifiedError(f"{failed} of {n} {noun} {verb}")
