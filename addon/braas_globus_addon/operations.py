"""The add-on's operations: thin calls into the braas-globus service, each run on the
worker's thread (worker.py) with a :class:`worker.Context` (the service, a reporter, the
abort hook). ``OPERATIONS`` names them for the UI's requests. No ``bpy`` here either.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker import Context, Operation

# --- the operations: thin calls into braas-globus ---------------------------------------------


def job_summary(job, clusters: dict[str, str]) -> dict:
    """The CLI's summary of a job, and where each of its presets renders."""
    from braas_globus.views import job_summary as summary

    return {**summary(job),
            "cluster": ", ".join(clusters.get(p, p) for p in job.preset.split(","))}


def _clusters(home: Path) -> dict[str, str]:
    """Preset name -> where it renders, for the jobs list."""
    from braas_globus.presets import ClusterPreset, list_presets

    try:
        presets = list_presets(home)
    except Exception:  # a damaged presets file: the presets table says so
        return {}
    return {p.name: (p.cluster if isinstance(p, ClusterPreset) else "this machine")
            for p in presets}


def op_jobs(ctx: Context, selected: str | None = None) -> dict:
    service = ctx.service()
    jobs = service.list_jobs()
    active = [job for job in jobs if not job.state.is_final]
    poll = max((b.poll_seconds for job in active for b in service.backends(job)), default=None)
    info = service.info(selected) if selected and any(j.id == selected for j in jobs) else None
    clusters = _clusters(service.settings.home)
    return {"jobs": [job_summary(job, clusters) for job in jobs], "poll_seconds": poll,
            "info": info, "home": str(service.settings.home)}


def op_submit(ctx: Context, fields: dict) -> dict:
    from braas_globus.spec import build_spec

    spec = build_spec(**fields)  # checked again here: the scene may have changed meanwhile
    service = ctx.service()
    job = service.submit(spec, ctx)
    return job_summary(job, _clusters(service.settings.home))


def op_info(ctx: Context, job_id: str) -> dict:
    return ctx.service().info(job_id)


def op_preview(ctx: Context, job_id: str) -> dict:
    """The job's contact sheet and, for an animation, its video (braas_globus.preview)."""
    from braas_globus.preview import preview

    return preview(ctx.service(), job_id)


def op_cancel(ctx: Context, job_id: str) -> dict:
    service = ctx.service()
    return job_summary(service.cancel(job_id), _clusters(service.settings.home))


def op_resume(ctx: Context, job_id: str) -> dict:
    service = ctx.service()
    return job_summary(service.resume(job_id, ctx), _clusters(service.settings.home))


def op_download(ctx: Context, job_id: str, to: str | None = None) -> dict:
    return ctx.service().download(job_id, Path(to) if to else None, ctx)


def _preset_row(preset) -> dict:
    """The CLI's row of a preset; `local` has no cluster fields, so they are empty here."""
    from braas_globus.views import preset_row

    return {"cluster": "", "partition": "", "account": "", **preset_row(preset)}


def op_presets(ctx: Context) -> dict:
    from braas_globus.presets import list_presets

    return {"presets": [_preset_row(p) for p in list_presets(ctx.service().settings.home)]}


def op_find_working_dir(ctx: Context, fields: dict) -> dict:
    """The CLI's `presets add` without --remote-dir: the first scratch folder that lists."""
    from braas_globus.preset_check import prepare_preset

    prepared = prepare_preset(ctx.service().settings.home, {**fields, "remote_dir": None},
                              name_needed=False)
    return {"found": prepared.found, "tried": prepared.tried, "notes": prepared.notes}


def op_add_preset(ctx: Context, fields: dict) -> dict:
    """As `presets add`: the kind read from Globus when logged in; with no remote
    directory, the one found is only proposed (the form shows it; Add again takes it)."""
    from braas_globus.preset_check import prepare_preset
    from braas_globus.presets import add_preset

    home = ctx.service().settings.home
    prepared = prepare_preset(home, fields)
    if prepared.found:
        return {"found": prepared.found, "tried": prepared.tried, "notes": prepared.notes}
    preset = add_preset(home, **prepared.fields)
    return {**op_presets(ctx), "added": preset.name, "mapped": preset.mapped_collection,
            "notes": prepared.notes}


