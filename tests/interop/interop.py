#!/usr/bin/env python3
"""Interop tests: unmodified XMPP clients against the server under test.

(a) two slixmpp clients (python3-slixmpp) log in over STARTTLS and chat both ways;
    they then subscribe to each other with slixmpp's own roster machinery
    (send_presence_subscription, auto_authorize, auto_subscribe): both
    rosters must end with subscription='both' (pushed and re-fetched), each
    must see the other's available presence with its status text (broadcast,
    and the probe answer after a reconnect), and unavailable when the other
    disconnects;
(b) go-sendxmpp (Debian go-sendxmpp) sends to a slixmpp client, and listens
    (-l) for a message a slixmpp client sends to it.
Prints PASS/FAIL lines and "N passed, N failed[, N skipped]"; --server roost|prosody.
"""
import argparse, asyncio, logging, os, shutil, ssl, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import roosttest as rt  # noqa: E402

TOP = os.path.dirname(os.path.dirname(HERE))
USERS = {'alice@localhost': 'alice-secret', 'bob@localhost': 'bob-secret'}
WAIT = 15.0
results = []


def report(outcome, name, why=''):
    results.append(outcome)
    print('%s interop:%s%s' % (outcome, name, ': ' + why if why else ''), flush=True)


try:
    import slixmpp
except ImportError:          # reported as failures below, never hidden
    slixmpp = None


class Bot(slixmpp.ClientXMPP if slixmpp else object):
    """A plain slixmpp client; only the certificate check is relaxed
    (the server's certificate is self-signed)."""

    def __init__(self, jid, password, status=None):
        super().__init__(jid, password)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.ssl_context = ctx
        self.status = status
        self.inbox = asyncio.Queue()
        self.ready = asyncio.Event()
        self.failure = None
        self.presences = []          # (type, full JID, status), in arrival order
        self.add_event_handler('session_start', self._start)
        self.add_event_handler('message', lambda m: self.inbox.put_nowait(m))
        self.add_event_handler('failed_auth', lambda _: setattr(self, 'failure', 'authentication failed'))
        for ev in ('presence_available', 'presence_unavailable'):
            self.add_event_handler(ev, self._presence)

    async def _start(self, _):
        # Fetch the roster first: it makes this resource "interested"
        # (RFC 6121 §2.1.6), so the server pushes roster changes to it.
        await self.get_roster(timeout=WAIT)
        self.send_presence(pstatus=self.status)
        self.ready.set()

    def _presence(self, p):
        self.presences.append((p['type'], p['from'].full, p['status']))

    async def presence_from(self, bare, ptype, status=None, since=0, timeout=WAIT):
        """The first presence (index >= since) of type ptype ('available'
        or 'unavailable') from a resource of bare, with status if given."""
        deadline = time.monotonic() + timeout
        while True:
            for t, frm, st in self.presences[since:]:
                if t == ptype and frm.split('/')[0] == bare and '/' in frm and \
                        (status is None or st == status):
                    return frm, st
            if time.monotonic() >= deadline:
                raise rt.TestFailure('%s: no %s presence from %s%s within %ss (got: %s)' % (
                    self.boundjid.bare, ptype, bare, ' with status %r' % status if status else '',
                    timeout, self.presences[since:] or 'nothing'))
            await asyncio.sleep(0.05)

    async def next_message(self, timeout=WAIT):
        while True:
            m = await asyncio.wait_for(self.inbox.get(), timeout)
            if m['type'] in ('chat', 'normal') and m['body']:
                return m


async def online(srv, jid, status=None):
    bot = Bot(jid, USERS[jid], status)
    bot.connect(address=('127.0.0.1', srv.c2s_port), force_starttls=True)
    try:
        await asyncio.wait_for(bot.ready.wait(), WAIT)
    except asyncio.TimeoutError:
        raise rt.TestFailure('%s: no session within %ss (%s)' % (jid, WAIT, bot.failure or 'timeout'))
    return bot


def expect(cond, msg):
    if not cond:
        raise rt.TestFailure(msg)


async def step(name, coro):
    try:
        await coro
        report('PASS', name)
    except (rt.TestFailure, asyncio.TimeoutError, OSError) as e:
        report('FAIL', name, str(e) or type(e).__name__)


