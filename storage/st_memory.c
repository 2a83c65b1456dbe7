/* storage/st_memory.c: the in-memory storage backend.
 *
 * For tests, the module harness and throw-away servers: nothing survives
 * close.  Semantics match st_sqlite.c exactly (key order, archive id order,
 * query rules, error codes), which check_storage.c verifies by running one
 * suite against both.  Entries live in two sorted arrays guarded by one
 * mutex: keyval/map entries by (host, store, user, key), and archive
 * streams by (host, store, user), each holding its items in id order.
 * Not for large data sets: inserts and removals are O(n) memmoves.
 *
 * Callbacks (keys, users, find) run with the mutex held and must not call
 * back into storage: such a call fails with -ROOST_EINVAL instead of
 * deadlocking.  del/remove with store NULL act on every store of (host,
 * user) (see core/storage.c). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "storage.h"

typedef struct {
    char *host, *store, *user, *key;
    char *val; /* NUL-terminated copy of len bytes */
    size_t len;
} mem_kv_t;

typedef struct {
    int64_t id, when;
    char *with, *val;
    size_t len;
} mem_item_t;

typedef struct {
    char *host, *store, *user;
    mem_item_t *items; /* increasing id */
    size_t n, cap;
} mem_arc_t;

typedef struct {
    pthread_mutex_t lock;
    mem_kv_t *kv;
    size_t nkv, kvcap;
    mem_arc_t *arc;
    size_t narc, arccap;
    int64_t last_id; /* ids are unique across the backend, like rowids */
} mem_db_t;

static int
mem_lock(mem_db_t *m)
{
    /* An error-checking mutex: a callback calling back in gets EDEADLK. */
    return pthread_mutex_lock(&m->lock) == 0 ? 0 : -ROOST_EINVAL;
}

static void
mem_unlock(mem_db_t *m)
{
    pthread_mutex_unlock(&m->lock);
}

static char *
mem_dup(const void *p, size_t len)
{
    return roost_xstrndup(p, len);
}

static int
mem_cmp3(const char *h1, const char *s1, const char *u1, const char *h2,
         const char *s2, const char *u2)
{
    int c = strcmp(h1, h2);

    if (c == 0)
        c = strcmp(s1, s2);
    if (c == 0)
        c = strcmp(u1, u2);
    return c;
}

