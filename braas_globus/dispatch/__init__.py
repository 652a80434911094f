"""Send a job's render tasks to a backend, follow them, cancel them.

A backend is small (as Parsl's providers are): how many tasks it runs at once
(which shapes the plan), ``stage`` the scene where its workers read it, ``start`` the
job's queued tasks, ``refresh`` the store from what it knows, ``cancel``, ``collect``. The local
backend is the embedded default; the Globus Compute backend sends the same tasks to a
centre's endpoint. What every backend sends (the task file) is in ``tasks.py``.
"""

from __future__ import annotations

from typing import Protocol

from ..settings import Settings
from ..store import JobRecord, Store
from .tasks import Unanswered, task_description

__all__ = ["Backend", "Unanswered", "backend_for", "task_description"]


class Backend(Protocol):
    name: str
    poll_seconds: float  # how often `--wait` may ask for news

    def task_slots(self) -> int:
        """How many tasks can run at once: the plan makes no more tasks than this."""
        ...

    def start(self, job: JobRecord) -> None:
        """Begin running the job's QUEUED tasks; returns without waiting for them."""
        ...

    def refresh(self, job: JobRecord) -> str | None:
        """Update the store from the backend; return a warning for the user, if any
        (an ``Unanswered`` one when the service did not answer)."""
        ...

    def stage(self, job: JobRecord, manifest, reporter=None) -> None:
        """Put the job's staged scene where its tasks read it (the local objects exist)."""
        ...

    def cancel(self, job: JobRecord) -> None:
        """Stop every task of the job; nothing of it renders afterwards."""
        ...

    def collect(self, job: JobRecord, reporter=None) -> None:
        """Bring the job's out/, log/ and progress records into its local folder."""
        ...


def backend_for(preset_name: str, store: Store, settings: Settings) -> Backend:
    from ..presets import get_preset

    preset = get_preset(preset_name, settings.home)
    if preset.backend == "local":
        from .local import LocalBackend

        return LocalBackend(store, settings)
    from .globus import GlobusBackend

    return GlobusBackend(store, settings, preset)
