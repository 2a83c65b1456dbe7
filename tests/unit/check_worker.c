/* tests/unit/check_worker.c: core/worker.c on a real libevent base.
 *
 * Covers argument checks, FIFO order of the storage queue, parallelism of
 * the CPU pool, done callbacks running on the loop thread, drain from the
 * loop (outside and inside the loop, and from a done callback), drain from
 * another thread, synchronous fallback before init, shutdown, and group
 * commit (batch hooks): batching, done callbacks only after the commit and
 * in FIFO order, a failed commit failing its whole batch, a failed begin,
 * the batch size bound, and hooks set before init or cleared; postponable
 * jobs (after ordinary ones submitted later, FIFO among themselves,
 * promotion, never in a batch with ordinary ones), and core/user.c's use
 * of them: an account load waits unless roost_user_need_login asked for
 * it, whatever queue's done callback the need came from. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <roost/common.h>

#include "log.h"
#include "server.h"
#include "storage.h"
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
    roost_worker_set_batch(ROOST_WQ_STORAGE, NULL, NULL, NULL);
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

/* ---- group commit ---- */

#define N_BATCH 300

/* What the batch hooks and the jobs saw.  Hooks and work run on the
 * storage thread, done callbacks on the loop; the worker's own locking
 * orders a job's work before its done callback. */
static struct {
    pthread_mutex_t lock;
    int begins, ends;      /* hook calls so far */
    int open;              /* a batch is between begin and end */
    int fail_end;          /* end of this batch number fails (0: none) */
    int fail_begin;        /* begin fails while non-zero */
    int batch_of[N_BATCH]; /* batch number a job ran in (0: unbatched) */
    int size[N_BATCH + 1]; /* jobs per batch number */
    int result[N_BATCH];
    int done_order[N_BATCH], ndone;
    int late; /* done callbacks that ran before their batch ended */
} bt = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Set on the thread that opened the batch: a CPU-queue job running on
 * another thread while a storage batch is open is not in it. */
static __thread int bt_in_batch;

static int
bt_begin(void *arg)
{
    ck_assert_ptr_eq(arg, &bt);
    pthread_mutex_lock(&bt.lock);
    if (bt.fail_begin) {
        pthread_mutex_unlock(&bt.lock);
        return -ROOST_ESTORAGE;
    }
    ck_assert(!bt.open);
    bt.open = 1;
    bt_in_batch = 1;
    bt.begins++;
    pthread_mutex_unlock(&bt.lock);
    return 0;
}

static int
bt_end(void *arg, int ok)
{
    int r = 0;

    ck_assert_int_eq(ok, 1);
    pthread_mutex_lock(&bt.lock);
    ck_assert(bt.open);
    bt.open = 0;
    bt_in_batch = 0;
    bt.ends++;
    if (bt.ends == bt.fail_end)
        r = -ROOST_EIO;
    pthread_mutex_unlock(&bt.lock);
    return r;
}

static int
bt_work(void *arg)
{
    job_t *j = arg;

    pthread_mutex_lock(&bt.lock);
    bt.batch_of[j->idx] = bt.open && bt_in_batch ? bt.begins : 0;
    bt.size[bt.batch_of[j->idx]]++;
    pthread_mutex_unlock(&bt.lock);
    return j->idx + 1000;
}

static void
bt_done(void *arg, int result)
{
    job_t *j = arg;

    pthread_mutex_lock(&bt.lock);
    if (bt.batch_of[j->idx] > bt.ends)
        bt.late++;
    pthread_mutex_unlock(&bt.lock);
    bt.result[j->idx] = result;
    bt.done_order[bt.ndone++] = j->idx;
}

static job_t bt_jobs[N_BATCH];

static void
bt_reset(void)
{
    pthread_mutex_lock(&bt.lock);
    bt.begins = bt.ends = bt.open = bt.fail_end = bt.fail_begin = 0;
    memset(bt.batch_of, 0, sizeof(bt.batch_of));
    memset(bt.size, 0, sizeof(bt.size));
    memset(bt.result, 0, sizeof(bt.result));
    bt.ndone = bt.late = 0;
    pthread_mutex_unlock(&bt.lock);
    pthread_mutex_lock(&gate.lock);
    gate.open = 0;
    pthread_mutex_unlock(&gate.lock);
}

