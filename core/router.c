/* core/router.c: where every stanza goes (RFC 6120 §10, RFC 6121 §8).
 *
 * The c2s entry stamps `from` with the session's full JID (HOUSE 16),
 * parses `to`, fires ROOST_EV_PRE_STANZA, then routes.  Routing classifies
 * the stanza once (kind x target: host, bare, full, remote), dispatches IQs
 * to registered handlers and fires the typed events; when no module
 * handles a stanza, roost_router_default() decides, from the table in
 * doc/stanza_routing.md; other domains go to a component (XEP-0114) or
 * over s2s (from a host or a component's domain).  Not here: presence
 * semantics (mod_presence), message delivery to bare JIDs (mod_message),
 * the s2s streams themselves (core/s2s.c). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "component.h"
#include "s2s.h"
#include "server.h"
#include "sm.h"

static int
type_is(const char *type, const char *v)
{
    return type != NULL && strcmp(type, v) == 0;
}

roost_rt_action_t
roost_router_default(roost_stanza_kind_t kind, const char *type,
                     roost_rt_target_t target, int session_exists)
{
    int err = type_is(type, "error");

    if (target == ROOST_RT_REMOTE) {
        /* No federation yet: RFC 6120 §10.4.3.  Never bounce errors or
         * presence. */
        if (err || kind == ROOST_STANZA_PRESENCE ||
            (kind == ROOST_STANZA_IQ && type_is(type, "result")))
            return ROOST_RA_DROP;
        return ROOST_RA_BOUNCE_REMOTE;
    }
    switch (kind) {
    case ROOST_STANZA_MESSAGE:
        /* RFC 6121 §8.5.3.1: a full JID that is online gets its message,
         * errors included (that is how bounces reach their sender).
         * Otherwise (§8.5.2.2, §8.5.3.2) errors and headlines are dropped
         * and everything else is undeliverable. */
        if (target == ROOST_RT_FULL && session_exists)
            return ROOST_RA_DELIVER_FULL;
        if (err || type_is(type, "headline"))
            return ROOST_RA_DROP;
        return ROOST_RA_BOUNCE_UNAVAILABLE;
    case ROOST_STANZA_PRESENCE:
        /* RFC 6121 §8.5.2.1.2 / §8.5.3.1 when no presence module runs:
         * directed available/unavailable presence reaches the user. */
        if (target == ROOST_RT_FULL)
            return session_exists &&
                           (type == NULL || err || type_is(type, "unavailable"))
                       ? ROOST_RA_DELIVER_FULL
                       : ROOST_RA_DROP;
        if (err)
            return ROOST_RA_DROP;
        if (target == ROOST_RT_BARE &&
            (type == NULL || type_is(type, "unavailable")))
            return ROOST_RA_DELIVER_AVAILABLE;
        return ROOST_RA_DROP;
    case ROOST_STANZA_IQ:
        if (!type_is(type, "get") && !type_is(type, "set")) {
            if (type_is(type, "result") || err) {
                /* RFC 6121 §8.5.3.1: responses go to their full JID. */
                return target == ROOST_RT_FULL && session_exists
                           ? ROOST_RA_DELIVER_FULL
                           : ROOST_RA_DROP;
            }
            return ROOST_RA_BOUNCE_BAD_REQUEST;
        }
        if (target == ROOST_RT_FULL && session_exists)
            return ROOST_RA_DELIVER_FULL;
        return ROOST_RA_BOUNCE_UNAVAILABLE;
    default: return ROOST_RA_DROP;
    }
}

void
roost_router_bounce(roost_host_t *h, roost_stanza_t *st,
                    roost_stanza_err_t cond, const char *text)
{
    roost_stanza_t *err;

    if (type_is(roost_stanza_attr(st, "type"), "error"))
        return;
    if (roost_stanza_attr(st, "from") == NULL)
        return;
    err = roost_stanza_error(st, cond, text);
    if (roost_stanza_attr(err, "from") == NULL)
        roost_stanza_set_attr(err, "from", h->name);
    roost_router_route(h, NULL, err);
    roost_stanza_unref(err);
}

