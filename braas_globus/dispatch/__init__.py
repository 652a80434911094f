"""Send a job's render tasks to a backend, follow them, cancel them.

A backend is small (as Parsl's providers are): how many tasks it runs at once
(which shapes the plan), ``start`` the job's queued tasks, ``refresh`` the store
from what it knows, ``cancel``. The local backend is the embedded default; the
Globus Compute backend sends the same tasks to a centre's endpoint.
"""

from __future__ import annotations

from typing import Protocol

from ..settings import Settings
from ..store import JobRecord, Store


class Backend(Protocol):
    name: str

    def task_slots(self) -> int:
        """How many tasks can run at once: the plan makes no more tasks than this."""
        ...

    def start(self, job: JobRecord) -> None:
        """Begin running the job's QUEUED tasks; returns without waiting for them."""
        ...

    def refresh(self, job: JobRecord) -> str | None:
        """Update the store from the backend; return a warning for the user, if any."""
        ...

    def cancel(self, job: JobRecord) -> None:
        """Stop every task of the job; nothing of it renders afterwards."""
        ...


def backend_for(name: str, store: Store, settings: Settings) -> Backend:
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(store, settings)
    raise ValueError(f"no backend named {name!r}")
