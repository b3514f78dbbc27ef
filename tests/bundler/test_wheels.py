"""Wheels for a target platform: the tags a target accepts, the content-addressed wheel cache,
and pip driven as a subprocess (a stand-in ``pip`` script for its failures, the real pip and
package index for a real cross-platform resolution)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from packaging.tags import Tag

from pybundle.bundler.selfinstall import INSTALLER_REQUIREMENTS
from pybundle.bundler.wheels import Wheel, WheelCache, WheelTarget, download_wheels
from pybundle.errors import DownloadError, MissingWheelError, ResolutionError, StorageError
from pybundle.targets import Target

X86 = Target("linux", "x86_64", "gnu")
ARM = Target("linux", "aarch64", "gnu")
MUSL = Target("linux", "x86_64", "musl")


def test_a_glibc_target_accepts_manylinux_from_2_17_down() -> None:
    t = WheelTarget.for_interpreter(X86, "3.12.1")
    assert t.python_version == "3.12"
    assert t.abis == ("cp312", "abi3", "none")
    assert t.platforms[:2] == ("manylinux_2_17_x86_64", "manylinux2014_x86_64")
    assert "manylinux2010_x86_64" in t.platforms and "manylinux1_x86_64" in t.platforms
    assert t.platforms[-2:] == ("manylinux_2_5_x86_64", "manylinux1_x86_64")
    tags = set(t.tags())
    assert Tag("cp312", "cp312", "manylinux_2_17_x86_64") in tags
    assert Tag("cp311", "abi3", "manylinux2014_x86_64") in tags  # abi3 of older versions
    assert Tag("py3", "none", "any") in tags
    assert Tag("cp312", "cp312", "manylinux_2_28_x86_64") not in tags  # newer glibc
    assert Tag("cp313", "cp313", "manylinux_2_17_x86_64") not in tags
    assert not any("aarch64" in tag.platform for tag in tags)


@pytest.mark.parametrize(
    ("target", "version", "variant", "abis", "first"),
    [
        (ARM, "3.9.18", "default", ("cp39", "abi3", "none"), "manylinux_2_17_aarch64"),
        (MUSL, "3.11", "default", ("cp311", "abi3", "none"), "musllinux_1_2_x86_64"),
        (
            Target("linux", "armv7", "gnueabihf"),
            "3.12",
            "default",
            ("cp312", "abi3", "none"),
            "manylinux_2_17_armv7l",
        ),
        (Target("linux", "riscv64", "gnu"), "3.13", "default", ("cp313", "abi3", "none"),
         "manylinux_2_31_riscv64"),
        (X86, "3.13.0", "freethreaded", ("cp313t", "none"), "manylinux_2_17_x86_64"),
        (Target("linux", "powerpc64le", "gnu"), "3.12", "default", ("cp312", "abi3", "none"),
         "manylinux_2_17_ppc64le"),
    ],
)  # fmt: skip
def test_targets_of_other_platforms(
    target: Target, version: str, variant: str, abis: tuple[str, ...], first: str
) -> None:
    t = WheelTarget.for_interpreter(target, version, variant=variant)
    assert t.abis == abis
    assert t.platforms[0] == first
    options = t.pip_options()
    assert options[:5] == [
        "--only-binary=:all:",
        "--python-version",
        t.python_version,
        "--implementation",
        "cp",
    ]
    assert options.count("--platform") == len(t.platforms)


@pytest.mark.parametrize(
    ("target", "implementation", "why"),
    [
        (Target("linux", "armv7", "gnueabi"), "cpython", "no binary wheels exist"),
        (Target("darwin", "i686", "none"), "cpython", "no binary wheels exist"),
        (Target("freebsd", "x86_64", "none"), "cpython", "no binary wheels exist"),
        (X86, "pypy", "CPython only"),
    ],
)
def test_targets_without_binary_wheels_are_refused(
    target: Target, implementation: str, why: str
) -> None:
    with pytest.raises(ResolutionError, match=why):
        WheelTarget.for_interpreter(target, "3.12", implementation=implementation)


MAC_ARM = Target("darwin", "aarch64", "none")
MAC_X86 = Target("darwin", "x86_64", "none")


def test_a_macos_arm64_target_accepts_arm64_from_11_0_and_universal2() -> None:
    t = WheelTarget.for_interpreter(MAC_ARM, "3.12.1")
    assert t.abis == ("cp312", "abi3", "none")
    assert t.platforms[:2] == ("macosx_11_0_arm64", "macosx_11_0_universal2")
    tags = set(t.tags())
    assert Tag("cp312", "cp312", "macosx_11_0_arm64") in tags
    assert Tag("cp312", "cp312", "macosx_10_13_universal2") in tags  # holds an arm64 slice
    assert Tag("cp39", "abi3", "macosx_10_12_universal2") in tags
    assert Tag("py3", "none", "any") in tags
    assert Tag("cp312", "cp312", "macosx_11_0_x86_64") not in tags
    assert Tag("cp312", "cp312", "macosx_10_13_x86_64") not in tags
    assert Tag("cp312", "cp312", "macosx_12_0_arm64") not in tags  # newer than the floor
    assert Tag("cp312", "cp312", "macosx_14_0_arm64") not in tags
    assert not any("linux" in tag.platform or "win" in tag.platform for tag in tags)
    assert t.pip_options().count("--platform") == len(t.platforms)


def test_a_macos_x86_64_target_accepts_x86_64_from_10_15_down() -> None:
    t = WheelTarget.for_interpreter(MAC_X86, "3.11")
    assert t.platforms[0] == "macosx_10_15_x86_64"
    tags = set(t.tags())
    assert Tag("cp311", "cp311", "macosx_10_9_x86_64") in tags
    assert Tag("cp311", "cp311", "macosx_10_9_universal2") in tags
    assert Tag("cp311", "cp311", "macosx_10_15_x86_64") in tags
    assert Tag("cp311", "cp311", "macosx_11_0_x86_64") not in tags  # newer than the floor
    assert Tag("cp311", "cp311", "macosx_11_0_arm64") not in tags
    assert Tag("cp311", "cp311", "macosx_10_9_arm64") not in tags


@pytest.mark.parametrize(
    ("arch", "platform", "others"),
    [
        ("x86_64", "win_amd64", ("win32", "win_arm64")),
        ("i686", "win32", ("win_amd64", "win_arm64")),
        ("aarch64", "win_arm64", ("win_amd64", "win32")),
    ],
)
def test_windows_targets_accept_their_own_platform_only(
    arch: str, platform: str, others: tuple[str, ...]
) -> None:
    t = WheelTarget.for_interpreter(Target("windows", arch, "none"), "3.12")
    assert t.platforms == (platform,)
    assert t.pip_options()[-2:] == ["--platform", platform]
    tags = set(t.tags())
    assert Tag("cp312", "cp312", platform) in tags
    assert Tag("cp39", "abi3", platform) in tags
    assert Tag("py3", "none", "any") in tags
    for other in others:
        assert not any(tag.platform == other for tag in tags)
    assert not t.supports(frozenset({Tag("cp312", "cp312", "manylinux_2_17_x86_64")}))


def test_free_threaded_builds_on_macos_and_windows_take_the_t_abi() -> None:
    for target in (MAC_ARM, Target("windows", "x86_64", "none")):
        t = WheelTarget.for_interpreter(target, "3.13.1", variant="freethreaded+pgo")
        assert t.abis == ("cp313t", "none")
        assert not t.supports(frozenset({Tag("cp313", "abi3", t.platforms[0])}))
        assert t.supports(frozenset({Tag("cp313", "cp313t", t.platforms[0])}))


def make_wheel(directory: Path, name: str) -> Path:
    """A minimal but valid wheel zip called ``name``."""
    path = directory / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", "")
    return path


def test_cache_keeps_verified_wheels_and_evicts_damaged_ones(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    incoming = tmp_path / "in"
    incoming.mkdir()
    wheel = cache.add(make_wheel(incoming, "demo-1.0-py3-none-any.whl"))
    assert wheel.path == cache.wheels / f"{wheel.sha256}-demo-1.0-py3-none-any.whl"
    assert (wheel.project, wheel.version) == ("demo", "1.0")
    assert cache.lookup(wheel.sha256, wheel.file_name, wheel.size) == wheel.path
    # a second copy of the same bytes is dropped, the cached one kept
    again = cache.add(make_wheel(incoming, "demo-1.0-py3-none-any.whl"))
    assert again.path == wheel.path
    assert not (incoming / "demo-1.0-py3-none-any.whl").exists()
    # a cached file that no longer matches its name is evicted on lookup
    with open(wheel.path, "ab") as f:
        f.write(b"x")
    assert cache.lookup(wheel.sha256, wheel.file_name) is None
    assert not wheel.path.exists()


def test_a_file_that_is_not_a_wheel_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResolutionError, match="not a wheel file name"):
        Wheel.describe("demo.zip", 1, "0" * 64, tmp_path / "demo.zip")


FAKE_PIP = """
import sys, zipfile, os
args = sys.argv[1:]
dest = args[args.index("--dest") + 1]
mode = os.environ["FAKE_PIP"]
if mode == "fail":
    sys.stderr.write("Looking in indexes: http://127.0.0.1:9\\n")
    sys.stderr.write("WARNING: Retrying (Retry(total=4)) after connection broken by "
                     "'NewConnectionError(Connection refused)': /simple/demo/\\n")
    sys.stderr.write("ERROR: Could not find a version that satisfies the requirement demo\\n")
    sys.stderr.write("ERROR: No matching distribution found for demo\\n")
    sys.exit(1)
