"""Scripts that the client runs inside Blender (``blender -P`` or Python with ``bpy``).

Worker-side scripts live in ``braas_globus.worker``; these run on the user's machine.
"""
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
MAKE_DEMO_SCENE = SCRIPTS_DIR / "make_demo_scene.py"
STAGE_SCENE = SCRIPTS_DIR / "stage_scene.py"
MAKE_VIDEO = SCRIPTS_DIR / "make_video.py"
MERGE_PARTS = SCRIPTS_DIR / "merge_parts.py"
