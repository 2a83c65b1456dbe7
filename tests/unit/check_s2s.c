/* tests/unit/check_s2s.c: the parts of core/s2s.c that need no sockets:
 * dialback keys (XEP-0185), certificate name checks (RFC 6125,
 * XEP-0178) on certificates made here with the OpenSSL API, and the
 * s2s.peers / s2s.bidi settings as core/config.c reads them.  The stream
 * exchanges are driven over real sockets by tests/integration/test_s2s.py
 * and test_s2s_pkix.py. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "s2s.h"

/* XEP-0185 §3, the published example. */
START_TEST(test_key_vector)
{
    char key[65];

    roost_s2s_dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com",
                           "example.org", "D60000229F", key);
    ck_assert_str_eq(
        key,
        "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
}
END_TEST

/* Every input is part of the key: receiving, originating, stream id and
 * secret each change it, and the order of the domains matters. */
START_TEST(test_key_inputs)
{
    static const char *const v[][4] = {
        {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F"},
        {"other-secret", "xmpp.example.com", "example.org", "D60000229F"},
        {"s3cr3tf0rd14lb4ck", "xmpp.example.net", "example.org", "D60000229F"},
        {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.net", "D60000229F"},
        {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229E"},
        {"s3cr3tf0rd14lb4ck", "example.org", "xmpp.example.com", "D60000229F"},
    };
    char keys[6][65];

    for (int i = 0; i < 6; i++) {
        roost_s2s_dialback_key(v[i][0], v[i][1], v[i][2], v[i][3], keys[i]);
        ck_assert_uint_eq(strlen(keys[i]), 64);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(keys[i], keys[j]);
    }
}
END_TEST

/* One subjectAltName entry "KIND:value": DNS, URI and email as usual,
 * XMPP an XmppAddr (id-on-xmppAddr, UTF8String), SRV an SRV-ID
 * (id-on-dnsSRV, IA5String). */
static GENERAL_NAME *
make_gn(const char *item)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    const char *v = strchr(item, ':') + 1;
    int type = strncmp(item, "DNS:", 4) == 0     ? GEN_DNS
               : strncmp(item, "URI:", 4) == 0   ? GEN_URI
               : strncmp(item, "email:", 6) == 0 ? GEN_EMAIL
                                                 : GEN_OTHERNAME;

    if (type != GEN_OTHERNAME) {
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();

        ASN1_STRING_set(s, v, -1);
        GENERAL_NAME_set0_value(gn, type, s);
    } else {
        int xmpp = strncmp(item, "XMPP:", 5) == 0;
        ASN1_TYPE *val = ASN1_TYPE_new();
        ASN1_STRING *s = xmpp ? ASN1_UTF8STRING_new() : ASN1_IA5STRING_new();

        ASN1_STRING_set(s, v, -1);
        ASN1_TYPE_set(val, xmpp ? V_ASN1_UTF8STRING : V_ASN1_IA5STRING, s);
        GENERAL_NAME_set0_othername(
            gn, OBJ_nid2obj(xmpp ? NID_XmppAddr : NID_SRVName), val);
    }
    return gn;
}

/* A self-signed certificate with subject CN cn (or none) and, when san
 * is not NULL, a subjectAltName of make_gn() items separated by ", ". */
static X509 *
make_cert(const char *cn, const char *san)
{
    static EVP_PKEY *key;
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);

    if (key == NULL)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert_ptr_nonnull(key);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    if (cn != NULL)
        ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                                    (const unsigned char *)cn,
                                                    -1, -1, 0),
                         1);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    if (san != NULL) {
        GENERAL_NAMES *gens = GENERAL_NAMES_new();
        char *copy = strdup(san), *save = NULL;

        for (char *t = strtok_r(copy, ",", &save); t != NULL;
             t = strtok_r(NULL, ",", &save))
            sk_GENERAL_NAME_push(gens, make_gn(t + strspn(t, " ")));
        free(copy);
        ck_assert_int_eq(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0),
                         1);
        GENERAL_NAMES_free(gens);
    }
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    return x;
}

#define XMPPADDR "XMPP:"
#define SRVNAME  "SRV:"

