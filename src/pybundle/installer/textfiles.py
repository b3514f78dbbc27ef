"""Rewriting the build prefix in the text files of a CPython tree, each kind by its own syntax.

:class:`PrefixMatcher` finds where the build prefix starts a path; one writer per file kind then
works out the syntactic context of each place (a Python string literal, a shell word or
double-quoted string, a Makefile variable value, a pkg-config variable or field, a ``#!`` line)
and writes the new prefix with that context's quoting, from :mod:`pybundle.installer.quoting`.
The writers take and return ``str``; callers decode bytes with ``surrogateescape`` so that any
bytes round-trip. A place whose context has no safe spelling raises RelocationError.
"""

from __future__ import annotations

import ast
import bisect
import io
import posixpath
import re
import shlex
import tokenize
from collections.abc import Iterator

from ..errors import RelocationError
from .quoting import (
    PC_HELPERS,
    make_value,
    pc_argument,
    pc_value,
    python_literal,
    sh_double_quoted,
    sh_quote,
)

__all__ = [
    "PrefixMatcher",
    "rewrite_makefile",
    "rewrite_pkgconfig",
    "rewrite_python",
    "rewrite_shell",
    "rewrite_shebang",
]

# Characters that may continue a file name after the prefix (besides "/", always a boundary).
_NAME_CHARS = "A-Za-z0-9._~+@%\u0080-\U0010ffff-"
# ASCII characters of a path token, when scanning backwards from a candidate match.
_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+@%-/")
# A compiler or configure option glued to a path: -L/x, -I/x, -R/x, -isystem/x.
_OPTION_TOKEN = re.compile(r"-{1,2}[A-Za-z][A-Za-z0-9_-]*")
_MAX_OPTION = 64
# What a comment may receive unquoted: no line break (it would end the comment) and, in a
# Makefile or .pc file, no backslash (a final one joins the next line to the comment).
_COMMENT_UNSAFE = "\n\r\\"
# What may go anywhere in a Makefile or shell line without quoting.
_PLAIN = re.compile(r"[\w/.+,@~-]*")


class PrefixMatcher:
    """Finds the build prefix where it starts a path and ends at a path boundary.

    It starts a path when the path characters just before it are none, a glued option (``-L``,
    ``-I``...) or the ``.`` of CPython's ``.$(prefix)``; so ``/foo/install`` is left alone for
    ``/install``. It ends at a boundary when followed by ``/``, the end, or a character that
    cannot continue a file name (whitespace, quotes, ``:;,)=``...); so ``.../3.12.10`` is left
    alone for ``.../3.12.1``. ``build`` and ``new`` are normalised absolute paths.
    """

    def __init__(self, build: str, new: str) -> None:
        self.build = build
        self.new = new
        self._pattern = re.compile(re.escape(build) + "(?![" + _NAME_CHARS + "])")

    def _starts_path(self, text: str, start: int) -> bool:
        i, stop = start, max(0, start - _MAX_OPTION)  # bounded: linear in the file's size
        while i > stop and (text[i - 1] in _PATH_CHARS or text[i - 1] >= "\x80"):
            i -= 1
        if i == stop and i > 0 and (text[i - 1] in _PATH_CHARS or text[i - 1] >= "\x80"):
            return False
        token = text[i:start]
        return not token or token == "." or _OPTION_TOKEN.fullmatch(token) is not None

    def spans(self, text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """``(start, end)`` of each occurrence in ``text[start:end]``, in order."""
        stop = len(text) if end is None else end
        return [
            m.span()
            for m in self._pattern.finditer(text, start, stop)
            if self._starts_path(text, m.start())
        ]

    def sub(self, text: str) -> tuple[str, int]:
        """``text`` with every occurrence replaced by the new prefix as is; and the count."""
        spans = self.spans(text)
        return _apply(text, [(s, e, self.new) for s, e in spans]), len(spans)


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with the non-overlapping ``(start, end, replacement)`` edits made."""
    if not edits:
        return text
    pieces: list[str] = []
    last = 0
    for start, end, replacement in sorted(edits):
        pieces += (text[last:start], replacement)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _comment_text(new: str, unsafe: str = _COMMENT_UNSAFE) -> str | None:
    """The new prefix as comment text, or None if it cannot go into a comment unquoted."""
    return None if any(c in unsafe for c in new) else new


# --- Python source ------------------------------------------------------------------------------

_LINE_END = re.compile(r"\r\n|\r|\n")
_STRING_PREFIX = re.compile(r"[rRuU]*(['\"])")


def _string_constants(tree: ast.AST) -> Iterator[ast.Constant]:
    """The ``str`` constants of ``tree`` outside f-strings (whose parts have no usable
    positions before Python 3.12)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.JoinedStr):
            continue
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                yield node
            continue
        stack.extend(ast.iter_child_nodes(node))


