/* roost/util.h: small helpers the core exports to modules so that they do
 * not carry private copies: SHA-1 (FIPS 180-4) for XEP-0084/XEP-0153
 * avatar ids and XEP-0115 verification strings, and base64 (RFC 4648 §4).
 * They are OpenSSL's, behind the core (modules link nothing but roostd).
 * Not for passwords or anything secret: SHA-1 is an identifier here, and
 * credentials stay in the core (roost/account.h). */
#ifndef ROOST_UTIL_H
#define ROOST_UTIL_H

#include <roost/common.h>

#define ROOST_SHA1_LEN      20 /* bytes of a SHA-1 digest */
#define ROOST_SHA1_HEX_SIZE 41 /* its lower-case hex, with the NUL */

/* The SHA-1 of len bytes at data (borrowed; NULL only with len 0) into
 * out. */
ROOST_API void roost_sha1(const void *data, size_t len,
                          unsigned char out[ROOST_SHA1_LEN]);
/* The same as lower-case hex, NUL-terminated, into out. */
ROOST_API void roost_sha1_hex(const void *data, size_t len,
                              char out[ROOST_SHA1_HEX_SIZE]);

/* Base64 of len bytes at data (borrowed), padded, without line breaks.
 * Returns a new NUL-terminated string: the caller roost_free()s it. */
ROOST_API char *roost_base64_encode(const void *data, size_t len);
/* Strict base64 of the NUL-terminated in (borrowed): the alphabet of
 * RFC 4648 §4 only, padded to whole groups of four, '=' only at the end,
 * unused bits zero; whitespace (space, tab, CR, LF) anywhere is skipped,
 * as vCards wrap BINVAL.  Returns the decoded bytes (at most 3/4 of
 * strlen(in), NUL-terminated for convenience) with their count in *len,
 * which the caller roost_free()s, or NULL when in is not base64.  Empty
 * input decodes to zero bytes (not NULL). */
ROOST_API unsigned char *roost_base64_decode(const char *in, size_t *len);

#endif /* ROOST_UTIL_H */
