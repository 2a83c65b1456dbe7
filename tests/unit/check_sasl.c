/* tests/unit/check_sasl.c: core/sasl.c driven by Cyrus's own client side
 * (sasl_client_*) and by hand-written client messages, against accounts in
 * the memory storage backend.  Covers the mechanism list per
 * configuration, every mechanism's success path, channel binding (match,
 * mismatch, unknown type, "y" downgrade), wrong credentials, the PLAIN
 * authzid impersonation attack, base64 errors and retries. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include <roost/common.h>
#include "auth.h"
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
