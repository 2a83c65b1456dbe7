/* core/server.h: the process-wide server state: virtual hosts, their
 * module instances and registries, the session tables, and the internal
 * entry points that core/conn.c, core/router.c and core/module.c share.
 * Modules never see this header (HOUSE 7). */
#ifndef ROOST_CORE_SERVER_H
#define ROOST_CORE_SERVER_H

#include <stdint.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <uthash.h>

#include <roost/module.h>
#include <roost/store.h>
#include "config.h"
#include "stream.h"

struct event_base;
struct bufferevent;
struct evbuffer;
struct event;
struct evconnlistener;
typedef struct roost_host roost_host_t;
typedef struct roost_sasl roost_sasl_t;
typedef struct roost_sm roost_sm_t;

/* A registered hook. */
typedef struct roost_hook_entry {
    int prio;
    roost_handler_fn fn;
    void *arg;
    roost_mod_t *mod;
    struct roost_hook_entry *next;
} roost_hook_entry_t;

/* An IQ handler, hashed by "xmlns child". */
typedef struct roost_iq_entry {
    char *key;
    roost_handler_fn get, set;
    void *arg;
    roost_mod_t *mod;
    UT_hash_handle hh;
} roost_iq_entry_t;

/* A disco feature or identity, or a stream feature. */
typedef struct roost_reg_entry {
    char *a, *b, *c;    /* feature: a; identity: category/type/name */
    roost_stanza_t *el; /* stream feature element */
    roost_mod_t *mod;
    struct roost_reg_entry *next;
} roost_reg_entry_t;

typedef struct roost_roster roost_roster_t;
typedef struct roost_user_waiter roost_user_waiter_t;

/* A local account whose state is in memory (DESIGN.md, "State and
 * storage"): loaded by the storage worker when it logs in or when a
 * stanza arrives for it, kept while it is pinned (sessions past SASL,
 * stanzas in flight), then dropped.  core/user.c. */
typedef struct roost_user {
    char *node;
    roost_host_t *host;
    roost_session_t *sessions; /* bound, linked through next_of_user */
    int count;                 /* bound sessions */
    int pins;                  /* holders; the state is dropped at 0 */
    int loaded;                /* state below is valid */
    int exists;                /* the account exists */
    int transient;             /* no stored account (SASL ANONYMOUS): its
                                * data goes when its last session does */
    int deleting;              /* roost_account_delete is running: nothing
                                * more is accepted from or for it */
    roost_roster_t *roster;
    void **mod_state; /* per module instance (index) */
    int nmod_state;
    roost_user_waiter_t *waiters, **waiters_tail; /* while loading */
    struct worker_job *load_job; /* its queued load (core/worker.h handle),
                                  * until the load's done ran */
    UT_hash_handle hh;
} roost_user_t;

/* A module's per-user state loader. */
typedef struct roost_user_loader {
    roost_mod_t *mod;
    roost_user_state_t ops;
    struct roost_user_loader *next;
} roost_user_loader_t;

struct roost_host {
    char *name;
    const roost_host_conf_t *conf;
    SSL_CTX *tls;
    roost_mod_t **mods;
    int nmods;
    roost_hook_entry_t *hooks[ROOST_EV__COUNT];
    roost_iq_entry_t *iqs;
    roost_iq_entry_t *preauth_iqs; /* XEP-0077 before SASL */
    roost_iq_entry_t *nonzas;      /* top-level non-stanza elements (get) */
    roost_reg_entry_t *preauth_features;
    roost_reg_entry_t *features, *identities, *stream_features;
    roost_user_t *users; /* loaded accounts by localpart */
    roost_user_loader_t *loaders;
    roost_store_t *roster_store;
    roost_session_t *by_full; /* bound sessions by full JID */
    int online;               /* accounts with a bound session (count > 0) */
    UT_hash_handle hh;
};

