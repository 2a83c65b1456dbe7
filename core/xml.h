/* core/xml.h: the restricted, incremental XML parser under the stream layer.
 *
 * Wraps expat with namespace processing.  Feeds arbitrary byte chunks,
 * reports the stream header (the depth-0 start tag), each complete depth-1
 * element as a roost_stanza_t, and the stream close.  Refuses DOCTYPE,
 * entity declarations/references other than the predefined five, comments
 * and processing instructions (RFC 6120 §11.1: "restricted-xml"), and
 * enforces limits (stanza bytes, depth, attributes per element) with
 * "policy-violation".  Malformed XML and NUL bytes give "not-well-formed",
 * invalid UTF-8 "unsupported-encoding".  Not for stream semantics: checking the root's name,
 * namespace or version is the caller's job (core/stream.c). */
#ifndef ROOST_CORE_XML_H
#define ROOST_CORE_XML_H

#include <roost/stanza.h>

typedef struct roost_xml roost_xml_t;

typedef struct {
    size_t max_stanza; /* bytes of one depth-1 element, start to end tag */
    int max_depth;     /* element nesting below the stream root */
    int max_attrs;     /* attributes (incl. namespace decls) per element */
} roost_xml_limits_t;

/* Callbacks.  A non-zero return from stream_open or stanza stops parsing
 * right after that event (for STARTTLS and stream restarts); the rest of
 * the chunk is left unconsumed (see roost_xml_feed). */
typedef struct {
    /* Root start tag.  ns/name: the element's namespace URI and local
     * name; attrs: NULL-terminated name,value pairs, with namespaced
     * attributes named "URI|local" except xml:lang which is "xml:lang";
     * default_ns: the default namespace (xmlns="...") declared on the root,
     * or NULL. */
    int (*stream_open)(void *ud, const char *ns, const char *name,
                       const char *const *attrs, const char *default_ns);
    /* A complete depth-1 element.  The callee takes the reference. */
    int (*stanza)(void *ud, roost_stanza_t *st);
    /* The root's end tag. */
    void (*stream_close)(void *ud);
    /* A fatal error; cond is an RFC 6120 §4.9.3 stream error condition
     * ("not-well-formed", "restricted-xml", "policy-violation",
     * "unsupported-encoding"), text a short explanation.  Called once;
     * later feeds return -ROOST_EINVAL without calling anything. */
    void (*error)(void *ud, const char *cond, const char *text);
} roost_xml_cb_t;

/* New parser.  limits and cb are copied.  Stanzas from a root whose
 * default namespace is jabber:server are normalised to jabber:client. */
roost_xml_t *roost_xml_new(const roost_xml_limits_t *limits,
                           const roost_xml_cb_t *cb, void *ud);
void roost_xml_free(roost_xml_t *x);
/* Feeds len bytes.  Returns 0 when the whole chunk was consumed (callbacks
 * may have fired), ROOST_EAGAIN (positive) when a callback asked to stop:
 * *consumed is then the number of bytes up to and including the element
 * that stopped it, and the caller re-feeds the rest after roost_xml_reset()
 * or later; -ROOST_EINVAL after an error (error callback already called). */
int roost_xml_feed(roost_xml_t *x, const char *buf, size_t len,
                   size_t *consumed);
/* Forgets all state so that a new stream header is expected (stream
 * restart after STARTTLS or SASL, RFC 6120 §4.3.3).  Safe to call (as is
 * roost_xml_free) from inside a callback: it then takes effect when the
 * feed returns, and the feed stops at that event.  Calling roost_xml_feed
 * on the same parser from a callback is not supported.  The limits apply
 * to the stream header too (its namespace declarations count as
 * attributes). */
void roost_xml_reset(roost_xml_t *x);
/* Changes the stanza limit (and the memory caps that follow it) from the
 * next byte on: a stream lifts its pre-authentication limit once the
 * client has authenticated.  Safe from inside a callback. */
void roost_xml_set_max_stanza(roost_xml_t *x, size_t max_stanza);
/* Frees expat's parser (about 12 KiB) while the stream is idle: the root
 * is open, no stanza is in progress and every byte fed so far has been
 * parsed and consumed.  The next roost_xml_feed() builds a parser again,
 * with the root's qualified name and namespace declarations restored, so
 * nothing the peer can observe changes (stanzas, limits, errors, the
 * stream close).  Not from inside a callback.  Returns 1 if x holds no
 * parser now, 0 if it had to keep it (not idle, or a root that could not
 * be kept). */
int roost_xml_release(roost_xml_t *x);
/* Appends " name='value'" to the NUL-terminated buf (size bytes), value
 * escaped for an attribute; what does not fit is cut (stream headers and
 * dialback elements we write by hand echo peer values). */
void roost_xml_append_attr(char *buf, size_t size, const char *name,
                           const char *value);
/* Approximate heap bytes held by the parser (for memory limits). */
size_t roost_xml_memory(const roost_xml_t *x);

#endif /* ROOST_CORE_XML_H */