def _offset(text: str, starts: list[int], lineno: int, col: int) -> int:
    """Index in ``text`` of ast's (1-based line, UTF-8 byte column)."""
    begin = starts[lineno - 1]
    end = starts[lineno] if lineno < len(starts) else len(text)
    line = text[begin:end]
    if line.isascii():
        return begin + col
    return begin + len(line.encode("utf-8", "surrogatepass")[:col].decode("utf-8", "replace"))


def _is_literal_of(source: str, value: str) -> bool:
    """True if the Python source ``source`` is a string literal (or adjacent ones) whose value
    is ``value``. The common case, one plain quoted literal without escapes, is compared
    directly; anything else is evaluated (sysconfigdata holds hundreds of literals)."""
    if len(source) >= 2 and source[0] == source[-1] in "'\"" and "\\" not in source:
        inner = source[1:-1]
        if source[0] not in inner and "\n" not in inner:
            return inner == value
    try:
        return bool(ast.literal_eval(f"({source})") == value)
    except (SyntaxError, ValueError):
        return False


def rewrite_python(data: bytes, matcher: PrefixMatcher, where: str) -> tuple[bytes, int]:
    """Replace the build prefix inside the string literals of the Python module ``data``.

    The module is parsed with :mod:`ast`; every ``str`` constant (outside f-strings) whose value
    holds the build prefix is replaced by a new literal with the same quote character whose
    value is the old one with the prefix replaced (adjacent literals that Python joins become
    one). The file keeps its PEP 263 encoding. Comments are not changed. Returns the new bytes
    and the number of replacements; raises RelocationError if the file cannot be decoded or
    parsed, or a literal cannot be located.
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
        tree = ast.parse(text)
    except (SyntaxError, ValueError, LookupError, RecursionError, MemoryError) as exc:
        raise RelocationError(
            f"{where}: cannot relocate: not a readable Python module ({type(exc).__name__})"
        ) from exc
    starts = [0] + [m.end() for m in _LINE_END.finditer(text)]
    edits: list[tuple[int, int, str]] = []
    count = 0
    for node in _string_constants(tree):
        value = node.value
        if not isinstance(value, str) or matcher.build not in value:
            continue
        new_value, found = matcher.sub(value)
        if not found or node.end_lineno is None or node.end_col_offset is None:
            continue
        start = _offset(text, starts, node.lineno, node.col_offset)
        end = _offset(text, starts, node.end_lineno, node.end_col_offset)
        quote = _STRING_PREFIX.match(text, start)
        located = quote is not None and _is_literal_of(text[start:end], value)
        if quote is None or not located:
            raise RelocationError(
                f"{where}: cannot relocate: the string at line {node.lineno} could not be located"
            )
        edits.append((start, end, python_literal(new_value, quote.group(1), encoding)))
        count += found
    if not count:
        return data, 0
    return _apply(text, edits).encode(encoding), count


# --- POSIX shell --------------------------------------------------------------------------------

# The CPython python-config.sh template (3.4 and later): where the script finds its prefix.
_PREFIX_REAL = re.compile(r'^prefix_real=(\$\(installed_prefix "\$0"\))[ \t]*$', re.M)
_SED_PREFIX = re.compile(
    r'(\$\(echo )"(?:[^"\\`$]|\\.|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)*"'
    r'( \| sed "s#\$prefix#\$prefix_real#"\))'
)
_ECHO = re.compile(r'^[ \t]*(echo )"', re.M)


SH_FIND_PREFIX = """\
# pybundle: the prefix this script's tree is at, exactly as installed while it is there,
# else where it was moved (quoted throughout: any path pybundle installs to works).
_pybundle_prefix ()
{
    _pybundle_script=$1
    if _pybundle_link=$(readlink -f -- "$1" 2>/dev/null) && [ -n "$_pybundle_link" ]; then
        _pybundle_script=$_pybundle_link
    fi
    _pybundle_here=$(CDPATH= cd -P -- "$(dirname -- "$_pybundle_script")/.." && pwd -P) || {
        printf '%s\\n' "$2"
        return
    }
    if [ "$(CDPATH= cd -P -- "$2" 2>/dev/null && pwd -P)" = "$_pybundle_here" ]; then
        printf '%s\\n' "$2"
    else
        printf '%s\\n' "$_pybundle_here"
    fi
}

