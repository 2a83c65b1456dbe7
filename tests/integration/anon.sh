#!/bin/sh
# SASL ANONYMOUS on a vhost of its own, and refusing its users with a
# XEP-0016 privacy list or XEP-0191 block of the domain (mod_privacy).
# Needs mod_privacy.so in ROOST_MODULES_DIR (or the build's modules).
cd "$(dirname "$0")" && exec python3 test_anon.py "$@"
