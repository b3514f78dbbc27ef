"""Install receipts written in batches read back whole, one file entry per line."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from tests.conftest import make_tar, tar_file, tiny_artifact

from pybundle.installer.receipts import (
    RECEIPT_NAME,
    BundleIdentity,
    FileEntry,
    Receipt,
    read_receipt,
    write_receipt,
)


def _receipt(tmp_path: Path, files: tuple[FileEntry, ...]) -> Receipt:
    archive = tmp_path / "cpython-3.12.1-x86_64-unknown-linux-gnu-install_only.tar.gz"
    make_tar(archive, [tar_file("python/bin/python3")])
    return Receipt(
        prefix=str(tmp_path / "prefix"),
        layout="pybundle",
        installed_at=datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc),
        bundle=BundleIdentity(
            "0f0e0d0c-0b0a-4908-8706-050403020100",
            7,
            datetime(2026, 11, 29, tzinfo=timezone.utc),
            "B92BE73C9B4E34B9",
            "/media/usb/b.pybundle",
        ),
        artifact=tiny_artifact(archive),
        build_prefix="/opt/fake",
        files=files,
    )


@pytest.mark.parametrize("count", [0, 1, 1024, 1025, 2500])
def test_a_receipt_reads_back_whole_across_write_batches(tmp_path: Path, count: int) -> None:
    odd = ['"', "\\", "\u00e9", "\u2028", " ", "\U0001f40d"]  # quote, backslash, non-ASCII
    files = tuple(
        FileEntry(f"lib/f{i:05d}{odd[i % 6]}", "file", 0o755 if i % 3 else 0o644, i, f"{i:064x}")
        if i % 7
        else FileEntry(f"lib/l{i:05d}{odd[i % 6]}", "symlink", target=f"../f{odd[i % 6]}")
        for i in range(count)
    )
    root = tmp_path / "root"
    root.mkdir()
    receipt = _receipt(tmp_path, files)
    path = write_receipt(root, receipt)
    assert path == root / RECEIPT_NAME
    back = read_receipt(root)
    assert back is not None and back.files == files
    assert back.bundle == receipt.bundle and back.prefix == receipt.prefix
    text = path.read_text("ascii")
    assert json.loads(text)["files"] == [f.to_json() for f in files]
    lines = text.split("\n")
    # one entry per line, as json.dumps writes it, between the head and the closing bracket
    assert lines[-1] == ""
    if count:
        assert lines[1:-2] == [
            "  " + json.dumps(f.to_json(), ensure_ascii=True, separators=(",", ":")) + ","
            for f in files[:-1]
        ] + ["  " + json.dumps(files[-1].to_json(), ensure_ascii=True, separators=(",", ":"))]
        assert lines[-2] == "]}"
    else:
        assert len(lines) == 2
    assert sorted(p.name for p in root.iterdir()) == [RECEIPT_NAME]
