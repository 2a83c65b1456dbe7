/* tests/unit/check_s2s.c: the parts of core/s2s.c that need no sockets:
 * dialback keys (XEP-0185).  The stream exchanges are driven over real
 * sockets by tests/integration/test_s2s.py. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "s2s.h"

/* XEP-0185 §3, the published example. */
START_TEST(test_key_vector)
{
    char key[65];

    roost_s2s_dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com",
                           "example.org", "D60000229F", key);
    ck_assert_str_eq(
        key,
        "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
}
END_TEST

/* Every input is part of the key: receiving, originating, stream id and
 * secret each change it, and the order of the domains matters. */
START_TEST(test_key_inputs)
{
    static const char *const v[][4] = {
        {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F"},
        {"other-secret", "xmpp.example.com", "example.org", "D60000229F"},
        {"s3cr3tf0rd14lb4ck", "xmpp.example.net", "example.org", "D60000229F"},
        {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.net", "D60000229F"},
        {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229E"},
        {"s3cr3tf0rd14lb4ck", "example.org", "xmpp.example.com", "D60000229F"},
    };
    char keys[6][65];

    for (int i = 0; i < 6; i++) {
        roost_s2s_dialback_key(v[i][0], v[i][1], v[i][2], v[i][3], keys[i]);
        ck_assert_uint_eq(strlen(keys[i]), 64);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(keys[i], keys[j]);
    }
}
END_TEST

static Suite *
s2s_suite(void)
{
    Suite *s = suite_create("s2s");
    TCase *tc = tcase_create("dialback_key");

    tcase_add_test(tc, test_key_vector);
    tcase_add_test(tc, test_key_inputs);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(s2s_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
