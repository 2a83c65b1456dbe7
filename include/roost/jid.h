/* roost/jid.h: XMPP addresses (RFC 7622).
 *
 * A roost_jid_t holds the prepared (normalised) localpart, domainpart and
 * resourcepart of a JID plus its bare and full string forms.  Preparation
 * uses libidn's XMPP stringprep profiles (nodeprep, resourceprep) and
 * IDNA/nameprep for the domain, the way Prosody and ejabberd do, so that two
 * spellings of one address compare equal with strcmp() on the prepared
 * forms.  Each part is limited to 1023 bytes (RFC 7622 §3). */
#ifndef ROOST_JID_H
#define ROOST_JID_H

#include <roost/common.h>

#define ROOST_JID_PART_MAX 1023

typedef struct roost_jid roost_jid_t;

/* Parses and prepares s.  Returns a new JID (free with roost_jid_free) or
 * NULL when s is not a valid JID (the caller answers jid-malformed). */
ROOST_API roost_jid_t *roost_jid_new(const char *s);
/* Builds a JID from parts (node and resource may be NULL); each part is
 * prepared.  NULL when a part is invalid. */
ROOST_API roost_jid_t *roost_jid_from_parts(const char *node,
                                            const char *domain,
                                            const char *resource);
ROOST_API roost_jid_t *roost_jid_dup(const roost_jid_t *j);
ROOST_API void roost_jid_free(roost_jid_t *j);

/* Parts; node and resource are NULL when absent. */
ROOST_API const char *roost_jid_node(const roost_jid_t *j);
ROOST_API const char *roost_jid_domain(const roost_jid_t *j);
ROOST_API const char *roost_jid_resource(const roost_jid_t *j);
/* "node@domain" (or "domain"), and the full form with "/resource". */
ROOST_API const char *roost_jid_bare(const roost_jid_t *j);
ROOST_API const char *roost_jid_full(const roost_jid_t *j);

/* Prepares one part into a new string (roost_free), or NULL if invalid. */
ROOST_API char *roost_jid_prep_node(const char *node);
ROOST_API char *roost_jid_prep_domain(const char *domain);
ROOST_API char *roost_jid_prep_resource(const char *resource);

/* Both prepared forms equal (full compare), or bare parts equal. */
ROOST_API int roost_jid_eq(const roost_jid_t *a, const roost_jid_t *b);
ROOST_API int roost_jid_bare_eq(const roost_jid_t *a, const roost_jid_t *b);

#endif /* ROOST_JID_H */
