"""A small interpreter for scansion-style send/expect scripts (*.scs).

Format (after Prosody's scansion):

    # Title and comments
    [Client] Romeo
        jid: romeo@localhost
        password: secret
        resource: balcony          (optional; otherwise the server picks one)

    ---------

    Romeo connects               (TCP, STARTTLS, SASL, bind)
    Romeo sends:
        <message to="juliet@localhost" type="chat"><body>Hi</body></message>
    Juliet receives:
        <message from="${Romeo's full JID}" type="chat"><body>Hi</body></message>
    Juliet receives: nothing     (no stanza within a short wait)
    Romeo disconnects

Matching: the received element has the expected name and namespace; every
expected attribute is present and equal ("{scansion:any}" matches any value);
every expected child matches a distinct received child (order free; extra
received children allowed) unless the expected element carries
scansion:strict="true"; text is compared after trimming whitespace.
An expected <stream:error> also requires </stream:stream> and TCP close.
Extension (not in scansion): an expected element with scansion:optional="true"
is consumed if it arrives within a second and matches, else skipped; used for
stanzas that depend on a module the test config may not load.
Variables: ${Name's full JID}, ${Name's JID} (bare).
"""
import re
import xml.etree.ElementTree as ET

import roosttest as rt

NS_SCANSION = 'https://matthewwild.co.uk/projects/scansion'
ANY = '{scansion:any}'
STRICT = '{%s}strict' % NS_SCANSION
OPTIONAL = '{%s}optional' % NS_SCANSION
ACTION = re.compile(r"^(\S+) (connects|disconnects|sends:|receives:)\s*(.*)$")


class Script:
    def __init__(self, path):
        self.path = path
        self.clients = {}      # name -> {'jid':..., 'password':..., 'resource':...}
        self.actions = []      # (lineno, name, verb, xml text or 'nothing')
        self._parse(open(path, encoding='utf-8').read().split('\n'))

    def _parse(self, lines):
        i, current, in_header = 0, None, True
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if in_header:
                if re.match(r'^-{3,}\s*$', line):
                    in_header = False
                elif line.startswith('[Client]'):
                    current = self.clients.setdefault(line[len('[Client]'):].strip(), {})
                elif line[0] in ' \t' and current is not None and ':' in line:
                    k, v = line.strip().split(':', 1)
                    current[k.strip()] = v.strip()
                else:
                    raise ValueError('%s:%d: cannot parse %r' % (self.path, i, line))
                continue
            m = ACTION.match(line)
            if not m or m.group(1) not in self.clients:
                raise ValueError('%s:%d: unknown action %r' % (self.path, i, line))
            name, verb, rest = m.groups()
            body = []
            while i < len(lines) and (lines[i][:1] in (' ', '\t') or not lines[i].strip()):
                body.append(lines[i])
                i += 1
            text = rest.strip() or '\n'.join(body).strip()
            if verb in ('sends:', 'receives:') and not text:
                raise ValueError('%s:%d: %s without XML' % (self.path, i, verb))
            self.actions.append((i, name, verb.rstrip(':'), text))

    def users(self):
        return {c['jid']: c['password'] for c in self.clients.values()}

    def run(self, server, log=lambda s: None):
        clients = {}
        try:
            for lineno, name, verb, text in self.actions:
                where = '%s line %d' % (self.path.rsplit('/', 1)[-1], lineno)
                try:
                    self._step(server, clients, name, verb, text, log)
                except rt.TestFailure as e:
                    raise rt.TestFailure('%s (%s %s): %s' % (where, name, verb, e))
        finally:
            for c in clients.values():
                c.close()

    def _subst(self, text, clients):
        def var(m):
            c = clients.get(m.group(1))
            if c is None:
                raise rt.TestFailure('variable %s: client not connected' % m.group(0))
            return c.full_jid if m.group(2) == 'full JID' else c.full_jid.split('/')[0]
        return re.sub(r"\$\{(\S+)'s (full JID|JID)\}", var, text)

    def _step(self, server, clients, name, verb, text, log):
        spec = self.clients[name]
        if verb == 'connects':
            c = rt.Client(server, spec['jid'], spec['password'], name=name)
            clients[name] = c.login(resource=spec.get('resource'))
            log('%s bound %s' % (name, c.full_jid))
            return
        c = clients.get(name)
        if c is None:
            raise rt.TestFailure('not connected')
        if verb == 'disconnects':
            c.close()
            del clients[name]
        elif verb == 'sends':
            c.send(self._subst(text, clients))
        elif text == 'nothing':
            c.recv_nothing(1.0)
        else:
            wrapper = ('<scansion-wrapper xmlns="jabber:client" xmlns:stream="%s" '
                       'xmlns:scansion="%s">%s</scansion-wrapper>'
                       % (rt.NS_STREAM, NS_SCANSION, self._subst(text, clients)))
            for expected in ET.fromstring(wrapper):
                if expected.get(OPTIONAL) == 'true':
                    try:
                        got = c.recv(1.0)
                    except rt.StreamClosed:
                        raise
                    except rt.TestFailure:
                        continue                      # not sent: fine
                    if mismatch(expected, got) is not None:
                        c.parser.items.insert(0, got)     # keep it for the next step
                    continue
                got = c.recv()
                problem = mismatch(expected, got)
                if problem:
                    raise rt.TestFailure('%s\n    expected: %s\n    received: %s'
                                         % (problem, rt.to_string(expected), rt.to_string(got)))
                if expected.tag == '{%s}error' % rt.NS_STREAM:
                    c.expect_close('the stream error')
                    c.sock.close()
                    c.sock = None
                    del clients[name]


