"""``make fuzz``: run the fuzzer's families for as long as asked and keep failing inputs.

    python tests/fuzz/run.py --minutes 30 [--families zip,tar] [--batch 200]

The time is split evenly across the families (zip, manifest, signature, tar, compression),
each run against a ``.tar.gz`` and a ``.tar.zst`` base bundle, plus the parser fuzzers of
:data:`EXTERNAL` (the strict tar reader, which keeps its failing inputs in
tests/corpus/tarstream/, and the ELF reader/writer). Each batch is one pytest run of
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

EXTERNAL = {
    "tarstream": (HERE.parent / "installer" / "test_tarstream_fuzz.py", "mutated or pax"),
    "elf": (HERE.parent / "installer" / "test_elf_fuzz.py", "damaged"),
}
"""Fuzzers of single parsers that live beside their tests: the strict tar reader (which keeps
its failing inputs in tests/corpus/tarstream/) and the ELF reader/writer. Each property test
runs the batch size of examples."""


def run_external(
    family: str, batch: int, seed: int
) -> tuple[subprocess.CompletedProcess[str], int]:
    """One batch of a parser fuzzer; returns the process and the inputs it tried."""
    path, tests = EXTERNAL[family]
    env = {
        **os.environ,
        "PYBUNDLE_FUZZ_EXAMPLES": str(batch),
        "PYBUNDLE_FUZZ_SEED": str(seed),
        "PYBUNDLE_FUZZ_CORPUS": str(HERE.parent / "corpus" / family),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", str(path),
         "-k", tests, f"--hypothesis-seed={seed}"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    passed = next(
        (int(w) for line in proc.stdout.splitlines() for w, n in zip(line.split(), line.split()[1:])
         if n.startswith("passed") and w.isdigit()),
        0,
    )  # fmt: skip
    return proc, passed * batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("FUZZ_MINUTES", 30)))
    parser.add_argument("--families", default=",".join([*sorted(FAMILIES), *EXTERNAL]))
    parser.add_argument("--batch", type=int, default=200, help="examples per pytest run")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES) - set(EXTERNAL))
    if unknown:
        parser.error(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    share = args.minutes * 60 / len(families)
    totals: dict[str, tuple[int, int, list[Path]]] = {}
    for family in families:
        deadline = time.monotonic() + share
        tried = batches = 0
        found: list[Path] = []
        while time.monotonic() < deadline:
            if family in EXTERNAL:
                seed = random.SystemRandom().randrange(2**32)
                proc, n = run_external(family, args.batch, seed)
                tried += n
                batches += 1
                if proc.returncode != 0:
                    found.append(EXTERNAL[family][0])
                    print(f"[{family}] seed {seed}: FAILED\n{proc.stdout[-2000:]}", flush=True)
                print(f"[{family}] batch {batches}: {tried} inputs so far", flush=True)
                continue
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
            if proc.returncode != 0 and not kept:
                found.append(HERE / "test_fuzz.py")  # a failure without a kept input
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
