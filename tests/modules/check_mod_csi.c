/* tests/modules/check_mod_csi.c: mod_csi (XEP-0352 client state indication)
 * on the fake host, with the ROOST_EV_DELIVER hooks on.
 *
 * Covers: the <csi/> stream feature and its removal on unload; the
 * <active/> and <inactive/> nonzas; that a session which never sent
 * <inactive/> is not touched; while inactive, presence held and coalesced
 * to the latest per sender (full JID), chat states held, everything urgent
 * (messages with a body or any other payload, iqs, errors, subscription
 * requests) delivered at once after the held stanzas, in order; <active/>
 * flushing; the max_held bound (default and configured); per-session
 * state; and a session that ends while inactive (held stanzas dropped,
 * slot freed: the harness counts a slot left set, LeakSanitizer a leaked
 * reference).
 * Not for: the <csi/> feature on a real stream (tests/integration/csi.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_csi;

#define HOST  "localhost"
#define PHONE "alice@localhost/phone"
#define DESK  "alice@localhost/desk"
#define BOB   "bob@example.net/pc"
#define CAROL "carol@localhost/tab"

#define CHATSTATE(st) "<" st " xmlns='http://jabber.org/protocol/chatstates'/>"

/* A stand-in for mod_presence: presence to a full JID of a session,
 * whatever its type, is handed to roost_session_deliver (the harness's
 * default routing delivers only available and unavailable presence). */
static roost_verdict_t
deliver_presence(const roost_ev_t *ev, void *arg)
{
    roost_session_t *s = harness_session(roost_jid_full(ev->to));

    if (s == NULL)
        return ROOST_PASS;
    roost_session_deliver(s, ev->stanza);
    return ROOST_HANDLED;
}

static int
presence_load(roost_mod_t *m)
{
    return roost_hook(m, ROOST_EV_PRESENCE_FULL, ROOST_PRIO_DEFAULT,
                      deliver_presence, NULL);
}

static const roost_module_t test_presence = {
    .abi = ROOST_ABI,
    .name = "test_presence",
    .load = presence_load,
};

static void
max_held_3(void *conf)
{
    *(int64_t *)conf = 3; /* struct csi_conf's only field */
}

static void
start(void (*conf_init)(void *))
{
    harness_deliver_hooks(1);
    ck_assert_ptr_nonnull(harness_load(&roost_module_csi, HOST, conf_init));
    ck_assert_ptr_nonnull(harness_load(&test_presence, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(DESK, 1, 0));
}

static void
setup(void)
{
    start(NULL);
}

static void
setup_small(void)
{
    start(max_held_3);
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
    harness_deliver_hooks(0);
}

/* Sends <name xmlns='urn:xmpp:csi:0'/> from the session jid. */
static int
nonza(const char *jid, const char *name)
{
    char xml[128];
    roost_stanza_t *el;
    int v;

    snprintf(xml, sizeof(xml), "<%s xmlns='urn:xmpp:csi:0'/>", name);
    el = roost_stanza_parse(xml, strlen(xml));
    ck_assert_ptr_nonnull(el);
    v = harness_nonza_inject(jid, el);
    roost_stanza_unref(el);
    return v;
}

/* The ids of what jid got so far, comma-separated ("" for nothing). */
static const char *
ids(const char *jid)
{
    static char buf[4096];
    size_t n = harness_delivered_count(jid), len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *id =
            roost_stanza_attr(harness_delivered_stanza(jid, i), "id");

        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
                                i > 0 ? "," : "", id != NULL ? id : "?");
        ck_assert_uint_lt(len, sizeof(buf));
    }
    return buf;
}

static void
presence(const char *from, const char *to, const char *id, const char *show)
{
    char xml[256];

    snprintf(xml, sizeof(xml), "<presence id='%s'><show>%s</show></presence>",
             id, show);
    ck_assert_int_eq(harness_inject(from, to, xml), ROOST_HANDLED);
}

static void
chatstate(const char *from, const char *to, const char *id, const char *st)
{
    char xml[256];

    snprintf(xml, sizeof(xml),
             "<message type='chat' id='%s'><%s "
             "xmlns='http://jabber.org/protocol/chatstates'/></message>",
             id, st);
    ck_assert_int_eq(harness_inject(from, to, xml), ROOST_HANDLED);
}

static void
chat(const char *from, const char *to, const char *id)
{
    char xml[256];

    snprintf(xml, sizeof(xml),
             "<message type='chat' id='%s'><body>hi</body></message>", id);
    ck_assert_int_eq(harness_inject(from, to, xml), ROOST_HANDLED);
}

