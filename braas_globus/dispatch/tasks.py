"""What every backend sends and reports: the task file of one attempt, and the warning
for a service that did not answer. (Its own module, so that backends import it without
importing the dispatch package that picks them.)"""

from __future__ import annotations

from ..plan import scout_frames
from ..spec import render_settings
from ..store import JobRecord, TaskRecord
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
        render=render_settings(spec),
    )
    if job.split:  # the task's frames are parts of this still
        description["split"] = {"frame": job.still_frame, "parts": job.split}
    description.update(backend)  # type: ignore[typeddict-item]
    return description
