"""Registers on paper: the printable register PDF and the completed-register CSV upload.

Some venues have no internet, so an artist prints the register, takes it by hand and later
uploads it as a CSV. The upload is parsed strictly and applied whole or not at all; every
problem is reported with the line it is on.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from flask import current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage
from werkzeug.routing import BuildError

from referrals import clock
from referrals.audit import record
from referrals.auth.models import Role
from referrals.courses import bp
from referrals.courses.models import AttendanceStatus, CourseSession, Enrolment, SessionStatus
from referrals.courses.register_rules import (
    MOOD_FIELDS,
    MOOD_MAX,
    MOOD_MIN,
    MoodUnreadable,
    RegisterEntry,
    entry_problems,
    parse_mood,
    recorded_text,
)
from referrals.courses.scope import get_register_session_or_404
from referrals.courses.services import (
    REGISTER_EDIT_DAYS,
    CourseRuleBroken,
    RegisterRefused,
    can_edit_register,
    people_viewed,
    register_enrolments,
    save_register,
)
from referrals.documents import FONT, FONT_BOLD, Document, sample_styles
from referrals.exports import safe_cell, send_bytes
from referrals.extensions import db
from referrals.intake.lifecycle import TransitionRefused
from referrals.intake.models import Referral
from referrals.security import allow

__all__ = [
    "CSV_HEADER",
    "MAX_CSV_BYTES",
    "MAX_CSV_ROWS",
    "REGISTER_HEADINGS",
    "RegisterCsvInvalid",
    "RegisterSheet",
    "bp",
    "build_register_csv",
    "build_register_pdf",
    "parse_register_csv",
    "parse_register_lines",
    "register_filename",
    "register_sheet",
]

REGISTER_ROLES = (Role.ARTIST, Role.ADMIN)

CSV_HEADER = ("enrolment_id", "name", "status", "mood_before", "mood_after", "note")
MAX_CSV_BYTES = 100 * 1024
MAX_CSV_ROWS = 200
_STATUS_WORDS = {
    "attended": AttendanceStatus.ATTENDED,
    "apologies": AttendanceStatus.APOLOGIES,
    "no_show": AttendanceStatus.NO_SHOW,
    "no show": AttendanceStatus.NO_SHOW,
    "no-show": AttendanceStatus.NO_SHOW,
}
_ENROLMENT_ID = re.compile(r"^[0-9]{1,9}$")


# Dates and names ------------------------------------------------------------------------


def _long_date(session: CourseSession) -> str:
    return session.date.strftime("%A %-d %B %Y")


def _times(session: CourseSession) -> str:
    start = datetime.combine(session.date, session.start_time)
    end = start + timedelta(minutes=session.duration_minutes)
    return f"{start:%H:%M} to {end:%H:%M}"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")
    return slug or "course"


def register_filename(session: CourseSession, extension: str) -> str:
    return f"register-{_slug(session.course.title)}-{session.date.isoformat()}.{extension}"


def _needs(enrolment: Enrolment) -> str:
    patient = enrolment.referral.patient
    parts = [patient.access_needs.strip(), patient.communication_needs.strip()]
    return "; ".join(p for p in parts if p)


# The printable register -----------------------------------------------------------------

REGISTER_HEADINGS = (
    "ID",
    "Name",
    "Phone",
    "Access and communication needs",
    "Attended",
    "Apologies",
    "No show",
    "Mood before",
    "Mood after",
    "Note",
)
REGISTER_GUIDANCE = (
    "Mark one of Attended, Apologies or No show for each person. Mood is 0 (very low) to 10 "
    "(very good): ask at the start and at the end of the session."
)
REGISTER_NOTICE = (
    "This register holds personal information. Keep it safe, and shred it once the register "
    "has been entered in the service."
)
SIGNATURE_LABELS = ("Artist's signature", "Name", "Date")


@dataclass(frozen=True)
class RegisterRow:
    """One person expected at the session, as the printed register lists them."""

    enrolment_id: int
    name: str
    phone: str
    needs: str


@dataclass(frozen=True)
class RegisterSheet:
    """What a printed register says, decided once: the PDF prints it and the register's page
    shows it, so the two cannot differ.

    Only what a register needs (name, phone, access and communication needs): never an NHS
    number, date of birth or the reason for referral.
    """

    service_name: str
    course: str
    dated: str
    provider: str
    venue: str
    when: str
    session_line: str
    cancelled: bool
    rows: tuple[RegisterRow, ...]

    @property
    def title(self) -> str:
        return f"Register: {self.course}, {self.dated}"

    @property
    def footer(self) -> str:
        return f"{self.course}, {self.dated}, {self.session_line}"


def register_sheet(
    session: CourseSession, enrolments: Sequence[Enrolment], *, service_name: str
) -> RegisterSheet:
    """The register to print for a session: who is expected, and where and when."""
    course = session.course
    session_line = f"Session {session.sequence} of {course.session_count}"
    if session.is_taster:
        session_line += " (taster)"
    venue = course.venue
    return RegisterSheet(
        service_name=service_name,
        course=course.title,
        dated=f"{session.date:%-d %B %Y}",
        provider=course.provider.name,
        venue=", ".join(
            p for p in (venue.name, venue.address.replace("\n", ", "), venue.postcode) if p
        ),
        when=f"{_long_date(session)}, {_times(session)}",
        session_line=session_line,
        cancelled=session.status is SessionStatus.CANCELLED,
        rows=tuple(
            RegisterRow(
                enrolment.id,
                enrolment.referral.patient.full_name,
                enrolment.referral.patient.phone or "",
                _needs(enrolment),
            )
            for enrolment in enrolments
        ),
    )


def build_register_pdf(
    session: CourseSession, enrolments: Sequence[Enrolment], *, service_name: str
) -> bytes:
    """A register to print and fill in by hand: who is expected and boxes to mark."""
    sheet = register_sheet(session, enrolments, service_name=service_name)
    styles = sample_styles()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=10, leading=13)
    cell = ParagraphStyle("cell", parent=body, fontSize=9, leading=11)
    head = ParagraphStyle("head", parent=cell, fontName=FONT_BOLD)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, textColor=colors.HexColor("#4c6272"))
    page_size = landscape(A4)
    buffer = io.BytesIO()
    doc = Document(
        buffer,
        pagesize=page_size,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=16 * mm,
        title=sheet.title,
        author=service_name,
        subject="Register to print and fill in by hand",
    )
    story: list[object] = [
        Paragraph(escape(f"{service_name}: register"), small),
        Paragraph(escape(sheet.course), styles["Title"]),
        Paragraph(f"<b>Provider:</b> {escape(sheet.provider)}", body),
        Paragraph(f"<b>Venue:</b> {escape(sheet.venue)}", body),
        Paragraph(f"<b>{escape(sheet.when)}</b>, {escape(sheet.session_line)}", body),
    ]
    if sheet.cancelled:
        story.append(Paragraph("<b>This session has been cancelled.</b>", body))
    story += [Spacer(1, 3 * mm), Paragraph(REGISTER_GUIDANCE, small), Spacer(1, 2 * mm)]

    rows: list[list[object]] = [[Paragraph(h, head) for h in REGISTER_HEADINGS]]
    for row in sheet.rows:
        filled = (str(row.enrolment_id), row.name, row.phone, row.needs)
        blanks = [""] * (len(REGISTER_HEADINGS) - len(filled))
        rows.append([Paragraph(escape(text), cell) for text in filled] + blanks)
    widths = [12, 45, 28, 52, 22, 23, 17, 17, 17, 40]  # no heading breaks inside a word
    table = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.6, colors.HexColor("#768692")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edee")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                # Rows at least 12 mm tall, to write in by hand; long needs still wrap.
                ("TOPPADDING", (0, 1), (-1, -1), 11),
                ("BOTTOMPADDING", (0, 1), (-1, -1), 11),
            ]
        )
    )
    story.append(table)
    if not sheet.rows:
        story += [Spacer(1, 2 * mm), Paragraph("No one is enrolled on this course yet.", body)]
    signature, name, dated = SIGNATURE_LABELS
    story += [
        Spacer(1, 10 * mm),
        Table(
            [[signature, "", name, "", dated, ""]],
            colWidths=[32 * mm, 70 * mm, 15 * mm, 70 * mm, 12 * mm, 45 * mm],
            style=TableStyle(
                [
                    ("LINEBELOW", (1, 0), (1, 0), 0.6, colors.black),
                    ("LINEBELOW", (3, 0), (3, 0), 0.6, colors.black),
                    ("LINEBELOW", (5, 0), (5, 0), 0.6, colors.black),
                    ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                    ("FONTSIZE", (0, 0), (-1, -1), 10),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                    ("TOPPADDING", (0, 0), (-1, -1), 8 * mm),
                ]
            ),
        ),
        Spacer(1, 6 * mm),
        Paragraph(REGISTER_NOTICE, small),
    ]

    def draw_footer(canvas: Canvas, document: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.setFillColor(colors.HexColor("#4c6272"))
        canvas.drawString(12 * mm, 8 * mm, sheet.footer[:150])
        canvas.drawRightString(page_size[0] - 12 * mm, 8 * mm, f"Page {document.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=draw_footer, onLaterPages=draw_footer)
    return buffer.getvalue()


# The CSV template and its parser --------------------------------------------------------


def build_register_csv(enrolments: Iterable[Enrolment]) -> bytes:
    """A blank register to fill in a spreadsheet: one row per person, id and name filled in.

    UTF-8 with a byte-order mark so spreadsheets read names correctly; cells neutralised
    against formulas.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for enrolment in enrolments:
        name = enrolment.referral.patient.full_name
        writer.writerow([enrolment.id, safe_cell(name), "", "", "", ""])
    return out.getvalue().encode("utf-8-sig")


