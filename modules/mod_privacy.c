/* modules/mod_privacy.c: privacy lists (XEP-0016) and simple
 * communications blocking (XEP-0191) on one rule engine.
 *
 * Storage: the account's lists live in the MAP store "privacy": key = list
 * name, value = the list as <list xmlns='jabber:iq:privacy'/> XML; key ""
 * holds the name of the default list.  They are per-user state
 * (roost_user_state), read on the storage worker before any event for
 * the account fires, so enforcement never waits on storage and works
 * while the owner is offline.  Changes are applied in memory and written
 * behind through roost_store_async (one storage thread: in order).
 *
 * XEP-0191 is mapped onto XEP-0016 as XEP-0191 §3 recommends (and as
 * ejabberd does): the blocklist is the set of items of the default list
 * with type "jid", action "deny" and no stanza-kind children.  Blocking
 * adds such items in front of the default list (creating a list named
 * "Blocked contacts" and making it the default when there is none);
 * unblocking removes them.  So a block is visible through XEP-0016 and a
 * jid/deny item added through XEP-0016 shows in the blocklist; any change
 * of that set, by either protocol, is pushed to the sessions that asked
 * for the blocklist.
 *
 * Which list applies (XEP-0016 §2.2): a session's active list, else the
 * default list.  Stanzas to a full JID: that session's.  Messages and
 * presence to the bare JID: each receiving session's own (ROOST_EV_DELIVER
 * keeps the stanza from a session whose list denies it); the sender gets
 * the error only when no session would take it; no session: the default
 * list.  IQs to the bare JID (answered by the server): the
 * highest-priority available session's.  Stanzas a client sends: its
 * session's list.
 *
 * Enforcement (ROOST_PRIO_FILTER): inbound to the user on MESSAGE_BARE/
 * FULL, PRESENCE_BARE/FULL and IQ_BARE (XEP-0016 §2.13: presence dropped
 * silently, message and iq get/set answered service-unavailable, the
 * rest dropped); outbound on PRE_STANZA (not-acceptable, delivered
 * straight to the sending session, with <blocked/> of
 * urn:xmpp:blocking:errors when a blocklist item matched).  Presence
 * notifications a local user's server sends on the user's behalf
 * (broadcasts by mod_presence, probe answers, unavailable at logout)
 * never pass PRE_STANZA: they are checked against the sender's
 * presence-out rules on ROOST_EV_OUTBOUND, before they are routed to any
 * destination (and again when they reach a recipient on this vhost). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roost/module.h>
#include <roost/roster.h>
#include <roost/store.h>

#define PRIV_NS          "jabber:iq:privacy"
#define PRIV_NS_BLOCK    "urn:xmpp:blocking"
#define PRIV_NS_BLOCKERR "urn:xmpp:blocking:errors"
#define PRIV_NS_CARBONS  "urn:xmpp:carbons:2"
#define PRIV_NS_FORWARD  "urn:xmpp:forward:0"
#define PRIV_BLOCK_LIST  "Blocked contacts" /* as ejabberd names it */

#define PRIV_STACK_SESSIONS 16

struct priv_conf {
    int64_t max_lists;
    int64_t max_items;
};

static const roost_opt_t priv_opts[] = {
    {"max_lists", ROOST_OPT_INT, offsetof(struct priv_conf, max_lists), "50", 1,
     10000},
    {"max_items", ROOST_OPT_INT, offsetof(struct priv_conf, max_items), "1000",
     1, 100000},
    {NULL, 0, 0, NULL, 0, 0}};

/* Stanza kinds an item can name; 0 in an item means all stanzas. */
enum {
    PK_MESSAGE = 1,
    PK_IQ = 2,
    PK_PIN = 4, /* inbound presence notifications */
    PK_POUT = 8 /* outbound presence notifications */
};

typedef enum { PT_ALL = 0, PT_JID, PT_GROUP, PT_SUB } priv_type_t;

typedef struct {
    priv_type_t type;
    char *value;      /* prepared JID, group name, subscription name */
    roost_jid_t *jid; /* PT_JID */
    int sub;          /* PT_SUB: roost_sub_t */
    int deny;
    uint32_t order;
    unsigned kinds;
} priv_item_t;

typedef struct priv_list {
    char *name;
    priv_item_t *items; /* sorted by order */
    int n;
    struct priv_list *next;
} priv_list_t;

/* Per-user state: made by priv_user_load (worker) or on first change,
 * freed by priv_user_free. */
typedef struct {
    priv_list_t *lists;
    char *dflt; /* default list name, or NULL */
} priv_user_t;

/* Per-session slot, freed on SESSION_CLOSED. */
typedef struct {
    char *active;       /* active list name, or NULL */
    int want_privacy;   /* used jabber:iq:privacy: gets list pushes */
    int want_blocklist; /* asked for the blocklist: gets block pushes */
} priv_sess_t;

/* Module instance state. */
typedef struct {
    roost_store_t *store;
    int bypass; /* our own presence notifications are being routed */
    int own;    /* an answer of ours goes to a session (ROOST_EV_DELIVER) */
    unsigned serial;
} priv_mod_t;

/* --- lists --- */

static void
priv_item_clear(priv_item_t *it)
{
    roost_free(it->value);
    roost_jid_free(it->jid);
}

static void
priv_list_free(priv_list_t *l)
{
    if (l == NULL)
        return;
    for (int i = 0; i < l->n; i++)
        priv_item_clear(&l->items[i]);
    roost_free(l->items);
    roost_free(l->name);
    roost_free(l);
}

static void
priv_user_free(roost_mod_t *m, void *state)
{
    priv_user_t *u = state;
    priv_list_t *l, *next;

    for (l = u->lists; l != NULL; l = next) {
        next = l->next;
        priv_list_free(l);
    }
    roost_free(u->dflt);
    roost_free(u);
}

static priv_list_t *
priv_find(const priv_user_t *u, const char *name)
{
    if (u == NULL || name == NULL)
        return NULL;
    for (priv_list_t *l = u->lists; l != NULL; l = l->next)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

static int
priv_count_lists(const priv_user_t *u)
{
    int n = 0;

    for (priv_list_t *l = u != NULL ? u->lists : NULL; l != NULL; l = l->next)
        n++;
    return n;
}

/* Replaces (or adds) l in u, taking ownership. */
static void
priv_put(priv_user_t *u, priv_list_t *l)
{
    for (priv_list_t **p = &u->lists; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->name, l->name) == 0) {
            l->next = (*p)->next;
            priv_list_free(*p);
            *p = l;
            return;
        }
    }
    l->next = u->lists;
    u->lists = l;
}

static void
priv_drop(priv_user_t *u, const char *name)
{
    for (priv_list_t **p = &u->lists; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->name, name) == 0) {
            priv_list_t *l = *p;

            *p = l->next;
            priv_list_free(l);
            return;
        }
    }
}

static int
priv_item_cmp(const void *a, const void *b)
{
    const priv_item_t *x = a, *y = b;

    return x->order < y->order ? -1 : x->order > y->order;
}

/* A blocklist item (XEP-0191 §3): jid, deny, all stanzas. */
static int
priv_is_block(const priv_item_t *it)
{
    return it->type == PT_JID && it->deny && it->kinds == 0;
}

