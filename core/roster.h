/* core/roster.h: the roster data model behind roost/roster.h, and the two
 * hooks through which it reaches a host (the real one in core/user.c, a
 * fake one in tests/harness/).  No storage or sessions here: a roster is
 * a hash of items plus a version counter. */
#ifndef ROOST_CORE_ROSTER_H
#define ROOST_CORE_ROSTER_H

#include <roost/roster.h>

typedef struct roost_roster roost_roster_t;

roost_roster_t *roost_roster_new(void);
void roost_roster_free(roost_roster_t *r);
int roost_roster_size(const roost_roster_t *r);
/* Loads one stored entry (a key and value from the MAP store "roster":
 * contact -> item XML, "" -> version).  Ignores (and logs) a damaged one.
 * Thread-safe on distinct rosters (storage worker). */
void roost_roster_load_entry(roost_roster_t *r, const char *key,
                             const char *val, size_t len);
/* The storage form of an item, new string (roost_free). */
char *roost_roster_item_encode(const roost_roster_item_t *it);

/* Host hooks.  The loaded roster of user on m's vhost, or NULL. */
roost_roster_t *roost_host_roster(roost_mod_t *m, const char *user);
/* Persist key (a contact, or "" for the version) = value, or delete key
 * when value is NULL; write-behind, in call order. */
void roost_host_roster_persist(roost_mod_t *m, const char *user,
                               const char *key, const char *value);

#endif /* ROOST_CORE_ROSTER_H */
