/* tests/unit/check_sasl.c: core/sasl.c driven by Cyrus's own client side
 * (sasl_client_*) and by hand-written client messages, against accounts in
 * the memory storage backend.  Covers the mechanism list per
 * configuration, every mechanism's success path, channel binding (match,
 * mismatch, unknown type, "y" downgrade), wrong credentials, the PLAIN
 * authzid impersonation attack, base64 errors and retries; and the
 * XEP-0484 HT-SHA-256 mechanisms of core/fast.c (the token HMAC over the
 * channel-binding data, a token bound to its mechanism). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include <roost/common.h>
#include <roost/store.h>
#include "auth.h"
#include "fast.h"
#include "log.h"
#include "sasl.h"
#include "storage.h"

#define HOST "example.com"
#define PASS "pencil sharpener"
#define ITER 4096
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* --- fixtures --- */

static void
setup(void)
{
    char *err = NULL;

    ck_assert_int_eq(roost_storage_init("memory", NULL, &err), 0);
    ck_assert_int_eq(roost_sasl_init(&err), 0);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(sasl_client_init(NULL), SASL_OK);
    ck_assert_int_eq(roost_auth_create(HOST, "alice", PASS, ITER), 0);
    ck_assert_int_eq(roost_auth_create(HOST, "bob", "bob's secret", ITER), 0);
}

static void
teardown(void)
{
    sasl_client_done();
    roost_sasl_shutdown();
    roost_storage_shutdown();
}

/* --- channel-binding data, as core/conn.c would provide them --- */

typedef struct cbsrc {
    const char *type[3];
    unsigned char data[3][32];
    size_t len[3];
} cbsrc_t;

static int
cb_fetch(void *arg, const char *type, unsigned char *out, size_t *len)
{
    const cbsrc_t *c = arg;

    for (int i = 0; c->type[i] != NULL; i++) {
        if (strcmp(c->type[i], type) == 0 && c->len[i] <= *len) {
            memcpy(out, c->data[i], c->len[i]);
            *len = c->len[i];
            return 0;
        }
    }
    return -1;
}

static cbsrc_t exporter = {{"tls-exporter", NULL, NULL},
                           {"0123456789abcdef0123456789abcdef"},
                           {32, 0, 0}};
static cbsrc_t unique = {
    {"tls-unique", NULL, NULL}, {"twelve bytes"}, {12, 0, 0}};

static roost_sasl_t *
new_server(int tls, cbsrc_t *cb, int anonymous)
{
    roost_sasl_t *s = roost_sasl_new(HOST, tls, cb ? cb->type : NULL,
                                     cb ? cb_fetch : NULL, cb, anonymous);

    ck_assert_ptr_nonnull(s);
    return s;
}

/* --- base64 via OpenSSL, independent of the codec under test --- */

