/* core/conn.c: c2s connections on libevent.
 *
 * Glue between sockets and the sans-I/O stream (core/stream.c): accepts
 * connections, wraps them in TLS (direct TLS at accept, or STARTTLS when
 * the stream asks), feeds input to the stream, runs SASL steps on worker
 * threads, applies timeouts and output backpressure, bounds what
 * unauthenticated connections may cost ("pre-auth limits" below), and
 * frees a session only at a safe point (HOUSE 10).  Not here: stream
 * negotiation rules (stream.c), session tables and binding (server.c),
 * routing (router.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/socket.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "fast.h"
#include "log.h"
#include "sasl.h"
#include "server.h"
#include "sm.h"
#include "tls.h"
#include "worker.h"

#define CONN_MAX_AUTH_ATTEMPTS 5
#define CONN_CLOSE_GRACE_MS    2000
/* Idle release (issue 7): a session that has read nothing for this long
 * gives back its XML parser; the sweep runs every CONN_SWEEP_MS while
 * any session is on the busy list. */
#define CONN_QUIET_MS 200
#define CONN_SWEEP_MS 100
/* Freed parsers leave holes between long-lived allocations that malloc
 * keeps: they go back to the kernel (malloc_trim) once the sessions that
 * released them are all quiet, at most once a second, or every
 * CONN_TRIM_BUSY_MS while some are always busy. */
#define CONN_TRIM_MS      1000
#define CONN_TRIM_BUSY_MS 10000

/* Per peer address: open connections (limits.max_connections_per_ip)
 * and recent authentication failures (limits.auth_failures_per_ip within
 * auth_failure_window).  An entry lives while either is non-zero. */
typedef struct conn_ip {
    char ip[64];
    int conns;
    int fails;
    int64_t fail_start; /* monotonic ms of the window's first failure */
    UT_hash_handle hh;
} conn_ip_t;

/* Channel-binding data of a TLS session, computed on the loop for SASL
 * -PLUS mechanisms (which read it on a worker).  A session's TLS does not
 * change once up, so the data (an exporter derivation: about 1.5 % of a
 * STARTTLS login's CPU) are computed once, when the mechanisms are first
 * offered, and reused by the SASL state of the <auth/> that follows.
 * Only while the session authenticates: freed with its SASL state
 * (conn_sasl_drop). */
struct roost_conn_cb {
    unsigned char data[2][64];
    size_t len[2];
    int filled; /* names and data are those of the session's TLS */
    const char *names[3];
    /* FAST: the binding of the HT mechanism being checked (core/fast.c) */
    unsigned char fast[ROOST_FAST_CB_MAX];
    size_t fast_len;
};

static conn_ip_t *conn_ips;
static struct ev_token_bucket_cfg *conn_rate_cfg;
/* Sessions that read input since the sweep last saw them quiet, and the
 * timer that sweeps them (armed only while the list is not empty, so an
 * idle server stays idle). */
static roost_session_t *conn_busy;
static struct event *conn_sweep_ev;
static int conn_trim_pending; /* parsers released since the last trim */
static int64_t conn_trim_last;
/* Pre-auth limits: the memory all unauthenticated connections hold
 * (kept up to date per event, never summed by a scan), the ones whose
 * reads are paused because it is over limits.preauth_max_total (oldest
 * first), and when a refused connection was last logged. */
static size_t conn_preauth_total;
static roost_session_t *conn_paused_head, *conn_paused_tail;
static int64_t conn_refuse_logged;
static unsigned conn_refused;
/* Output under STARTTLS, staged per loop turn (conn_write): the sessions
 * with staged output, the event that flushes them, and spare buffers. */
static roost_session_t *conn_flush_head;
static struct event *conn_flush_ev;
#define CONN_STAGE_SPARES 64
static struct evbuffer *conn_stage_spare[CONN_STAGE_SPARES];
static int conn_stage_nspare;

static void conn_process_input(roost_session_t *s);
static void conn_schedule_free(roost_session_t *s);
static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_hibernate(roost_session_t *s);
static void conn_preauth_update(roost_session_t *s);

void
roost_session_log(const roost_session_t *s, int level, const char *fmt, ...)
{
    char tag[1200], msg[1024];
    va_list ap;

    if (level > roost_log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(tag, sizeof(tag), "c2s:%012" PRIx64 " %s", s->id,
             s->jid ? roost_jid_full(s->jid) : s->addr);
    roost_log_write(level, tag, "%s", msg);
}

static int64_t
conn_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
timeval_ms(struct timeval *tv, int64_t ms)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

/* --- idle release --- */

static void
conn_busy_del(roost_session_t *s)
{
    if (!s->busy)
        return;
    if (s->busy_prev != NULL)
        s->busy_prev->busy_next = s->busy_next;
    else
        conn_busy = s->busy_next;
    if (s->busy_next != NULL)
        s->busy_next->busy_prev = s->busy_prev;
    s->busy_next = s->busy_prev = NULL;
    s->busy = 0;
}

static void
conn_sweep_arm(void)
{
    struct timeval tv;

    if ((conn_busy == NULL && conn_trim_pending == 0) ||
        evtimer_pending(conn_sweep_ev, NULL))
        return;
    timeval_ms(&tv, CONN_SWEEP_MS);
    evtimer_add(conn_sweep_ev, &tv);
}

/* Memory an idle session does not need goes back: its stream's XML
 * parser (about 12 KiB; rebuilt on the next byte, see core/xml.c).  Runs
 * at the top of the loop, outside every stream callback. */
static void
conn_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = conn_now_ms();
    roost_session_t *s, *next;

    for (s = conn_busy; s != NULL; s = next) {
        next = s->busy_next;
        if (s->closing || s->freeing || s->stream == NULL) {
            conn_busy_del(s);
            continue;
        }
        if (now - s->last_input < CONN_QUIET_MS)
            continue;
        /* Not released (half a stanza pending, say): the next read puts
         * the session back on the list. */
        conn_trim_pending += roost_stream_release_idle(s->stream);
        conn_busy_del(s);
        conn_preauth_update(s);
    }
    if (conn_trim_pending > 0 &&
        now - conn_trim_last >=
            (conn_busy == NULL ? CONN_TRIM_MS : CONN_TRIM_BUSY_MS)) {
#if defined(__GLIBC__)
        malloc_trim(0);
#endif
        conn_trim_pending = 0;
        conn_trim_last = now;
    }
    conn_sweep_arm();
}

/* s read input: sweep it once it has been quiet for a while. */
static void
conn_busy_add(roost_session_t *s)
{
    if (s->busy || s->stream == NULL)
        return;
    if (conn_sweep_ev == NULL)
        conn_sweep_ev = evtimer_new(roost_srv->base, conn_sweep_cb, NULL);
    s->busy = 1;
    s->busy_prev = NULL;
    s->busy_next = conn_busy;
    if (conn_busy != NULL)
        conn_busy->busy_prev = s;
    conn_busy = s;
    conn_sweep_arm();
}

/* An SSL object for a client connection.  Idle sessions are most of a
 * server's sessions: OpenSSL's read and write buffers (about 34 KiB) are
 * released while empty and allocated again when data moves. */
static SSL *
conn_ssl_new(SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl != NULL)
        SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    return ssl;
}

/* The SASL state and the channel bindings it reads go together. */
static void
conn_sasl_drop(roost_session_t *s)
{
    roost_sasl_free(s->sasl);
    s->sasl = NULL;
    roost_free(s->cb);
    s->cb = NULL;
}

/* --- per-address limits --- */

static conn_ip_t *
conn_ip(const char *ip, int create)
{
    conn_ip_t *e;

    HASH_FIND_STR(conn_ips, ip, e);
    if (e == NULL && create) {
        e = roost_xcalloc(1, sizeof(*e)); /* conn_ip_gc */
        snprintf(e->ip, sizeof(e->ip), "%s", ip);
        HASH_ADD_STR(conn_ips, ip, e);
    }
    return e;
}

