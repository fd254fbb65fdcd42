"""Build a full-size `flash build` artifact, for measuring the unpack and the boot on real data.

    .venv/bin/python tests/apps/build_real_artifact.py [OUT]   # default /tmp/flash-real/artifact.tar.gz

The project is `tests/apps/demo` (the `flash init` app) with `runpod-flash==1.21.0` in its
`requirements.txt`, as `flash init` writes it: `flash build` then pip-installs runpod-flash and its
dependencies (runpod, aiohttp, paramiko, pydantic, rich...) into the archive, for this Python's
version, as a deployed app's artifact holds them (about 47 MB, 8,000 members). The archive is
written to OUT, outside the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

APPS = Path(__file__).resolve().parent
FLASH = APPS.parent.parent / ".venv" / "bin" / "flash"
DEFAULT_OUT = Path("/tmp/flash-real/artifact.tar.gz")


def build(out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="flash-real-") as scratch:
        project = Path(scratch) / "demo"
        project.mkdir()
        for name in ("lb_worker.py", "cpu_worker.py"):
            shutil.copy2(APPS / "demo" / name, project / name)
        (project / "requirements.txt").write_text("runpod-flash==1.21.0\n")
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        result = subprocess.run([str(FLASH), "build", "--python-version", version], cwd=project,
                                capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"flash build failed:\n{result.stdout}\n{result.stderr}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / ".flash" / "artifact.tar.gz", out)
    return out


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
    print(f"{path}: {path.stat().st_size} bytes")
