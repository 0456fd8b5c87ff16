"""Command groups. Each calls the same services the pages call, then commits once."""

from __future__ import annotations

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


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(seed_cli)