/* CN, subjectAltName, the domain checked, whether it is accepted. */
static const struct {
    const char *cn, *san, *domain;
    int ok;
} names[] = {
    /* DNS-ID (RFC 6125 §6.4.1), case-insensitive */
    {NULL, "DNS:example.org", "example.org", 1},
    {NULL, "DNS:Example.ORG", "example.org", 1},
    {NULL, "DNS:example.org", "example.net", 0},
    {NULL, "DNS:other.example, DNS:example.org", "example.org", 1},
    {NULL, "DNS:example.org", "sub.example.org", 0},
    /* wildcards (RFC 6125 §6.4.3): one whole left-most label */
    {NULL, "DNS:*.example.org", "chat.example.org", 1},
    {NULL, "DNS:*.example.org", "example.org", 0},
    {NULL, "DNS:*.example.org", "a.chat.example.org", 0},
    {NULL, "DNS:c*.example.org", "chat.example.org", 0},
    {NULL, "DNS:*.org", "example.org", 0},
    {NULL, "DNS:chat.*.org", "chat.example.org", 0},
    /* XmppAddr (RFC 6120 §13.7.1.4): a domain JID, no wildcard */
    {NULL, XMPPADDR "example.org", "example.org", 1},
    {NULL, XMPPADDR "Example.Org", "example.org", 1},
    {NULL, XMPPADDR "example.net", "example.org", 0},
    {NULL, XMPPADDR "*.example.org", "chat.example.org", 0},
    {NULL, XMPPADDR "user@example.org", "example.org", 0},
    {NULL, XMPPADDR "example.org/res", "example.org", 0},
    {NULL,
     XMPPADDR "b\xc3\xbc"
              "cher.example",
     "xn--bcher-kva.example", 0},
    {NULL,
     XMPPADDR "b\xc3\xbc"
              "cher.example",
     "b\xc3\xbc"
     "cher.example",
     1},
    /* SRV-ID (RFC 4985, RFC 6125 §6.5.1): _xmpp-server only */
    {NULL, SRVNAME "_xmpp-server.example.org", "example.org", 1},
    {NULL, SRVNAME "_xmpp-client.example.org", "example.org", 0},
    {NULL, SRVNAME "_xmpp-server.example.net", "example.org", 0},
    {NULL, SRVNAME "_xmpp-server.*.example.org", "chat.example.org", 1},
    {NULL, SRVNAME "example.org", "example.org", 0},
    /* IDN: DNS-IDs hold A-labels, the domain is prepared Unicode */
    {NULL, "DNS:xn--bcher-kva.example",
     "b\xc3\xbc"
     "cher.example",
     1},
    /* kinds together: any one matching is enough */
    {NULL, "DNS:other.example, " XMPPADDR "example.org", "example.org", 1},
    {NULL, XMPPADDR "other.example, " SRVNAME "_xmpp-server.example.org",
     "example.org", 1},
    {NULL, XMPPADDR "a.example, " SRVNAME "_xmpp-server.b.example", "c.example",
     0},
    /* CN (RFC 6125 §6.4.4): only without supported subjectAltNames */
    {"example.org", NULL, "example.org", 1},
    {"*.example.org", NULL, "chat.example.org", 1},
    {"example.net", NULL, "example.org", 0},
    {"example.org", "DNS:example.net", "example.org", 0},
    {"example.org", XMPPADDR "example.net", "example.org", 0},
    {"example.org", SRVNAME "_xmpp-server.example.net", "example.org", 0},
    {"example.org", "URI:xmpp:example.net", "example.org", 0},
    {"example.org", "email:admin@example.net", "example.org", 1},
    {NULL, NULL, "example.org", 0},
};

START_TEST(test_cert_names)
{
    X509 *x = make_cert(names[_i].cn, names[_i].san);

    ck_assert_msg(
        roost_s2s_cert_name_ok(x, names[_i].domain) == names[_i].ok,
        "CN=%s SAN=%s for %s: want %d", names[_i].cn ? names[_i].cn : "-",
        names[_i].san ? names[_i].san : "-", names[_i].domain, names[_i].ok);
    X509_free(x);
}
END_TEST

