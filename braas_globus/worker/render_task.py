"""Render one task of a job on this machine: the worker entry point. Stdlib only.

    python render_task.py TASK.json [--job-root DIR]

TASK.json (written by the dispatcher) names the scene, the frames, the device and
how to start Blender: ``{"kind": "executable" | "python", "command": [...]}``, or
``{"kind": "image"}`` for the render image's own Blender, as its
``/opt/blender/blender.json`` describes it (written when the image is built). Paths
in it are relative to the job root, the folder that holds ``in/``, ``out/``, ``log/``
and ``job/``. The entry point

- skips frames whose file in ``out/`` already reads as a valid image (resume, retry);
- runs Blender once for all other frames (``blender_render.py``), autoexec off
  unless the job opted in, scout frames (``first_frames``) first, with the job's render
  settings over the scene's (``render``: render_args makes them argv); Blender first checks
  that it can render the scene and that every file the scene uses is staged in ``in/``;
- after a failed frame, renders the rest in a fresh Blender (persistent data is not
  trusted after an error), unless nothing rendered yet or a scout frame failed;
- checks every frame Blender reports, and writes one JSON record per event to
  stdout and to ``job/progress/task-NNNN.jsonl``;
- stops Blender within a second when the job's cancel marker ``job/CANCEL``
  appears or the walltime runs out: the task's own (``walltime_seconds``, counted from
  the task's start) or the batch job's, whichever comes first (``task_limits.py``: the
  batch job's end, from the environment its ``worker_init`` exports);
- on a full disk, stops and ends the attempt with the reason "the disk holding ... is
  full" (the frames already rendered stay done), never a traceback.

Exit codes: 0 all frames done, 1 some frames failed, 2 a bad task file,
3 canceled, 4 walltime exceeded (the task's or the batch job's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from . import job_layout
    from .frames import format_frames, parse_frames
    from .image_check import is_valid_image
    from .task_limits import (  # block_margin: the tests and the templates' notes look here
        block_end,
        block_margin,
        disk_full_reason,
        disk_is_full,
        is_disk_full_error,
    )
except ImportError:  # run by path on a worker (also under `python -I`, which adds no path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # The same modules as above, found by path: mypy checks the package's copies.
    import job_layout  # type: ignore[no-redef, import-not-found]
    from frames import format_frames, parse_frames  # type: ignore[no-redef, import-not-found]
    from image_check import is_valid_image  # type: ignore[no-redef, import-not-found]
    from task_limits import (  # type: ignore[no-redef, import-not-found]
        block_end,
        block_margin,  # noqa: F401
        disk_full_reason,
        disk_is_full,
        is_disk_full_error,
    )

HERE = Path(__file__).resolve().parent
BLENDER_SCRIPT = HERE / "blender_render.py"
CANCEL_MARKER = job_layout.CANCEL
IMAGE_BLENDER = Path("/opt/blender/blender.json")  # in the render image (fetch_blender.sh)
EXIT_CODES = {"FINISHED": 0, "FAILED": 1, "CANCELED": 3, "TIMEOUT": 4}
_ERROR_LINE = re.compile(r"(error|exception|traceback|out of memory|segmentation fault)", re.I)
def frame_file(out_dir: Path, frame: int) -> Path | None:
    """The valid image file of ``frame`` in ``out_dir``, if there is one."""
    for candidate in out_dir.glob(job_layout.frame_glob(frame)):
        if is_valid_image(candidate):
            return candidate
    return None


def part_file(parts_dir: Path, part: int) -> Path | None:
    """The valid EXR of a split still's ``part`` in ``parts_dir``, if there is one."""
    candidate = parts_dir / job_layout.part_name(part)
    return candidate if is_valid_image(candidate) else None


def split_of(task: dict[str, Any]) -> dict[str, int] | None:
    """The task's split (job_layout.Split), checked; None for a task of frames. ValueError
    for one of the wrong shape, or whose parts are not 1..parts."""
    split = task.get("split")
    if split is None:
        return None
    if not isinstance(split, dict) or set(split) != {"frame", "parts"} or any(
            isinstance(v, bool) or not isinstance(v, int) for v in split.values()):
        raise ValueError(f"split {split!r} is not {{frame, parts}}")
    if not 2 <= split["parts"] <= job_layout.MAX_SPLIT or split["frame"] < 0:
        raise ValueError(f"split {split!r}: 2 to {job_layout.MAX_SPLIT} parts of a frame")
    if any(not 1 <= p <= split["parts"] for p in parse_frames(task["frames"])):
        raise ValueError(f"split parts {task['frames']!r} are not 1 to {split['parts']}")
    return {"frame": split["frame"], "parts": split["parts"]}


