/* tests/modules/check_mod_roster.c: mod_roster (RFC 6121 §2, XEP-0237) on
 * the fake host, with the real roster model (core/roster.c).
 *
 * Covers: roster get (empty, stored items, versioning), set (add, update
 * keeping the subscription state, ignored subscription/ask), remove, the
 * RFC 6121 §2.3.3 error cases as a table, what is persisted (items and
 * the version under key ""), pushes to interested resources only, the
 * max_items limit, IQs mod_roster leaves to the core, advertisement and
 * unload; plus the harness's per-user state (roost_user_state).
 * Not for: subscriptions (mod_presence) or the storage driver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_roster;

#define PHONE  "alice@localhost/phone"
#define LAPTOP "alice@localhost/laptop"
#define TABLET "alice@localhost/tablet"

#define RQ(body)      "<query xmlns='jabber:iq:roster'>" body "</query>"
#define SET(id, body) "<iq type='set' id='" id "'>" RQ(body) "</iq>"
#define GET(id)       "<iq type='get' id='" id "'>" RQ("") "</iq>"
#define GET_VER(id, ver)                                                       \
    "<iq type='get' id='" id "'><query xmlns='jabber:iq:roster' ver='" ver     \
    "'/></iq>"

struct roster_conf_view {
    int64_t max_items;
};

static void
setup(void)
{
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_roster, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(TABLET, 1, 0));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

/* The last stanza delivered to jid (NULL when none). */
static roost_stanza_t *
last(const char *jid)
{
    size_t n = harness_delivered_count(jid);

    return n > 0 ? harness_delivered_stanza(jid, n - 1) : NULL;
}

/* Injects from jid (no 'to': the own account) and expects one handled
 * result; returns it. */
static roost_stanza_t *
ok(const char *jid, const char *xml)
{
    size_t before = harness_delivered_count(jid);
    roost_stanza_t *r;

    ck_assert_int_eq(harness_inject(jid, NULL, xml), ROOST_HANDLED);
    ck_assert_uint_gt(harness_delivered_count(jid), before);
    r = harness_delivered_stanza(jid, before);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
    return r;
}

/* Makes the phone and the laptop interested (roster get), then forgets
 * the output. */
static void
interested(void)
{
    ok(PHONE, GET("g1"));
    ok(LAPTOP, GET("g2"));
    harness_clear();
}

static roost_stanza_t *
query_of(roost_stanza_t *iq)
{
    return roost_stanza_child(iq, "jabber:iq:roster", "query");
}

static int
count_children(roost_stanza_t *el)
{
    int n = 0;

    for (roost_stanza_t *c = el ? roost_stanza_first_child(el) : NULL;
         c != NULL; c = roost_stanza_next_sibling(c))
        n++;
    return n;
}

/* The item for jid inside a query, or NULL. */
static roost_stanza_t *
item_of(roost_stanza_t *q, const char *jid)
{
    for (roost_stanza_t *c = q ? roost_stanza_first_child(q) : NULL; c != NULL;
         c = roost_stanza_next_sibling(c))
        if (strcmp(roost_stanza_name(c), "item") == 0 &&
            strcmp(roost_stanza_attr(c, "jid"), jid) == 0)
            return c;
    return NULL;
}

/* ---- get ---- */

START_TEST(test_get_empty)
{
    roost_stanza_t *r = ok(PHONE, GET("e1")), *q = query_of(r);

    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "e1");
    ck_assert_pstr_eq(roost_stanza_attr(r, "to"), PHONE);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(count_children(q), 0);
    /* No 'ver' asked, none given (XEP-0237: versioning is opt-in). */
    ck_assert_ptr_null(roost_stanza_attr(q, "ver"));
    ck_assert(roost_session_roster_requested(harness_session(PHONE)));
    ck_assert(!roost_session_roster_requested(harness_session(LAPTOP)));
    /* A get changes nothing. */
    ck_assert_int_eq(harness_roster_persist_count("alice"), 0);
}
END_TEST

