#!/bin/sh
# In-band registration (XEP-0077) against a roostd with mod_register and
# mod_offline: registration before authentication (on one vhost, off on the
# other), conflict, bad usernames, the per-IP throttle, password change,
# account removal (sessions closed, subscriptions cancelled, data purged).
# Needs mod_register.so and mod_offline.so in ROOST_MODULES_DIR (or the
# build's modules).
cd "$(dirname "$0")" && exec python3 test_register.py "$@"
