/* tests/modules/check_mod_admin_adhoc.c: mod_admin_adhoc (XEP-0133 over
 * XEP-0050) on the fake host, with the real credential store and roster
 * model.
 *
 * Covers: every command refused (forbidden, XEP-0133 §5) to a
 * non-admin, also through the module's own admins option, and hidden from
 * the command list (XEP-0050 §2.2); add-user as a two-step session and in
 * one step, its refusals (conflict, password mismatch, other host);
 * delete-user of several accounts (their sessions closed), of a missing
 * one (item-not-found); change-user-password in two steps and in one,
 * and its refusals (missing account or fields, bad JID, a password
 * SASLprep refuses); get-user-roster of an account with a session and
 * of one without (its stored roster, read asynchronously; the protocol
 * view: no hidden items), of a missing account (item-not-found); cancel
 * and bad session ids (XEP-0050 §4.6); get-registered-users-num (the
 * stored accounts, counted asynchronously) and get-online-users-num
 * (accounts with a session, each once), in one step with their result
 * forms (§4.13, §4.15); get-registered-users-list and
 * get-online-users-list with max_items (§4.18, §4.20).
 * Not for: the account store (tests/unit/check_auth.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_admin_adhoc;

#define HOST    "localhost"
#define ADMIN   "admin@localhost/desk"
#define USER    "alice@localhost/phone"
#define NS_CMD  "http://jabber.org/protocol/commands"
#define NS_ADM  "http://jabber.org/protocol/admin"
#define NS_X    "jabber:x:data"
#define NODE(c) NS_ADM "#" c

static void
setup(void)
{
    harness_admin_add("admin@localhost");
    ck_assert_ptr_nonnull(harness_load(&roost_module_admin_adhoc, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(ADMIN, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(USER, 1, 0));
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

static void
assert_error(const roost_stanza_t *st, const char *cond)
{
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "error");
    ck_assert_ptr_nonnull(harness_error_cond(st));
    ck_assert_str_eq(harness_error_cond(st), cond);
}

/* The <command/> of a result, with status. */
static roost_stanza_t *
command(const roost_stanza_t *r, const char *status)
{
    roost_stanza_t *c;

    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
    c = roost_stanza_child(r, NS_CMD, "command");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(roost_stanza_attr(c, "status"), status);
    return c;
}

/* Executes node from `from`, with fields (XML of <field/>s) as a submitted
 * form, or no form when fields is NULL; sid continues a session. */
static roost_stanza_t *
run(const char *from, const char *node, const char *sid, const char *fields)
{
    char xml[4096];

    snprintf(xml, sizeof(xml),
             "<iq type='set' id='c'><command xmlns='" NS_CMD
             "' node='%s'%s%s%s%s%s%s%s</command></iq>",
             node, sid ? " sessionid='" : "", sid ? sid : "", sid ? "'" : "",
             fields ? ">" : "/>",
             fields ? "<x xmlns='" NS_X
                      "' type='submit'><field var='FORM_TYPE'>"
                      "<value>" NS_ADM "</value></field>"
                    : "",
             fields ? fields : "", fields ? "</x>" : "");
    if (fields == NULL) /* self-closed above: drop the closing tag */
        snprintf(xml, sizeof(xml),
                 "<iq type='set' id='c'><command xmlns='" NS_CMD
                 "' node='%s'%s%s%s/></iq>",
                 node, sid ? " sessionid='" : "", sid ? sid : "",
                 sid ? "'" : "");
    harness_inject(from, HOST, xml);
    return last(from);
}

#define F1(var, v) "<field var='" var "'><value>" v "</value></field>"

/* ---- who may run commands ---- */

static const char *const nodes[] = {NODE("add-user"),
                                    NODE("delete-user"),
                                    NODE("change-user-password"),
                                    NODE("get-user-roster"),
                                    NODE("get-registered-users-num"),
                                    NODE("get-online-users-num"),
                                    NODE("get-registered-users-list"),
                                    NODE("get-online-users-list")};

