/* tests/modules/check_mod_offline.c: mod_offline (XEP-0160, XEP-0203) with
 * mod_message on the fake host and the real in-memory storage.
 *
 * Covers: messages stored while the account has no available resource
 * with non-negative priority and delivered in order, with a delay stamp,
 * at the first non-negative initial presence (XEP-0160 §2), then removed;
 * the types never stored (§3); chat states and XEP-0334 hints; XEP-0280
 * <private/> not stored; the quota
 * (max_messages, service-unavailable); delivery exactly once when two
 * resources come online while the read is in flight; negative priority
 * (RFC 6121 §8.5.2.1.1); persistence across a restart.
 * Not for: deciding deliverability (check_mod_message.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_message;
extern const roost_module_t roost_module_offline;

#define HOST   "localhost"
#define ALICE  "alice@localhost"
#define PHONE  "alice@localhost/phone"
#define LAPTOP "alice@localhost/laptop"
/* A remote sender: errors sent back to it land in the sent list. */
#define BOB "bob@remote.example/desk"

struct offline_conf_view {
    int64_t max_messages;
};

static roost_store_t *store;

static void
load(void (*conf_init)(void *))
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_message, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_offline, HOST, conf_init));
    store = harness_store("offline", ROOST_STORE_ARCHIVE);
    ck_assert_ptr_nonnull(store);
}

static void
setup(void)
{
    load(NULL);
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

static int
stored(void)
{
    return roost_store_count(store, "alice");
}

static int
send_msg(const char *to, const char *type, const char *body)
{
    char xml[512];

    snprintf(xml, sizeof(xml), "<message%s%s%s><body>%s</body></message>",
             type ? " type='" : "", type ? type : "", type ? "'" : "", body);
    return harness_inject(BOB, to, xml);
}

/* Errors returned to the sender with condition cond. */
static int
bounced(const char *cond)
{
    int n = 0;

    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *st = harness_sent_stanza(i);
        const char *t = roost_stanza_attr(st, "type");
        const char *c = harness_error_cond(st);

        if (t != NULL && strcmp(t, "error") == 0 && c != NULL &&
            strcmp(c, cond) == 0)
            n++;
    }
    return n;
}

/* Messages delivered to jid. */
static int
messages(const char *jid)
{
    int n = 0;

    for (size_t i = 0; i < harness_delivered_count(jid); i++)
        n += strcmp(roost_stanza_name(harness_delivered_stanza(jid, i)),
                    "message") == 0;
    return n;
}

/* The body of the i-th message delivered to jid. */
static const char *
body(const char *jid, int i)
{
    for (size_t k = 0; k < harness_delivered_count(jid); k++) {
        roost_stanza_t *st = harness_delivered_stanza(jid, k);

        if (strcmp(roost_stanza_name(st), "message") == 0 && i-- == 0)
            return roost_stanza_child_text(st, ROOST_NS_CLIENT, "body");
    }
    return NULL;
}

static void
online(const char *jid, const char *presence)
{
    if (harness_session(jid) == NULL)
        ck_assert_ptr_nonnull(harness_session_add(jid, 0, 0));
    ck_assert_int_ge(harness_inject(jid, NULL, presence), 0);
}

/* ---- store and deliver ---- */

START_TEST(test_store_deliver_order)
{
    roost_stanza_t *m, *d;

    ck_assert_int_eq(send_msg(ALICE, "chat", "one"), ROOST_HANDLED);
    ck_assert_int_eq(send_msg(ALICE, NULL, "two"), ROOST_HANDLED);
    ck_assert_int_eq(send_msg(ALICE, "normal", "three"), ROOST_HANDLED);
    /* To the full JID of a resource that is not online (RFC 6121
     * §8.5.3.2.1: as if to the bare JID). */
    ck_assert_int_eq(send_msg(PHONE, "chat", "four"), ROOST_HANDLED);
    ck_assert_int_eq(harness_sent_count(), 0); /* no error to the sender */
    ck_assert_int_eq(stored(), 4);

    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 4);
    ck_assert_pstr_eq(body(PHONE, 0), "one");
    ck_assert_pstr_eq(body(PHONE, 1), "two");
    ck_assert_pstr_eq(body(PHONE, 2), "three");
    ck_assert_pstr_eq(body(PHONE, 3), "four");
    m = harness_delivered_stanza(PHONE, 0);
    ck_assert_pstr_eq(roost_stanza_attr(m, "from"), BOB);
    ck_assert_pstr_eq(roost_stanza_attr(m, "type"), "chat");
    /* XEP-0203 delayed delivery, from the server. */
    d = roost_stanza_child(m, "urn:xmpp:delay", "delay");
    ck_assert_ptr_nonnull(d);
    ck_assert_pstr_eq(roost_stanza_attr(d, "from"), HOST);
    ck_assert_ptr_nonnull(roost_stanza_attr(d, "stamp"));
    ck_assert_int_eq(strlen(roost_stanza_attr(d, "stamp")) >= 20, 1);
    ck_assert_int_eq(roost_stanza_attr(d, "stamp")[10], 'T');
    /* Delivered messages are removed: a second login gets nothing. */
    ck_assert_int_eq(stored(), 0);
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 0);
}
END_TEST

