/* modules/mod_admin_adhoc.c: service administration (XEP-0133) over
 * ad-hoc commands (XEP-0050), for the vhost's administrators.
 *
 * Commands (XEP-0133 §4):
 * - add-user (§4.1): a form with accountjid, password and password-verify;
 *   the account is created through roost/account.h and the command
 *   completes when the creation has committed.  Errors are error stanzas,
 *   as §6 requires: an existing account is <conflict/>; a password that
 *   differs from password-verify, a missing accountjid or password, or an
 *   account of another host is <bad-request/> with the XEP-0050 §4.6
 *   <bad-payload/> and a text; a password the core refuses (SASLprep, too
 *   long) is <not-acceptable/>.  Prosody differs: it completes the command
 *   with <note type='error'/> instead of an error stanza.  password-verify
 *   is optional (it is not a required field in §4.1), but when present it
 *   must match.  email, given_name and surname are not offered (nothing
 *   stores them).
 * - delete-user (§4.2): accountjids (jid-multi); every JID is checked
 *   first (all on this host, bare), then the accounts are removed
 *   together and the command completes once all are done, with a note
 *   naming the accounts removed and, with type='error', those that could
 *   not be.  When none could be removed the answer is an error stanza
 *   (<item-not-found/> when none existed).  The requester's own account,
 *   when listed, goes last, so that the answer reaches them before their
 *   session ends.  Removal fires ROOST_EV_USER_DELETED (mod_presence
 *   cancels subscriptions), purges the account's data and closes its
 *   sessions with <not-authorized/> (the core, roost/account.h).
 * - change-user-password (§4.7): accountjid and password; the SCRAM
 *   secrets are replaced through roost/account.h (sessions already logged
 *   in stay) and the command completes once that has committed; errors as
 *   for add-user (<item-not-found/> when the account does not exist).
 * - get-user-roster (§4.8).  Executing it returns a form asking for one
 *   account (accountjids, jid-multi as the XEP has it; accountjid, as
 *   Prosody's form has it, is accepted too); submitting the form
 *   completes the command with a result form holding the account's roster
 *   as a jabber:iq:roster <query/> (the protocol view: no server-private
 *   flags, no hidden items), once the account's state is loaded
 *   (roost_roster_load_async: the account need not be online); an account
 *   that does not exist is <item-not-found/>.
 * - get-registered-users-num (§4.13) and get-online-users-num (§4.15):
 *   no form; executing completes at once with a result form holding
 *   registeredusersnum (the accounts stored for the vhost, counted on the
 *   storage worker: roost_host_account_count) or onlineusersnum (the
 *   accounts with at least one session, as §4.15 defines an online user:
 *   roost_host_online_count, a counter the core keeps).
 * - get-registered-users-list (§4.18) and get-online-users-list (§4.20):
 *   a form asking max_items (the XEP's options; any number from 1 to
 *   ADMIN_LIST_MAX is accepted, "none" or no field means ADMIN_LIST_MAX),
 *   then a result form with registereduserjids (the first accounts in
 *   byte order, read on the storage worker: roost_host_account_list) or
 *   onlineuserjids (sorted; roost_host_online_users) as jid-multi, and a
 *   note "N of M accounts shown" when the list was cut.  A bad max_items
 *   is <bad-request/> with <bad-payload/>.
 *
 * A form submitted with the first request completes in one step.
 * Sessions are bound to the requester's full JID, expire after
 * ADMIN_SESSION_TTL_MS and go when that session closes.
 *
 * Who is an admin: the host's `admins` list (roost_host_is_admin), plus
 * the module's own STRLIST option `admins` (admin_adhoc = { admins =
 * [...]; };) for admins of this module only.  Everyone else gets
 * <forbidden/> (XEP-0133 §5) and an empty command list.
 *
 * Discovery: disco#items and disco#info on command nodes belong to
 * mod_disco, which answers every node with item-not-found and owns the
 * IQ handlers, so this module answers them for local sessions of its own
 * vhost from a ROOST_EV_PRE_STANZA hook (wanted: a disco node registry in
 * module.h, e.g. roost_add_disco_node(m, node, items_fn, info_fn)).
 *
 * Asynchronous work (account operations, roster reads) runs on the
 * storage queue, which the core drains before unloading a module, so no
 * callback comes back after unload. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <roost/account.h>
#include <roost/module.h>
#include <roost/roster.h>

#define ADMIN_NS_COMMANDS "http://jabber.org/protocol/commands"
#define ADMIN_NS_ADMIN    "http://jabber.org/protocol/admin"
#define ADMIN_NS_XDATA    "jabber:x:data"
#define ADMIN_NS_ROSTER   "jabber:iq:roster"

#define ADMIN_NODE_ADD_USER    ADMIN_NS_ADMIN "#add-user"
#define ADMIN_NODE_DELETE_USER ADMIN_NS_ADMIN "#delete-user"
#define ADMIN_NODE_ROSTER      ADMIN_NS_ADMIN "#get-user-roster"
#define ADMIN_NODE_PASSWORD    ADMIN_NS_ADMIN "#change-user-password"
#define ADMIN_NODE_REG_NUM     ADMIN_NS_ADMIN "#get-registered-users-num"
#define ADMIN_NODE_ONLINE_NUM  ADMIN_NS_ADMIN "#get-online-users-num"
#define ADMIN_NODE_REG_LIST    ADMIN_NS_ADMIN "#get-registered-users-list"
#define ADMIN_NODE_ONLINE_LIST ADMIN_NS_ADMIN "#get-online-users-list"

#define ADMIN_SESSION_TTL_MS (10 * 60 * 1000) /* an idle form expires */
#define ADMIN_SESSIONS_MAX   64               /* per vhost; oldest goes */
#define ADMIN_DELETE_MAX     64               /* accounts in one delete-user */
#define ADMIN_LIST_MAX       1000 /* JIDs in one list ("none" included) */

struct admin_conf {
    const char *const *admins;
};

static const roost_opt_t admin_opts[] = {{"admins", ROOST_OPT_STRLIST,
                                          offsetof(struct admin_conf, admins),
                                          NULL, 0, 0},
                                         {NULL, 0, 0, NULL, 0, 0}};

/* One XEP-0050 session (a form handed out, not yet submitted). */
typedef struct admin_session {
    char id[48];
    char *owner; /* full JID of the requester */
    const struct admin_cmd *cmd;
    uint64_t born; /* monotonic ms */
    struct admin_session *next;
} admin_session_t;

/* Module instance state (roost_mod_data), freed in admin_unload. */
typedef struct {
    char **admins; /* prepared bare JIDs, NULL-terminated */
    admin_session_t *sessions;
    int nsessions;
    uint64_t serial;
} admin_mod_t;

typedef roost_verdict_t (*admin_cmd_fn)(const roost_ev_t *ev,
                                        const char *sessionid,
                                        roost_stanza_t *form);

