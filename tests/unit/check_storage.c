/* tests/unit/check_storage.c: core/storage.c with both backends,
 * storage/st_sqlite.c and storage/st_memory.c.
 *
 * Every behaviour test is a loop test over the driver table, so the two
 * backends are held to one set of semantics.  SQLite-only tests cover the
 * schema migrations, the refusal of a newer schema and the file mode, and
 * group commit: transactions at the driver and storage jobs batched by the
 * worker (atomic batches, acks after commit, a real commit failure made
 * with RLIMIT_FSIZE).
 * Each test runs in its own process (Check's fork mode) on its own database
 * file under one temporary directory, removed by main(). */
#include <check.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "log.h"
#include "storage.h"
#include "worker.h"

static const char *const drivers[] = {"sqlite", "memory"};
#define NDRIVERS ((int)(sizeof(drivers) / sizeof(drivers[0])))

static char tmpdir[] = "/tmp/check_storage.XXXXXX";
static char dbpath[512];

/* Opens driver i on dbpath. */
static void
backend_reopen(int i)
{
    char *err = NULL;
    int r;

    roost_storage_shutdown(); /* after a failed test without fork */
    r = roost_storage_init(drivers[i], dbpath, &err);
    ck_assert_msg(r == 0, "init %s: %s", drivers[i], err ? err : "?");
}

/* Opens driver i on a new database file. */
static void
backend_open(int i)
{
    static int seq; /* unique files also with CK_FORK=no */

    snprintf(dbpath, sizeof(dbpath), "%s/%s-%d-%d.db", tmpdir, drivers[i],
             (int)getpid(), seq++);
    backend_reopen(i);
}

static roost_store_t *
store(const char *host, const char *name, roost_store_shape_t shape)
{
    roost_store_t *s = roost_storage_store(host, name, shape);

    ck_assert_ptr_nonnull(s);
    return s;
}

/* Collects keys or users into a space-separated string. */
typedef struct {
    char buf[1024];
    int calls, stop_after;
} collect_t;

static void
collect_add(collect_t *c, const char *s)
{
    size_t n = strlen(c->buf);

    snprintf(c->buf + n, sizeof(c->buf) - n, "%s%s", n ? " " : "", s);
}

static int
collect_key(void *arg, const char *key, const char *val, size_t len)
{
    collect_t *c = arg;
    char kv[256];

    ck_assert_uint_eq(strlen(val), len); /* NUL-terminated */
    snprintf(kv, sizeof(kv), "%s=%s", key, val);
    collect_add(c, kv);
    return ++c->calls == c->stop_after;
}

static int
collect_user(void *arg, const char *user)
{
    collect_t *c = arg;

    collect_add(c, user);
    return ++c->calls == c->stop_after;
}

/* ---- init and store handles ---- */

START_TEST(test_init_errors)
{
    char *err = NULL;
    char path[600];

    ck_assert_ptr_null(roost_storage_store("h", "s", ROOST_STORE_MAP));
    ck_assert_int_eq(roost_storage_users("h", "s", collect_user, NULL),
                     -ROOST_ESTORAGE);
    ck_assert_int_eq(roost_storage_init("nosuch", "x", &err), -ROOST_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "nosuch"));
    roost_free(err);
    ck_assert_int_eq(roost_storage_init(NULL, "x", &err), -ROOST_ECONFIG);
    roost_free(err);
    ck_assert_int_eq(roost_storage_init("sqlite", NULL, &err), -ROOST_ESTORAGE);
    ck_assert_ptr_nonnull(err);
    roost_free(err);
    snprintf(path, sizeof(path), "%s/no/such/dir/x.db", tmpdir);
    ck_assert_int_eq(roost_storage_init("sqlite", path, &err), -ROOST_ESTORAGE);
    ck_assert_ptr_nonnull(strstr(err, "no/such/dir"));
    roost_free(err);

    backend_open(_i);
    ck_assert_int_eq(roost_storage_init(drivers[_i], dbpath, &err),
                     -ROOST_EEXIST);
    roost_free(err);
    roost_storage_shutdown();
    backend_open(_i); /* open again after shutdown */
    roost_storage_shutdown();
}
END_TEST

#define NAME64                                                                 \
    "a234567890123456789012345678901234567890"                                 \
    "123456789012345678901234"

START_TEST(test_store_names)
{
    static const struct {
        const char *host, *name;
        int shape, ok;
    } rows[] = {
        {"h", "roster", ROOST_STORE_MAP, 1},
        {"h", "Off_line9", ROOST_STORE_ARCHIVE, 1},
        {"h", "x", ROOST_STORE_KEYVAL, 1},
        {"h", NAME64, ROOST_STORE_MAP, 1},
        {"h", NAME64 "5", ROOST_STORE_MAP, 0},
        {"h", "", ROOST_STORE_MAP, 0},
        {"h", NULL, ROOST_STORE_MAP, 0},
        {"h", "a-b", ROOST_STORE_MAP, 0},
        {"h", "a b", ROOST_STORE_MAP, 0},
        {"h", "a;DROP", ROOST_STORE_MAP, 0},
        {"h", "ro\xc3\xa9", ROOST_STORE_MAP, 0},
        {"h", "roster", 0, 0},
        {"h", "roster", 4, 0},
        {"", "roster", ROOST_STORE_MAP, 0},
        {NULL, "roster", ROOST_STORE_MAP, 0},
    };

    backend_open(_i);
    for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
        roost_store_t *s =
            roost_storage_store(rows[k].host, rows[k].name, rows[k].shape);

        ck_assert_msg((s != NULL) == rows[k].ok, "row %zu", k);
        roost_store_close(s);
    }
    roost_store_close(NULL);
    roost_storage_shutdown();
}
END_TEST

/* ---- keyval and map ---- */

