/* modules/mod_vcard.c: vcard-temp (XEP-0054), server side.
 *
 * A user stores one vCard: an IQ set of <vCard xmlns='vcard-temp'/> with
 * no 'to', or to the user's own bare JID, replaces it whole (§2.2; there
 * are no partial updates), and an IQ get returns it (§2.1), or an empty
 * <vCard/> when none was stored (one of the two answers §2.1 allows).
 * Anyone may read another local user's vCard with a get to that bare JID
 * (§2.3), online or not; the server answers for the user, never the
 * user's client.  When that user has no vCard the answer is
 * <service-unavailable/> (§2.3, the XEP's example), the same as the core
 * gives for an account that does not exist, so that a vCard request
 * cannot tell the two apart.  A set to any JID but one's own bare JID is
 * <forbidden/> (§2.2).  The server itself has no vCard: a get to the
 * domain is <item-not-found/> and a set <forbidden/> (as Prosody).
 *
 * The vCard is kept as the serialised <vCard/> element in the KEYVAL
 * store "vcard" and is never held in memory between requests: every read
 * and write goes through the storage worker, and the answer is sent from
 * the done callback (with a reference to the request).  The storage
 * worker runs jobs in order, so a get that follows a set sees it.  A
 * vCard whose serialised form exceeds the option max_size (default 64
 * KiB) is refused with <not-acceptable/> and a text (RFC 6120 §8.3.3.12;
 * XEP-0054 names no condition, XEP-0060 uses not-acceptable for a payload
 * that is too big).  An account's vCard goes with the account
 * (roostctl deluser purges all of its stores).
 *
 * Prosody 0.12 differs: it answers a get of one's own missing vCard and
 * of another user's with <item-not-found/>, and has no size limit.
 *
 * Not here: vCard-based avatars (XEP-0153 presence hashes), vCard4
 * (XEP-0292), a configured vCard for the server, and content checks on
 * the vCard beyond its size (XEP-0054 is historical; clients send what
 * they like). */
#include <string.h>

#include <roost/module.h>
#include <roost/store.h>

#define VCARD_NS "vcard-temp"

struct vcard_conf {
    int64_t max_size;
};

static const roost_opt_t vcard_opts[] = {{"max_size", ROOST_OPT_SIZE,
                                          offsetof(struct vcard_conf, max_size),
                                          "65536", 256, 16 * 1024 * 1024},
                                         {NULL, 0, 0, NULL, 0, 0}};

/* Module instance state (roost_mod_data), freed in vcard_unload. */
typedef struct {
    roost_store_t *store;
} vcard_t;

/* One read or write of a user's vCard: made on the loop, run on the
 * storage worker, answered and freed by the done callback. */
typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    roost_stanza_t *iq; /* a reference to the request */
    char *user;         /* whose vCard */
    char *val;          /* set: the document; get: what was read */
    size_t len;
    int own; /* get: the requester's own vCard */
} vcard_job_t;

static vcard_job_t *
vcard_job_new(const roost_ev_t *ev, const char *user)
{
    /* Freed by vcard_job_free in the done callback. */
    vcard_job_t *j = roost_xcalloc(1, sizeof(*j));
    vcard_t *v = *roost_mod_data(ev->mod);

    j->m = ev->mod;
    j->store = v->store;
    j->iq = roost_stanza_ref(ev->stanza);
    j->user = roost_xstrdup(user);
    return j;
}

static void
vcard_job_free(vcard_job_t *j)
{
    roost_stanza_unref(j->iq);
    roost_free(j->user);
    roost_free(j->val);
    roost_free(j);
}

/* Routes r (a reply to j->iq) and drops it.  The requester may be gone by
 * now: the router then drops the reply. */
static void
vcard_send(vcard_job_t *j, roost_stanza_t *r)
{
    if (roost_stanza_attr(r, "from") == NULL)
        roost_stanza_set_attr(r, "from", roost_mod_host(j->m));
    roost_send(j->m, r);
    roost_stanza_unref(r);
}

static void
vcard_send_error(vcard_job_t *j, roost_stanza_err_t cond)
{
    vcard_send(j, roost_stanza_error(j->iq, cond, NULL));
}

/* --- get --- */

static int
vcard_get_work(void *arg)
{
    vcard_job_t *j = arg;

    return roost_store_get(j->store, j->user, NULL, &j->val, &j->len);
}

static void
vcard_get_done(void *arg, int rc)
{
    vcard_job_t *j = arg;
    roost_stanza_t *r, *card = NULL;

    if (rc < 0 && rc != -ROOST_ENOTFOUND) {
        roost_log(j->m, ROOST_LOG_ERROR, "reading the vCard of %s: %s", j->user,
                  roost_strerror(rc));
        vcard_send_error(j, ROOST_SE_INTERNAL_SERVER_ERROR);
        goto out;
    }
    if (rc == 0) {
        card = roost_stanza_parse(j->val, j->len);
        if (card == NULL || strcmp(roost_stanza_name(card), "vCard") != 0) {
            roost_log(j->m, ROOST_LOG_ERROR,
                      "the stored vCard of %s is unreadable", j->user);
            roost_stanza_unref(card);
            vcard_send_error(j, ROOST_SE_INTERNAL_SERVER_ERROR);
            goto out;
        }
    } else if (!j->own) {
        /* XEP-0054 §2.3: an error; the same one as for no account. */
        vcard_send_error(j, ROOST_SE_SERVICE_UNAVAILABLE);
        goto out;
    } else {
        /* XEP-0054 §2.1: an empty <vCard/> when there is none. */
        card = roost_stanza_new(VCARD_NS, "vCard");
    }
    r = roost_stanza_reply(j->iq);
    roost_stanza_add_copy(r, card);
    roost_stanza_unref(card);
    vcard_send(j, r);
out:
    vcard_job_free(j);
}

