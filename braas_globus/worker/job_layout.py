"""The job folder and the task file: every name in them, spelled here once. Stdlib only.

A job folder (``BRAAS_HOME/jobs/<job>/`` here, ``jobs/<job>/`` under a preset's working
directory at a centre) holds:

    in/                           the staged scene, hard-linked from objects/
    out/NNNNNN.ext                the frames (frame_name); out/.partial-<pid>/ while a
                                  Blender writes one (partial_dir)
    out/parts/part-NNNN.exr       a still split by samples (--split): each part's
                                  multilayer EXR (part_name); the merged still is the
                                  frame's own out/NNNNNN.ext
    log/task-NNNN.log             each task's Blender output (log_file)
    job/spec.json                 the job as submitted
    job/presets.json              its presets as they were at submit
    job/manifest.json             the staged tree: relative path -> sha256, size
    job/sizing.json               what --task-minutes sized the tasks from (sizing.py)
    job/merge.json                a split still's merge: state, reason, file (merge.py)
    job/tasks/task-NNNN.json      the task file the worker reads (task_file, TaskFile)
    job/progress/task-NNNN.jsonl  the worker's records, one JSON line per event
                                  (progress_file; their shapes: braas_globus/records.py)
    job/CANCEL                    the cancel marker: every Blender of the job stops
    job/runner.lock, runner.log   the local runner's lock and output
    job/cache/                    GPU kernel caches of the tasks run in the image

Content lives once beside the jobs: ``objects/<sha[:2]>/<sha>`` (object_name).

The worker (render_task.py, blender_render.py) imports this by path, the client as
``braas_globus.worker.job_layout``. ``dispatch/compute_task.py`` is sent to centres by
source and keeps its own spelling of task_file (tests/test_job_layout.py keeps them equal).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypedDict

IN = "in"
OUT = "out"
LOG = "log"
JOB = "job"
SUBFOLDERS = (IN, OUT, LOG, JOB)
#: What a job produces (a download copies these; in/ is the user's own scene).
RESULT_FOLDERS = (OUT, LOG, JOB)

SPEC = f"{JOB}/spec.json"
PRESETS = f"{JOB}/presets.json"
MANIFEST = f"{JOB}/manifest.json"
SIZING = f"{JOB}/sizing.json"  # what --task-minutes sized the tasks from (sizing.py)
MERGE = f"{JOB}/merge.json"  # a split still's merge record (braas_globus/merge.py)
PARTS = f"{OUT}/parts"  # a split still's parts (part_name)
#: A still split by samples: 2 to MAX_SPLIT parts (spec.JobSpec.split).
MAX_SPLIT = 64
TASKS = f"{JOB}/tasks"
PROGRESS = f"{JOB}/progress"
CANCEL = f"{JOB}/CANCEL"
RUNNER_LOCK = f"{JOB}/runner.lock"
MERGE_LOCK = f"{JOB}/merge.lock"  # held while a split still's parts merge
RUNNER_LOG = f"{JOB}/runner.log"
CACHE = f"{JOB}/cache"
PREVIEW = "preview"  # preview/contact-sheet.png, preview/preview.mp4 (braas_globus/preview.py)
PARTIAL_PREFIX = ".partial"  # out/.partial-<pid>/: a frame being written, never a result

JOBS = "jobs"  # beside objects/, in BRAAS_HOME and in a preset's working directory
OBJECTS = "objects"

TASK_FILE_GLOB = "task-*.json"
LOG_FILE_GLOB = "task-*.log"
MERGE_LOG = "merge.log"  # a split still's merge, in LOG

# The names as read back (re.fullmatch: no newline). A job has at most 10,000 tasks
# (spec.max_jobs), so a task's number is 4 digits; a frame's is 6, or 7 above 999,999.
FRAME_NAME = re.compile(r"(?P<frame>[0-9]{6}|[1-9][0-9]{6})\.[a-z0-9]{2,4}")
LOG_NAME = re.compile(r"task-(?P<task>[0-9]{4})\.log")
PROGRESS_NAME = re.compile(r"task-(?P<task>[0-9]{4})\.jsonl")
PART_NAME = re.compile(r"part-(?P<part>[0-9]{4})\.exr")
TASK_FILE_NAME = re.compile(r"task-(?P<task>[0-9]{4,})\.json")  # a rebuild reads 4 or more
#: What a download accepts in each folder it brings back from a centre (PARTS: a split
#: still's only).
RESULT_NAMES = {OUT: FRAME_NAME, PARTS: PART_NAME, LOG: LOG_NAME, PROGRESS: PROGRESS_NAME}


def task_name(index: int) -> str:
    """``task-NNNN``: a task's log, records and task file are named for it."""
    return f"task-{index:04d}"


