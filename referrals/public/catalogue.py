"""The published directory: what anyone may see of the courses on offer, and searching it.

A snapshot of the published courses is built once and kept for `PUBLIC_CACHE_SECONDS`
(per process), so the finder and the feed answer from memory however many courses there are.
A listing holds only what is published: no people, no contract, no cost to the contract.
"""

from __future__ import annotations

import time as clock
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from flask import current_app
from sqlalchemy import select

from referrals.auth.models import Organisation
from referrals.courses.models import Course
from referrals.courses.presenters import participant_fee, schedule_text
from referrals.courses.queries import published_query
from referrals.courses.schedule import Frequency
from referrals.extensions import db
from referrals.places.services import (
    METRES_PER_MILE,
    Where,
    coordinates_for,
    district_of,
    in_district_or_area,
    metres_between,
)
from referrals.public.models import ProviderProfile
from referrals.vocab import ArtForm, LabelledEnum, Pathway, ProviderType

E = TypeVar("E", bound=LabelledEnum)
CACHE_KEY = "referrals.published"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Provider:
    """A provider as the directory shows it: its name and the profile its own people keep.

    The contact is the organisation's public one; a provider without a profile has only a name.
    """

    public_id: str
    name: str
    provider_type: ProviderType | None = None
    area: str = ""
    art_forms: tuple[ArtForm, ...] = ()
    description: str = ""
    email: str | None = None
    phone: str | None = None
    website: str | None = None


def _known(kind: type[E], codes: list[str] | None) -> tuple[E, ...]:
    """The stored codes that are still members of `kind`, as members."""
    return tuple(kind(code) for code in codes or [] if code in kind._value2member_map_)


def _provider(organisation: Organisation, profile: ProviderProfile | None) -> Provider:
    if profile is None:
        return Provider(organisation.public_id, organisation.name)
    return Provider(
        public_id=organisation.public_id,
        name=organisation.name,
        provider_type=profile.provider_type,
        area=profile.area,
        art_forms=_known(ArtForm, profile.art_forms),
        description=profile.description,
        email=profile.email,
        phone=profile.phone,
        website=profile.website,
    )


@dataclass(frozen=True)
class Listing:
    """One published course, with its provider and venue."""

    id: int
    public_id: str
    title: str
    description: str
    art_form: ArtForm
    pathways: tuple[Pathway, ...]
    min_age: int | None
    max_age: int | None
    fee_pence: int | None
    fee_text: str
    schedule_text: str
    weekday: int
    start_date: date
    starts_at: time
    ends_at: time
    frequency: Frequency
    session_count: int
    starts_on: date
    ends_on: date
    places_left: int
    provider: Provider
    venue_public_id: str
    venue_name: str
    venue_address: str
    postcode: str
    accessibility: str
    coordinates: tuple[float, float] | None
    last_modified: datetime

    @property
    def provider_public_id(self) -> str:
        return self.provider.public_id

    @property
    def provider_name(self) -> str:
        return self.provider.name

    @property
    def district(self) -> str:
        return district_of(self.postcode)

    @property
    def weekday_name(self) -> str:
        return WEEKDAY_NAMES[self.weekday]

    @property
    def address_lines(self) -> list[str]:
        return [line.strip(" ,") for line in self.venue_address.splitlines() if line.strip(" ,")]


@dataclass(frozen=True)
class Snapshot:
    listings: tuple[Listing, ...]
    by_public_id: dict[str, Listing]
    by_id: dict[int, Listing]
    last_modified: datetime | None


def _listing(
    course: Course,
    taken: int,
    starts_on: date,
    ends_on: date,
    coordinates: dict[str, tuple[float, float]],
    providers: dict[int, tuple[Provider, datetime | None]],
) -> Listing:
    venue, provider = course.venue, course.provider
    published_provider, profile_changed = providers[provider.id]
    starts_at = course.start_time
    ends_at = (
        datetime.combine(course.start_date, starts_at) + timedelta(minutes=course.duration_minutes)
    ).time()
    return Listing(
        id=course.id,
        public_id=course.public_id,
        title=course.title,
        description=course.description or "",
        art_form=course.art_form,
        pathways=_known(Pathway, course.pathways),
        min_age=course.min_age,
        max_age=course.max_age,
        fee_pence=course.participant_fee_pence,
        fee_text=participant_fee(course),
        schedule_text=schedule_text(course),
        weekday=course.start_date.weekday(),
        start_date=course.start_date,
        starts_at=starts_at,
        ends_at=ends_at,
        frequency=course.frequency,
        session_count=course.session_count,
        starts_on=starts_on,
        ends_on=ends_on,
        places_left=max(0, course.capacity - taken),
        provider=published_provider,
        venue_public_id=venue.public_id,
        venue_name=venue.name,
        venue_address=venue.address,
        postcode=venue.postcode,
        accessibility=venue.accessibility or "",
        coordinates=coordinates.get(venue.postcode),
        last_modified=max(
            course.updated_at, venue.updated_at, provider.updated_at, profile_changed or EPOCH
        ),
    )


