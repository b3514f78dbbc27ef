"""The typer app. Each command parses options, calls one library function, prints the result.

Errors are not handled here: they propagate to :func:`pybundle.cli.main`.
"""

from __future__ import annotations

import json
import sys
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
    output: Path = typer.Option(..., "--output", "-o", help="The .pybundle file to write."),
    versions: Optional[str] = typer.Option(
        None, "--versions", help="Comma list: 3.12 (newest patch) or 3.12.1 (exact)."
    ),
    platform: list[str] = typer.Option(
        [], "--platform", help="Target platform (repeatable); default: this host."
    ),
    catalog: Optional[str] = typer.Option(
        None,
        "--catalog",
        help="uv downloads-JSON catalog, a path or URL (default: $PYBUNDLE_CATALOG or uv's).",
    ),
    mirror: Optional[str] = typer.Option(
        None, "--mirror", help="Replaces the python-build-standalone release-download prefix."
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
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=32, help="Parallel downloads."),
    serial: Optional[int] = typer.Option(
        None, "--serial", min=0, help="Manifest serial (default: creation time, Unix seconds)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
) -> None:
    """Resolve versions against the catalog, download, and pack one signed .pybundle file."""
    from pybundle.bundler.build import build_bundle
    from pybundle.bundler.cache import default_cache_dir
    from pybundle.signing import load_secret_key
    from pybundle.targets import host_target, parse_platform
    from pybundle.versions import parse_version_list

    if not versions and not from_prefix:
        raise UsageError("nothing to bundle: give --versions and/or --from-prefix")
    requests = parse_version_list(versions) if versions else []
    targets = [parse_platform(p) for p in platform] or [host_target()]
    key = load_secret_key(sign_key.expanduser()) if sign_key else None
    if key is None:
        _err("warning: no --sign-key given; the bundle is unsigned and will not install")
    report = build_bundle(
        output,
        versions=requests,
        targets=targets,
        catalog=catalog,
        mirror=mirror,
        cache_dir=cache_dir or default_cache_dir(),
        secret_key=key,
        from_prefixes=from_prefix,
        prefix_site_packages=prefix_site_packages,
        prefix_format=prefix_format,
        jobs=jobs,
        force=force,
        serial=serial,
    )
    for artifact in report.manifest.artifacts:
        print(f"  {artifact.label}  {_size(artifact.size)}")
    hits = sum(1 for d in report.downloads if d.cached)
    total = sum(a.size for a in report.manifest.artifacts)
    signed = f", signed by key {key.public_key.key_id_hex}" if key else ", UNSIGNED"
    print(
        f"wrote {report.output} ({len(report.manifest.artifacts)} interpreters, {_size(total)}"
        f"{signed}; {len(report.downloads)} downloads, {hits} from cache; "
        f"{report.seconds:.1f} s)"
    )


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
) -> None:
    """Verify the bundle and install its interpreters for this host, relocated."""
    from pybundle.installer.install import install_bundle
    from pybundle.versions import parse_version_list

    requests = [r for v in version for r in parse_version_list(v)]
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
    )
    for r in results:
        verb = "replaced" if r.replaced else "installed"
        a = r.artifact
        print(f"{verb} {a.implementation} {a.version} ({a.target.key}) -> {r.path}")
