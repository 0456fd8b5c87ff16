"""Command groups. Each calls the same services the pages call, then commits once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy import select

from referrals import clock, create_app
from referrals.audit import record
from referrals.auth.models import Organisation, Role, User
from referrals.auth.passwords import password_problem
from referrals.auth.services import (
    RoleOrganisationMismatch,
    UserFields,
    api_token_of,
    api_tokens_of,
    create_user,
    email_taken,
    issue_api_token,
    normalise_email,
    revoke_api_token,
)
from referrals.backup import BackupError, create_backup, restore_backup
from referrals.erasures import erase_and_remember, ledger_path, reapply_erasures
from referrals.extensions import db
from referrals.intake.models import Patient
from referrals.notifications.messages import deliver_due
from referrals.notifications.outbound import backend_name
from referrals.notifications.wording import KINDS, preview
from referrals.places.services import PlacesFileRefused, load_places
from referrals.reports.exporting import export_return
from referrals.reports.models import KpiReturn
from referrals.reports.periods import InvalidPeriod, Period
from referrals.reports.services import (
    ReturnRefused,
    contracts_active_in,
    make_return,
    regenerate_return,
)
from referrals.retention import ReasonRequired, expired_patients, pseudonymise_patient
from referrals.scheduler.jobs import (
    JOBS,
    JOBS_BY_ID,
    MONTHLY_RETURNS,
    RETENTION,
    execute,
    recent_runs,
)
from referrals.scheduler.runner import run_forever
from referrals.seeding.demo import DEMO_PASSWORD, seed_demo
from referrals.seeding.scale import (
    DatabaseNotEmpty,
    ScaleArgumentError,
    check_arguments,
    seed_scale,
)

users_cli = AppGroup("users", help="Manage user accounts and API tokens.")
seed_cli = AppGroup("seed", help="Load demo or generated data.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--organisation",
    "organisation_name",
    required=True,
    help="Name or ODS code of an existing organisation.",
)
@click.password_option("--password", help="Prompted for when not given.")
def create_user_command(
    email: str, name: str, role: str, organisation_name: str, password: str
) -> None:
    """Create a user account."""
    organisation = db.session.scalar(
        select(Organisation).where(
            (Organisation.name == organisation_name) | (Organisation.ods_code == organisation_name)
        )
    )
    if organisation is None:
        raise click.BadParameter(
            f"no organisation called {organisation_name!r}", param_hint="--organisation"
        )
    if email_taken(email):
        raise click.BadParameter("an account with this email already exists", param_hint="--email")
    problem = password_problem(password, email=email, name=name)
    if problem:
        raise click.BadParameter(problem, param_hint="--password")
    try:
        user = create_user(None, UserFields(email, name, Role(role), organisation), password)
    except RoleOrganisationMismatch as error:
        raise click.BadParameter(str(error), param_hint="--role") from error
    db.session.commit()
    click.echo(f"Created {user.role.value} {user.email} (id {user.id})")


def responsible_admin(email: str) -> User:
    """The active admin named by `--by`: the person answerable for what a command does, and
    the actor its audit entries record (beside the operating-system user who ran it)."""
    admin = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if admin is None or not admin.active or admin.role is not Role.ADMIN:
        raise click.BadParameter("no active admin has this email", param_hint="--by")
    return admin


def by_option(what: str) -> Any:
    return click.option("--by", "by_email", required=True, metavar="EMAIL", help=what)


def _user_by_email(email: str, *, active: bool = False) -> User:
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None or (active and not user.active):
        qualifier = "active " if active else ""
        raise click.BadParameter(f"no {qualifier}user with this email", param_hint="EMAIL")
    return user


@users_cli.command("token")
@click.argument("email")
@click.option("--name", default="", help="A label for the token, e.g. the system using it.")
@by_option("The email of the admin who asked for the token.")
def token_command(email: str, name: str, by_email: str) -> None:
    """Print a new API token for EMAIL (shown once; only its hash is stored)."""
    asker = responsible_admin(by_email)
    user = _user_by_email(email, active=True)
    token = issue_api_token(asker, user, name)
    db.session.commit()
    click.echo(token)


@users_cli.command("tokens")
@click.argument("email")
def tokens_command(email: str) -> None:
    """List EMAIL's API tokens: id, start of the token, label, made, and whether revoked."""
    tokens = api_tokens_of(_user_by_email(email))
    if not tokens:
        click.echo("No API tokens.")
    for token in tokens:
        status = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "working"
        label = token.name or "-"
        click.echo(
            f"{token.id}\t{token.prefix}…\t{label}\tmade {token.created_at:%Y-%m-%d %H:%M}"
            f"\t{status}"
        )


