/* modules/mod_presence.c: presence subscriptions and presence exchange for
 * local accounts (RFC 6121 §3, §4 and Appendix A), and Last Activity of an
 * account (XEP-0012 §5, offline user query).
 *
 * Subscriptions: the state lives in the account's roster (roost/roster.h:
 * sub, ask, pending_in, approved).  Outbound subscription stanzas from a
 * local client are stamped with the user's bare JID (§3.1.2), applied to
 * the user's roster (Appendix A.2) and routed here; inbound ones are
 * applied to the recipient's roster (A.3) and delivered as §3.1.3,
 * §3.1.6, §3.2.3 and §3.3.3 say.  An inbound request the user has not
 * answered is kept as pending_in (on a roster item created for it if need
 * be), which is how it survives the user's absence and a restart; it is
 * delivered again at each initial presence, with the <status/> (and
 * xml:lang) it came with (§3.1.3: kept in memory with the account's state
 * and in the MAP store "subrequest", at most PRES_STATUS_MAX bytes of text
 * per request and PRES_REQS_MAX requests per account; forgotten once the
 * request is answered or withdrawn).  Pre-approvals (§3.4) are
 * supported and advertised as a stream feature.
 *
 * Presence: initial presence sends probes (from the bare JID) to the
 * contacts the user is subscribed to, and the presence to subscribers and
 * to all the user's available resources (§4.2.2); updates and unavailable
 * presence go to subscribers and the user's available resources (§4.4,
 * §4.5), unavailable also to whoever got directed presence from that
 * session (§4.6.3), also when the session closes without saying so.  Each
 * session's last broadcast presence is kept in its session slot (probe
 * answers, §4.3.2); the account's last unavailable presence is kept per
 * user and persisted in the KEYVAL store "lastpresence" (probe answers
 * while offline, with a XEP-0203 delay, and XEP-0012).
 *
 * Inbound presence: to a full JID it reaches that session (directed
 * presence, §4.6); to the bare JID it reaches the available resources
 * (§8.5.2.1.2), from contacts and from others (directed presence;
 * privacy lists can refuse it).
 *
 * Not here: the jabber:iq:roster protocol (mod_roster), privacy lists and
 * blocking (filters at ROOST_PRIO_FILTER), federation, and resending our
 * own unanswered outbound requests.  jabber:iq:last is advertised in the
 * account's disco#info (roost_add_account_feature, answered by mod_disco),
 * not the host's: the host itself does not answer it (server uptime,
 * XEP-0012 "Server and Component Query"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <roost/module.h>
#include <roost/roster.h>
#include <roost/store.h>

#define PRES_NS_DELAY       "urn:xmpp:delay"
#define PRES_NS_LAST        "jabber:iq:last"
#define PRES_NS_PREAPPROVAL "urn:xmpp:features:pre-approval"
/* Private storage form of the last unavailable presence. */
#define PRES_NS_STORE "urn:roost:presence:last"
/* Private storage form of a subscription request awaiting an answer. */
#define PRES_NS_REQ "urn:roost:presence:request"

/* What is kept of a request's <status/> text (all of them together), and
 * how many requests with a status are kept per account; beyond that a
 * request is still kept (pending_in) but without its status. */
#define PRES_STATUS_MAX 1024
#define PRES_REQS_MAX   256

/* Sessions looked up on the stack; more take one heap array. */
#define PRES_STACK_SESSIONS 16

/* Module instance state (one per vhost). */
typedef struct {
    roost_store_t *last; /* KEYVAL "lastpresence", or NULL */
    roost_store_t *reqs; /* MAP "subrequest": contact -> request, or NULL */
} pres_mod_t;

/* Per-session slot: freed in SESSION_CLOSED. */
typedef struct {
    int available;            /* sent available presence, not unavailable */
    roost_stanza_t *presence; /* its last broadcast presence (a reference) */
    char **directed;          /* recipients of directed available presence */
    int ndirected, cap;
} pres_session_t;

/* An inbound subscription request awaiting an answer, as it is delivered
 * again (RFC 6121 §3.1.3): its <status/>es and xml:lang. */
typedef struct pres_req {
    char *contact;            /* bare JID */
    roost_stanza_t *presence; /* <presence type='subscribe'/>, no to/from */
    struct pres_req *next;
} pres_req_t;

/* Per-user state: the account's last unavailable presence, and the
 * requests it has not answered that came with a status. */
typedef struct {
    roost_stanza_t *last; /* a reference, from = the resource's full JID */
    int64_t when;         /* seconds since the epoch */
    pres_req_t *reqs;
    int nreqs;
} pres_user_t;

/* The sessions of one account. */
typedef struct {
    roost_session_t *stack[PRES_STACK_SESSIONS];
    roost_session_t **ss;
    int n;
} pres_sessions_t;

static void
pres_sessions_get(roost_mod_t *m, const char *node, pres_sessions_t *l)
{
    l->ss = l->stack;
    l->n = node != NULL
               ? roost_user_sessions(m, node, l->ss, PRES_STACK_SESSIONS)
               : 0;
    if (l->n > PRES_STACK_SESSIONS) {
        int want = l->n;

        /* Freed by pres_sessions_free. */
        l->ss = roost_xcalloc((size_t)want, sizeof(*l->ss));
        l->n = roost_user_sessions(m, node, l->ss, want);
        if (l->n > want)
            l->n = want;
    }
}

static void
pres_sessions_free(pres_sessions_t *l)
{
    if (l->ss != l->stack)
        roost_free(l->ss);
}

static int
type_is(const char *type, const char *v)
{
    return type != NULL && strcmp(type, v) == 0;
}

static int
is_subscription_type(const char *type)
{
    return type_is(type, "subscribe") || type_is(type, "subscribed") ||
           type_is(type, "unsubscribe") || type_is(type, "unsubscribed");
}

static int
sub_from(roost_sub_t s)
{
    return s == ROOST_SUB_FROM || s == ROOST_SUB_BOTH;
}

static int
sub_to(roost_sub_t s)
{
    return s == ROOST_SUB_TO || s == ROOST_SUB_BOTH;
}

