/* core/tls.c: OpenSSL 3 server contexts, one per virtual host, with SNI
 * switching between them, ALPN for direct TLS (XEP-0368), a self-signed
 * certificate generator for the quickstart, and channel-binding data
 * (tls-exporter, tls-unique) for SCRAM-PLUS.
 *
 * Not for socket I/O or the handshake itself: core/conn.c attaches SSL
 * objects to libevent bufferevents.  Not for certificate verification of
 * peers (s2s PKIX): that lives with the s2s code. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <roost/common.h>
#include "log.h"
#include "tls.h"

#define TLS_SELFSIGNED_DAYS 3650
#define TLS_ALPN_MAX        255
#define TLS_EXPORTER_LEN    32
#define TLS_EXPORTER_LABEL  "EXPORTER-Channel-Binding"

/* Per-SSL_CTX settings of our callbacks, freed with the SSL_CTX through
 * the ex_data free hook. */
typedef struct tls_ctx_data {
    SSL_CTX *(*lookup)(const char *servername, void *arg);
    void *lookup_arg;
    unsigned char alpn[TLS_ALPN_MAX];
    size_t alpn_len;
} tls_ctx_data_t;

static int tls_ex_index = -1;
static int tls_ssl_alpn_index =
    -1; /* per connection: roost_tls_set_conn_alpn */
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static const char *const tls_cb_exporter[] = {"tls-exporter", "tls-unique",
                                              NULL};
static const char *const tls_cb_unique[] = {"tls-unique", NULL};
static const char *const tls_cb_none[] = {NULL};

static void
tls_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
            void *argp)
{
    roost_free(ptr);
}

static void
tls_once_init(void)
{
    OPENSSL_init_ssl(
        OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
    tls_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_ex_free);
    tls_ssl_alpn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int
roost_tls_init(void)
{
    pthread_once(&tls_once, tls_once_init);
    return tls_ex_index < 0 ? -ROOST_ETLS : 0;
}

/* Sets *err to "what: <last OpenSSL error>" and clears the error queue. */
static void
tls_error(char **err, const char *what, const char *path)
{
    char buf[256] = "unknown error", msg[1024];
    unsigned long e, last = 0;

    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last != 0)
        ERR_error_string_n(last, buf, sizeof(buf));
    snprintf(msg, sizeof(msg), "%s%s%s: %s", what, path ? " " : "",
             path ? path : "", buf);
    if (err != NULL)
        *err = roost_xstrdup(msg);
}

static void
tls_error_sys(char **err, const char *what, const char *path)
{
    char msg[1024];

    snprintf(msg, sizeof(msg), "%s %s: %s", what, path, strerror(errno));
    if (err != NULL)
        *err = roost_xstrdup(msg);
}

SSL_CTX *
roost_tls_ctx_new(const char *cert_path, const char *key_path, char **err)
{
    static const unsigned char sid_ctx[] = "roost";
    SSL_CTX *ctx;

    if (err != NULL)
        *err = NULL;
    if (roost_tls_init() != 0) {
        tls_error(err, "TLS initialisation failed", NULL);
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_error(err, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation is an attack surface XMPP never needs; compression is
     * CRIME.  Tickets stay on (no SSL_OP_NO_TICKET) for cheap resumption. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their read/write buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    /* One TLS 1.3 ticket per handshake, not OpenSSL's two: an XMPP client
     * holds one connection, and resuming it hands out the next ticket.
     * Each ticket costs a session copy, its encoding and encryption
     * (about 5 % of a STARTTLS login's server CPU, bench/RESULTS.md). */
    SSL_CTX_set_num_tickets(ctx, 1);
    /* TLS 1.3 suites in the order of Mozilla's "intermediate" profile
     * (OpenSSL's default puts AES-256 first): AES-128-GCM with SHA-256
     * costs less per handshake (SHA-256 key schedule) and per record, and
     * its cipher state is smaller on every idle connection. */
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                      "TLS_AES_256_GCM_SHA384:"
                                      "TLS_CHACHA20_POLY1305_SHA256") != 1) {
        tls_error(err, "SSL_CTX_set_ciphersuites", NULL);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        tls_error(err, "cannot load certificate", cert_path);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        /* OpenSSL already compares the key with the certificate here. */
        tls_error(err,
                  ERR_GET_REASON(ERR_peek_last_error()) ==
                          X509_R_KEY_VALUES_MISMATCH
                      ? "private key does not match certificate"
                      : "cannot load private key",
                  key_path);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, "private key does not match certificate", key_path);
        goto fail;
    }
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void
roost_tls_ctx_fingerprint(SSL_CTX *ctx, char *out, size_t size)
{
    X509 *x = ctx != NULL ? SSL_CTX_get0_certificate(ctx) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t pos = 0;

    if (size == 0)
        return;
    if (x == NULL || X509_digest(x, EVP_sha256(), md, &n) != 1 ||
        size < (size_t)n * 3) {
        snprintf(out, size, "none");
        return;
    }
    for (unsigned int i = 0; i < n; i++)
        pos += (size_t)snprintf(out + pos, size - pos, "%s%02X",
                                i > 0 ? ":" : "", md[i]);
}