static void
deliver_available(roost_host_t *h, const char *node, roost_stanza_t *st)
{
    roost_user_t *u = roost_server_find_user(h, node);

    for (roost_session_t *s = u ? u->sessions : NULL; s != NULL;
         s = s->next_of_user)
        if (s->available)
            roost_conn_send(s, st);
}

/* IQs for the server itself or for the sender's own account: handlers
 * registered with roost_hook_iq().  Returns 1 if handled. */
static int
dispatch_iq(roost_host_t *h, roost_session_t *origin, roost_stanza_t *st,
            const roost_jid_t *from, const roost_jid_t *to)
{
    roost_stanza_t *payload = roost_stanza_first_child(st);
    const char *type = roost_stanza_attr(st, "type");
    roost_iq_entry_t *e;
    roost_handler_fn fn;
    roost_ev_t ev;

    if (payload == NULL || roost_stanza_ns(payload) == NULL)
        return 0;
    e = roost_iq_find(h, roost_stanza_ns(payload), roost_stanza_name(payload));
    if (e == NULL)
        return 0;
    fn = type_is(type, "get") ? e->get : e->set;
    if (fn == NULL)
        return 0;
    ev.mod = e->mod;
    ev.origin = origin;
    ev.stanza = st;
    ev.from = from;
    ev.to = to;
    return fn(&ev, e->arg) == ROOST_HANDLED;
}

static int
iq_valid(roost_stanza_t *st)
{
    const char *type = roost_stanza_attr(st, "type");
    roost_stanza_t *c;
    int n = 0;

    /* RFC 6120 §8.3.1: an error carries the request's id, and a request
     * without one (answered bad-request) gives an error without one. */
    if (type_is(type, "error"))
        return 1;
    if (roost_stanza_attr(st, "id") == NULL)
        return 0;
    if (type_is(type, "result"))
        return 1;
    if (!type_is(type, "get") && !type_is(type, "set"))
        return 0;
    /* RFC 6120 §8.2.3: get and set carry exactly one payload. */
    for (c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c))
        n++;
    return n == 1;
}

static void route_local(roost_host_t *th, roost_host_t *h,
                        roost_session_t *origin, roost_stanza_t *st,
                        const roost_jid_t *from, const roost_jid_t *to);

/* A stanza waiting for its recipient's state to load (core/user.c). */
typedef struct {
    roost_host_t *th, *h;
    roost_session_t *origin; /* held */
    roost_stanza_t *st;      /* a reference */
    roost_jid_t *from, *to;
    roost_sm_hold_t *hold; /* the sender's XEP-0198 ack waits for us */
} route_wait_t;

static void
route_resume(void *arg, roost_user_t *u)
{
    route_wait_t *w = arg;
    roost_sm_ctx_t saved;

    roost_sm_enter_hold(w->hold, &saved);
    /* A sender that has gone since does not take its stanza back: it
     * was accepted (its from is already stamped). */
    route_local(w->th, w->h,
                w->origin != NULL && !w->origin->freeing ? w->origin : NULL,
                w->st, w->from, w->to);
    roost_sm_leave(&saved);
    roost_sm_release(w->hold);
    roost_user_unpin(u);
    if (w->origin != NULL)
        roost_conn_release(w->origin);
    roost_stanza_unref(w->st);
    roost_jid_free(w->from);
    roost_jid_free(w->to);
    roost_free(w);
}

static void
route_wait(roost_host_t *th, roost_host_t *h, roost_session_t *origin,
           roost_stanza_t *st, const roost_jid_t *from, const roost_jid_t *to)
{
    route_wait_t *w = roost_xcalloc(1, sizeof(*w));

    w->th = th;
    w->h = h;
    w->origin = origin;
    if (origin != NULL)
        roost_conn_hold(origin);
    w->st = roost_stanza_ref(st);
    w->from = roost_jid_dup(from);
    w->to = roost_jid_dup(to);
    w->hold = roost_sm_hold();
    roost_user_need(th, roost_jid_node(to), route_resume, w);
}

