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
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

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

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.integers(min_value=2**63, max_value=10**60),
    st.integers(max_value=-(2**63)),
    st.floats(),  # including NaN and the infinities, which Python's JSON reads
    HOSTILE_TEXT,
    st.sampled_from(["\ud800", "a\udfffb"]),  # lone surrogates: valid JSON escapes
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
        return draw(HOSTILE_TEXT) if leaf in free and draw(st.booleans()) else value
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


UNESCAPED = [
    re.compile(r"<script\b[^>]*>[^<]*alert\(", re.IGNORECASE),
    re.compile(r"<[a-z][^>]*\son[a-z]+\s*=\s*['\"]?alert\(", re.IGNORECASE),
    re.compile(r"""(?:href|src|action|formaction)\s*=\s*['"]?\s*javascript:""", re.IGNORECASE),
    re.compile(r"<svg/onload", re.IGNORECASE),
]


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
    scripts = [s.strip() for s in strings_in(sent) if "alert(" in s and s.strip()]
    for url in urls:
        response = client.get(url)
        assert response.status_code < 500, f"GET {url}: {response.status_code}"
        page = response.get_data(as_text=True)
        for pattern in UNESCAPED:
            found = pattern.search(page)
            assert not found, f"GET {url} shows unescaped markup: {found.group(0)!r}"
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
            lambda: course(serial(), new=False) | {"provider": str(org["prov_b"].id)},
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
            assert_escaped(client, [], "")
            page = response.get_data(as_text=True)
            for pattern in UNESCAPED:
                assert not pattern.search(page), "the error page echoes the file unescaped"

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
            assert_escaped(client, [], "")
            for pattern in UNESCAPED:
                assert not pattern.search(response.get_data(as_text=True))

    run(prop, strategy, examples=30)


def test_change_password_form(app: Flask, login_as: Any) -> None:
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
            signed = sign_in(fresh, user.email, new)
            assert signed.status_code == 302, "the new password does not sign in"
            state["client"], state["password"] = fresh, new

    run(prop, strategy, examples=20)


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
        "/api/v1/openreferral/services": ["page", "per_page"],
    }
    strategy = st.sampled_from(sorted(lists)).flatmap(
        lambda url: st.tuples(
            st.just(url),
            st.dictionaries(st.sampled_from(lists[url]), HOSTILE_TEXT, max_size=4),
        )
    )

    def prop(drawn: tuple[str, dict[str, str]]) -> None:
        url, query = drawn
        if url.startswith("/api/"):
            response = api.get(url, query_string=query, headers=headers)
            assert response.status_code in (200, 422), (url, query, response.status_code)
        else:
            response = pages.get(url, query_string=query)
            assert response.status_code in (200, 302, 400, 404), (url, query, response.status_code)
            page = response.get_data(as_text=True)
            for pattern in UNESCAPED:
                assert not pattern.search(page), (url, query)

    run(prop, strategy, examples=60)


# API bodies -------------------------------------------------------------------------------


def _api_case(
    client: FlaskClient,
    headers: dict[str, str],
    method: str,
    url: str,
    body: Any,
    ok: set[int],
    pages: FlaskClient,
    shown_on: Callable[[Any], list[str]],
) -> None:
    before = snapshot()
    response = client.open(url, method=method, json=body, headers=headers)
    if settle(response, before, f"{method} {url}", ok=ok):
        assert_escaped(pages, shown_on(response), body)
    else:
        assert response.mimetype == "application/problem+json", response.mimetype
        assert 400 <= response.status_code < 500


