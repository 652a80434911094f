"""The aarch64 render image (TACC Vista), built from the unchanged container/Apptainer.def on
this x86_64 machine and run under emulation: `container build --arch aarch64` (Debian
trixie's own Blender 4.3.2 for arm64, pinned by package version and sha256), its %test, two
tiny frames through render_on_worker in it, and a CUDA task refused with the image's reason.

Real: Apptainer, the recipe, Debian's arm64 packages, Blender 4.3.2 for aarch64 (every arm64
instruction through qemu-user-static, registered in binfmt_misc), the worker entry point.
The base image is the STAND-IN .ci/apptainer/arm64.sh makes (a debootstrapped arm64
debian:trixie-slim in the local registry: Docker Hub is out of reach).

Emulation is slow (a Blender start takes about a minute here): the built image is kept in
the CI cache under a name made of the sha256 of everything the build reads (the recipe, the
checksum table, the download script, the worker modules), so a run whose inputs did not
change reuses it and runs its %test again instead of building. Build and render times are
in container/README.md, never asserted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from braas_globus import __version__
from braas_globus import container as ct
from braas_globus.dispatch import compute_task
from braas_globus.worker.image_check import is_valid_image

from .conftest import MAKE_DEMO_SCENE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[1]
BLENDER_42 = REPO / ".venv-blender-4.2" / "bin" / "python"  # bpy 4.2: files Blender 4.3 reads
DEBIAN_BLENDER = ("4.3.2", "aarch64", "debian",
                  "81b13a5214c2f0f7e14ade6cb19e61b3dbed1a134281a46647a3b4420685c439")


def build_inputs_key() -> str:
    """The sha256 of everything an aarch64 build reads from this checkout."""
    digest = hashlib.sha256(json.dumps(ct.ARCH_BUILD_ARGS["aarch64"], sort_keys=True).encode())
    container_dir = REPO / "container"
    for path in [container_dir / "Apptainer.def", container_dir / ct.CHECKSUMS_NAME,
                 container_dir / ct.FETCH_SCRIPT_NAME,
                 *sorted((REPO / ct.WORKER_SOURCE).glob("*.py"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path | None:
    folder = Path(os.environ.get("BRAAS_CI_CACHE", "/var/cache/braas-globus")) / "images"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


@pytest.fixture(scope="session")
def aarch64_image(tmp_path_factory) -> Path:
    if ct.find_runtime() is None:
        pytest.skip("apptainer is not installed on this machine: bash .ci/apptainer/install.sh "
                    "installs it, as root")
    problem = ct.emulation_problem("aarch64")
    if problem is not None:
        pytest.skip(f"{problem} (bash .ci/apptainer/arm64.sh does it here)")
    runtime = ct.find_runtime()
    assert runtime is not None
    folder = cache_dir()
    cached = folder / f"braas-blender-aarch64-{build_inputs_key()[:16]}.sif" if folder else None
    if cached is not None and cached.is_file():
        started = time.monotonic()
        done = subprocess.run([runtime, "test", str(cached)], capture_output=True, text=True,
                              timeout=1800)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        print(f"aarch64 image: {cached} (built before from these inputs); its %test took "
              f"{time.monotonic() - started:.0f} s")
        return cached
    image = tmp_path_factory.mktemp("aarch64") / "braas-blender-aarch64.sif"
    started = time.monotonic()
    ct.build(ct.DEFAULT_RECIPE, image, arch="aarch64", fakeroot=True, log=lambda line: None)
    print(f"aarch64 image: built (with its %test) in {time.monotonic() - started:.0f} s")
    if cached is not None:
        partial = cached.with_suffix(".partial")
        shutil.copyfile(image, partial)
        partial.replace(cached)
        for old in cached.parent.glob("braas-blender-aarch64-*.sif"):
            if old != cached:
                old.unlink()
    return image


def exec_in(image: Path, *argv: str) -> str:
    runtime = ct.find_runtime()
    assert runtime is not None
    return subprocess.run([runtime, "exec", str(image), *argv], capture_output=True, text=True,
                          check=True, timeout=600).stdout


def test_the_aarch64_image_holds_debians_blender_and_says_what_it_lacks(aarch64_image):
    assert ct.verify(aarch64_image) == []
    labels = ct.inspect_labels(aarch64_image)
    assert (labels[ct.LABEL_BLENDER_VERSION], labels[ct.LABEL_BLENDER_ARCH],
            labels[ct.LABEL_BLENDER_SOURCE], labels[ct.LABEL_BLENDER_SHA256]) == DEBIAN_BLENDER
    assert labels["org.braas.blender.url"] == "debian:blender=4.3.2+dfsg-2"
    # Debian builds Blender without GPU kernels and without OpenImageDenoise.
    assert labels[ct.LABEL_BLENDER_DEVICES] == "CPU"
    assert labels[ct.LABEL_BLENDER_OIDN] == "no"
    assert labels[ct.LABEL_GLOBUS_VERSION] == __version__
    assert exec_in(aarch64_image, "uname", "-m").strip() == "aarch64"
    described = json.loads(exec_in(aarch64_image, "cat", "/opt/blender/blender.json"))
    assert described == {"kind": "executable", "command": ["/opt/blender/blender"],
                         "devices": ["CPU"], "openimagedenoise": False,
                         "name": "Blender 4.3.2 (aarch64, from debian)"}
    for module in sorted((REPO / ct.WORKER_SOURCE).glob("*.py")):  # the same worker code
        assert exec_in(aarch64_image, "cat", f"{ct.IMAGE_WORKER_DIR}/{module.name}") == \
            module.read_text(), module.name


@pytest.fixture
def job_root(tmp_path) -> Path:
    """A job folder with a 2-frame 32x24 scene saved by Blender 4.2 (the image's 4.3 reads
    it; a file of PyPI's bpy 5.0 it would refuse as newer)."""
    if not BLENDER_42.is_file():
        pytest.skip(f"no {BLENDER_42}: .ci/run's blender-4.2 step makes it")
    root = tmp_path / "job root"
    (root / "job" / "tasks").mkdir(parents=True)
    subprocess.run([str(BLENDER_42), str(MAKE_DEMO_SCENE), "--", "--out",
                    str(root / "in" / "scene.blend"), "--frames", "2", "--width", "32",
                    "--height", "24", "--samples", "2"], check=True, capture_output=True,
                   timeout=300)
    return root


#: What Vista's worker_init exports that render_on_worker reads.
WORKER_ENV = ("BRAAS_IMAGE", "BRAAS_CONTAINER_RUNTIME", "BRAAS_CONTAINER_FLAGS",
              "BRAAS_CYCLES_DEVICE", "BRAAS_CPU_THREADS")


def vista_worker_env(image: Path, partition: str, folder: Path) -> dict[str, str]:
    """The environment endpoints/vista/'s template gives a worker on ``partition``, with
    the admin's edit naming the aarch64 image: its worker_init's exports, as the batch
    job's shell would set them."""
    from braas_globus.endpoint_config import load_rendered_config

    from .engines import image_settings, render_as_centre

    user = {"account": "TG-ABC123456", "partition": partition, "walltime_minutes": 30}
    config = load_rendered_config(render_as_centre("vista", user, folder,
                                                   image_settings(image)))
    try:
        init = config.engine.executor.provider.worker_init
    finally:
        config.engine.shutdown()
    found = {}
    for line in init.splitlines():
        if line.strip().startswith("export BRAAS_") and "$(" not in line:
            for word in shlex.split(line.strip().removeprefix("export ")):
                key, _, value = word.partition("=")
                if key in WORKER_ENV:
                    found[key] = value
    return found


def run_in_image(image: Path, root: Path, monkeypatch, env: dict[str, str] | None = None,
                 **task) -> dict:
    """render_on_worker as Vista's endpoint runs it (BRAAS_IMAGE from its worker_init)."""
    env = env or {"BRAAS_IMAGE": str(image), "BRAAS_CONTAINER_RUNTIME": str(ct.find_runtime()),
                  "BRAAS_CONTAINER_FLAGS": ""}
    for name in ("BRAAS_BLENDER", "BRAAS_BLENDER_PYTHON", "BRAAS_WORKER_DIR", *WORKER_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    description = {"task": 0, "frames": "1-2", "scene": "in/scene.blend", "device": "CPU",
                   "runtime": "image", "walltime_seconds": 3000,
                   "blender": {"kind": "executable", "command": ["/bin/false"]}, **task}
    return compute_task.render_on_worker(description, str(root))


def test_two_frames_render_in_the_aarch64_image_through_render_on_worker(aarch64_image,
                                                                         job_root,
                                                                         monkeypatch):
    started = time.monotonic()
    record = run_in_image(aarch64_image, job_root, monkeypatch)
    print(f"aarch64 image: 2 frames of 32x24, 2 samples, emulated, in "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    assert record["state"] == "FINISHED" and record["runtime"] == "image", record
    frames = sorted((job_root / "out").glob("*.png"))
    assert [p.name for p in frames] == ["000001.png", "000002.png"]
    assert all(is_valid_image(p) for p in frames)
    log = (job_root / "log" / "task-0000.log").read_text()
    assert "Blender 4.3.2" in log


@pytest.mark.parametrize("partition", ["gg", "gh"])
def test_vistas_template_with_the_aarch64_image_renders_on_the_cpu(aarch64_image, job_root,
                                                                   monkeypatch, tmp_path,
                                                                   partition):
    env = vista_worker_env(aarch64_image, partition, tmp_path / "centre")
    assert env["BRAAS_IMAGE"] == str(aarch64_image)
    assert env["BRAAS_CYCLES_DEVICE"] == "CPU"  # gh too: the image has no GPU kernels
    assert env["BRAAS_CONTAINER_FLAGS"] == ("--nv" if partition == "gh" else "")
    # As the client sends it: the preset's device (the catalog's default for the partition).
    from braas_globus.catalog import load_catalog

    device = load_catalog().get("vista").cycles_device_for(partition)
    record = run_in_image(aarch64_image, job_root, monkeypatch, env=env, device=device)
    assert record["state"] == "FINISHED", record
    assert sorted(p.name for p in (job_root / "out").glob("*.png")) == \
        ["000001.png", "000002.png"]


def test_a_cuda_task_is_refused_with_the_images_reason(aarch64_image, job_root, monkeypatch):
    record = run_in_image(aarch64_image, job_root, monkeypatch, device="CUDA")
    assert record["state"] == "FAILED", record
    assert record["reason"] == (
        "Blender 4.3.2 (aarch64, from debian) cannot render on CUDA: it has no CUDA kernels "
        "(it renders on CPU); submit with --device CPU, or render with an image whose "
        "Blender has them")
    assert not (job_root / "out").exists() or not list((job_root / "out").iterdir())
