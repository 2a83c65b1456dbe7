/* modules/mod_pep.c: Personal Eventing via Pubsub (XEP-0163) on the subset
 * of Publish-Subscribe (XEP-0060) it needs, Private XML Storage (XEP-0049)
 * and the Bookmarks Conversion between them (XEP-0411).
 *
 * Every account is a pubsub service at its bare JID.  The owner (the
 * account itself, any resource) publishes (XEP-0060 §7.1; the node is
 * created on first publish, "auto-create", with the publish-options of
 * §7.1.5 as its configuration, or checked against them: a mismatch is
 * <conflict/> + <precondition-not-met/>), retracts (§7.2), creates (§8.1),
 * configures (§8.2: pubsub#max_items, pubsub#access_model presence, open,
 * roster with pubsub#roster_groups_allowed, whitelist, pubsub#persist_items,
 * pubsub#send_last_published_item), deletes (§8.4) and purges (§8.5)
 * nodes, lists its affiliations (§5.7) and a node's subscribers (§8.8.1),
 * and manages both (§8.8.2 subscribed/none, §8.9: member, publisher,
 * publish-only, outcast; the account stays the only owner).  Items are
 * retrieved (§6.5: all, max_items, by id) by the owner and by whoever the
 * node's access model or affiliation lets in (§4.5, §4.1: members and
 * publishers always, outcasts never).  Publishers (and publish-only) may
 * publish to an existing node, publishers retract.  Anyone the access model
 * lets in may subscribe explicitly (§6.1; XEP-0163 §3 requires it) with a
 * JID of their own, unsubscribe (§6.2) and list their subscriptions
 * (§5.6).
 *
 * Notifications (§7.1.2.1, XEP-0163 §4) are <message type='headline'/>
 * from the owner's bare JID to each full JID the service knows available
 * with a non-negative priority (XEP-0163 §4.3.2) whose entity capabilities
 * (XEP-0115) list NODE+notify (filtered notifications, XEP-0060 §9.2) and
 * that the access model allows: the owner's own resources (from their
 * broadcast presence) and contacts whose presence reaches the owner's bare
 * JID (auto-subscribe: their presence broadcasts and probe answers), and
 * to explicit subscribers not served that way: once to a subscribed full
 * JID, at most once to a subscribed bare JID (XEP-0163 §4.3.2).  The
 * features of a caps 'ver' are learnt once with a disco#info query to one
 * full JID that advertises it (node#ver), verified as XEP-0115 §5.4 says
 * (sha-1 only) and cached by ver for every entity; a response that does
 * not verify, or a hash we do not support, or legacy caps without a hash,
 * is used for that full JID alone and never cached.  When a resource's
 * interests first include a node (its initial presence to the bare JID,
 * the owner's own presence), it gets the node's last item with a XEP-0203
 * delay (XEP-0163 §4.3.4), unless the node says
 * send_last_published_item=never (as XEP-0402 bookmarks do).
 *
 * Storage: a user's nodes and items are read on the storage worker when
 * the account's state is loaded (roost_user_state) and kept in memory
 * while it is; changes are written behind through roost_store_async (one
 * worker: in order) and the IQ result is sent once the write committed.
 * MAP "pep_nodes": node -> its configuration, explicit subscriptions and
 * affiliations; MAP "pep_items": a 16-digit hex sequence number -> <item/>
 * (node, id, time, payload).  Items of a node with persist_items=0 stay in
 * memory only.  Limits (options):
 * max_items (per node), max_nodes (per user), max_payload (per item),
 * max_user_bytes (all payloads of a user).
 *
 * XEP-0049 private storage: jabber:iq:private get/set by the user on their
 * own account, one stored element per (name, namespace) in MAP "private";
 * read and written through the storage worker, except XEP-0048 bookmarks,
 * which are the XEP-0402 node's (XEP-0411, its section below).  XEP-0223
 * (PEP nodes with access_model=whitelist and persist_items=1) works
 * through the generic PEP code, and so do XEP-0402 bookmarks and OMEMO
 * (XEP-0384).
 *
 * XEP-0398: a metadata item the account publishes to
 * urn:xmpp:avatar:metadata (with its data in urn:xmpp:avatar:data) is
 * handed to mod_vcard for the vCard's PHOTO (pep_avatar_to_vcard); when
 * the metadata goes (its newest item retracted, the node purged or
 * deleted: pep_avatar_removed) the vCard follows what is left, or loses
 * its PHOTO; the other direction is mod_vcard's, through ordinary
 * publishes.
 *
 * Not here (see the gaps in the top-level report): subscription options
 * (§6.3) and subids, the authorize access model and pending subscriptions,
 * notifying entities of subscription or affiliation changes (§8.8.4,
 * §8.9.4), collections, XEP-0033 replyto, notification of configuration
 * changes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <roost/module.h>
#include <roost/roster.h>
#include <roost/store.h>
#include <roost/util.h>

#define PEP_NS          "http://jabber.org/protocol/pubsub"
#define PEP_NS_OWNER    "http://jabber.org/protocol/pubsub#owner"
#define PEP_NS_EVENT    "http://jabber.org/protocol/pubsub#event"
#define PEP_NS_ERRORS   "http://jabber.org/protocol/pubsub#errors"
#define PEP_NS_CAPS     "http://jabber.org/protocol/caps"
#define PEP_NS_DATA     "jabber:x:data"
#define PEP_NS_DELAY    "urn:xmpp:delay"
#define PEP_NS_PRIVATE  "jabber:iq:private"
#define PEP_NS_STORE    "urn:roost:pep"
#define PEP_NS_BM       "storage:bookmarks"    /* XEP-0048 */
#define PEP_NS_BM2      "urn:xmpp:bookmarks:1" /* XEP-0402 */
#define PEP_NS_BMCONV   "urn:xmpp:bookmarks-conversion:0"
#define PEP_BM_KEY      "{" PEP_NS_BM "}storage"   /* its private XML key */
#define PEP_NS_AV_DATA  "urn:xmpp:avatar:data"     /* XEP-0084 */
#define PEP_NS_AV_META  "urn:xmpp:avatar:metadata" /* XEP-0084 */
#define PEP_NS_VCPHOTO  "urn:roost:vcard-photo"    /* mod_vcard */
#define PEP_FORM_CONFIG PEP_NS "#node_config"
#define PEP_FORM_PUBOPT PEP_NS "#publish-options"
#define PEP_NODE_MAX    1023 /* bytes of a node name */
#define PEP_ID_MAX      1023 /* bytes of an item id */
#define PEP_PENDING_MAX 256  /* disco#info queries in flight */

enum {
    PEP_ACCESS_PRESENCE,
    PEP_ACCESS_OPEN,
    PEP_ACCESS_ROSTER,
    PEP_ACCESS_WHITELIST
};
static const char *const pep_access_names[] = {"presence", "open", "roster",
                                               "whitelist", NULL};
enum { PEP_SLPI_NEVER, PEP_SLPI_ON_SUB, PEP_SLPI_ON_SUB_AND_PRESENCE };
/* XEP-0060 §4.1 affiliations; the account owner is the node's only owner
 * and is not stored. */
enum {
    PEP_AFF_NONE,
    PEP_AFF_MEMBER,
    PEP_AFF_PUBLISHER,
    PEP_AFF_PUBLISH_ONLY,
    PEP_AFF_OUTCAST,
    PEP_AFF_OWNER
};
static const char *const pep_aff_names[] = {
    "none", "member", "publisher", "publish-only", "outcast", "owner", NULL};
static const char *const pep_slpi_names[] = {"never", "on_sub",
                                             "on_sub_and_presence", NULL};

struct pep_conf {
    int64_t max_items;      /* upper bound of pubsub#max_items ("max") */
    int64_t default_items;  /* pubsub#max_items of a new node */
    int64_t max_nodes;      /* nodes per user */
    int64_t max_payload;    /* serialised payload bytes per item */
    int64_t max_user_bytes; /* payload bytes per user, all nodes */
    int64_t caps_cache;     /* cached caps vers */
    int64_t max_private;    /* bytes of one private XML element */
};

static const roost_opt_t pep_opts[] = {
    {"max_items", ROOST_OPT_INT, offsetof(struct pep_conf, max_items), "256", 1,
     100000},
    {"default_items", ROOST_OPT_INT, offsetof(struct pep_conf, default_items),
     "1", 1, 100000},
    {"max_nodes", ROOST_OPT_INT, offsetof(struct pep_conf, max_nodes), "256", 1,
     100000},
    {"max_payload", ROOST_OPT_SIZE, offsetof(struct pep_conf, max_payload),
     "262144", 64, 16 * 1024 * 1024},
    {"max_user_bytes", ROOST_OPT_SIZE,
     offsetof(struct pep_conf, max_user_bytes), "4194304", 1024,
     INT64_C(1) << 32},
    {"caps_cache", ROOST_OPT_INT, offsetof(struct pep_conf, caps_cache), "1000",
     1, 1000000},
    {"max_private", ROOST_OPT_SIZE, offsetof(struct pep_conf, max_private),
     "65536", 64, 16 * 1024 * 1024},
    {NULL, 0, 0, NULL, 0, 0}};

/* A NULL-terminated list of strings, every string and the array from
 * roost_xmalloc (strv_free). */
typedef char **strv_t;

typedef struct {
    char *id;
    roost_stanza_t *payload; /* the single payload element, a root */
    size_t size;             /* its serialised bytes (quota) */
    uint64_t seq;            /* key in "pep_items" */
    int64_t when;            /* microseconds since the epoch */
} pep_item_t;

typedef struct {
    char *jid; /* a prepared bare JID */
    int aff;   /* PEP_AFF_*, never NONE or OWNER */
} pep_aff_t;

typedef struct {
    char *name;
    int64_t max_items;
    int access;
    int persist;
    int slpi;
    strv_t groups;     /* roster_groups_allowed */
    pep_item_t *items; /* oldest first */
    int nitems, capitems;
    strv_t subs;     /* explicit subscriptions (§6.1): prepared JIDs */
    pep_aff_t *affs; /* affiliations set by the owner (§8.9) */
    int naffs;
} pep_node_t;

/* A full JID the service has available presence from, and what it wants
 * (the caps key, or its own features when they are not cacheable). */
typedef struct {
    char *jid;
    char *key;    /* caps cache key (a verified sha-1 ver), or NULL */
    strv_t own;   /* +notify nodes for this JID alone, or NULL */
    int resolved; /* features known (key cached or own set) */
} pep_res_t;

typedef struct {
    pep_node_t *nodes;
    int nnodes, capnodes;
    pep_res_t *res;
    int nres, capres;
    uint64_t next_seq;
    int64_t bytes;
    int broken; /* reading the stores failed: refuse writes */
} pep_user_t;

typedef struct {
    char *key;
    strv_t notify;
} pep_caps_t;

/* A disco#info query in flight. */
typedef struct {
    char *id;
    char *user; /* owner (localpart) */
    char *jid;  /* queried full JID */
    char *key;  /* ver when verifiable (sha-1), else NULL */
    char *ver;
    int initial;
} pep_pending_t;

typedef struct {
    roost_store_t *nodes, *items, *priv;
    pep_caps_t *caps;
    int ncaps, capcaps;
    pep_pending_t *pend;
    int npend, cappend;
    uint64_t counter;
} pep_mod_t;

/* ---------------------------------------------------------------- utils */

static pep_mod_t *
pep_data(roost_mod_t *m)
{
    return *roost_mod_data(m);
}

static const struct pep_conf *
pep_conf(roost_mod_t *m)
{
    return roost_mod_conf(m);
}

static void
strv_free(strv_t v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p != NULL; p++)
        roost_free(*p);
    roost_free(v);
}

static size_t
strv_len(const strv_t v)
{
    size_t n = 0;

    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

static void
strv_add(strv_t *v, const char *s)
{
    size_t n = strv_len(*v);

    *v = roost_xrealloc(*v, (n + 2) * sizeof(char *));
    (*v)[n] = roost_xstrdup(s);
    (*v)[n + 1] = NULL;
}

static int
strv_has(const strv_t v, const char *s)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

/* Removes s from v; returns whether it was there. */
static int
strv_remove(strv_t v, const char *s)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        if (strcmp(v[i], s) == 0) {
            roost_free(v[i]);
            memmove(&v[i], &v[i + 1], (strv_len(v) - i) * sizeof(char *));
            return 1;
        }
    return 0;
}

/* Whether jid (a prepared bare or full JID) belongs to bare. */
static int
jid_of_bare(const char *jid, const char *bare)
{
    size_t n = strlen(bare);

    return strncmp(jid, bare, n) == 0 && (jid[n] == '\0' || jid[n] == '/');
}

static int
type_is(const char *t, const char *want)
{
    return t != NULL && strcmp(t, want) == 0;
}

static int
name_index(const char *const *names, const char *v)
{
    for (int i = 0; v != NULL && names[i] != NULL; i++)
        if (strcmp(names[i], v) == 0)
            return i;
    return -1;
}

static int64_t
pep_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A new id, unique for this module instance: time and a counter. */
static void
pep_new_id(roost_mod_t *m, char *buf, size_t len)
{
    pep_mod_t *pm = pep_data(m);

    snprintf(buf, len, "%" PRIx64 "-%" PRIx64, (uint64_t)pep_now(),
             ++pm->counter);
}

/* ---------------------------------------------------------- errors */

/* Sends the error reply for ev's IQ with a pubsub#errors condition
 * (XEP-0060 §7, §6) when app is not NULL; feature adds feature='...'
 * (for <unsupported/>). */
static roost_verdict_t
pep_error_st(roost_mod_t *m, const roost_stanza_t *iq, roost_stanza_err_t cond,
             const char *app, const char *feature)
{
    roost_stanza_t *e = roost_stanza_error(iq, cond, NULL);
    roost_stanza_t *err = roost_stanza_child(e, NULL, "error");

    if (err != NULL && app != NULL) {
        roost_stanza_t *a = roost_stanza_add_child(err, PEP_NS_ERRORS, app);

        if (feature != NULL)
            roost_stanza_set_attr(a, "feature", feature);
    }
    roost_send(m, e);
    roost_stanza_unref(e);
    return ROOST_HANDLED;
}

static roost_verdict_t
pep_error(const roost_ev_t *ev, roost_stanza_err_t cond, const char *app)
{
    return pep_error_st(ev->mod, ev->stanza, cond, app, NULL);
}

static roost_verdict_t
pep_unsupported(const roost_ev_t *ev, const char *feature)
{
    return pep_error_st(ev->mod, ev->stanza, ROOST_SE_FEATURE_NOT_IMPLEMENTED,
                        "unsupported", feature);
}

/* ---------------------------------------------------------- state */

static void
pep_item_clear(pep_item_t *it)
{
    roost_free(it->id);
    roost_stanza_unref(it->payload);
}

static void
pep_node_clear(pep_node_t *n)
{
    for (int i = 0; i < n->nitems; i++)
        pep_item_clear(&n->items[i]);
    roost_free(n->items);
    roost_free(n->name);
    strv_free(n->groups);
    strv_free(n->subs);
    for (int i = 0; i < n->naffs; i++)
        roost_free(n->affs[i].jid);
    roost_free(n->affs);
}

static void
pep_res_clear(pep_res_t *r)
{
    roost_free(r->jid);
    roost_free(r->key);
    strv_free(r->own);
}

static void
pep_user_free(roost_mod_t *m, void *state)
{
    pep_user_t *u = state;

    (void)m;
    if (u == NULL)
        return;
    for (int i = 0; i < u->nnodes; i++)
        pep_node_clear(&u->nodes[i]);
    roost_free(u->nodes);
    for (int i = 0; i < u->nres; i++)
        pep_res_clear(&u->res[i]);
    roost_free(u->res);
    roost_free(u);
}

static pep_user_t *
pep_user(roost_mod_t *m, const char *user)
{
    void **slot = user != NULL ? roost_user_data(m, user) : NULL;

    if (slot == NULL)
        return NULL;
    if (*slot == NULL)
        *slot = roost_xcalloc(1, sizeof(pep_user_t)); /* pep_user_free */
    return *slot;
}

static pep_node_t *
pep_node_find(pep_user_t *u, const char *name)
{
    for (int i = 0; i < u->nnodes; i++)
        if (strcmp(u->nodes[i].name, name) == 0)
            return &u->nodes[i];
    return NULL;
}

static pep_node_t *
pep_node_add(roost_mod_t *m, pep_user_t *u, const char *name)
{
    pep_node_t *n;

    if (u->nnodes == u->capnodes) {
        u->capnodes = u->capnodes ? u->capnodes * 2 : 8;
        u->nodes = roost_xrealloc(u->nodes, u->capnodes * sizeof(*n));
    }
    n = &u->nodes[u->nnodes++];
    memset(n, 0, sizeof(*n));
    n->name = roost_xstrdup(name);
    n->max_items = pep_conf(m)->default_items;
    n->access = PEP_ACCESS_PRESENCE; /* XEP-0163 §5 */
    n->persist = 1;
    n->slpi = PEP_SLPI_ON_SUB_AND_PRESENCE; /* XEP-0163 §4.3.4 */
    return n;
}

static pep_item_t *
pep_item_find(pep_node_t *n, const char *id)
{
    for (int i = 0; i < n->nitems; i++)
        if (strcmp(n->items[i].id, id) == 0)
            return &n->items[i];
    return NULL;
}

