"""The reference's boot from a build artifact, as worker-flash-lb's `lb_handler` module does it.

The benchmark copies this file as `lb_handler.py` into an empty app folder and starts
`python -m uvicorn lb_handler:app --timeout-keep-alive 600` there, as the image's `/app` holds its
`lb_handler.py` and starts uvicorn on it. On import, the module does what the worker does in LB
mode (runpod-workers/flash `src/lb_handler.py` and `src/unpack_volume.py`), in the same order:

1. import FastAPI (from the server's environment), set up logging;
2. put the app folder first on `sys.path` and extract the archive at FLASH_BUILD_ARTIFACT_PATH into
   it with `tarfile` (`r:*`): every member's resolved path checked to stay inside the folder, then
   `extractall`;
3. import `runpod_flash.protos.remote_execution` (now the archive's runpod_flash);
4. load the generated `handler_<FLASH_RESOURCE_NAME>.py` from the app folder by file location and
   take its FastAPI `app` (its `/ping` is the generated one).

Left out: the worker's own `remote_executor` module (not part of runpod-flash; the reference is
timed without it, so its figures are if anything low), its retry loop (the archive is there).
The phases are printed as one JSON line (`reference_boot`) for the benchmark's report.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import tarfile
import time
from pathlib import Path

_start = time.perf_counter()
from fastapi import FastAPI  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
_phases = {"fastapi_import": time.perf_counter() - _start}
APP_DIR = Path(__file__).resolve().parent


def _timed(name: str, func, *args):
    start = time.perf_counter()
    try:
        return func(*args)
    finally:
        _phases[name] = time.perf_counter() - start


def _unpack(artifact: Path, target: Path) -> None:
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    resolved = target.resolve()
    with tarfile.open(artifact, mode="r:*") as tar:
        for member in tar.getmembers():
            if not (target / member.name).resolve().is_relative_to(resolved):
                raise ValueError(f"unsafe tar member path: {member.name}")
        tar.extractall(path=target)


def _load_handler(resource: str) -> FastAPI:
    path = APP_DIR / f"handler_{resource}.py"
    spec = importlib.util.spec_from_file_location("user_main", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded = module.app
    if not isinstance(loaded, FastAPI):
        raise TypeError(f"expected a FastAPI app in {path}, got {type(loaded).__name__}")
    return loaded


_timed("unpack", _unpack, Path(os.environ["FLASH_BUILD_ARTIFACT_PATH"]), APP_DIR)
_timed("runpod_flash_import", importlib.import_module, "runpod_flash.protos.remote_execution")
app = _timed("handler_import", _load_handler, os.environ["FLASH_RESOURCE_NAME"])
print(
    json.dumps(
        {
            "event": "reference_boot",
            "phases_ms": {k: round(v * 1000, 1) for k, v in _phases.items()},
        }
    ),
    flush=True,
)
