"""Rollback protection per interpreter line, and a state file that can never lock a host out.

Through the real CLI with re-signed tiny bundles (see test_trust_corpus.Parts): an older bundle
of one signer may not bring back a line (implementation, minor, variant, target) that a newer
bundle installed, while unrelated lines stay independent; a damaged or hostile state file is
repaired once, with a warning, and never blocks an install."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_refusals import assert_refused, install, snapshot
from test_trust_corpus import Parts

from conftest import tiny_interpreter_members
from pybundle.signing import SecretKey


def state_file() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "pybundle" / "serials.json"


@pytest.fixture
def line_bundles(tiny_bundle, signing_key: SecretKey, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: a bundle of one signer for ``version`` with ``serial``."""

    def make(version: str, serial: int) -> Path:
        parts = Parts(
            tiny_bundle(
                f"src-{version}-{serial}.pybundle",
                members=tiny_interpreter_members(),
                version=version,
            ),
            signing_key,
        )
        parts.doc["serial"] = serial
        return parts.build(tmp_path / f"{version}-{serial}.pybundle")

    return make


def test_one_key_two_teams_two_lines_in_either_order(
    line_bundles, key_files, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pub = key_files[1]
    new_312 = line_bundles("3.12.1", 300)
    old_311 = line_bundles("3.11.9", 100)
    for n, order in enumerate(((new_312, old_311), (old_311, new_312))):
        state_file().unlink(missing_ok=True)
        installs = tmp_path / f"installs-{n}"
        for bundle in order:
            proc = install(bundle, pub, installs)
            assert proc.returncode == 0, proc.stderr
    # the 3.12 line saw serial 300: an older 3.12 bundle is refused, in any install dir
    old_312 = line_bundles("3.12.2", 200)
    for installs in (tmp_path / "installs-0", tmp_path / "elsewhere"):
        before = snapshot(installs)
        proc = install(old_312, pub, installs)
        assert_refused(proc, 5, installs, before, "serial 200", "serial 300", "cpython-3.12")
    # a newer 3.11 bundle is fine, and the same serial again is a reinstall
    assert install(line_bundles("3.11.10", 150), pub, tmp_path / "installs-0").returncode == 0
    assert install(new_312, pub, tmp_path / "installs-0", "--force").returncode == 0


def test_replacing_an_install_from_a_newer_bundle_is_refused_without_the_state_file(
    line_bundles, key_files, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pub, installs = key_files[1], tmp_path / "installs"
    assert install(line_bundles("3.12.1", 300), pub, installs).returncode == 0
    state_file().unlink()  # the receipt of the install still says serial 300
    older = line_bundles("3.12.1", 200)
    before = snapshot(installs)
    proc = install(older, pub, installs, "--force")
    assert_refused(proc, 5, installs, before, "serial 200", "serial 300")
    proc = install(older, pub, installs, "--force", "--allow-downgrade")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("serial", [1795995204.0, True, -1, 2**64])
def test_a_serial_that_is_not_an_integer_is_refused_and_bricks_nothing(
    line_bundles, key_files, signing_key: SecretKey, tmp_path: Path, serial: object
) -> None:  # type: ignore[no-untyped-def]
    """1795995204.0 passed the schema (JSON Schema counts 1.0 as an integer), was stored as a
    float, and every later install failed: now it is refused as a manifest problem."""
    pub, installs = key_files[1], tmp_path / "installs"
    parts = Parts(line_bundles("3.12.1", 1), signing_key)
    parts.doc["serial"] = serial
    evil = parts.build(tmp_path / "evil.pybundle")
    before = snapshot(installs)
    assert_refused(install(evil, pub, installs), 5, installs, before, str(evil))
    good = install(line_bundles("3.12.1", 5), pub, installs)
    assert good.returncode == 0, good.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "moved to"),
        (b'{"version": 2, "signers": []}', "moved to"),
        (b"[" * 100_000, "moved to"),
        (b'{"version": 2, "signers": {"ABCDEF0123456789": {"x": 1795995204.0}}}', "1 malformed"),
        (json.dumps({"ABCDEF0123456789": 5}).encode(), "old one-serial-per-key format"),
    ],
)
def test_a_damaged_state_file_is_repaired_once_and_never_blocks(
    line_bundles, key_files, tmp_path: Path, content: bytes, needle: str
) -> None:  # type: ignore[no-untyped-def]
    pub = key_files[1]
    state_file().parent.mkdir(parents=True, exist_ok=True)
    state_file().write_bytes(content)
    first = install(line_bundles("3.12.1", 10), pub, tmp_path / "a")
    assert first.returncode == 0, first.stderr
    warnings = [line for line in first.stderr.splitlines() if line.startswith("pybundle: warning:")]
    assert len(warnings) == 1 and needle in warnings[0] and str(state_file()) in warnings[0]
    if needle == "moved to":
        kept = list(state_file().parent.glob("serials.json.damaged-*"))
        assert len(kept) == 1 and kept[0].read_bytes() == content
    second = install(line_bundles("3.11.1", 10), pub, tmp_path / "b")
    assert second.returncode == 0 and "warning" not in second.stderr, second.stderr
    doc = json.loads(state_file().read_text())
    assert doc["version"] == 2 and len(doc["signers"]) == 1


def test_one_bad_entry_does_not_disable_the_others(line_bundles, key_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pub = key_files[1]
    assert install(line_bundles("3.12.1", 300), pub, tmp_path / "a").returncode == 0
    doc = json.loads(state_file().read_text())
    (signer,) = doc["signers"]
    doc["signers"][signer]["cpython-3.11-linux-x86_64-gnu"] = "not a serial"
    doc["signers"]["0000000000000000"] = {"cpython-3.12-linux-x86_64-gnu": 1.5}
    state_file().write_text(json.dumps(doc))
    proc = install(line_bundles("3.12.1", 200), pub, tmp_path / "b")
    assert proc.returncode == 5 and "serial 300" in proc.stderr, proc.stderr
    assert "2 malformed entries ignored" in proc.stderr
