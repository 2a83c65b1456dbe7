/* core/resolve.c: asynchronous resolution of XMPP server domains to
 * connection targets (RFC 6120 3.2, RFC 2782, XEP-0368) with c-ares on the
 * libevent loop.  See core/resolve.h for the contract.
 *
 * c-ares runs in "socket state callback" mode: it tells us which sockets
 * to watch (resolver_sock_state), a libevent event per socket calls
 * ares_process_fd when one is ready, and one timer follows ares_timeout()
 * for retransmissions and query timeouts.  Nothing here blocks, except
 * that c-ares reads /etc/hosts (a small local file) for address lookups.
 *
 * A lookup (roost_resolve_t) is referenced by every c-ares query it has in
 * flight (inflight).  c-ares cannot cancel one query, so a cancelled or
 * timed-out lookup is marked dead and freed by the last of its queries'
 * callbacks (or by ares_destroy, which calls them all).  The user's done
 * callback always runs from a libevent event of its own, never from
 * within c-ares, so it may do anything, including freeing the resolver.
 *
 * Not for: connecting, TLS, client-to-server lookups (_xmpp-client). */
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "resolve.h"

#define RESOLVE_TAG "resolve"
/* Longest domain name in text form (RFC 1035 2.3.4, without the dot). */
#define RESOLVE_MAX_NAME 253

typedef struct resolve_sock {
    struct resolve_sock *next;
    roost_resolver_t *r;
    ares_socket_t fd;
    struct event *ev;
} resolve_sock_t;

/* A query waiting for its turn (roost_resolver_conf_t.max_queries). */
typedef struct resolve_job {
    struct resolve_job *next;
    struct resolve_qarg *qa;
    int srv;    /* 1: SRV query for name; 0: addresses of name */
    char *name; /* roost_free */
} resolve_job_t;

struct roost_resolver {
    struct event_base *base;
    ares_channel channel;
    struct event *timer;      /* follows ares_timeout() */
    resolve_sock_t *socks;    /* sockets c-ares asked us to watch */
    roost_resolve_t *lookups; /* running or delivering */
    int nlookups;
    uint64_t rng; /* splitmix64 state for the RFC 2782 weighted choice */
    /* Queries in c-ares at once are bounded: a burst of lookups (startup,
     * a restarted peer network) would overflow a DNS server's socket
     * buffer, and dropped queries cost whole retransmission timeouts. */
    int active, max_active;
    resolve_job_t *jobs, *jobs_tail; /* FIFO of the rest */
    int pumping; /* resolver_pump is running (no recursion) */
    int closing; /* roost_resolver_free: start nothing new */
};

/* One SRV record kept from an answer. */
typedef struct {
    char *host;
    uint16_t port, priority, weight;
    int direct_tls;
} resolve_srv_t;

enum { SRV_XMPPS = 0, SRV_XMPP = 1 };

/* The arg of one c-ares query: the lookup and which query it is. */
typedef struct resolve_qarg {
    roost_resolve_t *q;
    int idx;
} resolve_qarg_t;

typedef enum {
    LK_RUNNING,    /* queries in flight, no result yet */
    LK_DELIVERING, /* result ready, done runs on the next loop turn */
    LK_DEAD        /* done called or cancelled: freed at inflight 0 */
} resolve_state_t;

struct roost_resolve {
    roost_resolver_t *r; /* not used once dead: r may be gone */
    roost_resolve_t *prev, *next;
    char *domain;
    roost_resolve_fn done;
    void *arg;
    resolve_state_t state;
    int inflight;          /* queries (queued or in c-ares) pointing here */
    int in_done;           /* done is running: do not free */
    struct event *timer;   /* the whole lookup's timeout */
    struct event *deliver; /* calls done from the loop */

    /* SRV phase: [SRV_XMPPS], [SRV_XMPP] */
    int srv_left;
    resolve_qarg_t srvq[2];
    resolve_srv_t *srv[2];
    int nsrv[2];
    int srv_dot[2];    /* the answer was one record with target "." */
    int srv_status[2]; /* ARES_* */

    /* address phase: one getaddrinfo per target */
    int addr_phase;
    int addr_left;
    roost_target_t *targets;
    int ntargets;
    resolve_qarg_t *addrq;
    int *addr_status; /* ARES_* */

