/* tests/unit/check_worker.c: core/worker.c on a real libevent base.
 *
 * Covers argument checks, FIFO order of the storage queue, parallelism of
 * the CPU pool, done callbacks running on the loop thread, drain from the
 * loop (outside and inside the loop, and from a done callback), drain from
 * another thread, synchronous fallback before init, and shutdown. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <roost/common.h>

#include "worker.h"

#define N_JOBS 100

static struct event_base *base;
static pthread_t main_thread;

typedef struct {
    pthread_mutex_t lock;
    int work_order[N_JOBS], nwork;
    int done_order[N_JOBS], ndone;
    int done_off_loop; /* done callbacks that ran off the main thread */
    int work_on_loop;  /* work functions that ran on the main thread */
} order_t;

static order_t ord = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct {
    int idx;
} job_t;

static job_t jobs[N_JOBS];

static void
setup(void)
{
    main_thread = pthread_self();
    memset(&ord.work_order, 0, sizeof(ord.work_order));
    ord.nwork = ord.ndone = ord.done_off_loop = ord.work_on_loop = 0;
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    ck_assert_int_eq(roost_worker_init(base, 3), 0);
}

static void
teardown(void)
{
    roost_worker_shutdown();
    event_base_free(base);
    base = NULL;
}

static int
order_work(void *arg)
{
    job_t *j = arg;
    struct timespec ts = {0, (rand() % 200) * 1000L};

    nanosleep(&ts, NULL); /* jitter: a racy queue would reorder */
    pthread_mutex_lock(&ord.lock);
    ord.work_order[ord.nwork++] = j->idx;
    if (pthread_equal(pthread_self(), main_thread))
        ord.work_on_loop++;
    pthread_mutex_unlock(&ord.lock);
    return j->idx * 2;
}

static void
order_done(void *arg, int result)
{
    job_t *j = arg;

    ck_assert_int_eq(result, j->idx * 2);
    if (!pthread_equal(pthread_self(), main_thread))
        ord.done_off_loop++;
    ord.done_order[ord.ndone++] = j->idx;
}

/* Runs the loop until no job is pending. */
static void
loop_until_idle(void)
{
    while (roost_worker_pending() > 0)
        ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
}

static void
submit_ordered(roost_wq_t q, int n)
{
    for (int k = 0; k < n; k++) {
        jobs[k].idx = k;
        roost_worker_submit(q, order_work, order_done, &jobs[k]);
    }
}

START_TEST(test_init_args)
{
    struct event_base *b2 = event_base_new();

    /* setup() already initialised the workers */
    ck_assert_int_eq(roost_worker_init(b2, 2), -ROOST_EINVAL);
    roost_worker_shutdown();
    ck_assert_int_eq(roost_worker_init(NULL, 2), -ROOST_EINVAL);
    ck_assert_int_eq(roost_worker_init(b2, 0), -ROOST_EINVAL);
    ck_assert_int_eq(roost_worker_init(b2, -1), -ROOST_EINVAL);
    ck_assert_int_eq(roost_worker_init(b2, 65), -ROOST_EINVAL);
    ck_assert_int_eq(roost_worker_init(b2, 1), 0); /* again after shutdown */
    roost_worker_shutdown();
    roost_worker_shutdown(); /* twice is harmless */
    event_base_free(b2);
    ck_assert_int_eq(roost_worker_init(base, 3), 0); /* for teardown */
}
END_TEST

START_TEST(test_storage_fifo)
{
    submit_ordered(ROOST_WQ_STORAGE, N_JOBS);
    loop_until_idle();
    ck_assert_int_eq(ord.nwork, N_JOBS);
    ck_assert_int_eq(ord.ndone, N_JOBS);
    for (int k = 0; k < N_JOBS; k++) {
        ck_assert_int_eq(ord.work_order[k], k);
        ck_assert_int_eq(ord.done_order[k], k);
    }
    ck_assert_int_eq(ord.done_off_loop, 0);
    ck_assert_int_eq(ord.work_on_loop, 0);
}
END_TEST

