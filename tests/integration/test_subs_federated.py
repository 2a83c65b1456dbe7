"""Subscription and presence scripts replayed across a federation: the
scansion scripts named below run with their first client on a.test and the
others on b.test (alternating), each domain served by its own roostd, the
two linked by static s2s routes over loopback (as in test_s2s.py).  The
expectations are the same as on one server: RFC 6121 does not distinguish
a local contact from a remote one (§3, §4), except that the stanza now
crosses an s2s stream.

    python3 test_subs_federated.py [filter]

Prints 'N passed, N failed'.
"""
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                    # noqa: E402
import scansion                           # noqa: E402
from test_s2s import FedRoost             # noqa: E402

# Subscription both ways, one-way approval, cancellation, pre-approval,
# probe to an offline contact, directed presence, unavailable at logout.
SCRIPTS = [
    'subs_none_pin_subscribed.scs',      # approval: None + Pending In -> From
    'subs_to_pin_subscribed.scs',        # subscription both ways
    'subs_both_unsubscribe.scs',         # §3.3: unsubscribe, unavailable back
    'subs_both_unsubscribed.scs',        # §3.2: cancel, unavailable to the contact
    'subs_none_pout_subscribe.scs',      # resent request (A.3.1)
    'subs_from_subscribed.scs',          # not routed again (A.2.3)
    'subscription_preapproval.scs',      # §3.4 across domains
    'subscription_cancel.scs',
    'presence_probe.scs',                # probe to an online, then offline contact
    'presence_directed.scs',             # §4.6 and unavailable at logout
]
DOMAINS = ('a.test', 'b.test')


class FedScript(scansion.Script):
    """A script whose clients are spread over the two domains."""

    def __init__(self, path):
        text = open(path, encoding='utf-8').read()
        probe = scansion.Script(path)
        self.home = {}
        for i, (name, spec) in enumerate(probe.clients.items()):
            local, dom = spec['jid'].split('@', 1)
            new = '%s@%s' % (local, DOMAINS[0] if i % 2 == 0 else DOMAINS[1])
            self.home[name] = new.split('@')[1]
            text = re.sub(r'\b%s@%s\b' % (re.escape(local), re.escape(dom)), new, text)
        fd, tmp = tempfile.mkstemp(suffix='.scs')
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        try:
            super().__init__(tmp)
        finally:
            os.unlink(tmp)
        self.path = path

    def _step(self, servers, clients, name, verb, text, log):
        return super()._step(servers[self.home[name]], clients, name, verb, text, log)


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else ''
    scripts = [FedScript(os.path.join(HERE, 'scripts', s)) for s in SCRIPTS if pattern in s]
    users = {}
    for s in scripts:
        users.update(s.users())
    ports = rt.free_ports(8)
    a = FedRoost({j: p for j, p in users.items() if j.endswith('@a.test')}, 'a.test', ports[0:4])
    b = FedRoost({j: p for j, p in users.items() if j.endswith('@b.test')}, 'b.test', ports[4:8])
    a.routes = {'b.test': b.s2s_port}
    b.routes = {'a.test': a.s2s_port}
    servers = {'a.test': a, 'b.test': b}
    passed = failed = 0
    try:
        for s in (a, b):
            s.start()
        for s in scripts:
            name = 'federated:' + os.path.basename(s.path)[:-4]
            try:
                s.run(servers)
                print('PASS %s' % name, flush=True)
                passed += 1
            except (rt.TestFailure, OSError) as e:
                print('FAIL %s: %s' % (name, e), flush=True)
                failed += 1
            for srv in (a, b):
                if srv.proc.poll() is not None:
                    print('FAIL %s: %s died:\n%s' % (name, srv.domain, srv.log_tail(30)))
                    failed += 1
                    raise SystemExit(1)
        for srv in (a, b):
            problems = srv.stop()
            if problems:
                print('FAIL federated:clean-shutdown(%s): %s\n%s'
                      % (srv.domain, '; '.join(problems), srv.log_tail(30)))
                failed += 1
            else:
                print('PASS federated:clean-shutdown(%s)' % srv.domain)
                passed += 1
    except rt.TestFailure as e:
        print('FAIL federated:start: %s' % e)
        failed += 1
    finally:
        for srv in (a, b):
            if srv.proc and srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()
            if failed:
                print('    (server files kept in %s)' % srv.dir)
            else:
                srv.cleanup()
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