static pres_session_t *
pres_slot(roost_session_t *s, const roost_mod_t *m, int create)
{
    void **slot = roost_session_slot(s, m);

    if (*slot == NULL && create)
        *slot = roost_xcalloc(1, sizeof(pres_session_t)); /* SESSION_CLOSED */
    return *slot;
}

/* The account's per-user state, created on first use; NULL when the
 * account's state is not loaded (no event for it, or not stored). */
static pres_user_t *
pres_user(roost_mod_t *m, const char *user, int create)
{
    void **slot = roost_user_data(m, user);

    if (slot == NULL)
        return NULL;
    if (*slot == NULL && create)
        *slot = roost_xcalloc(1, sizeof(pres_user_t)); /* pres_user_free */
    return *slot;
}

/* --- sending --- */

/* Routes a new <presence/> of type (NULL: available) from -> to. */
static void
pres_send(roost_mod_t *m, const char *type, const char *from, const char *to)
{
    roost_stanza_t *p = roost_stanza_new(ROOST_NS_CLIENT, "presence");

    if (type != NULL)
        roost_stanza_set_attr(p, "type", type);
    roost_stanza_set_attr(p, "from", from);
    roost_stanza_set_attr(p, "to", to);
    roost_send(m, p);
    roost_stanza_unref(p);
}

/* Routes a copy of st with from and to replaced. */
static void
pres_send_copy(roost_mod_t *m, const roost_stanza_t *st, const char *from,
               const char *to)
{
    roost_stanza_t *c = roost_stanza_copy(st);

    if (from != NULL)
        roost_stanza_set_attr(c, "from", from);
    roost_stanza_set_attr(c, "to", to);
    roost_send(m, c);
    roost_stanza_unref(c);
}

/* Delivers a copy of st addressed to s's full JID. */
static void
pres_deliver_to(roost_session_t *s, const roost_stanza_t *st)
{
    roost_stanza_t *c = roost_stanza_copy(st);

    roost_stanza_set_attr(c, "to", roost_jid_full(roost_session_jid(s)));
    roost_session_deliver(s, c);
    roost_stanza_unref(c);
}

/* Delivers st (as is) to the user's available resources, or with
 * interested set to those that requested the roster (RFC 6121 §2.1.6).
 * Returns how many got it. */
static int
pres_deliver_user(roost_mod_t *m, const char *user, roost_stanza_t *st,
                  int interested)
{
    pres_sessions_t l;
    int sent = 0;

    pres_sessions_get(m, user, &l);
    for (int i = 0; i < l.n; i++) {
        if (interested ? !roost_session_roster_requested(l.ss[i])
                       : !roost_session_available(l.ss[i]))
            continue;
        if (roost_session_deliver(l.ss[i], st) == 0)
            sent++;
    }
    pres_sessions_free(&l);
    return sent;
}

/* Sends to `to` the current presence of each of the user's available
 * resources (RFC 6121 §3.1.5, §4.3.2), or with unavailable set an
 * unavailable presence from each (§3.2.2, §3.3.3).  Returns how many. */
static int
pres_send_resources(roost_mod_t *m, const char *user, const char *to,
                    int unavailable)
{
    pres_sessions_t l;
    int sent = 0;

    pres_sessions_get(m, user, &l);
    for (int i = 0; i < l.n; i++) {
        pres_session_t *ps = pres_slot(l.ss[i], m, 0);
        const char *full = roost_jid_full(roost_session_jid(l.ss[i]));

        if (ps == NULL || !ps->available || ps->presence == NULL)
            continue;
        if (unavailable)
            pres_send(m, "unavailable", full, to);
        else
            pres_send_copy(m, ps->presence, full, to);
        sent++;
    }
    pres_sessions_free(&l);
    return sent;
}

/* --- requests awaiting an answer (RFC 6121 §3.1.3) --- */

/* Storage job for one kept request: val NULL deletes it. */
typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user, *key, *val;
    size_t len;
} pres_req_write_t;

static int
pres_req_write_work(void *arg)
{
    pres_req_write_t *w = arg;

    if (w->val == NULL)
        return roost_store_delete(w->store, w->user, w->key);
    return roost_store_set(w->store, w->user, w->key, w->val, w->len);
}

static void
pres_req_write_done(void *arg, int rc)
{
    pres_req_write_t *w = arg;

    if (rc != 0)
        roost_log(w->m, ROOST_LOG_WARN,
                  "storing the subscription request of %s to %s: %s", w->key,
                  w->user, roost_strerror(rc));
    roost_free(w->user);
    roost_free(w->key);
    roost_free(w->val);
    roost_free(w);
}

/* Writes (presence) or deletes (NULL) the stored request of contact. */
static void
pres_req_write(roost_mod_t *m, const char *user, const char *contact,
               const roost_stanza_t *presence)
{
    pres_mod_t *pm = *roost_mod_data(m);
    pres_req_write_t *w;

    if (pm->reqs == NULL)
        return;
    w = roost_xcalloc(1, sizeof(*w)); /* freed by pres_req_write_done */
    w->m = m;
    w->store = pm->reqs;
    w->user = roost_xstrdup(user);
    w->key = roost_xstrdup(contact);
    if (presence != NULL) {
        roost_stanza_t *doc = roost_stanza_new(PRES_NS_REQ, "request");

        roost_stanza_add_copy(doc, presence);
        w->val = roost_stanza_serialize(doc, NULL, &w->len);
        roost_stanza_unref(doc);
    }
    roost_store_async(m, pres_req_write_work, pres_req_write_done, w);
}

static void
pres_req_free(pres_req_t *r)
{
    roost_free(r->contact);
    roost_stanza_unref(r->presence);
    roost_free(r);
}

static pres_req_t **
pres_req_find(pres_user_t *pu, const char *contact)
{
    pres_req_t **pp;

    for (pp = &pu->reqs; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->contact, contact) == 0)
            break;
    return pp;
}

