"""Progress of long work for people: a bar with the time left on a terminal (tqdm), plain lines
with the time left elsewhere (logs, batch jobs). Callers enable it on MPI rank 0 only."""

from __future__ import annotations

import sys
import time


def _terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def terminal_bar(total: int, label: str, unit: str, stream=None):
    """A tqdm bar on ``stream`` (default stderr) when it is a terminal and tqdm is installed,
    else None (the caller then writes plain lines)."""
    stream = sys.stderr if stream is None else stream
    if not _terminal(stream):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"[zse] {label}", unit=unit, file=stream, dynamic_ncols=True)


def format_seconds(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def time_left(elapsed: float, done: int, total: int) -> float | None:
    """Seconds left at the rate so far; None before anything is done."""
    if done <= 0 or total <= done:
        return None if done <= 0 else 0.0
    return elapsed / done * (total - done)


class Progress:
    """Progress of one phase whose total is known once the work reports it.

    ``update(done, total)`` is what the kernels' ``progress`` callables receive (bands of the
    streamed estimate). On a terminal: a tqdm bar; otherwise a plain line every ``every_s``
    seconds and at the end, each with the time left.
    """

    def __init__(self, label: str, unit: str, *, enabled: bool = True, stream=None, every_s=10.0):
        self.label, self.unit, self.enabled = label, unit, enabled
        self.stream = sys.stderr if stream is None else stream
        self.every_s = every_s
        self._bar = None
        self._start = time.perf_counter()
        self._last_line = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if self._bar is None and self._last_line is None:
            self._bar = terminal_bar(total, self.label, self.unit, self.stream)
            self._last_line = self._start  # a phase shorter than every_s gets its last line only
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            return
        now = time.perf_counter()
        if done < total and now - self._last_line < self.every_s:
            return
        self._last_line = now
        elapsed = now - self._start
        left = time_left(elapsed, done, total)
        tail = f", about {format_seconds(left)} left" if left else ""
        print(
            f"[zse] {self.label}: {done}/{total} {self.unit}s ({100 * done // total} %), "
            f"{format_seconds(elapsed)}{tail}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