static roost_verdict_t
vcard_get_user(const roost_ev_t *ev, const char *user, int own)
{
    vcard_job_t *j = vcard_job_new(ev, user);

    j->own = own;
    roost_store_async(ev->mod, vcard_get_work, vcard_get_done, j);
    return ROOST_HANDLED;
}

/* --- set --- */

static int
vcard_set_work(void *arg)
{
    vcard_job_t *j = arg;

    return roost_store_set(j->store, j->user, NULL, j->val, j->len);
}

static void
vcard_set_done(void *arg, int rc)
{
    vcard_job_t *j = arg;

    if (rc < 0) {
        roost_log(j->m, ROOST_LOG_ERROR, "storing the vCard of %s: %s", j->user,
                  roost_strerror(rc));
        vcard_send_error(j, ROOST_SE_INTERNAL_SERVER_ERROR);
    } else {
        roost_log(j->m, ROOST_LOG_DEBUG, "stored the vCard of %s (%zu bytes)",
                  j->user, j->len);
        vcard_send(j, roost_stanza_reply(j->iq));
    }
    vcard_job_free(j);
}

static roost_verdict_t
vcard_set_own(const roost_ev_t *ev, const char *user)
{
    const struct vcard_conf *conf = roost_mod_conf(ev->mod);
    roost_stanza_t *card = roost_stanza_child(ev->stanza, VCARD_NS, "vCard");
    vcard_job_t *j;
    size_t len;
    char *doc;

    if (card == NULL) /* the dispatcher matched it: cannot happen */
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST, NULL);
    /* A standalone document: the root carries xmlns='vcard-temp'. */
    doc = roost_stanza_serialize(card, NULL, &len);
    if ((int64_t)len > conf->max_size) {
        roost_free(doc);
        roost_log(ev->mod, ROOST_LOG_INFO,
                  "refused a vCard of %zu bytes for %s (max_size %lld)", len,
                  user, (long long)conf->max_size);
        return roost_bounce(ev, ROOST_SE_NOT_ACCEPTABLE,
                            "The vCard is too large");
    }
    j = vcard_job_new(ev, user);
    j->val = doc;
    j->len = len;
    roost_store_async(ev->mod, vcard_set_work, vcard_set_done, j);
    return ROOST_HANDLED;
}

/* --- handlers --- */

/* IQ get to the host or to the sender's own bare JID. */
static roost_verdict_t
vcard_get(const roost_ev_t *ev, void *arg)
{
    const char *node = roost_jid_node(ev->to);

    if (node == NULL)
        return roost_bounce(ev, ROOST_SE_ITEM_NOT_FOUND, NULL);
    return vcard_get_user(ev, node, roost_jid_bare_eq(ev->from, ev->to));
}

/* IQ set to the host or to the sender's own bare JID. */
static roost_verdict_t
vcard_set(const roost_ev_t *ev, void *arg)
{
    const char *node = roost_jid_node(ev->to);

    if (node == NULL || !roost_jid_bare_eq(ev->from, ev->to))
        return roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    return vcard_set_own(ev, node);
}

/* IQs to another local user's bare JID (the core has checked that the
 * account exists). */
static roost_verdict_t
vcard_iq_bare(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *req = roost_stanza_first_child(ev->stanza);
    const char *type = roost_stanza_attr(ev->stanza, "type");
    const char *ns = req != NULL ? roost_stanza_ns(req) : NULL;

    if (ns == NULL || strcmp(ns, VCARD_NS) != 0 ||
        strcmp(roost_stanza_name(req), "vCard") != 0 || type == NULL)
        return ROOST_PASS;
    if (strcmp(type, "get") == 0)
        return vcard_get(ev, arg);
    if (strcmp(type, "set") == 0)
        return vcard_set(ev, arg);
    return ROOST_PASS;
}

/* --- lifecycle --- */

static int
vcard_load(roost_mod_t *m)
{
    /* Freed in vcard_unload. */
    vcard_t *v = roost_xcalloc(1, sizeof(*v));
    int rc;

    *roost_mod_data(m) = v;
    v->store = roost_store_open(m, "vcard", ROOST_STORE_KEYVAL);
    if (v->store == NULL)
        return -ROOST_ESTORAGE;
    roost_add_feature(m, VCARD_NS); /* XEP-0054 §3 */
    rc = roost_hook_iq(m, VCARD_NS, "vCard", vcard_get, vcard_set, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_IQ_BARE, ROOST_PRIO_DEFAULT, vcard_iq_bare,
                        NULL);
    return rc;
}

static void
vcard_unload(roost_mod_t *m)
{
    roost_free(*roost_mod_data(m));
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(vcard) = {
    .abi = ROOST_ABI,
    .name = "vcard",
    .opts = vcard_opts,
    .conf_size = sizeof(struct vcard_conf),
    .load = vcard_load,
    .unload = vcard_unload,
};
