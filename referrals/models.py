"""Imports every model module so that metadata (and Alembic) sees every table."""

from referrals.audit import AuditEvent
from referrals.auth.models import (
    ApiToken,
    LoginAttempt,
    Organisation,
    RecoveryCode,
    SecuritySetting,
    User,
    UserSession,
)
from referrals.courses.models import (
    Attendance,
    Contract,
    Course,
    CourseSession,
    Enrolment,
    Venue,
    course_artist,
)
from referrals.intake.models import (
    ContactAttempt,
    Conversation,
    IdempotentRequest,
    Patient,
    Referral,
    ReferralTransition,
)
from referrals.notifications.models import Notification, NotificationRead, OutboundMessage
from referrals.outcomes.models import WellbeingAssessment
from referrals.places.models import Place
from referrals.public.models import ProviderProfile
from referrals.reports.models import JobRun, KpiReturn
from referrals.scheduler.models import SchedulerHeartbeat

__all__ = [
    "ApiToken",
    "Attendance",
    "AuditEvent",
    "ContactAttempt",
    "Contract",
    "Conversation",
    "Course",
    "CourseSession",
    "Enrolment",
    "IdempotentRequest",
    "JobRun",
    "KpiReturn",
    "LoginAttempt",
    "Notification",
    "NotificationRead",
    "Organisation",
    "OutboundMessage",
    "Patient",
    "Place",
    "ProviderProfile",
    "RecoveryCode",
    "Referral",
    "ReferralTransition",
    "SchedulerHeartbeat",
    "SecuritySetting",
    "User",
    "UserSession",
    "Venue",
    "WellbeingAssessment",
    "course_artist",
]
