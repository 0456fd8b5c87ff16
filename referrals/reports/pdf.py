"""A monthly KPI return as a PDF for commissioners (reportlab platypus, built in memory).

The document is what a commissioner takes to a finance committee: a title page with the
return's provenance and the headline KPIs rated against the contract's targets, a twelve-month
trend chart per headline KPI, every section's figures with their breakdowns, and the cells the
small-number rule withheld. It shows aggregates only: the one person named is the member of staff
who made the return. RAG ratings are always written out in words as well as coloured.

Needs an app context: the trends are read from the stored returns of the same scope.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

from flask import current_app
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Group, Line, Rect, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, StyleSheet1
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from referrals import clock
from referrals.documents import FONT, FONT_BOLD, Document, sample_styles
from referrals.reports.exporting import generated_by, return_sections, scope_label
from referrals.reports.kpi import HEADLINE_CODES, NAMES

# The return page's own wording for breakdown cells, so the PDF and the page read the same.
from referrals.reports.labels import (
    RATING_WORDS,
    SPAN_TITLES,
    SUPPRESSION_NOTE,
    SWEMWBS_NOTE,
    Cell,
    Row,
    breakdown_label,
    changed_since_made,
    return_rows,
    spans_in,
    withheld_cells,
)
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period
from referrals.reports.rules import SUPPRESSED
from referrals.reports.services import registers_close_on
from referrals.reports.trends import Trend, return_trends

# NHS colours. Ratings use the NHS tag palette (dark text on a pale fill, as on the web page),
# so the words stay readable in greyscale and the colour is never the only signal.
NHS_BLUE = colors.HexColor("#005eb8")
NHS_DARK = colors.HexColor("#212b32")
NHS_SECONDARY = colors.HexColor("#4c6272")
NHS_BORDER = colors.HexColor("#d8dde0")
NHS_PALE = colors.HexColor("#f0f4f5")
NOT_RATED = ("Not rated", colors.HexColor("#dbe0e3"), colors.HexColor("#282d30"))
RATING_COLOURS = {  # (fill, text)
    "red": (colors.HexColor("#f7d4d1"), colors.HexColor("#6b140e")),
    "amber": (colors.HexColor("#ffdc8e"), colors.HexColor("#4d3708")),
    "green": (colors.HexColor("#cce2d8"), colors.HexColor("#005a30")),
    "stretch met": (colors.HexColor("#d2e2f1"), colors.HexColor("#144e81")),
}
RATINGS = {key: (RATING_WORDS[key], *fill_ink) for key, fill_ink in RATING_COLOURS.items()}
TARGET_LEVELS = ("minimum", "expected", "stretch")

PAGE_MARGIN = 18 * mm
FRAME_WIDTH = A4[0] - 2 * PAGE_MARGIN

# The trend charts: two to a row across the frame.
CHART_WIDTH = FRAME_WIDTH / 2 - 4 * mm
CHART_HEIGHT = 44 * mm
PLOT_LEFT, PLOT_BOTTOM, PLOT_RIGHT, PLOT_TOP = 30.0, 22.0, 8.0, 8.0
PERCENT_CODES = frozenset({"B6", "C0", "C5", "C6"})


# Styles and small helpers ------------------------------------------------------------------


@cache
def _styles() -> StyleSheet1:
    styles = sample_styles()
    base = ParagraphStyle("kpi-body", parent=styles["BodyText"], fontSize=9.5, leading=12.5)
    styles.add(base)
    styles.add(ParagraphStyle("kpi-small", parent=base, fontSize=8, leading=10))
    styles.add(
        ParagraphStyle("kpi-note", parent=base, fontSize=8.5, leading=11, textColor=NHS_SECONDARY)
    )
    styles.add(ParagraphStyle("kpi-cell", parent=base, fontSize=8.5, leading=10.5))
    styles.add(ParagraphStyle("kpi-cell-bold", parent=styles["kpi-cell"], fontName=FONT_BOLD))
    styles.add(ParagraphStyle("kpi-cell-indent", parent=styles["kpi-cell"], leftIndent=10))
    styles.add(
        ParagraphStyle(
            "kpi-head", parent=styles["kpi-cell"], fontName=FONT_BOLD, textColor=colors.white
        )
    )
    styles.add(
        ParagraphStyle(
            "kpi-service", parent=base, fontSize=12, leading=15, textColor=NHS_BLUE,
            fontName=FONT_BOLD,
        )
    )  # fmt: skip
    styles.add(
        ParagraphStyle(
            "kpi-title", parent=styles["Title"], fontSize=24, leading=29, alignment=0,
            spaceAfter=2 * mm, textColor=NHS_DARK,
        )
    )  # fmt: skip
    styles.add(
        ParagraphStyle(
            "kpi-subtitle", parent=base, fontSize=14, leading=18, textColor=NHS_DARK,
            spaceAfter=5 * mm,
        )
    )  # fmt: skip
    styles.add(
        ParagraphStyle(
            "kpi-h2", parent=styles["Heading2"], fontSize=14, leading=17, textColor=NHS_DARK,
            spaceBefore=5 * mm, spaceAfter=2 * mm,
        )
    )  # fmt: skip
    styles.add(
        ParagraphStyle(
            "kpi-chart-title", parent=base, fontName=FONT_BOLD, fontSize=8.5, leading=10.5
        )
    )
    styles.add(
        ParagraphStyle(
            "kpi-warning", parent=base, textColor=colors.HexColor("#6b140e"),
            backColor=colors.HexColor("#f7d4d1"), borderPadding=(2 * mm, 2 * mm, 2 * mm, 2 * mm),
            spaceBefore=2 * mm, spaceAfter=4 * mm,
        )
    )  # fmt: skip
    return styles


def _p(text: str, style: str = "kpi-cell") -> Paragraph:
    """A paragraph of plain text (escaped: names and reasons come from people)."""
    return Paragraph(escape(text), _styles()[style])


def _shown(value: str | None) -> str:
    """A published figure as printed: an empty figure is a dash, explained in the key."""
    return value if value not in (None, "") else "–"


def _number(text: str | None) -> Decimal | None:
    try:
        return Decimal(text or "")
    except (InvalidOperation, TypeError):
        return None


def _level(value: Any) -> str:
    return f"{float(value):g}"


def _target_cell(target: dict[str, Any] | None) -> str:
    if not target:
        return "No target"
    return " / ".join(_level(target[lvl]) if lvl in target else "–" for lvl in TARGET_LEVELS)


def _london(moment: datetime) -> str:
    local = moment.astimezone(clock.zone())
    return f"{local.day} {local:%B %Y at %H:%M} {local.tzname()}"


def _table_style(extra: Sequence[tuple[Any, ...]] = ()) -> TableStyle:
    return TableStyle(
        [
            ("BACKGROUND", (0, 0), (-1, 0), NHS_BLUE),
            ("GRID", (0, 0), (-1, -1), 0.5, NHS_BORDER),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            # Empty cells take the paragraphs' size, so every row is the same height.
            ("FONTSIZE", (0, 0), (-1, -1), 8.5),
            ("LEADING", (0, 0), (-1, -1), 10.5),
            ("TOPPADDING", (0, 0), (-1, -1), 2.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            *extra,
        ]
    )


# Title page and headline table --------------------------------------------------------------


def _version_text(kpi_return: KpiReturn) -> str:
    if kpi_return.superseded_at is not None:
        return (
            f"{kpi_return.version} — superseded on {_london(kpi_return.superseded_at)}: "
            "a later version replaces it"
        )
    return f"{kpi_return.version} (current)"


def _title_page(kpi_return: KpiReturn, period: Period, raw: bool) -> list[Flowable]:
    contract = kpi_return.contract
    rows = [
        ("Contract", scope_label(kpi_return)),
        (
            "Commissioner",
            contract.commissioner.name
            if contract is not None
            else "All contracts: every course the service runs",
        ),
        ("Period", f"{period.label} (1 to {period.end.day} {period.end:%B %Y})"),
        ("Version", _version_text(kpi_return)),
        (
            "Status",
            "Provisional: made before the month's registers closed"
            if kpi_return.provisional
            else "Final: made after the month's registers closed",
        ),
    ]
    if kpi_return.version > 1:
        rows.append(("Why it was regenerated", kpi_return.reason or "No reason recorded"))
    rows += [
        ("Generated at", _london(kpi_return.generated_at)),
        ("Generated by", generated_by(kpi_return)),
        ("KPI specification", f"Version {kpi_return.spec_version}"),
    ]
    details = Table(
        [[_p(k, "kpi-cell-bold"), _p(v)] for k, v in rows],
        colWidths=[42 * mm, FRAME_WIDTH - 42 * mm],
    )
    details.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, NHS_BORDER),
                ("BACKGROUND", (0, 0), (0, -1), NHS_PALE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story: list[Flowable] = [
        _p(current_app.config["SERVICE_NAME"], "kpi-service"),
        _p("Monthly KPI return", "kpi-title"),
        _p(f"{period.label} · {scope_label(kpi_return)}", "kpi-subtitle"),
    ]
    if kpi_return.superseded_at is not None:
        story.append(
            _p(
                "This version is superseded. Use the current version of this return unless "
                "you need the figures as they were first published.",
                "kpi-warning",
            )
        )
    if kpi_return.provisional:
        story.append(
            _p(
                f"Provisional. This return was made before the registers for {period.label} "
                f"closed on {registers_close_on(period):%-d %B %Y}, so its figures may still "
                "change. The final return is made automatically once they close.",
                "kpi-warning",
            )
        )
    if raw and changed_since_made(kpi_return):
        assert kpi_return.registers_changed_at is not None
        story.append(
            _p(
                f"Changed since it was made. A register for {period.label} was saved on "
                f"{_london(kpi_return.registers_changed_at)}, after this return was made; its "
                "figures do not include that change. Regenerate it from the return's page.",
                "kpi-warning",
            )
        )
    if raw:
        story.append(
            _p(
                "Includes unrounded figures for the service's administrators. Do not share "
                "this copy outside the service: send commissioners the standard PDF.",
                "kpi-warning",
            )
        )
    story += [details, *_headline_table(kpi_return, raw)]
    return story


def _rating_cell(cell: Cell | None) -> tuple[str, Any, Any]:
    """(text, fill, text colour) for one span's rating, in words."""
    if cell is None:
        return "Not reported", None, NHS_SECONDARY
    if cell.rating in RATINGS:
        return RATINGS[cell.rating]
    if not cell.target:
        return "No target", None, NHS_SECONDARY
    label, fill, ink = NOT_RATED
    return f"{label}: no figure", fill, ink


