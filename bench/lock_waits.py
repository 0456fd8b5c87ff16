"""Pages and forms while another process holds SQLite's write lock, and how long a KPI
regeneration holds that lock itself.

A second process takes the write lock (`BEGIN IMMEDIATE`, as `flask kpi regenerate` once did for
its whole computation) and keeps it until everything below is measured, and at least `--hold`
seconds: longer than the busy timeout. Meanwhile
each role's main pages are requested in-process (signed in through the real form; the session is
touched on every request, the worst case) and timed, then a form is sent, which waits out the
busy timeout and answers the "try again" page. The same pages are timed with the database idle.
Last, a return is regenerated with the lock free, and its longest write transaction is timed
against the whole regeneration.

    .venv/bin/python -m bench.lock_waits --scale tiny --hold 15
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event, select

from bench import common

_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()  # until the benchmark has measured (and at least --hold seconds)
connection.execute("ROLLBACK")
print("released", flush=True)
"""


def _pages(targets: common.Targets) -> dict[str, tuple[str, str]]:
    """name: (email, path) of each role's main pages."""
    return {
        "home (link worker)": (targets.link_worker_email, "/"),
        "referral list": (targets.link_worker_email, "/referrals/"),
        "referral detail": (targets.link_worker_email, f"/referrals/{targets.referral_id}"),
        "practice list (referrer)": (targets.gp_email, "/referrals/"),
        "course directory": (targets.link_worker_email, "/courses/"),
        "register (artist)": (
            targets.artist_email,
            f"/sessions/{targets.register_session_id}/register",
        ),
        "returns (commissioner)": (targets.commissioner_email, "/returns/"),
    }


def _time_pages(
    app: Flask, clients: dict[str, Any], pages: dict[str, tuple[str, str]], repeat: int
) -> dict[str, Any]:
    result = {}
    for name, (email, path) in pages.items():
        statuses: set[int] = set()

        def ask(email: str = email, path: str = path, statuses: set[int] = statuses) -> Any:
            response = clients[email].get(path)
            statuses.add(response.status_code)
            return response

        ask()  # warm
        times, _last = common.timed(ask, repeat)
        result[name] = {**common.summarise_ms(times), "statuses": sorted(statuses)}
    return result


def _longest_write_lock_of_a_regeneration(app: Flask, targets: common.Targets) -> dict[str, Any]:
    from referrals import clock
    from referrals.auth.models import Role, User
    from referrals.db import unit_of_work_writes
    from referrals.extensions import db
    from referrals.reports.services import latest_closed_period, regenerate_return

    holds: list[float] = []
    opened: dict[int, float] = {}
    with app.app_context():
        engine = db.engine

        def begun(connection: Any) -> None:
            if unit_of_work_writes():
                opened[id(connection)] = time.perf_counter()

        def ended(connection: Any) -> None:
            started = opened.pop(id(connection), None)
            if started is not None:
                holds.append(time.perf_counter() - started)

        event.listen(engine, "begin", begun)
        event.listen(engine, "commit", ended)
        event.listen(engine, "rollback", ended)
        try:
            today = clock.today()
            admin = db.session.scalar(select(User).where(User.role == Role.ADMIN).limit(1))
            started = time.perf_counter()
            made = regenerate_return(
                admin,
                targets.contract_id,
                latest_closed_period(today),
                "Benchmark of the write lock",
                today=today,
            )
            total = time.perf_counter() - started
            version = made.version
        finally:
            event.remove(engine, "begin", begun)
            event.remove(engine, "commit", ended)
            event.remove(engine, "rollback", ended)
            db.session.remove()
    return {
        "version": version,
        "total_ms": round(total * 1000, 1),
        "longest_write_transaction_ms": round(max(holds) * 1000, 1),
        "write_transactions": len(holds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    common.add_arguments(parser)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds the lock is held")
    parser.add_argument("--busy-timeout-ms", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=5, help="timed requests per page")
    args = parser.parse_args()
    if args.db != "sqlite":
        parser.error("the write lock measured here is SQLite's")
    prepared, url, scale = common.prepare(args)
    targets = common.targets(prepared)
    from referrals import create_app

    app = create_app(
        {
            **common.bench_config(url),
            "SQLITE_BUSY_TIMEOUT_MS": args.busy_timeout_ms,
            "SESSION_TOUCH_INTERVAL": timedelta(0),  # every request tries its touch
            # The benchmark database's own spool, never the instance folder's.
            "AUDIT_SPOOL_DIR": str(common.DATA_DIR / f"audit-spool-{scale.name}"),
        }
    )
    pages = _pages(targets)
    clients = {
        email: common.signed_in_client(app, email, targets.password)
        for email in {email for email, _path in pages.values()}
    }
    result = common.header(app, url, scale, "lock_waits")
    result["busy_timeout_ms"] = args.busy_timeout_ms
    result["best_effort_wait_ms"] = app.config["BEST_EFFORT_WRITE_WAIT_MS"]
    result["idle"] = _time_pages(app, clients, pages, args.requests)

    link_worker = clients[targets.link_worker_email]
    form_url = f"/referrals/{targets.referral_id}/contact"
    token = common.csrf_token(link_worker.get(form_url).get_data(as_text=True))
    path = url.removeprefix("sqlite:///")
    # This interpreter running the script above on the benchmark's own database file.
    holder = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", _HOLDER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    held_at = time.perf_counter()
    try:
        result["behind_the_lock"] = _time_pages(app, clients, pages, args.requests)
        started = time.perf_counter()
        sent = link_worker.post(
            form_url,
            data={"csrf_token": token, "method": "phone", "outcome": "spoke", "note": "bench"},
        )
        result["form_behind_the_lock"] = {
            "status": sent.status_code,
            "retry_after": sent.headers.get("Retry-After"),
            "ms": round((time.perf_counter() - started) * 1000, 1),
            "input_kept": 'value="bench"' in sent.get_data(as_text=True),
        }
        result["lock_still_held"] = holder.poll() is None
        time.sleep(max(0.0, args.hold - (time.perf_counter() - held_at)))
    finally:
        holder.stdin.write("release\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    result["held_s"] = round(time.perf_counter() - held_at, 1)
    # The first page that records a view once the lock is free moves the spool in.
    from referrals import audit_spool

    spool = Path(app.config["AUDIT_SPOOL_DIR"])
    result["spool_files_while_held"] = audit_spool.waiting(spool)
    link_worker.get(f"/referrals/{targets.referral_id}")
    result["spool_files_after_the_next_page"] = audit_spool.waiting(spool)
    result["regeneration"] = _longest_write_lock_of_a_regeneration(app, targets)
    common.emit(result)


if __name__ == "__main__":
    main()
