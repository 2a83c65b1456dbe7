#!/bin/sh
# Crash safety: kill -9 at random moments during traffic to offline users;
# every acknowledged (XEP-0198) message is delivered exactly once.
cd "$(dirname "$0")" && exec python3 test_crash.py "$@"