/* Forgets failures older than the window; drops an unused entry. */
static void
conn_ip_gc(conn_ip_t *e)
{
    if (e->fails > 0 &&
        conn_now_ms() - e->fail_start >= roost_srv->cfg->auth_failure_window)
        e->fails = 0;
    if (e->conns == 0 && e->fails == 0) {
        HASH_DEL(conn_ips, e);
        roost_free(e);
    }
}

/* The transport of s (its socket) is gone. */
static void
conn_transport_gone(roost_session_t *s)
{
    conn_ip_t *e = conn_ip(s->addr, 0);

    if (e != NULL) {
        e->conns--;
        conn_ip_gc(e);
    }
}

/* Whether logins from s's address are refused for now (too many recent
 * failures: password guessing from one place). */
static int
conn_auth_blocked(roost_session_t *s)
{
    int64_t max = roost_srv->cfg->auth_failures_per_ip;
    conn_ip_t *e = max > 0 ? conn_ip(s->addr, 0) : NULL;

    if (e == NULL)
        return 0;
    conn_ip_gc(e); /* s's connection keeps it */
    return e->fails >= max;
}

static void
conn_auth_failed(roost_session_t *s)
{
    conn_ip_t *e;

    if (roost_srv->cfg->auth_failures_per_ip <= 0)
        return;
    e = conn_ip(s->addr, 1);
    conn_ip_gc(e);
    if (e->fails == 0)
        e->fail_start = conn_now_ms();
    e->fails++;
}

/* --- pre-auth limits (issue 6) ---
 *
 * Until SASL succeeds a connection is anyone's, and what it may cost is
 * bounded three ways.  limits.preauth_max_bytes: the bytes it may send
 * (counted as they arrive in its input buffer, so after TLS: the XML
 * the parser would see; the TLS handshake is bounded by auth_timeout
 * and the read rate).  limits.preauth_max_stanza_size: a smaller stanza
 * limit (core/stream.c lifts it at SASL success).  And
 * limits.preauth_max_total over all of them: input buffered, parser
 * state, output queued and the session itself.  Over that total, new
 * connections are refused at accept, and a connection whose input takes
 * the total over stops being read (its bytes wait in the kernel, TCP
 * flow control); paused ones are read again, oldest first, as the total
 * falls.  Nobody is dropped for it: auth_timeout ends connections that
 * hold memory without authenticating, and dropping the oldest would let
 * a flood of new connections evict logins in progress.
 *
 * Incoming s2s streams (until a domain pair is verified) and component
 * connections (until the handshake) use the same accounting through
 * roost_preauth_*(): they count into the total and are refused at
 * accept when it is full, their bytes and stanzas are bounded alike;
 * they are not paused (each holds at most preauth_max_bytes of input,
 * and connect_timeout / auth_timeout ends them). */

static size_t
conn_pending_input(roost_session_t *s)
{
    struct bufferevent *under;
    size_t n;

    if (s->bev == NULL)
        return 0;
    n = evbuffer_get_length(bufferevent_get_input(s->bev));
    under = bufferevent_get_underlying(s->bev);
    if (under != NULL)
        n += evbuffer_get_length(bufferevent_get_input(under));
    return n;
}

static size_t conn_pending_output(roost_session_t *s);
static void conn_stage_drop(roost_session_t *s);

static void
conn_paused_del(roost_session_t *s)
{
    if (!s->mem_paused)
        return;
    if (s->paused_prev != NULL)
        s->paused_prev->paused_next = s->paused_next;
    else
        conn_paused_head = s->paused_next;
    if (s->paused_next != NULL)
        s->paused_next->paused_prev = s->paused_prev;
    else
        conn_paused_tail = s->paused_prev;
    s->paused_next = s->paused_prev = NULL;
    s->mem_paused = 0;
}

/* Under the total again: the connection paused longest is read again
 * (one per event; each event of an unauthenticated connection comes
 * here, so they all get their turn as memory is given back). */
static void
conn_preauth_resume(void)
{
    int64_t max = roost_srv->cfg->preauth_max_total;
    roost_session_t *s = conn_paused_head;

    if (s == NULL || (max > 0 && conn_preauth_total >= (size_t)max))
        return;
    conn_paused_del(s);
    if (s->bev != NULL && !s->closing && !s->reads_paused)
        bufferevent_enable(s->bev, EV_READ);
}

void
roost_preauth_account(size_t *mem, size_t cost)
{
    conn_preauth_total = conn_preauth_total - *mem + cost;
    *mem = cost;
    conn_preauth_resume();
}

int
roost_preauth_count(size_t *read, size_t *mark, size_t len)
{
    int64_t max = roost_srv->cfg->preauth_max_bytes;

    if (len > *mark)
        *read += len - *mark;
    *mark = len;
    return max > 0 && *read > (size_t)max;
}

size_t
roost_preauth_max_stanza(void)
{
    const roost_config_t *cfg = roost_srv->cfg;

    return (size_t)(cfg->preauth_max_stanza < cfg->max_stanza_size
                        ? cfg->preauth_max_stanza
                        : cfg->max_stanza_size);
}

/* Brings s's share of the total up to date: O(1). */
static void
conn_preauth_update(roost_session_t *s)
{
    if (!s->preauth)
        return;
    roost_preauth_account(
        &s->preauth_mem,
        sizeof(*s) + conn_pending_input(s) + conn_pending_output(s) +
            (s->stream != NULL ? roost_stream_memory(s->stream) : 0));
}

/* After s's input was processed: past the total, s is not read until
 * the total falls. */
static void
conn_preauth_check(roost_session_t *s)
{
    int64_t max = roost_srv->cfg->preauth_max_total;

    conn_preauth_update(s);
    if (!s->preauth || max <= 0 || conn_preauth_total <= (size_t)max ||
        s->mem_paused || s->closing || s->bev == NULL)
        return;
    roost_session_log(s, ROOST_LOG_INFO,
                      "unauthenticated connections hold %zu bytes "
                      "(preauth_max_total): reading paused",
                      conn_preauth_total);
    bufferevent_disable(s->bev, EV_READ);
    s->mem_paused = 1;
    s->paused_next = NULL;
    s->paused_prev = conn_paused_tail;
    if (conn_paused_tail != NULL)
        conn_paused_tail->paused_next = s;
    else
        conn_paused_head = s;
    conn_paused_tail = s;
}

/* s authenticated or goes: it no longer counts. */
static void
conn_preauth_leave(roost_session_t *s)
{
    if (!s->preauth)
        return;
    s->preauth = 0;
    conn_paused_del(s);
    roost_preauth_account(&s->preauth_mem, 0);
}

void
roost_addr_str(const struct sockaddr *sa, char out[ROOST_ADDR_STRLEN])
{
    snprintf(out, ROOST_ADDR_STRLEN, "?");
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
                  ROOST_ADDR_STRLEN);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
                  ROOST_ADDR_STRLEN);
}

int
roost_preauth_full(const char *ip)
{
    int64_t max = roost_srv->cfg->preauth_max_total;
    int64_t now;

    if (max <= 0 || conn_preauth_total < (size_t)max)
        return 0;
    conn_refused++;
    now = conn_now_ms();
    if (now - conn_refuse_logged >= 1000) {
        ROOST_LOG(ROOST_LOG_WARN, "core",
                  "refusing a connection from %s: unauthenticated "
                  "connections hold %zu bytes (preauth_max_total); "
                  "%u refused since the last report",
                  ip, conn_preauth_total, conn_refused);
        conn_refuse_logged = now;
        conn_refused = 0;
    }
    return 1;
}

/* Whether a new connection is refused: unauthenticated connections hold
 * all they may.  A connection without TLS first gets a stream header and
 * <resource-constraint/> (RFC 6120 §4.9.3.17), written to the socket in
 * one non-blocking call; direct TLS just closes (a handshake is not
 * cheap). */
