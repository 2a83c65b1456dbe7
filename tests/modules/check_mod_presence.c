/* tests/modules/check_mod_presence.c: mod_presence on the fake host, with
 * the real roster model (core/roster.c) and the in-memory storage.
 *
 * Covers: RFC 6121 Appendix A as two tables (A.2, stanzas the user's client
 * sends; A.3, stanzas arriving for the user), row by row: the roster state
 * afterwards, whether the stanza is routed or delivered, whether a roster
 * push is due, and the presence that follows (§3.1.5, §3.2.2, §3.3.3);
 * pre-approval (§3.4); initial presence (§4.2.2: probes to To/Both,
 * presence to From/Both, pending requests again, with the status they came
 * with, bounded, after a restart too, §3.1.3); probe answers (§4.3.2);
 * unavailable to directed-presence recipients when a session closes
 * (§4.6.3) and to subscribers (§4.5.2); XEP-0012 offline user query;
 * stored roster items read back (core/roster.c reads its own form without
 * expat and leaves every other form to it: both give the same item).
 *
 * The expectations are the RFC's: where mod_presence differs, a test
 * fails.  Not for: jabber:iq:roster (check_mod_roster.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_presence;

#define HOST   "localhost"
#define ALICE  "alice@localhost"
#define PHONE  "alice@localhost/phone"
#define LAPTOP "alice@localhost/laptop"
/* The contact is remote: whatever is routed to it lands in the sent list. */
#define BOB      "bob@remote.example"
#define BOB_FULL "bob@remote.example/desk"

static roost_mod_t *pres;

static void
setup(void)
{
    pres = harness_load(&roost_module_presence, HOST, NULL);
    ck_assert_ptr_nonnull(pres);
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

/* ---- roster states (RFC 6121 Appendix A.1) ---- */

typedef enum {
    S_NONE,
    S_NONE_OUT,
    S_NONE_IN,
    S_NONE_OUT_IN,
    S_TO,
    S_TO_IN,
    S_FROM,
    S_FROM_OUT,
    S_BOTH,
    S__COUNT
} state_t;

static const char *const state_names[] = {"None",
                                          "None + Pending Out",
                                          "None + Pending In",
                                          "None + Pending Out/In",
                                          "To",
                                          "To + Pending In",
                                          "From",
                                          "From + Pending Out",
                                          "Both"};

/* The stored item for contact in a state (the form core/roster.c writes).
 * None + Pending In is what an inbound request leaves when the contact is
 * not in the roster: a hidden item. */
static char *
state_item(state_t s, const char *contact)
{
    static const char *const sub[] = {"none", "none", "none", "none", "to",
                                      "to",   "from", "from", "both"};
    int out = s == S_NONE_OUT || s == S_NONE_OUT_IN || s == S_FROM_OUT;
    int in = s == S_NONE_IN || s == S_NONE_OUT_IN || s == S_TO_IN;
    char buf[512];

    snprintf(buf, sizeof(buf), "<item jid='%s' subscription='%s'%s%s%s/>",
             contact, sub[s], out ? " ask='subscribe'" : "",
             in ? " pending-in='1'" : "", s == S_NONE_IN ? " hidden='1'" : "");
    return roost_xstrdup(buf);
}

/* The state of contact in user's roster (no item: None). */
static state_t
state_of(const char *user, const char *contact)
{
    const roost_roster_item_t *it = roost_roster_item(pres, user, contact);

    if (it == NULL)
        return S_NONE;
    switch (it->sub) {
    case ROOST_SUB_NONE:
        return it->ask && it->pending_in ? S_NONE_OUT_IN
               : it->ask                 ? S_NONE_OUT
               : it->pending_in          ? S_NONE_IN
                                         : S_NONE;
    case ROOST_SUB_TO: return it->pending_in ? S_TO_IN : S_TO;
    case ROOST_SUB_FROM: return it->ask ? S_FROM_OUT : S_FROM;
    case ROOST_SUB_BOTH:
    default: return S_BOTH;
    }
}

static void
preload(const char *user, const char *contact, state_t s)
{
    char *item = state_item(s, contact);
    const char *kv[] = {contact, item, NULL};

    ck_assert_int_eq(harness_roster_preload(user, kv), 0);
    roost_free(item);
}

/* ---- captured output ---- */

/* Stanzas sent off the vhost that are presence of type (NULL: available)
 * to `to` (bare JID match when to has no resource), from `from` (NULL:
 * any; a bare JID matches its full JIDs). */
static int
sent_presence(const char *type, const char *from, const char *to)
{
    int n = 0;

    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *st = harness_sent_stanza(i);
        const char *t = roost_stanza_attr(st, "type");
        const char *f = roost_stanza_attr(st, "from");
        const char *d = roost_stanza_attr(st, "to");

        if (strcmp(roost_stanza_name(st), "presence") != 0)
            continue;
        if ((type == NULL) != (t == NULL) ||
            (type != NULL && strcmp(type, t) != 0))
            continue;
        if (d == NULL || strncmp(d, to, strlen(to)) != 0 ||
            (d[strlen(to)] != '\0' && d[strlen(to)] != '/'))
            continue;
        if (from != NULL &&
            (f == NULL || strncmp(f, from, strlen(from)) != 0 ||
             (f[strlen(from)] != '\0' && f[strlen(from)] != '/')))
            continue;
        n++;
    }
    return n;
}

/* Presence stanzas of type (NULL: available) delivered to jid. */
static int
got_presence(const char *jid, const char *type)
{
    int n = 0;

    for (size_t i = 0; i < harness_delivered_count(jid); i++) {
        roost_stanza_t *st = harness_delivered_stanza(jid, i);
        const char *t = roost_stanza_attr(st, "type");

        if (strcmp(roost_stanza_name(st), "presence") != 0)
            continue;
        if ((type == NULL && t == NULL) ||
            (type != NULL && t != NULL && strcmp(type, t) == 0))
            n++;
    }
    return n;
}

/* Roster pushes delivered to jid about contact; *sub and *ask get the
 * last one's attributes. */
