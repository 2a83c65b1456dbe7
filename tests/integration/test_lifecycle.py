"""Session lifecycle tests against a live roostd:

- loss of contact (RFC 2779 3.2.4-3.2.5, REQUIREMENTS 3.2.4-3.2.5): a
  contact's client in another process is killed (SIGKILL: the kernel
  closes the TCP connection) or frozen (SIGSTOP: the connection stays up
  but nothing more is read or written); the other party gets
  <presence type='unavailable'/> from the lost full JID, at once for the
  kill, within about two c2s_timeout for the freeze (ping, then close);
- SASL ANONYMOUS (REQUIREMENTS 5.1.3, 8.2.2) on a vhost with
  anonymous = true: login, a random localpart, messaging a normal user;
  a normal vhost does not offer it;
- module independence (REQUIREMENTS 2.1.1): messaging and the roster work
  without mod_presence; subscriptions and presence without mod_message.

Roost only (the configuration is Roost's).  Prints 'N passed, N failed'.
"""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                                   # noqa: E402
from roosttest import check, Client, TestFailure, NS_SASL  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815',
         'dave@example.test': 'dave-Secret-1'}
TIGHT_TIMEOUT = 1.5
ALL_MODULES = 'disco ping version message roster presence'


def bare(jid):
    return jid.split('/', 1)[0]


class LifecycleRoost(rt.Roost):
    """The usual two vhosts, with a module list of its own and optionally
    a short c2s_timeout and SASL ANONYMOUS on example.test."""
    modules_list = ALL_MODULES
    c2s_timeout = None
    anonymous = False

    def write_config(self):
        saved = os.environ.get('ROOSTTEST_MODULES')
        os.environ['ROOSTTEST_MODULES'] = self.modules_list
        try:
            super().write_config()
        finally:
            if saved is None:
                del os.environ['ROOSTTEST_MODULES']
            else:
                os.environ['ROOSTTEST_MODULES'] = saved
        with open(self.config) as f:
            conf = f.read()
        if self.c2s_timeout is not None:
            conf = conf.replace('c2s_timeout = 300',
                                'c2s_timeout = %s' % self.c2s_timeout)
            check('c2s_timeout = %s' % self.c2s_timeout in conf,
                  'could not rewrite c2s_timeout')
        if self.anonymous:
            conf = conf.replace('{ domain = "example.test";',
                                '{ domain = "example.test"; anonymous = true;')
            check('anonymous = true' in conf, 'could not enable anonymous')
        with open(self.config, 'w') as f:
            f.write(conf)


class TightRoost(LifecycleRoost):
    c2s_timeout = TIGHT_TIMEOUT


class AnonRoost(LifecycleRoost):
    anonymous = True


class NoPresenceRoost(LifecycleRoost):
    modules_list = 'disco ping version message roster'


class NoMessageRoost(LifecycleRoost):
    modules_list = 'disco ping version roster presence'


# ----------------------------------------------------------------- helpers

def answer_ping(c, el):
    """Answers a server's XEP-0199 ping (c2s_timeout idle check); True if
    el was one."""
    if rt.tag(el) == 'iq' and el.get('type') == 'get' and \
            el.find('{urn:xmpp:ping}ping') is not None:
        c.send("<iq type='result' id='%s' to='%s'/>"
               % (el.get('id'), el.get('from') or c.domain))
        return True
    return False


def wait_for(c, pred, what, timeout=rt.TIMEOUT):
    """Reads c until pred(el); pings are answered, other stanzas kept for
    later calls (c.backlog), so that the order of unrelated stanzas does
    not matter."""
    backlog = getattr(c, 'backlog', [])
    c.backlog = backlog
    for i, el in enumerate(backlog):
        if pred(el):
            del backlog[i]
            return el
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure('%s: no %s within %.1fs' % (c.name, what, timeout))
        try:
            el = c.recv(timeout=left)
        except rt.StreamClosed:
            raise
        except TestFailure:
            raise TestFailure('%s: no %s within %.1fs' % (c.name, what, timeout))
        if answer_ping(c, el):
            continue
        if pred(el):
            return el
        backlog.append(el)


def is_presence(el, frm, ptype=None):
    return (rt.tag(el) == 'presence' and el.get('from') == frm and
            el.get('type') == ptype)


