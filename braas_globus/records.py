"""What workers and centres send back, parsed as untrusted input: progress records, the
names of result files, and Globus Compute task results.

The worker (``worker/render_task.py``, stdlib only, so it does not import this module)
writes one JSON record per event, to its stdout and to ``job/progress/task-NNNN.jsonl``.
Their shapes live here:

    every record  task, attempt, time, event
    start         frames, skipped, pending
    running       pid
    frame         frame, state (done | failed), file (out/NNNNNN.ext, done only), seconds,
                  reason, skipped
    missing       file, owner: a file the scene uses that was not staged (--allow-missing)
    end           state (FINISHED | FAILED | CANCELED | TIMEOUT), missing (a frame spec),
                  reason; a Compute result adds exit_code, host, runtime

A record counts only if it speaks of its own job: a task of the job (the task its records
file is named for), a frame of that task, a file ``out/NNNNNN.ext`` that names that frame
(frame_path resolves it, links and all, where it is opened). Reads are bounded:
MAX_FILE_BYTES per records file, MAX_LINE_BYTES per line, MAX_TEXT_CHARS per string. A
bad record is left out and counted with a one-line reason; nothing here raises on what a
centre sends. The names of the files a task writes, and those a download accepts in each
folder it brings back (``RESULT_NAMES``), are the job layout's (``worker/job_layout.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from .states import TaskState
from .worker import job_layout
from .worker.frames import MAX_FRAME, FrameSpecError, format_frames, parse_frames
from .worker.job_layout import (  # noqa: F401  (re-exported: what a download accepts)
    FRAME_NAME,
    LOG_NAME,
    PROGRESS_NAME,
    RESULT_NAMES,
)

if TYPE_CHECKING:  # for the annotations only: records needs nothing of the store to run
    from .store import JobRecord, TaskRecord

MAX_FILE_BYTES = 8 << 20  # a task's records file: 8 MiB is about 60,000 frame records
MAX_LINE_BYTES = 64 << 10  # a record is a few hundred bytes
MAX_TEXT_CHARS = 2000  # reasons, hosts, file names: longer ones are cut
MAX_REASONS = 10  # reasons kept per read; further bad records are only counted
MALFORMED = "the centre returned a malformed result"



class RecordError(ValueError):
    """A record that is not what a worker writes; the message is one line."""


def frame_of_name(name: str) -> int | None:
    """The frame a frame file's name (``000012.png``) is for, or None for any other name."""
    match = FRAME_NAME.fullmatch(name)
    if not match:
        return None
    frame = int(match["frame"])
    return frame if frame <= MAX_FRAME else None


def frame_of_file(file: str) -> int | None:
    """The frame a record's ``file`` (``out/000012.png``, relative, posix) is for, or None;
    a split still's part (``out/parts/part-0003.exr``) is for its part number."""
    folder, _, name = file.rpartition("/")
    if folder == job_layout.PARTS:
        return job_layout.part_of_name(name)
    return frame_of_name(name) if folder == job_layout.OUT else None


def frame_path(job_folder: Path, file: str | None, frame: int) -> Path | None:
    """Where the job's ``frame`` is, if ``file`` names that frame and, links resolved, is
    inside the job's out/; else None (never a path outside the job folder)."""
    if not isinstance(file, str) or frame_of_file(file) != frame:
        return None
    path = job_folder / file
    try:
        folder = job_layout.PARTS if file.startswith(job_layout.PARTS + "/") else job_layout.OUT
        inside = path.resolve().parent == job_folder.resolve() / folder  # no link
    except (OSError, RuntimeError):  # a link loop
        return None
    return path if inside else None


