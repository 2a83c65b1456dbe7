/* modules/mod_register.c: In-Band Registration (XEP-0077): creating an
 * account before authentication (§3.1), cancelling it (§3.2) and
 * changing its password (§3.3).
 *
 * Before authentication (the core passes jabber:iq:register IQs of an
 * unauthenticated stream here once TLS is up): with allow_registration
 * (default false) the stream features carry <register/> (§4), a get
 * answers the fields (<instructions/>, <username/>, <password/>) and a set
 * with both creates the account (roost_account_create, on the storage
 * worker; the answer goes out once it is committed).  Errors: a missing
 * or empty username or password: <not-acceptable/> (§3.1); a username
 * that is not a valid localpart (nodeprep): <not-acceptable/> (as
 * Prosody); an existing account: <conflict/> (§3.1); a password SASLprep
 * refuses: <not-acceptable/>; <remove/>: <registration-required/> (§3.2,
 * as Prosody).  Without allow_registration there is no feature and the
 * IQ is left to the core, which answers <service-unavailable/> (§3.1: "If
 * the host does not support In-Band Registration, it MUST return a
 * <service-unavailable/> error"; Prosody does the same).
 *
 * registration_throttle (default 60 s, 0 = off): at most one successful
 * registration per client IP address per period (an attempt while another
 * one from that address is in flight counts as one).  A refusal is
 * <policy-violation/> of type wait with a text, the condition of
 * Prosody's mod_register_limits (XEP-0077 §3.1.1 allows <not-acceptable/>
 * for "too many times"; Prosody's answer tells the client to wait).
 * Loopback clients (127.0.0.0/8, ::1 and IPv4-mapped 127.x) are not
 * throttled unless registration_throttle_loopback is true: like Prosody's
 * mod_register_limits, whose registration_whitelist is 127.0.0.1 and ::1
 * by default (a local web form or admin script registers from there).
 *
 * Logged in: a get answers <registered/> with the username and an empty
 * <password/> (§3.1, as Prosody).  A set with <username/> (the user's own
 * localpart, compared after nodeprep) and a non-empty <password/> changes
 * the password (§3.3, roost_account_set_password); sessions already
 * logged in stay.  A missing username or password, another user's name
 * or an empty password (which §3.3 says MUST leave the password as it
 * is): <bad-request/> (as Prosody).  <remove/> as the only child removes
 * the account (roost_account_delete): the result reaches the requester,
 * then the core closes every session of the account with a
 * <not-authorized/> stream error (§3.2) and its stored data is gone;
 * mod_presence cancels the subscriptions (ROOST_EV_USER_DELETED).
 * <remove/> with siblings: <bad-request/> (§3.2).  These work whatever
 * allow_registration says (as Prosody's mod_user_account_management).
 *
 * Passwords are never logged.  Not here: data forms (XEP-0004) in the
 * registration form (RECOMMENDED by §4, not required), registration of
 * extra fields (email...), and a web redirection (§5). */
#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <roost/account.h>
#include <roost/module.h>

#define REGISTER_NS         "jabber:iq:register"
#define REGISTER_FEATURE_NS "http://jabber.org/features/iq-register"
#define REGISTER_INSTRUCTIONS                                                  \
    "Choose a username and password for use with this service."

struct register_conf {
    int allow_registration;
    int64_t registration_throttle; /* ms; 0: no limit */
    int registration_throttle_loopback;
};

static const roost_opt_t register_opts[] = {
    {"allow_registration", ROOST_OPT_BOOL,
     offsetof(struct register_conf, allow_registration), "false", 0, 0},
    {"registration_throttle", ROOST_OPT_MSEC,
     offsetof(struct register_conf, registration_throttle), "60", 0,
     INT64_C(30) * 86400 * 1000},
    {"registration_throttle_loopback", ROOST_OPT_BOOL,
     offsetof(struct register_conf, registration_throttle_loopback), "false", 0,
     0},
    {NULL, 0, 0, NULL, 0, 0}};