/* Forgets the kept request of contact (memory and storage), if any. */
static void
pres_req_drop(roost_mod_t *m, const char *user, const char *contact)
{
    pres_user_t *pu = pres_user(m, user, 0);
    pres_req_t **pp, *r;

    if (pu == NULL || *(pp = pres_req_find(pu, contact)) == NULL)
        return;
    r = *pp;
    *pp = r->next;
    pu->nreqs--;
    pres_req_write(m, user, r->contact, NULL);
    pres_req_free(r);
}

/* UTF-8 text cut to at most max bytes, on a character boundary. */
static size_t
pres_utf8_cut(const char *t, size_t len, size_t max)
{
    if (len <= max)
        return len;
    len = max;
    while (len > 0 && ((unsigned char)t[len] & 0xC0) == 0x80)
        len--;
    return len;
}

/* What is kept of a subscribe request st: a new <presence
 * type='subscribe'/> with st's xml:lang and its <status/>es (with theirs),
 * PRES_STATUS_MAX bytes of text in all; NULL when st has no status. */
static roost_stanza_t *
pres_req_keep(const roost_stanza_t *st)
{
    roost_stanza_t *p = NULL;
    size_t budget = PRES_STATUS_MAX;

    for (roost_stanza_t *c = roost_stanza_first_child(st);
         c != NULL && budget > 0; c = roost_stanza_next_sibling(c)) {
        const char *ns = roost_stanza_ns(c), *text, *lang;
        roost_stanza_t *k;
        size_t len;

        if (strcmp(roost_stanza_name(c), "status") != 0 || ns == NULL ||
            strcmp(ns, ROOST_NS_CLIENT) != 0 ||
            (text = roost_stanza_text(c)) == NULL || *text == '\0')
            continue;
        if (p == NULL) {
            p = roost_stanza_new(ROOST_NS_CLIENT, "presence");
            roost_stanza_set_attr(p, "type", "subscribe");
            if ((lang = roost_stanza_attr(st, "xml:lang")) != NULL)
                roost_stanza_set_attr(p, "xml:lang", lang);
        }
        k = roost_stanza_add_child(p, NULL, "status");
        if ((lang = roost_stanza_attr(c, "xml:lang")) != NULL)
            roost_stanza_set_attr(k, "xml:lang", lang);
        len = pres_utf8_cut(text, strlen(text), budget);
        roost_stanza_add_text(k, text, len);
        budget -= len;
    }
    return p;
}

/* A new inbound request st from contact awaits the user's answer: keeps
 * its status (in memory and in "subrequest") to go with it when it is
 * delivered again. */
static void
pres_req_set(roost_mod_t *m, const char *user, const char *contact,
             const roost_stanza_t *st)
{
    roost_stanza_t *p = pres_req_keep(st);
    pres_user_t *pu;
    pres_req_t *r;

    pres_req_drop(m, user, contact);
    if (p == NULL)
        return;
    pu = pres_user(m, user, 1);
    if (pu == NULL || pu->nreqs >= PRES_REQS_MAX) {
        roost_stanza_unref(p);
        return; /* the request stays pending, without its status */
    }
    r = roost_xcalloc(1, sizeof(*r)); /* pres_req_drop, pres_user_free */
    r->contact = roost_xstrdup(contact);
    r->presence = p;
    r->next = pu->reqs;
    pu->reqs = r;
    pu->nreqs++;
    pres_req_write(m, user, contact, p);
}

/* --- roster state --- */

/* A working copy of contact's item (or a fresh "None" one).  Strings
 * point into the roster until the next change, which copies them. */
static void
pres_item_init(roost_roster_item_t *it, const roost_roster_item_t *cur,
               const char *contact)
{
    if (cur != NULL) {
        *it = *cur;
        return;
    }
    memset(it, 0, sizeof(*it));
    it->jid = contact;
    it->sub = ROOST_SUB_NONE;
}

/* Stores it when it differs from cur.  An item that would only record
 * an inbound request is hidden (not in the user's roster, RFC 6121
 * Appendix A.1 "None + Pending In"); a hidden item left with no state is
 * removed.  Returns 0 when nothing changed, 1 when only private state
 * changed, 2 when the protocol view changed (a roster push is due). */
static int
pres_item_store(roost_mod_t *m, const char *user,
                const roost_roster_item_t *cur, roost_roster_item_t *it)
{
    int shown = it->sub != ROOST_SUB_NONE || it->ask || it->approved;
    int visible, rc;

    if (cur != NULL && cur->sub == it->sub && !cur->ask == !it->ask &&
        !cur->pending_in == !it->pending_in && !cur->approved == !it->approved)
        return 0;
    if (cur != NULL && cur->pending_in && !it->pending_in)
        pres_req_drop(m, user, it->jid); /* answered or withdrawn */
    if (cur == NULL || cur->hidden) {
        if (!shown && !it->pending_in) {
            if (cur == NULL)
                return 0;
            /* it->jid points into the item being removed. */
            char *jid = roost_xstrdup(it->jid); /* freed below */

            rc = roost_roster_remove(m, user, jid);
            roost_free(jid);
            return rc == 0 ? 1 : 0;
        }
        it->hidden = !shown;
        visible = shown;
    } else {
        visible = cur->sub != it->sub || !cur->ask != !it->ask ||
                  !cur->approved != !it->approved;
    }
    rc = roost_roster_set(m, user, it, 0);
    if (rc != 0) {
        roost_log(m, ROOST_LOG_WARN, "cannot update the roster of %s: %s", user,
                  roost_strerror(rc));
        return 0;
    }
    return visible ? 2 : 1;
}

/* --- outbound subscription stanzas (RFC 6121 §3, Appendix A.2) --- */

