"""Pages load what they show with the page's own queries: no relationship is loaded lazily
(one query per object touched) while a page of any role is answered and rendered.

A SQLAlchemy `do_orm_execute` listener sees every ORM statement; a lazy load is one run for an
object's relationship (`lazy_loaded_from`). The listener is attached only in this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from referrals.auth.models import Role
from tests.world import World, build_world

# The main pages of each role, with the world's objects they show ({kind} -> its "a" one).
PAGES: dict[Role, list[str]] = {
    Role.REFERRER: ["/", "/referrals/", "/referrals/{referral}", "/courses/", "/messages/"],
    Role.LINK_WORKER: [
        "/",
        "/referrals/",
        "/referrals/{referral}",
        "/courses/",
        "/courses/{course}",
        "/messages/",
    ],
    Role.ARTIST: ["/", "/sessions/", "/sessions/{session}/register", "/courses/{course}"],
    Role.COMMISSIONER: ["/", "/returns/", "/returns/{kpi_return}"],
    Role.ADMIN: ["/", "/referrals/", "/referrals/{referral}", "/courses/", "/admin/users"],
}
OBJECTS = {
    "referral": "ref_a",
    "course": "course_a",
    "session": "sess_a",
    "kpi_return": "ret_a",
}


@contextmanager
def lazy_loads() -> Iterator[list[str]]:
    """Every relationship loaded lazily while the block runs, as "Class.attribute"."""
    seen: list[str] = []

    def watch(state: ORMExecuteState) -> None:
        if state.is_select and state.lazy_loaded_from is not None:
            owner = type(state.lazy_loaded_from.obj()).__name__
            path = state.loader_strategy_path
            seen.append(f"{owner}.{path.natural_path[-1].key if path else '?'}")

    event.listen(Session, "do_orm_execute", watch)
    try:
        yield seen
    finally:
        event.remove(Session, "do_orm_execute", watch)


def _path(template: str, world: World) -> str:
    values = {kind: world.ids(kind)[label] for kind, label in OBJECTS.items()}
    return template.format(**values)


@pytest.mark.parametrize("role", list(PAGES), ids=lambda role: role.value)
def test_no_page_loads_a_relationship_lazily(app: Flask, login_as: Any, role: Role) -> None:
    world = build_world()
    client = login_as(world.user(role))
    for template in PAGES[role]:
        path = _path(template, world)
        with lazy_loads() as seen:
            response = client.get(path)
        assert response.status_code == 200, path
        assert seen == [], f"{role.value} {path}: lazy loads {seen}"


def test_the_check_sees_a_lazy_load(app: Flask) -> None:
    """The listener is not vacuous: touching an unloaded relationship is seen."""
    from sqlalchemy import select

    from referrals.auth.models import Organisation
    from referrals.extensions import db

    world = build_world()
    organisation_id = world.user(Role.REFERRER).organisation_id
    organisation = db.session.scalar(select(Organisation).where(Organisation.id == organisation_id))
    assert organisation is not None
    db.session.expire(organisation, ["users"])
    with lazy_loads() as seen:
        assert organisation.users
    assert seen == ["Organisation.users"]


@pytest.mark.parametrize("role", [Role.REFERRER, Role.LINK_WORKER], ids=lambda role: role.value)
def test_a_page_that_records_last_seen_loads_nothing_lazily(
    app: Flask, login_as: Any, role: Role
) -> None:
    """Once a minute a page also records that the person is still here; its commits keep the
    user and organisation just loaded, so the page does not read them again lazily."""
    from datetime import UTC, datetime, timedelta

    import time_machine
    from sqlalchemy import select

    from referrals.auth.models import UserSession
    from referrals.extensions import db

    world = build_world()
    user = world.user(role)
    client = login_as(user)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=True):
        with lazy_loads() as seen:
            response = client.get("/referrals/")
        assert response.status_code == 200
        assert seen == [], f"{role.value}: lazy loads {seen}"
        db.session.expire_all()
        last_seen = max(
            db.session.scalars(
                select(UserSession.last_seen_at).where(UserSession.user_id == user.id)
            )
        )
        assert datetime.now(UTC) - last_seen < timedelta(seconds=30)  # the refresh was written
