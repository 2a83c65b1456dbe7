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
 * Not a general thread pool: no priorities, no cancellation, no timeouts.
 * Jobs must not block forever; shutdown waits for them.  Before
 * roost_worker_init (roostctl, unit tests of callers) a submitted job runs
 * synchronously: work, then done, inside roost_worker_submit. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "worker.h"

#define WORKER_MAX_CPU 64

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
    int in_done; /* done callbacks running now (loop thread) */
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

static void *
worker_main(void *varg)
{
    worker_queue_t *q = varg;
    worker_job_t *j;
    char b = 1;

    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->head == NULL && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->head == NULL) { /* stop requested and nothing left */
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        j = q->head;
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
        pthread_mutex_unlock(&q->lock);

        j->result = j->work(j->arg);

        pthread_mutex_lock(&wk.done_lock);
        worker_push(&wk.done_head, &wk.done_tail, j);
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