def _span_cell(cell: Cell | None, raw: bool, style: str = "kpi-cell-bold") -> list[Flowable]:
    """A span's figure, its target and its rating in words, stacked in one table cell."""
    if cell is None:
        return [_p("–")]
    parts = [_p(_shown(cell.value), style)]
    if raw:
        parts.append(_p(f"Unrounded: {_shown(cell.raw_value)}", "kpi-small"))
    if cell.target:
        parts.append(_p(f"Target {_target_cell(cell.target)}", "kpi-small"))
    text, _fill, ink = _rating_cell(cell)
    if cell.target or cell.rating:
        parts.append(
            Paragraph(
                escape(text),
                ParagraphStyle(f"rating-{id(cell)}", parent=_styles()["kpi-small"], textColor=ink),
            )
        )
    return parts


def _headline_table(kpi_return: KpiReturn, raw: bool) -> list[Flowable]:
    rows_by_code = {
        r.code: r for r in return_rows(kpi_return.figures, kpi_return.targets) if not r.breakdown
    }
    spans = spans_in(kpi_return.figures)
    header = ["Code", "Headline KPI", *(SPAN_TITLES[s] for s in spans)]
    span_width = 36 * mm
    widths = [12 * mm, FRAME_WIDTH - 12 * mm - span_width * len(spans)]
    widths += [span_width] * len(spans)
    rows: list[list[Any]] = [[_p(h, "kpi-head") for h in header]]
    extra: list[tuple[Any, ...]] = []
    for row_number, code in enumerate(HEADLINE_CODES, start=1):
        row = rows_by_code.get(code)
        cells = row.cells if row is not None else {}
        rows.append([_p(code), _p(NAMES[code]), *(_span_cell(cells.get(s), raw) for s in spans)])
        for column, span in enumerate(spans, start=2):
            _text, fill, _ink = _rating_cell(cells.get(span))
            if fill is not None:
                extra.append(("BACKGROUND", (column, row_number), (column, row_number), fill))
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(_table_style(extra))
    return [
        _p("Headline KPIs", "kpi-h2"),
        table,
        Spacer(1, 2 * mm),
        _p(
            "Each KPI for the month, the financial year to date (from 1 April) and the "
            "contract to date, each computed afresh over its whole span. Ratings compare the "
            "true figure with the contract's targets for that span: red short of the minimum, "
            "amber from the minimum to short of expected, green from expected, stretch met at "
            "or beyond stretch (for waits, losses, worsening and costs, lower is better and the "
            "targets run downwards). – means there is no figure.",
            "kpi-note",
        ),
        Spacer(1, 1.5 * mm),
        Paragraph(f"<b>Small numbers.</b> {escape(SUPPRESSION_NOTE)}", _styles()["kpi-note"]),
        Spacer(1, 1.5 * mm),
        Paragraph(f"<b>Wellbeing scores.</b> {escape(SWEMWBS_NOTE)}", _styles()["kpi-note"]),
    ]