static void
pep_item_append(pep_node_t *n, const pep_item_t *it)
{
    if (n->nitems == n->capitems) {
        n->capitems = n->capitems ? n->capitems * 2 : 4;
        n->items = roost_xrealloc(n->items, n->capitems * sizeof(*it));
    }
    n->items[n->nitems++] = *it;
}

/* The affiliation of bare (a prepared bare JID) with n, not counting
 * the owner. */
static int
pep_aff_of(const pep_node_t *n, const char *bare)
{
    for (int i = 0; i < n->naffs; i++)
        if (strcmp(n->affs[i].jid, bare) == 0)
            return n->affs[i].aff;
    return PEP_AFF_NONE;
}

/* Sets (or with NONE, or anything not storable, removes) bare's
 * affiliation. */
static void
pep_aff_set(pep_node_t *n, const char *bare, int aff)
{
    int i;

    for (i = 0; i < n->naffs; i++)
        if (strcmp(n->affs[i].jid, bare) == 0)
            break;
    if (aff <= PEP_AFF_NONE || aff >= PEP_AFF_OWNER) {
        if (i < n->naffs) {
            roost_free(n->affs[i].jid);
            memmove(&n->affs[i], &n->affs[i + 1],
                    (size_t)(n->naffs - i - 1) * sizeof(pep_aff_t));
            n->naffs--;
        }
        return;
    }
    if (i == n->naffs) {
        n->affs = roost_xrealloc(n->affs, (n->naffs + 1) * sizeof(pep_aff_t));
        n->affs[i].jid = roost_xstrdup(bare);
        n->naffs++;
    }
    n->affs[i].aff = aff;
}

/* --------------------------------------------------- stored forms */

static char *
pep_node_serialize(const pep_node_t *n, size_t *len)
{
    roost_stanza_t *e = roost_stanza_new(PEP_NS_STORE, "node");
    char buf[32];
    char *s;

    roost_stanza_set_attr(e, "name", n->name);
    snprintf(buf, sizeof(buf), "%" PRId64, n->max_items);
    roost_stanza_set_attr(e, "max_items", buf);
    roost_stanza_set_attr(e, "access_model", pep_access_names[n->access]);
    roost_stanza_set_attr(e, "persist_items", n->persist ? "1" : "0");
    roost_stanza_set_attr(e, "send_last_published_item",
                          pep_slpi_names[n->slpi]);
    for (size_t i = 0; n->groups != NULL && n->groups[i] != NULL; i++) {
        roost_stanza_t *g = roost_stanza_add_child(e, NULL, "group");

        roost_stanza_add_text(g, n->groups[i], strlen(n->groups[i]));
    }
    for (size_t i = 0; n->subs != NULL && n->subs[i] != NULL; i++)
        roost_stanza_set_attr(roost_stanza_add_child(e, NULL, "sub"), "jid",
                              n->subs[i]);
    for (int i = 0; i < n->naffs; i++) {
        roost_stanza_t *a = roost_stanza_add_child(e, NULL, "aff");

        roost_stanza_set_attr(a, "jid", n->affs[i].jid);
        roost_stanza_set_attr(a, "affiliation", pep_aff_names[n->affs[i].aff]);
    }
    s = roost_stanza_serialize(e, NULL, len);
    roost_stanza_unref(e);
    return s;
}

static char *
pep_item_serialize(const pep_node_t *n, const pep_item_t *it, size_t *len)
{
    roost_stanza_t *e = roost_stanza_new(PEP_NS_STORE, "item");
    char buf[32];
    char *s;

    roost_stanza_set_attr(e, "node", n->name);
    roost_stanza_set_attr(e, "id", it->id);
    snprintf(buf, sizeof(buf), "%" PRId64, it->when);
    roost_stanza_set_attr(e, "when", buf);
    if (it->payload != NULL)
        roost_stanza_add_copy(e, it->payload);
    s = roost_stanza_serialize(e, NULL, len);
    roost_stanza_unref(e);
    return s;
}

static void
pep_seq_key(uint64_t seq, char key[17])
{
    snprintf(key, 17, "%016" PRIx64, seq);
}

/* --- loading (storage worker) --- */

typedef struct {
    roost_mod_t *m;
    pep_user_t *u;
} pep_load_t;

static int
pep_load_node(void *arg, const char *key, const char *val, size_t len)
{
    pep_load_t *ld = arg;
    roost_stanza_t *e = roost_stanza_parse(val, len);
    const char *a;
    pep_node_t *n;

    if (e == NULL || pep_node_find(ld->u, key) != NULL) {
        roost_stanza_unref(e);
        return 0;
    }
    n = pep_node_add(ld->m, ld->u, key);
    if ((a = roost_stanza_attr(e, "max_items")) != NULL)
        n->max_items = strtoll(a, NULL, 10);
    if (n->max_items < 1)
        n->max_items = 1;
    if (n->max_items > pep_conf(ld->m)->max_items)
        n->max_items = pep_conf(ld->m)->max_items;
    if (name_index(pep_access_names, roost_stanza_attr(e, "access_model")) >= 0)
        n->access =
            name_index(pep_access_names, roost_stanza_attr(e, "access_model"));
    n->persist = !type_is(roost_stanza_attr(e, "persist_items"), "0");
    if (name_index(pep_slpi_names,
                   roost_stanza_attr(e, "send_last_published_item")) >= 0)
        n->slpi = name_index(pep_slpi_names,
                             roost_stanza_attr(e, "send_last_published_item"));
    for (roost_stanza_t *g = roost_stanza_first_child(e); g != NULL;
         g = roost_stanza_next_sibling(g)) {
        const char *jid = roost_stanza_attr(g, "jid");

        if (strcmp(roost_stanza_name(g), "group") == 0)
            strv_add(&n->groups, roost_stanza_text(g));
        else if (strcmp(roost_stanza_name(g), "sub") == 0 && jid != NULL &&
                 !strv_has(n->subs, jid))
            strv_add(&n->subs, jid);
        else if (strcmp(roost_stanza_name(g), "aff") == 0 && jid != NULL)
            pep_aff_set(
                n, jid,
                name_index(pep_aff_names, roost_stanza_attr(g, "affiliation")));
    }
    roost_stanza_unref(e);
    return 0;
}

static int
pep_load_item(void *arg, const char *key, const char *val, size_t len)
{
    pep_load_t *ld = arg;
    roost_stanza_t *e = roost_stanza_parse(val, len), *p;
    const char *node = e ? roost_stanza_attr(e, "node") : NULL;
    const char *id = e ? roost_stanza_attr(e, "id") : NULL;
    const char *when = e ? roost_stanza_attr(e, "when") : NULL;
    pep_node_t *n = node ? pep_node_find(ld->u, node) : NULL;
    pep_item_t it;

    memset(&it, 0, sizeof(it));
    it.seq = strtoull(key, NULL, 16);
    if (it.seq >= ld->u->next_seq)
        ld->u->next_seq = it.seq + 1;
    if (n == NULL || id == NULL || pep_item_find(n, id) != NULL) {
        roost_stanza_unref(e);
        return 0;
    }
    it.id = roost_xstrdup(id);
    it.when = when ? strtoll(when, NULL, 10) : 0;
    p = roost_stanza_first_child(e);
    if (p != NULL) {
        char *s;

        it.payload = roost_stanza_copy(p);
        s = roost_stanza_serialize(it.payload, NULL, &it.size);
        roost_free(s);
    }
    ld->u->bytes += (int64_t)it.size;
    pep_item_append(n, &it);
    roost_stanza_unref(e);
    return 0;
}

static void pep_bm_migrate(roost_mod_t *m, const char *user, pep_user_t *u);

static void *
pep_user_load(roost_mod_t *m, const char *user)
{
    pep_mod_t *pm = pep_data(m);
    pep_load_t ld = {m, roost_xcalloc(1, sizeof(pep_user_t))};

    ld.u->next_seq = 1;
    if ((pm->nodes != NULL &&
         roost_store_keys(pm->nodes, user, pep_load_node, &ld) < 0) ||
        (pm->items != NULL &&
         roost_store_keys(pm->items, user, pep_load_item, &ld) < 0))
        ld.u->broken = 1;
    if (!ld.u->broken)
        pep_bm_migrate(m, user, ld.u);
    return ld.u;
}

/* --- writing behind --- */

typedef struct {
    int items; /* 0: "pep_nodes", 1: "pep_items" */
    char *key;
    char *val; /* NULL: delete */
    size_t len;
} pep_op_t;

typedef struct {
    roost_mod_t *m;
    char *user;
    pep_op_t *ops;
    int n, cap;
    roost_stanza_t *reply;  /* sent when the writes committed */
    roost_stanza_t *iq;     /* the request, for an error instead */
    roost_stanza_t **notes; /* notifications to route after the reply */
    int nnotes;
} pep_wb_t;

static pep_wb_t *
pep_wb_new(const roost_ev_t *ev, const char *user)
{
    pep_wb_t *w = roost_xcalloc(1, sizeof(*w)); /* pep_wb_done */

    w->m = ev->mod;
    w->user = roost_xstrdup(user);
    w->iq = roost_stanza_ref(ev->stanza);
    return w;
}

/* Queues a write; takes val (roost_free'd). */
static void
pep_wb_op(pep_wb_t *w, int items, const char *key, char *val, size_t len)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 4;
        w->ops = roost_xrealloc(w->ops, w->cap * sizeof(pep_op_t));
    }
    w->ops[w->n].items = items;
    w->ops[w->n].key = roost_xstrdup(key);
    w->ops[w->n].val = val;
    w->ops[w->n].len = len;
    w->n++;
}

/* Takes st. */
static void
pep_wb_note(pep_wb_t *w, roost_stanza_t *st)
{
    w->notes = roost_xrealloc(w->notes, (w->nnotes + 1) * sizeof(*w->notes));
    w->notes[w->nnotes++] = st;
}

static int
pep_wb_work(void *arg)
{
    pep_wb_t *w = arg;
    pep_mod_t *pm = pep_data(w->m);
    int rc = 0;

    for (int i = 0; i < w->n && rc == 0; i++) {
        roost_store_t *s = w->ops[i].items ? pm->items : pm->nodes;

        if (s == NULL)
            rc = -ROOST_ESTORAGE;
        else if (w->ops[i].val != NULL)
            rc = roost_store_set(s, w->user, w->ops[i].key, w->ops[i].val,
                                 w->ops[i].len);
        else
            rc = roost_store_delete(s, w->user, w->ops[i].key);
    }
    return rc;
}

static void
pep_wb_done(void *arg, int rc)
{
    pep_wb_t *w = arg;

    if (rc < 0) {
        roost_log(w->m, ROOST_LOG_ERROR, "storing PEP data of %s: %s", w->user,
                  roost_strerror(rc));
        if (w->iq != NULL)
            pep_error_st(w->m, w->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL,
                         NULL);
    } else if (w->reply != NULL) {
        roost_send(w->m, w->reply);
    }
    /* XEP-0060 §7.1.2: notifications follow the publication (also when
     * storing failed: the item is live in memory). */
    for (int i = 0; i < w->nnotes; i++)
        roost_send(w->m, w->notes[i]);
    for (int i = 0; i < w->nnotes; i++)
        roost_stanza_unref(w->notes[i]);
    roost_free(w->notes);
    for (int i = 0; i < w->n; i++) {
        roost_free(w->ops[i].key);
        roost_free(w->ops[i].val);
    }
    roost_free(w->ops);
    roost_stanza_unref(w->reply);
    roost_stanza_unref(w->iq);
    roost_free(w->user);
    roost_free(w);
}

static void
pep_wb_submit(pep_wb_t *w)
{
    roost_store_async(w->m, pep_wb_work, pep_wb_done, w);
}

static void
pep_wb_node(pep_wb_t *w, const pep_node_t *n)
{
    size_t len;
    char *s = pep_node_serialize(n, &len);

    pep_wb_op(w, 0, n->name, s, len);
}

static void
pep_wb_item(pep_wb_t *w, const pep_node_t *n, const pep_item_t *it)
{
    char key[17];
    size_t len;
    char *s;

    if (!n->persist)
        return;
    pep_seq_key(it->seq, key);
    s = pep_item_serialize(n, it, &len);
    pep_wb_op(w, 1, key, s, len);
}

static void
pep_wb_item_delete(pep_wb_t *w, const pep_item_t *it)
{
    char key[17];

    pep_seq_key(it->seq, key);
    pep_wb_op(w, 1, key, NULL, 0);
}

/* Removes item i of n (memory, and the stored copy through w). */
static void
pep_item_remove(pep_user_t *u, pep_node_t *n, int i, pep_wb_t *w)
{
    pep_wb_item_delete(w, &n->items[i]);
    u->bytes -= (int64_t)n->items[i].size;
    pep_item_clear(&n->items[i]);
    memmove(&n->items[i], &n->items[i + 1],
            (size_t)(n->nitems - i - 1) * sizeof(pep_item_t));
    n->nitems--;
}

/* Drops the oldest items past max_items. */
static void
pep_node_trim(pep_user_t *u, pep_node_t *n, pep_wb_t *w)
{
    while (n->nitems > n->max_items)
        pep_item_remove(u, n, 0, w);
}

/* ---------------------------------------------------------- access */

static int
pep_is_owner(const char *owner_bare, const char *jid_bare)
{
    return strcmp(owner_bare, jid_bare) == 0;
}

/* Whether bare (a prepared bare JID) may retrieve items of n and receive
 * its notifications (XEP-0060 §4.5); *app gets the pubsub#errors
 * condition and *cond the stanza error when not. */
static int
pep_may_see(roost_mod_t *m, const char *user, const char *owner_bare,
            const pep_node_t *n, const char *bare, roost_stanza_err_t *cond,
            const char **app)
{
    const roost_roster_item_t *it;

    if (pep_is_owner(owner_bare, bare))
        return 1;
    switch (pep_aff_of(n, bare)) {
    case PEP_AFF_OUTCAST:
        *cond = ROOST_SE_FORBIDDEN; /* §6.1.3.8, §6.5.9 blocked */
        *app = NULL;
        return 0;
    case PEP_AFF_MEMBER:
    case PEP_AFF_PUBLISHER: return 1; /* §4.1: may subscribe and retrieve */
    default: break;
    }
    it = roost_roster_item(m, user, bare);
    if (it != NULL && it->hidden)
        it = NULL;
    switch (n->access) {
    case PEP_ACCESS_OPEN: return 1;
    case PEP_ACCESS_PRESENCE:
        if (it != NULL &&
            (it->sub == ROOST_SUB_FROM || it->sub == ROOST_SUB_BOTH))
            return 1;
        *cond = ROOST_SE_NOT_AUTHORIZED; /* §6.5.9.2 */
        *app = "presence-subscription-required";
        return 0;
    case PEP_ACCESS_ROSTER:
        for (size_t i = 0; it != NULL && it->groups != NULL && it->groups[i];
             i++)
            if (strv_has(n->groups, it->groups[i]))
                return 1;
        *cond = ROOST_SE_NOT_AUTHORIZED; /* §6.5.9.3 */
        *app = "not-in-roster-group";
        return 0;
    default:
        *cond = ROOST_SE_NOT_ALLOWED; /* §6.5.9.4 */
        *app = "closed-node";
        return 0;
    }
}

/* ---------------------------------------------------------- caps */

static pep_caps_t *
pep_caps_find(pep_mod_t *pm, const char *key)
{
    for (int i = 0; i < pm->ncaps; i++)
        if (strcmp(pm->caps[i].key, key) == 0)
            return &pm->caps[i];
    return NULL;
}

/* Caches key -> notify (takes notify); the oldest entry goes past the
 * limit. */
static void
pep_caps_put(roost_mod_t *m, const char *key, strv_t notify)
{
    pep_mod_t *pm = pep_data(m);
    pep_caps_t *c = pep_caps_find(pm, key);

    if (c != NULL) {
        strv_free(c->notify);
        c->notify = notify;
        return;
    }
    if (pm->ncaps >= pep_conf(m)->caps_cache && pm->ncaps > 0) {
        roost_free(pm->caps[0].key);
        strv_free(pm->caps[0].notify);
        memmove(&pm->caps[0], &pm->caps[1],
                (size_t)(pm->ncaps - 1) * sizeof(pep_caps_t));
        pm->ncaps--;
    }
    if (pm->ncaps == pm->capcaps) {
        pm->capcaps = pm->capcaps ? pm->capcaps * 2 : 16;
        pm->caps = roost_xrealloc(pm->caps, pm->capcaps * sizeof(pep_caps_t));
    }
    pm->caps[pm->ncaps].key = roost_xstrdup(key);
    pm->caps[pm->ncaps].notify = notify;
    pm->ncaps++;
}

/* The +notify nodes of a known resource, or NULL. */
static strv_t
pep_res_notify(roost_mod_t *m, const pep_res_t *r)
{
    pep_caps_t *c;

    if (!r->resolved)
        return NULL;
    if (r->own != NULL || r->key == NULL)
        return r->own;
    c = pep_caps_find(pep_data(m), r->key);
    return c != NULL ? c->notify : NULL;
}

static pep_res_t *
pep_res_find(pep_user_t *u, const char *jid)
{
    for (int i = 0; i < u->nres; i++)
        if (strcmp(u->res[i].jid, jid) == 0)
            return &u->res[i];
    return NULL;
}

static void
pep_res_remove(pep_user_t *u, const char *jid)
{
    for (int i = 0; i < u->nres; i++)
        if (strcmp(u->res[i].jid, jid) == 0) {
            pep_res_clear(&u->res[i]);
            memmove(&u->res[i], &u->res[i + 1],
                    (size_t)(u->nres - i - 1) * sizeof(pep_res_t));
            u->nres--;
            return;
        }
}

