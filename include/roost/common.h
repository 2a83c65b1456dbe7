/* roost/common.h: error codes, export macro and allocation helpers shared by
 * the core and modules.  Not for protocol errors: those are in stanza.h
 * (roost_stanza_err_t) and, for streams, in the core. */
#ifndef ROOST_COMMON_H
#define ROOST_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define ROOST_API          __attribute__((visibility("default")))
#define ROOST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ROOST_API
#define ROOST_PRINTF(a, b)
#endif

/* Functions return 0 on success or one of these, negated (-ROOST_EINVAL). */
typedef enum {
    ROOST_OK = 0,
    ROOST_EAGAIN = 1,    /* try again later (would block, busy) */
    ROOST_ENOMEM = 2,    /* a limit on memory was hit */
    ROOST_EINVAL = 3,    /* bad argument or malformed input */
    ROOST_ENOTFOUND = 4, /* no such user, key, item, host */
    ROOST_ELIMIT = 5,    /* a configured limit was reached */
    ROOST_ESTORAGE = 6,  /* the storage backend failed */
    ROOST_EEXIST = 7,    /* already exists */
    ROOST_EIO = 8,       /* I/O or system call failure */
    ROOST_EAUTH = 9,     /* authentication failed */
    ROOST_ETLS = 10,     /* TLS failure */
    ROOST_ECONFIG = 11,  /* bad configuration */
    ROOST_EABI = 12,     /* module ABI mismatch */
    ROOST_EDENIED = 13   /* refused by a policy (a privacy list) */
} roost_err_t;

/* Static string naming an error code (positive or negative). */
ROOST_API const char *roost_strerror(int err);

/* Allocation: never returns NULL; aborts the process with a log line when
 * memory is exhausted (HOUSE 12).  Free with roost_free(). */
ROOST_API void *roost_xmalloc(size_t n);
ROOST_API void *roost_xcalloc(size_t nmemb, size_t size);
ROOST_API void *roost_xrealloc(void *p, size_t n);
ROOST_API char *roost_xstrdup(const char *s);
ROOST_API char *roost_xstrndup(const char *s, size_t n);
ROOST_API void roost_free(void *p);

/* Log levels, most severe first. */
enum {
    ROOST_LOG_ERROR = 0,
    ROOST_LOG_WARN = 1,
    ROOST_LOG_INFO = 2,
    ROOST_LOG_DEBUG = 3
};

#endif /* ROOST_COMMON_H */