/* Blocks the storage thread on the gate (in a batch of its own, since the
 * gate stays shut longer than a batch's time bound), queues n bt jobs
 * behind it, opens the gate and runs the loop until all are done. */
static void
bt_run(int n)
{
    struct timespec ts = {0, 30 * 1000000L};

    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    for (int k = 0; k < n; k++) {
        bt_jobs[k].idx = k;
        roost_worker_submit(ROOST_WQ_STORAGE, bt_work, bt_done, &bt_jobs[k]);
    }
    nanosleep(&ts, NULL);
    gate_open();
    loop_until_idle();
    ck_assert_int_eq(bt.ndone, n);
}

START_TEST(test_batch_groups)
{
    bt_reset();
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    bt_run(N_JOBS);
    /* the gate job's batch, then (timing permitting) one for the rest */
    ck_assert_int_ge(bt.begins, 2);
    ck_assert_int_le(bt.begins, 10);
    ck_assert_int_eq(bt.ends, bt.begins);
    ck_assert_int_eq(bt.late, 0);
    for (int k = 0; k < N_JOBS; k++) {
        ck_assert_int_eq(bt.done_order[k], k); /* FIFO */
        ck_assert_int_eq(bt.result[k], k + 1000);
        ck_assert_int_ge(bt.batch_of[k], 2); /* the gate had batch 1 */
    }
}
END_TEST

/* The commit of the batch after the gate's fails: each of its jobs gets
 * -ROOST_ESTORAGE, every other job its own result. */
START_TEST(test_batch_commit_fails)
{
    int failed = 0;

    bt_reset();
    bt.fail_end = 2;
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    bt_run(N_JOBS);
    ck_assert_int_eq(bt.late, 0);
    for (int k = 0; k < N_JOBS; k++) {
        ck_assert_int_eq(bt.done_order[k], k);
        if (bt.batch_of[k] == 2) {
            ck_assert_int_eq(bt.result[k], -ROOST_ESTORAGE);
            failed++;
        } else {
            ck_assert_int_eq(bt.result[k], k + 1000);
        }
    }
    ck_assert_int_eq(failed, bt.size[2]);
    ck_assert_int_gt(failed, 0);
    /* the queue goes on batching after a failure */
    bt_reset();
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    bt_run(10);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(bt.result[k], k + 1000);
}
END_TEST

/* begin fails: jobs still run, one by one, with their own results. */
START_TEST(test_batch_begin_fails)
{
    bt_reset();
    bt.fail_begin = 1;
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    bt_run(20);
    ck_assert_int_eq(bt.begins, 0);
    ck_assert_int_eq(bt.ends, 0);
    for (int k = 0; k < 20; k++) {
        ck_assert_int_eq(bt.done_order[k], k);
        ck_assert_int_eq(bt.result[k], k + 1000);
        ck_assert_int_eq(bt.batch_of[k], 0);
    }
}
END_TEST

/* More jobs than one batch may hold: split, none lost, order kept. */
START_TEST(test_batch_bound)
{
    bt_reset();
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    bt_run(N_BATCH);
    ck_assert_int_ge(bt.begins, 3); /* gate, then at least two batches */
    for (int b = 0; b <= N_BATCH; b++)
        ck_assert_int_le(bt.size[b], 256);
    ck_assert_int_eq(bt.size[0], 0);
    ck_assert_int_eq(bt.late, 0);
    for (int k = 0; k < N_BATCH; k++) {
        ck_assert_int_eq(bt.done_order[k], k);
        ck_assert_int_eq(bt.result[k], k + 1000);
    }
}
END_TEST

/* Hooks set before init apply once the worker starts; cleared hooks and
 * the synchronous path before init do not batch; the CPU queue is not
 * batched by the storage queue's hooks. */
