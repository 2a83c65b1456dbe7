/* roost/module.h: the interface between the Roost core and a module.
 *
 * A module includes this, roost/stanza.h, roost/jid.h, roost/store.h and
 * roost/util.h (SHA-1, base64), and nothing from core/.  It is one shared
 * object exporting one roost_module_t under the symbol
 * roost_module_<name> (ROOST_MODULE(name)).
 * The core instantiates it once per virtual host that lists it; per-vhost
 * state lives behind roost_mod_data(), never in file-scope globals.
 *
 * Pointer arguments are borrowed for the duration of the call unless noted.
 * Everything here runs on the event loop thread. */
#ifndef ROOST_MODULE_H
#define ROOST_MODULE_H

#include <roost/common.h>
#include <roost/jid.h>
#include <roost/stanza.h>

#define ROOST_ABI 1 /* bumped on any incompatible change */

typedef struct roost_mod roost_mod_t;         /* one module on one vhost */
typedef struct roost_session roost_session_t; /* a c2s session */

typedef enum { ROOST_PASS = 0, ROOST_HANDLED = 1 } roost_verdict_t;

/* Hook priorities: higher runs first.  Use these names, adding or
 * subtracting small offsets only when two hooks of one module need order. */
enum {
    ROOST_PRIO_FILTER = 1000,
    /* Between the filters and delivery, for messages to a local user:
     * archiving first (MAM adds the stanza-id every later copy must
     * carry), then copies to other resources (carbons), then holding for
     * order (offline delivery in progress), then delivery (DEFAULT). */
    ROOST_PRIO_ARCHIVE = 300,
    ROOST_PRIO_COPY = 200,
    ROOST_PRIO_QUEUE = 100,
    ROOST_PRIO_DEFAULT = 0,
    ROOST_PRIO_FALLBACK = -1000
};

typedef enum {
    /* A stanza from a local session, after `from` stamping, before
     * routing.  HANDLED stops it. */
    ROOST_EV_PRE_STANZA = 0,
    /* Stanzas addressed to a local user (bare or full JID) or to the host
     * itself (HOST: to="domain" or "domain/resource").  A client's message
     * or IQ without 'to' is addressed to its own bare JID (RFC 6120
     * §10.3).  The stanza's `to` is always set. */
    ROOST_EV_MESSAGE_BARE,
    ROOST_EV_MESSAGE_FULL,
    ROOST_EV_MESSAGE_HOST,
    ROOST_EV_PRESENCE_BARE,
    ROOST_EV_PRESENCE_FULL,
    ROOST_EV_PRESENCE_HOST,
    /* IQs to a local user's bare JID that no IQ handler took. */
    ROOST_EV_IQ_BARE,
    /* Presence broadcast by a local user (no `to`). */
    ROOST_EV_PRESENCE_OUT,
    /* Session lifecycle: stanza is NULL, origin is the session. */
    ROOST_EV_SESSION_BOUND,
    ROOST_EV_SESSION_CLOSED,
    /* IQs (any type) to a local full JID, before the core delivers them
     * to that session (filters: privacy lists). */
    ROOST_EV_IQ_FULL,
    /* An account is being removed (roost_account_delete): stanza and
     * origin are NULL, from and to the account's bare JID; its state is
     * still loaded. */
    ROOST_EV_USER_DELETED,
    /* A stanza a module sends (roost_send) on behalf of a local account of
     * this vhost (from = that account: presence broadcasts, probe
     * answers, unavailable at logout), before it is routed anywhere, this
     * server or another.  HANDLED drops it (privacy presence-out).  What
     * the client sends itself is ROOST_EV_PRE_STANZA. */
    ROOST_EV_OUTBOUND,
    /* A stanza is about to be written to a bound local session (after
     * routing chose it; also stanzas modules hand to
     * roost_session_deliver): ev->session is that session, ev->to its full
     * JID, ev->from the stanza's parsed `from` (NULL when it has none:
     * replies the stream makes itself), ev->origin NULL.  HANDLED means
     * this session does not get it (per-resource privacy lists); a module
     * that keeps it for later (XEP-0352 client state) takes a reference
     * and delivers it with roost_session_deliver, which runs this event
     * again.  A hook may substitute what this session gets
     * (roost_event_replace; the other recipients are not affected). */
    ROOST_EV_DELIVER,
    ROOST_EV__COUNT
} roost_event_t;

typedef struct {
    roost_mod_t *mod;         /* the module instance the hook belongs to */
    roost_session_t *origin;  /* sending local session, or NULL */
    roost_stanza_t *stanza;   /* borrowed: roost_stanza_ref() to keep it */
    const roost_jid_t *from;  /* parsed `from` (never NULL for stanzas) */
    const roost_jid_t *to;    /* parsed `to` (never NULL for stanzas) */
    roost_session_t *session; /* ROOST_EV_DELIVER: the receiving session */
} roost_ev_t;

