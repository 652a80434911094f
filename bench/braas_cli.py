"""What the bench scripts share: the CLI as a user runs it, and the demo scene's maker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAKE_SCENE = REPO / "braas_globus" / "blender_scripts" / "make_demo_scene.py"


def cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "braas_globus.cli", *args, "--json"],
                          check=True, capture_output=True, text=True, env=env)
    try:  # one document, or JSON lines of progress (`--wait`) ending in the result
        return json.loads(done.stdout)
    except ValueError:
        return json.loads(done.stdout.splitlines()[-1])
