"""The user scenario of a self-installing bundle on a bare Debian host.

The host is a Debian trixie ``debootstrap --variant=minbase`` root filesystem (POSIX sh, coreutils,
tar and gzip; no Python, no unzip, no zstd), made once from the Debian mirror apt uses on this
machine and cached outside the repository (``$PYBUNDLE_TEST_CACHE``, default
``/var/cache/pybundle-tests``). Every scenario runs on a fresh overlay of it, in a new mount and
network namespace (``unshare --mount --net``: no network at all), through ``chroot`` with an
empty environment (``env -i``), as root; only the bundle and the public key are copied in
(``~`` is ``/root``).

One thing is added to the root filesystem on purpose: pyenv-built interpreters, which this test
bundles (the machine's real CPython 3.12), link the host's ``libffi.so.8`` for ``_ctypes``
(python-build-standalone builds carry their own), and a minbase trixie lacks it, so Debian's
``libffi8`` package (fetched once with ``apt-get download`` and cached) is installed with
``dpkg -i`` before the scenario.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import filelock
import pytest

from conftest import discover_prefix, run_cli

SUITE = "trixie"
CACHE = Path(os.environ.get("PYBUNDLE_TEST_CACHE", "/var/cache/pybundle-tests"))
INSTALLS = "/root/.local/share/pybundle/python"
PY312 = f"{INSTALLS}/cpython-3.12.1-linux-x86_64-gnu"
PY311 = f"{INSTALLS}/cpython-3.11.7-linux-x86_64-gnu"
CHECK = "import ssl, sqlite3, ctypes, sys; print(sys.prefix)"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_root,
    pytest.mark.tool("debootstrap", "unshare", "chroot", "apt-get", "dpkg"),
]


def debian_mirror() -> str:
    """The Debian archive URL apt is configured with here (``URIs:`` of a deb822 ``.sources``
    file, else a ``deb URL suite`` line), security and updates archives excepted."""
    candidates: list[str] = []
    sources = Path("/etc/apt")
    files = [*sorted(sources.glob("sources.list.d/*.sources")), sources / "sources.list"]
    files += sorted(sources.glob("sources.list.d/*.list"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        candidates += re.findall(r"^URIs:\s*(\S+)", text, re.M)
        candidates += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s", text, re.M)
    for url in candidates:
        if url.rstrip("/").endswith("/debian"):
            return url
    pytest.fail(f"no Debian mirror in apt's sources ({', '.join(map(str, files))})")


def cached_rootfs() -> tuple[Path, Path]:
    """``(root filesystem, libffi8 .deb)``, made once and kept under :data:`CACHE`."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(CACHE / ".lock")):
        rootfs = CACHE / f"debian-{SUITE}-minbase"
        if not (rootfs / ".pybundle-complete").exists():
            shutil.rmtree(rootfs, ignore_errors=True)
            partial = CACHE / f"debian-{SUITE}-minbase.partial"
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(
                ["debootstrap", "--variant=minbase", SUITE, str(partial), debian_mirror()],
                check=True,
                capture_output=True,
                timeout=1800,
            )
            (partial / ".pybundle-complete").write_text("debootstrap --variant=minbase\n")
            partial.rename(rootfs)
        debs = sorted(CACHE.glob("libffi8_*.deb"))
        if not debs:
            fetch = ["apt-get", "download", "libffi8"]
            if subprocess.run(fetch, cwd=CACHE, capture_output=True).returncode != 0:
                subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
                subprocess.run(fetch, cwd=CACHE, check=True, capture_output=True)
            debs = sorted(CACHE.glob("libffi8_*.deb"))
    return rootfs, debs[-1]