typedef struct admin_cmd {
    const char *node;
    const char *name;
    admin_cmd_fn form;   /* the first stage: the form to fill, or NULL
                          * for a command without one (it completes at
                          * once: submit gets form NULL) */
    admin_cmd_fn submit; /* the submitted form: the result */
} admin_cmd_t;

static roost_verdict_t adduser_form(const roost_ev_t *ev, const char *sid,
                                    roost_stanza_t *form);
static roost_verdict_t adduser_submit(const roost_ev_t *ev, const char *sid,
                                      roost_stanza_t *form);
static roost_verdict_t deluser_form(const roost_ev_t *ev, const char *sid,
                                    roost_stanza_t *form);
static roost_verdict_t deluser_submit(const roost_ev_t *ev, const char *sid,
                                      roost_stanza_t *form);
static roost_verdict_t roster_form(const roost_ev_t *ev, const char *sid,
                                   roost_stanza_t *form);
static roost_verdict_t passwd_form(const roost_ev_t *ev, const char *sid,
                                   roost_stanza_t *form);
static roost_verdict_t passwd_submit(const roost_ev_t *ev, const char *sid,
                                     roost_stanza_t *form);
static roost_verdict_t roster_submit(const roost_ev_t *ev, const char *sid,
                                     roost_stanza_t *form);
static roost_verdict_t regnum_submit(const roost_ev_t *ev, const char *sid,
                                     roost_stanza_t *form);
static roost_verdict_t onlinenum_submit(const roost_ev_t *ev, const char *sid,
                                        roost_stanza_t *form);
static roost_verdict_t reglist_form(const roost_ev_t *ev, const char *sid,
                                    roost_stanza_t *form);
static roost_verdict_t reglist_submit(const roost_ev_t *ev, const char *sid,
                                      roost_stanza_t *form);
static roost_verdict_t onlinelist_form(const roost_ev_t *ev, const char *sid,
                                       roost_stanza_t *form);
static roost_verdict_t onlinelist_submit(const roost_ev_t *ev, const char *sid,
                                         roost_stanza_t *form);

static roost_jid_t *admin_account_jid(const roost_ev_t *ev, const char *var,
                                      const char *value);

static const admin_cmd_t admin_cmds[] = {
    {ADMIN_NODE_ADD_USER, "Add User", adduser_form, adduser_submit},
    {ADMIN_NODE_DELETE_USER, "Delete User", deluser_form, deluser_submit},
    {ADMIN_NODE_PASSWORD, "Change User Password", passwd_form, passwd_submit},
    {ADMIN_NODE_ROSTER, "Get User Roster", roster_form, roster_submit},
    {ADMIN_NODE_REG_NUM, "Get Number of Registered Users", NULL, regnum_submit},
    {ADMIN_NODE_ONLINE_NUM, "Get Number of Online Users", NULL,
     onlinenum_submit},
    {ADMIN_NODE_REG_LIST, "Get List of Registered Users", reglist_form,
     reglist_submit},
    {ADMIN_NODE_ONLINE_LIST, "Get List of Online Users", onlinelist_form,
     onlinelist_submit},
    {NULL, NULL, NULL, NULL}};

static uint64_t
admin_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
admin_is_admin(roost_mod_t *m, const roost_jid_t *from)
{
    admin_mod_t *a = *roost_mod_data(m);

    if (roost_jid_node(from) == NULL)
        return 0;
    if (roost_host_is_admin(m, from))
        return 1;
    for (char **p = a->admins; *p != NULL; p++)
        if (strcmp(*p, roost_jid_bare(from)) == 0)
            return 1;
    return 0;
}

static const admin_cmd_t *
admin_cmd_find(const char *node)
{
    for (const admin_cmd_t *c = admin_cmds; node != NULL && c->node != NULL;
         c++)
        if (strcmp(c->node, node) == 0)
            return c;
    return NULL;
}

/* --- XEP-0050 sessions --- */

static void
admin_session_unlink(admin_mod_t *a, admin_session_t **pp)
{
    admin_session_t *s = *pp;

    *pp = s->next;
    a->nsessions--;
    roost_free(s->owner);
    roost_free(s);
}

/* Drops expired sessions, and the oldest ones beyond the cap. */
static void
admin_session_prune(admin_mod_t *a)
{
    uint64_t now = admin_now_ms();
    admin_session_t **pp = &a->sessions;

    /* Newest first: everything after an expired one is older still. */
    for (int n = 0; *pp != NULL; n++) {
        if (n >= ADMIN_SESSIONS_MAX - 1 ||
            now - (*pp)->born > ADMIN_SESSION_TTL_MS)
            admin_session_unlink(a, pp);
        else
            pp = &(*pp)->next;
    }
}

static admin_session_t *
admin_session_new(roost_mod_t *m, const roost_jid_t *owner,
                  const admin_cmd_t *cmd)
{
    admin_mod_t *a = *roost_mod_data(m);
    admin_session_t *s;
    struct timespec ts;

    admin_session_prune(a);
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Freed by admin_session_unlink (submit, cancel, expiry, close,
     * unload). */
    s = roost_xcalloc(1, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%llx-%llx", (unsigned long long)ts.tv_sec,
             (unsigned long long)++a->serial);
    s->owner = roost_xstrdup(roost_jid_full(owner));
    s->cmd = cmd;
    s->born = admin_now_ms();
    s->next = a->sessions;
    a->sessions = s;
    a->nsessions++;
    return s;
}

/* The live session id owned by from, or NULL. */
static admin_session_t **
admin_session_find(admin_mod_t *a, const char *id, const roost_jid_t *from)
{
    uint64_t now = admin_now_ms();

    for (admin_session_t **pp = &a->sessions; *pp != NULL; pp = &(*pp)->next) {
        admin_session_t *s = *pp;

        if (strcmp(s->id, id) == 0 &&
            strcmp(s->owner, roost_jid_full(from)) == 0 &&
            now - s->born <= ADMIN_SESSION_TTL_MS)
            return pp;
    }
    return NULL;
}

static roost_verdict_t
admin_session_closed(const roost_ev_t *ev, void *arg)
{
    admin_mod_t *a = *roost_mod_data(ev->mod);
    const roost_jid_t *j = roost_session_jid(ev->origin);
    admin_session_t **pp = &a->sessions;

    if (j == NULL || a->sessions == NULL)
        return ROOST_PASS;
    while (*pp != NULL) {
        if (strcmp((*pp)->owner, roost_jid_full(j)) == 0)
            admin_session_unlink(a, pp);
        else
            pp = &(*pp)->next;
    }
    return ROOST_PASS;
}

/* --- replies --- */

/* Routes r (an answer to a request of a local session) and drops it.
 * Consumes r. */
static void
admin_send_take(roost_mod_t *m, roost_stanza_t *r)
{
    if (roost_stanza_attr(r, "from") == NULL)
        roost_stanza_set_attr(r, "from", roost_mod_host(m));
    roost_send(m, r);
    roost_stanza_unref(r);
}