/* One client address that registered recently or is registering. */
typedef struct register_ip {
    char *addr;
    int64_t last; /* monotonic ms of its last success, or -1 */
    int inflight; /* registrations from it not answered yet */
    struct register_ip *next;
} register_ip_t;

/* Per-vhost state (roost_mod_data): freed in register_unload. */
typedef struct {
    register_ip_t *ips;
} register_mod_t;

/* A request in flight: answered and freed by its done function. */
typedef struct {
    roost_stanza_t *iq;       /* a reference to the request */
    roost_session_t *session; /* held (pre-auth), or NULL */
    char *user;
    char *addr; /* pre-auth: the client's address (throttle) */
} register_job_t;

static int64_t
register_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
register_job_free(register_job_t *j)
{
    roost_stanza_unref(j->iq);
    roost_free(j->user);
    roost_free(j->addr);
    roost_free(j);
}

/* --- the throttle --- */

/* Whether addr (text) is a loopback address: 127.0.0.0/8, ::1, or
 * ::ffff:127.0.0.0/104 (IPv4-mapped). */
static int
register_is_loopback(const char *addr)
{
    unsigned char a[16];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 1};

    if (inet_pton(AF_INET, addr, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, addr, a) == 1)
        return memcmp(a, one, 16) == 0 ||
               (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    return 0;
}

/* Whether registrations from addr are throttled at all. */
static int
register_throttled(roost_mod_t *m, const char *addr)
{
    const struct register_conf *conf = roost_mod_conf(m);

    if (conf->registration_throttle == 0)
        return 0;
    return conf->registration_throttle_loopback || !register_is_loopback(addr);
}

/* addr's entry, or NULL; drops the entries that no longer limit anyone. */
static register_ip_t *
register_ip_find(roost_mod_t *m, const char *addr, int64_t now)
{
    const struct register_conf *conf = roost_mod_conf(m);
    register_mod_t *rm = *roost_mod_data(m);
    register_ip_t **pp = &rm->ips, *found = NULL;

    while (*pp != NULL) {
        register_ip_t *e = *pp;

        if (e->inflight == 0 &&
            (e->last < 0 || now - e->last >= conf->registration_throttle)) {
            *pp = e->next;
            roost_free(e->addr);
            roost_free(e);
            continue;
        }
        if (strcmp(e->addr, addr) == 0)
            found = e;
        pp = &e->next;
    }
    return found;
}

/* Whether addr may register now; if so, counts one registration in
 * flight for it (register_throttle_end ends it). */
static int
register_throttle_begin(roost_mod_t *m, const char *addr)
{
    register_mod_t *rm = *roost_mod_data(m);
    register_ip_t *e;

    if (!register_throttled(m, addr))
        return 1;
    e = register_ip_find(m, addr, register_now_ms());
    if (e != NULL)
        return 0;                     /* a recent success, or one in flight */
    e = roost_xcalloc(1, sizeof(*e)); /* register_ip_find or unload */
    e->addr = roost_xstrdup(addr);
    e->last = -1;
    e->inflight = 1;
    e->next = rm->ips;
    rm->ips = e;
    return 1;
}

static void
register_throttle_end(roost_mod_t *m, const char *addr, int success)
{
    register_mod_t *rm = *roost_mod_data(m);

    if (rm == NULL || !register_throttled(m, addr))
        return;
    for (register_ip_t *e = rm->ips; e != NULL; e = e->next) {
        if (strcmp(e->addr, addr) != 0 || e->inflight == 0)
            continue;
        e->inflight--;
        if (success)
            e->last = register_now_ms();
        return;
    }
}

/* --- before authentication (§3.1) --- */

