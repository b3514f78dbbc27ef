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

__all__ = [
    "IMPLEMENTATION_NAMES",
    "PRERELEASE_POLICIES",
    "Clause",
    "PythonRequest",
    "PythonVersion",
    "VersionRequest",
    "parse_python_request",
    "parse_request_list",
    "parse_version_list",
]

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


# ---- the richer requests of ``pybundle bundle`` -----------------------------------------------

#: Implementations a request may name, as uv's catalog names them (entry ``name``).
IMPLEMENTATION_NAMES: tuple[str, ...] = ("cpython", "pypy", "graalpy")
#: ``--prerelease`` policies: ``disallow`` (default: a prerelease only when named), ``allow``
#: (prereleases compete with finals, newest wins), ``if-necessary`` (a prerelease only when no
#: final release matches; what ``uv python install`` does).
PRERELEASE_POLICIES: tuple[str, ...] = ("disallow", "allow", "if-necessary")

_IMPL_ALIASES = {
    "cpython": "cpython",
    "python": "cpython",
    "cp": "cpython",
    "pypy": "pypy",
    "pp": "pypy",
    "graalpy": "graalpy",
    "gp": "graalpy",
}
_IMPL_RE = re.compile(r"(cpython|pypy|graalpy|python)(?:[-@]|(?=\d))")
_SHORT_IMPL_RE = re.compile(r"(cp|pp|gp)(\d)(\d+)")
_OPERATORS = ("~=", "==", "!=", ">=", "<=", ">", "<")
_CLAUSE_RE = re.compile(r"(~=|==|!=|>=|<=|>|<)\s*(\d+(?:\.\d+){0,2}(?:(?:a|b|rc)\d+)?)(\.\*)?")
_PLAIN_RE = re.compile(
    r"(\d+)\.(\d+)(?:\.(\d+)((?:a|b|rc)\d+)?)?(t|d|td)?((?:\+(?:freethreaded|debug))*)"
)
_RANGE_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)\s*-\s*(\d+\.\d+(?:\.\d+)?)")
_VARIANT_FROM_SUFFIX = {"t": "freethreaded", "d": "debug", "td": "freethreaded+debug"}

_PYTHON_REQUEST_FORMS = (
    "expected 3.12, 3.12.1, 3.15.0rc1, a range such as >=3.10,<3.13 or 3.10-3.13, optionally "
    "prefixed by an implementation (cpython-3.12, pypy@3.10, pypy3.10, cp312) and followed by a "
    "variant (3.13t, 3.13+freethreaded, 3.12+debug)"
)


@dataclass(frozen=True)
class Clause:
    """One version comparison of a request, PEP 440 style: ``op`` is one of ``==``, ``!=``,
    ``>=``, ``<=``, ``>``, ``<``; ``version`` is padded with zeros (``3.12`` -> 3.12.0);
    ``wildcard`` is True for ``==3.12.*`` / ``!=3.12.*`` (compare only the given ``length``
    leading numbers)."""

    op: str
    version: PythonVersion
    length: int = 3
    wildcard: bool = False

    def matches(self, v: PythonVersion) -> bool:
        """True if ``v`` satisfies this clause (prerelease policy is applied elsewhere, except
        PEP 440's rule that ``<3.14`` does not admit 3.14.0 prereleases)."""
        if self.wildcard:
            mine = (self.version.major, self.version.minor, self.version.patch)[: self.length]
            theirs = (v.major, v.minor, v.patch)[: self.length]
            return (mine == theirs) == (self.op == "==")
        if self.op == "==":
            return v == self.version
        if self.op == "!=":
            return v != self.version
        if self.op == ">=":
            return v >= self.version
        if self.op == "<=":
            return v <= self.version
        if self.op == ">":
            return v > self.version
        # "<": PEP 440 excludes prereleases of the bound itself (<3.14 rejects 3.14.0a1)
        release = (self.version.major, self.version.minor, self.version.patch)
        if (
            not self.version.is_prerelease
            and v.is_prerelease
            and release
            == (
                v.major,
                v.minor,
                v.patch,
            )
        ):
            return False
        return v < self.version

    def __str__(self) -> str:
        parts = (self.version.major, self.version.minor, self.version.patch)[: self.length]
        text = ".".join(str(n) for n in parts)
        if self.length == 3:
            text += self.version.prerelease
        return f"{self.op}{text}{'.*' if self.wildcard else ''}"


