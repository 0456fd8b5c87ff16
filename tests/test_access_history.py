"""Who has seen this person? A person's history from the audit log: every kind of view and
change, who, when, from where and what; the audit log's filters by person, user, action and
date; a CSV for a subject access request; and a bounded number of queries per page."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, select

from referrals.audit import AuditEvent, record
from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.intake.models import Referral
from tests import factories
from tests.intake_helpers import make_referral
from tests.query_counts import counting_queries
from tests.test_restore_safety import OLDER, empty_database, other_app
from tests.world import World, build_world


def _referral(world: World, label: str) -> Referral:
    referral = db.session.get(Referral, world.ids("referral")[label])
    assert referral is not None
    return referral


def _rows(csv_bytes: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig"))))


def test_a_persons_history_answers_who_has_seen_them_by_every_way_in(
    app: Flask, login_as: Any, api_client: Any, runner: Any
) -> None:
    world = build_world()
    mine, other = _referral(world, "ref_a"), _referral(world, "ref_b")
    worker = world.user(Role.LINK_WORKER)
    admin = world.user(Role.ADMIN)
    enrolment_id = world.ids("enrolment")["enr_a"]
    session_id = world.ids("session")["sess_a"]

    pages = login_as(worker)
    assert pages.get(f"/referrals/{mine.id}").status_code == 200  # a page
    assert pages.get(f"/referrals/{other.id}").status_code == 200  # someone else
    artist = login_as(world.user(Role.ARTIST))
    assert artist.get(f"/sessions/{session_id}/register.pdf").status_code == 200  # a download
    api, headers = api_client(worker)
    assert api.get(f"/api/v1/enrolments/{enrolment_id}", headers=headers).status_code == 200
    erased = runner.invoke(  # a command
        args=[
            "retention",
            "person",
            str(mine.patient_id),
            "--reason",
            "SAR 12",
            "--by",
            admin.email,
        ]
    )
    assert erased.exit_code == 0, erased.output

    client = login_as(admin)
    page = client.get(f"/admin/people/{mine.patient_id}/access")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for said in (
        "Saw the person&#39;s referral",
        "Page: /referrals/&lt;int:referral_id&gt;",
        worker.name,
        "Link worker",
        worker.organisation.name,
        "127.0.0.1",
        "Printed a register naming the person",
        "Download: /sessions/&lt;int:session_id&gt;/register.pdf",
        "Saw the person&#39;s place on a course",
        "API: /api/v1/enrolments/&lt;int:enrolment_id&gt;",
        "Pseudonymised the person&#39;s record",
        "Command line:",
        "Saw who has seen this person",  # this very view
    ):
        assert said in text, said

    download = client.get(f"/admin/people/{mine.patient_id}/access.csv")
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = _rows(download.data)
    whats = [row["What"] for row in rows]
    assert whats[0] == "Downloaded who has seen this person"  # newest first, itself included
    assert "Saw the person's referral" in whats and "Pseudonymised the person's record" in whats
    viewed = next(row for row in rows if row["Action"] == "referral.viewed")
    assert (viewed["Who"], viewed["Role"], viewed["Address"]) == (
        worker.name,
        "Link worker",
        "127.0.0.1",
    )
    # Only this person: the other referral's view is not in their history.
    assert f"referral {other.id}" not in {row["Record"] for row in rows}
    exported = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.access_history_exported")
    ).all()
    assert [(e.actor_id, e.subject_person_id) for e in exported] == [(admin.id, mine.patient_id)]


def _entries_for(person_id: int, count: int, first: datetime) -> None:
    db.session.execute(
        insert(AuditEvent),
        [
            {
                "at": first + timedelta(hours=i),
                "action": "referral.viewed",
                "object_type": "referral",
                "object_id": "1",
                "subject_person_id": person_id,
                "detail": {},
            }
            for i in range(count)
        ],
    )
    db.session.commit()


def test_the_history_pages_by_date_keeps_bad_dates_at_their_field_and_counts_its_queries(
    app: Flask, login_as: Any
) -> None:
    world = build_world()
    person = _referral(world, "ref_a").patient_id
    client = login_as(world.user(Role.ADMIN))
    url = f"/admin/people/{person}/access"
    _entries_for(person, 5, datetime(2026, 3, 1, 9, tzinfo=UTC))
    with counting_queries() as few:
        client.get(url)
    _entries_for(person, 120, datetime(2026, 4, 1, 9, tzinfo=UTC))
    with counting_queries() as many:
        page = client.get(url)
    assert len(many) == len(few)  # one page of 50 costs what a page of 5 does
    text = page.get_data(as_text=True)
    assert "Showing 1 to 50 of" in text and "Page 2 of 3" in text

    # UK dates, both ends included: 1 March 2026 holds the 5 early entries' day.
    march = client.get(url, query_string={"since": "1/3/2026", "until": "1 3 2026"})
    assert "5 entries" in march.get_data(as_text=True)
    csv_march = client.get(f"{url}.csv", query_string={"since": "1/3/2026", "until": "1/3/2026"})
    assert len([r for r in _rows(csv_march.data) if r["Action"] == "referral.viewed"]) == 5

    bad = client.get(url, query_string={"since": "31/2/2026", "until": "1/1/2026"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "Enter a real date, for example 1 3 2026" in text
    assert 'value="31/2/2026"' in text  # the input is kept
    backwards = client.get(url, query_string={"since": "2/3/2026", "until": "1/3/2026"})
    assert "The end date must be the same as or after the start date" in backwards.get_data(
        as_text=True
    )
    assert client.get(f"{url}.csv", query_string={"since": "junk"}).status_code == 302


def test_the_audit_log_filters_by_person_user_action_and_date(app: Flask, login_as: Any) -> None:
    world = build_world()
    mine, other = _referral(world, "ref_a"), _referral(world, "ref_b")
    worker = world.user(Role.LINK_WORKER)
    pages = login_as(worker)
    pages.get(f"/referrals/{mine.id}")
    pages.get(f"/referrals/{other.id}")
    client = login_as(world.user(Role.ADMIN))

    def shown(**args: str) -> str:
        response = client.get("/admin/audit", query_string=args)
        assert response.status_code == 200
        return response.get_data(as_text=True)

    by_person = shown(person=f"P{mine.patient_id}", action="referral.viewed")
    assert f">P{mine.patient_id}<" in by_person and f">P{other.patient_id}<" not in by_person
    assert "1 event<" in by_person
    by_referral = shown(person=f"r{other.id}", action="referral.viewed", user=str(worker.id))
    assert f">P{other.patient_id}<" in by_referral and "1 event<" in by_referral
    assert "No events match" in shown(person=f"P{mine.patient_id}", until="1/1/2001")
    assert f">P{mine.patient_id}<" in shown(person=f"P{mine.patient_id}", since="1/1/2001")

    bad = shown(person="Quenby", since="yesterday")
    assert "Enter a person&#39;s id such as P123, or a referral&#39;s such as R45" in bad
    assert "Enter a real date, for example 1 3 2026" in bad
    assert 'value="QUENBY"' in bad and 'value="yesterday"' in bad
    assert "There is no referral R999999" in shown(person="R999999")


def _subjects() -> dict[int, int | None]:
    entries = db.session.execute(select(AuditEvent.id, AuditEvent.subject_person_id))
    return {entry: person for entry, person in entries}


def test_upgrading_names_the_person_on_entries_written_before(app: Flask, tmp_path: Path) -> None:
    """The migration finds each older entry's person through the record it names, as entries
    written since find it when they are written."""
    with empty_database(app, tmp_path, "backfill") as url, other_app(url, tmp_path / "l"):
        upgrade()
        worker = factories.make_user(Role.LINK_WORKER)
        practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
        referral = make_referral(worker, practice, nhs="9990101019", today=date(2026, 5, 1))
        db.session.flush()
        record(None, "referral.viewed", object_type="referral", object_id=referral.id)
        record(None, "wellbeing.seen", object_type="other", object_id=1, referral_id=referral.id)
        record(None, "patient.viewed", referral.patient)
        record(worker, "user.updated", worker)
        db.session.commit()
        written = dict(
            db.session.execute(select(AuditEvent.id, AuditEvent.subject_person_id)).tuples().all()
        )
        assert set(written.values()) == {referral.patient_id, None}
        assert list(written.values()).count(referral.patient_id) >= 4
        db.session.remove()
        downgrade(revision=OLDER)
        upgrade()
        upgraded = dict(
            db.session.execute(select(AuditEvent.id, AuditEvent.subject_person_id)).tuples().all()
        )
        assert upgraded == written
