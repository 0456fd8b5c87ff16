"""Admin pages: organisations, users and the audit log. Admins only.

Views load the object, validate a form, call one service from `referrals.auth.services` and
commit once; every change is a POST followed by a redirect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError

from referrals.admin import bp
from referrals.admin.access_history import entries_page, in_dates, newest_first
from referrals.admin.forms import (
    AuditFilterForm,
    EditOrganisationForm,
    EditUserForm,
    NewUserForm,
    OrganisationFilterForm,
    OrganisationForm,
    ResetPasswordForm,
    UserFilterForm,
    organisation_choices,
)
from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, Role, User
from referrals.auth.services import (
    create_organisation,
    create_user,
    deactivate_user,
    set_password,
    update_organisation,
    update_user,
)
from referrals.extensions import db
from referrals.forms import ConfirmForm
from referrals.pagination import Page
from referrals.security import allow

PER_PAGE = 25
CONFLICT = "Someone else changed this at the same time, so nothing was saved. Try again"


def get_organisation_or_404(organisation_id: int) -> Organisation:
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None:
        abort(404)
    return organisation


def get_user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _form_page(template: str, form: Any, **context: Any) -> ResponseReturnValue:
    return render_template(template, form=form, page_has_errors=bool(form.errors), **context)


def _saved(form: Any, change: Callable[[], object]) -> bool:
    """Run a service and commit. If a concurrent request took the same name, email or ODS code
    first, the unique constraint refuses it: roll back and show the clash at its field."""
    try:
        change()
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        form.validate()
        if not form.errors:
            form.form_errors.append(CONFLICT)
        return False
    return True


# Organisations -------------------------------------------------------------------------------


def organisations_query(filters: OrganisationFilterForm) -> Select:
    """Organisations by name, each with its number of active users (one query, no N+1)."""
    active_users = (
        select(func.count(User.id))
        .where(User.organisation_id == Organisation.id, User.active.is_(True))
        .correlate(Organisation)
        .scalar_subquery()
    )
    query = select(Organisation, active_users.label("active_users")).order_by(
        func.lower(Organisation.name), Organisation.id
    )
    if filters.kind_value is not None:
        query = query.where(Organisation.kind == filters.kind_value)
    return query


@bp.get("/organisations")
@allow(Role.ADMIN)
def organisations() -> ResponseReturnValue:
    filters = OrganisationFilterForm(request.args)
    page = Page.from_request(organisations_query(filters), per_page=PER_PAGE, scalars=False)
    return render_template("admin/organisations.html", page=page, filters=filters)


@bp.route("/organisations/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def new_organisation() -> ResponseReturnValue:
    form = OrganisationForm()
    if form.validate_on_submit() and _saved(
        form, lambda: create_organisation(current_user, form.organisation_fields())
    ):
        flash(f"{form.name.data} has been added", "success")
        return redirect(url_for("admin.organisations"))
    return _form_page("admin/organisation_form.html", form, organisation=None)


@bp.route("/organisations/<int:organisation_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit_organisation(organisation_id: int) -> ResponseReturnValue:
    organisation = get_organisation_or_404(organisation_id)
    was_active = organisation.active
    # On POST the form holds exactly what was sent: a missing field is an error, never a
    # silent fallback to the stored value.
    form = EditOrganisationForm(
        obj=organisation if request.method == "GET" else None,
        organisation=organisation,
        actor=current_user,
    )
    if form.validate_on_submit() and _saved(
        form, lambda: update_organisation(current_user, organisation, form.organisation_fields())
    ):
        if was_active and not organisation.active:
            flash(
                f"{organisation.name} has been deactivated. Its users can no longer sign in",
                "success",
            )
        else:
            flash(f"{organisation.name} has been updated", "success")
        return redirect(url_for("admin.organisations"))
    return _form_page("admin/organisation_form.html", form, organisation=organisation)


# Users ---------------------------------------------------------------------------------------


def users_query(filters: UserFilterForm) -> Select:
    """Users by name with their organisation, joined so the list costs one query."""
    query = (
        select(User, Organisation)
        .join(Organisation, User.organisation_id == Organisation.id)
        .order_by(func.lower(User.name), User.id)
    )
    if filters.q.data:
        query = query.where(
            or_(
                User.name.icontains(filters.q.data, autoescape=True),
                User.email.icontains(filters.q.data, autoescape=True),
            )
        )
    if filters.role_value is not None:
        query = query.where(User.role == filters.role_value)
    if filters.organisation_id is not None:
        query = query.where(User.organisation_id == filters.organisation_id)
    return query


@bp.get("/users")
@allow(Role.ADMIN)
def users() -> ResponseReturnValue:
    everywhere = db.session.execute(
        select(Organisation.id, Organisation.name).order_by(func.lower(Organisation.name))
    ).all()
    filters = UserFilterForm(request.args, organisations=everywhere)
    page = Page.from_request(users_query(filters), per_page=PER_PAGE, scalars=False)
    return render_template("admin/users.html", page=page, filters=filters)


@bp.route("/users/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def new_user() -> ResponseReturnValue:
    form = NewUserForm(organisations=organisation_choices())
    if form.validate_on_submit() and _saved(
        form, lambda: create_user(current_user, form.user_fields(), form.new_password.data)
    ):
        flash(f"An account has been created for {form.name.data}", "success")
        return redirect(url_for("admin.users"))
    return _form_page("admin/user_form.html", form, user=None)


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit_user(user_id: int) -> ResponseReturnValue:
    user = get_user_or_404(user_id)
    stored = {
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "organisation": user.organisation_id,
        "active": user.active,
    }
    form = EditUserForm(
        data=stored if request.method == "GET" else None,
        organisations=organisation_choices(include=user.organisation),
        user=user,
        actor=current_user,
    )
    if form.validate_on_submit():
        fields = form.user_fields()
        moving_self = form.editing_self and fields.organisation.id != user.organisation_id
        if _saved(form, lambda: update_user(current_user, user, fields)):
            if moving_self:
                # A new organisation changes what they may see, so their sessions were ended.
                flash("Your organisation has changed. Sign in again to continue", "info")
                return redirect(url_for("auth.login"))
            flash(f"{user.name}'s account has been updated", "success")
            return redirect(url_for("admin.users"))
    return _form_page("admin/user_form.html", form, user=user)


@bp.route("/users/<int:user_id>/deactivate", methods=["GET", "POST"], endpoint="deactivate_user")
@allow(Role.ADMIN)
def deactivate_user_account(user_id: int) -> ResponseReturnValue:
    user = get_user_or_404(user_id)
    if not user.active:
        flash(f"{user.name}'s account is already deactivated", "info")
        return redirect(url_for("admin.edit_user", user_id=user.id))
    form = ConfirmForm()
    if user.id == current_user.id:
        form.form_errors.append("You cannot deactivate your own account")
    elif form.validate_on_submit():
        deactivate_user(current_user, user)
        db.session.commit()
        flash(f"{user.name}'s account has been deactivated and signed out everywhere", "success")
        return redirect(url_for("admin.users"))
    return _form_page("admin/deactivate_user.html", form, user=user)


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
@allow(Role.ADMIN)
def reset_password(user_id: int) -> ResponseReturnValue:
    user = get_user_or_404(user_id)
    if user.id == current_user.id:
        # Changing your own password needs your current one.
        flash("To change your own password, enter your current password first", "info")
        return redirect(url_for("auth.change_password"))
    form = ResetPasswordForm(user=user)
    if form.validate_on_submit():
        set_password(current_user, user, form.new_password.data)
        db.session.commit()
        flash(
            f"{user.name}'s password has been reset and they have been signed out everywhere",
            "success",
        )
        return redirect(url_for("admin.edit_user", user_id=user.id))
    return _form_page("admin/reset_password.html", form, user=user)


# Audit log -----------------------------------------------------------------------------------


def audit_query(filters: AuditFilterForm) -> Select:
    """Events newest first; each filter reads one index range (see `AuditEvent`)."""
    query = select(AuditEvent)
    if filters.person_id is not None:
        query = query.where(AuditEvent.subject_person_id == filters.person_id)
    if filters.action_value is not None:
        query = query.where(AuditEvent.action == filters.action_value)
    if filters.user_id is not None:
        query = query.where(AuditEvent.actor_id == filters.user_id)
    return newest_first(in_dates(query, filters.since.data, filters.until.data))


def recorded_actions() -> list[str]:
    """The actions in the log, each found by one step along the action index rather than by
    reading every entry (a loose index scan: the log may hold millions)."""
    first = select(func.min(AuditEvent.action)).scalar_subquery()
    steps = select(first.label("action")).cte("steps", recursive=True)
    following = (
        select(func.min(AuditEvent.action))
        .where(AuditEvent.action > steps.c.action)
        .scalar_subquery()
    )
    steps = steps.union_all(select(following).where(steps.c.action.is_not(None)))
    return [a for a in db.session.scalars(select(steps.c.action)) if a is not None]


@bp.get("/audit")
@allow(Role.ADMIN)
def audit_log() -> ResponseReturnValue:
    people = db.session.execute(
        select(User.id, User.name, User.email).order_by(func.lower(User.name), User.id)
    ).all()
    filters = AuditFilterForm(request.args, actions=recorded_actions(), users=people)
    page = None
    if filters.validate():
        page = entries_page(audit_query(filters))
    return render_template(
        "admin/audit_log.html", page=page, filters=filters, page_has_errors=page is None
    )
