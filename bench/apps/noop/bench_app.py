"""The benchmark app's handlers, as a `flash build` ships them.

`runpod_flash.Endpoint(...).post(path)` returns the plain function for a load-balanced route, so
plain functions are what both servers import; this module needs nothing but the standard library.
"""


async def noop(value: int, label: str = "") -> dict:
    """A no-op JSON POST: two validated arguments in, a tiny object out."""
    return {"value": value}


async def bulk(rows: list[list[float]], name: str = "") -> dict:
    """A large typed body (a matrix of floats) validated into arguments; a tiny answer."""
    return {"rows": len(rows)}


def sleepy(seconds: float = 2.0) -> dict:
    """A blocking `def` handler: it holds a pool thread for `seconds` (the busy-pool scenario)."""
    import time

    time.sleep(seconds)
    return {"slept": seconds}
