/* tests/modules/check_mod_register.c: mod_register (XEP-0077) on the fake
 * host, with the real credential store (core/auth.c) on the in-memory
 * storage.
 *
 * Covers: before authentication, the stream feature and the form (§4,
 * §3.1) only with allow_registration, service-unavailable without it;
 * registration (§3.1) and the answers to a taken name (conflict), missing
 * or empty fields and bad usernames (not-acceptable); <remove/> before
 * login (registration-required); the per-address throttle, loopback
 * exempt unless registration_throttle_loopback; a client gone before the
 * account is committed.  Logged in: <registered/> (§3.1), password change
 * (§3.3) and its refusals, account removal (§3.2) with the answer before
 * the stream closes.
 * Not for: the credential format (tests/unit/check_auth.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_register;

#define HOST  "localhost"
#define PHONE "alice@localhost/phone"
#define NS    "jabber:iq:register"

/* Mirrors struct register_conf in modules/mod_register.c. */
struct register_conf_view {
    int allow_registration;
    int64_t registration_throttle;
    int registration_throttle_loopback;
};

static void
conf_open(void *c)
{
    ((struct register_conf_view *)c)->allow_registration = 1;
}

static void
conf_open_loopback(void *c)
{
    conf_open(c);
    ((struct register_conf_view *)c)->registration_throttle_loopback = 1;
}

static void
conf_open_nothrottle(void *c)
{
    conf_open(c);
    ((struct register_conf_view *)c)->registration_throttle = 0;
}

static void
setup_open(void)
{
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_register, HOST, conf_open));
}

static void
setup_closed(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_register, HOST, NULL));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

/* The last stanza delivered to the pre-auth session s. */
static roost_stanza_t *
last(const roost_session_t *s)
{
    size_t n = harness_preauth_delivered_count(s);

    ck_assert_uint_gt(n, 0);
    return harness_preauth_delivered_stanza(s, n - 1);
}

static void
assert_type(const roost_stanza_t *st, const char *type)
{
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(roost_stanza_attr(st, "type"), type);
}

static void
assert_error(const roost_stanza_t *st, const char *cond)
{
    assert_type(st, "error");
    ck_assert_ptr_nonnull(harness_error_cond(st));
    ck_assert_str_eq(harness_error_cond(st), cond);
}

/* A registration set for user/password (NULL: the field is absent). */
static int
reg(roost_session_t *s, const char *user, const char *password)
{
    char xml[512];

    snprintf(xml, sizeof(xml),
             "<iq type='set' id='r1'><query xmlns='" NS "'>%s%s%s%s%s%s"
             "</query></iq>",
             user ? "<username>" : "", user ? user : "",
             user ? "</username>" : "", password ? "<password>" : "",
             password ? password : "", password ? "</password>" : "");
    return harness_preauth_inject(s, xml);
}

/* ---- before authentication ---- */

/* §4: the feature only where registration is open; §3.1: the form. */
START_TEST(test_form)
{
    roost_session_t *s = harness_preauth_add("192.0.2.1");
    roost_stanza_t *r, *q;

    ck_assert_int_eq(harness_preauth_feature_count(), 1);
    ck_assert_int_eq(
        harness_preauth_inject(s, "<iq type='get' id='g1'><query xmlns='" NS
                                  "'/></iq>"),
        ROOST_HANDLED);
    r = last(s);
    assert_type(r, "result");
    ck_assert_str_eq(roost_stanza_attr(r, "id"), "g1");
    ck_assert_ptr_null(roost_stanza_attr(r, "to"));
    q = roost_stanza_child(r, NS, "query");
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_nonnull(roost_stanza_child(q, NS, "instructions"));
    ck_assert_ptr_nonnull(roost_stanza_child(q, NS, "username"));
    ck_assert_ptr_nonnull(roost_stanza_child(q, NS, "password"));
    ck_assert_ptr_null(roost_stanza_child(q, NS, "registered"));
}
END_TEST

/* §3.1: a server without in-band registration: service-unavailable, and
 * no stream feature. */
START_TEST(test_disabled)
{
    roost_session_t *s = harness_preauth_add("192.0.2.1");

    ck_assert_int_eq(harness_preauth_feature_count(), 0);
    harness_preauth_inject(s, "<iq type='get' id='g1'><query xmlns='" NS
                              "'/></iq>");
    assert_error(last(s), "service-unavailable");
    reg(s, "alice", "secret");
    assert_error(last(s), "service-unavailable");
    ck_assert(!harness_account_exists("alice"));
}
END_TEST