# Trend charts -------------------------------------------------------------------------------


def _nice_step(span: float) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving at most five intervals."""
    rough = span / 5
    magnitude = 10 ** math.floor(math.log10(rough))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough)


@dataclass(frozen=True)
class _Axis:
    low: float
    high: float
    step: float


def _y_axis(code: str, values: list[float], target: dict[str, Any] | None) -> _Axis:
    if code in PERCENT_CODES:
        return _Axis(0.0, 100.0, 20.0)
    levels = [float(target[lvl]) for lvl in TARGET_LEVELS if target and lvl in target]
    points = values + levels
    low = min([0.0, *points])
    high = max([0.0, *points])
    if high == low:
        high = low + 5
    step = _nice_step(high - low)
    low = step * (low // step)
    top = step * -(-high // step)
    if top - high < step * 0.15:  # leave headroom for the value labels
        top += step
    return _Axis(low, top, step)


def _segments(values: Sequence[Decimal | None]) -> list[list[tuple[int, float]]]:
    """Runs of months with a figure: the line breaks at every gap."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, float(value)))
    if current:
        runs.append(current)
    return runs


VALUE_FONT_SIZE = 6.0
STAR_FONT_SIZE = 9.0
MARKER_SIZE = 3.5
LABEL_GAP = 2.5  # between a point and its label


