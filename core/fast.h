/* core/fast.h: FAST tokens (XEP-0484) with the HT-SHA-256 mechanisms
 * (-NONE, and the channel-bound -EXPR, -UNIQ, -ENDP).  See core/fast.c.
 * The storage functions block: call them on the storage worker; the
 * TLS functions read the connection: call them on the loop. */
#ifndef ROOST_CORE_FAST_H
#define ROOST_CORE_FAST_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include <roost/common.h>

#define ROOST_FAST_NS        "urn:xmpp:fast:0"
#define ROOST_FAST_TOKEN_LEN 48 /* base64 of 32 bytes, NUL included */
#define ROOST_FAST_NMECHS    4  /* EXPR, UNIQ, ENDP, NONE */
#define ROOST_FAST_CB_MAX    64 /* largest channel-binding data (SHA-512) */

/* Whether mech is a FAST mechanism we implement (on some connection). */
int roost_fast_is_mech(const char *mech);
/* The FAST mechanisms whose channel-binding data ssl has (ssl NULL:
 * HT-SHA-256-NONE only), best first, in out (static strings,
 * NULL-terminated).  Returns how many. */
int roost_fast_mechs(SSL *ssl, const char *out[ROOST_FAST_NMECHS + 1]);
/* The channel-binding data of mech on ssl in out (*len: its size in,
 * the data's length out; 0 for HT-SHA-256-NONE): 0, -ROOST_ENOTFOUND
 * (not a FAST mechanism, or ssl has no data of its type) or another
 * -ROOST_E* from roost_tls_channel_binding.  out NULL: only whether ssl
 * has data of mech's type (len unused). */
int roost_fast_cb(SSL *ssl, const char *mech, unsigned char *out, size_t *len);
/* A new random token and its expiry (ms since the epoch). */
void roost_fast_new_token(char token[ROOST_FAST_TOKEN_LEN], int64_t lifetime_ms,
                          int64_t *expiry_ms);
/* Stores token as the 'new' token of (host, user, agent) for mech.
 * 0 or -ROOST_E*. */
int roost_fast_store_new(const char *host, const char *user, const char *agent,
                         const char *mech, const char *token,
                         int64_t expiry_ms);
/* Checks the HT initial response b64 (base64) of mech for host and user
 * agent agent, cb (cblen bytes, from roost_fast_cb; borrowed) being this
 * connection's channel-binding data for mech: 0 with *user_out (the
 * prepared localpart) and *additional_out (base64 of the server's HMAC)
 * set (roost_free both); -ROOST_EAUTH (no such token); -ROOST_EDENIED
 * (the token matched but is no longer trusted: expired, or issued before
 * the password changed or the account was deleted: XEP-0484's
 * credentials-expired); or -ROOST_ESTORAGE.  A token matches only with
 * the mechanism it was issued for.  invalidate: retire the token used
 * (XEP-0484 §3.6).  *rotate_out: 1 when the token is in the last half of
 * lifetime_ms (the configured token lifetime) and not being invalidated,
 * so the caller should hand out a new one (§3.5). */
int roost_fast_verify(const char *host, const char *agent, const char *mech,
                      const char *b64, const unsigned char *cb, size_t cblen,
                      int invalidate, int64_t lifetime_ms, int *rotate_out,
                      char **user_out, char **additional_out);

#endif /* ROOST_CORE_FAST_H */
