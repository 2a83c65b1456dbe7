/* tests/harness/harness.h: a fake Roost host for testing one module (or a
 * few) without sockets, storage or the real core.
 *
 * harness.c implements every function of include/roost/module.h for ONE
 * virtual host, so a test program links a module's .c file, harness.c,
 * the real base library (core/util.c log.c pool.c stanza.c xml.c jid.c)
 * and the real roster model (core/roster.c), then drives the module:
 *
 *     harness_load(&roost_module_ping, "localhost", NULL);
 *     harness_session_add("alice@localhost/phone", 1, 0);
 *     harness_inject("alice@localhost/phone", "localhost",
 *                    "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/>"
 *                    "</iq>");
 *     ... inspect harness_delivered("alice@localhost/phone") ...
 *     ck_assert_int_eq(harness_reset(), 0);
 *
 * Routing follows the core's rules (core/router.c, HOUSE 4) closely enough
 * for module tests: stanzas are classified as kind x `to` (host, bare or
 * full JID of the vhost); IQ get/set to the host or to the sender's own
 * bare JID go to roost_hook_iq handlers by (type, payload ns and name),
 * other IQs to a bare JID fire ROOST_EV_IQ_BARE; messages and presence
 * fire their events by priority.  When nobody handles a stanza the core's
 * defaults apply: IQ get/set and messages (not error or headline) get
 * service-unavailable, unless addressed to the full JID of an existing
 * session, which then gets them; directed available/unavailable presence
 * reaches the session(s).  Stanzas a module routes (roost_send,
 * roost_reply, roost_bounce) go through the same routing; whatever leaves
 * the vhost (another domain) is captured in the sent list, whatever
 * reaches a fake session in that session's delivered list.  A stanza
 * injected to another domain is captured as sent (the core would bounce
 * remote-server-not-found: there is no s2s yet).
 *
 * The harness is stricter than the core where that finds bugs: it counts
 * contract violations (a handler that mutates its borrowed stanza, an
 * invalid verdict, registrations made during unload, a session slot still
 * set after ROOST_EV_SESSION_CLOSED), logs each to stderr and returns the
 * count from harness_reset(), so a test's teardown can assert it is 0.
 *
 * Storage: roost_store_open() gives stores of the real storage layer
 * (core/storage.c) on the in-memory driver (storage/st_memory.c), so a
 * test program links libroostcore.la (the harness's own definitions of the
 * module API take precedence over core/module.c, which is never pulled).
 *
 * Not for: testing the core (core/module.c has its own unit tests), the
 * storage drivers (tests/unit/check_storage.c), or multi-vhost
 * behaviour.  Not thread-safe; tests are single-threaded. */
#ifndef ROOST_TEST_HARNESS_H
#define ROOST_TEST_HARNESS_H

#include <stdint.h>

#include <roost/account.h>
#include <roost/module.h>
#include <roost/roster.h>
#include <roost/store.h>

/* Loads def on the harness vhost host (the first load sets it; later loads
 * must name the same host).  The conf struct is zeroed and filled from
 * def->opts defaults (parsed like config text: BOOL true/false/yes/no/on/
 * off/1/0, INT decimal, SIZE with optional K/M/G suffix, MSEC in seconds
 * with optional "ms" suffix, STR, STRLIST comma-separated), then conf_init
 * (may be NULL) can override fields, then def->load runs.  Returns the
 * instance, or NULL (ABI mismatch, duplicate, missing dependency, bad
 * default, or load() failure; the reason is logged). */
roost_mod_t *harness_load(const roost_module_t *def, const char *host,
                          void (*conf_init)(void *conf));
/* Unloads m as the core does: removes its hooks, IQ handlers, features,
 * identities, stream features and timers, then calls def->unload (during
 * which registering is refused).  Returns 0, or -ROOST_EINVAL when a
 * contract violation happened during the unload (also counted). */
int harness_unload(roost_mod_t *m);
/* The loaded instance named name, or NULL. */
roost_mod_t *harness_mod(const char *name);

/* Tears everything down: closes all sessions (firing SESSION_CLOSED),
 * unloads all modules in reverse load order, frees captured output and
 * forgets the host.  Returns the number of contract violations seen since
 * the previous reset (0 for a well-behaved module). */
int harness_reset(void);

/* Adds a bound c2s session with full JID jid (must be on the vhost), fires
 * ROOST_EV_SESSION_BOUND, and returns it.  NULL on a bad or duplicate JID. */
roost_session_t *harness_session_add(const char *jid, int available,
                                     int priority);
/* Closes the session now (fires ROOST_EV_SESSION_CLOSED, then frees it).
 * Returns 0 or -ROOST_ENOTFOUND. */
int harness_session_remove(const char *jid);
/* The session with that full JID, or NULL. */
roost_session_t *harness_session(const char *jid);
/* Marks the session of full as hibernating (XEP-0198: connection lost,
 * session kept) or not: roost_session_hibernating() answers that. */
