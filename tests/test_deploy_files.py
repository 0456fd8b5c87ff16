"""The deployment files name real commands and settings: the systemd units (checked by
systemd-analyze where it is installed), the Procfile, the container definition and the example
environment file. The container image itself is not built here."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import cast

import pytest
from flask import Flask

from referrals.config import MAIL_SETTINGS, Defaults
from tests.test_docs_commands import check_command

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/referrals"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def check_service_command(words: list[str]) -> None:
    """A web (gunicorn) or service (`referrals`) command line: real, with real options; checked
    as the documented commands are."""
    program = Path(words[0]).name
    arguments = [w.replace(INSTALLED, str(ROOT)) for w in words[1:]]
    assert program in ("gunicorn", "referrals"), words
    if program == "gunicorn":
        assert "--config" in arguments  # the project's settings, not gunicorn's defaults
    check_command(shlex.join([program, *arguments]), cast(Flask, None))  # curl alone needs it


@pytest.mark.parametrize(
    ("unit", "command"),
    [
        ("referrals-web.service", "gunicorn"),
        ("referrals-scheduler.service", "referrals scheduler run"),
        ("referrals-migrate.service", "referrals db upgrade"),
    ],
)
def test_each_unit_starts_a_real_command_as_the_service_user(unit: str, command: str) -> None:
    service = _unit(unit)["Service"]
    words = shlex.split(service["ExecStart"])
    assert words[0].startswith(f"{INSTALLED}/.venv/bin/")
    assert " ".join([Path(words[0]).name, *words[1:]]).startswith(command)
    check_service_command(words)
    assert service["User"] == "referrals"
    assert service["EnvironmentFile"] == "/etc/referrals/referrals.env"
    assert service["WorkingDirectory"] == INSTALLED  # gunicorn.conf.py, migrations
    assert service["UMask"] == "0077"  # backups and the SQLite file: owner only


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    # The units as installed, with stand-ins for the programs /opt/referrals would hold.
    programs = tmp_path / "bin"
    programs.mkdir()
    for name in ("referrals", "gunicorn"):
        (programs / name).write_text("#!/bin/sh\n")
        (programs / name).chmod(0o755)
    copies = []
    for unit in sorted(UNITS.glob("*.service")):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(f"{INSTALLED}/.venv/bin", str(programs)))
        copies.append(str(copy))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *copies],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_procfile_names_the_three_processes() -> None:
    entries = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert set(entries) == {"release", "web", "scheduler"}
    for command in entries.values():
        words = [w for w in shlex.split(command) if not re.match(r"^[A-Z_]+=", w)]
        check_service_command(words)


def test_the_container_definition_copies_what_exists_and_serves_with_the_config() -> None:
    text = (ROOT / "Containerfile").read_text()
    for match in re.finditer(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _target = match.group(1).split()
        for source in sources:
            assert (ROOT / source).exists(), source
    cmd = re.search(r"^CMD (\[.+\])$", text, re.M)
    assert cmd, "no CMD"
    check_service_command(eval(cmd.group(1)))  # noqa: S307  (a JSON list of words)
    assert "--require-hashes --requirement requirements.lock" in text
    assert "postgresql-client" in text  # pg_dump for the backup job
    assert re.search(r"^USER \d+", text, re.M)  # never root


def test_every_setting_in_the_example_environment_is_a_real_one() -> None:
    # Settings with a default, and settings the code reads only when set.
    known = {name for name in vars(Defaults) if name.isupper()}
    for source in (ROOT / "referrals").rglob("*.py"):
        known |= set(re.findall(r'config(?:\.get\(|\[)"([A-Z_]+)"', source.read_text()))
    gunicorn = {"BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"}
    lines = (ROOT / "deploy" / "referrals.env.example").read_text().splitlines()
    names = [
        re.sub(r"^# ", "", line).split("=", 1)[0]
        for line in lines
        if re.match(r"^(# )?[A-Z_]+=", line)
    ]
    assert "REFERRALS_BACKUP_DIR" in names and "REFERRALS_RATELIMIT_STORAGE_URI" in names
    for name in names:
        if name.startswith("REFERRALS_"):
            assert name.removeprefix("REFERRALS_") in known, name
        else:
            assert name in {"DATABASE_URL", "SECRET_KEY", *MAIL_SETTINGS, *gunicorn}, name
