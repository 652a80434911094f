"""The local runner: runs one job's tasks on this machine, then exits.

    python -m braas_globus.dispatch.local_runner JOB_ID

Each task is one ``render_task.py`` process (one Blender for the task's frames).
Records from the worker update the store as they arrive. A task that fails or
runs out of walltime is tried again, up to the job's retries; the worker skips
the frames already done, so a retry renders only what is missing. A scout task
runs alone first; if it fails for good, the rest of the job is not rendered.

However many jobs run, this machine renders at most ``local_workers`` tasks at once: a
task starts only once it holds one of the machine's slots (``MachineSlots``).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from pathlib import Path
from typing import IO, TypedDict

import psutil

from .. import merge
from ..disk import disk_full_error, is_disk_full_error
from ..errors import BraasError
from ..records import EndRecord, FrameRecord, JobScope, RecordError, bounded_lines, parse_line
from ..settings import load_settings
from ..states import TaskState
from ..store import JobRecord, Store, TaskRecord
from ..worker import job_layout, render_task
from ..worker.frames import parse_frames
from . import policy
from .tasks import task_description

RENDER_TASK = Path(render_task.__file__).resolve()


class WorkerEnd(TypedDict):
    """How an attempt ended: the worker's closing record, or what the runner knows."""

    state: str  # a TaskState value
    reason: str


def task_file(job: JobRecord, task: TaskRecord, attempt: int, threads: int) -> Path:
    """Write the task description the worker entry point reads."""
    path = job_layout.task_file(job.folder, task.index)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(task_description(job, task, attempt,
                                                device=job.spec["device"] or "CPU",
                                                threads=threads, blender=job.blender),
                               indent=1))
    return path


class MachineSlots:
    """The machine's render slots, shared by every job's runner: slot K is a lock on
    ``BRAAS_HOME/slots/slot-K.lock``. The worker inherits the lock, so a slot is free
    again when the worker ends, or the kernel frees it when the holders die."""

    def __init__(self, folder: Path, count: int, poll_seconds: float = 0.25) -> None:
        self.folder = folder
        self.count = count
        self.poll_seconds = poll_seconds

    def take(self, give_up: Callable[[], bool]) -> IO[str] | None:
        """An open, locked slot file; None once ``give_up()`` says so (a cancel)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            for number in range(self.count):
                slot = (self.folder / f"slot-{number}.lock").open("a")
                try:
                    fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return slot
                except BlockingIOError:
                    slot.close()
            if give_up():
                return None
            time.sleep(self.poll_seconds)


def run_attempt(store: Store, job: JobRecord, task: TaskRecord, threads: int,
                slots: MachineSlots) -> WorkerEnd:
    """Run one attempt of ``task`` once a slot is free; return the worker's closing record."""
    slot = slots.take(give_up=lambda: store.job(job.id).canceled)
    if slot is None:  # the task stays as the cancel left it
        return {"state": "CANCELED", "reason": "canceled before it started"}
    with slot:
        return _run_in_slot(store, job, task, threads, slot)


def _run_in_slot(store: Store, job: JobRecord, task: TaskRecord, threads: int,
                 slot: IO[str]) -> WorkerEnd:
    attempt = store.start_task(job.id, task.index)
    path = task_file(job, task, attempt, threads)
    process = subprocess.Popen([sys.executable, str(RENDER_TASK), str(path)],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                               pass_fds=(slot.fileno(),))
    end: WorkerEnd = {"state": "FAILED",
                      "reason": "the worker stopped without a closing record"}
    scope = JobScope(job.folder, {task.index: frozenset(parse_frames(task.frames))},
                     parts=job.split is not None)
    assert process.stdout is not None
    for line in bounded_lines(process.stdout):
        try:  # the same checks as a centre's records: this task's own frames and files
            record = parse_line(line, scope, task.index)
        except RecordError as err:
            print(f"task {task.index}: ignored a worker record: {err}", flush=True)  # runner.log
            continue
        if isinstance(record, FrameRecord):
            policy.apply_frame_record(store, job.id, task.index, record)
        elif isinstance(record, EndRecord):
            end = {"state": record.state, "reason": record.reason}
    process.wait()
    return end


