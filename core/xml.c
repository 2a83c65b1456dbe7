/* core/xml.c: the restricted, incremental XML parser (see core/xml.h), and
 * roost_stanza_parse(), which runs the same parser over one document.
 *
 * expat does the tokenising, with namespace processing ('\1' separates URI
 * and local name: XML 1.0 cannot contain that character, not even as a
 * reference, so no name or URI can forge a split) and forced UTF-8.  Our
 * handlers refuse DTDs, comments and processing instructions, enforce the
 * limits and build each depth-1 element straight into a roost_stanza_t.
 *
 * Positions.  Every event (stream header, stanza, stream close, error)
 * carries the stream offset where it ends.  x->pos is how far the caller
 * has consumed, x->fed how far expat has been given data.  An event is
 * delivered only when it ends within the bytes of the current feed; when a
 * callback asks to stop, expat is suspended (so it does not race ahead) and
 * the caller learns exactly how many bytes were consumed.  Whatever expat
 * still holds is what the caller re-feeds: those bytes are not handed to
 * expat a second time, expat is resumed instead.  roost_xml_reset() throws
 * it all away for a stream restart.
 *
 * Idle release.  Most streams spend most of their life between stanzas, and
 * an expat parser holds about 12 KiB (buffer, name tables, tag stack).
 * roost_xml_release() frees it when nothing is pending: the root is open
 * (depth 1), no stanza is being built, and expat has parsed every byte it
 * was given up to the end of an event or whitespace.  What the stream
 * still needs from it is the root's qualified name (its end tag must
 * match) and the namespace declarations made on the root, which stanzas
 * inherit; both are kept as a synthetic start tag ("replay"), built when
 * the root was parsed.  The next feed creates a parser, parses the replay
 * with our handlers silenced, and continues: stanzas, limits, errors and
 * the stream close behave as on the original parser.  Offsets stay stream
 * offsets: x->xoff maps expat's byte index (which counts the replay) back
 * to the stream.  With no replay (expat built without XML_CONTEXT_BYTES,
 * or a root too big to keep) the parser is never released.
 *
 * Memory.  expat's heap use is counted through a memory-handling suite and
 * capped (distinct names accumulate in expat's tables for the life of a
 * stream, so a hostile peer could otherwise grow them without bound), the
 * bytes since the last depth <= 1 event are capped by max_stanza, and the
 * event queue never holds more than a few entries.
 *
 * Not for stream semantics (names, versions, features): core/stream.c. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <expat.h>

#include "xml.h"

#define XML_NS_SEP '\1'
/* Limits for roost_stanza_parse(): the input is bounded by the caller,
 * these only have to admit anything the stream parser admits after a
 * serialise round trip (which may add one declaration per attribute). */
#define XML_DOC_MAX_DEPTH 256
#define XML_DOC_MAX_ATTRS 1024
/* expat heap allowance beyond the stanza limit: its buffer can hold about
 * two stanzas' worth while a big token is pending, plus name tables. */
#define XML_MEM_SLACK (1024 * 1024)
/* Estimated arena cost of what a stanza's tree is built from (the real
 * layout is private to core/stanza.c; these are upper bounds for x86-64).
 * A stanza of many tiny elements costs far more in nodes than in bytes,
 * so the tree gets a budget of its own: XML_TREE_FACTOR x max_stanza. */
#define XML_ELEMENT_COST 128
#define XML_ATTR_COST    48
#define XML_TREE_FACTOR  16
/* Largest synthetic root tag kept for an idle release; a stream whose
 * root declares more than this keeps its parser. */
#define XML_REPLAY_MAX 1024

typedef enum { XEV_OPEN, XEV_STANZA, XEV_CLOSE, XEV_ERROR } xml_ev_type_t;

typedef struct xml_ev {
    xml_ev_type_t type;
    int64_t pos;        /* stream offset just past the event */
    roost_stanza_t *st; /* OPEN: the header as an element; STANZA */
    const char *cond;   /* ERROR: static strings */
    const char *text;
} xml_ev_t;

struct roost_xml {
    XML_Parser p;
    roost_xml_limits_t lim;
    roost_xml_cb_t cb;
    void *ud;
    int doc;    /* roost_stanza_parse: the root is the stanza */
    size_t mem; /* expat heap bytes (its suite counts here) */
    size_t mem_cap;

    int64_t fed;          /* bytes handed to expat since the reset */
    int64_t pos;          /* bytes the caller has consumed */
    int64_t limit;        /* end of the bytes of the current feed */
    int64_t mark;         /* end of the last event at depth <= 1 */
    int64_t idle;         /* ... or of whitespace after it */
    int64_t stanza_start; /* offset of the current stanza's '<' */

    int depth;           /* open elements, the stream root being 1 */
    roost_stanza_t *cur; /* element being built; NULL outside stanzas */
    size_t tree;         /* estimated arena bytes of cur's stanza */
    size_t tree_cap;
    char *default_ns; /* xmlns of the stream root (heap) */
    int server;       /* ... which is jabber:server (1) or
                       * jabber:component:accept (2, XEP-0114) */
    int ndecl;        /* namespace declarations on the next tag */
    int decl_default; /* ... one of which is xmlns="..." */
    const char *decl_default_uri;

    int suspended; /* expat is suspended with bytes left to parse */
    int stopped;   /* a callback asked to stop during this feed */
    int64_t stop_pos;
    int dead;          /* expat has failed: an error event is queued */
    int failed;        /* the error callback has run */
    int in_cb;         /* inside a user callback */
    int in_expat;      /* inside XML_Parse/XML_ResumeParser */
    int reset_pending; /* roost_xml_reset() called from a callback */
    int free_pending;  /* roost_xml_free() called from a callback */

    int u8_need;                /* UTF-8 continuation bytes still expected */
    unsigned char u8_lo, u8_hi; /* bounds of the next continuation byte */
    int64_t u8_bad;             /* 1 + offset of the first invalid UTF-8 byte */

