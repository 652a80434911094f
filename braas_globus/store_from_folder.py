"""A job's record, tasks and frames, read back from its job folder (``store rebuild``).

Every job folder describes its job (``service.submit`` writes ``job/spec.json`` and
``job/presets.json``, ``_configure`` the manifest, the runner ``job/tasks/task-*.json``,
the worker ``job/progress/task-*.jsonl``) and holds its frames (``out/``; a split still's
parts in ``out/parts/``, its merge record in ``job/merge.json``): frames whose
file is a whole image are DONE, everything else stays for ``braas-globus resume``. What
a folder cannot tell (Globus task ids, the exact tries) is lost; a task that was not
known to have finished is FAILED, so nothing is sent twice.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .blender import find_blender
from .collect import progress_records, valid_frames_on_disk
from .errors import BraasError, RunError
from .merge import valid_parts_on_disk
from .plan import assign_presets, plan_tasks
from .presets import get_preset
from .scene_info import read_scene_info
from .settings import Settings
from .states import TaskState
from .worker import job_layout
from .worker.frames import FrameSpecError, format_frames, parse_frames

_JOB_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}-\d{6})(\d{2})-")
NOT_FINISHED = ("not known to have finished when the job store was rebuilt: `braas-globus "
                "resume` renders its missing frames")
MAX_REASON = 2000  # a reason from a progress record is kept this long at most


class FolderError(ValueError):
    """A job folder that does not describe a job well enough to rebuild its record."""


Row = dict[str, Any]  # a row of one of the store's tables, by column; or a JSON object


def rebuild_job(folder: Path, settings: Settings) -> tuple[Row, list[Row], list[Row]]:
    """The job's record, tasks and frames, as ``Store.restore_job`` takes them."""
    spec = _read_json(folder / job_layout.SPEC)
    for key, kind in (("preset", str), ("project", str), ("scene", str), ("retries", int)):
        if not isinstance(spec.get(key), kind):
            raise FolderError(f"{folder}: job/spec.json has no valid {key!r}")
    names = spec["preset"].split(",")
    backends = _backends(folder, names, settings)
    task_files = _task_files(folder)
    # Configured: staged (the manifest is written after in/) and, for a centre, sent
    # (only a task that ran there leaves a task file).
    configured = (folder / job_layout.MANIFEST).is_file() and \
        (set(backends.values()) == {"local"} or bool(task_files))
    entry = _entry(folder, spec, task_files) if configured else None
    split = spec.get("split")  # a still split by samples: its units are its parts 1..N
    split = split if isinstance(split, int) and 2 <= split <= job_layout.MAX_SPLIT else None
    frames = list(range(1, split + 1)) if split else _job_frames(folder, spec, entry,
                                                                  task_files)
    job = {"id": folder.name, "project": spec["project"], "preset": spec["preset"],
           "backend": ",".join(sorted(set(backends.values()))), "spec": spec,
           "frames": format_frames(frames), "frame_count": len(frames), "folder": folder,
           "created": _created(folder), "canceled": int((folder / job_layout.CANCEL).exists()),
           "runner_pid": None, "blender": None, "entry": entry}
    if not configured:  # interrupted while configuring: `resume` configures it again
        return job, [], []
    job["blender"] = _blender(task_files, settings)
    tasks = _tasks(frames, task_files, names, spec)
    records = [r for r in progress_records(folder) if isinstance(r.get("task"), int)]
    wanted = set(frames)
    on_disk = valid_parts_on_disk(folder / job_layout.PARTS) if split else \
        valid_frames_on_disk(folder / job_layout.OUT)
    done = {n: path for n, path in on_disk.items() if n in wanted}
    frame_rows = _frame_rows(folder, tasks, done, records)
    for task in tasks:
        _settle(task, done, records, canceled=bool(job["canceled"]))
    return job, tasks, frame_rows


def _read_json(path: Path) -> Row:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FolderError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise FolderError(f"{path} does not hold a JSON object")
    return data


