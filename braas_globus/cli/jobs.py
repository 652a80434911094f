"""`braas-globus submit`, `demo`, `list`, `info`, `logs`, `cancel`, `download`, `resume`:
a job's life. Registered on the app by ``cli/__init__``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..collect import when
from ..output import Output
from ..spec import Mode, build_spec, default_project
from ..states import JobState
from ..store import JobRecord
from ..views import info_lines, job_summary
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
    JobArg,
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
    TaskMinutesOption,
    ViewLayerOption,
    WaitOption,
    render_fields,
    run,
)

#: How `list` colours each state on a terminal (rich shows none off one or with NO_COLOR).
STATE_STYLE = {JobState.CONFIGURING: "magenta", JobState.QUEUED: "yellow",
               JobState.RUNNING: "cyan", JobState.FINISHED: "green", JobState.FAILED: "red",
               JobState.CANCELED: "dim"}


def follow(out: Output, service: LazyService, job: JobRecord, wait: bool) -> None:
    """Print the job; with --wait, show progress until it ends; exit 1 unless it FINISHED."""
    unit = job.unit  # a still split by samples renders parts
    if not wait:
        out.data(job_summary(job), f"{job.id}  {job.state.value}  {job.frame_count} {unit}  "
                                   f"{job.folder}")
        return
    out.note(f"job {job.id}: {job.frame_count} {unit}")
    with out.reporter("rendering", events=True) as reporter:
        job = service.wait(job.id, reporter)
    out.data(job_summary(job), f"{job.id}  {job.state.value}  {job.frames_done}/"
                               f"{job.frame_count} {unit} in {job.folder / 'out'}")
    if job.state is not JobState.FINISHED:
        info = service.info(job.id)
        merge = (info["split"] or {}).get("merge") or {}  # a split still's failed merge
        if merge.get("reason"):
            out.note(merge["reason"])
        for failed in info["failed_frames"][:5]:
            out.note(f"frame {failed['frame']}: {failed['reason']}")
        raise typer.Exit(1)


def submit(
    scene: SceneArg,
    frames: FramesOption = None,
    image: ImageOption = False,
    preset: PresetOption = "local",
    mode: ModeOption = Mode.PACKED,
    walltime: Annotated[int, typer.Option(help="Minutes each task may run (1-2880).")] = 30,
    max_jobs: MaxJobsOption = 100,
    project: Annotated[Optional[str], typer.Option(help="Project name, up to 25 characters (default: the file name).")] = None,
    email: Annotated[Optional[str], typer.Option(help="Mail the scheduler's job notices here.")] = None,
    device: DeviceOption = None,
    retries: Annotated[int, typer.Option(help="Tries again for a failed task (0-10).")] = 2,
    scout: Annotated[bool, typer.Option("--scout", help="Render the first, middle and last frames first.")] = False,
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
    task_minutes: TaskMinutesOption = None,
    split: Annotated[Optional[int], typer.Option(help="Split one still (--image, or one frame) by samples into N parts (2-64), rendered as tasks on any preset and merged on this machine (denoised once after the merge where the job denoises).")] = None,
    wait: WaitOption = False,
    estimate: Annotated[bool, typer.Option(
        "--estimate", help="Only estimate: render two probe frames and print the job's "
                           "projected time and core-hours (as `braas-globus estimate`).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a scene for rendering; prints the job id."""

    def command(out: Output, service: LazyService) -> None:
        spec = build_spec(scene=scene, frames=frames, image=image, preset=preset, mode=mode,
                          walltime_minutes=walltime, max_jobs=max_jobs,
                          project=project if project is not None else default_project(scene),
                          email=email, device=device, retries=retries, scout=scout,
                          allow_missing=allow_missing, allow_scripts=allow_scripts,
                          allow_older_blender=allow_older_blender,
                          project_root=project_root, allow_outside=allow_outside,
                          task_minutes=task_minutes, split=split,
                          **render_fields(samples, resolution, resolution_percent, camera,
                                          view_layer, file_format, denoise, frame_step))
        if estimate:
            from .estimate import show_estimate

            show_estimate(out, service, spec)
            return
        with out.reporter("submitting", events=wait) as reporter:
            job = service.submit(spec, reporter)
        follow(out, service, job, wait)

    run(as_json, command)


def demo(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build the demo scene again.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build a small animated Cycles scene, render it here, and say where the frames are."""

    def command(out: Output, service: LazyService) -> None:
        out.note("building the demo scene" if rebuild else "preparing the demo scene")
        scene = service.demo_scene(rebuild)
        spec = build_spec(scene=scene, project="demo", mode=Mode.DIRECTORY)
        with out.reporter("submitting", events=True) as reporter:
            job = service.submit(spec, reporter)
        follow(out, service, job, wait=True)
        out.note(f"the demo's frames are in {job.folder / 'out'}")

    run(as_json, command)


def list_jobs(as_json: JsonOption = False) -> None:
    """List jobs with their states."""

    def command(out: Output, service: LazyService) -> None:
        jobs = service.list_jobs()
        table = Table("job", "preset", "state", "frames", "submitted")
        # The id is what users copy: whole, on one line where the width allows, else folded
        # onto the next line, never cut with an ellipsis.
        table.columns[0].overflow = "fold"
        table.columns[0].min_width = max((len(job.id) for job in jobs), default=3)
        for job in jobs:
            table.add_row(job.id, job.preset, Text(job.state.value, STATE_STYLE[job.state]),
                          f"{job.frames_done}/{job.frame_count}",
                          when(job.created))
        out.data([job_summary(job) for job in jobs])
        out.table(table) if jobs else out.note("no jobs yet: `braas-globus demo` makes one")

    run(as_json, command)


def info(job: JobArg, as_json: JsonOption = False) -> None:
    """Everything about a job: times, resources, parameters, frame states, last frame."""

    def command(out: Output, service: LazyService) -> None:
        details = service.info(job)
        out.data(details, "\n".join(info_lines(details)))
        if details["warning"]:
            out.note(details["warning"])

    run(as_json, command)


def logs(
    job: JobArg,
    task: Annotated[Optional[int], typer.Option(help="Only this task's log.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a job's render logs."""

    def command(out: Output, service: LazyService) -> None:
        texts = service.logs(job, task)
        out.data(texts, "\n".join(f"--- {name}\n{text}" for name, text in texts.items())
                 or "no logs yet")

    run(as_json, command)


def cancel(job: JobArg, as_json: JsonOption = False) -> None:
    """Stop a job: no frame of it renders afterwards."""

    def command(out: Output, service: LazyService) -> None:
        record = service.cancel(job)
        out.data(job_summary(record), f"{record.id}  {record.state.value}")

    run(as_json, command)


def download(
    job: JobArg,
    to: Annotated[Optional[Path], typer.Option(help="Copy out/, log/ and job/ into DIR/<job>.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Bring a job's frames and logs into its storage folder (or --to DIR), verified."""

    def command(out: Output, service: LazyService) -> None:
        with out.reporter("downloading") as reporter:
            result = service.download(job, to, reporter)
        missing = f"; missing {result['missing']}" if result["missing"] else ""
        out.data(result, f"{result['frames_valid']}/{result['frames_expected']} frames in "
                         f"{result['frames_dir']}{missing}")

    run(as_json, command)


def resume(job: JobArg, wait: WaitOption = False, as_json: JsonOption = False) -> None:
    """Render only the frames of a job that are missing or failed."""

    def command(out: Output, service: LazyService) -> None:
        with out.reporter("resuming", events=wait) as reporter:
            record = service.resume(job, reporter)
        follow(out, service, record, wait)

    run(as_json, command)