async def slixmpp_chat(alice, bob):
    alice.send_message(mto='bob@localhost', mbody='Hello Bob, from slixmpp ✓', mtype='chat')
    m = await bob.next_message()
    expect(m['body'] == 'Hello Bob, from slixmpp ✓', 'bob got body %r' % m['body'])
    expect(m['from'].full == alice.boundjid.full, 'bob got from=%s, expected %s' % (m['from'], alice.boundjid))
    m.reply('Hello Alice, back to you').send()
    r = await alice.next_message()
    expect(r['body'] == 'Hello Alice, back to you', 'alice got body %r' % r['body'])
    expect(r['from'].full == bob.boundjid.full, 'alice got from=%s, expected %s' % (r['from'], bob.boundjid))


async def slixmpp_stream_management(srv, bob):
    """XEP-0198 with slixmpp's own xep_0198 plugin: enabled with
    resumption (an SM-ID), the server answers its ack requests with the
    number of stanzas it handled, and asks for acks itself."""
    sm = Bot('alice@localhost', USERS['alice@localhost'])
    sm.register_plugin('xep_0198')
    enabled = asyncio.Event()
    sm.add_event_handler('sm_enabled', lambda _: enabled.set())
    sm.connect(address=('127.0.0.1', srv.c2s_port), force_starttls=True)
    try:
        await asyncio.wait_for(sm.ready.wait(), WAIT)
        await asyncio.wait_for(enabled.wait(), WAIT)
        plugin = sm.plugin['xep_0198']
        expect(plugin.sm_id, 'no SM-ID: resumption not offered')
        for i in range(3):
            sm.send_message(mto='bob@localhost', mbody='sm %d' % i, mtype='chat')
        for i in range(3):
            m = await bob.next_message()
            expect(m['body'] == 'sm %d' % i, 'bob got %r' % m['body'])
        plugin.request_ack()
        await poll(lambda: plugin.last_ack >= plugin.seq and plugin.seq >= 4,
                   lambda: 'server ack of every stanza sent (last_ack %d, sent %d)'
                   % (plugin.last_ack, plugin.seq))
        bob.send_message(mto=sm.boundjid.full, mbody='to the SM session', mtype='chat')
        await poll(lambda: plugin.handled >= 1,
                   lambda: 'the SM session counted nothing it got (%d)' % plugin.handled)
    finally:
        sm.disconnect()
        await asyncio.sleep(0.3)


