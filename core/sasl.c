/* core/sasl.c: the server side of SASL (RFC 6120 §6) on Cyrus libsasl2.
 *
 * Cyrus runs the mechanisms: its plain and anonymous plugins, and for
 * SCRAM-SHA-1/-256(-PLUS) an in-process mechanism plugin defined here
 * (RFC 5802, RFC 7677) whose server-first-message carries XEP-0474's
 * downgrade-protection hash "h" (Cyrus's own scram plugin cannot add it,
 * and it must be inside the AuthMessage the proofs sign); a verifyfile
 * callback keeps Cyrus from loading its libscram, so ours is the only
 * provider of those names.  This file also feeds Cyrus: an in-process
 * auxprop plugin "roost" hands the stored RFC 5803 authPassword values of
 * core/auth.h to the SCRAM plugin, a checkpass callback verifies PLAIN
 * against the same secrets, a proxy-policy callback refuses any
 * authorization identity other than the authenticated one, and a
 * per-connection getopt callback gives the SCRAM plugin what was
 * advertised.  Around Cyrus it enforces what a server must decide
 * itself: which mechanisms are offered (PLAIN only over TLS, -PLUS only
 * with channel-binding data, ANONYMOUS only where enabled), the SCRAM gs2
 * channel-binding flag (RFC 5802 §6, downgrade protection), base64 and
 * the mapping of results to RFC 6120 §6.5 conditions.
 *
 * Not for stream handling (<auth/>, <abort/>, retry limits: the c2s state
 * machine) nor for account storage (core/auth.c). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include <roost/common.h>
#include <roost/jid.h>
#include "auth.h"
#include "log.h"
#include "sasl.h"

#define SASL_CB_MAX      4  /* channel-binding types kept per exchange */
#define SASL_CB_DATA_MAX 64 /* bytes of one channel binding */
#define SASL_CB_NAME_MAX 32
#define SASL_IN_MAX      8192 /* base64 characters accepted per step */
#define SASL_AUTHPW      "*authPassword"
#define SASL_TAG         "sasl"
/* Cyrus stores callbacks as int (*)(void); void (*)(void) is the cast
 * GCC accepts between function types. */
#define SASL_FN(f) ((sasl_callback_ft)(void (*)(void))(f))

typedef enum {
    SASL_ST_IDLE,    /* no exchange running */
    SASL_ST_RUNNING, /* between <auth/> and the outcome */
    SASL_ST_DONE     /* authenticated */
} sasl_state_t;

typedef struct sasl_cbdata {
    char name[SASL_CB_NAME_MAX + 1];
    unsigned char data[SASL_CB_DATA_MAX];
    size_t len;
} sasl_cbdata_t;

struct roost_sasl {
    sasl_conn_t *conn;
    char *host;
    int tls, anonymous;
    int used; /* conn saw a start: make a fresh one for a retry */
    sasl_state_t state;
    const char *mech; /* entry of sasl_mech_table while running / done */
    int scram, plus;  /* properties of mech */
    int gs2_checked;  /* the SCRAM client-first-message was inspected */
    int challenged;   /* a non-empty challenge was sent */
    int backend_down; /* PLAIN's check hit a storage failure */
    sasl_cbdata_t cb[SASL_CB_MAX];
    size_t ncb;
    sasl_channel_binding_t binding; /* Cyrus keeps this pointer */
    const char *mechs[8];
    char *ssdp; /* XEP-0474 string of what was advertised */
    char *user;
    char *out;
    size_t outcap;
    sasl_callback_t callbacks[4];
};

/* Offered mechanisms, strongest first. */
static const char *const sasl_mech_table[] = {"SCRAM-SHA-256-PLUS",
                                              "SCRAM-SHA-1-PLUS",
                                              "SCRAM-SHA-256",
                                              "SCRAM-SHA-1",
                                              "PLAIN",
                                              "ANONYMOUS"};
#define SASL_NMECH (sizeof(sasl_mech_table) / sizeof(sasl_mech_table[0]))

static int sasl_active;
/* Keys the made-up SCRAM secrets of accounts that do not exist. */
static unsigned char sasl_fake_key[32];

/* --- process-wide callbacks --- */

static int
sasl_getopt_cb(void *context, const char *plugin, const char *option,
               const char **result, unsigned *len)
{
    static const struct {
        const char *name, *value;
    } opts[] = {
        {"auxprop_plugin", "roost"},
        /* Per connection we narrow this further. */
        {"mech_list", "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN ANONYMOUS"},
        /* Fallback after our checkpass: our auxprop never has a
         * userPassword, so this can only refuse. */
        {"pwcheck_method", "auxprop"},
        {"canon_user_plugin", "INTERNAL"},
    };

    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        if (strcmp(option, opts[i].name) == 0) {
            *result = opts[i].value;
            if (len != NULL)
                *len = (unsigned)strlen(opts[i].value);
            return SASL_OK;
        }
    }
    if (strcmp(option, "log_level") == 0) {
        *result = roost_log_level >= ROOST_LOG_DEBUG ? "5" : "1";
        if (len != NULL)
            *len = 1;
        return SASL_OK;
    }
    *result = NULL;
    return SASL_FAIL;
}

static int
sasl_log_cb(void *context, int level, const char *message)
{
    /* SASL_LOG_PASS traces may hold passwords: never written. */
    if (level == SASL_LOG_NONE || level >= SASL_LOG_PASS)
        return SASL_OK;
    ROOST_LOG(level == SASL_LOG_ERR ? ROOST_LOG_WARN : ROOST_LOG_DEBUG,
              SASL_TAG, "%s", message);
    return SASL_OK;
}

/* Cyrus asks before loading each plugin file.  Its scram plugin would
 * offer the same mechanism names as ours (scram_plugs), so it is not
 * loaded: ours are then the only SCRAM mechanisms Cyrus can pick. */
static int
sasl_verifyfile_cb(void *context, const char *file, sasl_verify_type_t type)
{
    const char *base = strrchr(file, '/');

    base = base != NULL ? base + 1 : file;
    if (type == SASL_VRFY_PLUGIN && strncmp(base, "libscram.", 9) == 0)
        return SASL_CONTINUE; /* skip this file */
    return SASL_OK;
}

static void *
sasl_mutex_alloc(void)
{
    pthread_mutex_t *m = roost_xmalloc(sizeof(*m));

    pthread_mutex_init(m, NULL);
    return m;
}

static int
sasl_mutex_lock(void *m)
{
    return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int
sasl_mutex_unlock(void *m)
{
    return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void
sasl_mutex_free(void *m)
{
    pthread_mutex_destroy(m);
    roost_free(m);
}

/* Splits a Cyrus identity "node" or "node@realm" (len bytes) and returns
 * the prepared node when the realm, if any, is host; NULL otherwise. */
static char *
sasl_ident(const char *host, const char *id, size_t len)
{
    char *copy = roost_xstrndup(id, len);
    char *at = strrchr(copy, '@');
    char *node = NULL;

    if (strlen(copy) != len)
        goto done; /* embedded NUL */
    if (at != NULL) {
        *at = '\0';
        if (strcasecmp(at + 1, host) != 0)
            goto done;
    }
    node = roost_jid_prep_node(copy);
done:
    roost_free(copy);
    return node;
}

/* --- base64 (RFC 4648 §4, strict: no whitespace, padding required) --- */

static const char sasl_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
sasl_b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes n characters into out (room for n/4*3 bytes).  Returns the
 * length or -1 when in is not canonical base64. */
static long
sasl_b64_decode(const char *in, size_t n, unsigned char *out)
{
    size_t o = 0;

    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;

        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + j];

            if (c == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[j] = sasl_b64val(c)) < 0)
                return -1; /* bad character, or data after '=' */
        }
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (pad < 2)
            out[o++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
        if (pad < 1)
            out[o++] = (unsigned char)(v[2] << 6 | v[3]);
    }
    return (long)o;
}

/* Writes (n + 2) / 3 * 4 characters and a NUL to out. */
static void
sasl_b64_enc(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;

        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = sasl_b64[v >> 18 & 63];
        out[o++] = sasl_b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? sasl_b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? sasl_b64[v & 63] : '=';
    }
    out[o] = '\0';
}

static const char *
sasl_b64_encode(roost_sasl_t *s, const unsigned char *in, size_t n)
{
    size_t need = (n + 2) / 3 * 4 + 1;

    if (need > s->outcap) {
        s->out = roost_xrealloc(s->out, need);
        s->outcap = need;
    }
    sasl_b64_enc(in, n, s->out);
    return s->out;
}

/* --- the auxprop plugin --- */

/* An authPassword for an account that does not exist, stable per name
 * (RFC 5802 §9): the exchange then fails at the proof like a wrong
 * password instead of revealing at once that there is no such user. */
static char *
sasl_fake_scram(const char *mech, const char *realm, const char *user,
                unsigned ulen)
{
    const EVP_MD *md =
        strcmp(mech, "SCRAM-SHA-256") == 0 ? EVP_sha256() : EVP_sha1();
    size_t hlen = (size_t)EVP_MD_get_size(md), rlen = strlen(realm) + 1;
    unsigned char mac[EVP_MAX_MD_SIZE], *msg;
    char b[3][EVP_MAX_MD_SIZE * 2], *out;
    unsigned maclen;

    /* msg = tag | realm | NUL | user; salt, StoredKey and ServerKey are
     * HMACs of it under three tags. */
    msg = roost_xmalloc(1 + rlen + ulen);
    memcpy(msg + 1, realm, rlen);
    memcpy(msg + 1 + rlen, user, ulen);
    for (int i = 0; i < 3; i++) {
        msg[0] = (unsigned char)i;
        if (HMAC(EVP_sha256(), sasl_fake_key, sizeof(sasl_fake_key), msg,
                 1 + rlen + ulen, mac, &maclen) == NULL) {
            roost_free(msg);
            return NULL;
        }
        sasl_b64_enc(mac, i == 0 ? 16 : hlen, b[i]);
    }
    roost_free(msg);
    out = roost_xmalloc(strlen(mech) + 3 * sizeof(b[0]) + 32);
    sprintf(out, "%s$%d:%s$%s:%s", mech, ROOST_AUTH_ITERATIONS, b[0], b[1],
            b[2]);
    return out;
}

static int
sasl_auxprop_lookup(void *glob, sasl_server_params_t *sp, unsigned flags,
                    const char *user, unsigned ulen)
{
    const struct propval *pv;
    const char *mech = NULL, *scheme;
    char *node, *ap = NULL;
    int rc;

    /* authPassword is an authentication-identity property ("*" prefix);
     * nothing is looked up for the authorization identity. */
    if (flags & SASL_AUXPROP_AUTHZID)
        return SASL_OK;
    for (pv = sp->utils->prop_get(sp->propctx); pv != NULL && pv->name; pv++) {
        if (strcmp(pv->name, SASL_AUTHPW) == 0)
            break;
    }
    if (pv == NULL || pv->name == NULL)
        return SASL_OK; /* not asked for anything we keep */
    if (pv->values != NULL && !(flags & SASL_AUXPROP_OVERRIDE))
        return SASL_OK;
    if (sp->utils->getprop(sp->utils->conn, SASL_MECHNAME,
                           (const void **)&mech) != SASL_OK ||
        mech == NULL || strncmp(mech, "SCRAM-SHA-", 10) != 0)
        return SASL_OK;
    if (sp->user_realm == NULL)
        return SASL_NOUSER;
    /* The scram plugin picks the value whose scheme matches its mech. */
    scheme = strncmp(mech, "SCRAM-SHA-256", 13) == 0 ? "SCRAM-SHA-256"
                                                     : "SCRAM-SHA-1";
    node = sasl_ident(sp->user_realm, user, ulen);
    rc = node != NULL ? roost_auth_get_scram(sp->user_realm, node, scheme, &ap)
                      : -ROOST_ENOTFOUND;
    roost_free(node);
    if (rc == -ROOST_ENOTFOUND || rc == -ROOST_EINVAL) {
        ap = sasl_fake_scram(scheme, sp->user_realm, user, ulen);
        if (ap == NULL)
            return SASL_NOUSER;
    } else if (rc != 0) {
        ROOST_LOG(ROOST_LOG_WARN, SASL_TAG, "credential lookup failed: %s",
                  roost_strerror(rc));
        return SASL_UNAVAIL;
    }
    if (pv->values != NULL)
        sp->utils->prop_erase(sp->propctx, SASL_AUTHPW);
    rc = sp->utils->prop_set(sp->propctx, SASL_AUTHPW, ap, (int)strlen(ap));
    roost_free(ap);
    return rc == 0 ? SASL_OK : SASL_NOMEM;
}

static int
sasl_auxprop_init(const sasl_utils_t *utils, int max_version, int *out_version,
                  sasl_auxprop_plug_t **plug, const char *plugname)
{
    static sasl_auxprop_plug_t p = {
        .auxprop_lookup = sasl_auxprop_lookup,
        .name = "roost",
    };

    if (max_version < SASL_AUXPROP_PLUG_VERSION)
        return SASL_BADVERS;
    *out_version = SASL_AUXPROP_PLUG_VERSION;
    *plug = &p;
    return SASL_OK;
}

/* --- the SCRAM mechanism plugin (RFC 5802, RFC 7677, XEP-0474) --- */

/* Cyrus's scram plugin has no way to add an attribute to its
 * server-first-message, so these mechanisms are ours.  The secrets come
 * through the auxprop plugin above (never PBKDF2 per login: the client
 * proof is checked against StoredKey).  -PLUS is Cyrus's business up to
 * the point of choosing this plugin (the name with "-PLUS" maps to the
 * plugin's name when SASL_FEAT_CHANNEL_BINDING is set); the binding
 * itself is checked here and reported in oparams->cbindingdisp, which
 * Cyrus then checks against the connection's binding once more. */

#define SCRAM_NONCE_RAW 18 /* random bytes behind our part of the nonce */
#define SCRAM_ITER_MAX  10000000

typedef struct scram_mech {
    const char *name;
    const EVP_MD *(*md)(void);
} scram_mech_t;

static const scram_mech_t scram_mechs[] = {{"SCRAM-SHA-256", EVP_sha256},
                                           {"SCRAM-SHA-1", EVP_sha1}};

/* roost_sasl_test_nonce(): borrowed, for the known-answer tests only. */
static const char *scram_test_nonce;

typedef struct scram_ctx {
    const scram_mech_t *mech;
    int step;  /* 0: expecting client-first, 1: client-final, 2: done */
    char flag; /* gs2-cbind-flag: 'n', 'y' or 'p' */
    char cbname[SASL_CB_NAME_MAX + 1];
    char *gs2; /* the gs2-header as received */
    size_t gs2len;
    char *bare; /* client-first-message-bare */
    size_t barelen;
    char *sfirst; /* server-first-message */
    size_t sfirstlen;
    char *nonce; /* c-nonce s-nonce */
    size_t noncelen;
    unsigned char stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
    size_t klen;
    char *out; /* what we sent last, owned here (Cyrus's serverout) */
} scram_ctx_t;

void
roost_sasl_test_nonce(const char *nonce)
{
    scram_test_nonce = nonce;
}

static int
scram_new(void *glob, sasl_server_params_t *sp, const char *challenge,
          unsigned challen, void **conn_context)
{
    /* Freed by scram_dispose, which Cyrus calls for every context. */
    scram_ctx_t *c = roost_xcalloc(1, sizeof(*c));

    c->mech = glob;
    *conn_context = c;
    return SASL_OK;
}

static void
scram_dispose(void *conn_context, const sasl_utils_t *utils)
{
    scram_ctx_t *c = conn_context;

    if (c == NULL)
        return;
    OPENSSL_cleanse(c->stored, sizeof(c->stored));
    OPENSSL_cleanse(c->server, sizeof(c->server));
    roost_free(c->gs2);
    roost_free(c->bare);
    roost_free(c->sfirst);
    roost_free(c->nonce);
    roost_free(c->out);
    roost_free(c);
}

/* RFC 5802 §7 printable: %x21-7E except ",". */
static int
scram_printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch < 0x21 || ch > 0x7e || ch == ',')
            return 0;
    }
    return n > 0;
}

/* Decodes a saslname (n bytes, "=2C" and "=3D" escapes) to a new string,
 * or NULL when malformed or empty. */
static char *
scram_saslname(const char *p, size_t n)
{
    char *out = roost_xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '=') {
            if (i + 2 < n && p[i + 1] == '2' && p[i + 2] == 'C')
                out[o++] = ',';
            else if (i + 2 < n && p[i + 1] == '3' && p[i + 2] == 'D')
                out[o++] = '=';
            else
                goto bad;
            i += 2;
        } else if (p[i] == ',' || p[i] == '\0') {
            goto bad;
        } else {
            out[o++] = p[i];
        }
    }
    if (o == 0)
        goto bad;
    out[o] = '\0';
    return out;
bad:
    roost_free(out);
    return NULL;
}

/* The field starting at p (up to the next "," or end). */
static const char *
scram_field_end(const char *p, const char *end)
{
    const char *q = memchr(p, ',', (size_t)(end - p));

    return q != NULL ? q : end;
}

/* Finds the authPassword value for the mechanism in the property
 * context and fills iter, salt (base64, borrowed into buf) and keys. */
static int
scram_secret(scram_ctx_t *c, sasl_server_params_t *sp, int *iter, char *salt,
             size_t saltmax)
{
    const char *names[] = {SASL_AUTHPW, NULL};
    struct propval pv[2];
    size_t nl = strlen(c->mech->name), hl;

    memset(pv, 0, sizeof(pv));
    if (sp->utils->prop_getnames(sp->propctx, names, pv) <= 0 ||
        pv[0].values == NULL)
        return SASL_NOUSER;
    hl = (size_t)EVP_MD_get_size(c->mech->md());
    for (const char **v = pv[0].values; *v != NULL; v++) {
        const char *p = *v, *s, *d, *k;
        unsigned char tmp[EVP_MAX_MD_SIZE * 2];
        char *e;
        long it, n;

        if (strncmp(p, c->mech->name, nl) != 0 || p[nl] != '$')
            continue;
        p += nl + 1;
        it = strtol(p, &e, 10);
        if (e == p || *e != ':' || it < 1 || it > SCRAM_ITER_MAX)
            return SASL_FAIL;
        s = e + 1;
        d = strchr(s, '$');
        if (d == NULL || (size_t)(d - s) >= saltmax || d == s)
            return SASL_FAIL;
        k = strchr(d + 1, ':');
        if (k == NULL || (size_t)(k - d - 1) > sizeof(tmp) / 3 * 4 ||
            strlen(k + 1) > sizeof(tmp) / 3 * 4)
            return SASL_FAIL;
        n = sasl_b64_decode(d + 1, (size_t)(k - d - 1), tmp);
        if (n != (long)hl)
            return SASL_FAIL;
        memcpy(c->stored, tmp, hl);
        n = sasl_b64_decode(k + 1, strlen(k + 1), tmp);
        if (n != (long)hl)
            return SASL_FAIL;
        memcpy(c->server, tmp, hl);
        OPENSSL_cleanse(tmp, sizeof(tmp));
        c->klen = hl;
        memcpy(salt, s, (size_t)(d - s));
        salt[d - s] = '\0';
        *iter = (int)it;
        return SASL_OK;
    }
    return SASL_NOUSER;
}

/* XEP-0474 §3.1: base64 of H(S) for the S the application gave us for
 * this connection, written to out; 0 if there is none. */
static int
scram_ssdp(const scram_ctx_t *c, sasl_server_params_t *sp, char *out)
{
    const char *v = NULL;
    unsigned vlen = 0;
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hlen;

    if (sp->utils->getopt == NULL ||
        sp->utils->getopt(sp->utils->getopt_context, c->mech->name,
                          ROOST_SASL_OPT_SSDP, &v, &vlen) != SASL_OK ||
        v == NULL || vlen == 0)
        return 0;
    if (EVP_Digest(v, vlen, h, &hlen, c->mech->md(), NULL) != 1)
        return 0;
    sasl_b64_enc(h, hlen, out);
    return 1;
}

