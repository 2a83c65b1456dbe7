/* tests/modules/check_mod_disco.c: mod_disco (XEP-0030) on the fake host.
 *
 * Covers: disco#info of the host (server/im identity, disco namespaces,
 * and the features of every loaded module, which disappear when their
 * module unloads; duplicates listed once), nodes (item-not-found),
 * disco#items of the host (empty), and disco#info/items of a user's bare
 * JID (XEP-0030 §3.1, Security Considerations): answered for the user and
 * for contacts subscribed to the user's presence (from/both, local or
 * remote), with account/registered (account/admin for an admin) and the
 * account features and identities modules register (once each, gone when
 * their module unloads, never mixed with the host's); everyone else, and
 * every other subscription state, gets service-unavailable.
 * Not for: entity capabilities or remote entities. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

#include <roost/roster.h>

extern const roost_module_t roost_module_disco;
extern const roost_module_t roost_module_ping;
extern const roost_module_t roost_module_version;

#define ALICE     "alice@localhost/phone"
#define INFO_NS   "http://jabber.org/protocol/disco#info"
#define ITEMS_NS  "http://jabber.org/protocol/disco#items"
#define INFO_GET  "<iq type='get' id='i1'><query xmlns='" INFO_NS "'/></iq>"
#define ITEMS_GET "<iq type='get' id='i2'><query xmlns='" ITEMS_NS "'/></iq>"

/* A test module registering a feature disco already has. */
static int
dup_load(roost_mod_t *m)
{
    roost_add_feature(m, INFO_NS);
    roost_add_feature(m, "urn:example:dup");
    return 0;
}

static const roost_module_t dup_module = {
    .abi = ROOST_ABI,
    .name = "dup",
    .load = dup_load,
};

/* A test module registering account features and an identity, one of
 * them twice and one that mod_disco registers too. */
static int
acct_load(roost_mod_t *m)
{
    roost_add_account_feature(m, "urn:example:acct");
    roost_add_account_feature(m, "urn:example:acct");
    roost_add_account_feature(m, INFO_NS);
    roost_add_account_identity(m, "pubsub", "pep", NULL);
    return 0;
}

static const roost_module_t acct_module = {
    .abi = ROOST_ABI,
    .name = "acct",
    .load = acct_load,
};

static void
setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_disco, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add(ALICE, 1, 0));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

/* Number of <feature var=var/> in q. */
static int
count_feature(const roost_stanza_t *q, const char *var)
{
    int n = 0;

    for (roost_stanza_t *c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *v = roost_stanza_attr(c, "var");

        if (strcmp(roost_stanza_name(c), "feature") == 0 && v != NULL &&
            strcmp(v, var) == 0)
            n++;
    }
    return n;
}

static int
has_identity(const roost_stanza_t *q, const char *cat, const char *type)
{
    for (roost_stanza_t *c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *ca = roost_stanza_attr(c, "category");
        const char *ty = roost_stanza_attr(c, "type");

        if (strcmp(roost_stanza_name(c), "identity") == 0 && ca != NULL &&
            ty != NULL && strcmp(ca, cat) == 0 && strcmp(ty, type) == 0)
            return 1;
    }
    return 0;
}

/* Sends xml from ALICE to `to` and returns the result's <query ns/>,
 * checking the reply's addressing. */
static roost_stanza_t *
ask(const char *to, const char *xml, const char *ns)
{
    size_t n = harness_delivered_count(ALICE);
    roost_stanza_t *r;

    ck_assert_int_eq(harness_inject(ALICE, to, xml), ROOST_HANDLED);
    ck_assert_uint_eq(harness_delivered_count(ALICE), n + 1);
    r = harness_delivered_stanza(ALICE, n);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
    ck_assert_pstr_eq(roost_stanza_attr(r, "to"), ALICE);
    ck_assert_pstr_eq(roost_stanza_attr(r, "from"), to);
    r = roost_stanza_child(r, ns, "query");
    ck_assert_ptr_nonnull(r);
    return r;
}

/* Sends xml from `from` (a session or remote) and returns the error
 * condition of the one reply. */
static const char *
ask_error(const char *from, const char *to, const char *xml)
{
    roost_stanza_t *r;

    harness_clear();
    harness_inject(from, to, xml);
    if (harness_session(from) != NULL) {
        ck_assert_uint_eq(harness_delivered_count(from), 1);
        r = harness_delivered_stanza(from, 0);
    } else {
        ck_assert_uint_eq(harness_sent_count(), 1);
        r = harness_sent_stanza(0);
    }
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
    return harness_error_cond(r);
}