/* Items come from storage, in the stored form core/roster.c writes. */
START_TEST(test_get_stored)
{
    static const char *const kv[] = {
        "bob@localhost",
        "<item jid='bob@localhost' name='Bob' subscription='both'>"
        "<group>Friends</group><group>Work</group></item>",
        "carol@example.net",
        "<item jid='carol@example.net' subscription='none' ask='subscribe'/>",
        "dave@localhost",
        "<item jid='dave@localhost' subscription='none' pending-in='1'/>",
        "",
        "7",
        NULL};
    roost_stanza_t *q, *it, *g;

    ck_assert_int_eq(harness_roster_preload("alice", kv), 0);
    q = query_of(ok(PHONE, GET_VER("s1", "")));
    ck_assert_pstr_eq(roost_stanza_attr(q, "ver"), "7");
    ck_assert_int_eq(count_children(q), 3);
    it = item_of(q, "bob@localhost");
    ck_assert_ptr_nonnull(it);
    ck_assert_pstr_eq(roost_stanza_attr(it, "name"), "Bob");
    ck_assert_pstr_eq(roost_stanza_attr(it, "subscription"), "both");
    ck_assert_ptr_null(roost_stanza_attr(it, "ask"));
    g = roost_stanza_first_child(it);
    ck_assert_str_eq(roost_stanza_text(g), "Friends");
    ck_assert_str_eq(roost_stanza_text(roost_stanza_next_sibling(g)), "Work");
    it = item_of(q, "carol@example.net");
    ck_assert_pstr_eq(roost_stanza_attr(it, "subscription"), "none");
    ck_assert_pstr_eq(roost_stanza_attr(it, "ask"), "subscribe");
    /* Every item that exists is shown, pending_in-only ones too; the
     * private flags are not. */
    it = item_of(q, "dave@localhost");
    ck_assert_ptr_nonnull(it);
    ck_assert_ptr_null(roost_stanza_attr(it, "pending-in"));
}
END_TEST

/* XEP-0237 §2.3/§2.4: same ver -> empty result; stale or "" -> the roster
 * with the current ver; no ver -> no versioning. */
static const struct {
    const char *ver; /* NULL: no ver attribute */
    int empty;       /* result without <query/> */
    const char *want_ver;
} ver_cases[] = {
    {"2", 1, NULL}, {"1", 0, "2"},   {"0", 0, "2"},  {"", 0, "2"},
    {"99", 0, "2"}, {NULL, 0, NULL}, {"2 ", 0, "2"},
};

START_TEST(test_versioning)
{
    char xml[200];
    roost_stanza_t *r, *q;

    ok(PHONE, SET("a1", "<item jid='bob@localhost'/>"));
    ok(PHONE, SET("a2", "<item jid='carol@localhost'/>"));
    ck_assert_pstr_eq(roost_roster_version(harness_mod("roster"), "alice"),
                      "2");
    if (ver_cases[_i].ver != NULL)
        snprintf(xml, sizeof(xml), GET_VER("v", "%s"), ver_cases[_i].ver);
    else
        snprintf(xml, sizeof(xml), GET("v"));
    r = ok(LAPTOP, xml);
    q = query_of(r);
    ck_assert(roost_session_roster_requested(harness_session(LAPTOP)));
    if (ver_cases[_i].empty) {
        ck_assert_ptr_null(roost_stanza_first_child(r));
        return;
    }
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(count_children(q), 2);
    ck_assert_pstr_eq(roost_stanza_attr(q, "ver"), ver_cases[_i].want_ver);
}
END_TEST

/* The version survives a reload (logout/login) and an empty roster is at
 * "0". */
START_TEST(test_version_persisted)
{
    ck_assert_ptr_null(roost_stanza_first_child(ok(PHONE, GET_VER("z", "0"))));
    ok(PHONE, SET("a1", "<item jid='bob@localhost'/>"));
    ok(PHONE, SET("a2", "<item jid='bob@localhost' name='B'/>"));
    ck_assert_pstr_eq(harness_roster_stored("alice", ""), "2");
    ck_assert_int_eq(harness_roster_reload("alice"), 0);
    ck_assert_ptr_null(roost_stanza_first_child(ok(PHONE, GET_VER("r", "2"))));
}
END_TEST

/* ---- set ---- */