    /* the result handed to done */
    roost_target_t *result;
    int nresult;
    int err;
};

static void resolve_maybe_free(roost_resolve_t *q);
static void resolve_srv_cb(void *arg, int status, int timeouts,
                           unsigned char *abuf, int alen);
static void resolve_addr_cb(void *arg, int status, int timeouts,
                            struct ares_addrinfo *res);

/* --- the resolver: c-ares sockets and timer on libevent --- */

static uint64_t
resolver_random(roost_resolver_t *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Re-arms the timer from ares_timeout() after anything c-ares did. */
static void
resolver_kick(roost_resolver_t *r)
{
    struct timeval tv, *tvp;

    tvp = ares_timeout(r->channel, NULL, &tv);
    if (tvp != NULL)
        evtimer_add(r->timer, tvp);
    else
        evtimer_del(r->timer);
}

static void
resolver_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_resolver_t *r = arg;

    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    resolver_kick(r);
}

static void
resolver_sock_cb(evutil_socket_t fd, short what, void *arg)
{
    resolve_sock_t *s = arg;
    roost_resolver_t *r = s->r; /* s may be freed by ares_process_fd */

    ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    resolver_kick(r);
}

/* c-ares: start, change or stop watching fd. */
static void
resolver_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    roost_resolver_t *r = data;
    resolve_sock_t **pp, *s = NULL;
    short what;

    for (pp = &r->socks; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->fd == fd) {
            s = *pp;
            break;
        }
    }
    if (!readable && !writable) {
        if (s != NULL) {
            *pp = s->next;
            event_free(s->ev);
            roost_free(s);
        }
        return;
    }
    if (s == NULL) {
        s = roost_xcalloc(1, sizeof(*s));
        s->r = r;
        s->fd = fd;
        s->next = r->socks;
        r->socks = s;
    } else {
        /* Freeing an event inside its own callback is allowed. */
        event_free(s->ev);
    }
    what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    s->ev = event_new(r->base, fd, what, resolver_sock_cb, s);
    if (s->ev == NULL)
        abort(); /* out of memory (HOUSE 12) */
    event_add(s->ev, NULL);
}

/* Hands one query to c-ares.  Its callback may run before this returns
 * (/etc/hosts, an immediate failure). */
static void
resolver_start(roost_resolver_t *r, resolve_qarg_t *qa, int srv,
               const char *name)
{
    r->active++;
    if (srv) {
        ares_query(r->channel, name, ns_c_in, ns_t_srv, resolve_srv_cb, qa);
    } else {
        struct ares_addrinfo_hints hints;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = ARES_AI_NOSORT; /* our order: IPv6, then IPv4 */
        ares_getaddrinfo(r->channel, name, NULL, &hints, resolve_addr_cb, qa);
    }
}

/* Starts queued queries while there is room.  Queries of lookups that
 * ended meanwhile are dropped. */
static void
resolver_pump(roost_resolver_t *r)
{
    resolve_job_t *j;

    if (r->pumping || r->closing)
        return; /* the outer call goes on */
    r->pumping = 1;
    while (r->active < r->max_active && (j = r->jobs) != NULL) {
        roost_resolve_t *q = j->qa->q;

        r->jobs = j->next;
        if (r->jobs == NULL)
            r->jobs_tail = NULL;
        if (q->state == LK_RUNNING) {
            resolver_start(r, j->qa, j->srv, j->name);
        } else {
            q->inflight--;
            resolve_maybe_free(q);
        }
        roost_free(j->name);
        roost_free(j);
    }
    r->pumping = 0;
}

/* A query for q: now if there is room, else after those queued. */
static void
resolve_submit(roost_resolve_t *q, resolve_qarg_t *qa, int srv,
               const char *name)
{
    roost_resolver_t *r = q->r;
    resolve_job_t *j;

    q->inflight++;
    if (r->active < r->max_active && r->jobs == NULL) {
        resolver_start(r, qa, srv, name);
        return;
    }
    j = roost_xcalloc(1, sizeof(*j));
    j->qa = qa;
    j->srv = srv;
    j->name = roost_xstrdup(name);
    if (r->jobs_tail != NULL)
        r->jobs_tail->next = j;
    else
        r->jobs = j;
    r->jobs_tail = j;
}

