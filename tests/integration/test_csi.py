"""Client State Indication (XEP-0352, mod_csi) over real sockets.

While a client is inactive, presence updates and chatter (chat states)
are held, presence coalesced to the latest per sender; an urgent stanza
(a message with a body, an iq) flushes them first, in order; <active/>
flushes; max_held bounds the hold.

    python3 test_csi.py                   # roostd with mod_csi
    python3 test_csi.py --server prosody  # the portable tests against
                                          # Debian's Prosody + mod_csi_simple

Prints 'N passed, N failed'.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402
from test_privacy import subscribe_both, stanzas  # noqa: E402

NS_CSI = 'urn:xmpp:csi:0'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
USERS = dict(('%s@localhost' % n, '%s-Secret-%d' % (n, i))
             for i, n in enumerate(['alice', 'bob', 'carol', 'dave', 'erin', 'frank',
                                    'grace', 'heidi']))
MAX_HELD = 4


class CsiRoost(rt.Roost):
    extra_modules = ('csi',)

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        old = '{ domain = "localhost"; '
        check(old in conf, 'could not find localhost in the test config')
        conf = conf.replace(old, old + 'csi = { max_held = %d; }; ' % MAX_HELD)
        with open(self.config, 'w') as f:
            f.write(conf)


class CsiProsody(rt.Prosody):
    extra_modules = ('csi_simple',)


def login(srv, name, presence=True):
    jid = '%s@localhost' % name
    c = Client(srv, jid, USERS[jid], name=name).login()
    if presence:
        c.send('<presence/>')
        stanzas(c, 0.3)
    return c


def pair(srv, a, b):
    x, y = login(srv, a), login(srv, b)
    subscribe_both(x, y)
    stanzas(x, 0.3)
    stanzas(y, 0.3)
    return x, y


def describe(el):
    if rt.tag(el) == 'presence':
        return 'presence:%s' % (el.findtext('{jabber:client}show') or el.get('type') or 'available')
    if rt.tag(el) == 'message':
        b = el.findtext('{jabber:client}body')
        if b is not None:
            return 'body:%s' % b
        return 'chatstate' if el.find('{%s}composing' % NS_CHATSTATES) is not None else 'message'
    return rt.tag(el)


def show(c, s):
    c.send('<presence><show>%s</show></presence>' % s)


def composing(c, to):
    c.send("<message to='%s' type='chat'><composing xmlns='%s'/></message>" % (to, NS_CHATSTATES))


def feature(srv):
    """XEP-0352 §3: the server offers <csi xmlns='urn:xmpp:csi:0'/> after
    authentication."""
    c = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='alice')
    c.connect()
    c.open_stream()
    c.starttls()
    c.auth()
    try:
        check(c.features.find('{%s}csi' % NS_CSI) is not None,
              'no <csi/> feature: %s' % rt.to_string(c.features))
    finally:
        c.close()


def hold_coalesce_flush(srv):
    """Inactive: presence updates and a chat state are held (nothing
    arrives); a message with a body flushes them first, presence
    coalesced to the latest, then the message."""
    a, b = pair(srv, 'alice', 'bob')
    try:
        a.send("<inactive xmlns='%s'/>" % NS_CSI)
        time.sleep(0.2)
        show(b, 'away')
        show(b, 'dnd')
        composing(b, a.full_jid)
        show(b, 'xa')
        got = stanzas(a, 1.0)
        check(got == [], 'inactive client got %s' % [describe(e) for e in got])
        b.send("<message to='%s' type='chat'><body>wake</body></message>" % a.full_jid)
        got = stanzas(a, 1.0)
        check([describe(e) for e in got] == ['chatstate', 'presence:xa', 'body:wake'],
              'flush order: %s' % [describe(e) for e in got])
    finally:
        a.close()
        b.close()


def active_flushes(srv):
    """<active/> delivers what was held."""
    a, b = pair(srv, 'carol', 'dave')
    try:
        a.send("<inactive xmlns='%s'/>" % NS_CSI)
        time.sleep(0.2)
        show(b, 'away')
        check(stanzas(a, 0.8) == [], 'held while inactive')
        a.send("<active xmlns='%s'/>" % NS_CSI)
        got = stanzas(a, 1.0)
        check([describe(e) for e in got] == ['presence:away'],
              'after <active/>: %s' % [describe(e) for e in got])
        show(b, 'chat')
        got = stanzas(a, 1.0)
        check([describe(e) for e in got] == ['presence:chat'], 'active again: direct')
    finally:
        a.close()
        b.close()


def iq_is_urgent(srv):
    """An iq reaches an inactive client at once."""
    a, b = pair(srv, 'erin', 'frank')
    try:
        a.send("<inactive xmlns='%s'/>" % NS_CSI)
        time.sleep(0.2)
        b.send("<iq type='get' id='p1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % a.full_jid)
        got = stanzas(a, 1.0)
        check([describe(e) for e in got] == ['iq'], 'iq to inactive: %s'
              % [describe(e) for e in got])
    finally:
        a.close()
        b.close()


def max_held(srv):
    """Roost: the hold never exceeds max_held; the stanza past it flushes
    everything (memory stays bounded)."""
    a, b = pair(srv, 'grace', 'heidi')
    try:
        a.send("<inactive xmlns='%s'/>" % NS_CSI)
        time.sleep(0.2)
        for _ in range(MAX_HELD):
            composing(b, a.full_jid)
        check(stanzas(a, 0.8) == [], 'held up to max_held')
        composing(b, a.full_jid)
        got = stanzas(a, 1.0)
        check(len(got) == MAX_HELD + 1, 'past max_held: %d arrived' % len(got))
    finally:
        a.close()
        b.close()


# Prosody 0.12 mod_csi_simple holds too but does not coalesce presence
# (XEP-0352 leaves how to batch to the server): hold_coalesce_flush and
# max_held are Roost policy.
PORTABLE = [feature, active_flushes, iq_is_urgent]
ALL = [feature, hold_coalesce_flush, active_flushes, iq_is_urgent, max_held]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', choices=['roost', 'prosody'], default='roost')
    args = ap.parse_args()
    cls, tests = (CsiRoost, ALL) if args.server == 'roost' else (CsiProsody, PORTABLE)
    p, f = rt.run_group(cls, USERS, tests, 'csi')
    print('%d passed, %d failed' % (p, f))
    return 1 if f else 0


if __name__ == '__main__':
    sys.exit(main())