def link_inputs(job_root: Path, objects_dir: Path) -> int:
    """Build ``in/`` from the job's manifest by hard-linking shared objects; returns links made.

    At a centre, Transfer puts each file's content once in ``objects/`` (named by sha256)
    and the job's manifest beside the job; the first task of the job lays out ``in/``.
    """
    manifest = json.loads((job_root / job_layout.MANIFEST).read_text(encoding="utf-8"))
    made = 0
    for relative, entry in manifest.items():
        parts = Path(relative).parts
        if Path(relative).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"manifest path {relative!r} leaves the job folder")
        if not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            raise ValueError(f"manifest entry {relative!r} has no sha256")
        target = job_root / job_layout.IN / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = objects_dir / job_layout.object_name(entry["sha256"])
        try:
            os.link(source, target)
        except FileExistsError:  # another task of the job linked it first
            continue
        except OSError:
            shutil.copyfile(source, target)  # a file system without hard links
        made += 1
    return made


_RESOLUTION = re.compile(r"[0-9]{1,5}x[0-9]{1,5}")


def render_args(render: dict[str, Any]) -> list[str]:
    """blender_render.py's arguments for the task's render settings (job_layout's
    RenderSettings); ValueError for a value of the wrong kind. Each is ``--name=value``,
    one argv item, so a name that starts with '-' stays a value."""
    def whole(key: str) -> int:
        value = render[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"render {key} {value!r} is not a positive whole number")
        return int(value)

    def text(key: str, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"render {key} {value!r} is not a name")
        return value

    unknown = set(render) - set(job_layout.RENDER_SETTINGS)
    if unknown:
        raise ValueError(f"unknown render settings {sorted(unknown)}")
    args = []
    for key in ("samples", "resolution_percent"):
        if key in render:
            args.append(f"--{key.replace('_', '-')}={whole(key)}")
    if "resolution" in render:
        if not _RESOLUTION.fullmatch(text("resolution", render["resolution"])):
            raise ValueError(f"render resolution {render['resolution']!r} is not WxH")
        args.append(f"--resolution={render['resolution']}")
    if "camera" in render:
        args.append(f"--camera={text('camera', render['camera'])}")
    layers = render.get("view_layers", [])
    if not isinstance(layers, list):
        raise ValueError("render view_layers is not a list")
    args += [f"--view-layer={text('view_layers', name)}" for name in layers]
    if "file_format" in render:
        if render["file_format"] not in job_layout.FORMAT_EXTENSIONS:
            raise ValueError(f"render file_format {render['file_format']!r} is not one of "
                             f"{sorted(job_layout.FORMAT_EXTENSIONS)}")
        args.append(f"--format={render['file_format']}")
    if "denoise" in render:
        if not isinstance(render["denoise"], bool):
            raise ValueError("render denoise is not true or false")
        args.append("--denoise" if render["denoise"] else "--no-denoise")
    return args


def blender_argv(blender: dict[str, Any], script: Path, script_args: list[str],
                 allow_scripts: bool = False) -> list[str]:
    """argv that runs ``script`` in Blender: an executable, or a Python with PyPI ``bpy``."""
    command = list(blender["command"])
    if blender.get("kind", "executable") == "python":
        return [*command, str(script), "--", *script_args]
    autoexec = "--enable-autoexec" if allow_scripts else "--disable-autoexec"
    return [*command, "-b", "--factory-startup", "-noaudio", autoexec,
            "-P", str(script), "--", *script_args]


@dataclass
class BlenderRun:
    """What one Blender process reported."""

    rendered: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    stopped_after: int | None = None  # the frame after whose failure Blender stopped
    fatal: str = ""
    last_error: str = ""
    code: int | None = None


