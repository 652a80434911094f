"""Jobs at a centre through Globus, offline: real SDK clients, our code,
real Blender on a real endpoint engine; the Globus web services are STAND-INS
(tests/stand_ins/globus_services.py). braas-globus uses no AMQP result stream: tasks go as
one batch, results are read with `get_batch_result`, as `refresh` does in production.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import globus_sdk
import pytest
import responses

from braas_globus.collect import progress_records
from braas_globus.dispatch.globus import GlobusBackend
from braas_globus.presets import add_preset
from braas_globus.worker import render_task
from braas_globus.worker.image_check import is_valid_image

from .conftest import frame_files, wait_for
from .stand_ins.globus_services import ComputeStandIn, TransferStandIn

ENDPOINT = str(uuid.UUID(int=1))
CENTRE = str(uuid.UUID(int=2))
MINE = str(uuid.UUID(int=3))
LUMI_ENDPOINT = str(uuid.UUID(int=4))
LUMI = str(uuid.UUID(int=5))


@pytest.fixture
def centre(home, tmp_path, monkeypatch):
    """A preset `karolina-cpu` whose centre is a folder here, reached through the stand-ins."""
    from globus_compute_endpoint.engines import ThreadPoolEngine
    from globus_compute_sdk import Client

    centre_dir = tmp_path / "centre"
    centre_dir.mkdir()
    add_preset(home, name="karolina-cpu", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir=str(centre_dir), local_collection_id=MINE, runtime="host")
    # What the centre's worker_init exports for a host install (no image here).
    monkeypatch.setenv("BRAAS_WORKER_DIR", str(Path(render_task.__file__).parent))
    monkeypatch.setenv("BRAAS_WORKER_PYTHON", sys.executable)
    monkeypatch.setenv("BRAAS_BLENDER_PYTHON", sys.executable)

    engines = {}
    for endpoint in (ENDPOINT, LUMI_ENDPOINT):
        engines[endpoint] = ThreadPoolEngine(max_workers=1)
        engines[endpoint].start(endpoint_id=uuid.UUID(endpoint),
                                run_dir=str(tmp_path / f"engine-{endpoint[-1]}"))
    token = globus_sdk.AccessTokenAuthorizer("stand-in-token")
    monkeypatch.setattr(GlobusBackend, "make_transfer_client",
                        staticmethod(lambda: globus_sdk.TransferClient(authorizer=token)))
    monkeypatch.setattr(GlobusBackend, "make_compute_client",
                        staticmethod(lambda: Client(do_version_check=False, authorizer=token)))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        transfer = TransferStandIn(mock, {MINE: Path("/"), CENTRE: Path("/"), LUMI: Path("/")})
        compute = ComputeStandIn(mock, engines)
        yield type("Centre", (), {"dir": centre_dir, "transfer": transfer, "compute": compute,
                                  "mock": mock})
    for engine in engines.values():
        engine.shutdown()


def submit(cli, scene, *args):
    result = cli("submit", scene, "--preset", "karolina-cpu", *args, "--json")
    assert result.code == 0, result.stderr
    return result.json()


def test_a_job_renders_at_the_centre_and_comes_back(cli, scene, centre):
    job = submit(cli, scene("anim6"), "--email", "artist@example.org")
    assert job["state"] == "RUNNING"

    (batch,) = centre.compute.submissions
    assert batch["user_endpoint_config"] == {
        "account": "DD-24-1", "partition": "qcpu", "walltime_minutes": 30,
        "nodes_per_block": 1, "max_blocks": 1, "email": "artist@example.org"}
    upload = centre.transfer.submissions[0]
    assert (upload["source_endpoint"], upload["destination_endpoint"]) == (MINE, CENTRE)
    assert upload["sync_level"] == 3 and upload["verify_checksum"] is True  # checksum sync
    assert upload["label"] == f"braas {job['id']} scene"
    assert all(item["destination_path"].startswith(str(centre.dir / "objects")) or
               item["destination_path"].endswith("/job/manifest.json")
               for item in upload["DATA"])

    # The function travels by source: a centre's worker has no braas_globus to import.
    from globus_compute_sdk.serialize import ComputeSerializer, DillCodeSource

    (code,) = centre.compute.functions.values()
    (function_buffer,) = ComputeSerializer().unpack_buffers(code)
    assert function_buffer.startswith(DillCodeSource.identifier)

    centre.compute.wait_all()
    info = cli("info", job["id"], "--json").json()
    assert info["state"] == "FINISHED", info
    assert info["frames"]["done"] == 6
    assert info["resources"]["device"] == "CPU"  # qcpu's own: the job named no device
    remote_job = centre.dir / "jobs" / job["id"]
    assert (remote_job / "in" / "scene.blend").stat().st_nlink >= 2  # linked from objects/
    assert frame_files(remote_job) == [f"{n:06d}.png" for n in range(1, 7)]

    downloaded = cli("download", job["id"], "--json").json()
    assert downloaded["frames_valid"] == 6 and downloaded["missing"] == ""
    local = Path(job["folder"])
    assert all(is_valid_image(local / "out" / f"{n:06d}.png") for n in range(1, 7))
    assert "attempt 1" in cli("logs", job["id"], "--json").json()["task-0000.log"]
    info = cli("info", job["id"], "--json").json()
    assert Path(info["last_frame"]["file"]).is_file()  # named by the worker's records


@pytest.mark.parametrize("mode", ["packed", "directory"])
def test_an_unchanged_scene_sends_no_asset_bytes(cli, scene, centre, mode):
    blend = scene("anim6")
    submit(cli, blend, "--mode", mode)
    first = list(centre.transfer.tasks.values())[-1]
    assert first["files_skipped"] == 0 and first["bytes_transferred"] > 0
    submit(cli, blend, "--mode", mode)
    second = list(centre.transfer.tasks.values())[-1]
    # Everything but the new job's manifest was at the centre already.
    assert second["files_transferred"] == 1 and second["files_skipped"] == second["files"] - 1
    centre.compute.wait_all()


def test_a_changed_texture_sends_only_that_file(cli, scene, centre):
    blend = scene("anim6")
    submit(cli, blend, "--mode", "directory")
    texture = blend.parent / "textures" / "ground" / "grid.png"
    texture.write_bytes(texture.read_bytes() + b"\0")
    submit(cli, blend, "--mode", "directory")
    latest = list(centre.transfer.tasks.values())[-1]
    assert latest["files_transferred"] == 2  # the changed texture and the manifest
    assert latest["bytes_transferred"] < texture.stat().st_size + 4096
    centre.compute.wait_all()


def test_a_failed_transfer_is_a_clear_error_and_the_job_resumes(cli, scene, centre):
    centre.transfer.fail_next = "PERMISSION_DENIED"
    result = cli("submit", scene("anim6"), "--preset", "karolina-cpu")
    assert result.code == 1
    assert "failed (permission_denied (stand-in)" in result.stderr and "resume" in result.stderr
    (job,) = cli("list", "--json").json()
    assert job["state"] == "CONFIGURING"
    assert not centre.compute.submissions

    resumed = cli("resume", job["id"], "--json")
    assert resumed.code == 0, resumed.stderr
    centre.compute.wait_all()
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_a_paused_transfer_is_a_clear_error(cli, scene, centre):
    centre.transfer.pause_next = True
    result = cli("submit", scene("anim6"), "--preset", "karolina-cpu")
    assert result.code == 1
    assert "paused by a collection administrator" in result.stderr
    assert cli("list", "--json").json()[0]["state"] == "CONFIGURING"


def test_cancel_reaches_the_render_at_the_centre(cli, scene, centre):
    job = submit(cli, scene("anim6"), "--frames", "1-400")
    remote_job = centre.dir / "jobs" / job["id"]
    wait_for(lambda: len(frame_files(remote_job)) >= 2, what="frames at the centre")
    result = cli("cancel", job["id"], "--json")
    assert result.code == 0 and result.json()["state"] == "CANCELED"
    assert (remote_job / "job" / "CANCEL").exists()
    centre.compute.wait_all(timeout=20)
    count = len(frame_files(remote_job))
    assert count < 400
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit()
                and _cmdline_has(p, str(remote_job))]


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_download_refuses_names_the_tasks_never_write(cli, scene, centre):
    job = submit(cli, scene("anim6"), "--frames", "1")
    centre.compute.wait_all()
    (centre.dir / "jobs" / job["id"] / "out" / "evil name;rm.png").write_bytes(b"x")
    result = cli("download", job["id"])
    assert result.code == 1 and "refusing to download" in result.stderr
    assert not list(Path(job["folder"]).rglob("evil*"))


def test_endpoint_options_are_checked_against_the_centre_schema(cli, scene, centre, home):
    add_preset(home, name="karolina-long", cluster="karolina", partition="qcpu_exp",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir=str(centre.dir), local_collection_id=MINE, runtime="host")
    # qcpu_exp allows an hour: a two-hour walltime is refused before anything is sent.
    result = cli("submit", scene("anim6"), "--preset", "karolina-long", "--walltime", "120")
    assert result.code == 2
    assert "walltime_minutes" in result.stderr
    assert not centre.compute.submissions


def test_the_compute_service_refusing_a_submit_is_reported(cli, scene, centre):
    from braas_globus.dispatch import globus as globus_backend

    centre.mock.replace(responses.POST,
                        f"https://compute.api.globus.org/v3/endpoints/{ENDPOINT}/submit",
                        status=403, json={"code": "FORBIDDEN",
                                          "message": "You are not allowed to use this endpoint"})
    os.environ.pop("BRAAS_TEST_UNUSED", None)
    result = cli("submit", scene("anim6"), "--preset", "karolina-cpu")
    assert result.code == 1
    assert "refused" in result.stderr and "403" in result.stderr
    (function_id,) = centre.compute.functions  # named, for the centre's allowed_functions
    assert f"function {function_id}" in result.stderr
    assert globus_backend  # imported: the message comes from the backend


def test_one_job_fans_out_over_two_centres_and_this_machine(cli, scene, centre, home, tmp_path):
    lumi_dir = tmp_path / "lumi"
    lumi_dir.mkdir()
    add_preset(home, name="lumi-cpu", cluster="lumi", partition="standard",
               account="project_465000123", endpoint_id=LUMI_ENDPOINT, collection_id=LUMI,
               remote_dir=str(lumi_dir), local_collection_id=MINE, runtime="host")
    result = cli("submit", scene("anim12"), "--preset", "karolina-cpu,lumi-cpu,local", "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    centre.compute.wait_all()
    info = wait_for(lambda: (i := cli("info", job["id"], "--json").json())["state"] == "FINISHED"
                    and i, timeout=120, interval=0.5, what="the fanned-out job")
    assert sorted(t["preset"] for t in info["tasks"]) == ["karolina-cpu", "local", "lumi-cpu"]
    assert {s["endpoint_id"] for s in centre.compute.submissions} == {ENDPOINT, LUMI_ENDPOINT}
    assert {s["user_endpoint_config"]["partition"] for s in centre.compute.submissions} == \
        {"qcpu", "standard"}
    # Each centre rendered only its own frames; the download brings all of them together.
    at_karolina = frame_files(centre.dir / "jobs" / job["id"])
    at_lumi = frame_files(lumi_dir / "jobs" / job["id"])
    assert at_karolina and at_lumi and not set(at_karolina) & set(at_lumi)
    downloaded = cli("download", job["id"], "--json").json()
    assert downloaded["frames_valid"] == 12 and downloaded["missing"] == ""


def test_a_preset_that_wants_the_image_fails_clearly_where_there_is_none(cli, scene, centre,
                                                                        home):
    add_preset(home, name="karolina-image", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir=str(centre.dir), local_collection_id=MINE, runtime="image")
    job = cli("submit", scene("anim6"), "--preset", "karolina-image", "--retries", "0",
              "--json").json()
    recorded = json.loads((Path(job["folder"]) / "job" / "presets.json").read_text())
    assert recorded["karolina-image"]["runtime"] == "image"
    centre.compute.wait_all()
    info = cli("info", job["id"], "--json").json()
    assert info["state"] == "FAILED"
    assert "renders in the image" in info["tasks"][0]["reason"]


def test_scout_frames_render_first_at_the_centre(cli, scene, centre, home):
    add_preset(home, name="karolina-two", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir=str(centre.dir), local_collection_id=MINE, runtime="host",
               max_blocks=2)  # two slots: the scout task goes out alone first
    result = cli("submit", scene("anim12"), "--preset", "karolina-two", "--scout", "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    assert [len(next(iter(b["tasks"].values()))) for b in centre.compute.submissions] == [1]
    centre.compute.wait_all()
    cli("info", job["id"], "--json")  # a refresh: the scout is done, the rest goes out
    assert len(centre.compute.submissions) == 2
    centre.compute.wait_all()
    info = cli("info", job["id"], "--json").json()
    assert info["state"] == "FINISHED" and info["tasks"][0]["scout"]
    assert info["tasks"][0]["frames"] == "1,7,12"


def test_with_one_slot_the_scout_frames_render_first_in_the_one_task(cli, scene, centre):
    job = submit(cli, scene("anim12"), "--scout")  # karolina-cpu: one node, one slot
    centre.compute.wait_all()
    info = cli("info", job["id"], "--json").json()
    assert info["state"] == "FINISHED"
    assert [(t["scout"], t["frames"]) for t in info["tasks"]] == [(True, "1-12")]
    cli("download", job["id"])
    order = [r["frame"] for r in progress_records(Path(job["folder"]))
             if r.get("event") == "frame" and r.get("state") == "done"]
    assert order[:3] == [1, 7, 12] and sorted(order) == list(range(1, 13))

def test_a_submit_returns_holding_no_thread_and_every_job_runs_one_function(cli, scene,
                                                                             centre):
    """The CLI is done once the service has the tasks: no thread of the submit outlives
    it (an SDK Executor's result watcher would, until the renders end). Every job sends
    the one registered function, as a centre's allowed_functions needs."""
    import threading

    blend = scene("anim6")
    first = submit(cli, blend, "--frames", "1")
    centre.compute.wait_all()  # the centre's engine has started its worker thread
    before = set(threading.enumerate())
    second = submit(cli, blend, "--frames", "2")
    assert second["state"] in ("QUEUED", "RUNNING")
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []
    centre.compute.wait_all()
    assert len(centre.compute.functions) == 1
    sent = {fn for batch in centre.compute.submissions for fn in batch["tasks"]}
    assert sent == set(centre.compute.functions)
    for job in (first, second):
        assert cli("download", job["id"]).code == 0
        assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_download_brings_back_no_link_the_centre_lists(cli, scene, centre):
    """Globus lists a link as what it points at (a "file" with a link_target), or a broken
    one as "invalid_symlink"; a transfer would copy the target. None comes back."""
    job = submit(cli, scene("anim6"), "--frames", "1")
    centre.compute.wait_all()
    out = centre.dir / "jobs" / job["id"] / "out"
    (out / "000002.png").symlink_to("/etc/passwd")
    (out / "000003.png").symlink_to(out.parent)
    (out / "000004.png").symlink_to(out / "gone")
    result = cli("download", job["id"], "--json")
    assert result.code == 0, result.stderr
    assert frame_files(Path(job["folder"])) == ["000001.png"]
    assert result.json()["frames_valid"] == 1


def test_a_transfer_globus_keeps_retrying_is_named_then_cancelled_and_resumable(
        cli, scene, centre, monkeypatch):
    """Globus retries a fault with the task ACTIVE (for up to a day): the user sees its
    words, and after the job's bound the transfer is cancelled at Globus, nothing left
    moving, and the job resumes."""
    from braas_globus import transfer

    monkeypatch.setattr(transfer, "STUCK_AFTER_S", 1.0)
    centre.transfer.retry_next = ("GC_NOT_CONNECTED", "Globus Connect Personal is not "
                                                      "connected")
    result = cli("submit", scene("anim6"), "--preset", "karolina-cpu")
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "stuck: Globus Connect Personal is not connected" in line and "resume" in line
    assert len(centre.transfer.canceled) == 1 and not centre.compute.submissions
    (job,) = cli("list", "--json").json()
    assert job["state"] == "CONFIGURING"
    assert cli("resume", job["id"]).code == 0
    centre.compute.wait_all()
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_the_function_command_prints_the_one_id_every_job_sends(cli, scene, centre,
                                                                monkeypatch):
    """`braas-globus function` says what to give a centre's allowed_functions: nothing
    before it is registered, then the id every job sends; a release's public id wins."""
    from braas_globus.dispatch import functions

    assert cli("function", "--json").json()["function_id"] is None
    registered = cli("function", "--register", "--json")
    assert registered.code == 0, registered.stderr
    function_id = registered.json()["function_id"]
    assert list(centre.compute.functions) == [function_id]
    blend = scene("anim6")
    job = submit(cli, blend, "--frames", "1")
    assert cli("function").stdout.startswith(f"{function_id}  (from your login")
    sent = {fn for batch in centre.compute.submissions for fn in batch["tasks"]}
    assert sent == {function_id} and len(centre.compute.functions) == 1
    centre.compute.wait_all()
    assert cli("download", job["id"]).code == 0

    released = str(uuid.uuid4())  # as the project registered it, public, for this source
    centre.compute.functions[released] = centre.compute.functions[function_id]
    monkeypatch.setitem(functions.RELEASED, functions.source_digest(), released)
    shown = cli("function", "--json").json()
    assert (shown["function_id"], shown["origin"]) == (released, "release")
    submit(cli, blend, "--frames", "2")
    assert set(centre.compute.submissions[-1]["tasks"]) == {released}
    assert len(centre.compute.functions) == 2  # nothing registered again


BASED = str(uuid.UUID(int=6))


def test_a_collection_with_a_base_path_renders_where_the_nodes_see_it(cli, scene, centre,
                                                                      home, tmp_path):
    """The collection's "/" is a folder of the centre's file system (its base path): the
    tasks get the working directory as the nodes see it, Transfer the collection's."""
    base = tmp_path / "gcs-base"
    (base / "work").mkdir(parents=True)
    centre.transfer.collections[BASED] = base
    add_preset(home, name="karolina-based", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=BASED,
               remote_dir="/work", worker_dir=str(base / "work"), local_collection_id=MINE,
               runtime="host")
    result = cli("submit", scene("anim6"), "--preset", "karolina-based", "--frames", "1-2",
                 "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    centre.compute.wait_all()
    # Rendered where the nodes see the job (at "/work" nothing would be found).
    assert (base / "work" / "jobs" / job["id"] / "out" / "000002.png").exists()
    assert cli("download", job["id"]).code == 0
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"
    assert frame_files(Path(job["folder"])) == ["000001.png", "000002.png"]


def test_a_home_relative_working_dir_without_the_nodes_view_is_refused_at_submit(
        cli, scene, centre, home):
    add_preset(home, name="karolina-home", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir="/~/braas", local_collection_id=MINE, runtime="host")
    result = cli("submit", scene("anim6"), "--preset", "karolina-home")
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "presets test karolina-home" in line and "--worker-dir" in line
    assert cli("list", "--json").json() == []
    assert not centre.transfer.submissions and not centre.compute.submissions
