"""KPI returns over the API: list, make, read and download, within each caller's scope."""

from __future__ import annotations

import csv
import importlib.util
import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.reports.csv_export import COLUMNS
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period
from referrals.reports.services import make_return, regenerate_return
from tests import factories
from tests.factories import make_contract
from tests.intake_helpers import make_referral, nhs_numbers

TODAY = clock.today()
PERIOD = Period.containing(TODAY).previous().previous()  # a finished month
THIS_MONTH = Period.containing(TODAY)
URL = "/api/v1/kpi/returns"

SUMMARY_KEYS = {
    "id",
    "scope",
    "contract_id",
    "scope_name",
    "period",
    "version",
    "spec_version",
    "generated_at",
    "superseded",
    "provisional",
}
ADMIN_SUMMARY_KEYS = SUMMARY_KEYS | {"changed_since_made"}
FIGURE_KEYS = {
    "code",
    "name",
    "span",
    "breakdown",
    "value",
    "suppressed",
    "target_minimum",
    "target_expected",
    "target_stretch",
    "target_rating",
}

_numbers = nhs_numbers()


class World:
    """Two commissioners with a contract each, and three returns for PERIOD."""

    def __init__(self) -> None:
        self.commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
        self.other_commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
        # A name a spreadsheet would run as a formula: the CSV must neutralise it.
        self.contract = make_contract(
            name='=HYPERLINK("http://x.invalid")',
            commissioner=self.commissioner,
            start_date=PERIOD.start - timedelta(days=365),
            targets={"B4": {"minimum": 1, "expected": 2, "stretch": 3}},
        )
        self.other_contract = make_contract(commissioner=self.other_commissioner)
        # Three referrals received in the month: A1 is 3, shown to commissioners as "*".
        referrer = factories.make_user(Role.REFERRER)
        for day in (2, 3, 4):
            make_referral(
                referrer,
                referrer.organisation,
                nhs=next(_numbers),
                today=TODAY,
                received_on=PERIOD.start + timedelta(days=day),
            )
        self.own = make_return(self.contract.id, PERIOD, today=TODAY, job="monthly-returns")
        self.others = make_return(self.other_contract.id, PERIOD, today=TODAY, job="cli")
        self.everything = make_return(None, PERIOD, today=TODAY, job="monthly-returns")
        db.session.commit()


@pytest.fixture()
def world(app: Any) -> World:
    return World()


def _count_returns() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(KpiReturn)) or 0


def _figure(body: dict[str, Any], code: str, breakdown: str = "") -> dict[str, Any]:
    return next(f for f in body["figures"] if f["code"] == code and f["breakdown"] == breakdown)


def _rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


# Listing --------------------------------------------------------------------------------


def test_admins_list_every_return_without_figures(api_client, world):
    client, headers = api_client(Role.ADMIN)
    response = client.get(URL, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 3 and body["page"] == 1
    ids = {item["id"] for item in body["items"]}
    assert ids == {
        world.own.kpi_return.id,
        world.others.kpi_return.id,
        world.everything.kpi_return.id,
    }
    for item in body["items"]:
        assert set(item) == ADMIN_SUMMARY_KEYS
        assert item["period"] == PERIOD.key
        assert item["version"] == 1 and item["superseded"] is False
        assert item["spec_version"] == "2"
        assert datetime.fromisoformat(item["generated_at"]).utcoffset() is not None
    everything = next(i for i in body["items"] if i["id"] == world.everything.kpi_return.id)
    assert everything["scope"] == "all" and everything["contract_id"] is None
    own = next(i for i in body["items"] if i["id"] == world.own.kpi_return.id)
    assert own["scope"] == "contract" and own["contract_id"] == world.contract.id


def test_the_list_filters_by_contract_period_and_superseded(api_client, world):
    admin = factories.make_user(Role.ADMIN)
    regenerate_return(admin, world.contract.id, PERIOD, "Registers corrected", today=TODAY)
    earlier = PERIOD.previous()
    make_return(world.contract.id, earlier, today=TODAY)
    db.session.commit()
    client, headers = api_client(admin)

    body = client.get(f"{URL}?contract_id={world.contract.id}", headers=headers).get_json()
    assert [(i["period"], i["version"]) for i in body["items"]] == [
        (PERIOD.key, 2),
        (earlier.key, 1),
    ]

    body = client.get(
        f"{URL}?contract_id={world.contract.id}&include_superseded=true", headers=headers
    ).get_json()
    assert [(i["period"], i["version"], i["superseded"]) for i in body["items"]] == [
        (PERIOD.key, 2, False),
        (PERIOD.key, 1, True),
        (earlier.key, 1, False),
    ]

    body = client.get(f"{URL}?period={earlier.key}", headers=headers).get_json()
    assert [i["contract_id"] for i in body["items"]] == [world.contract.id]

    body = client.get(f"{URL}?period={PERIOD.key}&include_superseded=false", headers=headers)
    assert body.get_json()["total"] == 3

    body = client.get(f"{URL}?per_page=1&page=2", headers=headers).get_json()
    assert body["total"] == 4 and body["per_page"] == 1 and len(body["items"]) == 1


def test_bad_list_filters_are_422_with_every_field(api_client, world):
    client, headers = api_client(Role.ADMIN)
    response = client.get(
        f"{URL}?period=2026-13&contract_id=x&include_superseded=maybe&per_page=101",
        headers=headers,
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.get_json()["errors"]) == {
        "period",
        "contract_id",
        "include_superseded",
        "per_page",
    }
    for bad in ("March", "2026-3", "202603", "1999-01"):
        response = client.get(f"{URL}?period={bad}", headers=headers)
        assert response.status_code == 422, bad
        assert set(response.get_json()["errors"]) == {"period"}


def test_commissioners_list_only_their_own_contracts_returns(api_client, world):
    client, headers = api_client(Role.COMMISSIONER, organisation=world.commissioner)
    body = client.get(URL, headers=headers).get_json()
    assert [i["id"] for i in body["items"]] == [world.own.kpi_return.id]
    assert body["total"] == 1
    # Naming someone else's contract finds nothing, rather than their returns.
    body = client.get(f"{URL}?contract_id={world.other_contract.id}", headers=headers).get_json()
    assert body["items"] == [] and body["total"] == 0


@pytest.mark.parametrize("role", [Role.REFERRER, Role.ARTIST, Role.LINK_WORKER])
def test_other_roles_are_refused_kpi_returns(api_client, world, role):
    client, headers = api_client(role)
    own_id = world.own.kpi_return.id
    for url in (URL, f"{URL}/{own_id}", f"{URL}/{own_id}.csv", f"{URL}/{own_id}.pdf"):
        response = client.get(url, headers=headers)
        assert response.status_code == 403, url
        assert response.mimetype == "application/problem+json"
    response = client.post(URL, json={"scope": "all", "period": PERIOD.key}, headers=headers)
    assert response.status_code == 403


# One return -----------------------------------------------------------------------------


def test_commissioners_see_published_figures_only(api_client, world):
    client, headers = api_client(Role.COMMISSIONER, organisation=world.commissioner)
    response = client.get(f"{URL}/{world.own.kpi_return.id}", headers=headers)
    assert response.status_code == 200
    assert "raw_value" not in response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == SUMMARY_KEYS | {"generated_by", "figures"}
    assert body["generated_by"] == "job"
    assert body["figures"]
    for figure in body["figures"]:
        assert set(figure) == FIGURE_KEYS
    a1 = _figure(body, "A1")
    assert a1["value"] == "*" and a1["suppressed"] is True
    assert _figure(body, "B4")["target_rating"] == "red"  # no sessions against a minimum of 1


def test_commissioners_get_404_outside_their_scope(api_client, world):
    client, headers = api_client(Role.COMMISSIONER, organisation=world.commissioner)
    for kpi_return in (world.others.kpi_return, world.everything.kpi_return):
        for suffix in ("", ".csv", ".pdf"):
            response = client.get(f"{URL}/{kpi_return.id}{suffix}", headers=headers)
            assert response.status_code == 404, (kpi_return.scope_key, suffix)
            assert response.mimetype == "application/problem+json"
    assert client.get(f"{URL}/999999", headers=headers).status_code == 404
    assert client.get(f"{URL}/99999999999999999999", headers=headers).status_code == 404
    db.session.expire_all()
    exported = select(AuditEvent).where(AuditEvent.action == "kpi_return.exported")
    assert db.session.scalars(exported).all() == []


def test_admins_also_see_the_raw_values(api_client, world):
    client, headers = api_client(Role.ADMIN)
    body = client.get(f"{URL}/{world.everything.kpi_return.id}", headers=headers).get_json()
    assert body["scope"] == "all" and body["scope_name"] == "All activity"
    for figure in body["figures"]:
        assert set(figure) == FIGURE_KEYS | {"raw_value"}
    a1 = _figure(body, "A1")
    assert a1 == {**a1, "value": "*", "raw_value": "3", "suppressed": True}
    body = client.get(f"{URL}/{world.others.kpi_return.id}", headers=headers).get_json()
    assert body["generated_by"] == "cli"


# Making ---------------------------------------------------------------------------------


def test_post_makes_a_return_once_then_finds_it(api_client, world):
    admin = factories.make_user(Role.ADMIN, name="Priya Admin")
    client, headers = api_client(admin)
    period = PERIOD.previous()
    payload = {"contract_id": world.contract.id, "period": period.key}
    before = _count_returns()

    first = client.post(URL, json=payload, headers=headers)
    assert first.status_code == 201, first.get_json()
    made = first.get_json()
    assert made["contract_id"] == world.contract.id and made["period"] == period.key
    assert made["version"] == 1 and made["generated_by"] == "Priya Admin"
    assert all("raw_value" in f for f in made["figures"])
    assert first.headers["Location"].endswith(f"{URL}/{made['id']}")

    again = client.post(URL, json=payload, headers=headers)
    assert again.status_code == 200
    assert again.get_json()["id"] == made["id"]
    assert _count_returns() == before + 1

    generated = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "kpi_return.generated")
    ).all()
    assert [(e.object_id, e.actor_id) for e in generated if e.actor_id] == [
        (str(made["id"]), admin.id)
    ]


def test_post_finds_an_existing_all_activity_return(api_client, world):
    client, headers = api_client(Role.ADMIN)
    response = client.post(URL, json={"scope": "all", "period": PERIOD.key}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["id"] == world.everything.kpi_return.id
    assert response.get_json()["scope"] == "all"


def test_post_makes_an_all_activity_return(api_client, app):
    client, headers = api_client(Role.ADMIN)
    response = client.post(URL, json={"scope": "all", "period": PERIOD.key}, headers=headers)
    assert response.status_code == 201
    body = response.get_json()
    assert body["scope"] == "all" and body["contract_id"] is None
    assert _count_returns() == 1


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"contract_id", "period"}),
        ({"period": "past"}, {"contract_id"}),
        ({"contract_id": 999999, "period": "past"}, {"contract_id"}),
        ({"contract_id": "abc", "period": "past"}, {"contract_id"}),
        ({"contract_id": "1", "period": "past"}, {"contract_id"}),
        ({"contract_id": True, "period": "past"}, {"contract_id"}),
        ({"contract_id": 0, "period": "past"}, {"contract_id"}),
        ({"contract_id": 2**40, "period": "past"}, {"contract_id"}),
        ({"contract_id": "own", "scope": "all", "period": "past"}, {"scope"}),
        ({"scope": "everything", "period": "past"}, {"scope"}),
        ({"scope": "all"}, {"period"}),
        ({"scope": "all", "period": ""}, {"period"}),
        ({"scope": "all", "period": 202603}, {"period"}),
        ({"scope": "all", "period": "2026-13"}, {"period"}),
        ({"scope": "all", "period": "2026/03"}, {"period"}),
        ({"scope": "all", "period": "this month"}, {"period"}),
        ({"scope": "all", "period": "next year"}, {"period"}),
        ({"scope": "all", "period": "past", "reason": "x"}, {"reason"}),
    ],
)
def test_bad_post_bodies_are_422_and_make_nothing(api_client, world, payload, fields):
    client, headers = api_client(Role.ADMIN)
    values = {
        "past": PERIOD.previous().key,
        "this month": THIS_MONTH.key,
        "next year": f"{TODAY.year + 1}-01",
        "own": world.contract.id,
    }
    body = {k: values.get(v, v) if isinstance(v, str) else v for k, v in payload.items()}
    before = _count_returns()
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert set(response.get_json()["errors"]) == fields
    assert _count_returns() == before


def test_post_bodies_that_are_not_json_objects_are_422(api_client, world):
    client, headers = api_client(Role.ADMIN)
    for kwargs in ({"data": "period=2026-01"}, {"json": [1, 2]}, {"json": "all"}):
        response = client.post(URL, headers=headers, **kwargs)
        assert response.status_code == 422
        assert set(response.get_json()["errors"]) == {"body"}
    assert _count_returns() == 3


def test_commissioners_cannot_make_returns(api_client, world):
    client, headers = api_client(Role.COMMISSIONER, organisation=world.commissioner)
    payload = {"contract_id": world.contract.id, "period": PERIOD.previous().key}
    assert client.post(URL, json=payload, headers=headers).status_code == 403
    assert _count_returns() == 3


# Files ----------------------------------------------------------------------------------


