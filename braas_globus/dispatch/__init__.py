"""Send a job's render tasks to a backend, follow them, cancel them.

A backend is small (as Parsl's providers are): how many tasks it runs at once
(which shapes the plan), ``stage`` the scene where its workers read it, ``start`` the
job's queued tasks, ``refresh`` the store from what it knows, ``cancel``, ``collect``. The local backend is the embedded default; the
Globus Compute backend sends the same tasks to a centre's endpoint.
"""

from __future__ import annotations

from typing import Protocol

from ..plan import scout_frames
from ..settings import Settings
from ..store import JobRecord, Store, TaskRecord
from ..worker.frames import format_frames, parse_frames
from ..worker.job_layout import TaskFile


class Unanswered(str):
    """A refresh warning that a service did not answer (after the SDK's own retries): the
    state shown is the last one known, and asking again later is all there is to do."""


def task_description(job: JobRecord, task: TaskRecord, attempt: int,
                     **backend: object) -> TaskFile:
    """What the worker entry point reads for one attempt: the task file (its keys:
    ``job_layout.TaskFile``).

    Every backend sends this; ``backend`` adds what only it knows (Blender, device,
    threads, where the objects are: TaskFile's last keys). A scout task renders its scout
    frames first.
    """
    spec = job.spec
    description = TaskFile(
        job_id=job.id, task=task.index, attempt=attempt,
        scene=job.entry, frames=task.frames,
        first_frames=format_frames(scout_frames(parse_frames(task.frames)))
        if task.scout else "",
        allow_scripts=spec["allow_scripts"],
        allow_missing=spec["allow_missing"],
        allow_older_blender=spec.get("allow_older_blender", False),
        walltime_seconds=spec["walltime_minutes"] * 60,
    )
    description.update(backend)  # type: ignore[typeddict-item]
    return description


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
