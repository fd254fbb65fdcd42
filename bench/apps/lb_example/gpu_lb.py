"""A second resource in the same project, on a GPU: `flash build` packs both, the worker serves one."""

from runpod_flash import Endpoint, GpuGroup

api = Endpoint(name="bench_lb_gpu", gpu=GpuGroup.ANY, workers=(1, 3))


@api.get("/health")
async def gpu_health() -> dict:
    return {"status": "ok", "service": "gpu"}


@api.post("/sum_of_squares")
async def sum_of_squares(numbers: list[float]) -> dict:
    return {"count": len(numbers), "sum_of_squares": sum(x * x for x in numbers)}
