"""Globus Auth for braas-globus: one login covers Transfer, Compute and the centres' collections.

The whole program shares one globus-sdk ``UserApp`` (:func:`get_app`). It is a *native app*
(no client secret), asks for refresh tokens, and keeps them in ``BRAAS_HOME/globus/tokens.json``.

Client id
    ``BRAAS_GLOBUS_CLIENT_ID`` (environment), else the ``globus_client_id`` setting in
    ``config.toml`` (once settings.py knows it), else :data:`DEFAULT_CLIENT_ID`, the project's
    own native app registered at https://app.globus.org/settings/developers (to be filled in;
    until then one of the first two is required).

Token file
    ``BRAAS_HOME/globus/tokens.json``: mode 0600 in a 0700 folder, written atomically (a
    private temporary file, then a rename) and its mode checked after every write. A token
    file that other users can read or change, or that belongs to someone else, is refused:
    the tokens in it may have been copied, so the message says to revoke them with
    ``braas-globus logout``. (On Windows the file lies in the user's own profile and modes are
    not checked.) The file has the shape of globus-sdk's ``JSONTokenStorage`` (format 2.0),
    one namespace per client id.

Login
    In a web browser with a redirect to a server on localhost (``local-server``) where a
    browser can open; else, or with ``no_browser``, an address to open anywhere and a code to
    paste into the terminal (``command-line``). Only :func:`login` opens a browser or prompts:
    anything else that finds the login missing, expired or revoked gets a :class:`LoginNeeded`
    (a :class:`~braas_globus.errors.RunError`) that says to run ``braas-globus login``.

Requirements Globus states
    A service may answer that the login lacks something it can name: a consent (Transfer's
    403 ``ConsentRequired`` with ``required_scopes``, for a mapped collection's data_access)
    or a session (a Globus Auth Requirements Error with ``authorization_parameters``: an
    identity from a domain, MFA, a policy; Transfer sends one in a 502
    ``ExternalError.DirListingFailed.LoginFailed``). :func:`login_needed_from` turns such an
    answer into a one-line :class:`LoginNeeded` and records the requirement in
    ``BRAAS_HOME/globus/requirements.json`` (``auth_requirements.py``; private like the
    token file); the next :func:`login` asks Globus for exactly that, and removes the file
    once it is satisfied.

Tokens are never printed or logged: globus-sdk logs nothing at INFO, the one DEBUG line that
would show an id_token is switched off, and the local redirect server does not write its
request lines (which hold the authorization code) to stderr.

The app is not thread safe (globus-sdk says so): use it from one thread at a time.

This module builds the app and holds what the commands do with it (login, whoami, logout,
the Transfer and Compute clients). Its parts: ``auth_app.py`` (client id, scopes, token
path, the app class), ``auth_flows.py`` (the login flows), ``auth_errors.py`` (Globus
answers into :class:`LoginNeeded`), ``auth_tokens.py`` (the token file) and
``auth_requirements.py``. Import any of it from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import globus_sdk
from globus_sdk import (
    AuthClient,
    GlobusAPIError,
    GlobusAppConfig,
    IDTokenDecoder,
    NativeAppAuthClient,
    TransferClient,
)
from globus_sdk.login_flows import LocalServerLoginError
from globus_sdk.scopes import GCSCollectionScopes, TransferScopes
from globus_sdk.token_storage import TokenStorageData
from globus_sdk.token_storage.validating_token_storage import IdentityMismatchError

from .auth_app import (
    CLIENT_ID_VARIABLE,
    DEFAULT_CLIENT_ID,
    BraasApp,
    base_scopes,
    client_id,
    quiet_token_logging,
    refuse_silent_login,
    token_path,
)
from .auth_errors import EXPIRED, NOT_LOGGED_IN, login_needed_from, translate_auth_errors
from .auth_flows import (
    APP_NAME,
    BrowserLogin,
    LoginFlows,
    Notify,
    TerminalLogin,
    browser_unavailable,
    notify_stderr,
)
from .auth_requirements import (
    current_requirements_path,
    describe_requirement,
    login_parameters,
    one_login,
    read_requirements,
    requirements_path,
    same_requirement,
    write_requirements,
)
from .auth_tokens import PrivateTokenFile, make_private
from .errors import LoginNeeded, RunError, UsageError
from .settings import load_settings

if TYPE_CHECKING:
    from globus_compute_sdk import Client as ComputeClient

# What other modules import from here: the commands below, and the parts they are made of.
__all__ = [
    "APP_NAME", "CLIENT_ID_VARIABLE", "DEFAULT_CLIENT_ID", "EXPIRED", "NOT_LOGGED_IN",
    "BraasApp", "BrowserLogin", "IDTokenDecoder", "LoginFlows", "LoginNeeded", "Notify",
    "TerminalLogin", "add_collection_scopes", "base_scopes", "browser_unavailable",
    "build_app", "client_id", "compute_client", "get_app", "login", "login_needed_from",
    "logout", "token_path", "transfer_client", "translate_auth_errors", "whoami",
]


# --- the program's app -----------------------------------------------------------------------

def build_app(home: Path, *, client: str, environment: str | None = None,
              id_token_decoder: IDTokenDecoder | None = None) -> BraasApp:
    """A new app for this home folder and client id (tests pass a fake id_token decoder)."""
    quiet_token_logging()
    environment = environment or globus_sdk.config.get_environment_name()
    login_client = NativeAppAuthClient(client_id=client, app_name=APP_NAME,
                                       environment=environment)
    # IDTokenDecoder is looked up in this module, where the tests put a fake one
    decoder = id_token_decoder or IDTokenDecoder(login_client)
    storage = PrivateTokenFile(token_path(home, environment), namespace=client)
    flows = LoginFlows(login_client, id_token_decoder=decoder)
    config = GlobusAppConfig(login_flow_manager=flows, token_storage=storage,
                             request_refresh_tokens=True, id_token_decoder=decoder,
                             token_validation_error_handler=refuse_silent_login,
                             environment=environment)
    return BraasApp(login_client=login_client, storage=storage, flows=flows, config=config,
                    scope_requirements=base_scopes())


_apps: dict[tuple[Path, str, str], BraasApp] = {}


def get_app() -> BraasApp:
    """The program's one app (one per home folder, client id and Globus environment)."""
    home = load_settings().home
    key = (home, client_id(), globus_sdk.config.get_environment_name())
    if key not in _apps:
        _apps[key] = build_app(home, client=key[1], environment=key[2])
    return _apps[key]


