/* tests/modules/check_mod_carbons.c: mod_carbons (XEP-0280) with
 * mod_message on the fake host.
 *
 * Romeo has three sessions (garden, home, orchard), Juliet one (balcony).
 * Two tables give each eligibility rule (§6) for a message Romeo sends
 * (<sent/> copies, §8) and one he receives at his full JID (<received/>
 * copies, §7); then: the wrapper's shape, bare-JID delivery by priority
 * tiers without double delivery, error correlation both ways,
 * enable/disable, <private/> stripping, forged carbons (§11) and the disco
 * feature.
 * Not for: routing itself (check_mod_message.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_message;
extern const roost_module_t roost_module_carbons;

#define NS      "urn:xmpp:carbons:2"
#define NS_FWD  "urn:xmpp:forward:0"
#define BARE    "romeo@localhost"
#define GARDEN  "romeo@localhost/garden"
#define HOME    "romeo@localhost/home"
#define ORCHARD "romeo@localhost/orchard"
#define BALCONY "juliet@localhost/balcony"

static void
setup(void)
{
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_message, "localhost", NULL));
    ck_assert_ptr_nonnull(
        harness_load(&roost_module_carbons, "localhost", NULL));
}

static void
teardown(void)
{
    ck_assert_int_eq(harness_reset(), 0);
}

static void
enable(const char *jid, const char *to)
{
    roost_stanza_t *r;

    harness_inject(jid, to,
                   "<iq type='set' id='e1'><enable xmlns='" NS "'/></iq>");
    r = harness_delivered_stanza(jid, harness_delivered_count(jid) - 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
    ck_assert_str_eq(roost_stanza_attr(r, "id"), "e1");
}

/* Romeo in three places, all available with priority 0, garden without
 * carbons, home and orchard with; Juliet on her balcony. */
