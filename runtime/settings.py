"""Settings: one frozen structure, read from the environment once at boot."""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from .privileges import APP_USER, DEFAULT_USER, RunAs, parse_user

PLATFORM_ARTIFACT = "/root/.runpod/artifact.tar.gz"
APP_FOLDER = "/app"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
VOLUME = Path("/runpod-volume")  # the platform's network volume, when the endpoint has one
BYTECODE_STORE = Path("/opt/flash/bytecode")  # the images' compiled packages (runtime/bytecode.py)


class SettingsError(ValueError):
    """One or more environment variables hold a value the runtime cannot use."""


class MetricsMode(str, enum.Enum):
    """Where `/metrics` is served."""

    HEALTH = "health"  # only on a separate PORT_HEALTH listener
    ALWAYS = "1"
    NEVER = "0"


class ServerKind(str, enum.Enum):
    HYPERCORN = "hypercorn"
    UVICORN = "uvicorn"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the runtime reads from its environment, parsed and checked."""

    module_path: Path
    manifest_path: Path
    module_name: str | None = None
    resource_name: str | None = None
    artifact_path: Path | None = None
    artifact_setting: str = "FLASH_ARTIFACT_PATH"
    artifact_wait: float = 0.0
    artifact_max_bytes: int = 4 << 30
    artifact_max_members: int = 200_000
    artifact_cache: Path | None = None
    bytecode_store: Path | None = None
    run_as: RunAs = APP_USER
    app_venv: Path | None = None
    link_app_venv: bool = True
    startup_hook: str | None = None

    host: str = "0.0.0.0"
    port: int = 8000
    health_port: int = 8000
    log_level: str = "INFO"
    log_format: str = "json"
    server: ServerKind = ServerKind.HYPERCORN

    max_concurrency: int = 0
    max_pending: int = 100
    max_queue_wait: float = 330.0
    sync_threads: int = 40
    request_timeout: float = 330.0
    max_body_bytes: int = 31_457_280
    max_form_fields: int = 1000
    max_form_files: int = 1000
    max_form_part_bytes: int = 1024 * 1024
    graceful_timeout: float = 25.0
    drain_quiet: float = 1.0
    keep_alive_timeout: float = 600.0
    max_header_bytes: int = 32768
    max_headers: int = 100
    header_timeout: float = 30.0
    body_timeout: float = 60.0

    enable_execute: bool = False
    fast_cpuinfo: bool = True
    openapi: bool = True
    metrics: MetricsMode = MetricsMode.HEALTH

    @property
    def separate_health_port(self) -> bool:
        return self.health_port != self.port

    @property
    def metrics_on_health_port(self) -> bool:
        return self.separate_health_port and self.metrics is not MetricsMode.NEVER

    @property
    def metrics_on_main_port(self) -> bool:
        return self.metrics is MetricsMode.ALWAYS

    @property
    def metrics_served(self) -> bool:
        return self.metrics_on_main_port or self.metrics_on_health_port

    def public(self) -> dict[str, Any]:
        """The settings as plain JSON-able values, for the boot log line."""
        return msgspec.to_builtins(self, enc_hook=str)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every variable; report all bad values at once."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        module_path, module_name = _app_location(reader.text("FLASH_MODULE_PATH", None))
        manifest_default = str(module_path / "flash_manifest.json")
        port = reader.number("PORT", 8000, int, _valid_port)
        deployed = bool(env.get("RUNPOD_ENDPOINT_ID") or env.get("RUNPOD_POD_ID"))
        artifact = _artifact(reader, env)
        settings = dict(
            module_path=module_path,
            module_name=module_name,
            manifest_path=Path(
                reader.text("FLASH_MANIFEST_PATH", None) or manifest_default
            ).resolve(),
            resource_name=reader.text("FLASH_RESOURCE_NAME", None),
            **artifact,
            artifact_max_bytes=reader.number("FLASH_ARTIFACT_MAX_BYTES", 4 << 30, int, _positive),
            artifact_max_members=reader.number(
                "FLASH_ARTIFACT_MAX_MEMBERS", 200_000, int, _positive
            ),
            artifact_cache=_cache_dir(env),
            bytecode_store=_bytecode_store(env),
            run_as=reader.user("FLASH_USER", DEFAULT_USER, deployed),
            app_venv=reader.path("FLASH_APP_VENV"),
            link_app_venv=reader.flag("FLASH_LINK_APP_VENV", True),
            startup_hook=reader.text("FLASH_STARTUP_HOOK", None, _valid_hook),
            host=reader.text("HOST", "0.0.0.0"),
            port=port,
            health_port=reader.number("PORT_HEALTH", port, int, _valid_port),
            log_level=reader.choice(
                "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True
            ),
            log_format=reader.choice("LOG_FORMAT", "json", ("json", "console")),
            server=ServerKind(
                reader.choice("FLASH_SERVER", "hypercorn", tuple(k.value for k in ServerKind))
            ),
            max_concurrency=reader.number("FLASH_MAX_CONCURRENCY", 0, int, _non_negative),
            max_pending=reader.number("FLASH_MAX_PENDING", 100, int, _non_negative),
            sync_threads=reader.number("FLASH_SYNC_THREADS", 40, int, _positive),
            request_timeout=reader.number("FLASH_REQUEST_TIMEOUT", 330.0, float, _non_negative),
            max_queue_wait=reader.number("FLASH_MAX_QUEUE_WAIT", 330.0, float, _non_negative),
            max_body_bytes=reader.number("FLASH_MAX_BODY_BYTES", 31_457_280, int, _positive),
            max_form_fields=reader.number("FLASH_MAX_FORM_FIELDS", 1000, int, _positive),
            max_form_files=reader.number("FLASH_MAX_FORM_FILES", 1000, int, _positive),
            max_form_part_bytes=reader.number(
                "FLASH_MAX_FORM_PART_BYTES", 1024 * 1024, int, _positive
            ),
            graceful_timeout=reader.number("FLASH_GRACEFUL_TIMEOUT", 25.0, float, _non_negative),
            drain_quiet=reader.number("FLASH_DRAIN_QUIET", 1.0, float, _non_negative),
            keep_alive_timeout=reader.number("FLASH_KEEP_ALIVE_TIMEOUT", 600.0, float, _positive),
            max_header_bytes=reader.number("FLASH_MAX_HEADER_BYTES", 32768, int, _positive),
            max_headers=reader.number("FLASH_MAX_HEADERS", 100, int, _positive),
            header_timeout=reader.number("FLASH_HEADER_TIMEOUT", 30.0, float, _positive),
            body_timeout=reader.number("FLASH_BODY_TIMEOUT", 60.0, float, _positive),
            enable_execute=reader.flag("FLASH_ENABLE_EXECUTE", False),
            fast_cpuinfo=reader.flag("FLASH_FAST_CPUINFO", True),
            openapi=reader.flag("FLASH_OPENAPI", True),
            metrics=reader.metrics_mode("FLASH_METRICS"),
        )
        if settings["enable_execute"] and deployed:
            names = [name for name in ("RUNPOD_ENDPOINT_ID", "RUNPOD_POD_ID") if env.get(name)]
            reader.errors.append(
                f"FLASH_ENABLE_EXECUTE: /execute runs arbitrary code and is refused on a deployed "
                f"worker ({', '.join(names)} set)"
            )
        if reader.errors:
            raise SettingsError("invalid settings: " + "; ".join(reader.errors))
        return cls(**settings)


def _app_location(value: str | None) -> tuple[Path, str | None]:
    """FLASH_MODULE_PATH as (app folder, module name): a folder, or a dotted module path as
    runpod-flash's deploy code injects it, whose app folder is /app (else the working directory)."""
    if value is None:
        return Path(os.getcwd()).resolve(), None
    if _DOTTED.fullmatch(value) and not Path(value).is_dir():
        folder = Path(APP_FOLDER) if Path(APP_FOLDER).is_dir() else Path(os.getcwd())
        return folder.resolve(), value
    return Path(value).resolve(), None


