"""Offline message storage (XEP-0160, mod_offline) over real sockets.

A message of type normal/chat to a local account with no available
non-negative resource is stored with a XEP-0203 delay stamp and delivered,
in order and once, when a session of the account sends non-negative
available presence.  Also: the per-account quota (max_messages), what is
not stored (headline, groupchat, error, chat states only, XEP-0334
no-store, unknown accounts), XEP-0280 <private/> removed from what is
stored, negative priority, two resources coming
online together, and survival across a clean restart and across kill -9.

    python3 test_offline.py                   # roostd with mod_offline
    python3 test_offline.py --server prosody  # the portable tests against
                                              # Debian's Prosody + mod_offline

Roost is started with the modules of ROOST_MODULES_DIR (mod_offline.so
must be there).  Prints 'N passed, N failed'.
"""
import argparse
import calendar
import os
import re
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'carol@localhost': 'carol-Secret-1234',
         'frank@localhost': 'frank-Secret-5',
         'grace@localhost': 'grace-Secret-6',
         'heidi@localhost': 'heidi-Secret-7',
         'ivan@localhost': 'ivan-Secret-8',
         'judy@localhost': 'judy-Secret-9',
         'mallory@localhost': 'mallory-Secret-10',
         'niaj@localhost': 'niaj-Secret-11',
         'olivia@localhost': 'olivia-Secret-12',
         'dave@example.test': 'dave-Secret-1',
         'erin@example.test': 'erin-Secret-2'}
NS_DELAY = 'urn:xmpp:delay'
NS_HINTS = 'urn:xmpp:hints'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
QUOTA = 3          # max_messages on example.test
STAMP_RE = re.compile(r'^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$')


class OfflineRoost(rt.Roost):
    """The usual two vhosts with mod_offline loaded on both, and a small
    quota (max_messages = QUOTA) on example.test.  Can be killed with
    SIGKILL and started again on the same data directory."""

    extra_modules = ('offline',)

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        old = '{ domain = "example.test"; '
        check(old in conf, 'could not find example.test in the test config')
        conf = conf.replace(old, old + 'offline = { max_messages = %d; }; ' % QUOTA)
        with open(self.config, 'w') as f:
            f.write(conf)

    def stored(self, user, host='localhost'):
        """Rows in the offline store of user (reads the sqlite file)."""
        db = sqlite3.connect('file:%s?mode=ro' % os.path.join(self.dir, 'data', 'roost.db'),
                             uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM archive WHERE host=? AND store='offline'"
                              " AND user=?", (host, user)).fetchone()[0]
        finally:
            db.close()


class OfflineProsody(rt.Prosody):
    """Debian's Prosody with its mod_offline enabled (the reference)."""

    def stored(self, user, host='localhost'):
        """1 when Prosody's internal storage has an offline list for user."""
        path = os.path.join(self.dir, 'data', host.replace('.', '%2e'), 'offline')
        return int(os.path.isdir(path) and any(f.startswith(user + '.') for f in os.listdir(path)))

    extra_modules = ("offline",)


# ------------------------------------------------------------- helpers

def login(srv, jid, resource=None, presence=None):
    c = Client(srv, jid, USERS[jid], name=jid.split('@')[0]).login(resource=resource)
    if presence is not None:
        c.send(presence)
    return c


def sync(c, to=None):
    """Round trip to the server: everything c sent before was processed."""
    r = c.iq("<iq type='get' id='sync%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
             % (int(time.monotonic() * 1000), to or c.domain))
    check(r.get('type') in ('result', 'error'), 'ping: %s' % rt.to_string(r))


def messages(c, n, timeout=10.0):
    """The next n messages c receives (other stanzas are skipped)."""
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: %d of %d messages arrived' % (c.name, len(got), n))
        el = c.recv(timeout=left)
        if rt.tag(el) == 'message':
            got.append(el)
    return got


def no_messages(c, timeout=1.0):
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
        check(rt.tag(el) != 'message', '%s: unexpected %s' % (c.name, rt.to_string(el)))


def body(el):
    return el.findtext('{jabber:client}body')


def stamp_seconds(s):
    mo = STAMP_RE.match(s or '')
    check(mo is not None, 'delay stamp %r is not XEP-0082 UTC' % s)
    y, mo_, d, h, mi, se = (int(x) for x in mo.groups()[:6])
    return calendar.timegm((y, mo_, d, h, mi, se)) + float(mo.group(7) or 0)


