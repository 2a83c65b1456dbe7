/* tests/modules/check_mod_vcard.c: mod_vcard (XEP-0054) on the fake host
 * with the real in-memory storage.
 *
 * Covers: setting one's own vCard (§2.2, no 'to' or to the own bare JID)
 * and reading it back (§2.1), whole replacement, the empty <vCard/> when
 * none is stored; reading another user's vCard while that user is offline
 * (§2.3), service-unavailable when they have none; a set on someone else's
 * JID or on the server refused with forbidden, a get to the server
 * item-not-found; max_size (not-acceptable, nothing stored); persistence
 * across a restart; a get right after a set (the storage worker's order).
 * Not for: storage drivers (tests/unit/check_storage.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_vcard;

#define HOST  "localhost"
#define PHONE "alice@localhost/phone"
#define BOB   "bob@localhost/desk"
#define NS    "vcard-temp"

#define CARD_FN(fn)                                                            \
    "<vCard xmlns='" NS "'><FN>" fn "</FN><NICKNAME>al</NICKNAME></vCard>"

/* Mirrors struct vcard_conf in modules/mod_vcard.c. */
struct vcard_conf_view {
    int64_t max_size;
};

static void
setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

static roost_stanza_t *
last(const char *jid)
{
    size_t n = harness_delivered_count(jid);

    ck_assert_uint_gt(n, 0);
    return harness_delivered_stanza(jid, n - 1);
}

static void
assert_result(const roost_stanza_t *st, const char *id)
{
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "result");
    ck_assert_str_eq(roost_stanza_attr(st, "id"), id);
}

static void
assert_error(const roost_stanza_t *st, const char *cond)
{
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "error");
    ck_assert_ptr_nonnull(harness_error_cond(st));
    ck_assert_str_eq(harness_error_cond(st), cond);
}

static void
set_card(const char *from, const char *to, const char *card)
{
    char xml[70000];

    snprintf(xml, sizeof(xml), "<iq type='set' id='s'>%s</iq>", card);
    ck_assert_int_eq(harness_inject(from, to, xml), ROOST_HANDLED);
}

static roost_stanza_t *
get_card(const char *from, const char *to)
{
    harness_inject(from, to,
                   "<iq type='get' id='g'><vCard xmlns='" NS "'/></iq>");
    return last(from);
}

/* The FN of the vCard in result r, or NULL. */
static const char *
fn_of(const roost_stanza_t *r)
{
    roost_stanza_t *card = roost_stanza_child(r, NS, "vCard");

    ck_assert_ptr_nonnull(card);
    return roost_stanza_child_text(card, NS, "FN");
}

/* ---- own vCard ---- */

/* §2.2 then §2.1, with no 'to' and with the own bare JID. */
static const char *const own_to[] = {NULL, "alice@localhost"};

START_TEST(test_set_get_own)
{
    roost_stanza_t *r;

    set_card(PHONE, own_to[_i], CARD_FN("Alice"));
    assert_result(last(PHONE), "s");
    ck_assert_ptr_null(roost_stanza_first_child(last(PHONE)));
    r = get_card(PHONE, own_to[_i]);
    assert_result(r, "g");
    ck_assert_str_eq(fn_of(r), "Alice");
    ck_assert_str_eq(roost_stanza_child_text(roost_stanza_child(r, NS, "vCard"),
                                             NS, "NICKNAME"),
                     "al");
}
END_TEST

/* §2.2: a set replaces the whole vCard (no partial update). */
START_TEST(test_replace_whole)
{
    roost_stanza_t *r, *card;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    set_card(PHONE, NULL, "<vCard xmlns='" NS "'><FN>Alice B</FN></vCard>");
    r = get_card(PHONE, NULL);
    card = roost_stanza_child(r, NS, "vCard");
    ck_assert_str_eq(fn_of(r), "Alice B");
    ck_assert_ptr_null(roost_stanza_child(card, NS, "NICKNAME"));
}
END_TEST

/* §2.1: no vCard yet: an empty <vCard/>. */
START_TEST(test_get_own_none)
{
    roost_stanza_t *r = get_card(PHONE, NULL), *card;

    assert_result(r, "g");
    card = roost_stanza_child(r, NS, "vCard");
    ck_assert_ptr_nonnull(card);
    ck_assert_ptr_null(roost_stanza_first_child(card));
}
END_TEST

/* The storage worker runs jobs in order: a get issued before the set is
 * answered sees it. */
START_TEST(test_get_after_set_in_flight)
{
    harness_storage_hold(1);
    set_card(PHONE, NULL, CARD_FN("Alice"));
    harness_inject(PHONE, NULL,
                   "<iq type='get' id='g'><vCard xmlns='" NS "'/></iq>");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    harness_storage_hold(0);
    harness_storage_run();
    ck_assert_uint_eq(harness_delivered_count(PHONE), 2);
    assert_result(harness_delivered_stanza(PHONE, 0), "s");
    ck_assert_str_eq(fn_of(harness_delivered_stanza(PHONE, 1)), "Alice");
}
END_TEST