def login(srv, jid, resource, echo=True):
    """Logs in as a client does: roster get (an interested resource, RFC
    6121 §2.1.6, which is who gets subscription approvals and pushes),
    then initial presence (its echo awaited when echo is set)."""
    c = Client(srv, jid, USERS[jid], name='%s/%s' % (jid, resource))
    c.login(resource)
    r = c.iq("<iq type='get' id='roster0'>"
             "<query xmlns='jabber:iq:roster'/></iq>")
    check(r.get('type') == 'result', 'roster get: %s' % rt.to_string(r))
    c.send('<presence/>')
    if echo:
        wait_for(c, lambda el: is_presence(el, c.full_jid), 'presence echo')
    return c


def subscribe(a, b):
    """a asks for b's presence, b approves (RFC 6121 §3.1)."""
    a.send("<presence to='%s' type='subscribe'/>" % bare(b.full_jid))
    wait_for(b, lambda el: is_presence(el, bare(a.full_jid), 'subscribe'),
             'subscription request from %s' % bare(a.full_jid))
    b.send("<presence to='%s' type='subscribed'/>" % bare(a.full_jid))
    wait_for(a, lambda el: is_presence(el, bare(b.full_jid), 'subscribed'),
             'subscription approval from %s' % bare(b.full_jid))


def subscribe_both(a, b):
    subscribe(a, b)
    subscribe(b, a)


# A contact's client in a process of its own: logs in, sends presence,
# says READY and then neither reads nor writes until it is killed.
CHILD = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
import roosttest as rt
class S:
    c2s_port = int(sys.argv[2])
    tls_port = int(sys.argv[3])
    def domain_of(self, jid):
        return jid.split('@', 1)[1].split('/', 1)[0]
c = rt.Client(S(), sys.argv[4], sys.argv[5]).login(sys.argv[6])
c.send('<presence/>')
print('READY ' + c.full_jid, flush=True)
while True:
    time.sleep(3600)