/* Parses the client-first-message, looks up the secret and answers with
 * the server-first-message. */
static int
scram_first(scram_ctx_t *c, sasl_server_params_t *sp, const char *in,
            unsigned inlen, const char **out, unsigned *outlen,
            sasl_out_params_t *op)
{
    const char *p = in, *end = in + inlen, *q, *bare, *cn;
    static const char *names[] = {SASL_AUTHPW, NULL};
    char *authzid = NULL, *user = NULL;
    char salt[128], snonce[64], h[EVP_MAX_MD_SIZE * 2] = "";
    size_t cnlen, sn, need;
    int rc = SASL_BADPROT, iter = 0, has_h;

    if (inlen == 0 || memchr(in, '\0', inlen) != NULL)
        return SASL_BADPROT;
    /* gs2-cbind-flag */
    if (inlen >= 2 && (p[0] == 'n' || p[0] == 'y') && p[1] == ',') {
        c->flag = p[0];
        p += 2;
    } else if (inlen > 2 && p[0] == 'p' && p[1] == '=') {
        q = scram_field_end(p, end);
        if (q == end || q - p - 2 < 1 || q - p - 2 > SASL_CB_NAME_MAX)
            return SASL_BADPROT;
        for (const char *x = p + 2; x < q; x++) {
            if (!((*x >= 'a' && *x <= 'z') || (*x >= 'A' && *x <= 'Z') ||
                  (*x >= '0' && *x <= '9') || *x == '.' || *x == '-'))
                return SASL_BADPROT;
        }
        memcpy(c->cbname, p + 2, (size_t)(q - p - 2));
        c->cbname[q - p - 2] = '\0';
        c->flag = 'p';
        p = q + 1;
    } else {
        return SASL_BADPROT;
    }
    /* [ authzid ] "," */
    if (p < end && *p == 'a') {
        q = scram_field_end(p, end);
        if (q == end || q - p < 3 || p[1] != '=' ||
            (authzid = scram_saslname(p + 2, (size_t)(q - p - 2))) == NULL)
            return SASL_BADPROT;
        p = q + 1;
    } else if (p < end && *p == ',') {
        p++;
    } else {
        return SASL_BADPROT;
    }
    c->gs2len = (size_t)(p - in);
    bare = p;
    /* RFC 5802 §5.1: an "m" extension we do not know must fail. */
    if (end - p < 2 || p[0] != 'n' || p[1] != '=')
        goto done;
    q = scram_field_end(p, end);
    if (q == end || (user = scram_saslname(p + 2, (size_t)(q - p - 2))) == NULL)
        goto done;
    p = q + 1;
    if (end - p < 2 || p[0] != 'r' || p[1] != '=')
        goto done;
    q = scram_field_end(p, end);
    cn = p + 2;
    cnlen = (size_t)(q - cn);
    if (!scram_printable(cn, cnlen))
        goto done;
    /* optional extensions: attr-val, ignored */
    for (p = q; p < end; p = q) {
        p++;
        q = scram_field_end(p, end);
        if (q - p < 2 ||
            !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) ||
            p[1] != '=')
            goto done;
    }
    /* Channel binding (RFC 5802 §6): "y" while we can bind means someone
     * removed -PLUS from what the client saw. */
    if (c->flag == 'p' &&
        (!SASL_CB_PRESENT(sp) || strcmp(sp->cbinding->name, c->cbname) != 0)) {
        rc = SASL_BADBINDING;
        goto done;
    }
    if (c->flag == 'y' && SASL_CB_PRESENT(sp)) {
        rc = SASL_BADAUTH;
        goto done;
    }
    if (c->flag == 'n' && SASL_CB_CRITICAL(sp)) {
        rc = SASL_BADBINDING;
        goto done;
    }
    /* The identities; canon_user also runs the auxprop lookup that the
     * request below asks for. */
    if ((rc = sp->utils->prop_request(sp->propctx, names)) != SASL_OK)
        goto done;
    if (authzid != NULL &&
        (rc = sp->canon_user(sp->utils->conn, authzid, 0, SASL_CU_AUTHZID,
                             op)) != SASL_OK)
        goto done;
    rc = sp->canon_user(sp->utils->conn, user, 0,
                        SASL_CU_AUTHID | (authzid ? 0 : SASL_CU_AUTHZID), op);
    if (rc != SASL_OK)
        goto done;
    if ((rc = scram_secret(c, sp, &iter, salt, sizeof(salt))) != SASL_OK)
        goto done;
    /* Our part of the nonce. */
    if (scram_test_nonce != NULL) {
        snprintf(snonce, sizeof(snonce), "%s", scram_test_nonce);
    } else {
        unsigned char r[SCRAM_NONCE_RAW];

        if (RAND_bytes(r, sizeof(r)) != 1) {
            rc = SASL_FAIL;
            goto done;
        }
        sasl_b64_enc(r, sizeof(r), snonce);
    }
    sn = strlen(snonce);
    has_h = scram_ssdp(c, sp, h);
    c->noncelen = cnlen + sn;
    c->nonce = roost_xmalloc(c->noncelen + 1);
    memcpy(c->nonce, cn, cnlen);
    memcpy(c->nonce + cnlen, snonce, sn + 1);
    need = c->noncelen + strlen(salt) + strlen(h) + 64;
    c->sfirst = roost_xmalloc(need);
    c->sfirstlen =
        (size_t)snprintf(c->sfirst, need, "r=%s,s=%s,i=%d%s%s", c->nonce, salt,
                         iter, has_h ? ",h=" : "", has_h ? h : "");
    c->gs2 = roost_xstrndup(in, c->gs2len);
    c->barelen = (size_t)(end - bare);
    c->bare = roost_xstrndup(bare, c->barelen);
    c->step = 1;
    *out = c->sfirst;
    *outlen = (unsigned)c->sfirstlen;
    rc = SASL_CONTINUE;
done:
    roost_free(authzid);
    roost_free(user);
    return rc;
}

/* Checks the client-final-message and answers with the server's
 * signature. */