@dataclass(frozen=True)
class PythonRequest:
    """A request of ``pybundle bundle --versions``: which implementation, which versions, which
    build variant.

    Fields:
        text: the request as typed (normalised to lower case, no spaces), for messages.
        implementation: ``"cpython"``, ``"pypy"``, ``"graalpy"``, or None (the default, cpython).
        variant: ``"freethreaded"``, ``"debug"``, ``"freethreaded+debug"`` when the request says
            so (``3.13t``, ``3.13+debug``), else None (the ``--variant`` option decides).
        clauses: all must hold (see :class:`Clause`).
        per_minor: True for ranges (``>=3.10,<3.13``, ``3.10-3.13``): the resolver then picks
            the newest matching release of *each* minor; False: one pick, the newest.
        explicit_prerelease: a clause names a prerelease (``3.15.0rc1``), so prereleases match
            whatever the ``--prerelease`` policy.
    """

    text: str
    implementation: Optional[str]
    variant: Optional[str]
    clauses: tuple[Clause, ...]
    per_minor: bool = False
    explicit_prerelease: bool = False

    def matches(self, v: PythonVersion) -> bool:
        """True if ``v`` satisfies every clause (prereleases included: see the resolver)."""
        return all(c.matches(v) for c in self.clauses)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def from_version_request(cls, request: VersionRequest) -> PythonRequest:
        """The same request as a :class:`VersionRequest` (``3.12``, ``3.12.1``, ``3.15.0rc1``)."""
        return parse_python_request(str(request))


def _padded(text: str, source: str) -> tuple[PythonVersion, int]:
    """``"3.12"`` -> (3.12.0, 2); ``"3.12.1rc1"`` -> (3.12.1rc1, 3)."""
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.(\d+)((?:a|b|rc)\d+)?)?", text)
    if m is None or m.group(2) is None:
        raise UsageError(f"invalid Python version request {source!r}: {_PYTHON_REQUEST_FORMS}")
    length = 3 if m.group(3) is not None else 2
    version = PythonVersion(
        int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), m.group(4) or ""
    )
    return version, length


def _clauses_of_specifiers(spec: str, source: str) -> tuple[Clause, ...]:
    clauses: list[Clause] = []
    for raw in spec.split(","):
        m = _CLAUSE_RE.fullmatch(raw.strip())
        if m is None:
            raise UsageError(f"invalid Python version request {source!r}: {_PYTHON_REQUEST_FORMS}")
        op, number, star = m.group(1), m.group(2), bool(m.group(3))
        version, length = _padded(number, source)
        if star:
            if op not in ("==", "!=") or version.is_prerelease:
                raise UsageError(
                    f"invalid Python version request {source!r}: .* only follows == or != "
                    "and a release number"
                )
            clauses.append(Clause(op, version, length, wildcard=True))
        elif op == "~=":
            clauses.append(Clause(">=", version))
            clauses.append(Clause("==", version, length - 1, wildcard=True))
        else:
            clauses.append(Clause(op, version))
    return tuple(clauses)


