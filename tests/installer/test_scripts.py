"""Relative script trampolines: the rewritten header is valid sh and valid Python, runs the
interpreter beside the script (also through a symlink from elsewhere), and only Python
scripts naming an interpreter of the same bin/ are changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pybundle.installer.scripts import make_scripts_relative, relative_trampoline

BODY = b"import sys\nprint('ran', sys.argv[1:])\n"


def make_tree(root: Path, prefix: str) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python3.12"
    python.symlink_to(sys.executable)  # a real interpreter, reached as bin/python3.12
    scripts = {
        "plain": f"#!{prefix}/bin/python3.12\n".encode() + BODY,
        "coding": f"#!{prefix}/bin/python3.12\n# -*- coding: utf-8 -*-\n".encode() + BODY,
        "trampoline": (
            f"#!/bin/sh\n'''exec' \"{prefix}/bin/python3.12\" \"$0\" \"$@\"\n' '''\n".encode()
            + BODY
        ),
        "with-arg": f"#!{prefix}/bin/python3.12 -E\n".encode() + BODY,
        "other-prefix": b"#!/usr/bin/python3\n" + BODY,
        "shell": f"#!{prefix}/bin/bash\necho hi\n".encode(),
        "python3.12-config": b"#!/bin/sh\necho config\n",
    }
    for name, data in scripts.items():
        (bin_dir / name).write_bytes(data)
        (bin_dir / name).chmod(0o755)
        os.utime(bin_dir / name, (1_700_000_000, 1_700_000_000))
    return bin_dir


def test_rewrites_only_python_scripts_of_this_bin(tmp_path: Path) -> None:
    prefix = str(tmp_path / "py")
    bin_dir = make_tree(tmp_path / "py", prefix)
    before = {p.name: p.read_bytes() for p in bin_dir.iterdir() if not p.is_symlink()}
    changed = make_scripts_relative(tmp_path / "py", prefix)
    assert changed == ["bin/coding", "bin/plain", "bin/trampoline"]
    for name in ("with-arg", "other-prefix", "shell", "python3.12-config"):
        assert (bin_dir / name).read_bytes() == before[name]
    assert (bin_dir / "plain").read_bytes() == relative_trampoline("python3.12") + BODY
    coding = (bin_dir / "coding").read_bytes().split(b"\n")
    assert coding[0] == b"#!/bin/sh" and b"coding: utf-8" in coding[1]  # PEP 263: line 2
    for name in ("plain", "coding", "trampoline"):
        st = (bin_dir / name).stat()
        assert st.st_mode & 0o777 == 0o755 and int(st.st_mtime) == 1_700_000_000
    assert make_scripts_relative(tmp_path / "py", prefix) == []  # idempotent


def test_trampolines_run_after_a_move_and_through_links(tmp_path: Path) -> None:
    prefix = str(tmp_path / "py")
    make_tree(tmp_path / "py", prefix)
    make_scripts_relative(tmp_path / "py", prefix)
    os.rename(tmp_path / "py", tmp_path / "moved")
    elsewhere = tmp_path / "links"
    elsewhere.mkdir()
    (elsewhere / "plain").symlink_to(tmp_path / "moved" / "bin" / "plain")
    for script in (
        tmp_path / "moved/bin/plain",
        tmp_path / "moved/bin/coding",
        tmp_path / "moved/bin/trampoline",
        elsewhere / "plain",
    ):
        out = subprocess.run([str(script), "a b", "c"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "ran ['a b', 'c']"
    # and Python itself reads the header as a string statement
    compile((tmp_path / "moved/bin/coding").read_bytes(), "coding", "exec")
