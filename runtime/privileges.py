"""Dropping root: the worker opens what needs privilege, then runs everything else as `FLASH_USER`.

On Runpod the container starts as root with `PORT=80` and the build artifact under `/root/.runpod`
(readable by root alone). The server binds its sockets and opens the artifact as root, then calls
`drop_privileges` before it reads a byte of the archive or imports any application code. Started as
any other user, nothing changes.
"""

from __future__ import annotations

import os
import pwd
import sys
from dataclasses import dataclass

from .errors import StartupError

DEFAULT_USER = "10001:10001"


@dataclass(frozen=True)
class RunAs:
    """The user and group application code runs as when the worker starts as root."""

    uid: int
    gid: int
    home: str | None = None

    @property
    def is_root(self) -> bool:
        return self.uid == 0


APP_USER = RunAs(10001, 10001)  # DEFAULT_USER, where no passwd entry names it


def parse_user(value: str) -> RunAs | str:
    """`uid[:gid]` or a user name; the parsed user, or why the value is unusable."""
    name, _, group = value.partition(":")
    if name.isdigit():
        uid = int(name)
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            entry = None
    else:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return f"no user named {name!r}"
        uid = entry.pw_uid
    if group:
        if not group.isdigit():
            return "the group must be a number (uid:gid)"
        gid = int(group)
    elif entry is not None:
        gid = entry.pw_gid
    else:
        gid = uid
    return RunAs(uid, gid, entry.pw_dir if entry is not None else None)


def running_as_root() -> bool:
    return os.geteuid() == 0


def drop_privileges(run_as: RunAs) -> bool:
    """Become `run_as` for good when running as root; True when the user changed."""
    if not running_as_root() or run_as.is_root:
        return False
    try:
        os.setgroups([])
        os.setgid(run_as.gid)
        os.setuid(run_as.uid)
    except OSError as exc:
        raise StartupError(
            f"FLASH_USER: cannot switch to uid {run_as.uid}, gid {run_as.gid}: {exc}"
        ) from None
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - only a broken kernel or seccomp profile gets here
        raise StartupError(
            "FLASH_USER: root privileges could be regained after dropping them; refusing to run"
        )
    # A HOME the new user cannot read breaks apps at import (runpod_flash reads ~/.runpod): the
    # user's own, or /tmp for a uid with no passwd entry (as arbitrary-uid platforms do).
    os.environ["HOME"] = run_as.home or "/tmp"
    _check_interpreter_readable(run_as)
    return True


def _check_interpreter_readable(run_as: RunAs) -> None:
    """Python's own library must stay importable: a clear error now, not an ImportError later."""
    library = os.path.dirname(os.__file__)
    try:
        os.listdir(library)
    except OSError as exc:
        raise StartupError(
            f"FLASH_USER: uid {run_as.uid} cannot read the Python installation at {library} "
            f"({exc.strerror}); install the runtime where that user can read it (as the images do), "
            f"or start the worker as that user"
        ) from None
    if sys.prefix != sys.base_prefix:
        try:
            os.listdir(sys.prefix)
        except OSError as exc:
            raise StartupError(
                f"FLASH_USER: uid {run_as.uid} cannot read the runtime's environment at {sys.prefix} ({exc.strerror})"
            ) from None
