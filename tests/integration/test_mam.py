"""Message Archive Management (XEP-0313 urn:xmpp:mam:2, mod_mam) over real
sockets, with XEP-0359 stanza ids and XEP-0441 preferences.

Messages a local user sends or receives (chat/normal with a body) land in
their archive; the recipient gets them with <stanza-id by='bare JID'/>
naming the archive item (offline messages too); queries page with RSM
(max, after, empty before = last page) and fail with item-not-found /
bad-request as the XEP says; the account advertises the features; an
interop check queries the archive with slixmpp's xep_0313 plugin.
Forged stanza-ids (by the recipient, the sender or the server) are
removed; a second server checks archive_expires_after and
archive_max_items.

    python3 test_mam.py                   # roostd with mod_mam
    python3 test_mam.py --server prosody  # the same tests against Debian's
                                          # Prosody 0.12 + mod_mam

Prints 'N passed, N failed'.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'carol@localhost': 'carol-Secret-1234',
         'dave@localhost': 'dave-Secret-1',
         'erin@localhost': 'erin-Secret-2',
         'frank@localhost': 'frank-Secret-3'}
NS_MAM = 'urn:xmpp:mam:2'
NS_SID = 'urn:xmpp:sid:0'
NS_RSM = 'http://jabber.org/protocol/rsm'
NS_FWD = 'urn:xmpp:forward:0'
NS_DELAY = 'urn:xmpp:delay'
NS_HINTS = 'urn:xmpp:hints'


class MamRoost(rt.Roost):
    extra_modules = ('offline', 'mam')


class MamExpiryRoost(MamRoost):
    """Archive expiry (archive_expires_after) after 3 s, purged every
    second, and a quota of 3 items (archive_max_items)."""
    def write_config(self):
        super().write_config()
        with open(self.config, 'a') as f:
            f.write('mam = { archive_expires_after = 3; archive_cleanup_interval = 1;'
                    ' archive_max_items = 3; };\n')


class MamProsody(rt.Prosody):
    """Debian's Prosody 0.12 with mod_mam (the reference)."""
    extra_modules = ('offline', 'mam')


# ------------------------------------------------------------- helpers

def login(srv, jid, resource=None, presence='<presence/>'):
    c = Client(srv, jid, USERS[jid], name=jid.split('@')[0]).login(resource=resource)
    if presence is not None:
        c.send(presence)
    return c


def sync(c):
    r = c.iq("<iq type='get' id='sync%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
             % (int(time.monotonic() * 1000), c.domain))
    check(r.get('type') in ('result', 'error'), 'ping: %s' % rt.to_string(r))


def next_message(c, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        el = c.recv(timeout=max(0.1, deadline - time.monotonic()))
        if rt.tag(el) == 'message':
            return el


def send_chat(c, to, body, extra=''):
    c.send("<message to='%s' type='chat' id='m%d'><body>%s</body>%s</message>"
           % (to, int(time.monotonic() * 1e6), body, extra))


def form(**fields):
    out = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
           "type='hidden'><value>%s</value></field>" % NS_MAM)
    for k, v in fields.items():
        out += "<field var='%s'><value>%s</value></field>" % (k.replace('_', '-'), v)
    return out + '</x>'


def rsm(max=None, after=None, before=None):
    s = "<set xmlns='%s'>" % NS_RSM
    if max is not None:
        s += '<max>%d</max>' % max
    if after is not None:
        s += '<after>%s</after>' % after
    if before is not None:
        s += '<before>%s</before>' % before if before else '<before/>'
    return s + '</set>'


_qn = [0]


def query(c, inner=''):
    """Runs a query; returns (results, iq) where results are (id, forwarded
    message, delay stamp) in the order received."""
    _qn[0] += 1
    qid, iqid = 'q%d' % _qn[0], 'mamq%d' % _qn[0]
    c.send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'>%s</query></iq>"
           % (iqid, NS_MAM, qid, inner))
    results = []
    while True:
        el = c.recv(timeout=10)
        if rt.tag(el) == 'iq' and el.get('id') == iqid:
            return results, el
        if rt.tag(el) != 'message':
            continue
        r = el.find('{%s}result' % NS_MAM)
        if r is None:
            continue
        check(r.get('queryid') == qid, 'queryid: %s' % rt.to_string(el))
        check(el.get('from') in (None, c.jid.split('/')[0]),
              'result from %r, not the archive' % el.get('from'))
        fwd = r.find('{%s}forwarded' % NS_FWD)
        check(fwd is not None, 'no forwarded: %s' % rt.to_string(el))
        delay = fwd.find('{%s}delay' % NS_DELAY)
        check(delay is not None and delay.get('stamp'), 'no delay: %s' % rt.to_string(el))
        results.append((r.get('id'), fwd.find('{jabber:client}message'), delay.get('stamp')))


