#!/bin/sh
# Offline message storage (XEP-0160) against a roostd with mod_offline:
# order, delay stamps, quota, what is not stored, restarts, kill -9.
# Needs mod_offline.so in ROOST_MODULES_DIR (or the build's modules).
cd "$(dirname "$0")" && exec python3 test_offline.py "$@"