/* An error reply to iq, with a XEP-0050 §4.6 specific condition
 * (bad-action, bad-sessionid, malformed-action, bad-payload) next to the
 * general one when specific is not NULL.  Borrows iq. */
static void
admin_error_iq(roost_mod_t *m, const roost_stanza_t *iq,
               roost_stanza_err_t cond, const char *specific, const char *text)
{
    roost_stanza_t *err = roost_stanza_error(iq, cond, text);
    roost_stanza_t *e = roost_stanza_child(err, NULL, "error");

    if (e != NULL && specific != NULL)
        roost_stanza_add_child(e, ADMIN_NS_COMMANDS, specific);
    admin_send_take(m, err);
}

/* admin_error_iq for the event's stanza.  Returns ROOST_HANDLED. */
static roost_verdict_t
admin_error(const roost_ev_t *ev, roost_stanza_err_t cond, const char *specific,
            const char *text)
{
    if (specific == NULL)
        return roost_bounce(ev, cond, text);
    admin_error_iq(ev->mod, ev->stanza, cond, specific, text);
    return ROOST_HANDLED;
}

/* The iq result to iq carrying a copy of payload.  Borrows both. */
static void
admin_result_iq(roost_mod_t *m, const roost_stanza_t *iq,
                const roost_stanza_t *payload)
{
    roost_stanza_t *r = roost_stanza_reply(iq);

    roost_stanza_add_copy(r, payload);
    admin_send_take(m, r);
}

/* <command/> of the reply, status and sessionid set. */
static roost_stanza_t *
admin_command_el(const char *node, const char *sid, const char *status)
{
    roost_stanza_t *c = roost_stanza_new(ADMIN_NS_COMMANDS, "command");

    roost_stanza_set_attr(c, "node", node);
    roost_stanza_set_attr(c, "sessionid", sid);
    roost_stanza_set_attr(c, "status", status);
    return c;
}

static roost_stanza_t *
admin_field(roost_stanza_t *x, const char *var, const char *type,
            const char *label, const char *value)
{
    roost_stanza_t *f = roost_stanza_add_child(x, NULL, "field");

    if (type != NULL)
        roost_stanza_set_attr(f, "type", type);
    if (label != NULL)
        roost_stanza_set_attr(f, "label", label);
    roost_stanza_set_attr(f, "var", var);
    if (value != NULL)
        roost_stanza_add_text(roost_stanza_add_child(f, NULL, "value"), value,
                              strlen(value));
    return f;
}

/* --- get-user-roster (XEP-0133 §4.8) --- */

static roost_verdict_t
roster_form(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    roost_stanza_t *c = admin_command_el(ADMIN_NODE_ROSTER, sid, "executing");
    roost_stanza_t *acts = roost_stanza_add_child(c, NULL, "actions");
    roost_stanza_t *x = roost_stanza_add_child(c, ADMIN_NS_XDATA, "x"), *f;
    roost_verdict_t v;

    roost_stanza_set_attr(acts, "execute", "complete");
    roost_stanza_add_child(acts, NULL, "complete");
    roost_stanza_set_attr(x, "type", "form");
    roost_stanza_add_text(roost_stanza_add_child(x, NULL, "title"),
                          "Getting a User's Roster", 23);
    roost_stanza_add_text(roost_stanza_add_child(x, NULL, "instructions"),
                          "Fill out this form to get a user's roster.", 42);
    admin_field(x, "FORM_TYPE", "hidden", NULL, ADMIN_NS_ADMIN);
    f = admin_field(x, "accountjids", "jid-multi",
                    "The Jabber ID(s) for which to retrieve the roster", NULL);
    roost_stanza_add_child(f, NULL, "required");
    v = roost_reply(ev, c);
    roost_stanza_unref(c);
    return v;
}

static int
roster_add_item(void *arg, const roost_roster_item_t *it)
{
    if (!it->hidden) /* not in the user's roster (roost/roster.h) */
        roost_roster_item_xml(arg, it);
    return 0;
}

/* The values of field var in a submitted form: fills out (at most max)
 * and returns how many there are. */
static int
admin_field_values(roost_stanza_t *form, const char *var, const char **out,
                   int max)
{
    int n = 0;

    for (roost_stanza_t *f = roost_stanza_first_child(form); f != NULL;
         f = roost_stanza_next_sibling(f)) {
        const char *fv = roost_stanza_attr(f, "var");

        if (strcmp(roost_stanza_name(f), "field") != 0 || fv == NULL ||
            strcmp(fv, var) != 0)
            continue;
        for (roost_stanza_t *v = roost_stanza_first_child(f); v != NULL;
             v = roost_stanza_next_sibling(v))
            if (strcmp(roost_stanza_name(v), "value") == 0) {
                if (n < max)
                    out[n] = roost_stanza_text(v);
                n++;
            }
    }
    return n;
}

/* One get-user-roster waiting for the account's state; freed by
 * roster_loaded. */
typedef struct {
    roost_stanza_t *iq; /* the request (a reference) */
    char sid[48];
    char *account; /* bare JID */
    char *user;    /* its localpart */
} roster_job_t;

/* The account's state is loaded (result 0) or it does not exist: the
 * answer. */
static void
roster_loaded(roost_mod_t *m, void *arg, int result)
{
    roster_job_t *j = arg;
    roost_stanza_t *c, *x, *q;

    if (result != 0) {
        admin_error_iq(m, j->iq, ROOST_SE_ITEM_NOT_FOUND, NULL,
                       "no such account");
    } else {
        q = roost_stanza_new(ADMIN_NS_ROSTER, "query");
        roost_roster_items(m, j->user, roster_add_item, q);
        c = admin_command_el(ADMIN_NODE_ROSTER, j->sid, "completed");
        x = roost_stanza_add_child(c, ADMIN_NS_XDATA, "x");
        roost_stanza_set_attr(x, "type", "result");
        admin_field(x, "FORM_TYPE", "hidden", NULL, ADMIN_NS_ADMIN);
        admin_field(x, "accountjids", NULL, NULL, j->account);
        roost_stanza_add_copy(x, q);
        admin_result_iq(m, j->iq, c);
        roost_stanza_unref(c);
        roost_stanza_unref(q);
    }
    roost_stanza_unref(j->iq);
    roost_free(j->account);
    roost_free(j->user);
    roost_free(j);
}

