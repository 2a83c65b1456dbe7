/* tests/unit/check_auth.c: core/auth.c (accounts, SCRAM secrets).
 *
 * The SCRAM derivation is checked against the example exchanges of
 * RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256) the way a
 * server uses the stored keys: recover ClientKey from the RFC's ClientProof
 * and compare H(ClientKey) with StoredKey, and recompute ServerSignature.
 * Account tests run on both storage backends; the SQLite file is searched
 * for the plaintext password. */
#include <check.h>
#include <ftw.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "log.h"
#include "storage.h"

static const char *const drivers[] = {"sqlite", "memory"};
#define NDRIVERS ((int)(sizeof(drivers) / sizeof(drivers[0])))

static char tmpdir[] = "/tmp/check_auth.XXXXXX";
static char dbpath[512];

static void
backend_open(int i)
{
    static int seq;
    char *err = NULL;
    int r;

    roost_storage_shutdown();
    snprintf(dbpath, sizeof(dbpath), "%s/%s-%d-%d.db", tmpdir, drivers[i],
             (int)getpid(), seq++);
    r = roost_storage_init(drivers[i], dbpath, &err);
    ck_assert_msg(r == 0, "init %s: %s", drivers[i], err ? err : "?");
}

/* Decodes padded base64; returns the length. */
static size_t
b64dec(const char *in, unsigned char *out)
{
    size_t n = strlen(in);
    int r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);

    ck_assert_int_ge(r, 0);
    r -= (n > 0 && in[n - 1] == '=') + (n > 1 && in[n - 2] == '=');
    return (size_t)r;
}

