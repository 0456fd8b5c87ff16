"""No NHS number, patient name or date of birth in the application's logs.

Every log record is captured (a handler on the root logger at DEBUG, on werkzeug's logger, and
on any logger that does not propagate; loggers switched off by the migrations' logging config
are switched back on for the test) through a whole journey: a GP refers, a link worker
contacts, assesses and enrols, an artist takes a register and records wellbeing, the
scheduled jobs run, a commissioner downloads a return, and there are error pages, refused
requests and failed sign-ins along the way. The message, its arguments, any exception text,
stack and extra fields of every record are searched for the patients' identifiers in every
common format. Whatever the code prints to stdout or stderr is searched too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from flask import Flask

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from tests.conftest import csrf_token, sign_in
from tests.world import Person, build_world

# The journey's own patients, typed in through the pages and the API.
BY_PAGE = Person(
    "page", "9990101078", "Evangeline", "Thistlewood", date(1944, 8, 21), "Breathless, choir"
)
BY_API = Person(
    "api", "9990101086", "Fitzgerald", "Ombersley", date(1939, 12, 2), "Lonely since move"
)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def record_text(record: logging.LogRecord) -> str:
    """Everything a log handler could write for the record, and more."""
    formatter = logging.Formatter()
    parts = [str(record.msg), repr(record.args)]
    try:
        parts.append(record.getMessage())
    except Exception:  # a bad format string is itself worth seeing, but not a crash here
        parts.append("<unformattable>")
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    parts.append(repr({k: v for k, v in vars(record).items() if k not in ("msg", "args")}))
    return "\n".join(parts)


@pytest.fixture()
def logs() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    saved_level = root.level
    switched_on, extra = [], []
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in [*loggers, logging.getLogger("werkzeug"), logging.getLogger("referrals")]:
        if logger.disabled:  # alembic's fileConfig turns off every logger that existed
            logger.disabled = False
            switched_on.append(logger)
        if not logger.propagate and handler not in logger.handlers:
            logger.addHandler(handler)
            extra.append(logger)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        for logger in extra:
            logger.removeHandler(handler)
        for logger in switched_on:
            logger.disabled = True


def secrets_of(people: list[Person]) -> dict[str, str]:
    found: dict[str, str] = {}
    for person in people:
        for text in person.nhs_number_formats():
            found[text] = f"NHS number of {person.label}"
        found[person.given_name] = f"given name of {person.label}"
        found[person.family_name] = f"family name of {person.label}"
        for text in person.date_of_birth_formats():
            found[text] = f"date of birth of {person.label}"
    return found


def leaks(records: list[logging.LogRecord], people: list[Person]) -> list[str]:
    secrets = secrets_of(people)
    problems = []
    for record in records:
        text = record_text(record)
        for secret, what in secrets.items():
            at = text.find(secret)
            if at >= 0:
                context = text[max(0, at - 120) : at + len(secret) + 60]
                problems.append(f"[{record.name} {record.levelname}] {what}: ...{context!r}...")
    return problems


def page_form(person: Person, **extra: Any) -> dict[str, Any]:
    return {
        "nhs_number": f"{person.nhs_number[:3]} {person.nhs_number[3:6]} {person.nhs_number[6:]}",
        "given_name": person.given_name,
        "family_name": person.family_name,
        "date_of_birth": f"{person.date_of_birth:%d/%m/%Y}",
        "sex": "female",
        "ethnicity": "white",
        "postcode": "GL1 2AB",
        "phone": "01632 960001",
        "email": "",
        "preferred_contact": "phone",
        "referrer_type": "gp",
        "pathway": "copd_asthma",
        "reason": person.reason,
        "interests": ["singing"],
        "consent": "y",
        **extra,
    }


def post(client: Any, url: str, data: dict[str, Any], page: str | None = None) -> Any:
    return client.post(url, data={**data, "csrf_token": csrf_token(client, page or url)})


def api_referral_body() -> dict[str, Any]:
    """The API's referral for the second person, whose details must never reach a log."""
    return {
        "patient": {
            "nhs_number": BY_API.nhs_number,
            "given_name": BY_API.given_name,
            "family_name": BY_API.family_name,
            "date_of_birth": BY_API.date_of_birth.isoformat(),
            "sex": "male",
            "ethnicity": "white",
            "postcode": "GL1 2AB",
            "phone": "01632 960002",
        },
        "referrer_type": "gp",
        "pathway": "social_isolation",
        "reason": BY_API.reason,
        "consent": True,
    }