def fin(iq):
    check(iq.get('type') == 'result', 'query failed: %s' % rt.to_string(iq))
    f = iq.find('{%s}fin' % NS_MAM)
    check(f is not None, 'no fin: %s' % rt.to_string(iq))
    s = f.find('{%s}set' % NS_RSM)
    check(s is not None, 'no RSM set in fin: %s' % rt.to_string(iq))
    return f, s


def bodies(results):
    return [m.findtext('{jabber:client}body') for _, m, _ in results]


def stanza_id(el, by):
    ids = [s for s in el.findall('{%s}stanza-id' % NS_SID) if s.get('by') == by]
    check(len(ids) == 1, 'want one stanza-id by %s: %s' % (by, rt.to_string(el)))
    return ids[0].get('id')


# --------------------------------------------------------------- tests

def stanza_id_and_both_archives(srv):
    """XEP-0313 §3.3 / XEP-0359: bob receives alice's message with one
    stanza-id by bob's bare JID (the forged one alice put in is gone,
    origin-id kept); it is the archive id of the item in bob's archive;
    alice's archive holds her outgoing copy, without a stanza-id leaking
    to bob in her name."""
    alice = login(srv, 'alice@localhost', 'a')
    bob = login(srv, 'bob@localhost', 'b')
    try:
        sync(bob)
        send_chat(alice, 'bob@localhost', 'hello bob',
                  "<stanza-id xmlns='%s' by='bob@localhost' id='forged'/>"
                  "<origin-id xmlns='%s' id='orig-1'/>" % (NS_SID, NS_SID))
        m = next_message(bob)
        if srv.name == 'prosody':
            # Prosody 0.12 delivers the forged stanza-id next to its own;
            # XEP-0359 §4 rules 3 and 4 (override, at most one per 'by')
            # decide for Roost's single one.
            m = [s for s in m.findall('{%s}stanza-id' % NS_SID) if s.get('id') != 'forged']
            check(len(m) == 1, 'prosody: no stanza-id of its own')
            sid = m[0].get('id')
            m = None
        else:
            sid = stanza_id(m, 'bob@localhost')
            check(sid != 'forged', 'forged stanza-id kept')
            check(m.find('{%s}origin-id' % NS_SID) is not None, 'origin-id dropped')
        res, iq = query(bob, form(**{'with': 'alice@localhost'}))
        fin(iq)
        check(bodies(res) == ['hello bob'], 'bob archive: %r' % bodies(res))
        check(res[0][0] == sid, 'stanza-id %s is not the archive id %s' % (sid, res[0][0]))
        res, iq = query(alice, form(**{'with': 'bob@localhost'}))
        fin(iq)
        check(bodies(res) == ['hello bob'], 'alice archive: %r' % bodies(res))
        check(res[0][1].get('to') == 'bob@localhost', 'outgoing to: %s' % rt.to_string(res[0][1]))
    finally:
        alice.close()
        bob.close()


