"""Home page per role, health check, accessibility and privacy statements."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import text

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.main.home import home_context
from referrals.security import STAFF, allow, public

bp = Blueprint("main", __name__)


@bp.get("/")
@allow(STAFF)
def home() -> ResponseReturnValue:
    role: Role = current_user.role
    return render_template(f"main/home_{role.value}.html", **home_context(current_user))


@bp.get("/health")
@public
def health() -> ResponseReturnValue:
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")


@bp.get("/accessibility")
@public
def accessibility() -> ResponseReturnValue:
    return render_template("main/accessibility.html")


@bp.get("/privacy")
@public
def privacy() -> ResponseReturnValue:
    return render_template("main/privacy.html")