class TaskRun:
    """One attempt at one task: starts Blender, reads its reports, enforces stop signals."""

    def __init__(self, task: dict[str, Any], job_root: Path, emit_stdout: bool = True) -> None:
        self.task = task
        self.root = job_root
        self.emit_stdout = emit_stdout
        index = int(task["task"])
        # A split still's task renders parts (its "frames" are part numbers) into out/parts/.
        self.split = split_of(task)
        self.out_dir = job_root / (job_layout.PARTS if self.split else job_layout.OUT)
        self.log_path = job_layout.log_file(job_root, index)
        self.progress_path = job_layout.progress_file(job_root, index)
        self.cancel_marker = job_root / CANCEL_MARKER
        self.stop_reason: str | None = None
        self.process: subprocess.Popen[str] | None = None
        self.reported_missing: set[str] = set()
        self.disk_full: OSError | None = None  # a write that failed for want of space
        self.block = block_end()  # (the batch job's end, the margin) or None
        self.deadline = self.block_deadline = float("inf")  # monotonic; set by run()
        self.timeout_reason = ""

    def unit_file(self, unit: int) -> Path | None:
        """The valid file of one of the task's frames (or parts), if there is one."""
        if self.split:
            return part_file(self.out_dir, unit)
        return frame_file(self.out_dir, unit)

    def emit(self, record: dict[str, Any]) -> None:
        record = {"task": self.task["task"], "attempt": self.task.get("attempt", 1),
                  "time": round(time.time(), 3), **record}
        line = json.dumps(record)
        try:
            with self.progress_path.open("a", encoding="utf-8") as progress:
                progress.write(line + "\n")
        except OSError as err:
            if not is_disk_full_error(err):
                raise
            self.disk_full = self.disk_full or err  # stdout still carries the record
        if self.emit_stdout:
            print(line, flush=True)

    def time_is_up(self) -> bool:
        """True (and the reason kept) once the task's or the batch job's deadline passed."""
        now = time.monotonic()
        if now > self.deadline and self.deadline <= self.block_deadline:
            self.timeout_reason = self.timeout_reason or \
                f"walltime of {self.task['walltime_seconds']} s exceeded"
        elif now >= self.block_deadline:
            assert self.block is not None
            left = round(self.block[0] - time.time())
            when = f"ends in {left} s" if left > 0 else "has ended"
            self.timeout_reason = self.timeout_reason or (
                f"the batch job's walltime {when}: stopped to leave time to report; "
                "the missing frames are retried")
        else:
            return False
        return True

    def watch_stop_signals(self) -> None:
        """Stop Blender on cancel or walltime; runs in a daemon thread."""
        while self.process is not None and self.process.poll() is None:
            if self.cancel_marker.exists():
                self.stop("CANCELED")
            elif self.time_is_up():
                self.stop("TIMEOUT")
            time.sleep(0.25)

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def run(self) -> dict[str, Any]:
        """Run the attempt; its closing record. A full disk ends it, named, not a traceback."""
        # Both deadlines on the monotonic clock, from the task's start: its own walltime,
        # and the batch job's end less the margin.
        started = time.monotonic()
        self.deadline = started + float(self.task.get("walltime_seconds") or 1e12)
        if self.block is not None:
            end, margin = self.block
            self.block_deadline = started + (end - margin - time.time())
        try:
            return self._run()
        except OSError as err:
            if not is_disk_full_error(err):
                raise
            self.disk_full = err
            self.stop("FAILED")  # Blender could not write its frames either
            frames = parse_frames(self.task["frames"])
            return self.finish("FAILED", [f for f in frames
                                          if self.unit_file(f) is None], "")

    def _run(self) -> dict[str, Any]:
        for folder in (self.out_dir, self.log_path.parent, self.progress_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        frames = parse_frames(self.task["frames"])
        if self.task.get("objects_dir"):
            try:
                link_inputs(self.root, Path(self.task["objects_dir"]))
            except (OSError, ValueError, KeyError) as err:
                return self.finish("FAILED", frames, f"cannot lay out in/ from the staged "
                                                     f"objects: {err}")
        done = {f for f in frames if self.unit_file(f) is not None}
        pending = [f for f in frames if f not in done]
        self.emit({"event": "start", "frames": self.task["frames"],
                   "skipped": format_frames(sorted(done)), "pending": format_frames(pending)})
        for frame in sorted(done):
            file = self.unit_file(frame)
            assert file is not None  # found just above (done)
            self.emit({"event": "frame", "frame": frame, "state": "done", "skipped": True,
                       "file": str(file.relative_to(self.root))})
        if self.cancel_marker.exists():
            return self.finish("CANCELED", pending, "the job was canceled")
        if not pending:
            return self.finish("FINISHED", [], "")
        lacks = blender_lacks(self.task)
        if lacks:  # no Blender start: it would fail every frame for the same reason
            return self.finish("FAILED", pending, lacks)
        return self.render(pending)

    def render(self, pending: list[int]) -> dict[str, Any]:
        """Render ``pending``; after a failed frame, the rest in a fresh Blender.

        A Blender whose first frame fails (nothing will render), or whose failed frame is
        a scout frame, ends the attempt instead: the reason is the same for every frame.
        """
        scouts = set(parse_frames(self.task["first_frames"])) if self.task.get("first_frames") \
            else set()
        remaining, failures, reason, stopped_after = list(pending), {}, "", None
        while remaining and not self.stop_reason:
            if self.time_is_up():  # before each Blender: the batch job may be ending
                self.stop_reason = "TIMEOUT"
                break
            run = self.run_blender(remaining, [f for f in remaining if f in scouts])
            failures.update(run.failed)
            remaining = [f for f in remaining if f not in run.rendered and f not in run.failed]
            reason = reason or next(iter(run.failed.values()), "") or run.fatal or \
                run.last_error or f"Blender exited with code {run.code} before rendering " \
                                  "these frames"
            stopped_after = run.stopped_after
            if stopped_after is None or not run.rendered or stopped_after in scouts:
                break
            if remaining:
                self.log_line(f"=== frame {run.stopped_after} failed: the remaining frames "
                              f"render in a fresh Blender\n")
        if self.cancel_marker.exists():  # Blender may have seen the marker first
            self.stop_reason = "CANCELED"
        unrendered = sorted(set(remaining) | set(failures))
        if self.stop_reason == "CANCELED":
            return self.finish("CANCELED", unrendered, "the job was canceled")
        if self.stop_reason == "TERMINATED":  # a TERM, and no cancel marker: not a cancel
            return self.finish("FAILED", unrendered, "stopped by SIGTERM without a cancel (the "
                               "batch job reached its walltime, or was killed); the missing "
                               "frames are retried")
        if self.stop_reason == "TIMEOUT":
            return self.finish("TIMEOUT", unrendered, self.timeout_reason)
        if not unrendered:
            return self.finish("FINISHED", [], "")
        not_rendered = reason if stopped_after is None else \
            f"not rendered: Blender stopped after frame {stopped_after} failed ({reason})"
        for frame in remaining:
            self.emit({"event": "frame", "frame": frame, "state": "failed",
                       "reason": not_rendered})
        return self.finish("FAILED", unrendered, reason)

    def log_line(self, text: str) -> None:
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(text)

    def run_blender(self, frames: list[int], first: list[int]) -> "BlenderRun":
        """One Blender process over ``frames`` (``first`` first); what it reported."""
        script_args = ["--scene", str(self.root / self.task["scene"]),
                       "--frames", format_frames(frames), "--out", str(self.out_dir),
                       "--device", self.task.get("device", "CPU"),
                       "--threads", str(self.task.get("threads", 0)),
                       "--cancel-marker", str(self.cancel_marker),
                       "--staged", str(self.root / job_layout.IN)]
        if first:
            script_args += ["--first", format_frames(first)]
        if self.split:
            script_args += [f"--split-frame={self.split['frame']}",
                            f"--split-parts={self.split['parts']}"]
        for flag in ("allow_scripts", "allow_missing", "allow_older_blender"):
            if self.task.get(flag):
                script_args.append("--" + flag.replace("_", "-"))
        script_args += render_args(self.task.get("render") or {})  # checked by main()
        argv = blender_argv(self.task["blender"], BLENDER_SCRIPT, script_args,
                            bool(self.task.get("allow_scripts")))
        run = BlenderRun()
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"=== braas-globus task {self.task['task']} attempt "
                      f"{self.task.get('attempt', 1)}: {' '.join(argv)}\n")
            log.flush()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, text=True, errors="replace",
                                            env=env, cwd=self.root)
            self.emit({"event": "running", "pid": self.process.pid})
            threading.Thread(target=self.watch_stop_signals, daemon=True).start()
            assert self.process.stdout is not None
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.read_report(line, run)
            run.code = self.process.wait()
        return run

    def read_report(self, line: str, run: "BlenderRun") -> None:
        kind, _, payload = line.partition(" ")
        if kind == "BRAAS_FRAME":
            report = json.loads(payload)
            frame = int(report["frame"])
            if report["state"] == "done" and is_valid_image(report["file"]):
                run.rendered.add(frame)
                self.emit({"event": "frame", "frame": frame, "state": "done",
                           "file": str(Path(report["file"]).relative_to(self.root)),
                           "seconds": report.get("seconds")})
            else:
                reason = report.get("reason") or "the written file is not a valid image"
                run.failed[frame] = reason
                written = Path(report.get("file") or "")
                if written.parent == self.out_dir and written.is_file():
                    written.unlink()  # cut short (a full disk): no broken frame stays in out/
                self.emit({"event": "frame", "frame": frame, "state": "failed",
                           "reason": reason})
        elif kind == "BRAAS_STOPPED":
            run.stopped_after = int(json.loads(payload)["after"])
        elif kind == "BRAAS_FATAL":
            run.fatal = json.loads(payload)["reason"]
        elif kind == "BRAAS_MISSING":
            missing = json.loads(payload)
            if missing["file"] not in self.reported_missing:
                self.reported_missing.add(missing["file"])
                self.emit({"event": "missing", "file": missing["file"],
                           "owner": missing["owner"]})
        elif _ERROR_LINE.search(line):
            run.last_error = line.strip()

    def finish(self, state: str, missing: list[int], reason: str) -> dict[str, Any]:
        if state == "FAILED" and (self.disk_full or disk_is_full(self.root)):
            # A frame that failed on a full disk failed for that reason, whatever Blender said.
            error = self.disk_full
            detail = reason if error is None else \
                f"{error.strerror}: {error.filename}" if error.filename else error.strerror
            reason = disk_full_reason(self.root, detail)
        record = {"event": "end", "state": state, "missing": format_frames(missing),
                  "reason": reason}
        self.emit(record)
        return record


