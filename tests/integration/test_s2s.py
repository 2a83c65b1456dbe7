"""Federation (RFC 6120 server-to-server, XEP-0220 dialback over STARTTLS)
between two roostd processes on loopback: a.test and b.test, each with a
static route to the other.

Messages both ways, subscription both ways with presence and probes,
unavailable when one side's user goes, privacy across the boundary,
bounces when the remote server cannot be reached (remote-server-not-found)
and attacks: stanzas with a from the stream did not verify
(<invalid-from/>), an unsolicited dialback verify answer, plaintext
dialback when TLS is required.

    python3 test_s2s.py

Prints 'N passed, N failed'.
"""
import os
import socket
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS_A = {'alice@a.test': 'alice-Secret-1', 'anne@a.test': 'anne-Secret-2',
           'amy@a.test': 'amy-Secret-3'}
USERS_B = {'bob@b.test': 'bob-Secret-1', 'bea@b.test': 'bea-Secret-2',
           'bill@b.test': 'bill-Secret-3'}
USERS_C = {'carl@c.test': 'carl-Secret-1'}
NS_ROSTER = 'jabber:iq:roster'
NS_PRIV = 'jabber:iq:privacy'


class FedRoost(rt.Roost):
    """One roostd serving one domain, with an s2s listener and static
    routes to its peers."""

    def __init__(self, users, domain, ports, routes=None):
        self.domain = domain
        super().__init__(users)
        # From one free_ports() call: separate calls can hand out the same
        # port twice (each releases its sockets before the next).
        self.c2s_port, self.tls_port, self.s2s_port, self.dead_port = ports
        self.routes = routes or {}      # domain -> port on 127.0.0.1
        self.s2s_extra = ''             # more s2s options
        self.s2s_tls = 'starttls'       # the s2s listener's tls mode
        self.host_extra = ''            # more options of the host
        self.dns = None                 # "127.0.0.1:port" of a test DNS server

    def write_config(self):
        mods = ', '.join('"%s"' % m for m in
                         ['disco', 'ping', 'version', 'message', 'roster', 'presence',
                          'offline', 'privacy'])
        routes = list(self.routes.items()) + [('unreachable.test', self.dead_port)]
        with open(self.config, 'w') as f:
            f.write('log_level = "debug";\n'
                    'data_dir = "%s";\n' % os.path.join(self.dir, 'data') +
                    'modules_dir = "%s";\n' % self.modules +
                    'storage = { driver = "sqlite"; path = "roost.db"; };\n'
                    'limits = { auth_fail_delay = 0.2; };\n'
                    's2s = { connect_timeout = 5; %s%sroutes = (\n' % (
                        'dns_servers = "%s"; ' % self.dns if self.dns else '',
                        self.s2s_extra) +
                    ',\n'.join('  { domain = "%s"; host = "127.0.0.1"; port = %d; }'
                               % (d, p) for d, p in routes) +
                    ' ); };\n'
                    'listen = (\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "starttls"; },\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "direct"; },\n'
                    '  { address = "127.0.0.1"; port = %d; type = "s2s"; tls = "%s"; }\n'
                    ');\nhosts = (\n  { domain = "%s"; modules = [ %s ]; %s}\n);\n'
                    % (self.c2s_port, self.tls_port, self.s2s_port, self.s2s_tls,
                       self.domain, mods, self.host_extra))
        os.makedirs(os.path.join(self.dir, 'data'), exist_ok=True)


USERS = dict(USERS_A, **USERS_B, **USERS_C)


def login(srv, jid, presence=True):
    c = Client(srv, jid, USERS[jid], name=jid.split('@')[0]).login()
    if presence:
        c.send('<presence/>')
        wait_for(c, lambda e: rt.tag(e) == 'presence' and e.get('from') == c.full_jid,
                 'own presence')
    return c


def wait_for(c, pred, what, timeout=8.0):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: no %s; got %s' % (c.name, what, seen[-5:]))
        try:
            el = c.recv(timeout=left)
        except TestFailure as e:
            if 'nothing received' in str(e):
                continue
            raise
        if pred(el):
            return el
        seen.append(rt.to_string(el)[:200])


