"""What Globus really does to a job, played by the stand-ins' adversarial answers
(`stand_in.play`): Compute's states before a task runs, task ids the service has forgotten,
429 and 5xx answers that outlast the SDK's own retries, and a transfer the service stops
reporting on. Real SDK clients (with their real retry logic; only its sleeps are skipped),
our code, real Blender on a real endpoint engine.
"""
# ruff: noqa: F811  (tests take the imported `centre` fixture as an argument)

from __future__ import annotations

import warnings

import pytest

from .test_globus_backend import CENTRE, ENDPOINT, MINE, centre, submit  # noqa: F401


@pytest.fixture
def sdk_retries(monkeypatch) -> list[float]:
    """The SDK retries 429 and 5xx answers itself (5 retries, exponential backoff up to
    10 s each); the tests keep the retries and skip the sleeps, recording them."""
    from globus_sdk.transport.requests import RequestsTransport

    slept: list[float] = []
    monkeypatch.setattr(RequestsTransport, "_retry_sleep",
                        lambda self, config, ctx: slept.append(config.backoff(ctx)))
    return slept


def sent_task_ids(centre) -> list[str]:
    return list(centre.compute.futures)


def batch_of(task_ids: list[str], status: str) -> dict:
    """A batch_status answer as the service gives it while tasks have not run yet."""
    return {"response": "batch",
            "results": {t: {"task_id": t, "status": status} for t in task_ids}}


OUTAGE = (503, {"code": "ServiceUnavailable", "message": "Service Unavailable",
                "request_id": "stand-in"})
BUSY = (429, {"code": "TooManyRequests", "message": "Rate limit exceeded",
              "request_id": "stand-in"})
SDK_TRIES = 6  # the first request and the SDK's 5 retries


def test_a_task_waiting_at_the_centre_stays_running_until_it_ends(cli, scene, centre):
    """received, waiting-for-ep and waiting-for-nodes (a block still queued) are not ends."""
    job = submit(cli, scene("anim6"), "--frames", "1-2")
    centre.compute.wait_all()
    ids = sent_task_ids(centre)
    for state in ("received", "waiting-for-ep", "waiting-for-nodes", "running"):
        centre.compute.play("batch_status", 200, batch_of(ids, state))
        shown = cli("info", job["id"], "--json")
        assert shown.code == 0, shown.stderr
        assert shown.json()["state"] == "RUNNING", state
    assert centre.compute.played == ["batch_status"] * 4
    assert cli("download", job["id"]).code == 0
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_a_task_the_service_no_longer_knows_fails_its_attempt_and_is_retried(
        cli, scene, centre):
    """Results are kept for a while only; a forgotten (expired, abandoned) task id comes
    back as "failed" with a reason: that attempt fails with it, and the retry renders."""
    job = submit(cli, scene("anim6"), "--frames", "1-2", "--retries", "1")
    centre.compute.wait_all()
    centre.compute.futures.clear()  # the service has forgotten the first attempt
    shown = cli("info", job["id"], "--json")
    assert shown.code == 0, shown.stderr
    (task,) = shown.json()["tasks"]
    assert task["attempts"] == 2 and task["state"] == "RUNNING"  # sent again at once
    centre.compute.wait_all()
    assert cli("download", job["id"]).code == 0
    info = cli("info", job["id"], "--json").json()
    assert info["state"] == "FINISHED" and info["frames"]["done"] == 2


def test_without_retries_a_forgotten_task_ends_failed_with_the_services_reason(
        cli, scene, centre):
    job = submit(cli, scene("anim6"), "--frames", "1", "--retries", "0")
    centre.compute.wait_all()
    centre.compute.futures.clear()
    info = cli("info", job["id"], "--json").json()
    assert info["state"] == "FAILED"
    (task,) = info["tasks"]
    assert "unknown task id" in task["reason"] and "Compute service" in task["reason"]
    listed = cli("list", "--json")
    assert listed.code == 0 and listed.json()[0]["state"] == "FAILED"


@pytest.mark.parametrize("answer", [OUTAGE, BUSY], ids=["503", "429"])
def test_a_compute_outage_is_a_warning_and_the_job_goes_on(cli, scene, centre, sdk_retries,
                                                           answer):
    job = submit(cli, scene("anim6"), "--frames", "1")
    centre.compute.wait_all()
    for _ in range(SDK_TRIES):
        centre.compute.play("batch_status", *answer)
    shown = cli("info", job["id"], "--json")
    assert shown.code == 0, shown.stderr
    info = shown.json()
    assert info["state"] == "RUNNING"
    assert f"the Compute service does not answer ({answer[0]}" in info["warning"]
    assert len(sdk_retries) == SDK_TRIES - 1  # the SDK's own retries ran
    human = cli("info", job["id"])
    assert human.code == 0 and "Traceback" not in human.stderr
    assert cli("download", job["id"]).code == 0  # Globus answers again
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_list_and_wait_go_on_through_a_compute_outage(cli, scene, centre, sdk_retries,
                                                      monkeypatch):
    from braas_globus.dispatch.globus import GlobusBackend

    monkeypatch.setattr(GlobusBackend, "poll_seconds", 0.1)
    for _ in range(2 * SDK_TRIES):  # two whole refreshes of --wait get no answer
        centre.compute.play("batch_status", *OUTAGE)
    waited = cli("submit", scene("anim6"), "--preset", "karolina-cpu", "--frames", "1",
                 "--wait", "--json")
    assert waited.code == 0, waited.stderr
    assert waited.json()["state"] == "FINISHED"
    assert centre.compute.played == ["batch_status"] * 2 * SDK_TRIES
    for _ in range(SDK_TRIES):
        centre.compute.play("batch_status", *OUTAGE)
    listed = cli("list", "--json")
    assert listed.code == 0, listed.stderr
    assert listed.json()[0]["state"] == "FINISHED"


