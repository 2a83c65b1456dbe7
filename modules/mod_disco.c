/* modules/mod_disco.c: Service Discovery (XEP-0030), server side.
 *
 * Builds disco#info for the host from the host registry: the identities
 * and features every loaded module registered (roost_add_identity,
 * roost_add_feature), so unloading a module removes its advertisement
 * (HOUSE 6).  Registers the server's own identity (server/im) and the two
 * disco namespaces.  disco#items to the host is answered empty for now.
 *
 * For a user's bare JID the server answers on behalf of the account
 * (XEP-0030 §3.1, §4.1), to the user and to contacts with a presence
 * subscription to the account ("from" or "both" in its roster), as
 * XEP-0030's Security Considerations require; anyone else gets
 * service-unavailable, the answer the core gives for an account that does
 * not exist (RFC 6121 §8.5.1), so the two cannot be told apart.
 * disco#info: the identity account/admin (an admin of the vhost) or
 * account/registered, the identities and features modules registered for
 * accounts (roost_add_account_feature: jabber:iq:last from mod_presence),
 * and disco#info itself (XEP-0030 §3.1: every entity supports it).
 * disco#items: an empty result.  XEP-0030 §4.1 suggests listing the
 * available resources, but a subscriber whom the user's privacy lists
 * deny presence must not learn them this way; Prosody 0.12 answers empty
 * too (and omits the disco#info feature).  A node: item-not-found.
 *
 * Not for: nodes (item-not-found until something publishes them), entity
 * capabilities (XEP-0115) or disco#info of other users' full JIDs (the core
 * routes those to the client). */
#include <string.h>

#include <roost/module.h>
#include <roost/roster.h>

/* Adds <feature var='xmlns'/> unless present: XEP-0030 requires var to be
 * unique, and two modules may register the same namespace. */
static void
disco_add_feature(void *arg, const char *xmlns)
{
    roost_stanza_t *q = arg, *c;

    for (c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *var = roost_stanza_attr(c, "var");

        if (strcmp(roost_stanza_name(c), "feature") == 0 && var != NULL &&
            strcmp(var, xmlns) == 0)
            return;
    }
    c = roost_stanza_add_child(q, NULL, "feature");
    roost_stanza_set_attr(c, "var", xmlns);
}

static void
disco_add_identity(void *arg, const char *cat, const char *type,
                   const char *name)
{
    roost_stanza_t *id = roost_stanza_add_child(arg, NULL, "identity");

    roost_stanza_set_attr(id, "category", cat);
    roost_stanza_set_attr(id, "type", type);
    if (name != NULL)
        roost_stanza_set_attr(id, "name", name);
}

/* The node attribute of the request's <query/>, or NULL. */
static const char *
disco_node(const roost_ev_t *ev)
{
    roost_stanza_t *q = roost_stanza_first_child(ev->stanza);
    const char *node = q ? roost_stanza_attr(q, "node") : NULL;

    /* An empty node is the same as none (XEP-0030 §3.1 examples). */
    return node != NULL && node[0] != '\0' ? node : NULL;
}

