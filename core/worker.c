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
 * Postponable jobs (roost_worker_submit_late): the storage queue keeps a
 * second list of reads that may wait, taken only when the ordinary list is
 * empty.  A postponable job therefore never runs before a job submitted
 * ahead of it (that one was taken first), only after some submitted
 * behind it; core/user.c queues account loads there so that one login's
 * hundreds of contact loads (presence probes to offline contacts) do not
 * hold up the next login's own load, and promotes a queued load when a
 * login needs it.  Their done callbacks wait on a done queue of their
 * own, run after the ordinary ones and at most WORKER_LATE_DONE_MAX per
 * loop turn, so that a burst of them never holds the loop for long.
 *
 * Not a general thread pool: no cancellation, no timeouts.
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
/* Postponable jobs are handed back in smaller batches: their done
 * callbacks then run in shorter loop turns, between which the loop
 * serves its sockets (a login in progress). */
#define WORKER_LATE_BATCH_MAX 32
/* ... and their done callbacks run at most this many per loop turn. */
#define WORKER_LATE_DONE_MAX 32

typedef struct worker_job {
    int (*work)(void *arg);
    void (*done)(void *arg, int result);
    void *arg;
    int result;
    int q;         /* ROOST_WQ_* it ran on */
    int late;      /* queued on the postponable list (under the queue lock) */
    int postponed; /* taken from that list */
    struct worker_job *next;
} worker_job_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    worker_job_t *head, *tail;
    worker_job_t *late_head, *late_tail; /* postponable jobs */
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
    worker_job_t *late_done_head, *late_done_tail; /* postponed jobs' */
    struct event *more; /* runs the rest of late_done next loop turn */
    int signalled;      /* a wake-up byte is in the pipe */
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

/* Takes the first ordinary job, else the first postponable one, or NULL;
 * q->lock held. */
static worker_job_t *
worker_pop(worker_queue_t *q)
{
    worker_job_t *j = q->head;

    if (j != NULL) {
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
    } else if ((j = q->late_head) != NULL) {
        q->late_head = j->next;
        if (q->late_head == NULL)
            q->late_tail = NULL;
        j->late = 0;
        j->postponed = 1;
    } else {
        return NULL;
    }
    j->next = NULL;
    return j;
}

/* Appends the finished jobs head..tail (linked, one kind: a batch never
 * mixes them) to the done queue of their kind and wakes the loop. */
