"""The monthly KPI return as a PDF: what a commissioner reads, and what it must never show.

The scheme is small but real, made through the services: two courses on one contract, people
referred in March 2026, enrolled, registers saved by an admin on the day of each session, and
SWEMWBS before and after. Returns are then made for past months, as the scheduler would.

    Painting for Wellbeing  Wednesdays 4 Mar – 8 Apr (6 sessions), 9 people, all attend
    Singing for Better Breathing  Thursdays 2 Apr – 21 May (8 sessions), 13 people:
        11 attend every session (they complete), 2 attend the first four then stop

May 2026, the return most tests read: B1 = 11 people (the two who stopped came in April only;
published 10, green against 0 / 10 / 20), B4 = 3 sessions (shown as it is: amber against
2 / 4 / 6), B7 = 11 completions (published 10), C4 = +2.17 against 1 / 2 / 3 (green: 7 people
gain 3.10, 4 gain 0.55), C5 = 7 of 11 improved (published *: its numerator is 1 to 7). Beside
each month figure: the year to date (from 1 April 2026) and the contract to date.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from referrals.auth.models import OrganisationKind, Role, User
from referrals.courses.models import AttendanceStatus, Contract, Course, CourseSession
from referrals.courses.services import RegisterEntry, enrol, record_wellbeing, save_register
from referrals.documents import FONT, FONT_BOLD
from referrals.extensions import db
from referrals.outcomes.scoring import Instrument, Timepoint
from referrals.reports.kpi import HEADLINE_CODES, NAMES
from referrals.reports.models import KpiReturn
from referrals.reports.pdf import SUPPRESSION_NOTE, build_return_pdf
from referrals.reports.periods import Period, periods_between
from referrals.reports.services import make_return, regenerate_return
from referrals.vocab import ArtForm, Pathway
from tests import factories
from tests.course_helpers import assessed_referral, from_start
from tests.factories import make_contract, make_course
from tests.intake_helpers import pdf_fonts, pdf_text

TODAY = date(2026, 6, 15)  # every month up to May 2026 has finished
MAY = Period(2026, 5)
FEBRUARY = Period(2026, 2)  # before any referral or session: a month with no activity
GIVEN_NAMES = [
    "Philippa", "Barnaby", "Ottoline", "Cressida", "Peregrine", "Araminta", "Fenella",
    "Lysander", "Marigold", "Tarquin", "Wilhelmina", "Horatio", "Clementine", "Ignatius",
    "Perpetua", "Ambrose", "Rosalind", "Evander", "Henrietta", "Leopold", "Guinevere",
    "Bartholomew",
]  # fmt: skip
FAMILY_NAME = "Quennell-Featherstonehaugh"
TARGETS = {
    "B1": {"month": {"minimum": 0, "expected": 10, "stretch": 20}},
    "B4": {"month": {"minimum": 2, "expected": 4, "stretch": 6}},
    "C4": {"month": {"minimum": 1, "expected": 2, "stretch": 3}},
}
# SWEMWBS items (each 1-5): raw 17 -> metric 16.88, 22 -> 19.98 (+3.10), 18 -> 17.43 (+0.55).
BASELINE_ITEMS = [3, 3, 3, 2, 2, 2, 2]
IMPROVED_ITEMS = [4, 4, 3, 3, 3, 3, 2]
STEADY_ITEMS = [3, 3, 3, 3, 2, 2, 2]


@dataclass
class Scheme:
    contract: Contract
    admin: User
    patients: list[tuple[str, str, str]] = field(default_factory=list)  # given, family, NHS
    returns: dict[str, KpiReturn] = field(default_factory=dict)

    def make_returns(self, periods: list[Period], **kwargs: Any) -> None:
        for period in periods:
            made = make_return(self.contract.id, period, today=TODAY, **kwargs)
            self.returns[period.key] = made.kpi_return


def _sessions(course: Course) -> list[CourseSession]:
    return list(
        db.session.scalars(
            select(CourseSession)
            .where(CourseSession.course_id == course.id)
            .order_by(CourseSession.date)
        )
    )


def _run_course(
    scheme: Scheme,
    link_worker: User,
    course: Course,
    people: int,
    *,
    names: list[str],
    pathways: list[Pathway],
    received: date,
    stoppers: int = 0,
    wellbeing: bool = False,
) -> None:
    """Enrol `people`, then save every register: the last `stoppers` come to half only."""
    enrolments = []
    for index in range(people):
        referral = assessed_referral(
            link_worker,
            given_name=names[index],
            family_name=FAMILY_NAME,
            pathway=pathways[index % len(pathways)],
            received_on=received,
            today=received,
        )
        patient = referral.patient
        scheme.patients.append((patient.given_name, patient.family_name, patient.nhs_number))
        enrolments.append(
            enrol(link_worker, referral, course, today=received, at=from_start(course))
        )
    sessions = _sessions(course)
    if wellbeing:
        for enrolment in enrolments[: people - stoppers]:
            record_wellbeing(
                scheme.admin, enrolment, Instrument.SWEMWBS, Timepoint.BASELINE,
                BASELINE_ITEMS, recorded_on=sessions[0].date, today=sessions[0].date,
            )  # fmt: skip
    for number, session in enumerate(sessions):
        entries = [
            RegisterEntry(enrolment.id, AttendanceStatus.NO_SHOW)
            if index >= people - stoppers and number >= len(sessions) // 2
            else RegisterEntry(enrolment.id, AttendanceStatus.ATTENDED, 5, 7)
            for index, enrolment in enumerate(enrolments)
        ]
        save_register(scheme.admin, session, entries, today=session.date)
    if wellbeing:
        last = sessions[-1].date
        for index, enrolment in enumerate(enrolments[: people - stoppers]):
            items = IMPROVED_ITEMS if index < 7 else STEADY_ITEMS
            record_wellbeing(
                scheme.admin, enrolment, Instrument.SWEMWBS, Timepoint.END, items,
                recorded_on=last, today=last,
            )  # fmt: skip


def build_scheme() -> Scheme:
    """The scheme in the module docstring, with returns for February to May 2026."""
    commissioner = factories.make_organisation(
        OrganisationKind.COMMISSIONER, name="NHS Gloucestershire Integrated Care Board"
    )
    contract = make_contract(
        name="Creative Health Gloucestershire 2025-27", commissioner=commissioner, targets=TARGETS
    )
    admin = factories.make_user(Role.ADMIN, name="Priya Natarajan")
    link_worker = factories.make_user(Role.LINK_WORKER)
    scheme = Scheme(contract, admin)
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    painting = make_course(
        provider, contract=contract, start=date(2026, 3, 4), sessions=6, capacity=12,
        title="Painting for Wellbeing", art_form=ArtForm.VISUAL_ART,
    )  # fmt: skip
    singing = make_course(provider, contract=contract, start=date(2026, 4, 2), capacity=15)
    _run_course(
        scheme, link_worker, painting, 9, names=GIVEN_NAMES[13:],
        pathways=[Pathway.MENTAL_HEALTH], received=date(2026, 3, 2),
    )  # fmt: skip
    _run_course(
        scheme, link_worker, singing, 13, names=GIVEN_NAMES[:13],
        pathways=[Pathway.COPD_ASTHMA, Pathway.COPD_ASTHMA, Pathway.SOCIAL_ISOLATION],
        received=date(2026, 3, 20), stoppers=2, wellbeing=True,
    )  # fmt: skip
    db.session.commit()
    scheme.make_returns(periods_between(FEBRUARY, MAY), actor=admin)
    return scheme


@pytest.fixture()
def scheme(app: Any) -> Scheme:
    return build_scheme()


def flat(data: bytes) -> str:
    """The PDF's text with every run of whitespace made one space (lines wrap anywhere)."""
    return " ".join(pdf_text(data).split())


