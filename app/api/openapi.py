"""Schema-first API operations: one decorator validates input with pydantic models and records
the operation; `build_spec` turns the same models into the OpenAPI 3.1 document.

Why in-house rather than flask-smorest / APIFlask / spectree / flask-openapi3: see
docs/architecture.md §2 ("JSON API"). In short: pydantic v2 models, RFC 9457 errors,
our pagination helper and a UI served from `static/` with no CDN, in code we control.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from app.api.pagination import PAGINATION_DESCRIPTION, RenderedPage, add_page_headers, page_body, page_model
from app.auth.guards import NO_API_KEYS_ATTR, authorize, refuse_api_key
from app.core.http_cache import if_match_holds, strong_etag
from app.core.input import MAX_ID, InvalidJSON, load_json
from app.core.pagination import Page
from app.core.ratelimit import API_KEY_BUDGET_ATTR
from app.errors import PreconditionFailed, ValidationFailed

OPERATION_ATTR = "__api_operation__"
VIEW_ATTR = "__api_view__"  # the undecorated view (kept through later wrappers, e.g. route limits)
REF_TEMPLATE = "#/components/schemas/{model}"
# Writes that honour If-Match against the ETag of the GET of the same URL.
CONDITIONAL_WRITES = frozenset({"PATCH", "DELETE"})
# Responses that carry the ETag of the resource's representation (a PATCH answers with it).
ETAG_METHODS = frozenset({"GET", "PATCH"})
CONDITIONAL_READ_HEADERS = ("If-None-Match", "If-Modified-Since")


@dataclass(frozen=True)
class Operation:
    method: str
    summary: str
    tags: tuple[str, ...]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    paginated: bool = False
    errors: tuple[int, ...] = ()
    auth: bool = False
    permission: str | None = None
    # Personal API keys: accepted wherever a token is, unless the view is `no_api_keys`.
    api_keys: bool = True
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _field_errors(error: ValidationError, source: str) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in item["loc"]) or source,
            "location": source,
            "message": item["msg"],
            "type": item["type"],
        }
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def _parse(model: type[BaseModel], data: Any, source: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValidationFailed(errors=_field_errors(error, source)) from None


def _json_body() -> Any:
    """The body through the edge's JSON loader (depth, NUL and surrogates refused)."""
    if request.is_json:
        try:
            return load_json(request.get_data())
        except InvalidJSON as error:
            raise ValidationFailed("The request body is not acceptable JSON.", errors=[error.field_error()]) from None
    raise ValidationFailed(
        "The request body must be a JSON document (Content-Type: application/json).",
        errors=[{"field": "body", "location": "body", "message": "invalid or missing JSON", "type": "json_invalid"}],
    )


def api_operation(
    bp: Blueprint,
    rule: str,
    *,
    method: str = "GET",
    summary: str,
    tags: tuple[str, ...] = (),
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    paginated: bool = False,
    errors: tuple[int, ...] = (),
    auth: bool = False,
    permission: str | None = None,
) -> Callable:
    """Register a view on `bp` that gets validated `query=`/`body=` models and returns a
    `response` model (or a `Page` of objects when `paginated`).

    `auth=True` needs a bearer token; `permission="users:read"` also needs that permission.
    Both are checked before the input is parsed (401/403 before 422). The bearer may be a
    personal API key (app.auth.guards.authorize: the permission, or on `auth=True` alone the
    own-data scope `self:read`/`self:write`), unless the view is decorated `no_api_keys`.
    """
    operation = Operation(
        method=method.upper(),
        summary=summary,
        tags=tags,
        query=query,
        body=body,
        response=response,
        status=status,
        paginated=paginated,
        errors=errors,
        auth=auth or permission is not None,
        permission=permission,
    )

    def decorator(view: Callable[..., Any]) -> Callable[..., Response]:
        refuses_keys = getattr(view, NO_API_KEYS_ATTR, False)

        @wraps(view)
        def endpoint(**path_args: Any) -> Response:
            if refuses_keys:
                refuse_api_key()
            if operation.auth:
                authorize(operation.permission)
            if operation.method in CONDITIONAL_WRITES and "If-Match" in request.headers:
                _check_if_match()
            if query is not None:
                path_args["query"] = _parse(query, request.args.to_dict(), "query")
            if body is not None:
                path_args["body"] = _parse(body, _json_body(), "body")
            result = view(**path_args)
            if isinstance(result, Response):
                return result
            return _serialize(result, operation)

        described = replace_description(operation, view.__doc__)
        setattr(endpoint, OPERATION_ATTR, replace(described, api_keys=not refuses_keys) if refuses_keys else described)
        setattr(endpoint, VIEW_ATTR, view)
        if operation.auth and not refuses_keys:
            # A key's requests here count against the key's own budget (app.core.ratelimit).
            setattr(endpoint, API_KEY_BUDGET_ATTR, True)
        bp.add_url_rule(rule, view.__name__, endpoint, methods=[operation.method])
        return endpoint

    return decorator


