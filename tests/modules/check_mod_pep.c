/* tests/modules/check_mod_pep.c: mod_pep (XEP-0163 PEP on XEP-0060, and
 * XEP-0049 private storage) on the fake host.
 *
 * Juliet (localhost) owns the PEP service; her resource "balcony" is a
 * fake session.  Contacts are remote (montague.lit), so what the service
 * sends them (caps queries, notifications, item results) is captured in
 * harness_sent(), and their answers are injected back.  Covers: publish
 * and auto-create, item ids, overwrite, max_items, items retrieval (all,
 * max_items, by id), retract with notify, create, configure, delete,
 * purge, publish-options preconditions, access models (presence, open,
 * roster, whitelist), explicit subscriptions (subscribe with each access
 * model, notifications to explicit subscribers without duplicates,
 * unsubscribe, the requester's subscriptions, persistence), affiliations
 * (the owner's list and changes, members, publishers, outcasts, the
 * requester's own) and the owner's subscription management, XEP-0115 verification (the XEP's two examples) and
 * caching, filtered notifications, the last published item on presence,
 * persistence across a reload (and persist_items=0), limits, account
 * disco registration and node listing, private XML storage, and the
 * XEP-0398 hand-over of a published avatar to mod_vcard (a stand-in).
 * Not for: routing (check_mod_message.c), presence itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_pep;

#define PS      "http://jabber.org/protocol/pubsub"
#define PSO     PS "#owner"
#define PSE     PS "#event"
#define PSERR   PS "#errors"
#define CAPS    "http://jabber.org/protocol/caps"
#define DINFO   "http://jabber.org/protocol/disco#info"
#define JUL     "juliet@localhost"
#define BALCONY "juliet@localhost/balcony"
#define ROMEO   "romeo@montague.lit"
#define ORCHARD "romeo@montague.lit/orchard"
#define NURSE   "nurse@montague.lit/chamber"
#define BENV    "benvolio@montague.lit/street"
#define TUNE    "urn:xmpp:tune"
#define DEVLIST "eu.siacs.conversations.axolotl.devicelist"
/* client/pc//T plus disco#info, TUNE+notify, DEVLIST+notify */
#define VER_A "d4e4ZnOuOgM5L/S9NdFPNV78z3Q="
/* client/pc//T plus disco#info only */
#define VER_B "3Mxm5yZVB/MtCTOqqiVBeSGvoHg="

static void
setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_pep, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

/* Sends xml from Juliet's balcony (no 'to') and returns her last
 * delivered stanza (the answer). */
static roost_stanza_t *
own(const char *xml)
{
    harness_inject(BALCONY, NULL, xml);
    return harness_delivered_stanza(BALCONY,
                                    harness_delivered_count(BALCONY) - 1);
}

/* Sends xml from Juliet's balcony and returns the last IQ delivered to
 * her (the answer; notifications may follow it). */
static roost_stanza_t *
own_answer(const char *xml)
{
    harness_inject(BALCONY, NULL, xml);
    for (size_t i = harness_delivered_count(BALCONY); i-- > 0;) {
        roost_stanza_t *s = harness_delivered_stanza(BALCONY, i);

        if (strcmp(roost_stanza_name(s), "iq") == 0)
            return s;
    }
    return NULL;
}

/* Sends xml from a remote JID to Juliet's bare JID; returns the last
 * stanza sent off the vhost. */
static roost_stanza_t *
remote(const char *from, const char *xml)
{
    harness_inject(from, JUL, xml);
    return harness_sent_stanza(harness_sent_count() - 1);
}

static void
ck_result(roost_stanza_t *r)
{
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(roost_stanza_name(r), "iq");
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
}

static void
ck_error(roost_stanza_t *r, const char *cond, const char *app)
{
    roost_stanza_t *e;

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_str_eq(harness_error_cond(r), cond);
    e = roost_stanza_child(r, NULL, "error");
    if (app != NULL)
        ck_assert_ptr_nonnull(roost_stanza_child(e, PSERR, app));
}

static void
publish(const char *node, const char *id, const char *payload)
{
    char buf[4096];

    snprintf(buf, sizeof(buf),
             "<iq type='set' id='p'><pubsub xmlns='" PS "'><publish node='%s'>"
             "<item%s%s%s>%s</item></publish></pubsub></iq>",
             node, id ? " id='" : "", id ? id : "", id ? "'" : "", payload);
    ck_result(own(buf));
}

static void
set_contact(const char *bare, roost_sub_t sub, const char *group)
{
    roost_roster_item_t it;
    const char *groups[2] = {group, NULL};

    memset(&it, 0, sizeof(it));
    it.jid = bare;
    it.sub = sub;
    it.groups = group ? groups : NULL;
    ck_assert_int_eq(roost_roster_set(harness_mod("pep"), "juliet", &it, 0), 0);
}

/* Item ids in an <items/> element, space-separated. */
static void
item_ids(roost_stanza_t *items, char *out, size_t len)
{
    out[0] = '\0';
    for (roost_stanza_t *c = roost_stanza_first_child(items); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        if (out[0] != '\0')
            strncat(out, " ", len - strlen(out) - 1);
        strncat(out, roost_stanza_attr(c, "id"), len - strlen(out) - 1);
    }
}

static roost_stanza_t *
items_of(roost_stanza_t *r)
{
    roost_stanza_t *ps = roost_stanza_child(r, PS, "pubsub");

    return ps ? roost_stanza_child(ps, NULL, "items") : NULL;
}

/* Sets pubsub#max_items of node to n. */
static void
configure_max(const char *node, const char *n)
{
    char buf[1024];

    snprintf(buf, sizeof(buf),
             "<iq type='set' id='c'><pubsub xmlns='" PSO "'><configure "
             "node='%s'><x xmlns='jabber:x:data' type='submit'><field "
             "var='FORM_TYPE' type='hidden'><value>" PS "#node_config</value>"
             "</field><field var='pubsub#max_items'><value>%s</value></field>"
             "</x></configure></pubsub></iq>",
             node, n);
    ck_result(own(buf));
}

/* --- publishing --- */

START_TEST(publish_autocreates)
{
    roost_stanza_t *r, *pub, *it;
    char ids[256];

    r = own("<iq type='set' id='p1'><pubsub xmlns='" PS "'><publish node='" TUNE
            "'><item id='t1'><tune xmlns='" TUNE "'><title>A</title></tune>"
            "</item></publish></pubsub></iq>");
    ck_result(r);
    ck_assert_str_eq(roost_stanza_attr(r, "id"), "p1");
    pub = roost_stanza_child(roost_stanza_child(r, PS, "pubsub"), NULL,
                             "publish");
    ck_assert_str_eq(roost_stanza_attr(pub, "node"), TUNE);
    it = roost_stanza_child(pub, NULL, "item");
    ck_assert_str_eq(roost_stanza_attr(it, "id"), "t1");

    r = own("<iq type='get' id='g1'><pubsub xmlns='" PS "'><items node='" TUNE
            "'/></pubsub></iq>");
    ck_result(r);
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "t1");
    it = roost_stanza_child(items_of(r), NULL, "item");
    ck_assert_ptr_nonnull(roost_stanza_child(it, TUNE, "tune"));
}
END_TEST

START_TEST(publish_generates_id)
{
    roost_stanza_t *r, *it;

    r = own("<iq type='set' id='p'><pubsub xmlns='" PS "'><publish node='n'>"
            "<item><x xmlns='urn:t'/></item></publish></pubsub></iq>");
    ck_result(r);
    it = roost_stanza_child(
        roost_stanza_child(roost_stanza_child(r, PS, "pubsub"), NULL,
                           "publish"),
        NULL, "item");
    ck_assert_ptr_nonnull(roost_stanza_attr(it, "id"));
    ck_assert_int_gt(strlen(roost_stanza_attr(it, "id")), 0);
}
END_TEST

/* Default max_items is 1 (Prosody's PEP default too): the last item
 * stays; with 3, the three newest, oldest first; same id overwrites. */
START_TEST(publish_max_items_overwrite)
{
    roost_stanza_t *r;
    char ids[256];

    publish("n", "a", "<x xmlns='urn:t'/>");
    publish("n", "b", "<x xmlns='urn:t'/>");
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='n'/></pubsub></iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "b");
    configure_max("n", "3");
    publish("n", "c", "<x xmlns='urn:t'/>");
    publish("n", "d", "<x xmlns='urn:t'/>");
    publish("n", "e", "<x xmlns='urn:t'/>");
    publish("n", "c", "<y xmlns='urn:t'/>"); /* overwrite: now newest */
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='n'/></pubsub></iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "d e c");
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='n' max_items='2'/></pubsub></iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "e c");
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='n'><item id='d'/><item id='zz'/></items></pubsub>"
            "</iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "d");
    /* lowering max_items drops the oldest */
    configure_max("n", "1");
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='n'/></pubsub></iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "c");
}
END_TEST

static const struct {
    const char *xml, *cond, *app;
} publish_errors[] = {
    {"<publish/>", "bad-request", "nodeid-required"},
    {"<publish node='n'/>", "bad-request", "item-required"},
    {"<publish node='n'><item id='a'/></publish>", "bad-request",
     "payload-required"},
    {"<publish node='n'><item><a xmlns='u'/><b xmlns='u'/></item></publish>",
     "bad-request", "invalid-payload"},
    {"<publish node='n'><item><a xmlns='u'/></item><item><a xmlns='u'/>"
     "</item></publish>",
     "bad-request", "invalid-payload"},
    {"<retract node='n'><item id='nope'/></retract>", "item-not-found", NULL},
    {"<retract node='n'/>", "bad-request", "item-required"},
    {"<retract><item id='a'/></retract>", "bad-request", "nodeid-required"},
    {"<create/>", "not-acceptable", "nodeid-required"},
    /* §6.1.3, §6.2.3 */
    {"<subscribe jid='" JUL "'/>", "bad-request", "nodeid-required"},
    {"<subscribe node='nowhere' jid='" JUL "'/>", "item-not-found", NULL},
    {"<subscribe node='nowhere'/>", "bad-request", "invalid-jid"},
    {"<subscribe node='nowhere' jid='" ROMEO "'/>", "bad-request",
     "invalid-jid"},
    {"<unsubscribe node='nowhere' jid='" JUL "'/>", "item-not-found", NULL},
    {"<unsubscribe node='nowhere' jid='" ORCHARD "'/>", "forbidden", NULL},
    {"<options node='nowhere' jid='" JUL "'/>", "feature-not-implemented",
     "unsupported"},
};

