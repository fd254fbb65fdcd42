"""The artifact unpacker, in process: every member decided by its name, nothing written outside.

Each hostile archive is built here with tarfile and unpacked into a folder inside a sandbox; the
test then checks the refusal message, that nothing appeared outside the destination and that the
destination holds nothing of the archive (members go to a staging folder first).
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from runtime.artifact import UnpackLimits, unpack_artifact
from runtime.errors import StartupError

LIMITS = UnpackLimits(max_bytes=1 << 30, max_members=10_000)


class Archive:
    """An in-memory .tar.gz made member by member."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w:gz")

    def file(self, name: str, data: bytes = b"x = 1\n", mode: int = 0o644) -> Archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def dir(self, name: str, mode: int = 0o755) -> Archive:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self.tar.addfile(info)
        return self

    def link(self, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Archive:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        self.tar.addfile(info)
        return self

    def special(self, name: str, kind: bytes) -> Archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        self.tar.addfile(info)
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """tmp_path/outside holds the destination tmp_path/outside/app; escapes land in `outside`."""
    (tmp_path / "outside" / "app").mkdir(parents=True)
    return tmp_path / "outside"


def unpack(data: bytes, destination: Path, limits: UnpackLimits = LIMITS):
    return unpack_artifact(io.BytesIO(data), "ARTIFACT=test.tar.gz", destination, limits)


def refused(data: bytes, sandbox: Path, limits: UnpackLimits = LIMITS) -> str:
    before = sorted(p.relative_to(sandbox) for p in sandbox.rglob("*"))
    with pytest.raises(StartupError) as caught:
        unpack(data, sandbox / "app", limits)
    after = sorted(p.relative_to(sandbox) for p in sandbox.rglob("*"))
    assert after == before, "a refused archive changed the filesystem"
    assert "ARTIFACT=test.tar.gz" in str(caught.value)
    return str(caught.value)


def test_a_plain_archive_is_unpacked_with_its_modes_and_times(sandbox):
    data = (
        Archive()
        .dir("pkg")
        .file("pkg/__init__.py", b"")
        .file("pkg/run.sh", b"#!/bin/sh\n", 0o755)
        .file("flash_manifest.json", b"{}")
        .link("pkg/alias.py", "__init__.py")
        .link("pkg/copy.py", "pkg/__init__.py", tarfile.LNKTYPE)
        .bytes()
    )
    result = unpack(data, sandbox / "app")
    app = sandbox / "app"
    assert result.members == 6
    assert (app / "flash_manifest.json").read_bytes() == b"{}"
    assert stat.S_IMODE((app / "pkg" / "run.sh").stat().st_mode) == 0o755
    assert (app / "pkg" / "run.sh").stat().st_mtime == 1_700_000_000
    assert os.readlink(app / "pkg" / "alias.py") == "__init__.py"
    assert (app / "pkg" / "copy.py").stat().st_ino == (app / "pkg" / "__init__.py").stat().st_ino
    assert not [p for p in app.iterdir() if p.name.startswith(".flash-unpack-")]


def test_members_replace_same_named_entries_and_keep_the_others(sandbox):
    app = sandbox / "app"
    (app / "pkg").mkdir()
    (app / "pkg" / "stale.py").write_text("old")
    (app / "kept.py").write_text("mine")
    unpack(Archive().file("pkg/new.py").bytes(), app)
    assert sorted(p.name for p in (app / "pkg").iterdir()) == ["new.py"]
    assert (app / "kept.py").read_text() == "mine"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda a: a.file("../escape.py"), "'..'"),
        (lambda a: a.file("pkg/../../escape.py"), "'..'"),
        (lambda a: a.file("/tmp/absolute.py"), "absolute"),
        (lambda a: a.link("link", "/etc/passwd"), "outside"),
        (lambda a: a.link("link", "../outside"), "outside"),
        (lambda a: a.link("pkg/link", "../../outside"), "outside"),
        (lambda a: a.link("hard", "../escape.py", tarfile.LNKTYPE), "hard link"),
        (lambda a: a.link("hard", "missing.py", tarfile.LNKTYPE), "hard link"),
        (lambda a: a.special("fifo", tarfile.FIFOTYPE), "FIFO"),
        (lambda a: a.special("dev", tarfile.CHRTYPE), "device"),
    ],
)
def test_escaping_members_are_refused(sandbox, build, message):
    data = build(Archive().file("flash_manifest.json", b"{}")).bytes()
    assert message in refused(data, sandbox)


