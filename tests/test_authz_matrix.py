"""The authorisation matrix: every route, every role, every method, inside and outside scope.

`MATRIX` states, for every endpoint in the URL map, which roles may use it and which world
object each URL argument takes. The walk builds a world with two of everything
(tests/world.py) and, for each role, asks every route with objects inside and outside the
user's scope, and with an id that does not exist:

- anonymous: pages redirect to sign-in, the API answers 401;
- a role not in the rule: 403, whether or not the object exists (no existence oracle);
- an allowed role and an object in scope: 200/302 for GET and HEAD, and neither 401, 403 nor 404
  (nor a 5xx) for an unsafe method probed with an empty form or a JSON body that is not an
  object, so nothing in the world changes in a way that spoils later cases;
- an allowed role and an object out of scope (or missing): 404 on pages, downloads and API.

Every text answer (HTML, JSON, CSV, and the text of PDFs) a role gets is also searched for the
identifiers of patients outside its scope; artists and commissioners must never get an NHS
number, a referral reason or a date of birth.

A route with no entry in `MATRIX` fails the walk, so a new route must be given its rule here.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from referrals.auth.models import Role
from tests.conftest import csrf_token
from tests.world import MISSING_ID, ROLES, World, build_world

ADMIN = frozenset({Role.ADMIN})
STAFF = frozenset(ROLES)
REFERRING = frozenset({Role.ADMIN, Role.LINK_WORKER, Role.REFERRER})
TRIAGING = frozenset({Role.ADMIN, Role.LINK_WORKER})
REGISTER_TAKERS = frozenset({Role.ADMIN, Role.ARTIST})
ARTISTS = frozenset({Role.ARTIST})
REPORT_READERS = frozenset({Role.ADMIN, Role.COMMISSIONER})
ENROLMENT_READERS = frozenset({Role.ADMIN, Role.LINK_WORKER, Role.ARTIST, Role.REFERRER})
WELLBEING_RECORDERS = frozenset({Role.ADMIN, Role.LINK_WORKER, Role.ARTIST})
PUBLIC = "public"  # anyone, signed in or not
SECOND_STEP = "second_step"  # only a browser with an open password challenge (none here)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Access:
    """Who may use an endpoint (roles, `PUBLIC` or `SECOND_STEP`) and what its URL takes.

    `obj` maps the URL argument holding an id to the world's kind of object; `literals` gives
    the values tried for other arguments (each one is walked).
    """

    roles: frozenset[Role] | str
    obj: tuple[str, str] | None = None
    literals: dict[str, tuple[str, ...]] = field(default_factory=dict)
    also_answers: tuple[int, ...] = ()  # error statuses a public route may rightly give


def _on(roles: frozenset[Role] | str, arg: str | None = None, kind: str | None = None, **lit: Any):
    return Access(roles, (arg, kind) if arg and kind else None, dict(lit))


MATRIX: dict[str, Access] = {
    # The allowlist.
    "static": _on(PUBLIC, filename=("css/app.css",)),
    "main.health": _on(PUBLIC),
    "main.health_live": _on(PUBLIC),
    # 503 while no scheduler has beaten (tests/test_health.py): an answer all the same.
    "main.health_ready": Access(PUBLIC, also_answers=(503,)),
    "main.version": _on(PUBLIC),
    "main.accessibility": _on(PUBLIC),
    "main.privacy": _on(PUBLIC),
    "auth.login": _on(PUBLIC),
    # The open directory: no sign-in, nothing about people. A finished course is not published.
    "public.finder": _on(PUBLIC),
    "public.course": Access(PUBLIC, ("course_id", "course"), also_answers=(404,)),
    # An empty form without its CSRF token is refused (400); after 5 sent, the client waits (429).
    "public.refer_yourself_page": Access(PUBLIC, also_answers=(400, 429)),
    "public.thank_you": _on(PUBLIC),
    # A provider's public profile: its own artists, or an admin.
    "providers.own_profile": _on(ARTISTS),
    "providers.profile": _on(REGISTER_TAKERS, "organisation_id", "provider"),
    "openreferral.meta": _on(PUBLIC),
    "openreferral.services": _on(PUBLIC),
    "openreferral.service": Access(
        PUBLIC, literals={"service_id": (UNKNOWN_UUID,)}, also_answers=(404,)
    ),
    "openreferral.service_at_locations": _on(PUBLIC),
    "openreferral.service_at_location": Access(
        PUBLIC, literals={"key": (UNKNOWN_UUID,)}, also_answers=(404,)
    ),
    "openreferral.taxonomies": _on(PUBLIC),
    "openreferral.taxonomy": Access(PUBLIC, literals={"key": (UNKNOWN_UUID,)}, also_answers=(404,)),
    "openreferral.taxonomy_terms": _on(PUBLIC),
    "openreferral.taxonomy_term": Access(
        PUBLIC, literals={"key": (UNKNOWN_UUID,)}, also_answers=(404,)
    ),
    # A person stopping emails and texts from the link in one: a signed token, 404 otherwise.
    "notifications.stop": Access(PUBLIC, literals={"token": ("not-a-token",)}, also_answers=(404,)),
    # A person answering a place offered, from the link in its message: the same.
    "notifications.offer": Access(
        PUBLIC, literals={"token": ("not-a-token",)}, also_answers=(404,)
    ),
    # GOV.UK Notify's callbacks: not there (404) until their bearer token is configured.
    "notifications.notify_received_text": Access(PUBLIC, also_answers=(404,)),
    "notifications.notify_delivery_receipt": Access(PUBLIC, also_answers=(404,)),
    # The code step of sign-in: without a right password first, back to sign-in.
    "auth.login_code": _on(SECOND_STEP),
    # Everyone signed in.
    "main.home": _on(STAFF),
    "auth.change_password": _on(STAFF),
    "auth.logout": _on(STAFF),
    "auth.mfa_page": _on(STAFF),
    "auth.mfa_start": _on(STAFF),
    "auth.mfa_confirm": _on(STAFF),
    "auth.mfa_disable": _on(STAFF),
    "auth.mfa_recovery_codes": _on(STAFF),
    "auth.api_tokens": _on(STAFF),
    # Everyone may revoke their own tokens, and only those (an admin's own included).
    "auth.revoke_my_api_token": _on(STAFF, "token_id", "own_api_token"),
    "notifications.inbox": _on(STAFF),
    "notifications.read_all": _on(STAFF),
    "notifications.email_choices_page": _on(STAFF),
    "notifications.open_message": _on(STAFF, "notification_id", "notification"),
    # Referrals.
    "intake.referrals": _on(REFERRING),
    "intake.new_referral": _on(REFERRING),
    "intake.referral": _on(REFERRING, "referral_id", "referral"),
    "intake.letter": _on(REFERRING, "referral_id", "referral"),
    "intake.letter_page": _on(REFERRING, "referral_id", "referral"),
    "intake.assign_referral": _on(TRIAGING, "referral_id", "referral"),
    "intake.contact": _on(TRIAGING, "referral_id", "referral"),
    "intake.conversation": _on(TRIAGING, "referral_id", "referral"),
    "intake.change_status": _on(TRIAGING, "referral_id", "referral"),
    "intake.reconcile": _on(TRIAGING, "referral_id", "referral"),
    # Courses, enrolments, sessions and registers.
    "courses.directory": _on(STAFF),
    "courses.course": _on(STAFF, "course_id", "course"),
    "courses.enrol_referral": _on(TRIAGING, "course_id", "course"),
    # Commissioners pass the role check but no enrolment is ever in their scope.
    "courses.enrolment": _on(STAFF, "enrolment_id", "enrolment"),
    "courses.wellbeing": _on(WELLBEING_RECORDERS, "enrolment_id", "enrolment"),
    "courses.withdraw_enrolment": _on(TRIAGING, "enrolment_id", "enrolment"),
    "courses.answer_offer": _on(TRIAGING, "enrolment_id", "enrolment"),
    "courses.sessions": _on(REGISTER_TAKERS),
    "courses.register": _on(REGISTER_TAKERS, "session_id", "session"),
    "courses.register_pdf": _on(REGISTER_TAKERS, "session_id", "session"),
    "courses.register_printable": _on(REGISTER_TAKERS, "session_id", "session"),
    "courses.register_csv_template": _on(REGISTER_TAKERS, "session_id", "session"),
    "courses.register_upload": _on(REGISTER_TAKERS, "session_id", "session"),
    # The installable register: manifest and service worker hold no data; the rest is artists'.
    "courses.manifest": _on(PUBLIC),
    "courses.service_worker": _on(PUBLIC),
    "courses.offline_sessions_page": _on(ARTISTS),
    "courses.offline_register_page": _on(ARTISTS),
    "courses.offline_registers": _on(ARTISTS),
    "courses.send_register": _on(ARTISTS, "session_id", "session"),
    "courses.cancel": _on(REGISTER_TAKERS, "session_id", "session"),
    "courses.move": _on(REGISTER_TAKERS, "session_id", "session"),
    # KPI returns.
    "reports.dashboard": _on(REPORT_READERS),
    "reports.kpi_return": _on(REPORT_READERS, "return_id", "kpi_return"),
    "reports.download": _on(REPORT_READERS, "return_id", "kpi_return", fmt=("csv", "pdf")),
    "reports.contract_csv": _on(REPORT_READERS, "contract_id", "contract"),
    "reports.generate": _on(ADMIN),
    "reports.regenerate": _on(ADMIN, "return_id", "kpi_return"),
    # Administration.
    "admin.audit_log": _on(ADMIN),
    "admin.jobs": _on(ADMIN),
    "admin.outbound_messages": _on(ADMIN),
    "admin.preview_message": Access(ADMIN, literals={"kind": ("session_reminder",)}),
    "admin.organisations": _on(ADMIN),
    "admin.new_organisation": _on(ADMIN),
    "admin.edit_organisation": _on(ADMIN, "organisation_id", "organisation"),
    "admin.users": _on(ADMIN),
    "admin.new_user": _on(ADMIN),
    "admin.edit_user": _on(ADMIN, "user_id", "user"),
    "admin.deactivate_user": _on(ADMIN, "user_id", "user"),
    "admin.reset_password": _on(ADMIN, "user_id", "user"),
    "admin.reset_mfa": _on(ADMIN, "user_id", "user"),
    "admin.user_api_tokens": _on(ADMIN, "user_id", "user"),
    "admin.revoke_user_api_token": _on(ADMIN, "token_id", "api_token"),
    "admin.security": _on(ADMIN),
    "admin.erase_person": _on(ADMIN, "patient_id", "patient"),
    "admin.person_access": _on(ADMIN, "patient_id", "patient"),
    "admin.person_access_csv": _on(ADMIN, "patient_id", "patient"),
    "admin.contracts": _on(ADMIN),
    "admin.new_contract": _on(ADMIN),
    "admin.edit_contract": _on(ADMIN, "contract_id", "contract"),
    "admin.venues": _on(ADMIN),
    "admin.new_venue": _on(ADMIN),
    "admin.edit_venue": _on(ADMIN, "venue_id", "venue"),
    "admin.courses": _on(ADMIN),
    "admin.new_course": _on(ADMIN),
    "admin.edit_course": _on(ADMIN, "course_id", "course"),
    # API.
    "api.me": _on(STAFF),
    "api.openapi_document": _on(PUBLIC),
    "api.api_docs": _on(PUBLIC),
    "api.problem_type": Access(
        PUBLIC, literals={"kind": ("validation", "nothing")}, also_answers=(404,)
    ),
    "api.organisations": _on(ADMIN),
    "api.list_referrals": _on(REFERRING),
    "api.create_referral_view": _on(REFERRING),
    "api.get_referral": _on(REFERRING, "referral_id", "referral"),
    "api.create_transition": _on(TRIAGING, "referral_id", "referral"),
    "api.list_courses": _on(STAFF),
    "api.create_course_view": _on(ADMIN),
    "api.get_course": _on(STAFF, "course_id", "course"),
    "api.list_course_sessions": _on(STAFF, "course_id", "course"),
    "api.create_enrolment": _on(TRIAGING, "course_id", "course"),
    "api.get_enrolment": _on(ENROLMENT_READERS, "enrolment_id", "enrolment"),
    "api.withdraw_enrolment": _on(TRIAGING, "enrolment_id", "enrolment"),
    "api.create_wellbeing": _on(WELLBEING_RECORDERS, "enrolment_id", "enrolment"),
    "api.get_register": _on(REGISTER_TAKERS, "session_id", "session"),
    "api.save_register_view": _on(REGISTER_TAKERS, "session_id", "session"),
    "api.update_session": _on(REGISTER_TAKERS, "session_id", "session"),
    "api.list_contracts": _on(REPORT_READERS),
    "api.create_contract": _on(ADMIN),
    "api.list_kpi_returns": _on(REPORT_READERS),
    "api.make_kpi_return": _on(ADMIN),
    "api.show_kpi_return": _on(REPORT_READERS, "return_id", "kpi_return"),
    "api.kpi_return_csv": _on(REPORT_READERS, "return_id", "kpi_return"),
    "api.kpi_return_pdf": _on(REPORT_READERS, "return_id", "kpi_return"),
    "api.openreferral_services": _on(PUBLIC),  # moved: a redirect to the open feed
}


# Cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    rule: Rule
    method: str
    path: str
    label: str  # the world object in the URL ("-" when none, "missing" for an unknown id)
    inside: bool  # the object is in the caller's scope (always true without an object)

    @property
    def is_api(self) -> bool:
        return self.rule.rule.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.rule.endpoint}, object {self.label})"


def missing_rules(app: Flask) -> list[str]:
    return [
        f"new route {rule.rule} ({rule.endpoint}) has no rule in the authorisation matrix"
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in MATRIX
    ]


def _methods(rule: Rule) -> list[str]:
    return sorted(rule.methods or ())


def cases(app: Flask, world: World, role: Role | None) -> Iterator[Case]:
    """Every (rule, method, object) to try as `role` (None: anonymous).

    Allowed roles get every object of the kind plus a missing id; everyone else gets one
    object and the missing id, which must answer alike.
    """
    for rule in app.url_map.iter_rules():
        access = MATRIX.get(rule.endpoint)
        if access is None:
            continue  # reported by missing_rules
        allowed = isinstance(access.roles, str) or (role is not None and role in access.roles)
        objects: list[tuple[str, int | None, bool]] = [("-", None, True)]
        if access.obj is not None:
            _arg, kind = access.obj
            labels = world.ids(kind)
            visible = world.visible(role, kind) if role is not None else frozenset()
            chosen = sorted(labels) if allowed else sorted(labels)[:1]
            objects = [(label, labels[label], label in visible) for label in chosen]
            objects.append(("missing", MISSING_ID, False))
        literal_sets: list[dict[str, str]] = [{}]
        for name, values in access.literals.items():
            literal_sets = [{**s, name: v} for s in literal_sets for v in values]
        for label, object_id, inside in objects:
            for literals in literal_sets:
                values: dict[str, Any] = dict(literals)
                if access.obj is not None:
                    values[access.obj[0]] = object_id
                path = rule.build(values, append_unknown=False)[1]  # type: ignore[index]
                for method in _methods(rule):
                    yield Case(rule, method, path, label, inside)


def _ordered(all_cases: list[Case]) -> list[Case]:
    """Safe methods first; then unsafe ones; signing out last of all."""

    def key(case: Case) -> tuple[int, int]:
        return (
            case.rule.endpoint == "auth.logout",
            case.method not in SAFE_METHODS,
        )

    return sorted(all_cases, key=key)


# Expectations -----------------------------------------------------------------------------


def routed_endpoint(case: Case) -> str:
    """The endpoint a request reaches. Several rules can share a path (GET and POST
    /api/v1/courses): an OPTIONS request for that path is answered by the first of them."""
    from flask import current_app

    adapter = current_app.url_map.bind("localhost")
    endpoint, _args = adapter.match(case.path, method=case.method)
    return str(endpoint)


def expected(case: Case, role: Role | None) -> tuple[str, Any]:
    """(description, predicate on the response) for one case."""
    access = MATRIX[routed_endpoint(case) if case.method == "OPTIONS" else case.rule.endpoint]
    to_sign_in = (
        "302 to sign-in",
        lambda r: r.status_code == 302 and r.headers.get("Location", "").startswith("/sign-in"),
    )
    if access.roles == PUBLIC:
        return (
            "an answer (public route)",
            lambda r: r.status_code < 400 or r.status_code in access.also_answers,
        )
    if access.roles == SECOND_STEP:
        return to_sign_in
    assert isinstance(access.roles, frozenset)
    if role is None:
        if case.is_api:
            return "401", lambda r: r.status_code == 401
        return to_sign_in
    if role not in access.roles:
        return "403", lambda r: r.status_code == 403
    if case.method == "OPTIONS":
        return "200", lambda r: r.status_code == 200
    if not case.inside:
        return "404", lambda r: r.status_code == 404
    if case.method in SAFE_METHODS:
        return "200 or 302", lambda r: r.status_code in (200, 302)
    return (
        "neither 401, 403, 404 nor 5xx",
        lambda r: r.status_code not in (401, 403, 404) and r.status_code < 500,
    )


def forbidden_strings(world: World, role: Role | None) -> dict[str, str]:
    """Text that must never appear in an answer to `role`, and what it is."""
    strings: dict[str, str] = {}
    if role is None:
        # Anyone without a sign-in (the public pages and the open feed) learns nobody's details.
        for person in world.people():
            strings[person.nhs_number] = f"NHS number of {person.label}"
            strings[person.family_name] = f"name of {person.label}"
            strings[person.reason] = f"referral reason of {person.label}"
            for text in person.date_of_birth_formats():
                strings[text] = f"date of birth of {person.label}"
        return strings
    for person in world.people_outside(role):
        strings[person.nhs_number] = f"NHS number of {person.label}"
        strings[person.family_name] = f"name of {person.label}"
        strings[person.reason] = f"referral reason of {person.label}"
    if role in (Role.ARTIST, Role.COMMISSIONER):
        for person in world.people():
            for text in person.nhs_number_formats():
                strings[text] = f"NHS number of {person.label}"
            strings[person.reason] = f"referral reason of {person.label}"
            for text in person.date_of_birth_formats():
                strings[text] = f"date of birth of {person.label}"
    if role == Role.COMMISSIONER:
        for person in world.people():
            strings[person.family_name] = f"name of {person.label}"
    return strings


def response_text(response: Any) -> str:
    mimetype = response.mimetype or ""
    data = response.get_data()
    if mimetype == "application/pdf" and data:
        from pypdf import PdfReader

        return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    if mimetype.startswith("text/") or "json" in mimetype:
        return data.decode("utf-8", "replace")
    return ""


# The walk ---------------------------------------------------------------------------------


@dataclass
class Caller:
    """A page client (signed in through the form, or anonymous) and an API client."""

    pages: FlaskClient
    api: FlaskClient
    api_headers: dict[str, str]
    token: str
    sign_in_again: Any = None

    def ask(self, case: Case) -> Any:
        if case.is_api:
            kwargs: dict[str, Any] = {"headers": self.api_headers}
            if case.method not in SAFE_METHODS:
                kwargs["json"] = []  # not an object: refused as 422 once the caller may act
            return self.api.open(case.path, method=case.method, **kwargs)
        kwargs = {}
        if case.method not in SAFE_METHODS:
            kwargs["data"] = {"csrf_token": self.token}
        response = self.pages.open(case.path, method=case.method, **kwargs)
        if case.rule.endpoint == "auth.logout" and self.sign_in_again is not None:
            self.sign_in_again()
        return response


def walk(app: Flask, world: World, role: Role | None, caller: Caller) -> list[str]:
    failures = missing_rules(app)
    secrets = forbidden_strings(world, role)
    who = role.value if role else "anonymous"
    for case in _ordered(list(cases(app, world, role))):
        description, ok = expected(case, role)
        response = caller.ask(case)
        if not ok(response):
            failures.append(f"{who}: {case}: expected {description}, got {response.status_code}")
            continue
        problem_json = response.mimetype == "application/problem+json"
        if (
            case.is_api
            and response.status_code >= 400
            and case.method != "HEAD"
            and not problem_json
        ):
            failures.append(f"{who}: {case}: error is {response.mimetype}, not problem+json")
        if response.status_code == 200 and case.method == "GET" and secrets:
            text = response_text(response)
            leaked = sorted({what for secret, what in secrets.items() if secret in text})
            if leaked:
                failures.append(f"{who}: {case}: answer shows {', '.join(leaked)}")
    return failures


def _report(failures: list[str]) -> str:
    return f"{len(failures)} problems:\n" + "\n".join(failures)


def test_every_route_has_a_rule_in_the_matrix(app: Flask) -> None:
    assert not missing_rules(app), "\n".join(missing_rules(app))
    stale = sorted(set(MATRIX) - {rule.endpoint for rule in app.url_map.iter_rules()})
    assert not stale, f"matrix rules for routes that no longer exist: {stale}"


def test_the_matrix_agrees_with_the_declared_rules(app: Flask) -> None:
    """The views' own `@allow` declarations say the same as this table (both ways)."""
    from referrals.security import access_rule

    differences = []
    for endpoint, access in MATRIX.items():
        declared = access_rule(endpoint)
        wanted = access.roles
        if declared != wanted:
            differences.append(f"{endpoint}: declared {declared}, matrix {wanted}")
    assert not differences, "\n".join(differences)