def parse_python_request(text: str) -> PythonRequest:
    """Parse one request of ``pybundle bundle --versions`` (case and spaces ignored).

    Forms (uv's request syntax, ``uv help python``, plus inclusive minor ranges):

    * ``3.12`` (newest final patch of 3.12), ``3.12.1`` (exactly), ``3.15.0rc1`` (a prerelease);
    * PEP 440 specifier sets ``>=3.10,<3.13``, ``==3.12.*``, ``~=3.12.1``, ``!=3.11.*``;
    * ``3.10-3.13``: every minor from 3.10 to 3.13 inclusive (``>=3.10,<3.14``);
    * an implementation first: ``cpython-3.12``, ``pypy@3.10``, ``pypy3.10``, ``python3.12``,
      ``graalpy-3.12``, ``cp312``, ``pp310``;
    * a variant after a plain version: ``3.13t`` / ``3.13+freethreaded``, ``3.12d`` /
      ``3.12+debug``, ``3.13td`` / ``3.13+freethreaded+debug``.

    Ranges and specifier sets set ``per_minor``: one interpreter per matching minor.

    Raises:
        UsageError: anything else; the one-line message quotes the text and lists the forms.
    """
    source = text
    rest = "".join(text.split()).lower()
    if not rest:
        raise UsageError(f"empty Python version request {source!r}: {_PYTHON_REQUEST_FORMS}")
    implementation: Optional[str] = None
    short = _SHORT_IMPL_RE.fullmatch(rest)
    if short:
        implementation = _IMPL_ALIASES[short.group(1)]
        rest = f"{short.group(2)}.{short.group(3)}"
    else:
        m = _IMPL_RE.match(rest)
        if m:
            implementation = _IMPL_ALIASES[m.group(1)]
            rest = rest[m.end() :]
    normal = "".join(text.split()).lower()
    if rest.startswith(_OPERATORS):
        clauses = _clauses_of_specifiers(rest, source)
        explicit = any(c.version.is_prerelease for c in clauses)
        return PythonRequest(normal, implementation, None, clauses, True, explicit)
    ranged = _RANGE_RE.fullmatch(rest)
    if ranged:
        low, _ = _padded(ranged.group(1), source)
        high, high_len = _padded(ranged.group(2), source)
        if high < low:
            raise UsageError(f"invalid Python version range {source!r}: the end is below the start")
        upper = (
            Clause("<", PythonVersion(high.major, high.minor + 1, 0))
            if high_len == 2
            else Clause("<=", high)
        )
        return PythonRequest(normal, implementation, None, (Clause(">=", low), upper), True)
    m = _PLAIN_RE.fullmatch(rest)
    if m is None:
        raise UsageError(f"invalid Python version request {source!r}: {_PYTHON_REQUEST_FORMS}")
    variant = _VARIANT_FROM_SUFFIX.get(m.group(5) or "")
    plus = [p for p in (m.group(6) or "").split("+") if p]
    if plus:
        if variant is not None or len(set(plus)) != len(plus):
            raise UsageError(f"invalid Python version request {source!r}: variant given twice")
        variant = "+".join(sorted(plus, key=lambda p: p != "freethreaded"))
    major, minor = int(m.group(1)), int(m.group(2))
    if m.group(3) is None:
        clause = Clause("==", PythonVersion(major, minor, 0), 2, wildcard=True)
        return PythonRequest(normal, implementation, variant, (clause,))
    version = PythonVersion(major, minor, int(m.group(3)), m.group(4) or "")
    return PythonRequest(
        normal, implementation, variant, (Clause("==", version),), False, version.is_prerelease
    )


def parse_request_list(text: str) -> list[PythonRequest]:
    """Parse a comma-separated list of :func:`parse_python_request` requests, in order.

    A comma also joins the clauses of one specifier set: an item that starts with an operator
    continues the previous item when that one is a specifier set, so ``3.9,>=3.11,<3.13`` is two
    requests (``3.9`` and ``>=3.11,<3.13``). Duplicates are kept once, first position.

    Raises:
        UsageError: an empty list or item, or an invalid request (quoted).
    """
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise UsageError(f"empty Python version list {text!r}: {_PYTHON_REQUEST_FORMS}")
    if not all(items):
        raise UsageError(f"empty item in Python version list {text!r}")
    grouped: list[str] = []
    for item in items:
        starts_spec = item.lstrip().startswith(_OPERATORS)
        if starts_spec and grouped:
            prev = grouped[-1].lower()
            m = _IMPL_RE.match(prev)
            prev_rest = prev[m.end() :] if m else prev
            if prev_rest.startswith(_OPERATORS):
                grouped[-1] = f"{grouped[-1]},{item}"
                continue
        grouped.append(item)
    result: list[PythonRequest] = []
    for item in grouped:
        req = parse_python_request(item)
        if req not in result:
            result.append(req)
    return result
