"""Unpacking with the app venv's identical files: links and copies, never a different tree.

Each case unpacks an archive twice, with the venv (`VenvPackages`) and without, and compares the
two trees as the app reads them (names, bytes, owner-execute bits; Python's `__pycache__` aside):
they must be equal whatever the venv holds. Then it checks what became a link, what was copied and
what was written, and that the venv itself was never touched. The last cases boot the real
entrypoint with FLASH_APP_VENV.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import sys
import tarfile
from pathlib import Path

import httpx
import pytest
from support import ROOT, Worker
from test_artifact import Archive

from runtime.appcache import TREE, python_tag, unpack_cached
from runtime.artifact import Unpacked, UnpackLimits, unpack_artifact
from runtime.errors import StartupError
from runtime.settings import Settings
from runtime.venvlinks import VenvPackages, site_packages

LIMITS = UnpackLimits(max_bytes=1 << 30, max_members=10_000)
KINDS_ARTIFACT = ROOT / "tests" / "apps" / "kinds" / "artifact.tar.gz"

SAME = {
    "pkg_same/__init__.py": b"from .mod import x\n",
    "pkg_same/mod.py": b"x = 1\n",
    "pkg_same/sub/__init__.py": b"",
    "pkg_same/sub/data.json": b'{"a": 1}\n',
    "pkg_same/empty/": None,  # a folder with nothing in it
    "pkg_diff/__init__.py": b"VERSION = '1.0'\n",
    "pkg_diff/mod.py": b"y = 2\n",
    "pkg_diff/sub/__init__.py": b"z = 3\n",
    "pkg_extra/__init__.py": b"",
    "pkg_exec/tool.sh": b"#!/bin/sh\necho hi\n",
    "single.py": b"single = True\n",
    "pkg_linked/__init__.py": b"",
}
APP = {
    "flash_manifest.json": b"{}",
    "handler.py": b"def handle(): return 1\n",
    "pkg_same-1.0.dist-info/RECORD": b"pkg_same/__init__.py,,\n",
}


def venv_with(root: Path) -> Path:
    """A venv whose site-packages holds SAME, with the differences the cases rely on."""
    packages = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for name, data in SAME.items():
        path = packages / name
        if data is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (packages / "pkg_same" / "__pycache__").mkdir()
    (packages / "pkg_same" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"pyc")
    (packages / "pkg_diff" / "mod.py").write_bytes(b"y = 9\n")  # same size, other bytes
    (packages / "pkg_extra" / "more.py").write_bytes(b"")  # a name the archive lacks
    (packages / "pkg_exec" / "tool.sh").chmod(0o644)  # the archive's is executable
    real = packages / "elsewhere"
    (packages / "pkg_linked").rename(real)  # the venv reaches this one through a link
    (packages / "pkg_linked").symlink_to(real)
    return packages


def archive(files: dict[str, bytes | None], extra=None) -> bytes:
    built = Archive()
    for name, data in files.items():
        if data is None:
            built.dir(name)
        else:
            built.file(name, data, 0o755 if name.endswith(".sh") else 0o644)
    if extra is not None:
        extra(built)
    return built.bytes()


def unpack(data: bytes, into: Path, shared: VenvPackages | None) -> Unpacked:
    return unpack_artifact(io.BytesIO(data), "ARTIFACT=test.tar.gz", into, LIMITS, shared)


def seen(root: Path) -> dict[str, object]:
    """The tree as the app reads it, through links: kind, bytes and owner-execute bit of each name."""
    out: dict[str, object] = {}
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, root)
        out[rel] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                data = file.read()
            out[os.path.join(rel, name)] = (data, bool(os.stat(path).st_mode & stat.S_IXUSR))
    return out


def snapshot(root: Path) -> dict[str, object]:
    """Everything under `root`, links not followed: a venv must come out of an unpack as it went in."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        body = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        out[str(path)] = (info.st_mode, info.st_mtime_ns, body)
    return out


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return venv_with(tmp_path / "venv")


def both(data: bytes, tmp_path: Path, venv: Path) -> tuple[Path, Unpacked]:
    """Unpack with and without the venv; the trees must read the same. The venv's unpack returned."""
    before = snapshot(venv)
    plain, linked = tmp_path / "plain", tmp_path / "linked"
    unpack(data, plain, None)
    result = unpack(data, linked, VenvPackages(venv))
    assert seen(linked) == seen(plain)
    assert snapshot(venv) == before, "the unpack changed the venv"
    return linked, result


