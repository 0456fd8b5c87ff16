"""Typed reading of JSON requests, shared by the API and the pages that take JSON (the offline
register): pydantic field types that run the services' rules and say their refusals in the
services' words, the strict request `Body`, and pydantic's errors as one message per dotted field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from typing import Annotated, Any, ClassVar

from annotated_types import GroupedMetadata
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from referrals.dates import DateRefused
from referrals.forms import CONTROL_CHARACTERS, has_control_characters
from referrals.ids import MAX_ID


def refuse(message: str, field: str | None = None) -> PydanticCustomError:
    """A rule's refusal, said in its own words (at the sibling `field` when it is about it)."""
    return PydanticCustomError("rule", message, {"field": field} if field else None)


def refuse_any(refused: dict[str, str]) -> None:
    """A cross-field rule's refusal ({field: message}, as the rules modules give them), said at
    its field."""
    for field, message in refused.items():
        raise refuse(message, field)


def integral(value: Any) -> Any:
    """JSON has one number type: 5.0 is the whole number 5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _no_control_characters(value: str) -> str:
    if has_control_characters(value):
        raise refuse("Must not contain control characters")
    return value


def rule(check: Callable[..., Any], *errors: type[Exception]) -> AfterValidator:
    """Run a service's cleaner on the value; what it refuses is said in its words."""

    def run(value: Any) -> Any:
        try:
            return check(value)
        except errors as error:
            raise refuse(str(error)) from error

    return AfterValidator(run)


def dated(check: Callable[[date, date], Any], *errors: type[Exception]) -> AfterValidator:
    """Run a date rule (`referrals.dates`) against the request's today; what it refuses is
    said in its words."""

    refused: tuple[type[Exception], ...] = (DateRefused, *errors)

    def run(value: date, info: ValidationInfo) -> date:
        try:
            check(value, (info.context or {})["today"])
        except refused as error:
            raise refuse(str(error)) from error
        return value

    return AfterValidator(run)


_C = "".join(f"\\x{ord(c):02x}" for c in sorted(CONTROL_CHARACTERS))


class Text(GroupedMetadata):
    """`Annotated[str, Text(n)]`: trimmed text of at most `n` characters, free of control
    characters; `required`: not empty once trimmed."""

    def __init__(self, max_length: int, *, required: bool = False) -> None:
        self.max_length, self.required = max_length, required

    def __iter__(self) -> Iterator[Any]:
        pattern = f"^[^{_C}]*[^\\s{_C}][^{_C}]*$" if self.required else f"^[^{_C}]*$"
        yield StringConstraints(
            strip_whitespace=True,
            max_length=self.max_length,
            min_length=1 if self.required else None,
        )
        yield AfterValidator(_no_control_characters)
        yield Field(json_schema_extra={"pattern": pattern})


Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(integral)]


def either(first: str, both: str, neither: str) -> AfterValidator:
    """For the later of two fields of which a body gives exactly one (`first`, the earlier, is
    the other; give the later `validate_default=True`): both is refused here, neither at
    `first`. Nothing is said when `first` was refused itself."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if first not in info.data:
            return value
        if info.data[first] is not None and value is not None:
            raise refuse(both)
        if info.data[first] is None and value is None:
            raise refuse(neither, first)
        return value

    check.either_first = first  # type: ignore[attr-defined]  # for the document: `Body`
    return AfterValidator(check)


Whole = Annotated[int, BeforeValidator(integral)]


def limits(low: int, high: int, **schema: Any) -> Any:
    """Bounds the document states for a value whose range a service rule checks, in its words."""
    return Field(json_schema_extra={"minimum": low, "maximum": high, **schema})


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, str):
        raise refuse("Must be true or false")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]


def _one_of_each_pair(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The document's word for an `either` pair: exactly one of the two, not null."""
    for later, field in model.model_fields.items():
        for check in field.metadata:
            first = getattr(getattr(check, "func", None), "either_first", None)
            if first is not None:
                schema["oneOf"] = [
                    {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                    for name in (first, later)
                ]


class Body(BaseModel):
    """A request body: unknown fields refused, types strict as JSON writes them."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        str_strip_whitespace=True,
        json_schema_extra=_one_of_each_pair,
    )
    # What to say when a required field (dotted name) is missing or empty.
    required: ClassVar[dict[str, str]] = {}


# Messages ---------------------------------------------------------------------------------

_INDEX = re.compile(r"\.\d+(?=\.)")  # entries.2.status is said as entries.status
_BY_TYPE = {
    "extra_forbidden": "Unknown field",
    "string_type": "Must be a string",
    "int_type": "Must be a whole number",
    "int_parsing": "Must be a whole number",
    "int_from_float": "Must be a whole number",
    "bool_type": "Must be true or false",
    "bool_parsing": "Must be true or false",
    "float_type": "Must be a number",
    "list_type": "Must be a list",
    "model_type": "Must be an object",
    "dict_type": "Must be an object",
    "model_attributes_type": "Must be an object",
    "set_type": "Must be a list",
}


def _message(error: Any, required: dict[str, str], field: str) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return required.get(field) or required.get(_INDEX.sub("", field)) or "Enter a value"
    if kind in ("enum", "literal_error"):
        return "Choose one of: " + str(ctx.get("expected", "")).replace("'", "")
    if kind.startswith(("date_", "date")):
        return "Enter a real date as YYYY-MM-DD, for example 2026-03-03"
    if kind == "string_too_long":
        return f"Must be {ctx['max_length']} characters or fewer"
    if kind == "too_long":
        return f"Must be {ctx['max_length']} items or fewer"
    if kind == "too_short":
        return f"Must have at least {ctx['min_length']} items"
    if kind == "greater_than_equal":
        return f"Must be {ctx['ge']} or more"
    if kind == "less_than_equal":
        return f"Must be {ctx['le']} or fewer"
    if kind == "rule":
        return str(error["msg"])
    return _BY_TYPE.get(kind) or str(error["msg"]).removeprefix("Value error, ")


def field_errors(error: ValidationError, required: dict[str, str]) -> dict[str, list[str]]:
    """Pydantic's errors as the service says them: one message per dotted field. An item of a
    list of values is reported at the list; an item of a list of objects keeps its index."""
    errors: dict[str, list[str]] = {}
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if item["type"] == "rule" and (item.get("ctx") or {}).get("field"):
            loc[-1:] = [item["ctx"]["field"]]
        if item["loc"] and isinstance(item["loc"][-1], int) and item["type"] not in _OBJECT_ERRORS:
            loc = loc[:-1]
        field = ".".join(loc) or "body"
        if field not in errors:
            errors[field] = [_message(item, required, field)]
    return errors


_OBJECT_ERRORS = frozenset({"model_type", "dict_type", "model_attributes_type"})
