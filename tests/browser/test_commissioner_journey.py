"""Journey 4: on the 1st of the month the scheduler makes each contract's KPI return from the
demo scheme; the commissioner reads the dashboard, opens the month's return and downloads it
as PDF and CSV. Each figure is shown for the month, the year to date and the contract to date;
ratings (made from the true figures) are words as well as colours, small numbers are
suppressed, and no person is named anywhere the commissioner looks."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from referrals import clock
from referrals.auth.models import Organisation
from referrals.courses.models import Contract
from referrals.extensions import db
from referrals.intake.models import Patient
from referrals.reports.kpi import HEADLINE_CODES, NAMES
from referrals.reports.periods import Period
from referrals.reports.services import latest_closed_period
from referrals.scheduler.jobs import MONTHLY_RETURNS, execute
from referrals.seeding.demo import DEMO_PASSWORD, seed_demo
from tests.browser.accessibility import audit
from tests.browser.helpers import screenshot, sign_in
from tests.conftest import _empty_all_tables
from tests.intake_helpers import pdf_text

COMMISSIONER = "commissioner@demo.test"
ICB = "NHS Severnvale Integrated Care Board"
RATING_WORDS = {"Red", "Amber", "Green", "Stretch met", "Not rated"}
# How the PDF's headline table words each rating the page shows.
PDF_RATINGS = {
    "Red": "Red — below minimum",
    "Amber": "Amber — minimum met, below expected",
    "Green": "Green — expected met",
    "Stretch met": "Stretch met",
}
TARGET = re.compile(r"Target: minimum ([\d.]+), expected ([\d.]+), stretch ([\d.]+)")
SPANS = 3  # month, year to date, contract to date


@dataclass(frozen=True)
class DemoScheme:
    """The demo scheme in the live server's database, with its returns made."""

    contract: str  # the commissioner's contract
    period: Period  # the latest month whose registers have closed: the run made its return
    names: list[str]  # every person's full name: none may reach the commissioner
    nhs_numbers: list[str]
    seconds: float  # seeding and making the returns


@pytest.fixture(scope="module")
def demo_scheme(live_server: Any) -> Iterator[DemoScheme]:
    """`flask seed demo` on the live database, then the monthly returns job as the scheduler
    runs it on the 1st of this month (catching up every finished month since the contracts
    began); every table is emptied after the module."""
    app = live_server.app
    started = time.monotonic()
    today = clock.today()
    try:
        with app.app_context():
            seed_demo(today=today)
            db.session.commit()
            db.session.remove()
        run = execute(app, MONTHLY_RETURNS, today=today)
        assert run.outcome == "succeeded", run.error
        seconds = time.monotonic() - started
        print(f"Demo scheme seeded and {run.detail} in {seconds:.1f} s")
        with app.app_context():
            contract = db.session.scalars(
                select(Contract.name)
                .join(Organisation, Organisation.id == Contract.commissioner_id)
                .where(Organisation.name == ICB)
            ).one()
            people = db.session.execute(
                select(Patient.given_name, Patient.family_name, Patient.nhs_number)
            ).all()
            db.session.remove()
        yield DemoScheme(
            contract=contract,
            period=latest_closed_period(today),
            names=[f"{given} {family}" for given, family, _ in people],
            nhs_numbers=[nhs for _, _, nhs in people if nhs],
            seconds=seconds,
        )
    finally:
        with app.app_context():
            _empty_all_tables()


@dataclass(frozen=True)
class Headline:
    code: str
    figure: str  # as published: a number, "*", or "" for no figure
    target: tuple[Decimal, ...] | None  # minimum, expected, stretch
    rating: str


def _text(locator: Locator) -> str:
    """Visible and visually hidden text (what a screen reader hears), spaces collapsed."""
    return " ".join((locator.text_content() or "").split())


def _figure(cell: Locator) -> str:
    """A figure cell as published; a suppressed one must also say so to screen readers."""
    text = _text(cell)
    if text.startswith("*"):
        assert text == "* (suppressed)", f"a starred figure reads {text!r}"
        return "*"
    if text == "–No figure":  # a dash, and words for screen readers
        return ""
    return text


