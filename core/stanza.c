/* core/stanza.c: arena-backed, refcounted XML element trees (see
 * include/roost/stanza.h) and their serialiser.
 *
 * Every node of a tree (elements and text, in document order) is allocated
 * from the root's roost_pool_t; only the root carries the refcount, updated
 * with __atomic builtins so a stanza can be handed to a worker thread.
 * Adjacent text is merged into one node with a doubling buffer, so a peer
 * sending text in many small pieces costs O(n), not O(n^2).  Tree walks
 * (copy, serialise) are iterative: a tree built through the API can be
 * deeper than the parser's depth limit without exhausting the stack.
 *
 * Namespaces: an element's ns is a URI, NULL ("inherit": nothing is written
 * and the element takes whatever default is in scope) or "" (explicitly no
 * namespace, written as xmlns="" under a non-empty default).  The parser
 * produces "" only for elements that undeclare a default (xmlns="").
 *
 * Not for parsing: roost_stanza_parse() lives in core/xml.c next to the
 * expat setup it shares with the stream parser. */
#include <stdio.h>
#include <string.h>

#include <roost/stanza.h>
#include "pool.h"

typedef struct stanza_attr {
    const char *name;
    const char *value;
} stanza_attr_t;

struct roost_stanza {
    roost_pool_t *pool; /* the root's arena */
    roost_stanza_t *root;
    roost_stanza_t *parent; /* NULL for the root and unlinked nodes */
    roost_stanza_t *next;   /* next sibling node, element or text */
    roost_stanza_t *first;  /* child nodes */
    roost_stanza_t *last;
    const char *name; /* local name; NULL marks a text node */
    const char *ns;
    stanza_attr_t *attrs;
    size_t nattrs, attrs_cap;
    char *text; /* text nodes: NUL-terminated, len bytes */
    size_t len, cap;
    int refs; /* the root's only */
};

static roost_stanza_t *
stanza_node(roost_stanza_t *root)
{
    roost_stanza_t *n = roost_pool_calloc(root->pool, sizeof(*n));

    n->pool = root->pool;
    n->root = root;
    return n;
}

static void
stanza_link(roost_stanza_t *parent, roost_stanza_t *n)
{
    n->parent = parent;
    n->next = NULL;
    if (parent->last != NULL)
        parent->last->next = n;
    else
        parent->first = n;
    parent->last = n;
}

/* ns for a new element under parent: NULL inherits the parent's; an equal
 * string shares the parent's copy (most children are in their parent's
 * namespace, so this saves a copy per element). */
static const char *
stanza_ns_dup(roost_stanza_t *root, const roost_stanza_t *parent,
              const char *ns)
{
    if (parent != NULL &&
        (ns == NULL || (parent->ns != NULL && strcmp(parent->ns, ns) == 0)))
        return parent->ns;
    return ns != NULL ? roost_pool_strdup(root->pool, ns) : NULL;
}

/* Clone of src's name, ns, attributes or text into root's arena, with
 * parent set but not linked. */
static roost_stanza_t *
stanza_clone_node(roost_stanza_t *root, roost_stanza_t *parent,
                  const roost_stanza_t *src)
{
    roost_stanza_t *n = root != NULL ? stanza_node(root) : NULL;

    if (n == NULL) {
        /* A new root: the node lives in its own fresh pool. */
        roost_pool_t *pool = roost_pool_new(0);

        n = roost_pool_calloc(pool, sizeof(*n));
        n->pool = pool;
        n->root = n;
        n->refs = 1;
        root = n;
    }
    n->parent = parent;
    if (src->name == NULL) {
        /* Not strndup: text may hold NUL bytes (add_text takes any). */
        n->text = roost_pool_alloc(root->pool, src->len + 1);
        memcpy(n->text, src->text, src->len + 1);
        n->len = n->cap = src->len;
        return n;
    }
    n->name = roost_pool_strdup(root->pool, src->name);
    n->ns = stanza_ns_dup(root, parent, src->ns);
    if (src->nattrs > 0) {
        n->attrs =
            roost_pool_alloc(root->pool, src->nattrs * sizeof(*n->attrs));
        for (size_t i = 0; i < src->nattrs; i++) {
            n->attrs[i].name =
                roost_pool_strdup(root->pool, src->attrs[i].name);
            n->attrs[i].value =
                roost_pool_strdup(root->pool, src->attrs[i].value);
        }
        n->nattrs = n->attrs_cap = src->nattrs;
    }
    return n;
}

