"""Throughput under gunicorn on loopback, as a share of a bare Flask app's under the same load.

Starts gunicorn (gthread workers, one per CPU) for the service on the benchmark database, for
bench/hello.py and for bench/baseline.py (a minimal implementation of the same pages), signs in
over HTTP, then drives each page with wrk for a fixed time and connection count, and reports each
page's server CPU per request and requests per second against the baseline's, which must serve
the same bytes. Every answer must be 200 OK (bench/status.lua counts the others). Also reports
the peak resident memory (VmHWM) of the service's web workers after the runs.

    .venv/bin/python -m bench.throughput --scale small --db sqlite --duration 10
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common

STATUS_SCRIPT = common.BENCH_ROOT / "status.lua"
USER_AGENT = "arts-referrals-bench"
_REQUESTS_PER_SECOND = re.compile(r"Requests/sec:\s+([\d.]+)")
_TOTAL = re.compile(r"(\d+) requests in [\d.]+\w+, ([\d.]+)([KMG]?B) read")
_NOT_OK = re.compile(r"NOT_200 (\d+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_LATENCY = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Load:
    duration: int
    connections: int
    threads: int
    workers: int
    worker_threads: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gunicorn(
    target: str, env: dict[str, str], load: Load, health: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A gunicorn master serving `target` on a free loopback port, stopped afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(load.workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(load.worker_threads),
        "--log-level",
        "warning",
        # gunicorn.conf.py recycles a worker after about 2,000 requests; the measured runs
        # must keep theirs, or the workers' CPU time would go back to nothing mid-run.
        "--max-requests",
        "0",
        target,
    ]
    # Its access log goes to stderr, so that stdout stays one JSON object.
    server = subprocess.Popen(  # noqa: S603
        command, cwd=common.PROJECT_ROOT, env=env, stdout=sys.stderr
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base + health, server)
        yield base, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn stopped (exit {server.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {url} within 60 s")


def sign_in_over_http(base: str, email: str, password: str) -> str:
    """Sign in through the real form over HTTP; return the session cookie as a header value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    with opener.open(base + "/sign-in", timeout=30) as response:
        token = common.csrf_token(response.read().decode())
    body = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password})
    with opener.open(base + "/sign-in", data=body.encode(), timeout=30) as response:
        if urllib.parse.urlparse(response.url).path == "/sign-in":
            raise RuntimeError(f"signing in as {email} over HTTP failed")
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


def check_page(url: str, cookie: str) -> str:
    """The page's HTML, which must be a 200 OK (not a redirect to sign in)."""
    request = urllib.request.Request(  # noqa: S310  (loopback)
        url, headers={"Cookie": cookie, "User-Agent": USER_AGENT}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=30) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return str(response.read().decode())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"{args[0].full_url} redirected (signed out?)")


def wrk(url: str, load: Load, *, duration: int, cookie: str = "") -> dict[str, Any]:
    """One bounded wrk run; requests per second, latency percentiles and non-200 answers."""
    program = shutil.which("wrk")
    if program is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    command = [
        program,
        f"--threads={load.threads}",
        f"--connections={load.connections}",
        f"--duration={duration}s",
        "--timeout=10s",
        "--latency",
        f"--script={STATUS_SCRIPT}",
        "--header",
        f"User-Agent: {USER_AGENT}",
    ]
    if cookie:
        command += ["--header", f"Cookie: {cookie}"]
    output = subprocess.run(  # noqa: S603
        [*command, url], capture_output=True, text=True, check=True
    ).stdout
    rps = _REQUESTS_PER_SECOND.search(output)
    total = _TOTAL.search(output)
    not_ok = _NOT_OK.search(output)
    if rps is None or total is None or not_ok is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    figures: dict[str, Any] = {
        "requests_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "kib_per_response": round(
            float(total.group(2))
            * {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[total.group(3)]
            / 1024
            / max(1, int(total.group(1))),
            1,
        ),
        "not_200": int(not_ok.group(1)),
    }
    errors = _ERRORS.search(output)
    figures["socket_errors"] = sum(int(n) for n in errors.groups()) if errors else 0
    for share, value, unit in _LATENCY.findall(output):
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        figures[f"latency_p{share}_ms"] = round(float(value) * scale, 2)
    return figures


def worker_peak_rss_mib(master: int) -> float:
    """The largest peak resident set (VmHWM) among a gunicorn master's workers."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    peaks = [_vm_hwm_kib(int(pid)) for pid in children]
    return round(max(peaks) / 1024, 1) if peaks else 0.0


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def workers_cpu_seconds(master: int) -> dict[int, float]:
    """User and system CPU time so far of each of a gunicorn master's workers, by process id."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[int(pid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def measured(
    url: str, load: Load, cookie: str = "", server: subprocess.Popen[bytes] | None = None
) -> dict[str, Any]:
    """wrk's figures and, given the server, its workers' CPU per request (ms). A run during
    which gunicorn replaced a worker cannot say what the old one used, so it is run again."""
    wrk(url, load, duration=1, cookie=cookie)  # warm: templates compiled, connections pooled
    for _attempt in range(3):
        before = workers_cpu_seconds(server.pid) if server else {}
        result = wrk(url, load, duration=load.duration, cookie=cookie)
        if result["not_200"] or result["socket_errors"]:
            raise RuntimeError(f"{url}: {result['not_200']} answers were not 200 OK: {result}")
        if server is None:
            return result
        after = workers_cpu_seconds(server.pid)
        if after.keys() == before.keys():
            used = sum(after.values()) - sum(before.values())
            result["server_cpu_ms_per_request"] = round(1000 * used / max(1, result["requests"]), 2)
            return result
        common.note(f"throughput: a worker was replaced while measuring {url}; again")
    raise RuntimeError(f"{url}: gunicorn kept replacing workers while it was measured")


