"""Idempotent writes: a caller's `Idempotency-Key` claims a write, its first successful answer
is stored with what the write recorded (in the same transaction) and replayed on a retry.

Used by the referral API and by the offline register's send through `retried` and
`claim_or_retried`; each says its own refusals. The unique (user_id, key) constraint makes a
second, concurrent claim of a key wait, then fail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from referrals.auth.models import User
from referrals.extensions import db
from referrals.intake.models import IdempotentRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
R = TypeVar("R")


def request_fingerprint(payload: Any) -> str:
    """The same JSON sent again, in any key order or spacing, has the same fingerprint."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored_answer(user: User, key: str) -> IdempotentRequest | None:
    """The answer kept for the user's `Idempotency-Key`, if that key was used before."""
    return db.session.scalar(
        select(IdempotentRequest).where(
            IdempotentRequest.user_id == user.id, IdempotentRequest.key == key
        )
    )


def same_request(stored: IdempotentRequest, endpoint: str | None, fingerprint: str) -> bool:
    """Whether a retry is the request the key was first used for."""
    return stored.endpoint == endpoint and stored.request_hash == fingerprint


def replayed(stored: IdempotentRequest) -> Response:
    """The stored answer again, marked as a replay."""
    response = jsonify(stored.body)
    response.status_code = stored.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


def claim(user: User, key: str, endpoint: str | None, fingerprint: str) -> IdempotentRequest | None:
    """Reserve the key in this transaction, or None (the transaction rolled back) when a
    concurrent request got it first. The caller sets the claim's status and body on success."""
    claimed = IdempotentRequest(
        user_id=user.id,
        key=key,
        endpoint=endpoint or "",
        request_hash=fingerprint,
        status_code=0,
        body={},
    )
    db.session.add(claimed)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    return claimed


def retried(
    user: User,
    key: str,
    fingerprint: str,
    other: Callable[[], R],
    replay: Callable[[IdempotentRequest], R | Response] = replayed,
) -> R | Response | None:
    """The answer to a retry: the stored one (`replay`), or `other()` when the key was first
    used for a different request; None for a key not used before."""
    stored = stored_answer(user, key)
    return None if stored is None else _answer_to(stored, fingerprint, other, replay)


def claim_or_retried(
    user: User,
    key: str,
    fingerprint: str,
    other: Callable[[], R],
    busy: Callable[[], R],
    replay: Callable[[IdempotentRequest], R | Response] = replayed,
) -> IdempotentRequest | R | Response:
    """The key claimed for this request, or, when a concurrent request with it got there first,
    that request's answer (as `retried` says it), or `busy()` while it has none."""
    claimed = claim(user, key, request.endpoint, fingerprint)
    if claimed is not None:
        return claimed
    stored = stored_answer(user, key)
    if stored is None or stored.status_code == 0:
        return busy()
    return _answer_to(stored, fingerprint, other, replay)


def _answer_to(
    stored: IdempotentRequest,
    fingerprint: str,
    other: Callable[[], R],
    replay: Callable[[IdempotentRequest], R | Response],
) -> R | Response:
    return replay(stored) if same_request(stored, request.endpoint, fingerprint) else other()