static roost_verdict_t
pres_out_subscription(const roost_ev_t *ev, const char *type)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->from);
    const char *ubare = roost_jid_bare(ev->from);
    /* §3.1.2 and A.2: a full JID counts as the bare JID. */
    const char *contact = roost_jid_bare(ev->to);
    const roost_roster_item_t *cur;
    roost_roster_item_t it;
    int route = 1, after = 0; /* after: 1 presence, 2 unavailable */

    if (strcmp(ubare, contact) == 0)
        return ROOST_HANDLED; /* no subscription to oneself */
    cur = roost_roster_item(m, user, contact);
    pres_item_init(&it, cur, contact);
    if (type_is(type, "subscribe")) {
        /* A.2.1: None, None + Pending In and From gain Pending Out. */
        if (!sub_to(it.sub))
            it.ask = 1;
    } else if (type_is(type, "unsubscribe")) {
        /* A.2.3 */
        it.ask = 0;
        if (it.sub == ROOST_SUB_TO)
            it.sub = ROOST_SUB_NONE;
        else if (it.sub == ROOST_SUB_BOTH)
            it.sub = ROOST_SUB_FROM;
    } else if (type_is(type, "subscribed")) {
        if (sub_from(it.sub)) {
            route = 0; /* §3.4: From, Both: silently ignored */
        } else if (it.pending_in) {
            /* A.2.2 / §3.1.5: an approval. */
            it.sub = it.sub == ROOST_SUB_TO ? ROOST_SUB_BOTH : ROOST_SUB_FROM;
            it.pending_in = 0;
            it.approved = 0;
            after = 1;
        } else {
            /* §3.4: None, None + Pending Out, To: a pre-approval, noted
             * and pushed but not routed. */
            it.approved = 1;
            route = 0;
        }
    } else {
        /* unsubscribed, A.2.4 (and it cancels a pre-approval). */
        if (sub_from(it.sub))
            after = 2; /* §3.2.2 */
        it.pending_in = 0;
        it.approved = 0;
        if (it.sub == ROOST_SUB_FROM)
            it.sub = ROOST_SUB_NONE;
        else if (it.sub == ROOST_SUB_BOTH)
            it.sub = ROOST_SUB_TO;
    }
    /* contact is ev's string: it outlives the item's change. */
    if (pres_item_store(m, user, cur, &it) == 2)
        roost_roster_push(m, user, contact);
    if (route)
        pres_send_copy(m, ev->stanza, ubare, contact);
    if (after != 0)
        pres_send_resources(m, user, contact, after == 2);
    return ROOST_HANDLED;
}

/* --- directed presence (RFC 6121 §4.6) --- */

static void
pres_directed_track(const roost_ev_t *ev, int available)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->from);
    const char *contact = roost_jid_bare(ev->to);
    const char *target = roost_jid_full(ev->to);
    const roost_roster_item_t *it;
    pres_session_t *ps;
    int i;

    if (roost_jid_bare_eq(ev->from, ev->to))
        return; /* the user's own resources */
    it = roost_roster_item(m, user, contact);
    if (it != NULL && sub_from(it->sub))
        return; /* §4.6.1: a subscriber gets broadcasts anyway */
    ps = pres_slot(ev->origin, m, 1);
    for (i = 0; i < ps->ndirected; i++)
        if (strcmp(ps->directed[i], target) == 0)
            break;
    if (available && i == ps->ndirected) {
        if (ps->ndirected == ps->cap) {
            ps->cap = ps->cap ? ps->cap * 2 : 4;
            ps->directed =
                roost_xrealloc(ps->directed, (size_t)ps->cap * sizeof(char *));
        }
        ps->directed[ps->ndirected++] = roost_xstrdup(target);
    } else if (!available && i < ps->ndirected) {
        /* §4.6.3: directed unavailable ends it. */
        roost_free(ps->directed[i]);
        ps->directed[i] = ps->directed[--ps->ndirected];
    }
}

/* ROOST_EV_PRE_STANZA: presence with a 'to' from a local client. */
static roost_verdict_t
pres_pre(const roost_ev_t *ev, void *arg)
{
    const char *type;

    if (ev->origin == NULL ||
        roost_stanza_kind(ev->stanza) != ROOST_STANZA_PRESENCE ||
        roost_stanza_attr(ev->stanza, "to") == NULL ||
        roost_jid_node(ev->from) == NULL)
        return ROOST_PASS;
    type = roost_stanza_attr(ev->stanza, "type");
    if (is_subscription_type(type))
        return pres_out_subscription(ev, type);
    if (type == NULL || type_is(type, "unavailable"))
        pres_directed_track(ev, type == NULL);
    return ROOST_PASS; /* the core routes it */
}

/* --- inbound subscription stanzas (RFC 6121 §3, Appendix A.3) --- */

/* A copy of ev's stanza from the contact's bare JID to the user's. */
static roost_stanza_t *
pres_inbound_copy(const roost_ev_t *ev)
{
    roost_stanza_t *c = roost_stanza_copy(ev->stanza);

    roost_stanza_set_attr(c, "from", roost_jid_bare(ev->from));
    roost_stanza_set_attr(c, "to", roost_jid_bare(ev->to));
    return c;
}

