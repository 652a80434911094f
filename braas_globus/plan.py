"""Frames become render tasks (chunks).

One Blender process renders a whole task with persistent data, so the cost of a
job grows with its tasks, not its frames. Chunks are contiguous: neighbouring
frames share most of their scene data, which is what persistent data reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .worker.frames import format_frames


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
