"""Federation with certificates (XEP-0178: SASL EXTERNAL, RFC 6125 name
checks) between roostd processes, with a test CA made here by openssl.

- a.test and b.test have CA-signed certificates for their names (a.test
  a DNS-ID, b.test only an XmppAddr identifier) and
  s2s.secure_auth = true (no dialback): messages flow both ways on one
  connection (XEP-0288 bidi), b.test authenticated with SASL EXTERNAL and
  a.test by its certificate (their logs say so);
- c.test presents a CA-signed certificate for another name (wrong.test):
  a.test refuses it (no EXTERNAL for that name, no dialback under
  secure_auth), so c's message bounces and nothing reaches a;
- b.test trusts no CA (s2s.ca_file of an unrelated CA) and has
  secure_auth off: it falls back to dialback with a.test... which a.test
  refuses (secure_auth): the message to a.test bounces;
- e.test's certificate names it only by an SRV-ID (_xmpp-server.e.test,
  RFC 6125 §6.5.1; no DNS-ID, a CN that is no name of it): with
  secure_auth on both sides, e.test and a.test federate over SASL
  EXTERNAL.

    python3 test_s2s_pkix.py

Prints 'N passed, N failed'.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, TestFailure      # noqa: E402
import test_s2s as S                          # noqa: E402

USERS_A = {'alice@a.test': 'alice-Secret-1'}
USERS_B = {'bob@b.test': 'bob-Secret-1'}
USERS_C = {'carl@c.test': 'carl-Secret-1'}
USERS_D = {'dora@d.test': 'dora-Secret-1'}
USERS_E = {'eve@e.test': 'eve-Secret-1'}
S.USERS.update(USERS_D)
S.USERS.update(USERS_E)


def openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    key, crt = os.path.join(d, name + '.key'), os.path.join(d, name + '.crt')
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
            '-days', '2', '-subj', '/CN=' + name, '-addext', 'basicConstraints=critical,CA:TRUE',
            '-addext', 'keyUsage=critical,keyCertSign', '-keyout', key, '-out', crt)
    return key, crt


def make_cert(d, ca, san, name, cn=None):
    """A certificate signed by ca; san is a DNS name, or a whole
    subjectAltName value in openssl's syntax when it has a colon."""
    key, csr, crt = (os.path.join(d, name + s) for s in ('.key', '.csr', '.crt'))
    ext = os.path.join(d, name + '.ext')
    with open(ext, 'w') as f:
        f.write('subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n'
                % (san if ':' in san else 'DNS:' + san))
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
            '-subj', '/CN=' + (cn or san), '-keyout', key, '-out', csr)
    openssl('x509', '-req', '-in', csr, '-CA', ca[1], '-CAkey', ca[0], '-CAcreateserial',
            '-days', '2', '-out', crt, '-extfile', ext)
    return key, crt


def secure_both_ways(servers):
    """a.test <-> b.test: SASL EXTERNAL (no dialback: secure_auth),
    messages both ways.  b.test speaks first and authenticates with its
    certificate; a.test's reply travels on b.test's stream (XEP-0288
    bidi: b.test checked a.test's certificate for a.test when it
    connected), so one TCP connection carries both directions."""
    a, b = servers[:2]
    alice = S.login(a, 'alice@a.test')
    bob = S.login(b, 'bob@b.test')
    try:
        S.msg(bob, 'alice@a.test', 'pk1')
        m = S.wait_for(alice, S.is_msg('pk1'), 'message b -> a')
        check(m.get('from') == bob.full_jid, 'from %s' % m.get('from'))
        S.msg(alice, bob.full_jid, 'pk2')
        S.wait_for(bob, S.is_msg('pk2'), 'message a -> b')
    finally:
        alice.close()
        bob.close()
    la, lb = open(a.logfile).read(), open(b.logfile).read()
    check('b.test->a.test] authenticated (SASL EXTERNAL)' in lb, 'b -> a not EXTERNAL')
    check('authenticated b.test (SASL EXTERNAL)' in la, 'a did not check b by certificate')
    check('b.test->a.test] bidirectional (XEP-0288): stanzas from a.test arrive' in lb and
          'a.test<-b.test] bidirectional (XEP-0288): stanzas to b.test go' in la,
          'a -> b not on the bidirectional stream')
    check('[s2sout:' not in la and not re.search(r'\[s2sin:\w+ b\.test<-', lb),
          'a second connection between a.test and b.test')
    check('dialback' not in la.replace('features:dialback', ''), 'a used dialback')


def wrong_name_refused(servers):
    """c.test presents a certificate for wrong.test: a.test refuses SASL
    EXTERNAL for c.test and does not offer dialback: c's message bounces,
    nothing reaches alice."""
    a, c = servers[0], servers[2]
    alice = S.login(a, 'alice@a.test')
    carl = S.login(c, 'carl@c.test')
    try:
        S.msg(carl, 'alice@a.test', 'wr1')
        e = S.wait_for(carl, S.is_msg('wr1'), 'bounce of the message', timeout=15)
        check(e.get('type') == 'error', 'not bounced: %s' % rt.to_string(e))
        S.none_of(alice, S.is_msg('wr1'), 'a message from a wrongly certified server')
    finally:
        alice.close()
        carl.close()


