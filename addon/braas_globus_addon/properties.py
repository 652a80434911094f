"""The add-on's properties.

- ``Scene.braas_globus`` (:class:`JobForm`): the New Job form. Saved with the scene: it
  holds no secret, and the next submit of the same scene starts from it.
- ``WindowManager.braas_globus`` (:class:`Status`): the status line, the jobs and presets
  tables, the signed-in identity. WindowManager properties are never saved in the .blend.

The rules for the form's values live in ``braas_globus.spec``: limits are read from
``JobSpec``, and :func:`form_error` asks ``build_spec`` itself, so the panel shows the very
message the CLI prints.
"""

from pathlib import Path

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from braas_globus.errors import UsageError
from braas_globus.spec import (
    MAX_RESOLUTION,
    MAX_RESOLUTION_PERCENT,
    MAX_SAMPLES,
    PROJECT_MAX,
    JobSpec,
    Mode,
    OutputFormat,
    build_spec,
    default_project,
)
from braas_globus.states import JobState


def _bound(field: str, name: str) -> int:
    return next(getattr(m, name) for m in JobSpec.model_fields[field].metadata
                if hasattr(m, name))


def _default(field: str):
    return JobSpec.model_fields[field].default


# --- the New Job form (Scene) -----------------------------------------------------------------


