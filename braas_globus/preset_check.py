"""`presets test`: is a cluster preset usable right now?

Checks, in order, each with its own plain-words result: the Globus login works, the
centre's Compute endpoint answers and is online, the centre's collection answers and
the working directory can be listed, and the user's own collection answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import globus_sdk

from .presets import ClusterPreset


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _api_reason(err: Exception) -> str:
    if isinstance(err, globus_sdk.GlobusAPIError):
        if err.http_status == 401:
            return "the Globus login has expired or was revoked: run `braas-globus login`"
        try:
            from .auth import login_needed_from
        except ImportError:
            needed = None
        else:
            # a consent or session Globus asks for (recorded for `braas-globus login`): the
            # user can satisfy it; only a true permission denied is the centre's to grant
            needed = login_needed_from(err)
        if needed is not None:
            return str(needed)
        if err.http_status == 403:
            return f"permission denied ({err.code}): ask the centre for access"
        if err.http_status == 404:
            return "not found: check the id in the preset"
        return " ".join(f"{err.http_status} {err.code}: {err.message}".split())
    return str(err)


def check_preset(preset: ClusterPreset, transfer: globus_sdk.TransferClient,
                 compute) -> list[Check]:
    """Run every check; a failed check does not stop the next one."""
    checks: list[Check] = []

    def attempt(name: str, action) -> None:
        try:
            checks.append(Check(name, *action()))
        except Exception as err:  # an API or network error is this check's result
            checks.append(Check(name, False, _api_reason(err)))

    def endpoint() -> tuple[bool, str]:
        status = compute.get_endpoint_status(str(preset.endpoint_id))
        state = status.get("status", "unknown")
        return state == "online", f"Compute endpoint {preset.endpoint_id} is {state}"

    def collection(collection_id, label: str) -> tuple[bool, str]:
        doc = transfer.get_endpoint(collection_id)
        return True, f"{label} '{doc.get('display_name') or collection_id}' answers"

    def working_dir() -> tuple[bool, str]:
        listing = transfer.operation_ls(preset.collection_id, path=preset.remote_dir)
        return True, f"{preset.remote_dir} lists ({len(list(listing))} entries)"

    attempt("endpoint", endpoint)
    attempt("collection", lambda: collection(preset.collection_id, "centre collection"))
    attempt("working directory", working_dir)
    attempt("your collection", lambda: collection(preset.local_collection_id, "your collection"))
    return checks
