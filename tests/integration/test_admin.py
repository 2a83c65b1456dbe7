"""Administration of subscriptions: roostctl roster / subscribers /
subscriptions / roster-add / roster-del, and XEP-0133 add-user,
delete-user, change-user-password and get-user-roster over XEP-0050 ad-hoc
commands (mod_admin_adhoc), and the XEP-0133 counts and lists
(get-registered-users-num, get-online-users-num, get-registered-users-list,
get-online-users-list).

The roster state is made over XMPP by a real subscription handshake
(mod_presence): alice and bob subscribe to each other (both), alice asks
carol who does not answer (alice: none + ask; carol: a hidden item with
pending-in), dave subscribes to alice and she approves (alice: from;
dave: to).  Account discovery: admin@localhost is account/admin, alice's
account is discoverable by her subscribers only, with jabber:iq:last.
Then, with alice online, admin@localhost reads her roster with
get-user-roster, bob is refused.  The admin adds an account (which can
then log in) and deletes one that is online (its stream ends with
<not-authorized/>, its contact is unsubscribed, it cannot log in again);
bob may do neither; roostd is stopped and roostctl reads and
edits the same rosters; roostd is started again and alice sees the edits
(and the version changed, XEP-0237), and the admin reads the stored
rosters of accounts that have not logged in since (get-user-roster of an
offline account).

    python3 test_admin.py

Roost is started with the modules of ROOST_MODULES_DIR (mod_admin_adhoc.so
must be there).  The tests build on each other and run in order.  Prints 'N passed, N failed'.
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'admin@localhost': 'admin-Secret-1',
         'alice@localhost': 'alice-Secret-2',
         'bob@localhost': 'bob-Secret-3',
         'carol@localhost': 'carol-Secret-4',
         'dave@localhost': 'dave-Secret-5',
         'frank@localhost': 'frank-Secret-6',
         'erin@example.test': 'erin-Secret-7',
         'gina@localhost': 'gina-Secret-8',
         'hank@localhost': 'hank-Secret-9',
         'other@localhost': 'other-Secret-10'}
NS_ROSTER = 'jabber:iq:roster'
NS_CMD = 'http://jabber.org/protocol/commands'
NS_ADMIN = 'http://jabber.org/protocol/admin'
NS_XDATA = 'jabber:x:data'
NS_ITEMS = 'http://jabber.org/protocol/disco#items'
NS_INFO = 'http://jabber.org/protocol/disco#info'
NODE_ROSTER = NS_ADMIN + '#get-user-roster'
NODE_ADD = NS_ADMIN + '#add-user'
NODE_DEL = NS_ADMIN + '#delete-user'
NODE_PASSWD = NS_ADMIN + '#change-user-password'
NODE_REG_NUM = NS_ADMIN + '#get-registered-users-num'
NODE_ONLINE_NUM = NS_ADMIN + '#get-online-users-num'
NODE_REG_LIST = NS_ADMIN + '#get-registered-users-list'
NODE_ONLINE_LIST = NS_ADMIN + '#get-online-users-list'


class AdminRoost(rt.Roost):
    """The usual two vhosts plus mod_admin_adhoc; admin@localhost is the
    admin of localhost.  Can be stopped and started again on the same
    data directory."""

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        conf, n = re.subn(r'modules = \[([^\]]*)\]',
                          lambda mo: 'modules = [%s, "admin_adhoc" ]' % mo.group(1).rstrip(),
                          conf)
        check(n == len(rt.DOMAINS), 'could not rewrite the module lists')
        old = '{ domain = "localhost"; '
        check(old in conf, 'could not find localhost in the test config')
        # admin@localhost is an admin through the host's list only (the
        # core's roost_host_is_admin); the module's own list names someone
        # else, in a spelling that must be prepared.
        conf = conf.replace(old, old + 'admins = [ "admin@localhost" ]; '
                            'admin_adhoc = { admins = [ "Other@LocalHost" ]; }; ')
        with open(self.config, 'w') as f:
            f.write(conf)

    def halt(self):
        """Clean stop (SIGTERM), keeping the data; returns problems."""
        problems = rt.ServerUnderTest.stop(self)
        self.proc = None
        return problems

    def restart(self):
        self._spawn([self.roostd, '-c', self.config])


# ------------------------------------------------------------- helpers

def ctl(srv, *args):
    r = subprocess.run([srv.roostctl, '-c', srv.config] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, cwd=srv.dir)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def ctl_roster(srv, jid):
    """roostctl roster: {contact: (sub, flags, name, [groups])}."""
    rc, out, err = ctl(srv, 'roster', jid)
    check(rc == 0, 'roster %s: rc %d %s' % (jid, rc, err))
    items = {}
    for line in out.splitlines():
        f = line.split('\t')
        check(len(f) >= 4, 'roster %s: bad line %r' % (jid, line))
        items[f[0]] = (f[1], f[2], f[3], f[4:])
    return items


def login(srv, jid, presence=True):
    c = Client(srv, jid, USERS[jid], name=jid.split('@')[0]).login()
    r = c.iq("<iq type='get' id='r0'><query xmlns='%s'/></iq>" % NS_ROSTER)
    check(r.get('type') == 'result', '%s: roster get: %s' % (jid, rt.to_string(r)))
    if presence:
        c.send('<presence/>')
    return c


def wait_presence(c, frm, ptype, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: no presence %s from %s' % (c.name, ptype, frm))
        el = c.recv(timeout=left)
        if rt.tag(el) == 'presence' and el.get('type') == ptype and \
                (el.get('from') or '').split('/')[0] == frm:
            return el


def roster_items(c, ver=None):
    """(items {jid: element}, ver, empty result?) of a roster get."""
    attr = " ver='%s'" % ver if ver is not None else ''
    r = c.iq("<iq type='get' id='rg%d'><query xmlns='%s'%s/></iq>"
             % (int(time.monotonic() * 1e6), NS_ROSTER, attr))
    check(r.get('type') == 'result', '%s: roster get: %s' % (c.name, rt.to_string(r)))
    q = r.find('{%s}query' % NS_ROSTER)
    if q is None:
        return {}, None, True
    return {i.get('jid'): i for i in q.findall('{%s}item' % NS_ROSTER)}, q.get('ver'), False


def command(c, xml_inner, node=NODE_ROSTER, sid=None, action=None, to='localhost'):
    attrs = " node='%s'" % node
    if sid:
        attrs += " sessionid='%s'" % sid
    if action:
        attrs += " action='%s'" % action
    return c.iq("<iq type='set' id='c%d' to='%s'><command xmlns='%s'%s>%s</command></iq>"
                % (int(time.monotonic() * 1e6), to, NS_CMD, attrs, xml_inner))


def submit(jid, var='accountjids'):
    return ("<x xmlns='%s' type='submit'><field type='hidden' var='FORM_TYPE'>"
            "<value>%s</value></field><field var='%s'><value>%s</value></field></x>"
            % (NS_XDATA, NS_ADMIN, var, jid))


def form(*fields):
    """A submitted admin form: fields are (var, value or [values])."""
    out = ("<x xmlns='%s' type='submit'><field type='hidden' var='FORM_TYPE'>"
           "<value>%s</value></field>" % (NS_XDATA, NS_ADMIN))
    for var, vals in fields:
        if isinstance(vals, str):
            vals = [vals]
        out += "<field var='%s'>%s</field>" % (
            var, ''.join('<value>%s</value>' % v for v in vals))
    return out + '</x>'


def can_login(srv, jid, password):
    c = Client(srv, jid, password, name='try-' + jid.split('@')[0])
    try:
        c.login()
        return True
    except rt.AuthFailed:
        return False
    finally:
        c.close()


def completed(r, node):
    check(r.get('type') == 'result', '%s: %s' % (node, rt.to_string(r)))
    cmd = r.find('{%s}command' % NS_CMD)
    check(cmd is not None and cmd.get('status') == 'completed' and cmd.get('node') == node,
          '%s not completed: %s' % (node, rt.to_string(r)))
    return cmd


def notes(cmd):
    return {n.get('type'): n.text or '' for n in cmd.findall('{%s}note' % NS_CMD)}


def error_of(r):
    check(r.get('type') == 'error', 'expected an error, got %s' % rt.to_string(r))
    err = r.find('{jabber:client}error')
    conds = [rt.tag(x) for x in err] if err is not None else []
    return conds


# --------------------------------------------------------------- tests
# They run in order on one server and share state (ST).

ST = {}


def t_handshake(srv):
    """Subscriptions made over XMPP, as mod_presence records them."""
    cs = {j: login(srv, j) for j in ('alice@localhost', 'bob@localhost',
                                     'carol@localhost', 'dave@localhost')}
    ST['clients'] = cs
    a, b, c, d = (cs[j] for j in ('alice@localhost', 'bob@localhost',
                                  'carol@localhost', 'dave@localhost'))
    a.send("<presence to='bob@localhost' type='subscribe'/>")
    wait_presence(b, 'alice@localhost', 'subscribe')
    b.send("<presence to='alice@localhost' type='subscribed'/>")
    wait_presence(a, 'bob@localhost', 'subscribed')
    b.send("<presence to='alice@localhost' type='subscribe'/>")
    wait_presence(a, 'bob@localhost', 'subscribe')
    a.send("<presence to='bob@localhost' type='subscribed'/>")
    wait_presence(b, 'alice@localhost', 'subscribed')
    a.send("<presence to='carol@localhost' type='subscribe'/>")
    wait_presence(c, 'alice@localhost', 'subscribe')
    d.send("<presence to='alice@localhost' type='subscribe'/>")
    wait_presence(a, 'dave@localhost', 'subscribe')
    a.send("<presence to='dave@localhost' type='subscribed'/>")
    wait_presence(d, 'alice@localhost', 'subscribed')
    items, ver, _ = roster_items(a, ver='')
    ST['alice_ver'] = ver
    got = {j: (i.get('subscription'), i.get('ask')) for j, i in items.items()}
    check(got == {'bob@localhost': ('both', None),
                  'carol@localhost': ('none', 'subscribe'),
                  'dave@localhost': ('from', None)},
          'alice\'s roster after the handshakes: %r' % got)


def t_adhoc_commands_listed(srv):
    adm = login(srv, 'admin@localhost')
    ST['admin'] = adm
    r = adm.iq("<iq type='get' id='d1' to='localhost'><query xmlns='%s' node='%s'/></iq>"
               % (NS_ITEMS, NS_CMD))
    check(r.get('type') == 'result', 'disco#items commands: %s' % rt.to_string(r))
    nodes = [i.get('node') for i in r.iter('{%s}item' % NS_ITEMS)]
    for n in (NODE_ADD, NODE_DEL, NODE_ROSTER, NODE_REG_NUM, NODE_ONLINE_NUM,
              NODE_REG_LIST, NODE_ONLINE_LIST):
        check(n in nodes, '%s not listed to the admin: %r' % (n, nodes))
    r = adm.iq("<iq type='get' id='d2' to='localhost'><query xmlns='%s' node='%s'/></iq>"
               % (NS_INFO, NODE_ROSTER))
    feats = [f.get('var') for f in r.iter('{%s}feature' % NS_INFO)]
    check(r.get('type') == 'result' and NS_CMD in feats and NS_XDATA in feats,
          'disco#info of the command node: %s' % rt.to_string(r))
    r = adm.iq("<iq type='get' id='d3' to='localhost'><query xmlns='%s'/></iq>" % NS_INFO)
    feats = [f.get('var') for f in r.iter('{%s}feature' % NS_INFO)]
    check(NS_CMD in feats, 'host disco#info lacks %s: %r' % (NS_CMD, feats))


def count_of(adm, node, var):
    """Runs a XEP-0133 count command (no form: completed at once) and
    returns the value of var in its result form."""
    r = command(adm, '', node=node, action='execute')
    cmd = completed(r, node)
    x = cmd.find('{%s}x' % NS_XDATA)
    check(x is not None and x.get('type') == 'result', '%s: no result form: %s'
          % (node, rt.to_string(r)))
    vals = {f.get('var'): f.findtext('{%s}value' % NS_XDATA)
            for f in x.findall('{%s}field' % NS_XDATA)}
    check(vals.get('FORM_TYPE') == NS_ADMIN, '%s FORM_TYPE: %r' % (node, vals))
    check(var in vals and (vals[var] or '').isdigit(), '%s: %r' % (node, vals))
    return int(vals[var])


def wait_count(adm, node, var, want):
    deadline = time.monotonic() + 10
    while True:
        n = count_of(adm, node, var)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def t_adhoc_counts(srv):
    """XEP-0133 §4.13 and §4.15: the accounts of localhost (not those of
    example.test), the online accounts of localhost (each once, however
    many resources), both following logins, logouts, add-user and
    delete-user; bob (not an admin) is forbidden."""
    adm = ST['admin']
    registered = len([j for j in USERS if j.endswith('@localhost')])
    n = count_of(adm, NODE_REG_NUM, 'registeredusersnum')
    check(n == registered, 'registered users: %d, want %d' % (n, registered))
    # alice, bob, carol, dave (t_handshake) and admin.
    n = count_of(adm, NODE_ONLINE_NUM, 'onlineusersnum')
    check(n == 5, 'online users: %d, want 5' % n)
    a2 = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='alice2').login()
    gi = Client(srv, 'gina@localhost', USERS['gina@localhost'], name='gina').login()
    try:
        n = count_of(adm, NODE_ONLINE_NUM, 'onlineusersnum')
        check(n == 6, 'online users with gina and a second alice: %d, want 6' % n)
    finally:
        a2.close()
        gi.close()
    n = wait_count(adm, NODE_ONLINE_NUM, 'onlineusersnum', 5)
    check(n == 5, 'online users after gina left: %d, want 5' % n)
    # Counted after an account is added and after it is removed.
    completed(command(adm, form(('accountjid', 'counted@localhost'),
                                ('password', 'counted-Pass-1')), node=NODE_ADD), NODE_ADD)
    n = count_of(adm, NODE_REG_NUM, 'registeredusersnum')
    check(n == registered + 1, 'after add-user: %d, want %d' % (n, registered + 1))
    completed(command(adm, form(('accountjids', 'counted@localhost')), node=NODE_DEL),
              NODE_DEL)
    n = count_of(adm, NODE_REG_NUM, 'registeredusersnum')
    check(n == registered, 'after delete-user: %d, want %d' % (n, registered))
    for node in (NODE_REG_NUM, NODE_ONLINE_NUM, NODE_REG_LIST, NODE_ONLINE_LIST):
        r = command(ST['clients']['bob@localhost'], '', node=node, action='execute')
        check('forbidden' in error_of(r), 'bob ran %s: %s' % (node, rt.to_string(r)))


def list_of(adm, node, var, max_items):
    """A XEP-0133 list command in two steps (form with max_items, then
    the submission): the JIDs of field var, and the notes."""
    r = command(adm, '', node=node, action='execute')
    cmd = r.find('{%s}command' % NS_CMD)
    check(r.get('type') == 'result' and cmd is not None and
          cmd.get('status') == 'executing', '%s execute: %s' % (node, rt.to_string(r)))
    fields = {f.get('var'): f for f in cmd.iter('{%s}field' % NS_XDATA)}
    check('max_items' in fields and fields['max_items'].get('type') == 'list-single',
          '%s form: %s' % (node, rt.to_string(r)))
    r = command(adm, form(('max_items', max_items)), node=node, sid=cmd.get('sessionid'))
    cmd = completed(r, node)
    x = cmd.find('{%s}x' % NS_XDATA)
    check(x is not None and x.get('type') == 'result', '%s: %s' % (node, rt.to_string(r)))
    for f in x.findall('{%s}field' % NS_XDATA):
        if f.get('var') == var:
            return [v.text for v in f.findall('{%s}value' % NS_XDATA)], notes(cmd)
    raise TestFailure('%s: no %s: %s' % (node, var, rt.to_string(r)))


def t_adhoc_lists(srv):
    """XEP-0133 §4.18 and §4.20: the accounts of localhost in order (not
    example.test's), cut at max_items with a note; the online accounts,
    each once."""
    adm = ST['admin']
    want = sorted(j for j in USERS if j.endswith('@localhost'))
    got, n = list_of(adm, NODE_REG_LIST, 'registereduserjids', 'none')
    check(got == want and not n, 'registered users: %r %r, want %r' % (got, n, want))
    got, n = list_of(adm, NODE_REG_LIST, 'registereduserjids', '2')
    check(got == want[:2] and '2 of %d' % len(want) in n.get('info', ''),
          'registered users, 2 at most: %r %r' % (got, n))
    a2 = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='alice3').login()
    try:
        got, n = list_of(adm, NODE_ONLINE_LIST, 'onlineuserjids', '25')
    finally:
        a2.close()
    want = sorted(['admin@localhost', 'alice@localhost', 'bob@localhost',
                   'carol@localhost', 'dave@localhost'])
    check(got == want and not n, 'online users: %r %r, want %r' % (got, n, want))


def t_account_disco(srv):
    """disco#info of accounts (XEP-0030 §3.1): admin@localhost, an admin of
    the host, is account/admin; alice is account/registered to bob and
    dave (subscribed to her presence), with the account features of the
    loaded modules (jabber:iq:last from mod_presence, XEP-0012) and not the
    host's; carol (no subscription) is refused."""
    adm, cs = ST['admin'], ST['clients']
    r = adm.iq("<iq type='get' id='a1'><query xmlns='%s'/></iq>" % NS_INFO)
    ids = [(i.get('category'), i.get('type')) for i in r.iter('{%s}identity' % NS_INFO)]
    check(r.get('type') == 'result' and ids == [('account', 'admin')],
          'admin\'s own account: %s' % rt.to_string(r))
    for who in ('bob@localhost', 'dave@localhost'):
        r = cs[who].iq("<iq type='get' id='a2' to='alice@localhost'><query xmlns='%s'/></iq>"
                       % NS_INFO)
        ids = [(i.get('category'), i.get('type')) for i in r.iter('{%s}identity' % NS_INFO)]
        feats = sorted(f.get('var') for f in r.iter('{%s}feature' % NS_INFO))
        # Other loaded modules add account features of their own (mod_pep:
        # urn:xmpp:pep-vcard-conversion:0); none of the host's may appear.
        check(r.get('type') == 'result' and r.get('from') == 'alice@localhost' and
              ids == [('account', 'registered')] and
              NS_INFO in feats and 'jabber:iq:last' in feats and
              NS_CMD not in feats and 'urn:xmpp:ping' not in feats,
              'alice\'s account to %s: %s' % (who, rt.to_string(r)))
    r = cs['carol@localhost'].iq("<iq type='get' id='a3' to='alice@localhost'>"
                                 "<query xmlns='%s'/></iq>" % NS_INFO)
    check('service-unavailable' in error_of(r), 'alice\'s account to carol: %s' % rt.to_string(r))


def t_adhoc_get_user_roster(srv):
    """XEP-0133 §4.8 for an online user: form, then result form with
    the roster as jabber:iq:roster."""
    adm = ST['admin']
    r = command(adm, '', action='execute')
    check(r.get('type') == 'result', 'execute: %s' % rt.to_string(r))
    cmd = r.find('{%s}command' % NS_CMD)
    check(cmd is not None and cmd.get('status') == 'executing' and cmd.get('sessionid'),
          'execute did not start a session: %s' % rt.to_string(r))
    fields = [f.get('var') for f in cmd.iter('{%s}field' % NS_XDATA)]
    check('accountjids' in fields and 'FORM_TYPE' in fields, 'form fields: %r' % fields)
    sid = cmd.get('sessionid')
    r = command(adm, submit('alice@localhost'), sid=sid)
    check(r.get('type') == 'result', 'submit: %s' % rt.to_string(r))
    cmd = r.find('{%s}command' % NS_CMD)
    check(cmd.get('status') == 'completed' and cmd.get('sessionid') == sid,
          'not completed: %s' % rt.to_string(r))
    x = cmd.find('{%s}x' % NS_XDATA)
    check(x is not None and x.get('type') == 'result', 'no result form: %s' % rt.to_string(r))
    q = x.find('{%s}query' % NS_ROSTER)
    check(q is not None, 'no roster in the result form: %s' % rt.to_string(r))
    got = {i.get('jid'): (i.get('subscription'), i.get('ask'))
           for i in q.findall('{%s}item' % NS_ROSTER)}
    check(got == {'bob@localhost': ('both', None),
                  'carol@localhost': ('none', 'subscribe'),
                  'dave@localhost': ('from', None)},
          'get-user-roster of alice: %r' % got)
    # The session is over: reusing its id is bad-sessionid (XEP-0050 §4.6).
    r = command(adm, submit('alice@localhost'), sid=sid)
    check('bad-sessionid' in error_of(r), 'finished session reused: %s' % rt.to_string(r))
    # carol's hidden item for alice (pending-in) is not part of her roster.
    r = command(adm, submit('carol@localhost'))
    q = r.find('{%s}command/{%s}x/{%s}query' % (NS_CMD, NS_XDATA, NS_ROSTER))
    check(r.get('type') == 'result' and q is not None and len(q) == 0,
          'carol\'s roster should be empty: %s' % rt.to_string(r))


def t_adhoc_cancel_and_errors(srv):
    adm = ST['admin']
    r = command(adm, '', action='execute')
    sid = r.find('{%s}command' % NS_CMD).get('sessionid')
    r = command(adm, '', sid=sid, action='cancel')
    check(r.find('{%s}command' % NS_CMD).get('status') == 'canceled',
          'cancel: %s' % rt.to_string(r))
    r = command(adm, submit('alice@localhost'), sid=sid)
    check('bad-sessionid' in error_of(r), 'canceled session reused: %s' % rt.to_string(r))
    # frank exists but has never logged in: his (empty) roster is read.
    r = command(adm, submit('frank@localhost'))
    q = r.find('{%s}command/{%s}x/{%s}query' % (NS_CMD, NS_XDATA, NS_ROSTER))
    check(r.get('type') == 'result' and q is not None and len(q) == 0,
          'frank (never logged in): %s' % rt.to_string(r))
    r = command(adm, submit('ghost@localhost'))
    check('item-not-found' in error_of(r), 'missing account: %s' % rt.to_string(r))
    r = command(adm, submit('erin@example.test'))
    check('bad-request' in error_of(r), 'other host: %s' % rt.to_string(r))
    r = command(adm, '', node=NS_ADMIN + '#no-such-command')
    check('item-not-found' in error_of(r), 'unknown node: %s' % rt.to_string(r))
    # Prosody's field name (accountjid) is accepted too.
    r = command(adm, submit('alice@localhost', var='accountjid'))
    check(r.get('type') == 'result', 'accountjid: %s' % rt.to_string(r))


def t_adhoc_forbidden(srv):
    """Non-admins: forbidden (XEP-0133 §5), and no commands listed."""
    bob = ST['clients']['bob@localhost']
    r = command(bob, '', action='execute')
    check('forbidden' in error_of(r), 'bob executed an admin command: %s' % rt.to_string(r))
    r = command(bob, submit('alice@localhost'))
    check('forbidden' in error_of(r), 'bob read alice\'s roster: %s' % rt.to_string(r))
    r = bob.iq("<iq type='get' id='d4' to='localhost'><query xmlns='%s' node='%s'/></iq>"
               % (NS_ITEMS, NS_CMD))
    check(r.get('type') == 'result' and not list(r.iter('{%s}item' % NS_ITEMS)),
          'commands listed to a non-admin: %s' % rt.to_string(r))
    # An admin of localhost is nobody on example.test.
    erin = login(srv, 'erin@example.test')
    try:
        r = command(erin, submit('alice@localhost'))
        check('forbidden' in error_of(r), 'erin read alice\'s roster: %s' % rt.to_string(r))
    finally:
        erin.close()


def t_adhoc_add_user(srv):
    """XEP-0133 §4.1: form, submit, completed; the account logs in."""
    adm = ST['admin']
    check(not can_login(srv, 'newbie@localhost', 'newbie-Pass-1'),
          'test bug: newbie exists before add-user')
    r = command(adm, '', node=NODE_ADD, action='execute')
    cmd = r.find('{%s}command' % NS_CMD)
    check(r.get('type') == 'result' and cmd is not None and
          cmd.get('status') == 'executing' and cmd.get('sessionid'),
          'add-user execute: %s' % rt.to_string(r))
    fields = {f.get('var'): f.get('type') for f in cmd.iter('{%s}field' % NS_XDATA)}
    check(fields.get('accountjid') == 'jid-single' and
          fields.get('password') == 'text-private' and
          fields.get('password-verify') == 'text-private' and
          fields.get('FORM_TYPE') == 'hidden', 'add-user form fields: %r' % fields)
    sid = cmd.get('sessionid')
    r = command(adm, form(('accountjid', 'NewBie@LocalHost'),
                          ('password', 'newbie-Pass-1'),
                          ('password-verify', 'newbie-Pass-1')),
                node=NODE_ADD, sid=sid)
    cmd = completed(r, NODE_ADD)
    check(cmd.get('sessionid') == sid, 'sessionid changed: %s' % rt.to_string(r))
    check(can_login(srv, 'newbie@localhost', 'newbie-Pass-1'),
          'the added account cannot log in')
    check(not can_login(srv, 'newbie@localhost', 'wrong-Pass-1'),
          'the added account logs in with any password')
    # One step (form with the execute request), no password-verify.
    r = command(adm, form(('accountjid', 'newbie2@localhost'),
                          ('password', 'newbie-Pass-2')), node=NODE_ADD)
    completed(r, NODE_ADD)
    check(can_login(srv, 'newbie2@localhost', 'newbie-Pass-2'),
          'the account added in one step cannot log in')


def t_adhoc_change_password(srv):
    """XEP-0133 §4.7: form, submit, completed; frank logs in with the new
    password only, and his open session stays; a missing account is
    item-not-found; bob (not an admin) is forbidden."""
    adm = ST['admin']
    nb = Client(srv, 'frank@localhost', USERS['frank@localhost'], name='frank').login()
    try:
        r = command(adm, '', node=NODE_PASSWD, action='execute')
        cmd = r.find('{%s}command' % NS_CMD)
        check(r.get('type') == 'result' and cmd is not None and
              cmd.get('status') == 'executing', 'execute: %s' % rt.to_string(r))
        fields = {f.get('var'): f.get('type') for f in cmd.iter('{%s}field' % NS_XDATA)}
        check(fields == {'FORM_TYPE': 'hidden', 'accountjid': 'jid-single',
                         'password': 'text-private'}, 'form fields: %r' % fields)
        r = command(adm, form(('accountjid', 'frank@localhost'),
                              ('password', 'frank-Pass-9')),
                    node=NODE_PASSWD, sid=cmd.get('sessionid'))
        completed(r, NODE_PASSWD)
        check(can_login(srv, 'frank@localhost', 'frank-Pass-9'),
              'the new password does not work')
        check(not can_login(srv, 'frank@localhost', USERS['frank@localhost']),
              'the old password still works')
        r = nb.iq("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        check(r.get('type') == 'result', 'the open session did not stay: %s' % rt.to_string(r))
    finally:
        nb.close()
    r = command(adm, form(('accountjid', 'ghost@localhost'), ('password', 'x-Pass-1')),
                node=NODE_PASSWD)
    check('item-not-found' in error_of(r), 'missing account: %s' % rt.to_string(r))
    r = command(adm, form(('accountjid', 'frank@localhost')), node=NODE_PASSWD)
    check('bad-request' in error_of(r), 'no password: %s' % rt.to_string(r))
    r = command(ST['clients']['bob@localhost'],
                form(('accountjid', 'frank@localhost'), ('password', 'bob-Owns-1')),
                node=NODE_PASSWD)
    check('forbidden' in error_of(r), 'bob changed a password: %s' % rt.to_string(r))
    check(can_login(srv, 'frank@localhost', 'frank-Pass-9'), 'a refused change changed it')


def t_adhoc_add_user_errors(srv):
    adm = ST['admin']
    # An existing account: conflict (XEP-0133 §6); its password is kept.
    r = command(adm, form(('accountjid', 'alice@localhost'), ('password', 'x-Pass-1'),
                          ('password-verify', 'x-Pass-1')), node=NODE_ADD)
    check('conflict' in error_of(r), 'existing account: %s' % rt.to_string(r))
    check(can_login(srv, 'alice@localhost', USERS['alice@localhost']),
          'alice\'s password changed by a refused add-user')
    # Password mismatch: bad-request + bad-payload, nothing created.
    r = command(adm, '', node=NODE_ADD, action='execute')
    sid = r.find('{%s}command' % NS_CMD).get('sessionid')
    r = command(adm, form(('accountjid', 'mismatch@localhost'), ('password', 'mm-Pass-1'),
                          ('password-verify', 'mm-Pass-2')), node=NODE_ADD, sid=sid)
    conds = error_of(r)
    text = r.find('{jabber:client}error/{%s}text' % rt.NS_STANZA_ERR)
    check('bad-request' in conds and 'bad-payload' in conds and text is not None and
          'password-verify' in text.text, 'password mismatch: %s' % rt.to_string(r))
    for pw in ('mm-Pass-1', 'mm-Pass-2'):
        check(not can_login(srv, 'mismatch@localhost', pw),
              'account created despite the password mismatch')
    # No password; an account of another host; a full JID.
    r = command(adm, form(('accountjid', 'nopass@localhost')), node=NODE_ADD)
    check('bad-request' in error_of(r), 'no password: %s' % rt.to_string(r))
    r = command(adm, form(('accountjid', 'newx@example.test'), ('password', 'x-Pass-1'),
                          ('password-verify', 'x-Pass-1')), node=NODE_ADD)
    check('bad-request' in error_of(r), 'other host: %s' % rt.to_string(r))
    check(not can_login(srv, 'newx@example.test', 'x-Pass-1'), 'created on the other host')
    r = command(adm, form(('accountjid', 'full@localhost/res'), ('password', 'x-Pass-1')),
                node=NODE_ADD)
    check('jid-malformed' in error_of(r), 'full JID: %s' % rt.to_string(r))


def t_adhoc_delete_user(srv):
    """XEP-0133 §4.2: gina is online (two resources) and subscribed both
    ways with hank; the admin deletes gina and a missing account in one
    request: completed, gina listed as deleted and ghost as not; both of
    gina's streams end with <not-authorized/>; hank gets unsubscribe and
    unsubscribed from her; gina cannot log in."""
    adm = ST['admin']
    g = login(srv, 'gina@localhost')
    g2 = Client(srv, 'gina@localhost', USERS['gina@localhost'], name='gina2').login(
        resource='second')
    h = login(srv, 'hank@localhost')
    try:
        g.send("<presence to='hank@localhost' type='subscribe'/>")
        wait_presence(h, 'gina@localhost', 'subscribe')
        h.send("<presence to='gina@localhost' type='subscribed'/>")
        wait_presence(g, 'hank@localhost', 'subscribed')
        h.send("<presence to='gina@localhost' type='subscribe'/>")
        wait_presence(g, 'hank@localhost', 'subscribe')
        g.send("<presence to='hank@localhost' type='subscribed'/>")
        wait_presence(h, 'gina@localhost', 'subscribed')
        items, _, _ = roster_items(h)
        check(items.get('gina@localhost') is not None and
              items['gina@localhost'].get('subscription') == 'both',
              'test bug: hank and gina not subscribed both ways')
        r = command(adm, '', node=NODE_DEL, action='execute')
        cmd = r.find('{%s}command' % NS_CMD)
        check(r.get('type') == 'result' and cmd.get('status') == 'executing',
              'delete-user execute: %s' % rt.to_string(r))
        fields = {f.get('var'): f.get('type') for f in cmd.iter('{%s}field' % NS_XDATA)}
        check(fields.get('accountjids') == 'jid-multi', 'delete-user form: %r' % fields)
        r = command(adm, form(('accountjids', ['Gina@localhost', 'ghost@localhost'])),
                    node=NODE_DEL, sid=cmd.get('sessionid'))
        n = notes(completed(r, NODE_DEL))
        check('gina@localhost' in n.get('info', '') and
              'ghost' not in n.get('info', '') and
              'ghost@localhost' in n.get('error', '') and
              'gina' not in n.get('error', ''),
              'delete-user notes: %r' % n)
        for c in (g, g2):
            cond = c.expect_stream_error()
            check(cond == 'not-authorized', '%s: stream error %s' % (c.name, cond))
        want = {'unsubscribe', 'unsubscribed'}
        got = set()
        deadline = time.monotonic() + 5
        while got != want and time.monotonic() < deadline:
            try:
                el = h.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TestFailure:
                break
            if rt.tag(el) == 'presence' and el.get('type') in want and \
                    (el.get('from') or '').split('/')[0] == 'gina@localhost':
                got.add(el.get('type'))
        check(got == want, 'hank got %r from gina, want %r' % (sorted(got), sorted(want)))
    finally:
        for c in (g, g2, h):
            c.close()
    check(not can_login(srv, 'gina@localhost', USERS['gina@localhost']),
          'gina still logs in after delete-user')
    # Nothing to delete: an error, not a completed command.
    r = command(adm, form(('accountjids', 'gina@localhost')), node=NODE_DEL)
    check('item-not-found' in error_of(r), 'deleting a missing account: %s' % rt.to_string(r))
    # One JID of another host: refused as a whole, nothing deleted.
    r = command(adm, form(('accountjids', ['newbie2@localhost', 'erin@example.test'])),
                node=NODE_DEL)
    check('bad-request' in error_of(r), 'other host in the list: %s' % rt.to_string(r))
    check(can_login(srv, 'newbie2@localhost', 'newbie-Pass-2'),
          'newbie2 deleted by a refused request')
    check(can_login(srv, 'erin@example.test', USERS['erin@example.test']),
          'erin deleted from another host')


def t_adhoc_add_delete_forbidden(srv):
    """Non-admins: forbidden for add-user and delete-user, nothing done."""
    bob = ST['clients']['bob@localhost']
    r = command(bob, '', node=NODE_ADD, action='execute')
    check('forbidden' in error_of(r), 'bob executed add-user: %s' % rt.to_string(r))
    r = command(bob, form(('accountjid', 'bobsfriend@localhost'), ('password', 'bf-Pass-1'),
                          ('password-verify', 'bf-Pass-1')), node=NODE_ADD)
    check('forbidden' in error_of(r), 'bob added a user: %s' % rt.to_string(r))
    check(not can_login(srv, 'bobsfriend@localhost', 'bf-Pass-1'),
          'the account bob asked for exists')
    r = command(bob, '', node=NODE_DEL, action='execute')
    check('forbidden' in error_of(r), 'bob executed delete-user: %s' % rt.to_string(r))
    r = command(bob, form(('accountjids', 'newbie@localhost')), node=NODE_DEL)
    check('forbidden' in error_of(r), 'bob deleted a user: %s' % rt.to_string(r))
    check(can_login(srv, 'newbie@localhost', 'newbie-Pass-1'),
          'newbie deleted by bob\'s request')
    r = bob.iq("<iq type='get' id='d5' to='localhost'><query xmlns='%s' node='%s'/></iq>"
               % (NS_INFO, NODE_DEL))
    check('forbidden' in error_of(r), 'delete-user node info to bob: %s' % rt.to_string(r))


def t_adhoc_delete_self(srv):
    """other@localhost (an admin through the module's own list) deletes
    their own account and newbie2 in one request, their own listed first:
    the completed answer naming both arrives before their stream ends with
    <not-authorized/>."""
    o = login(srv, 'other@localhost')
    try:
        o.send("<iq type='set' id='self1' to='localhost'><command xmlns='%s' node='%s'>%s"
               "</command></iq>" % (NS_CMD, NODE_DEL, form(
                   ('accountjids', ['other@localhost', 'newbie2@localhost']))))
        el = o.recv()
        while rt.tag(el) != 'iq' or el.get('id') != 'self1':
            check(el.tag != '{%s}error' % rt.NS_STREAM,
                  'stream error before the answer: %s' % rt.to_string(el))
            el = o.recv()
        info = notes(completed(el, NODE_DEL)).get('info', '')
        check('other@localhost' in info and 'newbie2@localhost' in info,
              'delete-user of self: %s' % rt.to_string(el))
        cond = o.expect_stream_error()
        check(cond == 'not-authorized', 'requester: stream error %s' % cond)
    finally:
        o.close()
    check(not can_login(srv, 'other@localhost', USERS['other@localhost']),
          'other still logs in')
    check(not can_login(srv, 'newbie2@localhost', 'newbie-Pass-2'),
          'newbie2 still logs in')


def t_stop_server(srv):
    for c in list(ST.pop('clients', {}).values()) + [ST.pop('admin', None)]:
        if c is not None:
            c.close()
    problems = srv.halt()
    check(not problems, 'roostd stop: %s' % '; '.join(problems))


def t_ctl_roster(srv):
    items = ctl_roster(srv, 'alice@localhost')
    check(items == {'bob@localhost': ('both', '-', '', []),
                    'carol@localhost': ('none', 'ask', '', []),
                    'dave@localhost': ('from', '-', '', [])},
          'roostctl roster alice: %r' % items)
    items = ctl_roster(srv, 'carol@localhost')
    check(items == {'alice@localhost': ('none', 'pending-in,hidden', '', [])},
          'roostctl roster carol: %r' % items)
    items = ctl_roster(srv, 'dave@localhost')
    check(items == {'alice@localhost': ('to', '-', '', [])},
          'roostctl roster dave: %r' % items)


def t_ctl_subscribers(srv):
    rc, out, err = ctl(srv, 'subscribers', 'alice@localhost')
    check(rc == 0 and sorted(out.split()) == ['bob@localhost', 'dave@localhost'],
          'subscribers alice: rc %d %r %s' % (rc, out, err))
    rc, out, err = ctl(srv, 'subscriptions', 'alice@localhost')
    check(rc == 0 and out.split() == ['bob@localhost'],
          'subscriptions alice: rc %d %r %s' % (rc, out, err))
    rc, out, _ = ctl(srv, 'subscribers', 'carol@localhost')
    check(rc == 0 and out == '', 'subscribers carol (pending only): %r' % out)
    rc, out, _ = ctl(srv, 'subscriptions', 'dave@localhost')
    check(rc == 0 and out.split() == ['alice@localhost'], 'subscriptions dave: %r' % out)


def t_ctl_errors(srv):
    rc, _, _ = ctl(srv, 'roster', 'ghost@localhost')
    check(rc == 1, 'roster of a missing account: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster', 'alice@nowhere.test')
    check(rc == 1, 'roster on an unserved domain: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster-add', 'alice@localhost', 'x@localhost',
                   '--subscription', 'bogus')
    check(rc == 2, 'bad --subscription: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster-add', 'alice@localhost', 'alice@localhost')
    check(rc == 2, 'alice as her own contact: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster-add', 'alice@localhost', 'x@localhost/res')
    check(rc == 2, 'full JID as contact: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster-add', 'alice@localhost', 'x@localhost',
                   '--group', 'G', '--group', 'G')
    check(rc == 2, 'duplicate group: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster-add', 'alice@localhost')
    check(rc == 2, 'roster-add without contact: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster-del', 'alice@localhost', 'nobody@localhost')
    check(rc == 1, 'roster-del of a missing item: rc %d' % rc)
    rc, _, _ = ctl(srv, 'roster', 'alice@localhost', '--name', 'x')
    check(rc == 2, '--name on roster: rc %d' % rc)
    check(ctl_roster(srv, 'alice@localhost').keys() ==
          {'bob@localhost', 'carol@localhost', 'dave@localhost'},
          'a refused command changed the roster')


def t_ctl_roster_add(srv):
    rc, _, err = ctl(srv, 'roster-add', 'alice@localhost', 'Erin@Example.TEST',
                     '--name', 'Erin\tE.', '--group', 'Friends', '--group=Work',
                     '--subscription', 'both')
    check(rc == 0, 'roster-add: rc %d %s' % (rc, err))
    # An existing item keeps its subscription; only the name changes.
    rc, _, err = ctl(srv, 'roster-add', 'alice@localhost', 'bob@localhost',
                     '--name', 'Bobby')
    check(rc == 0, 'roster-add bob: rc %d %s' % (rc, err))
    items = ctl_roster(srv, 'alice@localhost')
    check(items.get('erin@example.test') == ('both', '-', 'Erin\\tE.', ['Friends', 'Work']),
          'erin listed as %r' % (items.get('erin@example.test'),))
    check(items.get('bob@localhost') == ('both', '-', 'Bobby', []),
          'bob listed as %r' % (items.get('bob@localhost'),))
    rc, out, _ = ctl(srv, 'subscribers', 'alice@localhost')
    check(sorted(out.split()) == ['bob@localhost', 'dave@localhost', 'erin@example.test'],
          'subscribers after roster-add: %r' % out)
    # Forcing "to" on carol's item clears the pending ask.
    rc, _, _ = ctl(srv, 'roster-add', 'alice@localhost', 'carol@localhost',
                   '--subscription', 'to')
    check(rc == 0 and ctl_roster(srv, 'alice@localhost')['carol@localhost'][:2] == ('to', '-'),
          'carol forced to "to": %r' % (ctl_roster(srv, 'alice@localhost')['carol@localhost'],))


def t_login_sees_added(srv):
    srv.restart()
    a = login(srv, 'alice@localhost', presence=False)
    try:
        items, ver, empty = roster_items(a, ver=ST['alice_ver'])
        check(not empty and ver and ver != ST['alice_ver'],
              'roster version not bumped: old %r, new %r (empty=%s)'
              % (ST['alice_ver'], ver, empty))
        e = items.get('erin@example.test')
        check(e is not None and e.get('subscription') == 'both' and e.get('name') == 'Erin\tE.',
              'erin in alice\'s roster: %s' % (rt.to_string(e) if e is not None else None))
        groups = sorted(g.text for g in e.findall('{%s}group' % NS_ROSTER))
        check(groups == ['Friends', 'Work'], 'erin\'s groups: %r' % groups)
        check(items['bob@localhost'].get('name') == 'Bobby' and
              items['bob@localhost'].get('subscription') == 'both',
              'bob: %s' % rt.to_string(items['bob@localhost']))
        ST['alice_ver'] = ver
    finally:
        a.close()


def t_adhoc_roster_offline(srv):
    """XEP-0133 §4.8 for accounts with no session since the restart: their
    stored rosters (with roostctl's edits) are read."""
    adm = login(srv, 'admin@localhost')
    try:
        r = command(adm, submit('dave@localhost'))
        cmd = completed(r, NODE_ROSTER)
        q = cmd.find('{%s}x/{%s}query' % (NS_XDATA, NS_ROSTER))
        got = {i.get('jid'): (i.get('subscription'), i.get('ask'))
               for i in q.findall('{%s}item' % NS_ROSTER)} if q is not None else None
        check(got == {'alice@localhost': ('to', None)}, 'dave offline: %r' % got)
        r = command(adm, submit('alice@localhost'))
        q = completed(r, NODE_ROSTER).find('{%s}x/{%s}query' % (NS_XDATA, NS_ROSTER))
        items = {i.get('jid'): i for i in q.findall('{%s}item' % NS_ROSTER)}
        e = items.get('erin@example.test')
        check(sorted(items) == ['bob@localhost', 'carol@localhost', 'dave@localhost',
                                'erin@example.test'] and
              e.get('name') == 'Erin\tE.' and e.get('subscription') == 'both' and
              sorted(g.text for g in e.findall('{%s}group' % NS_ROSTER)) == ['Friends', 'Work'],
              'alice (logged out): %s' % rt.to_string(q))
    finally:
        adm.close()


def t_ctl_roster_del(srv):
    problems = srv.halt()
    check(not problems, 'roostd stop: %s' % '; '.join(problems))
    rc, _, err = ctl(srv, 'roster-del', 'alice@localhost', 'erin@example.test')
    check(rc == 0, 'roster-del: rc %d %s' % (rc, err))
    rc, _, _ = ctl(srv, 'roster-del', 'alice@localhost', 'erin@example.test')
    check(rc == 1, 'second roster-del: rc %d, want 1' % rc)
    check('erin@example.test' not in ctl_roster(srv, 'alice@localhost'),
          'erin still listed')
    srv.restart()
    a = login(srv, 'alice@localhost', presence=False)
    try:
        items, ver, empty = roster_items(a, ver=ST['alice_ver'])
        check(not empty and ver != ST['alice_ver'], 'version not bumped by roster-del')
        check('erin@example.test' not in items and 'bob@localhost' in items,
              'alice\'s roster after roster-del: %r' % sorted(items))
    finally:
        a.close()


TESTS = [t_handshake, t_adhoc_commands_listed, t_adhoc_counts, t_adhoc_lists,
         t_account_disco, t_adhoc_get_user_roster,
         t_adhoc_cancel_and_errors, t_adhoc_forbidden, t_adhoc_add_user,
         t_adhoc_change_password, t_adhoc_add_user_errors, t_adhoc_delete_user,
         t_adhoc_add_delete_forbidden, t_adhoc_delete_self, t_stop_server,
         t_ctl_roster, t_ctl_subscribers, t_ctl_errors, t_ctl_roster_add,
         t_login_sees_added, t_adhoc_roster_offline, t_ctl_roster_del]


def main():
    passed = failed = 0
    srv = AdminRoost(USERS)
    try:
        srv.start()
        for t in TESTS:
            name = t.__name__[2:]
            try:
                t(srv)
                print('PASS admin:%s' % name)
                passed += 1
            except (TestFailure, OSError, subprocess.SubprocessError) as e:
                print('FAIL admin:%s: %s' % (name, e))
                failed += 1
        for c in list(ST.pop('clients', {}).values()) + [ST.pop('admin', None)]:
            if c is not None:
                c.close()
        if srv.proc is not None:
            problems = srv.stop()
            if problems:
                print('FAIL admin:server-clean-shutdown: %s' % '; '.join(problems))
                failed += 1
    except TestFailure as e:
        print('FAIL admin:start: %s' % e)
        failed += 1
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        if failed:
            print('    (files kept in %s)' % srv.dir)
        else:
            srv.cleanup()
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
