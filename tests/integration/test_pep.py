"""PEP (XEP-0163 on XEP-0060, mod_pep) and private XML storage (XEP-0049)
over real sockets.

Romeo and Juliet share presence both ways; Tybalt is a stranger.
Covered: the account's disco#info (pubsub/pep identity and features), an
OMEMO-shaped exchange (XEP-0384: Romeo publishes his
eu.siacs.conversations.axolotl.devicelist, and a bundle node with
publish-options access_model=open; Juliet, whose caps (XEP-0115) say
devicelist+notify, answers the server's disco#info query, gets the last
devicelist on her presence and the next one as it is published, and
fetches the bundle; Tybalt may fetch the open bundle but not the
presence-only devicelist), explicit subscriptions (XEP-0060 §6.1, §6.2,
§5.6: Tybalt subscribes to an open node, gets the last item and the next
one, lists and ends his subscription; the presence node refuses him), the
owner's affiliation management (§8.9: a member on a whitelist node, a
publisher), XEP-0411 bookmarks conversion (private XML bookmarks reach a
XEP-0402 client as notifications and items, and its bookmarks are read
back through private XML), publish-options preconditions (§7.1.5),
XEP-0049 private storage, items surviving a restart of the server, and
the XEP-0398 avatar conversion (Mercutio sets a vCard PHOTO: Benvolio,
whose caps say urn:xmpp:avatar:metadata+notify, is notified of the
XEP-0084 metadata, reads the open data node and sees the hash in
Mercutio's presence (XEP-0153); Mercutio publishes another avatar through
PEP and Benvolio reads it in his vCard; removing the PHOTO publishes
empty metadata, and deleting the metadata node clears the vCard PHOTO;
the account advertises urn:xmpp:pep-vcard-conversion:0).

    python3 test_pep.py                   # roostd with mod_pep
    python3 test_pep.py --server prosody  # the same against Prosody 0.12

Prints 'N passed, N failed'.
"""
import argparse
import base64
import hashlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client           # noqa: E402
from test_privacy import stanzas, subscribe_both, wait_for  # noqa: E402

PS = 'http://jabber.org/protocol/pubsub'
PSE = PS + '#event'
PSERR = PS + '#errors'
DINFO = 'http://jabber.org/protocol/disco#info'
CAPS = 'http://jabber.org/protocol/caps'
DEVLIST = 'eu.siacs.conversations.axolotl.devicelist'
AXO = 'eu.siacs.conversations.axolotl'
BUNDLE = AXO + '.bundles:31415'
STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NAMES = ['romeo', 'juliet', 'tybalt', 'mercutio', 'benvolio']
USERS = dict(('%s@localhost' % n, '%s-Secret-%d' % (n, i)) for i, n in enumerate(NAMES))

FEATURES = [DINFO, DEVLIST + '+notify']
IDENT = ('client', 'pc', '', 'pep-test')


