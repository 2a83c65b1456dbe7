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
 * Avatars (XEP-0398, with XEP-0153 and XEP-0084).  The account's avatar
 * is the vCard's PHOTO (TYPE and a BINVAL whose base64 decodes strictly,
 * whitespace allowed); its hash is the hex SHA-1 of the image bytes, kept
 * in memory per account (roost_user_state, read with the vCard at login).
 * A vCard set by the client with a valid PHOTO is published, after it is
 * stored, to the account's PEP avatar nodes (§2.2): the data item, then
 * a metadata item with one <info/> (id = hash, bytes, type from TYPE or
 * the image's magic, width and height when the image header gives them),
 * both with id = hash; a set that drops the PHOTO publishes an empty
 * <metadata/> (XEP-0084 §4.5) and retracts the old data item.  These are
 * ordinary pubsub IQs from the account's bare JID to itself, routed with
 * roost_send to whichever module serves PEP (mod_pep); the nodes are
 * created first with pubsub#access_model=open, because the vCard they
 * mirror is readable by anyone (XEP-0054 §2.3); an existing node keeps
 * its configuration (the create fails with <conflict/>, ignored).  The
 * other way (§2.1), mod_pep sends us an IQ set of <photo
 * xmlns='urn:roost:vcard-photo' type='..' id='sha1'>base64</photo> (empty
 * to remove the photo), from the account's bare JID to itself; it is
 * accepted only from the server (ev->origin NULL), its hash checked
 * against id, and the PHOTO of the stored vCard replaced (max_size still
 * applies).  Neither direction echoes the other: we publish only for the
 * client's vCard sets and mod_pep reflects only the client's publishes.
 * Every available presence from the client, broadcast or directed (MUC
 * joins, XEP-0398 §3), carries <x xmlns='vcard-temp:x:update'><photo>hash
 * </photo></x> (an empty <photo/> without avatar): an <x/> without
 * <photo/> or with another hash is replaced (MUST and MAY of §3), one with
 * an empty <photo/> is left alone (XEP-0153 §4.1: the client is not
 * ready to advertise).  The event's stanza is never changed: a rewritten
 * copy replaces it (roost_event_replace) once, in ROOST_EV_PRE_STANZA,
 * before mod_presence fans a broadcast out to contacts and resources (one
 * copy per broadcast, not per recipient), and again in ROOST_EV_OUTBOUND
 * and ROOST_EV_DELIVER only for presence whose hash is out of date: a
 * probe answered after an avatar change, and the other resources' stored
 * presence that a resource coming online gets, carry the new hash.  The
 * account advertises urn:xmpp:pep-vcard-conversion:0 (§2).
 *
 * Prosody 0.12 differs: it answers a get of one's own missing vCard and
 * of another user's with <item-not-found/>, and has no size limit.  Its
 * mod_vcard_legacy keeps the vCard in PEP (vCard4) and builds vcard-temp
 * from it; here the vCard stays the vcard-temp document and only the
 * avatar is mirrored.
 *
 * Not here: vCard4 (XEP-0292), a configured vCard for the server, EXTVAL
 * photos (no hash to publish), resending presence when the avatar changes
 * (XEP-0398 §4 leaves that to clients), and content checks on the vCard
 * beyond its size and the PHOTO (XEP-0054 is historical; clients send
 * what they like). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <roost/module.h>
#include <roost/store.h>
#include <roost/util.h>

#define VCARD_NS          "vcard-temp"
#define VCARD_NS_UPDATE   "vcard-temp:x:update"               /* XEP-0153 */
#define VCARD_NS_CONV     "urn:xmpp:pep-vcard-conversion:0"   /* XEP-0398 */
#define VCARD_NS_PHOTO    "urn:roost:vcard-photo"             /* mod_pep */
#define VCARD_NS_PUBSUB   "http://jabber.org/protocol/pubsub" /* XEP-0060 */
#define VCARD_NS_AV_DATA  "urn:xmpp:avatar:data"              /* XEP-0084 */
#define VCARD_NS_AV_META  "urn:xmpp:avatar:metadata"          /* XEP-0084 */
#define VCARD_FORM_CONFIG VCARD_NS_PUBSUB "#node_config"

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
    unsigned long next_id; /* ids of the IQs we send to PEP */
} vcard_t;

/* Per account (roost_user_state): the avatar's hash, "" for none. */
typedef struct {
    char hash[ROOST_SHA1_HEX_SIZE];
} vcard_user_t;

