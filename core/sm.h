/* core/sm.h: XEP-0198 stream management for c2s sessions, and the ack
 * holds that tie an acknowledgement to the storage commits it depends on
 * (DESIGN.md, "Durability").
 *
 * A session that sent <enable/> gets a roost_sm_t: counters for both
 * directions, the queue of stanzas sent but not yet acknowledged, and,
 * when resumable, an id in the resumption registry.  core/conn.c calls in
 * here for the SM elements, for every stanza in and out, and when the
 * transport is lost (hibernation) or the session ends.
 *
 * Ack holds: while the core handles a stanza from an SM session, that
 * stanza is the "current context".  Any storage job submitted through
 * roost_sm_storage_submit() in that context (module stores, roster
 * writes, account state loads) holds the stanza's acknowledgement until
 * the job's transaction committed: <a h='N'/> never counts a stanza whose
 * effect could still be lost to a kill -9.  A stanza that waits for its
 * recipient's state to load carries the context with it (router.c). */
#ifndef ROOST_CORE_SM_H
#define ROOST_CORE_SM_H

#include <stdint.h>

#include <roost/stanza.h>

typedef struct roost_session roost_session_t;
typedef struct roost_sm roost_sm_t;
typedef struct roost_sm_hold roost_sm_hold_t;

#define ROOST_NS_SM "urn:xmpp:sm:3"

/* The context a stanza's handling runs in (saved and restored around
 * nested handling). */
typedef struct {
    roost_session_t *s;
    uint32_t seq;
} roost_sm_ctx_t;

/* Handles an element of ROOST_NS_SM from session s (borrowed).  bound:
 * whether s has a resource.  Returns non-zero when the stream must stop
 * parsing (resumption moved the stream to another session, or s
 * closed). */
int roost_sm_element(roost_session_t *s, roost_stanza_t *el, int bound);

/* A stanza arrived from s (counted when SM is on).  Returns the sequence
 * number to enter as context for its handling (0 without SM). */
uint32_t roost_sm_inbound(roost_session_t *s);

/* The number of the stanza being handled (the last one counted). */
uint32_t roost_sm_in(const roost_session_t *s);

/* Records st (borrowed: a reference is kept) as sent to s.  Returns 0, or
 * -ROOST_ELIMIT when the unacknowledged queue is full (the caller closes
 * the session). */
int roost_sm_outbound(roost_session_t *s, roost_stanza_t *st);

/* Whether s keeps its session when the transport goes away. */
int roost_sm_resumable(const roost_session_t *s);
/* The transport of s is gone: keep the session for the resumption
 * timeout.  The caller has freed the transport. */
void roost_sm_hibernate(roost_session_t *s);
/* The session of s ends (after unbind): unacknowledged messages are
 * routed again as if never delivered (to other resources or offline
 * storage, with a delay stamp), requests are bounced, the id is
 * forgotten.  Idempotent. */
void roost_sm_end(roost_session_t *s);
/* roost_conn_resume moved a transport into o: send <resumed/> and the
 * unacknowledged stanzas again. */
void roost_sm_resumed(roost_session_t *o);
/* Routes st (borrowed), which could not be sent to s, as roost_sm_end
 * routes the unacknowledged ones. */
void roost_sm_reroute(roost_session_t *s, roost_stanza_t *st);
/* Frees s's SM state (session free). */
void roost_sm_free(roost_session_t *s);
/* An idle SM session: ask for an ack instead of a ping.  Returns non-zero
 * if one was sent. */
int roost_sm_keepalive(roost_session_t *s);

/* Ack holds. */
void roost_sm_enter(roost_session_t *s, uint32_t seq, roost_sm_ctx_t *saved);
void roost_sm_leave(const roost_sm_ctx_t *saved);
/* A hold on the current context's acknowledgement, or NULL when there is
 * no context.  Release it with roost_sm_release (NULL allowed). */
roost_sm_hold_t *roost_sm_hold(void);
void roost_sm_enter_hold(const roost_sm_hold_t *h, roost_sm_ctx_t *saved);
void roost_sm_release(roost_sm_hold_t *h);
/* roost_worker_submit(ROOST_WQ_STORAGE, ...) under a hold on the current
 * context; done runs in that context. */
void roost_sm_storage_submit(int (*work)(void *arg),
                             void (*done)(void *arg, int result), void *arg);

#endif /* ROOST_CORE_SM_H */
