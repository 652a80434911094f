"""Consent and session requirements Globus states, and the login that satisfies them.

Globus answers a request the login cannot make with what it needs: a consent (Transfer's
403 ConsentRequired, for a mapped collection's data_access) or a session (an identity from
a domain, MFA: a Globus Auth Requirements Error, which Transfer sends in a 502). The user is
told in one line to run `braas-globus login`, and that login asks Globus for exactly that.

Offline as in test_auth.py: Globus's web APIs are `responses`, the error documents have the
shapes Globus sends (tests/stand_ins/globus_documents.py), the token file is real.
"""
# ruff: noqa: F811  (tests take the imported fixtures as arguments)

from __future__ import annotations

import json
import re
import stat
from urllib.parse import parse_qs, urlparse

import globus_sdk
import pytest
import responses
from globus_compute_sdk.sdk.utils.gare import gare_handler
from globus_sdk.scopes import TransferScopes
from globus_sdk.testing import construct_error, load_response

from braas_globus import auth, preset_check
from braas_globus.errors import RunError
from tests import test_auth as fakes
from tests.stand_ins import globus_documents as documents
from tests.test_auth import globus, typed_code  # noqa: F401 (fixtures)

COLLECTION = fakes.COLLECTION
OTHER = "7d5e2b10-3a4c-4d6e-8f90-a1b2c3d4e5f6"
LS_URL = f"https://transfer.api.globus.org/v0.10/operation/endpoint/{COLLECTION}/ls"
AUTHORIZE = re.compile(r"https://auth\.globus\.org/v2/oauth2/authorize\?\S+")
REAUTH = "Session reauthentication required (Globus Transfer)"


def requirements_file(home):
    return home / "globus" / "requirements.json"


def recorded(home) -> list[dict]:
    return json.loads(requirements_file(home).read_text())["requirements"]


def transfer_error(document: tuple[int, dict]) -> globus_sdk.TransferAPIError:
    status, body = document
    return construct_error(http_status=status, body=body, error_class=globus_sdk.TransferAPIError,
                           url=LS_URL)


def authorize_query(err: str) -> dict[str, list[str]]:
    """The query of the one login address the terminal login showed."""
    (url,) = AUTHORIZE.findall(err)
    return parse_qs(urlparse(url).query)


def list_centre_folder():
    with auth.translate_auth_errors():
        return auth.transfer_client().operation_ls(COLLECTION, path="/scratch/ada")


# --- a consent the login lacks ----------------------------------------------------------------

def test_a_missing_data_access_consent_is_recorded_and_the_next_login_asks_for_it(
        globus, typed_code, capsys):
    fakes.log_in(capsys)
    status, body = documents.consent_required(COLLECTION)
    responses.add(responses.GET, LS_URL, status=status, json=body)

    with pytest.raises(auth.LoginNeeded) as caught:
        list_centre_folder()
    assert str(caught.value) == (f"Globus needs your consent to access collection {COLLECTION} "
                                 "(Missing required data_access consent): run "
                                 "`braas-globus login`")

    # kept privately for the next login: the scope exactly as Transfer named it
    path = requirements_file(globus)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not list(path.parent.glob("*.partial"))
    (requirement,) = recorded(globus)
    assert requirement["code"] == "ConsentRequired"
    assert requirement["authorization_parameters"]["required_scopes"] == [
        documents.data_access_scope(COLLECTION)]

    # the saved login still works, yet `login` logs in again, for that consent
    assert fakes.braas("login", "--no-browser") == 0
    out, err = capsys.readouterr()
    assert (f"as Globus asked, logging in for your consent to access collection {COLLECTION} "
            "(Missing required data_access consent)\n") in err
    scope = authorize_query(err)["scope"][0]
    # one Transfer scope, with the collection's data_access as its dependency
    assert f"{TransferScopes.all}[*https://auth.globus.org/scopes/{COLLECTION}/data_access]" \
        in scope.split()
    assert scope.count(str(TransferScopes.all)) == 1
    assert len(fakes.requests_to(fakes.TOKEN_URL)) == 2
    assert "logged in to Globus as ada@example.org" in out
    assert not path.exists()

    # satisfied: the login after that (in a new process) has nothing more to do
    auth._apps.clear()
    fakes.userinfo_ok()
    assert fakes.braas("login") == 0
    assert "already logged in" in capsys.readouterr().out
    assert len(fakes.requests_to(fakes.TOKEN_URL)) == 2


def test_consent_required_without_scopes_still_makes_login_log_in(globus, typed_code, capsys):
    fakes.log_in(capsys)
    needed = auth.login_needed_from(transfer_error(
        (403, {"code": "ConsentRequired", "message": "Missing required consent",
               "request_id": "x1", "resource": "/operation/endpoint/x/ls"})))
    assert str(needed) == "Globus needs your consent for more access: run `braas-globus login`"
    assert fakes.braas("login", "--no-browser") == 0
    err = capsys.readouterr().err
    assert "as Globus asked, logging in for more consent\n" in err
    assert len(fakes.requests_to(fakes.TOKEN_URL)) == 2
    assert not requirements_file(globus).exists()


