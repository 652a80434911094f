"""The job description: the one place where the rules for user input live.

Every front end (CLI, add-on) builds a JobSpec; anything it accepts is safe to
record, to put in a file name, and (through the endpoint schemas) to reach a
batch script.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import UsageError
from .worker.frames import FrameSpecError, normalise

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

    @field_validator("scene")
    @classmethod
    def _scene_is_blend(cls, value: Path) -> Path:
        path = value.expanduser().resolve()
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
        path = value.expanduser().resolve()
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

    @property
    def presets(self) -> list[str]:
        """The presets the job fans out to, in the order given."""
        return self.preset.split(",")


_FIELD_NAMES = {"walltime_minutes": "walltime", "max_jobs": "max-jobs",
                "project_root": "--project-root"}


def build_spec(**fields: Any) -> JobSpec:
    """A JobSpec, or a UsageError whose one line names the field and the rule."""
    if fields.get("image") and fields.get("frames"):
        raise UsageError("give either --image or --frames, not both")
    try:
        return JobSpec(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "input"
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"{_FIELD_NAMES.get(field, field)}: {message}") from None


def default_project(scene: Path) -> str:
    """A project name from the scene's file name, made to follow the project rules."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", scene.stem).lstrip("._-")[:PROJECT_MAX]
    return name or "braas"
