"""The return's page is the accessible HTML view of its PDF: every figure the PDF shows, cell for
cell, is on the page, and the page shows nothing the PDF does not.

The scheme is the PDF tests' (tests/test_return_pdf.py): May 2026 for one contract, with the
month, the year to date and the contract to date, suppressed cells (C5 and breakdown cells),
and targets for the month and the year to date rated from red to green. Both documents are read
back as a reader gets them: the PDF's text with pypdf, the page's visible text.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from pypdf import PdfReader

from referrals.extensions import db
from referrals.reports.kpi import HEADLINE_CODES, NAMES
from referrals.reports.labels import RATING_WORDS, SPAN_TITLES
from referrals.reports.models import KpiReturn
from referrals.reports.pdf import build_return_pdf
from referrals.reports.services import regenerate_return
from tests.test_return_pdf import MAY, TARGETS, TODAY, Scheme, build_scheme

# Year-to-date targets beside the month's: B1 (20 published, 22 true) is red, B4 amber, C4
# green and B6 (93 %) stretch met, so every rating appears.
YEAR_TARGETS = {
    "B1": {"minimum": 25, "expected": 30, "stretch": 40},
    "B4": {"minimum": 8, "expected": 12, "stretch": 16},
    "B6": {"minimum": 60, "expected": 70, "stretch": 80},
    "C4": {"minimum": 1, "expected": 2, "stretch": 3},
}
RATING_OF_WORDS = {words: key for key, words in RATING_WORDS.items()}
TAGS = {"Red": "red", "Amber": "amber", "Green": "green", "Stretch met": "stretch met"}
FIGURE = r"-?\d+(?:\.\d+)?|\*|–"
LEVEL = r"[-\d.]+|–"
PDF_CELL = re.compile(
    rf"(?P<value>{FIGURE})"
    rf"(?: Unrounded: (?P<raw>{FIGURE}))?"
    rf"(?: Target (?P<target>(?:{LEVEL}) / (?:{LEVEL}) / (?:{LEVEL})))?"
    rf"(?: (?P<rating>{'|'.join(map(re.escape, RATING_WORDS.values()))}|Not rated: no figure))?"
)


@dataclass(frozen=True)
class Shown:
    """One span's cell as a reader sees it, in either document."""

    value: str
    raw: str | None
    target: tuple[float, ...] | None
    rating: str | None


@pytest.fixture()
def remade(app: Any) -> tuple[Scheme, KpiReturn]:
    scheme = build_scheme()
    scheme.contract.targets = {
        code: {**TARGETS.get(code, {}), "year_to_date": levels}
        for code, levels in YEAR_TARGETS.items()
    } | {code: spans for code, spans in TARGETS.items() if code not in YEAR_TARGETS}
    db.session.commit()
    kpi_return = regenerate_return(
        scheme.admin, scheme.contract.id, MAY, "Year-to-date targets agreed", today=TODAY
    )
    ratings = {f.get("target_rating") for f in kpi_return.figures}
    assert {"red", "amber", "green", "stretch met"} <= ratings
    assert any(f["value"] == "*" for f in kpi_return.figures)
    assert {f["span"] for f in kpi_return.figures} == {"month", "year_to_date", "contract_to_date"}
    return scheme, kpi_return


# Reading the page ---------------------------------------------------------------------------


@dataclass
class Table:
    caption: str = ""
    rows: list[list[str]] = field(default_factory=list)


