"""Admin area: organisations, users, passwords and the audit log, admins only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, OrganisationKind, Role, User, UserSession
from referrals.extensions import db
from tests import factories
from tests.conftest import TEST_PASSWORD, csrf_token, sign_in, submit
from tests.intake_helpers import make_referral
from tests.pages import (
    assert_field_error,
    assert_labelled_without_inline_code,
    audit_events,
    count,
)
from tests.query_counts import queries_for

NEW_PASSWORD = "harbour lights at dusk"
NON_ADMIN_ROLES = [Role.REFERRER, Role.LINK_WORKER, Role.ARTIST, Role.COMMISSIONER]


def user_form(user: User, **changes: Any) -> dict[str, Any]:
    """The edit form as the browser would post it, with `changes` applied (None drops a field)."""
    data: dict[str, Any] = {
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "organisation": str(user.organisation_id),
        "active": "y" if user.active else None,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


# Organisations -------------------------------------------------------------------------------


def test_admin_lists_organisations_and_filters_by_kind(admin: Any) -> None:
    factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Abbey Road Surgery")
    factories.make_organisation(OrganisationKind.PROVIDER, name="Riverside Arts", active=False)
    page = admin.get("/admin/organisations").get_data(as_text=True)
    assert "Abbey Road Surgery" in page and "Riverside Arts" in page
    assert '<strong class="nhsuk-tag nhsuk-tag--grey">Inactive</strong>' in page
    filtered = admin.get("/admin/organisations?kind=provider").get_data(as_text=True)
    assert "Riverside Arts" in filtered and "Abbey Road Surgery" not in filtered
    assert admin.get("/admin/organisations?kind=nonsense&page=-3").status_code == 200


def test_admin_adds_an_organisation(admin: Any) -> None:
    response = submit(
        admin,
        "/admin/organisations/new",
        {"name": "  Canal Side Practice ", "kind": "gp_practice", "ods_code": " m85001 "},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/organisations"
    organisation = db.session.scalar(
        select(Organisation).where(Organisation.name == "Canal Side Practice")
    )
    assert organisation is not None
    assert organisation.kind is OrganisationKind.GP_PRACTICE
    assert organisation.ods_code == "M85001"
    created = audit_events("organisation.created", organisation.id)
    assert created and created[0].actor_id == admin.user.id
    assert "Canal Side Practice has been added" in admin.get("/admin/organisations").get_data(
        as_text=True
    )


def test_an_ods_code_is_optional_except_for_gp_practices(admin: Any) -> None:
    for name, kind, code in (
        ("Severnvale ICB", "commissioner", "15n"),
        ("Moving Minds Dance", "provider", ""),
    ):
        response = submit(
            admin, "/admin/organisations/new", {"name": name, "kind": kind, "ods_code": code}
        )
        assert response.status_code == 302, name
    assert (
        db.session.scalar(
            select(Organisation.ods_code).where(Organisation.name == "Severnvale ICB")
        )
        == "15N"
    )
    assert (
        db.session.scalar(
            select(Organisation.ods_code).where(Organisation.name == "Moving Minds Dance")
        )
        is None
    )


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "kind": "provider"}, "name", "Enter the organisation&#39;s name"),
        ({"name": "x" * 201, "kind": "provider"}, "name", "Name must be 200 characters or fewer"),
        (
            {"name": "EXISTING ARTS", "kind": "provider"},
            "name",
            "An organisation with this name already exists",
        ),
        ({"name": "New place"}, "kind", "Select the type of organisation"),
        ({"name": "New place", "kind": "hospital"}, "kind", "Select the type of organisation"),
        (
            {"name": "New place", "kind": "gp_practice", "ods_code": ""},
            "ods_code",
            "Enter the GP practice&#39;s ODS code",
        ),
        (
            {"name": "New place", "kind": "gp_practice", "ods_code": "15N"},
            "ods_code",
            "a letter and 5 numbers, like L84001",
        ),
        (
            {"name": "New place", "kind": "gp_practice", "ods_code": "L8400"},
            "ods_code",
            "a letter and 5 numbers, like L84001",
        ),
        (
            {"name": "New place", "kind": "provider", "ods_code": "NOT-A-CODE"},
            "ods_code",
            "or 3 letters or numbers, like 15N",
        ),
        (
            {"name": "New place", "kind": "gp_practice", "ods_code": "z99999"},
            "ods_code",
            "Another organisation already has this ODS code",
        ),
    ],
)
def test_bad_organisation_input_is_shown_at_the_field_and_nothing_is_stored(
    admin: Any, data: dict[str, str], field: str, message: str
) -> None:
    factories.make_organisation(OrganisationKind.PROVIDER, name="Existing Arts")
    factories.make_organisation(OrganisationKind.GP_PRACTICE, ods_code="Z99999")
    before = count(Organisation)
    response = submit(admin, "/admin/organisations/new", data)
    page = assert_field_error(response, field, message)
    assert count(Organisation) == before
    if data["name"] and len(data["name"]) < 50:
        assert f'value="{data["name"]}"' in page  # the rest of the input is kept


def test_admin_edits_and_deactivates_an_organisation(admin: Any, login_as: Any) -> None:
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    member = login_as(factories.make_user(Role.REFERRER, organisation=practice))
    assert member.get("/").status_code == 200
    url = f"/admin/organisations/{practice.id}/edit"
    assert f'value="{practice.name}"' in admin.get(url).get_data(as_text=True)

    renamed = submit(
        admin,
        url,
        {
            "name": "Renamed Surgery",
            "kind": "gp_practice",
            "ods_code": practice.ods_code,
            "active": "y",
        },
    )
    assert renamed.status_code == 302
    db.session.refresh(practice)
    assert practice.name == "Renamed Surgery" and practice.active
    assert audit_events("organisation.updated", practice.id)
    assert member.get("/").status_code == 200

    deactivated = submit(
        admin,
        url,
        {"name": "Renamed Surgery", "kind": "gp_practice", "ods_code": practice.ods_code},
    )
    assert deactivated.status_code == 302
    db.session.refresh(practice)
    assert not practice.active
    assert member.get("/").status_code == 302  # its users are signed out


def test_editing_keeps_the_same_name_and_code_but_refuses_another_organisations(
    admin: Any,
) -> None:
    mine = factories.make_organisation(OrganisationKind.GP_PRACTICE, ods_code="A11111")
    other = factories.make_organisation(OrganisationKind.GP_PRACTICE, ods_code="B22222")
    url = f"/admin/organisations/{mine.id}/edit"
    same = submit(
        admin,
        url,
        {"name": mine.name.upper(), "kind": "gp_practice", "ods_code": "a11111", "active": "y"},
    )
    assert same.status_code == 302
    clash = submit(
        admin, url, {"name": other.name, "kind": "gp_practice", "ods_code": "B22222", "active": "y"}
    )
    page = assert_field_error(clash, "name", "An organisation with this name already exists")
    assert "Another organisation already has this ODS code" in page
    db.session.refresh(mine)
    assert mine.ods_code == "A11111"


def test_an_organisation_cannot_change_to_a_type_its_users_cannot_belong_to(admin: Any) -> None:
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    factories.make_user(Role.REFERRER, organisation=practice)
    response = submit(
        admin,
        f"/admin/organisations/{practice.id}/edit",
        {"name": practice.name, "kind": "provider", "ods_code": "", "active": "y"},
    )
    assert_field_error(response, "kind", "This organisation has referrer accounts")
    db.session.refresh(practice)
    assert practice.kind is OrganisationKind.GP_PRACTICE


def test_an_admin_cannot_deactivate_their_own_organisation(admin: Any) -> None:
    own = admin.user.organisation
    response = submit(
        admin,
        f"/admin/organisations/{own.id}/edit",
        {"name": own.name, "kind": own.kind.value, "ods_code": own.ods_code or ""},
    )
    assert_field_error(response, "active", "You cannot deactivate your own organisation")
    db.session.refresh(own)
    assert own.active
    assert admin.get("/admin/organisations").status_code == 200


# Users ---------------------------------------------------------------------------------------


def test_admin_lists_users_and_filters_by_role_organisation_and_search(admin: Any) -> None:
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Abbey Road Surgery")
    factories.make_user(
        Role.REFERRER, organisation=practice, name="Dr Priya Shah", email="priya.shah@nhs.net"
    )
    factories.make_user(Role.ARTIST, name="Maria Lopez", email="maria@riverside.org", active=False)
    page = admin.get("/admin/users").get_data(as_text=True)
    for text in (
        "Dr Priya Shah",
        "priya.shah@nhs.net",
        "Referrer",
        "Abbey Road Surgery",
        "Maria Lopez",
        '<strong class="nhsuk-tag nhsuk-tag--grey">Inactive</strong>',
    ):
        assert text in page

    def names(query: str) -> set[str]:
        body = admin.get("/admin/users?" + query).get_data(as_text=True)
        return {n for n in ("Dr Priya Shah", "Maria Lopez") if n in body}

    assert names("role=artist") == {"Maria Lopez"}
    assert names(f"organisation={practice.id}") == {"Dr Priya Shah"}
    assert names("q=PRIYA") == {"Dr Priya Shah"}
    assert names("q=riverside.org") == {"Maria Lopez"}
    assert names("q=%25") == set()  # a LIKE wildcard is searched for literally
    assert names("role=bogus&organisation=abc&page=x") == {"Dr Priya Shah", "Maria Lopez"}


def test_admin_creates_a_user_who_can_then_sign_in(admin: Any, app: Flask) -> None:
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    response = submit(
        admin,
        "/admin/users/new",
        {
            "name": "Dev Patel",
            "email": "Dev.Patel@Riverside.org",
            "role": "artist",
            "organisation": str(provider.id),
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users"
    user = db.session.scalar(select(User).where(User.email == "dev.patel@riverside.org"))
    assert user is not None
    assert (user.name, user.role, user.organisation_id, user.active) == (
        "Dev Patel",
        Role.ARTIST,
        provider.id,
        True,
    )
    created = audit_events("user.created", user.id)
    assert created and created[0].actor_id == admin.user.id
    assert sign_in(app.test_client(), "dev.patel@riverside.org", NEW_PASSWORD).status_code == 302


def _new_user_data(organisation: Organisation, /, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "Jo Bennett",
        "email": "jo.bennett@nhs.net",
        "role": "link_worker",
        "organisation": str(organisation.id),
        "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"email": "TAKEN@nhs.net"}, "email", "An account with this email address already exists"),
        ({"name": "J" * 121}, "name", "Name must be 120 characters or fewer"),
        ({"email": "jo.bennett@"}, "email", "Enter an email address in the correct format"),
        ({"email": "jo bennett nhs.net"}, "email", "Enter an email address in the correct format"),
        ({"email": "a" * 250 + "@nhs.net"}, "email", "Email address must be 254 characters"),
        ({"name": "   "}, "name", "Enter the person&#39;s full name"),
        ({"email": None}, "email", "Enter the person&#39;s email address"),
        ({"role": None}, "role", "Select a role"),
        ({"role": "superuser"}, "role", "Select a role"),
        ({"organisation": ""}, "organisation", "Select an organisation"),
        ({"organisation": "99999"}, "organisation", "Select an organisation from the list"),
        ({"role": "referrer"}, "organisation", "A referrer must belong to a GP practice"),
        (
            {"new_password": "password1234", "confirm_password": "password1234"},
            "new_password",
            "This password is too common",
        ),
        (
            {"new_password": "short", "confirm_password": "short"},
            "new_password",
            "Password must be at least 12 characters",
        ),
        ({"new_password": ""}, "new_password", "Enter an initial password"),
        (
            {"confirm_password": "something else entirely"},
            "confirm_password",
            "The passwords do not match",
        ),
    ],
)
def test_bad_user_input_is_shown_at_the_field_and_nothing_is_stored(
    admin: Any, changes: dict[str, Any], field: str, message: str
) -> None:
    service = factories.make_organisation(OrganisationKind.LINK_WORKER_SERVICE)
    factories.make_user(Role.LINK_WORKER, organisation=service, email="taken@nhs.net")
    before = count(User)
    response = submit(admin, "/admin/users/new", _new_user_data(service, **changes))
    page = assert_field_error(response, field, message)
    assert count(User) == before
    assert (
        count(AuditEvent, AuditEvent.action == "user.created", AuditEvent.actor_id == admin.user.id)
        == 0
    )
    if field != "name":
        assert 'value="Jo Bennett"' in page  # the rest of the input is kept
    assert NEW_PASSWORD not in page  # passwords are never echoed back


def test_an_inactive_organisation_cannot_be_chosen_for_a_new_user(admin: Any) -> None:
    closed = factories.make_organisation(OrganisationKind.LINK_WORKER_SERVICE, active=False)
    assert closed.name not in admin.get("/admin/users/new").get_data(as_text=True)
    response = submit(admin, "/admin/users/new", _new_user_data(closed))
    assert_field_error(response, "organisation", "Select an organisation from the list")


def test_admin_edits_a_user_and_a_new_role_ends_their_sessions(admin: Any, login_as: Any) -> None:
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    member = login_as(factories.make_user(Role.ARTIST))
    user = member.user
    url = f"/admin/users/{user.id}/edit"
    form_page = admin.get(url).get_data(as_text=True)
    assert f'value="{user.email}"' in form_page

    renamed = submit(admin, url, user_form(user, name="Maria Lopez-Grant"))
    assert renamed.status_code == 302
    assert member.get("/").status_code == 200  # a new name changes nothing they may see

    moved = submit(admin, url, user_form(user, role="referrer", organisation=str(practice.id)))
    assert moved.status_code == 302
    db.session.refresh(user)
    assert (user.name, user.role, user.organisation_id) == (
        "Maria Lopez-Grant",
        Role.REFERRER,
        practice.id,
    )
    assert member.get("/").status_code == 302
    updated = audit_events("user.updated", user.id)
    assert len(updated) == 2 and all(e.actor_id == admin.user.id for e in updated)


def test_bad_edits_to_a_user_are_refused_at_the_field(admin: Any) -> None:
    factories.make_user(Role.ARTIST, email="someone.else@riverside.org")
    user = factories.make_user(Role.ARTIST)
    url = f"/admin/users/{user.id}/edit"
    response = submit(
        admin, url, user_form(user, email="Someone.Else@riverside.org", name="Changed Name")
    )
    page = assert_field_error(
        response, "email", "An account with this email address already exists"
    )
    assert 'value="Changed Name"' in page
    response = submit(admin, url, user_form(user, role="commissioner"))
    assert_field_error(response, "organisation", "A commissioner must belong to a Commissioner")
    db.session.refresh(user)
    assert user.name.startswith("Test Artist") and user.role is Role.ARTIST
    assert not audit_events("user.updated", user.id)


def test_unticking_active_deactivates_the_user_and_ends_their_session(
    admin: Any, login_as: Any
) -> None:
    member = login_as(Role.LINK_WORKER)
    assert member.get("/").status_code == 200
    response = submit(
        admin, f"/admin/users/{member.user.id}/edit", user_form(member.user, active=None)
    )
    assert response.status_code == 302
    db.session.refresh(member.user)
    assert not member.user.active
    home = member.get("/")
    assert home.status_code == 302 and "/sign-in" in home.headers["Location"]
    assert audit_events("user.deactivated", member.user.id)

    reactivated = submit(
        admin, f"/admin/users/{member.user.id}/edit", user_form(member.user, active="y")
    )
    assert reactivated.status_code == 302
    db.session.refresh(member.user)
    assert member.user.active


def test_the_deactivate_button_asks_first_then_ends_their_session(
    admin: Any, login_as: Any
) -> None:
    member = login_as(Role.COMMISSIONER)
    url = f"/admin/users/{member.user.id}/deactivate"
    confirm = admin.get(url)
    assert "Deactivate this account?" in confirm.get_data(as_text=True)
    assert member.get("/").status_code == 200  # looking at the question changes nothing
    response = submit(admin, url, {})
    assert response.status_code == 302
    db.session.refresh(member.user)
    assert not member.user.active
    assert member.get("/").status_code == 302
    again = admin.get(url)
    assert again.status_code == 302  # already inactive: back to the account


def test_deactivating_without_a_csrf_token_is_refused(admin: Any) -> None:
    user = factories.make_user(Role.ARTIST)
    db.session.commit()
    assert admin.post(f"/admin/users/{user.id}/deactivate").status_code == 400
    db.session.refresh(user)
    assert user.active


def test_an_admin_cannot_deactivate_themselves_or_drop_their_admin_role(admin: Any) -> None:
    me = admin.user
    url = f"/admin/users/{me.id}/edit"
    response = submit(admin, url, user_form(me, active=None))
    assert_field_error(response, "active", "You cannot deactivate your own account")
    response = submit(admin, url, user_form(me, role="link_worker"))
    assert_field_error(response, "role", "You cannot remove your own admin role")
    response = submit(admin, f"/admin/users/{me.id}/deactivate", {})
    assert response.status_code == 200
    assert "You cannot deactivate your own account" in response.get_data(as_text=True)
    db.session.refresh(me)
    assert me.active and me.role is Role.ADMIN
    assert admin.get("/admin/users").status_code == 200


def test_another_admin_can_be_changed(admin: Any) -> None:
    other = factories.make_user(Role.ADMIN)
    response = submit(
        admin, f"/admin/users/{other.id}/edit", user_form(other, role="link_worker", active=None)
    )
    assert response.status_code == 302
    db.session.refresh(other)
    assert other.role is Role.LINK_WORKER and not other.active


def test_admin_resets_a_password_which_ends_their_sessions(
    admin: Any, login_as: Any, app: Flask
) -> None:
    member = login_as(Role.REFERRER)
    url = f"/admin/users/{member.user.id}/password"
    weak = submit(
        admin, url, {"new_password": "Sunshine2024!!", "confirm_password": "Sunshine2024!!"}
    )
    assert_field_error(weak, "new_password", "This password is too easy to guess")
    mismatch = submit(admin, url, {"new_password": NEW_PASSWORD, "confirm_password": "other"})
    assert_field_error(mismatch, "confirm_password", "The passwords do not match")
    assert member.get("/").status_code == 200

    response = submit(admin, url, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert response.status_code == 302
    assert member.get("/").status_code == 302
    assert (
        count(UserSession, UserSession.user_id == member.user.id, UserSession.revoked_at.is_(None))
        == 0
    )
    assert audit_events("user.password_changed", member.user.id)[0].actor_id == admin.user.id
    email = member.user.email
    assert sign_in(app.test_client(), email, TEST_PASSWORD).status_code == 200
    assert sign_in(app.test_client(), email, NEW_PASSWORD).status_code == 302


def test_an_admin_changes_their_own_password_on_the_account_page(admin: Any) -> None:
    response = admin.get(f"/admin/users/{admin.user.id}/password")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/password"


def test_empty_and_malformed_posts_get_field_messages_never_a_500(admin: Any) -> None:
    user = factories.make_user(Role.ARTIST)
    db.session.commit()
    forms = (
        "/admin/organisations/new",
        f"/admin/organisations/{user.organisation_id}/edit",
        "/admin/users/new",
        f"/admin/users/{user.id}/edit",
        f"/admin/users/{user.id}/password",
    )
    junk = {
        "name": "\x00" * 3,
        "kind": ["a", "b"],
        "organisation": "-1",
        "role": "1e9",
        "email": "@" * 300,
        "ods_code": "\u202e" * 20,
        "active": "maybe",
    }
    for url in forms:
        for data in ({}, junk):
            response = submit(admin, url, data)
            assert response.status_code == 200, (url, data)
            assert "There is a problem" in response.get_data(as_text=True), (url, data)


def test_a_name_with_control_characters_is_refused(admin: Any) -> None:
    response = submit(
        admin, "/admin/organisations/new", {"name": "Arts\x00Hub", "kind": "provider"}
    )
    assert_field_error(response, "name", "Name must not contain control characters")
    assert count(Organisation, Organisation.name.contains("Hub")) == 0
    user_data = {"name": "Jo\x00", "email": "jo\x00@nhs.net", "role": "admin"}
    response = submit(admin, "/admin/users/new", user_data)
    page = assert_field_error(response, "name", "Full name must not contain control characters")
    assert "Enter an email address in the correct format" in page


@pytest.mark.parametrize(
    "url",
    [
        "/admin/users?q=%00abc&organisation=%C2%B2&role=%00",
        "/admin/users?organisation=99999999999999999999999999",
        "/admin/organisations?kind=%00",
        "/admin/audit?user=%C2%B2&action=%00x",
    ],
)
def test_list_filters_ignore_junk(admin: Any, url: str) -> None:
    assert admin.get(url).status_code == 200


def test_unknown_ids_are_not_found(admin: Any) -> None:
    for url in (
        "/admin/organisations/999/edit",
        "/admin/users/999/edit",
        "/admin/users/999/password",
        "/admin/users/999/deactivate",
    ):
        assert admin.get(url).status_code == 404, url


# Access --------------------------------------------------------------------------------------


def _admin_urls(app: Flask, user_id: int, organisation_id: int) -> Iterator[tuple[str, str]]:
    """Every admin route with every method it accepts: new pages are covered automatically."""
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        values = {
            "user_id": user_id,
            "organisation_id": organisation_id,
            "kind": "session_reminder",
        }
        url = rule.build({k: values.get(k, 1) for k in rule.arguments}, append_unknown=False)[1]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, url


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_other_roles_are_refused_every_admin_page(login_as: Any, app: Flask, role: Role) -> None:
    client = login_as(role)
    target = factories.make_user(Role.ARTIST)
    db.session.commit()
    urls = list(_admin_urls(app, target.id, target.organisation_id))
    assert len(urls) >= 14
    for method, url in urls:
        data = {"csrf_token": _any_csrf_token(client)} if method == "POST" else None
        response = client.open(url, method=method, data=data)
        assert response.status_code == 403, (method, url)
    db.session.refresh(target)
    assert target.active
    assert count(
        AuditEvent, AuditEvent.action == "access.refused", AuditEvent.actor_id == client.user.id
    ) == len(urls)


def _any_csrf_token(client: Any) -> str:
    # A valid token, so the refusal is the role check and not the missing token.
    return csrf_token(client, "/account/password")


# Audit log -----------------------------------------------------------------------------------


def test_audit_log_lists_events_newest_first_and_filters(admin: Any) -> None:
    submit(admin, "/admin/organisations/new", {"name": "First Arts", "kind": "provider"})
    submit(admin, "/admin/organisations/new", {"name": "Second Arts", "kind": "provider"})
    second = db.session.scalar(select(Organisation).where(Organisation.name == "Second Arts"))
    assert second is not None
    submit(
        admin,
        f"/admin/organisations/{second.id}/edit",
        {"name": "Second Arts CIC", "kind": "provider", "active": "y"},
    )

    page = admin.get("/admin/audit").get_data(as_text=True)
    page = page[page.index("<table") :]
    assert page.index("organisation.updated") < page.index("organisation.created")
    assert admin.user.name in page
    assert f'href="/admin/organisations/{second.id}/edit"' in page
    assert "127.0.0.1" in page

    created_only = admin.get("/admin/audit?action=organisation.created").get_data(as_text=True)
    table = created_only[created_only.index("<table") :]
    assert (
        table.count("<code>organisation.created</code>")
        == len(audit_events("organisation.created"))
        >= 3
    )  # the admin's own organisation, and two
    assert "organisation.updated" not in table and "login.succeeded" not in table

    someone = factories.make_user(Role.ARTIST)
    db.session.commit()
    by_someone = admin.get(f"/admin/audit?user={someone.id}").get_data(as_text=True)
    assert "No events match these filters" in by_someone
    by_admin = admin.get(f"/admin/audit?user={admin.user.id}").get_data(as_text=True)
    assert "organisation.updated" in by_admin
    assert admin.get("/admin/audit?user=abc&action=" + "x" * 500).status_code == 200


# Bounded queries -----------------------------------------------------------------------------


def _add_users(n: int) -> None:
    for _ in range(n):
        factories.make_user(Role.ARTIST)
    db.session.commit()


def test_list_pages_use_a_bounded_number_of_queries(admin: Any) -> None:
    pages = (
        "/admin/users",
        "/admin/organisations",
        "/admin/audit",
        "/admin/users?q=test&role=artist",
        "/admin/organisations?kind=provider",
    )
    _add_users(5)
    few = {url: queries_for(admin, url) for url in pages}
    _add_users(55)
    many = {url: queries_for(admin, url) for url in pages}
    assert few == many
    assert max(many.values()) <= 10, many
    # 60 artists make three pages; the next page keeps the filter.
    first = admin.get("/admin/users?role=artist").get_data(as_text=True)
    assert "Showing 1 to 25 of 60" in first
    assert re.search(r'href="/admin/users\?page=2&amp;role=artist"', first)


# Markup --------------------------------------------------------------------------------------


def test_admin_pages_label_every_control_and_use_no_inline_code(admin: Any, app: Flask) -> None:
    other = factories.make_user(Role.ARTIST)
    course = factories.make_course()
    assert (course.id, course.contract_id, course.venue_id) == (1, 1, 1)
    practice = factories.make_organisation("gp_practice")
    referral = make_referral(
        factories.make_user(Role.REFERRER, organisation=practice), practice, nhs="9434765919"
    )
    assert referral.patient_id == 1
    db.session.commit()
    urls = {
        url for method, url in _admin_urls(app, other.id, other.organisation_id) if method == "GET"
    }
    for url in sorted(urls):
        response = admin.get(url)
        assert response.status_code == 200, url
        assert_labelled_without_inline_code(response.get_data(as_text=True), url)


def test_a_name_taken_by_a_concurrent_request_is_shown_at_the_field(app: Flask) -> None:
    """The unique constraint is the last word; the clash becomes a field message, not a 500."""
    from referrals.admin.forms import OrganisationForm
    from referrals.admin.views import _saved
    from referrals.auth.services import create_organisation

    data = {"name": "Race Arts", "kind": "provider"}
    with app.test_request_context("/admin/organisations/new", method="POST", data=data):
        form = OrganisationForm(meta={"csrf": False})
        assert form.validate()
        db.session.rollback()
        with db.engine.begin() as other_request:  # another admin saves the same name first
            other_request.execute(
                Organisation.__table__.insert().values(name="Race Arts", kind="provider")
            )
        saved = _saved(form, lambda: create_organisation(None, form.organisation_fields()))
        assert not saved
        assert form.name.errors == ["An organisation with this name already exists"]
    assert count(Organisation, Organisation.name == "Race Arts") == 1


def test_an_admin_who_moves_to_another_organisation_signs_in_again(admin: Any) -> None:
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    me = admin.user
    response = submit(admin, f"/admin/users/{me.id}/edit", user_form(me, organisation=provider.id))
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in"
    db.session.refresh(me)
    assert me.organisation_id == provider.id and me.role is Role.ADMIN
    assert admin.get("/admin/users").status_code == 302