static int
pushes(const char *jid, const char *contact, const char **sub, const char **ask,
       const char **approved)
{
    int n = 0;

    for (size_t i = 0; i < harness_delivered_count(jid); i++) {
        roost_stanza_t *st = harness_delivered_stanza(jid, i);
        roost_stanza_t *q = roost_stanza_child(st, "jabber:iq:roster", "query");
        roost_stanza_t *it = q ? roost_stanza_first_child(q) : NULL;
        const char *t = roost_stanza_attr(st, "type");

        if (strcmp(roost_stanza_name(st), "iq") != 0 || t == NULL ||
            strcmp(t, "set") != 0 || it == NULL ||
            strcmp(roost_stanza_attr(it, "jid"), contact) != 0)
            continue;
        n++;
        if (sub)
            *sub = roost_stanza_attr(it, "subscription");
        if (ask)
            *ask = roost_stanza_attr(it, "ask");
        if (approved)
            *approved = roost_stanza_attr(it, "approved");
    }
    return n;
}

/* Alice online on PHONE (interested: she asked for the roster), with
 * initial presence sent and all output forgotten. */
static void
alice_online(void)
{
    roost_session_t *s = harness_session_add(PHONE, 0, 0);

    ck_assert_ptr_nonnull(s);
    roost_session_set_roster_requested(s);
    ck_assert_int_ge(harness_inject(PHONE, NULL, "<presence/>"), 0);
    harness_clear();
}

/* ---- RFC 6121 Appendix A.2: outbound subscription stanzas ---- */

/* -1: not asserted (the RFC leaves it open). */
struct row {
    const char *type;
    state_t from, to;
    int routed; /* A.2: routed to the contact; A.3: delivered to the user */
    int push;   /* a roster push to the user's interested resources */
    int follow; /* A.2 subscribed: presence to the contact (§3.1.5);
                  * A.2 unsubscribed, A.3 unsubscribe: unavailable
                  * (§3.2.2, §3.3.3); A.3 subscribe: auto-reply
                  * subscribed (§3.1.3) */
};

static const struct row out_rows[] = {
    /* A.2.1 subscribe (§3.1.2): always routed. */
    {"subscribe", S_NONE, S_NONE_OUT, 1, 1, 0},
    {"subscribe", S_NONE_OUT, S_NONE_OUT, 1, 0, 0},
    {"subscribe", S_NONE_IN, S_NONE_OUT_IN, 1, 1, 0},
    {"subscribe", S_NONE_OUT_IN, S_NONE_OUT_IN, 1, 0, 0},
    {"subscribe", S_TO, S_TO, 1, 0, 0},
    {"subscribe", S_TO_IN, S_TO_IN, 1, 0, 0},
    {"subscribe", S_FROM, S_FROM_OUT, 1, 1, 0},
    {"subscribe", S_FROM_OUT, S_FROM_OUT, 1, 0, 0},
    {"subscribe", S_BOTH, S_BOTH, 1, 0, 0},
    /* A.2.2 unsubscribe (§3.3.2) */
    {"unsubscribe", S_NONE, S_NONE, -1, 0, 0},
    {"unsubscribe", S_NONE_OUT, S_NONE, 1, 1, 0},
    {"unsubscribe", S_NONE_IN, S_NONE_IN, -1, 0, 0},
    {"unsubscribe", S_NONE_OUT_IN, S_NONE_IN, 1, 1, 0},
    {"unsubscribe", S_TO, S_NONE, 1, 1, 0},
    {"unsubscribe", S_TO_IN, S_NONE_IN, 1, 1, 0},
    {"unsubscribe", S_FROM, S_FROM, -1, 0, 0},
    {"unsubscribe", S_FROM_OUT, S_FROM, 1, 1, 0},
    {"unsubscribe", S_BOTH, S_FROM, 1, 1, 0},
    /* A.2.3 subscribed (§3.1.5; None, None + Pending Out and To are
     * pre-approvals, §3.4: noted and pushed, not routed). */
    {"subscribed", S_NONE, S_NONE, 0, 1, 0},
    {"subscribed", S_NONE_OUT, S_NONE_OUT, 0, 1, 0},
    {"subscribed", S_NONE_IN, S_FROM, 1, 1, 1},
    {"subscribed", S_NONE_OUT_IN, S_FROM_OUT, 1, 1, 1},
    {"subscribed", S_TO, S_TO, 0, 1, 0},
    {"subscribed", S_TO_IN, S_BOTH, 1, 1, 1},
    {"subscribed", S_FROM, S_FROM, 0, 0, 0},
    {"subscribed", S_FROM_OUT, S_FROM_OUT, 0, 0, 0},
    {"subscribed", S_BOTH, S_BOTH, 0, 0, 0},
    /* A.2.4 unsubscribed (§3.2.2) */
    {"unsubscribed", S_NONE, S_NONE, -1, 0, 0},
    {"unsubscribed", S_NONE_OUT, S_NONE_OUT, -1, 0, 0},
    {"unsubscribed", S_NONE_IN, S_NONE, 1, 0, 0},
    {"unsubscribed", S_NONE_OUT_IN, S_NONE_OUT, 1, 0, 0},
    {"unsubscribed", S_TO, S_TO, -1, 0, 0},
    {"unsubscribed", S_TO_IN, S_TO, 1, 0, 0},
    {"unsubscribed", S_FROM, S_NONE, 1, 1, 1},
    {"unsubscribed", S_FROM_OUT, S_NONE_OUT, 1, 1, 1},
    {"unsubscribed", S_BOTH, S_TO, 1, 1, 1},
};
#define N_OUT_ROWS ((int)(sizeof(out_rows) / sizeof(out_rows[0])))