class RegisterCsvInvalid(ValueError):
    """An uploaded register that cannot be used; `errors` lists every problem, by line."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class RegisterLine:
    """One parsed row and the line of the file it starts on."""

    line: int
    entry: RegisterEntry


def _parse_status(text: str) -> AttendanceStatus | None:
    return _STATUS_WORDS.get(" ".join(text.lower().split()))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise RegisterCsvInvalid(
            [
                f"Line {line}: the file is not UTF-8 text. In your spreadsheet, save it as "
                "CSV UTF-8 and upload it again"
            ]
        ) from None


def parse_register_lines(
    data: bytes, allowed_enrolment_ids: Mapping[int, str]
) -> list[RegisterLine]:
    """Parse a completed register CSV, keeping each entry's line number.

    Raises RegisterCsvInvalid listing every problem found; nothing is returned unless the
    whole file is good. Pure: reads nothing but its arguments.
    """
    if len(data) > MAX_CSV_BYTES:
        raise RegisterCsvInvalid([f"The file must be {MAX_CSV_BYTES // 1024} KB or smaller"])
    text = _decode(data)
    if not text.strip():
        raise RegisterCsvInvalid(["The file is empty"])
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise RegisterCsvInvalid([f"Line {line}: the file contains a null character"])

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    errors: list[str] = []
    parsed: list[RegisterLine] = []
    first_line_of: dict[int, int] = {}
    header_seen = False
    data_rows = 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append(f"Line {line}: the CSV is malformed ({error})")
            break
        if not any(cell.strip() for cell in row):
            continue  # a blank line, or a row of empty cells a spreadsheet left behind
        if not header_seen:
            header_seen = True
            if tuple(cell.strip().lower() for cell in row) != CSV_HEADER:
                errors.append(
                    f"Line {line}: the first line must be the header "
                    f"{','.join(CSV_HEADER)} (download the template)"
                )
                break
            continue
        data_rows += 1
        if data_rows > MAX_CSV_ROWS:
            errors.append(f"Line {line}: a register can have at most {MAX_CSV_ROWS} rows")
            break
        if len(row) != len(CSV_HEADER):
            errors.append(f"Line {line}: expected {len(CSV_HEADER)} columns, found {len(row)}")
            continue
        row_errors, entry = _parse_row(line, row, allowed_enrolment_ids, first_line_of)
        errors += row_errors
        if entry is not None and not row_errors:
            parsed.append(RegisterLine(line, entry))

    if not errors and not header_seen:
        errors.append("The file is empty")
    if not errors and data_rows == 0:
        errors.append("The file has a header but no rows: add one row per person")
    if errors:
        raise RegisterCsvInvalid(errors)
    return parsed


def _parse_row(
    line: int,
    row: list[str],
    allowed: Mapping[int, str],
    first_line_of: dict[int, int],
) -> tuple[list[str], RegisterEntry | None]:
    errors: list[str] = []
    raw_id, _name, raw_status, raw_before, raw_after, note = row
    enrolment_id: int | None = None
    if not _ENROLMENT_ID.match(raw_id.strip()):
        errors.append(f"Line {line}: enrolment_id must be a number from the template")
    else:
        enrolment_id = int(raw_id.strip())
        if enrolment_id not in allowed:
            errors.append(
                f"Line {line}: enrolment_id {enrolment_id} is not on this session's register"
            )
        elif enrolment_id in first_line_of:
            errors.append(
                f"Line {line}: {allowed[enrolment_id]} (enrolment_id {enrolment_id}) is "
                f"already on line {first_line_of[enrolment_id]}"
            )
        else:
            first_line_of[enrolment_id] = line
    status = _parse_status(raw_status)
    if status is None:
        errors.append(f"Line {line}: status must be attended, apologies or no_show")
    moods: dict[str, int | None] = {}
    for column, raw in zip(MOOD_FIELDS, (raw_before, raw_after), strict=True):
        try:
            moods[column] = parse_mood(raw)
        except MoodUnreadable:
            errors.append(
                f"Line {line}: {column} must be empty or a whole number from "
                f"{MOOD_MIN} to {MOOD_MAX}"
            )
    note = note.strip()
    if errors or enrolment_id is None or status is None:
        return errors, None
    entry = RegisterEntry(
        enrolment_id=enrolment_id,
        status=status,
        mood_before=moods["mood_before"],
        mood_after=moods["mood_after"],
        note=note,
    )
    # The register rules, line by line, so that every problem in the file is named at once.
    problems = entry_problems([entry], {enrolment_id: allowed[enrolment_id]})
    return [f"Line {line}: {m}" for ms in problems.values() for m in ms], entry


def parse_register_csv(
    data: bytes, allowed_enrolment_ids: Mapping[int, str]
) -> list[RegisterEntry]:
    """The entries of a completed register CSV, or RegisterCsvInvalid listing every problem.

    `allowed_enrolment_ids` maps the register's enrolment ids to names (used in messages).
    """
    return [item.entry for item in parse_register_lines(data, allowed_enrolment_ids)]


# Pages and downloads --------------------------------------------------------------------


def _register_people(session: CourseSession) -> list[Enrolment]:
    """The register's enrolments, with their people loaded in one query."""
    enrolments = register_enrolments(session)
    referral_ids = {e.referral_id for e in enrolments}
    if referral_ids:
        # Fills the identity map, so `enrolment.referral.patient` costs no further queries.
        db.session.scalars(
            select(Referral)
            .options(selectinload(Referral.patient))
            .where(Referral.id.in_(referral_ids))
        ).all()
    return enrolments