class BareHost:
    """A fresh overlay of the cached root filesystem; :meth:`run` runs a scenario in it."""

    def __init__(self, rootfs: Path, deb: Path, tmp: Path) -> None:
        self.rootfs = rootfs
        self.deb = deb
        self.tmp = tmp
        for d in ("upper", "work", "merged"):
            (tmp / d).mkdir(parents=True)
        self.files: dict[str, Path] = {}

    def copy_in(self, source: Path, name: str) -> None:
        """Put ``source`` at ``/root/<name>`` before the scenario starts."""
        self.files[name] = source

    def run(self, steps: list[str]) -> list[tuple[int, str]]:
        """Run each step with ``chroot ROOT env -i sh -c STEP``, in one mount and network
        namespace; returns ``(exit status, output)`` per step."""
        merged = self.tmp / "merged"
        setup = [
            "set -e",
            f"mount -t overlay overlay -o lowerdir={self.rootfs},upperdir={self.tmp}/upper,"
            f"workdir={self.tmp}/work {merged}",
            f"mount -t proc proc {merged}/proc",
            f"mount -t tmpfs tmpfs {merged}/dev/shm",
            f"cp {self.deb} {merged}/root/libffi8.deb",
            f"chroot {merged} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "
            "'dpkg -i /root/libffi8.deb >/dev/null && rm /root/libffi8.deb'",
        ]
        setup += [f"cp {src} {merged}/root/{name}" for name, src in self.files.items()]
        setup.append("set +e")
        script = list(setup)
        for i, step in enumerate(steps):
            quoted = step.replace("'", "'\\''")
            script.append(
                f"chroot {merged} /usr/bin/env -i /bin/sh -c '{quoted}' 2>&1; echo \"@@{i} $?\""
            )
        proc = subprocess.run(
            ["unshare", "--mount", "--net", "--fork", "sh", "-c", "\n".join(script)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results = []
        text = proc.stdout
        for i in range(len(steps)):
            m = re.search(rf"^@@{i} (\d+)$", text, re.M)
            assert m, proc.stdout + proc.stderr
            results.append((int(m.group(1)), text[: m.start()]))
            text = text[m.end() + 1 :]
        return results


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``py.pybundle`` (self-installing, the real pyenv 3.12 packed by ``bundle --from-prefix``
    as a tar.gz), a plain ``second.pybundle`` (pyenv 3.11, tar.gz), and the keys."""
    py312, py311 = discover_prefix("12"), discover_prefix("11")
    if py312 is None or py311 is None:
        pytest.skip("needs pyenv CPython 3.11 and 3.12 builds")
    root = tmp_path_factory.mktemp("bare-bundles")
    keys = {}
    for name in ("ops", "wrong"):
        run_cli(
            "keygen", "--secret-key", str(root / f"{name}.key"), "--public-key",
            str(root / f"{name}.pub"), "--unencrypted", check=True,
        )  # fmt: skip
        keys[name] = root / f"{name}.pub"
    cache = root / "cache"
    run_cli(
        "bundle", "--from-prefix", str(py312), "--prefix-site-packages", "pip",
        "--self-installing", "--sign-key", str(root / "ops.key"), "--cache-dir", str(cache),
        "-o", str(root / "py.pybundle"), check=True,
    )  # fmt: skip
    run_cli(
        "bundle", "--from-prefix", str(py311), "--prefix-site-packages", "pip",
        "--prefix-format", "tar.gz", "--sign-key", str(root / "ops.key"),
        "-o", str(root / "second.pybundle"), check=True,
    )  # fmt: skip
    return {
        "bundle": root / "py.pybundle",
        "second": root / "second.pybundle",
        "ops.pub": keys["ops"],
        "wrong.pub": keys["wrong"],
    }


@pytest.fixture
def bare(tmp_path: Path) -> BareHost:
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, unshare, chroot)")
    rootfs, deb = cached_rootfs()
    return BareHost(rootfs, deb, tmp_path)


NOTHING_LEFT = 'for d in /tmp /var/tmp /dev/shm; do echo "$d:" $(ls -A $d); done'
EMPTY = "/tmp:\n/var/tmp:\n/dev/shm:\n"
NO_NETWORK = 'import urllib.request as u; u.urlopen("http://deb.debian.org", timeout=3)'


def test_sh_file_install_on_a_bare_host(bare: BareHost, bundles: dict[str, Path]) -> None:
    bare.copy_in(bundles["bundle"], "py.pybundle")
    bare.copy_in(bundles["ops.pub"], "ops.pub")
    bare.copy_in(bundles["wrong.pub"], "wrong.pub")
    started = time.monotonic()
    steps = bare.run(
        [
            "command -v python3 python || echo no python",
            "sh /root/py.pybundle install --trusted-key /root/wrong.pub",
            f"{NOTHING_LEFT}; ls -A {INSTALLS} 2>/dev/null; echo listed",
            "start=$(date +%s%N); sh /root/py.pybundle install --trusted-key /root/ops.pub && "
            f"{PY312}/bin/python3.12 -c pass && "
            "echo took $(( ($(date +%s%N) - start) / 1000000 )) ms",
            "rm /root/py.pybundle",
            f"{PY312}/bin/python3.12 -c '{CHECK}'",
            NOTHING_LEFT,
            f"{PY312}/bin/python3.12 -c '{NO_NETWORK}'",
        ]
    )  # fmt: skip
    elapsed = time.monotonic() - started
    (no_python, wrong, after_wrong, install, rm, check, left, network) = steps
    assert no_python == (0, "no python\n")
    assert wrong[0] == 5, wrong[1]
    assert "which is not trusted" in wrong[1]
    assert after_wrong == (0, EMPTY + "listed\n")
    assert install[0] == 0, install[1]
    assert f"installed cpython 3.12.1 (linux-x86_64-gnu) -> {PY312}" in install[1]
    took = re.search(r"took (\d+) ms", install[1])
    assert took, install[1]
    print(f"\nsh py.pybundle install -> a running python3.12: {took.group(1)} ms "
          f"(whole scenario {elapsed:.1f} s)")  # fmt: skip
    assert rm[0] == 0
    assert check == (0, f"{PY312}\n")
    assert left == (0, EMPTY)
    assert network[0] != 0  # the namespace has no network


def test_keep_installer_then_pybundle_works_offline_on_a_bare_host(
    bare: BareHost, bundles: dict[str, Path]
) -> None:
    bare.copy_in(bundles["bundle"], "py.pybundle")
    bare.copy_in(bundles["second"], "second.pybundle")
    bare.copy_in(bundles["ops.pub"], "ops.pub")
    kept, rm, verify, second, check, left = bare.run(
        [
            "sh /root/py.pybundle install --trusted-key /root/ops.pub --keep-installer",
            "rm /root/py.pybundle",
            "/root/.local/bin/pybundle verify --trusted-key /root/ops.pub /root/second.pybundle",
            "/root/.local/bin/pybundle install --from /root/second.pybundle "
            "--trusted-key /root/ops.pub",
            f"{PY311}/bin/python3.11 -c '{CHECK}'",
            NOTHING_LEFT,
        ]
    )
    assert kept[0] == 0, kept[1]
    assert "kept pybundle 0.1.0 in /root/.local/share/pybundle/installer/pybundle-0.1.0-" in kept[1]
    assert "linked /root/.local/bin/pybundle" in kept[1]
    assert rm[0] == 0
    assert verify[0] == 0, verify[1]
    assert "OK /root/second.pybundle: signed by key" in verify[1]
    assert second[0] == 0, second[1]
    assert f"installed cpython 3.11.7 (linux-x86_64-gnu) -> {PY311}" in second[1]
    assert check == (0, f"{PY311}\n")
    assert left == (0, EMPTY)
