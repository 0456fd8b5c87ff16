"""Referral pages: the form, the caseload, the practice list, a referral and its actions."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from referrals import clock
from referrals.audit import record_view
from referrals.auth.models import Organisation, OrganisationKind, Role
from referrals.courses.queries import referral_enrolments
from referrals.courses.services import CourseRuleBroken, close_referral
from referrals.exports import send_bytes
from referrals.extensions import db
from referrals.ids import parse_id
from referrals.intake import bp, letters
from referrals.intake.forms import (
    ACCEPT,
    AssignForm,
    ContactAttemptForm,
    ConversationForm,
    ReferralForm,
    TransitionForm,
    reconciliation_form,
)
from referrals.intake.identity import (
    ReconciliationRefused,
    differences,
    person_seen_by,
    resolve_reconciliation,
)
from referrals.intake.lifecycle import Status, TransitionRefused, next_steps
from referrals.intake.models import Referral
from referrals.intake.queries import (
    REFERRAL_PAGE_LOADERS,
    CaseloadFilters,
    caseload_query,
    is_overdue,
    listed_referrals,
    other_referrals,
    practice_query,
    search_kind,
)
from referrals.intake.scope import REFERRING, TRIAGING, find_patient_in_scope, get_referral_or_404
from referrals.intake.services import (
    OPEN_ELSEWHERE,
    DuplicateOpenReferral,
    OpenReferral,
    PatientDetails,
    ReferralDetails,
    assign,
    create_referral,
    duplicate_refused,
    link_workers,
    log_contact_attempt,
    open_referral_check,
    practice_for,
    record_conversation,
    referral_viewed,
    referrals_listed,
)
from referrals.intake.validation import InvalidValue, clean_nhs_number
from referrals.pagination import Page
from referrals.security import allow
from referrals.text import SEARCH_MAX, without_control_characters
from referrals.vocab import (
    ArtForm,
    ContactMethod,
    ContactOutcome,
    Ethnicity,
    Pathway,
    ReferrerType,
    Sex,
)


def _practice_choices() -> list[SelectChoice]:
    rows = db.session.execute(
        select(Organisation.id, Organisation.name, Organisation.ods_code)
        .where(Organisation.kind == OrganisationKind.GP_PRACTICE, Organisation.active.is_(True))
        .order_by(Organisation.name)
    ).all()
    return [SelectChoice(str(i), f"{name} ({ods})" if ods else name) for i, name, ods in rows]


# Searches by name or NHS number are POSTed: an identifier never goes in a URL, so never in an
# access log or the browser's history. The search term is read from the body only; the other
# filters, which identify nobody, stay in the URL of a plain list. Paging within a search posts
# the search again, with the page number in the URL.
SEARCH_FIELD = "q"
LIST_FILTERS = ("status", "practice", "pathway", "mine")


def _list_request() -> tuple[MultiDict[str, str], str]:
    """Where this list's filters come from, and the search term (from a POST body alone)."""
    if request.method == "POST":
        term = without_control_characters(request.form.get(SEARCH_FIELD, ""))
        return request.form, term.strip()[:SEARCH_MAX]
    return request.args, ""


def _filter_args(source: MultiDict[str, str]) -> dict[str, Any]:
    """The filters other than the search, to carry in a URL or a paging form."""
    return {
        name: values
        for name in LIST_FILTERS
        if (values := [value for value in source.getlist(name) if value])
    }


@bp.route("/", methods=["GET", "POST"])
@allow(*REFERRING)
def referrals() -> ResponseReturnValue:
    source, search = _list_request()
    if request.method == "POST" and not search:
        # Nothing to hide: the plain list, whose URL can be bookmarked.
        return redirect(url_for("intake.referrals", **_filter_args(source)))
    user = current_user._get_current_object()  # once: each look-up through the proxy costs
    if user.role == Role.REFERRER:
        status = source.get("status")
        page = Page.of_keys(
            practice_query(user, search, status),
            Referral.id,
            lambda ids: listed_referrals(ids, user),
        )
        _list_viewed(user, page.items, search)
        return render_template(
            "intake/practice_list.html",
            page=page,
            search=search,
            status=status,
            filter_args=_filter_args(source),
            organisation_name=user.organisation.name,
        )
    return caseload(source, search)


def _list_viewed(user: Any, shown: list[Referral], search: str) -> None:
    """Audit a list page: one entry per person shown; a search also by the kind of term typed,
    never the term itself (it would put a name or NHS number in the log)."""
    if search:
        kind = search_kind(search)
        record_view(user, "referral.searched", object_type="referral", kind=kind)
        referrals_listed(user, shown, search=kind)
    else:
        referrals_listed(user, shown)


def caseload(source: MultiDict[str, str], search: str) -> ResponseReturnValue:
    statuses = tuple(
        Status(s) for s in source.getlist("status") if s in Status.__members__.values()
    )
    practice_id = source.get("practice", "")
    pathway = source.get("pathway")
    filters = CaseloadFilters(
        statuses=statuses,
        practice_id=parse_id(practice_id),
        pathway=pathway if pathway in Pathway._value2member_map_ else None,
        mine=source.get("mine") == "1",
        search=search,
    )
    user = current_user._get_current_object()
    page = Page.of_keys(
        caseload_query(user, filters),
        Referral.id,
        lambda ids: listed_referrals(ids, user),
    )
    _list_viewed(user, page.items, search)
    return render_template(
        "intake/caseload.html",
        page=page,
        filters=filters,
        today=clock.today(),
        is_overdue=is_overdue,
        practices=_practice_choices(),
        Status=Status,
        Pathway=Pathway,
        filter_args=_filter_args(source),
    )


def _form_for_user(data: Any = None) -> ReferralForm:
    practices = None if current_user.role == Role.REFERRER else _practice_choices()
    default_type = {Role.REFERRER: "gp", Role.LINK_WORKER: "link_worker"}.get(
        current_user.role, "gp"
    )
    form = ReferralForm(formdata=data, today=clock.today(), practices=practices)
    if not form.is_submitted():
        form.referrer_type.data = default_type
        form.ethnicity.data = form.ethnicity.data or None
    return form


def _prefill_from_patient(form: ReferralForm) -> OpenReferral | None:
    """Fill the person's details when the NHS number is already known within scope, and say
    what sending would: the same duplicate check, with the same words."""
    try:
        nhs = clean_nhs_number(form.nhs_number.data or "")
    except InvalidValue as error:
        form.nhs_number.errors = [str(error)]
        return None
    form.nhs_number.data = nhs
    duplicate = open_referral_check(current_user, nhs)
    patient = find_patient_in_scope(current_user, nhs)
    if patient is None:
        if duplicate is None:
            flash("No record of this NHS number yet. Enter the person's details.", "info")
        return duplicate
    for name in (
        "given_name",
        "family_name",
        "date_of_birth",
        "postcode",
        "phone",
        "email",
        "communication_needs",
        "access_needs",
    ):
        getattr(form, name).data = getattr(patient, name)
    form.date_of_birth.raw_text = ""
    form.sex.data = patient.sex.value
    form.ethnicity.data = patient.ethnicity.value
    form.preferred_contact.data = patient.preferred_contact.value
    if form.gp_practice is not None:
        form.gp_practice.data = str(patient.gp_practice_id)
    record_view(current_user, "patient.viewed", patient, via="referral_form_lookup")
    flash(f"Details found for {patient.full_name}. Check they are still correct.", "info")
    return duplicate


def _duplicate_message(found: OpenReferral) -> str:
    if found.referral is None:
        return f"{OPEN_ELSEWHERE} If this is a new need, say why below."
    return (
        "This person already has an open referral. Open it instead, or say why this is a new "
        "episode"
    )


def _details_from(form: ReferralForm) -> ReferralDetails:
    requested = None
    if form.gp_practice is not None:
        requested = db.session.get(Organisation, int(form.gp_practice.data))
    return ReferralDetails(
        patient=PatientDetails(
            nhs_number=form.nhs_number.data or "",
            given_name=form.given_name.data or "",
            family_name=form.family_name.data or "",
            date_of_birth=form.date_of_birth.data,  # type: ignore[arg-type]
            sex=Sex(form.sex.data),
            ethnicity=Ethnicity(form.ethnicity.data),
            postcode=form.postcode.data or "",
            phone=form.phone.data or None,
            email=(form.email.data or "").lower() or None,
            preferred_contact=ContactMethod(form.preferred_contact.data),
            communication_needs=form.communication_needs.data or "",
            access_needs=form.access_needs.data or "",
        ),
        gp_practice=practice_for(current_user, requested),
        referrer_type=ReferrerType(form.referrer_type.data),
        pathway=Pathway(form.pathway.data),
        reason=form.reason.data or "",
        interests=[ArtForm(a) for a in form.interests.data or []],
        consent=bool(form.consent.data),
        risk_flag=bool(form.risk_flag.data),
        risk_note=form.risk_note.data or "",
        received_on=form.received_on.data,
        new_episode_reason=form.new_episode_reason.data or "",
    )


