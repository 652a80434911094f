"""Time per task through the Globus Compute engine on Slurm, against the worker run directly.

    python bench/bench_engine.py [--repeat 5] [--frames 6] [--width 64 --height 48] [--samples 4]

All in one run, on the real single-node Slurm (`.ci/schedulers/start.sh`):

1. the engine built from Karolina's template (tests/engines.py: the admin's edit, nothing
   else adapted), started, and its first task (a no-op): the cold start a user waits for
   when no block is running (strategy tick, sbatch, worker pool start);
2. a no-op task on the warm block, `--repeat` times: the engine's own cost per task;
3. a render chunk (`--frames` frames, a fresh job folder each time) through the engine;
4. the same chunk by `python render_task.py TASK.json` directly: the local backend's way.
3 and 4 alternate (after one warm-up each), so both see the same load on the machine.

Only the Globus cloud relay is bypassed (tasks go straight to `engine.submit`); its own
latency (HTTPS submit, AMQP result) comes on top at a real centre. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chunk_options import add_chunk_options, build_chunk_scene  # noqa: E402  (bench/)

USER = {"account": "DD-24-1", "partition": "qcpu_exp", "walltime_minutes": 10}


def noop() -> None:
    """The empty task."""


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_chunk_options(parser)
    args = parser.parse_args()

    from braas_globus.dispatch.compute_task import render_on_worker
    from braas_globus.worker.image_check import is_valid_image
    from tests.engines import (
        VENV_BIN,
        WORKER_DIR,
        OfflineEndpoint,
        build_engine,
        make_job_root,
        render_task,
    )
    from tests.schedulers import _sinfo

    cluster, why = _sinfo()
    if cluster is None:
        print(f"no single-node Slurm: {why}; run .ci/schedulers/start.sh as root", file=sys.stderr)
        return 1
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    frames = f"1-{args.frames}"

    with tempfile.TemporaryDirectory(prefix="braas-bench-engine-") as tmp:
        root = Path(tmp)
        scene = build_chunk_scene(root / "scene", args)

        def fresh_job(name: str) -> Path:
            return make_job_root(root / name, scene)

        inside: dict[str, list[float]] = {"direct": [], "engine": []}

        def check(job: Path, kind: str) -> None:
            """Frames valid; note the time render_task.py itself took (first to last record)."""
            files = [job / "out" / f"{f:06d}.png" for f in range(1, args.frames + 1)]
            assert all(is_valid_image(f) for f in files), f"frames missing in {job}"
            progress = job / "job" / "progress" / "task-0000.jsonl"
            records = [json.loads(line) for line in progress.read_text().splitlines()]
            inside[kind].append(records[-1]["time"] - records[0]["time"])

        # 4. render_task.py directly, as the local backend runs it.
        def direct(name: str) -> float:
            job = fresh_job(name)
            task_file = job / "job" / "tasks" / "task-0000.json"
            task_file.parent.mkdir(parents=True)
            task_file.write_text(json.dumps(render_task(job, scene, frames)))
            started = time.perf_counter()
            subprocess.run([sys.executable, str(WORKER_DIR / "render_task.py"), str(task_file)],
                           check=True, capture_output=True)
            took = time.perf_counter() - started
            check(job, "direct")
            return took

        engine = build_engine("karolina", USER, root / "endpoint")
        started = time.perf_counter()
        with OfflineEndpoint(engine, root / "endpoint" / "run") as ep:
            ep.run(noop, timeout=180)
            cold = time.perf_counter() - started
            job_ids = ep.job_ids()

            noop_times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ep.run(noop, timeout=60)
                noop_times.append(time.perf_counter() - t0)

            def through_engine(name: str) -> float:
                job = fresh_job(name)
                t0 = time.perf_counter()
                record = ep.run(render_on_worker, render_task(job, scene, frames), str(job),
                                timeout=300)
                took = time.perf_counter() - t0
                assert record["state"] == "FINISHED", record
                check(job, "engine")
                return took

            # Alternate the two, so both see the same load on this machine.
            direct("warm-up-direct")
            through_engine("warm-up-engine")
            direct_times, engine_times = [], []
            for i in range(args.repeat):
                direct_times.append(direct(f"direct-{i}"))
                engine_times.append(through_engine(f"engine-{i}"))
            t0 = time.perf_counter()
            ep.shutdown()  # closes the engine, cancels the block, waits until Slurm ends it
            shutdown = time.perf_counter() - t0

    noop_s, engine_s, direct_s = median(noop_times), median(engine_times), median(direct_times)
    # The warm-up runs are first in each list.
    in_direct, in_engine = median(inside["direct"][1:]), median(inside["engine"][1:])
    print(f"engine on Slurm (Karolina template, block {','.join(job_ids)}), {cluster.cpus} cores;"
          f" chunk: {args.frames} frames {args.width}x{args.height}, {args.samples} samples;"
          f" medians of {args.repeat}")
    print(f"  {'what':44} {'seconds':>8}")
    print(f"  {'engine: start + first no-op (cold block)':44} {cold:8.2f}")
    print(f"  {'engine: no-op task, warm block':44} {noop_s:8.3f}")
    print(f"  {'engine: render chunk, warm block':44} {engine_s:8.2f}")
    print(f"  {'  of which inside render_task.py':44} {in_engine:8.2f}")
    print(f"  {'render_task.py directly (local backend)':44} {direct_s:8.2f}")
    print(f"  {'  of which inside render_task.py':44} {in_direct:8.2f}")
    print(f"  {'engine: shutdown (block cancelled)':44} {shutdown:8.2f}")
    print(f"  engine chunk / direct chunk      {engine_s / direct_s:6.2f}")
    print(f"  engine overhead per chunk        {engine_s - direct_s:+6.2f} s "
          f"(no-op task: {noop_s:.3f} s)")
    print(f"  cold start / direct chunk        {cold / direct_s:6.2f}")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