'''


def spawn_contact(srv, jid, resource):
    p = subprocess.Popen([sys.executable, '-c', CHILD, HERE,
                          str(srv.c2s_port), str(srv.tls_port), jid,
                          USERS[jid], resource],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    line = p.stdout.readline().decode().strip()
    if not line.startswith('READY '):
        p.kill()
        p.wait()
        raise TestFailure('contact process did not log in: %r' % line)
    return p, line.split(' ', 1)[1]


def end_process(p):
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGCONT)
        except OSError:
            pass
        p.kill()
    p.wait()
    p.stdout.close()


def contact_setup(srv):
    """alice and bob subscribed both ways (handshake done here); bob's
    first client leaves, and bob comes back from another process.
    Returns (alice, process, bob's full JID there)."""
    alice = login(srv, 'alice@localhost', 'desk')
    bob = login(srv, 'bob@localhost', 'first')
    subscribe_both(alice, bob)
    wait_for(alice, lambda el: is_presence(el, bob.full_jid),
             "bob's presence after the subscription")
    bob.close()
    wait_for(alice, lambda el: is_presence(el, bob.full_jid, 'unavailable'),
             "bob's unavailable after a polite close")
    p, full = spawn_contact(srv, 'bob@localhost', 'child')
    try:
        wait_for(alice, lambda el: is_presence(el, full),
                 "presence of bob's other process")
    except TestFailure:
        end_process(p)
        raise
    return alice, p, full


# ------------------------------------------------------------------- tests

def loss_of_contact_kill(srv):
    """SIGKILL the contact's client: its TCP connection ends without
    </stream:stream>, and alice gets unavailable from its full JID at
    once (RFC 2779 3.2.5: no goodbye needed)."""
    alice, p, full = contact_setup(srv)
    try:
        t0 = time.monotonic()
        p.send_signal(signal.SIGKILL)
        wait_for(alice, lambda el: is_presence(el, full, 'unavailable'),
                 'unavailable from %s after SIGKILL' % full, timeout=5)
        took = time.monotonic() - t0
        check(took < 3, 'unavailable only after %.1fs' % took)
    finally:
        end_process(p)
        alice.close()


def loss_of_contact_silent(srv):
    """SIGSTOP the contact's client: no FIN, no RST, nothing read.  The
    server pings it after c2s_timeout and closes it after another; alice
    gets unavailable from its full JID within about 2 x c2s_timeout."""
    alice, p, full = contact_setup(srv)
    try:
        t0 = time.monotonic()
        p.send_signal(signal.SIGSTOP)
        wait_for(alice, lambda el: is_presence(el, full, 'unavailable'),
                 'unavailable from %s after SIGSTOP' % full,
                 timeout=3 * TIGHT_TIMEOUT + 3)
        took = time.monotonic() - t0
        # Not the kernel: the connection is still up, only the timeout
        # can tell (the contact's last input preceded the stop a little).
        check(took >= TIGHT_TIMEOUT * 0.6,
              'unavailable after %.1fs: too early for the idle check' % took)
        check(took <= 2 * TIGHT_TIMEOUT + 1.5,
              'unavailable after %.1fs, want within 2 x c2s_timeout (%.1fs)'
              % (took, 2 * TIGHT_TIMEOUT))
    finally:
        end_process(p)
        alice.close()


def anon_auth(srv, domain):
    """STARTTLS, then SASL ANONYMOUS; returns the client (stream restarted)
    or raises AuthFailed."""
    c = Client(srv, None, None, name='anonymous@' + domain)
    c.domain = domain
    c.connect()
    c.open_stream()
    c.starttls()
    check('ANONYMOUS' in c.mechanisms(),
          '%s does not offer ANONYMOUS: %s' % (domain, c.mechanisms()))
    # RFC 4505: optional trace; RFC 6120 §6.4.2: '=' is an empty response.
    c.send("<auth xmlns='%s' mechanism='ANONYMOUS'>=</auth>" % NS_SASL)
    el = c.recv()
    if el.tag == '{%s}failure' % NS_SASL:
        raise rt.AuthFailed(rt.error_condition(el, NS_SASL))
    check(el.tag == '{%s}success' % NS_SASL,
          'ANONYMOUS answered with %s' % rt.to_string(el))
    c.open_stream()
    return c


def anonymous_login(srv):
    """An anonymous vhost: login gives a random localpart on that domain,
    different for each login (RFC 4505, XEP-0175)."""
    a = anon_auth(srv, 'example.test')
    b = anon_auth(srv, 'example.test')
    try:
        ja, jb = a.bind(), b.bind()
        for j in (ja, jb):
            check('@' in j and bare(j).split('@', 1)[1] == 'example.test',
                  'anonymous JID %s is not on example.test' % j)
            check(len(j.split('@', 1)[0]) >= 8,
                  'anonymous localpart %r is too guessable' % j)
        check(bare(ja) != bare(jb),
              'two anonymous logins got the same JID %s' % bare(ja))
        # The JID is usable: a ping to the server answers.
        r = a.iq("<iq type='get' id='p1' to='example.test'>"
                 "<ping xmlns='urn:xmpp:ping'/></iq>")
        check(r.get('type') == 'result', 'ping: %s' % rt.to_string(r))
    finally:
        a.close()
        b.close()


def anonymous_messages_user(srv):
    """The anonymous user can message a normal user, who sees the
    anonymous full JID as the sender."""
    dave = login(srv, 'dave@example.test', 'home')
    a = anon_auth(srv, 'example.test')
    try:
        ja = a.bind()
        a.send("<message to='dave@example.test' type='chat' id='an1'>"
               "<body>hello from nowhere</body></message>")
        el = wait_for(dave, lambda el: rt.tag(el) == 'message',
                      'message from the anonymous user')
        check(el.get('from') == ja,
              'from %s, expected %s' % (el.get('from'), ja))
        check(el.findtext('{jabber:client}body') == 'hello from nowhere',
              'body: %s' % rt.to_string(el))
        check(el.get('type') != 'error', 'error: %s' % rt.to_string(el))
    finally:
        a.close()
        dave.close()


def normal_vhost_no_anonymous(srv):
    """localhost (anonymous not set) does not offer ANONYMOUS, and refuses
    it when asked (RFC 6120 §6.4.5 invalid-mechanism)."""
    c = Client(srv, None, None, name='anonymous@localhost')
    c.connect()
    c.open_stream()
    c.starttls()
    try:
        check('ANONYMOUS' not in c.mechanisms(),
              'localhost offers ANONYMOUS: %s' % c.mechanisms())
        check(c.mechanisms(), 'no mechanisms at all')
        c.send("<auth xmlns='%s' mechanism='ANONYMOUS'>=</auth>" % NS_SASL)
        el = c.recv()
        check(el.tag == '{%s}failure' % NS_SASL,
              'ANONYMOUS on localhost answered with %s' % rt.to_string(el))
        check(rt.error_condition(el, NS_SASL) == 'invalid-mechanism',
              'failure <%s/>, RFC 6120 §6.5.6 says invalid-mechanism'
              % rt.error_condition(el, NS_SASL))
    finally:
        c.close()


def messaging_without_presence(srv):
    """REQUIREMENTS 2.1.1: without mod_presence, messages flow both ways
    (bare and full JID) and the roster works.  (No presence echo: that
    is mod_presence's.)"""
    alice = login(srv, 'alice@localhost', 'desk', echo=False)
    bob = login(srv, 'bob@localhost', 'phone', echo=False)
    try:
        alice.send("<message to='bob@localhost' type='chat' id='m1'>"
                   "<body>to your bare JID</body></message>")
        el = wait_for(bob, lambda el: rt.tag(el) == 'message', 'message 1')
        check(el.get('type') == 'chat' and el.get('from') == alice.full_jid,
              'got %s' % rt.to_string(el))
        bob.send("<message to='%s' id='m2'><body>to your full JID</body>"
                 "</message>" % alice.full_jid)
        el = wait_for(alice, lambda el: rt.tag(el) == 'message', 'message 2')
        check(el.findtext('{jabber:client}body') == 'to your full JID' and
              el.get('type') != 'error', 'got %s' % rt.to_string(el))
        r = alice.iq("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                     "<item jid='bob@localhost' name='Bob'/></query></iq>")
        check(r.get('type') == 'result', 'roster set: %s' % rt.to_string(r))
        r = alice.iq("<iq type='get' id='r2'>"
                     "<query xmlns='jabber:iq:roster'/></iq>")
        check(r.get('type') == 'result', 'roster get: %s' % rt.to_string(r))
        items = r.findall('{jabber:iq:roster}query/{jabber:iq:roster}item')
        check([i.get('jid') for i in items] == ['bob@localhost'],
              'roster: %s' % rt.to_string(r))
    finally:
        alice.close()
        bob.close()


def presence_without_message(srv):
    """REQUIREMENTS 2.1.1: without mod_message, the subscription handshake
    and presence exchange work."""
    alice = login(srv, 'alice@localhost', 'desk')
    bob = login(srv, 'bob@localhost', 'phone')
    try:
        subscribe_both(alice, bob)
        wait_for(alice, lambda el: is_presence(el, bob.full_jid),
                 "bob's presence after the subscription")
        bob.send('<presence><show>away</show></presence>')
        wait_for(alice, lambda el: is_presence(el, bob.full_jid) and
                 el.findtext('{jabber:client}show') == 'away',
                 "bob's presence update")
        r = alice.iq("<iq type='get' id='r3'>"
                     "<query xmlns='jabber:iq:roster'/></iq>")
        items = {i.get('jid'): i.get('subscription') for i in
                 r.findall('{jabber:iq:roster}query/{jabber:iq:roster}item')}
        check(items.get('bob@localhost') == 'both',
              'roster after the handshake: %s' % rt.to_string(r))
        bob.close()
        wait_for(alice, lambda el: is_presence(el, bob.full_jid,
                                               'unavailable'),
                 "bob's unavailable")
    finally:
        alice.close()
        bob.close()


GROUPS = [(LifecycleRoost, [loss_of_contact_kill]),
          (TightRoost, [loss_of_contact_silent]),
          (AnonRoost, [anonymous_login, anonymous_messages_user,
                       normal_vhost_no_anonymous]),
          (NoPresenceRoost, [messaging_without_presence]),
          (NoMessageRoost, [presence_without_message])]


def run_group(cls, tests, name_filter):
    tests = [t for t in tests if not name_filter or name_filter in t.__name__]
    if not tests:
        return 0, 0
    return rt.run_group(cls, USERS, tests, 'lifecycle')


def main():
    name_filter = sys.argv[1] if len(sys.argv) > 1 else ''
    passed = failed = 0
    for cls, tests in GROUPS:
        p, f = run_group(cls, tests, name_filter)
        passed += p
        failed += f
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
