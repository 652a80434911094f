"""Presets and the paths each side sees: the collection's kind read from Globus, the working
directory found on the collection, and `presets test`'s probe through the render function.

The Globus web services are STAND-INS (tests/stand_ins/globus_services.py), driven by the
real globus-sdk and globus-compute-sdk clients; the probe task runs on a real endpoint
engine (ThreadPoolEngine), reading and writing real files. Here the centre's collection
has a base path (its root is a folder here, so the collection's "/work" is that folder's
work/ on the worker), "/~/" is a home folder of its own, and collection documents carry
the entity_type / high_assurance fields Transfer sends (globus-sdk's own testing data).
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path

import globus_sdk
import pytest
import responses
from globus_sdk.testing import get_response_set

from braas_globus.errors import UsageError
from braas_globus.presets import ClusterPreset, load_cluster_presets

from .conftest import load_module
from .stand_ins.globus_services import (
    TRANSFER,
    ComputeStandIn,
    TransferStandIn,
    log_in_to_stand_ins,
)

EP, COLL, MINE = (str(uuid.UUID(int=n)) for n in (21, 22, 23))
BASE = ["karolina-gpu", "--cluster", "karolina", "--partition", "qgpu", "--account", "DD-24-1",
        "--endpoint", EP, "--collection", COLL, "--local-collection", MINE]
ADDON_OPERATIONS = (Path(__file__).resolve().parents[1] / "addon" / "braas_globus_addon"
                    / "operations.py")


def collection_document(collection: str, entity_type: str, high_assurance: bool = False,
                        **extra) -> dict:
    """Transfer's collection document, from globus-sdk's testing data, made a GCSv5 one."""
    doc = dict(get_response_set(globus_sdk.TransferClient.get_endpoint).lookup("default").json)
    return {**doc, "id": collection, "display_name": f"collection {collection[-2:]}",
            "entity_type": entity_type, "high_assurance": high_assurance, **extra}


class CentreTransfer(TransferStandIn):
    """TransferStandIn where "/~/" is a home folder, collection documents are given, and a
    delete task removes files (as Globus does, at once here)."""

    def __init__(self, mock, collections, homes, documents) -> None:
        super().__init__(mock, collections)
        self.homes = {str(k): Path(v) for k, v in homes.items()}
        self.documents = documents
        self.deleted: list[str] = []
        self.replicas: dict[Path, Path] = {}  # a copy also lands here (a stale replica)
        mock.add_callback(responses.POST, f"{TRANSFER}/v0.10/delete",
                          self._answer("delete", self._delete))

    def path(self, collection: str, path: str) -> Path:
        if str(collection) in self.homes and (path == "/~" or path.startswith("/~/")):
            return self.homes[str(collection)] / path[len("/~/"):]
        return super().path(collection, path)

    def _submit(self, request):
        answer = super()._submit(request)
        body = self.submissions[-1]
        for item in body["DATA"]:
            target = self.path(body["destination_endpoint"], item["destination_path"])
            for folder, replica in self.replicas.items():
                if folder in target.parents:
                    copy = replica / target.relative_to(folder)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(target, copy)
        return answer

    def _endpoint(self, request):
        collection = request.url.rsplit("/", 1)[1]
        if collection not in self.documents:
            return 404, {}, json.dumps({"code": "EndpointNotFound",
                                        "message": f"No such endpoint '{collection}'"})
        return 200, {}, json.dumps(self.documents[collection])

    def _delete(self, request):
        body = json.loads(request.body)
        for item in body["DATA"]:
            self.deleted.append(item["path"])
            self.path(body["endpoint"], item["path"]).unlink(missing_ok=True)
        return 202, {}, json.dumps({"DATA_TYPE": "delete_result", "code": "Accepted",
                                    "task_id": str(uuid.uuid4())})


class IdleEngine:
    """An endpoint engine whose tasks never start (its batch job waits in the queue)."""

    def submit(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def centre(home, tmp_path, monkeypatch):
    """Logged in; the centre's collection root is tmp/collection (its base path)."""
    from globus_compute_endpoint.engines import ThreadPoolEngine

    from braas_globus import preset_probe

    root, centre_home = tmp_path / "collection", tmp_path / "centre-home"
    (root / "work").mkdir(parents=True)
    (centre_home / "braas").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(centre_home))  # the worker's home (it runs here)
    log_in_to_stand_ins(monkeypatch)
    monkeypatch.setattr(preset_probe, "PROBE_POLL_S", 0.05)
    engine = ThreadPoolEngine(max_workers=1)
    engine.start(endpoint_id=uuid.UUID(EP), run_dir=str(tmp_path / "engine"))
    documents = {COLL: collection_document(COLL, "GCSv5_mapped_collection"),
                 MINE: collection_document(MINE, "GCP_mapped_collection")}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        transfer = CentreTransfer(mock, {COLL: root, MINE: "/"}, {COLL: centre_home},
                                  documents)
        compute = ComputeStandIn(mock, {EP: engine})
        yield type("Centre", (), {"root": root, "home": centre_home, "transfer": transfer,
                                  "compute": compute, "documents": documents,
                                  "engine": engine, "mock": mock})
    engine.shutdown()


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), \
        result.stderr
    return lines[0]


