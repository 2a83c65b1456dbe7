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
#include "worker.h"

typedef struct {
    roost_mod_t *m;
    char *host, *user, *password;
    int iterations;
    roost_account_done_fn done;
    void *arg;
} account_job_t;

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
    /* Freed by account_job_done. */
    account_job_t *j = roost_xcalloc(1, sizeof(*j));

    j->m = m;
    j->host = roost_xstrdup(roost_mod_host(m));
    j->user = roost_xstrdup(user);
    j->password = roost_xstrdup(password);
    j->iterations = roost_srv != NULL && roost_srv->cfg != NULL
                        ? (int)roost_srv->cfg->scram_iterations
                        : 0;
    j->done = done;
    j->arg = arg;
    /* The storage queue, not the CPU pool: the write must stay ordered
     * with the account's other storage jobs (and batch commits).  The
     * PBKDF2 derivation runs there too; TODO split it off to
     * ROOST_WQ_CPU once core/auth.c exposes derive and write apart. */
    roost_worker_submit(ROOST_WQ_STORAGE, account_set_password_work,
                        account_job_done, j);
}