def forged_stanza_ids(srv):
    """XEP-0359 §4 rule 3: stanza-ids claiming to be by the recipient's
    archive or by the server itself, put there by the sender, are gone
    from what the recipient gets (an archived chat message and a chat
    state that is not archived alike), and the sender's archive does not
    keep the ones claiming to be by the sender's archive or the server;
    another entity's stanza-id and the origin-id stay (rule 1)."""
    alice = login(srv, 'alice@localhost', 'af')
    bob = login(srv, 'bob@localhost', 'bf')
    forged = ("<stanza-id xmlns='%s' by='bob@localhost' id='f-bob'/>"
              "<stanza-id xmlns='%s' by='localhost' id='f-host'/>"
              "<stanza-id xmlns='%s' by='alice@localhost' id='f-alice'/>"
              "<stanza-id xmlns='%s' by='muc.example' id='keep'/>"
              "<origin-id xmlns='%s' id='orig-f'/>" % ((NS_SID,) * 5))

    def ours(el):
        return sorted(s.get('by') for s in el.findall('{%s}stanza-id' % NS_SID)
                      if s.get('by') in ('localhost', 'alice@localhost', 'bob@localhost'))
    try:
        sync(bob)
        send_chat(alice, 'bob@localhost', 'forged ids', forged)
        m = next_message(bob)
        ids = [s.get('id') for s in m.findall('{%s}stanza-id' % NS_SID)]
        if srv.name != 'prosody':       # Prosody 0.12 strips only by=bob
            check('f-bob' not in ids and 'f-host' not in ids,
                  'forged stanza-id delivered: %s' % rt.to_string(m))
            check('keep' in ids, 'foreign stanza-id dropped: %s' % rt.to_string(m))
            check(m.find('{%s}origin-id' % NS_SID) is not None, 'origin-id dropped')
        alice.send("<message to='bob@localhost' type='chat'><active "
                   "xmlns='http://jabber.org/protocol/chatstates'/>%s</message>" % forged)
        m = next_message(bob)
        check(m.find('{http://jabber.org/protocol/chatstates}active') is not None,
              'not the chat state: %s' % rt.to_string(m))
        if srv.name != 'prosody':
            check(ours(m) == ['alice@localhost'],
                  'forged stanza-id on a chat state: %s' % rt.to_string(m))
        res, iq = query(alice, form(**{'with': 'bob@localhost'}))
        fin(iq)
        mine = [r for r in res if r[1].findtext('{jabber:client}body') == 'forged ids']
        check(len(mine) == 1, 'alice archive: %r' % bodies(res))
        out = mine[0][1]
        check('alice@localhost' not in ours(out),
              'sender archive keeps a forged stanza-id: %s' % rt.to_string(out))
        if srv.name != 'prosody':
            check(ours(out) == ['bob@localhost'],
                  'sender archive (by=host kept?): %s' % rt.to_string(out))
    finally:
        alice.close()
        bob.close()


def offline_archived(srv):
    """A message to an offline user is archived too, and the offline copy
    delivered later carries the stanza-id."""
    alice = login(srv, 'alice@localhost', 'a2')
    try:
        send_chat(alice, 'carol@localhost', 'while you were away')
        sync(alice)
    finally:
        alice.close()
    carol = login(srv, 'carol@localhost', 'c', presence=None)
    try:
        carol.send('<presence/>')
        m = next_message(carol)
        check(m.findtext('{jabber:client}body') == 'while you were away', rt.to_string(m))
        sid = stanza_id(m, 'carol@localhost')
        res, iq = query(carol)
        fin(iq)
        check(bodies(res) == ['while you were away'], 'carol archive: %r' % bodies(res))
        check(res[0][0] == sid, 'offline stanza-id is not the archive id')
    finally:
        carol.close()


def paging(srv):
    """XEP-0313 §4.3 with XEP-0059: max, after, the last page with an empty
    before, complete on the last page only, first/last, count."""
    erin = login(srv, 'erin@localhost', 'e')
    dave = login(srv, 'dave@localhost', 'd')
    try:
        for i in range(5):
            send_chat(dave, 'erin@localhost', 'p%d' % i)
        for i in range(5):
            next_message(erin)
        res, iq = query(erin, rsm(max=2))
        f, s = fin(iq)
        check(bodies(res) == ['p0', 'p1'], 'page 1: %r' % bodies(res))
        check(f.get('complete') in (None, 'false'), 'page 1 complete: %s' % rt.to_string(iq))
        check(s.findtext('{%s}first' % NS_RSM) == res[0][0], 'first')
        check(s.findtext('{%s}last' % NS_RSM) == res[1][0], 'last')
        if s.find('{%s}count' % NS_RSM) is not None:
            check(s.findtext('{%s}count' % NS_RSM) == '5', 'count: %s' % rt.to_string(iq))
        res2, iq = query(erin, rsm(max=2, after=res[1][0]))
        check(bodies(res2) == ['p2', 'p3'], 'page 2: %r' % bodies(res2))
        res3, iq = query(erin, rsm(max=2, after=res2[1][0]))
        f, s = fin(iq)
        check(bodies(res3) == ['p4'], 'page 3: %r' % bodies(res3))
        check(f.get('complete') == 'true', 'last page not complete: %s' % rt.to_string(iq))
        last, iq = query(erin, rsm(max=2, before=''))
        check(bodies(last) == ['p3', 'p4'], 'last page: %r' % bodies(last))
        prev, iq = query(erin, rsm(max=10, before=last[0][0]))
        f, s = fin(iq)
        check(bodies(prev) == ['p0', 'p1', 'p2'], 'before: %r' % bodies(prev))
        check(f.get('complete') == 'true', 'start reached, not complete: %s' % rt.to_string(iq))
    finally:
        erin.close()
        dave.close()


