#!/usr/bin/env bash
# Installs everything the toolkit needs into ./.venv. Idempotent: a rerun on an installed machine
# only checks (system ffmpeg present, venv present, requirements unchanged since the last install).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: ffmpeg (decoding, muxing) and chromium (the tests screenshot the HTML pages).
need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.anytalker-setup-stamp
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
  # requirements.txt pins the runtime set AND the test/bench extras (both README commands need
  # them); the extras named here only record that intent, --no-deps keeps the pins
  .venv/bin/python -m pip install -q --no-deps -e ".[test,bench]"
  echo "$want" > "$stamp"
fi
.venv/bin/python -c 'import kernel, anytalker, curation, pipelines, jinja2, pooch' || { rm -f "$stamp"; echo "setup: import check failed; rerun" >&2; exit 1; }
# the test/bench extras (pytest, moto, psutil, pandas, duckdb, pyannote.metrics) must be there too
.venv/bin/python -c 'import pytest, pytest_timeout, moto, psutil, pandas, duckdb, pyannote.metrics, onnx' \
  || { rm -f "$stamp"; echo "setup: test/bench extras missing; rerun" >&2; exit 1; }
