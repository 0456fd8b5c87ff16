"""Page-numbered lists for HTML pages: one COUNT and one bounded SELECT per page.

Long lists of wide rows (the caseload, a practice's referrals) page by key instead: the
ordered query selects only the records' keys, which is cheap to sort and skip however deep
the page, and the page's 25 records are then loaded, with what they show, by key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import request
from sqlalchemy import Select, func, select

from referrals.extensions import db

MAX_PAGE = 100_000


@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)

    @classmethod
    def from_request(
        cls,
        query: Select[Any],
        *,
        per_page: int = 25,
        scalars: bool = True,
    ) -> Page:
        raw = request.args.get("page", "1")
        page = int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_PAGE else 1
        total = (
            db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            or 0
        )
        pages = max(1, -(-total // per_page))
        page = min(page, pages)
        bounded = query.limit(per_page).offset((page - 1) * per_page)
        result = db.session.execute(bounded)
        items = list(result.scalars().all() if scalars else result.all())
        return cls(items=items, page=page, per_page=per_page, total=total)

    @classmethod
    def of_keys(
        cls,
        query: Select[Any],
        key: Any,
        load: Callable[[Sequence[Any]], Sequence[Any]],
        *,
        per_page: int = 25,
    ) -> Page:
        """The requested page of `query` found by its `key` column alone, then its records
        fetched by `load(keys)`, which returns them in the keys' order (see `by_key`)."""
        page = cls.from_request(query.with_only_columns(key), per_page=per_page)
        page.items = list(load(page.items)) if page.items else []
        return page


def by_key(keys: Sequence[Any], records: Sequence[Any], key: str = "id") -> list[Any]:
    """`records` in the order of `keys` (a SQL IN list comes back in any order)."""
    found = {getattr(record, key): record for record in records}
    return [found[k] for k in keys if k in found]