@users_cli.command("revoke-token")
@click.argument("email")
@click.argument("token_id", type=click.IntRange(min=1))
@by_option("The email of the admin who asked for the revocation.")
def revoke_token_command(email: str, token_id: int, by_email: str) -> None:
    """Revoke EMAIL's API token TOKEN_ID (the id `flask users tokens EMAIL` shows)."""
    asker = responsible_admin(by_email)
    token = api_token_of(_user_by_email(email), token_id)
    if token is None:
        raise click.BadParameter("this person has no token with this id", param_hint="TOKEN_ID")
    if revoke_api_token(asker, token):
        db.session.commit()
        click.echo(f"Revoked token {token.id} ({token.prefix}…)")
    else:
        click.echo(f"Token {token.id} ({token.prefix}…) had already been revoked")


@seed_cli.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has organisations.")
def seed_demo_command(if_empty: bool) -> None:
    """Create the demo scheme and print its logins."""

    if if_empty and db.session.scalar(select(Organisation.id).limit(1)) is not None:
        click.echo("Database already has data; demo seed skipped.")
    else:
        seed_demo()
        db.session.commit()
        click.echo("Demo scheme created.")
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for user in db.session.scalars(
        select(User).where(User.email.like("%@demo.test")).order_by(User.id)
    ):
        click.echo(f"  {user.role.value:<13} {user.email}")


@seed_cli.command("scale")
@click.option("--referrals", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--attendances", type=click.IntRange(min=0), default=1_000_000, show_default=True)
@click.option("--seed", type=int, default=2026, show_default=True, help="Same seed, same data.")
def seed_scale_command(referrals: int, attendances: int, seed: int) -> None:
    """Generate a scheme of REFERRALS referrals and ATTENDANCES attendance records into an
    empty database (see referrals/seeding/scale.py for its shape) and print its logins.

    The arguments are checked before anything is written; each batch is committed as it is
    written, and progress is printed."""

    try:
        check_arguments(referrals, attendances)
    except ScaleArgumentError as error:
        raise click.UsageError(str(error)) from error
    try:
        report = seed_scale(referrals, attendances, seed=seed, progress=click.echo)
    except DatabaseNotEmpty as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    width = max(len(name) for name in report.counts)
    for name, rows in sorted(report.counts.items()):
        click.echo(f"  {name:<{width}} {rows:>10,}")
    click.echo(f"Generated in {report.seconds:.1f} s.")
    click.echo(f"Sign in as (password for all: {DEMO_PASSWORD}):")
    for role, email in report.sign_ins.items():
        click.echo(f"  {role:<13} {email}")


kpi_cli = AppGroup("kpi", help="Make and export monthly KPI returns.")
scheduler_cli = AppGroup("scheduler", help="The scheduled-jobs process.")


def _period(value: str) -> Any:

    try:
        return Period.parse(value)
    except InvalidPeriod as error:
        raise click.BadParameter(str(error), param_hint="--period") from error


@kpi_cli.command("generate")
@click.option("--period", "period_text", required=True, help="The month, as YYYY-MM.")
@click.option(
    "--contract",
    "contract_id",
    type=int,
    help="One contract; default every contract active in the month.",
)
@click.option("--all-activity", is_flag=True, help="Also make the all-activity return.")
def kpi_generate(period_text: str, contract_id: int | None, all_activity: bool) -> None:
    """Make the month's returns (idempotent: existing returns are left as they are)."""

    period = _period(period_text)
    targets: list[int | None]
    if contract_id is not None:
        targets = [contract_id]
    else:
        targets = [c.id for c in contracts_active_in(period)]
    if all_activity:
        targets.append(None)
    if not targets:
        click.echo(f"No contracts were active in {period.label}.")
        return
    with click.progressbar(
        targets,
        label=f"Returns for {period.label}",
        item_show_func=lambda t: None if t is None else f"contract {t}",
    ) as bar:
        results = []
        for target in bar:
            try:
                results.append(make_return(target, period, today=clock.today(), job="cli"))
            except InvalidPeriod as error:
                raise click.BadParameter(str(error), param_hint="--period") from error
            except ReturnRefused as error:
                raise click.BadParameter(str(error), param_hint="--contract") from error
    for made in results:
        state = "made" if made.created else "already existed"
        click.echo(
            f"Return {made.kpi_return.id} ({made.kpi_return.scope_key}, "
            f"{made.kpi_return.period}, version {made.kpi_return.version}) {state}"
        )


@kpi_cli.command("regenerate")
@click.option("--period", "period_text", required=True)
@click.option("--contract", "contract_id", type=int, required=True)
@click.option("--reason", required=True, help="Why the return is being remade (kept with it).")
@by_option("The email of the admin who asked; the return and the audit log record them.")
def kpi_regenerate(period_text: str, contract_id: int, reason: str, by_email: str) -> None:
    """Make a new version of a return; the old one is kept, marked superseded."""

    period = _period(period_text)
    asker = responsible_admin(by_email)
    try:
        made = regenerate_return(asker, contract_id, period, reason, today=clock.today())
    except InvalidPeriod as error:
        raise click.BadParameter(str(error), param_hint="--period") from error
    except ReturnRefused as error:
        raise click.BadParameter(str(error), param_hint=f"--{error.field or 'contract'}") from error
    click.echo(f"Return {made.id} is version {made.version} for {made.period}")


@kpi_cli.command("export")
@click.option("--return", "return_id", type=int, required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "pdf"]), required=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), required=True)
def kpi_export(return_id: int, fmt: str, output: str) -> None:
    """Write a return as CSV or PDF, as commissioners download it."""

    kpi_return = db.session.get(KpiReturn, return_id)
    if kpi_return is None:
        raise click.BadParameter("no return with this id", param_hint="--return")
    content, _filename, _mimetype = export_return(kpi_return, fmt)
    with open(output, "wb") as handle:
        handle.write(content)
    click.echo(f"Wrote {len(content)} bytes to {output}")


