#!/usr/bin/env python3
"""Load out-of-tree modules into a live roostd (called by
test_example_module.sh, which builds them against the installed headers).

    example_module_check.py hello  MODULES_DIR   # mod_hello answers, disco lists it
    example_module_check.py badabi MODULES_DIR   # roostd refuses a wrong-ABI module

Binaries come from $ROOSTD / $ROOSTCTL as for run.py.  Prints "PASS name" or
"FAIL name: why" and exits 0 only on PASS.  The server runs in its own temp
dir (removed on success, kept and named on failure) and is always stopped.
"""
import os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roosttest as rt    # noqa: E402

NS_HELLO = 'urn:example:hello'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
USER, PASSWORD = 'alice@localhost', 'wonderland'


class RoostWith(rt.Roost):
    """Roost with its modules_dir and module list replaced, and per-host
    text added inside each host group (module option groups)."""

    def __init__(self, modules_dir, modules, host_extra='', users=()):
        super().__init__(dict(users))
        self.modules = os.path.abspath(modules_dir)
        self.mod_list, self.host_extra = modules, host_extra

    def write_config(self):
        mods = '[ %s ]' % ', '.join('"%s"' % m for m in self.mod_list)
        with open(self.config, 'w') as f:
            f.write('log_level = "debug";\n'
                    'data_dir = "%s";\n' % os.path.join(self.dir, 'data') +
                    'modules_dir = "%s";\n' % self.modules +
                    'storage = { driver = "sqlite"; path = "roost.db"; };\n'
                    'limits = { auth_fail_delay = 0.2; };\n'
                    'listen = (\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "starttls"; },\n'
                    '  { address = "127.0.0.1"; port = %d; type = "c2s"; tls = "direct"; }\n'
                    ');\nhosts = (\n' % (self.c2s_port, self.tls_port) +
                    '  { domain = "localhost"; modules = %s;\n    %s }\n);\n'
                    % (mods, self.host_extra))
        os.makedirs(os.path.join(self.dir, 'data'), exist_ok=True)


def check_hello(modules_dir):
    srv = RoostWith(modules_dir, ['disco', 'message', 'hello'],
                    'hello = { greeting = "Howdy"; };', {USER: PASSWORD})
    problems, client = [], None
    try:
        srv.start()
        client = rt.Client(srv, USER, PASSWORD).login(resource='ex')
        el = client.iq("<iq type='get' id='h1' to='localhost'>"
                       "<hello xmlns='%s'/></iq>" % NS_HELLO)
        rt.check(el.get('type') == 'result', 'hello: %s' % rt.to_string(el))
        hello = el.find('{%s}hello' % NS_HELLO)
        rt.check(hello is not None, 'result without <hello/>: %s' % rt.to_string(el))
        text = hello.text or ''
        rt.check('Howdy' in text, 'greeting option not applied: %r' % text)
        rt.check(USER in text, 'bare JID missing from %r' % text)
        el = client.iq("<iq type='get' id='d1' to='localhost'>"
                       "<query xmlns='%s'/></iq>" % NS_DISCO_INFO)
        rt.check(el.get('type') == 'result', 'disco#info: %s' % rt.to_string(el))
        feats = [f.get('var') for f in el.iter('{%s}feature' % NS_DISCO_INFO)]
        rt.check(NS_HELLO in feats, 'disco#info does not list %s: %s' % (NS_HELLO, feats))
    except Exception as e:      # TestFailure, socket errors
        problems.append(str(e) or repr(e))
    finally:
        if client is not None:
            client.close()
        problems += ['roostd: ' + p for p in srv.stop()]
    return problems, srv


def check_badabi(modules_dir):
    """roostd must stop at startup, non-zero, saying why (ABI)."""
    srv = RoostWith(modules_dir, ['disco', 'badabi'])
    srv.write_config()
    try:
        r = subprocess.run([srv.roostd, '-c', srv.config], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=rt.TIMEOUT, cwd=srv.dir)
    except subprocess.TimeoutExpired:   # run() has killed and reaped it
        return ['roostd started with a wrong-ABI module (still running after %ss)'
                % rt.TIMEOUT], srv
    err = r.stderr.decode(errors='replace')
    with open(srv.logfile, 'w') as f:
        f.write(err)
    problems = []
    if r.returncode <= 0:
        problems.append('roostd exit status %s, expected > 0' % r.returncode)
    if 'ABI' not in err:
        problems.append('no "ABI" in stderr')
    for needle in ('AddressSanitizer', 'runtime error:', 'LeakSanitizer'):
        if needle in err:
            problems.append('stderr contains %r' % needle)
    return problems, srv


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ('hello', 'badabi'):
        sys.exit(__doc__)
    name, modules_dir = sys.argv[1], sys.argv[2]
    problems, srv = (check_hello if name == 'hello' else check_badabi)(modules_dir)
    if problems:
        print('FAIL %s: %s\n--- server log tail ---\n%s    (server files kept in %s)'
              % (name, '; '.join(problems), srv.log_tail(30), srv.dir), flush=True)
        return 1
    if name == 'badabi':
        said = srv.log_tail(3).strip().splitlines()
        print('    roostd refused it: %s' % (said[-1] if said else ''), flush=True)
    srv.cleanup()
    print('PASS %s' % name, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
