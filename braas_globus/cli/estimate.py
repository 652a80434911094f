"""`braas-globus estimate`: render one probe frame where the job would run and project the
whole job's wall time and core-hours. Registered on the app by ``cli/__init__``."""

from __future__ import annotations

from ..output import Output
from ..progress import duration
from ..spec import JobSpec, Mode, build_spec, default_project
from .common import (
    AllowMissingOption,
    AllowOlderOption,
    AllowOutsideOption,
    AllowScriptsOption,
    CameraOption,
    DenoiseOption,
    DeviceOption,
    FormatOption,
    FramesOption,
    FrameStepOption,
    ImageOption,
    JsonOption,
    LazyService,
    MaxJobsOption,
    ModeOption,
    PresetOption,
    ProjectRootOption,
    ResolutionOption,
    ResolutionPercentOption,
    SamplesOption,
    SceneArg,
    ViewLayerOption,
    render_fields,
    run,
)


def estimate(
    scene: SceneArg,
    frames: FramesOption = None,
    image: ImageOption = False,
    preset: PresetOption = "local",
    mode: ModeOption = Mode.PACKED,
    max_jobs: MaxJobsOption = 100,
    device: DeviceOption = None,
    allow_missing: AllowMissingOption = False,
    allow_scripts: AllowScriptsOption = False,
    allow_older_blender: AllowOlderOption = False,
    project_root: ProjectRootOption = None,
    allow_outside: AllowOutsideOption = False,
    samples: SamplesOption = None,
    resolution: ResolutionOption = None,
    resolution_percent: ResolutionPercentOption = None,
    camera: CameraOption = None,
    view_layer: ViewLayerOption = None,
    file_format: FormatOption = None,
    denoise: DenoiseOption = None,
    frame_step: FrameStepOption = None,
    as_json: JsonOption = False,
) -> None:
    """Render one probe frame on the preset and say how long the whole job would take and
    what it would cost (core-hours, GPU-hours), before anything long runs."""

    def command(out: Output, service: LazyService) -> None:
        spec = build_spec(scene=scene, frames=frames, image=image, preset=preset, mode=mode,
                          max_jobs=max_jobs, project=default_project(scene), device=device,
                          retries=0, allow_missing=allow_missing, allow_scripts=allow_scripts,
                          allow_older_blender=allow_older_blender, project_root=project_root,
                          allow_outside=allow_outside,
                          **render_fields(samples, resolution, resolution_percent, camera,
                                          view_layer, file_format, denoise, frame_step))
        show_estimate(out, service, spec)

    run(as_json, command)


def show_estimate(out: Output, service: LazyService, spec: JobSpec) -> None:
    """Render the probe frames of ``spec`` and print the projection (`estimate`, and
    `submit --estimate`)."""
    from ..estimate import estimate as project

    with out.reporter("probe frames", events=True) as reporter:
        result = project(service.opened(), spec, reporter)
    gpu = f", {result.gpu_hours:.2f} GPU-hours" if result.gpu_hours else ""
    out.data(result.as_dict(), "\n".join([
        f"probe      frames {result.probe_frames}: {result.frame_seconds:.2f} s a frame, "
        f"{duration(result.start_seconds)} a task to start Blender and load the scene "
        f"(job {result.probe_job})",
        f"projected  {result.frames} frames in {result.tasks} task(s) on {result.preset}: "
        f"about {duration(result.wall_seconds)}, {result.core_hours:.2f} core-hours{gpu}",
    ]))