def caps_ver(features, ident=IDENT):
    """XEP-0115 §5.1 with one identity and no forms."""
    s = '%s/%s/%s/%s<' % ident + ''.join(f + '<' for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


class PepRoost(rt.Roost):
    extra_modules = ('pep',)


class PepProsody(rt.Prosody):
    extra_modules = ('pep', 'private', 'bookmarks')


def login(srv, name, resource):
    jid = '%s@localhost' % name
    return Client(srv, jid, USERS[jid], name='%s/%s' % (name, resource)).login(resource)


def iq_ok(c, xml):
    r = c.iq(xml)
    check(r.get('type') == 'result', '%s: %s' % (c.name, rt.to_string(r)))
    return r


def iq_err(c, xml, cond, app=None):
    r = c.iq(xml)
    check(r.get('type') == 'error', 'expected an error: %s' % rt.to_string(r))
    e = r.find('{jabber:client}error')
    check(e is not None and e.find('{%s}%s' % (STANZAS, cond)) is not None,
          'expected %s: %s' % (cond, rt.to_string(r)))
    if app:
        check(e.find('{%s}%s' % (PSERR, app)) is not None,
              'expected %s: %s' % (app, rt.to_string(r)))
    return r


def devicelist(ids):
    return ("<list xmlns='%s'>%s</list>" % (AXO, ''.join("<device id='%d'/>" % i for i in ids)))


def publish(c, node, item_id, payload, options=''):
    return ("<iq type='set' id='pub%d'><pubsub xmlns='%s'><publish node='%s'>"
            "<item id='%s'>%s</item></publish>%s</pubsub></iq>"
            % (int(time.monotonic() * 1e6), PS, node, item_id, payload, options))


def pubopts(**fields):
    f = ''.join("<field var='pubsub#%s'><value>%s</value></field>" % kv for kv in fields.items())
    return ("<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
            "type='hidden'><value>%s#publish-options</value></field>%s</x></publish-options>"
            % (PS, f))


def caps_presence(c, features=FEATURES):
    """Available presence with caps; answers the server's disco#info query
    for node#ver (XEP-0115 §6.2) and returns what else arrived."""
    ver = caps_ver(features)
    c.send("<presence><c xmlns='%s' hash='sha-1' node='urn:pep-test' ver='%s'/></presence>"
           % (CAPS, ver))
    others = []
    deadline = time.monotonic() + 2.5      # answer every query (own and contacts')
    while time.monotonic() < deadline:
        try:
            el = c.recv(timeout=max(0.1, deadline - time.monotonic()))
        except rt.TestFailure:
            break
        q = el.find('{%s}query' % DINFO)
        if rt.tag(el) == 'iq' and el.get('type') == 'get' and q is not None:
            check(q.get('node') == 'urn:pep-test#' + ver, 'query node %s' % q.get('node'))
            body = "<identity category='%s' type='%s' name='%s'/>" % (IDENT[0], IDENT[1], IDENT[3])
            body += ''.join("<feature var='%s'/>" % f for f in features)
            c.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>%s</query></iq>"
                   % (el.get('id'), el.get('from'), DINFO, q.get('node'), body))
            continue
        others.append(el)
    return others


def events(els, node):
    out = []
    for el in els:
        ev = el.find('{%s}event' % PSE)
        if rt.tag(el) == 'message' and ev is not None:
            items = ev.find('{%s}items' % PSE)
            if items is not None and items.get('node') == node:
                out.append(el)
    return out


# ------------------------------------------------------------------ tests

def account_disco(srv):
    """XEP-0163 §8.1: the account's disco#info has pubsub/pep and the
    features the service supports."""
    r = login(srv, 'romeo', 'disco')
    try:
        q = iq_ok(r, "<iq type='get' id='d1' to='romeo@localhost'><query xmlns='%s'/></iq>"
                  % DINFO).find('{%s}query' % DINFO)
        ids = [(i.get('category'), i.get('type')) for i in q.findall('{%s}identity' % DINFO)]
        feats = [f.get('var') for f in q.findall('{%s}feature' % DINFO)]
        check(('pubsub', 'pep') in ids, 'identities %s' % ids)
        for f in ('publish', 'auto-create', 'publish-options', 'access-presence',
                  'filtered-notifications', 'retrieve-items'):
            check(PS + '#' + f in feats, 'missing %s in %s' % (f, feats))
    finally:
        r.close()


