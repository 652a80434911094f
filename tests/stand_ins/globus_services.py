"""STAND-INS for the Globus Transfer and Compute web services, for offline tests only.

No Globus service is reachable from this machine. These answer the HTTP calls that the
real globus-sdk and globus-compute-sdk clients make (through the `responses` library), and
do on this machine what the services would arrange:

- Transfer: a collection is a folder here; a transfer copies files, honouring
  ``sync_level="checksum"`` (a file whose content is already at the destination is
  skipped) and counting files and bytes as the service reports them.
- Compute: a registered function and each submitted task are put back together exactly as
  the service hands them to an endpoint (a messagepack ``Task`` whose buffer holds the
  function and its arguments) and run on a REAL endpoint engine (globus-compute-endpoint's
  ThreadPoolEngine); ``batch_status`` answers with the engine's real, serialized results.

What is real around them: the SDK clients, the Executor's submission path, our code.

Adversarial answers: ``stand_in.play(operation, status, document)`` makes the next call of
that operation (``"submit"``, ``"task"``, ``"cancel"``, ``"ls"``, ``"endpoint"`` for
Transfer; ``"register"``, ``"submit"``, ``"batch_status"``, ``"task"``, ``"status"`` for
Compute) answer with that HTTP status and JSON document instead, once per ``play``, in
order. Documents are the ones Globus sends (see ``documents.py``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import re
import shutil
import threading
import uuid
from pathlib import Path

import dill
import responses
from globus_compute_sdk import __version__ as _compute_sdk_version
from globus_sdk.config import get_service_url
from globus_sdk.testing.data.compute import _common as compute_data
from globus_sdk.testing.data.compute.v2 import get_endpoint_status as endpoint_status
from globus_sdk.testing.data.transfer import task_list

TRANSFER = get_service_url("transfer").rstrip("/")
COMPUTE = get_service_url("compute").rstrip("/")

#: The documents start from globus-sdk's own testing data (a real task's every field), and
#: the stand-in sets what it knows.
TRANSFER_TASK_DOC = task_list.TASK_LIST_DOC["DATA"][0]
#: The engine runs in this process: the workers' Python and dill are this one's.
COMPUTE_TASK_DETAILS = {**compute_data.TASK_DOC["details"],
                        "python_version": platform.python_version(),
                        "dill_version": dill.__version__,
                        "globus_compute_sdk_version": _compute_sdk_version}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Faults:
    """Answers queued by ``play``, given before the stand-in's own answer."""

    def play(self, operation: str, status: int, document: dict) -> None:
        self.__dict__.setdefault("_queued", {}).setdefault(operation, []).append(
            (status, document))

    def _answer(self, operation: str, handler):
        def callback(request):
            queued = self.__dict__.get("_queued", {}).get(operation)
            if queued:
                status, document = queued.pop(0)
                self.played.append(operation)
                return status, {"Content-Type": "application/json"}, json.dumps(document)
            return handler(request)

        return callback

    @property
    def played(self) -> list[str]:
        return self.__dict__.setdefault("_played", [])