def test_api_referrals_and_transitions(app: Flask, login_as: Any, api_client: Any) -> None:
    world = build_world()
    referrer, headers = api_client(world.user(Role.REFERRER))
    worker, worker_headers = api_client(world.user(Role.LINK_WORKER))
    pages = login_as(world.user(Role.ADMIN))
    valid = {
        "patient": {
            "nhs_number": "__NHS__",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "date_of_birth": "1948-03-15",
            "sex": "female",
            "ethnicity": "white",
            "postcode": "gl12ab",
            "phone": "07700 900 982",
            "email": "ada@example.com",
        },
        "referrer_type": "gp",
        "pathway": "mental_health",
        "reason": "Low mood since bereavement",
        "interests": ["singing", "crafts"],
        "consent": True,
    }
    free = ["patient.given_name", "patient.family_name", "reason"]
    transition = {"to": "declined", "reason": "Moved away", "note": "Phoned twice"}

    def shown(response: Any) -> list[str]:
        body = response.get_json() or {}
        return [f"/referrals/{body['id']}", "/referrals/"] if "id" in body else []

    strategy = st.one_of(
        st.tuples(st.just("referral"), hostile_body(valid, free)),
        st.tuples(st.just("transition"), hostile_body(transition, ["reason", "note"])),
    )

    def prop(drawn: tuple[str, Any]) -> None:
        kind, body = drawn
        body = fill(body, {"__NHS__": fresh_nhs})
        if kind == "referral":
            _api_case(referrer, headers, "POST", "/api/v1/referrals", body, {201}, pages, shown)
            return
        made = make_referral(
            world.user(Role.LINK_WORKER),
            world.organisations["gp_a"],
            nhs=fresh_nhs(),
            today=world.today,
        )
        db.session.commit()
        url = f"/api/v1/referrals/{made.id}/transitions"
        _api_case(worker, worker_headers, "POST", url, body, {201}, pages, shown)

    run(prop, strategy, examples=40)


def test_api_courses_contracts_and_returns(app: Flask, login_as: Any, api_client: Any) -> None:
    world = build_world()
    admin, headers = api_client(world.user(Role.ADMIN))
    pages = login_as(world.user(Role.ADMIN))
    ids, org = world.objects, world.organisations
    start = (world.today + timedelta(days=30)).isoformat()
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
            "start_date": start,
            "start_time": "10:00",
            "duration_minutes": 120,
            "frequency": "fortnightly",
            "sessions": 8,
        },
    }
    contract = {
        "name": "__NAME__",
        "commissioner_id": org["comm_a"].id,
        "start_date": "2027-04-01",
        "end_date": "2028-03-31",
        "targets": {"B1": {"minimum": 40, "expected": 50, "stretch": 60}},
    }
    kpi = {"contract_id": ids["contract"]["contract_a"], "period": world.period.key}
    bodies = {
        "/api/v1/courses": (
            course,
            ["title", "description", "venue.name", "venue.address", "venue.accessibility"],
        ),
        "/api/v1/contracts": (contract, ["name"]),
        "/api/v1/kpi/returns": (kpi, ["period"]),
    }

    def shown(response: Any) -> list[str]:
        body = response.get_json() or {}
        if response.request.path.endswith("/courses") and "id" in body:
            return [f"/courses/{body['id']}", "/courses/", "/admin/courses"]
        if response.request.path.endswith("/contracts"):
            return ["/admin/contracts"]
        return ["/returns/"]

    strategy = st.sampled_from(sorted(bodies)).flatmap(
        lambda url: st.tuples(st.just(url), hostile_body(*bodies[url]))
    )

    def prop(drawn: tuple[str, Any]) -> None:
        url, body = drawn
        body = fill(
            body, {"__TITLE__": lambda: f"Course {serial()}", "__NAME__": lambda: f"C{serial()}"}
        )
        _api_case(admin, headers, "POST", url, body, {200, 201}, pages, shown)

    run(prop, strategy, examples=50)


