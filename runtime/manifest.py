"""The `flash_manifest.json` format that `flash build` writes, and the choice of the resource to serve.

Only `resources.<name>.functions[].{name, module, http_method, http_path}` matter to the runtime;
every other field is optional, and unknown fields are ignored so newer manifests still boot.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from .errors import StartupError

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RESERVED_PATHS = ("/ping", "/execute")
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z_]+)?\}")


class FunctionEntry(msgspec.Struct, kw_only=True):
    """One function of a resource; load-balanced ones carry the HTTP route they serve."""

    name: str
    module: str
    http_method: str | None = None
    http_path: str | None = None
    is_async: bool | None = None
    is_class: bool = False


class Resource(msgspec.Struct, kw_only=True):
    """One deployable resource: a queue-based worker or a load-balanced HTTP endpoint."""

    functions: list[FunctionEntry] = []
    is_load_balanced: bool = False
    is_live_resource: bool = False
    resource_type: str | None = None
    module_path: str | None = None
    file_path: str | None = None


class Manifest(msgspec.Struct, kw_only=True):
    """The whole manifest: named resources, plus build metadata the runtime does not need."""

    resources: dict[str, Resource]
    version: str | None = None
    project_name: str | None = None
    python_version: str | None = None
    generated_at: str | None = None


class Route(msgspec.Struct, frozen=True):
    """A route the runtime serves: the method, the path and where its handler lives."""

    method: str
    path: str
    module: str
    function: str
    entry: str  # "resources.<name>.functions[<i>]", for error messages

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))


class _ManifestOuter(msgspec.Struct):
    """The manifest with each resource left raw, so an error can name its resource."""

    resources: dict[str, msgspec.Raw]


_outer_decoder = msgspec.json.Decoder(_ManifestOuter)
_resource_decoder = msgspec.json.Decoder(Resource)
_decoder = msgspec.json.Decoder(Manifest)


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest file; any problem is a StartupError naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StartupError(
            f"manifest not found: {path} (set FLASH_MANIFEST_PATH or FLASH_MODULE_PATH)"
        ) from None
    except OSError as exc:
        raise StartupError(f"manifest unreadable: {path}: {exc.strerror}") from None
    try:
        outer = _outer_decoder.decode(data)
        for name, raw in outer.resources.items():
            try:
                _resource_decoder.decode(raw)
            except msgspec.ValidationError as exc:
                where = str(exc).replace("`$", f"`$.resources.{name}")
                if " - at `" not in where:
                    where += f" - at `$.resources.{name}`"
                raise StartupError(f"manifest invalid: {path}: {where}") from None
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise StartupError(f"manifest invalid: {path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise StartupError(f"manifest is not valid JSON: {path}: {exc}") from None


def platform_name(name: str) -> str:
    """A deployed endpoint's name as the manifest spells it: runpod-flash adds a `live-` prefix to
    live endpoints and a `-fb` suffix to FlashBoot ones, and strips both when it compares names."""
    if name.startswith("live-"):
        name = name[len("live-") :]
    if name.endswith("-fb"):
        name = name[: -len("-fb")]
    return name


def select_resource(manifest: Manifest, path: Path, name: str | None) -> tuple[str, Resource]:
    """The resource named by FLASH_RESOURCE_NAME, else the only load-balanced one."""
    if name is not None:
        for candidate in (name, platform_name(name)):
            if candidate in manifest.resources:
                return candidate, manifest.resources[candidate]
        known = ", ".join(sorted(manifest.resources)) or "none"
        raise StartupError(
            f"FLASH_RESOURCE_NAME={name!r} is not a resource of {path} (resources: {known})"
        )
    balanced = sorted(n for n, r in manifest.resources.items() if r.is_load_balanced)
    if len(balanced) == 1:
        return balanced[0], manifest.resources[balanced[0]]
    if not balanced:
        known = ", ".join(sorted(manifest.resources)) or "none"
        raise StartupError(
            f"{path} has no resource with is_load_balanced: true; set FLASH_RESOURCE_NAME (resources: {known})"
        )
    raise StartupError(
        f"{path} has several load-balanced resources ({', '.join(balanced)}); "
        f"set FLASH_RESOURCE_NAME to one of them"
    )


def check_module_name(module: str, resource_name: str, resource: Resource, path: Path) -> None:
    """FLASH_MODULE_PATH given as a dotted module must be one of the served resource's modules."""
    modules = {fn.module for fn in resource.functions}
    if resource.module_path:
        modules.add(resource.module_path)
    if module not in modules:
        raise StartupError(
            f"FLASH_MODULE_PATH={module!r} is not a module of resource {resource_name!r} in {path} "
            f"(its modules: {', '.join(sorted(modules)) or 'none'})"
        )


def resource_routes(resource_name: str, resource: Resource, path: Path) -> list[Route]:
    """The resource's HTTP routes, checked: method, path shape, no duplicates, nothing reserved."""
    routes: list[Route] = []
    seen: dict[tuple[str, str], str] = {}
    for index, fn in enumerate(resource.functions):
        entry = f"resources.{resource_name}.functions[{index}] ({fn.name})"
        if not fn.http_method or not fn.http_path:
            raise StartupError(
                f"{path}: {entry} has no http_method/http_path, so it cannot be served over HTTP"
            )
        method = fn.http_method.upper()
        if method not in HTTP_METHODS:
            raise StartupError(
                f"{path}: {entry} has http_method {fn.http_method!r}; expected one of {', '.join(HTTP_METHODS)}"
            )
        if not fn.http_path.startswith("/"):
            raise StartupError(
                f"{path}: {entry} has http_path {fn.http_path!r}; it must start with '/'"
            )
        normalized = fn.http_path.rstrip("/") or "/"
        if normalized in RESERVED_PATHS:
            raise StartupError(f"{path}: {entry} uses the reserved route {fn.http_path}")
        key = (method, _PATH_PARAM.sub("{}", fn.http_path))
        if key in seen:
            raise StartupError(
                f"{path}: {entry} duplicates the route {method} {fn.http_path} of {seen[key]}"
            )
        seen[key] = entry
        routes.append(Route(method, fn.http_path, fn.module, fn.name, entry))
    if not routes:
        raise StartupError(f"{path}: resource {resource_name!r} has no functions to serve")
    return routes


def json_schema() -> dict:
    """The JSON Schema of the manifest this runtime accepts, generated from the Structs."""
    return msgspec.json.schema(Manifest)