def _rating(cell: Locator) -> str:
    text = _text(cell)
    return next(
        (word for word in ("Stretch met", "Red", "Amber", "Green") if text.startswith(word)),
        "Not rated",
    )


def read_headlines(page: Page, contract: str, period: Period) -> dict[str, Headline]:
    """Each headline's month figure, its target and its rating, as the dashboard shows them."""
    table = page.get_by_role(
        "table",
        name=f"{contract}: headline figures for {period.label}, the year to date and the "
        "contract to date, against targets",
    )
    headlines = {}
    for row in table.locator("tbody tr").all():
        measure = _text(row.get_by_role("rowheader"))
        cells = row.get_by_role("cell")
        expect(cells).to_have_count(2 * SPANS)  # figure and rating per span: no unrounded
        target = TARGET.search(_text(cells.nth(1)))
        code = measure.split(" ", 1)[0]
        headlines[code] = Headline(
            code=code,
            figure=_figure(cells.nth(0)),
            target=tuple(Decimal(level) for level in target.groups()) if target else None,
            rating=_rating(cells.nth(1)),
        )
    return headlines


def read_return_cells(page: Page, period: Period) -> list[tuple[str, str, str, str]]:
    """(code, breakdown label or "", span, figure) for every cell of the return page."""
    cells = []
    sections = ("A. Referrals", "B. Participation", "C. Wellbeing outcomes", "D. Equalities",
                "E. Cost and value")  # fmt: skip
    for title in sections:
        table = page.get_by_role("table", name=f"{title}, {period.label}")
        spans = [_text(h) for h in table.locator("thead th.app-kpi-number").all()]
        for row in table.locator("tbody tr").all():
            code = _text(row.locator("td").first)
            breakdown = row.locator(".app-kpi-breakdown")
            label = ""
            if breakdown.count():
                label = _text(breakdown).split(", ", 1)[1]  # after the hidden measure name
            for span, number in zip(spans, row.locator(".app-kpi-number").all(), strict=True):
                if _text(number) != "Not reported for this span":
                    cells.append((code, label, span, _figure(number)))
    return cells


def _level(value: Decimal) -> str:
    return f"{float(value):g}"


def assert_nobody_named(text: str, scheme: DemoScheme, where: str) -> None:
    named = [name for name in scheme.names if name in text]
    assert not named, f"{where} names {named[:5]}"
    digits = re.sub(r"\s", "", text)
    numbers = [nhs for nhs in scheme.nhs_numbers if nhs in digits]
    assert not numbers, f"{where} shows NHS numbers {numbers[:5]}"