def replace_description(operation: Operation, doc: str | None) -> Operation:
    return replace(operation, description=(doc or "").strip() or None)


def _body(result: Any, operation: Operation) -> Any:
    """The response document: a model instance (a `<Item>Page` for lists), or raw JSON."""
    if operation.paginated:
        if not isinstance(result, Page):
            raise TypeError("a paginated operation must return a Page")
        return page_body(result, operation.response)
    model = operation.response
    if model is not None and not isinstance(result, model):
        result = model.model_validate(result, from_attributes=True)
    return result


def _etag_exclude(model: type[BaseModel] | None, paginated: bool) -> Any:
    """Fields left out of the ETag: an item model's ETAG_EXCLUDE (time-limited links, which
    change on every request while the resource itself does not)."""
    fields = getattr(model, "ETAG_EXCLUDE", None)
    if not fields:
        return None
    return {"items": {"__all__": set(fields)}} if paginated else set(fields)


def _etag_of(body: Any, payload: bytes, model: type[BaseModel] | None, paginated: bool) -> str:
    exclude = _etag_exclude(model, paginated) if isinstance(body, BaseModel) else None
    if exclude:
        payload = body.__pydantic_serializer__.to_json(body, exclude=exclude)
    return strong_etag(payload)


def representation_etag(body: Any, payload: bytes, operation: Operation) -> str:
    """The ETag of a representation: `strong_etag` of its JSON, less its ETAG_EXCLUDE fields.
    GET responses, PATCH responses and If-Match checks all get their ETag here."""
    return _etag_of(body, payload, operation.response, operation.paginated)


def render_page(page: Page[Any], item_model: type[BaseModel]) -> RenderedPage:
    """`page` as the response a paginated operation answering `item_model` sends: its JSON
    document and ETag computed now, so a cache can keep the result and a hit sends the stored
    bytes (a view may return a `RenderedPage` instead of a `Page`)."""
    body = page_body(page, item_model)
    payload = _json(body)
    return RenderedPage(
        items=(),
        page=page.page,
        per_page=page.per_page,
        total=page.total,
        payload=payload,
        etag=_etag_of(body, payload, item_model, paginated=True),
    )


def _json(body: Any) -> bytes:
    if isinstance(body, BaseModel):
        return body.__pydantic_serializer__.to_json(body)
    if isinstance(body, bytes):
        return body
    return body.encode() if isinstance(body, str) else orjson.dumps(body)


def _serialize(result: Any, operation: Operation) -> Response:
    if operation.status == 204:
        return Response(status=204)
    if isinstance(result, RenderedPage):  # serialised already (cached): send its bytes as they are
        body, payload = None, result.payload
    else:
        body = _body(result, operation)
        payload = _json(body)
    response = Response(payload, status=operation.status, mimetype="application/json")
    if operation.paginated:
        add_page_headers(response, result)
    if operation.method in ETAG_METHODS and response.status_code == 200:
        etag = result.etag if body is None else representation_etag(body, payload, operation)
        response.set_etag(etag)
        updated_at = None if operation.paginated else getattr(body, "updated_at", None)
        if updated_at is not None:
            response.last_modified = updated_at
        if operation.method == "GET" and any(name in request.headers for name in CONDITIONAL_READ_HEADERS):
            response.make_conditional(request)  # If-None-Match (weak comparison), If-Modified-Since: 304
    return response


