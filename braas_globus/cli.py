"""The `braas-globus` command: a thin front end over the service layer.

Exit codes: 0 success, 1 a failed run, 2 invalid input (nothing was written).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from .collect import when
from .errors import BraasError, UsageError
from .output import Output
from .service import Service
from .spec import Device, Mode, build_spec, default_project
from .states import JobState
from .store import JobRecord

app = typer.Typer(help="Render Blender scenes on HPC centres through Globus, or on this machine.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, for scripts.")]
JobArg = Annotated[str, typer.Argument(help="A job id, or a unique start of one.")]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait for the job to end, showing progress.")]


def run(as_json: bool, command: Callable[[Output, Service], Any]) -> Any:
    """Run a command; turn our errors into one line on stderr and the right exit code."""
    # CRITICAL: BAT logs a failed copy (a full disk) with its traceback, then raises.
    logging.getLogger("blender_asset_tracer").setLevel(logging.CRITICAL)
    out = Output(as_json)
    try:
        return command(out, Service.open())
    except UsageError as err:
        out.error(str(err))
        raise typer.Exit(2) from None
    except BraasError as err:
        from .disk import DiskFullError, disk_full_in, home_disk_full
        from .store import StoreError

        full = None if isinstance(err, (DiskFullError, StoreError)) else \
            disk_full_in(err) or home_disk_full()  # Blender could not write, say
        out.error(f"{err} ({full})" if full else str(err))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        out.error("interrupted; the job goes on: `braas-globus list` shows it")
        raise typer.Exit(130) from None
    except Exception as err:  # a bug of ours: one line for the user, the trace in a file
        from .disk import disk_full_in, home_disk_full

        full = disk_full_in(err)
        if full:  # not a bug: which disk, and what to do
            out.error(str(full))
        else:
            said = f"{type(err).__name__}: {err}"
            report = write_crash_report()
            full = home_disk_full()  # likely the cause, though a library said it in words
            out.error(f"{full}; it stopped this with {said} (the full report is in {report})"
                      if full else f"unexpected error ({said}); the full report is in {report}")
        raise typer.Exit(1) from None


def write_crash_report() -> Path:
    """The current exception's traceback, in BRAAS_HOME/crash/ (else the temp folder)."""
    import tempfile
    import time
    import traceback

    from .settings import braas_home

    report = traceback.format_exc()
    for folder in (braas_home() / "crash", Path(tempfile.gettempdir())):
        path = folder / f"braas-globus-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(f"braas-globus {' '.join(sys.argv[1:])}\n{report}")
            return path
        except OSError:  # a full disk, say: leave no cut-short report there
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
            continue
    return Path("(nowhere: no folder was writable)")


def job_summary(job: JobRecord) -> dict:
    return {"id": job.id, "project": job.project, "preset": job.preset, "state": job.state.value,
            "frames": job.frames, "frames_total": job.frame_count, "frames_done": job.frames_done,
            "frames_failed": job.frames_failed, "folder": str(job.folder)}


def follow(out: Output, service: Service, job: JobRecord, wait: bool) -> None:
    """Print the job; with --wait, show progress until it ends; exit 1 unless it FINISHED."""
    if not wait:
        out.data(job_summary(job), f"{job.id}  {job.state.value}  {job.frame_count} frames  "
                                   f"{job.folder}")
        return
    out.note(f"job {job.id}: {job.frame_count} frames")
    with out.reporter("rendering") as reporter:
        job = service.wait(job.id, reporter)
    out.data(job_summary(job), f"{job.id}  {job.state.value}  {job.frames_done}/"
                               f"{job.frame_count} frames in {job.folder / 'out'}")
    if job.state is not JobState.FINISHED:
        info = service.info(job.id)
        for failed in info["failed_frames"][:5]:
            out.note(f"frame {failed['frame']}: {failed['reason']}")
        raise typer.Exit(1)


