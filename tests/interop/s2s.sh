#!/bin/sh
# Federation interop: roostd against unmodified Debian Prosody 0.12 and
# ejabberd 23.01 over s2s (STARTTLS + Server Dialback, then STARTTLS + SASL
# EXTERNAL with certificates from a test CA), each server on its own
# loopback address on port 5269; a.test and the peers' names are added to
# /etc/hosts for the run and removed afterwards (needs root).  Skips
# (exit 77) when neither peer is installed.
# Binaries: $ROOSTD, $ROOSTCTL, $ROOST_MODULES_DIR (defaults: the build tree).
cd "$(dirname "$0")" || exit 1
exec python3 test_s2s_interop.py "$@"
