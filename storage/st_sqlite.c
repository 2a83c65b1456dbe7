/* storage/st_sqlite.c: the SQLite storage backend (the default).
 *
 * One connection per open backend, guarded by one mutex, so the calls may
 * come from the storage worker, the CPU pool and roostctl alike.  WAL
 * journal with synchronous=FULL: a write outside a batch that returned 0
 * has reached the disk (DESIGN.md, durability).  Group commit: begin,
 * commit and rollback open and end one IMMEDIATE transaction on the
 * connection (the storage worker's batch), so a batch costs one fsync.
 * Each of them, like every call, takes the mutex only for itself: other
 * threads' reads run between the batch's jobs and see its writes.  If an
 * error made SQLite roll the batch back early, later writes of the batch
 * fail rather than autocommit, and commit fails.  Statements are prepared
 * once per handle; archive queries are prepared on first use per
 * combination of filters, so each can use its index.
 *
 * Schema: the migrations compiled in from storage/schema/sqlite/NNN_*.sql
 * (schema_sqlite.h, made by storage/schema2c.sh).  PRAGMA user_version
 * counts the applied ones; each missing one runs in its own IMMEDIATE
 * transaction (so two processes opening one file do not both migrate), and
 * a database newer than this code is refused.
 *
 * Archive ids are the rowids as decimal strings; items are ordered by id,
 * i.e. in the order they were appended.  Callbacks run with the mutex held
 * and must not call back into storage (that fails with -ROOST_EINVAL).
 * del/remove with store NULL act on every store of (host, user). */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "storage.h"
#include "schema_sqlite.h"

#define SQ_BUSY_MS 5000

enum {
    SQ_GET,
    SQ_SET,
    SQ_DEL_KEY,
    SQ_DEL_USER,
    SQ_DEL_ALL,
    SQ_KEYS,
    SQ_USERS,
    SQ_APPEND,
    SQ_ID,
    SQ_COUNT,
    SQ_RM_ID,
    SQ_RM_USER,
    SQ_RM_ALL,
    SQ_N
};

/* Parameters: ?1 host, ?2 store, ?3 user, then per statement. */
static const char *const sq_sql[SQ_N] = {
    [SQ_GET] = "SELECT value FROM keyval"
               " WHERE host=?1 AND store=?2 AND user=?3 AND key=?4",
    [SQ_SET] = "INSERT OR REPLACE INTO keyval (host, store, user, key, value)"
               " VALUES (?1, ?2, ?3, ?4, ?5)",
    [SQ_DEL_KEY] = "DELETE FROM keyval"
                   " WHERE host=?1 AND store=?2 AND user=?3 AND key=?4",
    [SQ_DEL_USER] = "DELETE FROM keyval WHERE host=?1 AND store=?2"
                    " AND user=?3",
    [SQ_DEL_ALL] = "DELETE FROM keyval WHERE host=?1 AND user=?3",
    [SQ_KEYS] = "SELECT key, value FROM keyval"
                " WHERE host=?1 AND store=?2 AND user=?3 ORDER BY key",
    [SQ_USERS] = "SELECT user FROM keyval WHERE host=?1 AND store=?2"
                 " AND user<>'' UNION SELECT user FROM archive"
                 " WHERE host=?1 AND store=?2 AND user<>'' ORDER BY 1",
    [SQ_APPEND] = "INSERT INTO archive"
                  " (host, store, user, when_us, with_jid, value)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [SQ_ID] = "SELECT 1 FROM archive"
              " WHERE id=?4 AND host=?1 AND store=?2 AND user=?3",
    [SQ_COUNT] = "SELECT count(*) FROM archive"
                 " WHERE host=?1 AND store=?2 AND user=?3",
    [SQ_RM_ID] = "DELETE FROM archive"
                 " WHERE id=?4 AND host=?1 AND store=?2 AND user=?3",
    [SQ_RM_USER] = "DELETE FROM archive WHERE host=?1 AND store=?2"
                   " AND user=?3",
    [SQ_RM_ALL] = "DELETE FROM archive WHERE host=?1 AND user=?3",
};