/* XEP-0133 §5: forbidden to anyone but an admin, form or submission. */
START_TEST(test_forbidden)
{
    assert_error(run(USER, nodes[_i], NULL, NULL), "forbidden");
    assert_error(run(USER, nodes[_i], NULL,
                     F1("accountjid", "bob@localhost") F1(
                         "accountjids", "admin@localhost") F1("password", "x")),
                 "forbidden");
    ck_assert(harness_account_exists("bob") == 0);
    ck_assert_ptr_nonnull(harness_session(ADMIN));
}
END_TEST

/* XEP-0050 §2.2: the command list is the admin's only. */
START_TEST(test_command_list)
{
    roost_stanza_t *q;
    int n = 0;

    harness_inject(
        USER, HOST,
        "<iq type='get' id='i'><query "
        "xmlns='http://jabber.org/protocol/disco#items' node='" NS_CMD
        "'/></iq>");
    q = roost_stanza_first_child(last(USER));
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_null(roost_stanza_first_child(q));
    harness_inject(
        ADMIN, HOST,
        "<iq type='get' id='i'><query "
        "xmlns='http://jabber.org/protocol/disco#items' node='" NS_CMD
        "'/></iq>");
    q = roost_stanza_first_child(last(ADMIN));
    for (roost_stanza_t *it = roost_stanza_first_child(q); it != NULL;
         it = roost_stanza_next_sibling(it))
        n++;
    ck_assert_int_eq(n, (int)(sizeof(nodes) / sizeof(nodes[0])));
}
END_TEST

/* Mirrors struct admin_conf in modules/mod_admin_adhoc.c. */
struct admin_conf_view {
    const char *const *admins;
};

static const char *const alice_admin[] = {"alice@localhost", NULL};

static void
conf_alice(void *c)
{
    ((struct admin_conf_view *)c)->admins = alice_admin;
}

/* The module's own admins option. */
START_TEST(test_module_admins)
{
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_admin_adhoc, HOST, conf_alice));
    ck_assert_ptr_nonnull(harness_session_add(USER, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(ADMIN, 1, 0));
    command(run(USER, NODE("add-user"), NULL, NULL), "executing");
    assert_error(run(ADMIN, NODE("add-user"), NULL, NULL), "forbidden");
}
END_TEST

/* ---- add-user (§4.1) ---- */

/* Two steps: the form, then the submission in that session. */
START_TEST(test_add_user_two_steps)
{
    roost_stanza_t *c =
        command(run(ADMIN, NODE("add-user"), NULL, NULL), "executing");
    roost_stanza_t *x = roost_stanza_child(c, NS_X, "x");
    char sid[64];

    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(roost_stanza_attr(x, "type"), "form");
    snprintf(sid, sizeof(sid), "%s", roost_stanza_attr(c, "sessionid"));
    command(run(ADMIN, NODE("add-user"), sid,
                F1("accountjid", "bob@localhost") F1("password", "pw")
                    F1("password-verify", "pw")),
            "completed");
    ck_assert(harness_account_check("bob", "pw"));
    /* The session is over. */
    assert_error(run(ADMIN, NODE("add-user"), sid,
                     F1("accountjid", "carol@localhost") F1("password", "pw")),
                 "bad-request");
    ck_assert(!harness_account_exists("carol"));
}
END_TEST

/* One step, and the refusals of §4.1/§6. */
static const struct {
    const char *fields, *cond;
} adds[] = {
    {F1("accountjid", "bob@localhost") F1("password", "pw"), NULL},
    {F1("accountjid", "alice@localhost") F1("password", "pw"), "conflict"},
    {F1("accountjid", "bob@localhost") F1("password", "pw")
         F1("password-verify", "other"),
     "bad-request"},
    {F1("accountjid", "bob@elsewhere.example") F1("password", "pw"),
     "bad-request"},
    {F1("accountjid", "bob@localhost"), "bad-request"},
};

START_TEST(test_add_user)
{
    roost_stanza_t *r;

    ck_assert_int_eq(harness_account_add("alice", "old"), 0);
    r = run(ADMIN, NODE("add-user"), NULL, adds[_i].fields);
    if (adds[_i].cond == NULL) {
        command(r, "completed");
        ck_assert(harness_account_check("bob", "pw"));
    } else {
        assert_error(r, adds[_i].cond);
        ck_assert(!harness_account_exists("bob"));
        ck_assert(harness_account_check("alice", "old"));
    }
}
END_TEST

