"""A still split by samples whose parts render at a centre (``submit --image --split N
--preset <cluster>``): the parts render as tasks there, come back by Transfer, and are
merged here once every part is in.

Through the Globus STAND-INS (tests/stand_ins/globus_services.py, a ThreadPoolEngine per
centre) with the real CLI and real Blender, and through the REAL endpoint engine built from
endpoints/karolina/ on the local Slurm, where one part's Blender is killed mid-render.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import globus_sdk
import pytest
import responses

from braas_globus.dispatch.globus import GlobusBackend
from braas_globus.presets import add_preset

from .conftest import build_scene, wait_for
from .stand_ins.globus_services import ComputeStandIn, TransferStandIn
from .test_globus_backend import CENTRE, ENDPOINT, MINE, centre  # noqa: F401 - a fixture
from .test_local_jobs import flaky_blender  # noqa: F401 - a fixture
from .test_split_still import BOUND, compare_exr, sha256


def add_split_preset(home: Path, centre_dir: Path, name: str = "karolina-3",
                     endpoint_id: str = ENDPOINT) -> str:
    """A preset of three blocks at the stand-in centre: three tasks run at once there."""
    add_preset(home, name=name, cluster="karolina", partition="qcpu", account="DD-24-1",
               endpoint_id=endpoint_id, collection_id=CENTRE, remote_dir=str(centre_dir),
               local_collection_id=MINE, runtime="host", max_blocks=3)
    return name


def whole_render(cli, blend: Path, samples: int) -> Path:
    """The same frame rendered once with all the samples, on this machine."""
    result = cli("submit", blend, "--image", "--samples", str(samples), "--format", "OPEN_EXR",
                 "--preset", "local", "--wait", "--json")
    assert result.code == 0, result.stderr
    (whole,) = (Path(result.json()["folder"]) / "out").glob("*.exr")
    return whole


def finished(cli, job_id: str, timeout: float = 180) -> dict:
    """The job's info once a refresh finds it FINISHED (the refresh that merges)."""
    return wait_for(lambda: (i := cli("info", job_id, "--json").json())["state"]
                    in ("FINISHED", "FAILED") and i, timeout=timeout, interval=0.5,
                    what=f"job {job_id} to end")