@dataclass(frozen=True)
class LabelSpec:
    """A chart label: the point it belongs to, its text and size. A value label sits above or
    below its point; a `*` (no point) sits at its anchor, at the foot of the plot."""

    x: float
    y: float
    text: str
    size: float
    point: bool


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _label_string(spec: LabelSpec, x: float, y: float) -> Group | String:
    if not spec.point:
        return String(
            x, y, spec.text, fontName=FONT_BOLD, fontSize=spec.size, fillColor=NHS_SECONDARY,
            textAnchor="middle",
        )  # fmt: skip
    text = String(
        x, y, spec.text, fontName=FONT, fontSize=spec.size, fillColor=NHS_DARK,
        textAnchor="middle",
    )  # fmt: skip
    # A white backing, so a line passing behind the figure never runs through it.
    x0, y0, x1, y1 = text.getBounds()
    return Group(
        Rect(x0 - 0.5, y0, x1 - x0 + 1, y1 - y0, fillColor=colors.white, strokeColor=None),
        text,
    )


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(box: Box, area: Box) -> bool:
    return area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1] and box[3] <= area[3]


def _label_box(spec: LabelSpec, x: float, y: float) -> Box:
    font = FONT if spec.point else FONT_BOLD
    return String(
        x, y, spec.text, fontName=font, fontSize=spec.size, textAnchor="middle"
    ).getBounds()


