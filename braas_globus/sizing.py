"""Tasks sized by time (``--task-minutes``): what a job's tasks were sized from, and the
resize once its scout task has rendered.

A job with ``task_minutes`` is split into tasks of about that many minutes from a
measured time a frame (plan.plan_for_job):

- with ``--scout``, the scout task's frames: the tasks that wait for the scout are planned
  again when it finishes (``resize_after_scout``, from policy.settle_attempt);
- without, a probe job's two frames (probe.probe), rendered before the job is
  configured.

Without a measurement (a scout whose frames were rendered before, so untimed) the plan
stays the ``--max-jobs`` one. What the plan was sized from is ``job/sizing.json``
(job_layout.SIZING); `info` shows it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .plan import frames_per_task, plan_by_time
from .states import TaskState
from .store import JobRecord, Store, TaskRecord
from .worker import job_layout
from .worker.frames import parse_frames

MAX_SIZING_BYTES = 4096  # job/sizing.json is read back at most this long


@dataclass(frozen=True)
class Sizing:
    task_minutes: int
    seconds_per_frame: float | None  # None: not measured; the --max-jobs plan stands
    start_seconds: float = 0.0  # a task's time once: Blender, loading the scene
    frames_per_task: int | None = None
    measured_by: str = ""  # "probe job ID on PRESET" | "the scout task N"
    note: str = ""  # why there is no measurement

    @classmethod
    def measured(cls, task_minutes: int, walltime_minutes: int, seconds_per_frame: float,
                 start_seconds: float, measured_by: str) -> Sizing:
        return cls(task_minutes, round(seconds_per_frame, 3), round(start_seconds, 3),
                   frames_per_task(seconds_per_frame, task_minutes, walltime_minutes,
                                   start_seconds), measured_by)


def write_sizing(folder: Path, sizing: Sizing) -> None:
    (folder / job_layout.SIZING).write_text(json.dumps(asdict(sizing), indent=1))


def read_sizing(folder: Path) -> dict[str, Any] | None:
    """job/sizing.json as written, or None where it is absent or not what was written."""
    try:
        with (folder / job_layout.SIZING).open("rb") as file:
            data = json.loads(file.read(MAX_SIZING_BYTES))
    except (OSError, ValueError):
        return None
    kinds: dict[str, type | tuple[type, ...]] = {
        "task_minutes": int, "seconds_per_frame": (float, int, type(None)),
        "start_seconds": (float, int), "frames_per_task": (int, type(None)),
        "measured_by": str, "note": str}
    if not isinstance(data, dict) or set(data) != set(kinds) or \
            not all(isinstance(data[key], kind) for key, kind in kinds.items()):
        return None
    return data


def scout_timing(store: Store, scout: TaskRecord) -> tuple[float, float] | None:
    """(seconds a frame, a task's seconds once) from the scout task's frames, or None where
    they were not timed. Its first frame syncs the scene (dearer): the others are the
    steady time; the rest of the task's time is what every task spends once."""
    frames = parse_frames(scout.frames)
    timed = {r["frame"]: float(r["seconds"]) for r in store.frames(scout.job_id)
             if r["task_idx"] == scout.index and r["state"] == "DONE"
             and r["seconds"] is not None and r["frame"] in frames}
    seconds = [timed[f] for f in frames if f in timed]  # the order the scout rendered them
    if not seconds:
        return None
    steady = seconds[1:] or seconds  # one frame only: its time, sync and all (shorter tasks)
    per_frame = sum(steady) / len(steady)
    spent = (scout.ended or 0.0) - (scout.started or 0.0)
    return per_frame, max(spent - len(seconds) * per_frame, 0.0)


def resize_after_scout(store: Store, job: JobRecord, scout: TaskRecord) -> None:
    """Plan the tasks that waited for ``scout`` (finished) again, by the time its frames
    took, where the job asks for --task-minutes."""
    minutes = job.spec.get("task_minutes")
    if not minutes:
        return
    waiting = [t for t in store.tasks(job.id, preset=scout.preset)
               if t.state is TaskState.QUEUED and t.attempts == 0 and not t.scout]
    if not waiting:  # one task: the scout rendered every frame
        return
    timing = scout_timing(store, scout)
    if timing is None:
        write_sizing(job.folder, Sizing(minutes, None, note="the scout frames were rendered "
                                        "before (not timed): split by --max-jobs"))
        return
    frames = sorted(f for t in waiting for f in parse_frames(t.frames))
    sizing = Sizing.measured(minutes, job.spec["walltime_minutes"], *timing,
                             measured_by=f"the scout task {scout.index}")
    planned = plan_by_time(frames, timing[0], minutes, job.spec["walltime_minutes"],
                           timing[1])
    if store.replace_waiting_tasks(job.id, [t.index for t in waiting], planned, scout.preset,
                                   waiting[0].max_attempts) is not None:
        write_sizing(job.folder, sizing)
