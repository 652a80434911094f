"""Add-on preferences: the Globus login, cluster presets, and the job storage path.

Only the job storage path is a preference (saved with Blender's preferences). The login
lives in braas-globus's own token file, the presets in its presets.json; what the panel
shows of them (who is signed in, the presets table) is WindowManager data, never saved.
"""

import bpy
from bpy.props import StringProperty

from braas_globus.settings import braas_home

from .panels import _wrapped


class BraasGlobusPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    job_storage: StringProperty(
        name="Job Storage Path", subtype="DIR_PATH", default="",
        description="Download copies each job's out/, log/ and job/ folders into "
                    "<this folder>/<job id>; empty: frames stay in the job's own folder")

    def draw(self, context):
        layout = self.layout
        status = context.window_manager.braas_globus

        box = layout.box()
        box.label(text="Globus", icon="URL")
        row = box.row()
        if status.signed_in:
            row.label(text=f"Signed in as {status.identity}", icon="CHECKMARK")
        else:
            row.label(text="Not signed in", icon="CANCEL")
        row = box.row(align=True)
        row.operator("braas_globus.login", icon="USER")
        row.operator("braas_globus.logout", icon="X")
        row.operator("braas_globus.whoami", icon="FILE_REFRESH")
        if status.login_note:
            _wrapped(box, status.login_note, icon="INFO")

        box = layout.box()
        header = box.row()
        header.label(text="Cluster Presets", icon="NETWORK_DRIVE")
        header.operator("braas_globus.refresh_presets", text="", icon="FILE_REFRESH")
        for item in status.presets:
            row = box.row(align=True)
            if item.cluster:  # "" for this machine's preset
                row.label(text=item.name)
                row.label(text=f"{item.cluster} / {item.partition} / {item.account}")
            else:
                row.label(text=item.name)
                row.label(text="this machine")
            row.label(text=item.device)
            row.operator("braas_globus.test_preset", text="Test").name = item.name
            remove = row.row()
            remove.enabled = bool(item.cluster)  # this machine's preset is built in
            remove.operator("braas_globus.remove_preset", text="", icon="TRASH").name = item.name
            if item.test_result:
                column = box.column(align=True)
                column.alert = not item.test_ok
                for line in item.test_result.splitlines():
                    column.label(text=line, icon="BLANK1")

        add = box.column()
        add.label(text="Add a cluster preset (clusters and partitions from the catalog):")
        add.use_property_split = True
        for name in ("new_name", "new_cluster", "new_partition", "new_account", "new_endpoint",
                     "new_collection", "new_remote_dir", "new_worker_dir",
                     "new_local_collection", "new_local_dir", "new_guest", "new_runtime"):
            add.prop(status, name)
            if name == "new_remote_dir":
                add.operator("braas_globus.find_working_dir", icon="VIEWZOOM")
        add.operator("braas_globus.add_preset", icon="ADD")

        box = layout.box()
        box.label(text="Jobs", icon="FILE_FOLDER")
        box.prop(self, "job_storage")
        box.label(text=f"braas-globus data folder: {status.home or braas_home()} "
                       "(set BRAAS_HOME to move it)")
        if status.message:
            _wrapped(layout, status.message, icon="ERROR" if status.is_error else "INFO",
                     alert=status.is_error)


classes = (BraasGlobusPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
