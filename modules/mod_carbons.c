/* modules/mod_carbons.c: Message Carbons (XEP-0280, urn:xmpp:carbons:2),
 * server side.
 *
 * A session turns carbons on and off with an iq set <enable/> or
 * <disable/> to its own bare JID (or with no 'to'); repeating either is
 * not an error (§10.1).  The host advertises urn:xmpp:carbons:2.
 *
 * Eligible messages (§6, the suggested rules): type chat; type normal
 * (also missing or unknown, RFC 6121 §5.2.2) with a <body/>; type error in
 * answer to an eligible message, correlated by id and peer against the
 * last CARBONS_TRACK eligible messages the session sent or was delivered;
 * never what a MUC room sends (an incoming message carrying muc#user
 * <x/>: room messages, private messages, mediated invitations), never a
 * message marked <private/> (§9) or with the XEP-0334 <no-copy/> hint, and
 * never a carbon itself (a <sent/> or <received/> child).  groupchat and
 * headline are not eligible.
 *
 * Sent (§8): an eligible message a local session sends (ROOST_EV_PRE_STANZA,
 * after the filters) is copied as <sent><forwarded/></sent> to the user's
 * other carbons-enabled sessions, whether or not the sender enabled them;
 * the copy leaves out stanza-ids the client put in claiming to be by its
 * account (its archive) or the vhost (XEP-0359 §4 rule 3; mod_mam keeps
 * them out of the archive and away from recipients too).
 * Received (§7): an eligible message for the user is copied as <received/>
 * to each carbons-enabled session that does not get the original from
 * mod_message: to a full JID with a session, every other one; to the bare
 * JID (or a full JID without session, which mod_message treats as bare:
 * RFC 6121 §8.5.3.2.1), those outside the highest-priority available
 * non-negative tier mod_message delivers to.  Copies come from the bare
 * JID and go to each session's full JID, with the original's type.  The
 * hook runs at ROOST_PRIO_COPY (after mod_mam added its stanza-id, so the
 * copies carry it) and PASSes, so the original goes on to delivery.
 *
 * <private/> is removed before a message is delivered to the recipient
 * (§9: the receiving server SHOULD remove it): just above mod_message
 * (after archiving, copies and mod_offline's queue), a stripped copy
 * replaces the event's stanza (roost_event_replace) for the hooks that
 * follow, and mod_message delivers it by its own rules (RFC 6121
 * §8.5.2.1.1, §8.5.3); when nobody is available it goes on to offline
 * storage (which also removes <private/> from what it stores, for
 * messages that reach it other ways).  Routing a stripped copy again
 * instead would archive it twice (mod_mam) and run every hook again.
 *
 * Security (§11): a copy is only trustworthy from the user's own bare
 * JID.  A message carrying <sent/> or <received/> that arrives for a
 * local user from any other address is a forged carbon and is dropped
 * with the filters (ROOST_PRIO_FILTER), so no client has to be the only
 * defence and nothing archives it.
 *
 * Not for: archiving (mod_mam), delivery (mod_message), the newer rules
 * of urn:xmpp:carbons:rules:0 (not advertised), or carbons across
 * federation (there is no s2s yet). */
#include <string.h>

#include <roost/module.h>

#define CARBONS_NS          "urn:xmpp:carbons:2"
#define CARBONS_NS_FORWARD  "urn:xmpp:forward:0"
#define CARBONS_NS_HINTS    "urn:xmpp:hints"
#define CARBONS_NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define CARBONS_NS_SID      "urn:xmpp:sid:0"

/* Eligible messages remembered per session and direction, for matching
 * error replies (§6, third rule). */
#define CARBONS_TRACK 16

/* Sessions looked up on the stack; more resources than this take one
 * heap array. */
#define CARBONS_STACK_SESSIONS 16

typedef enum {
    CARBONS_NORMAL = 0,
    CARBONS_CHAT,
    CARBONS_HEADLINE,
    CARBONS_GROUPCHAT,
    CARBONS_ERROR
} carbons_type_t;

/* An eligible message: its id and the other party's bare JID. */
typedef struct {
    char *id;
    char *peer;
} carbons_msg_t;

typedef struct {
    carbons_msg_t ring[CARBONS_TRACK];
    int next;
} carbons_ring_t;

/* One session's state (its slot); freed in carbons_closed. */
typedef struct {
    int enabled;
    carbons_ring_t sent; /* eligible messages it sent */
    carbons_ring_t got;  /* eligible messages delivered to it */
} carbons_sess_t;