def figure(
    kpi_return: KpiReturn, code: str, breakdown: str = "", span: str = "month"
) -> dict[str, Any]:
    return next(
        f
        for f in kpi_return.figures
        if f["code"] == code and f["breakdown"] == breakdown and f["span"] == span
    )


# What the return says ------------------------------------------------------------------------


def test_the_title_page_says_whose_return_it_is_and_where_it_came_from(app, scheme):
    data = build_return_pdf(scheme.returns[MAY.key])
    assert data.startswith(b"%PDF")
    text = flat(data)
    assert app.config["SERVICE_NAME"] in text
    assert "Monthly KPI return" in text
    assert "Creative Health Gloucestershire 2025-27" in text
    assert "NHS Gloucestershire Integrated Care Board" in text
    assert "May 2026" in text
    assert "Version 1 (current)" in text
    assert "Generated at" in text and (" BST" in text or " GMT" in text)
    assert "Generated by Priya Natarajan" in text
    assert "KPI specification Version 2" in text
    assert pdf_fonts(data) == {FONT, FONT_BOLD}  # embedded Unicode font, charts included


def test_every_headline_kpi_is_listed_with_its_published_value(scheme):
    kpi_return = scheme.returns[MAY.key]
    text = flat(build_return_pdf(kpi_return))
    for code in HEADLINE_CODES:
        assert NAMES[code] in text, code
    # The worked figures of the module docstring, as published.
    assert figure(kpi_return, "B1")["value"] == "10"
    assert figure(kpi_return, "B4")["value"] == "3"
    assert figure(kpi_return, "B7")["value"] == "10"
    assert figure(kpi_return, "C4")["value"] == "2.17"
    assert figure(kpi_return, "C5")["value"] == "*"
    assert re.search(r"B1 Number of people supported to access arts or cultural groups/ ?"
                     r"activities 10 ", text)  # fmt: skip
    assert re.search(r"B7 Completions 10 ", text)
    assert re.search(r"C4 Mean change 2\.17 ", text)


