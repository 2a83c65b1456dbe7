/* core/jid.c: parsing and preparation of XMPP addresses (RFC 7622).
 *
 * The localpart goes through libidn's XMPP nodeprep profile and the
 * resourcepart through resourceprep (the RFC 3920 profiles that Prosody and
 * ejabberd still use, so our prepared forms match theirs).  The domainpart
 * is kept as is when it is an IP literal, otherwise nameprep'd and each
 * label checked against IDNA2008 with libidn2; the stored form is the
 * prepared Unicode (U-label) form, A-labels decoded.  A JID is one
 * allocation: the struct followed by its strings.  Everything here is
 * reentrant and thread-safe.
 *
 * Not for routing decisions or for PRECIS: JIDs arrive here from the
 * stream and leave as normalised strings for strcmp(). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>
#include <stringprep.h>

#include <roost/jid.h>

struct roost_jid {
    const char *node;     /* NULL or its own copy in buf */
    const char *domain;   /* tail of bare */
    const char *resource; /* NULL or tail of full */
    const char *bare;     /* == full when there is no resource */
    const char *full;     /* start of buf */
    size_t size;          /* of the whole block, for roost_jid_dup */
    char buf[];
};

/* Working buffer for one prepared part: the limit plus the NUL. */
#define JID_BUF       (ROOST_JID_PART_MAX + 1)
#define JID_LABEL_MAX 63

typedef enum { JID_NODE, JID_DOMAIN, JID_RESOURCE } jid_part_t;

/* Strict UTF-8 (RFC 3629): no overlongs, surrogates or values past
 * U+10FFFF.  libidn rejects most of this too; checking first keeps the
 * domain's IP-literal path and our error behaviour independent of that. */
static bool
jid_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* "[v6]" or dotted-quad IPv4: copied (v6 lowercased) into out. */
static bool
jid_ip_literal(const char *s, size_t len, char *out)
{
    unsigned char addr[sizeof(struct in6_addr)];
    char tmp[64];

    if (len < 3 || len >= sizeof(tmp))
        return false;
    if (s[0] == '[' && s[len - 1] == ']') {
        memcpy(tmp, s + 1, len - 2);
        tmp[len - 2] = '\0';
        if (inet_pton(AF_INET6, tmp, addr) != 1)
            return false;
        for (size_t i = 0; i < len; i++)
            out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i];
        out[len] = '\0';
        return true;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET, tmp, addr) != 1)
        return false;
    memcpy(out, tmp, len + 1);
    return true;
}

/* One prepared label: ASCII must be letters, digits, '-' or '_' (nameprep
 * lets ASCII space, controls and punctuation through, and NFKC can turn
 * U+FF20 into '@'); libidn2 then checks IDNA2008 rules (hyphens, bidi,
 * contextual rules) and the 63-octet limit on the A-label. */
static bool
jid_label_valid(const char *label, size_t len)
{
    char tmp[JID_BUF];
    uint8_t *ace = NULL;
    bool ok;

    /* An "xn--" label here came out of NFKC (fullwidth input): storing it
     * would break the no-A-label rule and idempotence, so refuse it. */
    if (len == 0 || (len >= 4 && strncmp(label, "xn--", 4) == 0))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)label[i];

        /* '_' is not LDH but appears in real deployments' host names. */
        if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          c == '-' || c == '_'))
            return false;
    }
    memcpy(tmp, label, len);
    tmp[len] = '\0';
    if (idn2_lookup_u8((const uint8_t *)tmp, &ace, IDN2_NONTRANSITIONAL) !=
        IDN2_OK)
        return false;
    /* UTS#46 mapping could turn U+3002 and friends into dots: only U+002E
     * separates labels (RFC 7622 §3.2). */
    len = strlen((const char *)ace);
    ok = len > 0 && len <= JID_LABEL_MAX && strchr((char *)ace, '.') == NULL;
    idn2_free(ace);
    return ok;
}

/* Copies the len bytes at s into out with every A-label ("xn--...")
 * decoded to its U-label: RFC 7622 §3.2 stores domains without A-labels,
 * so "xn--nicode-2ya.example" and "ünicode.example" compare equal. */