static int
priv_parse_order(const char *s, uint32_t *out)
{
    unsigned long long v = 0;

    if (s == NULL || *s == '\0' || strlen(s) > 10)
        return -1;
    for (const char *p = s; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > 0xffffffffULL)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

typedef struct {
    const char *group;
    int found;
} priv_group_probe_t;

static int
priv_group_cb(void *arg, const roost_roster_item_t *it)
{
    priv_group_probe_t *g = arg;

    if (it->hidden || it->groups == NULL)
        return 0;
    for (int i = 0; it->groups[i] != NULL; i++)
        if (strcmp(it->groups[i], g->group) == 0)
            return g->found = 1;
    return 0;
}

/* Parses one <item/> into it.  m and user are set for a client's request
 * (groups must be in the roster), NULL when reading storage. */
static roost_stanza_err_t
priv_item_parse(roost_mod_t *m, const char *user, roost_stanza_t *el,
                priv_item_t *it)
{
    const char *type = roost_stanza_attr(el, "type");
    const char *value = roost_stanza_attr(el, "value");
    const char *action = roost_stanza_attr(el, "action");

    memset(it, 0, sizeof(*it));
    if (action != NULL && strcmp(action, "allow") == 0)
        it->deny = 0;
    else if (action != NULL && strcmp(action, "deny") == 0)
        it->deny = 1;
    else
        return ROOST_SE_BAD_REQUEST;
    if (priv_parse_order(roost_stanza_attr(el, "order"), &it->order) < 0)
        return ROOST_SE_BAD_REQUEST;
    for (roost_stanza_t *c = roost_stanza_first_child(el); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *ns = roost_stanza_ns(c), *n = roost_stanza_name(c);

        if (ns != NULL && strcmp(ns, PRIV_NS) != 0)
            return ROOST_SE_BAD_REQUEST;
        if (strcmp(n, "message") == 0)
            it->kinds |= PK_MESSAGE;
        else if (strcmp(n, "iq") == 0)
            it->kinds |= PK_IQ;
        else if (strcmp(n, "presence-in") == 0)
            it->kinds |= PK_PIN;
        else if (strcmp(n, "presence-out") == 0)
            it->kinds |= PK_POUT;
        else
            return ROOST_SE_BAD_REQUEST;
    }
    if (type == NULL) {
        it->type = PT_ALL; /* the fall-through item; a value is ignored */
        return ROOST_SE_NONE;
    }
    if (value == NULL)
        return ROOST_SE_BAD_REQUEST;
    if (strcmp(type, "jid") == 0) {
        it->type = PT_JID;
        it->jid = roost_jid_new(value);
        if (it->jid == NULL)
            return ROOST_SE_BAD_REQUEST;
        it->value = roost_xstrdup(roost_jid_full(it->jid));
    } else if (strcmp(type, "subscription") == 0) {
        it->type = PT_SUB;
        it->sub = roost_sub_parse(value);
        if (it->sub < 0)
            return ROOST_SE_BAD_REQUEST;
        it->value = roost_xstrdup(value);
    } else if (strcmp(type, "group") == 0) {
        it->type = PT_GROUP;
        if (m != NULL) {
            /* XEP-0016 §2.1: a group that is not in the roster. */
            priv_group_probe_t g = {value, 0};

            roost_roster_items(m, user, priv_group_cb, &g);
            if (!g.found)
                return ROOST_SE_ITEM_NOT_FOUND;
        }
        it->value = roost_xstrdup(value);
    } else {
        return ROOST_SE_BAD_REQUEST;
    }
    return ROOST_SE_NONE;
}

/* Parses <list name=...> with its items into a new list (*out, freed by
 * the caller with priv_list_free).  Orders must be unique (§2.1). */
static roost_stanza_err_t
priv_list_parse(roost_mod_t *m, const char *user, roost_stanza_t *el,
                int64_t max_items, priv_list_t **out)
{
    const char *name = roost_stanza_attr(el, "name");
    priv_list_t *l;
    roost_stanza_err_t e = ROOST_SE_NONE;
    int cap = 0;

    *out = NULL;
    if (name == NULL || *name == '\0')
        return ROOST_SE_BAD_REQUEST;
    l = roost_xcalloc(1, sizeof(*l)); /* freed by the caller */
    l->name = roost_xstrdup(name);
    for (roost_stanza_t *c = roost_stanza_first_child(el); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *ns = roost_stanza_ns(c);

        if (strcmp(roost_stanza_name(c), "item") != 0 ||
            (ns != NULL && strcmp(ns, PRIV_NS) != 0)) {
            e = ROOST_SE_BAD_REQUEST;
            break;
        }
        if (l->n >= max_items) {
            e = ROOST_SE_POLICY_VIOLATION;
            break;
        }
        if (l->n == cap) {
            cap = cap ? cap * 2 : 8;
            l->items =
                roost_xrealloc(l->items, (size_t)cap * sizeof(*l->items));
        }
        e = priv_item_parse(m, user, c, &l->items[l->n]);
        if (e != ROOST_SE_NONE) {
            priv_item_clear(&l->items[l->n]);
            break;
        }
        l->n++;
    }
    if (e == ROOST_SE_NONE && l->n > 1) {
        qsort(l->items, (size_t)l->n, sizeof(*l->items), priv_item_cmp);
        for (int i = 1; i < l->n; i++)
            if (l->items[i].order == l->items[i - 1].order)
                e = ROOST_SE_BAD_REQUEST;
    }
    if (e != ROOST_SE_NONE) {
        priv_list_free(l);
        return e;
    }
    *out = l;
    return ROOST_SE_NONE;
}

/* Appends <list name=.../> (with its items when full) under parent. */
static void
priv_list_xml(roost_stanza_t *parent, const priv_list_t *l, int full)
{
    static const char *const kind_names[] = {"message", "iq", "presence-in",
                                             "presence-out"};
    static const char *const type_names[] = {NULL, "jid", "group",
                                             "subscription"};
    roost_stanza_t *le = roost_stanza_add_child(parent, PRIV_NS, "list");

    roost_stanza_set_attr(le, "name", l->name);
    for (int i = 0; full && i < l->n; i++) {
        const priv_item_t *it = &l->items[i];
        roost_stanza_t *ie = roost_stanza_add_child(le, PRIV_NS, "item");
        char order[16];

        if (it->type != PT_ALL) {
            roost_stanza_set_attr(ie, "type", type_names[it->type]);
            roost_stanza_set_attr(ie, "value", it->value);
        }
        roost_stanza_set_attr(ie, "action", it->deny ? "deny" : "allow");
        snprintf(order, sizeof(order), "%u", (unsigned)it->order);
        roost_stanza_set_attr(ie, "order", order);
        for (int k = 0; k < 4; k++)
            if (it->kinds & (1u << k))
                roost_stanza_add_child(ie, PRIV_NS, kind_names[k]);
    }
}

/* --- matching --- */

/* XEP-0016 §2.1 JID matching of item value v against contact c. */
static int
priv_jid_match(const roost_jid_t *v, const roost_jid_t *c)
{
    const char *vn = roost_jid_node(v), *vr = roost_jid_resource(v);
    const char *vd = roost_jid_domain(v), *cd = roost_jid_domain(c);
    size_t vl, cl;

    if (vn != NULL && vr != NULL)
        return roost_jid_eq(v, c);
    if (vn != NULL)
        return roost_jid_bare_eq(v, c);
    if (vr != NULL)
        return roost_jid_node(c) == NULL && strcmp(vd, cd) == 0 &&
               roost_jid_resource(c) != NULL &&
               strcmp(vr, roost_jid_resource(c)) == 0;
    /* The domain itself, anything at it, and its subdomains. */
    vl = strlen(vd);
    cl = strlen(cd);
    return strcmp(vd, cd) == 0 ||
           (cl > vl && cd[cl - vl - 1] == '.' && strcmp(cd + cl - vl, vd) == 0);
}

/* The first item of l matching contact for a stanza of kind (one PK_
 * bit, or 0 for stanzas only "all" items cover), or NULL. */
static const priv_item_t *
priv_match(roost_mod_t *m, const char *user, const priv_list_t *l,
           const roost_jid_t *contact, unsigned kind)
{
    const roost_roster_item_t *ri = NULL;
    int have_ri = 0;

    for (int i = 0; l != NULL && i < l->n; i++) {
        const priv_item_t *it = &l->items[i];

        if (it->kinds != 0 && (it->kinds & kind) == 0)
            continue;
        if ((it->type == PT_SUB || it->type == PT_GROUP) && !have_ri) {
            ri = roost_roster_item(m, user, roost_jid_bare(contact));
            if (ri != NULL && ri->hidden)
                ri = NULL;
            have_ri = 1;
        }
        switch (it->type) {
        case PT_ALL: return it;
        case PT_JID:
            if (priv_jid_match(it->jid, contact))
                return it;
            break;
        case PT_SUB:
            if ((ri != NULL ? (int)ri->sub : (int)ROOST_SUB_NONE) == it->sub)
                return it;
            break;
        case PT_GROUP:
            for (int g = 0; ri != NULL && ri->groups != NULL && ri->groups[g];
                 g++)
                if (strcmp(ri->groups[g], it->value) == 0)
                    return it;
            break;
        }
    }
    return NULL;
}

/* --- state access --- */

static priv_mod_t *
priv_data(roost_mod_t *m)
{
    return *roost_mod_data(m);
}

static priv_user_t *
priv_user(roost_mod_t *m, const char *user, int create)
{
    void **slot = user != NULL ? roost_user_data(m, user) : NULL;

    if (slot == NULL)
        return NULL;
    if (*slot == NULL && create)
        *slot = roost_xcalloc(1, sizeof(priv_user_t)); /* priv_user_free */
    return *slot;
}

static priv_sess_t *
priv_sess(roost_mod_t *m, roost_session_t *s, int create)
{
    void **slot = roost_session_slot(s, m);

    if (*slot == NULL && create)
        *slot = roost_xcalloc(1, sizeof(priv_sess_t)); /* SESSION_CLOSED */
    return *slot;
}

/* The list that applies to session s of user (s may be NULL). */
static const priv_list_t *
priv_applicable(roost_mod_t *m, const priv_user_t *u, roost_session_t *s)
{
    priv_sess_t *ps = s != NULL ? priv_sess(m, s, 0) : NULL;

    if (u == NULL)
        return NULL;
    if (ps != NULL && ps->active != NULL)
        return priv_find(u, ps->active);
    return priv_find(u, u->dflt);
}

typedef struct {
    roost_session_t *stack[PRIV_STACK_SESSIONS];
    roost_session_t **ss;
    int n;
} priv_sessions_t;

static void
priv_sessions_get(roost_mod_t *m, const char *node, priv_sessions_t *l)
{
    l->ss = l->stack;
    l->n = roost_user_sessions(m, node, l->ss, PRIV_STACK_SESSIONS);
    if (l->n > PRIV_STACK_SESSIONS) {
        int want = l->n;

        l->ss = roost_xcalloc((size_t)want, sizeof(*l->ss)); /* freed below */
        l->n = roost_user_sessions(m, node, l->ss, want);
        if (l->n > want)
            l->n = want;
    }
}

static void
priv_sessions_free(priv_sessions_t *l)
{
    if (l->ss != l->stack)
        roost_free(l->ss);
}

/* The session a stanza to `to` (an account of this vhost) is judged for:
 * the full JID's session, or for the bare JID the highest-priority
 * available one; NULL: the default list. */
static roost_session_t *
priv_target_session(roost_mod_t *m, const roost_jid_t *to)
{
    priv_sessions_t l;
    roost_session_t *best = NULL;

    if (roost_jid_resource(to) != NULL)
        return roost_session_find(m, to);
    priv_sessions_get(m, roost_jid_node(to), &l);
    for (int i = 0; i < l.n; i++)
        if (roost_session_available(l.ss[i]) &&
            (best == NULL ||
             roost_session_priority(l.ss[i]) > roost_session_priority(best)))
            best = l.ss[i];
    priv_sessions_free(&l);
    return best;
}

static int
type_is(const char *type, const char *v)
{
    return type != NULL && strcmp(type, v) == 0;
}

/* The PK_ bit of st seen from the list owner (outbound or not). */
static unsigned
priv_kind(const roost_stanza_t *st, int outbound)
{
    const char *type = roost_stanza_attr(st, "type");

    switch (roost_stanza_kind(st)) {
    case ROOST_STANZA_MESSAGE: return PK_MESSAGE;
    case ROOST_STANZA_IQ: return PK_IQ;
    case ROOST_STANZA_PRESENCE:
        /* §2: notifications are available and unavailable presence only;
         * subscriptions and probes fall under "all" items alone. */
        if (type == NULL || type_is(type, "unavailable"))
            return outbound ? PK_POUT : PK_PIN;
        return 0;
    default: return 0;
    }
}

/* --- enforcement --- */

/* Whether the local user `from` (full JID, of this vhost) may send the
 * presence notification st to `to`, by its presence-out rules. */
static int
priv_pout_denied(roost_mod_t *m, const roost_jid_t *from, const roost_jid_t *to)
{
    const char *user = roost_jid_node(from);
    priv_user_t *u;
    const priv_item_t *it;

    if (priv_data(m)->bypass || user == NULL ||
        strcmp(roost_jid_domain(from), roost_mod_host(m)) != 0 ||
        roost_jid_bare_eq(from, to))
        return 0;
    u = priv_user(m, user, 0);
    if (u == NULL)
        return 0;
    it = priv_match(m, user,
                    priv_applicable(m, u,
                                    roost_jid_resource(from)
                                        ? roost_session_find(m, from)
                                        : NULL),
                    to, PK_POUT);
    return it != NULL && it->deny;
}

/* A message or presence to the bare JID (XEP-0016 §2.2: each resource
 * by its own active list, else the default list): the deny item when no
 * session that would get it accepts it (then the sender hears of it as
 * for one session), NULL when one does (ROOST_EV_DELIVER keeps it from
 * the others).  No such session: the default list. */
static const priv_item_t *
priv_bare_denied(roost_mod_t *m, const priv_user_t *u, const char *user,
                 const roost_jid_t *from, const roost_stanza_t *st)
{
    int message = roost_stanza_kind(st) == ROOST_STANZA_MESSAGE;
    unsigned kind = priv_kind(st, 0);
    const priv_item_t *it, *deny = NULL;
    priv_sessions_t l;
    int any = 0;

    priv_sessions_get(m, user, &l);
    for (int i = 0; i < l.n; i++) {
        roost_session_t *s = l.ss[i];

        /* mod_message: non-negative priority; presence: available. */
        if (!roost_session_available(s) ||
            (message && roost_session_priority(s) < 0))
            continue;
        any = 1;
        it = priv_match(m, user, priv_applicable(m, u, s), from, kind);
        if (it == NULL || !it->deny) {
            deny = NULL;
            break;
        }
        if (deny == NULL)
            deny = it;
    }
    priv_sessions_free(&l);
    if (!any)
        return priv_match(m, user, priv_applicable(m, u, NULL), from, kind);
    return deny;
}

/* The sender of the message a received carbon (XEP-0280 §7) carries, when
 * st is one from the account's own bare JID; NULL otherwise (roost_jid_free). */
static roost_jid_t *
priv_carbon_sender(const roost_ev_t *ev)
{
    const roost_stanza_t *c, *f, *msg;
    const char *from;

    if (roost_stanza_kind(ev->stanza) != ROOST_STANZA_MESSAGE ||
        roost_jid_resource(ev->from) != NULL)
        return NULL;
    c = roost_stanza_child(ev->stanza, PRIV_NS_CARBONS, "received");
    f = c != NULL ? roost_stanza_child(c, PRIV_NS_FORWARD, "forwarded") : NULL;
    msg = f != NULL ? roost_stanza_child(f, ROOST_NS_CLIENT, "message") : NULL;
    from = msg != NULL ? roost_stanza_attr(msg, "from") : NULL;
    return from != NULL ? roost_jid_new(from) : NULL;
}

/* Each session's own list, as the stanza reaches it (ROOST_EV_DELIVER):
 * what another resource's list let through for the bare JID, or what a
 * module delivers (offline messages, broadcasts), is silently kept from a
 * session whose list denies it.  A received carbon is judged as the
 * message it carries: a resource that blocks a sender does not read that
 * sender's messages through the copies of another resource's. */
static roost_verdict_t
priv_deliver(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->to);
    priv_user_t *u;
    const priv_item_t *it;
    unsigned kind;

    if (priv_data(m)->own || ev->from == NULL || user == NULL)
        return ROOST_PASS;
    if (roost_jid_bare_eq(ev->from, ev->to)) {
        roost_jid_t *sender = priv_carbon_sender(ev);

        it = NULL;
        if (sender != NULL && !roost_jid_bare_eq(sender, ev->to) &&
            (u = priv_user(m, user, 0)) != NULL)
            it = priv_match(m, user, priv_applicable(m, u, ev->session), sender,
                            priv_kind(ev->stanza, 0));
        roost_jid_free(sender);
        return it != NULL && it->deny ? ROOST_HANDLED : ROOST_PASS;
    }
    kind = priv_kind(ev->stanza, 0);
    if (kind == 0 && roost_stanza_kind(ev->stanza) == ROOST_STANZA_PRESENCE)
        return ROOST_PASS; /* subscriptions: judged on the way in */
    u = priv_user(m, user, 0);
    if (u == NULL)
        return ROOST_PASS;
    it =
        priv_match(m, user, priv_applicable(m, u, ev->session), ev->from, kind);
    return it != NULL && it->deny ? ROOST_HANDLED : ROOST_PASS;
}

