"""The bytecode store (runtime/bytecode.py): built ahead, used only for the very source it was
compiled from, refused when it is not safe; and the worker's boot line counting its modules."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import stat
import sys
import traceback
from pathlib import Path

import httpx
import pytest
from support import Worker

from runtime import bytecode, settings
from runtime.settings import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / "manifests" / "example"
PACKAGE = "storepkg"
SOURCES = {
    "__init__.py": "VALUE = 'from source'\n",
    "boom.py": "def explode():\n    raise ValueError('from a stored module')\n",
}


@pytest.fixture
def isolated_imports():
    """Leave import state as it was: path hooks, finders, sys.path, the package's modules."""
    saved = (
        list(sys.path_hooks),
        dict(sys.path_importer_cache),
        list(sys.path),
        sys.dont_write_bytecode,
        dict(bytecode._installed),
    )
    sys.dont_write_bytecode = True
    yield
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    sys.path_hooks[:], sys.path[:] = saved[0], saved[2]
    sys.path_importer_cache.clear()
    sys.path_importer_cache.update(saved[1])
    sys.dont_write_bytecode = saved[3]
    for store in bytecode._installed.values():
        if store not in saved[4].values():
            os.close(store.fd)
    bytecode._installed.clear()
    bytecode._installed.update(saved[4])
    importlib.invalidate_caches()


@pytest.fixture
def app(tmp_path: Path, isolated_imports) -> Path:
    """A folder holding the package, on sys.path."""
    folder = tmp_path / "app"
    (folder / PACKAGE).mkdir(parents=True)
    for name, text in SOURCES.items():
        (folder / PACKAGE / name).write_text(text)
    sys.path.insert(0, str(folder))
    return folder


@pytest.fixture
def store(tmp_path: Path, app: Path) -> Path:
    """A store built from another copy of the package (as the images build it from /opt/app's)."""
    elsewhere = tmp_path / "site-packages"
    shutil.copytree(app, elsewhere)
    path = tmp_path / "store"
    bytecode.build(path, [elsewhere])
    return path


@pytest.fixture
def no_compile(monkeypatch):
    """Compiling from source fails: a module that imports got its code from the store."""

    def refuse(self, data, path, *, _optimize=-1):
        raise AssertionError(f"compiled from source: {path}")

    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "source_to_code", refuse)


def _entry(store: Path, name: str) -> Path:
    return store / bytecode.entry_name(SOURCES[name].encode())


def test_a_module_imports_from_the_store_without_compiling(app, store, no_compile):
    installed = bytecode.install(store)
    module = importlib.import_module(PACKAGE)
    assert module.VALUE == "from source"
    assert module.__file__ == str(app / PACKAGE / "__init__.py")
    assert installed.hits == 1


def test_the_usual_pyc_is_still_written_beside_the_source(app, store):
    sys.dont_write_bytecode = False
    installed = bytecode.install(store)
    importlib.import_module(PACKAGE)
    assert installed.hits == 1
    assert (
        app / PACKAGE / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"
    ).is_file()


def test_a_traceback_names_the_real_source(app, store, no_compile):
    bytecode.install(store)
    module = importlib.import_module(f"{PACKAGE}.boom")
    with pytest.raises(ValueError) as caught:
        module.explode()
    frame = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert frame.filename == str(app / PACKAGE / "boom.py")
    assert frame.line == "raise ValueError('from a stored module')"
    assert module.explode.__code__.co_filename == str(app / PACKAGE / "boom.py")


def test_a_changed_source_compiles(app, store):
    (app / PACKAGE / "__init__.py").write_text("VALUE = 'changed'\n")
    installed = bytecode.install(store)
    assert importlib.import_module(PACKAGE).VALUE == "changed"
    assert installed.hits == 0