static roost_verdict_t
roster_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *form)
{
    const char *vals[2];
    roster_job_t *j;
    roost_jid_t *jid;
    int n = admin_field_values(form, "accountjids", vals, 2);

    /* COMPAT: Prosody's form names the field accountjid (jid-single);
     * accept a submission written for it. */
    if (n == 0)
        n = admin_field_values(form, "accountjid", vals, 2);
    if (n != 1)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           n == 0 ? "accountjids is required"
                                  : "one account at a time");
    jid = admin_account_jid(ev, "accountjids", vals[0]);
    if (jid == NULL)
        return ROOST_HANDLED;
    /* The account may have no session: its state is loaded for the
     * answer (or found loaded). */
    j = roost_xcalloc(1, sizeof(*j)); /* freed by roster_loaded */
    j->iq = roost_stanza_ref(ev->stanza);
    snprintf(j->sid, sizeof(j->sid), "%s", sid);
    j->account = roost_xstrdup(roost_jid_bare(jid));
    j->user = roost_xstrdup(roost_jid_node(jid));
    roost_roster_load_async(ev->mod, j->user, roster_loaded, j);
    roost_jid_free(jid);
    return ROOST_HANDLED;
}

/* --- shared by add-user and delete-user --- */

/* A <command status='executing'/> for node holding a form of the given
 * title and instructions with its FORM_TYPE; *x gets the form. */
static roost_stanza_t *
admin_form_new(const char *node, const char *sid, const char *title,
               const char *instructions, roost_stanza_t **x)
{
    roost_stanza_t *c = admin_command_el(node, sid, "executing");
    roost_stanza_t *acts = roost_stanza_add_child(c, NULL, "actions");

    roost_stanza_set_attr(acts, "execute", "complete");
    roost_stanza_add_child(acts, NULL, "complete");
    *x = roost_stanza_add_child(c, ADMIN_NS_XDATA, "x");
    roost_stanza_set_attr(*x, "type", "form");
    roost_stanza_add_text(roost_stanza_add_child(*x, NULL, "title"), title,
                          strlen(title));
    roost_stanza_add_text(roost_stanza_add_child(*x, NULL, "instructions"),
                          instructions, strlen(instructions));
    admin_field(*x, "FORM_TYPE", "hidden", NULL, ADMIN_NS_ADMIN);
    return c;
}

/* Sends the form c (executing) as the answer to ev.  Consumes c. */
static roost_verdict_t
admin_reply_take(const roost_ev_t *ev, roost_stanza_t *c)
{
    roost_verdict_t v = roost_reply(ev, c);

    roost_stanza_unref(c);
    return v;
}

/* value (from field var) as the bare JID of an account of this host:
 * a new JID, or NULL once the error reply is queued. */
static roost_jid_t *
admin_account_jid(const roost_ev_t *ev, const char *var, const char *value)
{
    roost_jid_t *j = value != NULL ? roost_jid_new(value) : NULL;
    char text[96];

    if (j == NULL || roost_jid_node(j) == NULL ||
        roost_jid_resource(j) != NULL) {
        roost_jid_free(j);
        snprintf(text, sizeof(text), "%s: not the bare JID of an account", var);
        roost_bounce(ev, ROOST_SE_JID_MALFORMED, text);
        return NULL;
    }
    if (strcmp(roost_jid_domain(j), roost_mod_host(ev->mod)) != 0) {
        roost_jid_free(j);
        snprintf(text, sizeof(text), "%s: the account is not on this host",
                 var);
        admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload", text);
        return NULL;
    }
    return j;
}

static void
admin_note(roost_stanza_t *c, const char *type, const char *text)
{
    roost_stanza_t *n = roost_stanza_add_child(c, NULL, "note");

    roost_stanza_set_attr(n, "type", type);
    roost_stanza_add_text(n, text, strlen(text));
}

/* --- add-user (XEP-0133 §4.1) --- */

/* One creation in flight; freed by adduser_done. */
typedef struct {
    roost_stanza_t *iq; /* the request (a reference) */
    char sid[48];
    char *account; /* bare JID */
    char *by;      /* the requester's bare JID, for the log */
} adduser_job_t;

static roost_verdict_t
adduser_form(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    roost_stanza_t *x, *f;
    roost_stanza_t *c =
        admin_form_new(ADMIN_NODE_ADD_USER, sid, "Adding a User",
                       "Fill out this form to add a user.", &x);

    f = admin_field(x, "accountjid", "jid-single",
                    "The Jabber ID for the account to be added", NULL);
    roost_stanza_add_child(f, NULL, "required");
    /* Required here (not in §4.1): an account without a password could
     * never log in. */
    f = admin_field(x, "password", "text-private",
                    "The password for this account", NULL);
    roost_stanza_add_child(f, NULL, "required");
    admin_field(x, "password-verify", "text-private", "Retype password", NULL);
    return admin_reply_take(ev, c);
}

static void
adduser_done(roost_mod_t *m, void *arg, int rc)
{
    adduser_job_t *j = arg;

    if (rc == 0) {
        roost_stanza_t *c =
            admin_command_el(ADMIN_NODE_ADD_USER, j->sid, "completed");

        roost_log(m, ROOST_LOG_INFO, "account %s created by %s", j->account,
                  j->by);
        admin_note(c, "info", "Account successfully created");
        admin_result_iq(m, j->iq, c);
        roost_stanza_unref(c);
    } else if (rc == -ROOST_EEXIST) {
        admin_error_iq(m, j->iq, ROOST_SE_CONFLICT, NULL,
                       "the account already exists");
    } else if (rc == -ROOST_EINVAL) {
        admin_error_iq(m, j->iq, ROOST_SE_NOT_ACCEPTABLE, NULL,
                       "the password is too long or contains characters "
                       "that are not allowed");
    } else {
        roost_log(m, ROOST_LOG_ERROR, "creating the account %s: %s", j->account,
                  roost_strerror(rc));
        admin_error_iq(m, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL, NULL);
    }
    roost_stanza_unref(j->iq);
    roost_free(j->account);
    roost_free(j->by);
    roost_free(j);
}

static roost_verdict_t
adduser_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *form)
{
    const char *acct[2], *pw[2] = {NULL, NULL}, *pv[2] = {NULL, NULL};
    int n = admin_field_values(form, "accountjid", acct, 2);
    int npw = admin_field_values(form, "password", pw, 2);
    int npv = admin_field_values(form, "password-verify", pv, 2);
    adduser_job_t *j;
    roost_jid_t *jid;

    if (n != 1)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           n == 0 ? "accountjid is required"
                                  : "accountjid: one account at a time");
    if (npw != 1 || pw[0] == NULL || *pw[0] == '\0')
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           "password is required");
    /* password-verify is optional, but when given it must match. */
    if (npv > 1 || (npv == 1 && strcmp(pv[0] != NULL ? pv[0] : "", pw[0]) != 0))
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           "password and password-verify differ");
    jid = admin_account_jid(ev, "accountjid", acct[0]);
    if (jid == NULL)
        return ROOST_HANDLED;
    /* Freed by adduser_done. */
    j = roost_xcalloc(1, sizeof(*j));
    j->iq = roost_stanza_ref(ev->stanza);
    snprintf(j->sid, sizeof(j->sid), "%s", sid);
    j->account = roost_xstrdup(roost_jid_bare(jid));
    j->by = roost_xstrdup(roost_jid_bare(ev->from));
    roost_account_create(ev->mod, roost_jid_node(jid), pw[0], adduser_done, j);
    roost_jid_free(jid);
    return ROOST_HANDLED;
}