/* Filter bits of an archive query; one cached statement per combination. */
enum {
    SQF_WITH = 1,
    SQF_START = 2,
    SQF_END = 4,
    SQF_AFTER = 8,
    SQF_BEFORE = 16,
    SQF_REVERSE = 32,
    SQF_ID = 64,
    SQF_COUNT = 128,
    SQF_N = 256
};

typedef struct {
    pthread_mutex_t lock;
    int batch; /* a batch transaction was begun and not ended */
    sqlite3 *db;
    sqlite3_stmt *st[SQ_N];
    sqlite3_stmt *find[SQF_N];
} sq_db_t;

static char *sq_msg(const char *fmt, ...) ROOST_PRINTF(1, 2);

static char *
sq_msg(const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return roost_xstrdup(buf);
}

static int
sq_lock(sq_db_t *d)
{
    return pthread_mutex_lock(&d->lock) == 0 ? 0 : -ROOST_EINVAL;
}

static void
sq_unlock(sq_db_t *d)
{
    pthread_mutex_unlock(&d->lock);
}

/* Logs the connection's last error; returns -ROOST_ESTORAGE. */
static int
sq_fail(sq_db_t *d, const char *what)
{
    ROOST_LOG(ROOST_LOG_ERROR, "sqlite", "%s: %s", what, sqlite3_errmsg(d->db));
    return -ROOST_ESTORAGE;
}

/* Binds ?1..?3 of a statement; store may be NULL (statements that span
 * stores do not use ?2). */
static sqlite3_stmt *
sq_bind(sq_db_t *d, int which, const char *host, const char *store,
        const char *user)
{
    sqlite3_stmt *s = d->st[which];

    sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, store, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, user, -1, SQLITE_STATIC);
    return s;
}

/* Resets s for its next use; the bound strings are the caller's. */
static void
sq_reset(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows (all writes go through here).
 * 0 or -ROOST_ESTORAGE.  Inside a batch whose transaction SQLite already
 * rolled back (after an I/O error, say), the write is refused: run in
 * autocommit it would outlive the batch that reports it failed. */
static int
sq_exec_stmt(sq_db_t *d, sqlite3_stmt *s, const char *what)
{
    int rc;

    if (d->batch && sqlite3_get_autocommit(d->db)) {
        sq_reset(s);
        ROOST_LOG(ROOST_LOG_ERROR, "sqlite", "%s: batch was rolled back", what);
        return -ROOST_ESTORAGE;
    }
    rc = sqlite3_step(s);
    sq_reset(s);
    return rc == SQLITE_DONE ? 0 : sq_fail(d, what);
}

static int
sq_exec(sqlite3 *db, const char *sql, char **err, const char *what)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    *err = sq_msg("%s: %s", what, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -ROOST_ESTORAGE;
}

/* One-row integer or text pragma; -1 on error. */
static int64_t
sq_pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int
sq_migrate(sqlite3 *db, const char *path, char **err)
{
    int64_t n = 0, v;
    char sql[64];

    while (roost_sqlite_migrations[n] != NULL)
        n++;
    for (;;) {
        if (sq_exec(db, "BEGIN IMMEDIATE", err, path) < 0)
            return -ROOST_ESTORAGE;
        v = sq_pragma_int(db, "PRAGMA user_version");
        if (v < 0 || v > n) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            *err = v < 0 ? sq_msg("%s: cannot read the schema version: %s",
                                  path, sqlite3_errmsg(db))
                         : sq_msg("%s: schema version %" PRId64 " is newer "
                                  "than this roost supports (%" PRId64 ")",
                                  path, v, n);
            return -ROOST_ESTORAGE;
        }
        if (v == n)
            return sq_exec(db, "COMMIT", err, path);
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, v + 1);
        if (sq_exec(db, roost_sqlite_migrations[v], err, "migration") < 0 ||
            sq_exec(db, sql, err, "migration") < 0 ||
            sq_exec(db, "COMMIT", err, "migration") < 0) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -ROOST_ESTORAGE;
        }
        ROOST_LOG(ROOST_LOG_INFO, "sqlite", "%s: schema migrated to %" PRId64,
                  path, v + 1);
    }
}