def test_identical_folders_become_links_and_the_rest_is_written_or_copied(tmp_path, venv):
    app, result = both(archive({**SAME, **APP}), tmp_path, venv)
    assert os.readlink(app / "pkg_same") == str(venv / "pkg_same")
    # one file of pkg_diff differs: the folder is real, its identical subfolder a link, its
    # identical file a copy and the other written from the archive
    assert not (app / "pkg_diff").is_symlink()
    assert os.readlink(app / "pkg_diff" / "sub") == str(venv / "pkg_diff" / "sub")
    assert stat.S_ISREG((app / "pkg_diff" / "__init__.py").lstat().st_mode)
    assert (app / "pkg_diff" / "mod.py").read_bytes() == b"y = 2\n"
    # the venv's folder has a name the archive lacks; the venv's file is not executable
    assert not (app / "pkg_extra").is_symlink() and not (app / "pkg_extra" / "more.py").exists()
    assert not (app / "pkg_exec").is_symlink()
    assert (app / "pkg_exec" / "tool.sh").stat().st_mode & stat.S_IXUSR
    # reached through a link on the venv's side: written from the archive
    assert not (app / "pkg_linked").is_symlink()
    # a top-level module is a copy, never a link (the app folder is never a venv folder)
    assert stat.S_ISREG((app / "single.py").lstat().st_mode)
    assert result.linked_dirs == 2  # pkg_same, pkg_diff/sub
    assert result.linked_files == 5  # pkg_same's 4 files and pkg_diff/sub/__init__.py
    # pkg_diff/__init__.py, pkg_extra/__init__.py, single.py
    assert result.copied_files == 3
    assert not [p for p in app.iterdir() if p.name.startswith(".flash-unpack-")]


def test_copied_files_keep_the_archives_modes_and_times(tmp_path, venv):
    app, _ = both(archive(SAME), tmp_path, venv)
    copied = app / "single.py"
    assert copied.stat().st_mtime == 1_700_000_000
    assert stat.S_IMODE(copied.stat().st_mode) & 0o600 == 0o600


def test_a_link_member_keeps_its_folder_real(tmp_path, venv):
    data = archive(SAME, lambda a: a.link("pkg_same/alias.py", "mod.py"))
    app, result = both(data, tmp_path, venv)
    assert not (app / "pkg_same").is_symlink()
    assert os.readlink(app / "pkg_same" / "alias.py") == "mod.py"
    assert os.readlink(app / "pkg_same" / "sub") == str(venv / "pkg_same" / "sub")
    assert stat.S_ISREG((app / "pkg_same" / "mod.py").lstat().st_mode)
    assert result.copied_files >= 2


def test_a_hard_link_to_an_identical_file_copies_it_first(tmp_path, venv):
    data = archive(SAME, lambda a: a.link("pkg_same/again.py", "pkg_same/mod.py", tarfile.LNKTYPE))
    app, _ = both(data, tmp_path, venv)
    assert not (app / "pkg_same").is_symlink()
    assert (app / "pkg_same" / "again.py").stat().st_ino == (
        app / "pkg_same" / "mod.py"
    ).stat().st_ino


def test_a_later_member_of_the_same_name_wins_over_an_identical_one(tmp_path, venv):
    data = archive(SAME, lambda a: a.file("pkg_same/mod.py", b"x = 'replaced'\n"))
    app, _ = both(data, tmp_path, venv)
    assert (app / "pkg_same" / "mod.py").read_bytes() == b"x = 'replaced'\n"
    assert not (app / "pkg_same").is_symlink()


def test_an_identical_member_after_a_different_one_of_the_same_name_is_copied(tmp_path, venv):
    # The first member was written, so its folder exists as a real one and stays one.
    first = Archive().file("pkg_same/mod.py", b"x = 'first'\n")
    for name, body in SAME.items():
        first = first.dir(name) if body is None else first.file(name, body)
    app, _ = both(first.bytes(), tmp_path, venv)
    assert not (app / "pkg_same").is_symlink()
    assert stat.S_ISREG((app / "pkg_same" / "mod.py").lstat().st_mode)
    assert (app / "pkg_same" / "mod.py").read_bytes() == SAME["pkg_same/mod.py"]