START_TEST(test_outbound)
{
    const struct row *r = &out_rows[_i];
    char xml[128];
    const char *sub = NULL, *ask = NULL;
    int npush;

    preload("alice", BOB, r->from);
    alice_online();
    /* Sent to the contact's full JID: §3.1.2, routed to the bare JID. */
    snprintf(xml, sizeof(xml), "<presence type='%s'/>", r->type);
    ck_assert_int_ge(harness_inject(PHONE, BOB_FULL, xml), 0);

    ck_assert_msg(state_of("alice", BOB) == r->to,
                  "%s in state %s: state %s, RFC 6121 A.2 says %s", r->type,
                  state_names[r->from], state_names[state_of("alice", BOB)],
                  state_names[r->to]);
    if (r->routed >= 0)
        ck_assert_msg(sent_presence(r->type, ALICE, BOB) == r->routed,
                      "%s in state %s: routed %d times, expected %d", r->type,
                      state_names[r->from], sent_presence(r->type, ALICE, BOB),
                      r->routed);
    /* What is routed carries the user's bare JID (§3.1.2, §3.2.2...). */
    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *st = harness_sent_stanza(i);
        const char *t = roost_stanza_attr(st, "type");

        if (t != NULL && strcmp(t, r->type) == 0) {
            ck_assert_pstr_eq(roost_stanza_attr(st, "from"), ALICE);
            ck_assert_pstr_eq(roost_stanza_attr(st, "to"), BOB);
        }
    }
    npush = pushes(PHONE, BOB, &sub, &ask, NULL);
    ck_assert_msg(npush == r->push,
                  "%s in state %s: %d roster pushes, expected %d", r->type,
                  state_names[r->from], npush, r->push);
    if (npush > 0 && r->to != S_NONE_IN) {
        static const char *const subs[] = {"none", "none", "none", "none", "to",
                                           "to",   "from", "from", "both"};

        ck_assert_pstr_eq(sub, subs[r->to]);
        if (r->to == S_NONE_OUT || r->to == S_NONE_OUT_IN ||
            r->to == S_FROM_OUT)
            ck_assert_pstr_eq(ask, "subscribe");
        else
            ck_assert_ptr_null(ask);
    }
    if (strcmp(r->type, "subscribed") == 0)
        ck_assert_msg(sent_presence(NULL, PHONE, BOB) == r->follow,
                      "subscribed in state %s: %d presence to the contact, "
                      "expected %d (§3.1.5)",
                      state_names[r->from], sent_presence(NULL, PHONE, BOB),
                      r->follow);
    if (strcmp(r->type, "unsubscribed") == 0)
        ck_assert_msg(sent_presence("unavailable", PHONE, BOB) == r->follow,
                      "unsubscribed in state %s: %d unavailable to the "
                      "contact, expected %d (§3.2.2)",
                      state_names[r->from],
                      sent_presence("unavailable", PHONE, BOB), r->follow);
    /* Nothing of this goes back to the user's own resources as presence. */
    ck_assert_int_eq(got_presence(PHONE, r->type), 0);
}
END_TEST

/* ---- RFC 6121 Appendix A.3: inbound subscription stanzas ---- */

static const struct row in_rows[] = {
    /* A.3.1 subscribe (§3.1.3): From, From + Pending Out and Both are
     * auto-replied with subscribed, not delivered. */
    {"subscribe", S_NONE, S_NONE_IN, 1, 0, 0},
    {"subscribe", S_NONE_OUT, S_NONE_OUT_IN, 1, 0, 0},
    {"subscribe", S_NONE_IN, S_NONE_IN, -1, 0, 0},
    {"subscribe", S_NONE_OUT_IN, S_NONE_OUT_IN, -1, 0, 0},
    {"subscribe", S_TO, S_TO_IN, 1, 0, 0},
    {"subscribe", S_TO_IN, S_TO_IN, -1, 0, 0},
    {"subscribe", S_FROM, S_FROM, 0, 0, 1},
    {"subscribe", S_FROM_OUT, S_FROM_OUT, 0, 0, 1},
    {"subscribe", S_BOTH, S_BOTH, 0, 0, 1},
    /* A.3.2 subscribed (§3.1.6): only an answer to a pending request. */
    {"subscribed", S_NONE, S_NONE, 0, 0, 0},
    {"subscribed", S_NONE_OUT, S_TO, 1, 1, 0},
    {"subscribed", S_NONE_IN, S_NONE_IN, 0, 0, 0},
    {"subscribed", S_NONE_OUT_IN, S_TO_IN, 1, 1, 0},
    {"subscribed", S_TO, S_TO, 0, 0, 0},
    {"subscribed", S_TO_IN, S_TO_IN, 0, 0, 0},
    {"subscribed", S_FROM, S_FROM, 0, 0, 0},
    {"subscribed", S_FROM_OUT, S_BOTH, 1, 1, 0},
    {"subscribed", S_BOTH, S_BOTH, 0, 0, 0},
    /* A.3.3 unsubscribe (§3.3.3): unavailable from the user's resources
     * when the contact was a subscriber. */
    {"unsubscribe", S_NONE, S_NONE, 0, 0, 0},
    {"unsubscribe", S_NONE_OUT, S_NONE_OUT, 0, 0, 0},
    {"unsubscribe", S_NONE_IN, S_NONE, -1, 0, 0},
    {"unsubscribe", S_NONE_OUT_IN, S_NONE_OUT, -1, 0, 0},
    {"unsubscribe", S_TO, S_TO, 0, 0, 0},
    {"unsubscribe", S_TO_IN, S_TO, -1, 0, 0},
    {"unsubscribe", S_FROM, S_NONE, 1, 1, 1},
    {"unsubscribe", S_FROM_OUT, S_NONE_OUT, 1, 1, 1},
    {"unsubscribe", S_BOTH, S_TO, 1, 1, 1},
    /* A.3.4 unsubscribed (§3.2.3) */
    {"unsubscribed", S_NONE, S_NONE, 0, 0, 0},
    {"unsubscribed", S_NONE_OUT, S_NONE, 1, 1, 0},
    {"unsubscribed", S_NONE_IN, S_NONE_IN, 0, 0, 0},
    {"unsubscribed", S_NONE_OUT_IN, S_NONE_IN, 1, 1, 0},
    {"unsubscribed", S_TO, S_NONE, 1, 1, 0},
    {"unsubscribed", S_TO_IN, S_NONE_IN, 1, 1, 0},
    {"unsubscribed", S_FROM, S_FROM, 0, 0, 0},
    {"unsubscribed", S_FROM_OUT, S_FROM, 1, 1, 0},
    {"unsubscribed", S_BOTH, S_FROM, 1, 1, 0},
};
#define N_IN_ROWS ((int)(sizeof(in_rows) / sizeof(in_rows[0])))

