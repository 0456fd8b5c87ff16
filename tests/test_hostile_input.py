"""Hostile input: random and malicious values posted to every form and every API body.

Each property posts over-long strings, unicode (right-to-left marks, emoji, combining
characters), HTML and `<script>`, SQL fragments, spreadsheet formula prefixes, wrong types,
NUL and control characters and huge numbers, and asserts:

- never a 5xx;
- nothing half-written: when the answer is not a success, no table changed (the audit log,
  sign-in attempts and session bookkeeping aside);
- after a success, the pages that show what was stored (the one redirected to, and lists and
  detail pages) carry no markup we sent unescaped.

Each test signs one client in (or one API token) and runs its property inside the test, so the
world is built once per test. Example counts are kept small; there are many properties.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from referrals.auth.models import Role
from referrals.courses.models import Course, CourseSession, Enrolment
from referrals.courses.services import enrol
from referrals.extensions import db
from tests.conftest import TEST_PASSWORD, csrf_token
from tests.course_helpers import assessed_referral
from tests.intake_helpers import make_referral, nhs_numbers, referral_form
from tests.world import World, build_world

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis folder; every run explores afresh
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Tables that legitimately change on a refused request: the audit trail (refusals and views
# are recorded), failed sign-in counts, and session and token bookkeeping.
VOLATILE_TABLES = {
    "audit_event",
    "login_attempt",
    "user_session",
    "api_token",
    "notification_read",
    "job_run",
}

# Values -----------------------------------------------------------------------------------

NASTY = [
    # Markup and script.
    "<script>alert('xss')</script>",
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    "</textarea><script>alert(1)</script>",
    "</title><svg/onload=alert(1)>",
    "javascript:alert(1)",
    '<a href="javascript:alert(1)">x</a>',
    "{{ 7*7 }}{% if 1 %}x{% endif %}",
    # SQL.
    "' OR '1'='1' --",
    "'; DROP TABLE patient; --",
    "1 UNION SELECT password_hash FROM user_account",
    "%",
    "_%_",
    "\\",
    "\\'",
    # Spreadsheet formulas.
    '=HYPERLINK("http://evil.example","x")',
    "=1+2",
    "+44 1632",
    "-2+3",
    "@SUM(A1)",
    "\t=cmd",
    "\r=cmd",
    # Unicode.
    "\u202egnp.exe",
    "مرحبا بالعالم",
    "שָׁלוֹם",
    "😀🎨🩺👩🏽‍⚕️",
    "e\u0301\u0302\u0303\u0304",
    "Z\u0351\u0352\u0353a\u0354l\u0355g\u0356o",
    "\u200b\u200d\u2060",
    "\ufeffBOM",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "ǅİß",
    "\u2028\u2029",
    # Control characters.
    "\x00",
    "a\x00b",
    "\x01\x02\x1b[31m",
    "\x7f",
    "line\nbreak\r\n",
    # Sizes and numbers.
    "A" * 5000,
    "9" * 400,
    " " * 300,
    "",
    "0",
    "-1",
    "1e309",
    "NaN",
    "Infinity",
    "2147483648",
    "99999999999999999999999",
    "0x10",
    "1.5",
    "true",
    "null",
    "[]",
    "{}",
]

HOSTILE_TEXT = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=120),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=6),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.tuples(st.sampled_from(NASTY), st.text(max_size=20)).map("".join),
)

LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff\udbff"])
# JSON strings can carry what a form cannot: lone surrogates, valid escapes in JSON.
HOSTILE_JSON_TEXT = st.one_of(HOSTILE_TEXT, LONE_SURROGATES)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.integers(min_value=2**63, max_value=10**60),
    st.integers(max_value=-(2**63)),
    st.floats(),  # including NaN and the infinities, which Python's JSON reads
    HOSTILE_JSON_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)

DROP = object()  # a field left out of the form


@st.composite
def form_changes(draw: Any, fields: Iterable[str], free: Iterable[str]) -> dict[str, Any]:
    """Changes to a valid form: in "text" mode only free-text fields get hostile text (so the
    form can still be accepted and stored); in "any" mode every field may be hostile, repeated
    or missing."""
    free = set(free)
    mode = draw(st.sampled_from(["text", "any"]))
    changes: dict[str, Any] = {}
    for name in fields:
        if mode == "text":
            if name in free and draw(st.booleans()):
                changes[name] = draw(HOSTILE_TEXT)
            continue
        action = draw(st.sampled_from(["keep", "replace", "replace", "drop", "many"]))
        if action == "replace":
            changes[name] = draw(HOSTILE_TEXT)
        elif action == "drop":
            changes[name] = DROP
        elif action == "many":
            changes[name] = draw(st.lists(HOSTILE_TEXT, min_size=2, max_size=3))
    return changes


def apply(valid: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**valid, **changes}
    return {k: v for k, v in merged.items() if v is not DROP and v is not None}


def _mutate(draw: Any, value: Any, path: str, mode: str, free: set[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            where = f"{path}{key}"
            if mode == "any":
                action = draw(st.sampled_from(["keep", "replace", "drop", "inside"]))
                if action == "keep":
                    out[key] = item
                elif action == "replace":
                    out[key] = draw(JSON_VALUES)
                elif action == "inside":
                    out[key] = _mutate(draw, item, where + ".", mode, free)
            else:
                out[key] = _mutate(draw, item, where + ".", mode, free)
        if mode == "any" and draw(st.booleans()):
            out[draw(st.text(max_size=12))] = draw(JSON_VALUES)
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_mutate(draw, v, path + "*.", mode, free) for v in value]
    leaf = path.rstrip(".")
    if mode == "text":
        return draw(HOSTILE_JSON_TEXT) if leaf in free and draw(st.booleans()) else value
    return draw(JSON_VALUES) if draw(st.booleans()) else value


@st.composite
def hostile_body(draw: Any, valid: Any, free: Iterable[str] = ()) -> Any:
    """A JSON body made from a valid one: free text made hostile, any field of any type, or
    something else entirely."""
    free = set(free)
    modes = ["any", "whole"] + (["text", "text"] if free else [])
    mode = draw(st.sampled_from(modes))
    if mode == "whole":
        return draw(JSON_VALUES)
    return _mutate(draw, valid, "", mode, free)


def fill(body: Any, fresh: dict[str, Callable[[], Any]]) -> Any:
    """Replace placeholder strings (`__NHS__`) with fresh values, wherever they survived."""
    if isinstance(body, dict):
        return {k: fill(v, fresh) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, fresh) for v in body]
    if isinstance(body, str) and body in fresh:
        return fresh[body]()
    return body


# Checks -----------------------------------------------------------------------------------


def snapshot() -> dict[str, list[str]]:
    """Every row of every table that a refused request must leave alone.

    Read through the test's own session between commits: outside a request every SQLite
    transaction takes the write lock, so a second connection would wait for the session's.
    """
    db.session.commit()
    try:
        return {
            table.name: sorted(repr(tuple(row)) for row in db.session.execute(select(table)))
            for table in db.metadata.sorted_tables
            if table.name not in VOLATILE_TABLES
        }
    finally:
        db.session.commit()


def assert_unchanged(before: dict[str, list[str]], what: str) -> None:
    after = snapshot()
    changed = [name for name in before if before[name] != after.get(name)]
    assert not changed, f"{what}: refused, yet changed {changed}"


def settle(response: Any, before: dict[str, list[str]], what: str, ok: Iterable[int]) -> bool:
    """No 5xx; a refusal changed nothing. True when the request succeeded."""
    assert response.status_code < 500, f"{what}: {response.status_code}"
    if response.status_code in set(ok):
        return True
    assert_unchanged(before, f"{what} ({response.status_code})")
    return False


class _ActiveMarkup(HTMLParser):
    """Finds markup that would run: event-handler attributes, `javascript:` links and script
    elements, as a browser would parse the page (text inside attribute values is inert)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") and "alert(" in value:
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action", "formaction") and value.startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and "alert(" in data:
            self.found.append(f"<script>{data[:80]}")


def active_markup(page: str) -> list[str]:
    parser = _ActiveMarkup()
    parser.feed(page)
    parser.close()
    return parser.found


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_in(v)]
    return []


def assert_escaped(client: FlaskClient, urls: Iterable[str], sent: Any) -> None:
    """The pages show no markup we sent unescaped."""
    scripts = [s.strip() for s in strings_in(sent) if "alert(" in s and "<" in s]
    for url in urls:
        response = client.get(url)
        assert response.status_code < 500, f"GET {url}: {response.status_code}"
        page = response.get_data(as_text=True)
        found = active_markup(page)
        assert not found, f"GET {url} shows unescaped markup: {found}"
        for script in scripts:
            assert script not in page, f"GET {url} shows {script!r} unescaped"


def post_form(client: FlaskClient, url: str, data: dict[str, Any], token: str) -> Any:
    return client.post(url, data={**data, "csrf_token": token})


def location(response: Any) -> list[str]:
    target = response.headers.get("Location", "")
    return [target] if target.startswith("/") else []


def run(prop: Callable[..., None], strategy: Any, examples: int = 25) -> None:
    settings(SETTINGS, max_examples=examples)(given(strategy)(prop))()


_numbers = nhs_numbers()
_serial = itertools.count(1)


def fresh_nhs() -> str:
    return next(_numbers)


def serial() -> int:
    return next(_serial)


# Page forms -------------------------------------------------------------------------------

REFERRAL_FREE = [
    "given_name",
    "family_name",
    "reason",
    "communication_needs",
    "access_needs",
    "risk_note",
]
REFERRAL_FIELDS = [
    "nhs_number",
    "date_of_birth",
    "sex",
    "ethnicity",
    "postcode",
    "phone",
    "email",
    "preferred_contact",
    "referrer_type",
    "pathway",
    "interests",
    "consent",
    "risk_flag",
    "received_on",
    "new_episode_reason",
    *REFERRAL_FREE,
]


def test_referral_form(app: Flask, login_as: Any) -> None:
    world = build_world()
    client = login_as(world.user(Role.REFERRER))
    token = csrf_token(client, "/referrals/new")

    def prop(changes: dict[str, Any]) -> None:
        valid = referral_form(nhs_number=fresh_nhs(), communication_needs="", access_needs="")
        data = apply(valid, changes)
        before = snapshot()
        response = post_form(client, "/referrals/new", data, token)
        if settle(response, before, "POST /referrals/new", ok={302}):
            assert_escaped(client, [*location(response), "/referrals/", "/"], data)

    run(prop, form_changes(REFERRAL_FIELDS, REFERRAL_FREE))


def test_contact_conversation_and_status_forms(app: Flask, login_as: Any) -> None:
    world = build_world()
    worker = world.user(Role.LINK_WORKER)
    practice = world.organisations["gp_a"]
    client = login_as(worker)
    token = csrf_token(client, "/account/password")
    forms = {
        "contact": (
            {"method": "phone", "outcome": "left_message", "note": "Rang"},
            ["note"],
        ),
        "conversation": (
            {
                "held_on": world.today.strftime("%d/%m/%Y"),
                "what_matters": "Singing",
                "agreed_next_steps": "Try the choir",
                "preferred_art_forms": ["singing"],
            },
            ["what_matters", "agreed_next_steps"],
        ),
        "status": (
            {"to": "declined", "reason": "Moved away", "note": "Phoned"},
            ["reason", "note"],
        ),
    }
    strategy = st.sampled_from(sorted(forms)).flatmap(
        lambda name: st.tuples(st.just(name), form_changes(list(forms[name][0]), forms[name][1]))
    )

    def prop(drawn: tuple[str, dict[str, Any]]) -> None:
        name, changes = drawn
        referral = make_referral(worker, practice, nhs=fresh_nhs(), today=world.today)
        db.session.commit()
        url = f"/referrals/{referral.id}/{name}"
        data = apply(forms[name][0], changes)
        before = snapshot()
        response = post_form(client, url, data, token)
        if settle(response, before, f"POST {url}", ok={302}):
            assert_escaped(client, [*location(response), "/referrals/"], data)

    run(prop, strategy, examples=40)


def _admin_forms(world: World) -> dict[str, tuple[str, Callable[[], dict[str, Any]], list[str]]]:
    """(url, a fresh valid form, its free-text fields) for each admin form."""
    org, ids = world.organisations, world.objects
    target_user = ids["user"]["spare"]
    password = "a-new-long-passphrase-for-tests"

    def user(n: int) -> dict[str, Any]:
        return {
            "name": f"Jo Bennett {n}",
            "email": f"jo{n}@example.test",
            "role": "link_worker",
            "organisation": str(org["lws_a"].id),
            "new_password": password,
            "confirm_password": password,
        }

    def contract(n: int) -> dict[str, Any]:
        return {
            "name": f"Contract {n}",
            "commissioner": str(org["comm_a"].id),
            "start_date": "1/4/2026",
            "end_date": "31 3 2027",
            "target_B1_minimum": "40",
            "target_B1_expected": "50",
            "target_B1_stretch": "60",
        }

    def course(n: int, *, new: bool) -> dict[str, Any]:
        fields = {
            "title": f"Course {n}",
            "description": "A choir.\r\nNo experience needed.",
            "art_form": "singing",
            "provider": str(org["prov_a"].id),
            "contract": str(ids["contract"]["contract_a"]),
            "venue": str(ids["venue"]["venue_a"]),
            "pathways": ["copd_asthma"],
            "min_age": "18",
            "max_age": "",
            "capacity": "12",
            "cost_per_session": "33.00",
            "lead_artists": [str(world.user(Role.ARTIST).id)],
        }
        if new:
            start = world.today + timedelta(days=30)
            fields |= {
                "start_date": start.strftime("%d/%m/%Y"),
                "start_time": "10:00",
                "duration_minutes": "120",
                "frequency": "weekly",
                "sessions": "8",
                "taster_sessions": "2",
            }
        return fields

    venue = {
        "name": "Hall",
        "address": "1 Church Lane\r\nGloucester",
        "postcode": "GL1 2AB",
        "accessibility": "Step-free",
    }
    return {
        "new organisation": (
            "/admin/organisations/new",
            lambda: {"name": f"Arts {serial()}", "kind": "provider", "ods_code": ""},
            ["name"],
        ),
        "edit organisation": (
            f"/admin/organisations/{org['prov_b'].id}/edit",
            lambda: {"name": f"Arts {serial()}", "kind": "provider", "active": "y"},
            ["name"],
        ),
        "new user": ("/admin/users/new", lambda: user(serial()), ["name"]),
        "edit user": (
            f"/admin/users/{target_user}/edit",
            lambda: (
                {**user(serial()), "role": "referrer", "organisation": str(org["gp_b"].id)}
                | {"active": "y"}
            ),
            ["name"],
        ),
        "reset password": (
            f"/admin/users/{target_user}/password",
            lambda: {"new_password": password, "confirm_password": password},
            ["new_password", "confirm_password"],
        ),
        "new contract": ("/admin/contracts/new", lambda: contract(serial()), ["name"]),
        "edit contract": (
            f"/admin/contracts/{ids['contract']['contract_b']}/edit",
            lambda: contract(serial()) | {"commissioner": str(org["comm_b"].id)},
            ["name"],
        ),
        "new venue": (
            "/admin/venues/new",
            lambda: dict(venue),
            ["name", "address", "accessibility"],
        ),
        "edit venue": (
            f"/admin/venues/{ids['venue']['venue_b']}/edit",
            lambda: dict(venue),
            ["name", "address", "accessibility"],
        ),
        "new course": (
            "/admin/courses/new",
            lambda: course(serial(), new=True),
            ["title", "description"],
        ),
        "edit course": (
            f"/admin/courses/{ids['course']['course_b']}/edit",
            lambda: (
                course(serial(), new=False)
                | {
                    "provider": str(org["prov_b"].id),
                    "contract": str(ids["contract"]["contract_b"]),
                    "lead_artists": [str(world.user(Role.ARTIST, "b").id)],
                }
            ),
            ["title", "description"],
        ),
    }


ADMIN_LISTS = [
    "/admin/organisations",
    "/admin/users",
    "/admin/contracts",
    "/admin/venues",
    "/admin/courses",
    "/courses/",
]


def test_admin_forms(app: Flask, login_as: Any) -> None:
    world = build_world()
    client = login_as(world.user(Role.ADMIN))
    token = csrf_token(client, "/admin/users/new")
    forms = _admin_forms(world)
    fields = {name: list(make()) for name, (_url, make, _free) in forms.items()}
    strategy = st.sampled_from(sorted(forms)).flatmap(
        lambda name: st.tuples(st.just(name), form_changes(fields[name], forms[name][2]))
    )

    def prop(drawn: tuple[str, dict[str, Any]]) -> None:
        name, changes = drawn
        url, make, _free = forms[name]
        data = apply(make(), changes)
        before = snapshot()
        response = post_form(client, url, data, token)
        if settle(response, before, f"POST {url} ({name})", ok={302}):
            edit_pages = [url] if url.endswith("/edit") else []
            assert_escaped(client, [*location(response), *edit_pages, *ADMIN_LISTS], data)

    run(prop, strategy, examples=80)


def test_register_and_wellbeing_forms(app: Flask, login_as: Any) -> None:
    world = build_world()
    client = login_as(world.user(Role.ARTIST))
    token = csrf_token(client, "/account/password")
    session_id = world.ids("session")["sess_a"]
    enrolment_id = world.ids("enrolment")["enr_a"]
    people = [world.ids("enrolment")["enr_a"], world.ids("enrolment")["enr_x"]]
    register: dict[str, Any] = {}
    for eid in people:
        register |= {
            f"status-{eid}": "attended",
            f"mood_before-{eid}": "4",
            f"mood_after-{eid}": "7",
            f"note-{eid}": "Joined in",
        }
    wellbeing = {
        "instrument": "SWEMWBS",
        "timepoint": "baseline",
        "recorded_on": world.today.strftime("%d/%m/%Y"),
        **{f"item_{n}": "3" for n in range(1, 8)},
    }
    forms = {
        "register": (f"/sessions/{session_id}/register", register, [f"note-{e}" for e in people]),
        "wellbeing": (f"/enrolments/{enrolment_id}/wellbeing", wellbeing, []),
    }
    strategy = st.sampled_from(sorted(forms)).flatmap(
        lambda name: st.tuples(st.just(name), form_changes(list(forms[name][1]), forms[name][2]))
    )
    pages = [f"/sessions/{session_id}/register", f"/enrolments/{enrolment_id}", "/sessions/"]

    def prop(drawn: tuple[str, dict[str, Any]]) -> None:
        name, changes = drawn
        url, valid, _free = forms[name]
        data = apply(valid, changes)
        before = snapshot()
        response = post_form(client, url, data, token)
        if settle(response, before, f"POST {url}", ok={302}):
            assert_escaped(client, [*location(response), *pages], data)

    run(prop, strategy, examples=40)


CSV_LINES = st.lists(
    st.lists(HOSTILE_TEXT, min_size=0, max_size=8).map(
        lambda cells: ",".join('"' + c.replace('"', '""') + '"' for c in cells)
    ),
    max_size=6,
)


def test_register_upload(app: Flask, login_as: Any) -> None:
    """A register CSV of anything: refused whole (nothing saved) or saved, never a 500."""
    world = build_world()
    client = login_as(world.user(Role.ARTIST))
    token = csrf_token(client, "/account/password")
    session_id = world.ids("session")["sess_a"]
    enr_a = world.ids("enrolment")["enr_a"]
    url = f"/sessions/{session_id}/register/upload"
    header = "enrolment_id,name,status,mood_before,mood_after,note"
    good = f"{enr_a},Aurelia Quenby,attended,5,6,Fine"
    contents = st.one_of(
        CSV_LINES.map(lambda lines: "\r\n".join([header, *lines]).encode("utf-8")),
        CSV_LINES.map(lambda lines: "\r\n".join([header, good, *lines]).encode("utf-8")),
        st.binary(max_size=300),
        st.sampled_from(
            [
                b"",
                b"\xff\xfe\x00\x00",
                header.encode() + b"\r\n" + b"1," * 5000,
                (header + "\r\n" + good + "\x00").encode(),
                ("\ufeff" + header + "\r\n" + good).encode("utf-8"),
                (header + "\r\n" + good).encode("utf-16"),
                b'"unterminated',
            ]
        ),
    )
    names = st.sampled_from(["register.csv", "REGISTER.CSV", "register.txt", "", "../../x.csv"])

    def prop(drawn: tuple[bytes, str]) -> None:
        content, filename = drawn
        from io import BytesIO

        before = snapshot()
        response = client.post(
            url,
            data={"csrf_token": token, "register_file": (BytesIO(content), filename)},
            content_type="multipart/form-data",
        )
        if settle(response, before, f"POST {url}", ok={302}):
            assert_escaped(client, [*location(response)], content.decode("utf-8", "replace"))
        else:
            page = response.get_data(as_text=True)
            assert not active_markup(page), "the error page echoes the file unescaped"

    run(prop, st.tuples(contents, names), examples=30)


def test_sign_in_form(app: Flask) -> None:
    from tests import factories

    user = factories.make_user(Role.LINK_WORKER)
    db.session.commit()
    state = {"client": app.test_client()}
    strategy = st.tuples(
        st.sampled_from(["hostile", "right password, hostile next"]),
        HOSTILE_TEXT,
        HOSTILE_TEXT,
        st.one_of(
            HOSTILE_TEXT,
            st.sampled_from(
                ["//evil.example", "/\\evil.example", "http://evil.example", "javascript:alert(1)"]
            ),
        ),
    )

    def prop(drawn: tuple[str, str, str, str]) -> None:
        mode, email, password, next_url = drawn
        client = state["client"]
        if mode == "right password, hostile next":
            email, password = user.email, TEST_PASSWORD
        token = csrf_token(client, "/sign-in")
        before = snapshot()
        response = client.post(
            "/sign-in",
            query_string={"next": next_url},
            data={"email": email, "password": password, "csrf_token": token},
        )
        if settle(response, before, "POST /sign-in", ok={302}):
            target = response.headers["Location"]
            assert target.startswith("/") and not target.startswith("//"), target
            assert "\\" not in target, target
            state["client"] = app.test_client()  # signed in: start again as a stranger
        else:
            assert not active_markup(response.get_data(as_text=True))
            for text in (email, password):
                if "alert(" in text and "<" in text:
                    assert text.strip() not in response.get_data(as_text=True)

    run(prop, strategy, examples=30)


def test_change_password_form(app: Flask, login_as: Any) -> None:
    from referrals.auth.services import set_password
    from tests.conftest import sign_in

    world = build_world()
    user = world.user(Role.REFERRER)
    state = {"client": login_as(user), "password": TEST_PASSWORD}
    strategy = st.tuples(st.sampled_from(["same", "any"]), HOSTILE_TEXT, HOSTILE_TEXT, HOSTILE_TEXT)

    def prop(drawn: tuple[str, str, str, str]) -> None:
        mode, current, new, confirm = drawn
        client = state["client"]
        if mode == "same":
            current, confirm = state["password"], new
        token = csrf_token(client, "/account/password")
        data = {"current_password": current, "new_password": new, "confirm_password": confirm}
        before = snapshot()
        response = post_form(client, "/account/password", data, token)
        if settle(response, before, "POST /account/password", ok={302}):
            # Changed: signed out everywhere; the new password signs in, exactly as typed.
            fresh = app.test_client()
            if sign_in(fresh, user.email, new).status_code == 302:
                state["client"], state["password"] = fresh, new
                return
            set_password(None, user, TEST_PASSWORD)  # let later examples go on
            db.session.commit()
            state["client"], state["password"] = login_as(user), TEST_PASSWORD
            raise AssertionError(f"password {new!r} was accepted but cannot sign in")

    run(prop, strategy, examples=20)


@pytest.mark.parametrize(
    "password",
    ["tab\there in a long passphrase", "a long passphrase with a \x01 in it"],
    ids=["tab", "control"],
)
@pytest.mark.parametrize("form", ["change own", "admin reset", "admin new user"])
def test_a_password_that_is_accepted_can_sign_in(
    app: Flask, login_as: Any, form: str, password: str
) -> None:
    """Sign-in refuses control characters, so every form that sets a password must too
    (or sign-in must accept them): otherwise the account is locked out for good."""
    from tests import factories
    from tests.conftest import sign_in

    target = factories.make_user(Role.REFERRER)
    db.session.commit()
    email = target.email
    if form == "change own":
        client = login_as(target)
        url = "/account/password"
        data = {"current_password": TEST_PASSWORD}
    else:
        client = login_as(Role.ADMIN)
        if form == "admin reset":
            url = f"/admin/users/{target.id}/password"
            data = {}
        else:
            url, email = "/admin/users/new", "new.person@example.test"
            data = {
                "name": "New Person",
                "email": email,
                "role": "referrer",
                "organisation": str(target.organisation_id),
            }
    data |= {"new_password": password, "confirm_password": password}
    response = post_form(client, url, data, csrf_token(client, url))
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        signed = sign_in(app.test_client(), email, password)
        assert signed.status_code == 302, f"{form}: {password!r} was set but cannot sign in"


# Every other form, found on its page ---------------------------------------------------------


class _Forms(HTMLParser):
    """POST forms on a page: action and the fields with a usable default for each."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._current = {"action": a.get("action", ""), "fields": {}}
            self.forms.append(self._current)
        elif self._current is not None and tag in ("input", "textarea", "select"):
            name = a.get("name")
            if not name or name == "csrf_token" or a.get("type") == "submit":
                return
            fields = self._current["fields"]
            if a.get("type") == "checkbox":
                fields.setdefault(name, DROP)
            else:
                fields.setdefault(name, a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def test_every_other_form(app: Flask, login_as: Any) -> None:
    """The remaining forms (assign, withdraw, cancel, move, returns, erase, two-step...)."""
    world = build_world()
    client = login_as(world.user(Role.ADMIN))
    ids = world.objects
    referral, enrolment = ids["referral"]["ref_b"], ids["enrolment"]["enr_b"]
    session, kpi_return = ids["session"]["sess_b"], ids["kpi_return"]["ret_b"]
    pages = [
        f"/referrals/{referral}/assign",
        f"/enrolments/{enrolment}/withdraw",
        f"/sessions/{session}/cancel",
        f"/sessions/{session}/move",
        "/returns/generate",
        f"/returns/{kpi_return}/regenerate",
        f"/admin/users/{ids['user']['spare']}/deactivate",
        f"/admin/users/{ids['user']['spare']}/two-step",
        f"/admin/people/{ids['patient']['pat_b']}/erase",
        "/admin/security",
        "/account/mfa",
        f"/courses/{ids['course']['course_b']}?referral={ids['referral']['ref_b']}",
        f"/providers/{ids['provider']['prov_b']}/profile",
    ]
    found: list[tuple[str, dict[str, Any]]] = []
    for page in pages:
        parser = _Forms()
        parser.feed(client.get(page).get_data(as_text=True))
        for form in parser.forms:
            action = form["action"] or page.split("?")[0]
            if action.startswith("/") and action not in ("/sign-out", "/messages/read-all"):
                found.append((action, form["fields"]))
    assert len(found) >= 10, found
    token = csrf_token(client, "/account/password")
    strategy = st.integers(min_value=0, max_value=len(found) - 1).flatmap(
        lambda i: st.tuples(st.just(i), form_changes(list(found[i][1]), list(found[i][1])))
    )

    def prop(drawn: tuple[int, dict[str, Any]]) -> None:
        index, changes = drawn
        action, defaults = found[index]
        data = apply(defaults, changes)
        before = snapshot()
        response = post_form(client, action, data, token)
        if settle(response, before, f"POST {action}", ok={302}):
            assert_escaped(client, location(response), data)

    run(prop, strategy, examples=60)


def test_query_strings_on_lists(app: Flask, login_as: Any, api_client: Any) -> None:
    world = build_world()
    pages = login_as(world.user(Role.ADMIN))
    api, headers = api_client(world.user(Role.ADMIN))
    lists = {
        "/referrals/": ["q", "status", "practice", "pathway", "mine", "page"],
        "/courses/": ["art_form", "pathway", "weekday", "area", "has_places", "referral", "page"],
        "/admin/users": ["q", "role", "organisation", "page"],
        "/admin/organisations": ["kind", "q", "page"],
        "/admin/audit": ["action", "user", "page"],
        "/admin/courses": ["contract", "page"],
        "/messages/": ["page"],
        "/returns/": ["contract", "period"],
        "/sessions/": ["page"],
        "/api/v1/referrals": ["page", "per_page", "status", "pathway", "gp_practice_id"],
        "/api/v1/courses": ["page", "per_page", "art_form", "weekday", "provider_id"],
        "/api/v1/kpi/returns": ["page", "per_page", "contract_id", "period", "superseded"],
        "/api/v1/contracts": ["page", "per_page"],
        "/api/v1/organisations": ["page", "per_page"],
        "/find/": ["postcode", "distance", "day", "art_form", "pathway", "page"],
        "/openreferral/services": [
            *("page", "per_page", "search", "taxonomy_term_id", "taxonomy_id", "day"),
            *("minimum_age", "maximum_age", "start_time", "end_time"),
        ],
        "/openreferral/service_at_locations": ["page", "search", "postcode", "proximity", "day"],
    }
    strategy = st.sampled_from(sorted(lists)).flatmap(
        lambda url: st.tuples(
            st.just(url),
            st.dictionaries(st.sampled_from(lists[url]), HOSTILE_TEXT, max_size=4),
        )
    )

    def prop(drawn: tuple[str, dict[str, str]]) -> None:
        url, query = drawn
        if url.startswith("/openreferral/"):  # open to anyone, JSON like the API
            response = app.test_client().get(url, query_string=query)
            assert response.status_code in (200, 422), (url, query, response.status_code)
        elif url.startswith("/api/"):
            response = api.get(url, query_string=query, headers=headers)
            assert response.status_code in (200, 422), (url, query, response.status_code)
        else:
            response = pages.get(url, query_string=query)
            assert response.status_code in (200, 302, 400, 404), (url, query, response.status_code)
            assert not active_markup(response.get_data(as_text=True)), (url, query)

    run(prop, strategy, examples=60)


ODD_NUMBERS = [
    "²",  # str.isdigit() says yes; int() says no
    "٣",  # an Arabic-Indic three: isdigit() and int() both accept it
    "-1",
    "0",
    "2147483648",  # one past a PostgreSQL integer
    "9223372036854775808",  # one past a 64-bit integer (SQLite's limit)
    "9" * 25,
    "1e3",
    " 7",
]


def test_odd_numbers_in_query_strings_and_ids(app: Flask, login_as: Any) -> None:
    """Every number a page reads from the address bar or a form, given digits that are not
    numbers, or numbers no database column can hold: never a 500."""
    world = build_world()
    course = world.ids("course")["course_a"]
    worker = login_as(world.user(Role.LINK_WORKER))
    admin = login_as(world.user(Role.ADMIN))
    gets = {
        worker: [
            "/referrals/?practice={}",
            "/referrals/?page={}",
            "/courses/?referral={}",
            "/courses/?weekday={}",
            "/courses/?page={}",
            f"/courses/{course}?referral={{}}",
            "/messages/?page={}",
        ],
        admin: [
            "/admin/users?organisation={}",
            "/admin/users?page={}",
            "/admin/audit?user={}",
            "/admin/courses?contract={}",
            "/returns/?contract={}",
            "/sessions/?page={}",
        ],
        # The public pages and the open feed, for anyone.
        app.test_client(): [
            "/find/?page={}",
            "/find/?day={}",
            "/find/?distance={}",
            "/find/refer-yourself?course={}",
            "/openreferral/services?page={}",
            "/openreferral/services?per_page={}",
            "/openreferral/services?minimum_age={}",
            "/openreferral/service_at_locations?postcode=GL1+2AB&proximity={}",
        ],
    }
    problems = []
    for client, urls in gets.items():
        for template in urls:
            for value in ODD_NUMBERS:
                url = template.format(value)
                status = client.get(url).status_code
                if status >= 500:
                    problems.append(f"GET {url}: {status}")
    token = csrf_token(worker, "/account/password")
    for value in ODD_NUMBERS:
        before = snapshot()
        url = f"/courses/{course}/enrol"
        response = worker.post(url, data={"csrf_token": token, "referral_id": value})
        if response.status_code >= 500:
            problems.append(f"POST {url} referral_id={value}: {response.status_code}")
        elif response.status_code != 302 and snapshot() != before:
            problems.append(f"POST {url} referral_id={value}: refused, yet changed")
    assert not problems, "\n".join(problems)


SEARCH_BOXES = [
    "/find/?postcode={}",
    "/openreferral/services?search={}",
    "/referrals/?q={}",
    "/courses/?area={}",
    "/admin/users?q={}",
    "/admin/organisations?q={}",
    "/admin/audit?action={}",
    "/returns/?period={}",
    "/api/v1/referrals?nhs_number={}",
    "/api/v1/kpi/returns?period={}",
]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.LINK_WORKER, Role.REFERRER], ids=str)
def test_control_characters_in_search_boxes(
    app: Flask, login_as: Any, api_client: Any, role: Role
) -> None:
    """PostgreSQL refuses NUL in text: a search for it must be refused or ignored, not a 500."""
    world = build_world()
    pages = login_as(world.user(role))
    api, headers = api_client(world.user(role))
    problems = []
    for template in SEARCH_BOXES:
        for value in ("a%00b", "%00", "%01%1b", "%7f", "%ef%bf%bf", "%c0%80", "%ff"):
            url = template.format(value)
            client, extra = (api, headers) if url.startswith("/api/") else (pages, {})
            response = client.get(url, headers=extra)
            if response.status_code >= 500:
                problems.append(f"{role.value} GET {url}: {response.status_code}")
    assert not problems, "\n".join(problems)


# API bodies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiBody:
    """A valid request to an API endpoint that takes a body, and its free-text fields.

    Placeholders (`__NHS__`, `__REFERRAL__`...) are replaced with fresh values or objects for
    each request by `prepare`, so that a valid body can be accepted again and again.
    """

    method: str
    url: str
    role: Role
    valid: dict[str, Any]
    free: tuple[str, ...] = ()


def api_bodies(world: World) -> dict[str, ApiBody]:
    ids, org = world.objects, world.organisations
    course_a, session_a = ids["course"]["course_a"], ids["session"]["sess_a"]
    enr_a, enr_x = ids["enrolment"]["enr_a"], ids["enrolment"]["enr_x"]
    patient = {
        "nhs_number": "__NHS__",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "date_of_birth": "1948-03-15",
        "sex": "female",
        "ethnicity": "white",
        "postcode": "gl12ab",
        "phone": "07700 900 982",
        "email": "ada@example.com",
    }
    course = {
        "title": "__TITLE__",
        "description": "Eight gentle sessions",
        "art_form": "visual_art",
        "provider_id": org["prov_a"].id,
        "contract_id": ids["contract"]["contract_a"],
        "venue": {
            "name": "Museum of Gloucester",
            "address": "Brunswick Road\nGloucester",
            "postcode": "gl1 1hp",
            "accessibility": "Lift to all floors",
        },
        "capacity": 12,
        "cost_per_session_pence": 3300,
        "pathways": ["mental_health"],
        "schedule": {
            "start_date": (world.today + timedelta(days=30)).isoformat(),
            "start_time": "10:00",
            "duration_minutes": 120,
            "frequency": "fortnightly",
            "sessions": 8,
        },
    }
    register = {
        "entries": [
            {"enrolment_id": enr_a, "status": "attended", "mood_before": 5, "mood_after": 6},
            {"enrolment_id": enr_x, "status": "apologies", "note": "Unwell"},
        ]
    }
    return {
        "referral": ApiBody(
            "POST",
            "/api/v1/referrals",
            Role.REFERRER,
            {
                "patient": patient,
                "referrer_type": "gp",
                "pathway": "mental_health",
                "reason": "Low mood since bereavement",
                "interests": ["singing", "crafts"],
                "consent": True,
            },
            ("patient.given_name", "patient.family_name", "reason"),
        ),
        "transition": ApiBody(
            "POST",
            "/api/v1/referrals/__REFERRAL__/transitions",
            Role.LINK_WORKER,
            {"to": "declined", "reason": "Moved away", "note": "Phoned twice"},
            ("reason", "note"),
        ),
        "course": ApiBody(
            "POST",
            "/api/v1/courses",
            Role.ADMIN,
            course,
            ("title", "description", "venue.name", "venue.address", "venue.accessibility"),
        ),
        "contract": ApiBody(
            "POST",
            "/api/v1/contracts",
            Role.ADMIN,
            {
                "name": "__NAME__",
                "commissioner_id": org["comm_a"].id,
                "start_date": "2027-04-01",
                "end_date": "2028-03-31",
                "targets": {"B1": {"minimum": 40, "expected": 50, "stretch": 60}},
            },
            ("name",),
        ),
        "kpi return": ApiBody(
            "POST",
            "/api/v1/kpi/returns",
            Role.ADMIN,
            {"contract_id": ids["contract"]["contract_a"], "period": world.period.key},
            ("period",),
        ),
        "enrolment": ApiBody(
            "POST",
            f"/api/v1/courses/{course_a}/enrolments",
            Role.LINK_WORKER,
            {"referral_id": "__ASSESSED__"},
        ),
        "withdrawal": ApiBody(
            "POST",
            "/api/v1/enrolments/__ENROLMENT__/withdraw",
            Role.LINK_WORKER,
            {"reason": "Moved away"},
            ("reason",),
        ),
        "register": ApiBody(
            "PUT",
            f"/api/v1/sessions/{session_a}/register",
            Role.ARTIST,
            register,
            ("entries.*.note", "entries.*.status"),
        ),
        "session": ApiBody(
            "PATCH",
            "/api/v1/sessions/__SESSION__",
            Role.ARTIST,
            {"status": "cancelled", "reason": "Snow"},
            ("reason",),
        ),
        "wellbeing": ApiBody(
            "POST",
            f"/api/v1/enrolments/{enr_a}/wellbeing",
            Role.ARTIST,
            {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3] * 7},
            ("timepoint", "instrument"),
        ),
    }


def prepare(world: World, api: ApiBody, body: Any) -> tuple[str, Any]:
    """The URL and body with fresh objects in place of the placeholders."""
    url = api.url
    worker = world.user(Role.LINK_WORKER)
    if "__REFERRAL__" in url:
        made = make_referral(
            worker, world.organisations["gp_a"], nhs=fresh_nhs(), today=world.today
        )
        db.session.commit()
        url = url.replace("__REFERRAL__", str(made.id))
    if "__ENROLMENT__" in url:
        course = db.session.get(Course, world.ids("course")["course_a"])
        # The world's course is past the point of completing; enrolling is set-up here.
        referral = assessed_referral(worker)
        enrolment = enrol(worker, referral, course, today=world.today, late_start_confirmed=True)
        db.session.commit()
        url = url.replace("__ENROLMENT__", str(enrolment.id))
    if "__SESSION__" in url:
        future = db.session.scalars(
            select(CourseSession.id)
            .where(
                CourseSession.course_id == world.ids("course")["course_a"],
                CourseSession.date > world.today,
                CourseSession.status != "cancelled",
            )
            .order_by(CourseSession.date)
        ).first()
        url = url.replace("__SESSION__", str(future or world.ids("session")["sess_a"]))

    def assessed() -> int:
        referral = assessed_referral(worker)
        db.session.commit()
        return int(referral.id)

    fresh = {
        "__NHS__": fresh_nhs,
        "__TITLE__": lambda: f"Course {serial()}",
        "__NAME__": lambda: f"Contract {serial()}",
        "__ASSESSED__": assessed,
    }
    return url, fill(body, fresh)


def pages_showing(response: Any, world: World) -> list[str]:
    """The HTML pages that show what an accepted API request stored."""
    body = response.get_json(silent=True) or {}
    path = response.request.path
    ids = world.objects
    if path == "/api/v1/referrals" or path.endswith("/transitions"):
        return [f"/referrals/{body['id']}", "/referrals/"] if "id" in body else ["/referrals/"]
    if path == "/api/v1/courses":
        return [f"/courses/{body['id']}", "/courses/", "/admin/courses"] if "id" in body else []
    if path == "/api/v1/contracts":
        return ["/admin/contracts"]
    if path.startswith("/api/v1/kpi/"):
        return ["/returns/"]
    return [
        f"/sessions/{ids['session']['sess_a']}/register",
        f"/enrolments/{ids['enrolment']['enr_a']}",
        f"/courses/{ids['course']['course_a']}",
        "/sessions/",
    ]


def _api_property(app: Flask, login_as: Any, api_client: Any, names: list[str]) -> None:
    world = build_world()
    bodies = api_bodies(world)
    callers = {role: api_client(world.user(role)) for role in {bodies[n].role for n in names}}
    pages = login_as(world.user(Role.ADMIN))
    strategy = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), hostile_body(bodies[name].valid, bodies[name].free))
    )

    def prop(drawn: tuple[str, Any]) -> None:
        name, body = drawn
        api = bodies[name]
        url, body = prepare(world, api, body)
        client, headers = callers[api.role]
        before = snapshot()
        response = client.open(url, method=api.method, json=body, headers=headers)
        if settle(response, before, f"{api.method} {url}", ok={200, 201}):
            assert_escaped(pages, pages_showing(response, world), body)
        else:
            assert response.mimetype == "application/problem+json", response.mimetype

    run(prop, strategy, examples=20 * len(names))


def test_api_referrals_and_transitions(app: Flask, login_as: Any, api_client: Any) -> None:
    _api_property(app, login_as, api_client, ["referral", "transition"])


def test_api_courses_contracts_and_returns(app: Flask, login_as: Any, api_client: Any) -> None:
    _api_property(app, login_as, api_client, ["course", "contract", "kpi return"])


def test_api_enrolments_registers_and_wellbeing(app: Flask, login_as: Any, api_client: Any) -> None:
    names = ["enrolment", "withdrawal", "register", "session", "wellbeing"]
    _api_property(app, login_as, api_client, names)


def _paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the string leaves of a body (`*` for each item of a list of objects)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, f"{prefix}{k}.")]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [p for v in value[:1] for p in _paths(v, f"{prefix}*.")]
    return [prefix.rstrip(".")] if isinstance(value, str) else []


def _replace(value: Any, path: list[str], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if head == "*":
        return [_replace(v, rest, new) for v in value]
    return {**value, head: _replace(value[head], rest, new)}


def test_a_lone_surrogate_in_any_api_text_is_a_422(
    app: Flask, login_as: Any, api_client: Any
) -> None:
    """JSON may escape half a surrogate pair ("\\ud800"); Python reads it, but it is not text
    that can be stored, hashed or shown. In every string of every valid body, it must be a 422
    naming bad input, with nothing written."""
    world = build_world()
    bodies = api_bodies(world)
    problems: list[str] = []
    for name, api in bodies.items():
        client, headers = api_client(world.user(api.role))
        for path in [p for p in _paths(api.valid) if not p.endswith("__")]:
            body = _replace(api.valid, path.split("."), "x\ud800y")
            url, body = prepare(world, api, body)
            before = snapshot()
            response = client.open(url, method=api.method, json=body, headers=headers)
            problems += _refused_cleanly(response, before, f"{name}: {api.method} {url} {path}")
    assert not problems, "\n".join(problems)


RAW_BODIES = [
    b"",
    b"{",
    b'{"a": }',
    b"[" * 100_000,
    b'{"a":' * 50_000,
    b"1" * 5000,
    b"NaN",
    b"-Infinity",
    b"1e999999",
    b"\xff\xfe\xfd",
    b'{"reason": "\xff"}',
    b'"\\ud800"',
    b'{"\\u0000": "\\u0000"}',
    b"null",
    b"true",
    b'"string"',
    b"[]",
    b'{"__proto__": {"admin": true}}',
    b'{"a": 1, "a": 2}',
]


def _unsafe_api_urls(world: World) -> list[tuple[str, str]]:
    ids = world.objects
    return [
        ("POST", "/api/v1/referrals"),
        ("POST", f"/api/v1/referrals/{ids['referral']['ref_b']}/transitions"),
        ("POST", "/api/v1/courses"),
        ("POST", f"/api/v1/courses/{ids['course']['course_b']}/enrolments"),
        ("PUT", f"/api/v1/sessions/{ids['session']['sess_b']}/register"),
        ("PATCH", f"/api/v1/sessions/{ids['session']['sess_b']}"),
        ("POST", f"/api/v1/enrolments/{ids['enrolment']['enr_b']}/wellbeing"),
        ("POST", f"/api/v1/enrolments/{ids['enrolment']['enr_b']}/withdraw"),
        ("POST", "/api/v1/contracts"),
        ("POST", "/api/v1/kpi/returns"),
    ]


def _refused_cleanly(response: Any, before: dict[str, list[str]], what: str) -> list[str]:
    problems = []
    if not 400 <= response.status_code < 500:
        problems.append(f"{what}: {response.status_code}")
    elif response.mimetype != "application/problem+json":
        problems.append(f"{what}: {response.mimetype}")
    if snapshot() != before:
        problems.append(f"{what}: refused, yet changed the database")
    return problems


def test_every_api_body_endpoint_refuses_raw_garbage(app: Flask, api_client: Any) -> None:
    """Unparseable, truncated, deeply nested, non-UTF-8, lone-surrogate and oddly typed
    bodies, to every endpoint that takes one: a 4xx problem, and nothing written."""
    world = build_world()
    client, headers = api_client(world.user(Role.ADMIN))
    before = snapshot()
    problems: list[str] = []
    for method, url in _unsafe_api_urls(world):
        for raw in RAW_BODIES:
            for content_type in ("application/json", "text/plain"):
                response = client.open(
                    url, method=method, data=raw, headers={**headers, "Content-Type": content_type}
                )
                problems += _refused_cleanly(
                    response, before, f"{method} {url} {content_type} {raw[:40]!r}"
                )
    assert not problems, "\n".join(problems)


def test_every_api_body_endpoint_survives_random_bytes(app: Flask, api_client: Any) -> None:
    world = build_world()
    client, headers = api_client(world.user(Role.ADMIN))
    content_types = [
        "application/json",
        "application/json; charset=latin-1",
        "application/merge-patch+json",
        "application/x-www-form-urlencoded",
    ]
    strategy = st.tuples(
        st.sampled_from(_unsafe_api_urls(world)),
        st.binary(max_size=200),
        st.sampled_from(content_types),
    )

    def prop(drawn: tuple[tuple[str, str], bytes, str]) -> None:
        (method, url), raw, content_type = drawn
        before = snapshot()
        response = client.open(
            url, method=method, data=raw, headers={**headers, "Content-Type": content_type}
        )
        problems = _refused_cleanly(response, before, f"{method} {url} {raw[:60]!r}")
        assert not problems, problems

    run(prop, strategy, examples=40)


def test_a_register_csv_neutralises_formula_names(app: Flask, login_as: Any) -> None:
    """A name typed as a formula is stored as typed but written to the CSV defused."""
    world = build_world()
    for eid, name in zip(
        (world.ids("enrolment")["enr_a"], world.ids("enrolment")["enr_x"]),
        ('=HYPERLINK("http://evil.example")', "@SUM(A1)"),
        strict=True,
    ):
        enrolment = db.session.get(Enrolment, eid)
        assert enrolment is not None
        enrolment.referral.patient.given_name = name
    db.session.commit()
    client = login_as(world.user(Role.ARTIST))
    csv_text = client.get(f"/sessions/{world.ids('session')['sess_a']}/register.csv").get_data(
        as_text=True
    )
    for line in csv_text.splitlines()[1:]:
        cell = line.split(",", 1)[1].lstrip('"')
        assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), line