def _register_page_url(session: CourseSession) -> str | None:
    """The on-screen register for the session, where that page exists."""
    try:
        return url_for("courses.register", session_id=session.id)
    except BuildError:
        return None


def _register_shown(session_id: int, action: str) -> tuple[CourseSession, list[Enrolment]]:
    """The session in scope and the people on its register, their view audited."""
    session = get_register_session_or_404(session_id, current_user)
    people = _register_people(session)
    people_viewed(current_user, action, people, session_id=session.id)
    return session, people


@bp.get("/sessions/<int:session_id>/register.pdf")
@allow(*REGISTER_ROLES)
def register_pdf(session_id: int) -> ResponseReturnValue:
    session, people = _register_shown(session_id, "register.printed")
    content = build_register_pdf(session, people, service_name=current_app.config["SERVICE_NAME"])
    return send_bytes(content, register_filename(session, "pdf"), "application/pdf")


@bp.get("/sessions/<int:session_id>/register/print")
@allow(*REGISTER_ROLES)
def register_printable(session_id: int) -> ResponseReturnValue:
    """The printable register as a page: the PDF's accessible version, to read or print."""
    session, people = _register_shown(session_id, "register.print_viewed")
    sheet = register_sheet(session, people, service_name=current_app.config["SERVICE_NAME"])
    return render_template(
        "courses/register_print.html",
        session=session,
        sheet=sheet,
        headings=REGISTER_HEADINGS,
        guidance=REGISTER_GUIDANCE,
        notice=REGISTER_NOTICE,
        signature_labels=SIGNATURE_LABELS,
        register_url=_register_page_url(session),
    )


