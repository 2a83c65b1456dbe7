/* modules/mod_push.c: Push Notifications (XEP-0357, urn:xmpp:push:0),
 * the user's server side (the XEP's logical "App Server").
 *
 * Registrations: a client sends <enable jid= node=/> (optionally with a
 * publish-options data form, FORM_TYPE
 * http://jabber.org/protocol/pubsub#publish-options) or <disable jid=
 * [node=]/> to its own bare JID.  Registrations are per account, keyed by
 * (service JID, node); enabling the same pair again replaces its publish
 * options (XEP-0357 §5).  <disable/> with a node removes that pair, without
 * one every pair of that service JID (§6).  They are kept in the account's
 * MAP store "push" (key "<length of jid>:<jid><node>", value the
 * <enable/> element as stored, with a 'resource' attribute of ours
 * naming the client's resource) and in memory as per-user state
 * (roost_user_state), so the message hook never waits on storage; the
 * result is sent once the change is committed.  The account disco#info
 * advertises urn:xmpp:push:0 (§4.1).
 *
 * Publishing (§7): each registration belongs to the client that enabled
 * it, known by the resource of the session that sent <enable/> (stored
 * with the registration, so it survives a restart; enabling the same
 * service and node from another resource moves it).  A message that has
 * a body or an encrypted payload (OMEMO, XEP-0373, XEP-0027) triggers a
 * pubsub publish from the user's bare JID to the registrations whose
 * client is not connected, as Prosody's mod_cloud_notify does:
 *   - no session with that resource (the app was closed or killed): a
 *     message for the account that is delivered or stored at all
 *     (ROOST_EV_MESSAGE_BARE/FULL at ROOST_PRIO_COPY, after the filters:
 *     a blocked message never notifies), also when another client of the
 *     account is online and gets it: the sleeping one learns there is
 *     something to fetch (MAM);
 *   - that session hibernates (XEP-0198: connection gone, session kept):
 *     a message, or a carbon copy of one, that reaches its queue
 *     (ROOST_EV_DELIVER at ROOST_PRIO_FALLBACK, after privacy lists and
 *     CSI had their say);
 *   - that session is connected: never.
 * A registration stored before resources were recorded has no client:
 * notified until a client enables it again (clients do at each login).
 * The publish carries a <notification/> with a urn:xmpp:push:summary form
 * (message-count, last-message-sender, and last-message-body only with
 * the include_body option, off by default for privacy: §10 says servers
 * SHOULD let users limit what is sent) and the stored publish options.
 *
 * message-count is per registration: the messages notified since its
 * client was last seen connected (reset when a session with its resource
 * binds or is found live).  It lives in memory only: the summary form is
 * optional (§7: "MAY be included"), the XEP asks for no exact count, and
 * Prosody's mod_cloud_notify always sends 1; after a restart the count
 * starts again at 1, which still tells the app there is something new.
 * A message that XEP-0198 routes again after a hibernating session
 * expired (it carries a <delay/> from this host and the same from and id)
 * is not notified a second time.
 *
 * Rate limit (option min_interval, seconds, 0 = none): after a publish to
 * a registration, further notifications for it within the interval are
 * held and coalesced into one publish (with the current count and the last
 * sender) when the interval ends.
 *
 * Errors (§7.1): a publish answered with an error of type "cancel"
 * (RFC 6120 §8.3.2: do not retry; service-unavailable, item-not-found,
 * remote-server-not-found...) disables that registration at once; "wait"
 * errors never do; other types (modify, auth) disable it after max_errors
 * in a row (a result resets the count).  COMPAT: Prosody's
 * mod_cloud_notify instead counts every non-"wait" error and disables at
 * max_push_errors (16); we treat cancel as final, as §7.1 suggests for any
 * error.
 *
 * Not for: being a push service (the pubsub/push identity belongs to the
 * service), remote disabling by affiliation change (§8, MAY), pending
 * subscription counts, or notifications for anything but messages. */
#include <stdio.h>
#include <string.h>

#include <roost/module.h>
#include <roost/store.h>

#define PUSH_NS         "urn:xmpp:push:0"
#define PUSH_NS_SUMMARY "urn:xmpp:push:summary"
#define PUSH_NS_PUBSUB  "http://jabber.org/protocol/pubsub"
#define PUSH_NS_PUBOPTS "http://jabber.org/protocol/pubsub#publish-options"
#define PUSH_NS_XDATA   "jabber:x:data"
#define PUSH_NS_DELAY   "urn:xmpp:delay"
#define PUSH_NS_CARBONS "urn:xmpp:carbons:2"
#define PUSH_NS_FORWARD "urn:xmpp:forward:0"

/* Publishes waiting for their answer, for all users of the vhost; the
 * oldest is forgotten when more are outstanding (its answer is then
 * ignored). */
#define PUSH_PENDING 256
/* Messages remembered per user to recognise a re-routed one. */
#define PUSH_RECENT 16

struct push_conf {
    int include_body;
    int64_t min_interval; /* ms */
    int64_t max_registrations;
    int64_t max_errors;
};

