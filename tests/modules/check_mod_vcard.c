/* tests/modules/check_mod_vcard.c: mod_vcard (XEP-0054) on the fake host
 * with the real in-memory storage.
 *
 * Covers: setting one's own vCard (§2.2, no 'to' or to the own bare JID)
 * and reading it back (§2.1), whole replacement, the empty <vCard/> when
 * none is stored; reading another user's vCard while that user is offline
 * (§2.3), service-unavailable when they have none; a set on someone else's
 * JID or on the server refused with forbidden, a get to the server
 * item-not-found; max_size (not-acceptable, nothing stored); persistence
 * across a restart; a get right after a set (the storage worker's order);
 * avatars (XEP-0398): a vCard PHOTO published to PEP (data, metadata,
 * open nodes, hash, bytes, type, size), removal, strict base64, the
 * vcard-temp:x:update hash in broadcast and directed presence and the
 * client's own <x/> (replaced, or left with an empty <photo/>), the hash
 * known at login, a PEP avatar handed over by mod_pep (stored, removed,
 * refused on a bad hash, from a client, over max_size), the account
 * feature.  A stand-in module plays mod_pep.
 * Not for: storage drivers (tests/unit/check_storage.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

extern const roost_module_t roost_module_vcard;

#define HOST  "localhost"
#define PHONE "alice@localhost/phone"
#define BOB   "bob@localhost/desk"
#define NS    "vcard-temp"

#define CARD_FN(fn)                                                            \
    "<vCard xmlns='" NS "'><FN>" fn "</FN><NICKNAME>al</NICKNAME></vCard>"

/* Mirrors struct vcard_conf in modules/mod_vcard.c. */
struct vcard_conf_view {
    int64_t max_size;
};

static void
setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
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
assert_result(const roost_stanza_t *st, const char *id)
{
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "result");
    ck_assert_str_eq(roost_stanza_attr(st, "id"), id);
}

static void
assert_error(const roost_stanza_t *st, const char *cond)
{
    ck_assert_str_eq(roost_stanza_attr(st, "type"), "error");
    ck_assert_ptr_nonnull(harness_error_cond(st));
    ck_assert_str_eq(harness_error_cond(st), cond);
}

static void
set_card(const char *from, const char *to, const char *card)
{
    char xml[70000];

    snprintf(xml, sizeof(xml), "<iq type='set' id='s'>%s</iq>", card);
    ck_assert_int_eq(harness_inject(from, to, xml), ROOST_HANDLED);
}

static roost_stanza_t *
get_card(const char *from, const char *to)
{
    harness_inject(from, to,
                   "<iq type='get' id='g'><vCard xmlns='" NS "'/></iq>");
    return last(from);
}

/* The FN of the vCard in result r, or NULL. */
static const char *
fn_of(const roost_stanza_t *r)
{
    roost_stanza_t *card = roost_stanza_child(r, NS, "vCard");

    ck_assert_ptr_nonnull(card);
    return roost_stanza_child_text(card, NS, "FN");
}

/* ---- own vCard ---- */

/* §2.2 then §2.1, with no 'to' and with the own bare JID. */
static const char *const own_to[] = {NULL, "alice@localhost"};

START_TEST(test_set_get_own)
{
    roost_stanza_t *r;

    set_card(PHONE, own_to[_i], CARD_FN("Alice"));
    assert_result(last(PHONE), "s");
    ck_assert_ptr_null(roost_stanza_first_child(last(PHONE)));
    r = get_card(PHONE, own_to[_i]);
    assert_result(r, "g");
    ck_assert_str_eq(fn_of(r), "Alice");
    ck_assert_str_eq(roost_stanza_child_text(roost_stanza_child(r, NS, "vCard"),
                                             NS, "NICKNAME"),
                     "al");
}
END_TEST

/* §2.2: a set replaces the whole vCard (no partial update). */
START_TEST(test_replace_whole)
{
    roost_stanza_t *r, *card;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    set_card(PHONE, NULL, "<vCard xmlns='" NS "'><FN>Alice B</FN></vCard>");
    r = get_card(PHONE, NULL);
    card = roost_stanza_child(r, NS, "vCard");
    ck_assert_str_eq(fn_of(r), "Alice B");
    ck_assert_ptr_null(roost_stanza_child(card, NS, "NICKNAME"));
}
END_TEST

/* §2.1: no vCard yet: an empty <vCard/>. */
START_TEST(test_get_own_none)
{
    roost_stanza_t *r = get_card(PHONE, NULL), *card;

    assert_result(r, "g");
    card = roost_stanza_child(r, NS, "vCard");
    ck_assert_ptr_nonnull(card);
    ck_assert_ptr_null(roost_stanza_first_child(card));
}
END_TEST

