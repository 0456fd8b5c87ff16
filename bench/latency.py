"""In-process latency and SQL statements per request of the busiest pages.

Each page is requested through Flask's test client by a user signed in through the real sign-in
form (CSRF on), warmed up, then timed over `--requests` requests: p50, p95 and max, and the
number of SQL statements each request sent (which must not grow with the data).

    .venv/bin/python -m bench.latency --scale small --db sqlite
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bench import common

PER_PAGE = 25  # the HTML lists' page size (referrals.pagination)
_STATUS_FIELD = re.compile(r'name="status-(\d+)"')


@dataclass
class Measured:
    """One page's request, what it should answer, and who asks."""

    name: str
    who: str
    path: str
    expect: int = 200
    method: str = "GET"
    form: Callable[[], dict[str, Any]] | None = None


def _last_page(total: int) -> int:
    return max(1, -(-total // PER_PAGE))


def pages(app: Flask, found: Any) -> list[Measured]:
    """The pages the performance targets name, with the generated records they show."""
    from sqlalchemy import func, select

    from referrals.auth.models import User
    from referrals.extensions import db
    from referrals.intake.lifecycle import OPEN_STATUSES
    from referrals.intake.models import Referral
    from referrals.intake.queries import practice_query

    with app.app_context():
        gp = db.session.scalar(select(User).where(User.email == found.gp_email))
        assert gp is not None
        practice_total = db.session.scalar(
            select(func.count()).select_from(practice_query(gp).order_by(None).subquery())
        )
        open_total = db.session.scalar(
            select(func.count()).where(Referral.status.in_(tuple(OPEN_STATUSES)))
        )
        db.session.remove()
    register = f"/sessions/{found.register_session_id}/register"
    return [
        Measured("caseload", "link_worker", "/referrals/"),
        Measured(
            "caseload_last_page", "link_worker", f"/referrals/?page={_last_page(open_total or 0)}"
        ),
        Measured("referral_list", "gp", "/referrals/"),
        Measured(
            "referral_list_last_page", "gp", f"/referrals/?page={_last_page(practice_total or 0)}"
        ),
        Measured("referral_detail", "link_worker", f"/referrals/{found.referral_id}"),
        Measured("course_directory", "link_worker", "/courses/"),
        Measured("register_page", "artist", register),
        Measured("register_save", "artist", register, expect=302, method="POST"),
        Measured("commissioner_dashboard", "commissioner", "/returns/"),
        Measured("home_link_worker", "link_worker", "/"),
        Measured("home_referrer", "gp", "/"),
    ]


def register_form(client: FlaskClient, path: str) -> dict[str, Any]:
    """The register as an artist fills it in: everyone attended, with both moods."""
    html = client.get(path).get_data(as_text=True)
    people = _STATUS_FIELD.findall(html)
    form: dict[str, Any] = {"csrf_token": common.csrf_token(html)}
    for enrolment_id in people:
        form[f"status-{enrolment_id}"] = "attended"
        form[f"mood_before-{enrolment_id}"] = "5"
        form[f"mood_after-{enrolment_id}"] = "7"
        form[f"note-{enrolment_id}"] = ""
    return form


def measure_page(
    client: FlaskClient, page: Measured, counter: common.QueryCounter, *, warmup: int, n: int
) -> dict[str, Any]:
    form = register_form(client, page.path) if page.method == "POST" else None

    def request() -> TestResponse:
        if form is not None:
            return client.post(page.path, data=form)
        return client.get(page.path)

    for _ in range(warmup):
        checked(request(), page)
    times, cpu, statements = [], [], []
    for _ in range(n):
        before = counter.count
        started, started_cpu = time.perf_counter(), time.process_time()
        response = request()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        statements.append(counter.count - before)
        checked(response, page)
    figures: dict[str, Any] = {"path": page.path, "method": page.method, "as": page.who}
    figures.update(common.summarise_ms(times))
    # CPU of this process (the app and the test client): the page's own work, unlike wall time
    # not stretched by other work on a shared machine.
    figures["cpu_ms"] = round(1000 * sorted(cpu)[len(cpu) // 2], 2)
    figures["queries"] = max(set(statements), key=statements.count)
    figures["queries_min"], figures["queries_max"] = min(statements), max(statements)
    if form is not None:
        figures["people"] = sum(1 for key in form if key.startswith("status-"))
    return figures


def checked(response: TestResponse, page: Measured) -> TestResponse:
    if response.status_code != page.expect:
        raise RuntimeError(f"{page.name}: {page.path} answered {response.status_code}")
    if page.expect == 302 and "/sign-in" in response.headers.get("Location", ""):
        raise RuntimeError(f"{page.name}: signed out")
    return response


def run(app: Flask, *, n: int, warmup: int) -> dict[str, Any]:
    found = common.targets(app)
    counter = common.QueryCounter(common.engine_of(app))
    clients: dict[str, FlaskClient] = {}
    results: dict[str, Any] = {}
    with counter.attached():
        for page in pages(app, found):
            if page.who not in clients:
                email = getattr(found, f"{page.who}_email")
                clients[page.who] = common.signed_in_client(app, email, found.password)
            common.note(f"latency: {page.name} ({page.path})")
            results[page.name] = measure_page(clients[page.who], page, counter, warmup=warmup, n=n)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_arguments(parser)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    app, url, scale = common.prepare(args)
    result = common.header(app, url, scale, "latency")
    result["requests_per_page"] = args.requests
    result["pages"] = run(app, n=args.requests, warmup=args.warmup)
    return result


if __name__ == "__main__":
    common.emit(main())
