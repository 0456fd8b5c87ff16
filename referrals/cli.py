"""Command groups. Each calls the same services the pages call, then commits once."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from referrals.auth.models import Organisation, Role, User
from referrals.auth.passwords import password_problem
from referrals.auth.services import (
    RoleOrganisationMismatch,
    UserFields,
    create_user,
    email_taken,
    issue_api_token,
    normalise_email,
)
from referrals.extensions import db

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


@users_cli.command("token")
@click.argument("email")
@click.option("--name", default="", help="A label for the token, e.g. the system using it.")
def token_command(email: str, name: str) -> None:
    """Print a new API token for EMAIL (shown once; only its hash is stored)."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None or not user.active:
        raise click.BadParameter("no active user with this email", param_hint="EMAIL")
    token = issue_api_token(None, user, name)
    db.session.commit()
    click.echo(token)


@seed_cli.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has organisations.")
def seed_demo_command(if_empty: bool) -> None:
    """Create the demo scheme and print its logins."""
    from referrals.seed import DEMO_PASSWORD, seed_demo

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


kpi_cli = AppGroup("kpi", help="Make and export monthly KPI returns.")
scheduler_cli = AppGroup("scheduler", help="The scheduled-jobs process.")


def _period(value: str) -> Any:
    from referrals.reports.periods import InvalidPeriod, Period

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
    from referrals.reports.periods import InvalidPeriod
    from referrals.reports.services import ReturnRefused, contracts_active_in, make_return
    from referrals.scheduler.jobs import today_in_london

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
                results.append(make_return(target, period, today=today_in_london(), job="cli"))
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
def kpi_regenerate(period_text: str, contract_id: int, reason: str) -> None:
    """Make a new version of a return; the old one is kept, marked superseded."""
    from referrals.reports.periods import InvalidPeriod
    from referrals.reports.services import ReturnRefused, regenerate_return
    from referrals.scheduler.jobs import today_in_london

    period = _period(period_text)
    try:
        made = regenerate_return(None, contract_id, period, reason, today=today_in_london())
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
    from referrals.reports.exporting import export_return
    from referrals.reports.models import KpiReturn

    kpi_return = db.session.get(KpiReturn, return_id)
    if kpi_return is None:
        raise click.BadParameter("no return with this id", param_hint="--return")
    content, _filename, _mimetype = export_return(kpi_return, fmt)
    with open(output, "wb") as handle:
        handle.write(content)
    click.echo(f"Wrote {len(content)} bytes to {output}")


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the scheduler in the foreground (its own process; one or more per deployment)."""
    from flask import current_app

    from referrals.scheduler.runner import run_forever

    click.echo("Scheduler started. Jobs: monthly KPI returns, weekly register reminders.")
    run_forever(current_app._get_current_object())  # type: ignore[attr-defined]


@scheduler_cli.command("catch-up")
def scheduler_catch_up() -> None:
    """Make every missing return for finished months now, then stop."""
    from flask import current_app

    from referrals.scheduler.jobs import MONTHLY_RETURNS, execute

    run = execute(current_app._get_current_object(), MONTHLY_RETURNS)  # type: ignore[attr-defined]
    click.echo(f"{run.job_id} for {run.period_key}: {run.outcome}, {run.detail}")


@scheduler_cli.command("run-job")
@click.argument("job_id")
def scheduler_run_job(job_id: str) -> None:
    """Run one job now (for operators), recorded like a scheduled run."""
    from flask import current_app

    from referrals.scheduler.jobs import JOBS_BY_ID, execute

    if job_id not in JOBS_BY_ID:
        raise click.BadParameter(f"choose one of {', '.join(JOBS_BY_ID)}", param_hint="JOB_ID")
    run = execute(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]
    click.echo(f"{run.job_id} for {run.period_key}: {run.outcome}, {run.detail}")


@scheduler_cli.command("jobs")
def scheduler_jobs() -> None:
    """List the jobs and their recent runs."""
    from referrals.scheduler.jobs import JOBS, recent_runs

    for job in JOBS:
        click.echo(f"{job.id}: {job.description} ({job.cron})")
    for run in recent_runs(10):
        click.echo(
            f"  {run.started_at:%Y-%m-%d %H:%M} {run.job_id} {run.period_key} "
            f"{run.outcome} {run.detail or run.error}"
        )


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(seed_cli)
    app.cli.add_command(kpi_cli)
    app.cli.add_command(scheduler_cli)
