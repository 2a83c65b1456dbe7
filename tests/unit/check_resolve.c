/* tests/unit/check_resolve.c: core/resolve.c against a real DNS server.
 *
 * main() starts dnsmasq (Debian dnsmasq-base, installed by quickstart.sh
 * TEST_DEPS) on a free loopback port with the zone below, and kills it by
 * PID at the end; without dnsmasq the program fails with a message and
 * installs nothing.  A "black hole" (a UDP socket nobody reads) stands in
 * for a DNS server that never answers.
 *
 * Covers: RFC 2782 ordering (priority, weights, zero weights), the
 * XEP-0368 merge of _xmpps-server and _xmpp-server records, the "." target
 * (RFC 6120 3.2.1) for each service, the A/AAAA fallback on 5269 (RFC
 * 6120 3.2.2), IPv6-first address order, NXDOMAIN, targets without
 * addresses, IP-literal domains, static routes (before DNS, /etc/hosts for
 * their host), the lookup timeout while the loop keeps running, cancel (no
 * callback, before and after the answer is in), freeing the resolver with
 * lookups pending or from a done callback, many concurrent lookups, the
 * host:port parser and argument checks. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <roost/common.h>

#include "log.h"
#include "resolve.h"

/* The zone dnsmasq serves (--local=/test/: anything else under .test is
 * NXDOMAIN). */
static const char *const zone[] = {
    /* order.test: priorities 5 < 10 < 20; weights 90/10 at 10 */
    "--srv-host=_xmpp-server._tcp.order.test,first.order.test,5301,5,0",
    "--srv-host=_xmpp-server._tcp.order.test,a.order.test,5302,10,90",
    "--srv-host=_xmpp-server._tcp.order.test,b.order.test,5303,10,10",
    "--srv-host=_xmpp-server._tcp.order.test,last.order.test,5304,20,0",
    "--host-record=first.order.test,192.0.2.1",
    "--host-record=a.order.test,192.0.2.2",
    "--host-record=b.order.test,192.0.2.3",
    "--host-record=last.order.test,192.0.2.4,2001:db8::4",
    /* zero.test: weight 0 against weight 100 at the same priority */
    "--srv-host=_xmpp-server._tcp.zero.test,z.zero.test,5305,10,0",
    "--srv-host=_xmpp-server._tcp.zero.test,nz.zero.test,5306,10,100",
    "--host-record=z.zero.test,192.0.2.5",
    "--host-record=nz.zero.test,192.0.2.6",
    /* mix.test: xmpps and xmpp records interleaved by priority */
    "--srv-host=_xmpps-server._tcp.mix.test,tls.mix.test,5223,5,10",
    "--srv-host=_xmpp-server._tcp.mix.test,plain.mix.test,5269,10,10",
    "--srv-host=_xmpps-server._tcp.mix.test,tls2.mix.test,443,20,10",
    "--host-record=tls.mix.test,192.0.2.10",
    "--host-record=plain.mix.test,192.0.2.11",
    "--host-record=tls2.mix.test,192.0.2.12",
    /* mix2.test: one of each at the same priority and weight */
    "--srv-host=_xmpps-server._tcp.mix2.test,s.mix2.test,5223,10,50",
    "--srv-host=_xmpp-server._tcp.mix2.test,p.mix2.test,5269,10,50",
    "--host-record=s.mix2.test,192.0.2.13",
    "--host-record=p.mix2.test,192.0.2.14",
    /* dot.test: "." for xmpp-server; its A record must not be used */
    "--srv-host=_xmpp-server._tcp.dot.test",
    "--host-record=dot.test,192.0.2.50",
    /* tlsdot.test: "." for xmpps-server only, an xmpp-server record */
    "--srv-host=_xmpps-server._tcp.tlsdot.test",
    "--srv-host=_xmpp-server._tcp.tlsdot.test,in.tlsdot.test,5270,0,0",
    "--host-record=in.tlsdot.test,192.0.2.51",
    /* tlsdot2.test: "." for xmpps-server, no xmpp-server, an A record */
    "--srv-host=_xmpps-server._tcp.tlsdot2.test",
    "--host-record=tlsdot2.test,192.0.2.52",
    /* plain.test: no SRV at all, A and AAAA */
    "--host-record=plain.test,192.0.2.9,2001:db8::9",
    /* ghost.test: the first target has no address */
    "--srv-host=_xmpp-server._tcp.ghost.test,none.ghost.test,5401,1,0",
    "--srv-host=_xmpp-server._tcp.ghost.test,ok.ghost.test,5402,2,0",
    "--host-record=ok.ghost.test,192.0.2.60",
    /* routed.test: has DNS, but a static route wins */
    "--host-record=routed.test,192.0.2.70",
};

