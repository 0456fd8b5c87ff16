"""The benchmarks (bench/) run against a small generated scheme, so they cannot rot unnoticed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bench import kpi, latency, public, report, run_all
from referrals.courses.models import Attendance, CourseSession, SessionStatus
from referrals.extensions import db
from referrals.seeding.scale import seed_scale

REFERRALS, ATTENDANCES = 1_000, 8_000


@pytest.fixture()
def scheme(app):
    seed_scale(REFERRALS, ATTENDANCES)  # today: the pages check registers against today
    db.session.commit()
    return app


def test_latency_measures_every_page_signed_in_and_saves_the_register(scheme):
    pages = latency.run(scheme, n=3, warmup=1)

    assert list(pages) == [
        "caseload",
        "caseload_last_page",
        "referral_list",
        "referral_list_last_page",
        "referral_detail",
        "course_directory",
        "register_page",
        "register_save",
        "commissioner_dashboard",
        "home_link_worker",
        "home_referrer",
    ]
    for name, page in pages.items():
        assert page["n"] == 3, name
        assert page["cpu_ms"] >= 0, name
        assert 0 < page["p50_ms"] <= page["p95_ms"] <= page["max_ms"], name
        assert page["queries"] >= 2, name  # at least the session check and the page's own
    assert pages["caseload_last_page"]["path"] != "/referrals/?page=1"
    # The timed POSTs really saved a 30-person register: everyone marked attended.
    assert pages["register_save"]["people"] == 30
    session_id = int(pages["register_save"]["path"].split("/")[2])
    db.session.expire_all()
    session = db.session.get(CourseSession, session_id)
    assert session is not None and session.status is SessionStatus.DELIVERED
    marks = db.session.scalar(
        select(func.count()).where(
            Attendance.session_id == session_id, Attendance.status == "attended"
        )
    )
    assert marks == 30


def test_kpi_times_both_scopes_and_builds_the_pdf(scheme):
    figures = kpi.run(scheme, repeat=2)

    for name in ("kpi_return_contract_all_spans", "kpi_return_all_activity"):
        assert figures[name]["n"] == 2
        assert figures[name]["figures"] > 20 and figures[name]["queries"] > 5
    # The contract's whole return: every span, published as it is stored.
    spans = figures["kpi_return_contract_all_spans"]["spans"]
    assert spans == ["month", "year_to_date", "contract_to_date"]
    assert figures["kpi_return_all_activity"]["spans"] == ["month", "year_to_date"]
    assert figures["return_pdf"]["bytes"] > 5_000


def _result(queries: dict[str, int], referrals: int) -> dict[str, Any]:
    return {
        "database": "sqlite",
        "rows": {"referral": referrals, "attendance": referrals * 10},
        "latency": {
            "requests_per_page": 200,
            "pages": {
                name: {"p50_ms": 5.0, "p95_ms": 60.0 if name == "slow" else 9.0, "queries": n}
                for name, n in queries.items()
            },
        },
    }


def test_query_counts_are_compared_between_sizes():
    small = _result({"caseload": 8, "register_page": 12}, 2_000)
    same = _result({"caseload": 8, "register_page": 12}, 100_000)
    grown = _result({"caseload": 8, "register_page": 42}, 100_000)

    assert report.query_differences(small, same) == []
    assert report.query_differences(small, grown) == [
        "register_page: 12 queries at 2,000 referrals, 42 at 100,000"
    ]


def test_targets_are_checked_and_tabled():
    result = _result({"caseload": 8, "slow": 9}, 100_000)
    checks = {c["target"]: c["met"] for c in run_all.target_checks(result)}
    assert checks == {"caseload p95": True, "slow p95": False}
    table = report.latency_table([result])
    assert "| `slow` | p95 < 50 ms | 5.0 / 60.0 ✗ (9) |" in table


def test_benchmarks_refuse_a_database_holding_a_schemes_own_accounts(app):
    from bench.common import _refuse_other_data
    from referrals.auth.models import Role
    from tests import factories

    _refuse_other_data(db.engine)  # empty: fine
    factories.make_user(Role.ADMIN, email="coordinator@scheme.example")
    db.session.commit()
    with pytest.raises(SystemExit, match="holds accounts the generator did not make"):
        _refuse_other_data(db.engine)


def test_the_directory_benchmark_measures_every_public_page(app, monkeypatch):
    from referrals.clock import today

    monkeypatch.setitem(app.config, "PUBLIC_CACHE_SECONDS", 60)  # as in service

    public.seed(30, today(), providers=5, venues=10)
    db.session.remove()
    figures = public.run(app, n=2, warmup=1, repeat=1)

    assert list(figures["pages"]) == [
        "finder",
        "finder_near_postcode",
        "finder_district_art_form_day",
        "finder_last_page",
        "course_page",
        "feed_services",
        "feed_services_filtered",
        "feed_service",
        "feed_near_postcode",
    ]
    for name, page in figures["pages"].items():
        assert page["n"] == 2, name
        assert 0 < page["p50_ms"] <= page["p95_ms"] <= page["max_ms"], name
        # Warm, every answer comes from the published snapshot; only a place is looked up.
        assert (page["queries"] > 0) == ("postcode=" in page["path"]), name
        assert page["queries"] <= 2, name
    assert figures["pages"]["finder_last_page"]["path"] == "/find/?page=2"
    assert figures["snapshot_build"]["courses"] == 30
    assert figures["snapshot_build"]["queries"] > 0


def test_the_directory_benchmark_is_tabled_and_checked():
    result = _result({"caseload": 8}, 100_000)
    result["public"] = {
        "courses": 5000,
        "pages": {"feed_services": {"p50_ms": 4.0, "p95_ms": 7.5, "queries": 0}},
        "snapshot_build": {"p50_ms": 900.0},
    }
    checks = {c["target"]: c["met"] for c in run_all.target_checks(result)}
    assert checks["public feed_services p95"] is True
    text = report.render([{**result, "machine": {}}])
    assert "The open directory at 5,000 published courses" in text
    assert "| `feed_services` | p95 < 50 ms | 4.0 / 7.5 ✓ (0) |" in text


def test_the_baseline_serves_each_page_byte_for_byte(scheme):
    """bench/baseline.py, the minimal implementation the pages are measured against, answers
    the same bytes as the service (apart from nonce and token), page by page and role by role."""
    from bench import baseline, common

    found = common.targets(scheme)
    minimal = baseline.create_app(
        scheme.config["SQLALCHEMY_DATABASE_URI"], scheme.config["SECRET_KEY"]
    ).test_client()
    register = f"/sessions/{found.register_session_id}/register"
    lists = (
        "/",
        "/referrals/",
        "/referrals/?page=2",
        "/referrals/?page=999",
        "/courses/",
        "/courses/?page=2",
    )
    gp_referral, held_referral = (
        f"/referrals/{found.gp_referral_id}",
        f"/referrals/{found.referral_id}",
    )
    for who, paths in (
        (found.gp_email, (*lists, gp_referral)),
        (found.link_worker_email, (*lists, held_referral, gp_referral)),
        (found.artist_email, (register,)),
    ):
        service = common.signed_in_client(scheme, who, found.password)
        cookie = service.get_cookie(scheme.config["SESSION_COOKIE_NAME"])
        assert cookie is not None
        minimal.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
        for path in paths:
            expected = service.get(path).get_data(as_text=True)
            answer = minimal.get(path)
            assert answer.status_code == 200, path
            assert baseline.same_page(expected, answer.get_data(as_text=True)), (who, path)
            assert answer.headers["Content-Security-Policy"].count("nonce-") == 1
    assert "Save register" in expected
    assert not baseline.same_page(expected, expected.replace("</form>", "</form> "))