class _Tables(HTMLParser):
    """Every table: its caption (hidden or not) and each row's cells as seen (visually hidden
    text left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.summary: dict[str, str] = {}
        self._stack: list[tuple[str, bool]] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._key: list[str] | None = None
        self._value: list[str] | None = None

    def _hidden(self) -> bool:
        return any(hidden for _tag, hidden in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag in ("br", "img", "input", "meta", "link"):
            return
        self._stack.append((tag, "nhsuk-u-visually-hidden" in classes and tag != "caption"))
        if tag == "table":
            self.tables.append(Table())
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self.tables:
            self.tables[-1].rows.append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "dt":
            self._key = []
        elif tag == "dd":
            self._value = []

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, _hidden = self._stack.pop()
            if open_tag == tag:
                break
        if tag == "caption" and self._caption is not None:
            self.tables[-1].caption = " ".join("".join(self._caption).split())
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1].rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "dd" and self._key is not None and self._value is not None:
            self.summary[" ".join("".join(self._key).split())] = " ".join(
                "".join(self._value).split()
            )
            self._key = self._value = None

    def handle_data(self, data: str) -> None:
        if self._caption is not None:
            self._caption.append(data)
        if self._hidden():
            return
        for sink in (self._cell, self._value):
            if sink is not None:
                sink.append(data)
        if self._key is not None and self._value is None:
            self._key.append(data)


def _page(client: Any, kpi_return: KpiReturn) -> _Tables:
    response = client.get(f"/returns/{kpi_return.id}")
    assert response.status_code == 200
    parser = _Tables()
    parser.feed(response.get_data(as_text=True))
    return parser


def _levels(text: str) -> tuple[float, ...]:
    return tuple(float(level) for level in text)


def _html_cell(value: str, raw: str | None, rating: str) -> Shown:
    tag = next((key for word, key in TAGS.items() if rating.startswith(word)), None)
    target = re.search(r"Target: minimum (\S+), expected (\S+), stretch (\S+)", rating)
    return Shown(
        value or "–",
        None if raw is None else raw or "–",
        _levels(target.groups()) if target else None,
        tag,
    )


def _html_rows(table: Table, spans: list[str], *, admin: bool, code_column: bool) -> list[Any]:
    """[(row label, {span: Shown})] from a page table."""
    width = 3 if admin else 2
    rows = []
    for cells in table.rows[1:]:
        if code_column:  # the PDF heads a breakdown cell's row with its label alone
            code, name = cells[:2]
            label = f"{code} {name}" if name == NAMES.get(code) else name
        else:
            label = cells[0]
        rest = cells[2:] if code_column else cells[1:]
        assert len(rest) == width * len(spans), cells
        shown = {}
        for index, span in enumerate(spans):
            group = rest[index * width : (index + 1) * width]
            shown[span] = _html_cell(group[0], group[1] if admin else None, group[-1])
        rows.append((label.strip(), shown))
    return rows


# Reading the PDF ----------------------------------------------------------------------------


def _pdf_text(data: bytes, kpi_return: KpiReturn, scope: str) -> str:
    """The PDF's text in reading order, without page footers."""
    pages = [" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(data)).pages]
    footer = re.compile(
        re.escape(f"{MAY.label} · {scope} · version {kpi_return.version}")
        + r"(?:, superseded)? KPI specification v\d+ · Page \d+ of \d+"
    )
    return " ".join(footer.sub("", page).strip() for page in pages)


def _pdf_cell(match: re.Match[str]) -> Shown:
    target = match["target"]
    return Shown(
        match["value"],
        match["raw"],
        _levels(target.split(" / ")) if target else None,
        RATING_OF_WORDS.get(match["rating"] or ""),
    )


def _pdf_rows(text: str, labels: list[str], spans: list[str], *, admin: bool) -> list[Any]:
    """Read the PDF table `text` as rows headed by `labels` (in the page's order), each with a
    cell per span; anything left over, or a row that does not read so, fails. A span a row does
    not have is a dash alone (the page dashes its unrounded column too)."""
    rows = []
    rest = text.strip()
    for label in labels:
        pattern = re.escape(label).replace("/", "/ ?")
        head = re.match(pattern + " ", rest)
        assert head, f"expected the row {label!r} at: {rest[:120]!r}"
        rest = rest[head.end() :]
        shown = {}
        for span in spans:
            cell = PDF_CELL.match(rest)
            assert cell and cell.group(0), f"{label} {span}: {rest[:80]!r}"
            shown[span] = _pdf_cell(cell)
            if admin and cell.group(0) == "–":
                shown[span] = Shown("–", "–", None, None)
            rest = rest[cell.end() :].lstrip()
        rows.append((label, shown))
    assert rest == "", f"the PDF shows more: {rest[:200]!r}"
    return rows


def _between(text: str, start: str, end: str) -> str:
    assert start in text, start
    after = text.split(start, 1)[1]
    assert end in after, end
    return after.split(end, 1)[0]


HEADER = re.compile(
    r"Cod ?e (?:Measure|Headline KPI)(?: (?:Month|Year to date|Contract to date))+ "
)


def _chart_figures(piece: str) -> list[str]:
    """A chart's printed figures: what follows its y axis's evenly spaced labels."""
    tokens = piece.split()
    numbers = [float(t) for t in tokens[:2]]
    step = numbers[1] - numbers[0]
    axis = 2
    while axis < len(tokens) and re.fullmatch(r"-?[\d.]+", tokens[axis]):
        if abs(float(tokens[axis]) - float(tokens[axis - 1]) - step) > 1e-9:
            break
        axis += 1
    return tokens[axis:]


# The comparison -----------------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["commissioner", "admin"])
def test_the_page_shows_every_figure_the_pdf_shows(login_as, remade, reader):
    scheme, kpi_return = remade
    admin = reader == "admin"
    client = (
        login_as(scheme.admin)
        if admin
        else login_as("commissioner", organisation=scheme.contract.commissioner)
    )
    page = _page(client, kpi_return)
    scope = scheme.contract.name
    text = _pdf_text(build_return_pdf(kpi_return, raw=admin), kpi_return, scope)
    spans = ["month", "year_to_date", "contract_to_date"]

    # The return's provenance.
    commissioner = scheme.contract.commissioner.name
    assert page.summary["Commissioner"] == commissioner
    assert f"Commissioner {commissioner}" in text
    assert page.summary["Why it was regenerated"] == "Year-to-date targets agreed"
    assert "Why it was regenerated Year-to-date targets agreed" in text
    assert page.summary["Made"].endswith(f"by {scheme.admin.name}")
    assert f"Generated by {scheme.admin.name}" in text

    # The headline table.
    (headline,) = [t for t in page.tables if t.caption == f"Headline KPIs, {MAY.label}"]
    html = _html_rows(headline, spans, admin=admin, code_column=False)
    assert [label.split()[0] for label, _ in html] == list(HEADLINE_CODES)
    table = HEADER.sub("", _between(text, "Headline KPIs ", " Each KPI for the month"))
    assert _pdf_rows(table, [label for label, _ in html], spans, admin=admin) == html

    # Every section, every row and breakdown cell, every span.
    titles = ["A. Referrals", "B. Participation", "C. Wellbeing outcomes", "D. Equalities"]
    titles += ["E. Cost and value", "Cells suppressed under the small-number rule"]
    compared = 0
    for title, following in itertools.pairwise(titles):
        (section,) = [t for t in page.tables if t.caption == f"{title}, {MAY.label}"]
        section_spans = [
            span for span in spans if any(SPAN_TITLES[span] == h for h in section.rows[0])
        ]
        html = _html_rows(section, section_spans, admin=admin, code_column=True)
        body = _between(text, f"{title} ", f" {following} ")
        table_text = HEADER.split(body, maxsplit=1)[1]  # after the section's note and header
        table_text = HEADER.sub("", table_text)  # repeated where the table runs on a page
        assert (
            _pdf_rows(table_text, [label for label, _ in html], section_spans, admin=admin) == html
        )
        compared += sum(len(cells) for _, cells in html)
    assert compared == len(kpi_return.figures)

    # The suppressed cells, listed by name.
    (listed,) = [
        t for t in page.tables if t.caption == "Cells suppressed under the small-number rule"
    ]
    withheld = [" ".join(cells) for cells in listed.rows[1:]]
    pdf_list = text.split("Cells suppressed under the small-number rule", 2)[-1]
    pdf_list = pdf_list.split(" Code Measure Cell ", 1)[1].strip()
    assert " ".join(withheld) == pdf_list
    assert withheld

    # The twelve-month trends: each chart's printed figures are the page's months.
    trends = [t for t in page.tables if re.fullmatch(r"[A-E]\d .* by month, .*", t.caption)]
    assert [t.caption.split()[0] for t in trends] == list(HEADLINE_CODES)
    x_axis = " ".join(f"{label[:3]} {label[-2:]}" for label, *_ in trends[0].rows[1:])
    assert x_axis in text
    charts = _between(text, "Twelve-month trends", "A. Referrals").split(x_axis)[1:]
    assert len(charts) == len(trends)
    for trend, piece in zip(trends, charts, strict=True):
        piece = re.split(r" May 2026: | No published figures| [A-E]\d [A-Z]", piece)[0]
        printed = [row[1] for row in trend.rows[1:] if row[1] not in ("No return", "–", "")]
        assert _chart_figures(piece) == printed, trend.caption
