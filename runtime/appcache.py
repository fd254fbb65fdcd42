"""Unpacked artifacts kept on a persistent volume, so the next cold start of the same build skips the unpack.

An entry is `<FLASH_CACHE_DIR>/<sha256 of the archive>-<python tag>/`: `tree/`, the archive as the
unpacker extracted it (with the same checks and limits as an unpack into the app folder), and
`complete.json`, written last, holding the key, the member count and size, and a digest of the
tree's listing (names, kinds, modes, sizes, file times, link targets; `__pycache__` folders aside).
The app folder then gets one symbolic link per top-level entry of the tree, so the app sees the
same `/app` either way, and the bytecode Python writes at import (`__pycache__`, a top-level one
included) lands in the entry: the next start imports from bytecode.

With the app venv's packages (`shared`, FLASH_LINK_APP_VENV), the tree holds links to the venv's
folders that the archive carries byte for byte (runtime/venvlinks.py): the key then also names the
venv (`-venv<id>`: its path and installed distributions), and the marker records a digest of the
linked venv folders (names, kinds, modes, sizes, file times), which a hit must still match.

An entry is used only when the cache folder, the entry, its marker and every file of its tree are
owned by the worker's user and writable by nobody else, the marker's key matches, the tree
matches the marker's listing, and the venv folders it links to match theirs. Anything else (a crash mid-write, a changed or foreign tree) is
logged and ignored: a new entry is built beside it (`<key>.1`, `<key>.2`...) and the old one left
alone, since another worker may be serving from it. Entries are built in a staging folder renamed
into place, so workers that start together never see each other's half-written trees; the loser
of the rename uses the winner's entry. A cache that cannot be written (a full disk) falls back to
an unpack into the app folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

from .artifact import Unpacked, UnpackLimits, UnpackWriteError, extract, unpack_artifact
from .errors import StartupError
from .import_timer import Phases
from .privileges import RunAs, running_as_root
from .venvlinks import VenvPackages

_log = structlog.get_logger("runtime.appcache")

TREE = "tree"
MARKER = "complete.json"
PYCACHE = "__pycache__"
_STAGING = ".staging-"
_STALE = 3600.0  # seconds after which a staging folder is a dead worker's
_SLOTS = 8  # entries tried for one key: the first, then up to 7 rebuilt beside broken ones
_MARKER_MAX = 1 << 16


def python_tag() -> str:
    """The interpreter bytecode depends on: implementation, version and magic number."""
    version = ".".join(map(str, sys.version_info[:3]))
    return f"{sys.implementation.name}-{version}-{importlib.util.MAGIC_NUMBER.hex()}"


def prepare_root(root: Path | None, run_as: RunAs) -> None:
    """As root, before privileges are dropped: create a missing cache folder for the app user.

    The volume is usually root's. An existing folder is left as it is: whether it can be trusted is
    decided after the drop, as the app user.
    """
    if root is None or not running_as_root():
        return
    try:
        os.mkdir(root, 0o700)
    except OSError:
        return  # there already, or not possible: the check after the drop says which
    if run_as.is_root:
        return
    try:  # the folder just made, never what a name swapped in since then points to
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        os.fchown(fd, run_as.uid, run_as.gid)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class CacheResult:
    result: str  # "hit", "miss" or "ignored"
    unpacked: Unpacked | None = None
    entry: Path | None = None
    reason: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # hash, check, build, link


def unpack_cached(
    source: IO[bytes],
    label: str,
    destination: Path,
    limits: UnpackLimits,
    root: Path,
    shared: VenvPackages | None = None,
) -> CacheResult:
    """Link a valid entry for this archive into `destination`, building it first when there is
    none; members identical to `shared`'s files are linked to them (see the module's text)."""
    result = _unpack_cached(source, label, destination, limits, root, shared)
    log = _log.warning if result.result == "ignored" else _log.info
    log(
        "artifact cache",
        result=result.result,
        entry=str(result.entry) if result.entry else None,
        reason=result.reason,
    )
    return result


def _unpack_cached(
    source: IO[bytes],
    label: str,
    destination: Path,
    limits: UnpackLimits,
    root: Path,
    shared: VenvPackages | None,
) -> CacheResult:
    clock = Phases()
    key = f"{clock.timed('artifact_hash', _sha256, source)}-{python_tag()}"
    venv = shared.identity() if shared is not None else None
    if venv is None:
        shared = None
    else:
        key += f"-venv{venv}"
    problem = _usable_root(root)
    if problem is not None:
        return _plain(source, label, destination, limits, f"{root}: {problem}", clock, shared)
    _sweep_staging(root)
    ignored: list[str] = []
    for slot in _slots(root, key):
        reason = clock.timed("cache_check", entry_problem, slot, key, limits, shared)
        if reason is None:
            hit = CacheResult("hit", _marker_counts(slot), slot, "; ".join(ignored) or None)
            return _use(slot, destination, hit, clock)
        if reason != "missing":
            _log.warning("artifact cache entry ignored", entry=str(slot), reason=reason)
            ignored.append(f"{slot.name}: {reason}")
    try:
        entry, unpacked = clock.timed(
            "cache_build", _build, source, label, root, key, limits, shared
        )
    except UnpackWriteError as exc:
        reason = f"cannot write the cache: {exc}"
        return _plain(source, label, destination, limits, reason, clock, shared)
    if entry is None:
        reason = f"no free slot for {key}: {'; '.join(ignored)}"
        return _plain(source, label, destination, limits, reason, clock, shared)
    return _use(
        entry, destination, CacheResult("miss", unpacked, entry, "; ".join(ignored) or None), clock
    )


def _use(entry: Path, destination: Path, result: CacheResult, clock: Phases) -> CacheResult:
    clock.timed("cache_link", _link_tree, entry / TREE, destination)
    # The bytecode of the app's imports is what the entry keeps for the next start: written even
    # where PYTHONDONTWRITEBYTECODE is set (images set it to keep their layers clean).
    sys.dont_write_bytecode = False
    result.seconds = clock.seconds
    return result


def _plain(
    source: IO[bytes],
    label: str,
    destination: Path,
    limits: UnpackLimits,
    reason: str,
    clock: Phases,
    shared: VenvPackages | None,
) -> CacheResult:
    """The unpack without a cache, as when none is configured."""
    source.seek(0)
    unpacked = clock.timed(
        "unpack_plain", unpack_artifact, source, label, destination, limits, shared
    )
    return CacheResult("ignored", unpacked, None, reason, clock.seconds)


def _sha256(source: IO[bytes]) -> str:
    source.seek(0)
    digest = hashlib.sha256()
    while chunk := source.read(1 << 20):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()


def _slots(root: Path, key: str) -> list[Path]:
    return [root / key] + [root / f"{key}.{n}" for n in range(1, _SLOTS)]


def _owned_problem(st: os.stat_result, what: str) -> str | None:
    if st.st_uid != os.geteuid():
        return f"{what} is owned by uid {st.st_uid}, not {os.geteuid()}"
    if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022:
        return f"{what} is writable by group or others"
    return None


def _folder_problem(st: os.stat_result, what: str) -> str | None:
    """Why a folder of the cache (the cache folder, an entry) is not one this worker may trust."""
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder"
    return _owned_problem(st, what)


def _usable_root(root: Path) -> str | None:
    """Why the cache folder cannot be used, or None; a missing one is created when the parent allows."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        try:
            os.mkdir(root, 0o700)
            st = os.lstat(root)
        except OSError as exc:
            return f"cannot create it: {exc.strerror or exc}"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    problem = _folder_problem(st, "the cache folder")
    if problem is not None:
        return problem
    if not os.access(root, os.W_OK | os.X_OK):
        return "not writable"
    return None