static int
scram_final(scram_ctx_t *c, sasl_server_params_t *sp, const char *in,
            unsigned inlen, const char **out, unsigned *outlen,
            sasl_out_params_t *op)
{
    const EVP_MD *md = c->mech->md();
    const char *p = in, *end = in + inlen, *q, *cb, *r, *proof = NULL;
    size_t cblen, rlen, prooflen = 0, wplen = 0, amlen, cbdlen = 0;
    unsigned char *cbin = NULL, *am = NULL;
    unsigned char pr[EVP_MAX_MD_SIZE * 2], sig[EVP_MAX_MD_SIZE],
        key[EVP_MAX_MD_SIZE];
    char v[EVP_MAX_MD_SIZE * 2 + 3];
    unsigned siglen, keylen;
    long n;
    int rc = SASL_BADPROT;

    if (inlen == 0 || memchr(in, '\0', inlen) != NULL)
        return SASL_BADPROT;
    if (end - p < 2 || p[0] != 'c' || p[1] != '=')
        return SASL_BADPROT;
    q = scram_field_end(p, end);
    cb = p + 2;
    cblen = (size_t)(q - cb);
    if (q == end)
        return SASL_BADPROT;
    p = q + 1;
    if (end - p < 2 || p[0] != 'r' || p[1] != '=')
        return SASL_BADPROT;
    q = scram_field_end(p, end);
    r = p + 2;
    rlen = (size_t)(q - r);
    /* extensions (ignored), then "p=" last */
    for (p = q; p < end; p = q) {
        p++;
        q = scram_field_end(p, end);
        if (q - p >= 2 && p[0] == 'p' && p[1] == '=') {
            if (q != end)
                return SASL_BADPROT;
            proof = p + 2;
            prooflen = (size_t)(q - proof);
            wplen = (size_t)(p - 1 - in);
            break;
        }
        if (q - p < 2 ||
            !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) ||
            p[1] != '=')
            return SASL_BADPROT;
    }
    /* c= is the gs2-header plus, for "p", the binding data. */
    if (c->flag == 'p')
        cbdlen = sp->cbinding->len;
    if (proof == NULL || prooflen == 0 || prooflen > sizeof(pr) / 3 * 4 ||
        cblen != (c->gs2len + cbdlen + 2) / 3 * 4)
        return SASL_BADPROT;
    cbin = roost_xmalloc(cblen / 4 * 3 + 1);
    n = sasl_b64_decode(cb, cblen, cbin);
    if (n < 0)
        goto done;
    if ((size_t)n != c->gs2len + cbdlen ||
        CRYPTO_memcmp(cbin, c->gs2, c->gs2len) != 0 ||
        (cbdlen > 0 &&
         CRYPTO_memcmp(cbin + c->gs2len, sp->cbinding->data, cbdlen) != 0)) {
        rc = c->flag == 'p' ? SASL_BADBINDING : SASL_BADPROT;
        goto done;
    }
    if (rlen != c->noncelen || CRYPTO_memcmp(r, c->nonce, rlen) != 0)
        goto done;
    n = sasl_b64_decode(proof, prooflen, pr);
    if (n != (long)c->klen)
        goto done;
    /* AuthMessage = client-first-bare "," server-first ","
     * client-final-without-proof */
    amlen = c->barelen + 1 + c->sfirstlen + 1 + wplen;
    am = roost_xmalloc(amlen);
    memcpy(am, c->bare, c->barelen);
    am[c->barelen] = ',';
    memcpy(am + c->barelen + 1, c->sfirst, c->sfirstlen);
    am[c->barelen + 1 + c->sfirstlen] = ',';
    memcpy(am + c->barelen + 2 + c->sfirstlen, in, wplen);
    rc = SASL_FAIL;
    if (HMAC(md, c->stored, (int)c->klen, am, amlen, sig, &siglen) == NULL ||
        siglen != c->klen)
        goto done;
    for (size_t i = 0; i < c->klen; i++)
        pr[i] ^= sig[i]; /* ClientKey */
    if (EVP_Digest(pr, c->klen, key, &keylen, md, NULL) != 1 ||
        keylen != c->klen)
        goto done;
    if (CRYPTO_memcmp(key, c->stored, c->klen) != 0) {
        sp->utils->seterror(sp->utils->conn, 0, "SCRAM proof mismatch");
        rc = SASL_BADAUTH;
        goto done;
    }
    if (HMAC(md, c->server, (int)c->klen, am, amlen, sig, &siglen) == NULL)
        goto done;
    v[0] = 'v';
    v[1] = '=';
    sasl_b64_enc(sig, siglen, v + 2);
    roost_free(c->out);
    c->out = roost_xstrdup(v);
    *out = c->out;
    *outlen = (unsigned)strlen(c->out);
    op->doneflag = 1;
    op->mech_ssf = 0;
    op->maxoutbuf = 0;
    op->encode_context = op->decode_context = NULL;
    op->encode = NULL;
    op->decode = NULL;
    op->param_version = 0;
    op->cbindingdisp = c->flag == 'p'   ? SASL_CB_DISP_USED
                       : c->flag == 'y' ? SASL_CB_DISP_WANT
                                        : SASL_CB_DISP_NONE;
    op->cbindingname = c->flag == 'p' ? c->cbname : NULL;
    c->step = 2;
    rc = SASL_OK;
done:
    OPENSSL_cleanse(pr, sizeof(pr));
    OPENSSL_cleanse(key, sizeof(key));
    roost_free(cbin);
    roost_free(am);
    return rc;
}

static int
scram_step(void *conn_context, sasl_server_params_t *sp, const char *in,
           unsigned inlen, const char **out, unsigned *outlen,
           sasl_out_params_t *op)
{
    scram_ctx_t *c = conn_context;

    *out = NULL;
    *outlen = 0;
    if (in == NULL && inlen > 0)
        return SASL_BADPARAM;
    switch (c->step) {
    case 0: return scram_first(c, sp, in, inlen, out, outlen, op);
    case 1: return scram_final(c, sp, in, inlen, out, outlen, op);
    default: return SASL_BADPROT;
    }
}

static sasl_server_plug_t scram_plugs[] = {
    {
        .mech_name = "SCRAM-SHA-256",
        .security_flags = SASL_SEC_NOPLAINTEXT | SASL_SEC_NOACTIVE |
                          SASL_SEC_NOANONYMOUS | SASL_SEC_MUTUAL_AUTH,
        .features = SASL_FEAT_WANT_CLIENT_FIRST | SASL_FEAT_ALLOWS_PROXY |
                    SASL_FEAT_CHANNEL_BINDING,
        .glob_context = (void *)&scram_mechs[0],
        .mech_new = scram_new,
        .mech_step = scram_step,
        .mech_dispose = scram_dispose,
    },
    {
        .mech_name = "SCRAM-SHA-1",
        .security_flags = SASL_SEC_NOPLAINTEXT | SASL_SEC_NOACTIVE |
                          SASL_SEC_NOANONYMOUS | SASL_SEC_MUTUAL_AUTH,
        .features = SASL_FEAT_WANT_CLIENT_FIRST | SASL_FEAT_ALLOWS_PROXY |
                    SASL_FEAT_CHANNEL_BINDING,
        .glob_context = (void *)&scram_mechs[1],
        .mech_new = scram_new,
        .mech_step = scram_step,
        .mech_dispose = scram_dispose,
    },
};

