#!/usr/bin/env python3
"""bench/report.py: turn bench/results-raw.tsv into bench/RESULTS.md.

Reads the RESULT lines compare.sh collected (one per scenario, server and
round, as key=value fields), takes the median over the rounds and writes
Markdown to stdout: per scenario the figures of each server and Roost's
ratio to each peer, plus the machine, the versions and the commands.
Only formatting: every number comes from bench/roostbench's output.
"""
import argparse
import os
import platform
import re
import shlex
import statistics
import subprocess
from collections import defaultdict

SERVERS = ('roost', 'prosody', 'ejabberd')
PEERS = ('prosody', 'ejabberd')
NAMES = {'roost': 'Roost', 'prosody': 'Prosody', 'ejabberd': 'ejabberd'}
# compare.sh tags that set a run apart from the untagged runs of the same
# scenario (set=idle15k: idle15k's idle runs; resume=1: login --resume):
# a selector matches a tagged row only when it names the tag
TAGS = ('set', 'resume')


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = {}
            for tok in shlex.split(line):
                if '=' in tok:
                    k, v = tok.split('=', 1)
                    row[k] = v
            # login --resume: the share of TLS logins that resumed a session
            res, full = num(row.get('tls_resumed')), num(row.get('tls_full'))
            if res is not None and full is not None and res + full > 0:
                row['tls_resumed_pct'] = '%.4f' % (100 * res / (res + full))
            rows.append(row)
    return rows


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class Table:
    """rows -> median of one field for (server, selector)."""

    def __init__(self, rows):
        self.rows = [r for r in rows if r.get('round') not in (None, '0')]

    def values(self, server, field, **sel):
        out = []
        for r in self.rows:
            if r.get('server') != server:
                continue
            if any(r.get(k) != v for k, v in sel.items()):
                continue
            if any(r.get(k) and k not in sel for k in TAGS):
                continue    # e.g. idle15k's idle runs: only their own table
            if r.get('status') == 'unsupported':
                return 'unsupported'
            x = num(r.get(field))
            if x is not None:
                out.append(x)
        return out

    def median(self, server, field, **sel):
        v = self.values(server, field, **sel)
        if v == 'unsupported':
            return 'n/a'
        return statistics.median(v) if v else None


def fmt(x, digits=3):
    if x is None:
        return '—'
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        return '%.0f' % x
    if abs(x) >= 100:
        return '%.1f' % x
    return ('%.' + str(digits) + 'g') % x if abs(x) < 1 else '%.2f' % x


def ratio(roost, peer):
    if not isinstance(roost, float) or not isinstance(peer, float) or peer == 0:
        return '—'
    return '%.3g' % (roost / peer)


def times(roost, peer, lower_better=True):
    """'23× less' style reading of a ratio."""
    if not isinstance(roost, float) or not isinstance(peer, float) or roost <= 0 or peer <= 0:
        return ''
    r = peer / roost if lower_better else roost / peer
    return ' (%s×)' % ('%.3g' % r)


def block(t, title, metrics, selectors, note=None):
    """metrics: (label, field, lower_better, transform); selectors: (label,
    dict) or (label, dict, extra metrics shown for that selector only)."""
    out = ['### ' + title, '']
    if note:
        out += [note, '']
    head = '| | ' + ' | '.join(NAMES[s] for s in SERVERS) + \
        ' | Roost / Prosody | Roost / ejabberd |'
    out += [head, '|' + '---|' * (len(SERVERS) + 3)]
    for sel_label, sel, *extra in selectors:
        for label, field, lower, tf in metrics + (extra[0] if extra else []):
            vals = {}
            for s in SERVERS:
                v = t.median(s, field, **sel)
                if tf is not None and isinstance(v, float):
                    v = tf(v)
                vals[s] = v
            name = (sel_label + ': ' if sel_label else '') + label
            cells = [fmt(vals[s]) for s in SERVERS]
            if lower is None:   # context, not a comparison
                rat = ['—' for p in PEERS]
            else:
                rat = [ratio(vals['roost'], vals[p]) + times(vals['roost'], vals[p], lower)
                       for p in PEERS]
            out.append('| %s | %s | %s |' % (name, ' | '.join(cells), ' | '.join(rat)))
    out.append('')
    return out


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''


