/* modules/mod_offline.c: offline message storage (XEP-0160), with
 * delayed-delivery stamps (XEP-0203).
 *
 * Storing: mod_message PASSes a normal or chat message (or one without a
 * type) when the account has no available resource with non-negative
 * priority; this module takes it at ROOST_PRIO_FALLBACK, adds
 * <delay xmlns='urn:xmpp:delay' from=HOST stamp=NOW>, and appends it to
 * the account's "offline" ARCHIVE store on the storage worker.  Per
 * XEP-0160 §3 headline, groupchat and error messages are never stored
 * (mod_message already disposes of them; this module PASSes them on).
 * A message whose only content is chat states (XEP-0085; thread, hints,
 * origin-id and the carbons <private/> marker, XEP-0280 §9, do not count
 * as content; <private/> is removed from what is stored, as the
 * receiving server removes it before delivery) is dropped silently unless it
 * carries the XEP-0334 <store/> hint; one with <no-store/> is not stored
 * and so bounces like any undeliverable message.  When the account
 * already holds max_messages items, the sender gets <service-unavailable/>
 * (XEP-0160 §2, step 3).  The count behind that quota is per-user state:
 * counted on the storage worker when the account is loaded, kept up to
 * date on the loop as appends and removals are submitted.
 *
 * Delivering: the first time a session sends available presence with
 * non-negative priority (XEP-0160 §2, step 5), the stored messages are
 * read in order on the storage worker, in batches, handed to that session
 * on the loop, and then exactly the delivered items are removed.  A lock
 * in the account's state keeps a second resource coming online meanwhile
 * from getting them too; if the first session is gone when a batch
 * arrives, another eligible session of the account takes it, or the
 * messages stay stored.  Delivery is at least once: a crash between
 * delivery and the removal's commit delivers those messages again.
 *
 * While that delivery runs, a new message for the receiving session (or
 * the bare JID) is appended to the queue instead of overtaking it
 * (ROOST_PRIO_QUEUE, before mod_message), and the delivery goes on until
 * the queue is empty.  The sender's XEP-0198 ack waits for the append's
 * commit (the core's ack holds).
 *
 * Not here: deciding whether a message is deliverable (mod_message),
 * flexible retrieval (XEP-0013), archiving (MAM). */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <roost/module.h>
#include <roost/store.h>

#define OFFLINE_NS_DISCO      "msgoffline" /* XEP-0160 §4, as registered */
#define OFFLINE_NS_DELAY      "urn:xmpp:delay"
#define OFFLINE_NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define OFFLINE_NS_HINTS      "urn:xmpp:hints"
#define OFFLINE_NS_SID        "urn:xmpp:sid:0"
#define OFFLINE_NS_CARBONS    "urn:xmpp:carbons:2"

/* One delivery batch: at most this many messages or about this many
 * bytes, so that a long queue neither sits in memory at once nor lands
 * in one session's output buffer in one loop turn. */
#define OFFLINE_BATCH_MAX   100
#define OFFLINE_BATCH_BYTES (256 * 1024)

/* Sessions looked up on the stack; more (rare) take one heap array. */
#define OFFLINE_STACK_SESSIONS 16

struct offline_conf {
    int64_t max_messages;
};

static const roost_opt_t offline_opts[] = {
    {"max_messages", ROOST_OPT_INT, offsetof(struct offline_conf, max_messages),
     "1000", 1, 1000000},
    {NULL, 0, 0, NULL, 0, 0}};

/* Module instance state (roost_mod_data), freed in offline_unload. */
typedef struct {
    roost_store_t *store;
    uint64_t serial; /* session and fetch tokens */
} offline_t;

/* Per-user state (roost_user_state): made by offline_user_load on the
 * storage worker, freed by the core through offline_user_free. */
typedef struct {
    int64_t count;     /* items stored for the account */
    int count_unknown; /* the count failed: fetch anyway */
    uint64_t fetching; /* token of the fetch in flight, 0 when none */
    char *fetch_full;  /* full JID being delivered to, while fetching */
    int pending;       /* appends submitted, not yet committed */
} offline_user_t;

/* Per-session state (roost_session_slot), freed on SESSION_CLOSED. */
typedef struct {
    uint64_t token; /* names this session to jobs (never a pointer) */
    int armed;      /* sent non-negative available presence already */
} offline_sess_t;

/* --- helpers --- */

