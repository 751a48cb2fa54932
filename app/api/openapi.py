"""Schema-first API operations: one decorator validates input with pydantic models and records
the operation; `build_spec` turns the same models into the OpenAPI 3.1 document.

Why in-house rather than flask-smorest / APIFlask / spectree / flask-openapi3: see
docs/architecture.md §2 ("JSON API"). In short: pydantic v2 models, RFC 9457 errors,
our pagination helper and a UI served from `static/` with no CDN, in ~200 lines we control.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.routing import Rule

from app.core.repository import Page
from app.errors import ValidationFailed

OPERATION_ATTR = "__api_operation__"
REF_TEMPLATE = "#/components/schemas/{model}"


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
    data = request.get_json(silent=True)
    if data is None:
        raise ValidationFailed(
            "The request body must be a JSON document (Content-Type: application/json).",
            errors=[
                {"field": "body", "location": "body", "message": "invalid or missing JSON", "type": "json_invalid"}
            ],
        )
    return data


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
    Both are checked before the input is parsed (401/403 before 422).
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
        @wraps(view)
        def endpoint(**path_args: Any) -> Response:
            if operation.auth:
                from app.auth.guards import require_actor

                require_actor(operation.permission)
            if query is not None:
                path_args["query"] = _parse(query, request.args.to_dict(), "query")
            if body is not None:
                path_args["body"] = _parse(body, _json_body(), "body")
            result = view(**path_args)
            if isinstance(result, Response):
                return result
            return _serialize(result, operation)

        setattr(endpoint, OPERATION_ATTR, replace_description(operation, view.__doc__))
        bp.add_url_rule(rule, view.__name__, endpoint, methods=[operation.method])
        return endpoint

    return decorator


def replace_description(operation: Operation, doc: str | None) -> Operation:
    from dataclasses import replace

    return replace(operation, description=(doc or "").strip() or None)


def _serialize(result: Any, operation: Operation) -> Response:
    if operation.status == 204:
        return Response(status=204)
    if operation.paginated:
        from app.api.pagination import paginated_response

        if not isinstance(result, Page):
            raise TypeError("a paginated operation must return a Page")
        return paginated_response(result, operation.response)
    model = operation.response
    if model is not None and not isinstance(result, model):
        result = model.model_validate(result, from_attributes=True)
    payload = result.__pydantic_serializer__.to_json(result) if isinstance(result, BaseModel) else result
    return Response(payload, status=operation.status, mimetype="application/json")


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
    413: "Body too large",
    422: "Validation failed",
    429: "Rate limited",
    500: "Server error",
}


_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_TYPES = {"int": "integer", "float": "number"}


def _openapi_path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """`/items/<int:item_id>` becomes `/items/{item_id}` plus its path parameter."""
    parameters = [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": {"type": _CONVERTER_TYPES.get(match["converter"] or "", "string")},
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


def build_spec(app: Flask, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every operation registered with `api_operation`."""
    from app.api.pagination import PAGINATION_DESCRIPTION, page_model

    schemas: dict[str, Any] = {}
    problem_ref = _collect(schemas, ProblemDetails)
    validation_ref = _collect(schemas, ValidationProblem)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        operation: Operation | None = getattr(view, OPERATION_ATTR, None)
        if operation is None:
            continue
        path, parameters = _openapi_path(rule)
        if operation.query is not None:
            parameters += _query_parameters(schemas, operation.query)
        responses: dict[str, Any] = {}
        if operation.status == 204:
            responses["204"] = {"description": "No content"}
        else:
            model = page_model(operation.response) if operation.paginated else operation.response
            content = {"application/json": {"schema": _collect(schemas, model)}} if model else {}
            responses[str(operation.status)] = {"description": "Success", "content": content}
            if operation.paginated:
                responses[str(operation.status)]["headers"] = {
                    "Link": {"description": "RFC 8288 links: first, prev, next, last", "schema": {"type": "string"}},
                    "X-Total-Count": {"description": "Total number of items", "schema": {"type": "integer"}},
                }
        error_codes = set(operation.errors) | {429, 500}
        if operation.auth:
            error_codes |= {401, 403} if operation.permission else {401}
        if operation.query is not None or operation.body is not None:
            error_codes.add(422)
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
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