static int
conn_preauth_refuse(evutil_socket_t fd, const roost_listen_conf_t *l,
                    const char *ip)
{
    static const char msg[] =
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        "<stream:error><resource-constraint "
        "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        "</stream:stream>";
    char junk[512];

    if (!roost_preauth_full(ip))
        return 0;
    if (l->tls != ROOST_TLS_DIRECT) {
        /* Unread input would turn the close into a reset that can
         * overtake the error: take what has arrived. */
        (void)!recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
        (void)!send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    return 1;
}

/* --- lifetime --- */

void
roost_conn_hold(roost_session_t *s)
{
    s->refs++;
}

static void
conn_free_now(roost_session_t *s)
{
    roost_server_unbind(s);
    conn_busy_del(s);
    conn_preauth_leave(s);
    if (s->pinned != NULL)
        roost_user_unpin(s->pinned);
    conn_stage_drop(s);
    if (s->bev != NULL) {
        bufferevent_free(s->bev);
        conn_transport_gone(s);
    }
    if (s->auth_timer != NULL)
        event_free(s->auth_timer);
    if (s->fail_timer != NULL)
        event_free(s->fail_timer);
    if (s->idle_timer != NULL)
        event_free(s->idle_timer);
    roost_stream_free(s->stream);
    roost_sm_free(s);
    conn_sasl_drop(s);
    roost_free(s->sasl_out);
    roost_free(s->sasl_cond);
    roost_free(s->sasl_user);
    roost_free(s->sasl_mech);
    roost_free(s->sasl_in);
    roost_free(s->sasl_in2);
    roost_free(s->slots);
    roost_jid_free(s->jid);
    if (s->all_prev != NULL)
        s->all_prev->all_next = s->all_next;
    else
        roost_srv->all = s->all_next;
    if (s->all_next != NULL)
        s->all_next->all_prev = s->all_prev;
    roost_srv->nsessions--;
    roost_free(s);
    if (roost_srv->shutting_down && roost_srv->nsessions == 0)
        event_base_loopbreak(roost_srv->base);
}

void
roost_conn_free_all(void)
{
    conn_ip_t *e, *tmp;

    while (roost_srv->all != NULL) {
        roost_session_t *s = roost_srv->all;

        s->refs = 0;
        s->freeing = 1;
        conn_free_now(s);
    }
    HASH_ITER (hh, conn_ips, e, tmp) {
        HASH_DEL(conn_ips, e);
        roost_free(e);
    }
    if (conn_rate_cfg != NULL)
        ev_token_bucket_cfg_free(conn_rate_cfg);
    conn_rate_cfg = NULL;
    if (conn_sweep_ev != NULL)
        event_free(conn_sweep_ev);
    conn_sweep_ev = NULL;
    if (conn_flush_ev != NULL)
        event_free(conn_flush_ev);
    conn_flush_ev = NULL;
    while (conn_stage_nspare > 0)
        evbuffer_free(conn_stage_spare[--conn_stage_nspare]);
}

void
roost_conn_release(roost_session_t *s)
{
    if (--s->refs == 0 && s->freeing)
        conn_free_now(s);
}

static void
conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_session_t *s = arg;

    /* The loop turn that closed the session is over: nobody is inside a
     * callback for it any more. */
    roost_conn_release(s);
}

static void
conn_schedule_free(roost_session_t *s)
{
    struct timeval zero = {0, 0};

    if (s->freeing)
        return;
    s->freeing = 1;
    s->closing = 1;
    roost_server_unbind(s);
    roost_sm_end(s);
    if (s->bev != NULL)
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    event_base_once(roost_srv->base, -1, EV_TIMEOUT, conn_free_cb, s, &zero);
}

/* Bytes still queued for the peer: in the bufferevent and, after
 * STARTTLS, in the socket bufferevent under the TLS filter. */
static size_t
conn_pending_output(roost_session_t *s)
{
    struct bufferevent *under;
    size_t n;

    if (s->bev == NULL)
        return 0;
    n = evbuffer_get_length(bufferevent_get_output(s->bev));
    if (s->stage != NULL)
        n += evbuffer_get_length(s->stage);
    under = bufferevent_get_underlying(s->bev);
    if (under != NULL)
        n += evbuffer_get_length(bufferevent_get_output(under));
    return n;
}

/* --- output --- */

/* HOUSE 13: what a loop turn queues for a client leaves as one write.
 * Over a plain socket (and direct TLS, libevent's socket variant) the
 * bufferevent already writes once, when the socket is writable.  The
 * STARTTLS filter, though, encrypts each addition at once into a record
 * of its own (an SSL_write, ~8,000 instructions for a small stanza, and
 * 22 bytes more on the wire); so under it conn_write stages the turn's
 * output, and conn_flush_cb hands each session's stage to the filter
 * once, after the turn's events: one record per chain instead of one per
 * stanza. */
static void
conn_stage_drop(roost_session_t *s)
{
    if (s->stage == NULL)
        return;
    if (s->flush_prev != NULL)
        s->flush_prev->flush_next = s->flush_next;
    else
        conn_flush_head = s->flush_next;
    if (s->flush_next != NULL)
        s->flush_next->flush_prev = s->flush_prev;
    s->flush_next = s->flush_prev = NULL;
    evbuffer_drain(s->stage, evbuffer_get_length(s->stage));
    if (conn_stage_nspare < CONN_STAGE_SPARES)
        conn_stage_spare[conn_stage_nspare++] = s->stage;
    else
        evbuffer_free(s->stage);
    s->stage = NULL;
}

/* Hands s's staged output to its transport now (before the transport
 * changes hands, and at the end of the turn). */
static void
conn_stage_flush(roost_session_t *s)
{
    if (s->stage == NULL)
        return;
    if (s->bev != NULL && !s->freeing)
        evbuffer_add_buffer(bufferevent_get_output(s->bev), s->stage);
    conn_stage_drop(s);
}

static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    while (conn_flush_head != NULL)
        conn_stage_flush(conn_flush_head);
}

/* The evbuffer s's output goes to this turn. */
static struct evbuffer *
conn_out(roost_session_t *s)
{
    if (bufferevent_get_underlying(s->bev) == NULL)
        return bufferevent_get_output(s->bev);
    if (s->stage == NULL) {
        if (conn_flush_ev == NULL)
            conn_flush_ev =
                event_new(roost_srv->base, -1, 0, conn_flush_cb, NULL);
        s->stage = conn_stage_nspare > 0 ? conn_stage_spare[--conn_stage_nspare]
                                         : evbuffer_new();
        if (s->stage == NULL)
            roost_fatal("out of memory");
        s->flush_prev = NULL;
        s->flush_next = conn_flush_head;
        if (conn_flush_head != NULL)
            conn_flush_head->flush_prev = s;
        conn_flush_head = s;
        event_active(conn_flush_ev, EV_WRITE, 0);
    }
    return s->stage;
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
    roost_session_t *s = arg;

    if (s->closing || s->bev == NULL)
        return; /* conn_close_poll_cb frees */
    if (s->reads_paused) {
        s->reads_paused = 0;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        if (!s->input_paused && !s->mem_paused)
            bufferevent_enable(bev, EV_READ);
        conn_process_input(s);
    } else {
        conn_preauth_update(s); /* output was flushed */
    }
}

