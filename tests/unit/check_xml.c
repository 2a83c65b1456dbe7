/* tests/unit/check_xml.c: unit tests for core/xml.c, the restricted
 * incremental stream parser.
 *
 * Every test feeds bytes and compares a log of the callbacks (header,
 * stanzas serialised, close, error) with the expected one: whole streams
 * in one chunk, byte by byte and in odd chunk sizes; UTF-8 split across
 * chunks; every refused construct with its condition; every limit just
 * below and just above; stop, consumed and reset with pipelined data;
 * jabber:server normalisation; namespaced attributes; releasing the parser
 * while idle and rebuilding it changes nothing.  Not a fuzzer: see
 * tests/fuzz/fuzz_xml.c. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

#define HDR                                                                    \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "               \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "        \
    "version='1.0'>"
#define HDR_LOG                                                                \
    "O http://etherx.jabber.org/streams|stream to=example.com "                \
    "version=1.0 [jabber:client]\n"

typedef struct rec {
    char log[1 << 16];
    size_t len;
    int stop_open; /* stream_open asks to stop */
    int stop_at;   /* the n-th stanza (1-based) asks to stop */
    int reset_at;  /* the n-th stanza calls roost_xml_reset() */
    int free_at;   /* the n-th stanza calls roost_xml_free() */
    int quiet;     /* count stanzas without logging them */
    int nstanza, nerr, nopen, nclose;
    roost_xml_t *x;
} rec_t;

static void rec_add(rec_t *r, const char *fmt, ...) ROOST_PRINTF(2, 3);

static void
rec_add(rec_t *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(r->log + r->len, sizeof(r->log) - r->len, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    ck_assert_uint_lt(r->len + (size_t)n, sizeof(r->log));
    r->len += (size_t)n;
}

static int
rec_open(void *ud, const char *ns, const char *name, const char *const *attrs,
         const char *default_ns)
{
    rec_t *r = ud;

    r->nopen++;
    rec_add(r, "O %s|%s", ns ? ns : "(null)", name);
    for (int i = 0; attrs[i] != NULL; i += 2)
        rec_add(r, " %s=%s", attrs[i], attrs[i + 1]);
    rec_add(r, " [%s]\n", default_ns ? default_ns : "(null)");
    return r->stop_open;
}

static int
rec_stanza(void *ud, roost_stanza_t *st)
{
    rec_t *r = ud;
    char *s = roost_stanza_serialize(st, NULL, NULL);

    r->nstanza++;
    if (!r->quiet)
        rec_add(r, "S %s\n", s);
    roost_free(s);
    roost_stanza_unref(st);
    if (r->reset_at == r->nstanza)
        roost_xml_reset(r->x);
    if (r->free_at == r->nstanza)
        roost_xml_free(r->x);
    return r->stop_at == r->nstanza;
}

static void
rec_close(void *ud)
{
    rec_t *r = ud;

    r->nclose++;
    rec_add(r, "C\n");
}

static void
rec_error(void *ud, const char *cond, const char *text)
{
    rec_t *r = ud;

    r->nerr++;
    ck_assert_ptr_nonnull(text);
    rec_add(r, "E %s\n", cond);
}

static const roost_xml_cb_t rec_cb = {rec_open, rec_stanza, rec_close,
                                      rec_error};
static const roost_xml_limits_t lim_default = {262144, 64, 64};

static roost_xml_t *
new_parser(rec_t *r, const roost_xml_limits_t *lim)
{
    memset(r, 0, sizeof(*r));
    r->x = roost_xml_new(lim ? lim : &lim_default, &rec_cb, r);
    return r->x;
}

/* Feeds data in chunks of `chunk` bytes (0: all at once) the way the
 * stream layer does: after a stop, the rest is fed again.  Returns the
 * last return code. */
static int
feed_chunks(roost_xml_t *x, const char *data, size_t len, size_t chunk)
{
    size_t off = 0;
    int rc = 0;

    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk, used = 0;

        rc = roost_xml_feed(x, data + off, n, &used);
        if (rc < 0)
            return rc;
        ck_assert_uint_le(used, n);
        if (rc == 0)
            ck_assert_uint_eq(used, n);
        off += used;
    }
    return rc;
}

static int
feed_str(roost_xml_t *x, const char *s)
{
    return feed_chunks(x, s, strlen(s), 0);
}

/* --- a normal stream --- */

static const char stream_in[] =
    HDR "<message to='a@example.com' type='chat' id='m1'><body>Hello &amp; "
        "bye</body></message>\n"
        "  <presence/>"
        "<iq type='get' id='i1'><query xmlns='jabber:iq:roster'/></iq>"
        "<message xml:lang='de'><body>Gr\xc3\xbc\xc3\x9f"
        "e \xe2\x82\xac "
        "\xf0\x9f\x98\x80</body></message>"
        "</stream:stream>";

static const char stream_log[] = HDR_LOG
    "S <message xmlns=\"jabber:client\" to=\"a@example.com\" type=\"chat\" "
    "id=\"m1\"><body>Hello &amp; bye</body></message>\n"
    "S <presence xmlns=\"jabber:client\"/>\n"
    "S <iq xmlns=\"jabber:client\" type=\"get\" id=\"i1\"><query "
    "xmlns=\"jabber:iq:roster\"/></iq>\n"
    "S <message xmlns=\"jabber:client\" xml:lang=\"de\"><body>Gr\xc3\xbc"
    "\xc3\x9f"
    "e \xe2\x82\xac \xf0\x9f\x98\x80</body></message>\n"
    "C\n";