def entry_problem(
    entry: Path, key: str, limits: UnpackLimits, shared: VenvPackages | None = None
) -> str | None:
    """Why `entry` must not be used for `key` ("missing" when there is none), or None when it is sound."""
    try:
        st = os.lstat(entry)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    problem = _folder_problem(st, "the entry")
    if problem is not None:
        return problem
    marker = _read_marker(entry / MARKER)
    if isinstance(marker, str):
        return marker
    if marker.get("key") != key:
        return f"key mismatch (its marker says {str(marker.get('key'))[:100]!r})"
    members, size = marker.get("members"), marker.get("bytes")
    if not isinstance(members, int) or not isinstance(size, int):
        return "marker without member count or size"
    if members > limits.max_members or size > limits.max_bytes:
        return "over FLASH_ARTIFACT_MAX_MEMBERS or FLASH_ARTIFACT_MAX_BYTES"
    listing = tree_digest(entry / TREE)
    if listing.problem is not None:
        return listing.problem
    if listing.digest != marker.get("tree"):
        return "the tree does not match its marker (torn or changed)"
    if listing.venv_links:
        if shared is None:
            return "links into an app venv, without one"
        if shared.folders_digest(listing.venv_links) != marker.get("venv"):
            return "the app venv's folders it links to changed since it was built"
    return None


