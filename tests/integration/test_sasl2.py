"""SASL2 (XEP-0388) and Bind2 (XEP-0386) over real sockets: the
<authentication/> feature mirrors the SASL mechanisms and offers Bind2
with XEP-0198 inline; authentication without a stream restart (PLAIN and
SCRAM-SHA-256, the server signature checked in <additional-data/>),
XEP-0474 downgrade protection (h in SCRAM, SASL1 and SASL2),
<authorization-identifier/>, the features right after <success/>; XEP-0484
FAST tokens with HT-SHA-256-NONE and the channel-bound -ENDP, -UNIQ and
-EXPR (offered only where the TLS has their binding, each token only with
its own mechanism); Bind2
binds a resource made of the client's tag and a part that is stable for
one user agent, and enables stream management inline; failures in the
urn:xmpp:sasl:2 namespace.  Roost only (Prosody 0.12 has no SASL2).

    python3 test_sasl2.py

Prints 'N passed, N failed'.
"""
import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import os
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client, TestFailure  # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711', 'bob@localhost': 'bob-Secret-0815'}
NS2 = 'urn:xmpp:sasl:2'
NS_BIND2 = 'urn:xmpp:bind:0'
NS_SM = 'urn:xmpp:sm:3'
NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'


def preauth(srv, jid, tls_max=None):
    c = Client(srv, jid, USERS.get(jid, 'x'), name=jid.split('@')[0])
    c.connect()
    c.open_stream()
    c.starttls(tls_max=tls_max)
    return c


def sasl2_mechs(c):
    a = c.features.find('{%s}authentication' % NS2)
    return [m.text.strip() for m in a.findall('{%s}mechanism' % NS2)] if a is not None else []


def auth2_plain(c, password, extra=''):
    ir = base64.b64encode(('\0%s\0%s' % (c.jid.split('@')[0], password)).encode()).decode()
    c.send("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s"
           "</initial-response>%s</authenticate>" % (NS2, ir, extra))
    return c.recv()


def auth2_scram(c, password, extra='', mech='SCRAM-SHA-256', tamper=None):
    """SCRAM in SASL2 framing (-PLUS over tls-unique); returns (final
    element, expected server signature).  The XEP-0474 h is checked
    against the SASL2 list; tamper(server_first) is what the client
    believes it received (a MITM's edit)."""
    hname = 'sha256' if 'SHA-256' in mech else 'sha1'
    plus = mech.endswith('-PLUS')
    gs2 = 'p=tls-unique,,' if plus else 'n,,'
    user = c.jid.split('@')[0]
    cnonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = 'n=%s,r=%s' % (user, cnonce)
    c.send("<authenticate xmlns='%s' mechanism='%s'><initial-response>%s"
           "</initial-response>%s</authenticate>"
           % (NS2, mech, base64.b64encode((gs2 + first_bare).encode()).decode(), extra))
    el = c.recv()
    check(el.tag == '{%s}challenge' % NS2, 'SCRAM challenge: %s' % rt.to_string(el))
    server_first = base64.b64decode(el.text).decode()
    a = dict(kv.split('=', 1) for kv in server_first.split(','))
    # XEP-0474: h covers the SASL2 <authentication/> list (and XEP-0440).
    c.check_ssdp(hname, server_first, sasl2_mechs(c))
    if tamper is not None:
        server_first = tamper(server_first)
    salted = hashlib.pbkdf2_hmac(hname, password.encode(), base64.b64decode(a['s']),
                                 int(a['i']))
    cbind = gs2.encode() + (c.cb_data() if plus else b'')
    without = 'c=%s,r=%s' % (base64.b64encode(cbind).decode(), a['r'])
    msg = ('%s,%s,%s' % (first_bare, server_first, without)).encode()
    ck = hmac.new(salted, b'Client Key', hname).digest()
    sig = hmac.new(hashlib.new(hname, ck).digest(), msg, hname).digest()
    proof = bytes(x ^ y for x, y in zip(ck, sig))
    c.send("<response xmlns='%s'>%s</response>" % (NS2, base64.b64encode(
        ('%s,p=%s' % (without, base64.b64encode(proof).decode())).encode()).decode()))
    expect = 'v=' + base64.b64encode(hmac.new(hmac.new(salted, b'Server Key', hname).digest(),
                                              msg, hname).digest()).decode()
    return c.recv(), expect