static const size_t chunk_sizes[] = {0, 1, 2, 3, 5, 7, 13, 64, 100, 4096};

START_TEST(test_stream_chunks)
{
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);

    ck_assert_int_eq(
        feed_chunks(x, stream_in, strlen(stream_in), chunk_sizes[_i]), 0);
    ck_assert_str_eq(r.log, stream_log);
    ck_assert_int_eq(r.nerr, 0);
    ck_assert_uint_gt(roost_xml_memory(x), 0);
    roost_xml_free(x);
}
END_TEST

START_TEST(test_utf8_split)
{
    /* Every split point inside (and around) multibyte sequences. */
    static const char in[] = HDR "<message><body>\xc3\xa9\xe2\x82\xac"
                                 "\xf0\x9f\x98\x80</body></message>";
    size_t hdr = strlen(HDR);

    for (size_t cut = hdr + 15; cut <= hdr + 25; cut++) {
        rec_t r;
        roost_xml_t *x = new_parser(&r, NULL);

        ck_assert_int_eq(roost_xml_feed(x, in, cut, NULL), 0);
        ck_assert_int_eq(roost_xml_feed(x, in + cut, strlen(in) - cut, NULL),
                         0);
        ck_assert_str_eq(r.log, HDR_LOG
                         "S <message xmlns=\"jabber:client\"><body>\xc3\xa9"
                         "\xe2\x82\xac\xf0\x9f\x98\x80</body></message>\n");
        roost_xml_free(x);
    }
}
END_TEST

/* --- refused input --- */

static const struct {
    const char *in;
    size_t len; /* 0: strlen */
    const char *cond;
} refused[] = {
    {"<!DOCTYPE stream><stream:stream/>", 0, "restricted-xml"},
    {"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY x 'y'>]><s/>", 0,
     "restricted-xml"},
    {HDR "<message><!-- hi --></message>", 0, "restricted-xml"},
    {"<!-- before --><stream:stream/>", 0, "restricted-xml"},
    {HDR "<?target data?>", 0, "restricted-xml"},
    {HDR "<message><?pi?></message>", 0, "restricted-xml"},
    {HDR "<message><body>&foo;</body></message>", 0, "not-well-formed"},
    {HDR "<message to='&bar;'/>", 0, "not-well-formed"},
    /* RFC 6120 §4.9.3.22: bad UTF-8 is an encoding error. */
    {HDR "<message><body>\xff</body></message>", 0, "unsupported-encoding"},
    {HDR "<message><body>\xc0\xaf</body></message>", 0, "unsupported-encoding"},
    {HDR "<message><body>\xed\xa0\x80</body></message>", 0,
     "unsupported-encoding"},
    {HDR "<message><body>\xf4\x90\x80\x80</body></message>", 0,
     "unsupported-encoding"},
    {HDR "<message to='\xe2\x82'/>", 0, "unsupported-encoding"},
    {HDR "<message><body>a\0b</body></message>",
     sizeof(HDR "<message><body>a\0b</body></message>") - 1, "not-well-formed"},
    {HDR "<message><body>&#0;</body></message>", 0, "not-well-formed"},
    {HDR "<message><body>&#1;</body></message>", 0, "not-well-formed"},
    /* The namespace separator cannot be smuggled into a URI. */
    {HDR "<message xmlns='urn:&#1;x'/>", 0, "not-well-formed"},
    {"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>", 0,
     "unsupported-encoding"},
    {"<?xml version='1.0' encoding='UTF-16'?><s/>", 0, "unsupported-encoding"},
    {HDR "hello", 0, "not-well-formed"},
    {HDR "<message></presence>", 0, "not-well-formed"},
    {HDR "<message a='1' a='2'/>", 0, "not-well-formed"},
    {HDR "<p:message/>", 0, "not-well-formed"},
    {HDR "</stream:stream><more/>", 0, "not-well-formed"},
    {HDR "<?xml version='1.0'?>", 0, "not-well-formed"},
};

START_TEST(test_refused)
{
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    size_t len = refused[_i].len ? refused[_i].len : strlen(refused[_i].in);
    char want[64];
    int rc;

    ck_assert_int_eq(feed_chunks(x, refused[_i].in, len, 0), -ROOST_EINVAL);
    ck_assert_int_eq(r.nerr, 1);
    snprintf(want, sizeof(want), "E %s\n", refused[_i].cond);
    ck_assert_msg(strstr(r.log, want) != NULL, "%s: got %s", refused[_i].in,
                  r.log);
    ck_assert_int_eq(r.nstanza, 0);
    /* Dead from now on, without more callbacks. */
    rc = roost_xml_feed(x, "<a/>", 4, NULL);
    ck_assert_int_eq(rc, -ROOST_EINVAL);
    ck_assert_int_eq(r.nerr, 1);
    /* Byte by byte gives the same verdict. */
    roost_xml_free(x);
    x = new_parser(&r, NULL);
    ck_assert_int_eq(feed_chunks(x, refused[_i].in, len, 1), -ROOST_EINVAL);
    ck_assert_int_eq(r.nerr, 1);
    ck_assert_msg(strstr(r.log, want) != NULL, "%s: got %s", refused[_i].in,
                  r.log);
    roost_xml_free(x);
}
END_TEST

