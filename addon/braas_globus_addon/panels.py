"""Render Properties > BRaaS Globus: Status, New Job and Jobs, shown when Cycles renders.

Drawing only reads properties (and asks ``build_spec`` about the form, from a cache):
it never calls the service.
"""

from __future__ import annotations

import bpy

from braas_globus.worker.preflight import RENDER_ENGINE

from . import results
from .properties import form_error


def _status(context):
    return context.window_manager.braas_globus


#: About how wide one character of Blender's UI font is, in pixels at a UI scale of 1.
UI_CHARACTER_PIXELS = 7.0


def line_characters(context, fallback: int = 70) -> int:
    """How many characters fit on a line of the region being drawn (its width, less the
    icon and margins); ``fallback`` where there is no region (drawn without a window)."""
    region = getattr(context, "region", None)
    if region is None or region.width <= 0:
        return fallback
    scale = context.preferences.view.ui_scale or 1.0
    return max(16, int(region.width / (UI_CHARACTER_PIXELS * scale)) - 6)


def _wrapped(layout, text: str, width: int | None = None, icon: str = "NONE",
             alert: bool = False):
    """Long messages as several labels (a label does not wrap), as wide as the region."""
    width = width or line_characters(bpy.context)
    column = layout.column(align=True)
    column.alert = alert
    words, line, first = text.split(), "", True
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            column.label(text=line, icon=icon if first else "BLANK1")
            line, first = word, False
        else:
            line = f"{line} {word}" if line else word
    if line:
        column.label(text=line, icon=icon if first else "BLANK1")


#: The lists' column headings, one a label, as their rows draw them.
PRESET_COLUMNS = ("Preset", "Account", "Cluster", "Partition", "Device")
JOB_COLUMNS = ("ID", "Project", "Cluster", "State")
#: In a region narrower than this many characters a line (the factory layout's Properties
#: editor has about 29) the lists keep only the columns that say the most, so none is cut.
NARROW_CHARACTERS = 60
NARROW_PRESET_COLUMNS = ("Preset", "Cluster", "Device")
NARROW_JOB_COLUMNS = ("Project", "State")


def is_narrow(context) -> bool:
    return line_characters(context) < NARROW_CHARACTERS


def _columns(layout, count: int):
    """A row of ``count`` columns, split the same way for the headings and each item (a
    plain row of labels gives an icon's column more room in one than in the other)."""
    row = layout.row(align=True)
    return [row.column(align=True) for _ in range(count)]


def _headings(row, names: tuple[str, ...]) -> None:
    """A list's headings in a row split as its items are, so each stands over its column."""
    for column, name in zip(_columns(row, len(names)), names):
        column.label(text=name)


class _RenderPanel:
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"
    COMPAT_ENGINES = {RENDER_ENGINE}  # what braas-globus renders (worker/preflight.py)

    @classmethod
    def poll(cls, context):
        return context.scene is not None and context.scene.render.engine in cls.COMPAT_ENGINES


class RENDER_PT_braas_globus(_RenderPanel, bpy.types.Panel):
    bl_label = "BRaaS Globus"

    def draw(self, context):
        pass


class RENDER_PT_braas_globus_needs_cycles(bpy.types.Panel):
    """Where the scene renders with another engine: one line instead of hidden panels."""

    bl_label = "BRaaS Globus"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and \
            context.scene.render.engine not in _RenderPanel.COMPAT_ENGINES

    def draw(self, context):
        _wrapped(self.layout, "Rendering here needs Cycles: set Render Engine to Cycles to "
                 "submit this scene", icon="INFO")


def job_bar_text(job) -> str:
    """``RUNNING, 4/12 frames, about 3 min left``: the state first, where a bar cuts last."""
    from braas_globus.progress import duration

    text = f"{job.state}, {job.frames_done}/{job.frame_count} frames"
    return text + (f", about {duration(job.seconds_left)} left" if job.seconds_left >= 0 else "")