# --- the preset's paths ----------------------------------------------------------------------


def preset(**fields) -> ClusterPreset:
    return ClusterPreset(**{"name": "k", "cluster": "karolina", "partition": "qgpu",
                            "account": "DD-24-1", "endpoint_id": EP, "collection_id": COLL,
                            "remote_dir": "/work", "local_collection_id": MINE, **fields})


def test_worker_path_is_the_worker_dir_or_the_remote_dir():
    assert preset().worker_path("jobs", "j1") == "/work/jobs/j1"
    assert preset(worker_dir="/scratch/project/dd-24-1/work").worker_path("objects") == \
        "/scratch/project/dd-24-1/work/objects"
    assert preset(worker_dir="/scratch//x/").worker_dir == "/scratch/x"
    with pytest.raises(UsageError, match=r"relative to your home.*--worker-dir"):
        preset(remote_dir="/~/braas").worker_path("jobs")
    assert preset(remote_dir="/~/braas", worker_dir="/home/me/braas").worker_path("jobs") == \
        "/home/me/braas/jobs"
    with pytest.raises(ValueError):
        preset().worker_path("..", "etc")


@pytest.mark.parametrize("bad", ["relative/dir", "/scratch/../etc", "/~/braas", "~/braas",
                                 "/scratch/a\nb", "/scratch/a\u2028b"])
def test_a_worker_dir_must_be_an_absolute_plain_path(cli, home, bad):
    result = cli("presets", "add", *BASE, "--remote-dir", "/work", "--worker-dir", bad)
    assert "worker_dir" in one_error_line(result)
    assert not (home / "presets.json").exists()


def test_old_presets_files_load(home):
    home.mkdir(parents=True)
    old = {"name": "old", "cluster": "karolina", "partition": "qgpu", "account": "DD-24-1",
           "endpoint_id": EP, "collection_id": COLL, "remote_dir": "/work",
           "local_collection_id": MINE, "local_dir": None, "mapped_collection": False,
           "runtime": "image", "blender_version": None, "nodes_per_block": 1,
           "max_blocks": 1, "backend": "globus"}
    (home / "presets.json").write_text(json.dumps({"old": old}))
    loaded = load_cluster_presets(home)["old"]
    assert (loaded.worker_dir, loaded.collection_kind, loaded.mapped_collection) == \
        (None, None, False)
    assert loaded.worker_path("jobs") == "/work/jobs"


# --- the kind, read from Globus ----------------------------------------------------------------


@pytest.mark.parametrize(("entity_type", "high", "flags", "kind", "mapped", "words"), [
    ("GCSv5_mapped_collection", False, [], "mapped", True, "mapped collection (needs"),
    ("GCSv5_mapped_collection", True, [], "high_assurance_mapped", False, "high-assurance"),
    ("GCSv5_guest_collection", False, [], "guest", False, "a guest collection"),
    ("GCSv5_guest_collection", False, ["--guest-collection"], "guest", False, "guest"),
    ("GCP_mapped_collection", False, [], "personal", False, "Globus Connect Personal"),
    ("GCP_guest_collection", False, [], "guest", False, "a guest collection"),
])
def test_presets_add_reads_the_collection_kind_from_globus(cli, home, centre, entity_type,
                                                           high, flags, kind, mapped, words):
    centre.documents[COLL] = collection_document(COLL, entity_type, high)
    result = cli("presets", "add", *BASE, "--remote-dir", "/work", *flags, "--json")
    assert result.code == 0, result.stderr
    assert (result.json()["collection_kind"], result.json()["mapped_collection"]) == \
        (kind, mapped)
    assert words in result.stderr and "Globus wins" not in result.stderr
    stored = load_cluster_presets(home)["karolina-gpu"]
    assert (stored.collection_kind, stored.mapped_collection) == (kind, mapped)