static bool
jid_decode_alabels(const char *s, size_t len, char *out)
{
    size_t o = 0;

    for (const char *end = s + len, *label = s; label <= end;) {
        const char *dot = memchr(label, '.', (size_t)(end - label));
        size_t n = (size_t)((dot ? dot : end) - label);
        char tmp[JID_BUF], *u = NULL;
        const char *src = label;

        if (n >= 4 && strncasecmp(label, "xn--", 4) == 0) {
            for (size_t i = 0; i < n; i++)
                tmp[i] = (label[i] >= 'A' && label[i] <= 'Z')
                             ? label[i] - 'A' + 'a'
                             : label[i];
            tmp[n] = '\0';
            if (idn2_to_unicode_8z8z(tmp, &u, 0) != IDN2_OK)
                return false;
            src = u;
            n = strlen(u);
        }
        if (o + n + (dot ? 1 : 0) > ROOST_JID_PART_MAX) {
            idn2_free(u);
            return false;
        }
        memcpy(out + o, src, n);
        o += n;
        idn2_free(u);
        if (dot == NULL)
            break;
        out[o++] = '.';
        label = dot + 1;
    }
    out[o] = '\0';
    return true;
}

/* Domain preparation (nameprep, IDNA2008 checks through libidn2) is
 * the costly part of routing a stanza (doc/profiling.md: a third of the
 * CPU), and a server sees few distinct domains: a small direct-mapped
 * cache per thread remembers results (valid or not) of domains up to
 * JID_CACHE_LEN bytes.  The result depends on the input alone. */
#define JID_CACHE_SLOTS 64
#define JID_CACHE_LEN   128

typedef struct {
    unsigned char used, ok;
    unsigned char inlen, outlen;
    char in[JID_CACHE_LEN], out[JID_CACHE_LEN];
} jid_cache_slot_t;

static __thread jid_cache_slot_t jid_cache[JID_CACHE_SLOTS];

static unsigned
jid_cache_hash(const char *s, size_t len)
{
    unsigned h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h % JID_CACHE_SLOTS;
}

static bool jid_prep_domain_slow(const char *s, size_t len, char *out);

static bool
jid_prep_domain_into(const char *s, size_t len, char *out)
{
    jid_cache_slot_t *c;
    bool ok;

    if (len >= JID_CACHE_LEN)
        return jid_prep_domain_slow(s, len, out);
    c = &jid_cache[jid_cache_hash(s, len)];
    if (c->used && c->inlen == len && memcmp(c->in, s, len) == 0) {
        if (c->ok) {
            memcpy(out, c->out, c->outlen);
            out[c->outlen] = '\0';
        }
        return c->ok;
    }
    ok = jid_prep_domain_slow(s, len, out);
    if (!ok || strlen(out) < JID_CACHE_LEN) {
        c->used = 1;
        c->ok = ok;
        c->inlen = (unsigned char)len;
        memcpy(c->in, s, len);
        if (ok) {
            c->outlen = (unsigned char)strlen(out);
            memcpy(c->out, out, c->outlen);
        }
    }
    return ok;
}

static bool
jid_prep_domain_slow(const char *s, size_t len, char *out)
{
    const char *label;

    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > ROOST_JID_PART_MAX)
        return false;
    if (jid_ip_literal(s, len, out))
        return true;
    if (!jid_decode_alabels(s, len, out) ||
        stringprep_nameprep(out, JID_BUF) != STRINGPREP_OK)
        return false;
    label = out;
    for (;;) {
        const char *dot = strchr(label, '.');
        size_t n = dot ? (size_t)(dot - label) : strlen(label);

        if (!jid_label_valid(label, n))
            return false;
        if (dot == NULL)
            break;
        label = dot + 1;
    }
    return true;
}

/* The ASCII fast path of nodeprep/resourceprep on out (len bytes, NUL
 * terminated): returns true when out is printable ASCII and now holds the
 * prepared form; false (out untouched or only lowercased) to take the
 * full path, which also reports the errors. */