static void
st_sqlite_close(void *db)
{
    sq_db_t *d = db;

    if (d == NULL)
        return;
    for (int i = 0; i < SQ_N; i++)
        sqlite3_finalize(d->st[i]);
    for (int i = 0; i < SQF_N; i++)
        sqlite3_finalize(d->find[i]);
    if (sqlite3_close(d->db) != SQLITE_OK)
        ROOST_LOG(ROOST_LOG_ERROR, "sqlite", "close: %s",
                  sqlite3_errmsg(d->db));
    pthread_mutex_destroy(&d->lock);
    roost_free(d);
}

static void *
st_sqlite_open(const char *path, char **err)
{
    sq_db_t *d;
    pthread_mutexattr_t at;
    sqlite3_stmt *s;
    const char *mode;
    int fd;

    *err = NULL;
    if (path == NULL || *path == '\0') {
        *err = roost_xstrdup("sqlite: no database path");
        return NULL;
    }
    /* The file holds credentials: create it private before SQLite does
     * (its -wal and -shm files inherit the mode). */
    if (strcmp(path, ":memory:") != 0) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            *err = sq_msg("%s: cannot open: %m", path);
            return NULL;
        }
        close(fd);
    }
    d = roost_xcalloc(1, sizeof(*d));
    pthread_mutexattr_init(&at);
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&d->lock, &at);
    pthread_mutexattr_destroy(&at);
    if (sqlite3_open_v2(path, &d->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        *err = sq_msg("%s: %s", path,
                      d->db ? sqlite3_errmsg(d->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(d->db, SQ_BUSY_MS);
    if (sqlite3_prepare_v2(d->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) !=
            SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        *err = sq_msg("%s: %s", path, sqlite3_errmsg(d->db));
        sqlite3_finalize(s);
        goto fail;
    }
    mode = (const char *)sqlite3_column_text(s, 0);
    if (mode == NULL || strcmp(mode, "wal") != 0) /* ":memory:" has no WAL */
        ROOST_LOG(ROOST_LOG_WARN, "sqlite", "%s: journal mode is %s, not wal",
                  path, mode ? mode : "unknown");
    sqlite3_finalize(s);
    if (sq_exec(d->db, "PRAGMA synchronous=FULL", err, path) < 0 ||
        sq_migrate(d->db, path, err) < 0)
        goto fail;
    for (int i = 0; i < SQ_N; i++) {
        if (sqlite3_prepare_v3(d->db, sq_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &d->st[i], NULL) != SQLITE_OK) {
            *err = sq_msg("%s: %s", path, sqlite3_errmsg(d->db));
            goto fail;
        }
    }
    return d;
fail:
    st_sqlite_close(d);
    return NULL;
}

static int
st_sqlite_get(void *db, const char *host, const char *store, const char *user,
              const char *key, char **val, size_t *len)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int rc, r = sq_lock(d);

    if (r < 0)
        return r;
    s = sq_bind(d, SQ_GET, host, store, user);
    sqlite3_bind_text(s, 4, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(s, 0);
        int n = sqlite3_column_bytes(s, 0);

        *val = roost_xstrndup(b ? b : "", (size_t)n);
        *len = (size_t)n;
    } else {
        r = rc == SQLITE_DONE ? -ROOST_ENOTFOUND : sq_fail(d, "get");
    }
    sq_reset(s);
    sq_unlock(d);
    return r;
}

static int
st_sqlite_set(void *db, const char *host, const char *store, const char *user,
              const char *key, const void *val, size_t len)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int r;

    if (len > INT_MAX)
        return -ROOST_ELIMIT;
    if ((r = sq_lock(d)) < 0)
        return r;
    s = sq_bind(d, SQ_SET, host, store, user);
    sqlite3_bind_text(s, 4, key, -1, SQLITE_STATIC);
    /* A NULL pointer would bind SQL NULL, not an empty value. */
    sqlite3_bind_blob(s, 5, val ? val : "", (int)len, SQLITE_STATIC);
    r = sq_exec_stmt(d, s, "set");
    sq_unlock(d);
    return r;
}

static int
st_sqlite_del(void *db, const char *host, const char *store, const char *user,
              const char *key)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int r = sq_lock(d);

    if (r < 0)
        return r;
    if (store == NULL) {
        s = sq_bind(d, SQ_DEL_ALL, host, NULL, user);
    } else if (key == NULL) {
        s = sq_bind(d, SQ_DEL_USER, host, store, user);
    } else {
        s = sq_bind(d, SQ_DEL_KEY, host, store, user);
        sqlite3_bind_text(s, 4, key, -1, SQLITE_STATIC);
    }
    r = sq_exec_stmt(d, s, "delete");
    sq_unlock(d);
    return r;
}

