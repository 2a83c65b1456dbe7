#!/usr/bin/env python3
"""Federation interop: roostd against unmodified Debian Prosody 0.12 and
ejabberd 23.01 over real server-to-server streams, in two configurations:

  1. STARTTLS + Server Dialback (XEP-0220): the certificates are
     self-signed, so dialback is what authenticates the streams;
  2. STARTTLS + SASL EXTERNAL (XEP-0178): a CA made by the test signs a
     certificate for each domain and every server trusts it (Roost:
     s2s.ca_file, s2s.secure_auth = true, so no dialback at all;
     Prosody: ssl.cafile, s2s_secure_auth = true; ejabberd: ca_file,
     s2s_cafile); each stream, both ways, is authenticated with EXTERNAL.

Each server listens on its own loopback address on port 5269:

    127.0.0.2  a.test  roostd   (static s2s routes to the peers); one
                       roostd per configuration, one after the other
    127.0.0.3  p.test  prosody  (finds a.test through /etc/hosts)
    127.0.0.4  e.test  ejabberd (finds a.test through /etc/hosts)
    127.0.0.5  pb.test prosody with mod_s2s_bidi (XEP-0288): one
                       connection carries both directions
    127.0.0.6  ps.test prosody, configuration 2 (prosody-pkix)
    127.0.0.7  es.test ejabberd, configuration 2 (ejabberd-pkix)

The names are added to /etc/hosts for the run (atomically, each line
marked with '# roost-s2s-interop pid=N'; the file is restored byte for byte
afterwards, also on an exception or SIGTERM/SIGINT; marked lines left by a
run that was SIGKILLed are removed at the next start).  One run at a time:
a lock file serializes runs (the ports are fixed).

For each peer, each in both directions (Roost -> peer and peer -> Roost),
with a c2s client on each side (roosttest.Client, STARTTLS + SCRAM):
  - a chat message (from stamped, body intact);
  - subscription both ways (subscribe/subscribed, one test started by the
    Roost user, one by the peer's), rosters 'both' on both sides, presence
    visible both ways (broadcast with status, unavailable, probes answered
    at the next login);
  - an XEP-0199 ping to the remote server (to='p.test' / to='a.test')
    answered with a result from that server;
  - from both servers' logs: how the streams were authenticated
    (dialback in configuration 1, SASL EXTERNAL and no dialback in 2).

    python3 test_s2s_interop.py [--peer prosody|prosody-bidi|ejabberd|
                                        prosody-pkix|ejabberd-pkix] [--keep]

Env: ROOSTD, ROOSTCTL, ROOST_MODULES_DIR (defaults: the build tree), as for
tests/integration.  Prints PASS/FAIL/SKIP lines and 'N passed, N failed,
N skipped'.  Exit 77 (automake SKIP) only when no peer server is installed;
a peer that is missing is reported as SKIP lines.  Must run as root (it
edits /etc/hosts).
"""
import argparse
import atexit
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import roosttest as rt                              # noqa: E402
from roosttest import Client, TestFailure, check   # noqa: E402

HOSTS = '/etc/hosts'
MARK = '# roost-s2s-interop'
LOCK = os.path.join(tempfile.gettempdir(), 'roost-s2s-interop.lock')
S2S_PORT = 5269
ROOST_ADDR, ROOST_DOMAIN = '127.0.0.2', 'a.test'
PEERS = {'prosody': ('127.0.0.3', 'p.test'), 'ejabberd': ('127.0.0.4', 'e.test'),
         'prosody-bidi': ('127.0.0.5', 'pb.test'),
         'prosody-pkix': ('127.0.0.6', 'ps.test'), 'ejabberd-pkix': ('127.0.0.7', 'es.test')}
# The second configuration (XEP-0178): its peers federate with a second
# roostd (a.test again, same address, started after the first stopped)
# that has s2s.secure_auth and trusts the test's CA.
PKIX_PEERS = ('prosody-pkix', 'ejabberd-pkix')
EJABBERD_EBIN = '/usr/lib/x86_64-linux-gnu/ejabberd-23.01-1/ebin'
WAIT = 20.0          # one exchange across s2s (the first one opens streams)
NS_ROSTER = 'jabber:iq:roster'
NS_PING = 'urn:xmpp:ping'

# Roost users per peer (so the two peers' tests cannot see each other's
# presence), and the peer's users.
USERS = {
    'prosody': ({'alice@a.test': 'alice-Secret-1', 'anne@a.test': 'anne-Secret-2',
                 'amy@a.test': 'amy-Secret-3'},
                {'pat@p.test': 'pat-Secret-1', 'pia@p.test': 'pia-Secret-2',
                 'pam@p.test': 'pam-Secret-3'}),
    'ejabberd': ({'ada@a.test': 'ada-Secret-1', 'abe@a.test': 'abe-Secret-2',
                  'art@a.test': 'art-Secret-3'},
                 {'eve@e.test': 'eve-Secret-1', 'ema@e.test': 'ema-Secret-2',
                  'eli@e.test': 'eli-Secret-3'}),
    'prosody-bidi': ({'abby@a.test': 'abby-Secret-1', 'ava@a.test': 'ava-Secret-2',
                      'axel@a.test': 'axel-Secret-3'},
                     {'pete@pb.test': 'pete-Secret-1', 'pola@pb.test': 'pola-Secret-2',
                      'piet@pb.test': 'piet-Secret-3'}),
    'prosody-pkix': ({'ali@a.test': 'ali-Secret-1', 'ann@a.test': 'ann-Secret-2',
                      'ari@a.test': 'ari-Secret-3'},
                     {'paul@ps.test': 'paul-Secret-1', 'peg@ps.test': 'peg-Secret-2',
                      'phil@ps.test': 'phil-Secret-3'}),
    'ejabberd-pkix': ({'al@a.test': 'al-Secret-1', 'ash@a.test': 'ash-Secret-2',
                       'aya@a.test': 'aya-Secret-3'},
                      {'emil@es.test': 'emil-Secret-1', 'ezra@es.test': 'ezra-Secret-2',
                       'elsa@es.test': 'elsa-Secret-3'}),
}


def note(msg):
    print('    ' + msg, flush=True)


# ------------------------------------------------------------ /etc/hosts

class HostsEntries:
    """Adds marked lines to /etc/hosts and takes them away again.  Writes
    go to a temporary file in /etc renamed over /etc/hosts (atomic: a
    resolver never reads a half-written file), keeping mode and owner."""

    def __init__(self, entries, path=HOSTS):
        self.path, self.entries = path, entries
        self.tag = '%s pid=%d' % (MARK, os.getpid())
        self.original = self.written = None

    @staticmethod
    def _read(path):
        with open(path, 'rb') as f:
            return f.read()

    def _write(self, data):
        st = os.stat(self.path)
        fd, tmp = tempfile.mkstemp(prefix='.hosts.', dir=os.path.dirname(self.path))
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, st.st_mode & 0o7777)
            os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @staticmethod
    def _stale(line):
        """A marked line of a run whose process is gone."""
        if MARK.encode() not in line:
            return False
        try:
            pid = int(line.rsplit(b'pid=', 1)[1].split()[0])
            os.kill(pid, 0)
            return False
        except (IndexError, ValueError):
            return True
        except ProcessLookupError:
            return True
        except PermissionError:
            return False

    def add(self):
        data = self._read(self.path)
        lines = data.splitlines(keepends=True)
        stale = [ln for ln in lines if self._stale(ln)]
        if stale:
            note('removing %d stale line(s) of an earlier run from %s' % (len(stale), self.path))
            data = b''.join(ln for ln in lines if ln not in stale)
            self._write(data)
        self.original = data
        block = ''.join('%s %s %s\n' % (ip, name, self.tag) for ip, name in self.entries)
        sep = b'' if data.endswith(b'\n') or not data else b'\n'
        self.written = data + sep + block.encode()
        self._write(self.written)

    def remove(self):
        if self.original is None:
            return
        current = self._read(self.path)
        if current == self.written:
            restored = self.original        # byte for byte what we found
        else:                               # changed meanwhile: drop only our lines
            note('%s changed during the run: removing only our lines' % self.path)
            restored = b''.join(ln for ln in current.splitlines(keepends=True)
                                if self.tag.encode() not in ln)
        self._write(restored)
        self.original = None


# ---------------------------------------------------------------- servers

def subst(template, out, **kv):
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in kv.items():
        text = text.replace('@%s@' % k, str(v))
    with open(out, 'w') as f:
        f.write(text)


def openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, capture_output=True, timeout=60)


def make_cert(directory, domain, ca=None):
    """directory/domain.crt and .key: self-signed, or signed by ca (a
    TestCA) when given; the name is a DNS-ID (subjectAltName)."""
    crt, key = os.path.join(directory, domain + '.crt'), os.path.join(directory, domain + '.key')
    if ca is None:
        openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                '-subj', '/CN=' + domain, '-addext', 'subjectAltName=DNS:' + domain,
                '-keyout', key, '-out', crt)
        return crt, key
    csr, ext = os.path.join(directory, domain + '.csr'), os.path.join(directory, domain + '.ext')
    with open(ext, 'w') as f:
        f.write('subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' % domain)
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=' + domain,
            '-keyout', key, '-out', csr)
    openssl('x509', '-req', '-in', csr, '-CA', ca.crt, '-CAkey', ca.key, '-CAcreateserial',
            '-days', '2', '-out', crt, '-extfile', ext)
    return crt, key


class TestCA:
    """The CA of the second configuration (XEP-0178): it signs every
    server's certificate, and every server trusts it (and only it, as
    far as the test's names go)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='roost-s2s-interop-ca-')
        self.key, self.crt = (os.path.join(self.dir, 'testca' + s) for s in ('.key', '.crt'))
        openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                '-subj', '/CN=Roost interop test CA',
                '-addext', 'basicConstraints=critical,CA:TRUE',
                '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
                '-keyout', self.key, '-out', self.crt)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_tcp(addr, port, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestFailure('server exited with %s before listening on %s:%d'
                              % (proc.returncode, addr, port))
        try:
            socket.create_connection((addr, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TestFailure('%s:%d not accepting connections after %ss' % (addr, port, timeout))


def port_free(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class FedServer(rt.ServerUnderTest):
    """A server of one domain with a c2s STARTTLS port on 127.0.0.1 and an
    s2s listener on its own loopback address, port 5269.  With a ca
    (TestCA), its certificate comes from that CA, it trusts that CA and
    accepts only certificate-authenticated streams (XEP-0178)."""
    s2s_addr = None
    domain = None

    def __init__(self, users, domain, s2s_addr, ca=None):
        self.domain, self.s2s_addr, self.ca = domain, s2s_addr, ca
        super().__init__(users)

    def _spawn_wait(self, argv, env=None, cwd=None, timeout=30.0):
        self._log = open(os.path.join(self.dir, 'stdout.log'), 'ab')
        # Its own process group: a SIGKILL at the end reaches whatever it
        # started too (ejabberd's port programs).
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd or self.dir, env=env,
                                     start_new_session=True)
        wait_tcp('127.0.0.1', self.c2s_port, self.proc, timeout)
        wait_tcp(self.s2s_addr, S2S_PORT, self.proc, timeout)

    def stop(self):
        problems = []
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                problems.append('did not exit within 20 s of SIGTERM')
                self.kill()
        if self.proc is not None:
            rc = self.proc.returncode
            ok = (0,) if self.name == 'roost' else (0, -signal.SIGTERM, 128 + signal.SIGTERM)
            if rc not in ok:
                problems.append('exit status %s' % rc)
            self._log.close()
        return problems


    def kill(self):
        """SIGKILL to the server's process group (ours: start_new_session)."""
        if self.proc is None:
            return
        try:        # also when the leader is gone but a child it left is not
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


class RoostFed(FedServer):
    name = 'roost'

    def __init__(self, users, routes, ca=None):
        super().__init__(users, ROOST_DOMAIN, ROOST_ADDR, ca)
        self.routes = routes                  # domain -> address, port 5269
        self.c2s_port, self.tls_port = rt.free_ports(2)
        top = os.path.dirname(os.path.dirname(HERE))
        self.roostd = os.environ.get('ROOSTD', os.path.join(top, 'roostd'))
        self.roostctl = os.environ.get('ROOSTCTL', os.path.join(top, 'roostctl'))
        self.modules = os.path.abspath(os.environ.get(
            'ROOST_MODULES_DIR', os.path.join(top, 'modules', '.libs')))
        self.config = os.path.join(self.dir, 'roost.conf')

    def start(self):
        for exe in (self.roostd, self.roostctl):
            if not os.access(exe, os.X_OK):
                raise TestFailure('%s is not built' % exe)
        mods = ', '.join('"%s"' % m for m in ('disco', 'ping', 'version', 'message',
                                               'roster', 'presence'))
        routes = ',\n'.join('    { domain = "%s"; host = "%s"; port = %d; }' % (d, a, S2S_PORT)
                            for d, a in self.routes.items())
        os.makedirs(os.path.join(self.dir, 'data'), exist_ok=True)
        host_extra = s2s_extra = ''
        if self.ca is not None:
            # XEP-0178 only: secure_auth turns dialback off both ways.
            crt, key = make_cert(self.dir, self.domain, self.ca)
            host_extra = 'cert = "%s"; key = "%s"; ' % (crt, key)
            s2s_extra = '  ca_file = "%s";\n  secure_auth = true;\n' % self.ca.crt
        with open(self.config, 'w') as f:
            f.write('log_level = "debug";\n'
                    'data_dir = "%s";\n' % os.path.join(self.dir, 'data') +
                    'modules_dir = "%s";\n' % self.modules +
                    'storage = { driver = "sqlite"; path = "roost.db"; };\n'
                    'limits = { auth_fail_delay = 0.2; };\n'
                    's2s = {\n  require_encryption = true;\n  connect_timeout = 30;\n'
                    '%s  routes = (\n%s\n  );\n};\n' % (s2s_extra, routes) +
                    'listen = (\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "starttls"; },\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "direct"; },\n'
                    '  { address = "%s"; port = %d; type = "s2s"; }\n);\n'
                    % (self.c2s_port, self.tls_port, self.s2s_addr, S2S_PORT) +
                    'hosts = (\n  { domain = "%s"; %smodules = [ %s ]; }\n);\n'
                    % (self.domain, host_extra, mods))
        for jid, pw in self.users.items():
            r = subprocess.run([self.roostctl, '-c', self.config, 'adduser', jid, '--password', pw],
                               capture_output=True, timeout=30, cwd=self.dir)
            if r.returncode != 0:
                raise TestFailure('roostctl adduser %s: %s' % (jid, (r.stderr or r.stdout).decode()))
        self.logfile = os.path.join(self.dir, 'stdout.log')
        self._spawn_wait([self.roostd, '-c', self.config])

    def version(self):
        r = subprocess.run([self.roostd, '-V'], capture_output=True, timeout=10)
        return ' '.join((r.stdout or r.stderr).decode(errors='replace').split())


class ProsodyFed(FedServer):
    name = 'prosody'
    extra_modules = ''

    @staticmethod
    def available():
        return shutil.which('prosody') and shutil.which('prosodyctl')

    def start(self):
        certs = os.path.join(self.dir, 'certs')
        os.makedirs(certs)
        os.makedirs(os.path.join(self.dir, 'data'))
        make_cert(certs, self.domain, self.ca)
        self.config = os.path.join(self.dir, 'prosody.cfg.lua')
        self.logfile = os.path.join(self.dir, 'server.log')
        subst('s2s-prosody.cfg.lua.in', self.config, DIR=self.dir, C2S_PORT=self.c2s_port,
              S2S_ADDR=self.s2s_addr, DOMAIN=self.domain, EXTRA_MODULES=self.extra_modules,
              SECURE_AUTH='true' if self.ca else 'false',
              SSL_EXTRA='; cafile = "%s"' % self.ca.crt if self.ca else '')
        for jid, pw in self.users.items():
            user, host = jid.split('@')
            r = subprocess.run(['prosodyctl', '--config', self.config, 'register', user, host, pw],
                               capture_output=True, timeout=60, cwd=self.dir)
            if r.returncode != 0:
                raise TestFailure('prosodyctl register %s: %s'
                                  % (jid, r.stdout.decode() + r.stderr.decode()))
        self._spawn_wait(['prosody', '--config', self.config, '-F'])

    def stop(self):
        problems = super().stop()
        log = self.log_tail(1000000)
        errors = [ln for ln in log.splitlines() if '\terror\t' in ln]
        if errors:
            problems.append('log has errors: %s' % errors[:3])
        return problems

    @staticmethod
    def version():
        r = subprocess.run(['dpkg-query', '-W', '-f', '${Version}', 'prosody'],
                           capture_output=True, timeout=10)
        return 'Prosody (Debian package %s)' % r.stdout.decode()


class ProsodyBidiFed(ProsodyFed):
    """Prosody with mod_s2s_bidi (XEP-0288, in the Debian package)."""
    name = 'prosody-bidi'
    extra_modules = ', "s2s_bidi"'


class ProsodyPkixFed(ProsodyFed):
    """Prosody with a certificate from the test's CA, trusting it
    (ssl.cafile), s2s_secure_auth = true."""
    name = 'prosody-pkix'


class EjabberdFed(FedServer):
    name = 'ejabberd'

    @staticmethod
    def available():
        return shutil.which('erl') and os.path.isdir(EJABBERD_EBIN)

    def start(self):
        spool, logs = os.path.join(self.dir, 'spool'), os.path.join(self.dir, 'logs')
        os.makedirs(spool)
        os.makedirs(logs)
        crt, key = make_cert(self.dir, self.domain, self.ca)
        with open(os.path.join(self.dir, self.domain + '.pem'), 'w') as out:
            for p in (crt, key):
                with open(p) as f:
                    out.write(f.read())
        cfg = os.path.join(self.dir, 'ejabberd.yml')
        extra = ''
        if self.ca is not None:
            extra = 'ca_file: "%s"\ns2s_cafile: "%s"\n' % (self.ca.crt, self.ca.crt)
        subst('s2s-ejabberd.yml.in', cfg, DIR=self.dir, C2S_PORT=self.c2s_port,
              S2S_ADDR=self.s2s_addr, DOMAIN=self.domain, EXTRA_OPTIONS=extra)
        inetrc = os.path.join(self.dir, 'inetrc')
        with open(inetrc, 'w') as f:
            # Erlang's DNS client (SRV lookups): no resolv.conf, one dead
            # loopback name server: the lookup fails at once (econnrefused)
            # and ejabberd falls back to getaddrinfo(), i.e. /etc/hosts.
            f.write('{resolv_conf, "/dev/null"}.\n{nameserver, {127,0,0,1}, 9}.\n')
        self.logfile = os.path.join(logs, 'ejabberd.log')
        # What `ejabberdctl foreground` runs, minus the su to the ejabberd
        # user and the Erlang distribution (as bench/servers.sh does).
        env = dict(os.environ, ERL_LIBS='/usr/lib/x86_64-linux-gnu',
                   EJABBERD_CONFIG_PATH=cfg, EJABBERD_LOG_PATH=self.logfile,
                   ERL_CRASH_DUMP=os.path.join(logs, 'erl_crash.dump'),
                   ERL_INETRC=inetrc, ERL_MAX_PORTS='32000', ERL_MAX_ETS_TABLES='1400')
        self._spawn_wait(['erl', '+K', 'true', '+P', '250000', '-env', 'ERL_CRASH_DUMP_BYTES', '0',
                          '-mnesia', 'dir', '"%s"' % spool, '-s', 'ejabberd', '-noinput'],
                         env=env, cwd=spool, timeout=60)
        for jid, pw in self.users.items():
            self.register(jid, pw)

    def register(self, jid, pw):
        """XEP-0077 in-band registration over STARTTLS."""
        c = Client(self, jid, pw, name='register')
        try:
            c.connect()
            c.open_stream()
            c.starttls()
            user = jid.split('@')[0]
            r = c.iq("<iq type='set' id='reg1' to='%s'><query xmlns='jabber:iq:register'>"
                     "<username>%s</username><password>%s</password></query></iq>"
                     % (self.domain, user, pw))
            check(r.get('type') == 'result', 'registering %s: %s' % (jid, rt.to_string(r)))
        finally:
            c.close()

    def stop(self):
        problems = super().stop()
        log = self.log_tail(1000000)
        errors = [ln for ln in log.splitlines() if '[error]' in ln or '[critical]' in ln]
        if errors:
            problems.append('log has errors: %s' % errors[:3])
        return problems

    @staticmethod
    def version():
        r = subprocess.run(['dpkg-query', '-W', '-f', '${Version}', 'ejabberd', 'erlang-base'],
                           capture_output=True, timeout=10)
        return 'ejabberd (Debian package %s)' % r.stdout.decode()


class EjabberdPkixFed(EjabberdFed):
    """ejabberd with a certificate from the test's CA, trusting it
    (ca_file, s2s_cafile)."""
    name = 'ejabberd-pkix'


# ------------------------------------------------------------- helpers

def wait_for(c, pred, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: no %s within %ss; got %s' % (c.name, what, timeout, seen[-6:]))
        try:
            el = c.recv(timeout=left)
        except TestFailure as e:
            if 'nothing received' in str(e):
                continue
            raise
        if pred(el):
            return el
        seen.append(rt.to_string(el)[:300])


def bare(jid):
    return (jid or '').split('/', 1)[0]


def is_msg(mid):
    return lambda e: rt.tag(e) == 'message' and e.get('id') == mid


def is_presence(frm_bare, typ=None, status=None):
    """Presence of type typ (None: available) from a full JID of frm_bare."""
    def pred(e):
        return (rt.tag(e) == 'presence' and bare(e.get('from')) == frm_bare and
                '/' in (e.get('from') or '') and e.get('type') == typ and
                (status is None or e.findtext('{jabber:client}status') == status))
    return pred


def is_sub(frm_bare, typ):
    return lambda e: (rt.tag(e) == 'presence' and e.get('type') == typ and
                      e.get('from') == frm_bare)


def roster_item(c, contact):
    r = c.iq("<iq type='get' id='rg-%s'><query xmlns='%s'/></iq>" % (c.name, NS_ROSTER))
    check(r.get('type') == 'result', '%s: roster get: %s' % (c.name, rt.to_string(r)))
    for it in r.iter('{%s}item' % NS_ROSTER):
        if it.get('jid') == contact:
            return it
    return None


OPEN = []      # clients of the running test, closed after it whatever happens


def login(srv, jid, presence=True, status=None):
    c = Client(srv, jid, srv.users[jid], name=jid.split('@')[0])
    OPEN.append(c)
    c.login()
    # Fetch the roster first: an interested resource gets roster pushes
    # (RFC 6121 §2.1.6); then initial presence.
    r = c.iq("<iq type='get' id='r0'><query xmlns='%s'/></iq>" % NS_ROSTER)
    check(r.get('type') == 'result', '%s: roster get: %s' % (c.name, rt.to_string(r)))
    if presence:
        c.send('<presence>%s</presence>' % ('<status>%s</status>' % status if status else ''))
        # Wait for the echo of our initial presence: until the server has
        # handled it, a message to the bare JID finds no available resource
        # (Prosody, with mod_offline off, bounces it; a stream already up,
        # as with XEP-0288 bidi, makes that race easy to lose).  Whatever
        # else arrives meanwhile stays queued for the test.
        others = []
        while True:
            el = c.recv(timeout=WAIT)
            if rt.tag(el) == 'presence' and el.get('from') == c.full_jid:
                break
            others.append(el)
        c.parser.items[0:0] = others
    return c


# ------------------------------------------------------------------ tests
# Each test takes (roost, peer) and the per-peer user lists.

def _message(sender, receiver, to, mid, body):
    sender.send("<message to='%s' id='%s' type='chat'><body>%s</body></message>" % (to, mid, body))
    m = wait_for(receiver, is_msg(mid), 'message %s from %s' % (mid, sender.full_jid))
    check(m.get('from') == sender.full_jid, 'from is %s, not %s' % (m.get('from'), sender.full_jid))
    check(m.get('type') == 'chat', 'type %s: %s' % (m.get('type'), rt.to_string(m)))
    check(m.findtext('{jabber:client}body') == body, 'body: %s' % rt.to_string(m))


def message_roost_to_peer(roost, peer, ru, pu):
    """A chat message from a Roost user to the peer's user (bare JID)."""
    a = login(roost, ru[0])
    p = login(peer, pu[0])
    try:
        _message(a, p, pu[0], 'r2p-1', 'hallo \u00e4\u00f6\u00fc \u2603 from Roost')
    finally:
        a.close()
        p.close()


def message_peer_to_roost(roost, peer, ru, pu):
    """A chat message from the peer's user to a Roost user (bare JID),
    then the reply to the full JID it came from."""
    a = login(roost, ru[0])
    p = login(peer, pu[0])
    try:
        _message(p, a, ru[0], 'p2r-1', 'hej \u00e5 from %s' % peer.name)
        _message(a, p, p.full_jid, 'p2r-reply', 'reply to your full JID')
    finally:
        a.close()
        p.close()


def bidi_one_connection(roost, peer, ru, pu):
    """XEP-0288 (prosody-bidi only, run first): the peer opens the stream
    and asks for bidi; Roost verifies it by dialback and sends its reply
    on the peer's stream, never authenticating a stream of its own (its
    connection to the peer carries only the dialback verify request)."""
    a = login(roost, ru[1])
    p = login(peer, pu[1])
    try:
        _message(p, a, ru[1], 'bidi-1', 'first, from %s' % peer.name)
        _message(a, p, p.full_jid, 'bidi-2', 'back on the same stream')
    finally:
        a.close()
        p.close()
    log, dom = _log(roost), re.escape(peer.domain)
    check(re.search(r'\[s2sin:\w+ a\.test<-%s\] bidirectional \(XEP-0288\): stanzas to %s go '
                    r'on this stream' % (dom, dom), log),
          "Roost did not send on the peer's bidirectional stream (log)")
    check(not re.search(r'\[s2sout:\w+ a\.test->%s\] authenticated' % dom, log),
          'Roost authenticated a stream of its own to %s' % peer.domain)


def _subscribe_both(x, y):
    """x subscribes to y, y approves; then y to x, x approves (RFC 6121
    §3.1); both rosters end with subscription='both'; presence then flows
    both ways."""
    for s, t in ((x, y), (y, x)):
        s.send("<presence type='subscribe' to='%s'/>" % t.jid)
        wait_for(t, is_sub(s.jid, 'subscribe'), 'subscribe from %s' % s.jid)
        t.send("<presence type='subscribed' to='%s'/>" % s.jid)
        wait_for(s, is_sub(t.jid, 'subscribed'), 'subscribed from %s' % t.jid)
        # RFC 6121 §3.1.5: the contact's server sends the contact's
        # available presence to the new subscriber.
        wait_for(s, is_presence(t.jid), "%s's presence after subscribed" % t.jid)
    for s, t in ((x, y), (y, x)):
        deadline = time.monotonic() + 5
        while True:
            it = roster_item(s, t.jid)
            if it is not None and it.get('subscription') == 'both':
                break
            if time.monotonic() > deadline:
                raise TestFailure("%s's roster item for %s: %s" % (
                    s.jid, t.jid, rt.to_string(it) if it is not None else 'none'))
            time.sleep(0.2)


def _presence_visible(x, y, xsrv, ysrv):
    """Status updates each way; unavailable each way; the probe at the
    next login answered each way.  Returns the (possibly new) clients."""
    for s, t, st in ((x, y, 'busy at %s' % x.domain), (y, x, 'away at %s' % y.domain)):
        s.send('<presence><show>dnd</show><status>%s</status></presence>' % st)
        p = wait_for(t, is_presence(s.jid, status=st), 'presence update from %s' % s.jid)
        check(p.get('from') == s.full_jid, 'presence from %s, not %s' % (p.get('from'), s.full_jid))
        check(p.findtext('{jabber:client}show') == 'dnd', 'show: %s' % rt.to_string(p))
    # x goes: y sees unavailable; x comes back: its probe is answered by
    # y's server, and y sees x's new available presence.
    clients = [x, y]
    servers = (xsrv, ysrv)
    for i in (0, 1):
        s, t, ssrv = clients[i], clients[1 - i], servers[i]
        gone = s.full_jid
        s.close()
        u = wait_for(t, is_presence(s.jid, 'unavailable'), 'unavailable from %s' % s.jid)
        check(u.get('from') == gone, 'unavailable from %s, not %s' % (u.get('from'), gone))
        clients[i] = n = login(ssrv, s.jid, status='back %d' % i)
        wait_for(n, is_presence(t.jid), "%s's presence (answer to the probe from %s)"
                 % (t.jid, ssrv.domain))
        wait_for(t, is_presence(s.jid, status='back %d' % i), '%s back' % s.jid)
    x, y = clients
    return x, y


def subscription_roost_first(roost, peer, ru, pu):
    """The Roost user subscribes first, then the peer's user; presence
    visible both ways afterwards."""
    a = login(roost, ru[1])
    p = login(peer, pu[1])
    try:
        _subscribe_both(a, p)
        a, p = _presence_visible(a, p, roost, peer)
    finally:
        a.close()
        p.close()


def subscription_peer_first(roost, peer, ru, pu):
    """The peer's user subscribes first, then the Roost user; presence
    visible both ways afterwards."""
    a = login(roost, ru[2])
    p = login(peer, pu[2])
    try:
        _subscribe_both(p, a)
        p, a = _presence_visible(p, a, peer, roost)
    finally:
        a.close()
        p.close()


def _ping(c, server_domain):
    r = c.iq("<iq type='get' id='ping-%s' to='%s'><ping xmlns='%s'/></iq>"
             % (c.name, server_domain, NS_PING), timeout=WAIT)
    check(r.get('type') == 'result', 'ping to %s: %s' % (server_domain, rt.to_string(r)))
    check(r.get('from') == server_domain, 'ping answered from %s' % r.get('from'))


def ping_roost_to_peer(roost, peer, ru, pu):
    """A Roost user pings the peer server (XEP-0199 §4.3 c2s2s)."""
    a = login(roost, ru[0], presence=False)
    try:
        _ping(a, peer.domain)
    finally:
        a.close()


def ping_peer_to_roost(roost, peer, ru, pu):
    """The peer's user pings a.test."""
    p = login(peer, pu[0], presence=False)
    try:
        _ping(p, roost.domain)
    finally:
        p.close()


def _log(srv):
    with open(srv.logfile, errors='replace') as f:
        return f.read()


# What each server logs once a stream is up (the Debian versions named in
# the module doc), per direction: proof that the exchanges above went over
# TLS-protected s2s streams authenticated by dialback, to the addresses
# /etc/hosts gave.
EVIDENCE = {
    'roost': [('a.test->%(peer)s stream authenticated by dialback',
               r'\[s2sout:\w+ a\.test->%(peer)s\] authenticated \(dialback\)'),
              ('%(peer)s->a.test stream verified by dialback',
               r'\[s2sin:\w+ a\.test<-%(peer)s\] verified %(peer)s by dialback')],
    'prosody': [('a.test found through /etc/hosts',
                 r'Results for a\.test IN A: 1 items'),
                ('incoming stream from a.test encrypted',
                 r'(s2sin\w+)\tinfo\tStream encrypted \(TLS'),
                ('outgoing stream to a.test encrypted',
                 r'(s2sout\w+)\tinfo\tStream encrypted \(TLS'),
                ('p.test sent its dialback key to a.test',
                 r'(s2sout\w+)\tdebug\tsent dialback key on outgoing s2s stream'),
                ('outgoing stream to a.test authenticated',
                 r'info\tOutgoing s2s connection p\.test->a\.test complete'),
                ('incoming stream from a.test authenticated',
                 r'info\tIncoming s2s connection a\.test->p\.test complete')],
    # XEP-0288: Prosody opens the first stream (bidi_one_connection) and
    # asks for bidi; Roost then sends on it and authenticates none of its
    # own (checked there).
    ('roost', 'prosody-bidi'): [
        ('%(peer)s->a.test stream verified by dialback',
         r'\[s2sin:\w+ a\.test<-%(peer)s\] verified %(peer)s by dialback'),
        ('a.test sending on the bidirectional stream of %(peer)s',
         r'\[s2sin:\w+ a\.test<-%(peer)s\] bidirectional \(XEP-0288\)')],
    'prosody-bidi': [('incoming stream from a.test encrypted (dialback verify)',
                      r'(s2sin\w+)\tinfo\tStream encrypted \(TLS'),
                     ('outgoing stream to a.test encrypted',
                      r'(s2sout\w+)\tinfo\tStream encrypted \(TLS'),
                     ('bidi asked for on the outgoing stream to a.test',
                      r'(s2sout\w+)\tdebug\tRequesting bidirectional stream'),
                     ('outgoing stream to a.test authenticated',
                      r'info\tOutgoing s2s connection pb\.test->a\.test complete')],
    'ejabberd': [('incoming stream from a.test authenticated by dialback over TLS',
                  r'\(tls\|[^)]*\) Accepted inbound s2s dialback authentication a\.test -> e\.test'),
                 ('outgoing stream to a.test (127.0.0.2, from /etc/hosts) authenticated by '
                  'dialback over TLS',
                  r'\(tls\|[^)]*\) Accepted outbound s2s dialback authentication '
                  r'e\.test -> a\.test \(127\.0\.0\.2\)')],
}


def streams_tls_dialback(roost, peer, ru, pu):
    """The streams of the tests above, both ways, were TLS-protected and
    authenticated by dialback (read from both servers' logs)."""
    missing = []
    for srv in (roost, peer):
        log = _log(srv)
        for what, pattern in EVIDENCE.get((srv.name, peer.name), EVIDENCE[srv.name]):
            if not re.search(pattern % {'peer': re.escape(peer.domain)}, log):
                missing.append('%s log: no sign of %s' % (srv.name, what % {'peer': peer.domain}))
    check(not missing, '; '.join(missing))


# The second configuration: every stream authenticated with SASL
# EXTERNAL (XEP-0178), in each direction; none by dialback.  Roost logs
# "[s2sout:.. a.test->X] authenticated (SASL EXTERNAL)" when X accepted
# its certificate and "[s2sin:.. a.test<-X] authenticated X (SASL
# EXTERNAL)" when it accepted X's.
EVIDENCE_EXTERNAL = {
    'roost': [('a.test->%(peer)s stream authenticated with SASL EXTERNAL',
               r'\[s2sout:\w+ a\.test->%(peer)s\] authenticated \(SASL EXTERNAL\)'),
              ('%(peer)s->a.test stream authenticated with SASL EXTERNAL',
               r'\[s2sin:\w+ a\.test<-%(peer)s\] authenticated %(peer)s \(SASL EXTERNAL\)')],
    'prosody-pkix': [('a.test\'s certificate valid for a.test (incoming stream)',
                      r'(s2sin\w+)\tdebug\tcertificate identity validation result: valid'),
                     ('SASL EXTERNAL from a.test accepted',
                      r'info\tAccepting SASL EXTERNAL identity from a\.test'),
                     ('SASL EXTERNAL to a.test succeeded',
                      r'debug\tSASL EXTERNAL with a\.test succeeded'),
                     ('outgoing stream to a.test authenticated',
                      r'info\tOutgoing s2s connection ps\.test->a\.test complete'),
                     ('incoming stream from a.test authenticated',
                      r'info\tIncoming s2s connection a\.test->ps\.test complete')],
    'ejabberd-pkix': [('incoming stream from a.test authenticated with SASL EXTERNAL over TLS',
                       r'\(tls\|[^)]*\) Accepted inbound s2s EXTERNAL authentication '
                       r'a\.test -> es\.test'),
                      ('a.test offering EXTERNAL after STARTTLS',
                       r"Received XML on stream = [^\n]*<stream:features><mechanisms "
                       r"xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL<"),
                      ('outgoing stream to a.test (127.0.0.2, from /etc/hosts) authenticated '
                       'with SASL EXTERNAL over TLS',
                       r'\(tls\|[^)]*\) Accepted outbound s2s EXTERNAL authentication '
                       r'es\.test -> a\.test \(127\.0\.0\.2\)')],
}
# ... and no sign of dialback (Roost's secure_auth turns it off: it
# neither offers nor accepts it, nor falls back to it; ejabberd logs the
# features Roost offers it: EXTERNAL (above) and no dialback).
NO_DIALBACK = {
    'roost': [r'\[s2s(?:in|out):\w+ a\.test(?:<-|->)%(peer)s\] [^\n]*dialback'],
    'prosody-pkix': [r'dialback key|Initiating dialback|falling back to dialback'],
    'ejabberd-pkix': [r's2s dialback authentication',
                      r'Received XML on stream = [^\n]*<stream:features>'
                      r'[^\n]*urn:xmpp:features:dialback'],
}


def streams_sasl_external(roost, peer, ru, pu):
    """The streams of the tests above, both ways, were authenticated with
    SASL EXTERNAL (XEP-0178), not dialback (read from both servers'
    logs)."""
    missing = []
    for srv in (roost, peer):
        log = _log(srv)
        args = {'peer': re.escape(peer.domain)}
        for what, pattern in EVIDENCE_EXTERNAL[srv.name]:
            if not re.search(pattern % args, log):
                missing.append('%s log: no sign of %s' % (srv.name, what % {'peer': peer.domain}))
        for pattern in NO_DIALBACK[srv.name]:
            m = re.search(pattern % args, log)
            if m:
                missing.append('%s log: dialback: %s' % (srv.name, m.group(0)[-300:]))
    check(not missing, '; '.join(missing))


TESTS = [message_roost_to_peer, message_peer_to_roost, subscription_roost_first,
         subscription_peer_first, ping_roost_to_peer, ping_peer_to_roost,
         streams_tls_dialback]
TESTS_PKIX = TESTS[:-1] + [streams_sasl_external]
PEER_CLASSES = {'prosody': ProsodyFed, 'ejabberd': EjabberdFed,
                'prosody-bidi': ProsodyBidiFed, 'prosody-pkix': ProsodyPkixFed,
                'ejabberd-pkix': EjabberdPkixFed}


# ------------------------------------------------------------------ main

class Counts:
    passed = failed = skipped = 0


def s2s_lines(srv, n=40, width=700):
    """The last n s2s-related entries of a server's log, for a failure
    report (an entry is a line with a timestamp and its continuation
    lines: ejabberd's are multi-line)."""
    try:
        with open(srv.logfile, errors='replace') as f:
            lines = f.read().splitlines()
    except (OSError, TypeError):
        return '(no log)'
    entries = []
    for ln in lines:
        if re.match(r'(\d{4}-\d\d-\d\d[ T]|[A-Z][a-z]{2} [ \d]\d )', ln) or not entries:
            entries.append(ln)
        else:
            entries[-1] += ' ' + ln.strip()
    keys = ('s2s', 'dialback', 'EXTERNAL', 'a.test') + tuple(d for _, d in PEERS.values())
    sel = [e if len(e) <= width else e[:width] + '...' for e in entries
           if any(k in e for k in keys)]
    return '\n'.join(sel[-n:]) + '\n'


def run_peer(name, roost, counts, args):
    addr, domain = PEERS[name]
    ru, pu = (list(u) for u in USERS[name])
    peer = PEER_CLASSES[name](USERS[name][1], domain, addr, roost.ca)
    tests = TESTS_PKIX if name in PKIX_PEERS else TESTS
    note('%s: %s, files in %s' % (name, peer.version(), peer.dir))
    ok = False
    try:                # whatever happens (SIGTERM too), the peer is killed
        t0 = time.monotonic()
        try:
            peer.start()
        except (TestFailure, OSError, subprocess.SubprocessError) as e:
            print('FAIL s2s-interop:%s:start: %s' % (name, e), flush=True)
            print(peer.log_tail(40))
            counts.failed += 1
            return
        note('%s started in %.1f s' % (name, time.monotonic() - t0))
        ok = True
        for t in ([bidi_one_connection] if name == 'prosody-bidi' else []) + tests:
            if args.only and t.__name__ not in args.only:
                continue
            t0 = time.monotonic()
            try:
                t(roost, peer, ru, pu)
                print('PASS s2s-interop:%s:%s (%.1f s)' % (name, t.__name__,
                                                           time.monotonic() - t0), flush=True)
                counts.passed += 1
            except (TestFailure, OSError) as e:
                print('FAIL s2s-interop:%s:%s: %s' % (name, t.__name__, e), flush=True)
                counts.failed += 1
                ok = False
                print('    --- roost s2s log lines ---\n' + s2s_lines(roost))
                print('    --- %s s2s log lines ---\n' % name + s2s_lines(peer))
            finally:
                while OPEN:
                    OPEN.pop().close()
            for s in (roost, peer):
                if s.proc is None or s.proc.poll() is not None:
                    print('FAIL s2s-interop:%s: %s is not running after %s'
                          % (name, s.name, t.__name__), flush=True)
                    counts.failed += 1
                    ok = False
                    return
        problems = peer.stop()
        if problems:
            print('FAIL s2s-interop:%s:clean-shutdown: %s' % (name, '; '.join(problems)), flush=True)
            counts.failed += 1
            ok = False
        else:
            print('PASS s2s-interop:%s:clean-shutdown' % name, flush=True)
            counts.passed += 1
    finally:
        peer.kill()
        if ok and not args.keep:
            peer.cleanup()
        else:
            note('(%s files kept in %s)' % (name, peer.dir))


def run_roost(peers, ca, counts, args):
    """One configuration: a roostd (a.test) federating with peers, which
    run one after another; with a ca (TestCA), Roost and the peers use
    certificates from it and SASL EXTERNAL only (s2s.secure_auth)."""
    ru_all = {}
    for p in peers:
        ru_all.update(USERS[p][0])
    roost = RoostFed(ru_all, {PEERS[p][1]: PEERS[p][0] for p in peers}, ca)
    label = 'roost-pkix' if ca else 'roost'
    failed = counts.failed
    try:
        note('%s: %s (%s)' % (label, roost.version(), roost.roostd))
        try:
            roost.start()
        except (TestFailure, OSError, subprocess.SubprocessError) as e:
            print(roost.log_tail(40))
            raise TestFailure('%s-start: %s' % (label, e))
        for p in peers:
            run_peer(p, roost, counts, args)
        problems = roost.stop()
        if problems:
            print('FAIL s2s-interop:%s-clean-shutdown: %s' % (label, '; '.join(problems)))
            print(roost.log_tail(40))
            counts.failed += 1
        else:
            print('PASS s2s-interop:%s-clean-shutdown' % label)
            counts.passed += 1
    finally:
        roost.kill()
        if counts.failed > failed or args.keep:
            note('(%s files kept in %s)' % (label, roost.dir))
        else:
            roost.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--peer', action='append', choices=sorted(PEERS),
                    help='run against this peer only (repeatable)')
    ap.add_argument('--only', action='append', help='run only this test (repeatable)')
    ap.add_argument('--keep', action='store_true', help='keep the servers\' files')
    args = ap.parse_args()
    peers = args.peer or ['prosody', 'ejabberd', 'prosody-bidi'] + list(PKIX_PEERS)
    counts = Counts()

    present = [p for p in peers if PEER_CLASSES[p].available()]
    for p in peers:
        if p not in present:
            print('SKIP s2s-interop:%s: not installed' % p)
            counts.skipped += len(TESTS_PKIX if p in PKIX_PEERS else TESTS) + 1
    if not present:
        print('%d passed, %d failed, %d skipped' % (0, 0, counts.skipped))
        return 77
    if os.geteuid() != 0:
        print('FAIL s2s-interop:setup: must run as root (edits %s)' % HOSTS)
        print('0 passed, 1 failed')
        return 1

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    lock = open(LOCK, 'w')
    note('waiting for %s (one run at a time)' % LOCK)
    fcntl.flock(lock, fcntl.LOCK_EX)
    busy = [(a, S2S_PORT) for a in [ROOST_ADDR] + [PEERS[p][0] for p in present]
            if not port_free(a, S2S_PORT)]
    if busy:
        print('FAIL s2s-interop:setup: already in use: %s' % busy)
        print('0 passed, 1 failed')
        return 1

    hosts = HostsEntries([(ROOST_ADDR, ROOST_DOMAIN)] + [PEERS[p] for p in present])
    atexit.register(hosts.remove)
    ca = None
    started = time.monotonic()
    try:
        hosts.add()
        for addr, d in [(ROOST_ADDR, ROOST_DOMAIN)] + [PEERS[p] for p in present]:
            got = socket.gethostbyname(d)
            check(got == addr, '%s resolves to %s, not %s, after editing %s' % (d, got, addr, HOSTS))
        # First STARTTLS + dialback (self-signed certificates), then a
        # fresh roostd with the test CA's certificates and SASL EXTERNAL.
        plain = [p for p in present if p not in PKIX_PEERS]
        pkix = [p for p in present if p in PKIX_PEERS]
        if plain:
            run_roost(plain, None, counts, args)
        if pkix:
            ca = TestCA()
            run_roost(pkix, ca, counts, args)
    except (TestFailure, OSError, subprocess.SubprocessError) as e:
        print('FAIL s2s-interop:setup: %s' % e, flush=True)
        counts.failed += 1
    except SystemExit:
        print('FAIL s2s-interop:interrupted by a signal', flush=True)
        print('%d passed, %d failed, %d skipped' % (counts.passed, counts.failed + 1,
                                                    counts.skipped), flush=True)
        raise
    finally:
        hosts.remove()
        if ca is not None:
            if counts.failed or args.keep:
                note('(test CA kept in %s)' % ca.dir)
            else:
                ca.cleanup()
        lock.close()
    note('run time %.1f s' % (time.monotonic() - started))
    print('%d passed, %d failed, %d skipped' % (counts.passed, counts.failed, counts.skipped))
    return 1 if counts.failed else 0


if __name__ == '__main__':
    sys.exit(main())
