"""Privacy lists (XEP-0016) and blocking (XEP-0191), mod_privacy, over real
sockets.

One rule engine: the blocklist is the default privacy list's jid/deny
items without stanza-kind children, so a block shows in XEP-0016 and a
jid/deny item added through XEP-0016 shows in the blocklist.  Covered:
blocking and unblocking (pushes, errors both ways, unblock all), the two
protocols seeing each other's changes, enforcement while the owner is
offline (no offline storage of a blocked contact's message), jid /
group / subscription items for message, presence-in, presence-out and
iq, allow/deny ordering, active versus default lists, the XEP-0016 error
conditions, and lists surviving a restart.

    python3 test_privacy.py                   # roostd with mod_privacy
    python3 test_privacy.py --server prosody  # the blocking tests against
                                              # Debian's Prosody (mod_blocklist;
                                              # it has no privacy lists)

Roost is started with the modules of ROOST_MODULES_DIR (mod_privacy.so
must be there).  Prints 'N passed, N failed'.
"""
import argparse
import os
import re
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi',
         'ivan', 'judy', 'mallory', 'oscar', 'peggy', 'trent', 'victor',
         'walter', 'sybil', 'rupert', 'uma', 'wendy', 'yara', 'zoe', 'quinn',
         'kim', 'lou', 'max']
USERS = dict(('%s@localhost' % n, '%s-Secret-%d' % (n, i)) for i, n in enumerate(NAMES))
USERS['xena@example.test'] = 'xena-Secret-x'
NS_PRIV = 'jabber:iq:privacy'
NS_BLOCK = 'urn:xmpp:blocking'
NS_BLOCKERR = 'urn:xmpp:blocking:errors'
NS_ROSTER = 'jabber:iq:roster'
NS_CARBONS = 'urn:xmpp:carbons:2'


class PrivacyRoost(rt.Roost):
    """Both vhosts with privacy and offline added to the module list."""

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        conf, n = re.subn(r'modules = \[([^\]]*)\]',
                          lambda mo: 'modules = [%s, "offline", "privacy", "carbons" ]'
                          % mo.group(1).rstrip(), conf)
        check(n == len(rt.DOMAINS), 'could not rewrite the module lists')
        with open(self.config, 'w') as f:
            f.write(conf)

    def restart(self):
        self._spawn([self.roostd, '-c', self.config])

    def stored(self, user, host='localhost'):
        db = sqlite3.connect('file:%s?mode=ro' % os.path.join(self.dir, 'data', 'roost.db'),
                             uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM archive WHERE host=? AND store='offline'"
                              " AND user=?", (host, user)).fetchone()[0]
        finally:
            db.close()


class BlocklistProsody(rt.Prosody):
    """Debian's Prosody with mod_blocklist and mod_offline (the reference
    for XEP-0191; Prosody 0.12 has no XEP-0016)."""

    def stored(self, user, host='localhost'):
        path = os.path.join(self.dir, 'data', host.replace('.', '%2e'), 'offline')
        return int(os.path.isdir(path) and any(f.startswith(user + '.') for f in os.listdir(path)))

    extra_modules = ("offline", "blocklist")


# ------------------------------------------------------------- helpers

def login(srv, name, resource=None, presence=None):
    jid = '%s@localhost' % name
    c = Client(srv, jid, USERS[jid], name=name).login(resource=resource)
    if presence is not None:
        c.send(presence)
        wait_for(c, lambda e: rt.tag(e) == 'presence' and e.get('from') == c.full_jid,
                 'own presence')
    return c


def stanzas(c, timeout=0.8):
    """Everything c receives within timeout."""
    got, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        try:
            got.append(c.recv(timeout=left))
        except TestFailure as e:
            if 'nothing received' in str(e):
                return got
            raise


def wait_for(c, pred, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: no %s; got %s' % (c.name, what,
                              ' '.join(rt.to_string(e) for e in seen) or 'nothing'))
        try:
            el = c.recv(timeout=left)
        except TestFailure as e:
            if 'nothing received' in str(e):
                continue
            raise
        if pred(el):
            return el
        seen.append(el)


def none_of(c, pred, what, timeout=0.8):
    for el in stanzas(c, timeout):
        check(not pred(el), '%s: unexpected %s: %s' % (c.name, what, rt.to_string(el)))


def is_msg(mid):
    return lambda e: rt.tag(e) == 'message' and e.get('id') == mid


def is_push(ns_, name=None):
    def p(e):
        if rt.tag(e) != 'iq' or e.get('type') != 'set':
            return False
        child = next(iter(e), None)
        return child is not None and rt.ns(child) == ns_ and (name is None or rt.tag(child) == name)
    return p


def is_presence(frm, typ=None):
    return lambda e: (rt.tag(e) == 'presence' and e.get('from') == frm and
                      e.get('type') == typ)