/* Inbound to a local user (MESSAGE_*, PRESENCE_*, IQ_BARE). */
static roost_verdict_t
priv_inbound(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->to);
    const char *type = roost_stanza_attr(ev->stanza, "type");
    roost_stanza_kind_t kind = roost_stanza_kind(ev->stanza);
    priv_user_t *u;
    const priv_item_t *it;

    if (user == NULL || roost_jid_bare_eq(ev->from, ev->to))
        return ROOST_PASS; /* §2.1 note: never between own resources */
    /* The sender's side first, for notifications its server sends on its
     * behalf (the client's own stanzas were judged on PRE_STANZA). */
    if (kind == ROOST_STANZA_PRESENCE && priv_kind(ev->stanza, 1) == PK_POUT &&
        priv_pout_denied(m, ev->from, ev->to))
        return ROOST_HANDLED; /* polite: silently */
    u = priv_user(m, user, 0);
    if (u == NULL)
        return ROOST_PASS;
    if (roost_jid_resource(ev->to) == NULL && kind != ROOST_STANZA_IQ)
        it = priv_bare_denied(m, u, user, ev->from, ev->stanza);
    else
        it = priv_match(m, user,
                        priv_applicable(m, u, priv_target_session(m, ev->to)),
                        ev->from, priv_kind(ev->stanza, 0));
    if (it == NULL || !it->deny)
        return ROOST_PASS;
    /* XEP-0016 §2.13, XEP-0191 §3.3. */
    if (kind == ROOST_STANZA_MESSAGE) {
        if (type_is(type, "error") || type_is(type, "headline"))
            return ROOST_HANDLED;
        return roost_bounce(ev, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
    }
    if (kind == ROOST_STANZA_IQ &&
        (type_is(type, "get") || type_is(type, "set")))
        return roost_bounce(ev, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
    return ROOST_HANDLED;
}

/* Presence the server sends on a local user's behalf (ROOST_EV_OUTBOUND:
 * broadcasts, probe answers, unavailable at logout), to any destination:
 * the user's presence-out rules, politely (nothing is said). */
static roost_verdict_t
priv_on_behalf(const roost_ev_t *ev, void *arg)
{
    if (roost_stanza_kind(ev->stanza) == ROOST_STANZA_PRESENCE &&
        priv_kind(ev->stanza, 1) == PK_POUT &&
        priv_pout_denied(ev->mod, ev->from, ev->to))
        return ROOST_HANDLED;
    return ROOST_PASS;
}

/* Stanzas a local client sends (PRE_STANZA). */
static roost_verdict_t
priv_outbound(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->from);
    const char *type = roost_stanza_attr(ev->stanza, "type");
    roost_stanza_kind_t kind = roost_stanza_kind(ev->stanza);
    priv_user_t *u;
    const priv_list_t *l;
    const priv_item_t *it;
    roost_stanza_t *err, *e;

    if (ev->origin == NULL || user == NULL ||
        roost_jid_bare_eq(ev->from, ev->to))
        return ROOST_PASS;
    u = priv_user(m, user, 0);
    if (u == NULL)
        return ROOST_PASS;
    /* Outbound, only presence-out and "all" items apply: message, iq and
     * presence-in items are about what the user receives (XEP-0016 §2.1;
     * §2.13: an "all" item also stops what the user sends). */
    l = priv_applicable(m, u, ev->origin);
    it = priv_match(m, user, l, ev->to,
                    kind == ROOST_STANZA_PRESENCE ? priv_kind(ev->stanza, 1)
                                                  : 0);
    if (it == NULL || !it->deny)
        return ROOST_PASS;
    if (type_is(type, "error") ||
        (kind == ROOST_STANZA_IQ && type_is(type, "result")))
        return ROOST_HANDLED;
    /* Straight to the client: routed, it would meet the user's own
     * inbound rules for that contact. */
    err = roost_stanza_error(ev->stanza, ROOST_SE_NOT_ACCEPTABLE, NULL);
    if (priv_is_block(it) && l == priv_find(u, u->dflt) &&
        (e = roost_stanza_child(err, NULL, "error")) != NULL)
        roost_stanza_add_child(e, PRIV_NS_BLOCKERR, "blocked");
    /* It names the denied contact as its sender: not a stanza from it. */
    priv_data(m)->own = 1;
    roost_session_deliver(ev->origin, err);
    priv_data(m)->own = 0;
    roost_stanza_unref(err);
    return ROOST_HANDLED;
}

