"""A return's "provisional" and "changed since it was made" flags, wherever a return is read: the
dashboard, the PDF, the CSV and the API. Provisional is for everyone who sees the return; changed
since it was made is for admins, who may regenerate it.

March 2026: one contract's return is made on 7 April, before the month's registers close (so it
is provisional); an admin then corrects a March register, so it has changed since it was made.
Another contract's return is made on the 8th, when they have closed: final and unchanged.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses.models import CourseSession
from referrals.courses.services import save_register
from referrals.extensions import db
from referrals.reports.csv_export import COLUMNS
from referrals.reports.models import KpiReturn
from referrals.reports.pdf import build_return_pdf
from referrals.reports.periods import Period
from referrals.reports.services import make_return
from tests import factories
from tests.factories import make_contract, make_course
from tests.test_return_pdf import flat

MARCH = Period(2026, 3)
BEFORE_CLOSE = date(2026, 4, 7)
DUE_DAY = date(2026, 4, 8)
URL = "/api/v1/kpi/returns"


@dataclass
class Flagged:
    commissioner: Organisation
    admin: User
    early: KpiReturn  # provisional, and changed since it was made
    final: KpiReturn  # neither


@pytest.fixture()
def flagged(app: Any) -> Flagged:
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    contract = make_contract(
        name="Provisional arts contract", commissioner=commissioner,
        start_date=MARCH.start, end_date=date(2026, 12, 31),
    )  # fmt: skip
    other = make_contract(
        name="Final arts contract", commissioner=commissioner,
        start_date=MARCH.start, end_date=date(2026, 12, 31),
    )  # fmt: skip
    course = make_course(contract=contract, start=date(2026, 3, 2), sessions=4)
    admin = factories.make_user(Role.ADMIN, name="Ishbel Admin")
    early = make_return(contract.id, MARCH, today=BEFORE_CLOSE, actor=admin).kpi_return
    final = make_return(other.id, MARCH, today=DUE_DAY, actor=admin).kpi_return
    session = db.session.scalar(
        select(CourseSession).where(CourseSession.course_id == course.id).limit(1)
    )
    save_register(admin, session, [], today=date(2026, 4, 20))  # an admin's late correction
    db.session.commit()
    db.session.expire_all()
    assert early.provisional and early.registers_changed_at is not None
    assert not final.provisional and final.registers_changed_at is None
    return Flagged(commissioner, admin, early, final)


def _section(page: str, name: str) -> str:
    return page.split(f">{name}</h2>", 1)[1].split("</section>", 1)[0]


def test_the_dashboard_shows_both_flags_and_the_second_to_admins_only(login_as, flagged):
    admin_page = login_as(flagged.admin).get("/returns/").get_data(as_text=True)
    early = _section(admin_page, "Provisional arts contract")
    assert "Provisional</strong> This return was made before the registers" in early
    assert "Changed since it was made</strong> A register for March 2026" in early
    assert f"/returns/{flagged.early.id}/regenerate" in early
    final = _section(admin_page, "Final arts contract")
    assert "Provisional" not in final and "Changed since it was made" not in final

    commissioner = login_as(Role.COMMISSIONER, organisation=flagged.commissioner)
    page = commissioner.get("/returns/").get_data(as_text=True)
    early = _section(page, "Provisional arts contract")
    assert "Provisional</strong>" in early
    assert "Changed since it was made" not in page and "/regenerate" not in page
    assert "Provisional" not in _section(page, "Final arts contract")


def test_the_pdf_says_provisional_and_admins_copy_says_changed(app, flagged):
    standard = flat(build_return_pdf(flagged.early))
    assert (
        "Provisional. This return was made before the registers for March 2026 closed" in standard
    )
    assert "Status Provisional: made before the month's registers closed" in standard
    assert "version 1, provisional" in standard  # every page's footer
    assert "Changed since it was made" not in standard  # the commissioners' copy
    admin_copy = flat(build_return_pdf(flagged.early, raw=True))
    assert "Changed since it was made. A register for March 2026 was saved on" in admin_copy

    final = flat(build_return_pdf(flagged.final, raw=True))
    assert "Status Final: made after the month's registers closed" in final
    assert "Provisional" not in final and "Changed since it was made" not in final


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200
    text = response.get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]] or [{}]


def test_the_csv_adds_the_flags_after_the_specifications_columns(login_as, flagged):
    commissioner = login_as(Role.COMMISSIONER, organisation=flagged.commissioner)
    response = commissioner.get(f"/returns/{flagged.early.id}.csv")
    header = next(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert header == [*COLUMNS, "provisional"]  # v2's columns unchanged, in their order
    assert {row["provisional"] for row in _csv(response)} == {"yes"}
    final = _csv(commissioner.get(f"/returns/{flagged.final.id}.csv"))
    assert {row["provisional"] for row in final} == {"no"}

    admin = login_as(flagged.admin)
    response = admin.get(f"/returns/{flagged.early.id}.csv?raw=1")
    header = next(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert header == [*COLUMNS, "provisional", "changed_since_made", "raw_value"]
    assert {row["changed_since_made"] for row in _csv(response)} == {"yes"}
    final = _csv(admin.get(f"/returns/{flagged.final.id}.csv?raw=1"))
    assert {(row["provisional"], row["changed_since_made"]) for row in final} == {("no", "no")}


def test_the_api_gives_the_flags_as_fields(api_client, flagged):
    client, headers = api_client(Role.COMMISSIONER, organisation=flagged.commissioner)
    listed = {i["id"]: i for i in client.get(URL, headers=headers).get_json()["items"]}
    assert listed[flagged.early.id]["provisional"] is True
    assert listed[flagged.final.id]["provisional"] is False
    one = client.get(f"{URL}/{flagged.early.id}", headers=headers).get_json()
    assert one["provisional"] is True
    assert "changed_since_made" not in one and "changed_since_made" not in listed[flagged.early.id]

    client, headers = api_client(flagged.admin)
    listed = {i["id"]: i for i in client.get(URL, headers=headers).get_json()["items"]}
    assert listed[flagged.early.id]["changed_since_made"] is True
    assert listed[flagged.final.id]["changed_since_made"] is False
    one = client.get(f"{URL}/{flagged.early.id}", headers=headers).get_json()
    assert one["provisional"] is True and one["changed_since_made"] is True

    document = client.get("/api/v1/openapi.json", headers=headers).get_json()
    schema = document["components"]["schemas"]
    summary = schema["KpiReturnSummary"]
    assert "provisional" in summary["required"]
    assert {"provisional", "changed_since_made"} <= set(summary["properties"])
