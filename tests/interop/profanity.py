#!/usr/bin/env python3
"""Interop test: the unmodified profanity terminal client against roostd.

profanity (Debian's package) runs in a detached tmux session with its own
HOME/XDG dirs and is driven with `tmux send-keys` and read back with
`tmux capture-pane`; a slixmpp client (bob) in this process is the peer:
  - alice logs in from profanity over STARTTLS (accepting the self-signed
    certificate with `/tls allow` when profanity asks);
  - bob (slixmpp) -> alice: the body must show up in profanity's chat window;
  - alice -> bob with `/msg bob@localhost ...`, and typed into the chat window:
    slixmpp must get it from alice@localhost/<profanity's resource>;
  - presence: bob asks alice for a subscription; profanity shows the request,
    alice approves it with `/sub allow bob@localhost` and asks back with
    `/sub request bob@localhost` (bob's slixmpp approves: auto_authorize);
    `/sub show` in profanity and bob's roster must both say "both";
    profanity must show bob online with the status text bob broadcasts
    (`/status get bob@localhost`), and bob must see alice's
    `/status set online "..."` with its text, and her unavailable after /quit;
  - `/quit` must end profanity with status 0, and roostd must stop cleanly.
Prints PASS/FAIL lines and "N passed, N failed".  If profanity or tmux is
missing and cannot be installed with apt-get, prints why and
"0 passed, 0 failed, 1 skipped" and exits 0.
Env: ROOSTD, ROOSTCTL, ROOST_MODULES_DIR (default: the build tree);
ROOST_INTEROP_NO_APT=1 never runs apt-get.
"""
import argparse, asyncio, logging, os, re, shlex, shutil, signal, ssl, subprocess, sys, tempfile, time, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import roosttest as rt  # noqa: E402

USERS = {'alice@localhost': 'alice-secret', 'bob@localhost': 'bob-secret'}
WAIT = 20.0                  # seconds for any single expected event
POLL = 0.1
results = []

try:
    import slixmpp
except ImportError:          # reported as a failure below, never hidden
    slixmpp = None


def report(outcome, name, why=''):
    results.append(outcome)
    print('%s profanity:%s%s' % (outcome, name, ': ' + why if why else ''), flush=True)


def indent(text, n=40):
    lines = [l.rstrip() for l in text.splitlines() if l.strip()][-n:]
    return '\n'.join('    | ' + l for l in lines)


# ------------------------------------------------------------ prerequisites

def default_binaries():
    """The build tree: top_builddir when configured in-tree, else ./build."""
    for var, rel in (('ROOSTD', 'roostd'), ('ROOSTCTL', 'roostctl'),
                     ('ROOST_MODULES_DIR', os.path.join('modules', '.libs'))):
        if var not in os.environ and not os.path.exists(os.path.join(TOP, rel)) \
                and os.path.exists(os.path.join(TOP, 'build', rel)):
            os.environ[var] = os.path.join(TOP, 'build', rel)


def missing_tools():
    return [t for t in ('profanity', 'tmux') if not shutil.which(t)]


def ensure_tools():
    """None when profanity and tmux are usable, else the reason to skip."""
    missing = missing_tools()
    if not missing:
        return None
    if os.environ.get('ROOST_INTEROP_NO_APT'):
        return '%s not installed and ROOST_INTEROP_NO_APT is set' % ' '.join(missing)
    if os.geteuid() != 0 or not shutil.which('apt-get'):
        return '%s not installed (needs: apt-get install -y profanity tmux, as root)' % ' '.join(missing)
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    out = ''
    for attempt in (['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'profanity', 'tmux'],
                    ['apt-get', 'update', '-q'],
                    ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'profanity', 'tmux']):
        if attempt[1] == 'update' and not missing_tools():
            break
        print('# %s' % ' '.join(attempt), flush=True)
        try:
            r = subprocess.run(attempt, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=900)
            out = r.stdout.decode(errors='replace')
        except (OSError, subprocess.TimeoutExpired) as e:
            out = str(e)
    missing = missing_tools()
    if missing:
        last = [l for l in out.splitlines() if l.strip()][-1:] or ['']
        return '%s not installed; apt-get install failed: %s' % (' '.join(missing), last[0])
    return None


