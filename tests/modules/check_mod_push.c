/* tests/modules/check_mod_push.c: mod_push (XEP-0357, the user's server
 * side) with mod_message on the fake host.
 *
 * Juliet registers push services at push.example (another domain: what
 * the module publishes leaves the vhost and is captured as sent); Romeo
 * writes to her.  Cases: enable and disable forms and their errors
 * (§5, §6), what is stored and loaded again, the notification's contents
 * (§7), the decision per registration by the state of the client that
 * enabled it: gone / online / hibernating (bare and full JID, priority
 * tiers, other clients online, ownership moved and kept across a
 * restart), answers from the service (errors disable, §7.1),
 * options (body, rate limit, registrations limit), and the account
 * disco feature.
 * Not for: delivery itself (check_mod_message.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_message;
extern const roost_module_t roost_module_push;

#define NS      "urn:xmpp:push:0"
#define NS_PS   "http://jabber.org/protocol/pubsub"
#define NS_XD   "jabber:x:data"
#define JULIET  "juliet@localhost"
#define PHONE   "juliet@localhost/phone"
#define DESK    "juliet@localhost/desk"
#define TABLET  "juliet@localhost/tablet"
#define ROMEO   "romeo@localhost/garden"
#define SERVICE "push.example"

static int conf_body, conf_interval_s, conf_max_regs;

static void
push_conf_init(void *conf)
{
    /* Field order of struct push_conf in mod_push.c. */
    struct {
        int include_body;
        int64_t min_interval, max_registrations, max_errors;
    } *c = conf;

    if (conf_body)
        c->include_body = 1;
    if (conf_interval_s)
        c->min_interval = (int64_t)conf_interval_s * 1000;
    if (conf_max_regs)
        c->max_registrations = conf_max_regs;
}

static void
load(void)
{
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_message, "localhost", NULL));
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_push, "localhost", push_conf_init));
}

static void
setup(void)
{
    conf_body = conf_interval_s = conf_max_regs = 0;
    /* what reaches a hibernating session is seen at ROOST_EV_DELIVER */
    harness_deliver_hooks(1);
    load();
    ck_assert_ptr_nonnull(harness_session_add(ROMEO, 1, 0));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
    harness_deliver_hooks(0);
}

/* The last stanza delivered to jid. */
static roost_stanza_t *
last(const char *jid)
{
    size_t n = harness_delivered_count(jid);

    ck_assert_uint_gt(n, 0);
    return harness_delivered_stanza(jid, n - 1);
}

/* Sends xml as an iq set from PHONE and returns the answer's type. */
static const char *
iq(const char *xml)
{
    roost_stanza_t *r;

    harness_inject(PHONE, NULL, xml);
    r = last(PHONE);
    ck_assert_str_eq(roost_stanza_name(r), "iq");
    return roost_stanza_attr(r, "type");
}

static void
enable(const char *node, const char *secret)
{
    char xml[512];

    if (secret != NULL)
        snprintf(xml, sizeof(xml),
                 "<iq type='set' id='en'><enable xmlns='" NS "' jid='" SERVICE
                 "' node='%s'><x xmlns='" NS_XD "'>"
                 "<field var='FORM_TYPE'><value>"
                 "http://jabber.org/protocol/pubsub#publish-options</value>"
                 "</field><field var='secret'><value>%s</value></field>"
                 "</x></enable></iq>",
                 node, secret);
    else
        snprintf(xml, sizeof(xml),
                 "<iq type='set' id='en'><enable xmlns='" NS "' jid='" SERVICE
                 "' node='%s'/></iq>",
                 node);
    ck_assert_str_eq(iq(xml), "result");
}

static void
romeo_says(const char *to, const char *body)
{
    char xml[512];

    snprintf(xml, sizeof(xml),
             "<message type='chat' id='m%u'><body>%s</body></message>",
             (unsigned)harness_sent_count(), body);
    harness_inject(ROMEO, to, xml);
}

/* Field var's value in the form x, or NULL. */
static const char *
field(roost_stanza_t *x, const char *var)
{
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *v = roost_stanza_attr(f, "var");

        if (v != NULL && strcmp(v, var) == 0)
            return roost_stanza_child_text(f, NS_XD, "value");
    }
    return NULL;
}

/* The i-th sent stanza checked as a publish to SERVICE/node; returns the
 * summary form. */