def test_a_transfer_status_outage_during_staging_is_waited_out(cli, scene, centre,
                                                                sdk_retries):
    for _ in range(SDK_TRIES):
        centre.transfer.play("task", *OUTAGE)
    job = submit(cli, scene("anim6"), "--frames", "1")
    assert centre.transfer.played == ["task"] * SDK_TRIES
    centre.compute.wait_all()
    assert cli("download", job["id"]).code == 0
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_a_refused_transfer_status_keeps_the_job_for_resume(cli, scene, centre):
    """The upload was accepted, then Globus refuses to report on it: the transfer may still
    run, so the job is kept (never deleted under a running transfer) and resumes."""
    centre.transfer.play("task", 403, {"code": "PermissionDenied",
                                       "message": "You do not have permission to view this task",
                                       "request_id": "stand-in"})
    result = cli("submit", scene("anim6"), "--preset", "karolina-cpu", "--frames", "1")
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "cannot follow the transfer" in line and "PermissionDenied" in line
    assert "resume" in line
    (job,) = cli("list", "--json").json()
    assert job["state"] == "CONFIGURING"
    assert cli("resume", job["id"]).code == 0
    centre.compute.wait_all()
    assert cli("download", job["id"]).code == 0
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_a_compute_outage_at_submit_leaves_the_tasks_queued_for_resume(cli, scene, centre,
                                                                       sdk_retries):
    for _ in range(SDK_TRIES):
        centre.compute.play("submit", *OUTAGE)
    result = cli("submit", scene("anim6"), "--preset", "karolina-cpu", "--frames", "1")
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "503" in line and "resume" in line
    (job,) = cli("list", "--json").json()
    assert job["state"] == "QUEUED"
    assert cli("resume", job["id"]).code == 0
    centre.compute.wait_all()
    assert cli("download", job["id"]).code == 0
    assert cli("info", job["id"], "--json").json()["state"] == "FINISHED"


def test_a_consent_the_upload_lacks_says_login_then_resume(cli, scene, centre, home):
    """403 ConsentRequired from submit_transfer reaches the user as the login it needs, not
    as a failed upload to ask the centre about; the job waits for `resume`."""
    from .stand_ins.globus_documents import consent_required

    centre.transfer.play("submit", *consent_required(CENTRE))
    result = cli("submit", scene("anim6"), "--preset", "karolina-cpu", "--frames", "1")
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "needs your consent" in line and "braas-globus login" in line
    assert "resume" in line
    assert CENTRE in (home / "globus" / "requirements.json").read_text()
    (job,) = cli("list", "--json").json()
    assert job["state"] == "CONFIGURING"


def test_a_session_requirement_at_download_names_the_login(cli, scene, centre, home):
    from .stand_ins.globus_documents import session_login_failed

    job = submit(cli, scene("anim6"), "--frames", "1")
    centre.compute.wait_all()
    centre.transfer.play("ls", *session_login_failed(CENTRE, "it4i.cz", "IT4I wants you"))
    result = cli("download", job["id"])
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "it4i.cz" in line and "braas-globus login" in line
    assert "it4i.cz" in (home / "globus" / "requirements.json").read_text()
    assert cli("download", job["id"]).code == 0  # once satisfied, it goes on


def test_a_centre_with_another_python_gives_no_sdk_warning(cli, scene, centre):
    """The SDK warns in many lines when the workers' Python or dill differ (they do, in a
    centre's image); the function travels by source, so it is no news to the user."""
    from .stand_ins.globus_services import COMPUTE_TASK_DETAILS

    job = submit(cli, scene("anim6"), "--frames", "1")
    centre.compute.wait_all()
    (task_id,) = sent_task_ids(centre)
    other = {**COMPUTE_TASK_DETAILS, "python_version": "3.10.4", "dill_version": "0.3.5.1"}
    ended = centre.compute._status(task_id)
    centre.compute.play("batch_status", 200, {"response": "batch",
                                              "results": {task_id: {**ended, "details": other}}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as a user's Python shows a first warning
        shown = cli("info", job["id"])
    assert shown.code == 0 and "Warning" not in shown.stderr
    assert centre.compute.played == ["batch_status"]
    assert [str(w.message) for w in caught if "Environment differences" in str(w.message)] == []


def test_compute_requests_keep_within_the_services_rate():
    """The service allows about 20 requests per 10 s: 60 asked at once go out at most 18 in
    any 10 s (clock and sleep are the pacer's own, so no time passes here)."""
    from braas_globus.dispatch.globus import RequestPacer

    now = [0.0]
    pacer = RequestPacer(clock=lambda: now[0],
                         sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    sent = []
    for _ in range(60):
        pacer.wait()
        sent.append(now[0])
    assert max(sum(1 for t in sent if start <= t < start + 10) for start in sent) == 18
    assert sent[-1] >= 30  # 60 requests take three windows, not none


def test_every_compute_request_of_a_job_is_paced(cli, scene, centre, monkeypatch):
    from braas_globus.dispatch import globus as globus_backend

    asked = []
    monkeypatch.setattr(globus_backend.COMPUTE_PACE, "wait", lambda: asked.append(1))
    job = submit(cli, scene("anim6"), "--frames", "1")
    assert len(asked) == 1  # batch_run
    centre.compute.wait_all()
    assert cli("info", job["id"], "--json").code == 0
    assert len(asked) == 2  # get_batch_result