static pid_t dns_pid = -1;
static int dns_port;
static char dns_dir[64];
static char servers[64];      /* "127.0.0.1:<dns_port>" */
static char hole_servers[64]; /* the black hole */
static int hole_fd = -1;

static struct event_base *base;
static roost_resolver_t *res;

/* --- the DNS server --- */

static char *
find_dnsmasq(void)
{
    const char *env = getenv("DNSMASQ");
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin",
                                       "/usr/local/sbin"};
    static char path[256];
    size_t i;

    if (env != NULL && access(env, X_OK) == 0)
        return (char *)env;
    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/dnsmasq", dirs[i]);
        if (access(path, X_OK) == 0)
            return path;
    }
    return NULL;
}

/* A UDP socket bound to a free loopback port; returns the fd. */
static int
udp_bound(int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        perror("check_resolve: udp socket");
        exit(EXIT_FAILURE);
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Whether something holds UDP port on 127.0.0.1 (dnsmasq is up). */
static int
udp_port_taken(int port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_DGRAM, 0), taken;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    taken = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 &&
            errno == EADDRINUSE;
    close(fd);
    return taken;
}

static void
dns_stop(void)
{
    char path[128];

    if (dns_pid > 0) {
        kill(dns_pid, SIGTERM);
        waitpid(dns_pid, NULL, 0);
        dns_pid = -1;
    }
    if (dns_dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/dnsmasq.pid", dns_dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/dnsmasq.log", dns_dir);
        unlink(path);
        rmdir(dns_dir);
        dns_dir[0] = '\0';
    }
}

static int
dns_start(const char *dnsmasq)
{
    char a_port[32], a_pid[128], logpath[128], a_user[128], a_group[128];
    struct passwd *pw;
    struct group *gr;
    const char *argv[64];
    size_t i, n = 0;
    int fd, tries;

    snprintf(dns_dir, sizeof(dns_dir), "/tmp/check_resolve.XXXXXX");
    if (mkdtemp(dns_dir) == NULL) {
        perror("check_resolve: mkdtemp");
        return -1;
    }
    fd = udp_bound(&dns_port);
    close(fd); /* dnsmasq binds it next (a small race, retried below) */
    snprintf(a_port, sizeof(a_port), "--port=%d", dns_port);
    snprintf(a_pid, sizeof(a_pid), "--pid-file=%s/dnsmasq.pid", dns_dir);
    snprintf(logpath, sizeof(logpath), "%s/dnsmasq.log", dns_dir);
    argv[n++] = dnsmasq;
    argv[n++] = "--no-daemon";
    argv[n++] = "--conf-file=/dev/null";
    argv[n++] = a_port;
    argv[n++] = a_pid;
    argv[n++] = "--listen-address=127.0.0.1";
    argv[n++] = "--bind-interfaces";
    argv[n++] = "--no-resolv";
    argv[n++] = "--no-hosts";
    argv[n++] = "--local=/test/";
    /* Stay as whoever we are: a change of user or group would clear the
     * parent-death signal set below. */
    pw = getpwuid(geteuid());
    gr = getgrgid(getegid());
    if (pw != NULL && gr != NULL) {
        snprintf(a_user, sizeof(a_user), "--user=%s", pw->pw_name);
        snprintf(a_group, sizeof(a_group), "--group=%s", gr->gr_name);
        argv[n++] = a_user;
        argv[n++] = a_group;
    }
    for (i = 0; i < sizeof(zone) / sizeof(zone[0]); i++)
        argv[n++] = zone[i];
    argv[n] = NULL;

    dns_pid = fork();
    if (dns_pid < 0)
        return -1;
    if (dns_pid == 0) {
        int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (lfd >= 0) {
            dup2(lfd, 1);
            dup2(lfd, 2);
        }
        /* dnsmasq ends with us, even if we crash. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execv(dnsmasq, (char *const *)argv);
        _exit(127);
    }
    for (tries = 0; tries < 500; tries++) {
        int st;

        if (udp_port_taken(dns_port))
            break;
        if (waitpid(dns_pid, &st, WNOHANG) == dns_pid) {
            fprintf(stderr, "check_resolve: dnsmasq exited (see %s)\n",
                    logpath);
            dns_pid = -1;
            return -1;
        }
        usleep(10000);
    }
    if (tries == 500) {
        fprintf(stderr, "check_resolve: dnsmasq did not bind port %d\n",
                dns_port);
        return -1;
    }
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", dns_port);
    return 0;
}

/* --- the loop --- */

typedef struct {
    int called;
    int err;
    int n;
    roost_target_t *t; /* a copy */
    struct timeval when;
    int *counter; /* incremented on each call, if set */
} result_t;

static void
on_done(void *arg, const roost_target_t *targets, int n, int err)
{
    result_t *rs = arg;

    rs->called++;
    rs->err = err;
    rs->n = n;
    ck_assert(err == 0 ? (n >= 1 && targets != NULL)
                       : (n == 0 && targets == NULL));
    roost_resolve_targets_free(rs->t, rs->n);
    rs->t = roost_resolve_targets_copy(targets, n);
    gettimeofday(&rs->when, NULL);
    if (rs->counter != NULL)
        (*rs->counter)++;
}

static void
result_clear(result_t *rs)
{
    roost_resolve_targets_free(rs->t, rs->n);
    memset(rs, 0, sizeof(*rs));
}

static long
ms_since(const struct timeval *t0)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (now.tv_sec - t0->tv_sec) * 1000L +
           (now.tv_usec - t0->tv_usec) / 1000L;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (*(int *)arg)++;
}

/* Runs the loop until *count reaches want or ms pass.  Returns the ticks
 * of a 20 ms timer seen meanwhile (the loop was not blocked). */
static int
run_until(const int *count, int want, int ms)
{
    struct timeval t0, iv = {0, 20000};
    int ticks = 0;
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, &ticks);

    event_add(tick, &iv);
    gettimeofday(&t0, NULL);
    while ((count == NULL || *count < want) && ms_since(&t0) < ms)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return ticks;
}