def blender_lacks(task: dict[str, Any]) -> str:
    """Why the task's Blender cannot render it as asked, where its description says what it
    renders with (a render image's blender.json, written at build time): the device, or
    OpenImageDenoise for a job that asks to denoise. Empty when it can, or cannot tell."""
    blender = task["blender"]
    name = str(blender.get("name") or "the image's Blender")
    devices = blender.get("devices")
    device = task.get("device") or "CPU"
    if isinstance(devices, list) and devices and device not in devices:
        return (f"{name} cannot render on {device}: it has no {device} kernels (it renders "
                f"on {', '.join(map(str, devices))}); submit with --device {devices[0]}, or "
                f"render with an image whose Blender has them")
    # A split still's parts are never denoised: the merge, on the client, denoises once.
    if blender.get("openimagedenoise") is False and (task.get("render") or {}).get("denoise") \
            and task.get("split") is None:
        return (f"{name} was built without OpenImageDenoise, and the job asks to denoise: "
                "submit with --no-denoise, or render with an image whose Blender has it")
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="render_task.py", description=__doc__.split("\n")[0])
    parser.add_argument("task_file", type=Path)
    parser.add_argument("--job-root", type=Path, default=None,
                        help="the job folder (default: two levels above TASK.json)")
    args = parser.parse_args(argv)
    try:
        task = json.loads(args.task_file.read_text(encoding="utf-8"))
        parse_frames(task["frames"])
        if task["blender"].get("kind") == "image":
            task["blender"] = json.loads(IMAGE_BLENDER.read_text(encoding="utf-8"))
        task["scene"], task["blender"]["command"]  # noqa: B018 - required keys
        render_args(task.get("render") or {})
        split_of(task)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        print(f"render_task: bad task file {args.task_file}: {err}", file=sys.stderr)
        return 2
    job_root = (args.job_root or job_layout.root_of_task_file(args.task_file.resolve())).resolve()
    run = TaskRun(task, job_root)
    # A TERM to this process (a local cancel, which writes the cancel marker first; a
    # scheduler ending or killing the batch job) stops Blender first.
    signal.signal(signal.SIGTERM, lambda *_: run.stop("TERMINATED"))
    return EXIT_CODES[run.run()["state"]]


if __name__ == "__main__":
    sys.exit(main())
