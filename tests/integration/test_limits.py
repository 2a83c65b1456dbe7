"""Connection lifetime and resource tests against a roostd with tight
limits: unauthenticated lifetime, idle detection with XEP-0199 pings,
output backpressure against a client that does not read, and log hygiene
(no passwords or bodies in the log).  Roost only: Prosody's limits are
configured differently.  Prints 'N passed, N failed'.
"""
import base64
import os
import re
import select
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'carol@localhost': 'carol-Secret-1234',
         'dave@example.test': 'dave-Secret-1',
         'erin@example.test': 'erin-Secret-2',
         'jürgen@localhost': 'jürgen-Secret-3'}
HWM = 65536


class TightRoost(rt.Roost):
    """The usual two vhosts, with short timeouts (unless idle is False)
    and a small output high-water mark."""
    idle = True

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        if self.idle:
            conf = conf.replace('c2s_timeout = 300', 'c2s_timeout = 1.5')
            conf = conf.replace('auth_timeout = 30', 'auth_timeout = 1')
        conf = conf.replace('max_resources = 10;',
                            'max_resources = 10; output_high_water = %d;' % HWM)
        check('output_high_water' in conf,
              'could not rewrite the test config')
        with open(self.config, 'w') as f:
            f.write(conf)


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def unauthenticated_lifetime(srv):
    """A connection that never authenticates is closed with
    <connection-timeout/> after auth_timeout (1 s here)."""
    c = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='idle')
    c.connect()
    c.open_stream()
    t0 = time.monotonic()
    cond = c.expect_stream_error(timeout=5)
    took = time.monotonic() - t0
    check(cond == 'connection-timeout', 'got <%s/>' % cond)
    check(0.8 <= took <= 4, 'closed after %.1fs, want about 1s' % took)


def idle_ping_then_close(srv):
    """A silent bound client is pinged (XEP-0199) after c2s_timeout and
    closed with <connection-timeout/> when it does not answer; contacts
    would then see it go (RFC 2779 3.2.4)."""
    c = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
    ping = c.recv(timeout=5)
    check(rt.tag(ping) == 'iq' and ping.get('type') == 'get' and
          ping.find('{urn:xmpp:ping}ping') is not None,
          'expected a ping, got %s' % rt.to_string(ping))
    cond = c.expect_stream_error(timeout=5)
    check(cond == 'connection-timeout', 'got <%s/>' % cond)


def idle_ping_answered_keeps_session(srv):
    """Answering the server's ping keeps the session alive."""
    c = Client(srv, 'bob@localhost', USERS['bob@localhost']).login()
    try:
        for _ in range(2):
            ping = c.recv(timeout=5)
            check(ping.find('{urn:xmpp:ping}ping') is not None,
                  'expected a ping, got %s' % rt.to_string(ping))
            c.send("<iq type='result' id='%s' to='%s'/>" %
                   (ping.get('id'), ping.get('from')))
        r = c.iq("<iq type='get' id='v1'><query xmlns='jabber:iq:version'/>"
                 "</iq>")
        check(r.get('type') == 'result', 'session not usable after pings')
    finally:
        c.close()


def slow_reader_is_cut_off(srv):
    """HOUSE 13: a client that stops reading while others send to it is
    disconnected once its queue passes 4x the high-water mark; the server
    does not buffer without bound and the sender is unaffected.  Headlines
    are used so that nothing bounces back to the sender after the cut
    (RFC 6121 §8.5.3.2.1)."""
    slow = Client(srv, 'alice@localhost', USERS['alice@localhost'],
                  name='slow')
    # A small receive window, set before connecting, so that the kernel
    # cannot absorb the flood for the server.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(rt.TIMEOUT)
    sock.connect(('127.0.0.1', srv.c2s_port))
    slow.sock = sock
    slow.open_stream()
    slow.starttls()
    slow.auth()
    slow.bind('slow')
    bob = Client(srv, 'bob@localhost', USERS['bob@localhost'],
                 name='bob').login()
    rss0 = rss_kib(srv.proc.pid)
    msg = ("<message to='alice@localhost/slow' type='headline'>"
           "<body>%s</body></message>" % ('x' * 1000)).encode()
    sent = 0
    for _ in range(16000):        # 16 MB: past every kernel buffer
        bob.send(msg)
        sent += len(msg)
    grown = rss_kib(srv.proc.pid) - rss0
    print('    (server RSS grew by %d KiB)' % grown)
    if 'ASAN_OPTIONS' not in os.environ:    # ASan's quarantine inflates RSS
        check(grown < 8 * 1024, 'server RSS grew by %d KiB for %d bytes '
              'sent' % (grown, sent))
    r = bob.iq("<iq type='get' id='p1' to='localhost'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>", timeout=20)
    check(r.get('type') == 'result', 'sender affected: %s' % rt.to_string(r))
    check('slow reader' in srv.log_tail(5000),
          'the slow reader was not cut off')
    # Its connection is gone: reading drains what the kernel held, then EOF.
    deadline = time.monotonic() + 20
    closed = False
    while time.monotonic() < deadline:
        try:
            if not slow._fill(deadline):
                break
            slow.parser.items.clear()
        except TestFailure:
            closed = True
            break
    check(closed, 'slow reader still connected')
    bob.close()


def log_has_no_secrets(srv):
    """Passwords and message bodies never reach the log (HOUSE 19), not
    even at debug level, which this server runs at."""
    c = Client(srv, 'carol@localhost', USERS['carol@localhost']).login()
    secret_body = 'confidential-body-%d' % os.getpid()
    c.send("<message to='bob@localhost'><body>%s</body></message>"
           % secret_body)
    c.iq("<iq type='get' id='p2' to='localhost'>"
         "<ping xmlns='urn:xmpp:ping'/></iq>")
    c.close()
    log = srv.log_tail(100000)
    for pw in USERS.values():
        check(pw not in log, 'a password is in the log')
    check(secret_body not in log, 'a message body is in the log')
    check('authenticated as carol@localhost' in log,
          'the log does not show the login (is it the right log?)')


class PatientRoost(TightRoost):
    """No idle timeouts and no read rate limit: slow_reader_is_cut_off
    floods 16 MB, which the default 256 KiB/s would stretch over a minute
    and whose kernel-buffered tail would delay the sender's ping past its
    timeout on a slower machine."""
    idle = False
    extra_limits = 'c2s_rate = 0; '


class _Relay:
    """A TCP relay to the c2s port that keeps the bytes the server sends,
    so that a test can count the TLS records its client received."""

    def __init__(self, port):
        self.down = bytearray()
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.target = port
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        cli, _ = self.lsock.accept()
        srv = socket.create_connection(('127.0.0.1', self.target))
        peers = {cli: srv, srv: cli}
        while True:
            r, _, _ = select.select([cli, srv], [], [], 30)
            if not r:
                break
            for s in r:
                data = s.recv(65536)
                if not data:
                    cli.close()
                    srv.close()
                    return
                if s is srv:
                    with self.lock:
                        self.down += data
                peers[s].sendall(data)

    def received(self):
        with self.lock:
            return bytes(self.down)


def _tls_records(data):
    """(application-data records, bytes in whole records) of data, which
    starts at a record boundary."""
    n = i = 0
    while i + 5 <= len(data):
        length = data[i + 3] << 8 | data[i + 4]
        if i + 5 + length > len(data):
            break
        n += data[i] == 23
        i += 5 + length
    return n, i


def output_records_per_turn(srv):
    """HOUSE 13: what the server writes to a client in one loop turn
    leaves in one write, and over STARTTLS in one TLS record, not one per
    stanza (libevent's TLS filter makes a record of every addition, so
    core/conn.c stages a turn's output).  30 messages that bob sends in
    one write reach alice in a few records; 30 records without staging."""
    relay = _Relay(srv.c2s_port)
    alice = Client(srv, 'alice@localhost', USERS['alice@localhost'],
                   name='alice')
    alice.connect(port=relay.port)
    alice.open_stream()
    alice.starttls()
    alice.auth()
    alice.bind('rec')
    bob = Client(srv, 'bob@localhost', USERS['bob@localhost'],
                 name='bob').login()
    alice.recv_nothing(0.5)        # tickets and all else delivered
    mark = len(relay.received())
    bob.send(''.join("<message to='alice@localhost/rec' type='chat' "
                     "id='r%d'><body>number %d</body></message>" % (i, i)
                     for i in range(30)))
    got = 0
    while got < 30:
        el = alice.recv()
        check(el.tag.endswith('}message'), 'alice got %s' % rt.to_string(el))
        got += 1
    time.sleep(0.2)
    data = relay.received()[mark:]
    n, used = _tls_records(data)
    check(used == len(data), 'not on a TLS record boundary (%d of %d bytes)'
          % (used, len(data)))
    print('    (30 messages in %d TLS records)' % n)
    check(1 <= n <= 10, '30 messages came in %d TLS records' % n)
    alice.close()
    bob.close()


def i18n_jid_and_ids(srv):
    """REQUIREMENTS 4.1.5-4.1.7, 4.1.9: an internationalized JID
    (RFC 7622) logs in and is reachable under another spelling (case
    mapped by nodeprep); a non-ASCII body and the sender's id arrive
    unchanged; the reply to the received from reaches the sender."""
    j = Client(srv, 'jürgen@localhost', USERS['jürgen@localhost'],
               name='jurgen').login(resource='küche')
    b = Client(srv, 'bob@localhost', USERS['bob@localhost']).login()
    try:
        check(j.full_jid == 'jürgen@localhost/küche',
              'bound JID %r' % j.full_jid)
        body = 'Grüße, 世界 \U0001F600'
        b.send("<message to='JÜRGEN@LOCALHOST/küche' type='chat' "
               "id='id-ü-1'><body>%s</body></message>" % body)
        m = j.recv(timeout=5)
        check(rt.tag(m) == 'message', 'got %s' % rt.to_string(m))
        check(m.findtext('{jabber:client}body') == body,
              'body changed: %r' % m.findtext('{jabber:client}body'))
        check(m.get('id') == 'id-ü-1', 'id changed: %r' % m.get('id'))
        check(m.get('from') == b.full_jid, 'from %r' % m.get('from'))
        j.send("<message to='%s' type='chat' id='r1'><body>ok</body>"
               "</message>" % m.get('from'))
        r = b.recv(timeout=5)
        check(r.get('from') == 'jürgen@localhost/küche' and
              r.findtext('{jabber:client}body') == 'ok',
              'reply: %s' % rt.to_string(r))
    finally:
        j.close()
        b.close()


def roster_survives_restart(srv):
    """DESIGN.md state and storage: a roster change is persisted
    (write-behind, group commit) and is there, with its version, after a
    restart; the state is loaded before the login completes."""
    NS = 'jabber:iq:roster'
    a = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
    r = a.iq("<iq type='set' id='s1'><query xmlns='%s'><item "
             "jid='bob@localhost' name='Bob B.'><group>Friends</group>"
             "<group>Ünïcode</group></item></query></iq>" % NS)
    check(r.get('type') == 'result', 'roster set: %s' % rt.to_string(r))
    r = a.iq("<iq type='get' id='g1'><query xmlns='%s' ver=''/></iq>" % NS)
    ver = r.find('{%s}query' % NS).get('ver')
    a.close()
    problems = srv.stop()
    check(not problems, 'stop: %s' % problems)
    srv._spawn([srv.roostd, '-c', srv.config])
    a = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
    try:
        r = a.iq("<iq type='get' id='g2'><query xmlns='%s' ver=''/></iq>" % NS)
        q = r.find('{%s}query' % NS)
        check(q is not None and q.get('ver') == ver,
              'version after restart: %s (was %s)' % (rt.to_string(r), ver))
        items = q.findall('{%s}item' % NS)
        check(len(items) == 1 and items[0].get('jid') == 'bob@localhost'
              and items[0].get('name') == 'Bob B.' and
              sorted(g.text for g in items[0].findall('{%s}group' % NS))
              == ['Friends', 'Ünïcode'],
              'roster after restart: %s' % rt.to_string(r))
        r = a.iq("<iq type='get' id='g3'><query xmlns='%s' ver='%s'/></iq>"
                 % (NS, ver))
        check(r.get('type') == 'result' and r.find('{%s}query' % NS) is None,
              'same version must give an empty result: %s' % rt.to_string(r))
    finally:
        a.close()


def vhost_tls_policy(srv):
    """require_encryption is per vhost: localhost requires STARTTLS before
    SASL, example.test (require_encryption = false) offers SASL at once,
    but never PLAIN without TLS; SCRAM works over plaintext there."""
    c = Client(srv, 'dave@example.test', USERS['dave@example.test'])
    c.connect()
    try:
        f = c.open_stream()
        st = f.find('{%s}starttls' % rt.NS_TLS)
        check(st is not None and st.find('{%s}required' % rt.NS_TLS) is None,
              'starttls missing or required: %s' % rt.to_string(f))
        mechs = c.mechanisms()
        check('SCRAM-SHA-256' in mechs and 'PLAIN' not in mechs,
              'pre-TLS mechanisms on example.test: %r' % mechs)
        c.auth('SCRAM-SHA-256')
        c.bind('plain')
    finally:
        c.close()
    c = Client(srv, 'alice@localhost', USERS['alice@localhost'])
    c.connect()
    try:
        f = c.open_stream()
        check(c.mechanisms() == [], 'localhost offers SASL before TLS')
    finally:
        c.close()


class MixedRoost(PatientRoost):
    """example.test runs only disco and ping: no version, no message,
    and does not require TLS before authentication."""

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        new, n = re.subn(r'\{ domain = "example\.test"; modules = \[[^]]*\]; \}',
                         '{ domain = "example.test"; modules = '
                         '[ "disco", "ping" ]; require_encryption = false; }',
                         conf)
        check(n == 1, 'could not rewrite the hosts of the test config')
        conf = new
        with open(self.config, 'w') as f:
            f.write(conf)


def vhost_module_lists(srv):
    """REQUIREMENTS 2.1.4: each vhost has its own module list.  On
    example.test (disco, ping) version is neither advertised nor answered,
    and without mod_message a message to an online user is refused; on
    localhost both work."""
    dave = Client(srv, 'dave@example.test', USERS['dave@example.test'],
                  name='dave').login(resource='r')
    erin = Client(srv, 'erin@example.test', USERS['erin@example.test'],
                  name='erin').login(resource='r')
    alice = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
    try:
        info = dave.iq("<iq type='get' id='d1' to='example.test'><query "
                       "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        feats = [f.get('var') for f in info.iter(
            '{http://jabber.org/protocol/disco#info}feature')]
        check('urn:xmpp:ping' in feats, 'ping not advertised: %r' % feats)
        check('jabber:iq:version' not in feats,
              'version advertised on a host without it: %r' % feats)
        r = dave.iq("<iq type='get' id='v1' to='example.test'><query "
                    "xmlns='jabber:iq:version'/></iq>")
        check(r.get('type') == 'error' and
              rt.error_condition(r) == 'service-unavailable',
              'version answered without the module: %s' % rt.to_string(r))
        r = alice.iq("<iq type='get' id='v2' to='localhost'><query "
                     "xmlns='jabber:iq:version'/></iq>")
        check(r.get('type') == 'result', 'localhost lost version')
        # Bare-JID delivery is mod_message's (RFC 6121 §8.5.2); the core
        # alone still delivers to a full JID (doc/stanza_routing.md row 6).
        erin.send("<presence/>")
        erin.recv_nothing(0.3)
        dave.send("<message to='erin@example.test' type='chat' id='m1'>"
                  "<body>hi</body></message>")
        e = dave.recv(timeout=5)
        check(rt.tag(e) == 'message' and e.get('type') == 'error' and
              rt.error_condition(e) == 'service-unavailable',
              'bare-JID message delivered without mod_message: %s'
              % rt.to_string(e))
        erin.recv_nothing(0.5)
        dave.send("<message to='erin@example.test/r' type='chat' id='m2'>"
                  "<body>direct</body></message>")
        m = erin.recv(timeout=5)
        check(rt.tag(m) == 'message' and m.findtext('{jabber:client}body')
              == 'direct', 'full-JID message lost: %s' % rt.to_string(m))
    finally:
        for c in (dave, erin, alice):
            c.close()


class GuardedRoost(rt.Roost):
    """Small per-address limits: 5 connections, 3 failed logins per 3 s,
    4 KiB/s read rate with a 4 KiB bucket."""
    extra_limits = ('max_connections_per_ip = 5; auth_failures_per_ip = 3; '
                    'auth_failure_window = 3; c2s_rate = 4096; c2s_burst = 4096; ')


def _connection_closed(c, timeout=3.0):
    """True when the server closed c's TCP connection without a byte."""
    c.sock.settimeout(timeout)
    try:
        return c.sock.recv(1) == b''
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def connections_per_ip(srv):
    """limits.max_connections_per_ip: the sixth connection from one
    address is closed at once; when one of the five goes, a new one is
    served again."""
    conns = []
    try:
        for i in range(5):
            c = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='c%d' % i)
            c.connect()
            c.open_stream()
            conns.append(c)
        extra = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='extra')
        extra.connect()
        check(_connection_closed(extra), 'a sixth connection from 127.0.0.1 was kept')
        extra.sock.close()
        conns.pop().close()
        time.sleep(0.3)
        again = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='again').login()
        conns.append(again)
    finally:
        for c in conns:
            c.close()


def auth_failures_per_ip(srv):
    """limits.auth_failures_per_ip: after 3 failed logins from one address
    within the window, even the right password gets
    <temporary-auth-failure/>, also for another account and on a new
    connection; after the window, logins work again."""
    for i in range(3):
        c = Client(srv, 'bob@localhost', 'wrong-%d' % i, name='guess%d' % i)
        c.connect()
        c.open_stream()
        c.starttls()
        try:
            c.auth()
            raise TestFailure('a wrong password was accepted')
        except rt.AuthFailed as e:
            check(e.condition == 'not-authorized', 'wrong password: %s' % e.condition)
        c.close()
    for who in ('bob@localhost', 'carol@localhost'):
        c = Client(srv, who, USERS[who], name='blocked')
        c.connect()
        c.open_stream()
        c.starttls()
        try:
            c.auth()
            raise TestFailure('%s logged in during the back-off' % who)
        except rt.AuthFailed as e:
            check(e.condition == 'temporary-auth-failure',
                  'during the back-off: %s' % e.condition)
        c.close()
    time.sleep(3.3)
    Client(srv, 'bob@localhost', USERS['bob@localhost'], name='later').login().close()


def read_rate(srv):
    """limits.c2s_rate: a client sending 24 KiB at 4 KiB/s (4 KiB bucket)
    is read at that pace (its last ping is answered after about 5 s),
    while another client is served at once."""
    a = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='flood').login()
    b = Client(srv, 'carol@localhost', USERS['carol@localhost'], name='calm').login()
    try:
        pad = 'x' * 900
        t0 = time.monotonic()
        for i in range(24):
            a.send("<message to='alice@localhost/none' id='f%d' type='headline'>"
                   "<body>%s</body></message>" % (i, pad))
        t1 = time.monotonic()
        r = b.iq("<iq type='get' id='calm1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        check(r.get('type') == 'result', 'calm client: %s' % rt.to_string(r))
        check(time.monotonic() - t1 < 1.0, 'the calm client waited for the flood')
        r = a.iq("<iq type='get' id='last' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
                 timeout=20)
        took = time.monotonic() - t0
        check(took >= 3.5, 'flood of 24 KiB read in %.1f s at 4 KiB/s' % took)
    finally:
        a.close()
        b.close()


NS_REG = 'jabber:iq:register'
NS_SASL2 = 'urn:xmpp:sasl:2'


class PreauthRoost(rt.Roost):
    """Small pre-authentication limits (issue 6): 8 KiB read before SASL
    success per connection, 256 KiB for all unauthenticated connections
    together; XEP-0077 registration on (a request that may be repeated
    before authentication)."""
    extra_modules = ('register',)
    extra_limits = 'preauth_max_bytes = 8192; preauth_max_total = 262144; '

    def write_config(self):
        super().write_config()
        with open(self.config, 'a') as f:
            f.write('register = { allow_registration = true; };\n')


class PreauthDefaultRoost(PreauthRoost):
    """The default pre-authentication limits, with registration."""
    extra_limits = ''


def _starttls_preauth(srv, name='preauth'):
    c = Client(srv, 'nobody@localhost', 'x', name=name)
    c.connect()
    c.open_stream()
    c.starttls()
    return c


def _stream_error_text(el):
    return (el.findtext('{%s}text' % rt.NS_STREAM_ERR) or '').strip()


def preauth_bytes(srv):
    """limits.preauth_max_bytes (8 KiB here): a client that keeps sending
    before it authenticates (50 registration-form requests of 200 bytes,
    each of them fine) gets <policy-violation/> once it has sent more than
    8 KiB; the requests before that were answered.  Another client logs
    in with STARTTLS and SCRAM under the same limit."""
    c = _starttls_preauth(srv)
    try:
        pad = 'p' * 120
        answered = 0
        err = None
        for i in range(50):
            try:
                c.send("<iq type='get' id='g%d-%s'><query xmlns='%s'/></iq>"
                       % (i, pad, NS_REG))
                el = c.recv(timeout=5)
            except rt.StreamClosed:
                break
            if el.tag == '{%s}error' % rt.NS_STREAM:
                err = el
                break
            check(rt.tag(el) == 'iq' and el.get('type') == 'result',
                  'form request %d: %s' % (i, rt.to_string(el)))
            answered += 1
        check(err is not None, '%d requests (%d bytes) before authentication '
              'and no stream error' % (answered, answered * 200))
        cond = rt.error_condition(err, rt.NS_STREAM_ERR)
        check(cond == 'policy-violation' and 'before authentication'
              in _stream_error_text(err), 'got <%s/> %r' % (cond, _stream_error_text(err)))
        check(30 <= answered <= 44, '%d requests answered, want about 8 KiB worth'
              % answered)
    finally:
        c.close()
    Client(srv, 'alice@localhost', USERS['alice@localhost'], name='fine').login().close()


def _refused(srv, timeout=0.5):
    """True when a new connection, before sending anything, gets a stream
    header and <resource-constraint/> (or is closed at once)."""
    c = Client(srv, name='probe')
    c.connect()
    c.parser = rt.StreamParser()
    try:
        return c.expect_stream_error(timeout=timeout * rt.TIMEOUT_SCALE) == \
            'resource-constraint'
    except rt.StreamClosed:
        return True
    except TestFailure as e:
        if 'nothing received' in str(e):
            return False
        raise
    finally:
        c.sock.close()


def preauth_total(srv):
    """limits.preauth_max_total (256 KiB here): unauthenticated
    connections each holding half a stanza (6 KB) fill it; then a new
    connection gets <resource-constraint/> at once (twice in a row: the
    holders are not read while over, so the total stays), while a session
    logged in before keeps working, also for a big stanza.  When the
    holders go, new connections are served again."""
    alice = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='alice').login()
    holders = []
    try:
        part = ("<iq type='set' id='half'><query xmlns='%s'><username>%s"
                % (NS_REG, 'h' * 6000))
        full = False
        for i in range(100):
            h = Client(srv, 'nobody@localhost', 'x', name='holder%d' % i)
            h.connect()
            try:
                h.open_stream()
            except TestFailure:
                full = True     # refused at accept
                h.sock.close()
                break
            h.send(part)
            holders.append(h)
            time.sleep(0.05)
            if _refused(srv):
                full = True
                break
        check(full, '%d unauthenticated connections with 6 KB pending each '
              'and no refusal' % len(holders))
        check(len(holders) >= 4, 'refused after only %d connections' % len(holders))
        check(_refused(srv), 'the next connection was not refused')
        r = alice.iq("<iq type='get' id='live' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        check(r.get('type') == 'result', 'logged-in session: %s' % rt.to_string(r))
        alice.send("<message to='%s' id='big'><body>%s</body></message>"
                   % (alice.full_jid, 'b' * 20000))
        m = alice.recv(timeout=5)
        check(rt.tag(m) == 'message' and m.get('id') == 'big',
              'big stanza of a logged-in session: %s' % rt.to_string(m))
        for h in holders:
            h.close()
        holders = []
        deadline = time.monotonic() + 5
        while _refused(srv) and time.monotonic() < deadline:
            time.sleep(0.2)
        check(not _refused(srv), 'still refusing 5 s after the holders went')
        Client(srv, 'bob@localhost', USERS['bob@localhost'], name='after').login().close()
    finally:
        for h in holders:
            h.close()
        alice.close()


def preauth_defaults_allow_login_and_registration(srv):
    """Under the default pre-authentication limits (64 KiB, 16 KiB
    stanzas): a XEP-0077 registration (form fetched three times, then set)
    followed by a SCRAM login of the new account on the same stream, a
    STARTTLS + SCRAM login, and a SASL2 <authenticate/> with a 4 KB
    user-agent all work."""
    c = _starttls_preauth(srv, 'register')
    password = 'Reg-Pass-' + 'q' * 100
    try:
        for i in range(3):
            r = c.iq("<iq type='get' id='f%d'><query xmlns='%s'/></iq>" % (i, NS_REG))
            check(r.get('type') == 'result', 'form: %s' % rt.to_string(r))
        r = c.iq("<iq type='set' id='s1'><query xmlns='%s'><username>newbie</username>"
                 "<password>%s</password></query></iq>" % (NS_REG, password), timeout=5)
        check(r.get('type') == 'result', 'registration: %s' % rt.to_string(r))
        c.auth(mech='SCRAM-SHA-256', username='newbie', password=password)
        c.bind('r')
    finally:
        c.close()
    Client(srv, 'newbie@localhost', password, name='newbie').login().close()
    Client(srv, 'alice@localhost', USERS['alice@localhost'], name='alice').login().close()
    c = _starttls_preauth(srv, 'sasl2')
    try:
        ir = base64.b64encode(('\0alice\0%s' % USERS['alice@localhost']).encode()).decode()
        agent = ("<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>%s"
                 "</software><device>%s</device></user-agent>" % ('S' * 2000, 'D' * 2000))
        c.send("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s"
               "</initial-response>%s</authenticate>" % (NS_SASL2, ir, agent))
        el = c.recv()
        check(el.tag == '{%s}success' % NS_SASL2, 'SASL2: %s' % rt.to_string(el))
    finally:
        c.close()


def preauth_stanza_size(srv):
    """limits.preauth_max_stanza_size (16 KiB by default): before
    authentication a 20 KB registration request is a <policy-violation/>
    (stanza too large); after authentication a 20 KB stanza is fine
    (max_stanza_size, 256 KiB, applies)."""
    c = _starttls_preauth(srv)
    try:
        c.send_until_answer("<iq type='get' id='big'><query xmlns='%s'><x>%s</x>"
                            "</query></iq>" % (NS_REG, 'z' * 20000), chunk=4096)
        el = c.recv_stream_error()
        cond = rt.error_condition(el, rt.NS_STREAM_ERR)
        check(cond == 'policy-violation' and 'too large' in _stream_error_text(el),
              'got <%s/> %r' % (cond, _stream_error_text(el)))
    except rt.StreamClosed:
        raise TestFailure('closed without a stream error')
    finally:
        c.close()
    a = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='alice').login()
    try:
        a.send("<message to='%s' id='big'><body>%s</body></message>"
               % (a.full_jid, 'b' * 20000))
        m = a.recv(timeout=5)
        check(rt.tag(m) == 'message' and m.get('id') == 'big',
              'a 20 KB stanza after authentication: %s' % rt.to_string(m))
    finally:
        a.close()


# (server class, tests) pairs: idle tests need short timeouts, the others
# must not be disturbed by them.
GROUPS = [(TightRoost, [unauthenticated_lifetime, idle_ping_then_close,
                        idle_ping_answered_keeps_session]),
          (PatientRoost, [slow_reader_is_cut_off, log_has_no_secrets,
                          i18n_jid_and_ids, roster_survives_restart,
                          output_records_per_turn]),
          (MixedRoost, [vhost_module_lists, vhost_tls_policy]),
          (GuardedRoost, [connections_per_ip, auth_failures_per_ip, read_rate]),
          (PreauthRoost, [preauth_bytes, preauth_total]),
          (PreauthDefaultRoost, [preauth_defaults_allow_login_and_registration,
                                 preauth_stanza_size])]


def run_group(cls, tests):
    return rt.run_group(cls, USERS, tests, 'limits')


def main():
    passed = failed = 0
    for cls, tests in GROUPS:
        p, f = run_group(cls, tests)
        passed += p
        failed += f
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