def sync(c):
    r = c.iq("<iq type='get' id='sync%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
             % (int(time.monotonic() * 1e6), c.domain))
    check(r.get('type') in ('result', 'error'), 'ping: %s' % rt.to_string(r))


def iq_ok(c, xml):
    r = c.iq(xml)
    check(r.get('type') == 'result', '%s: want result for %s, got %s'
          % (c.name, xml, rt.to_string(r)))
    return r


def iq_err(c, xml, cond):
    r = c.iq(xml)
    check(r.get('type') == 'error' and rt.error_condition(r) == cond,
          '%s: want <%s/> for %s, got %s' % (c.name, cond, xml, rt.to_string(r)))
    return r


def send_msg(c, to, mid, typ='chat'):
    c.send("<message to='%s' id='%s' type='%s'><body>%s</body></message>" % (to, mid, typ, mid))


def expect_msg_error(c, mid, cond, blocked=False):
    el = wait_for(c, is_msg(mid), 'error for %s' % mid)
    check(el.get('type') == 'error' and rt.error_condition(el) == cond,
          'want <%s/> for %s, got %s' % (cond, mid, rt.to_string(el)))
    has = el.find('{jabber:client}error/{%s}blocked' % NS_BLOCKERR) is not None
    check(has == blocked, '<blocked/> %s expected: %s' % ('is' if blocked else 'not',
                                                          rt.to_string(el)))
    return el


def blocklist(c):
    r = iq_ok(c, "<iq type='get' id='bl%d'><blocklist xmlns='%s'/></iq>"
              % (int(time.monotonic() * 1e6), NS_BLOCK))
    return sorted(i.get('jid') for i in r.iter('{%s}item' % NS_BLOCK))


def block(c, *jids, op='block'):
    items = ''.join("<item jid='%s'/>" % j for j in jids)
    return iq_ok(c, "<iq type='set' id='%s%d'><%s xmlns='%s'>%s</%s></iq>"
                 % (op, int(time.monotonic() * 1e6), op, NS_BLOCK, items, op))


def set_list(c, name, items):
    return c.iq("<iq type='set' id='sl%d'><query xmlns='%s'><list name='%s'>%s</list>"
                "</query></iq>" % (int(time.monotonic() * 1e6), NS_PRIV, name, items))


def set_list_ok(c, name, items):
    r = set_list(c, name, items)
    check(r.get('type') == 'result', 'set list %s: %s' % (name, rt.to_string(r)))


def priv_set(c, what, name=None):
    attr = " name='%s'" % name if name is not None else ''
    return c.iq("<iq type='set' id='ps%d'><query xmlns='%s'><%s%s/></query></iq>"
                % (int(time.monotonic() * 1e6), NS_PRIV, what, attr))


def get_list(c, name):
    r = iq_ok(c, "<iq type='get' id='gl%d'><query xmlns='%s'><list name='%s'/></query></iq>"
              % (int(time.monotonic() * 1e6), NS_PRIV, name))
    return [dict(i.attrib, kinds=sorted(rt.tag(k) for k in i))
            for i in r.iter('{%s}item' % NS_PRIV)]


def get_names(c):
    r = iq_ok(c, "<iq type='get' id='gn%d'><query xmlns='%s'/></iq>"
              % (int(time.monotonic() * 1e6), NS_PRIV))
    q = r.find('{%s}query' % NS_PRIV)
    act = q.find('{%s}active' % NS_PRIV)
    dfl = q.find('{%s}default' % NS_PRIV)
    return (act.get('name') if act is not None else None,
            dfl.get('name') if dfl is not None else None,
            sorted(l.get('name') for l in q.findall('{%s}list' % NS_PRIV)))


def subscribe_both(a, b):
    """Mutual subscription between the online clients a and b (both ask
    for the roster first: subscribed goes to interested resources)."""
    for x in (a, b):
        iq_ok(x, "<iq type='get' id='r%d'><query xmlns='%s'/></iq>"
              % (int(time.monotonic() * 1e6), NS_ROSTER))
    for x, y in ((a, b), (b, a)):
        x.send("<presence type='subscribe' to='%s'/>" % y.jid)
        wait_for(y, lambda e: rt.tag(e) == 'presence' and e.get('type') == 'subscribe',
                 'subscribe')
        y.send("<presence type='subscribed' to='%s'/>" % x.jid)
        wait_for(x, lambda e: rt.tag(e) == 'presence' and e.get('type') == 'subscribed',
                 'subscribed')
    stanzas(a, 0.4)
    stanzas(b, 0.4)


def roster_group(c, jid, group):
    iq_ok(c, "<iq type='set' id='rg%d'><query xmlns='%s'><item jid='%s'><group>%s</group>"
          "</item></query></iq>" % (int(time.monotonic() * 1e6), NS_ROSTER, jid, group))


# --------------------------------------------------------------- tests
# XEP-0191 (portable: Prosody's mod_blocklist is the reference)

