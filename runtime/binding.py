"""Turn a request into a handler's keyword arguments, validated by msgspec.

Everything is prepared once per route at boot (`Binder`): which parameter comes from the path,
the query string, a header, a cookie, the JSON body, a multipart form or a dependency (FastAPI's
markers, read by `params`), and a msgspec type that decodes and converts each source in one
pass. Conversion is lax, like pydantic's lax mode in the reference (`lax`): `"5"` is accepted
for an `int`, `"true"` for a `bool`.

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
import dataclasses
import enum
import functools
import inspect
import json
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.datastructures import FormData, QueryParams, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request, cookie_parser

from .annotations import bare, is_pydantic_model, mentions_pydantic, strip_annotated
from .errors import RequestValidationError, StartupError
from .lax import LaxError, coerce, mentions_scalar, needs_lax
from .manifest import Route
from .params import annotated_markers, constrain, is_factory, is_marker, read_marker
from .types import Receive, Scope
from .validation import validation_error

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SCALARS = (int, float, str, bool, type(None))
_SEQUENCES = (list, tuple, set, frozenset, typing.Sequence, list, set)


class Param(msgspec.Struct, frozen=True):
    """One handler parameter as the binder sees it."""

    name: str
    annotation: Any  # the type, with its constraints as msgspec Meta
    default: Any  # inspect.Parameter.empty when required
    source: str  # path|query|header|cookie|body|form|file|upload|request|model|query_model|form_model|depends
    wire: str = ""  # the name on the wire (alias, header name); the parameter's name when empty
    dependency: Any = None  # the callable of a Depends()
    embed: bool = (
        False  # Body(embed=True): a key of the body even when it is the only body parameter
    )

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def key(self) -> str:
        return self.wire or self.name


_FORM_SOURCES = frozenset({"file", "upload", "form", "form_model"})


@dataclasses.dataclass(frozen=True)
class FormLimits:
    """What one multipart or urlencoded body may hold (FLASH_MAX_FORM_*)."""

    max_fields: int = 1000
    max_files: int = 1000
    max_part_bytes: int = 1024 * 1024


DEFAULT_FORM_LIMITS = FormLimits()


class Binder:
    """Binds requests for one route (or one dependency of it); built once at boot."""

    def __init__(
        self,
        func: Callable[..., Any],
        route: Route,
        dependency: bool = False,
        form_limits: FormLimits = FormLimits(),
    ):
        self.func = func
        self.route = route
        self.form_limits = form_limits
        where = f"{route.entry} ({route.method} {route.path})"
        self.params = _classify(func, route, dependency)
        by_source: dict[str, list[Param]] = {}
        for param in self.params:
            by_source.setdefault(param.source, []).append(param)
        self.request_params = [p.name for p in by_source.get("request", [])]
        self.model_param = by_source.get("model", [None])[0]
        self.path = _SourceCodec.build(func, where, "path", by_source.get("path", []))
        self.query = _SourceCodec.build(func, where, "query", by_source.get("query", []))
        self.headers = _SourceCodec.build(func, where, "header", by_source.get("header", []))
        self.cookies = _SourceCodec.build(func, where, "cookie", by_source.get("cookie", []))
        self.query_models = [(p, _FieldsModel(p)) for p in by_source.get("query_model", [])]
        self.form_models = [(p, _FieldsModel(p)) for p in by_source.get("form_model", [])]
        self.run_sync: Callable[..., Awaitable[Any]] | None = (
            None  # the handler pool, for `def` dependencies
        )
        self.dependencies = [
            (
                p.name,
                Binder(p.dependency, route, True, form_limits),
                is_async_callable(p.dependency),
            )
            for p in by_source.get("depends", [])
        ]
        self.files = [p.name for p in by_source.get("file", []) + by_source.get("upload", [])]
        self.uploads = frozenset(p.name for p in by_source.get("upload", []))
        multipart = any(p.source in _FORM_SOURCES for p in self.params)
        # With file parts or form fields the other body parameters are form fields; without, JSON keys.
        fields = _SourceCodec.build(
            func, where, "body", by_source.get("body", []) + by_source.get("form", [])
        )
        self.form = fields if multipart else None
        self.body = None if multipart else fields
        self.multipart = multipart
        self.extras = bool(self.headers or self.cookies or self.query_models or self.dependencies)

    def use_pool(self, run_sync: Callable[..., Awaitable[Any]]) -> None:
        """Run this binder's (and its dependencies') `def` dependencies with `run_sync`."""
        self.run_sync = run_sync
        for _, binder, _ in self.dependencies:
            binder.use_pool(run_sync)

    @property
    def is_multipart(self) -> bool:
        return self.multipart

    @property
    def needs_request(self) -> bool:
        """Whether binding (or the handler) needs a Starlette Request rather than the raw scope."""
        return bool(
            self.multipart
            or self.request_params
            or any(binder.needs_request for _, binder, _ in self.dependencies)
        )

    async def bind(self, scope: Scope, receive: Receive, request: Request | None) -> dict[str, Any]:
        """The handler's keyword arguments for this request, or RequestValidationError.

        `request` is given when `needs_request`; the body is then read through it, so the
        handler's own `await request.body()` still works. Otherwise it is read from `receive`.
        """
        kwargs: dict[str, Any] = {}
        if self.extras:
            await self._bind_extras(scope, receive, request, kwargs)
        if self.path is not None:
            kwargs.update(self.path.convert(scope["path_params"]))
        if self.query is not None:
            kwargs.update(
                self.query.convert(self.query.query_values(QueryParams(scope["query_string"])))
            )
        if self.multipart:
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

    async def _bind_extras(
        self, scope: Scope, receive: Receive, request: Request | None, kwargs: dict[str, Any]
    ) -> None:
        """Dependencies, headers, cookies and query models: what plain routes do not have."""
        for name, binder, is_async in self.dependencies:
            arguments = await binder.bind(scope, receive, request)
            if is_async:
                kwargs[name] = await binder.func(**arguments)
            elif (
                self.run_sync is not None
            ):  # as FastAPI: a `def` dependency runs in the thread pool
                kwargs[name] = await self.run_sync(functools.partial(binder.func, **arguments))
            else:
                kwargs[name] = binder.func(**arguments)
        if self.headers is not None:
            kwargs.update(self.headers.convert(self.headers.header_values(scope["headers"])))
        if self.cookies is not None:
            kwargs.update(self.cookies.convert(self.cookies.cookie_values(scope["headers"])))
        if self.query_models:
            query = QueryParams(scope["query_string"])
            for param, model in self.query_models:
                kwargs[param.name] = model.validate(query, "query")

    async def _bind_form(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded")
        ):
            names = self.files or [p.name for p, _ in self.form_models]
            if names or self.form is None:
                raise RequestValidationError(
                    [
                        {"type": "missing", "loc": ["body", name], "msg": "Field required"}
                        for name in names
                    ]
                    or [{"type": "missing", "loc": ["body"], "msg": "Field required"}]
                )
            form: Any = FormData()
        else:
            limits = self.form_limits
            try:
                form = await request.form(
                    max_files=limits.max_files,
                    max_fields=limits.max_fields,
                    max_part_size=limits.max_part_bytes,
                )
            except MultiPartException as exc:
                # Starlette answers its parser's errors itself only when the scope names an app,
                # which the runtime's does not. The body cap's BodyTooLarge passes on as its 413.
                raise _form_refused(exc.message) from None
        kwargs: dict[str, Any] = {}
        missing = []
        for name in self.files:
            part = form.get(name)
            if isinstance(part, UploadFile):
                kwargs[name] = part if name in self.uploads else await part.read()
            elif isinstance(part, str) and name not in self.uploads:
                kwargs[name] = part.encode()
            else:
                param = next(p for p in self.params if p.name == name)
                if param.required:
                    missing.append(
                        {"type": "missing", "loc": ["body", name], "msg": "Field required"}
                    )
                else:
                    kwargs[name] = param.default
        if missing:
            raise RequestValidationError(missing)
        for param, model in self.form_models:
            kwargs[param.name] = model.validate(form, "body")
        if self.form is not None:
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            kwargs.update(self.form.convert(self.form.form_values(form, fields)))
        return kwargs


def is_async_callable(func: Any) -> bool:
    """An `async def` function, a partial of one, or an object whose `__call__` is `async def`."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or (
        callable(func) and inspect.iscoroutinefunction(type(func).__call__)
    )


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
        self.keys = tuple(p.key for p in params)
        self.lookups = tuple((p.key, p.key.lower()) for p in params)
        self.decoder = msgspec.json.Decoder(struct, strict=False)
        self.fields = {p.key: p.annotation for p in params}
        # Parameters pydantic validates, each with its TypeAdapter (built here, once per route).
        self.pydantic_params = [
            (p, _adapter(p.annotation)) for p in params if mentions_pydantic(p.annotation)
        ]
        # Values msgspec would convert unlike pydantic even when valid: converted by `coerce` after.
        self.lax_after = [
            (p.name, p.key, p.annotation, _has_meta(p.annotation))
            for p in params
            if needs_lax(p.annotation) and not mentions_pydantic(p.annotation)
        ]
        # Values to put through pydantic's lax rules before msgspec sees them (text sources always,
        # a JSON body when msgspec refused it).
        self.lax_before = [
            (p.key, p.annotation)
            for p in params
            if mentions_scalar(p.annotation)
            and not mentions_pydantic(p.annotation)
            and not needs_lax(p.annotation)
        ]
        self.after = bool(
            self.pydantic_params or self.lax_after
        )  # work left after msgspec's decode
        self.sequences = frozenset(p.key for p in params if _is_sequence(p.annotation))
        self.structured = frozenset(
            p.key for p in params if p.key not in self.sequences and not _is_scalar(p.annotation)
        )

    @classmethod
    def build(
        cls, func: Callable[..., Any], where: str, source: str, params: list[Param]
    ) -> _SourceCodec | None:
        if not params:
            return None
        fields = []
        for index, param in enumerate(params):
            # Attribute names are positional so that any parameter name (even one that clashes
            # with a Struct attribute) works; the wire name is the parameter's own (or its alias).
            if param.required:
                spec = msgspec.field(name=param.key)
            elif is_factory(param.default):
                spec = msgspec.field(name=param.key, default_factory=param.default.factory)
            elif isinstance(param.default, (list, dict, set, bytearray)):
                spec = msgspec.field(name=param.key, default_factory=_copier(param.default))
            else:
                spec = msgspec.field(name=param.key, default=param.default)
            if needs_lax(param.annotation):
                wire = (
                    Any  # converted by `coerce` after decoding; its constraints must still be valid
                )
                try:
                    msgspec.json.Decoder(param.annotation)
                except (TypeError, ValueError) as exc:
                    raise StartupError(
                        f"{where}: {getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}: "
                        f"{source} parameter {param.name!r} has a constraint the runtime cannot check: {exc}"
                    ) from None
            else:
                wire = _wire_type(param.annotation)
            fields.append((f"p{index}", wire, spec))
        name = f"{getattr(func, '__name__', 'handler')}_{source}"
        try:
            struct = msgspec.defstruct(name, fields, kw_only=True)
            return cls(source, params, struct)
        except (TypeError, ValueError) as exc:
            raise StartupError(
                f"{where}: {getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}: "
                f"a {source} parameter has a type the runtime cannot validate: {exc}"
            ) from None

    def _result(self, value: msgspec.Struct) -> dict[str, Any]:
        out = dict(zip(self.names, msgspec.structs.astuple(value), strict=True))
        if not self.after:
            return out
        for param, adapter in self.pydantic_params:
            out[param.name] = _validate_pydantic(param, adapter, out[param.name], self.source)
        for name, key, annotation, constrained in self.lax_after:
            try:
                out[name] = coerce(annotation, out[name])
            except LaxError as exc:
                raise RequestValidationError([_lax_entry(self.source, key, exc)]) from None
            if (
                constrained
            ):  # e.g. Union[Annotated[int, Meta(ge=1)], str]: msgspec checks the bounds
                try:
                    msgspec.convert(out[name], annotation, strict=False)
                except msgspec.ValidationError as exc:
                    fields = {key: annotation}
                    raise RequestValidationError(
                        [validation_error(self.source, _at(exc, key), fields)]
                    ) from None
        return out

    def decode_json(self, body: bytes) -> dict[str, Any]:
        body = body or b"{}"
        try:
            return self._result(self.decoder.decode(body))
        except msgspec.ValidationError:
            try:
                data = msgspec.json.decode(body)
            except (msgspec.DecodeError, RecursionError):  # invalid past where validation failed
                data = python_json(body)
        except (msgspec.DecodeError, RecursionError):
            data = python_json(body)  # what msgspec refuses, FastAPI's json.loads may still read
        # The slow path, for what msgspec refused: pydantic's lax rules, then the error entry.
        return self.convert(dict(data) if isinstance(data, dict) else data)

    def convert(self, values: Any) -> dict[str, Any]:
        if isinstance(values, dict):
            self._lax(values)
        try:
            return self._result(msgspec.convert(values, self.struct, strict=False))
        except msgspec.ValidationError as exc:
            raise RequestValidationError(
                [validation_error(self.source, exc, self.fields, lambda: values)]
            ) from None

    def _lax(self, values: dict[str, Any]) -> None:
        for param, _ in self.pydantic_params:  # pydantic validates these itself, from JSON text
            if param.key in values and not isinstance(values[param.key], msgspec.Raw):
                values[param.key] = msgspec.Raw(msgspec.json.encode(values[param.key]))
        for key, annotation in self.lax_before:
            if key in values:
                try:
                    values[key] = coerce(annotation, values[key])
                except LaxError as exc:
                    raise RequestValidationError([_lax_entry(self.source, key, exc)]) from None

    def query_values(self, query: QueryParams) -> dict[str, Any]:
        return self._collect(query, {k: v for k, v in query.items()})

    def form_values(self, form: Any, fields: dict[str, str]) -> dict[str, Any]:
        return self._collect(form, fields)

    def header_values(self, raw: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        found: dict[str, list[str]] = {}
        for name, value in raw:
            found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        values: dict[str, Any] = {}
        for key, lookup in self.lookups:
            if lookup in found:
                values[key] = found[lookup] if key in self.sequences else found[lookup][0]
        return values

    def cookie_values(self, raw: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        cookies: dict[str, str] = {}
        for name, value in raw:
            if name == b"cookie":
                cookies.update(cookie_parser(value.decode("latin-1")))
        return {key: cookies[key] for key in self.keys if key in cookies}

    def _collect(self, multi: Any, single: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in self.keys:
            if key in self.sequences:
                items = [v for v in multi.getlist(key) if isinstance(v, str)]
                if items:
                    values[key] = items
            elif key in single:
                raw = single[key]
                if key in self.structured:
                    try:
                        raw = msgspec.json.decode(raw)
                    except msgspec.DecodeError:
                        pass  # left as a string: validation reports the type error
                values[key] = raw
        return values


def _has_meta(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated and any(
        isinstance(extra, msgspec.Meta) for extra in typing.get_args(annotation)[1:]
    ):
        return True
    return any(_has_meta(arg) for arg in typing.get_args(annotation))


def _at(exc: msgspec.ValidationError, key: str) -> msgspec.ValidationError:
    """A ValidationError of a bare value, told as one at the parameter `key`."""
    message, _, where = str(exc).partition(" - at `$")
    return msgspec.ValidationError(f"{message} - at `$.{key}{where.rstrip('`')}`")


def _lax_entry(source: str, key: str, exc: LaxError) -> dict[str, Any]:
    return {"type": exc.type, "loc": [source, key, *exc.loc], "msg": exc.msg}


def python_json(body: bytes) -> Any:
    """The body as FastAPI reads it (`json.loads`: a BOM, UTF-16, NaN and Infinity are accepted),
    for bodies msgspec refused. Its errors are FastAPI's: 422 `json_invalid` at the character
    where parsing stopped, 400 for bytes that are not text or nest past the recursion limit."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", exc.pos],
                    "msg": "JSON decode error",
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise HTTPException(400, "There was an error parsing the body") from None
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is no text
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", 0],
                    "msg": "JSON decode error",
                    "ctx": {"error": "lone surrogate in a string"},
                }
            ]
        ) from None
    return data


def _copier(value: Any) -> Callable[[], Any]:
    return lambda: copy.deepcopy(value)


def _classify(func: Callable[..., Any], route: Route, dependency: bool = False) -> list[Param]:
    """Decide where each parameter of the handler (or of one of its dependencies) comes from.

    The reference registers GET handlers with FastAPI unchanged, and body-method handlers too
    when one of their parameters is a pydantic model: FastAPI then reads the markers. Other
    body-method handlers get a generated body model built from the annotations with `Annotated`
    removed, so there every parameter is a body key, and only a marker used as the default
    (`n: int = Query(1, ge=1)`) still brings its default, alias and constraints.
    """
    where = f"{route.entry} ({route.method} {route.path})"
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise StartupError(
            f"{where}: cannot read the signature of {getattr(func, '__name__', func)}: {exc}"
        ) from None
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
        raw.append((name, annotation, parameter.default))

    if not dependency:
        for name in path_params:
            if name not in {n for n, _, _ in raw}:
                raise StartupError(
                    f"{where}: path parameter {{{name}}} is not a parameter of {route.function}"
                )

    # runpod-flash's test: a parameter whose hint (without Annotated; Optional counts) is a model class
    native = (
        dependency
        or not body_method
        or any(
            n not in path_params and is_pydantic_model(annotated_markers(a)[0]) for n, a, _ in raw
        )
    )
    has_files = (
        body_method
        and not native
        and any(bare(a) is bytes or _is_upload(bare(a)) for n, a, _ in raw if n not in path_params)
    )
    params: list[Param] = []
    for name, annotation, default in raw:
        base, markers = annotated_markers(annotation)
        marker = None
        if native and markers:
            marker = read_marker(markers[-1])
        elif is_marker(default):
            marker = read_marker(default)
            default = marker.default
        if not native:
            base = strip_annotated(annotation, keep=_is_meta)  # msgspec's own constraints stay
            if marker is not None and marker.dependency is not None:
                raise StartupError(
                    f"{where}: parameter {name!r}: Depends() on a body-method handler without a "
                    "pydantic model parameter is not resolved by the reference either (it "
                    "passes the Depends object); use it on a GET route or with a model parameter"
                )
        kind = marker.source if (native and marker is not None) else None
        if marker is not None:
            base = constrain(base, marker.constraints)
        wire = ""
        plain = bare(base)
        if isinstance(plain, type) and issubclass(plain, Request):
            source = "request"
        elif name in path_params and kind in (None, "path"):
            source = "path"
        elif kind == "path":
            raise StartupError(
                f"{where}: parameter {name!r} is marked Path() but {route.path} has no {{{name}}}"
            )
        elif kind in ("depends", "security"):
            if kind == "security" or marker is None:
                raise StartupError(
                    f"{where}: parameter {name!r}: Security() is not supported by the runtime"
                )
            call = marker.dependency if marker.dependency is not None else plain
            if inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call):
                raise StartupError(
                    f"{where}: parameter {name!r}: dependencies with yield are not supported"
                )
            params.append(Param(name, base, default, "depends", dependency=call))
            continue
        elif kind in ("query", "header", "cookie"):
            if is_pydantic_model(plain):
                if kind != "query":
                    raise StartupError(
                        f"{where}: parameter {name!r}: {kind} models are not supported"
                    )
                source = "query_model"
            else:
                assert marker is not None  # kind comes from the marker
                source = kind
                wire = marker.alias or (
                    name.replace("_", "-")
                    if kind == "header" and marker.convert_underscores
                    else ""
                )
        elif kind in ("form", "file"):
            if not body_method:
                raise StartupError(
                    f"{where}: parameter {name!r}: Form()/File() need a body method, not GET"
                )
            source = (
                "form_model"
                if is_pydantic_model(plain)
                else ("file" if kind == "file" or plain is bytes or _is_upload(plain) else "form")
            )
            if source == "file" and _is_upload(plain):
                source = "upload"
        elif body_method and _is_upload(plain):
            source = "upload"
        elif not body_method:
            if kind == "body":
                raise StartupError(
                    f"{where}: parameter {name!r}: Body() on a GET route is not supported"
                )
            source = "query"
            wire = (marker.alias or "") if marker is not None else ""
        elif has_files:
            source = "file" if plain is bytes else "body"
        elif native and kind is None and (_is_scalar(plain) or _is_sequence_of_scalars(plain)):
            source = "query"  # FastAPI: plain scalars beside a model come from the query string
            wire = (marker.alias or "") if marker is not None else ""
        else:
            source = "body"
            wire = (marker.alias or "") if marker is not None else ""
        embed = bool(marker is not None and kind == "body" and marker.embed)
        params.append(Param(name, base, default, source, wire=wire, embed=embed))
    return _lone_body_model(params, native, where, dependency)


def _lone_body_model(
    params: list[Param], native: bool, where: str, dependency: bool = False
) -> list[Param]:
    """FastAPI's rule: a lone body parameter that is a model, not embedded, is the body itself."""
    if dependency:
        for param in params:
            if param.source in ("body", "model", "form", "file", "upload", "form_model"):
                raise StartupError(
                    f"{where}: dependency parameter {param.name!r} reads the body; "
                    "the runtime binds dependencies from the path, query, headers and cookies only"
                )
        return params
    body = [p for p in params if p.source == "body"]
    if not native or len(body) != 1:
        return params
    (param,) = body
    if param.embed:
        return params
    if not is_pydantic_model(bare(param.annotation)):
        raise StartupError(
            f"{where}: parameter {param.name!r} is the only body parameter, so FastAPI reads the "
            "whole body as its value; the runtime does not: use Body(embed=True)"
        )
    return [msgspec.structs.replace(p, source="model") if p is param else p for p in params]


def _is_upload(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, UploadFile)


def _is_meta(extra: Any) -> bool:
    return isinstance(extra, msgspec.Meta)


def _union_args(annotation: Any) -> tuple[Any, ...]:
    annotation = strip_annotated(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(strip_annotated(a) for a in typing.get_args(annotation))
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
        (typing.get_origin(arg) or arg) in _SEQUENCES
        for arg in _union_args(annotation)
        if arg is not type(None)
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


def _wire_type(annotation: Any) -> Any:
    """The type msgspec decodes; values of types that involve pydantic models go to pydantic after."""
    if annotation is Any:
        return Any
    return msgspec.Raw if mentions_pydantic(annotation) else annotation


_ADAPTERS: dict[Any, Any] = {}


def _adapter(annotation: Any) -> Any:
    """pydantic's TypeAdapter for an annotation; routes that share an annotation share it."""
    adapter = _ADAPTERS.get(annotation)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation)
    return adapter


def _validate_pydantic(param: Param, adapter: Any, value: Any, source: str) -> Any:
    if not isinstance(value, msgspec.Raw):
        return value  # the parameter's default
    from pydantic import ValidationError

    try:
        return adapter.validate_json(bytes(value))
    except ValidationError as exc:
        raise RequestValidationError(_pydantic_errors(exc, [source, param.key])) from None


def _validate_model(param: Param, body: bytes) -> Any:
    from pydantic import ValidationError

    if not body:
        if not param.required:
            return param.default
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body"], "msg": "Field required"}]
        )
    model = bare(param.annotation)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = _pydantic_errors(exc, ["body"])
    if errors and errors[0]["type"] == "json_invalid":
        try:  # FastAPI reads the body with json.loads, which takes more than pydantic's parser
            return model.model_validate(python_json(body))
        except ValidationError as exc:
            errors = _pydantic_errors(exc, ["body"])
    for error in errors:
        if error["type"] == "model_type" and error["loc"] == ["body"]:
            error["type"] = "model_attributes_type"  # FastAPI's name for a body that is no object
    raise RequestValidationError(errors) from None


class _FieldsModel:
    """A query or form model (`Annotated[Model, Query()]`): its fields from the query string or form."""

    def __init__(self, param: Param):
        self.model = bare(param.annotation)
        self.fields = [
            (field.alias or name, _is_sequence(field.annotation))
            for name, field in self.model.model_fields.items()
        ]

    def validate(self, multi: Any, source: str) -> Any:
        from pydantic import ValidationError

        values: dict[str, Any] = {}
        for key, sequence in self.fields:
            if sequence:
                items = [v for v in multi.getlist(key) if isinstance(v, str)]
                if items:
                    values[key] = items
            elif isinstance(multi.get(key), str):
                values[key] = multi[key]
        try:
            return self.model.model_validate(values)
        except ValidationError as exc:
            raise RequestValidationError(_pydantic_errors(exc, [source])) from None


def _pydantic_errors(exc: Any, prefix: list[Any]) -> list[dict[str, Any]]:
    return [
        {"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _form_refused(message: str) -> HTTPException:
    """A malformed form, or one over the FLASH_MAX_FORM_* limits: 400 with the parser's message,
    as FastAPI answers (Starlette turns the parser's error into that when it runs under an app)."""
    return HTTPException(status_code=400, detail=message)
