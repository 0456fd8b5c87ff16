"""Who may see which contracts and returns: commissioners their own, admins all.

A commissioner's organisation is the contract's commissioner. The all-activity return (no
contract) is for admins only. Anything outside a user's scope is a 404.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, select, true
from sqlalchemy.orm import joinedload

from referrals.auth.models import Role
from referrals.courses.models import Contract
from referrals.extensions import db
from referrals.reports.models import KpiReturn
from referrals.reports.periods import FIRST


def contract_scope(user: Any) -> Any:
    """A WHERE clause on Contract for the contracts the user may report on."""
    if user.role == Role.ADMIN:
        return true()
    if user.role == Role.COMMISSIONER and user.organisation_id is not None:
        return Contract.commissioner_id == user.organisation_id
    return false()


def contracts_for(user: Any) -> Select[Any]:
    """The user's contracts, by name."""
    return select(Contract).where(contract_scope(user)).order_by(Contract.name, Contract.id)


def in_bounds() -> ColumnElement[bool]:
    """Returns for months the service accepts. One stored for an earlier month (made before
    the bounds, referrals.dates) is never read as a period, so never shown or listed."""
    return KpiReturn.period >= FIRST.key


def return_scope(user: Any) -> Any:
    """A WHERE clause on KpiReturn: admins every return, commissioners their contracts' only."""
    if user.role == Role.ADMIN:
        return in_bounds()
    if user.role == Role.COMMISSIONER and user.organisation_id is not None:
        # NULL contract_id (all activity) never matches IN, so it stays out of scope.
        return and_(
            in_bounds(),
            KpiReturn.contract_id.in_(
                select(Contract.id).where(Contract.commissioner_id == user.organisation_id)
            ),
        )
    return false()


def scoped_returns(user: Any) -> Select[Any]:
    """The returns the user may see, with their contracts (the scope's name)."""
    return select(KpiReturn).where(return_scope(user)).options(joinedload(KpiReturn.contract))


def get_return_or_404(return_id: int, user: Any) -> KpiReturn:
    return db.first_or_404(scoped_returns(user).where(KpiReturn.id == return_id))