/* An avatar taken from a PHOTO: the image's hash and size, its type and
 * its base64 without whitespace.  type and b64 from roost_xmalloc
 * (vcard_photo_clear). */
typedef struct {
    char hash[ROOST_SHA1_HEX_SIZE];
    char *type;
    char *b64;
    size_t bytes;
    long width, height; /* 0: unknown */
} vcard_photo_t;

/* One read or write of a user's vCard: made on the loop, run on the
 * storage worker, answered and freed by the done callback. */
typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    roost_stanza_t *iq; /* a reference to the request */
    char *user;         /* whose vCard */
    char *val;          /* set: the document; get: what was read */
    size_t len;
    int own;             /* get: the requester's own vCard */
    int64_t max_size;    /* photo: the vCard's limit */
    vcard_photo_t photo; /* set, photo: the new avatar (hash "" none) */
    int photo_ok;        /* set: photo is a valid avatar */
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
    roost_free(j->photo.type);
    roost_free(j->photo.b64);
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

/* --- avatars: images --- */

/* The MIME type and pixel size of PNG, GIF and JPEG images from their
 * headers (0 when the header does not say); NULL type for other data. */
static const char *
vcard_image_info(const unsigned char *p, size_t n, long *w, long *h)
{
    *w = *h = 0;
    if (n >= 24 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 &&
        memcmp(p + 12, "IHDR", 4) == 0) {
        *w = (long)((uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 |
                    (uint32_t)p[18] << 8 | p[19]);
        *h = (long)((uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 |
                    (uint32_t)p[22] << 8 | p[23]);
        return "image/png";
    }
    if (n >= 10 &&
        (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) {
        *w = p[6] | p[7] << 8;
        *h = p[8] | p[9] << 8;
        return "image/gif";
    }
    if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
        /* Markers up to the first SOFn (not DHT C4, JPG C8, DAC CC). */
        size_t i = 2;

        while (i + 9 < n && p[i] == 0xFF) {
            unsigned m = p[i + 1];
            size_t seg = (size_t)p[i + 2] << 8 | p[i + 3];

            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
                *h = p[i + 5] << 8 | p[i + 6];
                *w = p[i + 7] << 8 | p[i + 8];
                break;
            }
            if (seg < 2)
                break;
            i += 2 + seg;
        }
        return "image/jpeg";
    }
    return NULL;
}

static void
vcard_photo_clear(vcard_photo_t *ph)
{
    roost_free(ph->type);
    roost_free(ph->b64);
    memset(ph, 0, sizeof(*ph));
}

/* Fills ph from base64 b64 and a type (NULL: from the image's magic).
 * Returns 0, or -ROOST_EINVAL when b64 is not strict base64 (whitespace
 * allowed, as vCards wrap BINVAL) or decodes to nothing. */
static int
vcard_photo_from_b64(vcard_photo_t *ph, const char *b64, const char *type)
{
    unsigned char *img;
    const char *sniffed;
    size_t n;

    memset(ph, 0, sizeof(*ph));
    img = roost_base64_decode(b64, &n);
    if (img == NULL || n == 0) {
        roost_free(img);
        return -ROOST_EINVAL;
    }
    roost_sha1_hex(img, n, ph->hash);
    sniffed = vcard_image_info(img, n, &ph->width, &ph->height);
    if (type == NULL || type[0] == '\0')
        type = sniffed;
    ph->type = type != NULL ? roost_xstrdup(type) : NULL;
    ph->b64 = roost_base64_encode(img, n);
    ph->bytes = n;
    roost_free(img);
    return 0;
}

/* The avatar of a parsed <vCard/>: 1 with ph filled, 0 without a PHOTO
 * carrying a valid BINVAL (an EXTVAL has no bytes to hash). */
static int
vcard_photo_of(roost_stanza_t *card, vcard_photo_t *ph)
{
    roost_stanza_t *photo = roost_stanza_child(card, VCARD_NS, "PHOTO");
    const char *bin =
        photo ? roost_stanza_child_text(photo, VCARD_NS, "BINVAL") : NULL;

    memset(ph, 0, sizeof(*ph));
    if (bin == NULL)
        return 0;
    return vcard_photo_from_b64(
               ph, bin, roost_stanza_child_text(photo, VCARD_NS, "TYPE")) == 0;
}

/* --- avatars: per-account hash --- */

/* On the storage worker: the stored vCard's avatar hash. */
static void *
vcard_user_load(roost_mod_t *m, const char *user)
{
    vcard_t *v = *roost_mod_data(m);
    vcard_user_t *u = roost_xcalloc(1, sizeof(*u)); /* vcard_user_free */
    roost_stanza_t *card;
    vcard_photo_t ph;
    char *val = NULL;
    size_t len;

    if (roost_store_get(v->store, user, NULL, &val, &len) == 0 &&
        (card = roost_stanza_parse(val, len)) != NULL) {
        if (vcard_photo_of(card, &ph)) {
            memcpy(u->hash, ph.hash, sizeof(u->hash));
            vcard_photo_clear(&ph);
        }
        roost_stanza_unref(card);
    }
    roost_free(val);
    return u;
}

static void
vcard_user_free(roost_mod_t *m, void *state)
{
    (void)m;
    roost_free(state);
}

static const roost_user_state_t vcard_user_ops = {vcard_user_load,
                                                  vcard_user_free};

static void
vcard_user_set_hash(roost_mod_t *m, const char *user, const char *hash)
{
    void **slot = roost_user_data(m, user);
    vcard_user_t *u = slot != NULL ? *slot : NULL;

    if (u != NULL)
        snprintf(u->hash, sizeof(u->hash), "%s", hash);
}

/* --- avatars: vCard to PEP (XEP-0398 §2.2) --- */

/* Routes an IQ set carrying payload from the account's bare JID to itself
 * (mod_pep takes it as the owner's).  Its answer comes back to the bare
 * JID, where nobody takes it, and is dropped. */
static void
vcard_pep_send(roost_mod_t *m, const char *user, roost_stanza_t *payload)
{
    vcard_t *v = *roost_mod_data(m);
    roost_stanza_t *iq = roost_stanza_new(ROOST_NS_CLIENT, "iq");
    char bare[1100], id[48];

    snprintf(bare, sizeof(bare), "%s@%s", user, roost_mod_host(m));
    snprintf(id, sizeof(id), "vcard-avatar-%lu", ++v->next_id);
    roost_stanza_set_attr(iq, "type", "set");
    roost_stanza_set_attr(iq, "id", id);
    roost_stanza_set_attr(iq, "from", bare);
    roost_stanza_set_attr(iq, "to", bare);
    roost_stanza_add_copy(iq, payload);
    roost_send(m, iq);
    roost_stanza_unref(iq);
}

/* A <pubsub/> with one action element on node; returns the action. */
static roost_stanza_t *
vcard_pubsub_new(roost_stanza_t **ps, const char *action, const char *node)
{
    roost_stanza_t *a;

    *ps = roost_stanza_new(VCARD_NS_PUBSUB, "pubsub");
    a = roost_stanza_add_child(*ps, NULL, action);
    roost_stanza_set_attr(a, "node", node);
    return a;
}

static void
vcard_field(roost_stanza_t *x, const char *var, const char *type,
            const char *value)
{
    roost_stanza_t *f = roost_stanza_add_child(x, NULL, "field");

    roost_stanza_set_attr(f, "var", var);
    if (type != NULL)
        roost_stanza_set_attr(f, "type", type);
    f = roost_stanza_add_child(f, NULL, "value");
    roost_stanza_add_text(f, value, strlen(value));
}

/* Creates node open (the vCard is public); an existing node answers
 * <conflict/> and keeps its configuration. */
static void
vcard_pep_create(roost_mod_t *m, const char *user, const char *node)
{
    roost_stanza_t *ps, *conf, *x;

    vcard_pubsub_new(&ps, "create", node);
    conf = roost_stanza_add_child(ps, NULL, "configure");
    x = roost_stanza_add_child(conf, "jabber:x:data", "x");
    roost_stanza_set_attr(x, "type", "submit");
    vcard_field(x, "FORM_TYPE", "hidden", VCARD_FORM_CONFIG);
    vcard_field(x, "pubsub#access_model", NULL, "open");
    vcard_pep_send(m, user, ps);
    roost_stanza_unref(ps);
}

static void
vcard_pep_publish(roost_mod_t *m, const char *user, const vcard_photo_t *ph)
{
    roost_stanza_t *ps, *item, *el;
    char num[32];

    vcard_pep_create(m, user, VCARD_NS_AV_DATA);
    vcard_pep_create(m, user, VCARD_NS_AV_META);
    /* XEP-0084 §4.1: the data first, then the metadata pointing at it. */
    item = roost_stanza_add_child(
        vcard_pubsub_new(&ps, "publish", VCARD_NS_AV_DATA), NULL, "item");
    roost_stanza_set_attr(item, "id", ph->hash);
    el = roost_stanza_add_child(item, VCARD_NS_AV_DATA, "data");
    roost_stanza_add_text(el, ph->b64, strlen(ph->b64));
    vcard_pep_send(m, user, ps);
    roost_stanza_unref(ps);

    item = roost_stanza_add_child(
        vcard_pubsub_new(&ps, "publish", VCARD_NS_AV_META), NULL, "item");
    roost_stanza_set_attr(item, "id", ph->hash);
    el = roost_stanza_add_child(item, VCARD_NS_AV_META, "metadata");
    el = roost_stanza_add_child(el, NULL, "info");
    snprintf(num, sizeof(num), "%zu", ph->bytes);
    roost_stanza_set_attr(el, "bytes", num);
    if (ph->height > 0) {
        snprintf(num, sizeof(num), "%ld", ph->height);
        roost_stanza_set_attr(el, "height", num);
    }
    roost_stanza_set_attr(el, "id", ph->hash);
    if (ph->type != NULL)
        roost_stanza_set_attr(el, "type", ph->type);
    if (ph->width > 0) {
        snprintf(num, sizeof(num), "%ld", ph->width);
        roost_stanza_set_attr(el, "width", num);
    }
    vcard_pep_send(m, user, ps);
    roost_stanza_unref(ps);
}

/* XEP-0084 §4.5: an empty <metadata/> disables the avatar; the old data
 * item goes (Prosody purges the data node). */
static void
vcard_pep_remove(roost_mod_t *m, const char *user, const char *old)
{
    roost_stanza_t *ps, *item;

    item = roost_stanza_add_child(
        vcard_pubsub_new(&ps, "publish", VCARD_NS_AV_META), NULL, "item");
    roost_stanza_add_child(item, VCARD_NS_AV_META, "metadata");
    vcard_pep_send(m, user, ps);
    roost_stanza_unref(ps);
    item = roost_stanza_add_child(
        vcard_pubsub_new(&ps, "retract", VCARD_NS_AV_DATA), NULL, "item");
    roost_stanza_set_attr(item, "id", old);
    vcard_pep_send(m, user, ps);
    roost_stanza_unref(ps);
}

/* After a client's vCard set committed: the PEP copy and the hash. */
static void
vcard_avatar_changed(vcard_job_t *j)
{
    void **slot = roost_user_data(j->m, j->user);
    vcard_user_t *u = slot != NULL ? *slot : NULL;
    char old[ROOST_SHA1_HEX_SIZE];

    snprintf(old, sizeof(old), "%s", u != NULL ? u->hash : "");
    if (j->photo_ok)
        vcard_pep_publish(j->m, j->user, &j->photo);
    else if (old[0] != '\0')
        vcard_pep_remove(j->m, j->user, old);
    vcard_user_set_hash(j->m, j->user, j->photo_ok ? j->photo.hash : "");
}

/* --- avatars: PEP to vCard (XEP-0398 §2.1), asked by mod_pep --- */

/* On the storage worker: the stored vCard with its PHOTO replaced by
 * j->photo (or removed), stored again.  j->val gets nothing; the result
 * is 0 or -ROOST_E* (-ROOST_ELIMIT over max_size). */
static int
vcard_photo_work(void *arg)
{
    vcard_job_t *j = arg;
    roost_stanza_t *card = NULL, *p, *el;
    char *val = NULL, *doc;
    size_t len;
    int rc = roost_store_get(j->store, j->user, NULL, &val, &len);

    if (rc == 0)
        card = roost_stanza_parse(val, len);
    roost_free(val);
    if (rc < 0 && rc != -ROOST_ENOTFOUND)
        return rc;
    if (card != NULL && strcmp(roost_stanza_name(card), "vCard") != 0) {
        roost_stanza_unref(card);
        return -ROOST_ESTORAGE;
    }
    if (card == NULL && j->photo.b64 == NULL)
        return 0; /* no vCard, no photo: nothing to remove */
    if (card == NULL)
        card = roost_stanza_new(VCARD_NS, "vCard");
    while ((p = roost_stanza_child(card, VCARD_NS, "PHOTO")) != NULL)
        roost_stanza_remove(p);
    if (j->photo.b64 != NULL) {
        p = roost_stanza_add_child(card, VCARD_NS, "PHOTO");
        if (j->photo.type != NULL) {
            el = roost_stanza_add_child(p, NULL, "TYPE");
            roost_stanza_add_text(el, j->photo.type, strlen(j->photo.type));
        }
        el = roost_stanza_add_child(p, NULL, "BINVAL");
        roost_stanza_add_text(el, j->photo.b64, strlen(j->photo.b64));
    }
    doc = roost_stanza_serialize(card, NULL, &len);
    roost_stanza_unref(card);
    if ((int64_t)len > j->max_size) {
        roost_free(doc);
        return -ROOST_ELIMIT;
    }
    rc = roost_store_set(j->store, j->user, NULL, doc, len);
    roost_free(doc);
    return rc;
}

static void
vcard_photo_done(void *arg, int rc)
{
    vcard_job_t *j = arg;

    if (rc == -ROOST_ELIMIT) {
        roost_log(j->m, ROOST_LOG_INFO,
                  "the PEP avatar of %s does not fit its vCard (max_size)",
                  j->user);
        vcard_send(j, roost_stanza_error(j->iq, ROOST_SE_NOT_ACCEPTABLE,
                                         "The vCard is too large"));
    } else if (rc < 0) {
        roost_log(j->m, ROOST_LOG_ERROR, "storing the vCard photo of %s: %s",
                  j->user, roost_strerror(rc));
        vcard_send_error(j, ROOST_SE_INTERNAL_SERVER_ERROR);
    } else {
        vcard_user_set_hash(j->m, j->user,
                            j->photo.b64 != NULL ? j->photo.hash : "");
        vcard_send(j, roost_stanza_reply(j->iq));
    }
    vcard_job_free(j);
}

/* IQ set <photo xmlns='urn:roost:vcard-photo' type='..' id='sha1'>b64
 * </photo> from the account to itself, made by the server (mod_pep). */
static roost_verdict_t
vcard_photo_set(const roost_ev_t *ev, void *arg)
{
    const struct vcard_conf *conf = roost_mod_conf(ev->mod);
    roost_stanza_t *el =
        roost_stanza_child(ev->stanza, VCARD_NS_PHOTO, "photo");
    const char *node = roost_jid_node(ev->to);
    const char *b64 = el != NULL ? roost_stanza_text(el) : NULL;
    const char *id = el != NULL ? roost_stanza_attr(el, "id") : NULL;
    vcard_job_t *j;
    size_t k;

    (void)arg;
    /* Not a protocol: clients get what an unknown payload gets. */
    if (ev->origin != NULL || node == NULL || el == NULL ||
        roost_jid_resource(ev->from) != NULL ||
        !roost_jid_bare_eq(ev->from, ev->to))
        return ROOST_PASS;
    j = vcard_job_new(ev, node);
    j->max_size = conf->max_size;
    for (k = 0;
         b64[k] == ' ' || b64[k] == '\t' || b64[k] == '\r' || b64[k] == '\n';
         k++)
        ;
    if (b64[k] != '\0') {
        if (vcard_photo_from_b64(&j->photo, b64,
                                 roost_stanza_attr(el, "type")) < 0 ||
            (id != NULL && strcasecmp(id, j->photo.hash) != 0)) {
            /* XEP-0398 §2.1: SHOULD verify the hash. */
            vcard_job_free(j);
            return roost_bounce(ev, ROOST_SE_BAD_REQUEST,
                                "The avatar data does not match its id");
        }
    }
    roost_store_async(ev->mod, vcard_photo_work, vcard_photo_done, j);
    return ROOST_HANDLED;
}

/* --- avatars: presence (XEP-0398 §3, XEP-0153 §4) --- */

static int
vcard_is_update(roost_stanza_t *c)
{
    return roost_stanza_ns(c) != NULL &&
           strcmp(roost_stanza_ns(c), VCARD_NS_UPDATE) == 0 &&
           strcmp(roost_stanza_name(c), "x") == 0;
}

/* Whether available presence st needs the hash: not when it carries an
 * empty <photo/> (§3: left alone; XEP-0153 §4.1, the client is not ready
 * to advertise) or exactly one <x/> with this hash already. */
static int
vcard_needs_hash(roost_stanza_t *st, const char *hash)
{
    roost_stanza_t *ph;
    int n = 0, same = 0;

    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        if (!vcard_is_update(c))
            continue;
        n++;
        ph = roost_stanza_child(c, VCARD_NS_UPDATE, "photo");
        if (ph != NULL && roost_stanza_text(ph)[0] == '\0')
            return 0;
        same = ph != NULL && strcmp(roost_stanza_text(ph), hash) == 0;
    }
    return n != 1 || !same;
}