/* The storage worker runs jobs in order: a get issued before the set is
 * answered sees it. */
START_TEST(test_get_after_set_in_flight)
{
    harness_storage_hold(1);
    set_card(PHONE, NULL, CARD_FN("Alice"));
    harness_inject(PHONE, NULL,
                   "<iq type='get' id='g'><vCard xmlns='" NS "'/></iq>");
    ck_assert_uint_eq(harness_delivered_count(PHONE), 0);
    harness_storage_hold(0);
    harness_storage_run();
    ck_assert_uint_eq(harness_delivered_count(PHONE), 2);
    assert_result(harness_delivered_stanza(PHONE, 0), "s");
    ck_assert_str_eq(fn_of(harness_delivered_stanza(PHONE, 1)), "Alice");
}
END_TEST

/* Stored, not cached: the vCard survives a restart of the module. */
START_TEST(test_restart)
{
    set_card(PHONE, NULL, CARD_FN("Alice"));
    ck_assert_int_eq(harness_unload(harness_mod("vcard")), 0);
    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, NULL));
    ck_assert_str_eq(fn_of(get_card(PHONE, NULL)), "Alice");
}
END_TEST

/* ---- other users' vCards ---- */

/* §2.3: bob reads alice's vCard while alice is offline. */
START_TEST(test_get_other_offline)
{
    roost_stanza_t *r;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    ck_assert_int_eq(harness_session_remove(PHONE), 0);
    ck_assert_ptr_nonnull(harness_session_add(BOB, 1, 0));
    r = get_card(BOB, "alice@localhost");
    assert_result(r, "g");
    ck_assert_str_eq(roost_stanza_attr(r, "from"), "alice@localhost");
    ck_assert_str_eq(fn_of(r), "Alice");
}
END_TEST

/* A remote requester gets it too. */
START_TEST(test_get_other_remote)
{
    roost_stanza_t *r;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    harness_clear();
    harness_inject("carol@remote.example/x", "alice@localhost",
                   "<iq type='get' id='g'><vCard xmlns='" NS "'/></iq>");
    ck_assert_uint_eq(harness_sent_count(), 1);
    r = harness_sent_stanza(0);
    assert_result(r, "g");
    ck_assert_str_eq(fn_of(r), "Alice");
}
END_TEST

/* §2.3: no vCard: service-unavailable (as for no account). */
START_TEST(test_get_other_none)
{
    ck_assert_ptr_nonnull(harness_session_add(BOB, 1, 0));
    assert_error(get_card(BOB, "alice@localhost"), "service-unavailable");
}
END_TEST

/* §2.2: only one's own vCard may be set; the target's stays as it was. */
START_TEST(test_set_other_forbidden)
{
    ck_assert_ptr_nonnull(harness_session_add(BOB, 1, 0));
    set_card(PHONE, NULL, CARD_FN("Alice"));
    set_card(BOB, "alice@localhost", CARD_FN("Mallory"));
    assert_error(last(BOB), "forbidden");
    ck_assert_str_eq(fn_of(get_card(PHONE, NULL)), "Alice");
}
END_TEST

/* The server has no vCard (as Prosody). */
START_TEST(test_server)
{
    assert_error(get_card(PHONE, HOST), "item-not-found");
    set_card(PHONE, HOST, CARD_FN("Server"));
    assert_error(last(PHONE), "forbidden");
}
END_TEST

/* XEP-0054 §3: the feature. */
START_TEST(test_disco_feature)
{
    ck_assert_int_eq(harness_feature_count(), 1);
}
END_TEST

/* ---- max_size ---- */

static void
conf_small(void *c)
{
    ((struct vcard_conf_view *)c)->max_size = 256;
}

/* Over max_size: not-acceptable, nothing stored; at the limit: stored. */
START_TEST(test_max_size)
{
    char card[1024], pad[400];
    size_t base;

    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, conf_small));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    /* The stored form is the standalone element: size it exactly. */
    snprintf(card, sizeof(card), "<vCard xmlns='" NS "'><FN></FN></vCard>");
    base = strlen(card);
    memset(pad, 'x', sizeof(pad));
    pad[256 - base] = '\0';
    snprintf(card, sizeof(card), "<vCard xmlns='" NS "'><FN>%s</FN></vCard>",
             pad);
    ck_assert_uint_eq(strlen(card), 256);
    set_card(PHONE, NULL, card);
    assert_result(last(PHONE), "s");
    pad[256 - base] = 'x';
    pad[257 - base] = '\0';
    snprintf(card, sizeof(card), "<vCard xmlns='" NS "'><FN>%s</FN></vCard>",
             pad);
    set_card(PHONE, NULL, card);
    assert_error(last(PHONE), "not-acceptable");
    /* The previous one stays. */
    ck_assert_uint_eq(strlen(fn_of(get_card(PHONE, NULL))), 256 - base);
}
END_TEST