int
roost_resolver_new(struct event_base *base, const roost_resolver_conf_t *conf,
                   roost_resolver_t **out)
{
    static const roost_resolver_conf_t dflt = {.servers = NULL};
    struct ares_options ao;
    roost_resolver_t *r;
    int rc, mask;

    if (base == NULL || out == NULL)
        return -ROOST_EINVAL;
    if (conf == NULL)
        conf = &dflt;
    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        ROOST_LOG(ROOST_LOG_ERROR, RESOLVE_TAG, "c-ares init: %s",
                  ares_strerror(rc));
        return -ROOST_EIO;
    }
    r = roost_xcalloc(1, sizeof(*r));
    r->base = base;
    r->max_active =
        conf->max_queries > 0 ? conf->max_queries : ROOST_RESOLVE_MAX_QUERIES;
    memset(&ao, 0, sizeof(ao));
    ao.sock_state_cb = resolver_sock_state;
    ao.sock_state_cb_data = r;
    ao.timeout = conf->query_timeout_ms ? (int)conf->query_timeout_ms
                                        : ROOST_RESOLVE_QUERY_TIMEOUT_MS;
    ao.tries =
        conf->query_tries > 0 ? conf->query_tries : ROOST_RESOLVE_QUERY_TRIES;
    /* Server domains are fully qualified: no search list, no
     * HOSTALIASES (a resolver setting for interactive tools). */
    ao.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
           ARES_OPT_FLAGS;
    rc = ares_init_options(&r->channel, &ao, mask);
    if (rc != ARES_SUCCESS) {
        ROOST_LOG(ROOST_LOG_ERROR, RESOLVE_TAG, "c-ares channel: %s",
                  ares_strerror(rc));
        roost_free(r);
        ares_library_cleanup();
        return -ROOST_EIO;
    }
    if (conf->servers != NULL) {
        rc = ares_set_servers_ports_csv(r->channel, conf->servers);
        if (rc != ARES_SUCCESS) {
            ROOST_LOG(ROOST_LOG_ERROR, RESOLVE_TAG, "DNS servers \"%s\": %s",
                      conf->servers, ares_strerror(rc));
            ares_destroy(r->channel);
            roost_free(r);
            ares_library_cleanup();
            return -ROOST_EINVAL;
        }
    }
    r->timer = evtimer_new(base, resolver_timer_cb, r);
    if (r->timer == NULL)
        abort(); /* out of memory (HOUSE 12) */
    if (getrandom(&r->rng, sizeof(r->rng), GRND_NONBLOCK) !=
        (ssize_t)sizeof(r->rng))
        r->rng = (uint64_t)(uintptr_t)r ^ (uint64_t)time(NULL);
    *out = r;
    return 0;
}

/* Detaches q from the loop: no timer, no delivery, not listed. */
static void
resolve_detach(roost_resolve_t *q)
{
    roost_resolver_t *r = q->r;

    if (q->timer != NULL) {
        event_free(q->timer);
        q->timer = NULL;
    }
    if (q->deliver != NULL) {
        event_free(q->deliver);
        q->deliver = NULL;
    }
    if (q->state != LK_DEAD) {
        if (q->prev != NULL)
            q->prev->next = q->next;
        else
            r->lookups = q->next;
        if (q->next != NULL)
            q->next->prev = q->prev;
        q->prev = q->next = NULL;
        r->nlookups--;
        q->state = LK_DEAD;
    }
}

void
roost_resolver_free(roost_resolver_t *r)
{
    resolve_sock_t *s;
    resolve_job_t *j;

    if (r == NULL)
        return;
    r->closing = 1;
    while (r->lookups != NULL) {
        roost_resolve_t *q = r->lookups;

        resolve_detach(q);
        resolve_maybe_free(q);
    }
    while ((j = r->jobs) != NULL) {
        r->jobs = j->next;
        j->qa->q->inflight--;
        resolve_maybe_free(j->qa->q);
        roost_free(j->name);
        roost_free(j);
    }
    /* Calls every pending query's callback (ARES_EDESTRUCTION): the dead
     * lookups they point to are freed there. */
    ares_destroy(r->channel);
    while ((s = r->socks) != NULL) {
        r->socks = s->next;
        event_free(s->ev);
        roost_free(s);
    }
    event_free(r->timer);
    roost_free(r);
    ares_library_cleanup();
}