static offline_t *
offline_data(roost_mod_t *m)
{
    return *roost_mod_data(m);
}

static offline_user_t *
offline_user(roost_mod_t *m, const char *node)
{
    void **slot = node != NULL ? roost_user_data(m, node) : NULL;

    return slot != NULL ? *slot : NULL;
}

static offline_sess_t *
offline_sess(roost_mod_t *m, roost_session_t *s, int create)
{
    void **slot = roost_session_slot(s, m);
    offline_sess_t *os = *slot;

    if (os == NULL && create) {
        /* Freed in offline_session_closed. */
        os = roost_xcalloc(1, sizeof(*os));
        os->token = ++offline_data(m)->serial;
        *slot = os;
    }
    return os;
}

static int
offline_eligible(const roost_session_t *s)
{
    return roost_session_available(s) && roost_session_priority(s) >= 0;
}

/* An available non-negative session of node, or NULL.  With armed set,
 * only one whose delivery this module has already triggered. */
static roost_session_t *
offline_find_eligible(roost_mod_t *m, const char *node, int armed)
{
    roost_session_t *stack[OFFLINE_STACK_SESSIONS], **ss = stack, *found = NULL;
    int n = roost_user_sessions(m, node, ss, OFFLINE_STACK_SESSIONS);

    if (n > OFFLINE_STACK_SESSIONS) {
        /* Freed below, before returning. */
        ss = roost_xcalloc((size_t)n, sizeof(*ss));
        n = roost_user_sessions(m, node, ss, n);
    }
    for (int i = 0; i < n && found == NULL; i++) {
        offline_sess_t *os = offline_sess(m, ss[i], 0);

        if (offline_eligible(ss[i]) && (!armed || (os != NULL && os->armed)))
            found = ss[i];
    }
    if (ss != stack)
        roost_free(ss);
    return found;
}

static int
offline_type_storable(const roost_stanza_t *st)
{
    const char *t = roost_stanza_attr(st, "type");

    /* XEP-0160 §3; an unknown type means normal (RFC 6121 §5.2.2). */
    return t == NULL ||
           (strcmp(t, "headline") != 0 && strcmp(t, "groupchat") != 0 &&
            strcmp(t, "error") != 0);
}

static int
offline_is_private(roost_stanza_t *c)
{
    const char *ns = roost_stanza_ns(c);

    return ns != NULL && strcmp(ns, OFFLINE_NS_CARBONS) == 0 &&
           strcmp(roost_stanza_name(c), "private") == 0;
}

/* Whether the message carries anything a client would want later: an
 * element other than chat states, <thread/>, processing hints, origin-id
 * and the XEP-0280 <private/> marker (not stored: see offline_store).
 * XEP-0160 §3: chat-state-only messages are not stored. */
static int
offline_has_content(const roost_stanza_t *st)
{
    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *ns = roost_stanza_ns(c);

        if (ns == NULL || strcmp(ns, ROOST_NS_CLIENT) == 0) {
            if (strcmp(roost_stanza_name(c), "thread") != 0)
                return 1;
        } else if (strcmp(ns, OFFLINE_NS_CHATSTATES) != 0 &&
                   strcmp(ns, OFFLINE_NS_HINTS) != 0 &&
                   !offline_is_private(c) &&
                   !(strcmp(ns, OFFLINE_NS_SID) == 0 &&
                     strcmp(roost_stanza_name(c), "origin-id") == 0)) {
            return 1;
        }
    }
    return 0;
}

/* XEP-0082 DateTime with milliseconds, UTC. */
static void
offline_stamp(char *buf, size_t size, int64_t *usec)
{
    struct timeval tv;
    struct tm tm;
    char sec[32];
    time_t t;

    gettimeofday(&tv, NULL);
    t = tv.tv_sec;
    gmtime_r(&t, &tm);
    strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", sec, (int)(tv.tv_usec / 1000));
    *usec = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* --- per-user state (storage worker / loop) --- */

static void *
offline_user_load(roost_mod_t *m, const char *user)
{
    /* Freed by offline_user_free when the core drops the account. */
    offline_user_t *u = roost_xcalloc(1, sizeof(*u));
    int n = roost_store_count(offline_data(m)->store, user);

    if (n < 0) {
        roost_log(m, ROOST_LOG_ERROR, "counting offline messages of %s: %s",
                  user, roost_strerror(n));
        u->count_unknown = 1;
    } else {
        u->count = n;
    }
    return u;
}

static void
offline_user_free(roost_mod_t *m, void *state)
{
    offline_user_t *u = state;

    roost_free(u->fetch_full);
    roost_free(u);
}

/* --- storing --- */

typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user, *with, *xml;
    size_t len;
    int64_t when;
    uint64_t fetch; /* the fetch running when it was submitted, or 0 */
} offline_put_t;