START_TEST(test_allowed)
{
    /* What is not refused: CDATA, the predefined entities, character
     * references, an XML declaration with UTF-8, whitespace keepalives. */
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);

    ck_assert_int_eq(feed_str(x, "<?xml version='1.0' encoding='UTF-8'?>"
                                 "<stream:stream xmlns='jabber:client' "
                                 "xmlns:stream='" ROOST_NS_STREAM "'>"
                                 " \n\t\r "
                                 "<message><body><![CDATA[<x>&]]>&lt;&gt;"
                                 "&amp;&quot;&apos;&#65;&#x263A;</body>"
                                 "</message> "),
                     0);
    ck_assert_int_eq(r.nerr, 0);
    ck_assert(strstr(r.log, "<body>&lt;x&gt;&amp;&lt;&gt;&amp;\"'A\xe2\x98\xba"
                            "</body>") != NULL);
    roost_xml_free(x);
}
END_TEST

/* --- limits --- */

static void
check_limit(const roost_xml_limits_t *lim, const char *in, int ok, size_t chunk)
{
    rec_t r;
    roost_xml_t *x = new_parser(&r, lim);
    int rc = feed_chunks(x, in, strlen(in), chunk);

    if (ok) {
        ck_assert_msg(rc == 0 && r.nerr == 0, "refused (chunk %zu): %s: %s",
                      chunk, in, r.log);
        ck_assert_int_eq(r.nstanza, 1);
    } else {
        ck_assert_msg(rc == -ROOST_EINVAL, "accepted (chunk %zu): %s", chunk,
                      in);
        ck_assert_msg(strstr(r.log, "E policy-violation\n") != NULL, "%s",
                      r.log);
        ck_assert_int_eq(r.nstanza, 0);
    }
    roost_xml_free(x);
}

/* HDR plus one stanza of exactly n bytes: <m>xxx...</m> */
static char *
sized_stanza(size_t n)
{
    char *s = roost_xmalloc(strlen(HDR) + n + 1);
    size_t h = strlen(HDR);

    memcpy(s, HDR, h);
    memcpy(s + h, "<m>", 3);
    memset(s + h + 3, 'x', n - 7);
    memcpy(s + h + n - 4, "</m>", 5);
    return s;
}

START_TEST(test_limit_stanza)
{
    roost_xml_limits_t lim = {1000, 64, 64};
    static const size_t chunks[] = {0, 1, 7, 300};

    for (size_t c = 0; c < 4; c++) {
        char *ok = sized_stanza(1000), *big = sized_stanza(1001);

        check_limit(&lim, ok, 1, chunks[c]);
        check_limit(&lim, big, 0, chunks[c]);
        roost_free(ok);
        roost_free(big);
    }
}
END_TEST