START_TEST(test_inbound)
{
    const struct row *r = &in_rows[_i];
    char xml[128];
    int got, npush;

    preload("alice", BOB, r->from);
    alice_online();
    snprintf(xml, sizeof(xml), "<presence type='%s'/>", r->type);
    /* From the contact's full JID, to the user's bare JID. */
    ck_assert_int_ge(harness_inject(BOB_FULL, ALICE, xml), 0);

    ck_assert_msg(state_of("alice", BOB) == r->to,
                  "inbound %s in state %s: state %s, RFC 6121 A.3 says %s",
                  r->type, state_names[r->from],
                  state_names[state_of("alice", BOB)], state_names[r->to]);
    got = got_presence(PHONE, r->type);
    if (r->routed >= 0)
        ck_assert_msg(got == r->routed,
                      "inbound %s in state %s: delivered %d times, "
                      "expected %d",
                      r->type, state_names[r->from], got, r->routed);
    /* Delivered from the contact's bare JID (§3.1.3...). */
    for (size_t i = 0; i < harness_delivered_count(PHONE); i++) {
        roost_stanza_t *st = harness_delivered_stanza(PHONE, i);
        const char *t = roost_stanza_attr(st, "type");

        if (t != NULL && strcmp(t, r->type) == 0)
            ck_assert_pstr_eq(roost_stanza_attr(st, "from"), BOB);
    }
    npush = pushes(PHONE, BOB, NULL, NULL, NULL);
    ck_assert_msg(npush == r->push,
                  "inbound %s in state %s: %d roster pushes, expected %d",
                  r->type, state_names[r->from], npush, r->push);
    if (strcmp(r->type, "subscribe") == 0)
        ck_assert_msg(sent_presence("subscribed", ALICE, BOB) == r->follow,
                      "inbound subscribe in state %s: %d auto-replies, "
                      "expected %d (§3.1.3)",
                      state_names[r->from],
                      sent_presence("subscribed", ALICE, BOB), r->follow);
    if (strcmp(r->type, "unsubscribe") == 0)
        ck_assert_msg(sent_presence("unavailable", PHONE, BOB) == r->follow,
                      "inbound unsubscribe in state %s: %d unavailable, "
                      "expected %d (§3.3.3)",
                      state_names[r->from],
                      sent_presence("unavailable", PHONE, BOB), r->follow);
}
END_TEST

/* An inbound request waits while the user is offline and reaches her at
 * her next initial presence (§3.1.3); it survives a logout. */
START_TEST(test_request_offline)
{
    ck_assert_int_ge(
        harness_inject(BOB_FULL, ALICE, "<presence type='subscribe'/>"), 0);
    ck_assert_int_eq(state_of("alice", BOB), S_NONE_IN);
    ck_assert_int_eq(harness_roster_reload("alice"), 0);
    ck_assert_int_eq(state_of("alice", BOB), S_NONE_IN);
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_int_ge(harness_inject(PHONE, NULL, "<presence/>"), 0);
    ck_assert_int_eq(got_presence(PHONE, "subscribe"), 1);
    /* A hidden item is never in the roster. */
    ck_assert_int_eq(pushes(PHONE, BOB, NULL, NULL, NULL), 0);
}
END_TEST

/* The last subscribe delivered to jid (NULL if none). */
static roost_stanza_t *
got_subscribe(const char *jid)
{
    roost_stanza_t *found = NULL;

    for (size_t i = 0; i < harness_delivered_count(jid); i++) {
        roost_stanza_t *st = harness_delivered_stanza(jid, i);
        const char *t = roost_stanza_attr(st, "type");

        if (strcmp(roost_stanza_name(st), "presence") == 0 && t != NULL &&
            strcmp(t, "subscribe") == 0)
            found = st;
    }
    return found;
}

/* The <status/> of st in language lang (NULL: the one without xml:lang). */
static const char *
status_in(roost_stanza_t *st, const char *lang)
{
    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *l = roost_stanza_attr(c, "xml:lang");

        if (strcmp(roost_stanza_name(c), "status") == 0 &&
            (lang == NULL ? l == NULL : l != NULL && strcmp(l, lang) == 0))
            return roost_stanza_text(c);
    }
    return NULL;
}

/* The module comes back as after a restart: the user's state and roster
 * are read again from storage. */
static void
restart(void)
{
    ck_assert_int_eq(harness_storage_pending(), 0);
    harness_user_drop("alice");
    ck_assert_int_eq(harness_unload(pres), 0);
    pres = harness_load(&roost_module_presence, HOST, NULL);
    ck_assert_ptr_nonnull(pres);
    ck_assert_int_eq(harness_roster_reload("alice"), 0);
}

/* §3.1.3: a request for an offline user keeps its <status/>es (and
 * xml:lang) and is delivered with them at her initial presence, also
 * after a restart and at each later login until she answers. */
START_TEST(test_request_status)
{
    roost_stanza_t *p;

    ck_assert_int_ge(harness_inject(BOB_FULL, ALICE,
                                    "<presence type='subscribe' xml:lang='en'>"
                                    "<status>Hi, it is Bob</status>"
                                    "<status xml:lang='fr'>Salut</status>"
                                    "</presence>"),
                     0);
    ck_assert_int_eq(state_of("alice", BOB), S_NONE_IN);
    restart();
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_int_ge(harness_inject(PHONE, NULL, "<presence/>"), 0);
    p = got_subscribe(PHONE);
    ck_assert_ptr_nonnull(p);
    ck_assert_pstr_eq(roost_stanza_attr(p, "from"), BOB);
    ck_assert_pstr_eq(roost_stanza_attr(p, "to"), ALICE);
    ck_assert_pstr_eq(roost_stanza_attr(p, "xml:lang"), "en");
    ck_assert_pstr_eq(status_in(p, NULL), "Hi, it is Bob");
    ck_assert_pstr_eq(status_in(p, "fr"), "Salut");
    /* Unanswered: again at the next login. */
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    harness_clear();
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 0, 0));
    ck_assert_int_ge(harness_inject(LAPTOP, NULL, "<presence/>"), 0);
    p = got_subscribe(LAPTOP);
    ck_assert_ptr_nonnull(p);
    ck_assert_pstr_eq(status_in(p, NULL), "Hi, it is Bob");
}
END_TEST

/* The kept status is bounded (1 KiB of text, cut on a UTF-8 character
 * boundary); a request delivered at once keeps its status as sent. */
