"""How far along a phase is: the speed and the time left, from what was seen so far, and the
words for them. One source for the CLI's bars and lines, ``info`` and the add-on's Status.

The speed is measured, never assumed: done units over the time they took since the first
look (so frames rendered before a `resume` or before `--wait` began do not count as fast
ones), and the time left is what remains at that speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import JobRecord

#: How each unit is counted and shown.
FRAMES = "frames"
BYTES = "bytes"


@dataclass(frozen=True)
class Pace:
    done: int
    total: int
    seconds: float  # since the first look
    gained: int  # units done in those seconds

    @property
    def per_minute(self) -> float | None:
        """Units a minute, once some were done in a measurable time."""
        if self.gained <= 0 or self.seconds <= 0:
            return None
        return self.gained / self.seconds * 60

    @property
    def seconds_left(self) -> float | None:
        rate = self.per_minute
        if rate is None or self.total <= 0:
            return None
        return max(self.total - self.done, 0) / rate * 60


class PaceMeter:
    """Feed it (done, total) as they come; it says the pace since the first one."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def pace(self, done: int, total: int, now: float) -> Pace:
        if self.first is None or done < self.first[1]:  # a new phase counts from its start
            self.first = (now, done)
        since, done_then = self.first
        return Pace(done, total, now - since, done - done_then)


def amount(done: int, total: int, unit: str) -> str:
    """``3/12 frames``, or ``12.5/80.0 MB`` for bytes."""
    if unit == BYTES:
        return f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
    return f"{done}/{total} {unit}"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``: as precise as a person needs."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def speed_and_left(pace: Pace, unit: str) -> str:
    """``4.2 frames/min, about 3 min left``; "" until a speed is known."""
    rate = pace.per_minute
    if rate is None:
        return ""
    speed = f"{rate / 60 / 1e6:.1f} MB/s" if unit == BYTES else f"{rate:.1f} {unit}/min"
    left = pace.seconds_left
    return speed if left is None or pace.done >= pace.total else \
        f"{speed}, about {duration(left)} left"


def job_pace(job: JobRecord, done: int, now: float | None = None) -> dict[str, Any]:
    """How the job goes since its first task started: elapsed seconds, frames a minute and
    the seconds left at that speed (None until they are known; no time left once ended)."""
    if job.started is None:
        return {"elapsed_seconds": None, "frames_per_minute": None, "seconds_left": None}
    end = job.ended if job.ended is not None else time.time() if now is None else now
    pace = Pace(done, job.frame_count, max(end - job.started, 0.0), done)
    rate, left = pace.per_minute, pace.seconds_left
    return {"elapsed_seconds": round(pace.seconds, 1),
            "frames_per_minute": None if rate is None else round(rate, 3),
            "seconds_left": None if left is None or job.state.is_final else round(left, 1)}
