"""roosttest: drive an XMPP server over real sockets (Python 3 stdlib only).

ServerUnderTest has two implementations: Roost (the server we build) and
Prosody (an unmodified Debian prosody, used to check that our expectations
are the standard ones, HOUSE rule 25).  Client is a small XMPP c2s client
with STARTTLS / direct TLS, SCRAM-SHA-1/-256(-PLUS), PLAIN and binding.
Every socket operation has a timeout (<= 10 s): no test can hang.
"""
import base64, hashlib, hmac, os, select, shutil, signal, socket, ssl
import re, shlex, subprocess, tempfile, time, unicodedata
import xml.etree.ElementTree as ET
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

# ROOSTTEST_TIMEOUT_SCALE multiplies every timeout (tests/valgrind.sh sets
# 4: roostd under valgrind is 10-50 times slower on CPU-bound steps such
# as TLS handshakes and SCRAM).
TIMEOUT_SCALE = float(os.environ.get('ROOSTTEST_TIMEOUT_SCALE', '1') or 1)
TIMEOUT = 10.0 * TIMEOUT_SCALE
NS_STREAM = 'http://etherx.jabber.org/streams'
NS_CLIENT = 'jabber:client'
NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'
NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'
NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind'
NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session'
NS_STREAM_ERR = 'urn:ietf:params:xml:ns:xmpp-streams'
NS_STANZA_ERR = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_XML = 'http://www.w3.org/XML/1998/namespace'
NS_SASL_CB = 'urn:xmpp:sasl-cb:0'
HERE = os.path.dirname(os.path.abspath(__file__))

DOMAINS = ('localhost', 'example.test')


class TestFailure(Exception):
    pass


class StreamClosed(TestFailure):
    pass


class AuthFailed(TestFailure):
    def __init__(self, condition, elapsed=0.0):
        super().__init__('SASL failure: %s' % condition)
        self.condition, self.elapsed = condition, elapsed


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def free_ports(n):
    """Ports the kernel considers free right now (bind to port 0)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_port(port, proc, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestFailure('server exited with %s before listening' % proc.returncode)
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TestFailure('port %d not accepting connections after %ss' % (port, timeout))


def tag(el):
    """'{ns}name' -> 'name' (for messages)."""
    return el.tag.rsplit('}', 1)[-1]


def ns(el):
    return el.tag[1:].split('}', 1)[0] if el.tag.startswith('{') else ''


def to_string(el):
    return ET.tostring(el, encoding='unicode')


def error_condition(el, namespace=NS_STANZA_ERR):
    """Defined condition of a stanza error / stream error / SASL failure."""
    err = el.find('{jabber:client}error') if el.tag != '{%s}error' % NS_STREAM else el
    err = el if err is None else err
    for child in err:
        if ns(child) == namespace and tag(child) != 'text':
            return tag(child)
    return None


# ----------------------------------------------------------------- servers

class ServerUnderTest:
    """A server with the two vhosts, a starttls and a direct-TLS c2s port."""
    name = 'server'
    auth_fail_delay = None      # seconds the server must wait before <failure/>
    deviations = {}             # test key -> accepted answer, with the RFC note

    def __init__(self, users):
        self.users = dict(users)           # bare JID -> password
        self.dir = tempfile.mkdtemp(prefix='roosttest-%s-' % self.name)
        self.c2s_port, self.tls_port = free_ports(2)
        self.proc, self.logfile = None, os.path.join(self.dir, 'server.log')

    def log_tail(self, n=40):
        try:
            with open(self.logfile, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return '(no log)'

    def _spawn(self, argv, env=None):
        # ROOSTD_WRAPPER: a command prefix for roostd (tests/valgrind.sh:
        # "valgrind --error-exitcode=99 ..."); other servers run as they are.
        wrapper = os.environ.get('ROOSTD_WRAPPER', '')
        if wrapper and argv and argv[0] == getattr(self, 'roostd', None):
            argv = shlex.split(wrapper) + list(argv)
        self._log = open(self.logfile, 'ab')
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir, env=env)
        wait_port(self.c2s_port, self.proc)
        wait_port(self.tls_port, self.proc)

    def stop(self):
        """Stop with SIGTERM; return a list of problems (crash, hang)."""
        problems = []
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append('did not exit within %ss of SIGTERM' % TIMEOUT)
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            rc = self.proc.returncode
            if rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM) or \
                    (rc != 0 and self.name == 'roost'):
                problems.append('exit status %s' % rc)
            self._log.close()
        log = self.log_tail(100000)
        for needle in ('AddressSanitizer', 'runtime error:', 'LeakSanitizer',
                       'Segmentation fault', 'stack traceback'):
            if needle in log:
                problems.append('log contains %r' % needle)
        return problems

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def domain_of(self, jid):
        return jid.split('@', 1)[1].split('/', 1)[0]


class Roost(ServerUnderTest):
    name = 'roost'
    auth_fail_delay = 0.2
    extra_modules = ()      # modules a test file adds to every vhost
    extra_limits = ''       # options a test file adds to limits = { }

    def __init__(self, users):
        super().__init__(users)
        top = os.path.dirname(os.path.dirname(HERE))      # the build tree
        self.roostd = os.environ.get('ROOSTD', os.path.join(top, 'roostd'))
        self.roostctl = os.environ.get('ROOSTCTL', os.path.join(top, 'roostctl'))
        self.modules = os.path.abspath(os.environ.get('ROOST_MODULES_DIR', os.path.join(top, 'modules', '.libs')))
        self.config = os.path.join(self.dir, 'roost.conf')

    def write_config(self):
        # ROOSTTEST_MODULES: space-separated module list for every vhost.
        names = os.environ.get('ROOSTTEST_MODULES',
                               'disco ping version message roster '
                               'presence vcard').split()
        names += [m for m in self.extra_modules if m not in names]
        mods = '[ %s ]' % ', '.join('"%s"' % n for n in names)
        with open(self.config, 'w') as f:
            f.write('log_level = "debug";\n'
                    'data_dir = "%s";\n' % os.path.join(self.dir, 'data') +
                    'modules_dir = "%s";\n' % self.modules +
                    'storage = { driver = "sqlite"; path = "roost.db"; };\n'
                    'limits = { max_stanza_size = 262144; max_depth = 64; max_attrs = 64;'
                    ' c2s_timeout = 300; auth_timeout = 30; auth_fail_delay = 0.2;'
                    ' max_resources = 10; %s};\n' % self.extra_limits +
                    'listen = (\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "starttls"; },\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "direct"; }\n'
                    ');\nhosts = (\n' % (self.c2s_port, self.tls_port) +
                    ',\n'.join('  { domain = "%s"; modules = %s; }' % (d, mods)
                               for d in DOMAINS) + '\n);\n')
        os.makedirs(os.path.join(self.dir, 'data'), exist_ok=True)

    def start(self):
        for exe in (self.roostd, self.roostctl):
            if not os.access(exe, os.X_OK):
                raise TestFailure('%s is not built' % exe)
        self.write_config()
        for jid, pw in self.users.items():
            r = subprocess.run([self.roostctl, '-c', self.config, 'adduser', jid, '--password', pw],
                               capture_output=True, timeout=30, cwd=self.dir)
            if r.returncode != 0:
                raise TestFailure('roostctl adduser %s: %s' % (jid, (r.stderr or r.stdout).decode()))
        self._spawn_ready()

    def _spawn_ready(self):
        """roostd, then wait for its "ready" line: the ports accept
        connections before privileges are dropped and the signal handlers
        are installed, so a test that looks at the process (uid) or
        signals it right after the port opens would race with start-up."""
        start = os.path.getsize(self.logfile) if os.path.exists(self.logfile) else 0
        self._spawn([self.roostd, '-c', self.config])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with open(self.logfile, 'rb') as f:
                f.seek(start)
                if re.search(rb'roostd \S+ ready', f.read()):
                    return
            if self.proc.poll() is not None:
                raise TestFailure('roostd exited with %s before ready' % self.proc.returncode)
            time.sleep(0.02)
        raise TestFailure('roostd not ready after %ss' % TIMEOUT)

    def kill9(self):
        """SIGKILL: no chance to flush or commit anything."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def restart(self):
        """roostd again on the same config and data directory."""
        self._spawn_ready()


PROSODY_MODULES = ['roster', 'saslauth', 'tls', 'disco', 'ping', 'version',
                   'posix', 'vcard']


class Prosody(ServerUnderTest):
    """Unmodified Debian prosody with the same vhosts, ports and users."""
    name = 'prosody'
    extra_modules = ()          # Prosody modules a test file adds
    # Where Prosody legitimately differs from what RFC 6120/6121 ask of Roost.
    # key -> (answer Prosody gives, note).  Used only with --server prosody.
    deviations = {
        'invalid-utf8': ('not-well-formed', 'RFC 6120 §4.9.3.22 names <unsupported-encoding/> for '
                         'a stream violating UTF-8; Prosody reports the expat error as not-well-formed'),
        'doctype': ('not-well-formed', 'RFC 6120 §11.1 says restricted XML MUST be answered with '
                    '<restricted-xml/>; Prosody detects it but closes with not-well-formed'),
        'entity-decl': ('not-well-formed', 'RFC 6120 §11.1 (restricted-xml); Prosody says not-well-formed'),
        'comment': ('not-well-formed', 'RFC 6120 §11.1 (restricted-xml); Prosody says not-well-formed'),
        'pi': ('not-well-formed', 'RFC 6120 §11.1 (restricted-xml); Prosody says not-well-formed'),
        'depth': (None, 'Prosody has no nesting-depth limit; RFC 6120 §13.12 lets a server limit '
                  'resources; Roost answers <policy-violation/> (§4.9.3.14) past max_depth'),
        'attrs': (None, 'Prosody has no attribute-count limit; Roost answers <policy-violation/> '
                  '(RFC 6120 §4.9.3.14) past max_attrs'),
        'content-namespace': (None, 'Prosody 0.12 does not check the content namespace of the stream '
                              'header; RFC 6120 §4.9.3.10 requires <invalid-namespace/>'),
        'unsupported-version': (None, "Prosody 0.12 accepts version='2.0'; RFC 6120 §4.7.5 requires "
                                '<unsupported-version/> for a major version it does not support'),
        'authzid': ('authenticated-as-self', 'Prosody ignores the SASL authzid and logs the client in as '
                    'its own account; RFC 6120 §6.4.6 requires <invalid-authzid/> (§6.5.6) when the '
                    'authenticated identity may not act as the authzid'),
        'auth-fail-delay': (None, 'Prosody answers a failed SASL attempt at once; the delay is '
                            'Roost policy (RFC 6120 §13.3 / RFC 4422 §7 brute-force advice)'),
    }

    def start(self):
        certs = os.path.join(self.dir, 'certs')
        os.makedirs(certs)
        os.makedirs(os.path.join(self.dir, 'data'))
        for d in DOMAINS:
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                            '-subj', '/CN=' + d, '-addext', 'subjectAltName=DNS:' + d,
                            '-keyout', os.path.join(certs, d + '.key'),
                            '-out', os.path.join(certs, d + '.crt')],
                           check=True, capture_output=True, timeout=60)
        self.config = os.path.join(self.dir, 'prosody.cfg.lua')
        with open(self.config, 'w') as f:
            f.write('''-- generated by roosttest.py
run_as_root = true
daemonize = false
pidfile = "%(dir)s/prosody.pid"
data_path = "%(dir)s/data"
certificates = "%(dir)s/certs"
log = { { levels = { min = "debug" }, to = "file", filename = "%(dir)s/server.log" } }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { %(c2s)d }
c2s_direct_tls_ports = { %(tls)d }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = true
authentication = "internal_plain"
storage = "internal"
modules_enabled = { %(enabled)s }
-- no offline storage unless a test enables it: Roost's default has none
modules_disabled = { %(disabled)s }
''' % {'dir': self.dir, 'c2s': self.c2s_port, 'tls': self.tls_port,
       'enabled': ', '.join('"%s"' % m for m in
                            PROSODY_MODULES + list(self.extra_modules)),
       'disabled': ', '.join('"%s"' % m for m in
                             ('offline', 's2s', 's2s_auth_certs')
                             if m not in self.extra_modules)})
            for d in DOMAINS:
                f.write('VirtualHost "%s"\n  ssl = { certificate = "%s/%s.crt"; key = "%s/%s.key" }\n'
                        % (d, certs, d, certs, d))
        for jid, pw in self.users.items():
            r = subprocess.run(['prosodyctl', '--config', self.config, 'register',
                                jid.split('@')[0], jid.split('@')[1], pw],
                               capture_output=True, timeout=60, cwd=self.dir)
            if r.returncode != 0:
                raise TestFailure('prosodyctl register %s: %s' % (jid, r.stdout.decode() + r.stderr.decode()))
        self._spawn(['prosody', '--config', self.config])

    def stop(self):
        problems = super().stop()
        return [p for p in problems if 'stack traceback' not in p] + \
            (['log has errors'] if '\terror\t' in self.log_tail(100000) else [])


SERVERS = {'roost': Roost, 'prosody': Prosody}


# ---------------------------------------------------------- XML streaming

class StreamParser:
    """Incremental parser: stream header, depth-1 elements, stream end."""

    def __init__(self):
        self.p = expat.ParserCreate(namespace_separator=' ')
        self.p.StartElementHandler = self._start
        self.p.EndElementHandler = self._end
        self.p.CharacterDataHandler = self._text
        self.p.buffer_text = True
        self.header, self.ended, self.stack, self.items = None, False, [], []

    @staticmethod
    def _name(n):
        return '{%s}%s' % tuple(n.split(' ', 1)) if ' ' in n else n

    def _start(self, name, attrs):
        attrs = {self._name(k): v for k, v in attrs.items()}
        if self.header is None:
            self.header = attrs
            return
        el = ET.Element(self._name(name), attrs)
        if self.stack:
            self.stack[-1].append(el)
        self.stack.append(el)

    def _end(self, name):
        if not self.stack:
            self.ended = True
            return
        el = self.stack.pop()
        if not self.stack:
            self.items.append(el)

    def _text(self, data):
        if not self.stack:
            return
        el = self.stack[-1]
        if len(el):
            el[-1].tail = (el[-1].tail or '') + data
        else:
            el.text = (el.text or '') + data

    def feed(self, data):
        self.p.Parse(data, False)


# ------------------------------------------------------------------ client

def _saslname(s):
    return s.replace('=', '=3D').replace(',', '=2C')


def _saslprep(pw):
    return unicodedata.normalize('NFKC', pw)   # enough for test passwords


def ssdp_hash(hname, mechs, cb_types):
    """XEP-0474 §3.1: base64 of H(sorted mechanisms joined by 0x1E, then,
    if XEP-0440 listed channel-binding types, 0x1F and those, sorted and
    joined by 0x1E); i;octet order is Python's order of bytes."""
    s = b'\x1e'.join(sorted(m.encode() for m in mechs))
    if cb_types is not None:
        s += b'\x1f' + b'\x1e'.join(sorted(t.encode() for t in cb_types))
    return base64.b64encode(hashlib.new(hname, s).digest()).decode()


class Client:
    """One c2s connection.  Methods raise TestFailure on anything unexpected."""

    def __init__(self, server, jid=None, password=None, name=None):
        self.server, self.jid, self.password = server, jid, password
        self.name = name or (jid or 'client')
        self.domain = server.domain_of(jid) if jid else 'localhost'
        self.sock = self.parser = self.features = None
        self.full_jid, self.tls_version, self.eof = None, None, False

    # -- transport
    def _tls_context(self, max_version=None, alpn=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE      # roostd makes self-signed certificates
        if max_version:
            ctx.maximum_version = max_version
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def connect(self, direct_tls=False, tls_max=None, sni=None, port=None):
        port = port or (self.server.tls_port if direct_tls else self.server.c2s_port)
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT)
        if direct_tls:    # XEP-0368: ALPN xmpp-client and SNI
            self._wrap(tls_max, sni or self.domain, alpn=['xmpp-client'])
        return self

    def _wrap(self, tls_max, sni, alpn=None):
        ctx = self._tls_context(tls_max, alpn)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni)
        self.tls_version = self.sock.version()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode('utf-8')
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise StreamClosed('%s: send failed: %s' % (self.name, e))

    def send_until_answer(self, data, chunk=8192):
        """Send data in pieces and stop early once the server answered or
        closed (so a big stanza cannot hide the stream error behind a reset)."""
        for i in range(0, len(data), chunk):
            try:
                while self._fill(time.monotonic() + 0.001):
                    pass
            except TestFailure:
                return
            if self.parser.items or self.parser.ended:
                return
            try:
                self.send(data[i:i + chunk])
            except StreamClosed:
                return

    def _fill(self, deadline):
        """Read once from the socket into the parser; False on timeout."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return False
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, socket.timeout):
            return True
        except OSError:          # reset, TLS alert: the connection is gone
            data = b''
        if not data:
            self.eof = True
            raise StreamClosed('%s: connection closed by server' % self.name)
        try:
            self.parser.feed(data)
        except expat.ExpatError as e:
            raise TestFailure('%s: server sent bad XML: %s' % (self.name, e))
        return True

    def recv(self, timeout=TIMEOUT):
        """Next depth-1 element, or raise TestFailure on timeout / close."""
        deadline = time.monotonic() + timeout
        while not self.parser.items:
            if self.parser.ended:
                raise StreamClosed('%s: server closed the stream' % self.name)
            if not self._fill(deadline):
                raise TestFailure('%s: nothing received within %.1fs' % (self.name, timeout))
        return self.parser.items.pop(0)

    def recv_nothing(self, timeout=1.0):
        """Fail if any stanza arrives within timeout."""
        deadline = time.monotonic() + timeout
        while not self.parser.items and self._fill(deadline):
            pass
        if self.parser.items:
            raise TestFailure('%s: unexpected %s' % (self.name, to_string(self.parser.items[0])))

    # -- stream
    def open_stream(self, to=None, header=None):
        """Send a stream header, read the server's header and features."""
        self.parser = StreamParser()
        to = self.domain if to is None else to
        self.send(header if header is not None else
                  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='%s' to=%s version='1.0' xml:lang='en'>" % (NS_STREAM, quoteattr(to)))
        deadline = time.monotonic() + TIMEOUT
        while self.parser.header is None:
            if not self._fill(deadline):
                raise TestFailure('%s: no stream header from server' % self.name)
        el = self.recv()
        if el.tag == '{%s}error' % NS_STREAM:
            raise TestFailure('%s: stream error %s' % (self.name, error_condition(el, NS_STREAM_ERR)))
        check(el.tag == '{%s}features' % NS_STREAM, '%s: expected features, got %s' % (self.name, to_string(el)))
        self.features = el
        return el

    def mechanisms(self):
        m = self.features.find('{%s}mechanisms' % NS_SASL)
        return [x.text.strip() for x in m] if m is not None else []

    def starttls(self, tls_max=None, sni=None):
        check(self.features.find('{%s}starttls' % NS_TLS) is not None, 'no <starttls/> offered')
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        el = self.recv()
        check(el.tag == '{%s}proceed' % NS_TLS, 'STARTTLS answered with %s' % to_string(el))
        self._wrap(tls_max, sni or self.domain)
        return self.open_stream()

    def cb_data(self):
        return self.sock.get_channel_binding('tls-unique')

    def cb_types(self):
        """The XEP-0440 channel-binding types in the features, or None."""
        cb = self.features.find('{%s}sasl-channel-binding' % NS_SASL_CB)
        return None if cb is None else [x.get('type') for x in cb]

    def check_ssdp(self, hname, server_first, mechs):
        """XEP-0474 §3.2: the server-first-message's h is the hash of the
        mechanisms (of the SASL profile in use) and channel-binding types
        this client saw; Roost must send it, other servers may."""
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        if 'h' not in attrs:
            check(not isinstance(self.server, Roost),
                  '%s: no XEP-0474 h in %r' % (self.name, server_first))
            return
        want = ssdp_hash(hname, mechs, self.cb_types())
        check(attrs['h'] == want, '%s: XEP-0474 h=%s, computed %s from %s %s'
              % (self.name, attrs['h'], want, mechs, self.cb_types()))

    def auth(self, mech=None, username=None, password=None, authzid=None, gs2_flag=None, bad_cb=False):
        """SASL: returns None on success, raises AuthFailed(condition) on failure."""
        mechs = self.mechanisms()
        if mech is None:
            mech = next((m for m in ('SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN') if m in mechs), None)
            check(mech, '%s: no usable SASL mechanism in %s' % (self.name, mechs))
        username = username if username is not None else self.jid.split('@')[0]
        password = password if password is not None else self.password
        t0 = time.monotonic()
        if mech == 'PLAIN':
            msg = ('%s\0%s\0%s' % (authzid or '', username, password)).encode()
            self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, base64.b64encode(msg).decode()))
            el = self.recv()
        else:
            el = self._scram(mech, username, password, authzid, gs2_flag, bad_cb)
        if el.tag == '{%s}failure' % NS_SASL:
            raise AuthFailed(error_condition(el, NS_SASL), time.monotonic() - t0)
        check(el.tag == '{%s}success' % NS_SASL, 'SASL answered with %s' % to_string(el))
        self.open_stream()

    def _scram(self, mech, username, password, authzid, gs2_flag, bad_cb):
        hname = 'sha256' if 'SHA-256' in mech else 'sha1'
        H = lambda b: hashlib.new(hname, b).digest()
        HMAC = lambda k, b: hmac.new(k, b, hname).digest()
        plus = mech.endswith('-PLUS')
        flag = 'p=tls-unique' if plus else (gs2_flag or 'n')
        gs2 = '%s,%s,' % (flag, 'a=' + _saslname(authzid) if authzid else '')
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = 'n=%s,r=%s' % (_saslname(username), cnonce)
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                  % (NS_SASL, mech, base64.b64encode((gs2 + first_bare).encode()).decode()))
        el = self.recv()
        if el.tag != '{%s}challenge' % NS_SASL:
            return el
        server_first = base64.b64decode(el.text or '').decode()
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        check(attrs['r'].startswith(cnonce) and len(attrs['r']) > len(cnonce), 'SCRAM: bad server nonce')
        self.check_ssdp(hname, server_first, self.mechanisms())
        salted = hashlib.pbkdf2_hmac(hname, _saslprep(password).encode(), base64.b64decode(attrs['s']),
                                     int(attrs['i']))
        cbind = gs2.encode()
        if plus:
            cbind += b'\0' * 12 if bad_cb else self.cb_data()
        without_proof = 'c=%s,r=%s' % (base64.b64encode(cbind).decode(), attrs['r'])
        auth_msg = ('%s,%s,%s' % (first_bare, server_first, without_proof)).encode()
        client_key = HMAC(salted, b'Client Key')
        sig = HMAC(H(client_key), auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.send("<response xmlns='%s'>%s</response>" % (NS_SASL, base64.b64encode(
            ('%s,p=%s' % (without_proof, base64.b64encode(proof).decode())).encode()).decode()))
        el = self.recv()
        expect = 'v=' + base64.b64encode(HMAC(HMAC(salted, b'Server Key'), auth_msg)).decode()
        if el.tag == '{%s}challenge' % NS_SASL:
            # RFC 6120 §6.3.10: server-final-message as a last challenge,
            # answered with an empty response, then an empty <success/>.
            final = base64.b64decode(el.text or '').decode()
            check(final == expect, 'SCRAM: server signature mismatch: %r' % final)
            self.send("<response xmlns='%s'/>" % NS_SASL)
            el = self.recv()
        elif el.tag == '{%s}success' % NS_SASL:
            final = base64.b64decode(el.text or '').decode()
            check(final == expect, 'SCRAM: server-final-message %r, expected %r' % (final, expect))
        return el

    def bind(self, resource=None):
        check(self.features.find('{%s}bind' % NS_BIND) is not None, 'no <bind/> offered after SASL')
        res = '<resource>%s</resource>' % resource if resource else ''
        self.send("<iq type='set' id='bind1'><bind xmlns='%s'>%s</bind></iq>" % (NS_BIND, res))
        el = self.recv()
        check(el.get('type') == 'result' and el.get('id') == 'bind1', 'bind failed: %s' % to_string(el))
        j = el.find('{%s}bind/{%s}jid' % (NS_BIND, NS_BIND))
        check(j is not None and j.text, 'bind result without <jid/>: %s' % to_string(el))
        self.full_jid = j.text.strip()
        return self.full_jid

    def login(self, resource=None, direct_tls=False, mech=None, tls_max=None):
        self.connect(direct_tls=direct_tls, tls_max=tls_max)
        self.open_stream()
        if not direct_tls:
            self.starttls(tls_max=tls_max)
        self.auth(mech)
        self.bind(resource)
        return self

    def iq(self, xml, timeout=TIMEOUT):
        """Send an iq (with id) and return the answer with the same id."""
        self.send(xml)
        want = ET.fromstring(xml).get('id')
        while True:
            el = self.recv(timeout)
            if tag(el) == 'iq' and el.get('id') == want:
                return el

    def expect_stream_error(self, timeout=TIMEOUT):
        """Read until a stream error, require </stream:stream> and TCP close
        after it; return the condition name."""
        return error_condition(self.recv_stream_error(timeout), NS_STREAM_ERR)

    def recv_stream_error(self, timeout=TIMEOUT):
        while True:
            try:
                el = self.recv(timeout)
            except StreamClosed:
                raise TestFailure('%s: stream closed without a stream error' % self.name)
            if el.tag == '{%s}error' % NS_STREAM:
                break
        self.expect_close('<%s/>' % error_condition(el, NS_STREAM_ERR))
        return el

    def expect_close(self, after):
        """RFC 6120 §4.9.1.1: after a stream error the server sends
        </stream:stream> and closes the TCP connection."""
        deadline = time.monotonic() + TIMEOUT
        try:
            while not self.parser.ended:
                if not self._fill(deadline):
                    raise TestFailure('%s: no </stream:stream> after %s' % (self.name, after))
        except StreamClosed:
            if not self.parser.ended:
                raise TestFailure('%s: TCP closed after %s without </stream:stream>' % (self.name, after))
            return
        try:
            while self._fill(deadline):
                pass
        except StreamClosed:
            return
        raise TestFailure('%s: TCP connection still open %ss after </stream:stream>' % (self.name, TIMEOUT))

    def close(self):
        """Polite close: </stream:stream>, wait briefly for the peer's close."""
        if self.sock is None:
            return
        try:
            if not self.eof and self.parser is not None:
                self.send('</stream:stream>')
                deadline = time.monotonic() + 2
                while not self.parser.ended and self._fill(deadline):
                    pass
        except TestFailure:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None

    def peer_cert_names(self):
        """(subject CN list, SAN DNS list) of the certificate the server sent."""
        der = self.sock.getpeercert(binary_form=True)
        path = tempfile.mktemp(suffix='.pem')
        with open(path, 'w') as f:
            f.write(ssl.DER_cert_to_PEM_cert(der))
        try:
            info = ssl._ssl._test_decode_cert(path)   # stdlib's own decoder
        finally:
            os.unlink(path)
        cns = [v for rdn in info.get('subject', ()) for k, v in rdn if k == 'commonName']
        sans = [v for k, v in info.get('subjectAltName', ()) if k == 'DNS']
        return cns, sans


def run_group(cls, users, tests, prefix):
    """Runs tests (functions taking the server) against one cls(users)
    server: a PASS/FAIL line each, a check that the server still runs after
    each test, and a clean-shutdown check at the end.  Returns (passed,
    failed).  Shared by the standalone test files (test_limits.py,
    test_offline.py, ...)."""
    passed = failed = 0
    srv = cls(users)
    try:
        srv.start()
    except TestFailure as e:
        print('FAIL %s:start: %s' % (prefix, e))
        return 0, 1
    try:
        for t in tests:
            try:
                t(srv)
                print('PASS %s:%s' % (prefix, t.__name__))
                passed += 1
            except (TestFailure, OSError) as e:
                print('FAIL %s:%s: %s' % (prefix, t.__name__, e))
                failed += 1
            if srv.proc is None or srv.proc.poll() is not None:
                print('FAIL %s:%s: server not running afterwards' % (prefix, t.__name__))
                print(srv.log_tail(40))
                failed += 1
                break
        problems = srv.stop()
        if problems:
            print('FAIL %s:server-clean-shutdown: %s' % (prefix, '; '.join(problems)))
            print(srv.log_tail(40))
            failed += 1
        else:
            print('PASS %s:server-clean-shutdown' % prefix)
            passed += 1
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        if not failed:
            srv.cleanup()
        else:
            print('    (server files kept in %s)' % srv.dir)
    return passed, failed
