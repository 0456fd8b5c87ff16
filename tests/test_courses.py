"""Matching, waiting lists, registers, completion and wellbeing through the pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role
from referrals.clock import LONDON
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
)
from referrals.courses.progress import completion_threshold
from referrals.courses.services import (
    Places,
    RegisterEntry,
    RegisterRefused,
    course_places,
    enrol,
    save_register,
    withdraw,
)
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.notifications.models import Notification
from referrals.outcomes.models import WellbeingAssessment
from tests import factories
from tests.conftest import sign_in, submit
from tests.course_helpers import assessed_referral, enrol_from_start
from tests.factories import make_course
from tests.intake_helpers import pdf_text
from tests.query_counts import counting_queries


@pytest.fixture()
def provider(app):
    return factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")


@pytest.fixture()
def artist(login_as, provider):
    return login_as(factories.make_user(Role.ARTIST, organisation=provider))


def test_enrolling_on_a_full_course_waitlists_and_withdrawal_promotes(link_worker, provider):
    course = make_course(provider, capacity=1)
    first = assessed_referral(link_worker.user)
    second = assessed_referral(link_worker.user)
    db.session.commit()

    response = submit(
        link_worker,
        f"/courses/{course.id}/enrol",
        {"referral_id": first.id},
        page=f"/courses/{course.id}?referral={first.id}",
    )
    assert response.status_code == 302
    assert db.session.get(type(first), first.id).status is Status.ENROLLED

    response = submit(
        link_worker,
        f"/courses/{course.id}/enrol",
        {"referral_id": second.id},
        page=f"/courses/{course.id}?referral={second.id}",
        follow_redirects=True,
    )
    assert "is number 1 on its waiting list" in response.get_data(as_text=True)
    page = link_worker.get(f"/referrals/{second.id}").get_data(as_text=True)
    assert "number 1 on the waiting list" in page
    db.session.expire_all()
    assert second.status is Status.WAITLISTED

    held = db.session.scalar(select(Enrolment).where(Enrolment.referral_id == first.id))
    response = submit(
        link_worker,
        f"/enrolments/{held.id}/withdraw",
        {"reason": "Moved out of the area"},
        follow_redirects=True,
    )
    assert "offered to" in response.get_data(as_text=True)
    db.session.expire_all()
    promoted = db.session.scalar(select(Enrolment).where(Enrolment.referral_id == second.id))
    # Offered, not enrolled: the place is held for them, and nobody else can take it.
    assert promoted.status is EnrolmentStatus.OFFERED
    assert promoted.offer_expires_on == clock.today() + timedelta(days=3)
    assert second.status is Status.WAITLISTED
    assert course_places(course) == Places(capacity=1, enrolled=0, waiting=0, offered=1)
    assert first.status is Status.ASSESSED  # back to matching
    offer = db.session.scalar(select(Notification).where(Notification.kind == "waiting_list_offer"))
    assert offer is not None and offer.user_id == link_worker.user.id
    assert offer.link == f"/referrals/{second.id}"
    page = link_worker.get(f"/enrolments/{promoted.id}").get_data(as_text=True)
    assert "Offered a place" in page and "Accept the place for them" in page

    # The link worker accepts it for them.
    def answer(what: str) -> str:
        url = f"/enrolments/{promoted.id}"
        response = submit(link_worker, f"{url}/offer", {"answer": what}, page=url)
        db.session.expire_all()
        return link_worker.get(response.headers["Location"]).get_data(as_text=True)

    assert "has accepted the place" in answer("accept")
    assert promoted.status is EnrolmentStatus.ENROLLED and promoted.offer_expires_on is None
    assert second.status is Status.ENROLLED
    assert course_places(course) == Places(capacity=1, enrolled=1, waiting=0, offered=0)
    # Answered once: a second answer is refused.
    assert "no longer on offer" in answer("decline")
    db.session.expire_all()
    assert promoted.status is EnrolmentStatus.ENROLLED


def test_an_unanswered_offer_passes_to_the_next_person_once_its_day_is_over(app, provider):
    from referrals.audit import AuditEvent
    from referrals.scheduler.jobs import PLACE_OFFERS, execute

    worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(provider, capacity=1)
    today = clock.today()
    people = [assessed_referral(worker) for _ in range(3)]
    first, second, third = (enrol(worker, r, course, today=today) for r in people)
    assert [e.status for e in (first, second, third)] == [
        EnrolmentStatus.ENROLLED,
        EnrolmentStatus.WAITLISTED,
        EnrolmentStatus.WAITLISTED,
    ]
    withdraw(worker, first, "Moved away", today=today)
    assert second.status is EnrolmentStatus.OFFERED
    reply_by = second.offer_expires_on
    assert reply_by == today + timedelta(days=3)
    db.session.commit()

    # Through the last day to answer, the place is still theirs.
    assert execute(app, PLACE_OFFERS, today=reply_by).detail == "0 places passed on"
    db.session.expire_all()
    assert second.status is EnrolmentStatus.OFFERED
    db.session.commit()  # end this test's read, which holds SQLite's lock

    run = execute(app, PLACE_OFFERS, today=reply_by + timedelta(days=1))
    assert (run.outcome, run.detail) == ("succeeded", "1 place passed on")
    db.session.expire_all()
    assert second.status is EnrolmentStatus.WITHDRAWN
    assert second.withdrawn_reason == f"Did not accept the place by {reply_by:%d/%m/%Y}"
    assert second.referral.status is Status.ASSESSED  # to be matched again
    assert third.status is EnrolmentStatus.OFFERED
    assert third.offer_expires_on == reply_by + timedelta(days=4)
    assert third.referral.status is Status.WAITLISTED  # offered is not enrolled
    assert course_places(course) == Places(capacity=1, enrolled=0, waiting=0, offered=1)
    told = db.session.scalars(
        select(Notification.link).where(Notification.kind == "waiting_list_offer")
    ).all()
    assert told == [f"/referrals/{second.referral_id}", f"/referrals/{third.referral_id}"]

    # The day's run is done once; however often it runs, each offer passes on once.
    db.session.commit()
    again = execute(app, PLACE_OFFERS, today=reply_by + timedelta(days=1))
    assert (again.outcome, again.detail) == ("skipped", "already done")
    assert execute(app, PLACE_OFFERS, today=reply_by + timedelta(days=2)).detail == (
        "0 places passed on"
    )
    expired = db.session.scalars(
        select(AuditEvent.object_id).where(AuditEvent.action == "enrolment.offer_expired")
    ).all()
    assert expired == [str(second.id)]


def test_a_course_with_an_offer_open_is_full_to_everyone_else(app, provider):
    worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(provider, capacity=1)
    today = clock.today()
    first, second = (
        enrol(worker, assessed_referral(worker), course, today=today) for _ in range(2)
    )
    withdraw(worker, first, "Moved away", today=today)
    assert second.status is EnrolmentStatus.OFFERED
    late = enrol(worker, assessed_referral(worker), course, today=today)
    assert late.status is EnrolmentStatus.WAITLISTED
    db.session.commit()
    client = app.test_client()
    sign_in(client, worker.email)
    page = client.get("/courses/?has_places=1").get_data(as_text=True)
    assert course.title not in page


def test_no_double_enrolment_and_only_assessed_referrals(link_worker, provider):
    course = make_course(provider)
    referral = assessed_referral(link_worker.user)
    enrol_from_start(link_worker.user, course, referral)
    db.session.commit()
    response = submit(
        link_worker,
        f"/courses/{course.id}/enrol",
        {"referral_id": referral.id},
        page=f"/courses/{course.id}",
        follow_redirects=True,
    )
    assert "Only an assessed referral can be enrolled" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Enrolment)) == 1


def test_directory_filters_and_places(link_worker, provider):
    make_course(provider, title="Singing for Better Breathing", capacity=1)
    from referrals.vocab import ArtForm, Pathway

    make_course(
        provider,
        title="Watercolour Wellbeing",
        art_form=ArtForm.VISUAL_ART,
        pathways=[Pathway.MENTAL_HEALTH],
    )
    db.session.commit()
    page = link_worker.get("/courses/?art_form=visual_art").get_data(as_text=True)
    assert "Watercolour Wellbeing" in page and "Singing for Better" not in page
    page = link_worker.get("/courses/?pathway=copd_asthma").get_data(as_text=True)
    assert "Singing for Better" in page and "Watercolour" not in page
    weekday = (clock.today() - timedelta(days=14)).weekday()
    page = link_worker.get(f"/courses/?weekday={weekday}").get_data(as_text=True)
    assert "Singing for Better" in page and "Watercolour" in page
    page = link_worker.get(f"/courses/?weekday={(weekday + 1) % 7}").get_data(as_text=True)
    assert "No courses match" in page
    assert "GL1" in link_worker.get("/courses/?area=GL1").get_data(as_text=True)
    assert "No courses match" in link_worker.get("/courses/?area=BS").get_data(as_text=True)


def _today_session(course):
    """make_course starts two weeks ago, so its third session is today."""
    session = _sessions(course)[2]
    assert session.date == clock.today()
    return session


def _sessions(course):
    return db.session.scalars(
        select(CourseSession)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.date)
    ).all()


def test_artist_takes_a_register_with_moods(artist, provider, link_worker):
    course = make_course(provider)
    referral = assessed_referral(link_worker.user, given_name="Margaret", family_name="Atkins")
    enrolment = enrol_from_start(link_worker.user, course, referral)
    db.session.commit()
    first = _today_session(course)
    page = artist.get(f"/sessions/{first.id}/register").get_data(as_text=True)
    assert "Margaret Atkins" in page
    assert referral.patient.nhs_number not in page and "Low mood" not in page
    response = submit(
        artist,
        f"/sessions/{first.id}/register",
        {
            f"status-{enrolment.id}": "attended",
            f"mood_before-{enrolment.id}": "4",
            f"mood_after-{enrolment.id}": "7",
            f"note-{enrolment.id}": "Sang a solo",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    mark = db.session.scalar(select(Attendance))
    assert (mark.status, mark.mood_before, mark.mood_after) == (AttendanceStatus.ATTENDED, 4, 7)
    assert first.status is SessionStatus.DELIVERED
    assert referral.status is Status.STARTED
    # The saved register shows each mood chosen, and only that one.
    page = artist.get(f"/sessions/{first.id}/register").get_data(as_text=True)
    before = page.split(f'id="mood_before-{enrolment.id}"')[1].split("</select>")[0]
    after = page.split(f'id="mood_after-{enrolment.id}"')[1].split("</select>")[0]
    assert before.count("selected") == 1 and '<option value="4" selected>4</option>' in before
    assert after.count("selected") == 1 and '<option value="7" selected>7</option>' in after


def test_register_bad_input_keeps_everything_and_saves_nothing(artist, provider, link_worker):
    course = make_course(provider)
    a = enrol_from_start(link_worker.user, course)
    b = enrol_from_start(link_worker.user, course)
    db.session.commit()
    first = _sessions(course)[0]
    response = submit(
        artist,
        f"/sessions/{first.id}/register",
        {
            f"status-{a.id}": "attended",
            f"mood_before-{a.id}": "11",
            f"note-{a.id}": "kept",
            f"status-{b.id}": "",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Mood must be a whole number from 0 to 10" in page
    assert "Choose attended, apologies or no show" in page
    assert f'href="#mood_before-{a.id}"' in page and ">kept</textarea>" in page
    # A mood typed out of range selects none of the options.
    typed = page.split(f'id="mood_before-{a.id}"')[1].split("</select>")[0]
    assert "selected" not in typed and '<option value="10" >10</option>' in typed
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 0
    db.session.refresh(first)
    assert first.status is SessionStatus.PLANNED


def test_service_refuses_strangers_cancelled_sessions_and_the_future(provider, link_worker, app):
    course = make_course(provider)
    enrolment = enrol_from_start(link_worker.user, course)
    outsider = enrol(
        link_worker.user,
        assessed_referral(link_worker.user),
        make_course(provider),
        today=clock.today(),
    )
    artist_user = factories.make_user(Role.ARTIST, organisation=provider)
    sessions = _sessions(course)
    with pytest.raises(RegisterRefused) as refused:
        save_register(
            artist_user,
            sessions[2],
            [RegisterEntry(outsider.id, AttendanceStatus.ATTENDED)],
            today=clock.today(),
        )
    assert "entries.0.enrolment_id" in refused.value.errors
    sessions[1].status = SessionStatus.CANCELLED
    with pytest.raises(RegisterRefused, match="cancelled"):
        save_register(
            artist_user,
            sessions[1],
            [RegisterEntry(enrolment.id, AttendanceStatus.ATTENDED)],
            today=clock.today(),
        )
    with pytest.raises(RegisterRefused, match="on the day"):
        save_register(
            artist_user,
            sessions[-1],
            [RegisterEntry(enrolment.id, AttendanceStatus.ATTENDED)],
            today=clock.today(),
        )
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 0


def test_another_providers_artist_gets_404(login_as, provider, link_worker):
    course = make_course(provider)
    db.session.commit()
    session = _sessions(course)[0]
    stranger = login_as(Role.ARTIST)
    assert stranger.get(f"/sessions/{session.id}/register").status_code == 404
    assert stranger.get(f"/courses/{course.id}").status_code == 404
    assert stranger.get(f"/sessions/{session.id}/cancel").status_code == 404
    assert link_worker.get(f"/sessions/{session.id}/register").status_code == 403


def test_register_edit_window_for_artists_and_audited_admin_corrections(
    artist, provider, link_worker, login_as
):
    course = make_course(provider, start=clock.today() - timedelta(days=21))
    enrolment = enrol_from_start(link_worker.user, course)
    db.session.commit()
    old = _sessions(course)[0]  # three weeks ago
    data = {f"status-{enrolment.id}": "attended"}
    response = submit(artist, f"/sessions/{old.id}/register", data)
    assert "Ask an admin to correct it" in response.get_data(as_text=True)
    admin = login_as(Role.ADMIN)
    assert submit(admin, f"/sessions/{old.id}/register", data).status_code == 302
    submit(admin, f"/sessions/{old.id}/register", {f"status-{enrolment.id}": "apologies"})
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "register.saved").order_by(AuditEvent.id)
    ).all()
    assert [e.detail["late_edit_by_admin"] for e in events] == [False, True]
    assert events[-1].actor_id == admin.user.id


def test_saving_a_register_uses_a_bounded_number_of_queries(artist, provider, link_worker):
    counts = {}
    for size in (5, 30):
        course = make_course(provider, capacity=30)
        enrolments = [enrol_from_start(link_worker.user, course) for _ in range(size)]
        db.session.commit()
        first = _today_session(course)
        data = {}
        for e in enrolments:
            data.update(
                {
                    f"status-{e.id}": "attended",
                    f"mood_before-{e.id}": "5",
                    f"mood_after-{e.id}": "7",
                }
            )
        from tests.conftest import csrf_token

        data["csrf_token"] = csrf_token(artist, f"/sessions/{first.id}/register")

        with counting_queries() as statements:
            assert artist.post(f"/sessions/{first.id}/register", data=data).status_code == 302
        counts[size] = len(statements)
    assert counts[5] == counts[30]
    assert counts[30] <= 40


def test_completing_the_course_completes_the_referral_and_tells_the_practice(
    artist, provider, link_worker, login_as
):
    start = clock.today() - timedelta(days=7 * 3)
    course = make_course(provider, start=start, sessions=4)
    keen = assessed_referral(link_worker.user, given_name="Keen")
    patchy = assessed_referral(link_worker.user, given_name="Patchy")
    e_keen = enrol_from_start(link_worker.user, course, keen)
    e_patchy = enrol_from_start(link_worker.user, course, patchy)
    admin = login_as(Role.ADMIN)
    db.session.commit()
    sessions = _sessions(course)
    assert completion_threshold(4) == 3
    for index, session in enumerate(sessions):
        patchy_status = "attended" if index < 2 else "no_show"
        response = submit(
            admin,
            f"/sessions/{session.id}/register",
            {f"status-{e_keen.id}": "attended", f"status-{e_patchy.id}": patchy_status},
        )
        assert response.status_code == 302
    after_last = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "That was the last session: Keen Person completed the course." in after_last
    assert "Patchy" not in after_last
    # Saved again (still within the edit window), nobody completes anew: nothing is claimed.
    again = submit(
        admin,
        f"/sessions/{sessions[-1].id}/register",
        {f"status-{e_keen.id}": "attended", f"status-{e_patchy.id}": "no_show"},
    )
    after_again = admin.get(again.headers["Location"]).get_data(as_text=True)
    assert "Register saved" in after_again and "last session" not in after_again
    db.session.expire_all()
    assert e_keen.status is EnrolmentStatus.COMPLETED and keen.status is Status.COMPLETED
    assert e_patchy.status is EnrolmentStatus.ENROLLED and patchy.status is Status.STARTED
    message = db.session.scalar(
        select(Notification).where(
            Notification.kind == "message_back", Notification.text.contains("completed")
        )
    )
    assert message.organisation_id == keen.gp_practice_id
    assert "there is no code to record" in message.text
    gp = login_as(factories.make_user(Role.REFERRER, organisation=keen.gp_practice))
    letter = pdf_text(gp.get(f"/referrals/{keen.id}/letter.pdf").data)
    assert "4 of 4 sessions attended" in letter
    # 871731000000106 is recorded at the first interaction only: completing records no code.
    assert "871731000000106" not in letter and "Code to record" not in letter
    # The referral page the message opens says the same.
    page = gp.get(f"/referrals/{keen.id}").get_data(as_text=True)
    assert "Message back to the practice" in page
    assert "Keen Person has completed" in page
    assert "4 of 4 sessions attended" in page
    assert (
        "871731000000106"
        not in page.split("Message back to the practice")[1].split("</section>")[0]
    )
    assert f'href="/referrals/{keen.id}/letter.pdf"' in page
    patchy_gp = login_as(factories.make_user(Role.REFERRER, organisation=patchy.gp_practice))
    still_going = patchy_gp.get(f"/referrals/{patchy.id}")
    assert still_going.status_code == 200
    assert "Patchy Person has accepted support" in still_going.get_data(as_text=True)
    assert "Patchy Person has completed" not in still_going.get_data(as_text=True)


def test_wellbeing_questionnaire_is_scored_and_shown(artist, provider, link_worker):
    course = make_course(provider)
    enrolment = enrol_from_start(link_worker.user, course)
    db.session.commit()
    url = f"/enrolments/{enrolment.id}/wellbeing"
    items = {f"item_{n}": "3" for n in range(1, 8)}  # raw 21 -> metric 19.25
    response = submit(
        artist,
        url,
        {
            "timepoint": "baseline",
            "instrument": "SWEMWBS",
            "recorded_on": clock.today().strftime("%d/%m/%Y"),
            **items,
        },
    )
    assert response.status_code == 302
    assessment = db.session.scalar(select(WellbeingAssessment))
    assert assessment.raw_score == 21 and str(assessment.metric_score) == "19.25"
    page = artist.get(f"/enrolments/{enrolment.id}").get_data(as_text=True)
    assert "19.25" in page and "Baseline" in page


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1/1/0001", "The date must be on or after 1 January 2000"),
        ("31/12/1999", "The date must be on or after 1 January 2000"),
        ("1/1/2999", "The date must be today or in the past"),
    ],
)
def test_a_questionnaire_date_out_of_bounds_is_shown_at_the_field(
    artist, provider, link_worker, typed, message
):
    course = make_course(provider)
    enrolment = enrol(
        link_worker.user, assessed_referral(link_worker.user), course, today=clock.today()
    )
    db.session.commit()
    items = {f"item_{n}": "3" for n in range(1, 8)}
    response = submit(
        artist,
        f"/enrolments/{enrolment.id}/wellbeing",
        {"timepoint": "baseline", "instrument": "SWEMWBS", "recorded_on": typed, **items},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page and 'href="#recorded_on"' in page
    assert db.session.scalar(select(func.count()).select_from(WellbeingAssessment)) == 0


def test_wellbeing_missing_items_are_field_errors(artist, provider, link_worker):
    course = make_course(provider)
    enrolment = enrol_from_start(link_worker.user, course)
    db.session.commit()
    response = submit(
        artist,
        f"/enrolments/{enrolment.id}/wellbeing",
        {"timepoint": "end", "instrument": "SWEMWBS", "item_1": "6", "item_2": "3"},
    )
    page = response.get_data(as_text=True)
    assert "Choose an answer from 1 to 5 for item 3" in page
    assert 'href="#item_1"' in page
    assert db.session.scalar(select(func.count()).select_from(WellbeingAssessment)) == 0


def test_cancel_and_move_sessions(artist, provider):
    course = make_course(provider, start=clock.today() + timedelta(days=7))
    db.session.commit()
    first, second = _sessions(course)[:2]
    response = submit(artist, f"/sessions/{first.id}/cancel", {"reason": ""})
    assert "Give a reason for cancelling" in response.get_data(as_text=True)
    assert (
        submit(artist, f"/sessions/{first.id}/cancel", {"reason": "Hall flooded"}).status_code
        == 302
    )
    new_day = second.date + timedelta(days=1)
    assert (
        submit(
            artist, f"/sessions/{second.id}/move", {"new_date": new_day.strftime("%d/%m/%Y")}
        ).status_code
        == 302
    )
    db.session.expire_all()
    assert first.status is SessionStatus.CANCELLED and second.date == new_day
    assert second.moved_from == new_day - timedelta(days=1)


def test_my_sessions_puts_today_first(artist, provider):
    make_course(provider, start=clock.today(), title="Today's Choir")
    db.session.commit()
    page = artist.get("/sessions/").get_data(as_text=True)
    assert page.index("Today") < page.index("Today&#39;s Choir") < page.index("Next two weeks")


def test_licensed_item_wording_from_instance_configuration(artist, provider, link_worker, app):
    course = make_course(provider)
    enrolment = enrol_from_start(link_worker.user, course)
    db.session.commit()
    url = f"/enrolments/{enrolment.id}/wellbeing"
    assert "Item 1" in artist.get(url).get_data(as_text=True)
    wording = [f"Licensed statement number {n}" for n in range(1, 8)]
    app.config["WELLBEING_ITEM_WORDING"] = {"SWEMWBS": wording}
    try:
        page = artist.get(url).get_data(as_text=True)
    finally:
        app.config.pop("WELLBEING_ITEM_WORDING")
    assert "Licensed statement number 7" in page and "Item 1" not in page


def test_the_persons_page_charts_moods_and_scores(artist, provider, link_worker):
    course = make_course(provider)
    enrolment = enrol_from_start(link_worker.user, course)
    db.session.commit()
    session = _today_session(course)
    submit(
        artist,
        f"/sessions/{session.id}/register",
        {
            f"status-{enrolment.id}": "attended",
            f"mood_before-{enrolment.id}": "3",
            f"mood_after-{enrolment.id}": "6",
        },
    )
    items = {f"item_{n}": "4" for n in range(1, 8)}
    submit(
        artist,
        f"/enrolments/{enrolment.id}/wellbeing",
        {"timepoint": "baseline", "instrument": "SWEMWBS", **items},
    )
    page = artist.get(f"/enrolments/{enrolment.id}").get_data(as_text=True)
    assert 'role="img"' in page and "Mood before and after each session" in page
    assert "SWEMWBS wellbeing score over time" in page
    assert "<desc" in page


def test_closing_an_enrolled_referral_gives_up_its_place(link_worker, provider):
    course = make_course(provider, capacity=1)
    holder = assessed_referral(link_worker.user)
    waiting = assessed_referral(link_worker.user)
    enrol_from_start(link_worker.user, course, holder)
    enrol_from_start(link_worker.user, course, waiting)
    db.session.commit()
    response = submit(
        link_worker,
        f"/referrals/{holder.id}/status",
        {"to": "declined", "reason": "Decided against it"},
        follow_redirects=True,
    )
    assert "offered to" in response.get_data(as_text=True)
    db.session.expire_all()
    assert holder.status is Status.DECLINED and holder.snomed_code == "871711000000103"
    held = db.session.scalar(select(Enrolment).where(Enrolment.referral_id == holder.id))
    assert held.status is EnrolmentStatus.WITHDRAWN
    offered = db.session.scalar(select(Enrolment).where(Enrolment.referral_id == waiting.id))
    assert offered.status is EnrolmentStatus.OFFERED
    assert waiting.status is Status.WAITLISTED  # until they accept


def test_the_artists_home_page_leads_to_todays_register(artist, provider):
    course = make_course(provider, start=clock.today(), title="Tuesday Choir")
    db.session.commit()
    session = _sessions(course)[0]
    page = artist.get("/").get_data(as_text=True)
    assert f'href="/sessions/{session.id}/register"' in page
    assert "Take the register: Tuesday Choir" in page


def test_everyone_sees_the_same_place_counts_and_only_their_own_names(
    provider, link_worker, login_as
):
    course = make_course(provider, capacity=8)
    for n in range(12):
        enrol_from_start(link_worker.user, course, assessed_referral(given_name=f"Person{n}"))
    db.session.commit()
    viewers = {
        "link worker": link_worker,
        "artist": login_as(factories.make_user(Role.ARTIST, organisation=provider)),
        "GP": login_as(Role.REFERRER),
        "commissioner": login_as(Role.COMMISSIONER),
        "admin": login_as(Role.ADMIN),
    }
    for who, client in viewers.items():
        page = client.get(f"/courses/{course.id}").get_data(as_text=True)
        assert "8 (0 left, 4 waiting)" in page, who
    artist_page = viewers["artist"].get(f"/courses/{course.id}").get_data(as_text=True)
    assert "Person0 Person" in artist_page and "Person11" not in artist_page
    assert "Person0" not in viewers["GP"].get(f"/courses/{course.id}").get_data(as_text=True)
    assert "Person11 Person" in link_worker.get(f"/courses/{course.id}").get_data(as_text=True)


def test_a_letter_is_dated_with_its_message_and_carries_the_code_its_move_recorded(login_as):
    from datetime import datetime, time

    from referrals.intake.services import record_conversation, transition
    from tests.intake_helpers import make_referral, nhs_numbers

    accepted_on = clock.today() - timedelta(days=40)
    at = datetime.combine(accepted_on, time(14), tzinfo=LONDON)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    link_worker = factories.make_user(Role.LINK_WORKER)
    numbers = nhs_numbers()
    accepted, declined = (
        make_referral(link_worker, practice, nhs=next(numbers), today=accepted_on, at=at)
        for _ in range(2)
    )
    record_conversation(link_worker, accepted, held_on=accepted_on, what_matters="Song", at=at)
    transition(link_worker, declined, Status.DECLINED, reason="Not now", at=at)
    gp = login_as(factories.make_user(Role.REFERRER, organisation=practice))

    letter = pdf_text(gp.get(f"/referrals/{accepted.id}/letter.pdf").data)
    assert f"Date: {accepted_on:%-d %B %Y}" in letter
    assert f"Date: {clock.today():%-d %B %Y}" not in letter
    assert "SNOMED CT 871731000000106" in letter
    letter = pdf_text(gp.get(f"/referrals/{declined.id}/letter.pdf").data)
    assert f"Date: {accepted_on:%-d %B %Y}" in letter
    assert "SNOMED CT 871711000000103" in letter and "871731000000106" not in letter


def _checked_timepoint(page: str) -> list[str]:
    import re

    return re.findall(r'name="timepoint" type="radio" value="(\w+)" checked', page)


def test_the_register_asks_for_the_questionnaire_the_session_calls_for(
    artist, provider, link_worker, login_as
):
    today = clock.today()
    course = make_course(provider, start=today - timedelta(days=21), sessions=10)
    regular = enrol_from_start(link_worker.user, course, assessed_referral(given_name="Regular"))
    late = enrol_from_start(link_worker.user, course, assessed_referral(given_name="Late"))
    admin = factories.make_user(Role.ADMIN)
    sessions = _sessions(course)
    for session in sessions[:3]:
        entries = [
            RegisterEntry(regular.id, AttendanceStatus.ATTENDED),
            RegisterEntry(late.id, AttendanceStatus.NO_SHOW),
        ]
        save_register(admin, session, entries, today=today)
    db.session.commit()
    fourth = sessions[3]
    assert fourth.date == today

    page = artist.get(f"/sessions/{fourth.id}/register").get_data(as_text=True)
    # Session 4 of 10: mid-course for Regular (no questionnaire); Late's first session.
    assert f"/enrolments/{regular.id}/wellbeing" not in page
    assert f"/enrolments/{late.id}/wellbeing?session={fourth.id}" in page
    assert "Record a wellbeing questionnaire: baseline (start of course)" in page
    form = artist.get(f"/enrolments/{late.id}/wellbeing?session={fourth.id}")
    assert _checked_timepoint(form.get_data(as_text=True)) == ["baseline"]

    url = f"/enrolments/{regular.id}/wellbeing"
    form_page = artist.get(url).get_data(as_text=True)
    assert _checked_timepoint(form_page) == [] and "No questionnaire is due" in form_page
    items = {f"item_{n}": "5" for n in range(1, 8)}
    day = today.strftime("%d/%m/%Y")
    response = submit(artist, url, {"timepoint": "end", "recorded_on": day, **items})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "is during the course (session 4 of 10)" in page and 'href="#timepoint"' in page
    assert db.session.scalar(select(func.count()).select_from(WellbeingAssessment)) == 0


def test_the_last_register_asks_for_the_end_of_course_questionnaire(artist, provider, link_worker):
    today = clock.today()
    course = make_course(provider, start=today - timedelta(days=21), sessions=4)
    enrolment = enrol_from_start(link_worker.user, course)
    db.session.commit()
    last = _sessions(course)[-1]
    page = artist.get(f"/sessions/{last.id}/register").get_data(as_text=True)
    assert "Record a wellbeing questionnaire: end of course" in page
    url = f"/enrolments/{enrolment.id}/wellbeing?session={last.id}"
    assert _checked_timepoint(artist.get(url).get_data(as_text=True)) == ["end"]


def test_a_course_too_far_gone_warns_and_enrols_only_when_the_late_start_is_confirmed(
    link_worker, provider
):
    today = clock.today()
    # 10 weekly sessions, 8 already delivered: 2 left, and completing needs 8.
    course = make_course(provider, start=today - timedelta(weeks=7), sessions=10)
    admin = factories.make_user(Role.ADMIN)
    for session in _sessions(course)[:8]:
        save_register(admin, session, [], today=today)
    referral = assessed_referral(link_worker.user)
    db.session.commit()

    directory = link_worker.get(f"/courses/?referral={referral.id}").get_data(as_text=True)
    assert "2 of 10 sessions left" in directory and "Too late to complete" in directory
    page_url = f"/courses/{course.id}?referral={referral.id}"
    page = link_worker.get(page_url).get_data(as_text=True)
    assert "Only 2 of 10 sessions are left: completing the course needs 8" in page

    enrol_url = f"/courses/{course.id}/enrol"
    response = submit(link_worker, enrol_url, {"referral_id": referral.id}, page=page_url)
    assert response.status_code == 302 and response.headers["Location"].endswith(page_url)
    warned = link_worker.get(page_url).get_data(as_text=True)
    assert "Confirm the late start to enrol anyway" in warned
    db.session.expire_all()
    assert referral.status is Status.ASSESSED

    form = {"referral_id": referral.id, "late_start_confirmed": "1"}
    response = submit(link_worker, enrol_url, form, page=page_url)
    assert response.status_code == 302
    db.session.expire_all()
    assert referral.status is Status.ENROLLED


def test_a_course_with_enough_sessions_left_enrols_without_a_warning(link_worker, provider):
    today = clock.today()
    course = make_course(provider, start=today - timedelta(weeks=2), sessions=10)
    referral = assessed_referral(link_worker.user)
    db.session.commit()
    page_url = f"/courses/{course.id}?referral={referral.id}"
    page = link_worker.get(page_url).get_data(as_text=True)
    assert "8 of 10" in page and "Too late to complete" not in page
    response = submit(
        link_worker, f"/courses/{course.id}/enrol", {"referral_id": referral.id}, page=page_url
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert referral.status is Status.ENROLLED
