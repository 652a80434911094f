"""The job folder's layout and the task file's format are spelled once: worker/job_layout.py.

Checked here: it runs with the standard library alone (it ships with the worker), the one
other spelling (dispatch/compute_task.py, sent to centres by source) agrees with it, and a
job rendered by the local backend has exactly the layout it names.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

from braas_globus.dispatch import compute_task
from braas_globus.worker import job_layout as layout
from braas_globus.worker.image_check import is_valid_image

LAYOUT = Path(layout.__file__)
COMPUTE_TASK = Path(compute_task.__file__)


def test_it_needs_nothing_but_the_standard_library(tmp_path):
    alone = tmp_path / "worker-only"
    alone.mkdir()
    shutil.copy(LAYOUT, alone / LAYOUT.name)
    # -I -S: no site-packages, no PYTHONPATH, no braas_globus; and no sibling module either.
    probe = (f"import sys; sys.path.insert(0, {str(alone)!r}); import job_layout as l; "
             "from pathlib import Path; "
             "print(l.task_file(Path('/j'), 7), l.frame_name(12, '.png'), l.SUBFOLDERS)")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["/j/job/tasks/task-0007.json", "000012.png",
                                   "('in',", "'out',", "'log',", "'job')"]


def test_compute_task_writes_the_task_file_and_the_caches_where_the_layout_says(
        tmp_path, monkeypatch):
    """compute_task imports nothing of braas_globus: its own spellings must agree."""
    imported = [node for node in ast.walk(ast.parse(COMPUTE_TASK.read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not [node for node in imported if isinstance(node, ast.ImportFrom) and node.level]
    assert not [alias.name for node in imported for alias in node.names
                if alias.name.startswith("braas_globus")
                or getattr(node, "module", None) and node.module.startswith("braas_globus")]
    runs: list[tuple[list[str], dict]] = []

    def fake_run(argv, **kwargs):
        runs.append((argv, kwargs["env"]))
        return subprocess.CompletedProcess(argv, 0, '{"event": "end", "state": "FINISHED"}', "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    task = {"task": 7, "frames": "1", "scene": "in/scene.blend"}
    # On the host: the entry point gets the task file, and finds the job root from it.
    monkeypatch.delenv("BRAAS_IMAGE", raising=False)
    monkeypatch.setenv("BRAAS_WORKER_DIR", str(LAYOUT.parent))
    monkeypatch.setenv("BRAAS_BLENDER", "/sw/blender/blender")
    host_root = tmp_path / "host-job"
    compute_task.render_on_worker(task, str(host_root))
    # In the image: the same, and the GPU kernel caches in the job's cache folder.
    image = tmp_path / "braas-blender.sif"
    image.write_bytes(b"SIF")
    monkeypatch.setenv("BRAAS_IMAGE", str(image))
    for name in ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH"):
        monkeypatch.delenv(name, raising=False)
    image_root = tmp_path / "image-job"
    compute_task.render_on_worker(task, str(image_root))

    for (argv, env), root in zip(runs, (host_root, image_root), strict=True):
        written = layout.task_file(root, 7)
        assert argv[-1] == str(written)
        assert json.loads(written.read_text())["task"] == 7
        assert layout.root_of_task_file(written) == root
    assert runs[1][1]["CUDA_CACHE_PATH"] == str(image_root / layout.CACHE / "cuda")
    assert runs[1][1]["OPTIX_CACHE_PATH"] == str(image_root / layout.CACHE / "optix")


def test_a_local_job_has_exactly_the_layout_it_names(cli, scene, home):
    result = cli("submit", scene("anim6"), "--frames", "1-3", "--wait", "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    assert job["state"] == "FINISHED"
    root = Path(job["folder"])
    assert root.parent == home / layout.JOBS
    assert sorted(p.name for p in (home / layout.OBJECTS).iterdir())  # the staged content

    def names(folder: str) -> set[str]:
        return {p.relative_to(root).as_posix() for p in (root / folder).iterdir()}

    assert {p.name for p in root.iterdir()} == set(layout.SUBFOLDERS)
    manifest = json.loads((root / layout.MANIFEST).read_text())
    staged = root / layout.IN
    assert {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()} == \
        set(manifest)
    assert names(layout.OUT) == {f"{layout.OUT}/{layout.frame_name(f, '.png')}"
                                 for f in (1, 2, 3)}  # and no .partial-<pid>/ left
    assert all(is_valid_image(root / name) for name in names(layout.OUT))
    tasks = sorted(int(layout.TASK_FILE_NAME.fullmatch(p.name)["task"])
                   for p in (root / layout.TASKS).iterdir())
    assert tasks, "the runner wrote no task file"
    assert names(layout.LOG) == {layout.log_file(root, t).relative_to(root).as_posix()
                                 for t in tasks}
    assert names(layout.JOB) == {layout.SPEC, layout.PRESETS, layout.MANIFEST, layout.TASKS,
                                 layout.PROGRESS, layout.RUNNER_LOCK, layout.RUNNER_LOG}
    assert names(layout.PROGRESS) == {layout.progress_file(root, t).relative_to(root)
                                      .as_posix() for t in tasks}
    for t in tasks:
        described = json.loads(layout.task_file(root, t).read_text())
        assert described["task"] == t
        assert set(described) <= set(layout.TaskFile.__annotations__), \
            set(described) - set(layout.TaskFile.__annotations__)
        records = layout.progress_file(root, t).read_text().splitlines()
        assert json.loads(records[-1])["event"] == "end"
