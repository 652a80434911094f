"""Globus login, offline: Globus Auth's web API is globus-sdk's own test responses
(`globus_sdk.testing`) or `responses`; the local redirect server and the token file are real.

The id_token is decoded by a stand-in decoder (`FakeDecoder`): the real one would check a
signature made with Globus Auth's private key.
"""

from __future__ import annotations

import json
import logging
import re
import stat
import time
import urllib.request
import webbrowser
from urllib.parse import parse_qs, urlparse

import globus_sdk
import pytest
import responses
import typer
from globus_sdk.gare import GlobusAuthorizationParameters
from globus_sdk.scopes import ComputeScopes, TransferScopes
from globus_sdk.testing import RegisteredResponse, load_response

from braas_globus import auth, cli
from braas_globus.cli import auth as auth_cli
from braas_globus.errors import RunError, UsageError

CLIENT_ID = "6b1f8a4e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
IDENTITY = "ae341a98-d274-11e5-b888-dbae3a8ba545"
COLLECTION = "1c0f7a2e-5b6d-4c8e-9f0a-1b2c3d4e5f60"
AUTH_CODE = "authcode-Qm9vZ2xlIGlzIG5vdCBoZXJl"
ID_TOKEN = "idtoken-eyJhbGciOiJSUzUxMiJ9.c2VjcmV0"
TOKEN_URL = "https://auth.globus.org/v2/oauth2/token"
REVOKE_URL = "https://auth.globus.org/v2/oauth2/token/revoke"
SERVERS = {"auth.globus.org": "openid profile email",
           TransferScopes.resource_server: str(TransferScopes.all),
           ComputeScopes.resource_server: str(ComputeScopes.all)}


def tokens(server: str, generation: int = 1) -> tuple[str, str]:
    return f"AT{generation}-{server}-s3cr3t", f"RT-{server}-s3cr3t"


SECRETS = [AUTH_CODE, ID_TOKEN] + [t for server in SERVERS for g in (1, 2)
                                   for t in tokens(server, g)]


def token_data(server: str, generation: int = 1) -> dict:
    access, refresh = tokens(server, generation)
    return {"access_token": access, "refresh_token": refresh, "scope": SERVERS[server],
            "expires_in": 172800, "token_type": "Bearer", "resource_server": server}


def code_exchange_body() -> dict:
    first, *others = SERVERS
    return {**token_data(first), "id_token": ID_TOKEN, "state": "_default",
            "other_tokens": [token_data(server) for server in others]}


class FakeDecoder(globus_sdk.IDTokenDecoder):
    """Stands in for signature checking: knows the one id_token these tests hand out."""

    def decode(self, id_token: str, /) -> dict:
        assert id_token == ID_TOKEN
        return {"sub": IDENTITY, "preferred_username": "ada@example.org",
                "name": "Ada Lovelace", "email": "ada@example.org", "aud": CLIENT_ID}


