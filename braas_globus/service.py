"""The service layer: submit, wait, refresh, list, info, logs, cancel, download, resume.

The CLI and the add-on are thin front ends over these functions; the pipeline
steps (spec -> plan -> pack -> stage -> dispatch -> track -> collect) meet here.
Everything a submit checks (the spec, the scene, missing assets, Blender) is
checked before a job record or folder exists, so bad input leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from . import collect, merge
from .blender import find_blender, run_blender_script
from .blender_scripts import MAKE_DEMO_SCENE
from .catalog import load_catalog
from .dispatch import Backend, Unanswered, backend_for, policy
from .endpoint_config import user_config_for
from .errors import RunError, StagingError, UsageError
from .pack import (
    MissingAssetsError,
    PackPlan,
    StageReport,
    build_manifest,
    manifest_from_json,
    manifest_to_json,
)
from .plan import assign_presets, plan_for_job
from .presets import ClusterPreset, Preset, get_preset
from .probe import probe
from .progress import BYTES, FRAMES
from .project import ProjectRules, find_project_root, within
from .scene_info import SceneInfo, read_scene_info
from .settings import Settings, load_settings
from .sizing import Sizing, read_sizing, write_sizing
from .spec import JobSpec
from .stage import LocalStager
from .states import JobState, TaskState
from .store import JobIdTaken, JobRecord, Store
from .worker import job_layout
from .worker.frames import FrameSpecError, format_frames, parse_frames
from .worker.preflight import RENDER_ENGINE, file_is_newer, version_text


class Reporter(Protocol):
    """What a long call says as it goes: a step, and how far along it is (``unit``:
    progress.FRAMES or progress.BYTES)."""

    def step(self, text: str) -> None: ...
    def progress(self, done: int, total: int, unit: str = FRAMES) -> None: ...


class QuietReporter:
    def step(self, text: str) -> None:
        pass

    def progress(self, done: int, total: int, unit: str = FRAMES) -> None:
        pass


def new_job_id(project: str, taken: Callable[[str], bool]) -> str:
    """The original's job name, ``YYYY-MM-DD-HHMMSSxx-<project>``, made unique."""
    now = datetime.now()
    hundredths = now.microsecond // 10000
    while True:
        job_id = f"{now:%Y-%m-%d-%H%M%S}{hundredths:02d}-{project}"
        if not taken(job_id):
            return job_id
        hundredths = (hundredths + 1) % 100
        if hundredths == 0:
            now = datetime.fromtimestamp(now.timestamp() + 1)


def resolve_frames(spec: JobSpec, scene: SceneInfo) -> list[int]:
    """The job's frames: --frames (every --frame-step-th of them), the current frame for
    --image, else the scene's range with its own step or --frame-step."""
    if spec.frames:
        return parse_frames(spec.frames)[::spec.frame_step or 1]
    if spec.image:
        return [scene.frame_current]
    start, end = scene.frame_start, scene.frame_end
    step = spec.frame_step or max(scene.frame_step, 1)
    if end < start:
        raise UsageError(f"the scene's frame range {start}-{end} is empty; give --frames")
    if start < 0:
        raise UsageError(f"the scene's own frame range {start}-{end} starts before frame 0, "
                         "which braas-globus does not render; give --frames")
    try:  # the same rules as --frames: up to Blender's last frame
        return parse_frames(f"{start}-{end}:{step}")
    except FrameSpecError as err:
        raise UsageError(f"the scene's own frame range {start}-{end} cannot be rendered "
                         f"({err}); give --frames") from None