/* ---- delete-user (§4.2) ---- */

START_TEST(test_delete_users)
{
    ck_assert_int_eq(harness_account_add("alice", "x"), 0);
    ck_assert_int_eq(harness_account_add("bob", "x"), 0);
    command(run(ADMIN, NODE("delete-user"), NULL,
                "<field var='accountjids'><value>alice@localhost</value>"
                "<value>bob@localhost</value></field>"),
            "completed");
    ck_assert(!harness_account_exists("alice"));
    ck_assert(!harness_account_exists("bob"));
    /* alice's session ended with not-authorized. */
    ck_assert_ptr_null(harness_session(USER));
    ck_assert_str_eq(harness_last_close(), "not-authorized");
}
END_TEST

START_TEST(test_delete_missing)
{
    assert_error(run(ADMIN, NODE("delete-user"), NULL,
                     F1("accountjids", "nobody@localhost")),
                 "item-not-found");
}
END_TEST

/* ---- change-user-password (§4.7) ---- */

/* Two steps: the form (accountjid and password, both required), then the
 * submission; the old password stops working, the session stays. */
START_TEST(test_password_two_steps)
{
    roost_stanza_t *c, *x;
    char sid[64], xml[1024];
    int required = 0;

    ck_assert_int_eq(harness_account_add("alice", "old"), 0);
    c = command(run(ADMIN, NODE("change-user-password"), NULL, NULL),
                "executing");
    snprintf(sid, sizeof(sid), "%s", roost_stanza_attr(c, "sessionid"));
    x = roost_stanza_child(c, NS_X, "x");
    ck_assert_ptr_nonnull(x);
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *var = roost_stanza_attr(f, "var");

        if (var != NULL &&
            (strcmp(var, "accountjid") == 0 || strcmp(var, "password") == 0) &&
            roost_stanza_child(f, NULL, "required") != NULL)
            required++;
    }
    ck_assert_int_eq(required, 2);
    harness_clear();
    harness_storage_hold(1);
    snprintf(xml, sizeof(xml),
             "<iq type='set' id='c'><command xmlns='" NS_CMD "' node='" NODE(
                 "change-user-password") "' sessionid='%s'>"
                                         "<x xmlns='" NS_X
                                         "' type='submit'>" F1(
                                             "accountjid", "alice@localhost")
                                             F1("password",
                                                "new") "</x></command></iq>",
             sid);
    harness_inject(ADMIN, HOST, xml);
    ck_assert_uint_eq(harness_delivered_count(ADMIN), 0);
    ck_assert_int_eq(harness_storage_run(), 1); /* answered only now */
    harness_storage_hold(0);
    ck_assert_uint_eq(harness_delivered_count(ADMIN), 1);
    command(last(ADMIN), "completed");
    ck_assert(harness_account_check("alice", "new"));
    ck_assert(!harness_account_check("alice", "old"));
    ck_assert_ptr_nonnull(harness_session(USER));
}
END_TEST

static const struct {
    const char *fields;
    const char *cond; /* NULL: completed */
} passwds[] = {
    {F1("accountjid", "Alice@LocalHost") F1("password", "new"), NULL},
    {F1("accountjid", "nobody@localhost") F1("password", "new"),
     "item-not-found"},
    {F1("accountjid", "alice@localhost"), "bad-request"},
    {F1("accountjid", "alice@localhost") F1("password", ""), "bad-request"},
    {F1("password", "new"), "bad-request"},
    {F1("accountjid", "alice@elsewhere.example") F1("password", "new"),
     "bad-request"},
    {F1("accountjid", "alice@localhost/res") F1("password", "new"),
     "jid-malformed"},
    /* SASLprep (RFC 4013 §2.3) prohibits private use code points (U+E000) */
    {F1("accountjid", "alice@localhost") F1("password", "a\xee\x80\x80"
                                                        "z"),
     "not-acceptable"},
};