def current_etag() -> str | None:
    """The ETag a GET of this request's URL would carry now; None if the URL has no GET operation.

    Runs the GET operation's view without its permission check: the caller already passed the
    stricter guard of the write it is making. A missing resource raises NotFound (404), as the
    same request without If-Match would answer (RFC 9110 §13.2.1).
    """
    try:
        endpoint, args = current_app.create_url_adapter(request).match(request.path, method="GET")
    except HTTPException:
        return None
    view = current_app.view_functions.get(endpoint)
    operation: Operation | None = getattr(view, OPERATION_ATTR, None)
    if operation is None or operation.status == 204:
        return None
    if operation.query is not None:
        args["query"] = _parse(operation.query, {}, "query")
    result = getattr(view, VIEW_ATTR)(**args)
    if isinstance(result, RenderedPage):
        return result.etag
    body = _body(result, operation)
    return representation_etag(body, _json(body), operation)


def _check_if_match() -> None:
    """Lost-update protection: refuse a write whose If-Match names a version that is gone."""
    if not if_match_holds(current_etag()):
        raise PreconditionFailed(
            "The resource has changed since you read it: its ETag no longer matches If-Match. "
            "GET it again, reapply your change and retry."
        )


# OpenAPI document ------------------------------------------------------------------------


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every API error is answered."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None


class FieldError(BaseModel):
    field: str
    location: str
    message: str
    type: str


class ValidationProblem(ProblemDetails):
    errors: list[FieldError]


ERROR_DESCRIPTIONS = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed: the resource changed since the ETag given in If-Match",
    413: "Body too large",
    422: "Validation failed",
    429: "Rate limited",
    500: "Server error",
    503: "Busy: too many sign-ins being checked at this moment; retry after Retry-After seconds",
}


_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
# What each converter matches (app.core.input bounds ids to the Integer column's range; any
# other text is refused at the edge if it carries a NUL byte).
_CONVERTER_SCHEMAS = {
    "int": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    "float": {"type": "number"},
}
_TEXT_PARAMETER = {"type": "string", "pattern": "^[^/\\x00]+$"}


def _openapi_path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """`/items/<int:item_id>` becomes `/items/{item_id}` plus its path parameter."""
    parameters = [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": dict(_CONVERTER_SCHEMAS.get(match["converter"] or "", _TEXT_PARAMETER)),
        }
        for match in _RULE_ARGUMENT.finditer(rule.rule)
    ]
    return _RULE_ARGUMENT.sub(lambda m: "{" + m["name"] + "}", rule.rule), parameters


def _collect(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _query_parameters(schemas: dict[str, Any], model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


IF_NONE_MATCH_PARAMETER = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags of copies you hold; a match (weak comparison) answers 304 with no body.",
    "schema": {"type": "string"},
}
IF_MATCH_PARAMETER = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "The ETag from your last GET (or `*`): the write happens only if the resource still has it, "
    "else 412. Without it, the write is unconditional.",
    "schema": {"type": "string"},
}


def _validator_headers(operation: Operation) -> dict[str, Any]:
    headers = {
        "ETag": {
            "description": "Strong ETag of this representation; the same tag a GET of the resource returns",
            "schema": {"type": "string"},
        }
    }
    if not operation.paginated and operation.response is not None and "updated_at" in operation.response.model_fields:
        headers["Last-Modified"] = {"description": "When the resource last changed", "schema": {"type": "string"}}
    return headers