    char *replay;      /* the root as a start tag: qname + ns decls */
    size_t replay_len; /* ... 0 while not (yet) available */
    size_t replay_cap;
    int replay_bad; /* the root could not be captured */
    int replaying;  /* parsing the replay: handlers stay silent */
    int64_t xoff;   /* stream offset of expat's byte index 0 */

    char *slab;       /* expat's first allocations (see xml_mem_malloc) */
    size_t slab_used; /* bytes of it handed out */

    xml_ev_t *q; /* events not yet deliverable */
    size_t qhead, qlen, qcap;
    char *scratch; /* name splitting */
    size_t scratch_cap;
};

/* --- expat's memory, counted per parser --- */

typedef union xml_mem_hdr {
    struct {
        size_t *counter;
        size_t size;
    } h;
    max_align_t align;
} xml_mem_hdr_t;

/* A stream parser's first XML_SLAB bytes of expat memory (its parser
 * struct, name tables, buffers: about 11 KiB for a c2s stream) come from
 * one block, carved with a bump pointer; frees inside it are no-ops and
 * the block goes when the parser does.  A parser is then one malloc, not
 * thirty, which makes the rebuild after an idle release cheap, and the
 * parser a stream releases leaves one contiguous hole of whole pages
 * rather than thirty small ones between long-lived allocations (which
 * malloc could not give back).  What does not fit goes to the heap. */
#define XML_SLAB      (16384 - 2 * sizeof(size_t))
#define XML_MEM_SLAB  ((size_t)1 << (sizeof(size_t) * 8 - 1))
#define XML_MEM_ALIGN sizeof(xml_mem_hdr_t)

/* The parser whose expat is running on this thread (allocation calls carry
 * no context); each heap block then remembers its counter for
 * realloc/free. */
static __thread roost_xml_t *xml_mem_current;

static void *
xml_mem_malloc(size_t n)
{
    roost_xml_t *x = xml_mem_current;
    xml_mem_hdr_t *h;

    if (x != NULL && x->slab != NULL && n < XML_SLAB) {
        size_t need = sizeof(*h) +
                      (n + XML_MEM_ALIGN - 1) / XML_MEM_ALIGN * XML_MEM_ALIGN;

        if (need <= XML_SLAB - x->slab_used) {
            h = (xml_mem_hdr_t *)(x->slab + x->slab_used);
            x->slab_used += need;
            h->h.counter = NULL;
            h->h.size = n | XML_MEM_SLAB;
            return h + 1;
        }
    }
    h = roost_xmalloc(sizeof(*h) + n);
    h->h.counter = x != NULL ? &x->mem : NULL;
    h->h.size = n;
    if (h->h.counter != NULL)
        *h->h.counter += n;
    return h + 1;
}

static void
xml_mem_free(void *ptr)
{
    xml_mem_hdr_t *h;

    if (ptr == NULL)
        return;
    h = (xml_mem_hdr_t *)ptr - 1;
    if (h->h.size & XML_MEM_SLAB)
        return; /* the slab goes as a whole */
    if (h->h.counter != NULL)
        *h->h.counter -= h->h.size;
    roost_free(h);
}

static void *
xml_mem_realloc(void *ptr, size_t n)
{
    xml_mem_hdr_t *h;

    if (ptr == NULL)
        return xml_mem_malloc(n);
    h = (xml_mem_hdr_t *)ptr - 1;
    if (h->h.size & XML_MEM_SLAB) {
        size_t old = h->h.size & ~XML_MEM_SLAB;
        void *r;

        if (n <= old)
            return ptr;
        r = xml_mem_malloc(n);
        memcpy(r, ptr, old);
        return r;
    }
    if (h->h.counter != NULL)
        *h->h.counter -= h->h.size;
    h = roost_xrealloc(h, sizeof(*h) + n);
    h->h.size = n;
    if (h->h.counter != NULL)
        *h->h.counter += n;
    return h + 1;
}

static const XML_Memory_Handling_Suite xml_mem_suite = {
    xml_mem_malloc, xml_mem_realloc, xml_mem_free};

/* --- events --- */

static void
xml_ev_discard(xml_ev_t *ev)
{
    if (ev->st != NULL)
        roost_stanza_unref(ev->st);
}

static void
xml_queue_clear(roost_xml_t *x)
{
    for (size_t i = 0; i < x->qlen; i++)
        xml_ev_discard(&x->q[x->qhead + i]);
    x->qhead = x->qlen = 0;
}

/* Suspends expat when called from one of its handlers (and it is not
 * already suspended or aborted). */
static void
xml_suspend(roost_xml_t *x)
{
    XML_ParsingStatus ps;

    if (!x->in_expat)
        return;
    XML_GetParsingStatus(x->p, &ps);
    if (ps.parsing == XML_PARSING)
        XML_StopParser(x->p, XML_TRUE);
}

/* Runs the callback for ev (whose references it takes).  A stop request,
 * or a reset/free from inside the callback, stops the feed at ev. */
static void
xml_deliver(roost_xml_t *x, xml_ev_t *ev)
{
    int stop = 0;

    if (x->failed) {
        xml_ev_discard(ev);
        return;
    }
    x->in_cb = 1;
    switch (ev->type) {
    case XEV_OPEN: {
        size_t n = roost_stanza_attr_count(ev->st), i;
        const char **attrs = roost_xmalloc((2 * n + 1) * sizeof(*attrs));

        for (i = 0; i < n; i++)
            attrs[2 * i] = roost_stanza_attr_at(ev->st, i, &attrs[2 * i + 1]);
        attrs[2 * n] = NULL;
        if (x->cb.stream_open != NULL)
            stop = x->cb.stream_open(x->ud, roost_stanza_ns(ev->st),
                                     roost_stanza_name(ev->st),
                                     (const char *const *)attrs, x->default_ns);
        roost_free(attrs);
        roost_stanza_unref(ev->st);
        break;
    }
    case XEV_STANZA:
        if (x->cb.stanza != NULL)
            stop = x->cb.stanza(x->ud, ev->st);
        else
            roost_stanza_unref(ev->st);
        break;
    case XEV_CLOSE:
        if (x->cb.stream_close != NULL)
            x->cb.stream_close(x->ud);
        break;
    case XEV_ERROR:
        x->failed = 1;
        if (x->cb.error != NULL)
            x->cb.error(x->ud, ev->cond, ev->text);
        break;
    }
    x->in_cb = 0;
    if ((stop || x->reset_pending || x->free_pending) && !x->failed) {
        x->stopped = 1;
        x->stop_pos = ev->pos;
    }
}