def block_basic(srv):
    """XEP-0191 §3.2-3.4: an empty blocklist; a block is answered and
    pushed to every resource that asked for the blocklist (not to one
    that did not); the blocked contact's message and iq get service-
    unavailable, its presence is dropped; the user's own message to it
    gets not-acceptable with <blocked/>; unblock pushes and lets both
    ways through again."""
    a1 = login(srv, 'alice', 'one', presence='<presence/>')
    a2 = login(srv, 'alice', 'two')
    a3 = login(srv, 'alice', 'three')
    b = login(srv, 'bob', presence='<presence/>')
    try:
        check(blocklist(a1) == [], 'blocklist not empty')
        check(blocklist(a2) == [], 'blocklist not empty')
        stanzas(a1, 0.3)
        block(a1, 'Bob@LOCALHOST')
        for c in (a1, a2):
            p = wait_for(c, is_push(NS_BLOCK, 'block'), 'block push')
            items = [i.get('jid') for i in p.iter('{%s}item' % NS_BLOCK)]
            check(items == ['bob@localhost'], 'push items %r' % items)
        none_of(a3, is_push(NS_BLOCK), 'block push to a resource that did not ask')
        check(blocklist(a1) == ['bob@localhost'], 'blocklist: %r' % blocklist(a1))
        send_msg(b, 'alice@localhost', 'b1')
        expect_msg_error(b, 'b1', 'service-unavailable')
        r = b.iq("<iq type='get' id='bv1' to='alice@localhost'><query xmlns='jabber:iq:last'/></iq>")
        check(r.get('type') == 'error' and rt.error_condition(r) == 'service-unavailable',
              'iq from blocked: %s' % rt.to_string(r))
        # ROOST_EV_IQ_FULL: an iq to one of the user's full JIDs is
        # filtered too, and never reaches that session.
        r = b.iq("<iq type='get' id='bv2' to='alice@localhost/one'><query "
                 "xmlns='jabber:iq:version'/></iq>")
        check(r.get('type') == 'error' and rt.error_condition(r) == 'service-unavailable',
              'iq to a full JID from blocked: %s' % rt.to_string(r))
        none_of(a1, lambda e: rt.tag(e) == 'iq' and e.get('id') == 'bv2',
                'iq from bob delivered')
        b.send("<presence to='alice@localhost/one'/>")
        send_msg(a1, 'bob@localhost', 'a1')
        expect_msg_error(a1, 'a1', 'not-acceptable', blocked=True)
        none_of(a1, lambda e: e.get('from', '').startswith('bob@'), 'stanza from bob')
        none_of(b, lambda e: rt.tag(e) in ('message', 'presence') and
                e.get('from', '').startswith('alice@'), 'stanza from alice')
        block(a2, 'bob@localhost', op='unblock')
        for c in (a1, a2):
            p = wait_for(c, is_push(NS_BLOCK, 'unblock'), 'unblock push')
            check([i.get('jid') for i in p.iter('{%s}item' % NS_BLOCK)] == ['bob@localhost'],
                  'unblock push: %s' % rt.to_string(p))
        check(blocklist(a1) == [], 'blocklist after unblock: %r' % blocklist(a1))
        send_msg(b, 'alice@localhost', 'b2')
        wait_for(a1, is_msg('b2'), 'message after unblock')
        send_msg(a1, 'bob@localhost', 'a2')
        wait_for(b, is_msg('a2'), 'message after unblock')
    finally:
        for c in (a1, a2, a3, b):
            c.close()


def block_errors_unblock_all(srv):
    """XEP-0191 §3.3: <block/> without items is bad-request, a bad JID
    jid-malformed; §3.5: an empty <unblock/> unblocks all and is pushed
    as such."""
    c = login(srv, 'carol')
    try:
        blocklist(c)
        iq_err(c, "<iq type='set' id='e1'><block xmlns='%s'/></iq>" % NS_BLOCK, 'bad-request')
        iq_err(c, "<iq type='set' id='e2'><block xmlns='%s'><item jid='a@b@c'/></block></iq>"
               % NS_BLOCK, 'jid-malformed')
        block(c, 'x@example.org', 'y@example.org', 'example.net')
        stanzas(c, 0.3)
        check(blocklist(c) == ['example.net', 'x@example.org', 'y@example.org'],
              'blocklist %r' % blocklist(c))
        block(c, op='unblock')
        p = wait_for(c, is_push(NS_BLOCK, 'unblock'), 'unblock-all push')
        check(len(list(p.iter('{%s}item' % NS_BLOCK))) == 0, 'unblock all push has items')
        check(blocklist(c) == [], 'not all unblocked')
    finally:
        c.close()


