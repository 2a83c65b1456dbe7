/* core/sm.c: XEP-0198 stream management (acks, resumption) and the ack
 * holds of DESIGN.md's durability rule.  See core/sm.h.
 *
 * Not here: sockets and the moving of a transport from one session to
 * another (core/conn.c, roost_conn_resume), stream parsing (stream.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include <event2/event.h>

#include "log.h"
#include "server.h"
#include "sm.h"
#include "worker.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

typedef struct {
    roost_stanza_t *st;
    int64_t when_us; /* for the delay stamp if it is routed again */
} sm_item_t;

typedef struct {
    uint32_t seq; /* inbound stanza number */
    uint32_t n;   /* holds on it */
} sm_holdrec_t;

struct roost_sm {
    roost_session_t *s;
    char id[40];   /* resumption id; "" when not resumable */
    uint32_t in;   /* stanzas received since <enable/> */
    uint32_t out;  /* stanzas sent */
    uint32_t peer; /* last h the client acknowledged */
    sm_item_t *q;  /* ring: item i is stanza peer + 1 + i */
    size_t qhead, qlen, qcap;
    sm_holdrec_t *holds; /* ring, increasing seq */
    size_t hhead, hlen, hcap;
    uint32_t ack_want;  /* an <r/> came when in was this */
    int ack_pending;    /* answer it once nothing below is held */
    int r_outstanding;  /* our <r/> is unanswered */
    uint32_t out_at_r;  /* out when it was sent */
    int64_t timeout_ms; /* resumption window */
    int ended;
    struct event *r_ev;      /* deferred <r/>: one per loop turn */
    struct event *hib_timer; /* resumption window while hibernating */
    UT_hash_handle hh;       /* in sm_registry by id */
};

struct roost_sm_hold {
    roost_session_t *s; /* held */
    uint32_t seq;
};

static roost_sm_t *sm_registry;
static roost_sm_ctx_t sm_cur;

static int64_t
sm_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* --- writing SM elements --- */

static void
sm_puts(roost_session_t *s, const char *str)
{
    roost_conn_write(s, str, strlen(str));
}

static void
sm_failed(roost_session_t *s, const char *cond, int with_h, uint32_t h)
{
    char buf[256];

    if (with_h)
        snprintf(buf, sizeof(buf),
                 "<failed xmlns='" ROOST_NS_SM "' h='%" PRIu32
                 "'><%s xmlns='" NS_STANZAS "'/></failed>",
                 h, cond);
    else
        snprintf(buf, sizeof(buf),
                 "<failed xmlns='" ROOST_NS_SM "'><%s xmlns='" NS_STANZAS
                 "'/></failed>",
                 cond);
    sm_puts(s, buf);
}

static void
sm_send_a(roost_sm_t *sm, uint32_t h)
{
    char buf[80];

    snprintf(buf, sizeof(buf), "<a xmlns='" ROOST_NS_SM "' h='%" PRIu32 "'/>",
             h);
    sm_puts(sm->s, buf);
}

static void
sm_r_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_sm_t *sm = arg;

    if (sm->r_outstanding || sm->qlen == 0 || sm->s->bev == NULL ||
        sm->s->closing)
        return;
    sm->r_outstanding = 1;
    sm->out_at_r = sm->out;
    sm_puts(sm->s, "<r xmlns='" ROOST_NS_SM "'/>");
}

static void
sm_schedule_r(roost_sm_t *sm)
{
    struct timeval zero = {0, 0};

    if (!sm->r_outstanding && !evtimer_pending(sm->r_ev, NULL))
        evtimer_add(sm->r_ev, &zero);
}

/* --- holds --- */

static uint32_t
sm_ackable(const roost_sm_t *sm)
{
    if (sm->hlen == 0)
        return sm->in;
    return sm->holds[sm->hhead].seq - 1;
}