def machine():
    cpu = sh("lscpu | sed -n 's/^Model name:[[:space:]]*//p'") or platform.processor()
    mem = sh("free -h | awk '/^Mem:/ {print $2}'")
    return ['| | |', '|---|---|',
            '| CPU | %s, %s cores (shared machine) |' % (cpu, os.cpu_count()),
            '| memory | %s |' % mem,
            '| kernel | %s |' % platform.release(),
            '| OS | %s |' % sh('. /etc/os-release && echo "$PRETTY_NAME"')]


def versions(build):
    git = sh('git -C %s rev-parse --short HEAD' % shlex.quote(os.path.dirname(
        os.path.abspath(__file__))))
    dirty = sh('git -C %s status --porcelain --untracked-files=no | head -1' %
               shlex.quote(os.path.dirname(os.path.abspath(__file__))))
    pkg = lambda p: sh("dpkg-query -W -f='${Version}' %s" % p) or 'not installed'
    return ['| | |', '|---|---|',
            '| Roost | commit %s%s, %s/roostd (configure defaults: -g -O2) |' % (
                git, ' plus the uncommitted changes of the working tree at the '
                'time of the report' if dirty else '', build),
            '| Prosody | %s (Debian), Lua 5.4, epoll backend |' % pkg('prosody'),
            '| ejabberd | %s (Debian), Erlang/OTP %s |' % (
                pkg('ejabberd'), pkg('erlang-base')),
            '| OpenSSL | %s |' % sh('openssl version'),
            '| libevent / expat | %s / %s |' % (pkg('libevent-2.1-7'), pkg('libexpat1'))]


