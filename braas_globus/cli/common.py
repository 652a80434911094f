"""What every `braas-globus` command shares: the ``run`` wrapper that turns errors into one
line and an exit code, the crash report, the service opened on first use, and the options
many commands take.

Exit codes: 0 success, 1 a failed run, 2 invalid input (nothing was written), 130
interrupted. The command modules import this one, never the package (``cli/__init__``
imports them).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import BraasError, UsageError
from ..output import Output
from ..service import Service
from ..settings import Settings, braas_home, load_settings
from ..spec import Device, Mode, OutputFormat

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, for scripts.")]
JobArg = Annotated[str, typer.Argument(
    help="A job id, a unique start of one, or `last` (the job submitted last).")]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait for the job to end, showing progress.")]

# What a scene is rendered with: `submit` and `estimate` take the same.
SceneArg = Annotated[Path, typer.Argument(help="The .blend file to render.")]
FramesOption = Annotated[Optional[str], typer.Option(help="Frames, e.g. 1-250, 1-100:10, 1,5,9 (default: the scene's range).")]
ImageOption = Annotated[bool, typer.Option("--image", help="Render the scene's current frame only.")]
PresetOption = Annotated[str, typer.Option(help="Where to render (`braas-globus presets`).")]
ModeOption = Annotated[Mode, typer.Option(help="packed: one .blend with assets inside; directory: the .blend and its files.")]
MaxJobsOption = Annotated[int, typer.Option(help="At most this many render tasks (1-10000).")]
DeviceOption = Annotated[Optional[Device], typer.Option(case_sensitive=False, help="Cycles device (default: the preset's: CPU here, the partition's GPUs on a cluster).")]
AllowMissingOption = Annotated[bool, typer.Option("--allow-missing", help="Submit even if assets are missing.")]
AllowScriptsOption = Annotated[bool, typer.Option("--allow-scripts", help="Let Python scripts inside the .blend run.")]
AllowOlderOption = Annotated[bool, typer.Option("--allow-older-blender", help="Render with a Blender older than the one that saved the scene.")]
ProjectRootOption = Annotated[Optional[Path], typer.Option(help="Stage only files inside this folder (default: the nearest folder above the scene with .blender_project or .git, else the scene's folder).")]
AllowOutsideOption = Annotated[bool, typer.Option("--allow-outside", help="Also stage files outside the project root (never BRAAS_HOME, hidden or system folders).")]

# Render settings over the scene's (`submit` and `estimate`): the worker applies them in
# Blender; the .blend is never changed. render_fields gathers them for build_spec.
SamplesOption = Annotated[Optional[int], typer.Option(help="Cycles samples per pixel (default: the scene's).")]
ResolutionOption = Annotated[Optional[str], typer.Option(metavar="WxH", help="Image size in pixels, e.g. 1920x1080 (default: the scene's).")]
ResolutionPercentOption = Annotated[Optional[int], typer.Option(help="Scale the image size by this percentage, e.g. 25 for a quick check (default: the scene's).")]
CameraOption = Annotated[Optional[str], typer.Option(help="Render through this camera object (default: the scene's camera).")]
ViewLayerOption = Annotated[Optional[list[str]], typer.Option("--view-layer", help="Render only this view layer; repeat for several (default: the scene's enabled ones).")]
FormatOption = Annotated[Optional[OutputFormat], typer.Option("--format", case_sensitive=False, help="Write the frames as PNG, OPEN_EXR, OPEN_EXR_MULTILAYER, JPEG or TIFF (default: the scene's format).")]
DenoiseOption = Annotated[Optional[bool], typer.Option("--denoise/--no-denoise", help="Denoise the frames or not (default: as the scene says).", show_default=False)]
FrameStepOption = Annotated[Optional[int], typer.Option(help="Render every K-th frame of the scene's range or of --frames.")]
TaskMinutesOption = Annotated[Optional[int], typer.Option(help="Size tasks to run about this many minutes each (1 to the walltime), from a measured time a frame (the scout's, else a probe render); without one, --max-jobs.")]


def render_fields(samples: int | None, resolution: str | None,
                  resolution_percent: int | None, camera: str | None,
                  view_layers: list[str] | None, file_format: OutputFormat | None,
                  denoise: bool | None, frame_step: int | None) -> dict[str, Any]:
    """The render-settings options as ``build_spec`` keyword arguments."""
    return {"samples": samples, "resolution": resolution,
            "resolution_percent": resolution_percent, "camera": camera,
            "view_layers": tuple(view_layers or ()), "file_format": file_format,
            "denoise": denoise, "frame_step": frame_step}


class LazyService:
    """The service, opened on first use: a command that never touches the job store creates
    no ``jobs.sqlite``, and one that needs only BRAAS_HOME (``home``: from the environment)
    is not stopped by config.toml. ``settings`` reads config.toml (its errors as today);
    any other attribute opens the store and is the :class:`Service`'s own."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._service: Service | None = None

    @property
    def home(self) -> Path:
        return braas_home()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def opened(self) -> Service:
        if self._service is None:
            self._service = Service.open(self.settings)
        return self._service

    def __getattr__(self, name: str) -> Any:  # only for names not defined above
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.opened(), name)


def run(as_json: bool, command: Callable[[Output, LazyService], Any]) -> Any:
    """Run a command; turn our errors into one line on stderr and the right exit code."""
    # CRITICAL: BAT logs a failed copy (a full disk) with its traceback, then raises.
    logging.getLogger("blender_asset_tracer").setLevel(logging.CRITICAL)
    out = Output(as_json)
    try:
        return command(out, LazyService())
    except UsageError as err:
        out.error(str(err))
        raise typer.Exit(2) from None
    except BraasError as err:
        from ..disk import DiskFullError, disk_full_in, home_disk_full
        from ..store import StoreError

        full = None if isinstance(err, (DiskFullError, StoreError)) else \
            disk_full_in(err) or home_disk_full()  # Blender could not write, say
        out.error(f"{err} ({full})" if full else str(err))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        out.error("interrupted; the job goes on: `braas-globus list` shows it")
        raise typer.Exit(130) from None
    except Exception as err:  # a bug of ours: one line for the user, the trace in a file
        from ..disk import disk_full_in, home_disk_full

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
