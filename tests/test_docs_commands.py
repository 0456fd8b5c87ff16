"""Every shell command in the README and docs/ works as written, so the documentation cannot rot.

Commands are read from the ```sh blocks. The README's "Command line" and "API" blocks are run
for real, in order, with bash, against a fresh SQLite database and a live server: exactly as
written, except that the server's port is free one and the commands that run for ever or for
minutes (`scheduler run`, `seed scale`) are asked for `--help` with the same options, which
checks every option name. Every other command is checked without being run: `make` targets
with `make -n`, the service's commands with `--help`, gunicorn with `--check-config`, and curl
URLs against the URL map.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from referrals.cli import command_line

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXECUTED = {("README.md", "Command line"), ("README.md", "API")}
# Commands that serve or work for minutes: checked with --help, never run here.
LONG_RUNNING = (("scheduler", "run"), ("seed", "scale"), ("run",))
_BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.M | re.S)
_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def blocks() -> list[tuple[str, str, str]]:
    """(file name, heading above, block text) for every shell block."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.M)
            found.append((path.name, headings[-1] if headings else "", match.group(1)))
    return found


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if shlex.split(line, comments=True)]


def words(command: str) -> list[str]:
    """A command's words, leading VAR=value assignments left out."""
    parts = shlex.split(command, comments=True)
    while parts and _ASSIGNMENT.match(parts[0]):
        parts.pop(0)
    return parts


def is_service_command(word: str) -> bool:
    return word in ("referrals", ".venv/bin/referrals")


def is_long_running(arguments: list[str]) -> bool:
    plain = [a for a in arguments if not a.startswith("-")]
    return any(tuple(plain[: len(long)]) == long for long in LONG_RUNNING)


def test_the_docs_have_commands_to_check() -> None:
    found = {(name, heading) for name, heading, _ in blocks()}
    assert found >= EXECUTED
    assert ("deployment.md", "The processes") in found


# Checked, not run ----------------------------------------------------------------------------


def check_command(command: str, app: Flask) -> None:
    parts = words(command)
    if not parts:
        return  # only VAR=value settings (an environment file's lines)
    program, arguments = parts[0], parts[1:]
    if program == "export":
        return
    if program == "make":
        targets = [a for a in arguments if "=" not in a and not a.startswith("-")]
        variables = [a for a in arguments if "=" in a]
        result = subprocess.run(
            ["make", "-n", "-C", str(ROOT), *targets, *variables],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stderr)
    elif is_service_command(program):
        # Placeholders in synopses ([--contract ID], csv|pdf) are fine before --help.
        cleaned = [a.strip("[]") for a in arguments if a.strip("[]")]
        result = CliRunner().invoke(command_line(), [*cleaned, "--help"], prog_name="referrals")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage: referrals" in result.output
    elif program.endswith("gunicorn"):
        env = dict(
            os.environ,
            DATABASE_URL="sqlite://",
            SECRET_KEY="documentation-check",
            PYTHONPATH=str(ROOT),
        )
        env.update(a.split("=", 1) for a in shlex.split(command) if _ASSIGNMENT.match(a))
        result = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--check-config", *arguments],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    elif program == "curl":
        url = next(a for a in arguments if a.startswith("http"))
        path = re.sub(r"^https?://[^/]+", "", url)
        adapter = app.url_map.bind("localhost")
        adapter.match(path.split("?")[0], method="GET")  # raises NotFound for a wrong path
    else:
        pytest.fail(f"no rule to check {command!r}: add one to tests/test_docs_commands.py")


@pytest.mark.slow
def test_every_documented_command_is_a_real_one(app: Flask) -> None:
    checked = 0
    for name, heading, block in blocks():
        if (name, heading) in EXECUTED:
            continue
        for command in commands(block):
            check_command(command, app)
            checked += 1
    assert checked >= 20


# Run for real --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bin_directory(workdir: Path) -> None:
    """`.venv/bin` in the working directory: this interpreter's scripts, and `referrals`."""
    bin_dir = workdir / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    installed = Path(sys.executable).parent
    for name in ("python", "gunicorn", "pip"):
        if (installed / name).exists():
            (bin_dir / name).symlink_to(installed / name)
    # The installed console script where there is one (make setup makes it), else its module.
    script = installed / "referrals"
    launcher = bin_dir / "referrals"
    launcher.write_text(
        f'#!/bin/sh\nexec "{script}" "$@"\n'
        if script.exists()
        else f'#!/bin/sh\nexec "{sys.executable}" -m referrals "$@"\n'
    )
    launcher.chmod(0o755)


@pytest.mark.slow
def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    _bin_directory(tmp_path)
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "REFERRALS_", "TEST_DATABASE"))
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'referrals.sqlite'}",
        SECRET_KEY="documentation-run",
        PYTHONPATH=str(ROOT),
        REFERRALS_ARGON2_MEMORY_COST_KIB="19456",
    )
    script = ["set -euo pipefail", ".venv/bin/referrals db upgrade 2>/dev/null"]
    for name, heading, block in blocks():
        if (name, heading) not in EXECUTED:
            continue
        for command in commands(block):
            parts = words(command)
            if parts and is_service_command(parts[0]) and is_long_running(parts[1:]):
                command = command.split("#")[0].rstrip() + " --help >/dev/null"
            if heading == "API" and script[-1] != "# server":
                script += [
                    f".venv/bin/referrals run --port {port} >server.log 2>&1 &",
                    "SERVER=$!; trap 'kill $SERVER' EXIT",
                    f"for _ in $(seq 100); do curl -sf 127.0.0.1:{port}/health/live >/dev/null"
                    " && break; sleep 0.3; done",
                    "# server",
                ]
            script.append(command.replace("127.0.0.1:5000", f"127.0.0.1:{port}"))
    # `users create` asks for the password twice.
    password = "a long enough password for docs"
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],  # noqa: S607
        cwd=tmp_path,
        env=env,
        input=f"{password}\n{password}\n",
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,  # no terminal: the password prompt reads standard input
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:], script)
    assert "Created referrer x@example.org" in result.stdout
    assert (tmp_path / "return.pdf").read_bytes().startswith(b"%PDF")
    assert '"email":"admin@demo.test"' in result.stdout.replace(" ", ""), result.stdout[-2000:]


def test_the_service_command_needs_no_flask_app(tmp_path: Path) -> None:
    """From a directory with no project files and no FLASK_APP, the command still knows its app."""
    _bin_directory(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [str(tmp_path / ".venv" / "bin" / "referrals"), "users", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "token" in result.stdout