START_TEST(publish_error_table)
{
    char buf[1024];

    snprintf(buf, sizeof(buf),
             "<iq type='set' id='e'><pubsub xmlns='" PS "'>%s</pubsub></iq>",
             publish_errors[_i].xml);
    ck_error(own(buf), publish_errors[_i].cond, publish_errors[_i].app);
}
END_TEST

START_TEST(items_errors)
{
    ck_error(own("<iq type='get' id='g'><pubsub xmlns='" PS
                 "'><items node='none'/></pubsub></iq>"),
             "item-not-found", NULL);
    ck_error(own("<iq type='get' id='g'><pubsub xmlns='" PS
                 "'><items/></pubsub></iq>"),
             "bad-request", "nodeid-required");
}
END_TEST

/* --- retract, create, configure, delete, purge --- */

START_TEST(retract_and_delete)
{
    roost_stanza_t *r, *m, *e;
    char ids[64];

    publish(TUNE, "t1", "<tune xmlns='" TUNE "'/>");
    configure_max(TUNE, "5");
    publish(TUNE, "t2", "<tune xmlns='" TUNE "'/>");
    /* Juliet's balcony wants tune notifications (verified caps) */
    harness_inject(BALCONY, NULL,
                   "<presence><c xmlns='" CAPS "' hash='sha-1' node='urn:t' "
                   "ver='" VER_A "'/></presence>");
    r = harness_delivered_stanza(BALCONY, harness_delivered_count(BALCONY) - 1);
    ck_assert_str_eq(roost_stanza_name(r), "iq");
    harness_clear();
    {
        char buf[2048];

        snprintf(buf, sizeof(buf),
                 "<iq type='result' id='%s'><query xmlns='" DINFO
                 "' node='urn:t#" VER_A "'><identity category='client' "
                 "type='pc' name='T'/><feature var='" DINFO "'/><feature "
                 "var='" TUNE "+notify'/><feature var='" DEVLIST
                 "+notify'/></query></iq>",
                 roost_stanza_attr(r, "id"));
        harness_inject(BALCONY, JUL, buf);
    }
    /* the last item of tune arrives as the caps resolve */
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 1);
    m = harness_delivered_stanza(BALCONY, 0);
    ck_assert_str_eq(roost_stanza_attr(m, "type"), "headline");
    ck_assert_ptr_nonnull(roost_stanza_child(m, "urn:xmpp:delay", "delay"));
    harness_clear();

    r = own("<iq type='set' id='r'><pubsub xmlns='" PS "'><retract node='" TUNE
            "' notify='true'><item id='t1'/></retract></pubsub></iq>");
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 2);
    ck_result(harness_delivered_stanza(BALCONY, 0)); /* result, then event */
    m = harness_delivered_stanza(BALCONY, 1);
    e = roost_stanza_child(roost_stanza_child(m, PSE, "event"), NULL, "items");
    ck_assert_str_eq(roost_stanza_attr(e, "node"), TUNE);
    ck_assert_str_eq(
        roost_stanza_attr(roost_stanza_child(e, NULL, "retract"), "id"), "t1");
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS "'><items node='" TUNE
            "'/></pubsub></iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "t2");

    harness_clear();
    own("<iq type='set' id='d'><pubsub xmlns='" PSO "'><delete node='" TUNE
        "'/></pubsub></iq>");
    /* the result, then the notification */
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 2);
    ck_result(harness_delivered_stanza(BALCONY, 0));
    m = harness_delivered_stanza(BALCONY, 1);
    e = roost_stanza_child(m, PSE, "event");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(roost_stanza_child(e, NULL, "delete"));
    ck_error(own("<iq type='get' id='g'><pubsub xmlns='" PS
                 "'><items node='" TUNE "'/></pubsub></iq>"),
             "item-not-found", NULL);
    ck_error(own("<iq type='set' id='d'><pubsub xmlns='" PSO
                 "'><delete node='" TUNE "'/></pubsub></iq>"),
             "item-not-found", NULL);
}
END_TEST

START_TEST(create_configure_purge)
{
    roost_stanza_t *r, *x, *f;
    char ids[64];

    ck_result(
        own("<iq type='set' id='c'><pubsub xmlns='" PS
            "'><create node='n'/><configure><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
            "#node_config</value></field><field var='pubsub#access_model'>"
            "<value>open</value></field></x></configure></pubsub></iq>"));
    ck_error(own("<iq type='set' id='c'><pubsub xmlns='" PS
                 "'><create node='n'/></pubsub></iq>"),
             "conflict", NULL);
    r = own("<iq type='get' id='g'><pubsub xmlns='" PSO
            "'><configure node='n'/></pubsub></iq>");
    ck_result(r);
    x = roost_stanza_child(
        roost_stanza_child(roost_stanza_child(r, PSO, "pubsub"), NULL,
                           "configure"),
        "jabber:x:data", "x");
    ck_assert_ptr_nonnull(x);
    for (f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f))
        if (strcmp(roost_stanza_attr(f, "var"), "pubsub#access_model") == 0)
            break;
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(roost_stanza_child_text(f, NULL, "value"), "open");
    /* an unknown value, an unsupported field */
    ck_error(own("<iq type='set' id='c'><pubsub xmlns='" PSO
                 "'><configure node='n'><x xmlns='jabber:x:data' "
                 "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
                 "#node_config</value></field><field var='pubsub#access_model'>"
                 "<value>authorize</value></field></x></configure></pubsub>"
                 "</iq>"),
             "not-acceptable", NULL);
    ck_error(own("<iq type='set' id='c'><pubsub xmlns='" PSO
                 "'><configure node='n'><x xmlns='jabber:x:data' "
                 "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
                 "#node_config</value></field><field var='pubsub#max_items'>"
                 "<value>100000000</value></field></x></configure></pubsub>"
                 "</iq>"),
             "not-acceptable", NULL);
    ck_error(own("<iq type='get' id='g'><pubsub xmlns='" PSO
                 "'><configure node='none'/></pubsub></iq>"),
             "item-not-found", NULL);
    configure_max("n", "max");
    publish("n", "a", "<x xmlns='u'/>");
    publish("n", "b", "<x xmlns='u'/>");
    ck_result(own("<iq type='set' id='pu'><pubsub xmlns='" PSO
                  "'><purge node='n'/></pubsub></iq>"));
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='n'/></pubsub></iq>");
    ck_result(r);
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
}
END_TEST

/* XEP-0060 §7.1.5 */
START_TEST(publish_options)
{
    const char *po_open =
        "<publish-options><x xmlns='jabber:x:data' type='submit'><field "
        "var='FORM_TYPE' type='hidden'><value>" PS "#publish-options</value>"
        "</field><field var='pubsub#access_model'><value>open</value></field>"
        "</x></publish-options>";
    const char *po_wl =
        "<publish-options><x xmlns='jabber:x:data' type='submit'><field "
        "var='FORM_TYPE' type='hidden'><value>" PS "#publish-options</value>"
        "</field><field var='pubsub#access_model'><value>whitelist</value>"
        "</field><field var='pubsub#persist_items'><value>true</value>"
        "</field></x></publish-options>";
    char buf[2048];
    roost_stanza_t *r;

    snprintf(buf, sizeof(buf),
             "<iq type='set' id='p'><pubsub xmlns='" PS "'><publish node='b'>"
             "<item id='current'><bundle xmlns='u'/></item></publish>%s"
             "</pubsub></iq>",
             po_open);
    ck_result(own(buf));
    /* the node was created open: a stranger reads it */
    r = remote(BENV, "<iq type='get' id='x'><pubsub xmlns='" PS
                     "'><items node='b'/></pubsub></iq>");
    ck_result(r);
    ck_assert_str_eq(roost_stanza_attr(r, "to"), BENV);
    /* the same options again: met */
    ck_result(own(buf));
    /* other options: not met */
    snprintf(buf, sizeof(buf),
             "<iq type='set' id='p'><pubsub xmlns='" PS "'><publish node='b'>"
             "<item id='current'><bundle xmlns='u'/></item></publish>%s"
             "</pubsub></iq>",
             po_wl);
    ck_error(own(buf), "conflict", "precondition-not-met");
    r = harness_delivered_stanza(BALCONY, harness_delivered_count(BALCONY) - 1);
    ck_assert_str_eq(
        roost_stanza_attr(roost_stanza_child(r, NULL, "error"), "type"),
        "cancel");
    /* a field we cannot honour, on a new node */
    ck_error(own("<iq type='set' id='p'><pubsub xmlns='" PS
                 "'><publish node='c'><item><x xmlns='u'/></item></publish>"
                 "<publish-options><x xmlns='jabber:x:data' type='submit'>"
                 "<field var='FORM_TYPE' type='hidden'><value>" PS
                 "#publish-options</value></field><field "
                 "var='pubsub#deliver_payloads'><value>0</value></field></x>"
                 "</publish-options></pubsub></iq>"),
             "conflict", "precondition-not-met");
    /* a form of another FORM_TYPE */
    ck_error(own("<iq type='set' id='p'><pubsub xmlns='" PS
                 "'><publish node='c'><item><x xmlns='u'/></item></publish>"
                 "<publish-options><x xmlns='jabber:x:data' type='submit'>"
                 "<field var='FORM_TYPE' type='hidden'><value>urn:other"
                 "</value></field></x></publish-options></pubsub></iq>"),
             "bad-request", "invalid-options");
}
END_TEST

/* --- access models (XEP-0060 §4.5, §6.5.9) --- */