def check_delay(el, domain, t0, t1):
    """XEP-0203 <delay/> from the server, stamped between t0 and t1."""
    delays = [d for d in el.findall('{%s}delay' % NS_DELAY) if d.get('from') == domain]
    check(len(delays) == 1, 'want one <delay from=%r/>: %s' % (domain, rt.to_string(el)))
    t = stamp_seconds(delays[0].get('stamp'))
    check(t0 - 2 <= t <= t1 + 2, 'stamp %s not within the sending time'
          % delays[0].get('stamp'))
    return t


def expect_error(c, cond, mid):
    el = c.recv(timeout=5)
    check(rt.tag(el) == 'message' and el.get('type') == 'error' and el.get('id') == mid and
          rt.error_condition(el) == cond,
          'want <%s/> for %s, got %s' % (cond, mid, rt.to_string(el)))
    return el


# --------------------------------------------------------------- tests

def order_delay_once(srv):
    """XEP-0160 §2: messages to the bare JID and to an offline full JID
    are stored and delivered at the first available presence, in order,
    with from/id/body intact and one XEP-0203 delay from the server (a
    client's forged one is dropped); a second login gets nothing (each
    message once)."""
    alice = login(srv, 'alice@localhost', 'desk')
    sent = [('m1', 'bob@localhost', 'chat', 'first'),
            ('m2', 'bob@localhost', None, 'zweite Nachricht \u00e4\u00f6\u00fc \U0001F426'),
            ('m3', 'bob@localhost/gone', 'chat', 'to a resource that is offline'),
            ('m4', 'bob@localhost', 'normal', 'fourth <&> "quoted"')]
    t0 = time.time()
    try:
        for mid, to, typ, text in sent:
            # m4 carries a forged server stamp: it must not survive
            # (Roost policy; Prosody 0.12 keeps it).
            forged = ("<delay xmlns='%s' from='localhost' stamp='2001-01-01T00:00:00Z'/>"
                      % NS_DELAY if mid == 'm4' and srv.name == 'roost' else '')
            alice.send("<message to='%s' id='%s'%s><body>%s</body>%s</message>"
                       % (to, mid, " type='%s'" % typ if typ else '',
                          text.replace('&', '&amp;').replace('<', '&lt;'), forged))
        sync(alice)
        no_messages(alice, 0.5)                   # no bounce: stored
        t1 = time.time()
        bob = login(srv, 'bob@localhost', 'phone')
        no_messages(bob, 0.5)                     # nothing before presence
        bob.send('<presence/>')
        got = messages(bob, len(sent))
        for el, (mid, to, typ, text) in zip(got, sent):
            check(el.get('id') == mid, 'order: want %s, got %s' % (mid, rt.to_string(el)))
            check(el.get('from') == alice.full_jid, 'from changed: %s' % rt.to_string(el))
            check(body(el) == text, 'body changed: %r' % body(el))
            check(el.get('type') == typ, 'type changed: %s' % rt.to_string(el))
            check_delay(el, 'localhost', t0, t1)
        no_messages(bob, 1.0)
        bob.close()
        bob = login(srv, 'bob@localhost', 'laptop', presence='<presence/>')
        no_messages(bob, 1.0)
        bob.close()
    finally:
        alice.close()


def carbons_private_stripped(srv):
    """XEP-0280 §9: the receiving server removes <private/> before
    delivery; a message stored offline is delivered without it (other
    elements intact), and <private/> next to a chat state alone is no
    content to store (Roost: stripped by mod_offline, whether mod_carbons
    runs or not; Prosody strips it in mod_carbons)."""
    alice = login(srv, 'alice@localhost', 'priv')
    try:
        alice.send("<message to='olivia@localhost' id='p1' type='chat'><body>just us</body>"
                   "<private xmlns='urn:xmpp:carbons:2'/><origin-id xmlns='urn:xmpp:sid:0' "
                   "id='op1'/></message>")
        alice.send("<message to='olivia@localhost' id='p2' type='chat'>"
                   "<private xmlns='urn:xmpp:carbons:2'/><composing xmlns='%s'/></message>"
                   % NS_CHATSTATES)
        alice.send("<message to='olivia@localhost' id='p3' type='chat'><body>end</body></message>")
        sync(alice)
        olivia = login(srv, 'olivia@localhost', presence='<presence/>')
        try:
            got = messages(olivia, 2)
            check([el.get('id') for el in got] == ['p1', 'p3'], 'stored: %s'
                  % [rt.to_string(el) for el in got])
            check(got[0].find('{urn:xmpp:carbons:2}private') is None,
                  '<private/> kept: %s' % rt.to_string(got[0]))
            check(body(got[0]) == 'just us' and
                  got[0].find('{urn:xmpp:sid:0}origin-id') is not None,
                  'content changed: %s' % rt.to_string(got[0]))
            no_messages(olivia, 0.5)
        finally:
            olivia.close()
    finally:
        alice.close()


