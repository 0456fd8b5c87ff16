"""Imports every model module so that metadata (and Alembic) sees every table."""

from referrals.audit import AuditEvent
from referrals.auth.models import ApiToken, LoginAttempt, Organisation, User, UserSession
from referrals.intake.models import (
    ContactAttempt,
    Conversation,
    IdempotentRequest,
    Patient,
    Referral,
    ReferralTransition,
)
from referrals.notifications.models import Notification, NotificationRead

__all__ = [
    "ApiToken",
    "AuditEvent",
    "ContactAttempt",
    "Conversation",
    "IdempotentRequest",
    "LoginAttempt",
    "Notification",
    "NotificationRead",
    "Organisation",
    "Patient",
    "Referral",
    "ReferralTransition",
    "User",
    "UserSession",
]
