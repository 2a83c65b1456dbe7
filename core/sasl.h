/* core/sasl.h: SASL (RFC 6120 §6) through Cyrus libsasl2.
 *
 * Offers SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants (when channel
 * binding data exist), PLAIN only over TLS, ANONYMOUS only where enabled.
 * The SCRAM server-first-message carries XEP-0474's "h" attribute: the
 * hash of the mechanisms of roost_sasl_mechs() and of cb_types (the
 * XEP-0440 list), which both SASL profiles advertise alike.
 * Credentials come from an in-process auxprop plugin reading core/auth.h
 * (authPassword, RFC 5803); PLAIN is checked against the same secrets via
 * a checkpass callback.  Input and output are the base64 text carried in
 * <auth/>, <response/>, <challenge/> and <success/> ("=" = empty).
 *
 * roost_sasl_step() blocks (storage, PBKDF2): the caller runs it on a
 * worker thread.  One roost_sasl_t is never used by two threads at once. */
#ifndef ROOST_CORE_SASL_H
#define ROOST_CORE_SASL_H

#include <stddef.h>

typedef struct roost_sasl roost_sasl_t;

typedef enum {
    ROOST_SASL_CONTINUE = 1, /* send <challenge>out</challenge> */
    ROOST_SASL_SUCCESS = 2,  /* send <success>out</success> (out may be "") */
    ROOST_SASL_FAILURE = 3   /* send <failure><cond/></failure> */
} roost_sasl_status_t;

/* Provides channel-binding data of type for the connection: writes to out
 * (at most *len), sets *len, returns 0, or non-zero if unavailable. */
typedef int (*roost_sasl_cb_fn)(void *arg, const char *type, unsigned char *out,
                                size_t *len);

/* Once per process, before threads start.  0 or -ROOST_E* with *err. */
int roost_sasl_init(char **err);
void roost_sasl_shutdown(void);

/* A SASL exchange for a client of vhost host.  tls: the stream is
 * encrypted; cb_types: channel-binding types available (NULL-terminated,
 * or NULL without TLS), exactly those advertised with XEP-0440, and
 * cbf/cbarg to fetch their data; anonymous: offer ANONYMOUS. */
roost_sasl_t *roost_sasl_new(const char *host, int tls,
                             const char *const *cb_types, roost_sasl_cb_fn cbf,
                             void *cbarg, int anonymous);
void roost_sasl_free(roost_sasl_t *s);

/* The mechanisms to advertise, NULL-terminated, owned by s. */
const char *const *roost_sasl_mechs(roost_sasl_t *s);

/* One step.  mech is the mechanism named in <auth/> on the first step and
 * NULL afterwards; in is the element's base64 text ("" if none, "=" for an
 * explicit empty response).  Sets *out to base64 text owned by s (valid
 * until the next call) and, on FAILURE, *cond to an RFC 6120 §6.5
 * condition ("not-authorized", "invalid-mechanism", "malformed-request",
 * "mechanism-too-weak", "encryption-required", "invalid-authzid",
 * "incorrect-encoding", "temporary-auth-failure", "aborted").
 * Channel-binding data are fetched once, in roost_sasl_new on the calling
 * thread (cbf is never called from a step). */
roost_sasl_status_t roost_sasl_step(roost_sasl_t *s, const char *mech,
                                    const char *in, const char **out,
                                    const char **cond);

/* After SUCCESS: the authenticated localpart (prepared), or for
 * ANONYMOUS a generated unique one. */
const char *roost_sasl_user(roost_sasl_t *s);
/* The mechanism used. */
const char *roost_sasl_mech_used(roost_sasl_t *s);

/* The Cyrus getopt option through which a connection's callback gives the
 * SCRAM plugin its XEP-0474 input string (the hash input, unhashed). */
#define ROOST_SASL_OPT_SSDP "roost_ssdp"

/* Tests only: SCRAM uses nonce (borrowed; NULL: random again) as the
 * server's part of the nonce, for known-answer exchanges. */
void roost_sasl_test_nonce(const char *nonce);

#endif /* ROOST_CORE_SASL_H */