def _read_marker(path: Path) -> dict | str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return "no completion marker (torn)"
    except OSError as exc:
        return f"unreadable marker: {exc.strerror or exc}"
    try:
        st = os.fstat(fd)
        problem = _owned_problem(st, "the marker")
        if problem is not None:
            return problem
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MARKER_MAX:
            return "the marker is not a small regular file"
        data = os.read(fd, _MARKER_MAX)
    finally:
        os.close(fd)
    try:
        marker = json.loads(data)
    except ValueError:
        return "the marker is not JSON (torn)"
    return marker if isinstance(marker, dict) else "the marker is not a JSON object"


def _marker_counts(entry: Path) -> Unpacked | None:
    marker = _read_marker(entry / MARKER)
    if isinstance(marker, str):
        return None
    links = [marker.get(name, 0) for name in ("linked_dirs", "linked_files", "copied_files")]
    counts = [n if isinstance(n, int) else 0 for n in links]
    return Unpacked(marker["members"], marker["bytes"], *counts)


@dataclass
class Listing:
    digest: str = ""
    problem: str | None = None
    venv_links: list[str] = field(default_factory=list)  # absolute link targets (into a venv)


def tree_digest(tree: Path) -> Listing:
    """A digest of every name under `tree` with its kind, mode, size, file time and link target;
    `__pycache__` folders (bytecode Python writes later) are left out. Anything not owned by the
    worker's user, or writable by group or others, is a problem."""
    digest = hashlib.sha256()
    uid = os.geteuid()
    pending = [""]
    venv_links: list[str] = []
    try:
        if not stat.S_ISDIR(os.lstat(tree).st_mode):
            return Listing(problem="the tree is not a folder")
        while pending:
            relative = pending.pop()
            with os.scandir(os.path.join(tree, relative)) as entries:
                found = sorted(entries, key=lambda e: e.name)
            for entry in found:
                st = entry.stat(follow_symlinks=False)
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.name == PYCACHE:
                    problem = _bytecode_problem(entry.path, st, name, uid)
                    if problem is not None:
                        return Listing(problem=problem)
                    continue
                if st.st_uid != uid or (not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022):
                    return Listing(
                        problem=f"{name} is foreign (owner {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
                    )
                if stat.S_ISDIR(st.st_mode):
                    line = f"d {name} {stat.S_IMODE(st.st_mode):o}"
                    pending.append(name)
                elif stat.S_ISREG(st.st_mode):
                    line = f"f {name} {stat.S_IMODE(st.st_mode):o} {st.st_size} {st.st_mtime_ns}"
                elif stat.S_ISLNK(st.st_mode):
                    target = os.readlink(entry.path)
                    line = f"l {name} {target}"
                    if target.startswith("/"):  # the unpacker's only absolute links: to the venv
                        venv_links.append(target)
                else:
                    return Listing(problem=f"{name} is not a file, folder or link")
                digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    except OSError as exc:
        return Listing(problem=f"unreadable tree: {exc.strerror or exc}")
    return Listing(digest.hexdigest(), venv_links=venv_links)


