"""Providers' public profiles: who may change one, and changing it.

A provider's artists keep their own organisation's profile; admins may keep any provider's.
Anyone else, or another provider's artist, is told there is no such page (404).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from werkzeug.exceptions import NotFound

from referrals.audit import record
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.extensions import db
from referrals.public.catalogue import CACHE_KEY
from referrals.public.models import ProviderProfile
from referrals.vocab import ArtForm, ProviderType


@dataclass(frozen=True)
class ProfileFields:
    provider_type: ProviderType
    area: str
    art_forms: tuple[ArtForm, ...]
    description: str
    email: str | None
    phone: str | None
    website: str | None


def provider_in_scope(user: User, organisation_id: int) -> Organisation:
    """The provider whose profile `user` may keep, or 404."""
    if user.role is not Role.ADMIN and user.organisation_id != organisation_id:
        raise NotFound()
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None or organisation.kind is not OrganisationKind.PROVIDER:
        raise NotFound()
    return organisation


def profile_of(organisation: Organisation) -> ProviderProfile | None:
    return db.session.get(ProviderProfile, organisation.id)


def save_profile(actor: User, organisation: Organisation, fields: ProfileFields) -> None:
    profile = profile_of(organisation)
    if profile is None:
        profile = ProviderProfile(organisation_id=organisation.id)
        db.session.add(profile)
    profile.provider_type = fields.provider_type
    profile.area = fields.area.strip()
    profile.art_forms = [form.value for form in fields.art_forms]
    profile.description = fields.description.strip()
    profile.email = fields.email or None
    profile.phone = fields.phone or None
    profile.website = fields.website or None
    db.session.flush()
    record(actor, "provider_profile.saved", organisation)
    # This worker shows the change at once; others within PUBLIC_CACHE_SECONDS.
    current_app.extensions.get(CACHE_KEY, {}).clear()
