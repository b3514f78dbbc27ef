"""Progress bars for downloads (tqdm): one aggregated bar plus one bar per transfer in flight.

Sizes are shown in decimal units (kB, MB: 10^3, 10^6 bytes), as the summary line prints them.

Drawn on stderr only when it is a terminal (or when forced); the library never draws unless the
CLI hands a :class:`TqdmProgress` to the downloader.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, Any, Optional

from pybundle.bundler.download import DownloadItem


class TqdmProgress:
    """Implements :class:`pybundle.bundler.download.Progress` with tqdm bars.

    Args:
        files: how many archives the run fetches, if known (else the label says "downloads"
            until :meth:`expect` tells, and counts those seen).
        known_bytes: sum of the sizes known in advance (more are added as transfers start).
        enabled: draw or not; None means "if ``stream`` is a terminal".
        stream: where to draw (default ``sys.stderr``).
    """

    def __init__(
        self,
        files: int,
        known_bytes: int = 0,
        enabled: Optional[bool] = None,
        stream: Optional[IO[str]] = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._positions: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._free: list[int] = []
        self._next = 1
        self._files = files
        self._done = 0
        self._seen = 0
        self.total = self._bar(
            total=known_bytes or None,
            unit="B",
            unit_scale=True,
            unit_divisor=1000,
            desc=f"0/{files} files" if files else "downloads",
            position=0,
            file=self.stream,
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    def _bar(self, **options: Any) -> Any:
        """A tqdm bar, or when drawing is off a :class:`_Off` (tqdm is not even imported)."""
        if not self.enabled:
            return _Off(options.get("total"), options.get("initial", 0))
        from tqdm import tqdm

        return tqdm(**options)

    def expect(self, files: int, known_bytes: int) -> None:
        """The run fetches ``files`` distinct archives (cache hits included), so the label
        counts against the right number from the first transfer on, whatever ``--jobs``.
        ``known_bytes`` is not added: the aggregated bar counts the bytes of transfers, as the
        summary line does (cache hits transfer nothing)."""
        with self._lock:
            self._files = files
            self.total.set_description(f"{self._done}/{max(self._files, self._seen)} files")

    def start(self, item: DownloadItem, total: Optional[int], initial: int) -> None:
        """A transfer (re)starts at byte ``initial`` of ``total`` (None: unknown)."""
        with self._lock:
            old = self._bars.pop(item.key, None)
            if old is not None:
                self.total.update(-old.n)
                self._free.append(self._positions.pop(item.key))
                old.close()
            if item.key not in self._totals:
                self._totals[item.key] = 0
                self._seen += 1
                self.total.set_description(f"{self._done}/{max(self._files, self._seen)} files")
            if total and not self._totals[item.key]:
                self._totals[item.key] = total
                self.total.total = (self.total.total or 0) + total
                self.total.refresh()
            position = self._free.pop(0) if self._free else self._next
            if position == self._next:
                self._next += 1
            bar = self._bar(
                total=total,
                initial=initial,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                desc=item.file_name[:40],
                position=position,
                leave=False,
                file=self.stream,
                disable=not self.enabled,
                dynamic_ncols=True,
            )
            self._positions[item.key] = position
            self._bars[item.key] = bar
            self.total.update(initial)

    def advance(self, item: DownloadItem, n: int) -> None:
        """``n`` more bytes of ``item`` arrived."""
        with self._lock:
            bar = self._bars.get(item.key)
            if bar is not None:
                bar.update(n)
            self.total.update(n)

    def finish(self, item: DownloadItem, cached: bool) -> None:
        """``item`` is verified in the cache (``cached``: without a transfer)."""
        with self._lock:
            bar = self._bars.pop(item.key, None)
            if bar is not None:
                self._free.append(self._positions.pop(item.key))
                bar.close()
            self._done += 1
            if item.key not in self._totals:
                self._totals[item.key] = 0
                self._seen += 1
            self.total.set_description(f"{self._done}/{max(self._files, self._seen)} files")

    def close(self) -> None:
        """Remove every bar."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            self.total.close()


class _Off:
    """What :class:`TqdmProgress` uses of a tqdm bar, drawing nothing (tqdm with ``disable``
    does the same, but importing tqdm costs more than a warm-cache bundle's downloads)."""

    def __init__(self, total: Optional[int], initial: int) -> None:
        self.total = total
        self.n = initial

    def update(self, n: int) -> None:
        self.n += n

    def set_description(self, desc: str) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass
