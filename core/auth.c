/* core/auth.c: accounts and their SCRAM secrets.
 *
 * An account is one entry of the MAP store "accounts" on its host: user ""
 * and key = the prepared localpart.  The value is two RFC 5803
 * authPassword lines, SCRAM-SHA-1 then SCRAM-SHA-256, each with its own
 * 16-byte random salt:
 *
 *     SCRAM-SHA-256$4096:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>\n
 *
 * derived as in RFC 5802 §3 from the SASLprep'd password (RFC 4013).  The
 * password itself is never stored or logged.  The Cyrus auxprop glue reads
 * these lines through roost_auth_get_scram(); PLAIN is checked here against
 * the SCRAM-SHA-256 line.
 *
 * Not here: SASL exchanges (core/sasl.c), JID preparation (callers pass a
 * prepared localpart).  Everything blocks on PBKDF2 and storage: callers on
 * the event loop go through core/worker.h.  Create, delete and password
 * changes are serialised within the process; two processes (roostd and
 * roostctl) creating the same account at the same instant can still race. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stringprep.h>

#include <roost/jid.h>

#include "auth.h"
#include "log.h"
#include "storage.h"

#define AUTH_STORE    "accounts"
#define AUTH_SALT_LEN 16
#define AUTH_SALT_MAX 64   /* accepted when reading a stored secret */
#define AUTH_PASS_MAX 1024 /* bytes of password accepted */
#define AUTH_PREP_MAX 4096 /* SASLprep output buffer (NFKC may grow) */
#define AUTH_ITER_MIN 4096 /* RFC 7677 §4 */
#define AUTH_ITER_MAX 10000000

static const struct {
    const char *name;
    const EVP_MD *(*md)(void);
} auth_mechs[] = {{"SCRAM-SHA-1", EVP_sha1}, {"SCRAM-SHA-256", EVP_sha256}};

#define AUTH_NMECHS (sizeof(auth_mechs) / sizeof(auth_mechs[0]))

static pthread_mutex_t auth_lock = PTHREAD_MUTEX_INITIALIZER;

static const EVP_MD *
auth_md(const char *mech)
{
    for (size_t i = 0; mech != NULL && i < AUTH_NMECHS; i++)
        if (strcmp(auth_mechs[i].name, mech) == 0)
            return auth_mechs[i].md();
    return NULL;
}

/* SASLprep (RFC 4013, stored strings: no unassigned code points) of in
 * into out[AUTH_PREP_MAX].  0 or -ROOST_EINVAL. */
static int
auth_saslprep(const char *in, char *out)
{
    size_t n = in ? strnlen(in, AUTH_PASS_MAX + 1) : 0;
    int rc;

    if (n == 0 || n > AUTH_PASS_MAX)
        return -ROOST_EINVAL;
    memcpy(out, in, n + 1);
    rc = stringprep(out, AUTH_PREP_MAX, STRINGPREP_NO_UNASSIGNED,
                    stringprep_saslprep);
    return rc == STRINGPREP_OK && out[0] != '\0' ? 0 : -ROOST_EINVAL;
}

int
roost_auth_scram_keys(const char *mech, const char *password,
                      const unsigned char *salt, size_t saltlen, int iter,
                      unsigned char *stored, unsigned char *server,
                      size_t *keylen)
{
    const EVP_MD *md = auth_md(mech);
    unsigned char salted[EVP_MAX_MD_SIZE], client[EVP_MAX_MD_SIZE];
    char prep[AUTH_PREP_MAX];
    unsigned int len;
    int mdlen, r = -ROOST_EINVAL;

    if (md == NULL || salt == NULL || saltlen == 0 || saltlen > INT32_MAX ||
        iter < 1 || iter > AUTH_ITER_MAX)
        return -ROOST_EINVAL;
    if (auth_saslprep(password, prep) < 0)
        goto out;
    mdlen = EVP_MD_get_size(md);
    if (PKCS5_PBKDF2_HMAC(prep, (int)strlen(prep), salt, (int)saltlen, iter, md,
                          mdlen, salted) != 1 ||
        HMAC(md, salted, mdlen, (const unsigned char *)"Client Key", 10, client,
             &len) == NULL ||
        EVP_Digest(client, (size_t)mdlen, stored, NULL, md, NULL) != 1 ||
        HMAC(md, salted, mdlen, (const unsigned char *)"Server Key", 10, server,
             &len) == NULL) {
        r = -ROOST_EIO;
        goto out;
    }
    *keylen = (size_t)mdlen;
    r = 0;
out:
    OPENSSL_cleanse(prep, sizeof(prep));
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client, sizeof(client));
    return r;
}

/* Strict base64 (standard alphabet, padded) of in[0..n) into out.  Returns
 * the decoded length, or -1. */
static int
auth_b64_decode(const char *in, size_t n, unsigned char *out, size_t outmax)
{
    size_t pad = 0;
    int r;

    if (n == 0 || n % 4 != 0 || n / 4 * 3 > outmax)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];

        if (c == '=') {
            if (i < n - 2 || (i == n - 2 && in[n - 1] != '='))
                return -1;
            pad++;
        } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            return -1;
        }
    }
    r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    return r < 0 ? -1 : r - (int)pad;
}

typedef struct {
    int iter;
    unsigned char salt[AUTH_SALT_MAX];
    size_t saltlen, keylen;
    unsigned char stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
    const char *line; /* where the line starts in the value */
    size_t linelen;
} auth_secret_t;

/* Splits the next field off [*p, end) at sep (0: the rest); its start
 * and length go to *f and *n.  0, or -1 when sep is missing. */
static int
auth_field(const char **p, const char *end, char sep, const char **f, size_t *n)
{
    const char *q = sep ? memchr(*p, sep, (size_t)(end - *p)) : end;

    if (q == NULL)
        return -1;
    *f = *p;
    *n = (size_t)(q - *p);
    *p = q < end ? q + 1 : q;
    return 0;
}

/* Finds and parses mech's line in an account value.  0, -ROOST_ENOTFOUND
 * (no such line) or -ROOST_ESTORAGE (malformed). */
static int
auth_parse(const char *val, size_t len, const char *mech, auth_secret_t *sec)
{
    const EVP_MD *md = auth_md(mech);
    size_t ml = strlen(mech), n[4];
    const char *p = val, *end = val + len, *eol = end, *f[4];
    char num[12];
    int saltlen;

    for (; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > ml && memcmp(p, mech, ml) == 0 && p[ml] == '$')
            break;
    }
    if (p >= end)
        return -ROOST_ENOTFOUND;
    sec->line = p;
    sec->linelen = (size_t)(eol - p);
    sec->keylen = (size_t)EVP_MD_get_size(md);
    /* iter ":" salt "$" StoredKey ":" ServerKey */
    p += ml + 1;
    if (auth_field(&p, eol, ':', &f[0], &n[0]) < 0 ||
        auth_field(&p, eol, '$', &f[1], &n[1]) < 0 ||
        auth_field(&p, eol, ':', &f[2], &n[2]) < 0 ||
        auth_field(&p, eol, 0, &f[3], &n[3]) < 0)
        goto bad;
    if (n[0] < 1 || n[0] > 8 || strspn(f[0], "0123456789") < n[0])
        goto bad;
    memcpy(num, f[0], n[0]);
    num[n[0]] = '\0';
    sec->iter = atoi(num);
    saltlen = auth_b64_decode(f[1], n[1], sec->salt, sizeof(sec->salt));
    if (sec->iter < 1 || sec->iter > AUTH_ITER_MAX || saltlen < 1 ||
        auth_b64_decode(f[2], n[2], sec->stored, sizeof(sec->stored)) !=
            (int)sec->keylen ||
        auth_b64_decode(f[3], n[3], sec->server, sizeof(sec->server)) !=
            (int)sec->keylen)
        goto bad;
    sec->saltlen = (size_t)saltlen;
    return 0;
bad:
    ROOST_LOG(ROOST_LOG_ERROR, "auth", "malformed %s secret in storage", mech);
    return -ROOST_ESTORAGE;
}

/* The account value for password: one authPassword line per mechanism,
 * new string in *out.  0, -ROOST_EINVAL or -ROOST_EIO. */
static int
auth_make(const char *password, int iter, char **out)
{
    unsigned char salt[AUTH_SALT_LEN], stored[EVP_MAX_MD_SIZE],
        server[EVP_MAX_MD_SIZE];
    char b64[3][((EVP_MAX_MD_SIZE + 2) / 3) * 4 + 1];
    char buf[1024];
    size_t keylen, off = 0;
    int r = 0;

    if (iter == 0)
        iter = ROOST_AUTH_ITERATIONS;
    if (iter < AUTH_ITER_MIN || iter > AUTH_ITER_MAX)
        return -ROOST_EINVAL;
    for (size_t i = 0; i < AUTH_NMECHS && r == 0; i++) {
        if (RAND_bytes(salt, sizeof(salt)) != 1) {
            r = -ROOST_EIO;
            break;
        }
        r = roost_auth_scram_keys(auth_mechs[i].name, password, salt,
                                  sizeof(salt), iter, stored, server, &keylen);
        if (r < 0)
            break;
        EVP_EncodeBlock((unsigned char *)b64[0], salt, sizeof(salt));
        EVP_EncodeBlock((unsigned char *)b64[1], stored, (int)keylen);
        EVP_EncodeBlock((unsigned char *)b64[2], server, (int)keylen);
        off +=
            (size_t)snprintf(buf + off, sizeof(buf) - off, "%s$%d:%s$%s:%s\n",
                             auth_mechs[i].name, iter, b64[0], b64[1], b64[2]);
    }
    if (r == 0)
        *out = roost_xstrdup(buf);
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(server, sizeof(server));
    return r;
}

/* 0 if host and user (a prepared localpart) are acceptable, else
 * -ROOST_EINVAL. */
static int
auth_check(const char *host, const char *user)
{
    if (host == NULL || *host == '\0' || user == NULL || *user == '\0' ||
        strnlen(user, ROOST_JID_PART_MAX + 1) > ROOST_JID_PART_MAX)
        return -ROOST_EINVAL;
    return 0;
}

/* The accounts store of host (roost_store_close), or NULL with *r set. */
static roost_store_t *
auth_store(const char *host, int *r)
{
    roost_store_t *s = roost_storage_store(host, AUTH_STORE, ROOST_STORE_MAP);

    *r = s != NULL                       ? 0
         : host == NULL || *host == '\0' ? -ROOST_EINVAL
                                         : -ROOST_ESTORAGE;
    return s;
}

/* Writes (val) or deletes (val NULL) the account value under the lock.
 * must_exist: 1 to change or delete an account, 0 to create one. */
static int
auth_write(const char *host, const char *user, const char *val, int must_exist)
{
    roost_store_t *s;
    char *old = NULL;
    size_t len;
    int r;

    if ((r = auth_check(host, user)) < 0 || (s = auth_store(host, &r)) == NULL)
        return r;
    pthread_mutex_lock(&auth_lock);
    r = roost_store_get(s, "", user, &old, &len);
    roost_free(old);
    if (must_exist ? r == 0 : r == -ROOST_ENOTFOUND)
        r = val != NULL ? roost_store_set(s, "", user, val, strlen(val))
                        : roost_store_delete(s, "", user);
    else if (r == 0)
        r = -ROOST_EEXIST;
    pthread_mutex_unlock(&auth_lock);
    roost_store_close(s);
    return r;
}

/* Creates user@host.  password is UTF-8 (SASLprep'd here); iterations 0
 * means ROOST_AUTH_ITERATIONS, else 4096..10000000.  0, -ROOST_EEXIST,
 * -ROOST_EINVAL or -ROOST_ESTORAGE. */
int
roost_auth_create(const char *host, const char *user, const char *password,
                  int iterations)
{
    char *val;
    int r;

    if ((r = auth_check(host, user)) < 0 ||
        (r = auth_make(password, iterations, &val)) < 0)
        return r;
    r = auth_write(host, user, val, 0);
    OPENSSL_cleanse(val, strlen(val));
    roost_free(val);
    return r;
}

/* Replaces the credentials of user@host.  0, -ROOST_ENOTFOUND,
 * -ROOST_EINVAL or -ROOST_ESTORAGE. */
int
roost_auth_set_password(const char *host, const char *user,
                        const char *password, int iterations)
{
    char *val;
    int r;

    if ((r = auth_check(host, user)) < 0 ||
        (r = auth_make(password, iterations, &val)) < 0)
        return r;
    r = auth_write(host, user, val, 1);
    OPENSSL_cleanse(val, strlen(val));
    roost_free(val);
    return r;
}

/* Deletes the account (not the user's other data: see roostctl deluser).
 * 0, -ROOST_ENOTFOUND, -ROOST_EINVAL or -ROOST_ESTORAGE. */
int
roost_auth_delete(const char *host, const char *user)
{
    return auth_write(host, user, NULL, 1);
}