/* §3.1: the account exists once the result is out, with that password;
 * the username is nodeprepped. */
START_TEST(test_register)
{
    roost_session_t *s = harness_preauth_add("192.0.2.1");

    ck_assert_int_eq(reg(s, "Alice", "s3cret"), ROOST_HANDLED);
    assert_type(last(s), "result");
    ck_assert_str_eq(roost_stanza_attr(last(s), "id"), "r1");
    ck_assert(harness_account_exists("alice"));
    ck_assert(harness_account_check("alice", "s3cret"));
    ck_assert(!harness_account_check("alice", "other"));
    ck_assert_int_eq(harness_preauth_holds(s), 0);
}
END_TEST

/* §3.1: an existing username is a conflict, and the account keeps its
 * password. */
START_TEST(test_conflict)
{
    roost_session_t *s = harness_preauth_add("192.0.2.1");

    ck_assert_int_eq(harness_account_add("alice", "first"), 0);
    reg(s, "alice", "second");
    assert_error(last(s), "conflict");
    ck_assert(harness_account_check("alice", "first"));
    ck_assert(!harness_account_check("alice", "second"));
}
END_TEST

/* §3.1: every field required, with character data; usernames that are
 * not localparts refused. */
static const struct {
    const char *user, *password;
} unacceptable[] = {
    {NULL, "secret"}, {"alice", NULL}, {"", "secret"},
    {"alice", ""},    {"a@b", "x"},    {"a b", "x"},
};

START_TEST(test_not_acceptable)
{
    roost_session_t *s = harness_preauth_add("192.0.2.1");

    reg(s, unacceptable[_i].user, unacceptable[_i].password);
    assert_error(last(s), "not-acceptable");
    ck_assert(!harness_account_exists("alice"));
    ck_assert(!harness_account_exists("a"));
}
END_TEST

/* §3.2: nothing to remove before login. */
START_TEST(test_remove_preauth)
{
    roost_session_t *s = harness_preauth_add("192.0.2.1");

    harness_preauth_inject(s, "<iq type='set' id='x'><query xmlns='" NS
                              "'><remove/></query></iq>");
    assert_error(last(s), "registration-required");
}
END_TEST

/* The client left before the account was committed: nothing is delivered,
 * the account exists, and the hold is released. */
START_TEST(test_client_gone)
{
    roost_session_t *s = harness_preauth_add("192.0.2.1");

    harness_storage_hold(1);
    reg(s, "alice", "secret");
    ck_assert_int_eq(harness_preauth_holds(s), 1);
    harness_preauth_close(s);
    harness_storage_run();
    harness_storage_hold(0);
    ck_assert_uint_eq(harness_preauth_delivered_count(s), 0);
    ck_assert_int_eq(harness_preauth_holds(s), 0);
    ck_assert(harness_account_exists("alice"));
}
END_TEST

/* ---- the throttle ---- */

/* One registration per address and period; another address may. */
START_TEST(test_throttle)
{
    roost_session_t *a = harness_preauth_add("192.0.2.1");
    roost_session_t *b = harness_preauth_add("192.0.2.1");
    roost_session_t *c = harness_preauth_add("2001:db8::1");
    roost_stanza_t *e;

    reg(a, "alice", "secret");
    assert_type(last(a), "result");
    reg(b, "bob", "secret");
    assert_error(last(b), "policy-violation");
    e = roost_stanza_child(last(b), NULL, "error");
    ck_assert_str_eq(roost_stanza_attr(e, "type"), "wait");
    ck_assert(!harness_account_exists("bob"));
    reg(c, "carol", "secret");
    assert_type(last(c), "result");
}
END_TEST

/* A failed attempt (conflict) does not use up the address's turn. */
START_TEST(test_throttle_failure_free)
{
    roost_session_t *a = harness_preauth_add("192.0.2.1");

    ck_assert_int_eq(harness_account_add("alice", "x"), 0);
    reg(a, "alice", "secret");
    assert_error(last(a), "conflict");
    reg(a, "bob", "secret");
    assert_type(last(a), "result");
}
END_TEST

/* A second attempt while the first is in flight counts as one. */
START_TEST(test_throttle_inflight)
{
    roost_session_t *a = harness_preauth_add("192.0.2.1");
    roost_session_t *b = harness_preauth_add("192.0.2.1");

    harness_storage_hold(1);
    reg(a, "alice", "secret");
    reg(b, "bob", "secret");
    assert_error(last(b), "policy-violation");
    harness_storage_hold(0);
    harness_storage_run();
    assert_type(last(a), "result");
}
END_TEST

