/* core/fast.h: FAST tokens (XEP-0484) with HT-SHA-256-NONE.  See
 * core/fast.c.  The storage functions block: call them on the storage
 * worker. */
#ifndef ROOST_CORE_FAST_H
#define ROOST_CORE_FAST_H

#include <stdint.h>

#include <roost/common.h>

#define ROOST_FAST_MECH      "HT-SHA-256-NONE"
#define ROOST_FAST_NS        "urn:xmpp:fast:0"
#define ROOST_FAST_TOKEN_LEN 48 /* base64 of 32 bytes, NUL included */

/* Whether mech is a FAST mechanism we offer. */
int roost_fast_is_mech(const char *mech);
/* A new random token and its expiry (ms since the epoch). */
void roost_fast_new_token(char token[ROOST_FAST_TOKEN_LEN], int64_t lifetime_ms,
                          int64_t *expiry_ms);
/* Stores token as the 'new' token of (host, user, agent) for mech.
 * 0 or -ROOST_E*. */
int roost_fast_store_new(const char *host, const char *user, const char *agent,
                         const char *mech, const char *token,
                         int64_t expiry_ms);
/* Checks the HT initial response b64 (base64) for host and user agent
 * agent: 0 with *user_out (the prepared localpart) and *additional_out
 * (base64 of the server's HMAC) set (roost_free both), -ROOST_EAUTH, or
 * -ROOST_ESTORAGE.  invalidate: retire the token used (XEP-0484 §3.6). */
int roost_fast_verify(const char *host, const char *agent, const char *mech,
                      const char *b64, int invalidate, char **user_out,
                      char **additional_out);

#endif /* ROOST_CORE_FAST_H */
