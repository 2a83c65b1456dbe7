/* tests/harness/harness.c: the fake host behind tests/modules/ (see
 * harness.h for how a test uses it).
 *
 * Implements the module API of include/roost/module.h for one virtual host
 * with plain arrays: hooks, IQ handlers, the disco registry, fake sessions
 * that capture what is delivered to them, a sent list for everything else,
 * and a fake clock for timers.  It mirrors the core's rules (priority order,
 * automatic removal on unload, service-unavailable for unhandled IQs and
 * messages) and checks the module's side of the contract.
 *
 * Storage is the real thing (core/storage.c on the in-memory driver),
 * opened on first use and discarded by harness_reset(); storage jobs are
 * queued and run at the end of each call that drives the module, as the
 * loop would run their done callbacks on a later turn.
 *
 * Not for: production use, performance, or several vhosts.  File-scope
 * state is fine here: a test program is one fake host. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "harness.h"
#include "log.h"
#include "roster.h"
#include "storage.h"

#define HARNESS_MAX_MODS 32

struct roost_mod {
    const roost_module_t *def;
    int index;    /* slot index in sessions, stable while loaded */
    void *conf;   /* conf_size bytes, or NULL */
    void *data;   /* roost_mod_data() */
    void **owned; /* harness-allocated option strings and lists */
    size_t nowned;
    int unloading;             /* registrations now are violations */
    roost_user_state_t ustate; /* roost_user_state(); load NULL = none */
    roost_store_t **stores;    /* roost_store_open(), closed on unload */
    size_t nstores;
};

/* Captured output: serialised forms (NULL-terminated) and trees. */
struct outlist {
    char **xml;
    roost_stanza_t **st;
    size_t n, cap;
};

struct roost_session {
    roost_jid_t *jid;
    int available;
    int priority;
    int closing;
    char *close_cond;
    void *slots[HARNESS_MAX_MODS];
    int roster_requested; /* an "interested resource" (RFC 6121 §2.1.6) */
    char *addr;           /* roost_session_addr(); NULL: 127.0.0.1 */
    int holds;            /* roost_session_hold() (pre-auth sessions) */
    int hibernating;      /* harness_session_hibernate() */
    struct outlist out;
};

struct hook {
    roost_mod_t *m;
    roost_event_t ev;
    int prio;
    unsigned long seq;
    roost_handler_fn fn;
    void *arg;
};

struct iqh {
    roost_mod_t *m;
    char *xmlns;
    char *child;
    int is_set;
    roost_handler_fn fn;
    void *arg;
};

struct feature {
    roost_mod_t *m;
    char *xmlns;
};

struct identity {
    roost_mod_t *m;
    char *cat, *type, *name;
};

struct sfeature {
    roost_mod_t *m;
    roost_stanza_t *el;
};

/* One loaded per-user state of a module (roost_user_data()). */
struct uslot {
    roost_mod_t *m;
    char *user;
    void *data;
};

/* A stored key/value of the MAP store "roster" (contact or "" -> value). */
struct kv {
    char *key;
    char *val;
};

/* A user's roster: the loaded one (core/roster.c) and what was persisted.
 * The host keeps every roster loaded until reset (the real core drops it
 * when the user has no sessions; harness_roster_reload() simulates that). */
struct ruser {
    char *user;
    roost_roster_t *roster; /* NULL: not loaded */
    int unloaded;           /* harness_roster_unload(): reads as not loaded
                             * until the account is used again */
    struct kv *store;
    size_t nstore, capstore;
    int persists; /* roost_host_roster_persist() calls */
};

/* A roost_store_async() job waiting for the end of the "loop turn". */
struct job {
    roost_mod_t *m;
    int (*work)(void *arg);
    void (*done)(void *arg, int result);
    void *arg;
};

struct timer {
    roost_mod_t *m;
    int id;
    uint64_t due;
    void (*fn)(roost_mod_t *m, void *arg);
    void *arg;
};

/* A growable array of T: ARR(struct hook) hooks. */
#define ARR(T)                                                                 \
    struct {                                                                   \
        T *v;                                                                  \
        size_t n, cap;                                                         \
    }
#define ARR_PUSH(a, x)                                                         \
    do {                                                                       \
        if ((a).n == (a).cap) {                                                \
            (a).cap = (a).cap ? (a).cap * 2 : 8;                               \
            (a).v = roost_xrealloc((a).v, (a).cap * sizeof(*(a).v));           \
        }                                                                      \
        (a).v[(a).n++] = (x);                                                  \
    } while (0)

static struct {
    char *host;
    roost_mod_t *mods[HARNESS_MAX_MODS]; /* by index; NULL = free */
    int load_order[HARNESS_MAX_MODS];
    int nloaded;
    ARR(roost_session_t *) sessions;
    ARR(struct hook) hooks;
    ARR(struct iqh) iqs;
    ARR(struct feature) features;
    ARR(struct identity) identities;
    ARR(struct sfeature) sfeatures;
    ARR(struct feature) afeatures;    /* roost_add_account_feature */
    ARR(struct identity) aidentities; /* roost_add_account_identity */
    ARR(struct timer) timers;
    ARR(struct uslot) uslots;
    ARR(struct ruser *) rusers;
    ARR(struct job) jobs; /* FIFO; jobs_head: the next to run */
    size_t jobs_head;
    int storage_open;             /* roost_storage_init("memory") done */
    int storage_hold;             /* harness_storage_hold(1): jobs wait */
    ARR(roost_store_t *) hstores; /* harness_store() views */
    ARR(char *) admins;           /* harness_admin_add() bare JIDs */
    struct outlist sent;
    unsigned long seq;
    int next_timer_id;
    uint64_t now;
    int violations;
    int log_counts[4];
    char *last_close;
    int closed_any;
    int deliver_hooks;                 /* harness_deliver_hooks() */
    ARR(struct iqh) preiqs;            /* roost_hook_preauth_iq() */
    ARR(struct sfeature) presfeatures; /* roost_add_preauth_stream_feature */
    ARR(roost_session_t *) pre;        /* unauthenticated sessions */
    ARR(struct iqh) nonzas;            /* roost_hook_nonza() */
} H;

static const char *const empty_list[] = {NULL};

static void sessions_reap(void);
static void preauth_free(roost_session_t *s);
static void storage_ensure(void);

static void harness_violation(const char *fmt, ...) ROOST_PRINTF(1, 2);