def none_of(c, pred, what, timeout=1.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            el = c.recv(timeout=left)
        except TestFailure as e:
            if 'nothing received' in str(e):
                return
            raise
        check(not pred(el), '%s: unexpected %s: %s' % (c.name, what, rt.to_string(el)))


def is_msg(mid):
    return lambda e: rt.tag(e) == 'message' and e.get('id') == mid


def is_presence(frm, typ=None):
    return lambda e: (rt.tag(e) == 'presence' and e.get('from') == frm and
                      e.get('type') == typ)


def msg(c, to, mid, body='hi'):
    c.send("<message to='%s' id='%s' type='chat'><body>%s</body></message>" % (to, mid, body))


# --------------------------------------------------------------- tests

def message_both_ways(servers):
    """A message from a.test reaches b.test and the reply comes back, with
    from stamped by the sender's server and the body intact."""
    a, b = servers[:2]
    alice = login(a, 'alice@a.test')
    bob = login(b, 'bob@b.test')
    try:
        msg(alice, 'bob@b.test', 'ab1', 'hallo \u00e4\u00f6\u00fc')
        m = wait_for(bob, is_msg('ab1'), 'message from a.test')
        check(m.get('from') == alice.full_jid, 'from %s' % m.get('from'))
        check(m.findtext('{jabber:client}body') == 'hallo \u00e4\u00f6\u00fc', 'body')
        msg(bob, m.get('from'), 'ba1', 'reply')
        r = wait_for(alice, is_msg('ba1'), 'reply from b.test')
        check(r.get('from') == bob.full_jid, 'reply from %s' % r.get('from'))
    finally:
        alice.close()
        bob.close()


def subscription_and_presence(servers):
    """Subscription both ways across the boundary (RFC 6121 §3), presence
    broadcast, unavailable when the remote user goes (cleanly, and when
    its client is killed), a probe answered at the next login."""
    a, b = servers[:2]
    anne = login(a, 'anne@a.test')
    bea = login(b, 'bea@b.test')
    try:
        for c in (anne, bea):
            c.iq("<iq type='get' id='r%s'><query xmlns='%s'/></iq>" % (c.name, NS_ROSTER))
        for x, y in ((anne, bea), (bea, anne)):
            x.send("<presence type='subscribe' to='%s'/>" % y.jid)
            wait_for(y, lambda e: rt.tag(e) == 'presence' and e.get('type') == 'subscribe'
                     and e.get('from') == x.jid, 'subscribe from %s' % x.jid)
            y.send("<presence type='subscribed' to='%s'/>" % x.jid)
            wait_for(x, lambda e: rt.tag(e) == 'presence' and e.get('type') == 'subscribed',
                     'subscribed from %s' % y.jid)
        bea.send('<presence><show>away</show></presence>')
        p = wait_for(anne, is_presence(bea.full_jid), "bea's broadcast")
        check(p.findtext('{jabber:client}show') == 'away', 'show: %s' % rt.to_string(p))
        bea.close()
        wait_for(anne, is_presence(bea.full_jid, 'unavailable'), 'unavailable from b.test')
        # Loss of contact across the boundary (RFC 2779 3.2.4): bea's
        # client vanishes without </stream:stream>.
        bea = login(b, 'bea@b.test')
        wait_for(anne, is_presence(bea.full_jid), "bea's presence again")
        bea.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            b'\x01\x00\x00\x00\x00\x00\x00\x00')
        bea.sock.close()
        bea.sock = None
        wait_for(anne, is_presence(bea.full_jid, 'unavailable'),
                 'unavailable after a killed client on b.test')
        bea = login(b, 'bea@b.test')
        wait_for(bea, lambda e: rt.tag(e) == 'presence' and
                 (e.get('from') or '').startswith('anne@a.test/'),
                 "anne's presence answering bea's probe")
    finally:
        anne.close()
        bea.close()


def privacy_across(servers):
    """A block on a.test (XEP-0191) refuses a b.test sender: the message
    bounces with service-unavailable, across the boundary."""
    a, b = servers[:2]
    amy = login(a, 'amy@a.test')
    bill = login(b, 'bill@b.test')
    try:
        r = amy.iq("<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'>"
                   "<item jid='bill@b.test'/></block></iq>")
        check(r.get('type') == 'result', 'block: %s' % rt.to_string(r))
        msg(bill, 'amy@a.test', 'blocked1')
        e = wait_for(bill, is_msg('blocked1'), 'bounce of a blocked message')
        check(e.get('type') == 'error' and rt.error_condition(e) == 'service-unavailable',
              'bounce: %s' % rt.to_string(e))
        none_of(amy, is_msg('blocked1'), 'blocked message')
    finally:
        amy.close()
        bill.close()


