#!/bin/sh
# SASL2 (XEP-0388) and Bind2 (XEP-0386), with XEP-0198 enabled inline.
cd "$(dirname "$0")" && exec python3 test_sasl2.py "$@"