def _backends(folder: Path, names: list[str], settings: Settings) -> dict[str, str]:
    """Each preset's backend, as the job recorded it (job/presets.json), else as now."""
    recorded = {}
    if (folder / job_layout.PRESETS).is_file():
        recorded = _read_json(folder / job_layout.PRESETS)
    backends = {}
    for name in names:
        preset = recorded.get(name)
        backend = preset.get("backend") if isinstance(preset, dict) else None
        backends[name] = backend if isinstance(backend, str) else \
            get_preset(name, settings.home).backend
    return backends


def _task_files(folder: Path) -> dict[int, Row]:
    """The task descriptions the runner wrote (one per task that started), by index."""
    found = {}
    for path in sorted((folder / job_layout.TASKS).glob(job_layout.TASK_FILE_GLOB)):
        match = job_layout.TASK_FILE_NAME.fullmatch(path.name)
        if not match or path.stat().st_size > 1 << 20:
            continue
        try:
            task = _read_json(path)
            parse_frames(task["frames"])
        except (FolderError, KeyError, TypeError, FrameSpecError):
            continue
        if task.get("task") == int(match.group(1)):
            found[task["task"]] = task
    return found


def _entry(folder: Path, spec: Row, task_files: dict[int, Row]) -> str:
    """The staged .blend, relative to the job folder: as the tasks named it, else the
    manifest's .blend that has the scene's name (the shallowest)."""
    for task in task_files.values():
        scene = task.get("scene")
        if isinstance(scene, str) and _inside(folder, folder / scene) and \
                (folder / scene).is_file():
            return Path(scene).as_posix()
    manifest = _read_json(folder / job_layout.MANIFEST)
    name = Path(spec["scene"]).name
    staged = sorted((p for p in manifest if Path(p).name == name), key=lambda p: p.count("/"))
    if not staged:
        raise FolderError(f"{folder}: the manifest holds no {name}")
    return (Path(job_layout.IN) / staged[0]).as_posix()


