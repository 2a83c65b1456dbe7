"""Push notifications (XEP-0357, mod_push) over real sockets.

A raw XEP-0114 component at push.localhost plays the push service (the
"XMPP Push Service" of the XEP): alice enables push to it, with publish
options; when a message for her cannot reach a connected client (she is
offline: stored by mod_offline; or her only session hibernates after its
connection dropped, XEP-0198) the component receives the pubsub publish
from alice's bare JID and answers it.  When she is online nothing is
published.  A registration belongs to the client (resource) that enabled
it: it is notified while that client is away, even when another client
of the account is online.  A cancel error from the service disables the registration;
<disable/> does too.  The account's disco#info lists urn:xmpp:push:0.

    python3 test_push.py

Prosody 0.12 as packaged by Debian ships no push module (mod_cloud_notify
is in the separate prosody-modules collection), so these expectations are
not replayed against it.  Prints 'N passed, N failed'.
"""
import hashlib
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'carol@localhost': 'carol-Secret-1234',
         'dave@localhost': 'dave-Secret-5678',
         'erin@localhost': 'erin-Secret-9012',
         'frank@localhost': 'frank-Secret-3456'}
SECRET = 'pu5h-c0mp0nent'
SERVICE = 'push.localhost'
NS_COMP = 'jabber:component:accept'
NS_PUSH = 'urn:xmpp:push:0'
NS_PS = 'http://jabber.org/protocol/pubsub'
NS_XD = 'jabber:x:data'
NS_SM = 'urn:xmpp:sm:3'
PUBOPTS = 'http://jabber.org/protocol/pubsub#publish-options'
RESUME_TIMEOUT = 4      # seconds (sm_resume_timeout of the test server)
PUBLISH_WAIT = 2.0      # a publish comes at once; well within RESUME_TIMEOUT


class PushRoost(rt.Roost):
    """mod_offline and mod_push, a push-service component, and a short
    XEP-0198 resumption window."""
    extra_modules = ('offline', 'push')
    extra_limits = 'sm_resume_timeout = %d; ' % RESUME_TIMEOUT

    def __init__(self, users):
        super().__init__(users)
        self.comp_port = rt.free_ports(1)[0]

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        conf = conf.replace(
            'listen = (\n',
            'components = ( { domain = "%s"; secret = "%s"; } );\n'
            'listen = (\n  { address = "127.0.0.1"; port = %d; type = "component"; },\n'
            % (SERVICE, SECRET, self.comp_port))
        with open(self.config, 'w') as f:
            f.write(conf)


def component(srv):
    c = Client(srv, None, None, name='push-service')
    c.sock = socket.create_connection(('127.0.0.1', srv.comp_port), timeout=5)
    c.parser = rt.StreamParser()
    c.send("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' "
           "to='%s'>" % (NS_COMP, SERVICE))
    deadline = time.monotonic() + 5
    while c.parser.header is None and not c.parser.ended:
        if not c._fill(deadline):
            raise TestFailure('no stream header from the component port')
    digest = hashlib.sha1((c.parser.header.get('id') + SECRET).encode()).hexdigest()
    c.send('<handshake>%s</handshake>' % digest)
    ans = c.recv()
    check(ans.tag == '{%s}handshake' % NS_COMP, 'handshake: %s' % rt.to_string(ans))
    return c


def login(srv, jid, resource=None):
    return Client(srv, jid, USERS[jid], name=jid.split('@')[0]).login(resource=resource)


def enable(c, node, secret=None):
    form = ''
    if secret is not None:
        form = ("<x xmlns='%s'><field var='FORM_TYPE'><value>%s</value></field>"
                "<field var='secret'><value>%s</value></field></x>" % (NS_XD, PUBOPTS, secret))
    r = c.iq("<iq type='set' id='en-%s'><enable xmlns='%s' jid='%s' node='%s'>%s</enable></iq>"
             % (node, NS_PUSH, SERVICE, node, form))
    check(r.get('type') == 'result', 'enable: %s' % rt.to_string(r))


def fields(x):
    return {f.get('var'): f.findtext('{%s}value' % NS_XD) for f in x.findall('{%s}field' % NS_XD)}