static void
setup_with(const char *srv)
{
    roost_resolver_conf_t conf = {.servers = srv, .query_timeout_ms = 500};

    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    ck_assert_int_eq(roost_resolver_new(base, &conf, &res), 0);
}

static void
setup(void)
{
    setup_with(servers);
}

static void
setup_hole(void)
{
    setup_with(hole_servers);
}

static void
teardown(void)
{
    roost_resolver_free(res);
    res = NULL;
    event_base_free(base);
    base = NULL;
}

/* Resolves domain and waits for the answer (at most 5 s). */
static void
resolve(const char *domain, const roost_resolve_opts_t *opts, result_t *rs)
{
    memset(rs, 0, sizeof(*rs));
    ck_assert_int_eq(roost_resolve_server(res, domain, opts, on_done, rs, NULL),
                     0);
    run_until(&rs->called, 1, 5000);
    ck_assert_int_eq(rs->called, 1);
}

static const char *
addr_str(const roost_target_addr_t *a, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->sa;

        ck_assert_int_eq(a->len, sizeof(*s));
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(s->sin6_port));
    } else {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&a->sa;

        ck_assert_int_eq(a->sa.ss_family, AF_INET);
        ck_assert_int_eq(a->len, sizeof(*s));
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(s->sin_port));
    }
    return buf;
}

static void
assert_target(const roost_target_t *t, const char *host, int port, int tls,
              roost_target_src_t src, const char *addr0)
{
    char buf[64];

    ck_assert_str_eq(t->host, host);
    ck_assert_int_eq(t->port, port);
    ck_assert_int_eq(t->direct_tls, tls);
    ck_assert_int_eq(t->src, src);
    ck_assert_uint_ge(t->naddrs, 1);
    ck_assert_str_eq(addr_str(&t->addrs[0], buf, sizeof(buf)), addr0);
}

/* --- SRV ordering --- */

#define N_WEIGHT 400

static result_t wres[N_WEIGHT];

/* RFC 2782: priorities strictly ordered; weights 90/10 shape the order
 * within priority 10 (N_WEIGHT concurrent lookups).  dnsmasq rotates the
 * records it returns, so an order that ignored weights would put each
 * first about half the time. */
START_TEST(test_srv_priority_weight)
{
    int i, done = 0, a_first = 0;

    for (i = 0; i < N_WEIGHT; i++) {
        memset(&wres[i], 0, sizeof(wres[i]));
        wres[i].counter = &done;
        ck_assert_int_eq(roost_resolve_server(res, "order.test", NULL, on_done,
                                              &wres[i], NULL),
                         0);
    }
    ck_assert_int_eq(roost_resolver_pending(res), N_WEIGHT);
    run_until(&done, N_WEIGHT, 20000);
    ck_assert_int_eq(done, N_WEIGHT);
    ck_assert_int_eq(roost_resolver_pending(res), 0);
    for (i = 0; i < N_WEIGHT; i++) {
        roost_target_t *t = wres[i].t;

        ck_assert_int_eq(wres[i].called, 1);
        ck_assert_int_eq(wres[i].err, 0);
        ck_assert_int_eq(wres[i].n, 4);
        assert_target(&t[0], "first.order.test", 5301, 0, ROOST_TARGET_SRV,
                      "192.0.2.1:5301");
        ck_assert_int_eq(t[0].priority, 5);
        if (strcmp(t[1].host, "a.order.test") == 0) {
            a_first++;
            assert_target(&t[1], "a.order.test", 5302, 0, ROOST_TARGET_SRV,
                          "192.0.2.2:5302");
            assert_target(&t[2], "b.order.test", 5303, 0, ROOST_TARGET_SRV,
                          "192.0.2.3:5303");
        } else {
            assert_target(&t[1], "b.order.test", 5303, 0, ROOST_TARGET_SRV,
                          "192.0.2.3:5303");
            assert_target(&t[2], "a.order.test", 5302, 0, ROOST_TARGET_SRV,
                          "192.0.2.2:5302");
        }
        ck_assert_int_eq(t[1].weight + t[2].weight, 100);
        /* IPv6 first, then IPv4 */
        assert_target(&t[3], "last.order.test", 5304, 0, ROOST_TARGET_SRV,
                      "[2001:db8::4]:5304");
        ck_assert_uint_eq(t[3].naddrs, 2);
        result_clear(&wres[i]);
    }
    /* Expected 360 (p = 0.9), sd 6: 320..390 is 5 sd or more. */
    ck_assert_msg(a_first >= 320 && a_first <= 390,
                  "weight 90 first in %d of %d lookups", a_first, N_WEIGHT);
}
END_TEST