static void
three(void)
{
    ck_assert_ptr_nonnull(harness_session_add(GARDEN, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(HOME, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(ORCHARD, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    enable(HOME, NULL);
    enable(ORCHARD, BARE);
    harness_clear();
}

/* The <dir/> carbon wrapper in st, or NULL. */
static roost_stanza_t *
carbon_of(roost_stanza_t *st, const char *dir)
{
    return st == NULL ? NULL : roost_stanza_child(st, NS, dir);
}

/* The message forwarded in a <dir/> carbon, checking the wrapper. */
static roost_stanza_t *
forwarded(roost_stanza_t *st, const char *dir, const char *to)
{
    roost_stanza_t *w = carbon_of(st, dir), *f, *m;

    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(roost_stanza_attr(st, "from"), BARE);
    ck_assert_str_eq(roost_stanza_attr(st, "to"), to);
    f = roost_stanza_child(w, NS_FWD, "forwarded");
    ck_assert_ptr_nonnull(f);
    m = roost_stanza_child(f, NULL, "message");
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(roost_stanza_ns(m), "jabber:client");
    return m;
}

struct elig {
    const char *what;
    const char *xml;
    int copied;
};

/* §6 (and §9, XEP-0334): one row per rule. */
static const struct elig rows[] = {
    {"chat", "<message type='chat' id='m'><body>hi</body></message>", 1},
    {"chat state",
     "<message type='chat' id='m'><active "
     "xmlns='http://jabber.org/protocol/chatstates'/></message>",
     1},
    {"normal+body", "<message type='normal' id='m'><body>hi</body></message>",
     1},
    {"no type+body", "<message id='m'><body>hi</body></message>", 1},
    {"unknown type+body", "<message type='x' id='m'><body>hi</body></message>",
     1},
    {"normal, no body",
     "<message id='m'><request xmlns='urn:xmpp:receipts'/></message>", 0},
    {"headline", "<message type='headline' id='m'><body>hi</body></message>",
     0},
    {"groupchat", "<message type='groupchat' id='m'><body>hi</body></message>",
     0},
    {"error, unrelated",
     "<message type='error' id='zz'><error type='cancel'><item-not-found "
     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
     0},
    {"private",
     "<message type='chat' id='m'><body>hi</body><private xmlns='" NS
     "'/><no-copy xmlns='urn:xmpp:hints'/></message>",
     0},
    {"private alone",
     "<message type='chat' id='m'><body>hi</body><private xmlns='" NS
     "'/></message>",
     0},
    {"no-copy alone",
     "<message type='chat' id='m'><body>hi</body><no-copy "
     "xmlns='urn:xmpp:hints'/></message>",
     0},
};

#define NROWS ((int)(sizeof(rows) / sizeof(rows[0])))

START_TEST(test_sent_rules)
{
    const struct elig *r = &rows[_i];
    const char *others[] = {HOME, ORCHARD};

    three();
    harness_inject(GARDEN, BALCONY, r->xml);
    /* The original reaches Juliet in any case. */
    ck_assert_msg(harness_delivered_count(BALCONY) == 1, "%s", r->what);
    ck_assert_msg(harness_delivered_count(GARDEN) == 0, "%s", r->what);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(harness_delivered_count(others[i]) == (size_t)r->copied,
                      "%s: %s got %zu", r->what, others[i],
                      harness_delivered_count(others[i]));
        if (r->copied) {
            roost_stanza_t *st = harness_delivered_stanza(others[i], 0);
            roost_stanza_t *m = forwarded(st, "sent", others[i]);

            ck_assert_str_eq(roost_stanza_attr(m, "from"), GARDEN);
            ck_assert_str_eq(roost_stanza_attr(m, "to"), BALCONY);
        }
    }
}
END_TEST

START_TEST(test_received_rules)
{
    const struct elig *r = &rows[_i];
    const char *others[] = {HOME, ORCHARD};

    three();
    harness_inject(BALCONY, GARDEN, r->xml);
    ck_assert_msg(harness_delivered_count(GARDEN) == 1, "%s", r->what);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(harness_delivered_count(others[i]) == (size_t)r->copied,
                      "%s: %s got %zu", r->what, others[i],
                      harness_delivered_count(others[i]));
        if (r->copied) {
            roost_stanza_t *st = harness_delivered_stanza(others[i], 0);
            roost_stanza_t *m = forwarded(st, "received", others[i]);

            ck_assert_str_eq(roost_stanza_attr(m, "from"), BALCONY);
            ck_assert_str_eq(roost_stanza_attr(m, "to"), GARDEN);
        }
    }
}
END_TEST

/* The wrapper keeps the type; the forwarded message is in jabber:client
 * (XEP-0297) with its payload. */
START_TEST(test_wrapper_shape)
{
    roost_stanza_t *st, *m;
    const char *xml;

    three();
    harness_inject(BALCONY, GARDEN,
                   "<message type='chat' id='w1'><body>wherefore</body>"
                   "<thread>t1</thread></message>");
    st = harness_delivered_stanza(HOME, 0);
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "chat");
    m = forwarded(st, "received", HOME);
    ck_assert_str_eq(roost_stanza_attr(m, "id"), "w1");
    ck_assert_str_eq(roost_stanza_child_text(m, NULL, "body"), "wherefore");
    ck_assert_str_eq(roost_stanza_child_text(m, NULL, "thread"), "t1");
    xml = harness_delivered(HOME)[0];
    ck_assert_ptr_nonnull(
        strstr(xml, "<forwarded xmlns=\"urn:xmpp:forward:0\"><message "
                    "xmlns=\"jabber:client\""));
    /* No type on the original: none on the wrapper. */
    harness_clear();
    harness_inject(BALCONY, GARDEN, "<message><body>x</body></message>");
    st = harness_delivered_stanza(HOME, 0);
    ck_assert_ptr_null(roost_stanza_attr(st, "type"));
}
END_TEST

/* A message without 'to' goes to the sender's own bare JID (RFC 6120
 * §10.3): the sent copy says so. */
START_TEST(test_sent_without_to)
{
    roost_stanza_t *m;

    three();
    harness_inject(GARDEN, NULL,
                   "<message type='chat' id='n1'><body>note</body></message>");
    m = forwarded(harness_delivered_stanza(HOME, 0), "sent", HOME);
    ck_assert_str_eq(roost_stanza_attr(m, "to"), BARE);
}
END_TEST

/* XEP-0359 §4 rule 3: a stanza-id the client put in its own message,
 * claiming to be by its account's archive or by the server, is not in the
 * sent copies (the other resources would take it for an archive id);
 * another entity's stanza-id and the origin-id are kept. */
START_TEST(test_sent_forged_stanza_id)
{
    roost_stanza_t *m;
    int ours = 0, other = 0;

    three();
    harness_inject(GARDEN, BALCONY,
                   "<message type='chat' id='f1'><body>hi</body>"
                   "<stanza-id xmlns='urn:xmpp:sid:0' by='romeo@localhost' "
                   "id='forged'/>"
                   "<stanza-id xmlns='urn:xmpp:sid:0' by='LocalHost' "
                   "id='forged2'/>"
                   "<stanza-id xmlns='urn:xmpp:sid:0' by='muc.example' "
                   "id='keep'/>"
                   "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>");
    m = forwarded(harness_delivered_stanza(HOME, 0), "sent", HOME);
    for (roost_stanza_t *c = roost_stanza_first_child(m); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        if (strcmp(roost_stanza_name(c), "stanza-id") != 0)
            continue;
        if (strcmp(roost_stanza_attr(c, "id"), "keep") == 0)
            other++;
        else
            ours++;
    }
    ck_assert_int_eq(ours, 0);
    ck_assert_int_eq(other, 1);
    ck_assert_ptr_nonnull(roost_stanza_child(m, "urn:xmpp:sid:0", "origin-id"));
}
END_TEST

/* §8: the sending session gets no copy even with carbons on. */
START_TEST(test_sender_enabled)
{
    three();
    enable(GARDEN, NULL);
    harness_clear();
    harness_inject(GARDEN, BALCONY,
                   "<message type='chat'><body>hi</body></message>");
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 0);
    ck_assert_uint_eq(harness_delivered_count(HOME), 1);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 1);
}
END_TEST