def test_api_enrolments_registers_and_wellbeing(app: Flask, login_as: Any, api_client: Any) -> None:
    world = build_world()
    worker, worker_headers = api_client(world.user(Role.LINK_WORKER))
    artist, artist_headers = api_client(world.user(Role.ARTIST))
    pages = login_as(world.user(Role.ADMIN))
    ids = world.objects
    course_a, session_a = ids["course"]["course_a"], ids["session"]["sess_a"]
    enr_a, enr_x = ids["enrolment"]["enr_a"], ids["enrolment"]["enr_x"]
    register = {
        "entries": [
            {"enrolment_id": enr_a, "status": "attended", "mood_before": 5, "mood_after": 6},
            {"enrolment_id": enr_x, "status": "apologies", "note": "Unwell"},
        ]
    }
    wellbeing = {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3] * 7}
    session_change = {"status": "cancelled", "reason": "Snow"}
    withdrawal = {"reason": "Moved away"}
    cases = {
        "enrol": ("POST", f"/api/v1/courses/{course_a}/enrolments", {"referral_id": "__REF__"}, []),
        "register": (
            "PUT",
            f"/api/v1/sessions/{session_a}/register",
            register,
            ["entries.*.note", "entries.*.status"],
        ),
        "wellbeing": ("POST", f"/api/v1/enrolments/{enr_a}/wellbeing", wellbeing, ["timepoint"]),
        "cancel": ("PATCH", "/api/v1/sessions/__SESSION__", session_change, ["reason"]),
        "withdraw": ("POST", "/api/v1/enrolments/__ENROLMENT__/withdraw", withdrawal, ["reason"]),
    }
    callers = {
        "enrol": (worker, worker_headers),
        "withdraw": (worker, worker_headers),
        "register": (artist, artist_headers),
        "wellbeing": (artist, artist_headers),
        "cancel": (artist, artist_headers),
    }
    future_sessions = iter(
        db.session.scalars(
            select(CourseSession.id).where(
                CourseSession.course_id == course_a, CourseSession.date > world.today
            )
        ).all()
    )

    def shown(response: Any) -> list[str]:
        return [f"/sessions/{session_a}/register", f"/enrolments/{enr_a}", f"/courses/{course_a}"]

    strategy = st.sampled_from(sorted(cases)).flatmap(
        lambda name: st.tuples(st.just(name), hostile_body(cases[name][2], cases[name][3]))
    )

    def prop(drawn: tuple[str, Any]) -> None:
        name, body = drawn
        method, url, _valid, _free = cases[name]
        referral = assessed_referral(world.user(Role.LINK_WORKER))
        db.session.commit()
        body = fill(body, {"__REF__": lambda: referral.id})
        if "__SESSION__" in url:
            url = url.replace("__SESSION__", str(next(future_sessions, session_a)))
        if "__ENROLMENT__" in url:
            enrolment = enrol(
                world.user(Role.LINK_WORKER),
                referral,
                db.session.get(Course, course_a),
                today=world.today,
            )
            db.session.commit()
            url = url.replace("__ENROLMENT__", str(enrolment.id))
        client, headers = callers[name]
        _api_case(client, headers, method, url, body, {200, 201}, pages, shown)

    run(prop, strategy, examples=60)


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


def test_every_api_body_endpoint_survives_raw_garbage(app: Flask, api_client: Any) -> None:
    """Unparseable, truncated, deeply nested, non-UTF-8 and oddly typed bodies: 4xx only."""
    world = build_world()
    client, headers = api_client(world.user(Role.ADMIN))
    ids = world.objects
    urls = [
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
    content_types = [
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/merge-patch+json",
    ]
    strategy = st.tuples(
        st.sampled_from(urls),
        st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=200)),
        st.sampled_from(content_types),
    )

    def prop(drawn: tuple[tuple[str, str], bytes, str]) -> None:
        (method, url), raw, content_type = drawn
        before = snapshot()
        response = client.open(
            url, method=method, data=raw, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code < 500, (method, url, raw[:60], response.status_code)
        assert 400 <= response.status_code < 500, (method, url, raw[:60], response.status_code)
        assert_unchanged(before, f"{method} {url}")
        assert response.mimetype == "application/problem+json"

    run(prop, strategy, examples=60)


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
