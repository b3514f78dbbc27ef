"""install_bundle reports the bytes extracted per interpreter, also from worker processes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from conftest import TEST_BUILD, make_tar, tar_file, tiny_artifact, tiny_interpreter_members
from pybundle.archives import scan_archive
from pybundle.bundler.pack import write_bundle
from pybundle.installer.install import install_bundle
from pybundle.manifest import Artifact
from pybundle.signing import SecretKey


class Recorder:
    """An InstallProgress that remembers every call (all must come from this thread)."""

    def __init__(self) -> None:
        self.artifacts: list[Artifact] = []
        self.done: dict[int, list[int]] = {}
        self.ended: list[int] = []

    def begin(self, artifacts: Sequence[Artifact]) -> None:
        self.artifacts = list(artifacts)

    def advance(self, index: int, done: int) -> None:
        assert index not in self.ended
        self.done.setdefault(index, []).append(done)

    def end(self, index: int) -> None:
        self.ended.append(index)


def bundle_of(tmp_path: Path, key: SecretKey, versions: Sequence[str]) -> Path:
    items = []
    for version in versions:
        members = [*tiny_interpreter_members(), tar_file("python/lib/big", os.urandom(2_000_000))]
        name = f"cpython-{version}+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
        archive = make_tar(tmp_path / name, members)
        with open(archive, "rb") as stream:
            shape = scan_archive(stream, "tar.gz", name)
        artifact = dataclasses.replace(
            tiny_artifact(archive, version=version),
            unpacked_size=shape.unpacked_size,
            file_count=shape.file_count,
        )
        items.append((artifact, archive))
    bundle = tmp_path / "b.pybundle"
    write_bundle(bundle, items, secret_key=key)
    return bundle


@pytest.mark.parametrize("versions", [("3.12.1",), ("3.12.1", "3.13.0")], ids=["one", "workers"])
def test_progress_counts_bytes_up_to_the_unpacked_size(
    tmp_path: Path, signing_key: SecretKey, versions: tuple[str, ...]
) -> None:
    bundle = bundle_of(tmp_path, signing_key, versions)
    recorder = Recorder()
    results = install_bundle(
        bundle, [signing_key.public_key], install_dir=tmp_path / "i", progress=recorder
    )
    assert [a.version for a in recorder.artifacts] == list(versions)
    assert sorted(recorder.ended) == list(range(len(versions)))
    for index, result in enumerate(results):
        counts = recorder.done[index]
        assert counts == sorted(counts) and counts[-1] == result.artifact.unpacked_size
        assert result.stats.archive_bytes == result.artifact.unpacked_size


def test_no_progress_no_calls(tmp_path: Path, signing_key: SecretKey) -> None:
    bundle = bundle_of(tmp_path, signing_key, ("3.12.1", "3.13.0"))
    results = install_bundle(bundle, [signing_key.public_key], install_dir=tmp_path / "i")
    assert len(results) == 2