def _bytecode_problem(path: str, st: os.stat_result, name: str, uid: int) -> str | None:
    """A `__pycache__` folder is left out of the digest (Python adds to it), not out of the checks:
    it and its files must be the worker's and not writable by others."""
    if st.st_uid != uid or st.st_mode & 0o002:
        return f"{name} is foreign (owner {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
    if not stat.S_ISDIR(st.st_mode):
        return None if stat.S_ISREG(st.st_mode) else f"{name} is not a folder"
    with os.scandir(path) as entries:
        for entry in entries:
            inner = entry.stat(follow_symlinks=False)
            if inner.st_uid != uid or inner.st_mode & 0o002 or not stat.S_ISREG(inner.st_mode):
                return (
                    f"{name}/{entry.name} is foreign (owner {inner.st_uid}, mode {inner.st_mode:o})"
                )
    return None


def _build(
    source: IO[bytes],
    label: str,
    root: Path,
    key: str,
    limits: UnpackLimits,
    shared: VenvPackages | None = None,
) -> tuple[Path | None, Unpacked]:
    """Unpack into a staging folder, mark it complete, rename it into the first free slot."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{key[:16]}-", dir=root))
    except OSError as exc:
        raise UnpackWriteError(
            f"cannot create a staging folder in {root}: {exc.strerror or exc}"
        ) from None
    try:
        try:
            (staging / TREE).mkdir(0o700)
        except OSError as exc:
            raise UnpackWriteError(f"{staging}: {exc.strerror or exc}") from None
        unpacked = extract(source, label, staging / TREE, limits, shared=shared)
        try:
            (staging / TREE / PYCACHE).mkdir(
                0o700, exist_ok=True
            )  # the top-level modules' bytecode
            listing = tree_digest(staging / TREE)
            if listing.problem is not None:
                raise StartupError(f"{label}: the unpacked tree in {staging}: {listing.problem}")
            venv = None
            if listing.venv_links:
                assert shared is not None  # nothing else makes absolute links
                venv = shared.folders_digest(listing.venv_links)
                if venv is None:
                    raise StartupError(f"{label}: the app venv's linked folders cannot be read")
            marker = {
                "key": key,
                "members": unpacked.members,
                "bytes": unpacked.bytes,
                "linked_dirs": unpacked.linked_dirs,
                "linked_files": unpacked.linked_files,
                "copied_files": unpacked.copied_files,
                "tree": listing.digest,
                "venv": venv,
                "created": time.time(),
            }
            fd = os.open(
                staging / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
            with os.fdopen(fd, "w") as out:
                json.dump(marker, out)
        except OSError as exc:
            raise UnpackWriteError(
                f"{label}: writing the cache entry failed: {exc.strerror or exc}"
            ) from None
        for slot in _slots(root, key):
            try:
                os.rename(staging, slot)
                return slot, unpacked
            except OSError:
                pass  # taken: another worker's entry (use it when sound), or a broken one (try the next)
            if entry_problem(slot, key, limits, shared) is None:
                return slot, unpacked
        return None, unpacked
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link_tree(tree: Path, destination: Path) -> None:
    """One symbolic link in `destination` per top-level entry of `tree`, replacing same-named entries."""
    try:
        destination.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(tree / PYCACHE, 0o700)
        except FileExistsError:
            pass
        for name in sorted(os.listdir(tree)):
            source, target = os.path.join(tree, name), os.path.join(destination, name)
            try:
                os.symlink(source, target)
            except FileExistsError:
                if stat.S_ISDIR(os.lstat(target).st_mode):
                    shutil.rmtree(target)
                else:
                    os.unlink(target)
                os.symlink(source, target)
    except OSError as exc:
        raise StartupError(
            f"linking the cached app {tree} into {destination} failed: {exc.strerror or exc}"
        ) from None


def _sweep_staging(root: Path) -> None:
    """Remove, in the background, staging folders of workers that died mid-unpack (older than an hour)."""

    def sweep() -> None:
        now = time.time()
        try:
            with os.scandir(root) as entries:
                stale = [
                    e.path
                    for e in entries
                    if e.name.startswith(_STAGING)
                    and e.is_dir(follow_symlinks=False)
                    and now - e.stat(follow_symlinks=False).st_mtime > _STALE
                ]
        except OSError:
            return
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)

    threading.Thread(target=sweep, name="cache-sweep", daemon=True).start()
