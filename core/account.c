/* core/account.c: the account operations modules may ask for
 * (include/roost/account.h), run on the storage worker through core/auth.c
 * and answered on the loop.
 *
 * Not here: the credential format and checks (core/auth.c), SASL
 * (core/sasl.c), account data other than credentials (core/storage.c). */
#include <string.h>

#include <roost/account.h>
#include <roost/module.h>

#include "auth.h"
#include "config.h"
#include "server.h"
#include "sm.h"
#include "storage.h"
#include "worker.h"

typedef struct {
    roost_mod_t *m;
    char *host, *user, *password;
    int iterations;
    roost_account_done_fn done;
    void *arg;
} account_job_t;

static account_job_t *account_job_new(roost_mod_t *m, const char *user,
                                      const char *password,
                                      roost_account_done_fn done, void *arg);

static int
account_set_password_work(void *arg)
{
    account_job_t *j = arg;

    return roost_auth_set_password(j->host, j->user, j->password,
                                   j->iterations);
}

static void
account_job_done(void *arg, int result)
{
    account_job_t *j = arg;

    if (j->done != NULL)
        j->done(j->m, j->arg, result);
    explicit_bzero(j->password, strlen(j->password));
    roost_free(j->password);
    roost_free(j->user);
    roost_free(j->host);
    roost_free(j);
}

void
roost_account_set_password(roost_mod_t *m, const char *user,
                           const char *password, roost_account_done_fn done,
                           void *arg)
{
    /* The storage queue, not the CPU pool: the write must stay ordered
     * with the account's other storage jobs (and batch commits).  The
     * PBKDF2 derivation runs there too; TODO split it off to
     * ROOST_WQ_CPU once core/auth.c exposes derive and write apart. */
    roost_sm_storage_submit(account_set_password_work, account_job_done,
                            account_job_new(m, user, password, done, arg));
}

static int
account_create_work(void *arg)
{
    account_job_t *j = arg;

    return roost_auth_create(j->host, j->user, j->password, j->iterations);
}

static account_job_t *
account_job_new(roost_mod_t *m, const char *user, const char *password,
                roost_account_done_fn done, void *arg)
{
    /* Freed by account_job_done. */
    account_job_t *j = roost_xcalloc(1, sizeof(*j));

    j->m = m;
    j->host = roost_xstrdup(roost_mod_host(m));
    j->user = roost_xstrdup(user);
    j->password = roost_xstrdup(password != NULL ? password : "");
    j->iterations = roost_srv != NULL && roost_srv->cfg != NULL
                        ? (int)roost_srv->cfg->scram_iterations
                        : 0;
    j->done = done;
    j->arg = arg;
    return j;
}

void
roost_account_create(roost_mod_t *m, const char *user, const char *password,
                     roost_account_done_fn done, void *arg)
{
    roost_sm_storage_submit(account_create_work, account_job_done,
                            account_job_new(m, user, password, done, arg));
}

/* --- removal --- */

static int
account_delete_work(void *arg)
{
    account_job_t *j = arg;
    int rc = roost_auth_delete(j->host, j->user);

    /* Everything the account stored goes too, even when the credentials
     * were already gone (a removal interrupted earlier). */
    if (roost_storage_purge_user(j->host, j->user) < 0 && rc == 0)
        rc = -ROOST_ESTORAGE;
    return rc;
}

static void
account_delete_done(void *arg, int result)
{
    account_job_t *j = arg;
    roost_host_t *h = roost_server_host(j->host);
    roost_user_t *u = h != NULL ? roost_server_find_user(h, j->user) : NULL;
    roost_account_done_fn done = j->done;
    roost_mod_t *m = j->m;
    void *darg = j->arg;

    j->done = NULL;
    /* The purge has committed: the module's answer (routed to the
     * requester's full JID) may go through, then the sessions end in this
     * same loop turn, before anything else is read from them. */
    if (u != NULL)
        u->deleting = 0;
    if (done != NULL)
        done(m, darg, result);
    if (u != NULL && (result == 0 || result == -ROOST_ENOTFOUND)) {
        /* The account no longer exists: new stanzas for it bounce, and
         * its sessions end (after the requester's answer, queued above). */
        u->exists = 0;
        u->transient = 0;
        for (roost_session_t *s = u->sessions, *next; s != NULL; s = next) {
            next = s->next_of_user;
            roost_conn_close(s, "not-authorized", "the account was removed");
        }
    }
    account_job_done(j, result);
    if (u != NULL)
        roost_user_unpin(u); /* the pin of account_delete_loaded */
}

