"""A probe job: two frames of a job rendered where it would run, timed. ``estimate``
projects a whole job from it; ``submit --task-minutes`` sizes its tasks by it (sizing.py).

A task's first frame costs more than the next ones (Blender syncs the scene once, then
keeps it: persistent data), so the second frame's time is the steady one, and the rest of
the probe task's time is what every task spends once: starting Blender, loading and
syncing the scene. The probe job stays, as any job does. (The service is only a type here:
the service runs a probe, and a probe submits through the service.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RunError
from .spec import JobSpec
from .states import JobState
from .store import JobRecord

if TYPE_CHECKING:
    from .service import Reporter, Service


@dataclass(frozen=True)
class Probe:
    """What a probe job measured: a task's steady time a frame, and its time once."""

    job: JobRecord
    frames: list[int]  # the probe frames
    first_seconds: float  # the task's first frame: it syncs the scene
    frame_seconds: float  # a frame after the first (persistent data)
    start_seconds: float  # Blender, loading and syncing the scene, once a task


def probe(service: Service, spec: JobSpec, frames: list[int],
          reporter: Reporter) -> Probe:
    """Render two of ``frames`` from the middle (neither the often empty first nor the
    last) as a job of their own on ``spec``'s first preset; RunError if they do not render."""
    middle = len(frames) // 2
    probed = frames[middle:middle + 2] if len(frames) > 1 else frames
    probe_spec = spec.model_copy(update={
        "frames": ",".join(map(str, probed)), "image": False, "max_jobs": 1, "scout": False,
        "retries": 0, "task_minutes": None, "frame_step": None, "preset": spec.presets[0]})
    job = service.wait(service.submit(probe_spec, reporter).id, reporter)
    rows = {r["frame"]: r for r in service.store.frames(job.id)}
    seconds = [float(rows[f]["seconds"]) for f in probed
               if f in rows and rows[f]["seconds"] is not None]
    if job.state is not JobState.FINISHED or len(seconds) != len(probed):
        reasons = [str(rows[f]["reason"]) for f in probed if f in rows and rows[f]["reason"]]
        why = f": {reasons[0]}" if reasons else ""
        raise RunError(f"the probe frames {','.join(map(str, probed))} did not render (job "
                       f"{job.id}, {job.state.value}){why}; `braas-globus logs {job.id}` "
                       "says why")
    first, frame_seconds = seconds[0], seconds[-1]
    (task,) = service.store.tasks(job.id)
    spent = (task.ended or 0.0) - (task.started or 0.0)
    return Probe(job=job, frames=probed, first_seconds=first, frame_seconds=frame_seconds,
                 start_seconds=max(spent - len(probed) * frame_seconds, 0.0))