static carbons_type_t
carbons_type(const roost_stanza_t *st)
{
    const char *t = roost_stanza_attr(st, "type");

    if (t == NULL)
        return CARBONS_NORMAL;
    if (strcmp(t, "chat") == 0)
        return CARBONS_CHAT;
    if (strcmp(t, "headline") == 0)
        return CARBONS_HEADLINE;
    if (strcmp(t, "groupchat") == 0)
        return CARBONS_GROUPCHAT;
    if (strcmp(t, "error") == 0)
        return CARBONS_ERROR;
    return CARBONS_NORMAL; /* RFC 6121 §5.2.2 */
}

/* A direct child ns/name; ns NULL means the stanza's own namespace. */
static roost_stanza_t *
carbons_child(const roost_stanza_t *st, const char *ns, const char *name)
{
    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *cn = roost_stanza_name(c), *cns = roost_stanza_ns(c);

        if (cn == NULL || strcmp(cn, name) != 0)
            continue;
        if (ns == NULL) {
            if (cns == NULL || strcmp(cns, ROOST_NS_CLIENT) == 0 ||
                strcmp(cns, ROOST_NS_SERVER) == 0)
                return c;
        } else if (cns != NULL && strcmp(cns, ns) == 0) {
            return c;
        }
    }
    return NULL;
}

static int
carbons_is_carbon(const roost_stanza_t *st)
{
    return carbons_child(st, CARBONS_NS, "sent") != NULL ||
           carbons_child(st, CARBONS_NS, "received") != NULL;
}

static int
carbons_is_private(const roost_stanza_t *st)
{
    return carbons_child(st, CARBONS_NS, "private") != NULL ||
           carbons_child(st, CARBONS_NS_HINTS, "no-copy") != NULL;
}

/* The type rules of §6 other than errors. */
static int
carbons_im_type(const roost_stanza_t *st)
{
    switch (carbons_type(st)) {
    case CARBONS_CHAT: return 1;
    case CARBONS_NORMAL: return carbons_child(st, NULL, "body") != NULL;
    default: return 0;
    }
}

static carbons_sess_t *
carbons_sess(roost_mod_t *m, roost_session_t *s, int create)
{
    void **slot = roost_session_slot(s, m);

    if (*slot == NULL && create)
        *slot = roost_xcalloc(1, sizeof(carbons_sess_t)); /* carbons_closed */
    return *slot;
}

static int
carbons_enabled(roost_mod_t *m, roost_session_t *s)
{
    carbons_sess_t *cs = carbons_sess(m, s, 0);

    return cs != NULL && cs->enabled;
}

static void
carbons_ring_free(carbons_ring_t *r)
{
    for (int i = 0; i < CARBONS_TRACK; i++) {
        roost_free(r->ring[i].id);
        roost_free(r->ring[i].peer);
        r->ring[i].id = r->ring[i].peer = NULL;
    }
}

/* Remembers an eligible message (id, peer) for error matching; messages
 * without an id cannot be answered recognisably and are not kept. */
static void
carbons_track(roost_mod_t *m, roost_session_t *s, int sent,
              const roost_stanza_t *st, const roost_jid_t *peer)
{
    const char *id = roost_stanza_attr(st, "id");
    carbons_sess_t *cs;
    carbons_ring_t *r;
    carbons_msg_t *e;

    if (id == NULL || peer == NULL)
        return;
    cs = carbons_sess(m, s, 1);
    r = sent ? &cs->sent : &cs->got;
    e = &r->ring[r->next];
    r->next = (r->next + 1) % CARBONS_TRACK;
    roost_free(e->id);
    roost_free(e->peer);
    e->id = roost_xstrdup(id);
    e->peer = roost_xstrdup(roost_jid_bare(peer));
}

/* Whether the error st, exchanged with peer (its sender for incoming
 * errors, its recipient for outgoing ones), answers a message in the
 * session's ring: same id, and the peer is the message's peer or, for a
 * bounce the peer's server generated, its domain. */
static int
carbons_error_match(roost_mod_t *m, roost_session_t *s, int sent,
                    const roost_stanza_t *st, const roost_jid_t *peer)
{
    carbons_sess_t *cs = carbons_sess(m, s, 0);
    const char *id = roost_stanza_attr(st, "id");
    carbons_ring_t *r;

    if (cs == NULL || id == NULL || peer == NULL)
        return 0;
    r = sent ? &cs->sent : &cs->got;
    for (int i = 0; i < CARBONS_TRACK; i++) {
        const carbons_msg_t *e = &r->ring[i];
        const char *at;

        if (e->id == NULL || strcmp(e->id, id) != 0)
            continue;
        if (strcmp(e->peer, roost_jid_bare(peer)) == 0)
            return 1;
        at = strchr(e->peer, '@');
        if (roost_jid_node(peer) == NULL && at != NULL &&
            strcmp(at + 1, roost_jid_domain(peer)) == 0)
            return 1;
    }
    return 0;
}

