"""Typed errors of pybundle, each carrying the process exit code the CLI uses for it.

Every error's message is one user-facing sentence that names the file, URL or value at fault.
Only the CLI prints them and exits; library code raises them.

Exit codes (documented in README.md):

====  ==========================  ==========================================================
code  class                       meaning
====  ==========================  ==========================================================
0     -                           success
1     PybundleError               unexpected failure (a bug, or an error we did not classify)
2     UsageError                  bad command line: unknown flag, conflicting options
3     ResolutionError             a requested version or platform is not in the catalog, or
                                  (MissingWheelError) a requirement has no wheel for a target,
                                  (PipMarkersError) pip's markers cannot be set for a target
4     DownloadError               network or HTTP failure while fetching a catalog or archive
5     IntegrityError              trust or integrity failure: bad/absent signature, unknown
                                  key, hash mismatch, malformed or schema-invalid manifest
6     UnsafeArchiveError          an archive member would escape or damage the destination
7     PlatformMismatchError       the bundle holds no interpreter for this host's platform
8     AlreadyExistsError          the output or install exists and ``--force`` was not given,
                                  or the destination is not pybundle's to replace
9     StorageError                the file system refused: no space, read-only, permission
10    InstallModifiedError        ``pybundle check``: an install differs from its receipt
                                  (pybundle.installer.check)
130   KeyboardInterrupt           interrupted by Ctrl-C (SIGINT); work files removed
143   Terminated                  stopped by SIGTERM; work files removed
====  ==========================  ==========================================================
"""

from __future__ import annotations


class PybundleError(Exception):
    """Base class: a failure with a one-line user-facing message and an exit code."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PybundleError):
    """The command line asks for something contradictory or impossible (exit 2)."""

    exit_code = 2


class PrefixError(UsageError):
    """The install path holds a character that a file kind relocation writes cannot represent
    (exit 2): the message names the character (repr) and the file kind. Raised before anything
    is extracted; see :func:`pybundle.installer.relocate.check_prefix`."""


class ResolutionError(PybundleError):
    """A version or platform request matches nothing in the catalog (exit 3)."""

    exit_code = 3


class MissingWheelError(ResolutionError):
    """A requirement (``bundle -r/--with``) has no wheel for a target (exit 3): the message
    names the requirement (with its version when pip gave one) and the target;
    ``requirement`` is the requirement as pip named it (``bcrypt==5.0.0``)."""

    def __init__(self, message: str, requirement: str = "") -> None:
        super().__init__(message)
        self.requirement = requirement


class PipMarkersError(ResolutionError):
    """pip cannot be made to evaluate environment markers for a target other than the
    interpreter running it (exit 3): the message names pip's version and interpreter
    (:mod:`pybundle.bundler.pipmarkers`)."""


class CatalogError(ResolutionError):
    """The catalog itself cannot be read or does not have the expected format (exit 3)."""


class DownloadError(PybundleError):
    """A network or HTTP failure while fetching a catalog or an archive (exit 4)."""

    exit_code = 4


class IntegrityError(PybundleError):
    """Something is not what it claims to be: hashes, signatures, manifests (exit 5)."""

    exit_code = 5


class HashMismatchError(IntegrityError):
    """Bytes whose sha256 or size differ from the expected one (exit 5)."""


class SignatureError(IntegrityError):
    """A signature is malformed, absent, uses a refused algorithm, or does not verify (exit 5)."""


class UntrustedKeyError(SignatureError):
    """A signature was made by a key that is not among the trusted keys (exit 5)."""


class ManifestError(IntegrityError):
    """A manifest is not valid JSON, fails the schema, or disagrees with the bundle (exit 5)."""


class KeyFileError(IntegrityError):
    """A minisign key file cannot be parsed (exit 5)."""


class UnsafeArchiveError(PybundleError):
    """An archive member is refused by the safe extractor (exit 6)."""

    exit_code = 6


class RelocationError(UnsafeArchiveError):
    """An archive's content cannot be relocated safely (exit 6): a build prefix that is ``/`` or
    holds control characters, a script whose ``#!`` line cannot be rewritten, a file whose syntax
    leaves no safe place for the install path. The message names the archive or file."""


class PlatformMismatchError(PybundleError):
    """The bundle holds no interpreter for this host's OS, architecture or libc (exit 7)."""

    exit_code = 7


class AlreadyExistsError(PybundleError):
    """The target already exists and ``--force`` was not given (exit 8)."""

    exit_code = 8


class StorageError(PybundleError):
    """The file system refused an operation: no space, read-only, permission denied (exit 9)."""

    exit_code = 9


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (exit 143, 128 + 15).

    Raised in the main thread by the CLI's SIGTERM handler, so that a terminated run unwinds
    and cleans up exactly as one interrupted by Ctrl-C (a :class:`KeyboardInterrupt`, exit 130)
    does, instead of dying where it stands.
    """

    exit_code = 128 + 15


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected error",
    2: "usage error",
    3: "version or platform not found in the catalog, unreadable catalog, or a requirement "
    "without a wheel for a target",
    4: "download failed",
    5: "integrity or trust failure (signature, key, hash, manifest)",
    6: "unsafe archive member refused",
    7: "bundle holds nothing for this host's platform, or (--strict-portability) a prefix "
    "needs host libraries",
    8: "target exists (use --force), or is not pybundle's to replace or remove",
    9: "file system error (space, read-only, permission)",
    10: "check: an install differs from its receipt",
    130: "interrupted (Ctrl-C)",
    143: "terminated (SIGTERM)",
}
