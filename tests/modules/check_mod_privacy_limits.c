/* tests/modules/check_mod_privacy_limits.c: mod_privacy's two limits
 * (issue 6, doc/limits.md), max_lists and max_items, on the fake host.
 *
 * Covers: a list with more than max_items items and a list beyond
 * max_lists refused with <policy-violation/> (and the text saying which),
 * nothing stored by a refused request; replacing or removing a list
 * within the limits; XEP-0191 blocking under the same limits; the
 * defaults (50 lists, 1000 items) enforced as such.
 * Not for: what the lists do (check_mod_privacy.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_privacy;

#define HOST   "localhost"
#define PHONE  "alice@localhost/phone"
#define NS     "jabber:iq:privacy"
#define NS_BL  "urn:xmpp:blocking"
#define NS_ERR "urn:ietf:params:xml:ns:xmpp-stanzas"

/* modules/mod_privacy.c struct priv_conf. */
struct priv_conf_view {
    int64_t max_lists;
    int64_t max_items;
};

static void
small(void *conf)
{
    ((struct priv_conf_view *)conf)->max_lists = 2;
    ((struct priv_conf_view *)conf)->max_items = 3;
}

static void
setup_small(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_privacy, HOST, small));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
}

static void
setup_default(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_privacy, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

/* The answer to id: the last stanza delivered to PHONE with that id. */
static roost_stanza_t *
answer(const char *id)
{
    for (size_t i = harness_delivered_count(PHONE); i > 0; i--) {
        roost_stanza_t *st = harness_delivered_stanza(PHONE, i - 1);
        const char *sid = roost_stanza_attr(st, "id");

        if (sid != NULL && strcmp(sid, id) == 0)
            return st;
    }
    ck_abort_msg("no answer to %s", id);
    return NULL;
}

static void
assert_result(const char *id)
{
    ck_assert_pstr_eq(roost_stanza_attr(answer(id), "type"), "result");
}

/* The answer to id is <policy-violation/> with text. */
static void
assert_policy(const char *id, const char *text)
{
    roost_stanza_t *st = answer(id), *err;

    ck_assert_pstr_eq(roost_stanza_attr(st, "type"), "error");
    ck_assert_pstr_eq(harness_error_cond(st), "policy-violation");
    err = roost_stanza_child(st, NULL, "error");
    ck_assert_ptr_nonnull(err);
    ck_assert_pstr_eq(roost_stanza_child_text(err, NS_ERR, "text"), text);
}

/* Alice stores list name with n deny items (u0@remote.example ...). */
static void
set_list(const char *id, const char *name, int n)
{
    size_t cap = 256 + (size_t)n * 96, len;
    char *xml = roost_xmalloc(cap);

    len = (size_t)snprintf(xml, cap,
                           "<iq type='set' id='%s'><query xmlns='" NS "'>"
                           "<list name='%s'>",
                           id, name);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(xml + len, cap - len,
                                "<item type='jid' value='u%d@remote.example' "
                                "action='deny' order='%d'/>",
                                i, i + 1);
    snprintf(xml + len, cap - len, "</list></query></iq>");
    ck_assert_int_eq(harness_inject(PHONE, NULL, xml), ROOST_HANDLED);
    roost_free(xml);
}

/* Items of list name as stored, or -1 when there is no such list. */
static int
list_items(const char *name)
{
    char xml[256], id[64];
    roost_stanza_t *st, *list;
    int n = 0;

    snprintf(id, sizeof(id), "get-%s", name);
    snprintf(xml, sizeof(xml),
             "<iq type='get' id='%s'><query xmlns='" NS "'>"
             "<list name='%s'/></query></iq>",
             id, name);
    harness_inject(PHONE, NULL, xml);
    st = answer(id);
    if (strcmp(roost_stanza_attr(st, "type"), "error") == 0) {
        ck_assert_pstr_eq(harness_error_cond(st), "item-not-found");
        return -1;
    }
    list = roost_stanza_child(roost_stanza_child(st, NS, "query"), NS, "list");
    ck_assert_ptr_nonnull(list);
    for (roost_stanza_t *c = roost_stanza_first_child(list); c != NULL;
         c = roost_stanza_next_sibling(c))
        if (roost_stanza_name(c) != NULL)
            n++;
    return n;
}

static void
block(const char *id, int first, int n)
{
    char xml[2048];
    size_t len;

    len = (size_t)snprintf(xml, sizeof(xml),
                           "<iq type='set' id='%s'><block xmlns='" NS_BL "'>",
                           id);
    for (int i = first; i < first + n; i++)
        len += (size_t)snprintf(xml + len, sizeof(xml) - len,
                                "<item jid='b%d@remote.example'/>", i);
    snprintf(xml + len, sizeof(xml) - len, "</block></iq>");
    ck_assert_int_eq(harness_inject(PHONE, NULL, xml), ROOST_HANDLED);
}

START_TEST(test_max_items)
{
    set_list("l1", "work", 3);
    assert_result("l1");
    ck_assert_int_eq(list_items("work"), 3);
    set_list("l2", "work", 4);
    assert_policy("l2", "Too many items");
    /* The stored list is the one before. */
    ck_assert_int_eq(list_items("work"), 3);
    set_list("l3", "home", 4);
    assert_policy("l3", "Too many items");
    ck_assert_int_eq(list_items("home"), -1);
}
END_TEST

START_TEST(test_max_lists)
{
    set_list("l1", "one", 1);
    assert_result("l1");
    set_list("l2", "two", 2);
    assert_result("l2");
    set_list("l3", "three", 1);
    assert_policy("l3", "Too many lists");
    ck_assert_int_eq(list_items("three"), -1);
    /* Replacing a list does not count as a new one. */
    set_list("l4", "two", 3);
    assert_result("l4");
    ck_assert_int_eq(list_items("two"), 3);
    /* Removing one (a list element with no items) makes room. */
    ck_assert_int_eq(harness_inject(PHONE, NULL,
                                    "<iq type='set' id='rm'><query xmlns='" NS
                                    "'><list name='one'/></query></iq>"),
                     ROOST_HANDLED);
    assert_result("rm");
    set_list("l5", "three", 1);
    assert_result("l5");
}
END_TEST

/* XEP-0191 blocking keeps its JIDs in a privacy list: the same limits. */
START_TEST(test_block_max_items)
{
    block("b1", 0, 2);
    assert_result("b1");
    block("b2", 2, 1);
    assert_result("b2");
    block("b3", 3, 1);
    assert_policy("b3", "Too many items");
    block("b4", 0, 1); /* already blocked: nothing added */
    ck_assert_ptr_nonnull(answer("b4"));
}
END_TEST

START_TEST(test_block_max_lists)
{
    set_list("l1", "one", 1);
    assert_result("l1");
    set_list("l2", "two", 1);
    assert_result("l2");
    /* No default list, and no room for the blocking list. */
    block("b1", 0, 1);
    assert_policy("b1", "Too many lists");
}
END_TEST

START_TEST(test_defaults)
{
    const struct priv_conf_view *c = roost_mod_conf(harness_mod("privacy"));
    char id[16], name[16];

    ck_assert_int_eq(c->max_lists, 50);
    ck_assert_int_eq(c->max_items, 1000);
    set_list("big", "big", 1000);
    assert_result("big");
    set_list("bigger", "bigger", 1001);
    assert_policy("bigger", "Too many items");
    for (int i = 1; i < 50; i++) {
        snprintf(id, sizeof(id), "l%d", i);
        snprintf(name, sizeof(name), "list%d", i);
        set_list(id, name, 1);
        assert_result(id);
    }
    set_list("l50", "list50", 1);
    assert_policy("l50", "Too many lists");
}
END_TEST

static Suite *
privacy_limits_suite(void)
{
    Suite *s = suite_create("mod_privacy_limits");
    TCase *tc;

    tc = tcase_create("configured");
    tcase_add_checked_fixture(tc, setup_small, teardown);
    tcase_add_test(tc, test_max_items);
    tcase_add_test(tc, test_max_lists);
    tcase_add_test(tc, test_block_max_items);
    tcase_add_test(tc, test_block_max_lists);
    suite_add_tcase(s, tc);

    tc = tcase_create("defaults");
    tcase_add_checked_fixture(tc, setup_default, teardown);
    tcase_add_test(tc, test_defaults);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(privacy_limits_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