/* Only the first non-negative available presence delivers; an update
 * does not fetch again (nothing was stored meanwhile anyway: online). */
START_TEST(test_online_not_stored)
{
    online(PHONE, "<presence/>");
    ck_assert_int_eq(send_msg(ALICE, "chat", "live"), ROOST_HANDLED);
    ck_assert_int_eq(messages(PHONE), 1);
    ck_assert_int_eq(stored(), 0);
}
END_TEST

/* A client's own delay claiming to be the server's is not kept. */
START_TEST(test_forged_delay)
{
    roost_stanza_t *m;
    int n = 0;

    ck_assert_int_eq(
        harness_inject(BOB, ALICE,
                       "<message type='chat'><body>x</body>"
                       "<delay xmlns='urn:xmpp:delay' from='localhost' "
                       "stamp='2000-01-01T00:00:00Z'/></message>"),
        ROOST_HANDLED);
    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 1);
    m = harness_delivered_stanza(PHONE, 0);
    for (roost_stanza_t *c = roost_stanza_first_child(m); c != NULL;
         c = roost_stanza_next_sibling(c))
        n += strcmp(roost_stanza_name(c), "delay") == 0;
    ck_assert_int_eq(n, 1);
    ck_assert_str_ne(
        roost_stanza_attr(roost_stanza_child(m, "urn:xmpp:delay", "delay"),
                          "stamp"),
        "2000-01-01T00:00:00Z");
}
END_TEST

static int
has_private(void *arg, const char *id, int64_t when, const char *with,
            const char *val, size_t len)
{
    roost_stanza_t *st = roost_stanza_parse(val, len);

    ck_assert_ptr_nonnull(st);
    if (roost_stanza_child(st, "urn:xmpp:carbons:2", "private") != NULL)
        (*(int *)arg)++;
    roost_stanza_unref(st);
    return 0;
}

/* XEP-0280 §9: the receiving server removes <private/> before delivery;
 * a message stored offline is stored and delivered without it, and
 * <private/> alone with a chat state is no content. */
START_TEST(test_carbons_private_stripped)
{
    roost_store_query_t q = {0};
    roost_stanza_t *m;
    int n = 0;

    ck_assert_int_eq(
        harness_inject(BOB, ALICE,
                       "<message type='chat'><body>secret</body>"
                       "<private xmlns='urn:xmpp:carbons:2'/>"
                       "<no-copy xmlns='urn:xmpp:hints'/></message>"),
        ROOST_HANDLED);
    ck_assert_int_eq(
        harness_inject(BOB, ALICE,
                       "<message type='chat'><private "
                       "xmlns='urn:xmpp:carbons:2'/><composing "
                       "xmlns='http://jabber.org/protocol/chatstates'/>"
                       "</message>"),
        ROOST_HANDLED);
    ck_assert_int_eq(stored(), 1);
    ck_assert_int_eq(roost_store_find(store, "alice", &q, has_private, &n), 1);
    ck_assert_int_eq(n, 0);
    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 1);
    m = harness_delivered_stanza(PHONE, 0);
    ck_assert_str_eq(roost_stanza_child_text(m, ROOST_NS_CLIENT, "body"),
                     "secret");
    ck_assert_ptr_null(roost_stanza_child(m, "urn:xmpp:carbons:2", "private"));
    /* the other hints stay */
    ck_assert_ptr_nonnull(roost_stanza_child(m, "urn:xmpp:hints", "no-copy"));
}
END_TEST

/* ---- what is not stored (XEP-0160 §3) ---- */

static const char *const unstored[] = {"headline", "groupchat", "error"};

