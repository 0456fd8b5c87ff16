"""A minimal implementation of the service's busiest pages, to measure the service's pages against.

Bare Flask, SQLAlchemy Core and one Jinja template per page (bench/baseline/), doing each page's
work and nothing else. Every page shares the same steps: it reads the same signed session cookie
(Flask's, with the same key), finds the server-side session, its user and organisation, the
two-step verification rule and the unread count in one statement, checks the same idle and
absolute timeouts (and records the last-seen time when due), runs the page's statements, writes
the same audit entries as the service, sets the CSP nonce, the CSRF token and the security
headers, and renders the same NHS.UK chrome (`_layout.html`) around the page's own content.

The pages: a GP's and a link worker's home page (`/`, by role), a GP's referral list and a link
worker's caseload (`/referrals/`, by role), one referral's page as either sees it
(`/referrals/<id>`; a referral with details to check, or one a GP's practice knows only as it sent
it, answers 501), the staff course directory unfiltered (`/courses/`; a filter answers 501), and
an artist's register (`/sessions/<id>/register`).
Each answer is the service's byte for byte apart from the nonce and the token; `same_page` says
so, and bench.throughput fails if it does not. Served by gunicorn like the service:
`bench.baseline:create_app()`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, cast

import jinja2
from flask import Flask, Response, abort, g, redirect, request, session
from itsdangerous import URLSafeTimedSerializer
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    create_engine,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from bench.common import BENCH_ROOT

PER_PAGE = 25
MAX_PAGE = 100_000
_NONCE = re.compile(r'nonce="[^"]+"')
_TOKEN = re.compile(r'name="csrf_token" (type="hidden" )?value="[^"]+"')

# Each role's menu, as the service's navigation shows it (referrals.main.context.NAVIGATION).
NAVIGATION = {
    "referrer": [
        ("Home", "/"),
        ("Referrals", "/referrals/"),
        ("Refer someone", "/referrals/new"),
        ("Courses", "/courses/"),
    ],
    "link_worker": [("Home", "/"), ("Caseload", "/referrals/"), ("Courses", "/courses/")],
    "artist": [
        ("Home", "/"),
        ("Courses", "/courses/"),
        ("My sessions", "/sessions/"),
        ("Public profile", "/providers/profile"),
    ],
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ICONS = {
    False: (
        '    <link rel="icon" href="/static/nhsuk/assets/images/favicon.ico" sizes="48x48">\n'
        '    <link rel="icon" href="/static/nhsuk/assets/images/favicon.svg" sizes="any"'
        ' type="image/svg+xml">\n'
        '    <link rel="mask-icon" href="/static/nhsuk/assets/images/nhsuk-icon-mask.svg"'
        ' color="#005eb8">\n'
        '    <link rel="apple-touch-icon" href="/static/nhsuk/assets/images/nhsuk-icon-180.png">\n'
        '    <link rel="manifest" href="/static/nhsuk/assets/manifest.json">'
    ),
    # Artists install the registers as an app.
    True: (
        '  <link rel="icon" href="/static/nhsuk/assets/images/favicon.ico" sizes="48x48">\n'
        '  <link rel="icon" href="/static/nhsuk/assets/images/favicon.svg" sizes="any"'
        ' type="image/svg+xml">\n'
        '  <link rel="apple-touch-icon" href="/static/nhsuk/assets/images/nhsuk-icon-180.png">\n'
        '  <link rel="manifest" href="/manifest.webmanifest" data-offline-registers>'
    ),
}


def _tables() -> dict[str, Any]:
    """The service's tables, as plain Core tables (no ORM at request time)."""
    from referrals import models  # noqa: F401  (every table on the metadata)
    from referrals.db import Base

    return dict(Base.metadata.tables)


def _engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite(connection: Any, _record: Any) -> None:
            # As the service's connections (referrals.db).
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA synchronous = NORMAL")

    return engine


def _local_date(value: date) -> str:
    return str(value.strftime("%-d %b %Y"))


def _navigation(role: str, path: str) -> Markup:
    """The menu's items with the current one marked, as the frontend's header macro draws them."""
    items = []
    for label, href in NAVIGATION[role]:
        if path == href or (href != "/" and path.startswith(href)):
            items.append(
                '        <li class="nhsuk-header__navigation-item '
                'nhsuk-header__navigation-item--current">\n'
                f'          <a class="nhsuk-header__navigation-link" href="{href}" '
                'aria-current="page"><strong '
                f'class="nhsuk-header__navigation-item-current-fallback">{label}</strong></a>\n'
                "        </li>\n"
            )
        else:
            items.append(
                '        <li class="nhsuk-header__navigation-item">\n'
                f'          <a class="nhsuk-header__navigation-link" href="{href}">{label}</a>\n'
                "        </li>\n"
            )
    return Markup("".join(items))  # noqa: S704  (our own labels and addresses)