static char *
b64(const void *in, size_t n)
{
    char *out = malloc(n / 3 * 4 + 8);

    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

static unsigned char *
unb64(const char *in, unsigned *len)
{
    size_t n = strlen(in);
    unsigned char *out = malloc(n / 4 * 3 + 4);
    int r;

    if (strcmp(in, "=") == 0 || n == 0) {
        *len = 0;
        return out;
    }
    r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    ck_assert_int_ge(r, 0);
    if (n >= 2 && in[n - 1] == '=')
        r--;
    if (n >= 2 && in[n - 2] == '=')
        r--;
    *len = (unsigned)r;
    return out;
}

/* --- a Cyrus SASL client --- */

typedef struct client {
    const char *user, *pass, *authzid;
    const char *cbname; /* channel binding on the client, or NULL */
    const unsigned char *cbdata;
    size_t cblen;
    int cbcritical;
} client_t;

static int
cl_simple(void *ctx, int id, const char **result, unsigned *len)
{
    const client_t *c = ctx;

    *result = id == SASL_CB_USER ? (c->authzid ? c->authzid : "") : c->user;
    if (len != NULL)
        *len = (unsigned)strlen(*result);
    return SASL_OK;
}

static int
cl_secret(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
    const client_t *c = ctx;
    static union {
        sasl_secret_t s;
        char buf[sizeof(sasl_secret_t) + 256];
    } sec;
    size_t n = strlen(c->pass);

    sec.s.len = (unsigned long)n;
    memcpy(sec.s.data, c->pass, n + 1);
    *psecret = &sec.s;
    return SASL_OK;
}

#define CL_FN(f) ((sasl_callback_ft)(void (*)(void))(f))

typedef struct result {
    roost_sasl_status_t st;
    const char *cond;
    int client_ok; /* the client verified the server's final message */
} result_t;

/* Runs a whole exchange of mech between the Cyrus client c and s.
 * initial: send the client-first message with <auth/> (else wait for an
 * empty challenge first). */
static result_t
exchange(roost_sasl_t *s, const char *mech, const client_t *c, int initial)
{
    sasl_callback_t cbs[] = {{SASL_CB_AUTHNAME, CL_FN(cl_simple), (void *)c},
                             {SASL_CB_USER, CL_FN(cl_simple), (void *)c},
                             {SASL_CB_PASS, CL_FN(cl_secret), (void *)c},
                             {SASL_CB_LIST_END, NULL, NULL}};
    sasl_channel_binding_t cb;
    sasl_security_properties_t sec = {0};
    sasl_ssf_t ext = 256;
    sasl_conn_t *cc = NULL;
    const char *cout = NULL, *chosen = NULL, *sout = NULL;
    unsigned coutlen = 0;
    result_t r = {0, NULL, 0};
    char *enc;
    int rc;

    ck_assert_int_eq(sasl_client_new("xmpp", HOST, NULL, NULL, cbs, 0, &cc),
                     SASL_OK);
    sec.maxbufsize = 65536;
    ck_assert_int_eq(sasl_setprop(cc, SASL_SEC_PROPS, &sec), SASL_OK);
    ck_assert_int_eq(sasl_setprop(cc, SASL_SSF_EXTERNAL, &ext), SASL_OK);
    if (c->cbname != NULL) {
        cb.name = c->cbname;
        cb.critical = c->cbcritical;
        cb.data = c->cbdata;
        cb.len = c->cblen;
        ck_assert_int_eq(sasl_setprop(cc, SASL_CHANNEL_BINDING, &cb), SASL_OK);
    }
    rc = sasl_client_start(cc, mech, NULL, &cout, &coutlen, &chosen);
    ck_assert_msg(rc == SASL_OK || rc == SASL_CONTINUE, "client start %s",
                  sasl_errdetail(cc));
    /* Cyrus names the plugin ("SCRAM-SHA-256") for its -PLUS variant */
    ck_assert_int_eq(strncmp(chosen, mech, strlen(chosen)), 0);
    if (initial) {
        enc = cout != NULL ? b64(cout, coutlen) : strdup("");
        if (cout != NULL && coutlen == 0)
            strcpy(enc, "=");
        r.st = roost_sasl_step(s, mech, enc, &sout, &r.cond);
        free(enc);
    } else {
        r.st = roost_sasl_step(s, mech, "", &sout, &r.cond);
        ck_assert_int_eq(r.st, ROOST_SASL_CONTINUE);
        ck_assert_str_eq(sout, "=");
        enc = b64(cout, coutlen);
        r.st = roost_sasl_step(s, NULL, enc, &sout, &r.cond);
        free(enc);
    }
    while (r.st == ROOST_SASL_CONTINUE) {
        unsigned len;
        unsigned char *ch = unb64(sout, &len);

        rc = sasl_client_step(cc, (const char *)ch, len, NULL, &cout, &coutlen);
        free(ch);
        ck_assert_msg(rc == SASL_OK || rc == SASL_CONTINUE, "client step %s",
                      sasl_errdetail(cc));
        enc = cout != NULL && coutlen > 0 ? b64(cout, coutlen) : strdup("=");
        r.st = roost_sasl_step(s, NULL, enc, &sout, &r.cond);
        free(enc);
    }
    if (r.st == ROOST_SASL_SUCCESS) {
        ck_assert_ptr_null(r.cond);
        if (*sout != '\0') {
            unsigned len;
            unsigned char *fin = unb64(sout, &len);

            rc = sasl_client_step(cc, (const char *)fin, len, NULL, &cout,
                                  &coutlen);
            free(fin);
            r.client_ok = rc == SASL_OK;
        } else {
            r.client_ok = 1;
        }
    } else {
        ck_assert_int_eq(r.st, ROOST_SASL_FAILURE);
        ck_assert_ptr_nonnull(r.cond);
        ck_assert_str_eq(sout, "");
    }
    sasl_dispose(&cc);
    return r;
}

/* One step with raw (unencoded) client data. */
static roost_sasl_status_t
raw_step(roost_sasl_t *s, const char *mech, const char *data, size_t n,
         const char **out, const char **cond)
{
    char *enc = b64(data, n);
    roost_sasl_status_t st = roost_sasl_step(s, mech, enc, out, cond);

    free(enc);
    return st;
}

static int
sasl_cmp_test(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *
mechs_str(roost_sasl_t *s)
{
    static char buf[256];
    const char *const *m = roost_sasl_mechs(s);

    buf[0] = '\0';
    for (int i = 0; m[i] != NULL; i++) {
        if (i > 0)
            strcat(buf, " ");
        strcat(buf, m[i]);
    }
    return buf;
}

/* --- roost_sasl_init / roost_sasl_new --- */

START_TEST(test_new_before_init)
{
    ck_assert_ptr_null(roost_sasl_new(HOST, 1, NULL, NULL, NULL, 0));
}
END_TEST

START_TEST(test_init_twice)
{
    char *err = NULL;

    ck_assert_int_eq(roost_sasl_init(&err), 0);
    ck_assert_int_eq(roost_sasl_init(&err), 0);
    ck_assert_ptr_null(err);
    ck_assert_ptr_null(roost_sasl_new("", 1, NULL, NULL, NULL, 0));
    ck_assert_ptr_null(roost_sasl_new(NULL, 1, NULL, NULL, NULL, 0));
    roost_sasl_shutdown();
    roost_sasl_shutdown();
}
END_TEST

/* --- mechanism lists --- */

static cbsrc_t broken = {{"tls-exporter", NULL, NULL}, {""}, {0, 0, 0}};

static const struct {
    int tls, anon;
    cbsrc_t *cb;
    const char *want;
} mech_cases[] = {
    {0, 0, NULL, "SCRAM-SHA-256 SCRAM-SHA-1"},
    {0, 1, NULL, "SCRAM-SHA-256 SCRAM-SHA-1 ANONYMOUS"},
    /* no channel binding without TLS, whatever the caller passes */
    {0, 0, &exporter, "SCRAM-SHA-256 SCRAM-SHA-1"},
    {1, 0, NULL, "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
    {1, 0, &exporter,
     "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
    {1, 0, &unique,
     "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
    {1, 1, &exporter,
     "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN "
     "ANONYMOUS"},
    /* the data cannot be fetched: no -PLUS */
    {1, 0, &broken, "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
};

START_TEST(test_mechs)
{
    roost_sasl_t *s =
        new_server(mech_cases[_i].tls, mech_cases[_i].cb, mech_cases[_i].anon);

    ck_assert_str_eq(mechs_str(s), mech_cases[_i].want);
    ck_assert_ptr_null(roost_sasl_user(s));
    ck_assert_ptr_null(roost_sasl_mech_used(s));
    roost_sasl_free(s);
}
END_TEST

/* --- successful exchanges --- */

static const struct {
    const char *mech, *user;
    int tls;
    cbsrc_t *cb;
    int initial;
} ok_cases[] = {
    {"SCRAM-SHA-1", "alice", 0, NULL, 1},
    {"SCRAM-SHA-256", "alice", 0, NULL, 1},
    {"SCRAM-SHA-256", "alice", 0, NULL, 0}, /* no initial response */
    {"SCRAM-SHA-256", "Alice", 0, NULL, 1}, /* prepared to alice */
    {"SCRAM-SHA-256", ("alice@" HOST), 0, NULL, 1},
    {"SCRAM-SHA-1", "alice", 1, &exporter, 1}, /* "n" with -PLUS offered */
    {"SCRAM-SHA-256-PLUS", "alice", 1, &exporter, 1},
    {"SCRAM-SHA-1-PLUS", "alice", 1, &exporter, 1},
    {"SCRAM-SHA-256-PLUS", "alice", 1, &unique, 1},
    {"PLAIN", "alice", 1, NULL, 1},
    {"PLAIN", "ALICE@example.com", 1, &exporter, 1},
};

START_TEST(test_success)
{
    roost_sasl_t *s = new_server(ok_cases[_i].tls, ok_cases[_i].cb, 0);
    cbsrc_t *cb = ok_cases[_i].cb;
    int plus = strstr(ok_cases[_i].mech, "-PLUS") != NULL;
    client_t c = {ok_cases[_i].user,
                  PASS,
                  NULL,
                  plus ? cb->type[0] : NULL,
                  plus ? cb->data[0] : NULL,
                  plus ? cb->len[0] : 0,
                  1};
    result_t r = exchange(s, ok_cases[_i].mech, &c, ok_cases[_i].initial);

    ck_assert_msg(r.st == ROOST_SASL_SUCCESS, "%s: %s", ok_cases[_i].mech,
                  r.cond);
    ck_assert(r.client_ok);
    ck_assert_str_eq(roost_sasl_user(s), "alice");
    ck_assert_str_eq(roost_sasl_mech_used(s), ok_cases[_i].mech);
    roost_sasl_free(s);
}
END_TEST

/* --- failed exchanges through the Cyrus client --- */

static const unsigned char other_cb[32] = "not the same binding as server!";

static const struct {
    const char *name, *mech, *user, *pass, *authzid;
    int tls;
    cbsrc_t *cb;
    const char *cbname;
    const unsigned char *cbdata;
    size_t cblen;
    const char *want;
} fail_cases[] = {
    {"scram1 wrong password", "SCRAM-SHA-1", "alice", "wrong", NULL, 0, NULL,
     NULL, NULL, 0, "not-authorized"},
    {"scram256 wrong password", "SCRAM-SHA-256", "alice", "wrong", NULL, 0,
     NULL, NULL, NULL, 0, "not-authorized"},
    {"plain wrong password", "PLAIN", "alice", "wrong", NULL, 1, NULL, NULL,
     NULL, 0, "not-authorized"},
    {"plus wrong password", "SCRAM-SHA-256-PLUS", "alice", "wrong", NULL, 1,
     &exporter, "tls-exporter", (const unsigned char *)exporter.data[0], 32,
     "not-authorized"},
    {"scram unknown user", "SCRAM-SHA-256", "mallory", PASS, NULL, 0, NULL,
     NULL, NULL, 0, "not-authorized"},
    {"plain unknown user", "PLAIN", "mallory", PASS, NULL, 1, NULL, NULL, NULL,
     0, "not-authorized"},
    {"scram foreign domain", "SCRAM-SHA-256", "alice@example.org", PASS, NULL,
     0, NULL, NULL, NULL, 0, "not-authorized"},
    {"plain foreign domain", "PLAIN", "alice@example.org", PASS, NULL, 1, NULL,
     NULL, NULL, 0, "not-authorized"},
    {"scram invalid localpart", "SCRAM-SHA-256", "al/ice", PASS, NULL, 0, NULL,
     NULL, NULL, 0, "not-authorized"},
    {"plus cb mismatch", "SCRAM-SHA-256-PLUS", "alice", PASS, NULL, 1,
     &exporter, "tls-exporter", other_cb, 32, "not-authorized"},
    {"plus cb length mismatch", "SCRAM-SHA-1-PLUS", "alice", PASS, NULL, 1,
     &exporter, "tls-exporter", other_cb, 12, "not-authorized"},
    {"plus cb type we lack", "SCRAM-SHA-256-PLUS", "alice", PASS, NULL, 1,
     &exporter, "tls-unique", other_cb, 12, "not-authorized"},
    {"plain authzid other user", "PLAIN", "alice", PASS, "bob", 1, NULL, NULL,
     NULL, 0, "invalid-authzid"},
    {"plain authzid other jid", "PLAIN", "alice", PASS, ("bob@" HOST), 1, NULL,
     NULL, NULL, 0, "invalid-authzid"},
    {"plain authzid other domain", "PLAIN", "alice", PASS, "alice@example.org",
     1, NULL, NULL, NULL, 0, "invalid-authzid"},
    {"scram authzid other user", "SCRAM-SHA-256", "alice", PASS, "bob", 0, NULL,
     NULL, NULL, 0, "invalid-authzid"},
};

START_TEST(test_failure)
{
    roost_sasl_t *s = new_server(fail_cases[_i].tls, fail_cases[_i].cb, 0);
    client_t c = {fail_cases[_i].user,
                  fail_cases[_i].pass,
                  fail_cases[_i].authzid,
                  fail_cases[_i].cbname,
                  fail_cases[_i].cbdata,
                  fail_cases[_i].cblen,
                  strstr(fail_cases[_i].mech, "-PLUS") != NULL};
    result_t r = exchange(s, fail_cases[_i].mech, &c, 1);

    ck_assert_msg(r.st == ROOST_SASL_FAILURE, "%s: succeeded",
                  fail_cases[_i].name);
    ck_assert_msg(strcmp(r.cond, fail_cases[_i].want) == 0, "%s: %s",
                  fail_cases[_i].name, r.cond);
    ck_assert_ptr_null(roost_sasl_user(s));
    roost_sasl_free(s);
}
END_TEST

START_TEST(test_authzid_self)
{
    /* An authzid naming the authenticated user is fine. */
    static const char *const ids[] = {"alice", ("alice@" HOST),
                                      "Alice@EXAMPLE.COM"};
    roost_sasl_t *s = new_server(1, NULL, 0);
    client_t c = {"alice", PASS, ids[_i], NULL, NULL, 0, 0};
    result_t r = exchange(s, "PLAIN", &c, 1);

    ck_assert_msg(r.st == ROOST_SASL_SUCCESS, "%s: %s", ids[_i], r.cond);
    ck_assert_str_eq(roost_sasl_user(s), "alice");
    roost_sasl_free(s);
}
END_TEST

/* --- hand-written messages --- */

static const struct {
    const char *name, *mech;
    int tls;
    cbsrc_t *cb;
    const char *msg;
    size_t len;
    roost_sasl_status_t st;
    const char *want;
} raw_cases[] = {
#define M(s) s, sizeof(s) - 1
    {"plain ok", "PLAIN", 1, NULL, M("\0alice\0" PASS), ROOST_SASL_SUCCESS,
     NULL},
    {"plain impersonation", "PLAIN", 1, NULL, M("bob\0alice\0" PASS),
     ROOST_SASL_FAILURE, "invalid-authzid"},
    {"plain empty password", "PLAIN", 1, NULL, M("\0alice\0"),
     ROOST_SASL_FAILURE, "not-authorized"},
    {"plain NUL in password", "PLAIN", 1, NULL, M("\0alice\0pencil\0x"),
     ROOST_SASL_FAILURE, "malformed-request"},
    {"plain garbage", "PLAIN", 1, NULL, M("alice"), ROOST_SASL_FAILURE,
     "malformed-request"},
    {"scram bad gs2 flag", "SCRAM-SHA-256", 0, NULL,
     M("x,,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE, "malformed-request"},
    {"scram p= on plain SCRAM", "SCRAM-SHA-256", 1, &exporter,
     M("p=tls-exporter,,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE,
     "malformed-request"},
    {"plus with n", "SCRAM-SHA-256-PLUS", 1, &exporter,
     M("n,,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE, "malformed-request"},
    {"plus unknown cb type", "SCRAM-SHA-256-PLUS", 1, &exporter,
     M("p=tls-unique,,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE,
     "not-authorized"},
    {"plus bad cb name", "SCRAM-SHA-256-PLUS", 1, &exporter,
     M("p=tls_exporter,,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE,
     "malformed-request"},
    {"plus unterminated cb name", "SCRAM-SHA-256-PLUS", 1, &exporter,
     M("p=tls-exporter"), ROOST_SASL_FAILURE, "malformed-request"},
    /* the client can bind but thinks we cannot, yet -PLUS was offered:
     * someone stripped it (RFC 5802 §6) */
    {"y downgrade", "SCRAM-SHA-256", 1, &exporter,
     M("y,,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE, "not-authorized"},
    {"y downgrade sha1", "SCRAM-SHA-1", 1, &unique,
     M("y,,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE, "not-authorized"},
    {"scram y without cb", "SCRAM-SHA-256", 1, NULL,
     M("y,,n=alice,r=abcdefghijkl"), ROOST_SASL_CONTINUE, NULL},
    {"scram first ok", "SCRAM-SHA-1", 0, NULL, M("n,,n=alice,r=abcdefghijkl"),
     ROOST_SASL_CONTINUE, NULL},
    {"scram mandatory ext", "SCRAM-SHA-1", 0, NULL,
     M("n,,m=x,n=alice,r=abcdefghijkl"), ROOST_SASL_FAILURE,
     "malformed-request"},
    {"anonymous with trace", "ANONYMOUS", 0, NULL, M("trace"),
     ROOST_SASL_SUCCESS, NULL},
#undef M
};

START_TEST(test_raw)
{
    roost_sasl_t *s = new_server(raw_cases[_i].tls, raw_cases[_i].cb, 1);
    const char *out, *cond;
    roost_sasl_status_t st = raw_step(s, raw_cases[_i].mech, raw_cases[_i].msg,
                                      raw_cases[_i].len, &out, &cond);

    ck_assert_msg(st == raw_cases[_i].st, "%s: %d %s", raw_cases[_i].name, st,
                  cond ? cond : "");
    if (raw_cases[_i].want != NULL)
        ck_assert_str_eq(cond, raw_cases[_i].want);
    else
        ck_assert_ptr_null(cond);
    if (st == ROOST_SASL_CONTINUE) {
        unsigned len;
        unsigned char *d = unb64(out, &len);

        /* server-first-message: our nonce prefix, salt, iterations */
        ck_assert_int_eq(memcmp(d, "r=abcdefghijkl", 14), 0);
        ck_assert_ptr_nonnull(memmem(d, len, ",i=4096", 7));
        free(d);
    }
    roost_sasl_free(s);
}
END_TEST

START_TEST(test_scram_bad_final)
{
    /* A syntactically broken client-final-message after the challenge. */
    static const char *const finals[] = {"c=biws,r=wrongnonce,p=AAAA",
                                         "garbage", "c=biws"};
    roost_sasl_t *s = new_server(0, NULL, 0);
    const char *out, *cond;

    ck_assert_int_eq(raw_step(s, "SCRAM-SHA-256", "n,,n=alice,r=abcdefghijkl",
                              25, &out, &cond),
                     ROOST_SASL_CONTINUE);
    ck_assert_int_eq(
        raw_step(s, NULL, finals[_i], strlen(finals[_i]), &out, &cond),
        ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "not-authorized");
    roost_sasl_free(s);
}
END_TEST

START_TEST(test_unknown_user_salt)
{
    /* A missing account gets a made-up but stable salt (RFC 5802 §9), so
     * the first step does not tell which accounts exist. */
    static const char *const msgs[] = {"n,,n=mallory,r=abcdefghijkl",
                                       "n,,n=mallory,r=mnopqrstuvwx",
                                       "n,,n=trudy,r=abcdefghijkl"};
    char salt[3][128];

    for (int i = 0; i < 3; i++) {
        roost_sasl_t *s = new_server(0, NULL, 0);
        const char *out, *cond, *p;
        unsigned len;
        unsigned char *d;

        ck_assert_int_eq(
            raw_step(s, "SCRAM-SHA-256", msgs[i], strlen(msgs[i]), &out, &cond),
            ROOST_SASL_CONTINUE);
        d = unb64(out, &len);
        d[len] = '\0';
        p = strstr((char *)d, ",s=");
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_nonnull(strstr(p, ",i=4096"));
        snprintf(salt[i], sizeof(salt[i]), "%.*s", (int)(strstr(p, ",i=") - p),
                 p);
        free(d);
        roost_sasl_free(s);
    }
    ck_assert_str_eq(salt[0], salt[1]);
    ck_assert_str_ne(salt[0], salt[2]);
}
END_TEST

/* --- mechanism selection errors --- */

static const struct {
    const char *mech;
    int tls, anon;
    cbsrc_t *cb;
    const char *want;
} mechfail_cases[] = {
    {"DIGEST-MD5", 1, 0, NULL, "invalid-mechanism"},
    {"CRAM-MD5", 1, 0, NULL, "invalid-mechanism"},
    {"scram-sha-256", 1, 0, NULL, "invalid-mechanism"},
    {"", 1, 0, NULL, "invalid-mechanism"},
    {"ANONYMOUS", 1, 0, NULL, "invalid-mechanism"},
    {"SCRAM-SHA-256-PLUS", 1, 0, NULL, "invalid-mechanism"},
    {"SCRAM-SHA-256-PLUS", 0, 0, &exporter, "invalid-mechanism"},
    {"EXTERNAL", 1, 0, NULL, "invalid-mechanism"},
    /* PLAIN without TLS: not offered, and refused with the reason */
    {"PLAIN", 0, 1, NULL, "encryption-required"},
};

START_TEST(test_mech_refused)
{
    roost_sasl_t *s = new_server(mechfail_cases[_i].tls, mechfail_cases[_i].cb,
                                 mechfail_cases[_i].anon);
    const char *out, *cond;
    char *enc = b64("\0alice\0" PASS, 7 + strlen(PASS));

    for (int i = 0; roost_sasl_mechs(s)[i] != NULL; i++)
        ck_assert_str_ne(roost_sasl_mechs(s)[i], mechfail_cases[_i].mech);
    ck_assert_int_eq(
        roost_sasl_step(s, mechfail_cases[_i].mech, enc, &out, &cond),
        ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, mechfail_cases[_i].want);
    ck_assert_str_eq(out, "");
    free(enc);
    roost_sasl_free(s);
}
END_TEST

/* --- base64 --- */

static const char *const bad_b64[] = {
    "abc",        "ab=c", "a===", "@@@@", "YQ==YQ==", "YWJj ZGVm",
    "YWJj\nZGVm", "YQ=",  "====", "YW=j", "Y===",
};

START_TEST(test_bad_base64_auth)
{
    roost_sasl_t *s = new_server(1, NULL, 0);
    const char *out, *cond;

    ck_assert_int_eq(roost_sasl_step(s, "PLAIN", bad_b64[_i], &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "incorrect-encoding");
    roost_sasl_free(s);
}
END_TEST

START_TEST(test_bad_base64_response)
{
    roost_sasl_t *s = new_server(0, NULL, 0);
    const char *out, *cond;

    ck_assert_int_eq(roost_sasl_step(s, "SCRAM-SHA-256", "", &out, &cond),
                     ROOST_SASL_CONTINUE);
    ck_assert_int_eq(roost_sasl_step(s, NULL, bad_b64[_i], &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "incorrect-encoding");
    roost_sasl_free(s);
}
END_TEST

START_TEST(test_base64_padding)
{
    /* PLAIN messages of each length modulo 3 (two, one and no "="). */
    static const struct {
        const char *user, *pass;
    } acct[] = {{"alice", PASS}, {"carol", "abc"}, {"dave", "abc"}};
    roost_sasl_t *s;
    const char *out, *cond;
    char msg[128];
    int n;

    ck_assert_int_eq(roost_auth_create(HOST, "carol", "abc", ITER), 0);
    ck_assert_int_eq(roost_auth_create(HOST, "dave", "abc", ITER), 0);
    for (int i = 0; i < N(acct); i++) {
        s = new_server(1, NULL, 0);
        n = snprintf(msg, sizeof(msg), "%c%s%c%s", 0, acct[i].user, 0,
                     acct[i].pass);
        ck_assert_int_eq(n % 3, 2 - i);
        ck_assert_int_eq(raw_step(s, "PLAIN", msg, (size_t)n, &out, &cond),
                         ROOST_SASL_SUCCESS);
        ck_assert_str_eq(roost_sasl_user(s), acct[i].user);
        roost_sasl_free(s);
    }
}
END_TEST

START_TEST(test_oversized)
{
    roost_sasl_t *s = new_server(1, NULL, 0);
    size_t n = 64 * 1024;
    char *big = malloc(n + 1);
    const char *out, *cond;

    memset(big, 'A', n);
    big[n] = '\0';
    ck_assert_int_eq(roost_sasl_step(s, "PLAIN", big, &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "malformed-request");
    free(big);
    roost_sasl_free(s);
}
END_TEST

START_TEST(test_empty_initial)
{
    /* "=" is an empty initial response; PLAIN cannot use it. */
    roost_sasl_t *s = new_server(1, NULL, 0);
    const char *out, *cond;

    ck_assert_int_eq(roost_sasl_step(s, "PLAIN", "=", &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "malformed-request");
    /* no initial response: PLAIN asks for one with an empty challenge */
    ck_assert_int_eq(roost_sasl_step(s, "PLAIN", "", &out, &cond),
                     ROOST_SASL_CONTINUE);
    ck_assert_str_eq(out, "=");
    ck_assert_int_eq(
        raw_step(s, NULL, "\0alice\0" PASS, 7 + strlen(PASS), &out, &cond),
        ROOST_SASL_SUCCESS);
    ck_assert_str_eq(out, "");
    roost_sasl_free(s);
}
END_TEST

/* --- state handling --- */

START_TEST(test_retry_after_failure)
{
    roost_sasl_t *s = new_server(0, NULL, 0);
    client_t bad = {"alice", "wrong", NULL, NULL, NULL, 0, 0};
    client_t good = {"alice", PASS, NULL, NULL, NULL, 0, 0};
    client_t bob = {"bob", "bob's secret", NULL, NULL, NULL, 0, 0};
    result_t r;

    r = exchange(s, "SCRAM-SHA-256", &bad, 1);
    ck_assert_int_eq(r.st, ROOST_SASL_FAILURE);
    r = exchange(s, "SCRAM-SHA-1", &bob, 1);
    ck_assert_int_eq(r.st, ROOST_SASL_SUCCESS);
    ck_assert_str_eq(roost_sasl_user(s), "bob");
    roost_sasl_free(s);

    /* <auth/> again in the middle of an exchange restarts it */
    s = new_server(0, NULL, 0);
    {
        const char *out, *cond;

        ck_assert_int_eq(raw_step(s, "SCRAM-SHA-256", "n,,n=bob,r=abcdefghijkl",
                                  23, &out, &cond),
                         ROOST_SASL_CONTINUE);
    }
    r = exchange(s, "SCRAM-SHA-256", &good, 1);
    ck_assert_int_eq(r.st, ROOST_SASL_SUCCESS);
    ck_assert_str_eq(roost_sasl_user(s), "alice");
    roost_sasl_free(s);
}
END_TEST

START_TEST(test_steps_out_of_order)
{
    roost_sasl_t *s = new_server(1, NULL, 0);
    client_t good = {"alice", PASS, NULL, NULL, NULL, 0, 0};
    const char *out, *cond;

    /* a response with no exchange running */
    ck_assert_int_eq(roost_sasl_step(s, NULL, "=", &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "malformed-request");
    ck_assert_int_eq(exchange(s, "PLAIN", &good, 1).st, ROOST_SASL_SUCCESS);
    /* nothing after success */
    ck_assert_int_eq(roost_sasl_step(s, NULL, "=", &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_int_eq(roost_sasl_step(s, "PLAIN", "=", &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "malformed-request");
    /* ... and does not undo it */
    ck_assert_str_eq(roost_sasl_user(s), "alice");
    ck_assert_str_eq(roost_sasl_mech_used(s), "PLAIN");
    roost_sasl_free(s);
}
END_TEST

/* --- ANONYMOUS --- */

START_TEST(test_anonymous)
{
    roost_sasl_t *s1 = new_server(0, NULL, 1), *s2 = new_server(1, NULL, 1);
    const char *out, *cond;
    const char *u1, *u2;

    ck_assert_int_eq(roost_sasl_step(s1, "ANONYMOUS", "=", &out, &cond),
                     ROOST_SASL_SUCCESS);
    ck_assert_int_eq(roost_sasl_step(s2, "ANONYMOUS", "", &out, &cond) ==
                             ROOST_SASL_CONTINUE
                         ? roost_sasl_step(s2, NULL, "=", &out, &cond)
                         : ROOST_SASL_SUCCESS,
                     ROOST_SASL_SUCCESS);
    u1 = roost_sasl_user(s1);
    u2 = roost_sasl_user(s2);
    ck_assert_uint_eq(strlen(u1), 16);
    ck_assert_uint_eq(strspn(u1, "0123456789abcdef"), 16);
    ck_assert_uint_eq(strlen(u2), 16);
    ck_assert_str_ne(u1, u2);
    ck_assert_str_eq(roost_sasl_mech_used(s1), "ANONYMOUS");
    roost_sasl_free(s1);
    roost_sasl_free(s2);
}
END_TEST

/* --- storage failure --- */

START_TEST(test_storage_down)
{
    roost_sasl_t *s = new_server(1, NULL, 0);
    client_t scram = {"alice", PASS, NULL, NULL, NULL, 0, 0};
    result_t r;

    roost_log_level = ROOST_LOG_ERROR; /* the failure is logged at warn */
    roost_storage_shutdown();
    r = exchange(s, "SCRAM-SHA-256", &scram, 1);
    ck_assert_int_eq(r.st, ROOST_SASL_FAILURE);
    ck_assert_str_eq(r.cond, "temporary-auth-failure");
    r = exchange(s, "PLAIN", &scram, 1);
    ck_assert_int_eq(r.st, ROOST_SASL_FAILURE);
    ck_assert_str_eq(r.cond, "temporary-auth-failure");
    roost_sasl_free(s);
}
END_TEST

/* --- our SCRAM plugin: known answers, XEP-0474, strict parsing --- */

/* Stores user's secrets with fixed salts (the RFCs' examples) so that
 * the exchanges below reproduce the published messages byte for byte. */
static void
put_account(const char *user, const char *pass, const char *salt1,
            const char *salt256)
{
    static const struct {
        const char *mech;
        int which;
    } m[] = {{"SCRAM-SHA-1", 0}, {"SCRAM-SHA-256", 1}};
    char val[1024];
    size_t off = 0;
    roost_store_t *st;

    for (int i = 0; i < 2; i++) {
        const char *salt = m[i].which ? salt256 : salt1;
        unsigned char stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
        unsigned slen;
        unsigned char *sb = unb64(salt, &slen);
        size_t klen;
        char *a, *b;

        ck_assert_int_eq(roost_auth_scram_keys(m[i].mech, pass, sb, slen, ITER,
                                               stored, server, &klen),
                         0);
        a = b64(stored, klen);
        b = b64(server, klen);
        off +=
            (size_t)snprintf(val + off, sizeof(val) - off, "%s$%d:%s$%s:%s\n",
                             m[i].mech, ITER, salt, a, b);
        free(a);
        free(b);
        free(sb);
    }
    st = roost_storage_store(HOST, "accounts", ROOST_STORE_MAP);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(roost_store_set(st, "", user, val, off), 0);
    roost_store_close(st);
}

static int
kat_getopt(void *ctx, const char *plugin, const char *option,
           const char **result, unsigned *len)
{
    if (ctx == NULL || strcmp(option, ROOST_SASL_OPT_SSDP) != 0)
        return SASL_FAIL;
    *result = ctx;
    *len = (unsigned)strlen(ctx);
    return SASL_OK;
}

/* A bare Cyrus server connection (no roost_sasl_t around it), so that
 * the plugin sees exactly the XEP-0474 input ssdp (or none) and the
 * binding cb (or none). */
static sasl_conn_t *
kat_conn(const char *ssdp, const sasl_channel_binding_t *cb)
{
    static sasl_callback_t cbs[2];
    sasl_conn_t *conn = NULL;

    cbs[0] = (sasl_callback_t){SASL_CB_GETOPT, CL_FN(kat_getopt), (void *)ssdp};
    cbs[1] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    ck_assert_int_eq(sasl_server_new("xmpp", HOST, HOST, NULL, NULL, cbs,
                                     SASL_SUCCESS_DATA, &conn),
                     SASL_OK);
    if (cb != NULL)
        ck_assert_int_eq(sasl_setprop(conn, SASL_CHANNEL_BINDING, cb), SASL_OK);
    return conn;
}

static const struct {
    const char *name, *mech, *snonce, *ssdp, *cbname, *cbdata;
    const char *first, *sfirst, *final, *sfinal;
} kat_cases[] = {
    /* RFC 5802 §5 */
    {"rfc5802", "SCRAM-SHA-1", "3rfcNHYJY1ZVvWVs7j", NULL, NULL, NULL,
     "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
     "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
     "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
    /* RFC 7677 §3 */
    {"rfc7677", "SCRAM-SHA-256", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", NULL, NULL,
     NULL, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
     "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
     "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
     "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
    /* XEP-0474 §3.3, the full example: SCRAM-SHA-1-PLUS over
     * tls-exporter, with an extension (x=) in the client-final-message */
    {"xep0474", "SCRAM-SHA-1-PLUS", "a09117a6-ac50-4f2f-93f1-93799c2bddf6",
     "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point",
     "tls-exporter", "THIS IS FAKE CB DATA",
     "p=tls-exporter,,n=user,r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6",
     "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-"
     "93799c2bddf6,s=QSXCR+Q6sek8bf92,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08=",
     "c=cD10bHMtZXhwb3J0ZXIsLFRISVMgSVMgRkFLRSBDQiBEQVRB,r=12C4CD5C-E38E-"
     "4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,x=19C6532F-"
     "1CF4-4A27-A18D-DC9CEA41BBB3,p=M/SIDjT+dfcxUh89jZEypRvFxB4=",
     "v=MQrMPvv7yv4x4Cq4W4Ih25EqS2c="},
};

START_TEST(test_scram_known_answer)
{
    sasl_channel_binding_t cb = {
        .name = kat_cases[_i].cbname,
        .critical = 1,
        .len = kat_cases[_i].cbdata ? strlen(kat_cases[_i].cbdata) : 0,
        .data = (const unsigned char *)kat_cases[_i].cbdata};
    sasl_conn_t *conn;
    const char *out = NULL, *who = NULL;
    unsigned outlen = 0;

    put_account("user", "pencil", "QSXCR+Q6sek8bf92",
                "W22ZaJ0SNY7soEsUEjb6gQ==");
    roost_sasl_test_nonce(kat_cases[_i].snonce);
    conn = kat_conn(kat_cases[_i].ssdp, kat_cases[_i].cbname ? &cb : NULL);
    ck_assert_int_eq(
        sasl_server_start(conn, kat_cases[_i].mech, kat_cases[_i].first,
                          (unsigned)strlen(kat_cases[_i].first), &out, &outlen),
        SASL_CONTINUE);
    ck_assert_msg(outlen == strlen(kat_cases[_i].sfirst) &&
                      memcmp(out, kat_cases[_i].sfirst, outlen) == 0,
                  "%s: server-first %.*s", kat_cases[_i].name, (int)outlen,
                  out);
    ck_assert_int_eq(sasl_server_step(conn, kat_cases[_i].final,
                                      (unsigned)strlen(kat_cases[_i].final),
                                      &out, &outlen),
                     SASL_OK);
    ck_assert_int_eq(outlen, strlen(kat_cases[_i].sfinal));
    ck_assert_int_eq(memcmp(out, kat_cases[_i].sfinal, outlen), 0);
    ck_assert_int_eq(sasl_getprop(conn, SASL_AUTHUSER, (const void **)&who),
                     SASL_OK);
    ck_assert_int_eq(strncmp(who, "user", 4), 0);
    sasl_dispose(&conn);
    roost_sasl_test_nonce(NULL);
}
END_TEST

/* The XEP-0474 §3.3 hash itself, from the hash input. */
START_TEST(test_ssdp_vector)
{
    static const char in[] = "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-"
                             "exporter\x1etls-server-end-point";
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl;
    char *enc;

    ck_assert_int_eq(EVP_Digest(in, sizeof(in) - 1, h, &hl, EVP_sha1(), NULL),
                     1);
    enc = b64(h, hl);
    ck_assert_str_eq(enc, "G6k/rBLDqgOhRRaCuuatSDFkJ08=");
    free(enc);
}
END_TEST

/* --- a SCRAM client written here, independent of Cyrus and of sasl.c --- */

typedef struct scl {
    const EVP_MD *md;
    const char *pass;
    char bare[256];
    char sfirst[512];
    char attr_h[128]; /* the server's h, "" if absent */
} scl_t;

static const EVP_MD *
scl_md(const char *mech)
{
    return strncmp(mech, "SCRAM-SHA-256", 13) == 0 ? EVP_sha256() : EVP_sha1();
}

/* Pulls attribute a= out of msg (which starts at an attribute). */
static int
scl_attr(const char *msg, char a, char *out, size_t max)
{
    for (const char *p = msg; p != NULL && *p; p = strchr(p, ',')) {
        const char *e;

        if (*p == ',')
            p++;
        e = strchr(p, ',');
        if (e == NULL)
            e = p + strlen(p);
        if (p[0] == a && p[1] == '=' && (size_t)(e - p - 2) < max) {
            memcpy(out, p + 2, (size_t)(e - p - 2));
            out[e - p - 2] = '\0';
            return 1;
        }
        p = e;
    }
    return 0;
}

/* The client-final-message for the server-first-message in c->sfirst
 * (as the client saw it), gs2 header gs2 and binding data cbd; writes
 * the expected server-final-message to v. */
static char *
scl_final(scl_t *c, const char *gs2, const unsigned char *cbd, size_t cbdlen,
          char *v)
{
    unsigned char salted[EVP_MAX_MD_SIZE], ck[EVP_MAX_MD_SIZE],
        sk[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE], sig[EVP_MAX_MD_SIZE];
    unsigned char cbin[256];
    char nonce[256], salt[128], iter[16], wp[512], am[2048], *enc, *out;
    unsigned hl = (unsigned)EVP_MD_get_size(c->md), l;
    unsigned slen;
    unsigned char *s;

    ck_assert(scl_attr(c->sfirst, 'r', nonce, sizeof(nonce)));
    ck_assert(scl_attr(c->sfirst, 's', salt, sizeof(salt)));
    ck_assert(scl_attr(c->sfirst, 'i', iter, sizeof(iter)));
    s = unb64(salt, &slen);
    ck_assert_int_eq(PKCS5_PBKDF2_HMAC(c->pass, (int)strlen(c->pass), s,
                                       (int)slen, atoi(iter), c->md, (int)hl,
                                       salted),
                     1);
    free(s);
    HMAC(c->md, salted, (int)hl, (const unsigned char *)"Client Key", 10, ck,
         &l);
    HMAC(c->md, salted, (int)hl, (const unsigned char *)"Server Key", 10, sk,
         &l);
    EVP_Digest(ck, hl, stored, &l, c->md, NULL);
    memcpy(cbin, gs2, strlen(gs2));
    if (cbdlen > 0) /* cbd may be NULL: memcpy's arguments are nonnull */
        memcpy(cbin + strlen(gs2), cbd, cbdlen);
    enc = b64(cbin, strlen(gs2) + cbdlen);
    snprintf(wp, sizeof(wp), "c=%s,r=%s", enc, nonce);
    free(enc);
    snprintf(am, sizeof(am), "%s,%s,%s", c->bare, c->sfirst, wp);
    HMAC(c->md, stored, (int)hl, (unsigned char *)am, strlen(am), sig, &l);
    for (unsigned i = 0; i < hl; i++)
        sig[i] ^= ck[i];
    enc = b64(sig, hl);
    out = malloc(strlen(wp) + strlen(enc) + 8);
    sprintf(out, "%s,p=%s", wp, enc);
    free(enc);
    HMAC(c->md, sk, (int)hl, (unsigned char *)am, strlen(am), sig, &l);
    enc = b64(sig, hl);
    sprintf(v, "v=%s", enc);
    free(enc);
    return out;
}

/* Starts mech with "gs2 n=user,r=..." and keeps the server-first. */
static roost_sasl_status_t
scl_start(roost_sasl_t *s, scl_t *c, const char *mech, const char *gs2,
          const char *user, const char **cond)
{
    char first[512];
    const char *out;
    roost_sasl_status_t st;
    unsigned len;
    unsigned char *d;

    c->md = scl_md(mech);
    snprintf(c->bare, sizeof(c->bare), "n=%s,r=Ab3xJ9-qQz_0123456789", user);
    snprintf(first, sizeof(first), "%s%s", gs2, c->bare);
    st = raw_step(s, mech, first, strlen(first), &out, cond);
    if (st != ROOST_SASL_CONTINUE)
        return st;
    d = unb64(out, &len);
    ck_assert_uint_lt(len, sizeof(c->sfirst));
    memcpy(c->sfirst, d, len);
    c->sfirst[len] = '\0';
    free(d);
    if (!scl_attr(c->sfirst, 'h', c->attr_h, sizeof(c->attr_h)))
        c->attr_h[0] = '\0';
    return st;
}

/* The client's own XEP-0474 hash of the lists it saw. */
static void
scl_ssdp(const EVP_MD *md, const char *const *mechs, const char *const *cbs,
         char *out)
{
    const char *v[16];
    char in[512];
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl;
    size_t n = 0, o = 0;
    char *enc;

    for (; mechs[n] != NULL; n++)
        v[n] = mechs[n];
    qsort(v, n, sizeof(v[0]), sasl_cmp_test);
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(in + o, "%s%s", i ? "\x1e" : "", v[i]);
    if (cbs != NULL && cbs[0] != NULL) {
        in[o++] = '\x1f';
        for (n = 0; cbs[n] != NULL; n++)
            v[n] = cbs[n];
        qsort(v, n, sizeof(v[0]), sasl_cmp_test);
        for (size_t i = 0; i < n; i++)
            o += (size_t)sprintf(in + o, "%s%s", i ? "\x1e" : "", v[i]);
    }
    EVP_Digest(in, o, h, &hl, md, NULL);
    enc = b64(h, hl);
    strcpy(out, enc);
    free(enc);
}

static cbsrc_t two_cb = {
    {"tls-server-end-point", "tls-exporter", NULL},
    {"server end point hash 32 bytes!!", "exporter keying material 32 b..."},
    {32, 32, 0}};

static const struct {
    const char *mech;
    int tls;
    cbsrc_t *cb;
    int cbi; /* binding used with -PLUS */
} ssdp_cases[] = {
    {"SCRAM-SHA-256", 0, NULL, 0},
    {"SCRAM-SHA-1", 0, NULL, 0},
    {"SCRAM-SHA-256", 1, NULL, 0},
    {"SCRAM-SHA-1", 1, &exporter, 0},
    {"SCRAM-SHA-256", 1, &two_cb, 0},
    {"SCRAM-SHA-256-PLUS", 1, &two_cb, 0}, /* tls-server-end-point */
    {"SCRAM-SHA-256-PLUS", 1, &two_cb, 1}, /* tls-exporter */
    {"SCRAM-SHA-1-PLUS", 1, &two_cb, 0},
    {"SCRAM-SHA-1-PLUS", 1, &two_cb, 1},
    {"SCRAM-SHA-1-PLUS", 1, &unique, 0},
};

/* h= is the hash of what was advertised (SASL1 <mechanisms/> and SASL2
 * <authentication/> list roost_sasl_mechs(); XEP-0440 lists cb_types),
 * the exchange completes with it signed, and a client that saw a
 * downgraded list computes a different hash. */
START_TEST(test_ssdp)
{
    roost_sasl_t *s = new_server(ssdp_cases[_i].tls, ssdp_cases[_i].cb, 0);
    const char *mech = ssdp_cases[_i].mech, *out, *cond;
    cbsrc_t *cb = ssdp_cases[_i].cb;
    int plus = strstr(mech, "-PLUS") != NULL, k = ssdp_cases[_i].cbi;
    const char *down[8];
    char gs2[64], want[128], v[128], *fin;
    scl_t c = {.pass = PASS};
    size_t n = 0;

    if (plus)
        snprintf(gs2, sizeof(gs2), "p=%s,,", cb->type[k]);
    else
        strcpy(gs2, "n,,");
    ck_assert_int_eq(scl_start(s, &c, mech, gs2, "alice", &cond),
                     ROOST_SASL_CONTINUE);
    scl_ssdp(c.md, roost_sasl_mechs(s),
             ssdp_cases[_i].tls && cb ? cb->type : NULL, want);
    ck_assert_msg(strcmp(c.attr_h, want) == 0, "h=%s, want %s", c.attr_h, want);
    /* A MITM that stripped -PLUS (and XEP-0440) leaves the client with
     * another list, hence another hash: the client aborts. */
    for (int i = 0; roost_sasl_mechs(s)[i] != NULL; i++) {
        if (strstr(roost_sasl_mechs(s)[i], "-PLUS") == NULL &&
            strcmp(roost_sasl_mechs(s)[i], "SCRAM-SHA-256") != 0)
            down[n++] = roost_sasl_mechs(s)[i];
    }
    down[n] = NULL;
    scl_ssdp(c.md, down, NULL, want);
    ck_assert_str_ne(c.attr_h, want);
    fin =
        scl_final(&c, gs2, plus ? cb->data[k] : NULL, plus ? cb->len[k] : 0, v);
    ck_assert_int_eq(raw_step(s, NULL, fin, strlen(fin), &out, &cond),
                     ROOST_SASL_SUCCESS);
    free(fin);
    {
        unsigned len;
        unsigned char *d = unb64(out, &len);

        ck_assert_int_eq(len, strlen(v));
        ck_assert_int_eq(memcmp(d, v, len), 0);
        free(d);
    }
    ck_assert_str_eq(roost_sasl_user(s), "alice");
    roost_sasl_free(s);
}
END_TEST

/* h is signed: a server-first-message altered on the way (h swapped for
 * the hash of a downgraded list, or removed) makes the proof fail. */
START_TEST(test_ssdp_tampered)
{
    roost_sasl_t *s = new_server(1, &exporter, 0);
    const char *out, *cond;
    scl_t c = {.pass = PASS};
    char v[128], *fin, *h;

    ck_assert_int_eq(scl_start(s, &c, "SCRAM-SHA-256", "n,,", "alice", &cond),
                     ROOST_SASL_CONTINUE);
    h = strstr(c.sfirst, ",h=");
    ck_assert_ptr_nonnull(h);
    if (_i == 0)
        h[4] = h[4] == 'A' ? 'B' : 'A';
    else
        *h = '\0';
    fin = scl_final(&c, "n,,", NULL, 0, v);
    ck_assert_int_eq(raw_step(s, NULL, fin, strlen(fin), &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_str_eq(cond, "not-authorized");
    free(fin);
    roost_sasl_free(s);
}
END_TEST

/* Client-final-messages built by hand (after a valid client-first). */
static const struct {
    const char *name;
    int mode; /* 0: replace the whole message; see below */
    const char *msg;
    const char *want;
} final_cases[] = {
    {"wrong proof", 1, NULL, "not-authorized"},
    {"proof too short", 2, NULL, "not-authorized"},
    {"wrong nonce", 3, NULL, "not-authorized"},
    {"wrong c (other gs2 header)", 4, NULL, "not-authorized"},
    {"p not last", 5, NULL, "not-authorized"},
    {"bad base64 proof", 0, "c=biws,r=x,p=!!!!", "not-authorized"},
    {"no proof", 0, "c=biws,r=x", "not-authorized"},
    {"empty", 0, "", "not-authorized"},
    {"NUL", 6, NULL, "not-authorized"},
    {"r first", 0, "r=x,c=biws,p=AAAA", "not-authorized"},
};

START_TEST(test_scram_final_bad)
{
    roost_sasl_t *s = new_server(0, NULL, 0);
    const char *out, *cond;
    scl_t c = {.pass = PASS};
    char v[128], msg[512], *fin, *p;
    size_t len;

    ck_assert_int_eq(scl_start(s, &c, "SCRAM-SHA-1", "n,,", "alice", &cond),
                     ROOST_SASL_CONTINUE);
    fin = scl_final(&c, "n,,", NULL, 0, v);
    snprintf(msg, sizeof(msg), "%s", fin);
    p = strstr(msg, ",p=") + 3;
    switch (final_cases[_i].mode) {
    case 0: snprintf(msg, sizeof(msg), "%s", final_cases[_i].msg); break;
    case 1: *p = *p == 'A' ? 'B' : 'A'; break;
    case 2: strcpy(p, "AAAA"); break;
    case 3: msg[strlen("c=biws,r=") + 2] ^= 1; break;
    case 4:
        /* "y,," instead of "n,," */
        memcpy(msg, "c=eSws", 6);
        break;
    case 5: strcat(msg, ",x=1"); break;
    case 6: msg[8] = '\0'; break;
    }
    len = final_cases[_i].mode == 6 ? strlen(fin) : strlen(msg);
    ck_assert_int_eq(raw_step(s, NULL, msg, len, &out, &cond),
                     ROOST_SASL_FAILURE);
    ck_assert_msg(strcmp(cond, final_cases[_i].want) == 0, "%s: %s",
                  final_cases[_i].name, cond);
    ck_assert_ptr_null(roost_sasl_user(s));
    free(fin);
    roost_sasl_free(s);
}
END_TEST

/* Client-first-messages built by hand. */
static const struct {
    const char *name, *mech;
    int tls;
    cbsrc_t *cb;
    const char *msg;
    const char *want; /* NULL: challenge */
} first_cases[] = {
#define F(name, mech, tls, cb, msg, want)                                      \
    {                                                                          \
        name, mech, tls, cb, msg, want                                         \
    }
    F("ok", "SCRAM-SHA-256", 0, NULL, "n,,n=alice,r=abc", NULL),
    F("ok with extension", "SCRAM-SHA-256", 0, NULL, "n,,n=alice,r=abc,x=1",
      NULL),
    F("escaped name", "SCRAM-SHA-256", 0, NULL, "n,,n=a=2Cb=3Dc,r=abc", NULL),
    F("bad escape", "SCRAM-SHA-256", 0, NULL, "n,,n=al=ice,r=abc",
      "malformed-request"),
    F("escape cut", "SCRAM-SHA-256", 0, NULL, "n,,n=alice=2,r=abc",
      "malformed-request"),
    F("empty name", "SCRAM-SHA-256", 0, NULL, "n,,n=,r=abc",
      "malformed-request"),
    F("no nonce", "SCRAM-SHA-256", 0, NULL, "n,,n=alice", "malformed-request"),
    F("empty nonce", "SCRAM-SHA-256", 0, NULL,
      "n,,n=alice,r=", "malformed-request"),
    F("nonce not printable", "SCRAM-SHA-256", 0, NULL, "n,,n=alice,r=a\x7f",
      "malformed-request"),
    F("trailing comma", "SCRAM-SHA-256", 0, NULL, "n,,n=alice,r=abc,",
      "malformed-request"),
    F("bad extension", "SCRAM-SHA-256", 0, NULL, "n,,n=alice,r=abc,1=x",
      "malformed-request"),
    F("r before n", "SCRAM-SHA-256", 0, NULL, "n,,r=abc,n=alice",
      "malformed-request"),
    F("mandatory extension", "SCRAM-SHA-256", 0, NULL, "n,,m=ext,n=alice,r=abc",
      "malformed-request"),
    F("no gs2 header", "SCRAM-SHA-256", 0, NULL, "n=alice,r=abc",
      "malformed-request"),
    F("bad authzid field", "SCRAM-SHA-256", 0, NULL, "n,b=bob,n=alice,r=abc",
      "malformed-request"),
    F("empty authzid", "SCRAM-SHA-256", 0, NULL, "n,a=,n=alice,r=abc",
      "malformed-request"),
    F("gs2 flag only", "SCRAM-SHA-256", 0, NULL, "n,", "malformed-request"),
    F("p= empty name", "SCRAM-SHA-256-PLUS", 1, &exporter, "p=,,n=alice,r=abc",
      "malformed-request"),
    F("p= tls-server-end-point not ours", "SCRAM-SHA-256-PLUS", 1, &exporter,
      "p=tls-server-end-point,,n=alice,r=abc", "not-authorized"),
    F("p= ok", "SCRAM-SHA-1-PLUS", 1, &two_cb,
      "p=tls-server-end-point,,n=alice,r=abc", NULL),
    F("y with two types", "SCRAM-SHA-1", 1, &two_cb, "y,,n=alice,r=abc",
      "not-authorized"),
    F("n on -PLUS", "SCRAM-SHA-1-PLUS", 1, &two_cb, "n,,n=alice,r=abc",
      "malformed-request"),
#undef F
};

START_TEST(test_scram_first)
{
    roost_sasl_t *s = new_server(first_cases[_i].tls, first_cases[_i].cb, 0);
    const char *out, *cond;
    roost_sasl_status_t st =
        raw_step(s, first_cases[_i].mech, first_cases[_i].msg,
                 strlen(first_cases[_i].msg), &out, &cond);

    if (first_cases[_i].want == NULL) {
        ck_assert_msg(st == ROOST_SASL_CONTINUE, "%s: %s", first_cases[_i].name,
                      cond);
    } else {
        ck_assert_msg(st == ROOST_SASL_FAILURE, "%s: %d", first_cases[_i].name,
                      st);
        ck_assert_msg(strcmp(cond, first_cases[_i].want) == 0, "%s: %s",
                      first_cases[_i].name, cond);
    }
    roost_sasl_free(s);
}
END_TEST

/* An authzid naming another user fails even with the right proof; one
 * naming the user itself is fine. */
START_TEST(test_scram_authzid)
{
    static const struct {
        const char *gs2;
        roost_sasl_status_t st;
    } c2[] = {{"n,a=bob,", ROOST_SASL_FAILURE},
              {"n,a=bob@" HOST ",", ROOST_SASL_FAILURE},
              {"n,a=alice@example.org,", ROOST_SASL_FAILURE},
              {"n,a=alice,", ROOST_SASL_SUCCESS},
              {"n,a=alice@" HOST ",", ROOST_SASL_SUCCESS}};
    roost_sasl_t *s = new_server(0, NULL, 0);
    const char *out, *cond;
    scl_t c = {.pass = PASS};
    char v[128], *fin;
    roost_sasl_status_t st;

    ck_assert_int_eq(
        scl_start(s, &c, "SCRAM-SHA-256", c2[_i].gs2, "alice", &cond),
        ROOST_SASL_CONTINUE);
    fin = scl_final(&c, c2[_i].gs2, NULL, 0, v);
    st = raw_step(s, NULL, fin, strlen(fin), &out, &cond);
    ck_assert_int_eq(st, c2[_i].st);
    if (st == ROOST_SASL_FAILURE)
        ck_assert_str_eq(cond, "invalid-authzid");
    else
        ck_assert_str_eq(roost_sasl_user(s), "alice");
    free(fin);
    roost_sasl_free(s);
}
END_TEST

/* -PLUS with each binding type: the data must be the server's. */
START_TEST(test_scram_plus_types)
{
    roost_sasl_t *s = new_server(1, &two_cb, 0);
    const char *out, *cond;
    scl_t c = {.pass = PASS};
    int k = _i / 2, bad = _i % 2;
    unsigned char data[32];
    char gs2[64], v[128], *fin;

    snprintf(gs2, sizeof(gs2), "p=%s,,", two_cb.type[k]);
    memcpy(data, two_cb.data[bad ? 1 - k : k], 32);
    ck_assert_int_eq(
        scl_start(s, &c, "SCRAM-SHA-256-PLUS", gs2, "alice", &cond),
        ROOST_SASL_CONTINUE);
    fin = scl_final(&c, gs2, data, 32, v);
    if (bad) {
        ck_assert_int_eq(raw_step(s, NULL, fin, strlen(fin), &out, &cond),
                         ROOST_SASL_FAILURE);
        ck_assert_str_eq(cond, "not-authorized");
    } else {
        ck_assert_int_eq(raw_step(s, NULL, fin, strlen(fin), &out, &cond),
                         ROOST_SASL_SUCCESS);
    }
    free(fin);
    roost_sasl_free(s);
}
END_TEST

/* --- FAST: HT-SHA-256-* (core/fast.c) --- */

#define AGENT "9d3b2a10-agent"

static const unsigned char cb_a[32] = "exporter-or-end-point-data-A...";
static const unsigned char cb_b[32] = "exporter-or-end-point-data-B...";
static const unsigned char cb_u[12] = "finished-12";

#define FAST_LIFE (INT64_C(3600) * 1000) /* the token lifetime in force */

static int64_t
fast_future(void)
{
    return (int64_t)time(NULL) * 1000 + 3600 * 1000;
}

/* HMAC-SHA-256(token, label || cb), base64. */
static void
fast_mac64(const char *token, const char *label, const unsigned char *cb,
           size_t cblen, char out[64])
{
    unsigned char msg[128], mac[32];
    unsigned int len = sizeof(mac);

    memcpy(msg, label, strlen(label));
    if (cblen > 0) /* NONE: cb is NULL */
        memcpy(msg + strlen(label), cb, cblen);
    HMAC(EVP_sha256(), token, (int)strlen(token), msg, strlen(label) + cblen,
         mac, &len);
    EVP_EncodeBlock((unsigned char *)out, mac, 32);
}

/* The initiator's message "user NUL HMAC(token, 'Initiator' || cb)". */
static void
fast_ir(const char *user, const char *token, const unsigned char *cb,
        size_t cblen, char out[128])
{
    unsigned char raw[80], msg[128], mac[32];
    unsigned int len = sizeof(mac);
    size_t n = strlen(user);

    memcpy(msg, "Initiator", 9);
    if (cblen > 0) /* NONE: cb is NULL */
        memcpy(msg + 9, cb, cblen);
    HMAC(EVP_sha256(), token, (int)strlen(token), msg, 9 + cblen, mac, &len);
    memcpy(raw, user, n);
    raw[n] = '\0';
    memcpy(raw + n + 1, mac, 32);
    EVP_EncodeBlock((unsigned char *)out, raw, (int)(n + 1 + 32));
}

static int
fast_try(const char *mech, const char *token, const unsigned char *ccb,
         size_t ccblen, const unsigned char *scb, size_t scblen, char *add_out)
{
    char ir[128], *user = NULL, *add = NULL;
    int rc;

    int rotate;

    fast_ir("alice", token, ccb, ccblen, ir);
    rc = roost_fast_verify(HOST, AGENT, mech, ir, scb, scblen, 0, FAST_LIFE,
                           &rotate, &user, &add);
    ck_assert_int_eq(rotate, 0); /* tokens here live an hour of FAST_LIFE */
    if (rc == 0) {
        ck_assert_str_eq(user, "alice");
        if (add_out != NULL)
            snprintf(add_out, 64, "%s", add);
    } else {
        ck_assert_ptr_null(user);
        ck_assert_ptr_null(add);
    }
    roost_free(user);
    roost_free(add);
    return rc;
}

/* A token issued for mech_issued, used with mech_used; the client hashes
 * ccb, the server's connection has scb. */
static const struct {
    const char *issued, *used;
    const unsigned char *ccb, *scb;
    size_t ccblen, scblen;
    int ok;
} fast_cases[] = {
    {"HT-SHA-256-EXPR", "HT-SHA-256-EXPR", cb_a, cb_a, 32, 32, 1},
    {"HT-SHA-256-ENDP", "HT-SHA-256-ENDP", cb_a, cb_a, 32, 32, 1},
    {"HT-SHA-256-UNIQ", "HT-SHA-256-UNIQ", cb_u, cb_u, 12, 12, 1},
    {"HT-SHA-256-NONE", "HT-SHA-256-NONE", NULL, NULL, 0, 0, 1},
    /* another connection's binding (a relayed token hash) */
    {"HT-SHA-256-EXPR", "HT-SHA-256-EXPR", cb_b, cb_a, 32, 32, 0},
    {"HT-SHA-256-ENDP", "HT-SHA-256-ENDP", cb_a, cb_b, 32, 32, 0},
    {"HT-SHA-256-UNIQ", "HT-SHA-256-UNIQ", cb_a, cb_u, 32, 12, 0},
    /* the client left the binding out */
    {"HT-SHA-256-EXPR", "HT-SHA-256-EXPR", NULL, cb_a, 0, 32, 0},
    /* XEP-0484: a token only with the mechanism it was issued for */
    {"HT-SHA-256-EXPR", "HT-SHA-256-NONE", NULL, NULL, 0, 0, 0},
    {"HT-SHA-256-ENDP", "HT-SHA-256-EXPR", cb_a, cb_a, 32, 32, 0},
    {"HT-SHA-256-NONE", "HT-SHA-256-UNIQ", cb_u, cb_u, 12, 12, 0},
};

START_TEST(test_fast_cb)
{
    const char *tok = "tok-0123456789abcdefghijklmnopqrstuvwxyz";
    char add[64], want[64];

    ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                          fast_cases[_i].issued, tok,
                                          fast_future()),
                     0);
    if (!fast_cases[_i].ok) {
        ck_assert_int_eq(fast_try(fast_cases[_i].used, tok, fast_cases[_i].ccb,
                                  fast_cases[_i].ccblen, fast_cases[_i].scb,
                                  fast_cases[_i].scblen, NULL),
                         -ROOST_EAUTH);
        /* Still there for its right use (the binding the server has;
         * NONE has none). */
        if (strcmp(fast_cases[_i].issued, "HT-SHA-256-NONE") == 0)
            ck_assert_int_eq(
                fast_try(fast_cases[_i].issued, tok, NULL, 0, NULL, 0, NULL),
                0);
        else
            ck_assert_int_eq(
                fast_try(fast_cases[_i].issued, tok, cb_a, 32, cb_a, 32, NULL),
                0);
        return;
    }
    ck_assert_int_eq(fast_try(fast_cases[_i].used, tok, fast_cases[_i].ccb,
                              fast_cases[_i].ccblen, fast_cases[_i].scb,
                              fast_cases[_i].scblen, add),
                     0);
    /* Mutual authentication over the same binding. */
    fast_mac64(tok, "Responder", fast_cases[_i].scb, fast_cases[_i].scblen,
               want);
    ck_assert_str_eq(add, want);
}
END_TEST

/* Each slot keeps its own mechanism: a channel-bound token that became
 * 'current' stays bound after a HT-SHA-256-NONE token is issued as
 * 'new' (one mechanism per record would let it pass unbound). */
START_TEST(test_fast_slot_mechs)
{
    const char *ta = "token-A-0123456789abcdefghijklmnopqrstu";
    const char *tb = "token-B-0123456789abcdefghijklmnopqrstu";

    ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                          "HT-SHA-256-EXPR", ta, fast_future()),
                     0);
    ck_assert_int_eq(fast_try("HT-SHA-256-EXPR", ta, cb_a, 32, cb_a, 32, NULL),
                     0); /* ta is 'current' now */
    ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                          "HT-SHA-256-NONE", tb, fast_future()),
                     0);
    ck_assert_int_eq(fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
                     -ROOST_EAUTH);
    ck_assert_int_eq(fast_try("HT-SHA-256-EXPR", ta, cb_a, 32, cb_a, 32, NULL),
                     0);
    ck_assert_int_eq(fast_try("HT-SHA-256-EXPR", tb, cb_a, 32, cb_a, 32, NULL),
                     -ROOST_EAUTH);
    ck_assert_int_eq(fast_try("HT-SHA-256-NONE", tb, NULL, 0, NULL, 0, NULL),
                     0);
}
END_TEST

/* A record written before the channel-binding mechanisms (no per-slot
 * mechanism): its tokens stay HT-SHA-256-NONE tokens. */
START_TEST(test_fast_old_record)
{
    roost_store_t *st = roost_storage_store(HOST, "fast", ROOST_STORE_MAP);
    const char *tc = "token-C-0123456789abcdefghijklmnopqrstu";
    char v[256];
    int n = snprintf(v, sizeof(v), "HT-SHA-256-NONE\n%s\n%lld\n-\n0", tc,
                     (long long)fast_future());

    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(roost_store_set(st, "alice", AGENT, v, (size_t)n), 0);
    roost_store_close(st);
    ck_assert_int_eq(fast_try("HT-SHA-256-EXPR", tc, cb_a, 32, cb_a, 32, NULL),
                     -ROOST_EAUTH);
    ck_assert_int_eq(fast_try("HT-SHA-256-NONE", tc, NULL, 0, NULL, 0, NULL),
                     0);
}
END_TEST

/* XEP-0484 §5.2: a token issued before the password changed, or for an
 * account that was deleted (and perhaps created again by someone else),
 * or past its expiry, fails with credentials-expired (-ROOST_EDENIED), not
 * as an unknown token, and is forgotten. */
START_TEST(test_fast_untrusted)
{
    const char *ta = "token-A-0123456789abcdefghijklmnopqrstu";
    const char *tb = "token-B-0123456789abcdefghijklmnopqrstu";
    int64_t past = (int64_t)time(NULL) * 1000 - 1000;

    switch (_i) {
    case 0: /* password changed after the token was issued */
        ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                              "HT-SHA-256-NONE", ta,
                                              fast_future()),
                         0);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL), 0);
        ck_assert_int_eq(roost_auth_set_password(HOST, "alice", "new!", ITER),
                         0);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
            -ROOST_EDENIED);
        /* forgotten: now simply unknown */
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
            -ROOST_EAUTH);
        break;
    case 1: /* account deleted, then created again */
        ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                              "HT-SHA-256-NONE", ta,
                                              fast_future()),
                         0);
        ck_assert_int_eq(roost_auth_delete(HOST, "alice"), 0);
        ck_assert_int_eq(roost_auth_create(HOST, "alice", PASS, ITER), 0);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
            -ROOST_EDENIED);
        break;
    case 2: /* account deleted: no token for it */
        ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                              "HT-SHA-256-NONE", ta,
                                              fast_future()),
                         0);
        ck_assert_int_eq(roost_auth_delete(HOST, "alice"), 0);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
            -ROOST_EDENIED);
        ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                              "HT-SHA-256-NONE", tb,
                                              fast_future()),
                         -ROOST_ENOTFOUND);
        break;
    case 3: /* expired */
        ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                              "HT-SHA-256-NONE", ta, past),
                         0);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
            -ROOST_EDENIED);
        break;
    case 4: /* a 'current' token from before a password change does not
             * survive the next token issued after it */
        ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                              "HT-SHA-256-NONE", ta,
                                              fast_future()),
                         0);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
            0); /* ta is 'current' */
        ck_assert_int_eq(roost_auth_set_password(HOST, "alice", "new!", ITER),
                         0);
        ck_assert_int_eq(roost_fast_store_new(HOST, "alice", AGENT,
                                              "HT-SHA-256-NONE", tb,
                                              fast_future()),
                         0);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", ta, NULL, 0, NULL, 0, NULL),
            -ROOST_EAUTH);
        ck_assert_int_eq(
            fast_try("HT-SHA-256-NONE", tb, NULL, 0, NULL, 0, NULL), 0);
        break;
    }
}
END_TEST

/* XEP-0484 §3.5: a token in the last half of its lifetime asks for
 * rotation; one being invalidated never does. */
START_TEST(test_fast_rotate)
{
    const char *ta = "token-A-0123456789abcdefghijklmnopqrstu";
    char ir[128], *user = NULL, *add = NULL;
    int64_t now = (int64_t)time(NULL) * 1000;
    /* _i 0: 90% of the lifetime left; 1: 10% left; 2: 10% left but
     * invalidating */
    int64_t exp = now + (_i == 0 ? FAST_LIFE / 10 * 9 : FAST_LIFE / 10);
    int rotate = -1;

    ck_assert_int_eq(
        roost_fast_store_new(HOST, "alice", AGENT, "HT-SHA-256-NONE", ta, exp),
        0);
    fast_ir("alice", ta, NULL, 0, ir);
    ck_assert_int_eq(roost_fast_verify(HOST, AGENT, "HT-SHA-256-NONE", ir, NULL,
                                       0, _i == 2, FAST_LIFE, &rotate, &user,
                                       &add),
                     0);
    ck_assert_int_eq(rotate, _i == 1);
    roost_free(user);
    roost_free(add);
}
END_TEST

static Suite *
sasl_suite(void)
{
    Suite *su = suite_create("sasl");
    TCase *tc;

    tc = tcase_create("init");
    tcase_add_test(tc, test_new_before_init);
    tcase_add_test(tc, test_init_twice);
    suite_add_tcase(su, tc);

#define TC(name, fn, n)                                                        \
    tc = tcase_create(name);                                                   \
    tcase_add_checked_fixture(tc, setup, teardown);                            \
    tcase_set_timeout(tc, 30);                                                 \
    tcase_add_loop_test(tc, fn, 0, n);                                         \
    suite_add_tcase(su, tc)

    TC("mechs", test_mechs, N(mech_cases));
    TC("success", test_success, N(ok_cases));
    TC("failure", test_failure, N(fail_cases));
    TC("authzid_self", test_authzid_self, 3);
    TC("raw_messages", test_raw, N(raw_cases));
    TC("scram_bad_final", test_scram_bad_final, 3);
    TC("unknown_user_salt", test_unknown_user_salt, 1);
    TC("mech_refused", test_mech_refused, N(mechfail_cases));
    TC("bad_base64_auth", test_bad_base64_auth, N(bad_b64));
    TC("bad_base64_response", test_bad_base64_response, N(bad_b64));
    TC("base64_padding", test_base64_padding, 1);
    TC("oversized", test_oversized, 1);
    TC("empty_initial", test_empty_initial, 1);
    TC("retry", test_retry_after_failure, 1);
    TC("out_of_order", test_steps_out_of_order, 1);
    TC("anonymous", test_anonymous, 1);
    TC("storage_down", test_storage_down, 1);
    TC("scram_known_answer", test_scram_known_answer, N(kat_cases));
    TC("ssdp_vector", test_ssdp_vector, 1);
    TC("ssdp", test_ssdp, N(ssdp_cases));
    TC("ssdp_tampered", test_ssdp_tampered, 2);
    TC("scram_final_bad", test_scram_final_bad, N(final_cases));
    TC("scram_first", test_scram_first, N(first_cases));
    TC("scram_authzid", test_scram_authzid, 5);
    TC("scram_plus_types", test_scram_plus_types, 4);
    TC("fast_cb", test_fast_cb, N(fast_cases));
    TC("fast_slot_mechs", test_fast_slot_mechs, 1);
    TC("fast_old_record", test_fast_old_record, 1);
    TC("fast_untrusted", test_fast_untrusted, 5);
    TC("fast_rotate", test_fast_rotate, 3);
#undef TC
    return su;
}

int
main(void)
{
    SRunner *sr = srunner_create(sasl_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