static const roost_opt_t push_opts[] = {
    {"include_body", ROOST_OPT_BOOL, offsetof(struct push_conf, include_body),
     "false", 0, 0},
    {"min_interval", ROOST_OPT_MSEC, offsetof(struct push_conf, min_interval),
     "0", 0, 86400000},
    {"max_registrations", ROOST_OPT_INT,
     offsetof(struct push_conf, max_registrations), "20", 1, 1000},
    {"max_errors", ROOST_OPT_INT, offsetof(struct push_conf, max_errors), "16",
     1, 1000},
    {NULL, 0, 0, NULL, 0, 0}};

/* One registration (per-user state); freed by push_user_free. */
typedef struct push_reg {
    char *jid;            /* prepared service JID */
    char *node;           /* pubsub node */
    char *resource;       /* of the session that enabled it, or NULL */
    roost_stanza_t *form; /* publish-options <x/>, or NULL */
    int pick;             /* push_notify: notify this one */
    struct push_reg *next;
} push_reg_t;

/* Per-user state (roost_user_state). */
typedef struct {
    push_reg_t *regs;
} push_user_t;

struct push_rt;

/* Runtime of one registration that was published to: rate limit and
 * error count.  Self-contained (the user's state may be dropped while a
 * held notification waits). */
typedef struct push_rtreg {
    struct push_rt *rt;
    char *jid, *node;
    char *resource;       /* the owning client's (a copy), or NULL */
    roost_stanza_t *form; /* a copy, or NULL */
    int count;            /* messages notified since its client was
                           * last seen connected */
    int timer;            /* cooling down until it fires; 0 when not */
    int held;             /* a notification waits for the timer */
    int errors;           /* non-cancel, non-wait errors in a row */
    struct push_rtreg *next;
} push_rtreg_t;

/* Runtime of one account with push activity (module data); freed when a
 * session binds and none of its registrations has a count, a timer or
 * errors left, or on unload. */
typedef struct push_rt {
    char *user;
    char *sender;              /* last notified sender */
    char *body;                /* its body (include_body), or NULL */
    char *recent[PUSH_RECENT]; /* "from\nid" of notified messages */
    int recent_next;
    push_rtreg_t *regs;
    struct push_rt *next;
} push_rt_t;

typedef struct {
    char id[32];
    char *user, *jid, *node;
} push_pending_t;

/* Module instance state (roost_mod_data), freed in push_unload. */
typedef struct {
    roost_store_t *store;
    push_rt_t *rts;
    push_pending_t pending[PUSH_PENDING];
    int pnext;
    uint64_t serial;
} push_t;

static push_t *
push_data(roost_mod_t *m)
{
    return *roost_mod_data(m);
}

static const struct push_conf *
push_conf(const roost_mod_t *m)
{
    return roost_mod_conf(m);
}

static int
push_streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static char *
push_key(const char *jid, const char *node)
{
    size_t n = strlen(jid) + strlen(node) + 24;
    char *k = roost_xmalloc(n); /* freed by the caller */

    snprintf(k, n, "%zu:%s%s", strlen(jid), jid, node);
    return k;
}

/* --- registrations --- */

static void
push_reg_free(push_reg_t *r)
{
    roost_free(r->jid);
    roost_free(r->node);
    roost_free(r->resource);
    roost_stanza_unref(r->form);
    roost_free(r);
}

/* A registration from a stored or received <enable/>; NULL when it is
 * not valid (no usable jid or node). */
static push_reg_t *
push_reg_from(const roost_stanza_t *en)
{
    const char *jid = roost_stanza_attr(en, "jid");
    const char *node = roost_stanza_attr(en, "node");
    roost_stanza_t *x;
    roost_jid_t *j;
    push_reg_t *r;

    if (jid == NULL || node == NULL || node[0] == '\0' ||
        (j = roost_jid_new(jid)) == NULL)
        return NULL;
    r = roost_xcalloc(1, sizeof(*r));
    r->jid = roost_xstrdup(roost_jid_full(j));
    r->node = roost_xstrdup(node);
    roost_jid_free(j);
    /* Ours, in the stored copy only (push_enable builds its own). */
    if (roost_stanza_attr(en, "resource") != NULL)
        r->resource = roost_xstrdup(roost_stanza_attr(en, "resource"));
    x = roost_stanza_child(en, PUSH_NS_XDATA, "x");
    if (x != NULL)
        r->form = roost_stanza_copy(x);
    return r;
}

static roost_stanza_t *
push_reg_xml(const push_reg_t *r)
{
    roost_stanza_t *en = roost_stanza_new(PUSH_NS, "enable");

    roost_stanza_set_attr(en, "jid", r->jid);
    roost_stanza_set_attr(en, "node", r->node);
    if (r->resource != NULL)
        roost_stanza_set_attr(en, "resource", r->resource);
    if (r->form != NULL)
        roost_stanza_add_copy(en, r->form);
    return en;
}

static int
push_load_cb(void *arg, const char *key, const char *val, size_t len)
{
    push_user_t *u = arg;
    roost_stanza_t *en = roost_stanza_parse(val, len);
    push_reg_t *r = en != NULL ? push_reg_from(en) : NULL;

    roost_stanza_unref(en);
    if (r != NULL) {
        r->next = u->regs;
        u->regs = r;
    }
    return 0;
}