START_TEST(test_request_status_bounded)
{
    static char xml[8192];
    char *w = xml;
    roost_stanza_t *p;
    const char *t;

    w += sprintf(w, "<presence type='subscribe'><status>x");
    for (int i = 0; i < 1500; i++)
        w += sprintf(w, "\xc3\xa9"); /* U+00E9, two bytes */
    sprintf(w, "</status></presence>");
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    ck_assert_int_ge(harness_inject(BOB_FULL, ALICE, xml), 0);
    p = got_subscribe(PHONE);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(strlen(status_in(p, NULL)), 3001);
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    restart();
    harness_clear();
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 0, 0));
    ck_assert_int_ge(harness_inject(LAPTOP, NULL, "<presence/>"), 0);
    p = got_subscribe(LAPTOP);
    ck_assert_ptr_nonnull(p);
    t = status_in(p, NULL);
    ck_assert_ptr_nonnull(t);
    /* "x" and 511 characters: 1023 bytes, the 512th would not fit. */
    ck_assert_uint_eq(strlen(t), 1023);
    ck_assert_int_eq(strncmp(t,
                             xml + strlen("<presence type='subscribe'>"
                                          "<status>"),
                             1023),
                     0);
}
END_TEST

/* Once answered, the kept request is forgotten (memory and storage): a
 * later request without a status comes without one. */
START_TEST(test_request_status_answered)
{
    char *val = NULL;
    size_t len;
    roost_store_t *st;
    roost_stanza_t *p;

    ck_assert_int_ge(harness_inject(BOB_FULL, ALICE,
                                    "<presence type='subscribe'>"
                                    "<status>first</status></presence>"),
                     0);
    st = harness_store("subrequest", ROOST_STORE_MAP);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(roost_store_get(st, "alice", BOB, &val, &len), 0);
    roost_free(val);
    val = NULL;
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_int_ge(
        harness_inject(PHONE, BOB, "<presence type='unsubscribed'/>"), 0);
    ck_assert_int_eq(state_of("alice", BOB), S_NONE);
    ck_assert_int_eq(roost_store_get(st, "alice", BOB, &val, &len),
                     -ROOST_ENOTFOUND);
    ck_assert_int_ge(
        harness_inject(BOB_FULL, ALICE, "<presence type='subscribe'/>"), 0);
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    harness_clear();
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 0, 0));
    ck_assert_int_ge(harness_inject(LAPTOP, NULL, "<presence/>"), 0);
    p = got_subscribe(LAPTOP);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(status_in(p, NULL));
}
END_TEST

/* §3.4: a pre-approval is pushed with approved='true', and the contact's
 * later request is approved on the user's behalf. */
START_TEST(test_preapproval)
{
    const char *approved = NULL;

    alice_online();
    ck_assert_int_ge(
        harness_inject(PHONE, BOB, "<presence type='subscribed'/>"), 0);
    ck_assert_int_eq(harness_sent_count(), 0);
    ck_assert_int_eq(pushes(PHONE, BOB, NULL, NULL, &approved), 1);
    ck_assert_msg(approved != NULL && strcmp(approved, "true") == 0,
                  "RFC 6121 §3.4.1: the push of a pre-approved item has "
                  "approved='true'");
    harness_clear();
    ck_assert_int_ge(
        harness_inject(BOB_FULL, ALICE, "<presence type='subscribe'/>"), 0);
    ck_assert_int_eq(state_of("alice", BOB), S_FROM);
    ck_assert_int_eq(sent_presence("subscribed", ALICE, BOB), 1);
    ck_assert_int_eq(sent_presence(NULL, PHONE, BOB), 1);
    ck_assert_int_eq(got_presence(PHONE, "subscribe"), 0);
}
END_TEST

/* The stream feature of §3.4 is advertised. */
START_TEST(test_preapproval_feature)
{
    ck_assert_int_eq(harness_stream_feature_count(), 1);
}
END_TEST

/* ---- initial presence (§4.2.2) ---- */

#define C_NONE "none@remote.example"
#define C_TO   "to@remote.example"
#define C_FROM "from@remote.example"
#define C_BOTH "both@remote.example"
#define C_IN   "in@remote.example"

static void
preload_all(void)
{
    char *a = state_item(S_NONE, C_NONE), *b = state_item(S_TO, C_TO),
         *c = state_item(S_FROM, C_FROM), *d = state_item(S_BOTH, C_BOTH),
         *e = state_item(S_NONE_IN, C_IN);
    const char *kv[] = {C_NONE, a, C_TO, b, C_FROM, c,
                        C_BOTH, d, C_IN, e, NULL};

    ck_assert_int_eq(harness_roster_preload("alice", kv), 0);
    roost_free(a);
    roost_free(b);
    roost_free(c);
    roost_free(d);
    roost_free(e);
}

START_TEST(test_initial_presence)
{
    preload_all();
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_int_ge(
        harness_inject(PHONE, NULL, "<presence><show>away</show></presence>"),
        0);
    /* Probes to To and Both, from the user's JID. */
    ck_assert_int_eq(sent_presence("probe", ALICE, C_TO), 1);
    ck_assert_int_eq(sent_presence("probe", ALICE, C_BOTH), 1);
    ck_assert_int_eq(sent_presence("probe", NULL, C_FROM), 0);
    ck_assert_int_eq(sent_presence("probe", NULL, C_NONE), 0);
    ck_assert_int_eq(sent_presence("probe", NULL, C_IN), 0);
    /* Presence to From and Both, from the full JID. */
    ck_assert_int_eq(sent_presence(NULL, PHONE, C_FROM), 1);
    ck_assert_int_eq(sent_presence(NULL, PHONE, C_BOTH), 1);
    ck_assert_int_eq(sent_presence(NULL, NULL, C_TO), 0);
    ck_assert_int_eq(sent_presence(NULL, NULL, C_NONE), 0);
    ck_assert_int_eq(sent_presence(NULL, NULL, C_IN), 0);
    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *st = harness_sent_stanza(i);

        if (roost_stanza_attr(st, "type") == NULL)
            ck_assert_pstr_eq(
                roost_stanza_child_text(st, ROOST_NS_CLIENT, "show"), "away");
    }
    /* Echo to the sender (§4.2.2), and the pending request (§3.1.3). */
    ck_assert_int_eq(got_presence(PHONE, NULL), 1);
    ck_assert_int_eq(got_presence(PHONE, "subscribe"), 1);
    /* An update: no probes, presence to subscribers again (§4.4.2). */
    harness_clear();
    ck_assert_int_ge(harness_inject(PHONE, NULL, "<presence/>"), 0);
    ck_assert_int_eq(sent_presence("probe", NULL, C_TO), 0);
    ck_assert_int_eq(sent_presence(NULL, PHONE, C_FROM), 1);
    ck_assert_int_eq(sent_presence(NULL, PHONE, C_BOTH), 1);
    ck_assert_int_eq(got_presence(PHONE, "subscribe"), 0);
}
END_TEST