# -------------------------------------------------------------- the peer

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
            self.add_event_handler(ev, lambda p: self.presences.append(
                (p['type'], p['from'].full, p['status'])))

    async def _start(self, _):
        # Fetch the roster first: it makes this resource "interested"
        # (RFC 6121 §2.1.6), so the server pushes roster changes to it.
        await self.get_roster(timeout=WAIT)
        self.send_presence(pstatus=self.status)
        self.ready.set()

    def subscription(self, contact):
        """contact's subscription in the roster the server pushed."""
        if contact not in self.client_roster:
            return 'absent'
        return self.client_roster[contact]['subscription']

    async def wait_subscription(self, contact, want, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while self.subscription(contact) not in want:
            if time.monotonic() >= deadline:
                raise rt.TestFailure('%s: %s has subscription %r within %ss, want %s' % (
                    self.boundjid.bare, contact, self.subscription(contact), timeout, '/'.join(want)))
            await asyncio.sleep(POLL)

    async def presence_from(self, full, ptype, status=None, since=0, timeout=WAIT):
        """The first presence (index >= since) of type ptype ('available' or
        'unavailable') from the full JID full, with status if given."""
        deadline = time.monotonic() + timeout
        while True:
            for t, frm, st in self.presences[since:]:
                if t == ptype and frm == full and (status is None or st == status):
                    return st
            if time.monotonic() >= deadline:
                raise rt.TestFailure('%s: no %s presence from %s%s within %ss (got: %s)' % (
                    self.boundjid.bare, ptype, full, ' with status %r' % status if status else '',
                    timeout, self.presences[since:] or 'nothing'))
            await asyncio.sleep(POLL)

    async def message_with(self, body, timeout=WAIT):
        """The next chat message carrying body (chat states etc. skipped)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise rt.TestFailure('no message %r within %ss (got: %s)' % (body, timeout, seen or 'nothing'))
            try:
                m = await asyncio.wait_for(self.inbox.get(), left)
            except asyncio.TimeoutError:
                continue
            if m['body'] == body:
                return m
            if m['body']:
                seen.append('%r from %s' % (m['body'], m['from']))


async def online(srv, jid, status=None):
    bot = Bot(jid, USERS[jid], status)
    bot.connect(address=('127.0.0.1', srv.c2s_port), force_starttls=True)
    try:
        await asyncio.wait_for(bot.ready.wait(), WAIT)
    except asyncio.TimeoutError:
        raise rt.TestFailure('%s: no session within %ss (%s)' % (jid, WAIT, bot.failure or 'timeout'))
    return bot


# ------------------------------------------------------- profanity in tmux

class Profanity:
    """profanity in a detached tmux session on a private tmux socket."""

    FAILURE = re.compile(r'Login failed|Lost connection|Connection (?:failed|error|lost)'
                         r'|[Dd]isconnected|[Ss]tream error|Could not connect')

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='roost-profanity-')
        self.home = os.path.join(self.dir, 'home')
        self.config_home = os.path.join(self.home, '.config')
        self.data_home = os.path.join(self.home, '.local', 'share')
        for d in (self.config_home, self.data_home):
            os.makedirs(d)
        # a private tmux server: its socket lives (and is removed) with self.dir
        self.socket = os.path.join(self.dir, 'tmux.sock')
        if len(self.socket) > 100:            # sun_path limit (long $TMPDIR)
            self.socket = '/tmp/roost-profanity-%s.sock' % uuid.uuid4().hex
        self.session = 'prof'
        self.started = False
        self.resource = None
        self.tmux_conf = os.path.join(self.dir, 'tmux.conf')
        self.status_file = os.path.join(self.dir, 'profanity.status')
        self.logfile = os.path.join(self.data_home, 'profanity', 'logs', 'profanity.log')
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ('TMUX', 'TMUX_PANE', 'DISPLAY', 'WAYLAND_DISPLAY',
                                 'DBUS_SESSION_BUS_ADDRESS')}
        self.env.update(TERM='xterm-256color', HOME=self.home, LANG='C.UTF-8', LC_ALL='C.UTF-8',
                        XDG_CONFIG_HOME=self.config_home, XDG_DATA_HOME=self.data_home)

    def write_config(self):
        """profrc: no splash/update check/desktop notifications, no silent
        reconnect (a dropped connection must show up as a failure)."""
        d = os.path.join(self.config_home, 'profanity')
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'profrc'), 'w') as f:
            f.write('[ui]\nsplash=false\nvercheck=false\nmouse=false\nbeep=false\nflash=false\n'
                    'titlebar=false\n\n'
                    '[connection]\nreconnect=0\n\n'
                    '[notifications]\nmessage=false\nroom=off\ninvite=false\nsub=false\n'
                    'typing=false\nremind=0\n')
        with open(self.tmux_conf, 'w') as f:
            # remain-on-exit: keep the dead pane, to read profanity's exit status
            f.write('set -g remain-on-exit on\nset -g default-terminal screen-256color\n'
                    'set -g history-limit 2000\nset -g status off\n')

    def tmux(self, *args, check=True, timeout=10):
        r = subprocess.run(['tmux', '-S', self.socket, '-f', self.tmux_conf] + list(args),
                           env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if check and r.returncode != 0:
            raise rt.TestFailure('tmux %s: %s' % (args[0], r.stderr.decode(errors='replace').strip()))
        return r.stdout.decode(errors='replace')

    def start(self):
        self.write_config()
        # the exit status goes to a file: tmux 3.3 has no format for a signal
        self.tmux('new-session', '-d', '-s', self.session, '-x', '220', '-y', '60',
                  'profanity -l DEBUG; echo $? > %s' % shlex.quote(self.status_file))
        self.started = True

    def kill(self):
        """Kill our own tmux server (only ours: it has a private socket)."""
        if self.started:
            try:
                self.tmux('kill-server', check=False)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.started = False
        if not self.socket.startswith(self.dir + os.sep):
            try:
                os.unlink(self.socket)
            except OSError:
                pass

    def screen(self):
        return self.tmux('capture-pane', '-p', '-J', '-t', self.session)

    def dead(self):
        """None while profanity runs, else how it ended."""
        out = self.tmux('display-message', '-p', '-t', self.session, '#{pane_dead}').strip()
        if out != '1':
            return None
        try:
            with open(self.status_file) as f:
                rc = int(f.read().strip())
        except (OSError, ValueError):
            return 'unknown status (pane dead, no status written)'
        return 'signal %d' % (rc - 128) if rc > 128 else 'status %d' % rc

    def type(self, text):
        self.tmux('send-keys', '-t', self.session, '-l', text)
        self.tmux('send-keys', '-t', self.session, 'Enter')

    async def wait_for(self, pattern, what, timeout=WAIT, fail=None):
        """Poll the pane until pattern (a regex) matches; return the match.
        Raise at once when fail matches or profanity has exited."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            m = rx.search(text)
            if m:
                return m
            bad = fail.search(text) if fail else None
            if bad:
                raise rt.TestFailure('profanity shows %r while waiting for %s' % (bad.group(0), what))
            gone = self.dead()
            if gone:
                raise rt.TestFailure('profanity exited (%s) while waiting for %s' % (gone, what))
            if time.monotonic() >= deadline:
                raise rt.TestFailure('no %s on profanity screen within %ss' % (what, timeout))
            await asyncio.sleep(POLL)

    def log_tail(self, n=40):
        try:
            with open(self.logfile, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return '(no profanity log at %s)' % self.logfile

    def log_errors(self):
        try:
            with open(self.logfile, errors='replace') as f:
                return [l.rstrip() for l in f if ': prof: ERR:' in l]
        except OSError:
            return []


# ------------------------------------------------------------------ steps

def expect(cond, msg):
    if not cond:
        raise rt.TestFailure(msg)


async def login(srv, prof):
    await prof.wait_for(r"Type '/help'|\[offline\]", 'start-up screen')
    prof.type('/connect alice@localhost server 127.0.0.1 port %d' % srv.c2s_port)
    await prof.wait_for(r'Enter password:', 'password prompt', fail=Profanity.FAILURE)
    prof.type(USERS['alice@localhost'])
    ok = r'alice@localhost/(\S+) logged in successfully'
    m = await prof.wait_for(ok + r"|Use '/tls allow'", 'login or certificate prompt',
                            fail=Profanity.FAILURE)
    if not m.group(1):
        # tls force (the default): the self-signed certificate needs consent
        prof.type('/tls allow')
        m = await prof.wait_for(ok, 'login after /tls allow', fail=Profanity.FAILURE)
    prof.resource = m.group(1)


async def bob_to_profanity(prof, bob, body):
    bob.send_message(mto='alice@localhost', mbody=body, mtype='chat')
    # profanity opens a chat window for bob without focusing it and says so
    # in the console: "<< chat message: bob@localhost/res (win N)"
    m = await prof.wait_for(r'chat message: bob@localhost\S* \(win (\d+)\)|' + re.escape(body),
                            'notification of the message from bob', fail=Profanity.FAILURE)
    if m.group(1):
        prof.type('/win %s' % m.group(1))
    line = await prof.wait_for(r'.*' + re.escape(body), 'message body %r' % body, fail=Profanity.FAILURE)
    expect(re.search(r'bob@localhost(/\S+)?: ' + re.escape(body), line.group(0)),
           'body shown, but not as from bob@localhost: %r' % line.group(0).strip())


async def profanity_to_bob(prof, bob, body, command):
    prof.type(command + body)
    m = await bob.message_with(body)
    want = 'alice@localhost/%s' % prof.resource
    expect(m['from'].full == want, 'bob got from=%s, expected %s' % (m['from'], want))
    expect(m['type'] in ('chat', 'normal'), 'bob got type=%r' % m['type'])
    await prof.wait_for(r'me: ' + re.escape(body), 'own message %r echoed in the chat window' % body)


async def subscription_request_shown(prof, bob):
    # bob approves what alice asks (auto_authorize) but does not ask back
    # by himself: alice's subscription must come from profanity's command.
    bob.auto_authorize = True
    bob.auto_subscribe = False
    bob.send_presence_subscription(pto='alice@localhost')
    # in the console, and in bob's chat window when that is open
    await prof.wait_for(r'Received authorization request from bob@localhost'
                        r"|bob@localhost Authorization request, type '/sub allow'",
                        'the subscription request from bob', fail=Profanity.FAILURE)
    prof.type('/win 1')                    # the console, with the roster panel


async def profanity_allows(prof, bob):
    prof.type('/sub allow bob@localhost')
    await bob.wait_subscription('alice@localhost', ('to', 'both'))


async def profanity_requests(prof, bob):
    prof.type('/sub request bob@localhost')
    await bob.wait_subscription('alice@localhost', ('both',))
    # profanity's view, from its roster pushes; asked until it says both
    deadline = time.monotonic() + WAIT
    while True:
        prof.type('/clear')
        prof.type('/sub show bob@localhost')
        m = await prof.wait_for(r'bob@localhost subscription status: (\w+)',
                                'the answer to /sub show', fail=Profanity.FAILURE)
        got = m.group(1)
        if got == 'both':
            return
        if time.monotonic() >= deadline:
            raise rt.TestFailure('profanity shows subscription %r with bob, want both' % got)
        await asyncio.sleep(0.5)


async def profanity_sees_bob_status(prof, bob, status):
    bob.send_presence(pstatus=status)
    # the roster panel of the console lists bob among the online contacts
    await prof.wait_for(r'Online \(\d+\)[ \t]*\n[^\n]*bob@localhost[ \t]*(\n|$)',
                        'bob in the Online group of the roster panel', fail=Profanity.FAILURE)
    deadline = time.monotonic() + WAIT
    while True:
        prof.type('/clear')
        prof.type('/status get bob@localhost')
        try:
            await prof.wait_for(r'bob@localhost\S* is online, "%s"' % re.escape(status),
                                'bob online with status %r in /status get' % status,
                                timeout=1.0, fail=Profanity.FAILURE)
            return
        except rt.TestFailure:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)


async def bob_sees_profanity_status(prof, bob, status):
    n = len(bob.presences)
    prof.type('/status set online "%s"' % status)
    await bob.presence_from('alice@localhost/%s' % prof.resource, 'available', status, since=n)


async def quit_profanity(prof):
    prof.type('/quit')
    deadline = time.monotonic() + WAIT
    while True:
        gone = prof.dead()
        if gone:
            break
        if time.monotonic() >= deadline:
            raise rt.TestFailure('profanity still running %ss after /quit' % WAIT)
        await asyncio.sleep(POLL)
    expect(gone == 'status 0', 'profanity ended with %s' % gone)


async def step(name, coro, prof):
    try:
        await coro
        report('PASS', name)
        return True
    except (rt.TestFailure, asyncio.TimeoutError, OSError, subprocess.TimeoutExpired) as e:
        report('FAIL', name, str(e) or type(e).__name__)
        try:
            print('    profanity screen:\n' + indent(prof.screen()))
        except Exception:
            pass
        return False


async def main(srv, prof):
    tag = '%d-%s' % (os.getpid(), uuid.uuid4().hex[:6])
    bob = None
    try:
        try:
            bob = await online(srv, 'bob@localhost')
        except rt.TestFailure as e:
            report('FAIL', 'slixmpp-login', str(e))
            return
        prof.start()
        if not await step('login-starttls', login(srv, prof), prof):
            return
        await step('slixmpp-to-profanity',
                   bob_to_profanity(prof, bob, 'Hello Alice, from slixmpp ✓ %s' % tag), prof)
        await step('profanity-msg-to-slixmpp',
                   profanity_to_bob(prof, bob, 'Hello Bob, from profanity %s' % tag, '/msg bob@localhost '),
                   prof)
        await step('profanity-chat-window-to-slixmpp',
                   profanity_to_bob(prof, bob, 'Typed in the chat window ✓ %s' % tag, ''), prof)
        subscribed = await step('subscription-request-shown', subscription_request_shown(prof, bob), prof) \
            and await step('sub-allow', profanity_allows(prof, bob), prof) \
            and await step('sub-request-back-both', profanity_requests(prof, bob), prof)
        if subscribed:
            await step('profanity-sees-bob-online-with-status',
                       profanity_sees_bob_status(prof, bob, 'bob is around %s' % tag), prof)
            await step('slixmpp-sees-profanity-status',
                       bob_sees_profanity_status(prof, bob, 'in a meeting %s' % tag), prof)
        n = len(bob.presences)
        await step('quit', quit_profanity(prof), prof)
        if subscribed:
            await step('slixmpp-sees-profanity-unavailable',
                       bob.presence_from('alice@localhost/%s' % prof.resource, 'unavailable', since=n),
                       prof)
    finally:
        if bob is not None:
            bob.disconnect()
            try:
                await asyncio.wait_for(bob.disconnected, 5)
            except (asyncio.TimeoutError, Exception):
                pass


def run():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--debug', action='store_true')
    ap.add_argument('--keep', action='store_true', help='keep temp dirs even on success')
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL)
    why = ensure_tools()
    if why:
        print('SKIP profanity: %s' % why)
        print('0 passed, 0 failed, 1 skipped')
        return 0
    default_binaries()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    t0 = time.monotonic()
    srv = rt.Roost(USERS)
    prof = Profanity()
    try:
        if slixmpp is None:
            raise rt.TestFailure('python3-slixmpp not installed (apt-get install python3-slixmpp)')
        srv.start()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.wait_for(main(srv, prof), 150))
    except Exception as e:
        tail = srv.log_tail(20) if os.path.exists(srv.logfile) else ''
        report('FAIL', 'setup', '%s: %s\n%s' % (type(e).__name__, e, tail))
    except BaseException:          # interrupted (SIGINT/SIGTERM): leave nothing running
        prof.kill()
        srv.stop()
        print('interrupted; files kept in %s and %s' % (srv.dir, prof.dir), flush=True)
        raise
    finally:
        prof.kill()
    started = srv.proc is not None
    problems = srv.stop()
    if started:
        report('FAIL' if problems else 'PASS', 'server-clean-shutdown', '; '.join(problems))
    for line in prof.log_errors():
        print('# profanity logged: %s' % line.split(': ', 1)[-1])
    failed = results.count('FAIL')
    if failed or args.keep:
        print('    (server files kept in %s; server log: %s)' % (srv.dir, srv.logfile))
        print('    (profanity files kept in %s; its log: %s)' % (prof.dir, prof.logfile))
        if failed:
            print('    server log tail:\n' + indent(srv.log_tail(30)))
            print('    profanity log tail:\n' + indent(prof.log_tail(30)))
    else:
        srv.cleanup()
        shutil.rmtree(prof.dir, ignore_errors=True)
    print('# took %.1fs' % (time.monotonic() - t0))
    print('%d passed, %d failed' % (results.count('PASS'), failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(run())