static void
worker_finish(worker_job_t *head, worker_job_t *tail)
{
    char b = 1;
    worker_job_t **dh, **dt;

    pthread_mutex_lock(&wk.done_lock);
    dh = head->postponed ? &wk.late_done_head : &wk.done_head;
    dt = head->postponed ? &wk.late_done_tail : &wk.done_tail;
    if (*dt != NULL)
        (*dt)->next = head;
    else
        *dh = head;
    *dt = tail;
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
 * begin again.  A batch holds ordinary or postponable jobs, not both: an
 * ordinary job queued meanwhile ends a batch of postponable ones, whose
 * done callbacks would otherwise hold its own back until the batch's end
 * (up to WORKER_BATCH_MAX jobs). */
static void
worker_run_batch(worker_queue_t *q, const worker_batch_t *b, worker_job_t *j)
{
    worker_job_t *head = NULL, *tail = NULL;
    struct timespec t0;
    int n = 0, r, late = j->postponed;

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
        if (++n >= (late ? WORKER_LATE_BATCH_MAX : WORKER_BATCH_MAX) ||
            worker_usec_since(&t0) >= WORKER_BATCH_USEC)
            break;
        pthread_mutex_lock(&q->lock);
        j = late == (q->head == NULL) ? worker_pop(q) : NULL;
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
        while (q->head == NULL && q->late_head == NULL && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        if ((j = worker_pop(q)) == NULL) { /* stop, and nothing left */
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
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

/* Takes the ordinary done queue and then at most late_max (all when
 * negative) of the postponed jobs' done queue, in that order; called with
 * done_lock held.  Ordinary completions go first: a login's SASL step or
 * load does not wait behind hundreds of contact loads' callbacks. */
static worker_job_t *
worker_take_done(int late_max)
{
    worker_job_t *list = wk.done_head, *tail = wk.done_tail, *j;

    wk.done_head = wk.done_tail = NULL;
    while ((j = wk.late_done_head) != NULL && late_max-- != 0) {
        wk.late_done_head = j->next;
        if (wk.late_done_head == NULL)
            wk.late_done_tail = NULL;
        j->next = NULL;
        if (tail != NULL)
            tail->next = j;
        else
            list = j;
        tail = j;
    }
    return list;
}

/* Runs what is done, postponed jobs' callbacks WORKER_LATE_DONE_MAX at a
 * time: the rest waits for the next loop turn (wk.more), so that the
 * sockets are served in between. */
static void
worker_run_some(void)
{
    static const struct timeval now = {0, 0};
    worker_job_t *list;

    pthread_mutex_lock(&wk.done_lock);
    list = worker_take_done(WORKER_LATE_DONE_MAX);
    if (wk.late_done_head != NULL)
        evtimer_add(wk.more, &now);
    pthread_mutex_unlock(&wk.done_lock);
    worker_run_done(list);
}

static void
worker_more(evutil_socket_t fd, short what, void *arg)
{
    worker_run_some();
}

static void
worker_wakeup(evutil_socket_t fd, short what, void *arg)
{
    char buf[64];

    pthread_mutex_lock(&wk.done_lock);
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    wk.signalled = 0;
    pthread_mutex_unlock(&wk.done_lock);
    worker_run_some();
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
    q->late_head = q->late_tail = NULL;
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
    wk.more = evtimer_new(base, worker_more, NULL);
    if (wk.ev == NULL || wk.more == NULL || event_add(wk.ev, NULL) < 0)
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
    if (wk.more != NULL)
        event_free(wk.more);
    wk.ev = NULL;
    wk.more = NULL;
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

/* Queues a job on q (its postponable list with late set); NULL when the
 * threads are not running (then work and done ran here). */
static worker_job_t *
worker_submit(roost_wq_t q, int late, int (*work)(void *arg),
              void (*done)(void *arg, int result), void *arg)
{
    worker_job_t *j;
    worker_queue_t *wq;

    if (!wk.running) {
        int r = work(arg);

        if (done != NULL)
            done(arg, r);
        return NULL;
    }
    q = q == ROOST_WQ_CPU ? ROOST_WQ_CPU : ROOST_WQ_STORAGE;
    wq = &wk.q[q];
    j = roost_xcalloc(1, sizeof(*j)); /* freed by worker_run_done */
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->q = q;
    pthread_mutex_lock(&wk.done_lock);
    wk.pending++;
    pthread_mutex_unlock(&wk.done_lock);
    pthread_mutex_lock(&wq->lock);
    if (late) {
        j->late = 1;
        worker_push(&wq->late_head, &wq->late_tail, j);
    } else {
        worker_push(&wq->head, &wq->tail, j);
    }
    pthread_cond_signal(&wq->cond);
    pthread_mutex_unlock(&wq->lock);
    return j;
}

/* Queues work(arg) on q; done(arg, result) later runs on the loop.  Loop
 * thread only.  Before roost_worker_init, runs both synchronously. */
void
roost_worker_submit(roost_wq_t q, int (*work)(void *arg),
                    void (*done)(void *arg, int result), void *arg)
{
    worker_submit(q, 0, work, done, arg);
}

roost_worker_job_t *
roost_worker_submit_late(int (*work)(void *arg),
                         void (*done)(void *arg, int result), void *arg)
{
    return worker_submit(ROOST_WQ_STORAGE, 1, work, done, arg);
}

/* Moves j, if still on the postponable list, to the ordinary list's
 * tail.  The list is searched: promotions are rare (a login whose
 * account's load was queued by a stanza). */
void
roost_worker_promote(roost_worker_job_t *j)
{
    worker_queue_t *q;
    worker_job_t **pp, *prev = NULL;

    if (j == NULL || !wk.running)
        return;
    q = &wk.q[j->q];
    pthread_mutex_lock(&q->lock);
    if (j->late) {
        for (pp = &q->late_head; *pp != NULL && *pp != j; pp = &(*pp)->next)
            prev = *pp;
        if (*pp == j) {
            *pp = j->next;
            if (q->late_tail == j)
                q->late_tail = prev;
            j->late = 0;
            worker_push(&q->head, &q->tail, j);
        }
    }
    pthread_mutex_unlock(&q->lock);
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
        if (wk.done_head == NULL && wk.late_done_head == NULL) {
            pthread_cond_wait(&wk.done_cond, &wk.done_lock);
            continue;
        }
        /* A stale wake-up byte may stay in the pipe (or wk.more armed);
         * the loop callback then finds the queue empty: harmless. */
        list = worker_take_done(-1);
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
    event_free(wk.more);
    wk.ev = NULL;
    wk.more = NULL;
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
