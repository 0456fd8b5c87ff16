"""Health, readiness and version endpoints, and the request id on every answer."""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

import pytest
from flask import Flask
from sqlalchemy import update

from referrals.db import utcnow
from referrals.extensions import db
from referrals.main.health import migration_heads
from referrals.reports.models import JobRun
from referrals.scheduler.health import beat
from referrals.scheduler.jobs import MONTHLY_RETURNS, RETENTION
from referrals.scheduler.models import SchedulerHeartbeat
from referrals.security import public


def ready(client):
    response = client.get("/health/ready")
    return response.status_code, response.get_json()["checks"]


def test_live_answers_without_a_login(client) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert client.get("/health").get_json() == {"status": "ok"}


def test_every_answer_carries_a_request_id_and_a_sane_incoming_one_is_kept(client) -> None:
    made = client.get("/health/live").headers["X-Request-ID"]
    assert len(made) == 32 and made != client.get("/health/live").headers["X-Request-ID"]

    kept = client.get("/health/live", headers={"X-Request-ID": "lb-7f3a9c21.e5"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a9c21.e5"
    refused = ["short", "x" * 65, "Evangeline Thistlewood", 'a"}{"forged":1}']
    for bad in refused:
        answer = client.get("/health/live", headers={"X-Request-ID": bad})
        assert answer.headers["X-Request-ID"] != bad
        assert len(answer.headers["X-Request-ID"]) == 32


def test_the_500_page_shows_the_request_id(app: Flask, client) -> None:
    @public
    def broken():
        raise RuntimeError("boom")

    app.view_functions["main.accessibility"], original = (
        broken,
        app.view_functions["main.accessibility"],
    )
    try:
        response = client.get("/accessibility", headers={"X-Request-ID": "support-ref-000123"})
    finally:
        app.view_functions["main.accessibility"] = original
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "support-ref-000123"
    assert "support-ref-000123" in response.get_data(as_text=True)


def test_ready_needs_a_scheduler_heartbeat(app: Flask, client) -> None:
    status, checks = ready(client)
    assert status == 503
    assert checks["database"]["ok"] and checks["migrations"]["ok"]
    assert checks["scheduler"] == {"ok": False, "last_heartbeat": None}

    beat(app, "host-a:1")
    status, checks = ready(client)
    assert status == 200, checks
    assert checks["scheduler"]["ok"] and checks["jobs"] == {"ok": True, "failing": []}


def test_a_stale_heartbeat_is_not_ready(app: Flask, client) -> None:
    beat(app, "host-a:1")
    max_age = app.config["SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS"]
    db.session.execute(
        update(SchedulerHeartbeat).values(beat_at=utcnow() - timedelta(seconds=max_age + 60))
    )
    db.session.commit()
    status, checks = ready(client)
    assert status == 503 and not checks["scheduler"]["ok"]

    beat(app, "host-b:2")  # another scheduler, elsewhere, is alive: that is enough
    assert ready(client)[0] == 200


def test_a_failing_job_is_not_ready_until_it_next_succeeds(app: Flask, client) -> None:
    beat(app, "host-a:1")
    now = utcnow()

    def run(job_id: str, outcome: str, minutes_ago: int) -> None:
        at = now - timedelta(minutes=minutes_ago)
        db.session.add(
            JobRun(job_id=job_id, period_key="k", outcome=outcome, started_at=at, finished_at=at)
        )
        db.session.commit()

    run(MONTHLY_RETURNS, "succeeded", 30)
    run(RETENTION, "failed", 20)
    run(RETENTION, "skipped", 10)  # a skip says nothing about the failure
    status, checks = ready(client)
    assert status == 503 and checks["jobs"] == {"ok": False, "failing": [RETENTION]}

    run(RETENTION, "succeeded", 5)
    assert ready(client)[0] == 200


def test_version_gives_the_release_and_the_migration(client) -> None:
    answer = client.get("/version").get_json()
    try:
        expected = version("arts-referrals")
    except PackageNotFoundError:  # pragma: no cover - the project is always installed here
        pytest.fail("the project is not installed")
    assert answer["release"] == expected
    assert answer["migration"] == answer["code_migration"] == list(migration_heads())
    assert answer["migration"]
