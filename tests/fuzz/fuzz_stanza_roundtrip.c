/* tests/fuzz/fuzz_stanza_roundtrip.c: libFuzzer target for the stanza
 * tree (core/stanza.c): serialising a tree and parsing the result back
 * must give the same tree.
 *
 * The first input byte picks the mode.  Even: the rest is an XML document
 * for roost_stanza_parse(); when it parses, the tree must equal the parse
 * of its serialisation, its copy, and the stanza the stream parser
 * (core/xml.c) delivers when the serialisation is sent inside a
 * jabber:client stream.  Odd: the rest is a little program that builds a
 * tree through the public builder API (roost_stanza_add_child, set_attr,
 * add_text) the way modules do, with names and namespaces from a fixed
 * table and attribute values and text from the input (made valid UTF-8,
 * since the API takes UTF-8); the serialisation must parse and equal the
 * built tree, except for characters XML 1.0 cannot carry, which the
 * serialiser drops.  Equality is structural (names, namespaces in effect,
 * attributes in order, direct text, children), not byte-for-byte (that is
 * fuzz_xml.c's check).  Anything else aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roost/stanza.h>
#include "xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok)
{
    if (!ok)
        abort();
}

/* The namespace in effect for el: its own, or its nearest ancestor's. */
static const char *
fuzz_eff_ns(const roost_stanza_t *el)
{
    const char *ns = NULL;

    for (; el != NULL && (ns = roost_stanza_ns(el)) == NULL;
         el = roost_stanza_parent(el))
        ;
    if (ns == NULL || strcmp(ns, ROOST_NS_SERVER) == 0)
        return ns == NULL ? "" : ROOST_NS_CLIENT;
    return ns;
}

static int
fuzz_is_decl(const char *name)
{
    return strncmp(name, "xmlns", 5) == 0 &&
           (name[5] == '\0' || name[5] == ':');
}

/* Next attribute at or after *i that the serialiser writes, or NULL. */
static const char *
fuzz_attr(const roost_stanza_t *el, size_t *i, const char **value)
{
    size_t n = roost_stanza_attr_count(el);

    for (; *i < n; (*i)++) {
        const char *name = roost_stanza_attr_at(el, *i, value);

        if (!fuzz_is_decl(name))
            return name;
    }
    return NULL;
}

/* Whether fuzz_tree_eq's b went through XML (0 for a copy). */
static int fuzz_lossy;

/* b equals a, or with fuzz_lossy, a as XML can carry it: C0 controls other
 * than tab, LF and CR, and U+FFFE and U+FFFF, dropped. */
static int
fuzz_text_eq(const char *a, const char *b)
{
    for (;; a++) {
        unsigned char c = (unsigned char)*a;

        if (fuzz_lossy && c != 0 && c < 0x20 && c != '\t' && c != '\n' &&
            c != '\r')
            continue;
        if (fuzz_lossy && c == 0xEF && (unsigned char)a[1] == 0xBF &&
            ((unsigned char)a[2] & 0xFE) == 0xBE) {
            a += 2;
            continue;
        }
        if (c != (unsigned char)*b)
            return 0;
        if (c == 0)
            return 1;
        b++;
    }
}

/* Structural equality of a (the original) and b (after a round trip). */
static int
fuzz_tree_eq(roost_stanza_t *a, roost_stanza_t *b)
{
    roost_stanza_t *ca, *cb;
    size_t ia = 0, ib = 0;

    if (strcmp(roost_stanza_name(a), roost_stanza_name(b)) != 0 ||
        strcmp(fuzz_eff_ns(a), fuzz_eff_ns(b)) != 0)
        return 0;
    for (;; ia++, ib++) {
        const char *va, *vb;
        const char *na = fuzz_attr(a, &ia, &va), *nb = fuzz_attr(b, &ib, &vb);

        if (na == NULL || nb == NULL) {
            if (na != nb)
                return 0;
            break;
        }
        if (strcmp(na, nb) != 0 || !fuzz_text_eq(va, vb))
            return 0;
    }
    if (!fuzz_text_eq(roost_stanza_text(a), roost_stanza_text(b)))
        return 0;
    ca = roost_stanza_first_child(a);
    cb = roost_stanza_first_child(b);
    for (; ca != NULL && cb != NULL;
         ca = roost_stanza_next_sibling(ca), cb = roost_stanza_next_sibling(cb))
        if (!fuzz_tree_eq(ca, cb))
            return 0;
    return ca == NULL && cb == NULL;
}

