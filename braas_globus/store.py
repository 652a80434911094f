"""The job store: jobs, their tasks, and the frames done or failed, in SQLite.

Every change is one transaction, so a process killed at any point leaves a store
that reads consistently; WAL lets the CLI read while a runner writes. Planning
writes one row per task: frame rows appear only as frames are rendered, so a
10,000-frame job costs a handful of rows to plan.

Opening reads: the layout is written only into a new store, so `list`, `info` and
`logs` work on a full disk (read-only, when SQLite cannot even make its shared-memory
file). Every SQLite error that is the disk's or the file's fault (full, damaged, locked,
unreadable) becomes one ``StoreError`` line that says what to do, wherever it is met:
the connection itself translates them (``_GuardedConnection``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from .disk import disk_full_error, disk_is_full, is_disk_full_error
from .errors import NotFoundError, RunError, UsageError
from .plan import PlannedTask
from .states import JobState, TaskState, job_state
from .worker import job_layout

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


#: Every column of each table, as ``Store.restore_job`` writes them.
RESTORED_COLUMNS = {
    "jobs": ("id", "project", "preset", "backend", "spec", "frames", "frame_count", "folder",
             "created", "canceled", "runner_pid", "blender", "entry"),
    "tasks": ("job_id", "idx", "frames", "frame_count", "scout", "preset", "state", "attempts",
              "max_attempts", "backend_id", "started", "ended", "reason"),
    "frames": ("job_id", "frame", "state", "task_idx", "file", "seconds", "reason", "updated"),
}


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


# --- what went wrong with the store, in one line ------------------------------------------

REBUILD_HINT = ("`braas-globus store check` lists what is wrong, and `braas-globus store "
                "rebuild` rebuilds the store from the job folders (it keeps this file)")


class StoreError(RunError):
    """The job store cannot be used as it is; ``kind`` says why: full, damaged, empty,
    locked or unreadable. The message is one line: ``what`` is wrong, then what to do."""

    def __init__(self, kind: str, what: str, todo: str) -> None:
        super().__init__(f"{what}: {todo}")
        self.kind, self.what = kind, what


def store_error(err: sqlite3.Error, path: Path, read_only: bool = False) -> StoreError | None:
    """The one line for an SQLite error that is the disk's or the file's fault; None for
    the rest (our own bugs: they keep their traceback for the crash report)."""
    name = getattr(err, "sqlite_errorname", "") or ""
    text = str(err)
    folder = path.parent
    if name.startswith("SQLITE_FULL") or "disk is full" in text or \
            (read_only and name.startswith("SQLITE_READONLY")) or \
            ((name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) or "I/O error" in text)
             and disk_is_full(path)):
        changed = "can be read but not changed" if read_only else "cannot be written"
        return StoreError("full", f"the disk holding {folder} is full, so the job store {path} "
                                  f"{changed}", "free space there, then retry (nothing in the "
                                                "store was changed)")
    if name.startswith("SQLITE_NOTADB") or "not a database" in text:
        return StoreError("damaged", f"{path} is not a braas-globus job store ({text}); it may "
                                     "be damaged", REBUILD_HINT)
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text or "no such table" in text:
        return StoreError("damaged", f"the job store {path} is damaged ({text})", REBUILD_HINT)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreError("locked", f"the job store {path} stayed locked by another braas-globus "
                                    f"process for 30 s ({text})", "retry in a moment")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_READONLY", "SQLITE_AUTH")) \
            or "unable to open" in text or "readonly" in text:
        return StoreError("unreadable", f"cannot open the job store {path} ({text})",
                          f"check that {folder} exists and that you may read and write it")
    if name.startswith("SQLITE_IOERR") or "I/O error" in text:
        return StoreError("unreadable", f"the disk holding the job store {path} failed ({text})",
                          f"check the disk, then {REBUILD_HINT}")
    return None


class _GuardedCursor(sqlite3.Cursor):
    """A cursor whose disk and file errors are StoreError lines (see store_error)."""

    def execute(self, *args):
        with self.connection.translated_errors():
            return super().execute(*args)

    def executemany(self, *args):
        with self.connection.translated_errors():
            return super().executemany(*args)

    def fetchone(self):
        with self.connection.translated_errors():
            return super().fetchone()

    def fetchmany(self, *args):
        with self.connection.translated_errors():
            return super().fetchmany(*args)

    def fetchall(self):
        with self.connection.translated_errors():
            return super().fetchall()

    def __next__(self):
        with self.connection.translated_errors():
            return super().__next__()


class _GuardedConnection(sqlite3.Connection):
    """The store's connection: damage met by any later query (a bad page is found only when
    it is read) is the same one line as damage met at open, never a traceback."""

    store_path: Path = Path("jobs.sqlite")
    read_only = False

    @contextmanager
    def translated_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            translated = store_error(err, self.store_path, self.read_only)
            if translated is None:
                raise
            raise translated from None

    def cursor(self, factory=_GuardedCursor):
        return super().cursor(factory)

    def execute(self, *args):  # sqlite3's own execute would not use our cursor()
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)


def _connect(path: Path, read_only: bool = False) -> _GuardedConnection:
    """A connection to the store. ``read_only`` is for a full disk: ``immutable`` reads the
    file as it is, without the shared-memory file SQLite cannot create there (the file was
    checkpointed when its last writer closed, which is when that file is missing)."""
    target = f"{path.resolve().as_uri()}?mode=ro&immutable=1" if read_only else str(path)
    db = sqlite3.connect(target, uri=read_only, timeout=30, isolation_level=None,
                         check_same_thread=False, factory=_GuardedConnection)
    db.store_path, db.read_only = path, read_only
    db.row_factory = sqlite3.Row
    return db


def connect_read_only(path: Path) -> _GuardedConnection:
    """A connection that never writes to the store (``store check``): a plain read-only one,
    or, on a full disk, one that reads the file as it is."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                             isolation_level=None, factory=_GuardedConnection)
        db.store_path, db.row_factory = path, sqlite3.Row
        db.execute("PRAGMA user_version").fetchone()  # reading is what can fail
        return db
    except StoreError as err:
        if err.kind != "full":
            raise
        return _connect(path, read_only=True)


