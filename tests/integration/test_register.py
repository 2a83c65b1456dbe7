"""In-band registration (XEP-0077, mod_register) over real sockets:
creating accounts before authentication (§3.1), the throttle, and
cancelling an account (§3.2) with what goes with it (sessions closed,
subscriptions cancelled, stored data purged).

The server has two vhosts with mod_register and mod_offline: localhost
with `register = { allow_registration = true; registration_throttle = 1;
};`, example.test with the defaults (registration off, throttle 60 s).

    python3 test_register.py                   # roostd
    python3 test_register.py --server prosody  # the portable tests against
                                               # Debian's Prosody

Roost is started with the modules of ROOST_MODULES_DIR (mod_register.so,
mod_offline.so and the usual ones).  Prints 'N passed, N failed'.
"""
import argparse
import os
import re
import socket
import sqlite3
import sys
import time
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'remy@localhost': 'remy-Secret-7',
         'olga@localhost': 'olga-Secret-8',
         'dave@example.test': 'dave-Secret-1'}
NS_REG = 'jabber:iq:register'
NS_REG_FEATURE = 'http://jabber.org/features/iq-register'
NS_ROSTER = 'jabber:iq:roster'
THROTTLE = 1.0      # registration_throttle on localhost, seconds


def _add_modules(conf, names):
    for name in names:
        conf, n = re.subn(r'modules = \[([^\]]*)\]',
                          lambda mo: mo.group(0) if '"%s"' % name in mo.group(1)
                          else 'modules = [%s, "%s" ]' % (mo.group(1).rstrip(), name),
                          conf)
        check(n == len(rt.DOMAINS), 'could not rewrite the module lists')
    return conf


class RegisterRoost(rt.Roost):
    """localhost allows registration (throttle 1 s); example.test has the
    defaults."""
    tag = 'register'

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = _add_modules(f.read(), ('register', 'offline'))
        old = '{ domain = "localhost"; '
        check(old in conf, 'could not find localhost in the test config')
        # The tests connect from 127.0.0.1, which is not throttled by
        # default (registration_throttle_loopback, as Prosody's
        # registration_whitelist): throttle it here.
        conf = conf.replace(old, old + 'register = { allow_registration = true; '
                            'registration_throttle = %g; '
                            'registration_throttle_loopback = true; }; ' % THROTTLE)
        with open(self.config, 'w') as f:
            f.write(conf)

    def rows_of(self, user, host='localhost'):
        """{table/store: rows} stored for user@host, every table with a
        'user' column (reads the sqlite file)."""
        db = sqlite3.connect('file:%s?mode=ro' % os.path.join(self.dir, 'data', 'roost.db'),
                             uri=True, timeout=5)
        out = {}
        try:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")]
            for t in tables:
                cols = [r[1] for r in db.execute('PRAGMA table_info(%s)' % t)]
                if 'user' not in cols:
                    continue
                hostcond = ' AND host=?' if 'host' in cols else ''
                args = (user, host) if hostcond else (user,)
                if 'store' in cols:
                    q = 'SELECT store, count(*) FROM %s WHERE user=?%s GROUP BY store' % (t, hostcond)
                    for store, n in db.execute(q, args):
                        out['%s/%s' % (t, store)] = n
                else:
                    n = db.execute('SELECT count(*) FROM %s WHERE user=?%s' % (t, hostcond),
                                   args).fetchone()[0]
                    if n:
                        out[t] = n
        finally:
            db.close()
        return out


class RegisterProsody(rt.Prosody):
    """Debian's Prosody with mod_register and mod_offline; localhost
    allows registration (its mod_register_limits exempts 127.0.0.1, so no
    throttle applies)."""
    tag = 'register'

    def start(self):
        orig = self._spawn

        def spawn(argv, env=None):
            with open(self.config) as f:
                conf = f.read()
            check('"posix"' in conf, 'could not find the module list')
            conf = conf.replace('"posix"', '"posix", "register", "offline"', 1)
            conf = conf.replace('modules_disabled = { "offline", ', 'modules_disabled = { ')
            conf = conf.replace('VirtualHost "localhost"\n',
                                'VirtualHost "localhost"\n  allow_registration = true\n')
            with open(self.config, 'w') as f:
                f.write(conf)
            orig(argv, env)
        self._spawn = spawn
        super().start()


