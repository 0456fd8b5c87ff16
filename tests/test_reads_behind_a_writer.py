"""Reads never fail behind a writer: another process holds SQLite's write lock (as `flask kpi
regenerate` or a long job may) for longer than the busy timeout, and meanwhile

- every GET of every page and API route, for every role, answers as it does when the database
  is idle (200, or the 302/403/404 the authorisation matrix expects): no page needs the lock;
  the session's last-seen time is skipped and access entries wait in the spool;
- a form sent in that time answers the service's own "try again" page (503, Retry-After) with
  what was typed, and nothing of it is written; the API answers problem+json 503;
- once the lock is released, the spooled access entries are moved into the audit table.

The lock is held by a real second process until the test tells it to let go, so every request
runs while it is held whatever the machine's speed; the form's write waits out the whole busy
timeout before giving up, which shows the hold outlasted it. No assertion reads a clock.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals import audit_spool, clock
from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role, UserSession
from referrals.auth.services import issue_api_token
from referrals.extensions import db
from referrals.intake.models import ContactAttempt, Referral
from referrals.ratelimits import limiter_for
from tests.conftest import csrf_token, database_url, make_app, sign_in
from tests.test_authz_matrix import Caller, cases, expected
from tests.world import ROLES, build_world
from tests.write_lock import another_process_can_write

BUSY_TIMEOUT_MS = 300  # the hold below lasts until released: many times this

_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
connection.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()  # until the test says so (or closes the pipe)
connection.execute("ROLLBACK")
print("released", flush=True)
"""