class RENDER_PT_braas_globus_status(_RenderPanel, bpy.types.Panel):
    bl_label = "Status"
    bl_parent_id = "RENDER_PT_braas_globus"

    def draw(self, context):
        status = _status(context)
        layout = self.layout
        row = layout.row(align=True)
        if status.operation:
            text = status.operation + (f": {status.step}" if status.step else "")
            row.progress(factor=status.progress, type="BAR", text=text)
        else:
            row.label(text="Idle", icon="CHECKMARK")
        sub = row.row(align=True)
        sub.enabled = status.busy
        sub.operator("braas_globus.abort", text="", icon="CANCEL")
        job = status.selected_job()
        if job is not None and job.frame_count:
            # The id on its own line: in a narrow editor a bar cuts its text in the middle,
            # and the state is what must stay readable.
            layout.label(text=job.name, icon="RENDER_ANIMATION")
            layout.progress(factor=job.frames_done / job.frame_count, type="BAR",
                            text=job_bar_text(job))
        if status.message:
            _wrapped(layout, status.message, icon="ERROR" if status.is_error else "INFO",
                     alert=status.is_error)


class BRAAS_UL_presets(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname):
        # One label a column, as PRESET_COLUMNS heads them ("" for this machine's preset).
        cells = {"Preset": item.name, "Account": item.account,
                 "Cluster": item.cluster or "this machine", "Partition": item.partition,
                 "Device": item.device}
        names = NARROW_PRESET_COLUMNS if is_narrow(context) else PRESET_COLUMNS
        for column, name in zip(_columns(layout, len(names)), names):
            where = "NETWORK_DRIVE" if item.cluster else "HOME"
            column.label(text=cells[name], icon=where if name == "Preset" else "NONE")


class RENDER_PT_braas_globus_new_job(_RenderPanel, bpy.types.Panel):
    bl_label = "New Job"
    bl_parent_id = "RENDER_PT_braas_globus"

    def draw(self, context):
        layout = self.layout
        status = _status(context)
        scene = context.scene
        form = scene.braas_globus
        header = layout.row()
        _headings(header, NARROW_PRESET_COLUMNS if is_narrow(context) else PRESET_COLUMNS)
        header.operator("braas_globus.refresh_presets", text="", icon="FILE_REFRESH")
        layout.template_list("BRAAS_UL_presets", "", status, "presets", status,
                             "preset_index", rows=3)
        layout.use_property_split = True
        layout.use_property_decorate = False
        column = layout.column()
        column.prop(form, "project")
        column.prop(form, "email")
        column.prop(form, "render_type", expand=True)
        if form.render_type == "ANIMATION":
            column.prop(form, "frames_from", expand=True)
            if form.frames_from == "RANGE":
                column.prop(form, "frame_start")
                column.prop(form, "frame_end")
            elif form.frames_from == "SPEC":
                column.prop(form, "frames")
            column.prop(form, "max_jobs")
        else:
            column.label(text=f"Frame {scene.frame_current}")
        column.prop(form, "mode")
        column.prop(form, "walltime")
        column.prop(form, "project_root")
        # Blender's own style for options: one heading, short names (each tooltip says more).
        allow = column.column(heading="Allow")
        allow.prop(form, "allow_outside", text="Outside Files")
        allow.prop(form, "allow_missing", text="Missing Assets")
        allow.prop(form, "allow_older_blender", text="Older Blender")
        _draw_render_settings(layout, form, scene)
        error = form_error(form, scene, bpy.data.filepath)
        if error:
            _wrapped(layout, error, icon="ERROR", alert=True)
        elif bpy.data.is_dirty:
            layout.label(text="The file has changes: Submit saves it first", icon="INFO")
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = error is None
        row.operator("braas_globus.submit", icon="RENDER_ANIMATION")


