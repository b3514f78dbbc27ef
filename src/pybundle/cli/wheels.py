"""Wheelhouses in the CLI: ``pybundle wheels export``, the ``bundle -r/--with`` options, the
lines ``bundle``, ``bundle --dry-run`` and ``inspect`` print about wheelhouses, and the
``install --venv`` step."""

# No `from __future__ import annotations`: Typer would compile and eval every annotation
# string of every command at each start (about 5 ms; see bench/README.md, start-up).

import os
from pathlib import Path
from typing import Any, Optional

import typer

from pybundle.cli.common import (
    BUNDLE_ARGUMENT,
    JSON,
    QUIET,
    TRUSTED_KEY,
    VERBOSE,
    emit_json,
    load_keys,
    note,
    plural,
    say,
    size,
)
from pybundle.errors import UsageError

wheels_app = typer.Typer(
    name="wheels",
    help="The wheelhouses a bundle carries (bundle -r/--with): one per interpreter x platform.",
    short_help="Export a bundle's wheelhouse for pip or uv.",
    no_args_is_help=True,
)

REQUIREMENTS: Any = typer.Option(
    [],
    "--requirements",
    "-r",
    metavar="FILE",
    show_default=False,
    help="Carry wheels for this pip requirements file (repeatable): resolved by pip for every "
    "interpreter x platform in the bundle.",
)
WITH: Any = typer.Option(
    [],
    "--with",
    metavar="PKG",
    show_default=False,
    help="Carry wheels for this requirement too (repeatable, pip syntax: 'requests>=2.31').",
)
ALLOW_MISSING: Any = typer.Option(
    False,
    "--allow-missing-wheels",
    help="A requirement with no wheel for a target is left out of that wheelhouse (recorded "
    "in the manifest) instead of failing the bundle (exit 3).",
)
INDEX_URL: Any = typer.Option(
    None, "--index-url", metavar="URL", help="Package index for -r/--with (passed to pip)."
)
EXTRA_INDEX_URL: Any = typer.Option(
    [],
    "--extra-index-url",
    metavar="URL",
    show_default=False,
    help="Extra package index for -r/--with (repeatable, passed to pip).",
)
FIND_LINKS: Any = typer.Option(
    [],
    "--find-links",
    metavar="DIR|URL",
    show_default=False,
    help="Local wheel directory or page for -r/--with (repeatable, passed to pip).",
)
NO_INDEX: Any = typer.Option(
    False, "--no-index", help="For -r/--with: use --find-links only (passed to pip)."
)


def wheel_request(
    requirements: list[Path],
    packages: list[str],
    allow_missing: bool,
    index_url: Optional[str],
    extra_index_url: list[str],
    find_links: list[str],
    no_index: bool,
) -> Any:
    """The :class:`pybundle.bundler.wheelhouse.WheelRequest` of the bundle options, or None
    when none asks for wheels. Raises UsageError for index options without -r/--with."""
    options: list[str] = []
    if index_url:
        options += ["--index-url", index_url]
    for url in extra_index_url:
        options += ["--extra-index-url", url]
    for link in find_links:
        options += ["--find-links", link]
    if no_index:
        options.append("--no-index")
    if not requirements and not packages:
        if options or allow_missing:
            raise UsageError(
                "--index-url, --extra-index-url, --find-links, --no-index and "
                "--allow-missing-wheels go with -r/--requirements or --with"
            )
        return None
    from pybundle.bundler.wheelhouse import WheelRequest
    from pybundle.bundler.wheels import uv_index_options

    options += uv_index_options(os.environ, options)  # a uv user's index settings
    return WheelRequest(
        tuple(Path(p).absolute() for p in requirements),
        tuple(packages),
        tuple(options),
        allow_missing,
    )


def _pins(section: Any, house: Any) -> list[str]:
    from packaging.utils import parse_wheel_filename

    pins = []
    for member in house.wheels:
        name, version, _, _ = parse_wheel_filename(section.wheel(member).file_name)
        pins.append(f"{name}=={version}")
    return sorted(pins)


def wheelhouse_doc(section: Any) -> dict[str, Any]:
    """Sizes of a :class:`pybundle.wheelhouse.Wheelhouses` (JSON, bytes): per target its
    ``wheels`` count, ``bytes``, ``pins`` and ``missing``; ``stored_bytes`` (each wheel once),
    ``unshared_bytes`` (one copy per target) and ``saved_bytes``."""
    return {
        "targets": [
            {
                "key": t.key,
                "wheels": len(t.wheels),
                "bytes": section.target_bytes(t),
                "pins": _pins(section, t),
                "missing": [m.requirement for m in t.missing],
            }
            for t in section.targets
        ],
        "files": len(section.wheels),
        "stored_bytes": section.stored_bytes,
        "unshared_bytes": section.unshared_bytes,
        "saved_bytes": section.unshared_bytes - section.stored_bytes,
    }


def wheelhouse_lines(section: Any, *, pins: bool = True) -> list[str]:
    """Text lines about a :class:`pybundle.wheelhouse.Wheelhouses`: the summary (stored
    bytes, bytes with one copy per target, what sharing saved), then per target its count,
    bytes, pins and what is missing."""
    doc = wheelhouse_doc(section)
    lines = [
        f"wheelhouses: {plural(len(doc['targets']), 'target')}, "
        f"{plural(doc['files'], 'wheel file')} stored, {size(doc['stored_bytes'])}; "
        f"{size(doc['unshared_bytes'])} with a copy per target (sharing saved "
        f"{size(doc['saved_bytes'])})"
    ]
    width = max((len(t["key"]) for t in doc["targets"]), default=0)
    for t in doc["targets"]:
        lines.append(
            f"  {t['key']:{width}}  {plural(t['wheels'], 'wheel'):>10}  {size(t['bytes']):>10}"
        )
        if pins and t["pins"]:
            lines.append(f"    {' '.join(t['pins'])}")
        for m in t["missing"]:
            lines.append(f"    missing: {m} (no wheel for this target)")
    return lines