def block_offline(srv):
    """XEP-0191 §3.3 "applies across sessions": with the user offline, a
    blocked contact's message bounces service-unavailable and is not
    stored; an unblocked one is stored."""
    d = login(srv, 'dave')
    block(d, 'erin@localhost')
    d.close()
    time.sleep(0.3)
    e = login(srv, 'erin')
    f = login(srv, 'frank')
    try:
        send_msg(e, 'dave@localhost', 'off1')
        expect_msg_error(e, 'off1', 'service-unavailable')
        send_msg(f, 'dave@localhost', 'off2')
        sync(f)
        none_of(f, is_msg('off2'), 'bounce for an unblocked sender', 0.5)
        time.sleep(0.3)
        check(srv.stored('dave') == 1, 'stored %d, want 1' % srv.stored('dave'))
        d = login(srv, 'dave', presence='<presence/>')
        got = [m.get('id') for m in stanzas(d, 1.0) if rt.tag(m) == 'message']
        check(got == ['off2'], 'offline messages %r' % got)
        d.close()
    finally:
        e.close()
        f.close()


def block_presence(srv):
    """XEP-0191 §3.3/§3.4 with a mutual subscription: blocking sends the
    contact unavailable from each available resource, and then nothing
    of the user's presence reaches it; unblocking sends the current
    presence again."""
    g = login(srv, 'grace', presence='<presence/>')
    h = login(srv, 'heidi', presence='<presence/>')
    try:
        subscribe_both(g, h)
        g.send('<presence><show>away</show></presence>')
        wait_for(h, is_presence(g.full_jid), 'presence before the block')
        block(g, 'heidi@localhost')
        wait_for(h, is_presence(g.full_jid, 'unavailable'), 'unavailable at block')
        g.send('<presence><show>dnd</show></presence>')
        none_of(h, lambda e: rt.tag(e) == 'presence' and e.get('from') == g.full_jid,
                'presence after the block')
        block(g, 'heidi@localhost', op='unblock')
        p = wait_for(h, is_presence(g.full_jid), 'presence at unblock')
        check(p.findtext('{jabber:client}show') == 'dnd', 'not the current presence: %s'
              % rt.to_string(p))
    finally:
        g.close()
        h.close()


# XEP-0016 and the mapping (Roost only: Prosody 0.12 has no privacy lists)

def mapping_both_ways(srv):
    """XEP-0191 §3: a block is a jid/deny item of the default list (made
    and set as default when there is none); a jid/deny item added through
    XEP-0016 shows in the blocklist and is pushed; a jid item limited to
    messages is not in the blocklist."""
    c = login(srv, 'ivan')
    try:
        blocklist(c)
        block(c, 'x@localhost')
        stanzas(c, 0.3)
        act, dfl, names = get_names(c)
        check(act is None and dfl is not None and names == [dfl], 'names %r' % ((act, dfl, names),))
        items = get_list(c, dfl)
        check(len(items) == 1 and items[0].get('type') == 'jid' and
              items[0].get('value') == 'x@localhost' and items[0].get('action') == 'deny' and
              items[0]['kinds'] == [], 'list %r' % items)
        set_list_ok(c, dfl, "<item type='jid' value='x@localhost' action='deny' order='1'/>"
                    "<item type='jid' value='y@localhost' action='deny' order='2'/>"
                    "<item type='jid' value='z@localhost' action='deny' order='3'><message/></item>"
                    "<item action='allow' order='4'/>")
        got = stanzas(c, 0.5)
        check(any(is_push(NS_PRIV)(e) for e in got), 'no privacy list push')
        bp = [e for e in got if is_push(NS_BLOCK, 'block')(e)]
        check(len(bp) == 1 and [i.get('jid') for i in bp[0].iter('{%s}item' % NS_BLOCK)]
              == ['y@localhost'], 'block push for the XEP-0016 edit: %r'
              % [rt.to_string(e) for e in got])
        check(blocklist(c) == ['x@localhost', 'y@localhost'], 'blocklist %r' % blocklist(c))
        block(c, 'w@localhost')
        items = get_list(c, dfl)
        check([i.get('value') for i in items] ==
              ['w@localhost', 'x@localhost', 'y@localhost', 'z@localhost', None],
              'blocked item not first: %r' % items)
        check(len(set(i['order'] for i in items)) == len(items), 'orders not unique')
        block(c, op='unblock')
        items = get_list(c, dfl)
        check([i.get('value') for i in items] == ['z@localhost', None], 'after unblock all %r'
              % items)
    finally:
        c.close()


