/* core/stream.h: the c2s stream state machine, sans I/O (HOUSE 14).
 *
 * Bytes go in with roost_stream_feed(); bytes to send come out through
 * ops->write; everything that needs the outside world (starting TLS,
 * running a SASL step on a worker, binding a resource against the session
 * table, routing a stanza) is a callback whose answer comes back through a
 * roost_stream_*() call.  No sockets, no event loop, no storage in here:
 * tests drive it with plain buffers.
 *
 * The stream pauses (roost_stream_feed returns ROOST_EAGAIN and reports
 * how much it consumed) while it waits for TLS or SASL, so pipelined input
 * is never processed out of order; the caller keeps the rest and feeds it
 * again after the answer. */
#ifndef ROOST_CORE_STREAM_H
#define ROOST_CORE_STREAM_H

#include <roost/stanza.h>
#include "xml.h"

typedef struct roost_stream roost_stream_t;

typedef enum {
    ROOST_SS_HEADER = 0, /* waiting for the client's stream header */
    ROOST_SS_TLS_WAIT,   /* <proceed/> sent; waiting for the handshake */
    ROOST_SS_PREAUTH,    /* features sent, before SASL success */
    ROOST_SS_SASL_WAIT,  /* a SASL step is running */
    ROOST_SS_AUTHED,     /* authenticated, not yet bound */
    ROOST_SS_BOUND,      /* resource bound: stanzas flow */
    ROOST_SS_CLOSED      /* closed or failed: feed nothing more */
} roost_stream_state_t;

typedef struct {
    /* Bytes to send to the peer. */
    void (*write)(void *ud, const char *buf, size_t len);
    /* Is domain a vhost of this server?  Returns non-zero if so. */
    int (*host_ok)(void *ud, const char *domain);
    /* The SASL mechanisms to offer now (NULL-terminated), for the stream's
     * host; called when features are sent before authentication. */
    const char *const *(*sasl_mechs)(void *ud, const char *host);
    /* <proceed/> was written: start the TLS handshake, then call
     * roost_stream_tls_done(). */
    void (*starttls)(void *ud);
    /* Run one SASL step (mech on the first step, else NULL; data is the
     * element's base64 text), then call roost_stream_sasl_result(). */
    void (*sasl_step)(void *ud, const char *mech, const char *data);
    /* Bind resource (NULL: server chooses) for the authenticated user.
     * Returns the full JID string bound (borrowed until the next call),
     * or NULL with *err set to the stanza error to return. */
    const char *(*bind)(void *ud, const char *resource,
                        roost_stanza_err_t *err);
    /* A stanza from the bound client (message/presence/iq, jabber:client
     * ns).  Borrowed. */
    void (*stanza)(void *ud, roost_stanza_t *st);
    /* Extra features offered next to the SASL mechanisms (XEP-0440,
     * XEP-0077), or NULL; called right after sasl_mechs. */
    void (*sasl_features)(void *ud, roost_stanza_t *el);
    /* An iq before authentication (XEP-0077 registration), only where
     * SASL is offered (after TLS when it is required).  Returns non-zero
     * if it was taken; otherwise the stream closes with not-authorized.
     * Borrowed.  May be NULL. */
    int (*preauth_iq)(void *ud, roost_stanza_t *iq);
    /* Extra stream features for an authenticated stream (appended as
     * children of el), or NULL. */
    void (*features)(void *ud, roost_stanza_t *el);
    /* A stream error is being sent (for logging); may be NULL. */
    void (*error_sent)(void *ud, const char *cond, const char *text);
    /* The stream is finished (error sent, or closed by either side): the
     * connection should flush its output and close.  Called once. */
    void (*closed)(void *ud);
    /* An element of urn:xmpp:sm:3 (XEP-0198) after authentication; bound
     * says whether a resource is bound.  Returns non-zero to stop
     * parsing (the stream may have moved to another owner:
     * roost_stream_set_owner).  May be NULL: such elements are then
     * unsupported-stanza-type. */
    int (*sm)(void *ud, roost_stanza_t *el, int bound);
    /* A stanza (message, presence, iq) arrived on the bound stream, before
     * it is handled, including the ones the stream answers itself.  May
     * be NULL. */
    void (*inbound)(void *ud);
    /* Sends a stanza the stream itself answers on a bound stream (legacy
     * session, a second bind) through the owner, so it is counted like
     * every other (XEP-0198).  May be NULL: written directly. */
    void (*reply)(void *ud, roost_stanza_t *st);
    /* A top-level element that is not a stanza on a bound stream (not in
     * jabber:client, not SM).  Returns non-zero if it was taken; else the
     * stream closes with <unsupported-stanza-type/>.  May be NULL. */
    int (*nonza)(void *ud, roost_stanza_t *el);
    /* XEP-0484: a new token for mechanism mech, for the authenticated
     * user and the SASL2 user agent, written to token (NUL-terminated,
     * < 64 bytes) with its XEP-0082 expiry in expiry (< 32 bytes).
     * Returns 0, or non-zero when no token can be issued.  May be NULL. */
    int (*fast_token)(void *ud, const char *mech, char *token, char *expiry);
    /* XEP-0484: the FAST mechanisms this stream's transport can bind to,
     * best first, written to out (static strings, NULL-terminated, at
     * most ROOST_STREAM_FAST_MAX entries with the NULL).  May be NULL:
     * HT-SHA-256-NONE only. */
    void (*fast_mechs)(void *ud, const char **out);
} roost_stream_ops_t;