static int
scram_plug_init(const sasl_utils_t *utils, int max_version, int *out_version,
                sasl_server_plug_t **pluglist, int *plugcount)
{
    if (max_version < SASL_SERVER_PLUG_VERSION)
        return SASL_BADVERS;
    *out_version = SASL_SERVER_PLUG_VERSION;
    *pluglist = scram_plugs;
    *plugcount = (int)(sizeof(scram_plugs) / sizeof(scram_plugs[0]));
    return SASL_OK;
}

/* --- per-connection callbacks --- */

static int
sasl_checkpass_cb(sasl_conn_t *conn, void *context, const char *user,
                  const char *pass, unsigned passlen, struct propctx *pc)
{
    roost_sasl_t *s = context;
    char *node;
    int rc;

    if (strlen(pass) != passlen)
        return SASL_BADAUTH; /* NUL inside the password */
    node = sasl_ident(s->host, user, strlen(user));
    if (node == NULL)
        return SASL_NOUSER;
    rc = roost_auth_verify_plain(s->host, node, pass);
    roost_free(node);
    switch (rc) {
    case 0: return SASL_OK;
    case -ROOST_ENOTFOUND:
    case -ROOST_EINVAL: return SASL_NOUSER;
    case -ROOST_EAUTH: return SASL_BADAUTH;
    default:
        /* Cyrus goes on to pwcheck_method, which would hide this. */
        s->backend_down = 1;
        return SASL_UNAVAIL;
    }
}

/* Only the authenticated identity itself may be the authorization
 * identity: PLAIN's authzid must not let alice act as bob. */
static int
sasl_proxy_cb(sasl_conn_t *conn, void *context, const char *requested,
              unsigned rlen, const char *authid, unsigned alen,
              const char *realm, unsigned urlen, struct propctx *pc)
{
    roost_sasl_t *s = context;
    char *a, *r;
    int ok;

    if (rlen == 0)
        return SASL_OK;
    a = sasl_ident(s->host, authid, alen);
    r = sasl_ident(s->host, requested, rlen);
    ok = a != NULL && r != NULL && strcmp(a, r) == 0;
    roost_free(a);
    roost_free(r);
    if (!ok) {
        sasl_seterror(conn, 0, "authorization identity refused");
        return SASL_NOAUTHZ;
    }
    return SASL_OK;
}

/* Answers the SCRAM plugin's question for the XEP-0474 input of this
 * connection; every other option goes on to sasl_getopt_cb. */
static int
sasl_conn_getopt_cb(void *context, const char *plugin, const char *option,
                    const char **result, unsigned *len)
{
    const roost_sasl_t *s = context;

    if (strcmp(option, ROOST_SASL_OPT_SSDP) != 0 || s->ssdp == NULL)
        return SASL_FAIL;
    *result = s->ssdp;
    if (len != NULL)
        *len = (unsigned)strlen(s->ssdp);
    return SASL_OK;
}

/* --- process lifetime --- */

int
roost_sasl_init(char **err)
{
    static const sasl_callback_t cbs[] = {
        {SASL_CB_GETOPT, SASL_FN(sasl_getopt_cb), NULL},
        {SASL_CB_LOG, SASL_FN(sasl_log_cb), NULL},
        {SASL_CB_VERIFYFILE, SASL_FN(sasl_verifyfile_cb), NULL},
        {SASL_CB_LIST_END, NULL, NULL}};
    int rc;

    if (err != NULL)
        *err = NULL;
    if (sasl_active)
        return 0;
    if (RAND_bytes(sasl_fake_key, sizeof(sasl_fake_key)) != 1) {
        if (err != NULL)
            *err = roost_xstrdup("no randomness for SASL");
        return -ROOST_EIO;
    }
    sasl_set_mutex(sasl_mutex_alloc, sasl_mutex_lock, sasl_mutex_unlock,
                   sasl_mutex_free);
    rc = sasl_server_init(cbs, "roost");
    if (rc == SASL_OK) {
        rc = sasl_auxprop_add_plugin("roost", sasl_auxprop_init);
        if (rc == SASL_OK)
            rc = sasl_server_add_plugin("roost-scram", scram_plug_init);
        if (rc != SASL_OK)
            sasl_server_done();
    }
    if (rc != SASL_OK) {
        char msg[256];

        snprintf(msg, sizeof(msg), "Cyrus SASL initialisation failed: %s",
                 sasl_errstring(rc, NULL, NULL));
        if (err != NULL)
            *err = roost_xstrdup(msg);
        return -ROOST_ECONFIG;
    }
    sasl_active = 1;
    return 0;
}

void
roost_sasl_shutdown(void)
{
    if (!sasl_active)
        return;
    sasl_server_done();
    sasl_active = 0;
}

/* --- connections --- */

static int
sasl_conn_open(roost_sasl_t *s)
{
    sasl_security_properties_t sec;
    sasl_ssf_t ext = 256;
    int rc;

    if (s->conn != NULL)
        sasl_dispose(&s->conn);
    s->used = 0;
    rc = sasl_server_new("xmpp", s->host, s->host, NULL, NULL, s->callbacks,
                         SASL_SUCCESS_DATA, &s->conn);
    if (rc != SASL_OK) {
        s->conn = NULL;
        return rc;
    }
    memset(&sec, 0, sizeof(sec));
    sec.maxbufsize = 65536;
    if (!s->tls)
        sec.security_flags |= SASL_SEC_NOPLAINTEXT;
    if (!s->anonymous)
        sec.security_flags |= SASL_SEC_NOANONYMOUS;
    rc = sasl_setprop(s->conn, SASL_SEC_PROPS, &sec);
    if (rc == SASL_OK && s->tls)
        rc = sasl_setprop(s->conn, SASL_SSF_EXTERNAL, &ext);
    if (rc == SASL_OK && s->ncb > 0) {
        /* Present (not critical) even for plain SCRAM, so that a client
         * answering "y" is refused: RFC 5802 §6 downgrade protection. */
        s->binding.name = s->cb[0].name;
        s->binding.critical = 0;
        s->binding.data = s->cb[0].data;
        s->binding.len = s->cb[0].len;
        rc = sasl_setprop(s->conn, SASL_CHANNEL_BINDING, &s->binding);
    }
    if (rc != SASL_OK)
        sasl_dispose(&s->conn);
    return rc;
}

