"""The API's typed edge: one pydantic model per request body, query and answer, which checks the
request, shapes the answer and is the OpenAPI 3.1 document.

A view declares its operation with `@operation(...)`: the body and query models are read before
the view runs (a refusal is a 422 naming each field with the service's own messages), and the
document walks the URL map, so a route without an operation is visibly missing. The rules
themselves stay in the services: models call the same rule functions the pages do.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Annotated, Any, ClassVar, Generic, NamedTuple, TypeVar

from flask import Flask, Response, abort, current_app, jsonify, request, url_for
from flask_login import current_user
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import models_json_schema
from sqlalchemy import Select, func, select

from referrals import clock
from referrals.config import Defaults as Config
from referrals.extensions import db
from referrals.ids import MAX_ID
from referrals.problems import KINDS, PROBLEM_BASE, query_problem
from referrals.problems import validation_problem as body_problem
from referrals.security import ACCESS_ATTRIBUTE, PUBLIC
from referrals.typed import Body, Text, field_errors

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
API_PREFIX = "/api/v1"
OPENAPI_ATTRIBUTE = "openapi_operation"


# Field types in the document -------------------------------------------------------------


def text_schema(max_length: int, *, required: bool = False) -> dict[str, Any]:
    """`Text`'s JSON Schema, for rules that tie fields together (`anyOf`)."""
    return TypeAdapter(Annotated[str, Text(max_length, required=required)]).json_schema()


# Formats the document names for text whose rules go beyond its JSON type, so that a client can
# tell (and make) a value the service accepts. Each is checked by the service's own rule.
FORMATS = {
    "nhs-number": ("10 digits, the last a modulus 11 check digit; spaces allowed", "943 476 5919"),
    "uk-postcode": ("A UK postcode, like GL1 2AB; any case, spaces optional", "GL1 2AB"),
    "email": ("An email address", "sam@example.org"),
    "uk-phone": ("A UK phone number: 10 or 11 digits starting 0, or +44", "01632 960 001"),
    "past-date": ("A date (YYYY-MM-DD) from 2000-01-01 to today", "2026-03-03"),
    "date-of-birth": ("A date (YYYY-MM-DD) within the last 120 years, not later", "1961-04-12"),
    "term-date": ("A date (YYYY-MM-DD) from 2000-01-01 to 10 years from today", "2026-04-01"),
    "month": ("A calendar month, YYYY-MM, from 2000-01", "2026-03"),
    "past-month": ("A finished calendar month, YYYY-MM, from 2000-01", "2026-03"),
}


def format_schema(name: str) -> dict[str, Any]:
    """The schema keywords of a value in one of `FORMATS`."""
    description, example = FORMATS[name]
    return {"format": name, "description": description, "examples": [example]}


def formatted(name: str) -> Any:
    """The value's format in the document (one of `FORMATS`)."""
    return Field(json_schema_extra=format_schema(name))


class Query(BaseModel):
    """Query parameters: unknown ones ignored, an empty one is as if absent."""

    model_config = ConfigDict(extra="ignore")
    lists: ClassVar[frozenset[str]] = frozenset()


PAGE_MAX = 10**9


class PageQuery(Query):
    page: Annotated[int, Field(ge=1, le=PAGE_MAX)] = 1
    per_page: Annotated[int, Field(ge=1, le=Config.API_MAX_PER_PAGE)] = 25


class Answer(BaseModel):
    """An answer: read from the records' attributes, written as JSON. A model whose `source`
    is set reads such a record with its own `read(record, context)` instead."""

    model_config = ConfigDict(from_attributes=True)
    source: ClassVar[type | tuple[type, ...] | None] = None

    @model_validator(mode="before")
    @classmethod
    def _read_source(cls, value: Any, info: ValidationInfo) -> Any:
        if cls.source is not None and isinstance(value, cls.source):
            return cls.read(value, info.context or {})
        return value

    @classmethod
    def read(cls, record: Any, context: dict[str, Any]) -> Any:
        return record