def ordered_tags(
    used: set[str], first: tuple[str, ...] = (), descriptions: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """The document's `tags` (renderers list the sections in this order): `first` as given,
    then the others alphabetically; only tags some operation carries, each with its description."""
    names = [name for name in first if name in used] + sorted(used - set(first))
    descriptions = descriptions or {}
    return [{"name": name, **({"description": descriptions[name]} if name in descriptions else {})} for name in names]


BEARER_DESCRIPTION = (
    "An access token from POST /api/v1/auth/token, or a personal API key (`hth_<prefix>_<secret>`, "
    "created with POST /api/v1/api-keys or on /account/security). A key acts with the permissions its "
    "scopes and its owner both hold; `x-api-key-scope` on each operation names the scope it needs "
    "(`self:read` / `self:write`: your own data), null where keys are refused (403 api-key-not-allowed)."
)


def own_data_scope(method: str) -> str:
    """The scope an API key needs on an operation that only needs someone signed in."""
    return "self:read" if method in ("GET", "HEAD") else "self:write"


def build_spec(
    app: Flask,
    title: str,
    version: str,
    *,
    first_tags: tuple[str, ...] = (),
    tag_descriptions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every operation registered with `api_operation`; its tags
    in the order of `ordered_tags`."""
    schemas: dict[str, Any] = {}
    problem_ref = _collect(schemas, ProblemDetails)
    validation_ref = _collect(schemas, ValidationProblem)
    paths: dict[str, dict[str, Any]] = {}
    operations = [
        (rule, operation)
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
        if (operation := getattr(app.view_functions.get(rule.endpoint), OPERATION_ATTR, None)) is not None
    ]
    readable = {rule.rule for rule, operation in operations if operation.method == "GET" and operation.status != 204}
    used_tags = {tag for _, operation in operations for tag in operation.tags}
    for rule, operation in operations:
        path, parameters = _openapi_path(rule)
        if operation.query is not None:
            parameters += _query_parameters(schemas, operation.query)
        conditional_write = operation.method in CONDITIONAL_WRITES and rule.rule in readable
        responses: dict[str, Any] = {}
        if operation.status == 204:
            responses["204"] = {"description": "No content"}
        else:
            model = page_model(operation.response) if operation.paginated else operation.response
            content = {"application/json": {"schema": _collect(schemas, model)}} if model else {}
            responses[str(operation.status)] = {"description": "Success", "content": content}
            headers: dict[str, Any] = {}
            if operation.paginated:
                headers |= {
                    "Link": {"description": "RFC 8288 links: first, prev, next, last", "schema": {"type": "string"}},
                    "X-Total-Count": {"description": "Total number of items", "schema": {"type": "integer"}},
                }
            if operation.method in ETAG_METHODS and operation.status == 200:
                headers |= _validator_headers(operation)
            if headers:
                responses[str(operation.status)]["headers"] = headers
        if operation.method == "GET" and operation.status == 200:
            parameters.append(IF_NONE_MATCH_PARAMETER)
            responses["304"] = {"description": "Not modified: If-None-Match names the current ETag"}
        if conditional_write:
            parameters.append(IF_MATCH_PARAMETER)
        error_codes = set(operation.errors) | {429, 500}
        if conditional_write:
            error_codes.add(412)
        if operation.auth:
            # 403 without a permission too: an API key may lack the own-data scope.
            error_codes |= {401, 403}
        # Any request can meet the edge's refusal of hostile input (a NUL byte in a parameter
        # or header), and a path parameter can name what does not exist (ids beyond the column).
        error_codes.add(422)
        if "<" in rule.rule:
            error_codes.add(404)
        for code in sorted(error_codes):
            ref = validation_ref if code == 422 else problem_ref
            responses[str(code)] = {
                "description": ERROR_DESCRIPTIONS.get(code, "Error"),
                "content": {"application/problem+json": {"schema": ref}},
            }
        entry: dict[str, Any] = {
            "operationId": rule.endpoint.replace(".", "_"),
            "summary": operation.summary,
            "tags": list(operation.tags),
            "responses": responses,
        }
        if operation.description or operation.paginated:
            entry["description"] = "\n\n".join(
                filter(None, [operation.description, PAGINATION_DESCRIPTION if operation.paginated else None])
            )
        if parameters:
            entry["parameters"] = parameters
        if operation.auth:
            entry["security"] = [{"bearerAuth": []}]
            if operation.permission:
                entry["x-required-permission"] = operation.permission
            entry["x-api-key-scope"] = operation.permission or own_data_scope(operation.method)
        if not operation.api_keys:
            entry["x-api-key-scope"] = None  # refused to personal API keys
        if operation.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _collect(schemas, operation.body)}},
            }
        paths.setdefault(path, {})[operation.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Hearth's versioned JSON API. Errors are RFC 9457 problem+json documents.",
        },
        "servers": [{"url": "/"}],
        "tags": ordered_tags(used_tags, first_tags, tag_descriptions),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": BEARER_DESCRIPTION,
                }
            },
        },
    }
