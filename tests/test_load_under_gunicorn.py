"""The service under gunicorn on SQLite, with signed-in people who pause between requests.

Several worker processes with several threads each serve one SQLite file, as `make run`'s
database would be served in a small deployment. Each virtual person signs in through the real
form and then reads lists, opens forms, waits, and sends them, so that their session's
last-seen time falls due between reading a form and sending it (the refresh interval is one
second here instead of a minute). The busy timeout is two seconds: a request that waited on a
lock for longer, its own or another's, would fail with a 500, which the test refuses.
"""

from __future__ import annotations

import os
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask_migrate import upgrade
from sqlalchemy import select

from bench.throughput import Load, gunicorn
from referrals.auth.models import OrganisationKind, Role, UserSession
from referrals.extensions import db
from referrals.intake.models import ContactAttempt, Referral
from referrals.notifications.services import notify
from tests import factories
from tests.conftest import TEST_PASSWORD, make_app
from tests.intake_helpers import make_referral, nhs_numbers, referral_form

pytestmark = pytest.mark.slow

SECRET_KEY = "load-test-secret-key-not-for-production"
ROUNDS = 5
_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


@dataclass
class Answer:
    who: str
    method: str
    path: str
    status: int
    seconds: float


@dataclass
class VirtualPerson:
    email: str
    base: str
    answers: list[Answer]
    rng: random.Random
    http: requests.Session = field(default_factory=requests.Session)

    def ask(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.request(
            method, self.base + path, allow_redirects=False, timeout=30, **kwargs
        )
        self.answers.append(
            Answer(self.email, method, path, response.status_code, response.elapsed.total_seconds())
        )
        return response

    def token(self, path: str) -> str:
        match = _CSRF.search(self.ask("GET", path).text)
        assert match, f"no form on {path}"
        return match.group(1)

    def pause(self) -> None:
        # Past the one-second refresh interval often, not always: both paths are exercised.
        threading.Event().wait(self.rng.uniform(0.4, 1.6))

    def sign_in(self) -> None:
        token = self.token("/sign-in")
        response = self.ask(
            "POST",
            "/sign-in",
            data={"csrf_token": token, "email": self.email, "password": TEST_PASSWORD},
        )
        assert response.status_code == 302, f"{self.email} could not sign in"


def _world(url: str) -> dict[str, Any]:
    """People and records for the load, committed to the load test's own database."""
    app = make_app(url)
    with app.app_context():
        upgrade()
        practice_a = factories.make_organisation(OrganisationKind.GP_PRACTICE)
        practice_b = factories.make_organisation(OrganisationKind.GP_PRACTICE)
        gps = [
            factories.make_user(Role.REFERRER, organisation=practice_a),
            factories.make_user(Role.REFERRER, organisation=practice_b),
        ]
        link_workers = [factories.make_user(Role.LINK_WORKER) for _ in range(3)]
        commissioner = factories.make_user(Role.COMMISSIONER)
        numbers = nhs_numbers()
        referrals = [
            make_referral(gps[i % 2], (practice_a, practice_b)[i % 2], nhs=next(numbers)).id
            for i in range(6)
        ]
        for worker in link_workers:
            for n in range(ROUNDS):
                notify(user=worker, text=f"Message {n}", link="/referrals/")
        db.session.commit()
        world = {
            "gps": [u.email for u in gps],
            "link_workers": [u.email for u in link_workers],
            "commissioner": commissioner.email,
            "referrals": referrals,
        }
        db.session.remove()
        db.engine.dispose()
    return world


def _link_worker_day(person: VirtualPerson, referrals: list[int]) -> None:
    person.sign_in()
    for _ in range(ROUNDS):
        person.ask("GET", "/referrals/")
        person.pause()
        referral = person.rng.choice(referrals)
        token = person.token(f"/referrals/{referral}/contact")
        person.pause()
        form = {"csrf_token": token, "method": "phone", "outcome": "no_answer"}
        sent = person.ask("POST", f"/referrals/{referral}/contact", data=form)
        assert sent.status_code == 302, f"contact form answered {sent.status_code}"
        inbox = person.ask("GET", "/messages/").text
        person.pause()
        opened = re.search(r'action="(/messages/\d+/open)"', inbox)
        if opened:
            token = _CSRF.search(inbox)
            assert token
            person.ask("POST", opened.group(1), data={"csrf_token": token.group(1)})


def _gp_day(person: VirtualPerson, numbers: Any, lock: threading.Lock) -> None:
    person.sign_in()
    for _ in range(ROUNDS):
        token = person.token("/referrals/new")
        person.pause()
        with lock:
            nhs = next(numbers)
        form = {**referral_form(nhs_number=nhs, family_name="Loadtest"), "csrf_token": token}
        sent = person.ask("POST", "/referrals/new", data=form)
        assert sent.status_code == 302, f"referral form answered {sent.status_code}"
        person.ask("GET", "/referrals/")
        person.pause()


def _commissioner_day(person: VirtualPerson) -> None:
    person.sign_in()
    for _ in range(ROUNDS * 2):
        assert person.ask("GET", "/referrals/").status_code == 403  # refused, and audited
        person.pause()
        person.ask("GET", "/")
        person.pause()


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")),
    reason="SQLite's write lock is what this load is about; it runs in the SQLite pass",
)
def test_signed_in_people_pausing_between_requests_never_meet_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'load.sqlite'}"
    world = _world(url)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "REFERRALS_SESSION_TOUCH_INTERVAL": "1",
        "REFERRALS_SQLITE_BUSY_TIMEOUT_MS": "2000",
        "REFERRALS_AUDIT_SPOOL_DIR": str(tmp_path / "audit-spool"),
    }
    load = Load(duration=0, connections=0, threads=0, workers=3, worker_threads=4)
    answers: list[Answer] = []
    failures: list[str] = []
    rng = random.Random(20261207)
    numbers = nhs_numbers()
    for _ in range(50):
        next(numbers)  # past the numbers the world used
    lock = threading.Lock()

    with gunicorn("referrals:create_app()", env, load, "/health") as (base, _server):

        def person(email: str) -> VirtualPerson:
            return VirtualPerson(email, base, answers, random.Random(rng.random()))

        days: list[Callable[[], None]] = [
            *(
                lambda e=e: _link_worker_day(person(e), world["referrals"])
                for e in world["link_workers"]
            ),
            *(lambda e=e: _gp_day(person(e), numbers, lock) for e in world["gps"]),
            lambda: _commissioner_day(person(world["commissioner"])),
        ]

        def run(day: Callable[[], None]) -> None:
            try:
                day()
            except Exception as error:  # reported below with everyone else's
                failures.append(f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=run, args=(day,)) for day in days]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)

    errors = [a for a in answers if a.status >= 500]
    by_time = sorted(answers, key=lambda a: a.seconds)
    print(  # the figures, for the record; timings are judged in bench/, not here
        f"\n{len(answers)} requests, median {by_time[len(by_time) // 2].seconds:.3f} s; slowest: "
        + ", ".join(f"{a.method} {a.path} {a.seconds:.3f} s" for a in by_time[-3:])
    )
    assert not failures, failures
    assert not errors, [f"{a.method} {a.path}: {a.status}" for a in errors]

    app = make_app(url)
    with app.app_context():
        sent_contacts = db.session.scalars(select(ContactAttempt)).all()
        assert len(sent_contacts) == len(world["link_workers"]) * ROUNDS
        loadtest = (
            select(Referral)
            .join(Referral.patient)
            .where(Referral.patient.property.mapper.class_.family_name == "Loadtest")
        )
        assert len(db.session.scalars(loadtest).all()) == len(world["gps"]) * ROUNDS
        # The sessions were kept alive by the load: last seen moved on after sign-in.
        sessions = db.session.scalars(select(UserSession)).all()
        assert all(s.last_seen_at > s.created_at for s in sessions)
        db.engine.dispose()
