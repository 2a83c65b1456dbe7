#!/bin/sh
# External components (XEP-0114): handshake, routing, conflict, forged
# from, offline bounce, and an unmodified slixmpp ComponentXMPP.
cd "$(dirname "$0")" && exec python3 test_component.py "$@"
