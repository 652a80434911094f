"""The job store: jobs, their tasks, and the frames done or failed, in SQLite.

Every change is one transaction, so a process killed at any point leaves a store
that reads consistently; WAL lets the CLI read while a runner writes. Planning
writes one row per task: frame rows appear only as frames are rendered, so a
10,000-frame job costs a handful of rows to plan.

Opening reads: the layout is written only into a new store, so `list`, `info` and
`logs` work on a full disk (read-only, when SQLite cannot even make its shared-memory
file). Every SQLite error that is the disk's or the file's fault (full, damaged, locked,
unreadable) becomes one ``StoreError`` line that says what to do, wherever it is met:
the connection itself translates them (``store_sqlite``; the tables, ``store_schema``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .disk import disk_full_error, is_disk_full_error
from .errors import NotFoundError, UsageError
from .plan import PlannedTask
from .states import JobState, TaskState, job_state

# SCHEMA, SCHEMA_VERSION, StoreError, store_error, REBUILD_HINT and connect_read_only are
# imported from here by other modules: re-exported (``X as X``) from where they live.
from .store_schema import RESTORED_COLUMNS, check_version, write_schema
from .store_schema import SCHEMA as SCHEMA
from .store_schema import SCHEMA_VERSION as SCHEMA_VERSION
from .store_sqlite import REBUILD_HINT as REBUILD_HINT
from .store_sqlite import Columns, GuardedConnection, connect, full_disk_error
from .store_sqlite import StoreError as StoreError
from .store_sqlite import connect_read_only as connect_read_only
from .store_sqlite import store_error as store_error
from .worker import job_layout
from .worker.frames import FrameSpecError, parse_frames


class _TaskStarted(Exception):
    """A task to be replaced started meanwhile (Store.replace_waiting_tasks)."""


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
    spec: dict[str, Any]
    frames: str
    frame_count: int
    folder: Path
    created: float
    canceled: bool
    runner_pid: int | None
    blender: dict[str, Any] | None
    entry: str | None
    state: JobState
    started: float | None
    ended: float | None
    frames_done: int
    frames_failed: int

    @property
    def split(self) -> int | None:
        """A still split by samples (``submit --split``): its number of parts, which are the
        job's units in place of frames; None for a job of frames."""
        parts = self.spec.get("split")
        return int(parts) if parts else None

    @property
    def unit(self) -> str:
        """What the job's units are called: ``parts`` of a split still, else ``frames``."""
        return "parts" if self.split else "frames"

    @property
    def still_frame(self) -> int:
        """A split still's frame (submit records it as the job's ``frames``)."""
        assert self.split, "only a split still has one frame"
        return int(self.spec["frames"])