def build_snapshot(today: date) -> Snapshot:
    rows = db.session.execute(published_query(today)).all()
    coordinates = coordinates_for(row[0].venue.postcode for row in rows)
    organisations = {row[0].provider.id: row[0].provider for row in rows}
    profiles = {
        profile.organisation_id: profile
        for profile in db.session.scalars(
            select(ProviderProfile).where(ProviderProfile.organisation_id.in_(organisations))
        )
    }
    providers = {
        key: (
            _provider(organisation, profiles.get(key)),
            profiles[key].updated_at if key in profiles else None,
        )
        for key, organisation in organisations.items()
    }
    listings = tuple(
        _listing(course, taken, starts_on, ends_on, coordinates, providers)
        for course, taken, starts_on, ends_on in rows
    )
    return Snapshot(
        listings=listings,
        by_public_id={item.public_id: item for item in listings},
        by_id={item.id: item for item in listings},
        last_modified=max((item.last_modified for item in listings), default=None),
    )


def published(today: date) -> Snapshot:
    """The snapshot for `today`, from memory while it is fresh."""
    seconds = current_app.config.get("PUBLIC_CACHE_SECONDS", 60)
    cache = current_app.extensions.setdefault(CACHE_KEY, {})
    held = cache.get(today)
    now = clock.monotonic()
    if held is not None and now - held[0] < seconds:
        snapshot: Snapshot = held[1]
        return snapshot
    fresh = build_snapshot(today)
    cache.clear()  # yesterday's snapshot is no use
    cache[today] = (now, fresh)
    return fresh


@dataclass(frozen=True)
class Search:
    """A search of the directory; every part optional."""

    art_form: ArtForm | None = None
    pathway: Pathway | None = None
    weekday: int | None = None
    where: Where | None = None
    within_metres: float | None = None
    text: str = ""


@dataclass(frozen=True)
class Found:
    listing: Listing
    metres: float | None

    @property
    def miles(self) -> float | None:
        return None if self.metres is None else self.metres / METRES_PER_MILE


def _matches_text(item: Listing, words: list[str]) -> bool:
    haystack = " ".join(
        (item.title, item.description, item.provider_name, item.art_form.label, item.venue_name)
    ).lower()
    return all(word in haystack for word in words)


def _in_reach(
    item: Listing,
    where: Where | None,
    centre: tuple[float, float] | None,
    metres: float | None,
    within: float | None,
) -> bool:
    if within is not None and centre is not None:
        return metres is not None and metres <= within
    if where is not None and (where.postcode is None or centre is None):
        return in_district_or_area(item.postcode, where)
    return True


def search(listings: Iterable[Listing], query: Search) -> list[Found]:
    """The listings that match, nearest first when a place with coordinates is given.

    With a distance, a place is kept when it lies within it; without one, a district or area
    keeps its own courses only. Courses whose venue has no coordinates come last.
    """
    words = query.text.lower().split()
    where, centre = query.where, query.where.centre if query.where else None
    found = []
    for item in listings:
        if query.art_form and item.art_form is not query.art_form:
            continue
        if query.pathway and query.pathway not in item.pathways:
            continue
        if query.weekday is not None and item.weekday != query.weekday:
            continue
        if words and not _matches_text(item, words):
            continue
        metres = (
            metres_between(centre, item.coordinates)
            if centre is not None and item.coordinates is not None
            else None
        )
        if _in_reach(item, where, centre, metres, query.within_metres):
            found.append(Found(item, metres))
    if centre is not None:
        found.sort(key=lambda f: (f.metres is None, f.metres or 0.0))
    return found