/* --- the stream parser's view --- */

typedef struct {
    roost_stanza_t *got;
    int n, errors;
} fuzz_stream_t;

static int
fs_open(void *ud, const char *ns, const char *name, const char *const *attrs,
        const char *default_ns)
{
    return 0;
}

static int
fs_stanza(void *ud, roost_stanza_t *st)
{
    fuzz_stream_t *f = ud;

    if (f->got == NULL)
        f->got = st;
    else
        roost_stanza_unref(st);
    f->n++;
    return 0;
}

static void
fs_close(void *ud)
{
}

static void
fs_error(void *ud, const char *cond, const char *text)
{
    ((fuzz_stream_t *)ud)->errors++;
}

/* st serialised into a jabber:client stream comes out as the same tree. */
static void
fuzz_via_stream(roost_stanza_t *st)
{
    static const roost_xml_cb_t cb = {fs_open, fs_stanza, fs_close, fs_error};
    static const char head[] = "<stream:stream xmlns='jabber:client' "
                               "xmlns:stream='http://etherx.jabber.org/"
                               "streams'>";
    /* As generous as roost_stanza_parse, so what it accepts fits. */
    static const roost_xml_limits_t lim = {1 << 24, 256, 1024};
    fuzz_stream_t f = {NULL, 0, 0};
    roost_xml_t *x = roost_xml_new(&lim, &cb, &f);
    size_t len, used;
    char *s = roost_stanza_serialize(st, ROOST_NS_CLIENT, &len);

    fuzz_check(roost_xml_feed(x, head, strlen(head), &used) == 0);
    fuzz_check(roost_xml_feed(x, s, len, &used) == 0);
    fuzz_check(f.errors == 0 && f.n == 1);
    /* The stream parser gives elements without xmlns the stream's default,
     * where the standalone parse gives them none. */
    if (strcmp(fuzz_eff_ns(st), "") != 0)
        fuzz_check(fuzz_tree_eq(st, f.got));
    roost_stanza_unref(f.got);
    roost_free(s);
    roost_xml_free(x);
}

/* serialise -> parse gives the same tree, standalone and in a stream. */
static void
fuzz_roundtrip(roost_stanza_t *st, int via_stream)
{
    size_t len;
    char *s = roost_stanza_serialize(st, NULL, &len);
    roost_stanza_t *back = roost_stanza_parse(s, len), *c;

    if (back == NULL || !fuzz_tree_eq(st, back)) {
        /* For triage: what was written, and what came back. */
        char *b =
            back != NULL ? roost_stanza_serialize(back, NULL, NULL) : NULL;

        fprintf(stderr, "serialised: %s\nreparsed:   %s\n", s,
                b != NULL ? b : "(parse failed)");
        abort();
    }
    c = roost_stanza_copy(st);
    fuzz_lossy = 0;
    fuzz_check(fuzz_tree_eq(st, c));
    fuzz_lossy = 1;
    roost_stanza_unref(c);
    roost_stanza_unref(back);
    roost_free(s);
    if (via_stream)
        fuzz_via_stream(st);
}

/* --- builder mode --- */

static const char *const names[] = {
    "message", "presence", "iq",    "body", "query", "x",     "item",
    "a-b.c_d", "\xc3\xbc", "error", "xml",  "lang",  "group", "e1"};
