/* roost/roster.h: the roster of a local account (RFC 6121 §2), a core
 * service shared by the modules that speak about it (mod_roster for the
 * jabber:iq:roster protocol, mod_presence for subscriptions).
 *
 * The core loads a user's roster into memory before any event for that
 * user fires and keeps it while the user has sessions or stanzas in
 * flight (DESIGN.md, "State and storage"), so these calls never block and
 * never fail for want of storage.  Changes are persisted write-behind
 * through the storage worker, in order, and bump the roster version
 * (XEP-0237).  Call them only from event handlers concerning that user
 * (the core guarantees the state is loaded there), or from the callback
 * of roost_roster_load_async(); elsewhere they return NULL /
 * -ROOST_ENOTFOUND. */
#ifndef ROOST_ROSTER_H
#define ROOST_ROSTER_H

#include <roost/module.h>

typedef enum {
    ROOST_SUB_NONE = 0,
    ROOST_SUB_TO,   /* the user receives the contact's presence */
    ROOST_SUB_FROM, /* the contact receives the user's presence */
    ROOST_SUB_BOTH
} roost_sub_t;

typedef struct {
    const char *jid;  /* bare JID of the contact, prepared */
    const char *name; /* handle, or NULL */
    roost_sub_t sub;
    int ask;                   /* outbound subscribe pending (ask=) */
    int pending_in;            /* inbound subscribe awaiting an answer */
    int approved;              /* pre-approved (RFC 6121 §3.4) */
    int hidden;                /* not in the user's roster: only records
                                * an inbound request ("None + Pending In"
                                * without an item, RFC 6121 Appendix A);
                                * never shown or pushed */
    const char *const *groups; /* NULL-terminated, may be NULL */
} roost_roster_item_t;

/* Subscription names as in the protocol ("none", "to", "from", "both"). */
ROOST_API const char *roost_sub_name(roost_sub_t sub);
/* "none"/"to"/"from"/"both" -> value, or -1. */
ROOST_API int roost_sub_parse(const char *name);

/* The item for contact (a bare JID, prepared) or NULL.  The pointer is
 * valid until the next change to this roster. */
ROOST_API const roost_roster_item_t *
roost_roster_item(roost_mod_t *m, const char *user, const char *contact);
/* Calls fn for every item (order unspecified); fn returns non-zero to
 * stop.  Returns the number of items, or -ROOST_ENOTFOUND when the
 * user's state is not loaded. */
ROOST_API int roost_roster_items(roost_mod_t *m, const char *user,
                                 int (*fn)(void *arg,
                                           const roost_roster_item_t *it),
                                 void *arg);
/* The current version string (XEP-0237), or NULL if not loaded. */
ROOST_API const char *roost_roster_version(roost_mod_t *m, const char *user);

/* Adds or replaces the item it->jid with a copy of *it.  Returns 0,
 * -ROOST_ELIMIT when adding past max (0 = no limit), -ROOST_EINVAL for a
 * bad item, -ROOST_ENOTFOUND when not loaded.  Persists write-behind. */
ROOST_API int roost_roster_set(roost_mod_t *m, const char *user,
                               const roost_roster_item_t *it, int max);
/* Removes contact; 0 or -ROOST_ENOTFOUND (no such item or not loaded). */
ROOST_API int roost_roster_remove(roost_mod_t *m, const char *user,
                                  const char *contact);

/* Roster push (RFC 6121 §2.1.6) of contact's current item (subscription
 * "remove" if it is gone) to every session of user that has requested the
 * roster (roost_session_roster_requested).  Nothing for a hidden item. */
ROOST_API void roost_roster_push(roost_mod_t *m, const char *user,
                                 const char *contact);
/* Marks s as an "interested resource" (RFC 6121 §2.1.6): it asked for the
 * roster, so it gets pushes. */
ROOST_API void roost_session_set_roster_requested(roost_session_t *s);
ROOST_API int roost_session_roster_requested(const roost_session_t *s);

/* Reading the roster of an account that may have no session (XEP-0133
 * get-user-roster, roostctl-like tools).  Loads user's state as the core
 * does when a stanza arrives for the account (or finds it loaded), then
 * calls fn(m, arg, result) on the loop: 0 when the account exists, and
 * for the duration of fn every call above works for user as in a handler
 * of an event for that user (reads, and changes, which are persisted and
 * pushed as usual); -ROOST_ENOTFOUND when there is no such account (or
 * its state could not be read).  After fn returns the state may be
 * dropped: keep nothing that points into it.  fn never runs before this
 * call returns.  user: a prepared localpart of m's vhost (copied).  The
 * core drains these reads before unloading a module, so fn never runs
 * after unload. */
typedef void (*roost_roster_loaded_fn)(roost_mod_t *m, void *arg, int result);
ROOST_API void roost_roster_load_async(roost_mod_t *m, const char *user,
                                       roost_roster_loaded_fn fn, void *arg);

/* Serialises it as <item xmlns='jabber:iq:roster'/> under parent
 * (protocol view: subscription, ask, name, groups; not our private
 * flags). */
ROOST_API roost_stanza_t *roost_roster_item_xml(roost_stanza_t *parent,
                                                const roost_roster_item_t *it);

#endif /* ROOST_ROSTER_H */
