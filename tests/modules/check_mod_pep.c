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
 * roster, whitelist), XEP-0115 verification (the XEP's two examples) and
 * caching, filtered notifications, the last published item on presence,
 * persistence across a reload (and persist_items=0), limits, account
 * disco registration and node listing, and private XML storage.
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
    {"<subscribe node='n' jid='" JUL "'/>", "feature-not-implemented",
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
}
END_TEST

/* --- disco --- */

START_TEST(disco_registration_and_nodes)
{
    roost_stanza_t *r, *c;
    int n = 0;

    /* identity pubsub/pep plus pubsub and 23 pubsub# features */
    ck_assert_int_eq(harness_account_feature_count(), 25);
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
