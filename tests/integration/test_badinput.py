"""The bad-input matrix (doc/bad_input.md), one test per row, against a
live roostd (or, with --server prosody, an unmodified Prosody, to check
that the expectations are the standard ones).

Each test has a hostile connection ("mallory") do one bad thing, checks
the server's answer (RFC 6120 section in the docstring), and then checks
that two other sessions logged in before the attack (alice and bob) are
untouched: each still gets a message from the other.  Rows where Roost is
known to be wrong are listed in XFAIL with a NOTE; they print XFAIL while
they fail and XPASS (a failure: update the doc) once fixed.

Usage: test_badinput.py [--server roost|prosody] [test-name ...]
Prints 'N passed, N failed'.
"""
import base64
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                                   # noqa: E402
from roosttest import check, Client, TestFailure, AuthFailed  # noqa: E402

NS_STREAM = rt.NS_STREAM
NS_SASL = rt.NS_SASL
NS_BIND = rt.NS_BIND

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'mallory@localhost': 'mallory-Secret-666'}
AUTH_TIMEOUT = 3            # seconds: the slowloris row's lifetime limit
MIB = 1024 * 1024

# test name -> NOTE: rows where Roost is known to be wrong (see
# doc/bad_input.md, "failing-known").  Empty when every row passes.
XFAIL = {}

# test name -> why it does not apply to Prosody (only with --server prosody)
PROSODY_SKIP = {
    'slowloris_preauth': 'Prosody has no unauthenticated-lifetime limit '
                         '(c2s_timeout is an idle timeout): a byte a second '
                         'keeps the stream open indefinitely',
    'half_open_preauth': 'Prosody has no unauthenticated-lifetime limit',
    'preauth_big_stanza': 'Prosody has no smaller stanza limit before '
                          'authentication',
    'preauth_flood': 'Prosody has no limit on the bytes read before '
                     'authentication',
}
NOTES = []
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class BadRoost(rt.Roost):
    """The usual two vhosts with a short unauthenticated lifetime."""

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        conf = conf.replace('auth_timeout = 30',
                            'auth_timeout = %d' % AUTH_TIMEOUT)
        check('auth_timeout = %d' % AUTH_TIMEOUT in conf,
              'could not rewrite the test config')
        with open(self.config, 'w') as f:
            f.write(conf)


def rss_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def witness(a, b):
    """a and b, logged in before the attack, still exchange messages."""
    for x, y in ((a, b), (b, a)):
        x.send("<message to='%s' type='chat' id='w1'><body>still there?"
               "</body></message>" % y.full_jid)
        got = y.recv(5)
        check(rt.tag(got) == 'message' and got.get('from') == x.full_jid and
              got.findtext('{jabber:client}body') == 'still there?',
              'witness message not delivered: %s' % rt.to_string(got))


class Row:
    """alice and bob logged in, mallory not yet connected; witness and
    close on exit."""

    def __init__(self, srv):
        self.srv = srv

    def __enter__(self):
        self.a = Client(self.srv, 'alice@localhost',
                        USERS['alice@localhost']).login()
        self.b = Client(self.srv, 'bob@localhost',
                        USERS['bob@localhost']).login()
        self.m = Client(self.srv, 'mallory@localhost',
                        USERS['mallory@localhost'], name='mallory')
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                witness(self.a, self.b)
        finally:
            for c in (self.m, self.a, self.b):
                c.close()
        return False

    def pre(self):
        """mallory: TCP connected, nothing sent."""
        self.m.connect()
        self.m.parser = rt.StreamParser()
        return self.m

    def opened(self):
        """mallory: stream open, features read, before TLS."""
        self.m.connect()
        self.m.open_stream()
        return self.m

    def tls(self):
        """mallory: after STARTTLS, before SASL."""
        self.opened()
        self.m.starttls()
        return self.m

    def bound(self, resource=None):
        return self.m.login(resource=resource)


def stream_error(c, accepted, section, timeout=rt.TIMEOUT):
    cond = c.expect_stream_error(timeout)
    check(cond in accepted, '<%s/> instead of <%s/> (RFC 6120 %s)'
          % (cond, '/> or <'.join(sorted(accepted)), section))
    return cond


def stanza_error(el, accepted, section):
    check(el.get('type') == 'error', 'no error reply: %s' % rt.to_string(el))
    cond = rt.error_condition(el)
    check(cond in accepted, '<%s/> instead of <%s/> (RFC 6120 %s): %s'
          % (cond, '/> or <'.join(sorted(accepted)), section,
             rt.to_string(el)))
    return cond


def header(to='localhost', prolog=''):
    return ("<?xml version='1.0'?>%s<stream:stream xmlns='jabber:client' "
            "xmlns:stream='%s' to='%s' version='1.0'>" % (prolog, NS_STREAM, to))


# ------------------------------------------------------------- XML layer

@test
def invalid_utf8(srv):
    """Row 1.  RFC 6120 §11.6, §4.9.3.22: a stream that is not UTF-8 gets
    <unsupported-encoding/> (Prosody: not-well-formed, see the doc)."""
    with Row(srv) as r:
        m = r.bound()
        m.send(b"<message to='bob@localhost'><body>\xff\xfe\xc3(</body>"
               b"</message>")
        stream_error(m, {'unsupported-encoding', 'not-well-formed'},
                     '§11.6, §4.9.3.22')


@test
def nul_byte(srv):
    """Row 2.  XML 1.0 §2.2 excludes U+0000 even as a reference: RFC 6120
    §4.9.3.13 <not-well-formed/>; nothing before the error is delivered."""
    with Row(srv) as r:
        m = r.bound()
        m.send(b"<message to='%s' id='n1'><body>a\x00b</body></message>"
               % r.b.full_jid.encode())
        stream_error(m, {'not-well-formed'}, '§4.9.3.13')
        r.b.recv_nothing(0.5)


@test
def nul_char_reference(srv):
    """Row 2b.  &#0; is as ill-formed as a raw NUL (§4.9.3.13)."""
    with Row(srv) as r:
        m = r.bound()
        m.send("<message to='%s' id='n2'><body>a&#0;b</body></message>"
               % r.b.full_jid)
        stream_error(m, {'not-well-formed'}, '§4.9.3.13')
        r.b.recv_nothing(0.5)


BILLION_LAUGHS = (
    '<!DOCTYPE stream:stream [<!ENTITY lol "lol">'
    + ''.join('<!ENTITY lol%d "%s">' % (i, ('&lol%s;' % ('' if i == 1 else i - 1)) * 10)
              for i in range(1, 10))
    + ']>')


@test
def billion_laughs(srv):
    """Row 3.  RFC 6120 §11.1: no DTD, no entity declarations:
    <restricted-xml/> (§4.9.3.18), answered at once and with no entity
    expanded (the server's memory does not grow)."""
    with Row(srv) as r:
        m = r.pre()
        rss0 = rss_kib(srv.proc.pid)
        m.send(header(prolog=BILLION_LAUGHS).replace(
            "version='1.0'>", "version='1.0'>") + '<x>&lol9;</x>')
        stream_error(m, {'restricted-xml'}, '§11.1, §4.9.3.18', timeout=5)
        grown = rss_kib(srv.proc.pid) - rss0
        check(grown < 16 * 1024, 'server RSS grew by %d KiB' % grown)


@test
def entity_in_stanza(srv):
    """Row 3b.  An entity reference other than the five predefined ones
    inside a stanza: there is no DTD to declare it, so the reference is
    undefined: <restricted-xml/> or <not-well-formed/> (§11.1, §4.9.3.13)."""
    with Row(srv) as r:
        m = r.bound()
        m.send("<message to='%s'><body>&lol9;</body></message>" % r.b.full_jid)
        stream_error(m, {'restricted-xml', 'not-well-formed'},
                     '§11.1, §4.9.3.13')
        r.b.recv_nothing(0.5)


@test
def doctype(srv):
    """Row 4.  A DOCTYPE before the stream header (RFC 6120 §11.1):
    <restricted-xml/>."""
    with Row(srv) as r:
        m = r.pre()
        m.send(header(prolog='<!DOCTYPE stream:stream SYSTEM '
                             '"http://example.test/x.dtd">'))
        stream_error(m, {'restricted-xml'}, '§11.1, §4.9.3.18')


@test
def many_attributes(srv):
    """Row 5.  10^5 attributes on one element: <policy-violation/>
    (§4.9.3.14, §13.12 item 4) at the attribute or stanza-size limit,
    without buffering the whole tag."""
    with Row(srv) as r:
        m = r.bound()
        rss0 = rss_kib(srv.proc.pid)
        data = ("<message to='%s' " % r.b.full_jid).encode() + \
            b' '.join(b"a%d='x'" % i for i in range(100000)) + b'/>'
        m.send_until_answer(data)
        stream_error(m, {'policy-violation'}, '§4.9.3.14')
        grown = rss_kib(srv.proc.pid) - rss0
        check(grown < 16 * 1024, 'server RSS grew by %d KiB' % grown)
        r.b.recv_nothing(0.3)


@test
def deep_nesting(srv):
    """Row 6.  10^4 nested elements: <policy-violation/> (§4.9.3.14)."""
    with Row(srv) as r:
        m = r.bound()
        data = ("<message to='%s'>" % r.b.full_jid).encode() + \
            b'<a>' * 10000 + b'</a>' * 10000 + b'</message>'
        m.send_until_answer(data)
        stream_error(m, {'policy-violation'}, '§4.9.3.14')
        r.b.recv_nothing(0.3)


@test
def huge_stanza(srv):
    """Row 7.  A 100 MiB stanza is cut at max_stanza_size with
    <policy-violation/> (§4.9.3.14, §13.12): the error comes long before
    the 100 MiB are sent, and the server's RSS stays bounded."""
    with Row(srv) as r:
        m = r.bound()
        rss0 = rss_kib(srv.proc.pid)
        m.send(("<message to='%s'><body>" % r.b.full_jid).encode())
        chunk, sent, peak = b'x' * 65536, 0, 0
        while sent < 100 * MIB:
            try:
                while m._fill(time.monotonic() + 0.001):
                    pass
            except TestFailure:
                break
            if m.parser.items or m.parser.ended:
                break
            try:
                m.send(chunk)
            except TestFailure:
                break
            sent += len(chunk)
            if sent % (4 * MIB) == 0:
                peak = max(peak, rss_kib(srv.proc.pid) - rss0)
        peak = max(peak, rss_kib(srv.proc.pid) - rss0)
        print('    (sent %.1f MiB before the answer; RSS grew by %d KiB)'
              % (sent / MIB, peak))
        stream_error(m, {'policy-violation'}, '§4.9.3.14')
        check(sent < 32 * MIB, 'the server read %d bytes of one stanza'
              % sent)
        check(peak < 32 * 1024, 'server RSS grew by %d KiB' % peak)
        r.b.recv_nothing(0.3)


# ------------------------------------------------------------ transport

@test
def slowloris_preauth(srv):
    """Row 8.  One byte a second before authentication: the
    unauthenticated lifetime limit (auth_timeout, 3 s here) closes the
    stream whatever arrives, with <connection-timeout/> (§4.9.3.4) or
    <policy-violation/> (§4.9.3.14)."""
    with Row(srv) as r:
        m = r.pre()
        data = header().encode()
        t0 = time.monotonic()
        closed = None
        for i in range(len(data)):
            try:
                m.send(data[i:i + 1])
                if m._fill(time.monotonic() + 1.0):
                    if m.parser.items or m.parser.ended:
                        closed = time.monotonic() - t0
                        break
            except TestFailure:
                closed = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 4 * AUTH_TIMEOUT:
                break
        check(closed is not None, 'still open after %.0fs of slowloris'
              % (time.monotonic() - t0))
        check(closed <= AUTH_TIMEOUT + 2, 'closed only after %.1fs' % closed)
        if m.parser.items or not m.eof:
            stream_error(m, {'connection-timeout', 'policy-violation'},
                         '§4.9.3.4, §4.9.3.14')


@test
def half_open_preauth(srv):
    """Row 9a.  A TCP connection that never sends anything (the client
    vanished after the handshake) is closed by the unauthenticated
    lifetime limit: the server sends its header, <connection-timeout/>
    and closes (§4.9.3.4)."""
    with Row(srv) as r:
        m = r.pre()
        t0 = time.monotonic()
        stream_error(m, {'connection-timeout', 'policy-violation'},
                     '§4.9.3.4', timeout=AUTH_TIMEOUT + 5)
        check(time.monotonic() - t0 <= AUTH_TIMEOUT + 2, 'closed late')


@test
def preauth_big_stanza(srv):
    """Row 19a.  Before authentication a 20 KB stanza (a SASL <auth/>
    with 20 KB of base64) is over preauth_max_stanza_size (16 KiB):
    stream error <policy-violation/> (§4.9.3.14, §13.12), not a SASL
    failure; after authentication max_stanza_size (256 KiB) applies."""
    with Row(srv) as r:
        m = r.tls()
        m.send_until_answer("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                            % (NS_SASL, 'QUFB' * 5000), chunk=4096)
        stream_error(m, {'policy-violation'}, '§4.9.3.14')
        r.a.send("<message to='%s' id='big'><body>%s</body></message>"
                 % (r.a.full_jid, 'b' * 20000))
        got = r.a.recv(5)
        check(rt.tag(got) == 'message' and got.get('id') == 'big',
              'a 20 KB stanza after authentication: %s' % rt.to_string(got))


@test
def preauth_flood(srv):
    """Row 19b.  More than preauth_max_bytes (64 KiB) sent before
    authentication, here pipelined behind a failing SASL PLAIN while the
    server waits to answer it: stream error <policy-violation/> with the
    text 'too much data before authentication' (§4.9.3.14), at once, not
    after the parser got to it."""
    with Row(srv) as r:
        m = r.tls()
        ir = base64.b64encode(b'\0mallory\0wrong-password').decode()
        m.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>%s"
               % (NS_SASL, ir, ' ' * (70 * 1024)))
        el = m.recv_stream_error()
        cond = rt.error_condition(el, rt.NS_STREAM_ERR)
        text = (el.findtext('{%s}text' % rt.NS_STREAM_ERR) or '').strip()
        check(cond == 'policy-violation', '<%s/> instead of '
              '<policy-violation/> (RFC 6120 §4.9.3.14)' % cond)
        check(srv.name != 'roost' or 'before authentication' in text,
              'closed for another reason: %r' % text)


@test
def half_closed_bound(srv):
    """Row 9b.  A bound client shuts down its sending side (FIN) without
    </stream:stream>: the server ends the session (RFC 6120 §4.4, §4.6:
    the stream is gone) and closes its side, and the session no longer
    receives: a message to its full JID is not delivered to it; alice sees
    mallory's unavailable presence if subscribed (not set up here)."""
    with Row(srv) as r:
        m = r.bound('halfclosed')
        full = m.full_jid
        # TCP-level FIN under the TLS layer (SSLSocket.shutdown would
        # drop the TLS state and make the rest unreadable).
        socket.socket.shutdown(m.sock, socket.SHUT_WR)
        deadline = time.monotonic() + 5
        try:
            while m._fill(deadline):
                pass
            raise TestFailure('server did not close a half-closed stream')
        except rt.StreamClosed:
            pass
        # The session is gone: a message to it bounces or vanishes, it
        # must not be accepted for a dead session silently forever.  An
        # iq to the full JID must come back as an error (RFC 6120
        # §10.5.3.2: no resource matches: service-unavailable).
        time.sleep(0.3)
        el = r.a.iq("<iq type='get' id='h1' to='%s'><ping xmlns='urn:xmpp:"
                    "ping'/></iq>" % full)
        stanza_error(el, {'service-unavailable', 'recipient-unavailable',
                          'item-not-found'}, '§10.5.3.2, §8.3.3.19')


OPENSSL = shutil.which('openssl')


@test
def tls_renegotiation(srv):
    """Row 10.  A client-initiated renegotiation on TLS 1.2 (openssl
    s_client's 'R' command) is refused (RFC 5746 / RFC 7457 §2.2: servers
    should not allow client-initiated renegotiation): the renegotiation
    does not complete (the server answers no_renegotiation or closes);
    other sessions are untouched."""
    check(OPENSSL is not None, 'openssl not installed')
    with Row(srv) as r:
        p = subprocess.Popen(
            [OPENSSL, 's_client', '-tls1_2', '-starttls', 'xmpp',
             '-xmpphost', 'localhost', '-connect',
             '127.0.0.1:%d' % srv.c2s_port, '-no_ign_eof'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        steps = [(1.5, header().encode() + b'\n'), (1.0, b'R\n'),
                 # Only answered if the stream survived the attempt.
                 (1.5, b"<iq type='get' id='x'/>\n"), (1.0, None)]
        try:
            for delay, data in steps:
                time.sleep(delay)
                if data is None:
                    break
                try:
                    p.stdin.write(data)
                    p.stdin.flush()
                except BrokenPipeError:     # s_client gave up: fine
                    break
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            out = p.stdout.read().decode(errors='replace')
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check('RENEGOTIATING' in out, 's_client did not try: %s' % out[-400:])
        after = out.split('RENEGOTIATING', 1)[1]
        check('no renegotiation' in after or 'alert' in after,
              'no refusal after RENEGOTIATING: %s' % after[-600:])
        check('<' not in after.split('error:', 1)[-1] and
              'stream:error' not in after,
              'the stream went on after the renegotiation: %s'
              % after[-600:])


# ----------------------------------------------------------------- SASL

@test
def plain_authzid_other_user(srv):
    """Row 11.  SASL PLAIN with an authzid naming another user: RFC 6120
    §6.4.6 and §6.5.6: <invalid-authzid/> (the credentials are right)."""
    with Row(srv) as r:
        m = r.tls()
        try:
            m.auth('PLAIN', authzid='alice@localhost')
        except AuthFailed as e:
            check(e.condition == 'invalid-authzid',
                  '<%s/> instead of <invalid-authzid/>' % e.condition)
            return
        m.bind()
        check(m.full_jid.startswith('mallory@'),
              'logged in as %s via an authzid' % m.full_jid)
        raise TestFailure('authzid ignored: logged in as %s' % m.full_jid)


# ----------------------------------------------------------------- JIDs

LABEL = 'a' * 63


def domain_of_len(n):
    """A syntactically valid domainpart of n bytes (63-byte labels)."""
    labels = []
    while sum(len(x) + 1 for x in labels) - 1 < n:
        labels.append(LABEL)
    d = '.'.join(labels)[:n]
    return d[:-1] + 'b' if d.endswith('.') else d


@test
def jid_resource_limits(srv):
    """Row 12a.  RFC 7622 §3.4: a resourcepart of 1023 bytes binds and is
    routable; 1024 bytes is refused by bind with <bad-request/> (RFC 6120
    §7.7.2.1) or <jid-malformed/>."""
    with Row(srv) as r:
        m = r.tls()
        m.auth()
        m.send("<iq type='set' id='b1'><bind xmlns='%s'><resource>%s"
               "</resource></bind></iq>" % (NS_BIND, 'r' * 1024))
        el = m.recv()
        stanza_error(el, {'bad-request', 'jid-malformed', 'not-acceptable'},
                     '§7.7.2.1')
        m.bind('r' * 1023)
        check(m.full_jid == 'mallory@localhost/' + 'r' * 1023,
              'bound %r' % m.full_jid[:80])
        r.a.send("<message to='%s' type='chat' id='l1'><body>long</body>"
                 "</message>" % m.full_jid)
        got = m.recv(5)
        check(got.findtext('{jabber:client}body') == 'long',
              'message to a 1023-byte resource: %s' % rt.to_string(got))


@test
def jid_localpart_limits(srv):
    """Row 12b.  RFC 7622 §3.3.1: a localpart of 1023 bytes is valid (no
    such user: <service-unavailable/>, RFC 6121 §8.5.1); 1024 bytes is
    <jid-malformed/> (RFC 6120 §8.3.3.8)."""
    with Row(srv) as r:
        m = r.bound()
        el = m.iq("<iq type='get' id='j1' to='%s@localhost'><query xmlns="
                  "'jabber:iq:version'/></iq>" % ('l' * 1023))
        stanza_error(el, {'service-unavailable'}, '§8.3.3.19')
        el = m.iq("<iq type='get' id='j2' to='%s@localhost'><query xmlns="
                  "'jabber:iq:version'/></iq>" % ('l' * 1024))
        stanza_error(el, {'jid-malformed'}, '§8.3.3.8')


@test
def jid_domainpart_limits(srv):
    """Row 12c.  RFC 7622 §3.2: a domainpart of 1023 bytes is valid (a
    remote domain without s2s: <remote-server-not-found/> §8.3.3.16, or
    <service-unavailable/>); 1024 bytes is <jid-malformed/> (§8.3.3.8)."""
    with Row(srv) as r:
        m = r.bound()
        d = domain_of_len(1023)
        check(len(d) == 1023, 'test bug: %d' % len(d))
        el = m.iq("<iq type='get' id='d1' to='%s'><query xmlns="
                  "'jabber:iq:version'/></iq>" % d)
        stanza_error(el, {'remote-server-not-found', 'service-unavailable'},
                     '§8.3.3.16')
        el = m.iq("<iq type='get' id='d2' to='%s'><query xmlns="
                  "'jabber:iq:version'/></iq>" % domain_of_len(1024))
        stanza_error(el, {'jid-malformed'}, '§8.3.3.8')


# ------------------------------------------------------------ stanzas

@test
def forged_from(srv):
    """Row 13.  A 'from' naming another user is replaced by the sender's
    full JID (RFC 6120 §8.1.2.1), or the stream is closed with
    <invalid-from/> (§4.9.3.9)."""
    with Row(srv) as r:
        m = r.bound()
        m.send("<message to='%s' from='bob@localhost/forged' type='chat' "
               "id='f1'><body>hi</body></message>" % r.a.full_jid)
        try:
            got = r.a.recv(3)
        except TestFailure:
            stream_error(m, {'invalid-from'}, '§4.9.3.9', timeout=2)
            return
        check(got.get('from') == m.full_jid,
              'delivered with from=%s' % got.get('from'))


@test
def unknown_toplevel_bound(srv):
    """Row 14a.  An unknown top-level element on a bound stream:
    <unsupported-stanza-type/> (§4.9.3.24), in jabber:client or in
    another namespace."""
    with Row(srv) as r:
        m = r.bound()
        m.send("<shout><body>hey</body></shout>")
        stream_error(m, {'unsupported-stanza-type'}, '§4.9.3.24')
        m2 = Client(srv, 'mallory@localhost', USERS['mallory@localhost'],
                    name='mallory2').login()
        m2.send("<foo xmlns='urn:example:foo'/>")
        try:
            stream_error(m2, {'unsupported-stanza-type'}, '§4.9.3.24')
        finally:
            m2.close()


@test
def unknown_toplevel_preauth(srv):
    """Row 14b.  An unknown top-level element before authentication:
    <not-authorized/> (§4.9.3.12: stanzas before authentication) or
    <unsupported-stanza-type/> (§4.9.3.24)."""
    with Row(srv) as r:
        m = r.tls()
        m.send("<shout xmlns='urn:example:foo'/>")
        stream_error(m, {'not-authorized', 'unsupported-stanza-type'},
                     '§4.9.3.12, §4.9.3.24')


@test
def iq_without_id(srv):
    """Row 15.  RFC 6120 §8.1.3: 'id' is REQUIRED on an iq.  An iq get
    without it is answered with a <bad-request/> error (§8.3.3.1) or the
    stream is closed (<invalid-xml/> §4.9.3.11 / policy); it is never
    processed as if it were valid."""
    with Row(srv) as r:
        m = r.bound()
        m.send("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/>"
               "</iq>")
        try:
            el = m.recv(3)
        except rt.StreamClosed:
            raise TestFailure('stream closed without a stream error')
        if el.tag == '{%s}error' % NS_STREAM:
            cond = rt.error_condition(el, rt.NS_STREAM_ERR)
            check(cond in ('invalid-xml', 'bad-format', 'policy-violation'),
                  'stream error <%s/>' % cond)
            m.expect_close('<%s/>' % cond)
            return
        check(rt.tag(el) == 'iq', 'got %s' % rt.to_string(el))
        stanza_error(el, {'bad-request'}, '§8.1.3, §8.3.3.1')


@test
def iq_get_no_child(srv):
    """Row 16a.  RFC 6120 §8.2.3: an iq get/set MUST contain exactly one
    payload: none gives <bad-request/> (§8.3.3.1)."""
    with Row(srv) as r:
        m = r.bound()
        for to in ('localhost', r.b.full_jid):
            el = m.iq("<iq type='get' id='c0' to='%s'/>" % to)
            stanza_error(el, {'bad-request'}, '§8.2.3, §8.3.3.1')
        r.b.recv_nothing(0.3)


@test
def iq_get_two_children(srv):
    """Row 16b.  Two payloads in an iq get: <bad-request/> (§8.2.3,
    §8.3.3.1)."""
    with Row(srv) as r:
        m = r.bound()
        for to in ('localhost', r.b.full_jid):
            el = m.iq("<iq type='get' id='c2' to='%s'><ping xmlns='urn:xmpp:"
                      "ping'/><query xmlns='jabber:iq:version'/></iq>" % to)
            stanza_error(el, {'bad-request'}, '§8.2.3, §8.3.3.1')
        r.b.recv_nothing(0.3)


@test
def iq_result_not_answered(srv):
    """Row 17.  RFC 6120 §8.2.3: an iq result or error is never answered
    (in particular not with an error, §8.3.1), whether it goes to the
    server, to an offline bare JID, to an unknown full JID or to a user
    that sent no request."""
    with Row(srv) as r:
        m = r.bound()
        for to in ('localhost', 'nobody@localhost', r.b.full_jid + 'x',
                   'bob@localhost', r.b.full_jid):
            m.send("<iq type='result' id='r-%s' to='%s'/>" % (len(to), to))
            m.send("<iq type='error' id='e-%s' to='%s'><error type='cancel'>"
                   "<service-unavailable xmlns='urn:ietf:params:xml:ns:"
                   "xmpp-stanzas'/></error></iq>" % (len(to), to))
        el = m.iq("<iq type='get' id='after' to='localhost'><ping "
                  "xmlns='urn:xmpp:ping'/></iq>")
        check(el.get('type') == 'result', 'ping: %s' % rt.to_string(el))
        # Anything received before the ping's answer was popped by iq();
        # look for stray answers in what is still queued, too.
        m.recv_nothing(0.5)
        # bob may get the ones addressed to his full JID (routed as is).
        while True:
            try:
                got = r.b.recv(0.5)
            except TestFailure:
                break
            check(rt.tag(got) == 'iq' and got.get('type') in
                  ('result', 'error'), 'bob got %s' % rt.to_string(got))


@test
def iq_result_no_stray_answer(srv):
    """Row 17b.  Same as row 17, observed strictly: the only thing mallory
    receives after sending result/error iqs and one ping is the ping's
    result."""
    with Row(srv) as r:
        m = r.bound()
        m.send("<iq type='result' id='s1' to='localhost'/>"
               "<iq type='error' id='s2' to='localhost'><error type='cancel'>"
               "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
               "</error></iq>"
               "<iq type='result' id='s3' to='nobody@localhost/x'/>"
               "<iq type='get' id='s4' to='localhost'><ping xmlns='urn:xmpp:"
               "ping'/></iq>")
        el = m.recv(5)
        check(el.get('id') == 's4' and el.get('type') == 'result',
              'first answer is %s' % rt.to_string(el))
        m.recv_nothing(0.5)


@test
def pipelined_after_close(srv):
    """Row 18.  Data after the client's </stream:stream> is not part of
    the stream (RFC 6120 §4.4: the closing entity sends nothing more): the
    message pipelined after it is not delivered; the server closes its
    stream and the TCP connection."""
    with Row(srv) as r:
        m = r.bound()
        m.send("</stream:stream><message to='%s' type='chat' id='late'>"
               "<body>late</body></message>" % r.b.full_jid)
        deadline = time.monotonic() + 5
        try:
            while not m.parser.ended:
                if not m._fill(deadline):
                    raise TestFailure('no </stream:stream> from the server')
        except rt.StreamClosed:
            pass
        check(m.parser.ended, 'TCP closed without </stream:stream>')
        r.b.recv_nothing(1.0)


# --------------------------------------------------------------- runner

def run(cls, names):
    passed = failed = 0
    srv = cls(USERS)
    try:
        srv.start()
    except TestFailure as e:
        print('FAIL badinput:start: %s' % e)
        return 0, 1
    try:
        for t in TESTS:
            if names and t.__name__ not in names:
                continue
            if srv.name == 'prosody' and t.__name__ in PROSODY_SKIP:
                print('SKIP badinput:%s: %s' % (t.__name__,
                                                PROSODY_SKIP[t.__name__]))
                continue
            err = None
            try:
                t(srv)
            except (TestFailure, OSError) as e:
                err = e
            note = XFAIL.get(t.__name__) if srv.name == 'roost' else None
            if err is None and note is None:
                print('PASS badinput:%s' % t.__name__)
                passed += 1
            elif err is None:
                print('XPASS badinput:%s: known failure fixed; update '
                      'XFAIL and doc/bad_input.md' % t.__name__)
                failed += 1
            elif note is not None:
                print('XFAIL badinput:%s: %s\n    NOTE: %s'
                      % (t.__name__, err, note))
                passed += 1
            else:
                print('FAIL badinput:%s: %s' % (t.__name__, err))
                failed += 1
            if srv.proc is None or srv.proc.poll() is not None:
                print('FAIL badinput:%s: server not running afterwards'
                      % t.__name__)
                print(srv.log_tail(40))
                failed += 1
                break
        problems = srv.stop()
        if problems:
            print('FAIL badinput:server-clean-shutdown: %s'
                  % '; '.join(problems))
            print(srv.log_tail(40))
            failed += 1
        else:
            print('PASS badinput:server-clean-shutdown')
            passed += 1
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        if not failed:
            srv.cleanup()
        else:
            print('    (server files kept in %s)' % srv.dir)
    return passed, failed


def main(argv):
    cls = BadRoost
    if len(argv) >= 2 and argv[0] == '--server':
        cls = {'roost': BadRoost, 'prosody': rt.Prosody}[argv[1]]
        argv = argv[2:]
    passed, failed = run(cls, set(argv))
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
