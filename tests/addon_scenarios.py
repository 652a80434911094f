"""Scenarios run inside real Blender (PyPI bpy, background mode), one Python process each.

    python tests/addon_scenarios.py SCENARIO '{"json": "arguments"}'

tests/test_addon.py starts these: bpy cannot be started twice in one process. The add-on
is found as an extension in ``$BLENDER_USER_RESOURCES/extensions/user_default`` (the test
links the source folder there, or installs the built zip). Each scenario ends by printing
``RESULT <json>``; a failed check raises, so the process exits non-zero.

bpy.app.timers never fire in PyPI bpy's background mode (it has no event loop), so
:func:`pump` calls the add-on's own timer callback, ``results.drain``, every 50 ms,
as Blender would every 250 ms.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

ADDON = "bl_ext.user_default.braas_globus"


def _raise(err: BaseException) -> None:
    raise err


def enable():
    import addon_utils

    return addon_utils.enable(ADDON, default_set=True, handle_error=_raise)


def disable() -> None:
    import addon_utils

    addon_utils.disable(ADDON, default_set=True, handle_error=_raise)


def status():
    import bpy

    return bpy.context.window_manager.braas_globus


def pump(addon, condition, timeout: float = 60.0, what: str = "the add-on",
         watch=None):
    """Drive the add-on's timer callback until ``condition()`` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        addon.results.drain()
        if watch is not None:
            watch()
        if condition():
            return
        time.sleep(0.05)
    current = status()
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; status: "
                         f"{current.operation!r} {current.step!r} {current.message!r}")


def idle(addon, timeout: float = 60.0) -> None:
    pump(addon, lambda: not addon.results.pending(), timeout, "the worker to be idle")
    addon.results.drain()


def call(operator, **props) -> tuple[set, str | None]:
    """Run an operator; (its result, the error it reported or None)."""
    try:
        return operator(**props), None
    except RuntimeError as err:  # bpy turns an operator's ERROR report into this
        return {"CANCELLED"}, str(err).removeprefix("Error: ").strip()


def open_scene(path: str) -> None:
    import bpy

    bpy.ops.wm.open_mainfile(filepath=path)


def job(name: str):
    return next((item for item in status().jobs if item.name == name), None)


def blend_bytes(path: Path) -> bytes:
    """A .blend file's bytes, uncompressed (Blender may save them zstd-compressed)."""
    data = path.read_bytes()
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import io

        import zstandard

        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    assert data[:7] == b"BLENDER", path
    return data


def classes_present() -> dict:
    import bpy

    return {"panel": hasattr(bpy.types, "RENDER_PT_braas_globus"),
            "operator": hasattr(bpy.types, "BRAAS_GLOBUS_OT_submit"),
            "preferences": ADDON in bpy.context.preferences.addons and
            bpy.context.preferences.addons[ADDON].preferences is not None,
            "wm_status": hasattr(bpy.types.WindowManager, "braas_globus"),
            "scene_form": hasattr(bpy.types.Scene, "braas_globus")}


# --- drawing without a window ----------------------------------------------------------------


class FakeLayout:
    """Stands in for bpy.types.UILayout (background mode has no window to draw in).

    Every call is checked against Blender's own description of UILayout: the function
    exists, its keyword arguments are its parameters, a ``prop`` names a property of its
    data, an ``operator`` names a registered operator. Problems are collected, not raised.
    """

    def __init__(self, problems: list, calls: list) -> None:
        import bpy

        object.__setattr__(self, "_rna", bpy.types.UILayout.bl_rna)
        object.__setattr__(self, "problems", problems)
        object.__setattr__(self, "calls", calls)

    def __setattr__(self, name, value):
        if name not in self._rna.properties:
            self.problems.append(f"UILayout has no property {name!r}")

    def __getattr__(self, name):
        import bpy

        function = self._rna.functions.get(name)
        if function is None:
            self.problems.append(f"UILayout has no function {name!r}")
            return lambda *a, **k: self

        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            known = {p.identifier for p in function.parameters}
            if unknown := set(kwargs) - known:
                self.problems.append(f"{name}() has no parameter(s) {sorted(unknown)}")
            if name in ("prop", "template_list") and args:
                pairs = [(args[0], args[1])] if name == "prop" else \
                    [(args[2], args[3]), (args[4], args[5])]
                for data, prop in pairs:
                    if prop not in data.bl_rna.properties:
                        self.problems.append(f"{type(data).__name__} has no property {prop!r}")
            if name == "template_list" and not hasattr(bpy.types, args[0]):
                self.problems.append(f"no UIList {args[0]!r}")
            if name == "operator":
                module, _, op = args[0].partition(".")
                try:
                    rna = getattr(getattr(bpy.ops, module), op).get_rna_type()
                except (AttributeError, KeyError):
                    self.problems.append(f"no operator {args[0]!r}")
                    return FakeOperatorProperties(self.problems, None)
                return FakeOperatorProperties(self.problems, rna)
            return FakeLayout(self.problems, self.calls)

        return call