static roost_verdict_t
pres_in_subscription(const roost_ev_t *ev, const char *type)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->to);
    const char *ubare = roost_jid_bare(ev->to);
    const char *contact = roost_jid_bare(ev->from);
    const roost_roster_item_t *cur;
    roost_roster_item_t it;
    roost_stanza_t *c;
    int changed, was_from;

    if (roost_jid_bare_eq(ev->from, ev->to))
        return ROOST_HANDLED;
    cur = roost_roster_item(m, user, contact);
    pres_item_init(&it, cur, contact);
    was_from = sub_from(it.sub);
    if (type_is(type, "subscribe")) {
        if (was_from) {
            /* §3.1.3: already subscribed: auto-reply. */
            pres_send(m, "subscribed", ubare, contact);
            return ROOST_HANDLED;
        }
        if (it.approved) {
            /* §3.4: pre-approved: approve on the user's behalf. */
            it.sub = it.sub == ROOST_SUB_TO ? ROOST_SUB_BOTH : ROOST_SUB_FROM;
            it.approved = 0;
            it.pending_in = 0;
            if (pres_item_store(m, user, cur, &it) == 2)
                roost_roster_push(m, user, contact);
            pres_send(m, "subscribed", ubare, contact);
            pres_send_resources(m, user, contact, 0);
            return ROOST_HANDLED;
        }
        /* A.3.1: None + Pending In, None + Pending Out+In, To + Pending
         * In: a request already pending is not delivered again and
         * changes nothing (it reaches each initial presence anyway). */
        if (it.pending_in)
            return ROOST_HANDLED;
        /* A.3.1: Pending In, kept until answered (§3.1.3), delivered to
         * the available resources now and at each initial presence. */
        it.pending_in = 1;
        pres_item_store(m, user, cur, &it);
        pres_req_set(m, user, contact, ev->stanza);
        c = pres_inbound_copy(ev);
        pres_deliver_user(m, user, c, 0);
        roost_stanza_unref(c);
        return ROOST_HANDLED;
    }
    if (type_is(type, "subscribed")) {
        /* A.3.2 / §3.1.6: only an answer to our pending request counts. */
        if (!it.ask)
            return ROOST_HANDLED;
        it.ask = 0;
        it.sub = it.sub == ROOST_SUB_FROM ? ROOST_SUB_BOTH : ROOST_SUB_TO;
    } else if (type_is(type, "unsubscribe")) {
        /* A.3.3 / §3.3.3 */
        it.pending_in = 0;
        if (it.sub == ROOST_SUB_FROM)
            it.sub = ROOST_SUB_NONE;
        else if (it.sub == ROOST_SUB_BOTH)
            it.sub = ROOST_SUB_TO;
    } else {
        /* unsubscribed, A.3.4 / §3.2.3 */
        it.ask = 0;
        if (it.sub == ROOST_SUB_TO)
            it.sub = ROOST_SUB_NONE;
        else if (it.sub == ROOST_SUB_BOTH)
            it.sub = ROOST_SUB_FROM;
    }
    changed = pres_item_store(m, user, cur, &it);
    if (changed == 0)
        return ROOST_HANDLED; /* no state change: not delivered */
    c = pres_inbound_copy(ev);
    pres_deliver_user(m, user, c, 1);
    roost_stanza_unref(c);
    if (changed == 2)
        roost_roster_push(m, user, contact);
    if (type_is(type, "unsubscribe") && was_from)
        pres_send_resources(m, user, contact, 1);
    return ROOST_HANDLED;
}

/* --- probes (RFC 6121 §4.3.2) --- */

static void
pres_add_delay(roost_mod_t *m, roost_stanza_t *p, int64_t when)
{
    roost_stanza_t *d;
    time_t t = (time_t)when;
    struct tm tm;
    char stamp[32];

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return;
    d = roost_stanza_add_child(p, PRES_NS_DELAY, "delay");
    roost_stanza_set_attr(d, "from", roost_mod_host(m));
    roost_stanza_set_attr(d, "stamp", stamp);
}

static roost_verdict_t
pres_in_probe(const roost_ev_t *ev)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->to);
    const char *ubare = roost_jid_bare(ev->to);
    const char *contact = roost_jid_bare(ev->from);
    const char *prober = roost_jid_full(ev->from);
    const roost_roster_item_t *it = roost_roster_item(m, user, contact);
    pres_user_t *pu;

    if (!roost_jid_bare_eq(ev->from, ev->to) &&
        (it == NULL || !sub_from(it->sub))) {
        /* Never reveal presence to a non-subscriber; answer as Prosody
         * does, with unsubscribed. */
        pres_send(m, "unsubscribed", ubare, contact);
        return ROOST_HANDLED;
    }
    if (pres_send_resources(m, user, prober, 0) > 0)
        return ROOST_HANDLED;
    pu = pres_user(m, user, 0);
    if (pu != NULL && pu->last != NULL) {
        /* The full XML of the last unavailable presence, stamped. */
        roost_stanza_t *c = roost_stanza_copy(pu->last);

        roost_stanza_set_attr(c, "to", prober);
        pres_add_delay(m, c, pu->when);
        roost_send(m, c);
        roost_stanza_unref(c);
    } else {
        pres_send(m, "unavailable", ubare, prober);
    }
    return ROOST_HANDLED;
}

/* --- inbound presence (ROOST_EV_PRESENCE_BARE / _FULL) --- */

static roost_verdict_t
pres_in(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *type = roost_stanza_attr(ev->stanza, "type");
    const char *user = roost_jid_node(ev->to);

    if (user == NULL)
        return ROOST_PASS;
    if (is_subscription_type(type))
        return pres_in_subscription(ev, type);
    if (type_is(type, "probe"))
        return pres_in_probe(ev);
    if (type_is(type, "error"))
        return ROOST_PASS; /* the core delivers it to its full JID */
    if (type != NULL && !type_is(type, "unavailable"))
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, "unknown presence type");
    if (roost_jid_resource(ev->to) != NULL) {
        /* §4.6 directed presence, and §8.5.3.1. */
        roost_session_t *s = roost_session_find(m, ev->to);

        if (s != NULL)
            roost_session_deliver(s, ev->stanza);
        return ROOST_HANDLED;
    }
    /* RFC 6121 §8.5.2.1.2: to every available resource.  From a contact
     * it is a broadcast; from anyone else it can only be directed
     * presence (§4.6), which RFC 2779 5.3.2 (REQUIREMENTS.md) excepts; a
     * user who wants none of it says so with a presence-in privacy rule
     * (subscription none: deny), as with Prosody. */
    pres_deliver_user(m, user, ev->stanza, 0);
    return ROOST_HANDLED;
}

/* --- the user's own presence (ROOST_EV_PRESENCE_OUT) --- */

typedef struct {
    char **jids;
    int n, cap;
    int want; /* 0: from/both, 1: to/both, 2: pending_in */
} pres_collect_t;

static int
pres_collect_cb(void *arg, const roost_roster_item_t *it)
{
    pres_collect_t *c = arg;
    int take = c->want == 0   ? sub_from(it->sub)
               : c->want == 1 ? sub_to(it->sub)
                              : it->pending_in;

    if (!take)
        return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->jids = roost_xrealloc(c->jids, (size_t)c->cap * sizeof(char *));
    }
    c->jids[c->n++] = roost_xstrdup(it->jid); /* pres_collect_free */
    return 0;
}

/* The contacts to act on, copied first: sending may change rosters. */
static void
pres_collect(roost_mod_t *m, const char *user, int want, pres_collect_t *c)
{
    memset(c, 0, sizeof(*c));
    c->want = want;
    roost_roster_items(m, user, pres_collect_cb, c);
}

