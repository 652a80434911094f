"""Operators: each checks what it can at once and hands the work to the worker thread.

None of them waits on the network, on packing or on a render: results arrive through
``results.drain`` on Blender's timers.
"""

from pathlib import Path

import bpy
from bpy.props import StringProperty

from . import results
from .properties import form_error, spec_fields


def _prefs(context):
    return context.preferences.addons[__package__].preferences


def _status(context):
    return context.window_manager.braas_globus


def _fail(operator, context, text: str) -> set[str]:
    status = _status(context)
    status.message, status.is_error = text, True
    operator.report({"ERROR"}, text)
    return {"CANCELLED"}


class _JobOperator:
    """An operator on the job selected in the Jobs list."""

    @classmethod
    def poll(cls, context):
        return _status(context).selected_job() is not None


class BRAAS_GLOBUS_OT_submit(bpy.types.Operator):
    """Check the New Job settings, save the file if it has changes, and submit it"""

    bl_idname = "braas_globus.submit"
    bl_label = "Submit Job"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not results.pending("submit")

    def execute(self, context):
        scene = context.scene
        form = scene.braas_globus
        error = form_error(form, scene, bpy.data.filepath)
        if error:
            return _fail(self, context, error)
        if bpy.data.is_dirty:
            # As Flamenco does: the job renders the saved file, so save what the user sees.
            bpy.ops.wm.save_mainfile()
        results.worker().request("submit", fields=spec_fields(form, scene, bpy.data.filepath))
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_abort(bpy.types.Operator):
    """Stop the running operation"""

    bl_idname = "braas_globus.abort"
    bl_label = "Abort"

    def execute(self, context):
        if not results.worker().abort():
            self.report({"INFO"}, "nothing to abort")
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_refresh_jobs(bpy.types.Operator):
    """Refresh the states of the jobs"""

    bl_idname = "braas_globus.refresh_jobs"
    bl_label = "Refresh"

    def execute(self, context):
        results.refresh_jobs()
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_job_info(_JobOperator, bpy.types.Operator):
    """Show everything about the selected job"""

    bl_idname = "braas_globus.job_info"
    bl_label = "Info"

    def execute(self, context):
        results.worker().request("info", job_id=_status(context).selected_job().name)
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_preview_job(_JobOperator, bpy.types.Operator):
    """Make a contact sheet of the selected job's frames (and a video of an animation) and
    show them in an Image Editor"""

    bl_idname = "braas_globus.preview_job"
    bl_label = "Preview"

    def execute(self, context):
        results.worker().request("preview", job_id=_status(context).selected_job().name)
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_cancel_job(_JobOperator, bpy.types.Operator):
    """Cancel the selected job: no frame of it renders afterwards"""

    bl_idname = "braas_globus.cancel_job"
    bl_label = "Cancel Job"

    @classmethod
    def poll(cls, context):
        job = _status(context).selected_job()
        return job is not None and not job.is_final

    def execute(self, context):
        results.worker().request("cancel", job_id=_status(context).selected_job().name)
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_resume_job(_JobOperator, bpy.types.Operator):
    """Render the frames of the selected job that are missing or failed"""

    bl_idname = "braas_globus.resume_job"
    bl_label = "Resume"

    @classmethod
    def poll(cls, context):
        job = _status(context).selected_job()
        return job is not None and job.state in {"FAILED", "CANCELED"}

    def execute(self, context):
        results.worker().request("resume", job_id=_status(context).selected_job().name)
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_download_job(_JobOperator, bpy.types.Operator):
    """Bring the selected job's frames and logs here (into the job storage path if set)"""

    bl_idname = "braas_globus.download_job"
    bl_label = "Download"

    def execute(self, context):
        storage = _prefs(context).job_storage
        to = bpy.path.abspath(storage) if storage else None
        results.worker().request("download", job_id=_status(context).selected_job().name,
                                 to=to)
        return {"FINISHED"}


def output_folder(job) -> Path:
    """Where the job's frames are: its downloaded copy if there is one, else its folder."""
    from braas_globus.worker.job_layout import OUT

    for base in (job.downloaded_to, job.folder):
        if base and (Path(base) / OUT).is_dir():
            return Path(base) / OUT
    return Path(job.folder)


class BRAAS_GLOBUS_OT_open_folder(_JobOperator, bpy.types.Operator):
    """Open the selected job's output folder in the file browser of the system"""

    bl_idname = "braas_globus.open_folder"
    bl_label = "Open Folder"

    def execute(self, context):
        folder = output_folder(_status(context).selected_job())
        if not folder.is_dir():
            return _fail(self, context, f"{folder} does not exist (yet): download the job")
        bpy.ops.wm.path_open(filepath=str(folder))
        return {"FINISHED"}