/* --- storage (write-behind) --- */

typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user, *key, *val; /* val NULL: delete */
    size_t len;
} priv_write_t;

static int
priv_write_work(void *arg)
{
    priv_write_t *w = arg;

    if (w->val == NULL)
        return roost_store_delete(w->store, w->user, w->key);
    return roost_store_set(w->store, w->user, w->key, w->val, w->len);
}

static void
priv_write_done(void *arg, int rc)
{
    priv_write_t *w = arg;

    if (rc != 0)
        roost_log(w->m, ROOST_LOG_ERROR, "storing privacy list '%s' of %s: %s",
                  w->key, w->user, roost_strerror(rc));
    roost_free(w->user);
    roost_free(w->key);
    roost_free(w->val);
    roost_free(w);
}

static void
priv_write(roost_mod_t *m, const char *user, const char *key, char *val,
           size_t len)
{
    priv_write_t *w = roost_xcalloc(1, sizeof(*w)); /* priv_write_done */

    w->m = m;
    w->store = priv_data(m)->store;
    w->user = roost_xstrdup(user);
    w->key = roost_xstrdup(key);
    w->val = val; /* taken */
    w->len = len;
    roost_store_async(m, priv_write_work, priv_write_done, w);
}

/* Writes list name of u as it is now (deleted when gone). */
static void
priv_save_list(roost_mod_t *m, const char *user, const priv_user_t *u,
               const char *name)
{
    const priv_list_t *l = priv_find(u, name);
    roost_stanza_t *q;
    size_t len = 0;
    char *val = NULL;

    if (l != NULL) {
        q = roost_stanza_new(PRIV_NS, "query");
        priv_list_xml(q, l, 1);
        val = roost_stanza_serialize(roost_stanza_first_child(q), NULL, &len);
        roost_stanza_unref(q);
    }
    priv_write(m, user, name, val, len);
}

