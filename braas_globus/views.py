"""How a job, a job's info and a preset are shown: written once, for the CLI and the add-on.

Plain functions over the service's records and its ``info`` dict; no imports beyond the
standard library, so the add-on can use them inside Blender without the CLI's packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .presets import Preset
    from .store import JobRecord


def job_summary(job: JobRecord) -> dict[str, Any]:
    """A job in a list: `--json` of list, submit, cancel and resume; a row of the add-on's
    jobs list (which adds where it renders)."""
    return {"id": job.id, "project": job.project, "preset": job.preset, "state": job.state.value,
            "frames": job.frames, "frames_total": job.frame_count, "frames_done": job.frames_done,
            "frames_failed": job.frames_failed, "folder": str(job.folder),
            "seconds_left": _seconds_left(job)}


def _seconds_left(job: JobRecord) -> float | None:
    """A running job's time left at its speed so far; None before it is known, and once
    it has ended (progress.job_pace, as `info` gives it)."""
    from .progress import job_pace

    left: float | None = job_pace(job, job.frames_done)["seconds_left"]
    return left


def info_lines(details: dict[str, Any]) -> list[str]:
    """`braas-globus info`: a job's service ``info`` in aligned lines, everything in it."""
    unit = details.get("unit", "frames")  # a still split by samples renders parts
    one = unit[:-1]
    lines = [f"job        {details['id']}  ({details['state']})",
             f"scene      {details['scene']}",
             f"preset     {details['preset']}  device {details['resources']['device']}  "
             f"walltime {details['resources']['walltime_minutes']} min  "
             f"tasks {details['resources']['tasks']}"
             + task_minutes_text(details["resources"]),
             f"render     {render_text(details.get('render') or {})}",
             f"submitted  {details['submitted']}   started {details['started'] or '-'}"
             f"   ended {details['ended'] or '-'}",
             f"folder     {details['folder']}",
             f"{unit:<10} {details['frames']['done']}/{details['frames']['total']} done, "
             f"{details['frames']['failed']} failed" + pace_text(details["progress"], unit)]
    lines += split_lines(details.get("split"))
    lines += [f"  {state:<10} {spec}" for state, spec in details["frames"]["by_state"].items()]
    lines.append(f"cost       {cost_text(details['cost'])}")
    lines += [f"  {one} {f['frame']} failed: {f['reason']}" for f in details["failed_frames"]]
    lines += [f"  rendered without (missing): {name}" for name in details["missing_files"]]
    lines += [f"task {t['index']}{' (scout)' if t['scout'] else ''}  {t['state']}  {unit} "
              f"{t['frames']}  tries {t['attempts']}/{t['max_attempts']}"
              + (f"  {t['reason']}" if t["reason"] else "") for t in details["tasks"]]
    if details["last_frame"]:
        lines.append(f"{'still' if details.get('split') else 'last frame'} "
                     f"{details['last_frame']['frame']}: "
                     f"{details['last_frame']['file']}")
    lines.append("parameters " + ", ".join(f"{k}={v}" for k, v in
                                            details["parameters"].items()))
    return lines


def split_lines(split: dict[str, Any] | None) -> list[str]:
    """A still split by samples: its parts and its merge (none for a job of frames)."""
    if not split:
        return []
    merge = split.get("merge") or {}
    state = merge.get("state", "waiting for the parts")
    said = merge.get("reason") or (f"{merge.get('file')} in {merge.get('seconds')} s"
                                   if state == "FINISHED" else "")
    denoised = "" if state != "FINISHED" or "denoised" not in merge else \
        ", denoised once after the merge" if merge["denoised"] else ", not denoised"
    return [f"split      frame {split['frame']} in {split['parts']} parts of "
            f"{split['samples_each']} samples ({split['samples_total']} in all), adaptive "
            f"sampling off{denoised}",
            f"merge      {state}" + (f": {said}" if said else "")]


