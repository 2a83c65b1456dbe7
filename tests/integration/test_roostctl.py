"""roostctl, the command-line contract deployment scripts rely on:
adduser (password from --password or stdin), passwd, deluser, users, exit
codes 0/1/2, and the effect on a live roostd (new password logs in, the
old one and a deleted account do not).  Prints 'N passed, N failed'."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                      # noqa: E402
from roosttest import check, Client, AuthFailed, TestFailure  # noqa: E402


def ctl(srv, *args, stdin=None):
    r = subprocess.run([srv.roostctl, '-c', srv.config] + list(args),
                       input=stdin.encode() if stdin is not None else None,
                       stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=30, cwd=srv.dir)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def can_login(srv, jid, password):
    c = Client(srv, jid, password)
    try:
        c.login()
        return True
    except AuthFailed:
        return False
    finally:
        c.close()


def t_adduser_and_users(srv):
    rc, _, err = ctl(srv, 'adduser', 'zed@localhost', '--password', 'z-pass')
    check(rc == 0, 'adduser --password failed: %s' % err)
    rc, _, err = ctl(srv, 'adduser', 'Amy@LOCALHOST', stdin='amy-pass\n')
    check(rc == 0, 'adduser from stdin failed: %s' % err)
    rc, out, _ = ctl(srv, 'users', 'localhost')
    check(rc == 0, 'users failed')
    names = out.split()
    # Prepared (lowercased) JIDs, sorted; the fixture's alice is there too.
    check(names == sorted(names), 'users not sorted: %r' % names)
    check('amy@localhost' in names and 'zed@localhost' in names,
          'users missing the new accounts: %r' % names)
    rc, out, _ = ctl(srv, 'users', 'example.test')
    check(rc == 0 and 'zed@localhost' not in out, 'vhosts mixed: %r' % out)
    check(can_login(srv, 'amy@localhost', 'amy-pass'), 'amy cannot log in')


def t_duplicate_and_errors(srv):
    rc, _, err = ctl(srv, 'adduser', 'zed@localhost', '--password', 'x')
    check(rc == 1 and 'exist' in err, 'duplicate adduser: rc %d %r' % (rc, err))
    rc, _, err = ctl(srv, 'adduser', 'nobody@nowhere.test', '--password', 'x')
    check(rc == 1, 'account on an unserved domain: rc %d' % rc)
    rc, _, _ = ctl(srv, 'adduser', 'bad user@localhost', '--password', 'x')
    check(rc in (1, 2), 'malformed JID accepted: rc %d' % rc)
    rc, _, _ = ctl(srv, 'adduser', 'empty@localhost', stdin='\n')
    check(rc == 1, 'empty password accepted: rc %d' % rc)
    rc, _, _ = ctl(srv, 'frobnicate')
    check(rc == 2, 'unknown command: rc %d, want 2' % rc)
    rc, _, _ = ctl(srv)
    check(rc == 2, 'no command: rc %d, want 2' % rc)


def t_passwd(srv):
    rc, _, err = ctl(srv, 'passwd', 'zed@localhost', '--password', 'new-z')
    check(rc == 0, 'passwd failed: %s' % err)
    check(can_login(srv, 'zed@localhost', 'new-z'), 'new password refused')
    check(not can_login(srv, 'zed@localhost', 'z-pass'),
          'old password still works')
    rc, _, _ = ctl(srv, 'passwd', 'ghost@localhost', '--password', 'x')
    check(rc == 1, 'passwd of a missing account: rc %d' % rc)


def t_deluser(srv):
    rc, _, err = ctl(srv, 'deluser', 'zed@localhost')
    check(rc == 0, 'deluser failed: %s' % err)
    check(not can_login(srv, 'zed@localhost', 'new-z'),
          'deleted account can still log in')
    rc, out, _ = ctl(srv, 'users', 'localhost')
    check('zed@localhost' not in out.split(), 'deleted account listed')
    check(can_login(srv, 'alice@localhost', 'alice-pw'),
          'deluser touched another account')


TESTS = [t_adduser_and_users, t_duplicate_and_errors, t_passwd, t_deluser]


def main():
    passed = failed = 0
    srv = rt.Roost({'alice@localhost': 'alice-pw'})
    try:
        srv.start()
        for t in TESTS:
            try:
                t(srv)
                print('PASS roostctl:%s' % t.__name__[2:])
                passed += 1
            except (TestFailure, OSError, subprocess.SubprocessError) as e:
                print('FAIL roostctl:%s: %s' % (t.__name__[2:], e))
                failed += 1
        problems = srv.stop()
        if problems:
            print('FAIL roostctl:server-clean-shutdown: %s' % '; '.join(problems))
            failed += 1
    except TestFailure as e:
        print('FAIL roostctl:start: %s' % e)
        failed += 1
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        if failed:
            print('    (files kept in %s)' % srv.dir)
        else:
            srv.cleanup()
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