START_TEST(test_batch_hooks_lifetime)
{
    bt_reset();
    roost_worker_shutdown();
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    bt_jobs[0].idx = 0;
    roost_worker_submit(ROOST_WQ_STORAGE, bt_work, bt_done, &bt_jobs[0]);
    ck_assert_int_eq(bt.ndone, 1); /* synchronous, unbatched */
    ck_assert_int_eq(bt.begins, 0);
    ck_assert_int_eq(roost_worker_init(base, 3), 0);
    bt_jobs[1].idx = 1;
    roost_worker_submit(ROOST_WQ_STORAGE, bt_work, bt_done, &bt_jobs[1]);
    bt_jobs[2].idx = 2;
    roost_worker_submit(ROOST_WQ_CPU, bt_work, bt_done, &bt_jobs[2]);
    loop_until_idle();
    ck_assert_int_eq(bt.batch_of[1], 1);
    ck_assert_int_eq(bt.batch_of[2], 0);
    ck_assert_int_eq(bt.begins, 1);
    ck_assert_int_eq(bt.ends, 1);
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, NULL, &bt); /* clear */
    bt_jobs[3].idx = 3;
    roost_worker_submit(ROOST_WQ_STORAGE, bt_work, bt_done, &bt_jobs[3]);
    loop_until_idle();
    ck_assert_int_eq(bt.begins, 1);
    ck_assert_int_eq(bt.batch_of[3], 0);
    ck_assert_int_eq(bt.result[3], 1003);
}
END_TEST

/* ---- postponable jobs (roost_worker_submit_late) ---- */

/* Submits, behind the gate, jobs by kinds ("L" postponable, "N"
 * ordinary), promotes the postponable job at index promote (-1: none),
 * opens the gate and checks the work and done order against want (job
 * indexes).  With batch hooks set, also that no batch mixes kinds. */
static void
late_run(const char *kinds, int promote, const int *want)
{
    roost_worker_job_t *h[N_JOBS] = {NULL};
    struct timespec ts = {0, 20 * 1000000L};
    int n = (int)strlen(kinds);

    bt_reset();
    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    nanosleep(&ts, NULL); /* the gate job is running, the rest queued */
    for (int k = 0; k < n; k++) {
        jobs[k].idx = k;
        if (kinds[k] == 'L')
            h[k] = roost_worker_submit_late(order_work, order_done, &jobs[k]);
        else
            roost_worker_submit(ROOST_WQ_STORAGE, order_work, order_done,
                                &jobs[k]);
    }
    if (promote >= 0) {
        ck_assert_ptr_nonnull(h[promote]);
        roost_worker_promote(h[promote]);
    }
    gate_open();
    loop_until_idle();
    ck_assert_int_eq(ord.nwork, n);
    ck_assert_int_eq(ord.ndone, n);
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(ord.work_order[k], want[k]);
        ck_assert_int_eq(ord.done_order[k], want[k]);
    }
}

START_TEST(test_late_order)
{
    static const int want[] = {2, 3, 5, 0, 1, 4};

    late_run("LLNNLN", -1, want);
}
END_TEST

START_TEST(test_late_promote)
{
    static const int want[] = {3, 1, 0, 2, 4};

    late_run("LLLNL", 1, want);
}
END_TEST

/* The batch an order_work job ran in, by the hooks' count. */
static int late_batch[N_JOBS];

static int
late_batch_work(void *arg)
{
    job_t *j = arg;

    pthread_mutex_lock(&bt.lock);
    late_batch[j->idx] = bt.open && bt_in_batch ? bt.begins : 0;
    pthread_mutex_unlock(&bt.lock);
    return order_work(arg);
}

/* A batch holds one kind: an ordinary job queued while postponable ones
 * run ends their batch, and its done callback does not wait for them. */
START_TEST(test_late_batches)
{
    struct timespec ts = {0, 20 * 1000000L};
    int n = 0;

    bt_reset();
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    nanosleep(&ts, NULL);
    for (int k = 0; k < 6; k++) {
        jobs[k].idx = k;
        if (k == 0 || k == 2 || k == 4)
            roost_worker_submit_late(late_batch_work, order_done, &jobs[k]);
        else
            roost_worker_submit(ROOST_WQ_STORAGE, late_batch_work, order_done,
                                &jobs[k]);
    }
    gate_open();
    loop_until_idle();
    /* 1, 3, 5 (ordinary) in one batch, then 0, 2, 4 in another */
    for (int k = 0; k < 6; k++)
        ck_assert_int_eq(late_batch[k], late_batch[k % 2]);
    ck_assert_int_ne(late_batch[0], late_batch[1]);
    ck_assert_int_gt(late_batch[0], late_batch[1]);
    for (int k = 0; k < 6; k++)
        n += late_batch[k] > 0;
    ck_assert_int_eq(n, 6);
}
END_TEST

/* Postponable jobs come back in batches of at most 32 (ordinary ones in
 * up to 256): 40 queued at once take two batches or more. */