static bool
jid_ascii_prep(jid_part_t part, char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c > 0x7e || c < 0x20)
            return false;
        if (part == JID_NODE &&
            (c == ' ' || c == '"' || c == '&' || c == '\'' || c == '/' ||
             c == ':' || c == '<' || c == '>' || c == '@'))
            return false;
    }
    if (part == JID_NODE)
        for (size_t i = 0; i < len; i++)
            if (out[i] >= 'A' && out[i] <= 'Z')
                out[i] = (char)(out[i] - 'A' + 'a');
    return true;
}

/* Prepares the len bytes at s as the given part into out (JID_BUF bytes).
 * Returns the prepared length or -1.  The input, not only the result, must
 * fit the 1023-byte limit: a part that only shrinks into it through
 * mappings is refused rather than buffered without bound. */
static int
jid_prep_part(jid_part_t part, const char *s, size_t len, char *out)
{
    int rc;

    /* The domain may carry one extra byte: its trailing dot. */
    if (len == 0 || len > ROOST_JID_PART_MAX + (part == JID_DOMAIN) ||
        memchr(s, '\0', len) != NULL ||
        !jid_utf8_valid((const unsigned char *)s, len))
        return -1;
    if (part == JID_DOMAIN)
        return jid_prep_domain_into(s, len, out) ? (int)strlen(out) : -1;
    memcpy(out, s, len);
    out[len] = '\0';
    /* Printable ASCII: stringprep's mappings (B.1 has no ASCII; B.2 folds
     * A-Z, for nodeprep only), NFKC (identity on ASCII) and prohibitions
     * (controls, and for nodeprep space and "&'/:<>@) reduce to this,
     * without the conversions to and from UCS-4. */
    if (jid_ascii_prep(part, out, len))
        return (int)len;
    if (part == JID_NODE)
        rc = stringprep_xmpp_nodeprep(out, JID_BUF);
    else
        rc = stringprep_xmpp_resourceprep(out, JID_BUF);
    /* Everything in the input may map to nothing (U+00AD, U+200B). */
    if (rc != STRINGPREP_OK || out[0] == '\0')
        return -1;
    return (int)strlen(out);
}

/* Lays out one block: full ("n@d/r"), then bare ("n@d") when there is a
 * resource, then the node.  domain and resource point into those. */
static roost_jid_t *
jid_build(const char *node, size_t nl, const char *dom, size_t dl,
          const char *res, size_t rl)
{
    size_t bare_len = (node ? nl + 1 : 0) + dl;
    size_t full_len = bare_len + (res ? rl + 1 : 0);
    size_t size = sizeof(roost_jid_t) + full_len + 1 +
                  (res ? bare_len + 1 : 0) + (node ? nl + 1 : 0);
    roost_jid_t *j = roost_xmalloc(size);
    char *p = j->buf;

    j->size = size;
    j->full = p;
    if (node) {
        memcpy(p, node, nl);
        p[nl] = '@';
        p += nl + 1;
    }
    memcpy(p, dom, dl);
    p += dl;
    if (res) {
        *p++ = '/';
        j->resource = p;
        memcpy(p, res, rl);
        p += rl;
    } else {
        j->resource = NULL;
    }
    *p++ = '\0';
    if (res) {
        j->bare = p;
        memcpy(p, j->full, bare_len);
        p[bare_len] = '\0';
        p += bare_len + 1;
    } else {
        j->bare = j->full;
    }
    j->domain = j->bare + (node ? nl + 1 : 0);
    if (node) {
        j->node = p;
        memcpy(p, node, nl);
        p[nl] = '\0';
    } else {
        j->node = NULL;
    }
    return j;
}

/* Prepares the three raw parts (node and res may be NULL = absent) and
 * builds the JID, or NULL when any part is invalid. */
static roost_jid_t *
jid_make(const char *node, size_t nl, const char *dom, size_t dl,
         const char *res, size_t rl)
{
    char pn[JID_BUF], pd[JID_BUF], pr[JID_BUF];
    int n = 0, d, r = 0;

    if (node && (n = jid_prep_part(JID_NODE, node, nl, pn)) < 0)
        return NULL;
    if ((d = jid_prep_part(JID_DOMAIN, dom, dl, pd)) < 0)
        return NULL;
    if (res && (r = jid_prep_part(JID_RESOURCE, res, rl, pr)) < 0)
        return NULL;
    return jid_build(node ? pn : NULL, (size_t)n, pd, (size_t)d,
                     res ? pr : NULL, (size_t)r);
}

