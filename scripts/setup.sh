#!/usr/bin/env bash
# Idempotent developer / CI set-up on a machine that has only python3.11, a JDK and Maven:
#   1. .venv with `pip install -e '.[dev]'` (skipped when pyproject.toml is unchanged since the last
#      successful install),
#   2. the Kafka broker's jars (scripts/kafka.sh install, itself cached).
# Safe to run on every CI run and after every pull: a warm run takes well under a second.
#
# Environment: PYTHON  interpreter for the venv (default python3.11).
set -euo pipefail

started_ns="$(date +%s%N)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3.11}"
VENV="$ROOT/.venv"
# The stamp is inside the venv, so deleting the venv also forgets that it was installed.
STAMP="$VENV/.perpledger-install.sha256"

log() { echo "setup.sh: $*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON" >/dev/null || { log "error: $PYTHON not found"; exit 1; }
  log "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi

# Keyed on pyproject.toml's content (the pins live there) and on the venv's interpreter version.
want="$({ sha256sum pyproject.toml; "$VENV/bin/python" --version; } | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "python dependencies up to date (pyproject.toml unchanged)"
else
  log "pip install -e '.[dev]' ..."
  # --disable-pip-version-check: the venv's pip is Debian's; its upgrade notice is noise here.
  "$VENV/bin/pip" install --disable-pip-version-check -q -e '.[dev]'
  echo "$want" >"$STAMP"
fi

bash "$ROOT/scripts/kafka.sh" install

elapsed_ms=$((($(date +%s%N) - started_ns) / 1000000))
printf 'setup.sh: done in %d.%03ds\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000)) >&2
