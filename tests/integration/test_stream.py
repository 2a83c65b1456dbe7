"""Raw-socket tests that scripts cannot express: TLS, SASL, vhosts, stream errors.

Each test is a function taking the ServerUnderTest; it raises TestFailure
(fail) or Skip.  Registered in TESTS in file order.
"""
import ssl
import time

import roosttest as rt
from roosttest import check, Client, TestFailure, AuthFailed, NS_STREAM, NS_SASL, NS_TLS

USERS = {
    'alice@localhost': 'alice-secret',
    'bob@localhost': 'bob-secret',
    'mallory@localhost': 'pässwörd ünïcode',     # non-ASCII password: UTF-8 + SASLprep
    'carol@example.test': 'carol-secret',
}
TESTS = []
NOTES = []          # "test: Prosody differs: ..." collected for the report


class Skip(Exception):
    pass


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


def deviation(srv, key, got):
    """Accept a documented Prosody deviation; None = not a deviation."""
    dev = srv.deviations.get(key)
    if dev is None:
        return False
    if dev[0] is None:
        raise Skip('%s: %s' % (srv.name, dev[1]))
    if got == dev[0]:
        NOTES.append('%s: %s answers %s: %s' % (key, srv.name, got, dev[1]))
        return True
    return False


def client(srv, jid='alice@localhost', name=None):
    return Client(srv, jid, USERS[jid], name=name)


def to_tls_stream(c, tls_max=None, sni=None):
    c.connect()
    c.open_stream()
    c.starttls(tls_max=tls_max, sni=sni)
    return c


def auth_fails(c, **kw):
    try:
        c.auth(**kw)
    except AuthFailed as e:
        return e
    raise TestFailure('authentication succeeded but must not')


# ------------------------------------------------------------- TLS and SASL

@test
def starttls_required_before_auth(srv):
    """RFC 6120 §5.3.1: mandatory TLS is flagged <required/>; no mechanism
    that would send a password is offered before TLS (§5.3.1, §13.9.4)."""
    c = client(srv).connect()
    try:
        f = c.open_stream()
        st = f.find('{%s}starttls' % NS_TLS)
        check(st is not None and st.find('{%s}required' % NS_TLS) is not None,
              'starttls not offered as required: %s' % rt.to_string(f))
        check('PLAIN' not in c.mechanisms(), 'PLAIN offered before TLS')
    finally:
        c.close()


@test
def plain_refused_before_tls(srv):
    """PLAIN over a plaintext stream must never succeed.  Prosody answers
    <failure><encryption-required/></failure> (RFC 6120 §6.5.4); a stream
    error (e.g. <policy-violation/>, §4.9.3.14) is the other allowed answer."""
    c = client(srv).connect()
    try:
        c.open_stream()
        c.send("<auth xmlns='%s' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>" % NS_SASL)
        try:
            el = c.recv()
        except rt.StreamClosed:
            return
        if el.tag == '{%s}error' % NS_STREAM:
            return
        check(rt.tag(el) == 'failure', 'PLAIN before TLS answered with %s' % rt.to_string(el))
        cond = rt.error_condition(el, NS_SASL)
        check(cond in ('encryption-required', 'mechanism-too-weak', 'invalid-mechanism'),
              'PLAIN before TLS failed with <%s/>' % cond)
    finally:
        c.close()


@test
def starttls_scram_sha256_tls13(srv):
    c = client(srv)
    to_tls_stream(c)
    check(c.tls_version == 'TLSv1.3', 'negotiated %s, expected TLSv1.3' % c.tls_version)
    check('SCRAM-SHA-256' in c.mechanisms(), 'no SCRAM-SHA-256 in %s' % c.mechanisms())
    c.auth(mech='SCRAM-SHA-256')
    jid = c.bind()
    check(jid.startswith('alice@localhost/') and len(jid) > len('alice@localhost/'), 'bound %s' % jid)
    c.close()


@test
def direct_tls_login(srv):
    """XEP-0368 direct TLS with ALPN xmpp-client and SNI."""
    c = client(srv).connect(direct_tls=True)
    alpn = c.sock.selected_alpn_protocol()
    check(alpn in (None, 'xmpp-client'), 'ALPN selected %r' % alpn)
    c.open_stream()
    check(c.features.find('{%s}starttls' % NS_TLS) is None, 'STARTTLS offered inside TLS')
    c.auth()
    check(c.bind('direct').startswith('alice@localhost/direct'), 'bound %s' % c.full_jid)
    c.close()


