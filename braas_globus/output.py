"""What the CLI prints: data on stdout (JSON with --json), messages and progress on stderr.

Progress bars are drawn only for a person at a terminal; scripts get clean JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(soft_wrap=True, highlight=False)
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)

    def data(self, payload: Any, human: str | None = None) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
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

    def reporter(self, title: str) -> "ProgressReporter":
        return ProgressReporter(self.err, title, enabled=self.err.is_terminal and not self.as_json)


class ProgressReporter:
    """A service Reporter drawn as a rich progress bar (silent when not at a terminal)."""

    def __init__(self, console: Console, title: str, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
        self.task = self.bar.add_task(title, total=None)

    def __enter__(self) -> "ProgressReporter":
        if self.enabled:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def step(self, text: str) -> None:
        self.bar.update(self.task, description=text, completed=0, total=None)

    def progress(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)