def columns(record: type, names: str) -> dict[str, Any]:
    """Answer fields typed as the record's mapped columns (`Mapped[T]` is `T`), named in this
    order (separated by spaces): an answer names the columns it shows, not their types."""
    fields = {}
    for name in names.split():
        owner = next(k for k in record.__mro__ if name in vars(k).get("__annotations__", {}))
        mapped = _hints({name: vars(owner)["__annotations__"][name]}, owner)[name]
        fields[name] = typing.get_args(mapped)[0]
    return fields


class Page(Answer, Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int


class Problem(BaseModel):
    type: str = Field(description="A page explaining the problem, or about:blank")
    title: str
    status: int
    detail: str
    errors: dict[str, list[str]] | None = Field(
        default=None, description="Field (dotted for nested fields) or parameter to messages"
    )


def dump(model: type[BaseModel], value: Any, **context: Any) -> dict[str, Any]:
    """The answer as JSON. A field the model's reader leaves out (one the caller may not see)
    is not written."""
    shown = model.model_validate(value, context=context)
    return shown.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Shown(NamedTuple):
    """A view's answer with what its model's reader needs beside the viewer."""

    value: Any
    context: dict[str, Any]


def scoped(get: Callable[[int, Any], T]) -> Callable[..., T]:
    """An `@operation`'s `load`: the area's one loader for the record the path names, as the
    caller may see it. Ids beyond the database's integer range cannot exist (and SQLite
    cannot compare them): 404 before the query."""

    def load(**path: int) -> T:
        (record_id,) = path.values()
        if record_id > MAX_ID:
            abort(404)
        return get(record_id, current_user)

    return load


def paginate(query: Select[Any], paging: PageQuery, *, rows: bool = False) -> dict[str, Any]:
    """A page of `query`'s records (or of its `rows`, when it selects more than a record), for
    the operation's `Page` model to write."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    window = query.limit(paging.per_page).offset((paging.page - 1) * paging.per_page)
    found = db.session.execute(window).all() if rows else db.session.scalars(window).all()
    return {"items": found, "page": paging.page, "per_page": paging.per_page, "total": total or 0}


# Reading requests -------------------------------------------------------------------------


def json_body() -> Any:
    """The parsed JSON body, whatever its shape; a missing or unreadable body is a 422."""
    if not request.is_json:
        raise body_problem({"body": ["Send a JSON object as application/json"]})
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        payload = None
    if payload is None:
        raise body_problem({"body": ["Send a JSON object"]})
    return payload


def read_body(model: type[Body], **context: Any) -> Any:
    if not isinstance(json_body(), dict):
        raise body_problem({"body": ["Send a JSON object"]})
    try:
        return model.model_validate_json(request.get_data(), context=context)
    except ValidationError as error:
        raise body_problem(field_errors(error, model.required)) from error


def read_query(model: type[Query]) -> Any:
    args = {
        name: request.args.getlist(name) if name in model.lists else value
        for name, value in request.args.items()
        if value != ""
    }
    try:
        return model.model_validate(args)
    except ValidationError as error:
        raise query_problem(field_errors(error, {})) from error


# Operations -------------------------------------------------------------------------------


def _problem_responses(
    problems: Iterable[int | str], refusal: tuple[int, str, str | None] | None
) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    kinds = [(KINDS[item][0], item) for item in problems if isinstance(item, str)]
    for status, kind in [*kinds, *([refusal[:2]] if refusal else [])]:
        by_status.setdefault(status, []).append(f"[{KINDS[kind][1]}]({PROBLEM_BASE}{kind})")
    for status in (item for item in problems if isinstance(item, int)):
        by_status.setdefault(status, [])
    plain = {401: "No valid bearer token (never for an operation open to all)"}
    plain |= {403: "The caller's role may not do this"}
    plain |= {404: "Unknown, or outside the caller's scope"}
    plain |= {429: "Too many requests: wait as long as `Retry-After` says, then try again"}
    wait = {"description": "Seconds to wait", "schema": {"type": "string"}}
    return {
        str(status): {
            "description": "; ".join(dict.fromkeys(kinds)) or plain.get(status, "Problem details"),
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        | ({"headers": {"Retry-After": wait}} if status == 429 else {})
        for status, kinds in sorted(by_status.items())
    }


def _described(view: Callable[..., Any]) -> dict[str, str]:
    """An operation's summary (the docstring's first paragraph), description (the rest) and
    roles (its last paragraph, `Who may call it: ...`)."""
    text = inspect.cleandoc(view.__doc__ or "")
    head, _, rest = text.partition("\n\n")
    roles = " ".join(text.partition("Who may call it: ")[2].split()).rstrip(".")
    return {"summary": " ".join(head.split()), "description": rest, "x-roles": roles}


def operation(
    *tags: str,
    answer: Any = None,
    status: int = 200,
    others: Mapping[int, str] | None = None,
    problems: Iterable[int | str] = (),
    files: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    load: Callable[..., Any] | None = None,
    parameters: Sequence[dict[str, Any]] = (),
    refusal: tuple[int, str, str | None] | None = None,
    created: str | None = None,
) -> Callable[[F], F]:
    """Declare a view's operation; its docstring gives the summary, description and roles.
    `load` finds the record its path names (404 first, before the body is read) and is passed
    first; the models the view's `body` and `query` parameters are annotated with are read and
    passed by those names; `answer` is the model of its success (`status`, and any `others`
    with their descriptions), which writes what the view returns (a record, or `Shown`) for the
    caller (`viewer` in its context); `created` is the endpoint of a record the view creates
    (a 201 with its `Location`); an operation with a body commits its write after the answer is
    read. `problems` the problem kinds (or plain statuses) it may answer with, 401, 403 and
    429 always listed; `refusal` the status, kind and default field of a rule's refusal (see
    the handlers in `referrals.api`)."""
    status = 201 if created is not None else status
    success: dict[str, Any] = {"description": "Done"}
    if files:
        success["content"] = {m: {"schema": {"type": "string"}} for m in files}
        success["description"] = " ".join(files.values())
    if headers is None and status == 201:
        headers = {"Location": "The new record's URL"}
    if headers:
        success["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    successes = {str(status): success}
    successes |= {str(code): {"description": text} for code, text in (others or {}).items()}

    def decorate(view: F) -> F:
        hints = _request_models(view)
        body: type[Body] | None = hints.get("body")
        query: type[Query] | None = hints.get("query")
        listed = [*problems, 401, 403, 429, *([404] if load else [])]
        listed += ["validation", "conflict"] if body else []  # a write may meet another
        listed += ["invalid-query"] if query else []

        @functools.wraps(view)
        def run(**kwargs: Any) -> Any:
            found = (load(**kwargs),) if load is not None else ()
            kwargs = {} if load is not None else kwargs
            if query is not None:
                kwargs["query"] = read_query(query)
            if body is not None:
                kwargs["body"] = read_body(body, today=clock.today())
            result = view(*found, **kwargs)
            response = result
            if answer is not None and not isinstance(result, Response):
                value, context = result if isinstance(result, Shown) else (result, {})
                # Read before the commit, which expires what was read.
                response = jsonify(dump(answer, value, viewer=current_user, **context))
                response.status_code = status
                if created is not None:
                    response.headers["Location"] = _url_of(created, value)
            if body is not None:
                db.session.commit()
            return response

        described = _described(view)
        responses = successes | _problem_responses(listed, refusal)
        if not files:
            responses |= {str(status): success | {"description": described["summary"]}}
        op: dict[str, Any] = {
            "tags": list(tags),
            "x-models": {"body": body, "query": query, "answer": answer},
            "x-parameters": list(parameters),
            "x-refusal": refusal or (409, "course-rule", None),
        }
        op |= described | {"responses": responses, "operationId": view.__name__}
        setattr(run, OPENAPI_ATTRIBUTE, op)
        return run  # type: ignore[return-value]

    return decorate


def _request_models(view: Callable[..., Any]) -> dict[str, Any]:
    """The models a view's `body` and `query` parameters are annotated with."""
    wanted = {k: v for k, v in view.__annotations__.items() if k in ("body", "query")}
    return _hints(wanted, view)


