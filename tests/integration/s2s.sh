#!/bin/sh
# Federation between two roostd processes on loopback (STARTTLS +
# dialback): messages, subscriptions, presence, privacy, bounces, attacks.
cd "$(dirname "$0")" && exec python3 test_s2s.py "$@"