/* Sends r to the unauthenticated session s (no to/from) and unrefs it. */
static void
register_deliver(roost_session_t *s, roost_stanza_t *r)
{
    roost_stanza_set_attr(r, "to", NULL);
    roost_stanza_set_attr(r, "from", NULL);
    roost_session_deliver(s, r);
    roost_stanza_unref(r);
}

static roost_verdict_t
register_preauth_error(const roost_ev_t *ev, roost_stanza_err_t cond,
                       const char *text)
{
    register_deliver(ev->origin, roost_stanza_error(ev->stanza, cond, text));
    return ROOST_HANDLED;
}

static roost_verdict_t
register_preauth_get(const roost_ev_t *ev, void *arg)
{
    const struct register_conf *conf = roost_mod_conf(ev->mod);
    roost_stanza_t *r, *q, *i;

    if (!conf->allow_registration || ev->origin == NULL)
        return ROOST_PASS; /* the core: service-unavailable (§3.1) */
    r = roost_stanza_reply(ev->stanza);
    q = roost_stanza_add_child(r, REGISTER_NS, "query");
    i = roost_stanza_add_child(q, REGISTER_NS, "instructions");
    roost_stanza_add_text(i, REGISTER_INSTRUCTIONS,
                          strlen(REGISTER_INSTRUCTIONS));
    roost_stanza_add_child(q, REGISTER_NS, "username");
    roost_stanza_add_child(q, REGISTER_NS, "password");
    register_deliver(ev->origin, r);
    return ROOST_HANDLED;
}