/* --- XEP-0115 §5.1 verification string of a disco#info result --- */

typedef struct {
    const char *cat, *type, *lang, *name;
} pep_ident_t;

static int
pep_cmp_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

static int
pep_ident_cmp(const void *a, const void *b)
{
    const pep_ident_t *x = a, *y = b;
    int c;

    if ((c = pep_cmp_str(x->cat, y->cat)) != 0 ||
        (c = pep_cmp_str(x->type, y->type)) != 0 ||
        (c = pep_cmp_str(x->lang, y->lang)) != 0)
        return c;
    return pep_cmp_str(x->name, y->name);
}

static int
pep_strp_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct {
    const char *form_type;
    roost_stanza_t *x;
} pep_form_t;

static int
pep_form_cmp(const void *a, const void *b)
{
    return strcmp(((const pep_form_t *)a)->form_type,
                  ((const pep_form_t *)b)->form_type);
}

typedef struct {
    char *s;
    size_t len, cap;
} pep_buf_t;

static void
pep_buf_add(pep_buf_t *b, const char *s)
{
    size_t n = strlen(s);

    if (b->len + n + 2 > b->cap) {
        b->cap = (b->len + n + 2) * 2;
        b->s = roost_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len++] = '<';
    b->s[b->len] = '\0';
}

/* The FORM_TYPE of a form: 1 with *ft set, 0 when the form has none or it
 * is not hidden (§5.4 3.6: ignore the form), -1 when it has several
 * different values (ill-formed). */
static int
pep_form_type(roost_stanza_t *x, const char **ft)
{
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *v = NULL;

        if (strcmp(roost_stanza_name(f), "field") != 0 ||
            !type_is(roost_stanza_attr(f, "var"), "FORM_TYPE"))
            continue;
        if (!type_is(roost_stanza_attr(f, "type"), "hidden"))
            return 0;
        for (roost_stanza_t *val = roost_stanza_first_child(f); val != NULL;
             val = roost_stanza_next_sibling(val)) {
            if (strcmp(roost_stanza_name(val), "value") != 0)
                continue;
            if (v != NULL && strcmp(v, roost_stanza_text(val)) != 0)
                return -1;
            v = roost_stanza_text(val);
        }
        if (v == NULL)
            return 0;
        *ft = v;
        return 1;
    }
    return 0;
}

/* Appends a form's fields (but FORM_TYPE) sorted by var, values sorted. */
static void
pep_form_string(pep_buf_t *b, roost_stanza_t *x)
{
    roost_stanza_t **fields = NULL;
    size_t nf = 0;

    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f))
        if (strcmp(roost_stanza_name(f), "field") == 0 &&
            roost_stanza_attr(f, "var") != NULL &&
            !type_is(roost_stanza_attr(f, "var"), "FORM_TYPE")) {
            fields = roost_xrealloc(fields, (nf + 1) * sizeof(*fields));
            fields[nf++] = f;
        }
    /* insertion sort by var (forms are small) */
    for (size_t i = 1; i < nf; i++)
        for (size_t j = i;
             j > 0 && strcmp(roost_stanza_attr(fields[j - 1], "var"),
                             roost_stanza_attr(fields[j], "var")) > 0;
             j--) {
            roost_stanza_t *t = fields[j];

            fields[j] = fields[j - 1];
            fields[j - 1] = t;
        }
    for (size_t i = 0; i < nf; i++) {
        const char **vals = NULL;
        size_t nv = 0;

        pep_buf_add(b, roost_stanza_attr(fields[i], "var"));
        for (roost_stanza_t *v = roost_stanza_first_child(fields[i]); v != NULL;
             v = roost_stanza_next_sibling(v))
            if (strcmp(roost_stanza_name(v), "value") == 0) {
                vals = roost_xrealloc(vals, (nv + 1) * sizeof(*vals));
                vals[nv++] = roost_stanza_text(v);
            }
        if (nv > 1)
            qsort(vals, nv, sizeof(*vals), pep_strp_cmp);
        for (size_t k = 0; k < nv; k++)
            pep_buf_add(b, vals[k]);
        roost_free(vals);
    }
    roost_free(fields);
}

/* XEP-0115 §5.1 string S of a disco#info <query/>, in *out (roost_free),
 * and its +notify nodes in *notify.  Returns 0, or -1 when the response is
 * ill-formed (§5.4 3.1-3.5: duplicate identities, features or FORM_TYPEs). */
static int
pep_caps_string(roost_stanza_t *q, char **out, strv_t *notify)
{
    pep_ident_t *ids = NULL;
    const char **feats = NULL;
    pep_form_t *forms = NULL;
    size_t ni = 0, nf = 0, nfo = 0;
    pep_buf_t b = {NULL, 0, 0};
    int rc = 0;

    *out = NULL;
    *notify = NULL;
    for (roost_stanza_t *c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *name = roost_stanza_name(c), *ns = roost_stanza_ns(c);

        if (strcmp(name, "identity") == 0) {
            ids = roost_xrealloc(ids, (ni + 1) * sizeof(*ids));
            ids[ni].cat = roost_stanza_attr(c, "category");
            ids[ni].type = roost_stanza_attr(c, "type");
            ids[ni].lang = roost_stanza_attr(c, "xml:lang");
            ids[ni].name = roost_stanza_attr(c, "name");
            ni++;
        } else if (strcmp(name, "feature") == 0 &&
                   roost_stanza_attr(c, "var") != NULL) {
            const char *var = roost_stanza_attr(c, "var");
            size_t vl = strlen(var);

            feats = roost_xrealloc(feats, (nf + 1) * sizeof(*feats));
            feats[nf++] = var;
            if (vl > 7 && strcmp(var + vl - 7, "+notify") == 0) {
                char *node = roost_xstrndup(var, vl - 7);

                if (!strv_has(*notify, node))
                    strv_add(notify, node);
                roost_free(node);
            }
        } else if (strcmp(name, "x") == 0 && ns != NULL &&
                   strcmp(ns, PEP_NS_DATA) == 0) {
            const char *ft = NULL;
            int r = pep_form_type(c, &ft);

            if (r < 0)
                rc = -1;
            else if (r > 0) {
                forms = roost_xrealloc(forms, (nfo + 1) * sizeof(*forms));
                forms[nfo].form_type = ft;
                forms[nfo++].x = c;
            }
        }
    }
    if (ni > 1)
        qsort(ids, ni, sizeof(*ids), pep_ident_cmp);
    if (nf > 1)
        qsort(feats, nf, sizeof(*feats), pep_strp_cmp);
    if (nfo > 1)
        qsort(forms, nfo, sizeof(*forms), pep_form_cmp);
    for (size_t i = 1; i < ni; i++)
        if (pep_ident_cmp(&ids[i - 1], &ids[i]) == 0)
            rc = -1;
    for (size_t i = 1; i < nf; i++)
        if (strcmp(feats[i - 1], feats[i]) == 0)
            rc = -1;
    for (size_t i = 1; i < nfo; i++)
        if (strcmp(forms[i - 1].form_type, forms[i].form_type) == 0)
            rc = -1;
    b.cap = 64;
    b.s = roost_xmalloc(b.cap);
    b.s[0] = '\0';
    for (size_t i = 0; i < ni; i++) {
        size_t n = strlen(ids[i].cat ? ids[i].cat : "") +
                   strlen(ids[i].type ? ids[i].type : "") +
                   strlen(ids[i].lang ? ids[i].lang : "") +
                   strlen(ids[i].name ? ids[i].name : "") + 4;
        char *s = roost_xmalloc(n);

        snprintf(s, n, "%s/%s/%s/%s", ids[i].cat ? ids[i].cat : "",
                 ids[i].type ? ids[i].type : "", ids[i].lang ? ids[i].lang : "",
                 ids[i].name ? ids[i].name : "");
        pep_buf_add(&b, s);
        roost_free(s);
    }
    for (size_t i = 0; i < nf; i++)
        pep_buf_add(&b, feats[i]);
    for (size_t i = 0; i < nfo; i++) {
        pep_buf_add(&b, forms[i].form_type);
        pep_form_string(&b, forms[i].x);
    }
    roost_free(ids);
    roost_free(feats);
    roost_free(forms);
    *out = b.s;
    return rc;
}

/* The base64 SHA-1 of S (§5.1 step 8), in out[29]. */
static void
pep_caps_hash(const char *s, char out[29])
{
    unsigned char d[ROOST_SHA1_LEN];
    char *b64;

    roost_sha1(s, strlen(s), d);
    b64 = roost_base64_encode(d, sizeof(d));
    snprintf(out, 29, "%s", b64); /* 28 characters for 20 bytes */
    roost_free(b64);
}

/* ---------------------------------------------------- notifications */

