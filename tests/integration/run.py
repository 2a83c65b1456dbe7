#!/usr/bin/env python3
"""Run the protocol scripts (scripts/*.scs) and raw-socket tests (test_stream.py)
against a live server: --server roost (default) or --server prosody.

Tests are spread over --jobs workers; each worker starts its own server
(own temp dir, own random ports) and runs its share one after the other, so
tests never see each other's sessions.  Prints "PASS name" / "FAIL name: why"
per test and ends with "N passed, N failed[, N skipped]".
"""
import argparse, glob, os, sys, threading, traceback

import roosttest as rt
import scansion
import test_stream

HERE = os.path.dirname(os.path.abspath(__file__))


def collect(pattern):
    tests, users = [], dict(test_stream.USERS)
    for path in sorted(glob.glob(os.path.join(HERE, 'scripts', '*.scs'))):
        script = scansion.Script(path)
        users.update(script.users())
        tests.append(('script:' + os.path.basename(path)[:-4], script.run))
    tests += [('stream:' + name, fn) for name, fn in test_stream.TESTS]
    return [t for t in tests if not pattern or pattern in t[0]], users


class Worker(threading.Thread):
    def __init__(self, server_cls, users, tests, report, verbose):
        super().__init__(daemon=True)
        self.server_cls, self.users, self.tests = server_cls, users, tests
        self.report, self.verbose = report, verbose

    def start_server(self):
        srv = self.server_cls(self.users)
        try:
            srv.start()
        except Exception as e:
            reason = 'server did not start: %s' % e
            if os.path.exists(srv.logfile):
                reason += '\n' + srv.log_tail(20)
            srv.stop()
            srv.cleanup()
            return None, reason
        return srv, None

    def run(self):
        srv, reason = self.start_server()
        for name, fn in self.tests:
            if srv is None:
                self.report('FAIL', name, reason)
                continue
            try:
                fn(srv)
                outcome, why = 'PASS', ''
            except test_stream.Skip as e:
                outcome, why = 'SKIP', str(e)
            except Exception as e:    # TestFailure, socket errors, bugs in a test
                outcome = 'FAIL'
                why = str(e) if isinstance(e, rt.TestFailure) else traceback.format_exc(limit=3)
            if srv.proc.poll() is not None:
                outcome, why = 'FAIL', '%s; server died (status %s):\n%s' % (
                    why, srv.proc.returncode, srv.log_tail(30))
                srv.stop()
                srv, reason = self.start_server()
            elif outcome == 'FAIL' and self.verbose:
                why += '\n--- server log tail ---\n' + srv.log_tail(25)
            self.report(outcome, name, why)
        if srv is not None:
            problems = srv.stop()
            self.report('FAIL' if problems else 'PASS', 'server:clean-shutdown(%s)' % self.name,
                        '; '.join(problems) + ('\n' + srv.log_tail(30) if problems else ''))
            if not problems and not os.environ.get('ROOSTTEST_KEEP'):
                srv.cleanup()
            elif problems:
                print('    (server files kept in %s)' % srv.dir, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--server', choices=sorted(rt.SERVERS), default='roost')
    ap.add_argument('--jobs', '-j', type=int, default=int(os.environ.get('ROOSTTEST_JOBS', '2')))
    ap.add_argument('--verbose', '-v', action='store_true', help='server log tail on each failure')
    ap.add_argument('filter', nargs='?', help='run only tests whose name contains this')
    args = ap.parse_args()
    tests, users = collect(args.filter)
    counts = {'PASS': 0, 'FAIL': 0, 'SKIP': 0}
    lock = threading.Lock()

    def report(outcome, name, why=''):
        with lock:
            counts[outcome] += 1
            print('%s %s%s' % (outcome, name, ': ' + why if why else ''), flush=True)

    if not args.filter or 'selftest' in args.filter:
        problems = scansion.selftest()
        report('FAIL' if problems else 'PASS', 'selftest:matcher', '; '.join(problems))
    jobs = max(1, min(args.jobs, len(tests)))
    workers = [Worker(rt.SERVERS[args.server], users, tests[i::jobs], report, args.verbose)
               for i in range(jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for note in sorted(set(test_stream.NOTES)):
        print('NOTE %s' % note)
    line = '%d passed, %d failed' % (counts['PASS'], counts['FAIL'])
    if counts['SKIP']:
        line += ', %d skipped' % counts['SKIP']
    print(line)
    return 1 if counts['FAIL'] or not tests else 0


if __name__ == '__main__':
    sys.exit(main())