def test_ratings_are_written_out_not_only_coloured(scheme):
    text = flat(build_return_pdf(scheme.returns[MAY.key]))
    # B1: 10 published (11 true) against 0 / 10 / 20; C4: 2.17 against 1 / 2 / 3; then the
    # year to date and the contract to date beside them.
    assert re.search(r"activities 10 Target 0 / 10 / 20 Green — expected met 20 20 ", text)
    assert re.search(r"C4 Mean change 2\.17 Target 1 / 2 / 3 Green — expected met ", text)
    # B4 counts sessions, not people: shown as it is and rated.
    assert re.search(
        r"B4 Sessions delivered 3 Target 2 / 4 / 6 Amber — minimum met, below expected ", text
    )
    assert re.search(r"B2 New starters 0 15 20 ", text)  # no target: nothing to rate


def test_sections_and_human_readable_breakdowns(scheme):
    march = flat(build_return_pdf(scheme.returns["2026-03"]))
    for heading in ("A. Referrals", "B. Participation", "C. Wellbeing outcomes", "D. Equalities"):
        assert heading in march
    # A1 in March: 22 referrals (published 20), all from GPs; 9 mental health (10), 9 COPD
    # or asthma (10), 4 social isolation (*).
    assert re.search(r"A1 Referrals received 20 ", march)
    assert re.search(r"Referrer type: GP 20 ", march)
    assert re.search(r"Pathway: Mental health 10 ", march)
    assert re.search(r"Pathway: Social isolation \* ", march)
    assert "Referrer type: Social prescribing link worker" in march
    assert "Pathway: COPD or asthma" in march
    assert "Close reason: Unable to contact" in march
    assert "Age band: 75 and over" in march
    assert "Age band: 18 to 24" in march
    assert "Ethnic group: White" in march
    assert "Sex: Female" in march
    # No raw codes leak through.
    assert "referrer_type=" not in march and "copd_asthma" not in march


