"""How an install path is written into each kind of text that relocation rewrites.

Every function here takes the path as text (``str``; bytes that are not UTF-8 would arrive as
``surrogateescape`` code points, and are refused by :func:`unrepresentable`) and returns the text
to put in the file so that the file's own reader gets the path back exactly. Nothing here does
I/O; :mod:`pybundle.installer.textfiles` finds where in a file the path goes.

The rules, and the sources they come from:

* Python string literals (the language reference, "String and Bytes literals"): backslash, the
  quote character and line breaks are escaped; characters that are not printable or not
  encodable in the file's encoding become ``\\x``/``\\u``/``\\U`` escapes.
* POSIX shell (XCU 2.2 "Quoting"): inside double quotes ``$ ` " \\`` are escaped with a
  backslash; elsewhere the path is single-quoted, a ``'`` being written as ``"'"`` and a
  backslash as ``"\\\\"`` so that the result contains no backslash outside double quotes (the
  ``#!/bin/sh`` trampoline is also read by Python, which must see only valid escapes).
* GNU make (manual, "Variables", "Comments"; GNU make 4.3 measured): ``$`` is written ``$$``;
  ``#`` starts a comment unless escaped, and a run of k backslashes before a literal ``#`` is
  written as 2k+1 backslashes; a backslash at the end of a line joins it to the next, so a
  trailing backslash is followed by ``$()``, which expands to nothing. A newline cannot be part
  of a one-line variable value.
* pkg-config ``.pc`` files (freedesktop pkg-config 0.29 ``parse.c`` and pkgconf 1.8
  ``fileio.c``/``tuple.c``, measured with pkgconf 1.8.1): ``#`` starts a comment unless written
  ``\\#``, but a backslash directly before ``#`` cannot be written; ``${name}`` expands a
  variable; ``$$`` is one ``$`` for pkg-config and two for pkgconf; leading and trailing
  whitespace of a value is trimmed; ``\\r`` and ``\\n`` end a line. The characters that have no
  direct spelling are written as references to helper variables defined at the top of the file
  (:data:`PC_HELPERS`), expanded where they are used. A path holding ``${`` cannot be written:
  pkgconf expands a variable's value again where another variable or field uses it.
  ``Cflags``/``Libs`` values are then split into arguments like a shell does, so whitespace,
  quotes and backslashes there get a backslash first (:func:`pc_argument`).
"""

from __future__ import annotations

__all__ = [
    "PC_HELPERS",
    "make_value",
    "pc_argument",
    "pc_value",
    "python_literal",
    "sh_double_quoted",
    "sh_quote",
    "shown",
    "unrepresentable",
]

# Helper variables a .pc file gets (only those used) for characters with no direct spelling.
PC_HELPERS: dict[str, str] = {
    "pybundle_dollar": "$",  # a '$' before '$' (one '$' for pkg-config), or ending the path
    "pybundle_hash": "\\#",  # a '#' right after a backslash
    "pybundle_empty": "",  # ends the path when it ends in whitespace or a backslash
}

_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale, which pkg-config and pkgconf use