class FakeOperatorProperties:
    def __init__(self, problems: list, rna) -> None:
        object.__setattr__(self, "_problems", problems)
        object.__setattr__(self, "_rna", rna)

    def __setattr__(self, name, value):
        if self._rna is not None and name not in self._rna.properties:
            self._problems.append(f"operator {self._rna.identifier} has no property {name!r}")


def draw_everything(addon) -> dict:
    """Draw every panel, list row and the preferences with :class:`FakeLayout`."""
    from types import SimpleNamespace

    import bpy

    problems, calls = [], []
    context = bpy.context
    panels = addon.panels
    for panel in (panels.RENDER_PT_braas_globus, panels.RENDER_PT_braas_globus_status,
                  panels.RENDER_PT_braas_globus_new_job, panels.RENDER_PT_braas_globus_jobs):
        panel.draw(SimpleNamespace(layout=FakeLayout(problems, calls)), context)
    prefs = context.preferences.addons[ADDON].preferences


    class Preferences:  # the add-on's preferences, with the fake layout
        layout = FakeLayout(problems, calls)

        def __getattr__(self, name):
            return getattr(prefs, name)

    type(prefs).draw(Preferences(), context)
    current = status()
    lists = {panels.BRAAS_UL_jobs: current.jobs, panels.BRAAS_UL_presets: current.presets}
    for ui_list, items in lists.items():
        for item in items:
            ui_list.draw_item(None, context, FakeLayout(problems, calls), current, item, 0,
                              current, "")
    fake_list = SimpleNamespace(filter_name="", use_filter_invert=False,
                                use_filter_sort_reverse=False, bitflag_filter_item=1 << 30)
    flags, order = panels.BRAAS_UL_jobs.filter_items(fake_list, context, current, "jobs")
    fake_list.filter_name = current.jobs[0].name if len(current.jobs) else "nothing"
    filtered, _ = panels.BRAAS_UL_jobs.filter_items(fake_list, context, current, "jobs")
    return {"problems": problems, "calls": len(calls),
            "operators": sorted({c[1][0] for c in calls if c[0] == "operator"}),
            "labels": [c[2].get("text", "") for c in calls if c[0] == "label"],
            "progress": [c[2] for c in calls if c[0] == "progress"],
            "icons": [c[2] for c in calls if c[0] == "template_icon"],
            "order": order, "shown_when_filtered": sum(bool(f) for f in filtered)}


# --- scenarios --------------------------------------------------------------------------------