typedef roost_verdict_t (*roost_handler_fn)(const roost_ev_t *ev, void *arg);

typedef enum {
    ROOST_OPT_BOOL,   /* int: 0 or 1 */
    ROOST_OPT_INT,    /* int64_t */
    ROOST_OPT_SIZE,   /* int64_t bytes */
    ROOST_OPT_MSEC,   /* int64_t milliseconds; config gives seconds */
    ROOST_OPT_STR,    /* const char * (owned by the core) */
    ROOST_OPT_STRLIST /* const char *const * NULL-terminated (core-owned) */
} roost_opt_type_t;

typedef struct {
    const char *name; /* key inside the module's config group */
    roost_opt_type_t type;
    size_t offset;    /* offsetof() into the module's conf struct */
    const char *dflt; /* parsed by the same code as user input; NULL
                            * means unset (0 / NULL) */
    int64_t min, max; /* enforced for INT, SIZE and MSEC (MSEC bounds
                            * in ms); both 0 means unbounded (SIZE and
                            * MSEC are still never negative).  STRLIST
                            * default text: names separated by commas or
                            * spaces. */
} roost_opt_t;

typedef struct {
    uint32_t abi;                   /* ROOST_ABI */
    const char *name;               /* "ping": config name and log tag */
    const char *const *depends;     /* NULL-terminated module names, or NULL */
    const roost_opt_t *opts;        /* ends with {NULL}; may be NULL */
    size_t conf_size;               /* zeroed, filled from opts before load */
    int (*load)(roost_mod_t *m);    /* per vhost; 0 or -ROOST_E* */
    void (*unload)(roost_mod_t *m); /* its hooks and timers are gone */
} roost_module_t;

#define ROOST_MODULE(n) ROOST_API const roost_module_t roost_module_##n

/* Registration; everything registered is removed by the core on unload. */
ROOST_API int roost_hook(roost_mod_t *m, roost_event_t ev, int prio,
                         roost_handler_fn fn, void *arg);
/* IQ handler for get/set requests whose payload is xmlns/child, addressed
 * to the host or by a local user to their own bare JID (including IQs with
 * no 'to', RFC 6120 §10.3).  get or set may be NULL.  One handler per
 * (xmlns, child, type) and vhost; -ROOST_EEXIST otherwise.  A handler that
 * returns ROOST_PASS for a bare-JID IQ lets ROOST_EV_IQ_BARE run. */
ROOST_API int roost_hook_iq(roost_mod_t *m, const char *xmlns,
                            const char *child, roost_handler_fn get,
                            roost_handler_fn set, void *arg);
/* Before authentication (XEP-0077 in-band registration): an IQ handler
 * for unauthenticated streams, offered once TLS is up (or where the host
 * does not require it), and a feature for their <stream:features/>.  The
 * handler gets ev->origin = the unauthenticated session, ev->from NULL and
 * ev->to the host's JID; it answers with roost_session_deliver(origin,
 * reply) (replies carry no to/from).  An IQ without a handler closes the
 * stream with <not-authorized/>. */
ROOST_API int roost_hook_preauth_iq(roost_mod_t *m, const char *xmlns,
                                    const char *child, roost_handler_fn get,
                                    roost_handler_fn set, void *arg);
ROOST_API void roost_add_preauth_stream_feature(roost_mod_t *m,
                                                const roost_stanza_t *el);
/* A top-level element that is not a stanza (a "nonza": XEP-0352's
 * <active/> and <inactive/>) in namespace xmlns named name, from a bound
 * session of this vhost: fn gets ev->origin = that session, ev->stanza =
 * the element, ev->from = the session's full JID, ev->to NULL.  Nonzas
 * are not stanzas: XEP-0198 does not count them, and nothing answers
 * them unless fn does.  One handler per (xmlns, name) and vhost
 * (-ROOST_EEXIST otherwise); an element nobody handles closes the stream
 * with <unsupported-stanza-type/>. */
ROOST_API int roost_hook_nonza(roost_mod_t *m, const char *xmlns,
                               const char *name, roost_handler_fn fn,
                               void *arg);

/* A disco#info feature of the host, and an identity. */
ROOST_API void roost_add_feature(roost_mod_t *m, const char *xmlns);
ROOST_API void roost_add_identity(roost_mod_t *m, const char *category,
                                  const char *type, const char *name);