def shown(path: str) -> str:
    """``path`` for a one-line message: non-printable characters as Python escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)


def unrepresentable(path: str) -> tuple[str, str, str] | None:
    """The first character of ``path`` that some file kind cannot hold, as ``(character,
    description, file kind)``, or None if every kind relocation writes can represent it.

    Refused: NUL (no file name can hold it), a newline (a Makefile variable is one line), a
    carriage return (pkg-config ends a line there), ``${`` (pkgconf expands a variable's value
    again where it is used) and bytes that are not UTF-8 (Python reads its source files,
    including the ``#!`` line of pip's scripts, as UTF-8).
    """
    if "${" in path:
        return "${", "a pkg-config variable reference", "pkg-config file"
    for char in path:
        if char == "\0":
            return char, "a NUL byte", "file name"  # the OS refuses it too
        if char == "\n":
            return char, "a newline", "Makefile"
        if char == "\r":
            return char, "a carriage return", "pkg-config file"
        if "\udc80" <= char <= "\udcff":
            return char, "a byte that is not UTF-8", "Python source file"
        if "\ud800" <= char <= "\udfff":
            return char, "a lone surrogate", "Python source file"
    return None


# --- Python ------------------------------------------------------------------------------------

_PY_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def python_literal(value: str, quote: str = "'", encoding: str = "utf-8") -> str:
    """A Python string literal (with its quotes) that evaluates to exactly ``value``.

    ``quote`` is ``'`` or ``"``; ``encoding`` is the source file's encoding: printable characters
    it cannot encode are escaped too. Valid in every Python 3 version.
    """
    out = [quote]
    utf8 = encoding.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig")
    for char in value:
        if char in _PY_ESCAPES:
            out.append(_PY_ESCAPES[char])
        elif char == quote:
            out.append("\\" + quote)
        elif char.isprintable() and (char.isascii() or utf8 or _encodable(char, encoding)):
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    out.append(quote)
    return "".join(out)


def _encodable(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


# --- POSIX shell -------------------------------------------------------------------------------


def sh_quote(text: str) -> str:
    """One shell word that is exactly ``text``: single-quoted runs, with each ``'`` as ``"'"``
    and backslashes as ``"\\\\"`` (so no backslash appears outside double quotes and no three
    quote characters are adjacent: the result is also valid inside a Python ``'''`` string)."""
    parts: list[str] = []
    run: list[str] = []
    for char in text:
        if char in "'\\":
            if run:
                parts.append("'" + "".join(run) + "'")
                run = []
            parts.append('"\'"' if char == "'" else '"\\\\"')
        else:
            run.append(char)
    if run or not parts:
        parts.append("'" + "".join(run) + "'")
    return "".join(parts)


def sh_double_quoted(text: str) -> str:
    """``text`` for the inside of a shell double-quoted string: ``$ ` " \\`` escaped."""
    if not any(c in '$`"\\' for c in text):
        return text
    return "".join("\\" + c if c in '$`"\\' else c for c in text)


# --- GNU make ----------------------------------------------------------------------------------


def make_value(text: str) -> str:
    """``text`` for a GNU make variable value on one line (no newline allowed in ``text``)."""
    if "\n" in text:
        raise ValueError("a Makefile variable value cannot hold a newline")
    out: list[str] = []
    backslashes = 0
    for char in text:
        if char == "\\":
            backslashes += 1
            continue
        if char == "#":
            out.append("\\" * (2 * backslashes + 1) + "#")
        else:
            out.append("\\" * backslashes + ("$$" if char == "$" else char))
        backslashes = 0
    if backslashes:
        out.append("\\" * backslashes + "$()")
    return "".join(out)


# --- pkg-config --------------------------------------------------------------------------------


def pc_argument(text: str) -> str:
    """``text`` as one argument of a ``Cflags``/``Libs`` value: whitespace, quotes and
    backslashes prefixed with a backslash (before :func:`pc_value` is applied)."""
    return "".join("\\" + c if c in _C_SPACE or c in "'\"\\" else c for c in text)


def pc_value(text: str, at_end: bool) -> tuple[str, set[str]]:
    """``text`` for a ``.pc`` value, and the names of the :data:`PC_HELPERS` it uses.

    ``at_end`` says whether only whitespace or a comment follows ``text`` on its line (the
    value's trailing whitespace would be trimmed and a final backslash would join lines).
    Raises ValueError for ``\\r``, ``\\n`` or ``${``, which no ``.pc`` value can hold.
    """
    if "\n" in text or "\r" in text or "${" in text:
        raise ValueError("a pkg-config value cannot hold a line break or '${'")
    out: list[str] = []
    used: set[str] = set()
    for i, char in enumerate(text):
        if char == "$":
            following = text[i + 1 : i + 2]
            if following in ("", "{", "$"):
                out.append("${pybundle_dollar}")
                used.add("pybundle_dollar")
            else:
                out.append("$")
        elif char == "#":
            if out and out[-1].endswith("\\"):
                out.append("${pybundle_hash}")
                used.add("pybundle_hash")
            else:
                out.append("\\#")
        else:
            out.append(char)
    if at_end and text and (text[-1] in _C_SPACE or text[-1] == "\\"):
        out.append("${pybundle_empty}")
        used.add("pybundle_empty")
    return "".join(out), used
