#!/usr/bin/env bash
# Build the default sandbox image (tirgym-sandbox:latest) without a registry: docker import of
# the host's Python runtime (interpreter, stdlib, numpy, sympy, mpmath, pyseccomp, shared libs).
# Usage: scripts/build_sandbox_image.sh [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m tirgym.sandbox.docker_image "${1:-tirgym-sandbox:latest}"
