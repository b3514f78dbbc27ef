"""Install progress bars (tqdm), drawn by the CLI for :mod:`pybundle.installer.progress`.

One bar per interpreter, counting the bytes of its files extracted against the manifest's
``unpacked_size`` (decimal units, as every size pybundle prints), on stderr. The CLI creates
them only when :func:`pybundle.cli.common.bars_enabled` (a terminal and no ``-q``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any, Optional

from tqdm import tqdm

from pybundle.manifest import Artifact


class InstallBars:
    """Implements :class:`pybundle.installer.progress.InstallProgress` with one tqdm bar per
    interpreter, labelled with its install name; ``stream`` defaults to stderr."""

    def __init__(self, stream: Optional[IO[str]] = None) -> None:
        self.stream = stream or sys.stderr
        self._bars: list[Any] = []

    def begin(self, artifacts: Sequence[Artifact]) -> None:
        """One bar per interpreter, in order; a bar's total is None when the manifest does
        not record the unpacked size (tqdm then counts without a percentage)."""
        width = max(len(a.install_name) for a in artifacts) if artifacts else 0
        self._bars = [
            tqdm(
                total=a.unpacked_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                desc=a.install_name.ljust(width),
                position=i,
                leave=True,
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.1,
            )
            for i, a in enumerate(artifacts)
        ]

    def advance(self, index: int, done: int) -> None:
        """Interpreter ``index`` has ``done`` bytes extracted."""
        bar = self._bars[index]
        bar.update(done - bar.n)

    def end(self, index: int) -> None:
        """Interpreter ``index`` is staged: its bar shows its final count."""
        bar = self._bars[index]
        if bar.total is not None and bar.n < bar.total:
            bar.update(bar.total - bar.n)
        bar.refresh()

    def close(self) -> None:
        """Remove the bars' hold on the terminal (they stay on screen, complete)."""
        for bar in self._bars:
            bar.close()
        self._bars = []
