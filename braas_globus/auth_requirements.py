"""Requirements Globus stated (a consent, a session), kept for the next ``braas-globus login``.

A Globus answer that only a login can mend names what it needs (``authorization_parameters``:
required scopes, an identity from a domain, MFA, a policy). ``auth.login_needed_from`` turns
it into a one-line :class:`LoginNeeded` and records it here, in
``BRAAS_HOME/globus/requirements.json`` (mode 0600 in the 0700 folder, bounded, one entry
per requirement); ``auth.login`` asks Globus for what is recorded and forgets it once met.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import globus_sdk
from globus_sdk.gare import GlobusAuthorizationParameters
from globus_sdk.scopes import AuthScopes, ComputeScopes, Scope, ScopeParser, TransferScopes

from .auth_tokens import _private_folder
from .disk import write_atomically
from .errors import LoginNeeded, RunError
from .settings import load_settings

if TYPE_CHECKING:
    from globus_sdk import UserApp

LOGIN = "run `braas-globus login`"

_LISTS = ("required_scopes", "session_required_identities", "session_required_single_domain",
          "session_required_policies")
#: Bounds on what a remote answer can make us keep (and print).
_MAX_KEPT, _MAX_ITEMS, _MAX_ITEM, _MAX_MESSAGE = 16, 32, 1024, 300
_DATA_ACCESS = re.compile(r"https://auth\.globus\.org/scopes/([0-9a-fA-F-]{36})/data_access")


def requirements_path(home: Path, environment: str) -> Path:
    name = "requirements.json" if environment == "production" else \
        f"requirements-{environment}.json"
    return home / "globus" / name


def current_requirements_path() -> Path:
    return requirements_path(load_settings().home, globus_sdk.config.get_environment_name())


def _text(value: Any, limit: int) -> str | None:
    """One line of printable text, at most ``limit`` characters, or None."""
    if not isinstance(value, str):
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in value[:4 * limit]).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text or None


def _requirement(code: Any, params: Any) -> dict[str, Any]:
    """A requirement as kept: its code and its authorization parameters, bounded and clean
    (Globus's answer is remote input); empty lists and false flags left out."""
    if isinstance(params, GlobusAuthorizationParameters):
        params = params.to_dict()
    params = params if isinstance(params, dict) else {}
    kept: dict[str, Any] = {}
    for name in _LISTS:
        values = params.get(name)
        if isinstance(values, str):  # the legacy comma-separated form
            values = values.split(",")
        items: list[str] = []
        for value in values[:_MAX_ITEMS] if isinstance(values, list) else ():
            item = _text(value, _MAX_ITEM)
            if item and item not in items:
                items.append(item)
        if items:
            kept[name] = items
    if params.get("session_required_mfa") is True:
        kept["session_required_mfa"] = True
    if params.get("prompt") == "login":
        kept["prompt"] = "login"
    message = _text(params.get("session_message"), _MAX_MESSAGE)
    if message:
        kept["session_message"] = message
    return {"code": _text(code, 100) or "AuthorizationRequired", "authorization_parameters": kept}


def same_requirement(requirement: dict[str, Any]) -> str:
    """What makes two requirements the same one: the parameters, not the words."""
    params = dict(requirement["authorization_parameters"])
    params.pop("session_message", None)
    return json.dumps(params, sort_keys=True)


def _collections_in(scopes: Iterable[str]) -> list[str]:
    found: list[str] = []
    for scope in scopes:
        for cid in _DATA_ACCESS.findall(scope):
            if cid.lower() not in found:
                found.append(cid.lower())
    return found


def _wants(requirement: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What a requirement asks, in words: (how to log in, what to consent to)."""
    params = requirement["authorization_parameters"]
    session: list[str] = []
    if params.get("session_required_single_domain"):
        session.append("with an identity from "
                       + " or ".join(params["session_required_single_domain"][:3]))
    if params.get("session_required_identities"):
        ids = params["session_required_identities"]
        session.append(f"with the identit{'y' if len(ids) == 1 else 'ies'} "
                       + ", ".join(ids[:3]))
    if params.get("session_required_mfa"):
        session.append("with multi-factor authentication")
    if params.get("session_required_policies"):
        session.append("as the collection's authentication policy requires")
    consent: list[str] = []
    scopes = params.get("required_scopes", [])
    collections = _collections_in(scopes)
    if collections:
        consent.append(f"to access collection{'s' if len(collections) > 1 else ''} "
                       + ", ".join(collections[:3]))
    elif scopes or requirement["code"] == "ConsentRequired":
        consent.append("for more access")
    return session, consent


def describe_requirement(requirement: dict[str, Any]) -> str:
    """A requirement in a few words, with Globus's own message where it gave one."""
    session, consent = _wants(requirement)
    parts = [", ".join(session)] if session else []
    parts += [f"for your consent {c}" if c.startswith("to ") else "for more consent"
              for c in consent]
    text = " and ".join(parts) or "again"
    message = requirement["authorization_parameters"].get("session_message")
    return f"{text} ({message})" if message else text


def _needed_message(requirement: dict[str, Any]) -> str:
    session, consent = _wants(requirement)
    if session:
        head = "Globus needs you to log in again " + ", ".join(session)
        if consent:
            head += f", and your consent {', '.join(consent)}"
    elif consent:
        head = f"Globus needs your consent {', '.join(consent)}"
    else:
        head = "Globus needs you to log in again"
    message = requirement["authorization_parameters"].get("session_message")
    return f"{head}{f' ({message})' if message else ''}: {LOGIN}"


def requirement_needed(code: Any, params: Any) -> LoginNeeded:
    """The LoginNeeded for a requirement, recorded for the next login where that can be."""
    requirement = _requirement(code, params)
    with contextlib.suppress(Exception):  # unrecorded, `login` still logs in afresh
        _record_requirement(requirement)
    return LoginNeeded(_needed_message(requirement))


def _record_requirement(requirement: dict[str, Any]) -> None:
    path = current_requirements_path()
    try:
        kept = read_requirements(path)
    except RunError:
        kept = []  # not ours, or others could change it: replaced by a private one
    key = same_requirement(requirement)
    kept = [old for old in kept if same_requirement(old) != key] + [requirement]
    write_requirements(path, kept[-_MAX_KEPT:])


def _not_private(path: Path, info: os.stat_result) -> str | None:
    if os.name == "nt":
        return None
    if info.st_uid != os.getuid():
        return f"belongs to another user (uid {info.st_uid})"
    mode = stat.S_IMODE(info.st_mode)
    return f"can be read or changed by other users (mode {mode:04o})" if mode & 0o077 else None


def read_requirements(path: Path) -> list[dict[str, Any]]:
    """The recorded requirements (cleaned again on reading); [] when there are none."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return []
    except OSError as err:  # ELOOP: a symbolic link
        raise RunError(f"{path}: cannot open it ({err.strerror}): remove it, then "
                       f"{LOGIN}") from None
    with os.fdopen(fd, "rb") as file:
        why = _not_private(path, os.fstat(file.fileno()))
        if why:
            raise RunError(f"{path} {why}, so braas-globus will not use it: remove it, then "
                           f"{LOGIN}")
        raw = file.read(1 << 20)
    try:
        content = json.loads(raw)
    except ValueError:
        content = None
    entries = content.get("requirements") if isinstance(content, dict) else None
    if not isinstance(entries, list):
        raise RunError(f"{path} is not a file braas-globus wrote: remove it, then {LOGIN}")
    kept = [_requirement(entry.get("code"), entry.get("authorization_parameters"))
            for entry in entries[-_MAX_KEPT:] if isinstance(entry, dict)]
    return kept


def write_requirements(path: Path, requirements: list[dict[str, Any]]) -> None:
    """Mode 0600 in the 0700 folder, written whole or not at all; none left: no file."""
    if not requirements:
        path.unlink(missing_ok=True)
        return
    _private_folder(path.parent)
    text = json.dumps({"format_version": 1, "requirements": requirements}, indent=1)

    def write(partial: Path) -> None:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                     getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            if os.name != "nt":
                os.fchmod(file.fileno(), 0o600)
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())

    write_atomically(path, write)


def pending_requirements() -> list[dict[str, Any]]:
    """The requirements recorded for the next login (``code`` and
    ``authorization_parameters`` each), oldest first."""
    return read_requirements(current_requirements_path())


def one_login(requirements: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                            list[dict[str, Any]]]:
    """The requirements one login can satisfy together, and the rest (for another login).

    Scopes and policies add up ("and"); a domain or identity list means "one of these", so
    two different ones cannot go in one login (globus-sdk's guide on coalescing GAREs).
    """
    now: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    chosen: dict[str, list[str]] = {}
    for requirement in requirements:
        params = requirement["authorization_parameters"]
        fits = all(params.get(name) is None or chosen.get(name, params[name]) == params[name]
                   for name in ("session_required_single_domain", "session_required_identities"))
        if not fits:
            later.append(requirement)
            continue
        for name in ("session_required_single_domain", "session_required_identities"):
            if params.get(name):
                chosen[name] = params[name]
        now.append(requirement)
    return now, later


def login_parameters(app: UserApp, requirements: list[dict[str, Any]]
                      ) -> GlobusAuthorizationParameters | None:
    """Add the requirements' scopes to the app's scope requirements (a collection's
    data_access as a dependency of Transfer's scope, like :func:`add_collection_scopes`),
    and gather their session parameters for the login flow."""
    known = {str(TransferScopes.all): TransferScopes.resource_server,
             str(ComputeScopes.all): ComputeScopes.resource_server,
             **{str(scope): AuthScopes.resource_server
                for scope in (AuthScopes.openid, AuthScopes.profile, AuthScopes.email)}}
    by_server: dict[str, list[Scope]] = {}
    others: list[str] = []
    session: dict[str, Any] = {}
    messages: list[str] = []
    for requirement in requirements:
        params = requirement["authorization_parameters"]
        for text in params.get("required_scopes", []):
            try:
                scopes = ScopeParser.parse(text)
            except ValueError:
                continue  # not a scope string: nothing Globus Auth could grant
            for scope in scopes:
                if scope.scope_string in known:
                    by_server.setdefault(known[scope.scope_string], []).append(scope)
                elif _DATA_ACCESS.fullmatch(scope.scope_string):
                    by_server.setdefault(TransferScopes.resource_server, []).append(
                        TransferScopes.all.with_dependency(scope.with_optional(True)))
                else:
                    others.append(str(scope))
        for name in ("session_required_single_domain", "session_required_identities"):
            if params.get(name):
                session[name] = params[name]
        if params.get("session_required_policies"):
            policies = session.setdefault("session_required_policies", [])
            policies += [p for p in params["session_required_policies"] if p not in policies]
        for name in ("session_required_mfa", "prompt"):
            if params.get(name):
                session[name] = params[name]
        if params.get("session_message") and params["session_message"] not in messages:
            messages.append(params["session_message"])
    if by_server:
        app.add_scope_requirements(by_server)
    if messages:
        session["session_message"] = _text("; ".join(messages), 2 * _MAX_MESSAGE)
    if not (session or others):
        return None
    return GlobusAuthorizationParameters(required_scopes=others or None, **session)