def expect_publish(comp, user, node, answer='result', timeout=PUBLISH_WAIT):
    """The component's next stanza is the publish of XEP-0357 §7; it is
    answered with answer ('result' or an error element).  Returns (summary
    fields, publish-options fields or None)."""
    iq = comp.recv(timeout)
    check(rt.tag(iq) == 'iq' and iq.get('type') == 'set' and iq.get('from') == user and
          iq.get('to') == SERVICE, 'publish iq: %s' % rt.to_string(iq))
    pub = iq.find('{%s}pubsub/{%s}publish' % (NS_PS, NS_PS))
    check(pub is not None and pub.get('node') == node, 'publish node: %s' % rt.to_string(iq))
    x = pub.find('{%s}item/{%s}notification/{%s}x' % (NS_PS, NS_PUSH, NS_XD))
    check(x is not None, 'no notification form: %s' % rt.to_string(iq))
    summary = fields(x)
    check(summary.get('FORM_TYPE') == 'urn:xmpp:push:summary', 'FORM_TYPE: %s' % summary)
    po = iq.find('{%s}pubsub/{%s}publish-options/{%s}x' % (NS_PS, NS_PS, NS_XD))
    if answer == 'result':
        comp.send("<iq type='result' id='%s' from='%s' to='%s'/>" % (iq.get('id'), SERVICE, user))
    else:
        comp.send("<iq type='error' id='%s' from='%s' to='%s'>%s</iq>"
                  % (iq.get('id'), SERVICE, user, answer))
    return summary, (fields(po) if po is not None else None)


def sm_enable(c):
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    el = c.recv()
    while el.tag != '{%s}enabled' % NS_SM:
        el = c.recv()
    check(el.get('id'), 'no resumption id: %s' % rt.to_string(el))
    return el.get('id')


