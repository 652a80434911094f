"""One still split by samples in N parts, against one whole render, side by side.

    python bench/bench_split.py [--parts 1,2,4] [--width 160 --height 120] [--samples 64]
                                [--workers 2]

In one run, on this machine (the local preset, ``--workers`` tasks at once): the demo
scene's current frame rendered whole (N = 1: `submit --image`) and split in N parts
(`submit --image --split N`), each through the real CLI with `--wait`. Prints for each:
the time to the merged image (the whole `submit --wait`, staging included), the render
span (the first task's start to the last one's end, from `info`: to the second), the merge
(its own seconds, from the job's merge record), and the total core time (`info`'s cost:
each part's measured render time times the cores its task held). With ``--workers`` tasks
at once each task's Blender gets cores / workers threads, the whole render too. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from braas_cli import MAKE_SCENE, cli  # bench/ is on sys.path when a bench script runs


def run(env: dict[str, str], scene: Path, samples: int, parts: int) -> dict[str, float]:
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
            "core_seconds": info["cost"]["core_hours"] * 3600, "tasks": len(info["tasks"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="1,2,4")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    counts = [int(n) for n in args.parts.split(",")]
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
        results = {n: run(env, scene, args.samples, n) for n in counts}
    print(f"one still {args.width}x{args.height}, {args.samples} samples, "
          f"{os.cpu_count()} cores, {args.workers} tasks at once")
    print(f"  {'parts':>5} {'tasks':>5} {'to merged image':>16} {'render span':>12} "
          f"{'merge':>8} {'core time':>10} {'vs whole':>9}")
    whole = results.get(1)
    for n, r in results.items():
        ratio = f"{r['wall'] / whole['wall']:8.2f}x" if whole else "        -"
        print(f"  {n:>5} {r['tasks']:>5} {r['wall']:>14.2f} s {r['span']:>10.2f} s "
              f"{r['merge']:>6.2f} s {r['core_seconds']:>8.2f} s {ratio}")


if __name__ == "__main__":
    main()
