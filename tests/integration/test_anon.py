"""SASL ANONYMOUS on a configurable vhost, and refusing anonymous users
with privacy rules (REQUIREMENTS 5.1.3, 5.1.14, 8.2.2).

roostd runs with the usual two vhosts plus "anon.localhost", which has
anonymous = true; localhost loads mod_privacy as well.  Tests:
  - only the anonymous vhost offers ANONYMOUS, and a normal vhost refuses
    an ANONYMOUS attempt;
  - an anonymous user gets a random node at anon.localhost, may fetch its
    (empty) roster, gets roster pushes and presence when a contact
    approves its request, and its message and subscription request reach
    a user of localhost;
  - that user denies the whole domain with a XEP-0016 list (item
    type='jid' value='anon.localhost' action='deny', made active and
    default): the anonymous user's message bounces with
    <service-unavailable/> and its subscription request never reaches the
    user, while a normal contact's message still does (XEP-0016 §2.1: a
    <domain> item matches every JID of that domain);
  - the same with XEP-0191 blocking of the bare domain 'anon.localhost'
    (XEP-0191 §3.3/§3.4: the JID matches as in XEP-0016).

    python3 test_anon.py [test names]

Roost only (the anonymous vhost is Roost configuration).  Prints
'N passed, N failed'.
"""
import argparse
import base64
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure, NS_SASL  # noqa: E402

ANON = 'anon.localhost'
USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'carol@localhost': 'carol-Secret-1234',
         'dave@localhost': 'dave-Secret-5'}
NS_PRIVACY = 'jabber:iq:privacy'
NS_BLOCKING = 'urn:xmpp:blocking'
NS_ROSTER = 'jabber:iq:roster'
QUIET = 1.0        # seconds in which nothing may arrive


class AnonRoost(rt.Roost):
    """localhost and example.test as usual (localhost with "privacy" added)
    and a third vhost anon.localhost with anonymous = true and the
    modules disco, message, presence and roster."""

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        conf, n = re.subn(r'(\{ domain = "localhost"; modules = \[)([^\]]*)\]',
                          lambda mo: mo.group(0) if '"privacy"' in mo.group(2)
                          else '%s%s, "privacy" ]' % (mo.group(1), mo.group(2).rstrip()),
                          conf)
        check(n == 1, 'could not add privacy to localhost in the test config')
        conf, n = re.subn(r'\n\);\n$',
                          ',\n  { domain = "%s"; anonymous = true; modules = '
                          '[ "disco", "message", "presence", "roster" ]; }\n);\n' % ANON, conf)
        check(n == 1, 'could not add the anonymous vhost to the test config')
        with open(self.config, 'w') as f:
            f.write(conf)


# ------------------------------------------------------------- helpers

def anon_login(srv, name='anon'):
    """A SASL ANONYMOUS session on anon.localhost (RFC 4505: optional
    trace token as the initial response)."""
    c = Client(srv, name=name)
    c.domain = ANON
    c.connect()
    c.open_stream()
    c.starttls()
    check('ANONYMOUS' in c.mechanisms(), '%s does not offer ANONYMOUS: %s' % (ANON, c.mechanisms()))
    c.send("<auth xmlns='%s' mechanism='ANONYMOUS'>%s</auth>"
           % (NS_SASL, base64.b64encode(b'roost-test').decode()))
    el = c.recv()
    check(el.tag == '{%s}success' % NS_SASL, 'ANONYMOUS answered with %s' % rt.to_string(el))
    c.open_stream()
    jid = c.bind()
    check(re.match(r'^[^@/]+@%s/.+$' % re.escape(ANON), jid),
          'anonymous session bound as %r, want <random>@%s/<resource>' % (jid, ANON))
    return c


def user(srv, jid, presence=True):
    c = Client(srv, jid, USERS[jid]).login()
    if presence:
        c.send('<presence/>')
        drain(c)
    return c


def drain(c, quiet=0.3):
    """Read whatever arrives until quiet seconds pass without a stanza."""
    got = []
    while True:
        try:
            got.append(c.recv(timeout=quiet))
        except TestFailure as e:
            if isinstance(e, rt.StreamClosed):
                raise
            return got


def bare(jid):
    return jid.split('/', 1)[0]