/* An event from a handler (or after a parse): delivered now when it is
 * within the current feed and nothing is waiting before it, else queued;
 * either way expat is suspended once the feed has to end. */
static void
xml_emit(roost_xml_t *x, xml_ev_type_t type, int64_t pos, roost_stanza_t *st,
         const char *cond, const char *text)
{
    xml_ev_t ev = {type, pos, st, cond, text};

    if (x->qlen == 0 && !x->stopped && pos <= x->limit) {
        xml_deliver(x, &ev);
        if (x->stopped || x->failed)
            xml_suspend(x);
        return;
    }
    if (x->qhead + x->qlen == x->qcap) {
        if (x->qhead > 0) {
            memmove(x->q, x->q + x->qhead, x->qlen * sizeof(*x->q));
            x->qhead = 0;
        } else {
            x->qcap = x->qcap ? x->qcap * 2 : 4;
            x->q = roost_xrealloc(x->q, x->qcap * sizeof(*x->q));
        }
    }
    x->q[x->qhead + x->qlen++] = ev;
    xml_suspend(x);
}

/* Delivers queued events that end within the current feed. */
static void
xml_drain(roost_xml_t *x)
{
    while (x->qlen > 0 && !x->stopped && !x->failed &&
           x->q[x->qhead].pos <= x->limit) {
        xml_ev_t ev = x->q[x->qhead];

        x->qhead++;
        x->qlen--;
        xml_deliver(x, &ev);
    }
    if (x->qlen == 0)
        x->qhead = 0;
}

/* Fatal error at pos: expat is abandoned (aborted if we are inside it),
 * the stanza being built dropped, the error event emitted. */
static void
xml_fail(roost_xml_t *x, const char *cond, const char *text, int64_t pos)
{
    XML_ParsingStatus ps;

    if (x->dead)
        return;
    x->dead = 1;
    if (x->in_expat) {
        XML_GetParsingStatus(x->p, &ps);
        if (ps.parsing != XML_FINISHED)
            XML_StopParser(x->p, XML_FALSE);
    }
    roost_stanza_unref(x->cur);
    x->cur = NULL;
    if (pos > x->fed)
        pos = x->fed;
    xml_emit(x, XEV_ERROR, pos, NULL, cond, text);
}

/* --- expat handlers --- */

/* Stream offset of the current event's start (expat's index counts a
 * replayed root too). */
static int64_t
xml_event_start(roost_xml_t *x)
{
    return (int64_t)XML_GetCurrentByteIndex(x->p) + x->xoff;
}

static int64_t
xml_event_end(roost_xml_t *x)
{
    return xml_event_start(x) + XML_GetCurrentByteCount(x->p);
}

/* Appends n bytes to the replay being built; over XML_REPLAY_MAX the
 * stream simply keeps its parser. */
static void
xml_replay_add(roost_xml_t *x, const char *s, size_t n)
{
    if (x->replay_bad)
        return;
    if (x->replay_len + n > XML_REPLAY_MAX) {
        x->replay_bad = 1;
        return;
    }
    if (x->replay_len + n > x->replay_cap) {
        x->replay_cap = x->replay_len + n < 128 ? 128 : x->replay_len + n;
        x->replay = roost_xrealloc(x->replay, x->replay_cap); /* xml_clear */
    }
    memcpy(x->replay + x->replay_len, s, n);
    x->replay_len += n;
}

/* Appends " xmlns[:prefix]='uri'" (uri escaped) for a root declaration. */
static void
xml_replay_decl(roost_xml_t *x, const char *prefix, const char *uri)
{
    xml_replay_add(x, " xmlns", 6);
    if (prefix != NULL) {
        xml_replay_add(x, ":", 1);
        xml_replay_add(x, prefix, strlen(prefix));
    }
    xml_replay_add(x, "='", 2);
    for (const char *p = uri != NULL ? uri : ""; *p != '\0'; p++) {
        switch (*p) {
        case '&': xml_replay_add(x, "&amp;", 5); break;
        case '<': xml_replay_add(x, "&lt;", 4); break;
        case '\'': xml_replay_add(x, "&apos;", 6); break;
        /* Literal whitespace would be normalised to a space. */
        case '\t': xml_replay_add(x, "&#9;", 4); break;
        case '\n': xml_replay_add(x, "&#10;", 5); break;
        case '\r': xml_replay_add(x, "&#13;", 5); break;
        default: xml_replay_add(x, p, 1); break;
        }
    }
    xml_replay_add(x, "'", 1);
}

/* Splits expat's "URI\1local" into the scratch buffer; *ns is NULL for a
 * name without namespace. */
static const char *
xml_split(roost_xml_t *x, const char *name, const char **ns)
{
    const char *sep = strchr(name, XML_NS_SEP);
    size_t n = strlen(name) + 1;

    *ns = NULL;
    if (sep == NULL)
        return name;
    if (n > x->scratch_cap) {
        x->scratch_cap = n < 64 ? 64 : n;
        x->scratch = roost_xrealloc(x->scratch, x->scratch_cap);
    }
    memcpy(x->scratch, name, n);
    x->scratch[sep - name] = '\0';
    *ns = x->scratch;
    return x->scratch + (sep - name) + 1;
}

/* Our attribute name for an expat one: "local", "xml:local" for the xml
 * namespace, "URI|local" otherwise.  Points into the scratch buffer. */
static const char *
xml_attr_name(roost_xml_t *x, const char *name)
{
    const char *ns, *local = xml_split(x, name, &ns);

    if (ns == NULL)
        return name;
    if (strcmp(ns, ROOST_NS_XML) == 0) {
        memmove(x->scratch + 4, local, strlen(local) + 1);
        memcpy(x->scratch, "xml:", 4);
    } else {
        x->scratch[local - 1 - x->scratch] = '|'; /* where the \1 was */
    }
    return x->scratch;
}