/* A name we are willing to put into a certificate: LDH labels and dots. */
static int
tls_domain_ok(const char *d)
{
    size_t n = strlen(d);

    if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || d[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];

        if (!isalnum(c) && c != '-' && c != '.')
            return 0;
        if (c == '.' && d[i + 1] == '.')
            return 0;
    }
    return 1;
}

/* mkdir -p of the directory part of path. */
static int
tls_mkdir_parent(const char *path, char **err)
{
    char *dir = roost_xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;

    if (slash == NULL || slash == dir) {
        roost_free(dir);
        return 0;
    }
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        char c = *p;

        if (c != '/' && c != '\0')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            tls_error_sys(err, "cannot create directory", dir);
            rc = -ROOST_EIO;
        }
        *p = c;
        if (rc != 0 || c == '\0')
            break;
    }
    roost_free(dir);
    return rc;
}

static int
tls_add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok;

    if (ext == NULL)
        return 0;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* The subjectAltName is built from structures, not from a config string,
 * so that no domain can smuggle in other name types. */
static int
tls_add_san(X509 *x, const char *domain)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    int ok = 0;

    if (gens == NULL || gn == NULL || ia5 == NULL ||
        !ASN1_STRING_set(ia5, domain, (int)strlen(domain))) {
        ASN1_IA5STRING_free(ia5);
        GENERAL_NAME_free(gn);
        goto done;
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    if (!sk_GENERAL_NAME_push(gens, gn)) {
        GENERAL_NAME_free(gn);
        goto done;
    }
    ok =
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
done:
    GENERAL_NAMES_free(gens);
    return ok == 1;
}

static X509 *
tls_make_cert(EVP_PKEY *pkey, const char *domain)
{
    X509 *x = X509_new();
    X509_NAME *name;
    BIGNUM *bn = BN_new();
    X509V3_CTX v3;
    int ok = 0;

    if (x == NULL || bn == NULL)
        goto done;
    /* 127-bit positive random serial (RFC 5280: at most 20 octets). */
    if (!X509_set_version(x, X509_VERSION_3) ||
        !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto done;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), TLS_SELFSIGNED_DAYS, 0, NULL) ==
            NULL)
        goto done;
    name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)domain, -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, pkey))
        goto done;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if (!tls_add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
        !tls_add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
        !tls_add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !tls_add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        !tls_add_san(x, domain))
        goto done;
    ok = X509_sign(x, pkey, EVP_sha256()) > 0;
done:
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Creates path exclusively with mode and writes obj as PEM through fn. */
static int
tls_write_pem(const char *path, mode_t mode, int is_key, void *obj, char **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    FILE *fp;
    int ok;

    if (fd < 0) {
        tls_error_sys(err, "cannot create", path);
        return errno == EEXIST ? -ROOST_EEXIST : -ROOST_EIO;
    }
    /* The umask may have narrowed mode; make it exact. */
    if (fchmod(fd, mode) != 0 || (fp = fdopen(fd, "w")) == NULL) {
        tls_error_sys(err, "cannot write", path);
        close(fd);
        unlink(path);
        return -ROOST_EIO;
    }
    if (is_key)
        ok = PEM_write_PrivateKey(fp, obj, NULL, NULL, 0, NULL, NULL);
    else
        ok = PEM_write_X509(fp, obj);
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        ok = 0;
    if (fclose(fp) != 0)
        ok = 0;
    if (!ok) {
        tls_error(err, "cannot write", path);
        unlink(path);
        return -ROOST_EIO;
    }
    return 0;
}