static void
conn_write(roost_session_t *s, const char *buf, size_t len)
{
    struct evbuffer *out;
    size_t queued;
    int64_t hwm = roost_srv->cfg->output_hwm;

    if (s->bev == NULL || s->freeing)
        return;
    out = conn_out(s);
    evbuffer_add(out, buf, len);
    /* After STARTTLS the TLS filter hands its records to the socket
     * bufferevent below it at once: count both. */
    queued = conn_pending_output(s);
    if ((int64_t)queued > 4 * hwm) {
        /* A reader this slow would make us buffer without bound. */
        roost_session_log(s, ROOST_LOG_WARN,
                          "closing: %zu bytes queued to a slow reader", queued);
        conn_stage_drop(s);
        out = bufferevent_get_output(s->bev);
        evbuffer_drain(out, evbuffer_get_length(out));
        conn_schedule_free(s);
        return;
    }
    if ((int64_t)queued > hwm && !s->reads_paused) {
        /* HOUSE 13: stop reading from a client that does not read. */
        s->reads_paused = 1;
        bufferevent_disable(s->bev, EV_READ);
        bufferevent_setwatermark(s->bev, EV_WRITE, (size_t)(hwm / 2), 0);
    }
}

void
roost_conn_write(roost_session_t *s, const char *buf, size_t len)
{
    conn_write(s, buf, len);
}

/* Sends st to s after the ROOST_EV_DELIVER hooks. */
static int
conn_send_now(roost_session_t *s, roost_stanza_t *st)
{
    if (s->sm != NULL && roost_sm_outbound(s, st) != 0) {
        /* A client that never acknowledges (or a hibernating session
         * that is not resumed) must not queue without bound. */
        roost_session_log(s, ROOST_LOG_WARN,
                          "too many unacknowledged stanzas: closing");
        roost_conn_close(s, "policy-violation",
                         "too many unacknowledged stanzas");
        /* The session is gone (unbound): this one goes where the queued
         * ones went. */
        roost_sm_reroute(s, st);
        return 0;
    }
    if (s->stream != NULL)
        roost_stream_send(s->stream, st);
    return 0;
}

int
roost_conn_send(roost_session_t *s, roost_stanza_t *st)
{
    roost_stanza_t *cur;
    int rc;

    if (s->closing)
        return -ROOST_ENOTFOUND;
    if (s->jid == NULL)
        return conn_send_now(s, st);
    /* Per-session filters (privacy active lists, client state) and
     * rewrites (mod_vcard's stale avatar hash): what goes out, and into
     * the XEP-0198 queue, is what the hooks leave in cur. */
    cur = roost_stanza_ref(st);
    if (roost_hooks_deliver_r(s, &cur) == ROOST_HANDLED)
        rc = -ROOST_EDENIED;
    else
        rc = conn_send_now(s, cur);
    roost_stanza_unref(cur);
    return rc;
}

void
roost_conn_close(roost_session_t *s, const char *cond, const char *text)
{
    if (s->closing)
        return;
    if (s->stream == NULL) {
        conn_schedule_free(s);
        return;
    }
    if (cond != NULL)
        roost_stream_error(s->stream, cond, text);
    else
        roost_stream_close(s->stream);
}

/* --- stream callbacks --- */

static void
op_write(void *ud, const char *buf, size_t len)
{
    conn_write(ud, buf, len);
}

static int
op_host_ok(void *ud, const char *domain)
{
    roost_session_t *s = ud;
    roost_host_t *h = roost_server_host(domain);

    if (h != NULL && s->host == NULL) {
        s->host = h;
        /* A listener without TLS cannot require it (tests only). */
        roost_stream_set_require_encryption(
            s->stream,
            h->conf->require_encryption && s->listen->tls != ROOST_TLS_NONE);
    }
    return h != NULL;
}

static int
conn_cb_data(void *arg, const char *type, unsigned char *out, size_t *len)
{
    roost_session_t *s = arg;

    /* Runs on a worker: read only what the loop computed before. */
    for (int i = 0; s->cb != NULL && i < 2 && s->cb->names[i] != NULL; i++) {
        if (strcmp(s->cb->names[i], type) == 0 && s->cb->len[i] <= *len) {
            memcpy(out, s->cb->data[i], s->cb->len[i]);
            *len = s->cb->len[i];
            return 0;
        }
    }
    return -1;
}

static void
conn_new_sasl(roost_session_t *s)
{
    SSL *ssl = NULL;
    int tls = roost_stream_tls_active(s->stream);

    roost_sasl_free(s->sasl);
    s->sasl = NULL;
    if (tls && s->bev != NULL)
        ssl = bufferevent_openssl_get_ssl(s->bev);
    if (ssl != NULL && (s->cb == NULL || !s->cb->filled)) {
        const char *const *types = roost_tls_cb_types(ssl);
        int n = 0;

        if (s->cb == NULL)
            s->cb = roost_xcalloc(1, sizeof(*s->cb)); /* conn_sasl_drop */
        s->cb->names[0] = s->cb->names[1] = s->cb->names[2] = NULL;
        for (int i = 0; types != NULL && types[i] != NULL && n < 2; i++) {
            s->cb->len[n] = sizeof(s->cb->data[n]);
            if (roost_tls_channel_binding(ssl, types[i], s->cb->data[n],
                                          &s->cb->len[n]) == 0)
                s->cb->names[n++] = types[i];
        }
        /* Before the handshake ends there are none yet: look again. */
        s->cb->filled = SSL_is_init_finished(ssl);
    } else if (ssl == NULL && s->cb != NULL) {
        s->cb->names[0] = s->cb->names[1] = s->cb->names[2] = NULL;
        s->cb->filled = 0;
    }
    s->sasl = roost_sasl_new(
        s->host->name, tls,
        s->cb != NULL && s->cb->names[0] != NULL ? s->cb->names : NULL,
        conn_cb_data, s, s->host->conf->anonymous);
}

static const char *const *
op_sasl_mechs(void *ud, const char *host)
{
    roost_session_t *s = ud;

    conn_new_sasl(s);
    return s->sasl != NULL ? roost_sasl_mechs(s->sasl) : NULL;
}

/* XEP-0440: tell clients which channel-binding types -PLUS can use, so
 * they neither guess a type we lack nor send the "y" flag. */
static void
op_sasl_features(void *ud, roost_stanza_t *el)
{
    roost_session_t *s = ud;
    roost_stanza_t *cb;

    roost_modules_preauth_features(s->host, el);
    if (s->cb == NULL || s->cb->names[0] == NULL)
        return;
    cb = roost_stanza_add_child(el, "urn:xmpp:sasl-cb:0",
                                "sasl-channel-binding");
    for (int i = 0; i < 2 && s->cb->names[i] != NULL; i++)
        roost_stanza_set_attr(
            roost_stanza_add_child(cb, NULL, "channel-binding"), "type",
            s->cb->names[i]);
}

/* XEP-0077 before authentication: the module's answer goes straight to
 * this session (replies carry no to/from). */
static int
op_preauth_iq(void *ud, roost_stanza_t *iq)
{
    roost_session_t *s = ud;
    roost_stanza_t *payload = roost_stanza_first_child(iq);
    const char *type = roost_stanza_attr(iq, "type");
    roost_iq_entry_t *e;
    roost_handler_fn fn = NULL;
    roost_jid_t *host;
    roost_ev_t ev;
    int handled = 0;

    if (s->host == NULL || payload == NULL || roost_stanza_ns(payload) == NULL)
        return 0;
    e = roost_preauth_iq_find(s->host, roost_stanza_ns(payload),
                              roost_stanza_name(payload));
    if (e == NULL)
        return 0;
    if (type != NULL && strcmp(type, "get") == 0)
        fn = e->get;
    else if (type != NULL && strcmp(type, "set") == 0)
        fn = e->set;
    else if (type != NULL &&
             (strcmp(type, "result") == 0 || strcmp(type, "error") == 0))
        return 1; /* RFC 6120 §8.3.1: never answer those */
    host = roost_jid_new(s->host->name);
    if (fn != NULL && host != NULL && roost_stanza_attr(iq, "id") != NULL) {
        ev.mod = e->mod;
        ev.origin = s;
        ev.stanza = iq;
        ev.from = NULL;
        ev.to = host;
        roost_conn_hold(s);
        handled = fn(&ev, e->arg) == ROOST_HANDLED;
        roost_conn_release(s);
    }
    if (!handled && !s->closing) {
        roost_stanza_t *err = roost_stanza_error(
            iq,
            fn == NULL ? ROOST_SE_BAD_REQUEST : ROOST_SE_SERVICE_UNAVAILABLE,
            NULL);

        roost_stanza_set_attr(err, "from", NULL);
        roost_stanza_set_attr(err, "to", NULL);
        roost_conn_send(s, err);
        roost_stanza_unref(err);
    }
    roost_jid_free(host);
    return 1;
}

