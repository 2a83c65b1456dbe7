#!/bin/sh
# The roostctl command-line contract against a live roostd.
cd "$(dirname "$0")" && exec python3 test_roostctl.py "$@"
