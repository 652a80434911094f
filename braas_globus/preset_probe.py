"""`presets test`: every check of a cluster preset, and the probe that proves the paths.

The checks run in order, each with its own result (a failed check does not stop the next):
the centre's Compute endpoint is online, the centre's collection answers and is the kind
the preset says, the working directory lists, the user's own collection answers. Then the
probe: Transfer sends a small file into ``<remote_dir>/probe/``, ONE Compute task (the same
registered function as renders, so a centre's ``allowed_functions`` stays one id) reads it
at the worker's path and writes an answer beside it, and Transfer must list that answer.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import UUID

import globus_sdk

from .preset_check import (
    _KIND_WORDS,
    Check,
    CollectionFacts,
    _api_reason,
    _clip,
    _not_a_collection,
    collection_facts,
)
from .presets import ClusterPreset

if TYPE_CHECKING:
    from globus_compute_sdk import Client as ComputeClient

    from .service import Reporter

#: The probe's bounds: each wait (the transfer, the Compute task), and the poll interval
#: (the Compute service allows about 20 requests per 10 s).
PROBE_WAIT_S = 120.0
PROBE_POLL_S = 3.0
PROBE_WALLTIME_MINUTES = 10


class ProbeAnswer(TypedDict):
    """The probe task's answer, as :func:`_parse_answer` reads it from the worker."""

    ok: bool  # the worker read the probe file
    node: str
    read: str  # where it read it
    sha256: str | None  # of what it read
    wrote: bool  # it wrote its answer beside the probe file
    write: str  # where
    reason: str  # why not, where it could not


def check_preset(preset: ClusterPreset, transfer: globus_sdk.TransferClient,
                 compute: ComputeClient, *, home: Path | None = None,
                 function_id: Callable[[], str] | None = None,
                 reporter: Reporter | None = None) -> list[Check]:
    """Run every check; a failed check does not stop the next one. With ``home`` (BRAAS_HOME)
    and ``function_id`` (the render function's id, registered once), the probe runs too."""
    checks: list[Check] = []
    docs: dict[str, Mapping[str, Any]] = {}

    def attempt(name: str, action: Callable[[], tuple[bool, str]]) -> bool:
        try:
            checks.append(Check(name, *action()))
        except Exception as err:  # an API or network error is this check's result
            checks.append(Check(name, False, _api_reason(err)))
        return checks[-1].ok

    def endpoint() -> tuple[bool, str]:
        status = compute.get_endpoint_status(str(preset.endpoint_id))
        state = _clip(status.get("status", "unknown"), 40)
        return state == "online", f"Compute endpoint {preset.endpoint_id} is {state}"

    def collection(collection_id: UUID, label: str) -> tuple[bool, str]:
        doc = docs[label] = transfer.get_endpoint(collection_id).data
        name = _clip(doc.get("display_name") or collection_id)
        return True, f"{label} '{name}' answers"

    def kind() -> tuple[bool, str]:
        return _kind_check(preset, collection_facts(docs["centre collection"]))

    def working_dir() -> tuple[bool, str]:
        listing = transfer.operation_ls(preset.collection_id, path=preset.remote_dir)
        return True, f"{preset.remote_dir} lists ({len(list(listing))} entries)"

    ready = attempt("endpoint", endpoint)
    if attempt("collection", lambda: collection(preset.collection_id, "centre collection")):
        attempt("collection kind", kind)
    ready &= attempt("working directory", working_dir)
    ready &= attempt("your collection",
                     lambda: collection(preset.local_collection_id, "your collection"))
    if home is None or function_id is None:
        return checks
    if not ready:
        checks.append(Check("probe", False, "not sent: the endpoint, the working directory "
                                            "and your collection must pass first"))
        return checks
    checks += Probe(preset, transfer, compute, home, function_id, reporter).run()
    return checks


def _kind_check(preset: ClusterPreset, facts: CollectionFacts) -> tuple[bool, str]:
    wrong = _not_a_collection(facts, preset.collection_id)
    if wrong:
        return False, wrong
    said = preset.collection_kind
    if facts.kind is None:
        return True, f"the centre's collection is {facts.words}"
    agrees = said == facts.kind if said is not None \
        else preset.mapped_collection == facts.needs_data_access
    if agrees:
        return True, f"the centre's collection is {facts.words}, as the preset says"
    if said is not None:
        words = _KIND_WORDS[said].split(" (")[0]
    else:
        words = "a mapped collection" if preset.mapped_collection else "a guest collection"
    return False, (f"Globus says the centre's collection is {facts.words}; the preset says "
                   f"{words}: `braas-globus presets remove {preset.name}`, then add it again "
                   "while logged in (Globus's kind is read then), and `braas-globus login "
                   "--force`")


