/* core/storage.c: the process-wide storage backend and the shape-checked
 * store calls of roost/store.h.
 *
 * A roost_store_t is a (host, name, shape) view of the one open backend.
 * This file validates arguments (shape, lengths, names) so that drivers
 * only ever see well-formed calls, then forwards to the driver vtable.
 * Not here: roost_store_open() and roost_store_async(), which tie stores to
 * modules and the worker (core/module.c), and any SQL (storage/st_*.c).
 *
 * Driver convention beyond core/storage.h: del() and remove() with store
 * NULL act on every store of (host, user); roost_storage_purge_user() uses
 * it to delete an account's data.
 *
 * Group commit: when the driver has begin/commit/rollback, they become the
 * batch hooks of ROOST_WQ_STORAGE for as long as the backend is open. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <roost/jid.h>

#include "storage.h"
#include "worker.h"

/* Limits on what reaches a backend: part sizes from RFC 7622, and a cap on
 * one value so that a single write cannot exhaust memory. */
#define STORE_HOST_MAX  ROOST_JID_PART_MAX
#define STORE_USER_MAX  ROOST_JID_PART_MAX
#define STORE_KEY_MAX   3071 /* a full JID */
#define STORE_NAME_MAX  64
#define STORE_VALUE_MAX (64u * 1024 * 1024)

struct roost_store {
    char *host;
    char *name;
    roost_store_shape_t shape;
    const roost_store_driver_t *drv;
    void *db;
};

static const roost_store_driver_t *const storage_drivers[] = {
    &roost_st_sqlite, &roost_st_memory, NULL};

static const roost_store_driver_t *storage_drv;
static void *storage_db;

