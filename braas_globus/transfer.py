"""Move a job's files with Globus Transfer between the user's collection and a centre's.

At the centre, under the preset's working directory (the names: worker/job_layout.py):

    objects/<sha[:2]>/<sha>      staged files by content, shared by all the user's jobs
    jobs/<job>/job/manifest.json the job's tree: relative path -> sha256, size
    jobs/<job>/in/               built on the worker by hard-linking objects (render_task)
    jobs/<job>/out/ log/ job/    what the tasks write

Uploads use checksum sync and checksum verification, so an object already at the centre
is skipped (an unchanged scene sends no asset bytes; a changed texture sends that file
only). Downloads list the remote folders first and accept only plain files with exactly
the names the tasks write (job_layout.RESULT_NAMES), so nothing the remote side returns can
land outside the job folder.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import globus_sdk

from .auth import login_needed_from
from .errors import RunError, StagingError
from .pack import Manifest
from .presets import ClusterPreset
from .progress import BYTES
from .worker import job_layout

if TYPE_CHECKING:
    from .service import Reporter

DOWNLOADED_FOLDERS = tuple(job_layout.RESULT_NAMES)  # out, out/parts, log, job/progress


@dataclass(frozen=True)
class TransferOutcome:
    task_id: str
    files: int
    files_skipped: int
    bytes_transferred: int


#: Globus retries a fault (an offline Globus Connect Personal, a permission denied) for up
#: to a day with the task ACTIVE; a job waits this long on one, then cancels the transfer.
STUCK_AFTER_S = 30 * 60
_NO_FAULT = (None, "", "OK", "Queued")
#: Answers the SDK retries by itself (with backoff) before raising: still "not answering".
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


def service_unavailable(err: BaseException) -> bool:
    """Whether ``err`` says that a Globus service does not answer for now: a 429 or 5xx
    (the SDK has already retried it) that is not a login requirement (a 502 may carry a
    session requirement, which only a login mends)."""
    return isinstance(err, globus_sdk.GlobusAPIError) and \
        err.http_status in TRANSIENT_STATUSES and login_needed_from(err) is None


def refusal_reason(err: globus_sdk.GlobusAPIError) -> str:
    """Why Globus refused, in one line: what to log in for where a login mends it (a
    consent the login lacks, a session), else ``<status> <code>: <message>``."""
    needed = login_needed_from(err)
    return str(needed) if needed else f"{err.http_status} {err.code}: {err.message}"


class JobTransfers:
    """The transfers of one job between the user's collection and the preset's centre."""

    def __init__(self, client: globus_sdk.TransferClient, preset: ClusterPreset, home: Path,
                 poll_seconds: float = 2.0, stuck_after_s: float | None = None) -> None:
        self.client = client
        self.preset = preset
        self.home = home
        self.poll_seconds = poll_seconds
        self.stuck_after_s = STUCK_AFTER_S if stuck_after_s is None else stuck_after_s

    # --- paths ------------------------------------------------------------------------
    def local_path(self, path: Path) -> str:
        """``path`` (inside BRAAS_HOME) as the user's collection names it."""
        relative = path.resolve().relative_to(self.home.resolve()).as_posix()
        root = self.preset.local_dir or str(self.home.resolve())
        return str(PurePosixPath(root) / relative)

    def remote_path(self, *parts: str) -> str:
        """As the centre's collection names it (the nodes may see it elsewhere:
        ``ClusterPreset.worker_path``)."""
        return self.preset.remote_path(*parts)

    def remote_job(self, job_id: str, *parts: str) -> str:
        return self.remote_path(job_layout.JOBS, job_id, *parts)

    # --- upload -----------------------------------------------------------------------
    def send_stage(self, job_id: str, manifest: Manifest, objects_dir: Path, job_folder: Path,
                   reporter: Reporter | None = None) -> TransferOutcome:
        """Send the objects the centre lacks, and the job's manifest."""
        data = globus_sdk.TransferData(
            self.preset.local_collection_id, self.preset.collection_id,
            label=f"braas {job_id} scene", sync_level="checksum", verify_checksum=True)
        sizes = {entry.sha256: entry.size for entry in manifest.values()}  # each content once
        for sha in sorted(sizes):
            data.add_item(self.local_path(objects_dir / job_layout.object_name(sha)),
                          self.remote_path(job_layout.OBJECTS, job_layout.object_name(sha)))
        data.add_item(self.local_path(job_folder / job_layout.MANIFEST),
                      self.remote_job(job_id, job_layout.MANIFEST))
        return self._run(data, "upload the scene", reporter, sum(sizes.values()))

    def send_cancel_marker(self, job_id: str, job_folder: Path) -> str:
        """Put the job's cancel marker at the centre; returns the transfer task id."""
        marker = job_folder / job_layout.CANCEL
        marker.touch()
        data = globus_sdk.TransferData(self.preset.local_collection_id, self.preset.collection_id,
                                       label=f"braas {job_id} cancel")
        data.add_item(self.local_path(marker), self.remote_job(job_id, job_layout.CANCEL))
        return str(self.client.submit_transfer(data)["task_id"])

    # --- download ---------------------------------------------------------------------
    def fetch_results(self, job_id: str, job_folder: Path, reporter: Reporter | None = None,
                      parts: bool = False) -> TransferOutcome | None:
        """Bring out/, log/ and the progress records back (and ``parts``: a split still's
        out/parts/); None when there is nothing yet."""
        data = globus_sdk.TransferData(
            self.preset.collection_id, self.preset.local_collection_id,
            label=f"braas {job_id} results", sync_level="checksum", verify_checksum=True)
        count = total = 0
        for folder in DOWNLOADED_FOLDERS:
            if folder == job_layout.PARTS and not parts:
                continue  # only a split still has them: no listing of a folder never written
            for name, size in self._remote_files(self.remote_job(job_id, folder),
                                                 job_layout.RESULT_NAMES[folder]):
                local = job_folder / folder / name
                local.parent.mkdir(parents=True, exist_ok=True)
                data.add_item(self.remote_job(job_id, folder, name), self.local_path(local))
                count += 1
                total += size
        return self._run(data, "download the results", reporter, total) if count else None

    def _remote_files(self, path: str,
                      names_written: re.Pattern[str]) -> list[tuple[str, int]]:
        """(name, size) of the plain files in a remote folder, each name exactly one the
        render tasks write there."""
        try:
            listing = self.client.operation_ls(self.preset.collection_id, path=path)
        except globus_sdk.TransferAPIError as err:
            if err.http_status == 404:
                return []  # nothing written there yet
            needed = login_needed_from(err)
            if needed is not None:
                raise needed from None
            raise RunError(f"cannot list {path} at {self.preset.cluster}: {err.message}") from err
        names = []
        for entry in listing:
            # Globus lists a link to a file as type "file" with a link_target (a transfer
            # would copy what it points at), a broken one as "invalid_symlink": only plain
            # files come back, never links or folders.
            if entry.get("type") != "file" or entry.get("link_target"):
                continue
            name, size = entry["name"], entry.get("size")
            # fullmatch: with match, "$" also matches before a trailing newline.
            if not isinstance(name, str) or not names_written.fullmatch(name):
                raise RunError(f"refusing to download {path}/{str(name)[:80]!r}: not a name "
                               "the render tasks write")
            names.append((name, size if isinstance(size, int) and size > 0 else 0))
        return names

    # --- waiting ----------------------------------------------------------------------
    def _run(self, data: globus_sdk.TransferData, what: str, reporter: Reporter | None,
             total_bytes: int) -> TransferOutcome:
        try:
            task_id = str(self.client.submit_transfer(data)["task_id"])
        except globus_sdk.TransferAPIError as err:
            raise StagingError(f"could not {what}: {refusal_reason(err)}; then "
                               "`braas-globus resume`") from None
        return self.wait(task_id, what, reporter, total_bytes)

    def wait(self, task_id: str, what: str, reporter: Reporter | None = None,
             total_bytes: int = 0) -> TransferOutcome:
        """Follow a transfer to its end, showing files and bytes as they move, and what
        Globus is retrying; a fault that lasts ``stuck_after_s`` cancels it."""
        fault_since: float | None = None
        fault: str | None
        while True:
            task = self._task(task_id, what)
            if task is None:  # Globus did not answer: a fault like any other, bounded
                fault = "Globus Transfer does not answer"
            else:
                # Globus's own words for a fault it retries ("Globus Connect Personal is
                # not connected"), with its code when it gives no words.
                fault = None if task.get("nice_status") in _NO_FAULT else \
                    str(task.get("nice_status_short_description") or task["nice_status"])[:200]
            if reporter is not None and task is not None:
                moved = (task.get("files_transferred") or 0) + (task.get("files_skipped") or 0)
                reporter.step(f"{what}: {moved}/{task.get('files') or '?'} files"
                              + (f"; Globus retries: {fault}" if fault else ""))
                reporter.progress(task["bytes_transferred"],
                                  max(total_bytes, task["bytes_transferred"]), BYTES)
            status = task["status"] if task is not None else "UNKNOWN"
            if status == "SUCCEEDED":
                assert task is not None  # "UNKNOWN" without a document
                return TransferOutcome(task_id, task["files"], task["files_skipped"],
                                       task["bytes_transferred"])
            if status in ("FAILED", "INACTIVE"):
                assert task is not None  # "UNKNOWN" without a document
                fatal = task.get("fatal_error") or {}  # null while none, not absent
                reason = task.get("nice_status") or fatal.get("description") \
                    or fatal.get("code") or status
                raise StagingError(f"the transfer to {what} {status.lower()} ({reason}; "
                                   f"Globus task {task_id}); fix it, then `braas-globus resume`")
            if task is not None and task.get("is_paused"):
                raise StagingError(f"the transfer to {what} is paused by a collection "
                                   f"administrator (Globus task {task_id})")
            fault_since = (fault_since or time.monotonic()) if fault else None
            if fault_since is not None and time.monotonic() - fault_since >= self.stuck_after_s:
                self._cancel(task_id)  # nothing keeps moving behind a resume
                raise StagingError(f"the transfer to {what} is stuck: {fault} (Globus task "
                                   f"{task_id}, cancelled after {self.stuck_after_s:.0f} s); "
                                   "fix it, then `braas-globus resume`")
            time.sleep(self.poll_seconds)

    def _task(self, task_id: str, what: str) -> globus_sdk.GlobusHTTPResponse | None:
        """The transfer's document; None while Globus does not answer (the SDK has already
        retried a 429 or 5xx). Any other refusal ends the wait with the job kept: the
        transfer may still run at Globus, and `resume` finds it done or sends it again."""
        try:
            return self.client.get_task(task_id)
        except globus_sdk.GlobusAPIError as err:
            if service_unavailable(err):
                return None
            raise StagingError(f"cannot follow the transfer to {what} (Globus task "
                               f"{task_id}): {refusal_reason(err)}; then `braas-globus resume`"
                               ) from None
        except globus_sdk.NetworkError:
            return None

    def _cancel(self, task_id: str) -> None:
        try:
            self.client.cancel_task(task_id)
        except (globus_sdk.GlobusAPIError, globus_sdk.NetworkError):
            pass  # it ends at Globus's own deadline; `resume` sends what is missing