def rules_message(srv):
    """XEP-0016 §2.9: jid, subscription and group items for messages in
    the default list, first match wins by order, fall-through allow."""
    j = login(srv, 'judy', presence='<presence/>')
    m = login(srv, 'mallory')
    o = login(srv, 'oscar', presence='<presence/>')
    p = login(srv, 'peggy', presence='<presence/>')
    try:
        subscribe_both(j, o)
        roster_group(j, 'mallory@localhost', 'Enemies')
        stanzas(j, 0.3)
        # oscar (both) allowed by jid before the subscription rule would
        # matter; mallory by group; peggy (none) by subscription.
        set_list_ok(j, 'l', "<item type='group' value='Enemies' action='deny' order='5'>"
                    "<message/></item>"
                    "<item type='subscription' value='none' action='deny' order='9'><message/>"
                    "</item><item type='jid' value='peggy@localhost' action='allow' order='7'/>")
        check(priv_set(j, 'default', 'l').get('type') == 'result', 'default')
        send_msg(m, 'judy@localhost', 'm1')
        expect_msg_error(m, 'm1', 'service-unavailable')
        send_msg(o, 'judy@localhost', 'o1')
        wait_for(j, is_msg('o1'), 'message from a contact')
        send_msg(p, 'judy@localhost', 'p1')
        wait_for(j, is_msg('p1'), 'message allowed by an earlier jid item')
        set_list_ok(j, 'l', "<item type='subscription' value='none' action='deny' order='1'>"
                    "<message/></item><item type='jid' value='peggy@localhost' action='allow' "
                    "order='7'/>")
        send_msg(p, 'judy@localhost', 'p2')
        expect_msg_error(p, 'p2', 'service-unavailable')
        send_msg(m, 'judy@localhost', 'm2')   # mallory: roster item, sub none
        expect_msg_error(m, 'm2', 'service-unavailable')
        # Messages only: presence from peggy still arrives.
        p.send("<presence to='%s'/>" % j.full_jid)
        wait_for(j, is_presence(p.full_jid), 'directed presence not filtered')
        # The user's own messages out are not affected by message items.
        send_msg(j, 'peggy@localhost', 'j1')
        wait_for(p, is_msg('j1'), 'outbound message')
    finally:
        for c in (j, m, o, p):
            c.close()


def rules_presence(srv):
    """XEP-0016 §2.10/§2.11: presence-in deny drops a contact's
    broadcasts but not its messages; presence-out deny: unavailable at
    the change, no broadcasts, no probe answers (polite blocking), the
    user's directed presence gets not-acceptable."""
    t = login(srv, 'trent', presence='<presence/>')
    v = login(srv, 'victor', presence='<presence/>')
    try:
        subscribe_both(t, v)
        set_list_ok(t, 'pin', "<item type='jid' value='victor@localhost' action='deny' "
                    "order='1'><presence-in/></item>")
        check(priv_set(t, 'active', 'pin').get('type') == 'result', 'active')
        stanzas(t, 0.3)
        v.send('<presence><show>chat</show></presence>')
        none_of(t, lambda e: rt.tag(e) == 'presence' and e.get('from') == v.full_jid,
                'presence-in denied')
        send_msg(v, 'trent@localhost', 'v1')
        wait_for(t, is_msg('v1'), 'message with presence-in denied')
        check(priv_set(t, 'active').get('type') == 'result', 'decline active')
        set_list_ok(t, 'pout', "<item type='subscription' value='both' action='deny' "
                    "order='1'><presence-out/></item>")
        stanzas(v, 0.3)
        check(priv_set(t, 'active', 'pout').get('type') == 'result', 'active pout')
        wait_for(v, is_presence(t.full_jid, 'unavailable'), 'unavailable at presence-out deny')
        t.send('<presence><show>away</show></presence>')
        none_of(v, lambda e: rt.tag(e) == 'presence' and e.get('from') == t.full_jid,
                'broadcast past presence-out')
        v.send("<presence type='probe' to='trent@localhost'/>")
        none_of(v, lambda e: rt.tag(e) == 'presence' and
                e.get('from', '').startswith('trent@'), 'probe answer past presence-out')
        t.send("<presence to='victor@localhost' id='dp1'/>")
        el = wait_for(t, lambda e: rt.tag(e) == 'presence' and e.get('id') == 'dp1',
                      'error for directed presence')
        check(el.get('type') == 'error' and rt.error_condition(el) == 'not-acceptable',
              'directed presence: %s' % rt.to_string(el))
        check(priv_set(t, 'active').get('type') == 'result', 'decline active')
        p = wait_for(v, is_presence(t.full_jid), 'presence when presence-out allowed again')
        check(p.findtext('{jabber:client}show') == 'away', 'stale: %s' % rt.to_string(p))
    finally:
        t.close()
        v.close()


def presence_in_strangers(srv):
    """RFC 2779 5.3.2 by access control: presence from an entity with no
    subscription (directed presence, delivered by default, RFC 6121
    §8.5.2.1.2) is refused by a presence-in rule on subscription none,
    while a contact's broadcast still arrives."""
    y = login(srv, 'yara', presence='<presence/>')
    z = login(srv, 'zoe', presence='<presence/>')
    q = login(srv, 'quinn', presence='<presence/>')
    try:
        subscribe_both(y, z)
        q.send("<presence to='yara@localhost'><status>stranger</status></presence>")
        wait_for(y, is_presence(q.full_jid), 'directed presence from a stranger, no rule')
        set_list_ok(y, 'nostrangers', "<item type='subscription' value='none' action='deny' "
                    "order='1'><presence-in/></item>")
        check(priv_set(y, 'default', 'nostrangers').get('type') == 'result', 'default')
        stanzas(y, 0.3)
        q.send("<presence to='yara@localhost'><status>again</status></presence>")
        none_of(y, is_presence(q.full_jid), 'stranger presence past presence-in')
        z.send('<presence><show>away</show></presence>')
        wait_for(y, is_presence(z.full_jid), "a contact's broadcast")
    finally:
        for c in (y, z, q):
            c.close()