# ------------------------------------------------------------- helpers

def want_result(r, what):
    check(r.get('type') == 'result', '%s: %s' % (what, rt.to_string(r)))
    return r


def want_error(r, cond, what, etype=None):
    check(r.get('type') == 'error' and rt.error_condition(r) == cond,
          '%s: want <%s/>, got %s' % (what, cond, rt.to_string(r)))
    if etype is not None:
        e = r.find('{jabber:client}error')
        check(e is not None and e.get('type') == etype,
              '%s: error type %r, want %r' % (what, e.get('type') if e is not None else None,
                                              etype))
    return r


def preauth(srv, domain='localhost', source=None):
    """A connection to domain, after STARTTLS, not authenticated.  source:
    the local address to connect from (another client IP)."""
    c = Client(srv, 'nobody@%s' % domain, 'x', name='preauth')
    if source is None:
        c.connect()
    else:
        c.sock = socket.create_connection(('127.0.0.1', srv.c2s_port), timeout=rt.TIMEOUT,
                                          source_address=(source, 0))
    c.open_stream()
    c.starttls()
    return c


def reg_set(c, inner, iid):
    return c.iq("<iq type='set' id='%s'><query xmlns='%s'>%s</query></iq>"
                % (iid, NS_REG, inner), timeout=5)


def reg_new(c, user, password, iid):
    return reg_set(c, '<username>%s</username><password>%s</password>'
                   % (escape(user), escape(password)), iid)


def can_login(srv, jid, password, mech=None):
    c = Client(srv, jid, password, name=jid.split('@')[0])
    try:
        c.login(mech=mech)
        return True
    except rt.AuthFailed:
        return False
    finally:
        c.close()


def wait_throttle(srv):
    """Lets the previous successful registration from 127.0.0.1 leave the
    throttle period (Prosody exempts localhost)."""
    if srv.name == 'roost':
        time.sleep(THROTTLE + 0.2)


def is_presence(el, frm, ptype=None):
    return rt.tag(el) == 'presence' and el.get('from') == frm and el.get('type') == ptype