def job_folders(jobs_dir: Path) -> list[Path]:
    """The job folders under ``jobs_dir``: those a submit got as far as describing."""
    if not jobs_dir.is_dir():
        return []
    return sorted(p for p in jobs_dir.iterdir() if (p / job_layout.SPEC).is_file())


class Store:
    def __init__(self, path: Path, *, refuse_empty_beside_jobs: bool = True) -> None:
        """Open (or start) the store at ``path``; StoreError if it cannot be used.

        A store that is missing or empty while the jobs folder beside it (``Settings.jobs_dir``
        is ``BRAAS_HOME/jobs``, the store ``BRAAS_HOME/jobs.sqlite``) holds job folders is
        refused: starting it empty would orphan those jobs (``store rebuild`` is the way).
        """
        self.path = path
        # One connection, shared by the local runner's task threads: one transaction at a
        # time (a second BEGIN on it fails with "cannot start a transaction within a
        # transaction").
        self._writing = threading.RLock()
        new = not path.exists() or path.stat().st_size == 0
        if new and refuse_empty_beside_jobs:
            self._refuse_empty_beside_jobs(path.with_name(job_layout.JOBS))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if is_disk_full_error(err):
                raise disk_full_error(err) from None
            raise StoreError("unreadable", f"cannot make the folder of the job store {path} "
                                           f"({err})", "check that you may write there") from None
        try:
            self._open(new, read_only=False)
        except StoreError as err:
            if err.kind != "full" or new:
                raise
            self._open(new=False, read_only=True)  # a full disk: reading still works

    @property
    def read_only(self) -> bool:
        return self.db.read_only

    def _refuse_empty_beside_jobs(self, jobs_dir: Path) -> None:
        folders = job_folders(jobs_dir)
        if folders:
            state = "empty" if self.path.exists() else "missing"
            raise StoreError("empty", f"the job store {self.path} is {state}, but {jobs_dir} "
                                      f"holds {len(folders)} job folder(s)",
                             "`braas-globus store rebuild` brings their records back (starting "
                             "an empty store would orphan them)")

    def _open(self, new: bool, read_only: bool) -> None:
        """Connect, check the layout, and write it only where it is missing (a new store)."""
        self.db = _connect(self.path, read_only)
        try:
            self._set_up(new)
        except BaseException:
            self.db.close()
            raise

    def _set_up(self, new: bool) -> None:
        version = self._check_version()  # first: even switching to WAL writes to the file
        if self.read_only:
            return
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")  # stored in the file: once
        self.db.execute("PRAGMA foreign_keys=ON")  # these two: this connection only
        self.db.execute("PRAGMA synchronous=NORMAL")
        if new or version < SCHEMA_VERSION:
            with self.transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_version(self) -> int:
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
        return version

    def _table_columns(self, table: str) -> set[str]:
        return {row["name"] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:  # opened on a full disk: say so before trying
            err = store_error(sqlite3.OperationalError("attempt to write a readonly database"),
                              self.path, read_only=True)
            assert err is not None  # "readonly" in the text: always a StoreError
            raise err
        with self._writing:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")  # on a full disk this is what fails
            except BaseException:
                if self.db.in_transaction:  # SQLite may have rolled back already
                    with suppress(StoreError):
                        self.db.execute("ROLLBACK")
                raise

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

    def restore_job(self, job: dict, tasks: list[dict], frames: list[dict]) -> None:
        """Record a job rebuilt from its folder (``store rebuild``), in one transaction.

        Each dict holds its table's columns by name (``spec`` and ``blender`` as dicts);
        ``job_id`` of the tasks and frames is the job's.
        """
        rows = {"jobs": [{**job, "spec": json.dumps(job["spec"]),
                          "blender": json.dumps(job["blender"]) if job.get("blender") else None,
                          "folder": str(job["folder"])}],
                "tasks": [{**task, "job_id": job["id"]} for task in tasks],
                "frames": [{**frame, "job_id": job["id"]} for frame in frames]}
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job["id"],)).fetchone():
                raise JobIdTaken(job["id"])
            for table, columns in RESTORED_COLUMNS.items():
                db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                               f"({', '.join('?' * len(columns))})",
                               [tuple(row.get(c) for c in columns) for row in rows[table]])

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