class Runner:
    def __init__(self, store: Store, job_id: str, slots: int,
                 machine_slots: MachineSlots, preset: str = "local") -> None:
        self.store = store
        self.job_id = job_id
        self.preset = preset  # the tasks this runner runs: the job's local preset's
        self.slots = slots
        self.machine_slots = machine_slots
        cores = os.cpu_count() or 1
        self.threads = max(1, cores // slots) if slots > 1 else 0  # 0: Blender uses every core

    def job(self) -> JobRecord:
        return self.store.job(self.job_id)

    def startable(self, running: list[TaskRecord]) -> list[TaskRecord]:
        """The job's local tasks that may start now and are not running already."""
        started = {t.index for t in running}
        return [t for t in policy.startable(self.store.tasks(self.job_id, preset=self.preset))
                if t.index not in started]

    def finish(self, task: TaskRecord, end: WorkerEnd) -> None:
        policy.settle_attempt(self.store, self.job_id, task.index, TaskState(end["state"]),
                              end["reason"])

    def run(self) -> None:
        running: dict[Future[WorkerEnd], TaskRecord] = {}
        with ThreadPoolExecutor(self.slots) as pool:
            try:
                while True:
                    job = self.job()
                    if job.canceled:
                        break  # the cancel marker stops the running workers
                    free = self.slots - len(running)
                    for task in self.startable(list(running.values()))[:max(free, 0)]:
                        running[pool.submit(run_attempt, self.store, job, task,
                                            self.threads, self.machine_slots)] = task
                    if not running:
                        break
                    done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        self.finish(running.pop(future), future.result())
            except BaseException:
                # The store or the disk failed (a full disk): nothing could record what the
                # other tasks render, so they stop now (their finished frames stay done).
                stop_workers()
                raise


def stop_workers(grace: float = 5.0) -> None:
    """TERM this runner's workers (each stops its Blender first), KILL what is left."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        with suppress(psutil.Error):
            child.kill()


def merge_if_ready(store: Store, job_id: str) -> None:
    """A still split by samples whose parts are all in: merge them (merge.py) unless that
    was done, or failed (``resume`` clears the failure). Parts from a centre come with a
    download: the service merges those (Service.refresh)."""
    job = store.job(job_id)
    if job.backend != "local" or not merge.ready(job, store.tasks(job_id)):
        return
    assert job.blender is not None  # merge.ready
    say(f"merges the {job.split} parts of the still")
    record = merge.merge_once(job, job.blender)
    if record is None:
        return  # another process merged them
    say(f"merge {record['state'].lower()}"
        + (f": {record['reason']}" if record.get("reason") else
           f" in {record.get('seconds')} s: {record.get('file')}"))


def say(text: str) -> None:
    """A line for runner.log; on a full disk even that may not be written, and that is no
    reason to stop."""
    with suppress(OSError):
        print(f"{time.strftime('%F %T')} runner {os.getpid()} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the job; a full disk or an unusable store is one line in runner.log, exit 1:
    the frames recorded stay done, and `braas-globus resume` continues the job."""
    job_id = (argv or sys.argv[1:])[0]
    try:
        return run_job(job_id)
    except (BraasError, OSError) as err:
        if isinstance(err, OSError) and not is_disk_full_error(err):
            raise
        message = str(disk_full_error(err)) if isinstance(err, OSError) else str(err)
        say(f"stops: {message}; `braas-globus resume {job_id}` continues the job")
        return 1


def run_job(job_id: str) -> int:
    settings = load_settings()
    store = Store(settings.store_path)
    job = store.job(job_id)
    lock = (job.folder / job_layout.RUNNER_LOCK).open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"stops: another runner already runs job {job_id}")
        return 0
    store.set_runner(job_id, os.getpid())
    say(f"starts job {job_id}")
    try:
        Runner(store, job_id, settings.local_workers,
               MachineSlots(settings.home / "slots", settings.local_workers)).run()
        merge_if_ready(store, job_id)
    finally:
        with suppress(BraasError):  # a full disk refuses this too: the pid is checked anyway
            if not store.job(job_id).canceled:
                store.set_runner(job_id, None)
    say(f"ends: {store.job(job_id).state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