int
roost_resolver_pending(const roost_resolver_t *r)
{
    return r != NULL ? r->nlookups : 0;
}

/* --- targets --- */

static void
resolve_target_clear(roost_target_t *t)
{
    roost_free(t->host);
    roost_free(t->addrs);
    memset(t, 0, sizeof(*t));
}

void
roost_resolve_targets_free(roost_target_t *t, int n)
{
    int i;

    if (t == NULL)
        return;
    for (i = 0; i < n; i++)
        resolve_target_clear(&t[i]);
    roost_free(t);
}

roost_target_t *
roost_resolve_targets_copy(const roost_target_t *targets, int n)
{
    roost_target_t *c;
    int i;

    if (targets == NULL || n <= 0)
        return NULL;
    c = roost_xcalloc((size_t)n, sizeof(*c));
    for (i = 0; i < n; i++) {
        c[i] = targets[i];
        c[i].host = roost_xstrdup(targets[i].host);
        c[i].addrs = roost_xcalloc(targets[i].naddrs ? targets[i].naddrs : 1,
                                   sizeof(*c[i].addrs));
        memcpy(c[i].addrs, targets[i].addrs,
               targets[i].naddrs * sizeof(*c[i].addrs));
    }
    return c;
}

/* Fills a with host if host is an IP literal ("[...]" allowed for IPv6).
 * Returns 1 if it was one, else 0. */
static int
resolve_literal(const char *host, uint16_t port, roost_target_addr_t *a)
{
    char buf[INET6_ADDRSTRLEN + 1];
    size_t len = strlen(host);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->sa;

    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        a->len = sizeof(*sin);
        return 1;
    }
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' &&
        len - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        a->len = sizeof(*sin6);
        return 1;
    }
    memset(a, 0, sizeof(*a));
    return 0;
}

/* --- completion --- */

static void
resolve_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_resolve_t *q = arg;
    roost_resolve_fn done = q->done;

    /* Off the loop before done runs: done may free the resolver. */
    resolve_detach(q);
    q->in_done = 1;
    done(q->arg, q->nresult > 0 ? q->result : NULL, q->nresult, q->err);
    q->in_done = 0;
    resolve_maybe_free(q);
}

/* The lookup has its answer: hand it to done on the next loop turn. */
static void
resolve_finish(roost_resolve_t *q, int err)
{
    q->state = LK_DELIVERING;
    q->err = q->nresult > 0 ? 0 : err;
    evtimer_del(q->timer);
    ROOST_LOG(ROOST_LOG_DEBUG, RESOLVE_TAG, "%s: %d target(s)%s%s", q->domain,
              q->nresult, q->err ? ": " : "",
              q->err ? roost_strerror(q->err) : "");
    event_active(q->deliver, 0, 0);
}

/* Maps a failed c-ares status to a ROOST_E* code (negative). */
static int
resolve_err(int status)
{
    switch (status) {
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_EBADNAME:
    case ARES_ENONAME: return -ROOST_ENOTFOUND;
    case ARES_ETIMEOUT:
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED: return -ROOST_EAGAIN;
    default: return -ROOST_EIO;
    }
}

/* Moves the targets that have addresses to the result, in order, and
 * finishes.  Called when every address lookup is done, or at the
 * timeout with those that are. */
static void
resolve_addr_finish(roost_resolve_t *q, int timed_out)
{
    int i, err = -ROOST_ENOTFOUND;

    q->result = roost_xcalloc((size_t)q->ntargets, sizeof(*q->result));
    q->nresult = 0;
    for (i = 0; i < q->ntargets; i++) {
        if (q->targets[i].naddrs > 0) {
            q->result[q->nresult++] = q->targets[i];
            memset(&q->targets[i], 0, sizeof(q->targets[i]));
        } else if (q->addr_status[i] != ARES_SUCCESS &&
                   resolve_err(q->addr_status[i]) != -ROOST_ENOTFOUND) {
            /* A transient failure wins over "not found": retrying
             * later may work. */
            err = resolve_err(q->addr_status[i]);
        }
    }
    if (timed_out)
        err = -ROOST_EAGAIN;
    resolve_finish(q, err);
}

