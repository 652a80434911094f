"""What a Globus answer that only a login can mend becomes: a one-line ``LoginNeeded``.

An expired or revoked login (401, ``invalid_grant``, a token the saved login lacks) says to
run ``braas-globus login``. A service may also answer that the login lacks something it can
name: a consent (Transfer's 403 ``ConsentRequired`` with ``required_scopes``, for a mapped
collection's data_access) or a session (a Globus Auth Requirements Error with
``authorization_parameters``: an identity from a domain, MFA, a policy; Transfer sends one in
a 502 ``ExternalError.DirListingFailed.LoginFailed``). :func:`login_needed_from` records such a
requirement for the next login (``auth_requirements.py``) and says to log in.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import globus_sdk
from globus_sdk import GlobusAPIError
from globus_sdk.gare import GARE, GlobusAuthorizationParameters, to_gare
from globus_sdk.token_storage import TokenValidationError
from globus_sdk.token_storage.validating_token_storage import (
    IdentityMismatchError,
    UnmetScopeRequirementsError,
)

from .auth_requirements import LOGIN, requirement_needed
from .auth_tokens import PrivateTokenFile
from .errors import LoginNeeded, RunError

EXPIRED = f"your Globus login has expired or was revoked: {LOGIN}"
NOT_LOGGED_IN = f"you are not logged in to Globus: {LOGIN}"


def token_login_needed(error: TokenValidationError,
                       storage: PrivateTokenFile | None) -> LoginNeeded:
    """What to say when the saved tokens do not fit (``storage``: the app's, where known)."""
    if isinstance(error, IdentityMismatchError):
        return LoginNeeded("this login is for another Globus identity than the saved one: run "
                           "`braas-globus logout`, then `braas-globus login`")
    if storage is not None and not storage.get_token_data_by_resource_server():
        return LoginNeeded(NOT_LOGGED_IN)
    if isinstance(error, UnmetScopeRequirementsError):
        return LoginNeeded("your Globus login does not cover all that braas-globus needs now "
                           f"(a centre's collections, perhaps): {LOGIN}")
    return LoginNeeded(EXPIRED)


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
                return token_login_needed(seen, None)
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


def _gare_in(err: GlobusAPIError) -> GARE | None:
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