# --- a session requirement --------------------------------------------------------------------

def test_a_session_requirement_in_a_502_is_passed_to_the_login_flow(globus, typed_code, capsys,
                                                                      monkeypatch):
    fakes.log_in(capsys)
    auth.transfer_client().retry_config.max_retries = 0  # the SDK retries a 502 by itself
    status, body = documents.session_login_failed(COLLECTION, "it4i.cz", REAUTH)
    responses.add(responses.GET, LS_URL, status=status, json=body)

    with pytest.raises(auth.LoginNeeded) as caught:
        list_centre_folder()
    assert str(caught.value) == (f"Globus needs you to log in again with an identity from "
                                 f"it4i.cz ({REAUTH}): run `braas-globus login`")
    (requirement,) = recorded(globus)
    assert requirement["authorization_parameters"] == {
        "session_required_single_domain": ["it4i.cz"], "session_message": REAUTH}

    seen = []
    run_login_flow = auth.LoginFlows.run_login_flow

    def capture(self, auth_parameters):
        seen.append(auth_parameters)
        return run_login_flow(self, auth_parameters)

    monkeypatch.setattr(auth.LoginFlows, "run_login_flow", capture)
    assert fakes.braas("login", "--no-browser") == 0
    err = capsys.readouterr().err
    assert f"as Globus asked, logging in with an identity from it4i.cz ({REAUTH})\n" in err
    (params,) = seen
    assert params.session_required_single_domain == ["it4i.cz"]
    query = authorize_query(err)
    assert query["session_required_single_domain"] == ["it4i.cz"]
    assert query["session_message"] == [REAUTH]
    assert str(TransferScopes.all) in query["scope"][0].split()
    assert not requirements_file(globus).exists()


def test_a_session_requirement_only_in_the_gridftp_result_is_found(globus):
    needed = auth.login_needed_from(transfer_error(
        documents.session_in_gridftp_result(COLLECTION, "it4i.cz")))
    assert str(needed) == ("Globus needs you to log in again with an identity from it4i.cz: "
                           "run `braas-globus login`")
    (requirement,) = recorded(globus)
    assert requirement["authorization_parameters"] == {
        "session_required_single_domain": ["it4i.cz"]}


def test_requirements_accumulate_once_each_and_two_domains_take_two_logins(globus, typed_code,
                                                                            capsys):
    fakes.log_in(capsys)
    for document in (documents.consent_required(COLLECTION),
                     documents.session_login_failed(COLLECTION, "it4i.cz", REAUTH),
                     documents.consent_required(COLLECTION),  # the same again
                     documents.consent_required(OTHER),
                     documents.session_login_failed(OTHER, "vsb.cz", REAUTH)):
        assert isinstance(auth.login_needed_from(transfer_error(document)), auth.LoginNeeded)
    assert len(recorded(globus)) == 4

    assert fakes.braas("login", "--no-browser", "--json") == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert (result["requirements_satisfied"], result["requirements_left"]) == (3, 1)
    assert "run `braas-globus login` again" in err
    query = authorize_query(err)
    assert query["session_required_single_domain"] == ["it4i.cz"]  # never "it4i.cz or vsb.cz"
    for collection in (COLLECTION, OTHER):
        assert f"https://auth.globus.org/scopes/{collection}/data_access" in query["scope"][0]
    (left,) = recorded(globus)
    assert left["authorization_parameters"]["session_required_single_domain"] == ["vsb.cz"]

    assert fakes.braas("login", "--no-browser") == 0
    err = capsys.readouterr().err
    assert authorize_query(err)["session_required_single_domain"] == ["vsb.cz"]
    assert "run `braas-globus login` again" not in err
    assert not requirements_file(globus).exists()


def test_a_gare_that_globus_compute_hands_to_the_app_is_recorded(globus, typed_code, capsys):
    """globus-compute-sdk answers a GARE by calling app.login(auth_params=...) itself."""
    fakes.log_in(capsys)
    app = auth.get_app()
    gare = construct_error(http_status=403, body={
        "code": "AuthorizationRequired", "reason": "this endpoint requires MFA",
        "authorization_parameters": {"session_required_mfa": True}})

    def submit():
        raise gare

    with pytest.raises(auth.LoginNeeded) as caught:
        gare_handler(app.login, submit)
    assert str(caught.value) == ("Globus needs you to log in again with multi-factor "
                                 "authentication (this endpoint requires MFA): run "
                                 "`braas-globus login`")
    (requirement,) = recorded(globus)
    assert requirement["authorization_parameters"]["session_required_mfa"] is True
    assert len(fakes.requests_to(fakes.TOKEN_URL)) == 1  # no login happened by itself

    assert fakes.braas("login", "--no-browser") == 0
    assert authorize_query(capsys.readouterr().err)["session_required_mfa"] == ["True"]


