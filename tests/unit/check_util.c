/* tests/unit/check_util.c: unit tests for core/util.c's roost/util.h
 * helpers: SHA-1 (FIPS 180-4 / RFC 3174 vectors, raw and hex) and base64
 * (RFC 4648 §10 vectors, the strict decoder's refusals, whitespace, a
 * round trip over every length up to a few blocks).  Not for the
 * allocation wrappers (every other suite uses them). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <roost/util.h>

static const struct {
    const char *in;
    const char *hex;
} sha1_vectors[] = {
    {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
    {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    {"The quick brown fox jumps over the lazy dog",
     "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
};

START_TEST(test_sha1_hex)
{
    char hex[ROOST_SHA1_HEX_SIZE];

    roost_sha1_hex(sha1_vectors[_i].in, strlen(sha1_vectors[_i].in), hex);
    ck_assert_str_eq(hex, sha1_vectors[_i].hex);
}
END_TEST

/* Raw digest, and a NULL pointer with length 0; a million 'a' (RFC 3174
 * test 3) crosses many blocks. */
START_TEST(test_sha1_raw)
{
    static const unsigned char abc[ROOST_SHA1_LEN] = {
        0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e,
        0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d};
    unsigned char d[ROOST_SHA1_LEN];
    char hex[ROOST_SHA1_HEX_SIZE];
    char *a = roost_xmalloc(1000000);

    roost_sha1("abc", 3, d);
    ck_assert_mem_eq(d, abc, sizeof(abc));
    roost_sha1_hex(NULL, 0, hex);
    ck_assert_str_eq(hex, sha1_vectors[0].hex);
    ck_assert_ptr_nonnull(a);
    memset(a, 'a', 1000000);
    roost_sha1_hex(a, 1000000, hex);
    ck_assert_str_eq(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    roost_free(a);
}
END_TEST

/* RFC 4648 §10. */
static const struct {
    const char *raw, *b64;
} b64_vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

START_TEST(test_b64_vectors)
{
    const char *raw = b64_vectors[_i].raw;
    char *enc = roost_base64_encode(raw, strlen(raw));
    unsigned char *dec;
    size_t n = 99;

    ck_assert_str_eq(enc, b64_vectors[_i].b64);
    dec = roost_base64_decode(enc, &n);
    ck_assert_ptr_nonnull(dec);
    ck_assert_uint_eq(n, strlen(raw));
    ck_assert_mem_eq(dec, raw, n);
    roost_free(enc);
    roost_free(dec);
}
END_TEST

/* Strict: refused outright. */
static const char *const b64_bad[] = {
    "Zg",       /* not whole groups */
    "Zg=",      /* padding incomplete */
    "Zg===",    /* too much padding */
    "Z===",     /* a group of one character */
    "====",     /* only padding */
    "Zg==Zm8=", /* padding before the end */
    "Zm=8",     /* '=' inside a group */
    "Zm9v!A==", /* outside the alphabet */
    "Zm9v-_==", /* the URL alphabet (RFC 4648 §5) is another one */
    "Zh==",     /* unused bits set (one byte) */
    "Zm9=",     /* unused bits set (two bytes) */
    "Zm9v\v",   /* vertical tab is not skipped */
};

START_TEST(test_b64_strict)
{
    size_t n = 0;

    ck_assert_ptr_null(roost_base64_decode(b64_bad[_i], &n));
}
END_TEST

/* Whitespace anywhere is skipped (vCards wrap BINVAL). */
START_TEST(test_b64_whitespace)
{
    size_t n = 0;
    unsigned char *d = roost_base64_decode(" Zm9v\r\n\tYm\nFy \n", &n);

    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(n, 6);
    ck_assert_mem_eq(d, "foobar", 6);
    roost_free(d);
    d = roost_base64_decode(" \n", &n);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(n, 0);
    roost_free(d);
}
END_TEST

/* Every length from 0 to 300 bytes of every byte value round-trips. */
START_TEST(test_b64_roundtrip)
{
    unsigned char in[300];

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(in); len++) {
        char *enc = roost_base64_encode(in, len);
        unsigned char *dec;
        size_t n = 0;

        ck_assert_uint_eq(strlen(enc), (len + 2) / 3 * 4);
        dec = roost_base64_decode(enc, &n);
        ck_assert_ptr_nonnull(dec);
        ck_assert_uint_eq(n, len);
        ck_assert(len == 0 || memcmp(dec, in, len) == 0);
        roost_free(enc);
        roost_free(dec);
    }
}
END_TEST

static Suite *
util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("sha1");

    tcase_add_loop_test(tc, test_sha1_hex, 0,
                        sizeof(sha1_vectors) / sizeof(sha1_vectors[0]));
    tcase_add_test(tc, test_sha1_raw);
    suite_add_tcase(s, tc);
    tc = tcase_create("base64");
    tcase_add_loop_test(tc, test_b64_vectors, 0,
                        sizeof(b64_vectors) / sizeof(b64_vectors[0]));
    tcase_add_loop_test(tc, test_b64_strict, 0,
                        sizeof(b64_bad) / sizeof(b64_bad[0]));
    tcase_add_test(tc, test_b64_whitespace);
    tcase_add_test(tc, test_b64_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