static int
offline_put_work(void *arg)
{
    offline_put_t *p = arg;

    return roost_store_append(p->store, p->user, p->with, p->when, p->xml,
                              p->len, NULL);
}

/* Runs once the append committed (or failed). */
static void
offline_put_done(void *arg, int rc)
{
    offline_put_t *p = arg;
    offline_user_t *u = offline_user(p->m, p->user);

    if (rc < 0)
        roost_log(p->m, ROOST_LOG_ERROR,
                  "storing an offline message for %s failed: %s", p->user,
                  roost_strerror(rc));
    if (u != NULL && p->fetch != 0 && u->fetching == p->fetch && u->pending > 0)
        u->pending--;
    roost_free(p->user);
    roost_free(p->with);
    roost_free(p->xml);
    roost_free(p);
}

static void offline_store(const roost_ev_t *ev, offline_user_t *u);

static roost_verdict_t
offline_message(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const struct offline_conf *conf = roost_mod_conf(m);
    const char *node = roost_jid_node(ev->to);
    offline_user_t *u = offline_user(m, node);

    if (u == NULL || !offline_type_storable(ev->stanza))
        return ROOST_PASS;
    /* Deliverable after all (mod_message missing or declined): not ours. */
    if (roost_jid_resource(ev->to) != NULL &&
        roost_session_find(m, ev->to) != NULL)
        return ROOST_PASS;
    if (offline_find_eligible(m, node, 0) != NULL)
        return ROOST_PASS;
    /* XEP-0334 §4.3: not even temporarily; the core bounces it. */
    if (roost_stanza_child(ev->stanza, OFFLINE_NS_HINTS, "no-store") != NULL)
        return ROOST_PASS;
    if (roost_stanza_child(ev->stanza, OFFLINE_NS_HINTS, "store") == NULL &&
        !offline_has_content(ev->stanza))
        return ROOST_HANDLED; /* chat states only: dropped silently */
    if (u->count >= conf->max_messages) {
        roost_log(m, ROOST_LOG_INFO, "offline storage of %s is full (%lld)",
                  node, (long long)u->count);
        return roost_bounce(ev, ROOST_SE_SERVICE_UNAVAILABLE,
                            "Offline message storage of the recipient is "
                            "full");
    }
    offline_store(ev, u);
    return ROOST_HANDLED;
}

/* Appends a stamped copy of ev's message to the account's queue. */
static void
offline_store(const roost_ev_t *ev, offline_user_t *u)
{
    roost_mod_t *m = ev->mod;
    const char *node = roost_jid_node(ev->to);
    const char *host = roost_mod_host(m);
    roost_stanza_t *cp, *delay, *c, *next;
    offline_put_t *p;
    char stamp[64];

    p = roost_xcalloc(1, sizeof(*p)); /* freed in offline_put_done */
    cp = roost_stanza_copy(ev->stanza);
    /* A client cannot speak for this server: drop delay elements that
     * claim to be its own.  And XEP-0280 §9's <private/> goes, as the
     * receiving server removes it before delivery (the delivery of a
     * stored message is one; Prosody's mod_carbons strips it before
     * offline storage too): mod_carbons, which strips it for live
     * delivery, cannot give this module a changed stanza. */
    for (c = roost_stanza_first_child(cp); c != NULL; c = next) {
        const char *ns = roost_stanza_ns(c), *from;

        next = roost_stanza_next_sibling(c);
        from = roost_stanza_attr(c, "from");
        if ((ns != NULL && strcmp(ns, OFFLINE_NS_DELAY) == 0 && from != NULL &&
             strcmp(from, host) == 0) ||
            offline_is_private(c))
            roost_stanza_remove(c);
    }
    offline_stamp(stamp, sizeof(stamp), &p->when);
    delay = roost_stanza_add_child(cp, OFFLINE_NS_DELAY, "delay");
    roost_stanza_set_attr(delay, "from", host);
    roost_stanza_set_attr(delay, "stamp", stamp);
    roost_stanza_add_text(delay, "Offline Storage", 15);

    p->m = m;
    p->store = offline_data(m)->store;
    p->user = roost_xstrdup(node);
    p->with = roost_xstrdup(roost_jid_bare(ev->from));
    p->xml = roost_stanza_serialize(cp, NULL, &p->len);
    roost_stanza_unref(cp);
    u->count++;
    if (u->fetching != 0) {
        p->fetch = u->fetching;
        u->pending++;
    }
    roost_store_async(m, offline_put_work, offline_put_done, p);
    roost_log(m, ROOST_LOG_DEBUG, "stored an offline message for %s (%lld)",
              node, (long long)u->count);
}

