#!/bin/sh
# Interop tests: unmodified slixmpp and go-sendxmpp clients against roostd.
# Needs: apt-get install python3-slixmpp go-sendxmpp (slixmpp is Debian's, so
# the Debian interpreter /usr/bin/python3 is preferred over one on PATH).
# Against Prosody instead:  tests/interop/run.sh --server prosody
cd "$(dirname "$0")" || exit 1
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" interop.py --server roost "$@"