class JobForm(bpy.types.PropertyGroup):
    preset: StringProperty(name="Preset", default=_default("preset"),
                           description="Where the job renders: 'local' or a cluster preset")
    project: StringProperty(
        name="Project", default="",
        description=f"Job project name, up to {PROJECT_MAX} characters (empty: the file name)")
    email: StringProperty(name="Email", default="",
                          description="Where the centre's scheduler mails job notices "
                                      "(optional)")
    render_type: EnumProperty(
        name="Render", default="ANIMATION",
        items=[("IMAGE", "Image", "Render the scene's current frame"),
               ("ANIMATION", "Animation", "Render a range of frames")])
    frames_from: EnumProperty(
        name="Frames", default="SCENE",
        items=[("SCENE", "Scene Range", "The scene's own start, end and step"),
               ("RANGE", "Start/End", "Frame Start to Frame End"),
               ("SPEC", "Frame Spec", "Frames, ranges and steps, e.g. 1-100:10 or "
                                      "1-10,20,30-40:5 (the original's job arrays)")])
    frame_start: IntProperty(name="Frame Start", default=1)
    frame_end: IntProperty(name="Frame End", default=250)
    frames: StringProperty(name="Frame Spec", default="",
                           description="e.g. 1-250, 1-100:10 (every 10th), 1,5,9")
    mode: EnumProperty(
        name="File", default=_default("mode").name,
        items=[(Mode.PACKED.name, "Packed .blend", "One .blend with every packable asset "
                                                   "inside"),
               (Mode.DIRECTORY.name, "Sources in Directory", "The .blend and its files, "
                                                             "folder structure kept")])
    walltime: IntProperty(
        name="Walltime (min)", default=_default("walltime_minutes"),
        min=_bound("walltime_minutes", "ge"), max=_bound("walltime_minutes", "le"),
        description="How long each render task may run")
    max_jobs: IntProperty(
        name="Max Jobs", default=_default("max_jobs"),
        min=_bound("max_jobs", "ge"), max=_bound("max_jobs", "le"),
        description="At most this many render tasks run the frames")
    allow_missing: BoolProperty(
        name="Allow Missing Assets", default=False,
        description="Submit even when textures or other files the scene uses are missing")
    project_root: StringProperty(
        name="Project Folder", default="", subtype="DIR_PATH",
        description="Send only files inside this folder (empty: the nearest folder above "
                    "the .blend with .blender_project or .git, else the .blend's folder)")
    allow_outside: BoolProperty(
        name="Allow Files Outside the Project", default=False,
        description="Also send files outside the project folder (never braas-globus's own "
                    "folder, hidden or system folders)")
    allow_older_blender: BoolProperty(
        name="Allow an Older Blender", default=False,
        description="Render even where the Blender that renders is older than this one, "
                    "which saves the scene")
    # Render settings over the scene's, for this job only (the saved scene keeps its own).
    # 0, "" and SCENE: the scene's own (the CLI's option left out).
    show_render_settings: BoolProperty(
        name="Render Settings", default=False,
        description="Settings over the scene's for this job only: samples, size, camera, "
                    "view layer, format, denoising, frame step, task length, split")
    samples: IntProperty(name="Samples", default=0, min=0, max=MAX_SAMPLES,
                         description="Cycles samples per pixel (0: the scene's)")
    resolution_x: IntProperty(name="Width", default=0, min=0, max=MAX_RESOLUTION,
                              subtype="PIXEL", description="Image width (0: the scene's)")
    resolution_y: IntProperty(name="Height", default=0, min=0, max=MAX_RESOLUTION,
                              subtype="PIXEL", description="Image height (0: the scene's)")
    resolution_percent: IntProperty(
        name="Scale %", default=0, min=0, max=MAX_RESOLUTION_PERCENT,
        description="Scale the image size, e.g. 25 for a quick check (0: the scene's)")
    camera: PointerProperty(
        name="Camera", type=bpy.types.Object, poll=lambda _form, obj: obj.type == "CAMERA",
        description="Render through this camera (empty: the scene's camera)")
    view_layer: StringProperty(
        name="View Layer", default="",
        description="Render only this view layer (empty: the scene's enabled ones; the CLI "
                    "takes several)")
    file_format: EnumProperty(
        name="Format", default="SCENE",
        items=[("SCENE", "Scene's", "The scene's own output format")]
        + [(f.value, f.value.replace("_", " ").title().replace("Open Exr", "OpenEXR"),
            f"Write the frames as {f.value}") for f in OutputFormat])
    denoise: EnumProperty(
        name="Denoise", default="SCENE",
        items=[("SCENE", "Scene's", "Denoise as the scene says"),
               ("ON", "On", "Denoise every frame"), ("OFF", "Off", "Do not denoise")])
    frame_step: IntProperty(
        name="Frame Step", default=0, min=0, max=_bound("frame_step", "le"),
        description="Render every K-th frame (0: the scene's step for its range, every "
                    "frame of a frame spec)")
    task_minutes: IntProperty(
        name="Task Minutes", default=0, min=0, max=_bound("task_minutes", "le"),
        description="Size tasks to run about this many minutes each, measured by a probe "
                    "render (0: split the frames by Max Jobs)")
    split: IntProperty(
        name="Split", default=0, min=0, max=_bound("split", "le"),
        description="Split the still by samples into this many parts (2-64), rendered as "
                    "tasks on any preset and merged on this machine, denoised once after "
                    "the merge where the job denoises (0: one render)")


def render_setting_fields(form: JobForm) -> dict:
    """The form's render settings as ``build_spec`` keyword arguments (the CLI's
    cli.common.render_fields)."""
    width, height = form.resolution_x, form.resolution_y
    return {"samples": form.samples or None,
            "resolution": f"{width}x{height}" if width or height else None,
            "resolution_percent": form.resolution_percent or None,
            "camera": form.camera.name if form.camera else None,
            "view_layers": (form.view_layer,) if form.view_layer.strip() else (),
            "file_format": None if form.file_format == "SCENE" else form.file_format,
            "denoise": {"SCENE": None, "ON": True, "OFF": False}[form.denoise],
            "frame_step": form.frame_step or None if form.render_type == "ANIMATION" else None,
            "task_minutes": form.task_minutes or None if form.render_type == "ANIMATION"
            else None,
            "split": form.split or None if form.render_type == "IMAGE" else None}


