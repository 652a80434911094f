"""The task rules every backend follows, written once.

Backends differ in how they run a task and move its files; what happens around a task is
the same everywhere: which queued tasks may start (the scout rule), how an attempt that
ended is settled (the retry rule), how the worker's records of frames are applied, and how
a cancel is marked before a backend delivers it. The store only keeps the records.
"""

from __future__ import annotations

from ..records import FrameRecord
from ..sizing import resize_after_scout
from ..states import TaskState
from ..store import JobRecord, Store, TaskRecord
from ..worker import job_layout

#: Attempts that end in these are tried again while the task has tries left.
RETRIED = (TaskState.FAILED, TaskState.TIMEOUT)


def startable(tasks: list[TaskRecord]) -> list[TaskRecord]:
    """The queued ones of a backend's ``tasks`` that may start now, in order: while the
    scout task has not finished, only the scout (the rest waits for its frames)."""
    scout = next((t for t in tasks if t.scout), None)
    if scout is not None and scout.state is not TaskState.FINISHED:
        tasks = [scout]
    return [t for t in tasks if t.state is TaskState.QUEUED]


def settle_attempt(store: Store, job_id: str, index: int, state: TaskState,
                   reason: str = "") -> bool:
    """End one attempt of a task: queue it again while tries remain, else end it.

    A scout task that ends without finishing cancels the queued tasks of its preset,
    so the rest of the job is not rendered; one that finishes sizes the tasks that waited
    for it by its frames' times, where the job asks for --task-minutes (sizing.py). True
    when the task was queued again.
    """
    task = next(t for t in store.tasks(job_id) if t.index == index)
    if state in RETRIED and task.attempts < task.max_attempts:
        store.end_task(job_id, index, TaskState.QUEUED,
                       f"attempt {task.attempts} {state.lower()}: {reason}")
        return True
    store.end_task(job_id, index, state, reason)
    if task.scout and state is TaskState.FINISHED:  # its frames' times size the rest
        ended = next(t for t in store.tasks(job_id) if t.index == index)
        resize_after_scout(store, store.job(job_id), ended)
    if task.scout and state is not TaskState.FINISHED:
        for other in store.tasks(job_id, preset=task.preset):
            if other.state is TaskState.QUEUED:
                store.end_task(job_id, other.index, TaskState.CANCELED,
                               "not rendered: the scout frames failed")
    return False


def apply_frame_record(store: Store, job_id: str, task_index: int, record: FrameRecord) -> None:
    """Record what task ``task_index``'s worker says of one of its frames (the record is
    checked already: this task's own frame and file, records.parse_line)."""
    store.record_frame(job_id, record.frame, task_index, done=record.state == "done",
                       file=record.file, seconds=record.seconds, reason=record.reason or None)


def mark_canceled(store: Store, job: JobRecord) -> None:
    """The cancel every backend then delivers: the job's marker in its local folder (the
    file a centre gets by Transfer) and its queued and running tasks CANCELED."""
    marker = job.folder / job_layout.CANCEL
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    store.mark_canceled(job.id)
