#!/bin/sh
# PEP (XEP-0163, mod_pep) and private XML storage (XEP-0049) against a
# roostd with mod_pep: account disco, an OMEMO-shaped exchange with caps
# (XEP-0115) and +notify, publish-options preconditions, private storage,
# items surviving a restart.
cd "$(dirname "$0")" || exit 1
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" test_pep.py "$@"