static void
harness_violation(const char *fmt, ...)
{
    va_list ap;

    H.violations++;
    fprintf(stderr, "harness: contract violation: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- captured output ---- */

static void
outlist_add(struct outlist *o, const roost_stanza_t *st)
{
    if (o->n + 1 >= o->cap) {
        o->cap = o->cap ? o->cap * 2 : 8;
        o->xml = roost_xrealloc(o->xml, o->cap * sizeof(*o->xml));
        o->st = roost_xrealloc(o->st, o->cap * sizeof(*o->st));
    }
    o->xml[o->n] = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);
    o->st[o->n] = roost_stanza_copy(st);
    o->n++;
    o->xml[o->n] = NULL;
}

static void
outlist_clear(struct outlist *o)
{
    for (size_t i = 0; i < o->n; i++) {
        roost_free(o->xml[i]);
        roost_stanza_unref(o->st[i]);
    }
    roost_free(o->xml);
    roost_free(o->st);
    memset(o, 0, sizeof(*o));
}

static const char *const *
outlist_list(const struct outlist *o)
{
    return o->n ? (const char *const *)o->xml : empty_list;
}

/* ---- sessions ---- */

static roost_session_t *
session_by_full(const char *full)
{
    for (size_t i = 0; i < H.sessions.n; i++)
        if (strcmp(roost_jid_full(H.sessions.v[i]->jid), full) == 0)
            return H.sessions.v[i];
    return NULL;
}

static roost_session_t *
session_by_jid(const roost_jid_t *j)
{
    if (j == NULL || roost_jid_resource(j) == NULL)
        return NULL;
    return session_by_full(roost_jid_full(j));
}

/* Delivery to a bound session: with harness_deliver_hooks(1), the
 * ROOST_EV_DELIVER hooks run first, as in core/module.c
 * roost_hooks_deliver_r (HANDLED keeps it from s; a substitute is what
 * s captures).  Off by default: the
 * module tests were written against plain capture.  Returns 0 or
 * -ROOST_EDENIED. */
static int session_deliver(roost_session_t *s, roost_stanza_t *st);

/* ---- hooks ---- */

static int
hook_cmp(const void *a, const void *b)
{
    const struct hook *x = a, *y = b;

    if (x->prio != y->prio)
        return x->prio > y->prio ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The events being fired by hooks_fire_r, innermost first, as in
 * core/module.c: roost_event_replace finds its event here. */
struct hooks_frame {
    roost_ev_t e;
    roost_stanza_t **cur; /* the caller's reference, swapped on replace */
    struct hooks_frame *up;
};

static struct hooks_frame *hooks_top;
static int replace_count; /* successful roost_event_replace() calls */

static int
attr_same(const roost_stanza_t *a, const roost_stanza_t *b, const char *name)
{
    const char *x = roost_stanza_attr(a, name), *y = roost_stanza_attr(b, name);

    return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

int
roost_event_replace(const roost_ev_t *ev, roost_stanza_t *st)
{
    struct hooks_frame *f;

    for (f = hooks_top; f != NULL && &f->e != ev; f = f->up)
        ;
    if (f == NULL || st == NULL || f->e.stanza == NULL ||
        roost_stanza_kind(st) != roost_stanza_kind(f->e.stanza) ||
        !attr_same(st, f->e.stanza, "from") ||
        !attr_same(st, f->e.stanza, "to") ||
        !attr_same(st, f->e.stanza, "type"))
        return -ROOST_EINVAL;
    roost_stanza_ref(st);
    roost_stanza_unref(*f->cur);
    *f->cur = st;
    f->e.stanza = st;
    replace_count++;
    return 0;
}

int
harness_replace_count(void)
{
    return replace_count;
}

/* hooks_fire_r with the event's fields from e (origin, from, to,
 * session; stanza and mod are set here).  For ROOST_EV_DELIVER
 * (e->session set), as core/module.c roost_hooks_deliver_r: no further
 * hook runs once the session is closing. */
static int
hooks_fire_ev(roost_event_t ev, const roost_ev_t *e, roost_stanza_t **st)
{
    struct hook *snap;
    size_t n = 0;
    int verdict = ROOST_PASS;
    char *before = NULL;
    struct hooks_frame f = {.e = *e, .cur = st, .up = hooks_top};

    f.e.stanza = *st;
    snap = roost_xcalloc(H.hooks.n + 1, sizeof(*snap));
    for (size_t i = 0; i < H.hooks.n; i++)
        if (H.hooks.v[i].ev == ev)
            snap[n++] = H.hooks.v[i];
    qsort(snap, n, sizeof(*snap), hook_cmp);
    hooks_top = &f;
    for (size_t i = 0; i < n && (e->session == NULL || !e->session->closing);
         i++) {
        roost_stanza_t *was = *st;
        int v;

        if (was != NULL)
            before = roost_stanza_serialize(was, ROOST_NS_CLIENT, NULL);
        f.e.mod = snap[i].m;
        v = snap[i].fn(&f.e, snap[i].arg);
        if (v != ROOST_PASS && v != ROOST_HANDLED)
            harness_violation("%s: hook for event %d returned %d",
                              roost_mod_name(snap[i].m), (int)ev, v);
        if (was != NULL && *st == was) {
            /* Replaced: the old one may be gone, and is not checked. */
            char *after = roost_stanza_serialize(was, ROOST_NS_CLIENT, NULL);

            if (strcmp(before, after) != 0)
                harness_violation("%s: hook changed its borrowed stanza "
                                  "%s -> %s",
                                  roost_mod_name(snap[i].m), before, after);
            roost_free(after);
        }
        roost_free(before);
        before = NULL;
        if (v == ROOST_HANDLED) {
            verdict = ROOST_HANDLED;
            break;
        }
    }
    hooks_top = f.up;
    roost_free(snap);
    return verdict;
}

/* Runs the hooks of ev in priority order until one returns HANDLED.  The
 * stanza is serialised before and after each handler: handlers borrow it
 * and must not change it (HOUSE 9: roost_stanza_copy() to mutate).  *st
 * is a reference the caller holds; a handler may substitute another
 * (roost_event_replace), which *st then is (the caller's reference). */
static int
hooks_fire_r(roost_event_t ev, roost_session_t *origin, roost_stanza_t **st,
             const roost_jid_t *from, const roost_jid_t *to)
{
    roost_ev_t e = {.origin = origin, .from = from, .to = to};

    return hooks_fire_ev(ev, &e, st);
}

/* hooks_fire_r for callers that go on with st whatever the hooks did
 * (a substitute is dropped). */
static int
hooks_fire(roost_event_t ev, roost_session_t *origin, roost_stanza_t *st,
           const roost_jid_t *from, const roost_jid_t *to)
{
    roost_stanza_t *cur = st != NULL ? roost_stanza_ref(st) : NULL;
    int v = hooks_fire_r(ev, origin, &cur, from, to);

    roost_stanza_unref(cur);
    return v;
}

/* ---- routing ---- */

static int route_local(roost_session_t *origin, roost_stanza_t *st,
                       const roost_jid_t *from, const roost_jid_t *to);

/* Routes a stanza produced by a module or by the harness, as the core's
 * roost_router_route() does: through the local routing (hooks included)
 * when addressed to the vhost, into the sent list otherwise.  A stanza
 * without a valid from/to is dropped (the core logs it). */
static void
route_out(roost_stanza_t *st)
{
    const char *from_s = roost_stanza_attr(st, "from");
    const char *to_s = roost_stanza_attr(st, "to");
    roost_jid_t *from = from_s ? roost_jid_new(from_s) : NULL;
    roost_jid_t *to = to_s ? roost_jid_new(to_s) : NULL;

    if (from == NULL || to == NULL)
        fprintf(stderr, "harness: dropping a %s without valid from/to\n",
                roost_stanza_name(st));
    else if (strcmp(roost_jid_domain(to), H.host) != 0)
        outlist_add(&H.sent, st);
    else
        route_local(NULL, st, from, to);
    roost_jid_free(from);
    roost_jid_free(to);
}

/* The core's error reply when nobody handled st (never for errors). */
static void
default_bounce(const roost_stanza_t *st, roost_stanza_err_t cond)
{
    roost_stanza_t *err;
    const char *type = roost_stanza_attr(st, "type");

    if ((type != NULL && strcmp(type, "error") == 0) ||
        roost_stanza_attr(st, "from") == NULL)
        return;
    err = roost_stanza_error(st, cond, NULL);
    if (roost_stanza_attr(err, "from") == NULL)
        roost_stanza_set_attr(err, "from", H.host);
    route_out(err);
    roost_stanza_unref(err);
}

/* ---- options ---- */

static void
mod_own(roost_mod_t *m, void *p)
{
    m->owned = roost_xrealloc(m->owned, (m->nowned + 1) * sizeof(void *));
    m->owned[m->nowned++] = p;
}

static int
opt_parse_int(const char *s, int64_t *out, int kind)
{
    char *end;
    long long v;
    double d;

    errno = 0;
    if (kind == ROOST_OPT_MSEC) {
        d = strtod(s, &end);
        if (end == s || errno != 0)
            return -ROOST_EINVAL;
        if (strcmp(end, "ms") == 0)
            *out = (int64_t)d;
        else if (*end == '\0' || strcmp(end, "s") == 0)
            *out = (int64_t)(d * 1000.0);
        else
            return -ROOST_EINVAL;
        return 0;
    }
    v = strtoll(s, &end, 10);
    if (end == s || errno != 0)
        return -ROOST_EINVAL;
    if (kind == ROOST_OPT_SIZE && *end != '\0') {
        switch (toupper((unsigned char)*end)) {
        case 'K': v *= 1024; break;
        case 'M': v *= 1024 * 1024; break;
        case 'G': v *= 1024LL * 1024 * 1024; break;
        default: return -ROOST_EINVAL;
        }
        end++;
        if (toupper((unsigned char)*end) == 'B')
            end++;
    }
    if (*end != '\0')
        return -ROOST_EINVAL;
    *out = v;
    return 0;
}

static int
opt_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -ROOST_EINVAL;
}

/* "a, b,c" -> {"a", "b", "c", NULL}, owned by m. */
static const char **
opt_parse_list(roost_mod_t *m, const char *s)
{
    const char **v = NULL;
    size_t n = 0;
    const char *p = s;

    for (;;) {
        const char *start, *end;

        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        while (end > start && end[-1] == ' ')
            end--;
        v = roost_xrealloc(v, (n + 2) * sizeof(*v));
        v[n] = roost_xstrndup(start, (size_t)(end - start));
        mod_own(m, (void *)v[n]);
        n++;
    }
    v = roost_xrealloc(v, (n + 1) * sizeof(*v));
    v[n] = NULL;
    mod_own(m, v);
    return v;
}

static int
conf_fill(roost_mod_t *m)
{
    const roost_opt_t *o;

    if (m->def->conf_size > 0)
        m->conf = roost_xcalloc(1, m->def->conf_size);
    if (m->def->opts == NULL)
        return 0;
    for (o = m->def->opts; o->name != NULL; o++) {
        char *slot;
        int64_t v;
        int b;

        if (m->conf == NULL) {
            fprintf(stderr, "harness: %s: option %s but conf_size 0\n",
                    m->def->name, o->name);
            return -ROOST_ECONFIG;
        }
        slot = (char *)m->conf + o->offset;
        if (o->dflt == NULL)
            continue;
        switch (o->type) {
        case ROOST_OPT_BOOL:
            if (opt_parse_bool(o->dflt, &b) < 0)
                goto bad;
            memcpy(slot, &b, sizeof(b));
            break;
        case ROOST_OPT_INT:
        case ROOST_OPT_SIZE:
        case ROOST_OPT_MSEC:
            if (opt_parse_int(o->dflt, &v, (int)o->type) < 0)
                goto bad;
            /* min == max == 0 means unbounded. */
            if ((o->min != 0 || o->max != 0) && (v < o->min || v > o->max))
                goto bad;
            memcpy(slot, &v, sizeof(v));
            break;
        case ROOST_OPT_STR: {
            char *s = roost_xstrdup(o->dflt);

            mod_own(m, s);
            memcpy(slot, &s, sizeof(s));
            break;
        }
        case ROOST_OPT_STRLIST: {
            const char **l = opt_parse_list(m, o->dflt);

            memcpy(slot, &l, sizeof(l));
            break;
        }
        default: goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "harness: %s: bad default for option %s: \"%s\"\n",
                m->def->name, o->name, o->dflt);
        return -ROOST_ECONFIG;
    }
    return 0;
}

/* ---- registrations ---- */

static int
mod_registrations(const roost_mod_t *m)
{
    int n = 0;

    for (size_t i = 0; i < H.hooks.n; i++)
        n += H.hooks.v[i].m == m;
    for (size_t i = 0; i < H.iqs.n; i++)
        n += H.iqs.v[i].m == m;
    for (size_t i = 0; i < H.features.n; i++)
        n += H.features.v[i].m == m;
    for (size_t i = 0; i < H.identities.n; i++)
        n += H.identities.v[i].m == m;
    for (size_t i = 0; i < H.sfeatures.n; i++)
        n += H.sfeatures.v[i].m == m;
    for (size_t i = 0; i < H.afeatures.n; i++)
        n += H.afeatures.v[i].m == m;
    for (size_t i = 0; i < H.aidentities.n; i++)
        n += H.aidentities.v[i].m == m;
    for (size_t i = 0; i < H.timers.n; i++)
        n += H.timers.v[i].m == m;
    for (size_t i = 0; i < H.preiqs.n; i++)
        n += H.preiqs.v[i].m == m;
    for (size_t i = 0; i < H.presfeatures.n; i++)
        n += H.presfeatures.v[i].m == m;
    for (size_t i = 0; i < H.nonzas.n; i++)
        n += H.nonzas.v[i].m == m;
    return n;
}

/* Removes everything m registered, as the core does on unload. */
static void
mod_unregister(roost_mod_t *m)
{
    size_t j;

#define DROP(a, FREE)                                                          \
    do {                                                                       \
        j = 0;                                                                 \
        for (size_t i = 0; i < (a).n; i++) {                                   \
            if ((a).v[i].m == m) {                                             \
                FREE(&(a).v[i]);                                               \
                continue;                                                      \
            }                                                                  \
            (a).v[j++] = (a).v[i];                                             \
        }                                                                      \
        (a).n = j;                                                             \
    } while (0)
#define FREE_NONE(x) (void)(x)
#define FREE_IQ(x)   (roost_free((x)->xmlns), roost_free((x)->child))
#define FREE_FEAT(x) roost_free((x)->xmlns)
#define FREE_IDENT(x)                                                          \
    (roost_free((x)->cat), roost_free((x)->type), roost_free((x)->name))
#define FREE_SFEAT(x) roost_stanza_unref((x)->el)
    DROP(H.hooks, FREE_NONE);
    DROP(H.iqs, FREE_IQ);
    DROP(H.features, FREE_FEAT);
    DROP(H.identities, FREE_IDENT);
    DROP(H.sfeatures, FREE_SFEAT);
    DROP(H.afeatures, FREE_FEAT);
    DROP(H.aidentities, FREE_IDENT);
    DROP(H.timers, FREE_NONE);
    DROP(H.preiqs, FREE_IQ);
    DROP(H.presfeatures, FREE_SFEAT);
    DROP(H.nonzas, FREE_IQ);
#undef DROP
}

static int
mod_check(roost_mod_t *m, const char *what)
{
    if (m == NULL) {
        harness_violation("%s with a NULL module", what);
        return -1;
    }
    if (m->unloading) {
        harness_violation("%s: %s during unload", m->def->name, what);
        return -1;
    }
    return 0;
}

/* ---- per-user state and rosters ---- */

/* Frees (through the module's free()) every user state of m. */
static void
uslots_drop(roost_mod_t *m)
{
    size_t j = 0;

    for (size_t i = 0; i < H.uslots.n; i++) {
        struct uslot u = H.uslots.v[i];

        if (u.m != m) {
            H.uslots.v[j++] = u;
            continue;
        }
        /* As core/user.c: free() only for a state load() made. */
        if (m->ustate.free != NULL && u.data != NULL)
            m->ustate.free(m, u.data);
        roost_free(u.user);
    }
    H.uslots.n = j;
}

static struct ruser *
ruser_find(const char *user, int create)
{
    struct ruser *r;

    for (size_t i = 0; i < H.rusers.n; i++)
        if (strcmp(H.rusers.v[i]->user, user) == 0)
            return H.rusers.v[i];
    if (!create)
        return NULL;
    r = roost_xcalloc(1, sizeof(*r));
    r->user = roost_xstrdup(user);
    ARR_PUSH(H.rusers, r);
    return r;
}

static void
ruser_free(struct ruser *r)
{
    roost_roster_free(r->roster);
    for (size_t i = 0; i < r->nstore; i++) {
        roost_free(r->store[i].key);
        roost_free(r->store[i].val);
    }
    roost_free(r->store);
    roost_free(r->user);
    roost_free(r);
}

static struct kv *
ruser_stored(struct ruser *r, const char *key)
{
    for (size_t i = 0; i < r->nstore; i++)
        if (strcmp(r->store[i].key, key) == 0)
            return &r->store[i];
    return NULL;
}

/* Stores key = val (val NULL deletes), as the storage worker would. */
static void
ruser_store(struct ruser *r, const char *key, const char *val)
{
    struct kv *e = ruser_stored(r, key);

    if (val == NULL) {
        if (e != NULL) {
            roost_free(e->key);
            roost_free(e->val);
            *e = r->store[--r->nstore];
        }
        return;
    }
    if (e != NULL) {
        roost_free(e->val);
        e->val = roost_xstrdup(val);
        return;
    }
    if (r->nstore == r->capstore) {
        r->capstore = r->capstore ? r->capstore * 2 : 8;
        r->store = roost_xrealloc(r->store, r->capstore * sizeof(*r->store));
    }
    r->store[r->nstore].key = roost_xstrdup(key);
    r->store[r->nstore].val = roost_xstrdup(val);
    r->nstore++;
}

/* Loads r's roster from its store, as core/user.c does at login. */
static void
ruser_load(struct ruser *r)
{
    r->roster = roost_roster_new();
    for (size_t i = 0; i < r->nstore; i++)
        roost_roster_load_entry(r->roster, r->store[i].key, r->store[i].val,
                                strlen(r->store[i].val));
}

int
harness_roster_preload(const char *user, const char *const *kv)
{
    struct ruser *r = ruser_find(user, 1);

    if (r->roster != NULL)
        return -ROOST_EEXIST;
    for (size_t i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL; i += 2)
        ruser_store(r, kv[i], kv[i + 1]);
    r->unloaded = 0;
    ruser_load(r);
    return 0;
}

int
harness_roster_reload(const char *user)
{
    struct ruser *r = ruser_find(user, 0);

    if (r == NULL)
        return -ROOST_ENOTFOUND;
    roost_roster_free(r->roster);
    r->unloaded = 0;
    ruser_load(r);
    return 0;
}

const char *
harness_roster_stored(const char *user, const char *key)
{
    struct ruser *r = ruser_find(user, 0);
    struct kv *e = r != NULL ? ruser_stored(r, key) : NULL;

    return e != NULL ? e->val : NULL;
}

size_t
harness_roster_stored_count(const char *user)
{
    struct ruser *r = ruser_find(user, 0);

    return r != NULL ? r->nstore : 0;
}

int
harness_roster_persist_count(const char *user)
{
    struct ruser *r = ruser_find(user, 0);

    return r != NULL ? r->persists : 0;
}

int
harness_roster_unload(const char *user)
{
    struct ruser *r = ruser_find(user, 0);

    if (r == NULL || r->roster == NULL)
        return -ROOST_ENOTFOUND;
    roost_roster_free(r->roster);
    r->roster = NULL;
    r->unloaded = 1;
    return 0;
}

/* user is being used (a session, a stanza routed to it): its roster is
 * loaded again, as the core loads the state before the events fire. */
static void
ruser_touch(const char *user)
{
    struct ruser *r = user != NULL ? ruser_find(user, 0) : NULL;

    if (r != NULL)
        r->unloaded = 0;
}

/* The core/roster.h host hooks.  Any user's roster is loaded (empty when
 * nothing is stored) on first use: the core guarantees it is loaded
 * before events for that user fire.  Except after harness_roster_unload,
 * until the account is used again. */
roost_roster_t *
roost_host_roster(roost_mod_t *m, const char *user)
{
    struct ruser *r;

    if (user == NULL || H.host == NULL)
        return NULL;
    r = ruser_find(user, 1);
    if (r->unloaded)
        return NULL;
    if (r->roster == NULL)
        ruser_load(r);
    return r->roster;
}

/* roost_roster_load_async: the account's existence is read on the
 * "storage worker" (the real credential store), then the roster is
 * loaded and fn runs, at the end of the driving call like any job. */
struct roster_read {
    roost_mod_t *m;
    char *user;
    roost_roster_loaded_fn fn;
    void *arg;
};

static int
roster_read_work(void *arg)
{
    struct roster_read *r = arg;

    return roost_auth_exists(H.host, r->user) == 1 ? 0 : -ROOST_ENOTFOUND;
}

static void
roster_read_done(void *arg, int rc)
{
    struct roster_read *r = arg;

    if (rc == 0) {
        ruser_touch(r->user);
        if (roost_host_roster(r->m, r->user) == NULL)
            rc = -ROOST_ENOTFOUND;
    }
    r->fn(r->m, r->arg, rc);
    roost_free(r->user);
    roost_free(r);
}

void
roost_roster_load_async(roost_mod_t *m, const char *user,
                        roost_roster_loaded_fn fn, void *arg)
{
    struct roster_read *r;

    if (mod_check(m, "roost_roster_load_async") < 0 || user == NULL ||
        fn == NULL)
        return;
    storage_ensure();
    r = roost_xcalloc(1, sizeof(*r)); /* freed by roster_read_done */
    r->m = m;
    r->user = roost_xstrdup(user);
    r->fn = fn;
    r->arg = arg;
    roost_store_async(m, roster_read_work, roster_read_done, r);
}

void
roost_host_roster_persist(roost_mod_t *m, const char *user, const char *key,
                          const char *value)
{
    struct ruser *r = ruser_find(user, 1);

    r->persists++;
    ruser_store(r, key, value);
}

/* ---- storage (the real core/storage.c on storage/st_memory.c) ---- */

static void
storage_ensure(void)
{
    char *err = NULL;

    if (H.storage_open)
        return;
    if (roost_storage_init("memory", NULL, &err) != 0) {
        fprintf(stderr, "harness: cannot open the memory storage: %s\n",
                err ? err : "?");
        roost_free(err);
        abort();
    }
    H.storage_open = 1;
}

/* Runs queued jobs in submission order (jobs that done callbacks submit
 * included); only m's with m non-NULL.  Returns how many ran. */
static int
jobs_run(roost_mod_t *m)
{
    int ran = 0;

    for (;;) {
        size_t i;
        struct job j;

        for (i = H.jobs_head; i < H.jobs.n; i++)
            if (m == NULL || H.jobs.v[i].m == m)
                break;
        if (i == H.jobs.n)
            break;
        j = H.jobs.v[i];
        if (i == H.jobs_head) {
            H.jobs_head++;
        } else {
            memmove(&H.jobs.v[i], &H.jobs.v[i + 1],
                    (H.jobs.n - i - 1) * sizeof(j));
            H.jobs.n--;
        }
        if (H.jobs_head == H.jobs.n)
            H.jobs_head = H.jobs.n = 0;
        {
            int rc = j.work(j.arg);

            if (j.done != NULL)
                j.done(j.arg, rc);
        }
        ran++;
    }
    return ran;
}

/* The end of a loop turn: storage results come back (unless held), then
 * sessions closed meanwhile are freed; repeated until nothing is left. */
static void
turn_end(void)
{
    do {
        if (!H.storage_hold)
            jobs_run(NULL);
        sessions_reap();
    } while (!H.storage_hold && H.jobs_head < H.jobs.n);
}

void
harness_storage_hold(int hold)
{
    H.storage_hold = hold;
}

int
harness_storage_run(void)
{
    int ran = 0, n;

    while ((n = jobs_run(NULL)) > 0) {
        ran += n;
        sessions_reap();
    }
    sessions_reap();
    return ran;
}

int
harness_storage_pending(void)
{
    return (int)(H.jobs.n - H.jobs_head);
}

roost_store_t *
harness_store(const char *name, roost_store_shape_t shape)
{
    roost_store_t *st;

    if (H.host == NULL)
        return NULL;
    storage_ensure();
    st = roost_storage_store(H.host, name, shape);
    if (st != NULL)
        ARR_PUSH(H.hstores, st);
    return st;
}

int
harness_user_drop(const char *user)
{
    size_t j = 0;
    int n = 0;

    for (size_t i = 0; i < H.uslots.n; i++) {
        struct uslot u = H.uslots.v[i];

        if (strcmp(u.user, user) != 0) {
            H.uslots.v[j++] = u;
            continue;
        }
        if (u.m->ustate.free != NULL && u.data != NULL)
            u.m->ustate.free(u.m, u.data);
        roost_free(u.user);
        n++;
    }
    H.uslots.n = j;
    return n;
}

void
harness_admin_add(const char *bare)
{
    ARR_PUSH(H.admins, roost_xstrdup(bare));
}

void
harness_session_set_addr(roost_session_t *s, const char *addr)
{
    roost_free(s->addr);
    s->addr = addr != NULL ? roost_xstrdup(addr) : NULL;
}

/* ---- harness API ---- */

roost_mod_t *
harness_load(const roost_module_t *def, const char *host,
             void (*conf_init)(void *conf))
{
    roost_mod_t *m;
    int idx = -1, rc;

    if (def == NULL || def->abi != ROOST_ABI) {
        fprintf(stderr, "harness: module ABI mismatch\n");
        return NULL;
    }
    if (H.host == NULL)
        H.host = roost_xstrdup(host);
    else if (strcmp(H.host, host) != 0) {
        fprintf(stderr, "harness: one vhost only (%s, not %s)\n", H.host, host);
        return NULL;
    }
    if (harness_mod(def->name) != NULL) {
        fprintf(stderr, "harness: %s already loaded\n", def->name);
        return NULL;
    }
    for (const char *const *d = def->depends; d != NULL && *d != NULL; d++)
        if (harness_mod(*d) == NULL) {
            fprintf(stderr, "harness: %s depends on %s\n", def->name, *d);
            return NULL;
        }
    for (int i = 0; i < HARNESS_MAX_MODS; i++)
        if (H.mods[i] == NULL) {
            idx = i;
            break;
        }
    if (idx < 0)
        return NULL;
    m = roost_xcalloc(1, sizeof(*m));
    m->def = def;
    m->index = idx;
    H.mods[idx] = m;
    rc = conf_fill(m);
    if (rc == 0 && conf_init != NULL && m->conf != NULL)
        conf_init(m->conf);
    if (rc == 0 && def->load != NULL)
        rc = def->load(m);
    if (rc < 0) {
        fprintf(stderr, "harness: %s: load failed: %s\n", def->name,
                roost_strerror(rc));
        mod_unregister(m);
        H.mods[idx] = NULL;
        for (size_t i = 0; i < m->nowned; i++)
            roost_free(m->owned[i]);
        roost_free(m->owned);
        roost_free(m->conf);
        roost_free(m);
        return NULL;
    }
    H.load_order[H.nloaded++] = idx;
    return m;
}

int
harness_unload(roost_mod_t *m)
{
    int left, k = 0, before = H.violations;

    /* As the core: the module's pending storage work completes first. */
    jobs_run(m);
    sessions_reap();
    mod_unregister(m);
    /* Registering from unload is refused (and counted) by mod_check. */
    m->unloading = 1;
    /* The module's per-user states are dropped before it goes, so its
     * free() can still use the module's data. */
    uslots_drop(m);
    if (m->def->unload != NULL)
        m->def->unload(m);
    left = mod_registrations(m);
    if (left > 0) {
        harness_violation("%s: %d registrations left after unload",
                          m->def->name, left);
        mod_unregister(m);
    }
    for (size_t i = 0; i < H.sessions.n; i++)
        H.sessions.v[i]->slots[m->index] = NULL;
    for (size_t i = 0; i < m->nstores; i++)
        roost_store_close(m->stores[i]);
    roost_free(m->stores);
    for (int i = 0; i < H.nloaded; i++)
        if (H.load_order[i] != m->index)
            H.load_order[k++] = H.load_order[i];
    H.nloaded = k;
    H.mods[m->index] = NULL;
    for (size_t i = 0; i < m->nowned; i++)
        roost_free(m->owned[i]);
    roost_free(m->owned);
    roost_free(m->conf);
    roost_free(m);
    return H.violations > before ? -ROOST_EINVAL : 0;
}

roost_mod_t *
harness_mod(const char *name)
{
    for (int i = 0; i < HARNESS_MAX_MODS; i++)
        if (H.mods[i] != NULL && strcmp(H.mods[i]->def->name, name) == 0)
            return H.mods[i];
    return NULL;
}

static void
session_free(roost_session_t *s)
{
    hooks_fire(ROOST_EV_SESSION_CLOSED, s, NULL, NULL, NULL);
    for (int i = 0; i < HARNESS_MAX_MODS; i++)
        if (s->slots[i] != NULL && H.mods[i] != NULL)
            harness_violation("%s: session slot of %s not freed on "
                              "SESSION_CLOSED",
                              H.mods[i]->def->name, roost_jid_full(s->jid));
    roost_jid_free(s->jid);
    roost_free(s->close_cond);
    roost_free(s->addr);
    outlist_clear(&s->out);
    roost_free(s);
}

/* End of a loop turn: frees sessions a module closed. */
static void
sessions_reap(void)
{
    size_t j = 0;
    roost_session_t **dead;
    size_t ndead = 0;

    dead = roost_xcalloc(H.sessions.n + 1, sizeof(*dead));
    for (size_t i = 0; i < H.sessions.n; i++) {
        if (H.sessions.v[i]->closing)
            dead[ndead++] = H.sessions.v[i];
        else
            H.sessions.v[j++] = H.sessions.v[i];
    }
    H.sessions.n = j;
    for (size_t i = 0; i < ndead; i++)
        session_free(dead[i]);
    roost_free(dead);
}

int
harness_reset(void)
{
    int v, dh;

    while (H.sessions.n > 0) {
        roost_session_t *s = H.sessions.v[--H.sessions.n];

        session_free(s);
    }
    while (H.pre.n > 0)
        preauth_free(H.pre.v[--H.pre.n]);
    roost_free(H.pre.v);
    while (H.nloaded > 0)
        harness_unload(H.mods[H.load_order[H.nloaded - 1]]);
    roost_free(H.preiqs.v);
    roost_free(H.presfeatures.v);
    roost_free(H.nonzas.v);
    if (H.jobs_head < H.jobs.n)
        harness_violation("%d storage jobs left after unload",
                          (int)(H.jobs.n - H.jobs_head));
    roost_free(H.jobs.v);
    for (size_t i = 0; i < H.hstores.n; i++)
        roost_store_close(H.hstores.v[i]);
    roost_free(H.hstores.v);
    if (H.storage_open)
        roost_storage_shutdown(); /* forgets everything stored */
    for (size_t i = 0; i < H.admins.n; i++)
        roost_free(H.admins.v[i]);
    roost_free(H.admins.v);
    roost_free(H.sessions.v);
    roost_free(H.hooks.v);
    roost_free(H.iqs.v);
    roost_free(H.features.v);
    roost_free(H.identities.v);
    roost_free(H.sfeatures.v);
    roost_free(H.afeatures.v);
    roost_free(H.aidentities.v);
    roost_free(H.timers.v);
    roost_free(H.uslots.v);
    for (size_t i = 0; i < H.rusers.n; i++)
        ruser_free(H.rusers.v[i]);
    roost_free(H.rusers.v);
    outlist_clear(&H.sent);
    roost_free(H.host);
    roost_free(H.last_close);
    v = H.violations;
    dh = H.deliver_hooks;
    memset(&H, 0, sizeof(H));
    H.deliver_hooks = dh;
    replace_count = 0;
    return v;
}

roost_session_t *
harness_session_add(const char *jid, int available, int priority)
{
    roost_jid_t *j = roost_jid_new(jid);
    roost_session_t *s;

    if (j == NULL || roost_jid_node(j) == NULL ||
        roost_jid_resource(j) == NULL || H.host == NULL ||
        strcmp(roost_jid_domain(j), H.host) != 0 || session_by_jid(j) != NULL) {
        fprintf(stderr, "harness: bad session JID %s\n", jid);
        roost_jid_free(j);
        return NULL;
    }
    ruser_touch(roost_jid_node(j));
    s = roost_xcalloc(1, sizeof(*s));
    s->jid = j;
    s->available = available;
    s->priority = priority;
    ARR_PUSH(H.sessions, s);
    hooks_fire(ROOST_EV_SESSION_BOUND, s, NULL, NULL, NULL);
    /* Storage results come back, but s stays (even if a module closed
     * it) until the next driving call reaps it. */
    if (!H.storage_hold)
        jobs_run(NULL);
    return s;
}

int
harness_session_remove(const char *jid)
{
    for (size_t i = 0; i < H.sessions.n; i++) {
        roost_session_t *s = H.sessions.v[i];

        if (strcmp(roost_jid_full(s->jid), jid) == 0) {
            memmove(&H.sessions.v[i], &H.sessions.v[i + 1],
                    (H.sessions.n - i - 1) * sizeof(s));
            H.sessions.n--;
            session_free(s);
            turn_end();
            return 0;
        }
    }
    return -ROOST_ENOTFOUND;
}

roost_session_t *
harness_session(const char *jid)
{
    return session_by_full(jid);
}

const char *
harness_last_close(void)
{
    return H.closed_any ? (H.last_close ? H.last_close : "") : NULL;
}

static int
type_is(const roost_stanza_t *st, const char *v)
{
    const char *type = roost_stanza_attr(st, "type");

    return type != NULL && strcmp(type, v) == 0;
}

/* RFC 6120 §8.2.3: an id, a known type, and for get/set one payload. */
static int
iq_valid(const roost_stanza_t *st)
{
    roost_stanza_t *c;
    int n = 0;

    if (roost_stanza_attr(st, "id") == NULL)
        return 0;
    if (type_is(st, "result") || type_is(st, "error"))
        return 1;
    if (!type_is(st, "get") && !type_is(st, "set"))
        return 0;
    for (c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c))
        n++;
    return n == 1;
}

/* An IQ get/set for the host or the sender's own account: the handler
 * registered for (type, payload ns, payload name).  Returns its verdict,
 * PASS when there is none. */
static int
dispatch_iq(roost_session_t *origin, roost_stanza_t *st,
            const roost_jid_t *from, const roost_jid_t *to)
{
    roost_stanza_t *child = roost_stanza_first_child(st);
    const char *ns = child ? roost_stanza_ns(child) : NULL;
    int is_set = type_is(st, "set");

    if (ns == NULL)
        return ROOST_PASS;
    for (size_t i = 0; i < H.iqs.n; i++) {
        struct iqh h = H.iqs.v[i];

        if (h.is_set == is_set && strcmp(h.xmlns, ns) == 0 &&
            strcmp(h.child, roost_stanza_name(child)) == 0) {
            roost_ev_t e = {.mod = h.m,
                            .origin = origin,
                            .stanza = st,
                            .from = from,
                            .to = to};
            char *before = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);
            char *after;
            int v = h.fn(&e, h.arg);

            after = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);
            if (strcmp(before, after) != 0)
                harness_violation("%s: IQ handler changed its borrowed "
                                  "stanza",
                                  roost_mod_name(h.m));
            roost_free(before);
            roost_free(after);
            if (v != ROOST_PASS && v != ROOST_HANDLED)
                harness_violation("%s: IQ handler returned %d",
                                  roost_mod_name(h.m), v);
            return v == ROOST_HANDLED ? ROOST_HANDLED : ROOST_PASS;
        }
    }
    return ROOST_PASS;
}

