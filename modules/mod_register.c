/* modules/mod_register.c: In-Band Registration (XEP-0077) for logged-in
 * users: the password change of §3.3.
 *
 * A user sends <query xmlns='jabber:iq:register'> with <username/> (their
 * own localpart, compared after nodeprep) and a non-empty <password/>, to
 * the host (as in the XEP's example) or to their own account (no 'to').
 * The new SCRAM secrets are derived and written by the core
 * (roost_account_set_password, on the storage worker); the result goes
 * out once the write committed.  Sessions already logged in stay.  A get
 * answers <registered/> with the username and an empty <password/> (§3.1,
 * an entity that is already registered; as Prosody).
 *
 * Errors: no <username/> or <password/>, another user's name, or an empty
 * password (which §3.3 says MUST leave the password as it is):
 * <bad-request/> (as Prosody); a password SASLprep refuses or one that is
 * too long: <not-acceptable/> with a text; <remove/> (§3.2, cancelling the
 * account): <not-allowed/>, the condition §3.2 gives for "no sender is
 * allowed to cancel registrations in-band", until the core can remove an
 * account whose state is loaded (see include/roost/account.h); <remove/>
 * with siblings: <bad-request/> (§3.2).  The password is never logged.
 *
 * Not here: registering new accounts before authentication (§3.1), which
 * needs the core's stream layer to pass jabber:iq:register IQs from an
 * unauthenticated stream and to offer the <register/> stream feature; the
 * options allow_registration and registration_throttle belong with it. */
#include <string.h>

#include <roost/account.h>
#include <roost/module.h>

#define REGISTER_NS "jabber:iq:register"

/* A password change in flight: answered and freed by register_done. */
typedef struct {
    roost_stanza_t *iq; /* a reference to the request */
    char *user;
} register_job_t;

static void
register_send(roost_mod_t *m, roost_stanza_t *r)
{
    if (roost_stanza_attr(r, "from") == NULL)
        roost_stanza_set_attr(r, "from", roost_mod_host(m));
    roost_send(m, r);
    roost_stanza_unref(r);
}

static void
register_done(roost_mod_t *m, void *arg, int rc)
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
    roost_stanza_unref(j->iq);
    roost_free(j->user);
    roost_free(j);
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

static roost_verdict_t
register_set(const roost_ev_t *ev, void *arg)
{
    const char *user = register_user(ev);
    roost_stanza_t *q = roost_stanza_child(ev->stanza, REGISTER_NS, "query");
    roost_stanza_t *c;
    const char *name, *password;
    register_job_t *j;
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
        return roost_bounce(ev, ROOST_SE_NOT_ALLOWED,
                            "Accounts cannot be removed in-band on this "
                            "server");
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
    /* Freed by register_done. */
    j = roost_xcalloc(1, sizeof(*j));
    j->iq = roost_stanza_ref(ev->stanza);
    j->user = roost_xstrdup(user);
    roost_account_set_password(ev->mod, user, password, register_done, j);
    return ROOST_HANDLED;
}

static int
register_load(roost_mod_t *m)
{
    roost_add_feature(m, REGISTER_NS); /* as Prosody */
    return roost_hook_iq(m, REGISTER_NS, "query", register_get, register_set,
                         NULL);
}

ROOST_MODULE(register) = {
    .abi = ROOST_ABI,
    .name = "register",
    .load = register_load,
};
