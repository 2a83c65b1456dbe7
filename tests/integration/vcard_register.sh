#!/bin/sh
# vcard-temp (XEP-0054) and XEP-0077 password change against a roostd with
# mod_vcard and mod_register: own and others' vCards, online and offline,
# size limit, Unicode, restarts; password change and its errors (registration
# and removal: register.sh).
# Needs mod_vcard.so and mod_register.so in ROOST_MODULES_DIR (or the build's
# modules).
cd "$(dirname "$0")" && exec python3 test_vcard_register.py "$@"