/* A stream feature offered to bound c2s sessions (element serialised into
 * <stream:features/>).  Borrows el (copies it). */
ROOST_API void roost_add_stream_feature(roost_mod_t *m,
                                        const roost_stanza_t *el);

/* Iterate the host's registry (for mod_disco), in registration order.
 * A feature registered by several modules is reported once per module:
 * callers de-duplicate. */
ROOST_API void roost_host_features(roost_mod_t *m,
                                   void (*fn)(void *arg, const char *xmlns),
                                   void *arg);
ROOST_API void roost_host_identities(roost_mod_t *m,
                                     void (*fn)(void *arg, const char *cat,
                                                const char *type,
                                                const char *name),
                                     void *arg);

/* Account discovery: what the server answers on an account's behalf to
 * disco#info sent to a local user's bare JID (XEP-0030 §3.1), for the
 * user and for contacts with a presence subscription ("from" or "both",
 * XEP-0030 Security Considerations).  A module registers the features it
 * answers at bare JIDs (jabber:iq:last, XEP-0012) and identities such as
 * pubsub/pep (XEP-0163); the same for every account of the vhost.
 * mod_disco adds the account's own identity (account/registered or
 * account/admin).  Removed on unload, like the host's registry; iterated
 * in registration order, once per registering module (callers
 * de-duplicate). */
ROOST_API void roost_add_account_feature(roost_mod_t *m, const char *xmlns);
ROOST_API void roost_add_account_identity(roost_mod_t *m, const char *category,
                                          const char *type, const char *name);
ROOST_API void roost_host_account_features(
    roost_mod_t *m, void (*fn)(void *arg, const char *xmlns), void *arg);
ROOST_API void roost_host_account_identities(
    roost_mod_t *m,
    void (*fn)(void *arg, const char *cat, const char *type, const char *name),
    void *arg);

ROOST_API const void *roost_mod_conf(const roost_mod_t *m);
ROOST_API void **roost_mod_data(roost_mod_t *m);
ROOST_API const char *roost_mod_host(const roost_mod_t *m); /* vhost name */
ROOST_API const char *roost_mod_name(const roost_mod_t *m);

/* Routing.  roost_send: routes st as the server would a stanza with those
 * to/from; a missing from is set to the vhost's domain, to must be set.
 * Borrows st (may add the from attribute).  Returns 0 or -ROOST_E*. */
ROOST_API int roost_send(roost_mod_t *m, roost_stanza_t *st);
/* Queues the error reply for ev's stanza (nothing for errors themselves)
 * and returns ROOST_HANDLED. */
ROOST_API roost_verdict_t roost_bounce(const roost_ev_t *ev,
                                       roost_stanza_err_t cond,
                                       const char *text);
/* Sends a reply built from ev's stanza: roost_stanza_reply() plus routing.
 * Borrows payload (may be NULL): a copy is attached to the result. */
ROOST_API roost_verdict_t roost_reply(const roost_ev_t *ev,
                                      const roost_stanza_t *payload);

/* Substitutes st for the stanza of the event being dispatched, from a
 * handler of that event: the later hooks get st as ev->stanza (so does
 * the caller, at once), and what the core does with the stanza after the
 * hooks uses st: the ROOST_EV_PRESENCE_OUT fan-out after a broadcast's
 * ROOST_EV_PRE_STANZA, routing after ROOST_EV_PRE_STANZA and
 * ROOST_EV_OUTBOUND, the default delivery after the routed events, what
 * the session is sent (and XEP-0198 queues) after ROOST_EV_DELIVER.  This
 * is how a module rewrites a stanza once, before the fan-out, instead of
 * once per recipient (mod_vcard's avatar hash).  st must keep the kind
 * and the from, to and type attributes of ev->stanza (the router has
 * classified the stanza by them).  Not for IQ and nonza handlers, or
 * events without a stanza.  Borrows st (the core takes its
 * own reference); a stanza that an earlier replace put in is released.
 * Returns 0 or -ROOST_EINVAL (another event, or st differs). */
ROOST_API int roost_event_replace(const roost_ev_t *ev, roost_stanza_t *st);

/* Per-user state (DESIGN.md, "State and storage").  A module that keeps
 * state about a local account (privacy lists, offline queue counters...)
 * registers a loader once in load().  The core runs every module's
 * load() on the storage worker when the account's state is needed (at
 * login, or when a stanza arrives for it while it has no session) and
 * fires that account's events only once all of it is in memory; free()
 * runs on the loop when the state is dropped (no session, nothing in
 * flight).  load() may read stores and must not touch anything else.
 * Returns 0 or -ROOST_EEXIST (one loader per module). */
