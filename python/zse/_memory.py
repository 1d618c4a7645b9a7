"""How much memory this process may still use, to refuse work before it fails halfway."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or None where that cannot be read.

    Linux: ``MemAvailable`` from /proc/meminfo, bounded by a cgroup limit when one is set
    (containers and batch jobs); elsewhere the free physical pages.
    """
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            available = None
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit_file) as handle:
                text = handle.read().strip()
            if text == "max":
                continue
            limit = int(text)
            with open(usage_file) as handle:
                usage = int(handle.read().strip())
        except (OSError, ValueError):
            continue
        if limit < 1 << 60:
            room = max(0, limit - usage)
            available = room if available is None else min(available, room)
    return available


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_fits_in_memory(n_bytes: int, what: str, hint: str = "") -> None:
    """MemoryError naming ``what`` when ``n_bytes`` exceed the memory available now."""
    available = available_memory()
    if available is not None and n_bytes > available:
        msg = (
            f"{what} needs {format_bytes(n_bytes)}, but only {format_bytes(available)} of "
            "memory is available"
        )
        if hint:
            msg += f"; {hint}"
        raise MemoryError(msg)