static void
pep_add_delay(roost_mod_t *m, roost_stanza_t *msg, int64_t when)
{
    time_t t = (time_t)(when / 1000000);
    struct tm tm;
    char stamp[40];
    roost_stanza_t *d;

    if (when <= 0 || gmtime_r(&t, &tm) == NULL ||
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return;
    d = roost_stanza_add_child(msg, PEP_NS_DELAY, "delay");
    roost_stanza_set_attr(d, "from", roost_mod_host(m));
    roost_stanza_set_attr(d, "stamp", stamp);
}

/* <message type='headline'><event><items node=...>  (or kind: delete,
 * purge); returns it and sets *inner to the node element. */
static roost_stanza_t *
pep_event_new(roost_mod_t *m, const char *owner_bare, const char *kind,
              const char *node, roost_stanza_t **inner)
{
    roost_stanza_t *msg = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_t *ev;
    char id[64];

    pep_new_id(m, id, sizeof(id));
    roost_stanza_set_attr(msg, "type", "headline");
    roost_stanza_set_attr(msg, "from", owner_bare);
    roost_stanza_set_attr(msg, "id", id);
    ev = roost_stanza_add_child(msg, PEP_NS_EVENT, "event");
    *inner = roost_stanza_add_child(ev, NULL, kind);
    roost_stanza_set_attr(*inner, "node", node);
    return msg;
}

static void
pep_add_item_el(roost_stanza_t *parent, const pep_item_t *it)
{
    roost_stanza_t *i = roost_stanza_add_child(parent, NULL, "item");

    roost_stanza_set_attr(i, "id", it->id);
    if (it->payload != NULL)
        roost_stanza_add_copy(i, it->payload);
}

/* Whether resource r (known to u) should hear about node n now. */
static int
pep_res_wants(roost_mod_t *m, const char *user, const char *owner_bare,
              const pep_node_t *n, const pep_res_t *r)
{
    strv_t notify = pep_res_notify(m, r);
    roost_jid_t *j;
    roost_stanza_err_t cond;
    const char *app;
    int ok;

    if (!strv_has(notify, n->name) || (j = roost_jid_new(r->jid)) == NULL)
        return 0;
    ok = pep_may_see(m, user, owner_bare, n, roost_jid_bare(j), &cond, &app);
    roost_jid_free(j);
    return ok;
}

/* Queues (on w, or routes now when w is NULL) a copy of tmpl to to. */
static void
pep_send_copy(roost_mod_t *m, const roost_stanza_t *tmpl, const char *to,
              pep_wb_t *w)
{
    roost_stanza_t *c = roost_stanza_copy(tmpl);

    roost_stanza_set_attr(c, "to", to);
    if (w != NULL) {
        pep_wb_note(w, c);
    } else {
        roost_send(m, c);
        roost_stanza_unref(c);
    }
}

/* Whether an explicit subscription of jid (to n) is served by the
 * resources that want n through presence and caps: the same full JID, or
 * for a bare JID any of its resources (XEP-0163 §4.3.2 rules 1 and 3). */
static int
pep_sub_covered(roost_mod_t *m, const char *user, const char *owner_bare,
                pep_user_t *u, const pep_node_t *n, const char *jid)
{
    int full = strchr(jid, '/') != NULL;

    for (int i = 0; i < u->nres; i++) {
        if (full ? strcmp(u->res[i].jid, jid) != 0
                 : !jid_of_bare(u->res[i].jid, jid))
            continue;
        if (pep_res_wants(m, user, owner_bare, n, &u->res[i]))
            return 1;
    }
    return 0;
}

/* Whether the explicit subscriber jid may still receive n's
 * notifications (the access model, affiliations). */
static int
pep_sub_allowed(roost_mod_t *m, const char *user, const char *owner_bare,
                const pep_node_t *n, const char *jid)
{
    roost_jid_t *j = roost_jid_new(jid);
    roost_stanza_err_t cond;
    const char *app;
    int ok;

    if (j == NULL)
        return 0;
    ok = pep_may_see(m, user, owner_bare, n, roost_jid_bare(j), &cond, &app);
    roost_jid_free(j);
    return ok;
}

/* Queues (on w, or routes now when w is NULL) a copy of tmpl to every
 * resource that wants node n, and to every explicit subscriber (§6.1) not
 * served that way: one to a full JID, at most one to a bare JID
 * (XEP-0163 §4.3.2). */
static void
pep_broadcast(roost_mod_t *m, const char *user, const char *owner_bare,
              pep_user_t *u, const pep_node_t *n, const roost_stanza_t *tmpl,
              pep_wb_t *w)
{
    for (int i = 0; i < u->nres; i++)
        if (pep_res_wants(m, user, owner_bare, n, &u->res[i]))
            pep_send_copy(m, tmpl, u->res[i].jid, w);
    for (size_t i = 0; n->subs != NULL && n->subs[i] != NULL; i++)
        if (!pep_sub_covered(m, user, owner_bare, u, n, n->subs[i]) &&
            pep_sub_allowed(m, user, owner_bare, n, n->subs[i]))
            pep_send_copy(m, tmpl, n->subs[i], w);
}

/* XEP-0163 §4.3.4: the last item of every node r newly wants (in notify,
 * not in before) to r, with a delay. */
static void
pep_send_last(roost_mod_t *m, const char *user, pep_user_t *u, pep_res_t *r,
              const strv_t before)
{
    char *owner_bare = NULL;
    size_t n = strlen(user) + strlen(roost_mod_host(m)) + 2;

    owner_bare = roost_xmalloc(n);
    snprintf(owner_bare, n, "%s@%s", user, roost_mod_host(m));
    for (int i = 0; i < u->nnodes; i++) {
        pep_node_t *node = &u->nodes[i];
        roost_stanza_t *msg, *items;

        if (node->nitems == 0 || node->slpi != PEP_SLPI_ON_SUB_AND_PRESENCE ||
            strv_has(before, node->name) ||
            !pep_res_wants(m, user, owner_bare, node, r))
            continue;
        msg = pep_event_new(m, owner_bare, "items", node->name, &items);
        pep_add_item_el(items, &node->items[node->nitems - 1]);
        pep_add_delay(m, msg, node->items[node->nitems - 1].when);
        roost_stanza_set_attr(msg, "to", r->jid);
        roost_send(m, msg);
        roost_stanza_unref(msg);
    }
    roost_free(owner_bare);
}

/* ------------------------------------------------- presence tracking */

static pep_pending_t *
pep_pending_find(pep_mod_t *pm, const char *id)
{
    for (int i = 0; i < pm->npend; i++)
        if (strcmp(pm->pend[i].id, id) == 0)
            return &pm->pend[i];
    return NULL;
}

static void
pep_pending_drop(pep_mod_t *pm, int i)
{
    pep_pending_t *p = &pm->pend[i];

    roost_free(p->id);
    roost_free(p->user);
    roost_free(p->jid);
    roost_free(p->key);
    roost_free(p->ver);
    memmove(p, p + 1, (size_t)(pm->npend - i - 1) * sizeof(*p));
    pm->npend--;
}

/* Sends a disco#info query for node#ver to jid, from the owner's bare JID
 * (XEP-0115 §6.2). */
static void
pep_query_caps(roost_mod_t *m, const char *user, const char *jid,
               const char *node, const char *ver, const char *key, int initial)
{
    pep_mod_t *pm = pep_data(m);
    roost_stanza_t *iq, *q;
    char id[64], *owner, *qnode;
    size_t n;
    pep_pending_t *p;

    if (pm->npend >= PEP_PENDING_MAX)
        pep_pending_drop(pm, 0); /* the oldest never answered */
    if (pm->npend == pm->cappend) {
        pm->cappend = pm->cappend ? pm->cappend * 2 : 8;
        pm->pend = roost_xrealloc(pm->pend, pm->cappend * sizeof(*p));
    }
    snprintf(id, sizeof(id), "pepcaps-%" PRIx64, ++pm->counter);
    p = &pm->pend[pm->npend++];
    p->id = roost_xstrdup(id);
    p->user = roost_xstrdup(user);
    p->jid = roost_xstrdup(jid);
    p->key = key ? roost_xstrdup(key) : NULL;
    p->ver = roost_xstrdup(ver);
    p->initial = initial;

    n = strlen(user) + strlen(roost_mod_host(m)) + 2;
    owner = roost_xmalloc(n);
    snprintf(owner, n, "%s@%s", user, roost_mod_host(m));
    n = strlen(node) + strlen(ver) + 2;
    qnode = roost_xmalloc(n);
    snprintf(qnode, n, "%s#%s", node, ver);
    iq = roost_stanza_new(ROOST_NS_CLIENT, "iq");
    roost_stanza_set_attr(iq, "type", "get");
    roost_stanza_set_attr(iq, "id", id);
    roost_stanza_set_attr(iq, "from", owner);
    roost_stanza_set_attr(iq, "to", jid);
    q = roost_stanza_add_child(iq, ROOST_NS_DISCO_INFO, "query");
    roost_stanza_set_attr(q, "node", qnode);
    roost_send(m, iq);
    roost_stanza_unref(iq);
    roost_free(owner);
    roost_free(qnode);
}

/* Available presence with priority >= 0 from jid (an authorized contact's
 * or the owner's resource).  initial: send last items for newly wanted
 * nodes (presence to the bare JID, or the owner's own). */
static void
pep_presence_available(roost_mod_t *m, const char *user, pep_user_t *u,
                       const char *jid, roost_stanza_t *pres, int initial)
{
    roost_stanza_t *c = roost_stanza_child(pres, PEP_NS_CAPS, "c");
    const char *hash = c ? roost_stanza_attr(c, "hash") : NULL;
    const char *node = c ? roost_stanza_attr(c, "node") : NULL;
    const char *ver = c ? roost_stanza_attr(c, "ver") : NULL;
    pep_res_t *r = pep_res_find(u, jid);
    strv_t before = NULL;
    pep_caps_t *cached;

    if (c == NULL || node == NULL || ver == NULL) {
        /* No caps: nothing to notify (filtered notifications); an update
         * without caps keeps what we know (caps optimisation). */
        if (r == NULL && c == NULL) {
            if (u->nres == u->capres) {
                u->capres = u->capres ? u->capres * 2 : 4;
                u->res = roost_xrealloc(u->res, u->capres * sizeof(*r));
            }
            r = &u->res[u->nres++];
            memset(r, 0, sizeof(*r));
            r->jid = roost_xstrdup(jid);
        }
        return;
    }
    if (r != NULL && r->key != NULL && hash != NULL &&
        strcmp(hash, "sha-1") == 0 && strcmp(r->key, ver) == 0)
        return; /* same caps as before */
    if (r == NULL) {
        if (u->nres == u->capres) {
            u->capres = u->capres ? u->capres * 2 : 4;
            u->res = roost_xrealloc(u->res, u->capres * sizeof(*r));
        }
        r = &u->res[u->nres++];
        memset(r, 0, sizeof(*r));
        r->jid = roost_xstrdup(jid);
    } else {
        strv_t old = pep_res_notify(m, r);

        for (size_t i = 0; old != NULL && old[i] != NULL; i++)
            strv_add(&before, old[i]);
        roost_free(r->key);
        r->key = NULL;
        strv_free(r->own);
        r->own = NULL;
        r->resolved = 0;
    }
    if (hash != NULL && strcmp(hash, "sha-1") == 0) {
        r->key = roost_xstrdup(ver);
        cached = pep_caps_find(pep_data(m), ver);
        if (cached != NULL) {
            r->resolved = 1;
            if (initial)
                pep_send_last(m, user, u, r, before);
        } else {
            pep_query_caps(m, user, jid, node, ver, ver, initial);
        }
    } else {
        /* §5.4: an unsupported hash (or legacy caps): ask this entity and
         * use the answer for it alone. */
        pep_query_caps(m, user, jid, node, ver, NULL, initial);
    }
    strv_free(before);
}

/* Presence to the owner (bare or full JID) or from the owner's own
 * session: keeps u->res up to date. */
static void
pep_presence(roost_mod_t *m, const char *user, const roost_jid_t *from,
             roost_stanza_t *pres, int initial)
{
    pep_user_t *u = pep_user(m, user);
    const char *type = roost_stanza_attr(pres, "type");
    const char *prio = roost_stanza_child_text(pres, NULL, "priority");
    const char *jid = roost_jid_full(from);

    if (u == NULL || roost_jid_resource(from) == NULL)
        return;
    if (type_is(type, "unavailable") ||
        (type == NULL && prio != NULL && strtol(prio, NULL, 10) < 0)) {
        pep_res_remove(u, jid); /* XEP-0163 §4.3.2: priority >= 0 only */
        return;
    }
    if (type != NULL)
        return;
    pep_presence_available(m, user, u, jid, pres, initial);
}

/* Contact presence to the owner.  Only from whom the owner shares
 * presence with (XEP-0163 §4: the contact has a subscription from/both)
 * or the owner's own resources.  Observes: always PASS. */
static roost_verdict_t
pep_presence_in(const roost_ev_t *ev, void *arg)
{
    const char *user = roost_jid_node(ev->to);
    const char *type = roost_stanza_attr(ev->stanza, "type");
    const roost_roster_item_t *it;
    int initial = roost_jid_resource(ev->to) == NULL;

    (void)arg;
    if (user == NULL || (type != NULL && !type_is(type, "unavailable")))
        return ROOST_PASS;
    if (!roost_jid_bare_eq(ev->from, ev->to) && !type_is(type, "unavailable")) {
        it = roost_roster_item(ev->mod, user, roost_jid_bare(ev->from));
        if (it == NULL || it->hidden ||
            (it->sub != ROOST_SUB_FROM && it->sub != ROOST_SUB_BOTH))
            return ROOST_PASS;
    }
    pep_presence(ev->mod, user, ev->from, ev->stanza, initial);
    return ROOST_PASS;
}

/* The owner's own broadcast presence (no 'to'). */
static roost_verdict_t
pep_presence_out(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    if (roost_jid_node(ev->from) != NULL)
        pep_presence(ev->mod, roost_jid_node(ev->from), ev->from, ev->stanza,
                     1);
    return ROOST_PASS;
}

static roost_verdict_t
pep_session_closed(const roost_ev_t *ev, void *arg)
{
    const roost_jid_t *j = ev->origin ? roost_session_jid(ev->origin) : NULL;
    void **slot;

    (void)arg;
    if (j == NULL || roost_jid_node(j) == NULL)
        return ROOST_PASS;
    slot = roost_user_data(ev->mod, roost_jid_node(j));
    if (slot != NULL && *slot != NULL)
        pep_res_remove(*slot, roost_jid_full(j));
    return ROOST_PASS;
}

/* The answer to one of our disco#info queries (an IQ result or error to
 * the owner's bare JID). */
static roost_verdict_t
pep_caps_result(const roost_ev_t *ev, pep_pending_t *p, int idx)
{
    roost_mod_t *m = ev->mod;
    pep_mod_t *pm = pep_data(m);
    roost_stanza_t *q =
        roost_stanza_child(ev->stanza, ROOST_NS_DISCO_INFO, "query");
    pep_user_t *u = pep_user(m, p->user);
    pep_res_t *r = u ? pep_res_find(u, p->jid) : NULL;
    char *s = NULL, h[29];
    strv_t notify = NULL;
    int ok;

    if (!type_is(roost_stanza_attr(ev->stanza, "type"), "result") ||
        q == NULL) {
        pep_pending_drop(pm, idx);
        return ROOST_HANDLED;
    }
    ok = pep_caps_string(q, &s, &notify) == 0;
    if (ok && p->key != NULL) {
        pep_caps_hash(s, h);
        if (strcmp(h, p->ver) == 0) {
            /* §5.4 3.8: verified, cache it for everyone. */
            pep_caps_put(m, p->key, notify);
            notify = NULL;
        } else {
            roost_log(m, ROOST_LOG_DEBUG,
                      "caps of %s: ver %s does not verify (%s)", p->jid, p->ver,
                      h);
            ok = 0;
        }
    }
    if (r != NULL &&
        (p->key == NULL || r->key == NULL || strcmp(r->key, p->key) == 0)) {
        if (p->key == NULL || !ok) {
            /* Not cacheable: this JID alone (§5.4). */
            roost_free(r->key);
            r->key = NULL;
            strv_free(r->own);
            r->own = notify;
            notify = NULL;
            if (r->own == NULL)
                strv_add(&r->own, ""); /* resolved, wants nothing */
        }
        r->resolved = 1;
        if (p->initial)
            pep_send_last(m, p->user, u, r, NULL);
    }
    /* Other resources waiting for the same ver (of this owner) */
    if (u != NULL && p->key != NULL && ok)
        for (int i = 0; i < u->nres; i++)
            if (&u->res[i] != r && !u->res[i].resolved &&
                u->res[i].key != NULL && strcmp(u->res[i].key, p->key) == 0) {
                u->res[i].resolved = 1;
                if (p->initial)
                    pep_send_last(m, p->user, u, &u->res[i], NULL);
            }
    strv_free(notify);
    roost_free(s);
    pep_pending_drop(pm, idx);
    return ROOST_HANDLED;
}

/* ----------------------------------------------------------- forms */

/* The <value/> texts of field var in form x, or NULL when absent. */
static roost_stanza_t *
pep_form_field(roost_stanza_t *x, const char *var)
{
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f))
        if (strcmp(roost_stanza_name(f), "field") == 0 &&
            type_is(roost_stanza_attr(f, "var"), var))
            return f;
    return NULL;
}

static const char *
pep_field_value(roost_stanza_t *f)
{
    roost_stanza_t *v = roost_stanza_child(f, NULL, "value");

    return v ? roost_stanza_text(v) : "";
}

static int
pep_parse_bool(const char *v)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        return 1;
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        return 0;
    return -1;
}

/* A node configuration read from a form (the fields it names). */
typedef struct {
    int has_max, has_access, has_persist, has_slpi, has_groups;
    int64_t max_items;
    int access, persist, slpi;
    strv_t groups;
    int other;       /* a field we do not support (notify_*, title...) */
    const char *bad; /* var of an invalid value */
} pep_cfg_t;

/* Parses form x (FORM_TYPE form_type) into c.  Returns 0, or -1 when the
 * form is not a submission of that FORM_TYPE. */
static int
pep_cfg_parse(roost_mod_t *m, roost_stanza_t *x, const char *form_type,
              pep_cfg_t *c)
{
    roost_stanza_t *ft = pep_form_field(x, "FORM_TYPE");

    memset(c, 0, sizeof(*c));
    if (ft == NULL || strcmp(pep_field_value(ft), form_type) != 0)
        return -1;
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *var = roost_stanza_attr(f, "var");
        const char *v;

        if (strcmp(roost_stanza_name(f), "field") != 0 || var == NULL ||
            strcmp(var, "FORM_TYPE") == 0)
            continue;
        v = pep_field_value(f);
        if (strcmp(var, "pubsub#max_items") == 0) {
            char *end;
            long long n;

            c->has_max = 1;
            if (strcmp(v, "max") == 0) {
                c->max_items = pep_conf(m)->max_items;
                continue;
            }
            n = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || n < 1 ||
                n > pep_conf(m)->max_items)
                c->bad = var;
            c->max_items = n;
        } else if (strcmp(var, "pubsub#access_model") == 0) {
            c->has_access = 1;
            c->access = name_index(pep_access_names, v);
            if (c->access < 0)
                c->bad = var;
        } else if (strcmp(var, "pubsub#persist_items") == 0) {
            c->has_persist = 1;
            c->persist = pep_parse_bool(v);
            if (c->persist < 0)
                c->bad = var;
        } else if (strcmp(var, "pubsub#send_last_published_item") == 0) {
            c->has_slpi = 1;
            c->slpi = name_index(pep_slpi_names, v);
            if (c->slpi < 0)
                c->bad = var;
        } else if (strcmp(var, "pubsub#roster_groups_allowed") == 0) {
            c->has_groups = 1;
            for (roost_stanza_t *val = roost_stanza_first_child(f); val != NULL;
                 val = roost_stanza_next_sibling(val))
                if (strcmp(roost_stanza_name(val), "value") == 0)
                    strv_add(&c->groups, roost_stanza_text(val));
        } else if (strcmp(var, "pubsub#deliver_notifications") == 0 ||
                   strcmp(var, "pubsub#deliver_payloads") == 0 ||
                   strcmp(var, "pubsub#presence_based_delivery") == 0) {
            /* What we do: notifications with payloads, to available
             * resources.  Another value cannot be honoured. */
            int want = strcmp(var, "pubsub#presence_based_delivery") != 0;

            if (pep_parse_bool(v) != want)
                c->other = 1;
        } else {
            c->other = 1;
        }
    }
    return 0;
}

/* Whether n already has every value c names (§7.1.5 preconditions). */
static int
pep_cfg_matches(const pep_node_t *n, const pep_cfg_t *c)
{
    if (c->other || c->bad != NULL)
        return 0;
    if ((c->has_max && c->max_items != n->max_items) ||
        (c->has_access && c->access != n->access) ||
        (c->has_persist && c->persist != n->persist) ||
        (c->has_slpi && c->slpi != n->slpi))
        return 0;
    if (c->has_groups) {
        if (strv_len(c->groups) != strv_len(n->groups))
            return 0;
        for (size_t i = 0; c->groups != NULL && c->groups[i] != NULL; i++)
            if (!strv_has(n->groups, c->groups[i]))
                return 0;
    }
    return 1;
}

static void
pep_cfg_apply(pep_node_t *n, pep_cfg_t *c)
{
    if (c->has_max)
        n->max_items = c->max_items;
    if (c->has_access)
        n->access = c->access;
    if (c->has_persist)
        n->persist = c->persist;
    if (c->has_slpi)
        n->slpi = c->slpi;
    if (c->has_groups) {
        strv_free(n->groups);
        n->groups = c->groups;
        c->groups = NULL;
    }
}

static void
pep_cfg_free(pep_cfg_t *c)
{
    strv_free(c->groups);
}

static roost_stanza_t *
pep_form_add_field(roost_stanza_t *x, const char *var, const char *type,
                   const char *label, const char *value)
{
    roost_stanza_t *f = roost_stanza_add_child(x, NULL, "field");

    roost_stanza_set_attr(f, "var", var);
    if (type != NULL)
        roost_stanza_set_attr(f, "type", type);
    if (label != NULL)
        roost_stanza_set_attr(f, "label", label);
    if (value != NULL) {
        roost_stanza_t *v = roost_stanza_add_child(f, NULL, "value");

        roost_stanza_add_text(v, value, strlen(value));
    }
    return f;
}

static void
pep_form_add_options(roost_stanza_t *f, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++) {
        roost_stanza_t *o = roost_stanza_add_child(f, NULL, "option");
        roost_stanza_t *v = roost_stanza_add_child(o, NULL, "value");

        roost_stanza_add_text(v, names[i], strlen(names[i]));
    }
}

/* The node_config form (§8.2.1) of n. */
static roost_stanza_t *
pep_config_form(const pep_node_t *n)
{
    roost_stanza_t *x = roost_stanza_new(PEP_NS_DATA, "x"), *f;
    char buf[32];

    roost_stanza_set_attr(x, "type", "form");
    pep_form_add_field(x, "FORM_TYPE", "hidden", NULL, PEP_FORM_CONFIG);
    snprintf(buf, sizeof(buf), "%" PRId64, n->max_items);
    pep_form_add_field(x, "pubsub#max_items", "text-single",
                       "Max # of items to persist", buf);
    pep_form_add_field(x, "pubsub#persist_items", "boolean",
                       "Persist items to storage", n->persist ? "1" : "0");
    f = pep_form_add_field(x, "pubsub#access_model", "list-single",
                           "Specify the subscriber model",
                           pep_access_names[n->access]);
    pep_form_add_options(f, pep_access_names);
    f = pep_form_add_field(x, "pubsub#roster_groups_allowed", "list-multi",
                           "Roster groups allowed to subscribe", NULL);
    for (size_t i = 0; n->groups != NULL && n->groups[i] != NULL; i++) {
        roost_stanza_t *v = roost_stanza_add_child(f, NULL, "value");

        roost_stanza_add_text(v, n->groups[i], strlen(n->groups[i]));
    }
    f = pep_form_add_field(x, "pubsub#send_last_published_item", "list-single",
                           "When to send the last published item",
                           pep_slpi_names[n->slpi]);
    pep_form_add_options(f, pep_slpi_names);
    pep_form_add_field(x, "pubsub#deliver_notifications", "boolean",
                       "Deliver event notifications", "1");
    pep_form_add_field(x, "pubsub#deliver_payloads", "boolean",
                       "Deliver payloads with event notifications", "1");
    return x;
}

/* ------------------------------------------------------- handlers */

/* The request's context. */
typedef struct {
    const roost_ev_t *ev;
    roost_mod_t *m;
    const char *user;       /* the service's account (localpart) */
    const char *owner_bare; /* its bare JID */
    const char *from_bare;  /* the requester's bare JID */
    int owner;              /* the requester is the owner */
    pep_user_t *u;
} pep_req_t;

static roost_verdict_t
pep_reply_wb(pep_req_t *r, pep_wb_t *w, roost_stanza_t *payload)
{
    w->reply = roost_stanza_reply(r->ev->stanza);
    if (payload != NULL) {
        roost_stanza_add_copy(w->reply, payload);
        roost_stanza_unref(payload);
    }
    pep_wb_submit(w);
    return ROOST_HANDLED;
}

static int
pep_node_name_ok(const char *node)
{
    return node != NULL && node[0] != '\0' && strlen(node) <= PEP_NODE_MAX;
}

/* ------------------------------------- XEP-0411 bookmarks conversion
 *
 * One source: the XEP-0402 node (urn:xmpp:bookmarks:1, one item per room,
 * id = room JID).  XEP-0048 bookmarks, <storage xmlns='storage:bookmarks'/>
 * whether through private XML (XEP-0049) or the PEP node
 * 'storage:bookmarks', are made from it when read and converted into it
 * when written: new or changed rooms are published, missing ones
 * retracted (XEP-0402 §Compatibility: unchanged items are not notified),
 * and resources that want 'storage:bookmarks' are notified of the whole
 * list (XEP-0411 §3), also when a XEP-0402 client changes it.  Legacy
 * bookmarks stored as private XML before are moved into the node when the
 * account's state is loaded (XEP-0411 §4).  XEP-0048 <url/> bookmarks
 * have no XEP-0402 form and are dropped. */

