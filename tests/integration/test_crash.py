"""Crash safety (issue 6, DESIGN.md durability): roostd is killed with
SIGKILL at random moments while a client streams messages to offline
accounts with XEP-0198 acks; after each restart every message the server
acknowledged is delivered exactly once, and no message is delivered
twice.

    python3 test_crash.py [--rounds N] [--seed S]

Prints 'N passed, N failed'.
"""
import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, TestFailure      # noqa: E402
from test_sm import SmRoost, USERS, NS_SM, login, enable, stanzas  # noqa: E402

RECIPIENTS = ['peggy', 'heidi', 'ivan']
ROUNDS = 6
SEED = 2026


def _stream_until_killed(srv, rng, rnd):
    """Sends messages (asking for an ack every few) until the server is
    killed at a random moment; returns (sent ids in order, acked count)."""
    a = login(srv, 'oscar@localhost')
    enable(a, resume=False)
    kill_at = time.monotonic() + rng.uniform(0.05, 0.6)
    sent, acked, i = [], 0, 0
    a.sock.setblocking(True)
    try:
        while time.monotonic() < kill_at:
            user = RECIPIENTS[i % len(RECIPIENTS)]
            mid = 'r%d-%d' % (rnd, i)
            a.send("<message to='%s@localhost' id='%s' type='chat'><body>%s</body></message>"
                   % (user, mid, mid))
            sent.append((user, mid))
            i += 1
            if i % 7 == 0:
                a.send("<r xmlns='%s'/>" % NS_SM)
            # Collect acks that already arrived, without waiting.
            while a._fill(time.monotonic() + 0.0005):
                pass
            for el in list(a.parser.items):
                if el.tag == '{%s}a' % NS_SM:
                    acked = max(acked, int(el.get('h')))
            a.parser.items.clear()
        # The riskiest moment: right as an ack arrives (half of the
        # rounds), else wherever the stream happens to be.
        if rng.random() < 0.5:
            a.send("<r xmlns='%s'/>" % NS_SM)
            while True:
                el = a.recv(timeout=5)
                if el.tag == '{%s}a' % NS_SM:
                    acked = max(acked, int(el.get('h')))
                    if acked == len(sent):
                        break
    except TestFailure:
        pass
    srv.kill9()
    # Acks that were on the wire before the kill count too.
    try:
        while a._fill(time.monotonic() + 0.2):
            pass
    except TestFailure:
        pass
    for el in a.parser.items:
        if el.tag == '{%s}a' % NS_SM:
            acked = max(acked, int(el.get('h')))
    try:
        a.sock.close()
    except OSError:
        pass
    return sent, acked


def random_kills(srv):
    """SIGKILL at random moments during traffic to offline users: every
    acknowledged message arrives after the restart, exactly once; nothing
    arrives twice."""
    rng = random.Random(SEED)
    total_acked = total_sent = 0
    for rnd in range(ROUNDS):
        sent, acked = _stream_until_killed(srv, rng, rnd)
        srv.restart()
        got = []
        for user in RECIPIENTS:
            c = login(srv, '%s@localhost' % user)
            c.send('<presence/>')
            more = stanzas(c, 1.5)[0]
            got += [m.get('id') for m in more if rt.tag(m) == 'message']
            c.close()
        dups = sorted(set(x for x in got if got.count(x) > 1))
        check(not dups, 'round %d: delivered twice: %s' % (rnd, dups[:10]))
        missing = [mid for _, mid in sent[:acked] if mid not in got]
        check(not missing, 'round %d: %d of %d acknowledged messages lost: %s'
              % (rnd, len(missing), acked, missing[:10]))
        total_acked += acked
        total_sent += len(sent)
    print('NOTE crash:random_kills: %d rounds, %d messages sent, %d acknowledged before '
          'the kills, all delivered once' % (ROUNDS, total_sent, total_acked))
    check(total_acked > 0, 'no message was ever acknowledged: the test proved nothing')


def main():
    global ROUNDS, SEED
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=ROUNDS)
    ap.add_argument('--seed', type=int, default=SEED)
    args = ap.parse_args()
    ROUNDS, SEED = args.rounds, args.seed
    p, f = rt.run_group(SmRoost, USERS, [random_kills], 'crash')
    print('%d passed, %d failed' % (p, f))
    return 1 if f else 0


if __name__ == '__main__':
    sys.exit(main())
