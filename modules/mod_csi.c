/* modules/mod_csi.c: Client State Indication (XEP-0352), server side.
 *
 * A client that says <inactive/> (its screen is off) gets only what is
 * urgent at once: messages (all but chat states), iqs, subscription
 * requests, errors.  Presence updates and chat states are held, presence
 * coalesced to the latest per sender, and flushed in order before the
 * next urgent stanza, when the client says <active/> again, or when the
 * hold grows past max_held (so memory stays bounded).  Works on
 * ROOST_EV_DELIVER, after the filters (privacy) have run.
 *
 * Not for: push notifications (XEP-0357), or anything the client did not
 * ask for: a session that never sent <inactive/> is not touched. */
#include <string.h>

#include <roost/module.h>

#define CSI_NS            "urn:xmpp:csi:0"
#define CSI_NS_CHATSTATES "http://jabber.org/protocol/chatstates"

struct csi_conf {
    int64_t max_held; /* stanzas held per inactive session */
};

static const roost_opt_t csi_opts[] = {{"max_held", ROOST_OPT_INT,
                                        offsetof(struct csi_conf, max_held),
                                        "100", 1, 100000},
                                       {NULL, 0, 0, NULL, 0, 0}};

/* One session's state, in its slot while it is (or was) inactive. */
typedef struct {
    int inactive;
    int flushing;          /* our own deliveries pass */
    roost_stanza_t **held; /* references, in arrival order */
    int n, cap;
} csi_sess_t;

/* Only chat states (and the thread they belong to) can wait: anything
 * else in a message (a body, a receipt, an encrypted payload, a carbon
 * copy) may matter to the person or to delivery tracking, and offline
 * storage and XEP-0198 treat such messages as worth keeping, so holding
 * them here would make a second copy. */
static int
csi_message_urgent(const roost_stanza_t *el)
{
    int any = 0;

    for (roost_stanza_t *c = roost_stanza_first_child(el); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *name = roost_stanza_name(c), *ns = roost_stanza_ns(c);

        if (name == NULL)
            continue; /* text */
        if (ns != NULL && strcmp(ns, CSI_NS_CHATSTATES) == 0) {
            any = 1;
            continue;
        }
        if (strcmp(name, "thread") == 0 &&
            (ns == NULL || strcmp(ns, "jabber:client") == 0))
            continue;
        return 1;
    }
    return !any;
}

static int
csi_urgent(const roost_stanza_t *st)
{
    const char *type = roost_stanza_attr(st, "type");

    if (type != NULL && strcmp(type, "error") == 0)
        return 1;
    switch (roost_stanza_kind(st)) {
    case ROOST_STANZA_IQ: return 1;
    case ROOST_STANZA_MESSAGE: return csi_message_urgent(st);
    case ROOST_STANZA_PRESENCE:
        /* Subscription requests and answers want a person; available,
         * unavailable and probes do not. */
        return type != NULL && strcmp(type, "unavailable") != 0 &&
               strcmp(type, "probe") != 0;
    default: return 1;
    }
}

static csi_sess_t *
csi_sess(roost_mod_t *m, roost_session_t *s, int create)
{
    void **slot = roost_session_slot(s, m);

    if (*slot == NULL && create)
        *slot = roost_xcalloc(1, sizeof(csi_sess_t)); /* csi_closed */
    return *slot;
}

/* Delivers everything held, in order. */
static void
csi_flush(roost_mod_t *m, roost_session_t *s, csi_sess_t *cs)
{
    roost_stanza_t **held = cs->held;
    int n = cs->n;

    if (n == 0)
        return;
    cs->held = NULL;
    cs->n = cs->cap = 0;
    cs->flushing = 1;
    for (int i = 0; i < n; i++) {
        roost_session_deliver(s, held[i]);
        roost_stanza_unref(held[i]);
    }
    cs->flushing = 0;
    roost_free(held);
}