static void
op_starttls(void *ud)
{
    roost_session_t *s = ud;
    SSL *ssl = conn_ssl_new(s->host->tls);
    struct bufferevent *tb;
    struct evbuffer *in = bufferevent_get_input(s->bev);

    /* Anything the client sent after <starttls/> and before the handshake
     * is plaintext injection (the STARTTLS command-injection class of
     * bugs): it must never be read as if it came over TLS. */
    evbuffer_drain(in, evbuffer_get_length(in));
    /* A filter over the socket bufferevent, which writes once per loop
     * turn; conn_write stages a turn's output for the filter, which would
     * otherwise make a record of every addition (HOUSE 13, see "output"
     * above).  A TLS bufferevent on the socket would save about 1 KiB per
     * session, but libevent's socket variant writes each stanza with its
     * own write(2), which doubled the CPU per message (issue 7). */
    tb = bufferevent_openssl_filter_new(
        roost_srv->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tb == NULL) {
        SSL_free(ssl);
        roost_stream_tls_done(s->stream, 0);
        return;
    }
    s->bev = tb;
    s->in_mark = 0;
    bufferevent_setcb(tb, conn_read_cb, conn_write_cb, conn_event_cb, s);
    bufferevent_enable(tb, s->mem_paused ? EV_WRITE : EV_READ | EV_WRITE);
    s->input_paused = 0;
    roost_stream_tls_done(s->stream, 1);
}

static void
conn_sasl_deliver(roost_session_t *s)
{
    s->input_paused = 0;
    roost_stream_sasl_result(s->stream, s->sasl_status, s->sasl_out,
                             s->sasl_cond, s->sasl_user);
    if (s->sasl_status == ROOST_SASL_SUCCESS) {
        roost_session_log(s, ROOST_LOG_INFO, "authenticated as %s@%s (%s)",
                          s->sasl_user, s->host->name,
                          s->sasl != NULL && roost_sasl_mech_used(s->sasl)
                              ? roost_sasl_mech_used(s->sasl)
                              : (s->sasl_mech ? s->sasl_mech : "?"));
        /* Never needed again on this stream: idle sessions are most
         * sessions, so they carry no SASL state (issue 7, RSS). */
        conn_sasl_drop(s);
        roost_free(s->sasl_out);
        roost_free(s->sasl_in);
        roost_free(s->sasl_mech);
        roost_free(s->sasl_cond);
        roost_free(s->sasl_in2);
        s->sasl_out = s->sasl_in = s->sasl_mech = s->sasl_cond = NULL;
        s->sasl_in2 = NULL;
        /* The pre-auth limits end here (the stream lifted its stanza
         * limit itself). */
        s->authed = 1;
        conn_preauth_leave(s);
    }
    if (!s->closing && s->bev != NULL) {
        if (!s->reads_paused && !s->mem_paused)
            bufferevent_enable(s->bev, EV_READ);
        conn_process_input(s);
    }
}

static void
conn_fail_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_session_t *s = arg;

    if (!s->closing)
        conn_sasl_deliver(s);
    roost_conn_release(s);
}

static int
conn_sasl_work(void *arg)
{
    roost_session_t *s = arg;
    const char *out = NULL, *cond = NULL;

    s->sasl_status =
        roost_sasl_step(s->sasl, s->sasl_mech, s->sasl_in, &out, &cond);
    s->sasl_out = roost_xstrdup(out != NULL ? out : "");
    s->sasl_cond = cond != NULL ? roost_xstrdup(cond) : NULL;
    if (s->sasl_status == ROOST_SASL_SUCCESS &&
        roost_sasl_user(s->sasl) != NULL)
        s->sasl_user = roost_xstrdup(roost_sasl_user(s->sasl));
    return 0;
}

/* The account's state is in memory: only now does the client learn that
 * it is authenticated, so nothing it sends next waits on storage. */
static void
conn_user_ready(void *arg, roost_user_t *u)
{
    roost_session_t *s = arg;

    s->pinned = u; /* keeps the pin roost_user_need_login took, until free */
    if (!s->closing)
        conn_sasl_deliver(s);
    roost_conn_release(s);
}

static void
conn_sasl_done(void *arg, int rc)
{
    roost_session_t *s = arg;

    if (s->closing) {
        roost_conn_release(s);
        return;
    }
    /* Every successful authentication comes here (SASL and SASL2 steps
     * from the CPU queue, FAST from the storage queue, ANONYMOUS): the
     * login's own load must not wait behind postponed contact loads. */
    if (s->sasl_status == ROOST_SASL_SUCCESS && s->sasl_user != NULL &&
        s->pinned == NULL) {
        roost_user_need_login(s->host, s->sasl_user, conn_user_ready, s);
        return; /* conn_user_ready releases */
    }
    if (s->sasl_status == ROOST_SASL_FAILURE) {
        struct timeval tv;

        if (s->sasl_cond == NULL ||
            strcmp(s->sasl_cond, "temporary-auth-failure") != 0)
            conn_auth_failed(s);
        /* Slow down password guessing (and do not tell unknown users
         * from wrong passwords by timing). */
        timeval_ms(&tv, roost_srv->cfg->auth_fail_delay);
        roost_session_log(s, ROOST_LOG_INFO, "authentication failed: %s",
                          s->sasl_cond ? s->sasl_cond : "?");
        if (s->fail_timer == NULL)
            s->fail_timer = evtimer_new(roost_srv->base, conn_fail_timer_cb, s);
        evtimer_add(s->fail_timer, &tv);
        return; /* the timer releases */
    }
    conn_sasl_deliver(s);
    roost_conn_release(s);
}

/* The TLS of s, for FAST channel binding, or NULL. */
static SSL *
conn_fast_ssl(roost_session_t *s)
{
    return roost_stream_tls_active(s->stream) && s->bev != NULL
               ? bufferevent_openssl_get_ssl(s->bev)
               : NULL;
}

_Static_assert(ROOST_FAST_NMECHS < ROOST_STREAM_FAST_MAX, "FAST mechs");

/* XEP-0484: the HT mechanisms whose binding this connection has. */
static void
op_fast_mechs(void *ud, const char **out)
{
    roost_fast_mechs(conn_fast_ssl(ud), out);
}

/* XEP-0484: the HT-SHA-256 check runs on the storage worker (it reads
 * and may update the account's tokens). */
static int
conn_fast_work(void *arg)
{
    roost_session_t *s = arg;
    char *user = NULL, *add = NULL;
    int rc = roost_fast_verify(
        s->host->name, s->sasl_in2, s->sasl_mech, s->sasl_in, s->cb->fast,
        s->cb->fast_len, s->fast_invalidate,
        roost_srv->cfg->fast_token_lifetime, &s->fast_rotate, &user, &add);

    if (rc == 0) {
        s->sasl_status = ROOST_SASL_SUCCESS;
        s->sasl_user = user;
        s->sasl_out = add;
    } else {
        s->sasl_status = ROOST_SASL_FAILURE;
        /* XEP-0484 §5.2: a token we no longer trust. */
        s->sasl_cond =
            roost_xstrdup(rc == -ROOST_EAUTH     ? "not-authorized"
                          : rc == -ROOST_EDENIED ? "credentials-expired"
                                                 : "temporary-auth-failure");
    }
    return 0;
}

