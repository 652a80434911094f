"""How close `braas-globus estimate` comes: its projection, then the whole job, side by side.

    python bench/bench_estimate.py [--frames 24] [--width 320 --height 180] [--samples 8]

In one run, on this machine (the local preset): `estimate --json` of the demo scene (two
probe frames), then `submit --wait` of the same scene; prints the projected and the measured
wall time (the job's first task start to its last end, from `info`) and core-hours (`info`'s
cost), and their ratios. A projection from two frames is only as good as they are
typical: a scene whose frames differ much in cost (a camera that moves into fog) is
projected from its middle frame.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from braas_cli import MAKE_SCENE, cli  # bench/ is on sys.path when a bench script runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="braas-bench-") as tmp:
        root = Path(tmp)
        scene = root / "scene" / "bench.blend"
        subprocess.run([sys.executable, str(MAKE_SCENE), "--", "--out", str(scene),
                        "--frames", str(args.frames), "--width", str(args.width),
                        "--height", str(args.height), "--samples", str(args.samples)],
                       check=True, capture_output=True)
        env = {**os.environ, "BRAAS_HOME": str(root / "home")}
        estimate = cli(env, "estimate", str(scene), "--mode", "directory")
        job = cli(env, "submit", str(scene), "--mode", "directory", "--wait")
        info = cli(env, "info", job["id"])
    started, ended = (datetime.fromisoformat(info[k]).timestamp() for k in ("started", "ended"))
    measured = ended - started
    print(f"{args.frames} frames, {args.width}x{args.height}, {args.samples} samples, "
          f"{os.cpu_count()} cores; probe frames {estimate['probe_frames']}: "
          f"{estimate['frame_seconds']:.2f} s + {estimate['start_seconds']:.2f} s to start")
    print(f"  wall time   projected {estimate['wall_seconds']:8.2f} s   measured "
          f"{measured:8.2f} s   ratio {estimate['wall_seconds'] / measured:5.2f}")
    cost = info["cost"]["core_hours"]
    print(f"  core-hours  projected {estimate['core_hours']:8.4f}     measured "
          f"{cost:8.4f}     ratio {estimate['core_hours'] / cost if cost else float('nan'):5.2f}")


if __name__ == "__main__":
    main()
