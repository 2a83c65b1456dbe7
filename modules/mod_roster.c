/* modules/mod_roster.c: the jabber:iq:roster protocol (RFC 6121 §2) with
 * roster versioning (XEP-0237, RFC 6121 §2.6), on top of the core's
 * roster service (roost/roster.h).
 *
 * Handles roster get, set and remove by a user on their own account (no
 * 'to', or to = own bare JID), answers with results and errors, marks the
 * requesting resource as interested and sends roster pushes.  Advertises
 * the versioning stream feature.  The roster itself (memory, storage,
 * version counter) is the core's: this file never stores anything.
 *
 * Not for: subscriptions and presence (mod_presence: it creates and
 * changes subscription state, pending_in entries, and sends the
 * unsubscribe/unsubscribed that RFC 6121 §2.5.2 asks for on remove), nor
 * rosters of other accounts (the core dispatches only the user's own).
 *
 * Where Prosody 0.12 (the reference the integration scripts replay
 * against) is less strict than RFC 6121 §2.3.3, this module follows the
 * RFC: duplicate groups are bad-request, an empty group and a name or
 * group longer than 1023 bytes are not-acceptable (Prosody accepts all
 * three).  Where the RFC leaves a choice, it follows Prosody: an invalid
 * or full JID is bad-request, the user's own JID is not-allowed, and an
 * IQ to the host is left to the core (service-unavailable). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <roost/module.h>
#include <roost/roster.h>

#define ROSTER_NS        "jabber:iq:roster"
#define ROSTER_VER_NS    "urn:xmpp:features:rosterver"
#define ROSTER_TEXT_MAX  1023 /* name and group bytes (RFC 7622 part size) */
#define ROSTER_GROUP_MAX 64   /* groups per item (core/roster.c keeps 64) */

struct roster_conf {
    int64_t max_items;
};

static const roost_opt_t roster_opts[] = {
    {"max_items", ROOST_OPT_INT, offsetof(struct roster_conf, max_items),
     "1000", 1, 100000},
    {NULL, 0, 0, NULL, 0, 0}};

/* The account the IQ is about: the sender's own bare JID, or NULL for an
 * IQ to the host or (defensively) to someone else's account. */
static const char *
roster_user(const roost_ev_t *ev)
{
    if (roost_jid_node(ev->to) == NULL || roost_jid_resource(ev->to) != NULL ||
        !roost_jid_bare_eq(ev->from, ev->to))
        return NULL;
    return roost_jid_node(ev->to);
}

static int
roster_add_item(void *arg, const roost_roster_item_t *it)
{
    /* A pending inbound request alone is not a roster item. */
    if (!it->hidden)
        roost_roster_item_xml(arg, it);
    return 0;
}

/* Sends a subscription presence from user's bare JID to contact. */
static void
roster_send_sub(roost_mod_t *m, const char *user, const char *contact,
                const char *type)
{
    roost_stanza_t *p = roost_stanza_new(ROOST_NS_CLIENT, "presence");
    char from[2048];

    snprintf(from, sizeof(from), "%s@%s", user, roost_mod_host(m));
    roost_stanza_set_attr(p, "from", from);
    roost_stanza_set_attr(p, "to", contact);
    roost_stanza_set_attr(p, "type", type);
    roost_send(m, p);
    roost_stanza_unref(p);
}

/* Roster get (RFC 6121 §2.2, XEP-0237 §2.3/2.4).  A request carrying
 * 'ver' gets versioning: an empty result when that is the current
 * version, otherwise the whole roster with the current 'ver'.  A request
 * without 'ver' gets the roster without one. */
static roost_verdict_t
roster_get(const roost_ev_t *ev, void *arg)
{
    const char *user = roster_user(ev);
    roost_stanza_t *req, *q;
    const char *cur, *ver;
    roost_verdict_t v;

    if (user == NULL)
        return ROOST_PASS; /* the host has no roster: service-unavailable */
    cur = roost_roster_version(ev->mod, user);
    if (cur == NULL) {
        roost_log(ev->mod, ROOST_LOG_ERROR, "roster of %s not loaded", user);
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }
    /* RFC 6121 §2.1.6: this resource now gets pushes. */
    if (ev->origin != NULL)
        roost_session_set_roster_requested(ev->origin);
    req = roost_stanza_child(ev->stanza, ROSTER_NS, "query");
    ver = req != NULL ? roost_stanza_attr(req, "ver") : NULL;
    if (ver != NULL && *ver != '\0' && strcmp(ver, cur) == 0)
        return roost_reply(ev, NULL); /* XEP-0237 §2.4: up to date */
    q = roost_stanza_new(ROSTER_NS, "query");
    if (ver != NULL)
        roost_stanza_set_attr(q, "ver", cur);
    roost_roster_items(ev->mod, user, roster_add_item, q);
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

/* Remove (RFC 6121 §2.5). */
static roost_verdict_t
roster_remove(const roost_ev_t *ev, const char *user, const char *contact)
{
    const roost_roster_item_t *old = roost_roster_item(ev->mod, user, contact);
    int unsub, unsubd;

    if (old == NULL || old->hidden)
        return roost_bounce(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    /* RFC 6121 §2.5.2: cancel both directions of the subscription. */
    unsub = old->sub == ROOST_SUB_TO || old->sub == ROOST_SUB_BOTH || old->ask;
    unsubd = old->sub == ROOST_SUB_FROM || old->sub == ROOST_SUB_BOTH ||
             old->pending_in;
    if (roost_roster_remove(ev->mod, user, contact) < 0)
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    roost_reply(ev, NULL);
    roost_roster_push(ev->mod, user, contact);
    if (unsub)
        roster_send_sub(ev->mod, user, contact, "unsubscribe");
    if (unsubd) {
        roost_session_t *ss[64];
        int n = roost_user_sessions(ev->mod, user, ss, 64);

        roster_send_sub(ev->mod, user, contact, "unsubscribed");
        /* RFC 6121 §3.2.2: the former subscriber learns that every
         * resource is gone for it. */
        for (int i = 0; i < n && i < 64; i++) {
            roost_stanza_t *p;

            if (!roost_session_available(ss[i]))
                continue;
            p = roost_stanza_new(ROOST_NS_CLIENT, "presence");
            roost_stanza_set_attr(p, "type", "unavailable");
            roost_stanza_set_attr(p, "from",
                                  roost_jid_full(roost_session_jid(ss[i])));
            roost_stanza_set_attr(p, "to", contact);
            roost_send(ev->mod, p);
            roost_stanza_unref(p);
        }
    }
    return ROOST_HANDLED;
}

/* Collects the <group/>s of item into groups (NULL-terminated).  Returns
 * ROOST_SE_NONE or the RFC 6121 §2.3.3 condition, with *why set. */
static roost_stanza_err_t
roster_groups(roost_stanza_t *item, const char **groups, const char **why)
{
    int n = 0;

    for (roost_stanza_t *g = roost_stanza_first_child(item); g != NULL;
         g = roost_stanza_next_sibling(g)) {
        const char *ns = roost_stanza_ns(g), *text;

        if (strcmp(roost_stanza_name(g), "group") != 0 ||
            (ns != NULL && strcmp(ns, ROSTER_NS) != 0))
            continue;
        text = roost_stanza_text(g);
        if (*text == '\0') {
            *why = "Empty group name";
            return ROOST_SE_NOT_ACCEPTABLE;
        }
        if (strlen(text) > ROSTER_TEXT_MAX) {
            *why = "Group name too long";
            return ROOST_SE_NOT_ACCEPTABLE;
        }
        for (int i = 0; i < n; i++)
            if (strcmp(groups[i], text) == 0) {
                *why = "Duplicate group";
                return ROOST_SE_BAD_REQUEST;
            }
        if (n == ROSTER_GROUP_MAX) {
            *why = "Too many groups";
            return ROOST_SE_NOT_ACCEPTABLE;
        }
        groups[n++] = text;
    }
    groups[n] = NULL;
    return ROOST_SE_NONE;
}

/* Add or update (RFC 6121 §2.3, §2.4).  Only name and groups come from
 * the client: 'subscription' (other than remove) and 'ask' are ignored
 * (§2.1.2.5, §2.1.5), and an existing item keeps its subscription state. */
static roost_verdict_t
roster_update(const roost_ev_t *ev, const char *user, const char *contact,
              roost_stanza_t *item)
{
    const struct roster_conf *conf = roost_mod_conf(ev->mod);
    const roost_roster_item_t *old;
    const char *groups[ROSTER_GROUP_MAX + 1], *why = NULL;
    roost_roster_item_t it;
    roost_stanza_err_t cond;
    char text[80];
    int rc;

    memset(&it, 0, sizeof(it));
    it.jid = contact;
    it.name = roost_stanza_attr(item, "name");
    if (it.name != NULL && *it.name == '\0')
        it.name = NULL; /* as Prosody: an empty name is no name */
    if (it.name != NULL && strlen(it.name) > ROSTER_TEXT_MAX)
        return roost_bounce(ev, ROOST_SE_NOT_ACCEPTABLE, "Name too long");
    cond = roster_groups(item, groups, &why);
    if (cond != ROOST_SE_NONE)
        return roost_bounce(ev, cond, why);
    it.groups = groups;
    old = roost_roster_item(ev->mod, user, contact);
    if (old != NULL) {
        /* The client sets name and groups only (§2.1.2.5); a hidden
         * pending request becomes a real item. */
        it.sub = old->sub;
        it.ask = old->ask;
        it.pending_in = old->pending_in;
        it.approved = old->approved;
    }
    it.hidden = 0;
    rc = roost_roster_set(ev->mod, user, &it, (int)conf->max_items);
    if (rc == -ROOST_ELIMIT) {
        /* RFC 6121 §2.3.3 leaves the limit to the server; not-allowed
         * with a text saying why. */
        snprintf(text, sizeof(text), "Roster is full (at most %lld items)",
                 (long long)conf->max_items);
        return roost_bounce(ev, ROOST_SE_NOT_ALLOWED, text);
    }
    if (rc == -ROOST_EINVAL)
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, NULL);
    if (rc < 0)
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    roost_reply(ev, NULL);
    /* RFC 6121 §2.3.2: to every interested resource, the requester too. */
    roost_roster_push(ev->mod, user, contact);
    return ROOST_HANDLED;
}

/* Roster set (RFC 6121 §2.3.3 error cases first). */
static roost_verdict_t
roster_set(const roost_ev_t *ev, void *arg)
{
    const char *user = roster_user(ev), *jid, *sub;
    roost_stanza_t *q, *item = NULL;
    roost_jid_t *contact;
    roost_verdict_t v;
    int n = 0;

    if (user == NULL)
        return ROOST_PASS;
    if (roost_roster_version(ev->mod, user) == NULL) {
        roost_log(ev->mod, ROOST_LOG_ERROR, "roster of %s not loaded", user);
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }
    q = roost_stanza_child(ev->stanza, ROSTER_NS, "query");
    for (roost_stanza_t *c = q != NULL ? roost_stanza_first_child(q) : NULL;
         c != NULL; c = roost_stanza_next_sibling(c), n++)
        item = c;
    if (n != 1 || strcmp(roost_stanza_name(item), "item") != 0 ||
        (roost_stanza_ns(item) != NULL &&
         strcmp(roost_stanza_ns(item), ROSTER_NS) != 0))
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST,
                            "Exactly one roster item expected");
    jid = roost_stanza_attr(item, "jid");
    contact = jid != NULL ? roost_jid_new(jid) : NULL;
    if (contact == NULL || roost_jid_resource(contact) != NULL) {
        /* Prosody says bad-request too (RFC 6121 names no condition). */
        roost_jid_free(contact);
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, "Invalid JID");
    }
    if (roost_jid_bare_eq(contact, ev->from)) {
        /* RFC 6121 leaves it open; Prosody refuses, and so do we. */
        roost_jid_free(contact);
        return roost_bounce(ev, ROOST_SE_NOT_ALLOWED,
                            "Cannot add yourself to your roster");
    }
    sub = roost_stanza_attr(item, "subscription");
    if (sub != NULL && strcmp(sub, "remove") == 0)
        v = roster_remove(ev, user, roost_jid_bare(contact));
    else
        v = roster_update(ev, user, roost_jid_bare(contact), item);
    roost_jid_free(contact);
    return v;
}

static int
roster_load(roost_mod_t *m)
{
    roost_stanza_t *ver = roost_stanza_new(ROSTER_VER_NS, "ver");

    /* XEP-0237 §2.1 (RFC 6121 §2.6.1). */
    roost_add_stream_feature(m, ver);
    roost_stanza_unref(ver);
    roost_add_feature(m, ROSTER_NS); /* as Prosody */
    return roost_hook_iq(m, ROSTER_NS, "query", roster_get, roster_set, NULL);
}

ROOST_MODULE(roster) = {
    .abi = ROOST_ABI,
    .name = "roster",
    .opts = roster_opts,
    .conf_size = sizeof(struct roster_conf),
    .load = roster_load,
};
