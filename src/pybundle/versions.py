"""Python version numbers and the version requests users type.

Versions follow CPython's release numbering (PEP 440 subset used by CPython and by uv's
``download-metadata.json`` fields ``major``, ``minor``, ``patch``, ``prerelease``):
``MAJOR.MINOR.PATCH`` optionally followed by ``aN``, ``bN`` or ``rcN``.

Shared by the bundler and the installer: imports only the standard library and
:mod:`pybundle.errors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from pybundle.errors import UsageError

__all__ = ["PythonVersion", "VersionRequest", "parse_version_list"]

_PRERELEASE_RE = re.compile(r"(a|b|rc)(\d+)")
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)((?:a|b|rc)\d+)?")
_REQUEST_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+)((?:a|b|rc)\d+)?)?")
_PHASE_RANK = {"a": 0, "b": 1, "rc": 2}
_FINAL_RANK = 3

_VERSION_FORMS = "expected MAJOR.MINOR.PATCH, optionally followed by aN, bN or rcN (e.g. 3.15.0rc1)"
_REQUEST_FORMS = (
    "expected MAJOR.MINOR (e.g. 3.12), MAJOR.MINOR.PATCH (3.12.1) or a prerelease (3.15.0rc1)"
)


def _prerelease_key(prerelease: str) -> tuple[int, int]:
    """Rank of a prerelease tag: ``a`` < ``b`` < ``rc`` < final (``""``)."""
    if not prerelease:
        return (_FINAL_RANK, 0)
    m = _PRERELEASE_RE.fullmatch(prerelease)
    if m is None:  # unreachable for validated instances
        raise UsageError(f"invalid prerelease tag {prerelease!r}: expected aN, bN or rcN")
    return (_PHASE_RANK[m.group(1)], int(m.group(2)))


@dataclass(frozen=True)
class PythonVersion:
    """An exact Python version such as 3.12.1 or 3.15.0rc1.

    Fields: ``major``, ``minor``, ``patch`` (non-negative ints) and ``prerelease``: ``""`` for a
    final release, else ``aN``, ``bN`` or ``rcN`` (CPython numbering; uv's catalog ``prerelease``).

    Totally ordered the way CPython releases follow each other:
    3.13.0a1 < 3.13.0b2 < 3.13.0rc1 < 3.13.0 < 3.13.1.

    Raises:
        UsageError: on construction with a negative number or a malformed prerelease tag.
    """

    major: int
    minor: int
    patch: int
    prerelease: str = ""

    def __post_init__(self) -> None:
        if min(self.major, self.minor, self.patch) < 0:
            raise UsageError(f"invalid Python version {self!s}: negative component")
        if self.prerelease and _PRERELEASE_RE.fullmatch(self.prerelease) is None:
            raise UsageError(
                f"invalid prerelease tag {self.prerelease!r} in Python version "
                f"{self.major}.{self.minor}.{self.patch}: expected aN, bN or rcN"
            )

    @classmethod
    def parse(cls, text: str) -> PythonVersion:
        """Parse ``"3.12.1"`` or ``"3.15.0rc1"`` (surrounding spaces and case are ignored).

        Raises:
            UsageError: the text is not such a version; the message quotes it.
        """
        m = _VERSION_RE.fullmatch(text.strip().lower())
        if m is None:
            raise UsageError(f"invalid Python version {text!r}: {_VERSION_FORMS}")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) or "")

    @property
    def is_prerelease(self) -> bool:
        """True for alpha, beta and release-candidate versions."""
        return bool(self.prerelease)

    def _key(self) -> tuple[int, int, int, tuple[int, int]]:
        return (self.major, self.minor, self.patch, _prerelease_key(self.prerelease))

    def __lt__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self._key() >= other._key()

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}{self.prerelease}"


@dataclass(frozen=True)
class VersionRequest:
    """What a user asks for: a minor series (``3.12``), an exact release (``3.12.1``) or an exact
    prerelease (``3.15.0rc1``).

    Fields: ``major``, ``minor``; ``patch`` None for a whole series; ``prerelease`` None unless a
    prerelease is named (then ``patch`` is set too).
    """

    major: int
    minor: int
    patch: Optional[int] = None
    prerelease: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> VersionRequest:
        """Parse ``"3.12"``, ``"3.12.1"`` or ``"3.15.0rc1"`` (spaces and case ignored).

        Raises:
            UsageError: anything else (``"3"``, ``"3.12.x"``, ``">=3.11"``, ``""``); names the text.
        """
        m = _REQUEST_RE.fullmatch(text.strip().lower())
        if m is None:
            raise UsageError(f"invalid Python version request {text!r}: {_REQUEST_FORMS}")
        patch = int(m.group(3)) if m.group(3) is not None else None
        return cls(int(m.group(1)), int(m.group(2)), patch, m.group(4))

    def matches(self, v: PythonVersion) -> bool:
        """True if ``v`` satisfies this request.

        ``3.12`` matches every final 3.12.x but no prerelease; ``3.12.1`` matches exactly 3.12.1
        (final); ``3.15.0rc1`` matches exactly that prerelease.
        """
        if (v.major, v.minor) != (self.major, self.minor):
            return False
        if self.patch is None:
            return not v.is_prerelease
        return v.patch == self.patch and v.prerelease == (self.prerelease or "")

    def __str__(self) -> str:
        if self.patch is None:
            return f"{self.major}.{self.minor}"
        return f"{self.major}.{self.minor}.{self.patch}{self.prerelease or ''}"


def parse_version_list(text: str) -> list[VersionRequest]:
    """Parse a comma-separated list such as ``"3.11, 3.12"`` into requests, in order.

    Spaces around items are ignored; duplicates (same request) are kept once, first position.

    Raises:
        UsageError: the list is empty or has an empty item (``"3.11,,3.12"``), or an item is not
            a valid request; the message quotes the list or the item.
    """
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise UsageError(f"empty Python version list {text!r}: {_REQUEST_FORMS}")
    if not all(items):
        raise UsageError(f"empty item in Python version list {text!r}")
    result: list[VersionRequest] = []
    for item in items:
        req = VersionRequest.parse(item)
        if req not in result:
            result.append(req)
    return result
