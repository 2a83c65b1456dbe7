/* tests/modules/check_mod_message.c: mod_message (RFC 6121 §8.5.2, §8.5.3)
 * on the fake host.
 *
 * The core of this file is two tables: every message type (normal, no
 * type, chat, headline, groupchat, error) against resource situations, for
 * the bare JID and for a full JID that exists or not, each row stating
 * which resources get the message, which error (if any) goes back to the
 * sender, and the verdict.  Then: PASS reaching an offline module at
 * ROOST_PRIO_FALLBACK, many resources, availability following presence,
 * a stanza substituted by an earlier hook (roost_event_replace: what is
 * delivered, what is refused) and hook removal on unload.
 * Not for: privacy, carbons or offline storage itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_message;

#define ROMEO   "romeo@example.net/orchard"
#define BARE    "juliet@localhost"
#define BALCONY "juliet@localhost/balcony"
#define CHAMBER "juliet@localhost/chamber"
#define SU      "service-unavailable"

/* Which resources got the message. */
enum { D0 = 0, DB = 1, DC = 2 };
#define H ROOST_HANDLED
#define P ROOST_PASS

/* Resource situations: up to two sessions of juliet. */
enum {
    S_NONE,      /* no session */
    S_ONE,       /* balcony available, priority 0 */
    S_TWO,       /* balcony 5, chamber 1: different priorities */
    S_TIE,       /* balcony 2, chamber 2 */
    S_NEG,       /* balcony -1 only: negative priority only */
    S_UNAVAIL,   /* balcony unavailable only */
    S_MIXED,     /* balcony 0, chamber unavailable with 10 */
    S_NEGPOS,    /* balcony -1, chamber 0 */
    S_C_ONLY,    /* chamber 0 (full JID /balcony does not exist) */
    S_C_NEG,     /* chamber -1 */
    S_C_UNAVAIL, /* chamber unavailable */
    S__COUNT
};

static const struct {
    struct {
        const char *jid;
        int available, priority;
    } s[2];
} setups[S__COUNT] = {
    [S_NONE] = {{{NULL, 0, 0}, {NULL, 0, 0}}},
    [S_ONE] = {{{BALCONY, 1, 0}, {NULL, 0, 0}}},
    [S_TWO] = {{{BALCONY, 1, 5}, {CHAMBER, 1, 1}}},
    [S_TIE] = {{{BALCONY, 1, 2}, {CHAMBER, 1, 2}}},
    [S_NEG] = {{{BALCONY, 1, -1}, {NULL, 0, 0}}},
    [S_UNAVAIL] = {{{BALCONY, 0, 0}, {NULL, 0, 0}}},
    [S_MIXED] = {{{BALCONY, 1, 0}, {CHAMBER, 0, 10}}},
    [S_NEGPOS] = {{{BALCONY, 1, -1}, {CHAMBER, 1, 0}}},
    [S_C_ONLY] = {{{CHAMBER, 1, 0}, {NULL, 0, 0}}},
    [S_C_NEG] = {{{CHAMBER, 1, -1}, {NULL, 0, 0}}},
    [S_C_UNAVAIL] = {{{CHAMBER, 0, 0}, {NULL, 0, 0}}},
};

struct row {
    const char *type; /* NULL: no type attribute (normal) */
    int situation;
    int delivered;      /* DB | DC */
    const char *bounce; /* error condition back to ROMEO, or NULL */
    int verdict;
};