/* The CPU pool: three jobs that each wait for all three to have started
 * can only finish if they run at the same time. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int arrived;
    pthread_t who[3];
} par = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};

static int
par_work(void *arg)
{
    struct timespec dl;
    int ok = 1;

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&par.lock);
    par.who[par.arrived++] = pthread_self();
    pthread_cond_broadcast(&par.cond);
    while (par.arrived < 3 && ok)
        ok = pthread_cond_timedwait(&par.cond, &par.lock, &dl) == 0;
    pthread_mutex_unlock(&par.lock);
    return par.arrived >= 3;
}

static void
count_done(void *arg, int result)
{
    int *n = arg;

    ck_assert_int_eq(result, 1);
    if (!pthread_equal(pthread_self(), main_thread))
        ord.done_off_loop++;
    (*n)++;
}

START_TEST(test_cpu_parallel)
{
    int n = 0;

    for (int k = 0; k < 3; k++)
        roost_worker_submit(ROOST_WQ_CPU, par_work, count_done, &n);
    loop_until_idle();
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ord.done_off_loop, 0);
    ck_assert(!pthread_equal(par.who[0], par.who[1]));
    ck_assert(!pthread_equal(par.who[1], par.who[2]));
    ck_assert(!pthread_equal(par.who[0], par.who[2]));
}
END_TEST

/* Work that waits on a gate the test opens, to observe pending counts. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static int
gate_work(void *arg)
{
    pthread_mutex_lock(&gate.lock);
    while (!gate.open)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
    return 1;
}

static void
gate_open(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

START_TEST(test_pending_and_drain)
{
    int n = 0;

    for (int k = 0; k < 4; k++)
        roost_worker_submit(k % 2 ? ROOST_WQ_CPU : ROOST_WQ_STORAGE, gate_work,
                            count_done, &n);
    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    ck_assert_int_eq(roost_worker_pending(), 5);
    gate_open();
    /* drain on the loop thread without running the loop */
    roost_worker_drain();
    ck_assert_int_eq(roost_worker_pending(), 0);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(ord.done_off_loop, 0);
    roost_worker_drain(); /* nothing pending: returns at once */
}
END_TEST

/* Shutdown from inside the running loop (a timer callback) drains. */
static void
shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_worker_shutdown();
    event_base_loopbreak(base);
}

START_TEST(test_shutdown_in_loop)
{
    struct event *t = evtimer_new(base, shutdown_cb, NULL);
    struct timeval now = {0, 0};

    submit_ordered(ROOST_WQ_STORAGE, N_JOBS);
    evtimer_add(t, &now);
    ck_assert_int_ge(event_base_dispatch(base), 0);
    ck_assert_int_eq(ord.ndone, N_JOBS);
    ck_assert_int_eq(roost_worker_pending(), 0);
    event_free(t);
    ck_assert_int_eq(roost_worker_init(base, 3), 0); /* for teardown */
}
END_TEST

/* A done callback that submits more work and drains. */
static int chained;

static int
ret_seven(void *arg)
{
    return 7;
}

static void
chain_inner_done(void *arg, int result)
{
    ck_assert_int_eq(result, 7);
    chained++;
}

static void
chain_outer_done(void *arg, int result)
{
    roost_worker_submit(ROOST_WQ_CPU, ret_seven, chain_inner_done, NULL);
    roost_worker_drain();
    ck_assert_int_eq(chained, 1);
    /* this callback's own job still counts as pending */
    ck_assert_int_eq(roost_worker_pending(), 1);
    chained += 10;
}

START_TEST(test_drain_in_done)
{
    chained = 0;
    roost_worker_submit(ROOST_WQ_STORAGE, ret_seven, chain_outer_done, NULL);
    loop_until_idle();
    ck_assert_int_eq(chained, 11);
}
END_TEST

/* Drain from a thread that is not the loop: it waits for the loop. */
static void *
drainer(void *arg)
{
    roost_worker_drain();
    return (void *)(intptr_t)ord.ndone;
}

START_TEST(test_drain_other_thread)
{
    pthread_t t;
    void *seen;

    submit_ordered(ROOST_WQ_STORAGE, N_JOBS);
    ck_assert_int_eq(pthread_create(&t, NULL, drainer, NULL), 0);
    loop_until_idle();
    pthread_join(t, &seen);
    ck_assert_int_eq((int)(intptr_t)seen, N_JOBS);
}
END_TEST

/* Before init (tools, tests of callers) a job runs synchronously. */
START_TEST(test_sync_before_init)
{
    roost_worker_shutdown();
    jobs[0].idx = 21;
    roost_worker_submit(ROOST_WQ_STORAGE, order_work, order_done, &jobs[0]);
    ck_assert_int_eq(ord.ndone, 1);
    ck_assert_int_eq(ord.work_on_loop, 1);
    ck_assert_int_eq(roost_worker_pending(), 0);
    roost_worker_submit(ROOST_WQ_CPU, ret_seven, NULL, NULL);
    roost_worker_drain(); /* no-op */
    ck_assert_int_eq(roost_worker_init(base, 3), 0);
}
END_TEST

static Suite *
worker_suite(void)
{
    Suite *s = suite_create("worker");
    const struct {
        const char *name;
        const TTest *fn;
    } tests[] = {
        {"init", test_init_args},
        {"storage_fifo", test_storage_fifo},
        {"cpu_parallel", test_cpu_parallel},
        {"pending_drain", test_pending_and_drain},
        {"shutdown_in_loop", test_shutdown_in_loop},
        {"drain_in_done", test_drain_in_done},
        {"drain_other_thread", test_drain_other_thread},
        {"sync_before_init", test_sync_before_init},
    };

    for (size_t k = 0; k < sizeof(tests) / sizeof(tests[0]); k++) {
        TCase *tc = tcase_create(tests[k].name);

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, tests[k].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(worker_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
