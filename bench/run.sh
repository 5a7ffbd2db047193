#!/usr/bin/env bash
# Runs bench/export_bench.py with a Python that has `requests` and `boto3`:
# $PYTHON if set, else bench/.venv or the repo's .venv if they have both, else a new bench/.venv.
# Every argument is passed on (see `bench/run.sh --help`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in "$here/.venv/bin/python" "$here/../.venv/bin/python"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import requests, boto3' 2>/dev/null; then
      py="$candidate"
      break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "run.sh: creating $here/.venv with requests and boto3" >&2
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install --quiet requests boto3
  py="$here/.venv/bin/python"
fi
exec "$py" "$here/export_bench.py" "$@"