/* Deep copy of src under parent (root's arena; parent NULL: a new root).
 * The copy is linked only once complete, so copying an ancestor of parent
 * into parent terminates. */
static roost_stanza_t *
stanza_copy_into(roost_stanza_t *root, roost_stanza_t *parent,
                 const roost_stanza_t *src)
{
    roost_stanza_t *top = stanza_clone_node(root, parent, src), *d = top;
    const roost_stanza_t *s = src, *sc = src->first;

    if (root == NULL)
        root = top;
    for (;;) {
        if (sc != NULL) {
            roost_stanza_t *dc = stanza_clone_node(root, d, sc);

            stanza_link(d, dc);
            if (sc->first != NULL) {
                s = sc;
                d = dc;
                sc = sc->first;
            } else {
                sc = sc->next;
            }
            continue;
        }
        if (s == src)
            break;
        sc = s->next;
        s = s->parent;
        d = d->parent;
    }
    if (parent != NULL)
        stanza_link(parent, top);
    return top;
}

/* New root element with a fresh arena; refcount 1.  ns NULL: no namespace,
 * inherits the default in scope when serialised.  Caller unrefs. */
roost_stanza_t *
roost_stanza_new(const char *ns, const char *name)
{
    roost_pool_t *pool = roost_pool_new(0);
    roost_stanza_t *el = roost_pool_calloc(pool, sizeof(*el));

    el->pool = pool;
    el->root = el;
    el->refs = 1;
    el->name = roost_pool_strdup(pool, name);
    el->ns = ns != NULL ? roost_pool_strdup(pool, ns) : NULL;
    return el;
}

/* Adds a reference to el's root (thread-safe).  Returns el. */
roost_stanza_t *
roost_stanza_ref(roost_stanza_t *el)
{
    __atomic_add_fetch(&el->root->refs, 1, __ATOMIC_RELAXED);
    return el;
}

/* Drops a reference to el's root; the last one frees the whole arena, so
 * every element of the tree becomes invalid.  NULL is ok. */
void
roost_stanza_unref(roost_stanza_t *el)
{
    roost_stanza_t *root;

    if (el == NULL)
        return;
    root = el->root;
    if (__atomic_sub_fetch(&root->refs, 1, __ATOMIC_ACQ_REL) == 0)
        roost_pool_free(root->pool);
}

/* Borrows el.  Returns a new root (refcount 1) holding a deep copy. */
roost_stanza_t *
roost_stanza_copy(const roost_stanza_t *el)
{
    return stanza_copy_into(NULL, NULL, el);
}

/* Borrows el.  Local name, owned by el's arena. */
const char *
roost_stanza_name(const roost_stanza_t *el)
{
    return el->name;
}

/* Borrows el.  Namespace URI, "" for explicitly none, NULL for inherited. */
const char *
roost_stanza_ns(const roost_stanza_t *el)
{
    return el->ns;
}

/* Borrows el.  message/presence/iq in jabber:client (or jabber:server, which
 * the parser normalises away anyway), else ROOST_STANZA_OTHER. */
roost_stanza_kind_t
roost_stanza_kind(const roost_stanza_t *el)
{
    if (el->ns == NULL || (strcmp(el->ns, ROOST_NS_CLIENT) != 0 &&
                           strcmp(el->ns, ROOST_NS_SERVER) != 0))
        return ROOST_STANZA_OTHER;
    if (strcmp(el->name, "message") == 0)
        return ROOST_STANZA_MESSAGE;
    if (strcmp(el->name, "presence") == 0)
        return ROOST_STANZA_PRESENCE;
    if (strcmp(el->name, "iq") == 0)
        return ROOST_STANZA_IQ;
    return ROOST_STANZA_OTHER;
}

/* Borrows el.  Parent element, NULL for a root or an unlinked element. */
roost_stanza_t *
roost_stanza_parent(const roost_stanza_t *el)
{
    return el->parent;
}