async def poll(cond, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise rt.TestFailure('%s within %ss' % (what(), timeout))
        await asyncio.sleep(0.05)


def sub_state(client, contact):
    """(subscription, pending_out) of contact in client's slixmpp roster."""
    if contact not in client.client_roster:
        return ('absent', False)
    item = client.client_roster[contact]
    return (item['subscription'], item['pending_out'])


async def server_roster(client):
    """{jid: (subscription, ask)} of a freshly fetched jabber:iq:roster
    (without 'ver': the whole roster, XEP-0237 §4)."""
    iq = client.Iq()
    iq['type'] = 'get'
    iq.enable('roster')
    r = await iq.send(timeout=WAIT)
    return {str(j): (it['subscription'], it['ask'] or None)
            for j, it in r['roster']['items'].items()}


async def mutual_subscription(alice, bob):
    """bob asks alice; alice's slixmpp approves and asks back (auto_authorize
    + auto_subscribe); bob's approves: both rosters reach 'both'."""
    for c in (alice, bob):
        c.auto_authorize = True
        c.auto_subscribe = True
    bob.send_presence_subscription(pto='alice@localhost')
    await poll(lambda: sub_state(alice, 'bob@localhost') == ('both', False) and
               sub_state(bob, 'alice@localhost') == ('both', False),
               lambda: 'rosters not both/no ask: alice has bob %s, bob has alice %s' % (
                   sub_state(alice, 'bob@localhost'), sub_state(bob, 'alice@localhost')))
    # What the server stored, not what slixmpp inferred from presences.
    for c, other in ((alice, 'bob@localhost'), (bob, 'alice@localhost')):
        items = await server_roster(c)
        expect(items.get(other) == ('both', None),
               '%s: fetched roster has %s as %s, want subscription both without ask'
               % (c.boundjid.bare, other, items.get(other)))


async def status_broadcast(alice, bob, tag):
    """A presence broadcast with a status text reaches the contact."""
    for me, peer in ((alice, bob), (bob, alice)):
        status = '%s is testing presence %s' % (me.boundjid.user, tag)
        n = len(peer.presences)
        me.send_presence(pstatus=status)
        frm, _ = await peer.presence_from(me.boundjid.bare, 'available', status, since=n)
        expect(frm == me.boundjid.full, '%s saw the status from %s, want %s'
               % (peer.boundjid.bare, frm, me.boundjid.full))


async def unavailable_on_disconnect(watcher, leaver):
    """The contact sees unavailable from the full JID of a client that
    closes its stream."""
    full = leaver.boundjid.full
    n = len(watcher.presences)
    gone = leaver.disconnect()
    frm, _ = await watcher.presence_from(leaver.boundjid.bare, 'unavailable', since=n)
    expect(frm == full, '%s got unavailable from %s, want %s' % (watcher.boundjid.bare, frm, full))
    await asyncio.wait_for(gone, WAIT)


async def probe_on_login(alice, bob, tag, n):
    """bob logged in again with a status: he gets alice's current presence
    (with her status) from the server's probe, and alice sees his."""
    frm, st = await bob.presence_from('alice@localhost', 'available')
    expect(frm == alice.boundjid.full, 'bob got alice\'s presence from %s' % frm)
    want = 'alice is testing presence %s' % tag
    expect(st == want, 'bob got alice\'s status %r, want %r' % (st, want))
    frm, _ = await alice.presence_from('bob@localhost', 'available', bob.status, since=n)
    expect(frm == bob.boundjid.full, 'alice saw bob from %s' % frm)


def sendxmpp_argv(srv, jid, *extra):
    return ['go-sendxmpp', '-u', jid, '-p', USERS[jid], '-j', '127.0.0.1:%d' % srv.c2s_port,
            '-n', '--timeout', '10'] + list(extra)


async def sendxmpp_to_bob(srv, bob, env):
    body = 'Hello Bob, from go-sendxmpp %d' % os.getpid()
    proc = await asyncio.create_subprocess_exec(
        *sendxmpp_argv(srv, 'alice@localhost', 'bob@localhost'), env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(body.encode() + b'\n'), 30)
    expect(proc.returncode == 0, 'go-sendxmpp exited %s: %s' % (proc.returncode, out.decode(errors='replace')[-500:]))
    m = await bob.next_message()
    expect(m['body'].strip() == body, 'bob got body %r' % m['body'])
    expect(m['from'].bare == 'alice@localhost', 'bob got from=%s' % m['from'])


async def bob_to_sendxmpp_listener(srv, bob, env):
    proc = await asyncio.create_subprocess_exec(
        *sendxmpp_argv(srv, 'alice@localhost', '-l'), env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    body = 'Hello go-sendxmpp, from slixmpp %d' % os.getpid()
    out = b''
    try:
        deadline = time.monotonic() + WAIT
        sent_at = time.monotonic() + 2.0       # let it log in and send presence
        while time.monotonic() < deadline and body.encode() not in out:
            if sent_at and time.monotonic() >= sent_at:
                bob.send_message(mto='alice@localhost', mbody=body, mtype='chat')
                sent_at = None
            try:
                out += await asyncio.wait_for(proc.stdout.read(4096), 0.5)
            except asyncio.TimeoutError:
                pass
            if proc.returncode is not None:
                break
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
    text = out.decode(errors='replace')
    expect(body in text, 'go-sendxmpp -l did not print the message; output: %r' % text[-500:])
    line = next(l for l in text.splitlines() if body in l)
    expect('bob@localhost' in line, 'sender not bob@localhost in %r' % line)


async def main(srv):
    alice = bob = None
    try:
        alice, bob = await online(srv, 'alice@localhost'), await online(srv, 'bob@localhost')
        report('PASS', 'slixmpp-login')
    except rt.TestFailure as e:
        report('FAIL', 'slixmpp-login', str(e))
        return
    await step('slixmpp-chat-both-ways', slixmpp_chat(alice, bob))
    await step('slixmpp-stream-management', slixmpp_stream_management(srv, bob))
    tag = '%d-%d' % (os.getpid(), int(time.time()))
    await step('slixmpp-mutual-subscription', mutual_subscription(alice, bob))
    await step('slixmpp-status-broadcast', status_broadcast(alice, bob, tag))
    await step('slixmpp-unavailable-on-disconnect', unavailable_on_disconnect(alice, bob))
    n = len(alice.presences)
    try:
        bob = await online(srv, 'bob@localhost', 'bob is back %s' % tag)
    except rt.TestFailure as e:
        report('FAIL', 'slixmpp-login-again', str(e))
        return
    await step('slixmpp-presence-on-login', probe_on_login(alice, bob, tag, n))
    await step('slixmpp-unavailable-on-disconnect-2', unavailable_on_disconnect(bob, alice))
    if not shutil.which('go-sendxmpp'):
        report('FAIL', 'go-sendxmpp', 'go-sendxmpp not installed (apt-get install go-sendxmpp)')
        return
    home = os.path.join(srv.dir, 'home')       # no ~/.config/go-sendxmpp of the user
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home)
    await step('go-sendxmpp-to-slixmpp', sendxmpp_to_bob(srv, bob, env))
    await step('slixmpp-to-go-sendxmpp-listen', bob_to_sendxmpp_listener(srv, bob, env))
    bob.disconnect()
    await asyncio.sleep(0.5)


def default_binaries():
    """The build tree: top_builddir when configured in-tree, else ./build
    (the environment's ROOSTD, ROOSTCTL, ROOST_MODULES_DIR win)."""
    for var, rel in (('ROOSTD', 'roostd'), ('ROOSTCTL', 'roostctl'),
                     ('ROOST_MODULES_DIR', os.path.join('modules', '.libs'))):
        if var not in os.environ and not os.path.exists(os.path.join(TOP, rel)) \
                and os.path.exists(os.path.join(TOP, 'build', rel)):
            os.environ[var] = os.path.join(TOP, 'build', rel)


def run():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--server', choices=sorted(rt.SERVERS), default='roost')
    ap.add_argument('--debug', action='store_true')
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL)
    default_binaries()
    mods = os.environ.get('ROOSTTEST_MODULES')
    if mods is not None:          # the presence tests need these two
        os.environ['ROOSTTEST_MODULES'] = ' '.join(
            mods.split() + [m for m in ('roster', 'presence') if m not in mods.split()])
    srv = rt.SERVERS[args.server](USERS)
    try:
        if slixmpp is None:
            raise rt.TestFailure('python3-slixmpp not installed')
        srv.start()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.wait_for(main(srv), 120))
    except Exception as e:
        tail = srv.log_tail(20) if os.path.exists(srv.logfile) else ''
        report('FAIL', 'setup', '%s: %s\n%s' % (type(e).__name__, e, tail))
    started = srv.proc is not None
    if started:
        # Every client above logs in at its first SASL attempt: a failure
        # means a mechanism or channel-binding mismatch (slixmpp falls back
        # from -PLUS through the "y" flag to PLAIN when the server refuses
        # its tls-unique binding on TLS 1.3).
        log = srv.log_tail(100000)
        bad = 'authentication failed' in log
        report('FAIL' if bad else 'PASS', 'first-attempt-sasl',
               'a client needed several SASL attempts: %s' %
               [l for l in log.splitlines() if 'authentication' in l][:4]
               if bad else '')
        mechs = sorted({l.rsplit('(', 1)[-1].rstrip(')')
                        for l in log.splitlines() if 'authenticated as' in l})
        print('    (SASL mechanisms used: %s)' % ', '.join(mechs))
    problems = srv.stop()
    if started:
        report('FAIL' if problems else 'PASS', 'server-clean-shutdown', '; '.join(problems))
    if problems:
        print('    (server files kept in %s)' % srv.dir)
    else:
        srv.cleanup()
    failed = results.count('FAIL')
    print('%d passed, %d failed' % (results.count('PASS'), failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(run())