/* Storage worker: the account's registrations. */
static void *
push_user_load(roost_mod_t *m, const char *user)
{
    push_user_t *u = roost_xcalloc(1, sizeof(*u)); /* push_user_free */
    push_t *d = push_data(m);

    if (d->store != NULL)
        roost_store_keys(d->store, user, push_load_cb, u);
    return u;
}

static void
push_user_free(roost_mod_t *m, void *state)
{
    push_user_t *u = state;

    while (u != NULL && u->regs != NULL) {
        push_reg_t *r = u->regs;

        u->regs = r->next;
        push_reg_free(r);
    }
    roost_free(u);
}

static push_user_t *
push_user(roost_mod_t *m, const char *user)
{
    void **slot = user != NULL ? roost_user_data(m, user) : NULL;

    return slot != NULL ? *slot : NULL;
}

/* --- runtime --- */

static push_rt_t *
push_rt_find(roost_mod_t *m, const char *user, int create)
{
    push_t *d = push_data(m);
    push_rt_t *rt;

    for (rt = d->rts; rt != NULL; rt = rt->next)
        if (strcmp(rt->user, user) == 0)
            return rt;
    if (!create)
        return NULL;
    rt = roost_xcalloc(1, sizeof(*rt)); /* push_rt_free */
    rt->user = roost_xstrdup(user);
    rt->next = d->rts;
    d->rts = rt;
    return rt;
}

static void
push_rtreg_free(roost_mod_t *m, push_rtreg_t *g)
{
    if (g->timer > 0)
        roost_timer_cancel(m, g->timer);
    roost_free(g->jid);
    roost_free(g->node);
    roost_free(g->resource);
    roost_stanza_unref(g->form);
    roost_free(g);
}

static void
push_rt_free(roost_mod_t *m, push_rt_t *rt)
{
    while (rt->regs != NULL) {
        push_rtreg_t *g = rt->regs;

        rt->regs = g->next;
        push_rtreg_free(m, g);
    }
    for (int i = 0; i < PUSH_RECENT; i++)
        roost_free(rt->recent[i]);
    roost_free(rt->sender);
    roost_free(rt->body);
    roost_free(rt->user);
    roost_free(rt);
}

/* The client of resource (of user) is connected: the counts of its
 * registrations restart and nothing held for them is sent; runtime that
 * has nothing left to remember goes. */
static void
push_rt_connected(roost_mod_t *m, const char *user, const char *resource)
{
    push_t *d = push_data(m);
    push_rt_t **pp, *rt;
    push_rtreg_t **gp, *g;

    for (pp = &d->rts; (rt = *pp) != NULL; pp = &rt->next)
        if (strcmp(rt->user, user) == 0)
            break;
    if (rt == NULL)
        return;
    for (gp = &rt->regs; (g = *gp) != NULL;) {
        if (push_streq(g->resource, resource)) {
            g->count = 0;
            g->held = 0;
        }
        if (g->count == 0 && g->timer == 0 && g->errors == 0) {
            *gp = g->next;
            push_rtreg_free(m, g);
        } else {
            gp = &g->next;
        }
    }
    if (rt->regs == NULL) {
        *pp = rt->next;
        push_rt_free(m, rt);
    }
}

enum { PUSH_OWNER_NONE, PUSH_OWNER_LIVE, PUSH_OWNER_HIBERNATING };

/* The state of the client that enabled a registration: the bound session
 * of user with that resource (a resumed XEP-0198 session keeps its
 * resource; a client that logs in again uses the same one). */
static int
push_owner(roost_mod_t *m, const char *user, const char *resource)
{
    char full[3 * ROOST_JID_PART_MAX + 4];
    roost_session_t *s;
    roost_jid_t *j;

    if (resource == NULL)
        return PUSH_OWNER_NONE;
    snprintf(full, sizeof(full), "%s@%s/%s", user, roost_mod_host(m), resource);
    if ((j = roost_jid_new(full)) == NULL)
        return PUSH_OWNER_NONE;
    s = roost_session_find(m, j);
    roost_jid_free(j);
    if (s == NULL)
        return PUSH_OWNER_NONE;
    return roost_session_hibernating(s) ? PUSH_OWNER_HIBERNATING
                                        : PUSH_OWNER_LIVE;
}

static push_rtreg_t *
push_rtreg(push_rt_t *rt, const char *jid, const char *node)
{
    for (push_rtreg_t *g = rt->regs; g != NULL; g = g->next)
        if (strcmp(g->jid, jid) == 0 &&
            (node == NULL || !strcmp(g->node, node)))
            return g;
    return NULL;
}

/* Forgets the runtime of jid's registration(s) of user (node NULL: all). */
static void
push_rtreg_drop(roost_mod_t *m, const char *user, const char *jid,
                const char *node)
{
    push_rt_t *rt = push_rt_find(m, user, 0);
    push_rtreg_t **pp, *g;

    if (rt == NULL)
        return;
    for (pp = &rt->regs; (g = *pp) != NULL;) {
        if (strcmp(g->jid, jid) == 0 &&
            (node == NULL || !strcmp(g->node, node))) {
            *pp = g->next;
            push_rtreg_free(m, g);
        } else {
            pp = &g->next;
        }
    }
}

/* --- publishing --- */