/* Messages to juliet@localhost (RFC 6121 §8.5.2). */
static const struct row bare_rows[] = {
    /* normal/chat: the highest non-negative priority; else PASS, and the
     * core (here: the harness) bounces service-unavailable. */
    {"normal", S_NONE, D0, SU, P},
    {"normal", S_ONE, DB, NULL, H},
    {"normal", S_TWO, DB, NULL, H},
    {"normal", S_TIE, DB | DC, NULL, H},
    {"normal", S_NEG, D0, SU, P},
    {"normal", S_UNAVAIL, D0, SU, P},
    {"normal", S_MIXED, DB, NULL, H},
    {"normal", S_NEGPOS, DC, NULL, H},
    {NULL, S_NONE, D0, SU, P},
    {NULL, S_ONE, DB, NULL, H},
    {NULL, S_TWO, DB, NULL, H},
    {NULL, S_TIE, DB | DC, NULL, H},
    {NULL, S_NEG, D0, SU, P},
    {NULL, S_UNAVAIL, D0, SU, P},
    {NULL, S_MIXED, DB, NULL, H},
    {NULL, S_NEGPOS, DC, NULL, H},
    {"chat", S_NONE, D0, SU, P},
    {"chat", S_ONE, DB, NULL, H},
    {"chat", S_TWO, DB, NULL, H},
    {"chat", S_TIE, DB | DC, NULL, H},
    {"chat", S_NEG, D0, SU, P},
    {"chat", S_UNAVAIL, D0, SU, P},
    {"chat", S_MIXED, DB, NULL, H},
    {"chat", S_NEGPOS, DC, NULL, H},
    /* an unknown type is normal (RFC 6121 §5.2.2) */
    {"x-unknown", S_TWO, DB, NULL, H},
    {"x-unknown", S_NONE, D0, SU, P},
    /* headline: all available non-negative; else dropped */
    {"headline", S_NONE, D0, NULL, H},
    {"headline", S_ONE, DB, NULL, H},
    {"headline", S_TWO, DB | DC, NULL, H},
    {"headline", S_TIE, DB | DC, NULL, H},
    {"headline", S_NEG, D0, NULL, H},
    {"headline", S_UNAVAIL, D0, NULL, H},
    {"headline", S_MIXED, DB, NULL, H},
    {"headline", S_NEGPOS, DC, NULL, H},
    /* groupchat: service-unavailable whatever the resources */
    {"groupchat", S_NONE, D0, SU, H},
    {"groupchat", S_ONE, D0, SU, H},
    {"groupchat", S_TWO, D0, SU, H},
    {"groupchat", S_TIE, D0, SU, H},
    {"groupchat", S_NEG, D0, SU, H},
    {"groupchat", S_UNAVAIL, D0, SU, H},
    {"groupchat", S_MIXED, D0, SU, H},
    {"groupchat", S_NEGPOS, D0, SU, H},
    /* error: dropped silently */
    {"error", S_NONE, D0, NULL, H},
    {"error", S_ONE, D0, NULL, H},
    {"error", S_TWO, D0, NULL, H},
    {"error", S_TIE, D0, NULL, H},
    {"error", S_NEG, D0, NULL, H},
    {"error", S_UNAVAIL, D0, NULL, H},
    {"error", S_MIXED, D0, NULL, H},
    {"error", S_NEGPOS, D0, NULL, H},
};

/* Messages to juliet@localhost/balcony (RFC 6121 §8.5.3). */
static const struct row full_rows[] = {
    /* the session exists: delivered whatever its availability/type */
    {"normal", S_ONE, DB, NULL, H},
    {NULL, S_ONE, DB, NULL, H},
    {"chat", S_ONE, DB, NULL, H},
    {"headline", S_ONE, DB, NULL, H},
    {"groupchat", S_ONE, DB, NULL, H},
    {"error", S_ONE, DB, NULL, H},
    {"normal", S_UNAVAIL, DB, NULL, H},
    {"chat", S_UNAVAIL, DB, NULL, H},
    {"headline", S_UNAVAIL, DB, NULL, H},
    {"groupchat", S_UNAVAIL, DB, NULL, H},
    {"error", S_UNAVAIL, DB, NULL, H},
    {"chat", S_NEG, DB, NULL, H},
    {"headline", S_NEG, DB, NULL, H},
    {"chat", S_TWO, DB, NULL, H},      /* not the other resource */
    {"normal", S_NEGPOS, DB, NULL, H}, /* even below the other */
    /* no such session: normal/chat as bare, headline/error dropped,
     * groupchat service-unavailable */
    {"normal", S_NONE, D0, SU, P},
    {NULL, S_NONE, D0, SU, P},
    {"chat", S_NONE, D0, SU, P},
    {"headline", S_NONE, D0, NULL, H},
    {"groupchat", S_NONE, D0, SU, H},
    {"error", S_NONE, D0, NULL, H},
    {"normal", S_C_ONLY, DC, NULL, H},
    {NULL, S_C_ONLY, DC, NULL, H},
    {"chat", S_C_ONLY, DC, NULL, H},
    {"headline", S_C_ONLY, D0, NULL, H},
    {"groupchat", S_C_ONLY, D0, SU, H},
    {"error", S_C_ONLY, D0, NULL, H},
    {"normal", S_C_NEG, D0, SU, P},
    {"chat", S_C_NEG, D0, SU, P},
    {"headline", S_C_NEG, D0, NULL, H},
    {"chat", S_C_UNAVAIL, D0, SU, P},
    {"groupchat", S_C_UNAVAIL, D0, SU, H},
    {"error", S_C_UNAVAIL, D0, NULL, H},
};