START_TEST(test_keyval)
{
    roost_store_t *s, *other;
    char *v = NULL;
    size_t len;

    backend_open(_i);
    s = store("example.com", "vcard", ROOST_STORE_KEYVAL);
    other = store("example.org", "vcard", ROOST_STORE_KEYVAL);
    ck_assert_int_eq(roost_store_get(s, "alice", NULL, &v, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_set(s, "alice", NULL, "doc1", 4), 0);
    ck_assert_int_eq(roost_store_set(s, "alice", NULL, "doc2!", 5), 0);
    ck_assert_int_eq(roost_store_get(s, "alice", NULL, &v, &len), 0);
    ck_assert_str_eq(v, "doc2!");
    ck_assert_uint_eq(len, 5);
    roost_free(v);
    /* the key argument is ignored for keyval */
    ck_assert_int_eq(roost_store_get(s, "alice", "x", &v, &len), 0);
    ck_assert_str_eq(v, "doc2!");
    roost_free(v);
    /* other users, hosts and "" are separate */
    ck_assert_int_eq(roost_store_get(s, "bob", NULL, &v, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_get(other, "alice", NULL, &v, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_set(s, "", NULL, "hostwide", 8), 0);
    ck_assert_int_eq(roost_store_get(s, "", NULL, &v, NULL), 0);
    ck_assert_str_eq(v, "hostwide");
    roost_free(v);
    /* binary values with NUL bytes, and empty values */
    ck_assert_int_eq(roost_store_set(s, "bin", NULL, "a\0b\xff", 4), 0);
    ck_assert_int_eq(roost_store_get(s, "bin", NULL, &v, &len), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(v, "a\0b\xff", 5); /* with the added NUL */
    roost_free(v);
    ck_assert_int_eq(roost_store_set(s, "empty", NULL, NULL, 0), 0);
    ck_assert_int_eq(roost_store_get(s, "empty", NULL, &v, &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(v, "");
    roost_free(v);
    /* delete, and delete of what does not exist */
    ck_assert_int_eq(roost_store_delete(s, "alice", NULL), 0);
    ck_assert_int_eq(roost_store_get(s, "alice", NULL, &v, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_delete(s, "alice", NULL), 0);
    ck_assert_int_eq(roost_store_delete(s, "nobody", "k"), 0);
    roost_store_close(s);
    roost_store_close(other);
    roost_storage_shutdown();
}
END_TEST

START_TEST(test_map)
{
    roost_store_t *s, *other;
    collect_t c = {.stop_after = -1};
    char *v = NULL;
    size_t len;

    backend_open(_i);
    s = store("example.com", "roster", ROOST_STORE_MAP);
    other = store("example.com", "privacy", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_set(s, "alice", "carol@x", "3", 1), 0);
    ck_assert_int_eq(roost_store_set(s, "alice", "bob@x", "2", 1), 0);
    ck_assert_int_eq(roost_store_set(s, "alice", "", "0", 1), 0);
    ck_assert_int_eq(roost_store_set(s, "alice", "dave@x", "4", 1), 0);
    ck_assert_int_eq(roost_store_set(s, "alice", "bob@x", "22", 2), 0);
    ck_assert_int_eq(roost_store_set(s, "bob", "alice@x", "9", 1), 0);
    ck_assert_int_eq(roost_store_set(other, "alice", "zed@x", "9", 1), 0);
    ck_assert_int_eq(roost_store_keys(s, "alice", collect_key, &c), 0);
    ck_assert_str_eq(c.buf, "=0 bob@x=22 carol@x=3 dave@x=4");
    /* fn stops early */
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    ck_assert_int_eq(roost_store_keys(s, "alice", collect_key, &c), 0);
    ck_assert_str_eq(c.buf, "=0 bob@x=22");
    ck_assert_int_eq(roost_store_get(s, "alice", "carol@x", &v, &len), 0);
    ck_assert_str_eq(v, "3");
    roost_free(v);
    ck_assert_int_eq(roost_store_get(s, "alice", "carol", &v, &len),
                     -ROOST_ENOTFOUND);
    /* delete one key, then all of a user */
    ck_assert_int_eq(roost_store_delete(s, "alice", "carol@x"), 0);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(roost_store_keys(s, "alice", collect_key, &c), 0);
    ck_assert_str_eq(c.buf, "=0 bob@x=22 dave@x=4");
    ck_assert_int_eq(roost_store_delete(s, "alice", NULL), 0);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(roost_store_keys(s, "alice", collect_key, &c), 0);
    ck_assert_str_eq(c.buf, "");
    ck_assert_int_eq(c.calls, 0);
    /* the other user and store are untouched */
    ck_assert_int_eq(roost_store_get(s, "bob", "alice@x", &v, &len), 0);
    roost_free(v);
    ck_assert_int_eq(roost_store_get(other, "alice", "zed@x", &v, &len), 0);
    roost_free(v);
    roost_store_close(s);
    roost_store_close(other);
    roost_storage_shutdown();
}
END_TEST

static int
item_nop(void *arg, const char *id, int64_t when, const char *with,
         const char *val, size_t len)
{
    return 0;
}

/* Every call on every shape: the wrong family is -ROOST_EINVAL. */
START_TEST(test_shapes)
{
    static const roost_store_shape_t shapes[] = {
        ROOST_STORE_KEYVAL, ROOST_STORE_MAP, ROOST_STORE_ARCHIVE};
    char *v = NULL, id[ROOST_STORE_ID_LEN];
    size_t len;

    backend_open(_i);
    for (int k = 0; k < 3; k++) {
        roost_store_t *s = store("h", "shape", shapes[k]);
        int arc = shapes[k] == ROOST_STORE_ARCHIVE;
        int kv = arc ? -ROOST_EINVAL : 0;

        ck_assert_int_eq(roost_store_set(s, "u", "k", "v", 1), kv);
        ck_assert_int_eq(roost_store_get(s, "u", "k", &v, &len), kv);
        roost_free(v);
        v = NULL;
        ck_assert_int_eq(roost_store_delete(s, "u", "k"), kv);
        ck_assert_int_eq(roost_store_keys(s, "u", collect_key, NULL),
                         shapes[k] == ROOST_STORE_MAP ? 0 : -ROOST_EINVAL);
        ck_assert_int_eq(roost_store_append(s, "u", "w", 1, "v", 1, id),
                         arc ? 0 : -ROOST_EINVAL);
        ck_assert_int_eq(roost_store_find(s, "u", NULL, item_nop, NULL),
                         arc ? 1 : -ROOST_EINVAL);
        ck_assert_int_eq(roost_store_count(s, "u"), arc ? 1 : -ROOST_EINVAL);
        ck_assert_int_eq(roost_store_remove(s, "u", NULL),
                         arc ? 0 : -ROOST_EINVAL);
        roost_store_close(s);
    }
    roost_storage_shutdown();
}
END_TEST

START_TEST(test_arg_limits)
{
    roost_store_t *m, *a;
    char big[1100], *v = NULL, id[ROOST_STORE_ID_LEN];
    char key[3100];
    size_t len;
    roost_store_query_t q = {.limit = -1};

    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    backend_open(_i);
    m = store("h", "m", ROOST_STORE_MAP);
    a = store("h", "a", ROOST_STORE_ARCHIVE);
    ck_assert_int_eq(roost_store_set(NULL, "u", "k", "v", 1), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_set(m, NULL, "k", "v", 1), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_set(m, big, "k", "v", 1), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_set(m, "u", NULL, "v", 1), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_set(m, "u", key, "v", 1), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_set(m, "u", "k", NULL, 1), -ROOST_EINVAL);
    /* the size check comes before the value is read */
    ck_assert_int_eq(roost_store_set(m, "u", "k", "v", 64u * 1024 * 1024 + 1),
                     -ROOST_ELIMIT);
    ck_assert_int_eq(roost_store_get(m, "u", NULL, &v, &len), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_get(m, "u", "k", NULL, &len), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_delete(m, "u", key), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_keys(m, "u", NULL, NULL), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_append(a, "u", "w", -5, "v", 1, id),
                     -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_append(a, "u", key, 1, "v", 1, id),
                     -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_append(a, big, "w", 1, "v", 1, id),
                     -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_store_append(a, "u", "w", 1, "v", 64u * 1024 * 1024 + 1, id),
        -ROOST_ELIMIT);
    ck_assert_int_eq(roost_store_find(a, "u", &q, item_nop, NULL),
                     -ROOST_EINVAL);
    q.limit = 0;
    q.start = -1;
    ck_assert_int_eq(roost_store_find(a, "u", &q, item_nop, NULL),
                     -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_find(a, "u", NULL, NULL, NULL), -ROOST_EINVAL);
    ck_assert_int_eq(roost_store_count(a, NULL), -ROOST_EINVAL);
    ck_assert_int_eq(roost_storage_users("h", "bad-name", collect_user, NULL),
                     -ROOST_EINVAL);
    ck_assert_int_eq(roost_storage_purge_user("h", ""), -ROOST_EINVAL);
    roost_store_close(m);
    roost_store_close(a);
    roost_storage_shutdown();
}
END_TEST

/* ---- archive ---- */

static int64_t
now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

typedef struct {
    char id[ROOST_STORE_ID_LEN];
    int64_t when;
    char with[64], val[64];
} item_t;

static int
item_get(void *arg, const char *id, int64_t when, const char *with,
         const char *val, size_t len)
{
    item_t *it = arg;

    snprintf(it->id, sizeof(it->id), "%s", id);
    it->when = when;
    snprintf(it->with, sizeof(it->with), "%s", with);
    snprintf(it->val, sizeof(it->val), "%s", val);
    ck_assert_uint_eq(strlen(val), len);
    return 1;
}

START_TEST(test_append_ids)
{
    roost_store_t *a, *b;
    char id[ROOST_STORE_ID_LEN], prev[ROOST_STORE_ID_LEN] = "0";
    item_t it;
    int64_t t0, t1;

    backend_open(_i);
    a = store("h", "mam", ROOST_STORE_ARCHIVE);
    b = store("h", "offline", ROOST_STORE_ARCHIVE);
    /* ids are unique and increasing, across users and stores */
    for (int k = 0; k < 20; k++) {
        roost_store_t *s = k % 3 ? a : b;

        ck_assert_int_eq(
            roost_store_append(s, k % 2 ? "u" : "v", "w", k + 1, "x", 1, id),
            0);
        ck_assert_int_gt(strlen(id), 0);
        ck_assert_uint_eq(strspn(id, "0123456789"), strlen(id));
        ck_assert_msg(strtoll(id, NULL, 10) > strtoll(prev, NULL, 10),
                      "%s after %s", id, prev);
        strcpy(prev, id);
    }
    ck_assert_int_eq(roost_store_append(a, "u", "w", 1, "x", 1, NULL), 0);
    /* when 0 is now; with NULL is "" */
    t0 = now_us();
    ck_assert_int_eq(roost_store_append(a, "t", NULL, 0, "now", 3, id), 0);
    t1 = now_us();
    ck_assert_int_eq(roost_store_find(a, "t", NULL, item_get, &it), 1);
    ck_assert_str_eq(it.id, id);
    ck_assert_int_ge(it.when, t0);
    ck_assert_int_le(it.when, t1);
    ck_assert_str_eq(it.with, "");
    ck_assert_str_eq(it.val, "now");
    /* count per user and store */
    ck_assert_int_eq(roost_store_count(a, "t"), 1);
    ck_assert_int_eq(roost_store_count(b, "t"), 0);
    ck_assert_int_eq(roost_store_count(a, "nobody"), 0);
    roost_store_close(a);
    roost_store_close(b);
    roost_storage_shutdown();
}
END_TEST

/* The query table: six items of alice (index: when, with) with items of
 * other users, stores and hosts appended in between. */
static const struct {
    int64_t when;
    const char *with;
} q_items[] = {{1000, "a@x"}, {2000, "b@x"}, {3000, "a@x"},
               {4000, "b@x"}, {5000, "a@x"}, {6000, "c@x"}};
#define Q_N 6

static const struct {
    const char *with;
    int64_t start, end;
    int after, before; /* item index, or -1 */
    int limit, reverse;
    const char *expect; /* item indexes in visiting order */
} q_rows[] = {
    {NULL, 0, 0, -1, -1, 0, 0, "0 1 2 3 4 5"},
    {NULL, 0, 0, -1, -1, 0, 1, "5 4 3 2 1 0"},
    {"a@x", 0, 0, -1, -1, 0, 0, "0 2 4"},
    {"a@x", 0, 0, -1, -1, 2, 0, "0 2"},
    {"a@x", 0, 0, -1, -1, 2, 1, "4 2"},
    {NULL, 2000, 4000, -1, -1, 0, 0, "1 2 3"},
    {NULL, 1000, 1000, -1, -1, 0, 0, "0"},
    {NULL, 3000, 0, -1, -1, 0, 0, "2 3 4 5"},
    {NULL, 0, 3000, -1, -1, 0, 0, "0 1 2"},
    {NULL, 0, 0, 1, -1, 0, 0, "2 3 4 5"},
    {NULL, 0, 0, -1, 4, 0, 0, "0 1 2 3"},
    {NULL, 0, 0, 1, 4, 0, 0, "2 3"},
    {NULL, 0, 0, 1, 4, 0, 1, "3 2"},
    {NULL, 0, 0, -1, 4, 2, 1, "3 2"},
    {NULL, 0, 0, 3, -1, 1, 0, "4"},
    {NULL, 0, 0, -1, -1, 3, 0, "0 1 2"},
    {NULL, 0, 0, -1, -1, 3, 1, "5 4 3"},
    {"c@x", 0, 0, 0, -1, 0, 0, "5"},
    {"b@x", 2500, 6000, -1, -1, 0, 0, "3"},
    {"b@x", 2500, 6000, -1, -1, 0, 1, "3"},
    {"z@x", 0, 0, -1, -1, 0, 0, ""},
    {NULL, 0, 0, 5, -1, 0, 0, ""},
    {NULL, 0, 0, -1, 0, 0, 1, ""},
    {NULL, 0, 0, 4, 2, 0, 0, ""},
    {NULL, 6001, 0, -1, -1, 0, 0, ""},
    {NULL, 0, 999, -1, -1, 0, 0, ""},
    {"a@x", 2000, 5000, 0, 5, 1, 1, "4"},
};

typedef struct {
    char ids[Q_N][ROOST_STORE_ID_LEN];
    char got[64];
} q_ctx_t;

static int
q_collect(void *arg, const char *id, int64_t when, const char *with,
          const char *val, size_t len)
{
    q_ctx_t *c = arg;
    size_t n = strlen(c->got);
    int k;

    for (k = 0; k < Q_N && strcmp(c->ids[k], id) != 0; k++)
        ;
    ck_assert_msg(k < Q_N, "foreign id %s", id);
    ck_assert_int_eq(when, q_items[k].when);
    ck_assert_str_eq(with, q_items[k].with);
    ck_assert_int_eq(val[0] - '0', k);
    ck_assert_uint_eq(len, 1);
    snprintf(c->got + n, sizeof(c->got) - n, "%s%d", n ? " " : "", k);
    return 0;
}

static void
q_fill(q_ctx_t *c)
{
    roost_store_t *a = store("h", "mam", ROOST_STORE_ARCHIVE);
    roost_store_t *o = store("h", "other", ROOST_STORE_ARCHIVE);
    roost_store_t *h = store("h2", "mam", ROOST_STORE_ARCHIVE);

    for (int k = 0; k < Q_N; k++) {
        char v = (char)('0' + k);

        ck_assert_int_eq(roost_store_append(a, "alice", q_items[k].with,
                                            q_items[k].when, &v, 1, c->ids[k]),
                         0);
        /* noise with the same times and peers */
        ck_assert_int_eq(roost_store_append(a, "bob", q_items[k].with,
                                            q_items[k].when, "n", 1, NULL),
                         0);
        ck_assert_int_eq(roost_store_append(o, "alice", q_items[k].with,
                                            q_items[k].when, "n", 1, NULL),
                         0);
        ck_assert_int_eq(roost_store_append(h, "alice", q_items[k].with,
                                            q_items[k].when, "n", 1, NULL),
                         0);
    }
    roost_store_close(a);
    roost_store_close(o);
    roost_store_close(h);
}

START_TEST(test_find_table)
{
    roost_store_t *a;
    q_ctx_t c;

    backend_open(_i);
    q_fill(&c);
    a = store("h", "mam", ROOST_STORE_ARCHIVE);
    for (size_t k = 0; k < sizeof(q_rows) / sizeof(q_rows[0]); k++) {
        roost_store_query_t q = {
            .with = q_rows[k].with,
            .start = q_rows[k].start,
            .end = q_rows[k].end,
            .after_id = q_rows[k].after < 0 ? NULL : c.ids[q_rows[k].after],
            .before_id = q_rows[k].before < 0 ? NULL : c.ids[q_rows[k].before],
            .limit = q_rows[k].limit,
            .reverse = q_rows[k].reverse};
        int n;

        c.got[0] = '\0';
        n = roost_store_find(a, "alice", &q, q_collect, &c);
        ck_assert_msg(strcmp(c.got, q_rows[k].expect) == 0,
                      "%s row %zu: got '%s', want '%s'", drivers[_i], k, c.got,
                      q_rows[k].expect);
        /* the return value counts the visited items */
        ck_assert_int_eq(n, (int)(strlen(c.got) + 1) / 2);
    }
    roost_store_close(a);
    roost_storage_shutdown();
}
END_TEST

static int
stop_at_two(void *arg, const char *id, int64_t when, const char *with,
            const char *val, size_t len)
{
    return ++*(int *)arg == 2;
}

START_TEST(test_find_errors)
{
    static const char *const bad_ids[] = {
        "abc",
        "0",
        "-1",
        "01",
        "+1",
        "1 ",
        " 1",
        "999999",
        "",
        "123456789012345678901234567890123456789012345",
        "99999999999999999999999"};
    roost_store_t *a;
    q_ctx_t c;
    char foreign[ROOST_STORE_ID_LEN];
    int calls = 0;

    backend_open(_i);
    q_fill(&c);
    a = store("h", "mam", ROOST_STORE_ARCHIVE);
    for (size_t k = 0; k < sizeof(bad_ids) / sizeof(bad_ids[0]); k++) {
        roost_store_query_t qa = {.after_id = bad_ids[k]};
        roost_store_query_t qb = {.before_id = bad_ids[k]};

        ck_assert_msg(roost_store_find(a, "alice", &qa, q_collect, &c) ==
                          -ROOST_ENOTFOUND,
                      "after '%s'", bad_ids[k]);
        ck_assert_msg(roost_store_find(a, "alice", &qb, q_collect, &c) ==
                          -ROOST_ENOTFOUND,
                      "before '%s'", bad_ids[k]);
        ck_assert_int_eq(roost_store_remove(a, "alice", bad_ids[k]),
                         -ROOST_ENOTFOUND);
    }
    /* an id of another user is not found either */
    ck_assert_int_eq(roost_store_append(a, "bob", "x", 1, "b", 1, foreign), 0);
    {
        roost_store_query_t q = {.after_id = foreign};

        ck_assert_int_eq(roost_store_find(a, "alice", &q, q_collect, &c),
                         -ROOST_ENOTFOUND);
        ck_assert_int_eq(roost_store_find(a, "nobody", &q, q_collect, &c),
                         -ROOST_ENOTFOUND);
        ck_assert_int_eq(roost_store_remove(a, "alice", foreign),
                         -ROOST_ENOTFOUND);
    }
    /* fn stops early: the count includes the item that stopped it */
    ck_assert_int_eq(roost_store_find(a, "alice", NULL, stop_at_two, &calls),
                     2);
    ck_assert_int_eq(calls, 2);
    roost_store_close(a);
    roost_storage_shutdown();
}
END_TEST

START_TEST(test_remove)
{
    roost_store_t *a;
    q_ctx_t c;
    char id[ROOST_STORE_ID_LEN];
    roost_store_query_t q = {0};

    backend_open(_i);
    q_fill(&c);
    a = store("h", "mam", ROOST_STORE_ARCHIVE);
    ck_assert_int_eq(roost_store_remove(a, "alice", c.ids[2]), 0);
    ck_assert_int_eq(roost_store_remove(a, "alice", c.ids[2]),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_count(a, "alice"), 5);
    c.got[0] = '\0';
    ck_assert_int_eq(roost_store_find(a, "alice", NULL, q_collect, &c), 5);
    ck_assert_str_eq(c.got, "0 1 3 4 5");
    q.after_id = c.ids[2]; /* a removed id is unknown */
    ck_assert_int_eq(roost_store_find(a, "alice", &q, q_collect, &c),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_remove(a, "alice", NULL), 0);
    ck_assert_int_eq(roost_store_count(a, "alice"), 0);
    ck_assert_int_eq(roost_store_count(a, "bob"), Q_N);
    ck_assert_int_eq(roost_store_remove(a, "alice", NULL), 0);
    /* ids are never reused, even after everything was removed */
    ck_assert_int_eq(roost_store_append(a, "alice", "w", 1, "v", 1, id), 0);
    for (int k = 0; k < Q_N; k++)
        ck_assert_int_gt(strtoll(id, NULL, 10), strtoll(c.ids[k], NULL, 10));
    roost_store_close(a);
    roost_storage_shutdown();
}
END_TEST

/* ---- users, purge ---- */

START_TEST(test_users)
{
    roost_store_t *m, *a, *o;
    collect_t c = {.stop_after = -1};

    backend_open(_i);
    m = store("h", "both", ROOST_STORE_MAP);
    a = store("h", "both", ROOST_STORE_ARCHIVE);
    o = store("h", "else", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_set(m, "carol", "k1", "v", 1), 0);
    ck_assert_int_eq(roost_store_set(m, "carol", "k2", "v", 1), 0);
    ck_assert_int_eq(roost_store_set(m, "alice", "k", "v", 1), 0);
    ck_assert_int_eq(roost_store_set(m, "", "k", "v", 1), 0);
    ck_assert_int_eq(roost_store_append(a, "bob", "w", 1, "v", 1, NULL), 0);
    ck_assert_int_eq(roost_store_append(a, "carol", "w", 1, "v", 1, NULL), 0);
    ck_assert_int_eq(roost_store_append(a, "erin", "w", 1, "v", 1, NULL), 0);
    ck_assert_int_eq(roost_store_append(a, "", "w", 1, "v", 1, NULL), 0);
    ck_assert_int_eq(roost_store_set(o, "dave", "k", "v", 1), 0);
    ck_assert_int_eq(roost_storage_users("h", "both", collect_user, &c), 0);
    ck_assert_str_eq(c.buf, "alice bob carol erin");
    memset(&c, 0, sizeof(c));
    c.stop_after = 3;
    ck_assert_int_eq(roost_storage_users("h", "both", collect_user, &c), 0);
    ck_assert_str_eq(c.buf, "alice bob carol");
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(roost_storage_users("h2", "both", collect_user, &c), 0);
    ck_assert_str_eq(c.buf, "");
    /* a user whose items are all removed is gone */
    ck_assert_int_eq(roost_store_remove(a, "erin", NULL), 0);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(roost_storage_users("h", "both", collect_user, &c), 0);
    ck_assert_str_eq(c.buf, "alice bob carol");
    roost_store_close(m);
    roost_store_close(a);
    roost_store_close(o);
    roost_storage_shutdown();
}
END_TEST

START_TEST(test_purge_user)
{
    roost_store_t *m, *k, *a, *m2;
    char *v = NULL;
    size_t len;

    backend_open(_i);
    m = store("h", "roster", ROOST_STORE_MAP);
    k = store("h", "vcard", ROOST_STORE_KEYVAL);
    a = store("h", "mam", ROOST_STORE_ARCHIVE);
    m2 = store("h2", "roster", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_set(m, "alice", "bob", "v", 1), 0);
    ck_assert_int_eq(roost_store_set(m, "bob", "alice", "v", 1), 0);
    ck_assert_int_eq(roost_store_set(m, "", "alice", "v", 1), 0);
    ck_assert_int_eq(roost_store_set(k, "alice", NULL, "v", 1), 0);
    ck_assert_int_eq(roost_store_append(a, "alice", "w", 1, "v", 1, NULL), 0);
    ck_assert_int_eq(roost_store_append(a, "bob", "w", 1, "v", 1, NULL), 0);
    ck_assert_int_eq(roost_store_set(m2, "alice", "bob", "v", 1), 0);
    ck_assert_int_eq(roost_storage_purge_user("h", "alice"), 0);
    ck_assert_int_eq(roost_store_get(m, "alice", "bob", &v, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_get(k, "alice", NULL, &v, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_store_count(a, "alice"), 0);
    /* other users, host-wide data and other hosts stay */
    ck_assert_int_eq(roost_store_get(m, "bob", "alice", &v, &len), 0);
    roost_free(v);
    ck_assert_int_eq(roost_store_get(m, "", "alice", &v, &len), 0);
    roost_free(v);
    ck_assert_int_eq(roost_store_count(a, "bob"), 1);
    ck_assert_int_eq(roost_store_get(m2, "alice", "bob", &v, &len), 0);
    roost_free(v);
    ck_assert_int_eq(roost_storage_purge_user("h", "nobody"), 0);
    roost_store_close(m);
    roost_store_close(k);
    roost_store_close(a);
    roost_store_close(m2);
    roost_storage_shutdown();
}
END_TEST

/* ---- threads ---- */

static int
reenter_key(void *arg, const char *key, const char *val, size_t len)
{
    roost_store_t *s = roost_storage_store("h", "m", ROOST_STORE_MAP);
    char *v = NULL;
    size_t n;

    *(int *)arg = roost_store_get(s, "u", "k", &v, &n);
    roost_free(v);
    roost_store_close(s);
    return 1;
}

/* A callback calling back into storage fails instead of deadlocking. */
START_TEST(test_reentry)
{
    roost_store_t *m;
    int r = 0;

    backend_open(_i);
    m = store("h", "m", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_set(m, "u", "k", "v", 1), 0);
    ck_assert_int_eq(roost_store_keys(m, "u", reenter_key, &r), 0);
    ck_assert_int_eq(r, -ROOST_EINVAL);
    roost_store_close(m);
    roost_storage_shutdown();
}
END_TEST

#define T_THREADS 4
#define T_OPS     25

static void *
thread_ops(void *arg)
{
    char user[16], key[16], *v;
    size_t len;
    roost_store_t *s = roost_storage_store("h", "m", ROOST_STORE_MAP);
    roost_store_t *a = roost_storage_store("h", "a", ROOST_STORE_ARCHIVE);
    long fails = 0;

    snprintf(user, sizeof(user), "u%d", (int)(intptr_t)arg);
    for (int k = 0; k < T_OPS; k++) {
        snprintf(key, sizeof(key), "k%02d", k);
        fails += roost_store_set(s, user, key, key, strlen(key)) != 0;
        fails += roost_store_append(a, user, "w", k + 1, "v", 1, NULL) != 0;
        v = NULL;
        fails +=
            roost_store_get(s, user, key, &v, &len) != 0 || strcmp(v, key) != 0;
        roost_free(v);
    }
    roost_store_close(s);
    roost_store_close(a);
    return (void *)fails;
}

START_TEST(test_threads)
{
    pthread_t t[T_THREADS];
    roost_store_t *a;
    void *fails;
    collect_t c = {.stop_after = -1};

    backend_open(_i);
    for (int k = 0; k < T_THREADS; k++)
        ck_assert_int_eq(
            pthread_create(&t[k], NULL, thread_ops, (void *)(intptr_t)k), 0);
    for (int k = 0; k < T_THREADS; k++) {
        pthread_join(t[k], &fails);
        ck_assert_int_eq((long)fails, 0);
    }
    a = store("h", "a", ROOST_STORE_ARCHIVE);
    for (int k = 0; k < T_THREADS; k++) {
        char user[16];

        snprintf(user, sizeof(user), "u%d", k);
        ck_assert_int_eq(roost_store_count(a, user), T_OPS);
    }
    ck_assert_int_eq(roost_storage_users("h", "m", collect_user, &c), 0);
    ck_assert_str_eq(c.buf, "u0 u1 u2 u3");
    roost_store_close(a);
    roost_storage_shutdown();
}
END_TEST

/* ---- SQLite only ---- */

static int64_t
sqlite_version_of(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;

    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL),
        SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

START_TEST(test_sqlite_migrations)
{
    int64_t nmig;
    roost_store_t *s;
    char *v = NULL;
    size_t len;
    struct stat sb;

    backend_open(0);
    s = store("h", "m", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_set(s, "u", "k", "kept", 4), 0);
    roost_store_close(s);
    roost_storage_shutdown();
    nmig = sqlite_version_of(dbpath); /* one per storage/schema/sqlite file */
    ck_assert_int_ge(nmig, 1);
    /* the file holds secrets: private to the server's user */
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    /* re-open: nothing re-applied (CREATE TABLE would fail), data kept */
    backend_reopen(0);
    s = store("h", "m", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_get(s, "u", "k", &v, &len), 0);
    ck_assert_str_eq(v, "kept");
    roost_free(v);
    roost_store_close(s);
    roost_storage_shutdown();
    ck_assert_int_eq(sqlite_version_of(dbpath), nmig);
}
END_TEST

START_TEST(test_sqlite_newer_schema)
{
    sqlite3 *db;
    char *err = NULL;

    backend_open(0);
    roost_storage_shutdown();
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(roost_storage_init("sqlite", dbpath, &err),
                     -ROOST_ESTORAGE);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "newer"));
    roost_free(err);
    ck_assert_ptr_null(roost_storage_store("h", "m", ROOST_STORE_MAP));
    ck_assert_int_eq(sqlite_version_of(dbpath), 999); /* left alone */
}
END_TEST

/* A migration that fails is rolled back whole and the open fails. */
START_TEST(test_sqlite_failed_migration)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char *err = NULL;

    roost_storage_shutdown();
    snprintf(dbpath, sizeof(dbpath), "%s/conflict-%d.db", tmpdir,
             (int)getpid());
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    /* takes the name of an index that 001 creates after its tables */
    ck_assert_int_eq(
        sqlite3_exec(db, "CREATE TABLE archive_when (x)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(roost_storage_init("sqlite", dbpath, &err),
                     -ROOST_ESTORAGE);
    ck_assert_ptr_nonnull(strstr(err, "migration"));
    roost_free(err);
    ck_assert_int_eq(sqlite_version_of(dbpath), 0);
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM sqlite_master"
                                        " WHERE name IN ('keyval', 'archive')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 0); /* rolled back */
    sqlite3_finalize(st);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_sqlite_not_a_database)
{
    FILE *fp;
    char *err = NULL;

    roost_storage_shutdown();
    snprintf(dbpath, sizeof(dbpath), "%s/garbage-%d.db", tmpdir, (int)getpid());
    fp = fopen(dbpath, "w");
    ck_assert_ptr_nonnull(fp);
    for (int k = 0; k < 512; k++)
        fputs("this is not sqlite ", fp);
    fclose(fp);
    ck_assert_int_eq(roost_storage_init("sqlite", dbpath, &err),
                     -ROOST_ESTORAGE);
    ck_assert_ptr_nonnull(err);
    roost_free(err);
}
END_TEST

/* ---- SQLite group commit (storage worker batches) ---- */

/* Rows of table in the database at path as a separate connection sees
 * them: only what was committed. */
static int
peer_count(const char *path, const char *sql_where)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char sql[256];
    int n = -1;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", sql_where);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A driver handle on a new database file (dbpath). */
static void *
sq_open_fresh(const char *tag)
{
    char *err = NULL;
    void *db;

    roost_storage_shutdown();
    snprintf(dbpath, sizeof(dbpath), "%s/%s-%d.db", tmpdir, tag, (int)getpid());
    db = roost_st_sqlite.open(dbpath, &err);
    ck_assert_msg(db != NULL, "open: %s", err ? err : "?");
    return db;
}

typedef struct {
    void *db;
    int r;
    char *v;
} sq_reader_t;

static void *
sq_reader(void *arg)
{
    sq_reader_t *rd = arg;
    size_t len;

    rd->r = roost_st_sqlite.get(rd->db, "h", "m", "u", "k0", &rd->v, &len);
    return NULL;
}

/* begin/commit/rollback at the driver: a batch is invisible to other
 * connections until commit, readable meanwhile from other threads on the
 * same handle, and gone after rollback. */
START_TEST(test_sqlite_batch_driver)
{
    void *db = sq_open_fresh("batch");
    sq_reader_t rd = {.db = db};
    pthread_t t;
    char key[16];
    char *v;
    size_t len;

    ck_assert_int_eq(roost_st_sqlite.commit(db), -ROOST_EINVAL);
    ck_assert_int_eq(roost_st_sqlite.rollback(db), -ROOST_EINVAL);
    ck_assert_int_eq(roost_st_sqlite.begin(db), 0);
    ck_assert_int_eq(roost_st_sqlite.begin(db), -ROOST_EINVAL); /* nested */
    for (int k = 0; k < 10; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        ck_assert_int_eq(roost_st_sqlite.set(db, "h", "m", "u", key, "v", 1),
                         0);
    }
    ck_assert_int_eq(peer_count(dbpath, "keyval"), 0);
    /* another thread (a CPU worker's SASL lookup) is not blocked */
    ck_assert_int_eq(pthread_create(&t, NULL, sq_reader, &rd), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(rd.r, 0);
    ck_assert_str_eq(rd.v, "v");
    roost_free(rd.v);
    ck_assert_int_eq(roost_st_sqlite.commit(db), 0);
    ck_assert_int_eq(roost_st_sqlite.commit(db), -ROOST_EINVAL);
    ck_assert_int_eq(peer_count(dbpath, "keyval"), 10);

    ck_assert_int_eq(roost_st_sqlite.begin(db), 0);
    ck_assert_int_eq(roost_st_sqlite.set(db, "h", "m", "u", "gone", "v", 1), 0);
    ck_assert_int_eq(roost_st_sqlite.del(db, "h", "m", "u", "k0"), 0);
    ck_assert_int_eq(roost_st_sqlite.rollback(db), 0);
    ck_assert_int_eq(roost_st_sqlite.get(db, "h", "m", "u", "gone", &v, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_st_sqlite.get(db, "h", "m", "u", "k0", &v, &len), 0);
    roost_free(v);
    ck_assert_int_eq(peer_count(dbpath, "keyval"), 10);
    roost_st_sqlite.close(db);
}
END_TEST

#define BIG_VALUE 3000 /* a row per page: 100 rows stay in the page cache */

/* Caps the size of every file this process writes so that the next WAL
 * append fails (a real I/O error, as a full disk would give).  Returns the
 * old limit for fsize_restore.  No ck_assert between the two: Check's own
 * message file would hit the cap. */
static struct rlimit
fsize_cap(const char *path)
{
    struct rlimit old, cap;
    struct stat sb;
    char wal[600];
    off_t max = 0;

    snprintf(wal, sizeof(wal), "%s-wal", path);
    if (stat(path, &sb) == 0 && sb.st_size > max)
        max = sb.st_size;
    if (stat(wal, &sb) == 0 && sb.st_size > max)
        max = sb.st_size;
    ck_assert_int_lt(max, 128 * 1024); /* well below a batch's writes */
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);
    cap = old;
    cap.rlim_cur = (rlim_t)max + 8192;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &cap), 0);
    return old;
}

static void
fsize_restore(struct rlimit old)
{
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
}

/* A commit that fails for real leaves none of the batch, no transaction
 * open, and a handle that works afterwards. */
START_TEST(test_sqlite_batch_commit_fails)
{
    void *db = sq_open_fresh("batchfail");
    static char big[BIG_VALUE];
    struct rlimit old;
    char key[16];
    int r;

    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(roost_st_sqlite.begin(db), 0);
    for (int k = 0; k < 100; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        ck_assert_int_eq(
            roost_st_sqlite.set(db, "h", "m", "u", key, big, sizeof(big)), 0);
    }
    old = fsize_cap(dbpath);
    r = roost_st_sqlite.commit(db);
    fsize_restore(old);
    ck_assert_int_eq(r, -ROOST_ESTORAGE);
    ck_assert_int_eq(peer_count(dbpath, "keyval"), 0);
    /* no transaction left open: a write outside a batch autocommits */
    ck_assert_int_eq(roost_st_sqlite.set(db, "h", "m", "u", "a", "1", 1), 0);
    ck_assert_int_eq(peer_count(dbpath, "keyval"), 1);
    ck_assert_int_eq(roost_st_sqlite.begin(db), 0);
    ck_assert_int_eq(roost_st_sqlite.set(db, "h", "m", "u", "b", "2", 1), 0);
    ck_assert_int_eq(roost_st_sqlite.commit(db), 0);
    ck_assert_int_eq(peer_count(dbpath, "keyval"), 2);
    roost_st_sqlite.close(db);
}
END_TEST

/* Storage jobs on the worker (the path roostd takes). */
#define W_JOBS 100

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int written, open;
} wgate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

typedef struct {
    roost_store_t *s;
    int idx, result, seen; /* seen: committed when done ran */
    char id[ROOST_STORE_ID_LEN];
} wjob_t;

static wjob_t wjobs[W_JOBS + 1];
static struct event_base *wbase;

static int
wjob_append(void *arg)
{
    wjob_t *j = arg;

    return roost_store_append(j->s, "u", "w@h", 0, "m", 1, j->id);
}

static int
wjob_set_big(void *arg)
{
    static char big[BIG_VALUE];
    wjob_t *j = arg;
    char key[16];

    memset(big, 'y', sizeof(big));
    snprintf(key, sizeof(key), "k%d", j->idx);
    return roost_store_set(j->s, "u", key, big, sizeof(big));
}

/* Job 0: writes, then holds its batch open until the test opens wgate. */
static int
wjob_gate(void *arg)
{
    int r = arg != NULL ? wjob_append(arg) : 0;

    pthread_mutex_lock(&wgate.lock);
    wgate.written = 1;
    pthread_cond_broadcast(&wgate.cond);
    while (!wgate.open)
        pthread_cond_wait(&wgate.cond, &wgate.lock);
    pthread_mutex_unlock(&wgate.lock);
    return r;
}

static void
wjob_done_append(void *arg, int result)
{
    wjob_t *j = arg;
    char where[128];

    j->result = result;
    snprintf(where, sizeof(where), "archive WHERE id=%s",
             result == 0 ? j->id : "0");
    j->seen = peer_count(dbpath, where);
}

static void
wjob_done(void *arg, int result)
{
    ((wjob_t *)arg)->result = result;
}

static void
wgate_open(void)
{
    pthread_mutex_lock(&wgate.lock);
    wgate.open = 1;
    pthread_cond_broadcast(&wgate.cond);
    pthread_mutex_unlock(&wgate.lock);
}

static void
worker_start(void)
{
    pthread_mutex_lock(&wgate.lock);
    wgate.written = wgate.open = 0;
    pthread_mutex_unlock(&wgate.lock);
    wbase = event_base_new();
    ck_assert_ptr_nonnull(wbase);
    ck_assert_int_eq(roost_worker_init(wbase, 2), 0);
}

static void
worker_stop(void)
{
    roost_worker_shutdown();
    event_base_free(wbase);
}

/* Writes queued behind a job that holds the batch open: nothing is
 * visible to another connection until the commit, reads from another
 * thread still work meanwhile, and every done callback runs after its
 * row is committed (so an ack sent from it is safe). */
START_TEST(test_sqlite_batch_worker)
{
    roost_store_t *s;

    backend_open(0); /* storage before the worker, as roostd does */
    worker_start();
    s = store("h", "a", ROOST_STORE_ARCHIVE);
    for (int k = 0; k <= W_JOBS; k++) {
        wjobs[k] = (wjob_t){.s = s, .idx = k, .result = 1};
        roost_worker_submit(ROOST_WQ_STORAGE, k ? wjob_append : wjob_gate,
                            wjob_done_append, &wjobs[k]);
    }
    pthread_mutex_lock(&wgate.lock);
    while (!wgate.written)
        pthread_cond_wait(&wgate.cond, &wgate.lock);
    pthread_mutex_unlock(&wgate.lock);
    ck_assert_int_eq(peer_count(dbpath, "archive"), 0); /* not committed */
    ck_assert_int_eq(roost_store_count(s, "u"), 1); /* same handle sees it */
    wgate_open();
    while (roost_worker_pending() > 0)
        ck_assert_int_ge(event_base_loop(wbase, EVLOOP_ONCE), 0);
    for (int k = 0; k <= W_JOBS; k++) {
        ck_assert_int_eq(wjobs[k].result, 0);
        ck_assert_msg(wjobs[k].seen == 1, "job %d acked before commit", k);
    }
    ck_assert_int_eq(peer_count(dbpath, "archive"), W_JOBS + 1);
    roost_store_close(s);
    worker_stop();
    roost_storage_shutdown();
}
END_TEST

/* A batch whose commit fails on the worker: a job reports success exactly
 * when its row is there, and the failure reached whole batches. */
START_TEST(test_sqlite_batch_worker_fails)
{
    struct rlimit old;
    roost_store_t *s;
    int failed = 0;

    backend_open(0);
    worker_start();
    s = store("h", "m", ROOST_STORE_MAP);
    roost_worker_submit(ROOST_WQ_STORAGE, wjob_gate, NULL, NULL);
    for (int k = 0; k < W_JOBS; k++) {
        wjobs[k] = (wjob_t){.s = s, .idx = k, .result = 1};
        roost_worker_submit(ROOST_WQ_STORAGE, wjob_set_big, wjob_done,
                            &wjobs[k]);
    }
    pthread_mutex_lock(&wgate.lock);
    while (!wgate.written)
        pthread_cond_wait(&wgate.cond, &wgate.lock);
    pthread_mutex_unlock(&wgate.lock);
    old = fsize_cap(dbpath);
    wgate_open();
    while (roost_worker_pending() > 0)
        if (event_base_loop(wbase, EVLOOP_ONCE) < 0)
            break;
    fsize_restore(old);
    ck_assert_int_eq(roost_worker_pending(), 0);
    for (int k = 0; k < W_JOBS; k++) {
        char where[128];

        snprintf(where, sizeof(where), "keyval WHERE key='k%d'", k);
        ck_assert_int_eq(peer_count(dbpath, where),
                         wjobs[k].result == 0 ? 1 : 0);
        if (wjobs[k].result != 0) {
            ck_assert_int_eq(wjobs[k].result, -ROOST_ESTORAGE);
            failed++;
        }
    }
    ck_assert_int_gt(failed, 1);
    /* storage works again once the disk has room */
    wjobs[0].result = 1;
    roost_worker_submit(ROOST_WQ_STORAGE, wjob_set_big, wjob_done, &wjobs[0]);
    roost_worker_drain();
    ck_assert_int_eq(wjobs[0].result, 0);
    ck_assert_int_eq(peer_count(dbpath, "keyval WHERE key='k0'"), 1);
    roost_store_close(s);
    worker_stop();
    roost_storage_shutdown();
}
END_TEST

/* The memory backend has no transactions: jobs run unbatched, and storage
 * shutdown leaves no hooks behind for the next backend. */
START_TEST(test_memory_worker)
{
    roost_store_t *s;

    backend_open(0);          /* installs the sqlite hooks ... */
    roost_storage_shutdown(); /* ... and removes them */
    backend_open(1);
    worker_start();
    s = store("h", "a", ROOST_STORE_ARCHIVE);
    for (int k = 0; k < 10; k++) {
        wjobs[k] = (wjob_t){.s = s, .idx = k, .result = 1};
        roost_worker_submit(ROOST_WQ_STORAGE, wjob_append, wjob_done,
                            &wjobs[k]);
    }
    roost_worker_drain();
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(wjobs[k].result, 0);
    ck_assert_int_eq(roost_store_count(s, "u"), 10);
    roost_store_close(s);
    worker_stop();
    roost_storage_shutdown();
}
END_TEST

static Suite *
storage_suite(void)
{
    const struct {
        const char *name;
        const TTest *fn;
    } loops[] = {
        {"init", test_init_errors},
        {"store_names", test_store_names},
        {"keyval", test_keyval},
        {"map", test_map},
        {"shapes", test_shapes},
        {"arg_limits", test_arg_limits},
        {"append_ids", test_append_ids},
        {"find_table", test_find_table},
        {"find_errors", test_find_errors},
        {"remove", test_remove},
        {"users", test_users},
        {"purge_user", test_purge_user},
        {"reentry", test_reentry},
        {"threads", test_threads},
    };
    Suite *s = suite_create("storage");
    TCase *tc;

    for (size_t k = 0; k < sizeof(loops) / sizeof(loops[0]); k++) {
        tc = tcase_create(loops[k].name);
        tcase_set_timeout(tc, 60);
        tcase_add_loop_test(tc, loops[k].fn, 0, NDRIVERS);
        suite_add_tcase(s, tc);
    }
    tc = tcase_create("sqlite_schema");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sqlite_migrations);
    tcase_add_test(tc, test_sqlite_newer_schema);
    tcase_add_test(tc, test_sqlite_failed_migration);
    tcase_add_test(tc, test_sqlite_not_a_database);
    suite_add_tcase(s, tc);
    tc = tcase_create("batch");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sqlite_batch_driver);
    tcase_add_test(tc, test_sqlite_batch_commit_fails);
    tcase_add_test(tc, test_sqlite_batch_worker);
    tcase_add_test(tc, test_sqlite_batch_worker_fails);
    tcase_add_test(tc, test_memory_worker);
    suite_add_tcase(s, tc);
    return s;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int
main(void)
{
    SRunner *sr;
    int failed;

    roost_log_level = ROOST_LOG_WARN;
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    sr = srunner_create(storage_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
