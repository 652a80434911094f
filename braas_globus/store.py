"""The job store: jobs, their tasks, and the frames done or failed, in SQLite.

Every change is one transaction, so a process killed at any point leaves a store
that reads consistently; WAL lets the CLI read while a runner writes. Planning
writes one row per task: frame rows appear only as frames are rendered, so a
10,000-frame job costs a handful of rows to plan.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import NotFoundError, RunError, UsageError
from .plan import PlannedTask
from .states import JobState, TaskState, job_state

#: The layout below; stored in the file's PRAGMA user_version. Bump it with any change to
#: the tables, and teach ``Store._check_version`` to read or refuse the older layouts.
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    preset TEXT NOT NULL,
    backend TEXT NOT NULL,
    spec TEXT NOT NULL,            -- the JobSpec as JSON
    frames TEXT NOT NULL,          -- normalised frame spec of the whole job
    frame_count INTEGER NOT NULL,
    folder TEXT NOT NULL,
    created REAL NOT NULL,
    canceled INTEGER NOT NULL DEFAULT 0,
    runner_pid INTEGER,
    blender TEXT,                  -- how tasks start Blender (JSON)
    entry TEXT                     -- the staged .blend, relative to the job folder
);
CREATE TABLE IF NOT EXISTS tasks (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    frames TEXT NOT NULL,
    frame_count INTEGER NOT NULL,
    scout INTEGER NOT NULL DEFAULT 0,
    preset TEXT NOT NULL,          -- where this task renders (a job may fan out)
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backend_id TEXT,
    started REAL,
    ended REAL,
    reason TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS frames (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    state TEXT NOT NULL,           -- DONE or FAILED
    task_idx INTEGER NOT NULL,
    file TEXT,
    seconds REAL,
    reason TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (job_id, frame)
);
"""


@dataclass(frozen=True)
class TaskRecord:
    job_id: str
    index: int
    frames: str
    frame_count: int
    scout: bool
    preset: str
    state: TaskState
    attempts: int
    max_attempts: int
    backend_id: str | None
    started: float | None
    ended: float | None
    reason: str | None


@dataclass(frozen=True)
class JobRecord:
    id: str
    project: str
    preset: str
    backend: str
    spec: dict
    frames: str
    frame_count: int
    folder: Path
    created: float
    canceled: bool
    runner_pid: int | None
    blender: dict | None
    entry: str | None
    state: JobState
    started: float | None
    ended: float | None
    frames_done: int
    frames_failed: int