static void
setup(void)
{
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_message, "localhost", NULL));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

static void
add_sessions(int situation)
{
    for (int i = 0; i < 2; i++) {
        const char *jid = setups[situation].s[i].jid;

        if (jid != NULL)
            ck_assert_ptr_nonnull(
                harness_session_add(jid, setups[situation].s[i].available,
                                    setups[situation].s[i].priority));
    }
}

static void
message_xml(char *buf, size_t len, const char *type)
{
    if (type != NULL)
        snprintf(buf, len,
                 "<message type='%s' id='m1'><body>wherefore"
                 "</body></message>",
                 type);
    else
        snprintf(buf, len,
                 "<message id='m1'><body>wherefore</body>"
                 "</message>");
}

static void
check_delivered(const char *jid, int expected, const char *to, const char *type,
                const char *label)
{
    roost_stanza_t *st;

    ck_assert_msg(harness_delivered_count(jid) == (expected ? 1u : 0u),
                  "%s: %s got %zu, expected %d", label, jid,
                  harness_delivered_count(jid), expected ? 1 : 0);
    if (!expected)
        return;
    st = harness_delivered_stanza(jid, 0);
    ck_assert_str_eq(roost_stanza_name(st), "message");
    ck_assert_pstr_eq(roost_stanza_attr(st, "to"), to);
    ck_assert_pstr_eq(roost_stanza_attr(st, "from"), ROMEO);
    ck_assert_pstr_eq(roost_stanza_attr(st, "type"), type);
    ck_assert_pstr_eq(roost_stanza_child_text(st, ROOST_NS_CLIENT, "body"),
                      "wherefore");
}

static void
run_row(const struct row *r, const char *to, int idx)
{
    char xml[256], label[128];
    int v;

    snprintf(label, sizeof(label), "row %d (to %s, type %s, situation %d)", idx,
             to, r->type ? r->type : "(none)", r->situation);
    add_sessions(r->situation);
    message_xml(xml, sizeof(xml), r->type);
    v = harness_inject(ROMEO, to, xml);
    ck_assert_msg(v == r->verdict, "%s: verdict %d, expected %d", label, v,
                  r->verdict);
    check_delivered(BALCONY, r->delivered & DB, to, r->type, label);
    check_delivered(CHAMBER, r->delivered & DC, to, r->type, label);
    if (r->bounce == NULL) {
        ck_assert_msg(harness_sent_count() == 0, "%s: unexpected %s", label,
                      harness_sent_count() ? harness_sent()[0] : "");
    } else {
        roost_stanza_t *e;

        ck_assert_msg(harness_sent_count() == 1, "%s: %zu sent", label,
                      harness_sent_count());
        e = harness_sent_stanza(0);
        ck_assert_pstr_eq(roost_stanza_attr(e, "type"), "error");
        ck_assert_pstr_eq(roost_stanza_attr(e, "to"), ROMEO);
        ck_assert_pstr_eq(roost_stanza_attr(e, "from"), to);
        ck_assert_pstr_eq(roost_stanza_attr(e, "id"), "m1");
        ck_assert_pstr_eq(harness_error_cond(e), r->bounce);
    }
}

START_TEST(test_bare_table)
{
    run_row(&bare_rows[_i], BARE, _i);
}
END_TEST

START_TEST(test_full_table)
{
    run_row(&full_rows[_i], BALCONY, _i);
}
END_TEST

/* ---- PASS reaches a later fallback (offline storage) ---- */

static int offline_got;

static roost_verdict_t
offline_take(const roost_ev_t *ev, void *arg)
{
    offline_got++;
    return ROOST_HANDLED;
}

static int
offline_load(roost_mod_t *m)
{
    int rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_FALLBACK,
                        offline_take, NULL);

    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_FALLBACK,
                        offline_take, NULL);
    return rc;
}

static const roost_module_t offline_module = {
    .abi = ROOST_ABI,
    .name = "fake_offline",
    .load = offline_load,
};

