"""The providers' own Python clients, pointed at the simulator, parse its answers: a check that
the simulator speaks the APIs as their makers' code expects them."""

from __future__ import annotations

import pytest
from lobstrio import LobstrClient
from lobstrio.exceptions import AuthError, NotFoundError
from upload_post import UploadPostClient
from upload_post.api_client import UploadPostError


@pytest.fixture
def upload_post_client(polled_sim, monkeypatch):
    monkeypatch.setattr(UploadPostClient, "BASE_URL", f"{polled_sim.base_url}/api")
    return UploadPostClient(api_key=polled_sim.fixtures["upload_post"].token)


def test_upload_post_client_reads_status_history_and_errors(polled_sim, upload_post_client):
    up = polled_sim.fixtures["upload_post"]
    up.add("request", "r-1", ["in_progress"], platforms=["x", "linkedin"])
    up.add("job", "j-1", ["completed"], platforms=["threads"])

    status = upload_post_client.get_status("r-1")
    job = upload_post_client.get_job_status("j-1")
    history = upload_post_client.get_history(page=1, limit=20)

    assert (status["request_id"], status["status"], status["completed"], status["total"]) == (
        "r-1", "in_progress", 1, 2)
    assert [r["platform"] for r in status["results"]] == ["x"]
    assert (job["job_id"], job["status"], job["results"][0]["success"]) == ("j-1", "completed",
                                                                           True)
    assert history["total"] == 2 and len(history["history"]) == 2
    assert {e.get("request_id") or e.get("job_id") for e in history["history"]} == {"r-1", "j-1"}
    with pytest.raises(UploadPostError, match="No upload request found"):
        upload_post_client.get_status("missing")
    with pytest.raises(UploadPostError, match="Invalid limit"):
        upload_post_client.get_history(limit=7)


def test_upload_post_client_with_a_wrong_key(polled_sim, monkeypatch):
    monkeypatch.setattr(UploadPostClient, "BASE_URL", f"{polled_sim.base_url}/api")
    with pytest.raises(UploadPostError, match="Invalid or expired token"):
        UploadPostClient(api_key="not-the-key").get_status("r-1")


def test_lobstr_client_reads_202_200_and_404(polled_sim):
    lb = polled_sim.fixtures["lobstr"]
    running = lb.add("d" * 32, ["PROGRESS", "SUCCESS"], valid=10, invalid=1, duplicates=2)
    client = LobstrClient(token=lb.token, base_url=f"{polled_sim.base_url}/v1/")

    before = client.tasks.upload_status(running)
    polled_sim.advance()
    after = client.tasks.upload_status(running)

    assert before.state == "PROGRESS" and before.meta.valid == 0  # meta null -> client zeros
    assert (after.state, after.meta.valid, after.meta.invalid, after.meta.inserted,
            after.meta.duplicates) == ("SUCCESS", 10, 1, 8, 2)
    with pytest.raises(NotFoundError):
        client.tasks.upload_status("e" * 32)
    with pytest.raises(AuthError):
        LobstrClient(token="wrong", base_url=f"{polled_sim.base_url}/v1/").tasks.upload_status(
            running)