static sm_holdrec_t *
sm_holdrec(roost_sm_t *sm, size_t i)
{
    return &sm->holds[(sm->hhead + i) % sm->hcap];
}

static void
sm_hold_add(roost_sm_t *sm, uint32_t seq)
{
    size_t i;

    /* Usually the newest stanza, or one already held: look from the
     * back. */
    for (i = sm->hlen; i > 0; i--) {
        sm_holdrec_t *r = sm_holdrec(sm, i - 1);

        if (r->seq == seq) {
            r->n++;
            return;
        }
        if ((int32_t)(r->seq - seq) < 0)
            break;
    }
    if (sm->hlen == sm->hcap) {
        size_t ncap = sm->hcap ? sm->hcap * 2 : 4;
        sm_holdrec_t *n = roost_xcalloc(ncap, sizeof(*n));

        for (size_t j = 0; j < sm->hlen; j++)
            n[j] = *sm_holdrec(sm, j);
        roost_free(sm->holds);
        sm->holds = n;
        sm->hhead = 0;
        sm->hcap = ncap;
    }
    /* Insert at position i, shifting the later ones up. */
    for (size_t j = sm->hlen; j > i; j--)
        *sm_holdrec(sm, j) = *sm_holdrec(sm, j - 1);
    sm_holdrec(sm, i)->seq = seq;
    sm_holdrec(sm, i)->n = 1;
    sm->hlen++;
}

static void
sm_hold_drop(roost_sm_t *sm, uint32_t seq)
{
    for (size_t i = 0; i < sm->hlen; i++) {
        sm_holdrec_t *r = sm_holdrec(sm, i);

        if (r->seq == seq) {
            if (r->n > 0)
                r->n--;
            break;
        }
    }
    while (sm->hlen > 0 && sm_holdrec(sm, 0)->n == 0) {
        sm->hhead = (sm->hhead + 1) % sm->hcap;
        sm->hlen--;
    }
    if (sm->ack_pending && (int32_t)(sm_ackable(sm) - sm->ack_want) >= 0) {
        sm->ack_pending = 0;
        if (sm->s->bev != NULL && !sm->s->closing)
            sm_send_a(sm, sm_ackable(sm));
    }
}

void
roost_sm_enter(roost_session_t *s, uint32_t seq, roost_sm_ctx_t *saved)
{
    *saved = sm_cur;
    sm_cur.s = s != NULL && s->sm != NULL ? s : NULL;
    sm_cur.seq = seq;
}

void
roost_sm_leave(const roost_sm_ctx_t *saved)
{
    sm_cur = *saved;
}

roost_sm_hold_t *
roost_sm_hold(void)
{
    roost_sm_hold_t *h;

    if (sm_cur.s == NULL || sm_cur.s->sm == NULL || sm_cur.s->sm->ended)
        return NULL;
    /* Who frees: roost_sm_release. */
    h = roost_xmalloc(sizeof(*h));
    h->s = sm_cur.s;
    h->seq = sm_cur.seq;
    roost_conn_hold(h->s);
    sm_hold_add(h->s->sm, h->seq);
    return h;
}

void
roost_sm_enter_hold(const roost_sm_hold_t *h, roost_sm_ctx_t *saved)
{
    if (h == NULL)
        roost_sm_enter(NULL, 0, saved);
    else
        roost_sm_enter(h->s, h->seq, saved);
}

void
roost_sm_release(roost_sm_hold_t *h)
{
    if (h == NULL)
        return;
    if (h->s->sm != NULL)
        sm_hold_drop(h->s->sm, h->seq);
    roost_conn_release(h->s);
    roost_free(h);
}

typedef struct {
    int (*work)(void *);
    void (*done)(void *, int);
    void *arg;
    roost_sm_hold_t *hold;
} sm_job_t;

static int
sm_job_work(void *arg)
{
    sm_job_t *j = arg;

    return j->work(j->arg);
}