def omemo_exchange(srv):
    """OMEMO-shaped: devicelist (presence access) and an open bundle."""
    r = login(srv, 'romeo', 'orchard')
    j = login(srv, 'juliet', 'balcony')
    t = login(srv, 'tybalt', 'street')
    try:
        # available without caps first (subscription requests are
        # delivered to available resources), then with caps below
        for c in (r, j):
            c.send('<presence/>')
        stanzas(r, 0.3)
        stanzas(j, 0.3)
        subscribe_both(r, j)
        iq_ok(r, publish(r, DEVLIST, 'current', devicelist([31415])))
        iq_ok(r, publish(r, BUNDLE, 'current',
                         "<bundle xmlns='%s'><signedPreKeyPublic signedPreKeyId='1'>AAAA"
                         "</signedPreKeyPublic></bundle>" % AXO,
                         pubopts(access_model='open')))
        # Juliet comes online with devicelist+notify: the last devicelist
        got = events(caps_presence(j), DEVLIST)
        # XEP-0163 §4.3.4: one notification with the last item.  COMPAT:
        # Prosody 0.12 sends it twice to a local contact (once when the
        # contact's own caps resolve, once for the contact's presence).
        if isinstance(srv, rt.Prosody):
            check(len(got) >= 1, 'juliet: no devicelist event on presence')
        else:
            check(len(got) == 1, 'juliet: %d devicelist events on presence' % len(got))
        check(got[0].get('from') == 'romeo@localhost' and got[0].get('type') == 'headline',
              rt.to_string(got[0]))
        # a new devicelist is notified
        iq_ok(r, publish(r, DEVLIST, 'current', devicelist([31415, 2718])))
        got = events(stanzas(j, 1.5), DEVLIST)
        # COMPAT: Prosody 0.12 sends a local contact one notification to
        # the bare JID and one to the full JID (XEP-0163 §4.3.2: one per
        # full JID when the service has presence).
        check(len(got) == 1 or (isinstance(srv, rt.Prosody) and len(got) >= 1),
              'juliet: %d devicelist events on publish' % len(got))
        devs = got[0].findall('.//{%s}device' % AXO)
        check(sorted(d.get('id') for d in devs) == ['2718', '31415'], rt.to_string(got[0]))
        # Juliet fetches the bundle
        res = iq_ok(j, "<iq type='get' id='b1' to='romeo@localhost'><pubsub xmlns='%s'>"
                    "<items node='%s' max_items='1'/></pubsub></iq>" % (PS, BUNDLE))
        check(res.find('.//{%s}bundle' % AXO) is not None, rt.to_string(res))
        # Tybalt, a stranger: the open bundle yes, the devicelist no
        res = iq_ok(t, "<iq type='get' id='b2' to='romeo@localhost'><pubsub xmlns='%s'>"
                    "<items node='%s'/></pubsub></iq>" % (PS, BUNDLE))
        check(res.find('.//{%s}bundle' % AXO) is not None, rt.to_string(res))
        # XEP-0060 §6.5.9.2.  COMPAT: Prosody 0.12 answers <forbidden/>.
        if isinstance(srv, rt.Prosody):
            iq_err(t, "<iq type='get' id='b3' to='romeo@localhost'><pubsub xmlns='%s'>"
                   "<items node='%s'/></pubsub></iq>" % (PS, DEVLIST), 'forbidden')
        else:
            iq_err(t, "<iq type='get' id='b3' to='romeo@localhost'><pubsub xmlns='%s'>"
                   "<items node='%s'/></pubsub></iq>" % (PS, DEVLIST),
                   'not-authorized', 'presence-subscription-required')
        # and Tybalt got no notification
        check(events(stanzas(t, 0.3), DEVLIST) == [], 'tybalt notified')
    finally:
        for c in (r, j, t):
            c.close()


def sub_iq(c, kind, node, jid=None, to='romeo@localhost'):
    return ("<iq type='set' id='%s%d' to='%s'><pubsub xmlns='%s'><%s node='%s' jid='%s'/>"
            "</pubsub></iq>" % (kind, int(time.monotonic() * 1e6), to, PS, kind, node,
                                jid or c.jid.split('/')[0]))


