"""The KPI returns dashboard, return pages, downloads, and making returns."""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses.models import AttendanceStatus, Contract, Course
from referrals.courses.services import RegisterEntry, enrol, save_register
from referrals.extensions import db
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period
from referrals.reports.services import make_return, regenerate_return
from tests import factories
from tests.conftest import submit
from tests.course_helpers import assessed_referral, from_start
from tests.factories import make_contract, make_course
from tests.query_counts import queries_for

TODAY = date(2026, 11, 23)  # pinned: returns are for months finished by then
SEPTEMBER = Period(2026, 9)
OCTOBER = Period(2026, 10)
B1_NAME = "Number of people supported to access arts or cultural groups/activities"
TARGETS = {
    "B1": {"month": {"minimum": 0, "expected": 8, "stretch": 20}},  # 8 people (shown 10): green
    "B4": {"month": {"minimum": 2, "expected": 5, "stretch": 6}},  # 4 sessions, shown 4: amber
    "B6": {"month": {"minimum": 80, "expected": 99, "stretch": 100}},  # 32 of 36 = 88.9: amber
}


@dataclass
class Scheme:
    commissioner_org: Organisation
    contract: Contract
    course: Course
    other_contract: Contract
    september: KpiReturn
    other_september: KpiReturn
    all_activity: KpiReturn
    names: list[str]
    nhs_numbers: list[str]


def _run_course(contract: Contract, people: int, absent: int = 0) -> tuple[Course, list[Any]]:
    """A four-week course in September 2026 with `people` enrolled, registers taken."""
    admin = factories.make_user(Role.ADMIN, password=None)
    link_worker = factories.make_user(Role.LINK_WORKER, password=None)
    course = make_course(start=date(2026, 9, 1), sessions=4, contract=contract, capacity=12)
    referrals = [
        assessed_referral(
            link_worker,
            today=date(2026, 8, 3),
            given_name="Zebedee",
            family_name=f"Quillfeather{course.id}x{n}",
        )
        for n in range(people)
    ]
    enrolments = [
        enrol(link_worker, r, course, today=date(2026, 8, 20), at=from_start(course))
        for r in referrals
    ]
    for session in course.sessions:
        entries = [
            RegisterEntry(e.id, AttendanceStatus.NO_SHOW)
            if n < absent
            else RegisterEntry(e.id, AttendanceStatus.ATTENDED, mood_before=5, mood_after=7)
            for n, e in enumerate(enrolments)
        ]
        save_register(admin, session, entries, today=session.date)
    return course, referrals


@pytest.fixture()
def scheme(app: Any) -> Scheme:
    commissioner_org = factories.make_organisation(OrganisationKind.COMMISSIONER)
    contract = make_contract(
        name="Gloucestershire ICB arts on prescription",
        commissioner=commissioner_org,
        targets=TARGETS,
    )
    course, referrals = _run_course(contract, people=9, absent=1)
    other_contract = make_contract(name="Kent wellbeing arts contract")
    _other_course, other_referrals = _run_course(other_contract, people=3)
    db.session.commit()
    september = make_return(contract.id, SEPTEMBER, today=TODAY, job="test").kpi_return
    other = make_return(other_contract.id, SEPTEMBER, today=TODAY, job="test").kpi_return
    all_activity = make_return(None, SEPTEMBER, today=TODAY, job="test").kpi_return
    everyone = referrals + other_referrals
    return Scheme(
        commissioner_org=commissioner_org,
        contract=contract,
        course=course,
        other_contract=other_contract,
        september=september,
        other_september=other,
        all_activity=all_activity,
        names=[r.patient.family_name for r in everyone],
        nhs_numbers=[r.patient.nhs_number for r in everyone],
    )


@pytest.fixture()
def commissioner(login_as: Any, scheme: Scheme) -> Any:
    return login_as(Role.COMMISSIONER, organisation=scheme.commissioner_org)


# Reading pages --------------------------------------------------------------------------


def _text(fragment: str) -> str:
    """What a sighted reader sees: tags and visually hidden text removed."""
    visible = re.sub(r'<span class="nhsuk-u-visually-hidden">[^<]*</span>', "", fragment)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", visible)).strip()


