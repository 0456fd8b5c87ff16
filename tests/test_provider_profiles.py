"""Providers' public profiles: kept by the provider's own artists (or an admin), shown on the
finder's course pages and published in the Open Referral UK feed, with no person's details."""

from __future__ import annotations

from typing import Any

import pytest

from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.public.models import ProviderProfile
from referrals.public.openreferral import taxonomy_id, term_id
from referrals.vocab import ArtForm, ProviderType
from tests import factories
from tests.conftest import submit
from tests.factories import make_course, make_venue
from tests.test_public_directory import oruk_errors

PROFILE = {
    "provider_type": "charity",
    "area": "Gloucester and the Forest of Dean",
    "art_forms": ["singing", "dance"],
    "description": "We run singing and dance groups for people living with long-term illness.",
    "email": "hello@severn-arts.example.org",
    "phone": "01452 000123",
    "website": "www.severn-arts.example.org",
}


@pytest.fixture()
def provider(app):
    organisation = factories.make_organisation(OrganisationKind.PROVIDER, name="Severn Arts")
    course = make_course(organisation, title="Singing Together", venue=make_venue())
    db.session.commit()
    return {"organisation": organisation, "course": course}


def _url(organisation) -> str:
    return f"/providers/{organisation.id}/profile"


def test_a_providers_artist_keeps_its_profile_and_the_finder_shows_it(login_as, provider, client):
    organisation = provider["organisation"]
    artist = login_as(Role.ARTIST, organisation=organisation)
    assert artist.get("/providers/profile").headers["Location"].endswith(_url(organisation))

    response = submit(artist, _url(organisation), PROFILE)
    assert response.status_code == 302

    stored = db.session.get(ProviderProfile, organisation.id)
    assert stored is not None
    assert stored.provider_type is ProviderType.CHARITY
    assert stored.art_forms == ["singing", "dance"]
    assert stored.website == "https://www.severn-arts.example.org"

    page = client.get(f"/find/courses/{provider['course'].id}").get_data(as_text=True)
    assert "About Severn Arts" in page
    assert "Gloucester and the Forest of Dean" in page
    assert "Charity" in page and "Singing, Dance and movement" in page
    assert 'href="mailto:hello@severn-arts.example.org"' in page
    assert 'href="tel:01452000123"' in page
    assert "https://www.severn-arts.example.org" in page
    # What the form showed back is what was saved.
    again = artist.get(_url(organisation)).get_data(as_text=True)
    assert "Gloucester and the Forest of Dean" in again


def test_the_feed_publishes_the_organisation_and_its_contact_never_a_person(
    login_as, provider, client
):
    organisation = provider["organisation"]
    artist = login_as(Role.ARTIST, organisation=organisation)
    assert submit(artist, _url(organisation), PROFILE).status_code == 302
    person = artist.user  # type: ignore[attr-defined]

    key = provider["course"].public_id
    response = client.get(f"/openreferral/services/{key}")
    body = response.get_json()
    assert oruk_errors(body, "service.json") == []
    assert oruk_errors(body["organization"], "organization.json") == []
    org = body["organization"]
    assert org["id"] == organisation.public_id
    assert org["email"] == "hello@severn-arts.example.org"
    assert org["website"] == "https://www.severn-arts.example.org"
    assert org["description"].startswith("We run singing and dance groups")
    assert "Gloucester and the Forest of Dean" in org["description"]
    assert {a["taxonomy_term_id"] for a in org["attributes"]} == {
        term_id("provider_type", ProviderType.CHARITY),
        term_id("art_form", ArtForm.SINGING),
        term_id("art_form", ArtForm.DANCE),
    }
    assert {a["link_type"] for a in org["attributes"]} == {"organization"}
    assert body["email"] == "hello@severn-arts.example.org"
    assert body["contacts"] == [
        {
            "id": body["contacts"][0]["id"],
            "service_id": key,
            "name": "Severn Arts",
            "title": "Enquiries",
        }
    ]
    listing = client.get("/openreferral/services").get_json()["contents"][0]
    assert listing["organization"] == org
    kinds = client.get(f"/openreferral/taxonomies/{taxonomy_id('provider_type')}").get_json()
    assert oruk_errors(kinds, "taxonomy.json") == []
    assert {t["term"] for t in kinds["taxonomy_terms"]} == {k.value for k in ProviderType}
    for text in (
        response.get_data(as_text=True),
        client.get(f"/find/courses/{provider['course'].id}").get_data(as_text=True),
    ):
        assert person.email not in text and person.name not in text


def test_a_provider_without_a_profile_publishes_its_name_only(provider, client):
    body = client.get(f"/openreferral/services/{provider['course'].public_id}").get_json()
    assert oruk_errors(body, "service.json") == []
    assert "email" not in body and body["contacts"] == []
    assert set(body["organization"]) == {"id", "name", "description", "attributes"}
    assert body["organization"]["attributes"] == []


def test_only_the_providers_own_artists_or_an_admin_may_keep_it(login_as, provider):
    organisation = provider["organisation"]
    url = _url(organisation)
    other = factories.make_organisation(OrganisationKind.PROVIDER)
    outsider = login_as(Role.ARTIST, organisation=other)
    assert outsider.get(url).status_code == 404
    assert submit(outsider, url, PROFILE, page=_url(other)).status_code == 404
    assert db.session.get(ProviderProfile, organisation.id) is None
    for role in (Role.REFERRER, Role.LINK_WORKER, Role.COMMISSIONER):
        assert login_as(role).get(url).status_code == 403

    admin = login_as(Role.ADMIN)
    assert submit(admin, url, {**PROFILE, "area": "Stroud"}).status_code == 302
    assert db.session.get(ProviderProfile, organisation.id).area == "Stroud"
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    db.session.commit()
    assert admin.get(_url(practice)).status_code == 404
    assert "Change the public profile" in admin.get(
        f"/admin/organisations/{organisation.id}/edit"
    ).get_data(as_text=True)


def test_the_form_needs_its_csrf_token_and_checks_what_it_is_given(login_as, provider):
    organisation = provider["organisation"]
    artist = login_as(Role.ARTIST, organisation=organisation)
    assert artist.post(_url(organisation), data=PROFILE).status_code == 400
    assert db.session.get(ProviderProfile, organisation.id) is None

    bad = {
        **PROFILE,
        "provider_type": "pirates",
        "art_forms": [],
        "email": "not an email",
        "website": "javascript:alert(1)",
        "area": "x" * 201,
    }
    page = submit(artist, _url(organisation), bad)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for message in (
        "Select what kind of organisation you are",
        "Select at least one art form",
        "Enter an email address in the correct format",
        "Enter a website address",
        "Keep this to 200 characters or fewer",
    ):
        assert message in text, message
    assert db.session.get(ProviderProfile, organisation.id) is None


@pytest.mark.parametrize("website", ["http://[bad", "\x01\x02\x1b[31m", "https://exa mple.org"])
def test_an_unreadable_website_is_a_message_at_the_field(app: Any, website: str) -> None:
    """A value that cannot even be read as an address (urlsplit refuses it) is a field error."""
    from werkzeug.datastructures import MultiDict

    from referrals.public.forms import ProviderProfileForm

    with app.test_request_context("/", method="POST"):
        form = ProviderProfileForm(MultiDict({"website": website}))
        form.validate()
    assert form.website.errors