static void
push_field(roost_stanza_t *x, const char *var, const char *value)
{
    roost_stanza_t *f = roost_stanza_add_child(x, PUSH_NS_XDATA, "field");
    roost_stanza_t *v = roost_stanza_add_child(f, PUSH_NS_XDATA, "value");

    roost_stanza_set_attr(f, "var", var);
    roost_stanza_add_text(v, value, strlen(value));
}

static void push_cool(roost_mod_t *m, void *arg);

/* The publish for registration g of rt's account (a new reference), with
 * the bookkeeping done: its answer is expected and the rate-limit timer
 * runs.  Sending is the caller's job, after every use of rt and g: routing
 * is synchronous, and an error bounced at once (a component that is not
 * connected) disables the registration, freeing g, before roost_send
 * returns. */
static roost_stanza_t *
push_publish(roost_mod_t *m, push_rt_t *rt, push_rtreg_t *g)
{
    push_t *d = push_data(m);
    const struct push_conf *c = push_conf(m);
    roost_stanza_t *iq, *ps, *pub, *item, *n, *x;
    push_pending_t *p;
    char bare[3 * ROOST_JID_PART_MAX + 4], num[24];

    snprintf(bare, sizeof(bare), "%s@%s", rt->user, roost_mod_host(m));
    p = &d->pending[d->pnext];
    d->pnext = (d->pnext + 1) % PUSH_PENDING;
    roost_free(p->user);
    roost_free(p->jid);
    roost_free(p->node);
    snprintf(p->id, sizeof(p->id), "push-%llu",
             (unsigned long long)++d->serial);
    p->user = roost_xstrdup(rt->user);
    p->jid = roost_xstrdup(g->jid);
    p->node = roost_xstrdup(g->node);

    iq = roost_stanza_new(ROOST_NS_CLIENT, "iq");
    roost_stanza_set_attr(iq, "type", "set");
    roost_stanza_set_attr(iq, "from", bare);
    roost_stanza_set_attr(iq, "to", g->jid);
    roost_stanza_set_attr(iq, "id", p->id);
    ps = roost_stanza_add_child(iq, PUSH_NS_PUBSUB, "pubsub");
    pub = roost_stanza_add_child(ps, PUSH_NS_PUBSUB, "publish");
    roost_stanza_set_attr(pub, "node", g->node);
    item = roost_stanza_add_child(pub, PUSH_NS_PUBSUB, "item");
    n = roost_stanza_add_child(item, PUSH_NS, "notification");
    x = roost_stanza_add_child(n, PUSH_NS_XDATA, "x");
    roost_stanza_set_attr(x, "type", "submit");
    push_field(x, "FORM_TYPE", PUSH_NS_SUMMARY);
    snprintf(num, sizeof(num), "%d", g->count);
    push_field(x, "message-count", num);
    if (rt->sender != NULL)
        push_field(x, "last-message-sender", rt->sender);
    if (c->include_body && rt->body != NULL)
        push_field(x, "last-message-body", rt->body);
    if (g->form != NULL) {
        roost_stanza_t *po =
            roost_stanza_add_child(ps, PUSH_NS_PUBSUB, "publish-options");
        roost_stanza_t *f = roost_stanza_add_copy(po, g->form);

        /* XEP-0060 §7.1.5: publish options are a submitted form. */
        roost_stanza_set_attr(f, "type", "submit");
    }
    roost_log(m, ROOST_LOG_DEBUG, "push notification for %s to %s (%s)",
              rt->user, g->jid, p->id);
    g->held = 0;
    if (c->min_interval > 0)
        g->timer = roost_timer_add(m, (uint64_t)c->min_interval, push_cool, g);
    return iq;
}

static void
push_send(roost_mod_t *m, roost_stanza_t *iq)
{
    roost_send(m, iq);
    roost_stanza_unref(iq);
}

/* The rate-limit interval of a registration ended. */
static void
push_cool(roost_mod_t *m, void *arg)
{
    push_rtreg_t *g = arg;

    g->timer = 0;
    if (g->held && push_owner(m, g->rt->user, g->resource) == PUSH_OWNER_LIVE) {
        /* its client came back meanwhile (a resumption) */
        g->held = 0;
        g->count = 0;
    }
    if (g->held)
        push_send(m, push_publish(m, g->rt, g));
}

/* Notifies the registrations of u marked pick, each counting the message
 * (its sender and body are already in rt).  The publishes are built first
 * and sent afterwards: sending may disable registrations (see
 * push_publish). */
static void
push_notify(roost_mod_t *m, push_user_t *u, push_rt_t *rt)
{
    roost_stanza_t **out;
    size_t n = 0, k = 0;

    for (push_reg_t *r = u->regs; r != NULL; r = r->next)
        n++;
    out = roost_xcalloc(n + 1, sizeof(*out)); /* freed below */
    for (push_reg_t *r = u->regs; r != NULL; r = r->next) {
        push_rtreg_t *g;

        if (!r->pick)
            continue;
        r->pick = 0;
        if ((g = push_rtreg(rt, r->jid, r->node)) == NULL) {
            g = roost_xcalloc(1, sizeof(*g)); /* push_rtreg_free */
            g->rt = rt;
            g->jid = roost_xstrdup(r->jid);
            g->node = roost_xstrdup(r->node);
            g->next = rt->regs;
            rt->regs = g;
        }
        roost_free(g->resource);
        g->resource = r->resource ? roost_xstrdup(r->resource) : NULL;
        roost_stanza_unref(g->form);
        g->form = r->form != NULL ? roost_stanza_copy(r->form) : NULL;
        g->count++;
        if (g->timer > 0)
            g->held = 1;
        else
            out[k++] = push_publish(m, rt, g);
    }
    for (size_t i = 0; i < k; i++)
        push_send(m, out[i]);
    roost_free(out);
}