/* --- change-user-password (XEP-0133 §4.7) --- */

static roost_verdict_t
passwd_form(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    roost_stanza_t *x, *f;
    roost_stanza_t *c =
        admin_form_new(ADMIN_NODE_PASSWORD, sid, "Changing a User Password",
                       "Fill out this form to change a user's password.", &x);

    f = admin_field(x, "accountjid", "jid-single",
                    "The Jabber ID for this account", NULL);
    roost_stanza_add_child(f, NULL, "required");
    f = admin_field(x, "password", "text-private",
                    "The password for this account", NULL);
    roost_stanza_add_child(f, NULL, "required");
    return admin_reply_take(ev, c);
}

/* The new password is stored (or refused): the answer.  Frees j. */
static void
passwd_done(roost_mod_t *m, void *arg, int rc)
{
    adduser_job_t *j = arg;

    if (rc == 0) {
        roost_stanza_t *c =
            admin_command_el(ADMIN_NODE_PASSWORD, j->sid, "completed");

        roost_log(m, ROOST_LOG_INFO, "password of %s changed by %s", j->account,
                  j->by);
        admin_result_iq(m, j->iq, c);
        roost_stanza_unref(c);
    } else if (rc == -ROOST_ENOTFOUND) {
        admin_error_iq(m, j->iq, ROOST_SE_ITEM_NOT_FOUND, NULL,
                       "no such account");
    } else if (rc == -ROOST_EINVAL) {
        admin_error_iq(m, j->iq, ROOST_SE_NOT_ACCEPTABLE, NULL,
                       "the password is too long or contains characters "
                       "that are not allowed");
    } else {
        roost_log(m, ROOST_LOG_ERROR, "changing the password of %s: %s",
                  j->account, roost_strerror(rc));
        admin_error_iq(m, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL, NULL);
    }
    roost_stanza_unref(j->iq);
    roost_free(j->account);
    roost_free(j->by);
    roost_free(j);
}

static roost_verdict_t
passwd_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *form)
{
    const char *acct[2], *pw[2] = {NULL, NULL};
    int n = admin_field_values(form, "accountjid", acct, 2);
    int npw = admin_field_values(form, "password", pw, 2);
    adduser_job_t *j;
    roost_jid_t *jid;

    if (n != 1)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           n == 0 ? "accountjid is required"
                                  : "accountjid: one account at a time");
    if (npw != 1 || pw[0] == NULL || *pw[0] == '\0')
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           "password is required");
    jid = admin_account_jid(ev, "accountjid", acct[0]);
    if (jid == NULL)
        return ROOST_HANDLED;
    /* Freed by passwd_done. */
    j = roost_xcalloc(1, sizeof(*j));
    j->iq = roost_stanza_ref(ev->stanza);
    snprintf(j->sid, sizeof(j->sid), "%s", sid);
    j->account = roost_xstrdup(roost_jid_bare(jid));
    j->by = roost_xstrdup(roost_jid_bare(ev->from));
    roost_account_set_password(ev->mod, roost_jid_node(jid), pw[0], passwd_done,
                               j);
    roost_jid_free(jid);
    return ROOST_HANDLED;
}

/* --- get-registered-users-num, get-online-users-num (XEP-0133 §4.13,
 * §4.15): no form, the answer at once --- */

/* The completed command carrying a result form with one field var
 * (label) whose value is n.  Borrows iq. */
static void
admin_num_result(roost_mod_t *m, const roost_stanza_t *iq, const char *node,
                 const char *sid, const char *var, const char *label, int n)
{
    roost_stanza_t *c = admin_command_el(node, sid, "completed");
    roost_stanza_t *x = roost_stanza_add_child(c, ADMIN_NS_XDATA, "x");
    char num[16];

    roost_stanza_set_attr(x, "type", "result");
    admin_field(x, "FORM_TYPE", "hidden", NULL, ADMIN_NS_ADMIN);
    snprintf(num, sizeof(num), "%d", n);
    admin_field(x, var, NULL, label, num);
    admin_result_iq(m, iq, c);
    roost_stanza_unref(c);
}

static roost_verdict_t
onlinenum_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    /* Accounts with a session (a counter in the core, not a scan). */
    admin_num_result(ev->mod, ev->stanza, ADMIN_NODE_ONLINE_NUM, sid,
                     "onlineusersnum", "The number of online users",
                     roost_host_online_count(ev->mod));
    return ROOST_HANDLED;
}

/* One get-registered-users-num waiting for the count; freed by
 * regnum_done. */
typedef struct {
    roost_stanza_t *iq; /* the request (a reference) */
    char sid[48];
} regnum_job_t;

static void
regnum_done(roost_mod_t *m, void *arg, int result)
{
    regnum_job_t *j = arg;

    if (result < 0) {
        roost_log(m, ROOST_LOG_ERROR, "counting the accounts: %s",
                  roost_strerror(result));
        admin_error_iq(m, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL, NULL);
    } else {
        admin_num_result(m, j->iq, ADMIN_NODE_REG_NUM, j->sid,
                         "registeredusersnum", "The number of registered users",
                         result);
    }
    roost_stanza_unref(j->iq);
    roost_free(j);
}

static roost_verdict_t
regnum_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    /* Freed by regnum_done. */
    regnum_job_t *j = roost_xcalloc(1, sizeof(*j));

    j->iq = roost_stanza_ref(ev->stanza);
    snprintf(j->sid, sizeof(j->sid), "%s", sid);
    /* Counted on the storage worker: the loop never waits for it. */
    roost_host_account_count(ev->mod, regnum_done, j);
    return ROOST_HANDLED;
}

/* --- get-registered-users-list, get-online-users-list (XEP-0133 §4.18,
 * §4.20): a form asking max_items, then the JIDs --- */

static roost_verdict_t
admin_list_form(const roost_ev_t *ev, const char *node, const char *sid,
                const char *title, const char *instructions)
{
    static const char *const opts[] = {"25",  "50",  "75",  "100",
                                       "150", "200", "none"};
    roost_stanza_t *x, *f;
    roost_stanza_t *c = admin_form_new(node, sid, title, instructions, &x);

    f = admin_field(x, "max_items", "list-single",
                    "Maximum number of items to show", NULL);
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        roost_stanza_t *o = roost_stanza_add_child(f, NULL, "option");

        roost_stanza_set_attr(o, "label",
                              strcmp(opts[i], "none") == 0 ? "None" : opts[i]);
        roost_stanza_add_text(roost_stanza_add_child(o, NULL, "value"), opts[i],
                              strlen(opts[i]));
    }
    return admin_reply_take(ev, c);
}

/* max_items of a submitted form (absent or "none": ADMIN_LIST_MAX), or
 * -1 once the error reply is queued. */