/* While the stored messages are being delivered, a new one for the
 * session receiving them (or the bare JID) joins the end of the queue
 * instead of overtaking the older ones (XEP-0160: in order).  Runs just
 * before mod_message; the quota still applies (a full queue lets
 * mod_message deliver it at once). */
static roost_verdict_t
offline_while_fetching(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const struct offline_conf *conf = roost_mod_conf(m);
    offline_user_t *u = offline_user(m, roost_jid_node(ev->to));

    if (u == NULL || u->fetching == 0 || u->count >= conf->max_messages ||
        !offline_type_storable(ev->stanza) ||
        roost_stanza_child(ev->stanza, OFFLINE_NS_HINTS, "no-store") != NULL ||
        (roost_stanza_child(ev->stanza, OFFLINE_NS_HINTS, "store") == NULL &&
         !offline_has_content(ev->stanza)))
        return ROOST_PASS;
    if (roost_jid_resource(ev->to) != NULL &&
        (u->fetch_full == NULL ||
         strcmp(u->fetch_full, roost_jid_full(ev->to)) != 0))
        return ROOST_PASS; /* another resource: not this queue's business */
    offline_store(ev, u);
    return ROOST_HANDLED;
}

/* --- delivering --- */

typedef struct {
    char id[ROOST_STORE_ID_LEN];
    char *xml;
    size_t len;
} offline_item_t;

/* One batch: read on the worker, delivered on the loop.  Freed by
 * offline_fetch_free. */
typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user;
    roost_jid_t *jid; /* the session that asked */
    uint64_t token;   /* its offline_sess_t token */
    uint64_t lock;    /* offline_user_t.fetching while this runs */
    offline_item_t items[OFFLINE_BATCH_MAX];
    int n, more;
    size_t bytes;
} offline_fetch_t;

/* Removal of delivered items, on the worker; then the next batch, if
 * any, is read (next), so that a removal that failed cannot make the same
 * batch come back in a loop. */
typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user;
    int n;
    char (*ids)[ROOST_STORE_ID_LEN];
    offline_fetch_t *next;
} offline_rm_t;

static void offline_fetch_submit(offline_fetch_t *f);
static void offline_fetch_unlock(offline_fetch_t *f);

static void
offline_fetch_clear(offline_fetch_t *f)
{
    for (int i = 0; i < f->n; i++)
        roost_free(f->items[i].xml);
    f->n = 0;
    f->more = 0;
    f->bytes = 0;
}

static void
offline_fetch_free(offline_fetch_t *f)
{
    offline_fetch_clear(f);
    roost_jid_free(f->jid);
    roost_free(f->user);
    roost_free(f);
}

static int
offline_fetch_item(void *arg, const char *id, int64_t when, const char *with,
                   const char *val, size_t len)
{
    offline_fetch_t *f = arg;
    offline_item_t *it = &f->items[f->n++];

    snprintf(it->id, sizeof(it->id), "%s", id);
    it->xml = roost_xstrndup(val, len); /* freed by offline_fetch_clear */
    it->len = len;
    f->bytes += len;
    if (f->n == OFFLINE_BATCH_MAX || f->bytes >= OFFLINE_BATCH_BYTES) {
        f->more = 1;
        return 1;
    }
    return 0;
}

static int
offline_fetch_work(void *arg)
{
    offline_fetch_t *f = arg;
    roost_store_query_t q = {0};
    int rc;

    /* From the start: the previous batch was removed before this runs. */
    rc = roost_store_find(f->store, f->user, &q, offline_fetch_item, f);
    return rc < 0 ? rc : 0;
}

static int
offline_rm_work(void *arg)
{
    offline_rm_t *r = arg;
    int rc = 0;

    for (int i = 0; i < r->n; i++) {
        int e = roost_store_remove(r->store, r->user, r->ids[i]);

        if (e < 0 && rc == 0)
            rc = e;
    }
    return rc;
}