static void
deliver_available(const char *node, roost_stanza_t *st)
{
    for (size_t i = 0; i < H.sessions.n; i++) {
        roost_session_t *s = H.sessions.v[i];

        if (!s->closing && s->available &&
            strcmp(roost_jid_node(s->jid), node) == 0)
            session_deliver(s, st);
    }
}

/* Classifies st (kind x host/bare/full), runs IQ handlers and hooks, and
 * applies the core's default when nobody handles it (core/router.c
 * roost_router_default, doc/stanza_routing.md).  Returns ROOST_HANDLED
 * when a handler took it or it was delivered to a session. */
static int route_default(roost_stanza_t *st, roost_stanza_kind_t kind, int bare,
                         roost_session_t *full, const roost_jid_t *to);

static int
route_local(roost_session_t *origin, roost_stanza_t *st,
            const roost_jid_t *from, const roost_jid_t *to)
{
    roost_stanza_kind_t kind = roost_stanza_kind(st);
    enum { T_HOST, T_BARE, T_FULL } target;
    roost_session_t *full = NULL;
    int ev = -1;

    ruser_touch(roost_jid_node(to));
    if (roost_jid_node(to) == NULL)
        target = T_HOST;
    else if (roost_jid_resource(to) == NULL)
        target = T_BARE;
    else
        target = T_FULL;
    if (target == T_FULL) {
        full = session_by_jid(to);
        if (full != NULL && full->closing)
            full = NULL;
    }

    switch (kind) {
    case ROOST_STANZA_MESSAGE:
        ev = target == T_HOST   ? ROOST_EV_MESSAGE_HOST
             : target == T_BARE ? ROOST_EV_MESSAGE_BARE
                                : ROOST_EV_MESSAGE_FULL;
        break;
    case ROOST_STANZA_PRESENCE:
        ev = target == T_HOST   ? ROOST_EV_PRESENCE_HOST
             : target == T_BARE ? ROOST_EV_PRESENCE_BARE
                                : ROOST_EV_PRESENCE_FULL;
        break;
    case ROOST_STANZA_IQ:
        if (!iq_valid(st)) {
            default_bounce(st, ROOST_SE_BAD_REQUEST);
            return ROOST_PASS;
        }
        if ((target == T_HOST ||
             (target == T_BARE && roost_jid_bare_eq(from, to))) &&
            (type_is(st, "get") || type_is(st, "set")) &&
            dispatch_iq(origin, st, from, to) == ROOST_HANDLED)
            return ROOST_HANDLED;
        if (target == T_BARE)
            ev = ROOST_EV_IQ_BARE;
        else if (target == T_FULL)
            ev = ROOST_EV_IQ_FULL;
        break;
    default: return ROOST_PASS;
    }
    if (ev >= 0) {
        /* A hook may substitute the stanza: the defaults apply to that. */
        roost_stanza_t *cur = roost_stanza_ref(st);
        int v = hooks_fire_r((roost_event_t)ev, origin, &cur, from, to);

        if (v != ROOST_HANDLED)
            v = route_default(cur, kind, target == T_BARE, full, to);
        roost_stanza_unref(cur);
        return v;
    }
    return route_default(st, kind, target == T_BARE, full, to);
}