class Probe:
    """The end-to-end proof that the collection and the worker see the same folder."""

    def __init__(self, preset: ClusterPreset, transfer: globus_sdk.TransferClient,
                 compute: ComputeClient, home: Path, function_id: Callable[[], str],
                 reporter: Reporter | None = None) -> None:
        self.preset, self.transfer, self.compute = preset, transfer, compute
        self.home, self.function_id, self.reporter = home, function_id, reporter
        token = uuid.uuid4().hex
        self.name, self.answer = f"probe-{token}.txt", f"probe-{token}.answer"
        self.content = f"braas-globus probe {secrets.token_hex(24)}\n".encode()
        self.digest = hashlib.sha256(self.content).hexdigest()
        self.remote = preset.remote_path("probe", self.name)
        self.remote_answer = preset.remote_path("probe", self.answer)
        # The worker's path: worker_dir; else remote_dir; a home-relative one the worker
        # resolves in its own home (and the check says which --worker-dir that is).
        if preset.worker_dir_known:
            self.read = preset.worker_path("probe", self.name)
        else:
            self.read = "~" + self.remote[len("/~"):]
        self.write = str(PurePosixPath(self.read).with_name(self.answer))

    def _step(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.step(text)

    def run(self) -> list[Check]:
        from .transfer import JobTransfers

        folder = self.home / "probe"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        local = folder / self.name
        local.write_bytes(self.content)
        checks: list[Check] = []
        try:
            self._step("probe: sending a file to the centre")
            try:
                data = globus_sdk.TransferData(self.preset.local_collection_id,
                                               self.preset.collection_id,
                                               label="braas presets test probe")
                data.add_item(JobTransfers(self.transfer, self.preset, self.home)
                              .local_path(local), self.remote)
                failed = self._wait_transfer(str(self.transfer.submit_transfer(data)["task_id"]))
            except Exception as err:  # noqa: BLE001 - an API or network error is the result
                failed = _api_reason(err)
            if failed:
                checks.append(Check("probe sent", False, f"could not send {self.name} to "
                                                         f"{self.remote}: {failed}"))
                return checks
            checks.append(Check("probe sent", True, f"{self.name} is at {self.remote} on the "
                                                    "centre's collection"))
            self._step(f"probe: waiting for a worker (up to {PROBE_WAIT_S:.0f} s)")
            result, failed = self._run_task()
            checks.append(self._worker_check(result, failed))
            if result is None or not result["ok"] or result["sha256"] != self.digest:
                return checks
            if not result["wrote"]:
                checks.append(Check("collection sees the worker's file", False,
                                    f"the worker could not write its answer: {result['reason']}"))
                return checks
            self._step("probe: looking for the worker's answer")
            checks.append(self._answer_check(result))
            return checks
        finally:
            local.unlink(missing_ok=True)
            self._clean_up()

    def _wait_transfer(self, task_id: str) -> str | None:
        """None when the transfer succeeded, else why not (cancelled after PROBE_WAIT_S)."""
        deadline = time.monotonic() + PROBE_WAIT_S
        while True:
            task = self.transfer.get_task(task_id)
            status = task.get("status")
            if status == "SUCCEEDED":
                return None
            if status in ("FAILED", "INACTIVE"):
                fatal = task.get("fatal_error") or {}
                why = task.get("nice_status") or fatal.get("description") or status
                return f"the transfer {str(status).lower()} ({_clip(why)}; Globus task {task_id})"
            if time.monotonic() >= deadline:
                try:
                    self.transfer.cancel_task(task_id)
                except Exception:  # noqa: BLE001 - it was asked; the answer says the rest
                    pass
                fault = task.get("nice_status_short_description") or task.get("nice_status")
                return (f"the transfer did not end in {PROBE_WAIT_S:.0f} s ("
                        f"{_clip(fault or status)}; Globus task {task_id}, cancelled)")
            time.sleep(min(PROBE_POLL_S, 1.0))

    def _run_task(self) -> tuple[ProbeAnswer | None, str | None]:
        """(the worker's answer, None), or (None, why there is none)."""
        from globus_compute_sdk.errors import TaskExecutionFailed

        from .catalog import load_catalog
        from .dispatch.globus import no_environment_warning
        from .endpoint_config import user_config_for

        partition = load_catalog().get(self.preset.cluster).get(self.preset.partition)
        walltime = min(PROBE_WALLTIME_MINUTES, partition.max_walltime_minutes or 10 ** 6)
        one_block = self.preset.model_copy(update={"nodes_per_block": partition.min_nodes,
                                                   "max_blocks": 1})
        try:
            function_id = self.function_id()
            batch = self.compute.create_batch(
                user_endpoint_config=user_config_for(one_block, {"walltime_minutes": walltime}))
            task = {"kind": "probe", "read": self.read, "write": self.write}
            batch.add(function_id, args=(task, str(PurePosixPath(self.read).parent)))
            answer = self.compute.batch_run(str(self.preset.endpoint_id), batch)
            (task_id,) = answer["tasks"][function_id]
        except Exception as err:  # noqa: BLE001 - the Compute service's answer is the result
            return None, f"the Compute service did not take the probe task: {_api_reason(err)}"
        deadline = time.monotonic() + PROBE_WAIT_S
        status: dict[str, Any] = {}  # the Compute service's word on the task
        while time.monotonic() < deadline:
            try:
                with no_environment_warning():
                    status = self.compute.get_task(task_id)
            except TaskExecutionFailed as err:
                lines = [line for line in str(err.remote_data).splitlines() if line.strip()]
                return None, "the probe task failed at the centre: " + \
                    _clip(lines[-1] if lines else "no reason given")
            except Exception as err:  # noqa: BLE001
                return None, f"cannot read the probe task {task_id}: {_api_reason(err)}"
            if not status.get("pending", True):
                return _parse_answer(status.get("result"))
            time.sleep(PROBE_POLL_S)
        state = _clip(status.get("status") or "unknown", 40)
        return None, (f"no answer from the endpoint in {PROBE_WAIT_S:.0f} s (the task is "
                      f"{state}): the endpoint's batch job may still be queued at the centre; "
                      f"run `braas-globus presets test {self.preset.name}` again later "
                      f"(Compute task {task_id})")

    def _worker_check(self, result: ProbeAnswer | None, failed: str | None) -> Check:
        name = "worker reads it"
        if result is None:
            return Check(name, False, failed or "no answer")
        node, read = result["node"], result["read"]
        if not result["ok"]:
            return Check(name, False, (
                f"the worker on {node} cannot read {read} ({result['reason']}), where the "
                f"collection has {self.remote}: the collection and the centre's nodes see "
                "the working directory at different paths; set --worker-dir to it as the "
                f"nodes see it (`braas-globus presets remove {self.preset.name}`, then add it "
                "again with --worker-dir)"))
        if result["sha256"] != self.digest:
            return Check(name, False, (
                f"the worker on {node} read another file at {read} than the collection has at "
                f"{self.remote}: set --worker-dir to the working directory as the nodes see it"))
        if not self.preset.worker_dir_known:
            found = str(PurePosixPath(read).parent.parent)
            return Check(name, False, (
                f"the worker on {node} reads it at {read}: the preset needs --worker-dir "
                f"{found} (`braas-globus presets remove {self.preset.name}`, then add it again "
                "with that)"))
        return Check(name, True, f"the worker on {node} reads it at {read}")

    def _answer_check(self, result: ProbeAnswer) -> Check:
        name = "collection sees the worker's file"
        expected = len(answer_text(self.digest, result["node"]).encode())
        folder = str(PurePosixPath(self.remote_answer).parent)
        try:
            listing = self.transfer.operation_ls(self.preset.collection_id, path=folder)
            entries = {e.get("name"): e for e in listing}
        except Exception as err:  # noqa: BLE001
            return Check(name, False, f"cannot list {folder}: {_api_reason(err)}")
        entry = entries.get(self.answer)
        if entry is None:
            return Check(name, False, (
                f"the worker wrote {result['write']}, and {folder} on the collection does not "
                "show it: they are different folders; set --worker-dir to the working "
                "directory as the centre's nodes see it"))
        if entry.get("type") != "file" or entry.get("link_target") or \
                entry.get("size") != expected:
            return Check(name, False, f"{self.remote_answer} is not the worker's answer "
                                      f"({expected} bytes)")
        return Check(name, True, f"{self.remote_answer} is there, written on {result['node']}")

    def _clean_up(self) -> None:
        """Delete the probe files at the centre (one Transfer delete, not waited for)."""
        try:
            data = globus_sdk.DeleteData(endpoint=self.preset.collection_id,
                                         label="braas presets test probe", ignore_missing=True)
            data.add_item(self.remote)
            data.add_item(self.remote_answer)
            self.transfer.submit_delete(data)
        except Exception:  # noqa: BLE001 - two small files left in probe/ harm nothing
            pass


def answer_text(digest: str, node: str) -> str:
    """The answer file the probe task writes (compute_task.render_on_worker, kind probe)."""
    return json.dumps({"node": node, "sha256": digest}, sort_keys=True)


_SHA = re.compile(r"[0-9a-f]{64}")


def _parse_answer(result: object) -> tuple[ProbeAnswer | None, str | None]:
    """The probe task's result (the centre's word, untrusted): strictly, bounded."""
    bad = (None, "the worker's answer is malformed")
    if not isinstance(result, dict) or result.get("event") != "probe":
        return bad
    ok, node, read = result.get("ok"), result.get("node"), result.get("read")
    if not isinstance(ok, bool) or not isinstance(node, str) or not isinstance(read, str):
        return bad
    if not 0 < len(node) <= 255 or len(read) > 4096 or not node.isprintable():
        return bad
    sha = result.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA.fullmatch(sha)):
        return bad
    if ok and sha is None:
        return bad
    wrote = result.get("wrote") is True and ok
    return {"ok": ok, "node": node, "read": _clip(read, 4096), "sha256": sha, "wrote": wrote,
            "write": _clip(result.get("write") or "", 4096),
            "reason": _clip(result.get("reason") or "no reason given")}, None