/* Completes the replay with the root's qualified name, taken from the raw
 * start tag (expat reports names resolved, without their prefix). */
static void
xml_replay_root(roost_xml_t *x)
{
    int offset = 0, size = 0, count = XML_GetCurrentByteCount(x->p);
    const char *in = XML_GetInputContext(x->p, &offset, &size);
    char *decls;
    size_t ndecls, n = 0;

    if (x->doc)
        return;
    if (in == NULL || count < 2 || offset < 0 || offset + count > size ||
        in[offset] != '<')
        x->replay_bad = 1;
    if (x->replay_bad) {
        roost_free(x->replay);
        x->replay = NULL;
        x->replay_len = x->replay_cap = 0;
        return;
    }
    in += offset + 1;
    while ((int)n < count - 1 && in[n] != ' ' && in[n] != '\t' &&
           in[n] != '\r' && in[n] != '\n' && in[n] != '/' && in[n] != '>')
        n++;
    /* The declarations were collected first: put the name before them. */
    ndecls = x->replay_len;
    decls = roost_xmalloc(ndecls + 1);
    if (ndecls > 0)
        memcpy(decls, x->replay, ndecls);
    x->replay_len = 0;
    xml_replay_add(x, "<", 1);
    xml_replay_add(x, in, n);
    xml_replay_add(x, decls, ndecls);
    xml_replay_add(x, ">", 1);
    roost_free(decls);
    if (x->replay_bad) {
        roost_free(x->replay);
        x->replay = NULL;
        x->replay_len = x->replay_cap = 0;
        return;
    }
    /* Kept for the life of the stream: no slack. */
    x->replay = roost_xrealloc(x->replay, x->replay_len);
    x->replay_cap = x->replay_len;
}

static void XMLCALL
xml_on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    roost_xml_t *x = ud;

    if (x->replaying)
        return;
    if (x->depth == 0 && !x->doc)
        xml_replay_decl(x, prefix, uri);
    x->ndecl++;
    if (prefix == NULL) {
        x->decl_default = 1;
        x->decl_default_uri = uri;
    }
}

static void XMLCALL
xml_on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    roost_xml_t *x = ud;
    int64_t here = xml_event_start(x), end = xml_event_end(x);
    const char *ns, *local;
    int nattrs = 0, undeclared, root;
    roost_stanza_t *el;

    if (x->replaying) {
        /* The root again, after an idle release: already checked and
         * reported once. */
        x->depth++;
        return;
    }
    if (x->dead)
        return;
    undeclared = x->decl_default &&
                 (x->decl_default_uri == NULL || *x->decl_default_uri == '\0');
    for (int i = 0; atts[i] != NULL; i += 2)
        nattrs++;
    x->depth++;
    root = x->depth == 1;
    if (nattrs + x->ndecl > x->lim.max_attrs) {
        xml_fail(x, "policy-violation", "too many attributes", end);
        return;
    }
    if (!root && x->depth - 1 > x->lim.max_depth) {
        xml_fail(x, "policy-violation", "elements nested too deeply", end);
        return;
    }
    if (root) {
        xml_replay_root(x);
        roost_free(x->default_ns);
        x->default_ns = NULL;
        if (x->decl_default && !undeclared)
            x->default_ns = roost_xstrdup(x->decl_default_uri);
        x->server = x->default_ns == NULL                            ? 0
                    : strcmp(x->default_ns, ROOST_NS_SERVER) == 0    ? 1
                    : strcmp(x->default_ns, ROOST_NS_COMPONENT) == 0 ? 2
                                                                     : 0;
    }
    x->ndecl = 0;
    x->decl_default = 0;
    x->decl_default_uri = NULL;

    local = xml_split(x, name, &ns);
    if (ns != NULL && x->server &&
        strcmp(ns, x->server == 1 ? ROOST_NS_SERVER : ROOST_NS_COMPONENT) == 0)
        ns = ROOST_NS_CLIENT;
    if (x->depth == 2) {
        x->stanza_start = here;
        x->tree = 0;
        el = roost_stanza_new(ns != NULL ? ns : undeclared ? "" : NULL, local);
    } else if (root) {
        el = roost_stanza_new(ns, local);
    } else {
        if (ns == NULL)
            ns = roost_stanza_ns(x->cur) != NULL ? "" : NULL;
        el = roost_stanza_add_child(x->cur, ns, local);
    }
    x->tree += XML_ELEMENT_COST + strlen(name);
    for (int i = 0; atts[i] != NULL; i += 2) {
        x->tree += XML_ATTR_COST + strlen(atts[i]) + strlen(atts[i + 1]);
        roost_stanza_set_attr(el, xml_attr_name(x, atts[i]), atts[i + 1]);
    }

    if (root) {
        x->mark = x->idle = end;
        xml_emit(x, XEV_OPEN, end, el, NULL, NULL);
        return;
    }
    x->cur = el;
    if (end - x->stanza_start > (int64_t)x->lim.max_stanza ||
        x->tree > x->tree_cap)
        xml_fail(x, "policy-violation", "stanza too large", end);
}

static void XMLCALL
xml_on_end(void *ud, const XML_Char *name)
{
    roost_xml_t *x = ud;
    int64_t end = xml_event_end(x);
    roost_stanza_t *el = x->cur;

    if (x->dead)
        return;
    x->depth--;
    if (x->depth == 0) {
        x->mark = x->idle = end;
        xml_emit(x, XEV_CLOSE, end, NULL, NULL, NULL);
        return;
    }
    x->cur = roost_stanza_parent(el);
    if (x->depth > 1)
        return;
    x->cur = NULL;
    if (end - x->stanza_start > (int64_t)x->lim.max_stanza) {
        roost_stanza_unref(el);
        xml_fail(x, "policy-violation", "stanza too large", end);
        return;
    }
    x->mark = x->idle = end;
    xml_emit(x, XEV_STANZA, end, el, NULL, NULL);
}

