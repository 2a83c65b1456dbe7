/* tests/fuzz/fuzz_modules.c: libFuzzer target for the modules' stanza
 * handlers, on the fake host of tests/harness/ (issue 6).
 *
 * Every module that handles client stanzas is loaded on one vhost
 * ("localhost"), in the order of etc/quickstart.conf.in plus the rest
 * (admin_adhoc, register with open registration), with the harness's
 * ROOST_EV_DELIVER hooks on so that the delivery filters (privacy, csi)
 * run too.  The host starts each input from the same state: accounts
 * alice, bob and admin (an admin; all with the password "secret-pw"),
 * rosters (alice and bob subscribed both ways, romeo@remote.example "to"
 * on alice's side, carol pending in), bound sessions alice/phone
 * (priority 5), alice/desk, bob/home and admin/console, and one
 * unauthenticated (pre-auth) session.
 *
 * Input format: control bytes, then XML.  The bytes before the first '<'
 * each choose the sender (and default recipient) of one stanza, in order;
 * the rest is fed, after a jabber:client stream header, to the stream
 * parser the server uses (core/xml.c, with roostd's default limits), and
 * each depth-1 element it delivers (up to FUZZ_MAX_STANZAS) is injected
 * through the harness with the same routing as the core (a non-stanza
 * element from a session goes to the nonza handlers: XEP-0352).  So
 * "0<iq .../>" is one IQ from alice/phone, "03<message/><message/>" two
 * messages, from alice/phone then romeo@remote.example.  What the core
 * refuses before any module sees it is skipped: a 'to' that is not a JID
 * (jid-malformed), and from the remote senders a stanza without 'to' or
 * for another domain.  For a control byte c:
 *
 *   c % 8        sender: 0 alice/phone, 1 alice/desk, 2 bob/home,
 *                3 romeo@remote.example/garden (s2s), 4 admin/console,
 *                5 the host itself, 6 the domain remote.example,
 *                7 the pre-auth session (XEP-0077 registration)
 *   (c / 8) % 4  when the stanza has no 'to': 2 ('0'..'7') none (the
 *                core's default: the sender's account, or a presence
 *                broadcast from a session), 3 ('8', '9') the host,
 *                0 ('@'..'G') alice@localhost, 1 ('H'..'O') alice/phone
 *
 * except that a byte from 0x60 to 0x7F ('a'..'z'...) is an event between
 * two stanzas (see action(): a logout, a lost connection, time passing, a
 * user's state reloaded from storage) and takes no stanza.  Stanzas past
 * the last control byte use the control bytes again from the start.
 *
 * Stanzas from a session a module closed meanwhile come from a new
 * session with the same JID (the client reconnected).  After the stanzas
 * the fake clock runs a day forward (timers fire), every session closes,
 * and the host is torn down.  Crashes, sanitizer reports, leaks (the
 * target is built with ASan, so LeakSanitizer runs) and harness contract
 * violations (a handler changing its borrowed stanza, a session slot left
 * set, jobs left over: harness_reset() != 0) abort; so does a single
 * input producing more than FUZZ_MAX_OUTPUT stanzas (an amplification),
 * or a stanza leaving the server with a 'from' of another domain.
 *
 * Not for: the stream layer (fuzz_stream.c) or the parser itself
 * (fuzz_xml.c, fuzz_stanza_roundtrip.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

extern const roost_module_t roost_module_disco, roost_module_ping,
    roost_module_version, roost_module_message, roost_module_roster,
    roost_module_presence, roost_module_offline, roost_module_privacy,
    roost_module_vcard, roost_module_csi, roost_module_carbons,
    roost_module_mam, roost_module_pep, roost_module_push,
    roost_module_admin_adhoc, roost_module_register;

#define HOST              "localhost"
#define FUZZ_MAX_STANZAS  16
#define FUZZ_MAX_OUTPUT   20000
#define FUZZ_MAX_CONTROLS 64

static const roost_module_t *const modules[] = {
    &roost_module_disco,   &roost_module_ping,    &roost_module_version,
    &roost_module_message, &roost_module_roster,  &roost_module_presence,
    &roost_module_offline, &roost_module_privacy, &roost_module_vcard,
    &roost_module_csi,     &roost_module_carbons, &roost_module_mam,
    &roost_module_pep,     &roost_module_push,    &roost_module_admin_adhoc,
    &roost_module_register};

static const char *const sessions[] = {
    "alice@localhost/phone", "alice@localhost/desk", "bob@localhost/home",
    "admin@localhost/console"};

/* Senders by c % 8 (7: the pre-auth session, NULL here). */
static const char *const senders[8] = {
    "alice@localhost/phone",   "alice@localhost/desk",
    "bob@localhost/home",      "romeo@remote.example/garden",
    "admin@localhost/console", HOST,
    "remote.example",          NULL};