def test_a_whole_journey_logs_no_patient_identifiers(
    app: Flask, login_as: Any, api_client: Any, logs: Capture, capsys: Any
) -> None:
    world = build_world()
    people = [*world.people(), BY_PAGE, BY_API]
    ids = world.objects
    course_id, session_id = ids["course"]["course_a"], ids["session"]["sess_a"]
    status = {}

    # A GP refers through the form (after looking the NHS number up), and a second person
    # through the API, whose first attempt is refused field by field.
    gp = login_as(world.user(Role.REFERRER))
    post(gp, "/referrals/new", {"action": "lookup", "nhs_number": BY_PAGE.nhs_number})
    status["refer"] = post(gp, "/referrals/new", page_form(BY_PAGE)).status_code
    status["refer again"] = post(gp, "/referrals/new", page_form(BY_PAGE)).status_code
    referral = db.session.scalar(
        db.select(Referral).join(Patient).where(Patient.nhs_number == BY_PAGE.nhs_number)
    )
    assert referral is not None, status
    gp.get(f"/referrals/{referral.id}")
    post(gp, "/referrals/", {"q": BY_PAGE.family_name})

    api, headers = api_client(world.user(Role.REFERRER))
    body = api_referral_body()
    bad = {**body, "patient": {**body["patient"], "date_of_birth": "02/12/1939x"}}
    status["api 422"] = api.post("/api/v1/referrals", json=bad, headers=headers).status_code
    made = api.post("/api/v1/referrals", json=body, headers=headers)
    status["api refer"] = made.status_code
    status["api 409"] = api.post("/api/v1/referrals", json=body, headers=headers).status_code
    api.get(f"/api/v1/referrals/{made.get_json()['id']}", headers=headers)
    api.get(f"/api/v1/referrals?q={BY_API.family_name}", headers=headers)

    # The link worker contacts, assesses and enrols.
    worker = login_as(world.user(Role.LINK_WORKER))
    worker.get("/referrals/")
    post(worker, "/referrals/", {"q": BY_PAGE.nhs_number})
    base = f"/referrals/{referral.id}"
    status["contact"] = post(
        worker, f"{base}/contact", {"method": "phone", "outcome": "spoke", "note": "Spoke"}
    ).status_code
    status["conversation"] = post(
        worker,
        f"{base}/conversation",
        {
            "held_on": f"{world.today:%d/%m/%Y}",
            "what_matters": "Singing with others",
            "preferred_art_forms": ["singing"],
        },
    ).status_code
    worker.get(f"/courses/?referral={referral.id}")
    status["enrol"] = post(
        worker,
        f"/courses/{course_id}/enrol",
        {"referral_id": str(referral.id)},
        page=f"/courses/{course_id}?referral={referral.id}",
    ).status_code
    worker.get(f"{base}/letter.pdf")
    worker_api, worker_headers = api_client(world.user(Role.LINK_WORKER))
    worker_api.post(
        f"/api/v1/referrals/{made.get_json()['id']}/transitions",
        json={"to": "contacting", "note": "Left a message"},
        headers=worker_headers,
    )

    # The artist takes a register (the new person came), downloads it, records wellbeing.
    artist = login_as(world.user(Role.ARTIST))
    artist.get("/sessions/")
    enrolment_ids = [e for e in ids["enrolment"].values()]
    register = {}
    for enrolment_id in [*enrolment_ids, *range(max(enrolment_ids) + 1, max(enrolment_ids) + 3)]:
        register[f"status-{enrolment_id}"] = "attended"
        register[f"mood_before-{enrolment_id}"] = "4"
        register[f"mood_after-{enrolment_id}"] = "7"
    status["register"] = post(artist, f"/sessions/{session_id}/register", register).status_code
    artist.get(f"/sessions/{session_id}/register.csv")
    artist.get(f"/sessions/{session_id}/register.pdf")
    status["wellbeing"] = post(
        artist,
        f"/enrolments/{ids['enrolment']['enr_a']}/wellbeing",
        {
            "instrument": "SWEMWBS",
            "timepoint": "baseline",
            "recorded_on": f"{world.today:%d/%m/%Y}",
            **{f"item_{n}": "3" for n in range(1, 8)},
        },
    ).status_code
    artist.get(f"/enrolments/{ids['enrolment']['enr_a']}")

    # The scheduled jobs run.
    from referrals.scheduler.jobs import JOBS, execute

    db.session.commit()
    for job in JOBS:
        execute(app, job.id, world.today)

    # The commissioner reads and downloads a return, by page and by API.
    commissioner = login_as(world.user(Role.COMMISSIONER))
    ret = ids["kpi_return"]["ret_a"]
    for url in ("/returns/", f"/returns/{ret}", f"/returns/{ret}.csv", f"/returns/{ret}.pdf"):
        status[url] = commissioner.get(url).status_code
    commissioner_api, commissioner_headers = api_client(world.user(Role.COMMISSIONER))
    commissioner_api.get(f"/api/v1/kpi/returns/{ret}.csv", headers=commissioner_headers)

    # Error pages and refusals: a missing referral, someone else's, a wrong role, a missing
    # CSRF token, a bad token, a wrong method.
    status["404"] = gp.get(f"/referrals/{ids['referral']['ref_b']}").status_code
    gp.get("/referrals/999999999")
    artist.get(f"/referrals/{referral.id}")
    worker.post(f"{base}/contact", data={"note": BY_PAGE.family_name})
    api.get("/api/v1/referrals", headers={"Authorization": f"Bearer {BY_PAGE.nhs_number}"})
    gp.open(f"/referrals/{referral.id}", method="DELETE")
    status["422 page"] = post(
        gp, "/referrals/new", page_form(BY_PAGE, date_of_birth="31/02/1944")
    ).status_code

    # Failed sign-ins, with a patient's details typed where they do not belong.
    stranger = app.test_client()
    sign_in(stranger, world.user(Role.REFERRER).email, "not-the-password-at-all")
    sign_in(stranger, BY_PAGE.nhs_number, f"{BY_PAGE.given_name} {BY_PAGE.date_of_birth}")
    sign_in(stranger, f"{BY_PAGE.family_name}@example.test", BY_PAGE.family_name * 2)

    assert status["refer"] == 302, status
    assert status["api refer"] == 201, status
    assert status["enrol"] == 302, status
    assert status["register"] == 302, status
    problems = leaks(logs.records, people)
    printed = capsys.readouterr()
    for secret, what in secrets_of(people).items():
        for stream, text in (("stdout", printed.out), ("stderr", printed.err)):
            if secret in text:
                problems.append(f"{stream}: {what}")
    assert not problems, "\n".join(problems)