def wait_for(c, pred, what, timeout=rt.TIMEOUT):
    """The first stanza matching pred; others are skipped (presence
    broadcasts, roster pushes)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: no %s within %ss (got: %s)' % (c.name, what, timeout, seen or 'nothing'))
        try:
            el = c.recv(timeout=left)
        except rt.StreamClosed:
            raise
        except TestFailure:
            continue
        if pred(el):
            return el
        seen.append(rt.to_string(el)[:200])


def nothing_matching(c, pred, what, timeout=QUIET):
    """Fail if a stanza matching pred arrives within timeout."""
    for el in drain(c, timeout):
        if pred(el):
            raise TestFailure('%s: got %s: %s' % (c.name, what, rt.to_string(el)))


def is_msg(body, frm=None):
    return lambda el: (rt.tag(el) == 'message' and el.findtext('{jabber:client}body') == body and
                       (frm is None or bare(el.get('from', '')) == frm))


def is_subscribe(frm):
    return lambda el: (rt.tag(el) == 'presence' and el.get('type') == 'subscribe' and
                       bare(el.get('from', '')) == frm)


def anon_message_and_subscribe(anon, target, tag):
    """anon sends a chat message and a subscription request to target
    (a bare JID); returns the body."""
    body = 'hello from an anonymous user %s' % tag
    anon.send("<message to='%s' type='chat' id='m-%s'><body>%s</body></message>" % (target, tag, body))
    anon.send("<presence to='%s' type='subscribe' id='s-%s'/>" % (target, tag))
    return body


def expect_bounce(anon, tag, cond='service-unavailable'):
    el = wait_for(anon, lambda e: rt.tag(e) == 'message' and e.get('id') == 'm-%s' % tag,
                  'answer to message m-%s' % tag)
    check(el.get('type') == 'error', 'message not bounced: %s' % rt.to_string(el))
    got = rt.error_condition(el)
    check(got == cond, 'message bounced with <%s/>, want <%s/>: %s' % (got, cond, rt.to_string(el)))
    err = el.find('{jabber:client}error')
    check(err is not None and err.get('type') == 'cancel',
          'error type %r, want cancel (RFC 6120 §8.3.3.19)' % (err.get('type') if err is not None else None))
    return el


def iq_ok(c, xml, what):
    r = c.iq(xml)
    check(r.get('type') == 'result', '%s: %s' % (what, rt.to_string(r)))
    return r


# --------------------------------------------------------------- tests

def normal_vhost_refuses_anonymous(srv):
    """localhost offers no ANONYMOUS (before or after STARTTLS) and
    answers an ANONYMOUS attempt with a SASL failure."""
    c = Client(srv, 'alice@localhost', USERS['alice@localhost'], name='plain-vhost')
    c.connect()
    try:
        c.open_stream()
        check('ANONYMOUS' not in c.mechanisms(), 'localhost offers %s before TLS' % c.mechanisms())
        c.starttls()
        mechs = c.mechanisms()
        check(mechs and 'ANONYMOUS' not in mechs, 'localhost offers %s' % mechs)
        c.send("<auth xmlns='%s' mechanism='ANONYMOUS'>=</auth>" % NS_SASL)
        el = c.recv()
        check(el.tag == '{%s}failure' % NS_SASL, 'ANONYMOUS on localhost answered with %s'
              % rt.to_string(el))
        cond = rt.error_condition(el, NS_SASL)
        check(cond == 'invalid-mechanism', 'SASL failure <%s/>, want <invalid-mechanism/> '
              '(RFC 6120 §6.5.5)' % cond)
    finally:
        c.close()


def anon_vhost_offers_anonymous(srv):
    """anon.localhost offers ANONYMOUS; two anonymous logins get two
    different random JIDs."""
    a, b = anon_login(srv, 'anon1'), anon_login(srv, 'anon2')
    try:
        check(bare(a.full_jid) != bare(b.full_jid),
              'two anonymous sessions share the JID %s' % bare(a.full_jid))
    finally:
        a.close()
        b.close()


def anon_roster_and_presence(srv):
    """An anonymous user has no stored account: its roster is empty (a
    result, not an error), and its initial presence comes back to it."""
    a = anon_login(srv)
    try:
        r = iq_ok(a, "<iq type='get' id='r1'><query xmlns='%s'/></iq>" % NS_ROSTER, 'roster get')
        q = r.find('{%s}query' % NS_ROSTER)
        check(q is not None and len(q) == 0, 'anonymous roster not empty: %s' % rt.to_string(r))
        a.send("<presence><status>anon here</status></presence>")
        wait_for(a, lambda e: rt.tag(e) == 'presence' and e.get('from') == a.full_jid,
                 'own presence back (RFC 6121 §4.2.2)')
    finally:
        a.close()


def anon_subscription_approved(srv):
    """An anonymous user's roster works for the session: bob approves its
    request, it gets the roster push (subscription='to', RFC 6121 §3.1.6)
    and bob's presence."""
    bob = user(srv, 'bob@localhost')
    a = anon_login(srv)
    try:
        iq_ok(a, "<iq type='get' id='r1'><query xmlns='%s'/></iq>" % NS_ROSTER, 'roster get')
        a.send('<presence/>')
        a.send("<presence to='bob@localhost' type='subscribe'/>")
        wait_for(bob, is_subscribe(bare(a.full_jid)), 'the anonymous subscription request')
        bob.send("<presence to='%s' type='subscribed'/>" % bare(a.full_jid))

        def push_to(el):
            item = el.find('{%s}query/{%s}item' % (NS_ROSTER, NS_ROSTER))
            return (rt.tag(el) == 'iq' and el.get('type') == 'set' and item is not None and
                    item.get('jid') == 'bob@localhost' and item.get('subscription') == 'to')
        push = wait_for(a, push_to, "roster push of bob@localhost with subscription 'to'")
        a.send("<iq type='result' id='%s'/>" % push.get('id'))
        wait_for(a, lambda e: rt.tag(e) == 'presence' and e.get('type') is None and
                 bare(e.get('from', '')) == 'bob@localhost', "bob's presence")
    finally:
        a.close()
        bob.close()