START_TEST(access_models)
{
    roost_stanza_t *r;

    set_contact(ROMEO, ROOST_SUB_FROM, "Friends");
    set_contact("nurse@montague.lit", ROOST_SUB_TO, "Servants");
    publish("n", "a", "<x xmlns='u'/>"); /* presence (default) */
    r = remote(ORCHARD, "<iq type='get' id='x'><pubsub xmlns='" PS
                        "'><items node='n'/></pubsub></iq>");
    ck_result(r);
    r = remote(NURSE, "<iq type='get' id='x'><pubsub xmlns='" PS
                      "'><items node='n'/></pubsub></iq>");
    ck_error(r, "not-authorized", "presence-subscription-required");
    r = remote(BENV, "<iq type='get' id='x'><pubsub xmlns='" PS
                     "'><items node='n'/></pubsub></iq>");
    ck_error(r, "not-authorized", "presence-subscription-required");
    /* contacts may not publish */
    r = remote(ORCHARD, "<iq type='set' id='x'><pubsub xmlns='" PS
                        "'><publish node='n'><item><x xmlns='u'/></item>"
                        "</publish></pubsub></iq>");
    ck_error(r, "forbidden", NULL);
    r = remote(ORCHARD, "<iq type='set' id='x'><pubsub xmlns='" PSO
                        "'><delete node='n'/></pubsub></iq>");
    ck_error(r, "forbidden", NULL);

    /* roster: the Servants group */
    ck_result(
        own("<iq type='set' id='c'><pubsub xmlns='" PSO
            "'><configure node='n'><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
            "#node_config</value></field><field var='pubsub#access_model'>"
            "<value>roster</value></field><field "
            "var='pubsub#roster_groups_allowed'><value>Servants</value>"
            "</field></x></configure></pubsub></iq>"));
    ck_result(remote(NURSE, "<iq type='get' id='x'><pubsub xmlns='" PS
                            "'><items node='n'/></pubsub></iq>"));
    ck_error(remote(ORCHARD, "<iq type='get' id='x'><pubsub xmlns='" PS
                             "'><items node='n'/></pubsub></iq>"),
             "not-authorized", "not-in-roster-group");
    /* whitelist: the owner alone */
    ck_result(
        own("<iq type='set' id='c'><pubsub xmlns='" PSO
            "'><configure node='n'><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
            "#node_config</value></field><field var='pubsub#access_model'>"
            "<value>whitelist</value></field></x></configure></pubsub>"
            "</iq>"));
    ck_error(remote(ORCHARD, "<iq type='get' id='x'><pubsub xmlns='" PS
                             "'><items node='n'/></pubsub></iq>"),
             "not-allowed", "closed-node");
    ck_result(own("<iq type='get' id='x'><pubsub xmlns='" PS
                  "'><items node='n'/></pubsub></iq>"));
}
END_TEST

/* --- XEP-0115 verification, caching and notifications --- */

/* The disco#info query the service sent last (off the vhost) to jid. */
static roost_stanza_t *
last_query(const char *jid)
{
    for (size_t i = harness_sent_count(); i-- > 0;) {
        roost_stanza_t *s = harness_sent_stanza(i);

        if (strcmp(roost_stanza_name(s), "iq") == 0 &&
            strcmp(roost_stanza_attr(s, "to"), jid) == 0 &&
            roost_stanza_child(s, DINFO, "query") != NULL)
            return s;
    }
    return NULL;
}

/* Number of sent stanzas to jid with a pubsub event for node. */
static int
events_to(const char *jid, const char *node)
{
    int n = 0;

    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *s = harness_sent_stanza(i), *e, *c;

        if (strcmp(roost_stanza_attr(s, "to"), jid) != 0 ||
            (e = roost_stanza_child(s, PSE, "event")) == NULL)
            continue;
        c = roost_stanza_first_child(e);
        if (c != NULL && strcmp(roost_stanza_attr(c, "node"), node) == 0)
            n++;
    }
    return n;
}

/* Contact presence with caps ver and the answer to the query, whose
 * features are feats (a disco#info body). */
static void
caps_answer(const char *from, const char *ver, const char *body)
{
    roost_stanza_t *q = last_query(from);
    char buf[4096];

    ck_assert_ptr_nonnull(q);
    ck_assert_str_eq(roost_stanza_attr(q, "from"), JUL);
    ck_assert_str_eq(roost_stanza_attr(q, "type"), "get");
    snprintf(buf, sizeof(buf), "urn:t#%s", ver);
    ck_assert_str_eq(
        roost_stanza_attr(roost_stanza_child(q, DINFO, "query"), "node"), buf);
    snprintf(buf, sizeof(buf),
             "<iq type='result' id='%s'><query xmlns='" DINFO
             "' node='urn:t#%s'>%s</query></iq>",
             roost_stanza_attr(q, "id"), ver, body);
    harness_inject(from, JUL, buf);
}

static const char BODY_A[] =
    "<identity category='client' type='pc' name='T'/><feature var='" DINFO
    "'/><feature var='" TUNE "+notify'/><feature var='" DEVLIST "+notify'/>";
static const char BODY_B[] =
    "<identity category='client' type='pc' name='T'/><feature var='" DINFO
    "'/>";

static void
caps_presence(const char *from, const char *ver)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "<presence><c xmlns='" CAPS "' hash='sha-1' node='urn:t' "
             "ver='%s'/></presence>",
             ver);
    harness_inject(from, JUL, buf);
}

START_TEST(notify_filtered_by_caps)
{
    set_contact(ROMEO, ROOST_SUB_BOTH, NULL);
    set_contact("nurse@montague.lit", ROOST_SUB_BOTH, NULL);
    set_contact("benvolio@montague.lit", ROOST_SUB_NONE, NULL);
    publish(TUNE, "t1", "<tune xmlns='" TUNE "'/>");
    harness_clear();

    caps_presence(ORCHARD, VER_A);
    caps_answer(ORCHARD, VER_A, BODY_A);
    /* initial presence: the last tune item, with a delay */
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 1);
    caps_presence(NURSE, VER_B);
    caps_answer(NURSE, VER_B, BODY_B);
    /* no subscription: not even asked */
    caps_presence(BENV, VER_A);
    ck_assert_ptr_null(last_query(BENV));
    harness_clear();

    publish(TUNE, "t2", "<tune xmlns='" TUNE "'/>");
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 1);
    ck_assert_int_eq(events_to(NURSE, TUNE), 0);
    ck_assert_int_eq(events_to(BENV, TUNE), 0);
    {
        roost_stanza_t *m = NULL;

        for (size_t i = 0; i < harness_sent_count(); i++)
            if (strcmp(roost_stanza_attr(harness_sent_stanza(i), "to"),
                       ORCHARD) == 0)
                m = harness_sent_stanza(i);
        ck_assert_str_eq(roost_stanza_attr(m, "from"), JUL);
        ck_assert_str_eq(roost_stanza_attr(m, "type"), "headline");
        ck_assert_ptr_null(roost_stanza_child(m, "urn:xmpp:delay", "delay"));
    }
    /* a node nobody asked for */
    harness_clear();
    publish("urn:other", "o", "<x xmlns='urn:other'/>");
    ck_assert_int_eq(events_to(ORCHARD, "urn:other"), 0);
    /* unavailable: no more notifications */
    harness_inject(ORCHARD, JUL, "<presence type='unavailable'/>");
    harness_clear();
    publish(TUNE, "t3", "<tune xmlns='" TUNE "'/>");
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 0);
    /* negative priority: none either (XEP-0163 §4.3.2) */
    harness_inject(ORCHARD, JUL,
                   "<presence><priority>-1</priority><c xmlns='" CAPS
                   "' hash='sha-1' node='urn:t' ver='" VER_A "'/></presence>");
    publish(TUNE, "t4", "<tune xmlns='" TUNE "'/>");
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 0);
    /* the subscription goes: the service stops at once */
    caps_presence(ORCHARD, VER_A); /* cached: no query */
    ck_assert_ptr_null(last_query(ORCHARD));
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 1); /* last item */
    set_contact(ROMEO, ROOST_SUB_TO, NULL);
    harness_clear();
    publish(TUNE, "t5", "<tune xmlns='" TUNE "'/>");
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 0);
}
END_TEST

/* A ver is cached only when it verifies (XEP-0115 §5.4). */
START_TEST(caps_cache_verified_only)
{
    set_contact(ROMEO, ROOST_SUB_BOTH, NULL);
    set_contact("nurse@montague.lit", ROOST_SUB_BOTH, NULL);
    publish(TUNE, "t1", "<tune xmlns='" TUNE "'/>");
    /* Romeo claims VER_B but answers with A's features: not verified.
     * Used for him alone (he still gets tune), not cached. */
    caps_presence(ORCHARD, VER_B);
    caps_answer(ORCHARD, VER_B, BODY_A);
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 1);
    harness_clear();
    caps_presence(NURSE, VER_B);
    ck_assert_ptr_nonnull(last_query(NURSE)); /* asked again */
    caps_answer(NURSE, VER_B, BODY_B);        /* verifies: cached */
    ck_assert_int_eq(events_to(NURSE, TUNE), 0);
    harness_clear();
    harness_inject(NURSE, JUL, "<presence type='unavailable'/>");
    caps_presence(NURSE, VER_B);
    ck_assert_ptr_null(last_query(NURSE)); /* from the cache */
}
END_TEST