def test_a_split_still_renders_at_the_centre_and_merges_here(cli, scene, centre,  # noqa: F811
                                                             home):
    blend = scene("anim6")  # 64x48, its own denoising off
    before = sha256(blend)
    preset = add_split_preset(home, centre.dir)
    result = cli("submit", blend, "--image", "--split", "3", "--samples", "12",
                 "--format", "OPEN_EXR", "--preset", preset, "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    centre.compute.wait_all()
    info = finished(cli, job["id"])
    assert info["state"] == "FINISHED", (info["tasks"], info.get("split"))
    assert len(info["tasks"]) == 3 and {t["preset"] for t in info["tasks"]} == {preset}
    assert info["split"]["merge"]["state"] == "FINISHED"

    remote = centre.dir / "jobs" / job["id"]
    parts = [f"part-000{n}.exr" for n in (1, 2, 3)]
    assert sorted(p.name for p in (remote / "out" / "parts").iterdir()) == parts
    assert not list((remote / "out").glob("*.exr"))  # nothing merges at the centre
    folder = Path(job["folder"])
    assert sorted(p.name for p in (folder / "out" / "parts").iterdir()) == parts
    (still,) = (folder / "out").glob("*.exr")
    assert info["last_frame"]["file"] == str(still)
    compared = compare_exr(still, whole_render(cli, blend, 12))
    assert compared["sizes"] == [[64, 48], [64, 48]], compared
    assert compared["largest"] < BOUND, compared

    logs = cli("logs", job["id"], "--json").json()
    assert sorted(logs) == ["merge.log", "task-0000.log", "task-0001.log", "task-0002.log"]
    downloaded = cli("download", job["id"], "--json").json()
    assert downloaded["frames_expected"] == downloaded["frames_valid"] == 1
    assert sha256(blend) == before


def test_a_split_still_fans_out_over_a_centre_and_this_machine(cli, scene,
                                                             centre, home):  # noqa: F811
    preset = add_split_preset(home, centre.dir)
    result = cli("submit", scene("anim6"), "--image", "--split", "4", "--samples", "8",
                 "--preset", f"{preset},local", "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    centre.compute.wait_all()
    info = finished(cli, job["id"])
    assert info["state"] == "FINISHED", info
    assert {t["preset"] for t in info["tasks"]} == {preset, "local"}
    at_centre = {p.name for p in (centre.dir / "jobs" / job["id"] / "out" / "parts").iterdir()}
    assert at_centre and len(at_centre) < 4  # the centre rendered some of the parts, not all
    folder = Path(job["folder"])
    assert len(list((folder / "out" / "parts").glob("part-*.exr"))) == 4
    assert [p.suffix for p in (folder / "out").glob("*.png")] == [".png"]


def test_a_centre_with_a_blender_older_than_5_is_refused_a_split(cli, scene,
                                                              centre, home):  # noqa: F811
    add_preset(home, name="karolina-old", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir=str(centre.dir), local_collection_id=MINE, runtime="host",
               blender_version="4.2")
    result = cli("submit", scene("anim6"), "--image", "--split", "2", "--preset",
                 "karolina-old")
    assert result.code == 2
    assert result.stderr.strip() == ("error: --split needs Blender 5.0 or newer where the "
                                     "parts render: preset karolina-old renders with "
                                     "Blender 4.2")
    assert not (home / "jobs").exists() or not list((home / "jobs").iterdir())


# --- the real endpoint engine on the local Slurm ------------------------------------------

@pytest.fixture
def slurm_centre(home, tmp_path, monkeypatch, slurm_cluster):
    """The preset `karolina-3` whose endpoint is the REAL GlobusComputeEngine built from
    endpoints/karolina/ (tests/engines.py), its blocks batch jobs on the local Slurm; the
    Globus web services are the stand-ins, a centre folder here."""
    from globus_compute_sdk import Client

    from .test_engine_on_schedulers import KAROLINA_USER, endpoint

    centre_dir = tmp_path / "centre"
    centre_dir.mkdir()
    add_split_preset(home, centre_dir)
    token = globus_sdk.AccessTokenAuthorizer("stand-in-token")
    monkeypatch.setattr(GlobusBackend, "make_transfer_client",
                        staticmethod(lambda: globus_sdk.TransferClient(authorizer=token)))
    monkeypatch.setattr(GlobusBackend, "make_compute_client",
                        staticmethod(lambda: Client(do_version_check=False, authorizer=token)))
    with endpoint("karolina", {**KAROLINA_USER, "max_blocks": 1}, tmp_path / "endpoint") as ep, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        TransferStandIn(mock, {MINE: Path("/"), CENTRE: Path("/")})
        ComputeStandIn(mock, {ENDPOINT: ep.engine})
        yield centre_dir


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_split_still_on_slurm_through_the_real_engine_retries_a_killed_part_alone(
        cli, tmp_path, slurm_centre):
    from .engines import blender_processes

    # Parts of a few seconds each on 2 cores: long enough to kill one mid-render. Adaptive
    # sampling off, so that the whole render takes every sample, as the parts do.
    blend = build_scene(tmp_path / "heavy", "--frames", "1", "--width", "320",
                        "--height", "240", "--samples", "960", "--no-adaptive-sampling")
    result = cli("submit", blend, "--image", "--split", "3", "--format", "OPEN_EXR",
                 "--preset", "karolina-3", "--retries", "1", "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    remote = slurm_centre / "jobs" / job["id"]
    (first,) = wait_for(lambda: blender_processes(str(remote)), timeout=300, interval=0.1,
                        what="the first part's Blender in the batch job")
    time.sleep(1.0)  # it has loaded the scene and renders
    argv = Path(f"/proc/{first}/cmdline").read_bytes().decode().split("\0")
    killed_part = argv[argv.index("--frames") + 1]
    os.kill(first, signal.SIGKILL)

    info = finished(cli, job["id"], timeout=600)
    assert info["state"] == "FINISHED", (info["tasks"], info["split"])
    attempts = sorted(t["attempts"] for t in info["tasks"])
    assert attempts == [1, 1, 2], info["tasks"]  # the killed part alone rendered again
    retried = next(t for t in info["tasks"] if t["attempts"] == 2)
    assert retried["frames"] == killed_part
    (still,) = (Path(job["folder"]) / "out").glob("*.exr")
    compared = compare_exr(still, whole_render(cli, blend, 960))
    assert compared["sizes"] == [[320, 240], [320, 240]], compared
    assert compared["largest"] < BOUND, compared


def test_a_denoised_split_is_refused_where_this_machines_blender_cannot_denoise_the_merge(
        cli, scene, centre, home, flaky_blender, monkeypatch):  # noqa: F811
    # The parts render at the centre, but the merge, and its one denoise, run here: with a
    # Blender built without OpenImageDenoise (the STAND-IN says so), the still could never
    # be denoised, so nothing is sent. --no-denoise is the way out.
    preset = add_split_preset(home, centre.dir)
    monkeypatch.setenv("FLAKY_NO_DENOISER", "1")
    blend = scene("anim6")
    result = cli("submit", blend, "--image", "--split", "2", "--denoise", "--preset", preset)
    assert result.code == 2
    assert result.stderr.startswith("error: --split: the merge on this machine denoises the "
                                    "still, and the scene denoises with OpenImageDenoise, "
                                    "which this Blender")
    assert not (home / "jobs").exists() or not list((home / "jobs").iterdir())
    assert not centre.compute.submissions and not centre.transfer.submissions
    plain = cli("submit", blend, "--image", "--split", "2", "--no-denoise", "--preset",
                preset, "--json")
    assert plain.code == 0, plain.stderr


def test_a_merge_whose_staged_scene_is_gone_here_fails_in_one_line(cli, scene, centre,  # noqa: F811
                                                                    home):
    preset = add_split_preset(home, centre.dir)
    result = cli("submit", scene("anim6"), "--image", "--split", "2", "--samples", "4",
                 "--preset", preset, "--json")
    assert result.code == 0, result.stderr
    centre.compute.wait_all()
    shutil.rmtree(home / "objects")  # this machine's copy of the stage, cleaned away
    info = finished(cli, result.json()["id"])
    assert info["state"] == "FAILED"
    assert info["split"]["merge"]["reason"].startswith(
        "cannot merge the still: its staged scene is no longer on this machine")
    assert len(list((Path(info["folder"]) / "out" / "parts").glob("part-*.exr"))) == 2