# --- preferences: Globus and presets -------------------------------------------------------


class BRAAS_GLOBUS_OT_login(bpy.types.Operator):
    """Log in to Globus in your web browser (one login for every centre)"""

    bl_idname = "braas_globus.login"
    bl_label = "Log In"

    @classmethod
    def poll(cls, context):
        return not results.pending("login")

    def execute(self, context):
        results.worker().request("login")
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_logout(bpy.types.Operator):
    """Revoke your Globus tokens and delete them from this computer"""

    bl_idname = "braas_globus.logout"
    bl_label = "Log Out"

    @classmethod
    def poll(cls, context):
        if context.window_manager.braas_globus.signed_in:
            return True
        cls.poll_message_set("Not signed in to Globus (`braas-globus logout` in a terminal "
                             "removes saved tokens in any case)")
        return False

    def execute(self, context):
        results.worker().request("logout")
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_whoami(bpy.types.Operator):
    """Ask Globus who is logged in"""

    bl_idname = "braas_globus.whoami"
    bl_label = "Check Login"

    def execute(self, context):
        results.worker().request("whoami")
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_refresh_presets(bpy.types.Operator):
    """Read the presets again"""

    bl_idname = "braas_globus.refresh_presets"
    bl_label = "Refresh Presets"

    def execute(self, context):
        results.worker().request("presets")
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_test_preset(bpy.types.Operator):
    """Check the login, the endpoint, the collections and the working directory of a preset"""

    bl_idname = "braas_globus.test_preset"
    bl_label = "Test"

    name: StringProperty(name="Preset")

    def execute(self, context):
        results.worker().request("test_preset", name=self.name)
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_find_working_dir(bpy.types.Operator):
    """Look for your working directory among the cluster's scratch folders (by Globus
    Transfer, when you are logged in) and put the first that lists in Remote Directory"""

    bl_idname = "braas_globus.find_working_dir"
    bl_label = "Find Working Dir"

    def execute(self, context):
        results.worker().request("find_working_dir",
                                 fields=_status(context).new_preset_fields())
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_add_preset(bpy.types.Operator):
    """Add a cluster preset: checked against the catalog, then (when you are logged in)
    against Globus; with Remote Directory empty, it is looked for first"""

    bl_idname = "braas_globus.add_preset"
    bl_label = "Add Preset"

    def execute(self, context):
        results.worker().request("add_preset", fields=_status(context).new_preset_fields())
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_remove_preset(bpy.types.Operator):
    """Remove a cluster preset"""

    bl_idname = "braas_globus.remove_preset"
    bl_label = "Remove Preset"

    name: StringProperty(name="Preset")

    def execute(self, context):
        results.worker().request("remove_preset", name=self.name)
        return {"FINISHED"}


class BRAAS_GLOBUS_OT_report(bpy.types.Operator):
    """Say an error of the background work in Blender's Info area and status bar"""

    bl_idname = "braas_globus.report"
    bl_label = "BRaaS Globus Report"
    bl_options = {"INTERNAL"}

    message: StringProperty()

    def execute(self, context):
        self.report({"ERROR"}, self.message)
        return {"FINISHED"}


classes = (
    BRAAS_GLOBUS_OT_report,
    BRAAS_GLOBUS_OT_submit,
    BRAAS_GLOBUS_OT_abort,
    BRAAS_GLOBUS_OT_refresh_jobs,
    BRAAS_GLOBUS_OT_job_info,
    BRAAS_GLOBUS_OT_preview_job,
    BRAAS_GLOBUS_OT_cancel_job,
    BRAAS_GLOBUS_OT_resume_job,
    BRAAS_GLOBUS_OT_download_job,
    BRAAS_GLOBUS_OT_open_folder,
    BRAAS_GLOBUS_OT_login,
    BRAAS_GLOBUS_OT_logout,
    BRAAS_GLOBUS_OT_whoami,
    BRAAS_GLOBUS_OT_refresh_presets,
    BRAAS_GLOBUS_OT_test_preset,
    BRAAS_GLOBUS_OT_find_working_dir,
    BRAAS_GLOBUS_OT_add_preset,
    BRAAS_GLOBUS_OT_remove_preset,
)
register, unregister = bpy.utils.register_classes_factory(classes)