def check_blenders(spec: JobSpec, report: StageReport, presets: list[Preset]) -> None:
    """The checks a worker makes before rendering, made at submit where the Blender that
    will render is known: this machine's (local), or the version a cluster preset records."""
    problems = report.problems_with(spec.denoise)
    if "local" in spec.presets and problems:  # this machine's Blender staged it
        raise UsageError(f"{spec.scene.name}: {problems[0]}")
    renderers = [("this machine renders", report.blender_version)] * ("local" in spec.presets)
    renderers += [(f"preset {p.name} renders", _version_tuple(p.blender_version))
                  for p in presets if isinstance(p, ClusterPreset) and p.blender_version]
    for who, version in renderers:
        if file_is_newer(report.file_version, version) and not spec.allow_older_blender:
            raise UsageError(f"{spec.scene.name} was saved by Blender "
                             f"{version_text(report.file_version)}, and {who} with Blender "
                             f"{version_text(version)}, which is older: render it with a "
                             "newer Blender, or submit with --allow-older-blender")


#: The first Blender whose parts merge into the still rendered whole (sample subsets of the
#: total: Cycles' use_sample_subset). Blender 4.2's sample_offset alone, tried here, gave a
#: merged still 0.078 off the whole render.
SPLIT_BLENDER = (5, 0)


def check_split_presets(presets: list[Preset]) -> None:
    """A centre renders a split still's parts with sample subsets: a Blender that has none
    would fail every part there (this machine's Blender, which merges, is checked with the
    staged scene)."""
    for preset in presets:
        version = isinstance(preset, ClusterPreset) and preset.blender_version
        if version and _version_tuple(version) < SPLIT_BLENDER:
            raise UsageError(f"--split needs Blender {version_text(SPLIT_BLENDER)} or newer "
                             f"where the parts render: preset {preset.name} renders with "
                             f"Blender {version}")


def check_split(spec: JobSpec, report: StageReport) -> list[str]:
    """A still split by samples, judged against the staged scene's own samples and
    denoising (where the job does not set them); what the submit says of it."""
    if not spec.split:
        return []
    if report.blender_version < SPLIT_BLENDER:
        raise UsageError(f"--split needs Blender {version_text(SPLIT_BLENDER)} or newer, whose "
                         "Cycles renders a subset of a still's samples; this machine (which "
                         "merges the parts) has Blender "
                         f"{version_text(report.blender_version)}")
    scene = report.render or {}
    samples = spec.samples or int(scene.get("samples", 0))
    if spec.split > samples:
        raise UsageError(f"--split {spec.split}: {spec.scene.name} renders {samples} samples, "
                         "fewer than the parts: each part renders at least one sample")
    each = job_layout.part_samples(samples, spec.split)
    notes = [f"--split {spec.split}: {spec.split} parts of {each} samples each, "
             "adaptive sampling off"]
    denoises = spec.denoise if spec.denoise is not None else bool(scene.get("denoise"))
    if denoises:
        # The merge denoises here, wherever the parts render: this Blender must be able to.
        lacks = [p for p in report.problems_with(True) if p not in report.problems_with(False)]
        if lacks:
            raise UsageError(f"--split: the merge on this machine denoises the still, and "
                             f"{lacks[0]}")
        notes.append(f"--split {spec.split}: denoised once after the merge (the parts "
                     "are not)")
    if each * spec.split > samples:
        notes.append(f"--split {spec.split}: {each * spec.split} samples in all, not "
                     f"{samples} (every part renders the same number)")
    return notes


def check_render_names(spec: JobSpec, scene: SceneInfo) -> None:
    """A --camera and --view-layer the scene has (the worker checks again in Blender)."""
    # A camera may come from a linked library, which only Blender reads: check_staged_camera.
    if spec.camera is not None and spec.camera not in scene.cameras \
            and not scene.links_libraries:
        raise UsageError(no_such_camera(spec, scene.cameras))
    unknown = [name for name in spec.view_layers if name not in scene.view_layers]
    if unknown:
        raise UsageError(f"--view-layer {unknown[0]!r}: scene {scene.name!r} of "
                         f"{spec.scene.name} has no such view layer (its view layers: "
                         f"{quoted(scene.view_layers)})")


def quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def no_such_camera(spec: JobSpec, cameras: Sequence[str]) -> str:
    return (f"--camera {spec.camera!r}: {spec.scene.name} has no such camera (its cameras: "
            f"{quoted(cameras)})")


def check_staged_camera(spec: JobSpec, report: StageReport) -> None:
    """A --camera among the cameras Blender found in the staged scene, linked ones too."""
    if spec.camera is not None and report.cameras is not None \
            and spec.camera not in report.cameras:
        raise UsageError(no_such_camera(spec, report.cameras))


def check_device(preset: ClusterPreset, device: str | None) -> None:
    """A Cycles device the preset's partition has: CUDA on AMD GPUs would fail every task."""
    cluster = load_catalog().get(preset.cluster)
    usable = cluster.cycles_devices_on(preset.partition)
    if device is not None and device not in usable:
        raise UsageError(f"--device {device}: partition {preset.partition} of {cluster.title} "
                         f"(preset {preset.name}) renders with {' or '.join(usable)}")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass
class Service:
    settings: Settings
    store: Store

    @classmethod
    def open(cls, settings: Settings | None = None) -> "Service":
        settings = settings or load_settings()
        return cls(settings, Store(settings.store_path))

    def backend(self, preset: str) -> Backend:
        return backend_for(preset, self.store, self.settings)

    def backends(self, job: JobRecord) -> list[Backend]:
        """One backend per preset the job fans out to."""
        return [self.backend(name) for name in job.preset.split(",")]

    def job(self, job_id: str) -> JobRecord:
        return self.store.job(self.store.resolve_job_id(job_id))

    # --- submit -----------------------------------------------------------------------
    def preflight(self, spec: JobSpec) -> tuple[list[Preset], list[int]]:
        """Every check a submit can make before it writes anything: the presets and the
        centres' own schemas for what the job sends them, the scene's engine and frames.
        (Blender's checks of the staged scene follow, in private staging.)"""
        presets = [get_preset(name, self.settings.home) for name in spec.presets]
        for preset in presets:
            if isinstance(preset, ClusterPreset):
                user_config_for(preset, spec.model_dump(mode="json"))
                check_device(preset, spec.device)
                preset.worker_path()  # the nodes' view of the working directory is known
        if spec.split:
            check_split_presets(presets)
        scene = read_scene_info(spec.scene)
        if scene.engine != RENDER_ENGINE:
            raise UsageError(f"{spec.scene.name} renders with {scene.engine}; braas-globus "
                             "renders Cycles scenes: set Render Engine to Cycles and save")
        check_render_names(spec, scene)
        return presets, resolve_frames(spec, scene)

    def submit(self, spec: JobSpec, reporter: Reporter = QuietReporter()) -> JobRecord:
        presets, frames = self.preflight(spec)
        if spec.split:
            # The still's frame is recorded with the job; its units are the parts 1..N.
            parts = spec.split
            spec = spec.model_copy(update={"frames": str(frames[0])})
            frames = list(range(1, parts + 1))
        sizing = self.measure(spec, frames, reporter)
        blender = find_blender(self.settings)
        with self._traced(spec, blender, reporter) as plan:
            assert plan.report is not None  # set by strategise()
            if spec.split and spec.samples is None:  # the samples the parts divide, recorded
                spec = spec.model_copy(update={"samples": int((plan.report.render or {})
                                                              ["samples"])})
            job_id = self.claim_job_id(spec.project, preset=spec.preset,
                                       backend=",".join(sorted({p.backend for p in presets})),
                                       spec=spec.model_dump(mode="json"),
                                       frames=format_frames(frames), frame_count=len(frames))
            folder = self.settings.jobs_dir / job_id
            try:
                for sub in job_layout.SUBFOLDERS:
                    (folder / sub).mkdir(parents=True, exist_ok=True)
                (folder / job_layout.SPEC).write_text(
                    json.dumps(spec.model_dump(mode="json"), indent=1))
                # The presets as they were: where and how (image or host) the job renders.
                (folder / job_layout.PRESETS).write_text(
                    json.dumps({p.name: p.model_dump(mode="json") for p in presets}, indent=1))
                if sizing is not None:
                    write_sizing(folder, sizing)
                self._configure(self.store.job(job_id), plan, frames, blender, reporter,
                                sizing)
            except StagingError:
                raise  # the scene is packed and recorded: `resume` sends it again
            except Exception:
                # A failure (not a kill) while configuring: take the job back out whole.
                self.store.delete_job(job_id)
                shutil.rmtree(folder, ignore_errors=True)
                raise
        job = self.store.job(job_id)
        for backend in self.backends(job):
            backend.start(job)
        return self.store.job(job_id)

    def measure(self, spec: JobSpec, frames: list[int], reporter: Reporter) -> Sizing | None:
        """What --task-minutes sizes the tasks from: a probe job's frames (probe.probe,
        on the first preset), rendered now; with --scout, the scout task's, later
        (sizing.resize_after_scout). None for a job without --task-minutes."""
        minutes = spec.task_minutes
        if not minutes:
            return None
        if spec.scout:
            return Sizing(minutes, None, note="measured by the scout task once it has "
                                              "rendered; until then split by --max-jobs")
        if len(frames) <= 2:
            return Sizing(minutes, None, note="two frames or fewer: nothing to size")
        reporter.step("probe frames: timing a frame for --task-minutes")
        try:
            measured = probe(self, spec, frames, reporter)
        except RunError as err:  # the job itself then says what is wrong with the scene
            return Sizing(minutes, None, note=f"no measurement ({err}): split by --max-jobs")
        return Sizing.measured(minutes, spec.walltime_minutes, measured.frame_seconds,
                               measured.start_seconds,
                               f"probe job {measured.job.id} on {spec.presets[0]}")

    def claim_job_id(self, project: str, **record: Any) -> str:
        """A new job's id, claimed by inserting its record: the store's primary key is
        what keeps two submits at the same moment (any process) from sharing an id."""
        for _ in range(1000):
            job_id = new_job_id(project, self._job_exists)
            try:
                self.store.create_job(job_id=job_id, project=project,
                                      folder=self.settings.jobs_dir / job_id, **record)
                return job_id
            except JobIdTaken:
                continue  # another submit took it between the look and the insert
        raise RunError("could not find a free job id after 1000 tries")

    def _job_exists(self, job_id: str) -> bool:
        return self.store.db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() \
            is not None or (self.settings.jobs_dir / job_id).exists()

    def _configure(self, job: JobRecord, plan: PackPlan, frames: list[int],
                   blender: dict[str, Any],
                   reporter: Reporter, sizing: Sizing | None = None) -> None:
        """pack -> stage -> plan: the job leaves CONFIGURING when its tasks are recorded."""
        spec = JobSpec(**job.spec)
        entry = plan.execute()
        manifest = build_manifest(plan.target)
        reporter.step("staging")
        LocalStager(self.settings.objects_dir).keep(plan.target, manifest)
        (job.folder / job_layout.MANIFEST).write_text(
            json.dumps(manifest_to_json(manifest), indent=1))
        slots = {}
        for name in spec.presets:  # every centre of the job gets the scene
            backend = self.backend(name)
            backend.stage(job, manifest, reporter)
            slots[name] = backend.task_slots()
        tasks = plan_for_job(frames, sum(slots.values()), max_jobs=spec.max_jobs,
                             scout=spec.scout, walltime_minutes=spec.walltime_minutes,
                             task_minutes=spec.task_minutes,
                             seconds_per_frame=sizing.seconds_per_frame if sizing else None,
                             start_seconds=sizing.start_seconds if sizing else 0.0)
        self.store.add_tasks(job.id, tasks, max_attempts=spec.retries + 1, blender=blender,
                             entry=(Path(job_layout.IN) / entry).as_posix(),
                             presets=assign_presets(tasks, slots))

    # --- follow -----------------------------------------------------------------------
    def refresh(self, job_id: str) -> tuple[JobRecord, str | None]:
        job = self.job(job_id)
        warnings = [w for backend in self.backends(job) if (w := backend.refresh(job))]
        if (warning := self._merge_after_download(self.store.job(job.id))) is not None:
            warnings.append(warning)
        joined = "; ".join(warnings) or None
        if joined and all(isinstance(w, Unanswered) for w in warnings):
            joined = Unanswered(joined)
        return self.store.job(job.id), joined

    def _merge_after_download(self, job: JobRecord) -> str | None:
        """A split still with parts from a centre, all rendered: bring them here and merge
        them (merge.merge_once). A job of this machine's alone is its runner's to merge.
        A warning when the parts could not be brought back (the next refresh tries again)."""
        if job.backend == "local" or not job.split \
                or not merge.ready(job, self.store.tasks(job.id)):
            return None
        try:
            for backend in self.backends(job):
                backend.collect(job)
        except RunError as err:
            return f"the parts of the still are not all here yet: {err}"

        def stage_scene() -> None:  # the merge loads it: hard links to this machine's copy
            manifest = json.loads((job.folder / job_layout.MANIFEST).read_text())
            LocalStager(self.settings.objects_dir).link(manifest_from_json(manifest),
                                                        job.folder)

        assert job.blender is not None  # merge.ready
        merge.merge_once(job, job.blender, stage_scene)
        return None

    def wait(self, job_id: str, reporter: Reporter = QuietReporter()) -> JobRecord:
        """Block until the job ends, reporting frames done; RunError if it stalls."""
        # As often as the slowest of the job's backends allows (Globus limits request rates).
        poll_seconds = max(b.poll_seconds for b in self.backends(self.job(job_id)))
        while True:
            job, warning = self.refresh(job_id)
            reporter.progress(job.frames_done, job.frame_count)
            if job.state.is_final:
                return job
            if isinstance(warning, Unanswered):  # a service outage: keep asking
                reporter.step(warning)
            elif warning:
                raise RunError(warning)
            time.sleep(poll_seconds)

    def list_jobs(self) -> list[JobRecord]:
        return [self.refresh(job.id)[0] if not job.state.is_final else job
                for job in self.store.jobs()]

    def info(self, job_id: str) -> dict[str, Any]:
        job, warning = self.refresh(job_id)
        return collect.job_info(self.store, job, warning, self.settings.local_workers)

    def logs(self, job_id: str, task: int | None = None) -> dict[str, str]:
        job = self.job(job_id)
        for backend in self.backends(job):  # a centre's logs come back with the results
            backend.collect(job)
        logs = sorted((job.folder / job_layout.LOG).glob(job_layout.LOG_FILE_GLOB))
        merge_log = job.folder / job_layout.LOG / job_layout.MERGE_LOG  # a split still's
        logs += [merge_log] * merge_log.is_file()
        if task is not None:
            logs = [p for p in logs if p == job_layout.log_file(job.folder, task)]
            if not logs:
                raise UsageError(f"job {job.id} has no log for task {task} (yet)")
        return {p.name: p.read_text(errors="replace") for p in logs}

    # --- act --------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobRecord:
        job, _ = self.refresh(job_id)
        if job.state.is_final:
            return job
        policy.mark_canceled(self.store, job)
        for backend in self.backends(job):
            backend.cancel(job)
        return self.store.job(job.id)

    def resume(self, job_id: str, reporter: Reporter = QuietReporter()) -> JobRecord:
        """Render what is missing or failed; finish configuring a job a kill interrupted."""
        job, _ = self.refresh(job_id)
        running = [t.index for t in self.store.tasks(job.id) if t.state is TaskState.RUNNING]
        if running:  # sending them again would render their frames twice
            raise UsageError(f"job {job.id} is still rendering (task "
                             f"{', '.join(map(str, running))}): resume it once it has ended, "
                             f"or `braas-globus cancel {job.id}` first")
        if job.state is JobState.CONFIGURING:
            self._reconfigure(job, reporter)
        else:
            missing = collect.missing_frames(job, self.store)
            reopen = [t.index for t in self.store.tasks(job.id)
                      if t.state is not TaskState.FINISHED
                      or any(f in missing for f in parse_frames(t.frames))]
            if not reopen and not (job.split and merge.needed(job)):
                return job
            if reopen:
                self.store.reopen(job.id, reopen)
            if job.split:
                merge.forget_failure(job)  # the runner merges again once the parts are in
        job = self.store.job(job.id)
        for backend in self.backends(job):
            backend.start(job)
        return self.store.job(job.id)

    def _reconfigure(self, job: JobRecord, reporter: Reporter) -> None:
        spec = JobSpec(**job.spec)  # re-validates: the scene must still exist
        blender = find_blender(self.settings)
        with self._traced(spec, blender, reporter) as plan:
            for sub in job_layout.SUBFOLDERS:
                (job.folder / sub).mkdir(parents=True, exist_ok=True)
            recorded = read_sizing(job.folder)  # as measured at submit
            self._configure(job, plan, parse_frames(job.frames), blender, reporter,
                            Sizing(**recorded) if recorded else None)

    def project_rules(self, spec: JobSpec) -> ProjectRules:
        """What a submit of ``spec`` may stage: the root it names, else the configured
        root where it holds the scene, else the nearest marked folder."""
        given = spec.project_root
        default = self.settings.project_root
        if given is None and default is not None and within(spec.scene, default):
            given = default
        return ProjectRules(spec.scene, find_project_root(spec.scene, given),
                            self.settings.home, spec.allow_outside)

    @contextmanager
    def _traced(self, spec: JobSpec, blender: dict[str, Any], reporter: Reporter
                ) -> Iterator[PackPlan]:
        """A traced and packed stage in a fresh staging folder, checked by Blender;
        refused if assets are missing or this machine's Blender cannot render it."""
        staging = self.settings.home / "staging" / f"{time.time_ns()}"
        plan = PackPlan(spec.scene, spec.mode, staging,
                        cache_dir=self.settings.home / "cache" / "stage",
                        rules=self.project_rules(spec))
        try:
            reporter.step(f"tracing and staging assets ({spec.mode.value} mode)")
            missing = plan.strategise(
                blender, on_bytes=lambda done, total: reporter.progress(done, total, BYTES))
            if missing and not spec.allow_missing:
                raise MissingAssetsError(spec.scene, missing)
            assert plan.report is not None  # set by strategise()
            check_blenders(spec, plan.report,
                           [get_preset(name, self.settings.home) for name in spec.presets])
            check_staged_camera(spec, plan.report)
            for note in check_split(spec, plan.report):
                reporter.step(note)
            yield plan
        finally:
            plan.close()
            shutil.rmtree(staging, ignore_errors=True)

    def download(self, job_id: str, to: Path | None = None,
                 reporter: Reporter = QuietReporter()) -> dict[str, Any]:
        job, _ = self.refresh(job_id)
        for backend in self.backends(job):
            backend.collect(job, reporter)
        destination = (to / job.id) if to else job.folder
        if destination != job.folder:
            for sub in job_layout.RESULT_FOLDERS:
                shutil.copytree(job.folder / sub, destination / sub, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(job_layout.PARTIAL_PREFIX + "*",
                                                              Path(job_layout.RUNNER_LOCK).name))
        return collect.verify_download(job, destination)

    # --- demo -------------------------------------------------------------------------
    def demo_scene(self, rebuild: bool = False) -> Path:
        scene = self.settings.home / "demo" / "demo.blend"
        if rebuild or not scene.exists():
            run_blender_script(find_blender(self.settings), MAKE_DEMO_SCENE,
                               ["--out", str(scene)])
        return scene