def _hints(annotations: dict[str, Any], owner: Any) -> Any:
    """The annotations resolved in the module `owner` was written in."""
    module = vars(sys.modules[owner.__module__])
    return typing.get_type_hints(SimpleNamespace(__annotations__=annotations, __globals__=module))


def _url_of(endpoint: str, record: Any) -> str:
    """The URL of `record` at `endpoint`, whose one path argument is the record's id."""
    (argument,) = next(current_app.url_map.iter_rules(endpoint)).arguments
    return url_for(endpoint, **{argument: record.id})


# The document -----------------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")


def openapi_path(rule: str) -> str:
    """`/api/v1/referrals/<int:referral_id>` -> `/referrals/{referral_id}`."""
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule[len(API_PREFIX) :])


def _query_parameters(model: type[Query], schema: dict[str, Any]) -> list[dict[str, Any]]:
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "schema": prop}
        if "description" in prop:
            parameter["description"] = prop["description"]
        if name in model.lists:
            parameter |= {"style": "form", "explode": True}
        parameters.append(parameter)
    return parameters


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    return [
        {
            "name": match.group("name"),
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}
            if match.group("conv") == "int"
            else {"type": "string"},
            "example": 1,
        }
        for match in _CONVERTER.finditer(rule)
    ]


def _operations(app: Flask) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for url in app.url_map.iter_rules():
        view = app.view_functions[url.endpoint]
        op = getattr(view, OPENAPI_ATTRIBUTE, None)
        if url.rule.startswith(API_PREFIX) and op is not None:
            # An operation open to all (`@public`) asks for no token.
            op = op | ({"security": []} if getattr(view, ACCESS_ATTRIBUTE, None) == PUBLIC else {})
            for method in sorted((url.methods or set()) - {"HEAD", "OPTIONS"}):
                yield url.rule, method.lower(), op


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document: every operation, its models as components."""
    wanted: list[tuple[Any, Any]] = [(Problem, "serialization")]
    for _rule, _method, op in _operations(app):
        models = op["x-models"]
        wanted += [(models[k], "validation") for k in ("body", "query") if models[k]]
        if models["answer"] is not None:
            wanted.append((models["answer"], "serialization"))
    refs, defs = models_json_schema(
        list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in _operations(app):
        models = op["x-models"]
        entry = {k: v for k, v in op.items() if k not in ("x-models", "x-refusal")}
        entry["parameters"] = _path_parameters(path)
        if models["query"] is not None:
            name = refs[(models["query"], "validation")]["$ref"].rpartition("/")[2]
            query_schema = defs["$defs"][name]
            entry["parameters"] += _query_parameters(models["query"], query_schema)
        entry["parameters"] += entry.pop("x-parameters")
        if models["body"] is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(models["body"], "validation")]}},
            }
        if models["answer"] is not None:
            content = {"application/json": {"schema": refs[(models["answer"], "serialization")]}}
            entry["responses"] = {
                code: response | {"content": content} if code.startswith("2") else response
                for code, response in entry["responses"].items()
            }
        paths.setdefault(openapi_path(path), {})[method] = entry
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{app.config['SERVICE_NAME']} API",
            "version": "1.0.0",
            "description": (
                "JSON API for referrals, courses, registers, wellbeing and KPI returns. "
                "Authenticate with `Authorization: Bearer <token>` (`flask users token EMAIL`). "
                "Errors are application/problem+json; each problem's `type` is a page here "
                "explaining it. Lists are paginated with `page` and `per_page` (at most "
                f"{Config.API_MAX_PER_PAGE})."
            ),
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(defs.get("$defs", {}).items())),
        },
    }
    return document
