/* tests/modules/check_mod_ping.c: mod_ping (XEP-0199) on the fake host.
 *
 * Covers: the result to a ping (id kept, to/from swapped, no payload) for
 * a local session and for a remote sender, the disco feature, what
 * mod_ping does not answer (set, bare JIDs), and removal on unload.
 * Not for: client-to-client pings (routed by the core, tested there). */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_ping;

#define PING_GET(id)                                                           \
    "<iq type='get' id='" id "'><ping xmlns='urn:xmpp:ping'/></iq>"

static void
setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_ping, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add("alice@localhost/phone", 1, 0));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

static void
feature_seen(void *arg, const char *xmlns)
{
    if (strcmp(xmlns, "urn:xmpp:ping") == 0)
        (*(int *)arg)++;
}

START_TEST(test_result_to_session)
{
    roost_stanza_t *r;

    ck_assert_int_eq(
        harness_inject("alice@localhost/phone", "localhost", PING_GET("c2s1")),
        ROOST_HANDLED);
    ck_assert_uint_eq(harness_delivered_count("alice@localhost/phone"), 1);
    ck_assert_uint_eq(harness_sent_count(), 0);
    r = harness_delivered_stanza("alice@localhost/phone", 0);
    ck_assert_str_eq(roost_stanza_name(r), "iq");
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "c2s1");
    ck_assert_pstr_eq(roost_stanza_attr(r, "to"), "alice@localhost/phone");
    ck_assert_pstr_eq(roost_stanza_attr(r, "from"), "localhost");
    ck_assert_ptr_null(roost_stanza_first_child(r));
}
END_TEST

START_TEST(test_result_to_remote)
{
    roost_stanza_t *r;

    ck_assert_int_eq(
        harness_inject("example.net", "localhost", PING_GET("s2s1")),
        ROOST_HANDLED);
    ck_assert_uint_eq(harness_sent_count(), 1);
    r = harness_sent_stanza(0);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "s2s1");
    ck_assert_pstr_eq(roost_stanza_attr(r, "to"), "example.net");
    ck_assert_pstr_eq(roost_stanza_attr(r, "from"), "localhost");
    ck_assert_ptr_null(roost_stanza_first_child(r));
}
END_TEST

/* No 'to' means the sender's account (RFC 6120 §10.3); the server
 * answers for it, from the bare JID. */
START_TEST(test_no_to_own_account)
{
    roost_stanza_t *r;

    ck_assert_int_eq(
        harness_inject("alice@localhost/phone", NULL, PING_GET("n1")),
        ROOST_HANDLED);
    r = harness_delivered_stanza("alice@localhost/phone", 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "n1");
    ck_assert_pstr_eq(roost_stanza_attr(r, "from"), "alice@localhost");
}
END_TEST

START_TEST(test_feature)
{
    int seen = 0;

    roost_host_features(harness_mod("ping"), feature_seen, &seen);
    ck_assert_int_eq(seen, 1);
    ck_assert_int_eq(harness_feature_count(), 1);
}
END_TEST

START_TEST(test_set_unanswered)
{
    roost_stanza_t *r;

    ck_assert_int_eq(harness_inject("alice@localhost/phone", "localhost",
                                    "<iq type='set' id='s1'>"
                                    "<ping xmlns='urn:xmpp:ping'/></iq>"),
                     ROOST_PASS);
    r = harness_delivered_stanza("alice@localhost/phone", 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_pstr_eq(harness_error_cond(r), "service-unavailable");
}
END_TEST

/* Someone else's account: not the server's to answer. */
START_TEST(test_bare_jid_not_answered)
{
    roost_stanza_t *r;

    ck_assert_int_eq(
        harness_inject("example.net", "bob@localhost", PING_GET("b1")),
        ROOST_PASS);
    r = harness_sent_stanza(0);
    ck_assert_ptr_nonnull(r);
    ck_assert_pstr_eq(harness_error_cond(r), "service-unavailable");
}
END_TEST

START_TEST(test_unload)
{
    int seen = 0;
    roost_stanza_t *r;

    ck_assert_int_eq(harness_unload(harness_mod("ping")), 0);
    ck_assert_int_eq(harness_feature_count(), 0);
    ck_assert_int_eq(
        harness_inject("alice@localhost/phone", "localhost", PING_GET("u1")),
        ROOST_PASS);
    r = harness_delivered_stanza("alice@localhost/phone", 0);
    ck_assert_pstr_eq(harness_error_cond(r), "service-unavailable");
    /* Loading again works: nothing of the old instance is left. */
    ck_assert_ptr_nonnull(harness_load(&roost_module_ping, "localhost", NULL));
    roost_host_features(harness_mod("ping"), feature_seen, &seen);
    ck_assert_int_eq(seen, 1);
}
END_TEST

static Suite *
ping_suite(void)
{
    Suite *s = suite_create("mod_ping");
    TCase *tc;

    tc = tcase_create("result");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_result_to_session);
    tcase_add_test(tc, test_result_to_remote);
    tcase_add_test(tc, test_no_to_own_account);
    suite_add_tcase(s, tc);

    tc = tcase_create("advertise");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_feature);
    suite_add_tcase(s, tc);

    tc = tcase_create("not_handled");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_set_unanswered);
    tcase_add_test(tc, test_bare_jid_not_answered);
    suite_add_tcase(s, tc);

    tc = tcase_create("unload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_unload);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ping_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