void harness_session_hibernate(const char *full, int on);
/* Condition passed to roost_session_close() for the last session a module
 * closed ("" for a plain close), or NULL if none was closed. */
const char *harness_last_close(void);

/* Injects xml (one element, written as inside a jabber:client stream:
 * no xmlns needed) as a stanza from `from` (stamped into the stanza; NULL
 * means the host) to `to`, and routes it like the core.  to NULL: for
 * presence from a fake session, a broadcast (updates the session's
 * availability and priority from the stanza, then ROOST_EV_PRESENCE_OUT);
 * otherwise the sender's own bare JID (RFC 6120 §10.3), or the host when
 * `from` is a domain.  If `from` is the full JID of a fake session, that
 * session is the origin and ROOST_EV_PRE_STANZA fires first.  Returns
 * ROOST_HANDLED when a handler took it or it was delivered to a session,
 * ROOST_PASS when nobody did (the harness then applied the core's
 * default), or -ROOST_EINVAL when xml does not parse or a JID is invalid.
 * Sessions closed by a module meanwhile are freed before returning. */
int harness_inject(const char *from, const char *to, const char *xml);
/* The same for a stanza already parsed (the fuzzer's stream parser): st is
 * borrowed, and a copy of it is stamped and routed. */
int harness_inject_stanza(const char *from, const char *to,
                          const roost_stanza_t *st);

/* A nonza (roost_hook_nonza: a top-level element that is not a stanza,
 * e.g. XEP-0352 <active/>) from the bound session with full JID from.
 * Borrows el.  Runs its handler; without one the session is closed with
 * unsupported-stanza-type, as core/stream.c does.  Returns the handler's
 * verdict, ROOST_PASS, or -ROOST_EINVAL (no such session). */
int harness_nonza_inject(const char *from, const roost_stanza_t *el);

/* Captured output.  Lists are NULL-terminated arrays of serialised stanzas
 * (written as inside a jabber:client stream), oldest first, never NULL, and
 * valid until the next harness call that produces output or clears it. */
const char *const *harness_sent(void);
size_t harness_sent_count(void);
/* The i-th sent stanza as a tree (borrowed; NULL when out of range). */
roost_stanza_t *harness_sent_stanza(size_t i);
/* Per fake session (by full JID; an empty list for unknown JIDs). */
const char *const *harness_delivered(const char *jid);
size_t harness_delivered_count(const char *jid);
roost_stanza_t *harness_delivered_stanza(const char *jid, size_t i);
/* With on, a stanza for a fake session runs the ROOST_EV_DELIVER hooks
 * first, as the core does (HANDLED: the session does not get it; a
 * hook's roost_event_replace: the session captures the substitute); off
 * (the default) captures it directly.  Kept across harness_reset(). */
void harness_deliver_hooks(int on);
/* Forgets all captured output (sent and delivered). */
void harness_clear(void);

/* Condition element name of st's <error/> child ("service-unavailable"),
 * or NULL when st has none.  Borrows st. */
const char *harness_error_cond(const roost_stanza_t *st);

/* Advances the fake clock by msec and runs due timers in deadline order.
 * Returns how many fired. */
int harness_advance(uint64_t msec);
/* Active timers (all modules). */
int harness_timer_count(void);

/* Rosters.  The harness links core/roster.c and implements its host hooks
 * (core/roster.h): a user's roster is loaded on first use, from what is
 * stored for that user (nothing: an empty roster at version "0"), and
 * every change is persisted at once into an in-memory copy of the MAP
 * store "roster" (contact -> item, "" -> version) that tests inspect.
 *
 * harness_roster_preload stores kv (key, value, key, value, ..., NULL) for
 * user and loads the roster from it through roost_roster_load_entry, as
 * the core does at login; -ROOST_EEXIST when user's roster is already
 * loaded.  harness_roster_reload drops the loaded roster and loads it
 * again from what was persisted (a logout and login).
 *
 * harness_roster_unload drops user's loaded roster, keeping what was
 * persisted, as the core does when the account has no session and
 * nothing in flight: until the account is used again (a session added for
 * it, a stanza routed to it, or roost_roster_load_async), the roster
 * calls for it return NULL / -ROOST_ENOTFOUND, as in the core outside the
 * account's events.  -ROOST_ENOTFOUND when it was not loaded.
 *
 * roost_roster_load_async queues a job (run like storage jobs, at the end
 * of the driving call) that checks the account exists in the real
 * credential store (harness_account_add); fn gets 0 with the roster
 * loaded, else -ROOST_ENOTFOUND. */
int harness_roster_preload(const char *user, const char *const *kv);
int harness_roster_reload(const char *user);
int harness_roster_unload(const char *user);
/* Stored value of key for user, or NULL; borrowed until the next change. */
const char *harness_roster_stored(const char *user, const char *key);
size_t harness_roster_stored_count(const char *user);
/* Calls to roost_host_roster_persist() for user so far. */
int harness_roster_persist_count(const char *user);

