/* tests/modules/check_mod_privacy.c: mod_privacy (XEP-0016 privacy lists,
 * XEP-0191 blocking) with mod_message and mod_presence on the fake host,
 * the real roster model and the in-memory storage.
 *
 * Covers: every rule type (jid, group, subscription, the fall-through
 * item without a type) against every stanza kind an item can name
 * (message, iq, presence-in, presence-out, and none: all), as a table;
 * the inbound answers of XEP-0016 §2.13 (service-unavailable for message
 * and iq, silence for presence) and the outbound one (not-acceptable to
 * the sender); the default list and a session's active list (§2.2, §2.3),
 * declining the active list; blocking through XEP-0191 visible as a
 * XEP-0016 default-list item and the reverse, unblocking, the
 * <blocked/> error, blocklist pushes; presence-out rules applied politely
 * (no error) to broadcasts mod_presence sends on the user's behalf
 * (ROOST_EV_OUTBOUND); lists kept across a restart.
 * Not for: subscriptions themselves (check_mod_presence.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_message;
extern const roost_module_t roost_module_presence;
extern const roost_module_t roost_module_privacy;

#define HOST    "localhost"
#define ALICE   "alice@localhost"
#define PHONE   "alice@localhost/phone"
#define LAPTOP  "alice@localhost/laptop"
#define BOB     "bob@remote.example"
#define BOBR    "bob@remote.example/desk"
#define CAROL   "carol@remote.example"
#define CAROLR  "carol@remote.example/desk"
#define NS      "jabber:iq:privacy"
#define NS_BL   "urn:xmpp:blocking"
#define NS_BERR "urn:xmpp:blocking:errors"

static void
setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_message, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_presence, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_privacy, HOST, NULL));
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

/* The answer to request id, the last stanza delivered to jid with that id
 * (pushes may follow it), is a result. */
static void
assert_result_id(const char *jid, const char *id)
{
    for (size_t i = harness_delivered_count(jid); i > 0; i--) {
        roost_stanza_t *st = harness_delivered_stanza(jid, i - 1);
        const char *sid = roost_stanza_attr(st, "id");

        if (sid != NULL && strcmp(sid, id) == 0) {
            ck_assert_str_eq(roost_stanza_attr(st, "type"), "result");
            return;
        }
    }
    ck_abort_msg("no answer to %s", id);
}

/* A roster item of alice for contact (sub, one group or NULL). */
static void
roster_add(const char *contact, roost_sub_t sub, const char *group)
{
    const char *groups[2] = {group, NULL};
    roost_roster_item_t it = {0};

    it.jid = contact;
    it.sub = sub;
    it.groups = group != NULL ? groups : NULL;
    ck_assert_int_eq(roost_roster_set(harness_mod("privacy"), "alice", &it, 0),
                     0);
}

/* Alice (from PHONE) stores list name with items (XML). */
static void
set_list(const char *from, const char *name, const char *items)
{
    char xml[2048];

    snprintf(xml, sizeof(xml),
             "<iq type='set' id='l'><query xmlns='" NS "'><list name='%s'>%s"
             "</list></query></iq>",
             name, items);
    harness_inject(from, NULL, xml);
    assert_result_id(from, "l");
}

static void
set_default(const char *from, const char *name)
{
    char xml[512];

    snprintf(xml, sizeof(xml),
             "<iq type='set' id='d'><query xmlns='" NS "'><default name='%s'/>"
             "</query></iq>",
             name);
    harness_inject(from, NULL, xml);
    assert_result_id(from, "d");
}

static void
set_active(const char *from, const char *name)
{
    char xml[512];

    if (name != NULL)
        snprintf(xml, sizeof(xml),
                 "<iq type='set' id='a'><query xmlns='" NS
                 "'><active name='%s'/></query></iq>",
                 name);
    else
        snprintf(xml, sizeof(xml),
                 "<iq type='set' id='a'><query xmlns='" NS
                 "'><active/></query></iq>");
    harness_inject(from, NULL, xml);
    assert_result_id(from, "a");
}

/* Stanzas in the sent list (leaving the vhost) to `to` of kind name and,
 * when type is not NULL, that type ("" = no type attribute). */