static void
resolve_addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    resolve_qarg_t *qa = arg;
    roost_resolve_t *q = qa->q;
    roost_resolver_t *r = q->r; /* alive while it has queries */
    roost_target_t *t;
    struct ares_addrinfo_node *n;
    int pass;

    r->active--;
    q->inflight--;
    if (q->state != LK_RUNNING) {
        ares_freeaddrinfo(res);
        resolve_maybe_free(q);
        resolver_pump(r);
        return;
    }
    t = &q->targets[qa->idx];
    if (status == ARES_SUCCESS && res != NULL) {
        t->addrs = roost_xcalloc(ROOST_RESOLVE_MAX_ADDRS, sizeof(*t->addrs));
        /* IPv6 first, then IPv4, each in the order received. */
        for (pass = 0; pass < 2; pass++) {
            int family = pass == 0 ? AF_INET6 : AF_INET;

            for (n = res->nodes; n != NULL; n = n->ai_next) {
                roost_target_addr_t *a;

                if (n->ai_family != family || n->ai_addr == NULL ||
                    t->naddrs >= ROOST_RESOLVE_MAX_ADDRS)
                    continue;
                a = &t->addrs[t->naddrs];
                if (family == AF_INET6 &&
                    (size_t)n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                    a->len = sizeof(struct sockaddr_in6);
                    memcpy(&a->sa, n->ai_addr, a->len);
                    ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(t->port);
                } else if (family == AF_INET &&
                           (size_t)n->ai_addrlen >=
                               sizeof(struct sockaddr_in)) {
                    a->len = sizeof(struct sockaddr_in);
                    memcpy(&a->sa, n->ai_addr, a->len);
                    ((struct sockaddr_in *)&a->sa)->sin_port = htons(t->port);
                } else {
                    continue;
                }
                t->naddrs++;
            }
        }
        if (t->naddrs == 0)
            status = ARES_ENODATA;
    }
    ares_freeaddrinfo(res);
    q->addr_status[qa->idx] = status;
    if (status != ARES_SUCCESS)
        ROOST_LOG(ROOST_LOG_DEBUG, RESOLVE_TAG, "%s: target %s: %s", q->domain,
                  t->host, ares_strerror(status));
    if (--q->addr_left == 0)
        resolve_addr_finish(q, 0);
    resolver_pump(r);
}

/* Resolves every target's host; literals need no query. */
static void
resolve_start_addresses(roost_resolve_t *q)
{
    int i;

    q->addr_phase = 1;
    q->addrq = roost_xcalloc((size_t)q->ntargets, sizeof(*q->addrq));
    q->addr_status = roost_xcalloc((size_t)q->ntargets, sizeof(int));
    q->addr_left = q->ntargets;
    for (i = 0; i < q->ntargets; i++) {
        roost_target_t *t = &q->targets[i];
        roost_target_addr_t lit;

        if (resolve_literal(t->host, t->port, &lit)) {
            t->addrs = roost_xcalloc(1, sizeof(*t->addrs));
            t->addrs[0] = lit;
            t->naddrs = 1;
            q->addr_status[i] = ARES_SUCCESS;
            q->addr_left--;
            continue;
        }
        q->addrq[i].q = q;
        q->addrq[i].idx = i;
        /* May call resolve_addr_cb before returning (/etc/hosts). */
        resolve_submit(q, &q->addrq[i], 0, t->host);
    }
    if (q->addr_left == 0 && q->state == LK_RUNNING)
        resolve_addr_finish(q, 0);
}

/* --- SRV --- */

static void
resolve_srv_free(resolve_srv_t *s, int n)
{
    int i;

    for (i = 0; i < n; i++)
        roost_free(s[i].host);
    roost_free(s);
}

/* Orders s[0..n-1] as RFC 2782 says: by priority, lowest first; within a
 * priority, zero weights first, then repeatedly pick the record whose
 * running weight sum first reaches a uniform random number in [0, sum]
 * and move it to the front of what is left. */
