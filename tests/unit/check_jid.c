/* tests/unit/check_jid.c: unit tests for core/jid.c.
 *
 * Covers the RFC 7622 §3.5/§3.6 examples (asserting what libidn's
 * stringprep profiles do where they differ from PRECIS), case folding,
 * length limits, domain forms (trailing dot, IP literals, IDNA), the
 * constructors, comparisons and the prep_* helpers.  Not a fuzzer: see
 * tests/fuzz/fuzz_jid.c. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

#include <roost/jid.h>

typedef struct {
    const char *in;
    const char *node, *domain, *resource; /* expected prepared parts */
} jid_case_t;

static const jid_case_t valid[] = {
    /* RFC 7622 §3.5 */
    {"juliet@example.com", "juliet", "example.com", NULL},
    {"juliet@example.com/foo", "juliet", "example.com", "foo"},
    {"juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
    {"juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"},
    {"foo\\20bar@example.com", "foo\\20bar", "example.com", NULL},
    {"fussball@example.com", "fussball", "example.com", NULL},
    /* nodeprep case-folds U+00DF to "ss" (PRECIS would keep it) */
    {"fu\xc3\x9f"
     "ball@example.com",
     "fussball", "example.com", NULL},
    {"\xcf\x80@example.com", "\xcf\x80", "example.com", NULL},
    /* Σ folds to σ; final ς also folds to σ under stringprep */
    {"\xce\xa3@example.com", "\xcf\x83", "example.com", NULL},
    {"\xcf\x82@example.com", "\xcf\x83", "example.com", NULL},
    {"king@example.com/\xe2\x99\x9a", "king", "example.com", "\xe2\x99\x9a"},
    {"example.com", NULL, "example.com", NULL},
    {"example.com/foobar", NULL, "example.com", "foobar"},
    {"a.example.com/b@example.net", NULL, "a.example.com", "b@example.net"},
    /* §3.6 lists these as invalid under PRECIS; libidn's stringprep
     * profiles accept them, as Prosody and ejabberd do: resourceprep
     * keeps a leading space, nodeprep maps U+2163 to "iv" by NFKC and
     * does not prohibit symbols such as U+265A. */
    {"juliet@example.com/ foo", "juliet", "example.com", " foo"},
    {"henry\xe2\x85\xa3@example.com", "henryiv", "example.com", NULL},
    {"\xe2\x99\x9a@example.com", "\xe2\x99\x9a", "example.com", NULL},
    /* case: localpart and domain folded, resource kept */
    {"Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony"},
    {"JULIET@EXAMPLE.COM", "juliet", "example.com", NULL},
    /* resource may hold '/' and '@'; first '@' before it splits */
    {"a@b.example/c/d@e", "a", "b.example", "c/d@e"},
    {"b.example/@", NULL, "b.example", "@"},
    /* trailing dot stripped, once */
    {"juliet@example.com.", "juliet", "example.com", NULL},
    {"example.com./r", NULL, "example.com", "r"},
    /* IP literals kept as is (IPv6 lowercased) */
    {"juliet@[::1]", "juliet", "[::1]", NULL},
    {"[2001:DB8::A]/r", NULL, "[2001:db8::a]", "r"},
    {"juliet@192.0.2.1", "juliet", "192.0.2.1", NULL},
    {"192.0.2.1./x", NULL, "192.0.2.1", "x"},
    /* IDN: nameprep'd U-labels; A-labels decoded (RFC 7622 §3.2) */
    {"juliet@\xc3\x9cNICODE.example", "juliet", "\xc3\xbcnicode.example", NULL},
    {"juliet@xn--nicode-2ya.example", "juliet", "\xc3\xbcnicode.example", NULL},
    {"XN--NICODE-2YA.Example", NULL, "\xc3\xbcnicode.example", NULL},
    {"fa\xc3\x9f.example", NULL, "fass.example", NULL},
    {"a_b.example", NULL, "a_b.example", NULL},
    {"localhost", NULL, "localhost", NULL},
    /* soft hyphen maps to nothing inside a part */
    {"ju\xc2\xadliet@example.com", "juliet", "example.com", NULL},
};

static const char *const invalid[] = {
    /* RFC 7622 §3.6 (those stringprep also refuses) */
    "\"juliet\"@example.com",
    "foo bar@example.com",
    "@example.com",
    "@example.com/",
    "juliet@",
    "/foobar",
    /* empty parts next to separators */
    "",
    "@",
    "/",
    "@/",
    "example.com/",
    "juliet@example.com/",
    "juliet@/res",
    /* nodeprep-prohibited characters (besides '"' and ' ' above) */
    "a&b@example.com",
    "a'b@example.com",
    "a:b@example.com",
    "a<b@example.com",
    "a>b@example.com",
    /* fullwidth '@' maps to '@' in NFKC and is then prohibited */
    "a\xef\xbc\xa0"
    "b@example.com",
    "juliet@a\xef\xbc\xa0"
    "b.example",
    /* '@' after the first one lands in the domain */
    "a@b@example.com",
    /* controls */
    "juliet@example.com/a\x01"
    "b",
    "a\x7f"
    "b@example.com",
    /* invalid UTF-8: stray byte, overlong NUL, surrogate, truncated,
     * beyond U+10FFFF */
    "\xff@example.com",
    "juliet@example.com/\xc0\x80",
    "\xed\xa0\x80@example.com",
    "juliet@example.com/\xe2\x99",
    "\xf4\x90\x80\x80@example.com",
    /* a part that maps to nothing */
    "\xc2\xad@example.com",
    /* domains */
    "juliet@exa mple.com",
    "juliet@-example.com",
    "juliet@example-.com",
    "juliet@example..com",
    "juliet@.example.com",
    "juliet@example.com..",
    "juliet@.",
    ".",
    "juliet@[::1",
    "juliet@[zz::1]",
    "juliet@[192.0.2.1]",
    "example\xe3\x80\x82"
    "com",
    "xn--zz.example",
    "xn--a.example",
    "xn--ls8h.example",
    "\xef\xbd\x98\xef\xbd\x8e--nicode-2ya.example",
    "a!b.example",
    "a,b.example",
};

static void
check_parts(const roost_jid_t *j, const jid_case_t *c)
{
    char full[4096];

    ck_assert_ptr_nonnull(j);
    if (c->node)
        ck_assert_str_eq(roost_jid_node(j), c->node);
    else
        ck_assert_ptr_null(roost_jid_node(j));
    ck_assert_str_eq(roost_jid_domain(j), c->domain);
    if (c->resource)
        ck_assert_str_eq(roost_jid_resource(j), c->resource);
    else
        ck_assert_ptr_null(roost_jid_resource(j));
    snprintf(full, sizeof(full), "%s%s%s", c->node ? c->node : "",
             c->node ? "@" : "", c->domain);
    ck_assert_str_eq(roost_jid_bare(j), full);
    snprintf(full + strlen(full), sizeof(full) - strlen(full), "%s%s",
             c->resource ? "/" : "", c->resource ? c->resource : "");
    ck_assert_str_eq(roost_jid_full(j), full);
}

START_TEST(test_valid)
{
    const jid_case_t *c = &valid[_i];
    roost_jid_t *j = roost_jid_new(c->in), *again;

    check_parts(j, c);
    /* the prepared form is a fixed point */
    again = roost_jid_new(roost_jid_full(j));
    ck_assert_ptr_nonnull(again);
    ck_assert_str_eq(roost_jid_full(again), roost_jid_full(j));
    ck_assert(roost_jid_eq(j, again));
    roost_jid_free(again);
    roost_jid_free(j);
}
END_TEST

START_TEST(test_invalid)
{
    roost_jid_t *j = roost_jid_new(invalid[_i]);

    if (j != NULL)
        ck_abort_msg("accepted \"%s\" as %s", invalid[_i], roost_jid_full(j));
}
END_TEST

START_TEST(test_null)
{
    ck_assert_ptr_null(roost_jid_new(NULL));
    ck_assert_ptr_null(roost_jid_from_parts("a", NULL, NULL));
    ck_assert_ptr_null(roost_jid_dup(NULL));
    ck_assert_ptr_null(roost_jid_prep_node(NULL));
    ck_assert_ptr_null(roost_jid_prep_domain(NULL));
    ck_assert_ptr_null(roost_jid_prep_resource(NULL));
    roost_jid_free(NULL);
}
END_TEST

/* n bytes: repeats of unit, then pad to n with 'a'. */
static char *
fill(const char *unit, size_t n)
{
    char *s = roost_xmalloc(n + 1);
    size_t u = strlen(unit), i = 0;

    while (i + u <= n) {
        memcpy(s + i, unit, u);
        i += u;
    }
    memset(s + i, 'a', n - i);
    s[n] = '\0';
    return s;
}

typedef struct {
    const char *pre, *post; /* around the generated part */
    const char *unit;
    size_t len;
    int ok;
} len_case_t;

static const len_case_t lengths[] = {
    {"", "@example.com", "a", 1023, 1},
    {"", "@example.com", "a", 1024, 0},
    /* 511 x π (2 bytes) + 'a': byte, not character, limit */
    {"", "@example.com", "\xcf\x80", 1023, 1},
    {"", "@example.com", "\xcf\x80", 1024, 0},
    {"juliet@example.com/", "", "a", 1023, 1},
    {"juliet@example.com/", "", "a", 1024, 0},
    {"juliet@example.com/", "", "\xe2\x99\x9a", 1023, 1},
    {"juliet@example.com/", "", "\xe2\x99\x9a", 1024, 0},
    /* labels of one letter: "a.a.a...a" */
    {"juliet@", "", "a.", 1023, 1},
    {"juliet@", "", "ab.", 1024, 0}, /* "ab.ab...ab.a" */
    {"", "/r", "a.", 1023, 1},
    {"", "/r", "ab.", 1024, 0},
};

START_TEST(test_length)
{
    const len_case_t *c = &lengths[_i];
    char *part = fill(c->unit, c->len), buf[4096];
    roost_jid_t *j;

    snprintf(buf, sizeof(buf), "%s%s%s", c->pre, part, c->post);
    j = roost_jid_new(buf);
    ck_assert_msg((j != NULL) == c->ok, "%s part of %zu bytes", c->unit,
                  c->len);
    roost_jid_free(j);
    roost_free(part);
}
END_TEST

START_TEST(test_length_misc)
{
    char *s = fill("a", 1023), buf[4096];
    roost_jid_t *j;

    /* a domain of 1023 bytes plus its trailing dot */
    for (size_t i = 1; i < 1023; i += 2)
        s[i] = '.';
    snprintf(buf, sizeof(buf), "%s.", s);
    j = roost_jid_new(buf);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(roost_jid_domain(j), s);
    roost_jid_free(j);
    /* all three parts at the limit */
    {
        char *n = fill("b", 1023), *r = fill("R", 1023), big[4096];

        snprintf(big, sizeof(big), "%s@%s./%s", n, s, r);
        j = roost_jid_new(big);
        ck_assert_ptr_nonnull(j);
        ck_assert_uint_eq(strlen(roost_jid_full(j)), 3 * 1023 + 2);
        roost_jid_free(j);
        /* one byte more anywhere fails */
        snprintf(big, sizeof(big), "%s@%s./%sR", n, s, r);
        ck_assert_ptr_null(roost_jid_new(big));
        roost_free(n);
        roost_free(r);
    }
    roost_free(s);

    /* labels: 63 bytes fine, 64 not */
    s = fill("a", 64);
    snprintf(buf, sizeof(buf), "juliet@%s.example", s);
    ck_assert_ptr_null(roost_jid_new(buf));
    s[63] = '\0';
    snprintf(buf, sizeof(buf), "juliet@%s.example", s);
    j = roost_jid_new(buf);
    ck_assert_ptr_nonnull(j);
    roost_jid_free(j);
    roost_free(s);

    /* U+0130 case-folds to "i" U+0307 (2 -> 3 bytes): 1023 bytes of
     * input that prepare to 1024 are refused */
    s = fill("a", 1023);
    memcpy(s + 1021, "\xc4\xb0", 2);
    snprintf(buf, sizeof(buf), "%s@example.com", s);
    ck_assert_ptr_null(roost_jid_new(buf));
    s[1022] = '\0';
    s[1021] = 'a';
    memcpy(s + 1019, "\xc4\xb0", 2);
    snprintf(buf, sizeof(buf), "%s@example.com", s);
    j = roost_jid_new(buf);
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(strlen(roost_jid_node(j)), 1023);
    roost_jid_free(j);
    roost_free(s);
}
END_TEST

START_TEST(test_from_parts)
{
    roost_jid_t *j = roost_jid_from_parts("Juliet", "Example.COM.", "Foo");
    roost_jid_t *k;

    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(roost_jid_full(j), "juliet@example.com/Foo");
    k = roost_jid_new("JULIET@example.com/Foo");
    ck_assert(roost_jid_eq(j, k));
    roost_jid_free(k);
    roost_jid_free(j);

    j = roost_jid_from_parts(NULL, "example.com", NULL);
    ck_assert_str_eq(roost_jid_full(j), "example.com");
    ck_assert_ptr_eq(roost_jid_bare(j), roost_jid_full(j));
    roost_jid_free(j);

    /* the resource may contain what would be separators in a string */
    j = roost_jid_from_parts("a", "example.com", "x/y@z");
    ck_assert_str_eq(roost_jid_resource(j), "x/y@z");
    roost_jid_free(j);

    ck_assert_ptr_null(roost_jid_from_parts("", "example.com", NULL));
    ck_assert_ptr_null(roost_jid_from_parts("a", "example.com", ""));
    ck_assert_ptr_null(roost_jid_from_parts("a", "", NULL));
    ck_assert_ptr_null(roost_jid_from_parts("a b", "example.com", NULL));
    ck_assert_ptr_null(roost_jid_from_parts("a@b", "example.com", NULL));
    ck_assert_ptr_null(roost_jid_from_parts("a/b", "example.com", NULL));
    ck_assert_ptr_null(roost_jid_from_parts(NULL, "a@example.com", NULL));
    ck_assert_ptr_null(roost_jid_from_parts(NULL, "a/b", NULL));
    ck_assert_ptr_null(roost_jid_from_parts("a", "example.com", "\x01"));
}
END_TEST

START_TEST(test_dup)
{
    const char *in[] = {"a@b.example/r", "a@b.example", "b.example",
                        "b.example/r"};

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        roost_jid_t *j = roost_jid_new(in[i]), *d = roost_jid_dup(j);
        jid_case_t c = {NULL, NULL, "b.example", NULL};

        c.node = roost_jid_node(j) ? "a" : NULL;
        c.resource = roost_jid_resource(j) ? "r" : NULL;
        ck_assert_ptr_ne(j, d);
        ck_assert(roost_jid_eq(j, d));
        roost_jid_free(j);
        /* the copy owns its strings */
        check_parts(d, &c);
        roost_jid_free(d);
    }
}
END_TEST

