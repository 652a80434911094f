"""A real GlobusComputeEngine built from OUR endpoint templates, driven without the Globus cloud.

What is real: the centre template (endpoints/<cluster>/user_config_template.yaml.j2, or one
that braas_globus.endpoint_gen made from a catalog in a test) rendered
by globus-compute-endpoint's own renderer after the strict schema check, the config loaded by
its own loader, the engine it builds (Parsl's HighThroughputExecutor with the interchange
started by `globus-compute-endpoint python-exec`), the provider's real `sbatch` / `qsub`,
the worker pool inside the batch job, `execute_task` on the worker, and real Blender.

What is bypassed: only the Globus cloud relay (the web service and AMQP queues between a
client and the endpoint). A task is packed here as the service hands it to an endpoint
(the function's and the arguments' `ComputeSerializer` buffers inside a messagepack `Task`)
and given to `engine.submit`, which is what the endpoint's interchange does with a task it
received from the cloud; the packed `Result` it hands back is unpacked here instead of
being published.

Two kinds of edits are made, each in one place below:
- ADMIN_SETTINGS: the template's "centre settings" lines, edited as a centre admin would;
- ADAPTATIONS: what cannot work on this 2-core, one-node machine as a real centre's
  config, changed on the rendered config before it is loaded, each with the reason.

Used by tests/test_engine_on_schedulers.py and bench/bench_engine.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from unittest import mock

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.prefix) / "bin"  # sys.prefix is the venv; do not resolve its python link
WORKER_DIR = REPO / "braas_globus" / "worker"
WORKER_PYTHON = VENV_BIN / "python"

# --- the admin's edit ------------------------------------------------------------------------
#: THIS IS THE CENTRE ADMIN'S EDIT of the template's "Centre settings" block, not a test
#: shortcut: a centre without the Apptainer image runs the worker on the host. An empty
#: image path makes render_on_worker use BRAAS_WORKER_DIR / BRAAS_WORKER_PYTHON; the venv on
#: PATH is where `globus-compute-endpoint` (the worker pool's launcher) lives here.
ADMIN_SETTINGS = {
    "braas_image": "",
    "worker_env": (f"export PATH={VENV_BIN}:$PATH\n"
                   f"export BRAAS_WORKER_DIR={WORKER_DIR} BRAAS_WORKER_PYTHON={WORKER_PYTHON}"
                   f" BRAAS_BLENDER_PYTHON={WORKER_PYTHON}"),
}


def image_settings(image: Path) -> dict[str, str]:
    """THE CENTRE ADMIN'S EDIT for a centre with the render image: its path, and the venv on
    PATH only for `globus-compute-endpoint` (the worker pool's launcher). Blender and the
    worker code come from the image."""
    return {"braas_image": str(image), "worker_env": f"export PATH={VENV_BIN}:$PATH"}

# --- what this machine cannot do as a centre does --------------------------------------------
#: (cluster or "*", dotted key under `engine`, new value, why). Applied to the rendered YAML
#: before globus-compute-endpoint loads it, so its loader still checks the result.
#: Karolina needs none: its template runs here as rendered. `address` stays unset, as in the
#: template: the worker pool probes every address of the interchange host (127.0.0.1 among
#: them) and takes the first that answers; setting 127.0.0.1 made no difference here.
ADAPTATIONS: list[tuple[str, str, Any, str]] = [
    ("polaris", "provider.launcher", {"type": "SingleNodeLauncher"},
     ("MpiExecLauncher needs PALS/MPICH mpiexec (--cpu-bind, --ppn); /usr/bin/mpiexec here is "
      "slurm-wlm-torque's mpiexec.slurm, which knows neither. On one node SingleNodeLauncher "
      "starts the same single worker manager")),
    ("polaris", "provider.cpus_per_node", 2,
     "a Polaris node has 32 cores; this node has 2, and Slurm rejects select=1:ncpus=32"),
]


def _applies(rule_cluster: str, cluster: str) -> bool:
    return rule_cluster in ("*", cluster)


def adaptations_for(cluster: str) -> list[tuple[str, Any, str]]:
    return [(key, value, why) for c, key, value, why in ADAPTATIONS if _applies(c, cluster)]


def admin_edited_endpoints(cluster: str, folder: Path,
                           settings: dict[str, str] = ADMIN_SETTINGS,
                           endpoints: Path | None = None) -> Path:
    """A copy of endpoints/<cluster>/ under folder/endpoints with the admin's settings applied.

    ``endpoints`` is the folder to copy from (default: the repository's endpoints/; a test
    passes one that braas_globus.endpoint_gen made). Fails loudly if the template's centre
    settings lines are not there exactly once.
    """
    source = (endpoints or REPO / "endpoints") / cluster
    target = folder / "endpoints" / cluster
    shutil.copytree(source, target)
    template = target / "user_config_template.yaml.j2"
    text = template.read_text(encoding="utf-8")
    for name, value in settings.items():
        pattern = re.compile(r'^\{%-? set ' + name + r' = "[^"\n]*" %\}$', re.MULTILINE)
        literal = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        line = f'{{%- set {name} = "{literal}" %}}'
        text, count = pattern.subn(lambda _m, line=line: line, text)
        assert count == 1, f"{template}: centre setting {name!r} found {count} times, not once"
    template.write_text(text, encoding="utf-8")
    return folder / "endpoints"


def render_as_centre(cluster: str, user_config: dict[str, Any], folder: Path,
                     settings: dict[str, str] = ADMIN_SETTINGS,
                     endpoints: Path | None = None) -> str:
    """The endpoint config the centre's endpoint would build for this user, after the admin edit.

    Goes through braas_globus.endpoint_config.render_user_config (schema check, then
    globus-compute-endpoint's renderer) with the template folder pointed at the edited copy.
    """
    from braas_globus import endpoint_config

    edited = admin_edited_endpoints(cluster, folder, settings, endpoints)
    endpoint_config.load_schema.cache_clear()
    try:
        with mock.patch.object(endpoint_config, "ENDPOINTS_DIR", edited):
            return endpoint_config.render_user_config(cluster, user_config)
    finally:
        endpoint_config.load_schema.cache_clear()


def adapt(cluster: str, rendered: str) -> str:
    """Apply ADAPTATIONS for this machine to the rendered YAML (see their reasons)."""
    data = yaml.safe_load(rendered)
    for key, value, _why in adaptations_for(cluster):
        node = data["engine"]
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return yaml.safe_dump(data, sort_keys=False)


def build_engine(cluster: str, user_config: dict[str, Any], folder: Path,
                 settings: dict[str, str] = ADMIN_SETTINGS,
                 endpoints: Path | None = None) -> Any:
    """Render (as the centre), adapt for this machine, load with globus-compute-endpoint.

    ``endpoints``: the endpoint folders to take the template from (default: endpoints/)."""
    from braas_globus.endpoint_config import load_rendered_config

    text = adapt(cluster, render_as_centre(cluster, user_config, folder, settings, endpoints))
    (folder / f"{cluster}-config.yaml").write_text(text, encoding="utf-8")  # post-mortems
    return load_rendered_config(text).engine


# --- driving the engine as the endpoint's interchange does -----------------------------------


def source_serializer():
    """Functions by source, as compute_task.py asks: the worker needs no braas_globus install."""
    from globus_compute_sdk.serialize import ComputeSerializer, DillCodeSource

    return ComputeSerializer(strategy_code=DillCodeSource())


class RemoteError(RuntimeError):
    """The task raised (or the engine failed it); the message is the worker's traceback."""


class OfflineEndpoint:
    """A started engine plus the few calls the cloud relay would make. Use as a context manager.

    Leaves nothing behind: shutdown() closes the engine (which cancels its blocks) and then
    scancels any block that is still known to Slurm, and waits until none is left.
    """

    def __init__(self, engine: Any, run_dir: Path) -> None:
        self.engine = engine
        self.run_dir = run_dir
        self.serde = source_serializer()
        self.endpoint_id = uuid.uuid4()
        self.seen_job_ids: set[str] = set()
        self._started = False

    def __enter__(self) -> Self:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.engine.start(endpoint_id=self.endpoint_id, run_dir=str(self.run_dir),
                          monitored=True)
        self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def pack(self, function: Callable, *args: Any, **kwargs: Any) -> tuple[uuid.UUID, bytes]:
        """A messagepack Task as the cloud hands it to an endpoint."""
        from globus_compute_common import messagepack
        from globus_compute_common.messagepack.message_types import Task

        task_id = uuid.uuid4()
        buffer = self.serde.pack_buffers([self.serde.serialize(function),
                                          self.serde.serialize(args),
                                          self.serde.serialize(kwargs)])
        return task_id, messagepack.pack(Task(task_id=task_id, task_buffer=buffer))

    def submit(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        """engine.submit(GCFuture, packed Task); the GCFuture resolves to the packed Result."""
        from globus_compute_endpoint.engines.base import GCFuture

        task_id, packed = self.pack(function, *args, **kwargs)
        future = GCFuture(task_id)
        self.engine.submit(future, packed, resource_specification={})
        return future

    def result(self, future: Any, timeout: float) -> tuple[Any, bytes]:
        """(the function's return value, the packed Result bytes as they would travel)."""
        from globus_compute_common import messagepack

        packed: bytes = future.result(timeout=timeout)
        result = messagepack.unpack(packed)
        if result.is_error:
            raise RemoteError(result.data)
        return self.serde.deserialize(result.data), packed

    def run(self, function: Callable, *args: Any, timeout: float = 120) -> Any:
        value, _packed = self.result(self.submit(function, *args), timeout)
        return value

    def job_ids(self) -> list[str]:
        """Scheduler job ids of every block the engine has submitted so far."""
        ids = [str(j) for j in self.engine.executor.blocks_to_job_id.values()]
        self.seen_job_ids.update(ids)
        return ids

    def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        self.job_ids()
        try:
            self.engine.shutdown()
        finally:
            cancel_jobs(sorted(self.seen_job_ids))


def cancel_jobs(job_ids: list[str], timeout: float = 60) -> None:
    """scancel whatever of these jobs is not final yet, and wait until Slurm says so."""
    from tests.schedulers import SLURM_FINAL_STATES, slurm_job

    if not job_ids:
        return
    subprocess.run(["scancel", *job_ids], capture_output=True, check=False, timeout=30)
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for job_id in job_ids:
            try:
                states[job_id] = slurm_job(job_id).get("JobState", "?")
            except LookupError:  # purged: gone for good
                continue
        if all(s in SLURM_FINAL_STATES for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Slurm jobs still alive after scancel: {states}")
        time.sleep(0.25)


# --- things a user checks on the worker side -------------------------------------------------


def blender_processes(marker: str) -> list[int]:
    """PIDs of live (not zombie) Blender render processes whose command line holds `marker`.

    The marker (a job root path) keeps other tests' renders, running at the same time, out.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if state != "Z" and any(w.endswith("blender_render.py") for w in words) \
                and any(marker in w for w in words):
            found.append(int(proc.name))
    return found


def make_job_root(folder: Path, scene: Path) -> Path:
    """A job folder as staging leaves it: the scene folder in in/, empty out/ log/ job/."""
    shutil.copytree(scene.parent, folder / "in")
    for name in ("out", "log", "job"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return folder


def render_task(job_root: Path, scene: Path, frames: str, *, task: int = 0,
                walltime_seconds: int = 300, job_id: str = "engine-test") -> dict[str, Any]:
    """The task dict the dispatcher sends for one render chunk."""
    return {"job_id": job_id, "task": task, "attempt": 1,
            "scene": str((job_root / "in" / scene.name).relative_to(job_root)),
            "frames": frames, "device": "CPU", "threads": 0, "allow_scripts": False,
            "walltime_seconds": walltime_seconds,
            "blender": {"kind": "python", "command": [str(WORKER_PYTHON)]}}
