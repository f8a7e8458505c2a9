#!/usr/bin/env bash
# Start a Docker engine in the background for the sandbox's docker backend (CI and dev boxes).
# No registry is reachable here and the sandbox needs no network: no iptables, no bridge.
# Usage: scripts/start_dockerd.sh            (idempotent; waits until the engine answers)
# Env:   DOCKERD_LOG (default /var/log/tirgym-dockerd.log), DOCKERD_DATA (default /var/lib/docker)
set -euo pipefail

if docker info >/dev/null 2>&1; then
    echo "docker engine already running"
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "dockerd missing: apt-get install -y docker.io" >&2
    exit 1
fi
LOG="${DOCKERD_LOG:-/var/log/tirgym-dockerd.log}"
DATA="${DOCKERD_DATA:-/var/lib/docker}"
mkdir -p "$DATA" "$(dirname "$LOG")"
nohup dockerd \
    --iptables=false --ip6tables=false --bridge=none \
    --data-root "$DATA" \
    --host unix:///var/run/docker.sock \
    >"$LOG" 2>&1 &
echo $! > /var/run/tirgym-dockerd.pid
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "docker engine up (pid $(cat /var/run/tirgym-dockerd.pid), log $LOG)"
        exit 0
    fi
    sleep 1
done
echo "dockerd did not come up; last log lines:" >&2
tail -n 30 "$LOG" >&2
exit 1
