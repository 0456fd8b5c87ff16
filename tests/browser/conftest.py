"""Browser journeys: a live server on its own database, driven by real Chromium.

The app is built with the same test configuration as the rest of the suite (CSRF on, quick
Argon2), but serves a separate SQLite file so that the server thread and the test never share
the main suite's database; with TEST_DATABASE_URL set, it serves that database instead (its
schema made afresh once per run, as for the rest of the suite). Tests create what they need
through `live_data` (an app context on the live app: use the factories and builders, then
`live_data.commit()`), and every table is emptied after each test.

Chromium is Debian's (`/usr/bin/chromium`): Playwright's own browser download needs the
internet. Without it every test here is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import BaseWSGIServer, make_server

from referrals.extensions import db
from tests.browser.accessibility import AuditLog
from tests.conftest import CHROMIUM, _empty_all_tables, make_app

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP_VIEWPORT = {"width": 1280, "height": 900}
# Playwright waits up to 30 s by default; a page on this loopback server answers in well under 1 s.
TIMEOUT_MS = 10_000
HERE = Path(__file__).resolve().parent
# Console errors that are known defects, tolerated until fixed; any other console error or
# uncaught exception fails the test. NHS.UK frontend's CSS asks for its fonts from
# assets.nhs.uk, which the service's CSP (font-src 'self') blocks: the text falls back to Arial.
KNOWN_CONSOLE_ERRORS: list[re.Pattern[str]] = []


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM}: install it with apt-get install chromium"
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is a `browser` test, skipped when Chromium is missing."""
    reason = _skip_reason()
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so `new_context` can screenshot a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@dataclass
class LiveServer:
    app: Flask
    url: str
    # The test's own database session while `live_data` is in use (see `new_context`).
    test_session: Any = None


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 and a free port, in a daemon thread, for the whole run."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        request.getfixturevalue("_migrated_app")  # the schema, made afresh once per run
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('browser-db') / 'live.sqlite'}"
    app = make_app(url)
    with app.app_context():
        upgrade()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    # url_for outside a request (in tests and e-mails) must name the address the browser uses.
    app.config["SERVER_NAME"] = f"127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app, url)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


class LiveData:
    """Rows in the live server's database, made in the test's own app context.

    Outside a request every transaction begins IMMEDIATE (see `referrals.db`), so a
    transaction left open in the test would hold SQLite's write lock and the server's next
    write would wait for it. So, like `IsolatedClient` in tests/conftest.py, whatever the test
    has open is committed before each request the browser sends (`new_context` does it), and
    the test's session keeps loaded values across commits. Read what the browser changed
    inside `fresh()`, which starts from a new snapshot.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app

    def commit(self) -> None:
        db.session.commit()

    @contextmanager
    def fresh(self) -> Iterator[Any]:
        """A new snapshot of the database, ended again before the browser goes on."""
        db.session.expire_all()
        try:
            yield db.session
        finally:
            db.session.commit()


@pytest.fixture()
def live_data(live_server: LiveServer) -> Iterator[LiveData]:
    """Build rows with the factories and builders, `live_data.commit()`, then browse; every
    table is emptied after the test."""
    with live_server.app.app_context():
        session = db.session()
        session.expire_on_commit = False
        live_server.test_session = session
        try:
            yield LiveData(live_server.app)
        finally:
            live_server.test_session = None
            db.session.remove()
            _empty_all_tables()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture()
def new_context(
    browser: Any, live_server: LiveServer, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Any]:
    """`new_context(**options)`: a fresh browser context on the live server (so
    `page.goto("/path")` is relative to it), closed after the test. Its pages' JavaScript
    errors and console errors fail the test, and so does a page it navigated to that was never
    checked with `accessibility.audit`; on failure each page is screenshotted into the test's
    tmp_path."""
    contexts: list[Any] = []
    problems: list[str] = []

    def commit_test_data_first(route: Any) -> None:
        # Runs in the test's thread, but in Playwright's dispatcher greenlet, which has its own
        # context variables: hence the session is held directly and the app context pushed.
        session = live_server.test_session
        try:
            if session is not None and session.in_transaction():
                with live_server.app.app_context():
                    session.commit()
        finally:
            route.continue_()

    def watch(page: Any) -> None:
        log: AuditLog = page.context._audit_log
        page.on(
            "framenavigated",
            lambda frame: log.navigated(frame.url) if frame is page.main_frame else None,
        )
        page.on("pageerror", lambda error: problems.append(f"{page.url}: uncaught {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"{page.url}: console error: {message.text}")
                if message.type == "error"
                and not any(
                    known.search(message.text)
                    for known in KNOWN_CONSOLE_ERRORS + page.context.expected_console_errors
                )
                else None
            ),
        )

    def _new(**options: Any) -> Any:
        options.setdefault("viewport", DESKTOP_VIEWPORT)
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.route(f"{live_server.url}/**", commit_test_data_first)
        context._audit_log = AuditLog()
        # A test may expect an error answer that the page handles (the register conflict's
        # 409): Chromium logs every such answer to fetch() as a console error.
        context.expected_console_errors = []
        context.on("page", watch)
        contexts.append(context)
        return context

    yield _new
    report = getattr(request.node, "report_call", None)
    for n, context in enumerate(contexts):
        if report is not None and report.failed:
            for m, page in enumerate(context.pages):
                path = tmp_path / f"failure-{n}-{m}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"Screenshot of the failing page ({page.url}): {path}")
        context.close()
    if report is not None and report.passed:
        problems.extend(
            f"{url}: visited but never checked with accessibility.audit(page)"
            for context in contexts
            for url in context._audit_log.unaudited()
        )
    if problems and report is not None and report.passed:
        pytest.fail("The pages reported errors:\n" + "\n".join(problems))


@pytest.fixture()
def page(new_context: Any) -> Any:
    """A desktop page (1280×900) on the live server; `page.goto("/path")` is relative to it."""
    return new_context().new_page()
