"""``make fuzz``: run the fuzzer's families for as long as asked and keep failing inputs.

    python tests/fuzz/run.py --minutes 30 [--families zip,tar] [--batch 200]

The time is split evenly across the families (zip, manifest, signature, tar, compression),
each run against a ``.tar.gz`` and a ``.tar.zst`` base bundle. Each batch is one pytest run of
tests/fuzz/test_fuzz.py with a new random hypothesis seed; a failing input (hypothesis's
shrunk example) is filed into tests/corpus/ under ``<family>-<sha256 prefix>.pybundle`` with a
``.txt`` note, and replayed by the normal test suite from then on. Prints, per family, the
inputs tried, the batches and the failures found.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from fuzzlib import FAMILIES, file_pending  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("FUZZ_MINUTES", 30)))
    parser.add_argument("--families", default=",".join(sorted(FAMILIES)))
    parser.add_argument("--batch", type=int, default=200, help="examples per pytest run")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    share = args.minutes * 60 / len(families)
    totals: dict[str, tuple[int, int, list[Path]]] = {}
    for family in families:
        deadline = time.monotonic() + share
        tried = batches = 0
        found: list[Path] = []
        while time.monotonic() < deadline:
            with tempfile.NamedTemporaryFile(prefix="fuzz-count-") as count:
                env = {
                    **os.environ,
                    "PYBUNDLE_FUZZ_EXAMPLES": str(args.batch),
                    "PYBUNDLE_FUZZ_KEEP": "1",
                    "PYBUNDLE_FUZZ_COUNT_FILE": count.name,
                }
                seed = random.SystemRandom().randrange(2**32)
                proc = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                     f"--hypothesis-seed={seed}", str(HERE / "test_fuzz.py"),
                     "-k", f"test_fuzz_family and {family}"],
                    env=env, capture_output=True, text=True,
                )  # fmt: skip
                tried += len(Path(count.name).read_text())
            batches += 1
            kept = file_pending()
            found += kept
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.splitlines()[-15:])
                print(f"[{family}] seed {seed}: FAILED\n{tail}", flush=True)
                for path in kept:
                    print(f"[{family}] kept {path}", flush=True)
            print(f"[{family}] batch {batches}: {tried} inputs so far", flush=True)
        totals[family] = (tried, batches, found)
    print("\nfamily        inputs  batches  failures")
    for family, (tried, batches, found) in totals.items():
        print(f"{family:12} {tried:7} {batches:8} {len(found):9}")
    print(f"total        {sum(t for t, _, _ in totals.values()):7}")
    return 1 if any(found for _, _, found in totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