@pytest.mark.parametrize(
    "damage", ["truncated", "other source's entry", "other magic", "unchecked flags"]
)
def test_a_damaged_or_mismatched_entry_compiles(app, store, damage):
    entry = _entry(store, "__init__.py")
    data = entry.read_bytes()
    if damage == "truncated":
        data = data[:40]
    elif damage == "other source's entry":
        data = _entry(store, "boom.py").read_bytes()
    elif damage == "other magic":
        data = b"\0\0\r\n" + data[4:]
    else:
        data = data[:4] + (0b01).to_bytes(4, "little") + data[8:]
    entry.write_bytes(data)
    installed = bytecode.install(store)
    assert importlib.import_module(PACKAGE).VALUE == "from source"
    assert installed.hits == 0


def test_a_store_others_may_write_is_refused(store):
    os.chmod(store, 0o777)
    with pytest.raises(bytecode.StoreRefused, match="writable by group or others"):
        bytecode.install(store)
    os.chmod(store, 0o775)
    with pytest.raises(bytecode.StoreRefused, match="writable by group or others"):
        bytecode.install(store)


def test_a_symbolic_link_as_the_store_is_refused(tmp_path, store):
    link = tmp_path / "link"
    link.symlink_to(store)
    with pytest.raises(bytecode.StoreRefused, match="cannot open"):
        bytecode.install(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the store away needs root")
def test_a_store_of_another_user_is_refused(store):
    os.chown(store, 4321, 4321)
    with pytest.raises(bytecode.StoreRefused, match="owned by uid 4321"):
        bytecode.install(store)


def test_a_missing_store_is_refused(tmp_path, isolated_imports):
    with pytest.raises(bytecode.StoreRefused, match="cannot open"):
        bytecode.install(tmp_path / "absent")


def test_the_builder_skips_what_does_not_compile_and_writes_readable_files(tmp_path, app, capsys):
    (app / PACKAGE / "broken.py").write_text("def (:\n")
    (app / PACKAGE / "again.py").write_text(SOURCES["boom.py"])
    out = tmp_path / "built"
    assert bytecode.main(["build", str(out), str(app)]) == 0
    printed = capsys.readouterr().out
    assert "4 sources, 2 compiled, 1 already stored, 1 not compilable" in printed
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    entries = sorted(out.iterdir())
    assert [p.name for p in entries] == sorted(
        bytecode.entry_name(s.encode()) for s in SOURCES.values()
    )
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in entries)


def test_the_setting_is_off_by_word_a_folder_or_the_images_store(tmp_path, monkeypatch):
    env = {"FLASH_MODULE_PATH": str(tmp_path)}
    monkeypatch.setattr(settings, "BYTECODE_STORE", tmp_path / "absent")
    assert Settings.from_env(env).bytecode_store is None
    monkeypatch.setattr(settings, "BYTECODE_STORE", tmp_path)
    assert Settings.from_env(env).bytecode_store == tmp_path
    for off in ("off", "", " 0 "):
        assert Settings.from_env({**env, "FLASH_BYTECODE_STORE": off}).bytecode_store is None
    assert Settings.from_env({**env, "FLASH_BYTECODE_STORE": "rel/store"}).bytecode_store == Path(
        os.getcwd(), "rel", "store"
    )


def test_the_worker_imports_the_app_from_the_store(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("__pycache__"))
    store = tmp_path / "store"
    bytecode.build(store, [EXAMPLE])  # the repository's copy; the worker serves another
    with Worker(app, env={"FLASH_BYTECODE_STORE": str(store)}) as worker:
        worker.wait_ready()
        boot = worker.wait_log(lambda line: line.get("event") == "boot")
        assert boot["bytecode_store_hits"] == 1
        assert boot["settings"]["bytecode_store"] == str(store)
        response = httpx.post(worker.url + "/sum", json={"numbers": [1, 2.5]}, timeout=10)
        assert response.status_code == 200
        assert response.json()["sum"] == 3.5


def test_the_worker_boots_without_an_unsafe_store(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    os.chmod(store, 0o777)
    with Worker(EXAMPLE, env={"FLASH_BYTECODE_STORE": str(store)}) as worker:
        worker.wait_ready()
        warning = worker.wait_log(lambda line: line.get("event") == "bytecode store not used")
        assert "writable by group or others" in warning["reason"]
        assert (
            worker.wait_log(lambda line: line.get("event") == "boot")["bytecode_store_hits"] is None
        )
