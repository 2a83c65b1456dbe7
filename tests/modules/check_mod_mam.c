/* tests/modules/check_mod_mam.c: mod_mam (XEP-0313 user archives, XEP-0359
 * stanza ids, XEP-0441 preferences) with mod_message and mod_offline on
 * the fake host and the real in-memory storage.
 *
 * Covers: what is archived (chat/normal with a body, XEP-0334 hints; not
 * groupchat, errors, chat states), in the recipient's archive with a
 * stanza-id added before delivery (and before offline storage), forged
 * stanza-ids removed, in the sender's archive without one; order kept
 * while an append is in flight; queries (form fields, RSM paging, last
 * page, flip-page, ids, counts, complete) and their errors; preferences;
 * metadata; the account's disco#info; removal with the account; expiry
 * (archive_expires_after) in bounded purge jobs and the quota
 * (archive_max_items).
 * Not for: SQLite indexes and timing (tests/integration/mam_bench.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_disco;
extern const roost_module_t roost_module_message;
extern const roost_module_t roost_module_offline;
extern const roost_module_t roost_module_mam;

#define HOST   "localhost"
#define ALICE  "alice@localhost"
#define PHONE  "alice@localhost/phone"
#define BOBF   "bob@localhost/desk"
#define REMOTE "romeo@remote.example/orchard"

#define FORM(fields)                                                           \
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "           \
    "type='hidden'><value>urn:xmpp:mam:2</value></field>" fields "</x>"
#define RSM(x) "<set xmlns='http://jabber.org/protocol/rsm'>" x "</set>"

static roost_store_t *arch;
static int64_t conf_expires_ms, conf_interval_ms, conf_max_items;

static void
mam_conf_init(void *conf)
{
    /* Field order of struct mam_conf in mod_mam.c. */
    struct {
        int64_t max_page;
        const char *default_policy;
        int64_t expires_after, cleanup_interval, max_items;
    } *c = conf;

    if (conf_expires_ms)
        c->expires_after = conf_expires_ms;
    if (conf_interval_ms)
        c->cleanup_interval = conf_interval_ms;
    if (conf_max_items)
        c->max_items = conf_max_items;
}

static void
setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_disco, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_message, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_offline, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_mam, HOST, mam_conf_init));
    arch = harness_store("mam", ROOST_STORE_ARCHIVE);
    ck_assert_ptr_nonnull(arch);
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
}

static void
teardown(void)
{
    conf_expires_ms = conf_interval_ms = conf_max_items = 0;
    ck_assert_int_eq(harness_reset(), 0);
}

static int
archived(const char *user)
{
    return roost_store_count(arch, user);
}

static void
msg(const char *from, const char *to, const char *xml)
{
    ck_assert_int_ge(harness_inject(from, to, xml), 0);
}

static void
chat(const char *from, const char *to, const char *body)
{
    char xml[256];

    snprintf(xml, sizeof(xml),
             "<message type='chat'><body>%s</body>"
             "</message>",
             body);
    msg(from, to, xml);
}

/* The n-th stanza named name delivered to jid, or NULL. */
static roost_stanza_t *
nth(const char *jid, const char *name, int n)
{
    for (size_t k = 0; k < harness_delivered_count(jid); k++) {
        roost_stanza_t *st = harness_delivered_stanza(jid, k);

        if (strcmp(roost_stanza_name(st), name) == 0 && n-- == 0)
            return st;
    }
    return NULL;
}

static int
count_named(const char *jid, const char *name)
{
    int n = 0;

    while (nth(jid, name, n) != NULL)
        n++;
    return n;
}

static roost_stanza_t *
sid_of(roost_stanza_t *m)
{
    return roost_stanza_child(m, "urn:xmpp:sid:0", "stanza-id");
}

/* Runs a query from PHONE; returns the iq answer. */
static roost_stanza_t *
query(const char *inner)
{
    char xml[4096];

    harness_clear();
    snprintf(xml, sizeof(xml),
             "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' "
             "queryid='f27'>%s</query></iq>",
             inner);
    msg(PHONE, NULL, xml);
    return nth(PHONE, "iq", 0);
}

/* Body of the forwarded message in the i-th result. */
static const char *
result_body(int i)
{
    roost_stanza_t *m = nth(PHONE, "message", i), *r, *f, *o;

    if (m == NULL ||
        (r = roost_stanza_child(m, "urn:xmpp:mam:2", "result")) == NULL)
        return NULL;
    f = roost_stanza_child(r, "urn:xmpp:forward:0", "forwarded");
    o = f ? roost_stanza_child(f, ROOST_NS_CLIENT, "message") : NULL;
    return o ? roost_stanza_child_text(o, ROOST_NS_CLIENT, "body") : NULL;
}

