"""Wellbeing charts for a person's page."""

from __future__ import annotations

from markupsafe import Markup

from referrals.charts import Series, line_chart
from referrals.outcomes.queries import WellbeingHistory
from referrals.outcomes.scoring import Instrument


def wellbeing_chart(history: WellbeingHistory) -> Markup | None:
    """Mood before and after each attended session (0 to 10), or None with nothing to show."""
    attended = [m for m in history.moods if m.mood_before is not None or m.mood_after is not None]
    if not attended:
        return None
    return line_chart(
        "Mood before and after each session",
        [m.session_date.strftime("%-d %b") for m in attended],
        [
            Series("Before", [m.mood_before for m in attended]),
            Series("After", [m.mood_after for m in attended]),
        ],
        y_min=0,
        y_max=10,
        description="Mood on a scale of 0 to 10, recorded before and after each session "
        "attended. The table below gives the same figures.",
        chart_id="moods",
    )


def questionnaire_chart(history: WellbeingHistory) -> Markup | None:
    """SWEMWBS metric scores over the course (baseline, end, follow-up), or None."""

    scores = [a for a in history.assessments if a.instrument is Instrument.SWEMWBS]
    if not scores:
        return None
    return line_chart(
        "SWEMWBS wellbeing score over time",
        [
            f"{a.timepoint.value.replace('_', ' ')} {a.recorded_on.strftime('%-d %b')}"
            for a in scores
        ],
        [Series("SWEMWBS metric score", [float(a.metric_score) for a in scores])],
        y_min=7,
        y_max=35,
        description="SWEMWBS metric scores from 7 to 35 at each questionnaire; higher is better. "
        "The table above gives the same figures.",
        chart_id="swemwbs",
    )
