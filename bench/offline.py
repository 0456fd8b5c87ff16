"""How fast the offline register opens from the phone: the artist's register, opened with no
connection, from the service worker's cache and the registers kept in IndexedDB (target: under
1 s).

The app is served on 127.0.0.1 by a thread of this process, on the benchmark database; Debian's
Chromium (`/usr/bin/chromium`, headless, 360 px wide as a phone) signs in as the generated
artist, opens today's register once with a connection (so the service worker installs and the
registers are kept), then goes offline. Each timed open is a new tab, as when the app is opened
again: from the start of the navigation (the page's own clock) to the register being drawn, every
person's marks on screen. The server is not asked anything while offline, so the figures do not
depend on the database; they do on the machine's CPU.

    .venv/bin/python -m bench.offline --scale small --db sqlite --opens 50
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from bench import common

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE: Any = {"width": 360, "height": 740}
TARGET_MS = 1000.0
WAIT_MS = 30_000
# Milliseconds from the navigation's start, read once the register is drawn: to the page
# answered by the service worker, to the document parsed (styles and scripts in), to now.
TIMINGS_JS = """() => {
  const navigation = performance.getEntriesByType('navigation')[0]
  return {
    page_from_cache: navigation.responseEnd,
    document_ready: navigation.domContentLoadedEventEnd,
    register_drawn: performance.now()
  }
}"""
STAGES = ("page_from_cache", "document_ready", "register_drawn")


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app on 127.0.0.1 and a free port, for as long as the block runs."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="bench-offline", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def offline_register(app: Flask) -> tuple[common.Targets, int, int]:
    """The generated accounts, and a register of theirs the phone keeps that is open
    today (the fullest), with how many people are on it."""
    from referrals import clock
    from referrals.auth.models import User
    from referrals.courses.offline import offline_sessions
    from referrals.courses.services import register_enrolments
    from referrals.extensions import db

    targets = common.targets(app)
    with app.app_context():
        artist = db.session.query(User).filter_by(email=targets.artist_email).one()
        today = clock.today()
        kept = [s for s in offline_sessions(artist, today) if s.date <= today]
        if not kept:
            raise LookupError("the generated artist has no register today; seed the scale again")
        sizes = {s.id: len(register_enrolments(s)) for s in kept}
        session_id = max(sizes, key=lambda key: (sizes[key], -key))
        db.session.remove()
    return targets, session_id, sizes[session_id]


def run(app: Flask, *, opens: int, warmup: int) -> dict[str, Any]:
    """Open the artist's register offline `warmup + opens` times; the last `opens` timed."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        return {"skipped": f"Chromium not found at {CHROMIUM}"}
    targets, session_id, people = offline_register(app)
    register = f"/sessions/{session_id}/register"
    in_page: dict[str, list[float]] = {stage: [] for stage in STAGES}
    seen_by_driver: list[float] = []
    with served(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=url, viewport=PHONE, is_mobile=True, has_touch=True)
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        page.goto("/sign-in")
        page.get_by_label("Email address").fill(targets.artist_email)
        page.get_by_label("Password").fill(targets.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda address: "/sign-in" not in address)
        page.goto(register)
        page.get_by_text("Ready without a connection").wait_for()
        context.set_offline(True)
        for n in range(warmup + opens):
            page.close()
            page = context.new_page()
            started = time.perf_counter()
            page.goto(register, wait_until="commit")
            # Drawn: the last person's marks are on screen.
            page.locator("form.app-register .app-register__person").nth(people - 1).wait_for()
            if n >= warmup:
                seen_by_driver.append(time.perf_counter() - started)
                timings = page.evaluate(TIMINGS_JS)
                for stage in STAGES:
                    in_page[stage].append(timings[stage] / 1000)
        page.get_by_text("You are offline").wait_for()
        browser.close()
    stages = {stage: common.summarise_ms(in_page[stage]) for stage in STAGES}
    return {
        "people_on_register": people,
        "opens": opens,
        **stages,
        "seen_by_driver": common.summarise_ms(seen_by_driver),
        "target_ms": TARGET_MS,
        "met": stages["register_drawn"]["p95_ms"] < TARGET_MS,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_arguments(parser)
    parser.add_argument("--opens", type=int, default=50, help="timed opens (default 50)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    app, url, scale = common.prepare(args)
    result = common.header(app, url, scale, "offline")
    result["offline_register"] = run(app, opens=args.opens, warmup=args.warmup)
    return result


if __name__ == "__main__":
    common.emit(main())