/* --- which messages --- */

/* Has a body or an encrypted payload; sets *encrypted for the latter. */
static int
push_has_content(const roost_stanza_t *st, int *encrypted)
{
    static const char *const enc[][2] = {
        {"eu.siacs.conversations.axolotl", "encrypted"}, /* OMEMO 0.3 */
        {"urn:xmpp:omemo:2", "encrypted"},               /* OMEMO */
        {"urn:xmpp:openpgp:0", "openpgp"},               /* XEP-0373 */
        {"jabber:x:encrypted", "x"},                     /* XEP-0027 */
        {"urn:xmpp:eme:0", "encryption"}};               /* XEP-0380 */

    *encrypted = 0;
    for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++)
        if (roost_stanza_child(st, enc[i][0], enc[i][1]) != NULL) {
            *encrypted = 1;
            return 1;
        }
    return roost_stanza_child(st, ROOST_NS_CLIENT, "body") != NULL;
}

/* Whether mod_message delivers or stores the message at all: to the full
 * JID of an existing session always; to the bare JID (or a full JID
 * without session, RFC 6121 §8.5.3.2.1) only normal and chat (or no or an
 * unknown type, §5.2.2), RFC 6121 §8.5.2. */
static int
push_routed(const roost_ev_t *ev, int full_event)
{
    const char *type = roost_stanza_attr(ev->stanza, "type");

    if (full_event && roost_session_find(ev->mod, ev->to) != NULL)
        return 1;
    return !push_streq(type, "groupchat") && !push_streq(type, "headline") &&
           !push_streq(type, "error");
}

/* "from\nid" of the message, or NULL without an id. */
static char *
push_msg_key(const roost_ev_t *ev)
{
    const char *id = roost_stanza_attr(ev->stanza, "id");
    const char *from = roost_jid_full(ev->from);
    size_t n;
    char *k;

    if (id == NULL)
        return NULL;
    n = strlen(from) + strlen(id) + 2;
    k = roost_xmalloc(n); /* freed by the caller or kept in rt->recent */
    snprintf(k, n, "%s\n%s", from, id);
    return k;
}

/* A copy XEP-0198 routes again after its hibernating session expired:
 * delayed by this host and notified before. */
static int
push_seen(const roost_ev_t *ev, push_rt_t *rt, const char *key)
{
    roost_stanza_t *delay =
        roost_stanza_child(ev->stanza, PUSH_NS_DELAY, "delay");

    if (rt == NULL || key == NULL || delay == NULL ||
        !push_streq(roost_stanza_attr(delay, "from"), roost_mod_host(ev->mod)))
        return 0;
    for (int i = 0; i < PUSH_RECENT; i++)
        if (push_streq(rt->recent[i], key))
            return 1;
    return 0;
}

/* Counts the message in rt (created) for the registrations marked pick and
 * notifies them; nothing when it is a re-routed copy notified before. */
static void
push_count_and_notify(const roost_ev_t *ev, push_user_t *u, const char *user,
                      roost_stanza_t *msg, int encrypted)
{
    roost_mod_t *m = ev->mod;
    char *key = push_msg_key(ev);
    push_rt_t *rt = push_rt_find(m, user, 0);

    if (push_seen(ev, rt, key)) {
        roost_free(key);
        for (push_reg_t *r = u->regs; r != NULL; r = r->next)
            r->pick = 0;
        return;
    }
    rt = push_rt_find(m, user, 1);
    roost_free(rt->sender);
    rt->sender = roost_xstrdup(roost_jid_full(ev->from));
    roost_free(rt->body);
    rt->body = NULL;
    if (!encrypted && push_conf(m)->include_body)
        rt->body = roost_xstrdup(
            roost_stanza_child_text(msg, ROOST_NS_CLIENT, "body"));
    if (key != NULL) {
        roost_free(rt->recent[rt->recent_next]);
        rt->recent[rt->recent_next] = key;
        rt->recent_next = (rt->recent_next + 1) % PUSH_RECENT;
    }
    push_notify(m, u, rt);
}

/* Whether a message is worth a notification (a body or an encrypted
 * payload; not an error, headline or groupchat). */
static int
push_eligible(const roost_stanza_t *st, int *encrypted)
{
    const char *type = roost_stanza_attr(st, "type");

    return !push_streq(type, "error") && !push_streq(type, "headline") &&
           !push_streq(type, "groupchat") && push_has_content(st, encrypted);
}

/* A message for the account: the registrations whose client has no
 * session at all (it is not connected and cannot resume) are notified,
 * whether another client of the account gets the message or it goes to
 * offline storage.  A client with a live session is not; one whose
 * session hibernates is notified when the message reaches its queue
 * (push_deliver).  Carbon copies are not messages for the account. */