static void
sm_job_done(void *arg, int rc)
{
    sm_job_t *j = arg;
    roost_sm_ctx_t saved;

    /* The transaction committed: whatever done does next (another write,
     * a delivery) still belongs to the same stanza. */
    roost_sm_enter_hold(j->hold, &saved);
    if (j->done != NULL)
        j->done(j->arg, rc);
    roost_sm_leave(&saved);
    roost_sm_release(j->hold);
    roost_free(j);
}

void
roost_sm_storage_submit(int (*work)(void *), void (*done)(void *, int),
                        void *arg)
{
    roost_sm_hold_t *h = roost_sm_hold();
    sm_job_t *j;

    if (h == NULL) {
        roost_worker_submit(ROOST_WQ_STORAGE, work, done, arg);
        return;
    }
    /* Who frees: sm_job_done. */
    j = roost_xmalloc(sizeof(*j));
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->hold = h;
    roost_worker_submit(ROOST_WQ_STORAGE, sm_job_work, sm_job_done, j);
}

/* --- the queue --- */

static sm_item_t *
sm_item(roost_sm_t *sm, size_t i)
{
    return &sm->q[(sm->qhead + i) % sm->qcap];
}

static void
sm_pop(roost_sm_t *sm, size_t n)
{
    while (n-- > 0 && sm->qlen > 0) {
        roost_stanza_unref(sm_item(sm, 0)->st);
        sm->qhead = (sm->qhead + 1) % sm->qcap;
        sm->qlen--;
    }
}

/* The client acknowledged h.  Returns 0, or -ROOST_EINVAL when h counts
 * more stanzas than were sent. */
static int
sm_acked(roost_sm_t *sm, uint32_t h)
{
    uint32_t n = h - sm->peer;

    if (n > sm->qlen)
        return -ROOST_EINVAL;
    sm_pop(sm, n);
    sm->peer = h;
    return 0;
}

int
roost_sm_outbound(roost_session_t *s, roost_stanza_t *st)
{
    roost_sm_t *sm = s->sm;

    if (sm == NULL || sm->ended)
        return 0;
    if (sm->qlen >= (size_t)roost_srv->cfg->sm_max_queue)
        return -ROOST_ELIMIT;
    if (sm->qlen == sm->qcap) {
        size_t ncap = sm->qcap ? sm->qcap * 2 : 16;
        sm_item_t *n = roost_xcalloc(ncap, sizeof(*n));

        for (size_t j = 0; j < sm->qlen; j++)
            n[j] = *sm_item(sm, j);
        roost_free(sm->q);
        sm->q = n;
        sm->qhead = 0;
        sm->qcap = ncap;
    }
    sm_item(sm, sm->qlen)->st = roost_stanza_ref(st);
    sm_item(sm, sm->qlen)->when_us = sm_now_us();
    sm->qlen++;
    sm->out++;
    if (s->bev != NULL)
        sm_schedule_r(sm);
    return 0;
}

uint32_t
roost_sm_in(const roost_session_t *s)
{
    return s->sm != NULL ? s->sm->in : 0;
}

uint32_t
roost_sm_inbound(roost_session_t *s)
{
    if (s->sm == NULL || s->sm->ended)
        return 0;
    return ++s->sm->in;
}

/* --- resumption registry --- */

static void
sm_hib_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_sm_t *sm = arg;
    roost_session_t *s = sm->s;

    roost_session_log(s, ROOST_LOG_INFO,
                      "not resumed in time: ending the session");
    roost_conn_close(s, NULL, NULL);
}

static roost_sm_t *
sm_new(roost_session_t *s)
{
    roost_sm_t *sm = roost_xcalloc(1, sizeof(*sm));

    sm->s = s;
    sm->r_ev = evtimer_new(roost_srv->base, sm_r_cb, sm);
    sm->hib_timer = evtimer_new(roost_srv->base, sm_hib_timer_cb, sm);
    return sm;
}