def presence_out_other_vhost(srv):
    """Polite blocking (RFC 2779 5.1.15) towards a watcher on another
    vhost of this server: the presence-out rule of the user (on
    localhost) stops broadcasts and probe answers before they are routed
    (ROOST_EV_OUTBOUND), although the watcher's vhost runs its own privacy
    instance that does not know the user's lists."""
    w = login(srv, 'walter', presence='<presence/>')
    x = Client(srv, 'xena@example.test', USERS['xena@example.test'],
               name='xena').login()
    try:
        x.send('<presence/>')
        stanzas(x, 0.3)
        subscribe_both(w, x)
        w.send('<presence><show>chat</show></presence>')
        wait_for(x, is_presence(w.full_jid), 'presence before the rule')
        set_list_ok(w, 'pout-x', "<item type='jid' value='example.test' action='deny' "
                    "order='1'><presence-out/></item>")
        check(priv_set(w, 'active', 'pout-x').get('type') == 'result', 'active')
        stanzas(x, 0.5)
        w.send('<presence><show>dnd</show></presence>')
        none_of(x, lambda e: rt.tag(e) == 'presence' and e.get('from') == w.full_jid,
                'broadcast to another vhost past presence-out')
        x.send("<presence type='probe' to='walter@localhost'/>")
        none_of(x, lambda e: rt.tag(e) == 'presence' and
                e.get('from', '').startswith('walter@'), 'probe answer past presence-out')
        send_msg(w, 'xena@example.test', 'wx1')
        wait_for(x, is_msg('wx1'), 'message (presence-out only stops presence)')
    finally:
        w.close()
        x.close()


def rules_iq_and_all(srv):
    """XEP-0016 §2.12/§2.13: an iq item denies iq get (service-
    unavailable) but not messages; an "all" jid item also stops the
    user's outbound stanzas (not-acceptable without <blocked/> when the
    list is not the default)."""
    w = login(srv, 'walter', presence='<presence/>')
    s = login(srv, 'sybil', presence='<presence/>')
    try:
        set_list_ok(w, 'q', "<item type='jid' value='sybil@localhost' action='deny' order='3'>"
                    "<iq/></item>")
        check(priv_set(w, 'active', 'q').get('type') == 'result', 'active')
        r = s.iq("<iq type='get' id='i1' to='walter@localhost'><query xmlns='jabber:iq:last'/>"
                 "</iq>")
        check(rt.error_condition(r) == 'service-unavailable', 'iq: %s' % rt.to_string(r))
        send_msg(s, 'walter@localhost', 's1')
        wait_for(w, is_msg('s1'), 'message with iq denied')
        set_list_ok(w, 'q', "<item type='jid' value='sybil@localhost' action='deny' order='3'/>")
        send_msg(w, 'sybil@localhost', 'w1')
        expect_msg_error(w, 'w1', 'not-acceptable', blocked=False)
        send_msg(s, 'walter@localhost', 's2')
        expect_msg_error(s, 's2', 'service-unavailable')
    finally:
        w.close()
        s.close()