/* §7 for the bare JID: mod_message gives the original to the top tier;
 * carbons-enabled sessions outside it get a copy, none gets both. */
START_TEST(test_bare_tiers)
{
    ck_assert_ptr_nonnull(harness_session_add(GARDEN, 1, 5));
    ck_assert_ptr_nonnull(harness_session_add(HOME, 1, 5));
    ck_assert_ptr_nonnull(harness_session_add(ORCHARD, 1, 1));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    enable(GARDEN, NULL);
    enable(HOME, NULL);
    enable(ORCHARD, NULL);
    harness_clear();
    harness_inject(BALCONY, BARE,
                   "<message type='chat'><body>hi</body></message>");
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 1);
    ck_assert_uint_eq(harness_delivered_count(HOME), 1);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 1);
    ck_assert_ptr_null(
        carbon_of(harness_delivered_stanza(GARDEN, 0), "received"));
    ck_assert_ptr_null(
        carbon_of(harness_delivered_stanza(HOME, 0), "received"));
    forwarded(harness_delivered_stanza(ORCHARD, 0), "received", ORCHARD);
}
END_TEST

/* Unavailable or negative-priority sessions never get a bare-JID message
 * from mod_message: with carbons they get a copy. */
START_TEST(test_bare_unavailable)
{
    ck_assert_ptr_nonnull(harness_session_add(GARDEN, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(HOME, 0, 0));
    ck_assert_ptr_nonnull(harness_session_add(ORCHARD, 1, -1));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    enable(GARDEN, NULL);
    enable(HOME, NULL);
    enable(ORCHARD, NULL);
    harness_clear();
    harness_inject(BALCONY, BARE, "<message><body>hi</body></message>");
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 1);
    ck_assert_ptr_null(
        carbon_of(harness_delivered_stanza(GARDEN, 0), "received"));
    forwarded(harness_delivered_stanza(HOME, 0), "received", HOME);
    forwarded(harness_delivered_stanza(ORCHARD, 0), "received", ORCHARD);
}
END_TEST

/* A full JID without session is delivered as to the bare JID (RFC 6121
 * §8.5.3.2.1): the copies follow the bare rule. */