static roost_stanza_t *
publish(size_t i, const char *node)
{
    roost_stanza_t *st = harness_sent_stanza(i), *ps, *pub, *item, *n, *x;

    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(roost_stanza_name(st), "iq");
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "set");
    ck_assert_str_eq(roost_stanza_attr(st, "from"), JULIET);
    ck_assert_str_eq(roost_stanza_attr(st, "to"), SERVICE);
    ck_assert_ptr_nonnull(roost_stanza_attr(st, "id"));
    ps = roost_stanza_child(st, NS_PS, "pubsub");
    ck_assert_ptr_nonnull(ps);
    pub = roost_stanza_child(ps, NS_PS, "publish");
    ck_assert_ptr_nonnull(pub);
    ck_assert_str_eq(roost_stanza_attr(pub, "node"), node);
    item = roost_stanza_child(pub, NS_PS, "item");
    ck_assert_ptr_nonnull(item);
    n = roost_stanza_child(item, NS, "notification");
    ck_assert_ptr_nonnull(n);
    x = roost_stanza_child(n, NS_XD, "x");
    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(roost_stanza_attr(x, "type"), "submit");
    ck_assert_str_eq(field(x, "FORM_TYPE"), "urn:xmpp:push:summary");
    return x;
}

/* --- enable / disable --- */

START_TEST(test_feature)
{
    ck_assert_int_eq(harness_account_feature_count(), 1);
    ck_assert_int_eq(harness_feature_count(), 0);
}
END_TEST

static const struct {
    const char *xml, *cond;
} bad_enables[] = {
    {"<enable xmlns='" NS "' node='n'/>", "bad-request"},
    {"<enable xmlns='" NS "' jid='a@b@c' node='n'/>", "bad-request"},
    {"<enable xmlns='" NS "' jid='" SERVICE "'/>", "bad-request"},
    {"<enable xmlns='" NS "' jid='" SERVICE "' node=''/>", "bad-request"},
    /* a data form that is not publish options */
    {"<enable xmlns='" NS "' jid='" SERVICE "' node='n'><x xmlns='" NS_XD
     "'><field var='FORM_TYPE'><value>urn:other</value></field></x>"
     "</enable>",
     "bad-request"},
    {"<enable xmlns='" NS "' jid='" SERVICE "' node='n'><x xmlns='" NS_XD
     "'/></enable>",
     "bad-request"},
    {"<disable xmlns='" NS "'/>", "bad-request"},
    {"<disable xmlns='" NS "' jid='@bad'/>", "bad-request"},
};

START_TEST(test_enable_bad)
{
    char xml[512];
    roost_stanza_t *r;

    harness_session_add(PHONE, 1, 0);
    snprintf(xml, sizeof(xml), "<iq type='set' id='b'>%s</iq>",
             bad_enables[_i].xml);
    ck_assert_str_eq(iq(xml), "error");
    r = last(PHONE);
    ck_assert_str_eq(harness_error_cond(r), bad_enables[_i].cond);
    /* nothing was registered */
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "hi");
    ck_assert_uint_eq(harness_sent_count(), 0);
}
END_TEST

START_TEST(test_enable_to_host_is_not_ours)
{
    harness_session_add(PHONE, 1, 0);
    harness_inject(PHONE, "localhost",
                   "<iq type='set' id='h'><enable xmlns='" NS "' jid='" SERVICE
                   "' node='n'/></iq>");
    ck_assert_str_eq(harness_error_cond(last(PHONE)), "service-unavailable");
}
END_TEST