/* Default recipients by (c / 8) % 4 (NULL: none). */
static const char *const default_to[4] = {"alice@localhost",
                                          "alice@localhost/phone", NULL, HOST};

/* Mirrors struct register_conf in modules/mod_register.c. */
struct register_conf_view {
    int allow_registration;
    int64_t registration_throttle;
    int registration_throttle_loopback;
};

static void
conf_register(void *c)
{
    ((struct register_conf_view *)c)->allow_registration = 1;
}

static const char *const alice_roster[] = {
    "bob@localhost",
    "<item jid='bob@localhost' name='Bob' subscription='both'>"
    "<group>Friends</group></item>",
    "romeo@remote.example",
    "<item jid='romeo@remote.example' subscription='to'/>",
    "carol@localhost",
    "<item jid='carol@localhost' subscription='none' pending-in='1'/>",
    "",
    "3",
    NULL};
static const char *const bob_roster[] = {
    "alice@localhost", "<item jid='alice@localhost' subscription='both'/>", "",
    "1", NULL};

static void
fuzz_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_modules: %s\n", what);
        abort();
    }
}

static const char *const accounts[] = {"alice", "bob", "admin"};
/* Their credential records (core/auth.c's "accounts" MAP store), made
 * once: PBKDF2 for three accounts per input would be 3/4 of the time. */
static char *account_val[3];
static size_t account_len[3];

static void
accounts_make(void)
{
    roost_store_t *st;

    fuzz_check(harness_load(&roost_module_ping, HOST, NULL) != NULL, "load");
    st = harness_store("accounts", ROOST_STORE_MAP);
    fuzz_check(st != NULL, "accounts store");
    for (int i = 0; i < 3; i++) {
        fuzz_check(harness_account_add(accounts[i], "secret-pw") == 0,
                   "account");
        fuzz_check(roost_store_get(st, "", accounts[i], &account_val[i],
                                   &account_len[i]) == 0,
                   "account record");
    }
    fuzz_check(harness_reset() == 0, "reset");
}

static void
host_setup(roost_session_t **pre)
{
    roost_store_t *st;

    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
        fuzz_check(harness_load(modules[i], HOST,
                                modules[i] == &roost_module_register
                                    ? conf_register
                                    : NULL) != NULL,
                   "a module failed to load");
    harness_admin_add("admin@localhost");
    st = harness_store("accounts", ROOST_STORE_MAP);
    fuzz_check(st != NULL, "accounts store");
    for (int i = 0; i < 3; i++)
        fuzz_check(roost_store_set(st, "", accounts[i], account_val[i],
                                   account_len[i]) == 0,
                   "account");
    fuzz_check(harness_roster_preload("alice", alice_roster) == 0, "roster");
    fuzz_check(harness_roster_preload("bob", bob_roster) == 0, "roster");
    for (size_t i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++)
        fuzz_check(harness_session_add(sessions[i], 1, i == 0 ? 5 : 0) != NULL,
                   "session");
    *pre = harness_preauth_add(NULL);
}

/* Output so far, all lists (the harness keeps them until harness_clear). */
static size_t
output_count(void)
{
    size_t n = harness_sent_count();

    for (size_t i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++)
        n += harness_delivered_count(sessions[i]);
    return n;
}

/* What leaves the server (the harness's sent list, from index *seen on)
 * must come from this server: a module never speaks for another domain
 * over s2s (a spoofed from: the peer would refuse it, RFC 6120 §4.9.3.9). */
static void
check_sent(size_t *seen)
{
    size_t n = harness_sent_count();

    for (; *seen < n; (*seen)++) {
        roost_stanza_t *st = harness_sent_stanza(*seen);
        const char *from = roost_stanza_attr(st, "from");
        roost_jid_t *j = from != NULL ? roost_jid_new(from) : NULL;
        int ok = j != NULL && strcmp(roost_jid_domain(j), HOST) == 0;

        roost_jid_free(j);
        if (!ok) {
            fprintf(stderr, "fuzz_modules: sent with a foreign from: %s\n",
                    harness_sent()[*seen]);
            abort();
        }
    }
}

