-- For scripts/bench.sh: after wrk's summary, prints the latency percentiles
-- exactly, in microseconds (wrk's own --latency table rounds 1.99s to 10 ms).
done = function(summary, latency, requests)
  for _, p in ipairs({ 50, 99 }) do
    io.write(string.format("percentile_us %d %d\n", p, latency:percentile(p)))
  end
end
