"""Serve `raw_asgi:app` on one server in this process.

    raw_serve.py hypercorn|uvicorn PORT [HOST] [--loop asyncio|uvloop]

The server is configured as the runtime configures it (keep-alive 600 s, no access log, no
server header, no proxy-header rewriting under uvicorn, the server started from inside
`asyncio.run` on the loop the runtime uses), so the floor differs from the runtime only by the
runtime's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from raw_asgi import app

KEEP_ALIVE_SECONDS = 600


async def serve_hypercorn(host: str, port: int, stop: asyncio.Event) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.keep_alive_timeout = KEEP_ALIVE_SECONDS
    config.backlog = 2048
    config.accesslog = None
    config.include_server_header = False
    await serve(app, config, shutdown_trigger=stop.wait, mode="asgi")


async def serve_uvicorn(host: str, port: int, stop: asyncio.Event) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    server.capture_signals = _no_signals  # this process owns SIGTERM, as the runtime does

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server.serve()
    finally:
        watcher.cancel()


class _no_signals:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


async def main(kind: str, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await (serve_hypercorn if kind == "hypercorn" else serve_uvicorn)(host, port, stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=("hypercorn", "uvicorn"))
    parser.add_argument("port", type=int)
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.server, args.host, args.port))
    else:
        asyncio.run(main(args.server, args.host, args.port))
