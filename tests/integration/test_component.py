"""External components (XEP-0114) over real sockets, with raw streams and
an unmodified slixmpp ComponentXMPP (python3-slixmpp, Debian).

    python3 test_component.py

Prints 'N passed, N failed'.
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

USERS = {'alice@localhost': 'alice-Secret-4711', 'bob@localhost': 'bob-Secret-0815'}
SECRET = 'c0mp0nent-s3cret'
NS_COMP = 'jabber:component:accept'


class CompRoost(rt.Roost):
    """The usual vhosts plus two components on a component listener."""

    def __init__(self, users):
        super().__init__(users)
        self.comp_port = rt.free_ports(1)[0]

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        conf = conf.replace(
            'listen = (\n',
            'components = ( { domain = "gw.localhost"; secret = "%s"; },\n'
            '               { domain = "bot.localhost"; secret = "other"; } );\n'
            'listen = (\n  { address = "127.0.0.1"; port = %d; type = "component"; },\n'
            % (SECRET, self.comp_port))
        with open(self.config, 'w') as f:
            f.write(conf)


def raw_component(srv, domain, secret):
    """Opens a component stream; returns (client, handshake answer)."""
    c = Client(srv, None, None, name='comp-' + domain)
    c.sock = socket.create_connection(('127.0.0.1', srv.comp_port), timeout=5)
    c.parser = rt.StreamParser()
    c.send("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' "
           "to='%s'>" % (NS_COMP, domain))
    deadline = time.monotonic() + 5
    while c.parser.header is None and not c.parser.ended:
        if not c._fill(deadline):
            raise TestFailure('no stream header from the component port')
    sid = c.parser.header.get('id')
    digest = hashlib.sha1((sid + secret).encode()).hexdigest()
    c.send('<handshake>%s</handshake>' % digest)
    return c, c.recv()


def handshake_ok_and_routing(srv):
    """XEP-0114 §3: the right handshake gets <handshake/>; a message from a
    local user to the component's domain (and a subdomain) reaches it; its
    answer reaches the user with the component's from."""
    comp, ans = raw_component(srv, 'gw.localhost', SECRET)
    alice = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
    try:
        check(ans.tag == '{%s}handshake' % NS_COMP, 'handshake answer: %s' % rt.to_string(ans))
        alice.send("<message to='user@gw.localhost' id='c1' type='chat'><body>to gw</body></message>")
        m = comp.recv()
        check(rt.tag(m) == 'message' and m.get('id') == 'c1' and
              m.get('from') == alice.full_jid, 'at the component: %s' % rt.to_string(m))
        comp.send("<message from='user@gw.localhost' to='%s' id='c2' type='chat'>"
                  "<body>from gw</body></message>" % alice.full_jid)
        r = alice.recv()
        check(rt.tag(r) == 'message' and r.get('from') == 'user@gw.localhost' and
              r.get('id') == 'c2', 'reply: %s' % rt.to_string(r))
        alice.send("<iq type='get' id='c3' to='sub.gw.localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        q = comp.recv()
        check(rt.tag(q) == 'iq' and q.get('id') == 'c3', 'iq to a subdomain: %s' % rt.to_string(q))
        # A second connection for the same component: conflict.
        dup, dans = raw_component(srv, 'gw.localhost', SECRET)
        check(dans.tag.endswith('error') and rt.error_condition(dans, rt.NS_STREAM_ERR) == 'conflict',
              'second connection: %s' % rt.to_string(dans))
    finally:
        alice.close()
        comp.close()


def wrong_secret(srv):
    """A wrong handshake: <not-authorized/>, nothing routed to it."""
    c, ans = raw_component(srv, 'gw.localhost', 'wrong')
    check(ans.tag.endswith('error') and rt.error_condition(ans, rt.NS_STREAM_ERR) == 'not-authorized',
          'wrong secret: %s' % rt.to_string(ans))


def unknown_component(srv):
    """A stream to a domain that is no component: <host-unknown/>."""
    c = Client(srv, None, None, name='comp-unknown')
    c.sock = socket.create_connection(('127.0.0.1', srv.comp_port), timeout=5)
    c.parser = rt.StreamParser()
    c.send("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' "
           "to='nobody.localhost'>" % NS_COMP)
    check(c.expect_stream_error() == 'host-unknown', 'unknown component')


def forged_from(srv):
    """A component sending as someone else's domain: <invalid-from/>."""
    comp, ans = raw_component(srv, 'bot.localhost', 'other')
    check(ans.tag == '{%s}handshake' % NS_COMP, 'handshake: %s' % rt.to_string(ans))
    comp.send("<message from='alice@localhost' to='bob@localhost'><body>x</body></message>")
    check(comp.expect_stream_error() == 'invalid-from', 'forged from')


def offline_component(srv):
    """A message to a component that is not connected bounces with
    service-unavailable."""
    alice = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
    try:
        alice.send("<message to='x@bot.localhost' id='off1'><body>anyone?</body></message>")
        e = alice.recv()
        check(rt.tag(e) == 'message' and e.get('type') == 'error' and
              rt.error_condition(e) == 'service-unavailable', 'bounce: %s' % rt.to_string(e))
    finally:
        alice.close()


SLIX = r'''
import asyncio, sys
from slixmpp.componentxmpp import ComponentXMPP
done = asyncio.Event()
class Echo(ComponentXMPP):
    def __init__(self):
        super().__init__('gw.localhost', %(secret)r, '127.0.0.1', %(port)d)
        self.add_event_handler('session_start', lambda e: print('READY', flush=True))
        self.add_event_handler('message', self.echo)
    def echo(self, msg):
        msg.reply('echo: %%s' %% msg['body']).send()
        print('ECHOED', flush=True)
c = Echo()
c.connect()
loop = asyncio.get_event_loop()
loop.run_until_complete(asyncio.wait_for(asyncio.sleep(15), 20))
'''


def slixmpp_component(srv):
    """Interop: an unmodified slixmpp ComponentXMPP connects, gets a
    user's message and its echo reaches the user."""
    import subprocess
    py = '/usr/bin/python3'
    code = SLIX % {'secret': SECRET, 'port': srv.comp_port}
    p = subprocess.Popen([py, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        line = ''
        deadline = time.monotonic() + 15
        while 'READY' not in line and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line and p.poll() is not None:
                break
        check('READY' in line, 'slixmpp component did not start: %r' % line)
        alice = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
        try:
            alice.send("<message to='echo@gw.localhost' id='sx1' type='chat'><body>hi slix</body></message>")
            deadline = time.monotonic() + 10
            while True:
                el = alice.recv(timeout=max(0.1, deadline - time.monotonic()))
                if rt.tag(el) == 'message' and el.findtext('{jabber:client}body') == 'echo: hi slix':
                    check(el.get('from') == 'echo@gw.localhost', 'from %s' % el.get('from'))
                    break
        finally:
            alice.close()
    finally:
        p.kill()
        p.wait()


def _comp_header(srv, domain, name):
    """A component stream to domain, up to the server's header."""
    c = Client(srv, None, None, name=name)
    c.sock = socket.create_connection(('127.0.0.1', srv.comp_port), timeout=5)
    c.parser = rt.StreamParser()
    c.send("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' "
           "to='%s'>" % (NS_COMP, domain))
    deadline = time.monotonic() + 5
    while c.parser.header is None and not c.parser.ended:
        if not c._fill(deadline):
            raise TestFailure('no stream header from the component port')
    return c


def _stream_error(c):
    """(condition, text) of the stream error c gets."""
    el = c.recv_stream_error()
    return (rt.error_condition(el, rt.NS_STREAM_ERR),
            el.findtext('{%s}text' % rt.NS_STREAM_ERR) or '')


def preauth_stanza_size(srv):
    """Before the handshake a component connection has the pre-auth
    stanza limit of clients (limits.preauth_max_stanza_size, 16 KiB): a
    20 KB <handshake/> is a <policy-violation/>.  After it, stanzas up
    to limits.max_stanza_size pass (a 40 KB message both ways)."""
    c = _comp_header(srv, 'gw.localhost', 'comp-big')
    c.send('<handshake>%s</handshake>' % ('a' * 20000))
    cond, text = _stream_error(c)
    check(cond == 'policy-violation' and 'too large' in text,
          'a 20 KB handshake: %s (%s)' % (cond, text))
    comp, ans = raw_component(srv, 'gw.localhost', SECRET)
    alice = Client(srv, 'alice@localhost', USERS['alice@localhost']).login()
    try:
        check(ans.tag == '{%s}handshake' % NS_COMP, 'handshake: %s' % rt.to_string(ans))
        big = 'x' * 40000
        comp.send("<message from='u@gw.localhost' to='%s' id='big1'><body>%s</body></message>"
                  % (alice.full_jid, big))
        m = alice.recv()
        check(rt.tag(m) == 'message' and m.get('id') == 'big1' and
              m.findtext('{jabber:client}body') == big, 'a 40 KB message from the component')
    finally:
        alice.close()
        comp.close()


def preauth_bytes(srv):
    """limits.preauth_max_bytes (4 KiB in this group) holds before the
    handshake as for clients: 6 KB of whitespace keepalives (each run
    within the stanza limit) get <policy-violation/>, 'too much data
    before authentication'; a component that handshakes in time is
    unaffected."""
    c = _comp_header(srv, 'gw.localhost', 'comp-flood')
    for _ in range(6):
        c.send(' ' * 1000)
    cond, text = _stream_error(c)
    check(cond == 'policy-violation' and 'before authentication' in text,
          '6 KB before the handshake: %s (%s)' % (cond, text))
    comp, ans = raw_component(srv, 'gw.localhost', SECRET)
    try:
        check(ans.tag == '{%s}handshake' % NS_COMP, 'handshake: %s' % rt.to_string(ans))
        for _ in range(6):
            comp.send(' ' * 1000)
        comp.send("<presence from='u@gw.localhost' to='u@gw.localhost' type='probe'/>")
        time.sleep(0.3)
        check(not comp.parser.ended, 'an authenticated component was cut off')
    finally:
        comp.close()


def _comp_refused(srv):
    """True when a new component connection is closed without a stream
    header (refused at accept)."""
    try:
        c = _comp_header(srv, 'gw.localhost', 'comp-probe')
    except (rt.StreamClosed, TestFailure, OSError):
        return True
    ended = c.parser.ended
    c.sock.close()
    return ended


def _c2s_refused(srv):
    """True when a new client connection gets <resource-constraint/>."""
    c = Client(srv, name='c2s-probe')
    c.connect()
    c.parser = rt.StreamParser()
    try:
        return c.expect_stream_error(timeout=1) == 'resource-constraint'
    except rt.StreamClosed:
        return True
    except TestFailure as e:
        if 'nothing received' in str(e):
            return False
        raise
    finally:
        c.sock.close()


def preauth_total(srv):
    """limits.preauth_max_total (128 KiB in this group) counts component
    connections before their handshake, as it counts clients: connections
    each holding half a handshake (3 KB) fill it, then a new component
    connection is refused at accept (closed, no header), a new client
    connection too (<resource-constraint/>); once they go, a component
    connects and handshakes again."""
    holders = []
    try:
        full = False
        for i in range(60):
            try:
                h = _comp_header(srv, 'gw.localhost', 'holder%d' % i)
            except (rt.StreamClosed, TestFailure, OSError):
                h = None
            if h is not None:
                h.send('<handshake>' + 'h' * 3000)
                holders.append(h)
                time.sleep(0.05)
            # Both kinds refused (connections closed by an earlier test
            # still count until they are freed, 2 s after their error).
            if _comp_refused(srv) and _c2s_refused(srv):
                full = True
                break
        check(full, '%d component connections with 3 KB pending each and no '
              'refusal of both a component and a client' % len(holders))
        check(len(holders) >= 2, 'refused after only %d connections' % len(holders))
    finally:
        for h in holders:
            h.sock.close()
    deadline = time.monotonic() + 5
    while _comp_refused(srv) and time.monotonic() < deadline:
        time.sleep(0.2)
    comp, ans = raw_component(srv, 'gw.localhost', SECRET)
    check(ans.tag == '{%s}handshake' % NS_COMP, 'after the holders went: %s'
          % rt.to_string(ans))
    comp.close()


class PreauthCompRoost(CompRoost):
    extra_limits = 'preauth_max_bytes = 4096; preauth_max_total = 131072; '


TESTS = [handshake_ok_and_routing, wrong_secret, unknown_component, forged_from,
         offline_component, slixmpp_component, preauth_stanza_size]


def main():
    p, f = rt.run_group(CompRoost, USERS, TESTS, 'component')
    p2, f2 = rt.run_group(PreauthCompRoost, USERS, [preauth_bytes, preauth_total],
                          'component')
    p, f = p + p2, f + f2
    print('%d passed, %d failed' % (p, f))
    return 1 if f else 0


if __name__ == '__main__':
    sys.exit(main())
