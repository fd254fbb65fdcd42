"""Unpack a `flash build` artifact (.tar.gz) into the app folder, deciding every member by its name.

The archive is hostile input. Nothing here asks the filesystem what a path resolves to: each
member's fate is decided lexically, from its normalised name and the names seen before it, so the
checks do not depend on which Python's `tarfile` (with or without extraction filters) is installed.

- Names: absolute paths, `..` components, NUL bytes and empty names are refused.
- Links: a symbolic link must be relative and, resolved lexically from where it stands, stay inside
  the tree without passing through another link; a hard link must name a regular file extracted
  before it. No member may be written through a link: a name whose parent is a link is refused,
  and links are created only after every file and directory is written.
- Kinds: regular files, directories and links only (no devices or FIFOs); a member that changes the
  kind of a name already extracted is refused.
- Modes: permission bits only, never set-uid, set-gid or sticky, never group- or world-writable;
  ownership is never taken from the archive.
- Size: the total of the members' sizes and the member count are capped (settings).
- Atomicity: members are written into a fresh staging directory inside the destination; only when
  the whole archive is extracted are its top-level entries renamed into place (replacing entries of
  the same name). A failure leaves the destination as it was.
- Shared packages: with a `VenvPackages` (runtime/venvlinks.py), a file member byte-identical to the
  app venv's file of the same relative path is not written; once every member is known, a folder
  made only of such files (and such folders), whose venv counterpart lists exactly those names,
  becomes a symbolic link to the venv's folder, and the other identical files are copied from the
  venv, checked against the member's digest. Folders that may become links are created only when
  something is written into them, or at the end.

Every problem, a truncated gzip and a full disk included, is a StartupError naming the archive.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import StartupError
from .tarstream import DIR, FILE, HARDLINK, SYMLINK, Member, TarFormatError, TarReader
from .venvlinks import VenvChanged, VenvPackages

_STAGING_PREFIX = ".flash-unpack-"
_POLL = 0.25  # seconds between looks for a late artifact


@dataclass(frozen=True)
class UnpackLimits:
    """Caps on what one archive may write."""

    max_bytes: int
    max_members: int


@dataclass(frozen=True)
class Unpacked:
    members: int
    bytes: int
    linked_dirs: int = 0  # folders linked to the app venv's identical ones
    linked_files: int = 0  # files inside those folders, not written
    copied_files: int = 0  # files identical to the venv's outside them, copied from it


class UnpackWriteError(StartupError):
    """The archive was fine but writing it failed (a full disk, a read-only folder)."""


def unpack_artifact(
    source: IO[bytes],
    label: str,
    destination: Path,
    limits: UnpackLimits,
    shared: VenvPackages | None = None,
) -> Unpacked:
    """Extract the archive read from `source` into `destination`; `label` names it in errors;
    members identical to `shared`'s files are linked or copied from there."""
    try:
        destination.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(destination)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=destination))
    except OSError as exc:
        raise UnpackWriteError(
            f"{label}: cannot unpack into {destination}: {_os_reason(exc)}"
        ) from None
    try:
        result = extract(source, label, staging, limits, shown=destination, shared=shared)
        try:
            _move_into_place(staging, destination)
        except OSError as exc:
            raise UnpackWriteError(
                f"{label}: unpacking into {destination} failed: {_os_reason(exc)}"
            ) from None
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def extract(
    source: IO[bytes],
    label: str,
    into: Path,
    limits: UnpackLimits,
    shown: Path | None = None,
    shared: VenvPackages | None = None,
) -> Unpacked:
    """Extract the archive into the empty folder `into` (`shown` in errors), which the caller removes on failure."""
    try:
        return _Extraction(into, label, limits, shared).run(source)
    except VenvChanged as exc:
        raise StartupError(f"{label}: the app venv's copy of a member: {exc}") from None
    except TarFormatError as exc:
        raise StartupError(
            f"{label}: not a readable .tar.gz archive (truncated or corrupt): {exc}"
        ) from None
    except OSError as exc:
        raise UnpackWriteError(
            f"{label}: unpacking into {shown or into} failed: {_os_reason(exc)}"
        ) from None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _remove_stale_staging(destination: Path) -> None:
    """Staging folders left by a worker killed mid-unpack."""
    for entry in os.scandir(destination):
        if entry.name.startswith(_STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def _move_into_place(staging: Path, destination: Path) -> None:
    for entry in sorted(os.listdir(staging)):
        target = destination / entry
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.rename(staging / entry, target)


def normalise(name: str) -> tuple[str, ...] | str:
    """A member name as its path components, or the reason it is refused."""
    if "\x00" in name:
        return "has a NUL byte in its name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    parts = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return "escapes the app folder with '..'"
        parts.append(part)
    return tuple(parts)


class _Extraction:
    """One pass over the archive's members, in order."""

    def __init__(
        self, root: Path, label: str, limits: UnpackLimits, shared: VenvPackages | None = None
    ):
        self.prefix = str(root) + "/"
        self.label = label
        self.limits = limits
        self.shared = shared
        self.kinds: dict[tuple[str, ...], str] = {(): "dir"}
        self.made: set[tuple[str, ...]] = {()}  # folders created so far
        self.links: list[tuple[str, tuple[str, ...], str]] = []
        # With `shared`: folder members not created yet, and files identical to the venv's not
        # written yet (mode, mtime, SHA-256 of the data).
        self.dir_modes: dict[tuple[str, ...], int] = {}
        self.deferred: dict[tuple[str, ...], tuple[int, float, bytes]] = {}
        self.members = 0
        self.bytes = 0
        self.linked_dirs = self.linked_files = self.copied_files = 0
        self.umask = _umask()

    def refuse(self, name: str, why: str) -> StartupError:
        return StartupError(f"{self.label}: member {name!r} {why}")

    def run(self, source: IO[bytes]) -> Unpacked:
        reader = TarReader(source)
        for member in reader.members():
            self.members += 1
            if self.members > self.limits.max_members:
                raise StartupError(
                    f"{self.label}: more than {self.limits.max_members} members (FLASH_ARTIFACT_MAX_MEMBERS)"
                )
            self.add(reader, member)
        # Links are checked once every name is known (a later member could turn a component of an
        # earlier link's target into a link) and created last, so no write ever follows one.
        for name, parts, target in self.links:
            self.check_symlink(name, parts, target)
        if self.shared is not None:
            self.place_shared(self.shared)
        for _name, parts, target in self.links:
            self.makedirs(parts[:-1])
            os.symlink(target, self.path(parts))
        return Unpacked(
            self.members, self.bytes, self.linked_dirs, self.linked_files, self.copied_files
        )

    def path(self, parts: tuple[str, ...]) -> str:
        return self.prefix + "/".join(parts)

    def add(self, reader: TarReader, member: Member) -> None:
        parts = normalise(member.name)
        if isinstance(parts, str):
            raise self.refuse(member.name, parts)
        if not parts:
            return  # the archive's root ("." or "./")
        self.check_parents(member.name, parts)
        if member.kind == DIR:
            self.claim(member.name, parts, "dir")
            mode = _safe_mode(member.mode) | 0o700
            if self.shared is None or parts in self.made:
                self.make_dir(parts, mode)
            else:
                self.dir_modes[parts] = mode  # it may become a link
        elif member.kind == FILE:
            self.count_bytes(member)
            if self.claim(member.name, parts, "file"):
                self.forget(parts)  # a later member of the same name wins, as with tar
            self.add_file(reader, member, parts)
        elif member.kind == SYMLINK:
            self.claim(member.name, parts, "link")
            self.links.append((member.name, parts, member.linkname))
        elif member.kind == HARDLINK:
            source = normalise(member.linkname)
            if isinstance(source, str) or self.kinds.get(source) != "file":
                raise self.refuse(
                    member.name,
                    f"is a hard link to {member.linkname!r}, which is not a file extracted before it",
                )
            if source in self.deferred:
                self.copy_shared(source)
            if self.claim(member.name, parts, "file"):
                self.forget(parts)
            self.makedirs(parts[:-1])
            os.link(self.path(source), self.path(parts), follow_symlinks=False)
        else:
            raise self.refuse(member.name, "is a device, FIFO or other special file")

    def check_parents(self, name: str, parts: tuple[str, ...]) -> None:
        for depth in range(1, len(parts)):
            kind = self.kinds.get(parts[:depth])
            if kind == "link":
                raise self.refuse(
                    name, f"would be written through the link {'/'.join(parts[:depth])!r}"
                )
            if kind == "file":
                raise self.refuse(name, f"is under {'/'.join(parts[:depth])!r}, which is a file")

    def claim(self, name: str, parts: tuple[str, ...], kind: str) -> bool:
        """Record the name's kind; True when an earlier member of the same name and kind exists."""
        for depth in range(1, len(parts)):
            self.kinds.setdefault(parts[:depth], "dir")
        before = self.kinds.get(parts)
        if before is not None and (before != kind or kind == "link"):
            raise self.refuse(name, f"replaces an earlier {before} of the same name")
        self.kinds[parts] = kind
        return before is not None

    def check_symlink(self, name: str, parts: tuple[str, ...], target: str) -> None:
        """Refuse a target that leaves the tree or passes through a link, walked from the link's folder."""
        if not target or "\x00" in target or target.startswith(("/", "\\")):
            raise self.refuse(name, f"is a symlink to {target!r}, outside the app folder")
        where = list(parts[:-1])
        pieces = [p for p in target.replace("\\", "/").split("/") if p not in ("", ".")]
        for index, piece in enumerate(pieces):
            if piece == "..":
                if not where:
                    raise self.refuse(name, f"is a symlink to {target!r}, outside the app folder")
                where.pop()
                continue
            where.append(piece)
            last = index == len(pieces) - 1
            if not last and self.kinds.get(tuple(where)) == "link":
                raise self.refuse(name, f"is a symlink to {target!r}, through another link")
        if tuple(where) == parts:
            raise self.refuse(name, "is a symlink to itself")

    def count_bytes(self, member: Member) -> None:
        self.bytes += member.size
        if self.bytes > self.limits.max_bytes:
            raise StartupError(
                f"{self.label}: unpacks to more than {self.limits.max_bytes} bytes (FLASH_ARTIFACT_MAX_BYTES)"
            )

    def makedirs(self, parts: tuple[str, ...]) -> None:
        """Create the missing folders of `parts` (owner-only until a folder member gives a mode)."""
        if parts not in self.made:
            self.makedirs(parts[:-1])
            self.make_dir(parts, self.dir_modes.pop(parts, 0o700))

    def make_dir(self, parts: tuple[str, ...], mode: int) -> None:
        # The final mode at once: it always lets the owner write, so later members still go in.
        path = self.path(parts)
        if parts in self.made:
            os.chmod(path, mode)
            return
        self.makedirs(parts[:-1])
        os.mkdir(path, mode)
        if mode & self.umask:
            os.chmod(path, mode)
        self.made.add(parts)

    def forget(self, parts: tuple[str, ...]) -> None:
        """Drop the file an earlier member of this name left (written, or deferred)."""
        if self.deferred.pop(parts, None) is None:
            os.unlink(self.path(parts))

    def add_file(self, reader: TarReader, member: Member, parts: tuple[str, ...]) -> None:
        mode = _safe_mode(member.mode) | 0o600
        chunks: Iterable[bytes] = (
            (reader.data(),) if member.size <= _WHOLE else reader.data_chunks()
        )
        shared = self.shared
        if shared is not None and shared.size_of(parts, bool(mode & 0o100)) == member.size:
            chunks = list(chunks)  # at most the size of a file the venv holds
            if shared.holds(parts, chunks):
                digest = hashlib.sha256()
                for chunk in chunks:
                    digest.update(chunk)
                self.deferred[parts] = (mode, member.mtime, digest.digest())
                return
        self.write(parts, mode, member.mtime, chunks)

    def write(
        self, parts: tuple[str, ...], mode: int, mtime: float, chunks: Iterable[bytes]
    ) -> None:
        """Create the file with its final mode, write it in as few calls as its pieces, date it."""
        self.makedirs(parts[:-1])
        fd = os.open(self.path(parts), _CREATE, mode)
        try:
            for piece in chunks:
                _write_all(fd, piece)
            if mode & self.umask:
                os.fchmod(fd, mode)
            if mtime:
                os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    def copy_shared(self, parts: tuple[str, ...]) -> None:
        """Write a deferred file from the venv's copy, which must still match the member."""
        assert self.shared is not None
        mode, mtime, digest = self.deferred.pop(parts)
        self.write(parts, mode, mtime, (self.shared.read_verified(parts, digest),))
        self.copied_files += 1

    def place_shared(self, shared: VenvPackages) -> None:
        """Once every member is known: link the folders the venv holds whole, copy the other
        deferred files, create the folders still pending."""
        children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for parts in self.kinds:
            if parts:
                children.setdefault(parts[:-1], []).append(parts)
        whole: dict[tuple[str, ...], bool] = {}
        folders = [p for p, kind in self.kinds.items() if kind == "dir" and p]
        for parts in sorted(folders, key=len, reverse=True):  # children before parents
            kids = children.get(parts, [])
            whole[parts] = (
                parts not in self.made
                and all(
                    kid in self.deferred if self.kinds[kid] == "file" else whole.get(kid, False)
                    for kid in kids
                )
                and shared.listing(parts) == {kid[-1] for kid in kids}
            )
        linked = {p for p, ok in whole.items() if ok and not whole.get(p[:-1], False)}

        def under_link(parts: tuple[str, ...]) -> bool:
            return any(parts[:depth] in linked for depth in range(1, len(parts)))

        for parts in sorted(linked):
            self.makedirs(parts[:-1])
            os.symlink(shared.target(parts), self.path(parts))
        self.linked_dirs = len(linked)
        for parts in list(self.deferred):
            if under_link(parts):
                del self.deferred[parts]
                self.linked_files += 1
            else:
                self.copy_shared(parts)
        for parts in sorted(self.dir_modes, key=len):
            if parts in self.dir_modes and parts not in linked and not under_link(parts):
                self.makedirs(parts)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WHOLE = 1 << 20  # files up to this size are read and written in one piece


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _umask() -> int:
    """The process's umask, read without changing it (another thread may be creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: set every mode explicitly


def _safe_mode(mode: int) -> int:
    """Permission bits only: no set-uid/set-gid/sticky, nothing writable by group or others."""
    return stat.S_IMODE(mode) & 0o755


def open_artifact(path: Path, setting: str) -> IO[bytes]:
    """Open the archive (as root, before privileges are dropped); a clear StartupError otherwise."""
    try:
        source = open(path, "rb")  # handed to the unpack, which closes it
    except FileNotFoundError:
        raise StartupError(f"{setting}: no such file: {path}") from None
    except IsADirectoryError:
        raise StartupError(f"{setting}: {path} is a directory, not a .tar.gz archive") from None
    except OSError as exc:
        raise StartupError(f"{setting}: cannot read {path}: {_os_reason(exc)}") from None
    if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
        source.close()
        raise StartupError(f"{setting}: {path} is not a regular file")
    return source


async def wait_for_artifact(
    path: Path, setting: str, wait: float, on_wait: Callable[[], None]
) -> IO[bytes]:
    """Open the archive once it exists; the platform's volume can be mounted after the worker starts."""
    deadline = time.monotonic() + wait
    if not _present(path) and wait > 0:
        on_wait()
        while not _present(path):
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"{setting}: no build artifact at {path} after waiting {wait:g} s (FLASH_ARTIFACT_WAIT)"
                )
            await asyncio.sleep(_POLL)
    return open_artifact(path, setting)


def _present(path: Path) -> bool:
    """Whether something is at `path`; one we may not look at counts, so that opening it explains."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True