START_TEST(test_full_without_session)
{
    ck_assert_ptr_nonnull(harness_session_add(GARDEN, 1, 3));
    ck_assert_ptr_nonnull(harness_session_add(HOME, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    enable(GARDEN, NULL);
    enable(HOME, NULL);
    harness_clear();
    harness_inject(BALCONY, "romeo@localhost/gone",
                   "<message type='chat'><body>hi</body></message>");
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 1);
    ck_assert_ptr_null(
        carbon_of(harness_delivered_stanza(GARDEN, 0), "received"));
    forwarded(harness_delivered_stanza(HOME, 0), "received", HOME);
}
END_TEST

/* §6 third rule: an error answering an eligible message is copied; both
 * directions, matched by id and peer. */
START_TEST(test_error_correlated)
{
    static const char err[] =
        "<message type='error' id='%s'><error type='cancel'><item-not-found "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
    char buf[512];

    three();
    harness_inject(GARDEN, BALCONY,
                   "<message type='chat' id='m1'><body>hi</body></message>");
    harness_clear();
    snprintf(buf, sizeof(buf), err, "m1");
    harness_inject(BALCONY, GARDEN, buf);
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 1);
    forwarded(harness_delivered_stanza(HOME, 0), "received", HOME);
    forwarded(harness_delivered_stanza(ORCHARD, 0), "received", ORCHARD);
    /* Same id from someone else: not an answer. */
    harness_clear();
    ck_assert_ptr_nonnull(harness_session_add("tybalt@localhost/x", 1, 0));
    harness_inject("tybalt@localhost/x", GARDEN, buf);
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
    /* A bounce from Juliet's server counts. */
    harness_clear();
    harness_inject("localhost", GARDEN, buf);
    ck_assert_uint_eq(harness_delivered_count(HOME), 1);

    /* Outgoing: Romeo's garden answers Juliet's message with an error. */
    harness_clear();
    harness_inject(BALCONY, GARDEN,
                   "<message type='chat' id='q1'><body>hey</body></message>");
    harness_clear();
    snprintf(buf, sizeof(buf), err, "q1");
    harness_inject(GARDEN, BALCONY, buf);
    ck_assert_uint_eq(harness_delivered_count(BALCONY), 1);
    forwarded(harness_delivered_stanza(HOME, 0), "sent", HOME);
    /* An error to a message garden never got: no copy. */
    harness_clear();
    snprintf(buf, sizeof(buf), err, "q2");
    harness_inject(GARDEN, BALCONY, buf);
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
}
END_TEST

/* §6: nothing a MUC room sends (muc#user <x/>: private messages). */
START_TEST(test_muc_pm)
{
    three();
    harness_inject("room@muc.example.net/nurse", GARDEN,
                   "<message type='chat'><body>hi</body><x "
                   "xmlns='http://jabber.org/protocol/muc#user'/></message>");
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 1);
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 0);
}
END_TEST

/* §9: the recipient's server removes <private/> (full JID). */
START_TEST(test_private_stripped)
{
    roost_stanza_t *st;

    three();
    harness_inject(BALCONY, GARDEN,
                   "<message type='chat'><body>hi</body><private xmlns='" NS
                   "'/><no-copy xmlns='urn:xmpp:hints'/></message>");
    st = harness_delivered_stanza(GARDEN, 0);
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_null(roost_stanza_child(st, NS, "private"));
    ck_assert_ptr_nonnull(roost_stanza_child(st, "urn:xmpp:hints", "no-copy"));
    ck_assert_str_eq(roost_stanza_child_text(st, NULL, "body"), "hi");
    /* Romeo's private message: no copies, and Juliet (on this server
     * too) gets it stripped. */
    harness_clear();
    harness_inject(GARDEN, BALCONY,
                   "<message type='chat'><body>hi</body><private xmlns='" NS
                   "'/></message>");
    st = harness_delivered_stanza(BALCONY, 0);
    ck_assert_ptr_null(roost_stanza_child(st, NS, "private"));
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
}
END_TEST

/* §9 for a message to the bare JID: each resource mod_message delivers
 * to (RFC 6121 §8.5.2.1.1; the note of §9) gets it without <private/>,
 * and nobody a copy. */
START_TEST(test_private_stripped_bare)
{
    static const char *const all[] = {GARDEN, HOME, ORCHARD};

    three();
    harness_inject(BALCONY, BARE,
                   "<message type='chat' id='p'><body>hi</body><private "
                   "xmlns='" NS "'/></message>");
    for (int i = 0; i < 3; i++) {
        roost_stanza_t *st;

        ck_assert_uint_eq(harness_delivered_count(all[i]), 1);
        st = harness_delivered_stanza(all[i], 0);
        ck_assert_ptr_null(carbon_of(st, "received"));
        ck_assert_ptr_null(roost_stanza_child(st, NS, "private"));
        ck_assert_str_eq(roost_stanza_child_text(st, NULL, "body"), "hi");
    }
    /* a headline goes to all of them (RFC 6121 §8.5.2.1.1), stripped */
    harness_clear();
    harness_inject(BALCONY, BARE,
                   "<message type='headline'><body>h</body><private "
                   "xmlns='" NS "'/></message>");
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(harness_delivered_count(all[i]), 1);
        ck_assert_ptr_null(roost_stanza_child(
            harness_delivered_stanza(all[i], 0), NS, "private"));
    }
}
END_TEST