def feature(srv):
    """XEP-0388 §2.1: <authentication/> lists the SASL mechanisms; XEP-0386
    §3: <inline><bind/> with XEP-0198 among its inline features."""
    c = preauth(srv, 'alice@localhost')
    try:
        a = c.features.find('{%s}authentication' % NS2)
        check(a is not None, 'no <authentication/>: %s' % rt.to_string(c.features))
        mechs2 = sorted(m.text for m in a.findall('{%s}mechanism' % NS2))
        mechs = sorted(c.mechanisms())
        check(mechs2 == mechs, 'SASL2 %s vs SASL %s' % (mechs2, mechs))
        b = a.find('{%s}inline/{%s}bind' % (NS2, NS_BIND2))
        check(b is not None, 'no inline bind')
        feats = [f.get('var') for f in b.findall('{%s}inline/{%s}feature' % (NS_BIND2, NS_BIND2))]
        check(NS_SM in feats, 'inline features %s' % feats)
    finally:
        c.close()


def plain_no_bind(srv):
    """PLAIN through SASL2: <success/> with the bare JID, then features at
    once (no restart) offering classic bind, which works."""
    c = preauth(srv, 'alice@localhost')
    try:
        s = auth2_plain(c, USERS['alice@localhost'])
        check(s.tag == '{%s}success' % NS2, 'success: %s' % rt.to_string(s))
        check(s.findtext('{%s}authorization-identifier' % NS2) == 'alice@localhost',
              'identity: %s' % rt.to_string(s))
        f = c.recv()
        check(f.tag == '{http://etherx.jabber.org/streams}features', 'features: %s' % rt.to_string(f))
        check(f.find('{urn:ietf:params:xml:ns:xmpp-bind}bind') is not None, 'no bind feature')
        c.features = f
        c.bind('classic')
        r = c.iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        check(r.get('type') == 'result', 'ping: %s' % rt.to_string(r))
    finally:
        c.close()


def scram_bind2_sm(srv):
    """SCRAM-SHA-256 through SASL2 with Bind2 (tag, user agent) and
    XEP-0198 enabled inline: the server signature is right, the identity is
    the full JID <tag>.<suffix>, <bound/> holds <enabled/>, the features
    follow without bind, the session works, and the same user agent gets
    the same resource next time."""
    agent = "<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>T</software></user-agent>"
    bind = ("<bind xmlns='%s'><tag>Roostie</tag><enable xmlns='%s' resume='true'/></bind>"
            % (NS_BIND2, NS_SM))
    fulls = []
    for _ in range(2):
        c = preauth(srv, 'bob@localhost')
        try:
            s, expect = auth2_scram(c, USERS['bob@localhost'], agent + bind)
            check(s.tag == '{%s}success' % NS2, 'success: %s' % rt.to_string(s))
            ad = base64.b64decode(s.findtext('{%s}additional-data' % NS2) or '').decode()
            check(ad == expect, 'server signature %r, want %r' % (ad, expect))
            full = s.findtext('{%s}authorization-identifier' % NS2)
            check(full and full.startswith('bob@localhost/Roostie.'), 'identity %r' % full)
            en = s.find('{%s}bound/{%s}enabled' % (NS_BIND2, NS_SM))
            check(en is not None and en.get('resume') == 'true', 'inline SM: %s' % rt.to_string(s))
            f = c.recv()
            check(f.tag == '{http://etherx.jabber.org/streams}features' and
                  f.find('{urn:ietf:params:xml:ns:xmpp-bind}bind') is None,
                  'features after Bind2: %s' % rt.to_string(f))
            c.send("<message to='bob@localhost' id='self1'><body>me</body></message>"
                   "<r xmlns='%s'/>" % NS_SM)
            got = []
            while len(got) < 2:
                got.append(c.recv())
            a = [e for e in got if e.tag == '{%s}a' % NS_SM]
            check(a and a[0].get('h') == '1', 'ack after one stanza: %s'
                  % [rt.to_string(e) for e in got])
            fulls.append(full)
        finally:
            c.close()
    check(fulls[0] == fulls[1], 'resource not stable for one user agent: %s' % fulls)


