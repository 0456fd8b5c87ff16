"""Home page per role, health checks and version, accessibility and privacy statements."""

from __future__ import annotations

from flask import jsonify, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import text

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.intake.services import referrals_listed
from referrals.main import bp
from referrals.main.health import database_revisions, migration_heads, readiness, release
from referrals.main.home import home_context
from referrals.security import STAFF, allow, public


@bp.get("/")
@allow(STAFF)
def home() -> ResponseReturnValue:
    user = current_user._get_current_object()  # once: each look-up through the proxy costs
    role: Role = user.role
    context = home_context(user)
    if context.get("recent_referrals"):
        referrals_listed(user, context["recent_referrals"], via="home")
    return render_template(f"main/home_{role.value}.html", **context)


@bp.get("/health")
@public
def health() -> ResponseReturnValue:
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")


@bp.get("/health/live")
@public
def health_live() -> ResponseReturnValue:
    """The process answers (no database needed): restart it if this fails."""
    return jsonify(status="ok")


@bp.get("/health/ready")
@public
def health_ready() -> ResponseReturnValue:
    """Database, migrations at head, a fresh scheduler heartbeat and no failing job; else 503."""
    ready, checks = readiness()
    return jsonify(status="ok" if ready else "failing", checks=checks), 200 if ready else 503


@bp.get("/version")
@public
def version() -> ResponseReturnValue:
    """The release running and the migration revision its database is at."""
    return jsonify(
        release=release(),
        migration=list(database_revisions()),
        code_migration=list(migration_heads()),
    )


@bp.get("/accessibility")
@public
def accessibility() -> ResponseReturnValue:
    return render_template("main/accessibility.html")


@bp.get("/privacy")
@public
def privacy() -> ResponseReturnValue:
    return render_template("main/privacy.html")
