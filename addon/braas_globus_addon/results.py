"""Back on Blender's main thread: the worker's messages become WindowManager properties.

:func:`drain` is a ``bpy.app.timers`` callback (every 0.25 s). It applies each message
from the worker (status line, progress, jobs, presets, identity), asks for a quiet jobs
refresh while any job is still running (as often as the job's backends allow), and tags
the Properties and Preferences editors for redraw. Nothing here waits.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import bpy
import bpy.utils.previews

from braas_globus.views import info_panel_lines

from . import worker as worker_module
from .image_editor import show_preview
from .worker import Failed, Finished, Progress, Started, Step, Stopped, Worker

INTERVAL = 0.25
PREVIEW_SCALE = 8.0

_state = SimpleNamespace(worker=None, previews=None, next_refresh=0.0, poll_seconds=2.0,
                         select=None, applying=False, stale=True, info_for=None,
                         message_job=None)  # the job the Status message is about


def worker() -> Worker:
    """The add-on's worker, started on first use."""
    if _state.worker is None or not _state.worker.alive:
        worker_module.blender_for_service(bpy.app.binary_path)
        _state.worker = Worker()
    return _state.worker


def pending(operation: str | None = None) -> bool:
    """Is ``operation`` (any, if None) waiting or running? Never starts the worker."""
    return _state.worker is not None and _state.worker.pending(operation)


def status() -> bpy.types.PropertyGroup:
    return bpy.context.window_manager.braas_globus


# --- the timer ----------------------------------------------------------------------------


def drain() -> float:
    """Apply what the worker sent; keep jobs fresh while they run. A bpy.app.timers callback."""
    wm = bpy.context.window_manager
    if wm is None:
        return INTERVAL
    current = wm.braas_globus
    changed = False
    if _state.stale:
        # WindowManager data outlives a disable and enable in one session: start clean.
        current.operation, current.step, current.progress = "", "", 0.0
        current.message, current.is_error, current.busy = "", False, False
        _state.stale, changed = False, True
    if _state.worker is not None:
        for message in _state.worker.messages():
            _apply(current, message)
            changed = True
        busy = _state.worker.busy()
        if current.busy != busy:
            current.busy, changed = busy, True
        _auto_refresh(current)
    if changed:
        _redraw(wm)
    return INTERVAL


def initial_load() -> None:
    """Presets, jobs and the Globus identity, read in the background once the add-on is on."""
    w = worker()
    w.request("presets", quiet=True)
    w.request("jobs", quiet=True)
    w.request("whoami", quiet=True)
    return None  # a one-shot timer


@bpy.app.handlers.persistent
def _on_load(*args) -> None:
    """Another .blend was opened: the WindowManager's tables start empty, so fill them."""
    initial_load()


def refresh_jobs(quiet: bool = False) -> None:
    selected = status().selected_job()
    name = _state.select or (selected.name if selected else None)  # a new job comes first
    worker().request("jobs", quiet=quiet, selected=name)
    _state.next_refresh = time.monotonic() + _state.poll_seconds


def job_selected(current) -> None:
    """The user picked a job in the list: show its info and last frame."""
    if _state.applying:
        return
    job = current.selected_job()
    if job is not None:
        worker().request("info", quiet=True, job_id=job.name)


def _auto_refresh(current) -> None:
    if _state.worker.pending("jobs") or time.monotonic() < _state.next_refresh:
        return
    if any(not item.is_final for item in current.jobs):
        refresh_jobs(quiet=True)


def _redraw(wm) -> None:
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"PROPERTIES", "PREFERENCES"}:
                area.tag_redraw()


# --- messages -------------------------------------------------------------------------------


def _apply(current, message) -> None:
    if isinstance(message, Started):
        current.operation, current.step, current.progress = message.label, "", 0.0
        current.message, current.is_error = "", False
    elif isinstance(message, Step):
        current.step, current.progress = message.text, 0.0
    elif isinstance(message, Progress):
        current.progress = min(message.done / message.total, 1.0) if message.total else 0.0
    elif isinstance(message, Finished):
        if not message.quiet:
            current.operation, current.step, current.progress = "", "", 1.0
        handler = _FINISHED.get(message.operation)
        if handler is not None:
            handler(current, message.result)
    elif isinstance(message, Failed):
        if message.operation in ("whoami", "login"):
            if message.operation == "whoami":
                current.signed_in, current.identity = False, ""
            current.login_note = message.message  # shown with the Globus login
            if message.quiet:
                return  # at start-up: no red line for those who render only here
        if not message.quiet:
            current.operation, current.step = "", ""
        else:
            _state.next_refresh = time.monotonic() + 30  # don't repeat a failing refresh
        current.message, current.is_error = message.message, True
        if not message.quiet:
            report_error(message.message)
    elif isinstance(message, Stopped) and not message.quiet:
        current.operation, current.step = "", ""
        current.message, current.is_error = f"{message.label}: aborted", False