# pybundle: $1 with a leading $prefix replaced by $prefix_real.
_pybundle_reprefix ()
{
    case $1 in
        "$prefix"*) printf '%s\\n' "$prefix_real${1#"$prefix"}" ;;
        *) printf '%s\\n' "$1" ;;
    esac
}

"""
"""POSIX sh functions put before the python-config template's ``prefix_real=`` line (see
:func:`rewrite_shell`): ``_pybundle_prefix SCRIPT PREFIX`` prints PREFIX if the tree SCRIPT
is in (``SCRIPT/../..``, symlinks resolved) is PREFIX, else the tree's real location;
``_pybundle_reprefix VALUE`` swaps a leading ``$prefix`` for ``$prefix_real``. Only quoted
expansions and ``printf``: paths with spaces, ``#``, ``&``, ``\\`` or ``$`` survive."""


def _sh_contexts(text: str) -> tuple[list[int], list[str]]:
    """Where the quoting context of a POSIX shell script changes: sorted positions and the
    context from each on: ``U`` unquoted (also inside ``$(...)``), ``S`` single-quoted, ``D``
    double-quoted, ``B`` inside backquotes, ``C`` comment. Here-documents and ``case``
    patterns inside ``$(...)`` are not recognised (CPython's scripts have none)."""
    positions = [0]
    contexts = ["U"]
    stack = ["U"]
    depths: list[int] = []  # open parentheses inside each $( )

    def push(context: str, at: int) -> None:
        stack.append(context)
        positions.append(at)
        contexts.append(context)

    def pop(at: int) -> None:
        stack.pop()
        positions.append(at)
        contexts.append("U" if stack[-1] == "P" else stack[-1])

    i, n = 0, len(text)
    while i < n:
        c = text[i]
        top = stack[-1]
        if top == "S":
            if c == "'":
                pop(i + 1)
        elif top == "C":
            if c == "\n":
                pop(i)
        elif c == "\\":
            i += 2
            continue
        elif text.startswith("$(", i):
            stack.append("P")
            depths.append(0)
            positions.append(i + 2)
            contexts.append("U")
            i += 2
            continue
        elif top == "D":
            if c == '"':
                pop(i + 1)
            elif c == "`":
                push("B", i + 1)
        elif c == "'":
            push("S", i + 1)
        elif c == '"':
            push("D", i + 1)
        elif c == "`":
            if top == "B":
                pop(i + 1)
            else:
                push("B", i + 1)
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()<>"):
            push("C", i)
        elif top == "P" and c == "(":
            depths[-1] += 1
        elif top == "P" and c == ")":
            if depths[-1]:
                depths[-1] -= 1
            else:
                depths.pop()
                pop(i + 1)
        i += 1
    return positions, contexts