def _forget_app(app: BraasApp) -> None:
    for key, known in list(_apps.items()):
        if known is app:
            del _apps[key]
    app.close()


# --- what the commands do --------------------------------------------------------------------

def add_collection_scopes(collection_ids: Iterable[str | uuid.UUID]) -> list[str]:
    """Ask the next login for access to these GCS mapped collections (data_access consents).

    Pass only the collections that need one: Globus Connect Server v5 *mapped* collections
    that are not high assurance. The callers decide (they know each collection's kind); this
    function adds a data_access scope for every id it is given. A high-assurance mapped
    collection, a guest collection and a Globus Connect Personal collection have no
    data_access scope: Globus answers "Unknown Scope" and the whole login fails.
    Returns the collection ids, normalised.
    """
    ids = []
    for value in collection_ids:
        try:
            ids.append(str(uuid.UUID(str(value))))
        except ValueError:
            raise UsageError(f"Globus collection id {str(value)!r} is not a UUID") from None
    if ids:
        dependencies = [GCSCollectionScopes(cid).data_access.with_optional(True) for cid in ids]
        get_app().add_scope_requirements(
            {TransferScopes.resource_server: [TransferScopes.all.with_dependencies(dependencies)]})
    return ids


def _token_summary(app: BraasApp, stored: Mapping[str, TokenStorageData]) -> dict[str, Any]:
    """Which services have tokens, until when, and what the login lacks: never the tokens."""
    servers = {
        server: {"scopes": data.scope.split(),
                 "access_expires": datetime.fromtimestamp(data.expires_at_seconds, timezone.utc)
                 .isoformat(timespec="seconds"),
                 "refreshable": data.refresh_token is not None}
        for server, data in sorted(stored.items())}
    missing = []
    for server, scopes in app.scope_requirements.items():
        granted = set(stored[server].scope.split()) if server in stored else set()
        if any(scope.scope_string not in granted for scope in scopes):
            missing.append(server)
    return {"resource_servers": servers, "missing": sorted(missing),
            "token_file": str(app.storage.path)}