static void
sm_make_id(roost_sm_t *sm)
{
    unsigned char r[16];
    roost_sm_t *other;

    do {
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            static uint64_t counter;

            snprintf(sm->id, sizeof(sm->id), "%016" PRIx64 "%016" PRIx64,
                     sm->s->id, ++counter);
        } else {
            for (size_t i = 0; i < sizeof(r); i++)
                snprintf(sm->id + 2 * i, 3, "%02x", r[i]);
        }
        HASH_FIND_STR(sm_registry, sm->id, other);
    } while (other != NULL);
    HASH_ADD_STR(sm_registry, id, sm);
}

int
roost_sm_resumable(const roost_session_t *s)
{
    return s->sm != NULL && !s->sm->ended && s->sm->id[0] != '\0' &&
           s->jid != NULL && !roost_srv->shutting_down;
}

void
roost_sm_hibernate(roost_session_t *s)
{
    roost_sm_t *sm = s->sm;
    struct timeval tv;

    sm->r_outstanding = 0;
    sm->ack_pending = 0;
    evtimer_del(sm->r_ev);
    tv.tv_sec = (time_t)(sm->timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)((sm->timeout_ms % 1000) * 1000);
    evtimer_add(sm->hib_timer, &tv);
    roost_session_log(s, ROOST_LOG_INFO,
                      "connection lost: resumable for %" PRId64 " s, "
                      "%zu stanzas unacknowledged",
                      sm->timeout_ms / 1000, sm->qlen);
}

/* A stanza that was not acknowledged goes where it would have gone had
 * this session never existed (XEP-0198 §4: "as if sent to an unavailable
 * resource"). */
