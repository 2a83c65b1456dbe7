#!/bin/sh
# Client State Indication (XEP-0352) against a roostd with mod_csi:
# hold, coalesce, flush on urgent stanzas and <active/>, max_held.
cd "$(dirname "$0")" && exec python3 test_csi.py "$@"
