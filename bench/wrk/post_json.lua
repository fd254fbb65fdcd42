-- wrk script: POST a small JSON object (the no-op route's arguments) on every request.
-- Env: BENCH_BODY overrides the body.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"value": 1, "label": "bench"}'
wrk.headers["Content-Type"] = "application/json"

