"""`POST /execute`: run a function sent by the `runpod-flash` client, for local development only.

It executes arbitrary code, so it is guarded three times: it exists only with
FLASH_ENABLE_EXECUTE set (never because of the manifest's `is_live_resource`), the settings refuse
it on a deployed worker (RUNPOD_ENDPOINT_ID or RUNPOD_POD_ID set), and it answers 403 to any
client that is not on the loopback interface, or that came through a proxy (a request with
Forwarded, X-Forwarded-For or X-Real-IP: a sidecar proxy such as Knative's queue-proxy connects
from 127.0.0.1 on behalf of remote clients). It is the only place a request is unpickled.

The wire format is the one `runpod_flash`'s load-balancer stub sends: `function_name`,
`function_code`, cloudpickle+base64 `args` and `kwargs`, and `modules` (relative path -> source of
the caller's local modules). The answer is `{"success": true, "result": <b64>}` or
`{"success": false, "error": "..."}`; errors name the exception class only, and the traceback
goes to the log.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import ipaddress
import shutil
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import Response

from .errors import StartupError
from .handlers import SyncPool
from .responses import JSONResponse
from .types import Receive, Scope, Send

_log = structlog.get_logger("runtime.execute")


class ExecuteRequest(msgspec.Struct):
    function_name: str
    function_code: str
    args: list[str] = []
    kwargs: dict[str, str] = {}
    modules: dict[str, str] | None = None


_decoder = msgspec.json.Decoder(ExecuteRequest)


def require_cloudpickle() -> Any:
    try:
        import cloudpickle
    except ImportError as exc:
        raise StartupError(
            "FLASH_ENABLE_EXECUTE needs cloudpickle (pip install 'flash-worker-runtime[execute]')"
        ) from exc
    return cloudpickle


# Headers a proxy adds: their presence means the loopback peer is relaying someone else.
_PROXY_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-real-ip"})


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def safe_module_path(root: Path, relative: str) -> Path:
    """Where a shipped module goes; ValueError when its path would leave `root`."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not relative or "\\" in relative:
        raise ValueError(f"module path escapes its folder: {relative!r}")
    target = (root / pure).resolve()
    if root not in target.parents:
        raise ValueError(f"module path escapes its folder: {relative!r}")
    return target


class Executor:
    """The endpoint; one execution at a time, since shipped modules go on the shared sys.path."""

    def __init__(self, pool: SyncPool):
        self.pickle = require_cloudpickle()
        self.pool = pool
        self.lock = asyncio.Lock()

    async def endpoint(self, scope: Scope, receive: Receive, send: Send) -> Response:
        request = Request(scope, receive, send)
        client = request.client.host if request.client else None
        proxied = any(name in _PROXY_HEADERS for name, _ in scope["headers"])
        if not is_loopback(client) or proxied:
            _log.warning("execute refused", client=client, proxied=proxied)
            return JSONResponse(
                {"detail": "/execute accepts loopback clients only"}, status_code=403
            )
        try:
            call = _decoder.decode(await request.body())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _failure(f"Invalid request body: {exc}", 422)
        async with self.lock:
            return await self._run(call, request.scope.get("state", {}).get("request_id", ""))

    async def _run(self, call: ExecuteRequest, request_id: str) -> Response:
        folder = Path(tempfile.mkdtemp(prefix="flash_execute_")).resolve()  # noqa: ASYNC240 (local temp dir)
        try:
            try:
                for relative, source in (call.modules or {}).items():
                    target = safe_module_path(folder, relative)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(source, encoding="utf-8")
            except ValueError as exc:
                return _failure(str(exc), 400)
            try:
                args = [self._load(value) for value in call.args]
                kwargs = {key: self._load(value) for key, value in call.kwargs.items()}
            except Exception as exc:
                _log.error("execute: arguments did not unpickle", exc_info=exc)
                return _failure(f"Failed to deserialize arguments: {type(exc).__name__}")
            sys.path.insert(0, str(folder))
            try:
                namespace: dict[str, Any] = {"__name__": "__flash_execute__"}
                try:
                    exec(compile(call.function_code, "<execute>", "exec"), namespace)
                except SyntaxError as exc:
                    return _failure(f"Syntax error in function code: line {exc.lineno}")
                function = namespace.get(call.function_name)
                if not callable(function):
                    return _failure(f"Function '{call.function_name}' not found in executed code")
                try:
                    if inspect.iscoroutinefunction(function):
                        result = await function(*args, **kwargs)
                    else:
                        result = await self.pool.run(lambda: function(*args, **kwargs))
                        if inspect.isawaitable(result):
                            result = await result
                except Exception as exc:
                    _log.error(
                        "execute: function raised", function=call.function_name, exc_info=exc
                    )
                    return _failure(
                        f"Function execution failed: {type(exc).__name__} (request_id {request_id})"
                    )
            finally:
                sys.path.remove(str(folder))
            try:
                encoded = base64.b64encode(self.pickle.dumps(result)).decode()
            except Exception as exc:
                _log.error("execute: result did not pickle", exc_info=exc)
                return _failure(f"Failed to serialize result: {type(exc).__name__}")
            return JSONResponse({"success": True, "result": encoded})
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _load(self, value: str) -> Any:
        return self.pickle.loads(base64.b64decode(value))


def _failure(message: str, status: int = 200) -> Response:
    # The reference answers failures with 200 and success=false; the client reads `error`.
    return JSONResponse({"success": False, "error": message}, status_code=status)
