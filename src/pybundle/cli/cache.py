"""``pybundle cache dir|list|clean|export-uv``: the download cache shared by all bundles."""

# No `from __future__ import annotations`: Typer would compile and eval every annotation
# string of every command at each start (about 5 ms; see bench/README.md, start-up).

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from pybundle.cli.common import (
    JSON,
    QUIET,
    VERBOSE,
    default_cache_dir_text,
    emit,
    emit_json,
    plural,
    say,
    size,
)
from pybundle.errors import UsageError

cache_app = typer.Typer(
    name="cache",
    help="The download cache shared by all bundles (content-addressed by sha256).",
    short_help="Show, list, clean or export the download cache.",
    no_args_is_help=True,
)

CACHE_DIR: Any = typer.Option(
    None,
    "--cache-dir",
    metavar="DIR",
    show_default=False,
    help=f"The cache (default: {default_cache_dir_text()}).",
)


@cache_app.callback()
def _cache_group(verbose: bool = VERBOSE, quiet: bool = QUIET) -> None:
    """The download cache shared by all bundles (content-addressed by sha256)."""


def duration(text: str, option: str) -> float:
    """Seconds in a duration like ``30d``, ``12h``, ``90m``, ``3600s`` or ``2w``.

    Raises UsageError naming ``option`` for anything else."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None:
        raise UsageError(f"invalid {option} {text!r}: expected e.g. 30d, 12h, 90m")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * unit


def _cache(cache_dir: Optional[Path]) -> Any:
    from pybundle.bundler.cache import Cache, default_cache_dir

    return Cache(cache_dir or default_cache_dir())


@cache_app.command("dir", short_help="Print the cache directory.")
def cache_dir_command(
    cache_dir: Optional[Path] = CACHE_DIR, verbose: bool = VERBOSE, quiet: bool = QUIET
) -> None:
    """Print the cache directory."""
    from pybundle.bundler.cache import default_cache_dir

    emit(str(cache_dir or default_cache_dir()))


@cache_app.command("list", short_help="List the cached archives.")
def cache_list(
    cache_dir: Optional[Path] = CACHE_DIR,
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """List the cached archives (sha256, size, last use, file name)."""
    cache = _cache(cache_dir)
    entries = cache.entries()

    def when(e: Any, fmt: str) -> str:
        return datetime.fromtimestamp(e.last_used, timezone.utc).strftime(fmt)

    if as_json:
        emit_json(
            [
                {
                    "sha256": e.sha256,
                    "file_name": e.file_name,
                    "size": e.size,
                    "last_used": when(e, "%Y-%m-%dT%H:%M:%SZ"),
                    "path": str(e.path),
                }
                for e in entries
            ]
        )
        return
    emit(
        *(
            f"{e.sha256[:12]}  {size(e.size):>10}  {when(e, '%Y-%m-%d %H:%M')}  {e.file_name}"
            for e in entries
        )
    )
    partials = cache.partial_files()
    from pybundle.bundler.wheels import WheelCache

    wheels = WheelCache(cache.root).entries()
    say(
        f"{plural(len(entries), 'archive')}, {size(sum(e.size for e in entries))}"
        + (f"; {plural(len(partials), 'partial download')}" if partials else "")
        + (
            f"; {plural(len(wheels), 'wheel')}, {size(sum(w.stat().st_size for w in wheels))}"
            if wheels
            else ""
        )
        + f" in {cache.root}"
    )


@cache_app.command("clean", short_help="Remove cached archives.")
def cache_clean(
    cache_dir: Optional[Path] = CACHE_DIR,
    older_than: Optional[str] = typer.Option(
        None,
        "--older-than",
        metavar="AGE",
        help="Only entries unused for this long: 30d, 12h, 90m, 3600s, 2w.",
    ),
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Remove cached archives and partial downloads (all, or those unused for --older-than)."""
    from pybundle.bundler.wheels import WheelCache

    seconds = duration(older_than, "--older-than") if older_than is not None else None
    cache = _cache(cache_dir)
    report = cache.clean(older_than=seconds)
    wheel_files, wheel_bytes = WheelCache(cache.root).clean(older_than=seconds)
    busy = f"; {report.busy} in use, kept" if report.busy else ""
    say(
        f"removed {plural(report.files + wheel_files, 'file')}, "
        f"{size(report.bytes + wheel_bytes)}{busy}"
    )


@cache_app.command("export-uv", short_help="Link the cache for uv's offline install.")
def cache_export_uv(
    dest: Path = typer.Argument(..., metavar="DIR", hidden=True),
    cache_dir: Optional[Path] = CACHE_DIR,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Link every cached archive into DIR under uv's names: with UV_PYTHON_CACHE_DIR=DIR,
    `uv python install --offline` installs from it."""
    written = _cache(cache_dir).export_uv(dest)
    say(*(str(path) for path in written))
    say(f"exported {plural(len(written), 'archive')} to {dest} (use UV_PYTHON_CACHE_DIR={dest})")