static void
pres_collect_free(pres_collect_t *c)
{
    for (int i = 0; i < c->n; i++)
        roost_free(c->jids[i]);
    roost_free(c->jids);
}

/* Stores p (unavailable, from the last resource) as the account's last
 * presence, in memory now and in "lastpresence" write-behind. */
typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user, *val;
    size_t len;
} pres_write_t;

static int
pres_write_work(void *arg)
{
    pres_write_t *w = arg;

    return roost_store_set(w->store, w->user, NULL, w->val, w->len);
}

static void
pres_write_done(void *arg, int rc)
{
    pres_write_t *w = arg;

    if (rc != 0)
        roost_log(w->m, ROOST_LOG_WARN, "storing the last presence of %s: %s",
                  w->user, roost_strerror(rc));
    roost_free(w->user);
    roost_free(w->val);
    roost_free(w);
}

static void
pres_store_last(roost_mod_t *m, const char *user, const roost_stanza_t *p)
{
    pres_mod_t *pm = *roost_mod_data(m);
    pres_user_t *pu = pres_user(m, user, 1);
    roost_stanza_t *doc;
    pres_write_t *w;
    char t[24];

    if (pu == NULL)
        return;
    roost_stanza_unref(pu->last);
    pu->last = roost_stanza_copy(p);
    roost_stanza_set_attr(pu->last, "to", NULL);
    pu->when = (int64_t)time(NULL);
    if (pm->last == NULL)
        return;
    doc = roost_stanza_new(PRES_NS_STORE, "last");
    snprintf(t, sizeof(t), "%lld", (long long)pu->when);
    roost_stanza_set_attr(doc, "t", t);
    roost_stanza_add_copy(doc, pu->last);
    w = roost_xcalloc(1, sizeof(*w)); /* freed by pres_write_done */
    w->m = m;
    w->store = pm->last;
    w->user = roost_xstrdup(user);
    w->val = roost_stanza_serialize(doc, NULL, &w->len);
    roost_stanza_unref(doc);
    roost_store_async(m, pres_write_work, pres_write_done, w);
}

/* Available presence from s: initial (§4.2.2) or an update (§4.4.2). */
static void
pres_available(roost_mod_t *m, roost_session_t *s, pres_session_t *ps,
               roost_stanza_t *st)
{
    const roost_jid_t *jid = roost_session_jid(s);
    const char *user = roost_jid_node(jid);
    int initial = !ps->available;
    pres_sessions_t l;
    pres_collect_t c;
    pres_user_t *pu;

    ps->available = 1;
    roost_stanza_unref(ps->presence);
    ps->presence = roost_stanza_copy(st);
    roost_stanza_set_attr(ps->presence, "to", NULL);

    /* The user's available resources, the sender included. */
    pres_deliver_to(s, st);
    pres_sessions_get(m, user, &l);
    for (int i = 0; i < l.n; i++)
        if (l.ss[i] != s && roost_session_available(l.ss[i]))
            pres_deliver_to(l.ss[i], st);
    /* Subscribers. */
    pres_collect(m, user, 0, &c);
    for (int i = 0; i < c.n; i++)
        pres_send_copy(m, st, NULL, c.jids[i]);
    pres_collect_free(&c);
    if (!initial) {
        pres_sessions_free(&l);
        return;
    }
    /* §4.2.2: probes, from the bare JID, to whom the user is subscribed. */
    pres_collect(m, user, 1, &c);
    for (int i = 0; i < c.n; i++)
        pres_send(m, "probe", roost_jid_bare(jid), c.jids[i]);
    pres_collect_free(&c);
    /* The other resources' presence to the new one. */
    for (int i = 0; i < l.n; i++) {
        pres_session_t *o = l.ss[i] != s ? pres_slot(l.ss[i], m, 0) : NULL;

        if (o != NULL && o->available && o->presence != NULL)
            pres_deliver_to(s, o->presence);
    }
    pres_sessions_free(&l);
    /* §3.1.3: requests still awaiting an answer, with the status they
     * came with. */
    pres_collect(m, user, 2, &c);
    pu = pres_user(m, user, 0);
    for (int i = 0; i < c.n; i++) {
        pres_req_t *r = pu != NULL ? *pres_req_find(pu, c.jids[i]) : NULL;
        roost_stanza_t *p;

        if (r != NULL) {
            p = roost_stanza_copy(r->presence);
        } else {
            p = roost_stanza_new(ROOST_NS_CLIENT, "presence");
            roost_stanza_set_attr(p, "type", "subscribe");
        }
        roost_stanza_set_attr(p, "from", c.jids[i]);
        roost_stanza_set_attr(p, "to", roost_jid_bare(jid));
        roost_session_deliver(s, p);
        roost_stanza_unref(p);
    }
    /* Kept requests no longer pending (the item went with a roster
     * remove, which does not come through here): forgotten. */
    for (pres_req_t *r = pu != NULL ? pu->reqs : NULL, *next; r != NULL;
         r = next) {
        int pending = 0;

        next = r->next;
        for (int i = 0; i < c.n && !pending; i++)
            pending = strcmp(c.jids[i], r->contact) == 0;
        if (!pending)
            pres_req_drop(m, user, r->contact);
    }
    pres_collect_free(&c);
}

/* s becomes unavailable (§4.5.2): explicitly (echo set) or by closing.
 * st is the unavailable presence, from s's full JID. */
