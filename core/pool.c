/* core/pool.c: arenas (see core/pool.h).
 *
 * A pool is a chain of malloc'd blocks carved with a bump pointer; the pool
 * header itself lives at the start of its first block, so a stanza costs
 * one block until it outgrows it.  A default pool starts with a 1 KiB
 * block and grows by 4 KiB ones: most stanzas fit in 1 KiB, and the ones
 * that are kept (a session's last presence, a user's presence state, the
 * XEP-0198 queue) are held for as long as a session lasts, where a 4 KiB
 * block per stanza was most of an idle session's memory (issue 7).
 * Requests larger than a quarter of a block get a block of their own, so
 * one big string does not waste the rest of the current block.  Blocks of
 * the two default sizes are recycled through small process-wide free
 * lists guarded by a mutex (pools are freed on worker threads too).
 *
 * Not for: freeing individual allocations, or memory shared between
 * pools.  Everything lives until roost_pool_free(). */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <roost/common.h>
#include "pool.h"

#define POOL_ALIGN         16
#define POOL_DEFAULT_BLOCK 4096
#define POOL_FIRST_BLOCK   1024 /* a default pool's first block */
#define POOL_MIN_BLOCK     256
#define POOL_FREELIST_MAX  64 /* per size: 320 KiB of idle blocks at most */

#define POOL_ALIGN_UP(v)                                                       \
    (((v) + (POOL_ALIGN - 1)) & ~(uintptr_t)(POOL_ALIGN - 1))

typedef struct pool_block {
    struct pool_block *next;
    size_t size; /* bytes of the whole malloc'd block */
} pool_block_t;

typedef struct pool_cleanup {
    struct pool_cleanup *next;
    void (*fn)(void *);
    void *arg;
} pool_cleanup_t;

struct roost_pool {
    char *pos, *end;          /* free space in the current bump block */
    pool_block_t *blocks;     /* every block, this header's block last */
    pool_cleanup_t *cleanups; /* newest first, so running them is LIFO */
    size_t block_size;
    size_t held;
};

/* Free lists of first-size [0] and default-size [1] blocks, linked
 * through ->next. */
static pthread_mutex_t pool_free_mtx = PTHREAD_MUTEX_INITIALIZER;
static pool_block_t *pool_free_list[2];
static size_t pool_free_count[2];

/* The free list for blocks of size bytes, or -1. */
static int
pool_free_class(size_t size)
{
    return size == POOL_FIRST_BLOCK ? 0 : size == POOL_DEFAULT_BLOCK ? 1 : -1;
}

static pool_block_t *
pool_block_get(size_t size)
{
    pool_block_t *b = NULL;
    int c = pool_free_class(size);

    if (c >= 0) {
        pthread_mutex_lock(&pool_free_mtx);
        b = pool_free_list[c];
        if (b != NULL) {
            pool_free_list[c] = b->next;
            pool_free_count[c]--;
        }
        pthread_mutex_unlock(&pool_free_mtx);
    }
    if (b == NULL)
        b = roost_xmalloc(size);
    b->next = NULL;
    b->size = size;
    return b;
}

static void
pool_block_put(pool_block_t *b)
{
    int c = pool_free_class(b->size);

    if (c >= 0) {
        pthread_mutex_lock(&pool_free_mtx);
        if (pool_free_count[c] < POOL_FREELIST_MAX) {
            b->next = pool_free_list[c];
            pool_free_list[c] = b;
            pool_free_count[c]++;
            b = NULL;
        }
        pthread_mutex_unlock(&pool_free_mtx);
    }
    roost_free(b);
}

/* First 16-aligned byte after the block header. */
static char *
pool_block_data(pool_block_t *b)
{
    return (char *)POOL_ALIGN_UP((uintptr_t)(b + 1));
}

/* New pool whose bump blocks are block_size bytes (at least 256; 0 = the
 * default: a 1 KiB first block, then 4 KiB blocks).  Never NULL; free with
 * roost_pool_free(). */
