"""Turn a request into a handler's keyword arguments, validated by msgspec.

Everything is prepared once per route at boot (`Binder`): which parameter comes from the path,
the query string, the JSON body or a multipart form, and a msgspec type that decodes and
converts each source in one pass. Conversion is lax, like pydantic's lax mode in the reference:
`"5"` is accepted for an `int`, `"true"` for a `bool`.

Where the reference (FastAPI) differs by source, this follows it:
- body methods (POST, PUT, PATCH, DELETE): the JSON object's keys are the parameters; unknown
  keys are ignored; an empty body counts as `{}`;
- a handler with a pydantic-model parameter takes the body itself as that model when it is the
  only body parameter (FastAPI's rule); other plain parameters then come from the query string;
- `bytes` parameters take multipart file parts and the other parameters come from form fields;
- GET: parameters come from the query string (`list[...]` from repeated keys; other structured
  types from a JSON value);
- a parameter annotated with Starlette's `Request` receives the request.
"""

from __future__ import annotations

import copy
import enum
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.datastructures import QueryParams, UploadFile
from starlette.requests import ClientDisconnect, Request

from .errors import RequestValidationError, StartupError
from .manifest import Route
from .types import Receive, Scope
from .validation import json_error, strip_optional, validation_error

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SCALARS = (int, float, str, bool, type(None))
_SEQUENCES = (list, tuple, set, frozenset, typing.Sequence, typing.List, typing.Set)


class Param(msgspec.Struct, frozen=True):
    """One handler parameter as the binder sees it."""

    name: str
    annotation: Any
    default: Any  # inspect.Parameter.empty when required
    source: str  # "path" | "query" | "body" | "file" | "request" | "model"

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


