/* core/auth.h: accounts and their credentials.
 *
 * Accounts live in the host-wide MAP store "accounts" (key = prepared
 * localpart).  Only SCRAM secrets are stored, never passwords: for each of
 * SCRAM-SHA-1 and SCRAM-SHA-256 an RFC 5803 authPassword value
 * "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>".
 * All calls block on storage (and PBKDF2): run them off the loop. */
#ifndef ROOST_CORE_AUTH_H
#define ROOST_CORE_AUTH_H

#include <roost/common.h>

#define ROOST_AUTH_ITERATIONS 4096 /* default PBKDF2 iteration count */

/* Creates user@host (user prepared by the caller).  -ROOST_EEXIST if the
 * account exists. */
int roost_auth_create(const char *host, const char *user, const char *password,
                      int iterations);
/* Replaces the credentials; -ROOST_ENOTFOUND if no such account. */
int roost_auth_set_password(const char *host, const char *user,
                            const char *password, int iterations);
int roost_auth_delete(const char *host, const char *user);
/* 1 if the account exists, 0 if not, -ROOST_E* on storage failure. */
int roost_auth_exists(const char *host, const char *user);
/* A short digest (hex, NUL-terminated) of user@host's stored credentials
 * in out: it changes whenever the password is set or the account is
 * created again, so a FAST token can remember which credentials it was
 * issued under.  0, -ROOST_ENOTFOUND, -ROOST_EINVAL or -ROOST_ESTORAGE. */
#define ROOST_AUTH_GEN_LEN 33
int roost_auth_generation(const char *host, const char *user,
                          char out[ROOST_AUTH_GEN_LEN]);
/* The authPassword value for mech ("SCRAM-SHA-1" or "SCRAM-SHA-256"),
 * new string (roost_free).  0, -ROOST_ENOTFOUND, -ROOST_ESTORAGE. */
int roost_auth_get_scram(const char *host, const char *user, const char *mech,
                         char **authpassword);
/* Checks a plaintext password (SASL PLAIN) against the stored SCRAM-SHA-256
 * secret.  0 or -ROOST_EAUTH / -ROOST_ENOTFOUND. */
int roost_auth_verify_plain(const char *host, const char *user,
                            const char *password);
/* Derives the SCRAM StoredKey and ServerKey (RFC 5802 §3) for mech
 * ("SCRAM-SHA-1" or "SCRAM-SHA-256") from the SASLprep'd password.  stored
 * and server must hold EVP_MAX_MD_SIZE bytes; *keylen gets the digest
 * size.  iter: 1 to 10000000.  0, or -ROOST_EINVAL (unknown mech, bad iter
 * or salt, password empty, too long or refused by SASLprep). */
int roost_auth_scram_keys(const char *mech, const char *password,
                          const unsigned char *salt, size_t saltlen, int iter,
                          unsigned char *stored, unsigned char *server,
                          size_t *keylen);
/* Calls fn for each account of host, sorted. */
int roost_auth_users(const char *host, int (*fn)(void *arg, const char *user),
                     void *arg);

#endif /* ROOST_CORE_AUTH_H */