def failures(srv):
    """A wrong password: <failure/> in urn:xmpp:sasl:2 with
    <not-authorized/>; an unknown mechanism: <invalid-mechanism/>."""
    c = preauth(srv, 'alice@localhost')
    try:
        f = auth2_plain(c, 'wrong-password')
        check(f.tag == '{%s}failure' % NS2 and f.find('{%s}not-authorized' % NS_SASL) is not None,
              'wrong password: %s' % rt.to_string(f))
        c.send("<authenticate xmlns='%s' mechanism='X-NOPE'/>" % NS2)
        f = c.recv()
        check(f.tag == '{%s}failure' % NS2, 'unknown mechanism: %s' % rt.to_string(f))
    finally:
        c.close()


NS_FAST = 'urn:xmpp:fast:0'


def fast_auth(srv, jid, token, agent, extra=''):
    c = preauth(srv, jid)
    mac = hmac.new(token.encode(), b'Initiator', 'sha256').digest()
    ir = base64.b64encode(jid.split('@')[0].encode() + b'\0' + mac).decode()
    c.send("<authenticate xmlns='%s' mechanism='HT-SHA-256-NONE'><initial-response>%s"
           "</initial-response><user-agent id='%s'/><fast xmlns='%s'%s/></authenticate>"
           % (NS2, ir, agent, NS_FAST, extra))
    return c, c.recv()


def fast_tokens(srv):
    """XEP-0484: FAST is offered inline; a password login with
    <request-token/> gets a token; the token then logs in with one round
    trip (HT-SHA-256-NONE, the server's HMAC in <additional-data/>); a
    wrong token fails; invalidate='true' retires it; a token is bound to
    its user agent."""
    agent = 'a8f1e2c4-0000-4000-8000-000000000001'
    c = preauth(srv, 'alice@localhost')
    try:
        fa = c.features.find('{%s}authentication/{%s}inline/{%s}fast' % (NS2, NS2, NS_FAST))
        check(fa is not None and 'HT-SHA-256-NONE' in [m.text for m in fa],
              'FAST feature: %s' % rt.to_string(c.features))
        s, _ = auth2_scram(c, USERS['alice@localhost'],
                           "<user-agent id='%s'/><request-token xmlns='%s' "
                           "mechanism='HT-SHA-256-NONE'/>" % (agent, NS_FAST))
        tok = s.find('{%s}token' % NS_FAST)
        check(tok is not None and len(tok.get('token', '')) >= 40 and tok.get('expiry'),
              'token: %s' % rt.to_string(s))
        token = tok.get('token')
    finally:
        c.close()
    import time
    time.sleep(0.3)                  # the token is written behind
    c, s = fast_auth(srv, 'alice@localhost', token, agent)
    try:
        check(s.tag == '{%s}success' % NS2, 'FAST login: %s' % rt.to_string(s))
        want = base64.b64encode(hmac.new(token.encode(), b'Responder', 'sha256').digest()).decode()
        check(s.findtext('{%s}additional-data' % NS2) == want, 'server HMAC: %s' % rt.to_string(s))
        check(s.findtext('{%s}authorization-identifier' % NS2) == 'alice@localhost', 'identity')
    finally:
        c.close()
    c, s = fast_auth(srv, 'alice@localhost', token + 'x', agent)
    c.close()
    check(s.tag == '{%s}failure' % NS2, 'wrong token accepted: %s' % rt.to_string(s))
    c, s = fast_auth(srv, 'alice@localhost', token, 'another-agent')
    c.close()
    check(s.tag == '{%s}failure' % NS2, 'token of another user agent accepted')
    c, s = fast_auth(srv, 'alice@localhost', token, agent, " invalidate='true'")
    c.close()
    check(s.tag == '{%s}success' % NS2, 'invalidating login: %s' % rt.to_string(s))
    time.sleep(0.3)
    c, s = fast_auth(srv, 'alice@localhost', token, agent)
    c.close()
    check(s.tag == '{%s}failure' % NS2, 'an invalidated token was accepted')


