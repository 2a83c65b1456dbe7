#!/bin/sh
# Push notifications (XEP-0357) against a roostd with mod_offline and
# mod_push, a raw XEP-0114 component as the push service: offline,
# online, XEP-0198 hibernation, error and disable.
cd "$(dirname "$0")" && exec python3 test_push.py "$@"
