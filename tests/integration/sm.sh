#!/bin/sh
# Stream management (XEP-0198) against a roostd with mod_offline: acks,
# counting, resumption (each message once), session end, queue limit,
# and kill -9 right after an ack (nothing acknowledged is lost).
cd "$(dirname "$0")" && exec python3 test_sm.py "$@"