static void
priv_save_default(roost_mod_t *m, const char *user, const priv_user_t *u)
{
    priv_write(m, user, "", u->dflt ? roost_xstrdup(u->dflt) : NULL,
               u->dflt ? strlen(u->dflt) : 0);
}

typedef struct {
    priv_user_t *u;
} priv_load_t;

static int
priv_load_cb(void *arg, const char *key, const char *val, size_t len)
{
    priv_load_t *ld = arg;
    roost_stanza_t *el;
    priv_list_t *l;

    if (*key == '\0') {
        roost_free(ld->u->dflt);
        ld->u->dflt = roost_xstrndup(val, len);
        return 0;
    }
    el = roost_stanza_parse(val, len);
    if (el != NULL &&
        priv_list_parse(NULL, NULL, el, INT64_MAX, &l) == ROOST_SE_NONE) {
        /* The stored name is the key. */
        roost_free(l->name);
        l->name = roost_xstrdup(key);
        priv_put(ld->u, l);
    }
    roost_stanza_unref(el);
    return 0;
}

/* Storage worker: the account's lists. */
static void *
priv_user_load(roost_mod_t *m, const char *user)
{
    priv_mod_t *pm = priv_data(m);
    priv_load_t ld;

    if (pm == NULL || pm->store == NULL)
        return NULL;
    ld.u = roost_xcalloc(1, sizeof(priv_user_t)); /* priv_user_free */
    if (roost_store_keys(pm->store, user, priv_load_cb, &ld) < 0 ||
        (ld.u->lists == NULL && ld.u->dflt == NULL)) {
        priv_user_free(m, ld.u);
        return NULL;
    }
    if (ld.u->dflt != NULL && priv_find(ld.u, ld.u->dflt) == NULL) {
        roost_free(ld.u->dflt);
        ld.u->dflt = NULL;
    }
    return ld.u;
}

/* --- change effects: pushes and presence (XEP-0016 §2.10, §2.11;
 * XEP-0191 §3.3, §3.4) --- */

/* What a change may affect, captured before it. */
typedef struct {
    priv_sessions_t sl;
    char **contacts; /* subscribers (from/both) */
    int nc;
    unsigned char *denied; /* sl.n x nc: presence-out denied before */
    char **blocked;        /* the blocklist before */
    int nb;
} priv_snap_t;

typedef struct {
    char **v;
    int n, cap;
} priv_strv_t;

static void
priv_strv_add(priv_strv_t *s, const char *v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = roost_xrealloc(s->v, (size_t)s->cap * sizeof(char *));
    }
    s->v[s->n++] = roost_xstrdup(v); /* priv_strv_free */
}

static void
priv_strv_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        roost_free(v[i]);
    roost_free(v);
}

static int
priv_sub_cb(void *arg, const roost_roster_item_t *it)
{
    if (!it->hidden && (it->sub == ROOST_SUB_FROM || it->sub == ROOST_SUB_BOTH))
        priv_strv_add(arg, it->jid);
    return 0;
}

static void
priv_blocked(const priv_user_t *u, priv_strv_t *out)
{
    const priv_list_t *l = priv_find(u, u != NULL ? u->dflt : NULL);

    for (int i = 0; l != NULL && i < l->n; i++)
        if (priv_is_block(&l->items[i]))
            priv_strv_add(out, l->items[i].value);
}