static int
st_sqlite_keys(void *db, const char *host, const char *store, const char *user,
               roost_store_key_fn fn, void *arg)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int rc, r = sq_lock(d);

    if (r < 0)
        return r;
    s = sq_bind(d, SQ_KEYS, host, store, user);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        /* column_text gives the value NUL-terminated */
        const char *v = (const char *)sqlite3_column_text(s, 1);
        int n = sqlite3_column_bytes(s, 1);

        if (fn(arg, (const char *)sqlite3_column_text(s, 0), v ? v : "",
               (size_t)n) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = sq_fail(d, "keys");
    sq_reset(s);
    sq_unlock(d);
    return r;
}

static int
st_sqlite_users(void *db, const char *host, const char *store,
                int (*fn)(void *arg, const char *user), void *arg)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int rc, r = sq_lock(d);

    if (r < 0)
        return r;
    s = sq_bind(d, SQ_USERS, host, store, "");
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(arg, (const char *)sqlite3_column_text(s, 0)) != 0)
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = sq_fail(d, "users");
    sq_reset(s);
    sq_unlock(d);
    return r;
}

static int
st_sqlite_append(void *db, const char *host, const char *store,
                 const char *user, const char *with, int64_t when,
                 const void *val, size_t len, char *id_out)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int r;

    if (len > INT_MAX)
        return -ROOST_ELIMIT;
    if ((r = sq_lock(d)) < 0)
        return r;
    s = sq_bind(d, SQ_APPEND, host, store, user);
    sqlite3_bind_int64(s, 4, when);
    sqlite3_bind_text(s, 5, with, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, val ? val : "", (int)len, SQLITE_STATIC);
    r = sq_exec_stmt(d, s, "append");
    if (r == 0)
        snprintf(id_out, ROOST_STORE_ID_LEN, "%lld",
                 (long long)sqlite3_last_insert_rowid(d->db));
    sq_unlock(d);
    return r;
}

/* 0 if id names an item of (host, store, user), else -ROOST_ENOTFOUND or
 * -ROOST_ESTORAGE; *v gets the numeric id. */
static int
sq_item(sq_db_t *d, const char *host, const char *store, const char *user,
        const char *id, int64_t *v)
{
    sqlite3_stmt *s;
    int rc;

    if ((*v = roost_storage_parse_id(id)) < 0)
        return -ROOST_ENOTFOUND;
    s = sq_bind(d, SQ_ID, host, store, user);
    sqlite3_bind_int64(s, 4, *v);
    rc = sqlite3_step(s);
    sq_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ROOST_ENOTFOUND : sq_fail(d, "find id");
}