START_TEST(test_late_batch_bound)
{
    struct timespec ts = {0, 20 * 1000000L};
    int batches = 1;

    bt_reset();
    roost_worker_set_batch(ROOST_WQ_STORAGE, bt_begin, bt_end, &bt);
    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    nanosleep(&ts, NULL);
    for (int k = 0; k < 40; k++) {
        jobs[k].idx = k;
        roost_worker_submit_late(late_batch_work, order_done, &jobs[k]);
    }
    gate_open();
    loop_until_idle();
    ck_assert_int_gt(late_batch[0], 0);
    for (int k = 1, size = 1; k < 40; k++) {
        ck_assert_int_ge(late_batch[k], late_batch[k - 1]);
        if (late_batch[k] != late_batch[k - 1]) {
            batches++;
            size = 0;
        }
        ck_assert_int_le(++size, 32);
    }
    ck_assert_int_ge(batches, 2);
    ck_assert_int_eq(ord.ndone, 40);
}
END_TEST

/* Waits (without running the loop) until n work functions have run. */
static void
wait_work(int n)
{
    struct timespec ts = {0, 1000000L};

    for (int tries = 0; tries < 5000; tries++) {
        int k;

        pthread_mutex_lock(&ord.lock);
        k = ord.nwork;
        pthread_mutex_unlock(&ord.lock);
        if (k >= n)
            return;
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("work did not run");
}

/* Done callbacks: an ordinary job's before postponed jobs' that finished
 * earlier, and those at most 32 per loop turn. */
START_TEST(test_late_done_turns)
{
    for (int k = 0; k < 41; k++)
        jobs[k].idx = k;
    for (int k = 0; k < 40; k++)
        roost_worker_submit_late(order_work, order_done, &jobs[k]);
    wait_work(40);
    roost_worker_submit(ROOST_WQ_STORAGE, order_work, order_done, &jobs[40]);
    wait_work(41);
    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL); /* handed back */
    /* the wake-up of the last completion may come a little later */
    while (ord.ndone == 0)
        ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
    ck_assert_int_eq(ord.done_order[0], 40);
    ck_assert_int_le(ord.ndone, 1 + 32);
    loop_until_idle();
    ck_assert_int_eq(ord.ndone, 41);
    for (int k = 1; k < 41; k++)
        ck_assert_int_eq(ord.done_order[k], k - 1);
}
END_TEST

/* Before init: synchronous, no handle. */
START_TEST(test_late_sync)
{
    roost_worker_shutdown();
    jobs[0].idx = 0;
    ck_assert_ptr_null(
        roost_worker_submit_late(order_work, order_done, &jobs[0]));
    ck_assert_int_eq(ord.ndone, 1);
    roost_worker_promote(NULL); /* harmless */
    ck_assert_int_eq(roost_worker_init(base, 3), 0);
}
END_TEST

/* ---- account loads (core/user.c) on these queues ---- */

static roost_host_t *user_h;

static void
user_setup(void)
{
    char *err = NULL;

    setup();
    bt_reset();
    ck_assert_int_eq(roost_storage_init("memory", NULL, &err), 0);
    user_h = roost_xcalloc(1, sizeof(*user_h));
    user_h->name = roost_xstrdup("example.org");
}

static void
user_teardown(void)
{
    /* teardown drains: every load has run, and every pin is dropped */
    teardown();
    ck_assert_ptr_null(user_h->users);
    roost_free(user_h->name);
    roost_free(user_h);
    user_h = NULL;
    roost_storage_shutdown();
}

/* A waiter of roost_user_need*: records its job's index among the done
 * callbacks and drops the pin it was given. */
static void
user_ready(void *arg, roost_user_t *u)
{
    job_t *j = arg;

    ck_assert(pthread_equal(pthread_self(), main_thread));
    ck_assert(u->loaded);
    ord.done_order[ord.ndone++] = j->idx;
    roost_user_unpin(u);
}

static void
user_check_done(const int *want, int n)
{
    ck_assert_int_eq(ord.ndone, n);
    for (int k = 0; k < n; k++)
        ck_assert_int_eq(ord.done_order[k], want[k]);
}

/* Runs the loop until n done callbacks (or waiters) have run. */
static void
loop_until_done(int n)
{
    while (ord.ndone < n)
        ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
}

/* Behind a busy storage queue: a contact's load waits, a login's load of
 * an account whose load is queued promotes it (both waiters run then),
 * and a login's fresh load is ordinary. */