/* A copy of st with one <x><photo>hash</photo></x> instead of what the
 * client put in (§3: an <x/> without <photo/> MUST be, another hash MAY
 * be overwritten).  The caller unrefs it. */
static roost_stanza_t *
vcard_with_hash(roost_stanza_t *st, const char *hash)
{
    roost_stanza_t *c = roost_stanza_copy(st), *e, *next, *ph;

    for (e = roost_stanza_first_child(c); e != NULL; e = next) {
        next = roost_stanza_next_sibling(e);
        if (vcard_is_update(e))
            roost_stanza_remove(e);
    }
    ph = roost_stanza_add_child(roost_stanza_add_child(c, VCARD_NS_UPDATE, "x"),
                                NULL, "photo");
    if (hash[0] != '\0')
        roost_stanza_add_text(ph, hash, strlen(hash));
    return c;
}

/* The hash for available presence st from a local account of this vhost
 * (from), or NULL when st is something else or needs nothing. */
static const char *
vcard_presence_hash(roost_mod_t *m, roost_stanza_t *st, const roost_jid_t *from)
{
    const char *node = from != NULL ? roost_jid_node(from) : NULL;
    void **slot;
    vcard_user_t *u;

    if (node == NULL || roost_stanza_kind(st) != ROOST_STANZA_PRESENCE ||
        roost_stanza_attr(st, "type") != NULL ||
        strcmp(roost_jid_domain(from), roost_mod_host(m)) != 0)
        return NULL;
    slot = roost_user_data(m, node);
    u = slot != NULL ? *slot : NULL;
    if (u == NULL || !vcard_needs_hash(st, u->hash))
        return NULL;
    return u->hash;
}