static roost_verdict_t
push_message(const roost_ev_t *ev, int full_event)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->to);
    push_user_t *u;
    int encrypted, n = 0;

    if (user == NULL || !push_eligible(ev->stanza, &encrypted) ||
        roost_stanza_child(ev->stanza, PUSH_NS_CARBONS, "sent") != NULL ||
        roost_stanza_child(ev->stanza, PUSH_NS_CARBONS, "received") != NULL ||
        !push_routed(ev, full_event))
        return ROOST_PASS;
    u = push_user(m, user);
    if (u == NULL || u->regs == NULL)
        return ROOST_PASS;
    for (push_reg_t *r = u->regs; r != NULL; r = r->next) {
        r->pick = push_owner(m, user, r->resource) == PUSH_OWNER_NONE;
        n += r->pick;
    }
    if (n > 0)
        push_count_and_notify(ev, u, user, ev->stanza, encrypted);
    return ROOST_PASS;
}

/* A stanza reaching a hibernating session (XEP-0198: its connection is
 * gone; the stanza waits in its queue): a message worth it, or a carbon
 * copy of one (XEP-0280), notifies the registrations that session's
 * client enabled, as Prosody's mod_cloud_notify does for what lands in a
 * hibernating session's queue. */
static roost_verdict_t
push_deliver(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const roost_jid_t *to = roost_session_jid(ev->session);
    const char *user = roost_jid_node(to), *res = roost_jid_resource(to);
    roost_stanza_t *msg = ev->stanza;
    roost_stanza_t *cc;
    push_user_t *u;
    int encrypted, n = 0;

    if (ev->stanza == NULL ||
        roost_stanza_kind(ev->stanza) != ROOST_STANZA_MESSAGE ||
        !roost_session_hibernating(ev->session) || user == NULL ||
        (u = push_user(m, user)) == NULL || u->regs == NULL)
        return ROOST_PASS;
    if ((cc = roost_stanza_child(ev->stanza, PUSH_NS_CARBONS, "received")) !=
            NULL ||
        (cc = roost_stanza_child(ev->stanza, PUSH_NS_CARBONS, "sent")) !=
            NULL) {
        roost_stanza_t *fwd =
            roost_stanza_child(cc, PUSH_NS_FORWARD, "forwarded");

        msg = fwd ? roost_stanza_child(fwd, ROOST_NS_CLIENT, "message") : NULL;
        if (msg == NULL)
            return ROOST_PASS;
    }
    if (!push_eligible(msg, &encrypted))
        return ROOST_PASS;
    for (push_reg_t *r = u->regs; r != NULL; r = r->next) {
        r->pick = push_streq(r->resource, res);
        n += r->pick;
    }
    if (n > 0)
        push_count_and_notify(ev, u, user, msg, encrypted);
    return ROOST_PASS;
}

static roost_verdict_t
push_message_bare(const roost_ev_t *ev, void *arg)
{
    return push_message(ev, 0);
}

static roost_verdict_t
push_message_full(const roost_ev_t *ev, void *arg)
{
    return push_message(ev, 1);
}

/* The client of that resource is connected (again). */
static roost_verdict_t
push_bound(const roost_ev_t *ev, void *arg)
{
    const roost_jid_t *j = roost_session_jid(ev->origin);

    if (roost_jid_node(j) != NULL && roost_jid_resource(j) != NULL)
        push_rt_connected(ev->mod, roost_jid_node(j), roost_jid_resource(j));
    return ROOST_PASS;
}

/* --- enable / disable --- */

/* One committed change; the reply (or error) is sent from push_job_done. */
typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user;
    char *key;          /* set: this key; delete: NULL = see keys */
    char *xml;          /* set: the value; NULL: delete */
    char **del;         /* keys to delete, NULL-terminated, or NULL */
    roost_stanza_t *iq; /* the request to answer, or NULL */
} push_job_t;

static int
push_job_work(void *arg)
{
    push_job_t *j = arg;
    int rc = 0;

    if (j->store == NULL)
        return -ROOST_ESTORAGE;
    if (j->xml != NULL)
        rc = roost_store_set(j->store, j->user, j->key, j->xml, strlen(j->xml));
    for (size_t i = 0; rc == 0 && j->del != NULL && j->del[i] != NULL; i++)
        rc = roost_store_delete(j->store, j->user, j->del[i]);
    return rc;
}

static void
push_job_done(void *arg, int rc)
{
    push_job_t *j = arg;

    if (rc < 0)
        roost_log(j->m, ROOST_LOG_ERROR,
                  "storing push registrations of %s failed: %s", j->user,
                  roost_strerror(rc));
    if (j->iq != NULL) {
        roost_stanza_t *r =
            rc < 0 ? roost_stanza_error(j->iq, ROOST_SE_INTERNAL_SERVER_ERROR,
                                        NULL)
                   : roost_stanza_reply(j->iq);

        roost_send(j->m, r);
        roost_stanza_unref(r);
        roost_stanza_unref(j->iq);
    }
    for (size_t i = 0; j->del != NULL && j->del[i] != NULL; i++)
        roost_free(j->del[i]);
    roost_free(j->del);
    roost_free(j->user);
    roost_free(j->key);
    roost_free(j->xml);
    roost_free(j);
}

static void
push_job_submit(roost_mod_t *m, push_job_t *j)
{
    j->m = m;
    j->store = push_data(m)->store;
    roost_store_async(m, push_job_work, push_job_done, j);
}

