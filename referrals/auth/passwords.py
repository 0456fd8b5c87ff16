"""Password hashing (Argon2id) and the password policy (length, common and guessable passwords)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from itertools import pairwise

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from referrals.text import has_control_characters

MIN_LENGTH = 12
MAX_LENGTH = 128

# Words that, with digits or symbols around them, make a breached-looking password.
_GUESSABLE_STEMS = (
    "password", "passw0rd", "p@ssword", "p@ssw0rd", "qwerty", "letmein", "welcome", "iloveyou",
    "admin", "monkey", "dragon", "football", "baseball", "sunshine", "princess", "changeme",
    "secret", "abc", "nhs", "artsonprescription",
)  # fmt: skip


def _hasher() -> PasswordHasher:
    config = current_app.config
    return PasswordHasher(
        time_cost=config["ARGON2_TIME_COST"],
        memory_cost=config["ARGON2_MEMORY_COST_KIB"],
        parallelism=config["ARGON2_PARALLELISM"],
        type=Type.ID,
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no hash, still spend the time so unknown accounts are not revealed."""
    hasher = _hasher()
    if not password_hash:
        hasher.hash(password)
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


@cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("referrals").joinpath("data/common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why a new password is unacceptable, or None. No composition rules (NIST SP 800-63B)."""
    if len(password) < MIN_LENGTH:
        return f"Password must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"Password must be {MAX_LENGTH} characters or fewer"
    if has_control_characters(password, single_line=True):
        # The sign-in form refuses these too, so such a password could never be used.
        return "Password must not contain control characters, such as tabs"
    lowered = password.lower()
    if lowered in _common_passwords():
        return "This password is too common. Choose a longer phrase that is not easy to guess"
    if len(set(lowered)) <= 3:
        return "Password must not be a repeated character or pattern"
    core = re.sub(r"^[\d\W_]+|[\d\W_]+$", "", lowered)
    if core in _GUESSABLE_STEMS or re.fullmatch(r"(.+?)\1+", lowered):
        return "This password is too easy to guess. Choose a longer phrase"
    if _is_sequence(lowered):
        return "Password must not be a sequence of keys or numbers"
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 4 and local_part in lowered:
        return "Password must not contain your email address"
    for part in name.lower().split():
        if len(part) >= 4 and part in lowered and len(lowered) - len(part) < 8:
            return "Password must not be based on your name"
    return None


def _is_sequence(text: str) -> bool:
    """Runs like abcdef… or 0123456789012 (digits wrap around)."""
    steps = {ord(b) - ord(a) for a, b in pairwise(text)}
    if text.isdigit():
        steps = {step % 10 for step in steps}
        return steps in ({1}, {9})
    return steps in ({1}, {-1})
