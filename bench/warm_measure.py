"""Time ``pybundle bundle`` of the bench's 3 archives from a warm cache against ``cp`` of the
same bytes (the bench's bundle-warm row, standalone; not part of ``make bench``).

Usage: ``.venv/bin/python bench/warm_measure.py [--src DIR] [--dir DIR] [--runs N]``

``--src`` puts another ``src`` tree first on the children's PYTHONPATH (e.g. a ``git archive``
of an older revision), ``--dir`` is where the cache and the outputs go (the disk by default;
``/dev/shm`` for tmpfs). Bytecode is compiled first and PYTHONDONTWRITEBYTECODE is unset, as
for an installed pybundle. Prints the wall and CPU medians and the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import alternate, clear_dir, http_server, run_child, warm_page_cache
from run import MINORS, discover_prefix, packed_archive, publish, write_catalog


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        help="src tree to measure (repeatable: the runs alternate; default: this checkout's)",
    )
    parser.add_argument("--dir", default=None, help="cache and outputs go here")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYBUNDLE_", "UV_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    srcs = [Path(s) for s in args.src] or [Path(__file__).parent.parent / "src"]
    envs = {str(src): {**env, "PYTHONPATH": str(src)} for src in srcs}
    for src in srcs:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], env=env, check=True)
    work = Path(tempfile.mkdtemp(prefix="warm-measure-", dir=args.dir))
    archives = []
    for minor in MINORS:
        prefix = discover_prefix(minor)
        assert prefix is not None
        archives.append(packed_archive(prefix, print))
    www = work / "www"
    publish(www, archives)
    catalog = write_catalog(work / "catalog.json", archives)
    keys = work / "keys"
    pybundle = str(Path(sys.executable).parent / "pybundle")
    key = keys / "k.key"
    run_child(
        [pybundle, "keygen", "--unencrypted", "--secret-key", str(key), "--public-key",
         str(keys / "k.pub")], env=env,
    )  # fmt: skip
    cache, out = work / "cache", work / "out"
    out.mkdir()
    with http_server(www) as server:
        argv = [
            pybundle, "bundle", "--versions", ",".join(a.version for a in archives),
            "--catalog", str(catalog), "--mirror", f"{server.url}/releases/download",
            "--cache-dir", str(cache), "--sign-key", str(key), "-o", str(out / "b.pybundle"),
            "--force", "--serial", "1",
        ]  # fmt: skip
        for e in envs.values():
            run_child(argv, env=e)  # fills the cache (and checks that each runs)
        warm_page_cache([a.path for a in archives])
        cp = ["cp", *(str(a.path) for a in archives), str(out)]

        def cleanup() -> None:
            clear_dir(out)
            os.sync()

        load = os.getloadavg()
        steps = {
            f"bundle {src}": lambda r, e=e: run_child(argv, env=e)  # type: ignore[misc]
            for src, e in envs.items()
        }
        series = alternate(
            {**steps, "cp": lambda r: run_child(cp, env=env)},
            args.runs,
            cleanup=cleanup,
        )
    total = sum(a.size for a in archives)
    print(f"dir {work} ({total / 1e6:.0f} MB)")
    print(f"load before {load}, after {os.getloadavg()}")
    for name, s in series.items():
        walls = ", ".join(f"{x.seconds:.3f}" for x in s.samples)
        print(f"{name}: wall median {s.median:.3f} s  cpu median {s.median_cpu:.3f} s  ({walls})")
    for name in steps:
        print(f"{name}: {series[name].median / series['cp'].median:.2f}x cp")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