def test_a_symlink_chain_cannot_write_outside(sandbox):
    """`z -> .`, then `z/q -> ..`, then a file through `q`: each link alone looks harmless."""
    data = Archive().link("z", ".").link("z/q", "..").file("z/q/escape.py").bytes()
    assert "through the link 'z'" in refused(data, sandbox)


def test_a_link_resolved_through_a_later_link_is_refused(sandbox):
    """`q -> z/..` looks inside while `z` is unknown; `z -> .` arriving later makes it the parent."""
    data = Archive().link("q", "z/..").link("z", ".").bytes()
    assert "through another link" in refused(data, sandbox)


def test_a_file_then_a_link_of_the_same_name_is_refused(sandbox):
    data = Archive().file("pkg/mod.py").link("pkg", "..").bytes()
    assert "replaces an earlier dir" in refused(data, sandbox)


def test_the_path_max_realpath_overflow_shape_is_refused(sandbox):
    """The shape of CVE-2025-4517: directories and links nested until realpath() gives up."""
    archive = Archive()
    component, path = "d" * 247, ""
    for step in "abcdefghijklmnop":
        archive.dir(os.path.join(path, component))
        archive.link(os.path.join(path, step), component)
        path = os.path.join(path, step)
    archive.link(os.path.join(path, "l" * 254), "../" * len("abcdefghijklmnop"))
    archive.link("escape", os.path.join(path, "l" * 254) + "/../../../../../../../../../..")
    archive.file("escape/pwned.py")
    message = refused(archive.bytes(), sandbox)
    assert "through the link" in message


def test_setuid_setgid_sticky_and_group_write_bits_are_stripped(sandbox):
    data = Archive().file("tool", b"x", 0o6777).dir("shared", 0o1777).bytes()
    unpack(data, sandbox / "app")
    assert stat.S_IMODE((sandbox / "app" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((sandbox / "app" / "shared").stat().st_mode) == 0o755


def test_ownership_is_not_taken_from_the_archive(sandbox):
    archive = Archive()
    info = tarfile.TarInfo("owned.py")
    info.uid, info.gid, info.uname, info.gname, info.size = 4242, 4242, "mallory", "mallory", 1
    archive.tar.addfile(info, io.BytesIO(b"x"))
    unpack(archive.bytes(), sandbox / "app")
    assert (sandbox / "app" / "owned.py").stat().st_uid == os.geteuid()


def test_the_total_size_is_capped_before_it_is_written(sandbox):
    data = Archive().file("a.bin", b"\0" * 4096).file("b.bin", b"\0" * 4096).bytes()
    message = refused(data, sandbox, UnpackLimits(max_bytes=6000, max_members=100))
    assert "more than 6000 bytes" in message and "FLASH_ARTIFACT_MAX_BYTES" in message


def test_a_huge_member_is_refused_by_its_header(sandbox):
    """A 1 TB member is refused from its header alone: nothing is read or written first."""
    header = tarfile.TarInfo("zeros.bin")
    header.size = 1 << 40
    data = gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT))
    message = refused(data, sandbox, UnpackLimits(max_bytes=1 << 30, max_members=100))
    assert "FLASH_ARTIFACT_MAX_BYTES" in message


def test_the_member_count_is_capped(sandbox):
    archive = Archive()
    for index in range(12):
        archive.file(f"m{index}.py")
    message = refused(archive.bytes(), sandbox, UnpackLimits(max_bytes=1 << 20, max_members=10))
    assert "more than 10 members" in message and "FLASH_ARTIFACT_MAX_MEMBERS" in message


def test_a_truncated_gzip_is_a_startup_error(sandbox):
    data = Archive().file("big.bin", os.urandom(200_000)).file("after.py").bytes()
    message = refused(data[: len(data) // 2], sandbox)
    assert "truncated or corrupt" in message


def test_bytes_that_are_not_an_archive_are_a_startup_error(sandbox):
    assert "not a readable" in refused(b"this is not a tarball", sandbox)