static int
pep_bm_true(const char *v)
{
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* Copies the text child ns/name of from into to, when there is one. */
static void
pep_bm_copy_text(roost_stanza_t *to, roost_stanza_t *from, const char *ns,
                 const char *name)
{
    const char *t = roost_stanza_child_text(from, ns, name);

    if (t != NULL) {
        roost_stanza_t *e = roost_stanza_add_child(to, NULL, name);

        roost_stanza_add_text(e, t, strlen(t));
    }
}

/* The XEP-0048 <storage/> of the XEP-0402 node n (may be NULL): a new
 * root. */
static roost_stanza_t *
pep_bm_legacy(const pep_node_t *n)
{
    roost_stanza_t *st = roost_stanza_new(PEP_NS_BM, "storage");

    for (int i = 0; n != NULL && i < n->nitems; i++) {
        roost_stanza_t *p = n->items[i].payload, *c;
        const char *name;

        if (p == NULL || strcmp(roost_stanza_name(p), "conference") != 0)
            continue;
        c = roost_stanza_add_child(st, NULL, "conference");
        roost_stanza_set_attr(c, "jid", n->items[i].id);
        if ((name = roost_stanza_attr(p, "name")) != NULL)
            roost_stanza_set_attr(c, "name", name);
        roost_stanza_set_attr(
            c, "autojoin",
            pep_bm_true(roost_stanza_attr(p, "autojoin")) ? "true" : "false");
        pep_bm_copy_text(c, p, PEP_NS_BM2, "nick");
        pep_bm_copy_text(c, p, PEP_NS_BM2, "password");
    }
    return st;
}

/* The XEP-0402 payload of a XEP-0048 <conference/>: a new root. */
static roost_stanza_t *
pep_bm_modern(roost_stanza_t *conf)
{
    roost_stanza_t *c = roost_stanza_new(PEP_NS_BM2, "conference");
    const char *name = roost_stanza_attr(conf, "name");

    if (name != NULL)
        roost_stanza_set_attr(c, "name", name);
    if (pep_bm_true(roost_stanza_attr(conf, "autojoin")))
        roost_stanza_set_attr(c, "autojoin", "true");
    pep_bm_copy_text(c, conf, PEP_NS_BM, "nick");
    pep_bm_copy_text(c, conf, PEP_NS_BM, "password");
    return c;
}

static int
pep_bm_eq_str(const char *a, const char *b)
{
    return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/* Whether the XEP-0402 payload old says what new (made from XEP-0048)
 * says: XEP-0048 cannot carry more (<extensions/> stay). */
static int
pep_bm_same(roost_stanza_t *old, roost_stanza_t *new)
{
    return old != NULL && strcmp(roost_stanza_name(old), "conference") == 0 &&
           pep_bm_eq_str(roost_stanza_attr(old, "name"),
                         roost_stanza_attr(new, "name")) &&
           pep_bm_true(roost_stanza_attr(old, "autojoin")) ==
               pep_bm_true(roost_stanza_attr(new, "autojoin")) &&
           pep_bm_eq_str(roost_stanza_child_text(old, PEP_NS_BM2, "nick"),
                         roost_stanza_child_text(new, PEP_NS_BM2, "nick")) &&
           pep_bm_eq_str(roost_stanza_child_text(old, PEP_NS_BM2, "password"),
                         roost_stanza_child_text(new, PEP_NS_BM2, "password"));
}

/* Tells the resources that want 'storage:bookmarks' (the owner's: the
 * list is private) its current content (XEP-0411 §3), on w. */
static void
pep_bm_notify_legacy(roost_mod_t *m, const char *user, const char *owner_bare,
                     pep_user_t *u, pep_wb_t *w)
{
    pep_node_t legacy;
    roost_stanza_t *msg, *items, *it, *st;

    memset(&legacy, 0, sizeof(legacy));
    legacy.name = (char *)PEP_NS_BM;
    legacy.access = PEP_ACCESS_WHITELIST;
    msg = pep_event_new(m, owner_bare, "items", PEP_NS_BM, &items);
    it = roost_stanza_add_child(items, NULL, "item");
    roost_stanza_set_attr(it, "id", "current");
    st = pep_bm_legacy(pep_node_find(u, PEP_NS_BM2));
    roost_stanza_add_copy(it, st);
    roost_stanza_unref(st);
    pep_broadcast(m, user, owner_bare, u, &legacy, msg, w);
    roost_stanza_unref(msg);
}

/* Makes the XEP-0402 node of u hold the rooms of the XEP-0048 storage st
 * (§Compatibility, XEP-0411 §3), writing through w; notifies when
 * owner_bare is not NULL.  Returns 0, or a stanza error condition. */
static roost_stanza_err_t
pep_bm_from_legacy(roost_mod_t *m, const char *user, const char *owner_bare,
                   pep_user_t *u, roost_stanza_t *st, pep_wb_t *w)
{
    pep_node_t *n = pep_node_find(u, PEP_NS_BM2);
    strv_t keep = NULL;

    if (n == NULL) {
        if (u->nnodes >= pep_conf(m)->max_nodes)
            return ROOST_SE_RESOURCE_CONSTRAINT;
        /* XEP-0402 §Publishing: XEP-0223 private storage, and XEP-0411 §6:
         * the owner alone */
        n = pep_node_add(m, u, PEP_NS_BM2);
        n->access = PEP_ACCESS_WHITELIST;
        n->max_items = pep_conf(m)->max_items;
        n->slpi = PEP_SLPI_NEVER;
        pep_wb_node(w, n);
    }
    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        roost_jid_t *j = NULL;
        const char *jid = roost_stanza_attr(c, "jid");
        pep_item_t it, *old;
        char *ser;

        if (strcmp(roost_stanza_name(c), "conference") != 0 || jid == NULL ||
            (j = roost_jid_new(jid)) == NULL ||
            strlen(roost_jid_bare(j)) > PEP_ID_MAX ||
            strv_has(keep, roost_jid_bare(j))) {
            roost_jid_free(j);
            continue;
        }
        strv_add(&keep, roost_jid_bare(j));
        memset(&it, 0, sizeof(it));
        it.payload = pep_bm_modern(c);
        ser = roost_stanza_serialize(it.payload, NULL, &it.size);
        old = pep_item_find(n, roost_jid_bare(j));
        if (old != NULL && pep_bm_same(old->payload, it.payload)) {
            roost_stanza_unref(it.payload); /* unchanged: no notification */
        } else {
            roost_stanza_t *msg, *items;

            if (old != NULL)
                pep_item_remove(u, n, (int)(old - n->items), w);
            it.id = roost_xstrdup(roost_jid_bare(j));
            it.seq = u->next_seq++;
            it.when = pep_now();
            u->bytes += (int64_t)it.size;
            pep_item_append(n, &it);
            pep_wb_item(w, n, &n->items[n->nitems - 1]);
            if (owner_bare != NULL) {
                msg = pep_event_new(m, owner_bare, "items", n->name, &items);
                pep_add_item_el(items, &n->items[n->nitems - 1]);
                pep_broadcast(m, user, owner_bare, u, n, msg, w);
                roost_stanza_unref(msg);
            }
        }
        roost_free(ser);
        roost_jid_free(j);
    }
    for (int i = 0; i < n->nitems;) {
        roost_stanza_t *msg, *items, *rt;

        if (strv_has(keep, n->items[i].id)) {
            i++;
            continue;
        }
        if (owner_bare != NULL) {
            msg = pep_event_new(m, owner_bare, "items", n->name, &items);
            rt = roost_stanza_add_child(items, NULL, "retract");
            roost_stanza_set_attr(rt, "id", n->items[i].id);
            pep_broadcast(m, user, owner_bare, u, n, msg, w);
            roost_stanza_unref(msg);
        }
        pep_item_remove(u, n, i, w);
    }
    pep_node_trim(u, n, w);
    strv_free(keep);
    if (owner_bare != NULL)
        pep_bm_notify_legacy(m, user, owner_bare, u, w);
    return ROOST_SE_NONE;
}

/* XEP-0411 §4: bookmarks in private XML from before move into the
 * XEP-0402 node (storage worker, when the state is loaded). */
static void
pep_bm_migrate(roost_mod_t *m, const char *user, pep_user_t *u)
{
    pep_mod_t *pm = pep_data(m);
    roost_stanza_t *st;
    pep_wb_t w;
    char *val = NULL;
    size_t len;
    int rc;

    if (pm->priv == NULL || pep_node_find(u, PEP_NS_BM2) != NULL ||
        roost_store_get(pm->priv, user, PEP_BM_KEY, &val, &len) < 0)
        return;
    st = roost_stanza_parse(val, len);
    roost_free(val);
    if (st == NULL)
        return;
    memset(&w, 0, sizeof(w));
    w.m = m;
    w.user = (char *)user;
    if (pep_bm_from_legacy(m, user, NULL, u, st, &w) == ROOST_SE_NONE) {
        rc = pep_wb_work(&w);
        if (rc == 0)
            rc = roost_store_delete(pm->priv, user, PEP_BM_KEY);
        if (rc < 0)
            u->broken = 1;
    }
    for (int i = 0; i < w.n; i++) {
        roost_free(w.ops[i].key);
        roost_free(w.ops[i].val);
    }
    roost_free(w.ops);
    roost_stanza_unref(st);
}

/* XEP-0411 §3: a XEP-0048 client publishes its whole list to the PEP node
 * 'storage:bookmarks'; it goes into the XEP-0402 node. */
static roost_verdict_t
pep_bm_publish(pep_req_t *r, roost_stanza_t *pub)
{
    roost_stanza_t *item = roost_stanza_child(pub, NULL, "item");
    roost_stanza_t *st =
        item ? roost_stanza_child(item, PEP_NS_BM, "storage") : NULL;
    roost_stanza_t *res, *pe, *ie;
    roost_stanza_err_t cond;
    pep_wb_t *w;

    if (item == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "item-required");
    if (st == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "invalid-payload");
    if (r->u->broken)
        return pep_error(r->ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    w = pep_wb_new(r->ev, r->user);
    cond = pep_bm_from_legacy(r->m, r->user, r->owner_bare, r->u, st, w);
    if (cond != ROOST_SE_NONE) {
        pep_wb_done(w, 0); /* nothing queued */
        return pep_error(r->ev, cond, NULL);
    }
    res = roost_stanza_new(PEP_NS, "pubsub");
    pe = roost_stanza_add_child(res, NULL, "publish");
    roost_stanza_set_attr(pe, "node", PEP_NS_BM);
    ie = roost_stanza_add_child(pe, NULL, "item");
    roost_stanza_set_attr(ie, "id",
                          roost_stanza_attr(item, "id")
                              ? roost_stanza_attr(item, "id")
                              : "current");
    return pep_reply_wb(r, w, res);
}

/* ------------------------------------------- XEP-0398 avatar conversion */

/* XEP-0398 §2.1: the account published its XEP-0084 metadata; the avatar
 * goes into its vCard.  The info that points at data in the data node
 * (no url) is the one: its item's base64 goes to mod_vcard as an IQ set
 * <photo xmlns='urn:roost:vcard-photo' type='..' id='..'/> from the
 * account's bare JID to itself, which mod_vcard checks (base64, SHA-1 =
 * id), stores and answers; the answer to the bare JID is dropped.  The
 * rest of an existing vCard stays (§2.1 stores the data "as a photo in
 * the vcard"; mod_vcard replaces only its PHOTO).  An empty <metadata/>
 * (XEP-0084 §4.5), or meta NULL (no metadata any more: retracted, purged,
 * deleted), removes the photo.  Only the client's requests (ev->origin
 * set) count: mod_vcard publishes what a vCard set brings with origin
 * NULL, and that must not come back. */
static void
pep_avatar_to_vcard(pep_req_t *r, roost_stanza_t *meta)
{
    roost_stanza_t *info = NULL, *pick = NULL, *iq, *ph;
    pep_node_t *dn;
    const pep_item_t *data = NULL;
    const char *id = NULL, *b64 = NULL;
    char idbuf[64];

    for (roost_stanza_t *c = meta ? roost_stanza_first_child(meta) : NULL;
         c != NULL; c = roost_stanza_next_sibling(c)) {
        if (strcmp(roost_stanza_name(c), "info") != 0 ||
            roost_stanza_ns(c) == NULL ||
            strcmp(roost_stanza_ns(c), PEP_NS_AV_META) != 0)
            continue;
        if (info == NULL)
            info = c; /* there is an avatar */
        if (roost_stanza_attr(c, "url") == NULL &&
            roost_stanza_attr(c, "id") != NULL) {
            id = roost_stanza_attr(c, "id");
            pick = c;
            break;
        }
    }
    if (info != NULL && id == NULL)
        return; /* only external URLs: no bytes for the vCard */
    if (id != NULL) {
        dn = pep_node_find(r->u, PEP_NS_AV_DATA);
        data = dn != NULL ? pep_item_find(dn, id) : NULL;
        if (data == NULL ||
            strcmp(roost_stanza_name(data->payload), "data") != 0) {
            roost_log(r->m, ROOST_LOG_DEBUG,
                      "%s: avatar metadata %s without its data item", r->user,
                      id);
            return;
        }
        b64 = roost_stanza_text(data->payload);
    }
    iq = roost_stanza_new(ROOST_NS_CLIENT, "iq");
    pep_new_id(r->m, idbuf, sizeof(idbuf));
    roost_stanza_set_attr(iq, "type", "set");
    roost_stanza_set_attr(iq, "id", idbuf);
    roost_stanza_set_attr(iq, "from", r->owner_bare);
    roost_stanza_set_attr(iq, "to", r->owner_bare);
    ph = roost_stanza_add_child(iq, PEP_NS_VCPHOTO, "photo");
    if (id != NULL) {
        roost_stanza_set_attr(ph, "id", id);
        if (roost_stanza_attr(pick, "type") != NULL)
            roost_stanza_set_attr(ph, "type", roost_stanza_attr(pick, "type"));
        roost_stanza_add_text(ph, b64, strlen(b64));
    }
    roost_send(r->m, iq);
    roost_stanza_unref(iq);
}

static int
pep_is_av_meta(const roost_stanza_t *payload)
{
    return strcmp(roost_stanza_name(payload), "metadata") == 0 &&
           roost_stanza_ns(payload) != NULL &&
           strcmp(roost_stanza_ns(payload), PEP_NS_AV_META) == 0;
}

/* The client changed the avatar metadata node other than by publishing
 * (retracted its newest item, purged or deleted it; n NULL when deleted):
 * the vCard follows the newest metadata item left, or loses its photo
 * (XEP-0084 §4.5: no metadata, no avatar). */
static void
pep_avatar_removed(pep_req_t *r, const char *node, const pep_node_t *n)
{
    roost_stanza_t *meta = NULL;

    if (!r->owner || r->ev->origin == NULL || strcmp(node, PEP_NS_AV_META) != 0)
        return;
    if (n != NULL && n->nitems > 0) {
        meta = n->items[n->nitems - 1].payload;
        if (!pep_is_av_meta(meta))
            return; /* not an avatar: nothing to mirror */
    }
    pep_avatar_to_vcard(r, meta);
}

/* §7.1 publish (with §7.1.5 publish-options). */
static roost_verdict_t
pep_publish(pep_req_t *r, roost_stanza_t *pubsub, roost_stanza_t *pub)
{
    const struct pep_conf *conf = pep_conf(r->m);
    const char *node = roost_stanza_attr(pub, "node");
    roost_stanza_t *item = NULL, *payload = NULL, *opts, *x = NULL;
    roost_stanza_t *res, *pe, *ie, *msg, *items;
    pep_node_t *n;
    pep_cfg_t cfg;
    int nitem = 0, npayload = 0, created = 0;
    char idbuf[64], *ser;
    const char *id;
    pep_item_t it;
    pep_wb_t *w;

    if (!r->owner) {
        /* §7.1.3.1; publishers of an existing node (§4.1, §8.9) */
        int aff;

        n = node != NULL ? pep_node_find(r->u, node) : NULL;
        aff = n != NULL ? pep_aff_of(n, r->from_bare) : PEP_AFF_NONE;
        if (aff != PEP_AFF_PUBLISHER && aff != PEP_AFF_PUBLISH_ONLY)
            return pep_error(r->ev, ROOST_SE_FORBIDDEN, NULL);
    }
    if (node == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    if (!pep_node_name_ok(node))
        return pep_error(r->ev, ROOST_SE_NOT_ACCEPTABLE, NULL);
    if (r->owner && strcmp(node, PEP_NS_BM) == 0)
        return pep_bm_publish(r, pub);
    for (roost_stanza_t *c = roost_stanza_first_child(pub); c != NULL;
         c = roost_stanza_next_sibling(c))
        if (strcmp(roost_stanza_name(c), "item") == 0) {
            item = c;
            nitem++;
        }
    if (nitem > 1) /* §7.1.3.6 */
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "invalid-payload");
    if (item == NULL) /* §7.1.3.6: persistent nodes need an item */
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "item-required");
    for (roost_stanza_t *c = roost_stanza_first_child(item); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        payload = c;
        npayload++;
    }
    if (npayload == 0) /* §7.1.3.6 */
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "payload-required");
    if (npayload > 1)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "invalid-payload");
    id = roost_stanza_attr(item, "id");
    if (id != NULL && (id[0] == '\0' || strlen(id) > PEP_ID_MAX))
        return pep_error(r->ev, ROOST_SE_NOT_ACCEPTABLE, NULL);

    opts = roost_stanza_child(pubsub, NULL, "publish-options");
    memset(&cfg, 0, sizeof(cfg));
    if (opts != NULL &&
        (x = roost_stanza_child(opts, PEP_NS_DATA, "x")) != NULL &&
        pep_cfg_parse(r->m, x, PEP_FORM_PUBOPT, &cfg) < 0) {
        /* §7.1.5: the form must be of the publish-options FORM_TYPE */
        pep_cfg_free(&cfg);
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "invalid-options");
    }
    n = pep_node_find(r->u, node);
    if (n != NULL && x != NULL && !pep_cfg_matches(n, &cfg)) {
        pep_cfg_free(&cfg);
        return pep_error(r->ev, ROOST_SE_CONFLICT, "precondition-not-met");
    }
    if (n == NULL && (cfg.other || cfg.bad != NULL)) {
        /* A new node cannot be given what it asks for. */
        pep_cfg_free(&cfg);
        return pep_error(r->ev, ROOST_SE_CONFLICT, "precondition-not-met");
    }

    ser = roost_stanza_serialize(payload, NULL, &it.size);
    roost_free(ser);
    if ((int64_t)it.size > conf->max_payload) { /* §7.1.3.4 */
        pep_cfg_free(&cfg);
        return pep_error(r->ev, ROOST_SE_NOT_ACCEPTABLE, "payload-too-big");
    }
    if (n == NULL && r->u->nnodes >= conf->max_nodes) {
        pep_cfg_free(&cfg);
        return pep_error_st(r->m, r->ev->stanza, ROOST_SE_RESOURCE_CONSTRAINT,
                            NULL, NULL);
    }
    {
        pep_item_t *old = n != NULL && id != NULL ? pep_item_find(n, id) : NULL;
        int64_t after = r->u->bytes + (int64_t)it.size -
                        (old != NULL ? (int64_t)old->size : 0);

        if (after > conf->max_user_bytes) {
            pep_cfg_free(&cfg);
            return pep_error_st(r->m, r->ev->stanza,
                                ROOST_SE_RESOURCE_CONSTRAINT, NULL, NULL);
        }
    }
    if (r->u->broken) {
        pep_cfg_free(&cfg);
        return pep_error(r->ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }

    w = pep_wb_new(r->ev, r->user);
    if (n == NULL) {
        n = pep_node_add(r->m, r->u, node); /* auto-create */
        pep_cfg_apply(n, &cfg);
        created = 1;
    }
    pep_cfg_free(&cfg);
    if (id == NULL) {
        pep_new_id(r->m, idbuf, sizeof(idbuf));
        id = idbuf;
    }
    for (int i = 0; i < n->nitems; i++)
        if (strcmp(n->items[i].id, id) == 0) {
            pep_item_remove(r->u, n, i, w); /* §7.1.2: overwrite */
            break;
        }
    it.id = roost_xstrdup(id);
    it.payload = roost_stanza_copy(payload);
    it.seq = r->u->next_seq++;
    it.when = pep_now();
    r->u->bytes += (int64_t)it.size;
    pep_item_append(n, &it);
    if (created)
        pep_wb_node(w, n);
    pep_wb_item(w, n, &n->items[n->nitems - 1]);
    pep_node_trim(r->u, n, w);

    /* §7.1.2.1 notifications with payload */
    msg = pep_event_new(r->m, r->owner_bare, "items", node, &items);
    pep_add_item_el(items, &n->items[n->nitems - 1]);
    pep_broadcast(r->m, r->user, r->owner_bare, r->u, n, msg, w);
    roost_stanza_unref(msg);
    if (strcmp(node, PEP_NS_BM2) == 0) /* XEP-0411 §3 */
        pep_bm_notify_legacy(r->m, r->user, r->owner_bare, r->u, w);
    if (r->owner && r->ev->origin != NULL &&
        strcmp(node, PEP_NS_AV_META) == 0 && pep_is_av_meta(payload))
        pep_avatar_to_vcard(r, payload); /* XEP-0398 §2.1 */

    /* §7.1.2: the result names the item id */
    res = roost_stanza_new(PEP_NS, "pubsub");
    pe = roost_stanza_add_child(res, NULL, "publish");
    roost_stanza_set_attr(pe, "node", node);
    ie = roost_stanza_add_child(pe, NULL, "item");
    roost_stanza_set_attr(ie, "id", id);
    return pep_reply_wb(r, w, res);
}