@bp.route("/new", methods=["GET", "POST"])
@allow(*REFERRING)
def new_referral() -> ResponseReturnValue:
    form = _form_for_user(request.form if request.method == "POST" else None)
    duplicate = None
    if request.method == "POST" and request.form.get("action") == "lookup":
        form.validate_on_submit()  # checks the CSRF token; field errors are not shown yet
        csrf_errors = form.csrf_token.errors
        for field in form:
            field.errors = []
        if csrf_errors:
            abort(400)
        duplicate = _prefill_from_patient(form)
        return render_template(
            "intake/new.html",
            form=form,
            duplicate=duplicate,
            duplicate_message=_duplicate_message(duplicate) if duplicate else "",
            page_has_errors=bool(form.nhs_number.errors),
        )
    if form.validate_on_submit():
        try:
            referral = create_referral(current_user, _details_from(form), today=clock.today())
        except DuplicateOpenReferral as error:
            db.session.rollback()
            duplicate_refused(current_user, error)
            db.session.commit()
            duplicate = error.found
            form.new_episode_reason.errors = [_duplicate_message(duplicate)]
        else:
            db.session.commit()
            person = person_seen_by(current_user, referral)
            flash(f"Referral R{referral.id} sent for {person.full_name}", "success")
            return redirect(url_for("intake.referral", referral_id=referral.id))
    return render_template(
        "intake/new.html",
        form=form,
        duplicate=duplicate,
        duplicate_message=_duplicate_message(duplicate) if duplicate else "",
        page_has_errors=bool(form.errors) or duplicate is not None,
    )


@bp.get("/<int:referral_id>")
@allow(*REFERRING)
def referral(referral_id: int) -> ResponseReturnValue:
    item = get_referral_or_404(referral_id, current_user, *REFERRAL_PAGE_LOADERS)
    referral_viewed(current_user, item)
    can_triage = current_user.role in TRIAGING
    task = item.reconciliation if can_triage else None

    return render_template(
        "intake/referral.html",
        referral=item,
        person=person_seen_by(current_user, item),
        history=other_referrals(current_user, item),
        reconciliation=task,
        differences=differences(task) if task else [],
        enrolments=referral_enrolments(item),
        can_triage=can_triage,
        moves=next_steps(item.status) if can_triage else [],
        overdue=is_overdue(item, clock.today()),
        today=clock.today(),
        message_back=letters.message_back(item),
    )


def _triage_page(referral_id: int) -> Any:
    return get_referral_or_404(referral_id, current_user)


@bp.route("/<int:referral_id>/contact", methods=["GET", "POST"])
@allow(*TRIAGING)
def contact(referral_id: int) -> ResponseReturnValue:
    item = _triage_page(referral_id)
    form = ContactAttemptForm()
    if form.validate_on_submit():
        try:
            log_contact_attempt(
                current_user,
                item,
                method=ContactMethod(form.method.data),
                outcome=ContactOutcome(form.outcome.data),
                note=form.note.data or "",
            )
        except TransitionRefused as error:
            db.session.rollback()
            form.outcome.errors = [str(error)]
        else:
            db.session.commit()
            flash("Contact attempt logged", "success")
            return redirect(url_for("intake.referral", referral_id=item.id))
    referral_viewed(current_user, item, via="contact")
    return render_template(
        "intake/contact.html", referral=item, form=form, page_has_errors=bool(form.errors)
    )


@bp.route("/<int:referral_id>/conversation", methods=["GET", "POST"])
@allow(*TRIAGING)
def conversation(referral_id: int) -> ResponseReturnValue:
    item = _triage_page(referral_id)
    form = ConversationForm(today=clock.today())
    if request.method == "GET":
        form.held_on.data = clock.today()
    if form.validate_on_submit():
        try:
            record_conversation(
                current_user,
                item,
                held_on=form.held_on.data,  # type: ignore[arg-type]
                what_matters=form.what_matters.data or "",
                agreed_next_steps=form.agreed_next_steps.data or "",
                preferred_art_forms=[ArtForm(a) for a in form.preferred_art_forms.data or []],
            )
        except TransitionRefused as error:
            db.session.rollback()
            form.what_matters.errors = [str(error)]
        else:
            db.session.commit()
            flash("Conversation recorded. The referral is now assessed", "success")
            return redirect(url_for("intake.referral", referral_id=item.id))
    referral_viewed(current_user, item, via="conversation")
    return render_template(
        "intake/conversation.html", referral=item, form=form, page_has_errors=bool(form.errors)
    )


