"""Render one 24-frame animation three ways, side by side in one run, and print the ratios.

    python bench/bench_local_render.py [--frames 24] [--width 320 --height 180] [--samples 8]

1. one Blender process per frame (the original's job-array mode, Flamenco's default);
2. one plain `render animation` process;
3. braas-globus on the local backend (`braas-globus submit --wait`), end to end:
   tracing, packing, staging, the runner, verified frames.

The scene has static geometry and a moving camera (the demo scene). Targets:
braas-globus / per-frame <= 0.5 and braas-globus / one process <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAIN = REPO / "bench" / "plain_render.py"
MAKE_SCENE = REPO / "braas_globus" / "blender_scripts" / "make_demo_scene.py"


def timed(argv: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--subdivisions", type=int, default=5,
                        help="static geometry to sync: what persistent data saves per frame")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="braas-bench-") as tmp:
        root = Path(tmp)
        scene = root / "scene" / "bench.blend"
        subprocess.run([python, str(MAKE_SCENE), "--", "--out", str(scene),
                        "--frames", str(args.frames), "--width", str(args.width),
                        "--height", str(args.height), "--samples", str(args.samples),
                        "--subdivisions", str(args.subdivisions)], check=True, capture_output=True)
        n = args.frames
        per_frame = sum(timed([python, str(PLAIN), "--", str(scene), str(root / "a"), str(f), str(f)])
                        for f in range(1, n + 1))
        one_process = timed([python, str(PLAIN), "--", str(scene), str(root / "b"), "1", str(n)])
        env = {**os.environ, "BRAAS_HOME": str(root / "home")}
        braas = timed([python, "-m", "braas_globus.cli", "submit", str(scene), "--wait",
                       "--mode", "directory"], env=env)
        for name in ("a", "b"):
            assert len(list((root / name).glob("*.png"))) == n, f"baseline {name} lost frames"
        assert len(list((root / "home" / "jobs").glob("*/out/*.png"))) == n, "braas lost frames"

    print(f"{n} frames, {args.width}x{args.height}, {args.samples} samples, "
          f"subdivision {args.subdivisions}, {os.cpu_count()} cores")
    print(f"  one process per frame     {per_frame:7.2f} s")
    print(f"  one plain process         {one_process:7.2f} s")
    print(f"  braas-globus local        {braas:7.2f} s")
    print(f"  braas-globus / per-frame  {braas / per_frame:7.2f}   (target <= 0.5)")
    print(f"  braas-globus / one process{braas / one_process:7.2f}   (target <= 1.0)")


if __name__ == "__main__":
    main()
