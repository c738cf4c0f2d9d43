#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, lint, then unit and integration tests.
# Integration tests start the local Kafka broker themselves (tests/conftest.py) and stop it after.
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit -q`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
.venv/bin/ruff check .

status=0
.venv/bin/pytest "$@" || status=$?
# pytest exits 5 when it collected no test: a suite that ran nothing has not passed.
if [[ $status -eq 5 ]]; then
  echo "test.sh: pytest ran no test" >&2
  exit 1
fi
exit "$status"