static void
b64enc(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* ---- RFC vectors ---- */

static const struct {
    const char *mech, *salt;
    const char *client_first_bare, *server_first, *client_final_noproof;
    const char *proof, *server_sig;
} vectors[] = {
    {"SCRAM-SHA-1", "QSXCR+Q6sek8bf92", "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,"
     "i=4096",
     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
     "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ="},
    {"SCRAM-SHA-256",
     "W22ZaJ0SNY7soEsUEjb6gQ==", "n=user,r=rOprNGfwEbeRWgbNEkqO",
     "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
     "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
     "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
     "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
};

/* What a SCRAM server does with StoredKey and ServerKey (RFC 5802 §3):
 * checks a ClientProof and produces ServerSignature. */
START_TEST(test_rfc_vectors)
{
    const EVP_MD *md = _i == 0 ? EVP_sha1() : EVP_sha256();
    unsigned char salt[64], stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
    unsigned char proof[64], sig[EVP_MAX_MD_SIZE], key[EVP_MAX_MD_SIZE];
    unsigned char hkey[EVP_MAX_MD_SIZE];
    char authmsg[512], b64[128];
    size_t saltlen, keylen, prooflen;
    unsigned int len;

    saltlen = b64dec(vectors[_i].salt, salt);
    ck_assert_int_eq(roost_auth_scram_keys(vectors[_i].mech, "pencil", salt,
                                           saltlen, 4096, stored, server,
                                           &keylen),
                     0);
    ck_assert_uint_eq(keylen, (size_t)EVP_MD_get_size(md));
    snprintf(authmsg, sizeof(authmsg), "%s,%s,%s",
             vectors[_i].client_first_bare, vectors[_i].server_first,
             vectors[_i].client_final_noproof);
    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) */
    prooflen = b64dec(vectors[_i].proof, proof);
    ck_assert_uint_eq(prooflen, keylen);
    HMAC(md, stored, (int)keylen, (unsigned char *)authmsg, strlen(authmsg),
         sig, &len);
    for (size_t k = 0; k < keylen; k++)
        key[k] = proof[k] ^ sig[k];
    EVP_Digest(key, keylen, hkey, NULL, md, NULL);
    ck_assert_mem_eq(hkey, stored, keylen);
    /* ServerSignature = HMAC(ServerKey, AuthMessage) */
    HMAC(md, server, (int)keylen, (unsigned char *)authmsg, strlen(authmsg),
         sig, &len);
    b64enc(sig, len, b64);
    ck_assert_str_eq(b64, vectors[_i].server_sig);
    /* a different password does not give the same keys */
    ck_assert_int_eq(roost_auth_scram_keys(vectors[_i].mech, "pencil2", salt,
                                           saltlen, 4096, hkey, sig, &keylen),
                     0);
    ck_assert_int_ne(memcmp(hkey, stored, keylen), 0);
}
END_TEST

START_TEST(test_scram_keys_args)
{
    unsigned char salt[16] = {1}, a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    size_t n;

    ck_assert_int_eq(
        roost_auth_scram_keys("SCRAM-SHA-512", "p", salt, 16, 4096, a, b, &n),
        -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_scram_keys(NULL, "p", salt, 16, 4096, a, b, &n),
                     -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_auth_scram_keys("SCRAM-SHA-1", "p", salt, 16, 0, a, b, &n),
        -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_auth_scram_keys("SCRAM-SHA-1", "p", salt, 16, 10000001, a, b, &n),
        -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_auth_scram_keys("SCRAM-SHA-1", "p", NULL, 16, 4096, a, b, &n),
        -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_auth_scram_keys("SCRAM-SHA-1", "p", salt, 0, 4096, a, b, &n),
        -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_auth_scram_keys("SCRAM-SHA-1", "", salt, 16, 4096, a, b, &n),
        -ROOST_EINVAL);
    ck_assert_int_eq(
        roost_auth_scram_keys("SCRAM-SHA-1", NULL, salt, 16, 4096, a, b, &n),
        -ROOST_EINVAL);
}
END_TEST

/* SASLprep: passwords that prepare to the same string are one password;
 * prohibited ones are refused (RFC 4013 §3 examples among them). */
static const struct {
    const char *create; /* password given to create */
    const char *verify; /* another spelling, or NULL */
    int create_result;
} prep_rows[] = {
    {"I\xc2\xadX", "IX", 0}, /* soft hyphen maps to nothing */
    {"user", "user", 0},
    {"\xc2\xaa", "a", 0},      /* NFKC: ª -> a */
    {"\xe2\x85\xa8", "IX", 0}, /* NFKC: Ⅸ -> IX */
    {"a\xc2\xa0"
     "b",
     "a b", 0},                    /* non-ASCII space -> space */
    {"\x07", NULL, -ROOST_EINVAL}, /* control character */
    {"\xd8\xa7"
     "1",
     NULL, -ROOST_EINVAL},              /* RandALCat, then not */
    {"\xff\xfe", NULL, -ROOST_EINVAL},  /* not UTF-8 */
    {"\xc2\xad", NULL, -ROOST_EINVAL},  /* prepares to nothing */
    {"d\xc8\xa1", NULL, -ROOST_EINVAL}, /* U+0221: unassigned in 3.2 */
    {"", NULL, -ROOST_EINVAL},
};

START_TEST(test_saslprep)
{
    backend_open(1);
    for (size_t k = 0; k < sizeof(prep_rows) / sizeof(prep_rows[0]); k++) {
        char user[16];

        snprintf(user, sizeof(user), "u%zu", k);
        ck_assert_msg(roost_auth_create("h", user, prep_rows[k].create, 4096) ==
                          prep_rows[k].create_result,
                      "row %zu", k);
        if (prep_rows[k].verify != NULL) {
            ck_assert_msg(
                roost_auth_verify_plain("h", user, prep_rows[k].verify) == 0,
                "row %zu verify", k);
            ck_assert_int_eq(
                roost_auth_verify_plain("h", user, prep_rows[k].create), 0);
        } else {
            ck_assert_int_eq(roost_auth_exists("h", user), 0);
        }
    }
    roost_storage_shutdown();
}
END_TEST

/* ---- accounts ---- */

typedef struct {
    char buf[256];
    int calls, stop_after;
} users_t;

static int
collect_user(void *arg, const char *user)
{
    users_t *u = arg;
    size_t n = strlen(u->buf);

    snprintf(u->buf + n, sizeof(u->buf) - n, "%s%s", n ? " " : "", user);
    return ++u->calls == u->stop_after;
}

START_TEST(test_lifecycle)
{
    users_t u = {.stop_after = -1};

    backend_open(_i);
    ck_assert_int_eq(roost_auth_exists("example.com", "alice"), 0);
    ck_assert_int_eq(roost_auth_create("example.com", "alice", "secret", 0), 0);
    ck_assert_int_eq(roost_auth_exists("example.com", "alice"), 1);
    ck_assert_int_eq(roost_auth_exists("example.org", "alice"), 0);
    ck_assert_int_eq(roost_auth_create("example.com", "alice", "other", 0),
                     -ROOST_EEXIST);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "alice", "secret"),
                     0); /* the duplicate did not overwrite */
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "alice", "Secret"),
                     -ROOST_EAUTH);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "alice", ""),
                     -ROOST_EAUTH);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "alice", "\x07"),
                     -ROOST_EAUTH);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "bob", "secret"),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_auth_verify_plain("example.org", "alice", "secret"),
                     -ROOST_ENOTFOUND);
    /* set_password */
    ck_assert_int_eq(
        roost_auth_set_password("example.com", "alice", "new", 5000), 0);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "alice", "new"), 0);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "alice", "secret"),
                     -ROOST_EAUTH);
    ck_assert_int_eq(roost_auth_set_password("example.com", "bob", "x", 0),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_auth_exists("example.com", "bob"), 0);
    ck_assert_int_eq(roost_auth_set_password("example.com", "alice", "", 0),
                     -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "alice", "new"),
                     0); /* unchanged by the refused change */
    /* users, sorted, per host */
    ck_assert_int_eq(roost_auth_create("example.com", "carol", "c", 0), 0);
    ck_assert_int_eq(roost_auth_create("example.com", "bob", "b", 0), 0);
    ck_assert_int_eq(roost_auth_create("example.org", "zed", "z", 0), 0);
    ck_assert_int_eq(roost_auth_users("example.com", collect_user, &u), 0);
    ck_assert_str_eq(u.buf, "alice bob carol");
    memset(&u, 0, sizeof(u));
    u.stop_after = 1;
    ck_assert_int_eq(roost_auth_users("example.com", collect_user, &u), 0);
    ck_assert_str_eq(u.buf, "alice");
    memset(&u, 0, sizeof(u));
    ck_assert_int_eq(roost_auth_users("nowhere", collect_user, &u), 0);
    ck_assert_str_eq(u.buf, "");
    /* delete */
    ck_assert_int_eq(roost_auth_delete("example.com", "bob"), 0);
    ck_assert_int_eq(roost_auth_delete("example.com", "bob"), -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_auth_exists("example.com", "bob"), 0);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "bob", "b"),
                     -ROOST_ENOTFOUND);
    memset(&u, 0, sizeof(u));
    ck_assert_int_eq(roost_auth_users("example.com", collect_user, &u), 0);
    ck_assert_str_eq(u.buf, "alice carol");
    /* and it can be created again */
    ck_assert_int_eq(roost_auth_create("example.com", "bob", "b2", 0), 0);
    ck_assert_int_eq(roost_auth_verify_plain("example.com", "bob", "b2"), 0);
    roost_storage_shutdown();
}
END_TEST

