"""Send a job's render tasks to a backend, follow them, cancel them.

A backend is small (as Parsl's providers are) and fills three seams: a ``Stager`` puts the
job's staged scene where its tasks read it, a ``Dispatcher`` runs and follows the tasks,
and a ``Collector`` brings their results into the job's local folder. The local backend
is the embedded default; the Globus backend sends the same tasks to a centre's Compute
endpoint. What is the same for both (which tasks may start, retries, applying the
worker's records, marking a cancel) is in ``policy.py``; what every backend sends (the
task file) in ``tasks.py``. A preset's ``backend`` names its backend in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..settings import Settings
from ..store import JobRecord, Store
from .tasks import Unanswered, task_description

if TYPE_CHECKING:
    from ..pack import Manifest
    from ..presets import Preset
    from ..service import Reporter

__all__ = ["BACKENDS", "Backend", "Unanswered", "backend_for", "task_description"]


class Stager(Protocol):
    def stage(self, job: JobRecord, manifest: Manifest, reporter: Reporter | None = None
              ) -> None:
        """Put the job's staged scene (kept in this machine's objects) where its tasks
        read it."""
        ...


class Dispatcher(Protocol):
    name: str
    poll_seconds: float  # how often `--wait` may ask for news

    def task_slots(self) -> int:
        """How many tasks can run at once: the plan makes no more tasks than this."""
        ...

    def start(self, job: JobRecord) -> None:
        """Begin running the job's startable tasks (policy.startable); returns without
        waiting for them."""
        ...

    def refresh(self, job: JobRecord) -> str | None:
        """Update the store from the backend; return a warning for the user, if any
        (an ``Unanswered`` one when the service did not answer)."""
        ...

    def cancel(self, job: JobRecord) -> None:
        """Deliver the job's cancel (policy.mark_canceled made it): nothing of it renders
        afterwards."""
        ...


class Collector(Protocol):
    def collect(self, job: JobRecord, reporter: Reporter | None = None) -> None:
        """Bring the job's out/, log/ and progress records into its local folder."""
        ...


class Backend(Stager, Dispatcher, Collector, Protocol):
    """All three seams, as one preset's backend fills them."""


def _local(store: Store, settings: Settings, preset: Preset) -> Backend:
    from .local import LocalBackend

    return LocalBackend(store, settings, preset)


def _globus(store: Store, settings: Settings, preset: Preset) -> Backend:
    from ..presets import ClusterPreset
    from .globus import GlobusBackend  # imported when first used: it brings the Globus SDKs

    assert isinstance(preset, ClusterPreset)  # the only presets that name this backend
    return GlobusBackend(store, settings, preset)


#: Each backend by the name a preset gives it (``Preset.backend``).
BACKENDS: dict[str, Callable[[Store, Settings, Preset], Backend]] = {
    "local": _local,
    "globus": _globus,
}


def backend_for(preset_name: str, store: Store, settings: Settings) -> Backend:
    from ..presets import get_preset

    preset = get_preset(preset_name, settings.home)
    return BACKENDS[preset.backend](store, settings, preset)