START_TEST(test_enable_stores)
{
    roost_store_t *st = harness_store("push", ROOST_STORE_MAP);
    char *val = NULL;
    size_t len;
    roost_stanza_t *en, *x;

    harness_session_add(PHONE, 1, 0);
    enable("node1", "s3cret");
    ck_assert_str_eq(roost_stanza_attr(last(PHONE), "id"), "en");
    ck_assert_int_eq(
        roost_store_get(st, "juliet", "12:push.examplenode1", &val, &len), 0);
    en = roost_stanza_parse(val, len);
    roost_free(val);
    ck_assert_ptr_nonnull(en);
    ck_assert_str_eq(roost_stanza_attr(en, "jid"), SERVICE);
    ck_assert_str_eq(roost_stanza_attr(en, "node"), "node1");
    x = roost_stanza_child(en, NS_XD, "x");
    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(field(x, "secret"), "s3cret");
    roost_stanza_unref(en);

    /* §5: the same jid and node again replaces the options */
    enable("node1", "other");
    ck_assert_int_eq(
        roost_store_get(st, "juliet", "12:push.examplenode1", &val, &len), 0);
    ck_assert_ptr_nonnull(strstr(val, "other"));
    ck_assert_ptr_null(strstr(val, "s3cret"));
    roost_free(val);

    /* A restart: the registration is loaded from storage. */
    harness_session_remove(PHONE);
    harness_user_drop("juliet");
    ck_assert_int_eq(harness_unload(harness_mod("push")), 0);
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_push, "localhost", push_conf_init));
    harness_clear();
    romeo_says(JULIET, "after restart");
    ck_assert_uint_eq(harness_sent_count(), 1);
    x = publish(0, "node1");
    x = roost_stanza_child(
        roost_stanza_child(
            roost_stanza_child(harness_sent_stanza(0), NS_PS, "pubsub"), NS_PS,
            "publish-options"),
        NS_XD, "x");
    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(field(x, "secret"), "other");
    ck_assert_str_eq(field(x, "FORM_TYPE"),
                     "http://jabber.org/protocol/pubsub#publish-options");
    ck_assert_str_eq(roost_stanza_attr(x, "type"), "submit");
}
END_TEST

START_TEST(test_disable)
{
    harness_session_add(PHONE, 1, 0);
    enable("a", NULL);
    enable("b", NULL);
    ck_assert_str_eq(iq("<iq type='set' id='d'><enable xmlns='" NS
                        "' jid='other.example' node='c'/></iq>"),
                     "result");
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "three");
    ck_assert_uint_eq(harness_sent_count(), 3);

    /* one node */
    harness_session_add(PHONE, 1, 0);
    ck_assert_str_eq(iq("<iq type='set' id='d'><disable xmlns='" NS
                        "' jid='" SERVICE "' node='a'/></iq>"),
                     "result");
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "two");
    ck_assert_uint_eq(harness_sent_count(), 2);
    for (size_t i = 0; i < 2; i++)
        ck_assert_str_ne(
            roost_stanza_attr(
                roost_stanza_child(
                    roost_stanza_child(harness_sent_stanza(i), NS_PS, "pubsub"),
                    NS_PS, "publish"),
                "node"),
            "a");

    /* all of a service; disabling what is not there is not an error */
    harness_session_add(PHONE, 1, 0);
    ck_assert_str_eq(iq("<iq type='set' id='d'><disable xmlns='" NS
                        "' jid='" SERVICE "'/></iq>"),
                     "result");
    ck_assert_str_eq(iq("<iq type='set' id='d'><disable xmlns='" NS
                        "' jid='none.example'/></iq>"),
                     "result");
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "one");
    ck_assert_uint_eq(harness_sent_count(), 1);
    ck_assert_str_eq(roost_stanza_attr(harness_sent_stanza(0), "to"),
                     "other.example");
    /* and the store agrees */
    {
        char *val = NULL;
        size_t len;

        ck_assert_int_eq(roost_store_get(harness_store("push", ROOST_STORE_MAP),
                                         "juliet", "12:push.examplea", &val,
                                         &len),
                         -ROOST_ENOTFOUND);
        ck_assert_int_eq(roost_store_get(harness_store("push", ROOST_STORE_MAP),
                                         "juliet", "12:push.exampleb", &val,
                                         &len),
                         -ROOST_ENOTFOUND);
        ck_assert_int_eq(roost_store_get(harness_store("push", ROOST_STORE_MAP),
                                         "juliet", "13:other.examplec", &val,
                                         &len),
                         0);
        roost_free(val);
    }
}
END_TEST

START_TEST(test_max_registrations)
{
    conf_max_regs = 2;
    harness_reset();
    load();
    harness_session_add(ROMEO, 1, 0);
    harness_session_add(PHONE, 1, 0);
    enable("a", NULL);
    enable("b", NULL);
    enable("b", "again"); /* a replacement is not a new one */
    ck_assert_str_eq(iq("<iq type='set' id='x'><enable xmlns='" NS
                        "' jid='" SERVICE "' node='c'/></iq>"),
                     "error");
    ck_assert_str_eq(harness_error_cond(last(PHONE)), "not-allowed");
}
END_TEST

/* --- when to notify --- */