# --- what is not a requirement, and what never breaks -----------------------------------------

def test_401_is_an_expired_login_and_other_errors_pass_through_unchanged(globus):
    expired = construct_error(http_status=401, body={
        "code": "AuthenticationFailed", "message": "Token is not active"})
    with pytest.raises(auth.LoginNeeded) as caught:
        with auth.translate_auth_errors():
            raise expired
    assert str(caught.value) == ("your Globus login has expired or was revoked: run "
                                 "`braas-globus login`")

    missing = transfer_error((404, {"code": "ClientError.NotFound",
                                    "message": "Directory not found"}))
    with pytest.raises(globus_sdk.TransferAPIError) as caught:
        with auth.translate_auth_errors():
            raise missing
    assert caught.value is missing
    assert auth.login_needed_from(missing) is None
    denied = transfer_error(documents.permission_denied(COLLECTION))
    assert auth.login_needed_from(denied) is None
    busy = transfer_error((502, {"code": "ExternalError.DirListingFailed",
                                 "message": "Command Failed: connection reset"}))
    assert auth.login_needed_from(busy) is None
    assert not requirements_file(globus).exists()

    assert auth.login_needed_from(ValueError()) is None
    assert auth.login_needed_from(RunError("cannot list /scratch")) is None
    assert auth.login_needed_from(construct_error(http_status=403, body=b"\xff not json")) \
        is None
    # behind another exception (a library that wraps what it got)
    try:
        raise RuntimeError("listing failed") from expired
    except RuntimeError as wrapped:
        assert "expired" in str(auth.login_needed_from(wrapped))


def test_login_needed_from_never_raises_even_where_nothing_can_be_recorded(globus, monkeypatch,
                                                                         tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("BRAAS_HOME", str(blocker))  # no folder can be made under it
    needed = auth.login_needed_from(transfer_error(documents.consent_required(COLLECTION)))
    assert str(needed).startswith(f"Globus needs your consent to access collection {COLLECTION}")


def test_what_globus_says_is_shown_as_one_bounded_line(globus):
    needed = auth.login_needed_from(transfer_error((403, {
        "code": "AuthorizationRequired",
        "authorization_parameters": {"session_message": "Log in\nwith\x1b[31m IT4I " + "x" * 5000,
                                     "session_required_single_domain": ["it4i.cz\n"]}})))
    text = str(needed)
    assert "\n" not in text and "\x1b" not in text
    assert len(text) < 500
    assert text.startswith("Globus needs you to log in again with an identity from it4i.cz "
                           "(Log in with [31m IT4I xxx")
    assert text.endswith("…): run `braas-globus login`")


def test_a_requirements_file_others_can_change_is_refused_by_login(globus, typed_code, capsys):
    fakes.log_in(capsys)
    auth.login_needed_from(transfer_error(documents.consent_required(COLLECTION)))
    requirements_file(globus).chmod(0o666)
    assert fakes.braas("login", "--no-browser") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "can be read or changed by other users (mode 0666)" in err
    assert "remove it" in err
    assert len(fakes.requests_to(fakes.TOKEN_URL)) == 1


def test_logout_forgets_the_requirements(globus, typed_code, capsys):
    fakes.log_in(capsys)
    auth.login_needed_from(transfer_error(documents.consent_required(COLLECTION)))
    assert requirements_file(globus).exists()
    load_response(globus_sdk.NativeAppAuthClient.oauth2_revoke_token)
    assert fakes.braas("logout") == 0
    assert not requirements_file(globus).exists()


# --- presets test -----------------------------------------------------------------------------

def test_presets_test_tells_a_consent_from_a_permission_denied(globus):
    consent = preset_check._api_reason(transfer_error(documents.consent_required(COLLECTION)))
    assert consent == (f"Globus needs your consent to access collection {COLLECTION} (Missing "
                       "required data_access consent): run `braas-globus login`")
    assert recorded(globus)  # so that the login it names can satisfy it

    session = preset_check._api_reason(transfer_error(
        documents.session_login_failed(COLLECTION, "it4i.cz", REAUTH)))
    assert session.startswith("Globus needs you to log in again with an identity from it4i.cz")

    denied = preset_check._api_reason(transfer_error(documents.permission_denied(COLLECTION)))
    assert denied == "permission denied (EndpointPermissionDenied): ask the centre for access"

    other = preset_check._api_reason(transfer_error(
        (502, {"code": "ExternalError.DirListingFailed", "message": "Command Failed:\nreset"})))
    assert other == "502 ExternalError.DirListingFailed: Command Failed: reset"
