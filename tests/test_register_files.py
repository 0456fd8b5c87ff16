"""Paper registers: the printable PDF, the CSV template, and the strict all-or-nothing upload."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.clock import LONDON
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    SessionStatus,
)
from referrals.courses.register_files import (
    CSV_HEADER,
    MAX_CSV_BYTES,
    MAX_CSV_ROWS,
    RegisterCsvInvalid,
    build_register_csv,
    build_register_pdf,
    parse_register_csv,
    parse_register_lines,
)
from referrals.courses.schedule import Frequency, Schedule
from referrals.courses.services import (
    ContractFields,
    CourseFields,
    RegisterEntry,
    VenueFields,
    cancel_session,
    create_course,
    create_venue,
    enrol,
    register_enrolments,
    save_contract,
)
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.intake.models import Referral
from referrals.intake.services import record_conversation
from referrals.intake.validation import format_nhs_number
from referrals.vocab import ArtForm
from tests.conftest import csrf_token, submit
from tests.course_helpers import from_start
from tests.factories import make_organisation, make_user
from tests.intake_helpers import make_referral, nhs_numbers, pdf_text

NAMES = (("Ada", "Lovelace"), ("Bill", "Bloggs"), ("Cara", "Jones"))
_NHS_NUMBERS = nhs_numbers()


T = TypeVar("T")


def reload(model: type[T], ident: int) -> T:
    """A row read afresh from the database."""
    db.session.expire_all()
    row = db.session.get(model, ident)
    assert row is not None
    return row


def london_today() -> date:
    return clock.today()


@dataclass
class World:
    provider: Organisation
    artist: User
    course: Course
    session: CourseSession
    enrolments: list[Enrolment]
    referrals: list[Referral]

    @property
    def people(self) -> dict[int, str]:
        return {e.id: e.referral.patient.full_name for e in self.enrolments}


def build_world(
    names: Sequence[tuple[str, str]] = NAMES, *, first_session: date | None = None
) -> World:
    """A provider, its artist and a weekly course of 4 sessions with people enrolled.

    The session under test is the one dated today (the first, unless `first_session` is
    earlier).
    """
    today = london_today()
    start = first_session or today
    commissioner = make_organisation(OrganisationKind.COMMISSIONER)
    provider = make_organisation(OrganisationKind.PROVIDER)
    provider.name = f"Hartbury Arts {provider.id}"
    artist = make_user(Role.ARTIST, organisation=provider)
    practice = make_organisation(OrganisationKind.GP_PRACTICE)
    referrer = make_user(Role.REFERRER, organisation=practice)
    link_worker = make_user(Role.LINK_WORKER)
    contract = save_contract(
        None,
        ContractFields(
            name=f"Arts contract {provider.id}",
            commissioner=commissioner,
            start_date=today - timedelta(days=365),
            end_date=today + timedelta(days=365),
        ),
        today=today,
    )
    venue = create_venue(
        None,
        VenueFields(
            name="St Mary's church hall",
            address="1 Church Lane\nGloucester",
            postcode="GL1 1AA",
            accessibility="Step-free entrance",
        ),
    )
    course = create_course(
        None,
        CourseFields(
            title="Singing for Better Breathing!",
            art_form=ArtForm.SINGING,
            provider=provider,
            contract=contract,
            venue=venue,
            capacity=10,
            schedule=Schedule(
                start_date=start,
                start_time=time(10, 0),
                duration_minutes=90,
                frequency=Frequency.WEEKLY,
                sessions=4,
                skip_bank_holidays=False,
            ),
            lead_artists=[artist],
        ),
    )
    referrals = []
    enrolments = []
    for given, family in names:
        referral = make_referral(
            referrer,
            practice,
            nhs=next(_NHS_NUMBERS),
            today=start,
            given_name=given,
            family_name=family,
        )
        record_conversation(link_worker, referral, held_on=start, what_matters="Singing")
        enrolments.append(enrol(link_worker, referral, course, today=start, at=from_start(course)))
        referrals.append(referral)
    if referrals:
        referrals[0].patient.access_needs = "Wheelchair user"
        referrals[0].patient.communication_needs = "Hard of hearing"
    db.session.flush()
    session = course.sessions[0]
    db.session.commit()
    return World(provider, artist, course, session, enrolments, referrals)


def csv_bytes(rows: Sequence[Sequence[Any]], header: Sequence[str] = CSV_HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def good_rows(world: World) -> list[list[Any]]:
    a, b, c = world.enrolments
    return [
        [a.id, "Ada Lovelace", "attended", "4", "7", "Sang the solo"],
        [b.id, "Bill Bloggs", "Apologies", "", "", ""],
        [c.id, "Cara Jones", "no show", "", "", ""],
    ]


def upload_url(session: CourseSession) -> str:
    return f"/sessions/{session.id}/register/upload"


def upload(client: Any, session: CourseSession, data: bytes, filename: str = "register.csv") -> Any:
    return submit(
        client,
        upload_url(session),
        {"register_file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def page_text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def attendance_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Attendance)) or 0


def assert_nothing_saved(world: World) -> None:
    db.session.expire_all()
    assert attendance_count() == 0
    assert reload(CourseSession, world.session.id).status is SessionStatus.PLANNED
    for referral in world.referrals:
        assert reload(Referral, referral.id).status is Status.ENROLLED


def audit_actions(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# The printable register -----------------------------------------------------------------


def test_pdf_lists_people_and_session_without_clinical_details(login_as: Any) -> None:
    world = build_world()
    client = login_as(world.artist)

    response = client.get(f"/sessions/{world.session.id}/register.pdf")

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert f"register-singing-for-better-breathing-{world.session.date.isoformat()}.pdf" in (
        disposition
    )
    text = pdf_text(response.data)
    flat = " ".join(text.split())
    for given, family in NAMES:
        assert f"{given} {family}" in flat
    assert "Singing for Better Breathing!" in flat
    assert "Hartbury Arts" in flat
    assert "St Mary's church hall" in flat
    assert "Session 1 of 4" in flat
    assert "10:00 to 11:30" in flat
    assert "01632960001" in flat
    assert "Wheelchair user" in flat and "Hard of hearing" in flat
    for heading in ("Attended", "Apologies", "No show", "Mood before", "Mood after", "Note"):
        assert heading in flat
    assert "signature" in flat
    # Nothing a register does not need.
    digits = "".join(text.split())
    for referral in world.referrals:
        nhs = referral.patient.nhs_number
        assert nhs is not None
        assert nhs not in digits
        assert format_nhs_number(nhs) not in text
    assert "1950" not in flat  # year of birth
    assert "Low mood" not in flat  # reason for referral
    events = audit_actions("register.printed")  # one per person on it, naming their place
    assert sorted(
        (e.actor_id, e.object_type, e.object_id, e.detail["session_id"]) for e in events
    ) == sorted(
        (world.artist.id, "enrolment", str(e.id), world.session.id) for e in world.enrolments
    )


def test_pdf_escapes_names_and_handles_an_empty_register(app: Any) -> None:
    world = build_world(names=[("<b>Tom</b> & <i>", "O'Brien")])
    text = pdf_text(
        build_register_pdf(world.session, world.enrolments, service_name="Arts on Prescription")
    )
    assert "<b>Tom</b> & <i> O'Brien" in " ".join(text.split())

    empty = build_world(names=[])
    text = pdf_text(build_register_pdf(empty.session, [], service_name="Arts on Prescription"))
    assert "No one is enrolled" in text


def test_pdf_of_a_long_register_runs_to_several_pages(app: Any) -> None:
    world = build_world(names=[(f"Person{n}", "Example") for n in range(30)])
    data = build_register_pdf(world.session, world.enrolments, service_name="Arts")
    text = " ".join(pdf_text(data).split())
    assert "Person0 Example" in text and "Person29 Example" in text
    assert "Page 2" in text


# The CSV template -----------------------------------------------------------------------


def test_csv_template_lists_people_to_fill_in(login_as: Any) -> None:
    world = build_world()
    client = login_as(world.artist)

    response = client.get(f"/sessions/{world.session.id}/register.csv")

    assert response.status_code == 200
    assert response.headers.getlist("Content-Type") == ["text/csv; charset=utf-8"]
    assert response.headers["Cache-Control"] == "no-store"
    assert "Date" not in response.headers  # the server adds it, once
    assert ".csv" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == list(CSV_HEADER)
    assert rows[1:] == [
        [str(e.id), f"{given} {family}", "", "", "", ""]
        for e, (given, family) in zip(world.enrolments, NAMES, strict=True)
    ]
    assert len(audit_actions("register.template_downloaded")) == len(world.enrolments)


def test_csv_template_round_trips_through_the_parser(app: Any) -> None:
    world = build_world()
    template = build_register_csv(register_enrolments(world.session))

    # Untouched, every person still needs a status.
    with pytest.raises(RegisterCsvInvalid) as caught:
        parse_register_csv(template, world.people)
    assert caught.value.errors == [
        f"Line {n}: status must be attended, apologies or no_show" for n in (2, 3, 4)
    ]

    # Filled in as a spreadsheet would, it parses back to the same people.
    rows = list(csv.reader(io.StringIO(template.decode("utf-8-sig"))))
    for row, status in zip(rows[1:], ("attended", "apologies", "no_show"), strict=True):
        row[2] = status
        row[3] = "5" if status == "attended" else ""
    filled = io.StringIO()
    csv.writer(filled, lineterminator="\r\n").writerows(rows)
    entries = parse_register_csv(filled.getvalue().encode("utf-8-sig"), world.people)
    assert entries == [
        RegisterEntry(e.id, status, 5 if status is AttendanceStatus.ATTENDED else None, None, "")
        for e, status in zip(world.enrolments, AttendanceStatus, strict=True)
    ]


def test_formula_looking_names_are_neutralised_in_the_template(login_as: Any) -> None:
    world = build_world(
        names=[
            ('=HYPERLINK("http://x.test","y")', "Smith"),
            ("@SUM(A1)", "Jones"),
            ("+44", "Brown"),
            ("-1", "Green"),
        ]
    )
    client = login_as(world.artist)
    data = client.get(f"/sessions/{world.session.id}/register.csv").data
    names = [row[1] for row in csv.reader(io.StringIO(data.decode("utf-8-sig")))][1:]
    assert names == [
        '\'=HYPERLINK("http://x.test","y") Smith',
        "'@SUM(A1) Jones",
        "'+44 Brown",
        "'-1 Green",
    ]
    for name in names:
        assert name.startswith("'")


# Uploading a completed register ---------------------------------------------------------


def test_upload_page_offers_the_file_input_and_downloads(login_as: Any) -> None:
    world = build_world()
    client = login_as(world.artist)
    response = client.get(upload_url(world.session))
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert 'enctype="multipart/form-data"' in body
    assert 'type="file"' in body and 'id="register_file"' in body
    assert '<label class="nhsuk-label' in body and 'for="register_file"' in body
    assert f"/sessions/{world.session.id}/register.csv" in body
    assert f"/sessions/{world.session.id}/register.pdf" in body
    assert 'name="csrf_token"' in body


def test_good_upload_saves_every_row_and_marks_the_session_delivered(login_as: Any) -> None:
    world = build_world()
    client = login_as(world.artist)

    response = upload(client, world.session, csv_bytes(good_rows(world)))

    assert response.status_code == 302
    assert response.headers["Location"].endswith(
        (f"/sessions/{world.session.id}/register", upload_url(world.session))
    )
    db.session.expire_all()
    saved = {
        a.enrolment_id: (a.status, a.mood_before, a.mood_after, a.note, a.recorded_by_id)
        for a in db.session.scalars(select(Attendance))
    }
    a, b, c = world.enrolments
    assert saved == {
        a.id: (AttendanceStatus.ATTENDED, 4, 7, "Sang the solo", world.artist.id),
        b.id: (AttendanceStatus.APOLOGIES, None, None, "", world.artist.id),
        c.id: (AttendanceStatus.NO_SHOW, None, None, "", world.artist.id),
    }
    session = reload(CourseSession, world.session.id)
    assert session.status is SessionStatus.DELIVERED
    assert session.register_saved_by_id == world.artist.id
    assert reload(Referral, world.referrals[0].id).status is Status.STARTED
    assert len(audit_actions("register.saved")) == 1
    assert len(audit_actions("register.uploaded")) == 1
    followed = client.get(response.headers["Location"])
    assert "Register uploaded: 3 people recorded" in page_text(followed)


def _bad_upload(world: World, kind: str) -> tuple[bytes, str]:
    """A file that is good except for one problem, and the message that must name it."""
    rows = good_rows(world)
    a = world.enrolments[0]
    if kind == "bad status":
        rows[2][2] = "late"
        return csv_bytes(rows), "Line 4: status must be attended, apologies or no_show"
    if kind == "mood 11":
        rows[1][4] = "11"
        return csv_bytes(rows), "Line 3: mood_after must be empty or a whole number from 0 to 10"
    if kind == "unknown enrolment":
        rows[1][0] = 999_999
        return csv_bytes(rows), "Line 3: enrolment_id 999999 is not on this session's register"
    if kind == "enrolment on another course":
        other = build_world(names=[("Dan", "Other")])
        rows[1][0] = other.enrolments[0].id
        return csv_bytes(rows), f"Line 3: enrolment_id {other.enrolments[0].id} is not on"
    if kind == "duplicate":
        rows[2][0] = a.id
        return csv_bytes(rows), f"Line 4: Ada Lovelace (enrolment_id {a.id}) is already on line 2"
    if kind == "wrong header":
        header = ("enrolment_id", "status", "name", "mood_before", "mood_after", "note")
        return csv_bytes(rows, header), "Line 1: the first line must be the header"
    if kind == "not utf-8":
        data = csv_bytes(rows).replace(b"Cara Jones", "Cara Jönes".encode("cp1252"))
        return data, "Line 4: the file is not UTF-8 text"
    if kind == "too big":
        padding = "x" * 1000
        rows += [[a.id + 1000 + n, "Filler", "attended", "", "", padding] for n in range(120)]
        data = csv_bytes(rows)
        assert len(data) > MAX_CSV_BYTES
        return data, "The file must be 100 KB or smaller"
    if kind == "too many columns":
        rows[0].append("extra")
        return csv_bytes(rows), "Line 2: expected 6 columns, found 7"
    raise AssertionError(kind)


BAD_KINDS = [
    "bad status",
    "mood 11",
    "unknown enrolment",
    "enrolment on another course",
    "duplicate",
    "wrong header",
    "not utf-8",
    "too big",
    "too many columns",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_one_bad_line_refuses_the_whole_upload(login_as: Any, kind: str) -> None:
    world = build_world()
    data, message = _bad_upload(world, kind)
    client = login_as(world.artist)

    response = upload(client, world.session, data)

    assert response.status_code == 200
    text = page_text(response)
    assert "There is a problem" in text
    assert "Nothing was saved" in text
    assert message in text
    # Shown in the error summary (linked to the field) and at the field itself.
    assert text.count(message) >= 2
    assert 'href="#register_file"' in response.get_data(as_text=True)
    assert_nothing_saved(world)
    assert audit_actions("register.saved") == []


def test_every_problem_is_listed_with_its_line(login_as: Any) -> None:
    world = build_world()
    rows = good_rows(world)
    rows[0][3] = "ten"
    rows[2][2] = ""
    client = login_as(world.artist)

    response = upload(client, world.session, csv_bytes(rows))

    text = page_text(response)
    assert "Line 2: mood_before must be empty or a whole number from 0 to 10" in text
    assert "Line 4: status must be attended, apologies or no_show" in text
    assert_nothing_saved(world)


def test_upload_without_a_file_or_with_another_kind_of_file(login_as: Any) -> None:
    world = build_world()
    client = login_as(world.artist)

    response = submit(client, upload_url(world.session), {}, content_type="multipart/form-data")
    assert response.status_code == 200
    assert "Select the completed register CSV file" in page_text(response)

    response = upload(client, world.session, csv_bytes(good_rows(world)), filename="reg.xlsx")
    assert "The selected file must be a CSV" in page_text(response)
    assert_nothing_saved(world)


def test_upload_needs_the_csrf_token(login_as: Any) -> None:
    world = build_world()
    client = login_as(world.artist)
    response = client.post(
        upload_url(world.session),
        data={"register_file": (io.BytesIO(csv_bytes(good_rows(world))), "register.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert_nothing_saved(world)


def test_upload_to_a_cancelled_session_is_refused(login_as: Any) -> None:
    world = build_world()
    cancel_session(None, world.session, "Hall flooded")
    db.session.commit()
    client = login_as(world.artist)

    response = upload(client, world.session, csv_bytes(good_rows(world)))

    assert response.status_code == 200
    assert "This session was cancelled; it has no register" in page_text(response)
    db.session.expire_all()
    assert attendance_count() == 0
    assert reload(CourseSession, world.session.id).status is SessionStatus.CANCELLED


def test_upload_after_the_edit_window_is_refused_for_artists_not_admins(login_as: Any) -> None:
    world = build_world(first_session=london_today() - timedelta(days=21))
    assert world.session.date == london_today() - timedelta(days=21)
    data = csv_bytes(good_rows(world))

    response = upload(login_as(world.artist), world.session, data)
    assert "Registers can be changed for 7 days after the session" in page_text(response)
    assert_nothing_saved(world)

    response = upload(login_as(Role.ADMIN), world.session, data)
    assert response.status_code == 302
    db.session.expire_all()
    assert attendance_count() == 3


def test_upload_replaces_an_earlier_register(login_as: Any) -> None:
    world = build_world()
    client = login_as(world.artist)
    assert upload(client, world.session, csv_bytes(good_rows(world))).status_code == 302
    rows = good_rows(world)
    rows[1][2] = "attended"
    rows[1][3] = "6"
    assert upload(client, world.session, csv_bytes(rows[1:2])).status_code == 302
    db.session.expire_all()
    row = db.session.scalars(
        select(Attendance).where(Attendance.enrolment_id == world.enrolments[1].id)
    ).one()
    assert (row.status, row.mood_before) == (AttendanceStatus.ATTENDED, 6)
    assert attendance_count() == 3


# Who may use them -----------------------------------------------------------------------


def routes(session: CourseSession) -> list[str]:
    return [
        f"/sessions/{session.id}/register.pdf",
        f"/sessions/{session.id}/register.csv",
        upload_url(session),
    ]


def test_another_providers_artist_gets_404(login_as: Any) -> None:
    world = build_world()
    outsider = login_as(Role.ARTIST)
    for url in routes(world.session):
        assert outsider.get(url).status_code == 404, url
    token = csrf_token(outsider, "/")
    response = outsider.post(
        upload_url(world.session),
        data={
            "csrf_token": token,
            "register_file": (io.BytesIO(csv_bytes(good_rows(world))), "register.csv"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 404
    assert_nothing_saved(world)
    assert audit_actions("register.printed") == []
    assert outsider.get("/sessions/999999/register.pdf").status_code == 404


@pytest.mark.parametrize("role", [Role.REFERRER, Role.LINK_WORKER, Role.COMMISSIONER])
def test_other_roles_are_refused(login_as: Any, role: Role) -> None:
    world = build_world()
    client = login_as(role)
    for url in routes(world.session):
        assert client.get(url).status_code == 403, url


def test_admin_can_print_any_register(login_as: Any) -> None:
    world = build_world()
    client = login_as(Role.ADMIN)
    for url in routes(world.session):
        assert client.get(url).status_code == 200, url


def test_signed_out_visitors_are_sent_to_sign_in(client: Any) -> None:
    world = build_world()
    for url in routes(world.session):
        response = client.get(url)
        assert response.status_code == 302
        assert "/sign-in" in response.headers["Location"]


# The parser on its own (no database: it is a pure function) -----------------------------

PEOPLE = {11: "Ada Lovelace", 12: "Bill Bloggs", 13: "Cara Jones"}
HEADER = "enrolment_id,name,status,mood_before,mood_after,note"


def parse(text: str, *, bom: bool = False) -> list[RegisterEntry]:
    return parse_register_csv(("\ufeff" if bom else "").encode() + text.encode(), PEOPLE)


def problems(data: str | bytes) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(RegisterCsvInvalid) as caught:
        parse_register_csv(raw, PEOPLE)
    return caught.value.errors


def test_parser_accepts_spreadsheet_variations() -> None:
    text = (
        f"{HEADER}\r\n"
        "\r\n"
        '11,"Lovelace, Ada",Attended, 4 ,10,"Sang, and said:\nlovely"\r\n'
        "12,Bill Bloggs,NO SHOW,,,\r\n"
        "13,,no-show,,,  \r\n"
        ",,,,,\r\n"
    )
    assert parse(text, bom=True) == [
        RegisterEntry(11, AttendanceStatus.ATTENDED, 4, 10, "Sang, and said:\nlovely"),
        RegisterEntry(12, AttendanceStatus.NO_SHOW),
        RegisterEntry(13, AttendanceStatus.NO_SHOW, None, None, ""),
    ]
    assert parse(f"{HEADER}\n12,x,attended,0,,\n") == [
        RegisterEntry(12, AttendanceStatus.ATTENDED, 0)
    ]
    assert parse(f"{HEADER}\n12,x,apologies,,,\n") == [
        RegisterEntry(12, AttendanceStatus.APOLOGIES)
    ]
    assert parse(f"{HEADER}\n12,x,no_show,,,") == [RegisterEntry(12, AttendanceStatus.NO_SHOW)]


def test_parser_keeps_line_numbers_across_multi_line_notes() -> None:
    text = f'{HEADER}\n11,Ada,attended,,,"one\ntwo\nthree"\n\n12,Bill,maybe,,,\n'
    assert problems(text) == ["Line 6: status must be attended, apologies or no_show"]
    lines = parse_register_lines(
        f'{HEADER}\n11,Ada,attended,,,"a\nb"\n12,B,attended,,,'.encode(), PEOPLE
    )
    assert [item.line for item in lines] == [2, 4]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("11,Ada,present,,,", "Line 2: status must be attended, apologies or no_show"),
        ("11,Ada,,,,", "Line 2: status must be attended, apologies or no_show"),
        (
            "11,Ada,attended,11,,",
            "Line 2: mood_before must be empty or a whole number from 0 to 10",
        ),
        (
            "11,Ada,attended,-1,,",
            "Line 2: mood_before must be empty or a whole number from 0 to 10",
        ),
        (
            "11,Ada,attended,,7.5,",
            "Line 2: mood_after must be empty or a whole number from 0 to 10",
        ),
        (
            "11,Ada,attended,,ten,",
            "Line 2: mood_after must be empty or a whole number from 0 to 10",
        ),
        ("99,Ada,attended,,,", "Line 2: enrolment_id 99 is not on this session's register"),
        ("abc,Ada,attended,,,", "Line 2: enrolment_id must be a number from the template"),
        (",Ada,attended,,,", "Line 2: enrolment_id must be a number from the template"),
        ("11,Ada,attended,,", "Line 2: expected 6 columns, found 5"),
        ("11,Ada,attended,,,,", "Line 2: expected 6 columns, found 7"),
        ("11,Ada,attended,,," + "n" * 1001, "Line 2: Note must be 1000 characters or fewer"),
    ],
)
def test_parser_names_the_line_of_each_problem(row: str, message: str) -> None:
    assert problems(f"{HEADER}\n{row}\n") == [message]


def test_parser_accepts_a_note_of_exactly_1000_characters() -> None:
    assert parse(f"{HEADER}\n11,Ada,attended,,,{'n' * 1000}\n")[0].note == "n" * 1000


def test_parser_refuses_duplicates_naming_both_lines() -> None:
    assert problems(f"{HEADER}\n11,Ada,attended,,,\n12,B,attended,,,\n11,Ada,apologies,,,\n") == [
        "Line 4: Ada Lovelace (enrolment_id 11) is already on line 2"
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf\r\n\r\n", "The file is empty"),
        (HEADER.encode() + b"\n\n", "The file has a header but no rows: add one row per person"),
        (b"id,name,status\n11,Ada,attended\n", "Line 1: the first line must be the header"),
        (
            b"enrolment_id;name;status;mood_before;mood_after;note\n",
            "Line 1: the first line must be the header",
        ),
        (HEADER.encode() + b"\n11,Ada,attended,,,caf\xe9\n", "Line 2: the file is not UTF-8 text"),
        (b"\xff\xfe" + HEADER.encode("utf-16-le"), "Line 1: the file is not UTF-8 text"),
        (
            HEADER.encode() + b"\n11,Ada,attended,,,a\x00b\n",
            "Line 2: the file contains a null character",
        ),
        (HEADER.encode() + b'\n11,Ada,attended,,,"unfinished\n', "Line 2: the CSV is malformed"),
        (HEADER.encode() + b'\n11,Ada,attended,,,"a"b\n', "Line 2: the CSV is malformed"),
    ],
)
def test_parser_refuses_files_it_cannot_read(data: bytes, message: str) -> None:
    errors = problems(data)
    assert len(errors) == 1
    assert errors[0].startswith(message)


def test_parser_refuses_more_than_200_rows() -> None:
    people = {n: f"Person {n}" for n in range(1, MAX_CSV_ROWS + 2)}
    rows = "".join(f"{n},P,attended,,,\n" for n in people)
    with pytest.raises(RegisterCsvInvalid) as caught:
        parse_register_csv(f"{HEADER}\n{rows}".encode(), people)
    assert caught.value.errors == ["Line 202: a register can have at most 200 rows"]
    assert len(parse_register_csv(f"{HEADER}\n{rows}".encode().rsplit(b"\n", 2)[0], people)) == 200


def test_parser_refuses_an_oversized_file_before_reading_it() -> None:
    assert problems(b"\xff" * (MAX_CSV_BYTES + 1)) == ["The file must be 100 KB or smaller"]


def test_names_in_error_messages_are_escaped(login_as: Any) -> None:
    world = build_world(names=[("<script>alert(1)</script>", "Evil"), ("Bill", "Bloggs")])
    a = world.enrolments[0]
    rows = [[a.id, "x", "attended", "", "", ""], [a.id, "x", "attended", "", "", ""]]
    response = upload(login_as(world.artist), world.session, csv_bytes(rows))
    body = response.get_data(as_text=True)
    assert "<script>alert(1)" not in body
    assert body.count("&lt;script&gt;alert(1)&lt;/script&gt; Evil (enrolment_id") == 2
    assert_nothing_saved(world)


# One set of register rules for the screen, the CSV upload and the API ---------------------


def screen_form(marks: Sequence[tuple[Enrolment, str, str]]) -> dict[str, str]:
    """The screen register's fields: each person's status and mood before."""
    form = {}
    for enrolment, status, mood in marks:
        form[f"status-{enrolment.id}"] = status
        form[f"mood_before-{enrolment.id}"] = mood
    return form


def test_no_channel_records_a_mood_for_someone_who_did_not_come(
    login_as: Any, api_client: Any
) -> None:
    world = build_world()
    a, b, c = world.enrolments
    refusal = "Moods are only recorded for people who attended (Cara Jones)"

    rows = good_rows(world)
    rows[2][3] = "3"  # Cara, marked no show, with a mood
    response = upload(login_as(world.artist), world.session, csv_bytes(rows))
    assert response.status_code == 200
    assert f"Line 4: {refusal}" in page_text(response)
    assert_nothing_saved(world)

    client, headers = api_client(world.artist)
    body = {
        "entries": [
            {"enrolment_id": a.id, "status": "attended", "mood_before": 4},
            {"enrolment_id": b.id, "status": "apologies"},
            {"enrolment_id": c.id, "status": "no_show", "mood_after": 3},
        ]
    }
    response = client.put(
        f"/api/v1/sessions/{world.session.id}/register", json=body, headers=headers
    )
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"entries.2.mood_after": [refusal]}
    assert_nothing_saved(world)

    screen = login_as(world.artist)
    url = f"/sessions/{world.session.id}/register"
    marks = [(a, "attended", "4"), (b, "apologies", ""), (c, "no_show", "3")]
    response = submit(screen, url, screen_form(marks))
    assert response.status_code == 200
    assert refusal in page_text(response)
    assert_nothing_saved(world)


def test_an_upload_counts_the_people_in_the_file(login_as: Any) -> None:
    world = build_world(names=[*NAMES, ("Dan", "Smith")])
    a, b, c, d = world.enrolments
    artist = login_as(world.artist)
    marks = [(a, "attended", ""), (b, "attended", ""), (c, "attended", ""), (d, "apologies", "")]
    assert (
        submit(artist, f"/sessions/{world.session.id}/register", screen_form(marks)).status_code
        == 302
    )

    rows = [[a.id, "", "attended", "4", "7", ""], [b.id, "", "apologies", "", "", ""]]
    rows.append([c.id, "", "no_show", "", "", ""])
    response = upload(artist, world.session, csv_bytes(rows))
    assert response.status_code == 302
    followed = page_text(artist.get(response.headers["Location"]))
    assert "Register uploaded: 3 people recorded" in followed
    assert "4 people" not in followed
    db.session.expire_all()
    kept = db.session.scalar(select(Attendance).where(Attendance.enrolment_id == d.id))
    assert kept is not None and kept.status is AttendanceStatus.APOLOGIES


def enrol_newcomer(world: World, *, at: datetime) -> Enrolment:
    """Someone who joins the course at `at`, after its earlier sessions."""
    link_worker = make_user(Role.LINK_WORKER)
    practice = world.referrals[0].gp_practice
    referral = make_referral(
        link_worker,
        practice,
        nhs=next(_NHS_NUMBERS),
        today=london_today(),
        given_name="Nina",
        family_name="Newcomer",
    )
    record_conversation(link_worker, referral, held_on=london_today(), what_matters="Singing")
    enrolment = enrol(link_worker, referral, world.course, today=london_today(), at=at)
    db.session.commit()
    return enrolment


def test_an_old_register_lists_who_was_on_the_course_that_day(
    login_as: Any, api_client: Any
) -> None:
    today = london_today()
    world = build_world(first_session=today - timedelta(days=7))
    a, b, c = world.enrolments
    artist = login_as(world.artist)
    url = f"/sessions/{world.session.id}/register"
    marks = [(a, "attended", "5"), (b, "apologies", ""), (c, "no_show", "")]
    assert submit(artist, url, screen_form(marks)).status_code == 302
    newcomer = enrol_newcomer(world, at=datetime.combine(today, time(9), tzinfo=LONDON))

    page = page_text(artist.get(url))
    assert "Ada Lovelace" in page and "Nina Newcomer" not in page
    # Re-opened and saved again without the newcomer: accepted.
    marks[2] = (c, "attended", "6")
    assert submit(artist, url, screen_form(marks)).status_code == 302
    db.session.expire_all()
    assert (
        db.session.scalar(
            select(Attendance.status).where(
                Attendance.session_id == world.session.id, Attendance.enrolment_id == c.id
            )
        )
        is AttendanceStatus.ATTENDED
    )
    template = artist.get(f"{url}.csv").get_data(as_text=True)
    assert "Nina Newcomer" not in template and "Ada Lovelace" in template
    client, headers = api_client(world.artist)
    listed = client.get(f"/api/v1{url}", headers=headers).get_json()["entries"]
    assert [entry["enrolment_id"] for entry in listed] == [a.id, b.id, c.id]
    # A register naming the newcomer for a session before they joined is refused.
    response = client.put(
        f"/api/v1{url}",
        json={"entries": [{"enrolment_id": newcomer.id, "status": "attended"}]},
        headers=headers,
    )
    assert response.status_code == 422
    assert "entries.0.enrolment_id" in response.get_json()["errors"]

    # Today's session, after they joined, lists them.
    today_session = next(s for s in world.course.sessions if s.date == today)
    assert "Nina Newcomer" in page_text(artist.get(f"/sessions/{today_session.id}/register"))