/* Parses s (RFC 7622 §3.1): the first '/' starts the resourcepart (which
 * may itself contain '@' and '/'), then the first '@' before it ends the
 * localpart.  A separator with nothing after or before it is an error.
 * Returns a new JID (roost_jid_free) or NULL; s is borrowed. */
roost_jid_t *
roost_jid_new(const char *s)
{
    const char *slash, *at, *dom, *res = NULL;
    size_t len, dl, rl = 0;

    if (s == NULL)
        return NULL;
    /* Three parts at their limit, two separators and the domain's dot;
     * anything longer is refused before any work is done. */
    len = strnlen(s, 3 * ROOST_JID_PART_MAX + 4);
    if (len > 3 * ROOST_JID_PART_MAX + 3)
        return NULL;
    slash = memchr(s, '/', len);
    if (slash) {
        res = slash + 1;
        rl = len - (size_t)(res - s);
        len = (size_t)(slash - s);
    }
    at = memchr(s, '@', len);
    dom = at ? at + 1 : s;
    dl = len - (size_t)(dom - s);
    return jid_make(at ? s : NULL, at ? (size_t)(at - s) : 0, dom, dl, res, rl);
}

/* Builds a JID from raw parts (borrowed); node and resource may be NULL
 * (absent) but not "".  Returns a new JID or NULL if a part is invalid. */
roost_jid_t *
roost_jid_from_parts(const char *node, const char *domain, const char *resource)
{
    if (domain == NULL)
        return NULL;
    return jid_make(node, node ? strlen(node) : 0, domain, strlen(domain),
                    resource, resource ? strlen(resource) : 0);
}

/* Returns a copy of j (roost_jid_free), or NULL when j is NULL. */
roost_jid_t *
roost_jid_dup(const roost_jid_t *j)
{
    roost_jid_t *d;
    ptrdiff_t shift;

    if (j == NULL)
        return NULL;
    d = roost_xmalloc(j->size);
    memcpy(d, j, j->size);
    shift = d->buf - j->buf;
    d->full += shift;
    d->bare += shift;
    d->domain += shift;
    if (d->node)
        d->node += shift;
    if (d->resource)
        d->resource += shift;
    return d;
}

/* Frees j (NULL is fine); every string obtained from it dies with it. */
void
roost_jid_free(roost_jid_t *j)
{
    roost_free(j);
}

/* Accessors: strings live as long as j.  node/resource NULL if absent. */
const char *
roost_jid_node(const roost_jid_t *j)
{
    return j->node;
}

const char *
roost_jid_domain(const roost_jid_t *j)
{
    return j->domain;
}

const char *
roost_jid_resource(const roost_jid_t *j)
{
    return j->resource;
}

const char *
roost_jid_bare(const roost_jid_t *j)
{
    return j->bare;
}

const char *
roost_jid_full(const roost_jid_t *j)
{
    return j->full;
}

static char *
jid_prep_dup(jid_part_t part, const char *s)
{
    char out[JID_BUF];
    int n;

    if (s == NULL)
        return NULL;
    n = jid_prep_part(part, s, strlen(s), out);
    return n < 0 ? NULL : roost_xstrndup(out, (size_t)n);
}

/* Each prepares one part (borrowed) and returns a new string (roost_free)
 * or NULL when it is empty, too long or not valid for that part. */
char *
roost_jid_prep_node(const char *node)
{
    return jid_prep_dup(JID_NODE, node);
}

char *
roost_jid_prep_domain(const char *domain)
{
    return jid_prep_dup(JID_DOMAIN, domain);
}

char *
roost_jid_prep_resource(const char *resource)
{
    return jid_prep_dup(JID_RESOURCE, resource);
}

/* 1 when both full JIDs are equal (both NULL counts as equal), else 0. */
int
roost_jid_eq(const roost_jid_t *a, const roost_jid_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a->full, b->full) == 0;
}

/* 1 when the bare JIDs are equal (resources ignored), else 0. */
int
roost_jid_bare_eq(const roost_jid_t *a, const roost_jid_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a->bare, b->bare) == 0;
}
