"""A provider's public profile, kept by its own artists (or an admin)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.public import providers_bp as bp
from referrals.public.forms import ProviderProfileForm
from referrals.public.profiles import ProfileFields, profile_of, provider_in_scope, save_profile
from referrals.security import allow
from referrals.vocab import ArtForm, ProviderType


@bp.get("/profile")
@allow(Role.ARTIST)
def own_profile() -> ResponseReturnValue:
    """An artist's way in: their own organisation's profile."""
    return redirect(url_for("providers.profile", organisation_id=current_user.organisation_id))


@bp.route("/<int:organisation_id>/profile", methods=["GET", "POST"])
@allow(Role.ADMIN, Role.ARTIST)
def profile(organisation_id: int) -> ResponseReturnValue:
    user = current_user._get_current_object()
    organisation = provider_in_scope(user, organisation_id)
    stored = profile_of(organisation)
    form = ProviderProfileForm(obj=stored)
    if form.validate_on_submit():
        save_profile(
            user,
            organisation,
            ProfileFields(
                provider_type=ProviderType(form.provider_type.data),
                area=form.area.data or "",
                art_forms=tuple(ArtForm(value) for value in form.art_forms.data or []),
                description=form.description.data or "",
                email=form.email.data or None,
                phone=form.phone.data or None,
                website=form.website.data or None,
            ),
        )
        db.session.commit()
        flash("Profile saved. The course finder and the feed show it within a minute", "success")
        return redirect(url_for("providers.profile", organisation_id=organisation.id))
    return render_template(
        "public/provider_profile.html", form=form, organisation=organisation, stored=stored
    )
