"""The wording of outbound messages: one plain-text template per kind, with blocks `subject`,
`email` and (only for kinds safe to text) `sms`.

The templates live in `templates/messages/`; a file of the same name in the instance folder's
`messages/` replaces one, so a scheme can change the wording without touching the code.
Subjects never carry a patient identifier, and an SMS never carries clinical detail: the `sms`
block exists only for participants' practical messages (when and where).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, Template

from referrals import PROJECT_ROOT

EXAMPLES: dict[str, dict[str, Any]] = {
    "enrolment_confirmed": {
        "course": "Singing for Better Breathing",
        "first_session": "Tuesday 3 March, 10:00",
        "venue": "St Mark's Hall",
        "address": "1 Church Lane, Stroud",
    },
    "waiting_list_place": {
        "course": "Singing for Better Breathing",
        "first_session": "Tuesday 10 March, 10:00",
        "venue": "St Mark's Hall",
        "address": "1 Church Lane, Stroud",
        "reply_by": "Friday 6 March",
        "answer_url": "https://referrals.example.org/messages/offer/…",
    },
    "session_reminder": {
        "course": "Singing for Better Breathing",
        "when": "Tuesday 3 March, 10:00",
        "venue": "St Mark's Hall",
        "address": "1 Church Lane, Stroud",
    },
    "session_cancelled": {"course": "Singing for Better Breathing", "when": "Tuesday 3 March"},
    "session_moved": {
        "course": "Singing for Better Breathing",
        "was": "Tuesday 3 March",
        "when": "Thursday 5 March, 10:00",
        "venue": "St Mark's Hall",
        "address": "1 Church Lane, Stroud",
    },
    "message_back": {
        "reference": "R1234",
        "event": "the person has completed their arts course",
        "has_code": False,
        "link": "https://referrals.example.org/referrals/1234",
    },
    "referral_assigned": {
        "name": "Sam",
        "reference": "R1234",
        "link": "https://referrals.example.org/referrals/1234",
    },
    "register_overdue": {
        "name": "Alex",
        "course": "Singing for Better Breathing",
        "when": "Tuesday 3 March",
        "edit_days": 7,
        "link": "https://referrals.example.org/sessions/12/register",
    },
    "session_changed": {
        "name": "Alex",
        "course": "Singing for Better Breathing",
        "change": "Singing for Better Breathing: the session on 3 March is cancelled: Hall flooded",
        "link": "https://referrals.example.org/courses/12",
    },
    "job_failed": {
        "name": "Jo",
        "job": "Monthly KPI returns",
        "period": "2026-03",
        "link": "https://referrals.example.org/admin/jobs",
    },
}
KINDS = tuple(EXAMPLES)
# Who each kind is for: participants may choose text messages; staff and practices get email.
PARTICIPANT_KINDS = frozenset(
    {
        "enrolment_confirmed",
        "waiting_list_place",
        "session_reminder",
        "session_cancelled",
        "session_moved",
    }
)
STAFF_KINDS = {
    "referral_assigned": "A referral is assigned to me",
    "register_overdue": "A register I lead has not been taken two days after the session",
    "session_changed": "A session I lead is cancelled or moved",
    "job_failed": "A scheduled job failed",
}
# The roles each staff kind can reach, so each person chooses only among their own.
STAFF_KIND_ROLES = {
    "referral_assigned": frozenset({"admin", "link_worker"}),
    "register_overdue": frozenset({"artist"}),
    "session_changed": frozenset({"artist"}),
    "job_failed": frozenset({"admin"}),
}


def staff_kinds_for(role: str) -> dict[str, str]:
    """The emails someone in `role` may get, each with its plain description."""
    return {kind: text for kind, text in STAFF_KINDS.items() if role in STAFF_KIND_ROLES[kind]}


@dataclass(frozen=True)
class Wording:
    subject: str
    email: str
    sms: str | None  # None: this kind is never sent by text


def _environment() -> Environment:
    app = current_app
    env = app.extensions.get("message_wording")
    if env is None:
        env = Environment(
            loader=ChoiceLoader(
                [
                    FileSystemLoader(str(Path(app.instance_path) / "messages")),
                    FileSystemLoader(str(PROJECT_ROOT / "templates" / "messages")),
                ]
            ),
            # Plain-text email and SMS, never HTML: escaping would print "&amp;" in them.
            autoescape=False,  # noqa: S701  # nosec B701
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        app.extensions["message_wording"] = env
    return env


def _block(template: Template, name: str, context: dict[str, Any]) -> str | None:
    if name not in template.blocks:
        return None
    text = "".join(template.blocks[name](template.new_context(context))).strip()
    return "\n".join(line.rstrip() for line in text.splitlines())


def service_context() -> dict[str, Any]:
    """What every message may use: the service's name, a stand-in stop link (a
    participant's own is filled in when their message is queued), and whether a reply of
    STOP to a text is read (GOV.UK Notify's callbacks set up)."""
    config = current_app.config
    return {
        "service": config["SERVICE_NAME"],
        "stop_url": f"{config['PUBLIC_BASE_URL'].rstrip('/')}/messages/stop/…",
        "reply_stop": bool(config.get("NOTIFY_CALLBACK_TOKEN")),
    }


def render(kind: str, context: dict[str, Any]) -> Wording:
    """The subject, email body and SMS text of a message of `kind` (KeyError if unknown)."""
    if kind not in EXAMPLES:
        raise KeyError(kind)
    template = _environment().get_template(f"{kind}.txt")
    full = {**service_context(), **context}
    subject = " ".join((_block(template, "subject", full) or "").split())
    email = _block(template, "email", full) or ""
    return Wording(subject[:200], email, _block(template, "sms", full))


def preview(kind: str) -> Wording:
    """The message of `kind` filled in with example details, for the admin preview."""
    return render(kind, EXAMPLES[kind])
