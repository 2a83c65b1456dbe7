"""How fast mod_mam answers queries on a big archive (not part of make
check).

Starts roostd with mod_mam (SQLite backend), lets one real message go
through so the archive and its key exist, then fills alice's archive with
N (default 100,000) messages straight into the SQLite file (one
transaction, the rows mod_mam would write: 10 peers, one message a second),
and times queries over XMPP: the last page (RSM <before/>), the first
page, a page after an id in the middle, 'with' alone, and 'with' plus a
start/end range.  Each is run R times; the median and worst wall-clock
time from sending the iq to the <fin/> are printed, as is SQLite's query
plan for the statements involved.

    python3 mam_bench.py [-n 100000] [-r 20]
"""
import argparse
import os
import sqlite3
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
import test_mam as tm                         # noqa: E402


def fill(path, n, t0):
    db = sqlite3.connect(path, timeout=30)
    rows = []
    for i in range(n):
        peer = 'peer%d@remote.example' % (i % 10)
        xml = ("<message xmlns='jabber:client' type='chat' from='%s/r' "
               "to='alice@localhost/a' id='b%d'><body>message number %d</body>"
               "</message>" % (peer, i, i))
        rows.append(('localhost', 'mam', 'alice', (t0 + i) * 1000000, peer, xml))
    with db:
        db.executemany("INSERT INTO archive (host, store, user, when_us, with_jid, value)"
                       " VALUES (?, ?, ?, ?, ?, ?)", rows)
    return db


def timed(c, inner, r):
    times, last = [], None
    for _ in range(r):
        t = time.perf_counter()
        res, iq = tm.query(c, inner)
        times.append((time.perf_counter() - t) * 1000)
        tm.fin(iq)
        last = res
    return statistics.median(times), max(times), last


def iso(t):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('-n', type=int, default=100000)
    ap.add_argument('-r', type=int, default=20)
    args = ap.parse_args()
    srv = tm.MamRoost(tm.USERS)
    srv.start()
    try:
        alice = tm.login(srv, 'alice@localhost', 'a')
        bob = tm.login(srv, 'bob@localhost', 'b')
        tm.send_chat(bob, 'alice@localhost', 'first')
        tm.next_message(alice)
        t0 = int(time.time()) - args.n - 10
        t = time.perf_counter()
        db = fill(os.path.join(srv.dir, 'data', 'roost.db')
                  if os.path.exists(os.path.join(srv.dir, 'data', 'roost.db'))
                  else os.path.join(srv.dir, 'roost.db'), args.n, t0)
        print('filled %d messages in %.1f s' % (args.n, time.perf_counter() - t))
        mid, _ = tm.query(alice, tm.rsm(max=1, after=None) +
                          tm.form(start=iso(t0 + args.n // 2)))
        mid_id = mid[0][0]
        cases = [
            ('last page (before/, max 50)', tm.rsm(max=50, before='')),
            ('first page (max 50)', tm.rsm(max=50)),
            ('page after a middle id (max 50)', tm.rsm(max=50, after=mid_id)),
            ('with, last page (max 50)',
             tm.form(**{'with': 'peer3@remote.example'}) + tm.rsm(max=50, before='')),
            ('with + start/end (1000 s range), max 50',
             tm.form(**{'with': 'peer3@remote.example', 'start': iso(t0 + args.n // 2),
                        'end': iso(t0 + args.n // 2 + 1000)}) + tm.rsm(max=50)),
            ('start/end (1000 s range), last page',
             tm.form(start=iso(t0 + args.n // 2), end=iso(t0 + args.n // 2 + 1000)) +
             tm.rsm(max=50, before='')),
            ('with + start, old start (half the archive), max 50',
             tm.form(**{'with': 'peer3@remote.example', 'start': iso(t0 + 10)}) +
             tm.rsm(max=50)),
        ]
        for name, inner in cases:
            med, worst, res = timed(alice, inner, args.r)
            print('%-52s median %7.2f ms  max %7.2f ms  (%d results)'
                  % (name, med, worst, len(res)))
        for sql in ("SELECT id FROM archive WHERE host='localhost' AND store='mam' AND "
                    "user='alice' ORDER BY id DESC LIMIT 51",
                    "SELECT count(*) FROM archive WHERE host='localhost' AND store='mam' AND "
                    "user='alice'",
                    "SELECT id FROM archive WHERE host='localhost' AND store='mam' AND "
                    "user='alice' AND with_jid='x' AND when_us>=1 AND when_us<=2 "
                    "ORDER BY id ASC LIMIT 51",
                    "SELECT id FROM archive WHERE host='localhost' AND store='mam' AND "
                    "user='alice' AND with_jid='x' ORDER BY id DESC LIMIT 51"):
            plan = db.execute('EXPLAIN QUERY PLAN ' + sql).fetchall()
            print('plan:', sql[:60], '...', [p[-1] for p in plan])
        alice.close()
        bob.close()
    finally:
        print('\n'.join(srv.stop()))
        srv.cleanup()


if __name__ == '__main__':
    main()