START_TEST(test_fallback_takes_pass)
{
    offline_got = 0;
    ck_assert_ptr_nonnull(harness_load(&offline_module, "localhost", NULL));
    ck_assert_int_eq(harness_inject(ROMEO, BARE,
                                    "<message type='chat' id='a'>"
                                    "<body>x</body></message>"),
                     ROOST_HANDLED);
    ck_assert_int_eq(offline_got, 1);
    ck_assert_uint_eq(harness_sent_count(), 0);
    ck_assert_int_eq(harness_inject(ROMEO, BALCONY,
                                    "<message id='b'><body>x</body>"
                                    "</message>"),
                     ROOST_HANDLED);
    ck_assert_int_eq(offline_got, 2);
    /* headline and error are mod_message's to drop, not to store. */
    harness_inject(ROMEO, BARE,
                   "<message type='headline'><body>x</body>"
                   "</message>");
    harness_inject(ROMEO, BARE, "<message type='error'/>");
    ck_assert_int_eq(offline_got, 2);
    /* Online: mod_message delivers, the fallback is not asked. */
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    harness_inject(ROMEO, BARE,
                   "<message type='chat'><body>x</body>"
                   "</message>");
    ck_assert_int_eq(offline_got, 2);
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 1);
    ck_assert_uint_eq(harness_sent_count(), 0);
}
END_TEST

/* ---- more resources than mod_message looks up on its stack ---- */

START_TEST(test_many_resources)
{
    char jid[64];

    for (int i = 0; i < 40; i++) {
        snprintf(jid, sizeof(jid), "juliet@localhost/r%d", i);
        ck_assert_ptr_nonnull(harness_session_add(jid, 1, i == 33 ? 7 : 1));
    }
    harness_inject(ROMEO, BARE,
                   "<message type='chat'><body>x</body>"
                   "</message>");
    for (int i = 0; i < 40; i++) {
        snprintf(jid, sizeof(jid), "juliet@localhost/r%d", i);
        ck_assert_uint_eq(harness_delivered_count(jid), i == 33 ? 1 : 0);
    }
    harness_clear();
    harness_inject(ROMEO, BARE,
                   "<message type='headline'><body>x</body>"
                   "</message>");
    for (int i = 0; i < 40; i++) {
        snprintf(jid, sizeof(jid), "juliet@localhost/r%d", i);
        ck_assert_uint_eq(harness_delivered_count(jid), 1);
    }
}
END_TEST

/* ---- availability as the session's presence changes ---- */

START_TEST(test_follows_presence)
{
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 0, 0));
    ck_assert_int_eq(harness_inject(ROMEO, BARE,
                                    "<message><body>1</body>"
                                    "</message>"),
                     ROOST_PASS);
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 0);
    harness_clear();
    harness_inject(BALCONY, NULL,
                   "<presence><priority>3</priority>"
                   "</presence>");
    ck_assert_int_eq(harness_inject(ROMEO, BARE,
                                    "<message><body>2</body>"
                                    "</message>"),
                     ROOST_HANDLED);
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 1);
    roost_session_set_presence(harness_session(BALCONY), 1, -5);
    harness_clear();
    ck_assert_int_eq(harness_inject(ROMEO, BARE,
                                    "<message><body>3</body>"
                                    "</message>"),
                     ROOST_PASS);
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 0);
}
END_TEST

/* ---- a local sender gets its bounce on its session ---- */

START_TEST(test_local_sender)
{
    roost_stanza_t *e;

    ck_assert_ptr_nonnull(harness_session_add("romeo@localhost/pc", 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    harness_inject("romeo@localhost/pc", BARE,
                   "<message type='groupchat' id='g'><body>x</body>"
                   "</message>");
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 0);
    ck_assert_uint_eq(harness_delivered_count("romeo@localhost/pc"), 1);
    e = harness_delivered_stanza("romeo@localhost/pc", 0);
    ck_assert_pstr_eq(harness_error_cond(e), SU);
    ck_assert_pstr_eq(roost_stanza_attr(e, "from"), BARE);
}
END_TEST

START_TEST(test_unload_removes_hooks)
{
    ck_assert_int_eq(harness_hook_count(ROOST_EV_MESSAGE_BARE), 1);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_MESSAGE_FULL), 1);
    ck_assert_int_eq(harness_unload(harness_mod("message")), 0);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_MESSAGE_BARE), 0);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_MESSAGE_FULL), 0);
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    ck_assert_int_eq(harness_inject(ROMEO, BARE,
                                    "<message><body>x</body>"
                                    "</message>"),
                     ROOST_PASS);
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 0);
}
END_TEST

