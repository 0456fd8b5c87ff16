"""The open directory as an Open Referral UK 3.0 feed, at the paths of the UK profile's API.

Open to anyone without a key, readable from any web page (CORS), cacheable (ETag and
Last-Modified) and rate-limited like every public page. It publishes only running courses and
those still to start, with what a participant pays (never the cost to the contract), and
nothing about any person.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time
from typing import Any

from flask import Response, g, json, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from referrals import clock
from referrals.places.services import Where, understand
from referrals.problems import ApiProblem, validation_problem
from referrals.public import openreferral_bp as bp
from referrals.public.catalogue import BYDAY, Listing, Provider, Search, published, search
from referrals.security import public
from referrals.vocab import ArtForm, LabelledEnum, Pathway, ProviderType

PROFILE_URL = "https://github.com/openreferral/uk-profile"
PROFILE_OPENAPI_URL = "https://raw.githubusercontent.com/openreferral/uk-profile/main/openapi.json"
# Every UUID that is not stored (taxonomies, terms, a course's schedule) is derived from this
# namespace and a fixed name, so it is the same on every request and every deployment.
NAMESPACE = uuid.UUID("0b6f3c3e-6a1f-4c55-9a57-2f1d8e0c7a41")
PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 200
CACHE_SECONDS = 300
DAYS = {
    **{code: index for index, code in enumerate(BYDAY)},
    **{
        name: index
        for index, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


# Taxonomies: the art forms and the pathways a course is for --------------------------------

TAXONOMIES: dict[str, tuple[str, str, type[LabelledEnum]]] = {
    "art_form": (
        "Art forms",
        "The kind of art or cultural activity a course or provider offers.",
        ArtForm,
    ),
    "pathway": ("Pathways", "The health needs a course is designed for.", Pathway),
    "provider_type": (
        "Kinds of provider",
        "What kind of organisation an arts provider is.",
        ProviderType,
    ),
}


def taxonomy_id(vocabulary: str) -> str:
    return derived_id("taxonomy", vocabulary)


def term_id(vocabulary: str, member: LabelledEnum) -> str:
    return derived_id("taxonomy_term", vocabulary, member.value)


def taxonomy_term_json(vocabulary: str, member: LabelledEnum) -> dict[str, Any]:
    name = TAXONOMIES[vocabulary][0]
    return {
        "id": term_id(vocabulary, member),
        "name": member.label,
        "description": f"{name}: {member.label}",
        "taxonomy": name,
        "taxonomy_id": taxonomy_id(vocabulary),
        "term": member.value,
    }


def taxonomy_json(vocabulary: str) -> dict[str, Any]:
    name, description, _members = TAXONOMIES[vocabulary]
    return {"id": taxonomy_id(vocabulary), "name": name, "description": description}


def all_terms() -> list[tuple[str, LabelledEnum]]:
    return [(vocab, m) for vocab, (_name, _text, members) in TAXONOMIES.items() for m in members]


# Records --------------------------------------------------------------------------------


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


def _optional(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _attribute(
    link_id: str, link_type: str, vocabulary: str, member: LabelledEnum
) -> dict[str, Any]:
    return {
        "id": derived_id("attribute", link_id, vocabulary, member.value),
        "link_id": link_id,
        "link_type": link_type,
        "taxonomy_term_id": term_id(vocabulary, member),
        "taxonomy_term": taxonomy_term_json(vocabulary, member),
    }


def organization_json(provider: Provider) -> dict[str, Any]:
    """The provider as its own people describe it, with its public contact (never a person's).
    Its kind and art forms are attributes; the profile has no field for an area, so the
    description says where it works."""
    description = provider.description or (
        f"Arts provider running courses on prescription: {provider.name}."
    )
    if provider.area:
        description = f"{description}\n\nWorks in: {provider.area}."
    terms: list[tuple[str, LabelledEnum]] = [("art_form", form) for form in provider.art_forms]
    if provider.provider_type is not None:
        terms.insert(0, ("provider_type", provider.provider_type))
    return {
        "id": provider.public_id,
        "name": provider.name,
        "description": description,
        **_optional(email=provider.email, website=provider.website),
        "attributes": [
            _attribute(provider.public_id, "organization", vocabulary, member)
            for vocabulary, member in terms
        ],
    }


def contacts_json(item: Listing) -> list[dict[str, Any]]:
    """The provider's enquiries, when it gives a public email or phone: named for the
    organisation, never for a person."""
    if not (item.provider.email or item.provider.phone):
        return []
    return [
        {
            "id": derived_id("contact", item.public_id, item.provider_public_id),
            "service_id": item.public_id,
            "name": item.provider_name,
            "title": "Enquiries",
        }
    ]


def service_summary(item: Listing) -> dict[str, Any]:
    """The service's one-to-one fields, with its organisation (the profile's service list)."""
    return {
        "id": item.public_id,
        "organization_id": item.provider_public_id,
        "name": item.title,
        "description": item.description or item.title,
        "url": url_for("public.course", course_id=item.id, _external=True),
        **_optional(email=item.provider.email),
        "status": "active",
        # What a participant pays: "Free" unless the course charges; never the contract's cost.
        "fees": item.fee_text,
        **_optional(minimum_age=item.min_age, maximum_age=item.max_age),
        "last_modified": _timestamp(item.last_modified),
        "organization": organization_json(item.provider),
    }


def location_json(item: Listing) -> dict[str, Any]:
    lines = item.address_lines
    latitude, longitude = item.coordinates or (None, None)
    return {
        "id": item.venue_public_id,
        "location_type": "physical",
        "name": item.venue_name,
        "description": item.accessibility,
        **_optional(latitude=latitude, longitude=longitude),
        "addresses": [
            {
                "id": derived_id("address", item.venue_public_id),
                "location_id": item.venue_public_id,
                "address_1": lines[0] if lines else item.venue_name,
                "city": lines[-1] if len(lines) > 1 else "",
                "state_province": "",
                "postal_code": item.postcode,
                "country": "GB",
                "address_type": "physical",
            }
        ],
        "accessibility": (
            [
                {
                    "id": derived_id("accessibility", item.venue_public_id),
                    "location_id": item.venue_public_id,
                    "description": item.accessibility,
                }
            ]
            if item.accessibility
            else []
        ),
    }


def service_at_location_id(item: Listing) -> str:
    return derived_id("service_at_location", item.public_id, item.venue_public_id)


def service_json(item: Listing) -> dict[str, Any]:
    """The fully nested service (the profile's compiled service.json)."""
    key = item.public_id
    fee = item.fee_pence or 0
    terms = [("art_form", item.art_form), *[("pathway", p) for p in item.pathways]]
    return {
        **service_summary(item),
        "schedules": [
            {
                "id": derived_id("schedule", key),
                "service_id": key,
                "valid_from": item.starts_on.isoformat(),
                "valid_to": item.ends_on.isoformat(),
                "dtstart": item.start_date.isoformat(),
                "freq": "WEEKLY",
                "interval": item.frequency.weeks,
                "byday": BYDAY[item.weekday],
                "opens_at": _clock(item.starts_at),
                "closes_at": _clock(item.ends_at),
                "description": item.schedule_text,
                "attending_type": "in_person",
            }
        ],
        "service_areas": [
            {
                "id": derived_id("service_area", key),
                "service_id": key,
                "name": f"Postcode district {item.district}",
                "extent": item.district,
                "extent_type": "text",
            }
        ],
        "service_at_locations": [
            {
                "id": service_at_location_id(item),
                "service_id": key,
                "location_id": item.venue_public_id,
                "location": location_json(item),
            }
        ],
        "languages": [{"id": derived_id("language", key, "en"), "service_id": key}],
        "funding": [],
        "cost_options": [
            {
                "id": derived_id("cost_option", key),
                "service_id": key,
                "valid_from": item.starts_on.isoformat(),
                "valid_to": item.ends_on.isoformat(),
                "option": "Per session",
                "amount": fee / 100,
                "amount_description": item.fee_text,
            }
        ],
        # The provider's enquiries only: people are never published, and how to be referred
        # is on the course's page (`url`).
        "contacts": contacts_json(item),
        "attributes": [
            _attribute(key, "service", vocabulary, member) for vocabulary, member in terms
        ],
    }


def service_at_location_json(item: Listing, *, nested: bool) -> dict[str, Any]:
    body = {
        "id": service_at_location_id(item),
        "service_id": item.public_id,
        "location_id": item.venue_public_id,
        "location": location_json(item),
    }
    service = service_json(item) if nested else service_summary(item)
    service.pop("service_at_locations", None)
    body["service"] = service
    return body


# Paging and filters ------------------------------------------------------------------------


def _whole_number(name: str, default: int, minimum: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    # Only ASCII digits: str.isdigit() also accepts "²", which int() refuses.
    if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) < minimum:
        raise validation_problem({name: [f"{name} must be a whole number, {minimum} or more"]})
    return int(raw)


def _number(name: str) -> float | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value > 1_000_000:
        raise validation_problem({name: [f"{name} must be a number"]})
    return value


def _clock_arg(name: str) -> time | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise validation_problem({name: [f"{name} must be a time, like 10:00"]}) from None


def page_of(items: Sequence[Any], serialise: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The profile's page: contents and the counts around them."""
    page = _whole_number("page", 1, 1)
    per_page = min(_whole_number("per_page", PER_PAGE_DEFAULT, 1), PER_PAGE_MAX)
    total = len(items)
    pages = math.ceil(total / per_page)
    contents = [serialise(item) for item in items[(page - 1) * per_page : page * per_page]]
    return {
        "total_items": total,
        "total_pages": pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= pages,
        "empty": total == 0,
        "contents": contents,
    }


def _selected_terms() -> tuple[set[str] | None, set[str] | None]:
    term = request.args.get("taxonomy_term_id", "").strip()
    taxonomy = request.args.get("taxonomy_id", "").strip()
    return ({term} if term else None), ({taxonomy} if taxonomy else None)


def _has_terms(item: Listing, terms: set[str] | None, taxonomies: set[str] | None) -> bool:
    mine = [("art_form", item.art_form), *[("pathway", p) for p in item.pathways]]
    if terms is not None and not any(term_id(v, m) in terms for v, m in mine):
        return False
    return taxonomies is None or any(taxonomy_id(v) in taxonomies for v, _m in mine)


def filtered(*, near: bool = False) -> list[Listing]:
    """The published listings that pass the profile's filters given in the query string."""
    day_text = request.args.get("day", "").strip().lower()
    if day_text and day_text.upper() not in DAYS and day_text not in DAYS:
        raise validation_problem({"day": ["day must be a day of the week, like TU or tuesday"]})
    weekday = DAYS.get(day_text.upper(), DAYS.get(day_text)) if day_text else None
    minimum_age, maximum_age = _number("minimum_age"), _number("maximum_age")
    opens, closes = _clock_arg("start_time"), _clock_arg("end_time")
    where: Where | None = None
    within: float | None = None
    if near and request.args.get("postcode", "").strip():
        where = understand(request.args["postcode"][:20])
        if where is None or where.postcode is None:
            raise validation_problem({"postcode": ["postcode must be a UK postcode"]})
        within = _number("proximity")
    terms, taxonomies = _selected_terms()
    found = search(
        published(clock.today()).listings,
        Search(
            weekday=weekday,
            where=where,
            within_metres=within,
            text=request.args.get("search", "")[:200],
        ),
    )
    return [
        f.listing
        for f in found
        # As the profile defines them: a service whose own minimum age is at least the given
        # value, whose own maximum age is at most it, that opens no earlier and closes no later.
        if (minimum_age is None or (f.listing.min_age or 0) >= minimum_age)
        and (
            maximum_age is None
            or (f.listing.max_age is not None and f.listing.max_age <= maximum_age)
        )
        and (opens is None or f.listing.starts_at >= opens)
        and (closes is None or f.listing.ends_at <= closes)
        and _has_terms(f.listing, terms, taxonomies)
    ]


def _listing_or_404(public_id: str) -> Listing:
    item = published(clock.today()).by_public_id.get(public_id.lower())
    if item is None:
        raise NotFound("No published service has this id")
    return item


def _service_at_location_or_404(key: str) -> Listing:
    for item in published(clock.today()).listings:
        if service_at_location_id(item) == key.lower():
            return item
    raise NotFound("No published service at location has this id")


def _feed(body: Any, last_modified: datetime | None = None) -> Response:
    """JSON that caches and revalidates: a strong ETag of the body, and Last-Modified."""
    response = Response(json.dumps(body), mimetype="application/json")
    response.add_etag()
    if last_modified is not None:
        response.last_modified = last_modified
    g.public_cache_seconds = CACHE_SECONDS
    response.make_conditional(request)
    return response


@bp.after_request
def _open_to_any_site(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
    response.headers["Access-Control-Expose-Headers"] = "ETag, Last-Modified, Retry-After"
    response.vary.add("Accept-Encoding")
    return response


@bp.errorhandler(ApiProblem)
def _answer_problem(error: ApiProblem) -> Response:
    return error.response()


# Routes ------------------------------------------------------------------------------------


@bp.get("/")
@public
def meta() -> ResponseReturnValue:
    return _feed({"version": "3.0", "profile": PROFILE_URL, "openapi_url": PROFILE_OPENAPI_URL})


@bp.get("/services")
@public
def services() -> ResponseReturnValue:
    items = filtered()
    return _feed(page_of(items, service_summary), published(clock.today()).last_modified)


@bp.get("/services/<string(maxlength=64):service_id>")
@public
def service(service_id: str) -> ResponseReturnValue:
    item = _listing_or_404(service_id)
    return _feed(service_json(item), item.last_modified)


@bp.get("/service_at_locations")
@public
def service_at_locations() -> ResponseReturnValue:
    items = filtered(near=True)
    return _feed(
        page_of(items, lambda item: service_at_location_json(item, nested=False)),
        published(clock.today()).last_modified,
    )


@bp.get("/service_at_locations/<string(maxlength=64):key>")
@public
def service_at_location(key: str) -> ResponseReturnValue:
    item = _service_at_location_or_404(key)
    return _feed(service_at_location_json(item, nested=True), item.last_modified)


@bp.get("/taxonomies")
@public
def taxonomies() -> ResponseReturnValue:
    return _feed(page_of(list(TAXONOMIES), taxonomy_json))


@bp.get("/taxonomies/<string(maxlength=64):key>")
@public
def taxonomy(key: str) -> ResponseReturnValue:
    for vocabulary in TAXONOMIES:
        if taxonomy_id(vocabulary) == key.lower():
            body = taxonomy_json(vocabulary)
            body["taxonomy_terms"] = [
                taxonomy_term_json(vocabulary, member) for member in TAXONOMIES[vocabulary][2]
            ]
            return _feed(body)
    raise NotFound("No taxonomy has this id")


@bp.get("/taxonomy_terms")
@public
def taxonomy_terms() -> ResponseReturnValue:
    return _feed(page_of(all_terms(), lambda pair: taxonomy_term_json(*pair)))


@bp.get("/taxonomy_terms/<string(maxlength=64):key>")
@public
def taxonomy_term(key: str) -> ResponseReturnValue:
    for vocabulary, member in all_terms():
        if term_id(vocabulary, member) == key.lower():
            return _feed(taxonomy_term_json(vocabulary, member))
    raise NotFound("No taxonomy term has this id")
