"""`presets add` and `presets test`: what Globus says about a cluster preset.

Here: the checks' shape, Globus's words, the collection's kind, and ``presets add``'s
look for the working directory. ``presets test`` (its checks and the probe) is in
``preset_probe.py``.

``presets test`` checks, in order, each with its own plain-words result: the centre's
Compute endpoint answers and is online, the centre's collection answers and is the kind the
preset says (read from Globus: only a GCSv5 mapped collection that is not high assurance
needs a data_access consent), the working directory lists, and the user's own collection
answers. Then a probe proves the paths end to end: Transfer sends a small file into
``<remote_dir>/probe/``, ONE Compute task (the same registered function as renders, so a
centre's ``allowed_functions`` stays one id) reads it at the worker's path and writes an
answer beside it, and Transfer sees that answer.

``presets add`` reads the collection's kind from Globus when the user is logged in, and
without ``--remote-dir`` looks for the working directory among the catalog's scratch roots.

Transfer does not tell where a collection path lies on the centre's file system: a GCSv5
mapped collection's ``collection_base_path`` is in the GCS Manager API (a token for that
endpoint's own scope, which this login does not ask for), not in Transfer's collection
document; its ``host_path`` is given for guest collections only, to their owner, and is a
path on the host collection (itself with a base path), not on the file system. So the
worker's path is proved by the probe, and ``--worker-dir`` says it where it differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import globus_sdk

from .errors import BraasError, UsageError
from .presets import ClusterPreset, check_new_preset, is_home_relative


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


# --- what Globus says a collection is ------------------------------------------------------

_KINDS = {"GCSv5_mapped_collection": "mapped", "GCSv5_guest_collection": "guest",
          "GCP_mapped_collection": "personal", "GCP_guest_collection": "guest"}
_KIND_WORDS = {
    "mapped": "a Globus Connect Server mapped collection (needs a data_access consent)",
    "high_assurance_mapped": "a high-assurance Globus Connect Server mapped collection "
                             "(no data_access consent)",
    "guest": "a guest collection (no data_access consent)",
    "personal": "a Globus Connect Personal collection (no data_access consent)",
}


def _clip(value: object, limit: int = 200) -> str:
    """Remote text as one printable line, at most ``limit`` characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(value)[:4 * limit])
                    .split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class CollectionFacts:
    """A collection as Transfer's collection document (``get_endpoint``) describes it."""

    entity_type: str
    high_assurance: bool
    display_name: str
    kind: str | None  # a presets.CollectionKind; None: a type braas-globus does not know
    host_path: str | None = None  # a guest collection's root on its host collection

    @property
    def needs_data_access(self) -> bool:
        return self.kind == "mapped"

    @property
    def words(self) -> str:
        if self.kind is None:
            return f"of a type braas-globus does not know (Globus calls it {self.entity_type})"
        return _KIND_WORDS[self.kind]


def collection_facts(doc: Mapping[str, Any]) -> CollectionFacts:
    """Read a collection document (remote input: strictly, bounded)."""
    entity = doc.get("entity_type")
    entity = _clip(entity, 64) if isinstance(entity, str) else "unknown"
    high = doc.get("high_assurance") is True
    kind = _KINDS.get(entity)
    if kind == "mapped" and high:
        kind = "high_assurance_mapped"
    host = doc.get("host_path")
    host = host if isinstance(host, str) and host.startswith("/") and len(host) < 4096 \
        and not re.search(r"[\x00-\x1f\x7f]", host) else None
    return CollectionFacts(entity, high, _clip(doc.get("display_name") or doc.get("id") or ""),
                           kind, host)


def _not_a_collection(facts: CollectionFacts, collection_id: object) -> str | None:
    if facts.entity_type in ("GCSv5_endpoint", "GCSv4_host"):
        return (f"{collection_id} is a Globus Connect Server endpoint, not a collection: "
                "use the id of one of its collections (the Globus web app lists them)")
    return None


# --- presets add: the kind and the working directory, read from Globus --------------------

@dataclass
class Prepared:
    """A new preset's fields after Globus was asked, and what to tell the user."""

    fields: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    facts: CollectionFacts | None = None
    found: str | None = None  # the working directory found (the user confirms it)
    tried: list[str] = field(default_factory=list)  # "path (why not)" for each candidate


_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def _logged_in_transfer(collection_id: UUID | str
                        ) -> tuple[globus_sdk.TransferClient | None, Mapping[str, Any] | None,
                                   str | None]:
    """(client, collection document, None) when logged in; else (None, None, why not)."""
    from . import auth

    try:
        with auth.translate_auth_errors():
            client = auth.transfer_client()
            return client, client.get_endpoint(collection_id).data, None
    except globus_sdk.GlobusAPIError as err:
        if err.http_status == 404:
            raise UsageError(f"collection {collection_id} is not known to Globus: check "
                             "--collection") from None
        return None, None, _api_reason(err)
    except BraasError as err:  # not logged in, the login expired, Globus unreachable
        return None, None, str(err)