class Binder:
    """Binds requests for one route; built once at boot."""

    def __init__(self, func: Callable[..., Any], route: Route):
        self.route = route
        self.params = _classify(func, route)
        by_source: dict[str, list[Param]] = {}
        for param in self.params:
            by_source.setdefault(param.source, []).append(param)
        self.request_params = [p.name for p in by_source.get("request", [])]
        self.model_param = by_source.get("model", [None])[0]
        self.path = _SourceCodec.build(func, "path", by_source.get("path", []))
        self.query = _SourceCodec.build(func, "query", by_source.get("query", []))
        self.files = [p.name for p in by_source.get("file", [])]
        # With file parts the other body parameters are form fields; without, JSON keys.
        fields = _SourceCodec.build(func, "body", by_source.get("body", []))
        self.form = fields if self.files else None
        self.body = None if self.files else fields

    @property
    def is_multipart(self) -> bool:
        return bool(self.files)

    @property
    def needs_request(self) -> bool:
        """Whether binding (or the handler) needs a Starlette Request rather than the raw scope."""
        return bool(self.files or self.request_params)

    async def bind(self, scope: Scope, receive: Receive, request: Request | None) -> dict[str, Any]:
        """The handler's keyword arguments for this request, or RequestValidationError.

        `request` is given when `needs_request`; the body is then read through it, so the
        handler's own `await request.body()` still works. Otherwise it is read from `receive`.
        """
        kwargs: dict[str, Any] = {}
        if self.path is not None:
            kwargs.update(self.path.convert(scope["path_params"]))
        if self.query is not None:
            kwargs.update(self.query.convert(self.query.query_values(QueryParams(scope["query_string"]))))
        if self.files:
            assert request is not None
            kwargs.update(await self._bind_form(request))
        elif self.model_param is not None or self.body is not None:
            body = await request.body() if request is not None else await read_body(receive)
            if self.model_param is not None:
                kwargs[self.model_param.name] = _validate_model(self.model_param, body)
            else:
                assert self.body is not None
                kwargs.update(self.body.decode_json(body))
        for name in self.request_params:
            kwargs[name] = request
        return kwargs

    async def _bind_form(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            raise RequestValidationError([
                {"type": "missing", "loc": ["body", name], "msg": "Field required"} for name in self.files
            ])
        form = await request.form()
        kwargs: dict[str, Any] = {}
        missing = []
        for name in self.files:
            part = form.get(name)
            if isinstance(part, UploadFile):
                kwargs[name] = await part.read()
            elif isinstance(part, str):
                kwargs[name] = part.encode()
            else:
                param = next(p for p in self.params if p.name == name)
                if param.required:
                    missing.append({"type": "missing", "loc": ["body", name], "msg": "Field required"})
                else:
                    kwargs[name] = param.default
        if missing:
            raise RequestValidationError(missing)
        if self.form is not None:
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            kwargs.update(self.form.convert(self.form.form_values(form, fields)))
        return kwargs


async def read_body(receive: Receive) -> bytes:
    """The whole request body, straight from `receive` (no Request object, no stream)."""
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the usual case: the body came in one message
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class _SourceCodec:
    """A msgspec Struct type for the parameters of one source, and the loc prefix of its errors."""

    def __init__(self, source: str, params: list[Param], struct: type[msgspec.Struct]):
        self.source = source
        self.params = params
        self.struct = struct
        self.names = tuple(p.name for p in params)
        self.decoder = msgspec.json.Decoder(struct, strict=False)
        self.fields = {p.name: p.annotation for p in params}
        self.pydantic_params = [p for p in params if mentions_pydantic(p.annotation)]
        self.bools = frozenset(p.name for p in params if strip_optional(p.annotation) is bool)
        self.sequences = frozenset(p.name for p in params if _is_sequence(p.annotation))
        self.structured = frozenset(
            p.name for p in params if p.name not in self.sequences and not _is_scalar(p.annotation)
        )

    @classmethod
    def build(cls, func: Callable[..., Any], source: str, params: list[Param]) -> _SourceCodec | None:
        if not params:
            return None
        fields = []
        for index, param in enumerate(params):
            # Attribute names are positional so that any parameter name (even one that clashes
            # with a Struct attribute) works; the wire name is the parameter's own.
            if param.required:
                spec = msgspec.field(name=param.name)
            elif isinstance(param.default, (list, dict, set, bytearray)):
                spec = msgspec.field(name=param.name, default_factory=_copier(param.default))
            else:
                spec = msgspec.field(name=param.name, default=param.default)
            fields.append((f"p{index}", _wire_type(param.annotation), spec))
        name = f"{getattr(func, '__name__', 'handler')}_{source}"
        try:
            struct = msgspec.defstruct(name, fields, kw_only=True)
            return cls(source, params, struct)
        except (TypeError, ValueError) as exc:
            raise StartupError(
                f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}: "
                f"a {source} parameter has a type the runtime cannot validate: {exc}"
            ) from None

    def _result(self, value: msgspec.Struct) -> dict[str, Any]:
        out = dict(zip(self.names, msgspec.structs.astuple(value)))
        for param in self.pydantic_params:
            out[param.name] = _validate_pydantic(param, out[param.name], self.source)
        return out

    def decode_json(self, body: bytes) -> dict[str, Any]:
        body = body or b"{}"
        try:
            return self._result(self.decoder.decode(body))
        except msgspec.DecodeError as exc:
            if not isinstance(exc, msgspec.ValidationError):
                raise RequestValidationError([json_error(body, exc)]) from None
            error = exc
        # The slow path, for errors only: pydantic's wider boolean words, then the error entry.
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:  # invalid past the point where validation failed
            raise RequestValidationError([json_error(body, exc)]) from None
        if isinstance(data, dict) and _normalize_bools(data, self.bools):
            try:
                return self._result(msgspec.convert(data, self.struct, strict=False))
            except msgspec.ValidationError as exc:
                error = exc
        raise RequestValidationError([validation_error(self.source, error, self.fields, lambda: data)]) from None

    def convert(self, values: dict[str, Any]) -> dict[str, Any]:
        _normalize_bools(values, self.bools)
        try:
            return self._result(msgspec.convert(values, self.struct, strict=False))
        except msgspec.ValidationError as exc:
            raise RequestValidationError([validation_error(self.source, exc, self.fields, lambda: values)]) from None

    def query_values(self, query: QueryParams) -> dict[str, Any]:
        return self._collect(query, {k: v for k, v in query.items()})

    def form_values(self, form: Any, fields: dict[str, str]) -> dict[str, Any]:
        return self._collect(form, fields)

    def _collect(self, multi: Any, single: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.names:
            if name in self.sequences:
                items = [v for v in multi.getlist(name) if isinstance(v, str)]
                if items:
                    values[name] = items
            elif name in single:
                raw = single[name]
                if name in self.structured:
                    try:
                        raw = msgspec.json.decode(raw)
                    except msgspec.DecodeError:
                        pass  # left as a string: validation reports the type error
                values[name] = raw
        return values


_TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on", "t"})
_FALSE_WORDS = frozenset({"false", "0", "no", "n", "off", "f"})


def _normalize_bools(values: dict[str, Any], names: frozenset[str]) -> bool:
    """Turn pydantic's boolean words (yes/no, on/off, ...) into ones msgspec reads; True if any."""
    changed = False
    for name in names:
        value = values.get(name)
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE_WORDS or word in _FALSE_WORDS:
                values[name] = word in _TRUE_WORDS
                changed = True
    return changed


def _copier(value: Any) -> Callable[[], Any]:
    return lambda: copy.deepcopy(value)


def _classify(func: Callable[..., Any], route: Route) -> list[Param]:
    """Decide where each parameter of the handler comes from."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise StartupError(f"{route.entry}: cannot read the signature of {route.function}: {exc}") from None
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    path_params = set(route.path_params)
    body_method = route.method in BODY_METHODS
    raw: list[tuple[str, Any, Any]] = []
    for name, parameter in signature.parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(name, parameter.annotation)
        if annotation is inspect.Parameter.empty or isinstance(annotation, str):
            annotation = Any
        raw.append((name, _strip_annotated(annotation), parameter.default))

    for name in path_params:
        if name not in {n for n, _, _ in raw}:
            raise StartupError(f"{route.entry}: path parameter {{{name}}} is not a parameter of {route.function}")

    models = [n for n, a, _ in raw if n not in path_params and _is_pydantic_model(a)]
    has_files = body_method and any(a is bytes for n, a, _ in raw if n not in path_params)
    params: list[Param] = []
    for name, annotation, default in raw:
        if isinstance(annotation, type) and issubclass(annotation, Request):
            source = "request"
        elif name in path_params:
            source = "path"
        elif not body_method:
            source = "query"
        elif has_files:
            source = "file" if annotation is bytes else "body"
        elif models:
            # FastAPI's rule for handlers it receives unwrapped: a lone model is the body itself;
            # several body parameters are keys of it; plain scalars come from the query string.
            if _is_scalar(annotation) or _is_sequence_of_scalars(annotation):
                source = "query"
            elif len(models) == 1 and name == models[0] and _count_body(raw, path_params) == 1:
                source = "model"
            else:
                source = "body"
        else:
            source = "body"
        params.append(Param(name, annotation, default, source))
    return params


def _count_body(raw: list[tuple[str, Any, Any]], path_params: set[str]) -> int:
    return sum(
        1 for n, a, _ in raw
        if n not in path_params and not (_is_scalar(a) or _is_sequence_of_scalars(a))
        and not (isinstance(a, type) and issubclass(a, Request))
    )


def _strip_annotated(annotation: Any) -> Any:
    """Keep msgspec's own constraints from `Annotated[...]`; drop other frameworks' markers."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        metas = [e for e in extras if isinstance(e, msgspec.Meta)]
        return typing.Annotated[(base, *metas)] if metas else base
    return annotation


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_scalar(annotation: Any) -> bool:
    for arg in _union_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            continue
        if arg in _SCALARS or (isinstance(arg, type) and issubclass(arg, enum.Enum)):
            continue
        if isinstance(arg, type) and arg.__module__ in ("datetime", "uuid", "decimal"):
            continue
        return False
    return True


def _is_sequence(annotation: Any) -> bool:
    return any(
        (typing.get_origin(arg) or arg) in _SEQUENCES for arg in _union_args(annotation) if arg is not type(None)
    )


def _is_sequence_of_scalars(annotation: Any) -> bool:
    if not _is_sequence(annotation):
        return False
    for arg in _union_args(annotation):
        if arg is type(None):
            continue
        items = typing.get_args(arg)
        if items and not all(_is_scalar(item) for item in items if item is not Ellipsis):
            return False
    return True


def _pydantic_base() -> type | None:
    import sys

    module = sys.modules.get("pydantic")  # only when the user's code brought pydantic in
    return getattr(module, "BaseModel", None) if module else None


def _is_pydantic_model(annotation: Any) -> bool:
    base = _pydantic_base()
    return base is not None and isinstance(annotation, type) and issubclass(annotation, base)


def mentions_pydantic(annotation: Any) -> bool:
    if _pydantic_base() is None:
        return False
    if _is_pydantic_model(annotation):
        return True
    return any(mentions_pydantic(arg) for arg in typing.get_args(annotation))


def _wire_type(annotation: Any) -> Any:
    """The type msgspec decodes; values of types that involve pydantic models go to pydantic after."""
    if annotation is Any:
        return Any
    return msgspec.Raw if mentions_pydantic(annotation) else annotation


def _validate_pydantic(param: Param, value: Any, source: str) -> Any:
    if not isinstance(value, msgspec.Raw):
        return value  # the parameter's default
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(param.annotation).validate_json(bytes(value))
    except ValidationError as exc:
        raise RequestValidationError(_pydantic_errors(exc, [source, param.name])) from None


def _validate_model(param: Param, body: bytes) -> Any:
    from pydantic import ValidationError

    if not body:
        if not param.required:
            return param.default
        raise RequestValidationError([{"type": "missing", "loc": ["body"], "msg": "Field required"}])
    try:
        return param.annotation.model_validate_json(body)
    except ValidationError as exc:
        errors = _pydantic_errors(exc, ["body"])
    if errors and errors[0]["type"] == "json_invalid":
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as decode_error:
            errors = [json_error(body, decode_error)]
    for error in errors:
        if error["type"] == "model_type" and error["loc"] == ["body"]:
            error["type"] = "model_attributes_type"  # FastAPI's name for a body that is no object
    raise RequestValidationError(errors) from None


def _pydantic_errors(exc: Any, prefix: list[Any]) -> list[dict[str, Any]]:
    return [
        {"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
