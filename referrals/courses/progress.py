"""How far a course has gone, and whether someone joining now could still complete it.

Pure functions of their arguments; the course directory, the course page, enrolment and the
API all use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

COMPLETION_SHARE = Decimal("0.75")


def completion_threshold(delivered_sessions: int) -> int:
    """Attended sessions needed to complete: 75% of delivered sessions, rounded up (KPI B7)."""
    return math.ceil(Decimal(delivered_sessions) * COMPLETION_SHARE)


@dataclass(frozen=True)
class SessionsLeft:
    """A course's sessions (not cancelled) and how many are still to come, today's included."""

    left: int
    total: int

    @property
    def started(self) -> bool:
        return self.left < self.total

    @property
    def needed(self) -> int:
        """Sessions someone must attend to complete the course as planned."""
        return completion_threshold(self.total)

    @property
    def too_late_to_complete(self) -> bool:
        """Coming to every session left would still fall short of completing the course."""
        return self.left < self.needed

    def warning(self) -> str:
        """What to tell the person enrolling someone on a course too far gone to complete."""
        return (
            f"Only {self.left} of {self.total} sessions are left: completing the course needs "
            f"{self.needed}, so someone joining now cannot complete it"
        )
