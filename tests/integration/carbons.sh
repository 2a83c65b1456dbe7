#!/bin/sh
# Message Carbons (XEP-0280) against a roostd with mod_carbons: enable and
# disable, sent and received copies, each eligibility rule, private, bare
# JIDs, forged carbons, and slixmpp's xep_0280 plugin.  slixmpp is
# Debian's (python3-slixmpp), so /usr/bin/python3 is preferred.
cd "$(dirname "$0")" || exit 1
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" test_carbons.py "$@"