typedef struct {
    void *(*load)(roost_mod_t *m, const char *user);
    void (*free)(roost_mod_t *m, void *state);
} roost_user_state_t;
ROOST_API int roost_user_state(roost_mod_t *m, const roost_user_state_t *ops);
/* The module's loaded state slot for user (the value load() returned; the
 * module may replace it), or NULL when the user's state is not loaded.
 * Valid inside any event for that user and while the user has sessions. */
ROOST_API void **roost_user_data(roost_mod_t *m, const char *user);

/* Local sessions.  roost_user_sessions fills out with at most max sessions
 * of node@vhost that are bound (any availability) and returns how many
 * exist.  The pointers are valid until control returns to the loop. */
ROOST_API int roost_user_sessions(roost_mod_t *m, const char *node,
                                  roost_session_t **out, int max);
ROOST_API roost_session_t *roost_session_find(roost_mod_t *m,
                                              const roost_jid_t *full);
ROOST_API const roost_jid_t *roost_session_jid(const roost_session_t *s);
/* Has sent available presence and not unavailable since. */
ROOST_API int roost_session_available(const roost_session_t *s);
/* The client's connection is gone and XEP-0198 keeps the session for a
 * resumption: stanzas delivered to it wait in its queue (push
 * notifications, XEP-0357, are for this case). */
ROOST_API int roost_session_hibernating(const roost_session_t *s);
ROOST_API int roost_session_priority(const roost_session_t *s);
ROOST_API void roost_session_set_presence(roost_session_t *s, int available,
                                          int priority);
/* Queues st for the session's client (serialised now).  Borrows st.
 * Returns 0, -ROOST_ENOTFOUND when s is closing, -ROOST_EDENIED when a
 * ROOST_EV_DELIVER hook kept it from s. */
ROOST_API int roost_session_deliver(roost_session_t *s, roost_stanza_t *st);
/* Keeps s allocated (not open) past this loop turn, for an answer
 * computed asynchronously before authentication (there is no JID to
 * route it to): roost_session_deliver fails once s is closing.  Each
 * hold needs one release, on the loop. */
ROOST_API void roost_session_hold(roost_session_t *s);
ROOST_API void roost_session_release(roost_session_t *s);
/* The client's IP address as text ("127.0.0.1", "::1"). */
ROOST_API const char *roost_session_addr(const roost_session_t *s);
/* Whether jid (any form; its bare JID counts) is an admin of m's vhost
 * (the host's `admins` list in the config). */
ROOST_API int roost_host_is_admin(roost_mod_t *m, const roost_jid_t *jid);
/* The number of accounts of m's vhost that are online: with at least one
 * bound session, available or not (XEP-0133 §4.15 "online users"; an
 * account with three resources counts once; SASL ANONYMOUS accounts
 * count while they are online).  A counter the core keeps as sessions
 * bind and unbind: O(1), never a scan.  The accounts stored for the
 * vhost are counted by roost_host_account_count (roost/account.h). */
ROOST_API int roost_host_online_count(roost_mod_t *m);
/* Calls fn(arg, node) for each account roost_host_online_count counts
 * (node: its localpart), in no particular order, until fn returns
 * non-zero.  Returns how many calls were made.  fn must not bind or
 * close sessions.  A walk over the vhost's loaded accounts: for an
 * administrator's listing (XEP-0133 §4.20), not for every stanza. */
ROOST_API int roost_host_online_users(roost_mod_t *m,
                                      int (*fn)(void *arg, const char *node),
                                      void *arg);
/* Per-module per-session slot, NULL-initialised; free what you put there
 * in an ROOST_EV_SESSION_CLOSED hook. */
ROOST_API void **roost_session_slot(roost_session_t *s, const roost_mod_t *m);
/* Closes the session with a stream error condition name (RFC 6120
 * §4.9.3, e.g. "policy-violation") or NULL for a plain close.  The free
 * happens at the end of the loop turn. */
ROOST_API void roost_session_close(roost_session_t *s, const char *cond);

/* One-shot timer after msec; removed on unload.  Returns an id > 0. */
ROOST_API int roost_timer_add(roost_mod_t *m, uint64_t msec,
                              void (*fn)(roost_mod_t *m, void *arg), void *arg);
ROOST_API void roost_timer_cancel(roost_mod_t *m, int id);

/* Leveled log tagged with module and vhost.  Never log passwords or
 * message bodies at INFO or above. */
ROOST_API void roost_log(const roost_mod_t *m, int level, const char *fmt, ...)
    ROOST_PRINTF(3, 4);

/* Server software name and version (for XEP-0092). */
ROOST_API const char *roost_version(void);

#endif /* ROOST_MODULE_H */