/* First kv index not below (host, store, user, key). */
static size_t
mem_kv_lb(const mem_db_t *m, const char *host, const char *store,
          const char *user, const char *key)
{
    size_t lo = 0, hi = m->nkv;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const mem_kv_t *e = &m->kv[mid];
        int c = mem_cmp3(e->host, e->store, e->user, host, store, user);

        if (c == 0)
            c = strcmp(e->key, key);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int
mem_kv_in(const mem_kv_t *e, const char *host, const char *store,
          const char *user)
{
    return strcmp(e->host, host) == 0 && strcmp(e->store, store) == 0 &&
           (user == NULL || strcmp(e->user, user) == 0);
}

static void
mem_kv_free(mem_kv_t *e)
{
    roost_free(e->host);
    roost_free(e->store);
    roost_free(e->user);
    roost_free(e->key);
    roost_free(e->val);
}

/* Removes kv entries [a, b). */
static void
mem_kv_cut(mem_db_t *m, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        mem_kv_free(&m->kv[i]);
    memmove(&m->kv[a], &m->kv[b], (m->nkv - b) * sizeof(m->kv[0]));
    m->nkv -= b - a;
}

/* First archive stream not below (host, store, user). */
static size_t
mem_arc_lb(const mem_db_t *m, const char *host, const char *store,
           const char *user)
{
    size_t lo = 0, hi = m->narc;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const mem_arc_t *a = &m->arc[mid];

        if (mem_cmp3(a->host, a->store, a->user, host, store, user) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static mem_arc_t *
mem_arc_get(mem_db_t *m, const char *host, const char *store, const char *user)
{
    size_t i = mem_arc_lb(m, host, store, user);

    if (i < m->narc && mem_cmp3(m->arc[i].host, m->arc[i].store, m->arc[i].user,
                                host, store, user) == 0)
        return &m->arc[i];
    return NULL;
}

static void
mem_arc_free(mem_arc_t *a)
{
    for (size_t i = 0; i < a->n; i++) {
        roost_free(a->items[i].with);
        roost_free(a->items[i].val);
    }
    roost_free(a->items);
    roost_free(a->host);
    roost_free(a->store);
    roost_free(a->user);
}

static void
mem_arc_drop(mem_db_t *m, mem_arc_t *a)
{
    size_t i = (size_t)(a - m->arc);

    mem_arc_free(a);
    memmove(&m->arc[i], &m->arc[i + 1], (m->narc - i - 1) * sizeof(*a));
    m->narc--;
}

/* Index of the item with id in a, or -1. */
static ssize_t
mem_item_index(const mem_arc_t *a, int64_t id)
{
    size_t lo = 0, hi = a->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (a->items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->n && a->items[lo].id == id ? (ssize_t)lo : -1;
}

static void *
st_memory_open(const char *path, char **err)
{
    mem_db_t *m = roost_xcalloc(1, sizeof(*m));
    pthread_mutexattr_t at;

    pthread_mutexattr_init(&at);
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&m->lock, &at);
    pthread_mutexattr_destroy(&at);
    return m;
}

static void
st_memory_close(void *db)
{
    mem_db_t *m = db;

    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nkv; i++)
        mem_kv_free(&m->kv[i]);
    for (size_t i = 0; i < m->narc; i++)
        mem_arc_free(&m->arc[i]);
    roost_free(m->kv);
    roost_free(m->arc);
    pthread_mutex_destroy(&m->lock);
    roost_free(m);
}

static int
st_memory_get(void *db, const char *host, const char *store, const char *user,
              const char *key, char **val, size_t *len)
{
    mem_db_t *m = db;
    size_t i;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    i = mem_kv_lb(m, host, store, user, key);
    if (i < m->nkv && mem_kv_in(&m->kv[i], host, store, user) &&
        strcmp(m->kv[i].key, key) == 0) {
        *val = mem_dup(m->kv[i].val, m->kv[i].len);
        *len = m->kv[i].len;
    } else {
        r = -ROOST_ENOTFOUND;
    }
    mem_unlock(m);
    return r;
}

static int
st_memory_set(void *db, const char *host, const char *store, const char *user,
              const char *key, const void *val, size_t len)
{
    mem_db_t *m = db;
    mem_kv_t *e;
    size_t i;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    i = mem_kv_lb(m, host, store, user, key);
    if (i < m->nkv && mem_kv_in(&m->kv[i], host, store, user) &&
        strcmp(m->kv[i].key, key) == 0) {
        e = &m->kv[i];
        roost_free(e->val);
    } else {
        if (m->nkv == m->kvcap) {
            m->kvcap = m->kvcap ? m->kvcap * 2 : 16;
            m->kv = roost_xrealloc(m->kv, m->kvcap * sizeof(m->kv[0]));
        }
        memmove(&m->kv[i + 1], &m->kv[i], (m->nkv - i) * sizeof(m->kv[0]));
        m->nkv++;
        e = &m->kv[i];
        e->host = roost_xstrdup(host);
        e->store = roost_xstrdup(store);
        e->user = roost_xstrdup(user);
        e->key = roost_xstrdup(key);
    }
    e->val = mem_dup(val, len);
    e->len = len;
    mem_unlock(m);
    return 0;
}

static int
st_memory_del(void *db, const char *host, const char *store, const char *user,
              const char *key)
{
    mem_db_t *m = db;
    size_t i, j;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    if (store == NULL) { /* every store of (host, user) */
        for (i = j = 0; i < m->nkv; i++) {
            if (strcmp(m->kv[i].host, host) == 0 &&
                strcmp(m->kv[i].user, user) == 0)
                mem_kv_free(&m->kv[i]);
            else
                m->kv[j++] = m->kv[i];
        }
        m->nkv = j;
    } else {
        i = mem_kv_lb(m, host, store, user, key ? key : "");
        for (j = i; j < m->nkv && mem_kv_in(&m->kv[j], host, store, user) &&
                    (key == NULL || strcmp(m->kv[j].key, key) == 0);
             j++)
            ;
        mem_kv_cut(m, i, j);
    }
    mem_unlock(m);
    return 0;
}

static int
st_memory_keys(void *db, const char *host, const char *store, const char *user,
               roost_store_key_fn fn, void *arg)
{
    mem_db_t *m = db;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    for (size_t i = mem_kv_lb(m, host, store, user, "");
         i < m->nkv && mem_kv_in(&m->kv[i], host, store, user); i++)
        if (fn(arg, m->kv[i].key, m->kv[i].val, m->kv[i].len) != 0)
            break;
    mem_unlock(m);
    return 0;
}

/* The next user after prev (NULL: from the start) among kv entries from
 * *i of (host, store), skipping "" and duplicates; NULL at the end. */
static const char *
mem_next_kv_user(const mem_db_t *m, size_t *i, const char *host,
                 const char *store)
{
    for (; *i < m->nkv && mem_kv_in(&m->kv[*i], host, store, NULL); (*i)++) {
        const char *u = m->kv[*i].user;

        if (*u == '\0' || (*i > 0 && mem_kv_in(&m->kv[*i - 1], host, store, u)))
            continue;
        return u;
    }
    return NULL;
}

static const char *
mem_next_arc_user(const mem_db_t *m, size_t *i, const char *host,
                  const char *store)
{
    for (; *i < m->narc && strcmp(m->arc[*i].host, host) == 0 &&
           strcmp(m->arc[*i].store, store) == 0;
         (*i)++)
        if (m->arc[*i].user[0] != '\0' && m->arc[*i].n > 0)
            return m->arc[*i].user;
    return NULL;
}

static int
st_memory_users(void *db, const char *host, const char *store,
                int (*fn)(void *arg, const char *user), void *arg)
{
    mem_db_t *m = db;
    size_t i, j;
    const char *a, *b, *u;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    /* Merge the two sorted user sequences, dropping duplicates. */
    i = mem_kv_lb(m, host, store, "", "");
    j = mem_arc_lb(m, host, store, "");
    a = mem_next_kv_user(m, &i, host, store);
    b = mem_next_arc_user(m, &j, host, store);
    while (a != NULL || b != NULL) {
        int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a, b);

        u = c <= 0 ? a : b;
        if (fn(arg, u) != 0)
            break;
        if (c <= 0) {
            i++;
            a = mem_next_kv_user(m, &i, host, store);
        }
        if (c >= 0) {
            j++;
            b = mem_next_arc_user(m, &j, host, store);
        }
    }
    mem_unlock(m);
    return 0;
}

static int
st_memory_append(void *db, const char *host, const char *store,
                 const char *user, const char *with, int64_t when,
                 const void *val, size_t len, char *id_out)
{
    mem_db_t *m = db;
    mem_arc_t *a;
    mem_item_t *it;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    a = mem_arc_get(m, host, store, user);
    if (a == NULL) {
        size_t i = mem_arc_lb(m, host, store, user);

        if (m->narc == m->arccap) {
            m->arccap = m->arccap ? m->arccap * 2 : 16;
            m->arc = roost_xrealloc(m->arc, m->arccap * sizeof(m->arc[0]));
        }
        memmove(&m->arc[i + 1], &m->arc[i], (m->narc - i) * sizeof(m->arc[0]));
        m->narc++;
        a = &m->arc[i];
        memset(a, 0, sizeof(*a));
        a->host = roost_xstrdup(host);
        a->store = roost_xstrdup(store);
        a->user = roost_xstrdup(user);
    }
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->items = roost_xrealloc(a->items, a->cap * sizeof(a->items[0]));
    }
    it = &a->items[a->n++];
    it->id = ++m->last_id;
    it->when = when;
    it->with = roost_xstrdup(with);
    it->val = mem_dup(val, len);
    it->len = len;
    snprintf(id_out, ROOST_STORE_ID_LEN, "%" PRId64, it->id);
    mem_unlock(m);
    return 0;
}