START_TEST(test_eq)
{
    roost_jid_t *a = roost_jid_new("Juliet@Example.com/Balcony");
    roost_jid_t *b = roost_jid_new("juliet@example.com./Balcony");
    roost_jid_t *c = roost_jid_new("juliet@example.com/balcony");
    roost_jid_t *d = roost_jid_new("juliet@example.com");
    roost_jid_t *e = roost_jid_new("romeo@example.com/Balcony");
    roost_jid_t *f = roost_jid_new("example.com");

    ck_assert(roost_jid_eq(a, b));
    ck_assert(!roost_jid_eq(a, c)); /* resources are case-sensitive */
    ck_assert(!roost_jid_eq(a, d));
    ck_assert(!roost_jid_eq(a, e));
    ck_assert(roost_jid_bare_eq(a, c));
    ck_assert(roost_jid_bare_eq(a, d));
    ck_assert(!roost_jid_bare_eq(a, e));
    ck_assert(!roost_jid_bare_eq(d, f));
    ck_assert(!roost_jid_eq(a, NULL));
    ck_assert(!roost_jid_bare_eq(NULL, a));
    ck_assert(roost_jid_eq(NULL, NULL));
    ck_assert(roost_jid_bare_eq(NULL, NULL));
    roost_jid_free(a);
    roost_jid_free(b);
    roost_jid_free(c);
    roost_jid_free(d);
    roost_jid_free(e);
    roost_jid_free(f);
}
END_TEST