/* ---- avatars (XEP-0398, XEP-0153, XEP-0084) ---- */

#define PS    "http://jabber.org/protocol/pubsub"
#define AVD   "urn:xmpp:avatar:data"
#define AVM   "urn:xmpp:avatar:metadata"
#define UPD   "vcard-temp:x:update"
#define ALICE "alice@localhost"
/* A 2x3 PNG (73 bytes), its base64 and SHA-1. */
#define PNG_B64                                                                \
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAIAAAA2iEnWAAAAEElEQVR4nGP4z8AARAwoFABE" \
    "0AX7pM/egAAAAABJRU5ErkJggg=="
#define PNG_SHA1 "94458be1f7b2ef1fe17a4bae328e75cc134ea5c9"
/* A GIF header saying 5x4 (20 bytes), wrapped as vCards do. */
#define GIF_B64_WRAPPED "R0lGODlhBQAEAAAA\n  AAAAAAAAAAA="
#define GIF_B64         "R0lGODlhBQAEAAAAAAAAAAAAAAA="
#define GIF_SHA1        "4db09ee521b8487158053490a7905b8d641e170a"

#define CARD_PHOTO(type, b64)                                                  \
    "<vCard xmlns='" NS "'><FN>Alice</FN><PHOTO>" type "<BINVAL>" b64          \
    "</BINVAL></PHOTO></vCard>"
#define CARD_PNG CARD_PHOTO("<TYPE>image/png</TYPE>", PNG_B64)

/* A stand-in for mod_pep and mod_presence: records the pubsub IQ sets it
 * gets (answering them), and sends the account's broadcast presence on as
 * mod_presence does: to a remote contact (roost_send) and to the
 * account's other resource TABLET (roost_session_deliver). */
#define FAKE_MAX 16
#define CONTACT  "bob@remote.example"
#define TABLET   "alice@localhost/tablet"
static roost_stanza_t *fake_iqs[FAKE_MAX];
static int fake_niq;

static roost_verdict_t
fake_pubsub(const roost_ev_t *ev, void *arg)
{
    (void)arg;
    ck_assert_int_lt(fake_niq, FAKE_MAX);
    fake_iqs[fake_niq++] = roost_stanza_copy(ev->stanza);
    return roost_reply(ev, NULL);
}

static roost_verdict_t
fake_presence(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *c = roost_stanza_copy(ev->stanza);
    roost_jid_t *tablet = roost_jid_new(TABLET);
    roost_session_t *s = roost_session_find(ev->mod, tablet);

    (void)arg;
    roost_jid_free(tablet);
    roost_stanza_set_attr(c, "to", CONTACT);
    roost_send(ev->mod, c);
    if (s != NULL && s != ev->origin) {
        roost_stanza_set_attr(c, "to", TABLET);
        roost_session_deliver(s, c);
    }
    roost_stanza_unref(c);
    return ROOST_PASS;
}

static int
fake_load(roost_mod_t *m)
{
    int rc = roost_hook_iq(m, PS, "pubsub", NULL, fake_pubsub, NULL);

    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRESENCE_OUT, ROOST_PRIO_DEFAULT,
                        fake_presence, NULL);
    return rc;
}

static const roost_module_t fake_pep = {
    .abi = ROOST_ABI,
    .name = "fakepep",
    .load = fake_load,
};

static void
fake_clear(void)
{
    for (int i = 0; i < fake_niq; i++)
        roost_stanza_unref(fake_iqs[i]);
    fake_niq = 0;
}

