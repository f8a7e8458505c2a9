#!/usr/bin/env bash
# Installs and starts what the sandbox tests need: bubblewrap (jail backend) and a Docker
# engine (docker backend). Safe to rerun. Without root or apt it only reports, and the
# jail/docker tests then skip with a reason.
set -u
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup_system: not root or no apt-get; jail/docker tests skip if their tools are missing"
  exit 0
fi
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v dockerd >/dev/null || need+=(docker.io)
# Debian's chromium and its driver for the viewer's browser tests (never a downloaded browser)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ -n "${need[*]:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || echo "setup_system: apt-get install ${need[*]} failed; those tests will skip"
fi
echo "setup_system: $(bwrap --version 2>/dev/null || echo 'bubblewrap missing')"
if command -v dockerd >/dev/null; then
  bash scripts/start_dockerd.sh || echo "setup_system: dockerd did not start; docker tests will skip"
fi