static void XMLCALL
xml_on_text(void *ud, const XML_Char *s, int len)
{
    roost_xml_t *x = ud;
    int64_t end = xml_event_end(x);

    if (x->dead)
        return;
    if (x->cur != NULL) {
        /* A text run grows by doubling: up to twice its length. */
        x->tree += 2 * (size_t)len;
        if (end - x->stanza_start > (int64_t)x->lim.max_stanza ||
            x->tree > x->tree_cap) {
            xml_fail(x, "policy-violation", "stanza too large", end);
            return;
        }
        roost_stanza_add_text(x->cur, s, (size_t)len);
        return;
    }
    /* Between stanzas only whitespace (keepalives) may appear, and not
     * without end. */
    for (int i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            xml_fail(x, "not-well-formed", "text between stanzas", end);
            return;
        }
    }
    x->idle = end;
    if (end - x->mark > (int64_t)x->lim.max_stanza)
        xml_fail(x, "policy-violation", "too much whitespace", end);
}

static void XMLCALL
xml_on_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
            int standalone)
{
    roost_xml_t *x = ud;

    if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
        xml_fail(x, "unsupported-encoding", "only UTF-8 is supported",
                 xml_event_end(x));
}

static void XMLCALL
xml_on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
               const XML_Char *pubid, int has_internal_subset)
{
    roost_xml_t *x = ud;

    xml_fail(x, "restricted-xml", "DOCTYPE is not allowed", xml_event_end(x));
}

static void XMLCALL
xml_on_entity(void *ud, const XML_Char *name, int pe, const XML_Char *value,
              int value_len, const XML_Char *base, const XML_Char *sysid,
              const XML_Char *pubid, const XML_Char *notation)
{
    roost_xml_t *x = ud;

    xml_fail(x, "restricted-xml", "entity declarations are not allowed",
             xml_event_end(x));
}

static void XMLCALL
xml_on_comment(void *ud, const XML_Char *data)
{
    roost_xml_t *x = ud;

    xml_fail(x, "restricted-xml", "comments are not allowed", xml_event_end(x));
}

static void XMLCALL
xml_on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    roost_xml_t *x = ud;

    xml_fail(x, "restricted-xml", "processing instructions are not allowed",
             xml_event_end(x));
}

/* --- parser setup --- */

/* A new expat parser for x, with its slab for a stream parser. */
static void
xml_parser_new(roost_xml_t *x)
{
    roost_xml_t *saved = xml_mem_current;

    if (!x->doc && x->slab == NULL) {
        x->slab = roost_xmalloc(XML_SLAB); /* xml_parser_free */
        x->slab_used = 0;
        x->mem += XML_SLAB;
    }
    xml_mem_current = x;
    x->p = XML_ParserCreate_MM("UTF-8", &xml_mem_suite, "\1");
    xml_mem_current = saved;
}

/* Frees x's expat parser and its slab. */
static void
xml_parser_free(roost_xml_t *x)
{
    if (x->p != NULL)
        XML_ParserFree(x->p);
    x->p = NULL;
    if (x->slab != NULL) {
        roost_free(x->slab);
        x->slab = NULL;
        x->slab_used = 0;
        x->mem -= XML_SLAB;
    }
}

/* expat's hash salt (against attribute-name collision floods), one per
 * parser.  A per-thread generator (splitmix64) seeded once from
 * getrandom: unpredictable to a peer, without a system call for every
 * document parsed (roster items, stored stanzas, each connection). */
static unsigned long
xml_salt(void)
{
    static __thread uint64_t state;
    static __thread int seeded;
    uint64_t z;

    if (!seeded) {
        if (getrandom(&state, sizeof(state), GRND_NONBLOCK) !=
            (ssize_t)sizeof(state))
            state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16) ^
                    (uint64_t)(uintptr_t)&state;
        seeded = 1;
    }
    z = (state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return (unsigned long)(z ^ (z >> 31));
}

/* Handlers and settings; needed again after every XML_ParserReset(),
 * which clears them. */
static void
xml_setup(roost_xml_t *x)
{
    XML_Parser p = x->p;

    XML_SetUserData(p, x);
    XML_SetHashSalt(p, xml_salt());
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    /* Deferral would hold back a complete stanza until more bytes come. */
    XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
    XML_SetElementHandler(p, xml_on_start, xml_on_end);
    XML_SetCharacterDataHandler(p, xml_on_text);
    XML_SetNamespaceDeclHandler(p, xml_on_ns_start, NULL);
    XML_SetXmlDeclHandler(p, xml_on_decl);
    XML_SetStartDoctypeDeclHandler(p, xml_on_doctype);
    XML_SetEntityDeclHandler(p, xml_on_entity);
    XML_SetCommentHandler(p, xml_on_comment);
    XML_SetProcessingInstructionHandler(p, xml_on_pi);
}

/* Our state back to "before the stream header" (expat is reset apart). */
static void
xml_clear(roost_xml_t *x)
{
    xml_queue_clear(x);
    roost_stanza_unref(x->cur);
    x->cur = NULL;
    x->tree = 0;
    roost_free(x->default_ns);
    x->default_ns = NULL;
    x->server = 0;
    x->fed = x->pos = x->limit = x->mark = x->idle = x->stanza_start = 0;
    x->depth = x->doc ? 1 : 0; /* a document has no stream root */
    x->ndecl = x->decl_default = 0;
    x->decl_default_uri = NULL;
    x->suspended = x->stopped = x->dead = x->failed = 0;
    x->reset_pending = 0;
    x->stop_pos = 0;
    roost_free(x->replay);
    x->replay = NULL;
    x->replay_len = x->replay_cap = 0;
    x->replay_bad = x->replaying = 0;
    x->xoff = 0;
}