def fast_token_by_password(srv, jid, agent):
    """A SCRAM login over SASL2 that asks for a HT-SHA-256-NONE token."""
    c = preauth(srv, jid)
    try:
        s, _ = auth2_scram(c, USERS[jid],
                           "<user-agent id='%s'/><request-token xmlns='%s' "
                           "mechanism='HT-SHA-256-NONE'/>" % (agent, NS_FAST))
        tok = s.find('{%s}token' % NS_FAST)
        check(tok is not None, 'no token: %s' % rt.to_string(s))
        return tok.get('token')
    finally:
        c.close()


def roostctl_passwd(srv, jid, password):
    r = subprocess.run([srv.roostctl, '-c', srv.config, 'passwd', jid, '--password', password],
                       capture_output=True, timeout=30, cwd=srv.dir)
    check(r.returncode == 0, 'roostctl passwd: %s' % (r.stderr or r.stdout).decode())


def fast_credentials_expired(srv):
    """XEP-0484 §5.2: a token the server no longer trusts fails with
    credentials-expired.  After a password change, a token issued before
    it no longer logs in (it would otherwise outlive the password)."""
    agent = 'a8f1e2c4-0000-4000-8000-0000000000e1'
    token = fast_token_by_password(srv, 'alice@localhost', agent)
    time.sleep(0.3)                  # the token is written behind
    c, s = fast_auth(srv, 'alice@localhost', token, agent)
    c.close()
    check(s.tag == '{%s}success' % NS2, 'FAST login before the change: %s' % rt.to_string(s))
    roostctl_passwd(srv, 'alice@localhost', 'a brand new password')
    try:
        c, s = fast_auth(srv, 'alice@localhost', token, agent)
        c.close()
        check(s.tag == '{%s}failure' % NS2 and
              s.find('{%s}credentials-expired' % NS_SASL) is not None,
              'a token from before the password change: %s' % rt.to_string(s))
    finally:
        roostctl_passwd(srv, 'alice@localhost', USERS['alice@localhost'])


def fast_rotation(srv):
    """XEP-0484 §3.5: a token in the last half of its lifetime (4 s
    here) gets a new token in <success/> without <request-token/>; the
    old one keeps working until the new one is used, then stops.  An
    invalidating login gets no new token."""
    agent = 'a8f1e2c4-0000-4000-8000-0000000000r1'
    token = fast_token_by_password(srv, 'alice@localhost', agent)
    time.sleep(0.3)
    c, s = fast_auth(srv, 'alice@localhost', token, agent)
    c.close()
    check(s.tag == '{%s}success' % NS2 and s.find('{%s}token' % NS_FAST) is None,
          'a fresh token was rotated: %s' % rt.to_string(s))
    time.sleep(2.3)                  # past half of the 4 s lifetime
    c, s = fast_auth(srv, 'alice@localhost', token, agent)
    c.close()
    check(s.tag == '{%s}success' % NS2, 'FAST login: %s' % rt.to_string(s))
    new = s.find('{%s}token' % NS_FAST)
    check(new is not None and new.get('token') not in (None, token) and new.get('expiry'),
          'no rotated token: %s' % rt.to_string(s))
    time.sleep(0.3)
    c, s = fast_auth(srv, 'alice@localhost', token, agent)
    c.close()
    check(s.tag == '{%s}success' % NS2,
          'the old token stopped before the new one was used: %s' % rt.to_string(s))
    # still due: another new token, which replaces the unused one (§3.5)
    newer = s.find('{%s}token' % NS_FAST)
    check(newer is not None and newer.get('token') != new.get('token'),
          'no second rotation: %s' % rt.to_string(s))
    time.sleep(0.3)
    c, s = fast_auth(srv, 'alice@localhost', new.get('token'), agent)
    c.close()
    check(s.tag == '{%s}failure' % NS2, 'a replaced unused token worked: %s' % rt.to_string(s))
    c, s = fast_auth(srv, 'alice@localhost', newer.get('token'), agent, " invalidate='true'")
    c.close()
    check(s.tag == '{%s}success' % NS2 and s.find('{%s}token' % NS_FAST) is None,
          'invalidating login: %s' % rt.to_string(s))
    time.sleep(0.3)
    c, s = fast_auth(srv, 'alice@localhost', token, agent)
    c.close()
    check(s.tag == '{%s}failure' % NS2, 'the old token outlived the new one: %s' % rt.to_string(s))


