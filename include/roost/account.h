/* roost/account.h: what a module may do to the accounts of its vhost
 * (in-band password change, XEP-0077 §3.3).  The credentials themselves
 * stay in the core (core/auth.c): a module hands over a password and gets
 * a result, never a stored secret.
 *
 * Not here yet: creating an account (XEP-0077 §3.1, which needs the
 * pre-authentication stream hooks) and removing one (§3.2, which needs the
 * core to drop the account's in-memory state and sessions). */
#ifndef ROOST_ACCOUNT_H
#define ROOST_ACCOUNT_H

#include <roost/common.h>

typedef struct roost_mod roost_mod_t;

/* Runs on the loop when the operation has finished.  result: 0 or
 * -ROOST_E*. */
typedef void (*roost_account_done_fn)(roost_mod_t *m, void *arg, int result);

/* Replaces the password of user@vhost (user: a prepared localpart) with
 * new SCRAM secrets derived from password, on the storage worker, then
 * calls done(m, arg, result) on the loop: 0, -ROOST_ENOTFOUND (no such
 * account), -ROOST_EINVAL (password empty, too long or refused by
 * SASLprep, RFC 4013) or -ROOST_ESTORAGE.  Copies user and password (the
 * copy is wiped after use).  Sessions already logged in stay. */
ROOST_API void roost_account_set_password(roost_mod_t *m, const char *user,
                                          const char *password,
                                          roost_account_done_fn done,
                                          void *arg);

#endif /* ROOST_ACCOUNT_H */