/* One step, and the refusals: the password is unchanged. */
START_TEST(test_password)
{
    roost_stanza_t *r;

    ck_assert_int_eq(harness_account_add("alice", "old"), 0);
    r = run(ADMIN, NODE("change-user-password"), NULL, passwds[_i].fields);
    if (passwds[_i].cond == NULL) {
        command(r, "completed");
        ck_assert(harness_account_check("alice", "new"));
    } else {
        assert_error(r, passwds[_i].cond);
        ck_assert(harness_account_check("alice", "old"));
        ck_assert(!harness_account_exists("nobody"));
    }
}
END_TEST

/* ---- get-user-roster (§4.8) ---- */

static void
roster_add(const char *user, const char *contact, roost_sub_t sub, int hidden)
{
    roost_roster_item_t it = {0};

    it.jid = contact;
    it.sub = sub;
    it.hidden = hidden;
    ck_assert_int_eq(roost_roster_set(harness_mod("admin_adhoc"), user, &it, 0),
                     0);
}

/* The roster in a completed get-user-roster answer r: asserts it holds
 * exactly bob@localhost (both), and the accountjids field is account. */
static void
assert_roster_answer(const roost_stanza_t *r, const char *account)
{
    roost_stanza_t *c = command(r, "completed"), *x, *q, *f;
    int n = 0;

    x = roost_stanza_child(c, NS_X, "x");
    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(roost_stanza_attr(x, "type"), "result");
    for (f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f))
        if (roost_stanza_attr(f, "var") != NULL &&
            strcmp(roost_stanza_attr(f, "var"), "accountjids") == 0)
            break;
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(roost_stanza_child_text(f, NULL, "value"), account);
    q = roost_stanza_child(x, "jabber:iq:roster", "query");
    ck_assert_ptr_nonnull(q);
    for (roost_stanza_t *it = roost_stanza_first_child(q); it != NULL;
         it = roost_stanza_next_sibling(it)) {
        ck_assert_str_eq(roost_stanza_attr(it, "jid"), "bob@localhost");
        ck_assert_str_eq(roost_stanza_attr(it, "subscription"), "both");
        n++;
    }
    ck_assert_int_eq(n, 1);
}

START_TEST(test_roster_online)
{
    ck_assert_int_eq(harness_account_add("alice", "x"), 0);
    roster_add("alice", "bob@localhost", ROOST_SUB_BOTH, 0);
    roster_add("alice", "eve@remote.example", ROOST_SUB_NONE, 1);
    assert_roster_answer(run(ADMIN, NODE("get-user-roster"), NULL,
                             F1("accountjids", "alice@localhost")),
                         "alice@localhost");
}
END_TEST

/* An account with no session: its stored roster is read (loaded through
 * roost_roster_load_async), and the answer waits for that. */
START_TEST(test_roster_offline)
{
    ck_assert_int_eq(harness_account_add("carol", "x"), 0);
    roster_add("carol", "bob@localhost", ROOST_SUB_BOTH, 0);
    roster_add("carol", "eve@remote.example", ROOST_SUB_NONE, 1);
    ck_assert_int_eq(harness_roster_unload("carol"), 0);
    ck_assert_ptr_null(
        roost_roster_version(harness_mod("admin_adhoc"), "carol"));
    harness_clear();
    harness_storage_hold(1);
    harness_inject(
        ADMIN, HOST,
        "<iq type='set' id='c'><command xmlns='" NS_CMD "' node='" NODE(
            "get-user-roster") "'><x xmlns='" NS_X
                               "' type='submit'>" F1(
                                   "accountjids",
                                   "Carol@LocalHost") "</x></command></iq>");
    /* Nothing until the state is read. */
    ck_assert_uint_eq(harness_delivered_count(ADMIN), 0);
    ck_assert_int_eq(harness_storage_run(), 1);
    harness_storage_hold(0);
    ck_assert_uint_eq(harness_delivered_count(ADMIN), 1);
    assert_roster_answer(last(ADMIN), "carol@localhost");
}
END_TEST

/* No such account: item-not-found (an error stanza, XEP-0133 §6). */
START_TEST(test_roster_no_account)
{
    roost_stanza_t *r = run(ADMIN, NODE("get-user-roster"), NULL,
                            F1("accountjids", "nobody@localhost"));

    assert_error(r, "item-not-found");
    ck_assert_ptr_null(roost_stanza_child(r, NS_CMD, "command"));
}
END_TEST