/* Loopback clients are not throttled by default (as Prosody's
 * registration_whitelist): 127.0.0.0/8, ::1, IPv4-mapped 127.x. */
static const char *const loopbacks[] = {"127.0.0.1", "127.1.2.3", "::1",
                                        "::ffff:127.0.0.1"};

START_TEST(test_loopback_exempt)
{
    roost_session_t *a = harness_preauth_add(loopbacks[_i]);
    roost_session_t *b = harness_preauth_add(loopbacks[_i]);

    reg(a, "alice", "secret");
    assert_type(last(a), "result");
    reg(b, "bob", "secret");
    assert_type(last(b), "result");
    ck_assert(harness_account_exists("bob"));
}
END_TEST

/* Addresses close to loopback are throttled. */
static const char *const not_loopbacks[] = {"128.0.0.1", "::2",
                                            "::ffff:128.0.0.1", "10.127.0.1"};

START_TEST(test_not_loopback)
{
    roost_session_t *a = harness_preauth_add(not_loopbacks[_i]);
    roost_session_t *b = harness_preauth_add(not_loopbacks[_i]);

    reg(a, "alice", "secret");
    assert_type(last(a), "result");
    reg(b, "bob", "secret");
    assert_error(last(b), "policy-violation");
}
END_TEST

/* registration_throttle_loopback = true: loopback is throttled too. */
START_TEST(test_loopback_throttled)
{
    roost_session_t *a, *b;

    ck_assert_ptr_nonnull(
        harness_load(&roost_module_register, HOST, conf_open_loopback));
    a = harness_preauth_add("127.0.0.1");
    b = harness_preauth_add("::1");
    reg(a, "alice", "secret");
    assert_type(last(a), "result");
    reg(a, "bob", "secret");
    assert_error(last(a), "policy-violation");
    /* ::1 is another address. */
    reg(b, "carol", "secret");
    assert_type(last(b), "result");
}
END_TEST

/* registration_throttle = 0: no limit at all. */
START_TEST(test_throttle_off)
{
    roost_session_t *a;

    ck_assert_ptr_nonnull(
        harness_load(&roost_module_register, HOST, conf_open_nothrottle));
    a = harness_preauth_add("192.0.2.1");
    reg(a, "alice", "secret");
    assert_type(last(a), "result");
    reg(a, "bob", "secret");
    assert_type(last(a), "result");
}
END_TEST

/* ---- logged in ---- */

static roost_stanza_t *
delivered_last(const char *jid)
{
    size_t n = harness_delivered_count(jid);

    ck_assert_uint_gt(n, 0);
    return harness_delivered_stanza(jid, n - 1);
}

static void
login(void)
{
    ck_assert_int_eq(harness_account_add("alice", "old"), 0);
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
}

/* §3.1: an already registered account: <registered/>, the username and
 * an empty password. */
START_TEST(test_registered)
{
    roost_stanza_t *r, *q;

    login();
    harness_inject(PHONE, NULL,
                   "<iq type='get' id='g'><query xmlns='" NS "'/></iq>");
    r = delivered_last(PHONE);
    assert_type(r, "result");
    q = roost_stanza_child(r, NS, "query");
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_nonnull(roost_stanza_child(q, NS, "registered"));
    ck_assert_str_eq(roost_stanza_child_text(q, NS, "username"), "alice");
    ck_assert_ptr_nonnull(roost_stanza_child(q, NS, "password"));
}
END_TEST

/* §3.3: the password changes; the session stays. */
START_TEST(test_password_change)
{
    login();
    harness_inject(PHONE, HOST,
                   "<iq type='set' id='p'><query xmlns='" NS
                   "'><username>alice</username><password>new</password>"
                   "</query></iq>");
    assert_type(delivered_last(PHONE), "result");
    ck_assert_str_eq(roost_stanza_attr(delivered_last(PHONE), "id"), "p");
    ck_assert(harness_account_check("alice", "new"));
    ck_assert(!harness_account_check("alice", "old"));
    ck_assert_ptr_nonnull(harness_session(PHONE));
    ck_assert_ptr_null(harness_last_close());
}
END_TEST

/* §3.3: refusals leave the password as it is. */
static const char *const bad_changes[] = {
    /* another user's name */
    "<username>bob</username><password>new</password>",
    /* an empty password MUST NOT change it */
    "<username>alice</username><password></password>",
    "<username>alice</username>",
    "<password>new</password>",
};