def place_labels(labels: Sequence[LabelSpec], area: Box) -> list[tuple[float, float]]:
    """Where to draw each label (its text's middle and baseline) so that no two labels, and no
    label and a point's marker, overlap, and every label stays inside `area` (the plot, clear
    of both axes and their tick labels).

    `*` marks are fixed. Value labels are placed month by month: above the point, else below,
    else one line further up or down, and so on; pushed sideways to stay clear of the y axis.
    A label that fits nowhere (more labels than the chart has room for) goes above its point.
    """
    half = MARKER_SIZE / 2
    markers = [(s.x - half, s.y - half, s.x + half, s.y + half) for s in labels if s.point]
    placed: list[Box] = []
    positions: list[tuple[float, float] | None] = [None] * len(labels)
    for index, spec in enumerate(labels):
        if not spec.point:
            positions[index] = (spec.x, spec.y)
            placed.append(_label_box(spec, spec.x, spec.y))
    for index, spec in enumerate(labels):
        if not spec.point:
            continue
        x0, _, x1, _ = _label_box(spec, spec.x, 0)
        width = x1 - x0
        x = min(max(spec.x, area[0] + width / 2), area[2] - width / 2)
        line = spec.size * 1.2 + 0.5
        above = spec.y + half + LABEL_GAP + 0.2 * spec.size
        below = spec.y - half - LABEL_GAP - spec.size
        tiers = max(1, int((area[3] - area[1]) / line) + 1)
        candidates = [
            y for tier in range(tiers) for y in (above + tier * line, below - tier * line)
        ]
        chosen = next(
            (
                y
                for y in candidates
                if _inside(box := _label_box(spec, x, y), area)
                and not any(_overlaps(box, other) for other in (*placed, *markers))
            ),
            above,
        )
        positions[index] = (x, chosen)
        placed.append(_label_box(spec, x, chosen))
    return [p for p in positions if p is not None]


