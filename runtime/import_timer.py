"""Where boot time goes: the boot's phases (`Phases`), and each module's own execution time while
the app is imported, as `python -X importtime` reports it ("self" time: the module's code, less the
imports it makes).

The boot log line names the slowest modules, so a user sees what their cold start is made of
(a model loaded at import, an SDK that probes the machine) without rerunning anything.
"""

from __future__ import annotations

import importlib.abc
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any


class Phases:
    """Seconds per named phase of the boot; a phase timed twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, name: str, func: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class ImportTimes:
    """Self time per module imported while `measuring()` is active."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._children: list[float] = []  # time spent in nested imports, one slot per open import

    def slowest(self, count: int = 5) -> dict[str, float]:
        """The `count` modules with the longest own time, in milliseconds, slowest first."""
        ranked = sorted(self.seconds.items(), key=lambda item: item[1], reverse=True)[:count]
        return {name: round(seconds * 1000, 1) for name, seconds in ranked}

    @contextmanager
    def measuring(self) -> Iterator[ImportTimes]:
        finder = _TimingFinder(self)
        sys.meta_path.insert(0, finder)
        try:
            yield self
        finally:
            sys.meta_path.remove(finder)

    def run(self, name: str, exec_module: Any, module: ModuleType) -> None:
        self._children.append(0.0)
        start = time.perf_counter()
        try:
            exec_module(module)
        finally:
            total = time.perf_counter() - start
            nested = self._children.pop()
            self.seconds[name] = total - nested
            if self._children:
                self._children[-1] += total


class _TimingFinder(importlib.abc.MetaPathFinder):
    """Asks the finders after it for the spec, then times the loader's `exec_module`."""

    def __init__(self, times: ImportTimes):
        self.times = times

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname in self.times.seconds:
            return None
        for finder in (
            sys.meta_path[sys.meta_path.index(self) + 1 :] if self in sys.meta_path else ()
        ):
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        # Class-level loaders (built-in and frozen modules) are shared: leave them alone.
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module
        times = self.times

        def exec_module(module: ModuleType) -> None:
            times.run(fullname, original, module)

        try:
            loader.exec_module = exec_module
        except (AttributeError, TypeError):  # a loader with __slots__
            pass
        return spec