/* RFC 2782: a weight-0 record has a very small chance to come first
 * (1 in 101 against weight 100). */
START_TEST(test_srv_zero_weight)
{
    int i, done = 0, z_first = 0;

    for (i = 0; i < N_WEIGHT; i++) {
        memset(&wres[i], 0, sizeof(wres[i]));
        wres[i].counter = &done;
        ck_assert_int_eq(roost_resolve_server(res, "zero.test", NULL, on_done,
                                              &wres[i], NULL),
                         0);
    }
    run_until(&done, N_WEIGHT, 20000);
    ck_assert_int_eq(done, N_WEIGHT);
    for (i = 0; i < N_WEIGHT; i++) {
        ck_assert_int_eq(wres[i].n, 2);
        z_first += strcmp(wres[i].t[0].host, "z.zero.test") == 0;
        result_clear(&wres[i]);
    }
    ck_assert_msg(z_first < 25, "weight 0 first in %d of %d lookups", z_first,
                  N_WEIGHT);
}
END_TEST

/* XEP-0368: xmpps and xmpp records ordered as one set; direct_tls marks
 * the xmpps ones. */
START_TEST(test_srv_xmpps_merge)
{
    result_t rs;

    resolve("mix.test", NULL, &rs);
    ck_assert_int_eq(rs.err, 0);
    ck_assert_int_eq(rs.n, 3);
    assert_target(&rs.t[0], "tls.mix.test", 5223, 1, ROOST_TARGET_SRV,
                  "192.0.2.10:5223");
    assert_target(&rs.t[1], "plain.mix.test", 5269, 0, ROOST_TARGET_SRV,
                  "192.0.2.11:5269");
    assert_target(&rs.t[2], "tls2.mix.test", 443, 1, ROOST_TARGET_SRV,
                  "192.0.2.12:443");
    result_clear(&rs);
}
END_TEST

/* XEP-0368 rule 1: no preference of ours between xmpps and xmpp at the
 * same priority and weight: each comes first about half the time. */
START_TEST(test_srv_xmpps_mixed_weights)
{
    int i, done = 0, s_first = 0;

    for (i = 0; i < 200; i++) {
        memset(&wres[i], 0, sizeof(wres[i]));
        wres[i].counter = &done;
        ck_assert_int_eq(roost_resolve_server(res, "mix2.test", NULL, on_done,
                                              &wres[i], NULL),
                         0);
    }
    run_until(&done, 200, 20000);
    ck_assert_int_eq(done, 200);
    for (i = 0; i < 200; i++) {
        ck_assert_int_eq(wres[i].n, 2);
        if (strcmp(wres[i].t[0].host, "s.mix2.test") == 0) {
            s_first++;
            ck_assert_int_eq(wres[i].t[0].direct_tls, 1);
            ck_assert_int_eq(wres[i].t[1].direct_tls, 0);
        } else {
            ck_assert_str_eq(wres[i].t[0].host, "p.mix2.test");
            ck_assert_int_eq(wres[i].t[0].direct_tls, 0);
            ck_assert_int_eq(wres[i].t[1].direct_tls, 1);
        }
        result_clear(&wres[i]);
    }
    /* Expected 100, sd ~7. */
    ck_assert_msg(s_first >= 60 && s_first <= 140, "xmpps first %d of 200",
                  s_first);
}
END_TEST

/* --- ".", fallback, failures --- */

/* RFC 6120 3.2.1: "." for xmpp-server: decidedly not available, no
 * fallback to the domain's A record. */
START_TEST(test_dot_target)
{
    result_t rs;

    resolve("dot.test", NULL, &rs);
    ck_assert_int_eq(rs.err, -ROOST_EDENIED);
    ck_assert_int_eq(rs.n, 0);
    result_clear(&rs);
}
END_TEST

/* XEP-0368: "." for xmpps-server only means no direct TLS: the
 * xmpp-server records are used. */