/* The account's available presence goes out with the hash: a rewritten
 * copy takes the stanza's place (roost_event_replace) before the core
 * sends it anywhere.  Hooked twice.  ROOST_EV_PRE_STANZA, after every
 * other hook (privacy lists and mod_presence's directed-presence list see
 * the client's original): the client's broadcast, rewritten once before
 * mod_presence fans it out, so every contact and every own resource gets
 * the hash from this one copy; and its directed presence (MUC joins, §3
 * "MUST also be injected").  ROOST_EV_OUTBOUND and ROOST_EV_DELIVER:
 * presence the server sends or delivers for the account from what it
 * kept (probe answers; mod_presence's stored presence of each resource,
 * delivered to a resource coming online; presence mod_csi held while
 * the client was inactive), whose hash may predate an avatar change.
 * What already carries the current hash (every copy of a broadcast
 * rewritten here) passes as it is, without a copy. */
static roost_verdict_t
vcard_pres_hash(const roost_ev_t *ev, void *arg)
{
    const char *hash = vcard_presence_hash(ev->mod, ev->stanza, ev->from);
    roost_stanza_t *c;

    (void)arg;
    if (hash == NULL)
        return ROOST_PASS;
    c = vcard_with_hash(ev->stanza, hash);
    if (roost_event_replace(ev, c) < 0) /* kind, to and from are kept */
        roost_log(ev->mod, ROOST_LOG_WARN, "presence of %s not rewritten",
                  roost_jid_full(ev->from));
    roost_stanza_unref(c);
    return ROOST_PASS;
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
        vcard_avatar_changed(j);
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
    j->photo_ok = vcard_photo_of(card, &j->photo);
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
    roost_add_feature(m, VCARD_NS);              /* XEP-0054 §3 */
    roost_add_account_feature(m, VCARD_NS_CONV); /* XEP-0398 §2 */
    rc = roost_user_state(m, &vcard_user_ops);
    if (rc == 0)
        rc = roost_hook_iq(m, VCARD_NS, "vCard", vcard_get, vcard_set, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, VCARD_NS_PHOTO, "photo", NULL, vcard_photo_set,
                           NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_IQ_BARE, ROOST_PRIO_DEFAULT, vcard_iq_bare,
                        NULL);
    /* After the filters: what they let through gets the hash. */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRE_STANZA, ROOST_PRIO_FALLBACK,
                        vcard_pres_hash, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_OUTBOUND, ROOST_PRIO_DEFAULT,
                        vcard_pres_hash, NULL);
    /* Last: what a session is actually written (after privacy lists, and
     * when mod_csi lets held presence go) gets the hash of that time. */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_DELIVER, ROOST_PRIO_FALLBACK,
                        vcard_pres_hash, NULL);
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
