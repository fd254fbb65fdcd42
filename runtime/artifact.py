"""Unpack a `flash build` artifact (.tar.gz) into the module path, refusing anything that escapes it."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from .errors import StartupError


def unpack_artifact(archive: Path, destination: Path) -> int:
    """Extract `archive` into `destination`; return the number of members.

    Every member is checked before anything is written: absolute names, `..` components,
    links pointing outside the tree, and device or FIFO nodes are a StartupError.
    """
    if not archive.is_file():
        raise StartupError(f"FLASH_ARTIFACT_PATH: no such file: {archive}")
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, root, archive)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, members=members, filter="data")
            else:  # Python without extraction filters: the checks above are the guard
                tar.extractall(root, members=members)
    except tarfile.TarError as exc:
        raise StartupError(f"FLASH_ARTIFACT_PATH: {archive} is not a readable tar archive: {exc}") from None
    return len(members)


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def _check_member(member: tarfile.TarInfo, root: Path, archive: Path) -> None:
    name = member.name
    where = f"{archive}: member {name!r}"
    if name.startswith(("/", "\\")) or os.path.isabs(name):
        raise StartupError(f"{where} has an absolute path")
    if ".." in Path(name).parts:
        raise StartupError(f"{where} escapes the module path with '..'")
    target = (root / name).resolve()
    if not _inside(root, target):
        raise StartupError(f"{where} resolves outside the module path")
    if member.issym():
        link = member.linkname
        resolved = (target.parent / link).resolve() if not os.path.isabs(link) else Path(link)
        if os.path.isabs(link) or not _inside(root, resolved):
            raise StartupError(f"{where} is a symlink to {link!r}, outside the module path")
    elif member.islnk():
        resolved = (root / member.linkname).resolve()
        if os.path.isabs(member.linkname) or not _inside(root, resolved):
            raise StartupError(f"{where} is a hard link to {member.linkname!r}, outside the module path")
    elif not (member.isfile() or member.isdir()):
        raise StartupError(f"{where} is a device or FIFO node")