static int
sent_to(const char *to, const char *name, const char *type)
{
    int n = 0;

    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *st = harness_sent_stanza(i);
        const char *t = roost_stanza_attr(st, "type");

        if (strcmp(roost_stanza_name(st), name) != 0 ||
            strcmp(roost_stanza_attr(st, "to"), to) != 0)
            continue;
        if (type == NULL || (type[0] == '\0' && t == NULL) ||
            (t != NULL && strcmp(t, type) == 0))
            n++;
    }
    return n;
}

/* Stanzas delivered to jid named name (and type as for sent_to). */
static int
got(const char *jid, const char *name, const char *type)
{
    int n = 0;

    for (size_t i = 0; i < harness_delivered_count(jid); i++) {
        roost_stanza_t *st = harness_delivered_stanza(jid, i);
        const char *t = roost_stanza_attr(st, "type");

        if (strcmp(roost_stanza_name(st), name) != 0)
            continue;
        if (type == NULL || (type[0] == '\0' && t == NULL) ||
            (t != NULL && strcmp(t, type) == 0))
            n++;
    }
    return n;
}

/* ---- the four stanza kinds, one probe each ---- */

enum { K_MESSAGE, K_IQ, K_PIN, K_POUT, K_COUNT };

/* Sends one stanza of kind k between alice and contact (full JID of a
 * remote resource) and says whether it went through; when it was
 * blocked, checks the answer XEP-0016 §2.13 requires. */
static int
passes(int k, const char *contact)
{
    char bare[256];
    int ok;

    snprintf(bare, sizeof(bare), "%.*s", (int)(strchr(contact, '/') - contact),
             contact);
    harness_clear();
    switch (k) {
    case K_MESSAGE:
        /* Inbound message to the bare JID: delivered or
         * service-unavailable. */
        harness_inject(contact, ALICE,
                       "<message type='chat'><body>hi</body></message>");
        ok = got(PHONE, "message", "chat") == 1;
        if (!ok)
            ck_assert_int_eq(sent_to(contact, "message", "error"), 1);
        return ok;
    case K_IQ:
        /* Inbound iq get to the full JID: delivered or
         * service-unavailable. */
        harness_inject(contact, PHONE,
                       "<iq type='get' id='v'><query "
                       "xmlns='jabber:iq:version'/></iq>");
        ok = got(PHONE, "iq", "get") == 1;
        if (!ok) {
            ck_assert_int_eq(sent_to(contact, "iq", "error"), 1);
            ck_assert_str_eq(harness_error_cond(harness_sent_stanza(0)),
                             "service-unavailable");
        }
        return ok;
    case K_PIN:
        /* Inbound presence to the full JID: delivered or dropped
         * silently. */
        harness_inject(contact, PHONE, "<presence/>");
        ok = got(PHONE, "presence", "") == 1;
        if (!ok)
            ck_assert_uint_eq(harness_sent_count(), 0);
        return ok;
    default:
        /* Directed presence the client sends: routed, or not-acceptable
         * to the client and nothing routed. */
        harness_inject(PHONE, bare, "<presence/>");
        ok = sent_to(bare, "presence", "") == 1;
        if (!ok) {
            ck_assert_uint_eq(harness_sent_count(), 0);
            ck_assert_int_eq(got(PHONE, "presence", "error"), 1);
            ck_assert_str_eq(harness_error_cond(last(PHONE)), "not-acceptable");
        }
        return ok;
    }
}

/* Rule types: the item's attributes (it denies bob only, except the
 * fall-through item) and the roster that makes it match. */
static const struct {
    const char *attrs;
    int all; /* matches everyone */
} rules[] = {
    {"type='jid' value='" BOB "'", 0},
    {"type='group' value='Enemies'", 0},
    {"type='subscription' value='both'", 0},
    {"", 1},
};

/* Stanza kinds an item names ("" = all). */
static const char *const kinds[] = {"<message/>", "<iq/>", "<presence-in/>",
                                    "<presence-out/>", ""};

#define NRULES (sizeof(rules) / sizeof(rules[0]))
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* One row per (rule type, stanza kind): a default list with one deny item;
 * the kind it names is blocked for bob, the other kinds pass; carol, who
 * matches no rule but the fall-through one, is treated likewise only by
 * the fall-through item.  An allow item before it for carol, in the
 * fall-through case, checks that order decides. */
