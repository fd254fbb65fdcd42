"""The unpack alone, without a server: the real-app archive unpacked by each method, alternating.

    .venv-runtime/bin/python bench/apps/unpack_alone.py [--rounds 5] [--into /var/tmp]

Methods: `tarfile` (`extractall`, what the reference does), `runtime` (runtime.artifact with every
member written, FLASH_LINK_APP_VENV=0) and `runtime+links` (the same with the image's app venv,
bench/apps/image_bytecode.py). Each unpack goes into a fresh folder under --into, after
`os.sync()`, so that the previous round's dirty pages are not written back during it; the folder is
removed after the timing. Prints each time and the medians. Run it with the runtime's Python (the
one the app venv was built for), pinned as the benchmark pins servers: `taskset -c 0 ...`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import build_real_artifact
import image_bytecode

from runtime.artifact import UnpackLimits, unpack_artifact
from runtime.venvlinks import VenvPackages, site_packages

LIMITS = UnpackLimits(max_bytes=4 << 30, max_members=200_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--into", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    real = build_real_artifact.ensure(version, log=print)
    venv = image_bytecode.venv_of(image_bytecode.ensure(sys.executable, print))
    packages = site_packages(venv)
    if packages is None:
        sys.exit(f"no site-packages for Python {version} in {venv}")

    def with_tarfile(dest: Path) -> None:
        with tarfile.open(real.artifact) as tar:
            tar.extractall(dest)

    def runtime(dest: Path) -> None:
        with open(real.artifact, "rb") as source:
            unpack_artifact(source, "bench", dest, LIMITS)

    def runtime_links(dest: Path) -> None:
        with open(real.artifact, "rb") as source:
            unpack_artifact(source, "bench", dest, LIMITS, VenvPackages(packages))

    methods = {"tarfile": with_tarfile, "runtime": runtime, "runtime+links": runtime_links}
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            dest = Path(tempfile.mkdtemp(prefix="unpack-alone-", dir=args.into))
            try:
                os.sync()
                started = time.perf_counter()
                methods[name](dest)
                times[name].append(time.perf_counter() - started)
            finally:
                shutil.rmtree(dest, ignore_errors=True)
            print(f"round {round_no + 1} {name:14s} {times[name][-1]:.2f} s", flush=True)
    for name, values in times.items():
        print(
            f"{name:14s} median {statistics.median(values):.2f} s "
            f"({', '.join(f'{v:.2f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