def test_suppressed_cells_are_starred_and_listed(scheme):
    kpi_return = scheme.returns[MAY.key]
    text = flat(build_return_pdf(kpi_return))
    assert re.search(r"C5 Improved \(%\) \* \* \* ", text)
    assert SUPPRESSION_NOTE in text
    assert "percentages are computed from the true counts, to a whole per cent" in text
    withheld = [e for e in kpi_return.suppression_log if e["protection"] == "suppressed"]
    rounded = len(kpi_return.suppression_log) - len(withheld)
    assert withheld
    counts = f"Cells suppressed: {len(withheld)}. Other cells changed by rounding: {rounded}."
    assert counts in text
    # Each withheld cell is listed by name; the headline B4 and C5 among them.
    assert not re.search(r"B4 Sessions delivered Headline figure", text)
    assert re.search(r"C5 Improved \(%\) Headline figure", text)
    assert "Cells suppressed under the small-number rule" in text


def test_every_page_has_the_specification_and_page_numbers(scheme):
    data = build_return_pdf(scheme.returns[MAY.key])
    pages = PdfReader(io.BytesIO(data)).pages
    total = len(pages)
    assert total >= 3
    for number, page in enumerate(pages, start=1):
        text = " ".join(page.extract_text().split())
        assert "KPI specification v2" in text
        assert f"Page {number} of {total}" in text
    assert "Page 1 of" in flat(data)


def test_the_trend_page_has_a_chart_per_headline_kpi(scheme):
    text = flat(build_return_pdf(scheme.returns[MAY.key]))
    assert "Twelve-month trends" in text
    # Months run June 2025 to May 2026; each axis is labelled month by month.
    assert "June 2025 to May 2026" in text
    assert text.count("Jun 25 Jul 25 Aug 25") == len(HEADLINE_CODES)
    # Each chart is captioned with its latest figure, and with its target when it has one.
    b1 = "May 2026: 10; year to date 20; contract to date 20. Shaded: target from minimum 0 to "
    assert b1 + "expected 10. Dashed line: stretch 20." in text
    assert (
        "May 2026: 3; year to date 10; contract to date 14. Shaded: target from minimum 2 " in text
    )
    assert "May 2026: 85; year to date 93; contract to date 95. No target." in text  # B6, 84.6


def test_admins_copy_adds_the_unrounded_figures(scheme):
    kpi_return = scheme.returns[MAY.key]
    assert figure(kpi_return, "B1")["raw_value"] == "11"
    assert figure(kpi_return, "B7")["raw_value"] == "11"
    standard = flat(build_return_pdf(kpi_return))
    admin_copy = flat(build_return_pdf(kpi_return, raw=True))
    assert "Unrounded" not in standard
    assert "Unrounded" in admin_copy
    assert "Includes unrounded figures" in admin_copy
    assert re.search(r"B7 Completions 10 Unrounded: 11 ", admin_copy)
    assert re.search(r"activities 10 Unrounded: 11 Target 0 / 10 / 20", admin_copy)
    assert not re.search(r"B7 Completions 10 Unrounded", standard)
    assert re.search(r"B7 Completions 10 ", standard)


def test_a_month_with_no_activity_still_builds(scheme):
    kpi_return = scheme.returns[FEBRUARY.key]
    assert figure(kpi_return, "B1")["raw_value"] == "0"
    text = flat(build_return_pdf(kpi_return))
    assert "February 2026" in text
    assert re.search(r"B4 Sessions delivered 0 Target 2 / 4 / 6 Red — below minimum", text)
    assert "Cells suppressed: 0." in text
    # Attendance rate has no records to divide by: no figure, and no line on its chart.
    assert re.search(r"B6 Attendance rate \(%\) – – – ", text)
    assert "No published figures in these months" in text


