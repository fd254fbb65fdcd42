"""The app's virtualenv as a source of identical files for the unpacker.

A `flash build` archive vendors runpod-flash and its whole tree (pydantic, aiohttp, the runpod SDK,
botocore...: thousands of files), and the images install the same packages into the app's
virtualenv (FLASH_APP_VENV, /opt/app). On a busy disk, creating those files is most of a first
start: a file costs its directory entry, inode and data blocks whatever its size. With
FLASH_LINK_APP_VENV on (the default) the unpacker asks this module, member by member, whether the
venv's site-packages holds the very same bytes at the same relative path; a folder of the archive
whose every entry is such a file (or such a folder), and whose venv counterpart holds exactly those
names, becomes one symbolic link to the venv's folder instead of hundreds of files.

What is compared, and why it is enough:
- Every file is compared byte for byte with the venv's file, read at boot (never a checksum
  recorded at build time: a downstream `pip install` may have changed the venv since), along with
  its owner-execute bit. The archive's own name checks run first and decide everything about where
  a member goes; this module only ever reads the venv.
- The venv's side is reached without following links: each folder on the way must be a real
  directory (lstat), and files are opened with O_NOFOLLOW.
- A folder is linked only when its listing in the venv, less `__pycache__` (Python's own bytecode,
  which it checks against the sources), names exactly the archive's entries. So the app sees the
  archive's tree: the same names and bytes, under symbolic links.
- A matching file in a folder that is not linked is copied from the venv, and the copy is checked
  against the archive member's SHA-256 digest: a venv file changed between the comparison and the
  copy is an error, never a silent substitution.

The venv belongs to the worker's user in the images, as `/app` does: a link gives the app no
file it could not already reach. Differences the app can observe: linked folders are symbolic
links (`os.path.realpath` leads into the venv), their files carry the venv's modification times
and permission bits (group and others), and writes into a linked package land in the venv.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class VenvChanged(Exception):
    """A venv file no longer holds the bytes it was found to hold earlier in this unpack."""


class VenvPackages:
    """A site-packages folder, read without following links, compared with archive members."""

    def __init__(self, root: Path):
        self.root = str(root)
        self._real_dirs: dict[tuple[str, ...], bool] = {(): True}

    def target(self, parts: tuple[str, ...]) -> str:
        """The venv path a link for `parts` points to."""
        return "/".join((self.root, *parts))

    def is_real_dir(self, parts: tuple[str, ...]) -> bool:
        """Whether every folder from the root down to `parts` is a directory, not a link."""
        known = self._real_dirs.get(parts)
        if known is None:
            known = self.is_real_dir(parts[:-1]) and _lstat_is_dir(self.target(parts))
            self._real_dirs[parts] = known
        return known

    def size_of(self, parts: tuple[str, ...], executable: bool) -> int | None:
        """The venv file's size when it is a regular file with the same owner-execute bit."""
        if not self.is_real_dir(parts[:-1]):
            return None
        try:
            info = os.lstat(self.target(parts))
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode) or bool(info.st_mode & stat.S_IXUSR) != executable:
            return None
        return info.st_size

    def holds(self, parts: tuple[str, ...], chunks: list[bytes]) -> bool:
        """Whether the venv file at `parts` holds exactly the bytes of `chunks`, and no more."""
        try:
            fd = os.open(self.target(parts), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as venv_file:  # buffered: read(n) returns n bytes before the end
                return all(venv_file.read(len(chunk)) == chunk for chunk in chunks) and not (
                    venv_file.read(1)
                )
        except OSError:
            return False

    def listing(self, parts: tuple[str, ...]) -> set[str] | None:
        """The names in the venv folder at `parts` less `__pycache__`; None unless a real folder."""
        if not self.is_real_dir(parts):
            return None
        try:
            with os.scandir(self.target(parts)) as entries:
                return {
                    entry.name
                    for entry in entries
                    if not (entry.name == "__pycache__" and entry.is_dir(follow_symlinks=False))
                }
        except OSError:
            return None

    def read_verified(self, parts: tuple[str, ...], digest: bytes) -> bytes:
        """The venv file's bytes, which must still have the SHA-256 `digest`."""
        try:
            fd = os.open(self.target(parts), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as venv_file:
                data = venv_file.read()
        except OSError as exc:
            raise VenvChanged(f"{self.target(parts)}: {exc.strerror or exc}") from None
        if hashlib.sha256(data).digest() != digest:
            raise VenvChanged(f"{self.target(parts)} changed during the unpack")
        return data

    def identity(self) -> str | None:
        """A short name for this venv's content, for cache keys: its path and the names of its
        installed distributions (`*.dist-info`, which carry their versions); None if unreadable."""
        try:
            with os.scandir(self.root) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(".dist-info"))
        except OSError:
            return None
        text = "\n".join([self.root, *names])
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]

    def folders_digest(self, targets: Iterable[str]) -> str | None:
        """A digest of the venv folders `targets` (paths under the root) as they are now: every
        name in them with its kind, mode, size and file time (`__pycache__` aside); None when one
        is not a real folder under the root or cannot be read."""
        digest = hashlib.sha256()
        prefix = self.root + "/"
        try:
            for target in sorted(targets):
                parts = tuple(target[len(prefix) :].split("/"))
                if not target.startswith(prefix) or "" in parts or ".." in parts:
                    return None
                if not self.is_real_dir(parts):
                    return None
                digest.update(f"> {target}\n".encode("utf-8", "surrogateescape"))
                _walk_into(digest, target, "")
        except OSError:
            return None
        return digest.hexdigest()


def _walk_into(digest: Any, folder: str, relative: str) -> None:
    with os.scandir(folder) as entries:
        found = sorted(entries, key=lambda e: e.name)
    for entry in found:
        st = entry.stat(follow_symlinks=False)
        if entry.name == "__pycache__" and stat.S_ISDIR(st.st_mode):
            continue
        name = f"{relative}/{entry.name}" if relative else entry.name
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            line = f"d {name} {mode:o}"
        elif stat.S_ISREG(st.st_mode):
            line = f"f {name} {mode:o} {st.st_size} {st.st_mtime_ns}"
        else:
            line = f"o {name} {st.st_mode:o}"  # never in a linked folder: the digest then differs
        digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
        if stat.S_ISDIR(st.st_mode):
            _walk_into(digest, entry.path, name)


def _lstat_is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def site_packages(venv: Path) -> Path | None:
    """The venv's site-packages for this Python (`lib/pythonX.Y/site-packages`), if it has one."""
    folder = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    return folder if _lstat_is_dir(str(folder)) else None