static void
register_create_done(roost_mod_t *m, void *arg, int rc)
{
    register_job_t *j = arg;
    roost_stanza_t *r;

    register_throttle_end(m, j->addr, rc == 0);
    if (rc == 0) {
        roost_log(m, ROOST_LOG_INFO, "account %s registered from %s", j->user,
                  j->addr);
        r = roost_stanza_reply(j->iq);
    } else if (rc == -ROOST_EEXIST) {
        r = roost_stanza_error(j->iq, ROOST_SE_CONFLICT,
                               "The requested username already exists");
    } else if (rc == -ROOST_EINVAL) {
        r = roost_stanza_error(j->iq, ROOST_SE_NOT_ACCEPTABLE,
                               "The password is too long or contains "
                               "characters that are not allowed");
    } else {
        roost_log(m, ROOST_LOG_ERROR, "registering %s: %s", j->user,
                  roost_strerror(rc));
        r = roost_stanza_error(j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    }
    /* The client may have gone meanwhile: delivery then fails quietly. */
    register_deliver(j->session, r);
    roost_session_release(j->session);
    register_job_free(j);
}

static roost_verdict_t
register_preauth_set(const roost_ev_t *ev, void *arg)
{
    const struct register_conf *conf = roost_mod_conf(ev->mod);
    roost_stanza_t *q = roost_stanza_child(ev->stanza, REGISTER_NS, "query");
    const char *name, *password, *addr;
    register_job_t *j;
    char *user;

    if (!conf->allow_registration || ev->origin == NULL)
        return ROOST_PASS; /* the core: service-unavailable (§3.1) */
    if (q == NULL)
        return register_preauth_error(ev, ROOST_SE_BAD_REQUEST, NULL);
    if (roost_stanza_child(q, NULL, "remove") != NULL)
        /* §3.2: not registered (not logged in); as Prosody. */
        return register_preauth_error(ev, ROOST_SE_REGISTRATION_REQUIRED, NULL);
    name = roost_stanza_child_text(q, REGISTER_NS, "username");
    password = roost_stanza_child_text(q, REGISTER_NS, "password");
    /* §3.1: every field of the form, a password with character data. */
    if (name == NULL || *name == '\0' || password == NULL || *password == '\0')
        return register_preauth_error(ev, ROOST_SE_NOT_ACCEPTABLE,
                                      "A username and a password are "
                                      "required");
    user = roost_jid_prep_node(name);
    if (user == NULL || *user == '\0') {
        roost_free(user);
        return register_preauth_error(ev, ROOST_SE_NOT_ACCEPTABLE,
                                      "The requested username is invalid");
    }
    addr = roost_session_addr(ev->origin);
    if (addr == NULL)
        addr = "";
    if (!register_throttle_begin(ev->mod, addr)) {
        roost_stanza_t *r = roost_stanza_error(
            ev->stanza, ROOST_SE_POLICY_VIOLATION,
            "Too many registrations from this IP address recently");
        roost_stanza_t *e = roost_stanza_child(r, NULL, "error");

        /* As Prosody: try again later. */
        if (e != NULL)
            roost_stanza_set_attr(e, "type", "wait");
        roost_log(ev->mod, ROOST_LOG_INFO,
                  "registration of %s from %s refused: throttled", user, addr);
        roost_free(user);
        register_deliver(ev->origin, r);
        return ROOST_HANDLED;
    }
    /* Freed by register_create_done, which releases the session. */
    j = roost_xcalloc(1, sizeof(*j));
    j->iq = roost_stanza_ref(ev->stanza);
    j->session = ev->origin;
    roost_session_hold(j->session);
    j->user = user;
    j->addr = roost_xstrdup(addr);
    roost_account_create(ev->mod, user, password, register_create_done, j);
    return ROOST_HANDLED;
}

/* --- logged in (§3.1 registered, §3.2, §3.3) --- */

static void
register_send(roost_mod_t *m, roost_stanza_t *r)
{
    if (roost_stanza_attr(r, "from") == NULL)
        roost_stanza_set_attr(r, "from", roost_mod_host(m));
    roost_send(m, r);
    roost_stanza_unref(r);
}

static void
register_password_done(roost_mod_t *m, void *arg, int rc)
{
    register_job_t *j = arg;

    if (rc == 0) {
        roost_log(m, ROOST_LOG_INFO, "%s changed their password", j->user);
        register_send(m, roost_stanza_reply(j->iq));
    } else if (rc == -ROOST_EINVAL) {
        register_send(m, roost_stanza_error(j->iq, ROOST_SE_NOT_ACCEPTABLE,
                                            "The password is too long or "
                                            "contains characters that are "
                                            "not allowed"));
    } else {
        roost_log(m, ROOST_LOG_ERROR, "changing the password of %s: %s",
                  j->user, roost_strerror(rc));
        register_send(
            m, roost_stanza_error(j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL));
    }
    register_job_free(j);
}

/* Runs right before the core closes the account's sessions: the answer
 * reaches the requester first. */
static void
register_remove_done(roost_mod_t *m, void *arg, int rc)
{
    register_job_t *j = arg;

    if (rc == 0) {
        roost_log(m, ROOST_LOG_INFO, "%s removed their account", j->user);
        register_send(m, roost_stanza_reply(j->iq));
    } else if (rc == -ROOST_ENOTFOUND) {
        /* Removed meanwhile (another resource asked too). */
        register_send(
            m, roost_stanza_error(j->iq, ROOST_SE_REGISTRATION_REQUIRED, NULL));
    } else {
        roost_log(m, ROOST_LOG_ERROR, "removing the account %s: %s", j->user,
                  roost_strerror(rc));
        register_send(
            m, roost_stanza_error(j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL));
    }
    register_job_free(j);
}

/* The requester's own account, when the IQ went to the host or to their
 * bare JID; NULL otherwise (another user's JID never reaches us: the core
 * dispatches IQ handlers only for the host and the sender's own JID). */
static const char *
register_user(const roost_ev_t *ev)
{
    if (ev->origin == NULL || roost_jid_node(ev->from) == NULL)
        return NULL;
    if (roost_jid_node(ev->to) != NULL && !roost_jid_bare_eq(ev->from, ev->to))
        return NULL;
    return roost_jid_node(ev->from);
}

static roost_verdict_t
register_get(const roost_ev_t *ev, void *arg)
{
    const char *user = register_user(ev);
    roost_stanza_t *q, *u;
    roost_verdict_t v;

    if (user == NULL)
        return ROOST_PASS;
    q = roost_stanza_new(REGISTER_NS, "query");
    roost_stanza_add_child(q, NULL, "registered");
    u = roost_stanza_add_child(q, NULL, "username");
    roost_stanza_add_text(u, user, strlen(user));
    roost_stanza_add_child(q, NULL, "password");
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

static register_job_t *
register_job_new(const roost_ev_t *ev, const char *user)
{
    /* Freed by the done function. */
    register_job_t *j = roost_xcalloc(1, sizeof(*j));

    j->iq = roost_stanza_ref(ev->stanza);
    j->user = roost_xstrdup(user);
    return j;
}

static roost_verdict_t
register_set(const roost_ev_t *ev, void *arg)
{
    const char *user = register_user(ev);
    roost_stanza_t *q = roost_stanza_child(ev->stanza, REGISTER_NS, "query");
    roost_stanza_t *c;
    const char *name, *password;
    char *prepped;
    int n = 0, remove = 0;

    if (user == NULL)
        return ROOST_PASS;
    if (q == NULL)
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, NULL);
    for (c = roost_stanza_first_child(q); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        n++;
        if (strcmp(roost_stanza_name(c), "remove") == 0)
            remove = 1;
    }
    if (remove) {
        /* XEP-0077 §3.2: <remove/> must be the only child. */
        if (n != 1)
            return roost_bounce(ev, ROOST_SE_BAD_REQUEST, NULL);
        roost_account_delete(ev->mod, user, register_remove_done,
                             register_job_new(ev, user));
        return ROOST_HANDLED;
    }
    name = roost_stanza_child_text(q, REGISTER_NS, "username");
    password = roost_stanza_child_text(q, REGISTER_NS, "password");
    /* XEP-0077 §3.3: an empty password leaves the password as it is. */
    if (name == NULL || password == NULL || *password == '\0')
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, NULL);
    prepped = roost_jid_prep_node(name);
    if (prepped == NULL || strcmp(prepped, user) != 0) {
        roost_free(prepped);
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST,
                            "The username is not the account's");
    }
    roost_free(prepped);
    roost_account_set_password(ev->mod, user, password, register_password_done,
                               register_job_new(ev, user));
    return ROOST_HANDLED;
}