def test_a_folder_member_after_its_files_keeps_its_mode(tmp_path, venv):
    data = archive(
        {"pkg_diff/mod.py": b"y = 2\n"}, lambda a: a.dir("pkg_diff", 0o750).dir("newdir", 0o705)
    )
    app, _ = both(data, tmp_path, venv)
    assert stat.S_IMODE((app / "pkg_diff").stat().st_mode) == 0o750
    assert stat.S_IMODE((app / "newdir").stat().st_mode) == 0o705


def test_a_venv_file_changed_after_the_comparison_is_an_error(tmp_path, venv):
    class Changing(VenvPackages):
        def holds(self, parts, chunks):
            same = super().holds(parts, chunks)
            if parts == ("single.py",):
                Path(self.target(parts)).write_bytes(b"single = 1234\n")  # same size
            return same

    app = tmp_path / "app"
    with pytest.raises(StartupError, match="single.py changed during the unpack"):
        unpack(archive(SAME), app, Changing(venv))
    assert list(app.iterdir()) == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (lambda a: a.file("../escape.py"), "'..'"),
        (lambda a: a.file("/abs/pkg_same/mod.py", SAME["pkg_same/mod.py"]), "absolute"),
        (lambda a: a.link("pkg_same/out", "../../outside"), "outside"),
        (lambda a: a.link("pkg_same", "/etc"), "replaces an earlier dir"),
        (lambda a: a.file("pkg_same/mod.py/x.py"), "is a file"),
    ],
)
def test_hostile_members_are_refused_before_anything_is_linked(tmp_path, venv, extra, message):
    before = snapshot(venv)
    app = tmp_path / "app"
    app.mkdir()
    with pytest.raises(StartupError, match=message):
        unpack(archive(SAME, extra), app, VenvPackages(venv))
    assert list(app.iterdir()) == []
    assert snapshot(venv) == before


def test_site_packages_is_this_pythons(tmp_path):
    venv_with(tmp_path / "venv")
    (tmp_path / "venv" / "lib" / "python2.7" / "site-packages").mkdir(parents=True)
    found = site_packages(tmp_path / "venv")
    assert (
        found is not None
        and found.parent.name == f"python{sys.version_info[0]}.{sys.version_info[1]}"
    )
    assert site_packages(tmp_path / "nothing") is None


@pytest.mark.parametrize("value, expected", [("", True), ("1", True), ("0", False), ("off", False)])
def test_linking_is_a_setting(value, expected):
    env = {"FLASH_LINK_APP_VENV": value} if value else {}
    assert Settings.from_env(env).link_app_venv is expected


# --------------------------------------------------------------------------- with the artifact cache


def cached(data: bytes, cache: Path, app: Path, venv: Path | None):
    shared = VenvPackages(venv) if venv is not None else None
    return unpack_cached(io.BytesIO(data), "ARTIFACT=test.tar.gz", app, LIMITS, cache, shared)


def test_a_cache_entry_links_the_venv_and_its_key_names_the_venv(tmp_path, venv):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    data = archive({**SAME, **APP})
    first = cached(data, cache, tmp_path / "app1", venv)
    second = cached(data, cache, tmp_path / "app2", venv)
    assert (first.result, second.result) == ("miss", "hit")
    assert first.entry == second.entry and first.entry.name.startswith(
        f"{hashlib.sha256(data).hexdigest()}-{python_tag()}-venv"
    )
    tree = first.entry / TREE
    assert os.readlink(tree / "pkg_same") == str(venv / "pkg_same")
    unpack(data, tmp_path / "plain", None)
    assert seen(tmp_path / "app2") == seen(tmp_path / "plain")
    # the hit reports what the build took from the venv
    assert second.unpacked == first.unpacked and second.unpacked.linked_dirs == 2
    # without the venv the same archive has another entry, with every member written
    third = cached(data, cache, tmp_path / "app3", None)
    assert third.result == "miss" and third.entry != first.entry
    assert not (third.entry / TREE / "pkg_same").is_symlink()