/* Back on the loop: a token close to expiry is rotated in <success/>. */
static void
conn_fast_done(void *arg, int rc)
{
    roost_session_t *s = arg;

    if (!s->closing && s->fast_rotate && s->sasl_status == ROOST_SASL_SUCCESS)
        roost_stream_fast_rotate(s->stream, s->sasl_mech);
    conn_sasl_done(s, rc);
}

typedef struct {
    char *host, *user, *agent, *mech, *token;
    int64_t expiry;
} conn_fast_put_t;

static int
conn_fast_put_work(void *arg)
{
    conn_fast_put_t *p = arg;

    return roost_fast_store_new(p->host, p->user, p->agent, p->mech, p->token,
                                p->expiry);
}

static void
conn_fast_put_done(void *arg, int rc)
{
    conn_fast_put_t *p = arg;

    if (rc < 0)
        ROOST_LOG(ROOST_LOG_WARN, p->host, "storing a FAST token of %s: %s",
                  p->user, roost_strerror(rc));
    roost_free(p->host);
    roost_free(p->user);
    roost_free(p->agent);
    roost_free(p->mech);
    roost_free(p->token);
    roost_free(p);
}

/* XEP-0484 §3.3: a token for this user and user agent, stored as the
 * account's 'new' token (written behind: a token lost to a crash only
 * means one password login). */
static int
op_fast_token(void *ud, const char *mech, char *token, char *expiry)
{
    roost_session_t *s = ud;
    const char *agent = roost_stream_sasl2_agent(s->stream);
    const char *user = roost_stream_user(s->stream);
    conn_fast_put_t *p;
    char tok[ROOST_FAST_TOKEN_LEN];
    int64_t exp;
    time_t t;
    struct tm tm;

    if (agent == NULL || user == NULL || !roost_fast_is_mech(mech) ||
        roost_srv->cfg->fast_token_lifetime <= 0)
        return -1;
    roost_fast_new_token(tok, roost_srv->cfg->fast_token_lifetime, &exp);
    t = (time_t)(exp / 1000);
    gmtime_r(&t, &tm);
    strftime(expiry, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(token, 64, "%s", tok);
    p = roost_xcalloc(1, sizeof(*p)); /* conn_fast_put_done */
    p->host = roost_xstrdup(s->host->name);
    p->user = roost_xstrdup(user);
    p->agent = roost_xstrdup(agent);
    p->mech = roost_xstrdup(mech);
    p->token = roost_xstrdup(tok);
    p->expiry = exp;
    roost_worker_submit(ROOST_WQ_STORAGE, conn_fast_put_work,
                        conn_fast_put_done, p);
    return 0;
}

static void
op_sasl_step(void *ud, const char *mech, const char *data)
{
    roost_session_t *s = ud;

    roost_free(s->sasl_out);
    roost_free(s->sasl_cond);
    roost_free(s->sasl_user);
    roost_free(s->sasl_mech);
    roost_free(s->sasl_in);
    s->sasl_out = s->sasl_cond = s->sasl_user = NULL;
    s->sasl_mech = mech != NULL ? roost_xstrdup(mech) : NULL;
    s->sasl_in = roost_xstrdup(data != NULL ? data : "");
    if (mech != NULL && roost_fast_is_mech(mech)) {
        const char *agent = roost_stream_sasl2_agent(s->stream);

        s->input_paused = 1;
        roost_free(s->sasl_in2);
        s->sasl_in2 = agent != NULL ? roost_xstrdup(agent) : NULL;
        s->fast_invalidate = roost_stream_fast_invalidate(s->stream);
        roost_conn_hold(s);
        if (agent == NULL || !roost_stream_tls_active(s->stream) ||
            roost_srv->cfg->fast_token_lifetime <= 0 || conn_auth_blocked(s)) {
            /* XEP-0484 §4.1: the client names its user agent; §7: TLS. */
            s->sasl_status = ROOST_SASL_FAILURE;
            s->sasl_cond = roost_xstrdup(agent == NULL ? "malformed-request"
                                                       : "not-authorized");
            conn_sasl_done(s, 0);
            return;
        }
        /* The channel binding is read here, on the loop; the worker
         * gets a copy. */
        if (s->cb == NULL)
            s->cb = roost_xcalloc(1, sizeof(*s->cb)); /* conn_sasl_drop */
        s->cb->fast_len = sizeof(s->cb->fast);
        if (roost_fast_cb(conn_fast_ssl(s), mech, s->cb->fast,
                          &s->cb->fast_len) != 0) {
            /* Not offered here: this TLS has no binding of its type. */
            s->sasl_status = ROOST_SASL_FAILURE;
            s->sasl_cond = roost_xstrdup("invalid-mechanism");
            conn_sasl_done(s, 0);
            return;
        }
        roost_worker_submit(ROOST_WQ_STORAGE, conn_fast_work, conn_fast_done,
                            s);
        return;
    }
    if (mech != NULL)
        conn_new_sasl(s);
    s->input_paused = 1;
    if (s->sasl == NULL || (mech != NULL && conn_auth_blocked(s))) {
        if (s->sasl != NULL)
            roost_session_log(s, ROOST_LOG_INFO,
                              "login refused: too many failures from %s",
                              s->addr);
        s->sasl_status = ROOST_SASL_FAILURE;
        s->sasl_cond = roost_xstrdup("temporary-auth-failure");
        roost_conn_hold(s);
        conn_sasl_done(s, 0);
        return;
    }
    roost_conn_hold(s);
    roost_worker_submit(ROOST_WQ_CPU, conn_sasl_work, conn_sasl_done, s);
}

static const char *
op_bind(void *ud, const char *resource, roost_stanza_err_t *err)
{
    roost_session_t *s = ud;
    const char *full = roost_server_bind(s, resource, err);

    if (full != NULL) {
        if (s->auth_timer != NULL)
            evtimer_del(s->auth_timer);
        roost_session_log(s, ROOST_LOG_INFO, "bound");
    }
    return full;
}

static void
op_stanza(void *ud, roost_stanza_t *st)
{
    roost_session_t *s = ud;
    roost_sm_ctx_t saved;

    roost_conn_hold(s);
    /* Storage work this stanza causes holds its XEP-0198 ack. */
    roost_sm_enter(s, roost_sm_in(s), &saved);
    roost_router_c2s(s, st);
    roost_sm_leave(&saved);
    roost_conn_release(s);
}

/* A nonza for a module (XEP-0352 client state). */
static int
op_nonza(void *ud, roost_stanza_t *el)
{
    roost_session_t *s = ud;
    roost_iq_entry_t *e;
    roost_ev_t ev;

    if (roost_stanza_ns(el) == NULL)
        return 0;
    e = roost_nonza_find(s->host, roost_stanza_ns(el), roost_stanza_name(el));
    if (e == NULL)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.mod = e->mod;
    ev.origin = s;
    ev.stanza = el;
    ev.from = s->jid;
    roost_conn_hold(s);
    e->get(&ev, e->arg);
    roost_conn_release(s);
    return 1;
}

static void
op_inbound(void *ud)
{
    roost_sm_inbound(ud);
}

static void
op_reply(void *ud, roost_stanza_t *st)
{
    roost_conn_send(ud, st);
}

static int
op_sm(void *ud, roost_stanza_t *el, int bound)
{
    roost_session_t *s = ud;
    int stop;

    roost_conn_hold(s);
    stop = roost_sm_element(s, el, bound);
    roost_conn_release(s);
    return stop;
}

static void
op_features(void *ud, roost_stanza_t *el)
{
    roost_session_t *s = ud;

    roost_stanza_add_child(el, ROOST_NS_SM, "sm");
    roost_modules_stream_features(s->host, el);
}

static void
conn_close_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_session_t *s = arg;
    struct timeval tv = {0, 20000};

    /* Free once the last bytes (</stream:stream>) are on the wire, or
     * after the grace period for a peer that does not read. */
    s->close_polls++;
    if (conn_pending_output(s) == 0 ||
        s->close_polls * 20 >= CONN_CLOSE_GRACE_MS) {
        conn_schedule_free(s);
        return;
    }
    evtimer_add(s->auth_timer, &tv);
}

