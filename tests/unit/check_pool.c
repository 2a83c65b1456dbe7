/* tests/unit/check_pool.c: unit tests for core/pool.c.
 *
 * Alignment of every allocation size, big allocations on blocks of their
 * own, cleanup order, strdup/strndup, the accounting of held bytes and the
 * free list under concurrent threads.  Not a benchmark. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <roost/common.h>
#include "pool.h"

START_TEST(test_alignment)
{
    roost_pool_t *p = roost_pool_new(0);

    for (size_t n = 0; n < 300; n++) {
        char *a = roost_pool_alloc(p, n);

        ck_assert_uint_eq((uintptr_t)a % 16, 0);
        memset(a, 0xa5, n); /* ASan checks the whole range is ours */
    }
    roost_pool_free(p);
}
END_TEST

START_TEST(test_distinct)
{
    roost_pool_t *p = roost_pool_new(0);
    unsigned char *v[500];

    /* Allocations never overlap: fill each with its index, then check. */
    for (int i = 0; i < 500; i++) {
        v[i] = roost_pool_alloc(p, (size_t)(i % 37) + 1);
        memset(v[i], i & 0xff, (size_t)(i % 37) + 1);
    }
    for (int i = 0; i < 500; i++)
        for (int j = 0; j < i % 37 + 1; j++)
            ck_assert_uint_eq(v[i][j], (unsigned)(i & 0xff));
    roost_pool_free(p);
}
END_TEST

START_TEST(test_large)
{
    roost_pool_t *p = roost_pool_new(0);
    size_t before = roost_pool_size(p), mid;
    char *small1, *big, *small2;

    /* A default pool starts small (idle sessions keep stanzas). */
    ck_assert_uint_eq(before, 1024);
    small1 = roost_pool_alloc(p, 16);
    big = roost_pool_alloc(p, 100000);
    ck_assert_uint_eq((uintptr_t)big % 16, 0);
    memset(big, 1, 100000);
    mid = roost_pool_size(p);
    ck_assert_uint_ge(mid, before + 100000);
    /* The big block did not replace the current one: a small allocation
     * still lands right after the first. */
    small2 = roost_pool_alloc(p, 16);
    ck_assert_ptr_eq(small2, small1 + 16);
    ck_assert_uint_eq(roost_pool_size(p), mid);
    /* Exhausting a block chains a new default block. */
    for (int i = 0; i < 100; i++)
        memset(roost_pool_alloc(p, 512), 2, 512);
    ck_assert_uint_ge(roost_pool_size(p), mid + 100 * 512);
    roost_pool_free(p);
}
END_TEST

START_TEST(test_block_size)
{
    roost_pool_t *p = roost_pool_new(65536), *q = roost_pool_new(1);

    ck_assert_uint_eq(roost_pool_size(p), 65536);
    memset(roost_pool_alloc(p, 60000), 3, 60000);
    ck_assert_uint_eq(roost_pool_size(p), 65536);
    /* Tiny requests are raised to a usable minimum. */
    ck_assert_uint_ge(roost_pool_size(q), 256);
    memset(roost_pool_alloc(q, 100), 4, 100);
    roost_pool_free(p);
    roost_pool_free(q);
}
END_TEST

START_TEST(test_calloc)
{
    roost_pool_t *p = roost_pool_new(0);

    for (int round = 0; round < 3; round++) {
        /* Recycled blocks carry old bytes: calloc must still zero. */
        unsigned char *a;

        memset(roost_pool_alloc(p, 1000), 0xff, 1000);
        a = roost_pool_calloc(p, 1000);
        for (int i = 0; i < 1000; i++)
            ck_assert_uint_eq(a[i], 0);
        roost_pool_free(p);
        p = roost_pool_new(0);
    }
    roost_pool_free(p);
}
END_TEST

static int order[8];
static int norder;

static void
record(void *arg)
{
    order[norder++] = (int)(intptr_t)arg;
}

START_TEST(test_cleanup_order)
{
    roost_pool_t *p = roost_pool_new(0);

    norder = 0;
    for (int i = 1; i <= 5; i++) {
        roost_pool_cleanup_add(p, record, (void *)(intptr_t)i);
        roost_pool_alloc(p, 2000); /* spread over several blocks */
    }
    ck_assert_int_eq(norder, 0);
    roost_pool_free(p);
    ck_assert_int_eq(norder, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(order[i], 5 - i);
    roost_pool_free(NULL);
}
END_TEST

static void
cleanup_reads(void *arg)
{
    /* Pool memory is still valid while cleanups run. */
    ck_assert_str_eq((const char *)arg, "still here");
    norder++;
}

START_TEST(test_cleanup_reads_pool)
{
    roost_pool_t *p = roost_pool_new(0);

    norder = 0;
    roost_pool_cleanup_add(p, cleanup_reads,
                           roost_pool_strdup(p, "still here"));
    roost_pool_free(p);
    ck_assert_int_eq(norder, 1);
}
END_TEST

START_TEST(test_strdup)
{
    roost_pool_t *p = roost_pool_new(0);
    char *a = roost_pool_strdup(p, "hello"), *b;

    ck_assert_str_eq(a, "hello");
    b = roost_pool_strndup(p, "hello world", 5);
    ck_assert_str_eq(b, "hello");
    ck_assert_str_eq(roost_pool_strndup(p, "ab\0cd", 5), "ab");
    ck_assert_str_eq(roost_pool_strdup(p, ""), "");
    ck_assert_str_eq(roost_pool_strndup(p, "xyz", 0), "");
    ck_assert_ptr_ne(a, b);
    /* Non-ASCII bytes are copied as they are. */
    ck_assert_str_eq(roost_pool_strdup(p, "\xc3\xa9t\xc3\xa9"),
                     "\xc3\xa9t\xc3\xa9");
    roost_pool_free(p);
}
END_TEST

static void *
churn(void *arg)
{
    for (int i = 0; i < 2000; i++) {
        roost_pool_t *p = roost_pool_new(0);
        char *s = roost_pool_alloc(p, 3000);

        memset(s, i & 0xff, 3000);
        roost_pool_alloc(p, 2000); /* a second default block */
        roost_pool_free(p);
    }
    return arg;
}

START_TEST(test_threads)
{
    pthread_t t[4];

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn, NULL), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}
END_TEST

static Suite *
pool_suite(void)
{
    Suite *s = suite_create("pool");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"alignment", test_alignment},
        {"distinct", test_distinct},
        {"large", test_large},
        {"block_size", test_block_size},
        {"calloc", test_calloc},
        {"cleanup_order", test_cleanup_order},
        {"cleanup_reads_pool", test_cleanup_reads_pool},
        {"strdup", test_strdup},
        {"threads", test_threads},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);

        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pool_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