def rewrite_shell(text: str, matcher: PrefixMatcher, where: str) -> tuple[str, int]:
    """Replace the build prefix in a POSIX shell script (``bin/python3.X-config``).

    Each place gets the quoting of its context: inside double quotes ``$ ` " \\`` are escaped,
    inside single quotes a ``'`` is written ``'"'"'``, unquoted the path becomes one quoted
    word (:func:`~pybundle.installer.quoting.sh_quote`); comments get it as is when it has no
    newline (the ``#!`` line is left to :func:`rewrite_shebang`). When the script is CPython's
    python-config template, it is also made to print exactly this prefix while still following
    the tree when it is moved: the template's ``installed_prefix`` (unquoted expansions, which
    break on spaces) is replaced by :data:`SH_FIND_PREFIX`, which prints this prefix when the
    script's tree is still there and the tree's real location after a plain ``mv``; the
    ``$(echo "..." | sed "s#$prefix#$prefix_real#")`` rewrites (broken by ``#``, ``&`` or
    ``\\`` in a path) call :data:`SH_FIND_PREFIX`'s ``_pybundle_reprefix`` instead, which
    swaps the prefix with parameter expansion; and ``echo "..."`` becomes ``printf '%s\\n'
    "..."`` (dash's echo interprets backslashes). Raises RelocationError for a place inside
    backquotes when the path needs quoting there.
    """
    spans = matcher.spans(text)
    template = _PREFIX_REAL.search(text)
    if not spans and template is None:
        return text, 0
    new = matcher.new
    positions, contexts = _sh_contexts(text)
    edits: list[tuple[int, int, str]] = []
    count = 0
    shebang_end = 0  # a "#!" line is rewrite_shebang's part
    if text.startswith("#!"):
        shebang_end = text.find("\n") if "\n" in text else len(text)
    for start, end in spans:
        if start < shebang_end:
            continue
        index = bisect.bisect_right(positions, start) - 1
        if index + 1 < len(positions) and positions[index + 1] < end:
            raise RelocationError(f"{where}: cannot relocate: the build prefix spans a quote")
        context = contexts[index]
        if context == "U":
            replacement = sh_quote(new)
        elif context == "S":
            replacement = new.replace("'", "'\"'\"'")
        elif context == "D":
            replacement = sh_double_quoted(new)
        elif (context == "B" and _PLAIN.fullmatch(new)) or (
            context == "C" and _comment_text(new, "\n") is not None
        ):
            replacement = new
        elif context == "C":
            continue
        else:
            raise RelocationError(
                f"{where}: cannot relocate: the build prefix is used inside backquotes, "
                f"where the install path cannot be quoted"
            )
        edits.append((start, end, replacement))
        count += 1
    if template is not None:
        edits.append((template.start(), template.start(), SH_FIND_PREFIX))
        edits.append((*template.span(1), f'$(_pybundle_prefix "$0" {sh_quote(new)})'))
        for m in _SED_PREFIX.finditer(text):
            edits += [(*m.span(1), "$(_pybundle_reprefix "), (*m.span(2), ")")]
        edits += [(*m.span(1), "printf '%s\\n' ") for m in _ECHO.finditer(text)]
        count += 1
    _check_disjoint(edits, where)
    return _apply(text, edits), count


def _check_disjoint(edits: list[tuple[int, int, str]], where: str) -> None:
    edits.sort()
    for (_, end, _), (start, _, _) in zip(edits, edits[1:]):
        if start < end:
            raise RelocationError(f"{where}: cannot relocate: overlapping rewrites")


# --- GNU make -----------------------------------------------------------------------------------

_MAKE_ASSIGNMENT = re.compile(
    r"[ \t]*(?:(?:export|override|private)[ \t]+)*[^\s:#=]+[ \t]*(?:::?=|:::=|[+?!]?=)[ \t]*"
)
_LOGICAL_LINE = re.compile(r"(?:[^\n\\]|\\[^\n]|\\\n)*(?:\n|$)")