static void
resolve_srv_order(roost_resolver_t *r, resolve_srv_t *s, int n)
{
    int i, j, k, m;

    /* Stable insertion sort by priority (n <= 2 * MAX_SRV). */
    for (i = 1; i < n; i++) {
        resolve_srv_t x = s[i];

        for (j = i; j > 0 && s[j - 1].priority > x.priority; j--)
            s[j] = s[j - 1];
        s[j] = x;
    }
    for (i = 0; i < n; i = j) {
        for (j = i; j < n && s[j].priority == s[i].priority; j++)
            ;
        /* Zero weights first, keeping the order of the others. */
        for (k = i + 1; k < j; k++) {
            resolve_srv_t x = s[k];

            if (x.weight != 0)
                continue;
            for (m = k; m > i && s[m - 1].weight != 0; m--)
                s[m] = s[m - 1];
            s[m] = x;
        }
        for (k = i; k < j - 1; k++) {
            uint64_t sum = 0, run = 0, pick;
            resolve_srv_t x;

            for (m = k; m < j; m++)
                sum += s[m].weight;
            pick = resolver_random(r) % (sum + 1);
            for (m = k; m < j; m++) {
                run += s[m].weight;
                if (run >= pick)
                    break;
            }
            /* Rotate s[m] to position k: the rest keep their order. */
            x = s[m];
            for (; m > k; m--)
                s[m] = s[m - 1];
            s[k] = x;
        }
    }
}

/* Both SRV answers are in: merge them (XEP-0368), or fall back, or stop. */
static void
resolve_srv_finish(roost_resolve_t *q)
{
    int total = q->nsrv[SRV_XMPPS] + q->nsrv[SRV_XMPP];
    resolve_srv_t *all;
    int i, k, n = 0;

    if (total == 0) {
        if (q->srv_dot[SRV_XMPP]) {
            /* RFC 6120 3.2.1 / RFC 2782: decidedly not available. */
            resolve_finish(q, -ROOST_EDENIED);
            return;
        }
        if (q->srv_dot[SRV_XMPPS]) {
            /* XEP-0368: no direct TLS, and no A/AAAA fallback since the
             * domain publishes SRV records.  A failed _xmpp-server query
             * may still have had records: report that as transient. */
            int st = q->srv_status[SRV_XMPP];

            resolve_finish(q, st == ARES_SUCCESS || st == ARES_ENODATA ||
                                      st == ARES_ENOTFOUND
                                  ? -ROOST_EDENIED
                                  : resolve_err(st));
            return;
        }
        /* RFC 6120 3.2.2: no SRV records, the domain on port 5269. */
        q->targets = roost_xcalloc(1, sizeof(*q->targets));
        q->ntargets = 1;
        q->targets[0].host = roost_xstrdup(q->domain);
        q->targets[0].port = ROOST_RESOLVE_S2S_PORT;
        q->targets[0].src = ROOST_TARGET_FALLBACK;
        resolve_start_addresses(q);
        return;
    }
    all = roost_xcalloc((size_t)total, sizeof(*all));
    for (k = 0; k < 2; k++) {
        for (i = 0; i < q->nsrv[k]; i++)
            all[n++] = q->srv[k][i];
        roost_free(q->srv[k]); /* the hosts moved to all */
        q->srv[k] = NULL;
        q->nsrv[k] = 0;
    }
    resolve_srv_order(q->r, all, n);
    q->targets = roost_xcalloc((size_t)n, sizeof(*q->targets));
    q->ntargets = n;
    for (i = 0; i < n; i++) {
        roost_target_t *t = &q->targets[i];

        t->host = all[i].host;
        t->port = all[i].port;
        t->direct_tls = all[i].direct_tls;
        t->src = ROOST_TARGET_SRV;
        t->priority = all[i].priority;
        t->weight = all[i].weight;
    }
    roost_free(all);
    resolve_start_addresses(q);
}

static int
resolve_is_root(const char *host)
{
    return host == NULL || host[0] == '\0' || strcmp(host, ".") == 0;
}