START_TEST(test_stream_feature)
{
    roost_mod_t *m = harness_mod("csi");

    ck_assert_int_eq(harness_stream_feature_count(), 1);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_DELIVER), 1);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_SESSION_CLOSED), 1);
    ck_assert_int_eq(harness_unload(m), 0);
    ck_assert_int_eq(harness_stream_feature_count(), 0);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_DELIVER), 0);
    /* Without the module the nonzas are unknown: the stream closes. */
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_PASS);
    ck_assert_pstr_eq(harness_last_close(), "unsupported-stanza-type");
}
END_TEST

START_TEST(test_nonzas_handled)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    /* <active/> first, never inactive: nothing to do, nothing allocated
     * (teardown's harness_reset counts slots left set). */
    ck_assert_int_eq(nonza(DESK, "active"), ROOST_HANDLED);
    ck_assert_ptr_null(harness_last_close());
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
}
END_TEST

START_TEST(test_active_untouched)
{
    presence(BOB, PHONE, "p1", "away");
    chatstate(BOB, PHONE, "c1", "composing");
    ck_assert_str_eq(ids(PHONE), "p1,c1");
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    presence(BOB, PHONE, "p2", "dnd");
    ck_assert_str_eq(ids(PHONE), "p1,c1,p2");
}
END_TEST

START_TEST(test_presence_held)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "p1", "away");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    ck_assert_int_eq(
        harness_inject(BOB, PHONE, "<presence id='u1' type='unavailable'/>"),
        ROOST_HANDLED);
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    /* The other resource of the account is active. */
    presence(BOB, DESK, "d1", "away");
    ck_assert_str_eq(ids(DESK), "d1");
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    /* Unavailable replaced the available presence of the same sender. */
    ck_assert_str_eq(ids(PHONE), "u1");
}
END_TEST

/* Latest per sender, and a sender is a full JID: two resources of one
 * contact are two presences. */
START_TEST(test_presence_coalesced)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "b1", "away");
    presence(CAROL, PHONE, "c1", "away");
    presence("bob@example.net/phone", PHONE, "bp1", "xa");
    presence(BOB, PHONE, "b2", "dnd");
    presence(BOB, PHONE, "b3", "chat");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    ck_assert_str_eq(ids(PHONE), "c1,bp1,b3");
    ck_assert_str_eq(roost_stanza_child_text(harness_delivered_stanza(PHONE, 2),
                                             NULL, "show"),
                     "chat");
}
END_TEST

START_TEST(test_chat_states_held)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    chatstate(BOB, PHONE, "s1", "composing");
    chatstate(BOB, PHONE, "s2", "paused");
    /* A chat state with its thread is still only a chat state. */
    ck_assert_int_eq(
        harness_inject(BOB, PHONE,
                       "<message type='chat' id='s3'>"
                       "<thread>t1</thread>" CHATSTATE("gone") "</message>"),
        ROOST_HANDLED);
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    /* Chat states are not coalesced: each is delivered. */
    ck_assert_str_eq(ids(PHONE), "s1,s2,s3");
}
END_TEST

/* A message with a body goes at once, after what was held, in order. */
START_TEST(test_urgent_flushes_in_order)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "p1", "away");
    chatstate(BOB, PHONE, "s1", "composing");
    presence(CAROL, PHONE, "p2", "away");
    chatstate(BOB, PHONE, "s2", "active");
    chat(BOB, PHONE, "m1");
    ck_assert_str_eq(ids(PHONE), "p1,s1,p2,s2,m1");
    /* Still inactive: holding starts again. */
    presence(BOB, PHONE, "p3", "xa");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 5);
    chat(CAROL, PHONE, "m2");
    ck_assert_str_eq(ids(PHONE), "p1,s1,p2,s2,m1,p3,m2");
}
END_TEST

/* What counts as urgent: each row is delivered at once, after the held
 * presence. */
static const struct {
    const char *xml;
} urgent[] = {
    {"<message type='chat' id='x'><body>hi</body>" CHATSTATE(
        "active") "</message>"},
    {"<message id='x'><received xmlns='urn:xmpp:receipts' id='m0'/>"
     "</message>"},
    {"<message type='chat' id='x'><encrypted xmlns='eu.siacs.conversations."
     "axolotl'/>" CHATSTATE("active") "</message>"},
    {"<message type='error' id='x'>" CHATSTATE("composing") "</message>"},
    {"<message type='headline' id='x'/>"},
    {"<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>"},
    {"<iq type='result' id='x'/>"},
    {"<presence type='subscribe' id='x'/>"},
    {"<presence type='subscribed' id='x'/>"},
    {"<presence type='unsubscribed' id='x'/>"},
    {"<presence type='error' id='x'><error type='cancel'>"
     "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
     "</error></presence>"},
};

