"""A minimal implementation of a GP's referral list, to measure the service's page against.

Bare Flask, SQLAlchemy Core and one Jinja template (bench/baseline/referral_list.html), doing the
page's work and nothing else: it reads the same signed session cookie (Flask's, with the same
key), finds the server-side session, its user and organisation, the two-step verification rule
and the unread count in one statement, checks the same idle and absolute timeouts (and records
the last-seen time when due), runs the same list statements (the practice's count, the page's
25 ids, their rows), writes the same "referral.listed" audit entries, sets the CSP nonce, the CSRF
token and the security headers, and renders the same NHS.UK chrome. Its answer is the service's
byte for byte apart from the nonce and the token; `same_page` says so, and bench.throughput fails
if it does not. Served by gunicorn like the service: `bench.baseline:create_app()`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import jinja2
from flask import Flask, Response, abort, g, redirect, request, session
from itsdangerous import URLSafeTimedSerializer
from markupsafe import Markup
from sqlalchemy import Engine, and_, create_engine, event, exists, func, insert, or_, select, update

from bench.common import BENCH_ROOT

PER_PAGE = 25
MAX_PAGE = 100_000
_NONCE = re.compile(r'nonce="[^"]+"')
_TOKEN = re.compile(r'name="csrf_token" (type="hidden" )?value="[^"]+"')


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


def _local_date(value: Any) -> str:
    return str(value.strftime("%-d %b %Y"))


def create_app(url: str | None = None, secret_key: str | None = None) -> Flask:
    from referrals.auth.models import Role
    from referrals.config import Defaults as Config
    from referrals.intake.presenters import STATUS_COLOURS
    from referrals.vocab import Pathway

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
    audit = t["audit_event"]
    csrf = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token")
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(BENCH_ROOT / "baseline")), autoescape=True
    )
    page_template = templates.get_template("referral_list.html")
    pathways = {p.value: p.label for p in Pathway}
    tags = {
        s.value: f'<strong class="nhsuk-tag nhsuk-tag--{c}">{s.label}</strong>'
        for s, c in STATUS_COLOURS.items()
    }
    status_tags = {k: Markup(v) for k, v in tags.items()}  # noqa: S704  (labels of our own)
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

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.get("/referrals/")
    def referral_list() -> Any:
        token = session.get("sid")
        if not isinstance(token, str):
            return redirect("/sign-in?next=/referrals/")
        now = datetime.now(UTC)
        digest = hashlib.sha256(token.encode()).hexdigest()
        with engine.connect() as db:
            me = db.execute(identity.where(sess.c.token_hash == digest)).first()
            if (
                me is None
                or str(me.user_id) != session.get("_user_id")
                or me.revoked_at is not None
                or now - me.last_seen_at > idle
                or now - me.created_at > absolute
                or not me.active
            ):
                return redirect("/sign-in?next=/referrals/")
            if me.role != Role.REFERRER.value:
                abort(403)  # the baseline is the referrer's list only
            required = configured_mfa if me.required_roles is None else set(me.required_roles)
            if me.role in required and me.mfa_enabled_at is None:
                return redirect("/account/mfa")
            if now - me.last_seen_at > touch_interval:
                # As the service does: the read ends first, so the write starts its own
                # transaction (on SQLite a read turned into a write fails at once).
                db.rollback()
                db.execute(update(sess).where(sess.c.id == me.id).values(last_seen_at=now))
                db.commit()
            scope = referral.c.gp_practice_id == me.organisation_id
            total = db.scalar(select(func.count()).select_from(referral).where(scope)) or 0
            pages = max(1, -(-total // PER_PAGE))
            raw = request.args.get("page", "1")
            page = int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_PAGE else 1
            page = min(page, pages)
            ids = list(
                db.scalars(
                    select(referral.c.id)
                    .where(scope)
                    .order_by(referral.c.received_on.desc(), referral.c.id.desc())
                    .limit(PER_PAGE)
                    .offset((page - 1) * PER_PAGE)
                )
            )
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
            rows = [found[i] for i in ids if i in found]
            db.rollback()  # the reads end before the audit entries are written
            if rows:
                at, source, address = now, request.endpoint, request.remote_addr
                db.execute(
                    insert(audit),
                    [
                        {
                            "at": at,
                            "actor_id": me.user_id,
                            "action": "referral.listed",
                            "object_type": "referral",
                            "object_id": str(r.id),
                            "subject_person_id": r.patient_id,
                            "source": source,
                            "ip_address": address,
                            "detail": {"patient_id": r.patient_id},
                        }
                        for r in rows
                    ],
                )
                db.commit()
        g.nonce = secrets.token_urlsafe(16)
        html = page_template.render(
            nonce=g.nonce,
            token=_csrf_token(csrf),
            name=me.name,
            unread=me.unread,
            organisation=me.organisation,
            total=total,
            page=page,
            pages=pages,
            first=(page - 1) * PER_PAGE + 1,
            last=min(total, page * PER_PAGE),
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
        return Response(html, content_type="text/html; charset=utf-8")

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


def same_page(service_html: str, baseline_html: str) -> bool:
    """The two answers are the same bytes once the nonce and the CSRF token are set aside."""

    def normalised(html: str) -> str:
        return _TOKEN.sub('name="csrf_token" value=""', _NONCE.sub('nonce=""', html))

    return normalised(service_html) == normalised(baseline_html)
