/* roost/store.h: storage by shape (HOUSE 27), the only storage API modules
 * see.  No SQL here: a backend (storage/st_*.c) implements these shapes.
 *
 * Shapes:
 *   KEYVAL  one document per (user); key argument ignored (pass NULL)
 *   MAP     per-user key -> value
 *   ARCHIVE time-ordered items per user, each with a unique id, a "with"
 *           JID and a timestamp; queried by range (offline queue, MAM)
 *
 * Every store is scoped to (virtual host, store name); user is the
 * localpart, or "" for host-wide data.  Values are opaque bytes.
 *
 * Threading: these calls block on the backend.  They are safe from any
 * thread (backends serialise internally), but handlers on the event loop
 * must not call them directly: run them through roost_store_async(), whose
 * work function runs on the storage worker and whose done function runs
 * back on the loop. */
#ifndef ROOST_STORE_H
#define ROOST_STORE_H

#include <roost/common.h>

typedef struct roost_store roost_store_t;
typedef struct roost_mod roost_mod_t;

typedef enum {
    ROOST_STORE_KEYVAL = 1,
    ROOST_STORE_MAP = 2,
    ROOST_STORE_ARCHIVE = 3
} roost_store_shape_t;

#define ROOST_STORE_ID_LEN 40 /* ids are NUL-terminated, shorter than this */

/* A store named name (letters, digits, '_') of the given shape on m's
 * vhost.  Owned by the module instance: closed automatically on unload.
 * NULL when the backend cannot provide it (logged). */
ROOST_API roost_store_t *roost_store_open(roost_mod_t *m, const char *name,
                                          roost_store_shape_t shape);

/* KEYVAL and MAP.  get: *val is a new NUL-terminated buffer (roost_free),
 * *len its length without the NUL.  Returns 0, -ROOST_ENOTFOUND or
 * -ROOST_ESTORAGE. */
ROOST_API int roost_store_get(roost_store_t *s, const char *user,
                              const char *key, char **val, size_t *len);
ROOST_API int roost_store_set(roost_store_t *s, const char *user,
                              const char *key, const void *val, size_t len);
/* Deletes one key, or with key NULL every entry of user in this store.
 * Deleting what does not exist is not an error. */
ROOST_API int roost_store_delete(roost_store_t *s, const char *user,
                                 const char *key);
/* Calls fn for each key of user in a MAP store, in key order.  fn returns
 * non-zero to stop early. */
typedef int (*roost_store_key_fn)(void *arg, const char *key, const char *val,
                                  size_t len);
ROOST_API int roost_store_keys(roost_store_t *s, const char *user,
                               roost_store_key_fn fn, void *arg);

/* ARCHIVE.  Appends an item; when is in microseconds since the epoch (0 =
 * now).  The new item's id (unique within the store, increasing) is copied
 * to id_out when it is not NULL. */
ROOST_API int roost_store_append(roost_store_t *s, const char *user,
                                 const char *with, int64_t when,
                                 const void *val, size_t len,
                                 char id_out[ROOST_STORE_ID_LEN]);

typedef struct {
    const char *with;      /* exact match on the stored "with", or NULL */
    int64_t start, end;    /* inclusive bounds in microseconds; 0 = open */
    const char *after_id;  /* items strictly after this id, or NULL */
    const char *before_id; /* items strictly before this id, or NULL */
    int limit;             /* at most this many (0 = no limit) */
    int reverse;           /* newest first (with limit: the last N) */
    /* Added after the first release; zero keeps the old behaviour. */
    const char *id; /* only the item with this id (an id that does
                            * not exist matches nothing), or NULL */
    int count_only; /* fn is not called (may be NULL) and limit is
                            * ignored: the result is the number of items
                            * matching the other fields */
} roost_store_query_t;

typedef int (*roost_store_item_fn)(void *arg, const char *id, int64_t when,
                                   const char *with, const char *val,
                                   size_t len);
/* Calls fn for each matching item, oldest first unless q->reverse.  fn
 * returns non-zero to stop.  Returns the number of items visited (with
 * q->count_only, of matching items) or -ROOST_E*; -ROOST_ENOTFOUND when
 * after_id or before_id names no item of user. */
ROOST_API int roost_store_find(roost_store_t *s, const char *user,
                               const roost_store_query_t *q,
                               roost_store_item_fn fn, void *arg);
/* Number of items of user (for quotas). */
ROOST_API int roost_store_count(roost_store_t *s, const char *user);
/* Removes one item by id, or all of user's items when id is NULL. */
ROOST_API int roost_store_remove(roost_store_t *s, const char *user,
                                 const char *id);

/* Runs work(arg) on the storage worker thread, then done(arg, result) on
 * the event loop, where result is work's return value.  The module must not
 * be unloaded in between: the core drains pending work first. */
ROOST_API void roost_store_async(roost_mod_t *m, int (*work)(void *arg),
                                 void (*done)(void *arg, int result),
                                 void *arg);

#endif /* ROOST_STORE_H */