/* ---- the stream parser ---- */

typedef struct {
    roost_stanza_t *st[FUZZ_MAX_STANZAS];
    int n;
} fuzz_stanzas_t;

static int
fs_open(void *ud, const char *ns, const char *name, const char *const *attrs,
        const char *default_ns)
{
    (void)ud, (void)ns, (void)name, (void)attrs, (void)default_ns;
    return 0;
}

static int
fs_stanza(void *ud, roost_stanza_t *st)
{
    fuzz_stanzas_t *f = ud;

    if (f->n == FUZZ_MAX_STANZAS) {
        roost_stanza_unref(st);
        return 1; /* enough: stop parsing */
    }
    f->st[f->n++] = st;
    return 0;
}

static void
fs_close(void *ud)
{
    (void)ud;
}

static void
fs_error(void *ud, const char *cond, const char *text)
{
    (void)ud, (void)cond, (void)text;
}

/* Parses xml as the stanzas of a jabber:client stream into f, with the
 * defaults of core/config.c (max_stanza_size 256 KiB, max_depth 64,
 * max_attrs 64): what a client can get past roostd's parser.  Stanzas
 * before a parse error count (the server has routed them by then). */
static void
parse_stanzas(const char *xml, size_t len, fuzz_stanzas_t *f)
{
    static const roost_xml_cb_t cb = {fs_open, fs_stanza, fs_close, fs_error};
    static const roost_xml_limits_t lim = {262144, 64, 64};
    static const char head[] = "<stream:stream xmlns='jabber:client' "
                               "xmlns:stream='http://etherx.jabber.org/"
                               "streams' to='localhost' version='1.0'>";
    roost_xml_t *x = roost_xml_new(&lim, &cb, f);
    size_t used;

    if (roost_xml_feed(x, head, strlen(head), &used) == 0)
        (void)roost_xml_feed(x, xml, len, &used);
    roost_xml_free(x);
}

/* The core's c2s, s2s and internal entry points accept only these. */
static int
is_stanza(const roost_stanza_t *st)
{
    const char *ns = roost_stanza_ns(st);

    return roost_stanza_kind(st) != ROOST_STANZA_OTHER && ns != NULL &&
           strcmp(ns, ROOST_NS_CLIENT) == 0;
}

static void
inject(uint8_t c, roost_stanza_t *st, roost_session_t **pre)
{
    const char *from = senders[c % 8];
    const char *to = roost_stanza_attr(st, "to");

    if (from == NULL) {
        /* Before authentication (core/stream.c): the pre-auth session,
         * which the server closes on anything but an IQ it knows. */
        if (*pre == NULL)
            return;
        (void)harness_preauth_inject_stanza(*pre, st);
        if (harness_preauth_delivered_count(*pre) > FUZZ_MAX_OUTPUT)
            fuzz_check(0, "pre-auth output grows without bound");
        return;
    }
    if (to == NULL) {
        to = default_to[(c / 8) % 4];
        if (to == NULL && (c % 8 == 3 || c % 8 == 6))
            return; /* s2s stanzas carry a 'to' (RFC 6120 §8.1.1.1) */
    } else {
        /* The router answers an invalid 'to' itself (jid-malformed), and
         * s2s takes only stanzas for its own domains (host-unknown). */
        roost_jid_t *j = roost_jid_new(to);
        int foreign = j != NULL && strcmp(roost_jid_domain(j), HOST) != 0;

        roost_jid_free(j);
        if (j == NULL || (foreign && (c % 8 == 3 || c % 8 == 6)))
            return;
    }
    if (strchr(from, '/') != NULL && strncmp(from, "romeo@", 6) != 0 &&
        harness_session(from) == NULL)
        /* A module closed it: the client comes back. */
        (void)harness_session_add(from, 1, 0);
    (void)harness_inject_stanza(from, to, st);
}

/* A top-level element that is not a stanza, from a bound session: the
 * modules' nonza handlers (XEP-0352), as core/stream.c dispatches them
 * (XEP-0198's urn:xmpp:sm:3 and jabber:client elements never get there). */