START_TEST(test_info_host)
{
    roost_stanza_t *q = ask("localhost", INFO_GET, INFO_NS);
    roost_stanza_t *r = harness_delivered_stanza(ALICE, 0);

    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "i1");
    ck_assert(has_identity(q, "server", "im"));
    ck_assert_int_eq(count_feature(q, INFO_NS), 1);
    ck_assert_int_eq(count_feature(q, ITEMS_NS), 1);
    ck_assert_ptr_null(roost_stanza_attr(q, "node"));
}
END_TEST

START_TEST(test_info_all_modules)
{
    roost_stanza_t *q;

    ck_assert_ptr_nonnull(harness_load(&roost_module_ping, "localhost", NULL));
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_version, "localhost", NULL));
    q = ask("localhost", INFO_GET, INFO_NS);
    ck_assert_int_eq(count_feature(q, INFO_NS), 1);
    ck_assert_int_eq(count_feature(q, ITEMS_NS), 1);
    ck_assert_int_eq(count_feature(q, "urn:xmpp:ping"), 1);
    ck_assert_int_eq(count_feature(q, "jabber:iq:version"), 1);

    ck_assert_int_eq(harness_unload(harness_mod("ping")), 0);
    q = ask("localhost", INFO_GET, INFO_NS);
    ck_assert_int_eq(count_feature(q, "urn:xmpp:ping"), 0);
    ck_assert_int_eq(count_feature(q, "jabber:iq:version"), 1);
    ck_assert_int_eq(count_feature(q, INFO_NS), 1);
    ck_assert(has_identity(q, "server", "im"));
}
END_TEST

START_TEST(test_info_dedup)
{
    roost_stanza_t *q;

    ck_assert_ptr_nonnull(harness_load(&dup_module, "localhost", NULL));
    q = ask("localhost", INFO_GET, INFO_NS);
    ck_assert_int_eq(count_feature(q, INFO_NS), 1);
    ck_assert_int_eq(count_feature(q, "urn:example:dup"), 1);
}
END_TEST

START_TEST(test_info_node)
{
    ck_assert_pstr_eq(ask_error(ALICE, "localhost",
                                "<iq type='get' id='n'><query xmlns='" INFO_NS
                                "' node='urn:x:y'/></iq>"),
                      "item-not-found");
}
END_TEST

START_TEST(test_info_set)
{
    ck_assert_pstr_eq(ask_error(ALICE, "localhost",
                                "<iq type='set' id='s'><query xmlns='" INFO_NS
                                "'/></iq>"),
                      "service-unavailable");
}
END_TEST

START_TEST(test_items_host)
{
    roost_stanza_t *q = ask("localhost", ITEMS_GET, ITEMS_NS);

    ck_assert_ptr_null(roost_stanza_first_child(q));
}
END_TEST

START_TEST(test_items_node)
{
    ck_assert_pstr_eq(ask_error(ALICE, "localhost",
                                "<iq type='get' id='n'><query xmlns='" ITEMS_NS
                                "' node='x'/></iq>"),
                      "item-not-found");
}
END_TEST

START_TEST(test_account_self)
{
    roost_stanza_t *q = ask("alice@localhost", INFO_GET, INFO_NS);

    ck_assert(has_identity(q, "account", "registered"));
    ck_assert(!has_identity(q, "server", "im"));
    ck_assert_int_eq(count_feature(q, INFO_NS), 1);
    q = ask("alice@localhost", ITEMS_GET, ITEMS_NS);
    ck_assert_ptr_null(roost_stanza_first_child(q));
}
END_TEST

START_TEST(test_account_other_user)
{
    ck_assert_ptr_nonnull(harness_session_add("bob@localhost/pc", 1, 0));
    ck_assert_pstr_eq(
        ask_error("bob@localhost/pc", "alice@localhost", INFO_GET),
        "service-unavailable");
    ck_assert_pstr_eq(
        ask_error("romeo@example.net/x", "alice@localhost", INFO_GET),
        "service-unavailable");
    ck_assert_pstr_eq(
        ask_error("romeo@example.net/x", "alice@localhost", ITEMS_GET),
        "service-unavailable");
}
END_TEST