def _inside(folder: Path, path: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def _job_frames(folder: Path, spec: Row, entry: str | None,
                task_files: dict[int, Row]) -> list[int]:
    """The frames the job renders: as given, else the staged scene's (its range, or its
    current frame for --image), else the user's scene's, else what its tasks rendered;
    every --frame-step-th of them (as service.resolve_frames)."""
    step = spec.get("frame_step")
    step = step if isinstance(step, int) and not isinstance(step, bool) and step >= 1 else None
    if isinstance(spec.get("frames"), str):
        try:
            return parse_frames(spec["frames"])[::step or 1]
        except FrameSpecError as err:
            raise FolderError(f"{folder}: job/spec.json has bad frames ({err})") from None
    for scene in ([folder / entry] if entry else []) + [Path(spec["scene"])]:
        if scene.is_file():
            try:
                info = read_scene_info(scene)
                if spec.get("image"):
                    return [info.frame_current]
                return parse_frames(f"{info.frame_start}-{info.frame_end}:"
                                    f"{step or max(info.frame_step, 1)}")
            except (BraasError, FrameSpecError):
                continue
    frames = sorted({f for task in task_files.values() for f in parse_frames(task["frames"])})
    if not frames:
        raise FolderError(f"{folder}: cannot tell which frames the job renders (no frames in "
                          "job/spec.json, no readable scene, no task files)")
    return frames


def _created(folder: Path) -> float:
    """When the job was submitted: its id says so to the hundredth of a second."""
    match = _JOB_TIME.match(folder.name)
    if match:
        try:
            moment = datetime.strptime(match.group(1), "%Y-%m-%d-%H%M%S")
            return moment.timestamp() + int(match.group(2)) / 100
        except ValueError:
            pass
    return (folder / job_layout.SPEC).stat().st_mtime


def _blender(task_files: dict[int, Row], settings: Settings) -> Row | None:
    """How the job's tasks started Blender: as a task file says, else as a submit here would."""
    for task in task_files.values():
        blender = task.get("blender")
        if isinstance(blender, dict) and isinstance(blender.get("command"), list):
            return blender
    try:
        return find_blender(settings)
    except RunError:
        return None


def _tasks(frames: list[int], task_files: dict[int, Row], presets: list[str],
           spec: Row) -> list[Row]:
    """The task rows: the started tasks as their files say, the frames no file covers as
    one more task; a job whose files do not fit its frames is planned again."""
    planned: list[tuple[int, list[int], bool]] = []
    covered: set[int] = set()
    wanted = set(frames)
    for index, task in sorted(task_files.items()):
        chunk = parse_frames(task["frames"])
        if covered & set(chunk) or not set(chunk) <= wanted:
            planned, covered = [], set()
            break
        planned.append((index, chunk, bool(task.get("first_frames"))))
        covered |= set(chunk)
    rest = [f for f in frames if f not in covered]
    if not planned:
        planned = [(t.index, parse_frames(t.frames), t.scout)
                   for t in plan_tasks(frames, 1, scout=bool(spec.get("scout")))]
    elif rest:
        planned.append((max(i for i, _, _ in planned) + 1, rest, False))
    owners = assign_presets(planned, dict.fromkeys(presets, 1))
    return [{"idx": index, "frames": format_frames(chunk), "frame_count": len(chunk),
             "scout": int(scout), "preset": preset, "state": TaskState.QUEUED.value,
             "attempts": 0, "max_attempts": int(spec["retries"]) + 1, "backend_id": None,
             "started": None, "ended": None, "reason": None}
            for (index, chunk, scout), preset in zip(planned, owners)]


def _frame_rows(folder: Path, tasks: list[Row], done: dict[int, Path],
                records: list[Row]) -> list[Row]:
    """DONE for every whole image in out/; FAILED where the worker said so last."""
    owner = {f: task["idx"] for task in tasks for f in parse_frames(task["frames"])}
    last: dict[int, Row] = {}
    for record in records:
        if record.get("event") == "frame" and record.get("frame") in owner and \
                record.get("state") in ("done", "failed"):
            last[record["frame"]] = record
    rows = []
    for frame, task_idx in sorted(owner.items()):
        record = last.get(frame, {})
        if frame in done:
            seconds = record.get("seconds") if record.get("state") == "done" else None
            rows.append({"frame": frame, "state": "DONE", "task_idx": task_idx,
                         "file": done[frame].relative_to(folder).as_posix(),
                         "seconds": seconds if isinstance(seconds, (int, float)) else None,
                         "reason": None, "updated": done[frame].stat().st_mtime})
        elif record.get("state") == "failed":
            rows.append({"frame": frame, "state": "FAILED", "task_idx": task_idx, "file": None,
                         "seconds": None, "reason": _text(record.get("reason")),
                         "updated": _time(record) or 0.0})
    return rows


def _settle(task: Row, done: dict[int, Path], records: list[Row], canceled: bool) -> None:
    """A task's state from its frames and its worker's records: FINISHED when every frame
    is done, else as its last attempt ended, else FAILED (resumable)."""
    mine = [r for r in records if r["task"] == task["idx"]]
    # Every record has its time (records.py; 0.0 when the worker gave none).
    starts = [t for r in mine if r.get("event") == "start" and (t := _time(r)) is not None]
    ends = [r for r in mine if r.get("event") == "end"]
    attempts = [a for r in mine if isinstance(a := r.get("attempt"), int)]
    task["attempts"] = max(attempts, default=0)
    task["started"] = min(starts) if starts else None
    last_end = ends[-1] if ends else {}
    if all(f in done for f in parse_frames(task["frames"])):
        state, reason = TaskState.FINISHED, None
    elif canceled:
        state, reason = TaskState.CANCELED, "canceled by the user"
    elif last_end.get("state") in ("FAILED", "TIMEOUT", "CANCELED"):
        state, reason = TaskState(last_end["state"]), _text(last_end.get("reason"))
    else:
        state, reason = TaskState.FAILED, NOT_FINISHED
    task["state"], task["reason"] = state.value, reason
    task["ended"] = (_time(last_end) if last_end else None) or time.time()


def _time(record: Row) -> float | None:
    value = record.get("time")
    return float(value) if isinstance(value, (int, float)) else None


def _text(value: object) -> str | None:
    return value[:MAX_REASON] if isinstance(value, str) else None