def dry_run_section(plan: Any, prefixes: list[Path], request: Any, cache: Path) -> Any:
    """``bundle --dry-run`` with -r/--with: the wheelhouses of the plan's interpreters and
    the ``--from-prefix`` ones. pip resolves (and downloads into the cache) to know the
    wheels and their sizes; no interpreter archive is downloaded."""
    from pybundle.bundler.prefix import probe_prefix
    from pybundle.bundler.wheelhouse import preview_wheelhouses

    interpreters = [
        (
            a.target or a.entry.target,
            str(a.entry.version),
            a.entry.implementation,
            a.entry.variant,
            a.entry.file_name,
        )
        for a in (plan.artifacts if plan is not None else ())
    ]
    for prefix in prefixes:
        info = probe_prefix(prefix)
        interpreters.append(
            (info.target, str(info.version), info.implementation, info.variant, str(prefix))
        )
    return preview_wheelhouses(interpreters, request, cache)


def venv_plan(
    path: Path,
    keys: list[Any],
    requests: list[Any],
    venv: Path,
    *,
    prefix: Optional[Path],
    force: bool,
) -> Optional[tuple[Any, Path]]:
    """Before ``install --venv`` installs anything: the bundle (signature checked) must select
    exactly one interpreter for this host and carry its wheelhouse, and ``venv`` must be
    absent or empty. Returns ``(artifact, prefix)`` of an existing pybundle install of that
    interpreter (then nothing is installed), or None. Raises UsageError, AlreadyExistsError
    and the verification errors."""
    from pybundle.installer.install import select_artifacts
    from pybundle.installer.source import BundleSource
    from pybundle.installer.venv import check_venv_destination, find_installed
    from pybundle.installer.verify import verify_archives, verify_manifest
    from pybundle.installer.wheelhouse import wheelhouse_for

    check_venv_destination(venv)
    with BundleSource(path) as source:
        manifest = verify_manifest(source, keys).manifest
        selected = select_artifacts(manifest, requests, None, str(path))
        if len(selected) != 1:
            have = ", ".join(f"{a.implementation} {a.version}" for a in selected)
            raise UsageError(
                f"--venv makes one environment, and {len(selected)} interpreters of the bundle "
                f"run here ({have}): choose one with --versions"
            )
        artifact = selected[0]
        house = wheelhouse_for(manifest, artifact, str(path))
        # every wheel of the venv is checked before the interpreter is installed (and again
        # as it is copied out, before pip runs)
        section = manifest.wheelhouses
        assert section is not None
        verify_archives(source, [*(section.wheel(m) for m in house.wheels), house.lock])
    if force:
        return None
    found = find_installed(artifact)
    if found is None or (prefix is not None and Path(prefix).absolute() != found):
        return None
    note(f"using {artifact.implementation} {artifact.version} already installed at {found}")
    return artifact, found


def venv_step(
    path: Path, keys: list[Any], results: list[Any], venv: Path, *, as_json: bool = False
) -> Any:
    """``install --venv``: the venv made from the one interpreter in ``results`` (a list of
    ``(artifact, prefix)``); prints its line (not with ``as_json``: the caller puts it in its
    document). Returns the VenvResult."""
    from pybundle.installer.venv import create_venv, python_of

    if len(results) != 1:
        raise UsageError("--venv makes one environment: choose one interpreter with --versions")
    artifact, prefix = results[0]
    made = create_venv(path, keys, artifact, python_of(prefix, artifact), venv)
    if as_json:
        return made
    say(
        f"venv {made.path}: {plural(made.wheels, 'wheel')} of {made.key} installed offline "
        f"with {made.python} ({made.seconds:.1f} s)"
    )
    for missing in made.missing:
        note(f"  not in the wheelhouse (no wheel for this target): {missing}")
    return made


@wheels_app.command("export", short_help="Verify a bundle and write a wheelhouse + lock.txt.")
def export(
    file: Optional[Path] = BUNDLE_ARGUMENT,
    directory: Optional[Path] = typer.Argument(
        None, metavar="DIR", show_default=False, hidden=True
    ),
    target: Optional[str] = typer.Option(
        None,
        "--target",
        metavar="KEY",
        help="Which wheelhouse: cpython-3.12-linux-x86_64[-gnu] (default: the only one, or "
        "the only one for this host).",
    ),
    trusted_key: list[Path] = TRUSTED_KEY,
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Verify the bundle FILE (signature, and every exported file's sha256) and write one
    wheelhouse and its lock.txt into DIR (absent or empty), for `pip install --no-index
    --find-links DIR -r DIR/lock.txt` or `uv pip install --offline --find-links DIR -r
    DIR/lock.txt`."""
    from pybundle.installer.export import export_wheelhouse

    if file is None or directory is None:
        raise UsageError("usage: pybundle wheels export FILE DIR [--target KEY]")
    done = export_wheelhouse(file, load_keys(trusted_key), directory, target)
    if as_json:
        emit_json(
            {
                "file": str(file),
                "target": done.key,
                "directory": str(done.path),
                "wheels": [p.name for p in done.wheels],
                "lock": str(done.lock),
                "bytes": done.bytes,
            }
        )
        return
    say(
        f"exported {done.key}: {plural(len(done.wheels), 'wheel')}, {size(done.bytes)} and "
        f"lock.txt -> {done.path}"
    )
    say(f"  pip install --no-index --find-links {done.path} -r {done.lock}")
