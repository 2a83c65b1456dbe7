#!/bin/sh
# Administration of subscriptions: roostctl roster, subscribers,
# subscriptions, roster-add and roster-del after a real subscription
# handshake, and XEP-0133 get-user-roster (mod_admin_adhoc).  Needs
# mod_admin_adhoc.so in ROOST_MODULES_DIR (or the build's modules).
cd "$(dirname "$0")" && exec python3 test_admin.py "$@"