def _report_run(run: Any) -> None:
    """Print how a run ended; a failed run exits with status 1 (it is retried by the
    scheduler)."""
    click.echo(f"{run.job_id} for {run.period_key}: {run.outcome}, {run.detail}")
    if run.error:
        click.echo(run.error, err=True)
    if run.outcome == "failed":
        raise SystemExit(1)


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the scheduler in the foreground (its own process; one or more per deployment)."""
    click.echo("Scheduler started. Jobs: " + "; ".join(job.description for job in JOBS) + ".")
    run_forever(current_app._get_current_object())  # type: ignore[attr-defined]


_TODAY_OPTION = click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Do the work of this day (YYYY-MM-DD) instead of today in London, e.g. a day the "
    "scheduler missed. Claimed and recorded like that day's scheduled run.",
)


@scheduler_cli.command("catch-up")
@_TODAY_OPTION
def scheduler_catch_up(today: datetime | None) -> None:
    """Make every missing return for finished months now, then stop."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _report_run(execute(app, MONTHLY_RETURNS, today.date() if today else None))


@scheduler_cli.command("run-job")
@click.argument("job_id")
@_TODAY_OPTION
def scheduler_run_job(job_id: str, today: datetime | None) -> None:
    """Run one job now (for operators), recorded like a scheduled run."""
    if job_id not in JOBS_BY_ID:
        raise click.BadParameter(f"choose one of {', '.join(JOBS_BY_ID)}", param_hint="JOB_ID")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _report_run(execute(app, job_id, today.date() if today else None))


@scheduler_cli.command("jobs")
def scheduler_jobs() -> None:
    """List the jobs and their recent runs."""

    for job in JOBS:
        click.echo(f"{job.id}: {job.description} ({job.cron})")
    for run in recent_runs(10):
        click.echo(
            f"  {run.started_at:%Y-%m-%d %H:%M} {run.job_id} {run.period_key} "
            f"{run.outcome} {run.detail or run.error}"
        )


backup_cli = AppGroup("backup", help="Online backups of the database, and restores.")
retention_cli = AppGroup("retention", help="Pseudonymise or erase people's records.")


def _report(report: Any) -> None:
    click.echo(f"Integrity check: {report.integrity}")
    width = max((len(name) for name in report.counts), default=0)
    for name, rows in report.counts.items():
        click.echo(f"  {name:<{width}} {rows:>9}")
    click.echo(f"  {'total':<{width}} {report.total_rows:>9}")


@backup_cli.command("create")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="The backup file to write (readable by its owner only).",
)
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@by_option("The email of the admin answerable for the copy (a whole-database export).")
def backup_create(output: Path, force: bool, by_email: str) -> None:
    """Back up the database while the service runs, check the copy and count its rows."""

    asker = responsible_admin(by_email)
    try:
        report = create_backup(output, force=force, actor=asker)
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Backup written to {report.path}")
    _report(report)


@backup_cli.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite a database that already holds data.")
@by_option("The email of the admin answerable for the restore (recorded with it).")
def backup_restore(file: Path, force: bool, by_email: str) -> None:
    """Restore FILE into the configured database (which must be empty), then check it."""

    try:
        report = restore_backup(file, force=force, by=by_email)
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Restored {file}; every table holds the rows the backup holds")
    if report.upgraded:
        click.echo("The restored database was upgraded to this version's migration revision")
    click.echo(
        f"Erasures made since the backup, re-applied: {len(report.reapplied)}"
        + (f" ({', '.join(f'P{i}' for i in report.reapplied)})" if report.reapplied else "")
    )
    _report(report)