#define ROOST_STREAM_FAST_MAX 8

typedef struct {
    roost_xml_limits_t limits;
    int tls_available;      /* STARTTLS can be offered */
    int tls_active;         /* the transport is already TLS (direct TLS) */
    int require_encryption; /* no SASL before TLS */
    int max_auth_attempts;  /* failures before the stream is closed (>=1) */
    int fast;               /* offer XEP-0484 FAST inline in SASL2 */
    /* limits.max_stanza applies before authentication; from SASL success
     * on, this one does (0: limits.max_stanza throughout). */
    size_t max_stanza_authed;
} roost_stream_conf_t;

roost_stream_t *roost_stream_new(const roost_stream_conf_t *conf,
                                 const roost_stream_ops_t *ops, void *ud);
void roost_stream_free(roost_stream_t *st);

/* Feeds bytes from the peer.  Returns 0 when all were consumed,
 * ROOST_EAGAIN (positive) when the stream paused and *consumed bytes were
 * used, -ROOST_EINVAL when the stream is closed (a stream error may have
 * been written; ops->closed has been called). */
int roost_stream_feed(roost_stream_t *st, const char *buf, size_t len,
                      size_t *consumed);

/* The TLS handshake after STARTTLS finished: the stream expects a new
 * header.  ok zero means it failed: the stream just closes. */
void roost_stream_tls_done(roost_stream_t *st, int ok);

/* Result of ops->sasl_step: status is a roost_sasl_status_t value (1
 * continue, 2 success, 3 failure), data the base64 text for challenge or
 * success, cond the failure condition; user is the authenticated
 * localpart on success. */
void roost_stream_sasl_result(roost_stream_t *st, int status, const char *data,
                              const char *cond, const char *user);

/* Sends a stanza to the peer (serialised now).  Borrows s. */
void roost_stream_send(roost_stream_t *st, const roost_stanza_t *s);
/* Sends a stream error (RFC 6120 §4.9.3 condition name, optional text)
 * and closes the stream.  No-op when already closed. */
void roost_stream_error(roost_stream_t *st, const char *cond, const char *text);
/* Same, with an application-specific condition element (app, borrowed)
 * after the text (RFC 6120 §4.9.4). */
void roost_stream_error_app(roost_stream_t *st, const char *cond,
                            const char *text, const roost_stanza_t *app);
/* Sends </stream:stream> and closes. */
void roost_stream_close(roost_stream_t *st);

/* Per-vhost policy, settable from ops->host_ok before features go out:
 * whether TLS is required before authentication. */
void roost_stream_set_require_encryption(roost_stream_t *st, int on);

/* Gives the stream a new owner: ud for every callback from now on
 * (XEP-0198 resumption moves a stream into the resumed session). */
void roost_stream_set_owner(roost_stream_t *st, void *ud);
/* The authenticated stream took over a bound session (resumption): it is
 * bound from now on. */
void roost_stream_set_bound(roost_stream_t *st);

roost_stream_state_t roost_stream_state(const roost_stream_t *st);
/* The vhost the client asked for (prepared), or NULL before the header. */
const char *roost_stream_host(const roost_stream_t *st);
/* The authenticated localpart, or NULL. */
const char *roost_stream_user(const roost_stream_t *st);
/* XEP-0388 <user-agent id=''/> of the running SASL2 exchange, or NULL;
 * whether its XEP-0484 <fast/> asked to invalidate the token. */
const char *roost_stream_sasl2_agent(const roost_stream_t *st);
int roost_stream_fast_invalidate(const roost_stream_t *st);
/* XEP-0484 §3.5: the <success/> of this SASL2 exchange carries a new
 * token for mech even though the client did not ask (the one it used is
 * close to expiry).  No effect when the client asked for one itself or
 * is invalidating its token without asking for a new one. */
void roost_stream_fast_rotate(roost_stream_t *st, const char *mech);
/* The id we gave the stream. */
const char *roost_stream_id(const roost_stream_t *st);
int roost_stream_tls_active(const roost_stream_t *st);
size_t roost_stream_memory(const roost_stream_t *st);
/* Between stanzas, with all input parsed: frees the XML parser until the
 * next byte arrives (roost_xml_release; no observable change).  Not from
 * inside a stream callback.  Returns 1 if released. */
int roost_stream_release_idle(roost_stream_t *st);

#endif /* ROOST_CORE_STREAM_H */