/* XEP-0115 §5.2 and §5.3 examples, through a query and answer. */
START_TEST(caps_xep_vectors)
{
    roost_stanza_t *q;
    char buf[4096];

    set_contact(ROMEO, ROOST_SUB_BOTH, NULL);
    set_contact("nurse@montague.lit", ROOST_SUB_BOTH, NULL);
    harness_inject(ORCHARD, JUL,
                   "<presence><c xmlns='" CAPS "' hash='sha-1' "
                   "node='http://code.google.com/p/exodus' "
                   "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>");
    q = last_query(ORCHARD);
    ck_assert_ptr_nonnull(q);
    snprintf(buf, sizeof(buf),
             "<iq type='result' id='%s'><query xmlns='" DINFO
             "'><identity category='client' name='Exodus 0.9.1' type='pc'/>"
             "<feature var='http://jabber.org/protocol/caps'/>"
             "<feature var='" DINFO "'/>"
             "<feature var='http://jabber.org/protocol/disco#items'/>"
             "<feature var='http://jabber.org/protocol/muc'/></query></iq>",
             roost_stanza_attr(q, "id"));
    harness_inject(ORCHARD, JUL, buf);
    harness_clear();
    harness_inject(NURSE, JUL,
                   "<presence><c xmlns='" CAPS "' hash='sha-1' "
                   "node='http://code.google.com/p/exodus' "
                   "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>");
    ck_assert_ptr_null(last_query(NURSE)); /* verified and cached */

    harness_inject(ORCHARD, JUL,
                   "<presence><c xmlns='" CAPS "' hash='sha-1' "
                   "node='http://psi-im.org' "
                   "ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>");
    q = last_query(ORCHARD);
    ck_assert_ptr_nonnull(q);
    snprintf(buf, sizeof(buf),
             "<iq type='result' id='%s'><query xmlns='" DINFO "'>"
             "<identity xml:lang='en' category='client' name='Psi 0.11' "
             "type='pc'/><identity xml:lang='el' category='client' "
             "name='\xce\xa8 0.11' type='pc'/>"
             "<feature var='http://jabber.org/protocol/caps'/>"
             "<feature var='" DINFO "'/>"
             "<feature var='http://jabber.org/protocol/disco#items'/>"
             "<feature var='http://jabber.org/protocol/muc'/>"
             "<x xmlns='jabber:x:data' type='result'>"
             "<field var='FORM_TYPE' type='hidden'>"
             "<value>urn:xmpp:dataforms:softwareinfo</value></field>"
             "<field var='ip_version'><value>ipv4</value><value>ipv6</value>"
             "</field><field var='os'><value>Mac</value></field>"
             "<field var='os_version'><value>10.5.1</value></field>"
             "<field var='software'><value>Psi</value></field>"
             "<field var='software_version'><value>0.11</value></field>"
             "</x></query></iq>",
             roost_stanza_attr(q, "id"));
    harness_inject(ORCHARD, JUL, buf);
    harness_clear();
    harness_inject(NURSE, JUL,
                   "<presence><c xmlns='" CAPS "' hash='sha-1' "
                   "node='http://psi-im.org' "
                   "ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>");
    ck_assert_ptr_null(last_query(NURSE));
}
END_TEST

/* Legacy caps (no hash): asked per JID, never cached. */
START_TEST(caps_legacy_per_jid)
{
    set_contact(ROMEO, ROOST_SUB_BOTH, NULL);
    set_contact("nurse@montague.lit", ROOST_SUB_BOTH, NULL);
    harness_inject(ORCHARD, JUL,
                   "<presence><c xmlns='" CAPS "' node='urn:t' ver='1.0'/>"
                   "</presence>");
    caps_answer(ORCHARD, "1.0", BODY_A);
    harness_clear();
    harness_inject(NURSE, JUL,
                   "<presence><c xmlns='" CAPS "' node='urn:t' ver='1.0'/>"
                   "</presence>");
    ck_assert_ptr_nonnull(last_query(NURSE));
    caps_answer(NURSE, "1.0", BODY_B);
    publish(TUNE, "t", "<tune xmlns='" TUNE "'/>");
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 1);
    ck_assert_int_eq(events_to(NURSE, TUNE), 0);
}
END_TEST

/* send_last_published_item=never (XEP-0402 bookmarks): no last item. */
START_TEST(last_item_never)
{
    set_contact(ROMEO, ROOST_SUB_BOTH, NULL);
    ck_result(
        own("<iq type='set' id='p'><pubsub xmlns='" PS "'><publish node='" TUNE
            "'><item id='x'><tune xmlns='" TUNE
            "'/></item></publish><publish-options><x xmlns='jabber:x:data'"
            " type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
            "#publish-options</value></field><field "
            "var='pubsub#send_last_published_item'><value>never</value>"
            "</field></x></publish-options></pubsub></iq>"));
    caps_presence(ORCHARD, VER_A);
    caps_answer(ORCHARD, VER_A, BODY_A);
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 0);
    publish(TUNE, "y", "<tune xmlns='" TUNE "'/>");
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 1);
}
END_TEST

/* --- persistence and limits --- */

static void
reload(void)
{
    roost_mod_t *m = harness_mod("pep");

    ck_assert_int_eq(harness_session_remove(BALCONY), 0);
    ck_assert_int_eq(harness_unload(m), 0);
    ck_assert_ptr_nonnull(harness_load(&roost_module_pep, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
}

START_TEST(persistence)
{
    roost_stanza_t *r;
    char ids[64];

    publish("a", "1", "<x xmlns='u'>one</x>");
    configure_max("a", "3");
    publish("a", "2", "<x xmlns='u'>two</x>");
    publish("a", "3", "<x xmlns='u'>three</x>");
    publish("a", "2", "<x xmlns='u'>TWO</x>");
    ck_result(
        own("<iq type='set' id='p'><pubsub xmlns='" PS
            "'><publish node='t'><item id='z'><x xmlns='u'/></item>"
            "</publish><publish-options><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
            "#publish-options</value></field><field "
            "var='pubsub#persist_items'><value>0</value></field></x>"
            "</publish-options></pubsub></iq>"));
    publish("gone", "g", "<x xmlns='u'/>");
    ck_result(own("<iq type='set' id='d'><pubsub xmlns='" PSO
                  "'><delete node='gone'/></pubsub></iq>"));
    reload();
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='a'/></pubsub></iq>");
    ck_result(r);
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "1 3 2");
    ck_assert_str_eq(roost_stanza_child_text(
                         roost_stanza_next_sibling(roost_stanza_next_sibling(
                             roost_stanza_first_child(items_of(r)))),
                         "u", "x"),
                     "TWO");
    /* configuration survives, items of a transient node do not */
    configure_max("a", "3");
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='t'/></pubsub></iq>");
    ck_result(r);
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
    ck_error(own("<iq type='get' id='g'><pubsub xmlns='" PS
                 "'><items node='gone'/></pubsub></iq>"),
             "item-not-found", NULL);
    /* purge was stored too */
    ck_result(own("<iq type='set' id='pu'><pubsub xmlns='" PSO
                  "'><purge node='a'/></pubsub></iq>"));
    reload();
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS
            "'><items node='a'/></pubsub></iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
}
END_TEST

static void
small_limits(void *conf)
{
    /* struct pep_conf: max_items, default_items, max_nodes, max_payload,
     * max_user_bytes, caps_cache, max_private (all int64_t) */
    int64_t *c = conf;

    c[2] = 2;   /* max_nodes */
    c[3] = 100; /* max_payload */
    c[4] = 250; /* max_user_bytes */
    c[6] = 80;  /* max_private */
}

START_TEST(limits)
{
    char big[300];

    harness_reset();
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_pep, "localhost", small_limits));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    memset(big, 'a', sizeof(big));
    big[150] = '\0';
    {
        char buf[1024];

        snprintf(buf, sizeof(buf),
                 "<iq type='set' id='p'><pubsub xmlns='" PS
                 "'><publish node='n'><item><x xmlns='u'>%s</x></item>"
                 "</publish></pubsub></iq>",
                 big);
        ck_error(own(buf), "not-acceptable", "payload-too-big");
    }
    publish("n1", "a", "<x xmlns='u'>0123456789012345678901234567890</x>");
    publish("n2", "a", "<x xmlns='u'>0123456789012345678901234567890</x>");
    ck_error(own("<iq type='set' id='p'><pubsub xmlns='" PS
                 "'><publish node='n3'><item><x xmlns='u'/></item></publish>"
                 "</pubsub></iq>"),
             "resource-constraint", NULL);
    configure_max("n1", "10");
    publish("n1", "b", "<x xmlns='u'>0123456789012345678901234567890</x>");
    publish("n1", "c", "<x xmlns='u'>0123456789012345678901234567890</x>");
    publish("n1", "d", "<x xmlns='u'>0123456789012345678901234567890</x>");
    ck_error(own("<iq type='set' id='p'><pubsub xmlns='" PS
                 "'><publish node='n1'><item><x xmlns='u'>"
                 "0123456789012345678901234567890</x></item></publish>"
                 "</pubsub></iq>"),
             "resource-constraint", NULL);
    /* overwriting an item in place is within the quota */
    publish("n1", "d", "<x xmlns='u'>0123456789012345678901234567890</x>");
    ck_error(own("<iq type='set' id='s'><query xmlns='jabber:iq:private'>"
                 "<p xmlns='urn:p'>0123456789012345678901234567890123456789"
                 "0123456789012345678901234567890123456789</p></query></iq>"),
             "not-acceptable", NULL);
    /* XEP-0048 bookmarks (XEP-0411: into the XEP-0402 node) too */
    ck_error(own("<iq type='set' id='s'><query xmlns='jabber:iq:private'>"
                 "<storage xmlns='storage:bookmarks'><conference "
                 "jid='a-long-room-name@conference.example.org' "
                 "autojoin='true'/></storage></query></iq>"),
             "not-acceptable", NULL);
    /* within it, but no room for the node (max_nodes) */
    ck_error(own("<iq type='set' id='s'><query xmlns='jabber:iq:private'>"
                 "<storage xmlns='storage:bookmarks'><conference "
                 "jid='r@c'/></storage></query></iq>"),
             "resource-constraint", NULL);
}
END_TEST

/* --- disco --- */

