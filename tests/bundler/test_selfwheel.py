"""pybundle's own wheel, built from the running installation: complete, valid, installable by
pip, and the same bytes every time."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.utils import parse_wheel_filename

import pybundle
from pybundle.bundler.selfwheel import build_self_wheel, self_wheel_name


def test_the_wheel_is_reproducible(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, sha_a, size_a = build_self_wheel(tmp_path / "a")
    b, sha_b, size_b = build_self_wheel(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    assert (sha_a, size_a) == (sha_b, size_b)
    assert sha_a == hashlib.sha256(a.read_bytes()).hexdigest()
    assert a.name == self_wheel_name() == f"pybundle-{pybundle.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(a) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    package = [n for n in names if n.startswith("pybundle/")]
    assert names[: len(package)] == sorted(package)  # the package first, sorted
    assert names[-1].endswith(".dist-info/RECORD")  # then the metadata, RECORD last
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_the_wheel_holds_the_whole_package_and_a_valid_record(tmp_path: Path) -> None:
    wheel, _, _ = build_self_wheel(tmp_path)
    name, version, _, _ = parse_wheel_filename(wheel.name)
    assert (str(name), str(version)) == ("pybundle", pybundle.__version__)
    package = Path(pybundle.__file__).parent
    expected = {
        f"pybundle/{p.relative_to(package).as_posix()}"
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {n for n in names if n.startswith("pybundle/")} == expected
        assert "pybundle/selfinstall/stub.sh" in names
        assert "pybundle/schemas/manifest-v2.schema.json" in names
        info = f"pybundle-{pybundle.__version__}.dist-info"
        metadata = zf.read(f"{info}/METADATA").decode()
        assert "Name: pybundle" in metadata
        assert "Root-Is-Purelib: true" in zf.read(f"{info}/WHEEL").decode()
        assert "pybundle = pybundle.cli:main" in zf.read(f"{info}/entry_points.txt").decode()
        rows = zf.read(f"{info}/RECORD").decode().splitlines()
        recorded = {}
        for row in rows:
            path, digest, size = row.rsplit(",", 2)
            recorded[path] = (digest, size)
        assert set(recorded) == names
        assert recorded[f"{info}/RECORD"] == ("", "")
        for path, (digest, size) in recorded.items():
            if path.endswith("/RECORD"):
                continue
            data = zf.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}", path
            assert int(size) == len(data), path


def test_pip_installs_it_and_python_imports_it_from_there(tmp_path: Path) -> None:
    wheel, _, _ = build_self_wheel(tmp_path)
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-I", "-c",
         f"import sys; sys.path.insert(0, {str(target)!r}); import pybundle.cli, pybundle; "
         "print(pybundle.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout.strip() == str(target / "pybundle" / "__init__.py")