static const char *const nss[] = {NULL,
                                  "",
                                  ROOST_NS_CLIENT,
                                  ROOST_NS_SERVER,
                                  "jabber:iq:roster",
                                  "urn:x'\"<&>\t\n y",
                                  ROOST_NS_XML,
                                  ROOST_NS_STANZAS,
                                  "http://jabber.org/protocol/disco#info"};
static const char *const attrs[] = {
    "to",       "from",    "id",        "type",       "xml:lang",
    "urn:a|k",  "urn:b|k", "urn:a|z",   "urn:\"q'|v", "a.b-c",
    "\xc3\xa9", "xmlns",   "xmlns:foo", "xml:space"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Copies up to n bytes of input into buf as valid UTF-8 without NUL
 * (invalid bytes and NUL become '?'); returns the bytes used. */
static size_t
fuzz_utf8(const uint8_t *in, size_t n, char *buf, size_t *outlen)
{
    size_t i = 0, o = 0;

    while (i < n) {
        uint8_t c = in[i];
        size_t k = c < 0x80             ? 1
                   : (c & 0xE0) == 0xC0 ? 2
                   : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4
                                        : 0;
        int ok =
            k > 0 && i + k <= n && c != 0 && c != 0xC0 && c != 0xC1 && c < 0xF5;
        uint32_t cp = 0;

        for (size_t j = 1; ok && j < k; j++)
            ok = (in[i + j] & 0xC0) == 0x80;
        if (ok && k > 1) {
            cp = c & (0x7F >> k);
            for (size_t j = 1; j < k; j++)
                cp = cp << 6 | (in[i + j] & 0x3F);
            ok = !(k == 3 && cp < 0x800) && !(k == 4 && cp < 0x10000) &&
                 !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= 0x10FFFF;
        }
        if (!ok) {
            buf[o++] = '?';
            i++;
            continue;
        }
        memcpy(buf + o, in + i, k);
        o += k;
        i += k;
    }
    buf[o] = '\0';
    *outlen = o;
    return i;
}

static roost_stanza_t *
fuzz_build(const uint8_t *data, size_t size)
{
    roost_stanza_t *root, *cur;
    char buf[256 * 4 + 1];
    size_t i = 0;
    int depth = 0;

    if (size < 2)
        return NULL;
    root = roost_stanza_new(nss[data[1] % NELEM(nss)], names[data[0] % 3]);
    cur = root;
    i = 2;
    while (i + 2 <= size) {
        uint8_t op = data[i], arg = data[i + 1];
        size_t n, len;

        i += 2;
        switch (op & 3) {
        case 0: /* child */
            if (depth >= 64)
                break;
            cur = roost_stanza_add_child(cur, nss[(arg >> 4) % NELEM(nss)],
                                         names[arg % NELEM(names)]);
            depth++;
            break;
        case 1: /* up */
            if (cur != root) {
                cur = roost_stanza_parent(cur);
                depth--;
            }
            break;
        case 2: /* attribute: value from the input */
            n = op >> 2;
            if (n > size - i)
                n = size - i;
            i += fuzz_utf8(data + i, n, buf, &len);
            roost_stanza_set_attr(cur, attrs[arg % NELEM(attrs)], buf);
            break;
        case 3: /* text from the input */
            n = (size_t)(op >> 2) * 4 + (arg & 3);
            if (n > size - i)
                n = size - i;
            i += fuzz_utf8(data + i, n, buf, &len);
            roost_stanza_add_text(cur, buf, len);
            break;
        }
    }
    return root;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    roost_stanza_t *st;

    if (size < 1)
        return 0;
    fuzz_lossy = 1;
    if (data[0] & 1) {
        st = fuzz_build(data + 1, size - 1);
        if (st == NULL)
            return 0;
        fuzz_roundtrip(st, 1);
    } else {
        st = roost_stanza_parse((const char *)data + 1, size - 1);
        if (st == NULL)
            return 0;
        fuzz_roundtrip(st, 1);
    }
    roost_stanza_unref(st);
    return 0;
}
