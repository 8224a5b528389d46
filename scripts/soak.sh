#!/usr/bin/env bash
# The soak test: drives the release binary with a mix of keep-alive and new
# connections, clients that leave before their answer, cut-off request heads,
# 404s and scrapes (examples/soak.rs), and checks that its resident memory,
# open file descriptors and tokio_alive_tasks come back to their values after
# a warm-up: descriptors and tasks exactly, memory within 4 MiB.
#
#   scripts/soak.sh                        300,000 requests (what scripts/test.sh runs)
#   SOAK_REQUESTS=3000000 SOAK_OUT=BENCHMARKS.md scripts/soak.sh
#                                          the long run (`just soak`), its readings
#                                          written to the Soak section of BENCHMARKS.md
#
# Leaves the server's log and the readings in target/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

REQUESTS=${SOAK_REQUESTS:-300000}
out=$PWD/target/soak
rm -rf "$out"
mkdir -p "$out"

cargo build --release --locked --quiet --bin myapp --example soak
# Short waits, so that clients that leave find their request still running;
# an error rate so that both statuses are recorded.
start_myapp "$out/myapp.log" --min-delay-ms 0 --max-delay-ms 2 --error-rate 0.1
echo "soak: $REQUESTS requests to myapp on $MYAPP_ADDR (pid $MYAPP_PID)"
soak() { target/release/examples/soak "$MYAPP_ADDR" "$MYAPP_PID" "$REQUESTS" | tee "$out/readings.txt"; }
check "RSS, open fds and tokio_alive_tasks back to their values after the warm-up" soak
check "no panic or accept error in the server's log" \
  bash -c "! grep -E 'panic|failed to accept' '$out/myapp.log'"

# write_section FILE: replaces the Soak section of FILE (scripts/bench.sh keeps
# it when it rewrites the rest) with this run's readings, or appends one.
write_section() {
  python3 - "$1" "$out/readings.txt" "$REQUESTS" "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    "$(cut -d ' ' -f 1-3 /proc/loadavg)" "$(nproc)" <<'PY'
import re, sys
from pathlib import Path
path, readings, requests, date, load, cpus = sys.argv[1:]
section = f"""<!-- soak: written by scripts/soak.sh; scripts/bench.sh keeps it -->
## Soak

`SOAK_REQUESTS={requests} SOAK_OUT=BENCHMARKS.md scripts/soak.sh` (`just soak`) on {date},
{cpus} CPUs, load average {load} at the end. The release binary
(`--min-delay-ms 0 --max-delay-ms 2 --error-rate 0.1`) under 64 concurrent clients of
examples/soak.rs: by turns 20 `/work` requests on one keep-alive connection, one on a new
connection, 5 unknown paths (404) on one connection, a scrape, a client that leaves before
its answer, a request head cut off halfway. A tenth of the requests warm up; after each
fifth of the rest, once the server has closed the clients' connections, the readings
(resident memory and descriptors from /proc, `tokio_alive_tasks` from a scrape). The test
passes when the last reading has the descriptors and tasks of the first exactly and at
most 4 MiB more resident memory. `scripts/test.sh` runs 300,000 requests.

```
{Path(readings).read_text().rstrip()}
```
<!-- /soak -->
"""
target = Path(path)
text = target.read_text() if target.exists() else ""
block = re.compile(r"<!-- soak:.*?<!-- /soak -->\n", re.S)
text = block.sub(lambda _: section, text) if block.search(text) else text.rstrip("\n") + "\n\n" + section
target.write_text(text)
PY
}
if [ -n "${SOAK_OUT:-}" ] && [ "$FAILED" -eq 0 ]; then
  write_section "$SOAK_OUT"
  echo "soak: readings written to the Soak section of $SOAK_OUT"
fi
summary soak