/* Nobody took st: the core's defaults. */
static int
route_default(roost_stanza_t *st, roost_stanza_kind_t kind, int bare,
              roost_session_t *full, const roost_jid_t *to)
{
    int err = type_is(st, "error");

    switch (kind) {
    case ROOST_STANZA_MESSAGE:
        /* doc/stanza_routing.md rows 3, 5, 6 and 8: to a full JID with a
         * session, any type is delivered (PEP notifications are headlines
         * to full JIDs); otherwise errors and headlines are dropped. */
        if (full != NULL) {
            session_deliver(full, st);
            return ROOST_HANDLED;
        }
        if (err || type_is(st, "headline"))
            return ROOST_PASS;
        if (full != NULL) {
            session_deliver(full, st);
            return ROOST_HANDLED;
        }
        default_bounce(st, ROOST_SE_SERVICE_UNAVAILABLE);
        return ROOST_PASS;
    case ROOST_STANZA_PRESENCE:
        if (err)
            return ROOST_PASS;
        if (full != NULL && (roost_stanza_attr(st, "type") == NULL ||
                             type_is(st, "unavailable"))) {
            session_deliver(full, st);
            return ROOST_HANDLED;
        }
        if (bare && (roost_stanza_attr(st, "type") == NULL ||
                     type_is(st, "unavailable")))
            deliver_available(roost_jid_node(to), st);
        return ROOST_PASS;
    case ROOST_STANZA_IQ:
    default:
        if (type_is(st, "result") || err) {
            if (full != NULL) {
                session_deliver(full, st);
                return ROOST_HANDLED;
            }
            return ROOST_PASS;
        }
        if (full != NULL) {
            session_deliver(full, st);
            return ROOST_HANDLED;
        }
        default_bounce(st, ROOST_SE_SERVICE_UNAVAILABLE);
        return ROOST_PASS;
    }
}

