"""The typer app. Each command parses options, calls one library function, prints the result;
the conventions they share are in :mod:`pybundle.cli.common`.

Errors are not handled here: they propagate to :func:`pybundle.cli.main`.
"""

# No `from __future__ import annotations`: Typer would compile and eval every annotation
# string of every command at each start (about 5 ms; see bench/README.md, start-up).

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Optional

import typer

from pybundle import __version__
from pybundle.cli.cache import CACHE_DIR, cache_app, duration
from pybundle.cli.common import (
    BUNDLE_ARGUMENT,
    FROM_OPTION,
    JSON,
    QUIET,
    TRUSTED_KEY,
    VERBOSE,
    bars_enabled,
    bundle_path,
    default_install_dir_text,
    emit,
    emit_json,
    load_keys,
    note,
    plural,
    say,
    state,
    warn,
)
from pybundle.cli.keys import keygen, password_for
from pybundle.cli.signals import interruptible
from pybundle.cli.wheels import (
    ALLOW_MISSING,
    EXTRA_INDEX_URL,
    FIND_LINKS,
    INDEX_URL,
    NO_INDEX,
    REQUIREMENTS,
    WITH,
    wheels_app,
)
from pybundle.errors import EXIT_CODES, UsageError

app = typer.Typer(
    name="pybundle",
    help="Bundle Python interpreters into one signed file; install them offline, relocated.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    epilog="Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
)

__all__ = ["app", "state"]