/* Stored, not cached: the vCard survives a restart of the module. */
START_TEST(test_restart)
{
    set_card(PHONE, NULL, CARD_FN("Alice"));
    ck_assert_int_eq(harness_unload(harness_mod("vcard")), 0);
    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, NULL));
    ck_assert_str_eq(fn_of(get_card(PHONE, NULL)), "Alice");
}
END_TEST

/* ---- other users' vCards ---- */

/* §2.3: bob reads alice's vCard while alice is offline. */
START_TEST(test_get_other_offline)
{
    roost_stanza_t *r;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_ptr_nonnull(harness_session_add(BOB, 1, 0));
    r = get_card(BOB, "alice@localhost");
    assert_result(r, "g");
    ck_assert_str_eq(roost_stanza_attr(r, "from"), "alice@localhost");
    ck_assert_str_eq(fn_of(r), "Alice");
}
END_TEST

/* A remote requester gets it too. */
START_TEST(test_get_other_remote)
{
    roost_stanza_t *r;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    harness_clear();
    harness_inject("carol@remote.example/x", "alice@localhost",
                   "<iq type='get' id='g'><vCard xmlns='" NS "'/></iq>");
    ck_assert_uint_eq(harness_sent_count(), 1);
    r = harness_sent_stanza(0);
    assert_result(r, "g");
    ck_assert_str_eq(fn_of(r), "Alice");
}
END_TEST

/* §2.3: no vCard: service-unavailable (as for no account). */
START_TEST(test_get_other_none)
{
    ck_assert_ptr_nonnull(harness_session_add(BOB, 1, 0));
    assert_error(get_card(BOB, "alice@localhost"), "service-unavailable");
}
END_TEST

/* §2.2: only one's own vCard may be set; the target's stays as it was. */
START_TEST(test_set_other_forbidden)
{
    ck_assert_ptr_nonnull(harness_session_add(BOB, 1, 0));
    set_card(PHONE, NULL, CARD_FN("Alice"));
    set_card(BOB, "alice@localhost", CARD_FN("Mallory"));
    assert_error(last(BOB), "forbidden");
    ck_assert_str_eq(fn_of(get_card(PHONE, NULL)), "Alice");
}
END_TEST

/* The server has no vCard (as Prosody). */
START_TEST(test_server)
{
    assert_error(get_card(PHONE, HOST), "item-not-found");
    set_card(PHONE, HOST, CARD_FN("Server"));
    assert_error(last(PHONE), "forbidden");
}
END_TEST

/* XEP-0054 §3: the feature. */
START_TEST(test_disco_feature)
{
    ck_assert_int_eq(harness_feature_count(), 1);
}
END_TEST

/* ---- max_size ---- */

static void
conf_small(void *c)
{
    ((struct vcard_conf_view *)c)->max_size = 256;
}

/* Over max_size: not-acceptable, nothing stored; at the limit: stored. */
START_TEST(test_max_size)
{
    char card[1024], pad[400];
    size_t base;

    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, conf_small));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    /* The stored form is the standalone element: size it exactly. */
    snprintf(card, sizeof(card), "<vCard xmlns='" NS "'><FN></FN></vCard>");
    base = strlen(card);
    memset(pad, 'x', sizeof(pad));
    pad[256 - base] = '\0';
    snprintf(card, sizeof(card), "<vCard xmlns='" NS "'><FN>%s</FN></vCard>",
             pad);
    ck_assert_uint_eq(strlen(card), 256);
    set_card(PHONE, NULL, card);
    assert_result(last(PHONE), "s");
    pad[256 - base] = 'x';
    pad[257 - base] = '\0';
    snprintf(card, sizeof(card), "<vCard xmlns='" NS "'><FN>%s</FN></vCard>",
             pad);
    set_card(PHONE, NULL, card);
    assert_error(last(PHONE), "not-acceptable");
    /* The previous one stays. */
    ck_assert_uint_eq(strlen(fn_of(get_card(PHONE, NULL))), 256 - base);
}
END_TEST

static Suite *
vcard_suite(void)
{
    Suite *s = suite_create("mod_vcard");
    TCase *tc;

    tc = tcase_create("own");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_set_get_own, 0,
                        (int)(sizeof(own_to) / sizeof(own_to[0])));
    tcase_add_test(tc, test_replace_whole);
    tcase_add_test(tc, test_get_own_none);
    tcase_add_test(tc, test_get_after_set_in_flight);
    tcase_add_test(tc, test_restart);
    tcase_add_test(tc, test_disco_feature);
    suite_add_tcase(s, tc);

    tc = tcase_create("others");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_get_other_offline);
    tcase_add_test(tc, test_get_other_remote);
    tcase_add_test(tc, test_get_other_none);
    tcase_add_test(tc, test_set_other_forbidden);
    tcase_add_test(tc, test_server);
    suite_add_tcase(s, tc);

    tc = tcase_create("max_size");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_max_size);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(vcard_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