def disco_feature(srv):
    """XEP-0160 §4: the server advertises 'msgoffline'."""
    alice = login(srv, 'alice@localhost')
    try:
        info = alice.iq("<iq type='get' id='d1' to='localhost'><query "
                        "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        feats = [f.get('var') for f in info.iter('{http://jabber.org/protocol/disco#info}feature')]
        check('msgoffline' in feats, 'msgoffline not advertised: %r' % feats)
    finally:
        alice.close()


def quota_bounce(srv):
    """XEP-0160 §2 step 3: with the recipient's queue full (max_messages
    = 3 on example.test) the sender gets <service-unavailable/> with a
    text; after delivery there is room again."""
    dave = login(srv, 'dave@example.test')
    try:
        for i in range(QUOTA):
            dave.send("<message to='erin@example.test' id='q%d' type='chat'><body>q%d</body>"
                      "</message>" % (i, i))
        dave.send("<message to='erin@example.test' id='over' type='chat'><body>too many</body>"
                  "</message>")
        el = expect_error(dave, 'service-unavailable', 'over')
        text = el.findtext('{jabber:client}error/{%s}text' % rt.NS_STANZA_ERR)
        check(text, 'quota bounce without a text: %s' % rt.to_string(el))
        check(body(el) == 'too many', 'bounce does not carry the original: %s' % rt.to_string(el))
        erin = login(srv, 'erin@example.test', presence='<presence/>')
        got = messages(erin, QUOTA)
        check([m.get('id') for m in got] == ['q%d' % i for i in range(QUOTA)],
              'got %r' % [m.get('id') for m in got])
        no_messages(erin, 0.5)
        erin.close()
        time.sleep(0.2)          # erin's session is gone
        dave.send("<message to='erin@example.test' id='again' type='chat'><body>room</body>"
                  "</message>")
        sync(dave)
        no_messages(dave, 0.5)
        erin = login(srv, 'erin@example.test', presence='<presence/>')
        check([m.get('id') for m in messages(erin, 1)] == ['again'], 'not stored after delivery')
        erin.close()
    finally:
        dave.close()


def not_stored(srv):
    """XEP-0160 §3: headline and error are dropped, groupchat bounced
    (mod_message), chat states alone dropped silently; XEP-0334 <store/>
    keeps a chat state, <no-store/> bounces; a receipt (content without a
    body) is stored.  The recipient then gets exactly the stored ones."""
    alice = login(srv, 'alice@localhost')
    try:
        alice.send("<message to='carol@localhost' id='h1' type='headline'><body>news</body></message>")
        alice.send("<message to='carol@localhost' id='e1' type='error'><body>x</body>"
                   "<error type='cancel'><item-not-found xmlns='%s'/></error></message>"
                   % rt.NS_STANZA_ERR)
        alice.send("<message to='carol@localhost' id='g1' type='groupchat'><body>room</body></message>")
        expect_error(alice, 'service-unavailable', 'g1')
        alice.send("<message to='carol@localhost' id='cs1' type='chat'><composing xmlns='%s'/>"
                   "<thread>t1</thread></message>" % NS_CHATSTATES)
        alice.send("<message to='carol@localhost/r' id='cs2' type='chat'><active xmlns='%s'/>"
                   "</message>" % NS_CHATSTATES)
        alice.send("<message to='carol@localhost' id='ns1' type='chat'><body>secret</body>"
                   "<no-store xmlns='%s'/></message>" % NS_HINTS)
        expect_error(alice, 'service-unavailable', 'ns1')
        alice.send("<message to='carol@localhost' id='cs3' type='chat'><gone xmlns='%s'/>"
                   "<store xmlns='%s'/></message>" % (NS_CHATSTATES, NS_HINTS))
        alice.send("<message to='carol@localhost' id='rc1'><received xmlns='urn:xmpp:receipts' "
                   "id='x'/></message>")
        alice.send("<message to='carol@localhost' id='last' type='chat'><body>end</body></message>")
        sync(alice)
        no_messages(alice, 0.5)
        carol = login(srv, 'carol@localhost', presence='<presence/>')
        got = messages(carol, 3)
        check([m.get('id') for m in got] == ['cs3', 'rc1', 'last'],
              'stored: %r' % [m.get('id') for m in got])
        no_messages(carol, 1.0)
        carol.close()
    finally:
        alice.close()


def unknown_account(srv):
    """RFC 6121 §8.5.1 / §8.5.2.2.1: a message to an account that does not
    exist is answered <service-unavailable/> by the core and not stored."""
    alice = login(srv, 'alice@localhost')
    try:
        alice.send("<message to='nobody@localhost' id='u1' type='chat'><body>hi</body></message>")
        expect_error(alice, 'service-unavailable', 'u1')
        sync(alice)
        time.sleep(0.2)
        check(srv.stored('nobody') == 0, 'stored for a missing account')
    finally:
        alice.close()


def negative_priority(srv):
    """RFC 6121 §8.5.2.1.1, XEP-0160 §2: a resource with negative priority
    gets nothing; messages keep being stored; its first non-negative
    available presence brings them."""
    alice = login(srv, 'alice@localhost')
    frank = login(srv, 'frank@localhost', presence='<presence><priority>-1</priority></presence>')
    try:
        alice.send("<message to='frank@localhost' id='n1' type='chat'><body>one</body></message>")
        sync(alice)
        no_messages(frank, 0.5)
        alice.send("<message to='frank@localhost' id='n2' type='chat'><body>two</body></message>")
        sync(alice)
        no_messages(alice, 0.3)
        frank.send("<presence><show>away</show><priority>-5</priority></presence>")
        no_messages(frank, 0.5)
        frank.send("<presence><priority>0</priority></presence>")
        check([m.get('id') for m in messages(frank, 2)] == ['n1', 'n2'], 'wrong messages')
        no_messages(frank, 0.5)
        frank.send("<presence><priority>3</priority></presence>")   # not again
        no_messages(frank, 0.5)
    finally:
        alice.close()
        frank.close()


def order_during_delivery(srv):
    """XEP-0160 order while the queue is being delivered: 250 stored
    messages go out in batches; messages sent right after the recipient's
    initial presence arrive after all of them, in sending order, each
    once."""
    n, extra = 250, 40
    alice = login(srv, 'alice@localhost')
    try:
        for i in range(n):
            alice.send("<message to='niaj@localhost' id='s%d' type='chat'><body>%d</body>"
                       "</message>" % (i, i))
        sync(alice)
        niaj = login(srv, 'niaj@localhost')
        niaj.send('<presence/>')
        for i in range(extra):
            alice.send("<message to='niaj@localhost' id='e%d' type='chat'><body>%d</body>"
                       "</message>" % (i, i))
        got = [m.get('id') for m in messages(niaj, n + extra, timeout=20)]
        want = ['s%d' % i for i in range(n)] + ['e%d' % i for i in range(extra)]
        diff = next(((i, a, b) for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
        check(got == want, 'order: first difference at %r' % (diff,))
        no_messages(niaj, 1.0)
        niaj.close()
    finally:
        alice.close()


def two_resources_once(srv):
    """Two resources sending initial presence at once: each stored message
    reaches exactly one of them, in order."""
    n = 30
    alice = login(srv, 'alice@localhost')
    try:
        for i in range(n):
            alice.send("<message to='grace@localhost' id='t%d' type='chat'><body>%d</body>"
                       "</message>" % (i, i))
        sync(alice)
        g1 = login(srv, 'grace@localhost', 'one')
        g2 = login(srv, 'grace@localhost', 'two')
        g1.send('<presence/>')
        g2.send('<presence/>')
        got = {}
        for g in (g1, g2):
            ids = []
            try:
                while True:
                    el = g.recv(timeout=1.5)
                    if rt.tag(el) == 'message':
                        ids.append(el.get('id'))
            except TestFailure as e:
                if 'nothing received' not in str(e):
                    raise
            got[g.name + g.full_jid] = ids
        lists = [v for v in got.values() if v]
        check(len(lists) == 1, 'messages split or duplicated: %r' % got)
        check(lists[0] == ['t%d' % i for i in range(n)], 'order: %r' % lists[0])
        g1.close()
        g2.close()
    finally:
        alice.close()


def clean_restart(srv):
    """Stored messages survive SIGTERM and a new start; 250 messages also
    cross several delivery batches in order."""
    n = 250
    alice = login(srv, 'alice@localhost')
    for i in range(n):
        alice.send("<message to='heidi@localhost' id='r%d' type='chat'><body>%d</body>"
                   "</message>" % (i, i))
    sync(alice)
    no_messages(alice, 0.3)
    alice.close()
    problems = srv.stop()
    check(not problems, 'SIGTERM: %s' % '; '.join(problems))
    srv.restart()
    heidi = login(srv, 'heidi@localhost', presence='<presence/>')
    try:
        got = messages(heidi, n, timeout=20)
        check([m.get('id') for m in got] == ['r%d' % i for i in range(n)], 'order after restart')
        no_messages(heidi, 0.5)
    finally:
        heidi.close()
    time.sleep(0.3)
    check(srv.stored('heidi') == 0, 'delivered messages still stored')


def _kill9_round(srv, user, n, ping_to, tag):
    """Send n messages, ping, kill -9 at the answer, restart, count."""
    alice = login(srv, 'alice@localhost')
    for i in range(n):
        alice.send("<message to='%s@localhost' id='%s%d' type='chat'><body>%d</body>"
                   "</message>" % (user, tag, i, i))
    sync(alice, to=ping_to)
    srv.kill9()
    t_kill = time.monotonic()
    alice.sock.close()
    srv.restart()
    c = login(srv, user + '@localhost', presence='<presence/>')
    ids = []
    try:
        while True:
            el = c.recv(timeout=2)
            if rt.tag(el) == 'message':
                ids.append(el.get('id'))
    except TestFailure as e:
        if 'nothing received' not in str(e):
            raise
    c.close()
    return ids, t_kill


def _commit_lag(srv, user, n):
    """Milliseconds from the ping answer until all n appends are visible
    in the database (the commit lag the kill -9 test races against)."""
    alice = login(srv, 'alice@localhost')
    try:
        for i in range(n):
            alice.send("<message to='%s@localhost' id='l%d' type='chat'><body>%d</body>"
                       "</message>" % (user, i, i))
        sync(alice)
        t0 = time.monotonic()
        first = srv.stored(user)
        while srv.stored(user) < n and time.monotonic() - t0 < 5:
            time.sleep(0.0005)
        return first, (time.monotonic() - t0) * 1000
    finally:
        alice.close()


def kill9_after_commit(srv):
    """Control for kill9_durability: kill -9 once the appends are visible
    in the database (committed) loses nothing and duplicates nothing."""
    n, user = 20, 'mallory'
    alice = login(srv, 'alice@localhost')
    for i in range(n):
        alice.send("<message to='%s@localhost' id='c%d' type='chat'><body>%d</body>"
                   "</message>" % (user, i, i))
    sync(alice)
    t0 = time.monotonic()
    while srv.stored(user) < n:
        check(time.monotonic() - t0 < 5, 'appends not committed within 5 s')
    srv.kill9()
    alice.sock.close()
    srv.restart()
    c = login(srv, user + '@localhost', presence='<presence/>')
    try:
        got = messages(c, n)
        check([m.get('id') for m in got] == ['c%d' % i for i in range(n)], 'order after kill -9')
        no_messages(c, 1.0)
    finally:
        c.close()


# ----------------------------------------------------------------- run

# Tests whose expectations Prosody 0.12 shares; the others test Roost
# policy (quota, chat states, hints, restarts).
PORTABLE = [order_delay_once, disco_feature, unknown_account, two_resources_once]
GROUPS = [(OfflineRoost, [order_delay_once, disco_feature, quota_bounce, not_stored,
                          unknown_account, negative_priority, two_resources_once,
                          order_during_delivery, carbons_private_stripped,
                          clean_restart, kill9_after_commit])]


def run_group(cls, tests):
    return rt.run_group(cls, USERS, tests, 'offline')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--server', choices=('roost', 'prosody'), default='roost')
    ap.add_argument('tests', nargs='*', help='run only these tests')
    args = ap.parse_args()
    groups = GROUPS if args.server == 'roost' else [(OfflineProsody, PORTABLE)]
    if args.tests:
        # Named tests run against either server (to compare policies).
        groups = [(groups[0][0], [t for t in GROUPS[0][1] if t.__name__ in args.tests])]
    passed = failed = 0
    for cls, tests in groups:
        if tests:
            p, f = run_group(cls, tests)
            passed += p
            failed += f
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