struct roost_session {
    uint64_t id;
    int refs;           /* holders; freed at 0 once closed */
    int closing;        /* stream finished: no more routing */
    int freeing;        /* free scheduled */
    roost_host_t *host; /* set once the stream names one */
    const roost_listen_conf_t *listen;
    struct bufferevent *bev;
    struct event *auth_timer; /* unauthenticated lifetime */
    struct event *fail_timer; /* delayed SASL failure */
    struct event *idle_timer; /* c2s_timeout: ping, then close */
    int64_t last_input;       /* monotonic ms of the last read */
    int ping_outstanding;     /* a keepalive ping was sent */
    int close_polls;          /* flush checks after close */
    int reads_paused;         /* output above the high-water mark */
    int input_paused;         /* stream waits for TLS/SASL */
    roost_stream_t *stream;
    roost_sasl_t *sasl;
    struct roost_conn_cb *cb; /* channel bindings while authenticating */
    /* SASL job results, handed from the worker to the loop */
    int sasl_status;
    char *sasl_out, *sasl_cond, *sasl_user;
    char *sasl_mech, *sasl_in;
    char *sasl_in2;      /* FAST: the SASL2 user agent id */
    int fast_invalidate; /* FAST: retire the token used */
    int fast_rotate;     /* FAST: token close to expiry, hand out a new one */
    char addr[64];       /* peer address for logs */
    roost_jid_t *jid;    /* full JID once bound */
    int available, priority;
    void **slots; /* per module instance */
    int nslots;
    roost_user_t *user;   /* bound: the account's entry */
    roost_user_t *pinned; /* past SASL: keeps the state loaded */
    int roster_requested; /* RFC 6121 §2.1.6 interested */
    roost_sm_t *sm;       /* XEP-0198 state once enabled (core/sm.c) */
    int hibernating;      /* transport lost, waiting for a resumption */
    roost_session_t *next_of_user;
    roost_session_t *all_next, *all_prev;   /* every connection */
    roost_session_t *busy_next, *busy_prev; /* read since last idle sweep */
    int busy;                               /* ... is on that list */
    /* Output staged this loop turn under STARTTLS (core/conn.c), and the
     * list of sessions that have some; NULL when none. */
    struct evbuffer *stage;
    roost_session_t *flush_next, *flush_prev;
    /* Before authentication (issue 6, core/conn.c "pre-auth limits") */
    int authed;          /* SASL succeeded: none of this applies */
    int preauth;         /* counted in the server's pre-auth total */
    int mem_paused;      /* not read: that total is over the limit */
    size_t preauth_mem;  /* what it adds to the total */
    size_t preauth_read; /* bytes read so far */
    size_t in_mark;      /* input bytes already counted */
    roost_session_t *paused_next, *paused_prev; /* mem_paused, oldest
                                                 * first */
    UT_hash_handle hh; /* in host->by_full, key jid full */
};

typedef struct roost_server {
    struct event_base *base;
    roost_config_t *cfg;
    roost_host_t *hosts;  /* by name */
    SSL_CTX *default_tls; /* for direct TLS before SNI */
    struct evconnlistener **listeners;
    int nlisteners;
    uint64_t next_session_id;
    int nsessions;
    roost_session_t *all; /* every c2s connection */
    int shutting_down;
} roost_server_t;

extern roost_server_t *roost_srv;

/* server.c */
roost_host_t *roost_server_host(const char *name);
/* Binds s (authenticated) to resource (NULL: generate).  Returns the full
 * JID string or NULL with *err set. */
const char *roost_server_bind(roost_session_t *s, const char *resource,
                              roost_stanza_err_t *err);
/* Removes s from the session tables and fires SESSION_CLOSED. */
void roost_server_unbind(roost_session_t *s);
roost_session_t *roost_server_find_session(roost_host_t *h, const char *full);
roost_user_t *roost_server_find_user(roost_host_t *h, const char *node);
int roost_server_init(roost_config_t *cfg, struct event_base *base, char **err);
void roost_server_shutdown(void);
/* SIGHUP: new TLS contexts for every host from the cert/key paths in cfg
 * (a host cfg lacks keeps its running paths); connections keep theirs.
 * A host whose files fail to load keeps its old context.  Returns the
 * number of hosts that failed. */
int roost_server_reload_tls(const roost_config_t *cfg);

