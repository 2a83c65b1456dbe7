"""SASL2 (XEP-0388) and Bind2 (XEP-0386) over real sockets: the
<authentication/> feature mirrors the SASL mechanisms and offers Bind2
with XEP-0198 inline; authentication without a stream restart (PLAIN and
SCRAM-SHA-256, the server signature checked in <additional-data/>),
XEP-0474 downgrade protection (h in SCRAM, SASL1 and SASL2),
<authorization-identifier/>, the features right after <success/>; Bind2
binds a resource made of the client's tag and a part that is stable for
one user agent, and enables stream management inline; failures in the
urn:xmpp:sasl:2 namespace.  Roost only (Prosody 0.12 has no SASL2).

    python3 test_sasl2.py

Prints 'N passed, N failed'.
"""
import base64
import hashlib
import hmac
import os
import ssl
import sys

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
        check(fa is not None and [m.text for m in fa] == ['HT-SHA-256-NONE'],
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


TESTS = [feature, plain_no_bind, scram_bind2_sm, failures, fast_tokens, ssdp]


def main():
    p, f = rt.run_group(rt.Roost, USERS, TESTS, 'sasl2')
    print('%d passed, %d failed' % (p, f))
    return 1 if f else 0


if __name__ == '__main__':
    sys.exit(main())
