"""Cluster presets: add, list, remove, and `presets test` against stand-ins of Globus."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import responses

from .stand_ins.globus_services import (
    COMPUTE,
    TRANSFER,
    ComputeStandIn,
    TransferStandIn,
    log_in_to_stand_ins,
)

EP, COLL, MINE = (str(uuid.UUID(int=n)) for n in (11, 12, 13))
GOOD = ["karolina-gpu", "--cluster", "karolina", "--partition", "qgpu", "--account", "DD-24-1",
        "--endpoint", EP, "--collection", COLL, "--remote-dir", "/scratch/project/dd-24-1/me",
        "--local-collection", MINE]


def test_add_list_remove(cli, home):
    added = cli("presets", "add", *GOOD, "--json")
    assert added.code == 0, added.stderr
    assert added.json()["partition"] == "qgpu"
    rows = {p["name"]: p for p in cli("presets", "list", "--json").json()}
    assert rows["karolina-gpu"]["device"] == "CUDA"  # from the catalog: NVIDIA A100 partition
    assert rows["local"]["device"] == "CPU"
    assert cli("presets", "add", *GOOD).code == 2  # the name is taken
    assert cli("presets", "remove", "karolina-gpu").code == 0
    assert [p["name"] for p in cli("presets", "--json").json()] == ["local"]


@pytest.mark.parametrize(("change", "words"), [
    (("--cluster", "summit"), "unknown cluster"),
    (("--partition", "qdgx"), "unknown partition"),
    (("--account", "dd 24;rm"), "does not look like"),
    (("--endpoint", "not-a-uuid"), "--endpoint"),
    (("--remote-dir", "relative/dir"), "absolute path"),
    (("--remote-dir", "/scratch/../etc"), "absolute path"),
])
def test_bad_presets_are_refused_and_nothing_is_written(cli, home, change, words):
    args = list(GOOD)
    args[args.index(change[0]) + 1] = change[1]
    result = cli("presets", "add", *args)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert not (home / "presets.json").exists()


def test_local_cannot_be_replaced_or_removed(cli, home):
    assert "built-in" in cli("presets", "add", "local", *GOOD[1:]).stderr
    assert cli("presets", "remove", "local").code == 2
    assert cli("presets", "remove", "nothing").code == 2


@pytest.fixture
def stand_ins(cli, home, tmp_path, monkeypatch):
    """The centre's collection is tmp_path (its base path); the user's is the file system."""
    from globus_compute_endpoint.engines import ThreadPoolEngine

    from braas_globus import preset_probe

    work = tmp_path / "scratch" / "project" / "dd-24-1" / "me"
    work.mkdir(parents=True)
    log_in_to_stand_ins(monkeypatch)
    monkeypatch.setattr(preset_probe, "PROBE_POLL_S", 0.05)
    engine = ThreadPoolEngine(max_workers=1)
    engine.start(endpoint_id=uuid.UUID(EP), run_dir=str(tmp_path / "engine"))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        TransferStandIn(mock, {COLL: tmp_path, MINE: "/"})
        ComputeStandIn(mock, {EP: engine})
        # the worker sees the collection's /scratch/... under tmp_path
        assert cli("presets", "add", *GOOD, "--worker-dir", str(work)).code == 0
        yield mock
    engine.shutdown()


def test_preset_test_passes_when_everything_answers(cli, stand_ins):
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 0, result.stderr
    assert [(c["name"], c["ok"]) for c in result.json()] == [
        ("endpoint", True), ("collection", True), ("collection kind", True),
        ("working directory", True), ("your collection", True), ("probe sent", True),
        ("worker reads it", True), ("collection sees the worker's file", True)]


def test_preset_test_names_what_is_wrong(cli, stand_ins):
    stand_ins.replace(responses.GET, f"{COMPUTE}/v2/endpoints/{EP}/status",
                      json={"status": "offline", "logs": []})
    stand_ins.replace(responses.GET,
                      re.compile(rf"{TRANSFER}/v0.10/operation/endpoint/[-0-9a-f]+/ls.*"),
                      status=403, json={"code": "PermissionDenied", "message": "No access"})
    result = cli("presets", "test", "karolina-gpu")
    assert result.code == 1
    assert f"FAIL endpoint: Compute endpoint {EP} is offline" in result.stdout
    assert "FAIL working directory: permission denied" in result.stdout
    assert "ok   collection" in result.stdout
    assert "FAIL probe: not sent" in result.stdout  # no task for an offline endpoint


def test_an_expired_login_says_to_log_in(cli, stand_ins):
    stand_ins.replace(responses.GET, re.compile(rf"{TRANSFER}/v0.10/endpoint/[-0-9a-f]+$"),
                      status=401, json={"code": "AuthenticationFailed", "message": "expired"})
    result = cli("presets", "test", "karolina-gpu", "--json")
    assert result.code == 1
    details = {c["name"]: c["detail"] for c in result.json()}
    assert "run `braas-globus login`" in details["collection"]


def test_presets_file_damage_is_reported(cli, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "presets.json").write_text(json.dumps({"x": {"cluster": "karolina"}}))
    result = cli("presets", "list")
    assert result.code == 2 and "presets.json is damaged" in result.stderr


def test_a_scene_newer_than_the_presets_blender_is_refused_at_submit(cli, home, scene):
    assert cli("presets", "add", *GOOD, "--blender-version", "4.5.14").code == 0
    result = cli("submit", scene("anim6"), "--preset", "karolina-gpu")  # saved by bpy 5.x
    assert result.code == 2
    assert re.search(r"saved by Blender 5\.\d+,", result.stderr) and "karolina-gpu" in result.stderr
    assert "Blender 4.5, which is older" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli("list", "--json").json() == []
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())


def test_a_preset_blender_version_must_be_a_version(cli, home):
    result = cli("presets", "add", *GOOD, "--blender-version", "4.5; rm -rf /")
    assert result.code == 2 and "blender_version" in result.stderr
    assert not (home / "presets.json").exists()