def test_commissioner_downloads_the_months_return_as_pdf_and_csv(
    new_context: Any, demo_scheme: DemoScheme, tmp_path: Path
) -> None:
    contract, period = demo_scheme.contract, demo_scheme.period
    page = new_context().new_page()
    sign_in(page, COMMISSIONER, DEMO_PASSWORD)

    expect(page.get_by_role("heading", name="Your contracts", level=1)).to_be_visible()
    contracts = page.get_by_role("table", name="Your contracts and their latest returns")
    expect(contracts.get_by_role("row").filter(has_text=contract)).to_contain_text(period.label)
    assert_nobody_named(page.locator("body").inner_text(), demo_scheme, "The home page")
    page.get_by_role("link", name="See returns, ratings against targets and trends").click()

    expect(page.get_by_role("heading", name="KPI returns", level=1)).to_be_visible()
    audit(page)
    expect(page.get_by_role("heading", name=contract, level=2)).to_be_visible()
    expect(page.get_by_role("heading", name=f"Headline figures for {period.label}")).to_be_visible()
    headlines = read_headlines(page, contract, period)
    assert list(headlines) == list(HEADLINE_CODES)
    for headline in headlines.values():
        # The rating is written out: colour is never the only signal; and only a KPI with a
        # target for the month is rated (on its true figure, so a * may be rated too).
        assert headline.rating in RATING_WORDS, headline
        assert (headline.rating != "Not rated") <= (headline.target is not None), headline
    assert {h.rating for h in headlines.values()} - {"Not rated"}, "nothing is rated"
    # Twelve months of trends, one chart per headline figure.
    expect(page.get_by_role("figure")).to_have_count(len(HEADLINE_CODES))
    dashboard_text = page.locator("body").inner_text()
    assert_nobody_named(dashboard_text, demo_scheme, "The dashboard")
    page.evaluate("document.activeElement.blur()")
    screenshot(page, "kpi-dashboard.png", tmp_path)

    # The link's hidden ", <contract>" is out of flow, so the name may have a space before it.
    whole_return = re.compile(rf"See the whole return for {period.label}\s*, {re.escape(contract)}")
    page.get_by_role("link", name=whole_return).click()
    expect(
        page.get_by_role("heading", name=f"KPI return for {period.label}", level=1)
    ).to_be_visible()
    audit(page)
    summary = page.locator(".nhsuk-summary-list")
    expect(summary).to_contain_text(contract)
    expect(summary).to_contain_text("automatically")  # made by the scheduler, not by hand
    cells = read_return_cells(page, period)
    on_page = {code: figure for code, label, span, figure in cells if not label and span == "Month"}
    assert {code: on_page[code] for code in HEADLINE_CODES} == {
        code: h.figure for code, h in headlines.items()
    }
    # Small numbers: breakdown cells of 1 to 7 people are starred, and the page counts them.
    starred = [cell for cell in cells if cell[3] == "*"]
    assert any(label for _, label, _, _ in starred), "no breakdown cell is suppressed"
    expect(
        page.get_by_text(re.compile(r"\d+ cells? in this return (are|is) suppressed"))
    ).to_contain_text(f"{len(starred)} cell{'s' if len(starred) != 1 else ''} in this return")
    assert_nobody_named(page.locator("body").inner_text(), demo_scheme, "The return page")

    version = f"{period.label}, version 1"
    with page.expect_download() as pdf_download:
        page.get_by_role("link", name=f"PDF of {version}").click()
    pdf = Path(pdf_download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert pdf_download.value.suggested_filename.endswith(f"-{period.key}-v1.pdf")
    text = " ".join(pdf_text(pdf).split())
    packed = "".join(text.split())  # table cells wrap anywhere
    assert f"{period.label} · {contract}" in text
    assert f"Commissioner {ICB}" in text
    assert "Generated by the scheduled monthly job" in text
    for code, headline in headlines.items():
        shown = headline.figure or "–"
        row = f"{code}{NAMES[code]}{shown}"
        if headline.target:
            levels = " / ".join(map(_level, headline.target))
            rating = PDF_RATINGS.get(headline.rating, "Not rated: no figure")
            row += f"Target {levels}{rating}"
        assert "".join(row.split()) in packed, f"the PDF's {code} row is not {row!r}"
        # Each headline's twelve-month chart ends on this month's figure (then, where the
        # KPI has them, the year to date and the contract to date).
        assert re.search(rf"{period.label}: {re.escape(shown)}[.;]", text), code
    assert "Twelve-month trends" in text
    assert f"Cells suppressed: {len(starred)}." in text
    assert_nobody_named(text, demo_scheme, "The PDF")

    with page.expect_download() as csv_download:
        page.get_by_role("link", name=f"CSV of {version}").click()
    assert csv_download.value.suggested_filename.endswith(f"-{period.key}-v1.csv")
    raw = Path(csv_download.value.path()).read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {(r["period"], r["scope"], r["version"]) for r in rows} == {(period.key, contract, "1")}
    assert {r["span"] for r in rows} == {"month", "year_to_date", "contract_to_date"}
    assert sorted((r["code"], r["value"]) for r in rows) == sorted(
        (code, figure) for code, _, _, figure in cells
    )
    for r in rows:
        assert (r["suppressed"] == "yes") == (r["value"] == "*"), r
    ratings = {
        r["code"]: r["target_rating"] for r in rows if not r["breakdown"] and r["span"] == "month"
    }
    for code, headline in headlines.items():
        word = ratings[code].capitalize() if ratings[code] else "Not rated"
        assert word == headline.rating, (code, ratings[code], headline)
    assert "raw_value" not in rows[0]  # the unrounded figures are for admins only
    assert_nobody_named(raw.decode("utf-8-sig"), demo_scheme, "The CSV")
