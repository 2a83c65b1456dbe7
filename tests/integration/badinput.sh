#!/bin/sh
# The bad-input matrix (doc/bad_input.md) against a live roostd.
cd "$(dirname "$0")" && exec python3 test_badinput.py "$@"