START_TEST(test_offline_notifies)
{
    roost_stanza_t *x;

    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "Wherefore art thou?");
    ck_assert_uint_eq(harness_sent_count(), 1);
    x = publish(0, "n1");
    ck_assert_str_eq(field(x, "message-count"), "1");
    ck_assert_str_eq(field(x, "last-message-sender"), ROMEO);
    /* privacy by default: no body */
    ck_assert_ptr_null(field(x, "last-message-body"));
    ck_assert_ptr_null(roost_stanza_child(
        roost_stanza_child(harness_sent_stanza(0), NS_PS, "pubsub"), NS_PS,
        "publish-options"));
    /* the count goes on while she stays away, also to her full JID */
    romeo_says(PHONE, "Hello?");
    ck_assert_uint_eq(harness_sent_count(), 2);
    ck_assert_str_eq(field(publish(1, "n1"), "message-count"), "2");
    /* she comes back: the count starts again */
    harness_session_add(PHONE, 1, 0);
    harness_session_remove(PHONE);
    romeo_says(JULIET, "Again");
    ck_assert_uint_eq(harness_sent_count(), 3);
    ck_assert_str_eq(field(publish(2, "n1"), "message-count"), "1");
}
END_TEST

START_TEST(test_online_does_not)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_clear();
    romeo_says(JULIET, "bare");
    romeo_says(PHONE, "full");
    ck_assert_uint_eq(harness_sent_count(), 0);
    ck_assert_uint_eq(harness_delivered_count(PHONE), 2);
}
END_TEST

START_TEST(test_hibernating_notifies)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_hibernate(PHONE, 1);
    harness_clear();
    romeo_says(JULIET, "bare");
    ck_assert_uint_eq(harness_sent_count(), 1);
    publish(0, "n1");
    romeo_says(PHONE, "full");
    ck_assert_uint_eq(harness_sent_count(), 2);
    ck_assert_str_eq(field(publish(1, "n1"), "message-count"), "2");
    /* delivery itself is unchanged: the session's queue got both */
    ck_assert_uint_eq(harness_delivered_count(PHONE), 2);
    /* resumed */
    harness_session_hibernate(PHONE, 0);
    romeo_says(JULIET, "back");
    ck_assert_uint_eq(harness_sent_count(), 2);
}
END_TEST

START_TEST(test_tiers)
{
    harness_session_add(PHONE, 1, 5);
    enable("n1", NULL);
    harness_session_add(DESK, 1, 0);
    harness_session_hibernate(PHONE, 1);
    harness_clear();
    /* the bare JID goes to the highest tier only: the hibernating phone */
    romeo_says(JULIET, "to the phone");
    ck_assert_uint_eq(harness_sent_count(), 1);
    ck_assert_uint_eq(harness_delivered_count(DESK), 0);
    /* to the desk's full JID: it is connected */
    romeo_says(DESK, "to the desk");
    ck_assert_uint_eq(harness_sent_count(), 1);
    /* same tier, one connected: the phone's queue gets it too, so the
     * phone's registration is notified (the desk has none) */
    harness_inject(DESK, NULL, "<presence><priority>5</priority></presence>");
    harness_clear();
    romeo_says(JULIET, "both");
    ck_assert_uint_eq(harness_sent_count(), 1);
    ck_assert_uint_eq(harness_delivered_count(DESK), 1);
    /* the phone's tier gone below the desk's: not in its queue, none */
    harness_inject(DESK, NULL, "<presence><priority>9</priority></presence>");
    harness_clear();
    romeo_says(JULIET, "desk only");
    ck_assert_uint_eq(harness_sent_count(), 0);
}
END_TEST

static const struct {
    const char *xml;
    int notifies;
} kinds[] = {
    {"<message type='chat'><body>x</body></message>", 1},
    {"<message><body>x</body></message>", 1},
    {"<message type='normal'><body>x</body></message>", 1},
    {"<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/>"
     "</message>",
     1},
    {"<message type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp>"
     "</message>",
     1},
    {"<message type='chat'><composing "
     "xmlns='http://jabber.org/protocol/chatstates'/></message>",
     0},
    {"<message type='headline'><body>x</body></message>", 0},
    {"<message type='error'><body>x</body></message>", 0},
    {"<message type='groupchat'><body>x</body></message>", 0},
};

START_TEST(test_kinds)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    harness_inject(ROMEO, JULIET, kinds[_i].xml);
    ck_assert_uint_eq(harness_sent_count(), (size_t)kinds[_i].notifies);
}
END_TEST