static int
admin_list_max(const roost_ev_t *ev, roost_stanza_t *form)
{
    const char *v[2] = {NULL, NULL};
    int n = form != NULL ? admin_field_values(form, "max_items", v, 2) : 0;
    char *end = NULL;
    long max;

    if (n == 0 || (n == 1 && v[0] != NULL && strcmp(v[0], "none") == 0))
        return ADMIN_LIST_MAX;
    max = n == 1 && v[0] != NULL ? strtol(v[0], &end, 10) : 0;
    if (n != 1 || v[0] == NULL || *v[0] == '\0' || *end != '\0' || max < 1 ||
        max > ADMIN_LIST_MAX) {
        admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                    "max_items: a number from 1 to 1000, or none");
        return -1;
    }
    return (int)max;
}

/* The completed command with a result form listing node@host for each
 * of the n nodes in field var; a note when total is more than n.
 * Borrows iq. */
static void
admin_list_result(roost_mod_t *m, const roost_stanza_t *iq, const char *node,
                  const char *sid, const char *var, const char *label,
                  const char *const *nodes, int n, int total)
{
    roost_stanza_t *c = admin_command_el(node, sid, "completed");
    roost_stanza_t *x = roost_stanza_add_child(c, ADMIN_NS_XDATA, "x"), *f;
    const char *host = roost_mod_host(m);

    roost_stanza_set_attr(x, "type", "result");
    admin_field(x, "FORM_TYPE", "hidden", NULL, ADMIN_NS_ADMIN);
    f = admin_field(x, var, "jid-multi", label, NULL);
    for (int i = 0; i < n; i++) {
        roost_stanza_t *v = roost_stanza_add_child(f, NULL, "value");

        roost_stanza_add_text(v, nodes[i], strlen(nodes[i]));
        roost_stanza_add_text(v, "@", 1);
        roost_stanza_add_text(v, host, strlen(host));
    }
    if (total > n) {
        char text[96];

        snprintf(text, sizeof(text), "%d of %d accounts shown", n, total);
        admin_note(c, "info", text);
    }
    admin_result_iq(m, iq, c);
    roost_stanza_unref(c);
}

static roost_verdict_t
onlinelist_form(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    return admin_list_form(ev, ADMIN_NODE_ONLINE_LIST, sid,
                           "Requesting List of Online Users",
                           "Fill out this form to request the online users "
                           "of this service.");
}

typedef struct {
    char **nodes;
    int n, max;
} onlinelist_t;

static int
onlinelist_one(void *arg, const char *node)
{
    onlinelist_t *l = arg;

    if (l->n < l->max)
        l->nodes[l->n++] = roost_xstrdup(node); /* freed below */
    return 0;
}

static int
onlinelist_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static roost_verdict_t
onlinelist_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *form)
{
    int max = admin_list_max(ev, form), total;
    onlinelist_t l;

    if (max < 0)
        return ROOST_HANDLED;
    l.n = 0;
    l.max = max;
    l.nodes = roost_xcalloc((size_t)max, sizeof(char *)); /* freed below */
    total = roost_host_online_users(ev->mod, onlinelist_one, &l);
    qsort(l.nodes, (size_t)l.n, sizeof(char *), onlinelist_cmp);
    admin_list_result(ev->mod, ev->stanza, ADMIN_NODE_ONLINE_LIST, sid,
                      "onlineuserjids", "The list of all online users",
                      (const char *const *)l.nodes, l.n, total);
    for (int i = 0; i < l.n; i++)
        roost_free(l.nodes[i]);
    roost_free(l.nodes);
    return ROOST_HANDLED;
}

static roost_verdict_t
reglist_form(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    return admin_list_form(ev, ADMIN_NODE_REG_LIST, sid,
                           "Requesting List of Registered Users",
                           "Fill out this form to request the registered "
                           "users of this service.");
}

static void
reglist_done(roost_mod_t *m, void *arg, int result, const char *const *users)
{
    regnum_job_t *j = arg;
    int n = 0;

    if (result < 0) {
        roost_log(m, ROOST_LOG_ERROR, "listing the accounts: %s",
                  roost_strerror(result));
        admin_error_iq(m, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL, NULL);
    } else {
        while (users[n] != NULL)
            n++;
        admin_list_result(m, j->iq, ADMIN_NODE_REG_LIST, j->sid,
                          "registereduserjids", "The list of all users", users,
                          n, result);
    }
    roost_stanza_unref(j->iq);
    roost_free(j);
}

static roost_verdict_t
reglist_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *form)
{
    int max = admin_list_max(ev, form);
    regnum_job_t *j;

    if (max < 0)
        return ROOST_HANDLED;
    j = roost_xcalloc(1, sizeof(*j)); /* freed by reglist_done */
    j->iq = roost_stanza_ref(ev->stanza);
    snprintf(j->sid, sizeof(j->sid), "%s", sid);
    /* Read on the storage worker: the loop never waits for it. */
    roost_host_account_list(ev->mod, max, reglist_done, j);
    return ROOST_HANDLED;
}

/* --- delete-user (XEP-0133 §4.2) --- */

typedef struct deluser_job deluser_job_t;

typedef struct {
    deluser_job_t *job;
    char *user; /* prepared localpart */
    int rc;
} deluser_acct_t;

/* One delete-user in flight; freed by deluser_finish. */
struct deluser_job {
    roost_stanza_t *iq; /* the request (a reference) */
    char sid[48];
    char *by;    /* the requester's bare JID, for the log */
    int n;       /* accounts in acct */
    int pending; /* removals in flight, other than self */
    int self;    /* index of the requester's own account, or -1 */
    deluser_acct_t acct[ADMIN_DELETE_MAX];
};

static roost_verdict_t
deluser_form(const roost_ev_t *ev, const char *sid, roost_stanza_t *unused)
{
    roost_stanza_t *x, *f;
    roost_stanza_t *c =
        admin_form_new(ADMIN_NODE_DELETE_USER, sid, "Deleting a User",
                       "Fill out this form to delete a user.", &x);

    f = admin_field(x, "accountjids", "jid-multi", "The Jabber ID(s) to delete",
                    NULL);
    roost_stanza_add_child(f, NULL, "required");
    return admin_reply_take(ev, c);
}

static void
deluser_job_free(deluser_job_t *j)
{
    for (int i = 0; i < j->n; i++)
        roost_free(j->acct[i].user);
    roost_stanza_unref(j->iq);
    roost_free(j->by);
    roost_free(j);
}

/* One line "user@host" (with the reason when rc is not 0) of a note. */
static void
deluser_note_line(roost_mod_t *m, roost_stanza_t *note, const deluser_acct_t *a)
{
    const char *host = roost_mod_host(m);

    roost_stanza_add_text(note, "\n", 1);
    roost_stanza_add_text(note, a->user, strlen(a->user));
    roost_stanza_add_text(note, "@", 1);
    roost_stanza_add_text(note, host, strlen(host));
    if (a->rc == -ROOST_ENOTFOUND)
        roost_stanza_add_text(note, " (no such account)", 18);
    else if (a->rc != 0)
        roost_stanza_add_text(note, " (internal error)", 17);
}