/* The memory caps follow the stanza limit (see xml_create). */
static void
xml_set_caps(roost_xml_t *x)
{
    if (x->lim.max_stanza == 0)
        x->lim.max_stanza = 1;
    x->mem_cap = x->lim.max_stanza > (SIZE_MAX - XML_MEM_SLACK) / 4
                     ? SIZE_MAX
                     : 4 * x->lim.max_stanza + XML_MEM_SLACK;
    x->tree_cap =
        x->lim.max_stanza > (SIZE_MAX - XML_MEM_SLACK) / XML_TREE_FACTOR
            ? SIZE_MAX
            : XML_TREE_FACTOR * x->lim.max_stanza + XML_MEM_SLACK;
    if (x->doc) /* the caller's buffer bounds a document */
        x->mem_cap = x->tree_cap = SIZE_MAX;
}

/* Settings of a new (zeroed) x, before it has an expat parser. */
static void
xml_init(roost_xml_t *x, const roost_xml_limits_t *limits,
         const roost_xml_cb_t *cb, void *ud, int doc)
{
    x->lim = *limits;
    if (x->lim.max_depth < 1)
        x->lim.max_depth = 1;
    if (x->lim.max_attrs < 0)
        x->lim.max_attrs = 0;
    x->doc = doc;
    xml_set_caps(x);
    if (cb != NULL)
        x->cb = *cb;
    x->ud = ud;
}

static roost_xml_t *
xml_create(const roost_xml_limits_t *limits, const roost_xml_cb_t *cb, void *ud,
           int doc)
{
    roost_xml_t *x = roost_xcalloc(1, sizeof(*x));

    xml_init(x, limits, cb, ud, doc);
    xml_parser_new(x);
    xml_setup(x);
    xml_clear(x);
    return x;
}

/* New stream parser.  Borrows limits and cb (copied).  Free with
 * roost_xml_free(). */
roost_xml_t *
roost_xml_new(const roost_xml_limits_t *limits, const roost_xml_cb_t *cb,
              void *ud)
{
    return xml_create(limits, cb, ud, 0);
}

static void
xml_destroy(roost_xml_t *x)
{
    xml_clear(x);
    xml_parser_free(x);
    roost_free(x->q);
    roost_free(x->scratch);
    roost_free(x);
}

/* Frees x and anything it has not delivered.  From inside one of x's own
 * callbacks the free is deferred until roost_xml_feed() returns.  NULL is
 * ok. */
void
roost_xml_free(roost_xml_t *x)
{
    if (x == NULL)
        return;
    if (x->in_cb) {
        x->free_pending = 1;
        return;
    }
    xml_destroy(x);
}

/* See core/xml.h. */
void
roost_xml_set_max_stanza(roost_xml_t *x, size_t max_stanza)
{
    x->lim.max_stanza = max_stanza;
    xml_set_caps(x);
}

/* Drops all state; the next bytes must be a new stream header.  From
 * inside one of x's callbacks it takes effect when roost_xml_feed()
 * returns (the feed stops at that event). */
void
roost_xml_reset(roost_xml_t *x)
{
    if (x->in_cb) {
        x->reset_pending = 1;
        return;
    }
    xml_clear(x);
    x->u8_need = 0;
    x->u8_bad = 0;
    /* A fresh parser rather than XML_ParserReset(): as cheap with the
     * slab, and the new stream gets a whole slab. */
    xml_parser_free(x);
    xml_parser_new(x);
    xml_setup(x);
}

/* See core/xml.h. */
int
roost_xml_release(roost_xml_t *x)
{
    if (x == NULL || x->p == NULL)
        return x != NULL;
    if (x->doc || x->replay == NULL || x->replay_len == 0 || x->depth != 1 ||
        x->cur != NULL || x->qlen > 0 || x->suspended || x->dead || x->failed ||
        x->in_cb || x->in_expat || x->reset_pending || x->free_pending ||
        x->ndecl != 0 || x->fed != x->pos || x->fed != x->idle ||
        x->u8_need != 0)
        return 0;
    xml_parser_free(x);
    roost_free(x->scratch);
    x->scratch = NULL;
    x->scratch_cap = 0;
    roost_free(x->q);
    x->q = NULL;
    x->qcap = x->qhead = 0;
    return 1;
}

/* A parser for a released stream: the replay puts it back inside the
 * root, with the root's namespace declarations in scope.  Returns 0, or
 * -1 if that failed (which would be a bug: the replay parsed before). */
static int
xml_rebuild(roost_xml_t *x)
{
    enum XML_Status st;

    xml_parser_new(x);
    xml_setup(x);
    x->depth = 0;
    x->replaying = 1;
    x->in_expat = 1;
    st = XML_Parse(x->p, x->replay, (int)x->replay_len, 0);
    x->in_expat = 0;
    x->replaying = 0;
    x->xoff = x->fed - (int64_t)x->replay_len;
    return st == XML_STATUS_OK && x->depth == 1 ? 0 : -1;
}

/* Heap bytes held: expat's (exact), our buffers, and an estimate of the
 * arena of the stanza being built.  Delivered stanzas are not counted. */
size_t
roost_xml_memory(const roost_xml_t *x)
{
    return sizeof(*x) + x->mem + x->qcap * sizeof(*x->q) + x->scratch_cap +
           x->replay_cap + (x->cur != NULL ? x->tree : 0);
}

/* Strict UTF-8 check (no overlongs, surrogates or values past U+10FFFF)
 * over the bytes handed to expat, across chunk boundaries, so that a bad
 * encoding is reported as such (RFC 6120 §4.9.3.22, §11.6) rather than as
 * a generic syntax error. */
static void
xml_utf8_scan(roost_xml_t *x, const unsigned char *p, size_t n, int64_t offset)
{
    for (size_t i = 0; i < n && x->u8_bad == 0; i++) {
        unsigned char b = p[i];

        if (x->u8_need > 0) {
            if (b < x->u8_lo || b > x->u8_hi) {
                x->u8_bad = offset + (int64_t)i + 1;
                break;
            }
            x->u8_need--;
            x->u8_lo = 0x80;
            x->u8_hi = 0xBF;
            continue;
        }
        if (b < 0x80)
            continue;
        x->u8_lo = 0x80;
        x->u8_hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF)
            x->u8_need = 1;
        else if (b == 0xE0)
            x->u8_need = 2, x->u8_lo = 0xA0;
        else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
            x->u8_need = 2;
        else if (b == 0xED)
            x->u8_need = 2, x->u8_hi = 0x9F;
        else if (b == 0xF0)
            x->u8_need = 3, x->u8_lo = 0x90;
        else if (b >= 0xF1 && b <= 0xF3)
            x->u8_need = 3;
        else if (b == 0xF4)
            x->u8_need = 3, x->u8_hi = 0x8F;
        else
            x->u8_bad = offset + (int64_t)i + 1;
    }
}