START_TEST(test_add_push_persist)
{
    roost_stanza_t *r, *p, *q, *it, *g;
    const char *stored;

    interested();
    r = ok(PHONE, SET("add1", "<item jid='Bob@LocalHost' name='Bob'>"
                              "<group>Friends</group></item>"));
    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "add1");
    ck_assert_ptr_null(roost_stanza_first_child(r));
    /* RFC 6121 §2.3.2: result, then a push to every interested resource,
     * the requester included; the tablet never asked for the roster. */
    ck_assert_uint_eq(harness_delivered_count(PHONE), 2);
    ck_assert_uint_eq(harness_delivered_count(LAPTOP), 1);
    ck_assert_uint_eq(harness_delivered_count(TABLET), 0);
    ck_assert_uint_eq(harness_sent_count(), 0);
    p = last(LAPTOP);
    ck_assert_pstr_eq(roost_stanza_attr(p, "type"), "set");
    ck_assert_pstr_eq(roost_stanza_attr(p, "to"), LAPTOP);
    ck_assert_ptr_nonnull(roost_stanza_attr(p, "id"));
    q = query_of(p);
    ck_assert_pstr_eq(roost_stanza_attr(q, "ver"), "1");
    ck_assert_int_eq(count_children(q), 1);
    it = item_of(q, "bob@localhost"); /* prepared */
    ck_assert_ptr_nonnull(it);
    ck_assert_pstr_eq(roost_stanza_attr(it, "name"), "Bob");
    ck_assert_pstr_eq(roost_stanza_attr(it, "subscription"), "none");
    ck_assert_ptr_null(roost_stanza_attr(it, "ask"));
    g = roost_stanza_first_child(it);
    ck_assert_str_eq(roost_stanza_text(g), "Friends");
    p = last(PHONE);
    ck_assert_pstr_eq(roost_stanza_attr(p, "type"), "set");
    ck_assert_pstr_eq(roost_stanza_attr(p, "to"), PHONE);
    /* Persisted: the item under its prepared JID, the version under "". */
    ck_assert_uint_eq(harness_roster_stored_count("alice"), 2);
    stored = harness_roster_stored("alice", "bob@localhost");
    ck_assert_ptr_nonnull(stored);
    ck_assert_ptr_nonnull(strstr(stored, "name=\"Bob\""));
    ck_assert_ptr_nonnull(strstr(stored, "<group>Friends</group>"));
    ck_assert_pstr_eq(harness_roster_stored("alice", ""), "1");
}
END_TEST

/* Only name and groups change; subscription state is the server's. */
START_TEST(test_update_keeps_state)
{
    static const char *const kv[] = {
        "bob@localhost",
        "<item jid='bob@localhost' name='Old' subscription='to' "
        "ask='subscribe' pending-in='1' approved='1'><group>A</group></item>",
        "", "3", NULL};
    const roost_roster_item_t *it;
    roost_stanza_t *pi;

    ck_assert_int_eq(harness_roster_preload("alice", kv), 0);
    interested();
    ok(PHONE, SET("u1", "<item jid='bob@localhost' name='New' "
                        "subscription='none'><group>B</group>"
                        "<group>C</group></item>"));
    it = roost_roster_item(harness_mod("roster"), "alice", "bob@localhost");
    ck_assert_ptr_nonnull(it);
    ck_assert_pstr_eq(it->name, "New");
    ck_assert_int_eq(it->sub, ROOST_SUB_TO);
    ck_assert_int_eq(it->ask, 1);
    ck_assert_int_eq(it->pending_in, 1);
    ck_assert_int_eq(it->approved, 1);
    ck_assert_pstr_eq(it->groups[0], "B");
    ck_assert_pstr_eq(it->groups[1], "C");
    ck_assert_ptr_null(it->groups[2]);
    pi = item_of(query_of(last(LAPTOP)), "bob@localhost");
    ck_assert_pstr_eq(roost_stanza_attr(pi, "subscription"), "to");
    ck_assert_pstr_eq(roost_stanza_attr(pi, "ask"), "subscribe");
    ck_assert_pstr_eq(roost_stanza_attr(query_of(last(LAPTOP)), "ver"), "4");
    /* Dropping the name and all groups. */
    ok(PHONE, SET("u2", "<item jid='bob@localhost' name=''/>"));
    it = roost_roster_item(harness_mod("roster"), "alice", "bob@localhost");
    ck_assert_ptr_null(it->name);
    ck_assert_ptr_null(it->groups[0]);
    ck_assert_int_eq(it->sub, ROOST_SUB_TO);
}
END_TEST