def trend_drawing(trend: Trend) -> Drawing:
    """A twelve-month line chart: gaps for missing or suppressed months, the target shaded."""
    drawing = Drawing(CHART_WIDTH, CHART_HEIGHT, initialFontName=FONT)
    plot_x, plot_y = PLOT_LEFT, PLOT_BOTTOM
    plot_w = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
    plot_h = CHART_HEIGHT - PLOT_BOTTOM - PLOT_TOP
    values = [float(v) for v in trend.values if v is not None]
    axis = _y_axis(trend.code, values, trend.target)
    count = len(trend.periods)

    def y_of(value: float) -> float:
        return plot_y + (value - axis.low) / (axis.high - axis.low) * plot_h

    def x_of(index: int) -> float:
        return plot_x + (index + 0.5) / count * plot_w

    # The target sits behind the line: minimum to expected shaded, stretch dashed.
    target = trend.target or {}
    if "minimum" in target and "expected" in target:
        low = max(axis.low, min(float(target["minimum"]), axis.high))
        high = max(axis.low, min(float(target["expected"]), axis.high))
        drawing.add(
            Rect(
                plot_x, y_of(low), plot_w, max(y_of(high) - y_of(low), 0.8),
                fillColor=colors.HexColor("#cce2d8"), strokeColor=None,
            )
        )  # fmt: skip
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = plot_x, plot_y, plot_w, plot_h
    runs = _segments(trend.values)
    # An empty plot still needs data to draw its axes: one invisible point.
    plot.data = runs or [[(0, axis.low)]]
    # Every run is one series in the same style (LinePlot colours its first two series itself).
    for index in range(max(len(runs), 2)):
        plot.lines[index].strokeColor = NHS_BLUE if runs else None
    plot.lines.strokeWidth = 1.6
    plot.lines.symbol = makeMarker("FilledCircle", size=MARKER_SIZE) if runs else None
    plot.gridFirst = 1
    x_axis = plot.xValueAxis
    x_axis.valueMin, x_axis.valueMax = -0.5, count - 0.5
    x_axis.valueSteps = list(range(count))
    x_axis.labelTextFormat = lambda i: _month_label(trend.periods, i)
    x_axis.labels.fontName, x_axis.labels.fontSize = FONT, 6.5
    x_axis.labels.fillColor = NHS_DARK
    x_axis.tickUp, x_axis.tickDown = 0, 2
    x_axis.labels.dy = -1
    x_axis.labels.leading = 7.5
    x_axis.strokeColor = NHS_SECONDARY

    y_axis = plot.yValueAxis
    y_axis.valueMin, y_axis.valueMax, y_axis.valueStep = axis.low, axis.high, axis.step
    y_axis.labelTextFormat = lambda v: f"{v:g}"
    y_axis.labels.fontName, y_axis.labels.fontSize = FONT, 6.5
    y_axis.tickLeft, y_axis.tickRight = 2, 0
    y_axis.labels.fillColor = NHS_DARK
    y_axis.visibleGrid = True
    y_axis.gridStrokeColor = NHS_BORDER
    y_axis.gridStrokeWidth = 0.4
    y_axis.strokeColor = NHS_SECONDARY
    drawing.add(plot)
    if "stretch" in target and axis.low <= float(target["stretch"]) <= axis.high:
        y = y_of(float(target["stretch"]))
        drawing.add(
            Line(
                plot_x, y, plot_x + plot_w, y, strokeColor=colors.HexColor("#005a30"),
                strokeWidth=1, strokeDashArray=[4, 2],
            )
        )  # fmt: skip

    # Each month's figure is printed by its point, and * under a suppressed month's gap, each
    # placed where it meets no other label, marker or axis.
    labels = [
        LabelSpec(x_of(i), y_of(float(v)), trend.shown[i], VALUE_FONT_SIZE, point=True)
        if v is not None
        else LabelSpec(x_of(i), plot_y + 3, SUPPRESSED, STAR_FONT_SIZE, point=False)
        for i, v in enumerate(trend.values)
        if v is not None or trend.shown[i] == SUPPRESSED
    ]
    area = (plot_x + 1, plot_y + 1, CHART_WIDTH, CHART_HEIGHT)
    for spec, (x, y) in zip(labels, place_labels(labels, area), strict=True):
        drawing.add(_label_string(spec, x, y))
    if not runs:
        drawing.add(
            String(
                plot_x + plot_w / 2, plot_y + plot_h / 2, "No published figures in these months",
                fontName=FONT, fontSize=7.5, fillColor=NHS_SECONDARY, textAnchor="middle",
            )
        )  # fmt: skip
    return drawing


def _month_label(periods: Sequence[Period], tick: float) -> str:
    index = round(tick)
    if not 0 <= index < len(periods):
        return ""
    month, year = periods[index].short_label.split(" ")
    return f"{month}\n{year}"


def _chart_caption(trend: Trend, row: Row | None = None) -> str:
    """The latest month's figure, with the year to date and the contract to date beside it
    (the chart plots months only: a span's figure is not a month's), and the target."""
    latest = _shown(trend.shown[-1])
    spans = [
        f"{SPAN_TITLES[span].lower()} {_shown(cell.value)}"
        for span in ("year_to_date", "contract_to_date")
        if row is not None and (cell := row.cells.get(span)) is not None
    ]
    parts = [f"{trend.periods[-1].label}: {'; '.join([latest, *spans])}."]
    target = trend.target or {}
    if "minimum" in target and "expected" in target:
        parts.append(
            f"Shaded: target from minimum {_level(target['minimum'])} to expected "
            f"{_level(target['expected'])}."
        )
        if "stretch" in target:
            parts.append(f"Dashed line: stretch {_level(target['stretch'])}.")
    else:
        parts.append("No target.")
    return " ".join(parts)