START_TEST(test_dot_xmpps_only)
{
    result_t rs;

    resolve("tlsdot.test", NULL, &rs);
    ck_assert_int_eq(rs.err, 0);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "in.tlsdot.test", 5270, 0, ROOST_TARGET_SRV,
                  "192.0.2.51:5270");
    result_clear(&rs);
}
END_TEST

/* XEP-0368: "." for xmpps-server and no xmpp-server records: no A/AAAA
 * fallback. */
START_TEST(test_dot_xmpps_no_fallback)
{
    result_t rs;

    resolve("tlsdot2.test", NULL, &rs);
    ck_assert_int_eq(rs.err, -ROOST_EDENIED);
    result_clear(&rs);
}
END_TEST

/* RFC 6120 3.2.2: no SRV records: the domain itself on 5269, AAAA first. */
START_TEST(test_fallback)
{
    result_t rs;
    char buf[64];

    resolve("plain.test", NULL, &rs);
    ck_assert_int_eq(rs.err, 0);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "plain.test", 5269, 0, ROOST_TARGET_FALLBACK,
                  "[2001:db8::9]:5269");
    ck_assert_uint_eq(rs.t[0].naddrs, 2);
    ck_assert_str_eq(addr_str(&rs.t[0].addrs[1], buf, sizeof(buf)),
                     "192.0.2.9:5269");
    result_clear(&rs);
}
END_TEST

START_TEST(test_nxdomain)
{
    result_t rs;

    resolve("nx.test", NULL, &rs);
    ck_assert_int_eq(rs.err, -ROOST_ENOTFOUND);
    ck_assert_int_eq(rs.n, 0);
    result_clear(&rs);
}
END_TEST

/* A target without addresses is left out; the next one stays. */
START_TEST(test_target_without_address)
{
    result_t rs;

    resolve("ghost.test", NULL, &rs);
    ck_assert_int_eq(rs.err, 0);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "ok.ghost.test", 5402, 0, ROOST_TARGET_SRV,
                  "192.0.2.60:5402");
    result_clear(&rs);
}
END_TEST

/* --- routes and literals --- */

static const roost_resolve_route_t routes[] = {
    {"other.test", "192.0.2.99", 7000, 0},
    {"ROUTED.test", "[2001:db8::70]", 5999, 1},
    {"order.test", "127.0.0.1", 0, 0},
    {"local.test", "localhost", 6001, 0},
};

/* A static route is checked before DNS (routed.test and order.test have
 * DNS records); matching is case-insensitive; port 0 means 5269. */
START_TEST(test_static_route)
{
    roost_resolve_opts_t opts = {routes, 4, 0};
    result_t rs;

    resolve("routed.test", &opts, &rs);
    ck_assert_int_eq(rs.err, 0);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "[2001:db8::70]", 5999, 1, ROOST_TARGET_ROUTE,
                  "[2001:db8::70]:5999");
    result_clear(&rs);

    resolve("order.test", &opts, &rs);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "127.0.0.1", 5269, 0, ROOST_TARGET_ROUTE,
                  "127.0.0.1:5269");
    result_clear(&rs);

    /* Without the routes, DNS answers. */
    resolve("routed.test", NULL, &rs);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "routed.test", 5269, 0, ROOST_TARGET_FALLBACK,
                  "192.0.2.70:5269");
    result_clear(&rs);
}
END_TEST

/* A route's host name is resolved with /etc/hosts: works with a DNS
 * server that never answers. */
START_TEST(test_route_hosts_file)
{
    roost_resolve_opts_t opts = {routes, 4, 3000};
    result_t rs;
    size_t i;
    int found = 0;
    char buf[64];

    resolve("local.test", &opts, &rs);
    ck_assert_int_eq(rs.err, 0);
    ck_assert_int_eq(rs.n, 1);
    ck_assert_str_eq(rs.t[0].host, "localhost");
    for (i = 0; i < rs.t[0].naddrs; i++)
        found += strcmp(addr_str(&rs.t[0].addrs[i], buf, sizeof(buf)),
                        "127.0.0.1:6001") == 0;
    ck_assert_int_eq(found, 1);
    result_clear(&rs);
}
END_TEST

/* Finds in /etc/hosts a name other than localhost* and its address
 * (printed as addr_str would, with port 6002).  Returns 0 if none. */
static int
hosts_entry(char *name, size_t nsize, char *want, size_t wsize)
{
    FILE *f = fopen("/etc/hosts", "r");
    char line[512], ip[128], host[256];
    unsigned char bin[16];

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, " %127s %255s", ip, host) != 2 || ip[0] == '#' ||
            strncmp(host, "localhost", 9) == 0 || strchr(host, '#') != NULL)
            continue;
        if (inet_pton(AF_INET, ip, bin) == 1)
            snprintf(want, wsize, "%s:6002", ip);
        else if (inet_pton(AF_INET6, ip, bin) == 1)
            snprintf(want, wsize, "[%s]:6002", ip);
        else
            continue;
        snprintf(name, nsize, "%s", host);
        fclose(f);
        return 1;
    }
    fclose(f);
    return 0;
}

