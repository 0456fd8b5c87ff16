"""Arts on prescription: referrals, courses, registers, wellbeing and KPI returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, PackageLoader

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Assemble the application. Nothing here touches the database or the network."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        instance_relative_config=True,
    )
    from referrals.config import load_config

    load_config(app, config)
    if app.config.get("PROXY_COUNT"):
        # Behind a TLS-terminating proxy: trust its X-Forwarded-For/Proto, and only its.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    app.jinja_options = {
        "undefined": ChainableUndefined,
        "loader": ChoiceLoader(
            [
                FileSystemLoader(str(PROJECT_ROOT / "templates")),
                PackageLoader("nhsuk_frontend_jinja"),
            ]
        ),
        "autoescape": True,
        "extensions": ["jinja2.ext.do"],
        "trim_blocks": True,
        "lstrip_blocks": True,
    }

    from referrals import audit, cli, errors, logs, models, security  # noqa: F401  (models: tables)

    app.url_map.converters["int"] = security.BoundedIntConverter
    from referrals.auth.models import User
    from referrals.auth.sessions import load_user_for_session
    from referrals.extensions import csrf, db, login_manager, mail, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    mail.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue"
    login_manager.login_message_category = "info"
    login_manager.user_loader(load_user_for_session)
    login_manager.anonymous_user = _anonymous_user_class(User)

    logs.init_app(app)  # first: every later hook and log line has the request id
    security.init_app(app)
    audit.init_app(app)
    errors.init_app(app)
    cli.init_app(app)

    # Each area's blueprint is `bp` in its package; its route modules add their routes to it
    # when imported, here only.
    from referrals import admin, auth, courses, intake, main, notifications, public, reports
    from referrals.admin import (  # noqa: F401  (routes)
        access_history_views,
        catalogue,
        jobs_views,
        messages_views,
        retention_views,
        security_views,
        token_views,
    )
    from referrals.admin import views as admin_views  # noqa: F401  (routes)
    from referrals.api import bp as api_bp
    from referrals.api import courses as api_courses  # noqa: F401  (routes)
    from referrals.api import kpi as api_kpi  # noqa: F401  (routes)
    from referrals.api import referrals as api_referrals  # noqa: F401  (routes)
    from referrals.api import views as api_views  # noqa: F401  (routes)
    from referrals.auth import mfa_views  # noqa: F401  (routes)
    from referrals.auth import token_views as auth_token_views  # noqa: F401  (routes)
    from referrals.auth import views as auth_views  # noqa: F401  (routes)
    from referrals.courses import offline_views, register_files  # noqa: F401  (routes)
    from referrals.courses import views as courses_views  # noqa: F401  (routes)
    from referrals.intake import views as intake_views  # noqa: F401  (routes)
    from referrals.main import views as main_views  # noqa: F401  (routes)
    from referrals.notifications import views as notifications_views  # noqa: F401  (routes)
    from referrals.public import openreferral, profile_views  # noqa: F401  (routes)
    from referrals.public import views as public_views  # noqa: F401  (routes)
    from referrals.reports import views as reports_views  # noqa: F401  (routes)

    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(intake.bp, url_prefix="/referrals")
    app.register_blueprint(courses.bp)
    app.register_blueprint(notifications.bp, url_prefix="/messages")
    app.register_blueprint(reports.bp, url_prefix="/returns")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(public.bp, url_prefix="/find")
    app.register_blueprint(public.openreferral_bp, url_prefix="/openreferral")
    app.register_blueprint(public.providers_bp, url_prefix="/providers")
    csrf.exempt(api_bp)  # the API authenticates by bearer token only, never by cookie

    from referrals.courses.presenters import init_app as init_course_presenters
    from referrals.intake.presenters import init_app as init_intake_presenters
    from referrals.main.context import init_app as init_context

    init_context(app)
    init_intake_presenters(app)
    init_course_presenters(app)

    from referrals import ratelimits

    ratelimits.init_app(app)  # last: it limits the views registered above
    return app


def _anonymous_user_class(user_cls: type) -> type:
    from flask_login import AnonymousUserMixin

    class Anonymous(AnonymousUserMixin):
        role = None
        organisation_id = None
        id = None

        def has_role(self, *roles: object) -> bool:
            return False

    return Anonymous