START_TEST(test_user_login_promotes)
{
    /* 0, 1: ordinary jobs; 10, 11: alice; 12: bob; 13: carol */
    static const int want[] = {0, 10, 11, 1, 13, 12};

    for (int k = 0; k < 14; k++)
        jobs[k].idx = k;
    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    roost_user_need(user_h, "alice", user_ready, &jobs[10]);
    roost_user_need(user_h, "bob", user_ready, &jobs[12]);
    roost_worker_submit(ROOST_WQ_STORAGE, order_work, order_done, &jobs[0]);
    roost_user_need_login(user_h, "alice", user_ready, &jobs[11]);
    roost_worker_submit(ROOST_WQ_STORAGE, order_work, order_done, &jobs[1]);
    roost_user_need_login(user_h, "carol", user_ready, &jobs[13]);
    gate_open();
    loop_until_idle();
    user_check_done(want, 6);
}
END_TEST

static int
user_nop_work(void *arg)
{
    (void)arg;
    return 0;
}

/* A need that is no login stays postponed even from the done callback
 * of a CPU job (the old heuristic took that for a SASL step). */
static void
user_cpu_done(void *arg, int result)
{
    (void)arg;
    (void)result;
    roost_user_need(user_h, "dave", user_ready, &jobs[10]);
    roost_worker_submit(ROOST_WQ_STORAGE, order_work, order_done, &jobs[0]);
    ord.done_order[ord.ndone++] = 5;
}

START_TEST(test_user_cpu_done_waits)
{
    static const int want[] = {5, 0, 10};

    jobs[0].idx = 0;
    jobs[10].idx = 10;
    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    roost_worker_submit(ROOST_WQ_CPU, user_nop_work, user_cpu_done, NULL);
    loop_until_done(1);
    gate_open();
    loop_until_idle();
    user_check_done(want, 3);
}
END_TEST

/* A login from the done callback of a storage job (XEP-0484 FAST checks
 * its token there) is ordinary too, and a contact need beside it waits. */
static void
user_storage_done(void *arg, int result)
{
    order_done(arg, result);
    roost_user_need(user_h, "bob", user_ready, &jobs[12]);
    roost_user_need_login(user_h, "carol", user_ready, &jobs[13]);
    roost_worker_submit(ROOST_WQ_STORAGE, order_work, order_done, &jobs[0]);
}

START_TEST(test_user_login_from_storage_done)
{
    static const int want[] = {5, 13, 0, 12};

    for (int k = 0; k < 14; k++)
        jobs[k].idx = k;
    roost_worker_submit(ROOST_WQ_STORAGE, order_work, user_storage_done,
                        &jobs[5]);
    roost_worker_submit(ROOST_WQ_STORAGE, gate_work, NULL, NULL);
    loop_until_done(1);
    gate_open();
    loop_until_idle();
    user_check_done(want, 4);
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
        {"batch_groups", test_batch_groups},
        {"batch_commit_fails", test_batch_commit_fails},
        {"batch_begin_fails", test_batch_begin_fails},
        {"batch_bound", test_batch_bound},
        {"batch_hooks_lifetime", test_batch_hooks_lifetime},
        {"late_order", test_late_order},
        {"late_promote", test_late_promote},
        {"late_batches", test_late_batches},
        {"late_batch_bound", test_late_batch_bound},
        {"late_done_turns", test_late_done_turns},
        {"late_sync", test_late_sync},
    };
    const struct {
        const char *name;
        const TTest *fn;
    } user_tests[] = {
        {"user_login_promotes", test_user_login_promotes},
        {"user_cpu_done_waits", test_user_cpu_done_waits},
        {"user_login_from_storage_done", test_user_login_from_storage_done},
    };

    for (size_t k = 0; k < sizeof(tests) / sizeof(tests[0]); k++) {
        TCase *tc = tcase_create(tests[k].name);

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, tests[k].fn);
        suite_add_tcase(s, tc);
    }
    for (size_t k = 0; k < sizeof(user_tests) / sizeof(user_tests[0]); k++) {
        TCase *tc = tcase_create(user_tests[k].name);

        tcase_add_checked_fixture(tc, user_setup, user_teardown);
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, user_tests[k].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(worker_suite());
    int failed;

    roost_log_level = -1; /* the failure tests log errors on purpose */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