def explicit_subscription(srv):
    """XEP-0163 §3 / XEP-0060 §6.1, §6.2, §5.6: a stranger subscribes to
    an open node with his bare JID, gets the last item and the next one,
    lists his subscriptions, unsubscribes; a presence node refuses him."""
    r = login(srv, 'romeo', 'subs')
    t = login(srv, 'tybalt', 'subs')
    open_node, pres_node = 'urn:xmpp:test:open', 'urn:xmpp:test:pres'
    try:
        iq_ok(r, publish(r, open_node, 'o1', "<x xmlns='urn:t'>one</x>",
                         pubopts(access_model='open')))
        iq_ok(r, publish(r, pres_node, 'p1', "<x xmlns='urn:t'/>"))
        t.send('<presence/>')
        stanzas(t, 0.3)
        # XEP-0060 §6.1.3.2.  COMPAT: Prosody 0.12 answers <forbidden/>.
        if isinstance(srv, rt.Prosody):
            iq_err(t, sub_iq(t, 'subscribe', pres_node), 'forbidden')
        else:
            iq_err(t, sub_iq(t, 'subscribe', pres_node),
                   'not-authorized', 'presence-subscription-required')
        # §6.1.3.1.  COMPAT: Prosody 0.12 answers <forbidden/>.
        iq_err(t, sub_iq(t, 'subscribe', open_node, 'juliet@localhost'),
               *(('forbidden',) if isinstance(srv, rt.Prosody)
                 else ('bad-request', 'invalid-jid')))
        res = iq_ok(t, sub_iq(t, 'subscribe', open_node))
        sub = res.find('.//{%s}subscription' % PS)
        check(sub is not None and sub.get('subscription') == 'subscribed'
              and sub.get('jid') == 'tybalt@localhost' and sub.get('node') == open_node,
              rt.to_string(res))
        # XEP-0163 §4.3.4: the last item to the new subscriber
        got = events(stanzas(t, 0.5), open_node)
        check(len(got) == 1 and got[0].find('.//{urn:t}x').text == 'one',
              'last item: %s' % [rt.to_string(e) for e in got])
        iq_ok(r, publish(r, open_node, 'o2', "<x xmlns='urn:t'>two</x>"))
        got = events(stanzas(t, 0.5), open_node)
        check(len(got) == 1 and got[0].find('.//{urn:t}x').text == 'two',
              'notification: %s' % [rt.to_string(e) for e in got])
        # §5.6
        res = iq_ok(t, "<iq type='get' id='l1' to='romeo@localhost'><pubsub xmlns='%s'>"
                    "<subscriptions/></pubsub></iq>" % PS)
        subs = [(s.get('node'), s.get('jid'), s.get('subscription'))
                for s in res.iter('{%s}subscription' % PS)]
        check(subs == [(open_node, 'tybalt@localhost', 'subscribed')], 'subscriptions %s' % subs)
        # §6.2
        iq_ok(t, sub_iq(t, 'unsubscribe', open_node))
        iq_err(t, sub_iq(t, 'unsubscribe', open_node), 'unexpected-request', 'not-subscribed')
        iq_ok(r, publish(r, open_node, 'o3', "<x xmlns='urn:t'>three</x>"))
        check(events(stanzas(t, 0.5), open_node) == [], 'notified after unsubscribing')
    finally:
        for c in (r, t):
            c.close()


def owner_affiliations(srv):
    """XEP-0060 §8.9: the owner whitelists a member and names a
    publisher; both take effect."""
    r = login(srv, 'romeo', 'affs')
    t = login(srv, 'tybalt', 'affs')
    node = 'urn:xmpp:test:wl'
    pso = PS + '#owner'
    try:
        iq_ok(r, publish(r, node, 'w1', "<x xmlns='urn:t'/>", pubopts(access_model='whitelist')))
        items = ("<iq type='get' id='i%d' to='romeo@localhost'><pubsub xmlns='%s'>"
                 "<items node='%s'/></pubsub></iq>")
        # §6.5.9.4.  COMPAT: Prosody 0.12 answers <forbidden/>.
        iq_err(t, items % (1, PS, node),
               *(('forbidden',) if isinstance(srv, rt.Prosody)
                 else ('not-allowed', 'closed-node')))
        iq_ok(r, "<iq type='set' id='a1'><pubsub xmlns='%s'><affiliations node='%s'>"
              "<affiliation jid='tybalt@localhost' affiliation='member'/></affiliations>"
              "</pubsub></iq>" % (pso, node))
        res = iq_ok(r, "<iq type='get' id='a2'><pubsub xmlns='%s'><affiliations node='%s'/>"
                    "</pubsub></iq>" % (pso, node))
        affs = sorted((a.get('jid'), a.get('affiliation'))
                      for a in res.iter('{%s}affiliation' % pso))
        # §8.9.1.2 lists every affiliation but none, the owner's too.
        # COMPAT: Prosody 0.12 leaves the PEP owner out.
        want = [('tybalt@localhost', 'member')]
        if not isinstance(srv, rt.Prosody):
            want.insert(0, ('romeo@localhost', 'owner'))
        check(affs == want, 'affiliations %s' % affs)
        res = iq_ok(t, items % (2, PS, node))
        check(res.find('.//{urn:t}x') is not None, rt.to_string(res))
        iq_err(t, publish(t, node, 't1', "<x xmlns='urn:t'/>").replace(
            "type='set'", "type='set' to='romeo@localhost'"), 'forbidden')
        iq_ok(r, "<iq type='set' id='a3'><pubsub xmlns='%s'><affiliations node='%s'>"
              "<affiliation jid='tybalt@localhost' affiliation='publisher'/></affiliations>"
              "</pubsub></iq>" % (pso, node))
        iq_ok(t, publish(t, node, 't1', "<x xmlns='urn:t'>by tybalt</x>").replace(
            "type='set'", "type='set' to='romeo@localhost'"))
        res = iq_ok(r, items % (3, PS, node))
        check('by tybalt' in rt.to_string(res), rt.to_string(res))
    finally:
        for c in (r, t):
            c.close()


