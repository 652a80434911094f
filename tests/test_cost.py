"""What a job cost (cost.py): core-hours and GPU-hours from the frames' measured render time
and what each task holds where it runs, in `info`."""

from __future__ import annotations

import json
import os

from braas_globus.settings import load_settings

from .test_cleanup import make_job


def record_presets(job_id: str, presets: dict) -> None:
    (load_settings().jobs_dir / job_id / "job").mkdir(parents=True, exist_ok=True)
    (load_settings().jobs_dir / job_id / "job" / "presets.json").write_text(json.dumps(presets))


def test_a_gpu_task_costs_gpu_hours_and_its_share_of_the_nodes_cores(cli, home):
    """Barbora's qgpu: 24 cores and 4 V100s a node, one worker per GPU: 6 cores a task."""
    store = make_job("2026-01-01-00000000-gpu")
    with store.transaction() as db:
        db.execute("UPDATE tasks SET preset = 'barbora-gpu'")
    record_presets("2026-01-01-00000000-gpu",
                   {"barbora-gpu": {"name": "barbora-gpu", "cluster": "barbora",
                                    "partition": "qgpu", "backend": "globus"}})
    for frame in (1, 2):  # 15 minutes of Blender's render time each
        store.record_frame("2026-01-01-00000000-gpu", frame, 0, done=True,
                           file=f"out/{frame:06d}.png", seconds=900.0)
    cost = cli("info", "last", "--json").json()["cost"]
    assert (cost["gpu_hours"], cost["core_hours"], cost["render_seconds"]) == (0.5, 3.0, 1800)
    assert cost["by_task"] == {"0": {"render_seconds": 1800.0, "core_hours": 3.0,
                                     "gpu_hours": 0.5}}
    text = cli("info", "last").stdout
    assert "cost       3.00 core-hours, 0.50 GPU-hours (30 min of Blender's render time)" in text


def test_a_task_here_costs_its_share_of_this_machines_cores(cli, home):
    store = make_job("2026-01-01-00000000-here")
    record_presets("2026-01-01-00000000-here",
                   {"local": {"name": "local", "backend": "local", "default_device": "CPU"}})
    store.record_frame("2026-01-01-00000000-here", 1, 0, done=True, file="out/000001.png",
                       seconds=3600.0)
    cost = cli("info", "last", "--json").json()["cost"]
    assert cost["core_hours"] == os.cpu_count() and cost["gpu_hours"] == 0  # local_workers 1
    assert cost["unknown_presets"] == []


def test_a_preset_the_catalog_no_longer_knows_is_named_not_guessed(cli, home):
    store = make_job("2026-01-01-00000000-gone")
    with store.transaction() as db:
        db.execute("UPDATE tasks SET preset = 'old'")
    record_presets("2026-01-01-00000000-gone",
                   {"old": {"name": "old", "cluster": "summit", "partition": "batch"}})
    store.record_frame("2026-01-01-00000000-gone", 1, 0, done=True, file="out/000001.png",
                       seconds=60.0)
    cost = cli("info", "last", "--json").json()["cost"]
    assert cost["unknown_presets"] == ["old"] and cost["core_hours"] == 0