def anon_data_purged_at_logout(srv):
    """An anonymous account exists only while it is online (as Prosody's
    anonymous authentication): once its last session ends, what the
    server stored for it (roster, last presence) is deleted, and stanzas
    to it get service-unavailable like any account that does not exist."""
    import sqlite3
    bob = user(srv, 'bob@localhost')
    a = anon_login(srv)
    node = bare(a.full_jid).split('@')[0]
    db = os.path.join(srv.dir, 'data', 'roost.db')

    def rows():
        con = sqlite3.connect(db, timeout=5)
        try:
            return [r for t in ('keyval',) for r in con.execute(
                "SELECT store FROM %s WHERE host='anon.localhost' AND user=?" % t,
                (node,))]
        finally:
            con.close()
    try:
        iq_ok(a, "<iq type='get' id='r1'><query xmlns='%s'/></iq>" % NS_ROSTER, 'roster get')
        a.send('<presence/>')
        a.send("<presence to='bob@localhost' type='subscribe'/>")
        wait_for(bob, is_subscribe(bare(a.full_jid)), 'the anonymous subscription request')
        bob.send("<presence to='%s' type='subscribed'/>" % bare(a.full_jid))
        wait_for(a, lambda e: rt.tag(e) == 'presence' and e.get('type') is None and
                 bare(e.get('from', '')) == 'bob@localhost', "bob's presence")
        deadline = time.monotonic() + 5
        while not rows() and time.monotonic() < deadline:
            time.sleep(0.05)
        check(rows(), 'nothing stored for the anonymous user while online '
              '(the test would prove nothing)')
        a.close()
        deadline = time.monotonic() + 5
        while rows() and time.monotonic() < deadline:
            time.sleep(0.05)
        check(not rows(), 'still stored after logout: %r' % rows())
        bob.send("<message to='%s' id='gone1' type='chat'><body>still there?</body></message>"
                 % bare(a.full_jid))
        e = wait_for(bob, lambda e: rt.tag(e) == 'message' and e.get('id') == 'gone1',
                     'the bounce of a message to the gone anonymous account')
        check(e.get('type') == 'error' and rt.error_condition(e) == 'service-unavailable',
              'message to a gone anonymous account: %s' % rt.to_string(e))
    finally:
        a.close()
        bob.close()


def anon_reaches_user(srv):
    """Without privacy rules, the anonymous user's message and
    subscription request both reach alice."""
    alice = user(srv, 'alice@localhost')
    a = anon_login(srv)
    try:
        body = anon_message_and_subscribe(a, 'alice@localhost', 'open')
        m = wait_for(alice, is_msg(body), 'the anonymous message')
        check(m.get('from') == a.full_jid, 'message from %s, want %s' % (m.get('from'), a.full_jid))
        wait_for(alice, is_subscribe(bare(a.full_jid)), 'the anonymous subscription request')
        nothing_matching(a, lambda e: e.get('type') == 'error', 'an error')
    finally:
        a.close()
        alice.close()


