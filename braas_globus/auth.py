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
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import globus_sdk
from globus_sdk import (
    AuthClient,
    GlobusAPIError,
    GlobusAppConfig,
    IDTokenDecoder,
    NativeAppAuthClient,
    OAuthTokenResponse,
    TransferClient,
    UserApp,
)
from globus_sdk.gare import GlobusAuthorizationParameters, to_gare
from globus_sdk.login_flows import (
    CommandLineLoginFlowManager,
    LocalServerEnvironmentalLoginError,
    LocalServerLoginError,
    LocalServerLoginFlowManager,
    LoginFlowManager,
)
from globus_sdk.login_flows.local_server_login_flow_manager.local_server import (
    RedirectHandler,
    RedirectHTTPServer,
)
from globus_sdk.scopes import (
    AuthScopes,
    ComputeScopes,
    GCSCollectionScopes,
    TransferScopes,
)
from globus_sdk.token_storage import TokenStorageData, TokenValidationError
from globus_sdk.token_storage.validating_token_storage import (
    IdentityMismatchError,
    UnmetScopeRequirementsError,
)

from .auth_requirements import (
    LOGIN,
    current_requirements_path,
    describe_requirement,
    login_parameters,
    one_login,
    read_requirements,
    requirement_needed,
    requirements_path,
    same_requirement,
    write_requirements,
)
from .auth_tokens import PrivateTokenFile, make_private
from .errors import LoginNeeded, RunError, UsageError
from .settings import load_settings

#: The project's registered native-app client id (https://app.globus.org/settings/developers).
#: TO BE FILLED IN by the project once the app is registered; until then set
#: ``BRAAS_GLOBUS_CLIENT_ID`` or the ``globus_client_id`` setting.
DEFAULT_CLIENT_ID: str = ""

APP_NAME = "braas-globus"
CLIENT_ID_VARIABLE = "BRAAS_GLOBUS_CLIENT_ID"

EXPIRED = f"your Globus login has expired or was revoked: {LOGIN}"
NOT_LOGGED_IN = f"you are not logged in to Globus: {LOGIN}"