def test_a_changed_venv_folder_makes_the_entry_doubtful(tmp_path, venv):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    data = archive({**SAME, **APP})
    first = cached(data, cache, tmp_path / "app1", venv)
    (venv / "pkg_same" / "mod.py").write_bytes(b"x = 'changed in place'\n")
    second = cached(data, cache, tmp_path / "app2", venv)
    assert second.result == "miss" and second.entry == first.entry.with_name(
        first.entry.name + ".1"
    )
    assert "app venv's folders it links to changed" in (second.reason or "")
    # the new entry no longer links the changed folder, and reads as the archive
    assert not (second.entry / TREE / "pkg_same").is_symlink()
    unpack(data, tmp_path / "plain", None)
    assert seen(tmp_path / "app2") == seen(tmp_path / "plain")


def test_another_set_of_distributions_is_another_key(tmp_path, venv):
    before = VenvPackages(venv).identity()
    (venv / "extra-1.0.dist-info").mkdir()
    after = VenvPackages(venv).identity()
    assert before is not None and after is not None and before != after
    assert VenvPackages(tmp_path / "nowhere").identity() is None


# --------------------------------------------------------------------------- the real entrypoint


def vendoring_artifact(tmp_path: Path, package: Path) -> Path:
    """The kinds app's real `flash build` archive with `package` (an installed one) vendored."""
    out = tmp_path / "artifact.tar.gz"
    with tarfile.open(KINDS_ARTIFACT) as source, tarfile.open(out, "w:gz") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        target.add(package, arcname=f"./{package.name}", filter=_no_pycache)
    return out


def _no_pycache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


@pytest.mark.parametrize("link", ["1", "0"])
def test_the_entrypoint_links_a_vendored_package_the_app_venv_holds(tmp_path, link):
    import h11  # any pure-Python package of the test environment

    package = Path(h11.__file__).parent
    venv = tmp_path / "venv"
    packages = venv_with(venv)
    shutil.copytree(package, packages / "h11", ignore=shutil.ignore_patterns("__pycache__"))
    artifact = vendoring_artifact(tmp_path, package)
    app = tmp_path / "app"
    app.mkdir()
    env = {
        "FLASH_ARTIFACT_PATH": str(artifact),
        "FLASH_APP_VENV": str(venv),
        "FLASH_LINK_APP_VENV": link,
    }
    with Worker(app, env=env) as worker:
        worker.wait_ready(timeout=60)
        unpacked = worker.wait_log(lambda record: record["event"] == "unpacked")
        boot = worker.wait_log(lambda record: record["event"] == "boot")
        response = httpx.get(worker.url + "/noparams", timeout=10)
        assert response.status_code == 200, response.text
    assert (app / "h11").is_symlink() is (link == "1"), worker.output()
    assert seen(app / "h11") == seen(package)
    if link == "1":
        files = sum(1 for p in packages.joinpath("h11").rglob("*") if p.is_file())
        assert unpacked["linked_dirs"] == 1 and unpacked["linked_files"] == files
        assert boot["app_venv_links"] == {
            "linked_dirs": 1,
            "linked_files": files,
            "copied_files": 0,
        }
    else:
        assert "linked_dirs" not in unpacked and boot["app_venv_links"] is None


def test_the_entrypoint_with_a_cache_links_the_venv_on_a_miss_and_a_hit(tmp_path):
    import h11

    package = Path(h11.__file__).parent
    venv = tmp_path / "venv"
    packages = venv_with(venv)
    shutil.copytree(package, packages / "h11", ignore=shutil.ignore_patterns("__pycache__"))
    artifact = vendoring_artifact(tmp_path, package)
    cache = tmp_path / "cache"
    for attempt, expected in enumerate(("miss", "hit")):
        app = tmp_path / f"app{attempt}"
        app.mkdir()
        env = {
            "FLASH_ARTIFACT_PATH": str(artifact),
            "FLASH_APP_VENV": str(venv),
            "FLASH_CACHE_DIR": str(cache),
        }
        with Worker(app, env=env) as worker:
            worker.wait_ready(timeout=60)
            boot = worker.wait_log(lambda record: record["event"] == "boot")
            assert boot["artifact_cache"] == expected, worker.output()
            assert boot["app_venv_links"]["linked_dirs"] == 1, boot
            response = httpx.get(worker.url + "/noparams", timeout=10)
            assert response.status_code == 200, response.text
        entry = Path(os.readlink(app / "h11")).parent
        assert entry.parent.parent == cache and "-venv" in entry.parent.name
        assert os.readlink(entry / "h11") == str(packages / "h11")
        assert seen(app / "h11") == seen(package)