static void
pres_unavailable(roost_mod_t *m, roost_session_t *s, pres_session_t *ps,
                 roost_stanza_t *st, int echo)
{
    const char *user = roost_jid_node(roost_session_jid(s));

    if (ps->available) {
        pres_sessions_t l;
        pres_collect_t c;
        int others = 0;

        ps->available = 0;
        roost_stanza_unref(ps->presence);
        ps->presence = NULL;
        if (echo)
            pres_deliver_to(s, st);
        pres_sessions_get(m, user, &l);
        for (int i = 0; i < l.n; i++) {
            pres_session_t *o;

            if (l.ss[i] == s)
                continue;
            if (roost_session_available(l.ss[i]))
                pres_deliver_to(l.ss[i], st);
            o = pres_slot(l.ss[i], m, 0);
            if (o != NULL && o->available)
                others++;
        }
        pres_sessions_free(&l);
        pres_collect(m, user, 0, &c);
        for (int i = 0; i < c.n; i++)
            pres_send_copy(m, st, NULL, c.jids[i]);
        pres_collect_free(&c);
        if (others == 0)
            pres_store_last(m, user, st);
    }
    /* §4.6.3: everyone who got directed presence from this session. */
    for (int i = 0; i < ps->ndirected; i++) {
        pres_send_copy(m, st, NULL, ps->directed[i]);
        roost_free(ps->directed[i]);
    }
    ps->ndirected = 0;
}

static roost_verdict_t
pres_out(const roost_ev_t *ev, void *arg)
{
    const char *type = roost_stanza_attr(ev->stanza, "type");
    pres_session_t *ps;

    if (ev->origin == NULL || roost_jid_node(ev->from) == NULL)
        return ROOST_PASS;
    if (type != NULL && !type_is(type, "unavailable"))
        return ROOST_HANDLED; /* subscriptions and probes need a 'to' */
    ps = pres_slot(ev->origin, ev->mod, 1);
    if (type == NULL)
        pres_available(ev->mod, ev->origin, ps, ev->stanza);
    else
        pres_unavailable(ev->mod, ev->origin, ps, ev->stanza, 1);
    /* A notification other modules act on too (mod_offline delivers at
     * the first available presence): never stop the chain here. */
    return ROOST_PASS;
}

static void
pres_session_free(pres_session_t *ps)
{
    for (int i = 0; i < ps->ndirected; i++)
        roost_free(ps->directed[i]);
    roost_free(ps->directed);
    roost_stanza_unref(ps->presence);
    roost_free(ps);
}

/* The session went away: unavailable on its behalf if it was available or
 * had sent directed presence (§4.5.2, §4.6.3). */
static roost_verdict_t
pres_closed(const roost_ev_t *ev, void *arg)
{
    void **slot;
    pres_session_t *ps;

    if (ev->origin == NULL)
        return ROOST_PASS;
    slot = roost_session_slot(ev->origin, ev->mod);
    ps = *slot;
    if (ps == NULL)
        return ROOST_PASS;
    if (ps->available || ps->ndirected > 0) {
        roost_stanza_t *p = roost_stanza_new(ROOST_NS_CLIENT, "presence");

        roost_stanza_set_attr(p, "type", "unavailable");
        roost_stanza_set_attr(p, "from",
                              roost_jid_full(roost_session_jid(ev->origin)));
        pres_unavailable(ev->mod, ev->origin, ps, p, 0);
        roost_stanza_unref(p);
    }
    pres_session_free(ps);
    *slot = NULL;
    return ROOST_PASS;
}

/* --- account removal (ROOST_EV_USER_DELETED) --- */

/* A roster item and what its cancellation sends. */
typedef struct {
    char *jid;
    int unsub, unsubd;
} pres_cancel_t;

typedef struct {
    pres_cancel_t *items;
    int n, cap;
} pres_cancels_t;

static int
pres_cancel_cb(void *arg, const roost_roster_item_t *it)
{
    pres_cancels_t *c = arg;
    int unsub = sub_to(it->sub) || it->ask;
    int unsubd = sub_from(it->sub) || it->pending_in;

    if (!unsub && !unsubd)
        return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = roost_xrealloc(c->items, (size_t)c->cap * sizeof(*c->items));
    }
    c->items[c->n].jid = roost_xstrdup(it->jid); /* freed below */
    c->items[c->n].unsub = unsub;
    c->items[c->n].unsubd = unsubd;
    c->n++;
    return 0;
}

/* The account is being removed (XEP-0077 §3.2: its subscriptions are
 * cancelled): for every roster item, what removing it would send (RFC
 * 6121 §2.5.2, as mod_roster's remove): unsubscribe where the user was
 * subscribed (to/both, or a pending request), unsubscribed where the
 * contact was (from/both, or a request awaiting an answer), and then
 * unavailable from each available resource to the former subscribers
 * (§3.2.2).  The sessions are marked unavailable so that their close does
 * not broadcast again nor store a last presence for an account whose
 * data is being purged.  The roster itself goes with the account's data
 * (the core). */
static roost_verdict_t
pres_user_deleted(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = ev->from != NULL ? roost_jid_node(ev->from) : NULL;
    pres_cancels_t c;
    pres_sessions_t l;

    if (user == NULL)
        return ROOST_PASS;
    memset(&c, 0, sizeof(c));
    roost_roster_items(m, user, pres_cancel_cb, &c);
    for (int i = 0; i < c.n; i++) {
        if (c.items[i].unsub)
            pres_send(m, "unsubscribe", roost_jid_bare(ev->from),
                      c.items[i].jid);
        if (c.items[i].unsubd) {
            pres_send(m, "unsubscribed", roost_jid_bare(ev->from),
                      c.items[i].jid);
            pres_send_resources(m, user, c.items[i].jid, 1);
        }
        roost_free(c.items[i].jid);
    }
    roost_free(c.items);
    pres_sessions_get(m, user, &l);
    for (int i = 0; i < l.n; i++) {
        pres_session_t *ps = pres_slot(l.ss[i], m, 0);

        if (ps == NULL)
            continue;
        ps->available = 0;
        roost_stanza_unref(ps->presence);
        ps->presence = NULL;
    }
    pres_sessions_free(&l);
    return ROOST_PASS;
}

/* --- XEP-0012 Last Activity of an account (§5, offline user query) --- */