static roost_verdict_t
refuse_garden(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    return strcmp(roost_jid_full(ev->to), GARDEN) == 0 ? ROOST_HANDLED
                                                       : ROOST_PASS;
}

/* The same when only the highest priority gets the original: home and
 * orchard (carbons enabled, outside that tier) get no copy of it; when
 * the top tier refuses it, the next one gets it, stripped (RFC 6121
 * §8.5.2.1.1 as mod_message does it). */
START_TEST(test_private_bare_tier)
{
    ck_assert_ptr_nonnull(harness_session_add(GARDEN, 1, 5));
    ck_assert_ptr_nonnull(harness_session_add(HOME, 1, 1));
    ck_assert_ptr_nonnull(harness_session_add(ORCHARD, 1, 1));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    enable(HOME, NULL);
    enable(ORCHARD, NULL);
    harness_clear();
    harness_inject(BALCONY, BARE,
                   "<message type='chat' id='q'><body>hi</body><private "
                   "xmlns='" NS "'/></message>");
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 1);
    ck_assert_ptr_null(
        roost_stanza_child(harness_delivered_stanza(GARDEN, 0), NS, "private"));
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 0);
    /* garden refuses it (its own privacy list, say): the next tier */
    harness_clear();
    ck_assert_int_eq(roost_hook(harness_mod("carbons"), ROOST_EV_DELIVER,
                                ROOST_PRIO_FILTER, refuse_garden, NULL),
                     0);
    harness_deliver_hooks(1);
    harness_inject(BALCONY, BARE,
                   "<message type='chat' id='r'><body>hi</body><private "
                   "xmlns='" NS "'/></message>");
    harness_deliver_hooks(0);
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 0);
    ck_assert_uint_eq(harness_delivered_count(HOME), 1);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 1);
    ck_assert_ptr_null(
        roost_stanza_child(harness_delivered_stanza(HOME, 0), NS, "private"));
    ck_assert_ptr_null(
        carbon_of(harness_delivered_stanza(ORCHARD, 0), "received"));
}
END_TEST

/* A stand-in for offline storage (ROOST_PRIO_FALLBACK): keeps a copy of
 * what reaches it. */
static roost_stanza_t *stored;

static roost_verdict_t
fake_store(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    roost_stanza_unref(stored);
    stored = roost_stanza_copy(ev->stanza);
    return ROOST_HANDLED;
}

static int
fake_store_load(roost_mod_t *m)
{
    return roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_FALLBACK, fake_store,
                      NULL);
}

static const roost_module_t fake_offline = {
    .abi = ROOST_ABI,
    .name = "fakeoffline",
    .load = fake_store_load,
};

/* The stripped message replaces the original for every later hook
 * (roost_event_replace): mod_message delivers it by its own rules, and
 * when nobody is available it is what offline storage gets. */
START_TEST(test_private_replaced)
{
    ck_assert_ptr_nonnull(harness_load(&fake_offline, "localhost", NULL));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    harness_inject(BALCONY, BARE,
                   "<message type='chat' id='o'><body>hi</body><private "
                   "xmlns='" NS "'/></message>");
    ck_assert_int_eq(harness_replace_count(), 1);
    ck_assert_ptr_nonnull(stored);
    ck_assert_str_eq(roost_stanza_attr(stored, "id"), "o");
    ck_assert_str_eq(roost_stanza_child_text(stored, NULL, "body"), "hi");
    ck_assert_ptr_null(roost_stanza_child(stored, NS, "private"));
    roost_stanza_unref(stored);
    stored = NULL;
}
END_TEST

/* §11: a carbon from anyone but the user's bare JID is dropped; one
 * from the bare JID (a copy routed again) goes on, never copied. */
START_TEST(test_forged)
{
    static const char forged[] =
        "<message type='chat'><received xmlns='" NS
        "'><forwarded xmlns='" NS_FWD "'><message type='chat' "
        "from='tybalt@localhost/x' to='" GARDEN
        "'><body>lies</body></message></forwarded></received></message>";

    three();
    harness_inject(BALCONY, GARDEN, forged);
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 0);
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
    harness_inject(BALCONY, BARE, forged);
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 0);
    /* From Romeo's own full JID is not from his bare JID either. */
    harness_inject(HOME, GARDEN, forged);
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 0);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 0);
    /* From the bare JID: delivered, not copied. */
    harness_inject(BARE, GARDEN, forged);
    ck_assert_uint_eq(harness_delivered_count(GARDEN), 1);
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 0);
}
END_TEST