static void
offline_rm_done(void *arg, int rc)
{
    offline_rm_t *r = arg;

    if (rc < 0)
        roost_log(r->m, ROOST_LOG_ERROR,
                  "removing delivered offline messages of %s failed: %s "
                  "(they will be delivered again)",
                  r->user, roost_strerror(rc));
    if (r->next != NULL) {
        if (rc < 0)
            offline_fetch_unlock(r->next);
        else
            offline_fetch_submit(r->next);
    }
    roost_free(r->ids);
    roost_free(r->user);
    roost_free(r);
}

/* The session to hand f's batch to: the one that asked, if it is still
 * there and eligible, else another eligible one that already triggered
 * delivery (it was kept waiting by the lock).  Updates f to name it. */
static roost_session_t *
offline_fetch_target(offline_fetch_t *f)
{
    roost_session_t *s = roost_session_find(f->m, f->jid);
    offline_sess_t *os = s != NULL ? offline_sess(f->m, s, 0) : NULL;
    offline_user_t *u = offline_user(f->m, f->user);

    if (os != NULL && os->token == f->token) {
        if (offline_eligible(s))
            return s;
        /* Went negative or unavailable meanwhile: its next non-negative
         * available presence asks again. */
        os->armed = 0;
    }
    s = offline_find_eligible(f->m, f->user, 1);
    if (s != NULL) {
        roost_jid_free(f->jid);
        f->jid = roost_jid_dup(roost_session_jid(s));
        f->token = offline_sess(f->m, s, 0)->token;
        if (u != NULL) {
            roost_free(u->fetch_full);
            u->fetch_full = roost_xstrdup(roost_jid_full(f->jid));
        }
    }
    return s;
}

static void
offline_fetch_done(void *arg, int rc)
{
    offline_fetch_t *f = arg;
    offline_user_t *u = offline_user(f->m, f->user);
    roost_session_t *s;
    offline_rm_t *r;
    int sent = 0;

    /* No state: the account has no session left, so nothing to deliver
     * to; the messages stay stored.  A different lock: this fetch
     * belongs to state that was dropped and loaded again. */
    if (u == NULL || u->fetching != f->lock) {
        offline_fetch_free(f);
        return;
    }
    if (rc < 0) {
        roost_log(f->m, ROOST_LOG_ERROR,
                  "reading offline messages of %s failed: %s", f->user,
                  roost_strerror(rc));
        goto unlock;
    }
    if (f->n == 0) {
        if (u->pending > 0) {
            /* Appended meanwhile, committed after this read: read again
             * (FIFO storage: that read comes after their commit). */
            offline_fetch_submit(f);
            return;
        }
        u->count = 0; /* read from the start: the queue is empty */
        u->count_unknown = 0;
        goto unlock;
    }
    if ((s = offline_fetch_target(f)) == NULL)
        goto unlock;

    for (int i = 0; i < f->n; i++) {
        roost_stanza_t *st =
            roost_stanza_parse(f->items[i].xml, f->items[i].len);

        if (st == NULL) {
            /* Removed with the batch: it would fail every time. */
            roost_log(f->m, ROOST_LOG_ERROR,
                      "dropping unreadable offline message %s of %s",
                      f->items[i].id, f->user);
            sent++;
            continue;
        }
        rc = roost_session_deliver(s, st);
        roost_stanza_unref(st);
        if (rc < 0)
            break;
        sent++;
    }
    /* A session cut off while the batch was queued (slow reader) lost
     * its output: keep the batch for the next login rather than lose it. */
    if (roost_session_find(f->m, f->jid) != s) {
        roost_log(f->m, ROOST_LOG_INFO,
                  "session of %s went away during offline delivery; "
                  "keeping the messages",
                  f->user);
        goto unlock;
    }
    roost_log(f->m, ROOST_LOG_DEBUG, "delivered %d offline message%s to %s",
              sent, sent == 1 ? "" : "s", roost_jid_full(f->jid));

    /* Freed in offline_rm_done. */
    r = roost_xcalloc(1, sizeof(*r));
    r->m = f->m;
    r->store = f->store;
    r->user = roost_xstrdup(f->user);
    r->n = sent;
    r->ids = roost_xcalloc((size_t)(sent > 0 ? sent : 1), sizeof(*r->ids));
    for (int i = 0; i < sent; i++)
        memcpy(r->ids[i], f->items[i].id, ROOST_STORE_ID_LEN);
    u->count = u->count > sent ? u->count - sent : 0;
    /* More batches, or messages that arrived during this one: go on
     * (the lock stays) after the removal. */
    if (sent == f->n && (f->more || u->pending > 0 || u->count > 0)) {
        /* The lock stays held until the last batch. */
        offline_fetch_clear(f);
        r->next = f;
    }
    roost_store_async(f->m, offline_rm_work, offline_rm_done, r);
    if (r->next == NULL)
        offline_fetch_unlock(f);
    return;
unlock:
    offline_fetch_unlock(f);
}

