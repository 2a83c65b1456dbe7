/* core/user.c: local accounts in memory (DESIGN.md, "State and storage").
 *
 * Handlers never wait on storage: before any event for a local account
 * fires, its state (existence, roster, and each module's per-user state)
 * is loaded here by one job on the storage worker, and stanzas that arrive
 * meanwhile queue behind the load in order.  The state stays while the
 * account is pinned (a session past SASL, a stanza in flight) and is
 * dropped when the last pin goes.  Roster changes are persisted
 * write-behind on the same FIFO storage queue.  A module that reads a
 * roster outside the account's events (roost_roster_load_async) pins the
 * state the same way, for the duration of its callback.  Not here: what
 * the state means (core/roster.c, modules).
 *
 * Load order: a load is a read that may wait (roost_worker_submit_late):
 * it never runs before a storage job submitted ahead of it, so it sees
 * every write the account's previous state queued, and while the account
 * is loading nothing else writes its data (writers hold its loaded
 * state), so running it later only makes it fresher.  Ordinary storage
 * jobs (writes, and the load of a login) go first: a login whose
 * contacts were just probed (hundreds of loads) does not make the next
 * login's own load wait behind them.  A login says so: core/conn.c calls
 * roost_user_need_login once SASL (password, SASL2, FAST, ANONYMOUS)
 * succeeded, and that load, or the queued one it joins, is made
 * ordinary; every other need (routing, modules) may wait. */
#include <string.h>

#include "auth.h"
#include "log.h"
#include "roster.h"
#include "server.h"
#include "sm.h"
#include "storage.h"
#include "worker.h"

struct roost_user_waiter {
    void (*fn)(void *arg, roost_user_t *u);
    void *arg;
    roost_user_waiter_t *next;
};

/* One load, handed from the loop to the storage worker and back. */
typedef struct {
    roost_user_t *u;
    char *host, *node;
    roost_store_t *roster_store;
    int exists;
    roost_roster_t *roster;
    int nmod;
    roost_user_loader_t **loaders; /* snapshot, by module index */
    void **states;
    roost_sm_hold_t *hold; /* the stanza's XEP-0198 ack waits for us */
} user_load_t;

static void
user_free(roost_user_t *u)
{
    roost_host_t *h = u->host;

    HASH_DEL(h->users, u);
    for (roost_user_loader_t *l = h->loaders; l != NULL; l = l->next) {
        int i = roost_mod_index(l->mod);

        if (i < u->nmod_state && u->mod_state[i] != NULL && l->ops.free != NULL)
            l->ops.free(l->mod, u->mod_state[i]);
    }
    roost_free(u->mod_state);
    roost_roster_free(u->roster);
    roost_free(u->node);
    roost_free(u);
}

void
roost_user_pin(roost_user_t *u)
{
    u->pins++;
}

void
roost_user_unpin(roost_user_t *u)
{
    if (--u->pins == 0 && u->count == 0 && u->waiters == NULL)
        user_free(u);
}

static int
roster_key_cb(void *arg, const char *key, const char *val, size_t len)
{
    roost_roster_load_entry(arg, key, val, len);
    return 0;
}

/* Storage worker: everything the account needs, read in one job. */
static int
user_load_work(void *arg)
{
    user_load_t *j = arg;
    int rc = roost_auth_exists(j->host, j->node);

    j->exists = rc == 1;
    j->roster = roost_roster_new();
    if (j->exists) {
        if (j->roster_store != NULL)
            roost_store_keys(j->roster_store, j->node, roster_key_cb,
                             j->roster);
        for (int i = 0; i < j->nmod; i++)
            if (j->loaders[i] != NULL)
                j->states[i] =
                    j->loaders[i]->ops.load(j->loaders[i]->mod, j->node);
    }
    return rc < 0 ? rc : 0;
}

static void
user_load_done(void *arg, int rc)
{
    user_load_t *j = arg;
    roost_user_t *u = j->u;
    roost_user_waiter_t *w;
    roost_sm_ctx_t saved;
    roost_sm_hold_t *hold = j->hold;

    /* As roost_sm_storage_submit would: what the waiters do next still
     * belongs to the stanza that asked for the load. */
    roost_sm_enter_hold(hold, &saved);
    u->load_job = NULL;
    if (rc < 0)
        ROOST_LOG(ROOST_LOG_ERROR, u->host->name,
                  "loading the state of %s failed: %s", u->node,
                  roost_strerror(rc));
    u->exists = j->exists;
    u->roster = j->roster;
    u->mod_state = j->states;
    u->nmod_state = j->nmod;
    u->loaded = 1;
    roost_free(j->loaders);
    roost_free(j->host);
    roost_free(j->node);
    roost_free(j);
    /* Each waiter holds a pin taken in roost_user_need; ours keeps u
     * alive while the last of them unpins. */
    u->pins++;
    while ((w = u->waiters) != NULL) {
        u->waiters = w->next;
        if (u->waiters == NULL)
            u->waiters_tail = &u->waiters;
        w->fn(w->arg, u);
        roost_free(w);
    }
    roost_user_unpin(u);
    roost_sm_leave(&saved);
    roost_sm_release(hold);
}

