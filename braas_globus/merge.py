"""A still split by samples (``submit --split N``): its parts merged into the still.

Each part is a multilayer EXR in ``out/parts/`` (job_layout.part_name), rendered by a task
like a frame. Once every part is in, they are merged on this machine, in a Blender
subprocess (``blender_scripts/merge_parts.py``), into the still's own ``out/NNNNNN.ext`` in
the job's output format, and records the merge in ``job/merge.json`` (by the job's runner for a job of this
machine's alone; for parts rendered at a centre, by the service once a refresh finds every
part rendered and has downloaded them): the job is FINISHED
only once that record says so and the still is a whole image. A failed merge is FAILED
with its reason, the parts kept; ``resume`` merges again.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blender_scripts import MERGE_PARTS
from .spec import render_settings
from .states import TaskState
from .worker import job_layout
from .worker.image_check import is_valid_image
from .worker.render_task import blender_argv, render_args

if TYPE_CHECKING:
    from .store import JobRecord, TaskRecord

MERGE_TIMEOUT = 3600.0  # seconds: merging is file work, a few seconds even for big stills
MAX_RECORD_BYTES = 64 << 10
_REPORT = re.compile(r"BRAAS_(MERGED|FATAL) (\{.*\})")


def read_record(folder: Path) -> dict[str, Any] | None:
    """The job's merge record, or None (none yet, or not one this module wrote)."""
    path = folder / job_layout.MERGE
    try:
        if path.is_symlink() or path.stat().st_size > MAX_RECORD_BYTES:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("state") not in ("FINISHED", "FAILED"):
        return None
    return record


def valid_parts_on_disk(parts_dir: Path) -> dict[int, Path]:
    """Part number -> file, for every complete part of a split still in ``parts_dir``."""
    if not parts_dir.is_dir():
        return {}
    return {part: path for path in parts_dir.iterdir()
            if (part := job_layout.part_of_name(path.name)) is not None
            and not path.is_symlink() and path.is_file() and is_valid_image(path)}


def merged_file(folder: Path) -> Path | None:
    """The merged still, if the record says it was written and it is a whole image in out/."""
    record = read_record(folder)
    if record is None or record["state"] != "FINISHED" or not isinstance(record.get("file"),
                                                                         str):
        return None
    name = Path(record["file"]).name
    if job_layout.FRAME_NAME.fullmatch(name) is None:
        return None
    path = folder / job_layout.OUT / name
    return path if not path.is_symlink() and is_valid_image(path) else None


def merge_state(folder: Path) -> str | None:
    """FINISHED (the still is there), FAILED (the merge failed), or None (not merged yet)."""
    if merged_file(folder) is not None:
        return "FINISHED"
    record = read_record(folder)
    return "FAILED" if record is not None and record["state"] == "FAILED" else None


def ready(job: JobRecord, tasks: list[TaskRecord]) -> bool:
    """Every part of a split still rendered and none merged yet (a failed merge waits for
    ``resume``, which clears it), the job not canceled."""
    return bool(job.split) and not job.canceled and job.blender is not None and bool(tasks) \
        and all(t.state is TaskState.FINISHED for t in tasks) and merge_state(job.folder) is None


def merge_once(job: JobRecord, blender: dict[str, Any],
               stage_scene: Callable[[], None] | None = None) -> dict[str, Any] | None:
    """``merge_parts`` under the job's merge lock: None when another process merges the
    parts now, or just did (a `follow` and the add-on may refresh the job at once).
    ``stage_scene`` lays out the staged scene the merge loads where the job folder lacks it
    (parts from a centre), under the same lock."""
    with (job.folder / job_layout.MERGE_LOCK).open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if merge_state(job.folder) is not None:
            return None
        if stage_scene is not None and job.entry is not None \
                and not (job.folder / job.entry).is_file():
            try:
                stage_scene()
            except (OSError, ValueError, KeyError) as err:
                record: dict[str, Any] = {
                    "state": "FAILED", "reason": "cannot merge the still: its staged scene "
                    f"is no longer on this machine ({err})"}
                write_record(job.folder, record)
                return record
        return merge_parts(job, blender)


def needed(job: JobRecord) -> bool:
    return merged_file(job.folder) is None


def forget_failure(job: JobRecord) -> None:
    """Clear a failed merge's record, so that the runner merges again."""
    if merge_state(job.folder) != "FINISHED":
        (job.folder / job_layout.MERGE).unlink(missing_ok=True)


def write_record(folder: Path, record: dict[str, Any]) -> None:
    path = folder / job_layout.MERGE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def merge_parts(job: JobRecord, blender: dict[str, Any]) -> dict[str, Any]:
    """Merge the job's parts into its still and record how it went (the record)."""
    started = time.monotonic()
    parts = valid_parts_on_disk(job.folder / job_layout.PARTS)
    assert job.split is not None
    wanted = range(1, job.split + 1)
    missing = [part for part in wanted if part not in parts]
    if missing or job.entry is None:
        why = f"parts {missing} are not rendered" if missing else "the job has no scene"
        record: dict[str, Any] = {"state": "FAILED", "reason": f"cannot merge the still: {why}"}
        write_record(job.folder, record)
        return record
    args = ["--scene", str(job.folder / job.entry), "--out", str(job.folder / job_layout.OUT),
            "--frame", str(job.still_frame)]
    for part in wanted:
        args += ["--part", str(parts[part])]
    args += render_args(dict(render_settings(job.spec)))
    argv = blender_argv(blender, MERGE_PARTS, args)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=MERGE_TIMEOUT, stdin=subprocess.DEVNULL,
                              cwd=job.folder)
        output = done.stdout + done.stderr
        code: int | None = done.returncode
    except subprocess.TimeoutExpired:
        output, code = "", None
    except OSError as err:
        output, code = f"BRAAS_FATAL {json.dumps({'reason': str(err)})}", 1
    (job.folder / job_layout.LOG / job_layout.MERGE_LOG).write_text(output, encoding="utf-8")
    reports = {m[1]: m[2] for line in output.splitlines() if (m := _REPORT.fullmatch(line))}
    seconds = round(time.monotonic() - started, 3)
    if code == 0 and "MERGED" in reports:
        merged = json.loads(reports["MERGED"])
        file = Path(merged["file"])
        record = {"state": "FINISHED", "reason": "",
                  "file": f"{job_layout.OUT}/{file.name}", "seconds": seconds,
                  "parts": len(parts), "denoised": merged.get("denoised") is True}
        write_record(job.folder, record)
        if merged_file(job.folder) is not None:
            return record
        reason = f"the merged still {file.name} is not a whole image"
    elif code is None:
        reason = f"Blender did not merge the parts in {MERGE_TIMEOUT:.0f} s"
    elif "FATAL" in reports:
        reason = str(json.loads(reports["FATAL"]).get("reason", ""))[:500]
    else:
        lines = [line for line in output.splitlines() if line.strip()]
        reason = (lines[-1] if lines else f"exit code {code}")[:500]
    record = {"state": "FAILED", "reason": f"the merge of the parts failed: {reason}",
              "seconds": seconds}
    write_record(job.folder, record)
    return record