static void
op_closed(void *ud)
{
    roost_session_t *s = ud;
    struct timeval tv = {0, 0};

    s->closing = 1;
    roost_server_unbind(s);
    roost_sm_end(s);
    if (s->bev == NULL) {
        conn_schedule_free(s);
        return;
    }
    bufferevent_disable(s->bev, EV_READ);
    /* The unauthenticated-lifetime timer has no use any more: it becomes
     * the flush poll. */
    event_del(s->auth_timer);
    event_assign(s->auth_timer, roost_srv->base, -1, 0, conn_close_poll_cb, s);
    evtimer_add(s->auth_timer, &tv);
}

static void
op_error_sent(void *ud, const char *cond, const char *text)
{
    roost_session_log(ud, ROOST_LOG_INFO, "stream error %s%s%s", cond,
                      text != NULL ? ": " : "", text != NULL ? text : "");
}

static const roost_stream_ops_t conn_stream_ops = {
    .error_sent = op_error_sent,
    .write = op_write,
    .host_ok = op_host_ok,
    .sasl_mechs = op_sasl_mechs,
    .sasl_features = op_sasl_features,
    .preauth_iq = op_preauth_iq,
    .starttls = op_starttls,
    .sasl_step = op_sasl_step,
    .bind = op_bind,
    .stanza = op_stanza,
    .features = op_features,
    .closed = op_closed,
    .sm = op_sm,
    .inbound = op_inbound,
    .reply = op_reply,
    .nonza = op_nonza,
    .fast_token = op_fast_token,
    .fast_mechs = op_fast_mechs,
};

/* --- XEP-0198: hibernation and resumption --- */

/* The transport is gone but the session stays bound (still available to
 * its contacts), collecting stanzas in its queue until a resumption or
 * the timeout (core/sm.c). */
static void
conn_hibernate(roost_session_t *s)
{
    conn_stage_drop(s);
    if (s->bev != NULL) {
        bufferevent_free(s->bev);
        conn_transport_gone(s);
    }
    s->bev = NULL;
    roost_stream_free(s->stream);
    s->stream = NULL;
    conn_sasl_drop(s);
    evtimer_del(s->idle_timer);
    event_del(s->auth_timer);
    s->hibernating = 1;
    s->reads_paused = s->input_paused = 0;
    s->ping_outstanding = 0;
    roost_sm_hibernate(s);
}

static void
conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_session_t *s = arg;

    /* Input the client pipelined after <resume/>. */
    if (!s->closing && !s->reads_paused)
        conn_process_input(s);
    roost_conn_release(s);
}

int
roost_conn_resume(roost_session_t *n, roost_session_t *o)
{
    struct timeval tv, zero = {0, 0};

    if (o->bev != NULL) {
        /* XEP-0198 §5: the old stream, if the server still has it,
         * is terminated. */
        roost_session_log(o, ROOST_LOG_INFO,
                          "old connection replaced by a resumption");
        conn_stage_drop(o);
        bufferevent_free(o->bev);
        conn_transport_gone(o);
    }
    roost_stream_free(o->stream);
    conn_sasl_drop(o);
    /* What n wrote (its <resumed/>) goes first, on n's transport. */
    conn_stage_flush(n);
    o->bev = n->bev;
    o->stream = n->stream;
    o->sasl = n->sasl;
    o->cb = n->cb;
    n->bev = NULL;
    n->stream = NULL;
    n->sasl = NULL;
    n->cb = NULL;
    bufferevent_setcb(o->bev, conn_read_cb, conn_write_cb, conn_event_cb, o);
    roost_stream_set_owner(o->stream, o);
    roost_stream_set_bound(o->stream);
    o->listen = n->listen;
    memcpy(o->addr, n->addr, sizeof(o->addr));
    o->hibernating = 0;
    o->reads_paused = n->reads_paused;
    o->input_paused = 0;
    o->ping_outstanding = 0;
    o->last_input = conn_now_ms();
    event_del(o->auth_timer);
    timeval_ms(&tv, roost_srv->cfg->c2s_timeout);
    evtimer_add(o->idle_timer, &tv);
    /* The authenticated shell goes; its pin on the account with it. */
    conn_schedule_free(n);
    roost_sm_resumed(o);
    conn_busy_add(o);
    roost_conn_hold(o);
    event_base_once(roost_srv->base, -1, EV_TIMEOUT, conn_kick_cb, o, &zero);
    return 1;
}

/* --- input and events --- */

static void
conn_process_input(roost_session_t *s)
{
    struct bufferevent *bev = s->bev;
    struct evbuffer *in;

    if (bev == NULL)
        return;
    /* Input parsed here (after a read, or after a pause for SASL or
     * backpressure) can leave the stream idle: let the sweep see it. */
    conn_busy_add(s);
    roost_conn_hold(s);
    in = bufferevent_get_input(bev);
    while (!s->closing && !s->input_paused && !s->reads_paused &&
           evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used = 0;
        int rc;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        rc = roost_stream_feed(s->stream, v.iov_base, v.iov_len, &used);
        if (rc >= 0)
            evbuffer_drain(in, rc == 0 ? v.iov_len : used);
        /* STARTTLS swapped the bufferevent (and drained the old input),
         * or a resumption moved it to another session: nothing more to
         * do with this one. */
        if (s->bev != bev || s->freeing)
            break;
        if (rc < 0)
            break;
        if (rc == ROOST_EAGAIN) {
            roost_stream_state_t ss = roost_stream_state(s->stream);

            if (ss == ROOST_SS_TLS_WAIT || ss == ROOST_SS_SASL_WAIT) {
                s->input_paused = 1;
                break;
            }
        }
    }
    if (s->preauth && s->bev != NULL && !s->freeing) {
        /* What is left is counted already (conn_read_cb). */
        s->in_mark = evbuffer_get_length(bufferevent_get_input(s->bev));
        conn_preauth_check(s);
    }
    roost_conn_release(s);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
    roost_session_t *s = arg;

    s->ping_outstanding = 0;
    s->last_input = conn_now_ms();
    if (!s->authed && bev == s->bev && !s->closing) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t len = evbuffer_get_length(in);

        /* Bytes that arrived since the input was last looked at:
         * pipelined ones waiting for TLS or SASL count too. */
        if (roost_preauth_count(&s->preauth_read, &s->in_mark, len)) {
            roost_session_log(s, ROOST_LOG_INFO,
                              "closing: %zu bytes before authentication "
                              "(preauth_max_bytes)",
                              s->preauth_read);
            evbuffer_drain(in, len);
            s->in_mark = 0;
            roost_stream_error(s->stream, "policy-violation",
                               "too much data before authentication");
            conn_preauth_update(s);
            return;
        }
    }
    conn_process_input(s);
}

static void
conn_send_ping(roost_session_t *s)
{
    char buf[256];

    snprintf(buf, sizeof(buf),
             "<iq type='get' id='c2s-ping-%" PRIx64 "' from='%s'>"
             "<ping xmlns='urn:xmpp:ping'/></iq>",
             s->id, s->host->name);
    conn_write(s, buf, strlen(buf));
}

/* Idle detection (RFC 2779 3.2.4): one timer per connection, re-armed
 * once per c2s_timeout rather than touched on every read.  After a silent
 * period a bound client is pinged (XEP-0199); silence for another period
 * closes the stream. */