static int
sasl_listed(const char *list, const char *mech)
{
    size_t n = strlen(mech);

    for (const char *p = list; (p = strstr(p, mech)) != NULL; p += n) {
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

static void
sasl_build_mechs(roost_sasl_t *s)
{
    const char *list = NULL;
    size_t k = 0;

    if (sasl_listmech(s->conn, NULL, "", " ", "", &list, NULL, NULL) !=
            SASL_OK ||
        list == NULL)
        list = "";
    for (size_t i = 0; i < SASL_NMECH; i++) {
        const char *m = sasl_mech_table[i];
        size_t n = strlen(m);
        int ok;

        if (n > 5 && strcmp(m + n - 5, "-PLUS") == 0) {
            char base[32];

            snprintf(base, sizeof(base), "%.*s", (int)(n - 5), m);
            ok =
                s->ncb > 0 && (sasl_listed(list, m) || sasl_listed(list, base));
        } else {
            ok = sasl_listed(list, m);
        }
        if (strcmp(m, "PLAIN") == 0)
            ok = ok && s->tls;
        if (strcmp(m, "ANONYMOUS") == 0)
            ok = ok && s->anonymous;
        if (ok)
            s->mechs[k++] = m;
    }
    s->mechs[k] = NULL;
}

static int
sasl_cmp_str(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: RFC 4790 i;octet */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends the n strings of v, sorted, joined by 0x1E. */
static size_t
sasl_ssdp_join(char *out, const char **v, size_t n)
{
    size_t o = 0;

    qsort(v, n, sizeof(*v), sasl_cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out[o++] = '\x1e';
        memcpy(out + o, v[i], strlen(v[i]));
        o += strlen(v[i]);
    }
    return o;
}

/* XEP-0474 §3.1 step 1-4: the advertised mechanisms, then, if XEP-0440
 * listed channel-binding types (core/conn.c lists exactly cb_types),
 * 0x1F and those types.  Both SASL profiles advertise s->mechs (see
 * stream_send_features), so one string serves SASL1 and SASL2. */
static void
sasl_build_ssdp(roost_sasl_t *s, const char *const *cb_types)
{
    size_t nm = 0, nc = 0, len = 1;
    const char **v;

    for (; s->mechs[nm] != NULL; nm++)
        len += strlen(s->mechs[nm]) + 1;
    for (; s->tls && cb_types != NULL && cb_types[nc] != NULL; nc++)
        len += strlen(cb_types[nc]) + 1;
    v = roost_xmalloc((nm + nc + 1) * sizeof(*v));
    s->ssdp = roost_xmalloc(len + 1);
    memcpy(v, s->mechs, nm * sizeof(*v));
    len = sasl_ssdp_join(s->ssdp, v, nm);
    if (nc > 0) {
        s->ssdp[len++] = '\x1f';
        memcpy(v, cb_types, nc * sizeof(*v));
        len += sasl_ssdp_join(s->ssdp + len, v, nc);
    }
    s->ssdp[len] = '\0';
    roost_free(v);
}

roost_sasl_t *
roost_sasl_new(const char *host, int tls, const char *const *cb_types,
               roost_sasl_cb_fn cbf, void *cbarg, int anonymous)
{
    roost_sasl_t *s;
    int rc;

    if (!sasl_active || host == NULL || *host == '\0')
        return NULL;
    s = roost_xcalloc(1, sizeof(*s));
    s->host = roost_xstrdup(host);
    s->tls = tls != 0;
    s->anonymous = anonymous != 0;
    /* The data are fetched now, on the caller's thread: steps run on a
     * worker and must not touch the connection's SSL object. */
    for (size_t i = 0; s->tls && cb_types != NULL && cbf != NULL &&
                       cb_types[i] != NULL && s->ncb < SASL_CB_MAX;
         i++) {
        sasl_cbdata_t *c = &s->cb[s->ncb];

        if (strlen(cb_types[i]) > SASL_CB_NAME_MAX)
            continue;
        c->len = sizeof(c->data);
        if (cbf(cbarg, cb_types[i], c->data, &c->len) != 0 || c->len == 0 ||
            c->len > sizeof(c->data))
            continue;
        strcpy(c->name, cb_types[i]);
        s->ncb++;
    }
    s->callbacks[0] =
        (sasl_callback_t){SASL_CB_PROXY_POLICY, SASL_FN(sasl_proxy_cb), s};
    s->callbacks[1] = (sasl_callback_t){SASL_CB_SERVER_USERDB_CHECKPASS,
                                        SASL_FN(sasl_checkpass_cb), s};
    s->callbacks[2] =
        (sasl_callback_t){SASL_CB_GETOPT, SASL_FN(sasl_conn_getopt_cb), s};
    s->callbacks[3] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    rc = sasl_conn_open(s);
    if (rc != SASL_OK) {
        ROOST_LOG(ROOST_LOG_WARN, SASL_TAG, "sasl_server_new: %s",
                  sasl_errstring(rc, NULL, NULL));
        roost_sasl_free(s);
        return NULL;
    }
    sasl_build_mechs(s);
    sasl_build_ssdp(s, cb_types);
    return s;
}

void
roost_sasl_free(roost_sasl_t *s)
{
    if (s == NULL)
        return;
    if (s->conn != NULL)
        sasl_dispose(&s->conn);
    roost_free(s->host);
    roost_free(s->ssdp);
    roost_free(s->user);
    roost_free(s->out);
    roost_free(s);
}

const char *const *
roost_sasl_mechs(roost_sasl_t *s)
{
    return s->mechs;
}

const char *
roost_sasl_user(roost_sasl_t *s)
{
    return s->state == SASL_ST_DONE ? s->user : NULL;
}

const char *
roost_sasl_mech_used(roost_sasl_t *s)
{
    return s->state == SASL_ST_DONE ? s->mech : NULL;
}

/* --- steps --- */

/* Inspects the gs2 header of a SCRAM client-first-message (RFC 5802 §7)
 * and arms Cyrus with the matching channel binding.  NULL to go on, or
 * the failure condition. */
static const char *
sasl_gs2_check(roost_sasl_t *s, const unsigned char *msg, size_t len)
{
    char name[SASL_CB_NAME_MAX + 1];
    size_t i, n;
    int rc;

    s->gs2_checked = 1;
    if (len >= 2 && (msg[0] == 'n' || msg[0] == 'y') && msg[1] == ',') {
        if (s->plus)
            return "malformed-request"; /* -PLUS requires "p=" */
        /* "y": the client could bind but believes we cannot, yet we
         * offered -PLUS: someone stripped it (RFC 5802 §6). */
        if (msg[0] == 'y' && s->ncb > 0)
            return "not-authorized";
        return NULL;
    }
    if (len < 3 || msg[0] != 'p' || msg[1] != '=')
        return "malformed-request";
    for (i = 2, n = 0; i < len && msg[i] != ','; i++, n++) {
        unsigned char c = msg[i];

        if (n >= SASL_CB_NAME_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return "malformed-request";
        name[n] = (char)c;
    }
    name[n] = '\0';
    if (i == len || n == 0 || !s->plus)
        return "malformed-request";
    for (i = 0; i < s->ncb; i++) {
        if (strcmp(s->cb[i].name, name) == 0)
            break;
    }
    if (i == s->ncb)
        return "not-authorized"; /* a binding type we do not have */
    s->binding.name = s->cb[i].name;
    s->binding.critical = 1;
    s->binding.data = s->cb[i].data;
    s->binding.len = s->cb[i].len;
    rc = sasl_setprop(s->conn, SASL_CHANNEL_BINDING, &s->binding);
    return rc == SASL_OK ? NULL : "temporary-auth-failure";
}

static const char *
sasl_condition(const roost_sasl_t *s, int rc)
{
    switch (rc) {
    case SASL_NOMECH: return "invalid-mechanism";
    case SASL_BADPROT:
        /* A client-final-message that does not parse (or names another
         * nonce) after our challenge: the credentials did not verify. */
        if (s->scram && s->challenged)
            return "not-authorized";
        return "malformed-request";
    case SASL_BADPARAM: return "malformed-request";
    case SASL_NOAUTHZ: return "invalid-authzid";
    case SASL_TOOWEAK: return "mechanism-too-weak";
    case SASL_ENCRYPT: return "encryption-required";
    case SASL_TRYAGAIN:
    case SASL_UNAVAIL:
    case SASL_NOMEM: return "temporary-auth-failure";
    default: /* SASL_BADAUTH, SASL_NOUSER, SASL_BADBINDING, SASL_FAIL... */
        return "not-authorized";
    }
}

static int
sasl_finish(roost_sasl_t *s)
{
    const char *authid = NULL;

    roost_free(s->user);
    s->user = NULL;
    if (strcmp(s->mech, "ANONYMOUS") == 0) {
        unsigned char r[8];
        char hex[17];

        if (RAND_bytes(r, sizeof(r)) != 1)
            return -1;
        for (size_t i = 0; i < sizeof(r); i++)
            snprintf(hex + 2 * i, 3, "%02x", r[i]);
        s->user = roost_xstrdup(hex);
        return 0;
    }
    if (sasl_getprop(s->conn, SASL_AUTHUSER, (const void **)&authid) !=
            SASL_OK ||
        authid == NULL)
        return -1;
    s->user = sasl_ident(s->host, authid, strlen(authid));
    return s->user != NULL ? 0 : -1;
}

static roost_sasl_status_t
sasl_fail(roost_sasl_t *s, const char *cond, const char **out,
          const char **condp)
{
    s->state = SASL_ST_IDLE;
    s->mech = NULL;
    *out = "";
    *condp = cond;
    ROOST_LOG(ROOST_LOG_DEBUG, SASL_TAG, "%s: failure %s", s->host, cond);
    return ROOST_SASL_FAILURE;
}

roost_sasl_status_t
roost_sasl_step(roost_sasl_t *s, const char *mech, const char *in,
                const char **out, const char **cond)
{
    unsigned char *buf = NULL;
    const char *sout = NULL, *data, *c;
    unsigned soutlen = 0;
    size_t inlen = in != NULL ? strlen(in) : 0;
    long len = 0;
    int rc, have_data;

    *out = "";
    *cond = NULL;
    if (s->state == SASL_ST_DONE) {
        /* Nothing may follow success; the authentication stands. */
        *cond = "malformed-request";
        return ROOST_SASL_FAILURE;
    }
    if (mech != NULL) {
        size_t i;

        for (i = 0; s->mechs[i] != NULL; i++) {
            if (strcmp(s->mechs[i], mech) == 0)
                break;
        }
        if (s->mechs[i] == NULL) {
            if (strcmp(mech, "PLAIN") == 0 && !s->tls)
                return sasl_fail(s, "encryption-required", out, cond);
            return sasl_fail(s, "invalid-mechanism", out, cond);
        }
        /* A retry after a failure (or an <auth/> restarting an exchange)
         * gets a fresh Cyrus context: no state leaks across attempts. */
        if ((s->used || s->state == SASL_ST_RUNNING) &&
            (rc = sasl_conn_open(s)) != SASL_OK)
            return sasl_fail(s, "temporary-auth-failure", out, cond);
        s->mech = s->mechs[i];
        s->scram = strncmp(s->mech, "SCRAM-", 6) == 0;
        s->plus = strstr(s->mech, "-PLUS") != NULL;
        s->gs2_checked = 0;
        s->challenged = 0;
        s->backend_down = 0;
        s->state = SASL_ST_RUNNING;
    } else if (s->state != SASL_ST_RUNNING) {
        return sasl_fail(s, "malformed-request", out, cond);
    }
    if (inlen > SASL_IN_MAX)
        return sasl_fail(s, "malformed-request", out, cond);
    /* "" on <auth/> is no initial response; "=" is an empty one. */
    have_data = inlen > 0 || mech == NULL;
    if (inlen > 0 && strcmp(in, "=") != 0) {
        buf = roost_xmalloc(inlen / 4 * 3 + 1);
        len = sasl_b64_decode(in, inlen, buf);
        if (len < 0) {
            roost_free(buf);
            return sasl_fail(s, "incorrect-encoding", out, cond);
        }
    }
    if (s->scram && !s->gs2_checked && len > 0 &&
        (c = sasl_gs2_check(s, buf, (size_t)len)) != NULL) {
        roost_free(buf);
        return sasl_fail(s, c, out, cond);
    }
    data = buf != NULL ? (const char *)buf : "";
    if (mech != NULL) {
        s->used = 1;
        rc = sasl_server_start(s->conn, s->mech, have_data ? data : NULL,
                               (unsigned)len, &sout, &soutlen);
    } else {
        rc = sasl_server_step(s->conn, data, (unsigned)len, &sout, &soutlen);
    }
    roost_free(buf);
    if (rc == SASL_CONTINUE) {
        if (soutlen == 0) {
            *out = "=";
            return ROOST_SASL_CONTINUE;
        }
        s->challenged = 1;
        *out = sasl_b64_encode(s, (const unsigned char *)sout, soutlen);
        return ROOST_SASL_CONTINUE;
    }
    if (rc != SASL_OK) {
        ROOST_LOG(ROOST_LOG_DEBUG, SASL_TAG, "%s %s: %s", s->host, s->mech,
                  sasl_errdetail(s->conn));
        return sasl_fail(s,
                         s->backend_down ? "temporary-auth-failure"
                                         : sasl_condition(s, rc),
                         out, cond);
    }
    if (sasl_finish(s) != 0)
        return sasl_fail(s, "not-authorized", out, cond);
    s->state = SASL_ST_DONE;
    if (sout != NULL && soutlen > 0)
        *out = sasl_b64_encode(s, (const unsigned char *)sout, soutlen);
    return ROOST_SASL_SUCCESS;
}
