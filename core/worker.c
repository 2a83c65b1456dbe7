/* core/worker.c: worker threads for blocking work, results handed back to
 * the event loop.
 *
 * Two queues: ROOST_WQ_STORAGE has one thread, so storage jobs run in the
 * order they were submitted; ROOST_WQ_CPU has ncpu threads for hashing and
 * SASL steps.  A finished job goes on the done queue, and a byte written to
 * a self-pipe wakes the loop, which runs the done callbacks in completion
 * order.  A pipe (rather than event_active() from a worker) keeps this
 * correct whatever libevent threading setup the base was created with.
 *
 * Group commit: a queue may have batch hooks (roost_worker_set_batch).  A
 * thread of such a queue then runs the jobs it finds queued as one batch:
 * begin(), the jobs in order (also those queued while the batch runs, up
 * to WORKER_BATCH_MAX jobs or WORKER_BATCH_USEC of work), end(); only then
 * do the batch's jobs go on the done queue, so a done callback never sees
 * a result before its batch committed.  If end() fails, every job of the
 * batch reports -ROOST_ESTORAGE (its effects were rolled back, and it
 * cannot be re-run safely).  The hooks live outside the running state, so
 * they may be set before roost_worker_init and survive a shutdown.
 *
 * Not a general thread pool: no priorities, no cancellation, no timeouts.
 * Jobs must not block forever; shutdown waits for them.  Before
 * roost_worker_init (roostctl, unit tests of callers) a submitted job runs
 * synchronously: work, then done, inside roost_worker_submit, without
 * batch hooks. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "worker.h"

#define WORKER_MAX_CPU 64
/* Bounds of one batch: a commit is at most this many jobs or this much
 * work (microseconds, checked after each job) behind its first job. */
#define WORKER_BATCH_MAX  256
#define WORKER_BATCH_USEC 10000

typedef struct worker_job {
    int (*work)(void *arg);
    void (*done)(void *arg, int result);
    void *arg;
    int result;
    struct worker_job *next;
} worker_job_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    worker_job_t *head, *tail;
    int stop;
    pthread_t *threads;
    int nthreads;
} worker_queue_t;

typedef struct {
    int (*begin)(void *arg);
    int (*end)(void *arg, int ok);
    void *arg;
} worker_batch_t;

static struct {
    int running;
    struct event_base *base;
    struct event *ev;
    int pipe_rd, pipe_wr;
    pthread_t loop_thread;
    worker_queue_t q[2];
    /* done queue, pending count, wake-up state: all under done_lock */
    pthread_mutex_t done_lock;
    pthread_cond_t done_cond; /* a job finished or pending dropped */
    worker_job_t *done_head, *done_tail;
    int signalled; /* a wake-up byte is in the pipe */
    int pending;
    int in_done;             /* done callbacks running now (loop thread) */
    worker_batch_t batch[2]; /* per queue; begin NULL = no batching */
} wk = {.pipe_rd = -1,
        .pipe_wr = -1,
        .done_lock = PTHREAD_MUTEX_INITIALIZER,
        .done_cond = PTHREAD_COND_INITIALIZER};

static void
worker_push(worker_job_t **head, worker_job_t **tail, worker_job_t *j)
{
    j->next = NULL;
    if (*tail != NULL)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Takes the first queued job; q->lock held, q->head not NULL. */
static worker_job_t *
worker_pop(worker_queue_t *q)
{
    worker_job_t *j = q->head;

    q->head = j->next;
    if (q->head == NULL)
        q->tail = NULL;
    j->next = NULL;
    return j;
}

/* Appends the finished jobs head..tail (linked) to the done queue and wakes
 * the loop. */
static void
worker_finish(worker_job_t *head, worker_job_t *tail)
{
    char b = 1;

    pthread_mutex_lock(&wk.done_lock);
    if (wk.done_tail != NULL)
        wk.done_tail->next = head;
    else
        wk.done_head = head;
    wk.done_tail = tail;
    if (!wk.signalled) {
        /* One byte per empty->non-empty transition keeps the pipe from
         * filling; EAGAIN would mean a byte is already there. */
        wk.signalled = 1;
        if (write(wk.pipe_wr, &b, 1) < 0 && errno != EAGAIN)
            ROOST_LOG(ROOST_LOG_ERROR, "worker",
                      "wake-up write failed (errno %d)", errno);
    }
    pthread_cond_broadcast(&wk.done_cond);
    pthread_mutex_unlock(&wk.done_lock);
}

static int64_t
worker_usec_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - t0->tv_sec) * 1000000 +
           (t.tv_nsec - t0->tv_nsec) / 1000;
}

