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
/* Blocks until every submitted job's done callback has run. */
void roost_worker_drain(void);
/* Drains, then stops and joins the threads. */
void roost_worker_shutdown(void);
/* Jobs submitted and not yet completed (queued + running + done pending). */
int roost_worker_pending(void);

#endif /* ROOST_CORE_WORKER_H */
