"""Server-rendered SVG charts: no JavaScript, no inline styles (the CSP forbids them).

Each chart has a title and description for screen readers, and the pages show the same
figures in a table, so colour is never the only way to read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from markupsafe import Markup

PALETTE = ("#005eb8", "#ae2573", "#007f3b", "#ed8b00", "#330072")
DASHES = ("", "6 4", "2 3", "10 4 2 4", "1 0")
MARKERS = ("circle", "square", "diamond", "triangle", "circle")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Band:
    """A shaded horizontal range, e.g. a target from minimum to expected."""

    label: str
    low: float
    high: float
    colour: str = "#f0f4f5"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = step * magnitude
        if top >= value:
            return float(top)
    return float(value)


def _marker(kind: str, x: float, y: float, colour: str) -> str:
    if kind == "square":
        return f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{colour}"/>'
    if kind == "diamond":
        return (
            f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} '
            f'{x - 5:.1f},{y:.1f}" fill="{colour}"/>'
        )
    if kind == "triangle":
        return (
            f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} '
            f'{x - 5:.1f},{y + 4:.1f}" fill="{colour}"/>'
        )
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>'


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    y_min: float = 0,
    y_max: float | None = None,
    bands: Sequence[Band] = (),
    description: str = "",
    width: int = 640,
    height: int = 260,
    chart_id: str = "chart",
) -> Markup:
    """A line chart with markers and a legend; gaps where a value is None."""
    left, right, top, bottom = 48, 16, 16, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    top_value = (
        y_max if y_max is not None else _nice_max(max([*values, *(b.high for b in bands), 1]))
    )
    span = (top_value - y_min) or 1
    count = max(1, len(x_labels))

    def x_at(i: int) -> float:
        return left + (plot_w * (i + 0.5) / count)

    def y_at(v: float) -> float:
        return top + plot_h - (min(max(v, y_min), top_value) - y_min) / span * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="app-chart" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description or title)}</desc>',
    ]
    for band in bands:
        y1, y2 = y_at(band.high), y_at(band.low)
        parts.append(
            f'<rect x="{left}" y="{y1:.1f}" width="{plot_w}" height="{y2 - y1:.1f}" '
            f'fill="{band.colour}"/>'
        )
    for step in range(5):
        tick = y_min + span * step / 4
        y = y_at(tick)
        label = f"{tick:.0f}" if span >= 8 else f"{tick:.1f}"
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#d8dde0" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#4c6272">{label}</text>'
        )
    every = max(1, -(-count // 12))
    for i, label in enumerate(x_labels):
        if i % every == 0:
            parts.append(
                f'<text x="{x_at(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'font-size="11" fill="#4c6272">{escape(label)}</text>'
            )
    for index, line in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        dash = DASHES[index % len(DASHES)]
        segment: list[str] = []
        segments = []
        for i, value in enumerate(line.values):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x_at(i):.1f},{y_at(value):.1f}")
        if segment:
            segments.append(segment)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline points="{" ".join(points)}" fill="none" '
                    f'stroke="{colour}" stroke-width="2.5"{dash_attr}/>'
                )
        for i, value in enumerate(line.values):
            if value is not None:
                parts.append(_marker(MARKERS[index % len(MARKERS)], x_at(i), y_at(value), colour))
    legend_y = height - 14
    x = left
    for index, line in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(_marker(MARKERS[index % len(MARKERS)], x + 5, legend_y - 4, colour))
        parts.append(
            f'<text x="{x + 14}" y="{legend_y}" font-size="12" fill="#212b32">'
            f"{escape(line.name)}</text>"
        )
        x += 24 + 7 * len(line.name)
    for band in bands:
        parts.append(
            f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" '
            f'fill="{band.colour}" stroke="#aeb7bd"/>'
        )
        parts.append(
            f'<text x="{x + 16}" y="{legend_y}" font-size="12" fill="#212b32">'
            f"{escape(band.label)}</text>"
        )
        x += 24 + 7 * len(band.label)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every piece of text is escaped above)