static int
mem_item_match(const mem_item_t *it, const roost_store_query_t *q)
{
    return (q->with == NULL || strcmp(it->with, q->with) == 0) &&
           (q->start == 0 || it->when >= q->start) &&
           (q->end == 0 || it->when <= q->end);
}

/* Resolves an after/before id to an item index; -ROOST_ENOTFOUND when it
 * is not an item of a. */
static int
mem_bound(const mem_arc_t *a, const char *id, ssize_t *idx)
{
    int64_t v = roost_storage_parse_id(id);

    if (a == NULL || v < 0 || (*idx = mem_item_index(a, v)) < 0)
        return -ROOST_ENOTFOUND;
    return 0;
}

static int
st_memory_find(void *db, const char *host, const char *store, const char *user,
               const roost_store_query_t *q, roost_store_item_fn fn, void *arg)
{
    mem_db_t *m = db;
    const mem_arc_t *a;
    ssize_t lo = -1, hi, k;
    int visited = 0, r;
    int64_t only = 0;
    char id[ROOST_STORE_ID_LEN];

    /* Not an id of ours: nothing matches. */
    if (q->id != NULL && (only = roost_storage_parse_id(q->id)) < 0)
        return 0;
    if ((r = mem_lock(m)) < 0)
        return r;
    a = mem_arc_get(m, host, store, user);
    hi = a ? (ssize_t)a->n : 0;
    if (q->after_id != NULL && (r = mem_bound(a, q->after_id, &lo)) < 0)
        goto out;
    if (q->before_id != NULL && (r = mem_bound(a, q->before_id, &hi)) < 0)
        goto out;
    /* Candidates are the items strictly between lo and hi. */
    for (k = 0; k < hi - lo - 1; k++) {
        const mem_item_t *it = &a->items[q->reverse ? hi - 1 - k : lo + 1 + k];

        if (!mem_item_match(it, q) || (q->id != NULL && it->id != only))
            continue;
        visited++;
        if (q->count_only) {
            if (visited == INT_MAX)
                break;
            continue;
        }
        snprintf(id, sizeof(id), "%" PRId64, it->id);
        if (fn(arg, id, it->when, it->with, it->val, it->len) != 0 ||
            visited == q->limit || visited == INT_MAX)
            break;
    }
    r = visited;
out:
    mem_unlock(m);
    return r;
}