@pytest.fixture
def globus(home, monkeypatch):
    """A fresh BRAAS_HOME, our client id, no SSH session or display, Globus Auth mocked."""
    monkeypatch.setenv("BRAAS_GLOBUS_CLIENT_ID", CLIENT_ID)
    for name in ("SSH_TTY", "SSH_CONNECTION", "GLOBUS_SDK_ENVIRONMENT", "DISPLAY",
                 "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(auth, "_apps", {})
    monkeypatch.setattr(auth, "IDTokenDecoder", FakeDecoder)
    responses.start()
    yield home
    responses.stop()
    responses.reset()


@pytest.fixture
def typed_code(monkeypatch):
    """The user pastes the authorization code at the prompt."""
    prompts = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        return f"  {AUTH_CODE}\n"

    monkeypatch.setattr("builtins.input", fake_input)
    return prompts


def braas(*args: str) -> int:
    """The CLI in-process: cli.main once cli.py registers the commands, else the same
    functions on a bare typer app."""
    names = {c.name or c.callback.__name__ for c in cli.app.registered_commands}
    if "login" in names:
        return cli.main(list(args))
    app = typer.Typer()
    for command in (auth_cli.login, auth_cli.logout, auth_cli.whoami):
        app.command()(command)
    result = app(args=list(args), prog_name="braas-globus", standalone_mode=False)
    return result if isinstance(result, int) else 0


def requests_to(url: str) -> list:
    return [call.request for call in responses.calls if call.request.url.split("?")[0] == url]


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def log_in(capsys) -> dict:
    """Log in with a pasted code (the function, not the CLI); returns its result."""
    responses.add(responses.POST, TOKEN_URL, json=code_exchange_body())
    result = auth.login(no_browser=True)
    capsys.readouterr()
    return result


def userinfo_ok() -> RegisteredResponse:
    # globus_sdk.testing has only failure cases for userinfo
    response = RegisteredResponse(
        service="auth", path="/v2/oauth2/userinfo",
        json={"sub": IDENTITY, "preferred_username": "ada@example.org", "name": "Ada Lovelace",
              "email": "ada@example.org"})
    response.add()
    return response


# --- login -----------------------------------------------------------------------------------

def test_login_with_a_pasted_code_asks_for_transfer_and_compute(globus, typed_code, capsys,
                                                                caplog):
    caplog.set_level(logging.DEBUG)
    responses.add(responses.POST, TOKEN_URL, json=code_exchange_body())

    assert braas("login", "--no-browser", "--json") == 0

    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["logged_in"] == "now"
    assert result["identity"] == {"id": IDENTITY, "username": "ada@example.org",
                                  "name": "Ada Lovelace", "email": "ada@example.org"}
    assert set(result["resource_servers"]) == set(SERVERS)
    assert all(info["refreshable"] for info in result["resource_servers"].values())
    assert result["missing"] == []
    assert len(typed_code) == 1 and "code" in err

    # the address shown on stderr asks for all scopes at once, with refresh tokens
    url = re.search(r"https://auth\.globus\.org/v2/oauth2/authorize\?\S+", err).group(0)
    query = parse_qs(urlparse(url).query)
    scopes = query["scope"][0].split()
    for scope in (str(TransferScopes.all), str(ComputeScopes.all), "openid", "profile", "email"):
        assert scope in scopes
    assert query["client_id"] == [CLIENT_ID]
    assert query["access_type"] == ["offline"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["https://auth.globus.org/v2/web/auth-code"]

    # the code went to the token endpoint with the PKCE verifier
    (exchange,) = requests_to(TOKEN_URL)
    form = parse_qs(exchange.body)
    assert form["grant_type"] == ["authorization_code"]
    assert form["code"] == [AUTH_CODE]
    assert form["code_verifier"] and form["client_id"] == [CLIENT_ID]

    assert_no_secrets(out, err, caplog.text, *(str(r.args) for r in caplog.records))


def test_token_file_is_private(globus, typed_code, capsys):
    log_in(capsys)
    path = globus / "globus" / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())["data"][CLIENT_ID]
    assert set(stored) == set(SERVERS)
    assert all(data["identity_id"] == IDENTITY and data["refresh_token"]
               for data in stored.values())
    assert not list(path.parent.glob(".tokens-*"))  # no temporary file left behind


def test_a_token_file_others_can_read_is_refused(globus, typed_code, capsys):
    log_in(capsys)
    path = globus / "globus" / "tokens.json"
    path.chmod(0o644)

    with pytest.raises(RunError, match="can be read or changed by other users"):
        auth.whoami()
    assert braas("whoami") == 1
    err = capsys.readouterr().err
    assert "mode 0644" in err and "braas-globus logout" in err
    assert not requests_to("https://auth.globus.org/v2/oauth2/userinfo")

    # a new process refuses it too, before anything else
    auth._apps.clear()
    with pytest.raises(RunError, match="other users"):
        auth.get_app()


def test_browser_login_through_the_local_redirect_server(globus, monkeypatch, capsys, caplog):
    """The real local-server flow: a stand-in browser follows the redirect to localhost."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DISPLAY", ":0")
    opened = []

    class FakeBrowser:
        name = "stand-in browser"

        def open(self, url: str, new: int = 0) -> bool:
            opened.append(url)
            redirect = parse_qs(urlparse(url).query)["redirect_uri"][0]
            no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with no_proxy.open(f"{redirect}/?code={AUTH_CODE}&state=_default", timeout=10) as r:
                assert b"Login successful" in r.read()
            return True

    monkeypatch.setattr(webbrowser, "get", lambda *args: FakeBrowser())
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("no prompt expected"))
    responses.add(responses.POST, TOKEN_URL, json=code_exchange_body())

    result = auth.login()

    assert result["identity"]["username"] == "ada@example.org"
    assert urlparse(parse_qs(urlparse(opened[0]).query)["redirect_uri"][0]).hostname in (
        "127.0.0.1", "localhost")
    form = parse_qs(requests_to(TOKEN_URL)[0].body)
    assert form["code"] == [AUTH_CODE]
    out, err = capsys.readouterr()
    assert "opening a web browser" in err
    # http.server would write "GET /?code=... HTTP/1.1" to stderr; ours does not
    assert_no_secrets(out, err, caplog.text)


@pytest.mark.parametrize("setting", ["ssh", "no display", "browser fails"])
def test_login_falls_back_to_a_pasted_code(globus, typed_code, monkeypatch, capsys, setting):
    if setting == "ssh":
        monkeypatch.setenv("DISPLAY", ":0")
        monkeypatch.setenv("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22")
    elif setting == "browser fails":
        monkeypatch.setenv("DISPLAY", ":0")

        def no_browser(*args):
            raise webbrowser.Error("could not locate runnable browser")

        monkeypatch.setattr(webbrowser, "get", no_browser)
    responses.add(responses.POST, TOKEN_URL, json=code_exchange_body())

    auth.login()

    assert len(typed_code) == 1
    err = capsys.readouterr().err
    assert "no browser login here" in err and "paste the code" in err
    expected = {"ssh": "SSH session", "no display": "no graphical display",
                "browser fails": "Failed to open browser"}[setting]
    assert expected in err


def test_login_when_already_logged_in_does_not_prompt(globus, typed_code, capsys):
    log_in(capsys)
    userinfo_ok()
    monkeypatch_input = typed_code
    assert braas("login") == 0
    assert len(monkeypatch_input) == 1  # only the first login asked for a code
    assert "already logged in to Globus as ada@example.org" in capsys.readouterr().out
    assert len(requests_to(TOKEN_URL)) == 1


def test_login_without_a_terminal_is_a_clear_error(globus, monkeypatch, capsys):
    def eof(*args):
        raise EOFError

    monkeypatch.setattr("builtins.input", eof)
    assert braas("login", "--no-browser") == 1
    assert "no authorization code was entered" in capsys.readouterr().err
    assert not (globus / "globus" / "tokens.json").exists()


def test_a_refused_code_is_a_clear_error(globus, typed_code, capsys):
    responses.add(responses.POST, TOKEN_URL, status=400,
                  json={"error": "invalid_grant", "error_description": "Invalid code"})
    assert braas("login", "--no-browser") == 1
    err = capsys.readouterr().err
    assert "Globus refused the login (Invalid code)" in err
    assert_no_secrets(err)


def test_collection_scopes_are_asked_for_as_transfer_dependencies(globus, typed_code, capsys):
    assert auth.add_collection_scopes([COLLECTION.upper()]) == [COLLECTION]
    responses.add(responses.POST, TOKEN_URL, json=code_exchange_body())
    auth.login(no_browser=True, force=True)
    url = re.search(r"https://auth\.globus\.org/v2/oauth2/authorize\?\S+",
                    capsys.readouterr().err).group(0)
    scope = parse_qs(urlparse(url).query)["scope"][0]
    assert (f"{TransferScopes.all}[*https://auth.globus.org/scopes/{COLLECTION}/data_access]"
            in scope)

    with pytest.raises(UsageError, match="not a UUID"):
        auth.add_collection_scopes(["centre-scratch"])


# --- whoami ----------------------------------------------------------------------------------

def test_whoami_names_the_identity_and_services_never_the_tokens(globus, typed_code, capsys,
                                                                 caplog):
    log_in(capsys)
    caplog.set_level(logging.DEBUG)
    userinfo_ok()

    assert braas("whoami", "--json") == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["identity"]["username"] == "ada@example.org"
    assert result["identity"]["id"] == IDENTITY
    assert set(result["resource_servers"]) == set(SERVERS)
    (request,) = requests_to("https://auth.globus.org/v2/oauth2/userinfo")
    assert request.headers["Authorization"] == f"Bearer {tokens('auth.globus.org')[0]}"

    assert braas("whoami") == 0
    human, _ = capsys.readouterr()
    assert "ada@example.org (Ada Lovelace)" in human and TransferScopes.resource_server in human
    assert_no_secrets(out, err, human, caplog.text)


def test_whoami_without_login_says_to_log_in(globus, capsys):
    assert braas("whoami") == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: you are not logged in to Globus: run `braas-globus login`"
    assert not responses.calls
    assert not (globus / "globus").exists()


def test_without_a_client_id_the_message_says_what_to_set(globus, monkeypatch, capsys):
    monkeypatch.delenv("BRAAS_GLOBUS_CLIENT_ID")
    assert braas("whoami") == 1
    assert "set BRAAS_GLOBUS_CLIENT_ID" in capsys.readouterr().err
    monkeypatch.setenv("BRAAS_GLOBUS_CLIENT_ID", "not-a-uuid")
    assert braas("whoami") == 2


@pytest.mark.parametrize("refusal", ["fixture (401)", "400"])
def test_expired_token_whose_refresh_is_refused_says_to_log_in(globus, typed_code, capsys,
                                                               caplog, refusal):
    log_in(capsys)
    path = globus / "globus" / "tokens.json"
    content = json.loads(path.read_text())
    for data in content["data"][CLIENT_ID].values():
        data["expires_at_seconds"] = int(time.time()) - 60
    path.write_text(json.dumps(content))
    responses.reset()
    if refusal == "400":
        responses.add(responses.POST, TOKEN_URL, status=400, json={"error": "invalid_grant"})
    else:
        load_response(globus_sdk.NativeAppAuthClient.oauth2_exchange_code_for_tokens,
                      case="invalid_grant")
    caplog.set_level(logging.DEBUG)

    with pytest.raises(auth.LoginNeeded, match="expired or was revoked"):
        auth.whoami()
    assert braas("whoami") == 1
    out, err = capsys.readouterr()
    assert err.strip() == ("error: your Globus login has expired or was revoked: "
                           "run `braas-globus login`")
    refresh = parse_qs(requests_to(TOKEN_URL)[0].body)
    assert refresh["grant_type"] == ["refresh_token"]
    assert_no_secrets(out, err, caplog.text)


def test_whoami_when_globus_answers_401_says_to_log_in(globus, typed_code, capsys):
    log_in(capsys)
    load_response(globus_sdk.AuthClient.userinfo, case="unauthorized")
    # the SDK refreshes once on a 401 and tries again
    first, *others = SERVERS
    responses.add(responses.POST, TOKEN_URL, json={**token_data(first, 2), "other_tokens": []})
    assert braas("whoami") == 1
    assert "expired or was revoked" in capsys.readouterr().err


# --- clients and errors ----------------------------------------------------------------------

def test_transfer_401_becomes_the_login_message(globus, typed_code, capsys):
    log_in(capsys)
    server = TransferScopes.resource_server
    responses.add(responses.GET, "https://transfer.api.globus.org/v0.10/submission_id",
                  status=401, json={"code": "AuthenticationFailed", "message": "Token is not "
                                    "active", "request_id": "abc", "resource": "/x"})
    responses.add(responses.POST, TOKEN_URL, json={**token_data(server, 2), "other_tokens": []})
    with pytest.raises(auth.LoginNeeded, match="expired or was revoked"):
        with auth.translate_auth_errors():
            auth.transfer_client().get_submission_id()
    # the refreshed token was stored, privately
    path = globus / "globus" / "tokens.json"
    stored = json.loads(path.read_text())["data"][CLIENT_ID][server]
    assert stored["access_token"] == tokens(server, 2)[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_translate_auth_errors_works_as_a_decorator(globus):
    @auth.translate_auth_errors()
    def refused():
        load_response(globus_sdk.NativeAppAuthClient.oauth2_exchange_code_for_tokens,
                      case="invalid_grant")
        globus_sdk.NativeAppAuthClient(client_id=CLIENT_ID).oauth2_refresh_token("RT")

    with pytest.raises(auth.LoginNeeded, match="run `braas-globus login`"):
        refused()


def test_clients_share_the_one_app_and_never_log_in_by_themselves(globus, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("no prompt expected"))
    app = auth.get_app()
    assert auth.get_app() is app
    assert auth.transfer_client() is auth.transfer_client()
    assert auth.transfer_client()._app is app  # globus-sdk 4.10 has no public accessor
    compute = auth.compute_client()
    assert compute.app is app
    assert set(app.scope_requirements) >= {"auth.globus.org", TransferScopes.resource_server,
                                           ComputeScopes.resource_server}
    # not logged in: using a client says so instead of opening a browser
    with pytest.raises(auth.LoginNeeded, match="not logged in"):
        auth.transfer_client().get_submission_id()
    # a service asking for more consent (as the Compute client's GARE handler does)
    with pytest.raises(auth.LoginNeeded, match="log in again \\(need MFA\\)"):
        app.login(auth_params=GlobusAuthorizationParameters(session_message="need MFA"))
    assert not responses.calls


# --- logout ----------------------------------------------------------------------------------

def test_logout_revokes_every_token_and_deletes_the_file(globus, typed_code, capsys, caplog):
    log_in(capsys)
    caplog.set_level(logging.DEBUG)
    load_response(globus_sdk.NativeAppAuthClient.oauth2_revoke_token)

    assert braas("logout", "--json") == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["tokens_revoked"] == 6 and result["not_revoked"] == []
    revoked = {parse_qs(r.body)["token"][0] for r in requests_to(REVOKE_URL)}
    assert revoked == {t for server in SERVERS for t in tokens(server)}
    assert not (globus / "globus" / "tokens.json").exists()
    assert_no_secrets(out, err, caplog.text)

    assert braas("whoami") == 1
    assert "not logged in" in capsys.readouterr().err
    assert braas("logout") == 0
    assert "nothing to do" in capsys.readouterr().out


def test_logout_revokes_the_tokens_of_a_file_others_could_read(globus, typed_code, capsys):
    log_in(capsys)
    (globus / "globus" / "tokens.json").chmod(0o644)
    load_response(globus_sdk.NativeAppAuthClient.oauth2_revoke_token)
    assert braas("logout") == 0
    assert "could be read by other users" in capsys.readouterr().err
    assert len(requests_to(REVOKE_URL)) == 6
    assert not (globus / "globus" / "tokens.json").exists()


def test_logout_deletes_the_tokens_even_when_globus_cannot_be_told(globus, typed_code, capsys):
    log_in(capsys)
    auth.get_app().login_client.retry_config.max_retries = 0  # globus-sdk retries 5xx 5 times
    responses.add(responses.POST, REVOKE_URL, status=503, json={"error": "unavailable"})
    assert braas("logout") == 1
    assert len(requests_to(REVOKE_URL)) == 1  # the first failure stops the rest
    err = capsys.readouterr().err
    assert "could not revoke the tokens" in err and "app.globus.org/account/consents" in err
    assert not (globus / "globus" / "tokens.json").exists()