def test_a_guest_flag_that_contradicts_globus_loses_with_a_note(cli, home, centre):
    result = cli("presets", "add", *BASE, "--remote-dir", "/work", "--guest-collection")
    assert result.code == 0, result.stderr
    assert "--guest-collection does not fit what Globus says: Globus wins" in result.stderr
    stored = load_cluster_presets(home)["karolina-gpu"]
    assert (stored.collection_kind, stored.mapped_collection) == ("mapped", True)
    assert "login --force" in result.stderr  # a mapped collection needs the consent


def test_not_logged_in_the_flag_stands_and_a_note_says_so(cli, home, monkeypatch):
    from braas_globus import auth

    def not_logged_in():
        raise auth.LoginNeeded(auth.NOT_LOGGED_IN)

    monkeypatch.setattr(auth, "transfer_client", not_logged_in)
    result = cli("presets", "add", *BASE, "--remote-dir", "/work", "--guest-collection")
    assert result.code == 0, result.stderr
    assert "kind was not read from Globus (you are not logged in" in result.stderr
    assert "taken as a guest collection" in result.stderr
    stored = load_cluster_presets(home)["karolina-gpu"]
    assert (stored.collection_kind, stored.mapped_collection) == (None, False)


@pytest.mark.parametrize(("document", "words"), [
    ("endpoint", "is a Globus Connect Server endpoint, not a collection"),
    (None, "is not known to Globus: check --collection"),
])
def test_a_collection_id_that_is_no_collection_is_refused(cli, home, centre, document, words):
    if document is None:
        del centre.documents[COLL]
    else:
        centre.documents[COLL] = collection_document(COLL, "GCSv5_endpoint")
    assert words in one_error_line(cli("presets", "add", *BASE, "--remote-dir", "/work"))
    assert not (home / "presets.json").exists()


# --- the working directory, found on the collection ------------------------------------------