static void
av_setup(void)
{
    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, NULL));
    ck_assert_ptr_nonnull(harness_load(&fake_pep, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
}

static void
av_teardown(void)
{
    fake_clear();
    ck_assert_int_eq(harness_reset(), 0);
}

/* The action element of recorded pubsub IQ i (name checked). */
static roost_stanza_t *
fake_action(int i, const char *name, const char *node)
{
    roost_stanza_t *ps, *a;

    ck_assert_int_lt(i, fake_niq);
    ck_assert_str_eq(roost_stanza_attr(fake_iqs[i], "from"), ALICE);
    ck_assert_str_eq(roost_stanza_attr(fake_iqs[i], "to"), ALICE);
    ps = roost_stanza_child(fake_iqs[i], PS, "pubsub");
    ck_assert_ptr_nonnull(ps);
    a = roost_stanza_first_child(ps);
    ck_assert_str_eq(roost_stanza_name(a), name);
    ck_assert_str_eq(roost_stanza_attr(a, "node"), node);
    return a;
}

/* The created node is open (the vCard is public). */
static void
ck_create_open(int i, const char *node)
{
    roost_stanza_t *conf, *x, *f;
    int open = 0;

    fake_action(i, "create", node);
    conf = roost_stanza_child(roost_stanza_child(fake_iqs[i], PS, "pubsub"), PS,
                              "configure");
    ck_assert_ptr_nonnull(conf);
    x = roost_stanza_child(conf, "jabber:x:data", "x");
    ck_assert_ptr_nonnull(x);
    for (f = roost_stanza_first_child(x); f != NULL;
         f = roost_stanza_next_sibling(f))
        if (strcmp(roost_stanza_attr(f, "var"), "pubsub#access_model") == 0)
            open =
                strcmp(roost_stanza_child_text(f, NULL, "value"), "open") == 0;
    ck_assert(open);
}

/* Checks publishes i (data) and i + 1 (metadata) of hash h. */
static roost_stanza_t *
ck_published(int i, const char *h, const char *b64)
{
    roost_stanza_t *item, *el;

    item = roost_stanza_child(fake_action(i, "publish", AVD), PS, "item");
    ck_assert_str_eq(roost_stanza_attr(item, "id"), h);
    el = roost_stanza_child(item, AVD, "data");
    ck_assert_ptr_nonnull(el);
    ck_assert_str_eq(roost_stanza_text(el), b64);
    item = roost_stanza_child(fake_action(i + 1, "publish", AVM), PS, "item");
    ck_assert_str_eq(roost_stanza_attr(item, "id"), h);
    el = roost_stanza_child(roost_stanza_child(item, AVM, "metadata"), AVM,
                            "info");
    ck_assert_ptr_nonnull(el);
    ck_assert_str_eq(roost_stanza_attr(el, "id"), h);
    return el;
}

/* The <photo/> of the x update in st: its text, or NULL without one. */
static const char *
photo_of(roost_stanza_t *st)
{
    roost_stanza_t *x = roost_stanza_child(st, UPD, "x"), *p;
    int n = 0;

    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c))
        if (strcmp(roost_stanza_name(c), "x") == 0 && roost_stanza_ns(c) &&
            strcmp(roost_stanza_ns(c), UPD) == 0)
            n++;
    ck_assert_int_le(n, 1);
    p = x != NULL ? roost_stanza_child(x, UPD, "photo") : NULL;
    return p != NULL ? roost_stanza_text(p) : NULL;
}

/* Alice's broadcast presence xml, as the contact gets it. */
static roost_stanza_t *
broadcast_from(const char *full, const char *xml)
{
    size_t n = harness_sent_count();

    ck_assert_int_ge(harness_inject(full, NULL, xml), 0);
    ck_assert_uint_eq(harness_sent_count(), n + 1);
    ck_assert_str_eq(roost_stanza_attr(harness_sent_stanza(n), "to"), CONTACT);
    return harness_sent_stanza(n);
}

static roost_stanza_t *
broadcast(const char *xml)
{
    return broadcast_from(PHONE, xml);
}

/* §2.2: a vCard with a photo is published as XEP-0084 data + metadata. */
START_TEST(test_av_vcard_to_pep)
{
    roost_stanza_t *info;

    set_card(PHONE, NULL, CARD_PNG);
    assert_result(last(PHONE), "s");
    ck_assert_int_eq(fake_niq, 4);
    ck_create_open(0, AVD);
    ck_create_open(1, AVM);
    info = ck_published(2, PNG_SHA1, PNG_B64);
    ck_assert_str_eq(roost_stanza_attr(info, "bytes"), "73");
    ck_assert_str_eq(roost_stanza_attr(info, "type"), "image/png");
    ck_assert_str_eq(roost_stanza_attr(info, "width"), "2");
    ck_assert_str_eq(roost_stanza_attr(info, "height"), "3");
}
END_TEST

/* Wrapped BINVAL, type from the image when the vCard has none; unknown
 * image formats get no width/height. */
