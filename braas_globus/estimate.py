"""What a whole job would take, before it runs: `braas-globus estimate`.

A probe job (probe.py) renders two frames from the middle of the job's where the job would
run, through the same pipeline: the steady time a frame, and a task's time once (starting
Blender, loading and syncing the scene). Each task then renders its frames one after
another; the tasks run side by side, as many as the preset runs at once. Core- and
GPU-hours count the frames' render time, as `info` counts them for a finished job
(cost.py). The probe job stays, as any job does: its frame shows what the render looks like.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .cost import holding, recorded_presets
from .errors import RunError, UsageError
from .plan import plan_for_job
from .probe import probe
from .service import QuietReporter, Reporter, Service
from .spec import JobSpec


@dataclass(frozen=True)
class Estimate:
    preset: str
    frames: int
    tasks: int
    probe_job: str
    probe_frames: str
    frame_seconds: float  # Blender's time for a frame after a task's first
    start_seconds: float  # a task's time once: Blender, loading and syncing the scene
    wall_seconds: float  # the projected time from the first task's start to the last end
    core_hours: float
    gpu_hours: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(service: Service, spec: JobSpec, reporter: Reporter = QuietReporter()
             ) -> Estimate:
    """Render the probe frame of ``spec`` where it would run and project the whole job."""
    if len(spec.presets) != 1:
        raise UsageError("estimate one preset at a time: the speed of each is its own")
    _, frames = service.preflight(spec)  # every check a submit makes, before the probe
    measured = probe(service, spec, frames, reporter)
    job, probed = measured.job, measured.frames
    first, frame_seconds = measured.first_seconds, measured.frame_seconds
    start_seconds = measured.start_seconds
    (preset,) = spec.presets
    slots = service.backend(preset).task_slots()
    planned = plan_for_job(frames, slots, max_jobs=spec.max_jobs, scout=spec.scout,  # as submit
                           walltime_minutes=spec.walltime_minutes,
                           task_minutes=spec.task_minutes, seconds_per_frame=frame_seconds,
                           start_seconds=start_seconds)
    fields = recorded_presets(job).get(preset, {})
    held = holding(fields, service.settings.local_workers)
    if held is None:
        raise RunError(f"preset {preset}: the catalog does not know its partition")
    # As cost.py counts a finished job: every frame, and each task's dearer first one.
    render = len(frames) * frame_seconds + len(planned) * max(first - frame_seconds, 0.0)
    return Estimate(
        preset=preset, frames=len(frames), tasks=len(planned), probe_job=job.id,
        probe_frames=",".join(map(str, probed)), frame_seconds=round(frame_seconds, 3),
        start_seconds=round(start_seconds, 3),
        wall_seconds=round(start_seconds + max(t.frame_count for t in planned) * frame_seconds,
                           1),
        core_hours=round(render * held.cores / 3600, 4),
        gpu_hours=round(render * held.gpus / 3600, 4))
