"""Check the job store against the job folders, and rebuild it from them.

Every job folder describes its job (``service.submit`` writes ``job/spec.json`` and
``job/presets.json``, ``_configure`` the manifest, the runner ``job/tasks/task-*.json``,
the worker ``job/progress/task-*.jsonl``) and holds its frames (``out/``), so a lost or
damaged store can be rebuilt from them (each job as ``store_from_folder`` reads it back):
frames whose file is a whole image are DONE, everything else stays for ``braas-globus
resume``. The damaged store is moved aside, never deleted. What a rebuild cannot know
(Globus task ids, the exact tries) is lost; a task that was not known to have finished
is FAILED, so nothing is sent twice.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .disk import DiskFullError, is_disk_full_error
from .errors import BraasError, RunError
from .settings import Settings
from .store import SCHEMA_VERSION, Store, StoreError, connect_read_only, job_folders
from .store_from_folder import rebuild_job
from .store_sqlite import GuardedConnection
from .worker import job_layout

__all__ = ["CheckReport", "RebuildReport", "check_store", "rebuild_job", "rebuild_store"]


# --- check --------------------------------------------------------------------------

@dataclass
class CheckReport:
    store: Path
    jobs_dir: Path
    records: int = 0
    folders: int = 0
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"store": str(self.store), "jobs_dir": str(self.jobs_dir), "ok": not self.problems,
                "records": self.records, "folders": self.folders, "problems": self.problems}


def check_store(settings: Settings) -> CheckReport:
    """SQLite's integrity check, and a record for every job folder and a folder for every
    record. Reads only: the store is opened read-only."""
    path = settings.store_path
    report = CheckReport(path, settings.jobs_dir)
    records: dict[str, Path] = {}
    if not path.exists() or path.stat().st_size == 0:
        report.problems.append(f"the job store {path} is {'empty' if path.exists() else 'missing'}")
    else:
        try:
            db = connect_read_only(path)
        except StoreError as err:
            report.problems.append(err.what)
        else:
            try:
                records = _check_database(db, report)
            finally:
                db.close()
    folders = {folder.name: folder for folder in job_folders(settings.jobs_dir)}
    report.records, report.folders = len(records), len(folders)
    report.problems += [f"job folder {folders[name]} has no record in the store"
                        for name in sorted(folders.keys() - records.keys())]
    report.problems += [f"job {job_id} has a record but no folder ({folder})"
                        for job_id, folder in sorted(records.items()) if not folder.is_dir()]
    return report


def _check_database(db: GuardedConnection, report: CheckReport) -> dict[str, Path]:
    """Add what is wrong inside the database to ``report``; return its jobs' folders."""
    try:
        version = db.pragma("user_version").integer(0)
        if version > SCHEMA_VERSION:
            report.problems.append(f"the job store {report.store} was written by a newer "
                                   f"braas-globus (layout {version}): upgrade braas-globus")
            return {}
        found = [row.text(0) for row in db.query("PRAGMA integrity_check(20)")]
        if found != ["ok"]:
            report.problems += [f"the job store {report.store} is damaged: {line}"
                                for line in found]
        return {row.text("id"): Path(row.text("folder"))
                for row in db.query("SELECT id, folder FROM jobs")}
    except StoreError as err:
        report.problems.append(err.what)
        return {}


# --- rebuild ------------------------------------------------------------------------

@dataclass
class RebuildReport:
    store: Path
    moved_aside: list[Path] = field(default_factory=list)
    # Each job: id, state, frames_done, frame_count; each skipped folder: folder, reason.
    jobs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"store": str(self.store), "moved_aside": [str(p) for p in self.moved_aside],
                "jobs": self.jobs, "skipped": self.skipped}


def rebuild_store(settings: Settings) -> RebuildReport:
    """Build a new store from the job folders, then swap it in; the old one is kept as
    ``<store>.damaged-<time>``. A failure on the way (a full disk) leaves the old store
    where it was and no half-built one."""
    store_path = settings.store_path
    folders = job_folders(settings.jobs_dir)
    rendering = [folder.name for folder in folders if _runner_holds(folder)]
    if rendering:
        raise RunError(f"job {rendering[0]} is still rendering here (its runner holds "
                       f"job/runner.lock): rebuild the store once it has ended")
    report = RebuildReport(store_path)
    building = store_path.with_name(store_path.name + ".rebuilding")
    _remove_database(building)  # what a rebuild that failed before left
    try:
        store = Store(building, refuse_empty_beside_jobs=False)
        try:
            for folder in folders:
                try:
                    job, tasks, frames = rebuild_job(folder, settings)
                except (ValueError, KeyError, TypeError, BraasError, OSError) as err:
                    if isinstance(err, (DiskFullError, StoreError)) or is_disk_full_error(err):
                        raise
                    report.skipped.append({"folder": str(folder), "reason": str(err)})
                    continue
                store.restore_job(job, tasks, frames)
                record = store.job(job["id"])
                report.jobs.append({"id": record.id, "state": record.state.value,
                                    "frames_done": record.frames_done,
                                    "frame_count": record.frame_count})
        finally:
            store.close()  # the last connection: SQLite folds its WAL into the file
        if Path(f"{building}-wal").exists():
            raise RunError(f"could not finish writing the rebuilt store {building} (its "
                           "write-ahead log is left): free space there, then retry")
        report.moved_aside = _move_aside(store_path)
        os.replace(building, store_path)
    except BaseException:
        _remove_database(building)
        raise
    _remove_database(building)  # a stray shared-memory file
    return report


def _runner_holds(folder: Path) -> bool:
    """Does a local runner hold this job's lock (it renders, and writes the store)?"""
    lock = folder / job_layout.RUNNER_LOCK
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _move_aside(store_path: Path) -> list[Path]:
    """Rename the store and its WAL files to ``<store>.damaged-<time>``: kept, never deleted.

    The WAL files go with it: left behind, SQLite would replay them into the new store.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = store_path.with_name(f"{store_path.name}.damaged-{stamp}")
    count = 1
    while Path(aside).exists():
        count += 1
        aside = store_path.with_name(f"{store_path.name}.damaged-{stamp}-{count}")
    moved = []
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{store_path}{suffix}")
        if source.exists():
            target = Path(f"{aside}{suffix}")
            os.replace(source, target)
            moved.append(target)
    return moved