START_TEST(test_av_vcard_to_pep_gif)
{
    roost_stanza_t *info;

    set_card(PHONE, NULL, CARD_PHOTO("", GIF_B64_WRAPPED));
    ck_assert_int_eq(fake_niq, 4);
    info = ck_published(2, GIF_SHA1, GIF_B64);
    ck_assert_str_eq(roost_stanza_attr(info, "bytes"), "20");
    ck_assert_str_eq(roost_stanza_attr(info, "type"), "image/gif");
    ck_assert_str_eq(roost_stanza_attr(info, "width"), "5");
    ck_assert_str_eq(roost_stanza_attr(info, "height"), "4");
    fake_clear();
    /* "abc" as an image/x-raw: no size known. */
    set_card(PHONE, NULL, CARD_PHOTO("<TYPE>image/x-raw</TYPE>", "YWJj"));
    ck_assert_int_eq(fake_niq, 4);
    info = ck_published(2, "a9993e364706816aba3e25717850c26c9cd0d89d", "YWJj");
    ck_assert_str_eq(roost_stanza_attr(info, "type"), "image/x-raw");
    ck_assert_ptr_null(roost_stanza_attr(info, "width"));
    ck_assert_ptr_null(roost_stanza_attr(info, "height"));
}
END_TEST

/* Strict base64: none of these is an avatar (the vCard is still stored). */
static const char *const bad_b64[] = {
    "",         "YWJ",   "YW=j",         "YR==",   "Y===",
    "YWJj====", "YWJj@", "YWJjZA==YWJj", "YWJjZA", "YWJjZ",
};

START_TEST(test_av_bad_base64)
{
    char card[512];

    snprintf(card, sizeof(card), CARD_PHOTO("", "%s"), bad_b64[_i]);
    set_card(PHONE, NULL, card);
    assert_result(last(PHONE), "s");
    ck_assert_int_eq(fake_niq, 0);
    ck_assert_str_eq(photo_of(broadcast("<presence/>")), "");
}
END_TEST

/* Removing the photo: empty metadata (XEP-0084 §4.5), data retracted. */
START_TEST(test_av_vcard_remove)
{
    roost_stanza_t *a, *item;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    ck_assert_int_eq(fake_niq, 0); /* no avatar before: nothing */
    set_card(PHONE, NULL, CARD_PNG);
    fake_clear();
    set_card(PHONE, NULL, CARD_FN("Alice"));
    ck_assert_int_eq(fake_niq, 2);
    a = fake_action(0, "publish", AVM);
    item = roost_stanza_child(a, PS, "item");
    ck_assert_ptr_nonnull(roost_stanza_child(item, AVM, "metadata"));
    ck_assert_ptr_null(
        roost_stanza_first_child(roost_stanza_child(item, AVM, "metadata")));
    a = fake_action(1, "retract", AVD);
    ck_assert_str_eq(roost_stanza_attr(roost_stanza_child(a, PS, "item"), "id"),
                     PNG_SHA1);
    ck_assert_str_eq(photo_of(broadcast("<presence/>")), "");
}
END_TEST

/* XEP-0398 §3: what the client put in, and what goes out. */
static const struct {
    const char *in;
    const char *photo; /* expected <photo/> text */
} pres_cases[] = {
    {"<presence/>", PNG_SHA1},
    {"<presence><x xmlns='" UPD "'/></presence>", PNG_SHA1},
    {"<presence><x xmlns='" UPD "'><photo>0123</photo></x></presence>",
     PNG_SHA1},
    {"<presence><x xmlns='" UPD "'><photo>0123</photo></x><x xmlns='" UPD
     "'/></presence>",
     PNG_SHA1},
    /* An empty <photo/> is the client's "not ready": left alone. */
    {"<presence><x xmlns='" UPD "'><photo/></x></presence>", ""},
};

START_TEST(test_av_presence)
{
    set_card(PHONE, NULL, CARD_PNG);
    ck_assert_str_eq(photo_of(broadcast(pres_cases[_i].in)),
                     pres_cases[_i].photo);
}
END_TEST

START_TEST(test_av_presence_none)
{
    roost_stanza_t *p;

    ck_assert_str_eq(photo_of(broadcast("<presence/>")), "");
    /* Unavailable presence is not touched. */
    p = broadcast("<presence type='unavailable'/>");
    ck_assert_ptr_null(photo_of(p));
}
END_TEST

/* Directed presence (a MUC join) carries it too. */
START_TEST(test_av_presence_directed)
{
    roost_stanza_t *p;

    set_card(PHONE, NULL, CARD_PNG);
    harness_clear();
    harness_inject(PHONE, "room@muc.remote.example/al",
                   "<presence><x xmlns='http://jabber.org/protocol/muc'/>"
                   "</presence>");
    ck_assert_uint_eq(harness_sent_count(), 1);
    p = harness_sent_stanza(0);
    ck_assert_str_eq(photo_of(p), PNG_SHA1);
}
END_TEST

/* The account's other resources get it too: from the broadcast
 * rewritten before the fan-out, whatever ROOST_EV_DELIVER does. */