FAST_BY_TLS = {
    # TLS 1.3: tls-exporter and tls-server-end-point; no tls-unique (RFC 9266)
    None: ['HT-SHA-256-EXPR', 'HT-SHA-256-ENDP', 'HT-SHA-256-NONE'],
    ssl.TLSVersion.TLSv1_2: ['HT-SHA-256-UNIQ', 'HT-SHA-256-ENDP', 'HT-SHA-256-NONE'],
}


def _libssl_exporter(sock):
    """RFC 9266 tls-exporter of a CPython SSLSocket, or None.  The ssl
    module has no exporter (Python 3.11), so this calls libssl's
    SSL_export_keying_material on the SSL* of the _ssl object (the word
    after PyObject_HEAD and the socket weakref in CPython's PySSLSocket),
    after checking that the pointer really is this connection: its
    Finished must be what get_channel_binding('tls-unique') returns.
    None (EXPR then rests on tests/unit) on another layout."""
    if sys.implementation.name != 'cpython' or hasattr(sys, 'getobjects'):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library('ssl') or 'libssl.so.3')
        lib.SSL_get_finished.restype = ctypes.c_size_t
        lib.SSL_get_finished.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.SSL_export_keying_material.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
            ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        word = ctypes.sizeof(ctypes.c_void_p)
        ptr = ctypes.c_void_p.from_address(id(sock._sslobj) + 3 * word).value
        fin = ctypes.create_string_buffer(64)
        n = lib.SSL_get_finished(ptr, fin, 64) if ptr else 0
        if n == 0 or fin.raw[:n] != sock.get_channel_binding('tls-unique'):
            return None
        out = ctypes.create_string_buffer(32)
        label = b'EXPORTER-Channel-Binding'
        if lib.SSL_export_keying_material(ptr, out, 32, label, len(label), None, 0, 0) != 1:
            return None
        return out.raw
    except (OSError, AttributeError, ValueError):
        return None


def fast_cb(c, mech):
    """The channel-binding data the client hashes for mech."""
    if mech == 'HT-SHA-256-UNIQ':
        return c.sock.get_channel_binding('tls-unique')
    if mech == 'HT-SHA-256-ENDP':       # RFC 5929: the certificate is SHA-256-signed
        return hashlib.sha256(c.sock.getpeercert(binary_form=True)).digest()
    if mech == 'HT-SHA-256-EXPR':
        return _libssl_exporter(c.sock)
    return b''


def fast_auth_cb(srv, token, agent, mech, tls_max=None, cb=None):
    """A FAST login with mech; cb overrides the binding the client hashes.
    Returns (final element, the binding used)."""
    c = preauth(srv, 'alice@localhost', tls_max)
    try:
        if cb is None:
            cb = fast_cb(c, mech)
        mac = hmac.new(token.encode(), b'Initiator' + cb, 'sha256').digest()
        ir = base64.b64encode(b'alice\0' + mac).decode()
        c.send("<authenticate xmlns='%s' mechanism='%s'><initial-response>%s"
               "</initial-response><user-agent id='%s'/><fast xmlns='%s'/></authenticate>"
               % (NS2, mech, ir, agent, NS_FAST))
        return c.recv(), cb
    finally:
        c.close()


def fast_token_for(srv, mech, agent, tls_max=None):
    """A password login over tls_max asking for a token for mech: the
    <token/> element or None."""
    c = preauth(srv, 'alice@localhost', tls_max)
    try:
        s, _ = auth2_scram(c, USERS['alice@localhost'],
                           "<user-agent id='%s'/><request-token xmlns='%s' "
                           "mechanism='%s'/>" % (agent, NS_FAST, mech))
        check(s.tag == '{%s}success' % NS2, 'password login: %s' % rt.to_string(s))
        return s.find('{%s}token' % NS_FAST)
    finally:
        c.close()