def scenario_register(args: dict) -> dict:
    """Enable and disable twice; everything the add-on adds goes away again."""
    import bpy

    rounds = []
    for _ in range(2):
        addon = enable()
        present = classes_present()
        timer = bpy.app.timers.is_registered(addon.results.drain)
        bpy.ops.braas_globus.refresh_presets()  # starts the worker thread
        idle(addon, 30)
        presets = [p.name for p in status().presets]
        drawn = draw_everything(addon)
        # The New Job form's render settings, unfolded: they draw with this UILayout API too.
        bpy.context.scene.braas_globus.show_render_settings = True
        drawn_settings = draw_everything(addon)
        bpy.context.scene.braas_globus.show_render_settings = False
        # Not signed in: Log Out is greyed out. Another engine: one line instead of panels.
        logout_enabled = bpy.ops.braas_globus.logout.poll()
        scene = bpy.context.scene
        engines = {}
        for engine in ("CYCLES", "BLENDER_EEVEE_NEXT" if bpy.app.version >= (4, 2) and
                       bpy.app.version < (5, 0) else "BLENDER_EEVEE", "BLENDER_WORKBENCH"):
            scene.render.engine = engine
            hint = addon.panels.RENDER_PT_braas_globus_needs_cycles
            calls: list = []
            if hint.poll(bpy.context):
                from types import SimpleNamespace

                hint.draw(SimpleNamespace(layout=FakeLayout([], calls)), bpy.context)
            engines[engine] = {"panels": addon.panels.RENDER_PT_braas_globus.poll(bpy.context),
                               "hint": [c[2].get("text", "") for c in calls
                                        if c[0] == "label"]}
        scene.render.engine = "CYCLES"
        # Messages wrap to the region's width: a narrow and a wide Properties editor.
        from types import SimpleNamespace

        wrapping = {}
        for width in (300, 900):
            context = SimpleNamespace(region=SimpleNamespace(width=width),
                                      preferences=SimpleNamespace(
                                          view=SimpleNamespace(ui_scale=1.0)))
            chars = addon.panels.line_characters(context)
            calls = []
            addon.panels._wrapped(FakeLayout([], calls), "word " * 60, width=chars)
            wrapping[width] = {"chars": chars, "lines": [c[2]["text"] for c in calls
                                                         if c[0] == "label"]}
        worker_thread = addon.results._state.worker._thread
        disable()
        rounds.append({"present": present, "timer": timer, "presets": presets, "drawn": drawn,
                       "drawn_settings": drawn_settings,
                       "logout_enabled": logout_enabled, "engines": engines,
                       "wrapping": wrapping,
                       "after": classes_present(),
                       "timer_after": bpy.app.timers.is_registered(addon.results.drain),
                       "worker_alive_after": worker_thread.is_alive(),
                       "threads_after": [t.name for t in threading.enumerate()]})
    return {"blender": bpy.app.version_string, "rounds": rounds}


def scenario_validate(args: dict) -> dict:
    """Bad New Job values: the message the panel shows and the submit operator reports."""
    import bpy

    from braas_globus.service import Service

    open_scene(args["scene"])
    addon = enable()
    reported_errors = []  # what went to Blender's Info area
    report = addon.results.report_error

    def recording(text):
        reported_errors.append(text)
        report(text)

    addon.results.report_error = recording
    form = bpy.context.scene.braas_globus
    seen = {}
    for case, values in args["cases"].items():
        defaults = {"project": "", "email": "", "render_type": "ANIMATION",
                    "frames_from": "SCENE", "frames": "", "frame_start": 1, "frame_end": 6,
                    "preset": "local", "mode": "DIRECTORY"}
        for key, value in {**defaults, **values}.items():
            setattr(form, key, value)
        panel = addon.properties.form_error(form, bpy.context.scene, bpy.data.filepath)
        result, reported = call(bpy.ops.braas_globus.submit)
        seen[case] = {"panel": panel, "reported": reported, "result": sorted(result),
                      "status": status().message, "is_error": status().is_error}
    idle(addon)
    # Bad input found by the service itself (after the form's own checks pass).
    for case, scene in args["service_cases"].items():
        open_scene(scene)
        form = bpy.context.scene.braas_globus
        form.preset, form.mode, form.project = args["service_presets"].get(case, "local"), \
            "DIRECTORY", "check"
        result, reported = call(bpy.ops.braas_globus.submit)
        assert reported is None, reported
        pump(addon, lambda: not addon.results.pending() and status().message, 60,
             f"the service's answer for {case}")
        seen[case] = {"status": status().message, "is_error": status().is_error,
                      "info_area": status().message in reported_errors}
    service = Service.open()
    jobs = service.store.jobs()
    home = service.settings.home
    return {"cases": seen, "jobs": [j.id for j in jobs],
            "job_folders": sorted(p.name for p in (home / "jobs").glob("*"))
            if (home / "jobs").exists() else []}