/* A new wrapping message for st (the original, copied), without 'to':
 * <message from=bare type=...><dir><forwarded>st</forwarded></dir>.  st
 * has a 'to' (the core sets the account's bare JID on a client's message
 * without one, RFC 6120 §10.3). */
static roost_stanza_t *
carbons_wrap(const roost_stanza_t *st, const char *dir, const char *bare)
{
    roost_stanza_t *msg = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_t *w, *f;
    const char *type = roost_stanza_attr(st, "type");

    roost_stanza_set_attr(msg, "from", bare);
    if (type != NULL)
        roost_stanza_set_attr(msg, "type", type);
    w = roost_stanza_add_child(msg, CARBONS_NS, dir);
    f = roost_stanza_add_child(w, CARBONS_NS_FORWARD, "forwarded");
    roost_stanza_add_copy(f, st);
    return msg;
}

/* XEP-0359 §4 rule 3: a stanza-id claiming to be by the account (its
 * archive, mod_mam) or by the vhost, in a message the client sent itself,
 * is forged: the other resources must not take it for an archive id. */
static void
carbons_strip_sid(roost_stanza_t *wrap, const char *dir, const char *bare,
                  const char *host)
{
    roost_stanza_t *w = roost_stanza_child(wrap, CARBONS_NS, dir);
    roost_stanza_t *f = roost_stanza_child(w, CARBONS_NS_FORWARD, "forwarded");
    roost_stanza_t *msg = roost_stanza_child(f, ROOST_NS_CLIENT, "message");
    roost_stanza_t *c, *next;

    for (c = msg ? roost_stanza_first_child(msg) : NULL; c != NULL; c = next) {
        const char *ns = roost_stanza_ns(c), *by = roost_stanza_attr(c, "by");
        roost_jid_t *j;

        next = roost_stanza_next_sibling(c);
        if (ns == NULL || strcmp(ns, CARBONS_NS_SID) != 0 ||
            strcmp(roost_stanza_name(c), "stanza-id") != 0 || by == NULL ||
            (j = roost_jid_new(by)) == NULL)
            continue;
        if (roost_jid_resource(j) == NULL &&
            (strcmp(roost_jid_bare(j), bare) == 0 ||
             strcmp(roost_jid_bare(j), host) == 0))
            roost_stanza_remove(c);
        roost_jid_free(j);
    }
}

/* Sends a copy of wrap to every carbons-enabled session of node except
 * those for which skip(s, arg) says so.  Each session gets its own copy
 * (a ROOST_EV_DELIVER hook may keep a reference). */
static void
carbons_send(roost_mod_t *m, const char *node, const roost_stanza_t *wrap,
             int (*skip)(roost_session_t *s, void *arg), void *arg)
{
    roost_session_t *stack[CARBONS_STACK_SESSIONS], **ss = stack;
    int n = roost_user_sessions(m, node, ss, CARBONS_STACK_SESSIONS);

    if (n > CARBONS_STACK_SESSIONS) {
        ss = roost_xcalloc((size_t)n, sizeof(*ss)); /* freed below */
        n = roost_user_sessions(m, node, ss, n);
    }
    for (int i = 0; i < n; i++) {
        roost_stanza_t *c;

        if (!carbons_enabled(m, ss[i]) || skip(ss[i], arg))
            continue;
        c = roost_stanza_copy(wrap);
        roost_stanza_set_attr(c, "to",
                              roost_jid_full(roost_session_jid(ss[i])));
        roost_session_deliver(ss[i], c);
        roost_stanza_unref(c);
    }
    if (ss != stack)
        roost_free(ss);
}

static int
carbons_skip_one(roost_session_t *s, void *arg)
{
    return s == arg;
}

/* mod_message's choice for a bare JID (RFC 6121 §8.5.2.1.1): available
 * sessions with non-negative priority sharing the highest priority. */
typedef struct {
    int best; /* -1: nobody available with a non-negative priority */
} carbons_tier_t;

static int
carbons_in_tier(roost_session_t *s, const carbons_tier_t *t)
{
    return t->best >= 0 && roost_session_available(s) &&
           roost_session_priority(s) == t->best;
}