START_TEST(disco_registration_and_nodes)
{
    roost_stanza_t *r, *c;
    int n = 0;

    /* identity pubsub/pep plus pubsub, 30 pubsub# features and 3 of
     * XEP-0411/XEP-0402 */
    ck_assert_int_eq(harness_account_feature_count(), 35);
    ck_assert_int_eq(harness_feature_count(), 1); /* jabber:iq:private */
    set_contact(ROMEO, ROOST_SUB_FROM, NULL);
    publish("open", "a", "<x xmlns='u'/>");
    configure_max("open", "2");
    ck_result(
        own("<iq type='set' id='c'><pubsub xmlns='" PSO
            "'><configure node='open'><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
            "#node_config</value></field><field var='pubsub#access_model'>"
            "<value>whitelist</value></field></x></configure></pubsub>"
            "</iq>"));
    publish("pres", "a", "<x xmlns='u'/>");
    r = own("<iq type='get' id='d' to='" JUL
            "'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    ck_result(r);
    for (c = roost_stanza_first_child(roost_stanza_first_child(r)); c != NULL;
         c = roost_stanza_next_sibling(c))
        n++;
    ck_assert_int_eq(n, 2);
    r = remote(ORCHARD,
               "<iq type='get' id='d'><query "
               "xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    ck_result(r);
    c = roost_stanza_first_child(roost_stanza_first_child(r));
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(roost_stanza_attr(c, "node"), "pres");
    ck_assert_ptr_null(roost_stanza_next_sibling(c));
    r = remote(ORCHARD, "<iq type='get' id='d'><query xmlns='" DINFO
                        "' node='pres'/></iq>");
    ck_result(r);
    c = roost_stanza_child(roost_stanza_first_child(r), NULL, "identity");
    ck_assert_str_eq(roost_stanza_attr(c, "type"), "leaf");
}
END_TEST

/* --- XEP-0049 --- */

START_TEST(private_storage)
{
    roost_stanza_t *r, *el;

    r = own("<iq type='get' id='g'><query xmlns='jabber:iq:private'>"
            "<storage xmlns='storage:bookmarks'/></query></iq>");
    ck_result(r);
    el = roost_stanza_child(roost_stanza_child(r, "jabber:iq:private", "query"),
                            "storage:bookmarks", "storage");
    ck_assert_ptr_nonnull(el);
    ck_assert_ptr_null(roost_stanza_first_child(el));
    ck_result(own("<iq type='set' id='s'><query xmlns='jabber:iq:private'>"
                  "<storage xmlns='storage:bookmarks'><conference "
                  "jid='a@b' autojoin='true'/></storage></query></iq>"));
    ck_result(own("<iq type='set' id='s'><query xmlns='jabber:iq:private'>"
                  "<exodus xmlns='exodus:prefs'><p>1</p></exodus></query>"
                  "</iq>"));
    reload();
    r = own("<iq type='get' id='g'><query xmlns='jabber:iq:private'>"
            "<storage xmlns='storage:bookmarks'/></query></iq>");
    ck_result(r);
    el = roost_stanza_child(roost_stanza_child(r, "jabber:iq:private", "query"),
                            "storage:bookmarks", "storage");
    ck_assert_ptr_nonnull(roost_stanza_child(el, NULL, "conference"));
    ck_assert_ptr_null(roost_stanza_child(el, NULL, "p"));
    ck_error(own("<iq type='get' id='g'><query xmlns='jabber:iq:private'/>"
                 "</iq>"),
             "not-acceptable", NULL);
    ck_error(own("<iq type='get' id='g'><query xmlns='jabber:iq:private'>"
                 "<query xmlns='jabber:iq:private'/></query></iq>"),
             "not-acceptable", NULL);
}
END_TEST

/* --- explicit subscriptions (XEP-0163 §3, XEP-0060 §6.1, §6.2, §5.6)
 * and affiliations (§5.7, §8.9) --- */

/* Sends xml (a pubsub element's content) from a remote JID to Juliet and
 * returns the IQ answer (notifications may follow it). */
static roost_stanza_t *
remote_iq(const char *from, const char *type, const char *ns, const char *body)
{
    char buf[2048];

    snprintf(buf, sizeof(buf),
             "<iq type='%s' id='q'><pubsub xmlns='%s'>%s</pubsub></iq>", type,
             ns, body);
    harness_inject(from, JUL, buf);
    for (size_t i = harness_sent_count(); i-- > 0;) {
        roost_stanza_t *s = harness_sent_stanza(i);

        if (strcmp(roost_stanza_name(s), "iq") == 0 &&
            strcmp(roost_stanza_attr(s, "to"), from) == 0 &&
            strcmp(roost_stanza_attr(s, "id"), "q") == 0)
            return s;
    }
    return NULL;
}

static roost_stanza_t *
own_iq(const char *type, const char *ns, const char *body)
{
    char buf[2048];

    snprintf(buf, sizeof(buf),
             "<iq type='%s' id='q'><pubsub xmlns='%s'>%s</pubsub></iq>", type,
             ns, body);
    return own_answer(buf);
}

static void
configure_access(const char *node, const char *model)
{
    char buf[1024];

    snprintf(buf, sizeof(buf),
             "<configure node='%s'><x xmlns='jabber:x:data' type='submit'>"
             "<field var='FORM_TYPE' type='hidden'><value>" PS
             "#node_config</value></field><field var='pubsub#access_model'>"
             "<value>%s</value></field></x></configure>",
             node, model);
    ck_result(own_iq("set", PSO, buf));
}

/* The child of r's pubsub (ns) named name. */
static roost_stanza_t *
ps_child(roost_stanza_t *r, const char *ns, const char *name)
{
    roost_stanza_t *ps = roost_stanza_child(r, ns, "pubsub");

    return ps ? roost_stanza_child(ps, NULL, name) : NULL;
}

/* "jid=value ..." of the children of el, attribute attr. */
static void
entity_list(roost_stanza_t *el, const char *attr, char *out, size_t len)
{
    out[0] = '\0';
    for (roost_stanza_t *c = roost_stanza_first_child(el); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        if (out[0] != '\0')
            strncat(out, " ", len - strlen(out) - 1);
        strncat(out, roost_stanza_attr(c, "jid"), len - strlen(out) - 1);
        strncat(out, "=", len - strlen(out) - 1);
        strncat(out, roost_stanza_attr(c, attr), len - strlen(out) - 1);
    }
}

START_TEST(subscribe_access_models)
{
    roost_stanza_t *r, *sub;

    set_contact(ROMEO, ROOST_SUB_FROM, "Friends");
    set_contact("nurse@montague.lit", ROOST_SUB_TO, "Servants");
    publish("n", "a", "<x xmlns='u'/>"); /* presence (default) */
    publish("o", "b", "<x xmlns='u'/>");
    configure_access("o", "open");
    publish("w", "c", "<x xmlns='u'/>");
    configure_access("w", "whitelist");
    publish("g", "d", "<x xmlns='u'/>");
    ck_result(
        own_iq("set", PSO,
               "<configure node='g'><x xmlns='jabber:x:data' "
               "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
               "#node_config</value></field><field "
               "var='pubsub#access_model'><value>roster</value></field>"
               "<field var='pubsub#roster_groups_allowed'><value>Servants"
               "</value></field></x></configure>"));
    harness_clear();

    /* §6.1.3.2: presence: contacts with a subscription from the owner */
    ck_error(remote_iq(NURSE, "set", PS,
                       "<subscribe node='n' jid='nurse@montague.lit'/>"),
             "not-authorized", "presence-subscription-required");
    ck_error(remote_iq(BENV, "set", PS, "<subscribe node='n' jid='" BENV "'/>"),
             "not-authorized", "presence-subscription-required");
    r = remote_iq(ORCHARD, "set", PS, "<subscribe node='n' jid='" ROMEO "'/>");
    ck_result(r);
    sub = ps_child(r, PS, "subscription");
    ck_assert_ptr_nonnull(sub);
    ck_assert_str_eq(roost_stanza_attr(sub, "node"), "n");
    ck_assert_str_eq(roost_stanza_attr(sub, "jid"), ROMEO);
    ck_assert_str_eq(roost_stanza_attr(sub, "subscription"), "subscribed");
    /* XEP-0163 §4.3.4: the last item to the new subscriber, after the
     * result */
    ck_assert_int_eq(events_to(ROMEO, "n"), 1);
    r = harness_sent_stanza(harness_sent_count() - 1);
    ck_assert_str_eq(roost_stanza_name(r), "message");
    ck_assert_ptr_nonnull(roost_stanza_child(r, "urn:xmpp:delay", "delay"));
    /* §6.1.6: again: the current state, nothing stored twice */
    ck_result(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='n' jid='" ROMEO "'/>"));
    /* §6.1.3.1 */
    ck_error(remote_iq(ORCHARD, "set", PS,
                       "<subscribe node='n' jid='nurse@montague.lit'/>"),
             "bad-request", "invalid-jid");
    /* §6.1.3.12 */
    ck_error(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='zz' jid='" ROMEO "'/>"),
        "item-not-found", NULL);
    /* open: anyone, with a full JID too */
    ck_result(
        remote_iq(BENV, "set", PS, "<subscribe node='o' jid='" BENV "'/>"));
    /* §6.1.3.3: roster groups */
    ck_error(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='g' jid='" ROMEO "'/>"),
        "not-authorized", "not-in-roster-group");
    ck_result(remote_iq(NURSE, "set", PS,
                        "<subscribe node='g' jid='nurse@montague.lit'/>"));
    /* §6.1.3.4: whitelist, until the owner affiliates Romeo */
    ck_error(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='w' jid='" ROMEO "'/>"),
        "not-allowed", "closed-node");
    ck_result(own_iq("set", PSO,
                     "<affiliations node='w'><affiliation jid='" ROMEO
                     "' affiliation='member'/></affiliations>"));
    ck_result(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='w' jid='" ROMEO "'/>"));
    ck_result(remote_iq(ORCHARD, "get", PS, "<items node='w'/>"));
}
END_TEST

START_TEST(subscribe_notify_unsubscribe)
{
    roost_stanza_t *r;
    char list[512];

    set_contact(ROMEO, ROOST_SUB_BOTH, NULL);
    publish("o", "b", "<x xmlns='u'/>");
    configure_access("o", "open");
    publish(TUNE, "t1", "<tune xmlns='" TUNE "'/>");
    ck_result(
        remote_iq(BENV, "set", PS, "<subscribe node='o' jid='" BENV "'/>"));
    ck_result(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='o' jid='" ROMEO "'/>"));
    ck_result(remote_iq(ORCHARD, "set", PS,
                        "<subscribe node='" TUNE "' jid='" ROMEO "'/>"));
    harness_clear();

    /* explicit subscribers get notifications: the full JID once, the
     * bare JID (no presence from it) once */
    publish("o", "b2", "<x xmlns='u'/>");
    ck_assert_int_eq(events_to(BENV, "o"), 1);
    ck_assert_int_eq(events_to(ROMEO, "o"), 1);
    ck_assert_int_eq(events_to("benvolio@montague.lit", "o"), 0);

    /* XEP-0163 §4.3.2: a bare JID subscriber whose resource wants the
     * node (caps) gets it there, not twice */
    caps_presence(ORCHARD, VER_A);
    caps_answer(ORCHARD, VER_A, BODY_A);
    harness_clear();
    publish(TUNE, "t2", "<tune xmlns='" TUNE "'/>");
    ck_assert_int_eq(events_to(ORCHARD, TUNE), 1);
    ck_assert_int_eq(events_to(ROMEO, TUNE), 0);

    /* §5.6: the requester's subscriptions */
    r = remote_iq(ORCHARD, "get", PS, "<subscriptions/>");
    ck_result(r);
    entity_list(ps_child(r, PS, "subscriptions"), "node", list, sizeof(list));
    ck_assert_str_eq(list, ROMEO "=o " ROMEO "=" TUNE);
    r = remote_iq(ORCHARD, "get", PS, "<subscriptions node='o'/>");
    entity_list(ps_child(r, PS, "subscriptions"), "node", list, sizeof(list));
    ck_assert_str_eq(list, ROMEO "=o");
    /* §8.8.1: the owner sees explicit subscribers too */
    r = own_iq("get", PSO, "<subscriptions node='o'/>");
    ck_result(r);
    entity_list(ps_child(r, PSO, "subscriptions"), "subscription", list,
                sizeof(list));
    ck_assert_str_eq(list, BENV "=subscribed " ROMEO "=subscribed");

    /* survives a restart */
    harness_session_remove(ORCHARD);
    reload();
    r = remote_iq(ORCHARD, "get", PS, "<subscriptions/>");
    entity_list(ps_child(r, PS, "subscriptions"), "node", list, sizeof(list));
    ck_assert_str_eq(list, ROMEO "=o " ROMEO "=" TUNE);

    /* §6.2 */
    ck_error(
        remote_iq(ORCHARD, "set", PS, "<unsubscribe node='o' jid='" BENV "'/>"),
        "forbidden", NULL);
    ck_result(remote_iq(ORCHARD, "set", PS,
                        "<unsubscribe node='o' jid='" ROMEO "'/>"));
    ck_error(remote_iq(ORCHARD, "set", PS,
                       "<unsubscribe node='o' jid='" ROMEO "'/>"),
             "unexpected-request", "not-subscribed");
    ck_error(remote_iq(ORCHARD, "set", PS,
                       "<unsubscribe node='zz' jid='" ROMEO "'/>"),
             "item-not-found", NULL);
    harness_clear();
    publish("o", "b3", "<x xmlns='u'/>");
    ck_assert_int_eq(events_to(ROMEO, "o"), 0);
    ck_assert_int_eq(events_to(BENV, "o"), 1);
    /* and node deletion tells them */
    harness_clear();
    ck_result(own_iq("set", PSO, "<delete node='o'/>"));
    ck_assert_int_eq(events_to(BENV, "o"), 1);
}
END_TEST

START_TEST(owner_affiliations)
{
    roost_stanza_t *r, *a;
    char list[512];

    set_contact(ROMEO, ROOST_SUB_BOTH, NULL);
    publish("w", "c", "<x xmlns='u'/>");
    configure_access("w", "whitelist");
    publish("o", "b", "<x xmlns='u'/>");
    configure_access("o", "open");

    /* §8.9.1 */
    r = own_iq("get", PSO, "<affiliations node='w'/>");
    ck_result(r);
    entity_list(ps_child(r, PSO, "affiliations"), "affiliation", list,
                sizeof(list));
    ck_assert_str_eq(list, JUL "=owner");
    ck_error(own_iq("get", PSO, "<affiliations node='zz'/>"), "item-not-found",
             NULL);
    ck_error(own_iq("get", PSO, "<affiliations/>"), "bad-request",
             "nodeid-required");
    ck_error(remote_iq(ORCHARD, "get", PSO, "<affiliations node='w'/>"),
             "forbidden", NULL);
    ck_error(remote_iq(ORCHARD, "set", PSO,
                       "<affiliations node='w'><affiliation jid='" ROMEO
                       "' affiliation='member'/></affiliations>"),
             "forbidden", NULL);

    /* §8.9.2: publisher; the owner cannot stop being the owner, and what
     * fails comes back with its unchanged value while the rest applies */
    r = own_iq("set", PSO,
               "<affiliations node='w'><affiliation jid='" JUL
               "' affiliation='none'/><affiliation jid='" ROMEO
               "' affiliation='publisher'/><affiliation "
               "jid='nurse@montague.lit' affiliation='emperor'/>"
               "</affiliations>");
    ck_error(r, "not-acceptable", NULL);
    entity_list(ps_child(r, PSO, "affiliations"), "affiliation", list,
                sizeof(list));
    ck_assert_str_eq(list, JUL "=owner nurse@montague.lit=none");
    r = own_iq("get", PSO, "<affiliations node='w'/>");
    entity_list(ps_child(r, PSO, "affiliations"), "affiliation", list,
                sizeof(list));
    ck_assert_str_eq(list, JUL "=owner " ROMEO "=publisher");
    /* one element per entity */
    ck_error(own_iq("set", PSO,
                    "<affiliations node='w'><affiliation jid='" ROMEO
                    "' affiliation='member'/><affiliation jid='" ROMEO
                    "' affiliation='none'/></affiliations>"),
             "bad-request", NULL);

    /* a publisher publishes to (and retracts from) that node alone */
    ck_result(remote_iq(ORCHARD, "set", PS,
                        "<publish node='w'><item id='r1'><x xmlns='u'/>"
                        "</item></publish>"));
    ck_result(remote_iq(ORCHARD, "get", PS, "<items node='w'/>"));
    ck_error(remote_iq(ORCHARD, "set", PS,
                       "<publish node='o'><item><x xmlns='u'/></item>"
                       "</publish>"),
             "forbidden", NULL);
    ck_error(remote_iq(ORCHARD, "set", PS,
                       "<publish node='new'><item><x xmlns='u'/></item>"
                       "</publish>"),
             "forbidden", NULL);
    ck_result(remote_iq(ORCHARD, "set", PS,
                        "<retract node='w'><item id='r1'/></retract>"));
    /* §5.7: his own affiliations */
    r = remote_iq(ORCHARD, "get", PS, "<affiliations/>");
    ck_result(r);
    a = roost_stanza_first_child(ps_child(r, PS, "affiliations"));
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(roost_stanza_attr(a, "node"), "w");
    ck_assert_str_eq(roost_stanza_attr(a, "affiliation"), "publisher");
    ck_assert_ptr_null(roost_stanza_next_sibling(a));

    /* outcast: subscription gone, blocked (§6.1.3.8) */
    ck_result(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='o' jid='" ROMEO "'/>"));
    ck_result(own_iq("set", PSO,
                     "<affiliations node='o'><affiliation jid='" ROMEO
                     "' affiliation='outcast'/></affiliations>"));
    ck_error(
        remote_iq(ORCHARD, "set", PS, "<subscribe node='o' jid='" ROMEO "'/>"),
        "forbidden", NULL);
    ck_error(remote_iq(ORCHARD, "get", PS, "<items node='o'/>"), "forbidden",
             NULL);
    r = remote_iq(ORCHARD, "get", PS, "<subscriptions/>");
    ck_assert_ptr_null(
        roost_stanza_first_child(ps_child(r, PS, "subscriptions")));
    /* none removes the entry (§8.9.3); the list survives a restart */
    ck_result(own_iq("set", PSO,
                     "<affiliations node='o'><affiliation jid='" ROMEO
                     "' affiliation='none'/></affiliations>"));
    reload();
    r = own_iq("get", PSO, "<affiliations node='o'/>");
    entity_list(ps_child(r, PSO, "affiliations"), "affiliation", list,
                sizeof(list));
    ck_assert_str_eq(list, JUL "=owner");
    r = own_iq("get", PSO, "<affiliations node='w'/>");
    entity_list(ps_child(r, PSO, "affiliations"), "affiliation", list,
                sizeof(list));
    ck_assert_str_eq(list, JUL "=owner " ROMEO "=publisher");

    /* §8.8.2: the owner manages subscriptions */
    ck_result(own_iq("set", PSO,
                     "<subscriptions node='o'><subscription jid='" BENV
                     "' subscription='subscribed'/></subscriptions>"));
    r = own_iq("get", PSO, "<subscriptions node='o'/>");
    entity_list(ps_child(r, PSO, "subscriptions"), "subscription", list,
                sizeof(list));
    ck_assert_str_eq(list, BENV "=subscribed");
    r = own_iq("set", PSO,
               "<subscriptions node='o'><subscription jid='" BENV
               "' subscription='none'/><subscription jid='" ROMEO
               "' subscription='pending'/></subscriptions>");
    ck_error(r, "not-acceptable", NULL);
    entity_list(ps_child(r, PSO, "subscriptions"), "subscription", list,
                sizeof(list));
    ck_assert_str_eq(list, ROMEO "=none");
    r = own_iq("get", PSO, "<subscriptions node='o'/>");
    ck_assert_ptr_null(
        roost_stanza_first_child(ps_child(r, PSO, "subscriptions")));
}
END_TEST

/* --- XEP-0411 bookmarks conversion (XEP-0048 <-> XEP-0402) --- */

#define BM   "storage:bookmarks"
#define BM2  "urn:xmpp:bookmarks:1"
#define PRIV "jabber:iq:private"
/* client/pc//T plus disco#info, BM+notify, BM2+notify */
#define VER_BM "37IGqKc6LrmrsqdPHKtW9tPeVkU="

/* Juliet's balcony announces caps wanting both bookmark nodes. */
static void
balcony_wants_bookmarks(void)
{
    roost_stanza_t *q;
    char buf[2048];

    harness_inject(BALCONY, NULL,
                   "<presence><c xmlns='" CAPS "' hash='sha-1' node='urn:t' "
                   "ver='" VER_BM "'/></presence>");
    q = harness_delivered_stanza(BALCONY, harness_delivered_count(BALCONY) - 1);
    ck_assert_str_eq(roost_stanza_name(q), "iq");
    snprintf(buf, sizeof(buf),
             "<iq type='result' id='%s'><query xmlns='" DINFO
             "' node='urn:t#" VER_BM "'><identity category='client' "
             "type='pc' name='T'/><feature var='" DINFO "'/><feature "
             "var='" BM "+notify'/><feature var='" BM2 "+notify'/></query>"
             "</iq>",
             roost_stanza_attr(q, "id"));
    harness_inject(BALCONY, JUL, buf);
    harness_clear();
}

/* Events for node delivered to the balcony: "id" for an item, "-id" for a
 * retraction, space-separated. */
static void
balcony_events(const char *node, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < harness_delivered_count(BALCONY); i++) {
        roost_stanza_t *m = harness_delivered_stanza(BALCONY, i), *e;

        e = roost_stanza_child(m, PSE, "event");
        e = e != NULL ? roost_stanza_child(e, NULL, "items") : NULL;
        if (e == NULL || strcmp(roost_stanza_attr(e, "node"), node) != 0)
            continue;
        for (roost_stanza_t *c = roost_stanza_first_child(e); c != NULL;
             c = roost_stanza_next_sibling(c)) {
            if (out[0] != '\0')
                strncat(out, " ", len - strlen(out) - 1);
            if (strcmp(roost_stanza_name(c), "retract") == 0)
                strncat(out, "-", len - strlen(out) - 1);
            strncat(out, roost_stanza_attr(c, "id"), len - strlen(out) - 1);
        }
    }
}

/* The conferences of a XEP-0048 <storage/>: "jid:autojoin:nick" ... */
static void
legacy_list(roost_stanza_t *st, char *out, size_t len)
{
    out[0] = '\0';
    ck_assert_ptr_nonnull(st);
    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *nick = roost_stanza_child_text(c, BM, "nick");

        if (out[0] != '\0')
            strncat(out, " ", len - strlen(out) - 1);
        strncat(out, roost_stanza_attr(c, "jid"), len - strlen(out) - 1);
        strncat(out, ":", len - strlen(out) - 1);
        strncat(out, roost_stanza_attr(c, "autojoin"), len - strlen(out) - 1);
        strncat(out, ":", len - strlen(out) - 1);
        strncat(out, nick ? nick : "", len - strlen(out) - 1);
    }
}

static int
count_key(void *arg, const char *key, const char *val, size_t len)
{
    (void)key, (void)val, (void)len;
    ++*(int *)arg;
    return 0;
}

/* Number of Juliet's keys in the MAP store name. */
static int
stored_keys(const char *name)
{
    int n = 0;

    ck_assert_int_ge(roost_store_keys(harness_store(name, ROOST_STORE_MAP),
                                      "juliet", count_key, &n),
                     0);
    return n;
}

#define PRIV_SET(body)                                                         \
    "<iq type='set' id='ps'><query xmlns='" PRIV "'><storage xmlns='" BM       \
    "'>" body "</storage></query></iq>"

START_TEST(bookmarks_conversion)
{
    roost_stanza_t *r, *it, *c;
    char list[512];

    /* XEP-0411 §2 */
    ck_assert_int_eq(harness_account_feature_count(), 35);
    balcony_wants_bookmarks();

    /* private XML -> XEP-0402 items, notified on both nodes */
    ck_result(
        own_answer(PRIV_SET("<conference jid='play@muc.lit' name='The Play' "
                            "autojoin='true'><nick>JC</nick></conference>"
                            "<conference jid='Orchard@muc.lit' "
                            "autojoin='0'/><url url='http://x'/>")));
    balcony_events(BM2, list, sizeof(list));
    ck_assert_str_eq(list, "play@muc.lit orchard@muc.lit");
    balcony_events(BM, list, sizeof(list));
    ck_assert_str_eq(list, "current");
    r = own_iq("get", PS, "<items node='" BM2 "'/>");
    ck_result(r);
    item_ids(items_of(r), list, sizeof(list));
    ck_assert_str_eq(list, "play@muc.lit orchard@muc.lit");
    it = roost_stanza_first_child(items_of(r));
    c = roost_stanza_child(it, BM2, "conference");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(roost_stanza_attr(c, "name"), "The Play");
    ck_assert_str_eq(roost_stanza_attr(c, "autojoin"), "true");
    ck_assert_str_eq(roost_stanza_child_text(c, BM2, "nick"), "JC");
    ck_assert_ptr_null(roost_stanza_attr(
        roost_stanza_child(roost_stanza_next_sibling(it), BM2, "conference"),
        "autojoin"));
    /* XEP-0411 §6: the owner alone */
    ck_error(remote_iq(ORCHARD, "get", PS, "<items node='" BM2 "'/>"),
             "not-allowed", "closed-node");

    /* unchanged items are not notified (XEP-0402 §Compatibility), missing
     * ones are retracted */
    harness_clear();
    ck_result(own_answer(
        PRIV_SET("<conference jid='play@muc.lit' name='The Play' "
                 "autojoin='true'><nick>JC</nick></conference>"
                 "<conference jid='new@muc.lit' autojoin='true'/>")));
    balcony_events(BM2, list, sizeof(list));
    ck_assert_str_eq(list, "new@muc.lit -orchard@muc.lit");

    /* XEP-0402 -> private XML and the PEP node 'storage:bookmarks' */
    harness_clear();
    ck_result(own_iq("set", PS,
                     "<publish node='" BM2 "'><item id='third@muc.lit'>"
                     "<conference xmlns='" BM2 "' autojoin='1'><nick>J"
                     "</nick></conference></item></publish>"));
    balcony_events(BM, list, sizeof(list));
    ck_assert_str_eq(list, "current");
    r = own_answer("<iq type='get' id='pg'><query xmlns='" PRIV "'><storage "
                   "xmlns='" BM "'/></query></iq>");
    ck_result(r);
    legacy_list(
        roost_stanza_child(roost_stanza_child(r, PRIV, "query"), BM, "storage"),
        list, sizeof(list));
    ck_assert_str_eq(list, "play@muc.lit:true:JC new@muc.lit:true: "
                           "third@muc.lit:true:J");
    ck_result(own_iq("set", PS,
                     "<retract node='" BM2 "'><item id='new@muc.lit'/>"
                     "</retract>"));
    r = own_iq("get", PS, "<items node='" BM "'/>");
    ck_result(r);
    it = roost_stanza_child(items_of(r), NULL, "item");
    ck_assert_str_eq(roost_stanza_attr(it, "id"), "current");
    legacy_list(roost_stanza_child(it, BM, "storage"), list, sizeof(list));
    ck_assert_str_eq(list, "play@muc.lit:true:JC third@muc.lit:true:J");

    /* XEP-0048 through PEP -> XEP-0402 */
    harness_clear();
    ck_result(own_iq("set", PS,
                     "<publish node='" BM "'><item id='current'><storage "
                     "xmlns='" BM "'><conference jid='third@muc.lit' "
                     "autojoin='true'><nick>J</nick></conference></storage>"
                     "</item></publish>"));
    balcony_events(BM2, list, sizeof(list));
    ck_assert_str_eq(list, "-play@muc.lit");
    reload();
    r = own_iq("get", PS, "<items node='" BM2 "'/>");
    item_ids(items_of(r), list, sizeof(list));
    ck_assert_str_eq(list, "third@muc.lit");
    /* no 'storage:bookmarks' node of its own */
    ck_assert_int_eq(stored_keys("pep_nodes"), 1);
}
END_TEST

/* XEP-0411 §4: legacy private XML bookmarks move into the XEP-0402 node
 * before the user's first request. */
START_TEST(bookmarks_migration)
{
    static const char legacy[] =
        "<storage xmlns='" BM "'><conference jid='old@muc.lit' "
        "autojoin='true'><nick>N</nick></conference></storage>";
    roost_stanza_t *r;
    char list[256], *val = NULL;
    size_t len;

    ck_assert_int_eq(harness_session_remove(BALCONY), 0);
    ck_assert_int_eq(harness_unload(harness_mod("pep")), 0);
    ck_assert_int_eq(roost_store_set(harness_store("private", ROOST_STORE_MAP),
                                     "juliet", "{" BM "}storage", legacy,
                                     strlen(legacy)),
                     0);
    ck_assert_ptr_nonnull(harness_load(&roost_module_pep, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    r = own_iq("get", PS, "<items node='" BM2 "'/>");
    ck_result(r);
    item_ids(items_of(r), list, sizeof(list));
    ck_assert_str_eq(list, "old@muc.lit");
    ck_assert_int_eq(roost_store_get(harness_store("private", ROOST_STORE_MAP),
                                     "juliet", "{" BM "}storage", &val, &len),
                     -ROOST_ENOTFOUND);
    r = own_answer("<iq type='get' id='pg'><query xmlns='" PRIV "'><storage "
                   "xmlns='" BM "'/></query></iq>");
    legacy_list(
        roost_stanza_child(roost_stanza_child(r, PRIV, "query"), BM, "storage"),
        list, sizeof(list));
    ck_assert_str_eq(list, "old@muc.lit:true:N");
}
END_TEST

/* ---- XEP-0398: the avatar to mod_vcard ---- */

#define AVD     "urn:xmpp:avatar:data"
#define AVM     "urn:xmpp:avatar:metadata"
#define VCPHOTO "urn:roost:vcard-photo"
/* A 2x3 PNG's base64 and SHA-1 (as in check_mod_vcard.c). */
#define PNG_B64                                                                \
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAIAAAA2iEnWAAAAEElEQVR4nGP4z8AARAwoFABE" \
    "0AX7pM/egAAAAABJRU5ErkJggg=="
#define PNG_SHA1 "94458be1f7b2ef1fe17a4bae328e75cc134ea5c9"

/* A stand-in for mod_vcard: records the photo IQs and answers them. */
#define FAKE_MAX 8
static roost_stanza_t *fake_photos[FAKE_MAX];
static int fake_nphoto;

static roost_verdict_t
fake_photo(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    ck_assert_int_lt(fake_nphoto, FAKE_MAX);
    ck_assert_ptr_null(ev->origin); /* from the server, not a client */
    fake_photos[fake_nphoto++] = roost_stanza_copy(ev->stanza);
    return roost_reply(ev, NULL);
}

static int
fake_vcard_load(roost_mod_t *m)
{
    return roost_hook_iq(m, VCPHOTO, "photo", NULL, fake_photo, NULL);
}

static const roost_module_t fake_vcard = {
    .abi = ROOST_ABI,
    .name = "fakevcard",
    .load = fake_vcard_load,
};

static void
av_setup(void)
{
    setup();
    ck_assert_ptr_nonnull(harness_load(&fake_vcard, "localhost", NULL));
}

static void
av_teardown(void)
{
    for (int i = 0; i < fake_nphoto; i++)
        roost_stanza_unref(fake_photos[i]);
    fake_nphoto = 0;
    teardown();
}

/* The <photo/> of recorded IQ i, from and to Juliet's bare JID. */
static roost_stanza_t *
fake_photo_el(int i)
{
    roost_stanza_t *p;

    ck_assert_int_lt(i, fake_nphoto);
    ck_assert_str_eq(roost_stanza_attr(fake_photos[i], "type"), "set");
    ck_assert_str_eq(roost_stanza_attr(fake_photos[i], "from"), JUL);
    ck_assert_str_eq(roost_stanza_attr(fake_photos[i], "to"), JUL);
    p = roost_stanza_child(fake_photos[i], VCPHOTO, "photo");
    ck_assert_ptr_nonnull(p);
    return p;
}

/* XEP-0398 §2.1: metadata published by the client; the info without url
 * names the data item, whose base64 goes to the vCard. */
START_TEST(avatar_to_vcard)
{
    roost_stanza_t *p;

    publish(AVD, PNG_SHA1, "<data xmlns='" AVD "'>" PNG_B64 "</data>");
    ck_assert_int_eq(fake_nphoto, 0); /* the data alone: nothing yet */
    publish(AVM, PNG_SHA1,
            "<metadata xmlns='" AVM "'>"
            "<info id='e0' bytes='9' type='image/gif' url='https://x.lit/a'/>"
            "<info id='" PNG_SHA1 "' bytes='73' type='image/png'/>"
            "</metadata>");
    ck_assert_int_eq(fake_nphoto, 1);
    p = fake_photo_el(0);
    ck_assert_str_eq(roost_stanza_attr(p, "id"), PNG_SHA1);
    ck_assert_str_eq(roost_stanza_attr(p, "type"), "image/png");
    ck_assert_str_eq(roost_stanza_text(p), PNG_B64);

    /* XEP-0084 §4.5: empty metadata, the avatar is gone. */
    publish(AVM, "none", "<metadata xmlns='" AVM "'/>");
    ck_assert_int_eq(fake_nphoto, 2);
    p = fake_photo_el(1);
    ck_assert_ptr_null(roost_stanza_attr(p, "id"));
    ck_assert_str_eq(roost_stanza_text(p), "");
}
END_TEST

/* Nothing for the vCard: only an external URL, metadata whose data item
 * is missing, and what the server published itself (mod_vcard's copy of
 * a vCard, origin NULL: no echo). */
START_TEST(avatar_to_vcard_not)
{
    roost_stanza_t *r;
    char ids[256];

    publish(AVM, "u",
            "<metadata xmlns='" AVM "'><info id='e0' bytes='9' "
            "type='image/png' url='https://x.lit/a'/></metadata>");
    publish(AVM, PNG_SHA1,
            "<metadata xmlns='" AVM "'><info id='" PNG_SHA1 "' bytes='73' "
            "type='image/png'/></metadata>");
    ck_assert_int_eq(fake_nphoto, 0);
    publish(AVD, PNG_SHA1, "<data xmlns='" AVD "'>" PNG_B64 "</data>");
    harness_inject(JUL, JUL,
                   "<iq type='set' id='srv'><pubsub xmlns='" PS "'>"
                   "<publish node='" AVM "'><item id='srv1'>"
                   "<metadata xmlns='" AVM "'><info id='" PNG_SHA1 "' "
                   "bytes='73' type='image/png'/></metadata></item></publish>"
                   "</pubsub></iq>");
    ck_assert_int_eq(fake_nphoto, 0);
    /* It was published all the same. */
    r = own("<iq type='get' id='g'><pubsub xmlns='" PS "'><items node='" AVM
            "'/></pubsub></iq>");
    item_ids(items_of(r), ids, sizeof(ids));
    ck_assert_str_eq(ids, "srv1");
}
END_TEST

#define META_PNG                                                               \
    "<metadata xmlns='" AVM "'><info id='" PNG_SHA1 "' bytes='73' "            \
    "type='image/png'/></metadata>"

/* The avatar's photo IQ i removes the vCard's photo. */
static void
ck_photo_removed(int i)
{
    roost_stanza_t *p = fake_photo_el(i);

    ck_assert_ptr_null(roost_stanza_attr(p, "id"));
    ck_assert_str_eq(roost_stanza_text(p), "");
}

/* XEP-0084 §4.5 and XEP-0398: no metadata any more, no photo in the
 * vCard: the current metadata item retracted, the node purged or deleted.
 * Retracting an older item changes nothing; retracting the newest of two
 * puts the older one back. */
START_TEST(avatar_removed)
{
    publish(AVD, PNG_SHA1, "<data xmlns='" AVD "'>" PNG_B64 "</data>");
    publish(AVM, PNG_SHA1, META_PNG);
    ck_assert_int_eq(fake_nphoto, 1);
    ck_result(own("<iq type='set' id='r'><pubsub xmlns='" PS "'><retract "
                  "node='" AVM "'><item id='" PNG_SHA1 "'/></retract>"
                  "</pubsub></iq>"));
    ck_assert_int_eq(fake_nphoto, 2);
    ck_photo_removed(1);

    publish(AVM, PNG_SHA1, META_PNG);
    ck_assert_int_eq(fake_nphoto, 3);
    ck_result(own("<iq type='set' id='pu'><pubsub xmlns='" PSO "'><purge "
                  "node='" AVM "'/></pubsub></iq>"));
    ck_assert_int_eq(fake_nphoto, 4);
    ck_photo_removed(3);

    publish(AVM, PNG_SHA1, META_PNG);
    ck_assert_int_eq(fake_nphoto, 5);
    ck_result(own("<iq type='set' id='d'><pubsub xmlns='" PSO "'><delete "
                  "node='" AVM "'/></pubsub></iq>"));
    ck_assert_int_eq(fake_nphoto, 6);
    ck_photo_removed(5);
}
END_TEST

START_TEST(avatar_retract_older)
{
    roost_stanza_t *p;

    /* Two metadata items kept: the PNG, then an empty one (no avatar). */
    ck_result(
        own("<iq type='set' id='c'><pubsub xmlns='" PS "'><create "
            "node='" AVM "'/><configure><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE' type='hidden'><value>" PS
            "#node_config</value></field><field var='pubsub#max_items'>"
            "<value>2</value></field></x></configure></pubsub></iq>"));
    publish(AVD, PNG_SHA1, "<data xmlns='" AVD "'>" PNG_B64 "</data>");
    publish(AVM, PNG_SHA1, META_PNG);
    publish(AVM, "none", "<metadata xmlns='" AVM "'/>");
    ck_assert_int_eq(fake_nphoto, 2);
    /* The older one: the current avatar stays. */
    ck_result(own("<iq type='set' id='r'><pubsub xmlns='" PS "'><retract "
                  "node='" AVM "'><item id='" PNG_SHA1 "'/></retract>"
                  "</pubsub></iq>"));
    ck_assert_int_eq(fake_nphoto, 2);
    /* The newest, with an older one left: that one is the avatar. */
    publish(AVM, PNG_SHA1, META_PNG);
    ck_assert_int_eq(fake_nphoto, 3);
    publish(AVM, "none2", "<metadata xmlns='" AVM "'/>");
    ck_assert_int_eq(fake_nphoto, 4);
    ck_result(own("<iq type='set' id='r2'><pubsub xmlns='" PS "'><retract "
                  "node='" AVM "'><item id='none2'/></retract></pubsub></iq>"));
    ck_assert_int_eq(fake_nphoto, 5);
    p = fake_photo_el(4);
    ck_assert_str_eq(roost_stanza_attr(p, "id"), PNG_SHA1);
    ck_assert_str_eq(roost_stanza_text(p), PNG_B64);
}
END_TEST

static Suite *
pep_suite(void)
{
    Suite *s = suite_create("mod_pep");
    TCase *tc = tcase_create("pep");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, publish_autocreates);
    tcase_add_test(tc, publish_generates_id);
    tcase_add_test(tc, publish_max_items_overwrite);
    tcase_add_loop_test(tc, publish_error_table, 0,
                        sizeof(publish_errors) / sizeof(publish_errors[0]));
    tcase_add_test(tc, items_errors);
    tcase_add_test(tc, retract_and_delete);
    tcase_add_test(tc, create_configure_purge);
    tcase_add_test(tc, publish_options);
    tcase_add_test(tc, access_models);
    tcase_add_test(tc, subscribe_access_models);
    tcase_add_test(tc, subscribe_notify_unsubscribe);
    tcase_add_test(tc, owner_affiliations);
    tcase_add_test(tc, bookmarks_conversion);
    tcase_add_test(tc, bookmarks_migration);
    tcase_add_test(tc, notify_filtered_by_caps);
    tcase_add_test(tc, caps_cache_verified_only);
    tcase_add_test(tc, caps_xep_vectors);
    tcase_add_test(tc, caps_legacy_per_jid);
    tcase_add_test(tc, last_item_never);
    tcase_add_test(tc, persistence);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, disco_registration_and_nodes);
    tcase_add_test(tc, private_storage);
    suite_add_tcase(s, tc);

    tc = tcase_create("avatar");
    tcase_add_checked_fixture(tc, av_setup, av_teardown);
    tcase_add_test(tc, avatar_to_vcard);
    tcase_add_test(tc, avatar_to_vcard_not);
    tcase_add_test(tc, avatar_removed);
    tcase_add_test(tc, avatar_retract_older);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pep_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