Notify = Callable[[str], None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- login flows -----------------------------------------------------------------------------

class _QuietRedirectHandler(RedirectHandler):
    """globus-sdk's redirect handler, without the request line (it holds the code) on stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class BrowserLogin(LocalServerLoginFlowManager):
    """Log in in a web browser that redirects to a server on localhost."""

    def __init__(self, login_client: NativeAppAuthClient, *, notify: Notify, **options: Any):
        super().__init__(login_client, **options)
        self.notify = notify

    @contextlib.contextmanager
    def background_local_server(self) -> Iterator[RedirectHTTPServer]:
        # globus-sdk's own version neither stops the server when the browser fails to open
        # nor closes its socket; and its handler writes the code to stderr.
        server = RedirectHTTPServer(server_address=self.server_address,
                                    handler_class=_QuietRedirectHandler,
                                    html_template=self.html_template)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()

    def _get_authorize_url(self, auth_parameters: GlobusAuthorizationParameters,
                           redirect_uri: str) -> str:
        url = super()._get_authorize_url(auth_parameters, redirect_uri)
        self.notify(f"opening a web browser to log in to Globus (if none opens, go to {url} )")
        return url


class TerminalLogin(CommandLineLoginFlowManager):
    """Log in at an address opened anywhere, then paste the code it shows (all on stderr)."""

    def __init__(self, login_client: NativeAppAuthClient, *, notify: Notify, **options: Any):
        super().__init__(login_client, **options)
        self.notify = notify

    def print_authorize_url(self, authorize_url: str) -> None:
        self.notify(f"log in to Globus at this address, then paste the code it shows:\n"
                    f"{authorize_url}")

    def prompt_for_code(self) -> str:
        sys.stderr.write("authorization code: ")
        sys.stderr.flush()
        try:
            code = input().strip()
        except EOFError:
            raise RunError("no authorization code was entered (is this a terminal?): "
                           "run `braas-globus login` in a terminal") from None
        if not code:
            raise RunError("no authorization code was entered: run `braas-globus login` again")
        return code


def browser_unavailable() -> str | None:
    """Why a browser login cannot work here, or None when it may."""
    if os.environ.get("SSH_TTY") or os.environ.get("SSH_CONNECTION"):
        return "this is an SSH session"
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no graphical display"
    return None


class LoginFlows(LoginFlowManager):
    """The browser where one can open, else the terminal; and only when :func:`login` asks.

    globus-sdk runs a login flow by itself whenever a service asks for more consent (the
    Compute client does so); braas-globus refuses that and says to log in instead, so that no
    command but ``login`` opens a browser or waits for input.
    """

    def __init__(self, login_client: NativeAppAuthClient, *, id_token_decoder: IDTokenDecoder):
        prefill = f"{APP_NAME} on {socket.gethostname()}"
        options: dict[str, Any] = {"request_refresh_tokens": True,
                                   "native_prefill_named_grant": prefill}
        super().__init__(login_client, **options)
        self.id_token_decoder = id_token_decoder
        self.browser = BrowserLogin(login_client, notify=self._notify, **options)
        self.terminal = TerminalLogin(login_client, notify=self._notify, **options)
        self.notify: Notify = _stderr
        self.allowed = False
        self.no_browser = False
        self.identity: dict[str, Any] = {}

    def _notify(self, text: str) -> None:
        self.notify(text)

    def run_login_flow(self, auth_parameters: GlobusAuthorizationParameters
                       ) -> OAuthTokenResponse:
        if not self.allowed:
            why = f" ({auth_parameters.session_message})" if auth_parameters.session_message \
                else ""
            raise LoginNeeded(f"Globus asks you to log in again{why}: {LOGIN}")
        response = self._run(auth_parameters)
        id_token = response.get("id_token")
        claims = self.id_token_decoder.decode(id_token) if id_token else {}
        self.identity = {key: claims.get(key) for key in ("sub", "preferred_username", "name",
                                                          "email")}
        return response

    def _run(self, auth_parameters: GlobusAuthorizationParameters) -> OAuthTokenResponse:
        reason = None if self.no_browser else browser_unavailable()
        if not self.no_browser and reason is None:
            try:
                return self.browser.run_login_flow(auth_parameters)
            except LocalServerEnvironmentalLoginError as err:
                reason = str(err)
        if reason is not None:
            self.notify(f"no browser login here ({reason})")
        return self.terminal.run_login_flow(auth_parameters)


# --- the app ---------------------------------------------------------------------------------

class BraasApp(UserApp):
    """The program's one UserApp, with the parts braas-globus drives itself."""

    def __init__(self, *, login_client: NativeAppAuthClient, storage: PrivateTokenFile,
                 flows: LoginFlows, config: GlobusAppConfig,
                 scope_requirements: Mapping[str, Any]) -> None:
        self.login_client = login_client
        self.storage = storage
        self.flows = flows
        self._clients: dict[str, Any] = {}
        super().__init__(APP_NAME, login_client=login_client,
                         scope_requirements=scope_requirements, config=config)

    def _run_login_flow(self, auth_params: GlobusAuthorizationParameters | None = None
                        ) -> None:
        # globus-compute-sdk answers a GARE with app.login(auth_params=...): outside
        # `braas-globus login`, record what it asks for and say what to run instead.
        if auth_params is not None and not self.flows.allowed:
            raise requirement_needed("AuthorizationRequired", auth_params)
        super()._run_login_flow(auth_params)

    def client(self, kind: str, make: Callable[[], Any]) -> Any:
        """One client of each kind per app (each new client adds its scopes to the app)."""
        if kind not in self._clients:
            self._clients[kind] = make()
        return self._clients[kind]


def _refuse_silent_login(app: globus_sdk.GlobusApp, error: TokenValidationError) -> None:
    """globus-sdk's token_validation_error_handler: say what to do instead of logging in."""
    raise _login_needed(error, app) from None


def _login_needed(error: TokenValidationError, app: globus_sdk.GlobusApp | None) -> LoginNeeded:
    if isinstance(error, IdentityMismatchError):
        return LoginNeeded("this login is for another Globus identity than the saved one: run "
                           "`braas-globus logout`, then `braas-globus login`")
    if isinstance(app, BraasApp) and not app.storage.get_token_data_by_resource_server():
        return LoginNeeded(NOT_LOGGED_IN)
    if isinstance(error, UnmetScopeRequirementsError):
        return LoginNeeded("your Globus login does not cover all that braas-globus needs now "
                           f"(a centre's collections, perhaps): {LOGIN}")
    return LoginNeeded(EXPIRED)


def client_id() -> str:
    """The native-app client id: the environment, else the settings, else the project's own."""
    configured = os.environ.get(CLIENT_ID_VARIABLE) or \
        getattr(load_settings(), "globus_client_id", None) or DEFAULT_CLIENT_ID
    if not configured:
        raise RunError(f"no Globus client id is configured: set {CLIENT_ID_VARIABLE} (or "
                       "`globus_client_id` in config.toml) to a native app's client id from "
                       "https://app.globus.org/settings/developers")
    try:
        return str(uuid.UUID(configured))
    except ValueError:
        raise UsageError(f"Globus client id {configured!r} is not a UUID") from None


def base_scopes() -> dict[str, list[Any]]:
    """What one login asks for: who you are, Transfer, and Compute."""
    return {
        AuthScopes.resource_server: [AuthScopes.openid, AuthScopes.profile, AuthScopes.email],
        TransferScopes.resource_server: [TransferScopes.all],
        ComputeScopes.resource_server: [ComputeScopes.all],
    }


def token_path(home: Path, environment: str) -> Path:
    name = "tokens.json" if environment == "production" else f"tokens-{environment}.json"
    return home / "globus" / name


def build_app(home: Path, *, client: str, environment: str | None = None,
              id_token_decoder: IDTokenDecoder | None = None) -> BraasApp:
    """A new app for this home folder and client id (tests pass a fake id_token decoder)."""
    _quiet_token_logging()
    environment = environment or globus_sdk.config.get_environment_name()
    login_client = NativeAppAuthClient(client_id=client, app_name=APP_NAME,
                                       environment=environment)
    decoder = id_token_decoder or IDTokenDecoder(login_client)
    storage = PrivateTokenFile(token_path(home, environment), namespace=client)
    flows = LoginFlows(login_client, id_token_decoder=decoder)
    config = GlobusAppConfig(login_flow_manager=flows, token_storage=storage,
                             request_refresh_tokens=True, id_token_decoder=decoder,
                             token_validation_error_handler=_refuse_silent_login,
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


def _quiet_token_logging() -> None:
    # globus-sdk never logs at INFO; at DEBUG this one logger prints a whole id_token.
    logging.getLogger("globus_sdk.services.auth.response.oauth").setLevel(logging.INFO)


# --- errors ----------------------------------------------------------------------------------

def _is_invalid_grant(err: GlobusAPIError) -> bool:
    # Globus Auth answers a refused refresh token with {"error": "invalid_grant"} (400 or
    # 401); globus-sdk 4.10 leaves err.code None for that body, so read the body itself.
    body = err.raw_json if isinstance(err.raw_json, dict) else {}
    return body.get("error") == "invalid_grant" or err.code == "invalid_grant"


def login_needed_from(err: BaseException) -> LoginNeeded | None:
    """The :class:`LoginNeeded` for a Globus answer that only a login can mend, else None.

    An expired or revoked login (401, ``invalid_grant``, a token the saved login lacks); a
    consent or session requirement (403 ``ConsentRequired``, or any answer globus-sdk reads
    as a Globus Auth Requirements Error, a Transfer 502 ``LoginFailed`` among them). A
    requirement is recorded for the next ``braas-globus login`` (``requirements.json``).
    The message is one line that names the command to run. Looks along ``__cause__`` (not
    past an error of ours); cheap, and never raises: any other exception gives None.
    """
    try:
        seen: BaseException | None = err
        for _ in range(5):
            if seen is None or (isinstance(seen, RunError) and not isinstance(seen, LoginNeeded)):
                return None
            if isinstance(seen, LoginNeeded):
                return seen
            if isinstance(seen, TokenValidationError):
                return _login_needed(seen, None)
            if isinstance(seen, GlobusAPIError):
                return _api_login_needed(seen)
            seen = seen.__cause__
    except Exception:  # noqa: BLE001 - whatever the error holds, the caller gets None
        return None
    return None


def _api_login_needed(err: GlobusAPIError) -> LoginNeeded | None:
    if err.http_status == 401 or _is_invalid_grant(err):
        return LoginNeeded(EXPIRED)
    gare = _gare_in(err)
    if gare is not None:
        return requirement_needed(gare.code, gare.authorization_parameters)
    if err.http_status == 403 and err.code == "ConsentRequired":  # no scopes named
        return requirement_needed("ConsentRequired", GlobusAuthorizationParameters())
    return None


#: A GridFTP (GCSv5) refusal that Transfer passes on in a 502's message, with the JSON
#: result (and its authorization_parameters) inside the text.
_GRIDFTP_RESULT = "GridFTP-JSON-Result:"


def _gare_in(err: GlobusAPIError) -> Any:
    try:
        gare = to_gare(err)
    except Exception:  # noqa: BLE001 - a document globus-sdk cannot read is no requirement
        gare = None
    if gare is not None:
        return gare
    body = err.raw_json if isinstance(err.raw_json, dict) else {}
    message = body.get("message")
    if not isinstance(message, str) or len(message) > 65536 or _GRIDFTP_RESULT not in message:
        return None
    at = message.index(_GRIDFTP_RESULT) + len(_GRIDFTP_RESULT)
    while at < len(message) and message[at] in " \t":
        at += 1
    try:
        document, _ = json.JSONDecoder().raw_decode(message, at)
    except ValueError:
        return None
    if not (isinstance(document, dict) and isinstance(document.get("authorization_parameters"),
                                                      dict)):
        return None
    return to_gare(document)


@contextlib.contextmanager
def translate_auth_errors() -> Iterator[None]:
    """Turn an expired, revoked or missing Globus login, or a requirement Globus states (a
    consent, a session), into a :class:`LoginNeeded` (see :func:`login_needed_from`).

    Use it as ``with translate_auth_errors(): ...`` or as a decorator
    ``@translate_auth_errors()``. Other Globus errors pass through unchanged.
    """
    try:
        yield
    except (TokenValidationError, GlobusAPIError) as err:
        needed = login_needed_from(err)
        if needed is None:
            raise
        raise needed from None
    except globus_sdk.NetworkError as err:
        raise RunError(f"cannot reach Globus ({type(err).__name__}): check the network "
                       "connection and try again") from None


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
    notify = notify or _stderr
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
        flows.allowed, flows.no_browser, flows.notify = False, False, _stderr
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


def compute_client() -> Any:
    """A ``globus_compute_sdk.Client`` on the program's app.

    No version check on creation (it is a network call): call ``client.version_check()``
    where the dispatcher first talks to Compute.
    """
    from globus_compute_sdk import Client

    app = get_app()
    return app.client("compute", lambda: Client(app=app, do_version_check=False))