START_TEST(test_rule_kind)
{
    int r = _i / (int)NKINDS, k = _i % (int)NKINDS;
    char items[512];

    roster_add(BOB, ROOST_SUB_BOTH, "Enemies");
    roster_add(CAROL, ROOST_SUB_TO, "Friends");
    snprintf(items, sizeof(items),
             "<item %s action='deny' order='10'>%s</item>", rules[r].attrs,
             kinds[k]);
    set_list(PHONE, "l", items);
    set_default(PHONE, "l");
    for (int kk = 0; kk < K_COUNT; kk++) {
        int blocked = kinds[k][0] == '\0' || kk == k;

        ck_assert_msg(passes(kk, BOBR) == !blocked,
                      "rule %d item kind %d: stanza kind %d from bob %s", r, k,
                      kk, blocked ? "passed" : "blocked");
        ck_assert_msg(passes(kk, CAROLR) == !(blocked && rules[r].all),
                      "rule %d item kind %d: stanza kind %d from carol", r, k,
                      kk);
    }
}
END_TEST

/* §2.1 (order): the first matching item decides. */
START_TEST(test_order)
{
    set_list(PHONE, "l",
             "<item type='jid' value='" CAROL "' action='allow' order='1'/>"
             "<item action='deny' order='2'/>");
    set_default(PHONE, "l");
    ck_assert(passes(K_MESSAGE, CAROLR));
    ck_assert(!passes(K_MESSAGE, BOBR));
}
END_TEST

/* A JID item with a bare value matches every resource; with a domain
 * value the whole domain (XEP-0016 §2.1 JID matching). */
START_TEST(test_jid_forms)
{
    set_list(PHONE, "l",
             "<item type='jid' value='remote.example' action='deny' "
             "order='1'/>");
    set_default(PHONE, "l");
    ck_assert(!passes(K_MESSAGE, BOBR));
    ck_assert(!passes(K_MESSAGE, CAROLR));
    ck_assert(passes(K_MESSAGE, "dave@other.example/x"));
}
END_TEST

/* §2.2, §2.3: the active list of a session overrides the default for
 * that session only; declining it (<active/>) brings the default back. */
START_TEST(test_active_overrides_default)
{
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 1, 0));
    set_list(PHONE, "strict",
             "<item type='jid' value='" BOB "' action='deny' order='1'/>");
    set_list(PHONE, "open",
             "<item type='jid' value='" BOB "' action='allow' order='1'/>");
    set_default(PHONE, "strict");
    set_active(PHONE, "open");
    harness_clear();
    harness_inject(BOBR, PHONE,
                   "<iq type='get' id='1'><query "
                   "xmlns='jabber:iq:version'/></iq>");
    ck_assert_int_eq(got(PHONE, "iq", "get"), 1);
    harness_inject(BOBR, LAPTOP,
                   "<iq type='get' id='2'><query "
                   "xmlns='jabber:iq:version'/></iq>");
    ck_assert_int_eq(got(LAPTOP, "iq", "get"), 0);
    ck_assert_int_eq(sent_to(BOBR, "iq", "error"), 1);
    set_active(PHONE, NULL);
    ck_assert(!passes(K_IQ, BOBR));
}
END_TEST

/* With no session at all the default list still applies (offline). */
START_TEST(test_default_offline)
{
    set_list(PHONE, "l",
             "<item type='jid' value='" BOB "' action='deny' order='1'>"
             "<message/></item>");
    set_default(PHONE, "l");
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    harness_clear();
    harness_inject(BOBR, ALICE,
                   "<message type='chat'><body>x</body></message>");
    ck_assert_int_eq(sent_to(BOBR, "message", "error"), 1);
    ck_assert_str_eq(harness_error_cond(harness_sent_stanza(0)),
                     "service-unavailable");
}
END_TEST

