#!/bin/sh
# Privacy lists (XEP-0016) and blocking (XEP-0191) against a roostd with
# mod_privacy and mod_offline; --server prosody runs the blocking tests
# against Debian's Prosody (mod_blocklist).
# Needs mod_privacy.so in ROOST_MODULES_DIR (or the build's modules).
cd "$(dirname "$0")" && exec python3 test_privacy.py "$@"
