"""The function a Globus Compute endpoint runs for one render task.

It is sent by source (the SDK's serializer), so it imports nothing of braas_globus: the
worker needs only Python and, in the image or on the host, the stdlib entry point
``render_task.py``. The centre's endpoint template says where that is, through the
environment its ``worker_init`` sets:

- ``BRAAS_IMAGE`` (+ ``BRAAS_CONTAINER_RUNTIME``, ``BRAAS_CONTAINER_FLAGS``): run the entry
  point inside the Apptainer image, with only the job folder bound into it;
- else ``BRAAS_WORKER_DIR`` (+ ``BRAAS_WORKER_PYTHON``): run it on the host, with the
  centre's Blender: ``BRAAS_BLENDER`` (an executable) or ``BRAAS_BLENDER_PYTHON`` (a Python
  with the ``bpy`` module). The client never chooses the program that runs.

The job folder is on the centre's shared file system (staged there by Transfer). The task
writes frames, logs and progress records into it and returns only its small closing
record: frames travel by Transfer, never in results (the service caps results at 10 MB).

The same function answers ``presets test``'s probe (``task["kind"] == "probe"``), so a
centre's ``allowed_functions`` holds one id: it reads the probe file at the worker's path
(``task["read"]``; a leading ``~`` is this worker's home), writes the answer file
``task["write"]`` beside it (the content's sha256 and the node's name, as
``preset_probe.answer_text``) and returns a small record; no Blender, stdlib only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # sent by source: only the standard library at the centre
    from typing import Any


def render_on_worker(task: dict[str, Any], job_root: str) -> dict[str, Any]:
    """Run one render task in ``job_root``; return the entry point's closing record."""
    import json
    import os
    import shlex
    import subprocess
    from pathlib import Path

    if task.get("kind") == "probe":  # `presets test`: does this worker see the file?
        import hashlib
        import re

        node = os.uname().nodename
        read = os.path.expanduser(str(task.get("read", "")))
        write = os.path.expanduser(str(task.get("write", "")))
        name = os.path.basename(read)
        if not (os.path.isabs(read) and re.fullmatch(r"probe-[0-9a-f]{32}\.txt", name)
                and write == os.path.join(os.path.dirname(read), name[:-4] + ".answer")):
            return {"event": "probe", "ok": False, "node": node, "read": read[:4096],
                    "reason": "not a probe file's path"}
        try:
            with open(read, "rb") as file:
                content = file.read(4096)
        except OSError as err:
            return {"event": "probe", "ok": False, "node": node, "read": read,
                    "reason": f"{type(err).__name__}: {err.strerror}"}
        digest = hashlib.sha256(content).hexdigest()
        answer = json.dumps({"node": node, "sha256": digest}, sort_keys=True)
        record = {"event": "probe", "ok": True, "node": node, "read": read, "write": write,
                  "sha256": digest}
        try:
            fd = os.open(write, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(answer)
        except OSError as err:
            return {**record, "wrote": False,
                    "reason": f"cannot write {write}: {type(err).__name__}: {err.strerror}"}
        return {**record, "wrote": True}

    root = Path(job_root)
    image = os.environ.get("BRAAS_IMAGE", "")
    in_image = bool(image) and os.path.exists(image)
    wanted = task.get("runtime")  # the preset's choice: "image", "host", or None (either)
    if wanted == "image" and not in_image:
        return {"event": "end", "state": "FAILED", "missing": task["frames"],
                "reason": f"the preset renders in the image, and this endpoint's image "
                          f"BRAAS_IMAGE={image or '(unset)'} is not on {os.uname().nodename}"}
    if wanted == "host":
        in_image = False
    # Which program renders is the centre's choice, never the client's: the image's own
    # Blender (render_task.py reads how to start it in the image), or on the host the
    # Blender the endpoint's worker_init names.
    blender: dict[str, str | list[str]]
    if in_image:
        blender = {"kind": "image"}
    elif os.environ.get("BRAAS_BLENDER_PYTHON"):
        blender = {"kind": "python", "command": [os.environ["BRAAS_BLENDER_PYTHON"]]}
    elif os.environ.get("BRAAS_BLENDER"):
        blender = {"kind": "executable", "command": [os.environ["BRAAS_BLENDER"]]}
    else:
        reason = (f"the image BRAAS_IMAGE={image} does not exist on {os.uname().nodename}"
                  if image else "this endpoint names no Blender (BRAAS_IMAGE, or BRAAS_BLENDER "
                                "or BRAAS_BLENDER_PYTHON for a host install)")
        return {"event": "end", "state": "FAILED", "missing": task["frames"], "reason": reason}
    task = {**task, "blender": blender}
    # The centre's defaults from worker_init: the partition's Cycles device, and on a GPU
    # node (one worker per GPU) this worker's share of the cores, so Blenders side by side
    # do not each start a thread per core.
    if not task.get("device") and os.environ.get("BRAAS_CYCLES_DEVICE"):
        task["device"] = os.environ["BRAAS_CYCLES_DEVICE"]
    if not task.get("threads") and os.environ.get("BRAAS_CPU_THREADS", "").isdigit():
        task["threads"] = int(os.environ["BRAAS_CPU_THREADS"])
    task_file = root / "job" / "tasks" / f"task-{int(task['task']):04d}.json"
    task_file.parent.mkdir(parents=True, exist_ok=True)
    task_file.write_text(json.dumps(task))

    if in_image:
        runtime = os.environ.get("BRAAS_CONTAINER_RUNTIME", "apptainer")
        flags = shlex.split(os.environ.get("BRAAS_CONTAINER_FLAGS", ""))  # the centre's, not a user's
        # The layout of braas_globus.container.exec_argv (tests/test_container.py keeps them
        # equal): --contain leaves $HOME, /tmp and site binds out; the job folder is the one bind.
        if "," in str(root) or ":" in str(root):  # --bind reads them as separators
            return {"event": "end", "state": "FAILED", "missing": task["frames"],
                    "reason": f"the job folder {root} holds ',' or ':'; apptainer cannot bind it"}
        argv = [runtime, "exec", "--contain", "--pwd", str(root), *flags, "--bind", str(root),
                image, "python3", "-I", "/opt/braas/worker/render_task.py", str(task_file)]
        # The GPU kernel caches, in the job folder: under --contain, $HOME and /var/tmp are
        # empty for every task, and Blender ships CUDA kernels for A100/H100 only as PTX that
        # the driver compiles at first use. The job's other tasks reuse what one compiled.
        cache = root / "job" / "cache"
        for kind in ("cuda", "optix"):
            (cache / kind).mkdir(parents=True, exist_ok=True)
        env = {"CUDA_CACHE_PATH": str(cache / "cuda"), "CUDA_CACHE_MAXSIZE": str(4 << 30),
               "OPTIX_CACHE_PATH": str(cache / "optix"), **os.environ}
    else:
        worker_dir = os.environ.get("BRAAS_WORKER_DIR")
        if not worker_dir:
            reason = (f"the image BRAAS_IMAGE={image} does not exist on {os.uname().nodename}"
                      if image else "this endpoint sets neither BRAAS_IMAGE nor BRAAS_WORKER_DIR")
            return {"event": "end", "state": "FAILED", "missing": task["frames"],
                    "reason": reason}
        python = os.environ.get("BRAAS_WORKER_PYTHON", "python3")
        argv = [python, str(Path(worker_dir) / "render_task.py"), str(task_file)]
        env = dict(os.environ)

    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, env=env, check=False)
    except OSError as err:  # no apptainer on the node, a wrong BRAAS_WORKER_PYTHON
        return {"event": "end", "state": "FAILED", "missing": task["frames"],
                "host": os.uname().nodename, "reason": f"cannot start {argv[0]}: {err}"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{") and '"end"' in line:
            record = json.loads(line)
            if record.get("event") == "end":
                return {**record, "exit_code": done.returncode, "host": os.uname().nodename,
                        "runtime": "image" if in_image else "host"}
    return {"event": "end", "state": "FAILED", "missing": task["frames"],
            "exit_code": done.returncode, "host": os.uname().nodename,
            "reason": (done.stderr.strip().splitlines() or ["the entry point printed nothing"])[-1]}