roost_pool_t *
roost_pool_new(size_t block_size)
{
    pool_block_t *b;
    roost_pool_t *p;
    size_t first;

    if (block_size == 0) {
        block_size = POOL_DEFAULT_BLOCK;
        first = POOL_FIRST_BLOCK;
    } else {
        if (block_size < POOL_MIN_BLOCK)
            block_size = POOL_MIN_BLOCK;
        first = block_size;
    }
    b = pool_block_get(first);
    p = (roost_pool_t *)pool_block_data(b);
    p->pos = (char *)POOL_ALIGN_UP((uintptr_t)(p + 1));
    p->end = (char *)b + first;
    p->blocks = b;
    p->cleanups = NULL;
    p->block_size = block_size;
    p->held = first;
    return p;
}

/* Runs the cleanups newest first, then releases every block.  p and all
 * memory from it are invalid afterwards.  NULL is ok. */
void
roost_pool_free(roost_pool_t *p)
{
    pool_block_t *b, *next;
    pool_cleanup_t *c;

    if (p == NULL)
        return;
    /* Cleanups may still read pool memory, so they run first. */
    while ((c = p->cleanups) != NULL) {
        p->cleanups = c->next;
        c->fn(c->arg);
    }
    /* p lives in one of these blocks: read nothing from p after this. */
    for (b = p->blocks; b != NULL; b = next) {
        next = b->next;
        pool_block_put(b);
    }
}

/* n bytes aligned to 16, valid until roost_pool_free().  Never NULL (aborts
 * on exhaustion, like roost_xmalloc). */
void *
roost_pool_alloc(roost_pool_t *p, size_t n)
{
    pool_block_t *b;
    size_t usable = p->block_size - sizeof(*b); /* of a fresh bump block */
    char *r;

    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 2)
        return roost_xmalloc(SIZE_MAX); /* aborts with a log line */
    n = POOL_ALIGN_UP(n);
    if (n <= (size_t)(p->end - p->pos)) {
        r = p->pos;
        p->pos += n;
        return r;
    }
    if (n > usable / 4) {
        /* A block of its own, behind the current one. */
        b = pool_block_get(sizeof(*b) + POOL_ALIGN + n);
        b->next = p->blocks->next;
        p->blocks->next = b;
        p->held += b->size;
        return pool_block_data(b);
    }
    b = pool_block_get(p->block_size);
    b->next = p->blocks;
    p->blocks = b;
    p->held += b->size;
    r = pool_block_data(b);
    p->pos = r + n;
    p->end = (char *)b + b->size;
    return r;
}

/* roost_pool_alloc() of n zeroed bytes. */
void *
roost_pool_calloc(roost_pool_t *p, size_t n)
{
    void *r = roost_pool_alloc(p, n);

    memset(r, 0, n);
    return r;
}

/* Copy of the NUL-terminated s in p. */
char *
roost_pool_strdup(roost_pool_t *p, const char *s)
{
    return roost_pool_strndup(p, s, strlen(s));
}

/* Copy of at most n bytes of s (fewer if s has a NUL before), terminated. */
char *
roost_pool_strndup(roost_pool_t *p, const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    char *r;

    if (nul != NULL)
        n = (size_t)(nul - s);
    r = roost_pool_alloc(p, n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

/* Registers fn(arg) to run at roost_pool_free(), after cleanups added
 * later (LIFO).  The record is allocated from p. */
void
roost_pool_cleanup_add(roost_pool_t *p, void (*fn)(void *), void *arg)
{
    pool_cleanup_t *c = roost_pool_alloc(p, sizeof(*c));

    c->fn = fn;
    c->arg = arg;
    c->next = p->cleanups;
    p->cleanups = c;
}

/* Bytes of heap held by p (whole blocks, including slack). */
size_t
roost_pool_size(const roost_pool_t *p)
{
    return p->held;
}
