-- For scripts/bench.sh: wrk paced towards a rate. Debian's wrk 4.1 has no rate
-- flag, so each connection waits WRK_DELAY_MS after each answer before its next
-- request (connections / rate seconds): a closed loop, slower than the target
-- by the latency, and deaf to a stalled server. Prints the percentiles as
-- scripts/wrk-percentiles.lua does.
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS"))
delay = function()
  return delay_ms
end
dofile("scripts/wrk-percentiles.lua")