@bp.get("/sessions/<int:session_id>/register.csv")
@allow(*REGISTER_ROLES)
def register_csv_template(session_id: int) -> ResponseReturnValue:
    session, people = _register_shown(session_id, "register.template_downloaded")
    content = build_register_csv(people)
    return send_bytes(content, register_filename(session, "csv"), "text/csv; charset=utf-8")


class RegisterUploadForm(FlaskForm):
    register_file = FileField(
        "Upload the completed register",
        validators=[FileRequired("Select the completed register CSV file")],
    )


def _read_upload(upload: FileStorage) -> bytes:
    """The uploaded bytes, refusing a file over the limit before reading it all."""
    data = upload.stream.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise RegisterCsvInvalid([f"The file must be {MAX_CSV_BYTES // 1024} KB or smaller"])
    return data


def _refusal_messages(error: RegisterRefused, lines: Sequence[RegisterLine]) -> list[str]:
    """The service's refusal, with entry positions turned back into line numbers."""
    if not error.errors:
        return [str(error)]
    messages = []
    for key, texts in error.errors.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "entries" and parts[1].isdigit():
            index = int(parts[1])
            where = f"Line {lines[index].line}: " if index < len(lines) else ""
        else:
            where = ""
        messages += [where + text for text in texts]
    return messages