static roost_verdict_t
pres_last_iq(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    roost_stanza_t *req = roost_stanza_first_child(ev->stanza), *q;
    const char *user = roost_jid_node(ev->to);
    const roost_roster_item_t *it;
    pres_user_t *pu;
    pres_sessions_t l;
    int online = 0;
    char secs[24];
    roost_verdict_t v;

    if (req == NULL || user == NULL || roost_stanza_ns(req) == NULL ||
        strcmp(roost_stanza_ns(req), PRES_NS_LAST) != 0 ||
        strcmp(roost_stanza_name(req), "query") != 0 ||
        !type_is(roost_stanza_attr(ev->stanza, "type"), "get"))
        return ROOST_PASS;
    it = roost_roster_item(m, user, roost_jid_bare(ev->from));
    if (!roost_jid_bare_eq(ev->from, ev->to) &&
        (it == NULL || !sub_from(it->sub)))
        return roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    q = roost_stanza_new(PRES_NS_LAST, "query");
    pres_sessions_get(m, user, &l);
    for (int i = 0; i < l.n; i++)
        if (roost_session_available(l.ss[i]))
            online = 1;
    pres_sessions_free(&l);
    pu = pres_user(m, user, 0);
    if (!online && pu != NULL && pu->last != NULL) {
        int64_t d = (int64_t)time(NULL) - pu->when;
        const char *status =
            roost_stanza_child_text(pu->last, ROOST_NS_CLIENT, "status");

        snprintf(secs, sizeof(secs), "%lld", (long long)(d > 0 ? d : 0));
        if (status != NULL)
            roost_stanza_add_text(q, status, strlen(status));
    } else {
        snprintf(secs, sizeof(secs), "0");
    }
    roost_stanza_set_attr(q, "seconds", secs);
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

/* --- per-user state --- */

/* Loading: the state, created when there is something to keep. */
typedef struct {
    pres_user_t *pu;
} pres_load_t;

static pres_user_t *
pres_load_pu(pres_load_t *l)
{
    if (l->pu == NULL)
        l->pu = roost_xcalloc(1, sizeof(*l->pu)); /* pres_user_free */
    return l->pu;
}

/* One stored request (contact -> <request><presence/></request>). */
static int
pres_load_req(void *arg, const char *key, const char *val, size_t len)
{
    pres_load_t *l = arg;
    roost_stanza_t *doc = roost_stanza_parse(val, len);
    roost_stanza_t *p =
        doc != NULL ? roost_stanza_child(doc, NULL, "presence") : NULL;
    pres_user_t *pu;
    pres_req_t *r;

    if (p != NULL && pres_load_pu(l)->nreqs < PRES_REQS_MAX) {
        pu = l->pu;
        r = roost_xcalloc(1, sizeof(*r)); /* pres_user_free */
        r->contact = roost_xstrdup(key);
        r->presence = roost_stanza_copy(p);
        r->next = pu->reqs;
        pu->reqs = r;
        pu->nreqs++;
    }
    roost_stanza_unref(doc);
    return 0;
}

/* Storage worker: the account's last unavailable presence and the
 * requests it has not answered. */
static void *
pres_user_load(roost_mod_t *m, const char *user)
{
    pres_mod_t *pm = *roost_mod_data(m);
    pres_load_t l = {NULL};
    roost_stanza_t *doc, *p;
    char *val = NULL;
    size_t len = 0;
    const char *t;

    if (pm == NULL)
        return NULL;
    if (pm->last != NULL &&
        roost_store_get(pm->last, user, NULL, &val, &len) == 0) {
        doc = roost_stanza_parse(val, len);
        roost_free(val);
        p = doc != NULL ? roost_stanza_child(doc, NULL, "presence") : NULL;
        t = doc != NULL ? roost_stanza_attr(doc, "t") : NULL;
        if (p != NULL && t != NULL) {
            pres_load_pu(&l)->last = roost_stanza_copy(p);
            l.pu->when = strtoll(t, NULL, 10);
        }
        roost_stanza_unref(doc);
    }
    if (pm->reqs != NULL)
        roost_store_keys(pm->reqs, user, pres_load_req, &l);
    return l.pu;
}

static void
pres_user_free(roost_mod_t *m, void *state)
{
    pres_user_t *pu = state;

    while (pu->reqs != NULL) {
        pres_req_t *r = pu->reqs;

        pu->reqs = r->next;
        pres_req_free(r);
    }
    roost_stanza_unref(pu->last);
    roost_free(pu);
}

static const roost_user_state_t pres_user_ops = {
    .load = pres_user_load,
    .free = pres_user_free,
};

static int
pres_load(roost_mod_t *m)
{
    pres_mod_t *pm = roost_xcalloc(1, sizeof(*pm)); /* freed in unload */
    roost_stanza_t *feat;
    int rc;

    *roost_mod_data(m) = pm;
    pm->last = roost_store_open(m, "lastpresence", ROOST_STORE_KEYVAL);
    pm->reqs = roost_store_open(m, "subrequest", ROOST_STORE_MAP);
    rc = roost_user_state(m, &pres_user_ops);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRE_STANZA, ROOST_PRIO_DEFAULT, pres_pre,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_OUT, ROOST_PRIO_DEFAULT, pres_out,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_BARE, ROOST_PRIO_DEFAULT, pres_in,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_FULL, ROOST_PRIO_DEFAULT, pres_in,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_CLOSED, ROOST_PRIO_DEFAULT,
                        pres_closed, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_IQ_BARE, ROOST_PRIO_DEFAULT, pres_last_iq,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_USER_DELETED, ROOST_PRIO_DEFAULT,
                        pres_user_deleted, NULL);
    if (rc != 0)
        return rc;
    /* XEP-0012 "Determining Support": answered at the account's bare
     * JID, so advertised in the account's disco#info (who may see it is
     * who may ask). */
    roost_add_account_feature(m, PRES_NS_LAST);
    /* RFC 6121 §3.4: pre-approvals are supported. */
    feat = roost_stanza_new(PRES_NS_PREAPPROVAL, "sub");
    roost_add_stream_feature(m, feat);
    roost_stanza_unref(feat);
    return 0;
}

static void
pres_unload(roost_mod_t *m)
{
    void **data = roost_mod_data(m);

    roost_free(*data);
    *data = NULL;
}

ROOST_MODULE(presence) = {
    .abi = ROOST_ABI,
    .name = "presence",
    .load = pres_load,
    .unload = pres_unload,
};
