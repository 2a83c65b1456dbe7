#!/bin/sh
# Privilege drop (as root) and SIGHUP reloads: certificates, log file,
# log_level, restart notices.
cd "$(dirname "$0")" && exec python3 test_ops.py "$@"