/* Borrows el and name.  Attribute value (arena-owned) or NULL. */
const char *
roost_stanza_attr(const roost_stanza_t *el, const char *name)
{
    for (size_t i = 0; i < el->nattrs; i++)
        if (strcmp(el->attrs[i].name, name) == 0)
            return el->attrs[i].value;
    return NULL;
}

/* Borrows all.  Copies name and value into el's arena, replacing an
 * existing value; value NULL removes the attribute (order of the others is
 * kept). */
void
roost_stanza_set_attr(roost_stanza_t *el, const char *name, const char *value)
{
    size_t i;

    for (i = 0; i < el->nattrs; i++)
        if (strcmp(el->attrs[i].name, name) == 0)
            break;
    if (value == NULL) {
        if (i < el->nattrs) {
            memmove(&el->attrs[i], &el->attrs[i + 1],
                    (el->nattrs - i - 1) * sizeof(*el->attrs));
            el->nattrs--;
        }
        return;
    }
    if (i < el->nattrs) {
        el->attrs[i].value = roost_pool_strdup(el->pool, value);
        return;
    }
    if (el->nattrs == el->attrs_cap) {
        size_t cap = el->attrs_cap ? el->attrs_cap * 2 : 4;
        stanza_attr_t *a = roost_pool_alloc(el->pool, cap * sizeof(*a));

        if (el->nattrs > 0)
            memcpy(a, el->attrs, el->nattrs * sizeof(*a));
        el->attrs = a;
        el->attrs_cap = cap;
    }
    el->attrs[el->nattrs].name = roost_pool_strdup(el->pool, name);
    el->attrs[el->nattrs].value = roost_pool_strdup(el->pool, value);
    el->nattrs++;
}

/* Borrows el.  Number of attributes. */
size_t
roost_stanza_attr_count(const roost_stanza_t *el)
{
    return el->nattrs;
}

/* Borrows el.  Name of the i-th attribute and its value in *value (when
 * value is not NULL), or NULL when i is out of range. */
const char *
roost_stanza_attr_at(const roost_stanza_t *el, size_t i, const char **value)
{
    if (i >= el->nattrs)
        return NULL;
    if (value != NULL)
        *value = el->attrs[i].value;
    return el->attrs[i].name;
}

static roost_stanza_t *
stanza_next_element(roost_stanza_t *n)
{
    while (n != NULL && n->name == NULL)
        n = n->next;
    return n;
}

/* Borrows all.  First child element matching ns and name (NULL matches
 * anything), or NULL. */
roost_stanza_t *
roost_stanza_child(const roost_stanza_t *el, const char *ns, const char *name)
{
    for (roost_stanza_t *c = stanza_next_element(el->first); c != NULL;
         c = stanza_next_element(c->next)) {
        if (name != NULL && strcmp(c->name, name) != 0)
            continue;
        if (ns != NULL && (c->ns == NULL || strcmp(c->ns, ns) != 0))
            continue;
        return c;
    }
    return NULL;
}

/* Borrows el.  First child element (text is skipped), or NULL. */
roost_stanza_t *
roost_stanza_first_child(const roost_stanza_t *el)
{
    return stanza_next_element(el->first);
}

/* Borrows el.  Next sibling element (text is skipped), or NULL. */
roost_stanza_t *
roost_stanza_next_sibling(const roost_stanza_t *el)
{
    return stanza_next_element(el->next);
}

/* Borrows all.  Appends a new element; ns NULL takes el's ns, "" means no
 * namespace.  The child belongs to el's root (no reference to drop). */
roost_stanza_t *
roost_stanza_add_child(roost_stanza_t *el, const char *ns, const char *name)
{
    roost_stanza_t *c = stanza_node(el->root);

    c->name = roost_pool_strdup(el->pool, name);
    c->ns = stanza_ns_dup(el->root, el, ns);
    stanza_link(el, c);
    return c;
}

/* Borrows all.  Appends a deep copy of src (any tree, even el's own) as
 * el's last child; returns the copy, owned by el's root. */
roost_stanza_t *
roost_stanza_add_copy(roost_stanza_t *el, const roost_stanza_t *src)
{
    return stanza_copy_into(el->root, el, src);
}

