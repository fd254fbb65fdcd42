"""The images' HEALTHCHECK: exit 0 when the worker's /ping answers 200 (slim bases have no curl)."""

import http.client
import os
import sys

# The worker binds HOST (all interfaces by default); a wildcard address is reached over loopback.
WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def main() -> int:
    host = os.environ.get("HOST", "")
    host = "127.0.0.1" if host in WILDCARDS else host.strip("[]")
    port = int(os.environ.get("PORT_HEALTH") or os.environ.get("PORT") or 8000)
    connection = http.client.HTTPConnection(host, port, timeout=3)
    try:
        connection.request("GET", "/ping")
        status = connection.getresponse().status
    except OSError as exc:
        print(f"/ping unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"/ping answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