typedef struct {
    char *(*fn)(const char *);
    const char *in, *out; /* out NULL: invalid */
} prep_case_t;

static const prep_case_t preps[] = {
    {roost_jid_prep_node, "Juliet", "juliet"},
    {roost_jid_prep_node, "\xce\xa3", "\xcf\x83"},
    {roost_jid_prep_node, "a@b", NULL},
    {roost_jid_prep_node, "a/b", NULL},
    {roost_jid_prep_node, "", NULL},
    {roost_jid_prep_node, "\xff", NULL},
    {roost_jid_prep_domain, "Example.COM.", "example.com"},
    {roost_jid_prep_domain, "xn--nicode-2ya.example", "\xc3\xbcnicode.example"},
    {roost_jid_prep_domain, "[::FFFF:192.0.2.1]", "[::ffff:192.0.2.1]"},
    {roost_jid_prep_domain, "10.0.0.1", "10.0.0.1"},
    {roost_jid_prep_domain, "a@b", NULL},
    {roost_jid_prep_domain, "a/b", NULL},
    {roost_jid_prep_domain, "", NULL},
    {roost_jid_prep_domain, ".", NULL},
    {roost_jid_prep_resource, "Foo Bar", "Foo Bar"},
    {roost_jid_prep_resource, "a/b@c", "a/b@c"},
    {roost_jid_prep_resource, "\xef\xbc\xa1", "A"}, /* NFKC, no fold */
    {roost_jid_prep_resource, "", NULL},
    {roost_jid_prep_resource, "a\nb", NULL},
};