BM, BM2 = 'storage:bookmarks', 'urn:xmpp:bookmarks:1'


def bookmarks_conversion(srv):
    """XEP-0411 (and XEP-0402 §5.3): a XEP-0048 client on private XML and
    a XEP-0402 client on PEP share one list of bookmarks."""
    old = login(srv, 'juliet', 'legacy')
    new = login(srv, 'juliet', 'modern')
    try:
        q = iq_ok(old, "<iq type='get' id='d' to='juliet@localhost'><query xmlns='%s'/></iq>"
                  % DINFO).find('{%s}query' % DINFO)
        feats = [f.get('var') for f in q.findall('{%s}feature' % DINFO)]
        check('urn:xmpp:bookmarks-conversion:0' in feats, 'features %s' % feats)
        old.send('<presence/>')
        caps_presence(new, [DINFO, BM2 + '+notify'])
        stanzas(old, 0.3)
        iq_ok(old, "<iq type='set' id='bs'><query xmlns='jabber:iq:private'><storage "
              "xmlns='%s'><conference jid='play@conference.localhost' name='The Play' "
              "autojoin='true'><nick>JC</nick></conference></storage></query></iq>" % BM)
        got = events(stanzas(new, 0.8), BM2)
        item = got[0].find('.//{%s}item' % PSE) if len(got) == 1 else None
        check(item is not None and item.get('id') == 'play@conference.localhost',
              'notification %s' % [rt.to_string(e) for e in got])
        conf = item.find('{%s}conference' % BM2)
        check(conf is not None and conf.get('autojoin') in ('true', '1')
              and conf.findtext('{%s}nick' % BM2) == 'JC', rt.to_string(item))
        iq_ok(new, publish(new, BM2, 'other@conference.localhost',
                           "<conference xmlns='%s' name='Other'/>" % BM2,
                           pubopts(persist_items='true', access_model='whitelist',
                                   max_items='max', send_last_published_item='never')))
        res = iq_ok(old, "<iq type='get' id='bg'><query xmlns='jabber:iq:private'>"
                    "<storage xmlns='%s'/></query></iq>" % BM)
        jids = sorted(c.get('jid') for c in res.iter('{%s}conference' % BM))
        check(jids == ['other@conference.localhost', 'play@conference.localhost'],
              rt.to_string(res))
    finally:
        for c in (old, new):
            c.close()


def publish_options_precondition(srv):
    """XEP-0060 §7.1.5: options that do not match the node."""
    r = login(srv, 'romeo', 'po')
    try:
        iq_ok(r, publish(r, 'urn:xmpp:test:po', 'a', "<x xmlns='urn:t'/>",
                         pubopts(access_model='open')))
        iq_ok(r, publish(r, 'urn:xmpp:test:po', 'a', "<x xmlns='urn:t'/>",
                         pubopts(access_model='open')))
        iq_err(r, publish(r, 'urn:xmpp:test:po', 'a', "<x xmlns='urn:t'/>",
                          pubopts(access_model='whitelist')),
               'conflict', 'precondition-not-met')
    finally:
        r.close()


def private_storage(srv):
    """XEP-0049: set, get, and the empty element for nothing stored."""
    r = login(srv, 'romeo', 'priv')
    try:
        res = iq_ok(r, "<iq type='get' id='g0'><query xmlns='jabber:iq:private'>"
                    "<prefs xmlns='urn:test:empty'/></query></iq>")
        check(res.find('.//{urn:test:empty}prefs') is not None, rt.to_string(res))
        iq_ok(r, "<iq type='set' id='s1'><query xmlns='jabber:iq:private'>"
              "<storage xmlns='storage:bookmarks'><conference jid='c@muc.localhost' "
              "autojoin='true'/></storage></query></iq>")
        res = iq_ok(r, "<iq type='get' id='g1'><query xmlns='jabber:iq:private'>"
                    "<storage xmlns='storage:bookmarks'/></query></iq>")
        check(res.find('.//{storage:bookmarks}conference') is not None, rt.to_string(res))
    finally:
        r.close()