/* A NUL inside a name ("example.org\0.evil.test") matches nothing. */
START_TEST(test_cert_embedded_nul)
{
    X509 *x = make_cert(NULL, NULL);
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    static const char evil[] = "example.org\0.evil.test";

    ASN1_STRING_set(ia5, evil, sizeof(evil) - 1);
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    sk_GENERAL_NAME_push(gens, gn);
    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_REPLACE);
    GENERAL_NAMES_free(gens);
    ck_assert_int_eq(roost_s2s_cert_name_ok(x, "example.org"), 0);
    ck_assert_int_eq(roost_s2s_cert_name_ok(x, "evil.test"), 0);
    ck_assert_int_eq(roost_s2s_cert_name_ok(NULL, "example.org"), 0);
    X509_free(x);
}
END_TEST

#define PEERS_HOST "hosts = ({ domain = \"localhost\"; });\n"

/* s2s.peers: domains prepared, keys left out take the s2s group's
 * values (both ways: a true and a false default). */
START_TEST(test_peers_inherit)
{
    static const char text[] =
        "s2s = { require_encryption = true; bidi = false;\n"
        "  peers = ( { domain = \"Legacy.Example\";"
        " require_encryption = false; },\n"
        "            { domain = \"b.example\"; bidi = true; } ); "
        "};\n" PEERS_HOST;
    char *err = NULL;
    roost_config_t *c = roost_config_load_text("/nonexistent/roost.conf", text,
                                               strlen(text), &err);

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->s2s_bidi, 0);
    ck_assert_int_eq(c->ns2s_peers, 2);
    ck_assert_str_eq(c->s2s_peers[0].domain, "legacy.example");
    ck_assert_int_eq(c->s2s_peers[0].require_encryption, 0);
    ck_assert_int_eq(c->s2s_peers[0].bidi, 0);
    ck_assert_str_eq(c->s2s_peers[1].domain, "b.example");
    ck_assert_int_eq(c->s2s_peers[1].require_encryption, 1);
    ck_assert_int_eq(c->s2s_peers[1].bidi, 1);
    roost_config_free(c);
    /* Defaults: bidi on, no peers. */
    c = roost_config_load_text("/nonexistent/roost.conf", PEERS_HOST,
                               strlen(PEERS_HOST), &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->s2s_bidi, 1);
    ck_assert_int_eq(c->ns2s_peers, 0);
    roost_config_free(c);
}
END_TEST

/* Bad peers fail at load with file:line. */
static const struct {
    const char *text, *want;
} bad_peers[] = {
    {"s2s = { peers = ( { domain = \"a.example\"; },\n"
     "  { domain = \"A.example\"; } ); };\n",
     "roost.conf:2: peer 'a.example' is listed twice"},
    {"s2s = { peers = ( { require_encryption = false; } ); };\n",
     "a peer needs 'domain'"},
    {"s2s = { peers = ( \"a.example\" ); };\n", "peers entries must be groups"},
    {"s2s = { peers = { domain = \"a.example\"; }; };\n",
     "'peers' must be a list of groups"},
    {"s2s = { peers = ( { domain = \"a.example\"; bidi = 1; } ); };\n", "bidi"},
    {"s2s = { peers = ( { domain = \"a.example\"; tls = true; } ); };\n",
     "tls"},
};

START_TEST(test_peers_bad)
{
    char text[512], *err = NULL;
    roost_config_t *c;

    snprintf(text, sizeof(text), "%s%s", bad_peers[_i].text, PEERS_HOST);
    c = roost_config_load_text("/nonexistent/roost.conf", text, strlen(text),
                               &err);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, bad_peers[_i].want) != NULL, "%s: want %s", err,
                  bad_peers[_i].want);
    roost_free(err);
}
END_TEST

static Suite *
s2s_suite(void)
{
    Suite *s = suite_create("s2s");
    TCase *tc = tcase_create("dialback_key");

    tcase_add_test(tc, test_key_vector);
    tcase_add_test(tc, test_key_inputs);
    suite_add_tcase(s, tc);
    tc = tcase_create("cert_name");
    tcase_add_loop_test(tc, test_cert_names, 0,
                        (int)(sizeof(names) / sizeof(names[0])));
    tcase_add_test(tc, test_cert_embedded_nul);
    suite_add_tcase(s, tc);
    tc = tcase_create("peers_config");
    tcase_add_test(tc, test_peers_inherit);
    tcase_add_loop_test(tc, test_peers_bad, 0,
                        (int)(sizeof(bad_peers) / sizeof(bad_peers[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(s2s_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
