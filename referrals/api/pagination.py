"""`?page=&per_page=` pagination returning `{items, page, per_page, total}`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request
from sqlalchemy import Select, func, select

from referrals.api.openapi import PAGE_MAX
from referrals.api.problems import query_problem
from referrals.extensions import db


def page_args() -> tuple[int, int]:
    """Read and check the paging arguments; bad values are a 422, never a crash."""
    errors: dict[str, list[str]] = {}
    limit = current_app.config["API_MAX_PER_PAGE"]
    page = _positive_int("page", 1, errors)
    per_page = _positive_int("per_page", 25, errors)
    if "per_page" not in errors and per_page > limit:
        errors["per_page"] = [f"per_page must be {limit} or fewer"]
    if errors:
        raise query_problem(errors)
    return page, per_page


def _positive_int(name: str, default: int, errors: dict[str, list[str]]) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 1 <= int(raw) <= PAGE_MAX:
        errors[name] = [f"{name} must be a whole number of 1 or more"]
        return default
    return int(raw)


def paginate(query: Select[Any], serialise: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    page, per_page = page_args()
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return {
        "items": [serialise(row) for row in rows],
        "page": page,
        "per_page": per_page,
        "total": total or 0,
    }