static const char *
xml_error_cond(enum XML_Error code)
{
    switch (code) {
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING: return "unsupported-encoding";
    case XML_ERROR_NO_MEMORY: return "resource-constraint";
    default: return "not-well-formed";
    }
}

/* Book-keeping after XML_Parse/XML_ResumeParser returned status. */
static void
xml_after(roost_xml_t *x, enum XML_Status status)
{
    int64_t open_bytes;

    if (status == XML_STATUS_SUSPENDED) {
        x->suspended = 1;
        return;
    }
    if (status == XML_STATUS_ERROR) {
        enum XML_Error code = XML_GetErrorCode(x->p);

        const char *cond = xml_error_cond(code);

        /* Expat calls a bad byte an invalid token; say what it is. */
        if (x->u8_bad != 0 &&
            (code == XML_ERROR_INVALID_TOKEN || code == XML_ERROR_PARTIAL_CHAR))
            cond = "unsupported-encoding";
        if (!x->dead)
            xml_fail(x, cond,
                     strcmp(cond, "unsupported-encoding") == 0
                         ? "invalid UTF-8"
                         : XML_ErrorString(code),
                     xml_event_start(x) + 1);
        return;
    }
    if (x->dead)
        return;
    /* Unparsed bytes sit in expat's buffer: cap them with the stanza
     * limit, counted from the stanza's start, or from the last event or
     * whitespace (they are the start of the next element). */
    open_bytes = x->fed - (x->cur != NULL ? x->stanza_start : x->idle);
    if (open_bytes > (int64_t)x->lim.max_stanza)
        xml_fail(x, "policy-violation",
                 x->cur != NULL ? "stanza too large" : "element too large",
                 x->fed);
    else if (x->mem > x->mem_cap)
        xml_fail(x, "policy-violation", "parser memory limit", x->fed);
}

/* Hands n bytes to expat (in int-sized pieces); final ends the document. */
static void
xml_parse(roost_xml_t *x, const char *buf, size_t n, int final)
{
    roost_xml_t *saved = xml_mem_current;

    xml_mem_current = x;
    do {
        size_t piece = n < (1u << 30) ? n : (1u << 30);
        int last = final && piece == n;

        enum XML_Status st;

        xml_utf8_scan(x, (const unsigned char *)buf, piece, x->fed);
        x->fed += (int64_t)piece;
        x->in_expat = 1;
        st = XML_Parse(x->p, buf, (int)piece, last);
        x->in_expat = 0;
        xml_after(x, st);
        buf += piece;
        n -= piece;
    } while (n > 0 && !x->suspended && !x->dead && !x->stopped);
    xml_mem_current = saved;
}

static void
xml_resume(roost_xml_t *x)
{
    roost_xml_t *saved = xml_mem_current;

    xml_mem_current = x;
    enum XML_Status st;

    x->suspended = 0;
    x->in_expat = 1;
    st = XML_ResumeParser(x->p);
    x->in_expat = 0;
    xml_after(x, st);
    xml_mem_current = saved;
}

/* Feeds len bytes (see core/xml.h).  Callbacks must not free x or reset it
 * directly; roost_xml_reset()/roost_xml_free() from a callback are
 * deferred to the end of this call.  Returns 0, ROOST_EAGAIN or
 * -ROOST_EINVAL. */
int
roost_xml_feed(roost_xml_t *x, const char *buf, size_t len, size_t *consumed)
{
    int64_t base = x->pos;
    size_t dummy;
    int rc;

    if (consumed == NULL)
        consumed = &dummy;
    *consumed = 0;
    if (x->failed)
        return -ROOST_EINVAL;
    x->limit = base + (int64_t)len;
    x->stopped = 0;

    xml_drain(x);
    if (!x->stopped && !x->failed && x->qlen == 0 && x->suspended && !x->dead)
        xml_resume(x);
    if (!x->stopped && !x->failed && x->qlen == 0 && !x->suspended &&
        !x->dead && x->limit > x->fed && x->p == NULL) {
        roost_xml_t *saved = xml_mem_current;
        int bad;

        xml_mem_current = x;
        bad = xml_rebuild(x);
        xml_mem_current = saved;
        if (bad)
            xml_fail(x, "internal-server-error", "parser rebuild failed",
                     x->fed);
        xml_drain(x);
    }
    if (!x->stopped && !x->failed && x->qlen == 0 && !x->suspended &&
        !x->dead && x->limit > x->fed)
        xml_parse(x, buf + (x->fed - base), (size_t)(x->limit - x->fed), 0);

    if (x->failed) {
        rc = -ROOST_EINVAL;
        *consumed = len;
    } else if (x->stopped) {
        rc = ROOST_EAGAIN;
        *consumed = x->stop_pos > base ? (size_t)(x->stop_pos - base) : 0;
        x->pos = x->stop_pos > base ? x->stop_pos : base;
    } else {
        rc = 0;
        *consumed = len;
        x->pos = x->limit;
    }
    if (x->free_pending) {
        xml_destroy(x);
    } else if (x->reset_pending) {
        x->reset_pending = 0;
        roost_xml_reset(x);
    }
    return rc;
}

/* --- one whole document --- */

typedef struct xml_doc {
    roost_stanza_t *st;
    int error;
} xml_doc_t;

static int
xml_doc_stanza(void *ud, roost_stanza_t *st)
{
    xml_doc_t *d = ud;

    if (d->st != NULL) /* cannot happen: expat allows one root */
        roost_stanza_unref(d->st);
    d->st = st;
    return 0;
}

static void
xml_doc_error(void *ud, const char *cond, const char *text)
{
    xml_doc_t *d = ud;

    d->error = 1;
}