@bp.route("/sessions/<int:session_id>/register/upload", methods=["GET", "POST"])
@allow(*REGISTER_ROLES)
def register_upload(session_id: int) -> ResponseReturnValue:
    session = get_register_session_or_404(session_id, current_user)
    today = clock.today()
    form = RegisterUploadForm()
    errors: list[str] = []
    if form.validate_on_submit():
        upload = form.register_file.data
        lines: list[RegisterLine] = []
        try:
            if not (upload.filename or "").lower().endswith(".csv"):
                raise RegisterCsvInvalid(["The selected file must be a CSV"])
            people = {e.id: e.referral.patient.full_name for e in _register_people(session)}
            lines = parse_register_lines(_read_upload(upload), people)
            save_register(current_user, session, [item.entry for item in lines], today=today)
            record(current_user, "register.uploaded", session, entries=len(lines))
        except RegisterCsvInvalid as error:
            db.session.rollback()
            errors = error.errors
        except RegisterRefused as error:
            db.session.rollback()
            errors = _refusal_messages(error, lines)
        except (CourseRuleBroken, TransitionRefused) as error:
            db.session.rollback()
            errors = [str(error)]
        else:
            db.session.commit()
            flash(f"Register uploaded: {recorded_text(len(lines))} recorded", "success")
            return redirect(
                _register_page_url(session)
                or url_for("courses.register_upload", session_id=session.id)
            )
    elif form.register_file.errors:
        errors = list(form.register_file.errors)
    return render_template(
        "courses/register_upload.html",
        session=session,
        course=session.course,
        form=form,
        errors=errors,
        editable=can_edit_register(current_user, session, today),
        edit_days=REGISTER_EDIT_DAYS,
        today=today,
        max_kb=MAX_CSV_BYTES // 1024,
        max_rows=MAX_CSV_ROWS,
        register_url=_register_page_url(session),
        page_has_errors=bool(errors),
    )
