"""The download cache: archives stored under names that carry their sha256.

Layout (all under the cache root)::

    CACHEDIR.TAG                       marks the directory as a cache (bford.info/cachedir)
    archives/<sha256>-<file name>      verified archives only
    archives/.<file name>.<random>.partial   downloads in flight (never a final name)

A file gets its final name only by ``os.replace`` of a fully written, hash-checked temporary
file, so no partial or unverified file ever carries a final name. A cache hit is re-hashed
before use; a file that no longer matches its name is evicted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

from pybundle.errors import HashMismatchError, StorageError
from pybundle.hashing import check_digest, sha256_file

CACHE_ENV = "PYBUNDLE_CACHE_DIR"
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by pybundle.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def default_cache_dir() -> Path:
    """``$PYBUNDLE_CACHE_DIR``, else the platform's user cache dir for pybundle."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("pybundle"))


class Cache:
    """A content-addressed store of verified archives under ``root``.

    Raises StorageError (naming the path) when the directory cannot be created or written.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archives = root / "archives"
        try:
            self.archives.mkdir(parents=True, exist_ok=True)
            tag = root / "CACHEDIR.TAG"
            if not tag.exists():
                tag.write_text(CACHEDIR_TAG, encoding="ascii")
        except OSError as exc:
            raise StorageError(f"{root}: cannot create the cache directory: {exc}") from exc

    def path_for(self, sha256: str, file_name: str) -> Path:
        """The final name of an archive: ``archives/<sha256>-<file name>``."""
        return self.archives / f"{sha256.lower()}-{file_name}"

    def lookup(self, sha256: str, file_name: str, size: int | None = None) -> Path | None:
        """Return the cached path if present and its bytes still hash to ``sha256``.

        A present file that fails the check is deleted (evicted) and None is returned.
        """
        path = self.path_for(sha256, file_name)
        if not path.is_file():
            return None
        try:
            check_digest(str(path), sha256_file(path), sha256, size)
        except HashMismatchError:
            path.unlink(missing_ok=True)
            return None
        return path

    def temp_file(self, file_name: str) -> tuple[int, Path]:
        """Create a temporary file for a download in flight; returns ``(fd, path)``."""
        try:
            fd, name = tempfile.mkstemp(
                prefix=f".{file_name}.", suffix=".partial", dir=self.archives
            )
        except OSError as exc:
            raise StorageError(f"{self.archives}: cannot create a temporary file: {exc}") from exc
        return fd, Path(name)

    def commit(self, temp: Path, sha256: str, file_name: str) -> Path:
        """Give a verified temporary file its final name (atomic rename); returns that path."""
        final = self.path_for(sha256, file_name)
        try:
            os.chmod(temp, 0o644)
            os.replace(temp, final)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"{final}: cannot store the download: {exc}") from exc
        return final
