#!/bin/sh
# Session lifecycle against a live roostd: loss of contact (SIGKILL and
# SIGSTOP of a contact's client, RFC 2779 3.2.4-3.2.5), SASL ANONYMOUS,
# and module independence (REQUIREMENTS 2.1.1).  Optional argument: a
# test-name filter.  Prints "N passed, N failed".
cd "$(dirname "$0")" && exec python3 test_lifecycle.py "$@"