static int
carbons_skip_tier(roost_session_t *s, void *arg)
{
    return carbons_in_tier(s, arg);
}

static void
carbons_tier(roost_mod_t *m, const char *node, carbons_tier_t *t,
             const roost_stanza_t *st, const roost_jid_t *from)
{
    roost_session_t *stack[CARBONS_STACK_SESSIONS], **ss = stack;
    int n = roost_user_sessions(m, node, ss, CARBONS_STACK_SESSIONS);

    if (n > CARBONS_STACK_SESSIONS) {
        ss = roost_xcalloc((size_t)n, sizeof(*ss)); /* freed below */
        n = roost_user_sessions(m, node, ss, n);
    }
    t->best = -1;
    for (int i = 0; i < n; i++) {
        int prio = roost_session_priority(ss[i]);

        if (roost_session_available(ss[i]) && prio >= 0 && prio > t->best)
            t->best = prio;
    }
    /* Those sessions get the original: they may answer it with an
     * error. */
    for (int i = 0; i < n && st != NULL; i++)
        if (carbons_in_tier(ss[i], t))
            carbons_track(m, ss[i], 0, st, from);
    if (ss != stack)
        roost_free(ss);
}

/* ROOST_EV_PRE_STANZA: what a local session sends (§8). */
static roost_verdict_t
carbons_out(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    roost_stanza_t *st = ev->stanza, *wrap;
    const char *node = roost_jid_node(ev->from);
    int eligible;

    if (ev->origin == NULL || node == NULL ||
        roost_stanza_kind(st) != ROOST_STANZA_MESSAGE ||
        carbons_is_carbon(st) || carbons_is_private(st))
        return ROOST_PASS;
    if (carbons_type(st) == CARBONS_ERROR)
        eligible = carbons_error_match(m, ev->origin, 0, st, ev->to);
    else if ((eligible = carbons_im_type(st)) != 0)
        carbons_track(m, ev->origin, 1, st, ev->to);
    if (!eligible)
        return ROOST_PASS;
    wrap = carbons_wrap(st, "sent", roost_jid_bare(ev->from));
    carbons_strip_sid(wrap, "sent", roost_jid_bare(ev->from),
                      roost_mod_host(m));
    carbons_send(m, node, wrap, carbons_skip_one, ev->origin);
    roost_stanza_unref(wrap);
    return ROOST_PASS;
}

/* ROOST_EV_MESSAGE_BARE and _FULL: a message for a local user (§7). */
static roost_verdict_t
carbons_in(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    roost_stanza_t *st = ev->stanza, *wrap;
    const char *node = roost_jid_node(ev->to);
    roost_session_t *target = NULL;
    carbons_type_t type = carbons_type(st);
    carbons_tier_t tier;
    int eligible;

    /* A carbon from the bare JID (carbons_filter dropped the others)
     * goes on as it is, never copied again. */
    if (node == NULL || carbons_is_carbon(st))
        return ROOST_PASS;
    if (roost_jid_resource(ev->to) != NULL)
        target = roost_session_find(m, ev->to);
    if (target == NULL && type != CARBONS_CHAT && type != CARBONS_NORMAL)
        return ROOST_PASS; /* mod_message drops or bounces it */

    if (carbons_is_private(st) ||
        carbons_child(st, CARBONS_NS_MUC_USER, "x") != NULL) {
        eligible = 0;
    } else if (type == CARBONS_ERROR) {
        eligible = carbons_error_match(m, target, 1, st, ev->from);
    } else {
        eligible = carbons_im_type(st);
    }
    /* Whoever gets the original (when it could be answered by an error
     * the others should see). */
    if (target != NULL && carbons_im_type(st))
        carbons_track(m, target, 0, st, ev->from);
    if (target == NULL)
        carbons_tier(m, node, &tier, carbons_im_type(st) ? st : NULL, ev->from);
    if (eligible) {
        wrap = carbons_wrap(st, "received", roost_jid_bare(ev->to));
        if (target != NULL)
            carbons_send(m, node, wrap, carbons_skip_one, target);
        else
            carbons_send(m, node, wrap, carbons_skip_tier, &tier);
        roost_stanza_unref(wrap);
    }
    return ROOST_PASS;
}

