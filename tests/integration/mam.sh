#!/bin/sh
# Message Archive Management (XEP-0313) against a roostd with mod_mam:
# stanza ids, both archives, offline copies, RSM paging, errors,
# preferences, and slixmpp's xep_0313 plugin as a client.
# Needs mod_mam.so and mod_offline.so in ROOST_MODULES_DIR.
cd "$(dirname "$0")" && exec python3 test_mam.py "$@"