/* Parses one element as it would arrive inside a c2s stream, where the
 * default namespace is jabber:client.  New reference or NULL. */
static roost_stanza_t *
harness_parse_client(const char *xml)
{
    static const char open[] = "<stream xmlns='" ROOST_NS_CLIENT "'>";
    static const char close[] = "</stream>";
    size_t len = strlen(xml);
    char *doc = roost_xmalloc(sizeof(open) + len + sizeof(close));
    roost_stanza_t *wrap, *child, *st = NULL;

    memcpy(doc, open, sizeof(open) - 1);
    memcpy(doc + sizeof(open) - 1, xml, len);
    memcpy(doc + sizeof(open) - 1 + len, close, sizeof(close));
    wrap = roost_stanza_parse(doc, strlen(doc));
    roost_free(doc);
    if (wrap == NULL)
        return NULL;
    child = roost_stanza_first_child(wrap);
    if (child != NULL && roost_stanza_next_sibling(child) == NULL)
        st = roost_stanza_copy(child);
    roost_stanza_unref(wrap);
    return st;
}

int
harness_inject(const char *from, const char *to, const char *xml)
{
    roost_stanza_t *st;
    int v;

    if (H.host == NULL)
        return -ROOST_EINVAL;
    st = harness_parse_client(xml);
    if (st == NULL) {
        fprintf(stderr, "harness: cannot parse %s\n", xml);
        return -ROOST_EINVAL;
    }
    v = harness_inject_stanza(from, to, st);
    roost_stanza_unref(st);
    return v;
}

int
harness_inject_stanza(const char *from, const char *to,
                      const roost_stanza_t *parsed)
{
    roost_stanza_t *st;
    roost_jid_t *jfrom = NULL, *jto = NULL;
    roost_session_t *origin;
    int v = ROOST_PASS;

    if (H.host == NULL || parsed == NULL)
        return -ROOST_EINVAL;
    /* The router stamps from and to: route a copy, the caller's stays. */
    st = roost_stanza_copy(parsed);
    jfrom = roost_jid_new(from != NULL ? from : H.host);
    if (jfrom == NULL)
        goto bad;
    /* The router stamps from (HOUSE 16). */
    roost_stanza_set_attr(st, "from", roost_jid_full(jfrom));
    origin = session_by_jid(jfrom);
    if (origin != NULL && origin->closing)
        origin = NULL;

    if (to == NULL && roost_stanza_kind(st) == ROOST_STANZA_PRESENCE &&
        origin != NULL) {
        /* Broadcast presence: the session's availability is core state. */
        const char *p =
            roost_stanza_child_text(st, ROOST_NS_CLIENT, "priority");
        long prio = p ? strtol(p, NULL, 10) : 0;

        if (roost_stanza_attr(st, "type") == NULL ||
            type_is(st, "unavailable")) {
            origin->available = roost_stanza_attr(st, "type") == NULL;
            origin->priority = prio < -128 || prio > 127 ? 0 : (int)prio;
        }
        /* A PRE_STANZA hook may substitute it for the fan-out. */
        if (hooks_fire_r(ROOST_EV_PRE_STANZA, origin, &st, jfrom, jfrom) ==
            ROOST_HANDLED)
            v = ROOST_HANDLED;
        else
            v = hooks_fire_r(ROOST_EV_PRESENCE_OUT, origin, &st, jfrom, jfrom);
        goto out;
    }
    /* RFC 6120 §10.3: no 'to' means the sender's account (bare JID). */
    jto = roost_jid_new(to != NULL                      ? to
                        : roost_jid_node(jfrom) != NULL ? roost_jid_bare(jfrom)
                                                        : H.host);
    if (jto == NULL)
        goto bad;
    roost_stanza_set_attr(st, "to", roost_jid_full(jto));

    if (origin != NULL && hooks_fire_r(ROOST_EV_PRE_STANZA, origin, &st, jfrom,
                                       jto) == ROOST_HANDLED) {
        v = ROOST_HANDLED;
        goto out;
    }
    if (strcmp(roost_jid_domain(jto), H.host) != 0) {
        /* Remote: captured as what s2s would carry. */
        outlist_add(&H.sent, st);
        v = ROOST_HANDLED;
        goto out;
    }
    v = route_local(origin, st, jfrom, jto);
out:
    roost_jid_free(jfrom);
    roost_jid_free(jto);
    roost_stanza_unref(st);
    turn_end();
    return v;
bad:
    fprintf(stderr, "harness: invalid JID in inject\n");
    roost_jid_free(jfrom);
    roost_stanza_unref(st);
    return -ROOST_EINVAL;
}

const char *const *
harness_sent(void)
{
    return outlist_list(&H.sent);
}

size_t
harness_sent_count(void)
{
    return H.sent.n;
}

roost_stanza_t *
harness_sent_stanza(size_t i)
{
    return i < H.sent.n ? H.sent.st[i] : NULL;
}

const char *const *
harness_delivered(const char *jid)
{
    roost_session_t *s = session_by_full(jid);

    return s != NULL ? outlist_list(&s->out) : empty_list;
}

size_t
harness_delivered_count(const char *jid)
{
    roost_session_t *s = session_by_full(jid);

    return s != NULL ? s->out.n : 0;
}

roost_stanza_t *
harness_delivered_stanza(const char *jid, size_t i)
{
    roost_session_t *s = session_by_full(jid);

    return s != NULL && i < s->out.n ? s->out.st[i] : NULL;
}

void
harness_clear(void)
{
    outlist_clear(&H.sent);
    for (size_t i = 0; i < H.sessions.n; i++)
        outlist_clear(&H.sessions.v[i]->out);
}

const char *
harness_error_cond(const roost_stanza_t *st)
{
    roost_stanza_t *err, *c;

    if (st == NULL)
        return NULL;
    err = roost_stanza_child(st, NULL, "error");
    if (err == NULL)
        return NULL;
    for (c = roost_stanza_first_child(err); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *ns = roost_stanza_ns(c);

        if (ns != NULL && strcmp(ns, ROOST_NS_STANZAS) == 0 &&
            strcmp(roost_stanza_name(c), "text") != 0)
            return roost_stanza_name(c);
    }
    return NULL;
}

