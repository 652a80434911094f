"""Time one render task in Apptainer images against the same task on the host.

    python bench/bench_image.py IMAGE.sif [IMAGE.sif ...] [--host-python PY] [--repeat 5]
                                [--frames 6] [--width 64 --height 48] [--samples 4]

Each IMAGE is a render image built from container/Apptainer.def (for example with
`braas-globus container build --fakeroot --build-arg BLENDER_SOURCE=pypi ...`; give several
to compare their --compression). Every run goes through `render_on_worker`, as a centre's
endpoint runs a task:

- image: BRAAS_IMAGE set, so one `apptainer exec --contain` per task, the image's Blender;
- host: BRAAS_WORKER_DIR and BRAAS_BLENDER_PYTHON set: this checkout's worker and the
  PyPI bpy of --host-python (default: this venv's). Compare like with like: give it the
  image's Blender version (python3 -m venv V && V/bin/pip install bpy==4.5.14).

All alternate, after one warm-up each, each on a fresh job folder, so all see the same
load. Prints the Blender versions, medians and the ratios image / host.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    parser.add_argument("--host-python", default=sys.executable,
                        help="a Python with PyPI bpy, for the host runs")
    add_chunk_options(parser)
    args = parser.parse_args()

    from braas_globus import container
    from braas_globus.dispatch.compute_task import render_on_worker
    from braas_globus.worker.image_check import is_valid_image
    from tests.engines import make_job_root

    runtime = container.find_runtime()
    if runtime is None:
        sys.exit("bench_image: apptainer is not on PATH")
    images = [image.resolve() for image in args.images]
    labels = {image: container.inspect_labels(image, runtime) for image in images}
    host_blender = subprocess.run(
        [args.host_python, "-c", "import bpy; print(bpy.app.version_string)"],
        capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    work = Path(tempfile.mkdtemp(prefix="bench-image-"))
    scene = build_chunk_scene(work / "scene", args)
    environments = {
        **{image: {"BRAAS_IMAGE": str(image), "BRAAS_CONTAINER_RUNTIME": runtime,
                   "BRAAS_CONTAINER_FLAGS": ""} for image in images},
        "host": {"BRAAS_WORKER_DIR": str(REPO / "braas_globus" / "worker"),
                 "BRAAS_BLENDER_PYTHON": args.host_python, "BRAAS_WORKER_PYTHON": sys.executable},
    }
    names = ("BRAAS_IMAGE", "BRAAS_CONTAINER_RUNTIME", "BRAAS_CONTAINER_FLAGS",
             "BRAAS_WORKER_DIR", "BRAAS_BLENDER_PYTHON", "BRAAS_WORKER_PYTHON", "BRAAS_BLENDER")
    saved = {name: os.environ.pop(name, None) for name in names}
    frames = f"1-{args.frames}"
    times: dict[Path | str, list[float]] = {how: [] for how in environments}
    try:
        for round_ in range(args.repeat + 1):  # round 0 warms caches up, not counted
            for how, env in environments.items():
                os.environ.update(env)
                name = how.stem if isinstance(how, Path) else how
                root = make_job_root(work / f"{name}-{round_}", scene)
                task = {"task": 0, "frames": frames, "scene": f"in/{scene.name}",
                        "device": "CPU", "threads": 0, "walltime_seconds": 600}
                started = time.perf_counter()
                record = render_on_worker(task, str(root))
                took = time.perf_counter() - started
                for name in env:
                    del os.environ[name]
                outputs = sorted((root / "out").glob("*.png"))
                if record["state"] != "FINISHED" or len(outputs) != args.frames or \
                        not all(is_valid_image(p) for p in outputs):
                    sys.exit(f"bench_image: the {name} run failed: {record}")
                if round_:
                    times[how].append(took)
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
        subprocess.run(["rm", "-rf", str(work)], check=False)

    host_s = statistics.median(times["host"])
    print(f"task: {args.frames} frames at {args.width}x{args.height}, {args.samples} samples, "
          f"CPU; median of {args.repeat}")
    print(f"host: {host_s:6.2f} s  Blender {host_blender} (bpy of {args.host_python})")
    for image in images:
        image_s = statistics.median(times[image])
        blender = (f"Blender {labels[image].get(container.LABEL_BLENDER_VERSION)} "
                   f"({labels[image].get(container.LABEL_BLENDER_SOURCE)})")
        print(f"{image.name}: {image_s:6.2f} s  {blender}, {image.stat().st_size / 2**20:.0f} MiB;"
              f" image / host {image_s / host_s:.2f} ({image_s - host_s:+.2f} s per task)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
