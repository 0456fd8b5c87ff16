"""Command line: users, tokens and the demo scheme."""

from __future__ import annotations

from sqlalchemy import func, select

from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.extensions import db
from referrals.seeding.demo import DEMO_PASSWORD
from tests import factories
from tests.conftest import sign_in


def test_users_create_and_token(runner, app):
    practice = factories.make_organisation("gp_practice", ods_code="L99001")
    db.session.commit()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "New.GP@Example.org",
            "--name",
            "Dr New",
            "--role",
            "referrer",
            "--organisation",
            "L99001",
            "--password",
            "slow rivers run deep",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "new.gp@example.org"))
    assert user.organisation_id == practice.id

    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    token = runner.invoke(
        args=["users", "token", "new.gp@example.org", "--by", admin.email]
    ).output.strip()
    assert token.startswith("aop_")
    response = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.get_json()["email"] == "new.gp@example.org"


def test_users_create_refuses_bad_input_and_stores_nothing(runner, app):
    factories.make_organisation("provider", name="Riverside Arts")
    db.session.commit()
    base = ["users", "create", "--email", "a@example.org", "--name", "A"]
    wrong_role = runner.invoke(
        args=[
            *base,
            "--role",
            "referrer",
            "--organisation",
            "Riverside Arts",
            "--password",
            "slow rivers run deep",
        ]
    )
    assert wrong_role.exit_code != 0 and "must belong to a GP practice" in wrong_role.output
    weak = runner.invoke(
        args=[
            *base,
            "--role",
            "artist",
            "--organisation",
            "Riverside Arts",
            "--password",
            "password1234",
        ]
    )
    assert weak.exit_code != 0 and "too common" in weak.output
    unknown = runner.invoke(
        args=[
            *base,
            "--role",
            "artist",
            "--organisation",
            "Nowhere",
            "--password",
            "slow rivers run deep",
        ]
    )
    assert unknown.exit_code != 0
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_demo_seed_creates_the_scheme_and_every_account_signs_in(runner, app):
    result = runner.invoke(args=["seed", "demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert "admin@demo.test" in result.output and DEMO_PASSWORD in result.output
    kinds = dict(
        db.session.execute(
            select(Organisation.kind, func.count()).group_by(Organisation.kind)
        ).all()
    )
    assert kinds == {
        OrganisationKind.COMMISSIONER: 2,
        OrganisationKind.GP_PRACTICE: 6,
        OrganisationKind.LINK_WORKER_SERVICE: 1,
        OrganisationKind.PROVIDER: 4,
    }
    for email, heading in [
        ("admin@demo.test", "Scheme overview"),
        ("gp@demo.test", "Your practice"),
        ("linkworker@demo.test", "Your caseload"),
        ("artist@demo.test", "Your sessions"),
        ("commissioner@demo.test", "Your contracts"),
    ]:
        client = app.test_client()
        assert sign_in(client, email, DEMO_PASSWORD).status_code == 302, email
        assert heading in client.get("/").get_data(as_text=True), email
    again = runner.invoke(args=["seed", "demo", "--if-empty"])
    assert "skipped" in again.output
    assert db.session.scalar(select(func.count()).select_from(User)) == len(
        {u for u in db.session.scalars(select(User.email))}
    )
    assert {u.role for u in db.session.scalars(select(User))} == set(Role)