@test
def scram_sha1(srv):
    c = client(srv)
    to_tls_stream(c)
    c.auth(mech='SCRAM-SHA-1')
    c.bind()
    c.close()


@test
def scram_non_ascii_password(srv):
    c = client(srv, 'mallory@localhost')
    to_tls_stream(c)
    c.auth(mech='SCRAM-SHA-256')
    c.close()


@test
def scram_sha256_plus_tls12(srv):
    """RFC 5802 / RFC 7677 channel binding; tls-unique (RFC 5929) on TLS 1.2."""
    c = client(srv)
    to_tls_stream(c, tls_max=ssl.TLSVersion.TLSv1_2)
    check(c.tls_version == 'TLSv1.2', 'negotiated %s' % c.tls_version)
    check('SCRAM-SHA-256-PLUS' in c.mechanisms(), 'no SCRAM-SHA-256-PLUS on TLS 1.2: %s' % c.mechanisms())
    c.auth(mech='SCRAM-SHA-256-PLUS')
    c.bind()
    c.close()
    c = client(srv)      # wrong channel-binding data must fail
    to_tls_stream(c, tls_max=ssl.TLSVersion.TLSv1_2)
    auth_fails(c, mech='SCRAM-SHA-256-PLUS', bad_cb=True)
    c.close()


@test
def scram_downgrade_flag_refused(srv):
    """RFC 5802 §6: gs2 flag 'y' (client could bind, thinks the server
    cannot) while the server does offer -PLUS: the server MUST fail."""
    c = client(srv)
    to_tls_stream(c, tls_max=ssl.TLSVersion.TLSv1_2)
    if 'SCRAM-SHA-256-PLUS' not in c.mechanisms():
        raise TestFailure('no SCRAM-SHA-256-PLUS offered on TLS 1.2')
    auth_fails(c, mech='SCRAM-SHA-256', gs2_flag='y')
    c.close()


@test
def plain_over_tls(srv):
    c = client(srv)
    to_tls_stream(c)
    check('PLAIN' in c.mechanisms(), 'PLAIN not offered over TLS')
    c.auth(mech='PLAIN')
    c.bind()
    c.close()


def _check_delay(srv, e, what):
    check(e.condition == 'not-authorized', '%s: <%s/> instead of <not-authorized/>' % (what, e.condition))
    if srv.auth_fail_delay:
        check(e.elapsed >= srv.auth_fail_delay * 0.95,
              '%s: failure after %.3fs, auth_fail_delay is %ss' % (what, e.elapsed, srv.auth_fail_delay))


@test
def wrong_password(srv):
    """RFC 6120 §6.5.10 not-authorized; a retry on the same stream is allowed
    (§6.4.5: the server SHOULD allow a configurable number of retries, at least 2)."""
    for mech in ('SCRAM-SHA-256', 'PLAIN'):
        c = client(srv)
        to_tls_stream(c)
        _check_delay(srv, auth_fails(c, mech=mech, password='not-the-password'), mech)
        c.auth(mech=mech)        # retry with the right password
        c.bind()
        c.close()


@test
def unknown_user(srv):
    """Same answer as a wrong password: no account enumeration (RFC 6120 §13.3)."""
    for mech in ('SCRAM-SHA-256', 'PLAIN'):
        c = client(srv)
        to_tls_stream(c)
        _check_delay(srv, auth_fails(c, mech=mech, username='nosuchuser', password='x'), mech)
        c.close()


@test
def authzid_other_user_refused(srv):
    """RFC 6120 §6.4.6 / §6.5.6: authorizing as another account is refused."""
    for mech in ('SCRAM-SHA-256', 'PLAIN'):
        c = client(srv)
        to_tls_stream(c)
        try:
            c.auth(mech=mech, authzid='bob@localhost')
        except AuthFailed as e:
            check(e.condition in ('invalid-authzid', 'not-authorized'), '%s: <%s/>' % (mech, e.condition))
            c.close()
            continue
        jid = c.bind()
        c.close()
        check(not jid.startswith('bob@'), '%s: authzid let alice bind %s' % (mech, jid))
        check(deviation(srv, 'authzid', 'authenticated-as-self'),
              '%s: authzid bob@localhost accepted (bound %s)' % (mech, jid))


@test
def authzid_self_allowed(srv):
    """RFC 6120 §6.3.8: an authzid equal to the authenticated bare JID is fine."""
    c = client(srv)
    to_tls_stream(c)
    c.auth(mech='PLAIN', authzid='alice@localhost')
    check(c.bind().startswith('alice@localhost/'), 'bound %s' % c.full_jid)
    c.close()