/* Ends the fetch: releases the account's lock (if it is still this
 * fetch's) and frees f. */
static void
offline_fetch_unlock(offline_fetch_t *f)
{
    offline_user_t *u = offline_user(f->m, f->user);

    if (u != NULL && u->fetching == f->lock) {
        u->fetching = 0;
        u->pending = 0;
        roost_free(u->fetch_full);
        u->fetch_full = NULL;
    }
    offline_fetch_free(f);
}

static void
offline_fetch_submit(offline_fetch_t *f)
{
    roost_store_async(f->m, offline_fetch_work, offline_fetch_done, f);
}

static roost_verdict_t
offline_presence(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    roost_session_t *s = ev->origin;
    offline_user_t *u;
    offline_sess_t *os;
    offline_fetch_t *f;

    if (s == NULL || roost_stanza_attr(ev->stanza, "type") != NULL ||
        !offline_eligible(s))
        return ROOST_PASS;
    os = offline_sess(m, s, 1);
    if (os->armed)
        return ROOST_PASS; /* only the first non-negative presence */
    os->armed = 1;
    u = offline_user(m, roost_jid_node(ev->from));
    if (u == NULL || (u->count == 0 && !u->count_unknown))
        return ROOST_PASS;
    if (u->fetching != 0)
        return ROOST_PASS; /* another resource is getting them */

    /* Freed by offline_fetch_free, after the last batch. */
    f = roost_xcalloc(1, sizeof(*f));
    f->m = m;
    f->store = offline_data(m)->store;
    f->user = roost_xstrdup(roost_jid_node(ev->from));
    f->jid = roost_jid_dup(roost_session_jid(s));
    f->token = os->token;
    f->lock = ++offline_data(m)->serial;
    u->fetching = f->lock;
    roost_free(u->fetch_full);
    u->fetch_full = roost_xstrdup(roost_jid_full(roost_session_jid(s)));
    offline_fetch_submit(f);
    return ROOST_PASS;
}

static roost_verdict_t
offline_session_closed(const roost_ev_t *ev, void *arg)
{
    void **slot = roost_session_slot(ev->origin, ev->mod);

    roost_free(*slot);
    *slot = NULL;
    return ROOST_PASS;
}

/* --- lifecycle --- */

static const roost_user_state_t offline_user_ops = {
    .load = offline_user_load,
    .free = offline_user_free,
};

static int
offline_load(roost_mod_t *m)
{
    offline_t *o;
    int rc;

    /* Freed in offline_unload. */
    o = roost_xcalloc(1, sizeof(*o));
    *roost_mod_data(m) = o;
    o->store = roost_store_open(m, "offline", ROOST_STORE_ARCHIVE);
    if (o->store == NULL)
        return -ROOST_ESTORAGE;
    roost_add_feature(m, OFFLINE_NS_DISCO);
    rc = roost_user_state(m, &offline_user_ops);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_FALLBACK,
                        offline_message, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_FALLBACK,
                        offline_message, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_QUEUE,
                        offline_while_fetching, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_QUEUE,
                        offline_while_fetching, NULL);
    /* An observer that always PASSes and only queues a read (mod_presence
     * passes the broadcast on as well). */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_OUT, ROOST_PRIO_DEFAULT,
                        offline_presence, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_CLOSED, ROOST_PRIO_DEFAULT,
                        offline_session_closed, NULL);
    return rc;
}

static void
offline_unload(roost_mod_t *m)
{
    roost_free(*roost_mod_data(m));
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(offline) = {
    .abi = ROOST_ABI,
    .name = "offline",
    .depends = (const char *const[]){"message", NULL},
    .opts = offline_opts,
    .conf_size = sizeof(struct offline_conf),
    .load = offline_load,
    .unload = offline_unload,
};