def op_remove_preset(ctx: Context, name: str) -> dict:
    from braas_globus.presets import remove_preset

    remove_preset(ctx.service().settings.home, name)
    return {**op_presets(ctx), "removed": name}


def op_test_preset(ctx: Context, name: str) -> dict:
    from braas_globus.blender import find_blender
    from braas_globus.presets import ClusterPreset, get_preset

    service = ctx.service()
    preset = get_preset(name, service.settings.home)
    if not isinstance(preset, ClusterPreset):
        blender = find_blender(service.settings)
        return {"name": name, "checks": [
            {"name": "blender", "ok": True,
             "detail": f"renders on this machine with {' '.join(blender['command'])}"}]}
    from braas_globus import auth
    from braas_globus.dispatch.functions import render_function_id
    from braas_globus.preset_probe import check_preset

    transfer, compute = auth.transfer_client(), auth.compute_client()

    def function_id() -> str:  # the render function: the same id as every job's
        with auth.translate_auth_errors():
            return render_function_id(compute, service.settings.home)

    checks = check_preset(preset, transfer, compute, home=service.settings.home,
                          function_id=function_id, reporter=ctx)
    return {"name": name, "checks": [vars(c) for c in checks]}


def _identity(result: dict) -> dict:
    who = result.get("identity") or {}
    return {"signed_in": True, "username": who.get("username") or who.get("id") or "",
            "name": who.get("name") or "", "missing": result.get("missing", [])}


def op_whoami(ctx: Context) -> dict:
    from braas_globus import auth

    try:
        return _identity(auth.whoami())
    except auth.LoginNeeded as err:
        return {"signed_in": False, "reason": str(err)}


def op_login(ctx: Context) -> dict:
    from braas_globus import auth
    from braas_globus.presets import load_cluster_presets

    reason = auth.browser_unavailable()
    if reason:
        # The other flow pastes a code at a terminal prompt, which Blender does not have.
        from braas_globus.errors import RunError

        raise RunError(f"no browser login here ({reason}): run `braas-globus login` in a "
                       "terminal; Blender uses the same login")
    mapped = [str(p.collection_id) for p in
              load_cluster_presets(ctx.service().settings.home).values() if p.mapped_collection]

    def note(text: str) -> None:
        ctx.step(text.splitlines()[0][:200])
        redirect = _redirect_address(text)
        if redirect:
            ctx.on_abort = lambda: _end_browser_login(redirect)

    result = auth.login(notify=note, collection_ids=mapped)
    return {**_identity(result), "already": result.get("logged_in") == "already"}


def op_logout(ctx: Context) -> dict:
    from braas_globus import auth

    result = auth.logout()
    return {"signed_in": False, "was_logged_in": result["was_logged_in"],
            "not_revoked": result["not_revoked"]}


OPERATIONS: dict[str, tuple[str, "Operation"]] = {
    "jobs": ("Refreshing jobs", op_jobs),
    "submit": ("Submitting", op_submit),
    "info": ("Reading job info", op_info),
    "preview": ("Making the preview", op_preview),
    "cancel": ("Canceling", op_cancel),
    "resume": ("Resuming", op_resume),
    "download": ("Downloading", op_download),
    "presets": ("Reading presets", op_presets),
    "find_working_dir": ("Finding the working directory", op_find_working_dir),
    "add_preset": ("Adding preset", op_add_preset),
    "remove_preset": ("Removing preset", op_remove_preset),
    "test_preset": ("Testing preset", op_test_preset),
    "whoami": ("Checking Globus login", op_whoami),
    "login": ("Logging in to Globus", op_login),
    "logout": ("Logging out of Globus", op_logout),
}


# --- aborting a browser login -----------------------------------------------------------------

_URL = re.compile(r"https?://\S+")


def _redirect_address(text: str) -> str | None:
    """The local redirect address inside the login address that ``auth.login`` notes."""
    for url in _URL.findall(text):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        for address in query.get("redirect_uri", []):
            if urllib.parse.urlparse(address).hostname in ("localhost", "127.0.0.1"):
                return address
    return None


def _end_browser_login(redirect: str) -> None:
    """Tell the waiting login server that the login ended, as the browser would on an error."""
    query = urllib.parse.urlencode({"error": "access_denied",
                                    "error_description": "login aborted in Blender"})
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        no_proxy.open(f"{redirect.rstrip('/')}/?{query}", timeout=5).close()
    except OSError:
        pass  # the server has gone already