START_TEST(test_types_not_stored)
{
    send_msg(ALICE, unstored[_i], "no");
    send_msg(PHONE, unstored[_i], "no");
    ck_assert_int_eq(stored(), 0);
    /* RFC 6121 §8.5.2.2.1: groupchat to an offline user is an error. */
    if (strcmp(unstored[_i], "groupchat") == 0)
        ck_assert_int_ge(bounced("service-unavailable"), 1);
    else
        ck_assert_int_eq(harness_sent_count(), 0);
    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 0);
}
END_TEST

START_TEST(test_chat_states)
{
    /* Only a chat state: dropped silently. */
    ck_assert_int_eq(
        harness_inject(BOB, ALICE,
                       "<message type='chat'><composing "
                       "xmlns='http://jabber.org/protocol/chatstates'/>"
                       "</message>"),
        ROOST_HANDLED);
    ck_assert_int_eq(stored(), 0);
    ck_assert_int_eq(harness_sent_count(), 0);
    /* With a body, or with the <store/> hint: stored. */
    ck_assert_int_eq(
        harness_inject(BOB, ALICE,
                       "<message type='chat'><body>b</body><active "
                       "xmlns='http://jabber.org/protocol/chatstates'/>"
                       "</message>"),
        ROOST_HANDLED);
    ck_assert_int_eq(
        harness_inject(BOB, ALICE,
                       "<message type='chat'><gone "
                       "xmlns='http://jabber.org/protocol/chatstates'/>"
                       "<store xmlns='urn:xmpp:hints'/></message>"),
        ROOST_HANDLED);
    ck_assert_int_eq(stored(), 2);
    /* <no-store/>: not stored, so undeliverable: service-unavailable. */
    harness_inject(BOB, ALICE,
                   "<message type='chat'><body>c</body>"
                   "<no-store xmlns='urn:xmpp:hints'/></message>");
    ck_assert_int_eq(stored(), 2);
    ck_assert_int_eq(bounced("service-unavailable"), 1);
}
END_TEST

/* ---- quota (XEP-0160 §2 step 3) ---- */

static void
quota_two(void *conf)
{
    ((struct offline_conf_view *)conf)->max_messages = 2;
}

START_TEST(test_quota)
{
    ck_assert_int_eq(harness_reset(), 0);
    load(quota_two);
    ck_assert_int_eq(send_msg(ALICE, "chat", "1"), ROOST_HANDLED);
    ck_assert_int_eq(send_msg(ALICE, "chat", "2"), ROOST_HANDLED);
    ck_assert_int_eq(bounced("service-unavailable"), 0);
    send_msg(ALICE, "chat", "3");
    ck_assert_int_eq(stored(), 2);
    ck_assert_int_eq(bounced("service-unavailable"), 1);
    /* The error goes to the sender, about the message. */
    ck_assert_pstr_eq(roost_stanza_attr(harness_sent_stanza(0), "to"), BOB);
    ck_assert_pstr_eq(roost_stanza_name(harness_sent_stanza(0)), "message");
    /* Once delivered, there is room again. */
    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 2);
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    harness_clear();
    ck_assert_int_eq(send_msg(ALICE, "chat", "4"), ROOST_HANDLED);
    ck_assert_int_eq(bounced("service-unavailable"), 0);
    ck_assert_int_eq(stored(), 1);
}
END_TEST

/* The default quota is the documented 1000. */
START_TEST(test_quota_default)
{
    const struct offline_conf_view *c = roost_mod_conf(harness_mod("offline"));

    ck_assert_int_eq(c->max_messages, 1000);
}
END_TEST

/* ---- two sessions ---- */

/* Both resources come online while the first read is in flight: the
 * messages are delivered once, to one of them. */
START_TEST(test_two_sessions_once)
{
    int a, b;

    send_msg(ALICE, "chat", "x");
    send_msg(ALICE, "chat", "y");
    ck_assert_int_eq(stored(), 2);
    harness_storage_hold(1);
    online(PHONE, "<presence/>");
    online(LAPTOP, "<presence/>");
    ck_assert_int_ge(harness_storage_pending(), 1);
    harness_storage_run();
    harness_storage_hold(0);
    a = messages(PHONE);
    b = messages(LAPTOP);
    ck_assert_msg(a + b == 2 && (a == 0 || b == 0),
                  "delivered %d to the phone and %d to the laptop", a, b);
    ck_assert_int_eq(stored(), 0);
    /* Later logins get nothing more. */
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_int_eq(harness_session_remove(LAPTOP), 0);
    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 0);
}
END_TEST