/* RFC 6121 §8.5.1: the account does not exist.  A subscription request
 * or a probe is answered with unsubscribed (§3.1.3, §4.3.2), other
 * presence is ignored, messages and requests get service-unavailable,
 * errors and results are dropped. */
static void
route_no_user(roost_host_t *th, roost_stanza_t *st)
{
    roost_stanza_kind_t kind = roost_stanza_kind(st);
    const char *type = roost_stanza_attr(st, "type");

    if (kind == ROOST_STANZA_PRESENCE &&
        (type_is(type, "subscribe") || type_is(type, "probe"))) {
        roost_jid_t *from = roost_jid_new(roost_stanza_attr(st, "from"));
        roost_jid_t *to = roost_jid_new(roost_stanza_attr(st, "to"));
        roost_stanza_t *p;

        if (from != NULL && to != NULL) {
            p = roost_stanza_new(ROOST_NS_CLIENT, "presence");
            roost_stanza_set_attr(p, "type", "unsubscribed");
            roost_stanza_set_attr(p, "from", roost_jid_bare(to));
            roost_stanza_set_attr(p, "to", roost_jid_bare(from));
            roost_router_route(th, NULL, p);
            roost_stanza_unref(p);
        }
        roost_jid_free(from);
        roost_jid_free(to);
        return;
    }
    if (kind == ROOST_STANZA_PRESENCE || type_is(type, "error") ||
        (kind == ROOST_STANZA_IQ && !type_is(type, "get") &&
         !type_is(type, "set")))
        return;
    roost_router_bounce(th, st, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
}

static void route_default(roost_host_t *th, roost_host_t *h, roost_stanza_t *st,
                          roost_stanza_kind_t kind, const char *type,
                          roost_rt_target_t target, roost_session_t *full,
                          const roost_jid_t *to);

static void
route_local(roost_host_t *th, roost_host_t *h, roost_session_t *origin,
            roost_stanza_t *st, const roost_jid_t *from, const roost_jid_t *to)
{
    roost_stanza_kind_t kind = roost_stanza_kind(st);
    const char *type = roost_stanza_attr(st, "type");
    roost_rt_target_t target;
    roost_session_t *full = NULL;
    roost_event_t ev = ROOST_EV__COUNT;

    if (roost_jid_node(to) == NULL)
        target = ROOST_RT_HOST;
    else if (roost_jid_resource(to) == NULL)
        target = ROOST_RT_BARE;
    else
        target = ROOST_RT_FULL;
    if (target != ROOST_RT_HOST) {
        /* DESIGN.md: events for an account fire only once its state is in
         * memory; until then the stanza waits, in order. */
        roost_user_t *u = roost_server_find_user(th, roost_jid_node(to));

        if (u == NULL || !u->loaded) {
            route_wait(th, h, origin, st, from, to);
            return;
        }
        if ((!u->exists && u->count == 0) || u->deleting) {
            route_no_user(th, st);
            return;
        }
    }
    if (target == ROOST_RT_FULL)
        full = roost_server_find_session(th, roost_jid_full(to));

    switch (kind) {
    case ROOST_STANZA_MESSAGE:
        ev = target == ROOST_RT_HOST   ? ROOST_EV_MESSAGE_HOST
             : target == ROOST_RT_BARE ? ROOST_EV_MESSAGE_BARE
                                       : ROOST_EV_MESSAGE_FULL;
        break;
    case ROOST_STANZA_PRESENCE:
        ev = target == ROOST_RT_HOST   ? ROOST_EV_PRESENCE_HOST
             : target == ROOST_RT_BARE ? ROOST_EV_PRESENCE_BARE
                                       : ROOST_EV_PRESENCE_FULL;
        break;
    case ROOST_STANZA_IQ:
        if (!iq_valid(st)) {
            roost_router_bounce(h, st, ROOST_SE_BAD_REQUEST, NULL);
            return;
        }
        if ((target == ROOST_RT_HOST ||
             (target == ROOST_RT_BARE && roost_jid_bare_eq(from, to))) &&
            (type_is(type, "get") || type_is(type, "set")) &&
            dispatch_iq(th, origin, st, from, to))
            return;
        if (target == ROOST_RT_BARE)
            ev = ROOST_EV_IQ_BARE;
        else if (target == ROOST_RT_FULL)
            ev = ROOST_EV_IQ_FULL;
        break;
    default: return;
    }
    if (ev != ROOST_EV__COUNT) {
        /* A hook may substitute the stanza (roost_event_replace); the
         * default below applies to the substitute. */
        roost_stanza_t *cur = roost_stanza_ref(st);

        if (roost_hooks_run_r(th, ev, origin, &cur, from, to) != ROOST_HANDLED)
            route_default(th, h, cur, kind, type, target, full, to);
        roost_stanza_unref(cur);
        return;
    }
    route_default(th, h, st, kind, type, target, full, to);
}

/* What the core does with a local stanza nobody handled (the table in
 * doc/stanza_routing.md). */
static void
route_default(roost_host_t *th, roost_host_t *h, roost_stanza_t *st,
              roost_stanza_kind_t kind, const char *type,
              roost_rt_target_t target, roost_session_t *full,
              const roost_jid_t *to)
{
    roost_rt_action_t act =
        roost_router_default(kind, type, target, full != NULL);

    switch (act) {
    case ROOST_RA_DELIVER_FULL: roost_conn_send(full, st); break;
    case ROOST_RA_DELIVER_AVAILABLE:
        deliver_available(th, roost_jid_node(to), st);
        break;
    case ROOST_RA_BOUNCE_UNAVAILABLE:
        roost_router_bounce(th, st, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
        break;
    case ROOST_RA_BOUNCE_REMOTE:
        roost_router_bounce(th, st, ROOST_SE_REMOTE_SERVER_NOT_FOUND, NULL);
        break;
    case ROOST_RA_BOUNCE_BAD_REQUEST:
        roost_router_bounce(th, st, ROOST_SE_BAD_REQUEST, NULL);
        break;
    case ROOST_RA_DROP: break;
    }
}

/* Routing with from and to already parsed (the c2s path has both; the
 * JID preparation is the costly part of routing). */
static void
route_jids(roost_host_t *h, roost_session_t *origin, roost_stanza_t *st,
           const roost_jid_t *from, const roost_jid_t *to)
{
    roost_host_t *th = roost_server_host(roost_jid_domain(to));

    if (th == NULL && roost_component_serves(roost_jid_domain(to))) {
        /* XEP-0114: a component of this server. */
        if (roost_component_route(st, to) != 0 &&
            roost_router_default(roost_stanza_kind(st),
                                 roost_stanza_attr(st, "type"), ROOST_RT_REMOTE,
                                 0) == ROOST_RA_BOUNCE_REMOTE)
            roost_router_bounce(h, st, ROOST_SE_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    if (th == NULL && roost_s2s_enabled() &&
        (roost_server_host(roost_jid_domain(from)) != NULL ||
         roost_component_serves(roost_jid_domain(from)))) {
        /* RFC 6120 §10.4: another domain, over server-to-server, from a
         * host or from a component (XEP-0114; core/component.c checked
         * that its from is in the component's domain). */
        roost_s2s_route(st, from, to);
        return;
    }
    if (th == NULL) {
        roost_rt_action_t act = roost_router_default(
            roost_stanza_kind(st), roost_stanza_attr(st, "type"),
            ROOST_RT_REMOTE, 0);

        if (act == ROOST_RA_BOUNCE_REMOTE)
            roost_router_bounce(h, st, ROOST_SE_REMOTE_SERVER_NOT_FOUND, NULL);
        return;
    }
    route_local(th, h, origin, st, from, to);
}

void
roost_router_route(roost_host_t *h, roost_session_t *origin, roost_stanza_t *st)
{
    const char *from_s = roost_stanza_attr(st, "from");
    const char *to_s = roost_stanza_attr(st, "to");
    roost_jid_t *from = from_s ? roost_jid_new(from_s) : NULL;
    roost_jid_t *to = to_s ? roost_jid_new(to_s) : NULL;

    if (from == NULL || to == NULL) {
        /* Internal callers always set both; a module that did not gets a
         * log line, not a crash. */
        ROOST_LOG(ROOST_LOG_WARN, h->name,
                  "dropping a %s without valid from/to", roost_stanza_name(st));
        goto out;
    }
    route_jids(h, origin, st, from, to);
out:
    roost_jid_free(from);
    roost_jid_free(to);
}

void
roost_router_c2s(roost_session_t *s, roost_stanza_t *st)
{
    const char *from_s = roost_stanza_attr(st, "from");
    const char *to_s = roost_stanza_attr(st, "to");
    roost_stanza_kind_t kind = roost_stanza_kind(st);
    roost_jid_t *to = NULL;
    roost_stanza_t *cur;

    if (s->user != NULL && s->user->deleting)
        return; /* the account is being removed (roost_account_delete) */

    /* HOUSE 16: `from` is the session's full JID; a client may leave it
     * out or name its own bare or full JID, anything else is a spoof
     * (RFC 6120 §8.1.2.1, §4.9.3.9). */
    if (from_s != NULL) {
        roost_jid_t *f = roost_jid_new(from_s);
        int ok = f != NULL &&
                 (roost_jid_eq(f, s->jid) || (roost_jid_resource(f) == NULL &&
                                              roost_jid_bare_eq(f, s->jid)));

        roost_jid_free(f);
        if (!ok) {
            roost_session_log(s, ROOST_LOG_INFO, "spoofed from refused");
            roost_stream_error(s->stream, "invalid-from", NULL);
            return;
        }
    }
    roost_stanza_set_attr(st, "from", roost_jid_full(s->jid));
    if (to_s != NULL) {
        to = roost_jid_new(to_s);
        if (to == NULL) {
            roost_stanza_t *err =
                roost_stanza_error(st, ROOST_SE_JID_MALFORMED, NULL);

            roost_stanza_set_attr(err, "from", NULL);
            roost_stanza_set_attr(err, "to", NULL);
            if (!type_is(roost_stanza_attr(st, "type"), "error"))
                roost_conn_send(s, err);
            roost_stanza_unref(err);
            return;
        }
        roost_stanza_set_attr(st, "to", roost_jid_full(to));
    }
    if (kind == ROOST_STANZA_PRESENCE && to == NULL) {
        /* Broadcast presence: the session's own availability is core
         * state (routing needs it); what to tell contacts is
         * mod_presence's business. */
        const char *type = roost_stanza_attr(st, "type");

        if (type == NULL || type_is(type, "unavailable")) {
            const char *p =
                roost_stanza_child_text(st, ROOST_NS_CLIENT, "priority");
            long prio = p ? strtol(p, NULL, 10) : 0;

            if (prio < -128 || prio > 127)
                prio = 0;
            s->available = type == NULL;
            s->priority = (int)prio;
        }
        /* A PRE_STANZA hook may substitute the presence
         * (roost_event_replace): the fan-out then sends the substitute,
         * one rewrite for all recipients. */
        cur = roost_stanza_ref(st);
        if (roost_hooks_run_r(s->host, ROOST_EV_PRE_STANZA, s, &cur, s->jid,
                              s->jid) != ROOST_HANDLED)
            roost_hooks_run_r(s->host, ROOST_EV_PRESENCE_OUT, s, &cur, s->jid,
                              s->jid);
        roost_stanza_unref(cur);
        return;
    }
    if (to == NULL) {
        /* RFC 6120 §10.3: no 'to' means the account's bare JID. */
        roost_stanza_set_attr(st, "to", roost_jid_bare(s->jid));
        to = roost_jid_new(roost_jid_bare(s->jid));
    }
    cur = roost_stanza_ref(st);
    if (roost_hooks_run_r(s->host, ROOST_EV_PRE_STANZA, s, &cur, s->jid, to) !=
        ROOST_HANDLED)
        route_jids(s->host, s, cur, s->jid, to);
    roost_stanza_unref(cur);
    roost_jid_free(to);
}