static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_session_t *s = arg;
    int64_t timeout = roost_srv->cfg->c2s_timeout;
    int64_t idle = conn_now_ms() - s->last_input;
    struct timeval tv;

    if (s->closing)
        return;
    if (idle < timeout) {
        timeval_ms(&tv, timeout - idle);
        evtimer_add(s->idle_timer, &tv);
        return;
    }
    if (s->jid != NULL && !s->ping_outstanding) {
        s->ping_outstanding = 1;
        /* With XEP-0198 an <r/> asks for a sign of life without adding
         * a stanza to count. */
        if (!roost_sm_keepalive(s))
            conn_send_ping(s);
        timeval_ms(&tv, timeout);
        evtimer_add(s->idle_timer, &tv);
        s->last_input = conn_now_ms();
        return;
    }
    roost_session_log(s, ROOST_LOG_INFO, "timed out");
    if (roost_sm_resumable(s)) {
        conn_hibernate(s);
        return;
    }
    roost_stream_error(s->stream, "connection-timeout", NULL);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    roost_session_t *s = arg;

    if (what & BEV_EVENT_TIMEOUT) {
        /* Only the write timeout is set: a closing peer that never
         * reads. */
        conn_schedule_free(s);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        unsigned long e = bufferevent_get_openssl_error(bev);

        if (e != 0)
            roost_session_log(s, ROOST_LOG_INFO, "TLS error: %s",
                              ERR_reason_error_string(e));
        else
            roost_session_log(s, ROOST_LOG_DEBUG, "connection closed");
        if (!s->closing && roost_sm_resumable(s)) {
            /* XEP-0198 §7: no </stream:stream>, so the session waits
             * for the client to come back. */
            conn_hibernate(s);
            return;
        }
        s->closing = 1;
        conn_schedule_free(s);
    }
}

static void
conn_auth_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_session_t *s = arg;

    if (s->jid == NULL && !s->closing) {
        roost_session_log(s, ROOST_LOG_INFO,
                          "no authentication in time, closing");
        roost_stream_error(s->stream, "connection-timeout", NULL);
    }
}

static void
conn_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
               struct sockaddr *sa, int socklen, void *arg)
{
    const roost_listen_conf_t *l = arg;
    roost_config_t *cfg = roost_srv->cfg;
    roost_session_t *s;
    roost_stream_conf_t sc;
    struct timeval tv;
    char ip[ROOST_ADDR_STRLEN];
    int one = 1;
    conn_ip_t *ipe;

    roost_addr_str(sa, ip);
    ipe = conn_ip(ip, 1);
    if (cfg->max_conn_per_ip > 0 && ipe->conns >= cfg->max_conn_per_ip) {
        /* Before any byte: one address cannot hold every slot. */
        ROOST_LOG(ROOST_LOG_INFO, "core",
                  "refusing a connection from %s: %d already open", ip,
                  ipe->conns);
        evutil_closesocket(fd);
        conn_ip_gc(ipe);
        return;
    }
    if (conn_preauth_refuse(fd, l, ip)) {
        evutil_closesocket(fd);
        conn_ip_gc(ipe);
        return;
    }
    ipe->conns++;
    s = roost_xcalloc(1, sizeof(*s));
    s->id = ++roost_srv->next_session_id;
    s->refs = 1; /* the connection itself; dropped by conn_free_cb */
    s->listen = l;
    roost_srv->nsessions++;
    s->all_next = roost_srv->all;
    if (s->all_next != NULL)
        s->all_next->all_prev = s;
    roost_srv->all = s;
    snprintf(s->addr, sizeof(s->addr), "%s", ip);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    memset(&sc, 0, sizeof(sc));
    /* Smaller stanzas until SASL succeeds (the stream lifts it). */
    sc.limits.max_stanza = roost_preauth_max_stanza();
    sc.max_stanza_authed = (size_t)cfg->max_stanza_size;
    sc.limits.max_depth = (int)cfg->max_depth;
    sc.limits.max_attrs = (int)cfg->max_attrs;
    sc.tls_available = l->tls == ROOST_TLS_STARTTLS;
    sc.tls_active = l->tls == ROOST_TLS_DIRECT;
    /* Encryption is required unless the listener has no TLS at all, in
     * which case the config explicitly said plaintext (tests). */
    sc.require_encryption = l->tls != ROOST_TLS_NONE;
    sc.max_auth_attempts = CONN_MAX_AUTH_ATTEMPTS;
    sc.fast = cfg->fast_token_lifetime > 0;
    s->stream = roost_stream_new(&sc, &conn_stream_ops, s);

    if (l->tls == ROOST_TLS_DIRECT) {
        SSL *ssl = conn_ssl_new(roost_srv->default_tls);

        s->bev = bufferevent_openssl_socket_new(
            roost_srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    } else {
        s->bev =
            bufferevent_socket_new(roost_srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (s->bev == NULL) {
        evutil_closesocket(fd);
        conn_transport_gone(s);
        s->freeing = 1;
        roost_conn_release(s);
        return;
    }
    if (cfg->c2s_rate > 0) {
        /* What one client may make us parse per second; reading pauses
         * beyond it (the socket level: under STARTTLS's filter too). */
        if (conn_rate_cfg == NULL)
            conn_rate_cfg = ev_token_bucket_cfg_new(
                (size_t)cfg->c2s_rate, (size_t)cfg->c2s_burst,
                EV_RATE_LIMIT_MAX, EV_RATE_LIMIT_MAX, NULL);
        bufferevent_set_rate_limit(s->bev, conn_rate_cfg);
    }
    bufferevent_setcb(s->bev, conn_read_cb, conn_write_cb, conn_event_cb, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    s->last_input = conn_now_ms();
    s->idle_timer = evtimer_new(roost_srv->base, conn_idle_cb, s);
    timeval_ms(&tv, cfg->c2s_timeout);
    evtimer_add(s->idle_timer, &tv);
    s->auth_timer = evtimer_new(roost_srv->base, conn_auth_timer_cb, s);
    timeval_ms(&tv, cfg->auth_timeout);
    evtimer_add(s->auth_timer, &tv);
    s->preauth = 1;
    conn_preauth_update(s);
    roost_session_log(s, ROOST_LOG_DEBUG, "connected (%s)",
                      l->tls == ROOST_TLS_DIRECT ? "direct TLS" : "plain");
}

int
roost_listen_bind(const roost_listen_conf_t *l, evconnlistener_cb cb, void *arg,
                  int backlog, const char *kind, struct evconnlistener ***arr,
                  int *n, char **err)
{
    struct evutil_addrinfo hints, *ai = NULL;
    struct evconnlistener *lis;
    char port[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST;
    snprintf(port, sizeof(port), "%d", l->port);
    rc = evutil_getaddrinfo(l->address, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        *err = roost_xmalloc(256);
        snprintf(*err, 256, "bad %s listen address %s: %s", kind, l->address,
                 rc != 0 ? evutil_gai_strerror(rc) : "no address");
        return -ROOST_ECONFIG;
    }
    lis = evconnlistener_new_bind(roost_srv->base, cb, arg,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                      LEV_OPT_CLOSE_ON_EXEC,
                                  backlog, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (lis == NULL) {
        *err = roost_xmalloc(256);
        snprintf(*err, 256, "cannot listen on %s port %d (%s): %s", l->address,
                 l->port, kind, strerror(errno));
        return -ROOST_EIO;
    }
    *arr = roost_xrealloc(*arr, (size_t)(*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = lis;
    return 0;
}

int
roost_conn_listen(const roost_listen_conf_t *l, char **err)
{
    int rc =
        roost_listen_bind(l, conn_accept_cb, (void *)l, 512, "c2s",
                          &roost_srv->listeners, &roost_srv->nlisteners, err);

    if (rc < 0)
        return rc;
    ROOST_LOG(ROOST_LOG_INFO, "core", "listening on %s port %d (c2s, %s)",
              l->address, l->port,
              l->tls == ROOST_TLS_DIRECT     ? "direct TLS"
              : l->tls == ROOST_TLS_STARTTLS ? "STARTTLS"
                                             : "no TLS");
    return 0;
}