def test_presets_add_finds_the_working_dir_in_the_catalogs_scratch(cli, home, centre,
                                                                   monkeypatch):
    from braas_globus.cli import presets as presets_cli

    (centre.root / "scratch" / "project" / "dd-24-1").mkdir(parents=True)  # IT4I: lowercase
    # No terminal, no --yes: it names what it found and how to take it; nothing is written.
    line = one_error_line(cli("presets", "add", *BASE))
    assert "found the working directory /scratch/project/dd-24-1" in line
    assert "--yes" in line and "--remote-dir" in line
    assert not (home / "presets.json").exists()
    # At a terminal, the user says no: nothing is written either.
    monkeypatch.setattr(presets_cli, "_at_terminal", lambda: True)
    asked = []
    monkeypatch.setattr("typer.confirm", lambda text, **kw: asked.append(text) or False)
    assert "no working directory chosen" in one_error_line(cli("presets", "add", *BASE))
    assert not (home / "presets.json").exists()
    monkeypatch.setattr("typer.confirm", lambda text, **kw: asked.append(text) or True)
    result = cli("presets", "add", *BASE, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["remote_dir"] == "/scratch/project/dd-24-1"
    assert asked and "/scratch/project/dd-24-1" in asked[-1]
    # --yes takes it without asking.
    assert cli("presets", "remove", "karolina-gpu").code == 0
    asked.clear()
    assert cli("presets", "add", *BASE, "--yes").code == 0 and not asked
    assert load_cluster_presets(home)["karolina-gpu"].remote_dir == "/scratch/project/dd-24-1"


def test_no_working_dir_found_names_the_candidates(cli, home, centre):
    line = one_error_line(cli("presets", "add", *BASE, "--yes"))
    assert "tried: /scratch/project/dd-24-1 (not found)" in line and "--remote-dir" in line
    assert not (home / "presets.json").exists()


def test_user_folders_and_centre_variables(cli, home, centre, monkeypatch):
    """Polaris: /eagle/{project}/{user} then /grand/...; Frontera: $SCRATCH, which Transfer
    cannot resolve."""
    from braas_globus import auth

    polaris = ["polaris-gpu", "--cluster", "polaris", "--partition", "debug", "--account",
               "Render3D", *BASE[7:]]
    (centre.root / "grand" / "Render3D" / "ada").mkdir(parents=True)
    monkeypatch.setattr(auth, "whoami", lambda: {"identity": {"username": "ada@anl.gov"}})
    result = cli("presets", "add", *polaris, "--yes", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["remote_dir"] == "/grand/Render3D/ada"
    line = one_error_line(cli("presets", "add", "p2", *polaris[1:], "--user", "bob", "--yes"))
    assert "/eagle/Render3D/bob (not found)" in line and "/grand/Render3D/bob" in line
    assert "user: " in one_error_line(cli("presets", "add", "p3", *polaris[1:],
                                          "--user", "bob;rm -rf"))
    frontera = ["frontera-rtx", "--cluster", "frontera", "--partition", "rtx", "--account",
                "AST-1", *BASE[7:]]
    line = one_error_line(cli("presets", "add", *frontera, "--yes"))
    assert "$SCRATCH (the centre's variable" in line and "--remote-dir" in line


def test_without_a_login_no_working_dir_can_be_looked_for(cli, home, monkeypatch):
    from braas_globus import auth

    monkeypatch.setattr(auth, "transfer_client",
                        lambda: (_ for _ in ()).throw(auth.LoginNeeded(auth.NOT_LOGGED_IN)))
    line = one_error_line(cli("presets", "add", *BASE, "--yes"))
    assert "without a Globus login" in line and "/scratch/project/dd-24-1" in line
    assert "--remote-dir" in line
    assert not (home / "presets.json").exists()


def test_catalog_scratch_dirs_fill_in_project_and_user():
    from braas_globus.catalog import load_catalog

    catalog = load_catalog()
    assert catalog.get("karolina").scratch_dirs("DD-24-1", None) == \
        (["/scratch/project/dd-24-1"], [])
    assert catalog.get("lumi").scratch_dirs("project_465000001", None) == \
        (["/scratch/project_465000001", "/flash/project_465000001"], [])
    assert catalog.get("polaris").scratch_dirs("Render3D", None) == \
        ([], ["/eagle/{project}/{user}", "/grand/{project}/{user}"])
    assert catalog.get("leonardo").scratch_dirs("IscrB_X", "ada") == \
        (["/leonardo_scratch/fast/IscrB_X"], ["$CINECA_SCRATCH"])


# --- presets test: the probe -------------------------------------------------------------------


def add(cli, *args):
    result = cli("presets", "add", *BASE, *args)
    assert result.code == 0, result.stderr


def checks_of(result) -> dict[str, tuple[bool, str]]:
    return {c["name"]: (c["ok"], c["detail"]) for c in result.json()}


def test_the_probe_proves_the_worker_dir_end_to_end(cli, home, centre):
    add(cli, "--remote-dir", "/work", "--worker-dir", str(centre.root / "work"))
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 0, result.stderr
    checks = checks_of(result)
    assert all(ok for ok, _ in checks.values()), checks
    assert "mapped collection (needs a data_access consent), as the preset says" in \
        checks["collection kind"][1]
    worker = checks["worker reads it"][1]
    assert f"reads it at {centre.root / 'work' / 'probe'}/probe-" in worker
    assert "/work/probe/probe-" in checks["collection sees the worker's file"][1]
    # Through the render function: one registered id, the one jobs use.
    from braas_globus.dispatch.functions import functions_record

    (function_id,) = json.loads(functions_record(home).read_text()).values()
    assert list(centre.compute.functions) == [function_id]
    (batch,) = centre.compute.submissions
    assert list(batch["tasks"]) == [function_id]
    assert batch["user_endpoint_config"]["partition"] == "qgpu"
    assert batch["user_endpoint_config"]["walltime_minutes"] <= 10
    # Cleaned up, here and at the centre.
    assert sorted(Path(p).suffix for p in centre.transfer.deleted) == [".answer", ".txt"]
    assert list((centre.root / "work" / "probe").iterdir()) == []
    assert not any((home / "probe").iterdir())


def test_a_collection_base_path_without_worker_dir_fails_naming_both_paths(cli, centre):
    add(cli, "--remote-dir", "/work")
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 1
    checks = checks_of(result)
    assert checks["probe sent"][0] is True
    ok, detail = checks["worker reads it"]
    assert not ok
    assert "cannot read /work/probe/probe-" in detail and "FileNotFoundError" in detail
    assert "where the collection has /work/probe/probe-" in detail
    assert "--worker-dir" in detail
    assert "collection sees the worker's file" not in checks


def test_a_home_relative_remote_dir_gets_its_worker_dir_from_the_probe(cli, centre):
    add(cli, "--remote-dir", "/~/braas")
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 1
    ok, detail = checks_of(result)["worker reads it"]
    assert not ok and f"needs --worker-dir {centre.home / 'braas'} " in detail
    assert checks_of(result)["collection sees the worker's file"][0] is True
    # With it, the preset passes.
    assert cli("presets", "remove", "karolina-gpu").code == 0
    add(cli, "--remote-dir", "/~/braas", "--worker-dir", str(centre.home / "braas"))
    assert cli("presets", "test", "karolina-gpu").code == 0


def test_the_collection_must_see_the_file_the_worker_wrote(cli, centre, tmp_path):
    """The worker reads a replica of the probe (a second copy of the folder), so its answer
    lands where the collection does not look."""
    replica = tmp_path / "replica"
    centre.transfer.replicas[centre.root / "work"] = replica
    add(cli, "--remote-dir", "/work", "--worker-dir", str(replica))
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 1
    checks = checks_of(result)
    assert checks["worker reads it"][0] is True
    ok, detail = checks["collection sees the worker's file"]
    assert not ok and "does not show it" in detail and "--worker-dir" in detail


def test_a_kind_that_disagrees_with_globus_fails_with_the_fix(cli, centre, monkeypatch):
    from braas_globus import auth

    real = auth.transfer_client
    monkeypatch.setattr(auth, "transfer_client",
                        lambda: (_ for _ in ()).throw(auth.LoginNeeded(auth.NOT_LOGGED_IN)))
    add(cli, "--remote-dir", "/work", "--guest-collection",
        "--worker-dir", str(centre.root / "work"))
    monkeypatch.setattr(auth, "transfer_client", real)
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 1
    ok, detail = checks_of(result)["collection kind"]
    assert not ok
    assert "Globus says the centre's collection is a Globus Connect Server mapped" in detail
    assert "the preset says a guest collection" in detail
    assert "presets remove karolina-gpu" in detail and "login --force" in detail
    assert "FAIL" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_block_still_queued_is_said_plainly(cli, centre, monkeypatch):
    from braas_globus import preset_probe

    monkeypatch.setattr(preset_probe, "PROBE_WAIT_S", 0.5)
    centre.compute.engines[EP] = IdleEngine()
    add(cli, "--remote-dir", "/work", "--worker-dir", str(centre.root / "work"))
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 1
    ok, detail = checks_of(result)["worker reads it"]
    assert not ok and "no answer from the endpoint in 0 s (the task is running)" in detail
    assert "may still be queued" in detail and "again later" in detail
    assert centre.transfer.deleted  # the probe sent is removed all the same


def test_the_workers_answer_is_read_strictly():
    from braas_globus.preset_probe import _parse_answer

    good = {"event": "probe", "ok": True, "node": "cn1", "read": "/w/p", "write": "/w/a",
            "sha256": "a" * 64, "wrote": True}
    assert _parse_answer(good)[0]["wrote"] is True
    for bad in ({**good, "event": "end"}, {**good, "sha256": "x" * 64}, {**good, "ok": "yes"},
                {**good, "node": ""}, {**good, "node": "a\nb"}, {**good, "sha256": None},
                ["not", "a", "dict"], {**good, "read": "x" * 5000}):
        assert _parse_answer(bad) == (None, "the worker's answer is malformed"), bad


def test_the_probe_task_on_the_worker(tmp_path, monkeypatch):
    """render_on_worker's probe kind, called as the endpoint calls it: stdlib only."""
    from braas_globus.dispatch.compute_task import render_on_worker
    from braas_globus.preset_probe import answer_text

    monkeypatch.setenv("HOME", str(tmp_path))
    name = f"probe-{'0' * 32}"
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / f"{name}.txt").write_bytes(b"hello\n")
    answer = render_on_worker({"kind": "probe", "read": f"~/probe/{name}.txt",
                               "write": f"~/probe/{name}.answer"}, "/nowhere")
    assert answer["ok"] and answer["wrote"] and answer["read"] == str(tmp_path / "probe" /
                                                                      f"{name}.txt")
    import hashlib

    digest = hashlib.sha256(b"hello\n").hexdigest()
    assert answer["sha256"] == digest
    assert (tmp_path / "probe" / f"{name}.answer").read_text() == \
        answer_text(digest, answer["node"])
    again = render_on_worker({"kind": "probe", "read": f"~/probe/{name}.txt",
                              "write": f"~/probe/{name}.answer"}, "/nowhere")
    assert again["ok"] and not again["wrote"] and "FileExistsError" in again["reason"]
    missing = render_on_worker({"kind": "probe", "read": f"/nowhere/{name}.txt",
                                "write": f"/nowhere/{name}.answer"}, "/nowhere")
    assert not missing["ok"] and "FileNotFoundError" in missing["reason"]
    for read, write in (("/etc/passwd", "/etc/passwd.answer"),
                        (f"/w/{name}.txt", f"/elsewhere/{name}.answer"),
                        (f"w/{name}.txt", f"w/{name}.answer")):
        refused = render_on_worker({"kind": "probe", "read": read, "write": write}, "/")
        assert not refused["ok"] and refused["reason"] == "not a probe file's path"


# --- the add-on's preset form: the same, through its worker operations --------------------------


class AddonContext:
    """What the add-on's worker hands an operation: the service, and a reporter."""

    def __init__(self) -> None:
        self._service = None
        self.steps: list[str] = []

    def service(self):
        from braas_globus.service import Service

        self._service = self._service or Service.open()
        return self._service

    def step(self, text: str) -> None:
        self.steps.append(text)

    def progress(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        if self._service is not None:
            self._service.store.close()


def addon_fields(**changes) -> dict:
    """The add-on form's new_preset_fields() for a filled-in form."""
    return {"name": "karolina-gpu", "cluster": "karolina", "partition": "qgpu",
            "account": "DD-24-1", "endpoint_id": EP, "collection_id": COLL, "remote_dir": "",
            "worker_dir": None, "local_collection_id": MINE, "local_dir": None,
            "mapped_collection": True, "runtime": "image", **changes}


def test_the_addon_finds_the_working_dir_and_adds_what_the_user_saw(home, centre):
    operations = load_module("braas_addon_operations_presets", ADDON_OPERATIONS)
    ctx = AddonContext()
    try:
        with pytest.raises(UsageError, match=r"tried: /scratch/project/dd-24-1 \(not found\)"):
            operations.op_find_working_dir(ctx, addon_fields(name=""))  # no name needed yet
        (centre.root / "scratch" / "project" / "dd-24-1").mkdir(parents=True)
        found = operations.op_find_working_dir(ctx, addon_fields(name=""))
        assert found["found"] == "/scratch/project/dd-24-1"
        # Add with the field empty: the directory is proposed, nothing is added yet.
        proposed = operations.op_add_preset(ctx, addon_fields())
        assert proposed["found"] == "/scratch/project/dd-24-1" and "added" not in proposed
        assert not (home / "presets.json").exists()
        added = operations.op_add_preset(ctx, addon_fields(remote_dir=proposed["found"],
                                                       worker_dir=str(centre.root / "work")))
        assert added["added"] == "karolina-gpu" and added["mapped"] is True
        assert any("as Globus says" in note for note in added["notes"])
        stored = load_cluster_presets(home)["karolina-gpu"]
        assert (stored.remote_dir, stored.collection_kind) == ("/scratch/project/dd-24-1",
                                                               "mapped")
        tested = operations.op_test_preset(ctx, "karolina-gpu")
        names = {c["name"]: c["ok"] for c in tested["checks"]}
        assert names["probe sent"] is True
        assert names["worker reads it"] is False  # worker_dir is .../work, not the scratch
        assert any(step.startswith("probe:") for step in ctx.steps)
    finally:
        ctx.close()
        sys.modules.pop("braas_addon_worker_presets", None)