def task_file(root: Path, index: int) -> Path:
    return root / TASKS / f"{task_name(index)}.json"


def progress_file(root: Path, index: int) -> Path:
    return root / PROGRESS / f"{task_name(index)}.jsonl"


def log_file(root: Path, index: int) -> Path:
    return root / LOG / f"{task_name(index)}.log"


def root_of_task_file(path: Path) -> Path:
    """The job folder that holds ``job/tasks/<path>``."""
    return path.parent.parent.parent


#: The file extension of each output format a job may ask for (spec.OutputFormat), as
#: Blender writes it (``scene.render.file_extension``); a scene's own format keeps Blender's.
FORMAT_EXTENSIONS = {"PNG": ".png", "OPEN_EXR": ".exr", "OPEN_EXR_MULTILAYER": ".exr",
                     "JPEG": ".jpg", "TIFF": ".tif"}


def frame_name(frame: int, extension: str) -> str:
    """A frame's file in out/: ``000012.png`` (the original's ###### numbering);
    ``extension`` as Blender gives it, with its dot."""
    return f"{frame:06d}{extension}"


def part_name(part: int) -> str:
    """A split still's part in out/parts/: ``part-0003.exr`` (parts count from 1)."""
    return f"part-{part:04d}.exr"


def part_of_name(name: str) -> int | None:
    """The part a part file's name is for, or None for any other name."""
    match = PART_NAME.fullmatch(name)
    part = int(match["part"]) if match else 0
    return part if 1 <= part <= MAX_SPLIT else None


def part_samples(samples: int, parts: int) -> int:
    """The samples each part of a still split in ``parts`` renders: all parts render the
    same number (Cycles' merge weighs each by the scene's total), so ``parts`` times this
    may exceed ``samples``."""
    return -(-samples // parts)


def frame_glob(frame: int) -> str:
    return frame_name(frame, ".*")


def partial_dir(pid: int) -> str:
    """The folder in out/ where the Blender with process id ``pid`` writes a frame first."""
    return f"{PARTIAL_PREFIX}-{pid}"


def object_name(sha256: str) -> str:
    """Where a content lives under objects/, here and at a centre."""
    return f"{sha256[:2]}/{sha256}"


class Blender(TypedDict, total=False):
    kind: str  # "executable" | "python" (a Python with PyPI bpy) | "image" (the image's own)
    command: list[str]  # absent for "image": render_task reads it in the image


class RenderSettings(TypedDict, total=False):
    """Settings over the scene's that the worker applies in Blender before the first frame
    (spec.JobSpec's; each absent = the scene's own)."""

    samples: int
    resolution: str  # "WxH" pixels
    resolution_percent: int
    camera: str  # a camera object's name
    view_layers: list[str]  # render only these
    file_format: str  # a FORMAT_EXTENSIONS key
    denoise: bool


#: The RenderSettings keys, as the job's spec names them.
RENDER_SETTINGS = tuple(RenderSettings.__annotations__)


class Split(TypedDict):
    frame: int  # the still's frame
    parts: int  # how many parts the still has in all


class TaskFile(TypedDict, total=False):
    """The task file (``job/tasks/task-NNNN.json``): what one attempt at one task renders.

    dispatch.task_description writes it, render_task.py reads it. Paths are relative to
    the job folder. ``task``, ``scene``, ``frames`` and ``blender`` are required; the
    worker takes the others as absent = off / default.
    """

    job_id: str
    task: int  # the task's index: its task_name
    attempt: int  # from 1
    # The staged .blend, "in/...". None (JSON null) where the job has no entry recorded
    # (JobRecord.entry: its staging never finished); the worker cannot render that task.
    scene: str | None
    frames: str  # a frame spec: "1-10,12"
    first_frames: str  # the scout frames, rendered first ("" for none)
    allow_scripts: bool
    allow_missing: bool
    allow_older_blender: bool
    walltime_seconds: int
    render: RenderSettings  # absent or {}: the scene's own settings
    # A still split by samples: ``frames`` are part numbers (1..parts) and each renders
    # samples part_samples(...) of the still's ``frame`` into out/parts/ (part_name).
    split: Split
    # What the backend adds:
    blender: Blender  # at a centre, compute_task sets it from the endpoint's environment
    device: str  # the Cycles device: CPU, CUDA, OPTIX, HIP, ONEAPI, METAL
    threads: int  # 0: as many as there are cores
    objects_dir: str  # at a centre: the objects/ that in/ is hard-linked from
    runtime: str | None  # at a centre: "image" | "host" | None (either)
