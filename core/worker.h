/* core/worker.h: threads for blocking work (storage, password hashing,
 * SASL steps), with results handed back to the event loop (DESIGN.md
 * Concurrency).  The loop never blocks on them. */
#ifndef ROOST_CORE_WORKER_H
#define ROOST_CORE_WORKER_H

#include <roost/common.h>

struct event_base;

typedef enum {
    ROOST_WQ_STORAGE = 0, /* one thread, FIFO: storage writes stay ordered */
    ROOST_WQ_CPU = 1      /* a small pool: SASL steps, hashing */
} roost_wq_t;

/* Starts the threads; done callbacks run on base.  ncpu: threads for
 * ROOST_WQ_CPU (>= 1).  Returns 0 or -ROOST_E*. */
int roost_worker_init(struct event_base *base, int ncpu);
/* Runs work(arg) on a worker, then done(arg, result) on the loop (done may
 * be NULL).  Callable only from the loop thread. */
void roost_worker_submit(roost_wq_t q, int (*work)(void *arg),
                         void (*done)(void *arg, int result), void *arg);
/* A storage read that may be postponed (core/user.c's account loads): it
 * runs on ROOST_WQ_STORAGE like any job, never before a job submitted
 * ahead of it, but only when no ordinary job is queued, so jobs submitted
 * after it may run first; among themselves such jobs stay FIFO.  Their
 * done callbacks run after the ordinary ones that are ready, at most 32
 * per loop turn.  Only for work whose result can only get fresher by
 * waiting (a read of state no one writes meanwhile).  Returns a handle
 * for roost_worker_promote, valid until done has been called; NULL before
 * roost_worker_init (then work and done ran synchronously, as with
 * roost_worker_submit). */
typedef struct worker_job roost_worker_job_t;
roost_worker_job_t *
roost_worker_submit_late(int (*work)(void *arg),
                         void (*done)(void *arg, int result), void *arg);
/* A postponable job that is still queued becomes an ordinary one, as if
 * submitted now; nothing if it has started.  Loop thread only, j a
 * handle whose done has not run yet. */
void roost_worker_promote(roost_worker_job_t *j);
/* Group commit: makes q run its jobs in batches.  On a worker thread,
 * begin(arg) runs before the first job of a batch and end(arg, 1) after
 * the last; only when end returned 0 do the batch's done callbacks run
 * (in submission order, for the one-thread storage queue, postponable
 * jobs aside; a batch holds only one kind), and if it
 * failed each of them gets -ROOST_ESTORAGE instead of its job's result.
 * end(arg, 0) would ask for a rollback (the worker does not use it yet).
 * begin and end return 0 or -ROOST_E*; a batch whose begin failed runs one
 * job unbatched.  A batch is at most 256 jobs (32 postponable ones) or
 * 10 ms of work.  With
 * several threads (ROOST_WQ_CPU) batches run concurrently.  begin or end
 * NULL clears the hooks.  May be called before roost_worker_init (the
 * hooks persist across init and shutdown); change them only while q is
 * idle.  Jobs run synchronously before init are not batched. */
void roost_worker_set_batch(roost_wq_t q, int (*begin)(void *arg),
                            int (*end)(void *arg, int ok), void *arg);
/* Blocks until every submitted job's done callback has run. */
void roost_worker_drain(void);
/* Drains, then stops and joins the threads. */
void roost_worker_shutdown(void);
/* Jobs submitted and not yet completed (queued + running + done pending). */
int roost_worker_pending(void);

#endif /* ROOST_CORE_WORKER_H */