START_TEST(test_args)
{
    char big[1100], *s = NULL;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* no storage yet */
    ck_assert_int_eq(roost_auth_create("h", "u", "p", 0), -ROOST_ESTORAGE);
    ck_assert_int_eq(roost_auth_exists("h", "u"), -ROOST_ESTORAGE);
    backend_open(_i);
    ck_assert_int_eq(roost_auth_create(NULL, "u", "p", 0), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("", "u", "p", 0), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("h", "", "p", 0), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("h", NULL, "p", 0), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("h", big, "p", 0), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("h", "u", NULL, 0), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("h", "u", big, 0), -ROOST_EINVAL);
    big[1024] = '\0'; /* the longest password accepted */
    ck_assert_int_eq(roost_auth_create("h", "u", big, 0), 0);
    ck_assert_int_eq(roost_auth_verify_plain("h", "u", big), 0);
    ck_assert_int_eq(roost_auth_create("h", "v", "p", 4095), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("h", "v", "p", -1), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_create("h", "v", "p", 10000001), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_exists("h", "v"), 0);
    ck_assert_int_eq(roost_auth_exists("", "v"), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_delete("h", ""), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_get_scram("h", "u", "PLAIN", &s),
                     -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_get_scram("h", "nobody", "SCRAM-SHA-1", &s),
                     -ROOST_ENOTFOUND);
    ck_assert_int_eq(roost_auth_users("h", NULL, NULL), -ROOST_EINVAL);
    ck_assert_int_eq(roost_auth_users("", collect_user, NULL), -ROOST_EINVAL);
    roost_storage_shutdown();
}
END_TEST

