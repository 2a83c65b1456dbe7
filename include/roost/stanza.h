/* roost/stanza.h: XML element trees for stanzas.
 *
 * A stanza is a refcounted tree of elements living in one arena owned by its
 * root.  Every element pointer returned by these functions (children,
 * siblings) is valid as long as a reference to the root is held.  Only roots
 * are refcounted: roost_stanza_ref()/unref() on a child act on its root.
 *
 * Names are local names; namespaces are full URIs.  An element's namespace
 * is NULL when it inherits its parent's (builder default) and "" when it
 * is explicitly in no namespace (xmlns=""), so such documents round-trip.  Stanzas parsed from a
 * jabber:server stream are normalised to "jabber:client" (ROOST_NS_CLIENT).
 * Attribute names are either plain ("to") or "xml:lang"-style for the xml
 * namespace; other namespaced attributes are kept as "URI|local" and
 * serialised with a generated prefix, so unknown extensions round-trip.
 *
 * Ownership (HOUSE 9): pointer arguments are borrowed; functions returning a
 * new stanza return a reference the caller must roost_stanza_unref(). */
#ifndef ROOST_STANZA_H
#define ROOST_STANZA_H

#include <roost/common.h>

#define ROOST_NS_CLIENT      "jabber:client"
#define ROOST_NS_SERVER      "jabber:server"
#define ROOST_NS_COMPONENT   "jabber:component:accept"
#define ROOST_NS_STREAM      "http://etherx.jabber.org/streams"
#define ROOST_NS_STANZAS     "urn:ietf:params:xml:ns:xmpp-stanzas"
#define ROOST_NS_STREAMS     "urn:ietf:params:xml:ns:xmpp-streams"
#define ROOST_NS_TLS         "urn:ietf:params:xml:ns:xmpp-tls"
#define ROOST_NS_SASL        "urn:ietf:params:xml:ns:xmpp-sasl"
#define ROOST_NS_BIND        "urn:ietf:params:xml:ns:xmpp-bind"
#define ROOST_NS_SESSION     "urn:ietf:params:xml:ns:xmpp-session"
#define ROOST_NS_XML         "http://www.w3.org/XML/1998/namespace"
#define ROOST_NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define ROOST_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"

typedef struct roost_stanza roost_stanza_t;

typedef enum {
    ROOST_STANZA_OTHER = 0,
    ROOST_STANZA_MESSAGE,
    ROOST_STANZA_PRESENCE,
    ROOST_STANZA_IQ
} roost_stanza_kind_t;

/* RFC 6120 §8.3.3 defined conditions. */
typedef enum {
    ROOST_SE_NONE = 0,
    ROOST_SE_BAD_REQUEST,
    ROOST_SE_CONFLICT,
    ROOST_SE_FEATURE_NOT_IMPLEMENTED,
    ROOST_SE_FORBIDDEN,
    ROOST_SE_GONE,
    ROOST_SE_INTERNAL_SERVER_ERROR,
    ROOST_SE_ITEM_NOT_FOUND,
    ROOST_SE_JID_MALFORMED,
    ROOST_SE_NOT_ACCEPTABLE,
    ROOST_SE_NOT_ALLOWED,
    ROOST_SE_NOT_AUTHORIZED,
    ROOST_SE_POLICY_VIOLATION,
    ROOST_SE_RECIPIENT_UNAVAILABLE,
    ROOST_SE_REDIRECT,
    ROOST_SE_REGISTRATION_REQUIRED,
    ROOST_SE_REMOTE_SERVER_NOT_FOUND,
    ROOST_SE_REMOTE_SERVER_TIMEOUT,
    ROOST_SE_RESOURCE_CONSTRAINT,
    ROOST_SE_SERVICE_UNAVAILABLE,
    ROOST_SE_SUBSCRIPTION_REQUIRED,
    ROOST_SE_UNDEFINED_CONDITION,
    ROOST_SE_UNEXPECTED_REQUEST,
    ROOST_SE__COUNT
} roost_stanza_err_t;

/* New root element with a fresh arena; refcount 1.  ns may be NULL
 * (no namespace; inherits on serialisation). */