START_TEST(test_password_refused)
{
    char xml[512];

    login();
    snprintf(xml, sizeof(xml),
             "<iq type='set' id='p'><query xmlns='" NS "'>%s</query></iq>",
             bad_changes[_i]);
    harness_inject(PHONE, NULL, xml);
    assert_error(delivered_last(PHONE), "bad-request");
    ck_assert(harness_account_check("alice", "old"));
}
END_TEST

/* §3.2: removal: the result reaches the requester, then the stream is
 * closed with not-authorized and the account is gone. */
START_TEST(test_remove)
{
    login();
    ck_assert_ptr_nonnull(harness_session_add("alice@localhost/laptop", 1, 0));
    harness_inject(PHONE, NULL,
                   "<iq type='set' id='rm'><query xmlns='" NS
                   "'><remove/></query></iq>");
    /* Both sessions closed (freed), after the result was delivered. */
    ck_assert_ptr_null(harness_session(PHONE));
    ck_assert_ptr_null(harness_session("alice@localhost/laptop"));
    ck_assert_str_eq(harness_last_close(), "not-authorized");
    ck_assert(!harness_account_exists("alice"));
}
END_TEST

/* §3.2: <remove/> must be alone. */
START_TEST(test_remove_with_siblings)
{
    login();
    harness_inject(PHONE, NULL,
                   "<iq type='set' id='rm'><query xmlns='" NS
                   "'><remove/><username>alice</username></query></iq>");
    assert_error(delivered_last(PHONE), "bad-request");
    ck_assert(harness_account_exists("alice"));
    ck_assert_ptr_nonnull(harness_session(PHONE));
}
END_TEST

/* Logged in, registration settings do not matter (as Prosody's
 * mod_user_account_management). */
START_TEST(test_logged_in_when_closed)
{
    login();
    harness_inject(PHONE, NULL,
                   "<iq type='set' id='p'><query xmlns='" NS
                   "'><username>alice</username><password>new</password>"
                   "</query></iq>");
    assert_type(delivered_last(PHONE), "result");
    ck_assert(harness_account_check("alice", "new"));
}
END_TEST

/* The module advertises jabber:iq:register (as Prosody). */
START_TEST(test_disco_feature)
{
    ck_assert_int_eq(harness_feature_count(), 1);
}
END_TEST

static Suite *
register_suite(void)
{
    Suite *s = suite_create("mod_register");
    TCase *tc;

    tc = tcase_create("preauth");
    tcase_add_checked_fixture(tc, setup_open, teardown);
    tcase_add_test(tc, test_form);
    tcase_add_test(tc, test_register);
    tcase_add_test(tc, test_conflict);
    tcase_add_loop_test(tc, test_not_acceptable, 0,
                        (int)(sizeof(unacceptable) / sizeof(unacceptable[0])));
    tcase_add_test(tc, test_remove_preauth);
    tcase_add_test(tc, test_client_gone);
    tcase_add_test(tc, test_disco_feature);
    suite_add_tcase(s, tc);

    tc = tcase_create("disabled");
    tcase_add_checked_fixture(tc, setup_closed, teardown);
    tcase_add_test(tc, test_disabled);
    tcase_add_test(tc, test_logged_in_when_closed);
    suite_add_tcase(s, tc);

    tc = tcase_create("throttle");
    tcase_add_checked_fixture(tc, setup_open, teardown);
    tcase_add_test(tc, test_throttle);
    tcase_add_test(tc, test_throttle_failure_free);
    tcase_add_test(tc, test_throttle_inflight);
    tcase_add_loop_test(tc, test_loopback_exempt, 0,
                        (int)(sizeof(loopbacks) / sizeof(loopbacks[0])));
    tcase_add_loop_test(
        tc, test_not_loopback, 0,
        (int)(sizeof(not_loopbacks) / sizeof(not_loopbacks[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("throttle_options");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_loopback_throttled);
    tcase_add_test(tc, test_throttle_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("logged_in");
    tcase_add_checked_fixture(tc, setup_open, teardown);
    tcase_add_test(tc, test_registered);
    tcase_add_test(tc, test_password_change);
    tcase_add_loop_test(tc, test_password_refused, 0,
                        (int)(sizeof(bad_changes) / sizeof(bad_changes[0])));
    tcase_add_test(tc, test_remove);
    tcase_add_test(tc, test_remove_with_siblings);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(register_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
