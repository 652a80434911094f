"""Error documents in the shapes Globus really sends, for tests of what a user is told.

Each is a function of the collection (or endpoint) id, returning (HTTP status, JSON body).
Where a shape comes from:

- ``consent_required``: Transfer's answer to ``operation_ls`` on a GCSv5 mapped collection
  whose data_access consent the login lacks (403; the same ``required_scopes`` at the top,
  for older clients, and inside ``authorization_parameters``), as logged by users of
  globus-cli against a real centre.
- ``session_login_failed``: Transfer's 502 when a collection's policy wants an identity from
  a domain in the session (``ExternalError.DirListingFailed.LoginFailed`` with the
  requirement in ``authorization_parameters``; globus-sdk-javascript keeps one as a fixture).
- ``session_in_gridftp_result``: the same refusal from an older Transfer, with the
  requirement only inside the GridFTP JSON result in the message's text.
- ``permission_denied``: a true refusal by the collection (globus-sdk's own testing data for
  ``operation_stat``, case ``permission_denied``): nothing a login can mend.
"""

from __future__ import annotations

from typing import Any

Document = tuple[int, dict[str, Any]]


def data_access_scope(collection: str) -> str:
    return ("urn:globus:auth:scope:transfer.api.globus.org:all"
            f"[*https://auth.globus.org/scopes/{collection}/data_access]")


def consent_required(collection: str) -> Document:
    scope = data_access_scope(collection)
    return 403, {
        "authorization_parameters": {
            "required_scopes": [scope],
            "session_message": "Missing required data_access consent",
        },
        "code": "ConsentRequired",
        "message": "Missing required data_access consent",
        "request_id": "6NCGAqt7l",
        "required_scopes": [scope],
        "resource": f"/operation/endpoint/{collection}/ls",
    }


def session_login_failed(collection: str, domain: str, message: str) -> Document:
    return 502, {
        "authorization_parameters": {
            "session_message": message,
            "session_required_identities": [],
            "session_required_mfa": False,
            "session_required_single_domain": [domain],
        },
        "code": "ExternalError.DirListingFailed.LoginFailed",
        "message": (
            "Command Failed: Error (login)\n"
            f"Endpoint: Centre scratch ({collection})\n"
            "Server: 195.113.250.20:443\n"
            "Message: Login Failed\n"
            "---\n"
            "Details: 530-Login incorrect. : GlobusError: v=1 c=LOGIN_DENIED\\r\\n"
            "530-GridFTP-Message: None of your identities are from domains allowed by "
            "resource policies\\r\\n"
            '530-GridFTP-JSON-Result: {"DATA_TYPE": "result#1.0.0", "code": '
            '"permission_denied", "detail": {"DATA_TYPE": "not_from_allowed_domain#1.0.0", '
            f'"allowed_domains": ["{domain}"]}}, "has_next_page": false, '
            '"http_response_code": 403, "message": "None of your identities are from '
            'domains allowed by resource policies"}\\r\\n530 End.\\r\\n\n'),
        "request_id": "Ixh3kQvyb",
        "resource": f"/operation/endpoint/{collection}/ls",
    }


def session_in_gridftp_result(collection: str, domain: str) -> Document:
    return 502, {
        "code": "ExternalError.DirListingFailed.LoginFailed",
        "message": (
            "Command Failed: Error (login)\n"
            f"Endpoint: Centre scratch ({collection})\n"
            "Server: 195.113.250.20:443\n"
            "Message: Login Failed\n"
            "---\n"
            "Details: 530-Login incorrect. : GlobusError: v=1 c=LOGIN_DENIED\\r\\n"
            "530-GridFTP-Message: None of your authenticated identities are from domains "
            "allowed by resource policies\\r\\n"
            '530-GridFTP-JSON-Result: {"DATA_TYPE": "result#1.1.0", '
            f'"authorization_parameters": {{"session_required_single_domain": ["{domain}"]}}, '
            '"code": "permission_denied", "detail": {"DATA_TYPE": '
            f'"not_from_allowed_domain#1.0.0", "allowed_domains": ["{domain}"]}}, '
            '"has_next_page": false, "http_response_code": 403, "message": "None of your '
            'authenticated identities are from domains allowed by resource policies"}'
            "\\r\\n530 End.\\r\\n\n"),
        "request_id": "pX2m0dC4r",
        "resource": f"/operation/endpoint/{collection}/ls",
    }


def permission_denied(collection: str) -> Document:
    return 403, {
        "code": "EndpointPermissionDenied",
        "message": (f"Denied by endpoint, Error (list)\nEndpoint: Centre scratch ({collection})"
                    "\nServer: 195.113.250.20:443\nCommand: MLST /foo\nMessage: Fatal FTP "
                    "Response\n---\nDetails: 500 Command failed : Path not allowed.\\r\\n\n"),
        "request_id": "aaabbbccc",
        "resource": f"/v0.10/operation/endpoint/{collection}/stat",
    }
