/* tests/unit/check_tls.c: core/tls.c with real handshakes.  Self-signed
 * pairs are generated into a temporary directory; client and server run in
 * one thread over a non-blocking socketpair.  Covers certificate
 * generation (key mode, names, validity), loading and its errors, context
 * options, TLS 1.3 and forced TLS 1.2, SNI switching, ALPN, and
 * channel-binding data compared with the client's view, including the
 * XEP-0484 FAST mechanisms each connection offers (core/fast.c). */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <roost/common.h>
#include "fast.h"
#include "log.h"
#include "tls.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char dir[64];
static char cert_a[128], key_a[128], cert_b[128], key_b[128];
static SSL_CTX *ctx_a, *ctx_b, *cctx;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void
gen(const char *domain, char *cert, char *key)
{
    char *err = NULL;

    snprintf(cert, 128, "%s/certs/%s/cert.pem", dir, domain);
    snprintf(key, 128, "%s/keys/%s/key.pem", dir, domain);
    ck_assert_int_eq(roost_tls_selfsigned(domain, cert, key, &err), 0);
    ck_assert_ptr_null(err);
}

static SSL_CTX *
load(const char *cert, const char *key)
{
    char *err = NULL;
    SSL_CTX *ctx = roost_tls_ctx_new(cert, key, &err);

    ck_assert_msg(ctx != NULL, "%s", err ? err : "");
    return ctx;
}

static void
setup(void)
{
    roost_log_level = ROOST_LOG_WARN;
    strcpy(dir, "/tmp/check_tls.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(roost_tls_init(), 0);
    gen("a.example", cert_a, key_a);
    gen("b.example", cert_b, key_b);
    ctx_a = load(cert_a, key_a);
    ctx_b = load(cert_b, key_b);
    cctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(cctx);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
}

static void
teardown(void)
{
    SSL_CTX_free(cctx);
    SSL_CTX_free(ctx_b);
    SSL_CTX_free(ctx_a);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static X509 *
read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    X509 *x;

    ck_assert_ptr_nonnull(fp);
    x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    ck_assert_ptr_nonnull(x);
    return x;
}

static char *
cn_of(X509 *x)
{
    static char cn[256];

    cn[0] = '\0';
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                              sizeof(cn));
    return cn;
}

/* --- a handshake over a socketpair --- */

typedef struct hs {
    SSL *s, *c;
    int fds[2];
} hs_t;

typedef struct hsopt {
    SSL_CTX *cctx; /* client context, default cctx */
    const char *sni;
    const unsigned char *alpn;
    unsigned alpn_len;
    int maxver;
    SSL_SESSION *sess;
} hsopt_t;

/* 0 when both ends completed the handshake, -1 if one failed. */
static int
handshake(hs_t *h, SSL_CTX *sctx, const hsopt_t *o)
{
    int done_s = 0, done_c = 0;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, h->fds), 0);
    for (int i = 0; i < 2; i++)
        fcntl(h->fds[i], F_SETFL, fcntl(h->fds[i], F_GETFL) | O_NONBLOCK);
    h->s = SSL_new(sctx);
    h->c = SSL_new(o->cctx ? o->cctx : cctx);
    ck_assert(h->s != NULL && h->c != NULL);
    SSL_set_fd(h->s, h->fds[0]);
    SSL_set_fd(h->c, h->fds[1]);
    SSL_set_accept_state(h->s);
    SSL_set_connect_state(h->c);
    if (o->sni != NULL)
        SSL_set_tlsext_host_name(h->c, o->sni);
    if (o->alpn != NULL)
        ck_assert_int_eq(SSL_set_alpn_protos(h->c, o->alpn, o->alpn_len), 0);
    if (o->maxver != 0)
        SSL_set_max_proto_version(h->c, o->maxver);
    if (o->sess != NULL)
        SSL_set_session(h->c, o->sess);
    for (int i = 0; i < 1000 && !(done_s && done_c); i++) {
        if (!done_c) {
            int r = SSL_do_handshake(h->c);
            int e = SSL_get_error(h->c, r);

            if (r == 1)
                done_c = 1;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
        }
        if (!done_s) {
            int r = SSL_do_handshake(h->s);
            int e = SSL_get_error(h->s, r);

            if (r == 1)
                done_s = 1;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
        }
    }
    return done_s && done_c ? 0 : -1;
}