def test_no_person_is_identified_anywhere(scheme):
    for kpi_return in scheme.returns.values():
        for raw in (False, True):
            reader = PdfReader(io.BytesIO(build_return_pdf(kpi_return, raw=raw)))
            metadata = " ".join(str(v) for v in (reader.metadata or {}).values())
            text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
            text += " " + metadata
            squashed = text.replace(" ", "")
            assert FAMILY_NAME not in text
            for given, _family, nhs in scheme.patients:
                assert given not in text, given
                assert nhs not in squashed, nhs


def test_superseded_and_regenerated_versions_say_so(scheme):
    first = scheme.returns[MAY.key]
    second = regenerate_return(
        scheme.admin, scheme.contract.id, MAY, "Registers <corrected> & checked", today=TODAY
    )
    old = flat(build_return_pdf(first))
    assert "Version 1 — superseded on" in old
    assert "This version is superseded" in old
    assert "version 1, superseded" in old  # in every page's footer
    new = flat(build_return_pdf(second))
    assert "Version 2 (current)" in new
    assert "Why it was regenerated Registers <corrected> & checked" in new


@pytest.mark.parametrize(
    ("job", "shown"),
    [("monthly-kpi-returns", "the scheduled monthly job"), ("cli", "command line")],
)
def test_returns_made_by_jobs_say_which(app, job, shown):
    contract = make_contract()
    made = make_return(contract.id, Period(2026, 1), today=TODAY, job=job)
    assert f"Generated by {shown}" in flat(build_return_pdf(made.kpi_return))


def test_the_all_activity_return_builds(scheme):
    made = make_return(None, MAY, today=TODAY, job="cli")
    text = flat(build_return_pdf(made.kpi_return))
    assert "May 2026 · All activity" in text
    assert "All contracts: every course the service runs" in text
    assert "No target" in text


def test_a_full_return_with_twelve_months_of_trend_and_raw_figures_builds(scheme):
    scheme.make_returns(periods_between(Period(2025, 6), Period(2026, 1)), job="cli")
    kpi_return = scheme.returns[MAY.key]
    assert len(kpi_return.figures) > 50  # every breakdown cell
    data = build_return_pdf(kpi_return, raw=True)  # its build time is measured in bench/kpi.py
    assert data.startswith(b"%PDF")
    assert "Unrounded" in pdf_text(data)


def test_a_trend_chart_breaks_its_line_at_gaps_and_shades_the_target(app):
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Rect, String

    from referrals.reports.pdf import trend_drawing
    from referrals.reports.periods import last_periods
    from referrals.reports.trends import Trend

    shown = ["–"] * 7 + ["12", "15", "*", "", "20"]
    values = [None] * 7 + [Decimal(12), Decimal(15), None, None, Decimal(20)]
    target = {"minimum": 10, "expected": 15, "stretch": 25}
    trend = Trend("B1", NAMES["B1"], last_periods(MAY, 12), values, shown, target)
    drawing = trend_drawing(trend)
    plot = next(item for item in drawing.contents if isinstance(item, LinePlot))
    # Two runs of months with figures: the line is not drawn across the gap.
    assert plot.data == [[(7, 12.0), (8, 15.0)], [(11, 20.0)]]
    assert [text for text, _box in _chart_labels(drawing)] == ["12", "15", "*", "20"]
    # The axis reaches the stretch target, so the band and the dashed line are on the chart.
    assert plot.yValueAxis.valueMax >= 25
    assert any(isinstance(item, Rect) for item in drawing.contents)
    # The suppressed month is marked under its gap; the empty one is not.
    stars = [i for i in drawing.contents if isinstance(i, String) and i.text == "*"]
    assert len(stars) == 1


# Trend chart labels ----------------------------------------------------------------------------

Box = tuple[float, float, float, float]


