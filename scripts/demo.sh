#!/usr/bin/env bash
# The main job, from a fresh clone: set-up, a local Kafka broker, a seeded sample workload written to
# the input topics as Avro, read back and run through the ledger, and a printed summary.
# Extra arguments go to `perpledger demo` (e.g. `scripts/demo.sh --events 100000`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
started_here=0
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  started_here=1
fi
bootstrap="$(bash scripts/kafka.sh start)"
# Leave a broker that was already running as it was.
if [[ $started_here -eq 1 ]]; then
  trap 'bash scripts/kafka.sh stop >/dev/null' EXIT
fi
.venv/bin/perpledger demo --bootstrap "$bootstrap" "$@"