ROOST_API roost_stanza_t *roost_stanza_new(const char *ns, const char *name);
/* Adds a reference to el's root; returns el. */
ROOST_API roost_stanza_t *roost_stanza_ref(roost_stanza_t *el);
/* Drops a reference to el's root; frees the arena at zero.  NULL is ok. */
ROOST_API void roost_stanza_unref(roost_stanza_t *el);
/* Deep copy of el (and its subtree) as a new root, refcount 1. */
ROOST_API roost_stanza_t *roost_stanza_copy(const roost_stanza_t *el);

ROOST_API const char *roost_stanza_name(const roost_stanza_t *el);
ROOST_API const char *roost_stanza_ns(const roost_stanza_t *el);
/* message/presence/iq in jabber:client, else OTHER. */
ROOST_API roost_stanza_kind_t roost_stanza_kind(const roost_stanza_t *el);
ROOST_API roost_stanza_t *roost_stanza_parent(const roost_stanza_t *el);

/* Attribute value or NULL. */
ROOST_API const char *roost_stanza_attr(const roost_stanza_t *el,
                                        const char *name);
/* Sets (copies) or, with value NULL, removes an attribute. */
ROOST_API void roost_stanza_set_attr(roost_stanza_t *el, const char *name,
                                     const char *value);
/* Number of attributes, and the i-th one (0-based); for iteration. */
ROOST_API size_t roost_stanza_attr_count(const roost_stanza_t *el);
ROOST_API const char *roost_stanza_attr_at(const roost_stanza_t *el, size_t i,
                                           const char **value);

/* Element children.  ns or name NULL matches any. */
ROOST_API roost_stanza_t *roost_stanza_child(const roost_stanza_t *el,
                                             const char *ns, const char *name);
ROOST_API roost_stanza_t *roost_stanza_first_child(const roost_stanza_t *el);
ROOST_API roost_stanza_t *roost_stanza_next_sibling(const roost_stanza_t *el);

/* Appends a new child element; ns NULL means "same ns as el".  Returns the
 * child (owned by el's root). */
ROOST_API roost_stanza_t *
roost_stanza_add_child(roost_stanza_t *el, const char *ns, const char *name);
/* Appends a deep copy of src (from any tree) as the last child of el. */
ROOST_API roost_stanza_t *roost_stanza_add_copy(roost_stanza_t *el,
                                                const roost_stanza_t *src);
/* Appends text (len bytes, need not be NUL-terminated). */
ROOST_API void roost_stanza_add_text(roost_stanza_t *el, const char *text,
                                     size_t len);
/* Unlinks child from its parent (memory stays in the arena). */
ROOST_API void roost_stanza_remove(roost_stanza_t *child);
/* Concatenated direct text of el, NUL-terminated, owned by the arena; ""
 * when none. */
ROOST_API const char *roost_stanza_text(roost_stanza_t *el);
/* Text of the first child named ns/name, or NULL. */
ROOST_API const char *roost_stanza_child_text(roost_stanza_t *el,
                                              const char *ns, const char *name);

/* Serialises el and its subtree.  parent_ns is the default namespace in
 * force where it is written ("jabber:client" inside a c2s stream; NULL for a
 * standalone document): an xmlns attribute is written only where the
 * element's ns differs.  jabber:client and jabber:server count as equal.
 * Returns a NUL-terminated string the caller frees with roost_free(); *len
 * gets its length when len is not NULL. */
ROOST_API char *roost_stanza_serialize(const roost_stanza_t *el,
                                       const char *parent_ns, size_t *len);

/* Parses one complete XML document (for tests, storage and tools) under the
 * same restrictions as the stream parser.  NULL on malformed input. */
ROOST_API roost_stanza_t *roost_stanza_parse(const char *xml, size_t len);

/* An iq result for iq: same id, to = iq's from, from = iq's to. */
ROOST_API roost_stanza_t *roost_stanza_reply(const roost_stanza_t *iq);
/* An error reply to st (RFC 6120 §8.3): a copy of st with to/from swapped,
 * type="error" and an <error/> child with the condition's type, the
 * condition element and optional text.  For iq the payload is dropped. */
ROOST_API roost_stanza_t *roost_stanza_error(const roost_stanza_t *st,
                                             roost_stanza_err_t cond,
                                             const char *text);
/* Condition element name ("service-unavailable") and RFC 6120 error type
 * ("cancel") for cond. */
ROOST_API const char *roost_stanza_err_name(roost_stanza_err_t cond);
ROOST_API const char *roost_stanza_err_type(roost_stanza_err_t cond);

#endif /* ROOST_STANZA_H */