if mode == "missing":  # the index answered: no wheel of it for the target
    sys.stderr.write("ERROR: Could not find a version that satisfies the requirement "
                     "demo==1.0 (from versions: none)\\n")
    sys.stderr.write("ERROR: No matching distribution found for demo==1.0\\n")
    sys.exit(1)
names = {
    "ok": ["demo-1.0-py3-none-any.whl", "native-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"],
    "ok-arm": ["demo-1.0-py3-none-any.whl"],
    "sdist": ["demo-1.0.tar.gz"],
    "wrong": ["native-2.0-cp312-cp312-manylinux_2_17_aarch64.whl"],
}[mode]
for name in names:
    if name.endswith(".whl"):
        with zipfile.ZipFile(os.path.join(dest, name), "w") as zf:
            zf.writestr("x.py", name)
    else:
        open(os.path.join(dest, name), "w").write("x")
"""


@pytest.fixture
def fake_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    script = tmp_path / "fake_pip.py"
    script.write_text(FAKE_PIP)

    def use(mode: str) -> list[str]:
        monkeypatch.setenv("FAKE_PIP", mode)
        return [sys.executable, str(script)]

    return use


def test_pip_failure_is_one_line_with_pips_reason(tmp_path: Path, fake_pip) -> None:  # type: ignore[no-untyped-def]
    cache = WheelCache(tmp_path / "cache")
    target = WheelTarget.for_interpreter(X86, "3.12")
    with pytest.raises(DownloadError) as caught:
        download_wheels(["demo"], target, cache, pip=fake_pip("fail"))
    message = str(caught.value)
    assert caught.type is DownloadError
    assert "\n" not in message
    assert message.endswith("No matching distribution found for demo")
    assert "cp312 on manylinux_2_17_x86_64" in message
    assert list(cache.partials.iterdir()) == []


def test_a_resolution_is_remembered_for_when_pip_cannot_resolve(
    tmp_path: Path,
    fake_pip,  # type: ignore[no-untyped-def]
) -> None:
    cache = WheelCache(tmp_path / "cache")
    target = WheelTarget.for_interpreter(X86, "3.12")
    wheels = download_wheels(["demo", "native"], target, cache, pip=fake_pip("ok"))
    assert [w.file_name for w in wheels] == [
        "demo-1.0-py3-none-any.whl",
        "native-2.0-cp312-cp312-manylinux_2_17_x86_64.whl",
    ]
    assert all(w.path.parent == cache.wheels for w in wheels)
    warnings: list[str] = []
    again = download_wheels(
        ["demo", "native"], target, cache, pip=fake_pip("fail"), on_warning=warnings.append
    )
    assert again == wheels
    assert len(warnings) == 1 and "using the wheels it resolved last time" in warnings[0]
    # another question (other requirements, another target) has no such memory
    with pytest.raises(DownloadError):
        download_wheels(["demo"], target, cache, pip=fake_pip("fail"))
    with pytest.raises(DownloadError):
        download_wheels(
            ["demo", "native"],
            WheelTarget.for_interpreter(X86, "3.11"),
            cache,
            pip=fake_pip("fail"),
        )
    # a remembered wheel that was damaged in the cache voids the memory
    with open(wheels[1].path, "ab") as f:
        f.write(b"x")
    with pytest.raises(DownloadError):
        download_wheels(["demo", "native"], target, cache, pip=fake_pip("fail"))


def test_no_wheel_for_the_target_is_exit_3_naming_the_requirement(
    tmp_path: Path,
    fake_pip,  # type: ignore[no-untyped-def]
) -> None:
    """pip reached its index and found no wheel: not a download failure, and no remembered
    answer stands in for it."""
    cache = WheelCache(tmp_path / "cache")
    target = WheelTarget.for_interpreter(ARM, "3.12")
    download_wheels(["demo==1.0"], target, cache, pip=fake_pip("ok-arm"))
    with pytest.raises(MissingWheelError) as caught:
        download_wheels(["demo==1.0"], target, cache, pip=fake_pip("missing"))
    assert caught.value.exit_code == 3
    assert caught.value.requirement == "demo==1.0"
    assert str(caught.value).startswith("no wheel of demo==1.0 for cp312 on manylinux_2_17_aarch64")


def test_index_options_go_to_pip_and_into_the_remembered_question(
    tmp_path: Path,
    fake_pip,  # type: ignore[no-untyped-def]
) -> None:
    cache = WheelCache(tmp_path / "cache")
    target = WheelTarget.for_interpreter(X86, "3.12")
    options = ["--index-url", "http://127.0.0.1:9/simple", "-r", str(tmp_path / "r.txt")]
    first = download_wheels([], target, cache, pip=fake_pip("ok"), options=options, key=["a"])
    assert len(first) == 2
    again = download_wheels([], target, cache, pip=fake_pip("fail"), options=options, key=["a"])
    assert again == first
    with pytest.raises(DownloadError):  # another requirements file's digest: another question
        download_wheels([], target, cache, pip=fake_pip("fail"), options=options, key=["b"])


@pytest.mark.parametrize(
    ("mode", "why"), [("sdist", "which is not a wheel"), ("wrong", "does not run on")]
)
def test_what_pip_saves_must_be_wheels_for_the_target(
    tmp_path: Path,
    fake_pip,  # type: ignore[no-untyped-def]
    mode: str,
    why: str,
) -> None:
    cache = WheelCache(tmp_path / "cache")
    with pytest.raises(ResolutionError, match=why):
        download_wheels(
            ["demo"], WheelTarget.for_interpreter(X86, "3.12"), cache, pip=fake_pip(mode)
        )
    assert list(cache.partials.iterdir()) == []


def test_real_pip_resolves_the_installer_for_aarch64_on_this_x86_64_machine(
    tmp_path: Path,
) -> None:
    cache = WheelCache(tmp_path / "cache")
    target = WheelTarget.for_interpreter(ARM, "3.11")
    wheels = download_wheels(list(INSTALLER_REQUIREMENTS), target, cache)
    projects = {w.project for w in wheels}
    assert {"cryptography", "cffi", "jsonschema", "typer-slim", "click", "isal"} <= projects
    assert projects.isdisjoint({"requests", "tqdm", "typer", "rich", "pydantic", "zstandard"})
    x86 = WheelTarget.for_interpreter(X86, "3.11")
    for wheel in wheels:
        assert target.supports(wheel.tags), wheel.file_name
        if any(t.platform != "any" for t in wheel.tags):
            assert not x86.supports(wheel.tags), wheel.file_name
            assert {t.interpreter for t in wheel.tags} <= {"cp311", "cp37", "cp38", "cp39",
                                                              "cp310"}  # fmt: skip
    typer = next(w for w in wheels if w.project == "typer-slim")
    assert typer.version.startswith("0.15.")


def test_cache_list_and_clean_count_the_wheels(tmp_path: Path, fake_pip) -> None:  # type: ignore[no-untyped-def]
    from conftest import run_cli

    root = tmp_path / "cache"
    download_wheels(
        ["demo", "native"], WheelTarget.for_interpreter(X86, "3.12"), WheelCache(root),
        pip=fake_pip("ok"),
    )  # fmt: skip
    listed = run_cli("cache", "list", "--cache-dir", str(root), check=True)
    assert "; 2 wheels, " in listed.stdout
    kept = run_cli("cache", "clean", "--older-than", "1d", "--cache-dir", str(root), check=True)
    assert "removed 0 files" in kept.stdout
    cleaned = run_cli("cache", "clean", "--cache-dir", str(root), check=True)
    assert "removed 3 files" in cleaned.stdout  # two wheels and the remembered resolution
    assert WheelCache(root).entries() == []
    assert list((root / "wheel-sets").iterdir()) == []


def test_real_pip_takes_the_macos_and_windows_platform_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip (offline, on the committed test wheels) accepts every ``--platform`` of a macOS
    and a Windows target and picks only the wheels those tags allow."""
    import os
    import re

    from conftest import DATA

    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    cache = WheelCache(tmp_path / "cache")
    offline = ["--no-index", "--find-links", str(DATA / "wheels")]

    def names(target: Target, version: str, *requirements: str) -> list[str]:
        wheel_target = WheelTarget.for_interpreter(target, version)
        found = download_wheels(list(requirements), wheel_target, cache, options=offline)
        return [w.file_name for w in found]

    assert names(MAC_ARM, "3.12", "markupsafe==3.0.3", "bcrypt==5.0.0", "idna") == [
        "bcrypt-5.0.0-cp39-abi3-macosx_10_12_universal2.whl",
        "idna-3.20-py3-none-any.whl",
        "markupsafe-3.0.3-cp312-cp312-macosx_11_0_arm64.whl",
    ]
    # the universal2 wheel holds an x86_64 slice too; no x86_64 markupsafe is committed
    assert names(MAC_X86, "3.12", "bcrypt==5.0.0") == [
        "bcrypt-5.0.0-cp39-abi3-macosx_10_12_universal2.whl"
    ]
    with pytest.raises(MissingWheelError, match=re.escape("markupsafe==3.0.3")):
        names(MAC_X86, "3.12", "markupsafe==3.0.3")
    win = Target("windows", "x86_64", "none")
    assert names(win, "3.12", "markupsafe==3.0.3", "bcrypt==5.0.0") == [
        "bcrypt-5.0.0-cp39-abi3-win_amd64.whl",
        "markupsafe-3.0.3-cp312-cp312-win_amd64.whl",
    ]
    no_cp311 = re.escape("markupsafe==3.0.3 for cp311 on win_amd64")
    with pytest.raises(MissingWheelError, match=no_cp311):
        names(win, "3.11", "markupsafe==3.0.3")
    with pytest.raises(MissingWheelError, match=re.escape("bcrypt==5.0.0 for cp312 on win32")):
        names(Target("windows", "i686", "none"), "3.12", "bcrypt==5.0.0")


def test_a_cached_wheel_that_cannot_be_read_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    """An entry whose read fails with EIO (a link to /proc/self/mem: a regular file whose
    first page is never mapped) is reported as a storage problem, not a crash."""
    cache = WheelCache(tmp_path / "cache")
    digest = "ab" * 32
    entry = cache.path_for(digest, "demo-1.0-py3-none-any.whl")
    entry.symlink_to("/proc/self/mem")
    with pytest.raises(StorageError) as caught:
        cache.lookup(digest, "demo-1.0-py3-none-any.whl")
    assert str(caught.value).startswith(f"{entry}: cannot read: ")
    assert "\n" not in str(caught.value)