/* The same with a name only /etc/hosts knows (when it has one besides
 * localhost): the DNS server never answers. */
START_TEST(test_route_hosts_file_name)
{
    char name[256], want[160], buf[64];
    roost_resolve_route_t rt = {"hosts.test", name, 6002, 0};
    roost_resolve_opts_t opts = {&rt, 1, 3000};
    result_t rs;
    size_t i;
    int found = 0;

    if (!hosts_entry(name, sizeof(name), want, sizeof(want)))
        return; /* nothing to look up */
    resolve("hosts.test", &opts, &rs);
    ck_assert_msg(rs.err == 0, "%s from /etc/hosts: %d", name, rs.err);
    for (i = 0; i < rs.t[0].naddrs; i++)
        found +=
            strcmp(addr_str(&rs.t[0].addrs[i], buf, sizeof(buf)), want) == 0;
    ck_assert_msg(found == 1, "%s: %s not among the addresses", name, want);
    result_clear(&rs);
}
END_TEST

/* An IP-literal domain: that address on 5269, without DNS. */
START_TEST(test_literal_domain)
{
    result_t rs;

    resolve("192.0.2.77", NULL, &rs);
    ck_assert_int_eq(rs.err, 0);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "192.0.2.77", 5269, 0, ROOST_TARGET_LITERAL,
                  "192.0.2.77:5269");
    result_clear(&rs);
    resolve("[2001:db8::7]", NULL, &rs);
    ck_assert_int_eq(rs.n, 1);
    assert_target(&rs.t[0], "[2001:db8::7]", 5269, 0, ROOST_TARGET_LITERAL,
                  "[2001:db8::7]:5269");
    result_clear(&rs);
}
END_TEST

/* --- timeout and cancel --- */

/* A server that never answers: the lookup ends at its timeout with
 * -ROOST_EAGAIN, and the loop keeps running meanwhile. */
START_TEST(test_timeout)
{
    roost_resolve_opts_t opts = {NULL, 0, 300};
    result_t rs;
    struct timeval t0;
    long ms;
    int ticks;

    memset(&rs, 0, sizeof(rs));
    gettimeofday(&t0, NULL);
    ck_assert_int_eq(
        roost_resolve_server(res, "order.test", &opts, on_done, &rs, NULL), 0);
    ticks = run_until(&rs.called, 1, 5000);
    ms = ms_since(&t0);
    ck_assert_int_eq(rs.called, 1);
    ck_assert_int_eq(rs.err, -ROOST_EAGAIN);
    ck_assert_msg(ms >= 290 && ms < 1500, "timed out after %ld ms", ms);
    ck_assert_msg(ticks >= 8, "only %d ticks of 20 ms in %ld ms", ticks, ms);
    result_clear(&rs);
}
END_TEST

/* Cancelled before the answer: no callback, ever. */
START_TEST(test_cancel)
{
    result_t rs, other;
    roost_resolve_t *q;
    int done = 0;

    memset(&rs, 0, sizeof(rs));
    memset(&other, 0, sizeof(other));
    other.counter = &done;
    ck_assert_int_eq(
        roost_resolve_server(res, "order.test", NULL, on_done, &rs, &q), 0);
    ck_assert_int_eq(
        roost_resolve_server(res, "mix.test", NULL, on_done, &other, NULL), 0);
    ck_assert_int_eq(roost_resolver_pending(res), 2);
    roost_resolve_cancel(q);
    ck_assert_int_eq(roost_resolver_pending(res), 1);
    run_until(&done, 1, 5000);
    ck_assert_int_eq(other.called, 1);
    ck_assert_int_eq(other.n, 3);
    /* the cancelled lookup's answers arrive meanwhile: still nothing */
    run_until(NULL, 0, 300);
    ck_assert_int_eq(rs.called, 0);
    ck_assert_int_eq(roost_resolver_pending(res), 0);
    result_clear(&other);
}
END_TEST

/* Cancelled when the result is already waiting for the next loop turn
 * (a literal resolves at once): no callback. */
START_TEST(test_cancel_ready)
{
    result_t rs;
    roost_resolve_t *q;

    memset(&rs, 0, sizeof(rs));
    ck_assert_int_eq(
        roost_resolve_server(res, "192.0.2.1", NULL, on_done, &rs, &q), 0);
    ck_assert_int_eq(rs.called, 0); /* never from within the call */
    roost_resolve_cancel(q);
    run_until(NULL, 0, 100);
    ck_assert_int_eq(rs.called, 0);
}
END_TEST