def platform_unpacks(env: Mapping[str, str]) -> bool:
    """Whether this is a Flash-deployed worker whose build artifact the platform mounts."""
    if not env.get("RUNPOD_ENDPOINT_ID"):
        return False
    return env.get("FLASH_ENDPOINT_TYPE", "").strip().lower() in ("lb", "qb") or bool(
        env.get("FLASH_RESOURCE_NAME", "").strip()
    )


def _artifact(reader: _Reader, env: Mapping[str, str]) -> dict[str, Any]:
    """The archive to unpack: FLASH_ARTIFACT_PATH when set, else the platform's mounted artifact."""
    explicit = reader.path("FLASH_ARTIFACT_PATH")
    wait = reader.number("FLASH_ARTIFACT_WAIT", 90.0, float, _non_negative)
    disabled = reader.flag("FLASH_DISABLE_UNPACK", False)
    if explicit is not None:
        return {
            "artifact_path": explicit,
            "artifact_setting": "FLASH_ARTIFACT_PATH",
            "artifact_wait": 0.0,
        }
    if disabled or not platform_unpacks(env):
        return {"artifact_path": None}
    path = reader.path("FLASH_BUILD_ARTIFACT_PATH") or Path(PLATFORM_ARTIFACT)
    return {
        "artifact_path": path,
        "artifact_setting": "FLASH_BUILD_ARTIFACT_PATH",
        "artifact_wait": wait,
    }