/* Runs j and the jobs queued behind it (within the batch bounds) between
 * b->begin and b->end, then hands them all to the loop.  If begin fails,
 * j runs alone outside a batch, with its own result: the next batch tries
 * begin again. */
static void
worker_run_batch(worker_queue_t *q, const worker_batch_t *b, worker_job_t *j)
{
    worker_job_t *head = NULL, *tail = NULL;
    struct timespec t0;
    int n = 0, r;

    if (b->begin(b->arg) != 0) {
        ROOST_LOG(ROOST_LOG_WARN, "worker",
                  "cannot begin a batch; running a job unbatched");
        j->result = j->work(j->arg);
        worker_finish(j, j);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        j->result = j->work(j->arg);
        worker_push(&head, &tail, j);
        if (++n >= WORKER_BATCH_MAX ||
            worker_usec_since(&t0) >= WORKER_BATCH_USEC)
            break;
        pthread_mutex_lock(&q->lock);
        j = q->head != NULL ? worker_pop(q) : NULL;
        pthread_mutex_unlock(&q->lock);
        if (j == NULL)
            break;
    }
    if ((r = b->end(b->arg, 1)) != 0) {
        ROOST_LOG(ROOST_LOG_ERROR, "worker",
                  "batch of %d job%s failed to commit (%d); all fail", n,
                  n == 1 ? "" : "s", r);
        for (j = head; j != NULL; j = j->next)
            j->result = -ROOST_ESTORAGE;
    }
    worker_finish(head, tail);
}

static void *
worker_main(void *varg)
{
    worker_queue_t *q = varg;
    worker_batch_t b;
    worker_job_t *j;

    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->head == NULL && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->head == NULL) { /* stop requested and nothing left */
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        j = worker_pop(q);
        pthread_mutex_unlock(&q->lock);

        pthread_mutex_lock(&wk.done_lock);
        b = wk.batch[q - wk.q];
        pthread_mutex_unlock(&wk.done_lock);
        if (b.begin != NULL) {
            worker_run_batch(q, &b, j);
        } else {
            j->result = j->work(j->arg);
            worker_finish(j, j);
        }
    }
}

/* Runs the done callbacks of the finished jobs in list (loop thread only),
 * in order, decrementing pending after each. */
static void
worker_run_done(worker_job_t *list)
{
    worker_job_t *j;

    while ((j = list) != NULL) {
        list = j->next;
        wk.in_done++;
        if (j->done != NULL)
            j->done(j->arg, j->result);
        wk.in_done--;
        roost_free(j);
        pthread_mutex_lock(&wk.done_lock);
        wk.pending--;
        pthread_cond_broadcast(&wk.done_cond);
        pthread_mutex_unlock(&wk.done_lock);
    }
}

/* Takes the whole done queue; called with done_lock held. */
static worker_job_t *
worker_take_done(void)
{
    worker_job_t *list = wk.done_head;

    wk.done_head = wk.done_tail = NULL;
    return list;
}

static void
worker_wakeup(evutil_socket_t fd, short what, void *arg)
{
    char buf[64];
    worker_job_t *list;

    pthread_mutex_lock(&wk.done_lock);
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    wk.signalled = 0;
    list = worker_take_done();
    pthread_mutex_unlock(&wk.done_lock);
    worker_run_done(list);
}

static void
worker_stop_queue(worker_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    roost_free(q->threads);
    q->threads = NULL;
    q->nthreads = 0;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
}

static int
worker_start_queue(worker_queue_t *q, int n)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->head = q->tail = NULL;
    q->stop = 0;
    q->threads = roost_xcalloc((size_t)n, sizeof(pthread_t));
    for (q->nthreads = 0; q->nthreads < n; q->nthreads++) {
        if (pthread_create(&q->threads[q->nthreads], NULL, worker_main, q)) {
            worker_stop_queue(q);
            return -ROOST_EIO;
        }
    }
    return 0;
}

/* Starts the threads; done callbacks run on base, which must be driven by
 * the calling thread.  ncpu: threads for ROOST_WQ_CPU, 1..64.  Returns 0,
 * -ROOST_EINVAL (bad arguments, already running) or -ROOST_EIO. */
