"""A dependency-free progress bar on stderr: redrawn in place on a terminal, a line
every tenth of the way otherwise (logs stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`done/total`, rate, ETA and a few named values."""

    def __init__(
        self, total: int, desc: str, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.total, self.desc, self.enabled = max(total, 0), desc, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.start = self._last = time.perf_counter()
        self._next_line = 0.1

    def update(self, n: int = 1, **values: float) -> None:
        """Advance by `n` steps and show `values` (e.g. loss=1.23)."""
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        frac = self.done / self.total if self.total else 1.0
        if self.tty:
            if now - self._last < 0.2 and self.done < self.total:
                return
        elif frac < self._next_line and self.done < self.total:
            return
        else:
            self._next_line = frac + 0.1
        self._last = now
        self.stream.write(self._line(now, values) + ("\r" if self.tty else "\n"))
        self.stream.flush()

    def _line(self, now: float, values: dict[str, float]) -> str:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        width = 24
        filled = round(width * self.done / self.total) if self.total else width
        shown = " ".join(f"{k}={v:.3f}" for k, v in values.items())
        return (
            f"{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"{rate:.2f} it/s {elapsed:.0f}s<{eta:.0f}s {shown}"
        )

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
