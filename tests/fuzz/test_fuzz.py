"""The fuzzer's short run (part of ``make test``) and the replay of every kept failing input.

``PYBUNDLE_FUZZ_EXAMPLES`` sets the examples per family (default 25); ``make fuzz`` runs the
same families for as long as asked (tests/fuzz/run.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzlib import (
    CORPUS,
    FAMILIES,
    Arena,
    Base,
    exercise,
    keep_pending,
    make_arena,
    make_base,
    scratch,
)
from hypothesis import HealthCheck, given, settings

EXAMPLES = int(os.environ.get("PYBUNDLE_FUZZ_EXAMPLES", "25"))
KEEP = os.environ.get("PYBUNDLE_FUZZ_KEEP") == "1"
COUNT_FILE = os.environ.get("PYBUNDLE_FUZZ_COUNT_FILE")


def count_example() -> None:
    """Tell tests/fuzz/run.py that one more input was tried."""
    if COUNT_FILE:
        with open(COUNT_FILE, "a") as f:
            f.write(".")


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module", params=["tar.gz", "tar.zst"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Base, Arena]]:
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    saved = {
        k: os.environ.get(k) for k in ("PYBUNDLE_STATE_DIR", "XDG_CONFIG_HOME", "PYBUNDLE_BIN_DIR")
    }
    os.environ["PYBUNDLE_STATE_DIR"] = str(root / "state")
    os.environ["XDG_CONFIG_HOME"] = str(root / "config")  # no trusted-keys dir from the user
    os.environ["PYBUNDLE_BIN_DIR"] = str(root / "bin")  # install's links: never the user's
    base = make_base(root, request.param)
    yield base, make_arena(root / "arena", base)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fuzz_family(world: tuple[Base, Arena], family: str) -> None:
    base, arena = world

    @SETTINGS
    @given(FAMILIES[family]())
    def run(mutate) -> None:  # type: ignore[no-untyped-def]
        with scratch() as tmp:
            bundle = mutate(base, tmp / f"{family}.pybundle")
            count_example()
            try:
                exercise(arena, bundle)
            except AssertionError as exc:
                if KEEP:  # the last one kept is hypothesis's final, shrunk example
                    keep_pending(family, bundle, exc)
                raise

    run()


@pytest.mark.parametrize(
    "kept", sorted(CORPUS.glob("*.pybundle")) or [None], ids=lambda p: p.name if p else "empty"
)
def test_kept_failing_inputs_now_pass(world: tuple[Base, Arena], kept: Path | None) -> None:
    """Every input the fuzzer once failed on (tests/corpus/) keeps the invariants now."""
    if kept is None:
        assert not list(CORPUS.glob("*.pybundle"))
        return
    _base, arena = world
    with scratch() as tmp:
        copy = tmp / kept.name
        copy.write_bytes(kept.read_bytes())
        exercise(arena, copy)