/* Per-user state (roost_user_state): roost_user_data() runs the module's
 * load() on first use for a user; free() runs when the module is unloaded
 * (harness_unload, harness_reset). */

/* Storage.  The in-memory backend is opened on first use (a module's
 * roost_store_open() or harness_store()) and closed, forgetting all data,
 * by harness_reset(); unloading and loading a module again keeps the data
 * (a restart).  roost_store_async() queues the job: queued jobs run, work
 * then done, in submission order (including jobs their done callbacks
 * submit), at the end of every harness call that drives modules
 * (harness_inject, harness_session_add/remove, harness_advance), as the
 * core runs done callbacks on a later loop turn.  harness_unload() first
 * runs the module's pending jobs (the core drains them).
 *
 * harness_storage_hold(1) keeps jobs queued until harness_storage_run()
 * (which runs them all, returning how many ran) or harness_storage_hold(0)
 * followed by a driving call: this lets a test interleave events with a
 * job in flight.  harness_storage_pending() counts the queued jobs. */
void harness_storage_hold(int hold);
int harness_storage_run(void);
int harness_storage_pending(void);
/* A view of the vhost's store name (to preload or inspect what a module
 * stores); owned by the harness, closed by harness_reset().  NULL if no
 * host is set yet or the name is invalid. */
roost_store_t *harness_store(const char *name, roost_store_shape_t shape);
/* Drops user's per-user state of every module (their free() runs), as the
 * core does when the account has no session left; the next
 * roost_user_data() loads it again from storage.  Returns how many states
 * were dropped. */
int harness_user_drop(const char *user);

/* roost_host_is_admin() is true for these bare JIDs (none by default);
 * roost_session_addr() is "127.0.0.1" unless set. */
void harness_admin_add(const char *bare);
void harness_session_set_addr(roost_session_t *s, const char *addr);

/* Introspection of the host registry, for tests of the harness itself and
 * of modules that register things. */
int harness_hook_count(roost_event_t ev);
int harness_feature_count(void);
/* Account features plus identities (roost_add_account_feature/_identity)
 * registered and not yet removed. */
int harness_account_feature_count(void);
int harness_stream_feature_count(void);
/* Number of roost_log() calls at level so far (counted whatever
 * roost_log_level is). */
int harness_log_count(int level);
/* Successful roost_event_replace() calls since the last harness_reset():
 * how many times modules substituted an event's stanza. */
int harness_replace_count(void);

/* Before authentication (XEP-0077).  harness_preauth_add makes an
 * unauthenticated c2s session (no JID; roost_session_addr() is addr, or
 * 127.0.0.1 for NULL).  harness_preauth_inject feeds it one stanza as
 * core/conn.c does: an IQ whose payload has a roost_hook_preauth_iq
 * handler runs it (ev->origin = s, ev->from NULL, ev->to the host); a type
 * without a handler gets <bad-request/>, a handler that PASSes
 * <service-unavailable/>; anything else closes the session with
 * not-authorized (harness_preauth_closed).  Returns ROOST_HANDLED,
 * ROOST_PASS or -ROOST_EINVAL.  What the module delivers to s is captured
 * per session.  harness_preauth_close marks s gone (deliveries then fail)
 * while it stays allocated until harness_reset, as a held session would;
 * harness_preauth_holds counts roost_session_hold() minus releases. */
roost_session_t *harness_preauth_add(const char *addr);
int harness_preauth_inject(roost_session_t *s, const char *xml);
/* The same for a parsed stanza (borrowed; a copy is handled). */
int harness_preauth_inject_stanza(roost_session_t *s, const roost_stanza_t *st);
void harness_preauth_close(roost_session_t *s);
int harness_preauth_holds(const roost_session_t *s);
size_t harness_preauth_delivered_count(const roost_session_t *s);
roost_stanza_t *harness_preauth_delivered_stanza(const roost_session_t *s,
                                                 size_t i);
int harness_preauth_feature_count(void);

/* Accounts (roost/account.h): the real credential store (core/auth.c) on
 * the in-memory storage.  roost_account_* queue their work like storage
 * jobs (done runs at the end of the driving call); removal fires
 * ROOST_EV_USER_DELETED first (when the account exists), purges every
 * store of the user and the harness roster, runs done, then closes the
 * account's sessions with not-authorized.  harness_account_add creates an
 * account at once (0, -ROOST_EEXIST, -ROOST_EINVAL);
 * harness_account_check is 1 when password is the account's.
 * roost_host_account_count and _list read the accounts of the credential
 * store, queued like a storage job; roost_host_online_count and
 * roost_host_online_users see the distinct accounts among the fake
 * sessions that are not closing. */
int harness_account_add(const char *user, const char *password);
int harness_account_exists(const char *user);
int harness_account_check(const char *user, const char *password);

#endif /* ROOST_TEST_HARNESS_H */