def test_anonymous_callers_are_sent_to_sign_in_or_refused(app: Flask) -> None:
    world = build_world()
    pages = app.test_client()
    caller = Caller(pages, app.test_client(), {}, csrf_token(pages, "/sign-in"))
    failures = walk(app, world, None, caller)
    assert not failures, _report(failures)


def test_a_bad_bearer_token_is_refused_everywhere_in_the_api(app: Flask) -> None:
    world = build_world()
    client = app.test_client()
    failures = []
    for case in cases(app, world, None):
        if not case.is_api or MATRIX[case.rule.endpoint].roles == PUBLIC:
            continue  # a public route (the moved feed's redirect) needs no token at all
        for header in ("Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer "):
            response = client.open(case.path, method=case.method, headers={"Authorization": header})
            if response.status_code != 401:
                failures.append(f"{case} with {header!r}: got {response.status_code}")
    assert not failures, _report(failures)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_every_route_with_every_role_inside_and_outside_scope(
    app: Flask, login_as: Any, api_client: Any, role: Role
) -> None:
    world = build_world()  # a fresh world for each role
    user = world.user(role)
    holder: dict[str, Any] = {}

    def sign_in_again() -> None:
        holder["pages"] = login_as(user)
        caller.pages = holder["pages"]
        caller.token = csrf_token(caller.pages, "/account/password")

    pages = login_as(user)
    api, headers = api_client(user)
    caller = Caller(pages, api, headers, csrf_token(pages, "/account/password"), sign_in_again)
    failures = walk(app, world, role, caller)
    assert not failures, _report(failures)


