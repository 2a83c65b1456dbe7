/* core/util.c: allocation wrappers that abort on exhaustion (HOUSE 12),
 * roost_strerror(), and the helpers of roost/util.h (SHA-1 and base64
 * through OpenSSL, for modules).  The only file allowed to call malloc()
 * directly.  Not for cryptography with secrets: that is core/auth.c. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <roost/util.h>

#include "log.h"

static void
util_oom(size_t n)
{
    roost_log_write(ROOST_LOG_ERROR, "core", "out of memory (%zu bytes)", n);
    abort();
}

void *
roost_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        util_oom(n);
    return p;
}

void *
roost_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (p == NULL)
        util_oom(nmemb * size);
    return p;
}

void *
roost_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        util_oom(n);
    return q;
}

char *
roost_xstrdup(const char *s)
{
    return roost_xstrndup(s, strlen(s));
}

char *
roost_xstrndup(const char *s, size_t n)
{
    char *p = roost_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void
roost_free(void *p)
{
    free(p);
}

const char *
roost_strerror(int err)
{
    static const char *const names[] = {"success",
                                        "try again",
                                        "out of memory",
                                        "invalid argument",
                                        "not found",
                                        "limit reached",
                                        "storage failure",
                                        "already exists",
                                        "I/O error",
                                        "authentication failed",
                                        "TLS failure",
                                        "configuration error",
                                        "module ABI mismatch",
                                        "denied by policy"};

    if (err < 0)
        err = -err;
    if ((size_t)err >= sizeof(names) / sizeof(names[0]))
        return "unknown error";
    return names[err];
}

void
roost_sha1(const void *data, size_t len, unsigned char out[ROOST_SHA1_LEN])
{
    unsigned int n = 0;

    /* Fails only when OpenSSL cannot allocate or has no SHA-1: both
     * exhaustion (HOUSE 12), as for roost_xmalloc. */
    if (EVP_Digest(len > 0 ? data : "", len, out, &n, EVP_sha1(), NULL) != 1 ||
        n != ROOST_SHA1_LEN)
        util_oom(len);
}

void
roost_sha1_hex(const void *data, size_t len, char out[ROOST_SHA1_HEX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[ROOST_SHA1_LEN];

    roost_sha1(data, len, d);
    for (int i = 0; i < ROOST_SHA1_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * ROOST_SHA1_LEN] = '\0';
}

/* EVP_EncodeBlock and EVP_DecodeBlock take int lengths: longer input goes
 * in chunks of whole groups (3 bytes in, 4 characters out). */
#define UTIL_B64_CHUNK (3 * 1024 * 1024)

char *
roost_base64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = roost_xmalloc((len + 2) / 3 * 4 + 1); /* the caller */
    size_t o = 0;

    out[0] = '\0';
    for (size_t i = 0; i < len; i += UTIL_B64_CHUNK) {
        size_t n = len - i < UTIL_B64_CHUNK ? len - i : UTIL_B64_CHUNK;

        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + i, (int)n);
    }
    out[o] = '\0';
    return out;
}

static int
util_b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

unsigned char *
roost_base64_decode(const char *in, size_t *len)
{
    size_t n = strlen(in), k = 0, pad = 0, o = 0;
    /* The text without whitespace: EVP_DecodeBlock takes it only at the
     * ends, and checks neither the padding nor the unused bits. */
    char *txt = roost_xmalloc(n + 1);
    unsigned char *out;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];

        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
            continue;
        if (ch == '=')
            pad++;
        else if (pad > 0 || util_b64_value(ch) < 0)
            goto bad; /* outside the alphabet, or data after '=' */
        txt[k++] = (char)ch;
    }
    if (k % 4 != 0 || pad > 2)
        goto bad;
    /* RFC 4648 §3.5: the bits the padding leaves unused are zero. */
    if ((pad == 2 && (util_b64_value((unsigned char)txt[k - 3]) & 15) != 0) ||
        (pad == 1 && (util_b64_value((unsigned char)txt[k - 2]) & 3) != 0))
        goto bad;
    out = roost_xmalloc(k / 4 * 3 + 1); /* the caller */
    for (size_t i = 0; i < k; i += 4 * (UTIL_B64_CHUNK / 3)) {
        size_t c =
            k - i < 4 * (UTIL_B64_CHUNK / 3) ? k - i : 4 * (UTIL_B64_CHUNK / 3);
        int r =
            EVP_DecodeBlock(out + o, (const unsigned char *)txt + i, (int)c);

        if (r < 0) {
            roost_free(out);
            goto bad;
        }
        o += (size_t)r;
    }
    roost_free(txt);
    o -= pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    out[o] = '\0';
    *len = o;
    return out;
bad:
    roost_free(txt);
    return NULL;
}
