#!/usr/bin/env bash
# The whole suite, as CI runs it: lint, format, types, then the tests (SQLite and a real
# PostgreSQL server that this script installs if needed and starts on loopback, and Debian's
# Chromium for the browser tests, also installed if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv/bin
echo "== ruff check"; $VENV/ruff check src tests benchmarks
echo "== ruff format --check"; $VENV/ruff format --check src tests benchmarks
echo "== mypy --strict"; $VENV/mypy && $VENV/mypy tests benchmarks

if [[ -z "${POLYSYNC_TEST_POSTGRES_URL:-}" && -z "${POLYSYNC_TEST_NO_POSTGRES:-}" ]]; then
  echo "== postgresql"
  url=$(bash scripts/postgres.sh start)
  trap 'bash scripts/postgres.sh stop' EXIT
  export POLYSYNC_TEST_POSTGRES_URL=${url/postgresql:/postgresql+psycopg:}
  echo "PostgreSQL for the tests: $POLYSYNC_TEST_POSTGRES_URL"
fi

if [[ -z "${POLYSYNC_TEST_NO_BROWSER:-}" ]]; then
  echo "== chromium (browser tests)"
  bash scripts/chromium.sh
fi

echo "== pytest"; $VENV/pytest "$@"