/* Borrows all.  Appends len bytes of text (copied, any bytes; need not be
 * NUL-terminated), merged with a directly preceding text node. */
void
roost_stanza_add_text(roost_stanza_t *el, const char *text, size_t len)
{
    roost_stanza_t *t = el->last;

    if (len == 0)
        return;
    if (t == NULL || t->name != NULL) {
        t = stanza_node(el->root);
        t->text = roost_pool_alloc(el->pool, len + 1);
        t->cap = len;
        stanza_link(el, t);
    } else if (t->cap - t->len < len) {
        size_t cap = t->cap * 2;
        char *buf;

        if (cap < t->len + len)
            cap = t->len + len;
        if (cap < t->len) /* wrapped: no such memory anyway */
            cap = SIZE_MAX / 2 + 1;
        buf = roost_pool_alloc(el->pool, cap + 1);
        memcpy(buf, t->text, t->len);
        t->text = buf;
        t->cap = cap;
    }
    memcpy(t->text + t->len, text, len);
    t->len += len;
    t->text[t->len] = '\0';
}

/* Borrows child.  Unlinks it from its parent; it stays valid (and in the
 * arena) as long as the root is referenced.  A root is left alone. */
void
roost_stanza_remove(roost_stanza_t *child)
{
    roost_stanza_t *p = child->parent, *prev = NULL;

    if (p == NULL)
        return;
    for (roost_stanza_t *n = p->first; n != NULL; prev = n, n = n->next) {
        if (n != child)
            continue;
        if (prev != NULL)
            prev->next = n->next;
        else
            p->first = n->next;
        if (p->last == n)
            p->last = prev;
        break;
    }
    child->parent = NULL;
    child->next = NULL;
}

/* Borrows el.  Its direct text, concatenated; arena-owned, "" when none.
 * Text with several runs (mixed content) is joined into a new arena
 * string per call. */
const char *
roost_stanza_text(roost_stanza_t *el)
{
    roost_stanza_t *only = NULL;
    size_t total = 0, runs = 0;
    char *buf, *w;

    for (roost_stanza_t *n = el->first; n != NULL; n = n->next) {
        if (n->name != NULL)
            continue;
        only = n;
        total += n->len;
        runs++;
    }
    if (runs == 0)
        return "";
    if (runs == 1)
        return only->text;
    w = buf = roost_pool_alloc(el->pool, total + 1);
    for (roost_stanza_t *n = el->first; n != NULL; n = n->next) {
        if (n->name != NULL)
            continue;
        memcpy(w, n->text, n->len);
        w += n->len;
    }
    *w = '\0';
    return buf;
}

/* Borrows all.  Text of the first child matching ns/name, or NULL. */
const char *
roost_stanza_child_text(roost_stanza_t *el, const char *ns, const char *name)
{
    roost_stanza_t *c = roost_stanza_child(el, ns, name);

    return c != NULL ? roost_stanza_text(c) : NULL;
}

/* --- serialisation --- */

typedef struct stanza_buf {
    char *buf;
    size_t len, cap;
} stanza_buf_t;

static void
sbuf_put(stanza_buf_t *b, const char *s, size_t n)
{
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap - b->len <= n) {
            if (cap > SIZE_MAX / 2)
                cap = SIZE_MAX; /* roost_xrealloc aborts on this */
            else
                cap *= 2;
        }
        b->buf = roost_xrealloc(b->buf, cap);
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void
sbuf_puts(stanza_buf_t *b, const char *s)
{
    sbuf_put(b, s, strlen(s));
}

/* Escapes n bytes of s.  attr: attribute value (quotes and whitespace as
 * references, so attribute-value normalisation keeps them).  Text gets
 * \r as &#13; too, since parsers turn a literal CR into LF.  Characters
 * XML 1.0 cannot carry at all (C0 controls other than tab, LF, CR, and the
 * noncharacters U+FFFE and U+FFFF, XML 1.0 §2.2) are dropped: sending them
 * would get the stream killed as not-well-formed. */
