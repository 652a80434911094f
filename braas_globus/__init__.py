"""braas-globus: render Blender scenes on HPC centres through Globus, or on this machine."""

__version__ = "0.1.0"
