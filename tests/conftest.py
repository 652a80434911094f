"""Shared fixtures: a fresh BRAAS_HOME per test, tiny real Blender scenes, the CLI in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from braas_globus.blender_scripts import MAKE_DEMO_SCENE
from braas_globus.cli import main as cli_main

# Tiny frames keep each Cycles render well under a second on two cores.
TINY = ["--width", "64", "--height", "48", "--samples", "4"]


def build_scene(folder: Path, *extra: str, name: str = "scene.blend") -> Path:
    """A real .blend made by Blender (PyPI bpy): textures in nested folders beside it."""
    out = folder / name
    subprocess.run([sys.executable, str(MAKE_DEMO_SCENE), "--", "--out", str(out), *TINY, *extra],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def scene_templates(tmp_path_factory) -> dict[str, Path]:
    """Scenes built once per session; tests get copies (``scene`` fixture)."""
    root = tmp_path_factory.mktemp("scenes")
    return {
        "anim6": build_scene(root / "anim6", "--frames", "6"),
        "anim12": build_scene(root / "anim12", "--frames", "12"),
        "missing": build_scene(root / "missing", "--frames", "3", "--missing-texture"),
        "eevee": build_scene(root / "eevee", "--frames", "3", "--engine", "BLENDER_EEVEE"),
        "denoised": build_scene(root / "denoised", "--frames", "3", "--denoise"),
    }


def pip_cert_binds() -> tuple[list[str], dict[str, str]]:
    """Binds and environment that let pip in an image build trust what this machine trusts
    (here, a TLS-inspecting proxy): the CA bundle pip uses here, bound at /mnt."""
    candidates = [os.environ.get(name) for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE",
                                                    "SSL_CERT_FILE")]
    cert = next((c for c in [*candidates, "/etc/ssl/certs/ca-certificates.crt"]
                 if c and Path(c).is_file()), None)
    if cert is None:
        return [], {}
    return ([f"{Path(cert).parent}:/mnt"],
            {"APPTAINERENV_PIP_CERT": f"/mnt/{Path(cert).name}"})


# The tests' image carries the Blender that makes their scenes (bpy 5.0.1): a worker refuses
# a scene saved by a newer Blender than its own. The recipe's default stays the 4.5 LTS.
IMAGE_BLENDER = {"BLENDER_SOURCE": "pypi", "BLENDER_VERSION": "5.0.1"}


@pytest.fixture(scope="session")
def render_image(tmp_path_factory) -> Path:
    """The render image, built once per session from the unchanged container/Apptainer.def.

    .ci/apptainer/ installs Apptainer (Debian 12 does not package it) and serves the base
    image debian:bookworm-slim from a local registry (Docker Hub is out of reach). Blender
    is the recipe's pinned bpy wheel (BLENDER_SOURCE=pypi): this machine reaches PyPI but
    not download.blender.org; 5.0.1, the bpy of the test scenes (IMAGE_BLENDER).
    --fakeroot: how most users build; a root build here also lacks CAP_SYS_RESOURCE. The
    build runs the recipe's %test (one frame).
    """
    from braas_globus import container

    if container.find_runtime() is None:
        pytest.skip("apptainer is not installed on this machine (Debian 12 does not package "
                    "it); bash .ci/apptainer/install.sh installs it, as root")
    image = tmp_path_factory.mktemp("image") / "braas-blender.sif"
    binds, env = pip_cert_binds()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        container.build(container.DEFAULT_RECIPE, image, IMAGE_BLENDER,
                        fakeroot=True, binds=binds, log=lambda line: None)
    return image


@pytest.fixture
def scene(scene_templates, tmp_path):
    """``scene("anim6")``: a private copy of a template scene and its texture folders."""

    def copy(name: str) -> Path:
        source = scene_templates[name]
        target = tmp_path / "user" / name
        shutil.copytree(source.parent, target)
        return target / source.name

    return copy


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "braas-home"
    monkeypatch.setenv("BRAAS_HOME", str(path))
    monkeypatch.delenv("BRAAS_BLENDER", raising=False)
    yield path
    stop_runners(path)


def stop_runners(home: Path) -> None:
    """Leave no runner of this test behind (a test that failed half-way may have one)."""
    from braas_globus.dispatch.local import _stop_group, runner_alive
    from braas_globus.settings import load_settings
    from braas_globus.store import Store

    if not (home / "jobs.sqlite").exists():
        return
    os.environ["BRAAS_HOME"] = str(home)
    store = Store(load_settings().store_path)
    for job in store.jobs():
        if runner_alive(job):
            _stop_group(job.runner_pid, grace=2)
    store.close()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        """The command's JSON result: all of stdout, or after JSON lines of progress
        (`--json --wait`) its last line."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            return json.loads(self.stdout.splitlines()[-1])

    def events(self) -> list[dict]:
        """The JSON lines of progress that `--json --wait` writes before its result."""
        return [json.loads(line) for line in self.stdout.splitlines()[:-1]]


@pytest.fixture
def cli(capsys, home):
    """Run `braas-globus ARGS` in this process; returns its exit code and output."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = cli_main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def load_module(name: str, path: Path):
    """Import the file at ``path`` as module ``name`` (a script that is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and NamedTuples look their module up there
    spec.loader.exec_module(module)
    return module


def mean_alpha(paths: list[Path]) -> list[float]:
    """Each image's mean alpha, as Blender reads it: 0.0 is a blank (transparent) frame."""
    code = ("import sys, bpy\n"
            "for path in sys.argv[1:]:\n"
            "    px = bpy.data.images.load(path).pixels[:]\n"
            "    print('ALPHA', sum(px[3::4]) / (len(px) // 4))\n")
    done = subprocess.run([sys.executable, "-c", code, *map(str, paths)], check=True,
                          capture_output=True, text=True)
    return [float(line.split()[1]) for line in done.stdout.splitlines()
            if line.startswith("ALPHA ")]


def wait_for(condition, timeout: float = 60, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def frame_files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "out").glob("*.png"))


from tests.schedulers import pbs_front_end, slurm_cluster  # noqa: E402,F401  (shared fixtures)
