#!/bin/sh
# Timeouts, backpressure and log hygiene against a roostd with tight limits.
cd "$(dirname "$0")" && exec python3 test_limits.py "$@"
