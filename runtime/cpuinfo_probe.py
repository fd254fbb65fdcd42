"""py-cpuinfo's answer without its one-second clock measurement, for apps that import `runpod`.

`from runpod_flash import Endpoint` imports the `runpod` SDK, whose `rp_debugger` module calls
`cpuinfo.get_cpu_info()` at import time. py-cpuinfo answers in a fresh Python process, where its
CPUID path measures the clock by sleeping one second: about 1.2 s of every Flash app's boot. Yet
on Linux it copies the measured clock into its answer only when `/proc/cpuinfo` gave none, so there
the measurement is thrown away.

When `cpuinfo.cpuinfo` is imported, `install()` swaps its `get_cpu_info_json` (which
`get_cpu_info` calls) for one that runs the same py-cpuinfo code in a fresh process, skipping the
clock measurement only when `/proc/cpuinfo` reports the clock, and remembers the answer. Every
field (brand_raw, flags, caches, hz_actual...) is the one py-cpuinfo would have given.
`FLASH_FAST_CPUINFO=0` turns this off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

MODULE = "cpuinfo.cpuinfo"

# Run in a fresh interpreter, as py-cpuinfo itself does (its CPUID code forks, which is not safe
# from the worker's multi-threaded process). argv[1] is the folder that holds the cpuinfo package.
_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from cpuinfo import cpuinfo as c
measure = c.CPUID.get_raw_hz
def clock_known():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("cpu MHz") for line in f)
    except OSError:
        return False
if clock_known():  # py-cpuinfo keeps /proc/cpuinfo's clock and discards the measured one
    c.CPUID.get_raw_hz = lambda self: 0
print(json.dumps(c._get_cpu_info_internal()))
"""


def install() -> None:
    """Patch py-cpuinfo when (and if) the application imports it."""
    module = sys.modules.get(MODULE)
    if module is not None:
        _patch(module)
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _patch(module: ModuleType) -> None:
    if getattr(module.get_cpu_info_json, "__flash_probe__", False):
        return
    original = module.get_cpu_info_json
    if module.__file__ is None:
        return
    package_folder = str(Path(module.__file__).resolve().parent.parent)
    answer: list[str] = []

    def get_cpu_info_json() -> str:
        if not answer:
            try:
                done = subprocess.run(
                    [sys.executable, "-c", _PROBE, package_folder],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            except (OSError, subprocess.SubprocessError):
                return original()
            if done.returncode != 0 or not done.stdout.strip():
                return original()
            answer.append(done.stdout.strip())
        return answer[0]

    get_cpu_info_json.__flash_probe__ = True  # type: ignore[attr-defined]
    setattr(module, "get_cpu_info_json", get_cpu_info_json)  # noqa: B010 (a module attribute)