def scenario_local_job(args: dict) -> dict:
    """Submit to the local backend; frames arrive; info, preview, download, cancel."""
    import bpy

    open_scene(args["scene"])
    addon = enable()
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.job_storage = args["storage"]
    form = bpy.context.scene.braas_globus
    form.project, form.mode, form.frames_from = "addon test", "DIRECTORY", "SCENE"
    out = {}

    applied = []  # every message the timer callback applies, in order
    apply = addon.results._apply

    def recording(current, message):
        applied.append(message)
        apply(current, message)

    addon.results._apply = recording
    started = time.monotonic()
    result, reported = call(bpy.ops.braas_globus.submit)
    assert result == {"FINISHED"}, reported
    out["submit_call_seconds"] = time.monotonic() - started
    seen_states = []

    def watch():
        selected = status().selected_job()
        if selected is not None and (not seen_states or seen_states[-1] != [
                selected.state, selected.frames_done]):
            seen_states.append([selected.state, selected.frames_done])

    # No refresh is asked for from here on: the timer keeps the running job's state fresh.
    pump(addon, lambda: status().selected_job() is not None
         and status().selected_job().state == "FINISHED", 120, "the job to finish",
         watch=watch)
    seen_steps = [m.text for m in applied if type(m).__name__ == "Step"]
    out["progress_reports"] = sum(type(m).__name__ == "Progress" for m in applied)
    out["refreshes"] = sum(type(m).__name__ == "Finished" and m.operation == "jobs"
                           for m in applied)
    first = status().selected_job()
    out.update(job=first.name, project=first.project, cluster=first.cluster,
               frames=[first.frames_done, first.frame_count], steps=seen_steps,
               states=list(seen_states), submit_message=status().message)
    out["preview"] = {"file": status().preview_file, "frame": status().preview_frame,
                      "size": list(addon.results.preview(status().preview_file).image_size)
                      if addon.results.preview(status().preview_file) else None}

    result, _ = call(bpy.ops.braas_globus.job_info)
    idle(addon)
    out["info"] = status().job_info

    call(bpy.ops.braas_globus.preview_job)
    idle(addon, 120)
    sheet = next((i for i in bpy.data.images if i.filepath.endswith("contact-sheet.png")), None)
    video = next((i for i in bpy.data.images if i.filepath.endswith("preview.mp4")), None)
    out["previewed"] = {"message": status().message,
                        "sheet": list(sheet.size) if sheet else None,
                        "video": [video.source, video.frame_duration] if video else None}

    call(bpy.ops.braas_globus.download_job)
    idle(addon)
    out["download_message"] = status().message
    out["drawn"] = draw_everything(addon)
    out["output_folder"] = str(addon.operators.output_folder(status().selected_job()))

    # A second, longer job: cancel it once it renders.
    open_scene(args["long_scene"])
    form = bpy.context.scene.braas_globus
    form.project, form.mode = "cancel-me", "DIRECTORY"
    call(bpy.ops.braas_globus.submit)
    seen_states.clear()
    pump(addon, lambda: (j := status().selected_job()) is not None and j.project == "cancel-me"
         and j.frames_done >= 2, 120, "frames of the second job", watch=watch)
    out["running_states"] = list(seen_states)
    second = status().selected_job()
    out["running_bar"] = addon.panels.job_bar_text(second)  # what Status shows of it now
    result, reported = call(bpy.ops.braas_globus.cancel_job)
    assert result == {"FINISHED"}, (reported, second.state, second.frames_done)
    pump(addon, lambda: job(second.name).state == "CANCELED", 60, "the cancel")
    done_at_cancel = job(second.name).frames_done
    out_dir = Path(job(second.name).folder) / "out"
    files_at_cancel = sorted(p.name for p in out_dir.glob("*.png"))
    time.sleep(2.0)
    call(bpy.ops.braas_globus.refresh_jobs)
    idle(addon)
    out["cancel"] = {"job": second.name, "state": job(second.name).state,
                     "frames_at_cancel": done_at_cancel,
                     "frames_after": job(second.name).frames_done,
                     "frame_count": job(second.name).frame_count,
                     "files_at_cancel": files_at_cancel,
                     "files_after": sorted(p.name for p in out_dir.glob("*.png"))}
    out["jobs"] = [(j.name, j.state) for j in status().jobs]
    disable()
    return out


