"""Frames become render tasks (chunks).

One Blender process renders a whole task with persistent data, so the cost of a
job grows with its tasks, not its frames. Chunks are contiguous: neighbouring
frames share most of their scene data, which is what persistent data reuses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .worker.frames import format_frames
from .worker.task_limits import block_margin

#: The most tasks a job has (spec.max_jobs' bound; a task's number has 4 digits).
MAX_TASKS = 10000


@dataclass(frozen=True)
class PlannedTask:
    index: int
    frames: str  # a normalised frame spec
    frame_count: int
    scout: bool = False


def scout_frames(frames: list[int]) -> list[int]:
    """First, middle and last: where a wrong camera or a missing texture shows first."""
    return sorted({frames[0], frames[len(frames) // 2], frames[-1]})


def plan_for_slots(frames: list[int], max_jobs: int, slots: int,
                   scout: bool = False) -> list[PlannedTask]:
    """The job's tasks where ``slots`` of them run at once: no more than run at once, and
    a scout task of its own only where other tasks can run beside it (with one slot, the
    one task renders the scout frames first: no extra Blender start)."""
    return plan_tasks(frames, min(max_jobs, slots + (1 if scout and slots > 1 else 0)),
                      scout=scout)


def plan_tasks(frames: list[int], max_tasks: int, scout: bool = False) -> list[PlannedTask]:
    """Split sorted unique ``frames`` into at most ``max_tasks`` contiguous tasks.

    With ``scout``, the first, middle and last frames form task 0 (rendered first)
    and count toward ``max_tasks``. With one task (or at most three frames) there is no
    room for a task of its own: the one task is the scout task, and the worker renders
    its scout frames first in the same Blender (``task_description``'s first_frames).
    """
    if not frames:
        raise ValueError("no frames to plan")
    if max_tasks < 1:
        raise ValueError("max_tasks must be at least 1")
    tasks: list[PlannedTask] = []
    rest = frames
    if scout and (len(frames) <= 3 or max_tasks == 1):
        return [PlannedTask(0, format_frames(frames), len(frames), scout=True)]
    if scout:
        scouts = scout_frames(frames)
        tasks.append(PlannedTask(0, format_frames(scouts), len(scouts), scout=True))
        scout_set = set(scouts)
        rest = [f for f in frames if f not in scout_set]
        max_tasks -= 1
    count = min(max_tasks, len(rest))
    size, extra = divmod(len(rest), count)
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        chunk = rest[start:end]
        tasks.append(PlannedTask(len(tasks), format_frames(chunk), len(chunk)))
        start = end
    return tasks


def task_seconds_cap(walltime_minutes: int) -> int:
    """The longest a task may be planned to run: its walltime less the margin the worker
    keeps before a batch job's end (task_limits.block_margin; the centre's own override is
    the centre's, not read here)."""
    walltime = walltime_minutes * 60
    return walltime - block_margin(walltime, environ={})


def frames_per_task(seconds_per_frame: float, task_minutes: int, walltime_minutes: int,
                    start_seconds: float = 0.0) -> int:
    """How many frames make a task of about ``task_minutes``: each frame takes
    ``seconds_per_frame``, and a task spends ``start_seconds`` once (starting Blender,
    loading the scene). Never planned past task_seconds_cap; at least one frame."""
    per_frame = max(seconds_per_frame, 1e-3)  # a measured 0.0 s: as fast as it gets
    about = round((task_minutes * 60 - start_seconds) / per_frame)
    most = math.floor((task_seconds_cap(walltime_minutes) - start_seconds) / per_frame)
    return max(1, min(about, most))


def plan_by_time(frames: list[int], seconds_per_frame: float, task_minutes: int,
                 walltime_minutes: int, start_seconds: float = 0.0, scout: bool = False,
                 ) -> list[PlannedTask]:
    """``frames`` in contiguous tasks of about ``task_minutes`` each (frames_per_task),
    after a scout task of the first, middle and last frames when ``scout``; at most
    MAX_TASKS in all (then each is longer)."""
    per_task = frames_per_task(seconds_per_frame, task_minutes, walltime_minutes,
                               start_seconds)
    scouts = set(scout_frames(frames)) if scout and len(frames) > 3 else set()
    rest = len(frames) - len(scouts)
    count = (1 if scouts else 0) + math.ceil(rest / per_task)
    return plan_tasks(frames, min(max(count, 1), MAX_TASKS), scout=scout)


def plan_for_job(frames: list[int], slots: int, *, max_jobs: int, scout: bool,
                 walltime_minutes: int, task_minutes: int | None = None,
                 seconds_per_frame: float | None = None, start_seconds: float = 0.0,
                 ) -> list[PlannedTask]:
    """The one rule for a job's tasks (submit plans by it, estimate projects by it): tasks
    of about ``task_minutes`` where a time a frame was measured, else split by
    ``max_jobs`` over the ``slots`` that run at once (plan_for_slots)."""
    if task_minutes and seconds_per_frame is not None:
        return plan_by_time(frames, seconds_per_frame, task_minutes, walltime_minutes,
                            start_seconds, scout=scout)
    return plan_for_slots(frames, max_jobs, slots, scout=scout)


def assign_presets(tasks: Sequence[object], slots: dict[str, int]) -> list[str]:
    """Which preset runs each task: in proportion to each preset's slots, scout first.

    Interleaved (weighted round robin), so every centre starts at the front of the
    animation and partial results cover it evenly.
    """
    names = list(slots)
    credit = dict.fromkeys(names, 0.0)
    total = sum(slots.values())
    chosen = []
    for _ in tasks:
        for name in names:
            credit[name] += slots[name] / total
        best = max(names, key=lambda n: credit[n])
        credit[best] -= 1
        chosen.append(best)
    return chosen