static void
resolve_srv_cb(void *arg, int status, int timeouts, unsigned char *abuf,
               int alen)
{
    resolve_qarg_t *qa = arg;
    roost_resolve_t *q = qa->q;
    roost_resolver_t *r = q->r; /* alive while it has queries */
    struct ares_srv_reply *reply = NULL, *p;
    int k = qa->idx, count = 0;

    r->active--;
    q->inflight--;
    if (q->state != LK_RUNNING) {
        resolve_maybe_free(q);
        resolver_pump(r);
        return;
    }
    if (status == ARES_SUCCESS)
        status = ares_parse_srv_reply(abuf, alen, &reply);
    if (status == ARES_SUCCESS) {
        /* RFC 2782: one record with target "." (a zone listing only
         * such records says the same). */
        for (p = reply; p != NULL; p = p->next)
            count += !resolve_is_root(p->host);
        if (count == 0) {
            q->srv_dot[k] = 1;
        } else {
            q->srv[k] =
                roost_xcalloc(ROOST_RESOLVE_MAX_SRV, sizeof(*q->srv[k]));
            for (p = reply; p != NULL; p = p->next) {
                resolve_srv_t *s;

                /* A "." among other records names no host: skip it. */
                if (resolve_is_root(p->host) ||
                    q->nsrv[k] >= ROOST_RESOLVE_MAX_SRV)
                    continue;
                s = &q->srv[k][q->nsrv[k]++];
                s->host = roost_xstrdup(p->host);
                s->port = p->port;
                s->priority = p->priority;
                s->weight = p->weight;
                s->direct_tls = k == SRV_XMPPS;
            }
        }
        ares_free_data(reply);
    } else {
        ROOST_LOG(ROOST_LOG_DEBUG, RESOLVE_TAG, "%s: %s SRV: %s", q->domain,
                  k == SRV_XMPPS ? "_xmpps-server" : "_xmpp-server",
                  ares_strerror(status));
    }
    q->srv_status[k] = status;
    if (--q->srv_left == 0)
        resolve_srv_finish(q);
    resolver_pump(r);
}

/* --- lookups --- */

static void
resolve_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_resolve_t *q = arg;

    if (q->state != LK_RUNNING)
        return;
    ROOST_LOG(ROOST_LOG_DEBUG, RESOLVE_TAG, "%s: timed out", q->domain);
    if (q->addr_phase) {
        /* The targets resolved so far, in order, are worth trying. */
        resolve_addr_finish(q, 1);
        return;
    }
    resolve_finish(q, -ROOST_EAGAIN);
}

static void
resolve_maybe_free(roost_resolve_t *q)
{
    int k;

    if (q->state != LK_DEAD || q->inflight > 0 || q->in_done)
        return;
    for (k = 0; k < 2; k++)
        resolve_srv_free(q->srv[k], q->nsrv[k]);
    roost_resolve_targets_free(q->targets, q->ntargets);
    roost_resolve_targets_free(q->result, q->nresult);
    roost_free(q->addrq);
    roost_free(q->addr_status);
    roost_free(q->domain);
    roost_free(q);
}

void
roost_resolve_cancel(roost_resolve_t *q)
{
    if (q == NULL || q->state == LK_DEAD)
        return;
    resolve_detach(q);
    resolve_maybe_free(q);
}

static const roost_resolve_route_t *
resolve_route(const roost_resolve_opts_t *opts, const char *domain)
{
    size_t i;

    if (opts == NULL || opts->routes == NULL)
        return NULL;
    for (i = 0; i < opts->nroutes; i++) {
        const roost_resolve_route_t *rt = &opts->routes[i];

        if (rt->domain != NULL && rt->host != NULL &&
            strcasecmp(rt->domain, domain) == 0)
            return rt;
    }
    return NULL;
}

