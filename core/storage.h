/* core/storage.h: the storage backend behind roost/store.h.
 *
 * One backend is open per process (sqlite or memory; pgsql later).  Stores
 * are (host, name, shape) views of it.  Backends implement
 * roost_store_driver_t (storage/st_*.c) and serialise their own access, so
 * the calls in roost/store.h may run on any thread; the loop uses
 * core/worker.h to run them.
 *
 * Rule: writes go through ROOST_WQ_STORAGE.  That queue runs its jobs in
 * group-commit batches (one backend transaction per batch, see
 * roost_worker_set_batch), and a job's done callback runs only after its
 * batch committed, which is what makes a durability ack safe.  Reads may
 * run on any thread (SASL lookups on the CPU pool); they see the open
 * batch's uncommitted writes.  A write from another thread while a batch
 * is open joins that batch's transaction: it returns before it is durable
 * and is silently undone if the batch fails.  Only roostctl and other
 * processes without the worker write outside it (in autocommit). */
#ifndef ROOST_CORE_STORAGE_H
#define ROOST_CORE_STORAGE_H

#include <roost/store.h>

typedef struct roost_store_driver {
    const char *name; /* "sqlite", "memory" */
    /* Opens the backend (path: database file for sqlite, ignored by
     * memory), runs schema migrations.  Returns a handle or NULL with *err
     * set to a message the caller frees with roost_free(). */
    void *(*open)(const char *path, char **err);
    void (*close)(void *db);
    /* keyval/map: key "" for keyval */
    int (*get)(void *db, const char *host, const char *store, const char *user,
               const char *key, char **val, size_t *len);
    int (*set)(void *db, const char *host, const char *store, const char *user,
               const char *key, const void *val, size_t len);
    int (*del)(void *db, const char *host, const char *store, const char *user,
               const char *key /* NULL = all */);
    int (*keys)(void *db, const char *host, const char *store, const char *user,
                roost_store_key_fn fn, void *arg);
    /* Users ("" excluded) having any entry in (host, store), sorted. */
    int (*users)(void *db, const char *host, const char *store,
                 int (*fn)(void *arg, const char *user), void *arg);
    /* archive */
    int (*append)(void *db, const char *host, const char *store,
                  const char *user, const char *with, int64_t when,
                  const void *val, size_t len, char *id_out);
    int (*find)(void *db, const char *host, const char *store, const char *user,
                const roost_store_query_t *q, roost_store_item_fn fn,
                void *arg);
    int (*count)(void *db, const char *host, const char *store,
                 const char *user);
    int (*remove)(void *db, const char *host, const char *store,
                  const char *user, const char *id);
    /* Group commit, optional (all three or none; NULL: no batching).
     * begin opens a transaction that every call on any thread joins until
     * commit or rollback ends it; no nesting.  commit makes it durable or,
     * failing, leaves none of it and no transaction open.  Each is called
     * without the driver's lock held and takes it like any call, so other
     * threads are not blocked between calls.  0 or -ROOST_E*. */
    int (*begin)(void *db);
    int (*commit)(void *db);
    int (*rollback)(void *db);
} roost_store_driver_t;

extern const roost_store_driver_t roost_st_sqlite;
extern const roost_store_driver_t roost_st_memory;

/* Archive ids are decimal row numbers, as issued by append: no sign, no
 * leading zero, at most 18 digits.  Returns the value or -1 (an id no
 * backend issued: the caller answers -ROOST_ENOTFOUND).  For drivers. */
int64_t roost_storage_parse_id(const char *s);

/* Opens the process-wide backend by driver name.  0 or -ROOST_E* with
 * *err set (roost_free).  If the driver supports transactions, installs
 * them as the batch hooks of ROOST_WQ_STORAGE (roost_worker_set_batch),
 * which take effect whether the worker starts before or after this. */
int roost_storage_init(const char *driver, const char *path, char **err);
/* Removes the batch hooks and closes the backend.  Every store must be
 * closed and no storage job running (roost_worker_shutdown or drain
 * first). */
void roost_storage_shutdown(void);
/* A store on (host, name) for core code; close with roost_store_close().
 * NULL if storage is not initialised or name is invalid. */
roost_store_t *roost_storage_store(const char *host, const char *name,
                                   roost_store_shape_t shape);
void roost_store_close(roost_store_t *s);
/* Deletes every entry of user on host in every store (keyval, map and
 * archive): account removal.  0 or -ROOST_E*. */
int roost_storage_purge_user(const char *host, const char *user);
/* Users of host with an entry in store name, via fn (sorted). */
int roost_storage_users(const char *host, const char *name,
                        int (*fn)(void *arg, const char *user), void *arg);

#endif /* ROOST_CORE_STORAGE_H */
