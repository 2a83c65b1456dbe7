/* tests/fuzz/fuzz_jid.c: libFuzzer target for core/jid.c.
 *
 * Parses the input as a NUL-terminated string (bytes after an embedded NUL
 * are ignored, as a C caller would) and checks that a JID, once prepared,
 * is a fixed point: re-parsing roost_jid_full() gives the same full JID and
 * the same parts, and that roost_jid_dup() copies it faithfully.  Any
 * violation aborts.  Not a unit test: crashes it finds become cases in
 * tests/unit/check_jid.c. */
#include <stdlib.h>
#include <string.h>

#include <roost/jid.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = roost_xstrndup((const char *)data, size);
    roost_jid_t *j = roost_jid_new(s), *again, *copy;

    roost_free(s);
    if (j == NULL)
        return 0;
    again = roost_jid_new(roost_jid_full(j));
    if (again == NULL || !roost_jid_eq(j, again) ||
        !fuzz_same(roost_jid_node(j), roost_jid_node(again)) ||
        !fuzz_same(roost_jid_domain(j), roost_jid_domain(again)) ||
        !fuzz_same(roost_jid_resource(j), roost_jid_resource(again)) ||
        !fuzz_same(roost_jid_bare(j), roost_jid_bare(again)))
        abort();
    copy = roost_jid_dup(j);
    if (!roost_jid_eq(j, copy) || !roost_jid_bare_eq(j, copy))
        abort();
    roost_jid_free(again);
    roost_jid_free(copy);
    roost_jid_free(j);
    return 0;
}
