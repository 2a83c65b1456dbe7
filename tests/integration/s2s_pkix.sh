#!/bin/sh
# Federation with certificates (XEP-0178 SASL EXTERNAL) and a test CA:
# secure both ways, wrong name refused, untrusted CA refused.
cd "$(dirname "$0")" && exec python3 test_s2s_pkix.py "$@"