/* The request is a user's own (to their bare JID); requests to the host
 * are not ours (the core answers service-unavailable). */
static int
push_own(const roost_ev_t *ev)
{
    return roost_jid_node(ev->to) != NULL &&
           roost_jid_resource(ev->to) == NULL &&
           roost_jid_bare_eq(ev->from, ev->to);
}

static roost_verdict_t
push_enable(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->to);
    roost_stanza_t *en = roost_stanza_child(ev->stanza, PUSH_NS, "enable");
    const char *jid_s = roost_stanza_attr(en, "jid");
    const char *node = roost_stanza_attr(en, "node");
    roost_stanza_t *form = NULL;
    roost_jid_t *jid;
    push_user_t *u;
    push_reg_t *r, *old;
    push_job_t *j;
    int n = 0;

    if (!push_own(ev))
        return ROOST_PASS;
    if (jid_s == NULL || (jid = roost_jid_new(jid_s)) == NULL)
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, "Missing or invalid jid");
    r = roost_xcalloc(1, sizeof(*r)); /* kept in u->regs or freed below */
    r->jid = roost_xstrdup(roost_jid_full(jid));
    roost_jid_free(jid);
    /* The schema requires node, and a publish needs one. */
    if (node == NULL || node[0] == '\0') {
        push_reg_free(r);
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, "Missing node");
    }
    r->node = roost_xstrdup(node);
    /* The registration belongs to the client that enables it (enabling
     * the same service and node from another resource moves it). */
    if (roost_jid_resource(ev->from) != NULL)
        r->resource = roost_xstrdup(roost_jid_resource(ev->from));
    /* §5: publish options come as a form of this FORM_TYPE; anything else
     * in a data form is not something we could pass on. */
    for (roost_stanza_t *x = roost_stanza_first_child(en); x != NULL;
         x = roost_stanza_next_sibling(x)) {
        const char *ftype = NULL;

        if (!push_streq(roost_stanza_ns(x), PUSH_NS_XDATA) ||
            !push_streq(roost_stanza_name(x), "x"))
            continue;
        for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
             f = roost_stanza_next_sibling(f))
            if (push_streq(roost_stanza_name(f), "field") &&
                push_streq(roost_stanza_attr(f, "var"), "FORM_TYPE"))
                ftype = roost_stanza_child_text(f, PUSH_NS_XDATA, "value");
        if (!push_streq(ftype, PUSH_NS_PUBOPTS) || form != NULL) {
            push_reg_free(r);
            return roost_bounce(ev, ROOST_SE_BAD_REQUEST,
                                "Invalid publish options");
        }
        form = x;
    }
    u = push_user(m, user);
    if (u == NULL) {
        push_reg_free(r);
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }
    r->form = form != NULL ? roost_stanza_copy(form) : NULL;
    for (push_reg_t **pp = &u->regs; (old = *pp) != NULL; pp = &old->next) {
        if (strcmp(old->jid, r->jid) == 0 && strcmp(old->node, r->node) == 0) {
            /* §5: the last request's publish options win. */
            r->next = old->next;
            *pp = r;
            push_reg_free(old);
            break;
        }
        n++;
    }
    if (old == NULL) {
        if (n >= push_conf(m)->max_registrations) {
            push_reg_free(r);
            return roost_bounce(ev, ROOST_SE_NOT_ALLOWED,
                                "Too many push registrations");
        }
        r->next = u->regs;
        u->regs = r;
    }
    /* A registration enabled again starts with a clean error count and
     * the new options. */
    push_rtreg_drop(m, user, r->jid, r->node);
    j = roost_xcalloc(1, sizeof(*j)); /* push_job_done */
    j->user = roost_xstrdup(user);
    j->key = push_key(r->jid, r->node);
    {
        roost_stanza_t *x = push_reg_xml(r);

        j->xml = roost_stanza_serialize(x, NULL, NULL);
        roost_stanza_unref(x);
    }
    j->iq = roost_stanza_copy(ev->stanza);
    push_job_submit(m, j);
    return ROOST_HANDLED;
}

/* Removes user's registrations of jid (node NULL: all of them) from
 * memory and the runtime; the keys to delete from the store are returned
 * (NULL-terminated, possibly empty; the job frees them). */
static char **
push_remove(roost_mod_t *m, const char *user, push_user_t *u, const char *jid,
            const char *node)
{
    char **del = roost_xcalloc(1, sizeof(*del));
    size_t n = 0;
    push_reg_t **pp, *r;

    for (pp = &u->regs; (r = *pp) != NULL;) {
        if (strcmp(r->jid, jid) == 0 &&
            (node == NULL || strcmp(r->node, node) == 0)) {
            del = roost_xrealloc(del, (n + 2) * sizeof(*del));
            del[n++] = push_key(r->jid, r->node);
            del[n] = NULL;
            *pp = r->next;
            push_reg_free(r);
        } else {
            pp = &r->next;
        }
    }
    push_rtreg_drop(m, user, jid, node);
    return del;
}

