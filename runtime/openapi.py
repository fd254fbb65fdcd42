"""OpenAPI 3.1 for the served routes, from the binders' msgspec types and the response plans.

`build_openapi` runs once per worker, on the first request for `/openapi.json` (see
`app._openapi_routes`): the routes, binders and response models it reads were all built at boot.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

import msgspec

from .annotations import bare, is_pydantic_model, mentions_pydantic
from .handlers import Handler
from .response_models import is_response_type, is_structured

_REF = "#/components/schemas/{name}"
_VALIDATION_ERROR = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
    "required": ["loc", "msg", "type"],
}
_HTTP_VALIDATION_ERROR = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {"type": "array", "items": {"$ref": _REF.format(name="ValidationError")}}
    },
}
_ERROR = {
    "title": "Error",
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "error": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["detail"],
}
DOCS_HTML = Path(__file__).parent / "docs.html"


class _Schemas:
    """Collects component schemas from msgspec (and pydantic, for the app's models)."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {
            "ValidationError": _VALIDATION_ERROR,
            "HTTPValidationError": _HTTP_VALIDATION_ERROR,
            "Error": _ERROR,
        }

    def of(self, annotation: Any) -> dict[str, Any]:
        if annotation is inspect.Parameter.empty or annotation is Any:
            return {}
        if is_pydantic_model(annotation):
            schema = annotation.model_json_schema(ref_template=_REF.replace("{name}", "{model}"))
            self.components.update(schema.pop("$defs", {}))
            self.components[annotation.__name__] = schema
            return {"$ref": _REF.format(name=annotation.__name__)}
        if mentions_pydantic(annotation):  # e.g. list[Model]: pydantic describes its own types
            from pydantic import TypeAdapter

            schema = TypeAdapter(annotation).json_schema(
                ref_template=_REF.replace("{name}", "{model}")
            )
            self.components.update(schema.pop("$defs", {}))
            return schema
        try:
            (schema,), components = msgspec.json.schema_components([annotation], ref_template=_REF)
        except (TypeError, ValueError):
            return {}  # a type msgspec cannot describe (a Response, a pydantic model inside a container)
        self.components.update(components)
        return schema

    def of_result(self, annotation: Any) -> dict[str, Any]:
        """A response model's schema: pydantic's serialization schema (aliases as written)."""
        if not is_structured(annotation) or "pydantic" not in sys.modules:
            return self.of(annotation)
        from pydantic import TypeAdapter

        try:
            schema = TypeAdapter(annotation).json_schema(
                mode="serialization", ref_template=_REF.replace("{name}", "{model}")
            )
        except Exception:  # a type pydantic cannot describe
            return {}
        defs = schema.pop("$defs", {})
        for name, definition in defs.items():
            self.components.setdefault(name, definition)
        if isinstance(annotation, type) and "title" in schema:
            name = annotation.__name__
            if self.components.get(name, schema) != schema:
                name = (
                    f"{name}-Output"  # the input (validation) schema differs, as FastAPI names it
                )
            self.components[name] = schema
            return {"$ref": _REF.format(name=name)}
        return schema


def build_openapi(handlers: list[Handler], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document: parameters, request bodies, success and error responses."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for handler in handlers:
        route, binder = handler.route, handler.binder
        operation_id = (
            route.function
            if route.function not in seen_ids
            else f"{route.function}_{route.method.lower()}"
        )
        seen_ids.add(operation_id)
        doc = inspect.getdoc(handler.func) or ""
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": doc.splitlines()[0]
            if doc
            else route.function.replace("_", " ").capitalize(),
            "parameters": [],
            "responses": _responses(schemas, handler),
        }
        if doc:
            operation["description"] = doc
        operation["parameters"] = _parameters(schemas, binder)
        body = _request_body(schemas, handler)
        if body is not None:
            operation["requestBody"] = body
        paths.setdefault(_openapi_path(route.path), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas.components},
    }


_LOCATIONS = ("path", "query", "header", "cookie")