/* Reads the account value of user@host into *val (roost_free). */
static int
auth_read(const char *host, const char *user, char **val, size_t *len)
{
    roost_store_t *s;
    int r;

    if ((r = auth_check(host, user)) < 0 || (s = auth_store(host, &r)) == NULL)
        return r;
    r = roost_store_get(s, "", user, val, len);
    roost_store_close(s);
    return r;
}

int
roost_auth_generation(const char *host, const char *user,
                      char out[ROOST_AUTH_GEN_LEN])
{
    unsigned char md[32];
    unsigned int mdlen = sizeof(md);
    char *val = NULL;
    size_t len;
    int r = auth_read(host, user, &val, &len);

    if (r < 0)
        return r;
    /* The record holds fresh random salts, so every password set (and
     * every re-creation of the account) gives a new digest. */
    r = EVP_Digest(val, len, md, &mdlen, EVP_sha256(), NULL) == 1 ? 0
                                                                  : -ROOST_EIO;
    OPENSSL_cleanse(val, len);
    roost_free(val);
    for (int i = 0; r == 0 && i < (ROOST_AUTH_GEN_LEN - 1) / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return r;
}

int
roost_auth_exists(const char *host, const char *user)
{
    char *val = NULL;
    size_t len;
    int r = auth_read(host, user, &val, &len);

    roost_free(val);
    return r == 0 ? 1 : r == -ROOST_ENOTFOUND ? 0 : r;
}

int
roost_auth_get_scram(const char *host, const char *user, const char *mech,
                     char **authpassword)
{
    auth_secret_t sec;
    char *val = NULL;
    size_t len;
    int r;

    if (auth_md(mech) == NULL)
        return -ROOST_EINVAL;
    if ((r = auth_read(host, user, &val, &len)) < 0)
        return r;
    if ((r = auth_parse(val, len, mech, &sec)) == 0)
        *authpassword = roost_xstrndup(sec.line, sec.linelen);
    else if (r == -ROOST_ENOTFOUND) /* an account without this mech */
        r = -ROOST_ESTORAGE;
    roost_free(val);
    return r;
}

/* Also -ROOST_EINVAL for a bad host or user, -ROOST_ESTORAGE when the
 * stored secret is unreadable.  Takes as long for a missing account as for
 * a wrong password, so timing does not reveal which accounts exist. */
int
roost_auth_verify_plain(const char *host, const char *user,
                        const char *password)
{
    static const unsigned char dummy_salt[AUTH_SALT_LEN];
    unsigned char stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
    auth_secret_t sec;
    char *val = NULL;
    size_t len, keylen;
    int r = auth_read(host, user, &val, &len);

    if (r == -ROOST_ENOTFOUND) {
        roost_auth_scram_keys("SCRAM-SHA-256", "dummy", dummy_salt,
                              sizeof(dummy_salt), ROOST_AUTH_ITERATIONS, stored,
                              server, &keylen);
        return r;
    }
    if (r < 0)
        return r;
    r = auth_parse(val, len, "SCRAM-SHA-256", &sec);
    roost_free(val);
    if (r < 0)
        return r == -ROOST_ENOTFOUND ? -ROOST_ESTORAGE : r;
    r = roost_auth_scram_keys("SCRAM-SHA-256", password, sec.salt, sec.saltlen,
                              sec.iter, stored, server, &keylen);
    if (r == 0 && (keylen != sec.keylen ||
                   CRYPTO_memcmp(stored, sec.stored, keylen) != 0))
        r = -ROOST_EAUTH;
    else if (r == -ROOST_EINVAL) /* a password SASLprep refuses */
        r = -ROOST_EAUTH;
    OPENSSL_cleanse(&sec, sizeof(sec));
    OPENSSL_cleanse(stored, sizeof(stored));
    return r;
}

typedef struct {
    int (*fn)(void *arg, const char *user);
    void *arg;
} auth_users_t;

static int
auth_users_key(void *arg, const char *key, const char *val, size_t len)
{
    auth_users_t *u = arg;

    return u->fn(u->arg, key);
}

/* fn returns non-zero to stop.  0 or -ROOST_E*. */
int
roost_auth_users(const char *host, int (*fn)(void *arg, const char *user),
                 void *arg)
{
    auth_users_t u = {fn, arg};
    roost_store_t *s;
    int r;

    if (fn == NULL)
        return -ROOST_EINVAL;
    if ((s = auth_store(host, &r)) == NULL)
        return r;
    r = roost_store_keys(s, "", auth_users_key, &u);
    roost_store_close(s);
    return r;
}