# The service's pages measured under load, and which of them bench/baseline.py also serves.
PAGES = (
    "referral_list",
    "caseload",
    "register_page",
    "home_link_worker",
    "home_referrer",
    "referral_detail",
    "referral_detail_gp",
    "course_directory",
)
BASELINE_PAGES = PAGES


def page_paths(found: common.Targets) -> dict[str, tuple[str, str]]:
    """Each measured page: (who signs in, its path)."""
    paths = {
        "referral_list": (found.gp_email, "/referrals/"),
        "caseload": (found.link_worker_email, "/referrals/"),
        "register_page": (found.artist_email, f"/sessions/{found.register_session_id}/register"),
        "home_link_worker": (found.link_worker_email, "/"),
        "home_referrer": (found.gp_email, "/"),
        "referral_detail": (found.link_worker_email, f"/referrals/{found.referral_id}"),
        "referral_detail_gp": (found.gp_email, f"/referrals/{found.gp_referral_id}"),
        "course_directory": (found.link_worker_email, "/courses/"),
    }
    return {name: paths[name] for name in PAGES}


def run(url: str, app: Any, load: Load) -> dict[str, Any]:
    found = common.targets(app)
    env = common.server_environment(url)
    results: dict[str, Any] = {
        "server": f"gunicorn gthread, {load.workers} workers x {load.worker_threads} threads",
        "load": f"wrk, {load.threads} threads, {load.connections} connections, "
        f"{load.duration} s per page",
    }
    common.note("throughput: bare Flask hello world")
    with gunicorn("bench.hello:app", env, load, "/") as (base, _server):
        hello = measured(base + "/", load)
    results["hello_world"] = hello
    pages = page_paths(found)
    cookies: dict[str, str] = {}
    service_html: dict[str, str] = {}
    with gunicorn("referrals:create_app()", env, load, "/health") as (base, server):
        for name, (who, path) in pages.items():
            common.note(f"throughput: {name} ({path})")
            cookie = cookies[name] = sign_in_over_http(base, who, found.password)
            check_page(base + path, cookie)
            figures = measured(base + path, load, cookie, server)
            figures["share_of_hello_world"] = round(
                figures["requests_per_s"] / hello["requests_per_s"], 3
            )
            # Still signed in: the run measured real pages. The page as the baseline must
            # serve it, taken after the run (a register's saved time, a list's order).
            service_html[name] = check_page(base + path, cookie)
            results[name] = figures
        results["web_worker_peak_rss_mib"] = worker_peak_rss_mib(server.pid)
    baselines = {
        name: (pages[name][1], cookies[name], service_html[name]) for name in BASELINE_PAGES
    }
    for name, figures in baseline_run(env, load, baselines, results).items():
        results[f"baseline_{name}"] = figures
    return results


def baseline_run(
    env: dict[str, str],
    load: Load,
    pages: dict[str, tuple[str, str, str]],
    service: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """bench/baseline.py's pages, each (path, cookie, the service's HTML), under the same
    gunicorn and load with the same cookies; each must answer the service's bytes (apart from
    nonce and token) before and after its run, or the run fails. The service's server CPU per
    request and requests per second against the baseline's, as ratios."""
    from bench.baseline import same_page

    results = {}
    with gunicorn("bench.baseline:create_app()", env, load, "/health") as (base, server):
        for name, (path, cookie, service_html) in pages.items():
            common.note(f"throughput: {name} as a minimal implementation (bench/baseline.py)")
            if not same_page(service_html, check_page(base + path, cookie)):
                raise RuntimeError(f"the baseline's {name} differs from the service's")
            figures = measured(base + path, load, cookie, server)
            if not same_page(service_html, check_page(base + path, cookie)):
                raise RuntimeError(f"the baseline's {name} differs from the service's")
            figures["service_share_of_requests_per_s"] = round(
                service[name]["requests_per_s"] / figures["requests_per_s"], 3
            )
            figures["service_cpu_ratio"] = round(
                service[name]["server_cpu_ms_per_request"]
                / max(0.01, figures["server_cpu_ms_per_request"]),
                2,
            )
            results[name] = figures
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_arguments(parser)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per page")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--worker-threads", type=int, default=4)
    args = parser.parse_args(argv)
    app, url, scale = common.prepare(args)
    load = Load(args.duration, args.connections, args.threads, args.workers, args.worker_threads)
    result = common.header(app, url, scale, "throughput")
    result.update(run(url, app, load))
    return result


if __name__ == "__main__":
    common.emit(main())