int
roost_worker_init(struct event_base *base, int ncpu)
{
    int fds[2];

    if (base == NULL || ncpu < 1 || ncpu > WORKER_MAX_CPU || wk.running)
        return -ROOST_EINVAL;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -ROOST_EIO;
    wk.pipe_rd = fds[0];
    wk.pipe_wr = fds[1];
    wk.ev = event_new(base, fds[0], EV_READ | EV_PERSIST, worker_wakeup, NULL);
    if (wk.ev == NULL || event_add(wk.ev, NULL) < 0)
        goto fail;
    if (worker_start_queue(&wk.q[ROOST_WQ_STORAGE], 1) < 0)
        goto fail;
    if (worker_start_queue(&wk.q[ROOST_WQ_CPU], ncpu) < 0) {
        worker_stop_queue(&wk.q[ROOST_WQ_STORAGE]);
        goto fail;
    }
    wk.base = base;
    wk.loop_thread = pthread_self();
    wk.signalled = 0;
    wk.pending = 0;
    wk.running = 1;
    return 0;
fail:
    if (wk.ev != NULL)
        event_free(wk.ev);
    wk.ev = NULL;
    close(fds[0]);
    close(fds[1]);
    wk.pipe_rd = wk.pipe_wr = -1;
    return -ROOST_EIO;
}

/* Sets (or, with begin or end NULL, clears) the batch hooks of q; they
 * apply from the next batch on and persist across init and shutdown.  Any
 * thread; set them while q is idle (before init or after a drain). */
void
roost_worker_set_batch(roost_wq_t q, int (*begin)(void *arg),
                       int (*end)(void *arg, int ok), void *arg)
{
    worker_batch_t b = {NULL, NULL, NULL};

    if (begin != NULL && end != NULL)
        b = (worker_batch_t){begin, end, arg};
    pthread_mutex_lock(&wk.done_lock);
    wk.batch[q == ROOST_WQ_CPU ? ROOST_WQ_CPU : ROOST_WQ_STORAGE] = b;
    pthread_mutex_unlock(&wk.done_lock);
}

/* Queues work(arg) on q; done(arg, result) later runs on the loop.  Loop
 * thread only.  Before roost_worker_init, runs both synchronously. */
void
roost_worker_submit(roost_wq_t q, int (*work)(void *arg),
                    void (*done)(void *arg, int result), void *arg)
{
    worker_job_t *j;
    worker_queue_t *wq;

    if (!wk.running) {
        int r = work(arg);

        if (done != NULL)
            done(arg, r);
        return;
    }
    wq = &wk.q[q == ROOST_WQ_CPU ? ROOST_WQ_CPU : ROOST_WQ_STORAGE];
    j = roost_xcalloc(1, sizeof(*j));
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&wk.done_lock);
    wk.pending++;
    pthread_mutex_unlock(&wk.done_lock);
    pthread_mutex_lock(&wq->lock);
    worker_push(&wq->head, &wq->tail, j);
    pthread_cond_signal(&wq->cond);
    pthread_mutex_unlock(&wq->lock);
}

/* Blocks until every submitted job's done callback has run.  On the loop
 * thread it runs the done callbacks itself (so shutdown paths cannot
 * deadlock); from a done callback it waits for all jobs but the running
 * callbacks.  From another thread it waits for the loop to run them. */
void
roost_worker_drain(void)
{
    worker_job_t *list;

    if (!wk.running)
        return;
    pthread_mutex_lock(&wk.done_lock);
    if (!pthread_equal(pthread_self(), wk.loop_thread)) {
        while (wk.pending > 0)
            pthread_cond_wait(&wk.done_cond, &wk.done_lock);
        pthread_mutex_unlock(&wk.done_lock);
        return;
    }
    while (wk.pending > wk.in_done) {
        if (wk.done_head == NULL) {
            pthread_cond_wait(&wk.done_cond, &wk.done_lock);
            continue;
        }
        /* A stale wake-up byte may stay in the pipe; the loop callback
         * then finds the queue empty, which is harmless. */
        list = worker_take_done();
        pthread_mutex_unlock(&wk.done_lock);
        worker_run_done(list);
        pthread_mutex_lock(&wk.done_lock);
    }
    pthread_mutex_unlock(&wk.done_lock);
}

/* Drains, then stops and joins the threads and frees the loop event.  Loop
 * thread only.  roost_worker_init may be called again afterwards. */
void
roost_worker_shutdown(void)
{
    if (!wk.running)
        return;
    roost_worker_drain();
    worker_stop_queue(&wk.q[ROOST_WQ_STORAGE]);
    worker_stop_queue(&wk.q[ROOST_WQ_CPU]);
    event_free(wk.ev);
    wk.ev = NULL;
    close(wk.pipe_rd);
    close(wk.pipe_wr);
    wk.pipe_rd = wk.pipe_wr = -1;
    wk.base = NULL;
    wk.running = 0;
}

/* Jobs submitted and not completed: queued, running or done pending. */
int
roost_worker_pending(void)
{
    int n;

    pthread_mutex_lock(&wk.done_lock);
    n = wk.pending;
    pthread_mutex_unlock(&wk.done_lock);
    return n;
}