def _trend_section(kpi_return: KpiReturn, period: Period) -> list[Flowable]:
    trends = return_trends(kpi_return)
    headlines = {
        r.code: r for r in return_rows(kpi_return.figures, kpi_return.targets) if not r.breakdown
    }
    # Each pair of charts is a three-row table (titles, charts, captions), so the charts in a
    # row line up whatever the length of their titles, and a pair never splits across pages.
    pairs: list[Flowable] = []
    for first in range(0, len(trends), 2):
        pair = trends[first : first + 2]
        rows: list[list[Any]] = [
            [_p(f"{t.code} {t.name}", "kpi-chart-title") for t in pair],
            [trend_drawing(t) for t in pair],
            [_p(_chart_caption(t, headlines.get(t.code)), "kpi-small") for t in pair],
        ]
        for row in rows:
            row += [""] * (2 - len(row))
        table = Table(rows, colWidths=[FRAME_WIDTH / 2] * 2)
        table.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                    ("VALIGN", (0, 2), (-1, 2), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 4 * mm),
                    ("TOPPADDING", (0, 0), (-1, -1), 0),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                    ("BOTTOMPADDING", (0, 2), (-1, 2), 3 * mm),
                ]
            )
        )
        pairs.append(KeepTogether(table))
    return [
        _p("Twelve-month trends", "kpi-h2"),
        _p(
            f"Each headline KPI as published, {trends[0].periods[0].label} to {period.label}, "
            "from the current return of each month. A gap is a month with no return or no "
            "figure; * under a gap marks a suppressed figure. Each point's figure is printed "
            "beside it. Under each chart, the latest month's figure with the year to date and "
            "the contract to date.",
            "kpi-note",
        ),
        Spacer(1, 2 * mm),
        *pairs,
    ]


# Sections A to D ----------------------------------------------------------------------------


def _section_table(rows: list[Row], spans: list[str], raw: bool) -> Table:
    header = ["Code", "Measure", *(SPAN_TITLES[s] for s in spans)]
    span_width = 32 * mm
    widths = [12 * mm, FRAME_WIDTH - 12 * mm - span_width * len(spans)]
    widths += [span_width] * len(spans)
    table_rows: list[list[Any]] = [[_p(h, "kpi-head") for h in header]]
    extra: list[tuple[Any, ...]] = []
    for row in rows:
        if row.breakdown:
            table_rows.append(
                [
                    "",
                    _p(breakdown_label(row.breakdown), "kpi-cell-indent"),
                    *(_span_cell(row.cells.get(s), raw, "kpi-cell") for s in spans),
                ]
            )
            continue
        extra.append(("BACKGROUND", (0, len(table_rows)), (1, len(table_rows)), NHS_PALE))
        table_rows.append(
            [
                _p(row.code, "kpi-cell-bold"),
                _p(NAMES.get(row.code, row.name), "kpi-cell-bold"),
                *(_span_cell(row.cells.get(s), raw) for s in spans),
            ]
        )
    table = Table(table_rows, colWidths=widths, repeatRows=1)
    table.setStyle(_table_style(extra))
    return table


def _section_story(kpi_return: KpiReturn, raw: bool) -> list[Flowable]:
    by_letter: dict[str, list[Row]] = defaultdict(list)
    for row in return_rows(kpi_return.figures, kpi_return.targets):
        by_letter[row.code[:1]].append(row)
    spans = spans_in(kpi_return.figures)
    story: list[Flowable] = []
    for title, note in return_sections(kpi_return):
        rows = by_letter.get(title[0], [])
        story += [
            CondPageBreak(40 * mm),
            KeepTogether([_p(title, "kpi-h2"), _p(note, "kpi-note"), Spacer(1, 2 * mm)]),
        ]
        if rows:
            row_spans = [s for s in spans if any(s in r.cells for r in rows)]
            story.append(_section_table(rows, row_spans, raw))
        else:
            story.append(_p("This return has no figures in this section.", "kpi-body"))
    return story