def _text(el):
    return (el.text or '').strip()


def mismatch(exp, got, strict=False):
    """None if got matches exp, else a short reason."""
    strict = strict or exp.get(STRICT) == 'true'
    if exp.tag != got.tag:
        return 'element %s instead of %s' % (got.tag, exp.tag)
    want = {k: v for k, v in exp.attrib.items() if not k.startswith('{%s}' % NS_SCANSION)}
    for k, v in want.items():
        if k not in got.attrib:
            return '<%s/> lacks attribute %s' % (rt.tag(got), k)
        if v != ANY and got.get(k) != v:
            return '<%s/> has %s=%r, expected %r' % (rt.tag(got), k, got.get(k), v)
    if strict:
        extra = set(got.attrib) - set(want) - {'{%s}lang' % rt.NS_XML}
        if extra:
            return '<%s/> has unexpected attributes %s' % (rt.tag(got), sorted(extra))
    if (_text(exp) or strict) and _text(exp) != ANY and _text(exp) != _text(got):
        return '<%s/> text %r, expected %r' % (rt.tag(got), _text(got), _text(exp))
    unused = list(got)
    for child in exp:
        for cand in unused:
            if mismatch(child, cand, strict) is None:
                unused.remove(cand)
                break
        else:
            reasons = [mismatch(child, cand, strict) for cand in unused if cand.tag == child.tag]
            return 'no child matching %s in <%s/>%s' % (rt.to_string(child).split('>')[0] + '>',
                                                         rt.tag(got), (': ' + reasons[0]) if reasons else '')
    if strict and unused:
        return '<%s/> has unexpected children %s' % (rt.tag(got), [rt.tag(u) for u in unused])
    return None


def selftest():
    """The matcher must reject what it should (a matcher that accepts
    everything would make every script pass).  Returns a list of problems."""
    def el(x):
        return ET.fromstring('<w xmlns="jabber:client" xmlns:scansion="%s">%s</w>' % (NS_SCANSION, x))[0]
    got = el('<message from="a@b/c" id="1" type="chat"><body> hi </body><x xmlns="urn:x"/></message>')
    cases = [
        ('<message from="a@b/c"><body>hi</body></message>', True),
        ('<message from="{scansion:any}" id="1"/>', True),
        ('<message from="a@b/d"/>', False),
        ('<message to="a@b/c"/>', False),
        ('<message><body>hello</body></message>', False),
        ('<message><subject/></message>', False),
        ('<message><x xmlns="urn:y"/></message>', False),
        ('<presence from="a@b/c"/>', False),
        ('<message scansion:strict="true" from="a@b/c" id="1" type="chat"><body>hi</body></message>', False),
        ('<message scansion:strict="true" from="a@b/c" id="1" type="chat"><body>hi</body><x xmlns="urn:x"/></message>', True),
        ('<message scansion:strict="true" from="a@b/c" type="chat"><body>hi</body><x xmlns="urn:x"/></message>', False),
    ]
    problems = []
    for xml, ok in cases:
        if (mismatch(el(xml), got) is None) != ok:
            problems.append('matcher %s %s' % ('rejected' if ok else 'accepted', xml))
    return problems