/* §7.2 retract */
static roost_verdict_t
pep_retract(pep_req_t *r, roost_stanza_t *ret)
{
    const char *node = roost_stanza_attr(ret, "node");
    const char *notify = roost_stanza_attr(ret, "notify");
    roost_stanza_t *item = roost_stanza_child(ret, NULL, "item");
    const char *id = item ? roost_stanza_attr(item, "id") : NULL;
    pep_node_t *n;
    pep_wb_t *w;
    int newest;

    /* §7.2.3.1: the owner, or a publisher (§4.1) */
    n = node != NULL ? pep_node_find(r->u, node) : NULL;
    if (!r->owner &&
        (n == NULL || pep_aff_of(n, r->from_bare) != PEP_AFF_PUBLISHER))
        return pep_error(r->ev, ROOST_SE_FORBIDDEN, NULL);
    if (node == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    if (id == NULL || id[0] == '\0')
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "item-required");
    if ((n = pep_node_find(r->u, node)) == NULL)
        return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    for (int i = 0; i < n->nitems; i++) {
        if (strcmp(n->items[i].id, id) != 0)
            continue;
        w = pep_wb_new(r->ev, r->user);
        if (type_is(notify, "true") || type_is(notify, "1")) {
            /* §7.2.2.1 */
            roost_stanza_t *items, *rt;
            roost_stanza_t *msg =
                pep_event_new(r->m, r->owner_bare, "items", node, &items);

            rt = roost_stanza_add_child(items, NULL, "retract");
            roost_stanza_set_attr(rt, "id", id);
            pep_broadcast(r->m, r->user, r->owner_bare, r->u, n, msg, w);
            roost_stanza_unref(msg);
        }
        newest = i == n->nitems - 1;
        pep_item_remove(r->u, n, i, w);
        if (strcmp(node, PEP_NS_BM2) == 0) /* XEP-0411 §3 */
            pep_bm_notify_legacy(r->m, r->user, r->owner_bare, r->u, w);
        if (newest) /* the current avatar went */
            pep_avatar_removed(r, node, n);
        return pep_reply_wb(r, w, NULL);
    }
    return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL); /* §7.2.3.3 */
}

/* §8.1 create, with §8.1.3 configure */
static roost_verdict_t
pep_create(pep_req_t *r, roost_stanza_t *pubsub, roost_stanza_t *create)
{
    const char *node = roost_stanza_attr(create, "node");
    roost_stanza_t *conf = roost_stanza_child(pubsub, NULL, "configure");
    roost_stanza_t *x =
        conf ? roost_stanza_child(conf, PEP_NS_DATA, "x") : NULL;
    pep_cfg_t cfg;
    pep_node_t *n;
    pep_wb_t *w;

    memset(&cfg, 0, sizeof(cfg));
    if (!r->owner)
        return pep_error(r->ev, ROOST_SE_FORBIDDEN, NULL);
    if (node == NULL) /* §8.1.3: no instant nodes in PEP */
        return pep_error(r->ev, ROOST_SE_NOT_ACCEPTABLE, "nodeid-required");
    if (!pep_node_name_ok(node))
        return pep_error(r->ev, ROOST_SE_NOT_ACCEPTABLE, NULL);
    if (pep_node_find(r->u, node) != NULL) /* §8.1.3.5 */
        return pep_error(r->ev, ROOST_SE_CONFLICT, NULL);
    if (x != NULL) {
        if (pep_cfg_parse(r->m, x, PEP_FORM_CONFIG, &cfg) < 0 ||
            cfg.bad != NULL || cfg.other) {
            pep_cfg_free(&cfg);
            return pep_error(r->ev, ROOST_SE_NOT_ACCEPTABLE, NULL);
        }
    }
    if (r->u->nnodes >= pep_conf(r->m)->max_nodes) {
        pep_cfg_free(&cfg);
        return pep_error(r->ev, ROOST_SE_RESOURCE_CONSTRAINT, NULL);
    }
    n = pep_node_add(r->m, r->u, node);
    pep_cfg_apply(n, &cfg);
    pep_cfg_free(&cfg);
    w = pep_wb_new(r->ev, r->user);
    pep_wb_node(w, n);
    return pep_reply_wb(r, w, NULL);
}

