"""Demo referrals: fifteen months of the demo scheme's referrals, from receipt to the point
where a link worker matches each person to a course.

`draft_demo_referrals` is pure and deterministic for a seed: people, referrals and the intake part
of their timelines (contact, conversation, early closes). `referrals.seeding.demo_courses` carries
the matched ones on through courses and replays the whole plan through the services, so statuses,
timelines, audit entries and messages back are the ones the service itself records.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

import nhs_number
from sqlalchemy import select

from referrals.auth.models import Organisation, User
from referrals.clock import LONDON
from referrals.extensions import db
from referrals.intake.lifecycle import (
    CLOSED_STATUSES,
    Actor,
    Status,
    check_transition,
)
from referrals.intake.models import Referral
from referrals.intake.services import (
    PatientDetails,
    ReferralDetails,
    assign,
    create_referral,
    log_contact_attempt,
    record_conversation,
    transition,
)
from referrals.intake.validation import age_on, clean_phone, clean_postcode
from referrals.vocab import (
    ArtForm,
    ContactMethod,
    ContactOutcome,
    Ethnicity,
    Pathway,
    ReferrerType,
    Sex,
)
from referrals.workdays import add_working_days, is_working_day

_T = TypeVar("_T")

HISTORY_DAYS = 455  # referrals start this many days before today: a year and a run-in
LAUNCH_DAYS = 20  # working days of pent-up referrals when the scheme opens
TOTAL_REFERRALS = 510
RETURNING_PEOPLE = 14  # an earlier, closed referral and a new one
CONCURRENT_PEOPLE = 2  # two open referrals, the second with a new-episode reason
FRESH_UNASSIGNED = 4  # the newest referrals, not yet picked up
STALLED = 4  # assigned but not contacted within 5 working days

LINK_WORKER = "linkworker@demo.test"
LINK_WORKER_2 = "linkworker2@demo.test"


@dataclass(frozen=True)
class PracticeProfile:
    share: float
    link_worker: str
    gp_account: str | None
    outward_codes: tuple[str, ...]


PRACTICES: dict[str, PracticeProfile] = {
    "Abbey Road Surgery": PracticeProfile(0.20, LINK_WORKER, "gp@demo.test", ("GL1", "GL2", "GL4")),
    "Brookside Medical Centre": PracticeProfile(
        0.18, LINK_WORKER_2, "gp2@demo.test", ("GL2", "GL3", "GL4")
    ),
    "Castle Street Health Centre": PracticeProfile(
        0.17, LINK_WORKER, None, ("GL50", "GL51", "GL52")
    ),
    "Dean Valley Practice": PracticeProfile(
        0.13, LINK_WORKER_2, None, ("GL14", "GL15", "GL16", "GL17")
    ),
    "Eastgate Family Doctors": PracticeProfile(0.17, LINK_WORKER, None, ("GL52", "GL53", "GL54")),
    "Forest Green Surgery": PracticeProfile(
        0.15, LINK_WORKER_2, None, ("GL5", "GL6", "GL10", "GL11")
    ),
}

# --- People ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameGroup:
    ethnicity: Ethnicity
    share: float
    female: tuple[str, ...]
    male: tuple[str, ...]
    family: tuple[str, ...]
    # Given names by age band (under 38, 38 to 67, 68 and over), when they differ by generation.
    female_by_age: tuple[tuple[str, ...], ...] = ()
    male_by_age: tuple[tuple[str, ...], ...] = ()
    languages: tuple[str, ...] = ()


def _split(names: str) -> tuple[str, ...]:
    return tuple(names.split())


NAME_GROUPS = (
    NameGroup(
        Ethnicity.WHITE,
        0.78,
        (),
        (),
        _split(
            "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Roberts Johnson Lewis "
            "Walker Robinson Wood Thompson White Watson Jackson Wright Green Harris Cooper King "
            "Clarke James Morgan Hughes Edwards Hill Moore Harrison Scott Young Morris Hall Ward "
            "Turner Carter Phillips Mitchell Baker Parsons Hopkins Pritchard Price Powell Fletcher "
            "Hawkins Meadows Llewellyn Jenkins Griffiths Bishop Cole Webb Gardner Dyer Mason "
            "Cotterell Bevan Rees Howells MacDonald Campbell Stewart Murphy Kelly O'Brien Byrne "
            "Doyle Walsh Sutton Payne Holmes Barker Palmer Chapman Spencer Lane Hunt Fisher"
        ),
        female_by_age=(
            _split(
                "Chloe Amelia Olivia Jessica Megan Lauren Ellie Hannah Sophie Freya Lily Grace "
                "Charlotte Bethany Holly Abigail Katie Ruby Poppy Millie"
            ),
            _split(
                "Susan Karen Julie Tracey Sarah Nicola Joanne Claire Helen Lisa Angela Deborah "
                "Rachel Emma Kerry Gillian Alison Michelle Dawn Louise Amanda Wendy"
            ),
            _split(
                "Margaret Jean Patricia Barbara Sheila Maureen Joan Brenda Pauline Valerie Doreen "
                "Eileen Sylvia Irene Shirley Christine Janet Carol Ann Elizabeth Jennifer Linda"
            ),
        ),
        male_by_age=(
            _split(
                "Jack Oliver Harry Callum Liam Kieran Josh Ryan Ethan Alfie Charlie Jake Connor "
                "Tom Owen Luke Joe Dylan Sam Ben"
            ),
            _split(
                "Paul Mark Andrew Stephen Darren Gary Richard Simon Neil Jason Lee Martin Craig "
                "Ian Matthew Philip Nigel Christopher Shaun Wayne"
            ),
            _split(
                "John David Michael Peter Brian Roy Kenneth Derek Keith Alan Graham Raymond Colin "
                "Terence Malcolm Dennis Barry Geoffrey Trevor Robert Anthony"
            ),
        ),
    ),
    NameGroup(
        Ethnicity.WHITE,
        0.05,
        _split("Agnieszka Katarzyna Magdalena Joanna Anna Ewa Monika Marta Karolina Zofia"),
        _split("Piotr Tomasz Marek Krzysztof Pawel Michal Jakub Lukasz Adam Grzegorz"),
        _split("Nowak Wójcik Kowalczyk Mazur Krawczyk Zając Król Wróbel Dudek Sikora Baran"),
        languages=("Polish",),
    ),
    NameGroup(
        Ethnicity.ASIAN,
        0.032,
        _split("Aisha Fatima Nusrat Shabana Rukhsana Farzana Zainab Nasreen Sadia Yasmin Samina"),
        _split("Mohammed Imran Tariq Amir Bilal Abdul Shahid Zubair Asif Faisal Usman Hamza"),
        _split("Khan Ahmed Hussain Ali Rahman Iqbal Mahmood Akhtar Chowdhury Uddin Malik Rashid"),
        languages=("Urdu", "Bengali", "Punjabi"),
    ),
    NameGroup(
        Ethnicity.ASIAN,
        0.026,
        _split("Anjali Sunita Meena Harpreet Kiran Simran Neha Jaspreet Asha Pooja Rani Nisha"),
        _split("Arjun Rajesh Sanjay Harjit Gurdeep Rahul Vikram Amit Manoj Sunil Jaswinder Deepak"),
        _split("Patel Singh Sharma Kumar Mistry Gill Sandhu Parmar Joshi Mehta Dhillon Chauhan"),
        languages=("Gujarati", "Punjabi"),
    ),
    NameGroup(
        Ethnicity.ASIAN,
        0.007,
        _split("Mei Xin Hui Ling Yan Jia"),
        _split("Wei Jun Ming Hao Jian Kai"),
        _split("Chen Wong Li Zhang Liu Lam Cheung Ng"),
        languages=("Cantonese", "Mandarin"),
    ),
    NameGroup(
        Ethnicity.BLACK,
        0.012,
        _split("Marcia Beverley Sonia Jacqueline Paulette Michelle Shanice Tanisha Janelle Simone"),
        _split("Winston Delroy Clive Errol Leon Marcus Tyrone Jermaine Andre Dwayne"),
        _split("Campbell Brown Williams Francis Grant Thompson Clarke Reid Henry Bailey Gordon"),
    ),
    NameGroup(
        Ethnicity.BLACK,
        0.013,
        _split("Chiamaka Ngozi Abena Adaeze Folake Amara Grace Blessing Efua Yetunde"),
        _split("Chinedu Kwame Oluwaseun Emeka Kofi Tunde Samuel Emmanuel Yaw Babajide"),
        _split("Okafor Mensah Adeyemi Osei Okonkwo Boateng Adebayo Nwosu Asante Eze Owusu"),
    ),
    NameGroup(
        Ethnicity.MIXED,
        0.025,
        _split("Jade Leah Maya Aaliyah Kayla Tia Naomi Jasmine Keisha Zara"),
        _split("Jordan Kai Reece Isaac Tyler Nathan Malachi Jayden Elijah Aaron"),
        _split("Campbell Williams Clarke Brown Thomas Francis Johnson Walker Edwards Bennett"),
    ),
    NameGroup(
        Ethnicity.OTHER,
        0.006,
        _split("Layla Mariam Noor Huda Rana Salma"),
        _split("Omar Karim Samir Youssef Khalid Tarek"),
        _split("Haddad Hassan Mansour Nasser Saleh Aziz"),
        languages=("Arabic",),
    ),
    NameGroup(
        Ethnicity.OTHER,
        0.004,
        _split("Maricel Rowena Jocelyn Marites Analyn"),
        _split("Rodel Jericho Ramon Arnel Danilo"),
        _split("Santos Reyes Cruz Bautista Garcia Mendoza"),
        languages=("Tagalog",),
    ),
)
ETHNICITY_NOT_STATED = 0.045
SEXES = ((Sex.FEMALE, 0.62), (Sex.MALE, 0.365), (Sex.OTHER, 0.005), (Sex.NOT_STATED, 0.01))

# Ages at referral, per pathway: lowest, highest, most common.
AGES: dict[Pathway, tuple[int, int, int]] = {
    Pathway.MENTAL_HEALTH: (25, 75, 40),
    Pathway.COPD_ASTHMA: (45, 90, 70),
    Pathway.DEMENTIA: (62, 95, 80),
    Pathway.DIABETES: (30, 85, 60),
    Pathway.CHRONIC_PAIN: (28, 85, 55),
    Pathway.CANCER: (35, 88, 64),
    Pathway.SOCIAL_ISOLATION: (22, 96, 76),
    Pathway.YOUNG_PEOPLES_MENTAL_HEALTH: (16, 24, 19),
    Pathway.OTHER: (25, 90, 65),
}
PATHWAY_SHARES: dict[Pathway, float] = {
    Pathway.MENTAL_HEALTH: 0.27,
    Pathway.SOCIAL_ISOLATION: 0.18,
    Pathway.COPD_ASTHMA: 0.10,
    Pathway.CHRONIC_PAIN: 0.10,
    Pathway.DEMENTIA: 0.09,
    Pathway.YOUNG_PEOPLES_MENTAL_HEALTH: 0.09,
    Pathway.DIABETES: 0.06,
    Pathway.CANCER: 0.06,
    Pathway.OTHER: 0.05,
}

ACCESS_NEEDS = (
    "Uses a wheelchair: needs step-free access and an accessible toilet",
    "Walks with a stick and cannot manage stairs",
    "Uses a rollator; needs a seat near the door",
    "Registered partially sighted: large print, please",
    "Needs to sit down often",
    "Does not drive: needs a venue on a bus route",
    "Uses oxygen when out and needs somewhere to keep the cylinder",
)
COMMUNICATION_NEEDS = (
    "Hard of hearing: please text rather than phone",
    "BSL user: book an interpreter",
    "Dyslexic: phone rather than send letters",
    "Autistic: send clear written details before any meeting",
    "Has aphasia after a stroke: allow extra time to talk",
)


@dataclass(frozen=True)
class DemoPerson:
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: date
    sex: Sex
    ethnicity: Ethnicity
    postcode: str
    phone: str | None
    email: str | None
    preferred_contact: ContactMethod
    practice: str
    communication_needs: str = ""
    access_needs: str = ""

    def details(self) -> PatientDetails:
        return PatientDetails(
            nhs_number=self.nhs_number,
            given_name=self.given_name,
            family_name=self.family_name,
            date_of_birth=self.date_of_birth,
            sex=self.sex,
            ethnicity=self.ethnicity,
            postcode=self.postcode,
            phone=self.phone,
            email=self.email,
            preferred_contact=self.preferred_contact,
            communication_needs=self.communication_needs,
            access_needs=self.access_needs,
        )


# --- Referral content --------------------------------------------------------------------------

SITUATIONS: dict[Pathway, tuple[str, ...]] = {
    Pathway.MENTAL_HEALTH: (
        "Low mood and anxiety for six months, on sertraline; the wait for talking therapy is long.",
        "Recurrent depression, stable on medication but very isolated since moving to the area.",
        "Anxiety since being made redundant; struggling with confidence and sleeping badly.",
        "Low mood following a bereavement last year; needs a reason to get out of the house.",
        "Generalised anxiety; has finished a course of CBT and wants something to keep going.",
        "Postnatal depression, now improving; keen to do something just for themselves.",
        "Stress and burnout, signed off work for eight weeks.",
        "Long-standing low mood; finds groups hard but willing to try something creative.",
    ),
    Pathway.COPD_ASTHMA: (
        "COPD (moderate); finished pulmonary rehab and wants to keep up the breathing exercises.",
        "Severe asthma with two admissions this winter; breathless and anxious about going out.",
        "COPD; breathlessness limits walking and has become housebound and low.",
        "Long COVID with ongoing breathlessness; singing recommended for breathing control.",
        "COPD, on oxygen at night; would like a seated, gentle activity.",
        "Bronchiectasis; the respiratory physio suggested singing to help clear the chest.",
    ),
    Pathway.DEMENTIA: (
        "Early Alzheimer's disease, diagnosed this year; partner is carer and both want a group.",
        "Vascular dementia; becoming withdrawn, family keen for something familiar and social.",
        "Mild cognitive impairment; the memory clinic suggested stimulating group activities.",
        "Mixed dementia; enjoys music and reminiscing, and the carer needs a short break.",
        "Recently diagnosed with dementia and low in mood; still independent with some support.",
    ),
    Pathway.DIABETES: (
        "Type 2 diabetes, poorly controlled; low motivation and isolated since retiring.",
        "Type 2 diabetes and weight gain; wants a gentle way to be more active.",
        "Type 1 diabetes with diabetes distress after a difficult year.",
        "Newly diagnosed type 2 diabetes and finding it overwhelming.",
    ),
    Pathway.CHRONIC_PAIN: (
        "Fibromyalgia; pain and fatigue have stopped work and most hobbies.",
        "Chronic low back pain; the pain clinic recommends activity and distraction.",
        "Osteoarthritis in both knees, awaiting surgery; low from being stuck at home.",
        "Chronic pain after an injury; reducing opioids and needs other ways to cope.",
        "Rheumatoid arthritis; stiff hands and wants to keep them moving.",
    ),
    Pathway.CANCER: (
        "Finished treatment for breast cancer in the spring; anxious about recurrence.",
        "Prostate cancer, on hormone therapy; fatigue and loss of confidence.",
        "Two years on from bowel cancer surgery; lost touch with friends during treatment.",
        "Lymphoma in remission; the cancer nurse suggested a creative group for recovery.",
        "Living with secondary cancer; wants something enjoyable and sociable.",
    ),
    Pathway.SOCIAL_ISOLATION: (
        "Lives alone since being widowed; comes to the surgery often for company.",
        "Recently moved to be near family and knows no one locally.",
        "Carer for a partner with Parkinson's disease; rarely gets time out.",
        "Retired last year and misses the company of work; feels lonely.",
        "Frequent attender; lonely and would benefit from a regular group.",
        "Lives alone in a village with little public transport; very isolated.",
    ),
    Pathway.YOUNG_PEOPLES_MENTAL_HEALTH: (
        "Social anxiety; left college last year and rarely leaves the house.",
        "Low mood and low self-esteem; recently moved from CAMHS to adult services.",
        "Anxiety and panic attacks at university; taking a year out at home.",
        "Low mood after exams; not in education, employment or training.",
        "Autistic and finds mainstream groups hard; looking for a small creative group.",
        "Low mood and poor sleep; struggling to settle after leaving care.",
    ),
    Pathway.OTHER: (
        "Parkinson's disease; the specialist nurse recommended dance for balance.",
        "Stroke eight months ago; recovering well but has lost confidence going out.",
        "Multiple sclerosis; fatigue and low mood, would like a seated activity.",
        "Hearing loss and tinnitus; withdrawing from social situations.",
        "Recovering from a heart attack; cardiac rehab suggested something sociable.",
    ),
}
INTEREST_LINES: dict[ArtForm, str] = {
    ArtForm.SINGING: "Used to sing in a choir and misses it.",
    ArtForm.MUSIC: "Plays a little guitar and enjoys music.",
    ArtForm.VISUAL_ART: "Enjoyed painting when younger and would like to try again.",
    ArtForm.CRAFTS: "Knits and sews at home and would like to do it with others.",
    ArtForm.DANCE: "Loved dancing and wants to keep moving.",
    ArtForm.DRAMA: "Did amateur dramatics years ago.",
    ArtForm.WRITING: "Keeps a journal and would like to write more.",
    ArtForm.PHOTOGRAPHY: "Takes photographs on walks and wants to learn more.",
    ArtForm.HERITAGE: "Enjoys local history and museums.",
}
# Art forms each pathway's referrals tend to mention, most likely first.
PATHWAY_ART_FORMS: dict[Pathway, tuple[ArtForm, ...]] = {
    Pathway.MENTAL_HEALTH: (ArtForm.VISUAL_ART, ArtForm.WRITING, ArtForm.CRAFTS, ArtForm.MUSIC),
    Pathway.COPD_ASTHMA: (ArtForm.SINGING, ArtForm.SINGING, ArtForm.DANCE, ArtForm.CRAFTS),
    Pathway.DEMENTIA: (ArtForm.SINGING, ArtForm.HERITAGE, ArtForm.MUSIC, ArtForm.DANCE),
    Pathway.DIABETES: (ArtForm.DANCE, ArtForm.VISUAL_ART, ArtForm.SINGING, ArtForm.PHOTOGRAPHY),
    Pathway.CHRONIC_PAIN: (ArtForm.VISUAL_ART, ArtForm.CRAFTS, ArtForm.WRITING, ArtForm.DANCE),
    Pathway.CANCER: (ArtForm.VISUAL_ART, ArtForm.SINGING, ArtForm.WRITING, ArtForm.CRAFTS),
    Pathway.SOCIAL_ISOLATION: (
        ArtForm.SINGING,
        ArtForm.CRAFTS,
        ArtForm.HERITAGE,
        ArtForm.VISUAL_ART,
    ),
    Pathway.YOUNG_PEOPLES_MENTAL_HEALTH: (
        ArtForm.MUSIC,
        ArtForm.PHOTOGRAPHY,
        ArtForm.DRAMA,
        ArtForm.VISUAL_ART,
    ),
    Pathway.OTHER: (ArtForm.DANCE, ArtForm.SINGING, ArtForm.VISUAL_ART, ArtForm.HERITAGE),
}
RISK_NOTES = (
    "Lives with an adult son who can be hostile to visitors: meet at the surgery, not at home.",
    "Has a large dog: phone before any home visit.",
    "Several falls at home recently: check the venue is step-free.",
    "Drinks heavily at times and may not answer in the afternoons.",
)
MENTAL_HEALTH_RISK_NOTES = (
    "History of self-harm; under the community mental health team. Tell the GP of any concern.",
    "Recent suicidal thoughts; has a safety plan and the GP is reviewing weekly.",
)

WHAT_MATTERS: dict[Pathway, tuple[str, ...]] = {
    Pathway.SOCIAL_ISOLATION: (
        "Time for themselves, away from caring.",
        "Someone to chat to who isn't the doctor.",
    ),
    Pathway.COPD_ASTHMA: (
        "Being less breathless and more confident walking to the shops.",
        "Singing with the grandchildren without having to stop for breath.",
    ),
    Pathway.DEMENTIA: (
        "Doing things together as a couple while they still can.",
        "Music from when they were young; it lifts their mood for the whole day.",
    ),
    Pathway.YOUNG_PEOPLES_MENTAL_HEALTH: (
        "Meeting people their own age who won't judge them.",
        "Having something on the CV and a reason to get up in the morning.",
    ),
    Pathway.CHRONIC_PAIN: (
        "Something to focus on other than the pain.",
        "Getting some of their old life back, a bit at a time.",
    ),
    Pathway.CANCER: (
        "Feeling like themselves again after treatment.",
        "Something enjoyable that has nothing to do with hospitals.",
    ),
}
WHAT_MATTERS_ANY = (
    "Getting out of the house once a week and meeting people.",
    "Having something to look forward to that isn't about being ill.",
    "Making friends locally.",
    "Keeping busy in the afternoons, which are the hardest time.",
    "Building routine and confidence before thinking about work again.",
    "Feeling useful and part of something.",
    "Doing something creative again, as they used to.",
)
PRACTICALITIES = (
    "can get there on the bus",
    "a family member can drive them",
    "needs a step-free venue",
    "would prefer a small group to start with",
    "would like to be met at the door the first time",
    "mornings are best",
    "afternoons are best",
)


CLOSE_REASONS: dict[Status, tuple[str, ...]] = {
    Status.DECLINED: (
        "Does not feel ready for a group at the moment",
        "Prefers to keep going with the walking group instead",
        "Work hours clash with every current course",
        "Not interested in an arts activity after all",
        "Partner's health has got worse; no time for anything else just now",
    ),
    Status.NOT_SUITABLE: (
        "Needs are better met by the community mental health team; referred back to the GP",
        "Lives outside the scheme's area; signposted to their local service",
        "Needs one-to-one support first; referred to the wellbeing service",
        "Currently too unwell to join a group; GP to re-refer when ready",
    ),
    Status.WITHDRAWN: (
        "Moved out of the area",
        "Admitted to hospital; will re-refer when home",
        "Started a full-time job",
        "Referred to us in error: meant for the falls clinic",
    ),
    Status.UNABLE_TO_CONTACT: (
        "No reply to three attempts, the last an opt-in letter",
        "No reply after three attempts; the practice has been told",
    ),
    Status.DID_NOT_START: (
        "Did not come to the first two sessions and did not reply to messages",
        "Course clashed with hospital appointments",
        "Lost confidence about going on the day; happy to be re-referred later",
    ),
}
WITHDRAWN_FROM_COURSE = (
    "Stopped coming after a few sessions; health got worse",
    "Found the group too large; would like something smaller",
    "Started a new job on the course day",
    "Transport fell through; could not get to the venue",
)
WITHDRAWN_FROM_WAITING_LIST = (
    "Found another group in the meantime",
    "Moved out of the area while waiting",
    "No longer wants a place after the long wait",
)
NEW_EPISODE_REASON = (
    "Open referral is for {first}; this new referral is for {second}, a separate need"
)
REOPEN_REASON = "Rang back after getting our letter and would like to go ahead"

CONTACT_NOTES: dict[tuple[ContactMethod, ContactOutcome], tuple[str, ...]] = {
    (ContactMethod.PHONE, ContactOutcome.NO_ANSWER): (
        "No answer and no voicemail",
        "Rang twice, no answer",
    ),
    (ContactMethod.PHONE, ContactOutcome.LEFT_MESSAGE): (
        "Left a voicemail introducing the service",
        "Left a message with a family member",
    ),
    (ContactMethod.PHONE, ContactOutcome.WRONG_NUMBER): (
        "Number not recognised; asked the practice to check the details",
    ),
    (ContactMethod.PHONE, ContactOutcome.SPOKE): (
        "Spoke to them; keen to hear more",
        "Spoke to them; a bit unsure but happy to talk it through",
    ),
    (ContactMethod.TEXT, ContactOutcome.LEFT_MESSAGE): ("Sent a text asking them to call back",),
    (ContactMethod.TEXT, ContactOutcome.REPLIED): ("Replied to our text; call booked",),
    (ContactMethod.EMAIL, ContactOutcome.LEFT_MESSAGE): ("Emailed to introduce the service",),
    (ContactMethod.EMAIL, ContactOutcome.REPLIED): ("Replied by email; call booked",),
    (ContactMethod.LETTER, ContactOutcome.LEFT_MESSAGE): (
        "Sent an opt-in letter asking them to reply within two weeks",
    ),
    (ContactMethod.LETTER, ContactOutcome.REPLIED): ("Rang us after getting our letter",),
}

# --- The plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedAssign:
    at: datetime
    by: str
    to: str


@dataclass(frozen=True)
class PlannedContact:
    at: datetime
    by: str
    method: ContactMethod
    outcome: ContactOutcome
    note: str


@dataclass(frozen=True)
class PlannedConversation:
    at: datetime
    by: str
    held_on: date
    what_matters: str
    agreed_next_steps: str
    art_forms: tuple[ArtForm, ...]


@dataclass(frozen=True)
class PlannedMove:
    """A status change. `system` for moves only the courses capability may make; `effect` for
    moves a course service makes by itself (an enrolment, a register, a completion, a withdrawal),
    which replaying the plan does not apply directly. `seq` orders steps planned for one moment.
    """

    at: datetime
    on: date
    by: str | None
    target: Status
    system: bool = False
    reason: str = ""
    note: str = ""
    course: str = ""
    effect: bool = False
    seq: int = 0


@dataclass(frozen=True)
class PlannedEnrol:
    """The link worker enrols the person on a course run; `result` is enrolled or waitlisted."""

    at: datetime
    by: str
    run: str
    result: Status
    seq: int = 0


@dataclass(frozen=True)
class PlannedWithdrawal:
    """The person's place (or waiting-list place) on a course run is given up. A place it
    frees is offered to the next person waiting, who takes it the same day unless
    `offer_taken` is false: then the offer is still open."""

    at: datetime
    by: str
    run: str
    reason: str
    seq: int = 0
    offer_taken: bool = True


PlannedStep = (
    PlannedAssign
    | PlannedContact
    | PlannedConversation
    | PlannedMove
    | PlannedEnrol
    | PlannedWithdrawal
)


@dataclass(frozen=True)
class PlannedReferral:
    person: DemoPerson
    referrer: str
    referrer_type: ReferrerType
    pathway: Pathway
    reason: str
    interests: tuple[ArtForm, ...]
    received_on: date
    received_at: datetime
    link_worker: str
    risk_note: str = ""
    new_episode_reason: str = ""
    steps: tuple[PlannedStep, ...] = ()

    @property
    def status(self) -> Status:
        """Where the referral ends up once its steps are applied."""
        status = Status.RECEIVED
        for step in self.steps:
            if isinstance(step, PlannedContact) and status is Status.RECEIVED:
                status = Status.CONTACTING
            elif isinstance(step, PlannedConversation):
                status = Status.ASSESSED
            elif isinstance(step, PlannedMove):
                status = step.target
        return status

    @property
    def closed_on(self) -> date | None:
        last = next((s for s in reversed(self.steps) if isinstance(s, PlannedMove)), None)
        return last.on if last and last.target in CLOSED_STATUSES else None

    @property
    def ever_closed(self) -> bool:
        return any(isinstance(s, PlannedMove) and s.target in CLOSED_STATUSES for s in self.steps)


class Timeline:
    """Builds one referral's steps forward in time from its receipt, checking each move."""

    def __init__(self, rng: random.Random, received_at: datetime, link_worker: str) -> None:
        self.rng = rng
        self.now = received_at  # London time
        self.link_worker = link_worker
        self.status = Status.RECEIVED
        self.steps: list[PlannedStep] = []
        # Set when the conversation ends in a match: when the link worker looks for a course,
        # and the art forms the person would like, first choice first.
        self.ready_at: datetime | None = None
        self.art_forms: tuple[ArtForm, ...] = ()

    def day_after(self, low: int, high: int) -> date:
        """A working day `low` to `high` working days after the last step (0: the same day)."""
        return add_working_days(self.now.date(), self.rng.randint(low, high))

    def _tick(self, day: date, hour: time | None = None) -> datetime:
        if hour is not None:
            moment = datetime.combine(day, hour, tzinfo=LONDON)
        elif day == self.now.date():
            if self.now.hour >= 17:
                return self._tick(add_working_days(day, 1))
            moment = self.now + timedelta(minutes=self.rng.randint(10, 90))
        else:
            minutes = self.rng.randint(9 * 60, 16 * 60 + 45)
            moment = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=LONDON)
        if moment <= self.now:
            moment = self.now + timedelta(minutes=5)
        self.now = moment
        return moment

    def _at(self, at: datetime) -> datetime:
        """Move the clock to `at`, a moment another part of the plan fixed."""
        if at < self.now:
            raise ValueError(f"a step at {at} would come before the last one at {self.now}")
        self.now = at
        return at

    def assign(self, day: date, to: str) -> None:
        self.steps.append(PlannedAssign(self._tick(day).astimezone(UTC), to, to))

    def contact(self, day: date, method: ContactMethod, outcome: ContactOutcome) -> None:
        at = self._tick(day)
        note = self.rng.choice(CONTACT_NOTES[(method, outcome)])
        self.steps.append(
            PlannedContact(at.astimezone(UTC), self.link_worker, method, outcome, note)
        )
        if self.status is Status.RECEIVED:
            self.status = Status.CONTACTING

    def conversation(
        self, day: date, what_matters: str, next_steps: str, art_forms: tuple[ArtForm, ...]
    ) -> None:
        at = self._tick(day)
        self.steps.append(
            PlannedConversation(
                at.astimezone(UTC),
                self.link_worker,
                at.date(),
                what_matters,
                next_steps,
                art_forms,
            )
        )
        self.status = Status.ASSESSED

    def move(
        self,
        day: date,
        target: Status,
        *,
        reason: str = "",
        hour: time | None = None,
    ) -> None:
        """A move the link worker makes on the referral's page."""
        self.move_at(self._tick(day, hour), target, reason=reason)

    def move_at(
        self,
        at: datetime,
        target: Status,
        *,
        system: bool = False,
        effect: bool = False,
        reason: str = "",
        note: str = "",
        by: str | None = None,
        course: str = "",
        seq: int = 0,
    ) -> None:
        check_transition(
            self.status, target, actor=Actor.SYSTEM if system else Actor.PERSON, reason=reason
        )
        at = self._at(at)
        actor = by if by is not None else (None if system else self.link_worker)
        self.steps.append(
            PlannedMove(
                at.astimezone(UTC),
                at.date(),
                actor,
                target,
                system,
                reason,
                note,
                course,
                effect,
                seq,
            )
        )
        self.status = target

    def close(self, day: date, target: Status, reason: str | None = None) -> None:
        self.move(day, target, reason=reason or self.rng.choice(CLOSE_REASONS[target]))

    def enrol(self, at: datetime, run: str, result: Status, seq: int) -> None:
        self.steps.append(
            PlannedEnrol(self._at(at).astimezone(UTC), self.link_worker, run, result, seq)
        )

    def withdraw(
        self, at: datetime, run: str, reason: str, seq: int, *, offer_taken: bool = True
    ) -> None:
        self.steps.append(
            PlannedWithdrawal(
                self._at(at).astimezone(UTC), self.link_worker, run, reason, seq, offer_taken
            )
        )

    def until(self, last_day: date) -> tuple[PlannedStep, ...]:
        """The steps that have happened by the end of `last_day`."""
        return tuple(s for s in self.steps if s.at.astimezone(LONDON).date() <= last_day)


def _weighted(rng: random.Random, options: Sequence[tuple[_T, float]]) -> _T:
    values, weights = zip(*options, strict=True)
    return rng.choices(values, weights=weights)[0]


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


class _People:
    """Draws distinct people: names, NHS numbers, phone numbers and emails are never reused."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nhs_numbers: set[str] = set()
        self.names: set[tuple[str, str]] = set()
        self.emails: set[str] = set()
        self.mobiles = [f"07700900{n:03d}" for n in range(1000)]
        self.landlines = [f"01632960{n:03d}" for n in range(1000)]
        rng.shuffle(self.mobiles)
        rng.shuffle(self.landlines)

    def nhs_number(self) -> str:
        while True:
            digits = f"999{self.rng.randrange(10**6):06d}"
            check = nhs_number.calculate_checksum(digits)
            if check is None or check == 10:
                continue
            number = f"{digits}{check}"
            if number not in self.nhs_numbers:
                self.nhs_numbers.add(number)
                return number

    def draw(self, practice: str, pathway: Pathway, received_on: date, today: date) -> DemoPerson:
        rng = self.rng
        low, high, mode = AGES[pathway]
        age = min(high, int(rng.triangular(low, high + 1, mode)))
        latest = _years_before(received_on, age)
        earliest = _years_before(received_on, age + 1) + timedelta(days=1)
        date_of_birth = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
        age_now = age_on(date_of_birth, today)

        group = _weighted(rng, [(g, g.share) for g in NAME_GROUPS])
        sex = _weighted(rng, SEXES)
        female = sex is Sex.FEMALE or (sex not in (Sex.FEMALE, Sex.MALE) and rng.random() < 0.5)
        band = 0 if age_now < 38 else 1 if age_now < 68 else 2
        while True:
            if female:
                given_names = group.female_by_age[band] if group.female_by_age else group.female
            else:
                given_names = group.male_by_age[band] if group.male_by_age else group.male
            given, family = rng.choice(given_names), rng.choice(group.family)
            if (given, family) not in self.names:
                self.names.add((given, family))
                break
        ethnicity = Ethnicity.NOT_STATED if rng.random() < ETHNICITY_NOT_STATED else group.ethnicity

        outward = rng.choice(PRACTICES[practice].outward_codes)
        inward = f"{rng.randint(1, 9)}{''.join(rng.choices('ABDEFGHJLNPQRSTUWXYZ', k=2))}"
        postcode = clean_postcode(f"{outward} {inward}")

        email_chance = (
            0.7 if age_now < 30 else 0.5 if age_now < 60 else 0.3 if age_now < 75 else 0.1
        )
        email = None
        if rng.random() < email_chance:
            style = rng.randrange(3)
            local = (
                f"{_ascii(given)}.{_ascii(family)}"
                if style == 0
                else f"{_ascii(given)}{_ascii(family)}{date_of_birth.year % 100:02d}"
                if style == 1
                else f"{_ascii(given)[0]}{_ascii(family)}"
            )
            while f"{local}@example.org" in self.emails:
                local += str(rng.randint(1, 9))
            email = f"{local}@example.org"
            self.emails.add(email)

        landline = rng.random() < (0.6 if age_now >= 70 else 0.08)
        phone = clean_phone((self.landlines if landline else self.mobiles).pop())
        if age_now >= 70:
            preferred = _weighted(rng, [(ContactMethod.PHONE, 0.85), (ContactMethod.LETTER, 0.15)])
        elif age_now < 35 and not landline:
            preferred = _weighted(
                rng,
                [
                    (ContactMethod.TEXT, 0.45),
                    (ContactMethod.PHONE, 0.35),
                    (ContactMethod.EMAIL, 0.2 if email else 0.0),
                ],
            )
        else:
            preferred = _weighted(
                rng,
                [
                    (ContactMethod.PHONE, 0.7),
                    (ContactMethod.TEXT, 0.0 if landline else 0.15),
                    (ContactMethod.EMAIL, 0.15 if email else 0.0),
                ],
            )

        communication = ""
        if pathway is Pathway.DEMENTIA and rng.random() < 0.6:
            communication = "Has dementia: speak to their carer first"
        elif group.languages and age_now >= 55 and rng.random() < 0.4:
            communication = f"Speaks {rng.choice(group.languages)}; an interpreter helps"
        elif rng.random() < 0.06:
            communication = rng.choice(COMMUNICATION_NEEDS)
        access = (
            rng.choice(ACCESS_NEEDS) if rng.random() < (0.25 if age_now >= 70 else 0.06) else ""
        )

        return DemoPerson(
            nhs_number=self.nhs_number(),
            given_name=given,
            family_name=family,
            date_of_birth=date_of_birth,
            sex=sex,
            ethnicity=ethnicity,
            postcode=postcode,
            phone=phone,
            email=email,
            preferred_contact=preferred,
            practice=practice,
            communication_needs=communication,
            access_needs=access,
        )


def _interests(rng: random.Random, pathway: Pathway) -> tuple[ArtForm, ...]:
    count = _weighted(rng, [(0, 0.25), (1, 0.45), (2, 0.22), (3, 0.08)])
    picks: list[ArtForm] = []
    likely = PATHWAY_ART_FORMS[pathway]
    while len(picks) < count:
        art = rng.choice(likely) if rng.random() < 0.75 else rng.choice(list(ArtForm))
        if art not in picks:
            picks.append(art)
    return tuple(picks)


def _reason(rng: random.Random, pathway: Pathway, interests: tuple[ArtForm, ...]) -> str:
    reason = rng.choice(SITUATIONS[pathway])
    if interests and rng.random() < 0.7:
        reason += " " + INTEREST_LINES[interests[0]]
    return reason


def _contact_attempts(
    t: Timeline, preferred: ContactMethod, failures: int, *, then_reach: bool
) -> ContactMethod | None:
    """`failures` unanswered attempts, then (if `then_reach`) the one that gets through."""
    rng = t.rng
    first = preferred if preferred is not ContactMethod.LETTER else ContactMethod.PHONE
    methods = [first, ContactMethod.PHONE, ContactMethod.LETTER]
    day = t.day_after(1, 5) if rng.random() < 0.93 else t.day_after(6, 9)
    for number in range(failures):
        method = methods[number]
        outcome = ContactOutcome.LEFT_MESSAGE
        if method is ContactMethod.PHONE:
            outcome = _weighted(
                rng,
                [
                    (ContactOutcome.NO_ANSWER, 0.5),
                    (ContactOutcome.LEFT_MESSAGE, 0.45),
                    (ContactOutcome.WRONG_NUMBER, 0.05),
                ],
            )
            if outcome is ContactOutcome.WRONG_NUMBER:
                methods[number + 1 :] = [ContactMethod.LETTER, ContactMethod.PHONE]
        t.contact(day, method, outcome)
        day = t.day_after(5, 10) if method is ContactMethod.LETTER else t.day_after(2, 6)
    if not then_reach:
        return None
    method = methods[failures]
    if method is ContactMethod.LETTER and rng.random() < 0.6:
        method = ContactMethod.PHONE
    outcome = ContactOutcome.SPOKE if method is ContactMethod.PHONE else ContactOutcome.REPLIED
    t.contact(day, method, outcome)
    return method


def _working_day_on_or_before(day: date) -> date:
    while not is_working_day(day):
        day -= timedelta(days=1)
    return day


def _journey(
    t: Timeline,
    person: DemoPerson,
    pathway: Pathway,
    referrer_type: ReferrerType,
    interests: tuple[ArtForm, ...],
) -> None:
    """The intake part of the journey, regardless of when the story stops: contact, the
    conversation, and either a close or the moment a course is looked for."""
    rng = t.rng
    roll = rng.random()
    if roll < 0.03:
        target = _weighted(
            rng,
            [(Status.NOT_SUITABLE, 0.6), (Status.WITHDRAWN, 0.3), (Status.DECLINED, 0.1)],
        )
        reason = "Rang to say they do not want to go ahead" if target is Status.DECLINED else None
        t.close(t.day_after(0, 2), target, reason)
        return

    direct = referrer_type in (ReferrerType.SELF, ReferrerType.LINK_WORKER) and rng.random() < 0.6
    same_call = False
    if direct:
        talk_day = t.day_after(0, 3)
    else:
        outcome = _weighted(
            rng,
            [
                ("reach", 0.80),
                ("unreachable", 0.11),
                ("decline", 0.06),
                ("unsuitable", 0.02),
                ("withdrawn", 0.01),
            ],
        )
        preferred = person.preferred_contact
        if outcome == "unreachable":
            _contact_attempts(t, preferred, 3, then_reach=False)
            wrong = any(
                isinstance(s, PlannedContact) and s.outcome is ContactOutcome.WRONG_NUMBER
                for s in t.steps
            )
            reason = "Number not recognised and no reply to our letter" if wrong else None
            t.close(t.day_after(8, 12), Status.UNABLE_TO_CONTACT, reason)
            if rng.random() > 0.15:
                return
            t.move(t.day_after(5, 25), Status.CONTACTING, reason=REOPEN_REASON)
            t.contact(t.day_after(0, 2), ContactMethod.PHONE, ContactOutcome.SPOKE)
            method: ContactMethod | None = ContactMethod.PHONE
        else:
            failures = _weighted(rng, [(0, 0.5), (1, 0.3), (2, 0.2)])
            method = _contact_attempts(t, preferred, failures, then_reach=True)
        if outcome in ("decline", "unsuitable", "withdrawn"):
            target = {
                "decline": Status.DECLINED,
                "unsuitable": Status.NOT_SUITABLE,
                "withdrawn": Status.WITHDRAWN,
            }[outcome]
            t.close(t.now.date(), target)
            return
        same_call = method is ContactMethod.PHONE and rng.random() < 0.3
        talk_day = t.now.date() if same_call else t.day_after(2, 12)

    art_forms = interests or (rng.choice(PATHWAY_ART_FORMS[pathway]),)
    if len(art_forms) == 1 and rng.random() < 0.3:
        extra = rng.choice(PATHWAY_ART_FORMS[pathway])
        art_forms = art_forms if extra in art_forms else (*art_forms, extra)
    pool = WHAT_MATTERS.get(pathway, ()) + WHAT_MATTERS_ANY
    next_steps = (
        f"Find a {art_forms[0].label.lower()} group on a weekday; {rng.choice(PRACTICALITIES)}."
    )
    t.conversation(talk_day, rng.choice(pool), next_steps, art_forms)

    after = _weighted(
        rng,
        [
            ("match", 0.91),
            (Status.DECLINED, 0.04),
            (Status.NOT_SUITABLE, 0.03),
            (Status.WITHDRAWN, 0.02),
        ],
    )
    if isinstance(after, Status):
        t.close(t.day_after(1, 10), after)
        return

    # A course is looked for a few days later, or after a longer search; the courses part of the
    # plan finds one that fits and enrols the person.
    match_day = t.day_after(2, 10) if rng.random() < 0.6 else t.day_after(10, 25)
    t.ready_at = t._tick(match_day)
    t.art_forms = art_forms


def _referrer(
    rng: random.Random, profile: PracticeProfile, link_worker: str, *, fresh: bool
) -> tuple[ReferrerType, str]:
    """Who referred, and whose account entered it: the practice's GP, else the link worker."""
    if profile.gp_account:
        if fresh:
            return ReferrerType.GP, profile.gp_account
        options = [
            (ReferrerType.GP, 0.85),
            (ReferrerType.SELF, 0.08),
            (ReferrerType.LINK_WORKER, 0.07),
        ]
    else:
        options = [
            (ReferrerType.GP, 0.6),
            (ReferrerType.OTHER_HEALTH_PROFESSIONAL, 0.22),
            (ReferrerType.SELF, 0.1),
            (ReferrerType.LINK_WORKER, 0.08),
        ]
    kind = _weighted(rng, options)
    return (
        kind,
        profile.gp_account if kind is ReferrerType.GP and profile.gp_account else link_worker,
    )