def unreachable_bounces(servers):
    """A domain whose server does not answer: the message comes back with
    <remote-server-not-found/> (RFC 6120 §10.4.3); a domain with no route
    and no DNS: the same."""
    a = servers[0]
    alice = login(a, 'alice@a.test')
    try:
        for i, dom in enumerate(('unreachable.test', 'no-such-domain.invalid')):
            msg(alice, 'x@%s' % dom, 'u%d' % i)
            e = wait_for(alice, is_msg('u%d' % i), 'bounce for %s' % dom, timeout=15)
            check(e.get('type') == 'error' and
                  rt.error_condition(e) in ('remote-server-not-found', 'remote-server-timeout'),
                  'bounce: %s' % rt.to_string(e))
    finally:
        alice.close()


def _raw_s2s(port, from_dom, to_dom, tls=True):
    """A fake server's connection to port: header, STARTTLS; returns a
    roosttest Client-like object for reading."""
    c = Client(servers_global[0], None, None, name='rogue')
    c.sock = socket.create_connection(('127.0.0.1', port), timeout=5)
    c.parser = rt.StreamParser()
    hdr = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
           "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
           "from='%s' to='%s' version='1.0'>" % (from_dom, to_dom))
    c.send(hdr)
    feats = c.recv()
    if tls:
        c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        p = c.recv()
        check(p.tag.endswith('proceed'), 'starttls: %s' % rt.to_string(p))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        # As Prosody and ejabberd do on s2s STARTTLS: an s2s port must
        # accept it (it once answered no_application_protocol).
        ctx.set_alpn_protocols(['xmpp-server'])
        c.sock = ctx.wrap_socket(c.sock, server_hostname=to_dom)
        check(c.sock.selected_alpn_protocol() == 'xmpp-server',
              'ALPN on s2s: %r' % c.sock.selected_alpn_protocol())
        c.parser = rt.StreamParser()
        c.send(hdr)
        feats = c.recv()
    return c, feats


servers_global = []


def attack_unverified_from(servers):
    """A peer that never completed dialback sends a stanza: <invalid-from/>
    and nothing is delivered (HOUSE 16, REQUIREMENTS 5.1.1)."""
    a = servers[0]
    alice = login(a, 'alice@a.test')
    try:
        c, feats = _raw_s2s(a.s2s_port, 'evil.test', 'a.test')
        c.send("<message from='mallory@evil.test' to='alice@a.test' id='forged'>"
               "<body>x</body></message>")
        cond = c.expect_stream_error()
        check(cond == 'invalid-from', 'unverified from: %s' % cond)
        none_of(alice, is_msg('forged'), 'a stanza from an unverified domain')
    finally:
        alice.close()


def attack_unsolicited_verify(servers):
    """An unsolicited <db:verify type='valid'/> answer (the 2012 dialback
    advisory) verifies nothing: a stanza after it is still refused."""
    a = servers[0]
    c, _ = _raw_s2s(a.s2s_port, 'evil.test', 'a.test')
    c.send("<db:verify from='evil.test' to='a.test' id='whatever' type='valid'/>")
    c.send("<message from='m@evil.test' to='alice@a.test' id='f2'><body>x</body></message>")
    # Our side may answer the verify request as an authoritative server
    # (it is one for a.test: invalid); the stanza is refused either way.
    cond = c.expect_stream_error()
    check(cond in ('invalid-from', 'improper-addressing'), 'after a forged verify: %s' % cond)


def attack_plaintext(servers):
    """Dialback in plaintext when TLS is required: <policy-violation/>."""
    a = servers[0]
    c, feats = _raw_s2s(a.s2s_port, 'evil.test', 'a.test', tls=False)
    check(feats.find('{urn:ietf:params:xml:ns:xmpp-tls}starttls/'
                     '{urn:ietf:params:xml:ns:xmpp-tls}required') is not None,
          'STARTTLS not required: %s' % rt.to_string(feats))
    c.send("<db:result from='evil.test' to='a.test'>abcdef</db:result>")
    cond = c.expect_stream_error()
    check(cond == 'policy-violation', 'plaintext dialback: %s' % cond)


def forged_dialback_key(servers):
    """A peer claiming b.test with a key b.test did not make: b.test (the
    authoritative server) says invalid, so the stream is refused."""
    a = servers[0]
    c, _ = _raw_s2s(a.s2s_port, 'b.test', 'a.test')
    c.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ('0' * 64))
    while True:
        el = c.recv(timeout=10)
        if el.tag == '{jabber:server:dialback}result':
            check(el.get('type') == 'invalid', 'forged key: %s' % rt.to_string(el))
            break
    c.send("<message from='bob@b.test' to='alice@a.test' id='f3'><body>x</body></message>")
    try:
        cond = c.expect_stream_error()
    except TestFailure:
        cond = 'closed'
    check(cond in ('not-authorized', 'invalid-from', 'closed'), 'after invalid: %s' % cond)