START_TEST(test_roster_bad_jid)
{
    assert_error(run(ADMIN, NODE("get-user-roster"), NULL,
                     F1("accountjids", "alice@elsewhere.example")),
                 "bad-request");
    assert_error(run(ADMIN, NODE("get-user-roster"), NULL,
                     "<field var='accountjids'><value>a@localhost</value>"
                     "<value>b@localhost</value></field>"),
                 "bad-request");
}
END_TEST

/* ---- XEP-0050 sessions ---- */

START_TEST(test_cancel_and_bad_session)
{
    roost_stanza_t *c =
        command(run(ADMIN, NODE("add-user"), NULL, NULL), "executing");
    char sid[64], xml[512];

    snprintf(sid, sizeof(sid), "%s", roost_stanza_attr(c, "sessionid"));
    /* Another user cannot continue it. */
    harness_admin_add("alice@localhost");
    assert_error(run(USER, NODE("add-user"), sid,
                     F1("accountjid", "bob@localhost") F1("password", "pw")),
                 "bad-request");
    snprintf(xml, sizeof(xml),
             "<iq type='set' id='c'><command xmlns='" NS_CMD
             "' node='" NODE("add-user") "' sessionid='%s' "
                                         "action='cancel'/></iq>",
             sid);
    harness_inject(ADMIN, HOST, xml);
    command(last(ADMIN), "canceled");
    assert_error(run(ADMIN, NODE("add-user"), sid,
                     F1("accountjid", "bob@localhost") F1("password", "pw")),
                 "bad-request");
    ck_assert(!harness_account_exists("bob"));
}
END_TEST

/* ---- get-registered-users-num, get-online-users-num (§4.13, §4.15) ---- */

/* The value of field var in the completed command's result form. */
static const char *
result_value(const roost_stanza_t *r, const char *node, const char *var)
{
    roost_stanza_t *c = command(r, "completed"), *x;
    const char *type = NULL;

    ck_assert_str_eq(roost_stanza_attr(c, "node"), node);
    ck_assert_ptr_nonnull(roost_stanza_attr(c, "sessionid"));
    x = roost_stanza_child(c, NS_X, "x");
    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(roost_stanza_attr(x, "type"), "result");
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *v = roost_stanza_attr(f, "var");

        if (v != NULL && strcmp(v, "FORM_TYPE") == 0)
            type = roost_stanza_child_text(f, NULL, "value");
        else if (v != NULL && strcmp(v, var) == 0) {
            ck_assert_ptr_nonnull(type);
            ck_assert_str_eq(type, NS_ADM);
            return roost_stanza_child_text(f, NULL, "value");
        }
    }
    ck_abort_msg("no field %s", var);
    return NULL;
}

START_TEST(test_registered_num)
{
    /* No form: executing completes at once. */
    ck_assert_str_eq(
        result_value(run(ADMIN, NODE("get-registered-users-num"), NULL, NULL),
                     NODE("get-registered-users-num"), "registeredusersnum"),
        "0");
    ck_assert_int_eq(harness_account_add("alice", "x"), 0);
    ck_assert_int_eq(harness_account_add("bob", "x"), 0);
    ck_assert_int_eq(harness_account_add("carol", "x"), 0);
    /* Counted on the storage queue, not on the loop: nothing until the
     * job ran. */
    harness_storage_hold(1);
    harness_clear();
    harness_inject(ADMIN, HOST,
                   "<iq type='set' id='n'><command xmlns='" NS_CMD
                   "' node='" NODE("get-registered-users-num") "'/></iq>");
    ck_assert_uint_eq(harness_delivered_count(ADMIN), 0);
    ck_assert_int_eq(harness_storage_pending(), 1);
    harness_storage_hold(0);
    ck_assert_int_eq(harness_storage_run(), 1);
    ck_assert_str_eq(result_value(last(ADMIN), NODE("get-registered-users-num"),
                                  "registeredusersnum"),
                     "3");
    /* A removal is counted once it has gone through. */
    command(run(ADMIN, NODE("delete-user"), NULL,
                F1("accountjids", "bob@localhost")),
            "completed");
    ck_assert_str_eq(
        result_value(run(ADMIN, NODE("get-registered-users-num"), NULL, NULL),
                     NODE("get-registered-users-num"), "registeredusersnum"),
        "2");
}
END_TEST