/* The stored format is RFC 5803 exactly, and the keys in it are the ones
 * derived from the password with the stored salt and count. */
START_TEST(test_format)
{
    static const struct {
        const char *mech, *re;
        int keylen;
    } fmt[] = {
        {"SCRAM-SHA-1",
         "^SCRAM-SHA-1\\$5000:[A-Za-z0-9+/]{22}==\\$[A-Za-z0-9+/]{27}=:"
         "[A-Za-z0-9+/]{27}=$",
         20},
        {"SCRAM-SHA-256",
         "^SCRAM-SHA-256\\$5000:[A-Za-z0-9+/]{22}==\\$[A-Za-z0-9+/]{43}=:"
         "[A-Za-z0-9+/]{43}=$",
         32},
    };
    roost_store_t *s;
    char *line[2], *other, *val, salt64[64], *p;
    size_t len;

    backend_open(_i);
    ck_assert_int_eq(roost_auth_create("h", "alice", "pencil", 5000), 0);
    ck_assert_int_eq(roost_auth_create("h", "bob", "pencil", 5000), 0);
    for (int k = 0; k < 2; k++) {
        regex_t re;
        unsigned char salt[32], st[EVP_MAX_MD_SIZE], sv[EVP_MAX_MD_SIZE];
        char st64[64], sv64[64], want[256];
        size_t keylen, saltlen;

        ck_assert_int_eq(
            roost_auth_get_scram("h", "alice", fmt[k].mech, &line[k]), 0);
        ck_assert_int_eq(regcomp(&re, fmt[k].re, REG_EXTENDED | REG_NOSUB), 0);
        ck_assert_msg(regexec(&re, line[k], 0, NULL, 0) == 0, "%s", line[k]);
        regfree(&re);
        /* recompute from the stored salt */
        p = strchr(line[k], ':') + 1;
        snprintf(salt64, sizeof(salt64), "%.*s", (int)(strchr(p, '$') - p), p);
        saltlen = b64dec(salt64, salt);
        ck_assert_uint_eq(saltlen, 16);
        ck_assert_int_eq(roost_auth_scram_keys(fmt[k].mech, "pencil", salt,
                                               saltlen, 5000, st, sv, &keylen),
                         0);
        ck_assert_int_eq((int)keylen, fmt[k].keylen);
        b64enc(st, keylen, st64);
        b64enc(sv, keylen, sv64);
        snprintf(want, sizeof(want), "%s$5000:%s$%s:%s", fmt[k].mech, salt64,
                 st64, sv64);
        ck_assert_str_eq(line[k], want);
        /* the same password for bob has another salt */
        ck_assert_int_eq(roost_auth_get_scram("h", "bob", fmt[k].mech, &other),
                         0);
        ck_assert_str_ne(other, line[k]);
        roost_free(other);
    }
    /* one salt per mechanism */
    ck_assert_int_ne(strncmp(strchr(line[0], ':'), strchr(line[1], ':'), 25),
                     0);
    /* the raw value: the two lines, each ending in a newline */
    s = roost_storage_store("h", "accounts", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_get(s, "", "alice", &val, &len), 0);
    ck_assert_int_eq(asprintf(&p, "%s\n%s\n", line[0], line[1]) > 0, 1);
    ck_assert_str_eq(val, p);
    ck_assert_uint_eq(len, strlen(p));
    free(p);
    roost_free(val);
    roost_store_close(s);
    roost_free(line[0]);
    roost_free(line[1]);
    roost_storage_shutdown();
}
END_TEST

/* Damaged account values are storage errors, never a successful login. */
static const char *const bad_values[] = {
    "",
    "SCRAM-SHA-1$4096:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
    "D+CSWLOshSulAsxiupA+qs2/fTE=\n", /* no SHA-256 line */
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA\n",
    "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-256$99999999:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-256$40x6:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-256$4096:W22Z*J0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-256$4096:$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=\n",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU==\n",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    " wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-256$4096:    W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
    "SCRAM-SHA-2567$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
};