def issue7_sections(t, rows):
    """The scenarios issue 7 added: roster login, offline delivery, MAM
    queries, idle sessions at scale.  Empty where the raw table has none."""
    L = []
    any_row = lambda **sel: next((r for r in t.rows if all(r.get(k) == v for k, v in sel.items())), {})
    have = lambda **sel: bool(any_row(**sel))

    def slope(server, field):
        """per-contact cost: (big roster - empty roster) / contacts"""
        big = any_row(scenario='rlogin', user='r0')
        k = num(big.get('roster_items'))
        b = t.median(server, field, scenario='rlogin', user='r0')
        z = [r.get('user') for r in t.rows if r.get('scenario') == 'rlogin' and r.get('user') != 'r0']
        e = t.median(server, field, scenario='rlogin', user=z[0]) if z else None
        if isinstance(b, float) and isinstance(e, float) and k:
            return (b - e) * 1000 / k     # ms -> us per contact
        return None

    if have(scenario='rlogin'):
        big = any_row(scenario='rlogin', user='r0')
        zero = next((r for r in t.rows if r.get('scenario') == 'rlogin' and r.get('user') != 'r0'), {})
        K = big.get('roster_items', '?')
        sels = [('%s contacts' % K, {'scenario': 'rlogin', 'user': 'r0'}),
                ('0 contacts', {'scenario': 'rlogin', 'user': zero.get('user', '?')})]
        L += block(t, 'Login with a %s-contact roster (issue 7, scenario rlogin)' % K, [
            ('server CPU ms per login', 'srv_ms_per_login', True, None),
            ('wall ms connect → roster result p50', 'login_p50_ms', True, None),
            ('wall ms roster get → result p50', 'roster_p50_ms', True, None),
            ('roster items received', 'roster_items', None, None),
        ], sels, note=(
            '%s logins of one account, one at a time: STARTTLS, SCRAM-SHA-1, bind, '
            'roster get, initial presence, close; the server\'s CPU is read until '
            'it is quiet after the last close, so the presence probes to the '
            'contacts are in it. The contacts are all **offline** (mutual '
            '"both" subscriptions, no sessions): the login pays the roster load '
            'and a probe per contact, no broadcast to online resources. The '
            '0-contact account is provisioned the same way.' % big.get('n', '?')))
        L += ['| per-contact slope ((K − 0) / K) | ' + ' | '.join(
            fmt(slope(s, 'srv_ms_per_login')) for s in SERVERS) +
            ' | — | — |',
            '', 'The slope row is µs of server CPU per roster contact per login.', '']

    if have(scenario='offline'):
        o = any_row(scenario='offline')
        L += block(t, 'Offline messages (issue 7, scenario offline)', [
            ('store: server CPU ms per message', 'store_srv_ms_per_msg', True, None),
            ('store: server CPU s for all', 'store_srv_cpu_s', True, None),
            ('delivery: presence → last message, ms', 'deliver_ms', True, None),
            ('delivery: server CPU s', 'deliver_srv_cpu_s', True, None),
            ('delivery: server CPU ms per message', 'deliver_srv_ms_per_msg', True, None),
        ], [('', {'scenario': 'offline'})], note=(
            '%s chat messages (~120-byte body) sent by one session, as fast as '
            'the socket takes them, to an account with no session; "store" is '
            'the server CPU from the first message until the server is quiet after '
            'answering a ping sent behind the last one (parsing and routing '
            'included, not only the storage). Then the account logs in (STARTTLS, '
            'SCRAM-SHA-1, bind, roster get, initial presence); "delivery" runs '
            'from its initial presence to the %s-th message, its CPU until the '
            'server is quiet.' % (o.get('n', '?'), o.get('n', '?'))))

    if have(scenario='mam'):
        fill = [r for r in rows if r.get('scenario') == 'mam' and r.get('phase') == 'fill']
        fv = {r['server']: r for r in fill}
        n = next((r.get('n') for r in fill), '?')
        L += block(t, 'MAM queries on a %s-message archive (issue 7, scenario mam)' % (
            '/'.join(sorted({r.get('n', '?') for r in fill}, key=lambda x: -int(x)))
            if fill else n), [
            ('server CPU ms per query', 'srv_ms_per_query', True, None),
            ('wall ms per query p50', 'wall_p50_ms', True, None),
            ('wall ms per query p90', 'wall_p90_ms', True, None),
            ('results per query (min)', 'min_results', None, None),
        ], [('last page', {'scenario': 'mam', 'phase': 'last'}),
            ('with=', {'scenario': 'mam', 'phase': 'with'}),
            ('start/end', {'scenario': 'mam', 'phase': 'window'})], note=(
            'The archive of m0 was filled once, at provisioning, with %s chat '
            'messages sent through the server by 10 correspondents m1..m10 (each '
            'archived for the sender and for m0), with each server\'s XEP-0313 '
            'module archiving everything (Roost mod_mam default_policy always, '
            'Prosody mod_mam default_archive_policy = true and '
            'archive_expires_after = "never", ejabberd mod_mam default: always, '
            'mnesia). Each round, %s queries of each kind, one at a time, by m0 '
            '(urn:xmpp:mam:2, RSM max 50): "last page": <before/> over the whole '
            'archive; "with=": the first page with m1 (1/10 of the archive); '
            '"start/end": the first page of the window from 40% to 60% of the '
            'archive\'s time span (whole seconds, at least 1 s wide).' % (
                n, any_row(scenario='mam', phase='last').get('queries', '?'))))
        if fv:
            L += ['Filling the archive (one run per server, at provisioning; a server '
                  'that had not archived them all when the fill timed out keeps what it '
                  'had): ' + '; '.join(
                      '%s %s messages in %s s wall, %s ms of server CPU per message' % (
                          NAMES[s], fv[s].get('n'), fv[s].get('wall_s'), fv[s].get('srv_ms_per_msg'))
                      for s in SERVERS if s in fv) + '.', '']

    # idle15k: rows tagged set=idle15k; untagged idle rows at two or more
    # sizes (a raw file of an idle15k-only run made before the tag)
    big = [r for r in t.rows if r.get('scenario') == 'idle' and r.get('set') == 'idle15k']
    tag = {'set': 'idle15k'} if big else {}
    if not big:
        big = [r for r in t.rows if r.get('scenario') == 'idle']
    ns = sorted({int(r['n']) for r in big if num(r.get('n'))})
    if len(ns) >= 2:
        sels = []
        for tls, tl in (('starttls', 'STARTTLS'), ('none', 'plain TCP')):
            for n in ns:
                sels.append(('%s, %d' % (tl, n),
                             dict(scenario='idle', tls=tls, n=str(n), **tag)))
        L += block(t, 'Idle sessions at %d (issue 7, scenario idle15k)' % ns[-1], [
            ('sessions up', 'ok', False, None),
            ('server RSS KiB per session', 'kib_per_session', True, None),
            ('server CPU ms per session set-up', 'srv_ms_per_session_setup', True, None),
            ('server CPU s while idle (hold)', 'srv_cpu_hold_s', True, None),
        ], sels, note=(
            'As scenario 2 (SCRAM-SHA-1, bind, roster get, initial presence; '
            'a freshly started server per run; RSS 2 s after the last session '
            'is up minus RSS before the first, divided by the sessions that came '
            'up), at %s sessions: flat per-session cost means the same KiB per '
            'session at both sizes.' % ' and '.join(str(n) for n in ns)))
    return L