/* Every removal is done: the answer.  Frees j. */
static void
deluser_finish(roost_mod_t *m, deluser_job_t *j)
{
    roost_stanza_t *c, *note;
    int ok = 0, missing = 0;

    for (int i = 0; i < j->n; i++) {
        if (j->acct[i].rc == 0)
            ok++;
        else if (j->acct[i].rc == -ROOST_ENOTFOUND)
            missing++;
    }
    if (ok == 0) {
        /* Nothing changed: an error (XEP-0133 §6). */
        if (missing == j->n)
            admin_error_iq(m, j->iq, ROOST_SE_ITEM_NOT_FOUND, NULL,
                           j->n == 1 ? "no such account"
                                     : "none of these accounts exists");
        else
            admin_error_iq(m, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL,
                           "the accounts could not be deleted");
        deluser_job_free(j);
        return;
    }
    c = admin_command_el(ADMIN_NODE_DELETE_USER, j->sid, "completed");
    note = roost_stanza_add_child(c, NULL, "note");
    roost_stanza_set_attr(note, "type", "info");
    roost_stanza_add_text(note, "The following accounts were deleted:", 36);
    for (int i = 0; i < j->n; i++)
        if (j->acct[i].rc == 0)
            deluser_note_line(m, note, &j->acct[i]);
    if (ok < j->n) {
        note = roost_stanza_add_child(c, NULL, "note");
        roost_stanza_set_attr(note, "type", "error");
        roost_stanza_add_text(
            note, "The following accounts could not be deleted:", 44);
        for (int i = 0; i < j->n; i++)
            if (j->acct[i].rc != 0)
                deluser_note_line(m, note, &j->acct[i]);
    }
    admin_result_iq(m, j->iq, c);
    roost_stanza_unref(c);
    deluser_job_free(j);
}

static void deluser_done(roost_mod_t *m, void *arg, int rc);

/* One removal (other than self) is over, or the issuing is: once none is
 * left, the requester's own account goes, or the answer. */
static void
deluser_release(roost_mod_t *m, deluser_job_t *j)
{
    if (--j->pending > 0)
        return;
    if (j->self >= 0)
        roost_account_delete(m, j->acct[j->self].user, deluser_done,
                             &j->acct[j->self]);
    else
        deluser_finish(m, j);
}

/* Runs right before the core closes the account's sessions. */
static void
deluser_done(roost_mod_t *m, void *arg, int rc)
{
    deluser_acct_t *a = arg;
    deluser_job_t *j = a->job;

    a->rc = rc;
    if (rc == 0)
        roost_log(m, ROOST_LOG_INFO, "account %s@%s deleted by %s", a->user,
                  roost_mod_host(m), j->by);
    else if (rc != -ROOST_ENOTFOUND)
        roost_log(m, ROOST_LOG_ERROR, "deleting the account %s@%s: %s", a->user,
                  roost_mod_host(m), roost_strerror(rc));
    if (j->self >= 0 && a == &j->acct[j->self])
        deluser_finish(m, j); /* the last one: before the session ends */
    else
        deluser_release(m, j);
}

static roost_verdict_t
deluser_submit(const roost_ev_t *ev, const char *sid, roost_stanza_t *form)
{
    const char *vals[ADMIN_DELETE_MAX + 1];
    int n = admin_field_values(form, "accountjids", vals, ADMIN_DELETE_MAX + 1);
    deluser_job_t *j;

    if (n == 0)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           "accountjids is required");
    if (n > ADMIN_DELETE_MAX)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           "accountjids: too many accounts at a time");
    /* Freed by deluser_finish (or below, when a JID is refused). */
    j = roost_xcalloc(1, sizeof(*j));
    j->self = -1;
    for (int i = 0; i < n; i++) {
        roost_jid_t *jid = admin_account_jid(ev, "accountjids", vals[i]);
        int dup = 0;

        if (jid == NULL) {
            /* Nothing is deleted unless every JID is good. */
            deluser_job_free(j);
            return ROOST_HANDLED;
        }
        for (int k = 0; k < j->n && !dup; k++)
            dup = strcmp(j->acct[k].user, roost_jid_node(jid)) == 0;
        if (!dup) {
            if (roost_jid_bare_eq(jid, ev->from))
                j->self = j->n;
            j->acct[j->n].job = j;
            j->acct[j->n].user = roost_xstrdup(roost_jid_node(jid));
            j->n++;
        }
        roost_jid_free(jid);
    }
    j->iq = roost_stanza_ref(ev->stanza);
    snprintf(j->sid, sizeof(j->sid), "%s", sid);
    j->by = roost_xstrdup(roost_jid_bare(ev->from));
    /* One count for each removal but self, plus one held while issuing
     * them (a done callback cannot free j under this loop). */
    j->pending = j->n - (j->self >= 0) + 1;
    for (int i = 0; i < j->n; i++)
        if (i != j->self)
            roost_account_delete(ev->mod, j->acct[i].user, deluser_done,
                                 &j->acct[i]);
    deluser_release(ev->mod, j);
    return ROOST_HANDLED;
}

/* --- ad-hoc command execution (XEP-0050 §3.4-§3.6, §4) --- */

static roost_verdict_t
admin_command_set(const roost_ev_t *ev, void *arg)
{
    admin_mod_t *a = *roost_mod_data(ev->mod);
    roost_stanza_t *req =
        roost_stanza_child(ev->stanza, ADMIN_NS_COMMANDS, "command");
    const admin_cmd_t *cmd;
    const char *action, *sid;
    roost_stanza_t *form;
    admin_session_t *s, **pp;
    roost_verdict_t v;
    char id[sizeof(s->id)];

    if (roost_jid_node(ev->to) != NULL || req == NULL)
        return ROOST_PASS; /* a command to an account is not ours */
    cmd = admin_cmd_find(roost_stanza_attr(req, "node"));
    if (cmd == NULL)
        return roost_bounce(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    if (!admin_is_admin(ev->mod, ev->from))
        return roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    action = roost_stanza_attr(req, "action");
    if (action == NULL)
        action = "execute";
    if (strcmp(action, "execute") != 0 && strcmp(action, "complete") != 0 &&
        strcmp(action, "cancel") != 0 && strcmp(action, "next") != 0 &&
        strcmp(action, "prev") != 0)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "malformed-action", NULL);
    form = roost_stanza_child(req, ADMIN_NS_XDATA, "x");
    if (form != NULL) {
        const char *t = roost_stanza_attr(form, "type");

        if (t == NULL || strcmp(t, "submit") != 0)
            form = NULL; /* only a submitted form is data (XEP-0004) */
    }
    sid = roost_stanza_attr(req, "sessionid");
    if (sid == NULL) {
        /* A new execution.  With the form already filled in, complete
         * in one step; otherwise hand out the form. */
        if (strcmp(action, "execute") != 0 && strcmp(action, "complete") != 0)
            return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-action", NULL);
        s = admin_session_new(ev->mod, ev->from, cmd);
        if (form == NULL && cmd->form != NULL)
            return cmd->form(ev, s->id, NULL);
        snprintf(id, sizeof(id), "%s", s->id);
        admin_session_unlink(a, &a->sessions);
        return cmd->submit(ev, id, form);
    }
    pp = admin_session_find(a, sid, ev->from);
    if (pp == NULL || (*pp)->cmd != cmd)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-sessionid", NULL);
    if (strcmp(action, "cancel") == 0) {
        roost_stanza_t *c = admin_command_el(cmd->node, sid, "canceled");

        admin_session_unlink(a, pp);
        v = roost_reply(ev, c);
        roost_stanza_unref(c);
        return v;
    }
    if (strcmp(action, "next") == 0 || strcmp(action, "prev") == 0)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-action", NULL);
    if (form == NULL)
        return admin_error(ev, ROOST_SE_BAD_REQUEST, "bad-payload",
                           "a submitted form is required");
    snprintf(id, sizeof(id), "%s", sid);
    admin_session_unlink(a, pp);
    return cmd->submit(ev, id, form);
}