START_TEST(test_prep)
{
    const prep_case_t *c = &preps[_i];
    char *out = c->fn(c->in);

    if (c->out == NULL) {
        ck_assert_msg(out == NULL, "\"%s\" -> \"%s\"", c->in, out);
    } else {
        ck_assert_ptr_nonnull(out);
        ck_assert_str_eq(out, c->out);
    }
    roost_free(out);
}
END_TEST

static void *
thread_parse(void *arg)
{
    long bad = 0;

    for (int n = 0; n < 2000; n++) {
        const jid_case_t *c = &valid[n % (sizeof(valid) / sizeof(valid[0]))];
        roost_jid_t *j = roost_jid_new(c->in);

        if (j == NULL || strcmp(roost_jid_domain(j), c->domain) != 0)
            bad++;
        roost_jid_free(j);
    }
    return (void *)bad;
}

START_TEST(test_threads)
{
    pthread_t t[4];

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thread_parse, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;

        pthread_join(t[i], &bad);
        ck_assert_ptr_null(bad);
    }
}
END_TEST

/* The ASCII fast path of core/jid.c gives what libidn's nodeprep and
 * resourceprep give, for every ASCII byte inside, first and alone. */
START_TEST(test_ascii_fast_path)
{
    for (int c = 1; c < 0x80; c++) {
        char in[3][8], want[32];
        int n = 0;

        snprintf(in[n++], sizeof(in[0]), "a%cB", c);
        snprintf(in[n++], sizeof(in[0]), "%cz", c);
        snprintf(in[n++], sizeof(in[0]), "%c", c);
        for (int i = 0; i < n; i++) {
            for (int part = 0; part < 2; part++) {
                char *got = part == 0 ? roost_jid_prep_node(in[i])
                                      : roost_jid_prep_resource(in[i]);
                int rc;

                snprintf(want, sizeof(want), "%s", in[i]);
                rc = part == 0
                         ? stringprep_xmpp_nodeprep(want, sizeof(want))
                         : stringprep_xmpp_resourceprep(want, sizeof(want));
                if (rc != STRINGPREP_OK || want[0] == '\0')
                    ck_assert_msg(got == NULL, "%s 0x%02x case %d: %s accepted",
                                  part ? "resource" : "node", c, i, got);
                else
                    ck_assert_msg(got != NULL && strcmp(got, want) == 0,
                                  "%s 0x%02x case %d: %s, want %s",
                                  part ? "resource" : "node", c, i,
                                  got ? got : "(null)", want);
                roost_free(got);
            }
        }
    }
}
END_TEST

