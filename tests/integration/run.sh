#!/bin/sh
# Protocol tests against a live roostd (called by `make check`).
# Binaries: $ROOSTD, $ROOSTCTL, $ROOST_MODULES_DIR (defaults: the build tree).
# Against Prosody instead:  tests/integration/run.sh --server prosody
cd "$(dirname "$0")" || exit 1
exec python3 run.py --server roost "$@"