# Lists: what a list holds is scoped as tightly as what a single object shows. ---------------


def _ids(body: Any) -> set[int]:
    return {item["id"] for item in body["items"]}


def test_api_lists_hold_only_objects_in_scope(app: Flask, api_client: Any) -> None:
    world = build_world()
    referral, kpi_return = world.ids("referral"), world.ids("kpi_return")
    contract = world.ids("contract")

    client, headers = api_client(world.user(Role.REFERRER))
    body = client.get("/api/v1/referrals?per_page=100", headers=headers).get_json()
    assert _ids(body) == {referral["ref_a"], referral["ref_w"]}

    client, headers = api_client(world.user(Role.COMMISSIONER))
    body = client.get("/api/v1/kpi/returns?per_page=100", headers=headers).get_json()
    assert _ids(body) == {kpi_return["ret_a"]}
    body = client.get("/api/v1/contracts?per_page=100", headers=headers).get_json()
    assert _ids(body) == {contract["contract_a"]}
    # Asking for another commissioner's contract by id finds nothing of theirs.
    listed = client.get(
        f"/api/v1/kpi/returns?contract_id={contract['contract_b']}", headers=headers
    )
    assert listed.status_code in (200, 404, 422)
    if listed.status_code == 200:
        assert not _ids(listed.get_json()) & {kpi_return["ret_b"], kpi_return["ret_all"]}

    client, headers = api_client(world.user(Role.ARTIST))
    body = client.get("/api/v1/courses?per_page=100", headers=headers).get_json()
    assert _ids(body) == {world.ids("course")["course_a"]}  # their own provider's only


