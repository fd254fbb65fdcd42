"""The bytecode store: compiled code for source files an app may carry, keyed by the source's hash.

A first start imports an unpacked app whose folder has no `__pycache__`: every module is compiled
from source, most of them the vendored packages of a `flash build` artifact (runpod-flash, pydantic,
aiohttp, the runpod SDK...). The images compile the packages they install for apps into a store,
one checked-hash pyc a source, named by the source's hash (`importlib.util.source_hash`, the value
in the pyc's header):

    python -m runtime.bytecode build OUT DIR...

`install(store)` puts a path hook in front of the default one whose source loader, where Python
would compile (no valid `__pycache__` entry), looks the source's hash up in the store and uses the
stored code when the pyc's header says it is this Python's and this very source's; anything else
compiles as before. The standard machinery still writes the usual pyc beside the source.

Stdlib only: the images run the builder with the apps' interpreter, before the runtime is copied in.
"""

from __future__ import annotations

import _imp
import argparse
import importlib.machinery
import importlib.util
import marshal
import os
import stat
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import CodeType
from typing import Any

_CHECKED_HASH = 0b11  # pyc flags: hash-based, checked against the source
_HEADER = importlib.util.MAGIC_NUMBER + _CHECKED_HASH.to_bytes(4, "little")


class StoreRefused(Exception):
    """The store cannot be trusted or opened; imports compile as without one."""


def entry_name(source: bytes) -> str:
    """The store's file name for a source: the hex of its hash."""
    return importlib.util.source_hash(source).hex() + ".pyc"


class Store:
    """An opened, checked store directory, and how many modules it has served."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd  # kept open: entries are read relative to the directory that was checked
        self.hits = 0
        self.hook = importlib.machinery.FileFinder.path_hook(*_loaders(self))

    def code(self, source: bytes, path: str) -> CodeType | None:
        """The stored code of this source, with `path` as its file name; None when absent or stale."""
        key = importlib.util.source_hash(source)
        try:
            fd = os.open(key.hex() + ".pyc", os.O_RDONLY, dir_fd=self.fd)
        except OSError:
            return None
        try:
            with open(fd, "rb") as file:
                data = file.read()
        except OSError:
            return None
        if data[:8] != _HEADER or data[8:16] != key:
            return None
        try:
            code = marshal.loads(memoryview(data)[16:])
        except (EOFError, ValueError, TypeError):
            return None
        if not isinstance(code, CodeType):
            return None
        # What importlib does to code read from a pyc: the file names become the real source's,
        # for tracebacks, warnings and inspect.
        _imp._fix_co_filename(code, path)  # type: ignore[attr-defined]
        self.hits += 1
        return code


def _loaders(store: Store) -> list[tuple[type, list[str]]]:
    """FileFinder's default loaders (importlib's `_get_supported_file_loaders`), the source one
    reading the store first."""

    class StoreSourceLoader(importlib.machinery.SourceFileLoader):
        def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> CodeType:  # type: ignore[override]
            # Called only when no valid bytecode is cached beside the source. The store holds
            # code compiled without -O: used only when this import would compile it the same way.
            if (
                isinstance(data, bytes)
                and isinstance(path, str)
                and _optimize == -1
                and not sys.flags.optimize
            ):
                code = store.code(data, path)
                if code is not None:
                    return code
            return super().source_to_code(data, path, _optimize=_optimize)

    return [
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (StoreSourceLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
    ]


def open_store(path: Path) -> Store:
    """The store at `path`, when it is a real directory of root's or this user's that nobody else
    may write; StoreRefused otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise StoreRefused(f"cannot open it: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    problem = None
    if info.st_uid not in (0, os.getuid()):
        problem = f"owned by uid {info.st_uid}, neither root nor this user ({os.getuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem is not None:
        os.close(fd)
        raise StoreRefused(problem)
    return Store(path, fd)


_installed: dict[Path, Store] = {}


def install(path: Path) -> Store:
    """Serve source imports from the store at `path` (first of sys.path_hooks); once a path.

    Finders already made for sys.path entries are dropped, so every later import goes through it.
    """
    store = _installed.get(path)
    if store is None:
        store = _installed[path] = open_store(path)
    if store.hook not in sys.path_hooks:
        sys.path_hooks.insert(0, store.hook)
        sys.path_importer_cache.clear()
    return store


# --------------------------------------------------------------------------- building a store


def _sources(folders: list[Path]) -> Iterator[Path]:
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    yield Path(root, name)


def build(out: Path, folders: list[Path]) -> dict[str, int]:
    """Compile every .py under `folders` into `out` (0755; files 0644, each written atomically).

    Returns the counts: sources seen, entries written, already present (the same source twice, or
    an earlier build), sources that do not compile (skipped) or cannot be read, and bytes written.
    """
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o755)
    counts = {"sources": 0, "written": 0, "present": 0, "failed": 0, "unreadable": 0, "bytes": 0}
    for source_path in _sources(folders):
        counts["sources"] += 1
        try:
            source = source_path.read_bytes()
        except OSError:
            counts["unreadable"] += 1
            continue
        target = out / entry_name(source)
        if target.exists():
            counts["present"] += 1
            continue
        try:
            with warnings.catch_warnings():  # invalid escapes and the like: the package's business
                warnings.simplefilter("ignore")
                code = compile(source, str(source_path), "exec", dont_inherit=True)
        except Exception:  # a template, a test written for another Python version
            counts["failed"] += 1
            continue
        data = _HEADER + importlib.util.source_hash(source) + marshal.dumps(code)
        _write(target, data)
        counts["written"] += 1
        counts["bytes"] += len(data)
    return counts


def _write(target: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with open(fd, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.bytecode",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser(
        "build", help="compile every .py under DIR... into the store OUT"
    )
    build_command.add_argument("out", type=Path, metavar="OUT")
    build_command.add_argument("folders", type=Path, nargs="+", metavar="DIR")
    args = parser.parse_args(argv)
    missing = [str(folder) for folder in args.folders if not folder.is_dir()]
    if missing:
        parser.error(f"not a directory: {', '.join(missing)}")
    counts = build(args.out, args.folders)
    total = sum(1 for entry in os.scandir(args.out) if entry.name.endswith(".pyc"))
    size = sum(
        entry.stat().st_size for entry in os.scandir(args.out) if entry.name.endswith(".pyc")
    )
    print(
        f"bytecode store {args.out}: {counts['sources']} sources, {counts['written']} compiled, "
        f"{counts['present']} already stored, {counts['failed']} not compilable, "
        f"{counts['unreadable']} unreadable; {total} entries, {size / 2**20:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