def _strings(node: Any, matrix: Any = (1, 0, 0, 1, 0, 0)) -> list[tuple[str, Box]]:
    """Every String under a drawing node, with its bounding box on the drawing."""
    from reportlab.graphics.shapes import Group, String, mmult, transformPoints

    if isinstance(node, String):
        x0, y0, x1, y1 = node.getBounds()
        (ax, ay), (bx, by) = transformPoints(matrix, [(x0, y0), (x1, y1)])
        return [(node.text, (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)))]
    if isinstance(node, Group):
        inner = mmult(matrix, node.transform)
        return [found for child in node.contents for found in _strings(child, inner)]
    if hasattr(node, "draw"):  # a widget: the plot and its axes
        return _strings(node.draw(), matrix)
    return []


def _chart_labels(drawing: Any) -> list[tuple[str, Box]]:
    """The figures and * marks printed on the chart (not the axes' labels), in month order."""
    from reportlab.graphics.charts.lineplots import LinePlot

    labels = [
        s for item in drawing.contents if not isinstance(item, LinePlot) for s in _strings(item)
    ]
    return sorted(labels, key=lambda label: (label[1][0] + label[1][2]) / 2)


def _axis_labels(drawing: Any) -> list[tuple[str, Box]]:
    from reportlab.graphics.charts.lineplots import LinePlot

    plot = next(item for item in drawing.contents if isinstance(item, LinePlot))
    return _strings(plot)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# Adjacent months with near-equal wide figures (each wider than a month on the axis), a
# suppressed month between them, the first month against the y axis and one at the very top.
COLLIDING = ["1250.10", "1250.20", "*", "1250.15", "1250.30", "1250.25", "*", "1250.20",
             "", "0.00", "*", "1999.99"]  # fmt: skip


def _colliding_returns(periods: list[Period]) -> KpiReturn:
    """All-activity returns whose E2 (cost per person supported) runs as COLLIDING."""
    made = None
    for period, shown in zip(periods, COLLIDING, strict=True):
        figures = [
            {"code": code, "name": NAMES[code], "breakdown": "", "span": span,
             "value": shown if code == "E2" else "", "raw_value": shown,
             "suppressed": shown == "*", "target_rating": None}
            for code in HEADLINE_CODES
            for span in ("month", "year_to_date")
        ]  # fmt: skip
        made = KpiReturn(
            scope_key="all", contract_id=None, period=period.key, version=1, spec_version="2",
            figures=figures, suppression_log=[], targets={}, generated_by_job="cli",
        )  # fmt: skip
        db.session.add(made)
    db.session.commit()
    assert made is not None
    return made


def test_trend_labels_never_collide_with_each_other_or_the_axes(app):
    from referrals.reports.pdf import PLOT_BOTTOM, PLOT_LEFT, trend_drawing
    from referrals.reports.periods import last_periods
    from referrals.reports.trends import return_trends

    kpi_return = _colliding_returns(last_periods(MAY, 12))
    (trend,) = [t for t in return_trends(kpi_return) if t.code == "E2"]
    assert trend.shown == COLLIDING
    drawing = trend_drawing(trend)

    labels = _chart_labels(drawing)
    # Every published figure and every * is printed, in month order.
    assert [text for text, _box in labels] == [shown for shown in COLLIDING if shown]
    for index, (text, box) in enumerate(labels):
        for other_text, other in labels[index + 1 :]:
            assert not _overlap(box, other), f"{text} overlaps {other_text}"
        # Clear of both axes: right of the y axis, above the x axis, on the drawing.
        assert box[0] > PLOT_LEFT and box[1] > PLOT_BOTTOM, text
        assert box[2] <= drawing.width and box[3] <= drawing.height, text
        for axis_text, axis_box in _axis_labels(drawing):
            assert not _overlap(box, axis_box), f"{text} overlaps the axis label {axis_text}"
    # The return's PDF, charts and all, is made from the same figures.
    text = flat(build_return_pdf(kpi_return))
    assert "May 2026: 1999.99; year to date 1999.99. No target." in text