/* RFC 6121 §2.1.2.5 / §2.1.5: subscription (other than remove) and ask
 * from the client are ignored. */
START_TEST(test_client_sub_ignored)
{
    const roost_roster_item_t *it;

    ok(PHONE, SET("i1", "<item jid='bob@localhost' subscription='both' "
                        "ask='subscribe' approved='true'/>"));
    it = roost_roster_item(harness_mod("roster"), "alice", "bob@localhost");
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(it->sub, ROOST_SUB_NONE);
    ck_assert_int_eq(it->ask, 0);
    ck_assert_int_eq(it->approved, 0);
    ck_assert_int_eq(it->pending_in, 0);
}
END_TEST

/* A resource that sets without having asked for the roster gets the
 * result but no push; interested ones get the push. */
START_TEST(test_requester_not_interested)
{
    interested();
    ok(TABLET, SET("t1", "<item jid='bob@localhost'/>"));
    ck_assert_uint_eq(harness_delivered_count(TABLET), 1);
    ck_assert_uint_eq(harness_delivered_count(PHONE), 1);
    ck_assert_uint_eq(harness_delivered_count(LAPTOP), 1);
    ck_assert_pstr_eq(roost_stanza_attr(last(PHONE), "type"), "set");
}
END_TEST

/* What was persisted loads back to the same roster. */
START_TEST(test_roundtrip)
{
    roost_stanza_t *q, *it;

    ok(PHONE, SET("a1", "<item jid='bob@localhost' name='B &amp; co'>"
                        "<group>x&lt;y</group><group>Z</group></item>"));
    ok(PHONE, SET("a2", "<item jid='example.org'/>"));
    ck_assert_int_eq(harness_roster_reload("alice"), 0);
    q = query_of(ok(PHONE, GET_VER("g", "")));
    ck_assert_pstr_eq(roost_stanza_attr(q, "ver"), "2");
    ck_assert_int_eq(count_children(q), 2);
    it = item_of(q, "bob@localhost");
    ck_assert_pstr_eq(roost_stanza_attr(it, "name"), "B & co");
    ck_assert_str_eq(roost_stanza_text(roost_stanza_first_child(it)), "x<y");
    ck_assert_ptr_nonnull(item_of(q, "example.org"));
}
END_TEST

/* ---- remove ---- */

START_TEST(test_remove)
{
    roost_stanza_t *p, *it;

    ok(PHONE, SET("a1", "<item jid='bob@localhost'><group>G</group></item>"));
    interested();
    ok(PHONE, SET("r1", "<item jid='bob@localhost' subscription='remove'/>"));
    ck_assert_ptr_null(
        roost_roster_item(harness_mod("roster"), "alice", "bob@localhost"));
    ck_assert_uint_eq(harness_delivered_count(PHONE), 2);
    ck_assert_uint_eq(harness_delivered_count(TABLET), 0);
    p = last(LAPTOP);
    ck_assert_pstr_eq(roost_stanza_attr(query_of(p), "ver"), "2");
    it = item_of(query_of(p), "bob@localhost");
    ck_assert_pstr_eq(roost_stanza_attr(it, "subscription"), "remove");
    ck_assert_ptr_null(roost_stanza_first_child(it));
    ck_assert_ptr_null(harness_roster_stored("alice", "bob@localhost"));
    ck_assert_pstr_eq(harness_roster_stored("alice", ""), "2");
    ck_assert_uint_eq(harness_roster_stored_count("alice"), 1);
    /* Nothing goes to the contact yet (mod_presence's job, §2.5.2). */
    ck_assert_uint_eq(harness_sent_count(), 0);
}
END_TEST