static int
priv_strv_has(char **v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

static unsigned char *
priv_pout_matrix(roost_mod_t *m, const char *user, const priv_user_t *u,
                 priv_snap_t *sn)
{
    unsigned char *d = roost_xcalloc((size_t)(sn->sl.n * sn->nc) + 1, 1);

    for (int i = 0; i < sn->sl.n; i++) {
        const priv_list_t *l = priv_applicable(m, u, sn->sl.ss[i]);

        for (int c = 0; l != NULL && c < sn->nc; c++) {
            roost_jid_t *j = roost_jid_new(sn->contacts[c]);
            const priv_item_t *it =
                j != NULL ? priv_match(m, user, l, j, PK_POUT) : NULL;

            d[i * sn->nc + c] = it != NULL && it->deny;
            roost_jid_free(j);
        }
    }
    return d;
}

static void
priv_snap(roost_mod_t *m, const char *user, priv_snap_t *sn)
{
    priv_user_t *u = priv_user(m, user, 0);
    priv_strv_t subs = {0}, bl = {0};

    memset(sn, 0, sizeof(*sn));
    priv_sessions_get(m, user, &sn->sl);
    roost_roster_items(m, user, priv_sub_cb, &subs);
    sn->contacts = subs.v;
    sn->nc = subs.n;
    sn->denied = priv_pout_matrix(m, user, u, sn);
    priv_blocked(u, &bl);
    sn->blocked = bl.v;
    sn->nb = bl.n;
}

static void
priv_send_presence(roost_mod_t *m, const char *type, const char *from,
                   const char *to)
{
    roost_stanza_t *p = roost_stanza_new(ROOST_NS_CLIENT, "presence");

    if (type != NULL)
        roost_stanza_set_attr(p, "type", type);
    roost_stanza_set_attr(p, "from", from);
    roost_stanza_set_attr(p, "to", to);
    roost_send(m, p);
    roost_stanza_unref(p);
}

/* An iq set push to s with payload (borrowed). */
static void
priv_push(roost_mod_t *m, roost_session_t *s, const roost_stanza_t *payload)
{
    roost_stanza_t *iq = roost_stanza_new(ROOST_NS_CLIENT, "iq");
    char id[32];

    snprintf(id, sizeof(id), "privacy-push-%u", ++priv_data(m)->serial);
    roost_stanza_set_attr(iq, "type", "set");
    roost_stanza_set_attr(iq, "id", id);
    roost_stanza_set_attr(iq, "to", roost_jid_full(roost_session_jid(s)));
    roost_stanza_add_copy(iq, payload);
    roost_session_deliver(s, iq);
    roost_stanza_unref(iq);
}

/* After a change: privacy list pushes for the changed lists (names,
 * NULL-terminated) to the sessions that use XEP-0016, blocklist pushes
 * (the request's own element when given, else the difference) to those
 * that asked for the blocklist, and presence: unavailable to subscribers
 * a resource no longer tells its presence, and the current presence (via
 * a probe on the contact's behalf, answered by mod_presence) to those it
 * tells again. */
static void
priv_after(roost_mod_t *m, const char *user, priv_snap_t *sn,
           const char *const *changed, const roost_stanza_t *block_req)
{
    priv_user_t *u = priv_user(m, user, 0);
    unsigned char *now = priv_pout_matrix(m, user, u, sn);
    priv_strv_t bl = {0};
    roost_stanza_t *lp = NULL, *bp = NULL, *ubp = NULL;
    int *probe = roost_xcalloc((size_t)sn->nc + 1, sizeof(int));

    if (changed != NULL && changed[0] != NULL) {
        lp = roost_stanza_new(PRIV_NS, "query");
        for (int i = 0; changed[i] != NULL; i++) {
            roost_stanza_t *le = roost_stanza_add_child(lp, PRIV_NS, "list");

            roost_stanza_set_attr(le, "name", changed[i]);
        }
    }
    priv_blocked(u, &bl);
    if (block_req == NULL) {
        for (int i = 0; i < bl.n; i++)
            if (!priv_strv_has(sn->blocked, sn->nb, bl.v[i])) {
                if (bp == NULL)
                    bp = roost_stanza_new(PRIV_NS_BLOCK, "block");
                roost_stanza_set_attr(
                    roost_stanza_add_child(bp, PRIV_NS_BLOCK, "item"), "jid",
                    bl.v[i]);
            }
        for (int i = 0; i < sn->nb; i++)
            if (!priv_strv_has(bl.v, bl.n, sn->blocked[i])) {
                if (ubp == NULL)
                    ubp = roost_stanza_new(PRIV_NS_BLOCK, "unblock");
                roost_stanza_set_attr(
                    roost_stanza_add_child(ubp, PRIV_NS_BLOCK, "item"), "jid",
                    sn->blocked[i]);
            }
    }
    for (int i = 0; i < sn->sl.n; i++) {
        roost_session_t *s = sn->sl.ss[i];
        priv_sess_t *ps = priv_sess(m, s, 0);

        if (ps != NULL && ps->want_privacy && lp != NULL)
            priv_push(m, s, lp);
        if (ps != NULL && ps->want_blocklist) {
            if (block_req != NULL)
                priv_push(m, s, block_req);
            if (bp != NULL)
                priv_push(m, s, bp);
            if (ubp != NULL)
                priv_push(m, s, ubp);
        }
    }
    /* Presence, for resources that have sent available presence. */
    for (int i = 0; i < sn->sl.n; i++) {
        const char *full = roost_jid_full(roost_session_jid(sn->sl.ss[i]));

        if (!roost_session_available(sn->sl.ss[i]))
            continue;
        for (int c = 0; c < sn->nc; c++) {
            int before = sn->denied[i * sn->nc + c];
            int after = now[i * sn->nc + c];

            if (!before && after) {
                priv_data(m)->bypass = 1;
                priv_send_presence(m, "unavailable", full, sn->contacts[c]);
                priv_data(m)->bypass = 0;
            } else if (before && !after) {
                probe[c] = 1;
            }
        }
    }
    for (int c = 0; c < sn->nc; c++) {
        char bare[3072];

        if (!probe[c])
            continue;
        snprintf(bare, sizeof(bare), "%s@%s", user, roost_mod_host(m));
        priv_send_presence(m, "probe", sn->contacts[c], bare);
    }
    roost_free(probe);
    roost_stanza_unref(lp);
    roost_stanza_unref(bp);
    roost_stanza_unref(ubp);
    priv_strv_free(bl.v, bl.n);
    roost_free(now);
    roost_free(sn->denied);
    priv_strv_free(sn->contacts, sn->nc);
    priv_strv_free(sn->blocked, sn->nb);
    priv_sessions_free(&sn->sl);
}

/* Whether list name applies to a bound session of user other than s. */
static int
priv_in_use_elsewhere(roost_mod_t *m, const char *user, const priv_user_t *u,
                      roost_session_t *s, const char *name)
{
    priv_sessions_t l;
    int used = 0;

    priv_sessions_get(m, user, &l);
    for (int i = 0; i < l.n && !used; i++) {
        priv_sess_t *ps;

        if (l.ss[i] == s)
            continue;
        ps = priv_sess(m, l.ss[i], 0);
        if (ps != NULL && ps->active != NULL)
            used = strcmp(ps->active, name) == 0;
        else
            used = u->dflt != NULL && strcmp(u->dflt, name) == 0;
    }
    priv_sessions_free(&l);
    return used;
}

/* --- XEP-0016 protocol --- */

static roost_verdict_t
priv_error(const roost_ev_t *ev, roost_stanza_err_t cond, const char *text)
{
    return roost_bounce(ev, cond, text);
}

/* Only from the account itself (to = its bare JID or none). */
static const char *
priv_own_user(const roost_ev_t *ev)
{
    if (ev->origin == NULL || roost_jid_node(ev->to) == NULL ||
        !roost_jid_bare_eq(ev->from, ev->to))
        return NULL;
    return roost_jid_node(ev->from);
}

static roost_verdict_t
priv_iq_get(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = priv_own_user(ev);
    roost_stanza_t *q = roost_stanza_first_child(ev->stanza), *c, *r;
    priv_sess_t *ps;
    priv_user_t *u;
    roost_verdict_t v;
    int n = 0;

    if (user == NULL)
        return ROOST_PASS; /* the core: service-unavailable */
    ps = priv_sess(m, ev->origin, 1);
    ps->want_privacy = 1;
    u = priv_user(m, user, 0);
    for (c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c))
        n++;
    r = roost_stanza_new(PRIV_NS, "query");
    if (n == 0) {
        /* §2.3: names, preceded by the active and default ones. */
        if (ps->active != NULL)
            roost_stanza_set_attr(roost_stanza_add_child(r, PRIV_NS, "active"),
                                  "name", ps->active);
        if (u != NULL && u->dflt != NULL)
            roost_stanza_set_attr(roost_stanza_add_child(r, PRIV_NS, "default"),
                                  "name", u->dflt);
        for (priv_list_t *l = u != NULL ? u->lists : NULL; l != NULL;
             l = l->next)
            priv_list_xml(r, l, 0);
    } else {
        const priv_list_t *l;

        c = roost_stanza_first_child(q);
        if (n > 1 || strcmp(roost_stanza_name(c), "list") != 0 ||
            roost_stanza_attr(c, "name") == NULL) {
            roost_stanza_unref(r);
            return priv_error(ev, ROOST_SE_BAD_REQUEST, NULL);
        }
        l = priv_find(u, roost_stanza_attr(c, "name"));
        if (l == NULL) {
            roost_stanza_unref(r);
            return priv_error(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
        }
        priv_list_xml(r, l, 1);
    }
    v = roost_reply(ev, r);
    roost_stanza_unref(r);
    return v;
}

static roost_verdict_t
priv_set_active(const roost_ev_t *ev, const char *user, roost_stanza_t *c)
{
    roost_mod_t *m = ev->mod;
    const char *name = roost_stanza_attr(c, "name");
    priv_sess_t *ps = priv_sess(m, ev->origin, 1);
    priv_snap_t sn;

    if (name != NULL && priv_find(priv_user(m, user, 0), name) == NULL)
        return priv_error(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    priv_snap(m, user, &sn);
    roost_free(ps->active);
    ps->active = name != NULL ? roost_xstrdup(name) : NULL;
    roost_reply(ev, NULL);
    priv_after(m, user, &sn, NULL, NULL);
    return ROOST_HANDLED;
}

static roost_verdict_t
priv_set_default(const roost_ev_t *ev, const char *user, roost_stanza_t *c)
{
    roost_mod_t *m = ev->mod;
    const char *name = roost_stanza_attr(c, "name");
    priv_user_t *u = priv_user(m, user, name != NULL);
    priv_snap_t sn;

    if (name != NULL && priv_find(u, name) == NULL)
        return priv_error(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    if (u == NULL || (u->dflt == NULL && name == NULL) ||
        (u->dflt != NULL && name != NULL && strcmp(u->dflt, name) == 0))
        return roost_reply(ev, NULL); /* no change */
    /* §2.6: not while the current default applies to another resource. */
    if (u->dflt != NULL &&
        priv_in_use_elsewhere(m, user, u, ev->origin, u->dflt))
        return priv_error(ev, ROOST_SE_CONFLICT, NULL);
    priv_snap(m, user, &sn);
    roost_free(u->dflt);
    u->dflt = name != NULL ? roost_xstrdup(name) : NULL;
    priv_save_default(m, user, u);
    roost_reply(ev, NULL);
    priv_after(m, user, &sn, NULL, NULL);
    return ROOST_HANDLED;
}

static roost_verdict_t
priv_set_list(const roost_ev_t *ev, const char *user, roost_stanza_t *c)
{
    roost_mod_t *m = ev->mod;
    const struct priv_conf *conf = roost_mod_conf(m);
    const char *name = roost_stanza_attr(c, "name");
    priv_user_t *u = priv_user(m, user, 1);
    priv_sess_t *ps = priv_sess(m, ev->origin, 1);
    const char *changed[2] = {name, NULL};
    roost_stanza_err_t e;
    priv_list_t *l;
    priv_snap_t sn;

    if (name == NULL || *name == '\0')
        return priv_error(ev, ROOST_SE_BAD_REQUEST, NULL);
    if (u == NULL)
        return priv_error(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    if (roost_stanza_first_child(c) == NULL) {
        /* §2.8 removal. */
        if (priv_find(u, name) == NULL)
            return priv_error(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
        if (priv_in_use_elsewhere(m, user, u, ev->origin, name))
            return priv_error(ev, ROOST_SE_CONFLICT, NULL);
        priv_snap(m, user, &sn);
        if (ps->active != NULL && strcmp(ps->active, name) == 0) {
            roost_free(ps->active);
            ps->active = NULL;
        }
        if (u->dflt != NULL && strcmp(u->dflt, name) == 0) {
            roost_free(u->dflt);
            u->dflt = NULL;
            priv_save_default(m, user, u);
        }
        priv_drop(u, name);
        priv_save_list(m, user, u, name);
        roost_reply(ev, NULL);
        priv_after(m, user, &sn, changed, NULL);
        return ROOST_HANDLED;
    }
    e = priv_list_parse(m, user, c, conf->max_items, &l);
    if (e != ROOST_SE_NONE)
        return priv_error(
            ev, e, e == ROOST_SE_POLICY_VIOLATION ? "Too many items" : NULL);
    if (priv_find(u, name) == NULL && priv_count_lists(u) >= conf->max_lists) {
        priv_list_free(l);
        return priv_error(ev, ROOST_SE_POLICY_VIOLATION, "Too many lists");
    }
    priv_snap(m, user, &sn);
    priv_put(u, l);
    priv_save_list(m, user, u, name);
    roost_reply(ev, NULL);
    priv_after(m, user, &sn, changed, NULL);
    return ROOST_HANDLED;
}

static roost_verdict_t
priv_iq_set(const roost_ev_t *ev, void *arg)
{
    const char *user = priv_own_user(ev);
    roost_stanza_t *q = roost_stanza_first_child(ev->stanza), *c;
    const char *ns, *name;

    if (user == NULL)
        return ROOST_PASS;
    priv_sess(ev->mod, ev->origin, 1)->want_privacy = 1;
    c = roost_stanza_first_child(q);
    /* §2.1: exactly one of active, default, list. */
    if (c == NULL || roost_stanza_next_sibling(c) != NULL)
        return priv_error(ev, ROOST_SE_BAD_REQUEST, NULL);
    ns = roost_stanza_ns(c);
    name = roost_stanza_name(c);
    if (ns != NULL && strcmp(ns, PRIV_NS) != 0)
        return priv_error(ev, ROOST_SE_BAD_REQUEST, NULL);
    if (strcmp(name, "active") == 0)
        return priv_set_active(ev, user, c);
    if (strcmp(name, "default") == 0)
        return priv_set_default(ev, user, c);
    if (strcmp(name, "list") == 0)
        return priv_set_list(ev, user, c);
    return priv_error(ev, ROOST_SE_BAD_REQUEST, NULL);
}

/* --- XEP-0191 protocol --- */

static roost_verdict_t
priv_blocklist_get(const roost_ev_t *ev, void *arg)
{
    const char *user = priv_own_user(ev);
    priv_strv_t bl = {0};
    roost_stanza_t *r;
    roost_verdict_t v;

    if (user == NULL)
        return ROOST_PASS;
    priv_sess(ev->mod, ev->origin, 1)->want_blocklist = 1;
    priv_blocked(priv_user(ev->mod, user, 0), &bl);
    r = roost_stanza_new(PRIV_NS_BLOCK, "blocklist");
    for (int i = 0; i < bl.n; i++)
        roost_stanza_set_attr(roost_stanza_add_child(r, PRIV_NS_BLOCK, "item"),
                              "jid", bl.v[i]);
    priv_strv_free(bl.v, bl.n);
    v = roost_reply(ev, r);
    roost_stanza_unref(r);
    return v;
}

/* The JIDs of req's items, prepared (into out); jid-malformed or
 * bad-request on a bad item. */
static roost_stanza_err_t
priv_block_items(roost_stanza_t *req, priv_strv_t *out)
{
    for (roost_stanza_t *c = roost_stanza_first_child(req); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *j = roost_stanza_attr(c, "jid");
        roost_jid_t *jid;

        if (strcmp(roost_stanza_name(c), "item") != 0 || j == NULL)
            return ROOST_SE_BAD_REQUEST;
        jid = roost_jid_new(j);
        if (jid == NULL)
            return ROOST_SE_JID_MALFORMED;
        if (!priv_strv_has(out->v, out->n, roost_jid_full(jid)))
            priv_strv_add(out, roost_jid_full(jid));
        roost_jid_free(jid);
    }
    return ROOST_SE_NONE;
}

static roost_verdict_t
priv_block_set(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const struct priv_conf *conf = roost_mod_conf(m);
    const char *user = priv_own_user(ev);
    roost_stanza_t *req = roost_stanza_first_child(ev->stanza), *echo;
    int block = strcmp(roost_stanza_name(req), "block") == 0;
    priv_strv_t jids = {0};
    roost_stanza_err_t e;
    priv_user_t *u;
    priv_list_t *l;
    priv_snap_t sn;
    const char *changed[2] = {NULL, NULL};
    char *dname;

    if (user == NULL)
        return ROOST_PASS;
    e = priv_block_items(req, &jids);
    if (e == ROOST_SE_NONE && block && jids.n == 0)
        e = ROOST_SE_BAD_REQUEST; /* §3.3: at least one item */
    if (e != ROOST_SE_NONE) {
        priv_strv_free(jids.v, jids.n);
        return priv_error(ev, e, NULL);
    }
    u = priv_user(m, user, 1);
    if (u == NULL) {
        priv_strv_free(jids.v, jids.n);
        return priv_error(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }
    l = priv_find(u, u->dflt);
    if (block && l == NULL && priv_find(u, PRIV_BLOCK_LIST) == NULL &&
        priv_count_lists(u) >= conf->max_lists) {
        priv_strv_free(jids.v, jids.n);
        return priv_error(ev, ROOST_SE_POLICY_VIOLATION, "Too many lists");
    }
    if (block && l != NULL && l->n + jids.n > conf->max_items) {
        priv_strv_free(jids.v, jids.n);
        return priv_error(ev, ROOST_SE_POLICY_VIOLATION, "Too many items");
    }
    priv_snap(m, user, &sn);
    if (block) {
        int add = 0, k = 0;
        uint32_t min = 0;
        priv_item_t *items;

        if (l == NULL) {
            /* No default list: one for blocking becomes the default.  An
             * existing list of that name is reused. */
            l = priv_find(u, PRIV_BLOCK_LIST);
            if (l == NULL) {
                l = roost_xcalloc(1, sizeof(*l)); /* owned by u */
                l->name = roost_xstrdup(PRIV_BLOCK_LIST);
                priv_put(u, l);
            }
            roost_free(u->dflt);
            u->dflt = roost_xstrdup(PRIV_BLOCK_LIST);
            priv_save_default(m, user, u);
        }
        for (int i = 0; i < jids.n; i++) {
            int have = 0;

            for (int j = 0; j < l->n && !have; j++)
                have = priv_is_block(&l->items[j]) &&
                       strcmp(l->items[j].value, jids.v[i]) == 0;
            if (have) {
                roost_free(jids.v[i]);
                jids.v[i] = NULL;
            } else {
                add++;
            }
        }
        /* §3: blocked items come first; below the current first order
         * if there is room, else the list is renumbered. */
        items = roost_xcalloc((size_t)(l->n + add) + 1, sizeof(*items));
        for (int i = 0; i < jids.n; i++) {
            if (jids.v[i] == NULL)
                continue;
            items[k].type = PT_JID;
            items[k].deny = 1;
            items[k].jid = roost_jid_new(jids.v[i]);
            items[k].value = roost_xstrdup(jids.v[i]);
            k++;
        }
        if (l->n > 0) {
            memcpy(items + k, l->items, (size_t)l->n * sizeof(*items));
            min = l->items[0].order;
        }
        for (int i = 0; i < add + l->n; i++) {
            if (l->n > 0 && min >= (uint32_t)add)
                items[i].order = i < add ? min - (uint32_t)add + (uint32_t)i
                                         : items[i].order;
            else
                items[i].order = (uint32_t)i;
        }
        roost_free(l->items);
        l->items = items;
        l->n += add;
    } else if (l != NULL) {
        int k = 0;

        for (int i = 0; i < l->n; i++) {
            if (priv_is_block(&l->items[i]) &&
                (jids.n == 0 ||
                 priv_strv_has(jids.v, jids.n, l->items[i].value)))
                priv_item_clear(&l->items[i]);
            else
                l->items[k++] = l->items[i];
        }
        l->n = k;
    }
    if (l != NULL) {
        priv_save_list(m, user, u, l->name);
        changed[0] = dname = roost_xstrdup(l->name);
    } else {
        dname = NULL;
    }
    roost_reply(ev, NULL);
    /* The push echoes the request, JIDs prepared (XEP-0191 §3.3, §3.4;
     * an empty <unblock/> is "unblock all"). */
    echo = roost_stanza_new(PRIV_NS_BLOCK, roost_stanza_name(req));
    for (roost_stanza_t *c = roost_stanza_first_child(req); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        roost_jid_t *j = roost_jid_new(roost_stanza_attr(c, "jid"));

        roost_stanza_set_attr(
            roost_stanza_add_child(echo, PRIV_NS_BLOCK, "item"), "jid",
            roost_jid_full(j));
        roost_jid_free(j);
    }
    priv_after(m, user, &sn, changed, echo);
    roost_stanza_unref(echo);
    roost_free(dname);
    priv_strv_free(jids.v, jids.n);
    return ROOST_HANDLED;
}

/* --- lifecycle --- */

static roost_verdict_t
priv_session_closed(const roost_ev_t *ev, void *arg)
{
    void **slot = roost_session_slot(ev->origin, ev->mod);
    priv_sess_t *ps = *slot;

    if (ps != NULL) {
        roost_free(ps->active);
        roost_free(ps);
        *slot = NULL;
    }
    return ROOST_PASS;
}

static const roost_user_state_t priv_user_ops = {
    .load = priv_user_load,
    .free = priv_user_free,
};

static int
priv_load(roost_mod_t *m)
{
    static const roost_event_t inbound[] = {
        ROOST_EV_MESSAGE_BARE,  ROOST_EV_MESSAGE_FULL, ROOST_EV_PRESENCE_BARE,
        ROOST_EV_PRESENCE_FULL, ROOST_EV_IQ_BARE,      ROOST_EV_IQ_FULL};
    priv_mod_t *pm = roost_xcalloc(1, sizeof(*pm)); /* priv_unload */
    int rc;

    *roost_mod_data(m) = pm;
    pm->store = roost_store_open(m, "privacy", ROOST_STORE_MAP);
    if (pm->store == NULL)
        return -ROOST_ESTORAGE;
    rc = roost_user_state(m, &priv_user_ops);
    for (size_t i = 0; rc == 0 && i < sizeof(inbound) / sizeof(inbound[0]); i++)
        rc = roost_hook(m, inbound[i], ROOST_PRIO_FILTER, priv_inbound, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRE_STANZA, ROOST_PRIO_FILTER,
                        priv_outbound, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_OUTBOUND, ROOST_PRIO_FILTER, priv_on_behalf,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_DELIVER, ROOST_PRIO_FILTER, priv_deliver,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_CLOSED, ROOST_PRIO_DEFAULT,
                        priv_session_closed, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, PRIV_NS, "query", priv_iq_get, priv_iq_set, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, PRIV_NS_BLOCK, "blocklist", priv_blocklist_get,
                           NULL, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, PRIV_NS_BLOCK, "block", NULL, priv_block_set,
                           NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, PRIV_NS_BLOCK, "unblock", NULL, priv_block_set,
                           NULL);
    if (rc != 0)
        return rc;
    roost_add_feature(m, PRIV_NS);
    roost_add_feature(m, PRIV_NS_BLOCK);
    return 0;
}

static void
priv_unload(roost_mod_t *m)
{
    roost_free(*roost_mod_data(m));
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(privacy) = {
    .abi = ROOST_ABI,
    .name = "privacy",
    .opts = priv_opts,
    .conf_size = sizeof(struct priv_conf),
    .load = priv_load,
    .unload = priv_unload,
};