# ------------------------------------------------------------------ binding

@test
def bind_client_and_server_resource(srv):
    """RFC 6120 §7.6 (server-generated) and §7.7 (client-submitted)."""
    a = client(srv).login(resource='orchard')
    check(a.full_jid == 'alice@localhost/orchard', 'bound %s' % a.full_jid)
    b = client(srv).login()
    c = client(srv).login()
    for x in (b, c):
        check(x.full_jid.startswith('alice@localhost/') and len(x.full_jid) > 16, 'bound %s' % x.full_jid)
    check(b.full_jid != c.full_jid, 'two generated resources are equal: %s' % b.full_jid)
    for x in (a, b, c):
        x.close()


# ------------------------------------------------------------------- vhosts

@test
def vhost_users_isolated(srv):
    """RFC 2779 2.1.4-2.1.5: an account exists on its own vhost only."""
    c = Client(srv, 'carol@localhost', USERS['carol@example.test'])
    to_tls_stream(c)
    check(auth_fails(c, mech='PLAIN').condition == 'not-authorized', 'carol on localhost')
    c.close()
    c = Client(srv, 'alice@example.test', USERS['alice@localhost'])
    to_tls_stream(c)
    check(auth_fails(c, mech='SCRAM-SHA-256').condition == 'not-authorized', 'alice on example.test')
    c.close()
    c = client(srv, 'carol@example.test').login()
    check(c.full_jid.startswith('carol@example.test/'), 'carol bound %s' % c.full_jid)
    c.close()


@test
def sni_selects_vhost_certificate(srv):
    for domain in rt.DOMAINS:
        for direct in (False, True):
            c = Client(srv, 'x@' + domain, 'x')
            if direct:
                c.connect(direct_tls=True, sni=domain)
            else:
                to_tls_stream(c, sni=domain)
            cns, sans = c.peer_cert_names()
            check(domain in sans or (not sans and domain in cns),
                  '%s (%s): certificate names CN=%s SAN=%s' % (domain, 'direct' if direct else 'starttls', cns, sans))
            c.close()


# ------------------------------------------------------- addressing / from

@test
def from_is_stamped(srv):
    """RFC 6120 §8.1.2.1: a forged 'from' is replaced by the real full JID,
    or the stream is closed with <invalid-from/>."""
    a, b = client(srv).login(), client(srv, 'bob@localhost').login()
    m = client(srv, 'mallory@localhost').login()
    try:
        m.send("<message to='%s' from='bob@localhost/forged' type='chat' id='f1'><body>hi</body></message>" % a.full_jid)
        try:
            got = a.recv(3)
            check(got.get('from') == m.full_jid, 'delivered with from=%s' % got.get('from'))
        except TestFailure:
            check(m.expect_stream_error(2) == 'invalid-from', 'forged from neither stamped nor refused')
        _witness(a, b)
    finally:
        for x in (a, b, m):
            x.close()


# ------------------------------------------------------------ stream errors

def _witness(a, b):
    """Two already logged-in clients still exchange a message."""
    a.send("<message to='%s' type='chat' id='w1'><body>still there?</body></message>" % b.full_jid)
    got = b.recv(5)
    check(rt.tag(got) == 'message' and got.get('from') == a.full_jid and got.findtext('{jabber:client}body') == 'still there?',
          'witness message not delivered: %s' % rt.to_string(got))


def header(to="to='localhost'", stream_ns=NS_STREAM, content_ns='jabber:client', version="version='1.0'", prolog=''):
    return ("<?xml version='1.0'?>%s<stream:stream xmlns='%s' xmlns:stream='%s' %s %s>"
            % (prolog, content_ns, stream_ns, to, version))