def default_cache_root() -> Path | None:
    """`/runpod-volume/.flash-cache` when the platform's network volume is mounted, else no cache."""
    return VOLUME / ".flash-cache" if VOLUME.is_dir() and os.path.ismount(VOLUME) else None


def _cache_dir(env: Mapping[str, str]) -> Path | None:
    """FLASH_CACHE_DIR: a folder, `off` (or empty) for none; unset, the network volume's when mounted."""
    value = env.get("FLASH_CACHE_DIR")
    if value is None:
        return default_cache_root()
    value = value.strip()
    if value.lower() in ("", "off", *_FALSE):
        return None
    return Path(value).resolve()


def _bytecode_store(env: Mapping[str, str]) -> Path | None:
    """FLASH_BYTECODE_STORE: a folder, `off` (or empty) for none; unset, the images' when it exists."""
    value = env.get("FLASH_BYTECODE_STORE")
    if value is None:
        return BYTECODE_STORE if BYTECODE_STORE.is_dir() else None
    value = value.strip()
    if value.lower() in ("", "off", *_FALSE):
        return None
    return Path(os.path.abspath(value))  # not resolved: a symbolic link as the store is refused


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Reader:
    """Reads variables and collects every error instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.errors: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(
        self, name: str, default: str | None, check: Callable[[str], str | None] | None = None
    ) -> str | None:
        value = self._raw(name)
        if value is None:
            return default
        problem = check(value) if check else None
        if problem:
            self.errors.append(f"{name}={value!r}: {problem}")
            return default
        return value

    def path(self, name: str) -> Path | None:
        value = self._raw(name)
        return Path(value).resolve() if value is not None else None

    def number(
        self, name: str, default: Any, kind: type, check: Callable[[Any], str | None]
    ) -> Any:
        value = self._raw(name)
        if value is None:
            return default
        try:
            parsed = kind(value)
        except ValueError:
            self.errors.append(
                f"{name}={value!r}: not {'an integer' if kind is int else 'a number'}"
            )
            return default
        problem = check(parsed)
        if problem:
            self.errors.append(f"{name}={value!r}: {problem}")
            return default
        return parsed

    def flag(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.errors.append(f"{name}={value!r}: expected one of 1/0, true/false, yes/no, on/off")
        return default

    def metrics_mode(self, name: str) -> MetricsMode:
        """`health`, or a flag: any spelling `flag` accepts turns metrics on or off everywhere."""
        value = self._raw(name)
        if value is None or value.lower() == MetricsMode.HEALTH.value:
            return MetricsMode.HEALTH
        if value.lower() in _TRUE:
            return MetricsMode.ALWAYS
        if value.lower() in _FALSE:
            return MetricsMode.NEVER
        self.errors.append(
            f"{name}={value!r}: expected health, or a flag (1/0, true/false, yes/no, on/off)"
        )
        return MetricsMode.HEALTH

    def user(self, name: str, default: str, deployed: bool) -> RunAs:
        value = self._raw(name) or default
        parsed = parse_user(value)
        if isinstance(parsed, str):
            self.errors.append(f"{name}={value!r}: {parsed}")
            return APP_USER
        if parsed.is_root and deployed:
            self.errors.append(
                f"{name}={value!r}: application code never runs as root on a deployed worker"
            )
            return APP_USER
        return parsed

    def choice(self, name: str, default: str, allowed: tuple[str, ...], upper: bool = False) -> str:
        value = self._raw(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        if value not in allowed:
            self.errors.append(f"{name}={value!r}: expected one of {', '.join(allowed)}")
            return default
        return value


def _valid_port(value: int) -> str | None:
    return None if 0 < value < 65536 else "not a TCP port (1-65535)"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def _valid_hook(value: str) -> str | None:
    module, _, attr = value.partition(":")
    return None if module and attr else "expected module:callable"