def _draw_render_settings(layout, form, scene) -> None:
    """The job's settings over the scene's, folded away until asked for: one property a
    line, short names, so the form stays readable in a narrow editor."""
    shown = form.show_render_settings
    toggle = layout.row()
    toggle.use_property_split = False  # the whole width for its name, not the label column
    toggle.prop(form, "show_render_settings", emboss=False,
                icon="DISCLOSURE_TRI_DOWN" if shown else "DISCLOSURE_TRI_RIGHT")
    if not shown:
        return
    column = layout.column()
    column.prop(form, "samples")
    size = column.column(align=True)
    size.prop(form, "resolution_x", text="Resolution X")
    size.prop(form, "resolution_y", text="Y")
    column.prop(form, "resolution_percent")
    column.prop(form, "camera")
    column.prop_search(form, "view_layer", scene, "view_layers")
    column.prop(form, "file_format")
    column.prop(form, "denoise")
    if form.render_type == "ANIMATION":
        column.prop(form, "frame_step")
        column.prop(form, "task_minutes")
    elif form.render_type == "IMAGE":
        column.prop(form, "split")


class BRAAS_UL_jobs(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname):
        # Narrow: the project and the state (the selected job's whole id is in Status).
        cells = {"ID": item.name, "Project": item.project, "Cluster": item.cluster,
                 "State": f"{item.state} {item.frames_done}/{item.frame_count}"}
        names = NARROW_JOB_COLUMNS if is_narrow(context) else JOB_COLUMNS
        for column, name in zip(_columns(layout, len(names)), names):
            column.alert = name == "State" and item.state == "FAILED"
            column.label(text=cells[name])

    def filter_items(self, context, data, propname):
        items = getattr(data, propname)
        wanted = self.filter_name.lower()
        flags = [self.bitflag_filter_item if not wanted or wanted in
                 f"{i.name} {i.project} {i.preset} {i.cluster} {i.state}".lower() else 0
                 for i in items]
        if self.use_filter_invert:
            flags = [self.bitflag_filter_item & ~f for f in flags]
        count = len(items)  # newest first: ids start with the date; "reverse" for oldest
        order = list(range(count)) if self.use_filter_sort_reverse else \
            [count - 1 - i for i in range(count)]
        return flags, order


class RENDER_PT_braas_globus_jobs(_RenderPanel, bpy.types.Panel):
    bl_label = "Jobs"
    bl_parent_id = "RENDER_PT_braas_globus"

    def draw(self, context):
        layout = self.layout
        status = _status(context)
        header = layout.row()
        _headings(header, NARROW_JOB_COLUMNS if is_narrow(context) else JOB_COLUMNS)
        header.operator("braas_globus.refresh_jobs", text="", icon="FILE_REFRESH")
        layout.template_list("BRAAS_UL_jobs", "", status, "jobs", status, "job_index",
                             rows=4)
        # As many buttons a row as the width takes whole (a row of six cuts their names).
        buttons = layout.grid_flow(row_major=True, columns=0, even_columns=True, align=True)
        buttons.operator("braas_globus.refresh_jobs", icon="FILE_REFRESH")
        buttons.operator("braas_globus.job_info", icon="INFO")
        buttons.operator("braas_globus.preview_job", icon="IMAGE_DATA")
        buttons.operator("braas_globus.cancel_job", text="Cancel", icon="X")
        buttons.operator("braas_globus.download_job", icon="IMPORT")
        buttons.operator("braas_globus.open_folder", icon="FILE_FOLDER")
        buttons.operator("braas_globus.resume_job", icon="PLAY")
        if status.selected_job() is None:
            return
        if status.job_info:
            box = layout.box().column(align=True)
            for line in status.job_info.splitlines():
                box.label(text=line)
        icon = results.preview(status.preview_file)
        if icon is not None:
            box = layout.box()
            box.label(text=f"Frame {status.preview_frame}", icon="IMAGE_DATA")
            box.template_icon(icon_value=icon.icon_id, scale=results.PREVIEW_SCALE)


classes = (
    BRAAS_UL_presets,
    BRAAS_UL_jobs,
    RENDER_PT_braas_globus,
    RENDER_PT_braas_globus_needs_cycles,
    RENDER_PT_braas_globus_status,
    RENDER_PT_braas_globus_new_job,
    RENDER_PT_braas_globus_jobs,
)
register, unregister = bpy.utils.register_classes_factory(classes)