int
harness_advance(uint64_t msec)
{
    uint64_t until = H.now + msec;
    int fired = 0;

    for (;;) {
        size_t best = H.timers.n;
        struct timer t;

        for (size_t i = 0; i < H.timers.n; i++) {
            uint64_t due = H.timers.v[i].due;

            if (due <= until &&
                (best == H.timers.n || due < H.timers.v[best].due))
                best = i;
        }
        if (best == H.timers.n)
            break;
        t = H.timers.v[best];
        memmove(&H.timers.v[best], &H.timers.v[best + 1],
                (H.timers.n - best - 1) * sizeof(t));
        H.timers.n--;
        if (t.due > H.now)
            H.now = t.due;
        t.fn(t.m, t.arg);
        fired++;
        turn_end();
    }
    H.now = until;
    return fired;
}

int
harness_timer_count(void)
{
    return (int)H.timers.n;
}

int
harness_hook_count(roost_event_t ev)
{
    int n = 0;

    for (size_t i = 0; i < H.hooks.n; i++)
        n += H.hooks.v[i].ev == ev;
    return n;
}

int
harness_feature_count(void)
{
    return (int)H.features.n;
}

int
harness_stream_feature_count(void)
{
    return (int)H.sfeatures.n;
}

int
harness_log_count(int level)
{
    return level >= 0 && level < 4 ? H.log_counts[level] : 0;
}

/* ---- the module API (include/roost/module.h) ---- */

int
roost_hook(roost_mod_t *m, roost_event_t ev, int prio, roost_handler_fn fn,
           void *arg)
{
    struct hook h = {m, ev, prio, ++H.seq, fn, arg};

    if (mod_check(m, "roost_hook") < 0)
        return -ROOST_EINVAL;
    if ((int)ev < 0 || ev >= ROOST_EV__COUNT || fn == NULL)
        return -ROOST_EINVAL;
    ARR_PUSH(H.hooks, h);
    return 0;
}

int
roost_hook_iq(roost_mod_t *m, const char *xmlns, const char *child,
              roost_handler_fn get, roost_handler_fn set, void *arg)
{
    roost_handler_fn fns[2] = {get, set};

    if (mod_check(m, "roost_hook_iq") < 0)
        return -ROOST_EINVAL;
    if (xmlns == NULL || child == NULL || (get == NULL && set == NULL))
        return -ROOST_EINVAL;
    for (size_t i = 0; i < H.iqs.n; i++)
        if (strcmp(H.iqs.v[i].xmlns, xmlns) == 0 &&
            strcmp(H.iqs.v[i].child, child) == 0 &&
            fns[H.iqs.v[i].is_set] != NULL)
            return -ROOST_EEXIST;
    for (int t = 0; t < 2; t++) {
        if (fns[t] != NULL) {
            struct iqh h = {
                m, roost_xstrdup(xmlns), roost_xstrdup(child), t, fns[t], arg};

            ARR_PUSH(H.iqs, h);
        }
    }
    return 0;
}

void
roost_add_feature(roost_mod_t *m, const char *xmlns)
{
    struct feature f;

    if (mod_check(m, "roost_add_feature") < 0 || xmlns == NULL)
        return;
    f.m = m;
    f.xmlns = roost_xstrdup(xmlns);
    ARR_PUSH(H.features, f);
}

void
roost_add_identity(roost_mod_t *m, const char *category, const char *type,
                   const char *name)
{
    struct identity id;

    if (mod_check(m, "roost_add_identity") < 0 || category == NULL ||
        type == NULL)
        return;
    id.m = m;
    id.cat = roost_xstrdup(category);
    id.type = roost_xstrdup(type);
    id.name = name ? roost_xstrdup(name) : NULL;
    ARR_PUSH(H.identities, id);
}

void
roost_add_stream_feature(roost_mod_t *m, const roost_stanza_t *el)
{
    struct sfeature f;

    if (mod_check(m, "roost_add_stream_feature") < 0 || el == NULL)
        return;
    f.m = m;
    f.el = roost_stanza_copy(el);
    ARR_PUSH(H.sfeatures, f);
}

void
roost_host_features(roost_mod_t *m, void (*fn)(void *arg, const char *xmlns),
                    void *arg)
{
    for (size_t i = 0; i < H.features.n; i++)
        fn(arg, H.features.v[i].xmlns);
}

void
roost_host_identities(roost_mod_t *m,
                      void (*fn)(void *arg, const char *cat, const char *type,
                                 const char *name),
                      void *arg)
{
    for (size_t i = 0; i < H.identities.n; i++)
        fn(arg, H.identities.v[i].cat, H.identities.v[i].type,
           H.identities.v[i].name);
}

void
roost_add_account_feature(roost_mod_t *m, const char *xmlns)
{
    struct feature f;

    if (mod_check(m, "roost_add_account_feature") < 0 || xmlns == NULL)
        return;
    for (size_t i = 0; i < H.afeatures.n; i++)
        if (H.afeatures.v[i].m == m &&
            strcmp(H.afeatures.v[i].xmlns, xmlns) == 0)
            return; /* once per module, as the core */
    f.m = m;
    f.xmlns = roost_xstrdup(xmlns);
    ARR_PUSH(H.afeatures, f);
}

void
roost_add_account_identity(roost_mod_t *m, const char *category,
                           const char *type, const char *name)
{
    struct identity id;

    if (mod_check(m, "roost_add_account_identity") < 0 || category == NULL ||
        type == NULL)
        return;
    id.m = m;
    id.cat = roost_xstrdup(category);
    id.type = roost_xstrdup(type);
    id.name = name ? roost_xstrdup(name) : NULL;
    ARR_PUSH(H.aidentities, id);
}

void
roost_host_account_features(roost_mod_t *m,
                            void (*fn)(void *arg, const char *xmlns), void *arg)
{
    for (size_t i = 0; i < H.afeatures.n; i++)
        fn(arg, H.afeatures.v[i].xmlns);
}

void
roost_host_account_identities(roost_mod_t *m,
                              void (*fn)(void *arg, const char *cat,
                                         const char *type, const char *name),
                              void *arg)
{
    for (size_t i = 0; i < H.aidentities.n; i++)
        fn(arg, H.aidentities.v[i].cat, H.aidentities.v[i].type,
           H.aidentities.v[i].name);
}

int
harness_account_feature_count(void)
{
    return (int)(H.afeatures.n + H.aidentities.n);
}

const void *
roost_mod_conf(const roost_mod_t *m)
{
    return m->conf;
}

void **
roost_mod_data(roost_mod_t *m)
{
    return &m->data;
}

const char *
roost_mod_host(const roost_mod_t *m)
{
    return H.host;
}

const char *
roost_mod_name(const roost_mod_t *m)
{
    return m->def->name;
}

int
roost_send(roost_mod_t *m, roost_stanza_t *st)
{
    /* As the core: a missing from is the host; a missing to is refused. */
    if (roost_stanza_attr(st, "from") == NULL)
        roost_stanza_set_attr(st, "from", H.host);
    if (roost_stanza_attr(st, "to") == NULL)
        return -ROOST_EINVAL;
    {
        /* As the core: on behalf of a local account of the vhost, its
         * filters (ROOST_EV_OUTBOUND) decide first. */
        roost_jid_t *from = roost_jid_new(roost_stanza_attr(st, "from"));
        roost_jid_t *to = roost_jid_new(roost_stanza_attr(st, "to"));
        roost_stanza_t *cur = roost_stanza_ref(st);
        int drop = from != NULL && to != NULL && roost_jid_node(from) != NULL &&
                   strcmp(roost_jid_domain(from), H.host) == 0 &&
                   hooks_fire_r(ROOST_EV_OUTBOUND, NULL, &cur, from, to) ==
                       ROOST_HANDLED;

        roost_jid_free(from);
        roost_jid_free(to);
        /* What is routed is the substitute, when a hook made one. */
        if (!drop)
            route_out(cur);
        roost_stanza_unref(cur);
    }
    return 0;
}

roost_verdict_t
roost_bounce(const roost_ev_t *ev, roost_stanza_err_t cond, const char *text)
{
    roost_stanza_t *err;

    if (type_is(ev->stanza, "error") ||
        roost_stanza_attr(ev->stanza, "from") == NULL)
        return ROOST_HANDLED;
    err = roost_stanza_error(ev->stanza, cond, text);
    if (roost_stanza_attr(err, "from") == NULL)
        roost_stanza_set_attr(err, "from", H.host);
    route_out(err);
    roost_stanza_unref(err);
    return ROOST_HANDLED;
}

roost_verdict_t
roost_reply(const roost_ev_t *ev, const roost_stanza_t *payload)
{
    roost_stanza_t *r = roost_stanza_reply(ev->stanza);

    if (payload != NULL)
        roost_stanza_add_copy(r, payload);
    if (roost_stanza_attr(r, "from") == NULL)
        roost_stanza_set_attr(r, "from", H.host);
    route_out(r);
    roost_stanza_unref(r);
    return ROOST_HANDLED;
}

int
roost_user_state(roost_mod_t *m, const roost_user_state_t *ops)
{
    if (mod_check(m, "roost_user_state") < 0 || ops == NULL ||
        ops->load == NULL)
        return -ROOST_EINVAL;
    if (m->ustate.load != NULL)
        return -ROOST_EEXIST;
    m->ustate = *ops;
    return 0;
}

/* The harness loads a user's state on first use (the core loads it before
 * the user's events fire); it stays until the module is unloaded. */
void **
roost_user_data(roost_mod_t *m, const char *user)
{
    struct uslot u;

    if (m == NULL || m->ustate.load == NULL || user == NULL)
        return NULL;
    for (size_t i = 0; i < H.uslots.n; i++)
        if (H.uslots.v[i].m == m && strcmp(H.uslots.v[i].user, user) == 0)
            return &H.uslots.v[i].data;
    u.m = m;
    u.user = roost_xstrdup(user);
    u.data = m->ustate.load(m, user);
    ARR_PUSH(H.uslots, u);
    return &H.uslots.v[H.uslots.n - 1].data;
}

int
roost_user_sessions(roost_mod_t *m, const char *node, roost_session_t **out,
                    int max)
{
    int n = 0;

    for (size_t i = 0; i < H.sessions.n; i++) {
        roost_session_t *s = H.sessions.v[i];

        if (s->closing || strcmp(roost_jid_node(s->jid), node) != 0)
            continue;
        if (n < max)
            out[n] = s;
        n++;
    }
    return n;
}

roost_session_t *
roost_session_find(roost_mod_t *m, const roost_jid_t *full)
{
    roost_session_t *s = session_by_jid(full);

    return s != NULL && !s->closing ? s : NULL;
}

const roost_jid_t *
roost_session_jid(const roost_session_t *s)
{
    return s->jid;
}

int
roost_session_available(const roost_session_t *s)
{
    return s->available;
}

