"""Markdown tables from bench.run_all results, and the query-count check between two sizes.

    .venv/bin/python -m bench.report bench/results/sqlite-full.json \
        bench/results/postgresql-full.json
    .venv/bin/python -m bench.report --same-queries bench/results/a.json bench/results/b.json

The second form exits non-zero when any page sends a different number of SQL statements at the
two sizes: a page's query count must not depend on how much data there is.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bench.offline import TARGET_MS as OFFLINE_MS
from bench.run_all import KPI_MONTH_S, LATENCY_P95_MS, PDF_S, SCHEDULER_MIB, THROUGHPUT_SHARE

NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def load(path: str) -> dict[str, Any]:
    with open(path) as handle:
        return dict(json.load(handle))


def _column(result: dict[str, Any]) -> str:
    rows = result["rows"]
    return (
        f"{NAMES.get(result['database'], result['database'])} "
        f"({rows['referral']:,} / {rows['attendance']:,})"
    )


def _get(result: dict[str, Any], *keys: str) -> Any:
    value: Any = result
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _mark(met: bool | None) -> str:
    return "" if met is None else (" ✓" if met else " ✗")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def latency_table(results: list[dict[str, Any]], section: str = "latency") -> str:
    """The pages of `section`: `latency` (signed-in pages) or `public` (the open directory)."""
    pages: list[str] = []
    for result in results:
        for name in _get(result, section, "pages") or {}:
            if name not in pages:
                pages.append(name)
    rows = []
    for name in pages:
        row = [f"`{name}`", f"p95 < {LATENCY_P95_MS:g} ms"]
        for result in results:
            page = _get(result, section, "pages", name)
            if page is None:
                row.append("–")
                continue
            queries = str(page["queries"])
            met = page["p95_ms"] < LATENCY_P95_MS
            row.append(f"{page['p50_ms']} / {page['p95_ms']}{_mark(met)} ({queries})")
        rows.append(row)
    header = ["Page", "Target", *(f"{_column(r)} p50 / p95 ms (queries)" for r in results)]
    return _table(header, rows)


def work_table(results: list[dict[str, Any]]) -> str:
    rows: list[list[str]] = []

    def seconds(label: str, key: str, limit: float) -> None:
        row = [label, f"< {limit:g} s"]
        for result in results:
            figures = _get(result, "kpi", key)
            if figures is None:
                row.append("–")
            else:
                met = figures["median_s"] < limit
                row.append(f"{figures['median_s']} s (min {figures['min_s']}){_mark(met)}")
        rows.append(row)

    seconds(
        "KPI return, one contract, all spans (median)", "kpi_return_contract_all_spans", KPI_MONTH_S
    )
    seconds("KPI return, all activity (median)", "kpi_return_all_activity", KPI_MONTH_S)
    seconds("Return PDF build (median)", "return_pdf", PDF_S)

    hello = ["Bare Flask hello world", "(ceiling)"]
    for result in results:
        rps = _get(result, "throughput", "hello_world", "requests_per_s")
        hello.append("–" if rps is None else f"{rps:,.0f} req/s")
    rows.append(hello)
    for name, label, limit in (
        ("referral_list", "Referral list throughput", THROUGHPUT_SHARE),
        ("caseload", "Caseload throughput", None),
        ("register_page", "Register page throughput", None),
    ):
        row = [label, f"≥ {limit:.0%} of hello world" if limit else "(reported)"]
        for result in results:
            page = _get(result, "throughput", name)
            if page is None:
                row.append("–")
                continue
            met = None if limit is None else page["share_of_hello_world"] >= limit
            row.append(
                f"{page['requests_per_s']:,.0f} req/s = "
                f"{page['share_of_hello_world']:.1%}{_mark(met)}"
            )
        rows.append(row)
    for name, label in (
        ("referral_list", "Referral list"),
        ("caseload", "Caseload"),
        ("register_page", "Register page"),
        ("home_link_worker", "Link worker's home page"),
        ("home_referrer", "GP's home page"),
        ("referral_detail", "Referral page (link worker)"),
        ("referral_detail_gp", "Referral page (GP)"),
        ("course_directory", "Course directory (staff)"),
    ):
        versus = [
            f"{label} against the minimal implementation (bench/baseline.py)",
            "CPU ≤ 2×" + (", req/s ≥ 50%" if name == "referral_list" else ""),
        ]
        for result in results:
            base = _get(result, "throughput", f"baseline_{name}")
            if base is None:
                versus.append("–")
                continue
            met = base["service_cpu_ratio"] <= 2 and (
                name != "referral_list" or base["service_share_of_requests_per_s"] >= 0.5
            )
            versus.append(
                f"CPU {base['service_cpu_ratio']:.2f}× ({base['server_cpu_ms_per_request']} ms "
                f"baseline), {base['service_share_of_requests_per_s']:.0%} of its "
                f"{base['requests_per_s']:,.0f} req/s{_mark(met)}"
            )
        rows.append(versus)

    phone = ["Offline register drawn from the phone, p50 / p95", f"< {OFFLINE_MS:g} ms"]
    for result in results:
        drawn = _get(result, "offline", "register_drawn")
        met = None if drawn is None else drawn["p95_ms"] < OFFLINE_MS
        phone.append(
            "–" if drawn is None else f"{drawn['p50_ms']} / {drawn['p95_ms']} ms{_mark(met)}"
        )
    rows.append(phone)

    web = ["Web worker peak RSS", "(reported)"]
    scheduler = ["Scheduler peak RSS, a month's returns", f"< {SCHEDULER_MIB:g} MB"]
    for result in results:
        peak = _get(result, "throughput", "web_worker_peak_rss_mib")
        web.append("–" if peak is None else f"{peak} MiB")
        job = _get(result, "memory")
        if job is None:
            scheduler.append("–")
        else:
            met = job["scheduler_peak_rss_mib"] < SCHEDULER_MIB
            scheduler.append(
                f"{job['scheduler_peak_rss_mib']} MiB ({job['returns_made']} returns, "
                f"{job['job_seconds']} s){_mark(met)}"
            )
    rows += [web, scheduler]
    return _table(["Figure", "Target", *(_column(r) for r in results)], rows)


def rows_table(results: list[dict[str, Any]]) -> str:
    tables: list[str] = []
    for result in results:
        for name in result.get("rows", {}):
            if name not in tables:
                tables.append(name)
    rows = [[f"`{name}`", *(f"{r['rows'].get(name, 0):,}" for r in results)] for name in tables]
    return _table(["Table", *(_column(r) for r in results)], rows)


def render(results: list[dict[str, Any]]) -> str:
    machine = results[0].get("machine", {})
    servers = ", ".join(
        sorted({str(r.get("machine", {}).get("database_server", "")) for r in results})
    )
    parts = [
        f"Measured on {machine.get('cpus')} CPUs ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gib')} GiB, Python {machine.get('python')}, {servers}.",
        "Rows in the database:\n\n" + rows_table(results),
    ]
    requests = _get(results[0], "latency", "requests_per_page")
    if requests:
        parts.append(
            f"In-process latency, {requests} timed requests per page:\n\n" + latency_table(results)
        )
    courses = _get(results[0], "public", "courses")
    if courses:
        builds = ", ".join(
            f"{NAMES.get(r['database'], r['database'])} "
            f"{r['public']['snapshot_build']['p50_ms']} ms"
            for r in results
            if _get(r, "public", "snapshot_build")
        )
        parts.append(
            f"The open directory at {courses:,} published courses, anonymous, from the published "
            f"snapshot (building it, once a minute per worker, median: {builds}):\n\n"
            + latency_table(results, "public")
        )
    parts.append("KPI, PDF, throughput and memory:\n\n" + work_table(results))
    return "\n\n".join(parts)


# Pages showing one record whose own history differs between two generated schemes: their
# count follows that history (who recorded each step), not the size of the data.
ONE_RECORD_PAGES = {"referral_detail"}


def query_differences(small: dict[str, Any], large: dict[str, Any]) -> list[str]:
    """Pages whose SQL statement count differs between two sizes of data."""
    found = []
    small_pages = _get(small, "latency", "pages") or {}
    large_pages = _get(large, "latency", "pages") or {}
    for name, page in small_pages.items():
        if name in ONE_RECORD_PAGES:
            continue
        other = large_pages.get(name)
        if other is None:
            found.append(f"{name}: measured at one size only")
        elif page["queries"] != other["queries"]:
            found.append(
                f"{name}: {page['queries']} queries at {small['rows']['referral']:,} "
                f"referrals, {other['queries']} at {large['rows']['referral']:,}"
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="JSON files written by bench.run_all")
    parser.add_argument(
        "--same-queries",
        action="store_true",
        help="check that two results send the same number of queries per page",
    )
    args = parser.parse_args(argv)
    results = [load(path) for path in args.results]
    if args.same_queries:
        if len(results) != 2:
            parser.error("--same-queries compares exactly two results")
        differences = query_differences(*results)
        for line in differences:
            print(line, file=sys.stderr)
        if not differences:
            pages = set(_get(results[0], "latency", "pages") or {}) - ONE_RECORD_PAGES
            print(f"Same query count at both sizes for each of {len(pages)} pages.")
        return 1 if differences else 0
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