int
roost_resolve_server(roost_resolver_t *r, const char *domain,
                     const roost_resolve_opts_t *opts, roost_resolve_fn done,
                     void *arg, roost_resolve_t **out)
{
    const roost_resolve_route_t *rt;
    roost_resolve_t *q;
    roost_target_addr_t lit;
    struct timeval tv;
    uint32_t ms;
    size_t len;
    char *name;
    int k;

    if (r == NULL || domain == NULL || done == NULL)
        return -ROOST_EINVAL;
    len = strlen(domain);
    if (len == 0 || len > RESOLVE_MAX_NAME)
        return -ROOST_EINVAL;
    q = roost_xcalloc(1, sizeof(*q));
    q->r = r;
    q->domain = roost_xstrdup(domain);
    q->done = done;
    q->arg = arg;
    q->state = LK_RUNNING;
    q->next = r->lookups;
    if (r->lookups != NULL)
        r->lookups->prev = q;
    r->lookups = q;
    r->nlookups++;
    q->timer = evtimer_new(r->base, resolve_timeout_cb, q);
    q->deliver = event_new(r->base, -1, 0, resolve_deliver_cb, q);
    if (q->timer == NULL || q->deliver == NULL)
        abort(); /* out of memory (HOUSE 12) */
    ms = opts != NULL && opts->timeout_ms ? opts->timeout_ms
                                          : ROOST_RESOLVE_TIMEOUT_MS;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(q->timer, &tv);
    if (out != NULL)
        *out = q;

    rt = resolve_route(opts, domain);
    if (rt != NULL || resolve_literal(domain, ROOST_RESOLVE_S2S_PORT, &lit)) {
        q->targets = roost_xcalloc(1, sizeof(*q->targets));
        q->ntargets = 1;
        if (rt != NULL) {
            q->targets[0].host = roost_xstrdup(rt->host);
            q->targets[0].port = rt->port ? rt->port : ROOST_RESOLVE_S2S_PORT;
            q->targets[0].direct_tls = rt->direct_tls != 0;
            q->targets[0].src = ROOST_TARGET_ROUTE;
        } else {
            q->targets[0].host = roost_xstrdup(domain);
            q->targets[0].port = ROOST_RESOLVE_S2S_PORT;
            q->targets[0].src = ROOST_TARGET_LITERAL;
        }
        resolve_start_addresses(q);
        resolver_kick(r);
        return 0;
    }

    /* Both SRV queries in parallel; srv_left first, since a query may
     * complete before ares_query returns. */
    q->srv_left = 2;
    name = roost_xmalloc(len + sizeof("_xmpps-server._tcp."));
    for (k = 0; k < 2; k++) {
        snprintf(name, len + sizeof("_xmpps-server._tcp."), "%s._tcp.%s",
                 k == SRV_XMPPS ? "_xmpps-server" : "_xmpp-server", domain);
        q->srvq[k].q = q;
        q->srvq[k].idx = k;
        resolve_submit(q, &q->srvq[k], 1, name);
    }
    roost_free(name);
    resolver_kick(r);
    return 0;
}

int
roost_resolve_parse_hostport(const char *spec, char **host, uint16_t *port)
{
    const char *colon, *end;
    struct in6_addr a6;
    unsigned long p = ROOST_RESOLVE_S2S_PORT;
    char *ep = NULL;

    if (spec == NULL || host == NULL || port == NULL || spec[0] == '\0')
        return -ROOST_EINVAL;
    if (spec[0] == '[') {
        end = strchr(spec, ']');
        if (end == NULL || end == spec + 1)
            return -ROOST_EINVAL;
        colon = end[1] == ':' ? end + 1 : NULL;
        if (end[1] != '\0' && colon == NULL)
            return -ROOST_EINVAL;
        *host = roost_xstrndup(spec + 1, (size_t)(end - spec - 1));
        if (inet_pton(AF_INET6, *host, &a6) != 1) {
            roost_free(*host);
            *host = NULL;
            return -ROOST_EINVAL;
        }
    } else if (inet_pton(AF_INET6, spec, &a6) == 1) {
        colon = NULL; /* a bare IPv6 address: its colons are no port */
        *host = roost_xstrdup(spec);
    } else {
        colon = strrchr(spec, ':');
        if (colon == spec)
            return -ROOST_EINVAL;
        *host = colon != NULL ? roost_xstrndup(spec, (size_t)(colon - spec))
                              : roost_xstrdup(spec);
        if (strchr(*host, ':') != NULL) {
            roost_free(*host);
            *host = NULL;
            return -ROOST_EINVAL;
        }
    }
    if (colon != NULL) {
        if (colon[1] < '0' || colon[1] > '9')
            p = 0;
        else
            p = strtoul(colon + 1, &ep, 10);
        if (p == 0 || p > 65535 || *ep != '\0') {
            roost_free(*host);
            *host = NULL;
            return -ROOST_EINVAL;
        }
    }
    *port = (uint16_t)p;
    return 0;
}