START_TEST(test_limit_open_tag)
{
    /* A start tag that never ends is caught as soon as it passes the
     * limit, long before any '>' arrives. */
    roost_xml_limits_t lim = {1000, 64, 64};
    rec_t r;
    roost_xml_t *x = new_parser(&r, &lim);
    char attr[100];
    int rc = 0, i;

    memset(attr, 'a', sizeof(attr));
    ck_assert_int_eq(feed_str(x, HDR "<message to='"), 0);
    for (i = 0; i < 100 && rc == 0; i++)
        rc = roost_xml_feed(x, attr, sizeof(attr), NULL);
    ck_assert_int_eq(rc, -ROOST_EINVAL);
    ck_assert_int_le(i, 11);
    ck_assert_str_eq(r.log, HDR_LOG "E policy-violation\n");
    roost_xml_free(x);

    /* Same for the stream header. */
    x = new_parser(&r, &lim);
    ck_assert_int_eq(feed_str(x, "<stream:stream to='"), 0);
    for (i = 0, rc = 0; i < 100 && rc == 0; i++)
        rc = roost_xml_feed(x, attr, sizeof(attr), NULL);
    ck_assert_int_eq(rc, -ROOST_EINVAL);
    ck_assert_str_eq(r.log, "E policy-violation\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_limit_whitespace)
{
    /* Whitespace between stanzas: a run of max_stanza bytes is fine, one
     * more is not.  A stanza in between starts a new run. */
    roost_xml_limits_t lim = {500, 64, 64};
    static const size_t chunks[] = {0, 1, 64};
    char *in = roost_xmalloc(strlen(HDR) + 1200);
    size_t h = strlen(HDR);

    for (size_t c = 0; c < 3; c++) {
        rec_t r;
        roost_xml_t *x;

        memcpy(in, HDR, h);
        memset(in + h, ' ', 500);
        strcpy(in + h + 500, "<a/>");
        memset(in + h + 504, '\n', 500);
        strcpy(in + h + 1004, "<b/>");
        x = new_parser(&r, &lim);
        ck_assert_int_eq(feed_chunks(x, in, strlen(in), chunks[c]), 0);
        ck_assert_int_eq(r.nstanza, 2);
        roost_xml_free(x);

        memset(in + h, ' ', 501);
        strcpy(in + h + 501, "<a/>");
        x = new_parser(&r, &lim);
        ck_assert_int_eq(feed_chunks(x, in, strlen(in), chunks[c]),
                         -ROOST_EINVAL);
        ck_assert_str_eq(r.log, HDR_LOG "E policy-violation\n");
        roost_xml_free(x);
    }
    roost_free(in);
}
END_TEST

START_TEST(test_limit_depth)
{
    roost_xml_limits_t lim = {262144, 4, 64};

    /* message is depth 1, so four levels below the root pass. */
    check_limit(&lim, HDR "<m><a><b><c/></b></a></m>", 1, 0);
    check_limit(&lim, HDR "<m><a><b><c><d/></c></b></a></m>", 0, 0);
    check_limit(&lim, HDR "<m><a><b><c><d/></c></b></a></m>", 0, 1);
    lim.max_depth = 1;
    check_limit(&lim, HDR "<m/>", 1, 0);
    check_limit(&lim, HDR "<m><a/></m>", 0, 0);
}
END_TEST

START_TEST(test_limit_attrs)
{
#define HDR_MIN "<stream:stream xmlns:stream='" ROOST_NS_STREAM "'>"
    roost_xml_limits_t lim = {262144, 64, 3};
    rec_t r;
    roost_xml_t *x;

    check_limit(&lim, HDR_MIN "<m a='1' b='2' c='3'/>", 1, 0);
    check_limit(&lim, HDR_MIN "<m a='1' b='2' c='3' d='4'/>", 0, 0);
    /* Namespace declarations count. */
    check_limit(&lim, HDR_MIN "<m xmlns='urn:x' a='1' b='2'/>", 1, 0);
    check_limit(&lim,
                HDR_MIN "<m xmlns='urn:x' xmlns:p='urn:p' a='1' "
                        "p:b='2'/>",
                0, 0);
    /* On children too, fed byte by byte. */
    check_limit(&lim, HDR_MIN "<m><c a='1' b='2' c='3'/></m>", 1, 1);
    check_limit(&lim, HDR_MIN "<m><c a='1' b='2' c='3' d='4'/></m>", 0, 1);
    /* And on the stream header (HDR has four). */
    x = new_parser(&r, &lim);
    ck_assert_int_eq(feed_str(x, HDR), -ROOST_EINVAL);
    ck_assert_str_eq(r.log, "E policy-violation\n");
    roost_xml_free(x);
#undef HDR_MIN
}
END_TEST

START_TEST(test_limit_memory)
{
    /* Distinct element names pile up in expat's tables for the life of a
     * stream: that has to hit a limit, not grow forever. */
    roost_xml_limits_t lim = {1024, 64, 64};
    rec_t r;
    roost_xml_t *x = new_parser(&r, &lim);
    char buf[600];
    int rc = 0, i;

    r.quiet = 1;
    ck_assert_int_eq(feed_str(x, HDR), 0);
    for (i = 0; i < 100000 && rc == 0; i++) {
        int n = snprintf(buf, sizeof(buf), "<n%0500d/>", i);

        rc = roost_xml_feed(x, buf, (size_t)n, NULL);
    }
    ck_assert_int_eq(rc, -ROOST_EINVAL);
    ck_assert(strstr(r.log, "E policy-violation\n") != NULL);
    ck_assert_int_gt(r.nstanza, 100); /* normal streams are unaffected */
    roost_xml_free(x);
}
END_TEST

START_TEST(test_limit_tree)
{
    /* A stanza of many empty elements costs more in tree nodes than in
     * bytes; it has its own budget. */
    roost_xml_limits_t lim = {200000, 64, 64};
    size_t h = strlen(HDR), n = 0;
    char *in = roost_xmalloc(h + 200010);
    rec_t r;
    roost_xml_t *x;

    memcpy(in, HDR "<m>", h + 3);
    n = h + 3;
    while (n + 4 < h + 199990) {
        memcpy(in + n, "<a/>", 4);
        n += 4;
    }
    memcpy(in + n, "</m>", 5);
    x = new_parser(&r, &lim);
    ck_assert_int_eq(feed_chunks(x, in, strlen(in), 4096), -ROOST_EINVAL);
    ck_assert_str_eq(r.log, HDR_LOG "E policy-violation\n");
    roost_xml_free(x);
    roost_free(in);
}
END_TEST

/* --- stop, consumed, reset --- */

START_TEST(test_stop_open)
{
    /* A header with stanzas pipelined behind it: stop after the header,
     * then the rest is fed again (no reset). */
    static const char in[] = HDR "<presence/><message/>";
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    size_t used = 99;

    r.stop_open = 1;
    ck_assert_int_eq(roost_xml_feed(x, in, strlen(in), &used), ROOST_EAGAIN);
    ck_assert_uint_eq(used, strlen(HDR));
    ck_assert_str_eq(r.log, HDR_LOG);
    ck_assert_int_eq(roost_xml_feed(x, in + used, strlen(in) - used, &used), 0);
    ck_assert_uint_eq(used, strlen(in) - strlen(HDR));
    ck_assert_str_eq(r.log, HDR_LOG "S <presence xmlns=\"jabber:client\"/>\n"
                                    "S <message xmlns=\"jabber:client\"/>\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_stop_restart)
{
    /* <starttls/> (or a SASL success) stops the parser; the bytes after
     * it belong to a new stream and are fed after a reset. */
    static const char first[] = HDR "<starttls xmlns='" ROOST_NS_TLS "'/>";
    static const char in[] =
        HDR "<starttls xmlns='" ROOST_NS_TLS "'/>"
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='" ROOST_NS_STREAM "' to='example.com' "
            "version='1.0'><auth/>";
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    size_t used = 0;

    r.stop_at = 1;
    ck_assert_int_eq(roost_xml_feed(x, in, strlen(in), &used), ROOST_EAGAIN);
    ck_assert_uint_eq(used, strlen(first));
    roost_xml_reset(x);
    r.len = 0;
    r.log[0] = '\0';
    ck_assert_int_eq(roost_xml_feed(x, in + used, strlen(in) - used, &used), 0);
    ck_assert_str_eq(r.log, HDR_LOG "S <auth xmlns=\"jabber:client\"/>\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_stop_each)
{
    /* Stop at every stanza of stream_in, fed in chunks of every size:
     * the stanzas come out the same, each stop at the right byte. */
    for (size_t chunk = 1; chunk <= strlen(stream_in); chunk += 11) {
        rec_t r;
        roost_xml_t *x = new_parser(&r, NULL);
        size_t off = 0, stops = 0;

        while (off < strlen(stream_in)) {
            size_t n = strlen(stream_in) - off, used = 0;
            int rc;

            if (n > chunk)
                n = chunk;
            r.stop_at = r.nstanza + 1; /* the next one stops */
            rc = roost_xml_feed(x, stream_in + off, n, &used);
            ck_assert_int_ge(rc, 0);
            if (rc == ROOST_EAGAIN) {
                stops++;
                /* The stopping stanza ends right before what is left. */
                ck_assert(strncmp(stream_in + off + used - 2, "e>", 2) == 0 ||
                          strncmp(stream_in + off + used - 2, "/>", 2) == 0 ||
                          strncmp(stream_in + off + used - 2, "q>", 2) == 0);
            }
            off += used;
        }
        ck_assert_uint_eq(stops, 4);
        ck_assert_str_eq(r.log, stream_log);
        roost_xml_free(x);
    }
}
END_TEST

START_TEST(test_stop_partial_refeed)
{
    /* After a stop, the rest may come back in small pieces. */
    static const char in[] = HDR "<a/><b/><c><d/></c>";
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    size_t used = 0, off;

    r.stop_open = 1;
    ck_assert_int_eq(roost_xml_feed(x, in, strlen(in), &used), ROOST_EAGAIN);
    off = used;
    r.stop_open = 0;
    r.stop_at = 2;
    while (off < strlen(in)) {
        int rc = roost_xml_feed(x, in + off, 1, &used);

        ck_assert_int_ge(rc, 0);
        ck_assert_uint_le(used, 1);
        if (rc == ROOST_EAGAIN)
            ck_assert_uint_eq(off + used, strlen(HDR) + 8); /* after <b/> */
        off += used;
    }
    ck_assert_str_eq(r.log, HDR_LOG "S <a xmlns=\"jabber:client\"/>\n"
                                    "S <b xmlns=\"jabber:client\"/>\n"
                                    "S <c xmlns=\"jabber:client\"><d/></c>\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_stop_empty_root)
{
    /* Stop on a header that is also the end of the stream: the close is
     * delivered on the next feed. */
    static const char in[] =
        "<stream:stream xmlns:stream='" ROOST_NS_STREAM "'/>";
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    size_t used = 0;

    r.stop_open = 1;
    ck_assert_int_eq(roost_xml_feed(x, in, strlen(in), &used), ROOST_EAGAIN);
    ck_assert_uint_eq(used, strlen(in));
    ck_assert_int_eq(r.nclose, 0);
    ck_assert_int_eq(roost_xml_feed(x, "", 0, &used), 0);
    ck_assert_int_eq(r.nclose, 1);
    ck_assert_str_eq(r.log, "O " ROOST_NS_STREAM "|stream [(null)]\nC\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_reset_in_callback)
{
    /* A callback that resets the parser (SASL success handled
     * synchronously) stops the feed at that stanza; the rest is a new
     * stream. */
    static const char in[] = HDR "<success/>" HDR "<iq/>";
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    size_t used = 0;

    r.reset_at = 1;
    ck_assert_int_eq(roost_xml_feed(x, in, strlen(in), &used), ROOST_EAGAIN);
    ck_assert_uint_eq(used, strlen(HDR) + 10);
    ck_assert_int_eq(roost_xml_feed(x, in + used, strlen(in) - used, &used), 0);
    ck_assert_str_eq(r.log,
                     HDR_LOG "S <success xmlns=\"jabber:client\"/>\n" HDR_LOG
                             "S <iq xmlns=\"jabber:client\"/>\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_free_in_callback)
{
    static const char in[] = HDR "<a/><b/>";
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);

    r.free_at = 1;
    /* Deferred to the end of the feed; ASan checks nothing is touched
     * after, and that nothing leaks. */
    ck_assert_int_eq(roost_xml_feed(x, in, strlen(in), NULL), ROOST_EAGAIN);
    ck_assert_int_eq(r.nstanza, 1);
}
END_TEST

START_TEST(test_reset_midstream)
{
    /* Reset in the middle of a stanza (and of a token) forgets it. */
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);

    ck_assert_int_eq(feed_str(x, HDR "<message><bo"), 0);
    roost_xml_reset(x);
    ck_assert_int_eq(feed_str(x, HDR "<presence/>"), 0);
    ck_assert_str_eq(r.log,
                     HDR_LOG HDR_LOG "S <presence xmlns=\"jabber:client\"/>\n");
    /* And after an error, reset brings it back to life. */
    ck_assert_int_eq(feed_str(x, "<!-- -->"), -ROOST_EINVAL);
    roost_xml_reset(x);
    ck_assert_int_eq(feed_str(x, HDR "<iq/>"), 0);
    ck_assert_int_eq(r.nstanza, 2);
    roost_xml_free(x);
}
END_TEST

/* --- stream close, namespaces --- */

START_TEST(test_close)
{
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);

    ck_assert_int_eq(feed_str(x, HDR "<a/></stream:stream>\n"), 0);
    ck_assert_int_eq(r.nclose, 1);
    ck_assert_int_eq(r.nerr, 0);
    roost_xml_free(x);

    /* A close in the middle of a stanza is an error, not a close. */
    x = new_parser(&r, NULL);
    ck_assert_int_eq(feed_str(x, HDR "<a></stream:stream>"), -ROOST_EINVAL);
    ck_assert_int_eq(r.nclose, 0);
    ck_assert_str_eq(r.log, HDR_LOG "E not-well-formed\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_server_ns)
{
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    roost_stanza_t *st;

    ck_assert_int_eq(
        feed_str(x, "<stream:stream xmlns='jabber:server' xmlns:db='jabber:"
                    "server:dialback' xmlns:stream='" ROOST_NS_STREAM "'>"
                    "<message from='a@b' to='c@d'><body>x</body>"
                    "<x xmlns='urn:x'><y xmlns='jabber:server'/></x>"
                    "</message><db:result/>"),
        0);
    ck_assert_str_eq(r.log, "O " ROOST_NS_STREAM "|stream [jabber:server]\n"
                            "S <message xmlns=\"jabber:client\" from=\"a@b\" "
                            "to=\"c@d\"><body>x</body><x xmlns=\"urn:x\"><y "
                            "xmlns=\"jabber:client\"/></x></message>\n"
                            "S <result xmlns=\"jabber:server:dialback\"/>\n");
    roost_xml_free(x);

    /* In a jabber:client stream, an explicit jabber:server stays. */
    x = new_parser(&r, NULL);
    ck_assert_int_eq(feed_str(x, HDR "<message xmlns='jabber:server'/>"), 0);
    ck_assert(strstr(r.log, "S <message xmlns=\"jabber:server\"/>") != NULL);
    roost_xml_free(x);

    /* Parsed stanzas report the namespace, and NULL for none. */
#define DOC "<a><b xmlns='urn:b'><c xmlns=''/></b></a>"
    st = roost_stanza_parse(DOC, strlen(DOC));
#undef DOC
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_null(roost_stanza_ns(st));
    ck_assert_str_eq(roost_stanza_ns(roost_stanza_first_child(st)), "urn:b");
    ck_assert_str_eq(
        roost_stanza_ns(roost_stanza_first_child(roost_stanza_first_child(st))),
        "");
    roost_stanza_unref(st);
}
END_TEST

/* roost_stanza_parse() from inside a stream parser's callback (a module
 * reading a stored item while handling a stanza): the document parser and
 * the stream parser keep apart (memory accounting, namespaces, errors),
 * and a failed document leaves the next one, and the stream, intact. */
typedef struct doc_in_cb {
    rec_t r;
    int n;
    char got[4][256];
} doc_in_cb_t;

static int
doc_in_cb_stanza(void *ud, roost_stanza_t *st)
{
    doc_in_cb_t *d = ud;
    static const char *const docs[] = {
        "<item xmlns='jabber:iq:roster' jid='a@b'><group>G</group></item>",
        "<a xmlns:p='urn:p'><p:b><!-- c --></p:b></a>",
        "<a><p:b/></a>",
        "<x xmlns='urn:x' xml:lang='en'/>",
    };
    const char *doc = docs[d->n % 4];
    roost_stanza_t *el = roost_stanza_parse(doc, strlen(doc));
    char *s = el != NULL ? roost_stanza_serialize(el, NULL, NULL) : NULL;

    snprintf(d->got[d->n % 4], sizeof(d->got[0]), "%s", s ? s : "NULL");
    roost_free(s);
    roost_stanza_unref(el);
    d->n++;
    return rec_stanza(&d->r, st);
}

START_TEST(test_doc_in_callback)
{
    doc_in_cb_t d;
    roost_xml_cb_t cb = {rec_open, doc_in_cb_stanza, rec_close, rec_error};
    roost_xml_limits_t lim = {65536, 16, 32};
    roost_xml_t *x;

    memset(&d, 0, sizeof(d));
    x = roost_xml_new(&lim, &cb, &d);
    d.r.x = x;
    ck_assert_int_eq(feed_str(x, HDR "<message><p:x xmlns:p='urn:p'/></message>"
                                     "<iq/><presence/><message/>"),
                     0);
    ck_assert_int_eq(d.n, 4);
    ck_assert_str_eq(d.got[0], "<item xmlns=\"jabber:iq:roster\" "
                               "jid=\"a@b\"><group>G</group></item>");
    ck_assert_str_eq(d.got[1], "NULL");
    ck_assert_str_eq(d.got[2], "NULL");
    ck_assert_str_eq(d.got[3], "<x xmlns=\"urn:x\" xml:lang=\"en\"/>");
    ck_assert_str_eq(d.r.log, HDR_LOG "S <message xmlns=\"jabber:client\"><x "
                                      "xmlns=\"urn:p\"/></message>\n"
                                      "S <iq xmlns=\"jabber:client\"/>\n"
                                      "S <presence xmlns=\"jabber:client\"/>\n"
                                      "S <message xmlns=\"jabber:client\"/>\n");
    ck_assert_int_eq(d.r.nerr, 0);
    roost_xml_free(x);
}
END_TEST

START_TEST(test_attr_names)
{
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);

    ck_assert_int_eq(feed_str(x,
                              "<stream:stream xmlns='jabber:client' "
                              "xmlns:stream='" ROOST_NS_STREAM
                              "' xmlns:e='urn:ext' xml:lang='en' "
                              "e:flag='1' stream:odd='2' version='1.0'>"
                              "<message xml:lang='fr' e:flag='x' plain='p'>"
                              "<x xmlns:q='urn:q' q:a='1' q:b='2'/></message>"),
                     0);
    ck_assert_str_eq(r.log,
                     "O " ROOST_NS_STREAM
                     "|stream xml:lang=en urn:ext|flag=1 " ROOST_NS_STREAM
                     "|odd=2 version=1.0 [jabber:client]\n"
                     "S <message xmlns=\"jabber:client\" xml:lang=\"fr\" "
                     "xmlns:ns2=\"urn:ext\" ns2:flag=\"x\" plain=\"p\"><x "
                     "xmlns:ns1=\"urn:q\" ns1:a=\"1\" ns1:b=\"2\"/>"
                     "</message>\n");
    roost_xml_free(x);
}
END_TEST

/* --- idle release --- */

/* feed_chunks(), releasing the parser after every feed (as the idle
 * sweep may); counts the releases that happened. */
static int
feed_release(roost_xml_t *x, const char *data, size_t len, size_t chunk,
             int *released)
{
    size_t off = 0;
    int rc = 0;

    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk, used = 0;

        rc = roost_xml_feed(x, data + off, n, &used);
        if (rc < 0)
            return rc;
        off += used;
        *released += roost_xml_release(x);
    }
    return rc;
}

/* Streams whose behaviour must not change when the parser is released
 * and rebuilt between feeds: prefixes and namespaces declared on the
 * root, jabber:server normalisation, the root's own prefix in its end
 * tag, and every error class after a release. */
static const char *const release_in[] = {
    stream_in,
    "<s:stream xmlns:s='" ROOST_NS_STREAM "' xmlns='jabber:client' "
    "xmlns:e='urn:ext' xmlns:q='urn:&amp;&lt;&apos;\"q&#9;&#10;&#13;x'>"
    "<message e:flag='1'><e:x q:a='2'/></message>\n"
    "<q:y/> <presence/></s:stream>",
    "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
    "xmlns:stream='" ROOST_NS_STREAM "'><message from='a@b'><body>x</body>"
    "</message><db:result/><iq><y xmlns='jabber:server'/></iq>",
    HDR "<a/></s:stream>",
    HDR "<a/><!-- no -->",
    HDR "<a/><?pi x?>",
    HDR "<a/><?xml version='1.0'?>",
    HDR "<a/>text",
    HDR "<a/><b>\xff</b>",
    HDR "<a/><b x='1' x='2'/>",
    HDR "<a/><u:b/>",
    HDR "<a/><b></c>",
    "<stream xmlns='" ROOST_NS_STREAM "' xmlns:c='jabber:client'>"
    "<c:message/></stream>",
};

START_TEST(test_release_same)
{
    const char *in = release_in[_i];
    size_t len = strlen(in);

    for (size_t c = 0; c < sizeof(chunk_sizes) / sizeof(chunk_sizes[0]); c++) {
        rec_t ref, r;
        roost_xml_t *x = new_parser(&ref, NULL);
        int rc_ref = feed_chunks(x, in, len, chunk_sizes[c]), rc, released = 0;

        roost_xml_free(x);
        x = new_parser(&r, NULL);
        rc = feed_release(x, in, len, chunk_sizes[c], &released);
        ck_assert_int_eq(rc, rc_ref);
        ck_assert_str_eq(r.log, ref.log);
        if (chunk_sizes[c] == 1 && _i == 0)
            ck_assert_int_ge(released, 4);
        roost_xml_free(x);
    }
}
END_TEST

START_TEST(test_release_when)
{
    rec_t r;
    roost_xml_t *x = new_parser(&r, NULL);
    size_t held;

    /* Nothing to restore yet: before the root, the parser stays. */
    ck_assert_int_eq(roost_xml_release(x), 0);
    ck_assert_int_eq(feed_str(x, HDR "<message><body>hi</body></message>"), 0);
    held = roost_xml_memory(x);
    ck_assert_int_eq(roost_xml_release(x), 1);
    ck_assert_int_eq(roost_xml_release(x), 1); /* already */
    ck_assert_uint_lt(roost_xml_memory(x), 2048);
    ck_assert_uint_lt(roost_xml_memory(x), held / 4);
    /* Inside a stanza, or with half a tag buffered, it stays. */
    ck_assert_int_eq(feed_str(x, "<message><body>"), 0);
    ck_assert_int_eq(roost_xml_release(x), 0);
    ck_assert_int_eq(feed_str(x, "x</body></message><pres"), 0);
    ck_assert_int_eq(roost_xml_release(x), 0);
    ck_assert_int_eq(feed_str(x, "ence/>\r\n  "), 0);
    ck_assert_int_eq(roost_xml_release(x), 1);
    ck_assert_int_eq(r.nstanza, 3);
    /* A reset while released starts over with a new header. */
    roost_xml_reset(x);
    ck_assert_int_eq(feed_str(x, HDR "<a/>"), 0);
    ck_assert_int_eq(r.nopen, 2);
    ck_assert_int_eq(roost_xml_release(x), 1);
    ck_assert_int_eq(feed_str(x, "</stream:stream>"), 0);
    ck_assert_int_eq(r.nclose, 1);
    ck_assert_int_eq(r.nerr, 0);
    roost_xml_free(x);

    /* Released and never fed again: freeing is fine. */
    x = new_parser(&r, NULL);
    ck_assert_int_eq(feed_str(x, HDR), 0);
    ck_assert_int_eq(roost_xml_release(x), 1);
    roost_xml_free(x);
}
END_TEST

START_TEST(test_release_limits)
{
    /* The whitespace run and the stanza size are counted across a
     * release: stream offsets do not restart with the new parser. */
    roost_xml_limits_t lim = {500, 64, 64};
    char ws[301];
    rec_t r;
    roost_xml_t *x = new_parser(&r, &lim);

    memset(ws, ' ', 300);
    ws[300] = '\0';
    ck_assert_int_eq(feed_str(x, HDR "<a/>"), 0);
    ck_assert_int_eq(feed_str(x, ws), 0);
    ck_assert_int_eq(roost_xml_release(x), 1);
    ck_assert_int_eq(feed_str(x, ws), -ROOST_EINVAL);
    ck_assert_str_eq(r.log, HDR_LOG "S <a xmlns=\"jabber:client\"/>\n"
                                    "E policy-violation\n");
    roost_xml_free(x);

    /* Attribute and depth limits still apply after a rebuild. */
    x = new_parser(&r, &lim);
    ck_assert_int_eq(feed_str(x, HDR "<a/>"), 0);
    ck_assert_int_eq(roost_xml_release(x), 1);
    {
        char big[2000];
        size_t n = 0;

        n += (size_t)snprintf(big + n, sizeof(big) - n, "<b");
        for (int i = 0; i < 65; i++)
            n += (size_t)snprintf(big + n, sizeof(big) - n, " a%d='1'", i);
        snprintf(big + n, sizeof(big) - n, "/>");
        ck_assert_int_eq(feed_str(x, big), -ROOST_EINVAL);
    }
    ck_assert_str_eq(r.log, HDR_LOG "S <a xmlns=\"jabber:client\"/>\n"
                                    "E policy-violation\n");
    roost_xml_free(x);
}
END_TEST

START_TEST(test_no_callbacks)
{
    /* NULL callbacks are skipped (stanzas are freed, not leaked). */
    roost_xml_cb_t none = {NULL, NULL, NULL, NULL};
    roost_xml_t *x = roost_xml_new(&lim_default, &none, NULL);

    ck_assert_int_eq(
        roost_xml_feed(x, HDR "<a/></stream:stream>", strlen(HDR) + 20, NULL),
        0);
    roost_xml_reset(x);
    ck_assert_int_eq(roost_xml_feed(x, "<!---->", 7, NULL), -ROOST_EINVAL);
    roost_xml_free(x);
    roost_xml_free(NULL);
}
END_TEST

static Suite *
xml_suite(void)
{
    Suite *s = suite_create("xml");
    TCase *tc;

#define ADD(name, fn)                                                          \
    do {                                                                       \
        tc = tcase_create(name);                                               \
        tcase_add_test(tc, fn);                                                \
        suite_add_tcase(s, tc);                                                \
    } while (0)
#define ADD_LOOP(name, fn, table)                                              \
    do {                                                                       \
        tc = tcase_create(name);                                               \
        tcase_add_loop_test(tc, fn, 0,                                         \
                            (int)(sizeof(table) / sizeof(table[0])));          \
        suite_add_tcase(s, tc);                                                \
    } while (0)
    ADD_LOOP("stream_chunks", test_stream_chunks, chunk_sizes);
    ADD("utf8_split", test_utf8_split);
    ADD_LOOP("refused", test_refused, refused);
    ADD("allowed", test_allowed);
    ADD("limit_stanza", test_limit_stanza);
    ADD("limit_open_tag", test_limit_open_tag);
    ADD("limit_whitespace", test_limit_whitespace);
    ADD("limit_depth", test_limit_depth);
    ADD("limit_attrs", test_limit_attrs);
    ADD("limit_memory", test_limit_memory);
    ADD("limit_tree", test_limit_tree);
    ADD("stop_open", test_stop_open);
    ADD("stop_restart", test_stop_restart);
    ADD("stop_each", test_stop_each);
    ADD("stop_partial_refeed", test_stop_partial_refeed);
    ADD("stop_empty_root", test_stop_empty_root);
    ADD("reset_in_callback", test_reset_in_callback);
    ADD("free_in_callback", test_free_in_callback);
    ADD("reset_midstream", test_reset_midstream);
    ADD("close", test_close);
    ADD("server_ns", test_server_ns);
    ADD("attr_names", test_attr_names);
    ADD("doc_in_callback", test_doc_in_callback);
    ADD("no_callbacks", test_no_callbacks);
    ADD_LOOP("release_same", test_release_same, release_in);
    ADD("release_when", test_release_when);
    ADD("release_limits", test_release_limits);
#undef ADD
#undef ADD_LOOP
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(xml_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
