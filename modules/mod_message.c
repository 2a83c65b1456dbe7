/* modules/mod_message.c: delivery of messages to local users (RFC 6121
 * §8.5.2 bare JID, §8.5.3 full JID).
 *
 * Bare JID, type normal or chat (or missing/unknown, RFC 6121 §5.2.2): to
 * every available resource with non-negative priority that shares the
 * highest priority (the "highest" choice of §8.5.2.1.1, as Prosody does).
 * headline: to all available non-negative resources.  groupchat:
 * service-unavailable.  error: dropped.  With no eligible resource, normal
 * and chat PASS so an offline-storage module hooked at ROOST_PRIO_FALLBACK
 * can take them (the core bounces service-unavailable if nobody does);
 * headline and error are dropped.
 *
 * Full JID: delivered when that session exists, whatever its availability
 * (§8.5.3.1).  Otherwise (§8.5.3.2.1): normal and chat as if to the bare
 * JID, headline and error dropped, groupchat service-unavailable.
 *
 * Not for: privacy lists, blocking or carbons (filters and other modules
 * at other priorities), offline storage, or messages to the host or to
 * remote domains. */
#include <string.h>

#include <roost/module.h>

typedef enum {
    MSG_NORMAL = 0,
    MSG_CHAT,
    MSG_HEADLINE,
    MSG_GROUPCHAT,
    MSG_ERROR
} message_type_t;

/* Sessions looked up on the stack; more resources than this (rare) take
 * one heap array. */
#define MESSAGE_STACK_SESSIONS 16

static message_type_t
message_type(const roost_stanza_t *st)
{
    const char *t = roost_stanza_attr(st, "type");

    if (t == NULL)
        return MSG_NORMAL;
    if (strcmp(t, "chat") == 0)
        return MSG_CHAT;
    if (strcmp(t, "headline") == 0)
        return MSG_HEADLINE;
    if (strcmp(t, "groupchat") == 0)
        return MSG_GROUPCHAT;
    if (strcmp(t, "error") == 0)
        return MSG_ERROR;
    return MSG_NORMAL; /* RFC 6121 §5.2.2: unknown means normal */
}

/* Delivers ev's stanza to the user's available non-negative resources:
 * all of them (all != 0) or only those with the highest priority.
 * Returns how many got it. */
static int
message_deliver_bare(const roost_ev_t *ev, int all)
{
    roost_session_t *stack[MESSAGE_STACK_SESSIONS], **ss = stack;
    const char *node = roost_jid_node(ev->to);
    int n, best = -1, sent = 0;

    if (node == NULL)
        return 0;
    n = roost_user_sessions(ev->mod, node, ss, MESSAGE_STACK_SESSIONS);
    if (n > MESSAGE_STACK_SESSIONS) {
        /* Freed below, before returning. */
        ss = roost_xcalloc((size_t)n, sizeof(*ss));
        n = roost_user_sessions(ev->mod, node, ss, n);
    }
    for (int i = 0; i < n; i++) {
        int prio = roost_session_priority(ss[i]);

        if (roost_session_available(ss[i]) && prio >= 0 && prio > best)
            best = prio;
    }
    /* Highest priority first; a tier whose sessions all refuse it (their
     * own privacy lists: -ROOST_EDENIED) hands it to the next one. */
    while (best >= 0 && sent == 0) {
        int next = -1;

        for (int i = 0; i < n; i++) {
            int prio = roost_session_priority(ss[i]);

            if (!roost_session_available(ss[i]) || prio < 0)
                continue;
            if (prio < best && prio > next)
                next = prio;
            if ((!all && prio != best) || (all && prio > best))
                continue;
            if (roost_session_deliver(ss[i], ev->stanza) == 0)
                sent++;
        }
        best = all ? -1 : next;
    }
    if (ss != stack)
        roost_free(ss);
    return sent;
}

static roost_verdict_t
message_bare(const roost_ev_t *ev, void *arg)
{
    switch (message_type(ev->stanza)) {
    case MSG_ERROR: return ROOST_HANDLED;
    case MSG_GROUPCHAT:
        return roost_bounce(ev, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
    case MSG_HEADLINE:
        message_deliver_bare(ev, 1);
        return ROOST_HANDLED; /* dropped when nobody is online */
    case MSG_NORMAL:
    case MSG_CHAT:
    default:
        /* PASS lets offline storage (ROOST_PRIO_FALLBACK) take it. */
        return message_deliver_bare(ev, 0) > 0 ? ROOST_HANDLED : ROOST_PASS;
    }
}

static roost_verdict_t
message_full(const roost_ev_t *ev, void *arg)
{
    roost_session_t *s = roost_session_find(ev->mod, ev->to);

    /* RFC 6121 §8.5.3.1: an online full JID gets it, or nobody does (a
     * DELIVER hook that refused or held it has had its say). */
    if (s != NULL) {
        roost_session_deliver(s, ev->stanza);
        return ROOST_HANDLED;
    }
    switch (message_type(ev->stanza)) {
    case MSG_NORMAL:
    case MSG_CHAT: return message_bare(ev, arg);
    case MSG_GROUPCHAT:
        return roost_bounce(ev, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
    case MSG_HEADLINE:
    case MSG_ERROR:
    default: return ROOST_HANDLED;
    }
}

static int
message_load(roost_mod_t *m)
{
    int rc;

    rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_DEFAULT, message_bare,
                    NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_DEFAULT,
                        message_full, NULL);
    return rc;
}

ROOST_MODULE(message) = {
    .abi = ROOST_ABI,
    .name = "message",
    .load = message_load,
};