START_TEST(test_damaged)
{
    roost_store_t *s;
    char *line = NULL;
    /* the well-formed RFC 7677 secret, as a control */
    const char *good = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                       "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                       "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n";

    backend_open(1);
    s = roost_storage_store("h", "accounts", ROOST_STORE_MAP);
    ck_assert_int_eq(roost_store_set(s, "", "u", good, strlen(good)), 0);
    ck_assert_int_eq(roost_auth_verify_plain("h", "u", "pencil"), 0);
    ck_assert_int_eq(roost_auth_verify_plain("h", "u", "pencil "),
                     -ROOST_EAUTH);
    ck_assert_int_eq(roost_auth_get_scram("h", "u", "SCRAM-SHA-256", &line), 0);
    ck_assert_uint_eq(strlen(line), strlen(good) - 1);
    roost_free(line);
    for (size_t k = 0; k < sizeof(bad_values) / sizeof(bad_values[0]); k++) {
        ck_assert_int_eq(
            roost_store_set(s, "", "u", bad_values[k], strlen(bad_values[k])),
            0);
        ck_assert_msg(roost_auth_verify_plain("h", "u", "pencil") ==
                          -ROOST_ESTORAGE,
                      "value %zu", k);
        ck_assert_msg(roost_auth_get_scram("h", "u", "SCRAM-SHA-256", &line) ==
                          -ROOST_ESTORAGE,
                      "value %zu", k);
        ck_assert_int_eq(roost_auth_exists("h", "u"), 1);
    }
    roost_store_close(s);
    roost_storage_shutdown();
}
END_TEST

/* Nothing the password looks like reaches the database file. */
static int
file_has(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;
    int found;

    if (fp == NULL)
        return 0;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

START_TEST(test_no_plaintext)
{
    static const char *const pw[] = {"Corr3ct-Horse-Battery-Staple",
                                     "Tr0ub4dor&3-second-password"};
    char wal[600], *line;

    backend_open(0);
    ck_assert_int_eq(roost_auth_create("h", "alice", pw[0], 0), 0);
    ck_assert_int_eq(roost_auth_set_password("h", "alice", pw[1], 0), 0);
    ck_assert_int_eq(roost_auth_get_scram("h", "alice", "SCRAM-SHA-256", &line),
                     0);
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    /* while open (data in the WAL), then after close (checkpointed) */
    for (int round = 0; round < 2; round++) {
        ck_assert(file_has(dbpath, "accounts") || file_has(wal, "accounts"));
        ck_assert(file_has(dbpath, line + 30) || file_has(wal, line + 30));
        for (int k = 0; k < 2; k++) {
            ck_assert_msg(!file_has(dbpath, pw[k]), "%s in db", pw[k]);
            ck_assert_msg(!file_has(wal, pw[k]), "%s in wal", pw[k]);
        }
        roost_storage_shutdown();
    }
    roost_free(line);
}
END_TEST

static Suite *
auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc;

    tc = tcase_create("rfc_vectors");
    tcase_add_loop_test(tc, test_rfc_vectors, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("scram_keys_args");
    tcase_add_test(tc, test_scram_keys_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("saslprep");
    tcase_add_test(tc, test_saslprep);
    suite_add_tcase(s, tc);
    tc = tcase_create("lifecycle");
    tcase_add_loop_test(tc, test_lifecycle, 0, NDRIVERS);
    suite_add_tcase(s, tc);
    tc = tcase_create("args");
    tcase_add_loop_test(tc, test_args, 0, NDRIVERS);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_loop_test(tc, test_format, 0, NDRIVERS);
    suite_add_tcase(s, tc);
    tc = tcase_create("damaged");
    tcase_add_test(tc, test_damaged);
    suite_add_tcase(s, tc);
    tc = tcase_create("no_plaintext");
    tcase_add_test(tc, test_no_plaintext);
    suite_add_tcase(s, tc);
    return s;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int
main(void)
{
    SRunner *sr;
    int failed;

    roost_log_level = -1; /* damaged secrets are logged as errors */
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
