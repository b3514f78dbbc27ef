"""pybundle.installer.textfiles and quoting: each writer, on files of every shape its syntax
allows, checked by that syntax's real reader (Python, sh, GNU make, pkg-config); and hostile file
content, which must end in the file's new text or a RelocationError, never another exception.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import subprocess
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from test_relocate_quoting import needs_tools, sh_words

from pybundle.errors import RelocationError
from pybundle.installer.quoting import make_value, pc_value, python_literal, sh_quote
from pybundle.installer.relocate import relocate
from pybundle.installer.textfiles import (
    PrefixMatcher,
    rewrite_makefile,
    rewrite_pkgconfig,
    rewrite_python,
    rewrite_shebang,
    rewrite_shell,
)

BUILD = "/install"
# Install paths with every character the writers must quote (none that check_prefix refuses).
HOSTILE = (
    st.text(
        st.sampled_from([*"'\"\\$` #%\t{}&;*=~()!?[]<>|^-.ab/", "\x1b", "\u00fc", "\u65e5"]),
        min_size=1,
        max_size=20,
    )
    .map(lambda tail: posixpath.normpath("/p/" + tail))
    .filter(lambda path: path.startswith("/p/"))
)
QUICK = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- Python -------------------------------------------------------------------------------------

_PATHS = [BUILD, BUILD + "/lib", "-L" + BUILD + "/lib", BUILD + "x", "/foo" + BUILD, "." + BUILD]
_VALUE_PIECES = st.sampled_from(
    [*_PATHS, " ", "'", '"', "\\", "\n", "\r", "\t", "x", "\u00fc", "$", "'''", "\\N"]
)


def _literal(value: str, style: str, cut: int) -> str:
    """``value`` as Python source in one of several literal forms."""
    if style == "double":
        return json.dumps(value)  # a JSON string is a valid Python literal (BMP only)
    if style == "raw" and not any(c in value for c in "'\\\n\r"):
        return "r'" + value + "'"
    if style == "triple":
        body = value.replace("\\", "\\\\").replace("'", "\\'").replace("\r", "\\r")
        return "'''" + body + "'''"
    if style == "concat" and len(value) > 1:
        k = 1 + cut % (len(value) - 1)
        return repr(value[:k]) + "  # a comment\n  " + repr(value[k:])
    return repr(value)


@QUICK
@given(
    values=st.lists(st.lists(_VALUE_PIECES, max_size=6).map("".join), min_size=1, max_size=6),
    styles=st.lists(st.sampled_from(["repr", "double", "raw", "triple", "concat"]), min_size=6),
    cut=st.integers(0, 50),
    new=HOSTILE,
)
@example(values=[BUILD], styles=["repr"] * 6, cut=0, new="/p/o'brien\\new \"'''")
def test_python_literals_of_every_form_evaluate_to_the_relocated_value(
    values: list[str], styles: list[str], cut: int, new: str
) -> None:
    source = "# -*- coding: utf-8 -*-\nX = [\n"
    source += "".join(f"  {_literal(v, s, cut)},\n" for v, s in zip(values, styles))
    source += "]\nY = f'{1}" + BUILD + "'\n"  # f-strings are left alone
    matcher = PrefixMatcher(BUILD, new)
    data, _ = rewrite_python(source.encode(), matcher, "t.py")
    namespace: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(data, "t.py", "exec"), namespace)
    assert namespace["X"] == [matcher.sub(v)[0] for v in values]
    assert namespace["Y"] == "1" + BUILD


def test_python_module_keeps_its_declared_encoding(tmp_path: Path) -> None:
    source = "# -*- coding: latin-1 -*-\nA = '\xe9 /install/lib'\n".encode("latin-1")
    data, count = rewrite_python(source, PrefixMatcher(BUILD, "/n\u00e9/\u65e5 x"), "t.py")
    assert count == 1
    assert data.startswith(b"# -*- coding: latin-1 -*-\nA = '\xe9 /n\xe9/\\u65e5 x/lib'")
    namespace: dict[str, object] = {}
    exec(compile(data, "t.py", "exec"), namespace)
    assert namespace["A"] == "\xe9 /n\xe9/\u65e5 x/lib"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"X = '/install' +\n", id="syntax-error"),
        pytest.param(b"X = '/install'\n" + b"(" * 5000 + b")" * 5000 + b"\n", id="deep"),
        pytest.param(b"X = '\xff/install'\n", id="not-utf8"),
        pytest.param(b"# -*- coding: no-such-codec -*-\nX = '/install'\n", id="bad-codec"),
        pytest.param(b"\0X = '/install'\n", id="nul"),
    ],
)
def test_unreadable_python_module_is_a_relocation_error(data: bytes) -> None:
    with pytest.raises(RelocationError, match=r"^t\.py: cannot relocate: not a readable"):
        rewrite_python(data, PrefixMatcher(BUILD, "/new"), "t.py")


@QUICK
@given(data=st.binary(max_size=200).map(lambda b: b"X = '/install'\n" + b))
def test_python_writer_on_arbitrary_bytes_raises_only_relocation_error(data: bytes) -> None:
    with contextlib.suppress(RelocationError):
        rewrite_python(data, PrefixMatcher(BUILD, "/n'e\\w"), "t.py")


def test_python_literal_escapes() -> None:
    assert python_literal("a'b\"c\\d\ne\x00\u2028\udcff\U0001f600") == (
        "'a\\'b\"c\\\\d\\ne\\x00\\u2028\\udcff\U0001f600'"
    )
    assert python_literal("\u00e9\u65e5", '"', "latin-1") == '"\u00e9\\u65e5"'


# --- POSIX shell --------------------------------------------------------------------------------

_QUOTED = [f"'{BUILD}/lib'", f'"{BUILD}/lib"', f'"$(printf %s "{BUILD}")"', f"'it'\\''s {BUILD}'"]
_WORD_PIECES = st.sampled_from(
    [*_QUOTED, f"{BUILD}/bin", f"$(printf %s {BUILD}/x)", '"$HOME"', "\\ ", "x", "-L" + BUILD]
)


def _sh_values(script: str, count: int) -> list[str]:
    printer = "".join(f' "$v{i}"' for i in range(count))
    proc = subprocess.run(
        ["sh", "-c", f"{script}\nprintf '%s\\0'{printer}"],
        capture_output=True,
        env={"HOME": "/home/h", "PATH": os.environ["PATH"]},
        check=True,
    )
    return proc.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]


@needs_tools("sh")
@QUICK
@given(words=st.lists(st.lists(_WORD_PIECES, min_size=1, max_size=4), min_size=1, max_size=5))
@example(words=[[f'"$(printf %s "{BUILD}")"']])
def test_shell_assignments_evaluate_to_the_relocated_value(words: list[list[str]]) -> None:
    # Pieces are joined by a quoted space, a path boundary in the script and in the value.
    script = "# uses /install\n" + "".join(
        f"v{i}=" + '" "'.join(pieces) + "\n" for i, pieces in enumerate(words)
    )
    before = _sh_values(script, len(words))
    for new in ("/p/o'brien/a b/$HOME`x`\\n\"", "/p/\u65e5 #%"):
        matcher = PrefixMatcher(BUILD, new)
        text, _ = rewrite_shell(script, matcher, "t")
        assert _sh_values(text, len(words)) == [matcher.sub(value)[0] for value in before]
        assert text.startswith(f"# uses {new}\n")


def test_shell_refuses_to_guess_inside_backquotes() -> None:
    script = "v=`ls /install`\n"
    assert rewrite_shell(script, PrefixMatcher(BUILD, "/new"), "t")[0] == "v=`ls /new`\n"
    with pytest.raises(RelocationError, match=r"^t: cannot relocate: .*backquotes"):
        rewrite_shell(script, PrefixMatcher(BUILD, "/a b"), "t")


@QUICK
@given(
    text=st.lists(
        st.sampled_from([BUILD, "'", '"', "$(", ")", "(", "`", "#", "\n", " ", "\\", "${", "}"]),
        max_size=30,
    ).map("".join)
)
def test_shell_writer_on_arbitrary_text_raises_only_relocation_error(text: str) -> None:
    with contextlib.suppress(RelocationError):
        rewrite_shell(text, PrefixMatcher(BUILD, "/a 'b"), "t")


def test_sh_quote_is_one_word_without_backslashes_outside_double_quotes() -> None:
    assert sh_quote("") == "''"
    assert sh_quote("a'b\\c") == "'a'\"'\"'b'\"\\\\\"'c'"
    assert "'''" not in sh_quote("'''")


# --- GNU make -----------------------------------------------------------------------------------

_MAKE_PIECES = st.sampled_from(
    [BUILD, BUILD + "/lib", "-L" + BUILD, " ", "$$", "\\#", "x", "$(EMPTY)", "\\", "%", ";"]
)


def _make_values(makefile: str, names: list[str], work: Path) -> list[str]:
    (work / "m.mk").write_text(makefile)
    out = work / "out"
    (work / "p.mk").write_text(
        "".join(f"$(file >>{out},[$({n})])\n" for n in names) + "pybundle-print: ;\n"
    )
    out.unlink(missing_ok=True)
    subprocess.run(
        ["make", "-s", "-f", "m.mk", "-f", "p.mk", "pybundle-print"], cwd=work, check=True
    )
    return [line[1:-1] for line in out.read_text().split("\n")[:-1]]


@needs_tools("make")
@QUICK
@given(values=st.lists(st.lists(_MAKE_PIECES, max_size=6), min_size=1, max_size=5))
@example(values=[[BUILD]])
def test_make_variables_evaluate_to_the_relocated_value(
    values: list[list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("make")
    ops = ["=", ":=", "+=", "?=", " = "]
    makefile = "# built for /install\n" + "".join(
        f"{'export ' if i == 2 else ''}V{i}{ops[i % len(ops)]}\t{' '.join(p)}  # note /install\n"
        for i, p in enumerate(values)
    )
    names = [f"V{i}" for i in range(len(values))]
    before = _make_values(makefile, names, work)
    for new in ("/p/o'brien/a b/$HOME`x`\\#%;\\", "/p/\u65e5 $$"):
        text, _ = rewrite_makefile(makefile, PrefixMatcher(BUILD, new), "Makefile")
        expected = [PrefixMatcher(BUILD, new).sub(v)[0] for v in before]
        assert _make_values(text, names, work) == expected


def test_make_value_escapes() -> None:
    assert make_value("/a$b#c\\#d\\\\#e\\") == "/a$$b\\#c\\\\\\#d\\\\\\\\\\#e\\$()"


def test_makefile_outside_assignments(tmp_path: Path) -> None:
    text = "all: /install/x\n\tcp /install/y z\n"
    assert rewrite_makefile(text, PrefixMatcher(BUILD, "/new"), "M")[0] == (
        "all: /new/x\n\tcp /new/y z\n"
    )
    with pytest.raises(RelocationError, match=r"^M: cannot relocate: line 2 uses"):
        rewrite_makefile("X = 1\nall: /install/x\n", PrefixMatcher(BUILD, "/a b"), "M")


# --- pkg-config ---------------------------------------------------------------------------------


def _pkg_config(pc: Path, *args: str) -> bytes:
    return subprocess.run(
        ["pkg-config", *args, pc.stem],
        env={**os.environ, "PKG_CONFIG_PATH": str(pc.parent)},
        capture_output=True,
        check=True,
    ).stdout


PC = (
    "# built for /install\n"
    "prefix=/install  # the build prefix\n"
    "libdir=${prefix}/lib\n"
    "includedir=/install/include\n"
    "flags=-DX  -I/install/flags\n"
    "Name: x\nDescription: for /install\nVersion: 1\n"
    "Cflags: -I${includedir}/py -I/install/other ${flags}\n"
    "Libs: -L${libdir} -lx\n"
)


@needs_tools("pkg-config")
@QUICK
@given(new=HOSTILE)
@example(new="/p/trailing space ")
@example(new="/p/back\\")
@example(new="/p/$$x$")
@example(new="/p/a\\#b")
def test_pc_variables_and_arguments_give_the_path_back(
    new: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assume("${" not in new)  # refused by check_prefix: pkgconf would expand it again
    pc = tmp_path_factory.mktemp("pc") / "x.pc"
    text, _ = rewrite_pkgconfig(PC, PrefixMatcher(BUILD, new), "x.pc")
    pc.write_text(text)
    raw = new.encode()
    assert _pkg_config(pc, "--variable=prefix") == raw + b"\n"
    assert _pkg_config(pc, "--variable=libdir") == raw + b"/lib\n"
    cflags = sh_words(_pkg_config(pc, "--cflags"))
    assert cflags == [
        *(b"-I" + raw + b"/include/py", b"-I" + raw + b"/other"),
        *(b"-DX", b"-I" + raw + b"/flags"),
    ]
    assert sh_words(_pkg_config(pc, "--libs")) == [b"-L" + raw + b"/lib", b"-lx"]
    # A file that already defines the helpers (relocated before) does not get them twice.
    helpers = "".join(line for line in text.splitlines(True) if line.startswith("pybundle_"))
    again, _ = rewrite_pkgconfig(helpers + PC, PrefixMatcher(BUILD, new), "x.pc")
    assert again.count("pybundle_") == text.count("pybundle_")


def test_pc_value_helpers() -> None:
    assert pc_value("/a$b", at_end=True) == ("/a$b", set())
    assert pc_value("/a$b$$", at_end=False)[0] == "/a$b${pybundle_dollar}${pybundle_dollar}"
    with pytest.raises(ValueError):
        pc_value("/a${b}", at_end=False)
    assert pc_value("/a\\#b #", at_end=True) == ("/a\\${pybundle_hash}b \\#", {"pybundle_hash"})
    assert pc_value("/a ", at_end=True) == ("/a ${pybundle_empty}", {"pybundle_empty"})
    assert pc_value("/a ", at_end=False) == ("/a ", set())


# --- #! lines -----------------------------------------------------------------------------------


def test_existing_trampolines_are_relocated(tmp_path: Path) -> None:
    """pip/distlib's trampoline (a double-quoted path) and ours (single-quoted) are read back."""
    old = "/old dir/py"
    pip = b"#!/bin/sh\n'''exec' \"/old dir/py/bin/python3.12\" \"$0\" \"$@\"\n' '''\nbody\n"
    assert rewrite_shebang(pip, PrefixMatcher(old, "/new"), "pip") == (
        b"#!/new/bin/python3.12\n",
        b"body\n",
    )
    head, rest = rewrite_shebang(pip, PrefixMatcher(old, "/o'b/c d"), "pip") or (b"", b"")
    assert head == b"#!/bin/sh\n'''exec' '/o'\"'\"'b/c d/bin/python3.12' \"$0\" \"$@\"\n' '''\n"
    assert rewrite_shebang(head + rest, PrefixMatcher("/o'b/c d", "/x"), "pip") == (
        b"#!/x/bin/python3.12\n",
        b"body\n",
    )
    assert rewrite_shebang(pip, PrefixMatcher("/elsewhere", "/x"), "pip") is None