def survives_restart(srv):
    """Items and private XML are read back after the server restarts."""
    if not isinstance(srv, rt.Roost):
        return
    r = login(srv, 'romeo', 'before')
    iq_ok(r, publish(r, 'urn:xmpp:test:keep', 'k1', "<x xmlns='urn:t'>kept</x>"))
    iq_ok(r, "<iq type='set' id='s2'><query xmlns='jabber:iq:private'>"
          "<p xmlns='urn:test:keep'>kept</p></query></iq>")
    r.close()
    srv.stop()
    srv.restart()
    rt.wait_port(srv.c2s_port, srv.proc)
    r = login(srv, 'romeo', 'after')
    try:
        res = iq_ok(r, "<iq type='get' id='g'><pubsub xmlns='%s'><items node='urn:xmpp:test:keep'/>"
                    "</pubsub></iq>" % PS)
        x = res.find('.//{urn:t}x')
        check(x is not None and x.text == 'kept', rt.to_string(res))
        res = iq_ok(r, "<iq type='get' id='g2'><query xmlns='jabber:iq:private'>"
                    "<p xmlns='urn:test:keep'/></query></iq>")
        p = res.find('.//{urn:test:keep}p')
        check(p is not None and p.text == 'kept', rt.to_string(res))
    finally:
        r.close()


AVD = 'urn:xmpp:avatar:data'
AVM = 'urn:xmpp:avatar:metadata'
VCARD = 'vcard-temp'
UPDATE = 'vcard-temp:x:update'
# A 2x3 PNG and a GIF header saying 5x4, with their SHA-1 (XEP-0084 ids).
PNG_B64 = ('iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAIAAAA2iEnWAAAAEElEQVR4nGP4z8AARAwoFABE'
           '0AX7pM/egAAAAABJRU5ErkJggg==')
PNG_SHA1 = '94458be1f7b2ef1fe17a4bae328e75cc134ea5c9'
GIF_B64 = 'R0lGODlhBQAEAAAAAAAAAAAAAAA='
GIF_SHA1 = '4db09ee521b8487158053490a7905b8d641e170a'


def vcard_set(c, photo):
    body = "<FN>Mercutio</FN>"
    if photo:
        # wrapped, as vCard clients do
        body += ("<PHOTO><TYPE>image/png</TYPE><BINVAL>%s\n%s</BINVAL></PHOTO>"
                 % (photo[:40], photo[40:]))
    iq_ok(c, "<iq type='set' id='v%d'><vCard xmlns='%s'>%s</vCard></iq>"
          % (int(time.monotonic() * 1e6), VCARD, body))


def avatar_event(c, what):
    el = wait_for(c, lambda e: len(events([e], AVM)) == 1, what)
    return el.find('.//{%s}item' % PSE)


def presence_photo(c, frm, what):
    el = wait_for(c, lambda e: rt.tag(e) == 'presence' and e.get('from') == frm
                  and e.get('type') is None, what)
    x = el.findall('{%s}x' % UPDATE)
    check(len(x) == 1, 'one vcard-temp:x:update: %s' % rt.to_string(el))
    ph = x[0].find('{%s}photo' % UPDATE)
    check(ph is not None, 'no <photo/>: %s' % rt.to_string(el))
    return ph.text or ''