def active_vs_default(srv):
    """XEP-0016 §2.2: the active list replaces the default for its
    session only (no layering); a message to the full JID of a session
    without an active list is judged by the default list."""
    r1 = login(srv, 'rupert', 'one', presence='<presence><priority>5</priority></presence>')
    r2 = login(srv, 'rupert', 'two', presence='<presence><priority>1</priority></presence>')
    b = login(srv, 'bob')
    try:
        set_list_ok(r1, 'deny-bob', "<item type='jid' value='bob@localhost' action='deny' "
                    "order='1'/>")
        set_list_ok(r1, 'open', "<item action='allow' order='1'/>")
        check(priv_set(r1, 'default', 'deny-bob').get('type') == 'result', 'default')
        check(priv_set(r1, 'active', 'open').get('type') == 'result', 'active')
        check(get_names(r1)[:2] == ('open', 'deny-bob'), 'names r1 %r' % (get_names(r1),))
        check(get_names(r2)[:2] == (None, 'deny-bob'), 'names r2 %r' % (get_names(r2),))
        send_msg(b, 'rupert@localhost/one', 'x1')
        wait_for(r1, is_msg('x1'), 'message to the session with the open active list')
        send_msg(b, 'rupert@localhost/two', 'x2')
        expect_msg_error(b, 'x2', 'service-unavailable')
        send_msg(b, 'rupert@localhost', 'x3')   # one takes it, two does not
        wait_for(r1, is_msg('x3'), 'bare JID message to the session that accepts it')
        none_of(r2, is_msg('x3'), 'bare JID message past the default list of two')
        # §2.6: r2 uses the default list: r1 may not change or remove it.
        iq_err(r1, "<iq type='set' id='c1'><query xmlns='%s'><default name='open'/></query>"
               "</iq>" % NS_PRIV, 'conflict')
        iq_err(r1, "<iq type='set' id='c2'><query xmlns='%s'><default/></query></iq>" % NS_PRIV,
               'conflict')
        iq_err(r1, "<iq type='set' id='c3'><query xmlns='%s'><list name='deny-bob'/></query>"
               "</iq>" % NS_PRIV, 'conflict')
        iq_err(r2, "<iq type='set' id='c4'><query xmlns='%s'><list name='open'/></query></iq>"
               % NS_PRIV, 'conflict')
        # r1 removes its own active list: allowed, it falls back.
        check(priv_set(r1, 'active').get('type') == 'result', 'decline')
        check(priv_set(r2, 'active', 'open').get('type') == 'result', 'r2 active')
        iq_ok(r2, "<iq type='set' id='c5'><query xmlns='%s'><list name='open'/></query></iq>"
              % NS_PRIV)   # r2's own active list
        check(get_names(r2)[0] is None, 'active kept after removal')
    finally:
        for c in (r1, r2, b):
            c.close()


def per_resource_bare(srv):
    """XEP-0016 §2.2 per resource: a message or presence to the bare JID
    reaches each session by its own active list; a session whose list
    denies the sender does not get it, the others do, and the sender hears
    nothing; only when every session denies is the message refused
    (service-unavailable)."""
    t1 = login(srv, 'uma', 'one', presence='<presence><priority>5</priority></presence>')
    t2 = login(srv, 'uma', 'two', presence='<presence><priority>1</priority></presence>')
    v = login(srv, 'wendy', presence='<presence/>')
    try:
        subscribe_both(t1, v)
        stanzas(t2, 0.5)
        set_list_ok(t1, 'no-wendy', "<item type='jid' value='wendy@localhost' "
                    "action='deny' order='1'><message/><presence-in/></item>")
        check(priv_set(t1, 'active', 'no-wendy').get('type') == 'result', 'active t1')
        stanzas(t1, 0.3)
        stanzas(t2, 0.3)
        send_msg(v, 'uma@localhost', 'pr1')
        wait_for(t2, is_msg('pr1'), 'the session without the rule gets it')
        none_of(t1, is_msg('pr1'), 'the session whose active list denies it')
        none_of(v, lambda e: rt.tag(e) == 'message', 'no error while one session takes it')
        v.send('<presence><show>away</show></presence>')
        wait_for(t2, is_presence(v.full_jid), 'presence to the open session')
        none_of(t1, is_presence(v.full_jid), 'presence-in denied for t1 only')
        check(priv_set(t2, 'active', 'no-wendy').get('type') == 'result', 'active t2')
        send_msg(v, 'uma@localhost', 'pr2')
        expect_msg_error(v, 'pr2', 'service-unavailable')
        none_of(t1, is_msg('pr2'), 't1 after both deny')
        none_of(t2, is_msg('pr2'), 't2 after both deny')
    finally:
        for c in (t1, t2, v):
            c.close()


def is_carbon_of(mid):
    """A XEP-0280 <received/> copy of the message with id mid."""
    path = '{%s}received/{urn:xmpp:forward:0}forwarded/{jabber:client}message' % NS_CARBONS
    return lambda e: (rt.tag(e) == 'message' and
                      any(m.get('id') == mid for m in e.findall(path)))


def per_resource_carbons(srv):
    """A resource whose active list denies a sender's messages does not
    read them through the carbon copies of its other resource's messages
    (XEP-0280 <received/>, judged as the message it carries); a sender it
    does not deny still reaches it as a carbon."""
    k1 = login(srv, 'kim', 'one', presence='<presence/>')
    k2 = login(srv, 'kim', 'two', presence='<presence/>')
    lou = login(srv, 'lou')
    mx = login(srv, 'max')
    try:
        for c in (k1, k2):
            c.send("<iq type='set' id='cb'><enable xmlns='%s'/></iq>" % NS_CARBONS)
            wait_for(c, lambda e: rt.tag(e) == 'iq' and e.get('id') == 'cb' and
                     e.get('type') == 'result', 'carbons enabled')
        set_list_ok(k1, 'no-lou', "<item type='jid' value='lou@localhost' "
                    "action='deny' order='1'><message/></item>")
        check(priv_set(k1, 'active', 'no-lou').get('type') == 'result', 'active k1')
        stanzas(k1, 0.3)
        send_msg(mx, 'kim@localhost/two', 'cc1')
        wait_for(k2, is_msg('cc1'), 'the addressed resource')
        wait_for(k1, is_carbon_of('cc1'), 'a carbon of an allowed sender')
        send_msg(lou, 'kim@localhost/two', 'cc2')
        wait_for(k2, is_msg('cc2'), 'the addressed resource, which does not deny lou')
        none_of(k1, is_carbon_of('cc2'), 'a carbon of a denied sender')
        none_of(lou, lambda e: rt.tag(e) == 'message', 'nothing back to the sender')
    finally:
        for c in (k1, k2, lou, mx):
            c.close()


