/* core/pool.h: arenas.  A pool hands out memory in bump-pointer chunks
 * freed all at once, with cleanup callbacks run at destruction (HOUSE 11).
 * Freed chunk blocks of the default size are kept on a small free list so
 * a busy server does not go back to malloc per stanza. */
#ifndef ROOST_CORE_POOL_H
#define ROOST_CORE_POOL_H

#include <stddef.h>

typedef struct roost_pool roost_pool_t;

roost_pool_t *roost_pool_new(size_t block_size);   /* 0: 1 KiB, then 4 KiB */
void roost_pool_free(roost_pool_t *p);             /* runs cleanups LIFO */
void *roost_pool_alloc(roost_pool_t *p, size_t n); /* aligned 16; never NULL */
void *roost_pool_calloc(roost_pool_t *p, size_t n);
char *roost_pool_strdup(roost_pool_t *p, const char *s);
char *roost_pool_strndup(roost_pool_t *p, const char *s, size_t n);
void roost_pool_cleanup_add(roost_pool_t *p, void (*fn)(void *), void *arg);
size_t roost_pool_size(const roost_pool_t *p); /* bytes held */

#endif /* ROOST_CORE_POOL_H */