def test_relocated_tree_in_a_hostile_path_relocates_again(tmp_path: Path) -> None:
    """A pip script relocated into a path that needs a trampoline, then moved on, still runs."""
    first = tmp_path / "o'brien dir"
    script = first / "bin/tool"
    script.parent.mkdir(parents=True)
    script.write_bytes(b"#!/install/bin/python3\nimport sys\nprint(sys.argv[1:])\n")
    script.chmod(0o755)
    relocate(first, BUILD, str(first))
    final = tmp_path / "plain"
    relocate(first, str(first), str(final))
    assert script.read_bytes() == (
        f"#!{final}/bin/python3\n".encode() + b"import sys\nprint(sys.argv[1:])\n"
    )


# --- hostile file content -----------------------------------------------------------------------

_SNIPPETS = [
    BUILD,
    "=",
    ":",
    "#",
    "\\",
    "\n",
    "\r",
    " ",
    "\t",
    "$",
    "${",
    "}",
    "x",
    "Libs:",
    "\x00",
]


@QUICK
@given(text=st.lists(st.sampled_from(_SNIPPETS), max_size=40).map("".join))
def test_make_and_pc_writers_on_arbitrary_text_raise_only_relocation_error(text: str) -> None:
    for new in ("/a 'b$#\\", "/plain"):
        with contextlib.suppress(RelocationError):
            rewrite_makefile(text, PrefixMatcher(BUILD, new), "M")
        with contextlib.suppress(RelocationError):
            rewrite_pkgconfig(text, PrefixMatcher(BUILD, new), "x.pc")


def test_pc_references_nested_exponentially_are_bounded() -> None:
    lines = ["v0=/install/lib"] + [f"v{i}=${{v{i - 1}}} ${{v{i - 1}}}" for i in range(1, 60)]
    text = "\n".join(lines) + "\nLibs: -L${v59} -L${v2}\n"
    out, _ = rewrite_pkgconfig(text, PrefixMatcher(BUILD, "/a b"), "x.pc")
    # v59 would be 2**59 paths long: left as a reference; v2 keeps its own separating spaces.
    assert out.endswith("\nLibs: -L${v59} -L" + " ".join(["/a\\ b/lib"] * 4) + "\n")


def test_matching_is_linear_in_a_long_run_of_path_characters() -> None:
    text = "X = " + "/install" * 200_000 + "\n"
    out, count = rewrite_makefile(text, PrefixMatcher(BUILD, "/n"), "M")
    assert count == 1 and out.startswith("X = /n/install/install")