START_TEST(test_remove_unknown)
{
    roost_stanza_t *r;

    interested();
    ck_assert_int_eq(harness_inject(PHONE, NULL,
                                    SET("r2", "<item jid='nobody@localhost' "
                                              "subscription='remove'/>")),
                     ROOST_HANDLED);
    r = last(PHONE);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_pstr_eq(harness_error_cond(r), "item-not-found");
    ck_assert_uint_eq(harness_delivered_count(LAPTOP), 0);
    ck_assert_int_eq(harness_roster_persist_count("alice"), 0);
}
END_TEST

/* ---- errors (RFC 6121 §2.3.3; Prosody where the RFC leaves a choice) */

static char *
repeat(char c, size_t n)
{
    char *s = roost_xmalloc(n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* The i-th bad roster set, new string (roost_free); *cond gets the
 * expected condition. */
static char *
bad_set(int i, const char **cond)
{
    static const struct {
        const char *query, *cond;
    } fixed[] = {
        {RQ("<item jid='a@localhost'/><item jid='b@localhost'/>"),
         "bad-request"},
        {RQ(""), "bad-request"},
        {RQ("<item name='x'/>"), "bad-request"},
        {RQ("<item jid='@localhost'/>"), "bad-request"},
        {RQ("<item jid='a@b@c'/>"), "bad-request"},
        {RQ("<item jid='bob@localhost/res'/>"), "bad-request"},
        {RQ("<thing jid='bob@localhost'/>"), "bad-request"},
        {RQ("<item xmlns='urn:other' jid='bob@localhost'/>"), "bad-request"},
        {RQ("<item jid='alice@localhost'/>"), "not-allowed"},
        {RQ("<item jid='ALICE@localhost' subscription='remove'/>"),
         "not-allowed"},
        {RQ("<item jid='bob@localhost'><group>A</group><group>A</group>"
            "</item>"),
         "bad-request"},
        {RQ("<item jid='bob@localhost'><group/></item>"), "not-acceptable"},
        {RQ("<item jid='bob@localhost'><group>A</group><group></group>"
            "</item>"),
         "not-acceptable"},
    };
    size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
    char *body, *long1, *xml;
    size_t len;

    if ((size_t)i < nfixed) {
        *cond = fixed[i].cond;
        body = roost_xstrdup(fixed[i].query);
    } else if ((size_t)i == nfixed) { /* name of 1024 bytes */
        long1 = repeat('n', 1024);
        len = strlen(long1) + 200;
        body = roost_xmalloc(len);
        snprintf(body, len, RQ("<item jid='bob@localhost' name='%s'/>"), long1);
        roost_free(long1);
        *cond = "not-acceptable";
    } else if ((size_t)i == nfixed + 1) { /* group of 1024 bytes */
        long1 = repeat('g', 1024);
        len = strlen(long1) + 200;
        body = roost_xmalloc(len);
        snprintf(body, len,
                 RQ("<item jid='bob@localhost'><group>%s</group></item>"),
                 long1);
        roost_free(long1);
        *cond = "not-acceptable";
    } else { /* 65 groups */
        len = 200 + 65 * 32;
        body = roost_xmalloc(len);
        snprintf(body, len,
                 "<query xmlns='jabber:iq:roster'>"
                 "<item jid='bob@localhost'>");
        for (int g = 0; g < 65; g++)
            snprintf(body + strlen(body), len - strlen(body),
                     "<group>g%d</group>", g);
        snprintf(body + strlen(body), len - strlen(body), "</item></query>");
        *cond = "not-acceptable";
    }
    len = strlen(body) + 64;
    xml = roost_xmalloc(len);
    snprintf(xml, len, "<iq type='set' id='bad'>%s</iq>", body);
    roost_free(body);
    return xml;
}

#define N_BAD_SETS 16

START_TEST(test_bad_set)
{
    const char *cond = NULL;
    char *xml = bad_set(_i, &cond);
    roost_stanza_t *r;

    interested();
    ck_assert_int_eq(harness_inject(PHONE, NULL, xml), ROOST_HANDLED);
    r = last(PHONE);
    ck_assert_msg(r != NULL, "no answer to %s", xml);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_pstr_eq(roost_stanza_attr(r, "id"), "bad");
    ck_assert_msg(strcmp(harness_error_cond(r), cond) == 0,
                  "%s: got %s, want %s", xml, harness_error_cond(r), cond);
    ck_assert_uint_eq(harness_delivered_count(PHONE), 1);
    ck_assert_uint_eq(harness_delivered_count(LAPTOP), 0);
    ck_assert_int_eq(harness_roster_persist_count("alice"), 0);
    roost_free(xml);
}
END_TEST

/* The boundaries themselves are fine: 1023-byte name and group, 64
 * groups. */
START_TEST(test_limits_ok)
{
    char *n = repeat('n', 1023), *g = repeat('g', 1023);
    char xml[4096];
    size_t len;

    snprintf(xml, sizeof(xml),
             SET("l1", "<item jid='bob@localhost' name='%s'>"
                       "<group>%s</group></item>"),
             n, g);
    ok(PHONE, xml);
    len = (size_t)snprintf(xml, sizeof(xml),
                           "<iq type='set' id='l2'><query "
                           "xmlns='jabber:iq:roster'><item jid='c@localhost'>");
    for (int i = 0; i < 64; i++)
        len += (size_t)snprintf(xml + len, sizeof(xml) - len,
                                "<group>g%d</group>", i);
    snprintf(xml + len, sizeof(xml) - len, "</item></query></iq>");
    ok(PHONE, xml);
    roost_free(n);
    roost_free(g);
}
END_TEST

/* ---- max_items ---- */

static void
conf_max2(void *conf)
{
    ((struct roster_conf_view *)conf)->max_items = 2;
}

START_TEST(test_max_items)
{
    roost_stanza_t *r;
    roost_stanza_t *err, *text;

    ck_assert_int_eq(harness_reset(), 0);
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_roster, "localhost", conf_max2));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    ok(PHONE, SET("m1", "<item jid='a@localhost'/>"));
    ok(PHONE, SET("m2", "<item jid='b@localhost'/>"));
    ck_assert_int_eq(
        harness_inject(PHONE, NULL, SET("m3", "<item jid='c@localhost'/>")),
        ROOST_HANDLED);
    r = last(PHONE);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_pstr_eq(harness_error_cond(r), "not-allowed");
    err = roost_stanza_child(r, NULL, "error");
    text = roost_stanza_child(err, ROOST_NS_STANZAS, "text");
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(roost_stanza_text(text), "2"));
    ck_assert_ptr_null(harness_roster_stored("alice", "c@localhost"));
    /* Updating an existing item at the limit is fine, and so is adding
     * after a removal. */
    ok(PHONE, SET("m4", "<item jid='b@localhost' name='B'/>"));
    ok(PHONE, SET("m5", "<item jid='a@localhost' subscription='remove'/>"));
    ok(PHONE, SET("m6", "<item jid='c@localhost'/>"));
}
END_TEST