/* The cached statement for a combination of filters, prepared on first
 * use.  Parameters: ?1-?3 as usual, ?4 with, ?5 start, ?6 end, ?7 after,
 * ?8 before, ?9 limit (-1 = none), ?10 id.  SQF_COUNT makes it a count
 * of the matching rows (one row, one column). */
static sqlite3_stmt *
sq_find_stmt(sq_db_t *d, int mask)
{
    char sql[512];
    int count = mask & SQF_COUNT;
    /* Parameters a statement does not use are bound to no effect. */
    const char *tail = count                ? ""
                       : mask & SQF_REVERSE ? " ORDER BY id DESC LIMIT ?9"
                                            : " ORDER BY id ASC LIMIT ?9";

    if (d->find[mask] != NULL)
        return d->find[mask];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM archive"
             " WHERE host=?1 AND store=?2 AND user=?3%s%s%s%s%s%s%s",
             count ? "count(*)" : "id, when_us, with_jid, value",
             mask & SQF_WITH ? " AND with_jid=?4" : "",
             mask & SQF_START ? " AND when_us>=?5" : "",
             mask & SQF_END ? " AND when_us<=?6" : "",
             mask & SQF_AFTER ? " AND id>?7" : "",
             mask & SQF_BEFORE ? " AND id<?8" : "",
             mask & SQF_ID ? " AND id=?10" : "", tail);
    if (sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &d->find[mask], NULL) != SQLITE_OK)
        d->find[mask] = NULL;
    return d->find[mask];
}

static int
st_sqlite_find(void *db, const char *host, const char *store, const char *user,
               const roost_store_query_t *q, roost_store_item_fn fn, void *arg)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int64_t after = 0, before = 0, only = 0;
    int rc, visited = 0, r;
    int mask = (q->with ? SQF_WITH : 0) | (q->start ? SQF_START : 0) |
               (q->end ? SQF_END : 0) | (q->after_id ? SQF_AFTER : 0) |
               (q->before_id ? SQF_BEFORE : 0) | (q->id ? SQF_ID : 0) |
               (q->count_only ? SQF_COUNT : (q->reverse ? SQF_REVERSE : 0));
    char id[ROOST_STORE_ID_LEN];

    /* Not an id of ours: nothing matches. */
    if (q->id != NULL && (only = roost_storage_parse_id(q->id)) < 0)
        return 0;
    if ((r = sq_lock(d)) < 0)
        return r;
    if ((q->after_id != NULL &&
         (r = sq_item(d, host, store, user, q->after_id, &after)) < 0) ||
        (q->before_id != NULL &&
         (r = sq_item(d, host, store, user, q->before_id, &before)) < 0))
        goto out;
    if ((s = sq_find_stmt(d, mask)) == NULL) {
        r = sq_fail(d, "find");
        goto out;
    }
    sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, store, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, q->with, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, q->start);
    sqlite3_bind_int64(s, 6, q->end);
    sqlite3_bind_int64(s, 7, after);
    sqlite3_bind_int64(s, 8, before);
    sqlite3_bind_int(s, 9, q->limit > 0 ? q->limit : -1);
    sqlite3_bind_int64(s, 10, only);
    if (q->count_only) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            int64_t n = sqlite3_column_int64(s, 0);

            r = n > INT_MAX ? INT_MAX : (int)n;
        } else {
            r = sq_fail(d, "count");
        }
        sq_reset(s);
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 3);
        int n = sqlite3_column_bytes(s, 3);

        snprintf(id, sizeof(id), "%lld", (long long)sqlite3_column_int64(s, 0));
        visited++;
        if (fn(arg, id, sqlite3_column_int64(s, 1),
               (const char *)sqlite3_column_text(s, 2), v ? v : "",
               (size_t)n) != 0 ||
            visited == INT_MAX)
            break;
    }
    r = rc != SQLITE_ROW && rc != SQLITE_DONE ? sq_fail(d, "find") : visited;
    sq_reset(s);