START_TEST(test_account_node)
{
    ck_assert_pstr_eq(ask_error(ALICE, "alice@localhost",
                                "<iq type='get' id='n'><query xmlns='" INFO_NS
                                "' node='n'/></iq>"),
                      "item-not-found");
}
END_TEST

START_TEST(test_account_other_iq_passes)
{
    /* Not disco: mod_disco passes and the core answers. */
    ck_assert_pstr_eq(ask_error(ALICE, "alice@localhost",
                                "<iq type='get' id='x'><query "
                                "xmlns='jabber:iq:version'/></iq>"),
                      "service-unavailable");
    ck_assert_int_eq(harness_inject(ALICE, "alice@localhost",
                                    "<iq type='get' id='y'><query xmlns='"
                                    "jabber:iq:version'/></iq>"),
                     ROOST_PASS);
}
END_TEST

/* alice's roster gets an item for contact with subscription sub. */
static void
roster_item(const char *contact, roost_sub_t sub, int ask, int pending_in)
{
    roost_roster_item_t it = {0};

    it.jid = contact;
    it.sub = sub;
    it.ask = ask;
    it.pending_in = pending_in;
    it.hidden = sub == ROOST_SUB_NONE && pending_in;
    ck_assert_int_eq(roost_roster_set(harness_mod("disco"), "alice", &it, 0),
                     0);
}

/* The reply to xml sent from `from` (a session of bob, or remote) to
 * alice's bare JID, checked for addressing. */
static roost_stanza_t *
ask_alice(const char *from, const char *xml)
{
    roost_stanza_t *r;

    harness_clear();
    harness_inject(from, "alice@localhost", xml);
    if (harness_session(from) != NULL) {
        ck_assert_uint_eq(harness_delivered_count(from), 1);
        r = harness_delivered_stanza(from, 0);
    } else {
        ck_assert_uint_eq(harness_sent_count(), 1);
        r = harness_sent_stanza(0);
    }
    ck_assert_pstr_eq(roost_stanza_attr(r, "from"), "alice@localhost");
    ck_assert_pstr_eq(roost_stanza_attr(r, "to"), from);
    return r;
}

/* Who may discover alice's account, by the subscription state of the
 * requester in her roster (XEP-0030 Security Considerations: only those
 * authorized to receive her presence). */
static const struct {
    roost_sub_t sub;
    int ask, pending_in, allowed;
} subs[] = {
    {ROOST_SUB_FROM, 0, 0, 1}, {ROOST_SUB_BOTH, 0, 0, 1},
    {ROOST_SUB_TO, 0, 0, 0},   {ROOST_SUB_NONE, 1, 0, 0},
    {ROOST_SUB_NONE, 0, 1, 0}, /* an unanswered request, hidden */
    {ROOST_SUB_TO, 0, 1, 0},   /* asked, not yet approved */
};

START_TEST(test_account_by_subscription)
{
    const char *froms[] = {"bob@localhost/pc", "romeo@example.net/x"};

    ck_assert_ptr_nonnull(harness_session_add("bob@localhost/pc", 1, 0));
    roster_item("bob@localhost", subs[_i].sub, subs[_i].ask,
                subs[_i].pending_in);
    roster_item("romeo@example.net", subs[_i].sub, subs[_i].ask,
                subs[_i].pending_in);
    for (int k = 0; k < 2; k++) {
        roost_stanza_t *r = ask_alice(froms[k], INFO_GET), *q;

        if (!subs[_i].allowed) {
            ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
            ck_assert_pstr_eq(harness_error_cond(r), "service-unavailable");
            r = ask_alice(froms[k], ITEMS_GET);
            ck_assert_pstr_eq(harness_error_cond(r), "service-unavailable");
            continue;
        }
        ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
        q = roost_stanza_child(r, INFO_NS, "query");
        ck_assert_ptr_nonnull(q);
        ck_assert(has_identity(q, "account", "registered"));
        ck_assert_int_eq(count_feature(q, INFO_NS), 1);
        r = ask_alice(froms[k], ITEMS_GET);
        ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
        q = roost_stanza_child(r, ITEMS_NS, "query");
        ck_assert_ptr_nonnull(q);
        ck_assert_ptr_null(roost_stanza_first_child(q));
        /* A node: item-not-found for those who may ask at all. */
        r = ask_alice(froms[k], "<iq type='get' id='n'><query xmlns='" INFO_NS
                                "' node='n'/></iq>");
        ck_assert_pstr_eq(harness_error_cond(r), "item-not-found");
    }
}
END_TEST