def _cut(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        return value[:MAX_TEXT_CHARS] + "..."
    return value


Text = Annotated[str, BeforeValidator(_cut)]
TaskIndex = Annotated[int, Field(ge=0, le=9999)]
Frame = Annotated[int, Field(ge=0, le=MAX_FRAME)]
Seconds = Annotated[float, Field(ge=0, le=1e11)]
FrameSpec = Annotated[str, Field(max_length=MAX_LINE_BYTES)]


class _Record(BaseModel):
    # strict: "3" is not a frame and true is not a number; unknown keys are dropped.
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    task: TaskIndex | None = None  # absent only in a result the Compute function made itself
    attempt: Annotated[int, Field(ge=1, le=1000)] | None = None
    time: Seconds = 0.0


class StartRecord(_Record):
    event: Literal["start"]
    frames: FrameSpec = ""
    skipped: FrameSpec = ""
    pending: FrameSpec = ""


class RunningRecord(_Record):
    event: Literal["running"]
    pid: Annotated[int, Field(ge=0, le=2**31)] | None = None


class FrameRecord(_Record):
    event: Literal["frame"]
    frame: Frame
    state: Literal["done", "failed"]
    file: Annotated[str, Field(max_length=64)] | None = None
    seconds: Seconds | None = None
    reason: Text = ""
    skipped: bool = False

    @model_validator(mode="after")
    def _file_is_this_frames(self) -> FrameRecord:
        if self.state == "done" and self.file is None:
            raise ValueError(f"frame {self.frame} is done but names no file")
        if self.file is not None and frame_of_file(self.file) != self.frame:
            raise ValueError(f"{self.file!r} is not a file of frame {self.frame} in out/")
        return self


class MissingRecord(_Record):
    event: Literal["missing"]
    file: Text
    owner: Text = ""


class EndRecord(_Record):
    event: Literal["end"]
    state: Literal["FINISHED", "FAILED", "CANCELED", "TIMEOUT"]
    missing: FrameSpec = ""
    reason: Text = ""
    exit_code: int | None = None
    host: Text | None = None
    runtime: Text | None = None


Record = StartRecord | RunningRecord | FrameRecord | MissingRecord | EndRecord
# pydantic types TypeAdapter's argument as a TypeForm; mypy takes this Annotated union for a
# special form, not a type (and, in some cache states only, for a string TypeForm), so the
# form is passed as Any: what it parses to is typed by _RECORD's own annotation.
_DISCRIMINATED: Any = Annotated[Record, Field(discriminator="event")]
_RECORD: TypeAdapter[Record] = TypeAdapter(_DISCRIMINATED)


def _one_line(err: ValidationError) -> str:
    """The first of pydantic's errors, as ``where: what``, printable and on one line."""
    first = err.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"][1:])  # [0] is the event tag
    what = first["msg"].removeprefix("Value error, ")
    text = f"{where}: {what}" if where else what
    return "".join(c if c.isprintable() else "?" for c in text[:200])  # may quote a value


@dataclass(frozen=True)
class JobScope:
    """What a job's records may speak of: its folder and each of its tasks' frames."""

    folder: Path
    task_frames: Mapping[int, frozenset[int]] | None = None  # None: no task check
    parts: bool = False  # a still split by samples: its files are parts (out/parts/...)

    @classmethod
    def of(cls, job: JobRecord, tasks: Iterable[TaskRecord]) -> JobScope:
        """The scope of ``job`` (a store.JobRecord) and its tasks (store.TaskRecord)."""
        return cls(job.folder, {t.index: frozenset(parse_frames(t.frames)) for t in tasks},
                   parts=job.split is not None)


def parse_line(line: str | bytes, scope: JobScope, task: int) -> Record:
    """One line of ``task``'s records, checked against its job; RecordError if it is bad."""
    if len(line) > MAX_LINE_BYTES:
        raise RecordError(f"a line over {MAX_LINE_BYTES >> 10} KiB")
    try:  # pydantic's own JSON parser: bounded nesting, any size of number refused cleanly
        record = _RECORD.validate_json(line)
    except ValidationError as err:
        raise RecordError(_one_line(err)) from None
    if record.task != task:
        raise RecordError(f"a record of task {record.task} among task {task}'s records")
    if scope.task_frames is not None:
        if task not in scope.task_frames:
            raise RecordError(f"task {task} is not a task of this job")
        _check_frames(record, scope.task_frames[task], f"task {task}")
    if isinstance(record, FrameRecord) and record.file is not None and \
            record.file.startswith(job_layout.PARTS + "/") is not scope.parts:
        raise RecordError(f"{record.file!r} is not a file this job renders "
                          f"({'parts of a still' if scope.parts else 'frames'})")
    return record  # its file is out/NNNNNN.ext; frame_path checks links where it is opened


def _check_frames(record: Record, frames: frozenset[int], whose: str) -> None:
    if isinstance(record, FrameRecord) and record.frame not in frames:
        raise RecordError(f"frame {record.frame} is not a frame of {whose}")
    if isinstance(record, EndRecord):
        frames_not_rendered(record, frames, whose)


def frames_not_rendered(end: EndRecord, frames: frozenset[int], whose: str) -> frozenset[int]:
    """The frames a closing record says were not rendered: some of ``frames``, or
    RecordError. Counted before they are made: a spec of a few bytes names a million."""
    if not end.missing:
        return frozenset()
    if _frame_count(end.missing) > len(frames):
        raise RecordError(f"missing names more frames than {whose} has")
    try:
        missing = frozenset(parse_frames(end.missing))
    except FrameSpecError as err:
        raise RecordError(f"missing: {err}") from None
    if not missing <= frames:
        outside = sorted(missing - frames)[:5]
        raise RecordError(f"missing frames {format_frames(outside)} are not frames of {whose}")
    return missing


_SPEC_ITEM = re.compile(r"\s*([0-9]{1,7})(?:-([0-9]{1,7})(?::([0-9]{1,7}))?)?\s*")


def _frame_count(spec: str) -> int:
    """How many frames ``spec`` names at most (frames.py's grammar; parse_frames judges the
    rest: reversed ranges, step 0, past MAX_FRAME)."""
    count = 0
    for item in spec.split(","):
        match = _SPEC_ITEM.fullmatch(item)
        if match is None:
            raise RecordError(f"missing: {item.strip()[:40]!r} is not a frame or a range")
        start, end, step = (int(g) if g else None for g in match.groups())
        if end is None:
            count += 1
        else:
            assert start is not None  # _SPEC_ITEM: a range has its start
            count += max(0, (end - start) // (step or 1) + 1)
    return count


def bounded_lines(stream: IO[str], limit: int = MAX_LINE_BYTES) -> Iterator[str]:
    """The lines of a text stream (a worker's stdout); a line over ``limit`` characters comes
    back cut to ``limit + 1`` (parse_line refuses it) and the rest of it is skipped."""
    while line := stream.readline(limit + 1):
        if len(line) > limit:
            rest = line
            while rest and not rest.endswith("\n"):
                rest = stream.readline(limit)
        yield line


@dataclass
class Rejected:
    """Records left out: how many, and the first reasons, each one line."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    def note(self) -> str | None:
        """One line for the user, or None when nothing was left out."""
        if not self.count:
            return None
        return (f"ignored {self.count} progress record{'s' * (self.count != 1)} that the "
                f"worker does not write (first: {self.reasons[0]})")


@dataclass
class Progress:
    records: list[Record]  # oldest first
    rejected: Rejected


def read_progress(scope: JobScope) -> Progress:
    """The job's records (job/progress/task-NNNN.jsonl), checked, bounded, oldest first."""
    records: list[Record] = []
    rejected = Rejected()
    folder = scope.folder / job_layout.PROGRESS
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    for name in names:
        match = PROGRESS_NAME.fullmatch(name)
        if not match:
            continue  # not a records file (downloads bring back no other names)
        path = folder / name
        if path.is_symlink() or not path.is_file():
            rejected.add(f"{name}: not a plain file")
            continue
        task = int(match["task"])
        if scope.task_frames is not None and task not in scope.task_frames:
            rejected.add(f"{name}: task {task} is not a task of this job")
            continue
        records += _read_file(path, scope, task, rejected)
    records.sort(key=lambda r: r.time)
    return Progress(records, rejected)


def _read_file(path: Path, scope: JobScope, task: int, rejected: Rejected) -> list[Record]:
    with path.open("rb") as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        rejected.add(f"{path.name}: over {MAX_FILE_BYTES >> 20} MiB, read no further")
        data = data[:MAX_FILE_BYTES]
    *lines, _unfinished = data.split(b"\n")  # the last part is a line still being written
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(parse_line(line, scope, task))
        except RecordError as err:
            rejected.add(f"{path.name} line {number}: {err}")
    return records


@dataclass(frozen=True)
class Outcome:
    """What one attempt of a task came to."""

    state: TaskState
    missing: frozenset[int]  # the task's frames it did not render
    reason: str


def task_outcome(status: object, task: int, frames: frozenset[int]) -> Outcome:
    """A finished Globus Compute task's status (``Client.get_batch_result``), as the outcome
    of the attempt; a malformed one is a FAILED attempt that says so."""

    def failed(reason: str) -> Outcome:
        return Outcome(TaskState.FAILED, frames, str(_cut(reason)))

    if not isinstance(status, dict):
        return failed(f"{MALFORMED}: a {type(status).__name__}, not a task status")
    if status.get("status") != "success":
        why = status.get("exception")
        if not why and isinstance(status.get("reason"), str):
            # A task the service no longer knows (its result expired or was abandoned), or
            # one it never ran: its own words.
            why = f"the Compute service has no result for it: {status['reason']}"
        why = why or "the task failed"
        return failed(why if isinstance(why, str) else f"the task failed ({type(why).__name__})")
    result = status.get("result")
    if not isinstance(result, dict):
        return failed(f"{MALFORMED}: a {type(result).__name__}, not the worker's closing "
                      "record")
    try:
        record = _RECORD.validate_python(result)
        if not isinstance(record, EndRecord):
            raise RecordError(f"a {record.event} record, not the worker's closing record")
        if record.task not in (None, task):
            raise RecordError(f"the closing record of task {record.task}, not of task {task}")
        missing = frames_not_rendered(record, frames, f"task {task}")
    except ValidationError as err:
        return failed(f"{MALFORMED}: {_one_line(err)}")
    except RecordError as err:
        return failed(f"{MALFORMED}: {err}")
    return Outcome(TaskState(record.state), missing, record.reason)
