"""Rebuild the fixture apps' `flash_manifest.json` (and small artifacts) with the real `flash build`.

    .venv/bin/python tests/apps/build_fixtures.py            # kinds, multi, markers, coercion
    .venv/bin/python tests/apps/build_fixtures.py demo kinds # named apps
    .venv/bin/python tests/apps/build_fixtures.py --keep-artifact kinds

Each app's sources are copied to a scratch directory named like the app (flash takes the project
name from the directory), with an empty `requirements.txt`, so `flash build` installs nothing and
bundles only the `runpod_flash` it runs from; the manifest it writes to `.flash/flash_manifest.json`
is copied back. Nothing else of the build output is kept, except `artifact.tar.gz` with
`--keep-artifact`: then a second build runs with `flash build --exclude runpod_flash` (the bundled
`runpod_flash` source alone is ~200 KB compressed), and its artifact is kept when under 200 KB. Such
an artifact needs `runpod-flash` installed where it is served (the dev venv has it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

APPS = Path(__file__).resolve().parent
ROOT = APPS.parent.parent
FLASH = ROOT / ".venv" / "bin" / "flash"
# Files of ours that live next to an app's sources but are not part of the app.
FIXTURE_FILES = {"flash_manifest.json", "cases.json", "reference.json", "artifact.tar.gz"}
DEFAULT_APPS = ("kinds", "multi", "markers", "coercion", "responses")  # demo's manifest is the shared flash-demo fixture's
ARTIFACT_LIMIT = 200 * 1024


def source_files(app_dir: Path) -> list[Path]:
    return sorted(p for p in app_dir.iterdir()
                  if p.is_file() and p.name not in FIXTURE_FILES and p.suffix != ".pyc")


def build(name: str, keep_artifact: bool) -> None:
    app_dir = APPS / name
    with tempfile.TemporaryDirectory(prefix="flash-fixture-") as scratch:
        project = Path(scratch) / name
        project.mkdir()
        for path in source_files(app_dir):
            shutil.copy2(path, project / path.name)
        (project / "requirements.txt").write_text("")
        result = subprocess.run([str(FLASH), "build"], cwd=project, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"flash build failed for {name}:\n{result.stdout}\n{result.stderr}")
        shutil.copy2(project / ".flash" / "flash_manifest.json", app_dir / "flash_manifest.json")
        artifact = project / ".flash" / "artifact.tar.gz"
        size = artifact.stat().st_size
        print(f"{name}: manifest written; artifact {size} bytes")
        if keep_artifact:
            result = subprocess.run([str(FLASH), "build", "--exclude", "runpod_flash"], cwd=project,
                                    capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"flash build --exclude runpod_flash failed for {name}:\n{result.stdout}\n{result.stderr}")
            size = artifact.stat().st_size
            print(f"{name}: artifact without runpod_flash {size} bytes")
            if size < ARTIFACT_LIMIT:
                shutil.copy2(artifact, app_dir / "artifact.tar.gz")
                print(f"{name}: kept artifact.tar.gz")
            else:
                print(f"{name}: artifact over {ARTIFACT_LIMIT} bytes, not kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("apps", nargs="*", default=list(DEFAULT_APPS))
    parser.add_argument("--keep-artifact", action="store_true")
    args = parser.parse_args()
    for name in args.apps:
        build(name, args.keep_artifact)


if __name__ == "__main__":
    main()