static void
sbuf_escape(stanza_buf_t *b, const char *s, size_t n, int attr)
{
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;

        if (c == 0xEF && n - i >= 3 && (unsigned char)s[i + 1] == 0xBF &&
            ((unsigned char)s[i + 2] & 0xFE) == 0xBE) {
            /* UTF-8 EF BF BE / EF BF BF: U+FFFE / U+FFFF */
            sbuf_put(b, s + run, i - run);
            i += 2;
            run = i + 1;
            continue;
        }
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\r': rep = "&#13;"; break;
        case '"': rep = attr ? "&quot;" : NULL; break;
        case '\'': rep = attr ? "&apos;" : NULL; break;
        case '\t': rep = attr ? "&#9;" : NULL; break;
        case '\n': rep = attr ? "&#10;" : NULL; break;
        default:
            if (c < 0x20)
                rep = "";
            break;
        }
        if (rep == NULL)
            continue;
        sbuf_put(b, s + run, i - run);
        sbuf_puts(b, rep);
        run = i + 1;
    }
    sbuf_put(b, s + run, n - run);
}

/* Default namespaces compare equal when both are empty, or both are one of
 * the two stanza namespaces (a c2s and an s2s stream carry the same
 * stanzas). */
static int
stanza_ns_equal(const char *a, const char *b)
{
    int sa, sb;

    if (a == NULL)
        a = "";
    if (b == NULL)
        b = "";
    sa = strcmp(a, ROOST_NS_CLIENT) == 0 || strcmp(a, ROOST_NS_SERVER) == 0;
    sb = strcmp(b, ROOST_NS_CLIENT) == 0 || strcmp(b, ROOST_NS_SERVER) == 0;
    if (sa || sb)
        return sa && sb;
    return strcmp(a, b) == 0;
}

/* Length of the URI of el's i-th attribute when it is written with a
 * generated prefix ("URI|local", URI neither empty nor the xml one), or 0. */
static size_t
stanza_attr_uri_len(const roost_stanza_t *el, size_t i)
{
    const char *name = el->attrs[i].name, *bar = strrchr(name, '|');
    size_t ulen = bar != NULL ? (size_t)(bar - name) : 0;

    if (ulen == strlen(ROOST_NS_XML) && strncmp(name, ROOST_NS_XML, ulen) == 0)
        return 0;
    return ulen;
}

/* Writes the name of a namespaced attribute ("URI|local"): "xml:local" for
 * the xml namespace, else "nsK:local", declaring xmlns:nsK on this element
 * at the first attribute with that URI (K = 1 + that attribute's index, so
 * prefixes are unique per URI within the element). */
static void
stanza_write_ns_attr(stanza_buf_t *b, const roost_stanza_t *el, size_t i,
                     const char *bar)
{
    const char *name = el->attrs[i].name;
    size_t ulen = stanza_attr_uri_len(el, i), j;
    char pfx[32];

    if (ulen == 0) {
        sbuf_puts(b, bar == name ? " " : " xml:");
        sbuf_puts(b, bar + 1);
        return;
    }
    for (j = 0; j < i; j++)
        if (stanza_attr_uri_len(el, j) == ulen &&
            strncmp(el->attrs[j].name, name, ulen) == 0)
            break;
    snprintf(pfx, sizeof(pfx), "ns%zu", j + 1);
    if (j == i) {
        sbuf_puts(b, " xmlns:");
        sbuf_puts(b, pfx);
        sbuf_puts(b, "=\"");
        sbuf_escape(b, name, ulen, 1);
        sbuf_puts(b, "\"");
    }
    sbuf_puts(b, " ");
    sbuf_puts(b, pfx);
    sbuf_puts(b, ":");
    sbuf_puts(b, bar + 1);
}

/* The XML namespace may not be declared as a default namespace (XML
 * Namespaces §3): its elements are written with the predeclared "xml:"
 * prefix instead (found by fuzz_xml: <xml:langx/>). */
static int
stanza_in_xml_ns(const roost_stanza_t *el)
{
    return el->ns != NULL && strcmp(el->ns, ROOST_NS_XML) == 0;
}

/* Writes '<name' plus namespace and attributes; returns the default
 * namespace in scope for el's children. */
