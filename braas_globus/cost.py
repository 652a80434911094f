"""What a job cost: core-hours and GPU-hours, from each frame's measured render time and
what each of its tasks holds where it runs.

A task holds, on a centre's CPU partition, a whole node (one render worker per node: its
cores); on a GPU partition one GPU and its share of the node's cores (one worker per GPU);
on this machine its share of the cores (``local_workers`` tasks at once). A frame's seconds
are Blender's own for that frame (the worker measures them), so the figures leave out the
minutes a task spends starting Blender and loading the scene, and the batch job's queue.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from .errors import BraasError
from .store import JobRecord, Store
from .worker import job_layout


@dataclass(frozen=True)
class Holding:
    """What one task of a preset holds while it renders."""

    cores: float
    gpus: int = 0


def recorded_presets(job: JobRecord) -> dict[str, dict[str, Any]]:
    """The job's presets as recorded at submit (job/presets.json); {} for a job without."""
    try:
        presets = json.loads((job.folder / job_layout.PRESETS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {name: fields for name, fields in presets.items() if isinstance(fields, dict)} \
        if isinstance(presets, dict) else {}


def holding(fields: dict[str, Any], local_workers: int) -> Holding | None:
    """What a task of this recorded preset holds; None where the catalog no longer knows
    its partition."""
    from .catalog import load_catalog

    if "cluster" not in fields:  # this machine
        return Holding(cores=max(1, (os.cpu_count() or 1) // max(local_workers, 1)))
    try:
        partition = load_catalog().get(str(fields["cluster"])).get(str(fields["partition"]))
    except (BraasError, KeyError):
        return None
    if partition.devices_per_node:
        return Holding(cores=partition.cores_per_node / partition.devices_per_node, gpus=1)
    return Holding(cores=partition.cores_per_node)


def job_cost(store: Store, job: JobRecord, local_workers: int = 1) -> dict[str, Any]:
    """Core-hours and GPU-hours the job's frames took, in all and per task."""
    presets = recorded_presets(job)
    holdings = {name: holding(fields, local_workers) for name, fields in presets.items()}
    tasks = {t.index: t for t in store.tasks(job.id)}
    seconds: dict[int, float] = {}
    for row in store.frames(job.id):
        task = row["task_idx"]
        if row["seconds"] is not None and task in tasks:
            seconds[task] = seconds.get(task, 0.0) + float(row["seconds"])
    by_task: dict[int, dict[str, float]] = {}
    unknown = set()
    for index, spent in sorted(seconds.items()):
        held = holdings.get(tasks[index].preset)
        if held is None:
            unknown.add(tasks[index].preset)
            continue
        by_task[index] = {"render_seconds": round(spent, 3),
                          "core_hours": round(spent * held.cores / 3600, 4),
                          "gpu_hours": round(spent * held.gpus / 3600, 4)}
    return {"core_hours": round(sum(t["core_hours"] for t in by_task.values()), 4),
            "gpu_hours": round(sum(t["gpu_hours"] for t in by_task.values()), 4),
            "render_seconds": round(sum(seconds.values()), 3),
            "by_task": by_task,
            "unknown_presets": sorted(unknown)}