def _version(value: bool) -> None:
    if value:
        print(f"pybundle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Bundle Python interpreters into one signed file; install them offline, relocated."""


app.command("keygen", short_help="Create a minisign key pair for signing bundles.")(keygen)
app.add_typer(cache_app, name="cache")
app.add_typer(wheels_app, name="wheels")


# ---- bundle


def _expiry(expires_in: Optional[str]) -> Optional[datetime]:
    if expires_in is None:
        return None
    from pybundle.bundler.reproducible import now  # SOURCE_DATE_EPOCH when set

    return now() + timedelta(seconds=duration(expires_in, "--expires-in"))


_VERSIONS_HELP = (
    "Requests, comma list, repeatable: 3.12 (newest patch), 3.12.1, 3.15.0rc1, "
    ">=3.10,<3.13 or 3.10-3.13 (newest patch of each minor), pypy-3.10, 3.13t."
)
_PLATFORM: Any = typer.Option(
    [],
    "--platform",
    metavar="PLATFORM",
    show_default=False,
    help="Target platform or group (repeatable, comma list): linux-x86_64, linux-x86_64_v3, "
    "macos-aarch64, all-linux, all; default: this host.",
)
_CATALOG: Any = typer.Option(
    None,
    "--catalog",
    metavar="PATH|URL|DIR",
    help="uv downloads-JSON catalog (path or URL), or a directory of PBS archives with "
    "SHA256SUMS (default: $PYBUNDLE_CATALOG, else uv's public catalog).",
)
_PBS_RELEASE: Any = typer.Option(
    None,
    "--pbs-release",
    metavar="TAG",
    help="Read python-build-standalone release TAG through its SHA256SUMS (honours --mirror).",
)
_MIRROR: Any = typer.Option(
    None,
    "--mirror",
    metavar="URL",
    help="Replaces the python-build-standalone release-download prefix.",
)


@app.command(short_help="Resolve, download and pack a signed .pybundle file.")
@interruptible
def bundle(
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="The .pybundle file to write (not needed with --dry-run).",
    ),
    versions: list[str] = typer.Option(
        [], "--versions", metavar="LIST", show_default=False, help=_VERSIONS_HELP
    ),
    platform: list[str] = _PLATFORM,
    variant: str = typer.Option(
        "default",
        "--variant",
        metavar="VARIANT",
        help="default, freethreaded, debug or freethreaded+debug.",
    ),
    flavour: Optional[str] = typer.Option(
        None,
        "--flavour",
        metavar="FLAVOUR",
        help="install_only, install_only_stripped or full (default: what uv would pick).",
    ),
    build: Optional[str] = typer.Option(
        None, "--build", metavar="TAG", help="Pin a python-build-standalone release, e.g. 20260814."
    ),
    prerelease: str = typer.Option(
        "disallow",
        "--prerelease",
        metavar="POLICY",
        help="disallow (a prerelease only when named), allow, or if-necessary (as uv).",
    ),
    catalog: Optional[str] = _CATALOG,
    pbs_release: Optional[str] = _PBS_RELEASE,
    mirror: Optional[str] = _MIRROR,
    allow_unhashed: bool = typer.Option(
        False,
        "--allow-unhashed",
        help="Accept catalog entries without sha256: hash at bundle time (said in the manifest).",
    ),
    cache_dir: Optional[Path] = CACHE_DIR,
    sign_key: Optional[Path] = typer.Option(
        None,
        "--sign-key",
        metavar="KEY",
        help="minisign secret key to sign the manifest with (encrypted keys: password from "
        "$PYBUNDLE_KEY_PASSWORD, else asked).",
    ),
    from_prefix: list[Path] = typer.Option(
        [],
        "--from-prefix",
        metavar="DIR",
        show_default=False,
        help="Also pack this local installation (repeatable).",
    ),
    prefix_site_packages: str = typer.Option(
        "all",
        "--prefix-site-packages",
        metavar="all|pip",
        help="For --from-prefix: keep all of site-packages, or pip only.",
    ),
    prefix_format: Optional[str] = typer.Option(
        None,
        "--prefix-format",
        metavar="FORMAT",
        help="For --from-prefix: tar.zst or tar.gz (default: tar.zst; tar.gz with "
        "--self-installing).",
    ),
    jobs: int = typer.Option(
        4, "--jobs", "-j", min=1, max=32, metavar="N", help="Parallel downloads."
    ),
    strict_portability: bool = typer.Option(
        False,
        "--strict-portability",
        help="For --from-prefix: refuse a prefix that needs host libraries (manylinux policy).",
    ),
    self_installing: bool = typer.Option(
        False,
        "--self-installing",
        help="Make the file install itself on a Linux host with no Python (sh FILE install): "
        "it carries pybundle and its wheels, and FILE.minisig signs the whole file.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (what would be downloaded); download nothing."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the plan as JSON; implies --dry-run."
    ),
    serial: Optional[int] = typer.Option(
        None,
        "--serial",
        min=0,
        metavar="N",
        help="Manifest serial (default: creation time, Unix seconds).",
    ),
    expires_in: Optional[str] = typer.Option(
        None,
        "--expires-in",
        metavar="AGE",
        help="Installers refuse the bundle after this long: 90d, 12w.",
    ),
    compact: bool = typer.Option(
        False,
        "--compact",
        help="Carry the archives as one solid LZMA2 stream (7z): about half the size, slower "
        "to make.",
    ),
    volume_size: Optional[str] = typer.Option(
        None,
        "--volume-size",
        metavar="SIZE",
        help="Write FILE.001, FILE.002 and so on, each at most SIZE: 700M, 4G, 4GB or fat32 "
        "(4 GiB - 1); cat FILE.0* > FILE joins them.",
    ),
    requirements: list[Path] = REQUIREMENTS,
    with_: list[str] = WITH,
    allow_missing_wheels: bool = ALLOW_MISSING,
    index_url: Optional[str] = INDEX_URL,
    extra_index_url: list[str] = EXTRA_INDEX_URL,
    find_links: list[str] = FIND_LINKS,
    no_index: bool = NO_INDEX,
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Resolve versions against the catalog, download, and pack one signed .pybundle file.
    With -r/--with, also carry the wheels of those packages, resolved by pip for every
    interpreter x platform. With SOURCE_DATE_EPOCH set, the same inputs give the same bytes."""
    from pybundle.bundler.build import build_bundle, plan_selection
    from pybundle.bundler.cache import default_cache_dir
    from pybundle.bundler.selection import Selection
    from pybundle.bundler.solid import CompactOptions
    from pybundle.cli.render import bundle_lines, plan_lines
    from pybundle.cli.wheels import (
        dry_run_section,
        wheel_request,
        wheelhouse_doc,
        wheelhouse_lines,
    )

    wheels = wheel_request(
        requirements,
        with_,
        allow_missing_wheels,
        index_url,
        extra_index_url,
        find_links,
        no_index,
    )
    selection = Selection.parse(
        versions,
        platform,
        variant=variant,
        flavour=flavour,
        build=build,
        prerelease=prerelease,
        allow_unhashed=allow_unhashed,
        catalog=catalog,
        pbs_release=pbs_release,
        mirror=mirror,
    )
    expires = _expiry(expires_in)
    from pybundle.volumes import parse_volume_size

    volume_bytes = parse_volume_size(volume_size) if volume_size is not None else None
    cache = cache_dir or default_cache_dir()
    if dry_run or as_json:
        plan = plan_selection(selection, cache) if selection.requests or not wheels else None
        section = dry_run_section(plan, from_prefix, wheels, cache) if wheels else None
        if as_json:
            doc = plan.to_json() if plan is not None else {}
            if section is not None:
                doc["wheelhouses"] = wheelhouse_doc(section)
            emit_json(doc)
        else:
            lines = plan_lines(plan) if plan is not None else []
            emit(*lines, *(wheelhouse_lines(section) if section is not None else []))
        return
    if output is None:
        raise UsageError("missing option --output/-o (or use --dry-run)")
    if not selection.requests and not from_prefix:
        raise UsageError("nothing to bundle: give --versions and/or --from-prefix")
    key = _secret_key(sign_key)
    if key is None:
        warn("no --sign-key given; the bundle is unsigned and will not install")
    from pybundle.bundler.progress import TqdmProgress

    progress = TqdmProgress(0, enabled=bars_enabled())
    try:
        report = build_bundle(
            output,
            selection,
            cache_dir=cache,
            secret_key=key,
            from_prefixes=from_prefix,
            prefix_site_packages=prefix_site_packages,
            prefix_format=prefix_format or ("tar.gz" if self_installing else "tar.zst"),
            jobs=jobs,
            force=force,
            serial=serial,
            expires=expires,
            progress=progress,
            strict_portability=strict_portability,
            compact=CompactOptions() if compact else None,
            volume_size=volume_bytes,
            self_installing=self_installing,
            on_warning=warn,
            wheels=wheels,
        )
    finally:
        progress.close()
    from pybundle.cli.lifecycle import warn_portability

    warn_portability(report.manifest)
    say(*bundle_lines(report, key))


def _secret_key(path: Optional[Path]) -> Any:
    if path is None:
        return None
    from pybundle.signing import load_secret_key

    return load_secret_key(path.expanduser(), password_for(path))


# ---- versions


@app.command("versions", short_help="List the interpreters a catalog offers.")
def versions_command(
    platform: list[str] = _PLATFORM,
    catalog: Optional[str] = _CATALOG,
    pbs_release: Optional[str] = _PBS_RELEASE,
    mirror: Optional[str] = _MIRROR,
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """List every interpreter the catalog offers for the platforms (newest first), with the
    newest python-build-standalone release that has it, like `uv python list --all-versions`."""
    from pybundle.bundler.build import load_entries
    from pybundle.bundler.offer import offers
    from pybundle.bundler.selection import Selection

    selection = Selection.parse(
        (), platform, catalog=catalog, pbs_release=pbs_release, mirror=mirror
    )
    found = offers(load_entries(selection), selection.platforms)
    if as_json:
        emit_json([o.to_json() for o in found])
        return
    width = max((len(o.name) for o in found), default=0)
    emit(*(f"{o.name:{width}}  {o.build:10}  {', '.join(o.flavours)}" for o in found))
    say(f"{plural(len(found), 'interpreter')} in the catalog")


# ---- verify, inspect, install


@app.command(short_help="Check a bundle's signature and hashes.")
def verify(
    file: Optional[Path] = BUNDLE_ARGUMENT,
    from_: Optional[Path] = FROM_OPTION,
    trusted_key: list[Path] = TRUSTED_KEY,
    allow_expired: bool = typer.Option(
        False, "--allow-expired", help="Accept an expired or future-dated bundle."
    ),
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Check the signature, freshness and every archive's sha256 of the bundle FILE (or --from
    FILE), without extracting."""
    from pybundle.cli.render import verified_json
    from pybundle.installer.verify import verify_bundle

    path = bundle_path(file, from_)
    verified = verify_bundle(path, load_keys(trusted_key), allow_expired=allow_expired)
    if as_json:
        emit_json(verified_json(path, verified))
        return
    manifest = verified.manifest
    carried = len(manifest.carried_files())
    wheels = len(manifest.wheelhouse_files())
    say(
        f"OK {path}: signed by key {verified.key.key_id_hex}, serial {manifest.serial}, "
        f"{plural(len(manifest.artifacts), 'archive')}"
        + (f" and {plural(carried, 'carried file')}" if carried else "")
        + (f" and {plural(wheels, 'wheelhouse file')}" if wheels else "")
        + " verified"
    )


@app.command(short_help="Show what a bundle holds (nothing verified).")
def inspect(
    file: Optional[Path] = BUNDLE_ARGUMENT,
    from_: Optional[Path] = FROM_OPTION,
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Show what the bundle FILE (or --from FILE) holds. Nothing is verified: use
    `pybundle verify` for that."""
    from pybundle.cli.render import inspect_doc, inspect_lines

    path = bundle_path(file, from_)
    doc, manifest, signer = inspect_doc(path)
    if as_json:
        emit_json(doc)
    else:
        emit(*inspect_lines(doc, manifest, signer, path))


@app.command(short_help="Verify a bundle and install its interpreters.")
def install(
    file: Optional[Path] = BUNDLE_ARGUMENT,
    from_: Optional[Path] = FROM_OPTION,
    trusted_key: list[Path] = TRUSTED_KEY,
    versions: list[str] = typer.Option(
        [],
        "--versions",
        "--version",
        metavar="LIST",
        show_default=False,
        help="Install only these (repeatable, comma list; the requests of bundle --versions).",
    ),
    install_dir: Optional[Path] = typer.Option(
        None,
        "--install-dir",
        metavar="DIR",
        help=f"Parent dir of installs (default: {default_install_dir_text()}).",
    ),
    prefix: Optional[Path] = typer.Option(
        None, "--prefix", metavar="DIR", help="Install exactly here (one interpreter only)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing pybundle install of the same kind atomically."
    ),
    allow_expired: bool = typer.Option(
        False, "--allow-expired", help="Accept an expired or future-dated bundle."
    ),
    allow_downgrade: bool = typer.Option(
        False, "--allow-downgrade", help="Accept a serial older than one already installed."
    ),
    layout: str = typer.Option(
        "pybundle",
        "--layout",
        metavar="pybundle|uv|pyenv",
        help="pybundle, uv (uv's python dir) or pyenv ($(pyenv root)/versions).",
    ),
    pyenv_name: Optional[str] = typer.Option(
        None,
        "--pyenv-name",
        metavar="NAME",
        help="With --layout pyenv: the version name (default: the version, e.g. 3.12.1).",
    ),
    default: bool = typer.Option(
        False, "--default", help="Also link python3 and python to the newest interpreter."
    ),
    no_bin: bool = typer.Option(
        False, "--no-bin", help="Make no links in $PYBUNDLE_BIN_DIR (default ~/.local/bin)."
    ),
    venv: Optional[Path] = typer.Option(
        None,
        "--venv",
        metavar="DIR",
        help="Also make a venv at DIR (absent or empty) with the bundle's wheels for the one "
        "interpreter selected (--versions), offline; an existing pybundle install of it is "
        "used as is.",
    ),
    keep_installer: bool = typer.Option(
        False,
        "--keep-installer",
        help="From a self-installing bundle: also keep a pybundle command (its own "
        "environment, built from the wheels the file carries; linked into the bin dir).",
    ),
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Verify the bundle FILE (or --from FILE) and install its interpreters for this host,
    relocated."""
    from pybundle.cli.lifecycle import report_install
    from pybundle.installer.install import LinkRequest, install_bundle
    from pybundle.versions import parse_request_list

    path = bundle_path(file, from_)
    requests = [r for text in versions for r in parse_request_list(text)]
    links = None if no_bin else LinkRequest(default=default)
    keys = load_keys(trusted_key)
    if venv is not None:
        from pybundle.cli.wheels import venv_plan, venv_step

        existing = venv_plan(path, keys, requests, venv, prefix=prefix, force=force)
        if existing is not None:  # already installed by pybundle: no second install
            made = venv_step(path, keys, [existing], venv, as_json=as_json)
            if as_json:
                emit_json({"bundle": str(path), "installs": [], "venv": made.to_json()})
            return
    keeper = None
    if keep_installer:  # refused before anything is installed when it cannot be done
        from pybundle.installer.keep import plan_keep

        keeper = plan_keep(path, keys, requests, prefix=prefix, layout=layout)
    bars = _install_bars() if bars_enabled() else None
    try:
        results = install_bundle(
            path,
            keys,
            install_dir=install_dir,
            prefix=prefix,
            versions=requests,
            force=force,
            allow_expired=allow_expired,
            allow_downgrade=allow_downgrade,
            on_verified=lambda v: note(
                f"verified {path}: signed by key {v.key.key_id_hex}, serial {v.manifest.serial}"
            ),
            on_warning=warn,
            progress=bars,
            layout=layout,
            pyenv_name=pyenv_name,
            links=links,
        )
    finally:
        if bars is not None:
            bars.close()
    kept = None
    if keeper is not None:
        from pybundle.installer.keep import keep_installer as keep

        kept = keep(keeper, results, links=links, on_warning=warn)
    made = None
    if venv is not None and as_json:  # the venv goes into the one JSON document
        from pybundle.cli.wheels import venv_step

        made = venv_step(path, keys, [(r.artifact, r.path) for r in results], venv, as_json=True)
    report_install(path, results, links, as_json, kept, venv=made)
    if venv is not None and not as_json:
        from pybundle.cli.wheels import venv_step

        venv_step(path, keys, [(r.artifact, r.path) for r in results], venv)


def _install_bars() -> Any:
    """The install progress bars, or None without tqdm (a self-installing bundle's installer
    does not carry it)."""
    try:
        from pybundle.cli.progress import InstallBars
    except ImportError:
        return None
    return InstallBars()


import pybundle.cli.lifecycle  # noqa: E402, F401  (registers list, uninstall, relocate, check)