/* ROOST_EV_MESSAGE_BARE and _FULL, with the filters: §11. */
static roost_verdict_t
carbons_filter(const roost_ev_t *ev, void *arg)
{
    if (!carbons_is_carbon(ev->stanza))
        return ROOST_PASS;
    /* Only the user's own bare JID sends carbons.  Ours are delivered
     * directly and never pass here, except a copy that lost its session
     * (XEP-0198 routes unacknowledged stanzas again): that one is from
     * the bare JID. */
    if (roost_jid_resource(ev->from) == NULL &&
        roost_jid_bare_eq(ev->from, ev->to))
        return ROOST_PASS;
    roost_log(ev->mod, ROOST_LOG_DEBUG, "dropped a forged carbon from %s to %s",
              roost_jid_full(ev->from), roost_jid_bare(ev->to));
    return ROOST_HANDLED;
}

/* ROOST_EV_MESSAGE_BARE and _FULL, just above mod_message: §9's removal
 * of <private/> before the message reaches the recipient.  The stripped
 * copy takes the event's stanza's place (roost_event_replace), and
 * mod_message delivers it by its usual rules. */
static roost_verdict_t
carbons_strip(const roost_ev_t *ev, void *arg)
{
    const char *node = roost_jid_node(ev->to);
    carbons_type_t type = carbons_type(ev->stanza);
    roost_stanza_t *c, *p;

    if (node == NULL ||
        carbons_child(ev->stanza, CARBONS_NS, "private") == NULL)
        return ROOST_PASS;
    /* What mod_message delivers: to a full JID with a session anything,
     * to the bare JID normal and chat (also to a full JID without
     * session) and headline (only to the bare JID). */
    if (type != CARBONS_CHAT && type != CARBONS_NORMAL &&
        (type != CARBONS_HEADLINE || roost_jid_resource(ev->to) != NULL) &&
        (roost_jid_resource(ev->to) == NULL ||
         roost_session_find(ev->mod, ev->to) == NULL))
        return ROOST_PASS;
    c = roost_stanza_copy(ev->stanza);
    while ((p = carbons_child(c, CARBONS_NS, "private")) != NULL)
        roost_stanza_remove(p);
    if (roost_event_replace(ev, c) < 0) /* kind, from, to, type are kept */
        roost_log(ev->mod, ROOST_LOG_WARN, "<private/> not removed for %s",
                  roost_jid_full(ev->to));
    roost_stanza_unref(c);
    return ROOST_PASS;
}

static roost_verdict_t
carbons_toggle(const roost_ev_t *ev, int on)
{
    /* Per session: an iq to the host is not one (the core then answers
     * service-unavailable). */
    if (ev->origin == NULL || roost_jid_node(ev->to) == NULL)
        return ROOST_PASS;
    if (on)
        carbons_sess(ev->mod, ev->origin, 1)->enabled = 1;
    else if (carbons_sess(ev->mod, ev->origin, 0) != NULL)
        carbons_sess(ev->mod, ev->origin, 0)->enabled = 0;
    return roost_reply(ev, NULL);
}

static roost_verdict_t
carbons_enable(const roost_ev_t *ev, void *arg)
{
    return carbons_toggle(ev, 1);
}

static roost_verdict_t
carbons_disable(const roost_ev_t *ev, void *arg)
{
    return carbons_toggle(ev, 0);
}

static roost_verdict_t
carbons_closed(const roost_ev_t *ev, void *arg)
{
    void **slot = roost_session_slot(ev->origin, ev->mod);
    carbons_sess_t *cs = *slot;

    if (cs != NULL) {
        carbons_ring_free(&cs->sent);
        carbons_ring_free(&cs->got);
        roost_free(cs);
        *slot = NULL;
    }
    return ROOST_PASS;
}

static int
carbons_load(roost_mod_t *m)
{
    int rc;

    roost_add_feature(m, CARBONS_NS);
    rc = roost_hook_iq(m, CARBONS_NS, "enable", NULL, carbons_enable, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, CARBONS_NS, "disable", NULL, carbons_disable,
                           NULL);
    /* After the filters (a refused message is not copied). */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRE_STANZA, ROOST_PRIO_DEFAULT, carbons_out,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_FILTER,
                        carbons_filter, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_FILTER,
                        carbons_filter, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_COPY, carbons_in,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_COPY, carbons_in,
                        NULL);
    /* Just above mod_message (ROOST_PRIO_DEFAULT), whose delivery it takes
     * over for <private/> messages; below mod_offline's queue
     * (ROOST_PRIO_QUEUE), so it never overtakes stored messages. */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_DEFAULT + 1,
                        carbons_strip, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_DEFAULT + 1,
                        carbons_strip, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_CLOSED, ROOST_PRIO_DEFAULT,
                        carbons_closed, NULL);
    return rc;
}

ROOST_MODULE(carbons) = {
    .abi = ROOST_ABI,
    .name = "carbons",
    .load = carbons_load,
};