def is_not_authorized(s):
    return s.tag == '{%s}failure' % NS2 and s.find('{%s}not-authorized' % NS_SASL) is not None


def fast_channel_binding(srv):
    """draft-schmaus-kitten-sasl-ht with XEP-0484: <fast/> lists only the
    HT mechanisms whose channel binding this TLS has (EXPR and ENDP on TLS
    1.3, UNIQ and ENDP on TLS 1.2, NONE always); a token asked for one is
    issued and then logs in with HMAC(token, 'Initiator' || cb), the
    server answering HMAC(token, 'Responder' || cb); the binding of another
    connection fails with not-authorized, as does the token with another
    mechanism (NONE: no downgrade); a token is not issued for a mechanism
    this connection lacks, and such a mechanism is refused."""
    import time
    for tls_max, mechs in FAST_BY_TLS.items():
        c = preauth(srv, 'alice@localhost', tls_max)
        try:
            fa = c.features.find('{%s}authentication/{%s}inline/{%s}fast' % (NS2, NS2, NS_FAST))
            got = [m.text for m in fa] if fa is not None else None
            check(got == mechs, 'FAST over %s: %s, want %s' % (c.tls_version, got, mechs))
        finally:
            c.close()
    runs = [('HT-SHA-256-ENDP', None), ('HT-SHA-256-UNIQ', ssl.TLSVersion.TLSv1_2),
            ('HT-SHA-256-ENDP', ssl.TLSVersion.TLSv1_2)]
    probe = preauth(srv, 'alice@localhost')
    if _libssl_exporter(probe.sock) is not None:
        runs.append(('HT-SHA-256-EXPR', None))
    else:
        print('NOTE sasl2:fast_channel_binding: no tls-exporter from this Python; '
              'EXPR is covered by tests/unit (check_sasl, check_tls)')
    probe.close()
    for n, (mech, tls_max) in enumerate(runs):
        agent = 'cb-agent-%d-%s' % (n, mech)
        tok = fast_token_for(srv, mech, agent, tls_max)
        check(tok is not None and tok.get('token'), '%s: no token' % mech)
        token = tok.get('token')
        time.sleep(0.3)                  # the token is written behind
        s, cb = fast_auth_cb(srv, token, agent, mech, tls_max)
        check(s.tag == '{%s}success' % NS2, '%s login: %s' % (mech, rt.to_string(s)))
        want = base64.b64encode(hmac.new(token.encode(), b'Responder' + cb,
                                         'sha256').digest()).decode()
        check(s.findtext('{%s}additional-data' % NS2) == want,
              '%s: server HMAC: %s' % (mech, rt.to_string(s)))
        # Another connection's binding (what a relay of the hash carries).
        wrong = bytes([cb[0] ^ 1]) + cb[1:]
        s, _ = fast_auth_cb(srv, token, agent, mech, tls_max, cb=wrong)
        check(is_not_authorized(s), '%s with a wrong binding: %s' % (mech, rt.to_string(s)))
        s, _ = fast_auth_cb(srv, token, agent, mech, tls_max, cb=b'')
        check(is_not_authorized(s), '%s without its binding: %s' % (mech, rt.to_string(s)))
        # XEP-0484: a channel-bound token does not work unbound.
        s, _ = fast_auth_cb(srv, token, agent, 'HT-SHA-256-NONE', tls_max)
        check(is_not_authorized(s), '%s token used with NONE: %s' % (mech, rt.to_string(s)))
        # Nor with another offered binding, even hashed over the same data.
        other = [m for m in FAST_BY_TLS[tls_max] if m not in (mech, 'HT-SHA-256-NONE')][0]
        s, _ = fast_auth_cb(srv, token, agent, other, tls_max, cb=cb)
        check(is_not_authorized(s), '%s token used with %s: %s' % (mech, other, rt.to_string(s)))
        # Still good for its own mechanism after those failures.
        s, _ = fast_auth_cb(srv, token, agent, mech, tls_max)
        check(s.tag == '{%s}success' % NS2, '%s again: %s' % (mech, rt.to_string(s)))
    # UNIQ over TLS 1.3: no token, and the mechanism is refused.
    tok = fast_token_for(srv, 'HT-SHA-256-UNIQ', 'cb-agent-uniq13')
    check(tok is None, 'a token for a mechanism not offered: %s' % (tok is not None and tok.attrib))
    s, _ = fast_auth_cb(srv, 'whatever', 'cb-agent-uniq13', 'HT-SHA-256-UNIQ', None,
                        cb=b'\0' * 32)
    check(s.tag == '{%s}failure' % NS2 and s.find('{%s}invalid-mechanism' % NS_SASL) is not None,
          'UNIQ over TLS 1.3: %s' % rt.to_string(s))


