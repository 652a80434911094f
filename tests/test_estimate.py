"""`braas-globus estimate`: one probe frame where the job would run, the whole job projected.
How close the projection comes is measured in bench/ (bench_estimate.py), not here."""

from __future__ import annotations

import os

from braas_globus.settings import load_settings
from braas_globus.store import Store


def probe_frames(job_id: str) -> list[dict]:
    return [dict(r) for r in Store(load_settings().store_path).frames(job_id)]


def test_estimate_renders_one_probe_frame_and_projects_the_job(cli, scene, home):
    result = cli("estimate", scene("anim12"), "--json")
    assert result.code == 0, result.stderr
    estimate = result.json()
    assert (estimate["frames"], estimate["tasks"], estimate["preset"]) == (12, 1, "local")
    assert estimate["probe_frames"] == "7,8"  # from the middle of 1-12
    probe = cli("info", estimate["probe_job"], "--json").json()
    assert probe["state"] == "FINISHED" and probe["frames"]["by_state"] == {"DONE": "7,8"}
    seconds, start = estimate["frame_seconds"], estimate["start_seconds"]
    assert seconds > 0 and start >= 0
    measured = {r["frame"]: r["seconds"] for r in probe_frames(probe["id"])}
    assert seconds == round(measured[8], 3)  # the second frame: the steady one
    # One task here renders the 12 frames one after another, after one start.
    assert abs(estimate["wall_seconds"] - (start + 12 * seconds)) < 0.2
    # Core-hours: every frame at the steady time, and the first frame's extra once.
    first = measured[7]
    expected = (12 * seconds + (first - seconds)) * os.cpu_count() / 3600
    assert abs(estimate["core_hours"] - expected) < 1e-3
    assert estimate["gpu_hours"] == 0
    assert [j["id"] for j in cli("list", "--json").json()] == [estimate["probe_job"]]


def test_estimate_says_it_in_words_and_refuses_what_submit_refuses(cli, scene):
    text = cli("estimate", scene("anim6"), "--frames", "1-3")
    assert text.code == 0, text.stderr
    assert "probe      frames 2,3: " in text.stdout
    assert "projected  3 frames in 1 task(s) on local: about" in text.stdout
    bad = cli("estimate", scene("eevee"))
    assert bad.code == 2 and "renders with BLENDER_EEVEE" in bad.stderr
    assert cli("estimate", scene("missing")).code == 2  # a missing texture, as at submit
    two = cli("estimate", scene("anim12"), "--preset", "local,local")
    assert two.code == 2


def test_submit_estimate_only_estimates(cli, scene):
    result = cli("submit", scene("anim6"), "--estimate", "--walltime", "20", "--json")
    assert result.code == 0, result.stderr
    estimate = result.json()
    assert (estimate["frames"], estimate["probe_frames"]) == (6, "4,5")
    assert [j["id"] for j in cli("list", "--json").json()] == [estimate["probe_job"]]