class JobIdTaken(Exception):
    """Another submit recorded a job with this id first."""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        # One connection, shared by the local runner's task threads: one transaction at a
        # time (a second BEGIN on it fails with "cannot start a transaction within a
        # transaction").
        self._writing = threading.RLock()
        try:
            self._check_version()  # first: even switching to WAL writes to the file
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self.transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise RunError(f"{path} is not a braas-globus job store ({err}); move it aside "
                           "and braas-globus starts a new one") from None
        except RunError:
            self.db.close()
            raise

    def _check_version(self) -> None:
        """Refuse a store this version cannot read, before anything is written to it."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RunError(f"the job store {self.path} was written by a newer braas-globus "
                           f"(layout {version}; this one reads {SCHEMA_VERSION}): upgrade "
                           "braas-globus")
        if version == 0 and self._table_columns("jobs"):
            # Written before the layout was versioned: readable only if it already has
            # every column of layout 1 (the tasks.preset column came last).
            if "preset" not in self._table_columns("tasks"):
                raise RunError(f"the job store {self.path} was written by an early "
                               "braas-globus whose tasks have no preset column; move it aside "
                               "(its jobs' frames stay in their folders) and braas-globus "
                               "starts a new one")

    def _table_columns(self, table: str) -> set[str]:
        return {row["name"] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._writing:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # --- jobs -------------------------------------------------------------------------
    def create_job(self, *, job_id: str, project: str, preset: str, backend: str, spec: dict,
                   frames: str, frame_count: int, folder: Path) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise JobIdTaken(job_id)
            db.execute(
                "INSERT INTO jobs (id, project, preset, backend, spec, frames, frame_count,"
                " folder, created) VALUES (?,?,?,?,?,?,?,?,?)",
                (job_id, project, preset, backend, json.dumps(spec), frames, frame_count,
                 str(folder), time.time()))

    def delete_job(self, job_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def add_tasks(self, job_id: str, tasks: list[PlannedTask], max_attempts: int,
                  blender: dict, entry: str, presets: list[str] | None = None) -> None:
        """Record the plan in one transaction: the job leaves CONFIGURING all at once."""
        job_preset = self.db.execute("SELECT preset FROM jobs WHERE id = ?",
                                     (job_id,)).fetchone()[0]
        presets = presets or [job_preset] * len(tasks)
        with self.transaction() as db:
            db.execute("DELETE FROM tasks WHERE job_id = ?", (job_id,))
            db.executemany(
                "INSERT INTO tasks (job_id, idx, frames, frame_count, scout, preset, state,"
                " max_attempts) VALUES (?,?,?,?,?,?,?,?)",
                [(job_id, t.index, t.frames, t.frame_count, int(t.scout), preset,
                  TaskState.QUEUED, max_attempts) for t, preset in zip(tasks, presets)])
            db.execute("UPDATE jobs SET blender = ?, entry = ? WHERE id = ?",
                       (json.dumps(blender), entry, job_id))

    def resolve_job_id(self, text: str) -> str:
        """A full job id, or a unique prefix of one."""
        rows = self.db.execute("SELECT id FROM jobs WHERE id = ? OR id LIKE ? ESCAPE '\\'",
                               (text, _like_prefix(text))).fetchall()
        ids = [r["id"] for r in rows]
        if text in ids:
            return text
        if not ids:
            raise NotFoundError(f"no job '{text}'; `braas-globus list` shows your jobs")
        if len(ids) > 1:
            raise UsageError(f"'{text}' matches {len(ids)} jobs; give more of the id")
        return ids[0]

    def job(self, job_id: str) -> JobRecord:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job '{job_id}'")
        return self._job_record(row)

    def jobs(self) -> list[JobRecord]:
        rows = self.db.execute("SELECT * FROM jobs ORDER BY created").fetchall()
        return [self._job_record(row) for row in rows]

    def _job_record(self, row: sqlite3.Row) -> JobRecord:
        tasks = self.tasks(row["id"])
        counts = dict(self.db.execute(
            "SELECT state, count(*) FROM frames WHERE job_id = ? GROUP BY state",
            (row["id"],)).fetchall())
        state = job_state((t.state for t in tasks), canceled=bool(row["canceled"]))
        starts = [t.started for t in tasks if t.started]
        ends = [t.ended for t in tasks if t.ended]
        return JobRecord(
            id=row["id"], project=row["project"], preset=row["preset"], backend=row["backend"],
            spec=json.loads(row["spec"]), frames=row["frames"], frame_count=row["frame_count"],
            folder=Path(row["folder"]), created=row["created"], canceled=bool(row["canceled"]),
            runner_pid=row["runner_pid"],
            blender=json.loads(row["blender"]) if row["blender"] else None,
            entry=row["entry"],
            state=state, started=min(starts) if starts else None,
            ended=max(ends) if state.is_final and ends else None,
            frames_done=counts.get("DONE", 0), frames_failed=counts.get("FAILED", 0))

    def set_runner(self, job_id: str, pid: int | None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET runner_pid = ? WHERE id = ?", (pid, job_id))

    def mark_canceled(self, job_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET canceled = 1 WHERE id = ?", (job_id,))
            db.execute("UPDATE tasks SET state = ?, ended = coalesce(ended, ?), reason = ?"
                       " WHERE job_id = ? AND state IN (?, ?)",
                       (TaskState.CANCELED, time.time(), "canceled by the user", job_id,
                        TaskState.QUEUED, TaskState.RUNNING))

    def reopen(self, job_id: str, task_indexes: list[int]) -> None:
        """Queue these tasks again with fresh tries (resume): frames already done are kept."""
        with self.transaction() as db:
            db.execute("UPDATE jobs SET canceled = 0 WHERE id = ?", (job_id,))
            db.executemany(
                "UPDATE tasks SET state = ?, attempts = 0, started = NULL, ended = NULL,"
                " reason = NULL WHERE job_id = ? AND idx = ?",
                [(TaskState.QUEUED, job_id, i) for i in task_indexes])
            db.execute("DELETE FROM frames WHERE job_id = ? AND state = 'FAILED'", (job_id,))

    # --- tasks ------------------------------------------------------------------------
    def tasks(self, job_id: str, preset: str | None = None) -> list[TaskRecord]:
        """The job's tasks, or those that ``preset`` runs."""
        rows = self.db.execute(
            "SELECT * FROM tasks WHERE job_id = ? AND preset = coalesce(?, preset) ORDER BY idx",
            (job_id, preset)).fetchall()
        return [TaskRecord(job_id=r["job_id"], index=r["idx"], frames=r["frames"],
                           frame_count=r["frame_count"], scout=bool(r["scout"]),
                           preset=r["preset"],
                           state=TaskState(r["state"]), attempts=r["attempts"],
                           max_attempts=r["max_attempts"], backend_id=r["backend_id"],
                           started=r["started"], ended=r["ended"], reason=r["reason"])
                for r in rows]

    def start_task(self, job_id: str, index: int, backend_id: str | None = None) -> int:
        """Mark a task RUNNING as a new attempt; returns the attempt number."""
        with self.transaction() as db:
            db.execute("UPDATE tasks SET state = ?, attempts = attempts + 1,"
                       " started = coalesce(started, ?), ended = NULL, backend_id = ?"
                       " WHERE job_id = ? AND idx = ?",
                       (TaskState.RUNNING, time.time(), backend_id, job_id, index))
            return db.execute("SELECT attempts FROM tasks WHERE job_id = ? AND idx = ?",
                              (job_id, index)).fetchone()[0]

    def end_task(self, job_id: str, index: int, state: TaskState, reason: str = "") -> None:
        with self.transaction() as db:
            db.execute("UPDATE tasks SET state = ?, ended = ?, reason = ?"
                       " WHERE job_id = ? AND idx = ? AND state != ?",
                       (state, time.time() if state.is_final else None, reason or None,
                        job_id, index, TaskState.CANCELED))

    def settle_attempt(self, job_id: str, index: int, state: TaskState, reason: str = "") -> bool:
        """End one attempt of a task: queue it again while tries remain, else end it.

        A scout task that ends without finishing cancels the queued tasks of its preset,
        so the rest of the job is not rendered. True when the task was queued again.
        """
        task = next(t for t in self.tasks(job_id) if t.index == index)
        if state in (TaskState.FAILED, TaskState.TIMEOUT) and task.attempts < task.max_attempts:
            self.end_task(job_id, index, TaskState.QUEUED,
                          f"attempt {task.attempts} {state.lower()}: {reason}")
            return True
        self.end_task(job_id, index, state, reason)
        if task.scout and state is not TaskState.FINISHED:
            for other in self.tasks(job_id, preset=task.preset):
                if other.state is TaskState.QUEUED:
                    self.end_task(job_id, other.index, TaskState.CANCELED,
                                  "not rendered: the scout frames failed")
        return False

    # --- frames -----------------------------------------------------------------------
    def record_frame(self, job_id: str, frame: int, task_index: int, *, done: bool,
                     file: str | None = None, seconds: float | None = None,
                     reason: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO frames (job_id, frame, state, task_idx, file, seconds, reason,"
                " updated) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (job_id, frame) DO UPDATE SET"
                " state = excluded.state, task_idx = excluded.task_idx, file = excluded.file,"
                " seconds = excluded.seconds, reason = excluded.reason,"
                " updated = excluded.updated",
                (job_id, frame, "DONE" if done else "FAILED", task_index, file, seconds,
                 reason, time.time()))

    def frames(self, job_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM frames WHERE job_id = ? ORDER BY frame",
                               (job_id,)).fetchall()

    def last_frame(self, job_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM frames WHERE job_id = ? AND state = 'DONE'"
                               " ORDER BY updated DESC LIMIT 1", (job_id,)).fetchone()


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
