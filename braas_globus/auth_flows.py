"""How a Globus login happens: in a web browser, else in the terminal, and only on request.

In a web browser with a redirect to a server on localhost (``local-server``) where a browser
can open; else, or with ``no_browser``, an address to open anywhere and a code to paste into
the terminal (``command-line``). :class:`LoginFlows` runs one of them only while
``braas-globus login`` allows it (``auth.login``); at any other time a service's request
for a new login becomes a :class:`~braas_globus.errors.LoginNeeded` that says to run
``braas-globus login``.

The local redirect server does not write its request lines (which hold the authorization
code) to stderr.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from globus_sdk import IDTokenDecoder, NativeAppAuthClient, OAuthTokenResponse
from globus_sdk.gare import GlobusAuthorizationParameters
from globus_sdk.login_flows import (
    CommandLineLoginFlowManager,
    LocalServerEnvironmentalLoginError,
    LocalServerLoginFlowManager,
    LoginFlowManager,
)
from globus_sdk.login_flows.local_server_login_flow_manager.local_server import (
    RedirectHandler,
    RedirectHTTPServer,
)

from .auth_requirements import LOGIN
from .errors import LoginNeeded, RunError

APP_NAME = "braas-globus"

Notify = Callable[[str], None]


def notify_stderr(text: str) -> None:
    """Where login messages go unless the caller says otherwise."""
    print(text, file=sys.stderr, flush=True)


class _QuietRedirectHandler(RedirectHandler):
    """globus-sdk's redirect handler, without the request line (it holds the code) on stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class BrowserLogin(LocalServerLoginFlowManager):
    """Log in in a web browser that redirects to a server on localhost."""

    def __init__(self, login_client: NativeAppAuthClient, *, notify: Notify,
                 **options: Any) -> None:
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

    def __init__(self, login_client: NativeAppAuthClient, *, notify: Notify,
                 **options: Any) -> None:
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
    """The browser where one can open, else the terminal; and only when ``auth.login`` asks.

    globus-sdk runs a login flow by itself whenever a service asks for more consent (the
    Compute client does so); braas-globus refuses that and says to log in instead, so that no
    command but ``login`` opens a browser or waits for input.
    """

    def __init__(self, login_client: NativeAppAuthClient, *,
                 id_token_decoder: IDTokenDecoder) -> None:
        prefill = f"{APP_NAME} on {socket.gethostname()}"
        options: dict[str, Any] = {"request_refresh_tokens": True,
                                   "native_prefill_named_grant": prefill}
        super().__init__(login_client, **options)
        self.id_token_decoder = id_token_decoder
        self.browser = BrowserLogin(login_client, notify=self._notify, **options)
        self.terminal = TerminalLogin(login_client, notify=self._notify, **options)
        self.notify: Notify = notify_stderr
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