static void
sm_reroute(roost_session_t *s, roost_stanza_t *st, int64_t when_us)
{
    roost_stanza_kind_t kind = roost_stanza_kind(st);
    const char *type = roost_stanza_attr(st, "type");
    roost_host_t *h = s->host;

    if (type != NULL && strcmp(type, "error") == 0)
        return;
    if (kind == ROOST_STANZA_MESSAGE) {
        roost_stanza_t *c;
        time_t t = (time_t)(when_us / 1000000);
        struct tm tm;
        char stamp[32];

        if (type != NULL && strcmp(type, "groupchat") == 0)
            return;
        if (roost_stanza_attr(st, "from") == NULL ||
            roost_stanza_attr(st, "to") == NULL)
            return;
        c = roost_stanza_copy(st);
        if (roost_stanza_child(c, "urn:xmpp:delay", "delay") == NULL) {
            roost_stanza_t *d;

            gmtime_r(&t, &tm);
            strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
            d = roost_stanza_add_child(c, "urn:xmpp:delay", "delay");
            roost_stanza_set_attr(d, "from", h->name);
            roost_stanza_set_attr(d, "stamp", stamp);
        }
        roost_router_route(h, NULL, c);
        roost_stanza_unref(c);
        return;
    }
    if (kind == ROOST_STANZA_IQ && type != NULL &&
        (strcmp(type, "get") == 0 || strcmp(type, "set") == 0))
        roost_router_bounce(h, st, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
    /* Presence and iq results: stale once the session is gone. */
}

void
roost_sm_end(roost_session_t *s)
{
    roost_sm_t *sm = s->sm;

    if (sm == NULL || sm->ended)
        return;
    sm->ended = 1;
    if (sm->id[0] != '\0')
        HASH_DEL(sm_registry, sm);
    sm->id[0] = '\0';
    evtimer_del(sm->hib_timer);
    evtimer_del(sm->r_ev);
    if (sm->qlen > 0)
        roost_session_log(s, ROOST_LOG_INFO,
                          "%zu unacknowledged stanzas routed again", sm->qlen);
    while (sm->qlen > 0) {
        sm_item_t it = *sm_item(sm, 0);

        sm->qhead = (sm->qhead + 1) % sm->qcap;
        sm->qlen--;
        if (s->host != NULL)
            sm_reroute(s, it.st, it.when_us);
        roost_stanza_unref(it.st);
    }
}

void
roost_sm_reroute(roost_session_t *s, roost_stanza_t *st)
{
    if (s->host != NULL)
        sm_reroute(s, st, sm_now_us());
}

void
roost_sm_free(roost_session_t *s)
{
    roost_sm_t *sm = s->sm;

    if (sm == NULL)
        return;
    if (sm->id[0] != '\0')
        HASH_DEL(sm_registry, sm);
    sm_pop(sm, sm->qlen);
    event_free(sm->r_ev);
    event_free(sm->hib_timer);
    roost_free(sm->q);
    roost_free(sm->holds);
    roost_free(sm);
    s->sm = NULL;
}

int
roost_sm_keepalive(roost_session_t *s)
{
    roost_sm_t *sm = s->sm;

    if (sm == NULL || sm->ended || s->bev == NULL)
        return 0;
    /* An <a/> answers even when nothing is queued. */
    sm->r_outstanding = 1;
    sm->out_at_r = sm->out;
    sm_puts(s, "<r xmlns='" ROOST_NS_SM "'/>");
    return 1;
}

/* --- the elements --- */

static int
sm_parse_h(const char *v, uint32_t *out)
{
    char *end;
    unsigned long long n;

    if (v == NULL || *v < '0' || *v > '9')
        return -1;
    n = strtoull(v, &end, 10);
    if (*end != '\0' || n > UINT32_MAX)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

static int
sm_bool(const char *v)
{
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* XEP-0198 §4: h greater than what was sent. */
static void
sm_too_high(roost_session_t *s, uint32_t h)
{
    roost_stanza_t *app =
        roost_stanza_new(ROOST_NS_SM, "handled-count-too-high");
    char buf[16];

    snprintf(buf, sizeof(buf), "%" PRIu32, h);
    roost_stanza_set_attr(app, "h", buf);
    snprintf(buf, sizeof(buf), "%" PRIu32, s->sm->out);
    roost_stanza_set_attr(app, "send-count", buf);
    roost_session_log(s, ROOST_LOG_INFO,
                      "client acknowledged %s stanzas, more than were sent",
                      roost_stanza_attr(app, "h"));
    roost_stream_error_app(s->stream, "undefined-condition",
                           "You acknowledged more stanzas than we sent", app);
    roost_stanza_unref(app);
}

static int
sm_enable(roost_session_t *s, roost_stanza_t *el, int bound)
{
    roost_sm_t *sm;
    int64_t max = roost_srv->cfg->sm_resume_timeout;
    const char *cmax = roost_stanza_attr(el, "max");
    char buf[160];

    if (!bound || s->sm != NULL) {
        /* XEP-0198 §3: after binding, once. */
        sm_failed(s, "unexpected-request", 0, 0);
        return 0;
    }
    sm = s->sm = sm_new(s);
    if (cmax != NULL) {
        uint32_t v;

        /* The client's preferred maximum, in seconds, if lower. */
        if (sm_parse_h(cmax, &v) == 0 && v > 0 && (int64_t)v * 1000 < max)
            max = (int64_t)v * 1000;
    }
    sm->timeout_ms = max;
    if (sm_bool(roost_stanza_attr(el, "resume")) && max > 0) {
        sm_make_id(sm);
        snprintf(buf, sizeof(buf),
                 "<enabled xmlns='" ROOST_NS_SM "' id='%s' resume='true' "
                 "max='%" PRId64 "'/>",
                 sm->id, (max + 999) / 1000);
    } else {
        snprintf(buf, sizeof(buf), "<enabled xmlns='" ROOST_NS_SM "'/>");
    }
    sm_puts(s, buf);
    roost_session_log(s, ROOST_LOG_DEBUG, "stream management enabled%s",
                      sm->id[0] ? " (resumable)" : "");
    return 0;
}

static int
sm_resume(roost_session_t *s, roost_stanza_t *el, int bound)
{
    const char *previd = roost_stanza_attr(el, "previd");
    const char *hs = roost_stanza_attr(el, "h");
    const char *user = roost_stream_user(s->stream);
    roost_sm_t *sm = NULL;
    roost_session_t *o;
    uint32_t h = 0;

    if (bound || s->sm != NULL) {
        sm_failed(s, "unexpected-request", 0, 0);
        return 0;
    }
    if (previd != NULL)
        HASH_FIND_STR(sm_registry, previd, sm);
    o = sm != NULL ? sm->s : NULL;
    /* Only the same account may take a session over. */
    if (o == NULL || o->closing || o->jid == NULL || o->host != s->host ||
        user == NULL || roost_jid_node(o->jid) == NULL ||
        strcmp(roost_jid_node(o->jid), user) != 0) {
        sm_failed(s, "item-not-found", 0, 0);
        return 0;
    }
    if (hs != NULL && (sm_parse_h(hs, &h) != 0 || sm_acked(sm, h) != 0)) {
        /* The new stream is the one that misbehaved; the old session
         * cannot be trusted either. */
        sm_too_high(s, h);
        roost_conn_close(o, NULL, NULL);
        return 1;
    }
    return roost_conn_resume(s, o);
}

/* After roost_conn_resume moved the transport: <resumed/>, then every
 * stanza the client has not acknowledged, again. */
void
roost_sm_resumed(roost_session_t *o)
{
    roost_sm_t *sm = o->sm;
    char buf[160];

    evtimer_del(sm->hib_timer);
    snprintf(buf, sizeof(buf),
             "<resumed xmlns='" ROOST_NS_SM "' previd='%s' h='%" PRIu32 "'/>",
             sm->id, sm->in);
    sm_puts(o, buf);
    roost_session_log(o, ROOST_LOG_INFO, "resumed, %zu stanzas sent again",
                      sm->qlen);
    for (size_t i = 0; i < sm->qlen && !o->closing; i++)
        roost_stream_send(o->stream, sm_item(sm, i)->st);
    sm->r_outstanding = 0;
    if (sm->qlen > 0)
        sm_schedule_r(sm);
}

int
roost_sm_element(roost_session_t *s, roost_stanza_t *el, int bound)
{
    const char *name = roost_stanza_name(el);
    roost_sm_t *sm = s->sm;
    uint32_t h;

    if (strcmp(name, "enable") == 0)
        return sm_enable(s, el, bound);
    if (strcmp(name, "resume") == 0)
        return sm_resume(s, el, bound);
    if (strcmp(name, "r") == 0) {
        if (sm == NULL) {
            sm_failed(s, "unexpected-request", 0, 0);
            return 0;
        }
        if (sm->hlen == 0) {
            sm_send_a(sm, sm->in);
        } else {
            /* Some stanza's effect is not committed yet: answer when it
             * is (DESIGN.md, durability). */
            sm->ack_pending = 1;
            sm->ack_want = sm->in;
        }
        return 0;
    }
    if (strcmp(name, "a") == 0) {
        if (sm == NULL) {
            sm_failed(s, "unexpected-request", 0, 0);
            return 0;
        }
        if (sm_parse_h(roost_stanza_attr(el, "h"), &h) != 0) {
            roost_stream_error(s->stream, "bad-format",
                               "<a/> needs a numeric 'h'");
            return 1;
        }
        if (sm_acked(sm, h) != 0) {
            sm_too_high(s, h);
            return 1;
        }
        if (sm->r_outstanding) {
            sm->r_outstanding = 0;
            if (sm->out != sm->out_at_r && sm->qlen > 0)
                sm_schedule_r(sm);
        }
        return 0;
    }
    roost_stream_error(s->stream, "unsupported-stanza-type",
                       "unknown stream management element");
    return 1;
}