def _parameters(schemas: _Schemas, binder: Any) -> list[dict[str, Any]]:
    """Path, query, header and cookie parameters, a dependency's and a query model's included."""
    out: list[dict[str, Any]] = []
    for param in binder.params:
        if param.source in _LOCATIONS:
            out.append(
                {
                    "name": param.key,
                    "in": param.source,
                    "required": param.source == "path" or param.required,
                    "schema": _with_default(schemas.of(param.annotation), param),
                }
            )
        elif param.source == "query_model":
            model = bare(param.annotation)
            schema = model.model_json_schema()
            required = set(schema.get("required", ()))
            for name, field_schema in schema.get("properties", {}).items():
                out.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": field_schema,
                    }
                )
        elif param.source == "depends":
            out.extend(
                p
                for p in _parameters(schemas, _dependency_binder(binder, param.name))
                if (p["name"], p["in"]) not in {(o["name"], o["in"]) for o in out}
            )
    return out


def _dependency_binder(binder: Any, name: str) -> Any:
    return next(sub for param_name, sub, _ in binder.dependencies if param_name == name)


def _openapi_path(path: str) -> str:
    """`/items/{id:int}` (Starlette's converter syntax) is `/items/{id}` in OpenAPI."""
    return re.sub(r"\{([^}:]+):[^}]+\}", r"{\1}", path)


def _with_default(schema: dict[str, Any], param: Any) -> dict[str, Any]:
    if not param.required:
        try:
            default = msgspec.to_builtins(param.default)
        except TypeError:
            return schema
        return {**schema, "default": default}
    return schema


def _request_body(schemas: _Schemas, handler: Handler) -> dict[str, Any] | None:
    binder = handler.binder
    if binder.model_param is not None:
        return {
            "required": binder.model_param.required,
            "content": {"application/json": {"schema": schemas.of(binder.model_param.annotation)}},
        }
    form_models = [p for p in binder.params if p.source == "form_model"]
    if form_models and len(binder.params) == 1:
        return {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": schemas.of(bare(form_models[0].annotation))}
            },
        }
    body_params = [p for p in binder.params if p.source in ("body", "form", "file", "upload")]
    if not body_params:
        return None
    properties: dict[str, Any] = {}
    for param in body_params:
        if param.source in ("file", "upload"):
            properties[param.key] = {
                "type": "string",
                "contentMediaType": "application/octet-stream",
            }
        else:
            properties[param.key] = _with_default(schemas.of(param.annotation), param)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [p.key for p in body_params if p.required]
    if required:
        schema["required"] = required
    name = f"{handler.route.function}_body"
    schemas.components[name] = {"title": name, **schema}
    media = "multipart/form-data" if binder.is_multipart else "application/json"
    return {
        "required": bool(required),
        "content": {media: {"schema": {"$ref": _REF.format(name=name)}}},
    }


def _responses(schemas: _Schemas, handler: Handler) -> dict[str, Any]:
    plan = handler.result
    returned = plan.annotation
    success: dict[str, Any] = {"description": "Successful response"}
    if plan.is_stream:
        item = schemas.of_result(plan.item_model) if plan.item_model is not None else {}
        # `itemSchema` (FastAPI's name for it) is OpenAPI 3.2: an extension key in this 3.1 document.
        success["content"] = {"application/jsonl": {"x-itemSchema": item}, "text/event-stream": {}}
    elif returned is bytes:
        success["content"] = {"application/octet-stream": {}}
    elif plan.model is not None:
        success["content"] = {"application/json": {"schema": schemas.of_result(plan.model)}}
    elif returned is not None and not is_response_type(returned):
        success["content"] = {"application/json": {"schema": schemas.of(returned)}}
    error = {"application/json": {"schema": {"$ref": _REF.format(name="Error")}}}
    responses: dict[str, Any] = {"200": success}
    if handler.binder.params:
        responses["422"] = {
            "description": "Validation error",
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(name="HTTPValidationError")}}
            },
        }
    responses["500"] = {"description": "The handler raised", "content": error}
    return responses