def _need(pathway: Pathway) -> str:
    label = pathway.label
    if pathway is Pathway.OTHER:
        return "another condition"
    return label if label[1].isupper() else label[0].lower() + label[1:]


def _compatible_pathways(age: int) -> list[tuple[Pathway, float]]:
    return [(p, s) for p, s in PATHWAY_SHARES.items() if AGES[p][0] <= age <= AGES[p][1]]


@dataclass
class DraftReferral:
    """A planned referral whose timeline the courses part of the plan may still extend."""

    referral: PlannedReferral  # without steps; see `planned`
    timeline: Timeline
    # The earlier referral of someone referred again for a second need: it stays open.
    keep_open: bool = False

    def planned(self, last_day: date) -> PlannedReferral:
        return replace(self.referral, steps=self.timeline.until(last_day))


def history_start(today: date) -> date:
    """The day the demo scheme's first referrals arrive."""
    return today - timedelta(days=HISTORY_DAYS)


def last_planned_day(today: date) -> date:
    """The last day the plan records anything on: the working day before `today`."""
    return _working_day_on_or_before(today - timedelta(days=1))


def draft_demo_referrals(*, today: date, seed: int = 2026) -> list[DraftReferral]:
    """About 510 referrals received over the fifteen months before `today`, oldest first, each
    with its intake steps; pure."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    people = _People(rng)
    last_day = last_planned_day(today)
    first_day = history_start(today)
    days = [
        first_day + timedelta(days=n)
        for n in range((last_day - first_day).days + 1)
        if is_working_day(first_day + timedelta(days=n))
    ]
    # Practices refer the people they have been saving up when the scheme opens; after that it
    # grows over the year, later days getting more referrals.
    weights = [
        (2.5 if n < LAUNCH_DAYS else 1) * (1 + 0.8 * n / len(days)) for n in range(len(days))
    ]
    received = sorted(rng.choices(days, weights=weights, k=TOTAL_REFERRALS))

    fresh = set(range(TOTAL_REFERRALS - FRESH_UNASSIGNED, TOTAL_REFERRALS))
    stalled_window = [
        i
        for i, d in enumerate(received)
        if i not in fresh and add_working_days(d, 6) <= last_day < add_working_days(d, 16)
    ]
    stalled = set(rng.sample(stalled_window, min(STALLED, len(stalled_window))))
    taken = fresh | stalled
    returning = set(
        rng.sample(
            [i for i, d in enumerate(received) if i not in taken and (d - first_day).days > 150],
            RETURNING_PEOPLE,
        )
    )
    taken |= returning
    concurrent = set(
        rng.sample(
            [i for i, d in enumerate(received) if i not in taken and (last_day - d).days < 35],
            CONCURRENT_PEOPLE,
        )
    )

    drafts: list[DraftReferral] = []
    second_referral: set[str] = set()
    practices = list(PRACTICES)
    for index, received_on in enumerate(received):
        earlier: DraftReferral | None = None
        if index in returning:
            candidates = [
                d
                for d in drafts
                if d.referral.person.nhs_number not in second_referral
                and (closed_on := d.planned(last_day).closed_on) is not None
                and closed_on <= received_on - timedelta(days=21)
            ]
            earlier = rng.choice(candidates) if candidates else None
        elif index in concurrent:
            # Someone still being matched to a course, so the first referral stays open.
            candidates = [
                d
                for d in drafts
                if d.referral.person.nhs_number not in second_referral
                and d.planned(last_day).status is Status.ASSESSED
                and not d.planned(last_day).ever_closed
                and d.referral.received_on <= received_on - timedelta(days=21)
                and d.timeline.ready_at is not None
                and d.timeline.ready_at.date() >= received_on - timedelta(days=28)
                and len(_compatible_pathways(age_on(d.referral.person.date_of_birth, received_on)))
                > 1
            ]
            earlier = rng.choice(candidates) if candidates else None

        if earlier is not None:
            person = earlier.referral.person
            practice = person.practice
            age = age_on(person.date_of_birth, received_on)
            options = _compatible_pathways(age)
            if index in concurrent:
                options = [(p, s) for p, s in options if p is not earlier.referral.pathway]
                earlier.keep_open = True
            pathway = _weighted(rng, options)
            second_referral.add(person.nhs_number)
        else:
            # The newest referrals come from the practices whose GPs refer on the service.
            choices = [p for p in practices if index not in fresh or PRACTICES[p].gp_account]
            practice = rng.choices(choices, weights=[PRACTICES[p].share for p in choices])[0]
            pathway = _weighted(rng, list(PATHWAY_SHARES.items()))
            person = people.draw(practice, pathway, received_on, today)
        profile = PRACTICES[practice]
        link_worker = profile.link_worker
        if earlier is not None and index in concurrent:
            link_worker = earlier.referral.link_worker
        elif rng.random() < 0.1:  # cover for a colleague
            link_worker = LINK_WORKER_2 if link_worker == LINK_WORKER else LINK_WORKER

        kind, referrer = _referrer(rng, profile, link_worker, fresh=index in fresh)

        interests = _interests(rng, pathway)
        risk_note = ""
        if rng.random() < 0.04:
            mental = pathway in (Pathway.MENTAL_HEALTH, Pathway.YOUNG_PEOPLES_MENTAL_HEALTH)
            risk_note = rng.choice(MENTAL_HEALTH_RISK_NOTES if mental else RISK_NOTES)

        start, end = (8 * 60, 18 * 60 + 30) if referrer == profile.gp_account else (9 * 60, 16 * 60)
        minutes = rng.randint(start, end)
        received_at = datetime.combine(
            received_on, time(minutes // 60, minutes % 60), tzinfo=LONDON
        )
        t = Timeline(rng, received_at, link_worker)
        if referrer not in (LINK_WORKER, LINK_WORKER_2) and index not in fresh:
            t.assign(t.day_after(0, 1), link_worker)
        if index not in fresh and index not in stalled:
            _journey(t, person, pathway, kind, interests)

        new_episode = ""
        if earlier is not None and index in concurrent:
            new_episode = NEW_EPISODE_REASON.format(
                first=_need(earlier.referral.pathway), second=_need(pathway)
            )
        drafts.append(
            DraftReferral(
                PlannedReferral(
                    person=person,
                    referrer=referrer,
                    referrer_type=kind,
                    pathway=pathway,
                    reason=_reason(rng, pathway, interests),
                    interests=interests,
                    received_on=received_on,
                    received_at=received_at.astimezone(UTC),
                    risk_note=risk_note,
                    new_episode_reason=new_episode,
                    link_worker=link_worker,
                ),
                t,
            )
        )
    return drafts


# --- Applying the plan through the services ----------------------------------------------------


@dataclass
class Accounts:
    """The demo accounts by email."""

    by_email: dict[str, User] = field(default_factory=dict)

    @classmethod
    def load(cls, emails: set[str]) -> Accounts:
        return cls(
            {u.email: u for u in db.session.scalars(select(User).where(User.email.in_(emails)))}
        )

    def __getitem__(self, email: str) -> User:
        try:
            return self.by_email[email]
        except KeyError:
            raise LookupError(
                f"the demo account {email} is missing; seed the scheme first"
            ) from None


def create_planned_referral(
    planned: PlannedReferral, accounts: Accounts, organisations: dict[str, Organisation]
) -> Referral:
    """Enter a planned referral as its referrer did, on the day it arrived."""
    person = planned.person
    return create_referral(
        accounts[planned.referrer],
        ReferralDetails(
            patient=person.details(),
            gp_practice=organisations[person.practice],
            referrer_type=planned.referrer_type,
            pathway=planned.pathway,
            reason=planned.reason,
            interests=list(planned.interests),
            consent=True,
            risk_flag=bool(planned.risk_note),
            risk_note=planned.risk_note,
            received_on=planned.received_on,
            new_episode_reason=planned.new_episode_reason,
        ),
        today=planned.received_on,
        at=planned.received_at,
    )


def apply_intake_step(
    step: PlannedAssign | PlannedContact | PlannedConversation | PlannedMove,
    referral: Referral,
    accounts: Accounts,
) -> None:
    """Replay one intake step, or a move made on the referral's page, through the services."""
    if isinstance(step, PlannedAssign):
        assign(accounts[step.by], referral, accounts[step.to])
    elif isinstance(step, PlannedContact):
        log_contact_attempt(
            accounts[step.by],
            referral,
            method=step.method,
            outcome=step.outcome,
            note=step.note,
            at=step.at,
        )
    elif isinstance(step, PlannedConversation):
        record_conversation(
            accounts[step.by],
            referral,
            held_on=step.held_on,
            what_matters=step.what_matters,
            agreed_next_steps=step.agreed_next_steps,
            preferred_art_forms=list(step.art_forms),
            at=step.at,
        )
    else:
        transition(
            accounts[step.by] if step.by else None,
            referral,
            step.target,
            reason=step.reason,
            note=step.note,
            on=step.on,
            by=Actor.SYSTEM if step.system else Actor.PERSON,
            at=step.at,
        )
