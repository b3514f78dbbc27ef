"""Python version numbers and the version requests users type.

Versions are PEP 440 versions as :mod:`packaging.version` implements them, restricted to
CPython's release numbering (the fields ``major``, ``minor``, ``patch``, ``prerelease`` of uv's
``download-metadata.json``): ``MAJOR.MINOR.PATCH`` optionally followed by ``aN``, ``bN`` or
``rcN``. Ordering and specifier matching are :mod:`packaging`'s; this module adds only uv's
request syntax on top (``uv help python``): implementation prefixes (``pypy@3.10``,
``cp312``), variant suffixes (``3.13t``, ``3.12+debug``), inclusive minor ranges
(``3.10-3.13``) and the per-minor reading of ranges.

Shared by the bundler and the installer: imports only the standard library, ``packaging`` and
:mod:`pybundle.errors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from pybundle.errors import UsageError

__all__ = [
    "IMPLEMENTATION_NAMES",
    "PRERELEASE_POLICIES",
    "PythonRequest",
    "PythonVersion",
    "VersionRequest",
    "parse_python_request",
    "parse_request_list",
    "parse_version_list",
]

_VERSION_FORMS = "expected MAJOR.MINOR.PATCH, optionally followed by aN, bN or rcN (e.g. 3.15.0rc1)"
_REQUEST_FORMS = (
    "expected MAJOR.MINOR (e.g. 3.12), MAJOR.MINOR.PATCH (3.12.1) or a prerelease (3.15.0rc1)"
)


def _cpython_version(text: str, lengths: tuple[int, ...]) -> Optional[Version]:
    """``text`` as a :class:`Version` when it is written exactly in canonical PEP 440 form with
    ``len(release)`` in ``lengths`` and at most an ``a``/``b``/``rc`` prerelease (no epoch,
    post, dev or local part), else None. Canonical form is what rejects ``v3.12.1``,
    ``3.12.1c1`` or ``3.12.1-rc1``, which PEP 440 would normalise."""
    try:
        v = Version(text)
    except InvalidVersion:
        return None
    if str(v) != text or len(v.release) not in lengths:
        return None
    if v.epoch or v.post is not None or v.dev is not None or v.local is not None:
        return None
    return v


@dataclass(frozen=True)
class PythonVersion:
    """An exact Python version such as 3.12.1 or 3.15.0rc1.

    Fields: ``major``, ``minor``, ``patch`` (non-negative ints) and ``prerelease``: ``""`` for a
    final release, else ``aN``, ``bN`` or ``rcN`` (CPython numbering; uv's catalog ``prerelease``).
    :attr:`pep440` is the same version as a :class:`packaging.version.Version`, which orders
    them: 3.13.0a1 < 3.13.0b2 < 3.13.0rc1 < 3.13.0 < 3.13.1.

    Raises:
        UsageError: on construction with a negative number or a malformed prerelease tag.
    """

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    pep440: Version = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if min(self.major, self.minor, self.patch) < 0:
            raise UsageError(f"invalid Python version {self!s}: negative component")
        v = _cpython_version(str(self), (3,))
        if v is None:
            raise UsageError(
                f"invalid prerelease tag {self.prerelease!r} in Python version "
                f"{self.major}.{self.minor}.{self.patch}: expected aN, bN or rcN"
            )
        object.__setattr__(self, "pep440", v)

    @classmethod
    def parse(cls, text: str) -> PythonVersion:
        """Parse ``"3.12.1"`` or ``"3.15.0rc1"`` (surrounding spaces and case are ignored).

        Raises:
            UsageError: the text is not such a version; the message quotes it.
        """
        v = _cpython_version(text.strip().lower(), (3,))
        if v is None:
            raise UsageError(f"invalid Python version {text!r}: {_VERSION_FORMS}")
        return cls.of(v)

    @classmethod
    def of(cls, v: Version) -> PythonVersion:
        """The :class:`PythonVersion` of a three-part :class:`Version` (prerelease kept)."""
        pre = f"{v.pre[0]}{v.pre[1]}" if v.pre else ""
        return cls(v.release[0], v.release[1], v.release[2], pre)

    @property
    def is_prerelease(self) -> bool:
        """True for alpha, beta and release-candidate versions."""
        return bool(self.prerelease)

    def __lt__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self.pep440 < other.pep440

    def __le__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self.pep440 <= other.pep440

    def __gt__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self.pep440 > other.pep440

    def __ge__(self, other: Any) -> bool:
        if not isinstance(other, PythonVersion):
            return NotImplemented
        return self.pep440 >= other.pep440

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}{self.prerelease}"


@dataclass(frozen=True)
class VersionRequest:
    """A plain request: a minor series (``3.12``), an exact release (``3.12.1``) or an exact
    prerelease (``3.15.0rc1``); the subset of :class:`PythonRequest` without implementation,
    variant or range.

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
        v = _cpython_version(text.strip().lower(), (2, 3))
        if v is None or (len(v.release) == 2 and v.pre):
            raise UsageError(f"invalid Python version request {text!r}: {_REQUEST_FORMS}")
        if len(v.release) == 2:
            return cls(v.release[0], v.release[1])
        exact = PythonVersion.of(v)
        return cls(exact.major, exact.minor, exact.patch, exact.prerelease or None)

    def matches(self, v: PythonVersion) -> bool:
        """True if ``v`` satisfies this request.

        ``3.12`` matches every final 3.12.x but no prerelease; ``3.12.1`` matches exactly 3.12.1
        (final); ``3.15.0rc1`` matches exactly that prerelease.
        """
        if self.patch is None:
            return (v.major, v.minor) == (self.major, self.minor) and not v.is_prerelease
        return v == PythonVersion(self.major, self.minor, self.patch, self.prerelease or "")

    def __str__(self) -> str:
        if self.patch is None:
            return f"{self.major}.{self.minor}"
        return f"{self.major}.{self.minor}.{self.patch}{self.prerelease or ''}"


def _split_list(text: str, forms: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise UsageError(f"empty Python version list {text!r}: {forms}")
    if not all(items):
        raise UsageError(f"empty item in Python version list {text!r}")
    return items


def parse_version_list(text: str) -> list[VersionRequest]:
    """Parse a comma-separated list such as ``"3.11, 3.12"`` into requests, in order.

    Spaces around items are ignored; duplicates (same request) are kept once, first position.

    Raises:
        UsageError: the list is empty or has an empty item (``"3.11,,3.12"``), or an item is not
            a valid request; the message quotes the list or the item.
    """
    result: list[VersionRequest] = []
    for item in _split_list(text, _REQUEST_FORMS):
        req = VersionRequest.parse(item)
        if req not in result:
            result.append(req)
    return result


# ---- uv's request syntax ----------------------------------------------------------------------

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
_PLAIN_RE = re.compile(r"([0-9a-z.]+?)(t|d|td)?((?:\+(?:freethreaded|debug))*)")
_RANGE_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)-(\d+\.\d+(?:\.\d+)?)")
_VARIANT_FROM_SUFFIX = {"t": "freethreaded", "d": "debug", "td": "freethreaded+debug"}

_PYTHON_REQUEST_FORMS = (
    "expected 3.12, 3.12.1, 3.15.0rc1, a range such as >=3.10,<3.13 or 3.10-3.13, optionally "
    "prefixed by an implementation (cpython-3.12, pypy@3.10, pypy3.10, cp312) and followed by a "
    "variant (3.13t, 3.13+freethreaded, 3.12+debug)"
)


@dataclass(frozen=True)
class PythonRequest:
    """A request of ``--versions``: which implementation, which versions, which build variant.

    Fields:
        text: the request as typed (normalised to lower case, no spaces), for messages.
        implementation: ``"cpython"``, ``"pypy"``, ``"graalpy"``, or None (the default, cpython).
        variant: ``"freethreaded"``, ``"debug"``, ``"freethreaded+debug"`` when the request says
            so (``3.13t``, ``3.13+debug``), else None (the ``--variant`` option decides).
        specifier: the versions, a :class:`packaging.specifiers.SpecifierSet` (``3.12`` is
            ``==3.12.*``, ``3.12.1`` is ``==3.12.1``, ``3.10-3.13`` is ``>=3.10,<3.14``).
        per_minor: True for ranges (``>=3.10,<3.13``, ``3.10-3.13``): the resolver then picks
            the newest matching release of *each* minor; False: one pick, the newest.
        explicit_prerelease: a clause names a prerelease (``3.15.0rc1``), so prereleases match
            whatever the ``--prerelease`` policy.
        exact_minor: ``(major, minor)`` for a plain request (``3.12``, ``3.12.1``), None for
            ranges; ``pinned``: the version of an exact request (``3.12.1``), else None.
    """

    text: str
    implementation: Optional[str]
    variant: Optional[str]
    specifier: SpecifierSet
    per_minor: bool = False
    explicit_prerelease: bool = False
    exact_minor: Optional[tuple[int, int]] = None
    pinned: Optional[PythonVersion] = None

    def matches(self, v: PythonVersion) -> bool:
        """True if ``v`` satisfies the specifier, prereleases included (the resolver applies
        the prerelease policy; PEP 440's rule that ``<3.14`` excludes 3.14.0a1 holds)."""
        return self.specifier.contains(v.pep440, prereleases=True)

    def selects(self, implementation: str, variant: str, v: PythonVersion) -> bool:
        """True if a build of ``implementation`` (``"cpython"``...), ``variant`` and version
        ``v`` is what this request names: same implementation (cpython when the request names
        none), the request's variant when it names one (any variant otherwise), and a matching
        version (prereleases included). Used to pick interpreters out of a bundle."""
        if (self.implementation or "cpython") != implementation:
            return False
        if self.variant is not None and self.variant != variant:
            return False
        return self.matches(v)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def from_version_request(cls, request: VersionRequest) -> PythonRequest:
        """The same request as a :class:`VersionRequest` (``3.12``, ``3.12.1``, ``3.15.0rc1``)."""
        return parse_python_request(str(request))


def _bad(source: str, why: str = _PYTHON_REQUEST_FORMS) -> UsageError:
    return UsageError(f"invalid Python version request {source!r}: {why}")


def _specifier_set(spec: str, source: str) -> SpecifierSet:
    """A PEP 440 specifier set whose versions are CPython-style: ``MAJOR.MINOR`` or
    ``MAJOR.MINOR.PATCH`` with an optional ``aN``/``bN``/``rcN`` (``.*`` after ``==``/``!=``
    and a release number)."""
    specifiers = []
    for raw in spec.split(","):
        try:
            one = Specifier(raw)
        except InvalidSpecifier:
            raise _bad(source) from None
        number = one.version
        if number.endswith(".*"):
            number = number[:-2]
            if _cpython_version(number, (2, 3)) is None or Version(number).pre:
                raise _bad(source, ".* only follows == or != and a release number")
        elif _cpython_version(number, (2, 3)) is None or one.operator == "===":
            raise _bad(source)
        specifiers.append(one)
    return SpecifierSet(specifiers)


def parse_python_request(text: str) -> PythonRequest:
    """Parse one request of ``--versions`` (case and spaces ignored).

    Forms (uv's request syntax, ``uv help python``, plus inclusive minor ranges):

    * ``3.12`` (newest final patch of 3.12), ``3.12.1`` (exactly), ``3.15.0rc1`` (a prerelease);
    * PEP 440 specifier sets ``>=3.10,<3.13``, ``==3.12.*``, ``~=3.12.1``, ``!=3.11.*``;
    * ``3.10-3.13``: every minor from 3.10 to 3.13 inclusive (``>=3.10,<3.14``), and
      ``3.10.4-3.12.1`` (``>=3.10.4,<=3.12.1``);
    * an implementation first: ``cpython-3.12``, ``pypy@3.10``, ``pypy3.10``, ``python3.12``,
      ``graalpy-3.12``, ``cp312``, ``pp310``;
    * a variant after a plain version: ``3.13t`` / ``3.13+freethreaded``, ``3.12d`` /
      ``3.12+debug``, ``3.13td`` / ``3.13+freethreaded+debug``.

    Ranges and specifier sets set ``per_minor``: one interpreter per matching minor.

    Raises:
        UsageError: anything else; the one-line message quotes the text and lists the forms.
    """
    source = text
    normal = "".join(text.split()).lower()
    if not normal:
        raise UsageError(f"empty Python version request {source!r}: {_PYTHON_REQUEST_FORMS}")
    implementation, rest = _split_implementation(normal)
    if rest.startswith(_OPERATORS):
        spec = _specifier_set(rest, source)
        explicit = any(
            Version(s.version.removesuffix(".*")).is_prerelease for s in spec if s.version
        )
        return PythonRequest(normal, implementation, None, spec, True, explicit)
    ranged = _RANGE_RE.fullmatch(rest)
    if ranged:
        low = _cpython_version(ranged.group(1), (2, 3))
        high = _cpython_version(ranged.group(2), (2, 3))
        if low is None or high is None:
            raise _bad(source)
        if high < low:
            raise UsageError(f"invalid Python version range {source!r}: the end is below the start")
        upper = f"<{high.major}.{high.minor + 1}" if len(high.release) == 2 else f"<={high}"
        return PythonRequest(normal, implementation, None, SpecifierSet(f">={low},{upper}"), True)
    m = _PLAIN_RE.fullmatch(rest)
    version = _cpython_version(m.group(1), (2, 3)) if m else None
    if m is None or version is None or (len(version.release) == 2 and version.pre):
        raise _bad(source)
    variant = _VARIANT_FROM_SUFFIX.get(m.group(2) or "")
    plus = [p for p in (m.group(3) or "").split("+") if p]
    if plus:
        if variant is not None or len(set(plus)) != len(plus):
            raise _bad(source, "variant given twice")
        variant = "+".join(sorted(plus, key=lambda p: p != "freethreaded"))
    minor = (version.major, version.minor)
    if len(version.release) == 2:
        spec = SpecifierSet(f"=={version}.*")
        return PythonRequest(normal, implementation, variant, spec, exact_minor=minor)
    exact = PythonVersion.of(version)
    return PythonRequest(
        normal,
        implementation,
        variant,
        SpecifierSet(f"=={version}"),
        explicit_prerelease=exact.is_prerelease,
        exact_minor=minor,
        pinned=exact,
    )


def _split_implementation(normal: str) -> tuple[Optional[str], str]:
    """``("pypy", "3.10")`` for ``pypy@3.10``; ``("cpython", "3.12")`` for ``cp312``;
    ``(None, text)`` when no implementation is named."""
    short = _SHORT_IMPL_RE.fullmatch(normal)
    if short:
        return _IMPL_ALIASES[short.group(1)], f"{short.group(2)}.{short.group(3)}"
    m = _IMPL_RE.match(normal)
    if m:
        return _IMPL_ALIASES[m.group(1)], normal[m.end() :]
    return None, normal


def parse_request_list(text: str) -> list[PythonRequest]:
    """Parse a comma-separated list of :func:`parse_python_request` requests, in order.

    A comma also joins the clauses of one specifier set: an item that starts with an operator
    continues the previous item when that one is a specifier set, so ``3.9,>=3.11,<3.13`` is two
    requests (``3.9`` and ``>=3.11,<3.13``). Duplicates are kept once, first position.

    Raises:
        UsageError: an empty list or item, or an invalid request (quoted).
    """
    grouped: list[str] = []
    for item in _split_list(text, _PYTHON_REQUEST_FORMS):
        if item.startswith(_OPERATORS) and grouped:
            _, prev_rest = _split_implementation(grouped[-1].lower())
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
