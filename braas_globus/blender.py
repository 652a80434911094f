"""Find Blender on this machine and run client-side scripts in it.

Blender is a ``blender`` executable (``BRAAS_BLENDER``, the ``blender`` setting, or
PATH) or, when there is none, this Python with PyPI ``bpy`` (the embedded default,
``pip install braas-globus[blender]``).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import RunError
from .settings import Settings
from .worker.render_task import blender_argv

BPY_PYTHONS = ((3, 11), (3, 13))  # the Pythons PyPI's bpy wheels are built for
_ERROR_LINE = re.compile(r"(error|exception|traceback)", re.I)


def find_blender(settings: Settings) -> dict[str, Any]:
    """How workers on this machine start Blender, as the task files record it."""
    if settings.blender:
        path = shutil.which(settings.blender) or settings.blender
        if not Path(path).is_file():
            raise RunError(f"Blender not found at {settings.blender} (BRAAS_BLENDER or the "
                           "'blender' setting)")
        return {"kind": "executable", "command": [str(Path(path).resolve())]}
    on_path = shutil.which("blender")
    if on_path:
        return {"kind": "executable", "command": [on_path]}
    if importlib.util.find_spec("bpy") is not None:
        return {"kind": "python", "command": [sys.executable]}
    if sys.version_info[:2] not in BPY_PYTHONS:
        raise RunError(f"no Blender found, and PyPI has no bpy for Python "
                       f"{sys.version_info.major}.{sys.version_info.minor} (only 3.11 and "
                       "3.13): set BRAAS_BLENDER to a blender executable, or install "
                       "braas-globus[blender] with Python 3.11 or 3.13")
    raise RunError("no Blender found: install the embedded one with "
                   "`pip install 'braas-globus[blender]'`, or set BRAAS_BLENDER to a blender "
                   "executable")


def run_blender_script(blender: dict[str, Any], script: Path, args: list[str],
                       timeout: float = 600) -> str:
    """Run ``script`` in Blender and return its output; RunError with Blender's own reason."""
    argv = blender_argv(blender, script, args)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        raise RunError(f"Blender did not finish {script.name} in {timeout:.0f} s") from err
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).splitlines()
        errors = [line for line in lines if _ERROR_LINE.search(line)]
        reason = (errors or lines or [f"exit code {done.returncode}"])[-1].strip()
        raise RunError(f"Blender failed running {script.name}: {reason}")
    return done.stdout
