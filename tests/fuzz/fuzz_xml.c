/* tests/fuzz/fuzz_xml.c: libFuzzer target for core/xml.c and the
 * serialiser in core/stanza.c.
 *
 * The input is a raw stream.  It is fed to roost_xml_feed() in chunks whose
 * sizes come from a PRNG seeded by a hash of the input (so corpus files are
 * plain XML and every run of one input is the same), stopping at some
 * events and sometimes resetting after a stop, the way core/stream.c does
 * for STARTTLS and SASL restarts.  Each stanza must survive
 * serialise -> roost_stanza_parse -> serialise byte for byte, and a copy
 * must serialise the same; the whole input is also tried as one document
 * with roost_stanza_parse(); anything else aborts.  Not a test of stream
 * semantics (see fuzz_stream.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

typedef struct fuzz_state {
    uint64_t rng;
    roost_xml_t *x;
    int errors;
} fuzz_state_t;

static uint64_t
fuzz_next(fuzz_state_t *f)
{
    /* xorshift64* */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 0x2545F4914F6CDD1DULL;
}

static void
fuzz_check(int ok)
{
    if (!ok)
        abort();
}

static int
fuzz_open(void *ud, const char *ns, const char *name, const char *const *attrs,
          const char *default_ns)
{
    fuzz_state_t *f = ud;

    fuzz_check(name != NULL && *name != '\0');
    for (size_t i = 0; attrs[i] != NULL; i += 2)
        fuzz_check(attrs[i + 1] != NULL);
    return (fuzz_next(f) & 3) == 0;
}

/* serialise -> parse -> serialise is the identity on the bytes. */
static void
fuzz_roundtrip(const roost_stanza_t *st)
{
    size_t l1, l2;
    char *s1 = roost_stanza_serialize(st, NULL, &l1), *s2;
    roost_stanza_t *t = roost_stanza_parse(s1, l1);

    fuzz_check(t != NULL);
    s2 = roost_stanza_serialize(t, NULL, &l2);
    fuzz_check(l1 == l2 && memcmp(s1, s2, l1) == 0);
    roost_free(s1);
    roost_free(s2);
    roost_stanza_unref(t);
}

static int
fuzz_stanza(void *ud, roost_stanza_t *st)
{
    fuzz_state_t *f = ud;
    size_t l1, l3, lc;
    char *s1 = roost_stanza_serialize(st, NULL, &l1), *s3, *sc;
    roost_stanza_t *c, *tc;

    fuzz_roundtrip(st);
    c = roost_stanza_copy(st);
    s3 = roost_stanza_serialize(c, NULL, &l3);
    fuzz_check(l1 == l3 && memcmp(s1, s3, l1) == 0);
    /* Written inside a c2s stream it must still be well-formed. */
    sc = roost_stanza_serialize(st, ROOST_NS_CLIENT, &lc);
    tc = roost_stanza_parse(sc, lc);
    fuzz_check(tc != NULL);
    roost_stanza_unref(tc);
    roost_free(sc);
    roost_free(s1);
    roost_free(s3);
    roost_stanza_unref(c);
    roost_stanza_unref(st);
    return (fuzz_next(f) & 7) == 0;
}

static void
fuzz_close(void *ud)
{
}

static void
fuzz_error(void *ud, const char *cond, const char *text)
{
    fuzz_state_t *f = ud;

    fuzz_check(cond != NULL && text != NULL);
    f->errors++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const roost_xml_cb_t cb = {fuzz_open, fuzz_stanza, fuzz_close,
                                      fuzz_error};
    static const roost_xml_limits_t lim = {16384, 32, 32};
    fuzz_state_t f = {14695981039346656037ULL, NULL, 0};
    roost_stanza_t *doc;
    size_t off = 0;

    /* The whole input as one document, too. */
    doc = roost_stanza_parse((const char *)data, size);
    if (doc != NULL) {
        fuzz_roundtrip(doc);
        roost_stanza_unref(doc);
    }
    for (size_t i = 0; i < size; i++)
        f.rng = (f.rng ^ data[i]) * 1099511628211ULL;
    if (f.rng == 0)
        f.rng = 1;
    f.x = roost_xml_new(&lim, &cb, &f);
    while (off < size) {
        size_t n = 1 + (size_t)(fuzz_next(&f) % 64), used = 0;
        int rc;

        if (n > size - off)
            n = size - off;
        rc = roost_xml_feed(f.x, (const char *)data + off, n, &used);
        if (rc < 0) {
            fuzz_check(f.errors == 1);
            break;
        }
        fuzz_check(used <= n && (rc != 0 || used == n));
        off += used;
        if (rc == ROOST_EAGAIN && (fuzz_next(&f) & 3) == 0)
            roost_xml_reset(f.x);
    }
    fuzz_check(f.errors <= 1);
    fuzz_check(roost_xml_memory(f.x) > 0);
    roost_xml_free(f.x);
    return 0;
}
