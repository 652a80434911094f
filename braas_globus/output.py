"""What the CLI prints: data on stdout (JSON with --json), messages and progress on stderr.

Progress: a bar for a person at a terminal, timestamped lines off one, JSON lines for a
script that waits (``--json --wait``); ``--json`` alone prints only the result.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .progress import BYTES, FRAMES, Pace, PaceMeter, amount, speed_and_left


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.json_lines = False  # set once progress went out as JSON lines
        self.out = Console(soft_wrap=True, highlight=False)
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)

    def data(self, payload: Any, human: str | None = None) -> None:
        if self.as_json:  # after JSON lines of progress, the result is one line too
            indent = None if self.json_lines else 2
            sys.stdout.write(json.dumps(payload, indent=indent, default=str) + "\n")
        elif human is not None:
            self.out.print(human, markup=False)

    def table(self, table: RenderableType) -> None:
        if not self.as_json:
            self.out.print(table)

    def note(self, text: str) -> None:
        self.err.print(text, markup=False)

    def error(self, text: str) -> None:
        # A user's value may hold a line break: "\n", or "\r", "\x85", "\u2028" ...
        one_line = " ".join(text.splitlines())
        self.err.print(f"error: {one_line}", markup=False)

    def reporter(self, title: str, events: bool = False) -> ProgressReporter:
        """Progress for a phase: a bar for a person at a terminal; where ``events`` (someone
        waits: `--wait`, `demo`), off a terminal a timestamped line per step or change
        (never silence) and with ``--json`` JSON lines on stdout, the result's line last."""
        if self.as_json:
            if events:
                self.json_lines = True
                return JsonLinesReporter(title)
            return ProgressReporter(title)
        if self.err.is_terminal:
            return BarReporter(title, self.err)
        # Off a terminal only what someone waits for: a script's plain `submit` stays quiet.
        return LineReporter(title, self.err) if events else ProgressReporter(title)


class ProgressReporter:
    """A service Reporter that shows nothing (``--json`` without events); the others below
    draw the same numbers (progress.py) their own way."""

    def __init__(self, title: str) -> None:
        self.phase = title
        self.stepped = False
        self.meter = PaceMeter()
        self.clock = time.monotonic  # a test's own clock, where it sets one

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def step(self, text: str) -> None:
        if self.stepped and text == self.phase:
            return  # the same step again (a transfer polled): its pace goes on
        self.phase, self.stepped = text, True
        self.meter = PaceMeter()
        self.show_step(text)

    def progress(self, done: int, total: int, unit: str = FRAMES) -> None:
        self.show(self.meter.pace(done, total, self.clock()), unit)

    def show_step(self, text: str) -> None:
        pass

    def show(self, pace: Pace, unit: str) -> None:
        pass


class BarReporter(ProgressReporter):
    """A rich progress bar on a terminal: the phase, the bar, the amount with its unit, the
    speed and the time left."""

    def __init__(self, title: str, console: Console) -> None:
        super().__init__(title)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.fields[amount]}"), TimeElapsedColumn(),
                            TextColumn("{task.fields[pace]}"), console=console, transient=True)
        self.task = self.bar.add_task(title, total=None, amount="", pace="")

    def __enter__(self) -> BarReporter:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def show_step(self, text: str) -> None:
        self.bar.update(self.task, description=text, completed=0, total=None, amount="",
                        pace="")

    def show(self, pace: Pace, unit: str) -> None:
        self.bar.update(self.task, completed=pace.done, total=pace.total,
                        amount=amount(pace.done, pace.total, unit),
                        pace=speed_and_left(pace, unit))


class LineReporter(ProgressReporter):
    """Off a terminal (a CI log, nohup, a pipe): one timestamped line per step, per change
    (bytes at most every few seconds), and every half minute while nothing changes."""

    QUIET_SECONDS = 30.0  # the longest silence
    BYTES_SECONDS = 5.0  # the shortest gap between two lines about bytes

    def __init__(self, title: str, console: Console) -> None:
        super().__init__(title)
        self.console = console
        self.last: tuple[int, int] | None = None
        self.said_at = 0.0

    def say(self, text: str) -> None:
        self.console.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False,
                           highlight=False, soft_wrap=True)
        self.said_at = self.clock()

    def show_step(self, text: str) -> None:
        self.last = None
        self.say(text)

    def show(self, pace: Pace, unit: str) -> None:
        now = self.clock()
        changed = (pace.done, pace.total) != self.last
        finished = pace.done >= pace.total
        if changed and unit == BYTES and not finished and now - self.said_at < self.BYTES_SECONDS:
            return
        if not changed and now - self.said_at < self.QUIET_SECONDS:
            return
        self.last = (pace.done, pace.total)
        details = speed_and_left(pace, unit)
        self.say(f"{self.phase}: {amount(pace.done, pace.total, unit)}"
                 + (f", {details}" if details else ""))


class JsonLinesReporter(ProgressReporter):
    """``--json --wait``: one JSON object a line on stdout for each step and change."""

    def __init__(self, title: str) -> None:
        super().__init__(title)
        self.last: tuple[int, int] | None = None

    def emit(self, event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"event": event.pop("event"), "time": round(time.time(), 3),
                                     **event}) + "\n")
        sys.stdout.flush()

    def show_step(self, text: str) -> None:
        self.last = None
        self.emit({"event": "step", "phase": text})

    def show(self, pace: Pace, unit: str) -> None:
        if (pace.done, pace.total) == self.last:
            return
        self.last = (pace.done, pace.total)
        rate, left = pace.per_minute, pace.seconds_left
        self.emit({"event": "progress", "phase": self.phase, "done": pace.done,
                   "total": pace.total, "unit": unit,
                   "per_minute": None if rate is None else round(rate, 3),
                   "seconds_left": None if left is None else round(left, 1)})