def report_error(text: str) -> None:
    """An error of the background work also in the Info area and the status bar, where
    Blender's own errors are (the panel may not be open)."""
    try:
        bpy.ops.braas_globus.report(message=text)
    except RuntimeError:  # without a window (background mode) an error report raises
        pass


def _say(current, text: str, job: str | None = None) -> None:
    current.message, current.is_error = text, False
    _state.message_job = job  # a message about a job follows it to its end


def _follow_message(current, rows: list[dict]) -> None:
    """The Status message said a job was submitted (or resumed): once it ends, say how."""
    row = next((r for r in rows if r["id"] == _state.message_job), None)
    if row is not None and row["state"] in ("FINISHED", "FAILED", "CANCELED"):
        current.message = f"{row['id']}: {row['state']}, {row['frames_done']}/" \
                          f"{row['frames_total']} frames"
        current.is_error = row["state"] == "FAILED"
        _state.message_job = None


def _jobs(current, result: dict) -> None:
    if result.get("poll_seconds"):
        _state.poll_seconds = max(1.0, float(result["poll_seconds"]))
    current.home = result["home"]
    selected = _state.select or (current.selected_job().name if current.selected_job() else None)
    _state.select = None
    downloaded = {item.name: item.downloaded_to for item in current.jobs}
    _state.applying = True
    try:
        current.jobs.clear()
        index = -1
        for row in result["jobs"]:
            item = current.jobs.add()
            item.name = row["id"]
            for key in ("project", "preset", "cluster", "state", "frames_done",
                        "frames_failed", "folder"):
                setattr(item, key, row[key])
            item.frame_count = row["frames_total"]
            left = row.get("seconds_left")
            item.seconds_left = -1.0 if left is None else float(left)
            item.downloaded_to = downloaded.get(row["id"], "")
            if row["id"] == selected:
                index = len(current.jobs) - 1
        current.job_index = index
    finally:
        _state.applying = False
    _follow_message(current, result["jobs"])
    if result.get("info") and result["info"]["id"] == selected:
        _info(current, result["info"])
    elif index < 0 or _state.info_for != selected:
        current.job_info, current.preview_file, _state.info_for = "", "", None


def _submitted(current, row: dict) -> None:
    _say(current, f"submitted {row['id']}: {row['frames_total']} frame(s) on {row['preset']}",
         job=row["id"])
    _state.select = row["id"]
    refresh_jobs(quiet=True)


def _changed(current, row: dict) -> None:
    _say(current, f"{row['id']}: {row['state']}", job=row["id"])
    refresh_jobs(quiet=True)


def _downloaded(current, result: dict) -> None:
    missing = f"; missing frames {result['missing']}" if result["missing"] else ""
    _say(current, f"{result['frames_valid']}/{result['frames_expected']} frames in "
                  f"{result['frames_dir']}{missing}")
    for item in current.jobs:
        if item.name == result["id"]:
            item.downloaded_to = result["folder"]


def _info(current, info: dict) -> None:
    _state.info_for = info["id"]
    current.job_info = "\n".join(info_panel_lines(info))
    last = info.get("last_frame")
    if last and last.get("file"):
        _load_preview(last["file"])
        current.preview_file, current.preview_frame = last["file"], last["frame"]
    else:
        current.preview_file, current.preview_frame = "", 0


def _selected_info(current, info: dict) -> None:
    selected = current.selected_job()
    if selected is not None and selected.name == info["id"]:  # not one picked before
        _info(current, info)


def _load_preview(path: str) -> None:
    previews = _state.previews
    if previews is not None and path not in previews:
        previews.load(path, path, "IMAGE")


def preview(path: str):
    """The loaded preview of a frame file, or None."""
    previews = _state.previews
    return previews.get(path) if previews is not None and path else None


