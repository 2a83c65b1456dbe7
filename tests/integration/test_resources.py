"""Sessions per account (limits.max_resources, issue 6, doc/limits.md)
against a roostd that allows 3 resources per account: the fourth bind is
refused with <resource-constraint/>, binding a resource already in use
replaces that session (<conflict/>) instead of counting, a freed slot can
be used again, and other accounts are not affected.  Roost only.  Prints
'N passed, N failed'.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import roosttest as rt                        # noqa: E402
from roosttest import check, Client           # noqa: E402

USERS = {'alice@localhost': 'alice-Secret-4711',
         'bob@localhost': 'bob-Secret-0815'}
MAX = 3


class FewResourcesRoost(rt.Roost):
    """The usual two vhosts with max_resources = MAX."""

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            conf = f.read()
        check('max_resources = 10;' in conf, 'could not rewrite the test config')
        conf = conf.replace('max_resources = 10;', 'max_resources = %d;' % MAX)
        with open(self.config, 'w') as f:
            f.write(conf)


def _authenticated(srv, jid, name):
    c = Client(srv, jid, USERS[jid], name=name)
    c.connect()
    c.open_stream()
    c.starttls()
    c.auth()
    return c


def _bind_error(c, resource):
    """Binds resource on c; returns the error condition (None on success)."""
    c.send("<iq type='set' id='b-%s'><bind xmlns='%s'><resource>%s</resource>"
           "</bind></iq>" % (resource, rt.NS_BIND, resource))
    el = c.recv()
    check(rt.tag(el) == 'iq' and el.get('id') == 'b-%s' % resource,
          'bind answered with %s' % rt.to_string(el))
    if el.get('type') == 'result':
        return None
    check(el.get('type') == 'error', 'bind answer %s' % rt.to_string(el))
    return rt.error_condition(el)


def max_resources(srv):
    """The (MAX+1)th resource of one account gets an iq error
    <resource-constraint/> at bind (RFC 6120 §7.6.2.1); when one of the
    MAX sessions ends, a new one binds."""
    sessions = []
    try:
        for i in range(MAX):
            sessions.append(Client(srv, 'alice@localhost',
                                   USERS['alice@localhost'],
                                   name='r%d' % i).login('r%d' % i))
        extra = _authenticated(srv, 'alice@localhost', 'extra')
        cond = _bind_error(extra, 'r%d' % MAX)
        check(cond == 'resource-constraint',
              'resource %d of %d: got %s' % (MAX + 1, MAX, cond or 'a result'))
        extra.close()
        # Another account has its own count.
        bob = Client(srv, 'bob@localhost', USERS['bob@localhost'],
                     name='bob').login('b0')
        bob.close()
        sessions.pop().close()
        time.sleep(0.3)
        again = _authenticated(srv, 'alice@localhost', 'again')
        sessions.append(again)
        check(_bind_error(again, 'r%d' % MAX) is None,
              'a freed slot was not given to a new resource')
    finally:
        for c in sessions:
            c.close()


def replace_does_not_count(srv):
    """With MAX resources online, binding one of their names replaces that
    session (it gets <conflict/>, RFC 6120 §7.7.2.2) instead of being
    refused."""
    sessions = []
    try:
        for i in range(MAX):
            sessions.append(Client(srv, 'alice@localhost',
                                   USERS['alice@localhost'],
                                   name='s%d' % i).login('s%d' % i))
        new = _authenticated(srv, 'alice@localhost', 'new')
        check(_bind_error(new, 's0') is None,
              'binding a resource in use was refused at the limit')
        cond = sessions[0].expect_stream_error()
        check(cond == 'conflict', 'the replaced session got <%s/>' % cond)
        sessions[0] = new
    finally:
        for c in sessions:
            c.close()


def main():
    passed, failed = rt.run_group(FewResourcesRoost, USERS,
                                  [max_resources, replace_does_not_count],
                                  'resources')
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
