"""One still split by samples in N parts, against one whole render, side by side.

    python bench/bench_split.py [--parts 1,2,4] [--width 160 --height 120] [--samples 64]
                                [--workers 2] [--slurm]

In one run, on this machine (the local preset, ``--workers`` tasks at once): the demo
scene's current frame rendered whole (N = 1: `submit --image`) and split in N parts
(`submit --image --split N`), each through the real CLI with `--wait`. Prints for each:
the time to the merged image (the whole `submit --wait`, staging included), the render
span (the first task's start to the last one's end, from `info`: to the second), the merge
(its own seconds, from the job's merge record), and the total core time (`info`'s cost:
each part's measured render time times the cores its task held). With ``--workers`` tasks
at once each task's Blender gets cores / workers threads, the whole render too.

With ``--slurm``, then the same jobs on the local single-node Slurm
(`.ci/schedulers/start.sh`), in the same run: the real Globus Compute engine built from
Karolina's template (tests/engines.py, as bench/bench_engine.py: only the Globus cloud
relay bypassed), started once (one block: one worker per node, Blender on every core, so
the parts render one after another) and warmed by a no-op task. For each N, into a fresh
job folder laid out as at a centre (the job's manifest; the first task hard-links in/ from
the staged objects): N tasks of one part each (plan.plan_for_slots, as submit plans them
for a preset with N slots; the whole render for N = 1), their task files as the Globus
backend sends them (dispatch.tasks.task_description with GlobusBackend.task_payload's
keys) given to `render_on_worker` through the engine, and once every part is back the
product's merge on this machine (merge.merge_once, as the service runs it after the
download). Time to the merged image is from the first submit to the merged still (no
Transfer: staging and download are not in it); the render span, from the first submit to
the last result; core time, each frame's measured seconds times the node's cores (a task
holds the whole node). Without a Slurm that answers, that part is left out and says why.
Nothing about the figures is asserted (only that every job finished).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from braas_cli import MAKE_SCENE, REPO, cli  # bench/ is on sys.path when a bench script runs

from braas_globus.cost import holding

#: The Karolina user options (as bench_engine.py), with a block long enough for the run:
#: the block takes no new task in its last two minutes (the template's drain_period).
USER = {"account": "DD-24-1", "partition": "qcpu_exp", "walltime_minutes": 30}


def run(env: dict[str, str], scene: Path, samples: int, parts: int, workers: int
        ) -> dict[str, float]:
    split = ["--split", str(parts)] if parts > 1 else []
    started = time.monotonic()
    job = cli(env, "submit", str(scene), "--image", "--samples", str(samples),
              "--no-denoise", "--mode", "directory", *split, "--wait")
    wall = time.monotonic() - started
    info = cli(env, "info", job["id"])
    assert info["state"] == "FINISHED", info
    span = (datetime.fromisoformat(info["ended"]).timestamp()
            - datetime.fromisoformat(info["started"]).timestamp())
    merge = ((info.get("split") or {}).get("merge") or {}).get("seconds", 0.0)
    return {"wall": wall, "span": span, "merge": float(merge),
            # The cost's render seconds times what a local task holds (cost.holding):
            # its core_hours are rounded to 0.36 s, too coarse for a small still.
            "core_seconds": info["cost"]["render_seconds"] * holding({}, workers).cores,
            "tasks": len(info["tasks"]),
            "job": job["id"]}


def noop() -> None:
    """The empty task that warms the block."""


def slurm_cluster() -> tuple[object | None, str]:
    """The local Slurm (tests/schedulers.py's check), or None and why not."""
    sys.path.insert(0, str(REPO))
    from tests.schedulers import _sinfo

    return _sinfo()


def on_slurm(home: Path, root: Path, jobs: dict[int, str], cores: int
             ) -> tuple[dict[int, dict[str, float]], dict[str, object]]:
    """The local jobs ``jobs`` (N -> job id, in BRAAS_HOME ``home``) again, their tasks
    through the Karolina engine on the local Slurm; the merge here. Per N, and the engine's
    own figures (its cold start, its block)."""
    from braas_globus import merge
    from braas_globus.dispatch.compute_task import render_on_worker
    from braas_globus.dispatch.tasks import task_description
    from braas_globus.plan import plan_for_slots
    from braas_globus.states import TaskState
    from braas_globus.store import Store, TaskRecord
    from braas_globus.worker import job_layout
    from braas_globus.worker.frames import parse_frames
    from braas_globus.worker.image_check import is_valid_image
    from tests.engines import VENV_BIN, OfflineEndpoint, build_engine

    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    store = Store(home / "jobs.sqlite")
    objects = home / job_layout.OBJECTS  # as the centre's objects/: Transfer's staging
    results: dict[int, dict[str, float]] = {}
    engine = build_engine("karolina", USER, root / "endpoint")
    started = time.perf_counter()
    with OfflineEndpoint(engine, root / "endpoint" / "run") as ep:
        ep.run(noop, timeout=300)  # the cold start: sbatch, the worker pool
        cold = time.perf_counter() - started
        blocks = ep.job_ids()
        for n, job_id in jobs.items():
            local = store.job(job_id)
            units = parse_frames(local.frames)  # the parts 1..N, or the whole still's frame
            # The job's tasks as submit plans them for a centre with a slot per part
            # (plan_for_slots: a preset's max_blocks x nodes_per_block = N): one part each.
            tasks = [TaskRecord(job_id=local.id, index=t.index, frames=t.frames,
                                frame_count=t.frame_count, scout=t.scout, preset="karolina",
                                state=TaskState.QUEUED, attempts=0, max_attempts=1,
                                backend_id=None, started=None, ended=None, reason=None)
                     for t in plan_for_slots(units, int(local.spec["max_jobs"]), len(units),
                                             scout=bool(local.spec["scout"]))]
            t0 = time.perf_counter()
            folder = root / "slurm" / f"parts-{n}"
            for name in (job_layout.OUT, job_layout.LOG, job_layout.JOB):
                (folder / name).mkdir(parents=True)
            shutil.copyfile(local.folder / job_layout.MANIFEST, folder / job_layout.MANIFEST)
            job = dataclasses.replace(local, folder=folder)
            # What GlobusBackend.task_payload sends: the centre names its Blender; this
            # endpoint renders on the host (ADMIN_SETTINGS: no image), so runtime "host".
            futures = [ep.submit(render_on_worker,
                                 task_description(job, task, 1,
                                                  device=job.spec["device"] or "CPU",
                                                  threads=0, objects_dir=str(objects),
                                                  runtime="host"),
                                 str(folder)) for task in tasks]
            records = [ep.result(future, timeout=600)[0] for future in futures]
            rendered = time.perf_counter()
            assert all(r["state"] == "FINISHED" for r in records), records
            if job.split:
                assert job.blender is not None
                record = merge.merge_once(job, job.blender)
                assert record is not None and record["state"] == "FINISHED", record
                merge_seconds = float(record["seconds"])
            else:
                stills = [p for p in (folder / job_layout.OUT).iterdir()
                          if job_layout.FRAME_NAME.fullmatch(p.name) and is_valid_image(p)]
                assert stills, f"no still in {folder / job_layout.OUT}"
                merge_seconds = 0.0
            done = time.perf_counter()
            seconds = 0.0  # Blender's own per frame (part), as cost.job_cost counts them
            for progress in sorted((folder / job_layout.PROGRESS).glob("*.jsonl")):
                for line in progress.read_text(encoding="utf-8").splitlines():
                    event = json.loads(line)
                    if event.get("event") == "frame" and event.get("seconds") is not None:
                        seconds += float(event["seconds"])
            results[n] = {"wall": done - t0, "span": rendered - t0, "merge": merge_seconds,
                          "core_seconds": seconds * cores, "tasks": len(tasks)}
    return results, {"cold": cold, "blocks": ",".join(blocks)}


def print_table(results: dict[int, dict[str, float]]) -> None:
    print(f"  {'parts':>5} {'tasks':>5} {'to merged image':>16} {'render span':>12} "
          f"{'merge':>8} {'core time':>10} {'vs whole':>9}")
    whole = results.get(1)
    for n, r in results.items():
        ratio = f"{r['wall'] / whole['wall']:8.2f}x" if whole else "        -"
        print(f"  {n:>5} {r['tasks']:>5} {r['wall']:>14.2f} s {r['span']:>10.2f} s "
              f"{r['merge']:>6.2f} s {r['core_seconds']:>8.2f} s {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="1,2,4")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--slurm", action="store_true",
                        help="also on the local Slurm, through the Karolina engine")
    args = parser.parse_args()
    counts = [int(n) for n in args.parts.split(",")]
    cluster, why = slurm_cluster() if args.slurm else (None, "")
    slurm: dict[int, dict[str, float]] = {}
    engine: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="braas-bench-") as tmp:
        root = Path(tmp)
        scene = root / "scene" / "bench.blend"
        subprocess.run([sys.executable, str(MAKE_SCENE), "--", "--out", str(scene),
                        "--frames", "1", "--width", str(args.width),
                        "--height", str(args.height), "--samples", str(args.samples)],
                       check=True, capture_output=True)
        home = root / "home"
        home.mkdir()
        (home / "config.toml").write_text(f"local_workers = {args.workers}\n")
        env = {**os.environ, "BRAAS_HOME": str(home)}
        cli(env, "submit", str(scene), "--image", "--samples", "1", "--no-denoise",
            "--mode", "directory", "--wait")  # warm: the staging cache, the first bpy load
        results = {n: run(env, scene, args.samples, n, args.workers) for n in counts}
        if cluster is not None:
            slurm, engine = on_slurm(home, root, {n: str(r["job"]) for n, r in results.items()},
                                     cluster.cpus)
    print(f"one still {args.width}x{args.height}, {args.samples} samples; on this machine "
          f"(local preset): {os.cpu_count()} cores, {args.workers} tasks at once")
    print_table(results)
    if args.slurm and cluster is None:
        print(f"local Slurm left out: {why} (run .ci/schedulers/start.sh as root)")
    elif cluster is not None:
        print(f"on the local Slurm: Karolina engine, block {engine['blocks']} on node "
              f"{cluster.node} ({cluster.cpus} cores, one task at a time, each on every core; "
              f"cold start + first no-op {engine['cold']:.2f} s, not in the table); merge on "
              "this machine; no Transfer")
        print_table(slurm)


if __name__ == "__main__":
    main()