def privacy_list_denies_domain(srv):
    """XEP-0016: alice's active and default list denies the domain
    anon.localhost: the anonymous message bounces (service-unavailable,
    §2.13), the subscription request is dropped; bob still gets through."""
    alice = user(srv, 'alice@localhost', presence=False)
    try:
        iq_ok(alice, "<iq type='set' id='p1'><query xmlns='%s'><list name='no-anon'>"
              "<item type='jid' value='%s' action='deny' order='1'/>"
              "<item action='allow' order='2'/>"
              "</list></query></iq>" % (NS_PRIVACY, ANON), 'setting the privacy list')
        iq_ok(alice, "<iq type='set' id='p2'><query xmlns='%s'><active name='no-anon'/></query></iq>"
              % NS_PRIVACY, 'making the list active')
        iq_ok(alice, "<iq type='set' id='p3'><query xmlns='%s'><default name='no-anon'/></query></iq>"
              % NS_PRIVACY, 'making the list default')
        alice.send('<presence/>')
        drain(alice)
        check_refused(srv, alice, 'privacy')
    finally:
        alice.close()


def blocking_denies_domain(srv):
    """XEP-0191: carol blocks the bare domain anon.localhost: same
    effect as the privacy item."""
    carol = user(srv, 'carol@localhost', presence=False)
    try:
        iq_ok(carol, "<iq type='set' id='b1'><block xmlns='%s'><item jid='%s'/></block></iq>"
              % (NS_BLOCKING, ANON), 'blocking %s' % ANON)
        r = iq_ok(carol, "<iq type='get' id='b2'><blocklist xmlns='%s'/></iq>" % NS_BLOCKING,
                  'blocklist get')
        items = [i.get('jid') for i in r.iter('{%s}item' % NS_BLOCKING)]
        check(items == [ANON], 'blocklist %s, want [%s]' % (items, ANON))
        carol.send('<presence/>')
        drain(carol)
        check_refused(srv, carol, 'blocking')
    finally:
        carol.close()


def check_refused(srv, owner, tag):
    """owner (online, with a rule against anon.localhost) gets nothing of
    an anonymous user's; a normal contact's message still arrives."""
    target = bare(owner.full_jid)
    a = anon_login(srv)
    dave = user(srv, 'dave@localhost', presence=False)
    try:
        body = anon_message_and_subscribe(a, target, tag)
        expect_bounce(a, tag)
        nothing_matching(owner, lambda e: is_msg(body)(e) or is_subscribe(bare(a.full_jid))(e),
                         'a stanza of the denied anonymous user')
        # the rule is about the domain, not about everyone
        ok = 'from dave, not anonymous %s' % tag
        dave.send("<message to='%s' type='chat'><body>%s</body></message>" % (target, ok))
        wait_for(owner, is_msg(ok, 'dave@localhost'), 'the message of dave@localhost')
        # and the owner is still told nothing of the anonymous subscription
        # when it comes back later (it was dropped, not stored as pending)
        r = iq_ok(owner, "<iq type='get' id='r-%s'><query xmlns='%s'/></iq>" % (tag, NS_ROSTER),
                  'roster get')
        jids = [i.get('jid') for i in r.iter('{%s}item' % NS_ROSTER)]
        check(bare(a.full_jid) not in jids, 'the denied request left %s in the roster: %s'
              % (bare(a.full_jid), rt.to_string(r)))
    finally:
        a.close()
        dave.close()


TESTS = [normal_vhost_refuses_anonymous, anon_vhost_offers_anonymous, anon_roster_and_presence,
         anon_subscription_approved, anon_data_purged_at_logout, anon_reaches_user, privacy_list_denies_domain, blocking_denies_domain]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('tests', nargs='*', help='run only these tests')
    args = ap.parse_args()
    tests = [t for t in TESTS if not args.tests or t.__name__ in args.tests]
    passed = failed = 0
    srv = AnonRoost(USERS)
    try:
        try:
            srv.start()
        except (TestFailure, OSError) as e:
            print('FAIL anon:setup: %s\n%s' % (e, srv.log_tail(30)))
            failed += 1
            tests = []
        for t in tests:
            try:
                t(srv)
                print('PASS anon:%s' % t.__name__, flush=True)
                passed += 1
            except (TestFailure, OSError) as e:
                print('FAIL anon:%s: %s' % (t.__name__, e), flush=True)
                failed += 1
            if srv.proc is None or srv.proc.poll() is not None:
                print('FAIL anon:%s: server not running afterwards\n%s' % (t.__name__, srv.log_tail(40)))
                failed += 1
                break
        if srv.proc is not None:
            problems = srv.stop()
            if problems:
                print('FAIL anon:server-clean-shutdown: %s\n%s' % ('; '.join(problems), srv.log_tail(40)))
                failed += 1
            else:
                print('PASS anon:server-clean-shutdown')
                passed += 1
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        if failed:
            print('    (server files kept in %s)' % srv.dir)
        else:
            srv.cleanup()
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