/* The account's state is in memory: modules see it go while they can
 * still read it (mod_presence cancels subscriptions from the roster). */
static void
account_delete_loaded(void *arg, roost_user_t *u)
{
    account_job_t *j = arg;
    roost_jid_t *bare = roost_jid_from_parts(j->user, j->host, NULL);

    /* From now on nothing the account's sessions send is processed and
     * stanzas for it bounce, so no write lands after the purge. */
    u->deleting = 1;
    if (bare != NULL && u->exists)
        roost_hooks_run(u->host, ROOST_EV_USER_DELETED, NULL, NULL, bare, bare);
    roost_jid_free(bare);
    roost_sm_storage_submit(account_delete_work, account_delete_done, j);
    /* The pin roost_user_need took stays until account_delete_done. */
}

void
roost_account_delete(roost_mod_t *m, const char *user,
                     roost_account_done_fn done, void *arg)
{
    account_job_t *j = account_job_new(m, user, NULL, done, arg);
    roost_host_t *h = roost_server_host(roost_mod_host(m));

    roost_user_need(h, user, account_delete_loaded, j);
}

/* --- counting (XEP-0133 §4.13) --- */

typedef struct {
    roost_mod_t *m;
    char *host;
    int n;
    roost_account_done_fn done;
    void *arg;
} account_count_t;

static int
account_count_one(void *arg, const char *user)
{
    ((account_count_t *)arg)->n++;
    return 0;
}

static int
account_count_work(void *arg)
{
    account_count_t *c = arg;
    int rc = roost_auth_users(c->host, account_count_one, c);

    /* TODO a count query in the drivers (SELECT count(*)) instead of
     * walking the keys, once a host has enough accounts to matter. */
    return rc < 0 ? rc : c->n;
}

static void
account_count_done(void *arg, int result)
{
    account_count_t *c = arg;

    c->done(c->m, c->arg, result);
    roost_free(c->host);
    roost_free(c);
}

void
roost_host_account_count(roost_mod_t *m, roost_account_done_fn done, void *arg)
{
    /* Freed by account_count_done. */
    account_count_t *c = roost_xcalloc(1, sizeof(*c));

    c->m = m;
    c->host = roost_xstrdup(roost_mod_host(m));
    c->done = done;
    c->arg = arg;
    /* The storage queue: ordered after the creations and removals
     * submitted before it. */
    roost_sm_storage_submit(account_count_work, account_count_done, c);
}

/* --- listing (XEP-0133 §4.18) --- */

typedef struct {
    roost_mod_t *m;
    char *host;
    int max, n;
    char **users; /* max + 1, NULL-terminated */
    roost_account_list_fn done;
    void *arg;
} account_list_t;

static int
account_list_one(void *arg, const char *user)
{
    account_list_t *l = arg;

    if (l->n < l->max)
        l->users[l->n] = roost_xstrdup(user);
    l->n++;
    return 0;
}

static int
account_list_work(void *arg)
{
    account_list_t *l = arg;
    int rc = roost_auth_users(l->host, account_list_one, l);

    return rc < 0 ? rc : l->n;
}

static void
account_list_done(void *arg, int result)
{
    account_list_t *l = arg;

    l->done(l->m, l->arg, result,
            result < 0 ? NULL : (const char *const *)l->users);
    for (int i = 0; i < l->max && l->users[i] != NULL; i++)
        roost_free(l->users[i]);
    roost_free(l->users);
    roost_free(l->host);
    roost_free(l);
}

void
roost_host_account_list(roost_mod_t *m, int max, roost_account_list_fn done,
                        void *arg)
{
    /* Freed by account_list_done. */
    account_list_t *l = roost_xcalloc(1, sizeof(*l));

    l->m = m;
    l->host = roost_xstrdup(roost_mod_host(m));
    l->max = max > 0 ? max : 0;
    l->users = roost_xcalloc((size_t)l->max + 1, sizeof(char *));
    l->done = done;
    l->arg = arg;
    roost_sm_storage_submit(account_list_work, account_list_done, l);
}