def test_the_csv_has_the_spec_columns_and_is_formula_safe(api_client, world):
    client, headers = api_client(Role.COMMISSIONER, organisation=world.commissioner)
    response = client.get(f"{URL}/{world.own.kpi_return.id}.csv", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["Cache-Control"] == "no-store"
    rows = _rows(response)
    assert rows[0] == [*COLUMNS, "provisional"]  # a flag after the specification's columns
    assert list(COLUMNS) == [
        "period",
        "scope",
        "span",
        "code",
        "name",
        "breakdown",
        "value",
        "suppressed",
        "target_minimum",
        "target_expected",
        "target_stretch",
        "target_rating",
        "version",
        "generated_at",
    ]
    assert len(rows) - 1 == len(world.own.kpi_return.figures)
    for row in rows[1:]:
        assert row[0] == PERIOD.key
        assert row[1] == "'" + world.contract.name  # neutralised, not a formula
        assert not row[1].startswith(("=", "+", "-", "@"))
    a1 = next(r for r in rows if r[3] == "A1" and r[5] == "")
    assert a1[2] == "month" and a1[6] == "*" and a1[7] == "yes"
    assert "3" not in a1[6:12]
    b4 = next(r for r in rows if r[2:4] == ["month", "B4"] and r[5] == "")
    assert b4[6:12] == ["0", "no", "1", "2", "3", "red"]  # numbers as numbers, levels given


def test_commissioners_cannot_ask_for_raw_csv(api_client, world):
    client, headers = api_client(Role.COMMISSIONER, organisation=world.commissioner)
    response = client.get(f"{URL}/{world.own.kpi_return.id}.csv?raw=true", headers=headers)
    assert response.status_code == 403
    assert "raw_value" not in response.get_data(as_text=True)


def test_admins_may_add_raw_values_to_the_csv(api_client, world):
    client, headers = api_client(Role.ADMIN)
    response = client.get(f"{URL}/{world.everything.kpi_return.id}.csv?raw=true", headers=headers)
    assert response.status_code == 200
    rows = _rows(response)
    assert rows[0] == [*COLUMNS, "provisional", "changed_since_made", "raw_value"]
    a1 = next(r for r in rows if r[3] == "A1" and r[5] == "")
    assert a1[1] == "All activity" and a1[6] == "*" and a1[-1] == "3"
    plain = _rows(client.get(f"{URL}/{world.everything.kpi_return.id}.csv", headers=headers))
    assert plain[0] == [*COLUMNS, "provisional"]
    bad = client.get(f"{URL}/{world.everything.kpi_return.id}.csv?raw=yes", headers=headers)
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"raw"}


def test_exports_are_audited(api_client, world):
    admin = factories.make_user(Role.ADMIN)
    client, headers = api_client(admin)
    kpi_return = world.own.kpi_return
    assert client.get(f"{URL}/{kpi_return.id}.csv?raw=true", headers=headers).status_code == 200
    db.session.expire_all()
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "kpi_return.exported")
    ).all()
    assert len(events) == 1
    event = events[0]
    assert (event.actor_id, event.object_type, event.object_id) == (
        admin.id,
        "kpi_return",
        str(kpi_return.id),
    )
    assert event.detail["format"] == "csv" and event.detail["raw"] is True


PDF_BUILDER = importlib.util.find_spec("referrals.reports.pdf") is not None


def test_the_pdf_is_sent_and_audited(api_client, world):
    client, headers = api_client(Role.COMMISSIONER, organisation=world.commissioner)
    if not PDF_BUILDER:
        pytest.skip("referrals/reports/pdf.py (build_return_pdf) is still being written")
    response = client.get(f"{URL}/{world.own.kpi_return.id}.pdf", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.get_data().startswith(b"%PDF")
    assert response.headers["Content-Disposition"].startswith("attachment")
    db.session.expire_all()
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "kpi_return.exported"))
    assert event is not None and event.detail["format"] == "pdf"


def test_the_endpoints_are_in_the_openapi_document(api_client, app):
    client, headers = api_client(Role.COMMISSIONER)
    document = client.get("/api/v1/openapi.json", headers=headers).get_json()
    paths = document["paths"]
    assert set(paths["/kpi/returns"]) == {"get", "post"}
    for path in ("/kpi/returns/{return_id}", "/kpi/returns/{return_id}.csv"):
        assert "404" in paths[path]["get"]["responses"]
    assert "application/pdf" in str(paths["/kpi/returns/{return_id}.pdf"]["get"]["responses"])
    figure = document["components"]["schemas"]["KpiFigure"]
    assert "raw_value" not in figure["required"]
