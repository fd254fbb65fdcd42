-- wrk script: plain GET (for /ping), with the shared end-of-run report.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
