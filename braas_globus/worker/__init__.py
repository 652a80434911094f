"""What runs on a worker: stdlib only, so a node needs nothing of braas-globus installed.

``render_task.py`` is the entry point (run by path or with ``python -m``);
``blender_render.py`` is the script Blender runs for one task.
"""