/* Cancelled while the server is silent, then past the timeout. */
START_TEST(test_cancel_silent)
{
    roost_resolve_opts_t opts = {NULL, 0, 200};
    result_t rs;
    roost_resolve_t *q;

    memset(&rs, 0, sizeof(rs));
    ck_assert_int_eq(
        roost_resolve_server(res, "order.test", &opts, on_done, &rs, &q), 0);
    run_until(NULL, 0, 50);
    roost_resolve_cancel(q);
    run_until(NULL, 0, 400);
    ck_assert_int_eq(rs.called, 0);
}
END_TEST

/* Freeing the resolver with lookups in flight: no callbacks (and, under
 * ASan, no leaks). */
START_TEST(test_free_pending)
{
    result_t rs[3];
    int i;

    memset(rs, 0, sizeof(rs));
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(roost_resolve_server(res, "order.test", NULL, on_done,
                                              &rs[i], NULL),
                         0);
    run_until(NULL, 0, 50);
    /* and one whose result waits for the next loop turn */
    ck_assert_int_eq(
        roost_resolve_server(res, "192.0.2.1", NULL, on_done, &rs[2], NULL), 0);
    ck_assert_int_eq(roost_resolver_pending(res), 3);
    roost_resolver_free(res);
    res = NULL;
    run_until(NULL, 0, 100);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(rs[i].called, 0);
}
END_TEST

static result_t freer_other;

static void
on_done_free(void *arg, const roost_target_t *targets, int n, int err)
{
    on_done(arg, targets, n, err);
    roost_resolver_free(res);
    res = NULL;
}

/* A done callback may free the resolver; the other lookup is cancelled. */
START_TEST(test_free_from_done)
{
    result_t rs;

    memset(&rs, 0, sizeof(rs));
    memset(&freer_other, 0, sizeof(freer_other));
    ck_assert_int_eq(
        roost_resolve_server(res, "nx.test", NULL, on_done, &freer_other, NULL),
        0);
    ck_assert_int_eq(
        roost_resolve_server(res, "192.0.2.1", NULL, on_done_free, &rs, NULL),
        0);
    run_until(&rs.called, 1, 2000);
    ck_assert_int_eq(rs.called, 1);
    ck_assert_ptr_null(res);
    run_until(NULL, 0, 200);
    ck_assert_int_eq(freer_other.called, 0);
    result_clear(&rs);
}
END_TEST

/* --- many at once --- */

#define N_MANY 200

static const struct {
    const char *domain;
    int err, n;
    const char *host0;
} many[] = {
    {"plain.test", 0, 1, "plain.test"},
    {"mix.test", 0, 3, "tls.mix.test"},
    {"nx.test", -ROOST_ENOTFOUND, 0, NULL},
    {"dot.test", -ROOST_EDENIED, 0, NULL},
    {"ghost.test", 0, 1, "ok.ghost.test"},
    {"order.test", 0, 4, "first.order.test"},
    {"192.0.2.5", 0, 1, "192.0.2.5"},
};

START_TEST(test_many_concurrent)
{
    size_t nk = sizeof(many) / sizeof(many[0]);
    int i, done = 0;

    for (i = 0; i < N_MANY; i++) {
        memset(&wres[i], 0, sizeof(wres[i]));
        wres[i].counter = &done;
        ck_assert_int_eq(roost_resolve_server(res, many[i % nk].domain, NULL,
                                              on_done, &wres[i], NULL),
                         0);
    }
    run_until(&done, N_MANY, 20000);
    ck_assert_int_eq(done, N_MANY);
    run_until(NULL, 0, 100); /* no second callback */
    for (i = 0; i < N_MANY; i++) {
        ck_assert_int_eq(wres[i].called, 1);
        ck_assert_int_eq(wres[i].err, many[i % nk].err);
        ck_assert_int_eq(wres[i].n, many[i % nk].n);
        if (many[i % nk].host0 != NULL)
            ck_assert_str_eq(wres[i].t[0].host, many[i % nk].host0);
        result_clear(&wres[i]);
    }
    ck_assert_int_eq(roost_resolver_pending(res), 0);
}
END_TEST

/* --- API --- */

START_TEST(test_args)
{
    char longname[300];
    result_t rs;

    memset(&rs, 0, sizeof(rs));
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(roost_resolve_server(res, "", NULL, on_done, &rs, NULL),
                     -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_resolve_server(res, longname, NULL, on_done, &rs, NULL),
        -ROOST_EINVAL);
    ck_assert_int_eq(roost_resolve_server(res, "x.test", NULL, NULL, &rs, NULL),
                     -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_resolve_server(NULL, "x.test", NULL, on_done, &rs, NULL),
        -ROOST_EINVAL);
    ck_assert_int_eq(roost_resolver_pending(res), 0);
    run_until(NULL, 0, 50);
    ck_assert_int_eq(rs.called, 0);
}
END_TEST