static void
hs_free(hs_t *h)
{
    SSL_free(h->s);
    SSL_free(h->c);
    close(h->fds[0]);
    close(h->fds[1]);
    ERR_clear_error();
}

/* --- roost_tls_selfsigned --- */

/* Verifies x for host with x itself as the only trust anchor (a pinned
 * self-signed certificate, as a peer would configure it). */
static void
verify_self(X509 *x, const char *host, int want)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *vc = X509_STORE_CTX_new();

    ck_assert_int_eq(X509_STORE_add_cert(store, x), 1);
    ck_assert_int_eq(X509_STORE_CTX_init(vc, store, x, NULL), 1);
    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(vc), host, 0);
    X509_verify_cert(vc);
    ck_assert_int_eq(X509_STORE_CTX_get_error(vc), want);
    X509_STORE_CTX_free(vc);
    X509_STORE_free(store);
}

START_TEST(test_selfsigned)
{
    X509 *x = read_cert(cert_a);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    GENERAL_NAMES *san;
    const GENERAL_NAME *gn;
    struct stat st;
    int days, secs;
    char name[64];

    /* the key is private to the owner */
    ck_assert_int_eq(stat(key_a, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(stat(cert_a, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    /* v3, CN and exactly one dNSName, both the domain */
    ck_assert_int_eq(X509_get_version(x), X509_VERSION_3);
    ck_assert_str_eq(cn_of(x), "a.example");
    san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    ck_assert_ptr_nonnull(san);
    ck_assert_int_eq(sk_GENERAL_NAME_num(san), 1);
    gn = sk_GENERAL_NAME_value(san, 0);
    ck_assert_int_eq(gn->type, GEN_DNS);
    snprintf(name, sizeof(name), "%.*s", ASN1_STRING_length(gn->d.dNSName),
             (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
    ck_assert_str_eq(name, "a.example");
    GENERAL_NAMES_free(san);
    ck_assert_int_eq(X509_check_host(x, "a.example", 0, 0, NULL), 1);
    ck_assert_int_ne(X509_check_host(x, "x.a.example", 0, 0, NULL), 1);
    /* EC P-256, self-signed, valid now and for about ten years */
    ck_assert_int_eq(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
    ck_assert_int_eq(EVP_PKEY_get_bits(pub), 256);
    ck_assert_int_eq(X509_verify(x, pub), 1);
    verify_self(x, "a.example", X509_V_OK);
    verify_self(x, "b.example", X509_V_ERR_HOSTNAME_MISMATCH);
    ck_assert_int_lt(X509_cmp_current_time(X509_get0_notBefore(x)), 0);
    ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
                                    X509_get0_notAfter(x)),
                     1);
    ck_assert_int_ge(days, 3649);
    ck_assert_int_le(days, 3651);
    X509_free(x);
}
END_TEST

START_TEST(test_selfsigned_existing)
{
    char *err = NULL;
    X509 *before = read_cert(cert_a), *after;
    char lonely[160];

    /* both exist: nothing happens */
    ck_assert_int_eq(roost_tls_selfsigned("a.example", cert_a, key_a, &err), 0);
    after = read_cert(cert_a);
    ck_assert_int_eq(X509_cmp(before, after), 0);
    X509_free(before);
    X509_free(after);
    /* only one of the two: refused, nothing overwritten */
    snprintf(lonely, sizeof(lonely), "%s/lonely.pem", dir);
    ck_assert_int_eq(roost_tls_selfsigned("a.example", lonely, key_a, &err),
                     -ROOST_EEXIST);
    ck_assert_ptr_nonnull(err);
    roost_free(err);
    err = NULL;
    ck_assert_int_eq(access(lonely, F_OK), -1);
    ck_assert_int_eq(roost_tls_selfsigned("a.example", cert_a, lonely, &err),
                     -ROOST_EEXIST);
    roost_free(err);
    ck_assert_int_eq(access(lonely, F_OK), -1);
}
END_TEST

static const char *const bad_domains[] = {
    "",
    "a.example,DNS:evil.example",
    "-a.example",
    "a..example",
    "a example",
    "a.example.",
    ".a.example",
    "a/b",
    "\xc3\xa9.example",
};

START_TEST(test_selfsigned_bad_domain)
{
    char *err = NULL, cert[160], key[160];

    snprintf(cert, sizeof(cert), "%s/bad/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/bad/key.pem", dir);
    ck_assert_int_eq(roost_tls_selfsigned(bad_domains[_i], cert, key, &err),
                     -ROOST_EINVAL);
    ck_assert_ptr_nonnull(err);
    roost_free(err);
    ck_assert_int_eq(access(cert, F_OK), -1);
    ck_assert_int_eq(access(key, F_OK), -1);
}
END_TEST

START_TEST(test_selfsigned_unwritable)
{
    char *err = NULL, cert[160], key[160], blocker[160];
    FILE *fp;

    /* the parent "directory" is a regular file */
    snprintf(blocker, sizeof(blocker), "%s/blocker", dir);
    fp = fopen(blocker, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/blocker/sub/key.pem", dir);
    ck_assert_int_eq(roost_tls_selfsigned("c.example", cert, key, &err),
                     -ROOST_EIO);
    ck_assert_ptr_nonnull(err);
    roost_free(err);
    ck_assert_int_eq(access(cert, F_OK), -1);
}
END_TEST

/* --- roost_tls_ctx_new --- */

START_TEST(test_ctx_options)
{
    uint64_t opts = SSL_CTX_get_options(ctx_a);

    ck_assert(opts & SSL_OP_NO_COMPRESSION);
    ck_assert(opts & SSL_OP_NO_RENEGOTIATION);
    ck_assert(!(opts & SSL_OP_NO_TICKET));
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx_a), TLS1_2_VERSION);
    ck_assert(SSL_CTX_get_mode(ctx_a) & SSL_MODE_RELEASE_BUFFERS);
    ck_assert_ptr_nonnull(SSL_CTX_get0_certificate(ctx_a));
    /* One TLS 1.3 ticket per handshake (OpenSSL's default is two). */
    ck_assert_uint_eq(SSL_CTX_get_num_tickets(ctx_a), 1);
}
END_TEST

START_TEST(test_ctx_errors)
{
    char missing[160], garbage[160];
    const struct {
        const char *cert, *key, *want;
    } cases[] = {
        {cert_a, key_b, "does not match"}, {cert_b, key_a, "does not match"},
        {missing, key_a, "certificate"},   {cert_a, missing, "private key"},
        {garbage, key_a, "certificate"},   {cert_a, garbage, "private key"},
        {key_a, key_a, "certificate"},
    };
    FILE *fp;

    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    snprintf(garbage, sizeof(garbage), "%s/garbage.pem", dir);
    fp = fopen(garbage, "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64\n", fp);
    fclose(fp);
    for (int i = 0; i < N(cases); i++) {
        char *err = NULL;

        ck_assert_ptr_null(
            roost_tls_ctx_new(cases[i].cert, cases[i].key, &err));
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "%d: %s", i, err);
        roost_free(err);
    }
}
END_TEST

/* --- handshakes and channel binding --- */

/* The hash of the certificate the client got, as a client computes
 * tls-server-end-point: md over its DER encoding. */
static void
peer_cert_hash(SSL *c, const EVP_MD *md, unsigned char *out)
{
    X509 *x = SSL_get1_peer_certificate(c);
    unsigned char *der = NULL;
    unsigned int n = 0;
    int len;

    ck_assert_ptr_nonnull(x);
    len = i2d_X509(x, &der);
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(EVP_Digest(der, (size_t)len, out, &n, md, NULL), 1);
    OPENSSL_free(der);
    X509_free(x);
}

static const int versions[] = {0, TLS1_2_VERSION};

START_TEST(test_handshake_cb)
{
    hs_t h;
    hsopt_t o = {.maxver = versions[_i]};
    unsigned char sv[64], cv[64];
    size_t slen = sizeof(sv), clen;
    const char *const *types;

    ck_assert_int_eq(handshake(&h, ctx_a, &o), 0);
    types = roost_tls_cb_types(h.s);
    ck_assert_ptr_nonnull(types[0]);
    if (versions[_i] == 0) {
        /* COMPAT fallback after the RFC 9266 type (core/tls.c). */
        ck_assert_str_eq(types[1], "tls-unique");
        ck_assert_ptr_null(types[2]);
    } else {
        ck_assert_ptr_null(types[1]);
    }
    /* Availability only (out NULL): what offering a mechanism asks. */
    for (int i = 0; types[i] != NULL; i++)
        ck_assert_int_eq(roost_tls_channel_binding(h.s, types[i], NULL, NULL),
                         0);
    ck_assert_int_eq(
        roost_tls_channel_binding(h.s, "tls-server-end-point", NULL, NULL), 0);
    ck_assert_int_eq(roost_tls_channel_binding(h.s, "tls-bogus", NULL, NULL),
                     -ROOST_ENOTFOUND);
    if (versions[_i] == 0) {
        /* A client with OpenSSL's default order (AES-256 first) gets the
         * server's first choice, AES-128-GCM. */
        ck_assert_str_eq(SSL_get_cipher_name(h.s), "TLS_AES_128_GCM_SHA256");
    } else {
        ck_assert_int_eq(
            roost_tls_channel_binding(h.s, "tls-exporter", NULL, NULL),
            -ROOST_ENOTFOUND);
    }
    if (versions[_i] == 0) {
        ck_assert_int_eq(SSL_version(h.s), TLS1_3_VERSION);
        ck_assert_str_eq(types[0], "tls-exporter");
        ck_assert_int_eq(
            roost_tls_channel_binding(h.s, "tls-exporter", sv, &slen), 0);
        ck_assert_uint_eq(slen, 32);
        ck_assert_int_eq(SSL_export_keying_material(h.c, cv, 32,
                                                    "EXPORTER-Channel-Binding",
                                                    24, NULL, 0, 0),
                         1);
        clen = 32;
        slen = 16;
        ck_assert_int_eq(
            roost_tls_channel_binding(h.s, "tls-exporter", sv + 32, &slen),
            -ROOST_EINVAL);
        /* tls-unique on TLS 1.3 (COMPAT): the client's Finished, as
         * OpenSSL-based clients (CPython's get_channel_binding) compute
         * it on their side with SSL_get_finished. */
        {
            unsigned char su[64], cu[64];
            size_t sulen = sizeof(su), culen;

            ck_assert_int_eq(
                roost_tls_channel_binding(h.s, "tls-unique", su, &sulen), 0);
            culen = SSL_get_finished(h.c, cu, sizeof(cu));
            ck_assert_uint_gt(culen, 0);
            ck_assert_uint_eq(sulen, culen);
            ck_assert_int_eq(memcmp(su, cu, culen), 0);
        }
        slen = 32;
    } else {
        ck_assert_int_eq(SSL_version(h.s), TLS1_2_VERSION);
        ck_assert_str_eq(types[0], "tls-unique");
        ck_assert_int_eq(
            roost_tls_channel_binding(h.s, "tls-unique", sv, &slen), 0);
        ck_assert_uint_eq(slen, 12);
        /* full handshake: the client's Finished */
        clen = SSL_get_finished(h.c, cv, sizeof(cv));
        slen = 64;
        ck_assert_int_eq(
            roost_tls_channel_binding(h.s, "tls-exporter", sv + 32, &slen),
            -ROOST_ENOTFOUND);
        slen = 12;
    }
    ck_assert_uint_eq(slen, clen);
    ck_assert_int_eq(memcmp(sv, cv, clen), 0);
    /* RFC 5929 tls-server-end-point: SHA-256 of the certificate the
     * client received (ours is signed with SHA-256). */
    slen = sizeof(sv);
    ck_assert_int_eq(
        roost_tls_channel_binding(h.s, "tls-server-end-point", sv, &slen), 0);
    ck_assert_uint_eq(slen, 32);
    peer_cert_hash(h.c, EVP_sha256(), cv);
    ck_assert_int_eq(memcmp(sv, cv, 32), 0);
    slen = 31;
    ck_assert_int_eq(
        roost_tls_channel_binding(h.s, "tls-server-end-point", sv, &slen),
        -ROOST_EINVAL);
    hs_free(&h);
}
END_TEST

/* --- XEP-0484 FAST mechanisms per connection (core/fast.c) --- */

static const struct {
    int maxver;
    const char *mechs[5];
} fast_cases[] = {
    {0, {"HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE", NULL}},
    {TLS1_2_VERSION,
     {"HT-SHA-256-UNIQ", "HT-SHA-256-ENDP", "HT-SHA-256-NONE", NULL}},
};

START_TEST(test_fast_mechs)
{
    hs_t h;
    hsopt_t o = {.maxver = fast_cases[_i].maxver};
    const char *m[ROOST_FAST_NMECHS + 1];
    unsigned char sv[64], cv[64];
    size_t slen, clen;
    int n;

    ck_assert_int_eq(handshake(&h, ctx_a, &o), 0);
    n = roost_fast_mechs(h.s, m);
    for (int i = 0; i <= n; i++) {
        if (fast_cases[_i].mechs[i] == NULL)
            ck_assert_ptr_null(m[i]);
        else
            ck_assert_str_eq(m[i], fast_cases[_i].mechs[i]);
    }
    /* The data each binds to, as the client computes it. */
    slen = sizeof(sv);
    ck_assert_int_eq(roost_fast_cb(h.s, "HT-SHA-256-NONE", sv, &slen), 0);
    ck_assert_uint_eq(slen, 0);
    slen = sizeof(sv);
    ck_assert_int_eq(roost_fast_cb(h.s, "HT-SHA-256-ENDP", sv, &slen), 0);
    peer_cert_hash(h.c, EVP_sha256(), cv);
    ck_assert_uint_eq(slen, 32);
    ck_assert_int_eq(memcmp(sv, cv, 32), 0);
    slen = sizeof(sv);
    if (fast_cases[_i].maxver == 0) {
        ck_assert_int_eq(roost_fast_cb(h.s, "HT-SHA-256-EXPR", sv, &slen), 0);
        ck_assert_int_eq(SSL_export_keying_material(h.c, cv, 32,
                                                    "EXPORTER-Channel-Binding",
                                                    24, NULL, 0, 0),
                         1);
        ck_assert_uint_eq(slen, 32);
        ck_assert_int_eq(memcmp(sv, cv, 32), 0);
        /* tls-unique is undefined on TLS 1.3 (RFC 9266): no UNIQ, even
         * though SCRAM accepts it there (COMPAT in core/tls.c). */
        slen = sizeof(sv);
        ck_assert_int_eq(roost_fast_cb(h.s, "HT-SHA-256-UNIQ", sv, &slen),
                         -ROOST_ENOTFOUND);
    } else {
        ck_assert_int_eq(roost_fast_cb(h.s, "HT-SHA-256-UNIQ", sv, &slen), 0);
        clen = SSL_get_finished(h.c, cv, sizeof(cv));
        ck_assert_uint_eq(slen, clen);
        ck_assert_int_eq(memcmp(sv, cv, clen), 0);
        slen = sizeof(sv);
        ck_assert_int_eq(roost_fast_cb(h.s, "HT-SHA-256-EXPR", sv, &slen),
                         -ROOST_ENOTFOUND);
    }
    slen = sizeof(sv);
    ck_assert_int_eq(roost_fast_cb(h.s, "SCRAM-SHA-256", sv, &slen),
                     -ROOST_ENOTFOUND);
    hs_free(&h);
    /* Without TLS: the unbound mechanism only. */
    ck_assert_int_eq(roost_fast_mechs(NULL, m), 1);
    ck_assert_str_eq(m[0], "HT-SHA-256-NONE");
    ck_assert_ptr_null(m[1]);
}
END_TEST

/* tls-server-end-point follows the certificate's signature hash (RFC 5929
 * §4.1), and does not exist for Ed25519 (no hash): then no ENDP. */
static const struct {
    const char *alg; /* key type for EVP_PKEY_Q_keygen */
    const char *md;  /* signature digest, NULL for Ed25519 */
    int cblen;       /* 0: not offered */
} endp_cases[] = {
    {"EC", "SHA384", 48},
    {"EC", "SHA512", 64},
    {"ED25519", NULL, 0},
};

START_TEST(test_endp_sig)
{
    EVP_PKEY *pk = strcmp(endp_cases[_i].alg, "EC") == 0
                       ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                       : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    X509 *x = X509_new();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const EVP_MD *md =
        endp_cases[_i].md ? EVP_get_digestbyname(endp_cases[_i].md) : NULL;
    const char *m[ROOST_FAST_NMECHS + 1];
    unsigned char sv[64], cv[64];
    size_t slen = sizeof(sv);
    hsopt_t o = {0};
    hs_t h;

    ck_assert(pk != NULL && x != NULL && ctx != NULL);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"c.example", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, pk);
    ck_assert_int_gt(X509_sign(x, pk, md), 0);
    ck_assert_int_eq(SSL_CTX_use_certificate(ctx, x), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, pk), 1);
    ck_assert_int_eq(handshake(&h, ctx, &o), 0);
    roost_fast_mechs(h.s, m);
    if (endp_cases[_i].cblen == 0) {
        ck_assert_int_eq(
            roost_tls_channel_binding(h.s, "tls-server-end-point", sv, &slen),
            -ROOST_ENOTFOUND);
        ck_assert_str_eq(m[1], "HT-SHA-256-NONE"); /* EXPR, NONE */
    } else {
        ck_assert_int_eq(
            roost_tls_channel_binding(h.s, "tls-server-end-point", sv, &slen),
            0);
        ck_assert_uint_eq(slen, (size_t)endp_cases[_i].cblen);
        peer_cert_hash(h.c, md, cv);
        ck_assert_int_eq(memcmp(sv, cv, slen), 0);
        ck_assert_str_eq(m[1], "HT-SHA-256-ENDP");
    }
    hs_free(&h);
    SSL_CTX_free(ctx);
    X509_free(x);
    EVP_PKEY_free(pk);
}
END_TEST

START_TEST(test_tls12_resumed)
{
    hs_t h1, h2;
    hsopt_t o = {.maxver = TLS1_2_VERSION};
    unsigned char sv[64], cv[64], cfin[64];
    size_t slen = sizeof(sv), clen, cfinlen;

    ck_assert_int_eq(handshake(&h1, ctx_a, &o), 0);
    o.sess = SSL_get1_session(h1.c);
    ck_assert_ptr_nonnull(o.sess);
    ck_assert_int_eq(handshake(&h2, ctx_a, &o), 0);
    ck_assert(SSL_session_reused(h2.s));
    /* abbreviated handshake: the server's Finished comes first */
    ck_assert_int_eq(roost_tls_channel_binding(h2.s, "tls-unique", sv, &slen),
                     0);
    clen = SSL_get_peer_finished(h2.c, cv, sizeof(cv));
    cfinlen = SSL_get_finished(h2.c, cfin, sizeof(cfin));
    ck_assert_uint_eq(slen, clen);
    ck_assert_int_eq(memcmp(sv, cv, clen), 0);
    ck_assert(cfinlen != clen || memcmp(sv, cfin, clen) != 0);
    SSL_SESSION_free(o.sess);
    hs_free(&h1);
    hs_free(&h2);
}
END_TEST

START_TEST(test_tls12_no_ems)
{
    /* Without the extended master secret tls-unique is not offered. */
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    hsopt_t o = {.cctx = c, .maxver = TLS1_2_VERSION};
    unsigned char sv[64];
    size_t slen = sizeof(sv);
    hs_t h;

    SSL_CTX_set_options(c, SSL_OP_NO_EXTENDED_MASTER_SECRET);
    ck_assert_int_eq(handshake(&h, ctx_a, &o), 0);
    ck_assert_int_eq(SSL_get_extms_support(h.s), 0);
    ck_assert_ptr_null(roost_tls_cb_types(h.s)[0]);
    ck_assert_int_eq(roost_tls_channel_binding(h.s, "tls-unique", sv, &slen),
                     -ROOST_ENOTFOUND);
    hs_free(&h);
    SSL_CTX_free(c);
}
END_TEST

START_TEST(test_cb_before_handshake)
{
    SSL *ssl = SSL_new(ctx_a);
    unsigned char buf[64];
    size_t len = sizeof(buf);

    ck_assert_ptr_null(roost_tls_cb_types(ssl)[0]);
    ck_assert_ptr_null(roost_tls_cb_types(NULL)[0]);
    ck_assert_int_eq(roost_tls_channel_binding(ssl, "tls-exporter", buf, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_tls_channel_binding(ssl, "tls-unique", buf, &len),
                     -ROOST_ENOTFOUND);
    SSL_free(ssl);
}
END_TEST

/* --- SNI --- */

static char sni_seen[256];

static SSL_CTX *
sni_lookup(const char *name, void *arg)
{
    snprintf(sni_seen, sizeof(sni_seen), "%s", name);
    return strcmp(name, "b.example") == 0 ? arg : NULL;
}

static const struct {
    const char *sni, *seen, *cn;
    int maxver;
} sni_cases[] = {
    {"b.example", "b.example", "b.example", 0},
    {"B.Example", "b.example", "b.example", 0},
    {"B.EXAMPLE", "b.example", "b.example", TLS1_2_VERSION},
    {"a.example", "a.example", "a.example", 0},
    {"unknown.example", "unknown.example", "a.example", 0},
    {NULL, "", "a.example", 0},
};

START_TEST(test_sni)
{
    hsopt_t o = {.sni = sni_cases[_i].sni, .maxver = sni_cases[_i].maxver};
    hs_t h;
    X509 *peer;

    sni_seen[0] = '\0';
    roost_tls_set_sni(ctx_a, sni_lookup, ctx_b);
    ck_assert_int_eq(handshake(&h, ctx_a, &o), 0);
    ck_assert_str_eq(sni_seen, sni_cases[_i].seen);
    peer = SSL_get1_peer_certificate(h.c);
    ck_assert_ptr_nonnull(peer);
    ck_assert_str_eq(cn_of(peer), sni_cases[_i].cn);
    X509_free(peer);
    hs_free(&h);
}
END_TEST

/* --- ALPN --- */

#define P(s) (const unsigned char *)s, sizeof(s) - 1
static const struct {
    const char *proto;
    const unsigned char *alpn;
    unsigned alpn_len;
    int ok;
    const char *selected;
} alpn_cases[] = {
    {"xmpp-client", P("\x0bxmpp-client"), 1, "xmpp-client"},
    {"xmpp-client", P("\x02h2\x0bxmpp-client"), 1, "xmpp-client"},
    {"xmpp-server", P("\x0bxmpp-client\x0bxmpp-server"), 1, "xmpp-server"},
    {"xmpp-client", P("\x02h2"), 0, NULL},
    {"xmpp-client", P("\x0bxmpp-server"), 0, NULL},
    {"xmpp-client", P("\x0axmpp-clien"), 0, NULL},
    {"xmpp-client", NULL, 0, 1, ""}, /* no ALPN offered: accepted */
};
#undef P

START_TEST(test_alpn)
{
    hsopt_t o = {.alpn = alpn_cases[_i].alpn,
                 .alpn_len = alpn_cases[_i].alpn_len};
    const unsigned char *sel = NULL;
    unsigned sellen = 0;
    char got[64];
    hs_t h;
    int rc;

    roost_tls_set_alpn(ctx_a, alpn_cases[_i].proto);
    rc = handshake(&h, ctx_a, &o);
    if (!alpn_cases[_i].ok) {
        unsigned long e;
        int alert = 0;

        ck_assert_int_eq(rc, -1);
        /* the client reads the server's no_application_protocol alert */
        ERR_clear_error();
        ck_assert_int_ne(SSL_do_handshake(h.c), 1);
        while ((e = ERR_get_error()) != 0)
            alert |=
                ERR_GET_REASON(e) == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL;
        ck_assert(alert);
        hs_free(&h);
        return;
    }
    ck_assert_int_eq(rc, 0);
    SSL_get0_alpn_selected(h.c, &sel, &sellen);
    snprintf(got, sizeof(got), "%.*s", (int)sellen,
             sel ? (const char *)sel : "");
    ck_assert_str_eq(got, alpn_cases[_i].selected);
    hs_free(&h);
}
END_TEST

static Suite *
tls_suite(void)
{
    Suite *su = suite_create("tls");
    TCase *tc;

#define TC(name, fn, n)                                                        \
    tc = tcase_create(name);                                                   \
    tcase_add_checked_fixture(tc, setup, teardown);                            \
    tcase_set_timeout(tc, 30);                                                 \
    tcase_add_loop_test(tc, fn, 0, n);                                         \
    suite_add_tcase(su, tc)

    TC("selfsigned", test_selfsigned, 1);
    TC("selfsigned_existing", test_selfsigned_existing, 1);
    TC("selfsigned_bad_domain", test_selfsigned_bad_domain, N(bad_domains));
    TC("selfsigned_unwritable", test_selfsigned_unwritable, 1);
    TC("ctx_options", test_ctx_options, 1);
    TC("ctx_errors", test_ctx_errors, 1);
    TC("handshake_cb", test_handshake_cb, N(versions));
    TC("tls12_resumed", test_tls12_resumed, 1);
    TC("tls12_no_ems", test_tls12_no_ems, 1);
    TC("cb_before_handshake", test_cb_before_handshake, 1);
    TC("fast_mechs", test_fast_mechs, N(fast_cases));
    TC("endp_sig", test_endp_sig, N(endp_cases));
    TC("sni", test_sni, N(sni_cases));
    TC("alpn", test_alpn, N(alpn_cases));
#undef TC
    return su;
}

int
main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
