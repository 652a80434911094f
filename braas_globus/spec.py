"""The job description: the one place where the rules for user input live.

Every front end (CLI, add-on) builds a JobSpec; anything it accepts is safe to
record, to put in a file name, and (through the endpoint schemas) to reach a
batch script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import UsageError
from .settings import expand_user
from .worker.frames import MAX_FRAME, FrameSpecError, normalise
from .worker.job_layout import FORMAT_EXTENSIONS, MAX_SPLIT, RENDER_SETTINGS, RenderSettings

PROJECT_MAX = 25  # the original product's limit, kept for job names on clusters
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: The one rule for a job's email, also every centre's schema's (endpoint_gen): it reaches a
#: batch directive, so one plain ASCII address, nothing a shell reads.
EMAIL_PATTERN = (r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}@[A-Za-z0-9-]{1,63}"
                 r"(\.[A-Za-z0-9-]{1,63}){1,8}(?!\n)$")
_EMAIL = re.compile(EMAIL_PATTERN)
#: The one rule for a preset's name (presets.ClusterPreset, --preset's comma list).
PRESET_NAME = r"^[a-z0-9][a-z0-9_-]{0,47}$"


class Mode(StrEnum):
    PACKED = "packed"  # one .blend with every packable asset inside
    DIRECTORY = "directory"  # the .blend and its files, paths made relative


class Device(StrEnum):
    CPU = "CPU"
    CUDA = "CUDA"
    OPTIX = "OPTIX"
    HIP = "HIP"
    ONEAPI = "ONEAPI"


class OutputFormat(StrEnum):
    """What a job's frames are written as, overriding the scene's (job_layout names the
    files: FORMAT_EXTENSIONS)."""

    PNG = "PNG"
    OPEN_EXR = "OPEN_EXR"
    OPEN_EXR_MULTILAYER = "OPEN_EXR_MULTILAYER"
    JPEG = "JPEG"
    TIFF = "TIFF"


assert set(OutputFormat) == set(FORMAT_EXTENSIONS), "every format has its file extension"

#: Blender's limits: an image side (pixels), the resolution scale (%), a Cycles sample count.
MAX_RESOLUTION = 65536
MAX_RESOLUTION_PERCENT = 32767
MAX_SAMPLES = 1 << 24
#: A Blender name (a camera object, a view layer): at most 255 bytes of UTF-8 (Blender 5's
#: limit for names), no control character (it reaches a worker's argv and its log lines).
NAME_BYTES = 255
MAX_VIEW_LAYERS = 64
_RESOLUTION = re.compile(r"^([0-9]{1,5})x([0-9]{1,5})$")


def blender_name(raw: str, what: str) -> str:
    """A camera's or a view layer's name as the user gave it, checked (never changed: it
    must match the scene's)."""
    if not raw:
        raise ValueError(f"the {what} name is empty")
    if len(raw.encode("utf-8")) > NAME_BYTES:
        raise ValueError(f"the {what} name is longer than Blender's {NAME_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ValueError(f"the {what} name {raw!r} holds a control character")
    return raw


def resolution_text(raw: str) -> str:
    """``WxH`` in pixels, each side 1 to Blender's MAX_RESOLUTION, as ``64x48``."""
    match = _RESOLUTION.match(raw.strip().lower())
    if not match:
        raise ValueError(f"{raw!r} is not WIDTHxHEIGHT in pixels, e.g. 1920x1080")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_RESOLUTION and 1 <= height <= MAX_RESOLUTION):
        raise ValueError(f"{raw!r}: each side is 1 to {MAX_RESOLUTION} pixels")
    return f"{width}x{height}"


def project_name(raw: str) -> str:
    """The original's rule (spaces and slashes become '_'), then a strict check."""
    name = re.sub(r"[\s/\\]", "_", raw.strip())
    if not name:
        raise ValueError("the project name is empty")
    if len(name) > PROJECT_MAX:
        raise ValueError(f"the project name has {len(name)} characters; at most {PROJECT_MAX}")
    if not _PROJECT.match(name):
        raise ValueError("the project name may use letters, digits, '.', '_' and '-', "
                         "and starts with a letter or digit")
    return name


class JobSpec(BaseModel):
    """What to render, where, and with which limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scene: Path
    frames: str | None = None  # None: the scene's own range (or its current frame for image)
    image: bool = False  # render only the current frame, like the original's "image" type
    preset: str = "local"
    mode: Mode = Mode.PACKED
    walltime_minutes: Annotated[int, Field(ge=1, le=2880)] = 30
    max_jobs: Annotated[int, Field(ge=1, le=10000)] = 100
    project: str = "braas"
    email: str | None = None
    device: Device | None = None  # None: the preset's default (CPU, or the partition's GPUs)
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    scout: bool = False
    allow_missing: bool = False
    allow_older_blender: bool = False  # render a scene saved by a newer Blender anyway
    allow_scripts: bool = False  # run Python inside the .blend (autoexec): off unless asked
    # What a submit may stage (project.py): files inside the project root, and with
    # allow_outside files elsewhere too (never BRAAS_HOME, hidden or system folders).
    project_root: Path | None = None  # None: the nearest marked folder, else the scene's
    allow_outside: bool = False
    # Render settings over the scene's, applied by the worker in Blender before the first
    # frame (the user's .blend is never changed). None (or empty): the scene's own.
    samples: Annotated[int | None, Field(ge=1, le=MAX_SAMPLES)] = None
    resolution: str | None = None  # "WxH" pixels
    resolution_percent: Annotated[int | None, Field(ge=1, le=MAX_RESOLUTION_PERCENT)] = None
    camera: str | None = None  # a camera object's name
    view_layers: tuple[str, ...] = ()  # render only these
    file_format: OutputFormat | None = None
    denoise: bool | None = None
    frame_step: Annotated[int | None, Field(ge=1, le=MAX_FRAME)] = None  # every K-th frame
    # Tasks of about this many minutes, from a measured time a frame (plan.plan_by_time);
    # at most the walltime.
    task_minutes: Annotated[int | None, Field(ge=1, le=2880)] = None
    # One still split by samples into this many parts, each its own unit of the job's tasks
    # (rendered, retried and resumed as frames are), merged when all are in (merge.py).
    split: Annotated[int | None, Field(ge=2, le=MAX_SPLIT)] = None

    @field_validator("scene")
    @classmethod
    def _scene_is_blend(cls, value: Path) -> Path:
        path = expand_user(value).resolve()
        if not path.exists():
            raise ValueError(f"{value} does not exist")
        if not path.is_file():
            raise ValueError(f"{value} is not a file")
        if path.suffix.lower() != ".blend":
            raise ValueError(f"{value} is not a .blend file")
        return path

    @field_validator("project_root")
    @classmethod
    def _project_root_is_folder(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = expand_user(value).resolve()
        if not path.is_dir():
            raise ValueError(f"{value} is not a folder")
        return path

    @field_validator("frames")
    @classmethod
    def _frames_normalised(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalise(value)
        except FrameSpecError as err:
            raise ValueError(str(err)) from err

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        return project_name(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) > 254 or not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",")]
        for name in names:
            if not re.fullmatch(PRESET_NAME, name):
                raise ValueError("a preset name uses lower-case letters, digits, '-' and '_' "
                                 "(several presets: a comma list)")
        if len(set(names)) != len(names):
            raise ValueError("a preset is named twice")
        return ",".join(names)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        return None if value is None else resolution_text(value)

    @field_validator("camera")
    @classmethod
    def _camera(cls, value: str | None) -> str | None:
        return None if value is None else blender_name(value, "camera")

    @field_validator("view_layers")
    @classmethod
    def _view_layers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_VIEW_LAYERS:
            raise ValueError(f"at most {MAX_VIEW_LAYERS} view layers")
        if len(set(value)) != len(value):
            raise ValueError("a view layer is named twice")
        return tuple(blender_name(name, "view layer") for name in value)

    @model_validator(mode="after")
    def _task_minutes_within_walltime(self) -> "JobSpec":
        if self.task_minutes is not None and self.task_minutes > self.walltime_minutes:
            raise ValueError(f"--task-minutes {self.task_minutes} is longer than the walltime "
                             f"({self.walltime_minutes} min): a task must end inside it")
        if self.frame_step is not None and self.image:
            raise ValueError("--frame-step needs an animation, not --image")
        if self.split is not None:
            self._check_split(self.split)
        return self

    def _check_split(self, parts: int) -> None:
        one_frame = self.image or (self.frames is not None and self.frames.isdigit())
        if not one_frame:
            raise ValueError("--split renders one still: give --image or one frame "
                             "(--frames N), not an animation")
        if self.samples is not None and parts > self.samples:
            raise ValueError(f"--split {parts} is more parts than --samples {self.samples}: "
                             "each part renders at least one sample")
        if self.scout or self.task_minutes is not None:
            raise ValueError("--split renders one still: --scout and --task-minutes are "
                             "for animations")

    @property
    def presets(self) -> list[str]:
        """The presets the job fans out to, in the order given."""
        return self.preset.split(",")


_FIELD_NAMES = {"walltime_minutes": "walltime", "max_jobs": "max-jobs",
                "project_root": "--project-root", "samples": "--samples",
                "resolution": "--resolution", "resolution_percent": "--resolution-percent",
                "camera": "--camera", "view_layers": "--view-layer", "file_format": "--format",
                "frame_step": "--frame-step", "task_minutes": "--task-minutes",
                "split": "--split"}


def build_spec(**fields: Any) -> JobSpec:
    """A JobSpec, or a UsageError whose one line names the field and the rule."""
    if fields.get("image") and fields.get("frames"):
        raise UsageError("give either --image or --frames, not both")
    try:
        return JobSpec(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        # The field, not an item's index (view_layers.1); a whole-model rule names its own.
        field = str(first["loc"][0]) if first["loc"] else "input"
        message = first["msg"].removeprefix("Value error, ")
        if field == "input":
            raise UsageError(message) from None
        raise UsageError(f"{_FIELD_NAMES.get(field, field)}: {message}") from None


def render_settings(spec: Mapping[str, Any]) -> RenderSettings:
    """A recorded job's render settings over the scene's (``job.spec``, JSON): those it
    sets; None and an empty list are the scene's own, and a job recorded before these
    existed has none."""
    settings = {key: spec[key] for key in RENDER_SETTINGS
                if spec.get(key) is not None and spec.get(key) != []}
    return cast(RenderSettings, settings)


def default_project(scene: Path) -> str:
    """A project name from the scene's file name, made to follow the project rules."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", scene.stem).lstrip("._-")[:PROJECT_MAX]
    return name or "braas"
