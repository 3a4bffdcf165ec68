#!/bin/bash
# Runs a command under /usr/bin/time -v and samples its resident set (VmRSS) every 0.5 s into <trace> as
# "HH:MM:SS rss_kB", so that a memory peak can be placed against the command's own (timestamped) log lines.
#   scripts/bench/rss-trace.sh /tmp/trace.txt .build/release/rlif train --single-process ...
set -euo pipefail
trace=$1; shift
/usr/bin/time -v "$@" &
tpid=$!
pid=""
for _ in $(seq 50); do pid=$(pgrep -P "$tpid" | head -1 || true); [ -n "$pid" ] && break; sleep 0.1; done
: > "$trace"
while kill -0 "$tpid" 2>/dev/null; do
  if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
    echo "$(date -u +%H:%M:%S) $(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null)" >> "$trace"
  fi
  sleep 0.5
done
wait "$tpid"