static roost_verdict_t
push_disable(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->to);
    roost_stanza_t *dis = roost_stanza_child(ev->stanza, PUSH_NS, "disable");
    const char *jid_s = roost_stanza_attr(dis, "jid");
    roost_jid_t *jid;
    push_user_t *u;
    push_job_t *j;

    if (!push_own(ev))
        return ROOST_PASS;
    if (jid_s == NULL || (jid = roost_jid_new(jid_s)) == NULL)
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, "Missing or invalid jid");
    u = push_user(m, user);
    if (u == NULL) {
        roost_jid_free(jid);
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }
    j = roost_xcalloc(1, sizeof(*j)); /* push_job_done */
    j->user = roost_xstrdup(user);
    j->del = push_remove(m, user, u, roost_jid_full(jid),
                         roost_stanza_attr(dis, "node"));
    j->iq = roost_stanza_copy(ev->stanza);
    roost_jid_free(jid);
    push_job_submit(m, j);
    return ROOST_HANDLED;
}

/* --- answers to publishes --- */

static roost_verdict_t
push_iq_answer(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    push_t *d = push_data(m);
    const char *type = roost_stanza_attr(ev->stanza, "type");
    const char *id = roost_stanza_attr(ev->stanza, "id");
    const char *user = roost_jid_node(ev->to);
    push_pending_t *p = NULL;
    push_rt_t *rt;
    push_rtreg_t *g;
    roost_stanza_t *err;
    const char *etype;
    int disable = 0;

    if (id == NULL || user == NULL ||
        (!push_streq(type, "result") && !push_streq(type, "error")))
        return ROOST_PASS;
    for (int i = 0; i < PUSH_PENDING; i++)
        if (d->pending[i].user != NULL && strcmp(d->pending[i].id, id) == 0 &&
            strcmp(d->pending[i].user, user) == 0 &&
            strcmp(d->pending[i].jid, roost_jid_full(ev->from)) == 0) {
            p = &d->pending[i];
            break;
        }
    if (p == NULL)
        return ROOST_PASS;
    rt = push_rt_find(m, user, 0);
    g = rt != NULL ? push_rtreg(rt, p->jid, p->node) : NULL;
    if (push_streq(type, "result")) {
        if (g != NULL)
            g->errors = 0;
    } else {
        err = roost_stanza_child(ev->stanza, NULL, "error");
        etype = err != NULL ? roost_stanza_attr(err, "type") : NULL;
        if (push_streq(etype, "cancel"))
            disable = 1;
        else if (!push_streq(etype, "wait") && g != NULL &&
                 ++g->errors >= push_conf(m)->max_errors)
            disable = 1;
        if (disable) {
            push_user_t *u = push_user(m, user);

            roost_log(m, ROOST_LOG_INFO,
                      "push service %s (node %s) of %s answered with a%s "
                      "error: registration disabled",
                      p->jid, p->node, user,
                      push_streq(etype, "cancel") ? " cancel" : "n");
            if (u != NULL) {
                push_job_t *j = roost_xcalloc(1, sizeof(*j));

                j->user = roost_xstrdup(user);
                j->del = push_remove(m, user, u, p->jid, p->node);
                push_job_submit(m, j);
            } else {
                push_rtreg_drop(m, user, p->jid, p->node);
            }
        }
    }
    roost_free(p->user);
    roost_free(p->jid);
    roost_free(p->node);
    memset(p, 0, sizeof(*p));
    return ROOST_HANDLED;
}

/* --- module --- */

static const roost_user_state_t push_user_ops = {
    .load = push_user_load,
    .free = push_user_free,
};

static int
push_load(roost_mod_t *m)
{
    push_t *d = roost_xcalloc(1, sizeof(*d)); /* push_unload */
    int rc;

    *roost_mod_data(m) = d;
    d->store = roost_store_open(m, "push", ROOST_STORE_MAP);
    if (d->store == NULL)
        return -ROOST_ESTORAGE;
    roost_add_account_feature(m, PUSH_NS);
    rc = roost_user_state(m, &push_user_ops);
    if (rc == 0)
        rc = roost_hook_iq(m, PUSH_NS, "enable", NULL, push_enable, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, PUSH_NS, "disable", NULL, push_disable, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_COPY,
                        push_message_bare, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_COPY,
                        push_message_full, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_IQ_BARE, ROOST_PRIO_DEFAULT, push_iq_answer,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_BOUND, ROOST_PRIO_DEFAULT,
                        push_bound, NULL);
    /* Last: after the filters refused (privacy) or held (CSI) it. */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_DELIVER, ROOST_PRIO_FALLBACK, push_deliver,
                        NULL);
    return rc;
}

static void
push_unload(roost_mod_t *m)
{
    push_t *d = push_data(m);

    if (d == NULL)
        return;
    /* The core removed the timers already. */
    while (d->rts != NULL) {
        push_rt_t *rt = d->rts;

        d->rts = rt->next;
        for (push_rtreg_t *g = rt->regs; g != NULL; g = g->next)
            g->timer = 0;
        push_rt_free(m, rt);
    }
    for (int i = 0; i < PUSH_PENDING; i++) {
        roost_free(d->pending[i].user);
        roost_free(d->pending[i].jid);
        roost_free(d->pending[i].node);
    }
    roost_free(d);
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(push) = {
    .abi = ROOST_ABI,
    .name = "push",
    .opts = push_opts,
    .conf_size = sizeof(struct push_conf),
    .load = push_load,
    .unload = push_unload,
};