/* Lists are stored: they apply after a restart of the module. */
START_TEST(test_restart)
{
    set_list(PHONE, "l",
             "<item type='jid' value='" BOB "' action='deny' order='1'/>");
    set_default(PHONE, "l");
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_int_eq(harness_unload(harness_mod("privacy")), 0);
    ck_assert_ptr_nonnull(harness_load(&roost_module_privacy, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    ck_assert(!passes(K_MESSAGE, BOBR));
}
END_TEST

/* ---- XEP-0191 ---- */

static void
block(const char *jid)
{
    char xml[512];

    snprintf(xml, sizeof(xml),
             "<iq type='set' id='b'><block xmlns='" NS_BL
             "'><item jid='%s'/></block></iq>",
             jid);
    harness_inject(PHONE, NULL, xml);
    assert_result_id(PHONE, "b");
}

/* The JIDs of the blocklist, space-separated, in buf. */
static const char *
blocklist(char *buf, size_t size)
{
    roost_stanza_t *r, *bl;

    buf[0] = '\0';
    harness_inject(PHONE, NULL,
                   "<iq type='get' id='bl'><blocklist xmlns='" NS_BL
                   "'/></iq>");
    r = last(PHONE);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
    bl = roost_stanza_child(r, NS_BL, "blocklist");
    ck_assert_ptr_nonnull(bl);
    for (roost_stanza_t *it = roost_stanza_first_child(bl); it != NULL;
         it = roost_stanza_next_sibling(it)) {
        if (buf[0] != '\0')
            strncat(buf, " ", size - strlen(buf) - 1);
        strncat(buf, roost_stanza_attr(it, "jid"), size - strlen(buf) - 1);
    }
    return buf;
}

/* The default list as XEP-0016 shows it: its name, and whether it holds
 * a jid/deny item for jid with no kind children. */
static int
default_has_block(const char *jid)
{
    roost_stanza_t *r, *q, *d, *l;
    char xml[512];
    const char *name;

    harness_inject(PHONE, NULL,
                   "<iq type='get' id='g'><query xmlns='" NS "'/></iq>");
    r = last(PHONE);
    q = roost_stanza_child(r, NS, "query");
    ck_assert_ptr_nonnull(q);
    d = roost_stanza_child(q, NS, "default");
    if (d == NULL || (name = roost_stanza_attr(d, "name")) == NULL)
        return 0;
    snprintf(xml, sizeof(xml),
             "<iq type='get' id='g'><query xmlns='" NS "'><list name='%s'/>"
             "</query></iq>",
             name);
    harness_inject(PHONE, NULL, xml);
    r = last(PHONE);
    l = roost_stanza_child(roost_stanza_child(r, NS, "query"), NS, "list");
    ck_assert_ptr_nonnull(l);
    for (roost_stanza_t *it = roost_stanza_first_child(l); it != NULL;
         it = roost_stanza_next_sibling(it)) {
        const char *t = roost_stanza_attr(it, "type");
        const char *v = roost_stanza_attr(it, "value");
        const char *a = roost_stanza_attr(it, "action");

        if (t != NULL && strcmp(t, "jid") == 0 && v != NULL &&
            strcmp(v, jid) == 0 && a != NULL && strcmp(a, "deny") == 0 &&
            roost_stanza_first_child(it) == NULL)
            return 1;
    }
    return 0;
}

/* A block is a XEP-0016 item of the default list, and blocks everything
 * both ways; the outbound error carries <blocked/> (XEP-0191 §3.5). */
START_TEST(test_block_visible_in_privacy)
{
    char buf[256];

    block(BOB);
    ck_assert_str_eq(blocklist(buf, sizeof(buf)), BOB);
    ck_assert(default_has_block(BOB));
    for (int k = 0; k < K_COUNT; k++)
        ck_assert_msg(!passes(k, BOBR), "kind %d passed", k);
    ck_assert(passes(K_MESSAGE, CAROLR));
    harness_clear();
    harness_inject(PHONE, BOB, "<message type='chat'><body>x</body></message>");
    ck_assert_uint_eq(harness_sent_count(), 0);
    ck_assert_str_eq(harness_error_cond(last(PHONE)), "not-acceptable");
    ck_assert_ptr_nonnull(roost_stanza_child(
        roost_stanza_child(last(PHONE), NULL, "error"), NS_BERR, "blocked"));
}
END_TEST

/* A jid/deny item without kinds added through XEP-0016 to the default
 * list shows in the blocklist; with a kind it does not. */
START_TEST(test_privacy_visible_in_blocklist)
{
    char buf[256];

    set_list(PHONE, "mine",
             "<item type='jid' value='" BOB "' action='deny' order='1'/>"
             "<item type='jid' value='" CAROL "' action='deny' order='2'>"
             "<message/></item>");
    ck_assert_str_eq(blocklist(buf, sizeof(buf)), "");
    set_default(PHONE, "mine");
    ck_assert_str_eq(blocklist(buf, sizeof(buf)), BOB);
}
END_TEST

/* Unblocking removes the item from both views and lets stanzas in. */
START_TEST(test_unblock)
{
    char buf[256];

    block(BOB);
    block(CAROL);
    harness_inject(PHONE, NULL,
                   "<iq type='set' id='u'><unblock xmlns='" NS_BL
                   "'><item jid='" BOB "'/></unblock></iq>");
    assert_result_id(PHONE, "u");
    ck_assert_str_eq(blocklist(buf, sizeof(buf)), CAROL);
    ck_assert(!default_has_block(BOB));
    ck_assert(passes(K_MESSAGE, BOBR));
    ck_assert(!passes(K_MESSAGE, CAROLR));
    /* An unblock without items clears the list (§3.4). */
    harness_inject(PHONE, NULL,
                   "<iq type='set' id='u'><unblock xmlns='" NS_BL "'/></iq>");
    assert_result_id(PHONE, "u");
    ck_assert_str_eq(blocklist(buf, sizeof(buf)), "");
    ck_assert(passes(K_MESSAGE, CAROLR));
}
END_TEST

/* §3.3: a block is pushed to the sessions that asked for the blocklist,
 * and only to them. */
START_TEST(test_block_push)
{
    char buf[256];
    roost_stanza_t *p;

    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 1, 0));
    blocklist(buf, sizeof(buf)); /* PHONE asks */
    harness_clear();
    harness_inject(LAPTOP, NULL,
                   "<iq type='set' id='b'><block xmlns='" NS_BL
                   "'><item jid='" BOB "'/></block></iq>");
    ck_assert_int_eq(got(PHONE, "iq", "set"), 1);
    p = harness_delivered_stanza(PHONE, 0);
    ck_assert_ptr_nonnull(roost_stanza_child(p, NS_BL, "block"));
    ck_assert_int_eq(got(LAPTOP, "iq", "set"), 0);
}
END_TEST