BIG = 300 * 1024
STREAM_ERRORS = [
    # key, stage, payload, accepted conditions, RFC 6120 section
    ('garbage-preauth', 'open', b"<message><<>></message>", {'not-well-formed'}, '4.9.3.13'),
    ('garbage', 'auth', b"<message to='{B}'><body>a</bodyx></message>", {'not-well-formed'}, '4.9.3.13'),
    ('doctype', 'pre', header(prolog='<!DOCTYPE stream:stream>'), {'restricted-xml'}, '11.1, 4.9.3.18'),
    ('entity-decl', 'pre', header(prolog='<!DOCTYPE stream:stream [<!ENTITY lol "lol">]>'),
     {'restricted-xml'}, '11.1'),
    ('comment', 'auth', b"<message to='{B}'><!-- hidden --><body>x</body></message>", {'restricted-xml'}, '11.1'),
    ('pi', 'auth', b"<?roost-test do-something?>", {'restricted-xml'}, '11.1'),
    # An undefined entity is both an XML well-formedness error and an entity
    # reference restricted by §11.1: either answer is defensible.
    ('undefined-entity', 'auth', b"<message to='{B}'><body>&lol;</body></message>",
     {'restricted-xml', 'not-well-formed'}, '11.1, 4.9.3.13'),
    ('invalid-utf8', 'auth', b"<message to='{B}'><body>\xff\xfe\xc3(</body></message>",
     {'unsupported-encoding'}, '4.9.3.22, 11.6'),
    ('stanza-too-big', 'auth', b"<message to='{B}'><body>" + b'x' * BIG + b"</body></message>",
     {'policy-violation'}, '4.9.3.14, 13.12'),
    ('depth', 'auth', b"<message to='{B}'>" + b'<a>' * 100 + b'</a>' * 100 + b"</message>",
     {'policy-violation'}, '4.9.3.14, 13.12'),
    ('attrs', 'auth', b"<message to='{B}' " + b' '.join(b"a%d='x'" % i for i in range(100)) + b"/>",
     {'policy-violation'}, '4.9.3.14, 13.12'),
    ('stream-namespace', 'pre', header(stream_ns='http://example.test/not-streams'), {'invalid-namespace'}, '4.9.3.10'),
    ('content-namespace', 'pre', header(content_ns='jabber:not-client'), {'invalid-namespace'}, '4.9.3.10'),
    ('host-unknown', 'pre', header(to="to='nowhere.test'"), {'host-unknown'}, '4.9.3.6'),
    ('unsupported-version', 'pre', header(version="version='2.0'"), {'unsupported-version'}, '4.7.5, 4.9.3.25'),
    ('unsupported-stanza-type', 'auth', b"<shout><body>hey</body></shout>", {'unsupported-stanza-type'}, '4.9.3.24'),
]


def _stream_error_test(key, stage, payload, accepted, section):
    def run(srv):
        if srv.deviations.get(key, (0,))[0] is None:
            deviation(srv, key, None)      # raises Skip with the note
        a, b = client(srv).login(), client(srv, 'bob@localhost').login()
        m = client(srv, 'mallory@localhost', name='mallory')
        try:
            data = payload.encode() if isinstance(payload, str) else payload
            data = data.replace(b'{B}', b.full_jid.encode())
            if stage == 'pre':
                m.connect()
                m.parser = rt.StreamParser()
            elif stage == 'open':
                m.connect()
                m.open_stream()
            else:
                m.login()
            m.send_until_answer(data)
            cond = m.expect_stream_error()
            if cond not in accepted and not deviation(srv, key, cond):
                raise TestFailure('<%s/> instead of <%s/> (RFC 6120 §%s)' % (cond, '/> or <'.join(sorted(accepted)), section))
            _witness(a, b)
            _witness(b, a)
        finally:
            for x in (a, b, m):
                x.close()
    run.__doc__ = 'RFC 6120 §%s' % section
    return run


for _case in STREAM_ERRORS:
    TESTS.append(('stream_error_' + _case[0].replace('-', '_'), _stream_error_test(*_case)))


@test
def stream_without_to(srv):
    """RFC 6120 §4.7.2 requires 'to' in a client's initial stream header.
    Without it no vhost can be chosen: host-unknown (§4.9.3.6).  Prosody
    answers improper-addressing (§4.9.3.7, which the RFC defines for stanzas
    lacking to/from), so both are accepted."""
    m = client(srv)
    m.connect()
    m.parser = rt.StreamParser()
    m.send(header(to=''))
    cond = m.expect_stream_error()
    check(cond in ('host-unknown', 'improper-addressing'), '<%s/>' % cond)
    m.close()


@test
def auth_fail_delay_parallel(srv):
    """A failing client is slowed down; another client is not blocked meanwhile."""
    if not srv.auth_fail_delay:
        deviation(srv, 'auth-fail-delay', None)
        raise Skip('no auth_fail_delay configured')
    bad = client(srv)
    to_tls_stream(bad)
    bad.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, 'AGFsaWNlAHdyb25n'))  # \0alice\0wrong
    t0 = time.monotonic()
    good = client(srv, 'bob@localhost').login()
    check(time.monotonic() - t0 < 5, 'login blocked behind a failing one')
    el = bad.recv()
    check(rt.tag(el) == 'failure', 'got %s' % rt.to_string(el))
    good.close()
    bad.close()