def _logical_lines(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each line, a backslash-newline joining two (Makefile and .pc)."""
    pos, n = 0, len(text)
    while pos < n:
        m = _LOGICAL_LINE.match(text, pos)
        end = m.end() if m is not None and m.end() > pos else n
        yield pos, end
        pos = end


def _comment_start(text: str, start: int, end: int) -> int:
    """Index of the first ``#`` in ``text[start:end]`` not escaped by an odd backslash run."""
    i = text.find("#", start, end)
    while i >= 0:
        run = 0
        while i - run - 1 >= start and text[i - run - 1] == "\\":
            run += 1
        if run % 2 == 0:
            return i
        i = text.find("#", i + 1, end)
    return end


def rewrite_makefile(text: str, matcher: PrefixMatcher, where: str) -> tuple[str, int]:
    """Replace the build prefix in a GNU Makefile (``config-3.X-*/Makefile``).

    In a variable assignment's value the path is written with
    :func:`~pybundle.installer.quoting.make_value` (``$$``, escaped ``#``, a guarded final
    backslash), so that make expands the variable to exactly the path. In comments it is
    written as is when it has no line break or backslash, else left. Elsewhere (rules, recipes,
    directives: CPython's Makefile has the prefix in none) it is written as is when it holds only
    letters, digits and ``/.+,@~-``; otherwise RelocationError names the line.
    """
    spans = matcher.spans(text)
    if not spans:
        return text, 0
    new = matcher.new
    edits: list[tuple[int, int, str]] = []
    count = 0
    lines = iter(_logical_lines(text))
    line_start, line_end = next(lines)
    lineno = 1
    for start, end in spans:
        while start >= line_end:
            lineno += text.count("\n", line_start, line_end)
            line_start, line_end = next(lines)
        assignment = (
            None
            if text.startswith("\t", line_start)
            else _MAKE_ASSIGNMENT.match(text, line_start, line_end)
        )
        value_start = line_start if assignment is None else assignment.end()
        comment = _comment_start(text, value_start, line_end)
        if start >= comment:
            if _comment_text(new) is None:
                continue
            replacement = new
        elif assignment is not None:
            replacement = make_value(new)
        elif _PLAIN.fullmatch(new):
            replacement = new
        else:
            raise RelocationError(
                f"{where}: cannot relocate: line {lineno} uses the build prefix outside a "
                "variable assignment, where the install path cannot be quoted"
            )
        edits.append((start, end, replacement))
        count += 1
    return _apply(text, edits), count


# --- pkg-config ---------------------------------------------------------------------------------

_PC_KEY = re.compile(r"([A-Za-z0-9_.]+)[ \t]*([=:])[ \t]*")
_PC_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_PC_ARGUMENT_FIELDS = frozenset({"cflags", "cflags.private", "libs", "libs.private"})
_PC_MAX_DEPTH = 64
_PC_MAX_EXPANSION = 65536  # characters: a hostile file may nest references exponentially


def _pc_expand(
    value: str, variables: dict[str, str], cache: dict[str, str | None], depth: int = 0
) -> str | None:
    """``value`` with the file's own ``${name}`` references expanded (each variable once, via
    ``cache``); None for a reference to a variable the file does not define (``pcfiledir``...),
    a cycle, nesting beyond 64 levels or a result beyond 64 Ki characters."""
    if depth > _PC_MAX_DEPTH:
        return None
    out: list[str] = []
    size = last = 0
    for m in _PC_REFERENCE.finditer(value):
        name = m.group(1)
        if name not in cache:
            cache[name] = None  # a cycle finds None
            inner = variables.get(name)
            if inner is not None:
                cache[name] = _pc_expand(inner, variables, cache, depth + 1)
        expanded = cache[name]
        if expanded is None:
            return None
        out += (value[last : m.start()], expanded)
        size += m.start() - last + len(expanded)
        if size > _PC_MAX_EXPANSION:
            return None
        last = m.end()
    out.append(value[last:])
    return "".join(out)


def rewrite_pkgconfig(text: str, matcher: PrefixMatcher, where: str) -> tuple[str, int]:
    """Replace the build prefix in a pkg-config ``.pc`` file.

    In variables (``name=value``) and in fields (``Name: value``) the path is written with
    :func:`~pybundle.installer.quoting.pc_value`, so that ``pkg-config --variable`` prints it
    exactly; in ``Cflags``/``Libs`` fields, whose values are split into arguments, it is first
    escaped with :func:`~pybundle.installer.quoting.pc_argument`, and when that escaping changes
    it, a ``${name}`` reference there to a variable of this file that holds the build prefix
    is replaced by that variable's value with the path in it escaped (the variable itself
    keeps the plain path).
    Helper variables the escaping uses are defined on the first lines. Comments get the path as
    is when it has no line break or backslash.
    """
    spans = matcher.spans(text)
    if not spans:
        return text, 0
    new = matcher.new
    escaped_argument = pc_argument(new)
    variables: dict[str, str] = {}
    cache: dict[str, str | None] = {}
    edits: list[tuple[int, int, str]] = []
    helpers: set[str] = set()
    count = 0
    for line_start, line_end in _logical_lines(text):
        key = _PC_KEY.match(text, line_start, line_end)
        value_start = line_start if key is None else key.end()
        value_end = _comment_start(text, value_start, line_end)
        if key is None:
            value_end = line_start
        content_end = value_end
        while content_end > value_start and text[content_end - 1] in " \t\r\n\v\f":
            content_end -= 1
        for start, end in matcher.spans(text, line_start, line_end):
            if key is None or start >= value_end:
                if _comment_text(new) is not None:
                    edits.append((start, end, new))
                    count += 1
                continue
            argument = key.group(2) == ":" and key.group(1).lower() in _PC_ARGUMENT_FIELDS
            replacement, used = pc_value(escaped_argument if argument else new, end >= content_end)
            edits.append((start, end, replacement))
            helpers |= used
            count += 1
        if key is None:
            continue
        name, op = key.group(1), key.group(2)
        value = text[value_start:content_end]
        if op == "=":
            if name not in variables:
                variables[name] = value
                cache.pop(name, None)
        elif name.lower() in _PC_ARGUMENT_FIELDS and escaped_argument != new:
            for m in _PC_REFERENCE.finditer(text, value_start, content_end):
                if m.group(1) not in variables:
                    continue
                expanded = _pc_expand(m.group(0), variables, cache)
                inner = [] if expanded is None else matcher.spans(expanded)
                if expanded is None or not inner:
                    continue
                at_end = m.end() >= content_end
                pieces: list[tuple[int, int, str]] = []
                for start, end in inner:  # the rest of the value keeps its own spelling
                    piece, used = pc_value(escaped_argument, at_end and end == len(expanded))
                    pieces.append((start, end, piece))
                    helpers |= used
                edits.append((m.start(), m.end(), _apply(expanded, pieces)))
                count += len(inner)
    if not count:
        return text, 0
    _check_disjoint(edits, where)
    head = "".join(
        f"{name}={PC_HELPERS[name]}\n"
        for name in sorted(helpers)
        if f"\n{name}={PC_HELPERS[name]}\n" not in "\n" + text
    )
    return head + _apply(text, edits), count


# --- #! lines -----------------------------------------------------------------------------------

# Linux before 5.1 reads only 128 bytes of a "#!" line (BINPRM_BUF_SIZE); pip/distlib switch to a
# /bin/sh trampoline for longer lines or interpreter paths with spaces.
_MAX_SHEBANG = 127
_SHEBANG = re.compile(rb"#![ \t]*(?P<interp>[^ \t\r\n]+)(?P<tail>[^\r\n]*?)[ \t]*(?P<eol>\r?\n|\Z)")
_CODING_LINE = re.compile(rb"[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")  # PEP 263
_PYTHON_NAME = re.compile(r"(python|pypy)[0-9.]*[a-z]*")
# pip/distlib's trampoline and ours: the exec line after "#!/bin/sh" (and maybe a coding line).
_TRAMPOLINE = re.compile(
    rb"#!/bin/sh\r?\n(?P<coding>[ \t\f]*#[^\n]*coding[:=][^\n]*\n)?"
    rb"'''exec' (?P<words>[^\n]*) \"\$0\" \"\$@\"\r?\n' '''\r?\n"
)


def _fs(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _trampoline(interp: str, arg: str, coding: bytes) -> bytes:
    """pip's ``#!/bin/sh`` + ``'''exec'`` header, valid as shell and as Python, with the words
    quoted by :func:`~pybundle.installer.quoting.sh_quote`."""
    words = sh_quote(interp) + (" " + sh_quote(arg) if arg else "")
    line = "'''exec' " + words + ' "$0" "$@"\n' + "' '''\n"
    return b"#!/bin/sh\n" + coding + line.encode("utf-8", "surrogateescape")


def _in_prefix(path: str, build: str) -> bool:
    return path == build or path.startswith(build + "/")


def rewrite_shebang(data: bytes, matcher: PrefixMatcher, where: str) -> tuple[bytes, bytes] | None:
    """``(new head, rest of the file)`` if ``data`` starts with a ``#!`` line, or a
    ``#!/bin/sh`` trampoline, whose interpreter is inside the build prefix; else None.

    The interpreter is moved into the new prefix. The result is a plain ``#!`` line (keeping the
    original's spacing and line ending) when it fits in 127 bytes and the path has no
    whitespace; otherwise pip's ``#!/bin/sh`` trampoline (a PEP 263 coding line is kept within
    the first two lines), which only works for Python scripts: RelocationError for any other
    interpreter.
    """
    build, new = matcher.build, matcher.new
    plain: re.Match[bytes] | None = None
    trampoline = _TRAMPOLINE.match(data)
    if trampoline is not None:
        try:
            words = shlex.split(_fs(trampoline.group("words")))
        except ValueError:
            return None
        if not 1 <= len(words) <= 2 or not _in_prefix(words[0], build):
            return None
        old, arg = words[0], words[1] if len(words) == 2 else ""
        coding = trampoline.group("coding") or b""
        rest = data[trampoline.end() :]
    else:
        plain = _SHEBANG.match(data)
        if plain is None or not _in_prefix(_fs(plain.group("interp")), build):
            return None
        old, arg = _fs(plain.group("interp")), _fs(plain.group("tail").strip(b" \t"))
        coding = b""
        rest = data[plain.end() :]
    interp = new + old[len(build) :]
    raw = interp.encode("utf-8", "surrogateescape")
    raw_arg = arg.encode("utf-8", "surrogateescape")
    line = b"#!" + raw + (b" " + raw_arg if arg else b"")
    if len(line) <= _MAX_SHEBANG and not any(c in " \t\f\v" for c in interp):
        if plain is not None:
            start, end = plain.span("interp")
            return data[:start] + raw + data[end : plain.end()], rest
        return line + b"\n" + coding, rest
    if not _PYTHON_NAME.fullmatch(posixpath.basename(interp)):
        raise RelocationError(
            f"{where}: cannot relocate: its #! interpreter would need a /bin/sh trampoline, "
            "which only works for Python scripts"
        )
    if plain is not None:
        found = _CODING_LINE.match(rest)
        if found is not None:  # keep a PEP 263 declaration within the first two lines
            eol = rest.find(b"\n", found.end())
            end = len(rest) if eol < 0 else eol + 1
            coding = rest[:end].rstrip(b"\r\n") + b"\n"
            rest = rest[end:]
    return _trampoline(interp, arg, coding), rest