def errors(srv):
    """XEP-0313 §4.3.2: an unknown RSM id is item-not-found; a form with a
    wrong FORM_TYPE is bad-request; an unknown field is
    feature-not-implemented (§4.1.5)."""
    alice = login(srv, 'alice@localhost', 'a3')
    try:
        res, iq = query(alice, rsm(max=5, after='no-such-id'))
        check(iq.get('type') == 'error' and rt.error_condition(iq) == 'item-not-found',
              'unknown after: %s' % rt.to_string(iq))
        check(res == [], 'results before the error')
        res, iq = query(alice, "<x xmlns='jabber:x:data' type='submit'><field "
                        "var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:1</value>"
                        "</field></x>")
        check(iq.get('type') == 'error' and rt.error_condition(iq) == 'bad-request',
              'bad FORM_TYPE: %s' % rt.to_string(iq))
        res, iq = query(alice, form(**{'start': 'not a date'}))
        check(iq.get('type') == 'error' and rt.error_condition(iq) == 'bad-request',
              'bad start: %s' % rt.to_string(iq))
    finally:
        alice.close()


def unknown_field(srv):
    """XEP-0313 §4.1.5: 'If a client includes a form field that the server
    does not recognise, the server MUST respond with a
    feature-not-implemented error.'  Roost only: Prosody 0.12 ignores
    unknown fields and answers the query."""
    alice = login(srv, 'alice@localhost', 'a4')
    try:
        res, iq = query(alice, form(**{'{urn:example}search': 'x'}))
        check(iq.get('type') == 'error' and rt.error_condition(iq) == 'feature-not-implemented',
              'unknown field: %s' % rt.to_string(iq))
    finally:
        alice.close()


