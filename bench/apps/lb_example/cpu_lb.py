"""A text service on a CPU load-balanced endpoint: the shape of a typical Flash app.

It imports `runpod_flash` at module level as every Flash app does, so a cold start pays for the
SDK's imports; the handlers themselves are cheap, so the benchmark measures the boot.
"""

from runpod_flash import Endpoint

api = Endpoint(name="bench_lb_cpu", cpu="cpu3c-1-2", workers=(1, 3))

OPERATIONS = {
    "uppercase": str.upper,
    "lowercase": str.lower,
    "reverse": lambda text: text[::-1],
    "title": str.title,
}


@api.get("/health")
async def cpu_health() -> dict:
    return {"status": "ok", "service": "cpu"}


@api.post("/stats")
async def stats(text: str) -> dict:
    """Counts of characters and words in `text`."""
    words = text.split()
    if not words:
        raise ValueError("text has no words")
    return {"characters": len(text), "words": len(words),
            "mean_word_length": round(sum(map(len, words)) / len(words), 2)}


@api.post("/transform")
async def transform(text: str, operation: str = "uppercase") -> dict:
    """`text` changed by one of OPERATIONS."""
    change = OPERATIONS.get(operation)
    if change is None:
        raise ValueError(f"operation must be one of {sorted(OPERATIONS)}")
    return {"original": text, "transformed": change(text), "operation": operation}
