#!/usr/bin/env bash
# The whole suite, as CI runs it: lint, format, types, then the tests (SQLite and a real
# PostgreSQL server that this script installs if needed and starts on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv/bin
echo "== ruff check"; $VENV/ruff check src tests benchmarks
echo "== ruff format --check"; $VENV/ruff format --check src tests benchmarks
echo "== mypy --strict"; $VENV/mypy

if [[ -z "${POLYSYNC_TEST_POSTGRES_URL:-}" && -z "${POLYSYNC_TEST_NO_POSTGRES:-}" ]]; then
  echo "== postgresql"
  url=$(bash scripts/postgres.sh start)
  trap 'bash scripts/postgres.sh stop' EXIT
  export POLYSYNC_TEST_POSTGRES_URL=${url/postgresql:/postgresql+psycopg:}
  echo "PostgreSQL for the tests: $POLYSYNC_TEST_POSTGRES_URL"
fi

echo "== pytest"; $VENV/pytest "$@"