static int
register_load(roost_mod_t *m)
{
    const struct register_conf *conf = roost_mod_conf(m);
    int rc;

    /* Freed in register_unload. */
    *roost_mod_data(m) = roost_xcalloc(1, sizeof(register_mod_t));
    roost_add_feature(m, REGISTER_NS); /* as Prosody */
    rc = roost_hook_iq(m, REGISTER_NS, "query", register_get, register_set,
                       NULL);
    if (rc == 0)
        rc =
            roost_hook_preauth_iq(m, REGISTER_NS, "query", register_preauth_get,
                                  register_preauth_set, NULL);
    if (rc == 0 && conf->allow_registration) {
        /* XEP-0077 §4: only where registration is offered. */
        roost_stanza_t *f = roost_stanza_new(REGISTER_FEATURE_NS, "register");

        roost_add_preauth_stream_feature(m, f);
        roost_stanza_unref(f);
    }
    return rc;
}

static void
register_unload(roost_mod_t *m)
{
    register_mod_t *rm = *roost_mod_data(m);

    while (rm != NULL && rm->ips != NULL) {
        register_ip_t *e = rm->ips;

        rm->ips = e->next;
        roost_free(e->addr);
        roost_free(e);
    }
    roost_free(rm);
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(register) = {
    .abi = ROOST_ABI,
    .name = "register",
    .opts = register_opts,
    .conf_size = sizeof(struct register_conf),
    .load = register_load,
    .unload = register_unload,
};