def login(no_browser: bool = False, force: bool = False, *,
          collection_ids: Iterable[str | uuid.UUID] = (), notify: Notify | None = None
          ) -> dict[str, Any]:
    """Log in to Globus unless the saved login still works (``force``: log in anyway).

    Requirements Globus stated since the last login (``requirements.json``, recorded by
    :func:`login_needed_from`) are satisfied: their scopes are asked for, their session
    parameters passed to the login flow, and one ``notify`` line says what the login is for.
    Requirements that cannot share a login (two different identity domains) wait for the
    next one. Returns who logged in and which services have tokens, ``"logged_in"``:
    ``"now"`` or ``"already"``, and ``"requirements_satisfied"`` and ``"requirements_left"``
    (how many).
    """
    app = get_app()
    notify = notify or notify_stderr
    add_collection_scopes(collection_ids)
    path = current_requirements_path()
    pending = read_requirements(path)
    now, later = one_login(pending)
    if not force and not now:
        with translate_auth_errors():
            required = app.login_required()
        if not required:
            try:
                return {"logged_in": "already", **whoami(), "requirements_satisfied": 0,
                        "requirements_left": 0}
            except LoginNeeded:
                pass  # revoked at Globus, or expired: log in again
    auth_params = login_parameters(app, now)
    if now:
        notify("as Globus asked, logging in "
               + "; and ".join(describe_requirement(requirement) for requirement in now))
    flows = app.flows
    flows.allowed, flows.no_browser, flows.notify = True, no_browser, notify
    try:
        app.login(auth_params=auth_params, force=True)
    except IdentityMismatchError:
        raise LoginNeeded("you logged in as another Globus identity than the saved one: run "
                          "`braas-globus logout` first to switch identities") from None
    except LocalServerLoginError as err:
        raise RunError(f"the browser login failed ({err}): try `braas-globus login "
                       "--no-browser`") from None
    except GlobusAPIError as err:
        body = err.raw_json if isinstance(err.raw_json, dict) else {}
        detail = body.get("error_description") or body.get("error") or err.http_status
        raise RunError(f"Globus refused the login ({detail}): run `braas-globus login` "
                       "again") from None
    except globus_sdk.NetworkError as err:
        raise RunError(f"cannot reach Globus ({type(err).__name__}): check the network "
                       "connection and try again") from None
    finally:
        flows.allowed, flows.no_browser, flows.notify = False, False, notify_stderr
    claims, flows.identity = flows.identity, {}
    # what this login satisfied goes; what a service recorded meanwhile stays
    done = {same_requirement(requirement) for requirement in now}
    try:
        left = [r for r in read_requirements(path) if same_requirement(r) not in done]
    except RunError:  # made public meanwhile: not to be trusted, and replaced by nothing
        left = []
    write_requirements(path, left)
    return {"logged_in": "now",
            "identity": {"id": claims.get("sub"), "username": claims.get("preferred_username"),
                         "name": claims.get("name"), "email": claims.get("email")},
            **_token_summary(app, app.storage.get_token_data_by_resource_server()),
            "requirements_satisfied": len(now), "requirements_left": len(left)}


def whoami() -> dict[str, Any]:
    """Who is logged in (asked of Globus Auth), and which services have tokens."""
    app = get_app()
    stored = app.storage.get_token_data_by_resource_server()
    if not stored:
        raise LoginNeeded(NOT_LOGGED_IN)
    with translate_auth_errors():
        info = app.client("auth", lambda: AuthClient(app=app)).userinfo()
    return {"identity": {"id": info.get("sub"), "username": info.get("preferred_username"),
                         "name": info.get("name"), "email": info.get("email")},
            **_token_summary(app, stored)}


def logout() -> dict[str, Any]:
    """Revoke every saved token at Globus, then delete them here (also when revoking fails).

    ``not_revoked`` names the services whose tokens Globus could not be told about; they were
    deleted here all the same. A token file that others could read is made private first:
    its tokens are exactly the ones to revoke.
    """
    exposed = make_private(token_path(load_settings().home,
                                      globus_sdk.config.get_environment_name()))
    app = get_app()
    stored = app.storage.get_token_data_by_resource_server()
    revoked, not_revoked = 0, set[str]()
    for data in stored.values():
        for token in (data.access_token, data.refresh_token):
            if token is None:
                continue
            if not_revoked:  # Globus is down or refusing: don't wait on each token in turn
                not_revoked.add(data.resource_server)
                continue
            try:
                app.login_client.oauth2_revoke_token(token)
                revoked += 1
            except (GlobusAPIError, globus_sdk.NetworkError):
                not_revoked.add(data.resource_server)
    app.storage.clear()
    # what Globus asked of this identity's login is no business of the next one's
    requirements_path(load_settings().home, globus_sdk.config.get_environment_name()
                      ).unlink(missing_ok=True)
    from .dispatch.functions import functions_record

    # Registered by this identity, private to it: the next login registers its own.
    functions_record(load_settings().home).unlink(missing_ok=True)
    _forget_app(app)
    return {"was_logged_in": bool(stored), "resource_servers": sorted(stored),
            "tokens_revoked": revoked, "not_revoked": sorted(not_revoked),
            "file_was_exposed": exposed, "token_file": str(app.storage.path)}


def transfer_client() -> TransferClient:
    """The Transfer client of the program's app (wrap calls in :func:`translate_auth_errors`)."""
    app = get_app()
    return app.client("transfer", lambda: TransferClient(app=app))


def compute_client() -> ComputeClient:
    """A ``globus_compute_sdk.Client`` on the program's app.

    No version check on creation (it is a network call): call ``client.version_check()``
    where the dispatcher first talks to Compute.
    """
    from globus_compute_sdk import Client

    app = get_app()
    return app.client("compute", lambda: Client(app=app, do_version_check=False))