def test_the_capture_sees_what_the_application_logs(app: Flask, logs: Capture) -> None:
    """A guard on the test: records from the application's own loggers do arrive."""
    from referrals.errors import log as error_log

    error_log.error("probe %s", "one")
    assert any(r.getMessage() == "probe one" for r in logs.records)


def test_an_unexpected_error_logs_no_patient_identifiers(
    app: Flask, login_as: Any, logs: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while saving a referral is logged (so it can be fixed) without the data.

    The crash is a real database error: the patient row is inserted twice mid-request, so the
    driver refuses the second with the unique NHS number, as a race or a bug would. SQLAlchemy
    puts the statement's parameters into the exception's text by default.
    """
    from referrals.intake import services

    original = services.record

    def record_then_fail(actor: Any, action: str, obj: Any = None, **detail: Any) -> Any:
        if action == "referral.created":
            patient = obj.patient
            columns = Patient.__table__.columns.keys()
            copy = {c: getattr(patient, c) for c in columns if c != "id"}
            db.session.execute(db.insert(Patient).values(**copy))
        return original(actor, action, obj, **detail)

    world = build_world()
    monkeypatch.setattr(services, "record", record_then_fail)
    gp = login_as(world.user(Role.REFERRER))
    response = post(gp, "/referrals/new", page_form(BY_PAGE))
    assert response.status_code == 500
    # What the GP typed comes back only inside the form that sends it again, never as text
    # quoting the failure.
    page = response.get_data(as_text=True)
    assert f'name="family_name" value="{BY_PAGE.family_name}"' in page
    assert BY_PAGE.family_name not in re.sub(r'<input type="hidden"[^>]*>', "", page)
    assert any(r.levelno >= logging.ERROR for r in logs.records), "the crash was not logged"
    problems = leaks(logs.records, [BY_PAGE])
    assert not problems, "\n".join(problems)


def test_an_unexpected_error_in_the_api_logs_no_patient_identifiers(
    app: Flask, api_client: Any, logs: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the API: a crash after the body was read logs no patient identifiers."""
    from referrals.api import referrals as api_referrals

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("service unavailable")

    monkeypatch.setattr(api_referrals, "create_referral", explode)
    world = build_world()
    client, headers = api_client(world.user(Role.REFERRER))
    body = api_referral_body()
    response = client.post("/api/v1/referrals", json=body, headers=headers)
    assert response.status_code == 500
    assert any(r.levelno >= logging.ERROR for r in logs.records), "the crash was not logged"
    problems = leaks(logs.records, [BY_API])
    assert not problems, "\n".join(problems)


# The access log ------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_access_log_is_json_with_paths_and_request_ids_but_never_query_strings(
    app: Flask,
) -> None:
    """gunicorn with the project's configuration: the requests carry the journey's patient
    details in their query strings (as a search or a bookmarked link could); the access log
    keeps each path, status and request id, and none of those details."""
    import json
    import os
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    db.session.commit()
    port = _free_port()
    env = dict(
        os.environ,
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY="test-secret-key-not-for-production",
        PYTHONPATH=str(root),
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "referrals:create_app()"],
        cwd=root,  # gunicorn reads ./gunicorn.conf.py from here
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    person = BY_PAGE
    queries = {
        "/health/live": f"nhs={person.nhs_number}",
        "/sign-in": f"next=/referrals%3Fq%3D{person.family_name}",
        "/referrals": f"q={person.given_name}+{person.family_name}&dob={person.date_of_birth}",
    }
    answered: dict[str, str] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):  # up to a minute for the worker to come up on a busy machine
            try:
                urllib.request.urlopen(f"{base}/health/live", timeout=2).close()  # noqa: S310
                break
            except OSError:  # refused, reset or timed out: not up yet
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        for path, query in queries.items():
            request = urllib.request.Request(f"{base}{path}?{query}")  # noqa: S310
            try:
                response = opener.open(request, timeout=30)
            except urllib.error.HTTPError as error:  # the redirect to sign-in
                response = error
            answered[path] = response.headers["X-Request-ID"]
            response.close()
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)

    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    for line in err.splitlines():  # gunicorn's own log is JSON too
        if line.strip():
            json.loads(line)
    logged = {(line["path"], line["request_id"]) for line in lines if line["message"] == "request"}
    for path, request_id in answered.items():
        assert (path, request_id) in logged, (path, lines)
    everything = out + err
    assert "?" not in "".join(str(line["path"]) for line in lines)
    for secret, what in secrets_of([person]).items():
        assert secret not in everything, what