static const char *
stanza_write_open(stanza_buf_t *b, const roost_stanza_t *el, const char *scope)
{
    sbuf_puts(b, stanza_in_xml_ns(el) ? "<xml:" : "<");
    sbuf_puts(b, el->name);
    if (el->ns != NULL && !stanza_in_xml_ns(el) &&
        !stanza_ns_equal(el->ns, scope)) {
        sbuf_puts(b, " xmlns=\"");
        sbuf_escape(b, el->ns, strlen(el->ns), 1);
        sbuf_puts(b, "\"");
        scope = el->ns;
    }
    for (size_t i = 0; i < el->nattrs; i++) {
        const char *name = el->attrs[i].name, *bar = strrchr(name, '|');

        /* Declarations are ours to write; a stray one would clash. */
        if (strncmp(name, "xmlns", 5) == 0 &&
            (name[5] == '\0' || name[5] == ':'))
            continue;
        if (bar != NULL) {
            stanza_write_ns_attr(b, el, i, bar);
        } else {
            sbuf_puts(b, " ");
            sbuf_puts(b, name);
        }
        sbuf_puts(b, "=\"");
        sbuf_escape(b, el->attrs[i].value, strlen(el->attrs[i].value), 1);
        sbuf_puts(b, "\"");
    }
    return scope;
}

/* Borrows el.  Serialises el's subtree as if written where parent_ns is
 * the default namespace.  Returns a NUL-terminated string to roost_free()
 * (never NULL); *len gets its length when len is not NULL. */
char *
roost_stanza_serialize(const roost_stanza_t *el, const char *parent_ns,
                       size_t *len)
{
    stanza_buf_t b = {NULL, 0, 0};
    const char **scopes = NULL, *scope = parent_ns;
    size_t sp = 0, scap = 0;
    const roost_stanza_t *n = el;

    for (;;) {
        if (n->name == NULL) {
            sbuf_escape(&b, n->text, n->len, 0);
        } else {
            const char *inner = stanza_write_open(&b, n, scope);

            if (n->first != NULL) {
                sbuf_puts(&b, ">");
                if (sp == scap) {
                    scap = scap ? scap * 2 : 16;
                    scopes = roost_xrealloc(scopes, scap * sizeof(*scopes));
                }
                scopes[sp++] = scope;
                scope = inner;
                n = n->first;
                continue;
            }
            sbuf_puts(&b, "/>");
        }
        /* n is complete: on to its sibling, closing finished parents. */
        while (n != el && n->next == NULL) {
            n = n->parent;
            sbuf_puts(&b, stanza_in_xml_ns(n) ? "</xml:" : "</");
            sbuf_puts(&b, n->name);
            sbuf_puts(&b, ">");
            scope = scopes[--sp];
        }
        if (n == el)
            break;
        n = n->next;
    }
    roost_free(scopes);
    sbuf_put(&b, "", 1);
    if (len != NULL)
        *len = b.len - 1;
    return b.buf;
}

/* --- replies and errors --- */

static const struct {
    const char *name;
    const char *type;
} stanza_errs[ROOST_SE__COUNT] = {
    [ROOST_SE_NONE] = {"undefined-condition", "cancel"},
    [ROOST_SE_BAD_REQUEST] = {"bad-request", "modify"},
    [ROOST_SE_CONFLICT] = {"conflict", "cancel"},
    [ROOST_SE_FEATURE_NOT_IMPLEMENTED] = {"feature-not-implemented", "cancel"},
    [ROOST_SE_FORBIDDEN] = {"forbidden", "auth"},
    [ROOST_SE_GONE] = {"gone", "cancel"},
    [ROOST_SE_INTERNAL_SERVER_ERROR] = {"internal-server-error", "cancel"},
    [ROOST_SE_ITEM_NOT_FOUND] = {"item-not-found", "cancel"},
    [ROOST_SE_JID_MALFORMED] = {"jid-malformed", "modify"},
    [ROOST_SE_NOT_ACCEPTABLE] = {"not-acceptable", "modify"},
    [ROOST_SE_NOT_ALLOWED] = {"not-allowed", "cancel"},
    [ROOST_SE_NOT_AUTHORIZED] = {"not-authorized", "auth"},
    [ROOST_SE_POLICY_VIOLATION] = {"policy-violation", "modify"},
    [ROOST_SE_RECIPIENT_UNAVAILABLE] = {"recipient-unavailable", "wait"},
    [ROOST_SE_REDIRECT] = {"redirect", "modify"},
    [ROOST_SE_REGISTRATION_REQUIRED] = {"registration-required", "auth"},
    [ROOST_SE_REMOTE_SERVER_NOT_FOUND] = {"remote-server-not-found", "cancel"},
    [ROOST_SE_REMOTE_SERVER_TIMEOUT] = {"remote-server-timeout", "wait"},
    [ROOST_SE_RESOURCE_CONSTRAINT] = {"resource-constraint", "wait"},
    [ROOST_SE_SERVICE_UNAVAILABLE] = {"service-unavailable", "cancel"},
    [ROOST_SE_SUBSCRIPTION_REQUIRED] = {"subscription-required", "auth"},
    [ROOST_SE_UNDEFINED_CONDITION] = {"undefined-condition", "cancel"},
    [ROOST_SE_UNEXPECTED_REQUEST] = {"unexpected-request", "wait"},
};

