"""The typer app. Each command parses options, calls one library function, prints the result.

Errors are not handled here: they propagate to :func:`pybundle.cli.main`.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from pybundle import __version__
from pybundle.errors import EXIT_CODES, UsageError

app = typer.Typer(
    name="pybundle",
    help="Bundle Python interpreters into one signed file; install them offline, relocated.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    epilog="Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
)


class _State:
    verbose = False


state = _State()


def _version(value: bool) -> None:
    if value:
        print(f"pybundle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state.verbose = verbose


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _duration(text: str, option: str) -> float:
    """Seconds in a duration like ``30d``, ``12h``, ``90m``, ``3600s`` or ``2w``."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None:
        raise UsageError(f"invalid {option} {text!r}: expected e.g. 30d, 12h, 90m")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * unit


def _expiry(expires_in: Optional[str]) -> Optional[datetime]:
    if expires_in is None:
        return None
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now + timedelta(seconds=_duration(expires_in, "--expires-in"))


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@app.command()
def keygen(
    secret_key: Path = typer.Option(..., "--secret-key", help="Where to write the secret key."),
    public_key: Path = typer.Option(..., "--public-key", help="Where to write the public key."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing key files."),
) -> None:
    """Create an Ed25519 key pair in minisign's file formats (secret key mode 0600)."""
    from pybundle.signing import write_keypair

    key = write_keypair(secret_key.expanduser(), public_key.expanduser(), force=force)
    print(f"key id {key.public_key.key_id_hex}")
    print(f"secret key: {secret_key}")
    print(f"public key: {public_key}")


@app.command()
def bundle(
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="The .pybundle file to write (not needed with --dry-run)."
    ),
    versions: list[str] = typer.Option(
        [],
        "--versions",
        help="Requests, comma list, repeatable: 3.12 (newest patch), 3.12.1, 3.15.0rc1, "
        ">=3.10,<3.13 or 3.10-3.13 (newest patch of each minor), pypy-3.10, 3.13t.",
    ),
    platform: list[str] = typer.Option(
        [],
        "--platform",
        help="Target platform or group (repeatable, comma list): linux-x86_64, linux-x86_64_v3, "
        "macos-aarch64, all-linux, all; default: this host.",
    ),
    variant: str = typer.Option(
        "default", "--variant", help="default, freethreaded, debug or freethreaded+debug."
    ),
    flavour: Optional[str] = typer.Option(
        None,
        "--flavour",
        help="install_only, install_only_stripped or full (default: what uv would pick).",
    ),
    build: Optional[str] = typer.Option(
        None, "--build", help="Pin a python-build-standalone release, e.g. 20260814."
    ),
    prerelease: str = typer.Option(
        "disallow",
        "--prerelease",
        help="disallow (a prerelease only when named), allow, or if-necessary (as uv).",
    ),
    catalog: Optional[str] = typer.Option(
        None,
        "--catalog",
        help="uv downloads-JSON catalog (path or URL), or a directory of PBS archives with "
        "SHA256SUMS (default: $PYBUNDLE_CATALOG or uv's).",
    ),
    pbs_release: Optional[str] = typer.Option(
        None,
        "--pbs-release",
        help="Read python-build-standalone release TAG through its SHA256SUMS (honours --mirror).",
    ),
    mirror: Optional[str] = typer.Option(
        None, "--mirror", help="Replaces the python-build-standalone release-download prefix."
    ),
    allow_unhashed: bool = typer.Option(
        False,
        "--allow-unhashed",
        help="Accept catalog entries without sha256: hash at bundle time (said in the manifest).",
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Download cache (default: $PYBUNDLE_CACHE_DIR or user cache)."
    ),
    sign_key: Optional[Path] = typer.Option(
        None, "--sign-key", help="minisign secret key to sign the manifest with."
    ),
    from_prefix: list[Path] = typer.Option(
        [], "--from-prefix", help="Also pack this local installation (repeatable)."
    ),
    prefix_site_packages: str = typer.Option(
        "all", "--prefix-site-packages", help="For --from-prefix: 'all' or 'pip' (pip only)."
    ),
    prefix_format: str = typer.Option(
        "tar.zst", "--prefix-format", help="For --from-prefix: tar.zst or tar.gz."
    ),
    strict_portability: bool = typer.Option(
        False,
        "--strict-portability",
        help="For --from-prefix: refuse a prefix that needs host libraries (manylinux policy).",
    ),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=32, help="Parallel downloads."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (what would be downloaded); download nothing."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the plan as JSON; implies --dry-run."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
    serial: Optional[int] = typer.Option(
        None, "--serial", min=0, help="Manifest serial (default: creation time, Unix seconds)."
    ),
    expires_in: Optional[str] = typer.Option(
        None, "--expires-in", help="Installers refuse the bundle after this long: 90d, 12w."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
) -> None:
    """Resolve versions against the catalog, download, and pack one signed .pybundle file."""
    from pybundle.bundler.build import build_bundle, load_entries, make_plan, mark_cached
    from pybundle.bundler.cache import default_cache_dir
    from pybundle.bundler.progress import TqdmProgress
    from pybundle.signing import load_secret_key
    from pybundle.targets import host_target, parse_platform_or_group
    from pybundle.versions import parse_request_list

    requests = [r for text in versions for r in parse_request_list(text)]
    targets = [
        parse_platform_or_group(p) for text in platform for p in text.split(",") if p.strip()
    ] or [host_target()]
    cache = cache_dir or default_cache_dir()
    if dry_run or as_json:
        if not requests:
            raise UsageError("nothing to plan: give --versions")
        entries = load_entries(catalog, pbs_release=pbs_release, mirror=mirror)
        the_plan = make_plan(
            entries,
            requests,
            targets,
            mirror=mirror,
            variant=variant,
            flavour=flavour,
            build=build,
            prerelease=prerelease,
            allow_unhashed=allow_unhashed,
        )
        the_plan = mark_cached(the_plan, cache)
        if as_json:
            print(json.dumps(the_plan.to_json(), indent=2))
            return
        known = sum(a.entry.size or 0 for a in the_plan.artifacts)
        unknown = sum(1 for a in the_plan.artifacts if a.entry.size is None)
        hits = sum(1 for a in the_plan.artifacts if a.cached)
        print(
            f"plan: {len(the_plan.artifacts)} archives, {hits} already cached, "
            f"{_size(known)} known" + (f", {unknown} of unknown size" if unknown else "")
        )
        for a in the_plan.artifacts:
            e = a.entry
            size = _size(e.size) if e.size is not None else "size unknown"
            state_ = "cached" if a.cached else "download"
            print(
                f"  {e.key:48} {e.flavour:22} {size:>12}  {state_:8}  {a.url}  "
                f"[{a.request} on {a.target.friendly if a.target else e.target.friendly}]"
            )
        for s in the_plan.skipped:
            print(f"  skipped {s.request} on {s.target.friendly}: {s.reason}")
        return
    if output is None:
        raise UsageError("missing option --output/-o (or use --dry-run)")
    if not requests and not from_prefix:
        raise UsageError("nothing to bundle: give --versions and/or --from-prefix")
    key = load_secret_key(sign_key.expanduser()) if sign_key else None
    if key is None:
        _err("warning: no --sign-key given; the bundle is unsigned and will not install")
    progress = TqdmProgress(0, enabled=False if quiet else None)
    try:
        report = build_bundle(
            output,
            versions=requests,
            targets=targets,
            catalog=catalog,
            pbs_release=pbs_release,
            mirror=mirror,
            cache_dir=cache,
            secret_key=key,
            from_prefixes=from_prefix,
            prefix_site_packages=prefix_site_packages,
            prefix_format=prefix_format,
            jobs=jobs,
            force=force,
            serial=serial,
            expires=_expiry(expires_in),
            variant=variant,
            flavour=flavour,
            build=build,
            prerelease=prerelease,
            allow_unhashed=allow_unhashed,
            progress=progress,
            strict_portability=strict_portability,
        )
    finally:
        progress.close()
    from pybundle.cli.lifecycle import warn_portability

    warn_portability(report.manifest)
    for artifact in report.manifest.artifacts:
        computed = (
            " (sha256 computed: no catalog hash)" if artifact.sha256_source == "computed" else ""
        )
        print(f"  {artifact.label}  {_size(artifact.size)}{computed}")
    if report.plan is not None:
        for s in report.plan.skipped:
            print(f"  skipped {s.request} on {s.target.friendly}: {s.reason}")
    summary = report.summary
    if summary is not None and not quiet:
        print(
            f"downloads: {summary.files} files, {summary.hits} cache hits, "
            f"{_size(summary.transferred)} in {summary.seconds:.1f} s "
            f"({summary.mb_per_s:.1f} MB/s)"
        )
    hits = sum(1 for d in report.downloads if d.cached)
    total = sum(a.size for a in report.manifest.artifacts)
    signed = f", signed by key {key.public_key.key_id_hex}" if key else ", UNSIGNED"
    print(
        f"wrote {report.output} ({len(report.manifest.artifacts)} interpreters, {_size(total)}"
        f"{signed}; {len(report.downloads)} downloads, {hits} from cache; "
        f"{report.seconds:.1f} s)"
    )


cache_app = typer.Typer(
    name="cache",
    help="The download cache shared by all bundles (content-addressed by sha256).",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


def _cache(cache_dir: Optional[Path]) -> Any:
    from pybundle.bundler.cache import Cache, default_cache_dir

    return Cache(cache_dir or default_cache_dir())


_CACHE_DIR_OPTION = typer.Option(
    None, "--cache-dir", help="The cache (default: $PYBUNDLE_CACHE_DIR or the user cache dir)."
)


@cache_app.command("dir")
def cache_dir_command(cache_dir: Optional[Path] = _CACHE_DIR_OPTION) -> None:
    """Print the cache directory."""
    from pybundle.bundler.cache import default_cache_dir

    print(cache_dir or default_cache_dir())


@cache_app.command("list")
def cache_list(
    cache_dir: Optional[Path] = _CACHE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List the cached archives (sha256, size, last use, file name)."""
    from datetime import datetime, timezone

    cache = _cache(cache_dir)
    entries = cache.entries()
    if as_json:
        doc = [
            {
                "sha256": e.sha256,
                "file_name": e.file_name,
                "size": e.size,
                "last_used": datetime.fromtimestamp(e.last_used, timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "path": str(e.path),
            }
            for e in entries
        ]
        print(json.dumps(doc, indent=2))
        return
    for e in entries:
        when = datetime.fromtimestamp(e.last_used, timezone.utc).strftime("%Y-%m-%d %H:%M")
        print(f"{e.sha256[:12]}  {_size(e.size):>10}  {when}  {e.file_name}")
    partials = cache.partial_files()
    print(
        f"{len(entries)} archives, {_size(sum(e.size for e in entries))}"
        + (f"; {len(partials)} partial downloads" if partials else "")
        + f" in {cache.root}"
    )


@cache_app.command("clean")
def cache_clean(
    cache_dir: Optional[Path] = _CACHE_DIR_OPTION,
    older_than: Optional[str] = typer.Option(
        None, "--older-than", help="Only entries unused for this long: 30d, 12h, 90m, 3600s."
    ),
) -> None:
    """Remove cached archives and partial downloads (all, or those unused for --older-than)."""
    seconds = _duration(older_than, "--older-than") if older_than is not None else None
    report = _cache(cache_dir).clean(older_than=seconds)
    busy = f"; {report.busy} in use, kept" if report.busy else ""
    print(f"removed {report.files} files, {_size(report.bytes)}{busy}")


@cache_app.command("export-uv")
def cache_export_uv(
    dest: Path = typer.Argument(..., help="Directory to use as uv's UV_PYTHON_CACHE_DIR."),
    cache_dir: Optional[Path] = _CACHE_DIR_OPTION,
) -> None:
    """Link every cached archive into DEST under uv's names, for offline `uv python install`."""
    written = _cache(cache_dir).export_uv(dest)
    for path in written:
        print(path)
    print(f"exported {len(written)} archives to {dest} (use UV_PYTHON_CACHE_DIR={dest})")


def _keys(trusted_key: list[Path]) -> list[Any]:
    from pybundle.installer.verify import load_trusted_keys

    return load_trusted_keys([p.expanduser() for p in trusted_key])


@app.command()
def verify(
    file: Path = typer.Argument(..., help="The .pybundle file."),
    trusted_key: list[Path] = typer.Option(
        [], "--trusted-key", help="Trusted minisign public key (repeatable)."
    ),
    allow_expired: bool = typer.Option(
        False, "--allow-expired", help="Accept an expired or future-dated bundle."
    ),
) -> None:
    """Check the signature, freshness and every archive's sha256, without extracting."""
    from pybundle.installer.verify import verify_bundle

    verified = verify_bundle(file, _keys(trusted_key), allow_expired=allow_expired)
    manifest = verified.manifest
    print(
        f"OK {file}: signed by key {verified.key.key_id_hex}, serial {manifest.serial}, "
        f"{len(manifest.artifacts)} archives verified"
    )


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="The .pybundle file."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show what a bundle holds. Nothing is verified: use `pybundle verify` for that."""
    from pybundle.installer.source import BundleSource
    from pybundle.installer.verify import read_signer
    from pybundle.manifest import Manifest

    with BundleSource(file) as source:
        manifest = Manifest.from_bytes(source.manifest_bytes(), str(file))
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
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    print(f"bundle {manifest.bundle_id}  serial {manifest.serial}  created {doc['created']}")
    print(f"signer key id: {signer.key_id_hex if signer else '(unsigned)'} (not verified)")
    for a in manifest.artifacts:
        print(f"  {a.install_name:48} {_size(a.size):>10}  {a.flavour}  {a.file_name}")
        if a.portability is not None:
            print(f"    needs from the host: {', '.join(a.portability.libraries)}")


@app.command()
def install(
    from_: Path = typer.Option(..., "--from", help="The .pybundle file to install from."),
    trusted_key: list[Path] = typer.Option(
        [], "--trusted-key", help="Trusted minisign public key (repeatable)."
    ),
    version: list[str] = typer.Option(
        [], "--version", help="Install only these versions (repeatable or comma list)."
    ),
    install_dir: Optional[Path] = typer.Option(
        None, "--install-dir", help="Parent dir of installs (default: $PYBUNDLE_INSTALL_DIR)."
    ),
    prefix: Optional[Path] = typer.Option(
        None, "--prefix", help="Install exactly here (one interpreter only)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing install atomically."),
    allow_expired: bool = typer.Option(
        False, "--allow-expired", help="Accept an expired or future-dated bundle."
    ),
    allow_downgrade: bool = typer.Option(
        False, "--allow-downgrade", help="Accept a serial older than one already installed."
    ),
    layout: str = typer.Option(
        "pybundle",
        "--layout",
        help="pybundle, uv (uv's python dir) or pyenv ($(pyenv root)/versions).",
    ),
    pyenv_name: Optional[str] = typer.Option(
        None, "--pyenv-name", help="With --layout pyenv: the version name (default: 3.12.1)."
    ),
    default: bool = typer.Option(
        False, "--default", help="Also link python3 and python to the newest interpreter."
    ),
    no_bin: bool = typer.Option(
        False, "--no-bin", help="Make no links in $PYBUNDLE_BIN_DIR (default ~/.local/bin)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Verify the bundle and install its interpreters for this host, relocated."""
    from pybundle.cli.lifecycle import report_install
    from pybundle.installer.install import LinkRequest, install_bundle
    from pybundle.versions import parse_version_list

    requests = [r for v in version for r in parse_version_list(v)]
    links = None if no_bin else LinkRequest(default=default)
    results = install_bundle(
        from_,
        _keys(trusted_key),
        install_dir=install_dir,
        prefix=prefix,
        versions=requests,
        force=force,
        allow_expired=allow_expired,
        allow_downgrade=allow_downgrade,
        on_verified=lambda v: _err(
            f"verified {from_}: signed by key {v.key.key_id_hex}, serial {v.manifest.serial}"
        ),
        on_warning=lambda message: _err(f"pybundle: warning: {message}"),
        layout=layout,
        pyenv_name=pyenv_name,
        links=links,
    )
    report_install(results, links, as_json)


import pybundle.cli.lifecycle  # noqa: E402, F401  (registers list, uninstall, relocate, check)