static void
csi_drop(csi_sess_t *cs)
{
    for (int i = 0; i < cs->n; i++)
        roost_stanza_unref(cs->held[i]);
    roost_free(cs->held);
    cs->held = NULL;
    cs->n = cs->cap = 0;
}

static roost_verdict_t
csi_deliver(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const struct csi_conf *conf = roost_mod_conf(m);
    csi_sess_t *cs = csi_sess(m, ev->session, 0);
    const char *from;

    if (cs == NULL || !cs->inactive || cs->flushing)
        return ROOST_PASS;
    if (csi_urgent(ev->stanza)) {
        /* What was held came first: keep the order. */
        csi_flush(m, ev->session, cs);
        return ROOST_PASS;
    }
    /* A newer presence from the same sender replaces the held one. */
    from = roost_stanza_attr(ev->stanza, "from");
    if (roost_stanza_kind(ev->stanza) == ROOST_STANZA_PRESENCE &&
        from != NULL) {
        for (int i = 0; i < cs->n; i++) {
            const char *f = roost_stanza_attr(cs->held[i], "from");

            if (roost_stanza_kind(cs->held[i]) == ROOST_STANZA_PRESENCE &&
                f != NULL && strcmp(f, from) == 0) {
                roost_stanza_unref(cs->held[i]);
                memmove(&cs->held[i], &cs->held[i + 1],
                        (size_t)(cs->n - i - 1) * sizeof(*cs->held));
                cs->n--;
                break;
            }
        }
    }
    if (cs->n >= conf->max_held) {
        csi_flush(m, ev->session, cs);
        return ROOST_PASS;
    }
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 8;
        cs->held =
            roost_xrealloc(cs->held, (size_t)cs->cap * sizeof(*cs->held));
    }
    cs->held[cs->n++] = roost_stanza_ref(ev->stanza);
    /* Kept for later: roost_session_deliver tells the module that
     * delivered it -ROOST_EDENIED, which only matters for messages, and
     * the only messages held here are chat states (never stored). */
    return ROOST_HANDLED;
}

static roost_verdict_t
csi_active(const roost_ev_t *ev, void *arg)
{
    csi_sess_t *cs = csi_sess(ev->mod, ev->origin, 0);

    if (cs != NULL) {
        cs->inactive = 0;
        csi_flush(ev->mod, ev->origin, cs);
    }
    return ROOST_HANDLED;
}

static roost_verdict_t
csi_inactive(const roost_ev_t *ev, void *arg)
{
    csi_sess(ev->mod, ev->origin, 1)->inactive = 1;
    return ROOST_HANDLED;
}

static roost_verdict_t
csi_closed(const roost_ev_t *ev, void *arg)
{
    void **slot = roost_session_slot(ev->origin, ev->mod);
    csi_sess_t *cs = *slot;

    if (cs != NULL) {
        /* Presence and chatter only: nothing the XEP-0198 queue or
         * offline storage would have kept. */
        csi_drop(cs);
        roost_free(cs);
        *slot = NULL;
    }
    return ROOST_PASS;
}

static int
csi_load(roost_mod_t *m)
{
    roost_stanza_t *f = roost_stanza_new(CSI_NS, "csi");
    int rc;

    roost_add_stream_feature(m, f);
    roost_stanza_unref(f);
    rc = roost_hook_nonza(m, CSI_NS, "active", csi_active, NULL);
    if (rc == 0)
        rc = roost_hook_nonza(m, CSI_NS, "inactive", csi_inactive, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_DELIVER, ROOST_PRIO_DEFAULT, csi_deliver,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_CLOSED, ROOST_PRIO_DEFAULT,
                        csi_closed, NULL);
    return rc;
}

ROOST_MODULE(csi) = {
    .abi = ROOST_ABI,
    .name = "csi",
    .opts = csi_opts,
    .conf_size = sizeof(struct csi_conf),
    .load = csi_load,
};