START_TEST(test_body_option)
{
    roost_stanza_t *x;

    conf_body = 1;
    harness_reset();
    load();
    harness_session_add(ROMEO, 1, 0);
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "Wherefore art thou?");
    x = publish(0, "n1");
    ck_assert_str_eq(field(x, "last-message-body"), "Wherefore art thou?");
    /* never the fallback body of an encrypted message */
    harness_inject(ROMEO, JULIET,
                   "<message type='chat'><body>fallback</body><encrypted "
                   "xmlns='urn:xmpp:omemo:2'/></message>");
    ck_assert_uint_eq(harness_sent_count(), 2);
    ck_assert_ptr_null(field(publish(1, "n1"), "last-message-body"));
}
END_TEST

START_TEST(test_rate_limit)
{
    conf_interval_s = 10;
    harness_reset();
    load();
    harness_session_add(ROMEO, 1, 0);
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "1");
    romeo_says(JULIET, "2");
    romeo_says(JULIET, "3");
    ck_assert_uint_eq(harness_sent_count(), 1);
    harness_advance(9000);
    ck_assert_uint_eq(harness_sent_count(), 1);
    harness_advance(1000);
    /* one coalesced publish with the count so far */
    ck_assert_uint_eq(harness_sent_count(), 2);
    ck_assert_str_eq(field(publish(1, "n1"), "message-count"), "3");
    /* nothing held: the next interval sends nothing */
    harness_advance(10000);
    ck_assert_uint_eq(harness_sent_count(), 2);
    romeo_says(JULIET, "4");
    ck_assert_uint_eq(harness_sent_count(), 3);
}
END_TEST

/* Enables SERVICE/node from the session of full JID from. */
static void
enable_from(const char *from, const char *node)
{
    char xml[512];
    roost_stanza_t *r;

    snprintf(xml, sizeof(xml),
             "<iq type='set' id='en'><enable xmlns='" NS "' jid='" SERVICE
             "' node='%s'/></iq>",
             node);
    harness_inject(from, NULL, xml);
    r = last(from);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
}

/* The publishes sent so far to node. */
static int
publishes_to(const char *node)
{
    int n = 0;

    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *ps =
            roost_stanza_child(harness_sent_stanza(i), NS_PS, "pubsub");
        roost_stanza_t *pub = roost_stanza_child(ps, NS_PS, "publish");

        if (pub != NULL && strcmp(roost_stanza_attr(pub, "node"), node) == 0)
            n++;
    }
    return n;
}

/* A registration belongs to the client that enabled it: with that client
 * gone, it is notified although another client of the account is online
 * and gets the message (XEP-0357's intent, Prosody's mod_cloud_notify);
 * the online client's own registration is not. */
START_TEST(test_per_client)
{
    harness_session_add(PHONE, 1, 0);
    harness_session_add(TABLET, 1, 0);
    enable_from(PHONE, "phone-node");
    enable_from(TABLET, "tablet-node");
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "one");
    ck_assert_uint_eq(harness_delivered_count(TABLET), 1);
    ck_assert_int_eq(publishes_to("phone-node"), 1);
    ck_assert_int_eq(publishes_to("tablet-node"), 0);
    ck_assert_str_eq(field(publish(0, "phone-node"), "message-count"), "1");
    /* the tablet's connection goes: its queue gets the next one, so both
     * are notified, each with its own count */
    harness_session_hibernate(TABLET, 1);
    romeo_says(JULIET, "two");
    ck_assert_int_eq(publishes_to("phone-node"), 2);
    ck_assert_int_eq(publishes_to("tablet-node"), 1);
    ck_assert_str_eq(field(publish(1, "phone-node"), "message-count"), "2");
    ck_assert_str_eq(field(publish(2, "tablet-node"), "message-count"), "1");
    /* the phone logs in again (same resource): its count restarts, and it
     * is not notified while it is online */
    harness_session_add(PHONE, 1, 0);
    harness_clear();
    romeo_says(JULIET, "three");
    ck_assert_int_eq(publishes_to("phone-node"), 0);
    ck_assert_int_eq(publishes_to("tablet-node"), 1);
    harness_session_remove(PHONE);
    romeo_says(JULIET, "four");
    ck_assert_int_eq(publishes_to("phone-node"), 1);
    ck_assert_str_eq(field(publish(1, "phone-node"), "message-count"), "1");
}
END_TEST