def spec_fields(form: JobForm, scene: bpy.types.Scene, blend_path: str) -> dict:
    """The form as ``build_spec`` keyword arguments (what the CLI passes for its options)."""
    path = Path(blend_path)
    fields: dict = {"scene": path, "preset": form.preset,
                    "mode": Mode[form.mode], "walltime_minutes": form.walltime,
                    "max_jobs": form.max_jobs,
                    "project": form.project.strip() or default_project(path),
                    "email": form.email.strip() or None, "allow_missing": form.allow_missing,
                    "allow_older_blender": form.allow_older_blender,
                    "project_root": Path(bpy.path.abspath(form.project_root))
                    if form.project_root.strip() else None,
                    "allow_outside": form.allow_outside, **render_setting_fields(form)}
    if form.render_type == "IMAGE":
        # The frame shown now: changing frames does not mark the file as changed.
        fields["frames"] = str(scene.frame_current)
    elif form.frames_from == "RANGE":
        fields["frames"] = f"{form.frame_start}-{form.frame_end}"
    elif form.frames_from == "SPEC":
        fields["frames"] = form.frames
    return fields


UNSAVED = "save the .blend file first: braas-globus renders the saved file"


def form_error(form: JobForm, scene: bpy.types.Scene, blend_path: str) -> str | None:
    """What is wrong with the form, in build_spec's words; None when it is a valid job."""
    if not blend_path:
        return UNSAVED
    fields = spec_fields(form, scene, blend_path)
    # Cached on the values and the file's time: the panel asks on every redraw.
    key = (tuple(sorted((name, repr(value)) for name, value in fields.items())),
           _stamp(blend_path))
    if key not in _checked:
        if len(_checked) > 64:
            _checked.clear()
        try:
            build_spec(**fields)
            _checked[key] = None
        except UsageError as err:
            _checked[key] = str(err)
    return _checked[key]


_checked: dict[tuple, str | None] = {}