@app.command()
def submit(
    scene: Annotated[Path, typer.Argument(help="The .blend file to render.")],
    frames: Annotated[Optional[str], typer.Option(help="Frames, e.g. 1-250, 1-100:10, 1,5,9 (default: the scene's range).")] = None,
    image: Annotated[bool, typer.Option("--image", help="Render the scene's current frame only.")] = False,
    preset: Annotated[str, typer.Option(help="Where to render (`braas-globus presets`).")] = "local",
    mode: Annotated[Mode, typer.Option(help="packed: one .blend with assets inside; directory: the .blend and its files.")] = Mode.PACKED,
    walltime: Annotated[int, typer.Option(help="Minutes each task may run (1-2880).")] = 30,
    max_jobs: Annotated[int, typer.Option(help="At most this many render tasks (1-10000).")] = 100,
    project: Annotated[Optional[str], typer.Option(help="Project name, up to 25 characters (default: the file name).")] = None,
    email: Annotated[Optional[str], typer.Option(help="Mail the scheduler's job notices here.")] = None,
    device: Annotated[Optional[Device], typer.Option(case_sensitive=False, help="Cycles device (default: the preset's: CPU here, the partition's GPUs on a cluster).")] = None,
    retries: Annotated[int, typer.Option(help="Tries again for a failed task (0-10).")] = 2,
    scout: Annotated[bool, typer.Option("--scout", help="Render the first, middle and last frames first.")] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Submit even if assets are missing.")] = False,
    allow_scripts: Annotated[bool, typer.Option("--allow-scripts", help="Let Python scripts inside the .blend run.")] = False,
    allow_older_blender: Annotated[bool, typer.Option("--allow-older-blender", help="Render with a Blender older than the one that saved the scene.")] = False,
    project_root: Annotated[Optional[Path], typer.Option(help="Stage only files inside this folder (default: the nearest folder above the scene with .blender_project or .git, else the scene's folder).")] = None,
    allow_outside: Annotated[bool, typer.Option("--allow-outside", help="Also stage files outside the project root (never BRAAS_HOME, hidden or system folders).")] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a scene for rendering; prints the job id."""

    def command(out: Output, service: Service) -> None:
        spec = build_spec(scene=scene, frames=frames, image=image, preset=preset, mode=mode,
                          walltime_minutes=walltime, max_jobs=max_jobs,
                          project=project if project is not None else default_project(scene),
                          email=email, device=device, retries=retries, scout=scout,
                          allow_missing=allow_missing, allow_scripts=allow_scripts,
                          allow_older_blender=allow_older_blender,
                          project_root=project_root, allow_outside=allow_outside)
        with out.reporter("submitting") as reporter:
            job = service.submit(spec, reporter)
        follow(out, service, job, wait)

    run(as_json, command)


@app.command()
def demo(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build the demo scene again.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build a small animated Cycles scene, render it here, and say where the frames are."""

    def command(out: Output, service: Service) -> None:
        out.note("building the demo scene" if rebuild else "preparing the demo scene")
        scene = service.demo_scene(rebuild)
        spec = build_spec(scene=scene, project="demo", mode=Mode.DIRECTORY)
        with out.reporter("submitting") as reporter:
            job = service.submit(spec, reporter)
        follow(out, service, job, wait=True)
        out.note(f"the demo's frames are in {job.folder / 'out'}")

    run(as_json, command)


@app.command("list")
def list_jobs(as_json: JsonOption = False) -> None:
    """List jobs with their states."""

    def command(out: Output, service: Service) -> None:
        jobs = service.list_jobs()
        table = Table("job", "preset", "state", "frames", "submitted")
        for job in jobs:
            table.add_row(job.id, job.preset, job.state.value,
                          f"{job.frames_done}/{job.frame_count}",
                          when(job.created))
        out.data([job_summary(job) for job in jobs])
        out.table(table) if jobs else out.note("no jobs yet: `braas-globus demo` makes one")

    run(as_json, command)


@app.command()
def info(job: JobArg, as_json: JsonOption = False) -> None:
    """Everything about a job: times, resources, parameters, frame states, last frame."""

    def command(out: Output, service: Service) -> None:
        details = service.info(job)
        lines = [f"job        {details['id']}  ({details['state']})",
                 f"scene      {details['scene']}",
                 f"preset     {details['preset']}  device {details['resources']['device']}  "
                 f"walltime {details['resources']['walltime_minutes']} min  "
                 f"tasks {details['resources']['tasks']}",
                 f"submitted  {details['submitted']}   started {details['started'] or '-'}"
                 f"   ended {details['ended'] or '-'}",
                 f"folder     {details['folder']}",
                 f"frames     {details['frames']['done']}/{details['frames']['total']} done, "
                 f"{details['frames']['failed']} failed"]
        lines += [f"  {state:<10} {spec}" for state, spec in details["frames"]["by_state"].items()]
        lines += [f"  frame {f['frame']} failed: {f['reason']}" for f in details["failed_frames"]]
        lines += [f"  rendered without (missing): {name}" for name in details["missing_files"]]
        lines += [f"task {t['index']}{' (scout)' if t['scout'] else ''}  {t['state']}  frames "
                  f"{t['frames']}  tries {t['attempts']}/{t['max_attempts']}"
                  + (f"  {t['reason']}" if t["reason"] else "") for t in details["tasks"]]
        if details["last_frame"]:
            lines.append(f"last frame {details['last_frame']['frame']}: "
                         f"{details['last_frame']['file']}")
        lines.append("parameters " + ", ".join(f"{k}={v}" for k, v in
                                                details["parameters"].items()))
        out.data(details, "\n".join(lines))
        if details["warning"]:
            out.note(details["warning"])

    run(as_json, command)


@app.command()
def logs(
    job: JobArg,
    task: Annotated[Optional[int], typer.Option(help="Only this task's log.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a job's render logs."""

    def command(out: Output, service: Service) -> None:
        texts = service.logs(job, task)
        out.data(texts, "\n".join(f"--- {name}\n{text}" for name, text in texts.items())
                 or "no logs yet")

    run(as_json, command)


@app.command()
def cancel(job: JobArg, as_json: JsonOption = False) -> None:
    """Stop a job: no frame of it renders afterwards."""

    def command(out: Output, service: Service) -> None:
        record = service.cancel(job)
        out.data(job_summary(record), f"{record.id}  {record.state.value}")

    run(as_json, command)


@app.command()
def download(
    job: JobArg,
    to: Annotated[Optional[Path], typer.Option(help="Copy out/, log/ and job/ into DIR/<job>.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Bring a job's frames and logs into its storage folder (or --to DIR), verified."""

    def command(out: Output, service: Service) -> None:
        with out.reporter("downloading") as reporter:
            result = service.download(job, to, reporter)
        missing = f"; missing {result['missing']}" if result["missing"] else ""
        out.data(result, f"{result['frames_valid']}/{result['frames_expected']} frames in "
                         f"{result['frames_dir']}{missing}")

    run(as_json, command)


@app.command()
def resume(job: JobArg, wait: WaitOption = False, as_json: JsonOption = False) -> None:
    """Render only the frames of a job that are missing or failed."""

    def command(out: Output, service: Service) -> None:
        with out.reporter("resuming") as reporter:
            record = service.resume(job, reporter)
        follow(out, service, record, wait)

    run(as_json, command)


@app.command()
def clusters(as_json: JsonOption = False) -> None:
    """List the supported HPC clusters from the catalog: scheduler, CPU, GPUs, partitions."""

    def command(out: Output, service: Service) -> None:
        from .catalog import load_catalog

        catalog = load_catalog()
        table = Table("cluster", "name", "scheduler", "arch", "GPU device", "partitions")
        rows = []
        for key, cluster in catalog.clusters.items():
            partitions = {name: part.kind for name, part in cluster.partitions.items()}
            rows.append({"cluster": key, "title": cluster.title, "scheduler": cluster.scheduler,
                         "arch": cluster.arch, "cycles_device": cluster.cycles_device,
                         "partitions": partitions})
            table.add_row(key, cluster.title, cluster.scheduler, cluster.arch,
                          cluster.cycles_device or "-",
                          ", ".join(f"{n} ({k})" for n, k in partitions.items()))
        out.data(rows)
        out.table(table)

    run(as_json, command)


from .auth_cli import login, logout, whoami  # noqa: E402
from .container_cli import container_app  # noqa: E402
from .function_cli import function  # noqa: E402
from .presets_cli import presets_app  # noqa: E402

app.command()(login)
app.command()(logout)
app.command()(whoami)
app.command()(function)
app.add_typer(presets_app, name="presets")
app.add_typer(container_app, name="container")

endpoints_app = typer.Typer(help="Centre-side Globus Compute endpoint templates.",
                            no_args_is_help=True)
app.add_typer(endpoints_app, name="endpoints")

from .store_cli import store_app  # noqa: E402

app.add_typer(store_app, name="store")


def _user_config(path: Path | None, options: list[str]) -> dict:
    """Endpoint options from a JSON file and KEY=VALUE pairs. A value of ASCII digits only
    (at most 9) becomes an int; every other value stays a string for the centre's schema to
    judge (str.isdigit also takes "²", which int() refuses)."""
    import re

    config: dict = {}
    if path is not None:
        try:
            with path.open("rb") as stream:
                text = stream.read(1 << 20)  # an options file is a few lines, not /dev/zero
            config = json.loads(text)
        except (OSError, ValueError, RecursionError) as err:
            raise UsageError(f"--user-config {path}: not a readable JSON file "
                             f"({str(err)[:200]})") from None
        if not isinstance(config, dict):
            raise UsageError(f"--user-config {path}: must hold a JSON object")
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise UsageError(f"--option {option[:100]!r}: write KEY=VALUE")
        config[key] = int(value) if re.fullmatch(r"[0-9]{1,9}", value) else value
    if not config:
        raise UsageError("give --user-config FILE or --option KEY=VALUE "
                         "(for example account, partition, walltime_minutes)")
    return config


@endpoints_app.command("render")
def endpoints_render(
    cluster: Annotated[str, typer.Argument(help="A cluster from `braas-globus clusters`.")],
    user_config: Annotated[Optional[Path], typer.Option(help="JSON file with the options a user sends.")] = None,
    option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE, may repeat.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the endpoint config (YAML) that a user's options would produce at a centre."""

    def command(out: Output, service: Service) -> None:
        from .endpoint_config import render_user_config

        config = _user_config(user_config, option or [])
        text = render_user_config(cluster, config)
        out.data({"cluster": cluster, "user_config": config, "endpoint_config": text}, text)

    run(as_json, command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: click's own usage errors also become one line and exit code 2."""
    try:
        result = app(args=argv, prog_name="braas-globus", standalone_mode=False)
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # typer ships its own click, so its usage errors are matched by their shape.
        if not (hasattr(err, "format_message") and hasattr(err, "exit_code")):
            raise
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
            return 0
        command = ctx.command_path if ctx is not None else "braas-globus"
        message = " ".join(err.format_message().split())
        print(f"error: {message} (see `{command} --help`)", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