/* --- discovery (XEP-0050 §2) --- */

static void
admin_identity(roost_stanza_t *q, const char *type, const char *name)
{
    roost_stanza_t *i = roost_stanza_add_child(q, NULL, "identity");

    roost_stanza_set_attr(i, "category", "automation");
    roost_stanza_set_attr(i, "type", type);
    if (name != NULL)
        roost_stanza_set_attr(i, "name", name);
}

static void
admin_feature(roost_stanza_t *q, const char *var)
{
    roost_stanza_set_attr(roost_stanza_add_child(q, NULL, "feature"), "var",
                          var);
}

/* disco#items and disco#info get on the commands node or a command node
 * of this host, from a local session of this vhost.  Everything else
 * PASSes on to mod_disco and the router. */
static roost_verdict_t
admin_disco(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *req, *q;
    const char *type, *node, *ns;
    const admin_cmd_t *cmd = NULL;
    int items, admin;
    roost_verdict_t v;

    if (roost_stanza_kind(ev->stanza) != ROOST_STANZA_IQ ||
        roost_jid_node(ev->to) != NULL || roost_jid_resource(ev->to) != NULL ||
        strcmp(roost_jid_domain(ev->to), roost_mod_host(ev->mod)) != 0)
        return ROOST_PASS;
    type = roost_stanza_attr(ev->stanza, "type");
    req = roost_stanza_first_child(ev->stanza);
    if (type == NULL || strcmp(type, "get") != 0 || req == NULL ||
        strcmp(roost_stanza_name(req), "query") != 0 ||
        (ns = roost_stanza_ns(req)) == NULL ||
        (node = roost_stanza_attr(req, "node")) == NULL)
        return ROOST_PASS;
    if (strcmp(ns, ROOST_NS_DISCO_ITEMS) == 0)
        items = 1;
    else if (strcmp(ns, ROOST_NS_DISCO_INFO) == 0)
        items = 0;
    else
        return ROOST_PASS;
    if (strcmp(node, ADMIN_NS_COMMANDS) != 0 &&
        (items || (cmd = admin_cmd_find(node)) == NULL))
        return ROOST_PASS;
    admin = admin_is_admin(ev->mod, ev->from);
    q = roost_stanza_new(items ? ROOST_NS_DISCO_ITEMS : ROOST_NS_DISCO_INFO,
                         "query");
    roost_stanza_set_attr(q, "node", node);
    if (items) {
        /* §2.2: the commands this requester may run (none for others). */
        for (const admin_cmd_t *c = admin_cmds; admin && c->node != NULL; c++) {
            roost_stanza_t *it = roost_stanza_add_child(q, NULL, "item");

            roost_stanza_set_attr(it, "jid", roost_mod_host(ev->mod));
            roost_stanza_set_attr(it, "node", c->node);
            roost_stanza_set_attr(it, "name", c->name);
        }
    } else if (cmd == NULL) {
        admin_identity(q, "command-list", NULL);
    } else if (!admin) {
        roost_stanza_unref(q);
        return roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    } else {
        /* §3.2: a command node's identity and features. */
        admin_identity(q, "command-node", cmd->name);
        admin_feature(q, ADMIN_NS_COMMANDS);
        admin_feature(q, ADMIN_NS_XDATA);
    }
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

/* --- lifecycle --- */

static void
admin_unload(roost_mod_t *m)
{
    admin_mod_t *a = *roost_mod_data(m);

    if (a == NULL)
        return;
    while (a->sessions != NULL)
        admin_session_unlink(a, &a->sessions);
    for (char **p = a->admins; p != NULL && *p != NULL; p++)
        roost_free(*p);
    roost_free(a->admins);
    roost_free(a);
    *roost_mod_data(m) = NULL;
}

static int
admin_load(roost_mod_t *m)
{
    const struct admin_conf *conf = roost_mod_conf(m);
    admin_mod_t *a;
    size_t n = 0;
    int rc;

    while (conf->admins != NULL && conf->admins[n] != NULL)
        n++;
    /* Freed in admin_unload. */
    a = roost_xcalloc(1, sizeof(*a));
    a->admins = roost_xcalloc(n + 1, sizeof(char *));
    *roost_mod_data(m) = a;
    for (size_t i = 0; i < n; i++) {
        roost_jid_t *j = roost_jid_new(conf->admins[i]);

        if (j == NULL || roost_jid_node(j) == NULL ||
            roost_jid_resource(j) != NULL) {
            roost_log(m, ROOST_LOG_ERROR, "admins: '%s' is not a bare JID",
                      conf->admins[i]);
            roost_jid_free(j);
            admin_unload(m);
            return -ROOST_ECONFIG;
        }
        a->admins[i] = roost_xstrdup(roost_jid_bare(j));
        roost_jid_free(j);
    }
    if (n == 0)
        roost_log(m, ROOST_LOG_WARN,
                  "no admins configured: every command is forbidden");
    roost_add_feature(m, ADMIN_NS_COMMANDS);
    rc = roost_hook_iq(m, ADMIN_NS_COMMANDS, "command", NULL, admin_command_set,
                       NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRE_STANZA, ROOST_PRIO_DEFAULT, admin_disco,
                        NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_SESSION_CLOSED, ROOST_PRIO_DEFAULT,
                        admin_session_closed, NULL);
    if (rc != 0)
        admin_unload(m);
    return rc;
}

ROOST_MODULE(admin_adhoc) = {
    .abi = ROOST_ABI,
    .name = "admin_adhoc",
    .opts = admin_opts,
    .conf_size = sizeof(struct admin_conf),
    .load = admin_load,
    .unload = admin_unload,
};