def _stamp(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return -1.0


# --- status, jobs, presets (WindowManager: never saved) -------------------------------------


class JobItem(bpy.types.PropertyGroup):
    # `name` (from PropertyGroup) holds the job id
    project: StringProperty()
    preset: StringProperty()
    cluster: StringProperty()
    state: StringProperty()
    frames_done: IntProperty()
    frames_failed: IntProperty()
    frame_count: IntProperty()
    seconds_left: FloatProperty(default=-1.0)  # -1: not known (not started, or ended)
    folder: StringProperty(subtype="DIR_PATH")
    downloaded_to: StringProperty(subtype="DIR_PATH")

    @property
    def is_final(self) -> bool:
        return JobState(self.state).is_final


class PresetItem(bpy.types.PropertyGroup):
    # `name` holds the preset name
    backend: StringProperty()
    description: StringProperty()
    device: StringProperty()
    cluster: StringProperty()
    partition: StringProperty()
    account: StringProperty()
    test_result: StringProperty()  # one line per check, from the last "test"
    test_ok: BoolProperty()


def _select_preset(self, context) -> None:
    if 0 <= self.preset_index < len(self.presets) and context.scene is not None:
        name = self.presets[self.preset_index].name
        if context.scene.braas_globus.preset != name:
            context.scene.braas_globus.preset = name


def _select_job(self, context) -> None:
    from . import results

    results.job_selected(self)


_catalog_items: dict[str, list] = {}  # Blender needs enum item strings kept alive


def _cluster_items(self, context):
    from braas_globus.catalog import load_catalog

    if "clusters" not in _catalog_items:
        _catalog_items["clusters"] = [(name, c.title, f"{c.site}: {c.scheduler}, {c.arch}")
                                      for name, c in load_catalog().clusters.items()]
    return _catalog_items["clusters"]


def _partition_items(self, context):
    from braas_globus.catalog import load_catalog

    key = f"partitions:{self.new_cluster}"
    if key not in _catalog_items:
        try:
            cluster = load_catalog().get(self.new_cluster)
        except Exception:
            return []
        _catalog_items[key] = [
            (name, name, f"{p.kind.upper()}, {p.cores_per_node} cores"
             + (f", {p.gpus_per_node}x {p.gpu_model}" if p.gpus_per_node else "")
             + (f", at most {p.max_walltime_minutes} min" if p.max_walltime_minutes else ""))
            for name, p in cluster.partitions.items()]
    return _catalog_items[key]


class Status(bpy.types.PropertyGroup):
    # the Status panel
    operation: StringProperty(name="Operation")
    step: StringProperty(name="Step")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    busy: BoolProperty()
    message: StringProperty(name="Message")
    is_error: BoolProperty()

    # the Jobs panel
    jobs: CollectionProperty(type=JobItem)
    job_index: IntProperty(name="Job", default=-1, update=_select_job)
    job_info: StringProperty()  # lines joined by newlines
    preview_file: StringProperty(subtype="FILE_PATH")
    preview_frame: IntProperty()
    home: StringProperty(subtype="DIR_PATH")  # braas-globus's data folder (BRAAS_HOME)

    # presets and Globus (Preferences)
    presets: CollectionProperty(type=PresetItem)
    preset_index: IntProperty(name="Preset", default=0, update=_select_preset)
    signed_in: BoolProperty()
    identity: StringProperty(name="Signed in as")
    login_note: StringProperty()

    # the "add a cluster preset" form
    new_name: StringProperty(name="Name", description="A short name, e.g. karolina-gpu")
    new_cluster: EnumProperty(name="Cluster", items=_cluster_items)
    new_partition: EnumProperty(name="Partition", items=_partition_items)
    new_account: StringProperty(name="Account", description="Your project / allocation")
    new_endpoint: StringProperty(name="Compute Endpoint",
                                 description="The centre's Globus Compute endpoint id")
    new_collection: StringProperty(name="Collection",
                                   description="The centre's Globus collection id")
    new_remote_dir: StringProperty(
        name="Remote Directory",
        description="Your working directory on that collection, as the collection names it "
                    "(empty: Find Working Dir looks among the cluster's scratch folders)")
    new_worker_dir: StringProperty(
        name="Worker Directory",
        description="The same folder as the centre's nodes see it, where that differs (a "
                    "collection with a base path, or a /~/ remote directory); empty: the same")
    new_local_collection: StringProperty(
        name="Your Collection", description="Your Globus Connect Personal collection id")
    new_local_dir: StringProperty(
        name="Local Directory",
        description="braas-globus's data folder as your collection sees it (empty: the same)")
    new_guest: BoolProperty(name="Guest Collection",
                            description="The centre's collection is a guest collection")
    new_runtime: EnumProperty(
        name="Runtime", default="image",
        items=[("image", "Apptainer Image", "Blender in the centre's Apptainer image"),
               ("host", "Centre's Blender", "A Blender the centre installed itself")])

    def selected_job(self) -> JobItem | None:
        if 0 <= self.job_index < len(self.jobs):
            return self.jobs[self.job_index]
        return None

    def new_preset_fields(self) -> dict:
        """The add-preset form as ``presets.add_preset`` keyword arguments."""
        return {"name": self.new_name.strip(), "cluster": self.new_cluster,
                "partition": self.new_partition, "account": self.new_account.strip(),
                "endpoint_id": self.new_endpoint.strip(),
                "collection_id": self.new_collection.strip(),
                "remote_dir": self.new_remote_dir.strip(),
                "worker_dir": self.new_worker_dir.strip() or None,
                "local_collection_id": self.new_local_collection.strip(),
                "local_dir": self.new_local_dir.strip() or None,
                "mapped_collection": not self.new_guest, "runtime": self.new_runtime}


classes = (JobForm, JobItem, PresetItem, Status)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register()
    bpy.types.Scene.braas_globus = PointerProperty(type=JobForm)
    bpy.types.WindowManager.braas_globus = PointerProperty(type=Status)


def unregister() -> None:
    del bpy.types.WindowManager.braas_globus
    del bpy.types.Scene.braas_globus
    _unregister()
    _catalog_items.clear()
    _checked.clear()
