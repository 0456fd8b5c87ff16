"""KPI return computation and return PDF build times.

Times a contract's whole return as it is made, without storing it: every figure of every span
(the month, the year to date and the contract to date, `referrals.reports.kpi.compute`) and
then the small-number rule and the ratings (`publish`, and the suppression log); the same for
all activity (the month and the year to date); then the PDF of that contract's return (made
first if it does not exist), as the download page builds it. Each is run `--repeat` times,
reporting min, median and max, the figures made, the spans and the queries per return.

Wall time follows whatever else the machine is doing; the CPU time the return costs does not,
so each return also reports the median CPU seconds of this process (`cpu_s`) and, on a
PostgreSQL server on the same machine, of the server process serving it (`server_cpu_s`, read
from /proc; absent elsewhere).

    .venv/bin/python -m bench.kpi --scale small --db sqlite
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

from flask import Flask

from bench import common


def _figures(times: list[float]) -> dict[str, Any]:
    return {
        "n": len(times),
        "min_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
    }


def server_cpu() -> float | None:
    """CPU seconds used so far by the PostgreSQL server process serving this session, when
    the server runs on this machine (its /proc entry is readable); else None."""
    from sqlalchemy import text

    from referrals.extensions import db

    if db.session.get_bind().dialect.name != "postgresql":
        return None
    pid = db.session.connection().scalar(text("SELECT pg_backend_pid()"))
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def contract_in(contract_id: int, period: Any) -> int:
    """The benchmark commissioner's contract that ran in `period` (contracts run back to back)."""
    from sqlalchemy import select

    from referrals.courses.models import Contract
    from referrals.extensions import db

    contract = db.session.get(Contract, contract_id)
    assert contract is not None
    found = db.session.scalar(
        select(Contract.id)
        .where(
            Contract.commissioner_id == contract.commissioner_id,
            Contract.start_date <= period.end,
            Contract.end_date >= period.start,
        )
        .order_by(Contract.start_date.desc())
        .limit(1)
    )
    return int(found or contract_id)


def run(app: Flask, *, repeat: int, today: date | None = None) -> dict[str, Any]:
    from referrals import clock
    from referrals.extensions import db
    from referrals.reports.kpi import compute, publish, suppression_log
    from referrals.reports.labels import spans_in
    from referrals.reports.pdf import build_return_pdf
    from referrals.reports.periods import Period, Scope
    from referrals.reports.services import current_return, make_return

    found = common.targets(app)
    day = today or clock.today()
    period = Period.containing(day).previous()
    counter = common.QueryCounter(common.engine_of(app))
    from referrals.courses.models import Contract

    with app.app_context():
        contract_id = contract_in(found.contract_id, period)
        contract = db.session.get(Contract, contract_id)
        contract_start = contract.start_date if contract is not None else None
        targets = dict(contract.targets or {}) if contract is not None else {}
        results: dict[str, Any] = {"period": period.key, "contract_id": contract_id}
        for name, scope, start, scope_targets in (
            ("kpi_return_contract_all_spans", Scope(contract_id), contract_start, targets),
            ("kpi_return_all_activity", Scope(None), None, {}),
        ):

            def whole_return(
                scope: Any = scope, start: Any = start, aims: Any = scope_targets
            ) -> list[dict[str, Any]]:
                published = publish(compute(scope, period, start), aims)
                suppression_log(published)
                return [figure.as_dict() for figure in published]

            common.note(f"kpi: {name} for {period.key}")
            whole_return()  # warm: first use of each statement compiles it
            times, cpu, server = [], [], []
            figures: list[dict[str, Any]] = []
            with counter.attached():
                before = counter.count
                for _ in range(repeat):
                    server_before = server_cpu()
                    started, cpu_started = time.perf_counter(), time.process_time()
                    figures = whole_return()
                    times.append(time.perf_counter() - started)
                    cpu.append(time.process_time() - cpu_started)
                    server_after = server_cpu()
                    if server_before is not None and server_after is not None:
                        server.append(server_after - server_before)
                statements = (counter.count - before) // repeat
            results[name] = _figures(times) | {
                "cpu_s": round(statistics.median(cpu), 4),
                "figures": len(figures),
                "spans": spans_in(figures),
                "queries": statements,
            }
            if server:
                results[name]["server_cpu_s"] = round(statistics.median(server), 4)
            db.session.rollback()

        kpi_return = current_return(Scope(contract_id), period)
        if kpi_return is None:
            kpi_return = make_return(contract_id, period, today=day, job="bench").kpi_return
        common.note(f"kpi: PDF of return {kpi_return.id}")
        build_return_pdf(kpi_return)
        times, pdf = common.timed(lambda: build_return_pdf(kpi_return), repeat)
        results["return_pdf"] = _figures(times) | {"bytes": len(pdf), "return_id": kpi_return.id}
        db.session.remove()
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_arguments(parser)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    app, url, scale = common.prepare(args)
    result = common.header(app, url, scale, "kpi")
    result.update(run(app, repeat=args.repeat))
    return result


if __name__ == "__main__":
    common.emit(main())