@bp.route("/<int:referral_id>/status", methods=["GET", "POST"])
@allow(*TRIAGING)
def change_status(referral_id: int) -> ResponseReturnValue:
    item = _triage_page(referral_id)
    form = TransitionForm()
    choices = [SelectChoice(s.value, s.label) for s in next_steps(item.status)]
    form.to.choices = [SelectChoice("", "Choose a status"), *choices]
    if request.method == "GET" and request.args.get("to") in {c.value for c in choices}:
        form.to.data = request.args["to"]
    if form.validate_on_submit():
        try:
            offered = close_referral(
                current_user,
                item,
                Status(form.to.data),
                reason=form.reason.data or "",
                note=form.note.data or "",
                today=clock.today(),
            )
        except CourseRuleBroken as error:
            db.session.rollback()
            form.reason.errors = [str(error)]
        except TransitionRefused as error:
            db.session.rollback()
            target = form.reason if str(error) == "Give a reason" else form.to
            target.errors = [str(error)]
        else:
            db.session.commit()
            flash(f"Referral is now {item.status.label.lower()}", "success")
            if offered is not None:
                flash(
                    f"Their course place was offered to {offered.referral.patient.full_name}, "
                    "first on the waiting list",
                    "info",
                )
            return redirect(url_for("intake.referral", referral_id=item.id))
    referral_viewed(current_user, item, via="status")
    return render_template(
        "intake/status.html", referral=item, form=form, page_has_errors=bool(form.errors)
    )


@bp.route("/<int:referral_id>/details", methods=["GET", "POST"])
@allow(*TRIAGING)
def reconcile(referral_id: int) -> ResponseReturnValue:
    """Check the person's details a referral from another practice sent against their record."""
    item = _triage_page(referral_id)
    task = item.reconciliation
    if task is None or not task.is_open:
        flash("There are no details to check on this referral", "info")
        return redirect(url_for("intake.referral", referral_id=item.id))
    found = differences(task)
    form = reconciliation_form([(d.name, d.label, d.stored, d.sent) for d in found])
    if form.validate_on_submit():
        accepted = [d.name for d in found if form[d.name].data == ACCEPT]
        try:
            changed = resolve_reconciliation(current_user, task, accepted)
        except ReconciliationRefused as error:
            db.session.rollback()
            flash(str(error), "warning")
        else:
            db.session.commit()
            flash(
                f"Details checked: {len(changed)} updated" if changed else "Details checked",
                "success",
            )
        return redirect(url_for("intake.referral", referral_id=item.id))
    referral_viewed(current_user, item, via="details")
    return render_template(
        "intake/reconcile.html",
        referral=item,
        form=form,
        differences=found,
        page_has_errors=bool(form.errors),
    )


@bp.route("/<int:referral_id>/assign", methods=["GET", "POST"])
@allow(*TRIAGING)
def assign_referral(referral_id: int) -> ResponseReturnValue:
    item = _triage_page(referral_id)
    form = AssignForm()
    workers = link_workers()
    form.link_worker.choices = [
        SelectChoice("", "Nobody yet"),
        *[SelectChoice(str(u.id), u.name) for u in workers],
    ]
    if request.method == "GET":
        form.link_worker.data = str(item.assigned_to_id or "")
    if form.validate_on_submit():
        chosen = next((u for u in workers if str(u.id) == form.link_worker.data), None)
        assign(current_user, item, chosen)
        db.session.commit()
        flash(f"Assigned to {chosen.name}" if chosen else "Unassigned", "success")
        return redirect(url_for("intake.referral", referral_id=item.id))
    referral_viewed(current_user, item, via="assign")
    return render_template(
        "intake/assign.html", referral=item, form=form, page_has_errors=bool(form.errors)
    )


def _message_back_or_404(referral_id: int, action: str) -> tuple[Referral, letters.MessageBack]:
    """The referral and its message back, the view audited; 404 before there is one."""
    item = get_referral_or_404(referral_id, current_user)
    message = letters.message_back(item)
    if message is None:
        abort(404)
    record_view(current_user, action, item, patient_id=item.patient_id)
    return item, message


@bp.get("/<int:referral_id>/letter.pdf")
@allow(*REFERRING)
def letter(referral_id: int) -> ResponseReturnValue:
    item, message = _message_back_or_404(referral_id, "referral.letter_downloaded")
    return send_bytes(
        letters.build_outcome_letter(item, message),
        f"referral-R{item.id}-outcome.pdf",
        "application/pdf",
    )


@bp.get("/<int:referral_id>/letter")
@allow(*REFERRING)
def letter_page(referral_id: int) -> ResponseReturnValue:
    """The letter to the practice as a page: the PDF's accessible version, to read or print."""
    item, message = _message_back_or_404(referral_id, "referral.letter_viewed")
    return render_template(
        "intake/letter.html",
        referral=item,
        letter=letters.letter_content(item, message),
        heading=letters.LETTER_HEADING,
        code_heading=letters.CODE_HEADING,
        notice=letters.LETTER_NOTICE,
    )