static const char *
result_id(int i)
{
    roost_stanza_t *m = nth(PHONE, "message", i);
    roost_stanza_t *r =
        m ? roost_stanza_child(m, "urn:xmpp:mam:2", "result") : NULL;

    return r ? roost_stanza_attr(r, "id") : NULL;
}

static roost_stanza_t *
fin_set(roost_stanza_t *iq)
{
    roost_stanza_t *fin = roost_stanza_child(iq, "urn:xmpp:mam:2", "fin");

    return fin ? roost_stanza_child(fin, "http://jabber.org/protocol/rsm",
                                    "set")
               : NULL;
}

static const char *
fin_complete(roost_stanza_t *iq)
{
    roost_stanza_t *fin = roost_stanza_child(iq, "urn:xmpp:mam:2", "fin");

    return fin ? roost_stanza_attr(fin, "complete") : NULL;
}

static const char *
set_text(roost_stanza_t *iq, const char *name)
{
    roost_stanza_t *set = fin_set(iq);

    return set ? roost_stanza_child_text(set, "http://jabber.org/protocol/rsm",
                                         name)
               : NULL;
}

/* Fills alice's archive with n messages from romeo, bodies 0..n-1. */
static void
fill(int n)
{
    char b[16];

    for (int i = 0; i < n; i++) {
        snprintf(b, sizeof(b), "%d", i);
        chat(REMOTE, ALICE, b);
    }
    ck_assert_int_eq(archived("alice"), n);
}

/* ---- archiving ---- */

START_TEST(test_incoming_stanza_id)
{
    roost_stanza_t *m, *sid;
    const char *id;
    int ours = 0, other = 0;

    msg(REMOTE, ALICE,
        "<message type='chat' id='m1'><body>hi</body>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='other.example' id='keep'/>"
        "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>");
    ck_assert_int_eq(archived("alice"), 1);
    m = nth(PHONE, "message", 0);
    ck_assert_ptr_nonnull(m);
    /* exactly one stanza-id by alice: ours, not the forged one */
    sid = sid_of(m);
    ck_assert_ptr_nonnull(sid);
    for (roost_stanza_t *c = roost_stanza_first_child(m); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *by = roost_stanza_attr(c, "by");

        if (strcmp(roost_stanza_name(c), "stanza-id") != 0)
            continue;
        if (strcmp(by, ALICE) == 0) {
            ours++;
            id = roost_stanza_attr(c, "id");
            ck_assert_str_ne(id, "forged");
            ck_assert_int_eq(strlen(id), 16);
        } else {
            other++;
        }
    }
    ck_assert_int_eq(ours, 1);
    ck_assert_int_eq(other, 1);
    /* XEP-0359 §3.2: origin-id kept */
    ck_assert_ptr_nonnull(roost_stanza_child(m, "urn:xmpp:sid:0", "origin-id"));
}
END_TEST

/* Stanza-ids by alice or by the vhost in m (the forged kinds). */
static int
count_sid_ours(roost_stanza_t *m)
{
    int n = 0;

    for (roost_stanza_t *c = roost_stanza_first_child(m); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *by = roost_stanza_attr(c, "by");

        if (strcmp(roost_stanza_name(c), "stanza-id") == 0 && by != NULL &&
            (strcmp(by, ALICE) == 0 || strcmp(by, HOST) == 0))
            n++;
    }
    return n;
}

/* XEP-0359 §4 rule 3: a stanza-id claiming to be by the vhost is forged
 * too (it assigns none); removed also when the message is not archived,
 * and from what goes to offline storage. */