def login_section(t):
    """Scenario 1, the login storm: one row set per TLS mode and mechanism."""
    # a row of the selector, tags (resume=1) matching as in Table.values
    any_row = lambda **sel: next((r for r in t.rows if all(r.get(k) == v for k, v in sel.items())
                                  and not any(r.get(k) and k not in sel for k in TAGS)), {})
    resumed = [('TLS logins that resumed a session, %', 'tls_resumed_pct', None, None)]
    variants = []
    for tls, tl in (('none', 'plain TCP'), ('starttls', 'STARTTLS')):
        for mech in ('PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256'):
            sel = {'scenario': 'login', 'tls': tls, 'mech': mech}
            variants.append(('%s, %s' % (tl, mech), sel))
            # compare.sh's TLSMODE/MECH/resume: roostbench login --resume
            variants.append(('%s, %s, resumed' % (tl, mech), dict(sel, resume='1'), resumed))
    variants = [v for v in variants if any_row(**v[1])]
    # the first login run that ran (not status=unsupported), for n and conc
    first = next((r for r in t.rows if r.get('scenario') == 'login' and r.get('n')), {})
    res_note = ''
    if any(len(v) > 2 for v in variants):
        res_note = (' "resumed": roostbench login --resume (compare.sh\'s '
                    'TLSMODE/MECH/resume variants): each account offers the newest '
                    'TLS session (ticket) it got on its previous login, as a client '
                    'with a session cache does, so each account\'s first login is a '
                    'full handshake; the share of logins that resumed is '
                    'tls_resumed / (tls_resumed + tls_full). A server that issues no '
                    'tickets, or does not accept them, shows 0 % and pays the full '
                    'handshake every time.')
    s256 = sorted({r['domain'] for r in t.rows
                   if r.get('scenario') == 'login' and r.get('domain')})
    if s256:
        where = ('Roost offers PLAIN only over TLS). Prosody and ejabberd store '
                 'one SCRAM hash per account and per host (SHA-1 on localhost): '
                 'their SCRAM-SHA-256 rows log in to the accounts of a second '
                 'host, %s, that stores SHA-256 (Prosody password_hash = '
                 '"SHA-256", ejabberd host_config auth_scram_hash: sha256), '
                 'registered the same way; Roost\'s to localhost\'s.' % ', '.join(s256))
    else:
        where = ('Roost offers PLAIN only over TLS; Prosody with hashed storage and '
                 'ejabberd with SCRAM storage offer only SCRAM-SHA-1).')
    return block(t, 'Login storm (scenario 1)', [
        ('server CPU ms per login', 'srv_ms_per_login', True, None),
        ('logins per server CPU second', 'srv_ms_per_login', False, lambda v: 1e3 / v if v else None),
        ('logins per wall second', 'logins_per_s', False, None),
        ('generator CPU ms per login', 'gen_ms_per_login', None, None),
    ], variants, note=(
        '%s logins per variant, %s at once, cycling over 100 accounts: connect, '
        '[STARTTLS,] SASL, resource bind (and <session/> where required), close '
        'the stream and wait for the server\'s close. n/a: the server does not '
        'offer that mechanism there (%s The client caches SaltedPassword per salt '
        '(RFC 5802 §5.1) so that PBKDF2 is paid by the server only where it must '
        'be (PLAIN against stored SCRAM credentials).%s' % (
            first.get('n', '?'), first.get('conc', '?'), where, res_note)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--raw', required=True)
    ap.add_argument('--commands')
    ap.add_argument('--provision-s', type=int, default=0)
    ap.add_argument('--rounds-s', type=int, default=0)
    ap.add_argument('--build', default='build')
    ap.add_argument('--new', action='store_true',
                    help='print only the sections of the issue 7 scenarios')
    a = ap.parse_args()
    rows = parse(a.raw)
    t = Table(rows)
    if a.new:
        rounds = sorted({r['round'] for r in t.rows})
        login = login_section(t) if any(r.get('scenario') == 'login' for r in t.rows) else []
        print('\n'.join(login + issue7_sections(t, rows) + [
            'Medians over %d round(s) (%s); raw lines: %s.' % (
                len(rounds), ', '.join(rounds), os.path.basename(a.raw)), '']))
        return
    rounds = sorted({r['round'] for r in t.rows})
    any_row = lambda **sel: next((r for r in t.rows if all(r.get(k) == v for k, v in sel.items())), {})

    L = ['# Roost vs Prosody vs ejabberd: bench/compare.sh results', '',
         'Generated by `bench/compare.sh` (bench/report.py) from %s; medians over %d '
         'interleaved rounds (%s). Raw per-round figures: `bench/results-raw.tsv`.'
         % (os.path.basename(a.raw), len(rounds), ', '.join(rounds)), '',
         'Ratios are **Roost ÷ peer** of the same median: below 1 means Roost '
         'spends less (CPU, memory, latency) or, for rates, achieves less. The '
         'figure in brackets reads the same ratio as "N× better" for Roost '
         '(below 1 when Roost is worse).', '',
         'Server CPU is user+system time of the server process (all threads) '
         'from /proc/PID/stat (10 ms ticks), RSS is VmRSS from /proc/PID/status. '
         'The load generator is bench/roostbench (C, libevent, OpenSSL, expat, one '
         'thread); its own CPU is shown beside the server\'s so that a run where '
         'the generator was the bottleneck shows as one. Both share the same 2 '
         'cores (and the machine with other work), so wall-clock rates are '
         'indicative; CPU per unit of work is the figure to compare. /proc/PID/stat '
         'counts in 10 ms ticks: a figure made of a small total carries that '
         'granularity (Roost\'s login storms used 0.06-0.5 s of CPU per variant '
         'at 300 logins, hence compare.sh\'s default of 3,000: read a figure of '
         'a few ticks to one significant digit).', '']

    def head(label, field, **sel):
        r = t.median('roost', field, **sel)
        cells = []
        for p in PEERS:
            v = t.median(p, field, **sel)
            if isinstance(r, float) and isinstance(v, float) and r > 0:
                cells.append('%s %.2g×' % (NAMES[p], v / r))
            else:
                cells.append('%s —' % NAMES[p])
        return '| %s | %s | %s |' % (label, fmt(r), ' | '.join(cells))

    L += ["## Summary: each peer's cost as a multiple of Roost's", '',
          '| server cost | Roost | vs Prosody | vs ejabberd |', '|---|---|---|---|',
          head('CPU s per 10k messages (saturated)', 'srv_s_per_10k', scenario='msg'),
          head('CPU s per 10k messages at 1000/s', 'srv_s_per_10k', scenario='rate'),
          head('message latency p99 ms at 1000/s', 'lat_p99_ms', scenario='rate'),
          head('CPU s per 10k presence notifications', 'srv_s_per_10k',
               scenario='fanout', phase='throughput'),
          head('presence to 150 contacts p50 ms', 'lat_p50_ms', scenario='fanout', phase='latency'),
          head('CPU ms per login, STARTTLS + SCRAM-SHA-1', 'srv_ms_per_login',
               scenario='login', tls='starttls', mech='SCRAM-SHA-1'),
          head('CPU ms per login, STARTTLS + SCRAM-SHA-256', 'srv_ms_per_login',
               scenario='login', tls='starttls', mech='SCRAM-SHA-256'),
          head('CPU ms per login, STARTTLS + SCRAM-SHA-256, TLS resumption offered',
               'srv_ms_per_login', scenario='login', tls='starttls',
               mech='SCRAM-SHA-256', resume='1'),
          head('CPU ms per login, STARTTLS + PLAIN', 'srv_ms_per_login',
               scenario='login', tls='starttls', mech='PLAIN'),
          head('RSS KiB per idle TLS session', 'kib_per_session', scenario='idle', tls='starttls'),
          head('RSS KiB per idle plain-TCP session', 'kib_per_session', scenario='idle', tls='none'),
          '', '"N×" is peer ÷ Roost: above 1, Roost spends N times less. Detail '
          'and the exact ratios below.', '']

    L += block(t, 'Saturated 1:1 messages (scenario 3)', [
        ('server CPU s per 10k delivered', 'srv_s_per_10k', True, None),
        ('messages per server CPU second', 'srv_s_per_10k', False, lambda v: 1e4 / v if v else None),
        ('messages per wall second', 'msgs_per_s', False, None),
        ('server CPU utilisation (cores)', 'srv_util', None, None),
        ('generator CPU s per 10k', 'gen_s_per_10k', None, None),
    ], [('', {'scenario': 'msg'})], note=(
        '%s pairs, each side keeping %s messages in flight and answering every '
        'delivered message with a new one (to the bare JID, type chat, ~120-byte '
        'body), over STARTTLS; %s s measured after a 1 s warm-up.' % (
            any_row(scenario='msg').get('pairs', '?'), any_row(scenario='msg').get('window', '?'),
            fmt(num(any_row(scenario='msg').get('wall_s'))))))

    L += block(t, 'Messages at a fixed offered rate (scenario 4)', [
        ('latency p50 ms', 'lat_p50_ms', True, None),
        ('latency p99 ms', 'lat_p99_ms', True, None),
        ('latency max ms', 'lat_max_ms', True, None),
        ('server CPU s per 10k', 'srv_s_per_10k', True, None),
        ('server CPU utilisation (cores)', 'srv_util', True, None),
        ('lost', 'lost', None, None),
    ], [('', {'scenario': 'rate'})], note=(
        '%s messages/s offered in all (a 1 ms timer, round robin over %s pairs), '
        'for %s s; latency is receive time minus the send timestamp carried in '
        'the body (same process clock).' % (
            any_row(scenario='rate').get('offered_per_s', '?'),
            any_row(scenario='rate').get('pairs', '?'),
            fmt(num(any_row(scenario='rate').get('wall_s'))))))

    L += block(t, 'Presence fan-out (scenario 5)', [
        ('time to reach all contacts p50 ms', 'lat_p50_ms', True, None),
        ('time to reach all contacts p99 ms', 'lat_p99_ms', True, None),
        ('server CPU s per 10k notifications', 'srv_s_per_10k', True, None),
        ('notifications per server CPU second', 'srv_s_per_10k', False,
         lambda v: 1e4 / v if v else None),
        ('notifications per wall second', 'notif_per_s', False, None),
        ('generator CPU s per 10k', 'gen_s_per_10k', None, None),
    ], [('one at a time', {'scenario': 'fanout', 'phase': 'latency'}),
        ('%s in flight' % any_row(scenario='fanout', phase='throughput').get('conc', '?'),
         {'scenario': 'fanout', 'phase': 'throughput'})], note=(
        '%s users online, each with %s contacts (mutual subscriptions, ring '
        'neighbours); an update is a <presence> with a numbered <status>, '
        'complete when all %s contacts have it. First %s updates one at a time '
        '(latency), then %s with several in flight (throughput).' % (
            any_row(scenario='fanout').get('users', '?'), any_row(scenario='fanout').get('contacts', '?'),
            any_row(scenario='fanout').get('contacts', '?'),
            any_row(scenario='fanout', phase='latency').get('updates', '?'),
            any_row(scenario='fanout', phase='throughput').get('updates', '?'))))

    L += login_section(t)

    L += block(t, 'Idle authenticated sessions (scenario 2)', [
        ('server RSS KiB per session', 'kib_per_session', True, None),
        ('server CPU ms per session set-up', 'srv_ms_per_session_setup', True, None),
        ('server CPU s while idle (hold)', 'srv_cpu_hold_s', True, None),
    ], [('STARTTLS', {'scenario': 'idle', 'tls': 'starttls'}),
        ('plain TCP', {'scenario': 'idle', 'tls': 'none'})], note=(
        '%s sessions (one account each: SCRAM-SHA-1, bind, roster get, initial '
        'presence) opened on a freshly started server; RSS per session is '
        '(RSS %s s after the last one is up − RSS before the first) / N. Then '
        '%s s of idleness.' % (
            any_row(scenario='idle').get('n', '?'), '2',
            fmt(num(any_row(scenario='idle').get('hold_s'))))))

    ref = [('server CPU s per 10k messages', 3.72, 0.64,
            t.median('prosody', 'srv_s_per_10k', scenario='msg'),
            t.median('ejabberd', 'srv_s_per_10k', scenario='msg')),
           ('server CPU s per 10k fan-out notifications', 1.03, 0.22,
            t.median('prosody', 'srv_s_per_10k', scenario='fanout', phase='throughput'),
            t.median('ejabberd', 'srv_s_per_10k', scenario='fanout', phase='throughput')),
           ('login, plain TCP + PLAIN, server CPU ms', 3.3, 0.82,
            t.median('prosody', 'srv_ms_per_login', scenario='login', tls='none', mech='PLAIN'),
            t.median('ejabberd', 'srv_ms_per_login', scenario='login', tls='none', mech='PLAIN')),
           ('RSS KiB per idle session (plain TCP / TLS)', '35-48', '42-68',
            '%s / %s' % (fmt(t.median('prosody', 'kib_per_session', scenario='idle', tls='none')),
                         fmt(t.median('prosody', 'kib_per_session', scenario='idle', tls='starttls'))),
            '%s / %s' % (fmt(t.median('ejabberd', 'kib_per_session', scenario='idle', tls='none')),
                         fmt(t.median('ejabberd', 'kib_per_session', scenario='idle', tls='starttls'))))]
    L += ['### The peers against issue 7\'s reference table', '',
          'Issue 7 quotes figures from an earlier run of another tool; the peers\' '
          'figures here, for orientation. Differences in method: that tool\'s '
          'message and fan-out runs are not known to be saturated (a less loaded '
          'Prosody spends more CPU per message: see the fixed-rate table), and its '
          '0.82 ms ejabberd PLAIN login suggests plain password storage, while here '
          'ejabberd stores SCRAM credentials (Debian\'s default) and so pays PBKDF2 '
          'on every PLAIN login.', '',
          '| | Prosody (reference) | Prosody (here) | ejabberd (reference) | ejabberd (here) |',
          '|---|---|---|---|---|']
    for label, rp, re_, hp, he in ref:
        L.append('| %s | %s | %s | %s | %s |' % (label, rp, fmt(hp), re_, fmt(he)))
    L.append('')

    L += issue7_sections(t, rows)

    L += ['## How this was run', '',
          'Machine:', ''] + machine() + ['', 'Versions:', ''] + versions(a.build) + [
          '',
          'Configs: `bench/roost.conf.in`, `bench/prosody.cfg.lua.in`, '
          '`bench/ejabberd.yml.in` (each file says how it differs from the '
          'server\'s defaults), all on 127.0.0.1 with one self-signed ECDSA P-256 '
          'certificate, log level warn, no s2s. Provisioning: XEP-0077 in-band '
          'registration for every account on every server; the fan-out rosters '
          'through the protocol (subscribe/subscribed, `roostbench roster`) for '
          'Roost and ejabberd, and written as Prosody roster files (its internal '
          'storage format) for Prosody, which takes many minutes to make them '
          'through the protocol.', '',
          'Time: provisioning %d s, %d rounds %d s.' % (a.provision_s, len(rounds), a.rounds_s), '',
          'Reproduce: build Roost (`./configure && make`), then '
          '`BUILD=$PWD/build bench/compare.sh`. Scale knobs are listed at the top '
          'of bench/compare.sh. The roostbench commands of the run (PID and ports '
          'vary):', '', '```']
    if a.commands and os.path.exists(a.commands):
        seen = set()
        with open(a.commands) as f:
            for line in f:
                key = re.sub(r'--port \d+', '--port P', line.split('#')[0]).strip()
                if key not in seen:
                    seen.add(key)
                    L.append(key)
    L += ['```', '']
    print('\n'.join(L))


if __name__ == '__main__':
    main()
