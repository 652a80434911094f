"""What a job produced: per-frame states, verified frames on disk, the job's summary."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from .cost import job_cost, recorded_presets
from .errors import BraasError
from .merge import merged_file, read_record, valid_parts_on_disk
from .progress import job_pace
from .records import JobScope, MissingRecord, frame_of_name, frame_path, read_progress
from .sizing import read_sizing
from .spec import render_settings
from .store import JobRecord, Store
from .worker import job_layout
from .worker.frames import format_frames, parse_frames
from .worker.image_check import is_valid_image


def valid_frames_on_disk(out_dir: Path) -> dict[int, Path]:
    """Frame number -> file, for every complete image in ``out_dir``."""
    found: dict[int, Path] = {}
    if not out_dir.is_dir():
        return found
    for path in out_dir.iterdir():
        frame = frame_of_name(path.name)
        if frame is not None and not path.is_symlink() and path.is_file() \
                and is_valid_image(path):
            found[frame] = path
    return found


def missing_frames(job: JobRecord, store: Store) -> set[int]:
    """The job's frames (a split still's parts) with no whole image on disk."""
    if job.split:
        return set(parse_frames(job.frames)) - set(valid_parts_on_disk(
            job.folder / job_layout.PARTS))
    return set(parse_frames(job.frames)) - set(valid_frames_on_disk(job.folder / job_layout.OUT))


def frame_states(job: JobRecord, store: Store) -> dict[int, str]:
    """Every frame's state: DONE or FAILED once reported, else its task's state."""
    states: dict[int, str] = {}
    for task in store.tasks(job.id):
        for frame in parse_frames(task.frames):
            states[frame] = task.state.value
    for row in store.frames(job.id):
        if row["frame"] in states:  # a row for any other frame is not one of the job's
            states[row["frame"]] = row["state"]
    return states


def preset_devices(job: JobRecord) -> str:
    """The Cycles device a job renders with where it named none: each preset's own, as the
    job recorded its presets at submit ("CPU", or "CUDA on karolina-gpu, CPU on local")."""
    from .catalog import load_catalog

    def device(fields: dict[str, Any]) -> str:
        if "default_device" in fields:  # this machine's preset
            return str(fields["default_device"])
        return load_catalog().get(fields["cluster"]).cycles_device_for(fields["partition"])

    try:
        devices = {name: device(fields) for name, fields in recorded_presets(job).items()}
    except (TypeError, KeyError, AttributeError, BraasError):
        devices = {}
    if not devices:
        return "each preset's default"  # a job from before presets were recorded, or damaged
    if len(set(devices.values())) == 1:
        return next(iter(devices.values()))
    return ", ".join(f"{device} on {name}" for name, device in sorted(devices.items()))


def when(timestamp: float | None) -> str | None:
    """A store timestamp as local ISO time, to the second."""
    return datetime.fromtimestamp(timestamp).isoformat(timespec="seconds") if timestamp else None


def job_info(store: Store, job: JobRecord, warning: str | None = None,
             local_workers: int = 1) -> dict[str, Any]:
    states = frame_states(job, store)
    by_state: dict[str, list[int]] = {}
    for frame, state in sorted(states.items()):
        by_state.setdefault(state, []).append(frame)
    tasks = store.tasks(job.id)
    failed = [{"frame": r["frame"], "task": r["task_idx"], "reason": r["reason"]}
              for r in store.frames(job.id) if r["state"] == "FAILED" and r["frame"] in states]
    progress = read_progress(JobScope.of(job, tasks))
    spec = job.spec
    split = split_still(job) if job.split else None  # its merge record, read once
    return {
        "id": job.id,
        "project": job.project,
        "state": job.state.value,
        "preset": job.preset,
        "backend": job.backend,
        "folder": str(job.folder),
        "scene": spec["scene"],
        "submitted": when(job.created),
        "started": when(job.started),
        "ended": when(job.ended),
        "parameters": spec,
        # Settings over the scene's: what the worker applies (each absent: the scene's).
        "render": {**render_settings(spec),
                   **({"frame_step": spec["frame_step"]} if spec.get("frame_step") else {})},
        "resources": {
            "tasks": len(tasks),
            "device": spec["device"] or preset_devices(job),
            "walltime_minutes": spec["walltime_minutes"],
            "max_jobs": spec["max_jobs"],
            "task_minutes": spec.get("task_minutes"),
            "sizing": read_sizing(job.folder) if spec.get("task_minutes") else None,
            "blender": job.blender,
        },
        "frames": {
            "total": job.frame_count,
            "done": len(by_state.get("DONE", [])),
            "failed": len(by_state.get("FAILED", [])),
            "by_state": {state: format_frames(frames) for state, frames in by_state.items()},
        },
        "progress": job_pace(job, len(by_state.get("DONE", []))),
        "cost": job_cost(store, job, local_workers),
        "failed_frames": failed,
        # Files the scene uses that were missing when it rendered (--allow-missing).
        "missing_files": sorted({r.file for r in progress.records
                                 if isinstance(r, MissingRecord)}),
        "tasks": [{"index": t.index, "preset": t.preset, "frames": t.frames,
                   "state": t.state.value,
                   "scout": t.scout, "attempts": t.attempts, "max_attempts": t.max_attempts,
                   "started": when(t.started), "ended": when(t.ended), "reason": t.reason}
                  for t in tasks],
        "last_frame": split["still"] if split else last_frame(store, job, states),
        # What the job's frames are: a still split by samples renders parts.
        "unit": job.unit,
        "split": split,
        # Progress records left out: not what a worker writes, or not of this job.
        "rejected_records": {"count": progress.rejected.count,
                             "reasons": progress.rejected.reasons},
        "warning": "; ".join(w for w in (warning, progress.rejected.note()) if w) or None,
    }


def split_still(job: JobRecord) -> dict[str, Any]:
    """A still split by samples: its parts, the samples each renders, and its merge (the
    record, and the merged still once it is a whole image)."""
    assert job.split is not None
    parts, samples = job.split, int(job.spec["samples"])
    each = job_layout.part_samples(samples, parts)
    still = merged_file(job.folder)
    return {"frame": job.still_frame, "parts": parts, "samples_each": each,
            "samples_total": each * parts, "adaptive_sampling": False, "denoised": False,
            "merge": read_record(job.folder),
            "still": {"frame": job.still_frame, "file": str(still)} if still else None}


def last_frame(store: Store, job: JobRecord,
               states: dict[int, str]) -> dict[str, Any] | None:
    """The frame done last, and its file only if that is inside the job's out/ and there
    (the add-on loads it as a preview)."""
    last = store.last_frame(job.id)
    if last is None or last["frame"] not in states:
        return None
    path = frame_path(job.folder, last["file"], last["frame"])
    return {"frame": last["frame"], "file": str(path) if path and path.is_file() else None}


def verify_download(job: JobRecord, destination: Path) -> dict[str, Any]:
    # A still split by samples: its merged still (the parts are its units of work).
    expected = {job.still_frame} if job.split else set(parse_frames(job.frames))
    valid = valid_frames_on_disk(destination / job_layout.OUT)
    missing = sorted(expected - set(valid))
    return {
        "id": job.id,
        "state": job.state.value,
        "folder": str(destination),
        "frames_dir": str(destination / job_layout.OUT),
        "frames_expected": len(expected),
        "frames_valid": len(expected & set(valid)),
        "missing": format_frames(missing),
    }


def progress_records(job_folder: Path) -> list[dict[str, Any]]:
    """The worker's records (job/progress/task-NNNN.jsonl) of the shapes it writes, oldest
    first; the ones a job uses are also checked against its tasks (records.read_progress)."""
    return [r.model_dump() for r in read_progress(JobScope(job_folder)).records]
