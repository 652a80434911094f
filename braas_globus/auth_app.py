"""The parts of the program's one globus-sdk ``UserApp``: its client id, what a login asks
for, where its tokens lie, and the app class that keeps one client of each kind.

``auth.build_app`` puts them together; ``auth.get_app`` keeps one app per home folder,
client id and Globus environment.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar, cast

import globus_sdk
from globus_sdk import GlobusAppConfig, NativeAppAuthClient, UserApp
from globus_sdk.gare import GlobusAuthorizationParameters
from globus_sdk.scopes import AuthScopes, ComputeScopes, Scope, TransferScopes
from globus_sdk.token_storage import TokenValidationError

from .auth_errors import token_login_needed
from .auth_flows import APP_NAME, LoginFlows
from .auth_requirements import requirement_needed
from .auth_tokens import PrivateTokenFile
from .errors import RunError, UsageError
from .settings import load_settings

#: The project's registered native-app client id (https://app.globus.org/settings/developers).
#: TO BE FILLED IN by the project once the app is registered; until then set
#: ``BRAAS_GLOBUS_CLIENT_ID`` or the ``globus_client_id`` setting.
DEFAULT_CLIENT_ID: str = ""

CLIENT_ID_VARIABLE = "BRAAS_GLOBUS_CLIENT_ID"

Client = TypeVar("Client")


class BraasApp(UserApp):
    """The program's one UserApp, with the parts braas-globus drives itself."""

    def __init__(self, *, login_client: NativeAppAuthClient, storage: PrivateTokenFile,
                 flows: LoginFlows, config: GlobusAppConfig,
                 scope_requirements: Mapping[str, list[Scope]]) -> None:
        self.login_client = login_client
        self.storage = storage
        self.flows = flows
        self._clients: dict[str, object] = {}
        super().__init__(APP_NAME, login_client=login_client,
                         scope_requirements=scope_requirements, config=config)

    def _run_login_flow(self, auth_params: GlobusAuthorizationParameters | None = None
                        ) -> None:
        # globus-compute-sdk answers a GARE with app.login(auth_params=...): outside
        # `braas-globus login`, record what it asks for and say what to run instead.
        if auth_params is not None and not self.flows.allowed:
            raise requirement_needed("AuthorizationRequired", auth_params)
        super()._run_login_flow(auth_params)

    def client(self, kind: str, make: Callable[[], Client]) -> Client:
        """One client of each kind per app (each new client adds its scopes to the app)."""
        if kind not in self._clients:
            self._clients[kind] = make()
        # each kind is made by one caller, always with the same `make`
        return cast(Client, self._clients[kind])


def refuse_silent_login(app: globus_sdk.GlobusApp, error: TokenValidationError) -> None:
    """globus-sdk's token_validation_error_handler: say what to do instead of logging in."""
    raise token_login_needed(error, app.storage if isinstance(app, BraasApp) else None) \
        from None


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


def base_scopes() -> dict[str, list[Scope]]:
    """What one login asks for: who you are, Transfer, and Compute."""
    return {
        AuthScopes.resource_server: [AuthScopes.openid, AuthScopes.profile, AuthScopes.email],
        TransferScopes.resource_server: [TransferScopes.all],
        ComputeScopes.resource_server: [ComputeScopes.all],
    }


def token_path(home: Path, environment: str) -> Path:
    name = "tokens.json" if environment == "production" else f"tokens-{environment}.json"
    return home / "globus" / name


def quiet_token_logging() -> None:
    # globus-sdk never logs at INFO; at DEBUG this one logger prints a whole id_token.
    logging.getLogger("globus_sdk.services.auth.response.oauth").setLevel(logging.INFO)