@retention_cli.command("due")
def retention_due() -> None:
    """List the people the retention job would pseudonymise today (by id), changing nothing."""
    years = int(current_app.config["RETENTION_YEARS"])
    ids = db.session.scalars(
        expired_patients(clock.today(), years).with_only_columns(Patient.id)
    ).all()
    click.echo(f"{len(ids)} people are past the retention period ({years} years, or age 25)")
    for patient_id in ids:
        click.echo(f"  P{patient_id}")


@retention_cli.command("run")
def retention_run() -> None:
    """Run the retention job now, recorded like a scheduled run."""
    _report_run(execute(current_app._get_current_object(), RETENTION))  # type: ignore[attr-defined]


@retention_cli.command("person")
@click.argument("patient_id", type=int)
@click.option("--erase", is_flag=True, help="Erase rather than pseudonymise.")
@click.option("--reason", required=True, help="Why, e.g. the request's date and reference.")
@by_option("The email of the admin answerable for the request.")
def retention_person(patient_id: int, erase: bool, reason: str, by_email: str) -> None:
    """Pseudonymise (or with --erase, erase) one person's record on request."""

    asker = responsible_admin(by_email)
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        raise click.BadParameter("no person with this id", param_hint="PATIENT_ID")
    try:
        (erase_and_remember if erase else pseudonymise_patient)(asker, patient, reason)
    except ReasonRequired as error:
        raise click.BadParameter(str(error), param_hint="--reason") from error
    db.session.commit()
    click.echo(f"P{patient_id} {'erased' if erase else 'pseudonymised'}")


@retention_cli.command("reapply-erasures")
@by_option("The email of the admin answerable for erasing again.")
def retention_reapply_erasures(by_email: str) -> None:
    """Erase again everyone in the erasure ledger whom the database holds unerased (a restore
    does this itself; for a database put back by other means)."""

    asker = responsible_admin(by_email)
    done = reapply_erasures(asker)
    record(asker, "erasures.reapplied", object_type="erasure_ledger", **done.as_detail())
    db.session.commit()
    click.echo(
        f"{len(done.erased)} erased again, {done.already} already erased, "
        f"{done.absent} not in this database (ledger: {ledger_path()})"
    )


places_cli = AppGroup("places", help="Postcodes to places: coordinates and districts.")


@places_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def places_load_command(path: Path) -> None:
    """Replace the postcodes with those of an ONS postcode directory CSV file (or one with the
    same columns: pcds, lat, long, and doterm for terminated postcodes)."""

    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            result = load_places(stream)
    except PlacesFileRefused as refused:
        db.session.rollback()
        raise click.ClickException(f"Nothing loaded: {refused}") from refused
    db.session.commit()
    click.echo(f"{result.loaded} postcodes loaded, {result.skipped} skipped")


notifications_cli = AppGroup("notifications", help="Outbound email and text messages.")


@notifications_cli.command("send")
def notifications_send() -> None:
    """Queue what the clock has made due and send every message due now (as the scheduler
    does every five minutes); safe beside running schedulers."""

    click.echo(f"Back-end: {backend_name() or 'none (in-app messages only)'}")
    click.echo(deliver_due(clock.today()))


@notifications_cli.command("preview")
@click.argument("kind")
def notifications_preview(kind: str) -> None:
    """Show a kind of message filled in with example details."""

    if kind not in KINDS:
        raise click.BadParameter(f"choose one of {', '.join(KINDS)}", param_hint="KIND")
    wording = preview(kind)
    click.echo(f"Subject: {wording.subject}\n\n{wording.email}")
    if wording.sms is not None:
        click.echo(f"\nText message:\n{wording.sms}")


def init_app(app: Flask) -> None:
    app.cli.add_command(places_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(seed_cli)
    app.cli.add_command(kpi_cli)
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(backup_cli)
    app.cli.add_command(retention_cli)
    app.cli.add_command(notifications_cli)


def command_line() -> click.Group:
    """The `referrals` command: Flask's CLI for this service, `flask db` included.

    An installed console script rather than `flask` with `FLASK_APP` or a `.flaskenv`: it works
    from any directory (systemd units, containers, cron) with no variable or dotenv file to
    forget, and names the service it runs.
    """
    return FlaskGroup(
        name="referrals",
        create_app=create_app,
        help="Arts on Prescription: accounts, data, KPI returns, the scheduler, backups.",
    )


def main() -> None:
    command_line().main(prog_name="referrals")