/* §4.2.2 and §4.4.2: the user's other available resources get the
 * presence, and the new resource gets theirs. */
START_TEST(test_own_resources)
{
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 0, 0));
    ck_assert_int_ge(harness_inject(LAPTOP, NULL, "<presence/>"), 0);
    harness_clear();
    ck_assert_int_ge(harness_inject(PHONE, NULL, "<presence/>"), 0);
    ck_assert_int_eq(got_presence(LAPTOP, NULL), 1);
    ck_assert_int_eq(got_presence(PHONE, NULL), 2); /* echo + laptop's */
    harness_clear();
    ck_assert_int_ge(
        harness_inject(PHONE, NULL, "<presence type='unavailable'/>"), 0);
    ck_assert_int_eq(got_presence(LAPTOP, "unavailable"), 1);
}
END_TEST

/* §4.2.3, §8.5.2.1.2: presence to the bare JID reaches her available
 * resources, from a contact she is subscribed to (a broadcast) and from
 * anyone else (directed presence, RFC 2779 5.3.2's exception; privacy
 * lists refuse it, see check_mod_privacy). */
START_TEST(test_inbound_presence)
{
    preload_all();
    alice_online();
    ck_assert_int_ge(harness_inject(C_TO "/x", ALICE, "<presence/>"), 0);
    ck_assert_int_eq(got_presence(PHONE, NULL), 1);
    ck_assert_int_ge(harness_inject(C_FROM "/x", ALICE, "<presence/>"), 0);
    ck_assert_int_ge(harness_inject("x@remote.example/y", ALICE, "<presence/>"),
                     0);
    ck_assert_int_eq(got_presence(PHONE, NULL), 3);
    /* Directed to the full JID: delivered (§4.6). */
    ck_assert_int_ge(harness_inject("x@remote.example/y", PHONE, "<presence/>"),
                     0);
    ck_assert_int_eq(got_presence(PHONE, NULL), 4);
}
END_TEST

/* ---- probes (§4.3.2) ---- */

START_TEST(test_probe_answers)
{
    preload_all();
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 0, 0));
    ck_assert_int_ge(
        harness_inject(PHONE, NULL, "<presence><status>hi</status></presence>"),
        0);
    ck_assert_int_ge(harness_inject(LAPTOP, NULL, "<presence/>"), 0);
    harness_clear();
    /* A subscriber gets the presence of each available resource. */
    ck_assert_int_ge(
        harness_inject(C_FROM "/x", ALICE, "<presence type='probe'/>"), 0);
    ck_assert_int_eq(sent_presence(NULL, PHONE, C_FROM "/x"), 1);
    ck_assert_int_eq(sent_presence(NULL, LAPTOP, C_FROM "/x"), 1);
    /* Not a subscriber: presence is never revealed; unsubscribed. */
    harness_clear();
    ck_assert_int_ge(
        harness_inject(C_TO "/x", ALICE, "<presence type='probe'/>"), 0);
    ck_assert_int_ge(
        harness_inject(C_NONE "/x", ALICE, "<presence type='probe'/>"), 0);
    ck_assert_int_eq(sent_presence(NULL, NULL, C_TO), 0);
    ck_assert_int_eq(sent_presence(NULL, NULL, C_NONE), 0);
    ck_assert_int_eq(sent_presence("unavailable", NULL, C_TO), 0);
    ck_assert_int_eq(sent_presence("unsubscribed", ALICE, C_TO), 1);
    /* The probe is never delivered to the user's client. */
    ck_assert_int_eq(got_presence(PHONE, "probe"), 0);
}
END_TEST

/* Offline: the last unavailable presence, with a delay stamp; after a
 * restart too (stored in "lastpresence"). */
START_TEST(test_probe_offline)
{
    roost_stanza_t *p = NULL;

    preload_all();
    /* Never online: unavailable from the bare JID. */
    ck_assert_int_ge(
        harness_inject(C_BOTH "/x", ALICE, "<presence type='probe'/>"), 0);
    ck_assert_int_eq(sent_presence("unavailable", ALICE, C_BOTH), 1);
    harness_clear();
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_int_ge(harness_inject(PHONE, NULL, "<presence/>"), 0);
    ck_assert_int_ge(harness_inject(PHONE, NULL,
                                    "<presence type='unavailable'>"
                                    "<status>gone fishing</status></presence>"),
                     0);
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_int_eq(harness_storage_pending(), 0);
    /* Restart: the module and the user's state come back from storage. */
    ck_assert_int_eq(harness_user_drop("alice"), 1);
    ck_assert_int_eq(harness_unload(pres), 0);
    pres = harness_load(&roost_module_presence, HOST, NULL);
    ck_assert_ptr_nonnull(pres);
    harness_clear();
    ck_assert_int_ge(
        harness_inject(C_FROM "/x", ALICE, "<presence type='probe'/>"), 0);
    for (size_t i = 0; i < harness_sent_count(); i++)
        if (strcmp(roost_stanza_name(harness_sent_stanza(i)), "presence") == 0)
            p = harness_sent_stanza(i);
    ck_assert_ptr_nonnull(p);
    ck_assert_pstr_eq(roost_stanza_attr(p, "type"), "unavailable");
    ck_assert_pstr_eq(roost_stanza_attr(p, "to"), C_FROM "/x");
    ck_assert_pstr_eq(roost_stanza_child_text(p, ROOST_NS_CLIENT, "status"),
                      "gone fishing");
    ck_assert_ptr_nonnull(roost_stanza_child(p, "urn:xmpp:delay", "delay"));
}
END_TEST

/* ---- unavailable at session close (§4.5.2, §4.6.3) ---- */