int
roost_tls_selfsigned(const char *domain, const char *cert_path,
                     const char *key_path, char **err)
{
    int have_cert = access(cert_path, F_OK) == 0;
    int have_key = access(key_path, F_OK) == 0;
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    int rc;

    if (err != NULL)
        *err = NULL;
    if (have_cert && have_key)
        return 0;
    if (have_cert || have_key) {
        char msg[1024];

        /* Never overwrite half of an existing pair. */
        snprintf(msg, sizeof(msg), "%s exists but %s does not",
                 have_cert ? cert_path : key_path,
                 have_cert ? key_path : cert_path);
        if (err != NULL)
            *err = roost_xstrdup(msg);
        return -ROOST_EEXIST;
    }
    if (!tls_domain_ok(domain)) {
        if (err != NULL)
            *err = roost_xstrdup("invalid domain for a certificate");
        return -ROOST_EINVAL;
    }
    if ((rc = tls_mkdir_parent(cert_path, err)) != 0 ||
        (rc = tls_mkdir_parent(key_path, err)) != 0)
        return rc;
    pkey = EVP_EC_gen("P-256");
    if (pkey == NULL || (x = tls_make_cert(pkey, domain)) == NULL) {
        tls_error(err, "cannot generate certificate for", domain);
        rc = -ROOST_ETLS;
        goto done;
    }
    if ((rc = tls_write_pem(key_path, 0600, 1, pkey, err)) != 0)
        goto done;
    if ((rc = tls_write_pem(cert_path, 0644, 0, x, err)) != 0) {
        unlink(key_path);
        goto done;
    }
    ROOST_LOG(ROOST_LOG_INFO, "tls",
              "created self-signed certificate %s "
              "for %s",
              cert_path, domain);
done:
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

static tls_ctx_data_t *
tls_ctx_data(SSL_CTX *ctx)
{
    tls_ctx_data_t *d;

    if (roost_tls_init() != 0)
        return NULL;
    d = SSL_CTX_get_ex_data(ctx, tls_ex_index);
    if (d == NULL) {
        d = roost_xcalloc(1, sizeof(*d));
        if (!SSL_CTX_set_ex_data(ctx, tls_ex_index, d)) {
            roost_free(d);
            return NULL;
        }
    }
    return d;
}

static int
tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
    tls_ctx_data_t *d = arg;
    const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char name[256];
    size_t n;
    SSL_CTX *ctx;

    if (sn == NULL || d == NULL || d->lookup == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    n = strlen(sn);
    if (n == 0 || n >= sizeof(name))
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i <= n; i++)
        name[i] = (char)tolower((unsigned char)sn[i]);
    ctx = d->lookup(name, d->lookup_arg);
    if (ctx == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (ctx != SSL_get_SSL_CTX(ssl) && SSL_set_SSL_CTX(ssl, ctx) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

void
roost_tls_set_sni(SSL_CTX *ctx,
                  SSL_CTX *(*lookup)(const char *servername, void *arg),
                  void *arg)
{
    tls_ctx_data_t *d = tls_ctx_data(ctx);

    if (d == NULL)
        return;
    d->lookup = lookup;
    d->lookup_arg = arg;
    SSL_CTX_set_tlsext_servername_callback(ctx, tls_sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, d);
}

static int
tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
            const unsigned char *in, unsigned int inlen, void *arg)
{
    const tls_ctx_data_t *d = arg;
    /* A connection may name its own protocol (s2s STARTTLS on a host
     * context made for c2s): it survives the SNI switch of context. */
    const char *own = tls_ssl_alpn_index >= 0
                          ? SSL_get_ex_data(ssl, tls_ssl_alpn_index)
                          : NULL;
    const unsigned char *want =
        own != NULL ? (const unsigned char *)own : d->alpn;
    size_t want_len = own != NULL ? strlen(own) : d->alpn_len;
    unsigned int i = 0;

    while (i < inlen) {
        unsigned int n = in[i];

        if (n == 0 || n > inlen - i - 1)
            break; /* malformed list */
        if (n == want_len && memcmp(in + i + 1, want, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += n + 1;
    }
    /* RFC 7301 §3.2: no_application_protocol. */
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void
roost_tls_set_conn_alpn(SSL *ssl, const char *proto)
{
    /* proto must outlive ssl: a string literal. */
    if (tls_ssl_alpn_index >= 0)
        SSL_set_ex_data(ssl, tls_ssl_alpn_index, (void *)proto);
}

void
roost_tls_set_alpn(SSL_CTX *ctx, const char *proto)
{
    tls_ctx_data_t *d = tls_ctx_data(ctx);
    size_t n = strlen(proto);

    if (d == NULL || n == 0 || n > TLS_ALPN_MAX)
        return;
    memcpy(d->alpn, proto, n);
    d->alpn_len = n;
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, d);
}

SSL_CTX *
roost_tls_ctx_reload(SSL_CTX *old, const char *cert_path, const char *key_path,
                     char **err)
{
    SSL_CTX *ctx = roost_tls_ctx_new(cert_path, key_path, err);
    const tls_ctx_data_t *od;
    tls_ctx_data_t *nd;

    if (ctx == NULL || old == NULL)
        return ctx;
    od = SSL_CTX_get_ex_data(old, tls_ex_index);
    if (od == NULL)
        return ctx;
    if (od->lookup != NULL)
        roost_tls_set_sni(ctx, od->lookup, od->lookup_arg);
    if (od->alpn_len > 0 && (nd = tls_ctx_data(ctx)) != NULL) {
        memcpy(nd->alpn, od->alpn, od->alpn_len);
        nd->alpn_len = od->alpn_len;
        SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, nd);
    }
    /* Session ticket keys are not carried over: tickets issued under the
     * old certificate stop resuming, so a replaced (perhaps compromised)
     * key is not kept alive through resumption. */
    return ctx;
}

/* tls-unique is only safe with the extended master secret (RFC 7627
 * §5.4, the triple-handshake attack), so on TLS 1.2 without it we offer
 * nothing.
 * COMPAT: slixmpp (1.8) and other clients built on OpenSSL's Finished
 * accessors use tls-unique on TLS 1.3 too, where RFC 9266 defines only
 * tls-exporter; refusing it makes them fail -PLUS, then fail the
 * downgrade check with gs2 flag "y", and fall back to PLAIN.  In TLS 1.3
 * the Finished messages cover the whole transcript, so the first one is
 * still unique to the connection: we accept it as they compute it. */
static int
tls_unique_ok(SSL *ssl)
{
    return SSL_version(ssl) == TLS1_3_VERSION ||
           (SSL_version(ssl) == TLS1_2_VERSION &&
            SSL_get_extms_support(ssl) == 1);
}

int
roost_tls_channel_binding(SSL *ssl, const char *type, unsigned char *out,
                          size_t *len)
{
    size_t n;

    if (ssl == NULL || !SSL_is_init_finished(ssl))
        return -ROOST_ENOTFOUND;
    if (strcmp(type, "tls-exporter") == 0) {
        if (SSL_version(ssl) != TLS1_3_VERSION)
            return -ROOST_ENOTFOUND;
        if (out == NULL)
            return 0;
        if (*len < TLS_EXPORTER_LEN)
            return -ROOST_EINVAL;
        if (SSL_export_keying_material(
                ssl, out, TLS_EXPORTER_LEN, TLS_EXPORTER_LABEL,
                strlen(TLS_EXPORTER_LABEL), NULL, 0, 0) != 1) {
            ERR_clear_error();
            return -ROOST_ETLS;
        }
        *len = TLS_EXPORTER_LEN;
        return 0;
    }
    if (strcmp(type, "tls-unique") == 0) {
        unsigned char fin[EVP_MAX_MD_SIZE];
        size_t cap = out != NULL ? *len : sizeof(fin);

        if (!tls_unique_ok(ssl))
            return -ROOST_ENOTFOUND;
        /* The first Finished of the handshake: the client's in a full
         * handshake, the server's (ours) in an abbreviated one. */
        if (SSL_session_reused(ssl))
            n = SSL_get_finished(ssl, out != NULL ? out : fin, cap);
        else
            n = SSL_get_peer_finished(ssl, out != NULL ? out : fin, cap);
        if (n == 0)
            return -ROOST_ENOTFOUND;
        if (out == NULL)
            return 0;
        if (n > *len)
            return -ROOST_EINVAL;
        *len = n;
        return 0;
    }
    if (strcmp(type, "tls-server-end-point") == 0) {
        /* RFC 5929 §4.1: the hash of our certificate with the hash its
         * signature uses, SHA-256 for MD5 and SHA-1; undefined for a
         * signature without one (Ed25519), so not offered then.  Used by
         * FAST (HT-SHA-256-ENDP, core/fast.c), not by SCRAM: it is not
         * among roost_tls_cb_types. */
        X509 *x = SSL_get_certificate(ssl);
        const EVP_MD *md;
        unsigned int mdlen;
        int nid;

        if (x == NULL ||
            X509_get_signature_info(x, &nid, NULL, NULL, NULL) != 1 ||
            nid == NID_undef) {
            ERR_clear_error();
            return -ROOST_ENOTFOUND;
        }
        if (nid == NID_md5 || nid == NID_sha1)
            nid = NID_sha256;
        md = EVP_get_digestbynid(nid);
        if (md == NULL)
            return -ROOST_ENOTFOUND;
        if (out == NULL)
            return 0;
        if (*len < (size_t)EVP_MD_size(md))
            return -ROOST_EINVAL;
        if (X509_digest(x, md, out, &mdlen) != 1) {
            ERR_clear_error();
            return -ROOST_ETLS;
        }
        *len = mdlen;
        return 0;
    }
    return -ROOST_ENOTFOUND;
}

const char *const *
roost_tls_cb_types(SSL *ssl)
{
    if (ssl == NULL || !SSL_is_init_finished(ssl))
        return tls_cb_none;
    if (SSL_version(ssl) == TLS1_3_VERSION)
        return tls_cb_exporter;
    if (tls_unique_ok(ssl))
        return tls_cb_unique;
    return tls_cb_none;
}
