#!/usr/bin/env bash
# Installs and starts what the sandbox, docker and vLLM tests need. Safe to rerun.
# Without root (or apt) it only reports: those tests then skip with a reason.
set -u
BIN=${1:-.venv/bin}
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup_system: not root or no apt-get; jail/docker tests will skip if their tools are missing"
  exit 0
fi
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -n "${need[*]:-}" ] && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
echo "setup_system: bubblewrap $(bwrap --version 2>/dev/null || echo missing)"
