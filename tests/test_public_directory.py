"""The open directory: the Open Referral UK 3.0 feed, postcode districts, the public finder."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from referrals import clock
from referrals.auth.models import OrganisationKind
from referrals.extensions import db
from referrals.places.models import Place
from referrals.public.openreferral import taxonomy_id, term_id
from referrals.vocab import ArtForm, Pathway, ProviderType
from tests import factories
from tests.factories import make_course, make_venue
from tests.query_counts import counting_queries

# The Open Referral UK profile 3.0, kept beside the repository (CI: <repo>/../shared/oruk).
ORUK = Path(__file__).resolve().parents[1].parent / "shared" / "oruk"
POSTCODES = Path(__file__).resolve().parent / "data" / "postcodes.csv"


def _registry() -> Registry:
    resources = [
        (path.name, Resource.from_contents(json.loads(path.read_text()), DRAFT202012))
        for path in ORUK.glob("*.json")
        if path.name != "openapi.json"
    ]
    return Registry().with_resources(resources)


REGISTRY = _registry() if ORUK.exists() else Registry()
PAGE_KEYS = {
    "total_items": int,
    "total_pages": int,
    "page_number": int,
    "size": int,
    "first_page": bool,
    "last_page": bool,
    "empty": bool,
    "contents": list,
}


def oruk_errors(document: Any, schema_file: str) -> list[str]:
    """Every way `document` breaks the profile's schema, formats (uuid, uri, email) included."""
    validator = Draft202012Validator(
        {"$ref": schema_file}, registry=REGISTRY, format_checker=FormatChecker()
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def assert_page(body: dict[str, Any], schema_file: str) -> None:
    page_schema = json.loads((ORUK / "openapi.json").read_text())["components"]["schemas"]["Page"]
    assert set(page_schema["properties"]) | {"contents"} == set(PAGE_KEYS)
    for key, kind in PAGE_KEYS.items():
        assert isinstance(body[key], kind), key
    for item in body["contents"]:
        assert oruk_errors(item, schema_file) == []


@pytest.fixture()
def directory(app):
    """Three running courses in GL1, GL16 and GL50, one finished, with the postcode fixture."""
    from referrals.places.services import load_places

    with POSTCODES.open(encoding="utf-8") as stream:
        load_places(stream)
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Severn Arts")
    gloucester = make_course(
        provider,
        title="Singing for Better Breathing",
        venue=make_venue(postcode="GL1 2AB"),
        cost_per_session_pence=3300,
        description="Gentle singing and breathing exercises.",
    )
    coleford = make_course(
        provider,
        title="Forest Painting Group",
        art_form=ArtForm.VISUAL_ART,
        pathways=[Pathway.MENTAL_HEALTH],
        venue=make_venue(
            name="Deanbury Hall", postcode="GL16 8HB", address="High Street\nColeford"
        ),
        participant_fee_pence=250,
        min_age=18,
    )
    cheltenham = make_course(
        provider,
        title="Dance for Parkinson's",
        art_form=ArtForm.DANCE,
        pathways=[],
        venue=make_venue(name="Spa Rooms", postcode="GL50 1QA"),
        start=clock.today() + timedelta(days=3),
    )
    finished = make_course(
        provider,
        title="Last Year's Choir",
        venue=make_venue(postcode="GL1 1AA"),
        start=clock.today() - timedelta(days=300),
    )
    db.session.commit()
    return {
        "gloucester": gloucester,
        "coleford": coleford,
        "cheltenham": cheltenham,
        "finished": finished,
    }


def test_the_feed_is_open_to_any_site_without_a_token(client, directory):
    for path in ("/openreferral/", "/openreferral/services", "/openreferral/taxonomies"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.mimetype == "application/json"
    meta = client.get("/openreferral/").get_json()
    assert meta["version"] == "3.0"


def test_every_service_page_and_service_validates_against_the_profile(client, directory):
    body = client.get("/openreferral/services?per_page=2").get_json()
    assert_page(body, "service_list.json")
    assert (body["total_items"], body["total_pages"], body["size"]) == (3, 2, 2)
    assert body["first_page"] and not body["last_page"] and not body["empty"]
    second = client.get("/openreferral/services?per_page=2&page=2").get_json()
    assert second["last_page"] and second["size"] == 1
    ids = [s["id"] for s in body["contents"] + second["contents"]]
    for service_id in ids:
        full = client.get(f"/openreferral/services/{service_id}")
        assert full.status_code == 200
        assert oruk_errors(full.get_json(), "service.json") == []
    locations = client.get("/openreferral/service_at_locations").get_json()
    assert_page(locations, "service_at_location.json")
    one = locations["contents"][0]["id"]
    assert (
        oruk_errors(
            client.get(f"/openreferral/service_at_locations/{one}").get_json(),
            "service_at_location.json",
        )
        == []
    )


def test_taxonomies_and_terms_validate_against_the_profile(client, directory):
    taxonomies = client.get("/openreferral/taxonomies").get_json()
    assert_page(taxonomies, "taxonomy.json")
    assert {t["name"] for t in taxonomies["contents"]} == {
        "Art forms",
        "Pathways",
        "Kinds of provider",
    }
    for item in taxonomies["contents"]:
        one = client.get(f"/openreferral/taxonomies/{item['id']}").get_json()
        assert oruk_errors(one, "taxonomy.json") == []
    terms = client.get("/openreferral/taxonomy_terms?per_page=100").get_json()
    assert_page(terms, "taxonomy_term.json")
    assert terms["total_items"] == len(ArtForm) + len(Pathway) + len(ProviderType)
    term = terms["contents"][0]["id"]
    assert (
        oruk_errors(
            client.get(f"/openreferral/taxonomy_terms/{term}").get_json(), "taxonomy_term.json"
        )
        == []
    )


def test_only_running_courses_with_the_participant_fee_and_stable_ids(client, directory):
    services = client.get("/openreferral/services").get_json()["contents"]
    by_name = {s["name"]: s for s in services}
    assert "Last Year's Choir" not in by_name
    singing = client.get(f"/openreferral/services/{by_name['Singing for Better Breathing']['id']}")
    text = singing.get_data(as_text=True)
    body = singing.get_json()
    assert body["id"] == directory["gloucester"].public_id
    assert body["fees"] == "Free" and body["cost_options"][0]["amount"] == 0
    assert "3300" not in text and "33.0" not in text  # the contract's cost is never published
    location = body["service_at_locations"][0]["location"]
    assert (location["latitude"], location["longitude"]) == (51.8642, -2.2382)
    painting = client.get(f"/openreferral/services/{by_name['Forest Painting Group']['id']}")
    assert painting.get_json()["cost_options"][0]["amount"] == 2.5
    assert client.get("/openreferral/services").get_json()["contents"] == services
    finished = directory["finished"].public_id
    assert client.get(f"/openreferral/services/{finished}").status_code == 404
    assert client.get("/openreferral/services/not-a-uuid").status_code == 404


def test_the_profiles_filters(client, directory):
    def names(query: str) -> set[str]:
        response = client.get(f"/openreferral/services?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return {s["name"] for s in response.get_json()["contents"]}

    painting = term_id("art_form", ArtForm.VISUAL_ART)
    assert names(f"taxonomy_term_id={painting}") == {"Forest Painting Group"}
    assert len(names(f"taxonomy_id={taxonomy_id('art_form')}")) == 3
    assert names(f"taxonomy_id={taxonomy_id('pathway')}") == {
        "Singing for Better Breathing",
        "Forest Painting Group",
    }
    assert names("search=breathing") == {"Singing for Better Breathing"}
    weekday = directory["cheltenham"].start_date.weekday()
    day = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[weekday]
    assert "Dance for Parkinson's" in names(f"day={day}")
    assert names("minimum_age=18") == {"Forest Painting Group"}
    assert names("start_time=11:00") == set()
    near = client.get("/openreferral/service_at_locations?postcode=GL1 1AA&proximity=5000")
    assert {s["service"]["name"] for s in near.get_json()["contents"]} == {
        "Singing for Better Breathing"
    }
    for bad in ("page=abc", "per_page=0", "day=someday", "minimum_age=old", "start_time=9am"):
        response = client.get(f"/openreferral/services?{bad}")
        assert response.status_code == 422, bad
        assert response.mimetype == "application/problem+json"
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_the_feed_caches_and_revalidates(client, directory):
    first = client.get("/openreferral/services")
    assert first.headers["ETag"] and first.headers["Last-Modified"]
    assert first.headers["Cache-Control"].startswith("public")
    again = client.get("/openreferral/services", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_the_old_api_path_moves_to_the_open_feed(client, directory):
    response = client.get("/api/v1/openreferral/services?page=2")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/openreferral/services?page=2")


def test_area_filters_match_whole_postcode_districts(login_as, directory):
    staff = login_as("link_worker")
    page = staff.get("/courses/?area=GL1").get_data(as_text=True)
    assert "Singing for Better Breathing" in page
    assert "Forest Painting Group" not in page  # GL16 is not GL1
    assert "Dance for Parkinson" not in staff.get("/courses/?area=GL5").get_data(as_text=True)
    assert "Forest Painting Group" in staff.get("/courses/?area=GL16").get_data(as_text=True)
    everything = staff.get("/courses/?area=GL").get_data(as_text=True)
    assert "Forest Painting Group" in everything and "Singing for Better" in everything


def test_the_finder_searches_by_postcode_district_and_distance(client, directory):
    in_gl1 = client.get("/find/?postcode=GL1").get_data(as_text=True)
    assert "Singing for Better Breathing" in in_gl1 and "Forest Painting Group" not in in_gl1
    near = client.get("/find/?postcode=gl1+1aa&distance=5").get_data(as_text=True)
    assert "Singing for Better Breathing" in near
    assert "Dance for Parkinson" not in near and "Forest Painting Group" not in near
    nearest_first = client.get("/find/?postcode=GL50+3JT").get_data(as_text=True)
    assert nearest_first.index("Dance for Parkinson") < nearest_first.index("Singing for Better")
    assert "miles away" in nearest_first
    by_day = client.get("/find/?art_form=visual_art").get_data(as_text=True)
    assert "Forest Painting Group" in by_day and "Singing for Better" not in by_day
    nonsense = client.get("/find/?postcode=%3Cscript%3E")
    assert nonsense.status_code == 200
    assert "Enter a postcode, like GL1 2AB" in nonsense.get_data(as_text=True)
    assert "<script>" not in nonsense.get_data(as_text=True)


def test_a_course_page_says_what_where_when_and_how_to_be_referred(client, directory):
    course = directory["coleford"]
    page = client.get(f"/find/courses/{course.id}").get_data(as_text=True)
    for text in (
        "Forest Painting Group",
        "Deanbury Hall",
        "GL16 8HB",
        "£2.50 per session",
        "How to be referred",
        "Step-free entrance",
        "18 and over",
    ):
        assert text in page, text
    assert f"/find/refer-yourself?course={course.id}" in page
    assert client.get(f"/find/courses/{directory['finished'].id}").status_code == 404


def test_places_load_from_a_postcode_directory_file(runner, app, tmp_path):
    result = runner.invoke(args=["places", "load", str(POSTCODES)])
    assert result.exit_code == 0, result.output
    assert "12 postcodes loaded, 2 skipped" in result.output
    assert db.session.get(Place, "GL16 8HB").district == "GL16"
    assert db.session.get(Place, "GL1 9ZZ") is None  # terminated
    bad = tmp_path / "bad.csv"
    bad.write_text("pcds,lat,long\nGL1 2AB,51.8,-2.2\nNOT A POSTCODE,51.8,-2.2\n")
    result = runner.invoke(args=["places", "load", str(bad)])
    assert result.exit_code != 0 and "line 3" in result.output
    assert db.session.get(Place, "GL16 8HB") is not None  # left as it was


def _statements_for(client, path: str) -> int:
    """SQL statements run to answer `path` from a cold cache."""
    from flask import current_app

    from referrals.public.catalogue import CACHE_KEY

    current_app.extensions.get(CACHE_KEY, {}).clear()
    with counting_queries() as statements:
        assert client.get(path).status_code == 200
    return len(statements)


def _add_courses(how_many: int) -> None:
    """Courses each with its own provider (with a public profile) and venue."""
    from referrals.public.models import ProviderProfile

    for n in range(how_many):
        provider = factories.make_organisation(OrganisationKind.PROVIDER)
        db.session.add(
            ProviderProfile(
                organisation_id=provider.id,
                provider_type=ProviderType.CHARITY,
                area="Stroud",
                art_forms=["music"],
                description="Music groups.",
                email=f"hello{n}@example.org",
            )
        )
        make_course(provider, title=f"Course {n}", venue=make_venue(postcode="GL1 2AB"))
    db.session.commit()


@pytest.mark.parametrize("path", ["/openreferral/services?per_page=200", "/find/"])
def test_the_feed_and_finder_take_the_same_queries_for_3_and_30_courses(client, path):
    _add_courses(3)
    few = _statements_for(client, path)
    _add_courses(27)
    assert client.get("/openreferral/services").get_json()["total_items"] == 30
    assert _statements_for(client, path) == few


def test_the_header_of_the_open_pages_leads_to_the_finder(client, directory):
    import re

    home = re.compile(r'class="nhsuk-header__service-logo" href="([^"]+)"')
    course = directory["gloucester"].id
    for path in ("/find/", f"/find/courses/{course}", "/find/refer-yourself"):
        assert home.findall(client.get(path).get_data(as_text=True)) == ["/find/"], path
    assert home.findall(client.get("/sign-in").get_data(as_text=True)) == ["/"]
