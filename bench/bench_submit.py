"""Time a submit (trace, pack, stage) of this checkout against an earlier one, in one run.

    python bench/bench_submit.py [--baseline REV] [--assets 200] [--repeat 3]

Two scenes: the demo scene (2 textures) and one whose material uses ``--assets`` images.
For each checkout (REV in a temporary git worktree, and this one), each mode (packed,
directory) and each scene: a cold submit in a fresh BRAAS_HOME, then a warm one (the same
scene again), medians of ``--repeat``. Blender is started through a counting wrapper, so
the table also says how many times each submit started Blender. The render itself is not
timed: each job is canceled as soon as its submit returns.
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
MAKE_DEMO = REPO / "braas_globus" / "blender_scripts" / "make_demo_scene.py"
COUNTING_BLENDER = """#!{python}
import json, os, subprocess, sys
argv = sys.argv[1:]
with open(os.environ["BENCH_BLENDER_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\\n")
script = argv[argv.index("-P") + 1]
sys.exit(subprocess.call([sys.executable, script, "--", *argv[argv.index("--") + 1:]]))
"""
MANY_ASSETS = """
import os, sys, bpy
folder, count = sys.argv[1], int(sys.argv[2])
bpy.ops.wm.read_factory_settings()
material = bpy.data.objects["Cube"].data.materials[0]
nodes, links = material.node_tree.nodes, material.node_tree.links
previous = None
for i in range(count):
    path = os.path.join(folder, "textures", f"set{i // 50}", f"t{i:03d}.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = bpy.data.images.new(f"t{i:03d}", 8, 8)
    image.pixels[:] = [i / count, 0.5, 1 - i / count, 1.0] * 64
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()
    node = nodes.new("ShaderNodeTexImage")
    node.image = image
    if previous is not None:
        mix = nodes.new("ShaderNodeMix")
        links.new(previous, mix.inputs[6])
        links.new(node.outputs["Color"], mix.inputs[7])
        previous = mix.outputs[2]
    else:
        previous = node.outputs["Color"]
links.new(previous, nodes["Principled BSDF"].inputs["Base Color"])
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.render.resolution_x, scene.render.resolution_y = 32, 24
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(folder, "scene.blend"), relative_remap=True)
"""


def make_scenes(root: Path, assets: int) -> dict[str, Path]:
    demo = root / "demo" / "demo.blend"
    subprocess.run([sys.executable, str(MAKE_DEMO), "--", "--out", str(demo), "--frames", "2",
                    "--width", "32", "--height", "24", "--samples", "1"],
                   check=True, capture_output=True)
    many = root / "many"
    subprocess.run([sys.executable, "-c", MANY_ASSETS, str(many), str(assets)], check=True,
                   capture_output=True)
    return {"demo": demo, f"{assets} assets": many / "scene.blend"}


def submit_seconds(checkout: Path, scene: Path, mode: str, home: Path, wrapper: Path,
                   log: Path) -> tuple[float, int]:
    env = {**os.environ, "BRAAS_HOME": str(home), "BRAAS_BLENDER": str(wrapper),
           "BENCH_BLENDER_LOG": str(log), "PYTHONPATH": str(checkout)}
    before = len(log.read_text().splitlines()) if log.exists() else 0
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "braas_globus.cli", "submit", str(scene),
                           "--frames", "1", "--mode", mode, "--json"],
                          capture_output=True, text=True, env=env, cwd=checkout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bench_submit: submit failed in {checkout}: {done.stderr.strip()}")
    subprocess.run([sys.executable, "-m", "braas_globus.cli", "cancel",
                    json.loads(done.stdout)["id"]], capture_output=True, env=env, cwd=checkout)
    calls = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    starts = sum(1 for argv in calls if not argv[argv.index("-P") + 1].endswith(
        "blender_render.py"))
    return seconds, starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="43dace3")
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp:
        root = Path(tmp)
        baseline = root / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline),
                        args.baseline], check=True, capture_output=True)
        try:
            wrapper = root / "blender"
            wrapper.write_text(COUNTING_BLENDER.format(python=sys.executable))
            wrapper.chmod(0o755)
            scenes = make_scenes(root / "scenes", args.assets)
            print(f"| scene | mode | {args.baseline} cold | now cold | {args.baseline} warm "
                  "| now warm | Blender starts (cold, warm) before / now |")
            print("|---|---|---|---|---|---|---|")
            for name, scene in scenes.items():
                for mode in ("packed", "directory"):
                    row = {}
                    for label, checkout in (("before", baseline), ("now", REPO)):
                        cold, warm, starts = [], [], None
                        for i in range(args.repeat):
                            home = root / f"home-{label}-{mode}-{name}-{i}"
                            log = home.with_suffix(".log")
                            first = submit_seconds(checkout, scene, mode, home, wrapper, log)
                            second = submit_seconds(checkout, scene, mode, home, wrapper, log)
                            cold.append(first[0])
                            warm.append(second[0])
                            starts = (first[1], second[1])
                        row[label] = (statistics.median(cold), statistics.median(warm), starts)
                    b, n = row["before"], row["now"]
                    print(f"| {name} | {mode} | {b[0]:.2f} s | {n[0]:.2f} s | {b[1]:.2f} s "
                          f"| {n[1]:.2f} s | {b[2]} / {n[2]} |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(baseline)], capture_output=True)


if __name__ == "__main__":
    main()