int
roost_session_hibernating(const roost_session_t *s)
{
    return s->hibernating;
}

void
harness_session_hibernate(const char *full, int on)
{
    roost_session_t *s = harness_session(full);

    if (s != NULL)
        s->hibernating = on;
}

int
roost_session_priority(const roost_session_t *s)
{
    return s->priority;
}

void
roost_session_set_presence(roost_session_t *s, int available, int priority)
{
    s->available = available;
    s->priority = priority;
}

int
roost_session_deliver(roost_session_t *s, roost_stanza_t *st)
{
    if (s->closing)
        return -ROOST_ENOTFOUND;
    return session_deliver(s, st);
}

void
harness_deliver_hooks(int on)
{
    H.deliver_hooks = on;
}

static int
session_deliver(roost_session_t *s, roost_stanza_t *st)
{
    const char *from_s;
    roost_jid_t *from;
    roost_stanza_t *cur;
    int v;

    if (!H.deliver_hooks || s->jid == NULL) {
        outlist_add(&s->out, st);
        return 0;
    }
    from_s = roost_stanza_attr(st, "from");
    from = from_s != NULL ? roost_jid_new(from_s) : NULL;
    /* A hook may substitute what s gets (roost_event_replace): s then
     * captures the substitute, as core/conn.c sends it. */
    cur = roost_stanza_ref(st);
    v = hooks_fire_ev(ROOST_EV_DELIVER,
                      &(roost_ev_t){.from = from, .to = s->jid, .session = s},
                      &cur);
    roost_jid_free(from);
    if (v != ROOST_HANDLED)
        outlist_add(&s->out, cur);
    roost_stanza_unref(cur);
    return v == ROOST_HANDLED ? -ROOST_EDENIED : 0;
}

void
roost_session_set_roster_requested(roost_session_t *s)
{
    s->roster_requested = 1;
}

int
roost_session_roster_requested(const roost_session_t *s)
{
    return s->roster_requested;
}

void **
roost_session_slot(roost_session_t *s, const roost_mod_t *m)
{
    return &s->slots[m->index];
}

void
roost_session_close(roost_session_t *s, const char *cond)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->close_cond = cond ? roost_xstrdup(cond) : NULL;
    roost_free(H.last_close);
    H.last_close = cond ? roost_xstrdup(cond) : NULL;
    H.closed_any = 1;
}

int
roost_timer_add(roost_mod_t *m, uint64_t msec,
                void (*fn)(roost_mod_t *m, void *arg), void *arg)
{
    struct timer t;

    if (mod_check(m, "roost_timer_add") < 0 || fn == NULL)
        return -ROOST_EINVAL;
    t.m = m;
    t.id = ++H.next_timer_id;
    t.due = H.now + msec;
    t.fn = fn;
    t.arg = arg;
    ARR_PUSH(H.timers, t);
    return t.id;
}

void
roost_timer_cancel(roost_mod_t *m, int id)
{
    for (size_t i = 0; i < H.timers.n; i++)
        if (H.timers.v[i].id == id && H.timers.v[i].m == m) {
            memmove(&H.timers.v[i], &H.timers.v[i + 1],
                    (H.timers.n - i - 1) * sizeof(H.timers.v[0]));
            H.timers.n--;
            return;
        }
}

void
roost_log(const roost_mod_t *m, int level, const char *fmt, ...)
{
    char tag[256];
    va_list ap;

    if (level >= 0 && level < 4)
        H.log_counts[level]++;
    if (level > roost_log_level)
        return;
    snprintf(tag, sizeof(tag), "%s@%s", m ? m->def->name : "?",
             H.host ? H.host : "?");
    va_start(ap, fmt);
    roost_log_vwrite(level, tag, fmt, ap);
    va_end(ap);
}

const char *
roost_version(void)
{
#ifdef PACKAGE_VERSION
    return PACKAGE_VERSION;
#else
    return "0.1.0-harness";
#endif
}

const char *
roost_session_addr(const roost_session_t *s)
{
    return s->addr != NULL ? s->addr : "127.0.0.1";
}

int
roost_host_is_admin(roost_mod_t *m, const roost_jid_t *jid)
{
    if (jid == NULL)
        return 0;
    for (size_t i = 0; i < H.admins.n; i++)
        if (strcmp(H.admins.v[i], roost_jid_bare(jid)) == 0)
            return 1;
    return 0;
}

/* Accounts with a bound session: the core keeps a counter, the harness
 * counts distinct nodes (a test has few sessions). */
int
roost_host_online_count(roost_mod_t *m)
{
    int n = 0;

    for (size_t i = 0; i < H.sessions.n; i++) {
        const roost_session_t *s = H.sessions.v[i];
        size_t k;

        if (s->closing)
            continue;
        for (k = 0; k < i; k++)
            if (!H.sessions.v[k]->closing &&
                strcmp(roost_jid_node(H.sessions.v[k]->jid),
                       roost_jid_node(s->jid)) == 0)
                break;
        if (k == i)
            n++;
    }
    return n;
}

int
roost_host_online_users(roost_mod_t *m, int (*fn)(void *arg, const char *node),
                        void *arg)
{
    int n = 0;

    for (size_t i = 0; i < H.sessions.n; i++) {
        const roost_session_t *s = H.sessions.v[i];
        size_t k;

        if (s->closing)
            continue;
        for (k = 0; k < i; k++)
            if (!H.sessions.v[k]->closing &&
                strcmp(roost_jid_node(H.sessions.v[k]->jid),
                       roost_jid_node(s->jid)) == 0)
                break;
        if (k < i)
            continue;
        n++;
        if (fn(arg, roost_jid_node(s->jid)) != 0)
            break;
    }
    return n;
}

roost_store_t *
roost_store_open(roost_mod_t *m, const char *name, roost_store_shape_t shape)
{
    roost_store_t *st;

    if (mod_check(m, "roost_store_open") < 0)
        return NULL;
    storage_ensure();
    st = roost_storage_store(H.host, name, shape);
    if (st == NULL) {
        roost_log(m, ROOST_LOG_ERROR, "cannot open store %s", name);
        return NULL;
    }
    m->stores = roost_xrealloc(m->stores, (m->nstores + 1) * sizeof(st));
    m->stores[m->nstores++] = st;
    return st;
}

void
roost_store_async(roost_mod_t *m, int (*work)(void *),
                  void (*done)(void *, int), void *arg)
{
    struct job j = {m, work, done, arg};

    if (m == NULL || work == NULL) {
        harness_violation("roost_store_async without a module or work");
        return;
    }
    ARR_PUSH(H.jobs, j);
}

/* ---- before authentication (XEP-0077) ---- */

static void
preauth_free(roost_session_t *s)
{
    roost_free(s->close_cond);
    roost_free(s->addr);
    outlist_clear(&s->out);
    roost_free(s);
}

int
roost_hook_preauth_iq(roost_mod_t *m, const char *xmlns, const char *child,
                      roost_handler_fn get, roost_handler_fn set, void *arg)
{
    roost_handler_fn fns[2] = {get, set};

    if (mod_check(m, "roost_hook_preauth_iq") < 0)
        return -ROOST_EINVAL;
    if (xmlns == NULL || child == NULL || (get == NULL && set == NULL))
        return -ROOST_EINVAL;
    for (size_t i = 0; i < H.preiqs.n; i++)
        if (strcmp(H.preiqs.v[i].xmlns, xmlns) == 0 &&
            strcmp(H.preiqs.v[i].child, child) == 0)
            return -ROOST_EEXIST;
    for (int t = 0; t < 2; t++) {
        /* One entry per type, a NULL fn included: the core answers a type
         * without a handler with bad-request (core/conn.c). */
        struct iqh h = {
            m, roost_xstrdup(xmlns), roost_xstrdup(child), t, fns[t], arg};

        ARR_PUSH(H.preiqs, h);
    }
    return 0;
}

int
roost_hook_nonza(roost_mod_t *m, const char *xmlns, const char *name,
                 roost_handler_fn fn, void *arg)
{
    struct iqh h;

    if (mod_check(m, "roost_hook_nonza") < 0)
        return -ROOST_EINVAL;
    if (xmlns == NULL || name == NULL || fn == NULL)
        return -ROOST_EINVAL;
    for (size_t i = 0; i < H.nonzas.n; i++)
        if (strcmp(H.nonzas.v[i].xmlns, xmlns) == 0 &&
            strcmp(H.nonzas.v[i].child, name) == 0)
            return -ROOST_EEXIST;
    h = (struct iqh){m, roost_xstrdup(xmlns), roost_xstrdup(name), 0, fn, arg};
    ARR_PUSH(H.nonzas, h);
    return 0;
}

int
harness_nonza_inject(const char *from, const roost_stanza_t *el)
{
    roost_session_t *s = from != NULL ? session_by_full(from) : NULL;
    const char *ns = el != NULL ? roost_stanza_ns(el) : NULL;
    int v = ROOST_PASS;

    if (s == NULL || s->closing || ns == NULL)
        return -ROOST_EINVAL;
    for (size_t i = 0; i < H.nonzas.n; i++) {
        struct iqh h = H.nonzas.v[i];

        if (strcmp(h.xmlns, ns) == 0 &&
            strcmp(h.child, roost_stanza_name(el)) == 0) {
            roost_stanza_t *st = roost_stanza_copy(el);
            roost_ev_t e = {.mod = h.m,
                            .origin = s,
                            .stanza = st,
                            .from = s->jid,
                            .to = NULL};
            char *before = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);
            char *after;

            v = h.fn(&e, h.arg);
            after = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);
            if (strcmp(before, after) != 0)
                harness_violation("%s: nonza handler changed its borrowed "
                                  "element",
                                  roost_mod_name(h.m));
            if (v != ROOST_PASS && v != ROOST_HANDLED)
                harness_violation("%s: nonza handler returned %d",
                                  roost_mod_name(h.m), v);
            roost_free(before);
            roost_free(after);
            roost_stanza_unref(st);
            turn_end();
            return v == ROOST_HANDLED ? ROOST_HANDLED : ROOST_PASS;
        }
    }
    /* As core/stream.c: an element nobody handles ends the stream. */
    roost_session_close(s, "unsupported-stanza-type");
    turn_end();
    return ROOST_PASS;
}

void
roost_add_preauth_stream_feature(roost_mod_t *m, const roost_stanza_t *el)
{
    struct sfeature f;

    if (mod_check(m, "roost_add_preauth_stream_feature") < 0 || el == NULL)
        return;
    f.m = m;
    f.el = roost_stanza_copy(el);
    ARR_PUSH(H.presfeatures, f);
}

void
roost_session_hold(roost_session_t *s)
{
    s->holds++;
}

void
roost_session_release(roost_session_t *s)
{
    if (s->holds <= 0) {
        harness_violation("roost_session_release without a hold");
        return;
    }
    s->holds--;
}