/* One document parser per thread.  roost_stanza_parse() runs for every
 * stored item a user load reads (roster items, last presences, offline
 * messages), on the loop thread and on storage workers, and creating and
 * freeing an expat parser each time was much of its cost (xml_create and
 * xml_destroy: 17.5% of a 500-contact login, doc/profiling.md).  So each
 * thread keeps one roost_xml_t with its expat parser and puts both back to
 * the state of a new one before each document (xml_doc_reuse): expat by
 * XML_ParserReset() (tag stack, namespace bindings, DTD tables, error and
 * parsing status; it keeps only the namespace separator), then every
 * handler and setting again, a new hash salt included (xml_setup); ours
 * by zeroing the struct and initialising it as xml_create() does, keeping
 * only the buffers (expat's parser, the event queue, the scratch buffer)
 * and the count of the heap expat still holds.  A parser that grew past
 * XML_DOC_KEEP bytes (a big offline message) is freed rather than kept.
 * The thread's parser is freed at thread exit (a pthread key destructor);
 * the main thread's lives until the process ends, reachable from its
 * thread-specific data.  A nested call (none exists: the document
 * callbacks only store the result) would get a parser of its own. */
#define XML_DOC_KEEP (64 * 1024)

static __thread roost_xml_t *xml_doc_cached; /* xml_doc_key_free */
static __thread int xml_doc_busy;
static pthread_key_t xml_doc_key;
static pthread_once_t xml_doc_once = PTHREAD_ONCE_INIT;
static int xml_doc_key_ok;

static void
xml_doc_key_free(void *ptr)
{
    if (xml_doc_cached == ptr)
        xml_doc_cached = NULL;
    xml_destroy(ptr);
}

static void
xml_doc_key_init(void)
{
    xml_doc_key_ok = pthread_key_create(&xml_doc_key, xml_doc_key_free) == 0;
}

/* The cached x made equal to a new document parser for limits, cb, ud. */
static void
xml_doc_reuse(roost_xml_t *x, const roost_xml_limits_t *limits,
              const roost_xml_cb_t *cb, void *ud)
{
    roost_xml_t keep = *x, *saved = xml_mem_current;

    xml_clear(x); /* drops stanzas and strings a failed parse left */
    memset(x, 0, sizeof(*x));
    x->p = keep.p;
    x->mem = keep.mem;
    x->q = keep.q;
    x->qcap = keep.qcap;
    x->scratch = keep.scratch;
    x->scratch_cap = keep.scratch_cap;
    xml_init(x, limits, cb, ud, 1);
    xml_mem_current = x;
    if (!XML_ParserReset(x->p, "UTF-8")) { /* cannot fail: no parent */
        XML_ParserFree(x->p);
        xml_parser_new(x);
    }
    xml_mem_current = saved;
    xml_setup(x);
    xml_clear(x);
}

/* A document parser for this thread: the cached one (*cached = 1) or, in
 * a nested call or without a thread key, a new one (*cached = 0). */
static roost_xml_t *
xml_doc_get(const roost_xml_limits_t *limits, const roost_xml_cb_t *cb,
            void *ud, int *cached)
{
    roost_xml_t *x = xml_doc_cached;

    *cached = 0;
    if (xml_doc_busy)
        return xml_create(limits, cb, ud, 1);
    if (x != NULL) {
        xml_doc_reuse(x, limits, cb, ud);
    } else {
        pthread_once(&xml_doc_once, xml_doc_key_init);
        x = xml_create(limits, cb, ud, 1);
        if (!xml_doc_key_ok || pthread_setspecific(xml_doc_key, x) != 0)
            return x;
        xml_doc_cached = x;
    }
    *cached = 1;
    xml_doc_busy = 1;
    return x;
}

/* Done with x from xml_doc_get(). */
static void
xml_doc_put(roost_xml_t *x, int cached)
{
    if (!cached) {
        xml_destroy(x);
        return;
    }
    xml_doc_busy = 0;
    xml_clear(x);
    if (x->mem > XML_DOC_KEEP) {
        xml_doc_cached = NULL;
        pthread_setspecific(xml_doc_key, NULL);
        xml_destroy(x);
    }
}

/* Borrows xml.  Parses one complete document (optional XML declaration,
 * one root element) with the stream parser's restrictions; the root
 * becomes a new stanza the caller unrefs.  NULL on any error.  Uses the
 * calling thread's document parser (see above). */
roost_stanza_t *
roost_stanza_parse(const char *xml, size_t len)
{
    static const roost_xml_cb_t cb = {
        .stanza = xml_doc_stanza,
        .error = xml_doc_error,
    };
    roost_xml_limits_t lim = {len ? len : 1, XML_DOC_MAX_DEPTH,
                              XML_DOC_MAX_ATTRS};
    xml_doc_t d = {NULL, 0};
    roost_xml_t *x;
    int cached;

    if (xml == NULL || len == 0)
        return NULL;
    x = xml_doc_get(&lim, &cb, &d, &cached);
    if (roost_xml_feed(x, xml, len, NULL) == 0) {
        x->limit = x->fed;
        xml_parse(x, "", 0, 1);
        xml_drain(x);
    }
    xml_doc_put(x, cached);
    if (d.error || d.st == NULL) {
        roost_stanza_unref(d.st);
        return NULL;
    }
    return d.st;
}

/* See core/xml.h. */
void
roost_xml_append_attr(char *buf, size_t size, const char *name,
                      const char *value)
{
    size_t n = strlen(buf);

    n += (size_t)snprintf(buf + n, n < size ? size - n : 0, " %s='", name);
    for (const char *p = value; *p != '\0' && n + 7 < size; p++) {
        const char *rep = NULL;

        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\'': rep = "&apos;"; break;
        case '"': rep = "&quot;"; break;
        }
        if (rep != NULL) {
            memcpy(buf + n, rep, strlen(rep));
            n += strlen(rep);
        } else {
            buf[n++] = *p;
        }
    }
    if (n + 2 < size) {
        buf[n++] = '\'';
        buf[n] = '\0';
    }
}
