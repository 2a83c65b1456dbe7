/* roost/account.h: what a module may do to the accounts of its vhost
 * (in-band registration, XEP-0077: creation, password change, removal).
 * The credentials themselves stay in the core (core/auth.c): a module
 * hands over a password and gets a result, never a stored secret. */
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

/* Creates user@vhost (user: a prepared localpart) with password, on the
 * storage worker; done(m, arg, result) on the loop once it is committed:
 * 0, -ROOST_EEXIST, -ROOST_EINVAL (bad password) or -ROOST_ESTORAGE. */
ROOST_API void roost_account_create(roost_mod_t *m, const char *user,
                                    const char *password,
                                    roost_account_done_fn done, void *arg);

/* Removes user@vhost: ROOST_EV_USER_DELETED fires first (while the
 * account's state, roster included, is still loaded: mod_presence cancels
 * subscriptions there), then the credentials and every stored item of the
 * account are deleted on the storage worker; done(m, arg, result) runs on
 * the loop (0, -ROOST_ENOTFOUND, -ROOST_ESTORAGE), and right after it the
 * account's sessions are closed with a <not-authorized/> stream error (so
 * a reply sent from done reaches the requester first). */
ROOST_API void roost_account_delete(roost_mod_t *m, const char *user,
                                    roost_account_done_fn done, void *arg);

/* Counts the accounts stored for m's vhost (XEP-0133 §4.13), on the
 * storage worker (the loop never waits for it; it sees every creation and
 * removal submitted before it), then calls done(m, arg, result) on the
 * loop: result is the count (>= 0) or -ROOST_ESTORAGE.  Accounts that
 * exist only while online (SASL ANONYMOUS) are not stored, so not
 * counted.  The core drains storage work before unloading a module, so
 * done never runs after unload. */
ROOST_API void roost_host_account_count(roost_mod_t *m,
                                        roost_account_done_fn done, void *arg);
/* Lists the accounts stored for m's vhost (XEP-0133 §4.18) on the
 * storage worker, then calls done(m, arg, result, users) on the loop:
 * result is the number of accounts (>= 0, all of them) or
 * -ROOST_ESTORAGE; users holds the localparts of the first min(max,
 * result) accounts in byte order, NULL-terminated (NULL on error),
 * borrowed for the duration of done.  max: 0 or more.  As
 * roost_host_account_count, done never runs after unload. */
typedef void (*roost_account_list_fn)(roost_mod_t *m, void *arg, int result,
                                      const char *const *users);
ROOST_API void roost_host_account_list(roost_mod_t *m, int max,
                                       roost_account_list_fn done, void *arg);

#endif /* ROOST_ACCOUNT_H */