def avatar_conversion(srv):
    """XEP-0398: vCard PHOTO -> XEP-0084 (notification, open data node,
    presence hash), XEP-0084 -> vCard PHOTO, removal, account feature."""
    m = login(srv, 'mercutio', 'piazza')
    b = login(srv, 'benvolio', 'square')
    mfull = 'mercutio@localhost/piazza'
    try:
        for c in (m, b):
            c.send('<presence/>')
        stanzas(m, 0.3)
        stanzas(b, 0.3)
        subscribe_both(m, b)
        caps_presence(b, [DINFO, AVM + '+notify'])
        stanzas(m, 0.3)
        # §2: the feature on the account
        q = iq_ok(m, "<iq type='get' id='d' to='mercutio@localhost'><query xmlns='%s'/></iq>"
                  % DINFO).find('{%s}query' % DINFO)
        feats = [f.get('var') for f in q.findall('{%s}feature' % DINFO)]
        check('urn:xmpp:pep-vcard-conversion:0' in feats, 'features %s' % feats)

        # vCard -> PEP (§2.2): Benvolio is notified of the metadata
        vcard_set(m, PNG_B64)
        item = avatar_event(b, 'avatar metadata notification')
        check(item.get('id') == PNG_SHA1, rt.to_string(item))
        info = item.find('{%s}metadata/{%s}info' % (AVM, AVM))
        check(info is not None and info.get('id') == PNG_SHA1 and info.get('bytes') == '73'
              and info.get('type') == 'image/png' and info.get('width') == '2'
              and info.get('height') == '3', rt.to_string(item))
        # the data node is open, the data canonical base64
        r = iq_ok(b, "<iq type='get' id='ad' to='mercutio@localhost'><pubsub xmlns='%s'>"
                  "<items node='%s'/></pubsub></iq>" % (PS, AVD))
        data = r.find('.//{%s}data' % AVD)
        check(data is not None and data.text == PNG_B64, rt.to_string(r))
        # §3 / XEP-0153: the hash in presence, whatever the client sent
        m.send("<presence><x xmlns='%s'/></presence>" % UPDATE)
        check(presence_photo(b, mfull, 'presence with hash') == PNG_SHA1, 'png hash')

        # PEP -> vCard (§2.1): a new avatar published through XEP-0084
        iq_ok(m, publish(m, AVD, GIF_SHA1, "<data xmlns='%s'>%s</data>" % (AVD, GIF_B64)))
        iq_ok(m, publish(m, AVM, GIF_SHA1,
                         "<metadata xmlns='%s'><info id='%s' bytes='20' type='image/gif' "
                         "width='5' height='4'/></metadata>" % (AVM, GIF_SHA1)))
        check(avatar_event(b, 'gif metadata').get('id') == GIF_SHA1, 'gif event')
        r = iq_ok(b, "<iq type='get' id='vg' to='mercutio@localhost'><vCard xmlns='%s'/></iq>"
                  % VCARD)
        card = r.find('{%s}vCard' % VCARD)
        check(card is not None and card.findtext('{%s}FN' % VCARD) == 'Mercutio'
              and card.findtext('{%s}PHOTO/{%s}TYPE' % (VCARD, VCARD)) == 'image/gif'
              and card.findtext('{%s}PHOTO/{%s}BINVAL' % (VCARD, VCARD)) == GIF_B64,
              rt.to_string(r))
        m.send('<presence/>')
        check(presence_photo(b, mfull, 'presence with gif hash') == GIF_SHA1, 'gif hash')

        # removing the PHOTO: empty metadata (XEP-0084 §4.5), empty <photo/>
        vcard_set(m, None)
        item = avatar_event(b, 'empty metadata')
        meta = item.find('{%s}metadata' % AVM)
        check(meta is not None and len(meta) == 0, rt.to_string(item))
        m.send('<presence/>')
        check(presence_photo(b, mfull, 'presence without avatar') == '', 'empty photo')

        # the metadata node deleted (XEP-0084 §4.5: no metadata, no avatar):
        # the vCard loses its PHOTO and keeps the rest, the hash is empty
        iq_ok(m, publish(m, AVD, GIF_SHA1, "<data xmlns='%s'>%s</data>" % (AVD, GIF_B64)))
        iq_ok(m, publish(m, AVM, GIF_SHA1,
                         "<metadata xmlns='%s'><info id='%s' bytes='20' type='image/gif'/>"
                         "</metadata>" % (AVM, GIF_SHA1)))
        m.send('<presence/>')
        check(presence_photo(b, mfull, 'gif again') == GIF_SHA1, 'gif hash again')
        iq_ok(m, "<iq type='set' id='del'><pubsub xmlns='%s#owner'><delete node='%s'/>"
              "</pubsub></iq>" % (PS, AVM))
        r = iq_ok(m, "<iq type='get' id='vd'><vCard xmlns='%s'/></iq>" % VCARD)
        card = r.find('{%s}vCard' % VCARD)
        check(card is not None and card.find('{%s}PHOTO' % VCARD) is None
              and card.findtext('{%s}FN' % VCARD) == 'Mercutio', rt.to_string(r))
        m.send('<presence/>')
        check(presence_photo(b, mfull, 'presence after delete') == '', 'photo after delete')
    finally:
        for c in (m, b):
            c.close()


TESTS = [account_disco, omemo_exchange, explicit_subscription, owner_affiliations,
         bookmarks_conversion, publish_options_precondition, private_storage,
         survives_restart, avatar_conversion]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', choices=('roost', 'prosody'), default='roost')
    args = ap.parse_args()
    cls = PepRoost if args.server == 'roost' else PepProsody
    passed, failed = rt.run_group(cls, USERS, TESTS, 'pep-%s' % args.server)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