static int
st_memory_count(void *db, const char *host, const char *store, const char *user)
{
    mem_db_t *m = db;
    const mem_arc_t *a;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    a = mem_arc_get(m, host, store, user);
    r = a == NULL ? 0 : a->n > INT_MAX ? INT_MAX : (int)a->n;
    mem_unlock(m);
    return r;
}

static int
st_memory_remove(void *db, const char *host, const char *store,
                 const char *user, const char *id)
{
    mem_db_t *m = db;
    mem_arc_t *a;
    ssize_t k;
    int r = mem_lock(m);

    if (r < 0)
        return r;
    if (store == NULL) { /* every store of (host, user) */
        for (size_t i = m->narc; i-- > 0;)
            if (strcmp(m->arc[i].host, host) == 0 &&
                strcmp(m->arc[i].user, user) == 0)
                mem_arc_drop(m, &m->arc[i]);
        goto out;
    }
    a = mem_arc_get(m, host, store, user);
    if (id == NULL) {
        if (a != NULL)
            mem_arc_drop(m, a);
        goto out;
    }
    if ((r = mem_bound(a, id, &k)) < 0)
        goto out;
    roost_free(a->items[k].with);
    roost_free(a->items[k].val);
    memmove(&a->items[k], &a->items[k + 1],
            (a->n - (size_t)k - 1) * sizeof(a->items[0]));
    if (--a->n == 0)
        mem_arc_drop(m, a);
out:
    mem_unlock(m);
    return r;
}

/* No begin/commit/rollback: nothing here is durable, so there is nothing
 * to group, and storage jobs run unbatched on this backend. */
const roost_store_driver_t roost_st_memory = {
    .name = "memory",
    .open = st_memory_open,
    .close = st_memory_close,
    .get = st_memory_get,
    .set = st_memory_set,
    .del = st_memory_del,
    .keys = st_memory_keys,
    .users = st_memory_users,
    .append = st_memory_append,
    .find = st_memory_find,
    .count = st_memory_count,
    .remove = st_memory_remove,
};