/* Enabling the same service and node from another client moves the
 * registration to it; who owns it survives a restart (stored). */
START_TEST(test_owner_moves_and_persists)
{
    harness_session_add(PHONE, 1, 0);
    harness_session_add(DESK, 1, 0);
    enable_from(PHONE, "n1");
    harness_clear();
    romeo_says(JULIET, "both online");
    ck_assert_uint_eq(harness_sent_count(), 0);
    enable_from(DESK, "n1");
    harness_session_remove(DESK);
    harness_clear();
    romeo_says(JULIET, "desk away");
    ck_assert_int_eq(publishes_to("n1"), 1);
    /* a restart with the desk online again: still its registration */
    harness_session_add(DESK, 1, 0);
    ck_assert_int_eq(harness_unload(harness_mod("push")), 0);
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_push, "localhost", push_conf_init));
    harness_user_drop("juliet");
    harness_clear();
    romeo_says(JULIET, "desk online");
    ck_assert_uint_eq(harness_sent_count(), 0);
    harness_session_remove(DESK);
    romeo_says(JULIET, "desk gone");
    ck_assert_int_eq(publishes_to("n1"), 1);
}
END_TEST

START_TEST(test_rerouted_not_twice)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_hibernate(PHONE, 1);
    harness_clear();
    harness_inject(ROMEO, JULIET,
                   "<message type='chat' id='r1'><body>x</body></message>");
    ck_assert_uint_eq(harness_sent_count(), 1);
    /* the session expires; XEP-0198 routes the copy again, delayed */
    harness_session_remove(PHONE);
    harness_inject(ROMEO, JULIET,
                   "<message type='chat' id='r1'><body>x</body>"
                   "<delay xmlns='urn:xmpp:delay' from='localhost' "
                   "stamp='2024-01-01T00:00:00Z'/></message>");
    ck_assert_uint_eq(harness_sent_count(), 1);
    /* a new message still does */
    harness_inject(ROMEO, JULIET,
                   "<message type='chat' id='r2'><body>y</body></message>");
    ck_assert_uint_eq(harness_sent_count(), 2);
}
END_TEST

/* --- answers --- */

static void
answer(size_t i, const char *type, const char *err)
{
    roost_stanza_t *p = harness_sent_stanza(i);
    char xml[512];

    ck_assert_ptr_nonnull(p);
    if (err != NULL)
        snprintf(xml, sizeof(xml), "<iq type='error' id='%s'>%s</iq>",
                 roost_stanza_attr(p, "id"), err);
    else
        snprintf(xml, sizeof(xml), "<iq type='%s' id='%s'/>", type,
                 roost_stanza_attr(p, "id"));
    ck_assert_int_eq(harness_inject(SERVICE, JULIET, xml), ROOST_HANDLED);
}

START_TEST(test_error_cancel_disables)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    enable("n2", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "1");
    ck_assert_uint_eq(harness_sent_count(), 2);
    answer(0, "result", NULL);
    answer(1, NULL,
           "<error type='cancel'><item-not-found "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
    romeo_says(JULIET, "2");
    ck_assert_uint_eq(harness_sent_count(), 3);
    /* the registration that failed is gone, in storage too */
    ck_assert_str_eq(
        roost_stanza_attr(
            roost_stanza_child(
                roost_stanza_child(harness_sent_stanza(2), NS_PS, "pubsub"),
                NS_PS, "publish"),
            "node"),
        roost_stanza_attr(
            roost_stanza_child(
                roost_stanza_child(harness_sent_stanza(0), NS_PS, "pubsub"),
                NS_PS, "publish"),
            "node"));
    harness_user_drop("juliet");
    romeo_says(JULIET, "3");
    ck_assert_uint_eq(harness_sent_count(), 4);
}
END_TEST

START_TEST(test_error_wait_keeps)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    for (size_t i = 0; i < 20; i++) {
        romeo_says(JULIET, "x");
        ck_assert_uint_eq(harness_sent_count(), i + 1);
        answer(i, NULL,
               "<error type='wait'><resource-constraint "
               "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
    }
}
END_TEST

START_TEST(test_error_modify_counts)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    /* 15 modify errors, a result, 16 more: disabled after the 16th */
    for (size_t i = 0; i < 32; i++) {
        romeo_says(JULIET, "x");
        ck_assert_uint_eq(harness_sent_count(), i + 1);
        if (i == 15)
            answer(i, "result", NULL);
        else
            answer(i, NULL,
                   "<error type='modify'><bad-request "
                   "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
    }
    romeo_says(JULIET, "x");
    ck_assert_uint_eq(harness_sent_count(), 32);
}
END_TEST