def drop(c):
    """The network goes away: TCP reset, no </stream:stream>; then a
    moment for the server to notice."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    c.sock.close()
    c.sock = None
    time.sleep(0.5)


def say(sender, to, body, mid):
    sender.send("<message to='%s' id='%s' type='chat'><body>%s</body></message>" % (to, mid, body))


def sync(c):
    r = c.iq("<iq type='get' id='sync%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
             % (int(time.monotonic() * 1000000), c.domain))
    check(r.get('type') == 'result', 'ping: %s' % rt.to_string(r))


# --------------------------------------------------------------- tests

def disco_feature(srv):
    """§4.1: the account's disco#info lists urn:xmpp:push:0."""
    a = login(srv, 'alice@localhost')
    try:
        r = a.iq("<iq type='get' id='d1' to='alice@localhost'>"
                 "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        feats = [f.get('var') for f in r.iter('{http://jabber.org/protocol/disco#info}feature')]
        check(NS_PUSH in feats, 'account features: %s' % feats)
    finally:
        a.close()


def offline_online(srv):
    """Enabled with publish options: a message while alice is offline is
    published (count, sender, no body, the options); while she is online
    nothing is; after she logs in again the count starts over."""
    comp = component(srv)
    a = login(srv, 'alice@localhost', 'phone')
    b = login(srv, 'bob@localhost', 'desk')
    try:
        enable(a, 'alice-node', 's3cret')
        a.close()
        say(b, 'alice@localhost', 'Wherefore art thou?', 'o1')
        summary, opts = expect_publish(comp, 'alice@localhost', 'alice-node')
        check(summary.get('message-count') == '1' and
              summary.get('last-message-sender') == b.full_jid and
              'last-message-body' not in summary, 'summary: %s' % summary)
        check(opts is not None and opts.get('FORM_TYPE') == PUBOPTS and
              opts.get('secret') == 's3cret', 'publish-options: %s' % opts)
        say(b, 'alice@localhost', 'Still there?', 'o2')
        summary, _ = expect_publish(comp, 'alice@localhost', 'alice-node')
        check(summary.get('message-count') == '2', 'second summary: %s' % summary)

        a = login(srv, 'alice@localhost', 'phone')
        a.send('<presence/>')
        say(b, 'alice@localhost', 'Online now', 'o3')
        got = []
        deadline = time.monotonic() + 5
        while 'Online now' not in got and time.monotonic() < deadline:
            el = a.recv()
            if rt.tag(el) == 'message':
                got.append(el.findtext('{jabber:client}body'))
        check('Online now' in got, 'alice online got %s' % got)
        comp.recv_nothing(1.0)
        a.close()
        say(b, 'alice@localhost', 'Gone again', 'o4')
        summary, _ = expect_publish(comp, 'alice@localhost', 'alice-node')
        check(summary.get('message-count') == '1', 'count after login: %s' % summary)
    finally:
        for c in (a, b, comp):
            c.close()


def hibernating(srv):
    """XEP-0198: dave enables resumption and his connection drops; a
    message for him waits in the session's queue and is published; once
    he resumes he gets it and further messages are not published
    (dave: no registration left from the other tests)."""
    comp = component(srv)
    a = login(srv, 'dave@localhost', 'mobile')
    b = login(srv, 'bob@localhost', 'desk')
    try:
        enable(a, 'hib-node')
        a.send('<presence/>')
        sync(a)
        smid = sm_enable(a)
        # online first: nothing
        say(b, 'dave@localhost/mobile', 'live', 'h0')
        comp.recv_nothing(1.0)
        # the network goes away (TCP reset, no </stream:stream>)
        drop(a)
        say(b, 'dave@localhost', 'are you there?', 'h1')
        summary, _ = expect_publish(comp, 'dave@localhost', 'hib-node')
        check(summary.get('message-count') == '1' and
              summary.get('last-message-sender') == b.full_jid, 'summary: %s' % summary)
        say(b, 'dave@localhost/mobile', 'to the full JID', 'h2')
        summary, _ = expect_publish(comp, 'dave@localhost', 'hib-node')
        check(summary.get('message-count') == '2', 'summary: %s' % summary)

        n = Client(srv, 'dave@localhost', USERS['dave@localhost'], name='dave-resumed')
        n.connect()
        n.open_stream()
        n.starttls()
        n.auth()
        n.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, smid))
        got, deadline = [], time.monotonic() + 5
        while 'to the full JID' not in got and time.monotonic() < deadline:
            el = n.recv()
            if rt.tag(el) == 'message':
                got.append(el.findtext('{jabber:client}body'))
        check('are you there?' in got and 'to the full JID' in got, 'resumed got %s' % got)
        say(b, 'dave@localhost', 'welcome back', 'h3')
        comp.recv_nothing(1.0)
        n.close()
    finally:
        for c in (b, comp):
            c.close()


def per_client(srv):
    """A registration belongs to the client (resource) that enabled it:
    with frank's phone gone and his desk online, a message the desk gets
    is still published for the phone (its app is asleep), with the count
    of messages since the phone was last connected; with the phone online
    too, nothing is published (frank: no registration from other tests)."""
    comp = component(srv)
    phone = login(srv, 'frank@localhost', 'phone')
    b = login(srv, 'bob@localhost', 'desk2')
    desk = None
    try:
        enable(phone, 'frank-phone')
        phone.close()
        desk = login(srv, 'frank@localhost', 'desk')
        desk.send('<presence/>')
        sync(desk)
        say(b, 'frank@localhost', 'for the desk', 'p1')
        summary, _ = expect_publish(comp, 'frank@localhost', 'frank-phone')
        check(summary.get('message-count') == '1', 'summary: %s' % summary)
        el = desk.recv()
        while rt.tag(el) != 'message':
            el = desk.recv()
        check(el.findtext('{jabber:client}body') == 'for the desk', 'desk got %s' % rt.to_string(el))
        say(b, 'frank@localhost/desk', 'full JID of the desk', 'p2')
        summary, _ = expect_publish(comp, 'frank@localhost', 'frank-phone')
        check(summary.get('message-count') == '2', 'summary: %s' % summary)
        phone = login(srv, 'frank@localhost', 'phone')
        phone.send('<presence/>')
        sync(phone)
        say(b, 'frank@localhost', 'both online', 'p3')
        comp.recv_nothing(1.0)
        phone.close()
        say(b, 'frank@localhost', 'phone gone again', 'p4')
        summary, _ = expect_publish(comp, 'frank@localhost', 'frank-phone')
        check(summary.get('message-count') == '1', 'count after the phone was back: %s' % summary)
    finally:
        for c in (phone, desk, b, comp):
            if c is not None:
                c.close()


