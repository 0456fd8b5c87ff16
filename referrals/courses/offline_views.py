"""The installable register for artists: manifest, service worker, the pages it keeps for use
without a connection, the registers it keeps, and registers sent from the phone later.

Registers come back through `POST /sessions/<id>/register/send`, a page endpoint: the
artist's signed-in session cookie and the CSRF token the page holds (header `X-CSRFToken`),
never an API token kept on the phone. Each send carries an `Idempotency-Key`; the first
successful answer is stored and replayed, so a register resent after a lost answer is recorded
once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import abort, current_app, jsonify, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import IntegrityError

from referrals import clock
from referrals.auth.models import Role
from referrals.auth.sessions import current_session_row
from referrals.courses import bp
from referrals.courses.models import AttendanceStatus, CourseSession, Enrolment
from referrals.courses.offline import (
    OFFLINE_DAYS,
    OFFLINE_INSTRUMENT,
    OfflineQuestionnaire,
    RegisterChanged,
    offline_people,
    offline_sessions,
    offline_valid_until,
    register_version,
    save_offline_register,
)
from referrals.courses.register_json import RegisterUnreadable, register_entries_from_json
from referrals.courses.register_rules import RegisterEntry
from referrals.courses.scope import get_register_session_or_404
from referrals.courses.services import CourseRuleBroken, RegisterRefused, people_viewed
from referrals.extensions import db
from referrals.idempotency import (
    IDEMPOTENCY_HEADER,
    claim_or_retried,
    request_fingerprint,
    retried,
)
from referrals.intake.lifecycle import TransitionRefused
from referrals.intake.models import IDEMPOTENCY_KEY_MAX, IdempotentRequest
from referrals.main.context import local_date, local_datetime, phone_display, phone_link
from referrals.outcomes.scoring import InvalidScores, Timepoint, item_labels
from referrals.security import allow, public

STATIC = Path(__file__).resolve().parents[1] / "static"
QUESTIONNAIRES_MAX = 200


# Installing ----------------------------------------------------------------------------------


@bp.get("/manifest.webmanifest")
@public
def manifest() -> ResponseReturnValue:
    """What a phone needs to install the register as an app; no personal data."""
    body = {
        "name": f"{current_app.config['SERVICE_NAME']}: registers",
        "short_name": "Registers",
        "start_url": url_for("courses.sessions"),
        "scope": "/",
        "display": "standalone",
        "background_color": "#f0f4f5",
        "theme_color": "#005eb8",
        "icons": [
            {
                "src": url_for("static", filename=f"nhsuk/assets/images/nhsuk-icon-{size}.png"),
                "sizes": f"{size}x{size}",
                "type": "image/png",
            }
            for size in (192, 512)
        ],
    }
    response = current_app.response_class(json.dumps(body), mimetype="application/manifest+json")
    return response


@bp.get("/service-worker.js")
@public
def service_worker() -> ResponseReturnValue:
    """Served from the site root so that its scope covers "My sessions" and the registers.

    Public: the script holds no data, and the browser fetches it again to look for updates
    whether or not the artist is still signed in."""
    response = send_file(STATIC / "js" / "service-worker.js", mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.get("/offline/sessions")
@allow(Role.ARTIST)
def offline_sessions_page() -> ResponseReturnValue:
    """The page "My sessions" shows when there is no connection: filled in on the phone from
    the registers it keeps. It holds no personal data itself."""
    return render_template("courses/offline.html", view="sessions")


@bp.get("/offline/register")
@allow(Role.ARTIST)
def offline_register_page() -> ResponseReturnValue:
    """The register page shown with no connection, filled in on the phone."""
    return render_template(
        "courses/offline.html",
        view="register",
        item_labels=item_labels(
            OFFLINE_INSTRUMENT, current_app.config.get("WELLBEING_ITEM_WORDING")
        ),
    )


# What the phone keeps ------------------------------------------------------------------------


@bp.get("/sessions/offline")
@allow(Role.ARTIST)
def offline_registers() -> ResponseReturnValue:
    """The registers of the artist's sessions for the next 7 days, for the phone to keep.

    Also a fresh CSRF token for sending registers, and the moment the phone must let them go
    (when this sign-in ends)."""
    day = clock.today()
    sessions = offline_sessions(current_user, day)
    row = current_session_row()
    assert row is not None  # signed in, so the session row exists
    timeout = current_app.config["SESSION_ABSOLUTE_TIMEOUT"]
    valid_until = offline_valid_until(row.created_at, timeout)
    people = {session.id: offline_people(session) for session in sessions}
    body = {
        "today": day.isoformat(),
        "days": OFFLINE_DAYS,
        "valid_until": valid_until.isoformat(),
        "csrf_token": generate_csrf(),
        "sessions": [
            {
                "id": session.id,
                "course_title": session.course.title,
                "date": session.date.isoformat(),
                "date_text": local_date(session.date),
                "start_time": session.start_time.strftime("%H:%M"),
                "venue": session.course.venue.name,
                "sequence": session.sequence,
                "session_total": session.course.session_count + session.course.taster_count,
                "status": session.status.value,
                "version": register_version(session),
                "register_url": url_for("courses.register", session_id=session.id),
                "send_url": url_for("courses.send_register", session_id=session.id),
                "people": [
                    {
                        **person,
                        "phone_text": phone_display(person["phone"]),
                        "phone_href": phone_link(person["phone"]) if person["phone"] else "",
                    }
                    for person in people[session.id]
                ],
            }
            for session in sessions
        ],
    }
    for session in sessions:  # everyone whose details the phone now keeps, session by session
        people_viewed(
            current_user,
            "registers.kept_on_device",
            [db.session.get_one(Enrolment, p["enrolment_id"]) for p in people[session.id]],
            session_id=session.id,
        )
    return jsonify(body)


# Sending later -------------------------------------------------------------------------------


def _answer(code: int, **body: Any) -> ResponseReturnValue:
    return jsonify(body), code


def _questionnaires(raw: Any, errors: dict[str, list[str]]) -> list[OfflineQuestionnaire]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > QUESTIONNAIRES_MAX:
        errors["questionnaires"] = [f"Must be a list of {QUESTIONNAIRES_MAX} or fewer"]
        return []
    found = []
    for index, item in enumerate(raw):
        key = f"questionnaires.{index}."
        enrolment_id = item.get("enrolment_id") if isinstance(item, dict) else None
        timepoint = item.get("timepoint") if isinstance(item, dict) else None
        items = item.get("items") if isinstance(item, dict) else None
        if isinstance(enrolment_id, bool) or not isinstance(enrolment_id, int):
            errors[key + "enrolment_id"] = ["Give the enrolment id"]
        elif not isinstance(timepoint, str) or timepoint not in Timepoint._value2member_map_:
            errors[key + "timepoint"] = ["Choose baseline, end or follow_up"]
        elif not isinstance(items, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in items
        ):
            errors[key + "items"] = ["Give each answer as a whole number"]
        else:
            found.append(OfflineQuestionnaire(enrolment_id, Timepoint(timepoint), items))
    return found


def _sent_message(
    session: CourseSession, entries: list[RegisterEntry] | None, questionnaires: int
) -> str:
    what = f"{session.course.title}, {local_date(session.date)}"
    if entries is None:
        counted = "1 questionnaire" if questionnaires == 1 else f"{questionnaires} questionnaires"
        return f"{counted} for {what} sent; the saved register stays as it is"
    attended = sum(entry.status is AttendanceStatus.ATTENDED for entry in entries)
    return f"Register for {what} sent: {attended} of {len(entries)} attended"


def _sent_before() -> ResponseReturnValue:
    return _answer(
        422,
        status="invalid",
        message="This register was already sent with different marks",
        errors={IDEMPOTENCY_HEADER: ["Already used for a different register"]},
    )


def _busy() -> ResponseReturnValue:  # the same register, sent twice at once: the first records it
    return _answer(409, status="busy", message="This register is being sent already")


@bp.post("/sessions/<int:session_id>/register/send")
@allow(Role.ARTIST)
def send_register(session_id: int) -> ResponseReturnValue:
    """A register taken on the phone, sent once the connection is back. JSON in, JSON out."""
    session = get_register_session_or_404(session_id, current_user)
    key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        return _answer(
            422,
            status="invalid",
            message=f"Send an {IDEMPOTENCY_HEADER} of 1 to {IDEMPOTENCY_KEY_MAX} characters",
            errors={IDEMPOTENCY_HEADER: ["Missing or too long"]},
        )
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _answer(422, status="invalid", message="Send a JSON object", errors={})
    once = (current_user, key, request_fingerprint(payload), _sent_before)
    if (retry := retried(*once)) is not None:
        return retry

    errors: dict[str, list[str]] = {}
    # Without entries, only the questionnaires: the artist kept the register saved meanwhile.
    entries: list[RegisterEntry] | None = None
    if "entries" in payload:
        try:
            entries = register_entries_from_json({"entries": payload.get("entries")})
        except RegisterUnreadable as unreadable:
            errors.update(unreadable.errors)
    questionnaires = _questionnaires(payload.get("questionnaires"), errors)
    if entries is None and not questionnaires and "questionnaires" not in errors:
        errors["entries"] = ["Give the register's entries, or the questionnaires to send"]
    based_on = payload.get("based_on")
    if not isinstance(based_on, str):
        errors["based_on"] = ["Give the version of the register this was taken from"]
    unknown = set(payload) - {"entries", "questionnaires", "based_on"}
    for name in sorted(unknown):
        errors[name[:60]] = ["Unknown field"]
    if errors:
        return _answer(
            422,
            status="invalid",
            message="The register has problems; nothing was saved",
            errors=errors,
        )
    assert isinstance(based_on, str)

    claimed = claim_or_retried(*once, _busy)
    if not isinstance(claimed, IdempotentRequest):
        return claimed

    try:
        save_offline_register(
            current_user, session, entries, questionnaires, based_on=based_on, today=clock.today()
        )
    except RegisterChanged as changed:
        db.session.rollback()
        return _answer(
            409,
            status="changed",
            message=str(changed),
            version=register_version(session),
            saved_at=local_datetime(session.register_saved_at),
            differences=changed.differences,
        )
    except RegisterRefused as refused:
        db.session.rollback()
        if refused.errors:
            return _answer(422, status="invalid", message=str(refused), errors=refused.errors)
        return _answer(409, status="refused", message=str(refused))
    except InvalidScores as invalid:
        db.session.rollback()
        return _answer(422, status="invalid", message=str(invalid), errors=invalid.errors)
    except (CourseRuleBroken, TransitionRefused) as refused:
        db.session.rollback()
        return _answer(409, status="refused", message=str(refused))

    body = {"status": "saved", "message": _sent_message(session, entries, len(questionnaires))}
    claimed.status_code = 200
    claimed.body = body
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        abort(409)
    return _answer(200, **body)
