"""transfer.py's two readings of a Globus error: whether the service does not answer for
now (``service_unavailable``), and why it refused (``refusal_reason``)."""

from __future__ import annotations

import globus_sdk
import pytest
from globus_sdk.testing import construct_error

from braas_globus.transfer import refusal_reason, service_unavailable
from tests.stand_ins import globus_documents as documents

COLLECTION = "0b7c1a5e-2d3f-4e6a-9b8c-7d6e5f4a3b2c"


def transfer_error(status: int, body: dict) -> globus_sdk.TransferAPIError:
    return construct_error(http_status=status, body=body, error_class=globus_sdk.TransferAPIError)


def login_failed() -> globus_sdk.TransferAPIError:
    return transfer_error(*documents.session_login_failed(COLLECTION, "uni.example",
                                                          "the centre wants your university"))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_busy_or_failing_service_is_unavailable(home, status):
    assert service_unavailable(transfer_error(status, {"code": "ServiceUnavailable",
                                                       "message": "try again"}))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_a_refusal_is_not_unavailability(home, status):
    assert not service_unavailable(transfer_error(status, {"code": "Refused", "message": "no"}))


def test_a_502_that_asks_for_a_login_is_not_unavailability(home):
    assert not service_unavailable(login_failed())
    assert "braas-globus login" in refusal_reason(login_failed())


def test_other_errors_are_not_unavailability():
    assert not service_unavailable(globus_sdk.NetworkError("down", ConnectionError()))
    assert not service_unavailable(ValueError("no"))


def test_a_refusal_reads_status_code_and_message(home):
    err = transfer_error(409, {"code": "Conflict", "message": "a task is running"})
    assert refusal_reason(err) == "409 Conflict: a task is running"