static int
storage_name_ok(const char *name)
{
    size_t n = 0;

    if (name == NULL)
        return 0;
    for (; name[n] != '\0'; n++) {
        char c = name[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n >= 1 && n <= STORE_NAME_MAX;
}

static int
storage_str_ok(const char *s, size_t max, int empty_ok)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strnlen(s, max + 1);
    return n <= max && (empty_ok || n > 0);
}

/* Batch hooks of ROOST_WQ_STORAGE (worker thread). */
static int
storage_batch_begin(void *arg)
{
    return storage_drv->begin(storage_db);
}

static int
storage_batch_end(void *arg, int ok)
{
    return ok ? storage_drv->commit(storage_db)
              : storage_drv->rollback(storage_db);
}

/* Opens the backend named driver ("sqlite", "memory") on path.  0, or
 * -ROOST_ECONFIG (unknown driver), -ROOST_EEXIST (already open) or
 * -ROOST_ESTORAGE, each with *err set (roost_free). */
int64_t
roost_storage_parse_id(const char *s)
{
    int64_t v = 0;
    size_t i;

    if (s[0] < '1' || s[0] > '9')
        return -1;
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 18)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int
roost_storage_init(const char *driver, const char *path, char **err)
{
    const roost_store_driver_t *d = NULL;
    char buf[160];

    *err = NULL;
    if (storage_drv != NULL) {
        *err = roost_xstrdup("storage is already open");
        return -ROOST_EEXIST;
    }
    for (int i = 0; driver != NULL && storage_drivers[i] != NULL; i++)
        if (strcmp(storage_drivers[i]->name, driver) == 0)
            d = storage_drivers[i];
    if (d == NULL) {
        snprintf(buf, sizeof(buf), "unknown storage driver '%.64s'",
                 driver ? driver : "(none)");
        *err = roost_xstrdup(buf);
        return -ROOST_ECONFIG;
    }
    storage_db = d->open(path, err);
    if (storage_db == NULL) {
        if (*err == NULL)
            *err = roost_xstrdup("cannot open storage");
        return -ROOST_ESTORAGE;
    }
    storage_drv = d;
    if (d->begin != NULL && d->commit != NULL && d->rollback != NULL)
        roost_worker_set_batch(ROOST_WQ_STORAGE, storage_batch_begin,
                               storage_batch_end, NULL);
    return 0;
}

/* Closes the backend.  Every store must be closed before, and no storage
 * job may be running. */
void
roost_storage_shutdown(void)
{
    if (storage_drv != NULL && storage_drv->begin != NULL)
        roost_worker_set_batch(ROOST_WQ_STORAGE, NULL, NULL, NULL);
    if (storage_drv != NULL)
        storage_drv->close(storage_db);
    storage_drv = NULL;
    storage_db = NULL;
}

/* A new store view (roost_store_close).  NULL when storage is not open or
 * host or name is invalid. */
roost_store_t *
roost_storage_store(const char *host, const char *name,
                    roost_store_shape_t shape)
{
    roost_store_t *s;

    if (storage_drv == NULL || !storage_str_ok(host, STORE_HOST_MAX, 0) ||
        !storage_name_ok(name) ||
        (shape != ROOST_STORE_KEYVAL && shape != ROOST_STORE_MAP &&
         shape != ROOST_STORE_ARCHIVE))
        return NULL;
    s = roost_xcalloc(1, sizeof(*s));
    s->host = roost_xstrdup(host);
    s->name = roost_xstrdup(name);
    s->shape = shape;
    s->drv = storage_drv;
    s->db = storage_db;
    return s;
}

void
roost_store_close(roost_store_t *s)
{
    if (s == NULL)
        return;
    roost_free(s->host);
    roost_free(s->name);
    roost_free(s);
}

/* Users (not "") with entries in store name on host, sorted, via fn; fn
 * returns non-zero to stop.  0 or -ROOST_E*. */
int
roost_storage_users(const char *host, const char *name,
                    int (*fn)(void *arg, const char *user), void *arg)
{
    if (storage_drv == NULL)
        return -ROOST_ESTORAGE;
    if (!storage_str_ok(host, STORE_HOST_MAX, 0) || !storage_name_ok(name) ||
        fn == NULL)
        return -ROOST_EINVAL;
    return storage_drv->users(storage_db, host, name, fn, arg);
}

int
roost_storage_purge_user(const char *host, const char *user)
{
    int r;

    if (storage_drv == NULL)
        return -ROOST_ESTORAGE;
    if (!storage_str_ok(host, STORE_HOST_MAX, 0) ||
        !storage_str_ok(user, STORE_USER_MAX, 0))
        return -ROOST_EINVAL;
    r = storage_drv->del(storage_db, host, NULL, user, NULL);
    if (r == 0)
        r = storage_drv->remove(storage_db, host, NULL, user, NULL);
    return r;
}

/* Common checks: store, shape family and user.  0 or -ROOST_EINVAL. */
static int
storage_check(const roost_store_t *s, const char *user, int archive)
{
    if (s == NULL || !storage_str_ok(user, STORE_USER_MAX, 1))
        return -ROOST_EINVAL;
    if ((s->shape == ROOST_STORE_ARCHIVE) != archive)
        return -ROOST_EINVAL;
    return 0;
}

/* The key a call uses: "" for KEYVAL, the given key for MAP (NULL if it is
 * missing or too long). */
static const char *
storage_key(const roost_store_t *s, const char *key)
{
    if (s->shape == ROOST_STORE_KEYVAL)
        return "";
    return storage_str_ok(key, STORE_KEY_MAX, 1) ? key : NULL;
}

int
roost_store_get(roost_store_t *s, const char *user, const char *key, char **val,
                size_t *len)
{
    size_t dummy;
    int r = storage_check(s, user, 0);

    if (r < 0 || val == NULL || (key = storage_key(s, key)) == NULL)
        return -ROOST_EINVAL;
    return s->drv->get(s->db, s->host, s->name, user, key, val,
                       len ? len : &dummy);
}

int
roost_store_set(roost_store_t *s, const char *user, const char *key,
                const void *val, size_t len)
{
    int r = storage_check(s, user, 0);

    if (r < 0 || (val == NULL && len > 0) ||
        (key = storage_key(s, key)) == NULL)
        return -ROOST_EINVAL;
    if (len > STORE_VALUE_MAX)
        return -ROOST_ELIMIT;
    return s->drv->set(s->db, s->host, s->name, user, key, val ? val : "", len);
}

int
roost_store_delete(roost_store_t *s, const char *user, const char *key)
{
    int r = storage_check(s, user, 0);

    if (r < 0)
        return r;
    if (s->shape == ROOST_STORE_MAP && key != NULL &&
        !storage_str_ok(key, STORE_KEY_MAX, 1))
        return -ROOST_EINVAL;
    return s->drv->del(s->db, s->host, s->name, user,
                       s->shape == ROOST_STORE_KEYVAL ? NULL : key);
}

int
roost_store_keys(roost_store_t *s, const char *user, roost_store_key_fn fn,
                 void *arg)
{
    int r = storage_check(s, user, 0);

    if (r < 0 || s->shape != ROOST_STORE_MAP || fn == NULL)
        return -ROOST_EINVAL;
    return s->drv->keys(s->db, s->host, s->name, user, fn, arg);
}

int
roost_store_append(roost_store_t *s, const char *user, const char *with,
                   int64_t when, const void *val, size_t len,
                   char id_out[ROOST_STORE_ID_LEN])
{
    char id[ROOST_STORE_ID_LEN];
    int r = storage_check(s, user, 1);

    if (r < 0 || when < 0 || (val == NULL && len > 0) ||
        (with != NULL && !storage_str_ok(with, STORE_KEY_MAX, 1)))
        return -ROOST_EINVAL;
    if (len > STORE_VALUE_MAX)
        return -ROOST_ELIMIT;
    if (when == 0) {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        when = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    }
    r = s->drv->append(s->db, s->host, s->name, user, with ? with : "", when,
                       val ? val : "", len, id);
    if (r == 0 && id_out != NULL)
        memcpy(id_out, id, sizeof(id));
    return r;
}

int
roost_store_find(roost_store_t *s, const char *user,
                 const roost_store_query_t *q, roost_store_item_fn fn,
                 void *arg)
{
    static const roost_store_query_t all;
    int r = storage_check(s, user, 1);

    if (q == NULL)
        q = &all;
    if (r < 0 || (fn == NULL && !q->count_only) || q->limit < 0 ||
        q->start < 0 || q->end < 0 ||
        (q->with != NULL && !storage_str_ok(q->with, STORE_KEY_MAX, 1)))
        return -ROOST_EINVAL;
    /* An id too long to be ours cannot exist. */
    if ((q->after_id != NULL &&
         !storage_str_ok(q->after_id, ROOST_STORE_ID_LEN - 1, 0)) ||
        (q->before_id != NULL &&
         !storage_str_ok(q->before_id, ROOST_STORE_ID_LEN - 1, 0)))
        return -ROOST_ENOTFOUND;
    /* Likewise an id filter matches nothing. */
    if (q->id != NULL && !storage_str_ok(q->id, ROOST_STORE_ID_LEN - 1, 0))
        return 0;
    return s->drv->find(s->db, s->host, s->name, user, q, fn, arg);
}

int
roost_store_count(roost_store_t *s, const char *user)
{
    int r = storage_check(s, user, 1);

    return r < 0 ? r : s->drv->count(s->db, s->host, s->name, user);
}

int
roost_store_remove(roost_store_t *s, const char *user, const char *id)
{
    int r = storage_check(s, user, 1);

    if (r < 0)
        return r;
    if (id != NULL && !storage_str_ok(id, ROOST_STORE_ID_LEN - 1, 0))
        return -ROOST_ENOTFOUND;
    return s->drv->remove(s->db, s->host, s->name, user, id);
}