/* RFC 6120 §8.3.3 element name of cond; ROOST_SE_NONE and out-of-range
 * values give "undefined-condition". */
const char *
roost_stanza_err_name(roost_stanza_err_t cond)
{
    if ((unsigned)cond >= ROOST_SE__COUNT)
        cond = ROOST_SE_UNDEFINED_CONDITION;
    return stanza_errs[cond].name;
}

/* RFC 6120 §8.3.2 error type of cond ("cancel" for unknown values). */
const char *
roost_stanza_err_type(roost_stanza_err_t cond)
{
    if ((unsigned)cond >= ROOST_SE__COUNT)
        cond = ROOST_SE_UNDEFINED_CONDITION;
    return stanza_errs[cond].type;
}

/* Borrows iq.  New iq type="result" with iq's id and to/from swapped, no
 * children.  Caller unrefs. */
roost_stanza_t *
roost_stanza_reply(const roost_stanza_t *iq)
{
    roost_stanza_t *r = roost_stanza_new(iq->ns, "iq");
    const char *id = roost_stanza_attr(iq, "id");
    const char *from = roost_stanza_attr(iq, "from");
    const char *to = roost_stanza_attr(iq, "to");

    roost_stanza_set_attr(r, "type", "result");
    if (id != NULL)
        roost_stanza_set_attr(r, "id", id);
    if (from != NULL)
        roost_stanza_set_attr(r, "to", from);
    if (to != NULL)
        roost_stanza_set_attr(r, "from", to);
    return r;
}

/* Borrows st and text.  Error reply per RFC 6120 §8.3: a copy of st with
 * to/from swapped and type="error", any previous <error/> removed, the
 * payload dropped for iq, and <error type=".."><cond/><text/></error>
 * appended.  text may be NULL.  Caller unrefs. */
roost_stanza_t *
roost_stanza_error(const roost_stanza_t *st, roost_stanza_err_t cond,
                   const char *text)
{
    roost_stanza_t *e = roost_stanza_copy(st), *err, *c, *next;
    const char *from = roost_stanza_attr(st, "from");
    const char *to = roost_stanza_attr(st, "to");
    int iq = roost_stanza_kind(st) == ROOST_STANZA_IQ;

    roost_stanza_set_attr(e, "to", from);
    roost_stanza_set_attr(e, "from", to);
    roost_stanza_set_attr(e, "type", "error");
    for (c = e->first; c != NULL; c = next) {
        next = c->next;
        if (iq || (c->name != NULL && strcmp(c->name, "error") == 0 &&
                   stanza_ns_equal(c->ns, e->ns)))
            roost_stanza_remove(c);
    }
    if (cond == ROOST_SE_NONE || (unsigned)cond >= ROOST_SE__COUNT)
        cond = ROOST_SE_UNDEFINED_CONDITION;
    err = roost_stanza_add_child(e, NULL, "error");
    roost_stanza_set_attr(err, "type", roost_stanza_err_type(cond));
    roost_stanza_add_child(err, ROOST_NS_STANZAS, roost_stanza_err_name(cond));
    if (text != NULL && *text != '\0') {
        c = roost_stanza_add_child(err, ROOST_NS_STANZAS, "text");
        roost_stanza_add_text(c, text, strlen(text));
    }
    return e;
}