/* roost_user_need and roost_user_need_login: login makes the load an
 * ordinary storage job (promoting a queued postponed one). */
static void
user_need(roost_host_t *h, const char *node, int login,
          void (*fn)(void *arg, roost_user_t *u), void *arg)
{
    roost_user_t *u = roost_server_find_user(h, node);
    roost_user_waiter_t *w;
    user_load_t *j = NULL;
    roost_worker_job_t *job;

    if (u != NULL && u->loaded) {
        u->pins++;
        fn(arg, u);
        return;
    }
    if (u == NULL) {
        u = roost_xcalloc(1, sizeof(*u));
        u->node = roost_xstrdup(node);
        u->host = h;
        u->waiters_tail = &u->waiters;
        HASH_ADD_KEYPTR(hh, h->users, u->node, strlen(u->node), u);
        j = roost_xcalloc(1, sizeof(*j)); /* freed by user_load_done */
        j->u = u;
        j->host = roost_xstrdup(h->name);
        j->node = roost_xstrdup(node);
        j->roster_store = h->roster_store;
        j->nmod = h->nmods;
        j->loaders = roost_xcalloc((size_t)j->nmod + 1, sizeof(*j->loaders));
        j->states = roost_xcalloc((size_t)j->nmod + 1, sizeof(*j->states));
        for (roost_user_loader_t *l = h->loaders; l != NULL; l = l->next)
            j->loaders[roost_mod_index(l->mod)] = l;
    } else if (login) {
        roost_worker_promote(u->load_job); /* NULL: running or done */
    }
    /* The waiter first: before roost_worker_init the load runs (and its
     * waiters with it) inside the submit below. */
    u->pins++;
    w = roost_xcalloc(1, sizeof(*w)); /* freed by user_load_done */
    w->fn = fn;
    w->arg = arg;
    *u->waiters_tail = w;
    u->waiters_tail = &w->next;
    if (j == NULL)
        return;
    j->hold = roost_sm_hold();
    if (login) {
        roost_worker_submit(ROOST_WQ_STORAGE, user_load_work, user_load_done,
                            j);
        return;
    }
    /* u may be gone when the load ran synchronously (job NULL). */
    job = roost_worker_submit_late(user_load_work, user_load_done, j);
    if (job != NULL)
        u->load_job = job;
}

void
roost_user_need(roost_host_t *h, const char *node,
                void (*fn)(void *arg, roost_user_t *u), void *arg)
{
    user_need(h, node, 0, fn, arg);
}

void
roost_user_need_login(roost_host_t *h, const char *node,
                      void (*fn)(void *arg, roost_user_t *u), void *arg)
{
    user_need(h, node, 1, fn, arg);
}

void
roost_users_host_init(roost_host_t *h)
{
    h->roster_store = roost_storage_store(h->name, "roster", ROOST_STORE_MAP);
}

void
roost_users_host_free(roost_host_t *h)
{
    roost_user_t *u, *tmp;

    /* Shutdown: sessions are gone and the worker drained, so nothing
     * still needs these. */
    HASH_ITER (hh, h->users, u, tmp) {
        user_free(u);
    }
    while (h->loaders != NULL) {
        roost_user_loader_t *l = h->loaders;

        h->loaders = l->next;
        roost_free(l);
    }
    if (h->roster_store != NULL)
        roost_store_close(h->roster_store);
    h->roster_store = NULL;
}

void
roost_users_drop_module(roost_host_t *h, roost_mod_t *m)
{
    roost_user_loader_t **pp = &h->loaders, *l;
    roost_user_t *u, *tmp;
    int i = roost_mod_index(m);

    while ((l = *pp) != NULL && l->mod != m)
        pp = &l->next;
    if (l == NULL)
        return;
    HASH_ITER (hh, h->users, u, tmp) {
        if (i < u->nmod_state && u->mod_state[i] != NULL) {
            if (l->ops.free != NULL)
                l->ops.free(m, u->mod_state[i]);
            u->mod_state[i] = NULL;
        }
    }
    *pp = l->next;
    roost_free(l);
}