def scenario_abort(args: dict) -> dict:
    """Abort a submit while it packs: the job is taken back out, nothing renders."""
    import bpy

    from braas_globus.service import Service

    open_scene(args["scene"])
    addon = enable()
    form = bpy.context.scene.braas_globus
    form.project, form.mode = "abort-me", "PACKED"
    call(bpy.ops.braas_globus.submit)
    pump(addon, lambda: status().step.startswith("tracing and staging"), 60, "the packing step")
    asked = time.monotonic()
    result, _ = call(bpy.ops.braas_globus.abort)
    idle(addon)
    stopped_after = time.monotonic() - asked
    service = Service.open()
    home = service.settings.home
    # Abort while idle does nothing; a request waiting behind a running one is dropped.
    result_idle, _ = call(bpy.ops.braas_globus.abort)
    return {"message": status().message, "is_error": status().is_error,
            "stopped_after": stopped_after, "jobs": [j.id for j in service.store.jobs()],
            "job_folders": sorted(p.name for p in (home / "jobs").glob("*"))
            if (home / "jobs").exists() else [], "abort_idle": sorted(result_idle)}


def scenario_globus(args: dict) -> dict:
    """Login (stand-in Globus Auth, the real redirect server), whoami, logout, no secrets
    saved in the .blend or the preferences; an aborted browser login; presets."""
    import urllib.request
    import webbrowser
    from urllib.parse import parse_qs, urlparse

    import bpy
    import globus_sdk
    import responses

    from braas_globus import auth

    fake = args["fake"]

    class FakeDecoder(globus_sdk.IDTokenDecoder):
        def decode(self, id_token: str, /) -> dict:
            assert id_token == fake["id_token"]
            return {"sub": fake["identity"], "preferred_username": "ada@example.org",
                    "name": "Ada Lovelace", "email": "ada@example.org",
                    "aud": fake["client_id"]}

    opened = []

    class FollowingBrowser:
        """Stands in for a browser: the user logs in and Globus redirects back."""
        name = "stand-in browser"

        def open(self, url: str, new: int = 0) -> bool:
            opened.append(url)
            redirect = parse_qs(urlparse(url).query)["redirect_uri"][0]
            no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with no_proxy.open(f"{redirect}/?code={fake['code']}&state=_default",
                               timeout=10) as answer:
                assert b"Login successful" in answer.read()
            return True

    class IdleBrowser:
        """Stands in for a browser where the user never logs in."""
        name = "idle stand-in browser"

        def open(self, url: str, new: int = 0) -> bool:
            opened.append(url)
            return True

    auth.IDTokenDecoder = FakeDecoder
    responses.start()
    responses.add(responses.POST, fake["token_url"], json=fake["code_exchange"])
    responses.add(responses.GET, "https://auth.globus.org/v2/oauth2/userinfo",
                  json={"sub": fake["identity"], "preferred_username": "ada@example.org",
                        "name": "Ada Lovelace", "email": "ada@example.org"})
    responses.add(responses.POST, fake["revoke_url"], json={"active": False})
    out: dict = {}
    addon = enable()

    # Before any login.
    call(bpy.ops.braas_globus.whoami)
    idle(addon)
    out["before"] = {"signed_in": status().signed_in, "note": status().login_note}

    # An aborted login: the browser opens, the user never comes back, Abort ends it.
    webbrowser.get = lambda *a: IdleBrowser()
    call(bpy.ops.braas_globus.login)
    pump(addon, lambda: "web browser" in status().step, 30, "the login to wait")
    asked = time.monotonic()
    call(bpy.ops.braas_globus.abort)
    idle(addon, 20)
    out["aborted_login"] = {"message": status().message, "seconds": time.monotonic() - asked,
                            "signed_in": status().signed_in}

    # A login that completes.
    webbrowser.get = lambda *a: FollowingBrowser()
    call(bpy.ops.braas_globus.login)
    idle(addon, 30)
    out["login"] = {"message": status().message, "identity": status().identity,
                    "signed_in": status().signed_in}
    call(bpy.ops.braas_globus.whoami)
    idle(addon)
    out["whoami"] = status().identity

    # Nothing secret in the saved .blend or Blender's preferences.
    blend = Path(args["tmp"]) / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.save_userpref()
    saved = [blend, *Path(os.environ["BLENDER_USER_RESOURCES"]).rglob("userpref.blend")]
    out["saved_files"] = [str(p) for p in saved]
    out["secrets_found"] = [(str(p), s) for p in saved for s in fake["secrets"]
                            if s.encode() in blend_bytes(p)]
    out["identity_in_blend"] = b"ada@example.org" in blend_bytes(blend)
    # The control: a value a Scene property holds is found by the same check.
    bpy.context.scene.braas_globus.email = "control@example.org"
    control = Path(args["tmp"]) / "control.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(control), copy=True)
    out["control_in_blend"] = b"control@example.org" in blend_bytes(control)
    token_file = auth.token_path(Path(os.environ["BRAAS_HOME"]), "production")
    out["token_file_before_logout"] = token_file.exists()

    call(bpy.ops.braas_globus.logout)
    idle(addon)
    out["logout"] = {"message": status().message, "signed_in": status().signed_in,
                     "token_file": token_file.exists()}

    # Presets: add one from the catalog, a bad one, test, remove.
    current = status()
    for key, value in args["preset"].items():
        setattr(current, key, value)
    call(bpy.ops.braas_globus.add_preset)
    idle(addon)
    out["added"] = {"message": current.message, "is_error": current.is_error,
                    "rows": [(p.name, p.cluster, p.partition, p.account, p.device)
                             for p in current.presets]}
    current.new_name, current.new_account = "second", args["bad_account"]
    call(bpy.ops.braas_globus.add_preset)
    idle(addon)
    out["bad_preset"] = {"message": current.message, "is_error": current.is_error}
    call(bpy.ops.braas_globus.test_preset, name="local")
    idle(addon)
    out["test_local"] = {"message": current.message,
                         "result": current.presets["local"].test_result}
    call(bpy.ops.braas_globus.test_preset, name=args["preset"]["new_name"])
    idle(addon)
    out["test_cluster"] = {"message": current.message, "is_error": current.is_error}
    call(bpy.ops.braas_globus.remove_preset, name=args["preset"]["new_name"])
    idle(addon)
    out["removed"] = {"message": current.message, "rows": [p.name for p in current.presets]}
    disable()
    responses.stop()
    return out