def untrusted_ca_refused(servers):
    """d.test's certificate comes from a CA a.test does not trust; d.test
    falls back to dialback, which a.test (secure_auth) refuses."""
    a, d = servers[0], servers[3]
    alice = S.login(a, 'alice@a.test')
    dora = S.login(d, 'dora@d.test')
    try:
        S.msg(dora, 'alice@a.test', 'ut1')
        e = S.wait_for(dora, S.is_msg('ut1'), 'bounce of the message', timeout=15)
        check(e.get('type') == 'error', 'not bounced: %s' % rt.to_string(e))
        S.none_of(alice, S.is_msg('ut1'), 'a message from an untrusted server')
    finally:
        alice.close()
        dora.close()


def srv_id_only(servers):
    """e.test's certificate has an SRV-ID for _xmpp-server.e.test and
    no other identifier: a.test (secure_auth) accepts it for e.test
    (SASL EXTERNAL), messages flow both ways."""
    a, e = servers[0], servers[4]
    alice = S.login(a, 'alice@a.test')
    eve = S.login(e, 'eve@e.test')
    try:
        S.msg(eve, 'alice@a.test', 'sv1')
        m = S.wait_for(alice, S.is_msg('sv1'), 'message e -> a', timeout=15)
        check(m.get('from') == eve.full_jid, 'from %s' % m.get('from'))
        S.msg(alice, eve.full_jid, 'sv2')
        S.wait_for(eve, S.is_msg('sv2'), 'message a -> e', timeout=15)
    finally:
        alice.close()
        eve.close()
    la = open(a.logfile).read()
    check('authenticated e.test (SASL EXTERNAL)' in la,
          'a.test did not authenticate e.test by its SRV-ID certificate')


TESTS = [secure_both_ways, wrong_name_refused, untrusted_ca_refused, srv_id_only]


def main():
    tmp = tempfile.mkdtemp(prefix='roosttest-pki-')
    ca = make_ca(tmp, 'testca')
    other_ca = make_ca(tmp, 'otherca')
    certs = {'a.test': make_cert(tmp, ca, 'a.test', 'a'),
             # An XmppAddr only (RFC 6120 §13.7.1.4), no DNS-ID, and a CN
             # that is no name of it (not looked at: there is a SAN).
             'b.test': make_cert(tmp, ca, 'otherName:1.3.6.1.5.5.7.8.5;UTF8:b.test', 'b',
                                 cn='b-server'),
             'c.test': make_cert(tmp, ca, 'wrong.test', 'c'),
             'd.test': make_cert(tmp, other_ca, 'd.test', 'd'),
             # An SRV-ID only (RFC 4985, RFC 6125 §6.5.1).
             'e.test': make_cert(tmp, ca,
                                 'otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-server.e.test',
                                 'e', cn='e-server')}
    ports = rt.free_ports(20)
    a = S.FedRoost(USERS_A, 'a.test', ports[0:4])
    b = S.FedRoost(USERS_B, 'b.test', ports[4:8])
    c = S.FedRoost(USERS_C, 'c.test', ports[8:12])
    d = S.FedRoost(USERS_D, 'd.test', ports[12:16])
    e = S.FedRoost(USERS_E, 'e.test', ports[16:20])
    servers = (a, b, c, d, e)
    for s in servers:
        s.routes = dict((o.domain, o.s2s_port) for o in servers if o is not s)
        key, crt = certs[s.domain]
        s.host_extra = 'cert = "%s"; key = "%s"; ' % (crt, key)
        s.s2s_extra = 'ca_file = "%s"; ' % ca[1]
    for s in (a, b, e):
        s.s2s_extra += 'secure_auth = true; '
    passed = failed = 0
    try:
        for s in servers:
            s.start()
        for t in TESTS:
            try:
                t(servers)
                print('PASS s2s-pkix:%s' % t.__name__)
                passed += 1
            except (TestFailure, OSError) as e:
                print('FAIL s2s-pkix:%s: %s' % (t.__name__, e))
                failed += 1
        for s in servers:
            problems = s.stop()
            if problems:
                print('FAIL s2s-pkix:clean-shutdown(%s): %s' % (s.domain, '; '.join(problems)))
                failed += 1
            else:
                passed += 1
    except TestFailure as e:
        print('FAIL s2s-pkix:start: %s' % e)
        failed += 1
    finally:
        for s in servers:
            if s.proc and s.proc.poll() is None:
                s.proc.kill()
            if not failed:
                s.cleanup()
            else:
                print('    (server files kept in %s)' % s.dir)
        if not failed:
            subprocess.run(['rm', '-rf', tmp])
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
