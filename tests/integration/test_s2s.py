"""Federation (RFC 6120 server-to-server, XEP-0220 dialback over STARTTLS)
between two roostd processes on loopback: a.test and b.test, each with a
static route to the other.

Messages both ways, subscription both ways with presence and probes,
unavailable when one side's user goes, privacy across the boundary,
bounces when the remote server cannot be reached (remote-server-not-found),
one connection carrying stanzas both ways (XEP-0288 bidi), a peer
using a bidi stream for a domain it did not verify (<invalid-from/>),
an external component of a.test (XEP-0114) talking to b.test both ways
(a.test answering dialback for the component's domain), and attacks:
stanzas with a from the stream did not verify (<invalid-from/>), an
unsolicited dialback verify answer, plaintext dialback when TLS is
required.  Also: a dialback verify request sent on a peer's bidi stream
instead of a new connection, s2s.bidi = false (c.test: two connections),
s2s.peers (legacy.test, without TLS, allowed by a.test only, refused by
b.test; inbound the claimed domain decides), the pre-auth limits on an
unauthenticated stream (bytes, stanza size; lifted once verified), and
the log line when a peer shuts down (c.test stops last).

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
USERS_L = {'lee@legacy.test': 'lee-Secret-1'}
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
        self.components = {}            # XEP-0114 domain -> secret
        self.comp_port = None           # its listener

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
                    '%s);\nhosts = (\n  { domain = "%s"; modules = [ %s ]; %s}\n);\n'
                    % (self.c2s_port, self.tls_port, self.s2s_port, self.s2s_tls,
                       ',  { address = "127.0.0.1"; port = %d; type = "component"; }\n'
                       % self.comp_port if self.comp_port else '',
                       self.domain, mods, self.host_extra))
            if self.components:
                f.write('components = ( %s );\n' % ', '.join(
                    '{ domain = "%s"; secret = "%s"; }' % kv
                    for kv in self.components.items()))
        os.makedirs(os.path.join(self.dir, 'data'), exist_ok=True)


USERS_D = {'dora@d.test': 'dora-Secret-1'}
USERS = dict(USERS_A, **USERS_B, **USERS_C, **USERS_L, **USERS_D)


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

def bidi_one_connection(servers):
    """XEP-0288: a.test connects to b.test and asks for a bidirectional
    stream (b.test offers it); b.test's reply then travels on that same
    connection: b.test never authenticates a stream of its own to a.test
    (its only connection to a.test carries the dialback verify request)."""
    a, b = servers[:2]
    amy = login(a, 'amy@a.test')
    bill = login(b, 'bill@b.test')
    try:
        msg(amy, 'bill@b.test', 'bd1', 'one way')
        wait_for(bill, is_msg('bd1'), 'message from a.test')
        msg(bill, amy.full_jid, 'bd2', 'and back')
        r = wait_for(amy, is_msg('bd2'), 'reply over the same stream')
        check(r.get('from') == bill.full_jid, 'reply from %s' % r.get('from'))
    finally:
        amy.close()
        bill.close()
    alog, blog = open(a.logfile).read(), open(b.logfile).read()
    check('a.test->b.test] bidirectional (XEP-0288): stanzas from b.test arrive' in alog,
          "a.test did not receive b.test's stanza on its own stream (log)")
    check('b.test<-a.test] bidirectional (XEP-0288): stanzas to a.test go' in blog,
          "b.test did not send on a.test's stream (log)")
    check('b.test->a.test] authenticated' not in blog and
          'verified b.test by dialback' not in alog,
          'b.test authenticated a second stream to a.test')


def _fake_peer_accept(lsock, domain, cert, expect='result'):
    """Accepts a.test's connection as the server of domain: STARTTLS,
    features with dialback and bidi; returns (client, <bidi/> seen) after
    accepting a.test's dialback key, or with expect='verify' (client,
    a.test's db:verify request) unanswered."""
    s, _ = lsock.accept()
    s.settimeout(10)
    c = Client(servers_global[0], None, None, name='fake-' + domain)
    c.sock, c.parser = s, rt.StreamParser()
    hdr = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
           "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
           "from='%s' to='a.test' id='%s' version='1.0'>")
    deadline = time.monotonic() + 10
    while c.parser.header is None and c._fill(deadline):
        pass
    c.send(hdr % (domain, 'fake1') + "<stream:features><starttls "
           "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")
    check(c.recv().tag.endswith('starttls'), 'no starttls')
    c.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    c.sock = ctx.wrap_socket(s, server_side=True)
    c.parser = rt.StreamParser()
    while c.parser.header is None and c._fill(deadline):
        pass
    c.send(hdr % (domain, 'fake2') + "<stream:features><dialback xmlns='urn:xmpp:features:dialback'>"
           "<errors/></dialback><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>")
    el = c.recv()
    bidi = el.tag == '{urn:xmpp:bidi}bidi'
    if bidi:
        el = c.recv()
    if expect == 'verify':
        check(el.tag == '{jabber:server:dialback}verify' and el.get('from') == 'a.test',
              'dialback verify request expected: %s' % rt.to_string(el))
        return c, el
    check(el.tag == '{jabber:server:dialback}result' and el.get('from') == 'a.test',
          'dialback result expected: %s' % rt.to_string(el))
    c.send("<db:result from='%s' to='a.test' type='valid'/>" % domain)
    return c, bidi


def bidi_unverified_from(servers):
    """A peer that a.test connected to (bidi.test, a fake server here that
    accepts a.test's dialback) may send on that stream as bidi.test to
    a.test only: a stanza as bidi.test arrives, one claiming b.test (not
    verified on that stream for that direction) is <invalid-from/>."""
    a = servers[0]
    lsock, cert = FAKE_PEER['sock'], FAKE_PEER['cert']
    alice = login(a, 'alice@a.test')
    try:
        msg(alice, 'x@bidi.test', 'fb1')
        c, bidi = _fake_peer_accept(lsock, 'bidi.test', cert)
        check(bidi, 'a.test sent no <bidi/> although it was offered')
        m = wait_for(c, is_msg('fb1'), "alice's message at the fake peer")
        check(m.get('from') == alice.full_jid, 'from %s' % m.get('from'))
        c.send("<message from='x@bidi.test' to='%s' id='fb2'><body>back</body></message>"
               % alice.full_jid)
        wait_for(alice, is_msg('fb2'), 'a stanza from bidi.test over the bidi stream')
        c.send("<message from='bob@b.test' to='%s' id='fb3'><body>forged</body></message>"
               % alice.full_jid)
        check(c.expect_stream_error() == 'invalid-from', 'a forged from on a bidi stream')
        none_of(alice, is_msg('fb3'), 'a forged stanza over a bidi stream')
    finally:
        alice.close()

def verify_over_bidi(servers):
    """A dialback verify request goes on a stream that exists: bidi.test
    (a fake server here) opens a bidi stream to a.test and is verified
    (a.test asks bidi.test's port, once); when bidi.test then opens a
    second stream, a.test sends the verify request on the first one
    (XEP-0288: its direction towards bidi.test), takes the answer there,
    and opens no connection."""
    a = servers[0]
    lsock, cert = FAKE_PEER['sock'], FAKE_PEER['cert']
    f1, _ = _raw_s2s(a.s2s_port, 'bidi.test', 'a.test')
    f1.send("<bidi xmlns='urn:xmpp:bidi'/><db:result from='bidi.test' to='a.test'>"
            "k1k1k1</db:result>")
    v, req = _fake_peer_accept(lsock, 'bidi.test', cert, expect='verify')
    check(req.text == 'k1k1k1', 'key asked about: %s' % rt.to_string(req))
    v.send("<db:verify from='bidi.test' to='a.test' id='%s' type='valid'/>" % req.get('id'))
    r = f1.recv(timeout=10)
    check(r.tag == '{jabber:server:dialback}result' and r.get('type') == 'valid',
          'first stream: %s' % rt.to_string(r))
    # bidi.test drops a.test's verify connection: nothing of a.test's own
    # to bidi.test is left.
    v.send('</stream:stream>')
    v.sock.close()
    time.sleep(0.5)
    f2, _ = _raw_s2s(a.s2s_port, 'bidi.test', 'a.test')
    f2.send("<db:result from='bidi.test' to='a.test'>k2k2k2</db:result>")
    q = f1.recv(timeout=10)
    check(q.tag == '{jabber:server:dialback}verify' and q.get('from') == 'a.test' and
          q.get('to') == 'bidi.test' and q.text == 'k2k2k2' and q.get('type') is None,
          'a verify request on the bidi stream: %s' % rt.to_string(q))
    f1.send("<db:verify from='bidi.test' to='a.test' id='%s' type='valid'/>" % q.get('id'))
    r = f2.recv(timeout=10)
    check(r.tag == '{jabber:server:dialback}result' and r.get('type') == 'valid',
          'second stream: %s' % rt.to_string(r))
    lsock.settimeout(0.5)
    try:
        lsock.accept()[0].close()
        raise TestFailure('a.test opened a connection to bidi.test for the verify request')
    except socket.timeout:
        pass
    finally:
        lsock.settimeout(15)
    for c in (f1, f2):
        c.send('</stream:stream>')
        c.sock.close()


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


def connect_timeout_bounces(servers):
    """s2s.connect_timeout: a peer that accepts the TCP connection and
    never answers (no stream header): the queued message comes back with
    <remote-server-timeout/> (RFC 6120 §10.4.3) after the timeout (5 s
    here), not at once, and nothing else is affected."""
    a = servers[0]
    alice = login(a, 'alice@a.test')
    try:
        start = time.monotonic()
        msg(alice, 'x@silent.test', 'ct1')
        e = wait_for(alice, is_msg('ct1'), 'bounce from the silent peer', timeout=20)
        took = time.monotonic() - start
        check(e.get('type') == 'error' and rt.error_condition(e) == 'remote-server-timeout',
              'bounce: %s' % rt.to_string(e))
        check(took >= 4.0, 'bounced after %.1f s: not the 5 s connect_timeout' % took)
        conn, _ = SILENT_PEER['sock'].accept()   # raises if roostd never connected
        conn.close()
    finally:
        alice.close()


def idle_close(servers):
    """s2s.idle_timeout (2 s on d.test): an outgoing stream nobody uses
    is closed; the next stanza opens a new one and is delivered."""
    a, d = servers[0], servers[4]
    alice = login(a, 'alice@a.test')
    dora = login(d, 'dora@d.test')
    try:
        msg(dora, 'alice@a.test', 'id1')
        wait_for(alice, is_msg('id1'), 'the first message')
        deadline = time.monotonic() + 10
        while 'idle: closing' not in d.log_tail(400):
            check(time.monotonic() < deadline, 'd.test never closed its idle stream:\n%s'
                  % d.log_tail(30))
            time.sleep(0.2)
        msg(dora, 'alice@a.test', 'id2')
        wait_for(alice, is_msg('id2'), 'a message after the idle close')
    finally:
        alice.close()
        dora.close()


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
FAKE_PEER = {}
SILENT_PEER = {}


def _fake_cert(d, name):
    import subprocess
    key, crt = os.path.join(d, name + '.key'), os.path.join(d, name + '.crt')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=' + name,
                    '-keyout', key, '-out', crt], check=True, capture_output=True, timeout=60)
    return crt, key


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


COMP_SECRET = 'c0mp-s3cret'


def component_over_s2s(servers):
    """XEP-0114 across federation: a component of a.test (comp.a.test)
    sends to bob@b.test, which verifies comp.a.test by dialback with
    a.test (the authoritative server for its component's domain), and
    bob's reply to the component's domain arrives at a.test over s2s and
    reaches the component.  A stanza on a stream to comp.a.test from an
    unverified domain is refused (<invalid-from/>); once the component is
    gone, bob's message to it bounces back across the boundary."""
    from test_component import raw_component
    a, b = servers[:2]
    comp, ans = raw_component(a, 'comp.a.test', COMP_SECRET)
    bob = login(b, 'bob@b.test')
    try:
        check(ans.tag == '{jabber:component:accept}handshake', 'handshake: %s' % rt.to_string(ans))
        comp.send("<message from='bot@comp.a.test' to='bob@b.test' id='cs1' type='chat'>"
                  "<body>from a component</body></message>")
        m = wait_for(bob, is_msg('cs1'), 'message from the component', timeout=15)
        check(m.get('from') == 'bot@comp.a.test', 'from %s' % m.get('from'))
        msg(bob, 'bot@comp.a.test', 'cs2', 'to the component')
        r = wait_for(comp, is_msg('cs2'), 'message from b.test at the component', timeout=15)
        check(r.get('from') == bob.full_jid, 'at the component, from %s' % r.get('from'))
        # An iq to a subdomain of the component, and its answer back.
        bob.send("<iq type='get' id='cs3' to='sub.comp.a.test'><ping xmlns='urn:xmpp:ping'/></iq>")
        q = wait_for(comp, lambda e: rt.tag(e) == 'iq' and e.get('id') == 'cs3', 'iq', timeout=15)
        comp.send("<iq type='result' id='cs3' from='sub.comp.a.test' to='%s'/>" % bob.full_jid)
        wait_for(bob, lambda e: rt.tag(e) == 'iq' and e.get('id') == 'cs3' and
                 e.get('type') == 'result', 'iq result from the component')
        # Still no way for the component to speak for a.test.
        comp.send("<message from='alice@a.test' to='bob@b.test' id='cs4'><body>x</body></message>")
        check(comp.expect_stream_error() == 'invalid-from', 'component forging a.test')
        none_of(bob, is_msg('cs4'), 'a forged message from the component')
        msg(bob, 'bot@comp.a.test', 'cs5')
        e = wait_for(bob, is_msg('cs5'), 'bounce from a component that is gone', timeout=15)
        check(e.get('type') == 'error' and rt.error_condition(e) == 'service-unavailable' and
              e.get('from') == 'bot@comp.a.test', 'bounce: %s' % rt.to_string(e))
    finally:
        bob.close()
        comp.close()
    log = open(a.logfile).read()
    check('comp.a.test<-b.test]' in log,
          'no incoming stream for comp.a.test in the log')
    # A stream to the component's domain: stanzas need a verified pair.
    c, _ = _raw_s2s(a.s2s_port, 'evil.test', 'comp.a.test')
    c.send("<message from='m@evil.test' to='bot@comp.a.test' id='cs6'><body>x</body></message>")
    check(c.expect_stream_error() == 'invalid-from', 'unverified stanza to the component')


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


def bidi_off_two_connections(servers):
    """s2s.bidi = false on c.test: it neither offers XEP-0288 nor uses
    a.test's stream, so carl's reply in srv_lookup went over a stream of
    c.test's own (authenticated by dialback), two connections in all."""
    a, c_srv = servers[0], servers_global[2]
    alice = login(a, 'alice@a.test')
    carl = login(c_srv, 'carl@c.test')
    try:
        msg(alice, 'carl@c.test', 'bo1', 'there')
        wait_for(carl, is_msg('bo1'), 'message to c.test', timeout=15)
        msg(carl, alice.full_jid, 'bo2', 'and back')
        wait_for(alice, is_msg('bo2'), 'reply from c.test', timeout=15)
    finally:
        alice.close()
        carl.close()
    alog, clog = open(a.logfile).read(), open(c_srv.logfile).read()
    check('c.test->a.test] authenticated (dialback)' in clog,
          'c.test did not authenticate a stream of its own to a.test (log)')
    check('a.test->c.test] bidirectional' not in alog and
          'c.test<-a.test] bidirectional' not in clog,
          'a bidirectional stream between a.test and c.test (log)')


def _stream_error(c):
    el = c.recv_stream_error()
    return (rt.error_condition(el, rt.NS_STREAM_ERR),
            el.findtext('{%s}text' % rt.NS_STREAM_ERR) or '')


def peer_plaintext_policy(servers):
    """s2s.peers on a.test lets legacy.test (no TLS at all) federate in
    plaintext, that peer only: alice and lee talk both ways; b.test, with
    the default policy, refuses legacy.test (bob's message bounces).
    The entry also turns XEP-0288 off for legacy.test (a.test keeps it
    for b.test): lee's reply comes on a stream of legacy.test's own."""
    a, b = servers[:2]
    lsrv = servers_global[3]
    alice = login(a, 'alice@a.test')
    lee = login(lsrv, 'lee@legacy.test')
    bob = login(b, 'bob@b.test')
    try:
        msg(alice, 'lee@legacy.test', 'pl1', 'in plaintext')
        m = wait_for(lee, is_msg('pl1'), 'message over a plaintext stream', timeout=15)
        check(m.get('from') == alice.full_jid, 'from %s' % m.get('from'))
        msg(lee, alice.full_jid, 'pl2', 'back')
        wait_for(alice, is_msg('pl2'), 'reply from legacy.test', timeout=15)
        msg(bob, 'lee@legacy.test', 'pl3')
        e = wait_for(bob, is_msg('pl3'), 'bounce from b.test', timeout=15)
        check(e.get('type') == 'error' and
              rt.error_condition(e) == 'remote-server-not-found', 'bounce: %s' % rt.to_string(e))
        none_of(lee, is_msg('pl3'), 'a message over a stream b.test must refuse')
    finally:
        alice.close()
        lee.close()
        bob.close()
    alog, blog = open(a.logfile).read(), open(b.logfile).read()
    check('a.test->legacy.test] authenticated (dialback)' in alog,
          'a.test did not authenticate to legacy.test (log)')
    check('b.test->legacy.test] peer offers no TLS: giving up' in blog,
          'b.test did not refuse legacy.test for lack of TLS (log)')
    check('a.test<-legacy.test] verified legacy.test by dialback' in alog and
          'legacy.test] bidirectional' not in alog,
          'legacy.test (bidi = false in its s2s.peers entry) used a bidi stream (log)')


def peer_plaintext_inbound(servers):
    """Inbound, before authentication the claimed domain decides: on a
    plaintext stream a.test takes dialback for legacy.test (features
    without <required/>; the made-up key is checked with legacy.test
    and found invalid), but <policy-violation/> for b.test, also on a
    stream whose header says legacy.test."""
    a = servers[0]
    c, feats = _raw_s2s(a.s2s_port, 'legacy.test', 'a.test', tls=False)
    check(feats.find('{urn:ietf:params:xml:ns:xmpp-tls}starttls') is not None and
          feats.find('{urn:ietf:params:xml:ns:xmpp-tls}starttls/'
                     '{urn:ietf:params:xml:ns:xmpp-tls}required') is None and
          feats.find('{urn:xmpp:features:dialback}dialback') is not None,
          'features for legacy.test: %s' % rt.to_string(feats))
    c.send("<db:result from='legacy.test' to='a.test'>%s</db:result>" % ('0' * 64))
    while True:
        el = c.recv(timeout=10)
        if el.tag == '{jabber:server:dialback}result':
            check(el.get('type') == 'invalid', 'a made-up key: %s' % rt.to_string(el))
            break
    c, feats = _raw_s2s(a.s2s_port, 'b.test', 'a.test', tls=False)
    check(feats.find('{urn:ietf:params:xml:ns:xmpp-tls}starttls/'
                     '{urn:ietf:params:xml:ns:xmpp-tls}required') is not None,
          'STARTTLS not required for b.test: %s' % rt.to_string(feats))
    c.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ('0' * 64))
    check(c.expect_stream_error() == 'policy-violation', 'plaintext dialback for b.test')
    c, feats = _raw_s2s(a.s2s_port, 'legacy.test', 'a.test', tls=False)
    c.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ('0' * 64))
    check(c.expect_stream_error() == 'policy-violation',
          'plaintext dialback for b.test under a legacy.test header')
    c, feats = _raw_s2s(a.s2s_port, 'legacy.test', 'a.test', tls=False)
    c.send("<db:verify from='b.test' to='a.test' id='x'>%s</db:verify>" % ('0' * 64))
    check(c.expect_stream_error() == 'policy-violation', 'plaintext verify request from b.test')


def preauth_bytes(servers):
    """limits.preauth_max_bytes (64 KiB) holds for s2s until a domain
    pair is verified: a peer that sends 75 KB of dialback verify
    requests without authenticating gets <policy-violation/>."""
    a = servers[0]
    c, _ = _raw_s2s(a.s2s_port, 'evil.test', 'a.test')
    req = "<db:verify from='evil.test' to='a.test' id='v%04d'>0123456789</db:verify>"
    c.sock.sendall(''.join(req % i for i in range(1000)).encode())
    cond, text = _stream_error(c)
    check(cond == 'policy-violation' and 'before authentication' in text,
          '75 KB before authentication: %s (%s)' % (cond, text))


def preauth_stanza_size(servers):
    """limits.preauth_max_stanza_size (16 KiB) until a pair is verified:
    a 20 KB db:result is a <policy-violation/>; after authentication
    stanzas up to max_stanza_size pass (40 KB messages both ways)."""
    a, b = servers[:2]
    c, _ = _raw_s2s(a.s2s_port, 'evil.test', 'a.test')
    c.send("<db:result from='evil.test' to='a.test'>%s</db:result>" % ('0' * 20000))
    cond, text = _stream_error(c)
    check(cond == 'policy-violation' and 'too large' in text,
          'a 20 KB db:result: %s (%s)' % (cond, text))
    alice = login(a, 'alice@a.test')
    bob = login(b, 'bob@b.test')
    try:
        big = 'y' * 40000
        msg(alice, bob.full_jid, 'big1', big)
        m = wait_for(bob, is_msg('big1'), 'a 40 KB message to b.test', timeout=15)
        check(m.findtext('{jabber:client}body') == big, 'body of the big message')
        msg(bob, alice.full_jid, 'big2', big)
        wait_for(alice, is_msg('big2'), 'a 40 KB message from b.test', timeout=15)
    finally:
        alice.close()
        bob.close()


def peer_close_logged(servers):
    """When a peer shuts down (c.test stops), a.test logs that the peer
    closed the stream, not that the stream failed."""
    a, c_srv = servers[0], servers_global[2]
    problems = c_srv.stop()
    c_srv.stopped = True
    check(not problems, 'c.test stop: %s' % problems)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alog = open(a.logfile).read()
        if 'a.test->c.test] the peer closed' in alog:
            break
        time.sleep(0.1)
    check('a.test->c.test] the peer closed the ' in alog,
          'no "peer closed" line for a.test->c.test')
    check('a.test->c.test] failed (' not in alog,
          'a peer shutting down logged as a failure')


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


TESTS = [bidi_one_connection, bidi_unverified_from, verify_over_bidi, message_both_ways, subscription_and_presence, privacy_across,
         unreachable_bounces, attack_unverified_from, attack_unsolicited_verify,
         attack_plaintext, forged_dialback_key, component_over_s2s, srv_lookup,
         bidi_off_two_connections, peer_plaintext_policy, peer_plaintext_inbound,
         preauth_bytes, preauth_stanza_size, peer_close_logged, connect_timeout_bounces,
         idle_close]


def main():
    ports = rt.free_ports(24)
    a = FedRoost(USERS_A, 'a.test', ports[0:4])
    b = FedRoost(USERS_B, 'b.test', ports[4:8])
    c = FedRoost(USERS_C, 'c.test', ports[8:12])
    # legacy.test: no TLS on its s2s port; a.test allows that (s2s.peers)
    # for legacy.test only, b.test does not.
    lsrv = FedRoost(USERS_L, 'legacy.test', ports[15:19])
    lsrv.s2s_tls = 'none'
    lsrv.s2s_extra = 'require_encryption = false; '
    lsrv.routes = {'a.test': a.s2s_port, 'b.test': b.s2s_port}
    a.s2s_extra = ('peers = ( { domain = "legacy.test"; require_encryption = false; '
                   'bidi = false; } ); ')
    a.routes = {'b.test': b.s2s_port, 'legacy.test': lsrv.s2s_port}
    b.routes = {'a.test': a.s2s_port, 'comp.a.test': a.s2s_port,
                'sub.comp.a.test': a.s2s_port, 'legacy.test': lsrv.s2s_port}
    c.s2s_extra = 'bidi = false; '           # XEP-0288 off (two connections)
    a.components = {'comp.a.test': COMP_SECRET}
    a.comp_port = ports[13]
    a.routes['bidi.test'] = ports[14]
    FAKE_PEER['sock'] = socket.socket()
    FAKE_PEER['sock'].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    FAKE_PEER['sock'].bind(('127.0.0.1', ports[14]))
    FAKE_PEER['sock'].listen(4)
    FAKE_PEER['sock'].settimeout(15)
    FAKE_PEER['cert'] = _fake_cert(a.dir, 'bidi.test')
    c.routes = {'a.test': a.s2s_port}
    # d.test: a short idle timeout of its own (idle_close)
    d = FedRoost(USERS_D, 'd.test', ports[19:23])
    d.s2s_extra = 'idle_timeout = 2; '
    d.routes = {'a.test': a.s2s_port}
    a.routes['d.test'] = d.s2s_port
    # silent.test: accepts TCP (the kernel's backlog) and never answers
    a.routes['silent.test'] = ports[23]
    SILENT_PEER['sock'] = socket.socket()
    SILENT_PEER['sock'].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    SILENT_PEER['sock'].bind(('127.0.0.1', ports[23]))
    SILENT_PEER['sock'].listen(4)
    SILENT_PEER['sock'].settimeout(5)
    c.s2s_tls = 'direct'                     # XEP-0368 on the listening side
    dns_port = ports[12]
    a.dns = '127.0.0.1:%d' % dns_port       # c.test only through SRV
    servers = (a, b, c, lsrv, d)
    servers_global[:] = [a, b, c, lsrv, d]
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
                if getattr(s, 'stopped', False):
                    continue
                if s.proc is None or s.proc.poll() is not None:
                    print('FAIL s2s:%s: %s not running afterwards' % (t.__name__, s.domain))
                    print(s.log_tail(40))
                    failed += 1
                    raise SystemExit(1)
        for s in servers:
            if getattr(s, 'stopped', False):
                continue
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
        if FAKE_PEER.get('sock') is not None:
            FAKE_PEER['sock'].close()
        if SILENT_PEER.get('sock') is not None:
            SILENT_PEER['sock'].close()
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