static void
nonza(uint8_t c, roost_stanza_t *el)
{
    const char *from = senders[c % 8];
    const char *ns = roost_stanza_ns(el);

    if (from == NULL || strchr(from, '/') == NULL ||
        strncmp(from, "romeo@", 6) == 0 || ns == NULL ||
        strcmp(ns, ROOST_NS_CLIENT) == 0 || strcmp(ns, "urn:xmpp:sm:3") == 0)
        return;
    if (harness_session(from) == NULL)
        (void)harness_session_add(from, 1, 0);
    (void)harness_nonza_inject(from, el);
}

/* A control byte 0x60..0x7F ('`', 'a'..'z', ...): an event between
 * stanzas, on session sessions[(c / 4) % 4] (or its user), by c % 4:
 * 0 the session logs out (it comes back when it sends again), 1 its
 * connection is lost and XEP-0198 keeps it (hibernating) or it resumes,
 * 2 a minute passes (timers), 3 the user logs out of every session, the
 * per-user state of the modules and the roster are dropped and loaded
 * again from storage, and the sessions log in again. */
static void
action(uint8_t c)
{
    const char *jid = sessions[(c / 4) % 4];
    roost_session_t *s = harness_session(jid);
    char user[16];

    switch (c % 4) {
    case 0: (void)harness_session_remove(jid); break;
    case 1:
        if (s != NULL)
            harness_session_hibernate(jid, !roost_session_hibernating(s));
        break;
    case 2: (void)harness_advance(60 * 1000); break;
    case 3:
        snprintf(user, sizeof(user), "%.*s", (int)(strchr(jid, '@') - jid),
                 jid);
        for (size_t i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++)
            if (strncmp(sessions[i], user, strlen(user)) == 0 &&
                sessions[i][strlen(user)] == '@')
                (void)harness_session_remove(sessions[i]);
        (void)harness_user_drop(user);
        (void)harness_roster_reload(user);
        for (size_t i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++)
            if (strncmp(sessions[i], user, strlen(user)) == 0 &&
                sessions[i][strlen(user)] == '@')
                (void)harness_session_add(sessions[i], 1, 0);
        break;
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* Every log line is formatted (a bad format argument is a finding)
     * but goes to /dev/null, not over libFuzzer's output. */
    if (roost_log_open("/dev/null") != 0)
        roost_log_level = -1;
    else
        roost_log_level = ROOST_LOG_DEBUG;
    harness_deliver_hooks(1);
    accounts_make(); /* account_val: kept for the process */
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stanzas_t f = {.n = 0};
    roost_session_t *pre = NULL;
    size_t nctl = 0, k = 0, seen = 0;
    int violations;

    while (nctl < size && nctl < FUZZ_MAX_CONTROLS && data[nctl] != '<')
        nctl++;
    if (nctl == size || data[nctl] != '<')
        return 0;
    parse_stanzas((const char *)data + nctl, size - nctl, &f);
    if (f.n == 0)
        return 0;

    host_setup(&pre);
    for (int i = 0; i < f.n; i++) {
        uint8_t c = '0';

        /* Actions run until the next stanza's control byte (once round
         * the control bytes at most). */
        for (size_t g = 0; g < nctl; g++) {
            c = data[k++ % nctl];
            if (c < 0x60 || c > 0x7F)
                break;
            action(c);
            c = '0';
        }
        if (is_stanza(f.st[i]))
            inject(c, f.st[i], &pre);
        else
            nonza(c, f.st[i]);
        check_sent(&seen);
        roost_stanza_unref(f.st[i]);
        fuzz_check(output_count() <= FUZZ_MAX_OUTPUT,
                   "output grows without bound");
    }
    /* Timers: a second, a minute, an hour, a day. */
    harness_advance(1000);
    harness_advance(60 * 1000);
    harness_advance(3600 * 1000);
    harness_advance(24 * 3600 * 1000);
    fuzz_check(output_count() <= FUZZ_MAX_OUTPUT,
               "timers: output grows without bound");
    check_sent(&seen);
    for (size_t i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++)
        (void)harness_session_remove(sessions[i]);
    violations = harness_reset();
    if (violations != 0) {
        fprintf(stderr, "fuzz_modules: %d harness contract violations\n",
                violations);
        abort();
    }
    return 0;
}