out:
    sq_unlock(d);
    return r;
}

static int
st_sqlite_count(void *db, const char *host, const char *store, const char *user)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int64_t n;
    int r = sq_lock(d);

    if (r < 0)
        return r;
    s = sq_bind(d, SQ_COUNT, host, store, user);
    if (sqlite3_step(s) == SQLITE_ROW) {
        n = sqlite3_column_int64(s, 0);
        r = n > INT_MAX ? INT_MAX : (int)n;
    } else {
        r = sq_fail(d, "count");
    }
    sq_reset(s);
    sq_unlock(d);
    return r;
}

static int
st_sqlite_remove(void *db, const char *host, const char *store,
                 const char *user, const char *id)
{
    sq_db_t *d = db;
    sqlite3_stmt *s;
    int64_t v;
    int r = sq_lock(d);

    if (r < 0)
        return r;
    if (store == NULL) {
        r = sq_exec_stmt(d, sq_bind(d, SQ_RM_ALL, host, NULL, user), "remove");
    } else if (id == NULL) {
        r = sq_exec_stmt(d, sq_bind(d, SQ_RM_USER, host, store, user),
                         "remove");
    } else if ((v = roost_storage_parse_id(id)) < 0) {
        r = -ROOST_ENOTFOUND;
    } else {
        s = sq_bind(d, SQ_RM_ID, host, store, user);
        sqlite3_bind_int64(s, 4, v);
        r = sq_exec_stmt(d, s, "remove");
        if (r == 0 && sqlite3_changes(d->db) == 0)
            r = -ROOST_ENOTFOUND;
    }
    sq_unlock(d);
    return r;
}

/* Opens the batch transaction.  -ROOST_EINVAL if one is open already. */
static int
st_sqlite_begin(void *db)
{
    sq_db_t *d = db;
    int r = sq_lock(d);

    if (r < 0)
        return r;
    if (d->batch)
        r = -ROOST_EINVAL;
    else if (sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
             SQLITE_OK)
        r = sq_fail(d, "begin");
    else
        d->batch = 1;
    sq_unlock(d);
    return r;
}

/* Ends the batch transaction with sql ("COMMIT" or "ROLLBACK").  On any
 * failure no transaction stays open and none of the batch persists. */
static int
sq_end(sq_db_t *d, const char *sql)
{
    int r = sq_lock(d);

    if (r < 0)
        return r;
    if (!d->batch) {
        sq_unlock(d);
        return -ROOST_EINVAL;
    }
    d->batch = 0;
    if (sqlite3_get_autocommit(d->db)) {
        /* SQLite rolled back on an earlier error (see sq_exec_stmt) */
        ROOST_LOG(ROOST_LOG_ERROR, "sqlite", "%s: batch was rolled back", sql);
        r = -ROOST_ESTORAGE;
    } else if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        r = sq_fail(d, sql);
        /* A failed COMMIT may leave the transaction open (SQLITE_BUSY);
         * the caller is told it failed, so it must not commit later. */
        if (!sqlite3_get_autocommit(d->db))
            sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    }
    sq_unlock(d);
    return r;
}

static int
st_sqlite_commit(void *db)
{
    return sq_end(db, "COMMIT");
}

static int
st_sqlite_rollback(void *db)
{
    return sq_end(db, "ROLLBACK");
}

const roost_store_driver_t roost_st_sqlite = {
    .name = "sqlite",
    .open = st_sqlite_open,
    .close = st_sqlite_close,
    .get = st_sqlite_get,
    .set = st_sqlite_set,
    .del = st_sqlite_del,
    .keys = st_sqlite_keys,
    .users = st_sqlite_users,
    .append = st_sqlite_append,
    .find = st_sqlite_find,
    .count = st_sqlite_count,
    .remove = st_sqlite_remove,
    .begin = st_sqlite_begin,
    .commit = st_sqlite_commit,
    .rollback = st_sqlite_rollback,
};
