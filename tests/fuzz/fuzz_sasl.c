/* tests/fuzz/fuzz_sasl.c: libFuzzer target for core/sasl.c.  Runs one
 * roost_sasl_step() exchange per input against the account alice in the
 * memory storage backend, with the client messages taken from the input.
 *
 * Input: one configuration byte, then up to 8 messages, each a length
 * byte and that many bytes.  Configuration bits: 0 TLS, 1 channel binding
 * offered, 2 tls-unique instead of tls-exporter, 3 ANONYMOUS enabled,
 * 4-6 the mechanism named in <auth/>, 7 messages are passed as they are
 * (fuzzing the base64 decoder) instead of being base64-encoded first.
 * Checks the contract of roost_sasl_step() on every step. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <roost/common.h>
#include "auth.h"
#include "log.h"
#include "sasl.h"
#include "storage.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HOST "example.com"

static const char *const mechs[8] = {
    "SCRAM-SHA-256",    "PLAIN",     "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS", "ANONYMOUS", "SCRAM-SHA-256",      "DIGEST-MD5"};

static const char *const conds[] = {
    "not-authorized",         "invalid-mechanism",   "malformed-request",
    "mechanism-too-weak",     "encryption-required", "invalid-authzid",
    "temporary-auth-failure", "incorrect-encoding",  NULL};

static const unsigned char cbdata[32] = "fuzzing channel binding data 32";

static int
fuzz_cb(void *arg, const char *type, unsigned char *out, size_t *len)
{
    size_t n = strcmp(type, "tls-unique") == 0 ? 12 : 32;

    if (*len < n)
        return -1;
    memcpy(out, cbdata, n);
    *len = n;
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *err = NULL;

    roost_log_level = ROOST_LOG_ERROR;
    if (roost_storage_init("memory", NULL, &err) != 0 ||
        roost_sasl_init(&err) != 0 ||
        roost_auth_create(HOST, "alice", "pencil", 0) != 0)
        abort();
    return 0;
}

static void
check_result(roost_sasl_t *s, roost_sasl_status_t st, const char *out,
             const char *cond)
{
    int known = 0;

    if (out == NULL)
        abort();
    switch (st) {
    case ROOST_SASL_CONTINUE:
        if (cond != NULL || *out == '\0')
            abort();
        break;
    case ROOST_SASL_SUCCESS:
        if (cond != NULL || roost_sasl_user(s) == NULL ||
            roost_sasl_mech_used(s) == NULL)
            abort();
        break;
    case ROOST_SASL_FAILURE:
        for (int i = 0; cond != NULL && conds[i] != NULL; i++)
            known |= strcmp(cond, conds[i]) == 0;
        if (!known || *out != '\0' || roost_sasl_user(s) != NULL)
            abort();
        break;
    default: abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const exporter[] = {"tls-exporter", NULL};
    static const char *const unique[] = {"tls-unique", NULL};
    roost_sasl_t *s;
    uint8_t cfg;
    int raw;

    if (size < 1)
        return 0;
    cfg = data[0];
    raw = (cfg & 0x80) != 0;
    s = roost_sasl_new(HOST, cfg & 1,
                       (cfg & 2) ? ((cfg & 4) ? unique : exporter) : NULL,
                       fuzz_cb, NULL, (cfg & 8) != 0);
    if (s == NULL)
        abort();
    data++;
    size--;
    for (int step = 0; step < 8 && size > 0; step++) {
        size_t n = data[0];
        char *text;
        const char *out = NULL, *cond = NULL;
        roost_sasl_status_t st;

        if (n > size - 1)
            n = size - 1;
        text = malloc(n / 3 * 4 + 8);
        if (raw) {
            memcpy(text, data + 1, n);
            text[n] = '\0'; /* stops at an embedded NUL, like XML text */
        } else {
            EVP_EncodeBlock((unsigned char *)text, data + 1, (int)n);
        }
        data += n + 1;
        size -= n + 1;
        st = roost_sasl_step(s, step == 0 ? mechs[cfg >> 4 & 7] : NULL, text,
                             &out, &cond);
        free(text);
        check_result(s, st, out, cond);
        if (st != ROOST_SASL_CONTINUE)
            break;
    }
    roost_sasl_free(s);
    return 0;
}