START_TEST(test_av_presence_own_resource)
{
    roost_stanza_t *p;

    harness_deliver_hooks(1);
    ck_assert_ptr_nonnull(harness_session_add(TABLET, 1, 0));
    set_card(PHONE, NULL, CARD_PNG);
    broadcast("<presence><show>away</show></presence>");
    ck_assert_uint_eq(harness_delivered_count(TABLET), 1);
    p = harness_delivered_stanza(TABLET, 0);
    ck_assert_str_eq(roost_stanza_child_text(p, NULL, "show"), "away");
    ck_assert_str_eq(photo_of(p), PNG_SHA1);
    harness_deliver_hooks(0);
}
END_TEST

/* One rewrite per broadcast: the presence is replaced once, before the
 * fan-out (roost_event_replace), and every recipient's copy comes from
 * it; nothing is rewritten per recipient (the ROOST_EV_DELIVER hook and
 * ROOST_EV_OUTBOUND find the current hash and copy nothing).  The same
 * for directed presence. */
START_TEST(test_av_presence_once)
{
    roost_stanza_t *p;

    harness_deliver_hooks(1);
    ck_assert_ptr_nonnull(harness_session_add(TABLET, 1, 0));
    set_card(PHONE, NULL, CARD_PNG);
    ck_assert_int_eq(harness_replace_count(), 0);
    ck_assert_str_eq(photo_of(broadcast("<presence/>")), PNG_SHA1);
    ck_assert_int_eq(harness_replace_count(), 1);
    p = harness_delivered_stanza(TABLET, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(photo_of(p), PNG_SHA1);
    /* Already carrying the hash: nothing to replace. */
    ck_assert_str_eq(
        photo_of(broadcast("<presence><x xmlns='" UPD "'><photo>" PNG_SHA1
                           "</photo></x></presence>")),
        PNG_SHA1);
    ck_assert_int_eq(harness_replace_count(), 1);
    harness_inject(PHONE, "room@muc.remote.example/al", "<presence/>");
    ck_assert_int_eq(harness_replace_count(), 2);
    harness_deliver_hooks(0);
}
END_TEST

/* Presence the server sends from what it kept (a probe answer) after an
 * avatar change goes out with the new hash (ROOST_EV_OUTBOUND). */
START_TEST(test_av_presence_stale)
{
    roost_stanza_t *kept;
    size_t n;

    set_card(PHONE, NULL, CARD_PNG);
    kept = roost_stanza_copy(broadcast("<presence/>"));
    ck_assert_str_eq(photo_of(kept), PNG_SHA1);
    set_card(PHONE, NULL, CARD_PHOTO("", GIF_B64));
    roost_stanza_set_attr(kept, "to", "carol@remote.example/x");
    n = harness_sent_count();
    ck_assert_int_eq(roost_send(harness_mod("fakepep"), kept), 0);
    ck_assert_uint_eq(harness_sent_count(), n + 1);
    ck_assert_str_eq(photo_of(harness_sent_stanza(n)), GIF_SHA1);
    /* The caller's stanza is not touched. */
    ck_assert_str_eq(photo_of(kept), PNG_SHA1);
    roost_stanza_unref(kept);
}
END_TEST

/* Presence kept from before an avatar change and delivered to a session
 * later (mod_presence gives a resource coming online the other
 * resources' stored presence; mod_csi lets held presence go) reaches it
 * with the current hash: the ROOST_EV_DELIVER hook substitutes a
 * rewritten copy (roost_event_replace), only when the hash is stale. */
START_TEST(test_av_presence_stale_deliver)
{
    roost_stanza_t *kept, *plain, *p;
    roost_session_t *tablet;
    int n;

    harness_deliver_hooks(1);
    set_card(PHONE, NULL, CARD_PNG);
    kept = roost_stanza_copy(broadcast("<presence><show>dnd</show>"
                                       "</presence>"));
    ck_assert_str_eq(photo_of(kept), PNG_SHA1);
    roost_stanza_set_attr(kept, "to", TABLET);
    plain = roost_stanza_copy(kept);
    roost_stanza_remove(roost_stanza_child(plain, UPD, "x"));
    tablet = harness_session_add(TABLET, 1, 0);
    ck_assert_ptr_nonnull(tablet);

    /* Current: delivered as it is, no copy. */
    n = harness_replace_count();
    ck_assert_int_eq(roost_session_deliver(tablet, kept), 0);
    ck_assert_int_eq(harness_replace_count(), n);
    ck_assert_str_eq(photo_of(harness_delivered_stanza(TABLET, 0)), PNG_SHA1);

    /* The avatar changes; the kept presence is delivered again. */
    set_card(PHONE, NULL, CARD_PHOTO("", GIF_B64));
    harness_clear();
    ck_assert_int_eq(roost_session_deliver(tablet, kept), 0);
    ck_assert_int_eq(harness_replace_count(), n + 1);
    ck_assert_uint_eq(harness_delivered_count(TABLET), 1);
    p = harness_delivered_stanza(TABLET, 0);
    ck_assert_str_eq(photo_of(p), GIF_SHA1);
    ck_assert_str_eq(roost_stanza_child_text(p, NULL, "show"), "dnd");
    ck_assert_str_eq(roost_stanza_attr(p, "from"), PHONE);
    ck_assert_str_eq(roost_stanza_attr(p, "to"), TABLET);
    /* The caller's stanza is not touched. */
    ck_assert_str_eq(photo_of(kept), PNG_SHA1);
    /* Kept without any update element: it gets one. */
    ck_assert_int_eq(roost_session_deliver(tablet, plain), 0);
    ck_assert_str_eq(photo_of(harness_delivered_stanza(TABLET, 1)), GIF_SHA1);
    ck_assert_int_eq(harness_replace_count(), n + 2);
    roost_stanza_unref(plain);
    roost_stanza_unref(kept);
    harness_deliver_hooks(0);
}
END_TEST

/* The hash of a stored vCard is known at login. */
START_TEST(test_av_hash_at_login)
{
    const char *card = CARD_PNG;

    ck_assert_int_eq(roost_store_set(harness_store("vcard", ROOST_STORE_KEYVAL),
                                     "carol", NULL, card, strlen(card)),
                     0);
    ck_assert_ptr_nonnull(harness_session_add("carol@localhost/x", 1, 0));
    ck_assert_str_eq(
        photo_of(broadcast_from("carol@localhost/x", "<presence/>")), PNG_SHA1);
}
END_TEST

#define PHOTO_IQ(attrs, b64)                                                   \
    "<iq type='set' id='ph'><photo xmlns='urn:roost:vcard-photo' " attrs       \
    ">" b64 "</photo></iq>"

/* §2.1: mod_pep hands over a published avatar; the rest of the vCard
 * stays, nothing is published back, the presence hash follows. */
START_TEST(test_av_pep_to_vcard)
{
    roost_stanza_t *card, *photo;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    ck_assert_int_eq(
        harness_inject(ALICE, ALICE,
                       PHOTO_IQ("type='image/png' id='" PNG_SHA1 "'", PNG_B64)),
        ROOST_HANDLED);
    card = roost_stanza_child(get_card(PHONE, NULL), NS, "vCard");
    ck_assert_str_eq(roost_stanza_child_text(card, NS, "FN"), "Alice");
    ck_assert_str_eq(roost_stanza_child_text(card, NS, "NICKNAME"), "al");
    photo = roost_stanza_child(card, NS, "PHOTO");
    ck_assert_ptr_nonnull(photo);
    ck_assert_str_eq(roost_stanza_child_text(photo, NS, "TYPE"), "image/png");
    ck_assert_str_eq(roost_stanza_child_text(photo, NS, "BINVAL"), PNG_B64);
    ck_assert_int_eq(fake_niq, 0);
    ck_assert_str_eq(photo_of(broadcast("<presence/>")), PNG_SHA1);

    /* An empty <photo/> removes it. */
    harness_inject(ALICE, ALICE, PHOTO_IQ("", ""));
    card = roost_stanza_child(get_card(PHONE, NULL), NS, "vCard");
    ck_assert_ptr_null(roost_stanza_child(card, NS, "PHOTO"));
    ck_assert_str_eq(roost_stanza_child_text(card, NS, "FN"), "Alice");
    ck_assert_str_eq(photo_of(broadcast("<presence/>")), "");
    ck_assert_int_eq(fake_niq, 0);
}
END_TEST

/* No vCard yet: one with just the photo. */
START_TEST(test_av_pep_to_vcard_new)
{
    roost_stanza_t *card, *photo;

    harness_inject(ALICE, ALICE, PHOTO_IQ("id='" GIF_SHA1 "'", GIF_B64));
    card = roost_stanza_child(get_card(PHONE, NULL), NS, "vCard");
    photo = roost_stanza_child(card, NS, "PHOTO");
    ck_assert_ptr_nonnull(photo);
    ck_assert_str_eq(roost_stanza_child_text(photo, NS, "BINVAL"), GIF_B64);
}
END_TEST

/* Refused: a hash that does not match (XEP-0398 §2.1 SHOULD verify), and
 * the same request from a client (not a protocol). */
START_TEST(test_av_pep_to_vcard_refused)
{
    roost_stanza_t *card;

    set_card(PHONE, NULL, CARD_FN("Alice"));
    harness_inject(ALICE, ALICE, PHOTO_IQ("id='" GIF_SHA1 "'", PNG_B64));
    harness_inject(ALICE, ALICE, PHOTO_IQ("id='" PNG_SHA1 "'", "YWJ"));
    harness_inject(PHONE, NULL, PHOTO_IQ("id='" PNG_SHA1 "'", PNG_B64));
    assert_error(last(PHONE), "service-unavailable");
    card = roost_stanza_child(get_card(PHONE, NULL), NS, "vCard");
    ck_assert_ptr_null(roost_stanza_child(card, NS, "PHOTO"));
    ck_assert_str_eq(photo_of(broadcast("<presence/>")), "");
}
END_TEST

/* XEP-0398 §2: the feature on the account. */
START_TEST(test_av_account_feature)
{
    ck_assert_int_eq(harness_account_feature_count(), 1);
}
END_TEST

/* The vCard's max_size holds for an avatar from PEP too. */
START_TEST(test_av_pep_to_vcard_too_big)
{
    char card[300];
    roost_stanza_t *c;

    ck_assert_ptr_nonnull(harness_load(&roost_module_vcard, HOST, conf_small));
    ck_assert_ptr_nonnull(harness_load(&fake_pep, HOST, NULL));
    ck_assert_ptr_nonnull(harness_session_add(PHONE, 1, 0));
    snprintf(card, sizeof(card),
             "<vCard xmlns='" NS "'><FN>%0150d</FN></vCard>", 0);
    set_card(PHONE, NULL, card);
    assert_result(last(PHONE), "s");
    harness_inject(ALICE, ALICE, PHOTO_IQ("id='" PNG_SHA1 "'", PNG_B64));
    c = roost_stanza_child(get_card(PHONE, NULL), NS, "vCard");
    ck_assert_ptr_null(roost_stanza_child(c, NS, "PHOTO"));
    ck_assert_uint_eq(strlen(roost_stanza_child_text(c, NS, "FN")), 150);
    ck_assert_str_eq(photo_of(broadcast("<presence/>")), "");
}
END_TEST

static Suite *
vcard_suite(void)
{
    Suite *s = suite_create("mod_vcard");
    TCase *tc;

    tc = tcase_create("own");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_set_get_own, 0,
                        (int)(sizeof(own_to) / sizeof(own_to[0])));
    tcase_add_test(tc, test_replace_whole);
    tcase_add_test(tc, test_get_own_none);
    tcase_add_test(tc, test_get_after_set_in_flight);
    tcase_add_test(tc, test_restart);
    tcase_add_test(tc, test_disco_feature);
    suite_add_tcase(s, tc);

    tc = tcase_create("others");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_get_other_offline);
    tcase_add_test(tc, test_get_other_remote);
    tcase_add_test(tc, test_get_other_none);
    tcase_add_test(tc, test_set_other_forbidden);
    tcase_add_test(tc, test_server);
    suite_add_tcase(s, tc);

    tc = tcase_create("max_size");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_max_size);
    tcase_add_test(tc, test_av_pep_to_vcard_too_big);
    suite_add_tcase(s, tc);

    tc = tcase_create("avatar");
    tcase_add_checked_fixture(tc, av_setup, av_teardown);
    tcase_add_test(tc, test_av_vcard_to_pep);
    tcase_add_test(tc, test_av_vcard_to_pep_gif);
    tcase_add_loop_test(tc, test_av_bad_base64, 0,
                        (int)(sizeof(bad_b64) / sizeof(bad_b64[0])));
    tcase_add_test(tc, test_av_vcard_remove);
    tcase_add_loop_test(tc, test_av_presence, 0,
                        (int)(sizeof(pres_cases) / sizeof(pres_cases[0])));
    tcase_add_test(tc, test_av_presence_none);
    tcase_add_test(tc, test_av_presence_directed);
    tcase_add_test(tc, test_av_presence_own_resource);
    tcase_add_test(tc, test_av_presence_once);
    tcase_add_test(tc, test_av_presence_stale);
    tcase_add_test(tc, test_av_presence_stale_deliver);
    tcase_add_test(tc, test_av_hash_at_login);
    tcase_add_test(tc, test_av_pep_to_vcard);
    tcase_add_test(tc, test_av_pep_to_vcard_new);
    tcase_add_test(tc, test_av_pep_to_vcard_refused);
    tcase_add_test(tc, test_av_account_feature);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(vcard_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