class TransferStandIn(_Faults):
    """Collections are folders on this machine: ``{collection_id: root folder}``."""

    def __init__(self, mock: responses.RequestsMock, collections: dict[str, Path]) -> None:
        self.collections = {str(k): Path(v) for k, v in collections.items()}
        self.tasks: dict[str, dict] = {}
        self.submissions: list[dict] = []
        self.fail_next: str | None = None  # a fatal_error code, e.g. "PERMISSION_DENIED"
        self.pause_next = False  # an administrator paused the next transfer
        # (nice_status, its short description): the next transfer stays ACTIVE while
        # Globus retries that fault, as it does for up to a day, until it is cancelled.
        self.retry_next: tuple[str, str] | None = None
        self.canceled: list[str] = []
        mock.add(responses.GET, f"{TRANSFER}/v0.10/submission_id",
                 json={"value": str(uuid.uuid4())})
        mock.add_callback(responses.POST, f"{TRANSFER}/v0.10/transfer",
                          self._answer("submit", self._submit))
        mock.add_callback(responses.GET, re.compile(rf"{TRANSFER}/v0.10/task/[-0-9a-f]+$"),
                          self._answer("task", self._task))
        mock.add_callback(responses.POST,
                          re.compile(rf"{TRANSFER}/v0.10/task/[-0-9a-f]+/cancel$"),
                          self._answer("cancel", self._cancel))
        mock.add_callback(responses.GET,
                          re.compile(rf"{TRANSFER}/v0.10/operation/endpoint/[-0-9a-f]+/ls.*"),
                          self._answer("ls", self._ls))
        mock.add_callback(responses.GET, re.compile(rf"{TRANSFER}/v0.10/endpoint/[-0-9a-f]+$"),
                          self._answer("endpoint", self._endpoint))

    def path(self, collection: str, path: str) -> Path:
        return self.collections[str(collection)] / path.lstrip("/")

    def _submit(self, request):
        body = json.loads(request.body)
        self.submissions.append(body)
        task_id = str(uuid.uuid4())
        files = skipped = sent = 0
        for item in body["DATA"]:
            source = self.path(body["source_endpoint"], item["source_path"])
            target = self.path(body["destination_endpoint"], item["destination_path"])
            files += 1
            if body.get("sync_level") == 3 and target.exists() and _digest(target) == _digest(source):
                skipped += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            sent += source.stat().st_size
        status, nice, words, paused, fatal = "SUCCEEDED", None, None, False, None
        if self.fail_next:  # as Globus ends a task: FAILED, the reason in fatal_error
            status, fatal = "FAILED", {"code": self.fail_next,
                                       "description": f"{self.fail_next.lower()} (stand-in)"}
            self.fail_next = None
        if self.pause_next:
            status, nice, paused, self.pause_next = ("ACTIVE", "PAUSED_BY_ADMIN", True, False)
        if self.retry_next:
            (nice, words), self.retry_next, status = self.retry_next, None, "ACTIVE"
        self.tasks[task_id] = {**copy.deepcopy(TRANSFER_TASK_DOC), "DATA_TYPE": "task",
                               "task_id": task_id, "status": status, "label": body.get("label"),
                               "source_endpoint_id": body["source_endpoint"],
                               "destination_endpoint_id": body["destination_endpoint"],
                               "sync_level": body.get("sync_level"),
                               "verify_checksum": body.get("verify_checksum", False),
                               "nice_status": nice, "nice_status_short_description": words,
                               "fatal_error": fatal, "files": files, "files_skipped": skipped,
                               "files_transferred": files - skipped, "bytes_transferred": sent,
                               "bytes_checksummed": sent, "is_paused": paused,
                               "completion_time": None if status == "ACTIVE" else
                               TRANSFER_TASK_DOC["completion_time"]}
        return 202, {}, json.dumps({"DATA_TYPE": "transfer_result", "code": "Accepted",
                                    "task_id": task_id, "submission_id": body["submission_id"]})

    def _cancel(self, request):
        task_id = request.url.rsplit("/", 2)[1]
        self.canceled.append(task_id)
        self.tasks[task_id].update(status="FAILED", nice_status=None,
                                   fatal_error={"code": "CANCELED",
                                                "description": "canceled"})
        return 200, {}, json.dumps({"DATA_TYPE": "result", "code": "Canceled",
                                    "message": "The task has been cancelled successfully."})

    def _task(self, request):
        task_id = request.url.rsplit("/", 1)[1]
        return 200, {}, json.dumps(self.tasks[task_id])

    def _ls(self, request):
        match = re.search(r"/endpoint/([-0-9a-f]+)/ls", request.url)
        from urllib.parse import parse_qs, urlparse

        path = parse_qs(urlparse(request.url).query)["path"][0]
        folder = self.path(match.group(1), path)
        if not folder.is_dir():
            return 404, {}, json.dumps({"code": "ClientError.NotFound",
                                        "message": f"Directory '{path}' not found"})
        entries = [_ls_entry(p) for p in sorted(folder.iterdir())]
        return 200, {}, json.dumps({"DATA_TYPE": "file_list", "DATA": entries, "path": path})

    def _endpoint(self, request):
        collection = request.url.rsplit("/", 1)[1]
        return 200, {}, json.dumps({"DATA_TYPE": "endpoint", "id": collection,
                                    "display_name": f"stand-in {collection[:8]}"})


def _ls_entry(path: Path) -> dict:
    """One entry as Globus lists it: there is no type "link"; a link is listed as what it
    points at, with its link_target, and a broken one as "invalid_symlink"."""
    entry = {"DATA_TYPE": "file", "name": path.name, "size": 0, "link_target": None}
    if path.is_symlink():
        entry["link_target"] = os.readlink(path)
        if not path.exists():
            return {**entry, "type": "invalid_symlink"}
    entry["type"] = "dir" if path.is_dir() else "file"
    if entry["type"] == "file":
        entry["size"] = path.stat().st_size
    return entry