START_TEST(test_urgent)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(CAROL, PHONE, "p1", "away");
    ck_assert_int_eq(harness_inject(BOB, PHONE, urgent[_i].xml), ROOST_HANDLED);
    ck_assert_str_eq(ids(PHONE), "p1,x");
}
END_TEST

START_TEST(test_active_flushes)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "p1", "away");
    chatstate(CAROL, PHONE, "s1", "composing");
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    ck_assert_str_eq(ids(PHONE), "p1,s1");
    /* Active again: nothing is held any more. */
    presence(BOB, PHONE, "p2", "dnd");
    ck_assert_str_eq(ids(PHONE), "p1,s1,p2");
    /* And inactive once more holds again. */
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "p3", "xa");
    ck_assert_str_eq(ids(PHONE), "p1,s1,p2");
    ck_assert_int_eq(nonza(PHONE, "active"), ROOST_HANDLED);
    ck_assert_str_eq(ids(PHONE), "p1,s1,p2,p3");
    ck_assert_uint_eq(harness_delivered_count(DESK), 0);
}
END_TEST

/* The default bound: 100 held, the 101st flushes them and goes too. */
START_TEST(test_max_held_default)
{
    char from[64], id[16];

    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    for (int i = 0; i < 100; i++) {
        snprintf(from, sizeof(from), "u%d@example.net/r", i);
        snprintf(id, sizeof(id), "p%d", i);
        presence(from, PHONE, id, "away");
    }
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    presence("last@example.net/r", PHONE, "p100", "away");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 101);
    for (int i = 0; i <= 100; i++) {
        snprintf(id, sizeof(id), "p%d", i);
        ck_assert_pstr_eq(
            roost_stanza_attr(harness_delivered_stanza(PHONE, (size_t)i), "id"),
            id);
    }
}
END_TEST

START_TEST(test_max_held_configured)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "p1", "away");
    chatstate(BOB, PHONE, "s1", "composing");
    presence(CAROL, PHONE, "p2", "away");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    /* A replacement does not count twice: still three held. */
    presence(CAROL, PHONE, "p3", "dnd");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    chatstate(BOB, PHONE, "s2", "paused");
    ck_assert_str_eq(ids(PHONE), "p1,s1,p3,s2");
    /* The hold starts again, empty. */
    chatstate(BOB, PHONE, "s3", "composing");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 4);
}
END_TEST

/* A session that ends while inactive: its held stanzas are dropped (they
 * were presence and chat states only), its slot freed; the other session
 * is unaffected. */
START_TEST(test_session_end)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    ck_assert_int_eq(nonza(DESK, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "p1", "away");
    chatstate(BOB, PHONE, "s1", "composing");
    presence(BOB, DESK, "d1", "away");
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    ck_assert_uint_eq(harness_delivered_count(DESK), 0);
    /* A new session with the same JID starts active. */
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    presence(BOB, PHONE, "p2", "dnd");
    ck_assert_str_eq(ids(PHONE), "p2");
    ck_assert_int_eq(nonza(DESK, "active"), ROOST_HANDLED);
    ck_assert_str_eq(ids(DESK), "d1");
}
END_TEST

/* Ends with stanzas held: harness_reset closes the session (teardown). */
START_TEST(test_reset_while_held)
{
    ck_assert_int_eq(nonza(PHONE, "inactive"), ROOST_HANDLED);
    presence(BOB, PHONE, "p1", "away");
    chatstate(BOB, PHONE, "s1", "composing");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
}
END_TEST

static Suite *
csi_suite(void)
{
    Suite *s = suite_create("mod_csi");
    TCase *tc;

    tc = tcase_create("advertise");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stream_feature);
    tcase_add_test(tc, test_nonzas_handled);
    suite_add_tcase(s, tc);

    tc = tcase_create("hold");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_active_untouched);
    tcase_add_test(tc, test_presence_held);
    tcase_add_test(tc, test_presence_coalesced);
    tcase_add_test(tc, test_chat_states_held);
    suite_add_tcase(s, tc);

    tc = tcase_create("flush");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_urgent_flushes_in_order);
    tcase_add_loop_test(tc, test_urgent, 0,
                        (int)(sizeof(urgent) / sizeof(urgent[0])));
    tcase_add_test(tc, test_active_flushes);
    suite_add_tcase(s, tc);

    tc = tcase_create("max_held");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_max_held_default);
    suite_add_tcase(s, tc);
    tc = tcase_create("max_held_configured");
    tcase_add_checked_fixture(tc, setup_small, teardown);
    tcase_add_test(tc, test_max_held_configured);
    suite_add_tcase(s, tc);

    tc = tcase_create("session_end");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_session_end);
    tcase_add_test(tc, test_reset_while_held);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(csi_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