/* conn.c */
/* Binds a listener for l (numeric address), calling cb(arg) on accept, and
 * appends it to *arr / *n.  kind names the listener in errors ("c2s").
 * Returns 0, or -ROOST_ECONFIG / -ROOST_EIO with *err set (caller frees). */
int roost_listen_bind(const roost_listen_conf_t *l, evconnlistener_cb cb,
                      void *arg, int backlog, const char *kind,
                      struct evconnlistener ***arr, int *n, char **err);
int roost_conn_listen(const roost_listen_conf_t *l, char **err);
void roost_conn_hold(roost_session_t *s);
void roost_conn_release(roost_session_t *s);
/* Frees every remaining connection now (shutdown, after draining). */
void roost_conn_free_all(void);
/* Sends a stanza to a bound session (backpressure applies; counted and
 * queued for XEP-0198; only queued while the session hibernates).
 * Returns 0, or -ROOST_EDENIED when a ROOST_EV_DELIVER hook kept it from
 * s, -ROOST_ENOTFOUND when s is closing. */
int roost_conn_send(roost_session_t *s, roost_stanza_t *st);
/* Writes raw bytes (stream management elements); dropped when the
 * session has no transport. */
void roost_conn_write(roost_session_t *s, const char *buf, size_t len);
/* Closes s with a stream error cond and optional text (cond NULL: a
 * plain </stream:stream>); a session without transport (hibernating)
 * just ends. */
void roost_conn_close(roost_session_t *s, const char *cond, const char *text);
/* XEP-0198 resumption: moves the transport and stream of the freshly
 * authenticated n into the bound session o, then n goes.  Returns
 * non-zero (the stream must stop parsing). */
int roost_conn_resume(roost_session_t *n, roost_session_t *o);
void roost_session_log(const roost_session_t *s, int level, const char *fmt,
                       ...) ROOST_PRINTF(3, 4);
/* Pre-authentication limits (limits.preauth_*), one accounting for c2s,
 * s2s and component connections.  roost_preauth_full: whether a new
 * connection from ip is refused because unauthenticated connections hold
 * preauth_max_total (logged, at most once a second).
 * roost_preauth_account: moves a connection's share of that total from
 * *mem to cost (0 when it authenticated or goes); O(1).
 * roost_preauth_count: counts the bytes that arrived in an input buffer
 * now len bytes long, *mark being its length when last counted (the
 * caller sets it to what is left after parsing); 1 once *read passed
 * preauth_max_bytes (the caller closes with <policy-violation/>), else
 * 0.  roost_preauth_max_stanza: the stanza limit until then. */
int roost_preauth_full(const char *ip);
/* The numeric address of sa (IPv4 or IPv6) in out, "?" for another
 * family: the key of the per-address limits and what the log shows. */
#define ROOST_ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */
struct sockaddr;
void roost_addr_str(const struct sockaddr *sa, char out[ROOST_ADDR_STRLEN]);
void roost_preauth_account(size_t *mem, size_t cost);
int roost_preauth_count(size_t *read, size_t *mark, size_t len);
size_t roost_preauth_max_stanza(void);

/* router.c */
/* A stanza from a bound c2s session (borrowed). */
void roost_router_c2s(roost_session_t *s, roost_stanza_t *st);
/* Routes st (from and to set and valid) from host h (the sender's host,
 * or the host generating it); origin is the sending session or NULL. */
void roost_router_route(roost_host_t *h, roost_session_t *origin,
                        roost_stanza_t *st);
/* Sends an error reply for st (no-op for errors). */
void roost_router_bounce(roost_host_t *h, roost_stanza_t *st,
                         roost_stanza_err_t cond, const char *text);

/* The router's default decisions, when no module handled a stanza: a pure
 * table (doc/stanza_routing.md) walked row by row in
 * tests/unit/check_router.c. */
typedef enum {
    ROOST_RT_HOST = 0, /* to the server itself (domain or domain/res) */
    ROOST_RT_BARE,     /* to a local account's bare JID */
    ROOST_RT_FULL,     /* to a local full JID */
    ROOST_RT_REMOTE    /* to a domain this server does not host */
} roost_rt_target_t;