def test_page_lists_hold_only_people_in_scope(app: Flask, login_as: Any) -> None:
    world = build_world()
    referrer = login_as(world.user(Role.REFERRER))
    text = referrer.get("/referrals/").get_data(as_text=True)
    for label in ("ref_a", "ref_w"):
        assert next(p for p in world.people() if p.label == label).family_name in text
    for person in world.people_outside(Role.REFERRER):
        assert person.family_name not in text

    artist = login_as(world.user(Role.ARTIST))
    text = artist.get("/sessions/").get_data(as_text=True)
    assert "Beta Painting" not in text  # the other provider's sessions


def test_the_walk_fails_when_a_scope_is_removed(
    app: Flask, login_as: Any, api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matrix proves the control: with the referral scope opened up, it reports leaks."""
    from sqlalchemy import true

    from referrals.intake import scope

    monkeypatch.setattr(scope, "referral_scope", lambda user: true())
    world = build_world()
    user = world.user(Role.REFERRER)
    pages = login_as(user)
    api, headers = api_client(user)
    caller = Caller(pages, api, headers, csrf_token(pages, "/account/password"))
    failures = walk(app, world, Role.REFERRER, caller)
    outside = world.ids("referral")["ref_b"]
    assert any(f"GET /referrals/{outside} " in f and "expected 404" in f for f in failures)
    assert any(f"GET /api/v1/referrals/{outside} " in f for f in failures)
