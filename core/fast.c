/* core/fast.c: FAST tokens (XEP-0484) and the HT-SHA-256 SASL mechanisms
 * (draft-schmaus-kitten-sasl-ht) they are used with.
 *
 * A client that authenticated over SASL2 and asked with <request-token
 * mechanism=''/> gets a random token (256 bits) valid for
 * fast.token_lifetime; it then authenticates in one round trip: its
 * initial response is "user NUL HMAC-SHA-256(token, 'Initiator' || cb)",
 * ours in <additional-data/> HMAC-SHA-256(token, 'Responder' || cb),
 * where cb is the TLS channel-binding data the mechanism names:
 * tls-exporter (HT-SHA-256-EXPR, TLS 1.3, RFC 9266), tls-unique
 * (HT-SHA-256-UNIQ, TLS 1.2 with the extended master secret),
 * tls-server-end-point (HT-SHA-256-ENDP, RFC 5929) or nothing
 * (HT-SHA-256-NONE).  Only the mechanisms whose data this connection has
 * are offered (roost_fast_mechs).  Tokens are kept per account and user
 * agent (the SASL2 <user-agent id=''/>) in the "fast" MAP store, in the
 * two slots of XEP-0484 §6.1 ('new' and 'current'), each with its expiry
 * and the mechanism it was issued for (XEP-0484 §3.4: a token works with
 * that mechanism only, so a channel-bound token cannot be replayed
 * without its binding); using the 'new' one retires the 'current' one.
 * The storage calls block: they run on the storage worker (core/conn.c).
 *
 * Not here: TLS 0-RTT (not offered, so the replay counter is not
 * needed); the TLS side of channel binding (core/tls.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include <roost/jid.h>

#include "auth.h"
#include "fast.h"
#include "storage.h"
#include "tls.h"

#define FAST_STORE "fast"

/* The mechanisms, best first (the order of the <fast/> list), and the
 * RFC 5056 channel-binding type each binds to. */
static const struct {
    const char *mech, *cb;
} fast_mechs[ROOST_FAST_NMECHS] = {
    {"HT-SHA-256-EXPR", "tls-exporter"},
    {"HT-SHA-256-UNIQ", "tls-unique"},
    {"HT-SHA-256-ENDP", "tls-server-end-point"},
    {"HT-SHA-256-NONE", NULL},
};

static int
fast_mech_index(const char *mech)
{
    for (int i = 0; mech != NULL && i < ROOST_FAST_NMECHS; i++)
        if (strcmp(mech, fast_mechs[i].mech) == 0)
            return i;
    return -1;
}

int
roost_fast_is_mech(const char *mech)
{
    return fast_mech_index(mech) >= 0;
}

int
roost_fast_cb(SSL *ssl, const char *mech, unsigned char *out, size_t *len)
{
    int i = fast_mech_index(mech);

    if (i < 0)
        return -ROOST_ENOTFOUND;
    if (fast_mechs[i].cb == NULL) {
        if (out != NULL)
            *len = 0;
        return 0;
    }
    /* core/tls.c accepts tls-unique on TLS 1.3 for SCRAM clients that
     * compute it there (COMPAT); RFC 9266 leaves it undefined, and no
     * FAST client uses it, so UNIQ is TLS 1.2 only. */
    if (ssl == NULL || (strcmp(fast_mechs[i].cb, "tls-unique") == 0 &&
                        SSL_version(ssl) != TLS1_2_VERSION))
        return -ROOST_ENOTFOUND;
    return roost_tls_channel_binding(ssl, fast_mechs[i].cb, out, len);
}

/* Which mechanisms this TLS can bind: roost_fast_cb without the data (no
 * exporter derivation or certificate hash per stream features). */
int
roost_fast_mechs(SSL *ssl, const char *out[ROOST_FAST_NMECHS + 1])
{
    int n = 0;

    for (int i = 0; i < ROOST_FAST_NMECHS; i++) {
        if (roost_fast_cb(ssl, fast_mechs[i].mech, NULL, NULL) == 0)
            out[n++] = fast_mechs[i].mech;
    }
    out[n] = NULL;
    return n;
}

static int64_t
fast_now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* One agent's record: "mech\ncur\ncur_exp\nnew\nnew_exp\ncur_mech\ngen"
 * ("-" for an empty slot), mech being the 'new' token's mechanism and
 * gen the account's credential generation (roost_auth_generation) when
 * the tokens were issued: a password change or a re-created account
 * makes them untrusted (XEP-0484 §5.2, credentials-expired).  Records
 * written before the channel-binding mechanisms have no cur_mech: both
 * tokens were HT-SHA-256-NONE, so it defaults to mech; records without
 * gen take the account's current one at their next use. */
typedef struct {
    char mech[32], cur_mech[32];
    char cur[64], neu[64];
    char gen[ROOST_AUTH_GEN_LEN];
    int64_t cur_exp, new_exp;
} fast_rec_t;

static void
fast_parse(const char *v, fast_rec_t *r)
{
    char cur[64] = "", neu[64] = "", gen[ROOST_AUTH_GEN_LEN] = "";
    long long ce = 0, ne = 0;
    int n;

    memset(r, 0, sizeof(*r));
    n = sscanf(v,
               "%31[^\n]\n%63[^\n]\n%lld\n%63[^\n]\n%lld\n%31[^\n]\n%32[^\n]",
               r->mech, cur, &ce, neu, &ne, r->cur_mech, gen);
    if (n < 1)
        return;
    if (n >= 7 && strcmp(gen, "-") != 0)
        snprintf(r->gen, sizeof(r->gen), "%s", gen);
    if (n < 6)
        snprintf(r->cur_mech, sizeof(r->cur_mech), "%s", r->mech);
    if (strcmp(cur, "-") != 0)
        snprintf(r->cur, sizeof(r->cur), "%s", cur);
    if (strcmp(neu, "-") != 0)
        snprintf(r->neu, sizeof(r->neu), "%s", neu);
    r->cur_exp = ce;
    r->new_exp = ne;
}

static int
fast_save(roost_store_t *s, const char *user, const char *agent,
          const fast_rec_t *r)
{
    char v[360];
    int n;

    if (r->cur[0] == '\0' && r->neu[0] == '\0')
        return roost_store_delete(s, user, agent);
    n = snprintf(v, sizeof(v), "%s\n%s\n%lld\n%s\n%lld\n%s\n%s",
                 r->mech[0] ? r->mech : "-", r->cur[0] ? r->cur : "-",
                 (long long)r->cur_exp, r->neu[0] ? r->neu : "-",
                 (long long)r->new_exp, r->cur_mech[0] ? r->cur_mech : "-",
                 r->gen[0] ? r->gen : "-");
    return roost_store_set(s, user, agent, v, (size_t)n);
}

void
roost_fast_new_token(char token[ROOST_FAST_TOKEN_LEN], int64_t lifetime_ms,
                     int64_t *expiry_ms)
{
    unsigned char r[32];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        abort(); /* no randomness: nothing safe to hand out */
    EVP_EncodeBlock((unsigned char *)token, r, (int)sizeof(r));
    *expiry_ms = fast_now_ms() + lifetime_ms;
}

int
roost_fast_store_new(const char *host, const char *user, const char *agent,
                     const char *mech, const char *token, int64_t expiry_ms)
{
    roost_store_t *s;
    fast_rec_t r;
    char *v = NULL, gen[ROOST_AUTH_GEN_LEN];
    size_t len;
    int rc;

    if ((rc = roost_auth_generation(host, user, gen)) < 0)
        return rc;
    if ((s = roost_storage_store(host, FAST_STORE, ROOST_STORE_MAP)) == NULL)
        return -ROOST_ESTORAGE;
    rc = roost_store_get(s, user, agent, &v, &len);
    if (rc == 0)
        fast_parse(v, &r);
    else
        memset(&r, 0, sizeof(r));
    roost_free(v);
    if (rc < 0 && rc != -ROOST_ENOTFOUND) {
        roost_store_close(s);
        return rc;
    }
    /* A 'current' token from before a password change is not trusted. */
    if (r.gen[0] != '\0' && strcmp(r.gen, gen) != 0)
        r.cur[0] = '\0';
    snprintf(r.gen, sizeof(r.gen), "%s", gen);
    /* XEP-0484 §3.4: an unused earlier 'new' token is replaced. */
    snprintf(r.mech, sizeof(r.mech), "%s", mech);
    snprintf(r.neu, sizeof(r.neu), "%s", token);
    r.new_exp = expiry_ms;
    rc = fast_save(s, user, agent, &r);
    roost_store_close(s);
    return rc;
}

/* HMAC-SHA-256(token, label || cb), as draft-schmaus-kitten-sasl-ht
 * defines the initiator and responder hashes. */
static void
fast_hmac(const char *token, const char *label, const unsigned char *cb,
          size_t cblen, unsigned char out[32])
{
    unsigned char msg[16 + ROOST_FAST_CB_MAX];
    size_t n = strlen(label);
    unsigned int len = 32;

    memcpy(msg, label, n);
    if (cblen > 0)
        memcpy(msg + n, cb, cblen);
    HMAC(EVP_sha256(), token, (int)strlen(token), msg, n + cblen, out, &len);
    OPENSSL_cleanse(msg, sizeof(msg));
}

int
roost_fast_verify(const char *host, const char *agent, const char *mech,
                  const char *b64, const unsigned char *cb, size_t cblen,
                  int invalidate, int64_t lifetime_ms, int *rotate_out,
                  char **user_out, char **additional_out)
{
    unsigned char raw[1100], mac[32], resp[32];
    char *user, *v = NULL, gen[ROOST_AUTH_GEN_LEN];
    const unsigned char *given;
    roost_store_t *s;
    fast_rec_t r;
    size_t len, b64len = b64 != NULL ? strlen(b64) : 0, ulen;
    int n, rc, which = 0;
    int64_t now = fast_now_ms(), exp;

    *user_out = *additional_out = NULL;
    *rotate_out = 0;
    if (agent == NULL || mech == NULL || cblen > ROOST_FAST_CB_MAX ||
        b64len == 0 || b64len > 4 * ((sizeof(raw) - 4) / 3))
        return -ROOST_EAUTH;
    n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64len);
    if (n < 0)
        return -ROOST_EAUTH;
    if (b64len >= 1 && b64[b64len - 1] == '=')
        n--;
    if (b64len >= 2 && b64[b64len - 2] == '=')
        n--;
    /* "authcid NUL mac" */
    for (ulen = 0; ulen < (size_t)n && raw[ulen] != '\0'; ulen++)
        ;
    if (ulen == 0 || ulen >= (size_t)n || (size_t)n - ulen - 1 != 32)
        return -ROOST_EAUTH;
    given = raw + ulen + 1;
    raw[ulen] = '\0';
    user = roost_jid_prep_node((const char *)raw);
    if (user == NULL)
        return -ROOST_EAUTH;
    s = roost_storage_store(host, FAST_STORE, ROOST_STORE_MAP);
    rc =
        s != NULL ? roost_store_get(s, user, agent, &v, &len) : -ROOST_ESTORAGE;
    if (rc != 0) {
        roost_free(user);
        roost_store_close(s);
        return rc == -ROOST_ENOTFOUND ? -ROOST_EAUTH : rc;
    }
    fast_parse(v, &r);
    roost_free(v);
    /* §6.1: the 'new' slot first, then 'current'; constant time.  §3.4:
     * each token only with the mechanism it was issued for. */
    if (r.neu[0] != '\0' && strcmp(r.mech, mech) == 0) {
        fast_hmac(r.neu, "Initiator", cb, cblen, mac);
        if (CRYPTO_memcmp(mac, given, 32) == 0)
            which = 2;
    }
    if (which == 0 && r.cur[0] != '\0' && strcmp(r.cur_mech, mech) == 0) {
        fast_hmac(r.cur, "Initiator", cb, cblen, mac);
        if (CRYPTO_memcmp(mac, given, 32) == 0)
            which = 1;
    }
    if (which == 0) {
        roost_free(user);
        roost_store_close(s);
        return -ROOST_EAUTH;
    }
    /* §5.2: a token we no longer trust (expired, or issued before the
     * password was changed or the account deleted) fails with
     * credentials-expired, and is forgotten. */
    exp = which == 2 ? r.new_exp : r.cur_exp;
    rc = roost_auth_generation(host, user, gen);
    if (rc < 0 && rc != -ROOST_ENOTFOUND) {
        roost_free(user);
        roost_store_close(s);
        return rc;
    }
    if (exp <= now || rc == -ROOST_ENOTFOUND ||
        (r.gen[0] != '\0' && strcmp(r.gen, gen) != 0)) {
        if (exp <= now && rc == 0 && (r.gen[0] == '\0' || !strcmp(r.gen, gen)))
            (which == 2 ? r.neu : r.cur)[0] = '\0';
        else
            r.cur[0] = r.neu[0] = '\0';
        fast_save(s, user, agent, &r);
        roost_free(user);
        roost_store_close(s);
        return -ROOST_EDENIED;
    }
    if (r.gen[0] == '\0')
        snprintf(r.gen, sizeof(r.gen), "%s", gen);
    /* §3.5: close to expiry (in its last half), the client gets a new
     * token in <success/> without asking; this one stays valid until
     * the new one is used. */
    *rotate_out = !invalidate && lifetime_ms > 0 && exp - now < lifetime_ms / 2;
    fast_hmac(which == 2 ? r.neu : r.cur, "Responder", cb, cblen, resp);
    *additional_out = roost_xmalloc(64);
    EVP_EncodeBlock((unsigned char *)*additional_out, resp, 32);
    if (invalidate) {
        /* §3.6: this token is gone (and the older one with it). */
        if (which == 2)
            r.neu[0] = '\0';
        r.cur[0] = '\0';
    } else if (which == 2) {
        /* The new token is in use: it becomes current, the old goes. */
        snprintf(r.cur, sizeof(r.cur), "%s", r.neu);
        snprintf(r.cur_mech, sizeof(r.cur_mech), "%s", r.mech);
        r.cur_exp = r.new_exp;
        r.neu[0] = '\0';
        r.new_exp = 0;
    }
    fast_save(s, user, agent, &r);
    roost_store_close(s);
    *user_out = user;
    return 0;
}
