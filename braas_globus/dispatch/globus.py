"""Render at an HPC centre: tasks go to the centre's Globus Compute endpoint.

``start`` sends each queued task with globus-compute-sdk's Executor (the function is
``compute_task.render_on_worker``), with a ``user_endpoint_config`` built from the
preset and the job and checked against the centre's own schema first. Task ids are
stored as soon as the service returns them, so ``refresh`` in any later process reads
states and results from the service (``Client.get_batch_result``). Results are the
worker's small closing record; frames come back by Transfer (``collect``).

Cancel: the service cannot stop a task it has accepted, so ``cancel`` puts the job's
cancel marker in the job folder at the centre by Transfer. A running task stops Blender
within a second of the marker arriving, and a task that starts later exits at once:
in all, about the time a small transfer takes (typically 5-30 s).
"""

from __future__ import annotations

import functools
import time

from ..catalog import load_catalog
from ..collect import progress_records
from ..endpoint_config import user_config_for
from ..errors import RunError
from ..presets import ClusterPreset
from ..settings import Settings
from ..states import TaskState
from ..store import JobRecord, Store, TaskRecord
from ..transfer import JobTransfers
from ..worker.frames import parse_frames
from . import task_description
from .compute_task import render_on_worker

_TASK_ID_WAIT_S = 60


def _globus_errors(method):
    """An expired login says `braas-globus login`; any other API error is one clear line."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        import globus_sdk

        from ..auth import translate_auth_errors

        try:
            with translate_auth_errors():
                return method(self, *args, **kwargs)
        except globus_sdk.GlobusAPIError as err:
            raise RunError(f"{self.preset.name}: Globus answered {err.http_status} "
                           f"{err.code}: {err.message}") from None

    return wrapper


class GlobusBackend:
    name = "globus"
    poll_seconds = 5.0  # the Compute service allows about 20 requests per 10 s

    def __init__(self, store: Store, settings: Settings, preset: ClusterPreset,
                 transfer_client=None, compute_client=None) -> None:
        self.store = store
        self.settings = settings
        self.preset = preset
        self._transfer_client = transfer_client
        self._compute_client = compute_client

    @staticmethod
    def make_transfer_client():
        from ..auth import transfer_client

        return transfer_client()

    @staticmethod
    def make_compute_client():
        from ..auth import compute_client

        return compute_client()

    # Clients are made on first use, so listing jobs never asks for a login.
    @property
    def transfer(self) -> JobTransfers:
        if self._transfer_client is None:
            self._transfer_client = self.make_transfer_client()
        return JobTransfers(self._transfer_client, self.preset, self.settings.home)

    @property
    def compute(self):
        if self._compute_client is None:
            self._compute_client = self.make_compute_client()
        return self._compute_client

    def task_slots(self) -> int:
        partition = load_catalog().get(self.preset.cluster).get(self.preset.partition)
        per_node = partition.devices_per_node or 1  # one worker per GPU, else per node
        return self.preset.max_blocks * self.preset.nodes_per_block * per_node

    def user_endpoint_config(self, job: JobRecord) -> dict:
        return user_config_for(self.preset, job.spec)  # the centre's own schema

    def remote_root(self, job: JobRecord) -> str:
        return self.transfer.remote_job(job.id)

    def task_payload(self, job: JobRecord, task: TaskRecord, attempt: int) -> dict:
        return task_description(job, task, attempt,
                                device=job.spec["device"] or self.preset.default_device,
                                threads=0, objects_dir=self.transfer.remote_path("objects"),
                                runtime=self.preset.runtime)  # the centre names its Blender

    @_globus_errors
    def stage(self, job: JobRecord, manifest, reporter=None) -> None:
        self.transfer.send_stage(job.id, manifest, self.settings.objects_dir, job.folder,
                                 reporter)

    @_globus_errors
    def start(self, job: JobRecord) -> None:
        mine = self.store.tasks(job.id, preset=self.preset.name)
        queued = [t for t in mine if t.state is TaskState.QUEUED]
        scout = next((t for t in mine if t.scout), None)
        if scout is not None and scout.state is not TaskState.FINISHED:
            queued = [t for t in queued if t.scout]  # the rest waits for the scout frames
        if not queued:
            return
        from globus_compute_sdk import Executor
        from globus_compute_sdk.serialize import ComputeSerializer, DillCodeSource

        config = self.user_endpoint_config(job)
        # By source: a centre's worker has no braas_globus to import the function from.
        serializer = ComputeSerializer(strategy_code=DillCodeSource())
        executor = Executor(endpoint_id=str(self.preset.endpoint_id), client=self.compute,
                            user_endpoint_config=config, label=f"braas {job.id}",
                            serializer=serializer)
        try:
            sent = []
            for task in queued:
                attempt = task.attempts + 1
                future = executor.submit(render_on_worker,
                                         self.task_payload(job, task, attempt),
                                         self.remote_root(job))
                sent.append((task, future))
            for task, future in sent:
                self.store.start_task(job.id, task.index, backend_id=_task_id(future))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    @_globus_errors
    def refresh(self, job: JobRecord) -> str | None:
        sent = {t.backend_id: t for t in self.store.tasks(job.id, preset=self.preset.name)
                if t.state is TaskState.RUNNING and t.backend_id}
        if not sent:
            return None
        statuses = self.compute.get_batch_result(list(sent))
        ended = False
        for task_id, status in statuses.items():
            task = sent[task_id]
            if status.get("pending", True):
                continue
            record = status.get("result") if status.get("status") == "success" else None
            self._finish(job, task, record, status)
            ended = True
        if ended:  # retries, or the tasks that waited for the scout frames
            self.start(self.store.job(job.id))
        return None

    def _finish(self, job: JobRecord, task: TaskRecord, record: dict | None,
                status: dict) -> None:
        """Record a finished task: queue it again for another try, or end it."""
        if record is None:
            state, missing = TaskState.FAILED, task.frames
            reason = str(status.get("exception") or status.get("reason") or "the task failed")
        else:
            state, missing = TaskState(record["state"]), record.get("missing", "")
            reason = record.get("reason", "")
        missing_frames = set(parse_frames(missing)) if missing else set()
        for frame in parse_frames(task.frames):
            done = frame not in missing_frames
            self.store.record_frame(job.id, frame, task.index, done=done,
                                    reason=None if done else reason)
        self.store.settle_attempt(job.id, task.index, state, reason)

    @_globus_errors
    def cancel(self, job: JobRecord) -> None:
        self.store.mark_canceled(job.id)
        self.transfer.send_cancel_marker(job.id, job.folder)

    @_globus_errors
    def collect(self, job: JobRecord, reporter=None) -> None:
        """Download the results; the worker's records then name each frame's file."""
        self.transfer.fetch_results(job.id, job.folder, reporter)
        for record in progress_records(job.folder):
            if record.get("event") == "frame" and record.get("state") == "done":
                self.store.record_frame(job.id, record["frame"], record["task"], done=True,
                                        file=record.get("file"), seconds=record.get("seconds"))


def _task_id(future) -> str:
    """The service's id for a submitted task, as soon as the Executor has it."""
    deadline = time.monotonic() + _TASK_ID_WAIT_S
    while future.task_id is None:
        if future.done() and future.exception() is not None:
            raise RunError(f"the Compute service refused the task: {future.exception()}")
        if time.monotonic() > deadline:
            raise RunError("the Compute service did not acknowledge the tasks in "
                           f"{_TASK_ID_WAIT_S} s; `braas-globus resume` sends them again")
        time.sleep(0.05)
    return str(future.task_id)