START_TEST(test_close_unavailable)
{
    preload_all();
    ck_assert_ptr_nonnull(harness_session_add("dave@localhost/pc", 1, 0));
    alice_online();
    /* Directed presence to a stranger (remote), a local user, and a
     * subscriber (who gets broadcasts anyway). */
    ck_assert_int_ge(
        harness_inject(PHONE, "carol@remote.example/c", "<presence/>"), 0);
    ck_assert_int_ge(harness_inject(PHONE, "dave@localhost/pc", "<presence/>"),
                     0);
    ck_assert_int_ge(harness_inject(PHONE, C_FROM "/x", "<presence/>"), 0);
    ck_assert_int_eq(sent_presence(NULL, PHONE, "carol@remote.example/c"), 1);
    ck_assert_int_eq(got_presence("dave@localhost/pc", NULL), 1);
    harness_clear();
    /* The connection drops without unavailable presence. */
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_int_eq(
        sent_presence("unavailable", PHONE, "carol@remote.example/c"), 1);
    ck_assert_int_eq(got_presence("dave@localhost/pc", "unavailable"), 1);
    /* Subscribers, once each. */
    ck_assert_int_eq(sent_presence("unavailable", PHONE, C_FROM), 1);
    ck_assert_int_eq(sent_presence("unavailable", PHONE, C_BOTH), 1);
    ck_assert_int_eq(sent_presence("unavailable", NULL, C_TO), 0);
    ck_assert_int_eq(sent_presence("unavailable", NULL, C_NONE), 0);
}
END_TEST

/* Directed unavailable ends directed presence: nothing more at close;
 * and a session that never sent presence leaves silently. */
START_TEST(test_close_after_directed_unavailable)
{
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 0, 0));
    ck_assert_ptr_nonnull(harness_session_add(LAPTOP, 0, 0));
    ck_assert_int_ge(
        harness_inject(PHONE, "carol@remote.example/c", "<presence/>"), 0);
    ck_assert_int_ge(harness_inject(PHONE, "carol@remote.example/c",
                                    "<presence type='unavailable'/>"),
                     0);
    harness_clear();
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_int_eq(harness_session_remove(LAPTOP), 0);
    ck_assert_int_eq(harness_sent_count(), 0);
}
END_TEST

/* ---- XEP-0012 ---- */

#define LAST_GET "<iq type='get' id='l1'><query xmlns='jabber:iq:last'/></iq>"

static roost_stanza_t *
last_reply(const char *to_full)
{
    for (size_t i = 0; i < harness_sent_count(); i++) {
        roost_stanza_t *st = harness_sent_stanza(i);

        if (strcmp(roost_stanza_name(st), "iq") == 0 &&
            strcmp(roost_stanza_attr(st, "to"), to_full) == 0)
            return st;
    }
    return NULL;
}

START_TEST(test_last_activity)
{
    roost_stanza_t *r, *q;

    preload_all();
    /* Not a subscriber: forbidden (XEP-0012 §5). */
    ck_assert_int_ge(harness_inject(C_TO "/x", ALICE, LAST_GET), 0);
    r = last_reply(C_TO "/x");
    ck_assert_ptr_nonnull(r);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_pstr_eq(harness_error_cond(r), "forbidden");
    /* Online: seconds='0' and no text. */
    alice_online();
    ck_assert_int_ge(harness_inject(C_FROM "/x", ALICE, LAST_GET), 0);
    r = last_reply(C_FROM "/x");
    ck_assert_ptr_nonnull(r);
    ck_assert_pstr_eq(roost_stanza_attr(r, "type"), "result");
    ck_assert_pstr_eq(roost_stanza_attr(r, "from"), ALICE);
    q = roost_stanza_child(r, "jabber:iq:last", "query");
    ck_assert_ptr_nonnull(q);
    ck_assert_pstr_eq(roost_stanza_attr(q, "seconds"), "0");
    /* Logged out with a status: the status text, seconds >= 0. */
    ck_assert_int_ge(harness_inject(PHONE, NULL,
                                    "<presence type='unavailable'>"
                                    "<status>Heading Home</status></presence>"),
                     0);
    harness_clear();
    ck_assert_int_ge(harness_inject(C_BOTH "/x", ALICE, LAST_GET), 0);
    r = last_reply(C_BOTH "/x");
    ck_assert_ptr_nonnull(r);
    q = roost_stanza_child(r, "jabber:iq:last", "query");
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_nonnull(roost_stanza_attr(q, "seconds"));
    ck_assert_int_ge(atoi(roost_stanza_attr(q, "seconds")), 0);
    ck_assert_pstr_eq(roost_stanza_text(q), "Heading Home");
}
END_TEST

/* ---- suite ---- */

/* ---- stored roster items (core/roster.c) ---- */

/* A stored value and the item it must load as (jid NULL: ignored as
 * damaged).  The first rows are the form roost_roster_item_encode writes
 * (read without expat), the others leave that form and go to expat. */