def hibernation_expires(srv):
    """A hibernating session that is not resumed ends; XEP-0198 routes its
    unacknowledged message again (to offline storage, with a delay from
    the host): that is the same message, so no second publish."""
    comp = component(srv)
    e = login(srv, 'erin@localhost', 'mobile')
    b = login(srv, 'bob@localhost', 'desk')
    try:
        enable(e, 'erin-node')
        e.send('<presence/>')
        sync(e)
        sm_enable(e)
        drop(e)
        say(b, 'erin@localhost', 'once only', 'x1')
        summary, _ = expect_publish(comp, 'erin@localhost', 'erin-node')
        check(summary.get('message-count') == '1', 'summary: %s' % summary)
        comp.recv_nothing(RESUME_TIMEOUT + 2.0)
        e = login(srv, 'erin@localhost', 'mobile')
        e.send('<presence/>')
        m = e.recv()
        while rt.tag(m) != 'message':
            m = e.recv()
        check(m.findtext('{jabber:client}body') == 'once only' and
              m.find('{urn:xmpp:delay}delay') is not None,
              'from offline storage: %s' % rt.to_string(m))
        e.close()
    finally:
        for x in (b, comp):
            x.close()


def error_disables(srv):
    """§7.1: a publish answered with a cancel error disables that
    registration: the next offline message is not published."""
    comp = component(srv)
    c = login(srv, 'carol@localhost')
    b = login(srv, 'bob@localhost', 'desk')
    try:
        enable(c, 'carol-node')
        c.close()
        say(b, 'carol@localhost', 'one', 'e1')
        expect_publish(comp, 'carol@localhost', 'carol-node',
                       "<error type='cancel'><item-not-found "
                       "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
        sync(b)
        say(b, 'carol@localhost', 'two', 'e2')
        comp.recv_nothing(1.0)
    finally:
        for x in (b, comp):
            x.close()


def disable(srv):
    """§6: after <disable jid=.../> nothing is published."""
    comp = component(srv)
    a = login(srv, 'alice@localhost')
    b = login(srv, 'bob@localhost', 'desk')
    try:
        enable(a, 'n1')
        enable(a, 'n2')
        r = a.iq("<iq type='set' id='dis'><disable xmlns='%s' jid='%s'/></iq>"
                 % (NS_PUSH, SERVICE))
        check(r.get('type') == 'result', 'disable: %s' % rt.to_string(r))
        a.close()
        say(b, 'alice@localhost', 'nobody hears', 'x1')
        comp.recv_nothing(1.0)
    finally:
        for x in (b, comp):
            x.close()


def enable_errors(srv):
    """§5 schema: jid and node are required; a data form must be publish
    options.  Each gets bad-request."""
    a = login(srv, 'alice@localhost')
    try:
        for payload in ("<enable xmlns='%s' node='n'/>" % NS_PUSH,
                        "<enable xmlns='%s' jid='%s'/>" % (NS_PUSH, SERVICE),
                        "<enable xmlns='%s' jid='%s' node='n'><x xmlns='%s'>"
                        "<field var='FORM_TYPE'><value>urn:x</value></field></x></enable>"
                        % (NS_PUSH, SERVICE, NS_XD),
                        "<disable xmlns='%s'/>" % NS_PUSH):
            r = a.iq("<iq type='set' id='bad'>%s</iq>" % payload)
            check(r.get('type') == 'error' and rt.error_condition(r) == 'bad-request',
                  '%s -> %s' % (payload, rt.to_string(r)))
    finally:
        a.close()


TESTS = [disco_feature, enable_errors, offline_online, hibernating, per_client,
         hibernation_expires, error_disables, disable]


def main():
    names = sys.argv[1:]
    tests = [t for t in TESTS if not names or t.__name__ in names]
    passed, failed = rt.run_group(PushRoost, USERS, tests, 'push')
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