def scenario_installed(args: dict) -> dict:
    """Install the built zip as Blender does, then render one frame with the installed copy."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=args["zip"], repo="user_default", enable_on_install=True)
    import pydantic_core

    import braas_globus

    addon = sys.modules[ADDON]
    out = {"install": sorted(result), "braas_globus": braas_globus.__file__,
           "pydantic_core": pydantic_core.__file__,
           "enabled": ADDON in bpy.context.preferences.addons,
           "present": classes_present()}
    open_scene(args["scene"])
    form = bpy.context.scene.braas_globus
    form.project, form.mode, form.render_type = "installed", "DIRECTORY", "IMAGE"
    call(bpy.ops.braas_globus.submit)
    pump(addon, lambda: (j := status().selected_job()) is not None and j.is_final, 120,
         "the job of the installed add-on")
    finished = status().selected_job()
    out["job"] = {"state": finished.state, "frames": [finished.frames_done,
                                                      finished.frame_count],
                  "message": status().message,
                  "runner_log": (Path(finished.folder) / "job" / "runner.log").read_text()
                  if (Path(finished.folder) / "job" / "runner.log").exists() else ""}
    disable()
    out["after"] = classes_present()
    return out


SCENARIOS = {name.removeprefix("scenario_"): function
             for name, function in globals().items() if name.startswith("scenario_")}


if __name__ == "__main__":
    if os.environ.get("BRAAS_TEST_BPY_VIEW"):
        # Installed-extension runs: this Python was started with -S, so nothing from its
        # site-packages is importable but Blender itself (bpy and what bpy needs).
        sys.path.insert(0, os.environ["BRAAS_TEST_BPY_VIEW"])
    name, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    result = SCENARIOS[name](json.loads(raw))
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip bpy's teardown, which can be slow in background mode