static const struct {
    const char *val;
    const char *jid, *name, *sub;
    int ask, pending_in, approved, hidden, ngroups;
    const char *group0;
} stored_rows[] = {
    {"<item jid=\"c@x\" subscription=\"both\"/>", "c@x", NULL, "both", 0, 0, 0,
     0, 0, NULL},
    {"<item jid=\"c@x\" name=\"A &amp; B &lt;&gt; &quot;q&quot; &apos;\" "
     "subscription=\"none\" ask=\"subscribe\" pending-in=\"1\" "
     "approved=\"1\" hidden=\"1\"><group>G &amp; H</group><group>2</group>"
     "</item>",
     "c@x", "A & B <> \"q\" '", "none", 1, 1, 1, 1, 2, "G & H"},
    {"<item jid=\"c@x\" name=\"\" subscription=\"to\"></item>", "c@x", "", "to",
     0, 0, 0, 0, 0, NULL},
    {"<item jid=\"d@x\" subscription=\"both\"/>", NULL, NULL, NULL, 0, 0, 0, 0,
     0, NULL}, /* not the key's item */
    {"<item jid=\"c@x\" subscription=\"all\"/>", NULL, NULL, NULL, 0, 0, 0, 0,
     0, NULL},
    /* Not the written form: expat decides. */
    {"<item jid='c@x' subscription='from'/>", "c@x", NULL, "from", 0, 0, 0, 0,
     0, NULL},
    {"<item jid=\"c@x\"  subscription=\"both\" />", "c@x", NULL, "both", 0, 0,
     0, 0, 0, NULL},
    {"<item jid=\"c@x\" name=\"a>b &#65;\xc3\xa9\" subscription=\"both\"/>",
     "c@x", "a>b A\xc3\xa9", "both", 0, 0, 0, 0, 0, NULL},
    {"<item jid=\"c@x\" name=\"a&#9;b\tc\" subscription=\"both\"/>", "c@x",
     "a\tb c", "both", 0, 0, 0, 0, 0, NULL},
    {"<item jid=\"c@x\" subscription=\"both\" extra=\"1\"/>", "c@x", NULL,
     "both", 0, 0, 0, 0, 0, NULL},
    {"<item xmlns=\"jabber:iq:roster\" jid=\"c@x\" subscription=\"both\">"
     "<group>\xc3\xa9</group><other/></item>",
     "c@x", NULL, "both", 0, 0, 0, 0, 1, "\xc3\xa9"},
    {"<item jid=\"c@x\" subscription=\"both\" jid=\"c@x\"/>", NULL, NULL, NULL,
     0, 0, 0, 0, 0, NULL}, /* not well-formed */
    {"<item jid=\"c@x\" name=\"\xff\" subscription=\"both\"/>", NULL, NULL,
     NULL, 0, 0, 0, 0, 0, NULL}, /* not UTF-8 */
    {"<item jid=\"c@x\" name=\"&bogus;\" subscription=\"both\"/>", NULL, NULL,
     NULL, 0, 0, 0, 0, 0, NULL},
    {"<item jid=\"c@x\" subscription=\"both\"><group>a]]>b</group></item>",
     NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL},
    {"<item jid=\"c@x\" subscription=\"both\"/>\n", "c@x", NULL, "both", 0, 0,
     0, 0, 0, NULL},
    {"<item jid=\"c@x\" subscription=\"both\"/><x/>", NULL, NULL, NULL, 0, 0, 0,
     0, 0, NULL},
};
#define N_STORED_ROWS ((int)(sizeof(stored_rows) / sizeof(stored_rows[0])))

START_TEST(test_roster_stored)
{
    const char *kv[] = {"c@x", stored_rows[_i].val, NULL};
    const roost_roster_item_t *it;
    int ng = 0;

    ck_assert_int_eq(harness_roster_preload("alice", kv), 0);
    it = roost_roster_item(pres, "alice", "c@x");
    if (stored_rows[_i].jid == NULL) {
        ck_assert_msg(it == NULL, "row %d loaded", _i);
        return;
    }
    ck_assert_msg(it != NULL, "row %d not loaded", _i);
    ck_assert_str_eq(it->jid, stored_rows[_i].jid);
    if (stored_rows[_i].name == NULL)
        ck_assert_ptr_null(it->name);
    else
        ck_assert_str_eq(it->name, stored_rows[_i].name);
    ck_assert_str_eq(roost_sub_name(it->sub), stored_rows[_i].sub);
    ck_assert_int_eq(!!it->ask, stored_rows[_i].ask);
    ck_assert_int_eq(!!it->pending_in, stored_rows[_i].pending_in);
    ck_assert_int_eq(!!it->approved, stored_rows[_i].approved);
    ck_assert_int_eq(!!it->hidden, stored_rows[_i].hidden);
    while (it->groups != NULL && it->groups[ng] != NULL)
        ng++;
    ck_assert_int_eq(ng, stored_rows[_i].ngroups);
    if (ng > 0)
        ck_assert_str_eq(it->groups[0], stored_rows[_i].group0);
}
END_TEST

/* 70 groups: 64 are kept, in both readers. */
START_TEST(test_roster_stored_groups)
{
    char val[2048];
    size_t n;
    const char *kv[] = {"c@x", val, NULL};
    const roost_roster_item_t *it;
    int ng = 0;

    n = (size_t)snprintf(val, sizeof(val),
                         "<item jid=\"c@x\" subscription=\"both\">");
    for (int i = 0; i < 70; i++)
        n +=
            (size_t)snprintf(val + n, sizeof(val) - n, "<group>g%d</group>", i);
    snprintf(val + n, sizeof(val) - n, "</item>");
    if (_i == 1) /* the same with a quote style only expat reads */
        memcpy(val, "<item jid='c@x' subscription='both'>", 36);
    ck_assert_int_eq(harness_roster_preload("alice", kv), 0);
    it = roost_roster_item(pres, "alice", "c@x");
    ck_assert_ptr_nonnull(it);
    while (it->groups[ng] != NULL)
        ng++;
    ck_assert_int_eq(ng, 64);
    ck_assert_str_eq(it->groups[63], "g63");
}
END_TEST

static Suite *
presence_suite(void)
{
    Suite *s = suite_create("mod_presence");
    TCase *tc;

    tc = tcase_create("appendix_a2_outbound");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_outbound, 0, N_OUT_ROWS);
    suite_add_tcase(s, tc);

    tc = tcase_create("appendix_a3_inbound");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_inbound, 0, N_IN_ROWS);
    tcase_add_test(tc, test_request_offline);
    tcase_add_test(tc, test_request_status);
    tcase_add_test(tc, test_request_status_bounded);
    tcase_add_test(tc, test_request_status_answered);
    suite_add_tcase(s, tc);

    tc = tcase_create("preapproval");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_preapproval);
    tcase_add_test(tc, test_preapproval_feature);
    suite_add_tcase(s, tc);

    tc = tcase_create("presence");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_initial_presence);
    tcase_add_test(tc, test_own_resources);
    tcase_add_test(tc, test_inbound_presence);
    suite_add_tcase(s, tc);

    tc = tcase_create("probes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_probe_answers);
    tcase_add_test(tc, test_probe_offline);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_close_unavailable);
    tcase_add_test(tc, test_close_after_directed_unavailable);
    suite_add_tcase(s, tc);

    tc = tcase_create("roster_stored");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_roster_stored, 0, N_STORED_ROWS);
    tcase_add_loop_test(tc, test_roster_stored_groups, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("last_activity");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_last_activity);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(presence_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