/* ---- a substituted stanza (roost_event_replace) is what is delivered ---- */

/* A stand-in for a module that rewrites messages before delivery
 * (ROOST_PRIO_COPY): adds <subject/>, and tries the substitutions the
 * core refuses (another to, another type); and one that rewrites what a
 * session gets (ROOST_EV_DELIVER): adds <thread/>. */
static int subst_rc[4];

static roost_verdict_t
subst_msg(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *c = roost_stanza_copy(ev->stanza), *bad;

    (void)arg;
    roost_stanza_add_text(roost_stanza_add_child(c, NULL, "subject"), "s", 1);
    bad = roost_stanza_copy(c);
    roost_stanza_set_attr(bad, "to", CHAMBER);
    subst_rc[0] = roost_event_replace(ev, bad);
    roost_stanza_set_attr(bad, "to", roost_stanza_attr(c, "to"));
    roost_stanza_set_attr(bad, "type", "headline");
    subst_rc[1] = roost_event_replace(ev, bad);
    roost_stanza_unref(bad);
    subst_rc[2] = roost_event_replace(ev, c);
    roost_stanza_unref(c);
    /* Later hooks see the substitute as ev->stanza. */
    ck_assert_ptr_nonnull(roost_stanza_child(ev->stanza, NULL, "subject"));
    return ROOST_PASS;
}

static roost_verdict_t
subst_deliver(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *c = roost_stanza_copy(ev->stanza);

    (void)arg;
    roost_stanza_add_text(roost_stanza_add_child(c, NULL, "thread"), "t", 1);
    subst_rc[3] = roost_event_replace(ev, c);
    roost_stanza_unref(c);
    return ROOST_PASS;
}

static int
subst_load(roost_mod_t *m)
{
    int rc =
        roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_COPY, subst_msg, NULL);

    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_DELIVER, ROOST_PRIO_DEFAULT, subst_deliver,
                        NULL);
    return rc;
}

static const roost_module_t subst_mod = {
    .abi = ROOST_ABI,
    .name = "subst",
    .load = subst_load,
};

START_TEST(test_substitute_delivered)
{
    roost_stanza_t *got;

    ck_assert_ptr_nonnull(harness_load(&subst_mod, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(CHAMBER, 1, -1));
    harness_deliver_hooks(1);
    ck_assert_int_eq(harness_inject(ROMEO, BARE,
                                    "<message type='chat' id='x'><body>x"
                                    "</body></message>"),
                     ROOST_HANDLED);
    harness_deliver_hooks(0);
    ck_assert_int_eq(subst_rc[0], -ROOST_EINVAL); /* another to */
    ck_assert_int_eq(subst_rc[1], -ROOST_EINVAL); /* another type */
    ck_assert_int_eq(subst_rc[2], 0);
    ck_assert_int_eq(subst_rc[3], 0); /* DELIVER: for that session */
    ck_assert_int_eq(harness_replace_count(), 2);
    ck_assert_uint_eq(harness_delivered_count(CHAMBER), 0);
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 1);
    got = harness_delivered_stanza(BALCONY, 0);
    ck_assert_str_eq(roost_stanza_attr(got, "id"), "x");
    ck_assert_str_eq(roost_stanza_child_text(got, NULL, "subject"), "s");
    ck_assert_str_eq(roost_stanza_child_text(got, NULL, "thread"), "t");
}
END_TEST

static Suite *
message_suite(void)
{
    Suite *s = suite_create("mod_message");
    TCase *tc;

    tc = tcase_create("bare_jid");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_bare_table, 0,
                        (int)(sizeof(bare_rows) / sizeof(bare_rows[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("full_jid");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_full_table, 0,
                        (int)(sizeof(full_rows) / sizeof(full_rows[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("fallback");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fallback_takes_pass);
    suite_add_tcase(s, tc);

    tc = tcase_create("resources");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_many_resources);
    tcase_add_test(tc, test_follows_presence);
    tcase_add_test(tc, test_local_sender);
    tcase_add_test(tc, test_substitute_delivered);
    suite_add_tcase(s, tc);

    tc = tcase_create("unload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_unload_removes_hooks);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(message_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
