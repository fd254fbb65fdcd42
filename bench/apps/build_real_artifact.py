"""Build the real-app artifact the benchmark's real-app cold starts use, once per source and Python.

The app is bench/apps/lb_example, shaped like flash-examples' load-balancer example (two
load-balanced resources, a CPU one and a GPU one; the benchmark serves the CPU one). Its
requirements are `runpod-flash`, so `flash build` vendors runpod-flash and its whole tree
(fastapi, pydantic, the runpod SDK, boto3, ...) into the archive: tens of MB, thousands of files,
as a real Flash app ships.

    .venv/bin/python bench/apps/build_real_artifact.py [--python 3.11] [--force]

The sources are copied to a scratch project folder and built with the dev venv's `flash build
--python-version X.Y` (the servers' Python: the archive carries compiled extensions for it).
`flash build` installs the requirements from the package index, so the first build needs the
network (about a minute). The result is kept outside git in a cache folder keyed by the sources,
the target Python and the builder's runpod-flash version (FLASH_BENCH_CACHE, default
/var/tmp/flash-bench-cache):

    <cache>/real-app-<key>/artifact.tar.gz      the archive, as `flash build` wrote it
    <cache>/real-app-<key>/flash_manifest.json  its manifest
    <cache>/real-app-<key>/unpacked/            the archive unpacked (never served in place)
    <cache>/real-app-<key>/build.json           what was built, from what, sizes and counts
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

APPS = Path(__file__).resolve().parent
ROOT = APPS.parent.parent
SOURCE = APPS / "lb_example"
PROJECT_NAME = "05_load_balancer"  # flash takes the project name from the folder
RESOURCE = "bench_lb_cpu"  # the load-balanced resource the benchmark serves
FLASH = ROOT / ".venv" / "bin" / "flash"
DEFAULT_CACHE = Path("/var/tmp/flash-bench-cache")


@dataclass(frozen=True)
class RealArtifact:
    artifact: Path
    manifest: Path
    unpacked: Path
    resource: str
    info: dict


def source_files() -> list[Path]:
    """The app's sources: its .py files and requirements.txt."""
    return sorted(
        p
        for p in SOURCE.iterdir()
        if p.is_file() and (p.suffix == ".py" or p.name == "requirements.txt")
    )


def flash_version() -> str:
    done = subprocess.run(
        [
            str(FLASH.with_name("python")),
            "-c",
            "from importlib import metadata; print(metadata.version('runpod-flash'))",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"runpod-flash not found in {FLASH.parent.parent} (make venv):\n{done.stderr}")
    return done.stdout.strip()


def python_version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def cache_key(target_python: str, builder: str) -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"python {target_python}; runpod-flash {builder}".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("FLASH_BENCH_CACHE") or DEFAULT_CACHE)


def ensure(target_python: str, force: bool = False, log=print) -> RealArtifact:
    """The cached build for these sources and this Python, built first when missing."""
    builder = flash_version()
    folder = cache_root() / f"real-app-{cache_key(target_python, builder)}"
    if force and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "build.json").exists():
        log(
            f"real app: building {SOURCE.relative_to(ROOT)} with flash build "
            f"(runpod-flash {builder}, Python {target_python}) into {folder}"
        )
        build(folder, target_python, builder)
    info = json.loads((folder / "build.json").read_text())
    return RealArtifact(
        folder / "artifact.tar.gz",
        folder / "flash_manifest.json",
        folder / "unpacked",
        RESOURCE,
        info,
    )


def build(folder: Path, target_python: str, builder: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="flash-real-app-") as scratch:
            project = Path(scratch) / PROJECT_NAME
            project.mkdir()
            for path in source_files():
                shutil.copy2(path, project / path.name)
            done = subprocess.run(
                [str(FLASH), "build", "--python-version", target_python],
                cwd=project,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                sys.exit(f"flash build failed:\n{done.stdout}\n{done.stderr}")
            shutil.copy2(project / ".flash" / "artifact.tar.gz", staging / "artifact.tar.gz")
            shutil.copy2(
                project / ".flash" / "flash_manifest.json", staging / "flash_manifest.json"
            )
        with tarfile.open(staging / "artifact.tar.gz") as tar:  # our own build: trusted
            members = tar.getmembers()
            tar.extractall(staging / "unpacked")
        manifest = json.loads((staging / "flash_manifest.json").read_text())
        if not manifest.get("resources", {}).get(RESOURCE, {}).get("is_load_balanced"):
            sys.exit(f"the manifest has no load-balanced resource {RESOURCE!r}")
        info = {
            "app": str(SOURCE.relative_to(ROOT)),
            "sources": [p.name for p in source_files()],
            "resource": RESOURCE,
            "target_python": target_python,
            "runpod_flash_builder": builder,
            "built_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "artifact_bytes": (staging / "artifact.tar.gz").stat().st_size,
            "members": len(members),
            "files": sum(1 for m in members if m.isfile()),
            "unpacked_bytes": sum(m.size for m in members if m.isfile()),
        }
        (staging / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--python", help="target Python X.Y (default: the .venv-runtime's, else this one's)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args()
    runtime_python = ROOT / ".venv-runtime" / "bin" / "python"
    target = args.python or python_version(
        str(runtime_python if runtime_python.exists() else sys.executable)
    )
    built = ensure(target, args.force)
    print(
        json.dumps(
            {
                "artifact": str(built.artifact),
                "manifest": str(built.manifest),
                "unpacked": str(built.unpacked),
                **built.info,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