/* ---- polite presence-out ---- */

/* Broadcast presence that mod_presence sends on alice's behalf passes her
 * presence-out rules (ROOST_EV_OUTBOUND): the denied contact gets
 * nothing, the client gets no error, the others get it. */
START_TEST(test_polite_presence_out)
{
    roster_add(BOB, ROOST_SUB_BOTH, NULL);
    roster_add(CAROL, ROOST_SUB_BOTH, NULL);
    set_list(PHONE, "l",
             "<item type='jid' value='" BOB "' action='deny' order='1'>"
             "<presence-out/></item>");
    set_default(PHONE, "l");
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 0, 0));
    harness_clear();
    harness_inject(LAPTOP, NULL, "<presence/>");
    ck_assert_int_eq(sent_to(BOB, "presence", ""), 0);
    ck_assert_int_ge(sent_to(CAROL, "presence", ""), 1);
    ck_assert_int_eq(got(LAPTOP, "presence", "error"), 0);
    /* Unavailable at logout too. */
    harness_clear();
    ck_assert_int_eq(harness_session_remove(LAPTOP), 0);
    ck_assert_int_eq(sent_to(BOB, "presence", "unavailable"), 0);
    ck_assert_int_ge(sent_to(CAROL, "presence", "unavailable"), 1);
}
END_TEST

static Suite *
privacy_suite(void)
{
    Suite *s = suite_create("mod_privacy");
    TCase *tc;

    tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_rule_kind, 0, (int)(NRULES * NKINDS));
    tcase_add_test(tc, test_order);
    tcase_add_test(tc, test_jid_forms);
    suite_add_tcase(s, tc);

    tc = tcase_create("lists");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_active_overrides_default);
    tcase_add_test(tc, test_default_offline);
    tcase_add_test(tc, test_restart);
    suite_add_tcase(s, tc);

    tc = tcase_create("blocking");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_block_visible_in_privacy);
    tcase_add_test(tc, test_privacy_visible_in_blocklist);
    tcase_add_test(tc, test_unblock);
    tcase_add_test(tc, test_block_push);
    suite_add_tcase(s, tc);

    tc = tcase_create("presence_out");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_polite_presence_out);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(privacy_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
