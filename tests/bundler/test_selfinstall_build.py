"""Making a bundle self-installing: which interpreter bootstraps each platform, and the same
carried files and stub for the same inputs (reproducible bundles compare bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_tar, tiny_artifact, tiny_interpreter_members
from pybundle.bundler.selfinstall import (
    BootCandidate,
    Stub,
    ZipLayout,
    check_bootstrappable,
    prepare_self_install,
)
from pybundle.errors import UsageError
from pybundle.targets import Target

X86 = Target("linux", "x86_64", "gnu")
X86_V3 = Target("linux", "x86_64", "gnu", "v3")
ARM = Target("linux", "aarch64", "gnu")
MAC = Target("darwin", "aarch64", "none")


def cand(
    target: Target = X86,
    version: str = "3.12.1",
    *,
    implementation: str = "cpython",
    variant: str = "default",
    flavour: str = "install_only",
    fmt: str = "tar.gz",
    label: str = "",
) -> BootCandidate:
    return BootCandidate(
        target, version, implementation, variant, flavour, fmt, label or f"{version}-{target}"
    )


def test_the_bootstrap_is_a_default_cpython_tar_gz_preferring_baseline_final_small_new() -> None:
    chosen = check_bootstrappable(
        [
            cand(X86_V3, "3.13.1", label="v3"),  # a CPU level: only when nothing else
            cand(X86, "3.14.0rc1", label="rc"),  # a prerelease: only when nothing else
            cand(X86, "3.13.0", variant="freethreaded", label="ft"),
            cand(X86, "3.13.1", fmt="tar.zst", label="zst"),
            cand(X86, "3.11.9", flavour="install_only_stripped", label="stripped-311"),
            cand(X86, "3.12.4", flavour="install_only_stripped", label="stripped-312"),
            cand(X86, "3.12.5", flavour="full", label="full"),
            cand(X86, "3.8.20", flavour="install_only_stripped", label="old"),
            cand(ARM, "3.12.1", implementation="pypy", label="pypy"),
            cand(ARM, "3.10.2", label="arm"),
            cand(MAC, "3.12.1", label="mac"),
        ]
    )
    assert {t.key: c.label for t, c in chosen.items()} == {
        "linux-x86_64-gnu": "stripped-312",
        "linux-aarch64-gnu": "arm",
    }
    only_v3 = check_bootstrappable([cand(X86_V3, "3.12.1", label="v3")])
    assert only_v3[X86].label == "v3"


@pytest.mark.parametrize(
    "candidates",
    [
        [cand(fmt="tar.zst")],
        [cand(variant="freethreaded")],
        [cand(implementation="pypy")],
        [cand(version="3.8.18")],
        [cand(), cand(ARM, fmt="tar.zst")],
    ],
    ids=["zstd", "freethreaded", "pypy", "3.8", "one-platform-of-two"],
)
def test_a_platform_without_a_bootstrap_is_refused(candidates: list[BootCandidate]) -> None:
    with pytest.raises(UsageError, match="cannot make a self-installing file: no interpreter"):
        check_bootstrappable(candidates)


def test_a_bundle_for_macos_only_cannot_install_itself() -> None:
    with pytest.raises(UsageError, match="needs at least one Linux interpreter"):
        check_bootstrappable([cand(MAC)])


def test_the_same_inputs_give_the_same_carried_files_and_stub(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "cpython-3.12.1+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz",
        tiny_interpreter_members(),
    )
    items = [(tiny_artifact(archive), archive)]
    runs = []
    for name in ("a", "b"):
        work = tmp_path / name
        work.mkdir()
        runs.append(prepare_self_install(items, tmp_path / "cache", work))
    a, b = runs
    assert a.section == b.section
    assert [p.read_bytes() for _, p in a.files] == [p.read_bytes() for _, p in b.files]
    layout = ZipLayout({items[0][0].member: 4321}, 99_999, 1234, "ab" * 32)
    assert a.stub.placeholder() == b.stub.placeholder()
    assert a.stub.render(layout) == b.stub.render(layout)
    assert len(a.stub.render(layout)) == len(a.stub.placeholder())
    assert isinstance(a.stub, Stub)
    text = a.stub.render(layout).decode()
    assert "pb_off=4321 " in text and "pb_file_size=99999 " in text