def wait_for(c, pred, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: %s not received' % (c.name, what))
        el = c.recv(timeout=left)
        if pred(el):
            return el


def online(srv, jid, resource='res'):
    c = Client(srv, jid, USERS[jid], name=jid.split('@')[0]).login(resource=resource)
    r = c.iq("<iq type='get' id='roster0'><query xmlns='%s'/></iq>" % NS_ROSTER)
    want_result(r, 'roster get')
    c.send('<presence/>')
    wait_for(c, lambda el: is_presence(el, c.full_jid), 'presence echo')
    return c


def subscribe(a, b):
    """a asks for b's presence, b approves (RFC 6121 §3.1)."""
    a.send("<presence to='%s' type='subscribe'/>" % a_bare(b))
    wait_for(b, lambda el: is_presence(el, a_bare(a), 'subscribe'),
             'subscription request from %s' % a_bare(a))
    b.send("<presence to='%s' type='subscribed'/>" % a_bare(a))
    wait_for(a, lambda el: is_presence(el, a_bare(b), 'subscribed'),
             'subscription approval from %s' % a_bare(b))


def a_bare(c):
    return c.full_jid.split('/', 1)[0]


def roster_item(c, jid, iid):
    r = want_result(c.iq("<iq type='get' id='%s'><query xmlns='%s'/></iq>" % (iid, NS_ROSTER)),
                    'roster get')
    for it in r.iter('{%s}item' % NS_ROSTER):
        if it.get('jid') == jid:
            return it
    return None


# --------------------------------------------------------------- tests

def disabled_by_default(srv):
    """example.test has the defaults: no <register/> stream feature
    (§4), the form and a registration are refused with
    <service-unavailable/> (§3.1: a host that does not support In-Band
    Registration MUST), no account is created, and the stream stays
    usable: the client logs in on it afterwards."""
    c = preauth(srv, 'example.test')
    try:
        check(c.features.find('{%s}register' % NS_REG_FEATURE) is None,
              'register feature offered: %s' % rt.to_string(c.features))
        want_error(c.iq("<iq type='get' id='g1'><query xmlns='%s'/></iq>" % NS_REG, timeout=5),
                   'service-unavailable', 'form')
        want_error(reg_new(c, 'newbie', 'newbie-Pass-1', 's1'), 'service-unavailable',
                   'registration')
        c.auth(username='dave', password=USERS['dave@example.test'])
        c.bind('after')
        check(c.full_jid == 'dave@example.test/after', 'bound %s' % c.full_jid)
    finally:
        c.close()
    check(not can_login(srv, 'newbie@example.test', 'newbie-Pass-1'), 'account was created')


def register_then_login(srv):
    """§3.1 on localhost: <register/> is offered after STARTTLS (and not
    before, nor after authentication); the form has <instructions/>,
    <username/> and <password/>; the registration succeeds and the new
    account logs in with SCRAM on the same stream (the bootstrap of
    §3.1.1), and then on new connections with either SCRAM."""
    c = Client(srv, 'nobody@localhost', 'x', name='preauth')
    c.connect()
    c.open_stream()
    check(c.features.find('{%s}register' % NS_REG_FEATURE) is None,
          'register feature offered before TLS: %s' % rt.to_string(c.features))
    c.starttls()
    try:
        check(c.features.find('{%s}register' % NS_REG_FEATURE) is not None,
              'register feature missing: %s' % rt.to_string(c.features))
        r = want_result(c.iq("<iq type='get' id='g1'><query xmlns='%s'/></iq>" % NS_REG,
                             timeout=5), 'form')
        q = r.find('{%s}query' % NS_REG)
        check(q is not None and q.find('{%s}username' % NS_REG) is not None and
              q.find('{%s}password' % NS_REG) is not None and
              (q.findtext('{%s}instructions' % NS_REG) or '').strip() and
              q.find('{%s}registered' % NS_REG) is None, 'form: %s' % rt.to_string(r))
        wait_throttle(srv)
        want_result(reg_new(c, 'Newbie', 'newbie-P\u00e4ss-1', 's1'), 'registration')
        c.auth(mech='SCRAM-SHA-256', username='newbie', password='newbie-P\u00e4ss-1')
        check(c.features.find('{%s}register' % NS_REG_FEATURE) is None,
              'register feature offered after authentication')
        c.bind('first')
        check(c.full_jid == 'newbie@localhost/first', 'bound %s' % c.full_jid)
    finally:
        c.close()
    for mech in ('SCRAM-SHA-1', 'SCRAM-SHA-256'):
        check(can_login(srv, 'newbie@localhost', 'newbie-P\u00e4ss-1', mech),
              'new account cannot log in (%s)' % mech)
    check(not can_login(srv, 'newbie@localhost', 'wrong-Pass-1'), 'any password works')


def conflict(srv):
    """§3.1: a name in use, also spelled in another case (the username is
    nodeprepped), is <conflict/>; the existing password stays."""
    c = preauth(srv)
    try:
        wait_throttle(srv)
        want_error(reg_new(c, 'alice', 'taken-Pass-1', 'c1'), 'conflict', 'existing name')
        want_error(reg_new(c, 'ALICE', 'taken-Pass-2', 'c2'), 'conflict', 'same name, upper case')
    finally:
        c.close()
    check(can_login(srv, 'alice@localhost', USERS['alice@localhost']), 'alice changed')
    check(not can_login(srv, 'alice@localhost', 'taken-Pass-1'), 'alice overwritten')


def not_acceptable(srv):
    """§3.1: a username that is no valid localpart (a space, an '@', too
    long), a missing or empty username or password (<password/> and
    <password></password> included) are <not-acceptable/>; nothing is
    created and the stream stays open."""
    c = preauth(srv)
    try:
        wait_throttle(srv)
        for iid, inner in (('n1', '<username>bad user</username><password>p-Pass-1</password>'),
                           ('n2', '<username>a@b</username><password>p-Pass-1</password>'),
                           ('n3', '<username>%s</username><password>p-Pass-1</password>'
                            % ('x' * 1100)),
                           ('n4', '<username/><password>p-Pass-1</password>'),
                           ('n5', '<password>p-Pass-1</password>'),
                           ('n6', '<username>okname</username>'),
                           ('n7', '<username>okname</username><password/>'),
                           ('n8', '<username>okname</username><password></password>')):
            want_error(reg_set(c, inner, iid), 'not-acceptable', iid)
        r = reg_new(c, 'okname', 'ok-Pass-1', 'n9')
        want_result(r, 'a good registration after the refused ones')
    finally:
        c.close()
    check(can_login(srv, 'okname@localhost', 'ok-Pass-1'), 'okname cannot log in')


def throttle(srv):
    """registration_throttle: a second successful registration from the
    same IP within the period is refused (<policy-violation/> of type
    wait, as Prosody's mod_register_limits) and creates nothing, on the
    same stream or another one; another IP (127.0.0.2) is not limited;
    after the period the same IP registers again."""
    wait_throttle(srv)
    c = preauth(srv)
    d = preauth(srv)
    try:
        want_result(reg_new(c, 'thr1', 'thr-Pass-1', 't1'), 'first')
        r = want_error(reg_new(c, 'thr2', 'thr-Pass-2', 't2'), 'policy-violation',
                       'second, same stream', etype='wait')
        check(r.findtext('{jabber:client}error/{%s}text' % rt.NS_STANZA_ERR),
              'no text: %s' % rt.to_string(r))
        want_error(reg_new(d, 'thr2', 'thr-Pass-2', 't3'), 'policy-violation',
                   'second, other stream', etype='wait')
        e = preauth(srv, source='127.0.0.2')
        try:
            want_result(reg_new(e, 'thr3', 'thr-Pass-3', 't4'), 'from another IP')
        finally:
            e.close()
        check(not can_login(srv, 'thr2@localhost', 'thr-Pass-2'), 'throttled account created')
        time.sleep(THROTTLE + 0.2)
        want_result(reg_new(d, 'thr2', 'thr-Pass-2', 't5'), 'after the period')
    finally:
        c.close()
        d.close()
    for jid, pw in (('thr1@localhost', 'thr-Pass-1'), ('thr2@localhost', 'thr-Pass-2'),
                    ('thr3@localhost', 'thr-Pass-3')):
        check(can_login(srv, jid, pw), '%s cannot log in' % jid)


def client_gone(srv):
    """A client that sends its registration and disconnects at once: the
    server answers nobody, stays up (the session it answers later is
    gone), and the account exists."""
    wait_throttle(srv)
    c = preauth(srv)
    c.send("<iq type='set' id='g1'><query xmlns='%s'><username>gone</username>"
           "<password>gone-Pass-1</password></query></iq>" % NS_REG)
    c.sock.close()
    c.sock = None
    deadline = time.monotonic() + 5
    while not can_login(srv, 'gone@localhost', 'gone-Pass-1'):
        check(time.monotonic() < deadline, 'the account was not created')
        time.sleep(0.2)


def preauth_remove(srv):
    """§3.2 before authentication: <remove/> from an entity that is not
    logged in is <registration-required/> (as Prosody)."""
    c = preauth(srv)
    try:
        want_error(reg_set(c, '<remove/>', 'r1'), 'registration-required', 'remove')
    finally:
        c.close()


def password_change(srv):
    """§3.3 for an account registered in-band: the new password works,
    the old one no longer."""
    wait_throttle(srv)
    c = preauth(srv)
    try:
        want_result(reg_new(c, 'pwchange', 'old-Pass-1', 'p1'), 'registration')
        c.auth(username='pwchange', password='old-Pass-1')
        c.bind('pw')
        want_result(reg_set(c, '<username>pwchange</username><password>new-Pass-2</password>',
                            'p2'), 'password change')
    finally:
        c.close()
    check(can_login(srv, 'pwchange@localhost', 'new-Pass-2'), 'new password refused')
    check(not can_login(srv, 'pwchange@localhost', 'old-Pass-1'), 'old password works')


def removal(srv):
    """§3.2: remy (subscribed both ways with bob, two resources, one
    available) removes the account: the result reaches the requester,
    then both of its streams end with <not-authorized/>; bob gets
    unsubscribe, unsubscribed and unavailable from remy, and his roster
    item for remy has subscription 'none'; remy cannot log in again and
    nothing of remy is left in the database."""
    b = online(srv, 'bob@localhost', 'desk')
    r = online(srv, 'remy@localhost', 'phone')
    r2 = Client(srv, 'remy@localhost', USERS['remy@localhost'], name='remy2').login(
        resource='tablet')
    try:
        subscribe(r, b)
        subscribe(b, r)
        item = roster_item(b, 'remy@localhost', 'b1')
        check(item is not None and item.get('subscription') == 'both',
              'not subscribed both ways: %s' % (rt.to_string(item) if item is not None else None))
        if srv.name == 'roost':
            # Roster writes are write-behind (group commit): wait for them.
            deadline = time.monotonic() + 5
            while not srv.rows_of('remy') and time.monotonic() < deadline:
                time.sleep(0.02)
            check(srv.rows_of('remy'), 'test bug: nothing stored for remy before')
        r.send("<iq type='set' id='rm1'><query xmlns='%s'><remove/></query></iq>" % NS_REG)
        el = r.recv()
        while rt.tag(el) != 'iq' or el.get('id') != 'rm1':
            check(el.tag != '{%s}error' % rt.NS_STREAM,
                  'stream error before the result: %s' % rt.to_string(el))
            el = r.recv()
        want_result(el, 'remove')
        cond = r.expect_stream_error()
        check(cond == 'not-authorized', 'requester: stream error %s' % cond)
        cond = r2.expect_stream_error()
        check(cond == 'not-authorized', 'other resource: stream error %s' % cond)
        want = {'unsubscribe': 'remy@localhost', 'unsubscribed': 'remy@localhost',
                'unavailable': 'remy@localhost/phone'}
        got = {}
        deadline = time.monotonic() + 5
        while set(got) != set(want) and time.monotonic() < deadline:
            try:
                el = b.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TestFailure:
                break
            if rt.tag(el) == 'presence' and el.get('type') in want:
                got.setdefault(el.get('type'), el.get('from'))
        check(got == want, 'bob got %r, want %r' % (got, want))
        item = roster_item(b, 'remy@localhost', 'b2')
        check(item is None or item.get('subscription') == 'none',
              'bob still subscribed: %s' % rt.to_string(item))
    finally:
        for c in (b, r, r2):
            c.close()
    check(not can_login(srv, 'remy@localhost', USERS['remy@localhost']), 'remy still logs in')
    if srv.name == 'roost':
        left = srv.rows_of('remy')
        deadline = time.monotonic() + 3
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = srv.rows_of('remy')
        check(not left, 'left in the database for remy: %r' % left)


def removal_purges_offline(srv):
    """§3.2: olga has an offline message stored (and a vCard); she logs in
    without presence (so nothing is delivered), removes the account, and
    nothing of hers is left in the database (checked before: the message
    was stored).  A message sent to her afterwards is not stored."""
    a = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='alice').login()
    try:
        a.send("<message to='olga@localhost' type='chat' id='m1'><body>for olga</body></message>")
        a.iq("<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        o = Client(srv, 'olga@localhost', USERS['olga@localhost'], name='olga').login()
        try:
            want_result(o.iq("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Olga</FN>"
                             "</vCard></iq>"), 'vCard set')
            if srv.name == 'roost':
                rows = srv.rows_of('olga')
                check(rows.get('archive/offline'), 'test bug: no offline message stored: %r'
                      % rows)
            want_result(reg_set(o, '<remove/>', 'rm2'), 'remove')
            check(o.expect_stream_error() == 'not-authorized', 'stream error')
        finally:
            o.close()
        # To an account that no longer exists: an error, nothing stored.
        a.send("<message to='olga@localhost' type='chat' id='m2'><body>too late</body></message>")
        el = wait_for(a, lambda el: rt.tag(el) == 'message' and el.get('id') == 'm2', 'bounce')
        check(el.get('type') == 'error', 'message to the removed account: %s'
              % rt.to_string(el))
    finally:
        a.close()
    if srv.name == 'roost':
        time.sleep(0.3)
        left = srv.rows_of('olga')
        check(not left, 'left in the database for olga: %r' % left)
    check(not can_login(srv, 'olga@localhost', USERS['olga@localhost']), 'olga still logs in')


def log_has_no_password(srv):
    log = srv.log_tail(1000000)
    check('newbie-P' not in log and 'thr-Pass' not in log and 'new-Pass-2' not in log,
          'a password is in the log')
    check('account newbie registered from 127.0.0.1' in log, 'registration not logged')
    check('remy removed their account' in log, 'removal not logged')


# ----------------------------------------------------------------- run

PORTABLE = [register_then_login, conflict, client_gone, preauth_remove,
            password_change, removal, removal_purges_offline,
            disabled_by_default]
TESTS = [disabled_by_default, register_then_login, conflict, not_acceptable, throttle,
         client_gone, preauth_remove, password_change, removal,
         removal_purges_offline, log_has_no_password]


def run(cls, tests):
    passed = failed = 0
    srv = cls(USERS)
    try:
        srv.start()
    except TestFailure as e:
        print('FAIL start: %s' % e)
        return 0, 1
    try:
        for t in tests:
            try:
                t(srv)
                print('PASS %s:%s' % (srv.name, t.__name__))
                passed += 1
            except (TestFailure, OSError) as e:
                print('FAIL %s:%s: %s' % (srv.name, t.__name__, e))
                failed += 1
            if srv.proc is None or srv.proc.poll() is not None:
                print('FAIL %s:%s: server not running afterwards' % (srv.name, t.__name__))
                print(srv.log_tail(40))
                failed += 1
                break
        problems = srv.stop()
        if problems:
            print('FAIL %s:server-clean-shutdown: %s' % (srv.name, '; '.join(problems)))
            print(srv.log_tail(40))
            failed += 1
        else:
            print('PASS %s:server-clean-shutdown' % srv.name)
            passed += 1
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        if not failed:
            srv.cleanup()
        else:
            print('    (server files kept in %s)' % srv.dir)
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--server', choices=('roost', 'prosody'), default='roost')
    ap.add_argument('tests', nargs='*', help='run only these tests')
    args = ap.parse_args()
    tests = TESTS if args.server == 'roost' else PORTABLE
    if args.tests:
        tests = [t for t in TESTS if t.__name__ in args.tests]
    p, f = run(RegisterRoost if args.server == 'roost' else RegisterProsody, tests)
    print('%d passed, %d failed' % (p, f))
    return 1 if f else 0


if __name__ == '__main__':
    sys.exit(main())
