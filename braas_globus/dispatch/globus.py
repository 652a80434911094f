"""Render at an HPC centre: tasks go to the centre's Globus Compute endpoint.

``start`` sends the queued tasks as one batch (``Client.batch_run``) of the registered
function ``compute_task.render_on_worker``, with a ``user_endpoint_config`` built from
the preset and the job and checked against the centre's own schema first. The service
answers with the task ids, stored at once, so ``refresh`` in any later process reads
states and results from the service (``Client.get_batch_result``). Results are the
worker's small closing record; frames come back by Transfer (``collect``).

Cancel: the service cannot stop a task it has accepted, so ``cancel`` puts the job's
cancel marker in the job folder at the centre by Transfer. A running task stops Blender
within a second of the marker arriving, and a task that starts later exits at once:
in all, about the time a small transfer takes (typically 5-30 s).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import globus_sdk

from ..auth import login_needed_from
from ..catalog import load_catalog
from ..endpoint_config import user_config_for
from ..errors import RunError
from ..presets import ClusterPreset
from ..records import MALFORMED, FrameRecord, JobScope, read_progress, task_outcome
from ..settings import Settings
from ..states import TaskState
from ..store import JobRecord, Store, TaskRecord
from ..transfer import JobTransfers, service_unavailable
from ..worker import job_layout
from ..worker.frames import parse_frames
from . import policy
from .functions import render_function_id
from .tasks import Unanswered, task_description

if TYPE_CHECKING:
    from globus_compute_sdk import Client as ComputeClient

    from ..pack import Manifest
    from ..service import Reporter

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class RequestPacer:
    """At most ``limit`` requests in any ``window`` seconds from this process: the Compute
    service allows about 20 per 10 s per user, and `list` refreshes every running job."""

    def __init__(self, limit: int = 18, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit, self.window, self.clock, self.sleep = limit, window, clock, sleep
        self.sent: collections.deque[float] = collections.deque()

    def wait(self) -> None:
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.window:
            self.sent.popleft()
        if len(self.sent) >= self.limit:
            self.sleep(self.sent[0] + self.window - now)
            self.sent.popleft()
        self.sent.append(max(now, self.clock()))


#: One pace for every Compute request this process makes (all presets share a login).
COMPUTE_PACE = RequestPacer()


@contextlib.contextmanager
def no_environment_warning() -> Iterator[None]:
    """The SDK warns (in many lines) when the centre's Python or dill differ from this
    one's. The function travels by source and returns a plain dict, so the difference does
    not matter here, and the warning is no news to a user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"\s*Environment differences", UserWarning)
        yield


def _globus_errors(method: Callable[Concatenate[GlobusBackend, P], R]
                   ) -> Callable[Concatenate[GlobusBackend, P], R]:
    """An expired login says `braas-globus login`; any other API error is one clear line."""

    @functools.wraps(method)
    def wrapper(self: GlobusBackend, /, *args: P.args, **kwargs: P.kwargs) -> R:
        from ..auth import translate_auth_errors

        try:
            with translate_auth_errors():
                return method(self, *args, **kwargs)
        except globus_sdk.GlobusAPIError as err:
            raise RunError(f"{self.preset.name}: Globus answered {err.http_status} "
                           f"{err.code}: {err.message}") from None

    return wrapper