def ssdp(srv):
    """XEP-0474: every SCRAM server-first-message carries h, the hash of
    the mechanisms and XEP-0440 channel-binding types this client saw, for
    SASL1 (<mechanisms/>) and SASL2 (<authentication/>), SHA-1 and
    SHA-256, with and without -PLUS (TLS 1.2 for tls-unique), and the
    login then succeeds.  A client shown a list with -PLUS and the binding
    types stripped computes another hash (and would abort); one that
    signs a server-first-message whose h was swapped on the way fails."""
    for tls_max in (None, ssl.TLSVersion.TLSv1_2):
        mechs = ['SCRAM-SHA-1', 'SCRAM-SHA-256']
        if tls_max is not None:
            mechs += ['SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS']
        for mech in mechs:
            c = preauth(srv, 'alice@localhost', tls_max)
            try:
                check(mech in c.mechanisms(), '%s not offered: %s' % (mech, c.mechanisms()))
                c.auth(mech=mech)       # SASL1: roosttest checks h
            finally:
                c.close()
            c = preauth(srv, 'alice@localhost', tls_max)
            try:
                s, expect = auth2_scram(c, USERS['alice@localhost'], mech=mech)
                check(s.tag == '{%s}success' % NS2, '%s: %s' % (mech, rt.to_string(s)))
                ad = base64.b64decode(s.findtext('{%s}additional-data' % NS2) or '').decode()
                check(ad == expect, '%s: server signature %r, want %r' % (mech, ad, expect))
            finally:
                c.close()
    c = preauth(srv, 'alice@localhost', ssl.TLSVersion.TLSv1_2)
    try:
        seen = sasl2_mechs(c)
        check(c.cb_types(), 'no XEP-0440 list: %s' % rt.to_string(c.features))
        stripped = [m for m in seen if not m.endswith('-PLUS')]
        down = rt.ssdp_hash('sha256', stripped, None)
        check(down != rt.ssdp_hash('sha256', seen, c.cb_types()), 'downgrade not visible')
        swap = lambda sf: sf.split(',h=')[0] + ',h=' + down
        s, _ = auth2_scram(c, USERS['alice@localhost'], tamper=swap)
        check(s.tag == '{%s}failure' % NS2 and s.find('{%s}not-authorized' % NS_SASL) is not None,
              'a swapped h was accepted: %s' % rt.to_string(s))
    finally:
        c.close()


TESTS = [feature, plain_no_bind, scram_bind2_sm, failures, fast_tokens,
         fast_channel_binding, ssdp, fast_credentials_expired]


class Roost(rt.Roost):
    # fast_channel_binding fails a dozen logins on purpose.
    extra_limits = 'auth_failures_per_ip = 100; '


class ShortFast(Roost):
    extra_limits = Roost.extra_limits + 'fast_token_lifetime = 4; '


def main():
    p, f = rt.run_group(Roost, USERS, TESTS, 'sasl2')
    p2, f2 = rt.run_group(ShortFast, USERS, [fast_rotation], 'sasl2')
    p, f = p + p2, f + f2
    print('%d passed, %d failed' % (p, f))
    return 1 if f else 0


if __name__ == '__main__':
    sys.exit(main())