def _globus_user() -> str | None:
    """The logged-in Globus identity's username before '@', if it looks like a user name."""
    from . import auth

    try:
        name = str((auth.whoami().get("identity") or {}).get("username") or "")
    except Exception:  # noqa: BLE001 - no name: the {user} roots are left out
        return None
    name = name.split("@", 1)[0]
    return name if _USER.fullmatch(name) else None


def prepare_preset(home: Path, fields: dict[str, Any], *, user: str | None = None,
                   name_needed: bool = True) -> Prepared:
    """Check a new preset's fields, then ask Globus what it can (when logged in): the
    collection's kind (it wins over ``mapped_collection``), and, when ``remote_dir`` is
    empty, the first catalog scratch folder that lists. Nothing is written. UsageError
    (exit 2) for bad input, or when no working directory can be found."""
    fields = {**fields, "remote_dir": fields.get("remote_dir") or None}
    if user is not None and not _USER.fullmatch(user):
        raise UsageError(f"user: {user[:80]!r} does not look like a user name at a centre")
    checked = check_new_preset(home, name_needed=name_needed, **fields)
    said_guest = fields.get("mapped_collection") is False
    prepared = Prepared(fields)
    client, doc, why_not = _logged_in_transfer(checked.collection_id)
    if doc is None:
        prepared.notes.append(
            f"the collection's kind was not read from Globus ({why_not}); it is taken as "
            f"{'a guest' if said_guest else 'a mapped'} collection: `braas-globus presets "
            f"test {checked.name}` checks it")
    else:
        facts = prepared.facts = collection_facts(doc)
        wrong = _not_a_collection(facts, checked.collection_id)
        if wrong:
            raise UsageError(wrong)
        if facts.kind is not None:
            fields["collection_kind"] = facts.kind
            fields["mapped_collection"] = facts.needs_data_access
        prepared.notes.append(f"the centre's collection '{facts.display_name}' is "
                              f"{facts.words}, as Globus says")
        if said_guest and facts.kind not in (None, "guest"):
            prepared.notes.append("--guest-collection does not fit what Globus says: "
                                  "Globus wins")
        if facts.host_path and facts.kind == "guest" and not fields.get("worker_dir"):
            prepared.notes.append(
                f"this guest collection's root is {facts.host_path} on its host collection: "
                "if that is where the centre's nodes see it, pass --worker-dir with the "
                "working directory under it (`presets test` proves it)")
    if not fields["remote_dir"]:
        _find_working_dir(prepared, checked, client, user)
        return prepared
    if is_home_relative(fields["remote_dir"]) and not fields.get("worker_dir"):
        prepared.notes.append(
            f"{fields['remote_dir']} is relative to your home on the collection: renders need "
            f"--worker-dir; `braas-globus presets test {checked.name}` finds it")
    return prepared


def _find_working_dir(prepared: Prepared, preset: ClusterPreset,
                      client: globus_sdk.TransferClient | None, user: str | None) -> None:
    """As the original's "Find Working Dirs": the catalog's scratch roots for this cluster,
    {project} and {user} filled in, tried by Transfer in order; the first that lists wins."""
    from . import auth
    from .catalog import load_catalog

    cluster = load_catalog().get(preset.cluster)
    if user is None and client is not None and any("{user}" in r for r in cluster.scratch):
        user = _globus_user()
    candidates, left = cluster.scratch_dirs(preset.account, user)
    unfit = [f"{root} (the centre's variable: `echo {root}` on a login node)" if "$" in root
             else f"{root} ({{user}} unknown: pass --user)" for root in left]
    if client is None:
        tried = ", ".join(candidates + unfit) or "none"
        raise UsageError(f"no working directory given, and without a Globus login none can be "
                         f"looked for (candidates: {tried}): pass --remote-dir")
    for path in candidates:
        try:
            with auth.translate_auth_errors():
                client.operation_ls(preset.collection_id, path=path, limit=1)
        except globus_sdk.GlobusAPIError as err:
            why = {404: "not found", 403: "permission denied"}.get(err.http_status) \
                or f"{err.http_status} {_clip(err.code, 60)}"
            prepared.tried.append(f"{path} ({why})")
            continue
        prepared.found = path
        prepared.fields["remote_dir"] = path
        return
    tried = ", ".join(prepared.tried + unfit) or "none"
    raise UsageError(f"no working directory found on {cluster.title}'s collection (tried: "
                     f"{tried}): pass --remote-dir")