START_TEST(test_bad_servers)
{
    roost_resolver_conf_t conf = {.servers = "not a server list"};
    roost_resolver_t *r = NULL;

    ck_assert_int_eq(roost_resolver_new(base, &conf, &r), -ROOST_EINVAL);
    ck_assert_ptr_null(r);
}
END_TEST

static const struct {
    const char *spec;
    int rc;
    const char *host;
    int port;
} hp[] = {
    {"xmpp.example.org:5270", 0, "xmpp.example.org", 5270},
    {"xmpp.example.org", 0, "xmpp.example.org", 5269},
    {"192.0.2.1:1", 0, "192.0.2.1", 1},
    {"[2001:db8::1]:65535", 0, "2001:db8::1", 65535},
    {"[2001:db8::1]", 0, "2001:db8::1", 5269},
    {"2001:db8::1", 0, "2001:db8::1", 5269},
    {"host:0", -ROOST_EINVAL, NULL, 0},
    {"host:65536", -ROOST_EINVAL, NULL, 0},
    {"host:", -ROOST_EINVAL, NULL, 0},
    {"host:12x", -ROOST_EINVAL, NULL, 0},
    {":5269", -ROOST_EINVAL, NULL, 0},
    {"", -ROOST_EINVAL, NULL, 0},
    {"[]:5269", -ROOST_EINVAL, NULL, 0},
    {"[2001:db8::1]x", -ROOST_EINVAL, NULL, 0},
    {"[not-v6]:5269", -ROOST_EINVAL, NULL, 0},
    {"a:b:c", -ROOST_EINVAL, NULL, 0},
};

START_TEST(test_parse_hostport)
{
    char *host = NULL;
    uint16_t port = 0;
    int rc = roost_resolve_parse_hostport(hp[_i].spec, &host, &port);

    ck_assert_msg(rc == hp[_i].rc, "%s: %d", hp[_i].spec, rc);
    if (rc == 0) {
        ck_assert_str_eq(host, hp[_i].host);
        ck_assert_int_eq(port, hp[_i].port);
        roost_free(host);
    }
}
END_TEST

static Suite *
resolve_suite(void)
{
    Suite *s = suite_create("resolve");
    TCase *tc;

    tc = tcase_create("srv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_srv_priority_weight);
    tcase_add_test(tc, test_srv_zero_weight);
    tcase_add_test(tc, test_srv_xmpps_merge);
    tcase_add_test(tc, test_srv_xmpps_mixed_weights);
    tcase_add_test(tc, test_dot_target);
    tcase_add_test(tc, test_dot_xmpps_only);
    tcase_add_test(tc, test_dot_xmpps_no_fallback);
    tcase_add_test(tc, test_fallback);
    tcase_add_test(tc, test_nxdomain);
    tcase_add_test(tc, test_target_without_address);
    suite_add_tcase(s, tc);

    tc = tcase_create("routes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_static_route);
    tcase_add_test(tc, test_literal_domain);
    suite_add_tcase(s, tc);

    tc = tcase_create("silent_server");
    tcase_add_checked_fixture(tc, setup_hole, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_cancel_silent);
    tcase_add_test(tc, test_route_hosts_file);
    tcase_add_test(tc, test_route_hosts_file_name);
    tcase_add_test(tc, test_free_pending);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_cancel_ready);
    tcase_add_test(tc, test_free_from_done);
    tcase_add_test(tc, test_many_concurrent);
    tcase_add_test(tc, test_args);
    tcase_add_test(tc, test_bad_servers);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_hostport");
    tcase_add_loop_test(tc, test_parse_hostport, 0,
                        (int)(sizeof(hp) / sizeof(hp[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr;
    char *dnsmasq = find_dnsmasq();
    int failed, hole_port;

    if (getenv("ROOST_TEST_DEBUG") != NULL)
        roost_log_level = ROOST_LOG_DEBUG;

    if (dnsmasq == NULL) {
        fprintf(stderr,
                "check_resolve: dnsmasq not found (looked in $DNSMASQ, "
                "/usr/sbin, /sbin, /usr/bin, /bin, /usr/local/sbin).\n"
                "  Install Debian's dnsmasq-base (part of quickstart.sh "
                "TEST_DEPS): apt-get install dnsmasq-base\n");
        return EXIT_FAILURE;
    }
    if (dns_start(dnsmasq) != 0) {
        dns_stop();
        return EXIT_FAILURE;
    }
    /* Bound, never read: queries to it get no answer and no ICMP. */
    hole_fd = udp_bound(&hole_port);
    snprintf(hole_servers, sizeof(hole_servers), "127.0.0.1:%d", hole_port);

    sr = srunner_create(resolve_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    close(hole_fd);
    dns_stop();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