START_TEST(test_online_num)
{
    /* admin and alice (setup), each once however many resources. */
    ck_assert_str_eq(
        result_value(run(ADMIN, NODE("get-online-users-num"), NULL, NULL),
                     NODE("get-online-users-num"), "onlineusersnum"),
        "2");
    ck_assert_ptr_nonnull(harness_session_add("alice@localhost/desk", 0, 0));
    ck_assert_ptr_nonnull(harness_session_add("bob@localhost/a", 0, 0));
    ck_assert_str_eq(
        result_value(run(ADMIN, NODE("get-online-users-num"), NULL, NULL),
                     NODE("get-online-users-num"), "onlineusersnum"),
        "3");
    ck_assert_int_eq(harness_session_remove(USER), 0);
    ck_assert_int_eq(harness_session_remove("bob@localhost/a"), 0);
    ck_assert_str_eq(
        result_value(run(ADMIN, NODE("get-online-users-num"), NULL, NULL),
                     NODE("get-online-users-num"), "onlineusersnum"),
        "2");
    /* A submitted (empty) form is accepted as well. */
    ck_assert_str_eq(
        result_value(run(ADMIN, NODE("get-online-users-num"), NULL, ""),
                     NODE("get-online-users-num"), "onlineusersnum"),
        "2");
}
END_TEST

/* ---- get-registered-users-list, get-online-users-list (§4.18, §4.20) ---- */

/* The values of field var in the completed command's result form, joined
 * with spaces. */
static const char *
result_values(const roost_stanza_t *r, const char *node, const char *var)
{
    static char buf[4096];
    roost_stanza_t *c = command(r, "completed"), *x;

    ck_assert_str_eq(roost_stanza_attr(c, "node"), node);
    x = roost_stanza_child(c, NS_X, "x");
    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(roost_stanza_attr(x, "type"), "result");
    buf[0] = '\0';
    for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *v = roost_stanza_attr(f, "var");

        if (v == NULL || strcmp(v, var) != 0)
            continue;
        for (roost_stanza_t *e = roost_stanza_first_child(f); e != NULL;
             e = roost_stanza_next_sibling(e)) {
            if (strcmp(roost_stanza_name(e), "value") != 0)
                continue;
            if (buf[0] != '\0')
                strcat(buf, " ");
            strcat(buf, roost_stanza_text(e));
        }
        return buf;
    }
    ck_abort_msg("no field %s", var);
    return NULL;
}

/* A note of the completed command, or NULL. */
static const char *
note_of(const roost_stanza_t *r)
{
    roost_stanza_t *c = roost_stanza_child(r, NS_CMD, "command");
    roost_stanza_t *n =
        c != NULL ? roost_stanza_child(c, NS_CMD, "note") : NULL;

    return n != NULL ? roost_stanza_text(n) : NULL;
}

