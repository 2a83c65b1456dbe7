#!/bin/sh
# Sessions per account (limits.max_resources) against a roostd allowing 3.
cd "$(dirname "$0")" && exec python3 test_resources.py "$@"