/* The domain cache answers as the first preparation did, also for
 * invalid domains, and keeps distinct inputs apart. */
START_TEST(test_domain_cache)
{
    static const char *const in[] = {"Example.COM", "example.com",
                                     "b\xc3\xbc"
                                     "cher.example",
                                     "bad domain", "xn--bcher-kva.example"};
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 5; i++) {
            char *d = roost_jid_prep_domain(in[i]);

            if (i == 3)
                ck_assert_ptr_null(d);
            else if (i < 2)
                ck_assert_str_eq(d, "example.com");
            else
                ck_assert_str_eq(d, "b\xc3\xbc"
                                    "cher.example");
            roost_free(d);
        }
}
END_TEST

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
jid_suite(void)
{
    Suite *s = suite_create("jid");
    TCase *tc;

    tc = tcase_create("valid");
    tcase_add_loop_test(tc, test_valid, 0, NELEM(valid));
    suite_add_tcase(s, tc);
    tc = tcase_create("invalid");
    tcase_add_loop_test(tc, test_invalid, 0, NELEM(invalid));
    tcase_add_test(tc, test_null);
    suite_add_tcase(s, tc);
    tc = tcase_create("length");
    tcase_add_loop_test(tc, test_length, 0, NELEM(lengths));
    tcase_add_test(tc, test_length_misc);
    suite_add_tcase(s, tc);
    tc = tcase_create("from_parts");
    tcase_add_test(tc, test_from_parts);
    suite_add_tcase(s, tc);
    tc = tcase_create("dup");
    tcase_add_test(tc, test_dup);
    suite_add_tcase(s, tc);
    tc = tcase_create("eq");
    tcase_add_test(tc, test_eq);
    suite_add_tcase(s, tc);
    tc = tcase_create("prep");
    tcase_add_loop_test(tc, test_prep, 0, NELEM(preps));
    tcase_add_test(tc, test_ascii_fast_path);
    tcase_add_test(tc, test_domain_cache);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(jid_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