typedef enum {
    ROOST_RA_DROP = 0,           /* silently ignore */
    ROOST_RA_DELIVER_FULL,       /* to the one session with that full JID */
    ROOST_RA_DELIVER_AVAILABLE,  /* to every available session of the user */
    ROOST_RA_BOUNCE_UNAVAILABLE, /* service-unavailable error */
    ROOST_RA_BOUNCE_REMOTE,      /* remote-server-not-found error */
    ROOST_RA_BOUNCE_BAD_REQUEST  /* bad-request error */
} roost_rt_action_t;

/* kind: message/presence/iq; type: the type attribute (NULL allowed);
 * session_exists: for FULL, whether that session is bound. */
roost_rt_action_t roost_router_default(roost_stanza_kind_t kind,
                                       const char *type,
                                       roost_rt_target_t target,
                                       int session_exists);

/* user.c */
/* Calls fn(arg, u) once node's state on h is in memory: at once if it
 * is, else after the storage worker loaded it.  u is pinned for fn: fn
 * (or whoever it hands u to) calls roost_user_unpin() when done.  The
 * load may wait behind ordinary storage jobs (roost_worker_submit_late):
 * for routing to an account, module pins, anything but a login. */
void roost_user_need(roost_host_t *h, const char *node,
                     void (*fn)(void *arg, roost_user_t *u), void *arg);
/* As roost_user_need, for a session's own account once it authenticated
 * (core/conn.c): the load is an ordinary storage job, and a postponed
 * load of node still queued is promoted to one. */
void roost_user_need_login(roost_host_t *h, const char *node,
                           void (*fn)(void *arg, roost_user_t *u), void *arg);
void roost_user_pin(roost_user_t *u);
void roost_user_unpin(roost_user_t *u);
/* Host setup and teardown of the per-user machinery. */
void roost_users_host_init(roost_host_t *h);
void roost_users_host_free(roost_host_t *h);
/* Drops the state of module instance m from every loaded user (unload). */
void roost_users_drop_module(roost_host_t *h, roost_mod_t *m);
int roost_mod_index(const roost_mod_t *m);

/* module.c */
int roost_modules_load_host(roost_host_t *h, char **err);
void roost_modules_unload_host(roost_host_t *h);
void roost_modules_shutdown(void);
/* Runs the hooks of ev on h in priority order until one handles it. */
roost_verdict_t roost_hooks_run(roost_host_t *h, roost_event_t ev,
                                roost_session_t *origin, roost_stanza_t *st,
                                const roost_jid_t *from, const roost_jid_t *to);
/* The same where hooks may substitute the stanza (roost_event_replace):
 * *st is a reference the caller holds; on return it is the stanza to go
 * on with (the substitute, whose reference the caller then holds, the
 * old one released). */
roost_verdict_t roost_hooks_run_r(roost_host_t *h, roost_event_t ev,
                                  roost_session_t *origin, roost_stanza_t **st,
                                  const roost_jid_t *from,
                                  const roost_jid_t *to);
/* ROOST_EV_DELIVER for *st about to go to the bound session s: HANDLED
 * when s must not get it.  As roost_hooks_run_r, *st is a reference the
 * caller holds; on return it is what s is to get (a hook's substitute,
 * roost_event_replace, the old one released). */
roost_verdict_t roost_hooks_deliver_r(roost_session_t *s, roost_stanza_t **st);
/* Finds the IQ handler for payload on h; NULL if none. */
roost_iq_entry_t *roost_iq_find(roost_host_t *h, const char *xmlns,
                                const char *child);
/* Appends the host's stream features to el. */
void roost_modules_stream_features(roost_host_t *h, roost_stanza_t *el);
void roost_modules_preauth_features(roost_host_t *h, roost_stanza_t *el);
roost_iq_entry_t *roost_preauth_iq_find(roost_host_t *h, const char *xmlns,
                                        const char *child);
/* The handler of a top-level element (ns, name) from bound sessions
 * (roost_hook_nonza), or NULL. */
roost_iq_entry_t *roost_nonza_find(roost_host_t *h, const char *xmlns,
                                   const char *name);

#endif /* ROOST_CORE_SERVER_H */