/* The session that asked leaves before the read completes: the other
 * one, which came online meanwhile, gets them. */
START_TEST(test_first_session_gone)
{
    send_msg(ALICE, "chat", "x");
    harness_storage_hold(1);
    online(PHONE, "<presence/>");
    online(LAPTOP, "<presence/>");
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    harness_storage_run();
    harness_storage_hold(0);
    ck_assert_int_eq(messages(LAPTOP), 1);
    ck_assert_int_eq(stored(), 0);
}
END_TEST

/* A second resource coming online after delivery gets nothing. */
START_TEST(test_second_session_later)
{
    send_msg(ALICE, "chat", "x");
    online(PHONE, "<presence/>");
    online(LAPTOP, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 1);
    ck_assert_int_eq(messages(LAPTOP), 0);
}
END_TEST

/* ---- negative priority (RFC 6121 §8.5.2.1.1, XEP-0160 §2) ---- */

START_TEST(test_negative_priority)
{
    online(PHONE, "<presence><priority>-1</priority></presence>");
    /* Available but negative: as if offline, so stored. */
    ck_assert_int_eq(send_msg(ALICE, "chat", "neg"), ROOST_HANDLED);
    ck_assert_int_eq(messages(PHONE), 0);
    ck_assert_int_eq(stored(), 1);
    ck_assert_int_eq(harness_sent_count(), 0);
    /* Still negative: no delivery. */
    online(PHONE, "<presence><priority>-5</priority></presence>");
    ck_assert_int_eq(messages(PHONE), 0);
    /* Non-negative now: delivered. */
    online(PHONE, "<presence><priority>0</priority></presence>");
    ck_assert_int_eq(messages(PHONE), 1);
    ck_assert_pstr_eq(body(PHONE, 0), "neg");
    ck_assert_int_eq(stored(), 0);
}
END_TEST

/* A negative resource and a non-negative one: the non-negative one gets
 * stored messages; the negative one nothing. */
START_TEST(test_negative_and_positive)
{
    send_msg(ALICE, "chat", "m");
    online(LAPTOP, "<presence><priority>-1</priority></presence>");
    ck_assert_int_eq(messages(LAPTOP), 0);
    online(PHONE, "<presence><priority>5</priority></presence>");
    ck_assert_int_eq(messages(PHONE), 1);
    ck_assert_int_eq(messages(LAPTOP), 0);
}
END_TEST

/* ---- persistence ---- */

START_TEST(test_restart)
{
    send_msg(ALICE, "chat", "before restart");
    ck_assert_int_eq(harness_storage_pending(), 0);
    harness_user_drop("alice");
    ck_assert_int_eq(harness_unload(harness_mod("offline")), 0);
    ck_assert_int_eq(harness_unload(harness_mod("message")), 0);
    ck_assert_ptr_nonnull(harness_load(&roost_module_message, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_offline, HOST, NULL));
    online(PHONE, "<presence/>");
    ck_assert_int_eq(messages(PHONE), 1);
    ck_assert_pstr_eq(body(PHONE, 0), "before restart");
}
END_TEST

/* XEP-0160 §4: the server advertises "msgoffline". */
START_TEST(test_disco_feature)
{
    ck_assert_int_ge(harness_feature_count(), 1);
}
END_TEST

static Suite *
offline_suite(void)
{
    Suite *s = suite_create("mod_offline");
    TCase *tc;

    tc = tcase_create("store_deliver");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_store_deliver_order);
    tcase_add_test(tc, test_online_not_stored);
    tcase_add_test(tc, test_forged_delay);
    tcase_add_test(tc, test_carbons_private_stripped);
    tcase_add_test(tc, test_restart);
    tcase_add_test(tc, test_disco_feature);
    suite_add_tcase(s, tc);

    tc = tcase_create("not_stored");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_types_not_stored, 0,
                        (int)(sizeof(unstored) / sizeof(unstored[0])));
    tcase_add_test(tc, test_chat_states);
    suite_add_tcase(s, tc);

    tc = tcase_create("quota");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_quota);
    tcase_add_test(tc, test_quota_default);
    suite_add_tcase(s, tc);

    tc = tcase_create("sessions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_two_sessions_once);
    tcase_add_test(tc, test_first_session_gone);
    tcase_add_test(tc, test_second_session_later);
    tcase_add_test(tc, test_negative_priority);
    tcase_add_test(tc, test_negative_and_positive);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(offline_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
