"""Configuration, layered: defaults -> instance/config.py -> environment -> the test mapping.

`DATABASE_URL` and `SECRET_KEY` are read as-is; any other `REFERRALS_<NAME>` variable sets
`<NAME>`; the SMTP settings keep their usual `MAIL_*` names. In development a missing secret
key is generated once into the instance folder; in production (`REFERRALS_ENV=production`)
the service refuses to start without one.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from referrals.auth.models import Role

ENV_PREFIX = "REFERRALS_"
# Everyone who sees people's records across practices, or every practice's figures.
PRODUCTION_MFA_ROLES = ("admin", "commissioner", "link_worker")


class Defaults:
    ENV = "development"
    SERVICE_NAME = "Arts on Prescription"
    SQLALCHEMY_DATABASE_URI: str | None = None  # set to the instance SQLite file when unset
    # hide_parameters keeps patient details out of database error messages (and so out of logs).
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    # How long a write waits for a lock held by another request, job or command before the
    # request answers "try again" (503): SQLite's busy timeout, PostgreSQL's lock timeout.
    SQLITE_BUSY_TIMEOUT_MS = 10_000
    POSTGRES_LOCK_TIMEOUT_MS = 10_000
    # How long a reading page waits for the write lock for what it writes on the side (the
    # session's last-seen time, access-history entries) before skipping or spooling it.
    BEST_EFFORT_WRITE_WAIT_MS = 50
    # Access-history entries a page could not write at once (the database's write lock was
    # held elsewhere) wait here as files until a later write moves them in (referrals.audit).
    # Unset: a folder in the instance folder.
    AUDIT_SPOOL_DIR: str | None = None
    # Sessions live server-side (see auth.sessions); the cookie only carries a random id.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False  # forced on in production below
    SESSION_COOKIE_NAME = "aop_session"
    PERMANENT_SESSION_LIFETIME = timedelta(hours=8)
    SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
    SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=8)
    # How often a signed-in session's last-seen time is written: reads stay reads in between.
    SESSION_TOUCH_INTERVAL = timedelta(seconds=60)
    REMEMBER_COOKIE_DURATION = timedelta(seconds=0)  # remember-me is not offered
    WTF_CSRF_TIME_LIMIT = 8 * 3600
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024
    # Argon2id parameters: RFC 9106 "low memory" profile, above OWASP's m=19 MiB, t=2 minimum.
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST_KIB = 64 * 1024
    ARGON2_PARALLELISM = 4
    # Sign-in throttle (auth.throttle), counted in the database over a sliding window: failed
    # steps per account from one client address; per client address over all accounts; and
    # how many different accounts one client address may fail on.
    LOGIN_FAILURE_WINDOW = timedelta(minutes=5)
    LOGIN_MAX_FAILURES = 10
    LOGIN_MAX_FAILURES_PER_ADDRESS = 30
    LOGIN_MAX_ACCOUNTS_PER_ADDRESS = 10
    # Request rates (referrals.ratelimits, Flask-Limiter). Counted in Redis when
    # RATELIMIT_STORAGE_URI names it (redis://host:6379), else in each worker's memory.
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_KEY_PREFIX = "aop"
    RATELIMIT_SIGN_IN = "30 per minute"  # password and code steps, per client address
    RATELIMIT_PUBLIC = "120 per minute"  # other pages open without sign-in, per client address
    # Self-referrals sent, per client address, on top of the public limit.
    RATELIMIT_SELF_REFERRAL = "5 per hour;20 per day"
    # How long the published directory is kept in each worker's memory (finder and feed).
    PUBLIC_CACHE_SECONDS = 60
    RATELIMIT_API_PER_CLIENT = "300 per minute"  # per bearer token (or address without one)
    RATELIMIT_API_PER_ADDRESS = "600 per minute"  # per client address, whatever the token
    # GOV.UK Notify's callbacks, per client address: a receipt for each message sent.
    RATELIMIT_NOTIFY_CALLBACKS = "600 per minute"
    # Roles that must use two-step verification. None: in production admins, commissioners and
    # link workers (who see every patient), nobody elsewhere. An admin's choice on
    # /admin/security overrides it (auth.mfa).
    MFA_REQUIRED_ROLES: list[str] | None = None
    API_MAX_PER_PAGE = 100
    TIMEZONE = "Europe/London"
    # People are pseudonymised this long after their last referral closed (or, referred as a
    # child, after their 25th birthday if later: retention.kept_until).
    RETENTION_YEARS = 8
    # Each pseudonymised row is coarsened until at least this many in its practice share its
    # sex, ethnic group and age band (referrals.pseudonymity); 1 coarsens nobody.
    PSEUDONYMISED_MIN_GROUP = 5
    IDEMPOTENCY_KEEP_HOURS = 24  # stored API answers show patient details; kept this long
    LOG_LEVEL = "INFO"
    # The nightly-backup job writes here (REFERRALS_BACKUP_DIR), keeping the newest BACKUP_KEEP
    # copies; unset, the job records that it was skipped.
    BACKUP_DIR: str | None = None
    BACKUP_KEEP = 14
    # Erasures on request, kept outside the database so a restore re-applies them
    # (REFERRALS_ERASURE_LEDGER_PATH); unset, instance/erasures.jsonl. See referrals.erasures.
    ERASURE_LEDGER_PATH: str | None = None
    # /health/ready: the newest scheduler heartbeat must be this recent (it beats each minute).
    SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS = 300
    # A running scheduled job writes a heartbeat this often; one silent for longer than
    # JOB_STALE_AFTER is taken for dead (its process was killed) and retried.
    JOB_HEARTBEAT_INTERVAL = timedelta(seconds=60)
    JOB_STALE_AFTER = timedelta(minutes=10)
    # Outbound email and text messages (docs/notifications.md). GOV.UK Notify when its key is
    # set; otherwise SMTP email when MAIL_SERVER is set; otherwise in-app messages only.
    PUBLIC_BASE_URL = "http://localhost:5000"  # links in emails and texts start with this
    NOTIFY_API_KEY: str | None = None
    NOTIFY_BASE_URL = "https://api.notifications.service.gov.uk"
    NOTIFY_EMAIL_TEMPLATE_ID: str | None = None  # ((subject)) and ((body))
    NOTIFY_EMAIL_WITH_FILE_TEMPLATE_ID: str | None = None  # also ((link_to_file))
    NOTIFY_SMS_TEMPLATE_ID: str | None = None  # ((body))
    # The bearer token set on Notify's Callbacks page (received texts, delivery receipts);
    # unset, the callback URLs answer 404.
    NOTIFY_CALLBACK_TOKEN: str | None = None
    MAIL_SERVER: str | None = None
    MAIL_PORT = 25
    MAIL_USE_TLS = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_DEFAULT_SENDER: str | None = None
    MAIL_TIMEOUT = 30
    SESSION_REMINDER_HOUR = 10  # reminders go out from this hour on the day before a session
    OUTBOUND_MAX_ATTEMPTS = 6  # tries per message before it is given up
    OUTBOUND_FIRST_RETRY = timedelta(minutes=5)  # doubled after each temporary failure
    OUTBOUND_STUCK_AFTER = timedelta(minutes=15)  # a message left "sending" this long
    OUTBOUND_KEEP_DAYS = 90  # sent, failed and cancelled messages are deleted after this


# Durations that may also be given as a number of seconds (as environment variables are).
_DURATIONS_IN_SECONDS = (
    "SESSION_IDLE_TIMEOUT",
    "SESSION_ABSOLUTE_TIMEOUT",
    "SESSION_TOUCH_INTERVAL",
    "JOB_HEARTBEAT_INTERVAL",
    "JOB_STALE_AFTER",
    "OUTBOUND_FIRST_RETRY",
    "OUTBOUND_STUCK_AFTER",
)
# Flask-Mailman's own settings, read from the environment under their usual names.
MAIL_SETTINGS = (
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_USE_TLS",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_DEFAULT_SENDER",
)


def _coerce(raw: str) -> Any:
    """Environment values are strings; accept JSON for numbers, booleans and lists."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)

    env = os.environ
    if env.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = _normalise_database_url(env["DATABASE_URL"])
    if env.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = env["SECRET_KEY"]
    for key in MAIL_SETTINGS:
        if env.get(key):
            numeric = key in ("MAIL_PORT", "MAIL_USE_TLS")
            app.config[key] = _coerce(env[key]) if numeric else env[key]
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX):
            app.config[key[len(ENV_PREFIX) :]] = _coerce(value)

    if test_config:
        app.config.update(test_config)
    for key in _DURATIONS_IN_SECONDS:
        if isinstance(app.config.get(key), int | float):
            app.config[key] = timedelta(seconds=app.config[key])
    app.config["MFA_REQUIRED_ROLES"] = _mfa_required_roles(app.config)

    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        db_path = Path(app.instance_path) / "referrals.sqlite"
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{db_path}"
    app.config["SQLALCHEMY_DATABASE_URI"] = _normalise_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )

    if app.config["ENV"] == "production":
        if not app.config.get("SECRET_KEY"):
            raise RuntimeError(
                "SECRET_KEY is not set. In production the service will not start without one."
            )
        app.config["SESSION_COOKIE_SECURE"] = True
    elif not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _development_secret(Path(app.instance_path))


def _mfa_required_roles(config: Any) -> list[str]:
    """The configured roles as a list of role names; a list, JSON list or comma-separated text."""
    value = config.get("MFA_REQUIRED_ROLES")
    if value is None:
        return list(PRODUCTION_MFA_ROLES) if config["ENV"] == "production" else []
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple | set | frozenset):
        raise RuntimeError("MFA_REQUIRED_ROLES must be a list of role names")
    names = [str(name) for name in value]
    unknown = sorted(set(names) - {role.value for role in Role})
    if unknown:
        raise RuntimeError(f"MFA_REQUIRED_ROLES names unknown roles: {', '.join(unknown)}")
    return names


def _normalise_database_url(url: str) -> str:
    """Hosting platforms hand out `postgres://` URLs; SQLAlchemy needs a driver name."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _development_secret(instance: Path) -> str:
    """Generate the development secret once so sessions survive restarts and every worker agrees."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret
