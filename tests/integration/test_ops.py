"""Operations safety of roostd (issue 6): the privilege drop after binding
(HOUSE rule 20) and SIGHUP (certificates and keys reloaded without
dropping connections, log file reopened, config re-read: log_level and
certificate paths applied, the rest logged as needing a restart, a broken
certificate or config never taking the server down).

The privilege tests need root (as in CI) and drop to `nobody`; as another
user they are skipped and the SIGHUP tests run without a drop.  Prosody
is not a reference here: these are process-level behaviours, not XMPP.
Prints 'N passed, N failed'.
"""
import hashlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'carol@localhost': 'carol-Secret-1234',
         'dave@example.test': 'dave-Secret-1'}
DROP_USER = 'nobody'
IS_ROOT = os.geteuid() == 0


def drop_ids():
    pw = pwd.getpwnam(DROP_USER)
    return pw.pw_uid, pw.pw_gid


def make_cert(path_prefix, cn='localhost'):
    """A new self-signed P-256 pair path_prefix.crt/.key via openssl;
    returns the SHA-256 of the certificate's DER."""
    crt, key = path_prefix + '.crt', path_prefix + '.key'
    r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec',
                        '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                        '-keyout', key, '-out', crt, '-days', '2',
                        '-subj', '/CN=%s' % cn,
                        '-addext', 'subjectAltName=DNS:%s' % cn],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, 'openssl req: %s' % r.stderr.decode())
    if IS_ROOT:      # the server reads them after dropping to nobody
        uid, gid = drop_ids()
        os.chown(crt, uid, gid)
        os.chown(key, uid, gid)
    return fingerprint_file(crt)


def fingerprint_file(crt):
    with open(crt) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def peer_fingerprint(c):
    return hashlib.sha256(c.sock.getpeercert(binary_form=True)).hexdigest()


def proc_ids(status_path):
    """{'Uid': [r, e, s, fs], 'Gid': [...], 'Groups': [...]} of a task."""
    out = {}
    with open(status_path) as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('Uid', 'Gid', 'Groups'):
                out[k] = [int(x) for x in v.split()]
    return out


def log_text(srv):
    try:
        with open(srv.logfile, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def wait_log(srv, needle, after, timeout=10.0):
    """Wait until needle appears in the log past offset after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_text(srv)[after:]
        if needle in text:
            return text
        time.sleep(0.05)
    raise TestFailure('no %r in the log within %ss' % (needle, timeout))


def hup(srv):
    """kill -HUP and wait for the reload to finish; returns the log lines
    written since."""
    mark = len(log_text(srv))
    srv.proc.send_signal(signal.SIGHUP)
    return wait_log(srv, 'reload finished', mark)


def login(srv, jid, direct_tls=False):
    return Client(srv, jid, USERS[jid], name=jid.split('@')[0]).login(direct_tls=direct_tls)


def sync(c):
    r = c.iq("<iq type='get' id='sync%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
             % (int(time.monotonic() * 1000), c.domain))
    check(r.get('type') == 'result', '%s: ping: %s' % (c.name, rt.to_string(r)))


def next_message(c, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: no message arrived' % c.name)
        el = c.recv(timeout=left)
        if rt.tag(el) == 'message':
            return el


def exchange(a, b, tag):
    """a and b send each other a message and both receive it."""
    a.send("<message to='%s' id='%s-1' type='chat'><body>%s</body></message>"
           % (b.full_jid, tag, tag))
    m = next_message(b)
    check(m.findtext('{jabber:client}body') == tag, '%s: got %s' % (b.name, rt.to_string(m)))
    b.send("<message to='%s' id='%s-2' type='chat'><body>%s back</body></message>"
           % (a.full_jid, tag, tag))
    m = next_message(a)
    check(m.findtext('{jabber:client}body') == tag + ' back',
          '%s: got %s' % (a.name, rt.to_string(m)))


# ------------------------------------------------------ privilege drop

class DroppedRoost(rt.Roost):
    """The usual two vhosts with mod_offline, started as root with
    user = "nobody".  The temp dir is made traversable for nobody."""
    extra_modules = ('offline',)

    def write_config(self):
        super().write_config()
        os.chmod(self.dir, 0o755)
        with open(self.config) as f:
            conf = f.read()
        with open(self.config, 'w') as f:
            f.write('user = "%s";\n' % DROP_USER + conf)


def ids_dropped(srv):
    """Every thread of roostd runs with real, effective, saved and fs uid
    and gid of nobody, and nobody's group as the only supplementary one."""
    uid, gid = drop_ids()
    tasks = os.listdir('/proc/%d/task' % srv.proc.pid)
    check(len(tasks) > 1, 'expected worker threads, found %d task(s)' % len(tasks))
    for t in tasks:
        ids = proc_ids('/proc/%d/task/%s/status' % (srv.proc.pid, t))
        check(ids['Uid'] == [uid] * 4, 'task %s: Uid %s, want %d' % (t, ids['Uid'], uid))
        check(ids['Gid'] == [gid] * 4, 'task %s: Gid %s, want %d' % (t, ids['Gid'], gid))
        check(ids['Groups'] == [gid], 'task %s: Groups %s, want [%d]' % (t, ids['Groups'], gid))
    check('running as %s' % DROP_USER in log_text(srv), 'no "running as" log line')


def files_handed_over(srv):
    """The data directory and the SQLite files root created (roostctl
    adduser ran as root before the start) now belong to nobody."""
    uid, _ = drop_ids()
    data = os.path.join(srv.dir, 'data')
    for name in ('', 'roost.db', 'roost.db-wal', 'roost.db-shm',
                 'certs/localhost.key'):
        p = os.path.join(data, name)
        if name.endswith(('-wal', '-shm')) and not os.path.exists(p):
            continue
        st = os.lstat(p)
        check(st.st_uid == uid, '%s owned by uid %d, want %d' % (p, st.st_uid, uid))


def serves_and_stores(srv):
    """As nobody: logins work, a message to an offline user is stored,
    and after a restart (dropping again) it is delivered."""
    alice = login(srv, 'alice@localhost')
    try:
        alice.send("<message to='bob@localhost' id='off1' type='chat'>"
                   "<body>while you were out</body></message>")
        sync(alice)
    finally:
        alice.close()
    problems = srv.stop()
    check(not problems, 'SIGTERM: %s' % '; '.join(problems))
    srv.restart()
    uid, _ = drop_ids()
    check(proc_ids('/proc/%d/status' % srv.proc.pid)['Uid'] == [uid] * 4,
          'not dropped after the restart')
    bob = login(srv, 'bob@localhost')
    try:
        bob.send('<presence/>')
        m = next_message(bob)
        check(m.findtext('{jabber:client}body') == 'while you were out',
              'bob got %s' % rt.to_string(m))
    finally:
        bob.close()


def run_failing(conf_extra, prefix_argv=(), data_owner=None, listen=None):
    """roostd on a fresh config with conf_extra on top; must exit on its
    own.  listen replaces the single c2s listener (a libconfig list body,
    %(port)d for a free port).  Returns (exit status, output)."""
    d = tempfile.mkdtemp(prefix='roosttest-ops-fail-')
    try:
        os.chmod(d, 0o755)
        port, = rt.free_ports(1)
        top = os.path.dirname(os.path.dirname(HERE))
        roostd = os.environ.get('ROOSTD', os.path.join(top, 'roostd'))
        mods = os.path.abspath(os.environ.get('ROOST_MODULES_DIR',
                                              os.path.join(top, 'modules', '.libs')))
        os.makedirs(os.path.join(d, 'data'))
        if data_owner is not None:
            os.chown(os.path.join(d, 'data'), *data_owner)
        conf = os.path.join(d, 'roost.conf')
        if listen is None:
            listen = '{ address = "127.0.0.1"; port = %(port)d; type = "c2s"; }'
        with open(conf, 'w') as f:
            f.write(conf_extra + '\nlog_level = "debug";\ndata_dir = "data";\n'
                    'modules_dir = "%s";\n'
                    'listen = ( %s );\n'
                    'hosts = ( { domain = "localhost"; modules = [ "ping" ]; } );\n'
                    % (mods, listen % {'port': port}))
        try:
            r = subprocess.run(list(prefix_argv) + [roostd, '-c', conf],
                               stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=15, cwd=d)
        except subprocess.TimeoutExpired:
            raise TestFailure('roostd kept running')
        return r.returncode, (r.stdout + r.stderr).decode(errors='replace')
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unknown_user_fatal(_=None):
    """user = a name that does not exist: roostd exits non-zero naming
    it, before binding anything (never 'ready')."""
    rc, out = run_failing('user = "roost-no-such-user-4711";')
    check(rc != 0, 'exit status %d' % rc)
    check('roost-no-such-user-4711' in out, 'the error does not name the user: %s' % out)
    check('ready' not in out and 'listening' not in out, 'it got as far as serving:\n%s' % out)


def unknown_group_fatal(_=None):
    """group = a name that does not exist: the same."""
    rc, out = run_failing('user = "%s"; group = "roost-no-such-group-4711";' % DROP_USER)
    check(rc != 0, 'exit status %d' % rc)
    check('roost-no-such-group-4711' in out, 'the error does not name the group: %s' % out)
    check('ready' not in out and 'listening' not in out, 'it got as far as serving:\n%s' % out)


def drop_refused_fatal(_=None):
    """Started as nobody with user = "daemon": setgroups fails (EPERM)
    and roostd exits non-zero before its event loop ('ready')."""
    uid, gid = drop_ids()
    rc, out = run_failing('user = "daemon";',
                          ['setpriv', '--reuid=%d' % uid, '--regid=%d' % gid,
                           '--clear-groups'], data_owner=(uid, gid))
    check(rc != 0, 'exit status %d' % rc)
    check('cannot drop privileges to daemon' in out, 'no drop error in: %s' % out)
    check('ready' not in out, 'it served anyway:\n%s' % out)


def listen_failures(_=None):
    """A listener that cannot bind (port taken by another socket, for each
    kind c2s / s2s / component) or whose address is not numeric (the
    config check refuses it): roostd exits non-zero naming the address
    (and port and kind), never 'ready'."""
    for kind in ('c2s', 's2s', 'component'):
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            taken.bind(('127.0.0.1', 0))
            taken.listen(1)
            busy = taken.getsockname()[1]
            extra = ('components = ( { domain = "gw.localhost"; secret = "s"; } );'
                     if kind == 'component' else '')
            rc, out = run_failing(
                extra,
                listen='{ address = "127.0.0.1"; port = %%(port)d; type = "c2s"; },'
                       ' { address = "127.0.0.1"; port = %d; type = "%s"; }'
                       % (busy, kind))
        finally:
            taken.close()
        check(rc != 0, '%s: exit status %d' % (kind, rc))
        want = 'cannot listen on 127.0.0.1 port %d (%s)' % (busy, kind)
        check(want in out, '%s: no "%s" in:\n%s' % (kind, want, out))
        check(' ready (' not in out, '%s: it served anyway:\n%s' % (kind, out))
    rc, out = run_failing('', listen='{ address = "not-an-address"; port = %(port)d;'
                                     ' type = "c2s"; }')
    check(rc != 0, 'bad address: exit status %d' % rc)
    check("must be a numeric IPv4 or IPv6 address, not 'not-an-address'" in out,
          'bad address not named:\n%s' % out)
    check(' ready (' not in out, 'bad address: it served anyway:\n%s' % out)


# ------------------------------------------------------------- SIGHUP

class ReloadRoost(rt.Roost):
    """localhost with its own certificate pair (certs/localhost.*, made
    with openssl), example.test with a generated one; log_level info and
    a log file inside data_dir (which is where srv.logfile points, so the
    harness's log checks read it).  As root it also drops to nobody, so
    the reload is tested as it runs in production."""

    def __init__(self, users):
        super().__init__(users)
        self.certs = os.path.join(self.dir, 'certs')
        self.logfile = os.path.join(self.dir, 'data', 'roost.log')
        self.port2, = rt.free_ports(1)
        self.fp_a = self.fp_b = None    # set by write_config, the first test

    def base_config(self):
        with open(self.config) as f:
            return f.read()

    def write_config(self):
        super().write_config()
        os.chmod(self.dir, 0o755)
        os.makedirs(self.certs, exist_ok=True)
        if IS_ROOT:
            os.chown(self.certs, *drop_ids())
        self.fp_a = make_cert(os.path.join(self.certs, 'localhost'))
        conf = self.base_config()
        conf = conf.replace('log_level = "debug";',
                            'log_level = "info";\nlog_file = "roost.log";')
        old = '{ domain = "localhost"; '
        check(old in conf, 'could not find localhost in the test config')
        conf = conf.replace(old, old + 'cert = "certs/localhost.crt"; '
                            'key = "certs/localhost.key"; ')
        if IS_ROOT:
            conf = 'user = "%s";\n' % DROP_USER + conf
        check('log_file' in conf, 'could not rewrite the test config')
        self.conf_text = conf
        with open(self.config, 'w') as f:
            f.write(conf)

    def set_config(self, text):
        tmp = self.config + '.new'
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, self.config)


def replace_pair(srv, prefix, dest='localhost'):
    """A new pair made next to the live one and renamed over it (as
    certbot and acme tools do); returns its fingerprint."""
    fp = make_cert(os.path.join(srv.certs, prefix))
    for ext in ('.crt', '.key'):
        os.replace(os.path.join(srv.certs, prefix + ext),
                   os.path.join(srv.certs, dest + ext))
    return fp


def tls_reload_keeps_connections(srv):
    """Certificate A is served; the pair is replaced by B and roostd gets
    SIGHUP: new connections (STARTTLS and direct TLS with SNI) get B, the
    connection opened before still works and still holds A."""
    old = login(srv, 'alice@localhost')
    try:
        check(peer_fingerprint(old) == srv.fp_a, 'not served certificate A at first')
        fp_b = srv.fp_b = replace_pair(srv, 'b')
        lines = hup(srv)
        check('replaced' in lines, 'no "replaced" in the reload log:\n%s' % lines)
        new = login(srv, 'bob@localhost')
        direct = login(srv, 'carol@localhost', direct_tls=True)
        try:
            check(peer_fingerprint(new) == fp_b, 'STARTTLS after the reload: not certificate B')
            check(peer_fingerprint(direct) == fp_b, 'direct TLS after the reload: not certificate B')
            check(peer_fingerprint(old) == srv.fp_a, 'the old connection changed certificate?')
            exchange(old, new, 'across-reload')
            sync(old)
        finally:
            new.close()
            direct.close()
    finally:
        old.close()


def broken_cert_keeps_old(srv):
    """A broken certificate file, then a key that does not match the
    certificate: each SIGHUP logs the error and the server goes on
    serving B; an open connection is not touched."""
    keep = login(srv, 'alice@localhost')
    crt = os.path.join(srv.certs, 'localhost.crt')
    key = os.path.join(srv.certs, 'localhost.key')
    with open(crt) as f:
        good_crt = f.read()
    with open(key) as f:
        good_key = f.read()
    try:
        with open(crt, 'w') as f:
            f.write('-----BEGIN CERTIFICATE-----\nnot base64 at all\n'
                    '-----END CERTIFICATE-----\n')
        lines = hup(srv)
        check('keeping the certificate in use' in lines,
              'no error for the broken certificate:\n%s' % lines)
        c = login(srv, 'bob@localhost')
        check(peer_fingerprint(c) == srv.fp_b, 'not served B after a broken certificate')
        c.close()
        # Certificate B with the key of a fresh pair C.
        make_cert(os.path.join(srv.certs, 'c'))
        with open(crt, 'w') as f:
            f.write(good_crt)
        os.replace(os.path.join(srv.certs, 'c.key'), key)
        lines = hup(srv)
        check('does not match' in lines and 'keeping the certificate in use' in lines,
              'no mismatch error:\n%s' % lines)
        c = login(srv, 'bob@localhost', direct_tls=True)
        check(peer_fingerprint(c) == srv.fp_b, 'not served B after a mismatched key')
        c.close()
        sync(keep)
    finally:
        keep.close()
        with open(key, 'w') as f:
            f.write(good_key)


def cert_path_change(srv):
    """cert/key paths of a host changed in the config are applied on
    SIGHUP."""
    fp_d = make_cert(os.path.join(srv.certs, 'd'))
    conf = srv.conf_text.replace('cert = "certs/localhost.crt"; key = "certs/localhost.key";',
                                 'cert = "certs/d.crt"; key = "certs/d.key";')
    check(conf != srv.conf_text, 'could not rewrite the cert paths')
    srv.set_config(conf)
    try:
        lines = hup(srv)
        check('certs/d.crt replaced' in lines, 'new path not loaded:\n%s' % lines)
        check('needs a restart' not in lines, 'a cert path change asked for a restart:\n%s' % lines)
        c = login(srv, 'alice@localhost')
        check(peer_fingerprint(c) == fp_d, 'not served the certificate of the new path')
        c.close()
    finally:
        srv.set_config(srv.conf_text)
        hup(srv)
    c = login(srv, 'alice@localhost')
    check(peer_fingerprint(c) == srv.fp_b, 'not back to B after restoring the config')
    c.close()


def debug_lines_since(srv, mark):
    return [ln for ln in log_text(srv)[mark:].splitlines() if ' debug ' in ln[:32]]


def log_level_reload(srv):
    """log_level info -> debug -> info through SIGHUP: debug lines of a
    login appear only while the config says debug."""
    mark = len(log_text(srv))
    login(srv, 'alice@localhost').close()
    check(not debug_lines_since(srv, mark), 'debug lines at log_level info')
    srv.set_config(srv.conf_text.replace('log_level = "info";', 'log_level = "debug";'))
    lines = hup(srv)
    check('log_level info -> debug' in lines, 'no log_level change logged:\n%s' % lines)
    mark = len(log_text(srv))
    login(srv, 'alice@localhost').close()
    time.sleep(0.2)
    check(debug_lines_since(srv, mark), 'no debug lines after switching to debug')
    srv.set_config(srv.conf_text)
    lines = hup(srv)
    check('log_level debug -> info' in lines, 'no log_level change back logged:\n%s' % lines)
    mark = len(log_text(srv))
    login(srv, 'alice@localhost').close()
    time.sleep(0.2)
    check(not debug_lines_since(srv, mark), 'debug lines after switching back to info')


def restart_needed_logged(srv):
    """A changed listen port, a new host, a new storage path and changed
    module options are logged as needing a restart and not applied: the
    old port still serves, the new one is not opened."""
    conf = srv.conf_text.replace('port = %d;' % srv.c2s_port, 'port = %d;' % srv.port2)
    conf = conf.replace('path = "roost.db";', 'path = "other.db";')
    end = conf.rindex('\n);')       # the end of hosts = ( ... )
    conf = conf[:end] + ',\n  { domain = "added.test"; modules = [ "ping" ]; }' + conf[end:]
    # s2s settings (the s2s group is added: the test config has none)
    conf += '\ns2s = { bidi = false; peers = ( { domain = "old.example"; bidi = true; } ); };\n'
    # module options: a top-level group (every host) and one in a host
    conf += '\nvcard = { max_size = 8192; };\n'
    old = '{ domain = "example.test"; '
    conf = conf.replace(old, old + 'vcard = { max_size = 4096; }; ')
    check(conf.count('added.test') == 1 and 'other.db' in conf and str(srv.port2) in conf
          and 'max_size = 4096' in conf, 'could not rewrite the config')
    srv.set_config(conf)
    try:
        lines = hup(srv)
        for what in ('listen (new listener 127.0.0.1 port %d)' % srv.port2,
                     'listen (listener 127.0.0.1 port %d removed)' % srv.c2s_port,
                     'hosts (added.test added)', 'storage.path',
                     'hosts (localhost: vcard options)', 's2s.bidi', 's2s.peers',
                     'hosts (example.test: vcard options)'):
            check('%s changed: not applied, needs a restart' % what in lines,
                  'no restart notice for %s:\n%s' % (what, lines))
        check('ping options' not in lines,
              'unchanged module options reported:\n%s' % lines)
        try:
            socket.create_connection(('127.0.0.1', srv.port2), timeout=1).close()
            raise TestFailure('the new port was opened without a restart')
        except OSError:
            pass
        login(srv, 'alice@localhost').close()
    finally:
        srv.set_config(srv.conf_text)
        lines = hup(srv)
    check('needs a restart' not in lines, 'restart notices with the running config:\n%s' % lines)


def broken_config_keeps_running(srv):
    """A config file with a syntax error: SIGHUP logs it, keeps the
    running configuration and certificates, and the server serves on."""
    srv.set_config(srv.conf_text + '\nthis is = not a config\n')
    try:
        lines = hup(srv)
        check('keeping the running configuration' in lines, 'no error logged:\n%s' % lines)
        check('roost.conf:' in lines, 'the error has no file:line:\n%s' % lines)
        c = login(srv, 'alice@localhost', direct_tls=True)
        check(peer_fingerprint(c) == srv.fp_b, 'certificate changed after a broken config')
        c.close()
    finally:
        srv.set_config(srv.conf_text)
    hup(srv)


def log_reopen(srv):
    """Log rotation: the log file is renamed, SIGHUP makes roostd write to
    a new file at the configured path (created by the dropped user when
    running as root); the old file gets nothing more."""
    rotated = srv.logfile + '.1'
    os.rename(srv.logfile, rotated)
    srv.proc.send_signal(signal.SIGHUP)
    wait_log(srv, 'reload finished', 0)
    with open(rotated, errors='replace') as f:
        old = f.read()
    check('SIGHUP: reloading' in old.rstrip().splitlines()[-1],
          'the old file does not end at the reopen:\n%s' % old[-500:])
    if IS_ROOT:
        check(os.stat(srv.logfile).st_uid == drop_ids()[0], 'new log file not owned by nobody')
    login(srv, 'alice@localhost').close()
    with open(rotated, errors='replace') as f:
        check(f.read() == old, 'the rotated file is still written')


def main():
    passed = failed = 0
    groups = []
    if IS_ROOT:
        groups.append((DroppedRoost, [ids_dropped, files_handed_over, serves_and_stores]))
    else:
        print('SKIP ops:privileges (needs root)')
    groups.append((ReloadRoost, [tls_reload_keeps_connections, broken_cert_keeps_old,
                                 cert_path_change, log_level_reload,
                                 restart_needed_logged, broken_config_keeps_running,
                                 log_reopen]))
    for cls, tests in groups:
        p, f = rt.run_group(cls, USERS, tests, 'ops')
        passed += p
        failed += f
    singles = [listen_failures]
    if IS_ROOT:
        singles += [unknown_user_fatal, unknown_group_fatal]
        if shutil.which('setpriv'):
            singles.append(drop_refused_fatal)
    for t in singles:
        try:
            t()
            print('PASS ops:%s' % t.__name__)
            passed += 1
        except (TestFailure, OSError) as e:
            print('FAIL ops:%s: %s' % (t.__name__, e))
            failed += 1
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
