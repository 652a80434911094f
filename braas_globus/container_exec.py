"""The command line that runs one render task in the image, built from the cluster catalog.

``exec_argv`` is the one layout a render task runs under:

    [runtime, "exec", "--contain", "--pwd", JOB_ROOT, *gpu_flags, "--bind", JOB_ROOT,
     IMAGE, "python3", "-I", "/opt/braas/worker/render_task.py", TASK_FILE]

``--contain`` keeps $HOME, /tmp, the working directory and the site's ``bind path`` entries
out of the container (GPU devices still come in with --nv and --rocm); the job folder is the
only bind. ``dispatch/compute_task.py`` builds the same list from the endpoint's environment
(it is sent by source and cannot import this module); tests/test_container.py fails when
the two differ.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

from .catalog import Cluster, load_catalog
from .container_image import ENTRY_POINT, RUNTIMES
from .errors import RunError, UsageError

_DEVICE = re.compile(r"/dev/[A-Za-z0-9_][A-Za-z0-9_./-]*")
_GPU_FLAGS = ("--nv", "--nvccli", "--rocm")


def _plain(value: object, what: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{what} must be a path, not {type(value).__name__}")
    text = os.fspath(value)
    if not text or any(c in text for c in "\x00\n\r"):
        raise UsageError(f"{what} {text!r} is empty or holds a control character")
    return text


def _gpu_flags(cluster: Cluster, partition: str) -> list[str]:
    """The catalog's exec flags for ``partition``, checked against the ones this image knows."""
    flags = list(cluster.container_flags_for(partition))
    i = 0
    while i < len(flags):
        if flags[i] in _GPU_FLAGS:
            i += 1
        elif flags[i] == "--bind" and i + 1 < len(flags) and _DEVICE.fullmatch(flags[i + 1]) \
                and ".." not in flags[i + 1]:
            i += 2
        else:
            raise RunError(f"catalog: {cluster.name} gives the exec flag {flags[i]!r}; the "
                           f"image knows {', '.join(_GPU_FLAGS)} and --bind /dev/...")
    return flags


def exec_argv(cluster: str | Cluster, partition: str, image: str | os.PathLike[str],
              job_root: str | os.PathLike[str], task_file: str | os.PathLike[str],
              runtime: str | None = None) -> list[str]:
    """The argv that runs one render task in the image on ``cluster``/``partition``.

    Flags come from the catalog only; the job folder is the one bound path (Apptainer reads
    ',' and ':' in a bind as separators, so a job folder holding them is refused).
    """
    if not isinstance(cluster, Cluster):
        cluster = load_catalog().get(cluster)
    flags = _gpu_flags(cluster, partition)
    runtime = runtime or cluster.container.runtime
    if PurePosixPath(runtime).name not in RUNTIMES or \
            (os.sep in runtime and not runtime.startswith("/")):
        raise UsageError(f"container runtime {runtime!r}: use {' or '.join(RUNTIMES)} "
                         "(a name on PATH or an absolute path)")
    image = _plain(image, "the image")
    if not image.startswith("/"):
        raise UsageError(f"the image {image!r} must be an absolute path to a .sif file")
    root = PurePosixPath(_plain(job_root, "the job folder"))
    if not root.is_absolute() or ".." in root.parts:
        raise UsageError(f"the job folder {str(root)!r} must be an absolute path without '..'")
    if any(c in str(root) for c in ",:"):
        raise UsageError(f"the job folder {str(root)!r} holds ',' or ':', which "
                         f"`{runtime} exec --bind` reads as separators")
    task = PurePosixPath(_plain(task_file, "the task file"))
    if ".." in task.parts or not task.is_relative_to(root) or task == root:
        raise UsageError(f"the task file {str(task)!r} must be inside the job folder {root}: "
                         "nothing else is bound into the container")
    return [runtime, "exec", "--contain", "--pwd", str(root), *flags, "--bind", str(root),
            image, "python3", "-I", ENTRY_POINT, str(task)]