def disco_account(srv):
    """XEP-0313 §7: urn:xmpp:mam:2 and #extended on the account's bare JID."""
    alice = login(srv, 'alice@localhost', 'a5')
    try:
        info = alice.iq("<iq type='get' id='d1' to='alice@localhost'><query "
                        "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        feats = [f.get('var') for f in info.iter('{http://jabber.org/protocol/disco#info}feature')]
        for f in (NS_MAM, NS_MAM + '#extended'):
            check(f in feats, '%s not advertised: %r' % (f, feats))
    finally:
        alice.close()


def prefs_and_hints(srv):
    """XEP-0441 preferences: a JID in 'never' is not archived, others are;
    XEP-0334 <no-store/> keeps a message out of the archive."""
    frank = login(srv, 'frank@localhost', 'f')
    alice = login(srv, 'alice@localhost', 'a6')
    dave = login(srv, 'dave@localhost', 'd6')
    try:
        r = frank.iq("<iq type='set' id='p1'><prefs xmlns='%s' default='always'>"
                     "<always/><never><jid>alice@localhost</jid></never></prefs></iq>" % NS_MAM)
        check(r.get('type') == 'result', 'prefs set: %s' % rt.to_string(r))
        r = frank.iq("<iq type='get' id='p2'><prefs xmlns='%s'/></iq>" % NS_MAM)
        p = r.find('{%s}prefs' % NS_MAM)
        check(p is not None and p.get('default') == 'always', 'prefs get: %s' % rt.to_string(r))
        check([j.text for j in p.iter('{%s}jid' % NS_MAM)] == ['alice@localhost'],
              'never list: %s' % rt.to_string(r))
        send_chat(alice, 'frank@localhost', 'from alice')
        send_chat(dave, 'frank@localhost', 'from dave')
        send_chat(dave, 'frank@localhost', 'not stored', "<no-store xmlns='%s'/>" % NS_HINTS)
        for i in range(3):
            next_message(frank)
        res, iq = query(frank)
        fin(iq)
        check(bodies(res) == ['from dave'], 'archive with prefs: %r' % bodies(res))
    finally:
        frank.close()
        alice.close()
        dave.close()


SLIX = r'''
import asyncio, logging, sys, ssl
import slixmpp
jid, pw, port, with_ = sys.argv[1:5]
class C(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, pw)
        self.register_plugin('xep_0030')
        self.register_plugin('xep_0059')
        self.register_plugin('xep_0313')
        self.add_event_handler('session_start', self.start)
        self.out = []
    async def start(self, ev):
        try:
            info = await self['xep_0030'].get_info(jid=self.boundjid.bare)
            feats = info['disco_info']['features']
            print('FEATURE', 'urn:xmpp:mam:2' in feats)
            async for page in self['xep_0313'].retrieve(with_jid=slixmpp.JID(with_), rsm={'amount': 2}, iterator=True):
                for msg in page['mam']['results']:
                    fwd = msg['mam_result']['forwarded']
                    print('BODY', fwd['stanza']['body'], msg['mam_result']['id'])
        except Exception as e:
            print('ERROR', repr(e))
        self.disconnect()
c = C()
c.ssl_context.check_hostname = False
c.ssl_context.verify_mode = ssl.CERT_NONE
c.connect(('127.0.0.1', int(port)))
c.loop.run_until_complete(asyncio.wait_for(c.disconnected, 20))
'''


def slixmpp_interop(srv):
    """slixmpp 1.8 (python3-slixmpp) discovers urn:xmpp:mam:2 on the account
    and pages through the archive with its xep_0313 iterator (RSM after)."""
    dave = login(srv, 'dave@localhost', 'd7')
    bob = login(srv, 'bob@localhost', 'b7')
    try:
        sync(bob)
        for i in range(5):
            send_chat(dave, 'bob@localhost', 'slix%d' % i)
        for i in range(5):
            next_message(bob)
    finally:
        dave.close()
        bob.close()
    r = subprocess.run(['/usr/bin/python3', '-c', SLIX, 'bob@localhost',
                        USERS['bob@localhost'], str(srv.c2s_port), 'dave@localhost'],
                       capture_output=True, timeout=60, text=True)
    lines = r.stdout.splitlines()
    check('FEATURE True' in lines, 'slixmpp: no mam feature: %s %s' % (r.stdout, r.stderr[-2000:]))
    got = [ln.split()[1] for ln in lines if ln.startswith('BODY ')]
    check(got == ['slix%d' % i for i in range(5)],
          'slixmpp pages: %r (%s %s)' % (got, r.stdout, r.stderr[-2000:]))


def quota(srv):
    """archive_max_items = 3: after five messages the archive holds the
    last three; the stanza-id of the last names an item it holds."""
    erin = login(srv, 'erin@localhost', 'eq')
    frank = login(srv, 'frank@localhost', 'fq')
    try:
        sync(frank)
        for i in range(5):
            send_chat(erin, 'frank@localhost', 'quota%d' % i)
        for i in range(5):
            m = next_message(frank)
        sid = stanza_id(m, 'frank@localhost')
        res, iq = query(frank)
        fin(iq)
        check(bodies(res) == ['quota2', 'quota3', 'quota4'], 'quota: %r' % bodies(res))
        check(res[-1][0] == sid, 'stanza-id %s is not the last item %s' % (sid, res[-1][0]))
    finally:
        erin.close()
        frank.close()


def expiry(srv):
    """archive_expires_after = 3 s: what is archived is gone from the
    archive a few seconds later (purged by the timer, not at query time),
    and an id naming it is item-not-found."""
    alice = login(srv, 'alice@localhost', 'ae')
    bob = login(srv, 'bob@localhost', 'be')
    try:
        sync(bob)
        send_chat(alice, 'bob@localhost', 'ephemeral')
        sid = stanza_id(next_message(bob), 'bob@localhost')
        res, iq = query(bob)
        fin(iq)
        check(bodies(res) == ['ephemeral'], 'not archived: %r' % bodies(res))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(1)
            res, iq = query(bob)
            fin(iq)
            if not res:
                break
        check(res == [], 'not expired after 15 s: %r' % bodies(res))
        res, iq = query(alice)
        fin(iq)
        check(res == [], 'sender copy not expired: %r' % bodies(res))
        res, iq = query(bob, form(**{'after-id': sid}))
        check(iq.get('type') == 'error' and iq.find('.//{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found') is not None,
              'expired id: %s' % rt.to_string(iq))
    finally:
        alice.close()
        bob.close()


EXPIRY_TESTS = [quota, expiry]

TESTS = [stanza_id_and_both_archives, forged_stanza_ids, offline_archived, paging, errors,
         unknown_field, disco_account, prefs_and_hints, slixmpp_interop]
ROOST_ONLY = {'unknown_field'}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--server', choices=('roost', 'prosody'), default='roost')
    ap.add_argument('tests', nargs='*', help='run only these tests')
    args = ap.parse_args()
    cls = MamRoost if args.server == 'roost' else MamProsody
    tests = [t for t in TESTS if not args.tests or t.__name__ in args.tests]
    if args.server == 'prosody' and not args.tests:
        tests = [t for t in tests if t.__name__ not in ROOST_ONLY]
    passed = failed = 0
    if tests:
        passed, failed = rt.run_group(cls, USERS, tests, 'mam')
    # Expiry and quota are Roost's options: their own server.
    tests = [t for t in EXPIRY_TESTS if not args.tests or t.__name__ in args.tests]
    if args.server == 'roost' and tests:
        p, f = rt.run_group(MamExpiryRoost, USERS, tests, 'mam-expiry')
        passed, failed = passed + p, failed + f
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
