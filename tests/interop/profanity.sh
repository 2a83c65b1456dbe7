#!/bin/sh
# Interop test: the unmodified profanity terminal client (driven in a detached
# tmux session) against roostd, with a slixmpp client as its peer.
# Needs: apt-get install profanity tmux python3-slixmpp (the script tries the
# apt-get install itself when run as root; set ROOST_INTEROP_NO_APT=1 to
# forbid that).  Skips (exit 0) when profanity cannot be installed.
# Binaries: $ROOSTD, $ROOSTCTL, $ROOST_MODULES_DIR (defaults: the build tree).
cd "$(dirname "$0")" || exit 1
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" profanity.py "$@"