START_TEST(test_incoming_sid_by_host)
{
    roost_stanza_t *m;

    msg(REMOTE, ALICE,
        "<message type='chat'><body>hi</body>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='LOCALHOST' id='forged'/>"
        "</message>");
    m = nth(PHONE, "message", 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(count_sid_ours(m), 1); /* ours, by alice */
    ck_assert_str_eq(roost_stanza_attr(sid_of(m), "by"), ALICE);
    /* a chat state: not archived, still stripped */
    harness_clear();
    msg(REMOTE, ALICE,
        "<message type='chat'><active "
        "xmlns='http://jabber.org/protocol/chatstates'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='forged'/>"
        "</message>");
    m = nth(PHONE, "message", 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(count_sid_ours(m), 0);
    ck_assert_int_eq(archived("alice"), 1);
}
END_TEST

/* A client's own stanza-id claiming to be by its archive (or the vhost)
 * is not archived with its outgoing message; other ids and origin-id
 * are (XEP-0359 §3.2). */
START_TEST(test_outgoing_forged_sid)
{
    roost_stanza_t *r, *fwd, *o;

    msg(PHONE, "romeo@remote.example",
        "<message type='chat'><body>out</body>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='f1'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='f2'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='other.example' id='keep'/>"
        "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>");
    ck_assert_int_eq(archived("alice"), 1);
    query("");
    r = roost_stanza_child(nth(PHONE, "message", 0), "urn:xmpp:mam:2",
                           "result");
    fwd = roost_stanza_child(r, "urn:xmpp:forward:0", "forwarded");
    o = roost_stanza_child(fwd, ROOST_NS_CLIENT, "message");
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(count_sid_ours(o), 0);
    ck_assert_str_eq(roost_stanza_attr(sid_of(o), "by"), "other.example");
    ck_assert_ptr_nonnull(roost_stanza_child(o, "urn:xmpp:sid:0", "origin-id"));
}
END_TEST

START_TEST(test_stanza_id_names_item)
{
    roost_stanza_t *m, *iq;
    char q[512], id[64];

    chat(REMOTE, ALICE, "one");
    chat(REMOTE, ALICE, "two");
    m = nth(PHONE, "message", 1);
    ck_assert_ptr_nonnull(sid_of(m));
    snprintf(id, sizeof(id), "%s", roost_stanza_attr(sid_of(m), "id"));
    snprintf(q, sizeof(q), FORM("<field var='ids'><value>%s</value></field>"),
             id);
    iq = query(q);
    ck_assert_str_eq(roost_stanza_attr(iq, "type"), "result");
    ck_assert_int_eq(count_named(PHONE, "message"), 1);
    ck_assert_str_eq(result_body(0), "two");
    ck_assert_str_eq(result_id(0), id);
}
END_TEST

START_TEST(test_outgoing)
{
    roost_stanza_t *sent, *iq, *r, *fwd, *o;

    chat(PHONE, "romeo@remote.example", "out");
    ck_assert_int_eq(archived("alice"), 1);
    ck_assert_int_eq(harness_sent_count(), 1);
    sent = harness_sent_stanza(0);
    /* XEP-0313 §3.3: no stanza-id on what goes to the contact */
    ck_assert_ptr_null(sid_of(sent));
    iq = query("");
    ck_assert_str_eq(set_text(iq, "count"), "1");
    r = roost_stanza_child(nth(PHONE, "message", 0), "urn:xmpp:mam:2",
                           "result");
    fwd = roost_stanza_child(r, "urn:xmpp:forward:0", "forwarded");
    ck_assert_ptr_nonnull(roost_stanza_child(fwd, "urn:xmpp:delay", "delay"));
    o = roost_stanza_child(fwd, ROOST_NS_CLIENT, "message");
    ck_assert_str_eq(roost_stanza_attr(o, "to"), "romeo@remote.example");
    ck_assert_str_eq(roost_stanza_attr(o, "from"), PHONE);
    ck_assert_str_eq(roost_stanza_attr(r, "queryid"), "f27");
}
END_TEST

START_TEST(test_local_both_archives)
{
    ck_assert_ptr_nonnull(harness_session_add(BOBF, 1, 0));
    chat(PHONE, "bob@localhost", "hello bob");
    ck_assert_int_eq(archived("alice"), 1);
    ck_assert_int_eq(archived("bob"), 1);
    /* bob's copy carries bob's stanza-id, not alice's */
    roost_stanza_t *m = nth(BOBF, "message", 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(roost_stanza_attr(sid_of(m), "by"), "bob@localhost");
    /* to oneself: once */
    chat(PHONE, ALICE, "note to self");
    ck_assert_int_eq(archived("alice"), 2);
}
END_TEST

START_TEST(test_not_archived)
{
    msg(REMOTE, ALICE, "<message type='groupchat'><body>g</body></message>");
    msg(REMOTE, ALICE, "<message type='headline'><body>h</body></message>");
    msg(REMOTE, ALICE, "<message type='error'><body>e</body></message>");
    msg(REMOTE, ALICE,
        "<message type='chat'><active "
        "xmlns='http://jabber.org/protocol/chatstates'/></message>");
    msg(REMOTE, ALICE,
        "<message type='chat'><body>x</body>"
        "<no-store xmlns='urn:xmpp:hints'/></message>");
    msg(REMOTE, ALICE,
        "<message type='chat'><body>x</body>"
        "<no-permanent-store xmlns='urn:xmpp:hints'/></message>");
    ck_assert_int_eq(archived("alice"), 0);
    /* the chat state still arrives, without a stanza-id */
    ck_assert_ptr_null(sid_of(nth(PHONE, "message", 1)));
    /* <store/> archives what has no body */
    msg(REMOTE, ALICE,
        "<message type='chat'><store xmlns='urn:xmpp:hints'/>"
        "<received xmlns='urn:xmpp:receipts' id='x'/></message>");
    ck_assert_int_eq(archived("alice"), 1);
}
END_TEST

static int
has_sid_cb(void *arg, const char *id, int64_t when, const char *with,
           const char *val, size_t len)
{
    *(int *)arg = strstr(val, "stanza-id") != NULL &&
                  strstr(val, "carol@localhost") != NULL;
    return 0;
}

START_TEST(test_offline_archived)
{
    roost_store_t *off = harness_store("offline", ROOST_STORE_ARCHIVE);
    roost_store_query_t q = {0};
    int found = 0;

    chat(REMOTE, "carol@localhost", "while away");
    ck_assert_int_eq(archived("carol"), 1);
    ck_assert_int_eq(roost_store_count(off, "carol"), 1);
    /* the offline copy has the stanza-id too */
    ck_assert_int_eq(roost_store_find(off, "carol", &q, has_sid_cb, &found), 1);
    ck_assert_int_eq(found, 1);
}
END_TEST

START_TEST(test_order_kept)
{
    /* an append in flight: a chat state behind it must wait */
    harness_storage_hold(1);
    chat(REMOTE, ALICE, "first");
    msg(REMOTE, ALICE,
        "<message type='chat'><active "
        "xmlns='http://jabber.org/protocol/chatstates'/></message>");
    ck_assert_int_eq(count_named(PHONE, "message"), 0);
    harness_storage_hold(0);
    harness_storage_run();
    ck_assert_int_eq(count_named(PHONE, "message"), 2);
    ck_assert_str_eq(roost_stanza_child_text(nth(PHONE, "message", 0),
                                             ROOST_NS_CLIENT, "body"),
                     "first");
}
END_TEST

/* ---- queries ---- */

START_TEST(test_query_all)
{
    roost_stanza_t *iq;

    fill(3);
    iq = query("");
    ck_assert_str_eq(roost_stanza_attr(iq, "type"), "result");
    ck_assert_str_eq(roost_stanza_attr(iq, "id"), "q1");
    ck_assert_int_eq(count_named(PHONE, "message"), 3);
    ck_assert_str_eq(result_body(0), "0");
    ck_assert_str_eq(result_body(2), "2");
    ck_assert_str_eq(fin_complete(iq), "true");
    ck_assert_str_eq(set_text(iq, "count"), "3");
    ck_assert_str_eq(set_text(iq, "first"), result_id(0));
    ck_assert_str_eq(set_text(iq, "last"), result_id(2));
    /* the iq comes after the results */
    ck_assert_str_eq(roost_stanza_name(harness_delivered_stanza(PHONE, 3)),
                     "iq");
}
END_TEST

START_TEST(test_paging)
{
    roost_stanza_t *iq;
    char q[512], last[64], first[64];

    fill(5);
    iq = query(RSM("<max>2</max>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 2);
    ck_assert_str_eq(fin_complete(iq), "false");
    ck_assert_str_eq(set_text(iq, "count"), "5");
    snprintf(last, sizeof(last), "%s", set_text(iq, "last"));

    snprintf(q, sizeof(q), RSM("<max>2</max><after>%s</after>"), last);
    iq = query(q);
    ck_assert_str_eq(result_body(0), "2");
    ck_assert_str_eq(result_body(1), "3");
    ck_assert_str_eq(fin_complete(iq), "false");
    snprintf(last, sizeof(last), "%s", set_text(iq, "last"));
    snprintf(q, sizeof(q), RSM("<max>2</max><after>%s</after>"), last);
    iq = query(q);
    ck_assert_int_eq(count_named(PHONE, "message"), 1);
    ck_assert_str_eq(result_body(0), "4");
    ck_assert_str_eq(fin_complete(iq), "true");

    /* the last page, in chronological order */
    iq = query(RSM("<max>2</max><before/>"));
    ck_assert_str_eq(result_body(0), "3");
    ck_assert_str_eq(result_body(1), "4");
    ck_assert_str_eq(fin_complete(iq), "false");
    snprintf(first, sizeof(first), "%s", set_text(iq, "first"));
    snprintf(q, sizeof(q), RSM("<max>3</max><before>%s</before>"), first);
    iq = query(q);
    ck_assert_int_eq(count_named(PHONE, "message"), 3);
    ck_assert_str_eq(result_body(0), "0");
    ck_assert_str_eq(result_body(2), "2");
    ck_assert_str_eq(fin_complete(iq), "true");

    /* flip-page: same page, newest first */
    iq = query(RSM("<max>2</max><before/>") "<flip-page/>");
    ck_assert_str_eq(result_body(0), "4");
    ck_assert_str_eq(result_body(1), "3");
    ck_assert_str_eq(set_text(iq, "first"), result_id(1));

    /* max 0: the count only */
    iq = query(RSM("<max>0</max>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 0);
    ck_assert_str_eq(set_text(iq, "count"), "5");
    ck_assert_ptr_null(set_text(iq, "first"));
}
END_TEST

START_TEST(test_form_fields)
{
    roost_stanza_t *iq;
    char q[1024], a[64], b[64];

    fill(4);
    chat(BOBF, ALICE, "from bob");
    iq = query(FORM("<field var='with'><value>bob@localhost</value>"
                    "</field>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 1);
    ck_assert_str_eq(result_body(0), "from bob");
    ck_assert_str_eq(set_text(iq, "count"), "1");
    /* a full JID matches only that resource */
    iq = query(FORM("<field var='with'><value>bob@localhost/other</value>"
                    "</field>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 0);
    iq = query(FORM("<field var='with'><value>bob@localhost/desk</value>"
                    "</field>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 1);

    /* time range */
    iq = query(FORM("<field var='start'><value>2000-01-01T00:00:00Z</value>"
                    "</field><field var='end'><value>2001-01-01T00:00:00Z"
                    "</value></field>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 0);
    ck_assert_str_eq(fin_complete(iq), "true");
    iq = query(FORM("<field var='start'><value>2000-01-01T00:00:00.5+01:00"
                    "</value></field>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 5);

    /* after-id / before-id: the items strictly between */
    query("");
    snprintf(a, sizeof(a), "%s", result_id(0));
    snprintf(b, sizeof(b), "%s", result_id(3));
    snprintf(q, sizeof(q),
             FORM("<field var='after-id'><value>%s</value></field>"
                  "<field var='before-id'><value>%s</value></field>"),
             a, b);
    iq = query(q);
    ck_assert_int_eq(count_named(PHONE, "message"), 2);
    ck_assert_str_eq(result_body(0), "1");
    ck_assert_str_eq(result_body(1), "2");
    ck_assert_str_eq(set_text(iq, "count"), "2");
}
END_TEST

START_TEST(test_query_errors)
{
    roost_stanza_t *iq;

    fill(1);
    ck_assert_ptr_nonnull(harness_session_add(BOBF, 1, 0));
    iq = query(RSM("<after>0123456789abcdef</after>"));
    ck_assert_str_eq(harness_error_cond(iq), "item-not-found");
    iq = query(RSM("<before>nonsense</before>"));
    ck_assert_str_eq(harness_error_cond(iq), "item-not-found");
    iq = query(FORM("<field var='ids'><value>0123456789abcdef</value>"
                    "</field>"));
    ck_assert_str_eq(harness_error_cond(iq), "item-not-found");
    iq = query(FORM("<field var='after-id'><value>zz</value></field>"));
    ck_assert_str_eq(harness_error_cond(iq), "item-not-found");
    ck_assert_int_eq(count_named(PHONE, "message"), 0);

    iq = query("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
               "<value>urn:xmpp:mam:1</value></field></x>");
    ck_assert_str_eq(harness_error_cond(iq), "bad-request");
    iq = query("<x xmlns='jabber:x:data' type='submit'/>");
    ck_assert_str_eq(harness_error_cond(iq), "bad-request");
    iq = query(FORM("<field var='start'><value>yesterday</value></field>"));
    ck_assert_str_eq(harness_error_cond(iq), "bad-request");
    iq = query(FORM("<field var='with'><value>@@</value></field>"));
    ck_assert_str_eq(harness_error_cond(iq), "bad-request");
    iq = query(RSM("<max>-1</max>"));
    ck_assert_str_eq(harness_error_cond(iq), "bad-request");
    iq = query(FORM("<field var='{urn:example}search'><value>x</value>"
                    "</field>"));
    ck_assert_str_eq(harness_error_cond(iq), "feature-not-implemented");

    /* an id of another archive is not in this one (XEP-0313 §4.1.4) */
    {
        char q[512], bid[64];

        chat(REMOTE, "bob@localhost", "for bob");
        snprintf(bid, sizeof(bid), "%s",
                 roost_stanza_attr(sid_of(nth(BOBF, "message", 0)), "id"));
        snprintf(q, sizeof(q),
                 FORM("<field var='ids'><value>%s</value></field>"), bid);
        iq = query(q);
        ck_assert_str_eq(harness_error_cond(iq), "item-not-found");
        snprintf(q, sizeof(q),
                 FORM("<field var='before-id'><value>%s</value></field>"), bid);
        iq = query(q);
        ck_assert_str_eq(harness_error_cond(iq), "item-not-found");
    }

    /* someone else's archive: an IQ to another account's bare JID that
     * nobody answers (RFC 6121 §8.5.2.1.3, as Prosody) */
    msg(BOBF, ALICE,
        "<iq type='set' id='x'><query xmlns='urn:xmpp:mam:2'/></iq>");
    ck_assert_str_eq(harness_error_cond(nth(BOBF, "iq", 0)),
                     "service-unavailable");
    ck_assert_int_eq(count_named(BOBF, "message"), 0);
}
END_TEST

START_TEST(test_max_page)
{
    roost_stanza_t *iq;

    fill(120);
    iq = query(RSM("<max>1000</max>"));
    ck_assert_int_eq(count_named(PHONE, "message"), 100);
    ck_assert_str_eq(fin_complete(iq), "false");
    ck_assert_str_eq(set_text(iq, "count"), "120");
}
END_TEST

START_TEST(test_form_get)
{
    roost_stanza_t *iq, *x;
    int n = 0;

    msg(PHONE, NULL,
        "<iq type='get' id='f'><query xmlns='urn:xmpp:mam:2'/></iq>");
    iq = nth(PHONE, "iq", 0);
    ck_assert_str_eq(roost_stanza_attr(iq, "type"), "result");
    x = roost_stanza_child(roost_stanza_child(iq, "urn:xmpp:mam:2", "query"),
                           "jabber:x:data", "x");
    ck_assert_ptr_nonnull(x);
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f))
        n++;
    ck_assert_int_eq(n, 7);
}
END_TEST

START_TEST(test_metadata)
{
    roost_stanza_t *iq, *md;

    msg(PHONE, NULL,
        "<iq type='get' id='m'><metadata xmlns='urn:xmpp:mam:2'/></iq>");
    md = roost_stanza_child(nth(PHONE, "iq", 0), "urn:xmpp:mam:2", "metadata");
    ck_assert_ptr_nonnull(md);
    ck_assert_ptr_null(roost_stanza_first_child(md));
    fill(3);
    query("");
    harness_clear();
    msg(PHONE, NULL,
        "<iq type='get' id='m'><metadata xmlns='urn:xmpp:mam:2'/></iq>");
    iq = nth(PHONE, "iq", 0);
    md = roost_stanza_child(iq, "urn:xmpp:mam:2", "metadata");
    ck_assert_ptr_nonnull(roost_stanza_child(md, NULL, "start"));
    ck_assert_ptr_nonnull(
        roost_stanza_attr(roost_stanza_child(md, NULL, "end"), "timestamp"));
}
END_TEST

/* ---- preferences ---- */

START_TEST(test_prefs)
{
    roost_stanza_t *iq, *p;

    msg(PHONE, NULL,
        "<iq type='get' id='p'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
    p = roost_stanza_child(nth(PHONE, "iq", 0), "urn:xmpp:mam:2", "prefs");
    ck_assert_str_eq(roost_stanza_attr(p, "default"), "always");

    harness_clear();
    msg(PHONE, NULL,
        "<iq type='set' id='p2'><prefs xmlns='urn:xmpp:mam:2' "
        "default='always'><always/><never><jid>romeo@remote.example</jid>"
        "</never></prefs></iq>");
    iq = nth(PHONE, "iq", 0);
    ck_assert_str_eq(roost_stanza_attr(iq, "type"), "result");
    p = roost_stanza_child(iq, "urn:xmpp:mam:2", "prefs");
    ck_assert_str_eq(roost_stanza_child_text(
                         roost_stanza_child(p, NULL, "never"), NULL, "jid"),
                     "romeo@remote.example");
    chat(REMOTE, ALICE, "not kept");
    ck_assert_int_eq(archived("alice"), 0);
    chat(BOBF, ALICE, "kept");
    ck_assert_int_eq(archived("alice"), 1);

    /* persisted: after the state is dropped and loaded again */
    harness_user_drop("alice");
    chat(REMOTE, ALICE, "still not kept");
    ck_assert_int_eq(archived("alice"), 1);

    /* default never, always list */
    msg(PHONE, NULL,
        "<iq type='set' id='p3'><prefs xmlns='urn:xmpp:mam:2' "
        "default='never'><always><jid>romeo@remote.example</jid></always>"
        "</prefs></iq>");
    chat(REMOTE, ALICE, "kept now");
    chat(BOBF, ALICE, "not now");
    ck_assert_int_eq(archived("alice"), 2);

    /* roster: only contacts */
    msg(PHONE, NULL,
        "<iq type='set' id='p4'><prefs xmlns='urn:xmpp:mam:2' "
        "default='roster'/></iq>");
    chat(BOBF, ALICE, "bob is no contact");
    ck_assert_int_eq(archived("alice"), 2);

    harness_clear();
    msg(PHONE, NULL,
        "<iq type='set' id='p5'><prefs xmlns='urn:xmpp:mam:2' "
        "default='sometimes'/></iq>");
    ck_assert_str_eq(harness_error_cond(nth(PHONE, "iq", 0)), "bad-request");
}
END_TEST

/* ---- account ---- */

START_TEST(test_disco_account)
{
    roost_stanza_t *q;
    int mam = 0, ext = 0, sid = 0;

    msg(PHONE, ALICE,
        "<iq type='get' id='d'><query "
        "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    q = roost_stanza_child(nth(PHONE, "iq", 0),
                           "http://jabber.org/protocol/disco#info", "query");
    ck_assert_ptr_nonnull(q);
    for (roost_stanza_t *f = roost_stanza_first_child(q); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *v = roost_stanza_attr(f, "var");

        mam += v != NULL && strcmp(v, "urn:xmpp:mam:2") == 0;
        ext += v != NULL && strcmp(v, "urn:xmpp:mam:2#extended") == 0;
        sid += v != NULL && strcmp(v, "urn:xmpp:sid:0") == 0;
    }
    ck_assert_int_eq(mam + ext + sid, 3);
}
END_TEST

static void
deleted(roost_mod_t *m, void *arg, int rc)
{
    *(int *)arg = rc == 0 ? 1 : -1;
}

START_TEST(test_user_deleted)
{
    int done = 0;

    ck_assert_int_eq(harness_account_add("carol", "pw"), 0);
    chat(REMOTE, "carol@localhost", "one");
    chat(REMOTE, "carol@localhost", "two");
    ck_assert_int_eq(archived("carol"), 2);
    roost_account_delete(harness_mod("mam"), "carol", deleted, &done);
    harness_storage_run();
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(archived("carol"), 0);
}
END_TEST

/* ---- expiry and quota ---- */

static int
count_key(void *arg, const char *key, const char *val, size_t len)
{
    (*(int *)arg)++;
    return 0;
}

static int
users_recorded(void)
{
    int n = 0;

    roost_store_keys(harness_store("mam_users", ROOST_STORE_MAP), "", count_key,
                     &n);
    return n;
}

/* n items of user stamped days ago (as if archived then). */
static void
old_items(const char *user, int n, int days)
{
    int64_t when = ((int64_t)time(NULL) - (int64_t)days * 86400) * 1000000;

    for (int i = 0; i < n; i++)
        ck_assert_int_eq(roost_store_append(arch, user, "romeo@remote.example",
                                            when + i, "<message/>", 10, NULL),
                         0);
}

static void
setup_expiry(void)
{
    conf_expires_ms = 7 * 86400 * 1000LL; /* a week */
    conf_interval_ms = 3600 * 1000;       /* hourly */
    setup();
}

/* archive_expires_after: a timer purges what is older, in bounded storage
 * jobs (MAM_PURGE_BATCH = 500 items each), account by account; recent
 * items stay; an account whose archive emptied is forgotten; the next
 * round comes after archive_cleanup_interval. */
START_TEST(test_expiry)
{
    int jobs = 0;

    chat(REMOTE, ALICE, "recent");               /* records alice */
    chat(REMOTE, "bob@localhost", "recent bob"); /* and bob */
    ck_assert_int_eq(users_recorded(), 2);
    old_items("alice", 1200, 8);
    old_items("bob", 3, 30);
    ck_assert_int_eq(archived("alice"), 1201);
    /* nothing before the first round (within a minute of loading) */
    harness_advance(59000);
    ck_assert_int_eq(archived("alice"), 1201);
    harness_storage_hold(1);
    harness_advance(1000);
    ck_assert_int_eq(harness_storage_pending(), 1);
    harness_storage_run();
    harness_storage_hold(0);
    ck_assert_int_eq(archived("alice"), 701); /* one bounded job */
    ck_assert_int_eq(archived("bob"), 4);
    /* the following jobs come quickly until the round is done */
    for (int i = 0; i < 10 && archived("bob") != 1; i++, jobs++)
        harness_advance(100);
    ck_assert_int_eq(jobs, 2);
    ck_assert_int_eq(archived("alice"), 1);
    ck_assert_int_eq(archived("bob"), 1);
    ck_assert_int_eq(users_recorded(), 2);
    /* the next round after the interval only */
    old_items("alice", 2, 9);
    harness_advance(1000 * 1000);
    ck_assert_int_eq(archived("alice"), 3);
    harness_advance(3600 * 1000);
    ck_assert_int_eq(archived("alice"), 1);
    /* an account whose archive is empty is visited no more */
    ck_assert_int_eq(roost_store_remove(arch, "bob", NULL), 0);
    old_items("bob", 1, 10);
    harness_advance(3600 * 1000);
    ck_assert_int_eq(archived("bob"), 0);
    ck_assert_int_eq(users_recorded(), 1);
    ck_assert_int_eq(harness_timer_count(), 1);
}
END_TEST

/* Archives from before mam_users existed (items, no record of the
 * account) are found once through the account list when expiry is on,
 * so they expire too; the marker stops it from running again. */
static void
setup_old_archive(void)
{
    conf_expires_ms = 7 * 86400 * 1000LL;
    conf_interval_ms = 3600 * 1000;
    ck_assert_ptr_nonnull(harness_load(&roost_module_disco, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_message, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&roost_module_offline, HOST, NULL));
    ck_assert_int_eq(harness_account_add("alice", "pw-alice"), 0);
    ck_assert_int_eq(harness_account_add("bob", "pw-bob"), 0);
    ck_assert_int_eq(harness_account_add("carol", "pw-carol"), 0);
    arch = harness_store("mam", ROOST_STORE_ARCHIVE);
    ck_assert_ptr_nonnull(arch);
    old_items("alice", 5, 30);
    old_items("bob", 2, 1);
    ck_assert_ptr_nonnull(harness_load(&roost_module_mam, HOST, mam_conf_init));
}

START_TEST(test_expiry_old_archive)
{
    roost_store_t *users = harness_store("mam_users", ROOST_STORE_MAP);
    char *val = NULL;
    size_t len;

    harness_storage_run();                 /* the indexing jobs */
    ck_assert_int_eq(users_recorded(), 2); /* alice and bob, not carol */
    ck_assert_int_eq(roost_store_get(users, "#meta", "indexed", &val, &len), 0);
    roost_free(val);
    harness_advance(60000); /* the first purge round */
    ck_assert_int_eq(archived("alice"), 0);
    ck_assert_int_eq(archived("bob"), 2);
}
END_TEST

/* Without archive_expires_after, no timer and nothing removed. */
START_TEST(test_no_expiry)
{
    old_items("alice", 3, 365);
    chat(REMOTE, ALICE, "recent");
    ck_assert_int_eq(harness_timer_count(), 0);
    harness_advance(7 * 86400 * 1000LL);
    ck_assert_int_eq(archived("alice"), 4);
}
END_TEST

static void
setup_quota(void)
{
    conf_max_items = 3;
    setup();
}

/* archive_max_items: the oldest items make room; the stanza-id delivered
 * names an item the archive holds. */
START_TEST(test_quota)
{
    roost_stanza_t *iq, *m;
    char q[512], id[64];

    for (int i = 0; i < 5; i++) {
        char b[8];

        snprintf(b, sizeof(b), "q%d", i);
        chat(REMOTE, ALICE, b);
    }
    ck_assert_int_eq(archived("alice"), 3);
    m = nth(PHONE, "message", 4);
    snprintf(id, sizeof(id), "%s", roost_stanza_attr(sid_of(m), "id"));
    iq = query("");
    ck_assert_str_eq(set_text(iq, "count"), "3");
    ck_assert_str_eq(result_body(0), "q2");
    ck_assert_str_eq(result_body(2), "q4");
    snprintf(q, sizeof(q), FORM("<field var='ids'><value>%s</value></field>"),
             id);
    iq = query(q);
    ck_assert_str_eq(roost_stanza_attr(iq, "type"), "result");
    /* outgoing copies count too; an archive over a lowered quota shrinks
     * by at most MAM_QUOTA_BATCH per append */
    old_items("alice", 150, 1);
    chat(PHONE, "romeo@remote.example", "out");
    ck_assert_int_eq(archived("alice"), 54);
    chat(PHONE, "romeo@remote.example", "out2");
    ck_assert_int_eq(archived("alice"), 3);
}
END_TEST

static Suite *
mam_suite(void)
{
    Suite *s = suite_create("mod_mam");
    TCase *tc = tcase_create("archive");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_incoming_stanza_id);
    tcase_add_test(tc, test_incoming_sid_by_host);
    tcase_add_test(tc, test_outgoing_forged_sid);
    tcase_add_test(tc, test_stanza_id_names_item);
    tcase_add_test(tc, test_outgoing);
    tcase_add_test(tc, test_local_both_archives);
    tcase_add_test(tc, test_not_archived);
    tcase_add_test(tc, test_offline_archived);
    tcase_add_test(tc, test_order_kept);
    suite_add_tcase(s, tc);
    tc = tcase_create("query");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_query_all);
    tcase_add_test(tc, test_paging);
    tcase_add_test(tc, test_form_fields);
    tcase_add_test(tc, test_query_errors);
    tcase_add_test(tc, test_max_page);
    tcase_add_test(tc, test_form_get);
    tcase_add_test(tc, test_metadata);
    suite_add_tcase(s, tc);
    tc = tcase_create("prefs_account");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_prefs);
    tcase_add_test(tc, test_disco_account);
    tcase_add_test(tc, test_user_deleted);
    suite_add_tcase(s, tc);
    tc = tcase_create("expiry");
    tcase_add_checked_fixture(tc, setup_expiry, teardown);
    tcase_add_test(tc, test_expiry);
    suite_add_tcase(s, tc);
    tc = tcase_create("expiry_old_archive");
    tcase_add_checked_fixture(tc, setup_old_archive, teardown);
    tcase_add_test(tc, test_expiry_old_archive);
    suite_add_tcase(s, tc);
    tc = tcase_create("defaults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_no_expiry);
    suite_add_tcase(s, tc);
    tc = tcase_create("quota");
    tcase_add_checked_fixture(tc, setup_quota, teardown);
    tcase_add_test(tc, test_quota);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(mam_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