class WriteLockHolder:
    """A second process holding SQLite's write lock (`BEGIN IMMEDIATE`) until `release`."""

    def __init__(self, path: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "held"

    @property
    def holding(self) -> bool:
        return self.process.poll() is None

    def release(self) -> None:
        if not self.holding:
            return
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("release\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"
        self.process.wait(timeout=30)


@pytest.fixture()
def impatient_app(app: Flask, database_root: Path, tmp_path: Path) -> Iterator[Flask]:
    """The test database served by an app whose writes give up after BUSY_TIMEOUT_MS, which
    touches the session on every request, and whose spool is this test's own."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single write lock, held by another process")
    other = make_app(
        database_url(database_root),
        SQLITE_BUSY_TIMEOUT_MS=BUSY_TIMEOUT_MS,
        SESSION_TOUCH_INTERVAL=0,
        AUDIT_SPOOL_DIR=str(tmp_path / "spool"),
    )
    yield other
    with other.app_context():
        db.engine.dispose()


def _caller(app: Flask, user: Any) -> Caller:
    pages = app.test_client()
    assert sign_in(pages, user.email).status_code == 302
    token = issue_api_token(None, user)
    db.session.commit()
    return Caller(pages, app.test_client(), {"Authorization": f"Bearer {token}"}, "")


def _last_seen() -> dict[int, Any]:
    db.session.rollback()
    rows = db.session.execute(select(UserSession.id, UserSession.last_seen_at)).all()
    return {row_id: seen for row_id, seen in rows}


def _count(model: Any) -> int:
    db.session.rollback()
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


# The pages each role works from, and the API's reads; every GET route is walked by the slow
# test below.
MAIN_PAGES = frozenset(
    {
        "main.home",
        "notifications.inbox",
        "intake.referrals",
        "intake.referral",
        "intake.new_referral",
        "intake.contact",
        "courses.directory",
        "courses.course",
        "courses.enrolment",
        "courses.sessions",
        "courses.register",
        "reports.dashboard",
        "reports.kpi_return",
        "admin.audit_log",
        "admin.users",
        "admin.jobs",
        "admin.person_access",
        "api.me",
        "api.list_referrals",
        "api.get_referral",
        "api.list_courses",
        "api.get_register",
        "api.list_kpi_returns",
    }
)


def _read_everything(
    app: Flask, world: Any, callers: dict[Role, Caller], endpoints: frozenset[str] | None
) -> tuple[int, list[str]]:
    """GET every route in `endpoints` (None: all) as every role, with the objects inside and
    outside its scope; the answers the authorisation matrix expects, or failures."""
    failures: list[str] = []
    asked = 0
    with app.app_context():
        for role in ROLES:
            # Each role's walk starts with fresh request counts: the public pages' per-address
            # limit is not what this test is about, and every role here shares one address.
            limiter_for(app).reset()
            for case in cases(app, world, role):
                if case.method != "GET" or case.rule.endpoint == "auth.logout":
                    continue
                if endpoints is not None and case.rule.endpoint not in endpoints:
                    continue
                description, ok = expected(case, role)
                response = callers[role].ask(case)
                asked += 1
                if not ok(response):
                    failures.append(
                        f"{role.value}: {case}: expected {description}, got {response.status_code}"
                    )
    return asked, failures


def _reads_and_a_form_behind_the_lock(
    impatient_app: Flask, endpoints: frozenset[str] | None
) -> int:
    world = build_world()
    callers = {role: _caller(impatient_app, world.user(role)) for role in ROLES}
    link_worker = callers[Role.LINK_WORKER].pages
    referral_id = world.ids("referral")["ref_a"]
    contact_url = f"/referrals/{referral_id}/contact"
    token = csrf_token(link_worker, contact_url)
    attempts, referrals = _count(ContactAttempt), _count(Referral)
    entries_before = _count(AuditEvent)
    last_seen_before = _last_seen()
    spool = Path(impatient_app.config["AUDIT_SPOOL_DIR"])
    db.session.commit()  # outside a request the test's own transaction would hold the lock

    holder = WriteLockHolder(db.engine.url.database or "")
    try:
        asked, failures = _read_everything(impatient_app, world, callers, endpoints)
        form = {"method": "phone", "outcome": "spoke", "note": "Call back on Thursday"}
        sent = link_worker.post(contact_url, data={**form, "csrf_token": token})
        assert holder.holding  # every request above ran while the lock was held
        spooled = audit_spool.waiting(spool)
    finally:
        holder.release()

    assert not failures, f"{len(failures)} of {asked} reads failed:\n" + "\n".join(failures)

    page = sent.get_data(as_text=True)
    assert sent.status_code == 503, page[:500]
    assert sent.headers["Retry-After"].isdigit()
    assert "The service is busy: try again" in page
    assert "Call back on Thursday</dd>" in page  # shown as typed, and kept to send again
    assert 'name="note" value="Call back on Thursday"' in page
    assert "Send again" in page
    assert _count(ContactAttempt) == attempts and _count(Referral) == referrals

    # Nothing that waits was written while the lock was held: sessions were not touched,
    # and what the pages showed was kept in the spool.
    assert _last_seen() == last_seen_before
    assert spooled > 0
    assert _count(AuditEvent) == entries_before

    # The next page that records a view moves the spool in; the sessions are touched again.
    assert link_worker.get(f"/referrals/{referral_id}").status_code == 200
    assert audit_spool.waiting(spool) == 0
    assert _count(AuditEvent) > entries_before + spooled
    assert _last_seen() != last_seen_before

    # And the form sent again from the try-again page is saved.
    resent = link_worker.post(contact_url, data={**form, "csrf_token": token})
    assert resent.status_code == 302
    assert _count(ContactAttempt) == attempts + 1
    return asked


def test_main_pages_answer_and_a_form_says_try_again_while_another_process_holds_the_lock(
    app: Flask, impatient_app: Flask
) -> None:
    assert _reads_and_a_form_behind_the_lock(impatient_app, MAIN_PAGES) > 50


@pytest.mark.slow
def test_every_get_route_answers_for_every_role_while_another_process_holds_the_lock(
    app: Flask, impatient_app: Flask
) -> None:
    """The instrument: any write a GET makes that waits for the lock fails this walk."""
    assert _reads_and_a_form_behind_the_lock(impatient_app, None) > 500


def test_an_api_write_behind_the_lock_answers_problem_json_503(
    app: Flask, impatient_app: Flask
) -> None:
    world = build_world()
    admin = world.user(Role.ADMIN)
    token = issue_api_token(None, admin)
    db.session.commit()  # and so holds no lock
    client: FlaskClient = impatient_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    holder = WriteLockHolder(db.engine.url.database or "")
    try:
        response = client.post("/api/v1/referrals", json={}, headers=headers)
        assert holder.holding
    finally:
        holder.release()
    assert response.status_code == 503, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"].isdigit()
    assert response.json is not None and response.json["status"] == 503


# KPI returns: computed holding no write lock, written in a short transaction. ---------------


@pytest.fixture()
def lock_checks(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(what, whether another process could take the write lock meanwhile) for each slow read
    of a return: the figures, section A, and the check of a regeneration's reason."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single write lock")
    from referrals.reports import services

    path = db.engine.url.database or ""
    seen: list[tuple[str, bool]] = []

    def checked(name: str) -> None:
        original = getattr(services, name)

        def run(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, another_process_can_write(path)))
            return original(*args, **kwargs)

        monkeypatch.setattr(services, name, run)

    for name in ("compute", "scheme_figures", "names_people_in"):
        checked(name)
    return seen


def test_kpi_commands_and_the_monthly_job_compute_holding_no_write_lock(
    app: Flask, runner: Any, lock_checks: list[tuple[str, bool]]
) -> None:
    from referrals.reports.periods import Period
    from referrals.scheduler.jobs import MONTHLY_RETURNS, execute
    from tests import factories
    from tests.factories import make_contract, make_course

    admin = factories.make_user(Role.ADMIN)
    last_month = Period.containing(clock.today()).previous()
    contract = make_contract(start_date=last_month.previous().start)
    make_course(factories.make_organisation(OrganisationKind.PROVIDER), contract=contract)
    db.session.commit()

    made = runner.invoke(args=["kpi", "generate", "--period", last_month.key, "--all-activity"])
    assert made.exit_code == 0, made.output
    again = runner.invoke(
        args=[
            "kpi", "regenerate", "--period", last_month.key, "--contract", str(contract.id),
            "--reason", "Late registers entered", "--by", admin.email,
        ]
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    db.session.commit()
    run = execute(app, MONTHLY_RETURNS, today=clock.today())
    assert run.error == "", run.error

    names = {name for name, _free in lock_checks}
    assert {"compute", "names_people_in"} <= names
    held = [name for name, free in lock_checks if not free]
    assert not held, f"computed holding the write lock: {held}"


def test_a_job_moves_spooled_access_entries_in(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from referrals.audit import _rows
    from referrals.scheduler.jobs import JOBS, execute

    monkeypatch.setitem(app.config, "AUDIT_SPOOL_DIR", str(tmp_path / "spool"))
    with app.test_request_context("/referrals/7"):
        rows = _rows(None, "referral.viewed", [(None, "referral", 7, {"via": "test"})])
    audit_spool.keep(audit_spool.folder(), rows)
    before = _count(AuditEvent)
    db.session.commit()
    execute(app, JOBS[0].id, today=clock.today())
    assert audit_spool.waiting(audit_spool.folder()) == 0
    moved = db.session.scalar(select(AuditEvent).where(AuditEvent.object_id == "7"))
    assert moved is not None and moved.at == rows[0]["at"]
    assert moved.detail == {"via": "test"} and _count(AuditEvent) > before


def test_on_postgresql_a_write_behind_a_lock_says_try_again_and_reads_are_served(
    app: Flask, database_root: Path
) -> None:
    """PostgreSQL locks rows and tables, not the database: another transaction holds a lock
    that blocks writes to the contact attempts and the user's sessions (not reads) for longer
    than the lock timeout. Pages answer (the session touch is skipped), the form says try again."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's lock timeout")
    world = build_world()
    other = make_app(
        database_url(database_root), POSTGRES_LOCK_TIMEOUT_MS=300, SESSION_TOUCH_INTERVAL=0
    )
    caller = _caller(other, world.user(Role.LINK_WORKER))
    referral_id = world.ids("referral")["ref_a"]
    contact_url = f"/referrals/{referral_id}/contact"
    token = csrf_token(caller.pages, contact_url)
    attempts = _count(ContactAttempt)
    db.session.commit()
    with db.engine.connect() as blocker:
        blocker.exec_driver_sql("LOCK TABLE contact_attempt, user_session IN EXCLUSIVE MODE")
        pages = [caller.pages.get(path) for path in ("/", "/referrals/", contact_url)]
        sent = caller.pages.post(
            contact_url,
            data={"csrf_token": token, "method": "phone", "outcome": "spoke", "note": "Later"},
        )
        blocker.rollback()
    with other.app_context():
        db.engine.dispose()
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert sent.status_code == 503 and sent.headers["Retry-After"].isdigit()
    assert 'name="note" value="Later"' in sent.get_data(as_text=True)
    assert _count(ContactAttempt) == attempts


def test_views_kept_by_a_writing_request_go_to_the_spool_if_the_lock_is_taken_meanwhile(
    app: Flask, impatient_app: Flask
) -> None:
    """A POST that showed people (a search) and committed its own work: another process takes
    the lock before its access entries are written, and they are kept in the spool."""
    from werkzeug.wrappers import Response

    from referrals.audit import _KEPT_VIEWS, _rows, _write_kept_views

    db.session.commit()
    spool = Path(impatient_app.config["AUDIT_SPOOL_DIR"])
    with impatient_app.test_request_context("/referrals/", method="POST"):
        rows = _rows(None, "referral.searched", [(None, "referral", 9, {})])
        db.session.commit()  # the view's own work, committed
        holder = WriteLockHolder(db.engine.url.database or "")
        try:
            from flask import g

            g.setdefault(_KEPT_VIEWS, []).extend(rows)
            answered = _write_kept_views(Response("the results", status=200))
            assert holder.holding
        finally:
            holder.release()
            db.session.remove()
    assert answered.status_code == 200
    assert audit_spool.waiting(spool) == 1


def test_a_spooled_file_that_cannot_be_moved_in_is_set_aside_and_pages_still_answer(
    app: Flask, login_as: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries naming an actor since deleted, or a file that is not entries, never block the
    pages that move the spool in (a page refused here): they are set aside, and the rest is
    moved in."""
    from referrals.audit import _rows

    monkeypatch.setitem(app.config, "AUDIT_SPOOL_DIR", str(tmp_path / "spool"))
    folder = audit_spool.folder()
    with app.test_request_context("/"):
        good = _rows(None, "referral.viewed", [(None, "referral", 11, {})])
    orphan = [{**good[0], "actor_id": 999_999, "object_id": "12"}]
    audit_spool.keep(folder, orphan)
    audit_spool.keep(folder, good)
    (folder / "00000000000000000000-1-garbled.json").write_text("{not json")
    db.session.commit()
    gp = login_as(Role.REFERRER)
    assert gp.get("/admin/users").status_code == 403  # records the refusal: moves the spool in
    db.session.rollback()
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.object_id == "11")) is not None
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.object_id == "12")) is None
    assert audit_spool.waiting(folder) == 0
    assert len(list(folder.glob(f"*{audit_spool.SET_ASIDE}"))) == 2


def test_a_claim_another_worker_discards_while_this_one_lists_the_spool_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers list the spool and change it at the same time: a claimed file listed here may be
    discarded by its owner before this worker looks at its age. It is not this worker's, so it
    is passed over, and the files that are waiting are still claimed."""
    spool = tmp_path / "spool"
    waiting = audit_spool.keep(spool, [])
    owned = spool / f"{waiting.stem}x{audit_spool.SUFFIX}{audit_spool.CLAIMED}-1-abcdef01"
    owned.write_text("[]")
    listed = audit_spool.os.scandir

    def listed_then_discarded_by_its_owner(path: Any) -> Any:
        entries = list(listed(path))
        owned.unlink()
        return iter(entries)

    monkeypatch.setattr(audit_spool.os, "scandir", listed_then_discarded_by_its_owner)
    claimed = audit_spool.claim(spool)
    assert [path.name.split(audit_spool.CLAIMED)[0] for path in claimed] == [waiting.name]