static roost_verdict_t
disco_info_get(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *q;
    roost_verdict_t v;

    if (roost_jid_node(ev->to) != NULL)
        return ROOST_PASS; /* an account: disco_iq_bare answers */
    if (disco_node(ev) != NULL)
        return roost_bounce(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    q = roost_stanza_new(ROOST_NS_DISCO_INFO, "query");
    roost_host_identities(ev->mod, disco_add_identity, q);
    roost_host_features(ev->mod, disco_add_feature, q);
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

static roost_verdict_t
disco_items_get(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *q;
    roost_verdict_t v;

    if (roost_jid_node(ev->to) != NULL)
        return ROOST_PASS;
    if (disco_node(ev) != NULL)
        return roost_bounce(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    q = roost_stanza_new(ROOST_NS_DISCO_ITEMS, "query");
    /* TODO: components and MUC services: one <item jid='...'/> each, once
     * the host registry lists them (an roost_host_items() iterator). */
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

/* Adds an identity unless the same one is there (XEP-0030 §3.1: each
 * category/type/name combination once). */
static void
disco_add_identity_once(void *arg, const char *cat, const char *type,
                        const char *name)
{
    roost_stanza_t *q = arg;

    for (roost_stanza_t *c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *cc = roost_stanza_attr(c, "category");
        const char *ct = roost_stanza_attr(c, "type");
        const char *cn = roost_stanza_attr(c, "name");

        if (strcmp(roost_stanza_name(c), "identity") == 0 && cc != NULL &&
            ct != NULL && strcmp(cc, cat) == 0 && strcmp(ct, type) == 0 &&
            (cn == NULL ? name == NULL : name != NULL && strcmp(cn, name) == 0))
            return;
    }
    disco_add_identity(q, cat, type, name);
}

/* Whether the sender may discover the account (XEP-0030 Security
 * Considerations): the account itself, or a contact authorized to receive
 * its presence. */
static int
disco_account_visible(const roost_ev_t *ev)
{
    const roost_roster_item_t *it;

    if (roost_jid_bare_eq(ev->from, ev->to))
        return 1;
    it = roost_roster_item(ev->mod, roost_jid_node(ev->to),
                           roost_jid_bare(ev->from));
    return it != NULL && !it->hidden &&
           (it->sub == ROOST_SUB_FROM || it->sub == ROOST_SUB_BOTH);
}

/* disco#info / disco#items to a user's bare JID: the server answers for
 * the account (see the top of the file). */
static roost_verdict_t
disco_iq_bare(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *req = roost_stanza_first_child(ev->stanza), *q;
    const char *type = roost_stanza_attr(ev->stanza, "type");
    const char *ns = req ? roost_stanza_ns(req) : NULL;
    int info;
    roost_verdict_t v;

    if (ns == NULL || strcmp(roost_stanza_name(req), "query") != 0)
        return ROOST_PASS;
    if (strcmp(ns, ROOST_NS_DISCO_INFO) == 0)
        info = 1;
    else if (strcmp(ns, ROOST_NS_DISCO_ITEMS) == 0)
        info = 0;
    else
        return ROOST_PASS;
    if (type == NULL || strcmp(type, "get") != 0)
        return ROOST_PASS; /* the core answers set with an error */
    if (!disco_account_visible(ev))
        return roost_bounce(ev, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
    if (disco_node(ev) != NULL)
        return roost_bounce(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    q = roost_stanza_new(info ? ROOST_NS_DISCO_INFO : ROOST_NS_DISCO_ITEMS,
                         "query");
    if (info) {
        disco_add_identity(q, "account",
                           roost_host_is_admin(ev->mod, ev->to) ? "admin"
                                                                : "registered",
                           NULL);
        roost_host_account_identities(ev->mod, disco_add_identity_once, q);
        roost_host_account_features(ev->mod, disco_add_feature, q);
    }
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

static int
disco_load(roost_mod_t *m)
{
    int rc;

    roost_add_identity(m, "server", "im", "Roost");
    roost_add_feature(m, ROOST_NS_DISCO_INFO);
    roost_add_feature(m, ROOST_NS_DISCO_ITEMS);
    roost_add_account_feature(m, ROOST_NS_DISCO_INFO);
    rc = roost_hook_iq(m, ROOST_NS_DISCO_INFO, "query", disco_info_get, NULL,
                       NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, ROOST_NS_DISCO_ITEMS, "query", disco_items_get,
                           NULL, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_IQ_BARE, ROOST_PRIO_DEFAULT, disco_iq_bare,
                        NULL);
    return rc;
}

ROOST_MODULE(disco) = {
    .abi = ROOST_ABI,
    .name = "disco",
    .load = disco_load,
};