START_TEST(test_max_items_default)
{
    const struct roster_conf_view *c = roost_mod_conf(harness_mod("roster"));

    ck_assert_int_eq(c->max_items, 1000);
}
END_TEST

/* ---- what mod_roster leaves to the core ---- */

START_TEST(test_host_addressed)
{
    roost_stanza_t *r;

    ck_assert_int_eq(harness_inject(PHONE, "localhost", GET("h1")), ROOST_PASS);
    r = last(PHONE);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_pstr_eq(harness_error_cond(r), "service-unavailable");
    ck_assert(!roost_session_roster_requested(harness_session(PHONE)));
    ck_assert_int_eq(harness_inject(PHONE, "localhost",
                                    SET("h2", "<item jid='bob@localhost'/>")),
                     ROOST_PASS);
    ck_assert_pstr_eq(harness_error_cond(last(PHONE)), "service-unavailable");
    ck_assert_int_eq(harness_roster_persist_count("alice"), 0);
}
END_TEST

/* Another user's roster: never dispatched to mod_roster; the core
 * answers. */
START_TEST(test_other_account)
{
    ck_assert_int_eq(harness_inject(PHONE, "bob@localhost", GET("o1")),
                     ROOST_PASS);
    ck_assert_pstr_eq(harness_error_cond(last(PHONE)), "service-unavailable");
    ck_assert_int_eq(harness_roster_persist_count("bob"), 0);
}
END_TEST