class GlobusBackend:
    poll_seconds = 5.0  # the Compute service allows about 20 requests per 10 s

    def __init__(self, store: Store, settings: Settings, preset: ClusterPreset,
                 transfer_client: globus_sdk.TransferClient | None = None,
                 compute_client: ComputeClient | None = None) -> None:
        self.store = store
        self.settings = settings
        self.preset = preset
        self.name = preset.name
        self._transfer_client = transfer_client
        self._compute_client = compute_client

    @staticmethod
    def make_transfer_client() -> globus_sdk.TransferClient:
        from ..auth import transfer_client

        return transfer_client()

    @staticmethod
    def make_compute_client() -> ComputeClient:
        from ..auth import compute_client

        return compute_client()

    # Clients are made on first use, so listing jobs never asks for a login.
    @property
    def transfer(self) -> JobTransfers:
        if self._transfer_client is None:
            self._transfer_client = self.make_transfer_client()
        return JobTransfers(self._transfer_client, self.preset, self.settings.home)

    @property
    def compute(self) -> ComputeClient:
        if self._compute_client is None:
            self._compute_client = self.make_compute_client()
        return self._compute_client

    def task_slots(self) -> int:
        partition = load_catalog().get(self.preset.cluster).get(self.preset.partition)
        per_node = partition.devices_per_node or 1  # one worker per GPU, else per node
        return self.preset.max_blocks * self.preset.nodes_per_block * per_node

    def user_endpoint_config(self, job: JobRecord) -> dict[str, Any]:
        return user_config_for(self.preset, job.spec)  # the centre's own schema

    def worker_root(self, job: JobRecord) -> str:
        """The job's folder as the centre's nodes see it (Transfer names it by the
        collection's path, which may differ: a base path, /~/)."""
        return self.preset.worker_path(job_layout.JOBS, job.id)

    def task_payload(self, job: JobRecord, task: TaskRecord, attempt: int) -> job_layout.TaskFile:
        return task_description(job, task, attempt,
                                device=job.spec["device"] or self.preset.default_device,
                                threads=0, objects_dir=self.preset.worker_path(job_layout.OBJECTS),
                                runtime=self.preset.runtime)  # the centre names its Blender

    @_globus_errors
    def stage(self, job: JobRecord, manifest: Manifest, reporter: Reporter | None = None
              ) -> None:
        self.transfer.send_stage(job.id, manifest, self.settings.objects_dir, job.folder,
                                 reporter)

    @_globus_errors
    def start(self, job: JobRecord) -> None:
        queued = policy.startable(self.store.tasks(job.id, preset=self.preset.name))
        if not queued:
            return
        # One batch, answered with its task ids: no Executor, whose result-watching thread
        # (and exit hook) would keep the CLI alive until the renders end.
        function_id = self.function_id()
        batch = self.compute.create_batch(user_endpoint_config=self.user_endpoint_config(job))
        root = self.worker_root(job)
        for task in queued:
            batch.add(function_id, args=(self.task_payload(job, task, task.attempts + 1), root))
        try:
            COMPUTE_PACE.wait()
            answer = self.compute.batch_run(str(self.preset.endpoint_id), batch)
        except globus_sdk.GlobusAPIError as err:
            if err.http_status == 401 or login_needed_from(err):
                raise  # `braas-globus login` (see _globus_errors)
            what = "did not take" if service_unavailable(err) else "refused"
            raise RunError(f"{self.preset.name}: the Compute service {what} the tasks "
                           f"(function {function_id}): {err.http_status} {err.code}: "
                           f"{err.message}; `braas-globus resume {job.id}` sends them "
                           "again") from None
        task_ids = answer["tasks"][function_id]
        if len(task_ids) != len(queued):
            raise RunError(f"the Compute service accepted {len(task_ids)} of {len(queued)} "
                           "tasks; `braas-globus resume` sends the rest")
        for task, task_id in zip(queued, task_ids):
            self.store.start_task(job.id, task.index, backend_id=str(task_id))

    def function_id(self) -> str:
        """``render_on_worker``'s id at the Compute service: the same id for every job, as
        a centre's ``allowed_functions`` needs (functions.render_function_id)."""
        return render_function_id(self.compute, self.settings.home)

    @_globus_errors
    def refresh(self, job: JobRecord) -> str | None:
        sent = {t.backend_id: t for t in self.store.tasks(job.id, preset=self.preset.name)
                if t.state is TaskState.RUNNING and t.backend_id}
        if not sent:
            return None
        try:
            COMPUTE_PACE.wait()
            with no_environment_warning():
                statuses = self.compute.get_batch_result(list(sent))
        except (globus_sdk.GlobusAPIError, globus_sdk.NetworkError) as err:
            unanswered = self._unanswered(err)
            if unanswered is None:
                raise
            return unanswered
        ended = False
        for task_id, task in sent.items():
            # The SDK leaves out a task whose status it cannot read (it logs why): one that
            # failed at the centre, or whose result does not deserialize.
            status = statuses[task_id] if task_id in statuses else self._unread_status(task_id)
            if status is None or isinstance(status, dict) and status.get("pending", True):
                continue
            self._finish(job, task, status)
            ended = True
        if ended:  # retries, or the tasks that waited for the scout frames
            self.start(self.store.job(job.id))
        return None

    def _unanswered(self, err: Exception) -> Unanswered | None:
        """The warning for a Compute service that does not answer (429 or 5xx after the
        SDK's own retries, or no connection); None for any other error."""
        if isinstance(err, globus_sdk.GlobusAPIError):
            if not service_unavailable(err):
                return None
            why = f"{err.http_status} {err.code}"
        else:
            why = type(err).__name__
        return Unanswered(f"{self.preset.name}: the Compute service does not answer ({why}); "
                          "the state shown is the last one known")

    def _unread_status(self, task_id: str) -> dict[str, Any] | None:
        """The status of a task that get_batch_result left out, asked for alone; None while
        the service has none (asked again at the next refresh)."""
        from globus_compute_sdk.errors import SerializationError, TaskExecutionFailed

        try:
            COMPUTE_PACE.wait()
            with no_environment_warning():
                status: dict[str, Any] = self.compute.get_task(task_id)
                return status
        except TaskExecutionFailed as err:  # the function raised, or the endpoint refused
            lines = [line for line in str(err.remote_data).splitlines() if line.strip()]
            reason = "the task failed at the centre: " + (lines[-1].strip() if lines else "")
        except SerializationError:
            reason = f"{MALFORMED}: it does not deserialize"
        except ValueError:  # not JSON, or the status of another task
            reason = f"{MALFORMED}: not this task's status"
        except globus_sdk.GlobusAPIError:
            return None
        return {"pending": False, "status": "failed", "exception": reason}

    def _finish(self, job: JobRecord, task: TaskRecord, status: object) -> None:
        """Record a finished task: queue it again for another try, or end it. A malformed
        status or result (the centre's word, untrusted) is a failed attempt."""
        frames = parse_frames(task.frames)
        outcome = task_outcome(status, task.index, frozenset(frames))
        for frame in frames:
            done = frame not in outcome.missing
            self.store.record_frame(job.id, frame, task.index, done=done,
                                    reason=None if done else outcome.reason)
        policy.settle_attempt(self.store, job.id, task.index, outcome.state, outcome.reason)

    @_globus_errors
    def cancel(self, job: JobRecord) -> None:
        self.transfer.send_cancel_marker(job.id, job.folder)

    @_globus_errors
    def collect(self, job: JobRecord, reporter: Reporter | None = None) -> None:
        """Download the results; the worker's records then name each frame's file."""
        self.transfer.fetch_results(job.id, job.folder, reporter, parts=job.split is not None)
        mine = {t.index for t in self.store.tasks(job.id, preset=self.preset.name)}
        progress = read_progress(JobScope.of(job, self.store.tasks(job.id)))
        done = {r.frame: r for r in progress.records  # the latest record of each frame
                if isinstance(r, FrameRecord) and r.state == "done"}
        for record in sorted(done.values(), key=lambda r: r.time):  # the last one is last
            if record.task in mine:  # another centre's tasks are its own to record
                policy.apply_frame_record(self.store, job.id, record.task, record)
        if progress.rejected.count:
            logger.warning("%s: %s", self.preset.name, progress.rejected.note())