/* --- module API --- */

int
roost_user_state(roost_mod_t *m, const roost_user_state_t *ops)
{
    roost_host_t *h = roost_server_host(roost_mod_host(m));
    roost_user_loader_t *l;

    for (l = h->loaders; l != NULL; l = l->next)
        if (l->mod == m)
            return -ROOST_EEXIST;
    if (ops == NULL || ops->load == NULL)
        return -ROOST_EINVAL;
    l = roost_xcalloc(1, sizeof(*l));
    l->mod = m;
    l->ops = *ops;
    l->next = h->loaders;
    h->loaders = l;
    return 0;
}

void **
roost_user_data(roost_mod_t *m, const char *user)
{
    roost_host_t *h = roost_server_host(roost_mod_host(m));
    roost_user_t *u = roost_server_find_user(h, user);
    int i = roost_mod_index(m);

    if (u == NULL || !u->loaded || i >= u->nmod_state)
        return NULL;
    return &u->mod_state[i];
}

/* --- roster host hooks (core/roster.h) --- */

roost_roster_t *
roost_host_roster(roost_mod_t *m, const char *user)
{
    roost_host_t *h = roost_server_host(roost_mod_host(m));
    roost_user_t *u = roost_server_find_user(h, user);

    return u != NULL && u->loaded && u->exists ? u->roster : NULL;
}

typedef struct {
    roost_store_t *st;
    char *user, *key, *value;
} roster_write_t;

static int
roster_write_work(void *arg)
{
    roster_write_t *w = arg;

    if (w->value != NULL)
        return roost_store_set(w->st, w->user, w->key, w->value,
                               strlen(w->value));
    return roost_store_delete(w->st, w->user, w->key);
}

static void
roster_write_done(void *arg, int rc)
{
    roster_write_t *w = arg;

    if (rc < 0)
        ROOST_LOG(ROOST_LOG_ERROR, "roster",
                  "saving a roster item of %s failed: %s", w->user,
                  roost_strerror(rc));
    roost_free(w->user);
    roost_free(w->key);
    roost_free(w->value);
    roost_free(w);
}

void
roost_host_roster_persist(roost_mod_t *m, const char *user, const char *key,
                          const char *value)
{
    roost_host_t *h = roost_server_host(roost_mod_host(m));
    roster_write_t *w;

    if (h->roster_store == NULL)
        return;
    w = roost_xcalloc(1, sizeof(*w));
    w->st = h->roster_store;
    w->user = roost_xstrdup(user);
    w->key = roost_xstrdup(key);
    w->value = value != NULL ? roost_xstrdup(value) : NULL;
    roost_sm_storage_submit(roster_write_work, roster_write_done, w);
}

/* --- roost_roster_load_async (roost/roster.h) --- */

/* One read: the module's callback and the account, until fn has run. */
typedef struct {
    roost_mod_t *m;
    char *user;
    roost_roster_loaded_fn fn;
    void *arg;
} roster_read_t;

/* On the loop, the state loaded and pinned for us: fn sees it. */
static void
roster_read_ready(void *arg, roost_user_t *u)
{
    roster_read_t *r = arg;
    int rc = !u->deleting && roost_host_roster(r->m, r->user) != NULL
                 ? 0
                 : -ROOST_ENOTFOUND;

    r->fn(r->m, r->arg, rc);
    roost_user_unpin(u);
    roost_free(r->user);
    roost_free(r);
}

/* A turn of the storage queue, so that fn never runs inside
 * roost_roster_load_async (the state may already be loaded). */
static int
roster_read_work(void *arg)
{
    (void)arg;
    return 0;
}

static void
roster_read_start(void *arg, int rc)
{
    roster_read_t *r = arg;

    (void)rc;
    roost_user_need(roost_server_host(roost_mod_host(r->m)), r->user,
                    roster_read_ready, r);
}

void
roost_roster_load_async(roost_mod_t *m, const char *user,
                        roost_roster_loaded_fn fn, void *arg)
{
    /* Freed by roster_read_ready. */
    roster_read_t *r = roost_xcalloc(1, sizeof(*r));

    r->m = m;
    r->user = roost_xstrdup(user);
    r->fn = fn;
    r->arg = arg;
    roost_sm_storage_submit(roster_read_work, roster_read_start, r);
}