/* §4, §5, §10.1: enable and disable, repeatedly, per session; to the
 * host it is not for the session (service-unavailable from the core). */
START_TEST(test_enable_disable)
{
    roost_stanza_t *r;

    ck_assert_ptr_nonnull(harness_session_add(GARDEN, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(HOME, 1, 0));
    ck_assert_ptr_nonnull(harness_session_add(BALCONY, 1, 0));
    enable(HOME, NULL);
    enable(HOME, BARE);
    harness_clear();
    harness_inject(GARDEN, BALCONY, "<message type='chat'/>");
    ck_assert_uint_eq(harness_delivered_count(HOME), 1);
    harness_inject(HOME, NULL,
                   "<iq type='set' id='d1'><disable xmlns='" NS "'/></iq>");
    r = harness_delivered_stanza(HOME, 1);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
    harness_inject(HOME, NULL,
                   "<iq type='set' id='d2'><disable xmlns='" NS "'/></iq>");
    r = harness_delivered_stanza(HOME, 2);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
    harness_clear();
    harness_inject(GARDEN, BALCONY, "<message type='chat'/>");
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
    /* Never enabled: a disable is still fine. */
    harness_inject(GARDEN, NULL,
                   "<iq type='set' id='d3'><disable xmlns='" NS "'/></iq>");
    r = harness_delivered_stanza(GARDEN, 0);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "result");
    /* To the host. */
    harness_clear();
    harness_inject(GARDEN, "localhost",
                   "<iq type='set' id='h1'><enable xmlns='" NS "'/></iq>");
    r = harness_delivered_stanza(GARDEN, 0);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "error");
    ck_assert_str_eq(harness_error_cond(r), "service-unavailable");
    /* A get is not a toggle. */
    harness_clear();
    harness_inject(GARDEN, NULL,
                   "<iq type='get' id='g1'><enable xmlns='" NS "'/></iq>");
    r = harness_delivered_stanza(GARDEN, 0);
    ck_assert_str_eq(roost_stanza_attr(r, "type"), "error");
}
END_TEST

/* A session's state goes with it; a new session with that resource
 * starts without carbons. */
START_TEST(test_session_closed)
{
    three();
    ck_assert_int_eq(harness_session_remove(HOME), 0);
    ck_assert_ptr_nonnull(harness_session_add(HOME, 1, 0));
    harness_inject(GARDEN, BALCONY,
                   "<message type='chat' id='c'><body>hi</body></message>");
    ck_assert_uint_eq(harness_delivered_count(HOME), 0);
    ck_assert_uint_eq(harness_delivered_count(ORCHARD), 1);
}
END_TEST

START_TEST(test_disco_feature)
{
    ck_assert_int_eq(harness_feature_count(), 1);
    ck_assert_int_eq(harness_unload(harness_mod("carbons")), 0);
    ck_assert_int_eq(harness_feature_count(), 0);
    ck_assert_int_eq(harness_hook_count(ROOST_EV_PRE_STANZA), 0);
}
END_TEST

static Suite *
carbons_suite(void)
{
    Suite *s = suite_create("mod_carbons");
    TCase *tc = tcase_create("eligibility");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_sent_rules, 0, NROWS);
    tcase_add_loop_test(tc, test_received_rules, 0, NROWS);
    tcase_add_test(tc, test_error_correlated);
    tcase_add_test(tc, test_muc_pm);
    suite_add_tcase(s, tc);

    tc = tcase_create("delivery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_wrapper_shape);
    tcase_add_test(tc, test_sent_without_to);
    tcase_add_test(tc, test_sent_forged_stanza_id);
    tcase_add_test(tc, test_sender_enabled);
    tcase_add_test(tc, test_bare_tiers);
    tcase_add_test(tc, test_bare_unavailable);
    tcase_add_test(tc, test_full_without_session);
    tcase_add_test(tc, test_private_stripped);
    tcase_add_test(tc, test_private_stripped_bare);
    tcase_add_test(tc, test_private_bare_tier);
    tcase_add_test(tc, test_private_replaced);
    tcase_add_test(tc, test_forged);
    suite_add_tcase(s, tc);

    tc = tcase_create("protocol");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_enable_disable);
    tcase_add_test(tc, test_session_closed);
    tcase_add_test(tc, test_disco_feature);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(carbons_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