/* Explicit to = own bare JID is the same as no 'to'. */
START_TEST(test_own_bare_jid)
{
    ck_assert_int_eq(harness_inject(PHONE, "alice@localhost",
                                    SET("b1", "<item jid='bob@localhost'/>")),
                     ROOST_HANDLED);
    ck_assert_pstr_eq(roost_stanza_attr(last(PHONE), "type"), "result");
    ck_assert_pstr_eq(roost_stanza_attr(last(PHONE), "from"),
                      "alice@localhost");
}
END_TEST

/* ---- advertisement and unload ---- */

static void
feature_seen(void *arg, const char *xmlns)
{
    if (strcmp(xmlns, "jabber:iq:roster") == 0)
        (*(int *)arg)++;
}

START_TEST(test_advertise_unload)
{
    int seen = 0;

    ck_assert_int_eq(harness_stream_feature_count(), 1);
    roost_host_features(harness_mod("roster"), feature_seen, &seen);
    ck_assert_int_eq(seen, 1);
    ck_assert_int_eq(harness_unload(harness_mod("roster")), 0);
    ck_assert_int_eq(harness_stream_feature_count(), 0);
    ck_assert_int_eq(harness_feature_count(), 0);
    ck_assert_int_eq(harness_inject(PHONE, NULL, GET("u1")), ROOST_PASS);
    ck_assert_pstr_eq(harness_error_cond(last(PHONE)), "service-unavailable");
}
END_TEST

/* ---- the harness's per-user state ---- */

static int us_loads, us_frees;

static void *
us_load(roost_mod_t *m, const char *user)
{
    us_loads++;
    return roost_xstrdup(user);
}

static void
us_free(roost_mod_t *m, void *state)
{
    us_frees++;
    roost_free(state);
}

static int
us_mod_load(roost_mod_t *m)
{
    static const roost_user_state_t ops = {us_load, us_free};

    ck_assert_int_eq(roost_user_state(m, &ops), 0);
    ck_assert_int_eq(roost_user_state(m, &ops), -ROOST_EEXIST);
    return 0;
}

static const roost_module_t us_module = {
    .abi = ROOST_ABI,
    .name = "userstate",
    .load = us_mod_load,
};

START_TEST(test_user_state)
{
    roost_mod_t *m = harness_load(&us_module, "localhost", NULL);
    void **a, **b;

    us_loads = us_frees = 0;
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(roost_user_data(harness_mod("roster"), "alice"));
    a = roost_user_data(m, "alice");
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(*a, "alice");
    ck_assert_ptr_eq(roost_user_data(m, "alice"), a);
    b = roost_user_data(m, "bob");
    ck_assert_str_eq(*b, "bob");
    ck_assert_int_eq(us_loads, 2);
    ck_assert_int_eq(harness_unload(m), 0);
    ck_assert_int_eq(us_frees, 2);
}
END_TEST

static Suite *
roster_suite(void)
{
    Suite *s = suite_create("mod_roster");
    TCase *tc;

    tc = tcase_create("get");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_get_empty);
    tcase_add_test(tc, test_get_stored);
    tcase_add_loop_test(tc, test_versioning, 0,
                        sizeof(ver_cases) / sizeof(ver_cases[0]));
    tcase_add_test(tc, test_version_persisted);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_add_push_persist);
    tcase_add_test(tc, test_update_keeps_state);
    tcase_add_test(tc, test_client_sub_ignored);
    tcase_add_test(tc, test_requester_not_interested);
    tcase_add_test(tc, test_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("remove");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_remove);
    tcase_add_test(tc, test_remove_unknown);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_bad_set, 0, N_BAD_SETS);
    tcase_add_test(tc, test_limits_ok);
    suite_add_tcase(s, tc);

    tc = tcase_create("max_items");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_max_items);
    tcase_add_test(tc, test_max_items_default);
    suite_add_tcase(s, tc);

    tc = tcase_create("not_handled");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_host_addressed);
    tcase_add_test(tc, test_other_account);
    tcase_add_test(tc, test_own_bare_jid);
    suite_add_tcase(s, tc);

    tc = tcase_create("advertise");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_advertise_unload);
    suite_add_tcase(s, tc);

    tc = tcase_create("user_state");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_user_state);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(roster_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