def _presets(current, result: dict) -> None:
    chosen = bpy.context.scene.braas_globus.preset if bpy.context.scene else "local"
    tests = {item.name: (item.test_result, item.test_ok) for item in current.presets}
    _state.applying = True
    try:
        current.presets.clear()
        for index, row in enumerate(result["presets"]):
            item = current.presets.add()
            item.name = row["name"]
            for key in ("backend", "description", "device", "cluster", "partition", "account"):
                setattr(item, key, row[key])
            item.test_result, item.test_ok = tests.get(row["name"], ("", False))
            if row["name"] == chosen:
                current.preset_index = index
    finally:
        _state.applying = False
    if "added" in result:
        note = ("; log in again so the login covers its collection"
                if result.get("mapped") else "")
        notes = "".join(f"; {n}" for n in result.get("notes", ()))
        _say(current, f"added preset {result['added']}{note}{notes}")
    elif "removed" in result:
        _say(current, f"removed preset {result['removed']}")


def _preset_added_or_found(current, result: dict) -> None:
    if "found" in result:
        _found_working_dir(current, result)
    else:
        _presets(current, result)


def _found_working_dir(current, result: dict) -> None:
    """A working directory found: it goes in the form, and the user adds the preset."""
    current.new_remote_dir = result["found"]
    before = f" (before it: {'; '.join(result['tried'])})" if result.get("tried") else ""
    _say(current, f"found the working directory {result['found']}{before}: press Add Preset "
                  "to use it")


def _tested(current, result: dict) -> None:
    checks = result["checks"]
    ok = all(check["ok"] for check in checks)
    for item in current.presets:
        if item.name == result["name"]:
            item.test_result = "\n".join(f"{'ok' if c['ok'] else 'FAILED'}  {c['name']}: "
                                         f"{c['detail']}" for c in checks)
            item.test_ok = ok
    if ok:
        _say(current, f"preset {result['name']} is ready")
    else:
        reasons = dict.fromkeys(c["detail"] for c in checks if not c["ok"])  # once each
        current.message = f"preset {result['name']} is not ready: " + "; ".join(reasons)
        current.is_error = True


def _identity(current, result: dict) -> None:
    current.signed_in = result["signed_in"]
    if result["signed_in"]:
        name = f" ({result['name']})" if result.get("name") else ""
        current.identity = f"{result['username']}{name}"
        current.login_note = ("the login does not cover " + ", ".join(result["missing"])
                              + " yet: log in again") if result.get("missing") else ""
    else:
        current.identity = ""
        current.login_note = result.get("reason", "")


def _logged_in(current, result: dict) -> None:
    _identity(current, result)
    _say(current, f"{'already ' if result.get('already') else ''}logged in to Globus as "
                  f"{current.identity}")


def _logged_out(current, result: dict) -> None:
    _identity(current, result)
    current.login_note = ""
    if result["not_revoked"]:
        _say(current, "logged out; Globus could not be told about "
                      f"{', '.join(result['not_revoked'])} (the tokens were deleted here)")
    else:
        _say(current, "logged out of Globus" if result["was_logged_in"] else
                      "was not logged in")


def _previewed(current, result: dict) -> None:
    _say(current, show_preview(result))


_FINISHED = {
    "jobs": _jobs,
    "submit": _submitted,
    "info": _selected_info,
    "preview": _previewed,
    "cancel": _changed,
    "resume": _changed,
    "download": _downloaded,
    "presets": _presets,
    "find_working_dir": _found_working_dir,
    "add_preset": _preset_added_or_found,
    "remove_preset": _presets,
    "test_preset": _tested,
    "whoami": _identity,
    "login": _logged_in,
    "logout": _logged_out,
}


# --- register ---------------------------------------------------------------------------------


def register() -> None:
    _state.previews = bpy.utils.previews.new()
    _state.next_refresh, _state.poll_seconds, _state.select = 0.0, 2.0, None
    _state.stale = True
    bpy.app.timers.register(drain, first_interval=INTERVAL, persistent=True)
    bpy.app.timers.register(initial_load, first_interval=1.0)
    bpy.app.handlers.load_post.append(_on_load)


def unregister() -> None:
    if _on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load)
    for timer in (initial_load, drain):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    if _state.worker is not None:
        _state.worker.stop(timeout=5.0)
        _state.worker = None
    if _state.previews is not None:
        bpy.utils.previews.remove(_state.previews)
        _state.previews = None