# Suppressed cells ---------------------------------------------------------------------------


def _suppressed_story(kpi_return: KpiReturn) -> list[Flowable]:
    log = kpi_return.suppression_log or []
    withheld = withheld_cells(log)
    rounded = len(log) - len(withheld)
    story: list[Flowable] = [
        CondPageBreak(50 * mm),
        _p("Cells suppressed under the small-number rule", "kpi-h2"),
        _p(SUPPRESSION_NOTE, "kpi-note"),
        Spacer(1, 2 * mm),
        _p(
            f"Cells suppressed: {len(withheld)}. Other cells changed by rounding: {rounded}.",
            "kpi-body",
        ),
        Spacer(1, 2 * mm),
    ]
    if withheld:
        rows: list[list[Any]] = [[_p(h, "kpi-head") for h in ("Code", "Measure", "Cell")]]
        for entry in withheld:
            code = entry.get("code", "")
            rows.append(
                [
                    _p(code),
                    _p(NAMES.get(code, code)),
                    _p(breakdown_label(entry.get("breakdown", "")) or "Headline figure"),
                ]
            )
        table = Table(rows, colWidths=[13 * mm, 95 * mm, FRAME_WIDTH - 108 * mm], repeatRows=1)
        table.setStyle(_table_style())
        story.append(table)
    return story


# Page furniture and the document ------------------------------------------------------------


def _footer_canvas(left: str, right: str) -> type[Canvas]:
    """A canvas that holds its pages until the end, to print "Page n of N" on each."""

    class FooterCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._held: list[dict[str, Any]] = []

        def showPage(self) -> None:  # reportlab's name
            self._held.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._held)
            for number, state in enumerate(self._held, start=1):
                self.__dict__.update(state)
                self._footer(number, total)
                super().showPage()
            super().save()

        def _footer(self, number: int, total: int) -> None:
            width, _ = self._pagesize
            self.saveState()
            self.setStrokeColor(NHS_BORDER)
            self.line(PAGE_MARGIN, 12 * mm, width - PAGE_MARGIN, 12 * mm)
            self.setFont(FONT, 7.5)
            self.setFillColor(NHS_SECONDARY)
            self.drawString(PAGE_MARGIN, 8 * mm, left)
            self.drawRightString(width - PAGE_MARGIN, 8 * mm, f"{right} · Page {number} of {total}")
            self.restoreState()

    return FooterCanvas


def build_return_pdf(kpi_return: KpiReturn, *, raw: bool = False) -> bytes:
    """The return as an A4 PDF; `raw` adds the unrounded figures (admins only)."""
    period = Period.parse(kpi_return.period)
    scope = scope_label(kpi_return)
    short_scope = scope if len(scope) <= 60 else scope[:57] + "..."
    buffer = io.BytesIO()
    doc = Document(
        buffer,
        pagesize=A4,
        leftMargin=PAGE_MARGIN,
        rightMargin=PAGE_MARGIN,
        topMargin=PAGE_MARGIN,
        bottomMargin=PAGE_MARGIN,
        title=f"Monthly KPI return, {period.label}, {scope}",
        author=current_app.config["SERVICE_NAME"],
        subject=f"KPI specification version {kpi_return.spec_version}",
    )
    story = [
        *_title_page(kpi_return, period, raw),
        PageBreak(),
        *_trend_section(kpi_return, period),
        PageBreak(),
        *_section_story(kpi_return, raw),
        *_suppressed_story(kpi_return),
    ]
    version = f"version {kpi_return.version}" + (
        ", superseded" if kpi_return.superseded_at is not None else ""
    )
    if kpi_return.provisional:
        version += ", provisional"
    doc.build(
        story,
        canvasmaker=_footer_canvas(
            f"{period.label} · {short_scope} · {version}",
            f"KPI specification v{kpi_return.spec_version}",
        ),
    )
    return buffer.getvalue()