def render_text(render: dict[str, Any]) -> str:
    """The job's render settings over the scene's, as `info` shows them:
    ``samples 4, 64x48 at 50%, camera 'Side', view layers 'A', 'B', OPEN_EXR, no denoising,
    every 2nd frame``; ``the scene's own settings`` where it sets none."""
    parts = []
    if "samples" in render:
        parts.append(f"samples {render['samples']}")
    size = render.get("resolution", "")
    if "resolution_percent" in render:
        size = f"{size} at {render['resolution_percent']}%".strip()
    if size:
        parts.append(size)
    if "camera" in render:
        parts.append(f"camera {render['camera']!r}")
    if render.get("view_layers"):
        layers = ", ".join(repr(name) for name in render["view_layers"])
        parts.append(f"view layer{'s' if len(render['view_layers']) > 1 else ''} {layers}")
    if "file_format" in render:
        parts.append(str(render["file_format"]))
    if "denoise" in render:
        parts.append("denoising" if render["denoise"] else "no denoising")
    if "frame_step" in render:
        parts.append(f"every {render['frame_step']}{_ordinal(render['frame_step'])} frame")
    return ", ".join(parts) or "the scene's own settings"


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def task_minutes_text(resources: dict[str, Any]) -> str:
    """``  (about 5 min each, 2.4 s a frame measured by the scout task)`` for a job sized by
    time; "" for one split by --max-jobs."""
    minutes = resources.get("task_minutes")
    if not minutes:
        return ""
    sizing = resources.get("sizing") or {}
    if sizing.get("seconds_per_frame") is None:
        return f"  (--task-minutes {minutes}: {sizing.get('note') or 'not measured yet'})"
    return (f"  (about {minutes} min each: {sizing['seconds_per_frame']:.2f} s a frame "
            f"measured by {sizing['measured_by']}, {sizing['frames_per_task']} frames a task)")


def cost_text(cost: dict[str, Any]) -> str:
    """``0.42 core-hours, 0.10 GPU-hours (12 min of Blender's render time)``."""
    from .progress import duration

    used = f"{cost['core_hours']:.2f} core-hours"
    if cost["gpu_hours"]:
        used += f", {cost['gpu_hours']:.2f} GPU-hours"
    return f"{used} ({duration(cost['render_seconds'])} of Blender's render time)"


def pace_text(progress: dict[str, Any], unit: str = "frames") -> str:
    """``, in 4 min, 3.0 frames/min, about 2 min left`` ("" before the job started); a
    still split by samples goes in ``parts``."""
    from .progress import duration

    if progress["elapsed_seconds"] is None:
        return ""
    text = f", in {duration(progress['elapsed_seconds'])}"
    if progress["frames_per_minute"] is not None:
        text += f", {progress['frames_per_minute']:.1f} {unit}/min"
    if progress["seconds_left"] is not None:
        text += f", about {duration(progress['seconds_left'])} left"
    return text


def info_panel_lines(info: dict[str, Any]) -> list[str]:
    """The same info, shorter, for the add-on's narrow panel: the first 5 failed frames and
    10 tasks, the warning last (the CLI prints that on stderr)."""
    resources, frames = info["resources"], info["frames"]
    unit = info.get("unit", "frames")  # a still split by samples renders parts
    lines = [f"{info['id']}: {info['state']}",
             f"submitted {info['submitted']}, started {info['started'] or '-'}, "
             f"ended {info['ended'] or '-'}",
             f"scene {info['scene']}",
             f"preset {info['preset']}, device {resources['device']}, walltime "
             f"{resources['walltime_minutes']} min, {resources['tasks']} task(s)"
             + task_minutes_text(resources),
             f"render: {render_text(info.get('render') or {})}",
             f"{unit} {frames['done']}/{frames['total']} done, {frames['failed']} failed"
             + pace_text(info["progress"], unit)]
    lines += [f"  {state}: {spec}" for state, spec in frames["by_state"].items()]
    lines += [f"frame {f['frame']} failed: {f['reason']}" for f in info["failed_frames"][:5]]
    lines += [f"task {t['index']}: {t['state']}, frames {t['frames']}, tries "
              f"{t['attempts']}/{t['max_attempts']}" + (f", {t['reason']}" if t["reason"] else "")
              for t in info["tasks"][:10]]
    lines.append(f"folder {info['folder']}")
    if info.get("warning"):
        lines.append(info["warning"])
    return lines


def preset_row(preset: Preset) -> dict[str, Any]:
    """A preset in a list: `presets list --json`; the add-on fills the cluster fields of
    `local` with ""."""
    from .presets import ClusterPreset  # loaded already: ``preset`` is one of its models

    return {"name": preset.name, "backend": preset.backend, "description": preset.description,
            "device": preset.default_device,
            **({"cluster": preset.cluster, "partition": preset.partition,
                "account": preset.account} if isinstance(preset, ClusterPreset) else {})}
