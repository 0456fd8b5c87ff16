"""Peak memory of the scheduler making a month's KPI returns.

Last month's contract returns are removed from the benchmark database, then a fresh process
makes them again the way the monthly returns job does on the 1st (the service's app, then
`make_return` for every contract active in the month, each committed); its peak resident set
comes from the kernel's accounting of the finished child. The web workers' peak is measured by
bench.throughput while they serve pages.

    .venv/bin/python -m bench.memory --scale small --db sqlite
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select

from bench import common


def forget_last_month(app: Flask) -> tuple[str, int]:
    """Remove last month's contract returns so the job has a month's work to do."""
    from referrals import clock
    from referrals.extensions import db
    from referrals.reports.models import KpiReturn
    from referrals.reports.periods import Period

    period = Period.containing(clock.today()).previous()
    with app.app_context():
        removed = db.session.execute(
            delete(KpiReturn).where(
                KpiReturn.period == period.key, KpiReturn.contract_id.is_not(None)
            )
        )
        db.session.commit()
        count = int(removed.rowcount or 0)  # type: ignore[attr-defined]
        db.session.remove()
    return period.key, count


def returns_for(app: Flask, period: str) -> int:
    from referrals.extensions import db
    from referrals.reports.models import KpiReturn

    with app.app_context():
        made = db.session.scalar(
            select(func.count()).where(
                KpiReturn.period == period, KpiReturn.contract_id.is_not(None)
            )
        )
        db.session.remove()
    return int(made or 0)


def make_month_returns() -> str:
    """In the child: last month's return for every contract active in it, as the job makes them.

    The job itself (`run-job monthly-kpi-returns`) also catches up every older month without a
    return; the benchmark database holds only a year of them, so that would be years of work.
    """
    from referrals import clock
    from referrals.reports.periods import Period
    from referrals.reports.services import contracts_active_in, make_return
    from referrals.scheduler.jobs import MONTHLY_RETURNS

    app = common.make_app(os.environ["DATABASE_URL"])
    with app.app_context():
        today = clock.today()
        period = Period.containing(today).previous()
        made = sum(
            make_return(contract.id, period, today=today, job=MONTHLY_RETURNS).created
            for contract in contracts_active_in(period)
        )
    return f"{made} returns made for {period.key}"


def run_job(url: str) -> dict[str, Any]:
    """Make a month's returns in a process of its own; its peak RSS and wall time."""
    command = [sys.executable, "-m", "bench.memory", "--make-month-returns"]
    started = time.perf_counter()
    child = subprocess.Popen(  # noqa: S603
        command,
        cwd=common.PROJECT_ROOT,
        env=common.server_environment(url),
        stdout=subprocess.PIPE,
        text=True,
    )
    output = child.stdout.read() if child.stdout else ""  # until the child exits
    _pid, status, usage = os.wait4(child.pid, 0)  # reaped here, with its resource usage
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or "returns made" not in output:
        raise RuntimeError(f"making the month's returns failed (exit {child.returncode}): {output}")
    return {
        "scheduler_peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "job_seconds": round(elapsed, 2),
        "job_output": output.strip(),
    }


def run(app: Flask, url: str) -> dict[str, Any]:
    period, removed = forget_last_month(app)
    common.note(f"memory: monthly returns for {period} ({removed} removed first)")
    figures = run_job(url)
    figures["period"] = period
    figures["returns_made"] = returns_for(app, period)
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_arguments(parser)
    parser.add_argument("--make-month-returns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_month_returns:
        print(make_month_returns())
        sys.exit(0)
    app, url, scale = common.prepare(args)
    result = common.header(app, url, scale, "memory")
    result.update(run(app, url))
    return result


if __name__ == "__main__":
    common.emit(main())