/* §6.5 items */
static roost_verdict_t
pep_items(pep_req_t *r, roost_stanza_t *req)
{
    const char *node = roost_stanza_attr(req, "node");
    const char *max = roost_stanza_attr(req, "max_items");
    roost_stanza_t *res, *items;
    roost_stanza_err_t cond = ROOST_SE_NONE;
    const char *app = NULL;
    pep_node_t *n;
    long long maxn = -1;
    int byid = 0;
    roost_verdict_t v;

    if (node == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    if (r->owner && strcmp(node, PEP_NS_BM) == 0) {
        /* XEP-0411 §3: the XEP-0402 node as XEP-0048 */
        roost_stanza_t *it, *st;

        res = roost_stanza_new(PEP_NS, "pubsub");
        items = roost_stanza_add_child(res, NULL, "items");
        roost_stanza_set_attr(items, "node", node);
        it = roost_stanza_add_child(items, NULL, "item");
        roost_stanza_set_attr(it, "id", "current");
        st = pep_bm_legacy(pep_node_find(r->u, PEP_NS_BM2));
        roost_stanza_add_copy(it, st);
        roost_stanza_unref(st);
        v = roost_reply(r->ev, res);
        roost_stanza_unref(res);
        return v;
    }
    if ((n = pep_node_find(r->u, node)) == NULL) /* §6.5.9.11 */
        return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    if (!pep_may_see(r->m, r->user, r->owner_bare, n, r->from_bare, &cond,
                     &app))
        return pep_error(r->ev, cond, app);
    if (max != NULL) {
        char *end;

        maxn = strtoll(max, &end, 10);
        if (*max == '\0' || *end != '\0' || maxn < 0)
            return pep_error(r->ev, ROOST_SE_BAD_REQUEST, NULL);
    }
    res = roost_stanza_new(PEP_NS, "pubsub");
    items = roost_stanza_add_child(res, NULL, "items");
    roost_stanza_set_attr(items, "node", node);
    for (roost_stanza_t *c = roost_stanza_first_child(req); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *id = roost_stanza_attr(c, "id");
        pep_item_t *it;

        if (strcmp(roost_stanza_name(c), "item") != 0 || id == NULL)
            continue;
        byid = 1; /* §6.5.8 */
        if ((it = pep_item_find(n, id)) != NULL)
            pep_add_item_el(items, it);
    }
    if (!byid) {
        /* §6.5.7: the most recent max_items, in publication order */
        int from = 0;

        if (maxn >= 0 && maxn < n->nitems)
            from = n->nitems - (int)maxn;
        for (int i = from; i < n->nitems; i++)
            pep_add_item_el(items, &n->items[i]);
    }
    v = roost_reply(r->ev, res);
    roost_stanza_unref(res);
    return v;
}

/* §5.7 affiliations (the requester's) */
static roost_verdict_t
pep_affiliations(pep_req_t *r, roost_stanza_t *req)
{
    const char *node = roost_stanza_attr(req, "node");
    roost_stanza_t *res = roost_stanza_new(PEP_NS, "pubsub");
    roost_stanza_t *affs = roost_stanza_add_child(res, NULL, "affiliations");
    roost_verdict_t v;

    if (node != NULL)
        roost_stanza_set_attr(affs, "node", node);
    for (int i = 0; i < r->u->nnodes; i++) {
        int aff = r->owner ? PEP_AFF_OWNER
                           : pep_aff_of(&r->u->nodes[i], r->from_bare);
        roost_stanza_t *a;

        if (aff == PEP_AFF_NONE ||
            (node != NULL && strcmp(node, r->u->nodes[i].name) != 0))
            continue;
        a = roost_stanza_add_child(affs, NULL, "affiliation");
        roost_stanza_set_attr(a, "node", r->u->nodes[i].name);
        roost_stanza_set_attr(a, "affiliation", pep_aff_names[aff]);
    }
    v = roost_reply(r->ev, res);
    roost_stanza_unref(res);
    return v;
}

/* §5.6 subscriptions of the requester: its explicit ones (§6.1) for any
 * JID of its bare JID; implicit (presence-based) ones are not listed. */
static roost_verdict_t
pep_subscriptions(pep_req_t *r, roost_stanza_t *req)
{
    const char *node = roost_stanza_attr(req, "node");
    roost_stanza_t *res = roost_stanza_new(PEP_NS, "pubsub");
    roost_stanza_t *subs = roost_stanza_add_child(res, NULL, "subscriptions");
    roost_verdict_t v;

    if (node != NULL)
        roost_stanza_set_attr(subs, "node", node);
    for (int i = 0; i < r->u->nnodes; i++) {
        pep_node_t *n = &r->u->nodes[i];

        if (node != NULL && strcmp(node, n->name) != 0)
            continue;
        for (size_t k = 0; n->subs != NULL && n->subs[k] != NULL; k++) {
            roost_stanza_t *e;

            if (!jid_of_bare(n->subs[k], r->from_bare))
                continue;
            e = roost_stanza_add_child(subs, NULL, "subscription");
            roost_stanza_set_attr(e, "node", n->name);
            roost_stanza_set_attr(e, "jid", n->subs[k]);
            roost_stanza_set_attr(e, "subscription", "subscribed");
        }
    }
    v = roost_reply(r->ev, res);
    roost_stanza_unref(res);
    return v;
}

/* §8.8.1 the owner lists a node's subscribers: here the resources that
 * currently get its notifications (auto-subscribed through presence and
 * caps). */
static roost_verdict_t
pep_owner_subscriptions(pep_req_t *r, roost_stanza_t *req)
{
    const char *node = roost_stanza_attr(req, "node");
    roost_stanza_t *res, *subs;
    pep_node_t *n;
    roost_verdict_t v;

    if (node == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    if ((n = pep_node_find(r->u, node)) == NULL)
        return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    res = roost_stanza_new(PEP_NS_OWNER, "pubsub");
    subs = roost_stanza_add_child(res, NULL, "subscriptions");
    roost_stanza_set_attr(subs, "node", node);
    for (int i = 0; i < r->u->nres; i++) {
        roost_stanza_t *s;

        if (!pep_res_wants(r->m, r->user, r->owner_bare, n, &r->u->res[i]))
            continue;
        s = roost_stanza_add_child(subs, NULL, "subscription");
        roost_stanza_set_attr(s, "jid", r->u->res[i].jid);
        roost_stanza_set_attr(s, "subscription", "subscribed");
    }
    for (size_t i = 0; n->subs != NULL && n->subs[i] != NULL; i++) {
        roost_stanza_t *s;
        pep_res_t *rs = pep_res_find(r->u, n->subs[i]);

        if (rs != NULL && pep_res_wants(r->m, r->user, r->owner_bare, n, rs))
            continue; /* listed above */
        s = roost_stanza_add_child(subs, NULL, "subscription");
        roost_stanza_set_attr(s, "jid", n->subs[i]);
        roost_stanza_set_attr(s, "subscription", "subscribed");
    }
    v = roost_reply(r->ev, res);
    roost_stanza_unref(res);
    return v;
}

/* §8.2 configure: get the form, or submit one */
static roost_verdict_t
pep_configure(pep_req_t *r, roost_stanza_t *req, int set)
{
    const char *node = roost_stanza_attr(req, "node");
    roost_stanza_t *x = roost_stanza_child(req, PEP_NS_DATA, "x");
    pep_node_t *n;
    pep_cfg_t cfg;
    pep_wb_t *w;

    if (node == NULL) /* §8.2.3.3 */
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    if ((n = pep_node_find(r->u, node)) == NULL)
        return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    if (!set) {
        roost_stanza_t *res = roost_stanza_new(PEP_NS_OWNER, "pubsub");
        roost_stanza_t *c = roost_stanza_add_child(res, NULL, "configure");
        roost_stanza_t *form = pep_config_form(n);
        roost_verdict_t v;

        roost_stanza_set_attr(c, "node", node);
        roost_stanza_add_copy(c, form);
        roost_stanza_unref(form);
        v = roost_reply(r->ev, res);
        roost_stanza_unref(res);
        return v;
    }
    if (x == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, NULL);
    if (type_is(roost_stanza_attr(x, "type"), "cancel"))
        return roost_reply(r->ev, NULL); /* §8.2.4 */
    if (!type_is(roost_stanza_attr(x, "type"), "submit") ||
        pep_cfg_parse(r->m, x, PEP_FORM_CONFIG, &cfg) < 0)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, NULL);
    if (cfg.bad != NULL || cfg.other) { /* §8.2.5.3 */
        pep_cfg_free(&cfg);
        return pep_error(r->ev, ROOST_SE_NOT_ACCEPTABLE, NULL);
    }
    w = pep_wb_new(r->ev, r->user);
    if (cfg.has_persist && n->persist != cfg.persist) {
        /* Items follow the node: stored now, or forgotten by storage. */
        for (int i = 0; i < n->nitems; i++) {
            if (cfg.persist) {
                n->persist = 1;
                pep_wb_item(w, n, &n->items[i]);
            } else {
                pep_wb_item_delete(w, &n->items[i]);
            }
        }
    }
    pep_cfg_apply(n, &cfg);
    pep_cfg_free(&cfg);
    pep_node_trim(r->u, n, w);
    pep_wb_node(w, n);
    return pep_reply_wb(r, w, NULL);
}

/* §8.4 delete and §8.5 purge */
static roost_verdict_t
pep_delete(pep_req_t *r, roost_stanza_t *req, int purge)
{
    const char *node = roost_stanza_attr(req, "node");
    roost_stanza_t *msg, *inner;
    pep_node_t *n;
    pep_wb_t *w;
    int idx;

    if (node == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    if ((n = pep_node_find(r->u, node)) == NULL)
        return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    w = pep_wb_new(r->ev, r->user);
    msg = pep_event_new(r->m, r->owner_bare, purge ? "purge" : "delete", node,
                        &inner);
    pep_broadcast(r->m, r->user, r->owner_bare, r->u, n, msg, w);
    roost_stanza_unref(msg);
    while (n->nitems > 0)
        pep_item_remove(r->u, n, n->nitems - 1, w);
    pep_avatar_removed(r, node, NULL);
    if (!purge) {
        pep_wb_op(w, 0, node, NULL, 0);
        idx = (int)(n - r->u->nodes);
        pep_node_clear(n);
        memmove(&r->u->nodes[idx], &r->u->nodes[idx + 1],
                (size_t)(r->u->nnodes - idx - 1) * sizeof(pep_node_t));
        r->u->nnodes--;
    }
    return pep_reply_wb(r, w, NULL);
}

/* The last item of n to jid with a delay (XEP-0163 §4.3.4: to new
 * subscribers; XEP-0060 §6.1.7), queued on w. */
static void
pep_send_last_to(pep_req_t *r, const pep_node_t *n, const char *jid,
                 pep_wb_t *w)
{
    roost_stanza_t *msg, *items;

    if (n->nitems == 0 || n->slpi == PEP_SLPI_NEVER)
        return;
    msg = pep_event_new(r->m, r->owner_bare, "items", n->name, &items);
    pep_add_item_el(items, &n->items[n->nitems - 1]);
    pep_add_delay(r->m, msg, n->items[n->nitems - 1].when);
    pep_send_copy(r->m, msg, jid, w);
    roost_stanza_unref(msg);
}

/* The 'jid' of a subscribe/unsubscribe request, prepared (roost_jid_free),
 * or NULL when missing or malformed. */
static roost_jid_t *
pep_req_jid(roost_stanza_t *req)
{
    const char *jid = roost_stanza_attr(req, "jid");

    return jid != NULL ? roost_jid_new(jid) : NULL;
}

static const char *
pep_jid_str(const roost_jid_t *j)
{
    return roost_jid_resource(j) != NULL ? roost_jid_full(j)
                                         : roost_jid_bare(j);
}

/* §6.1 subscribe (XEP-0163 §3: a PEP service must support it). */
static roost_verdict_t
pep_subscribe(pep_req_t *r, roost_stanza_t *req)
{
    const char *node = roost_stanza_attr(req, "node");
    roost_stanza_err_t cond = ROOST_SE_NONE;
    const char *app = NULL;
    roost_stanza_t *res, *e;
    roost_jid_t *j;
    pep_node_t *n;
    pep_wb_t *w;
    const char *jid;

    if (node == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    /* §6.1.3.1: the subscribed JID must be the requester's */
    if ((j = pep_req_jid(req)) == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "invalid-jid");
    if (!roost_jid_bare_eq(j, r->ev->from)) {
        roost_jid_free(j);
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "invalid-jid");
    }
    if ((n = pep_node_find(r->u, node)) == NULL) { /* §6.1.3.12 */
        roost_jid_free(j);
        return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    }
    /* §6.1.3.2-4, §6.1.3.8: access model and outcasts */
    if (!pep_may_see(r->m, r->user, r->owner_bare, n, r->from_bare, &cond,
                     &app)) {
        roost_jid_free(j);
        return pep_error(r->ev, cond, app);
    }
    if (r->u->broken) {
        roost_jid_free(j);
        return pep_error(r->ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }
    jid = pep_jid_str(j);
    w = pep_wb_new(r->ev, r->user);
    /* §6.1.6: no multiple subscriptions, a repeated request gets the
     * current state */
    if (!strv_has(n->subs, jid)) {
        strv_add(&n->subs, jid);
        pep_wb_node(w, n);
    }
    pep_send_last_to(r, n, jid, w);
    res = roost_stanza_new(PEP_NS, "pubsub");
    e = roost_stanza_add_child(res, NULL, "subscription");
    roost_stanza_set_attr(e, "node", node);
    roost_stanza_set_attr(e, "jid", jid);
    roost_stanza_set_attr(e, "subscription", "subscribed");
    roost_jid_free(j);
    return pep_reply_wb(r, w, res);
}

/* §6.2 unsubscribe */
static roost_verdict_t
pep_unsubscribe(pep_req_t *r, roost_stanza_t *req)
{
    const char *node = roost_stanza_attr(req, "node");
    roost_jid_t *j;
    pep_node_t *n;
    pep_wb_t *w;

    if (node == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
    if ((j = pep_req_jid(req)) == NULL)
        return pep_error(r->ev, ROOST_SE_BAD_REQUEST, "invalid-jid");
    if (!roost_jid_bare_eq(j, r->ev->from)) { /* §6.2.3.3 */
        roost_jid_free(j);
        return pep_error(r->ev, ROOST_SE_FORBIDDEN, NULL);
    }
    if ((n = pep_node_find(r->u, node)) == NULL) { /* §6.2.3.4 */
        roost_jid_free(j);
        return pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    }
    if (!strv_remove(n->subs, pep_jid_str(j))) { /* §6.2.3.2 */
        roost_jid_free(j);
        return pep_error(r->ev, ROOST_SE_UNEXPECTED_REQUEST, "not-subscribed");
    }
    roost_jid_free(j);
    w = pep_wb_new(r->ev, r->user);
    pep_wb_node(w, n);
    return pep_reply_wb(r, w, NULL);
}

/* Drops every explicit subscription of bare's JIDs to n. */
static void
pep_subs_drop_bare(pep_node_t *n, const char *bare)
{
    for (size_t i = 0; n->subs != NULL && n->subs[i] != NULL;)
        if (jid_of_bare(n->subs[i], bare))
            strv_remove(n->subs, n->subs[i]);
        else
            i++;
}

/* An owner's modification request: the node's entity list (§8.8.2,
 * §8.9.2).  Returns n, or NULL after answering an error. */
static pep_node_t *
pep_owner_node(pep_req_t *r, roost_stanza_t *req)
{
    const char *node = roost_stanza_attr(req, "node");
    pep_node_t *n;

    if (node == NULL) {
        pep_error(r->ev, ROOST_SE_BAD_REQUEST, "nodeid-required");
        return NULL;
    }
    if ((n = pep_node_find(r->u, node)) == NULL) {
        pep_error(r->ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
        return NULL;
    }
    return n;
}

/* The answer to a modification: a result, or (§8.8.2.4, §8.9.2.4) a
 * not-acceptable error carrying the entries that failed, each with its
 * unchanged state.  Sent once the valid changes are stored. */
static roost_verdict_t
pep_owner_modified(pep_req_t *r, pep_wb_t *w, roost_stanza_t *failed)
{
    if (failed == NULL)
        return pep_reply_wb(r, w, NULL);
    w->reply = roost_stanza_error(r->ev->stanza, ROOST_SE_NOT_ACCEPTABLE, NULL);
    roost_stanza_add_copy(w->reply, failed);
    roost_stanza_unref(failed);
    pep_wb_submit(w);
    return ROOST_HANDLED;
}

/* §8.8.2 the owner modifies subscriptions: subscribed or none. */
static roost_verdict_t
pep_owner_subscriptions_set(pep_req_t *r, roost_stanza_t *req)
{
    pep_node_t *n = pep_owner_node(r, req);
    roost_stanza_t *failed = NULL, *fl = NULL;
    pep_wb_t *w;

    if (n == NULL)
        return ROOST_HANDLED;
    w = pep_wb_new(r->ev, r->user);
    for (roost_stanza_t *c = roost_stanza_first_child(req); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *state = roost_stanza_attr(c, "subscription");
        roost_jid_t *j;
        const char *jid;

        if (strcmp(roost_stanza_name(c), "subscription") != 0)
            continue;
        j = pep_req_jid(c);
        jid = j != NULL ? pep_jid_str(j) : NULL;
        if (j != NULL && state == NULL) {
            /* §8.8.2.1: no 'subscription', no change */
        } else if (j != NULL && strcmp(state, "none") == 0) {
            strv_remove(n->subs, jid); /* §8.8.3 */
        } else if (j != NULL && strcmp(state, "subscribed") == 0) {
            if (!strv_has(n->subs, jid))
                strv_add(&n->subs, jid);
        } else {
            roost_stanza_t *e;
            const char *cur = "none";

            if (failed == NULL) {
                failed = roost_stanza_new(PEP_NS_OWNER, "pubsub");
                fl = roost_stanza_add_child(failed, NULL, "subscriptions");
                roost_stanza_set_attr(fl, "node", n->name);
            }
            e = roost_stanza_add_child(fl, NULL, "subscription");
            if (roost_stanza_attr(c, "jid") != NULL)
                roost_stanza_set_attr(e, "jid", roost_stanza_attr(c, "jid"));
            if (jid != NULL && strv_has(n->subs, jid))
                cur = "subscribed";
            roost_stanza_set_attr(e, "subscription", cur);
        }
        roost_jid_free(j);
    }
    pep_wb_node(w, n);
    return pep_owner_modified(r, w, failed);
}

/* §8.9.1 the owner retrieves the affiliations of a node. */
static roost_verdict_t
pep_owner_affiliations(pep_req_t *r, roost_stanza_t *req)
{
    pep_node_t *n = pep_owner_node(r, req);
    roost_stanza_t *res, *affs, *a;
    roost_verdict_t v;

    if (n == NULL)
        return ROOST_HANDLED;
    res = roost_stanza_new(PEP_NS_OWNER, "pubsub");
    affs = roost_stanza_add_child(res, NULL, "affiliations");
    roost_stanza_set_attr(affs, "node", n->name);
    a = roost_stanza_add_child(affs, NULL, "affiliation");
    roost_stanza_set_attr(a, "jid", r->owner_bare);
    roost_stanza_set_attr(a, "affiliation", "owner");
    for (int i = 0; i < n->naffs; i++) {
        a = roost_stanza_add_child(affs, NULL, "affiliation");
        roost_stanza_set_attr(a, "jid", n->affs[i].jid);
        roost_stanza_set_attr(a, "affiliation", pep_aff_names[n->affs[i].aff]);
    }
    v = roost_reply(r->ev, res);
    roost_stanza_unref(res);
    return v;
}

/* §8.9.2 the owner modifies affiliations.  The account stays the node's
 * only owner: changing its affiliation, or making another JID an owner,
 * fails (§8.9.2.4 "MUST NOT be allowed if there is only one owner"). */
static roost_verdict_t
pep_owner_affiliations_set(pep_req_t *r, roost_stanza_t *req)
{
    pep_node_t *n = pep_owner_node(r, req);
    roost_stanza_t *failed = NULL, *fl = NULL;
    strv_t seen = NULL;
    pep_wb_t *w;

    if (n == NULL)
        return ROOST_HANDLED;
    /* §8.9.2.4: one element per entity, or bad-request */
    for (roost_stanza_t *c = roost_stanza_first_child(req); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        roost_jid_t *j;

        if (strcmp(roost_stanza_name(c), "affiliation") != 0 ||
            (j = pep_req_jid(c)) == NULL)
            continue;
        if (strv_has(seen, roost_jid_bare(j))) {
            roost_jid_free(j);
            strv_free(seen);
            return pep_error(r->ev, ROOST_SE_BAD_REQUEST, NULL);
        }
        strv_add(&seen, roost_jid_bare(j));
        roost_jid_free(j);
    }
    strv_free(seen);
    w = pep_wb_new(r->ev, r->user);
    for (roost_stanza_t *c = roost_stanza_first_child(req); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *name = roost_stanza_attr(c, "affiliation");
        int aff = name_index(pep_aff_names, name);
        roost_jid_t *j;
        int ok, own;

        if (strcmp(roost_stanza_name(c), "affiliation") != 0)
            continue;
        j = pep_req_jid(c);
        /* affiliations are of bare JIDs (§4.1) */
        ok = j != NULL && roost_jid_resource(j) == NULL;
        own = ok && pep_is_owner(r->owner_bare, roost_jid_bare(j));
        if (ok && name == NULL) {
            /* §8.9.2.1: no 'affiliation', no change */
        } else if (ok && !own && aff >= 0 && aff != PEP_AFF_OWNER) {
            pep_aff_set(n, roost_jid_bare(j), aff);
            if (aff == PEP_AFF_OUTCAST) /* §4.1: outcasts have none */
                pep_subs_drop_bare(n, roost_jid_bare(j));
        } else if (!(own && aff == PEP_AFF_OWNER)) {
            roost_stanza_t *e;

            if (failed == NULL) {
                failed = roost_stanza_new(PEP_NS_OWNER, "pubsub");
                fl = roost_stanza_add_child(failed, NULL, "affiliations");
                roost_stanza_set_attr(fl, "node", n->name);
            }
            e = roost_stanza_add_child(fl, NULL, "affiliation");
            if (roost_stanza_attr(c, "jid") != NULL)
                roost_stanza_set_attr(e, "jid", roost_stanza_attr(c, "jid"));
            roost_stanza_set_attr(
                e, "affiliation",
                own ? "owner"
                    : pep_aff_names[j != NULL ? pep_aff_of(n, roost_jid_bare(j))
                                              : PEP_AFF_NONE]);
        }
        roost_jid_free(j);
    }
    pep_wb_node(w, n);
    return pep_owner_modified(r, w, failed);
}

/* Any pubsub IQ get/set to an account's bare JID. */
static roost_verdict_t
pep_iq(const roost_ev_t *ev)
{
    roost_stanza_t *pubsub = roost_stanza_first_child(ev->stanza), *act = NULL;
    const char *ns = pubsub ? roost_stanza_ns(pubsub) : NULL;
    const char *type = roost_stanza_attr(ev->stanza, "type");
    int owner_ns, set = type_is(type, "set");
    pep_req_t r;
    char *owner_bare;
    size_t n;
    roost_verdict_t v;

    if (ns == NULL || strcmp(roost_stanza_name(pubsub), "pubsub") != 0)
        return ROOST_PASS;
    owner_ns = strcmp(ns, PEP_NS_OWNER) == 0;
    if (!owner_ns && strcmp(ns, PEP_NS) != 0)
        return ROOST_PASS;
    memset(&r, 0, sizeof(r));
    r.ev = ev;
    r.m = ev->mod;
    r.user = roost_jid_node(ev->to);
    r.from_bare = roost_jid_bare(ev->from);
    r.owner = roost_jid_bare_eq(ev->from, ev->to);
    r.u = pep_user(ev->mod, r.user);
    if (r.u == NULL)
        return pep_error(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    n = strlen(r.user) + strlen(roost_mod_host(ev->mod)) + 2;
    owner_bare = roost_xmalloc(n);
    snprintf(owner_bare, n, "%s@%s", r.user, roost_mod_host(ev->mod));
    r.owner_bare = owner_bare;
    /* The action: the first child, except publish-options/configure that
     * go with publish/create. */
    for (roost_stanza_t *c = roost_stanza_first_child(pubsub); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *name = roost_stanza_name(c);

        if (strcmp(name, "publish-options") == 0 ||
            (!owner_ns && strcmp(name, "configure") == 0))
            continue;
        act = c;
        break;
    }
    if (act == NULL) {
        v = pep_error(ev, ROOST_SE_BAD_REQUEST, NULL);
    } else if (owner_ns) {
        const char *name = roost_stanza_name(act);

        if (!r.owner)
            v = pep_error(ev, ROOST_SE_FORBIDDEN, NULL);
        else if (strcmp(name, "configure") == 0)
            v = pep_configure(&r, act, set);
        else if (strcmp(name, "delete") == 0 && set)
            v = pep_delete(&r, act, 0);
        else if (strcmp(name, "purge") == 0 && set)
            v = pep_delete(&r, act, 1);
        else if (strcmp(name, "subscriptions") == 0 && !set)
            v = pep_owner_subscriptions(&r, act);
        else if (strcmp(name, "subscriptions") == 0)
            v = pep_owner_subscriptions_set(&r, act);
        else if (strcmp(name, "affiliations") == 0 && set)
            v = pep_owner_affiliations_set(&r, act);
        else if (strcmp(name, "affiliations") == 0)
            v = pep_owner_affiliations(&r, act);
        else if (strcmp(name, "default") == 0)
            v = pep_unsupported(ev, "retrieve-default");
        else
            v = pep_error(ev, ROOST_SE_BAD_REQUEST, NULL);
    } else {
        const char *name = roost_stanza_name(act);

        if (set && strcmp(name, "publish") == 0)
            v = pep_publish(&r, pubsub, act);
        else if (set && strcmp(name, "retract") == 0)
            v = pep_retract(&r, act);
        else if (set && strcmp(name, "create") == 0)
            v = pep_create(&r, pubsub, act);
        else if (!set && strcmp(name, "items") == 0)
            v = pep_items(&r, act);
        else if (!set && strcmp(name, "affiliations") == 0)
            v = pep_affiliations(&r, act);
        else if (!set && strcmp(name, "subscriptions") == 0)
            v = pep_subscriptions(&r, act);
        else if (set && strcmp(name, "subscribe") == 0)
            v = pep_subscribe(&r, act);
        else if (set && strcmp(name, "unsubscribe") == 0)
            v = pep_unsubscribe(&r, act);
        else if (strcmp(name, "options") == 0)
            v = pep_unsupported(ev, "subscription-options");
        else
            v = pep_error(ev, ROOST_SE_BAD_REQUEST, NULL);
    }
    roost_free(owner_bare);
    return v;
}

/* pubsub get/set by the owner (no 'to' or own bare JID) and to the host. */
static roost_verdict_t
pep_iq_own(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    if (roost_jid_node(ev->to) == NULL)
        return ROOST_PASS; /* no pubsub service at the domain */
    return pep_iq(ev);
}

/* Disco node listing (XEP-0060 §5.2, §5.3) at an account's bare JID. */
static roost_verdict_t
pep_disco(const roost_ev_t *ev, roost_stanza_t *q, int info)
{
    const char *user = roost_jid_node(ev->to);
    const char *qnode = roost_stanza_attr(q, "node");
    pep_user_t *u = pep_user(ev->mod, user);
    const char *from_bare = roost_jid_bare(ev->from);
    const char *owner_bare = roost_jid_bare(ev->to);
    const roost_roster_item_t *it;
    roost_stanza_t *res;
    roost_verdict_t v;

    if (u == NULL)
        return ROOST_PASS;
    /* The same visibility as mod_disco: the owner and contacts
     * subscribed to their presence; anyone else gets mod_disco's answer. */
    if (!roost_jid_bare_eq(ev->from, ev->to)) {
        it = roost_roster_item(ev->mod, user, from_bare);
        if (it == NULL || it->hidden ||
            (it->sub != ROOST_SUB_FROM && it->sub != ROOST_SUB_BOTH))
            return ROOST_PASS;
    }
    if (qnode != NULL && qnode[0] != '\0') {
        pep_node_t *n = pep_node_find(u, qnode);
        roost_stanza_err_t cond;
        const char *app;

        if (n == NULL ||
            !pep_may_see(ev->mod, user, owner_bare, n, from_bare, &cond, &app))
            return ROOST_PASS; /* mod_disco: item-not-found */
        res = roost_stanza_new(
            info ? ROOST_NS_DISCO_INFO : ROOST_NS_DISCO_ITEMS, "query");
        roost_stanza_set_attr(res, "node", qnode);
        if (info) {
            roost_stanza_t *e = roost_stanza_add_child(res, NULL, "identity");

            roost_stanza_set_attr(e, "category", "pubsub");
            roost_stanza_set_attr(e, "type", "leaf");
            e = roost_stanza_add_child(res, NULL, "feature");
            roost_stanza_set_attr(e, "var", PEP_NS);
        } else {
            for (int i = 0; i < n->nitems; i++) {
                roost_stanza_t *e = roost_stanza_add_child(res, NULL, "item");

                roost_stanza_set_attr(e, "jid", owner_bare);
                roost_stanza_set_attr(e, "name", n->items[i].id);
            }
        }
    } else if (!info) {
        res = roost_stanza_new(ROOST_NS_DISCO_ITEMS, "query");
        for (int i = 0; i < u->nnodes; i++) {
            roost_stanza_err_t cond;
            const char *app;
            roost_stanza_t *e;

            if (!pep_may_see(ev->mod, user, owner_bare, &u->nodes[i], from_bare,
                             &cond, &app))
                continue;
            e = roost_stanza_add_child(res, NULL, "item");
            roost_stanza_set_attr(e, "jid", owner_bare);
            roost_stanza_set_attr(e, "node", u->nodes[i].name);
        }
    } else {
        return ROOST_PASS; /* mod_disco: the account's disco#info */
    }
    v = roost_reply(ev, res);
    roost_stanza_unref(res);
    return v;
}

/* IQs to an account's bare JID that no IQ handler took: pubsub requests
 * from others, answers to our caps queries, disco of nodes. */
static roost_verdict_t
pep_iq_bare(const roost_ev_t *ev, void *arg)
{
    const char *type = roost_stanza_attr(ev->stanza, "type");
    const char *id = roost_stanza_attr(ev->stanza, "id");
    roost_stanza_t *q;

    (void)arg;
    if (type_is(type, "result") || type_is(type, "error")) {
        pep_mod_t *pm = pep_data(ev->mod);
        pep_pending_t *p = id ? pep_pending_find(pm, id) : NULL;

        if (p == NULL || strcmp(p->jid, roost_jid_full(ev->from)) != 0 ||
            strcmp(p->user, roost_jid_node(ev->to)) != 0)
            return ROOST_PASS;
        return pep_caps_result(ev, p, (int)(p - pm->pend));
    }
    if (!type_is(type, "get") && !type_is(type, "set"))
        return ROOST_PASS;
    q = roost_stanza_first_child(ev->stanza);
    if (q != NULL && roost_stanza_ns(q) != NULL &&
        strcmp(roost_stanza_ns(q), PEP_NS_PRIVATE) == 0 &&
        strcmp(roost_stanza_name(q), "query") == 0)
        return roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL); /* XEP-0049 §3 */
    if (q != NULL && type_is(type, "get") &&
        strcmp(roost_stanza_name(q), "query") == 0 &&
        roost_stanza_ns(q) != NULL) {
        if (strcmp(roost_stanza_ns(q), ROOST_NS_DISCO_ITEMS) == 0)
            return pep_disco(ev, q, 0);
        if (strcmp(roost_stanza_ns(q), ROOST_NS_DISCO_INFO) == 0)
            return pep_disco(ev, q, 1);
    }
    return pep_iq(ev);
}

/* --------------------------------------------- XEP-0049 private XML */

typedef struct {
    roost_mod_t *m;
    roost_stanza_t *iq;
    char *user, *key;
    char *val;
    size_t len;
    roost_stanza_t *query; /* get: the requested element (a copy) */
} pep_priv_job_t;

static void
pep_priv_free(pep_priv_job_t *j)
{
    roost_stanza_unref(j->iq);
    roost_stanza_unref(j->query);
    roost_free(j->user);
    roost_free(j->key);
    roost_free(j->val);
    roost_free(j);
}

static int
pep_priv_get_work(void *arg)
{
    pep_priv_job_t *j = arg;

    return roost_store_get(pep_data(j->m)->priv, j->user, j->key, &j->val,
                           &j->len);
}

static void
pep_priv_get_done(void *arg, int rc)
{
    pep_priv_job_t *j = arg;
    roost_stanza_t *res, *q, *stored = NULL;

    if (rc < 0 && rc != -ROOST_ENOTFOUND) {
        pep_error_st(j->m, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL, NULL);
        pep_priv_free(j);
        return;
    }
    if (rc == 0)
        stored = roost_stanza_parse(j->val, j->len);
    res = roost_stanza_reply(j->iq);
    q = roost_stanza_add_child(res, PEP_NS_PRIVATE, "query");
    /* §3: the stored element, or the requested (empty) one */
    roost_stanza_add_copy(q, stored != NULL ? stored : j->query);
    roost_send(j->m, res);
    roost_stanza_unref(res);
    roost_stanza_unref(stored);
    pep_priv_free(j);
}

static int
pep_priv_set_work(void *arg)
{
    pep_priv_job_t *j = arg;
    pep_mod_t *pm = pep_data(j->m);

    if (j->val == NULL)
        return roost_store_delete(pm->priv, j->user, j->key);
    return roost_store_set(pm->priv, j->user, j->key, j->val, j->len);
}

static void
pep_priv_set_done(void *arg, int rc)
{
    pep_priv_job_t *j = arg;

    if (rc < 0) {
        roost_log(j->m, ROOST_LOG_ERROR, "storing private XML of %s: %s",
                  j->user, roost_strerror(rc));
        pep_error_st(j->m, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL, NULL);
    } else {
        roost_stanza_t *res = roost_stanza_reply(j->iq);

        roost_send(j->m, res);
        roost_stanza_unref(res);
    }
    pep_priv_free(j);
}

/* The store key of an element: "{namespace}name". */
static char *
pep_priv_key(roost_stanza_t *el)
{
    const char *ns = roost_stanza_ns(el), *name = roost_stanza_name(el);
    size_t n = strlen(ns) + strlen(name) + 3;
    char *k = roost_xmalloc(n);

    snprintf(k, n, "{%s}%s", ns, name);
    return k;
}

/* XEP-0411 §3: XEP-0048 bookmarks through private XML are the XEP-0402
 * node's. */
static roost_verdict_t
pep_bm_private(const roost_ev_t *ev, roost_stanza_t *el, int set)
{
    const char *user = roost_jid_node(ev->to);
    pep_user_t *u = pep_user(ev->mod, user);
    roost_stanza_t *res, *st;
    roost_stanza_err_t cond;
    roost_verdict_t v;
    char *owner_bare;
    size_t n;
    pep_wb_t *w;

    if (u == NULL || u->broken)
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    if (!set) {
        res = roost_stanza_new(PEP_NS_PRIVATE, "query");
        st = pep_bm_legacy(pep_node_find(u, PEP_NS_BM2));
        roost_stanza_add_copy(res, st);
        roost_stanza_unref(st);
        v = roost_reply(ev, res);
        roost_stanza_unref(res);
        return v;
    }
    /* the same limit as other private XML */
    roost_free(roost_stanza_serialize(el, NULL, &n));
    if ((int64_t)n > pep_conf(ev->mod)->max_private)
        return roost_bounce(ev, ROOST_SE_NOT_ACCEPTABLE, "too big");
    n = strlen(user) + strlen(roost_mod_host(ev->mod)) + 2;
    owner_bare = roost_xmalloc(n);
    snprintf(owner_bare, n, "%s@%s", user, roost_mod_host(ev->mod));
    w = pep_wb_new(ev, user);
    cond = pep_bm_from_legacy(ev->mod, user, owner_bare, u, el, w);
    roost_free(owner_bare);
    if (cond != ROOST_SE_NONE) {
        pep_wb_done(w, 0); /* nothing queued */
        return roost_bounce(ev, cond, NULL);
    }
    w->reply = roost_stanza_reply(ev->stanza);
    pep_wb_submit(w);
    return ROOST_HANDLED;
}

static roost_verdict_t
pep_private(const roost_ev_t *ev, int set)
{
    roost_stanza_t *q = roost_stanza_first_child(ev->stanza), *el = NULL;
    int count = 0;
    pep_priv_job_t *j;
    const char *ns;

    /* §3: only one's own storage; the server has none of its own */
    if (roost_jid_node(ev->to) == NULL || !roost_jid_bare_eq(ev->from, ev->to))
        return roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    if (pep_data(ev->mod)->priv == NULL)
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    for (roost_stanza_t *c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        el = c;
        count++;
    }
    /* §3: exactly one child element, in a namespace of its own (not
     * jabber:iq:private, jabber:client or none) */
    if (count != 1)
        return roost_bounce(ev, ROOST_SE_NOT_ACCEPTABLE, NULL);
    ns = roost_stanza_ns(el);
    if (ns == NULL || ns[0] == '\0' || strcmp(ns, PEP_NS_PRIVATE) == 0 ||
        strcmp(ns, ROOST_NS_CLIENT) == 0 || strcmp(ns, ROOST_NS_SERVER) == 0)
        return roost_bounce(ev, ROOST_SE_NOT_ACCEPTABLE, NULL);
    if (strcmp(ns, PEP_NS_BM) == 0 &&
        strcmp(roost_stanza_name(el), "storage") == 0)
        return pep_bm_private(ev, el, set);
    j = roost_xcalloc(1, sizeof(*j)); /* pep_priv_free */
    j->m = ev->mod;
    j->iq = roost_stanza_ref(ev->stanza);
    j->user = roost_xstrdup(roost_jid_node(ev->to));
    j->key = pep_priv_key(el);
    if (!set) {
        j->query = roost_stanza_copy(el);
        roost_store_async(ev->mod, pep_priv_get_work, pep_priv_get_done, j);
        return ROOST_HANDLED;
    }
    if (roost_stanza_first_child(el) != NULL ||
        roost_stanza_text(el)[0] != '\0' || roost_stanza_attr_count(el) > 0) {
        j->val = roost_stanza_serialize(el, NULL, &j->len);
        if ((int64_t)j->len > pep_conf(ev->mod)->max_private) {
            pep_priv_free(j);
            return roost_bounce(ev, ROOST_SE_NOT_ACCEPTABLE, "too big");
        }
    } /* else: an empty element clears what was stored */
    roost_store_async(ev->mod, pep_priv_set_work, pep_priv_set_done, j);
    return ROOST_HANDLED;
}

static roost_verdict_t
pep_private_get(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    return pep_private(ev, 0);
}

static roost_verdict_t
pep_private_set(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    return pep_private(ev, 1);
}

/* ------------------------------------------------------- module */

static const char *const pep_features[] = {"access-open",
                                           "access-presence",
                                           "access-roster",
                                           "access-whitelist",
                                           "auto-create",
                                           "auto-subscribe",
                                           "config-node",
                                           "create-and-configure",
                                           "create-nodes",
                                           "delete-items",
                                           "delete-nodes",
                                           "filtered-notifications",
                                           "item-ids",
                                           "last-published",
                                           "manage-subscriptions",
                                           "member-affiliation",
                                           "modify-affiliations",
                                           "outcast-affiliation",
                                           "persistent-items",
                                           "presence-notifications",
                                           "presence-subscribe",
                                           "publish",
                                           "publish-options",
                                           "publish-only-affiliation",
                                           "publisher-affiliation",
                                           "purge-nodes",
                                           "retrieve-affiliations",
                                           "retrieve-items",
                                           "retrieve-subscriptions",
                                           "subscribe",
                                           NULL};

static const roost_user_state_t pep_user_ops = {
    .load = pep_user_load,
    .free = pep_user_free,
};

static int
pep_load(roost_mod_t *m)
{
    pep_mod_t *pm = roost_xcalloc(1, sizeof(*pm)); /* pep_unload */
    int rc;

    *roost_mod_data(m) = pm;
    pm->nodes = roost_store_open(m, "pep_nodes", ROOST_STORE_MAP);
    pm->items = roost_store_open(m, "pep_items", ROOST_STORE_MAP);
    pm->priv = roost_store_open(m, "private", ROOST_STORE_MAP);
    if (pm->nodes == NULL || pm->items == NULL || pm->priv == NULL)
        return -ROOST_ESTORAGE;
    roost_add_account_identity(m, "pubsub", "pep", NULL);
    roost_add_account_feature(m, PEP_NS);
    for (int i = 0; pep_features[i] != NULL; i++) {
        char buf[128];

        snprintf(buf, sizeof(buf), "%s#%s", PEP_NS, pep_features[i]);
        roost_add_account_feature(m, buf);
    }
    roost_add_feature(m, PEP_NS_PRIVATE);
    /* XEP-0411 §2; XEP-0402 §5.3 (private XML and PEP XEP-0048) */
    roost_add_account_feature(m, PEP_NS_BMCONV);
    roost_add_account_feature(m, PEP_NS_BM2 "#compat");
    roost_add_account_feature(m, PEP_NS_BM2 "#compat-pep");
    rc = roost_user_state(m, &pep_user_ops);
    if (rc == 0)
        rc = roost_hook_iq(m, PEP_NS, "pubsub", pep_iq_own, pep_iq_own, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, PEP_NS_OWNER, "pubsub", pep_iq_own, pep_iq_own,
                           NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, PEP_NS_PRIVATE, "query", pep_private_get,
                           pep_private_set, NULL);
    /* Before mod_disco (DEFAULT) answers IQs to the bare JID generically:
     * node listings and our caps answers. */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_IQ_BARE, ROOST_PRIO_QUEUE, pep_iq_bare,
                        NULL);
    /* Observers between the filters and delivery: presence that reached
     * the account (privacy lists have had their say). */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_BARE, ROOST_PRIO_QUEUE,
                        pep_presence_in, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_FULL, ROOST_PRIO_QUEUE,
                        pep_presence_in, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_OUT, ROOST_PRIO_QUEUE,
                        pep_presence_out, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_CLOSED, ROOST_PRIO_DEFAULT,
                        pep_session_closed, NULL);
    return rc;
}

static void
pep_unload(roost_mod_t *m)
{
    pep_mod_t *pm = pep_data(m);

    if (pm == NULL)
        return;
    for (int i = 0; i < pm->ncaps; i++) {
        roost_free(pm->caps[i].key);
        strv_free(pm->caps[i].notify);
    }
    roost_free(pm->caps);
    while (pm->npend > 0)
        pep_pending_drop(pm, pm->npend - 1);
    roost_free(pm->pend);
    roost_free(pm);
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(pep) = {
    .abi = ROOST_ABI,
    .name = "pep",
    .opts = pep_opts,
    .conf_size = sizeof(struct pep_conf),
    .load = pep_load,
    .unload = pep_unload,
};
