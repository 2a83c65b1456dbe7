/* core/util.c: allocation wrappers that abort on exhaustion (HOUSE 12) and
 * roost_strerror().  The only file allowed to call malloc() directly. */
#include <stdlib.h>
#include <string.h>

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