def srv_lookup(servers):
    """RFC 6120 §3.2.1 and XEP-0368: a domain without a static route is
    found through its SRV record (served by a dnsmasq the test runs):
    c.test publishes only _xmpps-server, pointing at its direct-TLS s2s
    listener under another host name; a.test connects with TLS from the
    first byte (ALPN xmpp-server) and c.test answers back through its
    route."""
    a = servers[0]
    c_srv = servers_global[2]
    alice = login(a, 'alice@a.test')
    carl = login(c_srv, 'carl@c.test')
    try:
        msg(alice, 'carl@c.test', 'srv1', 'via SRV')
        m = wait_for(carl, is_msg('srv1'), 'message over an SRV-found stream', timeout=15)
        check(m.get('from') == alice.full_jid, 'from %s' % m.get('from'))
        msg(carl, alice.full_jid, 'srv2', 'back')
        wait_for(alice, is_msg('srv2'), 'reply from c.test')
    finally:
        alice.close()
        carl.close()
    log = open(a.logfile).read()
    check('a.test->c.test] connecting to c-xmpp.test port %d (direct TLS)' % c_srv.s2s_port
          in log, 'a.test did not use the _xmpps-server SRV target with direct TLS (log)')


def start_dnsmasq(port, c_port):
    """dnsmasq on 127.0.0.1:port serving the SRV record of c.test."""
    import shutil
    import subprocess
    exe = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'
    if not os.path.exists(exe):
        raise TestFailure('dnsmasq is not installed (quickstart.sh TEST_DEPS has dnsmasq-base)')
    return subprocess.Popen([exe, '--no-daemon', '--port=%d' % port, '--listen-address=127.0.0.1',
                             '--bind-interfaces', '--no-resolv', '--no-hosts',
                             '--local=/test/', '--log-facility=-',
                             '--srv-host=_xmpps-server._tcp.c.test,c-xmpp.test,%d' % c_port,
                             '--host-record=c-xmpp.test,127.0.0.1'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


TESTS = [message_both_ways, subscription_and_presence, privacy_across,
         unreachable_bounces, attack_unverified_from, attack_unsolicited_verify,
         attack_plaintext, forged_dialback_key, srv_lookup]


def main():
    ports = rt.free_ports(13)
    a = FedRoost(USERS_A, 'a.test', ports[0:4])
    b = FedRoost(USERS_B, 'b.test', ports[4:8])
    c = FedRoost(USERS_C, 'c.test', ports[8:12])
    a.routes = {'b.test': b.s2s_port}
    b.routes = {'a.test': a.s2s_port}
    c.routes = {'a.test': a.s2s_port}
    c.s2s_tls = 'direct'                     # XEP-0368 on the listening side
    dns_port = ports[12]
    a.dns = '127.0.0.1:%d' % dns_port       # c.test only through SRV
    servers = (a, b, c)
    servers_global[:] = [a, b, c]
    passed = failed = 0
    dns = None
    try:
        dns = start_dnsmasq(dns_port, c.s2s_port)
        for s in servers:
            s.start()
        for t in TESTS:
            try:
                t(servers)
                print('PASS s2s:%s' % t.__name__)
                passed += 1
            except (TestFailure, OSError) as e:
                print('FAIL s2s:%s: %s' % (t.__name__, e))
                failed += 1
            for s in servers:
                if s.proc is None or s.proc.poll() is not None:
                    print('FAIL s2s:%s: %s not running afterwards' % (t.__name__, s.domain))
                    print(s.log_tail(40))
                    failed += 1
                    raise SystemExit(1)
        for s in servers:
            problems = s.stop()
            if problems:
                print('FAIL s2s:clean-shutdown(%s): %s' % (s.domain, '; '.join(problems)))
                print(s.log_tail(40))
                failed += 1
            else:
                print('PASS s2s:clean-shutdown(%s)' % s.domain)
                passed += 1
    except TestFailure as e:
        print('FAIL s2s:start: %s' % e)
        failed += 1
    finally:
        if dns is not None:
            dns.kill()
            dns.wait()
        for s in servers:
            if s.proc and s.proc.poll() is None:
                s.proc.kill()
            if not failed:
                s.cleanup()
            else:
                print('    (server files kept in %s)' % s.dir)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
