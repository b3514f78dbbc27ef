"""Reproducible bundles: with SOURCE_DATE_EPOCH set, the same inputs and options give the same
bytes, built in different directories with different caches; the signature with the same key
too (Ed25519 is deterministic)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from compactlib import build, make_catalog, sha256
from conftest import discover_prefix, run_cli

EPOCH = "1790000000"
CREATED = "2026-09-21T14:13:20Z"


def _twice(tmp_path: Path, key: Path, *extra: str, env: dict[str, str] | None) -> list[Path]:
    """Build the same bundle twice in separate trees (own cache and output dir; the catalog's
    location is an input: the manifest records where each archive came from)."""
    catalog = make_catalog(tmp_path / "catalog")
    outputs = []
    for run in ("a", "b"):
        root = tmp_path / f"run-{run}" / "deeper" if run == "b" else tmp_path / f"run-{run}"
        outputs.append(build(catalog, root / "cache", key, root / "out" / "py.pybundle",
                             *extra, env=env))  # fmt: skip
    return outputs


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("--compact",),
        ("--compact", "--volume-size", "64K"),
        ("--self-installing",),
        ("--self-installing", "--compact"),
        ("--self-installing", "--compact", "--volume-size", "4M"),
    ],
    ids=["plain", "compact", "compact-volumes", "self", "self-compact", "self-compact-volumes"],
)  # fmt: skip
def test_same_inputs_give_the_same_bytes(
    tmp_path: Path, key_files: tuple[Path, Path], extra: tuple[str, ...]
) -> None:
    """Also a self-installing file (its stub, pybundle's own wheel, the carried wheels each run
    resolves into its own cache, __main__.py) and its whole-file signature."""
    secret, public = key_files
    env = {"SOURCE_DATE_EPOCH": EPOCH}
    a, b = _twice(tmp_path, secret, *extra, "--expires-in", "30d", env=env)
    if "--volume-size" in extra:
        parts_a = sorted(a.parent.glob("py.pybundle.0*"))
        parts_b = sorted(b.parent.glob("py.pybundle.0*"))
        assert [p.name for p in parts_a] == [p.name for p in parts_b] and len(parts_a) > 1
        assert [sha256(p) for p in parts_a] == [sha256(p) for p in parts_b]
        first = parts_a[0]
    else:
        assert sha256(a) == sha256(b)
        first = a
        with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
            assert za.read("pybundle.json.minisig") == zb.read("pybundle.json.minisig")
    whole = [p.with_name(p.name + ".minisig") for p in (a, b)]
    if "--self-installing" in extra:
        assert whole[0].read_bytes() == whole[1].read_bytes()
        with open(first, "rb") as f:
            assert f.read(10) == b"#!/bin/sh\n"
    else:
        assert not whole[0].exists() and not whole[1].exists()
    doc = json.loads(run_cli("inspect", "--json", str(first), check=True).stdout)
    assert doc["created"] == CREATED and doc["serial"] == int(EPOCH)
    assert doc["expires"] == "2026-10-21T14:13:20Z"
    assert CREATED in doc["signature"]["trusted_comment"]
    run_cli("verify", str(first), "--trusted-key", str(public), "--allow-expired", check=True)


def test_without_source_date_epoch_bundles_differ(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    secret, _ = key_files
    a, b = _twice(tmp_path, secret, env={"SOURCE_DATE_EPOCH": ""})
    ids = [
        json.loads(run_cli("inspect", "--json", str(p), check=True).stdout)["bundle_id"]
        for p in (a, b)
    ]
    assert ids[0] != ids[1]


def test_a_different_input_gives_a_different_bundle_id(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    secret, _ = key_files
    env = {"SOURCE_DATE_EPOCH": EPOCH}
    one = build(make_catalog(tmp_path / "c1"), tmp_path / "k1", secret, tmp_path / "1.pybundle",
                env=env)  # fmt: skip
    two = build(make_catalog(tmp_path / "c2"), tmp_path / "k2", secret, tmp_path / "2.pybundle",
                "--serial", "7", env=env)  # fmt: skip
    ids = [
        json.loads(run_cli("inspect", "--json", str(p), check=True).stdout)["bundle_id"]
        for p in (one, two)
    ]
    assert ids[0] != ids[1]


def test_a_bad_source_date_epoch_is_a_usage_error(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    secret, _ = key_files
    catalog = make_catalog(tmp_path / "catalog")
    from compactlib import bundle_args

    args = bundle_args(catalog, tmp_path / "cache", secret, tmp_path / "x.pybundle")
    proc = run_cli(*args, env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert proc.returncode == 2 and "SOURCE_DATE_EPOCH='yesterday'" in proc.stderr


@pytest.mark.slow
def test_from_prefix_bundles_are_reproducible(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    """A real pyenv interpreter packed twice (--from-prefix), into different directories."""
    prefix = discover_prefix("12") or discover_prefix("11")
    if prefix is None:
        pytest.skip("needs a pyenv CPython 3.11 or 3.12 build")
    secret, _ = key_files
    env = {"SOURCE_DATE_EPOCH": EPOCH}
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run / "local.pybundle"
        run_cli(
            "bundle", "--from-prefix", str(prefix), "--prefix-site-packages", "pip",
            "--sign-key", str(secret), "-o", str(out), env=env, check=True,
        )  # fmt: skip
        digests.append(sha256(out))
        if run == "a":
            shutil.copy(out, tmp_path / "kept.pybundle")
    assert digests[0] == digests[1]