def create_app(url: str | None = None, secret_key: str | None = None) -> Flask:
    from referrals.auth.models import Role
    from referrals.config import Defaults as Config
    from referrals.courses.models import AttendanceStatus
    from referrals.courses.presenters import schedule_text
    from referrals.courses.progress import SessionsLeft
    from referrals.courses.register_rules import REGISTER_EDIT_DAYS, on_register_until
    from referrals.intake.letters import (
        SNOMED_TERMS,
        OutcomeSummary,
        _headline,
        _reported_step,
        letter_event,
    )
    from referrals.intake.lifecycle import OPEN_STATUSES, Status, next_steps
    from referrals.intake.presenters import (
        STATUS_COLOURS,
        age,
        art_forms,
        nhs_number,
        status_tag,
        timeline,
    )
    from referrals.intake.queries import contact_due_by, is_overdue
    from referrals.main.context import local_date, local_datetime, phone_display, phone_link
    from referrals.outcomes.scoring import Instrument, Timepoint
    from referrals.outcomes.timepoints import CourseDays, timepoint_for
    from referrals.vocab import ArtForm, Pathway, ReferrerType

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or os.environ["SECRET_KEY"],
        SESSION_COOKIE_NAME=Config.SESSION_COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=Config.PERMANENT_SESSION_LIFETIME,
    )
    idle, absolute = Config.SESSION_IDLE_TIMEOUT, Config.SESSION_ABSOLUTE_TIMEOUT
    touch_interval = Config.SESSION_TOUCH_INTERVAL
    configured_mfa = frozenset(json.loads(os.environ.get("REFERRALS_MFA_REQUIRED_ROLES", "[]")))
    engine = _engine(url or os.environ["DATABASE_URL"])
    t = _tables()
    sess, user, org = t["user_session"], t["user_account"], t["organisation"]
    setting, note, read = t["security_setting"], t["notification"], t["notification_read"]
    referral, patient, task = t["referral"], t["patient"], t["patient_reconciliation"]
    course, course_session, venue = t["course"], t["course_session"], t["venue"]
    enrolment, attendance = t["enrolment"], t["attendance"]
    audit = t["audit_event"]
    transition, attempt = t["referral_transition"], t["contact_attempt"]
    conversation, assessment = t["conversation"], t["wellbeing_assessment"]
    referral_practice, referrer = org.alias("referral_practice"), user.alias("referrer")
    worker, actor, interest = user.alias("worker"), user.alias("actor"), course.alias("interest")
    csrf = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token")
    folder = jinja2.FileSystemLoader(str(BENCH_ROOT / "baseline"))
    plain = jinja2.Environment(loader=folder, autoescape=True, keep_trailing_newline=True)
    # The pages written from the service's own templates keep its Jinja options.
    trimmed = jinja2.Environment(
        loader=folder,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # The referral's page keeps the service's template logic and its NHS.UK summary lists.
    referral_env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([folder, jinja2.PackageLoader("nhsuk_frontend_jinja")]),
        undefined=jinja2.ChainableUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    referral_env.filters.update(
        status_tag=status_tag,
        timeline=timeline,
        art_forms=art_forms,
        nhs_number=nhs_number,
        age=age,
        local_date=local_date,
        local_datetime=local_datetime,
        phone=phone_display,
    )
    referral_env.filters["schedule_text"] = schedule_text
    referral_template = referral_env.get_template("referral.html")
    directory_template = referral_env.get_template("directory.html")
    layout = plain.get_template("_layout.html")
    pager_template = plain.get_template("_pager.html")
    referral_list_template = plain.get_template("referral_list.html")
    caseload_template = trimmed.get_template("caseload.html")
    register_template = trimmed.get_template("register.html")
    home_templates = {
        role: trimmed.get_template(f"home_{role}.html") for role in ("referrer", "link_worker")
    }
    role_labels = {r.value: r.label for r in Role}
    pathways = {p.value: p.label for p in Pathway}
    tags = {
        s.value: f'<strong class="nhsuk-tag nhsuk-tag--{c}">{s.label}</strong>'
        for s, c in STATUS_COLOURS.items()
    }
    status_tags = {k: Markup(v) for k, v in tags.items()}  # noqa: S704  (labels of our own)
    status_choices = [(s.value, s.label) for s in Status]
    open_statuses = sorted(s.value for s in OPEN_STATUSES)
    attendance_choices = [(s.value, s.label) for s in AttendanceStatus]
    navigation: dict[tuple[str, str], Markup] = {}
    unread = (
        select(func.count(note.c.id))
        .where(
            or_(
                note.c.user_id == user.c.id,
                and_(note.c.user_id.is_(None), note.c.organisation_id == user.c.organisation_id),
            ),
            ~exists().where(read.c.notification_id == note.c.id, read.c.user_id == user.c.id),
        )
        .scalar_subquery()
    )
    identity = (
        select(
            sess.c.id,
            sess.c.user_id,
            sess.c.created_at,
            sess.c.last_seen_at,
            sess.c.revoked_at,
            user.c.name,
            user.c.role,
            user.c.active,
            user.c.organisation_id,
            user.c.mfa_enabled_at,
            org.c.name.label("organisation"),
            setting.c.value.label("required_roles"),
            unread.label("unread"),
        )
        .join(user, user.c.id == sess.c.user_id)
        .join(org, org.c.id == user.c.organisation_id)
        .outerjoin(setting, setting.c.key == "mfa_required_roles")
    )

    def signed_in(db: Connection, roles: Iterable[str]) -> Any:
        """The signed-in user's identity row, or the answer to give instead (sign in, two-step
        verification, or 403 for a role the page is not for)."""
        token = session.get("sid")
        if not isinstance(token, str):
            return redirect(f"/sign-in?next={request.path}")
        now = datetime.now(UTC)
        digest = hashlib.sha256(token.encode()).hexdigest()
        me = db.execute(identity.where(sess.c.token_hash == digest)).first()
        if (
            me is None
            or str(me.user_id) != session.get("_user_id")
            or me.revoked_at is not None
            or now - me.last_seen_at > idle
            or now - me.created_at > absolute
            or not me.active
        ):
            return redirect(f"/sign-in?next={request.path}")
        if me.role not in roles:
            abort(403)  # the baseline serves each page to the role it is measured for
        required = configured_mfa if me.required_roles is None else set(me.required_roles)
        if me.role in required and me.mfa_enabled_at is None:
            return redirect("/account/mfa")
        if now - me.last_seen_at > touch_interval:
            # As the service does: the read ends first, so the write starts its own
            # transaction (on SQLite a read turned into a write fails at once).
            db.rollback()
            db.execute(update(sess).where(sess.c.id == me.id).values(last_seen_at=now))
            db.commit()
        return me

    def audited(db: Connection, me: Any, action: str, entries: list[tuple[Any, ...]]) -> None:
        """One audit entry per person shown: (object type, object id, person, detail)."""
        db.rollback()  # the reads end before the audit entries are written
        if not entries:
            return
        at, source, address = datetime.now(UTC), request.endpoint, request.remote_addr
        db.execute(
            insert(audit),
            [
                {
                    "at": at,
                    "actor_id": me.user_id,
                    "action": action,
                    "object_type": object_type,
                    "object_id": str(object_id),
                    "subject_person_id": person,
                    "source": source,
                    "ip_address": address,
                    "detail": detail,
                }
                for object_type, object_id, person, detail in entries
            ],
        )
        db.commit()

    def page(me: Any, title: Markup, main: Callable[[str], str], back: str = "") -> Response:
        """The page's content inside the chrome, with a fresh nonce and the CSRF token."""
        g.nonce = secrets.token_urlsafe(16)
        token = _csrf_token(csrf)
        key = (me.role, request.path)
        menu = navigation.get(key)
        if menu is None:
            menu = navigation[key] = _navigation(me.role, request.path)
        html = layout.render(
            title=title,
            icons=Markup(_ICONS[me.role == "artist"]),  # noqa: S704  (our own markup)
            nonce=g.nonce,
            token=token,
            name=me.name,
            role_label=role_labels[me.role],
            unread=me.unread,
            navigation=menu,
            back=Markup(back),  # noqa: S704  (our own markup)
            main=Markup(main(token)),  # noqa: S704  (rendered by an autoescaping template)
        )
        return Response(html, content_type="text/html; charset=utf-8")

    def paged(db: Connection, scope: Any, order: list[Any]) -> tuple[int, int, int, list[int]]:
        """(total, page, pages, the page's ids) of a list, as the service's pager finds them."""
        total = db.scalar(select(func.count()).select_from(referral).where(scope)) or 0
        pages = max(1, -(-total // PER_PAGE))
        raw = request.args.get("page", "1")
        number = int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_PAGE else 1
        number = min(number, pages)
        ids = list(
            db.scalars(
                select(referral.c.id)
                .where(scope)
                .order_by(*order)
                .limit(PER_PAGE)
                .offset((number - 1) * PER_PAGE)
            )
        )
        return total, number, pages, ids

    def pager(total: int, number: int, pages: int, path: str = "/referrals/") -> Markup:
        if pages <= 1:
            return Markup("")
        return Markup(  # noqa: S704  (rendered by an autoescaping template)
            pager_template.render(
                path=path,
                page=number,
                pages=pages,
                total=total,
                first=(number - 1) * PER_PAGE + 1,
                last=min(total, number * PER_PAGE),
            )
        )

    @app.get("/health")
    def health() -> str:
        return "ok"

    def list_rows(db: Connection, ids: list[int]) -> list[Any]:
        """A practice's list rows for these ids, in their order."""
        found = {
            row.id: row
            for row in db.execute(
                select(
                    referral.c.id,
                    referral.c.patient_id,
                    referral.c.received_on,
                    referral.c.pathway,
                    referral.c.status,
                    patient.c.given_name,
                    patient.c.family_name,
                    patient.c.gp_practice_id,
                    task.c.sent,
                )
                .join(patient, patient.c.id == referral.c.patient_id)
                .outerjoin(task, task.c.referral_id == referral.c.id)
                .where(referral.c.id.in_(ids))
            )
        }
        return [found[i] for i in ids if i in found]

    def latest_messages(db: Connection, me: Any) -> list[dict[str, Any]]:
        is_read = exists().where(read.c.notification_id == note.c.id, read.c.user_id == me.user_id)
        return [
            {
                "id": m.id,
                "text": m.text,
                "link": m.link,
                "is_read": m.is_read,
                "created": _local_datetime(m.created_at),
            }
            for m in db.execute(
                select(
                    note.c.id, note.c.text, note.c.link, note.c.created_at, is_read.label("is_read")
                )
                .where(
                    or_(
                        note.c.user_id == me.user_id,
                        and_(
                            note.c.user_id.is_(None), note.c.organisation_id == me.organisation_id
                        ),
                    )
                )
                .order_by(note.c.created_at.desc(), note.c.id.desc())
                .limit(5)
            )
        ]

    @app.get("/", endpoint="main.home")
    def home() -> Any:
        with engine.connect() as db:
            me = signed_in(db, (Role.REFERRER.value, Role.LINK_WORKER.value))
            if isinstance(me, Response):
                return me
            messages = latest_messages(db, me)
            values: dict[str, Any]
            if me.role == Role.LINK_WORKER.value:
                by_status: dict[str, int] = dict(
                    db.execute(
                        select(referral.c.status, func.count())
                        .where(referral.c.status.in_(open_statuses))
                        .group_by(referral.c.status)
                    ).all()
                )
                mine = db.scalar(
                    select(func.count())
                    .select_from(referral)
                    .where(
                        referral.c.status.in_(open_statuses),
                        referral.c.assigned_to_id == me.user_id,
                    )
                )
                values = {
                    "open_referrals": sum(by_status.values()),
                    "new_referrals": by_status.get("received", 0),
                    "my_caseload": mine,
                }
                db.rollback()
            else:
                scope = referral.c.gp_practice_id == me.organisation_id
                total = db.scalar(select(func.count()).select_from(referral).where(scope))
                ids = list(
                    db.scalars(
                        select(referral.c.id)
                        .where(scope)
                        .order_by(referral.c.received_on.desc(), referral.c.id.desc())
                        .limit(5)
                    )
                )
                rows = list_rows(db, ids)
                audited(
                    db,
                    me,
                    "referral.listed",
                    [
                        (
                            "referral",
                            r.id,
                            r.patient_id,
                            {"patient_id": r.patient_id, "via": "home"},
                        )
                        for r in rows
                    ],
                )
                values = {
                    "total": total,
                    "rows": [
                        {
                            "id": r.id,
                            "name": _name(r, me.organisation_id),
                            "received": _local_date(r.received_on),
                            "status": status_tags[r.status],
                        }
                        for r in rows
                    ],
                }
        template = home_templates[me.role]

        def main(token: str) -> str:
            return template.render(
                token=token, organisation=me.organisation, messages=messages, **values
            )

        if me.role == Role.LINK_WORKER.value:
            return page(me, Markup("Your caseload"), main)
        return page(me, Markup("Your practice's referrals"), main)

    @app.get("/referrals/", endpoint="intake.referrals")
    def referral_list() -> Any:
        with engine.connect() as db:
            me = signed_in(db, (Role.REFERRER.value, Role.LINK_WORKER.value))
            if isinstance(me, Response):
                return me
            if me.role == Role.LINK_WORKER.value:
                return caseload(db, me)
            scope = referral.c.gp_practice_id == me.organisation_id
            total, number, pages, ids = paged(
                db, scope, [referral.c.received_on.desc(), referral.c.id.desc()]
            )
            rows = list_rows(db, ids)
            audited(db, me, "referral.listed", _listed(rows))

        def main(token: str) -> str:
            return referral_list_template.render(
                token=token,
                organisation=me.organisation,
                total=total,
                pager=pager(total, number, pages),
                rows=[
                    {
                        "id": r.id,
                        "name": _name(r, me.organisation_id),
                        "received": _local_date(r.received_on),
                        "pathway": pathways[r.pathway],
                        "status": status_tags[r.status],
                    }
                    for r in rows
                ],
            )

        return page(me, Markup("Your practice's referrals"), main)

    def caseload(db: Connection, me: Any) -> Response:
        """A link worker's open referrals: new ones first, flagged ones next, then oldest."""
        scope = referral.c.status.in_(open_statuses)
        total, number, pages, ids = paged(
            db,
            scope,
            [
                case((referral.c.status == "received", 0), else_=1),
                referral.c.risk_flag.desc(),
                referral.c.received_on,
                referral.c.id,
            ],
        )
        practice, worker = org.alias("practice"), user.alias("worker")
        found = {
            row.id: row
            for row in db.execute(
                select(
                    referral.c.id,
                    referral.c.patient_id,
                    referral.c.received_on,
                    referral.c.pathway,
                    referral.c.status,
                    referral.c.risk_flag,
                    referral.c.first_contact_at,
                    patient.c.given_name,
                    patient.c.family_name,
                    practice.c.name.label("practice"),
                    worker.c.name.label("link_worker"),
                )
                .join(patient, patient.c.id == referral.c.patient_id)
                .join(practice, practice.c.id == referral.c.gp_practice_id)
                .outerjoin(worker, worker.c.id == referral.c.assigned_to_id)
                .where(referral.c.id.in_(ids))
            )
        }
        rows = [found[i] for i in ids if i in found]
        practices = [
            (str(i), f"{name} ({ods})" if ods else name)
            for i, name, ods in db.execute(
                select(org.c.id, org.c.name, org.c.ods_code)
                .where(org.c.kind == "gp_practice", org.c.active.is_(True))
                .order_by(org.c.name)
            )
        ]
        audited(db, me, "referral.listed", _listed(rows))
        today = _today()

        def main(token: str) -> str:
            return caseload_template.render(
                token=token,
                statuses=status_choices,
                pathways=pathways.items(),
                practices=practices,
                total=total,
                pager=pager(total, number, pages),
                rows=[
                    {
                        "id": r.id,
                        # A link worker sees everyone's stored details.
                        "name": f"{r.given_name} {r.family_name}",
                        "risk_flag": r.risk_flag,
                        "late": r.first_contact_at is None
                        and r.status == "received"
                        and contact_due_by(r.received_on) < today,
                        "received": _local_date(r.received_on),
                        "pathway": pathways[r.pathway],
                        "practice": r.practice,
                        "status": status_tags[r.status],
                        "link_worker": r.link_worker,
                    }
                    for r in rows
                ],
            )

        return page(me, Markup("Caseload"), main)

    @app.get("/sessions/<int:session_id>/register", endpoint="courses.register")
    def register(session_id: int) -> Any:
        with engine.connect() as db:
            me = signed_in(db, (Role.ARTIST.value,))
            if isinstance(me, Response):
                return me
            found = db.execute(
                select(
                    course_session.c.id,
                    course_session.c.course_id,
                    course_session.c.date,
                    course_session.c.start_time,
                    course_session.c.sequence,
                    course_session.c.status,
                    course_session.c.register_saved_at,
                    course.c.title,
                    course.c.session_count,
                    course.c.taster_count,
                    venue.c.name.label("venue"),
                )
                .join(course, course.c.id == course_session.c.course_id)
                .join(venue, venue.c.id == course.c.venue_id)
                .where(
                    course_session.c.id == session_id,
                    course.c.provider_id == me.organisation_id,
                )
            ).first()
            if found is None:
                abort(404)
            marks = {
                m.enrolment_id: m
                for m in db.execute(
                    select(
                        attendance.c.enrolment_id,
                        attendance.c.status,
                        attendance.c.mood_before,
                        attendance.c.mood_after,
                        attendance.c.note,
                    ).where(attendance.c.session_id == session_id)
                )
            }
            people = db.execute(
                select(
                    enrolment.c.id,
                    enrolment.c.referral_id,
                    referral.c.patient_id,
                    patient.c.given_name,
                    patient.c.family_name,
                    patient.c.access_needs,
                    patient.c.communication_needs,
                    patient.c.phone,
                )
                .join(referral, referral.c.id == enrolment.c.referral_id)
                .join(patient, patient.c.id == referral.c.patient_id)
                .where(
                    enrolment.c.course_id == found.course_id,
                    and_(
                        enrolment.c.status.in_(("enrolled", "completed")),
                        enrolment.c.enrolled_at.is_(None)
                        | (enrolment.c.enrolled_at < on_register_until(found.date)),
                    )
                    | enrolment.c.id.in_(
                        select(attendance.c.enrolment_id).where(
                            attendance.c.session_id == session_id
                        )
                    ),
                )
                .order_by(enrolment.c.id)
            ).all()
            days = [
                d
                for (d,) in db.execute(
                    select(course_session.c.date).where(
                        course_session.c.course_id == found.course_id,
                        course_session.c.status != "cancelled",
                    )
                )
            ]
            attended: dict[int, list[date]] = {}
            for enrolment_id, day in db.execute(
                select(attendance.c.enrolment_id, course_session.c.date)
                .join(course_session, course_session.c.id == attendance.c.session_id)
                .where(
                    attendance.c.enrolment_id.in_([p.id for p in people]),
                    attendance.c.status == "attended",
                )
            ):
                attended.setdefault(enrolment_id, []).append(day)
            audited(
                db,
                me,
                "register.viewed",
                [
                    (
                        "enrolment",
                        p.id,
                        p.patient_id,
                        {"referral_id": p.referral_id, "session_id": session_id},
                    )
                    for p in people
                ],
            )
        today = _today()
        editable = (
            found.status != "cancelled"
            and found.date <= today
            and (today - found.date).days <= REGISTER_EDIT_DAYS
        )
        date_text = _local_date(found.date)
        saved = found.register_saved_at
        if saved is not None and saved.tzinfo is None:
            saved = saved.replace(tzinfo=UTC)
        facts = {
            "id": session_id,
            "title": found.title,
            "date_text": date_text,
            "sequence": found.sequence,
            "of": found.session_count + found.taster_count,
            "start": found.start_time.strftime("%H:%M"),
            "venue": found.venue,
            "status": found.status,
            "future": found.date > today,
            "saved_text": "" if saved is None else _local_datetime(saved),
            "data": htmlsafe_json_dumps(
                {
                    "session_id": session_id,
                    "send_url": f"/sessions/{session_id}/register/send",
                    "title": found.title,
                    "date_text": date_text,
                    "version": "" if saved is None else saved.isoformat(),
                },
                dumps=app.json.dumps,
            ),
        }

        def main(token: str) -> str:
            rows = []
            for p in people:
                mark = marks.get(p.id)
                timepoint = timepoint_for(found.date, CourseDays(days, attended.get(p.id, [])))
                rows.append(
                    {
                        "id": p.id,
                        "name": f"{p.given_name} {p.family_name}",
                        "access_needs": p.access_needs,
                        "communication_needs": p.communication_needs,
                        "phone": phone_display(p.phone) if p.phone else "",
                        "tel": phone_link(p.phone) if p.phone else "",
                        "status": mark.status if mark else "",
                        "mood_before": None if mark is None else mark.mood_before,
                        "mood_after": None if mark is None else mark.mood_after,
                        "note": mark.note if mark else "",
                        "timepoint": timepoint.label.lower() if timepoint else "",
                    }
                )
            return register_template.render(
                token=token,
                s=facts,
                rows=rows,
                editable=editable,
                disabled="" if editable else "disabled",
                statuses=attendance_choices,
                moods=range(11),
                edit_days=REGISTER_EDIT_DAYS,
            )

        back = (
            '<nav aria-label="Back"><div class="nhsuk-back-link"><a class="nhsuk-back-link__link"'
            ' href="/sessions/">My sessions</a></div></nav>'
        )
        return page(me, Markup("Register: {}, {}").format(found.title, date_text), main, back)

    @app.get("/referrals/<int:referral_id>", endpoint="intake.referral")
    def referral_page(referral_id: int) -> Any:
        """One referral, as a GP (their practice's) or a link worker (any) sees it."""
        with engine.connect() as db:
            me = signed_in(db, (Role.REFERRER.value, Role.LINK_WORKER.value))
            if isinstance(me, Response):
                return me
            gp = me.role == Role.REFERRER.value
            scope = referral.c.gp_practice_id == me.organisation_id if gp else true()
            found = db.execute(
                select(
                    referral,
                    patient.c.gp_practice_id.label("registered_at"),
                    referral_practice.c.name.label("practice"),
                    referrer.c.name.label("referred_by"),
                    worker.c.name.label("link_worker"),
                    interest.c.title.label("course_of_interest"),
                    task.c.id.label("task_id"),
                )
                .join(patient, patient.c.id == referral.c.patient_id)
                .join(referral_practice, referral_practice.c.id == referral.c.gp_practice_id)
                .outerjoin(referrer, referrer.c.id == referral.c.referred_by_id)
                .outerjoin(worker, worker.c.id == referral.c.assigned_to_id)
                .outerjoin(interest, interest.c.id == referral.c.course_of_interest_id)
                .outerjoin(task, task.c.referral_id == referral.c.id)
                .where(referral.c.id == referral_id, scope)
            ).first()
            if found is None:
                abort(404)
            person = db.execute(
                select(patient, org.c.name.label("practice"))
                .join(org, org.c.id == patient.c.gp_practice_id)
                .where(patient.c.id == found.patient_id)
            ).one()
            if found.task_id is not None or (gp and person.gp_practice_id != me.organisation_id):
                # Details to check, or a person the practice knows only as it sent them: the
                # benchmarked referral has neither.
                abort(501)

            def with_actor(table: Any) -> list[_Obj]:
                """The referral's rows of `table`, oldest first, each with its actor's name."""
                return [
                    _Obj(row, actor=_named(row.actor))
                    for row in db.execute(
                        select(table, actor.c.name.label("actor"))
                        .outerjoin(actor, actor.c.id == table.c.actor_id)
                        .where(table.c.referral_id == referral_id)
                        .order_by(table.c.id)
                    )
                ]

            steps = with_actor(transition)
            attempts = with_actor(attempt)
            conversations = with_actor(conversation)
            courses = db.execute(
                select(enrolment, course.c.title)
                .join(course, course.c.id == enrolment.c.course_id)
                .where(enrolment.c.referral_id == referral_id)
                .order_by(enrolment.c.created_at.desc(), enrolment.c.id.desc())
            ).all()
            counts: dict[int, tuple[int, dict[int, int]]] = {}
            for course_id in {e.course_id for e in courses}:
                delivered = db.scalar(
                    select(func.count()).where(
                        course_session.c.course_id == course_id,
                        course_session.c.status == "delivered",
                    )
                )
                attended: dict[int, int] = dict(
                    db.execute(
                        select(attendance.c.enrolment_id, func.count())
                        .join(course_session, course_session.c.id == attendance.c.session_id)
                        .where(
                            course_session.c.course_id == course_id,
                            course_session.c.status == "delivered",
                            attendance.c.status == "attended",
                        )
                        .group_by(attendance.c.enrolment_id)
                    ).all()
                )
                counts[course_id] = (delivered or 0, attended)
            enrolments = []
            for e in courses:
                position = None
                if e.status == "waitlisted" and e.waitlisted_at is not None:
                    ahead = db.scalar(
                        select(func.count()).where(
                            enrolment.c.course_id == e.course_id,
                            enrolment.c.status == "waitlisted",
                            (enrolment.c.waitlisted_at < e.waitlisted_at)
                            | (
                                (enrolment.c.waitlisted_at == e.waitlisted_at)
                                & (enrolment.c.id < e.id)
                            ),
                        )
                    )
                    position = (ahead or 0) + 1
                delivered, attended = counts[e.course_id]
                enrolments.append(
                    {
                        "enrolment": _Obj(e, course=_Obj(None, title=e.title)),
                        "position": position,
                        "attended": attended.get(e.id, 0),
                        "delivered": delivered,
                    }
                )
            history = db.execute(
                select(referral.c.id, referral.c.received_on, referral.c.pathway, referral.c.status)
                .where(
                    referral.c.patient_id == found.patient_id, referral.c.id != referral_id, scope
                )
                .order_by(referral.c.received_on.desc(), referral.c.id.desc())
            ).all()
            event = letter_event(cast(Any, found))
            summary = OutcomeSummary()
            if event is not None and courses:
                latest = courses[0]
                delivered, attended = counts[latest.course_id]
                scores = {
                    timepoint: score
                    for timepoint, score in db.execute(
                        select(assessment.c.timepoint, assessment.c.metric_score)
                        .where(
                            assessment.c.enrolment_id == latest.id,
                            assessment.c.instrument == Instrument.SWEMWBS,
                        )
                        .order_by(assessment.c.recorded_on, assessment.c.id)
                    )
                }
                start, end = scores.get(Timepoint.BASELINE), scores.get(Timepoint.END)
                summary = OutcomeSummary(
                    course=latest.title,
                    sessions_attended=attended.get(latest.id, 0),
                    sessions_delivered=delivered,
                    wellbeing_baseline=float(start) if start is not None else None,
                    wellbeing_end=float(end) if end is not None else None,
                )
            audited(
                db,
                me,
                "referral.viewed",
                [("referral", referral_id, found.patient_id, {"patient_id": found.patient_id})],
            )
        today = _today()
        status = Status(found.status)
        item: Any = _Obj(
            found,
            status=status,
            pathway=Pathway(found.pathway),
            referrer_type=ReferrerType(found.referrer_type),
            is_open=status in OPEN_STATUSES,
            gp_practice=_Obj(None, name=found.practice),
            referred_by=_named(found.referred_by),
            assigned_to=_named(found.link_worker),
            course_of_interest=None
            if found.course_of_interest is None
            else _Obj(None, title=found.course_of_interest),
            transitions=steps,
            contact_attempts=attempts,
            conversations=conversations,
        )
        who = _Obj(
            person,
            full_name=f"{person.given_name} {person.family_name}",
            gp_practice=_Obj(None, name=person.practice),
        )
        message: Any = None
        if event is not None:
            step = _reported_step(item, event)
            message = _Obj(
                None,
                headline=_headline(cast(Any, _Obj(item, patient=who, reconciliation=None)), event),
                summary=summary,
                code=step.snomed_code if step is not None else None,
            )
            message.code_term = SNOMED_TERMS[message.code] if message.code else ""
        can_triage = me.role == Role.LINK_WORKER.value

        def main(token: str) -> str:
            return referral_template.render(
                referral=item,
                person=who,
                history=[
                    _Obj(r, pathway=Pathway(r.pathway), status=Status(r.status)) for r in history
                ],
                reconciliation=None,
                differences=[],
                enrolments=[_Obj(None, **e) for e in enrolments],
                can_triage=can_triage,
                moves=next_steps(status) if can_triage else [],
                overdue=is_overdue(item, today),
                today=today,
                message_back=message,
            )

        back = (
            '<nav aria-label="Back"><div class="nhsuk-back-link"><a class="nhsuk-back-link__link"'
            ' href="/referrals/">Back to referrals</a></div></nav>'
        )
        return page(me, Markup("Referral R{}").format(referral_id), main, back)

    @app.get("/courses/", endpoint="courses.directory")
    def directory() -> Any:
        """The courses still to run, soonest start first, as staff other than artists find
        them with no filter chosen."""
        if set(request.args) - {"page"}:
            abort(501)  # the baseline serves the unfiltered directory
        with engine.connect() as db:
            me = signed_in(db, (Role.REFERRER.value, Role.LINK_WORKER.value))
            if isinstance(me, Response):
                return me
            today = _today()
            running = [
                i
                for (i,) in db.execute(
                    select((course_session.c.course_id + 0).label("course_id"))
                    .where(course_session.c.date >= today, course_session.c.status != "cancelled")
                    .distinct()
                )
            ]
            taken = (
                select(enrolment.c.course_id, func.count().label("taken"))
                .where(
                    enrolment.c.status.in_(("offered", "enrolled")),
                    enrolment.c.course_id.in_(running),
                )
                .group_by(enrolment.c.course_id)
                .subquery()
            )
            waiting = (
                select(enrolment.c.course_id, func.count().label("waiting"))
                .where(enrolment.c.status == "waitlisted", enrolment.c.course_id.in_(running))
                .group_by(enrolment.c.course_id)
                .subquery()
            )
            ends = (
                select(
                    course_session.c.course_id,
                    func.max(course_session.c.date).label("ends_on"),
                    func.min(course_session.c.date).label("starts_on"),
                )
                .where(
                    course_session.c.status != "cancelled", course_session.c.course_id.in_(running)
                )
                .group_by(course_session.c.course_id)
                .subquery()
            )
            scope = and_(course.c.id.in_(running), ends.c.ends_on >= today)
            listed = (
                course.join(venue, venue.c.id == course.c.venue_id)
                .outerjoin(taken, taken.c.course_id == course.c.id)
                .outerjoin(waiting, waiting.c.course_id == course.c.id)
                .outerjoin(ends, ends.c.course_id == course.c.id)
            )
            total = db.scalar(select(func.count()).select_from(listed).where(scope)) or 0
            pages = max(1, -(-total // PER_PAGE))
            raw = request.args.get("page", "1")
            ok = raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_PAGE
            number = min(int(raw) if ok else 1, pages)
            provider = org.alias("provider")
            rows = db.execute(
                select(
                    course.c.id,
                    course.c.title,
                    course.c.capacity,
                    course.c.art_form,
                    course.c.start_date,
                    course.c.start_time,
                    course.c.duration_minutes,
                    course.c.frequency,
                    course.c.session_count,
                    course.c.taster_count,
                    provider.c.name.label("provider"),
                    venue.c.name.label("venue"),
                    venue.c.postcode,
                    func.coalesce(taken.c.taken, 0).label("taken"),
                    func.coalesce(waiting.c.waiting, 0).label("waiting"),
                    ends.c.starts_on,
                    ends.c.ends_on,
                )
                .select_from(listed.join(provider, provider.c.id == course.c.provider_id))
                .where(scope)
                .order_by(ends.c.starts_on, course.c.title, course.c.id)
                .limit(PER_PAGE)
                .offset((number - 1) * PER_PAGE)
            ).all()
            to_come = (course_session.c.date >= today) & (course_session.c.status == "planned")
            found = {
                course_id: SessionsLeft(left, count)
                for course_id, count, left in db.execute(
                    select(
                        course_session.c.course_id,
                        func.count(),
                        func.count(case((to_come, course_session.c.id))),
                    )
                    .where(
                        course_session.c.course_id.in_([r.id for r in rows]),
                        course_session.c.status != "cancelled",
                    )
                    .group_by(course_session.c.course_id)
                )
            }
            db.rollback()
        items = [
            (
                _Obj(
                    r,
                    art_form=ArtForm(r.art_form),
                    provider=_Obj(None, name=r.provider),
                    venue=_Obj(None, name=r.venue, postcode=r.postcode),
                ),
                r.taken,
                r.waiting,
                r.starts_on,
                r.ends_on,
            )
            for r in rows
        ]

        def main(token: str) -> str:
            return directory_template.render(
                page=_Obj(None, items=items, total=total),
                ArtForm=ArtForm,
                Pathway=Pathway,
                weekdays=WEEKDAYS,
                progress={r.id: found.get(r.id, SessionsLeft(0, 0)) for r in rows},
                today=today,
                pager=pager(total, number, pages, "/courses/"),
            )

        return page(me, Markup("Course directory"), main)

    @app.after_request
    def security_headers(response: Response) -> Response:
        nonce = g.get("nonce")
        script_src = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
        h = response.headers
        h["Content-Security-Policy"] = (
            "default-src 'self'; "
            f"script-src {script_src}; "
            "style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Cache-Control"] = "no-store"
        h["Pragma"] = "no-cache"
        return response

    return app


def _today() -> date:
    from referrals import clock

    return clock.today()


def _local_datetime(value: datetime) -> str:
    from referrals import clock

    return value.astimezone(clock.zone()).strftime("%-d %b %Y, %H:%M")


def _listed(rows: list[Any]) -> list[tuple[Any, ...]]:
    """A list page's audit entries: one per person shown, naming their referral."""
    return [("referral", r.id, r.patient_id, {"patient_id": r.patient_id}) for r in rows]


def _csrf_token(serializer: URLSafeTimedSerializer) -> str:
    """Flask-WTF's token: the session's raw token, signed with a timestamp."""
    if "csrf_token" not in session:
        session["csrf_token"] = hashlib.sha1(os.urandom(64)).hexdigest()  # noqa: S324
    return str(serializer.dumps(session["csrf_token"]))


def _name(row: Any, practice_id: int) -> str:
    """The person as the practice knows them: the stored record when registered there, else
    the details the practice sent (as `referrals.intake.identity.person_seen_by`)."""
    if row.gp_practice_id == practice_id or row.sent is None:
        return f"{row.given_name} {row.family_name}"
    sent = row.sent
    return f"{sent.get('given_name', '')} {sent.get('family_name', '')}"


class _Obj:
    """A row's columns as attributes, with some replaced or added (the service's templates and
    presenters read a referral's parts as attributes)."""

    def __init__(self, row: Any, **extra: Any) -> None:
        if row is not None:
            self.__dict__.update(row._mapping if hasattr(row, "_mapping") else vars(row))
        self.__dict__.update(extra)


def _named(name: str | None) -> _Obj | None:
    return None if name is None else _Obj(None, name=name)


def same_page(service_html: str, baseline_html: str) -> bool:
    """The two answers are the same bytes once the nonce and the CSRF token are set aside."""
    return _normalised(service_html) == _normalised(baseline_html)


def _normalised(html: str) -> str:
    return _TOKEN.sub('name="csrf_token" value=""', _NONCE.sub('nonce=""', html))