START_TEST(test_registered_list)
{
    roost_stanza_t *r, *c, *x, *f;
    int opts = 0;
    char xml[1024];

    ck_assert_int_eq(harness_account_add("carol", "x"), 0);
    ck_assert_int_eq(harness_account_add("alice", "x"), 0);
    ck_assert_int_eq(harness_account_add("bob", "x"), 0);
    /* The form: max_items with the XEP's options. */
    r = run(ADMIN, NODE("get-registered-users-list"), NULL, NULL);
    c = command(r, "executing");
    x = roost_stanza_child(c, NS_X, "x");
    ck_assert_ptr_nonnull(x);
    for (f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *v = roost_stanza_attr(f, "var");

        if (v != NULL && strcmp(v, "max_items") == 0)
            break;
    }
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(roost_stanza_attr(f, "type"), "list-single");
    for (roost_stanza_t *o = roost_stanza_first_child(f); o != NULL;
         o = roost_stanza_next_sibling(o))
        opts++;
    ck_assert_int_eq(opts, 7);
    /* Submitted: every account, in order, read asynchronously. */
    snprintf(xml, sizeof(xml),
             "<iq type='set' id='l2'><command xmlns='" NS_CMD "' node='" NODE(
                 "get-registered-users-list") "' sessionid='%s'><x xmlns='" NS_X
                                              "' type='submit'>"
                                              "<field "
                                              "var='max_items'><value>none</"
                                              "value></field>"
                                              "</x></command></iq>",
             roost_stanza_attr(c, "sessionid"));
    harness_storage_hold(1);
    harness_clear();
    harness_inject(ADMIN, HOST, xml);
    ck_assert_uint_eq(harness_delivered_count(ADMIN), 0);
    harness_storage_hold(0);
    ck_assert_int_eq(harness_storage_run(), 1);
    r = last(ADMIN);
    ck_assert_str_eq(result_values(r, NODE("get-registered-users-list"),
                                   "registereduserjids"),
                     "alice@localhost bob@localhost carol@localhost");
    ck_assert_ptr_null(note_of(r));
    /* max_items cuts the list, and says so. */
    r = run(ADMIN, NODE("get-registered-users-list"), NULL,
            F1("max_items", "2"));
    ck_assert_str_eq(result_values(r, NODE("get-registered-users-list"),
                                   "registereduserjids"),
                     "alice@localhost bob@localhost");
    ck_assert_pstr_eq(note_of(r), "2 of 3 accounts shown");
    assert_error(run(ADMIN, NODE("get-registered-users-list"), NULL,
                     F1("max_items", "many")),
                 "bad-request");
    assert_error(run(ADMIN, NODE("get-registered-users-list"), NULL,
                     F1("max_items", "0")),
                 "bad-request");
}
END_TEST

START_TEST(test_online_list)
{
    roost_stanza_t *r;

    ck_assert_ptr_nonnull(harness_session_add("alice@localhost/desk", 0, 0));
    ck_assert_ptr_nonnull(harness_session_add("bob@localhost/a", 0, 0));
    r = run(ADMIN, NODE("get-online-users-list"), NULL, F1("max_items", "25"));
    ck_assert_str_eq(
        result_values(r, NODE("get-online-users-list"), "onlineuserjids"),
        "admin@localhost alice@localhost bob@localhost");
    ck_assert_ptr_null(note_of(r));
    ck_assert_int_eq(harness_session_remove("bob@localhost/a"), 0);
    r = run(ADMIN, NODE("get-online-users-list"), NULL, F1("max_items", "1"));
    ck_assert_pstr_eq(note_of(r), "1 of 2 accounts shown");
    r = run(ADMIN, NODE("get-online-users-list"), NULL, "");
    ck_assert_str_eq(
        result_values(r, NODE("get-online-users-list"), "onlineuserjids"),
        "admin@localhost alice@localhost");
}
END_TEST

static Suite *
admin_suite(void)
{
    Suite *s = suite_create("mod_admin_adhoc");
    TCase *tc;

    tc = tcase_create("access");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_forbidden, 0,
                        (int)(sizeof(nodes) / sizeof(nodes[0])));
    tcase_add_test(tc, test_command_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("access_option");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_module_admins);
    suite_add_tcase(s, tc);

    tc = tcase_create("add_user");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_add_user_two_steps);
    tcase_add_loop_test(tc, test_add_user, 0,
                        (int)(sizeof(adds) / sizeof(adds[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("delete_user");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_delete_users);
    tcase_add_test(tc, test_delete_missing);
    suite_add_tcase(s, tc);

    tc = tcase_create("change_user_password");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_password_two_steps);
    tcase_add_loop_test(tc, test_password, 0,
                        (int)(sizeof(passwds) / sizeof(passwds[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("get_user_roster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roster_online);
    tcase_add_test(tc, test_roster_offline);
    tcase_add_test(tc, test_roster_no_account);
    tcase_add_test(tc, test_roster_bad_jid);
    suite_add_tcase(s, tc);

    tc = tcase_create("counts");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_registered_num);
    tcase_add_test(tc, test_online_num);
    tcase_add_test(tc, test_registered_list);
    tcase_add_test(tc, test_online_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("sessions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cancel_and_bad_session);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(admin_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