/* An error that comes back while the publish is being sent (routing is
 * synchronous: a component that is not connected is answered at once)
 * disables that registration without disturbing the others'. */
START_TEST(test_error_at_once)
{
    harness_session_add(PHONE, 1, 0);
    ck_assert_str_eq(iq("<iq type='set' id='l'><enable xmlns='" NS
                        "' jid='nobody@localhost' node='x'/></iq>"),
                     "result");
    enable("n1", NULL);
    ck_assert_str_eq(iq("<iq type='set' id='l'><enable xmlns='" NS
                        "' jid='nobody@localhost' node='y'/></iq>"),
                     "result");
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "1");
    ck_assert_uint_eq(harness_sent_count(), 1);
    publish(0, "n1");
    romeo_says(JULIET, "2");
    ck_assert_uint_eq(harness_sent_count(), 2);
    harness_user_drop("juliet");
    romeo_says(JULIET, "3");
    ck_assert_uint_eq(harness_sent_count(), 3);
    {
        roost_store_t *st = harness_store("push", ROOST_STORE_MAP);
        char *val = NULL;
        size_t len;

        ck_assert_int_eq(
            roost_store_get(st, "juliet", "16:nobody@localhostx", &val, &len),
            -ROOST_ENOTFOUND);
        ck_assert_int_eq(
            roost_store_get(st, "juliet", "16:nobody@localhosty", &val, &len),
            -ROOST_ENOTFOUND);
        ck_assert_int_eq(
            roost_store_get(st, "juliet", "12:push.examplen1", &val, &len), 0);
        roost_free(val);
    }
}
END_TEST

START_TEST(test_foreign_answers_ignored)
{
    harness_session_add(PHONE, 1, 0);
    enable("n1", NULL);
    harness_session_remove(PHONE);
    harness_clear();
    romeo_says(JULIET, "1");
    /* the right id from another JID, and an unknown id: not ours */
    ck_assert_int_eq(
        harness_inject("evil.example", JULIET,
                       "<iq type='error' id='push-1'><error type='cancel'>"
                       "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-"
                       "stanzas'/></error></iq>"),
        ROOST_PASS);
    ck_assert_int_eq(harness_inject(SERVICE, JULIET,
                                    "<iq type='error' id='nope'><error "
                                    "type='cancel'><item-not-found "
                                    "xmlns='urn:ietf:params:xml:ns:xmpp-"
                                    "stanzas'/></error></iq>"),
                     ROOST_PASS);
    romeo_says(JULIET, "2");
    ck_assert_uint_eq(harness_sent_count(), 2);
}
END_TEST

static Suite *
push_suite(void)
{
    Suite *s = suite_create("mod_push");
    TCase *tc;

    tc = tcase_create("enable");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_feature);
    tcase_add_loop_test(tc, test_enable_bad, 0,
                        sizeof(bad_enables) / sizeof(bad_enables[0]));
    tcase_add_test(tc, test_enable_to_host_is_not_ours);
    tcase_add_test(tc, test_enable_stores);
    tcase_add_test(tc, test_disable);
    tcase_add_test(tc, test_max_registrations);
    suite_add_tcase(s, tc);

    tc = tcase_create("notify");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_offline_notifies);
    tcase_add_test(tc, test_online_does_not);
    tcase_add_test(tc, test_hibernating_notifies);
    tcase_add_test(tc, test_tiers);
    tcase_add_loop_test(tc, test_kinds, 0, sizeof(kinds) / sizeof(kinds[0]));
    tcase_add_test(tc, test_body_option);
    tcase_add_test(tc, test_rate_limit);
    tcase_add_test(tc, test_rerouted_not_twice);
    tcase_add_test(tc, test_per_client);
    tcase_add_test(tc, test_owner_moves_and_persists);
    suite_add_tcase(s, tc);

    tc = tcase_create("answers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_error_cancel_disables);
    tcase_add_test(tc, test_error_wait_keeps);
    tcase_add_test(tc, test_error_modify_counts);
    tcase_add_test(tc, test_error_at_once);
    tcase_add_test(tc, test_foreign_answers_ignored);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(push_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
