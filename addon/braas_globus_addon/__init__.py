"""BRaaS Globus: render Cycles scenes on HPC centres through Globus, or on this machine.

A thin front end over the braas-globus service (bundled as a wheel): properties, panels and
operators here; every service call on one background thread (worker.py), its results
applied on Blender's timers (results.py). No pipeline logic lives in the add-on.
"""

from __future__ import annotations

from . import operators, panels, preferences, properties, results

# Registered in this order, unregistered in the reverse one.
_modules = (properties, preferences, operators, panels, results)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