def _section(html: str, anchor: str) -> str:
    match = re.search(rf'<section[^>]* id="{anchor}".*?</section>', html, re.S)
    assert match, f"no section {anchor}"
    return match.group(0)


def _rows(html: str) -> list[list[str]]:
    """Every table row's cell texts."""
    return [
        [_text(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)
    ]


def _row(html: str, first_cell_start: str) -> list[str]:
    matches = [r for r in _rows(html) if r and r[0].startswith(first_cell_start)]
    assert matches, f"no row starting {first_cell_start!r}"
    return matches[0]


class _FormControls(HTMLParser):
    """Collects the page's form controls, labels, inline styles and inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.inline_styles: list[str] = []
        self.unsafe_scripts = 0
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "style" in attributes:
            self.inline_styles.append(tag)
        self.handlers += [name for name in attributes if name.startswith("on")]
        if tag == "style":
            self.inline_styles.append("style element")
        # The NHS.UK template's one-line "js-enabled" script carries the CSP nonce; anything
        # else inline would be blocked.
        if tag == "script" and not attributes.get("src") and not attributes.get("nonce"):
            self.unsafe_scripts += 1
        if tag == "label" and attributes.get("for"):
            self.label_for.add(attributes["for"] or "")
        if tag in ("input", "select", "textarea") and attributes.get("type") not in (
            "hidden",
            "submit",
        ):
            self.controls.append(attributes)


def assert_accessible_and_csp_safe(html: str) -> None:
    """Every input is labelled; no inline styles, event handlers or scripts (CSP)."""
    parser = _FormControls()
    parser.feed(html)
    assert parser.inline_styles == []
    assert parser.handlers == []
    assert parser.unsafe_scripts == 0
    for control in parser.controls:
        assert control.get("id") in parser.label_for, f"unlabelled control {control}"


def assert_no_identities(text: str, scheme: Scheme) -> None:
    for name in scheme.names:
        assert name not in text
    assert "Zebedee" not in text
    for number in scheme.nhs_numbers:
        assert number not in text


# Commissioners ----------------------------------------------------------------------------


def test_commissioner_sees_own_contract_headlines_with_ratings_and_trends(
    commissioner: Any, scheme: Scheme
) -> None:
    response = commissioner.get("/returns/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert scheme.contract.name in page
    assert "Headline figures for September 2026" in page

    # Month, year to date and contract to date side by side, each with its rating in words.
    b1 = _row(page, f"B1 {B1_NAME}")
    assert b1[1:3] == ["10", "Green Target: minimum 0, expected 8, stretch 20"]
    assert len(b1) == 7  # the measure, then a figure and a rating for each of three spans
    b4 = _row(page, "B4 Sessions delivered")
    assert b4[1] == "4" and b4[2].startswith("Amber")  # sessions are shown as they are
    b6 = _row(page, "B6 Attendance rate (%)")
    assert b6[2].startswith("Amber")  # 32 of 36 = 88.9 against 80 / 99 / 100
    assert 'class="nhsuk-tag nhsuk-tag--green app-kpi-rating">Green' in page
    assert 'nhsuk-tag--orange app-kpi-rating">Amber' in page
    assert _row(page, "A1 Referrals received")[2] == "Not rated"  # no target
    assert "Unrounded" not in page

    # One chart per headline KPI, each with a title, and the same figures as text.
    charts = re.findall(r"<svg[^>]*class=\"app-chart\" role=\"img\"[^>]*>(.*?)</svg>", page, re.S)
    assert len(charts) == 9
    assert all(re.search(r"<title id=\"[^\"]+\">[^<]+</title>", chart) for chart in charts)
    assert "B1 Number of people supported" in charts[1]
    assert page.count('<details class="nhsuk-details app-kpi-details">') == 9
    b1_trend = re.search(r"<figure[^>]*>\s*<figcaption[^>]*>B1 .*?</figure>", page, re.S)
    assert b1_trend is not None
    assert _row(b1_trend.group(0), "September 2026") == ["September 2026", "10"]
    assert _row(b1_trend.group(0), "December 2025") == ["December 2025", "No return"]
    assert len(_rows(b1_trend.group(0))) == 13  # heading and twelve months

    # The list of returns, with downloads.
    assert f'href="/returns/{scheme.september.id}.pdf"' in page
    assert f'href="/returns/{scheme.september.id}.csv"' in page
    assert "Current" in page
    assert_no_identities(page, scheme)
    assert_accessible_and_csp_safe(page)


def test_commissioner_never_sees_another_commissioners_contract(
    commissioner: Any, scheme: Scheme
) -> None:
    page = commissioner.get("/returns/").get_data(as_text=True)
    assert scheme.other_contract.name not in page
    assert f"/returns/{scheme.other_september.id}" not in page
    assert "All activity" not in page
    for return_id in (scheme.other_september.id, scheme.all_activity.id, 999999):
        assert commissioner.get(f"/returns/{return_id}").status_code == 404
        assert commissioner.get(f"/returns/{return_id}.csv").status_code == 404
        assert commissioner.get(f"/returns/{return_id}.pdf").status_code == 404
    home = commissioner.get("/").get_data(as_text=True)
    assert scheme.contract.name in home and scheme.other_contract.name not in home
    assert 'href="/returns/"' in home
    assert_no_identities(home, scheme)
    exported = db.session.scalar(
        select(func.count()).where(AuditEvent.action == "kpi_return.exported")
    )
    assert exported == 0


def test_a_commissioner_with_no_return_yet_is_told_so(login_as: Any) -> None:
    organisation = factories.make_organisation(OrganisationKind.COMMISSIONER)
    make_contract(name="New contract", commissioner=organisation)
    client = login_as(Role.COMMISSIONER, organisation=organisation)
    page = client.get("/returns/").get_data(as_text=True)
    assert "New contract" in page
    assert "No return has been made for this contract yet" in page
    assert 'class="app-chart"' not in page
    lonely = login_as(Role.COMMISSIONER)
    assert "No contracts are linked to your organisation yet" in lonely.get("/returns/").get_data(
        as_text=True
    )


def test_the_return_page_shows_every_section_with_readable_labels(
    commissioner: Any, scheme: Scheme
) -> None:
    response = commissioner.get(f"/returns/{scheme.september.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for heading in ("A. Referrals", "B. Participation", "C. Wellbeing outcomes", "D. Equalities"):
        assert heading in page
    assert "KPI specification version 2" in page
    assert "Pathway: COPD or asthma" in page
    assert "Referrer type: Social prescribing link worker" in page
    assert "Age band: 75 and over" in page
    assert "Ethnic group: Asian, Asian British or Asian Welsh" in page
    assert "Close reason: Unable to contact" in page
    assert "pathway=" not in page and "age_band=" not in page
    assert "is suppressed" in page or "are suppressed" in page
    participation = page.split("B. Participation", 1)[1]  # after the headline table
    b4 = _row(participation, "B4")
    assert b4[:3] == ["B4", "Sessions delivered", "4"]
    assert len(b4) == 8  # code, measure, then figure and rating per span: no unrounded column
    assert "Unrounded" not in page
    assert _row(participation, "B1")[2:4] == [
        "10",
        "Green Target: minimum 0, expected 8, stretch 20",
    ]
    assert_no_identities(page, scheme)
    assert_accessible_and_csp_safe(page)


def test_commissioner_csv_has_the_specification_columns_and_is_audited(
    commissioner: Any, scheme: Scheme
) -> None:
    response = commissioner.get(f"/returns/{scheme.september.id}.csv?raw=1")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert "attachment" in disposition
    assert f"kpi-return-contract-{scheme.contract.id}-2026-09-v1.csv" in disposition
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    # Commissioners never get the unrounded column, even when they ask for it.
    assert rows[0] == [
        "period",
        "scope",
        "span",
        "code",
        "name",
        "breakdown",
        "value",
        "suppressed",
        "target_minimum",
        "target_expected",
        "target_stretch",
        "target_rating",
        "version",
        "generated_at",
        "provisional",  # after the specification's columns
    ]
    b1 = next(r for r in rows if r[2:4] == ["month", "B1"] and r[5] == "")
    assert b1[:13] == [
        "2026-09", scheme.contract.name, "month", "B1", B1_NAME, "", "10", "no",
        "0", "8", "20", "green", "1",
    ]  # fmt: skip
    assert {r[2] for r in rows[1:]} == {"month", "year_to_date", "contract_to_date"}
    b4 = next(r for r in rows if r[2:4] == ["month", "B4"] and r[5] == "")
    assert b4[6:8] == ["4", "no"]
    assert_no_identities(text, scheme)
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "kpi_return.exported")
    ).all()
    assert len(events) == 1
    assert events[0].object_type == "kpi_return"
    assert events[0].object_id == str(scheme.september.id)
    assert events[0].actor_id == commissioner.user.id
    assert events[0].detail == {"format": "csv", "raw": False}


def test_pdf_download(commissioner: Any, scheme: Scheme) -> None:
    if importlib.util.find_spec("referrals.reports.pdf") is None:
        pytest.skip("the PDF builder (referrals/reports/pdf.py) is not in this tree yet")
    response = commissioner.get(f"/returns/{scheme.september.id}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.get_data().startswith(b"%PDF")
    assert (
        f"kpi-return-contract-{scheme.contract.id}-2026-09-v1.pdf"
        in (response.headers["Content-Disposition"])
    )
    event_row = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "kpi_return.exported")
    )
    assert event_row is not None and event_row.detail["format"] == "pdf"


# Admins -----------------------------------------------------------------------------------


def test_admin_sees_every_contract_all_activity_and_raw_values(admin: Any, scheme: Scheme) -> None:
    page = admin.get("/returns/").get_data(as_text=True)
    assert "All activity" in page
    assert scheme.contract.name in page and scheme.other_contract.name in page
    assert f"/returns/{scheme.all_activity.id}" in page
    contract_section = _section(page, f"contract-{scheme.contract.id}")
    assert _row(contract_section, f"B1 {B1_NAME}")[1:3] == ["10", "8"]
    everything_section = _section(page, "all-activity")
    assert _row(everything_section, f"B1 {B1_NAME}")[1:3] == ["10", "11"]
    assert f"Commissioned by {scheme.commissioner_org.name}" in page
    assert_no_identities(page, scheme)
    assert_accessible_and_csp_safe(page)

    detail = admin.get(f"/returns/{scheme.september.id}").get_data(as_text=True)
    assert "Unrounded" in detail
    participation = detail.split("B. Participation", 1)[1]
    assert _row(participation, "B4")[:4] == ["B4", "Sessions delivered", "4", "4"]
    assert _row(participation, "B1")[2:4] == ["10", "8"]
    assert f"/returns/{scheme.september.id}/regenerate" in detail
    assert_no_identities(detail, scheme)

    everything = admin.get(f"/returns/{scheme.all_activity.id}")
    assert everything.status_code == 200
    assert "All activity" in everything.get_data(as_text=True)

    raw = admin.get(f"/returns/{scheme.september.id}.csv?raw=1").get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(raw)))
    assert rows[0][-1] == "raw_value"
    assert next(r for r in rows if r[2:4] == ["month", "B1"] and r[5] == "")[-1] == "8"
    plain = admin.get(f"/returns/{scheme.september.id}.csv").get_data().decode("utf-8-sig")
    assert "raw_value" not in plain.splitlines()[0]
    details = [
        e.detail
        for e in db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "kpi_return.exported")
            .order_by(AuditEvent.id)
        )
    ]
    assert details == [{"format": "csv", "raw": True}, {"format": "csv", "raw": False}]


def test_admin_makes_a_return_and_is_told_when_it_exists(admin: Any, scheme: Scheme) -> None:
    form = admin.get("/returns/generate").get_data(as_text=True)
    assert_accessible_and_csp_safe(form)
    response = submit(
        admin, "/returns/generate", {"scope": str(scheme.contract.id), "period": "2026-08"}
    )
    assert response.status_code == 302
    made = db.session.scalar(
        select(KpiReturn).where(
            KpiReturn.contract_id == scheme.contract.id, KpiReturn.period == "2026-08"
        )
    )
    assert made is not None and made.generated_by_id == admin.user.id
    assert response.headers["Location"].endswith(f"/returns/{made.id}")
    again = submit(
        admin,
        "/returns/generate",
        {"scope": str(scheme.contract.id), "period": "2026-08"},
        follow_redirects=True,
    )
    assert "already exists" in again.get_data(as_text=True)
    everything = submit(admin, "/returns/generate", {"scope": "all", "period": "2026-10"})
    assert everything.status_code == 302
    assert db.session.scalar(
        select(func.count()).where(KpiReturn.scope_key == "all", KpiReturn.period == "2026-10")
    )


@pytest.mark.parametrize(
    ("scope", "period", "message"),
    [
        ("contract", "2099-01", "has not finished yet"),
        ("contract", "", "Enter the period as a year and month"),
        ("contract", "Sept 2026", "Enter the period as a year and month"),
        ("contract", "2026-13", "Enter a real month"),
        ("contract", "2026-09-01", "Enter the period as a year and month"),
        ("999999", "2026-08", "There is no contract with this id"),
        ("contract", "2024-01", "was not active in January 2024"),
        ("", "2026-08", "Choose a contract, or all activity"),
        ("'; drop table", "2026-08", "Choose a contract, or all activity"),
        ("99999999999999999999", "2026-08", "Choose a contract, or all activity"),
    ],
)
def test_bad_input_to_make_a_return_is_refused_at_the_field(
    admin: Any, scheme: Scheme, scope: str, period: str, message: str
) -> None:
    before = db.session.scalar(select(func.count()).select_from(KpiReturn))
    value = str(scheme.contract.id) if scope == "contract" else scope
    response = submit(admin, "/returns/generate", {"scope": value, "period": period})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page
    assert "nhsuk-error-message" in page and "There is a problem" in page
    assert "<title>Error: Make a return" in page
    assert db.session.scalar(select(func.count()).select_from(KpiReturn)) == before
    assert_accessible_and_csp_safe(page)


def test_regenerate_needs_a_reason(admin: Any, scheme: Scheme) -> None:
    url = f"/returns/{scheme.september.id}/regenerate"
    page = admin.get(url).get_data(as_text=True)
    assert "Why are you regenerating this return?" in page
    assert_accessible_and_csp_safe(page)
    for reason in ("", "   "):
        response = submit(admin, url, {"reason": reason})
        assert response.status_code == 200
        assert "Give a reason for regenerating the return" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(KpiReturn)) == 3
    assert admin.get("/returns/999999/regenerate").status_code == 404


def test_regenerating_makes_version_2_and_keeps_version_1_superseded(
    admin: Any, commissioner: Any, scheme: Scheme
) -> None:
    response = submit(
        admin,
        f"/returns/{scheme.september.id}/regenerate",
        {"reason": "Two registers were entered late"},
    )
    assert response.status_code == 302
    versions = db.session.scalars(
        select(KpiReturn)
        .where(KpiReturn.scope_key == f"contract:{scheme.contract.id}")
        .order_by(KpiReturn.version)
    ).all()
    assert [v.version for v in versions] == [1, 2]
    first, second = versions
    assert first.superseded_at is not None and second.superseded_at is None
    assert second.reason == "Two registers were entered late"
    assert response.headers["Location"].endswith(f"/returns/{second.id}")
    assert db.session.scalar(
        select(func.count()).where(AuditEvent.action == "kpi_return.regenerated")
    )

    dashboard = commissioner.get("/returns/").get_data(as_text=True)
    listed = [r for r in _rows(dashboard) if r and r[0].startswith("September 2026")]
    statuses = {r[1]: r[3] for r in listed if len(r) == 5}
    assert statuses == {"2": "Current", "1": "Superseded"}
    old = commissioner.get(f"/returns/{first.id}").get_data(as_text=True)
    assert "Superseded" in old and f'href="/returns/{second.id}"' in old
    new = commissioner.get(f"/returns/{second.id}").get_data(as_text=True)
    assert "Two registers were entered late" in new


# Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.REFERRER, Role.LINK_WORKER, Role.ARTIST])
def test_other_roles_are_refused(login_as: Any, scheme: Scheme, role: Role) -> None:
    client = login_as(role)
    return_id = scheme.september.id
    for url in (
        "/returns/",
        f"/returns/{return_id}",
        f"/returns/{return_id}.csv",
        f"/returns/{return_id}.pdf",
        "/returns/generate",
        f"/returns/{return_id}/regenerate",
    ):
        assert client.get(url).status_code == 403, url
    assert "/returns/" not in client.get("/").get_data(as_text=True)


def test_commissioners_cannot_make_or_regenerate_returns(commissioner: Any, scheme: Scheme) -> None:
    assert commissioner.get("/returns/generate").status_code == 403
    assert commissioner.get(f"/returns/{scheme.september.id}/regenerate").status_code == 403
    assert commissioner.post("/returns/generate", data={"period": "2026-08"}).status_code in (
        400,
        403,
    )
    assert db.session.scalar(select(func.count()).select_from(KpiReturn)) == 3


def test_returns_is_in_the_navigation(commissioner: Any, admin: Any) -> None:
    for client in (commissioner, admin):
        page = client.get("/").get_data(as_text=True)
        assert re.search(r'<a [^>]*href="/returns/"[^>]*>\s*Returns', page)


def test_signed_out_visitors_are_sent_to_sign_in(client: Any, scheme: Scheme) -> None:
    response = client.get(f"/returns/{scheme.september.id}.csv")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


# Bounded queries ----------------------------------------------------------------------------


def test_the_dashboard_takes_as_many_queries_for_12_months_as_for_2(
    login_as: Any, scheme: Scheme
) -> None:
    commissioner_user: User = factories.make_user(
        Role.COMMISSIONER, organisation=scheme.commissioner_org
    )
    client = login_as(commissioner_user)
    make_return(scheme.contract.id, OCTOBER, today=TODAY, job="test")
    two = queries_for(client, "/returns/")
    period = SEPTEMBER
    for _ in range(10):
        period = period.previous()
        make_return(scheme.contract.id, period, today=TODAY, job="test")
    regenerate_return(None, scheme.contract.id, OCTOBER, "Late registers", today=TODAY)
    db.session.commit()
    twelve = queries_for(client, "/returns/")
    assert two == twelve
    page = client.get("/returns/").get_data(as_text=True)
    assert len(re.findall(r"<svg[^>]*class=\"app-chart\" role=\"img\"", page)) == 9
    assert "November 2025" in page


def test_a_contracts_months_come_as_one_csv(commissioner: Any, scheme: Scheme) -> None:
    august = make_return(scheme.contract.id, Period(2026, 8), today=date(2026, 11, 1))
    db.session.commit()
    url = f"/returns/contracts/{scheme.contract.id}/returns.csv"
    rows = list(csv.reader(io.StringIO(commissioner.get(url).get_data().decode("utf-8-sig"))))
    assert rows[0][:3] == ["period", "scope", "span"]
    assert {r[0] for r in rows[1:]} == {"2026-08", "2026-09"}
    assert rows[1][0] == "2026-08"  # oldest first, for trend analysis
    assert len(rows) - 1 == len(august.kpi_return.figures) + len(scheme.september.figures)
    narrowed = commissioner.get(f"{url}?from=2026-09").get_data().decode("utf-8-sig")
    assert {r[0] for r in list(csv.reader(io.StringIO(narrowed)))[1:]} == {"2026-09"}
    # Another commissioner's contract is not found.
    assert (
        commissioner.get(f"/returns/contracts/{scheme.other_contract.id}/returns.csv").status_code
        == 404
    )


def test_csv_numbers_stay_numbers_and_only_text_is_guarded() -> None:
    from datetime import UTC, datetime

    from referrals.reports.csv_export import build_return_csv

    kpi_return = KpiReturn(
        scope_key="contract:1",
        period="2026-03",
        version=2,
        spec_version="2",
        generated_at=datetime(2026, 4, 8, 6, 0, tzinfo=UTC),
        targets={},
        figures=[
            {"code": "C4", "name": "Mean change", "span": "year_to_date", "breakdown": "",
             "value": "-1.50", "raw_value": "-1.50", "suppressed": False, "target_rating": "red",
             "target_minimum": -1, "target_expected": 0.5, "target_stretch": 2},
            {"code": "C9", "name": "=cmd|'/c calc'!A1", "span": "month", "breakdown": "",
             "value": "-3", "raw_value": "-3", "suppressed": False, "target_rating": None},
        ],
    )  # fmt: skip
    rows = list(
        csv.reader(io.StringIO(build_return_csv(kpi_return, scope_label="-X").decode("utf-8-sig")))
    )
    assert rows[1][6] == "-1.50" and rows[1][8:11] == ["-1", "0.5", "2"]
    assert rows[1][12:] == ["2", "2026-04-08T06:00:00+00:00", "no"]
    assert rows[2][6] == "-3"
    assert rows[2][4] == "'=cmd|'/c calc'!A1" and rows[1][1] == "'-X"  # text is neutralised
