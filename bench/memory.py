"""Peak memory of the scheduler making a month's KPI returns.

Last month's contract returns are removed from the benchmark database, then the job is run the
way operators and the scheduler run it (`flask scheduler run-job monthly-kpi-returns`, a fresh
process); its peak resident set comes from the kernel's accounting of the finished child. The web
workers' peak is measured by bench.throughput while they serve pages.

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
    from referrals.extensions import db
    from referrals.reports.models import KpiReturn
    from referrals.reports.periods import Period
    from referrals.scheduler.jobs import today_in_london

    period = Period.containing(today_in_london()).previous()
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


def run_job(url: str) -> dict[str, Any]:
    """Run the monthly returns job in its own process; its peak RSS and wall time."""
    command = [sys.executable, "-m", "flask", "scheduler", "run-job", "monthly-kpi-returns"]
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
    if child.returncode != 0 or "succeeded" not in output:
        raise RuntimeError(f"the monthly returns job failed (exit {child.returncode}): {output}")
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
    args = parser.parse_args(argv)
    app, url, scale = common.prepare(args)
    result = common.header(app, url, scale, "memory")
    result.update(run(app, url))
    return result


if __name__ == "__main__":
    common.emit(main())