def errors_0016(srv):
    """XEP-0016 §2.1, §2.3-2.8 error conditions."""
    c = login(srv, 'oscar', 'err')
    try:
        P = "<iq type='%s' id='%s'><query xmlns='" + NS_PRIV + "'>%s</query></iq>"
        iq_err(c, P % ('get', 'e1', "<list name='nope'/>"), 'item-not-found')
        iq_err(c, P % ('get', 'e2', "<list name='a'/><list name='b'/>"), 'bad-request')
        iq_err(c, P % ('set', 'e3', "<active name='nope'/>"), 'item-not-found')
        iq_err(c, P % ('set', 'e4', "<default name='nope'/>"), 'item-not-found')
        iq_err(c, P % ('set', 'e5', "<list name='nope'/>"), 'item-not-found')
        iq_err(c, P % ('set', 'e6', "<active/><default/>"), 'bad-request')
        iq_err(c, P % ('set', 'e7', "<list name='d'><item action='deny' order='1'/>"
                       "<item action='allow' order='1'/></list>"), 'bad-request')
        iq_err(c, P % ('set', 'e8', "<list name='d'><item action='block' order='1'/></list>"),
               'bad-request')
        iq_err(c, P % ('set', 'e9', "<list name='d'><item action='deny'/></list>"),
               'bad-request')
        iq_err(c, P % ('set', 'e10', "<list name='d'><item type='subscription' value='some' "
                       "action='deny' order='1'/></list>"), 'bad-request')
        iq_err(c, P % ('set', 'e11', "<list name='d'><item type='group' value='NoSuchGroup' "
                       "action='deny' order='1'/></list>"), 'item-not-found')
        iq_err(c, P % ('set', 'e12', "<list name='d'><item type='jid' value='a@b@c' "
                       "action='deny' order='1'/></list>"), 'bad-request')
        check(get_names(c) == (None, None, []), 'something was stored: %r' % (get_names(c),))
        iq_err(c, "<iq type='get' id='e13' to='localhost'><query xmlns='%s'/></iq>" % NS_PRIV,
               'service-unavailable')
    finally:
        c.close()


def survives_restart(srv):
    """Lists, the default and the blocklist are stored and enforced after
    a restart, before the owner logs in."""
    h = login(srv, 'heidi', 'r')
    set_list_ok(h, 'keep', "<item type='jid' value='peggy@localhost' action='deny' order='1'>"
                "<message/></item>")
    check(priv_set(h, 'default', 'keep').get('type') == 'result', 'default')
    block(h, 'ivan@localhost')
    h.close()
    time.sleep(0.3)
    problems = srv.stop()
    check(not problems, 'SIGTERM: %s' % '; '.join(problems))
    srv.restart()
    p = login(srv, 'peggy')
    i = login(srv, 'ivan')
    try:
        send_msg(p, 'heidi@localhost', 'rp1')
        expect_msg_error(p, 'rp1', 'service-unavailable')
        send_msg(i, 'heidi@localhost', 'ri1')
        expect_msg_error(i, 'ri1', 'service-unavailable')
        h = login(srv, 'heidi', 'r')
        check(blocklist(h) == ['ivan@localhost'], 'blocklist %r' % blocklist(h))
        check(get_names(h) == (None, 'keep', ['keep']), 'names %r' % (get_names(h),))
        h.close()
    finally:
        p.close()
        i.close()


# ----------------------------------------------------------------- run

PORTABLE = [block_basic, block_errors_unblock_all, block_offline, block_presence]
ALL = PORTABLE + [mapping_both_ways, rules_message, rules_presence,
                  presence_in_strangers, presence_out_other_vhost, rules_iq_and_all,
                  active_vs_default, per_resource_bare, per_resource_carbons, errors_0016,
                  survives_restart]


def run_group(cls, tests):
    return rt.run_group(cls, USERS, tests, 'privacy')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--server', choices=('roost', 'prosody'), default='roost')
    ap.add_argument('tests', nargs='*', help='run only these tests')
    args = ap.parse_args()
    cls, tests = (PrivacyRoost, ALL) if args.server == 'roost' else (BlocklistProsody, PORTABLE)
    if args.tests:
        tests = [t for t in ALL if t.__name__ in args.tests]
    p, f = run_group(cls, tests)
    print('%d passed, %d failed' % (p, f))
    return 1 if f else 0


if __name__ == '__main__':
    sys.exit(main())