roost_session_t *
harness_preauth_add(const char *addr)
{
    /* Freed by harness_reset (preauth_free). */
    roost_session_t *s = roost_xcalloc(1, sizeof(*s));

    s->addr = addr != NULL ? roost_xstrdup(addr) : NULL;
    ARR_PUSH(H.pre, s);
    return s;
}

void
harness_preauth_close(roost_session_t *s)
{
    s->closing = 1;
}

int
harness_preauth_holds(const roost_session_t *s)
{
    return s->holds;
}

int
harness_preauth_inject(roost_session_t *s, const char *xml)
{
    roost_stanza_t *st;
    int v;

    if (H.host == NULL || s == NULL || s->jid != NULL)
        return -ROOST_EINVAL;
    st = harness_parse_client(xml);
    if (st == NULL)
        return -ROOST_EINVAL;
    v = harness_preauth_inject_stanza(s, st);
    roost_stanza_unref(st);
    return v;
}

int
harness_preauth_inject_stanza(roost_session_t *s, const roost_stanza_t *parsed)
{
    roost_stanza_t *st, *payload;
    const char *type, *ns;
    roost_handler_fn fn = NULL;
    struct iqh *h = NULL;
    int handled = 0, found = 0;

    if (H.host == NULL || s == NULL || s->jid != NULL || parsed == NULL)
        return -ROOST_EINVAL;
    st = roost_stanza_copy(parsed);
    payload = roost_stanza_first_child(st);
    ns = payload != NULL ? roost_stanza_ns(payload) : NULL;
    type = roost_stanza_attr(st, "type");
    for (size_t i = 0; ns != NULL && i < H.preiqs.n; i++)
        if (strcmp(H.preiqs.v[i].xmlns, ns) == 0 &&
            strcmp(H.preiqs.v[i].child, roost_stanza_name(payload)) == 0) {
            found = 1;
            if (type != NULL &&
                strcmp(type, H.preiqs.v[i].is_set ? "set" : "get") == 0)
                h = &H.preiqs.v[i];
        }
    if (roost_stanza_kind(st) != ROOST_STANZA_IQ || !found) {
        /* As core/stream.c: anything else before authentication. */
        s->closing = 1;
        roost_free(s->close_cond);
        s->close_cond = roost_xstrdup("not-authorized");
        roost_stanza_unref(st);
        return ROOST_PASS;
    }
    if (type != NULL &&
        (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)) {
        roost_stanza_unref(st);
        return ROOST_HANDLED;
    }
    if (h != NULL)
        fn = h->fn;
    if (fn != NULL && roost_stanza_attr(st, "id") != NULL) {
        roost_jid_t *host = roost_jid_new(H.host);
        roost_ev_t e = {
            .mod = h->m, .origin = s, .stanza = st, .from = NULL, .to = host};
        char *before = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);
        char *after;
        int v;

        s->holds++;
        v = fn(&e, h->arg);
        s->holds--;
        after = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);
        if (strcmp(before, after) != 0)
            harness_violation("%s: pre-auth IQ handler changed its borrowed "
                              "stanza",
                              roost_mod_name(h->m));
        if (v != ROOST_PASS && v != ROOST_HANDLED)
            harness_violation("%s: pre-auth IQ handler returned %d",
                              roost_mod_name(h->m), v);
        handled = v == ROOST_HANDLED;
        roost_free(before);
        roost_free(after);
        roost_jid_free(host);
    }
    if (!handled && !s->closing) {
        roost_stanza_t *err = roost_stanza_error(
            st,
            fn == NULL ? ROOST_SE_BAD_REQUEST : ROOST_SE_SERVICE_UNAVAILABLE,
            NULL);

        roost_stanza_set_attr(err, "from", NULL);
        roost_stanza_set_attr(err, "to", NULL);
        outlist_add(&s->out, err);
        roost_stanza_unref(err);
    }
    roost_stanza_unref(st);
    turn_end();
    return handled ? ROOST_HANDLED : ROOST_PASS;
}

size_t
harness_preauth_delivered_count(const roost_session_t *s)
{
    return s->out.n;
}

roost_stanza_t *
harness_preauth_delivered_stanza(const roost_session_t *s, size_t i)
{
    return i < s->out.n ? s->out.st[i] : NULL;
}

int
harness_preauth_feature_count(void)
{
    return (int)H.presfeatures.n;
}

/* ---- accounts (include/roost/account.h) on the real core/auth.c ---- */

#define HARNESS_SCRAM_ITER 0 /* core/auth.c: the default count */

/* One account operation, queued like a storage job; freed by its done. */
struct acct_job {
    roost_mod_t *m;
    char *user, *password;
    int op; /* 0 create, 1 set password, 2 delete */
    roost_account_done_fn done;
    void *arg;
};

static int
acct_work(void *arg)
{
    struct acct_job *j = arg;
    int rc;

    switch (j->op) {
    case 0:
        return roost_auth_create(H.host, j->user, j->password,
                                 HARNESS_SCRAM_ITER);
    case 1:
        return roost_auth_set_password(H.host, j->user, j->password,
                                       HARNESS_SCRAM_ITER);
    default:
        rc = roost_auth_delete(H.host, j->user);
        if (roost_storage_purge_user(H.host, j->user) < 0 && rc == 0)
            rc = -ROOST_ESTORAGE;
        return rc;
    }
}

static void
acct_done(void *arg, int rc)
{
    struct acct_job *j = arg;

    if (j->done != NULL)
        j->done(j->m, j->arg, rc);
    if (j->op == 2 && (rc == 0 || rc == -ROOST_ENOTFOUND)) {
        struct ruser *r = ruser_find(j->user, 0);

        /* The roster goes with the account, then its sessions (after the
         * answer queued by done, as core/account.c does). */
        if (r != NULL) {
            while (r->nstore > 0)
                ruser_store(r, r->store[0].key, NULL);
            roost_roster_free(r->roster);
            r->roster = NULL;
        }
        for (size_t i = 0; i < H.sessions.n; i++)
            if (strcmp(roost_jid_node(H.sessions.v[i]->jid), j->user) == 0)
                roost_session_close(H.sessions.v[i], "not-authorized");
    }
    roost_free(j->user);
    roost_free(j->password);
    roost_free(j);
}

static void
acct_submit(roost_mod_t *m, int op, const char *user, const char *password,
            roost_account_done_fn done, void *arg)
{
    struct acct_job *j = roost_xcalloc(1, sizeof(*j));

    storage_ensure();
    j->m = m;
    j->op = op;
    j->user = roost_xstrdup(user);
    j->password = roost_xstrdup(password != NULL ? password : "");
    j->done = done;
    j->arg = arg;
    roost_store_async(m, acct_work, acct_done, j);
}

void
roost_account_create(roost_mod_t *m, const char *user, const char *password,
                     roost_account_done_fn done, void *arg)
{
    acct_submit(m, 0, user, password, done, arg);
}

void
roost_account_set_password(roost_mod_t *m, const char *user,
                           const char *password, roost_account_done_fn done,
                           void *arg)
{
    acct_submit(m, 1, user, password, done, arg);
}

void
roost_account_delete(roost_mod_t *m, const char *user,
                     roost_account_done_fn done, void *arg)
{
    storage_ensure();
    if (roost_auth_exists(H.host, user) == 1) {
        /* As the core: while the account's state is still loaded. */
        roost_jid_t *bare = roost_jid_from_parts(user, H.host, NULL);

        if (bare != NULL)
            hooks_fire(ROOST_EV_USER_DELETED, NULL, NULL, bare, bare);
        roost_jid_free(bare);
    }
    acct_submit(m, 2, user, NULL, done, arg);
}

/* roost_host_account_count: counted by the real core/auth.c, queued like
 * a storage job. */
struct acct_count {
    roost_mod_t *m;
    int n;
    roost_account_done_fn done;
    void *arg;
};

static int
acct_count_one(void *arg, const char *user)
{
    ((struct acct_count *)arg)->n++;
    return 0;
}

static int
acct_count_work(void *arg)
{
    struct acct_count *c = arg;
    int rc = roost_auth_users(H.host, acct_count_one, c);

    return rc < 0 ? rc : c->n;
}

static void
acct_count_done(void *arg, int rc)
{
    struct acct_count *c = arg;

    c->done(c->m, c->arg, rc);
    roost_free(c);
}

void
roost_host_account_count(roost_mod_t *m, roost_account_done_fn done, void *arg)
{
    struct acct_count *c = roost_xcalloc(1, sizeof(*c)); /* acct_count_done */

    storage_ensure();
    c->m = m;
    c->done = done;
    c->arg = arg;
    roost_store_async(m, acct_count_work, acct_count_done, c);
}

/* roost_host_account_list, likewise. */
struct acct_list {
    roost_mod_t *m;
    int max, n;
    char **users; /* max + 1, NULL-terminated */
    roost_account_list_fn done;
    void *arg;
};

static int
acct_list_one(void *arg, const char *user)
{
    struct acct_list *l = arg;

    if (l->n < l->max)
        l->users[l->n] = roost_xstrdup(user);
    l->n++;
    return 0;
}

static int
acct_list_work(void *arg)
{
    struct acct_list *l = arg;
    int rc = roost_auth_users(H.host, acct_list_one, l);

    return rc < 0 ? rc : l->n;
}

static void
acct_list_done(void *arg, int rc)
{
    struct acct_list *l = arg;

    l->done(l->m, l->arg, rc, rc < 0 ? NULL : (const char *const *)l->users);
    for (int i = 0; i < l->max && l->users[i] != NULL; i++)
        roost_free(l->users[i]);
    roost_free(l->users);
    roost_free(l);
}

void
roost_host_account_list(roost_mod_t *m, int max, roost_account_list_fn done,
                        void *arg)
{
    struct acct_list *l = roost_xcalloc(1, sizeof(*l)); /* acct_list_done */

    storage_ensure();
    l->m = m;
    l->max = max > 0 ? max : 0;
    l->users = roost_xcalloc((size_t)l->max + 1, sizeof(char *));
    l->done = done;
    l->arg = arg;
    roost_store_async(m, acct_list_work, acct_list_done, l);
}

int
harness_account_add(const char *user, const char *password)
{
    if (H.host == NULL)
        return -ROOST_EINVAL;
    storage_ensure();
    return roost_auth_create(H.host, user, password, HARNESS_SCRAM_ITER);
}

int
harness_account_exists(const char *user)
{
    if (H.host == NULL)
        return 0;
    storage_ensure();
    return roost_auth_exists(H.host, user) == 1;
}

int
harness_account_check(const char *user, const char *password)
{
    if (H.host == NULL)
        return 0;
    storage_ensure();
    return roost_auth_verify_plain(H.host, user, password) == 0;
}