class ComputeStandIn(_Faults):
    """Tasks run on a real ThreadPoolEngine; results come back through batch_status."""

    def __init__(self, mock: responses.RequestsMock, engines: dict[str, object]) -> None:
        """``engines``: endpoint id -> a started engine, one per centre."""
        from globus_compute_sdk.serialize import ComputeSerializer

        self.engines = engines
        self.serde = ComputeSerializer()
        self.functions: dict[str, str] = {}
        self.futures: dict[str, object] = {}
        self.submissions: list[dict] = []
        self.lock = threading.Lock()
        mock.add_callback(responses.POST, f"{COMPUTE}/v3/functions",
                          self._answer("register", self._register))
        mock.add_callback(responses.POST, f"{COMPUTE}/v2/batch_status",
                          self._answer("batch_status", self._batch_status))
        mock.add_callback(responses.GET, re.compile(rf"{COMPUTE}/v2/tasks/[-0-9a-f]+$"),
                          self._answer("task", self._task))
        for endpoint_id in engines:
            mock.add_callback(responses.POST, f"{COMPUTE}/v3/endpoints/{endpoint_id}/submit",
                              self._answer("submit", self._submit))
            mock.add_callback(responses.GET, f"{COMPUTE}/v2/endpoints/{endpoint_id}/status",
                              self._answer("status", lambda request: (
                                  200, {}, json.dumps(endpoint_status.DEFAULT_RESPONSE_DOC))))

    def _register(self, request):
        body = json.loads(request.body)
        function_id = str(uuid.uuid4())
        self.functions[function_id] = body["function_code"]
        return 200, {}, json.dumps({"function_uuid": function_id})

    def _submit(self, request):
        from globus_compute_common import messagepack
        from globus_compute_common.messagepack.message_types import Task
        from globus_compute_endpoint.engines.base import GCFuture

        body = json.loads(request.body)
        endpoint_id = request.url.rsplit("/", 2)[1]
        self.submissions.append({**body, "endpoint_id": endpoint_id})
        engine = self.engines[endpoint_id]
        ids: dict[str, list[str]] = {}
        for function_id, payloads in body["tasks"].items():
            (function_buffer,) = self.serde.unpack_buffers(self.functions[function_id])
            for payload in payloads:
                task_id = str(uuid.uuid4())
                args, kwargs = self.serde.unpack_buffers(payload)
                buffer = self.serde.pack_buffers([function_buffer, args, kwargs])
                packed = messagepack.pack(Task(task_id=uuid.UUID(task_id), task_buffer=buffer))
                future = GCFuture(uuid.UUID(task_id))
                engine.submit(future, packed, resource_specification={})
                with self.lock:
                    self.futures[task_id] = future
                ids.setdefault(function_id, []).append(task_id)
        return 200, {}, json.dumps({"request_id": str(uuid.uuid4()),
                                    "task_group_id": str(uuid.uuid4()),
                                    "endpoint_id": endpoint_id, "tasks": ids})

    def _status(self, task_id: str) -> dict:
        """A task's entry as the service gives it (``GET /v2/tasks/<id>`` and in
        ``batch_status``)."""
        from globus_compute_common import messagepack

        future = self.futures.get(task_id)
        if future is None:  # as the service answers an id it has forgotten, or never knew
            return {"task_id": task_id, "status": "failed", "pending": False,
                    "reason": "unknown task id"}
        if not future.done():
            return {"task_id": task_id, "status": "running", "pending": True}
        result = messagepack.unpack(future.result())
        ended = {"task_id": task_id, "pending": False, "details": COMPUTE_TASK_DETAILS,
                 "completion_t": compute_data.TASK_DOC["completion_t"]}
        if result.is_error:
            return {**ended, "status": "failed", "exception": result.data}
        return {**ended, "status": "success", "result": result.data}

    def _batch_status(self, request):
        results = {task_id: self._status(task_id)
                   for task_id in json.loads(request.body)["task_ids"]}
        return 200, {}, json.dumps({"response": "batch", "results": results})

    def _task(self, request):
        return 200, {}, json.dumps(self._status(request.url.rstrip("/").rsplit("/", 1)[1]))

    def wait_all(self, timeout: float = 120) -> None:
        import concurrent.futures

        with self.lock:
            pending = list(self.futures.values())
        concurrent.futures.wait(pending, timeout=timeout)


def log_in_to_stand_ins(monkeypatch) -> None:
    """``auth``'s Transfer and Compute clients: real SDK clients with a stand-in token, as
    after `braas-globus login` (their calls reach the stand-ins)."""
    import globus_sdk
    from globus_compute_sdk import Client

    from braas_globus import auth

    token = globus_sdk.AccessTokenAuthorizer("stand-in-token")
    monkeypatch.setattr(auth, "transfer_client",
                        lambda: globus_sdk.TransferClient(authorizer=token))
    monkeypatch.setattr(auth, "compute_client",
                        lambda: Client(do_version_check=False, authorizer=token))