/* A stranger asking for a node learns nothing more than without one. */
START_TEST(test_account_node_stranger)
{
    ck_assert_pstr_eq(ask_error("romeo@example.net/x", "alice@localhost",
                                "<iq type='get' id='n'><query xmlns='" INFO_NS
                                "' node='n'/></iq>"),
                      "service-unavailable");
}
END_TEST

/* Account features and identities come from the account registry, once
 * each, and leave with their module; the host's stay apart. */
START_TEST(test_account_registry)
{
    roost_stanza_t *q;

    ck_assert_ptr_nonnull(harness_load(&acct_module, "localhost", NULL));
    q = ask("alice@localhost", INFO_GET, INFO_NS);
    ck_assert(has_identity(q, "account", "registered"));
    ck_assert(has_identity(q, "pubsub", "pep"));
    ck_assert_int_eq(count_feature(q, "urn:example:acct"), 1);
    ck_assert_int_eq(count_feature(q, INFO_NS), 1);
    ck_assert_int_eq(count_feature(q, ITEMS_NS), 0); /* a host feature */
    q = ask("localhost", INFO_GET, INFO_NS);
    ck_assert_int_eq(count_feature(q, "urn:example:acct"), 0);
    ck_assert(!has_identity(q, "pubsub", "pep"));

    ck_assert_int_eq(harness_unload(harness_mod("acct")), 0);
    q = ask("alice@localhost", INFO_GET, INFO_NS);
    ck_assert_int_eq(count_feature(q, "urn:example:acct"), 0);
    ck_assert(!has_identity(q, "pubsub", "pep"));
    ck_assert_int_eq(count_feature(q, INFO_NS), 1);
}
END_TEST

/* An admin of the vhost is account/admin (XEP-0030 registry), to
 * themselves and to subscribers. */
START_TEST(test_account_admin)
{
    roost_stanza_t *q, *r;

    harness_admin_add("alice@localhost");
    q = ask("alice@localhost", INFO_GET, INFO_NS);
    ck_assert(has_identity(q, "account", "admin"));
    ck_assert(!has_identity(q, "account", "registered"));
    roster_item("romeo@example.net", ROOST_SUB_BOTH, 0, 0);
    r = ask_alice("romeo@example.net/x", INFO_GET);
    q = roost_stanza_child(r, INFO_NS, "query");
    ck_assert_ptr_nonnull(q);
    ck_assert(has_identity(q, "account", "admin"));
    /* Being an admin opens nothing: bob is a stranger to alice. */
    ck_assert_ptr_nonnull(harness_session_add("bob@localhost/pc", 1, 0));
    harness_admin_add("bob@localhost");
    ck_assert_pstr_eq(
        ask_error("bob@localhost/pc", "alice@localhost", INFO_GET),
        "service-unavailable");
}
END_TEST

START_TEST(test_unload_clean)
{
    ck_assert_int_eq(harness_unload(harness_mod("disco")), 0);
    ck_assert_int_eq(harness_feature_count(), 0);
    ck_assert_int_eq(harness_account_feature_count(), 0);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_IQ_BARE), 0);
    ck_assert_pstr_eq(ask_error(ALICE, "localhost", INFO_GET),
                      "service-unavailable");
}
END_TEST

static Suite *
disco_suite(void)
{
    Suite *s = suite_create("mod_disco");
    TCase *tc;

    tc = tcase_create("info_host");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_info_host);
    tcase_add_test(tc, test_info_all_modules);
    tcase_add_test(tc, test_info_dedup);
    tcase_add_test(tc, test_info_node);
    tcase_add_test(tc, test_info_set);
    suite_add_tcase(s, tc);

    tc = tcase_create("items_host");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_items_host);
    tcase_add_test(tc, test_items_node);
    suite_add_tcase(s, tc);

    tc = tcase_create("account");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_account_self);
    tcase_add_test(tc, test_account_other_user);
    tcase_add_test(tc, test_account_node);
    tcase_add_test(tc, test_account_other_iq_passes);
    tcase_add_loop_test(tc, test_account_by_subscription, 0,
                        (int)(sizeof(subs) / sizeof(subs[0])));
    tcase_add_test(tc, test_account_node_stranger);
    tcase_add_test(tc, test_account_registry);
    tcase_add_test(tc, test_account_admin);
    suite_add_tcase(s, tc);

    tc = tcase_create("unload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_unload_clean);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(disco_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
