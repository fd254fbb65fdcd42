"""The artifact cache (FLASH_CACHE_DIR): a valid entry is linked, anything doubtful is ignored and rebuilt.

In process: archives built here are unpacked through `unpack_cached` into fresh app folders sharing
one cache folder. Then the real entrypoint, booted twice on the same artifact: a miss, then a hit.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
from pathlib import Path

import httpx
import pytest
from support import ROOT, Worker

from runtime import appcache
from runtime.appcache import MARKER, PYCACHE, TREE, prepare_root, python_tag, unpack_cached
from runtime.artifact import UnpackLimits, UnpackWriteError
from runtime.errors import StartupError
from runtime.privileges import RunAs
from runtime.settings import Settings

LIMITS = UnpackLimits(max_bytes=1 << 30, max_members=10_000)
KINDS_ARTIFACT = ROOT / "tests" / "apps" / "kinds" / "artifact.tar.gz"


def archive(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


APP = archive(
    {
        "flash_manifest.json": b"{}",
        "pkg/__init__.py": b"",
        "pkg/mod.py": b"x = 1\n",
        "top.py": b"y = 2\n",
    },
    {"pkg/alias.py": "mod.py"},
)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    return root


def boot(
    data: bytes, cache: Path, app: Path, limits: UnpackLimits = LIMITS
) -> appcache.CacheResult:
    return unpack_cached(io.BytesIO(data), "ARTIFACT=test.tar.gz", app, limits, cache)


def entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


def key_of(data: bytes) -> str:
    import hashlib

    return f"{hashlib.sha256(data).hexdigest()}-{python_tag()}"


def test_a_miss_builds_an_entry_and_the_next_start_links_it(cache, tmp_path):
    first = boot(APP, cache, tmp_path / "app1")
    second = boot(APP, cache, tmp_path / "app2")
    assert (first.result, second.result) == ("miss", "hit")
    assert first.entry == second.entry == cache / key_of(APP)
    assert entries(cache) == [key_of(APP)]  # no staging left behind
    for app in (tmp_path / "app1", tmp_path / "app2"):
        assert (app / "pkg").is_symlink() and os.readlink(app / "pkg") == str(
            first.entry / TREE / "pkg"
        )
        assert (app / "pkg" / "mod.py").read_text() == "x = 1\n"
        assert os.readlink(app / "pkg" / "alias.py") == "mod.py"
        assert (
            app / PYCACHE
        ).resolve() == first.entry / TREE / PYCACHE  # top-level modules' bytecode
    assert second.unpacked is not None and second.unpacked.members == first.unpacked.members == 5
    marker = json.loads((first.entry / MARKER).read_text())
    assert marker["key"] == key_of(APP) and len(marker["tree"]) == 64


def test_python_writes_the_apps_bytecode_into_the_entry(cache, tmp_path):
    first = boot(APP, cache, tmp_path / "app1")
    pyc = first.entry / TREE / "pkg" / PYCACHE
    pyc.mkdir()
    (pyc / f"mod.{python_tag()}.pyc").write_bytes(b"bytecode")  # as an import would
    assert (
        boot(APP, cache, tmp_path / "app2").result == "hit"
    )  # __pycache__ is not part of the listing


def test_the_app_folders_same_named_entries_are_replaced_and_others_kept(cache, tmp_path):
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "stale.py").write_text("old")
    (app / "top.py").write_text("old")
    (app / "mine.txt").write_text("kept")
    boot(APP, cache, app)
    assert (app / "pkg").is_symlink() and not (app / "pkg" / "stale.py").exists()
    assert (app / "top.py").read_text() == "y = 2\n" and (app / "mine.txt").read_text() == "kept"


def test_a_torn_entry_without_its_marker_is_ignored_and_rebuilt_beside_it(cache, tmp_path):
    torn = cache / key_of(APP)
    (torn / TREE / "pkg").mkdir(parents=True, mode=0o700)
    torn.chmod(0o700)
    result = boot(APP, cache, tmp_path / "app")
    assert result.result == "miss" and "no completion marker" in result.reason
    assert result.entry == cache / f"{key_of(APP)}.1"
    assert (torn / TREE / "pkg").is_dir()  # left alone: never trusted, never removed
    assert boot(APP, cache, tmp_path / "again").entry == result.entry


def test_a_tree_changed_after_its_marker_is_ignored(cache, tmp_path):
    entry = boot(APP, cache, tmp_path / "app1").entry
    (entry / TREE / "pkg" / "mod.py").write_text("x = 'changed'\n")
    result = boot(APP, cache, tmp_path / "app2")
    assert result.result == "miss" and "does not match its marker" in result.reason
    assert (tmp_path / "app2" / "pkg" / "mod.py").read_text() == "x = 1\n"


def test_a_removed_file_is_a_torn_tree(cache, tmp_path):
    entry = boot(APP, cache, tmp_path / "app1").entry
    (entry / TREE / "top.py").unlink()
    assert "does not match its marker" in boot(APP, cache, tmp_path / "app2").reason


def test_a_key_mismatch_is_ignored(cache, tmp_path):
    entry = boot(APP, cache, tmp_path / "app1").entry
    marker = json.loads((entry / MARKER).read_text())
    (entry / MARKER).write_text(json.dumps({**marker, "key": "0" * 64 + "-other"}))
    result = boot(APP, cache, tmp_path / "app2")
    assert result.result == "miss" and "key mismatch" in result.reason


@pytest.mark.parametrize(
    "spoil, reason",
    [
        (lambda e: e.chmod(0o770), "entry is writable by group or others"),
        (lambda e: (e / TREE / "pkg").chmod(0o777), "pkg is foreign"),
        (lambda e: (e / MARKER).chmod(0o666), "marker is writable by group or others"),
        (lambda e: os.chown(e, 4242, 4242), "entry is owned by uid 4242"),
        (lambda e: os.chown(e / TREE / "pkg" / "mod.py", 4242, 4242), "pkg/mod.py is foreign"),
        (lambda e: os.chown(e / MARKER, 4242, 4242), "marker is owned by uid 4242"),
        (lambda e: (e / TREE / PYCACHE).chmod(0o777), "__pycache__ is foreign"),
    ],
)
def test_a_foreign_entry_is_ignored(cache, tmp_path, spoil, reason):
    if "chown" in repr(spoil.__code__.co_names) and os.geteuid() != 0:
        pytest.skip("giving a file to another user takes root")
    entry = boot(APP, cache, tmp_path / "app1").entry
    spoil(entry)
    result = boot(APP, cache, tmp_path / "app2")
    assert result.result == "miss" and reason in result.reason, result.reason
    assert result.entry != entry


@pytest.mark.parametrize(
    "spoil, reason",
    [
        (lambda c: c.chmod(0o777), "writable by group or others"),
        (lambda c: os.chown(c, 4242, 4242), "owned by uid 4242"),
    ],
)
def test_a_foreign_cache_folder_is_ignored_and_the_artifact_unpacked_as_without_one(
    cache, tmp_path, spoil, reason
):
    if "chown" in repr(spoil.__code__.co_names) and os.geteuid() != 0:
        pytest.skip("giving a file to another user takes root")
    spoil(cache)
    result = boot(APP, cache, tmp_path / "app")
    assert result.result == "ignored" and reason in result.reason
    assert entries(cache) == []
    assert (
        not (tmp_path / "app" / "pkg").is_symlink()
        and (tmp_path / "app" / "pkg" / "mod.py").is_file()
    )


def test_an_entry_over_the_current_limits_is_not_used(cache, tmp_path):
    boot(APP, cache, tmp_path / "app1")
    with pytest.raises(StartupError, match="FLASH_ARTIFACT_MAX_MEMBERS"):
        boot(APP, cache, tmp_path / "app2", UnpackLimits(max_bytes=1 << 30, max_members=3))


def test_a_hostile_archive_is_refused_with_the_cache_as_without_it(cache, tmp_path):
    data = archive({"../escape.py": b"x"})
    with pytest.raises(StartupError, match="'..'"):
        boot(data, cache, tmp_path / "app")
    assert entries(cache) == [] and not (tmp_path / "escape.py").exists()


def test_a_cache_that_cannot_be_written_falls_back_to_a_plain_unpack(cache, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise UnpackWriteError("ARTIFACT=test.tar.gz: unpacking failed: No space left on device")

    monkeypatch.setattr(appcache, "extract", disk_full)
    result = boot(APP, cache, tmp_path / "app")
    assert result.result == "ignored" and "No space left on device" in result.reason
    assert (tmp_path / "app" / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert entries(cache) == []


def test_workers_starting_together_share_one_entry(cache, tmp_path, monkeypatch):
    """Both build in their own staging folder; the rename's loser links the winner's entry."""
    both_staged = threading.Barrier(2, timeout=30)
    real_extract = appcache.extract

    def extract_then_wait(*args, **kwargs):
        unpacked = real_extract(*args, **kwargs)
        both_staged.wait()  # neither renames before the other has extracted
        return unpacked

    monkeypatch.setattr(appcache, "extract", extract_then_wait)
    results: dict[str, appcache.CacheResult] = {}
    threads = [
        threading.Thread(target=lambda n=n: results.__setitem__(n, boot(APP, cache, tmp_path / n)))
        for n in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert {r.result for r in results.values()} == {"miss"}
    assert results["a"].entry == results["b"].entry == cache / key_of(APP)
    assert entries(cache) == [key_of(APP)]
    assert (
        (tmp_path / "a" / "top.py").read_text()
        == (tmp_path / "b" / "top.py").read_text()
        == "y = 2\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="creating the folder for another user takes root")
def test_started_as_root_the_cache_folder_is_made_for_the_app_user(tmp_path):
    prepare_root(tmp_path / "cache", RunAs(4242, 4243))
    st = (tmp_path / "cache").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4242, 4243, 0o700)
    os.chown(tmp_path / "cache", 0, 0)
    prepare_root(tmp_path / "cache", RunAs(4242, 4243))  # an existing folder is left as it is
    assert (tmp_path / "cache").stat().st_uid == 0


@pytest.mark.parametrize(
    "value, expected", [("off", None), ("", None), ("0", None), ("/tmp/c", Path("/tmp/c"))]
)
def test_the_cache_folder_is_a_setting(value, expected):
    assert Settings.from_env({"FLASH_CACHE_DIR": value}).artifact_cache == expected


def test_two_boots_of_the_same_artifact_miss_then_hit(tmp_path):
    cache = tmp_path / "cache"
    for attempt, expected in enumerate(("miss", "hit")):
        app = tmp_path / f"app{attempt}"
        app.mkdir()
        env = {"FLASH_ARTIFACT_PATH": str(KINDS_ARTIFACT), "FLASH_CACHE_DIR": str(cache)}
        with Worker(app, env=env) as worker:
            worker.wait_ready(timeout=60)
            line = worker.wait_log(lambda record: record["event"] == "artifact cache")
            boot_line = worker.wait_log(lambda record: record["event"] == "boot")
            assert line["result"] == expected == boot_line["artifact_cache"], worker.output()
            assert {"unpack", "artifact_hash", "cache_link"} <= set(boot_line["phases_ms"])
            response = httpx.get(worker.url + "/noparams", timeout=10)
            assert response.status_code == 200, response.text
            assert (app / "flash_manifest.json").is_symlink()
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1