class JobIdTaken(Exception):
    """Another submit recorded a job with this id first."""


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
        self.db = connect(self.path, read_only)
        try:
            self._set_up(new)
        except BaseException:
            self.db.close()
            raise

    def _set_up(self, new: bool) -> None:
        # Refuse a store this version cannot read first: even switching to WAL writes to it.
        version = check_version(self.db, self.path)
        if self.read_only:
            return
        if self.db.pragma("journal_mode").text(0) != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")  # stored in the file: once
        self.db.execute("PRAGMA foreign_keys=ON")  # these two: this connection only
        self.db.execute("PRAGMA synchronous=NORMAL")
        if new or version < SCHEMA_VERSION:
            with self.transaction() as db:
                write_schema(db)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[GuardedConnection]:
        if self.read_only:  # opened on a full disk: say so before trying
            raise full_disk_error(self.path, read_only=True)
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
    def create_job(self, *, job_id: str, project: str, preset: str, backend: str,
                   spec: dict[str, Any], frames: str, frame_count: int, folder: Path) -> None:
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
                  blender: dict[str, Any], entry: str, presets: list[str] | None = None
                  ) -> None:
        """Record the plan in one transaction: the job leaves CONFIGURING all at once."""
        job = self.db.query_one("SELECT preset FROM jobs WHERE id = ?", (job_id,))
        if job is None:
            raise NotFoundError(f"no job '{job_id}'")
        presets = presets or [job.text("preset")] * len(tasks)
        with self.transaction() as db:
            db.execute("DELETE FROM tasks WHERE job_id = ?", (job_id,))
            db.executemany(
                "INSERT INTO tasks (job_id, idx, frames, frame_count, scout, preset, state,"
                " max_attempts) VALUES (?,?,?,?,?,?,?,?)",
                [(job_id, t.index, t.frames, t.frame_count, int(t.scout), preset,
                  TaskState.QUEUED, max_attempts) for t, preset in zip(tasks, presets)])
            db.execute("UPDATE jobs SET blender = ?, entry = ? WHERE id = ?",
                       (json.dumps(blender), entry, job_id))

    def replace_waiting_tasks(self, job_id: str, waiting: list[int],
                              tasks: list[PlannedTask], preset: str, max_attempts: int
                              ) -> list[int] | None:
        """Put ``tasks`` in place of the ``waiting`` ones (queued, never tried), in one
        transaction: they take the waiting ones' numbers, then numbers after the job's
        last. None, and nothing changed, if one of them has started meanwhile (another
        process may start tasks); else the new tasks' numbers."""
        try:
            with self.transaction() as db:
                last = db.query_one("SELECT max(idx) AS last FROM tasks WHERE job_id = ?",
                                    (job_id,))
                after = (last.integer_or_none("last") if last else None) or 0
                for index in waiting:
                    if db.execute("DELETE FROM tasks WHERE job_id = ? AND idx = ? AND "
                                  "state = ? AND attempts = 0",
                                  (job_id, index, TaskState.QUEUED)).rowcount != 1:
                        raise _TaskStarted  # rolls the transaction back
                numbers = sorted(waiting)[:len(tasks)]
                numbers += range(after + 1, after + 1 + len(tasks) - len(numbers))
                db.executemany(
                    "INSERT INTO tasks (job_id, idx, frames, frame_count, scout, preset, "
                    "state, max_attempts) VALUES (?,?,?,?,?,?,?,?)",
                    [(job_id, number, t.frames, t.frame_count, int(t.scout), preset,
                      TaskState.QUEUED, max_attempts) for number, t in zip(numbers, tasks)])
                return numbers
        except _TaskStarted:
            return None

    def restore_job(self, job: dict[str, Any], tasks: list[dict[str, Any]],
                    frames: list[dict[str, Any]]) -> None:
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
        """A full job id, a unique prefix of one, or ``last`` (the job submitted last)."""
        if text == LAST_JOB:
            last = self.db.query_one("SELECT id FROM jobs ORDER BY created DESC, id DESC LIMIT 1")
            if last is None:
                raise NotFoundError("no jobs yet: `braas-globus demo` makes one")
            return last.text("id")
        rows = self.db.query("SELECT id FROM jobs WHERE id = ? OR id LIKE ? ESCAPE '\\'"
                             " ORDER BY id", (text, _like_prefix(text)))
        ids = [r.text("id") for r in rows]
        if text in ids:
            return text
        if not ids:
            raise NotFoundError(f"no job '{text}'; `braas-globus list` shows your jobs")
        if len(ids) > 1:
            shown = ", ".join(ids[:SHOWN_MATCHES])
            more = f" and {len(ids) - SHOWN_MATCHES} more" if len(ids) > SHOWN_MATCHES else ""
            raise UsageError(f"'{text}' matches {len(ids)} jobs: {shown}{more}; give more of "
                             "the id")
        return ids[0]

    def job(self, job_id: str) -> JobRecord:
        row = self.db.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFoundError(f"no job '{job_id}'")
        return self._job_record(row)

    def jobs(self) -> list[JobRecord]:
        return [self._job_record(row) for row in self.db.query("SELECT * FROM jobs ORDER BY "
                                                               "created")]

    def _job_record(self, row: Columns) -> JobRecord:
        job_id, frames = row.text("id"), row.text("frames")
        tasks = self.tasks(job_id)
        counts = self._frame_counts(job_id, frames)
        canceled = bool(row.integer("canceled"))
        state = job_state((t.state for t in tasks), canceled=canceled)
        spec = row.json_object("spec")
        if spec.get("split") and state is JobState.FINISHED:  # a still split by samples
            from .merge import merge_state  # FINISHED once its parts are merged

            state = JobState(merge_state(Path(row.text("folder"))) or JobState.RUNNING)
        starts = [t.started for t in tasks if t.started]
        ends = [t.ended for t in tasks if t.ended]
        return JobRecord(
            id=job_id, project=row.text("project"), preset=row.text("preset"),
            backend=row.text("backend"), spec=spec, frames=frames,
            frame_count=row.integer("frame_count"), folder=Path(row.text("folder")),
            created=row.real("created"), canceled=canceled,
            runner_pid=row.integer_or_none("runner_pid"),
            blender=row.json_object("blender") if row.text_or_none("blender") else None,
            entry=row.text_or_none("entry"),
            state=state, started=min(starts) if starts else None,
            ended=max(ends) if state.is_final and ends else None,
            frames_done=counts["DONE"], frames_failed=counts["FAILED"])

    def _frame_counts(self, job_id: str, frames: str) -> Counter[str]:
        """How many of the job's frames are DONE and FAILED: a row of a frame that is not
        one of the job's (``frames``, its spec) counts for neither. Counted by SQLite where
        the spec is a few ranges (a 10,000-frame job costs no more than counting them all)."""
        ranges = _frame_ranges(frames)
        if ranges is None:  # a spec that does not parse: every row counts, as it says
            where, parameters = "", []
        elif len(ranges) <= MAX_RANGES_IN_SQL:
            where = " AND (" + " OR ".join(
                ["(frame BETWEEN ? AND ? AND (frame - ?) % ? = 0)"] * len(ranges)) + ")"
            parameters = [n for start, end, step in ranges for n in (start, end, start, step)]
        else:  # many scattered frames: they are checked here
            wanted = _frame_set(frames)
            rows = self.db.query("SELECT frame, state FROM frames WHERE job_id = ?", (job_id,))
            return Counter(row.text("state") for row in rows if row.integer("frame") in wanted)
        rows = self.db.query(f"SELECT state, count(*) AS n FROM frames WHERE job_id = ?{where}"
                             " GROUP BY state", [job_id, *parameters])
        return Counter({row.text("state"): row.integer("n") for row in rows})

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
        rows = self.db.query(
            "SELECT * FROM tasks WHERE job_id = ? AND preset = coalesce(?, preset) ORDER BY idx",
            (job_id, preset))
        return [TaskRecord(job_id=r.text("job_id"), index=r.integer("idx"),
                           frames=r.text("frames"), frame_count=r.integer("frame_count"),
                           scout=bool(r.integer("scout")), preset=r.text("preset"),
                           state=TaskState(r.text("state")), attempts=r.integer("attempts"),
                           max_attempts=r.integer("max_attempts"),
                           backend_id=r.text_or_none("backend_id"),
                           started=r.real_or_none("started"), ended=r.real_or_none("ended"),
                           reason=r.text_or_none("reason"))
                for r in rows]

    def start_task(self, job_id: str, index: int, backend_id: str | None = None) -> int:
        """Mark a task RUNNING as a new attempt; returns the attempt number."""
        with self.transaction() as db:
            db.execute("UPDATE tasks SET state = ?, attempts = attempts + 1,"
                       " started = coalesce(started, ?), ended = NULL, backend_id = ?"
                       " WHERE job_id = ? AND idx = ?",
                       (TaskState.RUNNING, time.time(), backend_id, job_id, index))
            row = db.query_one("SELECT attempts FROM tasks WHERE job_id = ? AND idx = ?",
                               (job_id, index))
            if row is None:
                raise NotFoundError(f"job {job_id} has no task {index}")
            return row.integer("attempts")

    def end_task(self, job_id: str, index: int, state: TaskState, reason: str = "") -> None:
        with self.transaction() as db:
            db.execute("UPDATE tasks SET state = ?, ended = ?, reason = ?"
                       " WHERE job_id = ? AND idx = ? AND state != ?",
                       (state, time.time() if state.is_final else None, reason or None,
                        job_id, index, TaskState.CANCELED))

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
        return self.db.rows("SELECT * FROM frames WHERE job_id = ? ORDER BY frame", (job_id,))

    def last_frame(self, job_id: str) -> sqlite3.Row | None:
        rows = self.db.rows("SELECT * FROM frames WHERE job_id = ? AND state = 'DONE'"
                            " ORDER BY updated DESC LIMIT 1", (job_id,))
        return rows[0] if rows else None


#: The job id that names the job submitted last (`braas-globus info last`).
LAST_JOB = "last"
#: How many of the jobs an ambiguous prefix matches an error names.
SHOWN_MATCHES = 5


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


#: A job's frames in at most this many ranges are counted in one query (4 parameters each:
#: SQLite before 3.32 takes 999 at most).
MAX_RANGES_IN_SQL = 200


@lru_cache(maxsize=64)
def _frame_ranges(spec: str) -> tuple[tuple[int, int, int], ...] | None:
    """A job's spec as disjoint (start, end, step) ranges; None where the store holds a spec
    that does not parse."""
    try:
        items = [parse_frames(item) for item in spec.split(",")]
    except FrameSpecError:
        return None
    ranges = tuple((f[0], f[-1], f[1] - f[0] if len(f) > 1 else 1) for f in items)
    if sum(len(f) for f in items) != len(_frame_set(spec)):  # not normalised: items overlap
        return tuple((frame, frame, 1) for frame in sorted(_frame_set(spec)))
    return ranges


@lru_cache(maxsize=64)
def _frame_set(spec: str) -> frozenset[int]:
    """The frames of a spec that parses (``_frame_ranges`` says)."""
    return frozenset(parse_frames(spec))
