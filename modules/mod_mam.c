/* modules/mod_mam.c: Message Archive Management (XEP-0313, urn:xmpp:mam:2)
 * for user archives, with Unique and Stable Stanza IDs (XEP-0359) and the
 * archiving preferences of XEP-0441 (the <prefs/> element of mam:2).
 *
 * Archiving: a message of type chat or normal (or none) carrying a <body/>
 * or the XEP-0334 <store/> hint, and neither <no-store/> nor
 * <no-permanent-store/>, is appended to the ARCHIVE store "mam" of the
 * local user who sends it (ROOST_EV_PRE_STANZA, "with" = the recipient's
 * bare JID, without stanza-ids claiming to be by the sender or the
 * vhost) and of the local user who receives it (ROOST_EV_MESSAGE_BARE /
 * _FULL, "with" = the sender's bare JID), if that user's preferences say
 * so (default always/never/roster, always and never lists by bare JID;
 * never wins).  A message to oneself is archived once, as received.
 *
 * Stanza ids: the recipient must get the message with
 * <stanza-id by='user@host' id='…'/> naming its archive item, and the
 * store hands out an item's id only once the append ran on the storage
 * worker.  So the receiving hook (above ROOST_PRIO_DEFAULT, so before
 * mod_message delivers and mod_offline stores) takes a copy of the
 * stanza, with any stanza-id claiming to be by the recipient or by the
 * vhost removed (XEP-0359 §4 rule 3: a client must not be able to forge
 * an archive id), and returns HANDLED; once the append committed the
 * copy gets its stanza-id and is routed again (roost_send), which this
 * hook recognises and PASSes on.  A recipient's messages wait in one FIFO
 * queue while an append is in flight, so those that are not archived
 * (chat states...) cannot overtake them.  The id delivered is therefore
 * always one the archive holds (as in Prosody, which appends before it
 * delivers).  Store ids are sequential; XEP-0359 §5 forbids ids from
 * which the size of an archive can be inferred, so the ids the protocol
 * shows are the store ids (decimal integers in both drivers) encrypted
 * with XTEA under a random per-vhost key kept in the KEYVAL store
 * "mam_key": 16 hex digits, unpredictable, stable, and decoded back for
 * queries.
 *
 * Queries (iq set <query/> to one's own bare JID): data form fields with,
 * start, end, before-id, after-id and ids (FORM_TYPE urn:xmpp:mam:2
 * required; any other field is feature-not-implemented, XEP-0313 §4.1.5),
 * XEP-0059 paging (max, after, before, empty before for the last page),
 * <flip-page/>; results as <message><result><forwarded><delay/>…, then the
 * iq result with <fin complete='…'><set><first/><last/><count/></set>.
 * An unknown id anywhere is item-not-found; a malformed form or RSM set is
 * bad-request.  Pages are capped at max_page (XEP-0313 §4.3.1 lets the
 * server limit silently).  Also: the query form (iq get <query/>),
 * archive metadata (<metadata/>) and preferences get/set.  All storage
 * runs through roost_store_async.
 *
 * Expiry and quota: with archive_expires_after (seconds, default 0 =
 * never, Prosody's option) a module timer starts a purge round every
 * archive_cleanup_interval (the first within a minute of loading); each
 * round runs as storage jobs of at most MAM_PURGE_BATCH removed items
 * and MAM_PURGE_USERS accounts, chained through the timer, so the loop
 * never blocks and client work interleaves.  The accounts to visit are
 * those recorded in the MAP store "mam_users" when they first archive
 * (the store API cannot list an archive's users; Prosody keeps such a
 * list too); an account whose archive became empty is forgotten.  With
 * archive_max_items (0 = no limit) each append removes the oldest items
 * over the limit (at most MAM_QUOTA_BATCH at a time).  Removed items'
 * ids are then item-not-found in queries, as XEP-0313 §4.1.4 expects of
 * ids the archive no longer holds.
 *
 * Not here: MUC or pubsub archives, groupchat messages (not archived;
 * include-groupchat is not offered), carbons. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#include <roost/account.h>
#include <roost/module.h>
#include <roost/roster.h>
#include <roost/store.h>

#define MAM_NS       "urn:xmpp:mam:2"
#define MAM_NS_EXT   "urn:xmpp:mam:2#extended"
#define MAM_NS_SID   "urn:xmpp:sid:0"
#define MAM_NS_RSM   "http://jabber.org/protocol/rsm"
#define MAM_NS_FWD   "urn:xmpp:forward:0"
#define MAM_NS_DELAY "urn:xmpp:delay"
#define MAM_NS_DATA  "jabber:x:data"
#define MAM_NS_HINTS "urn:xmpp:hints"
#define MAM_NS_VAL   "http://jabber.org/protocol/xdata-validate"

/* Messages passed on to routing whose return we still wait for (a user
 * whose state had to be loaded again): beyond this many the oldest entry
 * is forgotten (a stanza that never came back: bounced meanwhile). */
#define MAM_PASS_MAX 1024
/* Limits on one query's ids field. */
#define MAM_IDS_MAX 100
/* Expiry: one purge job removes at most MAM_PURGE_BATCH items and looks
 * at most at MAM_PURGE_USERS accounts, so the storage worker (and every
 * client's store work queued behind it) never waits long; while expired
 * items are left the next job follows after MAM_PURGE_AGAIN ms.  The
 * first round starts at most MAM_PURGE_FIRST ms after load. */
#define MAM_PURGE_BATCH 500
#define MAM_PURGE_USERS 100
#define MAM_PURGE_AGAIN 100
#define MAM_PURGE_FIRST 60000
/* Archives written before mam_users existed are found once, through the
 * account list (at most this many accounts; the rest join mam_users when
 * they next archive), and the key below marks it done. */
#define MAM_INDEX_MAX    200000
#define MAM_INDEX_MARKER "indexed"
#define MAM_INDEX_OWNER  "#meta"
/* Quota: at most this many of the oldest items go per append (an archive
 * over a lowered quota shrinks over the following appends). */
#define MAM_QUOTA_BATCH 100

enum { MAM_ALWAYS = 0, MAM_NEVER = 1, MAM_ROSTER = 2 };
static const char *const mam_policy_names[] = {"always", "never", "roster"};

struct mam_conf {
    int64_t max_page;           /* most results one query returns */
    const char *default_policy; /* always, never or roster */
    int64_t expires_after;      /* ms an item is kept; 0: forever */
    int64_t cleanup_interval;   /* ms between purge rounds */
    int64_t max_items;          /* items per archive; 0: no limit */
};

static const roost_opt_t mam_opts[] = {
    {"max_page", ROOST_OPT_INT, offsetof(struct mam_conf, max_page), "100", 1,
     1000},
    {"default_policy", ROOST_OPT_STR, offsetof(struct mam_conf, default_policy),
     "always", 0, 0},
    /* Prosody's names: archive_expires_after (seconds here; 0 = never,
     * Prosody's "never") and archive_cleanup_interval (4 h). */
    {"archive_expires_after", ROOST_OPT_MSEC,
     offsetof(struct mam_conf, expires_after), "0", 0,
     100LL * 366 * 86400 * 1000},
    {"archive_cleanup_interval", ROOST_OPT_MSEC,
     offsetof(struct mam_conf, cleanup_interval), "14400", 1000,
     7 * 86400 * 1000LL},
    /* Like Prosody's storage_archive_item_limit with truncation: the
     * oldest items make room. */
    {"archive_max_items", ROOST_OPT_INT, offsetof(struct mam_conf, max_items),
     "0", 0, 100000000},
    {NULL, 0, 0, NULL, 0, 0}};

/* A message for a local recipient waiting for an earlier append. */
typedef struct mam_pend {
    struct mam_pend *next;
    roost_stanza_t *st; /* our copy */
    int waiting;        /* its own append is in flight */
} mam_pend_t;

/* One recipient's queue; exists only while non-empty. */
typedef struct mam_queue {
    struct mam_queue *next;
    char *user;
    mam_pend_t *head, **tail;
    int flushing;
} mam_queue_t;

/* A stanza this module routed again; its return is PASSed. */
typedef struct mam_pass {
    struct mam_pass *next;
    roost_stanza_t *st; /* a reference, so the pointer is not reused */
} mam_pass_t;

/* Module instance state (roost_mod_data), freed in mam_unload. */
typedef struct {
    roost_store_t *arch, *prefs, *keys;
    /* MAP, user "": every account that has archived anything -> "" (the
     * accounts the expiry purge visits; the store API cannot list the
     * users of an archive) */
    roost_store_t *users;
    char *purge_cursor; /* the purge round goes on after this account */
    uint32_t key[4];
    int key_state; /* 0 loading, 1 ready, -1 failed */
    int policy;    /* the configured default */
    mam_queue_t *queues;
    mam_pass_t *pass;
    int npass;
    uint64_t serial; /* result message ids */
} mam_t;

/* Per-user preferences (roost_user_state), freed by mam_prefs_free. */
typedef struct {
    int policy; /* -1: the server's default */
    char **always, **never;
    size_t nalways, nnever;
} mam_prefs_t;

static mam_t *
mam_data(roost_mod_t *m)
{
    return *roost_mod_data(m);
}

/* --- ids (XEP-0359 §5: opaque) --- */

static void
mam_xtea(const uint32_t k[4], uint32_t v[2], int decrypt)
{
    uint32_t v0 = v[0], v1 = v[1], delta = 0x9E3779B9u;
    uint32_t sum = decrypt ? delta * 32 : 0;

    for (int i = 0; i < 32; i++) {
        if (!decrypt) {
            v0 += (((v1 << 4) ^ (v1 >> 5)) + v1) ^ (sum + k[sum & 3]);
            sum += delta;
            v1 += (((v0 << 4) ^ (v0 >> 5)) + v0) ^ (sum + k[(sum >> 11) & 3]);
        } else {
            v1 -= (((v0 << 4) ^ (v0 >> 5)) + v0) ^ (sum + k[(sum >> 11) & 3]);
            sum -= delta;
            v0 -= (((v1 << 4) ^ (v1 >> 5)) + v1) ^ (sum + k[sum & 3]);
        }
    }
    v[0] = v0;
    v[1] = v1;
}

/* Protocol id for a store id; 0, or -1 when the key is missing or the
 * store id is not a decimal integer. */
static int
mam_id_encode(const mam_t *d, const char *sid, char out[ROOST_STORE_ID_LEN])
{
    uint32_t v[2];
    uint64_t n;
    char *end;

    if (d->key_state != 1 || sid[0] < '0' || sid[0] > '9')
        return -1;
    n = strtoull(sid, &end, 10);
    if (*end != '\0')
        return -1;
    v[0] = (uint32_t)(n >> 32);
    v[1] = (uint32_t)n;
    mam_xtea(d->key, v, 0);
    snprintf(out, ROOST_STORE_ID_LEN, "%08" PRIx32 "%08" PRIx32, v[0], v[1]);
    return 0;
}

/* Store id for a protocol id; -1 when it cannot be one of ours. */
static int
mam_id_decode(const mam_t *d, const char *pid, char out[ROOST_STORE_ID_LEN])
{
    uint32_t v[2];
    uint64_t n;

    if (d->key_state != 1 || strlen(pid) != 16 ||
        strspn(pid, "0123456789abcdef") != 16)
        return -1;
    n = strtoull(pid, NULL, 16);
    v[0] = (uint32_t)(n >> 32);
    v[1] = (uint32_t)n;
    mam_xtea(d->key, v, 1);
    n = ((uint64_t)v[0] << 32) | v[1];
    if (n == 0 || n > INT64_MAX)
        return -1;
    snprintf(out, ROOST_STORE_ID_LEN, "%" PRIu64, n);
    return 0;
}

typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    uint32_t key[4];
} mam_key_job_t;

/* Storage worker: the vhost's key, made on first use. */
static int
mam_key_work(void *arg)
{
    mam_key_job_t *j = arg;
    char *val = NULL;
    size_t len = 0;
    int rc = roost_store_get(j->store, "", NULL, &val, &len);

    if (rc == 0 && len == sizeof(j->key)) {
        memcpy(j->key, val, sizeof(j->key));
        roost_free(val);
        return 0;
    }
    roost_free(val);
    if (rc != -ROOST_ENOTFOUND && rc != 0)
        return rc;
    if (getrandom(j->key, sizeof(j->key), 0) != (ssize_t)sizeof(j->key))
        return -ROOST_EIO;
    return roost_store_set(j->store, "", NULL, j->key, sizeof(j->key));
}

static void
mam_key_done(void *arg, int rc)
{
    mam_key_job_t *j = arg;
    mam_t *d = mam_data(j->m);

    if (rc < 0) {
        roost_log(j->m, ROOST_LOG_ERROR,
                  "loading the archive id key failed: %s (archiving off)",
                  roost_strerror(rc));
        d->key_state = -1;
    } else {
        memcpy(d->key, j->key, sizeof(d->key));
        d->key_state = 1;
    }
    roost_free(j);
}

/* --- helpers --- */

/* XEP-0082 DateTime, UTC, milliseconds. */
static void
mam_stamp(int64_t usec, char *buf, size_t size)
{
    time_t t = (time_t)(usec / 1000000);
    struct tm tm;
    char sec[32];

    gmtime_r(&t, &tm);
    strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", sec, (int)(usec % 1000000 / 1000));
}

static int64_t
mam_now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int
mam_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD) to microseconds since
 * the epoch; -1 when malformed or before 1970. */
static int64_t
mam_parse_time(const char *s)
{
    int y, mo, da, h, mi, se, tzh = 0, tzm = 0, sign = 0;
    int64_t frac = 0, scale = 100000, t;
    struct tm tm = {0};

    if (mam_digits(&s, 4, &y) < 0 || *s++ != '-' ||
        mam_digits(&s, 2, &mo) < 0 || *s++ != '-' ||
        mam_digits(&s, 2, &da) < 0 || *s++ != 'T' ||
        mam_digits(&s, 2, &h) < 0 || *s++ != ':' ||
        mam_digits(&s, 2, &mi) < 0 || *s++ != ':' || mam_digits(&s, 2, &se) < 0)
        return -1;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return -1;
        for (; *s >= '0' && *s <= '9'; s++) {
            frac += (*s - '0') * scale;
            scale /= 10;
        }
    }
    if (*s == 'Z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
        if (mam_digits(&s, 2, &tzh) < 0 || *s++ != ':' ||
            mam_digits(&s, 2, &tzm) < 0 || tzh > 23 || tzm > 59)
            return -1;
    } else {
        return -1;
    }
    if (*s != '\0' || mo < 1 || mo > 12 || da < 1 || da > 31 || h > 23 ||
        mi > 59 || se > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = da;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    t = (int64_t)timegm(&tm) - sign * (tzh * 3600 + tzm * 60);
    if (t < 0)
        return -1;
    return t * 1000000 + frac;
}

static int
mam_is_client_ns(const char *ns)
{
    return ns == NULL || strcmp(ns, ROOST_NS_CLIENT) == 0 ||
           strcmp(ns, ROOST_NS_SERVER) == 0;
}

/* XEP-0313 §5.1.1 and XEP-0334: whether a message belongs in an archive. */
static int
mam_storable(roost_stanza_t *st)
{
    const char *type = roost_stanza_attr(st, "type");
    int body = 0, store = 0;

    if (type != NULL && strcmp(type, "chat") != 0 &&
        strcmp(type, "normal") != 0)
        return 0;
    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        const char *ns = roost_stanza_ns(c), *name = roost_stanza_name(c);

        if (mam_is_client_ns(ns) && strcmp(name, "body") == 0) {
            body = 1;
        } else if (ns != NULL && strcmp(ns, MAM_NS_HINTS) == 0) {
            if (strcmp(name, "no-store") == 0 ||
                strcmp(name, "no-permanent-store") == 0)
                return 0;
            if (strcmp(name, "store") == 0)
                store = 1;
        }
    }
    return body || store;
}

/* Whether c is a stanza-id claiming to be assigned by us for bare: by
 * the account's archive (bare) or by the vhost itself (host).  A client
 * or a remote server can put either in a message; the client that gets
 * it must not take it for an archive id (XEP-0359 §4 rule 3: the entity
 * whose address 'by' names overrides it; the vhost assigns none, so its
 * claims are forged too).  Other stanza-ids are kept (rule 1). */
static int
mam_is_sid_ours(roost_stanza_t *c, const char *bare, const char *host)
{
    const char *ns = roost_stanza_ns(c), *b;
    roost_jid_t *j;
    int eq;

    if (ns == NULL || strcmp(ns, MAM_NS_SID) != 0 ||
        strcmp(roost_stanza_name(c), "stanza-id") != 0)
        return 0;
    if ((b = roost_stanza_attr(c, "by")) == NULL)
        return 0;
    /* Compare prepared forms (XEP-0359 §4 rule 7). */
    if ((j = roost_jid_new(b)) == NULL)
        return 0;
    eq = roost_jid_resource(j) == NULL &&
         (strcmp(roost_jid_bare(j), bare) == 0 ||
          strcmp(roost_jid_bare(j), host) == 0);
    roost_jid_free(j);
    return eq;
}

static int
mam_has_sid(roost_stanza_t *st, const char *bare, const char *host)
{
    for (roost_stanza_t *c = roost_stanza_first_child(st); c != NULL;
         c = roost_stanza_next_sibling(c))
        if (mam_is_sid_ours(c, bare, host))
            return 1;
    return 0;
}

static void
mam_strip_sid(roost_stanza_t *st, const char *bare, const char *host)
{
    roost_stanza_t *c, *next;

    for (c = roost_stanza_first_child(st); c != NULL; c = next) {
        next = roost_stanza_next_sibling(c);
        if (mam_is_sid_ours(c, bare, host))
            roost_stanza_remove(c);
    }
}

/* --- preferences (XEP-0441) --- */

static void
mam_prefs_free(roost_mod_t *m, void *state)
{
    mam_prefs_t *p = state;

    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nalways; i++)
        roost_free(p->always[i]);
    for (size_t i = 0; i < p->nnever; i++)
        roost_free(p->never[i]);
    roost_free(p->always);
    roost_free(p->never);
    roost_free(p);
}

static int
mam_policy_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, mam_policy_names[i]) == 0)
            return i;
    return -1;
}

static int
mam_jid_in(char *const *list, size_t n, const char *jid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], jid) == 0)
            return 1;
    return 0;
}

/* Reads one <always/> or <never/> list; -1 on a JID that is not valid.
 * Entries are prepared bare JIDs, without duplicates. */
static int
mam_prefs_list(roost_stanza_t *el, char ***list, size_t *n)
{
    for (roost_stanza_t *c = el ? roost_stanza_first_child(el) : NULL;
         c != NULL; c = roost_stanza_next_sibling(c)) {
        roost_jid_t *j;

        if (strcmp(roost_stanza_name(c), "jid") != 0)
            continue;
        j = roost_jid_new(roost_stanza_text(c));
        if (j == NULL || roost_jid_resource(j) != NULL) {
            roost_jid_free(j);
            return -1;
        }
        if (!mam_jid_in(*list, *n, roost_jid_bare(j))) {
            *list = roost_xrealloc(*list, (*n + 1) * sizeof(**list));
            (*list)[(*n)++] = roost_xstrdup(roost_jid_bare(j));
        }
        roost_jid_free(j);
    }
    return 0;
}

/* Preferences from a <prefs/> element; NULL when it is not valid. */
static mam_prefs_t *
mam_prefs_from(roost_stanza_t *el)
{
    mam_prefs_t *p = roost_xcalloc(1, sizeof(*p)); /* mam_prefs_free */
    const char *def = roost_stanza_attr(el, "default");

    p->policy = def != NULL ? mam_policy_parse(def) : -1;
    if ((def != NULL && p->policy < 0) ||
        mam_prefs_list(roost_stanza_child(el, MAM_NS, "always"), &p->always,
                       &p->nalways) < 0 ||
        mam_prefs_list(roost_stanza_child(el, MAM_NS, "never"), &p->never,
                       &p->nnever) < 0) {
        mam_prefs_free(NULL, p);
        return NULL;
    }
    return p;
}

/* The <prefs/> element for p (NULL: defaults); policy is the server's
 * default, shown when the user has none. */
static roost_stanza_t *
mam_prefs_xml(const mam_prefs_t *p, int policy, int stored)
{
    roost_stanza_t *el = roost_stanza_new(MAM_NS, "prefs"), *l;

    if (p != NULL && p->policy >= 0)
        policy = p->policy;
    if (!stored || (p != NULL && p->policy >= 0))
        roost_stanza_set_attr(el, "default", mam_policy_names[policy]);
    l = roost_stanza_add_child(el, NULL, "always");
    for (size_t i = 0; p != NULL && i < p->nalways; i++) {
        roost_stanza_t *j = roost_stanza_add_child(l, NULL, "jid");
        roost_stanza_add_text(j, p->always[i], strlen(p->always[i]));
    }
    l = roost_stanza_add_child(el, NULL, "never");
    for (size_t i = 0; p != NULL && i < p->nnever; i++) {
        roost_stanza_t *j = roost_stanza_add_child(l, NULL, "jid");
        roost_stanza_add_text(j, p->never[i], strlen(p->never[i]));
    }
    return el;
}

/* Storage worker: the user's stored preferences, or NULL (defaults). */
static void *
mam_prefs_load(roost_mod_t *m, const char *user)
{
    mam_t *d = mam_data(m);
    roost_stanza_t *el;
    mam_prefs_t *p = NULL;
    char *val = NULL;
    size_t len = 0;
    int rc = roost_store_get(d->prefs, user, NULL, &val, &len);

    if (rc < 0) {
        if (rc != -ROOST_ENOTFOUND)
            roost_log(m, ROOST_LOG_ERROR,
                      "reading archive preferences of "
                      "%s: %s",
                      user, roost_strerror(rc));
        return NULL;
    }
    if ((el = roost_stanza_parse(val, len)) != NULL) {
        p = mam_prefs_from(el);
        roost_stanza_unref(el);
    }
    if (p == NULL)
        roost_log(m, ROOST_LOG_ERROR,
                  "stored archive preferences of %s are "
                  "not readable; using the defaults",
                  user);
    roost_free(val);
    return p;
}

/* Whether user's archive takes a message exchanged with peer (bare). */
static int
mam_wanted(roost_mod_t *m, const char *user, const char *peer)
{
    void **slot = roost_user_data(m, user);
    const mam_prefs_t *p = slot != NULL ? *slot : NULL;
    int policy = mam_data(m)->policy;

    if (p != NULL) {
        if (mam_jid_in(p->never, p->nnever, peer))
            return 0;
        if (mam_jid_in(p->always, p->nalways, peer))
            return 1;
        if (p->policy >= 0)
            policy = p->policy;
    }
    if (policy == MAM_ROSTER)
        return roost_roster_item(m, user, peer) != NULL;
    return policy == MAM_ALWAYS;
}

/* --- archiving --- */

static void mam_flush(roost_mod_t *m, const char *user);

typedef struct {
    roost_mod_t *m;
    roost_store_t *store, *users;
    char *user, *with, *xml;
    size_t len;
    int64_t when;
    int64_t max_items; /* 0: no quota */
    int aux_rc;        /* recording the account or the quota failed */
    char id[ROOST_STORE_ID_LEN];
    mam_pend_t *pend; /* the recipient's queued copy, or NULL */
} mam_put_t;

/* Store ids collected by a find (the oldest first). */
typedef struct {
    char (*ids)[ROOST_STORE_ID_LEN];
    int n, max;
} mam_ids_t;

static int
mam_ids_item(void *arg, const char *id, int64_t when, const char *with,
             const char *val, size_t len)
{
    mam_ids_t *l = arg;

    if (l->n == l->max)
        return 1;
    snprintf(l->ids[l->n++], ROOST_STORE_ID_LEN, "%s", id);
    return 0;
}

/* Storage worker: removes user's items matching q (at most max); returns
 * how many went, or -ROOST_E*. */
static int
mam_remove_found(roost_store_t *arch, const char *user,
                 const roost_store_query_t *q, int max)
{
    mam_ids_t l = {roost_xcalloc((size_t)max, ROOST_STORE_ID_LEN), 0, max};
    int rc = roost_store_find(arch, user, q, mam_ids_item, &l);

    for (int i = 0; rc >= 0 && i < l.n; i++)
        rc = roost_store_remove(arch, user, l.ids[i]);
    roost_free(l.ids);
    return rc < 0 ? rc : l.n;
}

static int
mam_put_work(void *arg)
{
    mam_put_t *p = arg;
    char *val = NULL;
    size_t len;
    int rc, n;

    if ((rc = roost_store_append(p->store, p->user, p->with, p->when, p->xml,
                                 p->len, p->id)) < 0)
        return rc;
    /* The account is one the expiry purge visits (recorded whether
     * expiry is on or not, so turning it on later finds the archive). */
    rc = roost_store_get(p->users, "", p->user, &val, &len);
    roost_free(val);
    if (rc == -ROOST_ENOTFOUND)
        rc = roost_store_set(p->users, "", p->user, "", 0);
    if (rc < 0) {
        p->aux_rc = rc; /* the item itself is stored: its id is good */
        return 0;
    }
    if (p->max_items > 0 &&
        (n = roost_store_count(p->store, p->user)) > p->max_items) {
        roost_store_query_t q = {0};
        int64_t over = n - p->max_items;

        q.limit = over < MAM_QUOTA_BATCH ? (int)over : MAM_QUOTA_BATCH;
        if ((rc = mam_remove_found(p->store, p->user, &q, q.limit)) < 0)
            p->aux_rc = rc;
    }
    return 0;
}

static void
mam_put_done(void *arg, int rc)
{
    mam_put_t *p = arg;
    mam_t *d = mam_data(p->m);
    char pid[ROOST_STORE_ID_LEN];

    if (rc < 0)
        roost_log(p->m, ROOST_LOG_ERROR, "archiving a message of %s failed: %s",
                  p->user, roost_strerror(rc));
    else if (p->aux_rc < 0)
        roost_log(p->m, ROOST_LOG_ERROR,
                  "archive of %s: recording it for expiry or "
                  "applying archive_max_items failed: %s",
                  p->user, roost_strerror(p->aux_rc));
    if (p->pend != NULL) {
        /* Delivered either way; the stanza-id only when it names an
         * item the archive holds. */
        if (rc == 0 && mam_id_encode(d, p->id, pid) == 0) {
            roost_stanza_t *sid =
                roost_stanza_add_child(p->pend->st, MAM_NS_SID, "stanza-id");
            char by[3 * 1024];

            snprintf(by, sizeof(by), "%s@%s", p->user, roost_mod_host(p->m));
            roost_stanza_set_attr(sid, "by", by);
            roost_stanza_set_attr(sid, "id", pid);
        }
        p->pend->waiting = 0;
        mam_flush(p->m, p->user);
    }
    roost_free(p->user);
    roost_free(p->with);
    roost_free(p->xml);
    roost_free(p);
}

/* Queues an append of st to user's archive. */
static void
mam_put(roost_mod_t *m, const char *user, const char *with,
        const roost_stanza_t *st, mam_pend_t *pend)
{
    mam_put_t *p = roost_xcalloc(1, sizeof(*p)); /* freed in mam_put_done */

    p->m = m;
    p->store = mam_data(m)->arch;
    p->users = mam_data(m)->users;
    p->max_items = ((const struct mam_conf *)roost_mod_conf(m))->max_items;
    p->user = roost_xstrdup(user);
    p->with = roost_xstrdup(with);
    p->xml = roost_stanza_serialize(st, NULL, &p->len);
    p->when = mam_now();
    p->pend = pend;
    roost_store_async(m, mam_put_work, mam_put_done, p);
}

static mam_queue_t *
mam_queue_find(mam_t *d, const char *user)
{
    for (mam_queue_t *q = d->queues; q != NULL; q = q->next)
        if (strcmp(q->user, user) == 0)
            return q;
    return NULL;
}

static void
mam_queue_free(mam_t *d, mam_queue_t *q)
{
    mam_queue_t **pp = &d->queues;

    while (*pp != q)
        pp = &(*pp)->next;
    *pp = q->next;
    while (q->head != NULL) {
        mam_pend_t *e = q->head;

        q->head = e->next;
        roost_stanza_unref(e->st);
        roost_free(e);
    }
    roost_free(q->user);
    roost_free(q);
}

static void
mam_pass_add(mam_t *d, roost_stanza_t *st)
{
    mam_pass_t *e = roost_xcalloc(1, sizeof(*e)); /* freed when taken */

    e->st = roost_stanza_ref(st);
    e->next = d->pass;
    d->pass = e;
    if (++d->npass > MAM_PASS_MAX) {
        mam_pass_t **pp = &d->pass;

        while ((*pp)->next != NULL)
            pp = &(*pp)->next;
        roost_stanza_unref((*pp)->st);
        roost_free(*pp);
        *pp = NULL;
        d->npass--;
    }
}

/* Whether st is one we routed again; forgets it. */
static int
mam_pass_take(mam_t *d, const roost_stanza_t *st)
{
    for (mam_pass_t **pp = &d->pass; *pp != NULL; pp = &(*pp)->next) {
        mam_pass_t *e = *pp;

        if (e->st == st) {
            *pp = e->next;
            roost_stanza_unref(e->st);
            roost_free(e);
            d->npass--;
            return 1;
        }
    }
    return 0;
}

/* Routes the ready head of user's queue, in order. */
static void
mam_flush(roost_mod_t *m, const char *user)
{
    mam_t *d = mam_data(m);
    mam_queue_t *q = mam_queue_find(d, user);
    mam_pend_t *e;

    if (q == NULL || q->flushing)
        return; /* the outer call goes on with what was added */
    q->flushing = 1;
    while ((e = q->head) != NULL && !e->waiting) {
        q->head = e->next;
        if (q->head == NULL)
            q->tail = &q->head;
        mam_pass_add(d, e->st);
        roost_send(m, e->st);
        roost_stanza_unref(e->st);
        roost_free(e);
    }
    q->flushing = 0;
    if (q->head == NULL)
        mam_queue_free(d, q);
}

/* A message for a local user (bare or full JID). */
static roost_verdict_t
mam_incoming(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    mam_t *d = mam_data(m);
    const char *user = roost_jid_node(ev->to);
    const char *bare = roost_jid_bare(ev->to);
    mam_queue_t *q;
    mam_pend_t *e;
    int archive, forged;

    if (mam_pass_take(d, ev->stanza))
        return ROOST_PASS;
    q = mam_queue_find(d, user);
    forged = mam_has_sid(ev->stanza, bare, roost_mod_host(m));
    archive = d->key_state >= 0 && mam_storable(ev->stanza) &&
              mam_wanted(m, user, roost_jid_bare(ev->from));
    if (!archive && !forged && q == NULL)
        return ROOST_PASS;

    e = roost_xcalloc(1, sizeof(*e)); /* freed by mam_flush */
    e->st = roost_stanza_copy(ev->stanza);
    e->waiting = archive;
    mam_strip_sid(e->st, bare, roost_mod_host(m));
    if (q == NULL) {
        /* freed by mam_flush once empty */
        q = roost_xcalloc(1, sizeof(*q));
        q->user = roost_xstrdup(user);
        q->tail = &q->head;
        q->next = d->queues;
        d->queues = q;
    }
    *q->tail = e;
    q->tail = &e->next;
    if (archive)
        mam_put(m, user, roost_jid_bare(ev->from), e->st, e);
    else
        mam_flush(m, user);
    return ROOST_HANDLED;
}

/* A message a local user sends: their own archive. */
static roost_verdict_t
mam_outgoing(const roost_ev_t *ev, void *arg)
{
    roost_mod_t *m = ev->mod;
    const char *user = roost_jid_node(ev->from);

    if (ev->origin == NULL ||
        roost_stanza_kind(ev->stanza) != ROOST_STANZA_MESSAGE || user == NULL ||
        mam_data(m)->key_state < 0)
        return ROOST_PASS;
    /* To oneself: archived once, when it arrives. */
    if (roost_jid_bare_eq(ev->from, ev->to))
        return ROOST_PASS;
    if (!mam_storable(ev->stanza) ||
        !mam_wanted(m, user, roost_jid_bare(ev->to)))
        return ROOST_PASS;
    if (mam_has_sid(ev->stanza, roost_jid_bare(ev->from), roost_mod_host(m))) {
        /* The sender's own claim to an id of its archive (or the vhost's)
         * is not archived: query results would show it as ours. */
        roost_stanza_t *c = roost_stanza_copy(ev->stanza);

        mam_strip_sid(c, roost_jid_bare(ev->from), roost_mod_host(m));
        mam_put(m, user, roost_jid_bare(ev->to), c, NULL);
        roost_stanza_unref(c);
    } else {
        mam_put(m, user, roost_jid_bare(ev->to), ev->stanza, NULL);
    }
    return ROOST_PASS;
}

/* --- queries --- */

typedef struct {
    char id[ROOST_STORE_ID_LEN];
    int64_t when;
    char *xml;
    size_t len;
} mam_item_t;

typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user;
    roost_jid_t *requester;
    roost_stanza_t *iq; /* a copy of the request */
    char *queryid;
    char *with;             /* bare JID filter */
    roost_jid_t *with_full; /* a full JID: also matched on to/from */
    int64_t start, end;
    char *check[MAM_IDS_MAX + 4]; /* store ids that must exist */
    int ncheck;
    char after[ROOST_STORE_ID_LEN], before[ROOST_STORE_ID_LEN];
    char **ids; /* the ids field (store ids) */
    int nids;
    int reverse, flip, max, metadata;
    /* results */
    mam_item_t *items;
    int n, cap, more, count;
} mam_query_t;

static void
mam_query_free(mam_query_t *q)
{
    for (int i = 0; i < q->n; i++)
        roost_free(q->items[i].xml);
    for (int i = 0; i < q->ncheck; i++)
        roost_free(q->check[i]);
    for (int i = 0; i < q->nids; i++)
        roost_free(q->ids[i]);
    roost_free(q->ids);
    roost_free(q->items);
    roost_free(q->user);
    roost_free(q->queryid);
    roost_free(q->with);
    roost_jid_free(q->with_full);
    roost_jid_free(q->requester);
    roost_stanza_unref(q->iq);
    roost_free(q);
}

/* With a full-JID filter: does the stored message have it as to or from? */
static int
mam_full_match(const mam_query_t *q, const char *val, size_t len)
{
    roost_stanza_t *st;
    int hit = 0;

    if (q->with_full == NULL)
        return 1;
    if ((st = roost_stanza_parse(val, len)) == NULL)
        return 0;
    for (int i = 0; i < 2 && !hit; i++) {
        const char *a = roost_stanza_attr(st, i ? "to" : "from");
        roost_jid_t *j = a ? roost_jid_new(a) : NULL;

        hit = j != NULL && roost_jid_eq(j, q->with_full);
        roost_jid_free(j);
    }
    roost_stanza_unref(st);
    return hit;
}

static int
mam_count_item(void *arg, const char *id, int64_t when, const char *with,
               const char *val, size_t len)
{
    mam_query_t *q = arg;

    if (mam_full_match(q, val, len))
        q->count++;
    return 0;
}

static int
mam_collect_item(void *arg, const char *id, int64_t when, const char *with,
                 const char *val, size_t len)
{
    mam_query_t *q = arg;
    mam_item_t *it;

    if (!mam_full_match(q, val, len))
        return 0;
    if (q->n == q->max) {
        q->more = 1;
        return 1;
    }
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->items = roost_xrealloc(q->items, (size_t)q->cap * sizeof(*q->items));
    }
    it = &q->items[q->n++];
    snprintf(it->id, sizeof(it->id), "%s", id);
    it->when = when;
    it->xml = roost_xstrndup(val, len); /* freed by mam_query_free */
    it->len = len;
    return 0;
}

static int
mam_cmp_item(const void *a, const void *b)
{
    int64_t x = strtoll(((const mam_item_t *)a)->id, NULL, 10);
    int64_t y = strtoll(((const mam_item_t *)b)->id, NULL, 10);

    return x < y ? -1 : x > y;
}

/* Storage worker. */
static int
mam_query_work(void *arg)
{
    mam_query_t *q = arg;
    roost_store_query_t b = {0};
    int rc;

    if (q->metadata) {
        b.limit = 1;
        q->max = 2;
        if ((rc = roost_store_find(q->store, q->user, &b, mam_collect_item,
                                   q)) < 0)
            return rc;
        b.reverse = 1;
        return roost_store_find(q->store, q->user, &b, mam_collect_item, q);
    }
    /* XEP-0313 §4.1.4, §4.3.2: every id named must be in the archive. */
    for (int i = 0; i < q->ncheck; i++) {
        roost_store_query_t c = {.id = q->check[i], .count_only = 1};

        if ((rc = roost_store_find(q->store, q->user, &c, NULL, NULL)) < 0)
            return rc;
        if (rc == 0)
            return -ROOST_ENOTFOUND;
    }
    b.with = q->with;
    b.start = q->start;
    b.end = q->end;
    b.after_id = q->after[0] ? q->after : NULL;
    b.before_id = q->before[0] ? q->before : NULL;

    if (q->ids != NULL) {
        /* Single items: those of the list that pass the other filters. */
        int max = q->max;

        q->max = q->nids;
        for (int i = 0; i < q->nids; i++) {
            b.id = q->ids[i];
            if ((rc = roost_store_find(q->store, q->user, &b, mam_collect_item,
                                       q)) < 0)
                return rc;
        }
        qsort(q->items, (size_t)q->n, sizeof(*q->items), mam_cmp_item);
        q->count = q->n;
        q->max = max;
        while (q->n > q->max) {
            roost_free(q->items[--q->n].xml);
            q->more = 1;
        }
        return 0;
    }

    if (q->with_full == NULL) {
        b.count_only = 1;
        if ((rc = roost_store_find(q->store, q->user, &b, NULL, NULL)) < 0)
            return rc;
        q->count = rc;
        b.count_only = 0;
    } else if ((rc = roost_store_find(q->store, q->user, &b, mam_count_item,
                                      q)) < 0) {
        return rc;
    }
    if (q->max == 0) {
        q->more = q->count > 0;
        return 0;
    }
    /* One more than a page tells whether the page is the last one. */
    b.limit = q->with_full == NULL ? q->max + 1 : 0;
    b.reverse = q->reverse;
    if ((rc = roost_store_find(q->store, q->user, &b, mam_collect_item, q)) < 0)
        return rc;
    if (q->reverse) {
        for (int i = 0; i < q->n / 2; i++) {
            mam_item_t t = q->items[i];

            q->items[i] = q->items[q->n - 1 - i];
            q->items[q->n - 1 - i] = t;
        }
    }
    return 0;
}

static void
mam_deliver_error(roost_session_t *s, roost_stanza_t *iq,
                  roost_stanza_err_t cond, const char *text)
{
    roost_stanza_t *err = roost_stanza_error(iq, cond, text);

    roost_session_deliver(s, err);
    roost_stanza_unref(err);
}

static roost_stanza_t *
mam_result_msg(mam_query_t *q, const mam_item_t *it, const char *pid)
{
    mam_t *d = mam_data(q->m);
    roost_stanza_t *msg = roost_stanza_new(ROOST_NS_CLIENT, "message");
    roost_stanza_t *res, *fwd, *delay, *orig;
    char id[64], stamp[64];

    snprintf(id, sizeof(id), "mam-%" PRIu64, ++d->serial);
    roost_stanza_set_attr(msg, "id", id);
    roost_stanza_set_attr(msg, "to", roost_jid_full(q->requester));
    roost_stanza_set_attr(msg, "from", roost_jid_bare(q->requester));
    res = roost_stanza_add_child(msg, MAM_NS, "result");
    if (q->queryid != NULL)
        roost_stanza_set_attr(res, "queryid", q->queryid);
    roost_stanza_set_attr(res, "id", pid);
    fwd = roost_stanza_add_child(res, MAM_NS_FWD, "forwarded");
    delay = roost_stanza_add_child(fwd, MAM_NS_DELAY, "delay");
    mam_stamp(it->when, stamp, sizeof(stamp));
    roost_stanza_set_attr(delay, "stamp", stamp);
    if ((orig = roost_stanza_parse(it->xml, it->len)) != NULL) {
        roost_stanza_add_copy(fwd, orig);
        roost_stanza_unref(orig);
    }
    return msg;
}

static void
mam_query_done(void *arg, int rc)
{
    mam_query_t *q = arg;
    mam_t *d = mam_data(q->m);
    roost_session_t *s = roost_session_find(q->m, q->requester);
    roost_stanza_t *reply, *el, *set;
    char(*pids)[ROOST_STORE_ID_LEN] = NULL;
    char num[32];

    if (s == NULL)
        goto out; /* the session that asked has gone */
    if (rc == -ROOST_ENOTFOUND) {
        mam_deliver_error(s, q->iq, ROOST_SE_ITEM_NOT_FOUND, NULL);
        goto out;
    }
    pids = roost_xcalloc((size_t)q->n + 1, sizeof(*pids));
    for (int i = 0; rc >= 0 && i < q->n; i++)
        if (mam_id_encode(d, q->items[i].id, pids[i]) < 0)
            rc = -ROOST_EINVAL;
    if (rc < 0) {
        roost_log(q->m, ROOST_LOG_ERROR, "archive query of %s failed: %s",
                  q->user, roost_strerror(rc));
        mam_deliver_error(s, q->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
        goto out;
    }
    reply = roost_stanza_reply(q->iq);
    if (q->metadata) {
        el = roost_stanza_add_child(reply, MAM_NS, "metadata");
        for (int i = 0; i < q->n; i++) {
            roost_stanza_t *e =
                roost_stanza_add_child(el, NULL, i == 0 ? "start" : "end");
            char stamp[64];

            mam_stamp(q->items[i].when, stamp, sizeof(stamp));
            roost_stanza_set_attr(e, "id", pids[i]);
            roost_stanza_set_attr(e, "timestamp", stamp);
        }
        roost_session_deliver(s, reply);
        roost_stanza_unref(reply);
        goto out;
    }
    for (int k = 0; k < q->n; k++) {
        int i = q->flip ? q->n - 1 - k : k;
        roost_stanza_t *msg = mam_result_msg(q, &q->items[i], pids[i]);

        roost_session_deliver(s, msg);
        roost_stanza_unref(msg);
    }
    el = roost_stanza_add_child(reply, MAM_NS, "fin");
    roost_stanza_set_attr(el, "complete", q->more ? "false" : "true");
    set = roost_stanza_add_child(el, MAM_NS_RSM, "set");
    if (q->n > 0) {
        roost_stanza_add_text(roost_stanza_add_child(set, NULL, "first"),
                              pids[0], strlen(pids[0]));
        roost_stanza_add_text(roost_stanza_add_child(set, NULL, "last"),
                              pids[q->n - 1], strlen(pids[q->n - 1]));
    }
    snprintf(num, sizeof(num), "%d", q->count);
    roost_stanza_add_text(roost_stanza_add_child(set, NULL, "count"), num,
                          strlen(num));
    roost_session_deliver(s, reply);
    roost_stanza_unref(reply);
out:
    roost_free(pids);
    mam_query_free(q);
}

/* Values of a data form field (NULL-terminated, borrowed), at most max. */
static int
mam_field_values(roost_stanza_t *f, const char **out, int max)
{
    int n = 0;

    for (roost_stanza_t *v = roost_stanza_first_child(f); v != NULL;
         v = roost_stanza_next_sibling(v)) {
        if (strcmp(roost_stanza_name(v), "value") != 0)
            continue;
        if (n == max)
            return -1;
        out[n++] = roost_stanza_text(v);
    }
    return n;
}

/* Adds a protocol id to the existence checks and returns its store id
 * in out; -1 when it cannot be ours (item-not-found). */
static int
mam_query_id(mam_query_t *q, const char *pid, char out[ROOST_STORE_ID_LEN])
{
    if (mam_id_decode(mam_data(q->m), pid, out) < 0)
        return -1;
    q->check[q->ncheck++] = roost_xstrdup(out);
    return 0;
}

static void
mam_bound(char cur[ROOST_STORE_ID_LEN], const char *v, int keep_larger)
{
    long long a = strtoll(cur, NULL, 10), b = strtoll(v, NULL, 10);

    if (cur[0] == '\0' || (keep_larger ? b > a : b < a))
        snprintf(cur, ROOST_STORE_ID_LEN, "%s", v);
}

/* Parses the form and RSM set of a query into q.  Returns ROOST_SE_NONE
 * or the error condition; *text may get an explanation. */
static roost_stanza_err_t
mam_query_parse(mam_query_t *q, roost_stanza_t *query, const char **text)
{
    const struct mam_conf *conf = roost_mod_conf(q->m);
    roost_stanza_t *x = roost_stanza_child(query, MAM_NS_DATA, "x");
    roost_stanza_t *rsm = roost_stanza_child(query, MAM_NS_RSM, "set");
    static const char *const known[] = {
        "FORM_TYPE", "with", "start", "end", "after-id", "before-id", "ids"};
    char sid[ROOST_STORE_ID_LEN];
    int form_type = 0, notfound = 0, seen = 0;

    if (x != NULL) {
        const char *type = roost_stanza_attr(x, "type");

        if (type == NULL || strcmp(type, "submit") != 0) {
            *text = "The form must be of type submit";
            return ROOST_SE_BAD_REQUEST;
        }
        for (roost_stanza_t *f = roost_stanza_first_child(x); f != NULL;
             f = roost_stanza_next_sibling(f)) {
            const char *var = roost_stanza_attr(f, "var");
            const char *v[MAM_IDS_MAX + 1];
            int n;

            if (strcmp(roost_stanza_name(f), "field") != 0)
                continue;
            if (var == NULL) {
                *text = "A field has no var";
                return ROOST_SE_BAD_REQUEST;
            }
            for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
                if (strcmp(var, known[i]) != 0)
                    continue;
                /* XEP-0004 §3.2: a var appears once */
                if (seen & (1 << i)) {
                    *text = "A field appears twice";
                    return ROOST_SE_BAD_REQUEST;
                }
                seen |= 1 << i;
            }
            n = mam_field_values(f, v,
                                 strcmp(var, "ids") == 0 ? MAM_IDS_MAX : 1);
            if (n < 0) {
                *text = "Too many values";
                return ROOST_SE_BAD_REQUEST;
            }
            if (strcmp(var, "FORM_TYPE") == 0) {
                if (n != 1 || strcmp(v[0], MAM_NS) != 0) {
                    *text = "Unexpected FORM_TYPE, expected 'urn:xmpp:mam:2'";
                    return ROOST_SE_BAD_REQUEST;
                }
                form_type = 1;
            } else if (strcmp(var, "with") == 0) {
                roost_jid_t *j;

                if (n == 0)
                    continue;
                if ((j = roost_jid_new(v[0])) == NULL) {
                    *text = "Invalid JID in 'with'";
                    return ROOST_SE_BAD_REQUEST;
                }
                roost_free(q->with);
                q->with = roost_xstrdup(roost_jid_bare(j));
                roost_jid_free(q->with_full);
                q->with_full = roost_jid_resource(j) != NULL ? j : NULL;
                if (q->with_full == NULL)
                    roost_jid_free(j);
            } else if (strcmp(var, "start") == 0 || strcmp(var, "end") == 0) {
                int64_t t;

                if (n == 0)
                    continue;
                if ((t = mam_parse_time(v[0])) < 0) {
                    *text = "Invalid timestamp (XEP-0082 DateTime)";
                    return ROOST_SE_BAD_REQUEST;
                }
                /* 0 means unbounded to the store: the epoch is as good */
                if (var[0] == 's')
                    q->start = t > 0 ? t : 0;
                else if ((q->end = t) == 0)
                    q->end = 1; /* only items at the epoch: none */
            } else if (strcmp(var, "after-id") == 0 ||
                       strcmp(var, "before-id") == 0) {
                if (n == 0)
                    continue;
                if (mam_query_id(q, v[0], sid) < 0)
                    notfound = 1;
                else
                    mam_bound(var[0] == 'a' ? q->after : q->before, sid,
                              var[0] == 'a');
            } else if (strcmp(var, "ids") == 0) {
                q->ids = roost_xcalloc((size_t)n + 1, sizeof(*q->ids));
                for (int i = 0; i < n; i++) {
                    if (mam_query_id(q, v[i], sid) < 0)
                        notfound = 1;
                    else
                        q->ids[q->nids++] = roost_xstrdup(sid);
                }
            } else {
                /* XEP-0313 §4.1.5 */
                *text = "Unknown field";
                return ROOST_SE_FEATURE_NOT_IMPLEMENTED;
            }
        }
        if (!form_type) {
            *text = "The form has no FORM_TYPE";
            return ROOST_SE_BAD_REQUEST;
        }
    }

    q->max = (int)conf->max_page;
    if (rsm != NULL) {
        roost_stanza_t *c;
        const char *t;

        if ((c = roost_stanza_child(rsm, MAM_NS_RSM, "max")) != NULL) {
            char *end;
            long v;

            t = roost_stanza_text(c);
            v = strtol(t, &end, 10);
            if (t[0] < '0' || t[0] > '9' || *end != '\0' || v < 0) {
                *text = "Invalid RSM max";
                return ROOST_SE_BAD_REQUEST;
            }
            if (v < q->max)
                q->max = (int)v;
        }
        if (roost_stanza_child(rsm, MAM_NS_RSM, "index") != NULL) {
            *text = "RSM index is not supported";
            return ROOST_SE_FEATURE_NOT_IMPLEMENTED;
        }
        if ((c = roost_stanza_child(rsm, MAM_NS_RSM, "after")) != NULL) {
            t = roost_stanza_text(c);
            if (t[0] == '\0') {
                *text = "Empty RSM after";
                return ROOST_SE_BAD_REQUEST;
            }
            if (mam_query_id(q, t, sid) < 0)
                notfound = 1;
            else
                mam_bound(q->after, sid, 1);
        }
        if ((c = roost_stanza_child(rsm, MAM_NS_RSM, "before")) != NULL) {
            /* XEP-0059 §2.5: paging backwards; empty means the last page */
            q->reverse = 1;
            t = roost_stanza_text(c);
            if (t[0] != '\0') {
                if (mam_query_id(q, t, sid) < 0)
                    notfound = 1;
                else
                    mam_bound(q->before, sid, 0);
            }
        }
    }
    q->flip = roost_stanza_child(query, MAM_NS, "flip-page") != NULL;
    return notfound ? ROOST_SE_ITEM_NOT_FOUND : ROOST_SE_NONE;
}

/* The archive is the user's own: only they may use it. */
static int
mam_own(const roost_ev_t *ev)
{
    return roost_jid_node(ev->to) != NULL &&
           roost_jid_bare_eq(ev->from, ev->to);
}

static mam_query_t *
mam_query_new(const roost_ev_t *ev)
{
    mam_query_t *q = roost_xcalloc(1, sizeof(*q)); /* mam_query_free */

    q->m = ev->mod;
    q->store = mam_data(ev->mod)->arch;
    q->user = roost_xstrdup(roost_jid_node(ev->to));
    q->requester = roost_jid_dup(ev->from);
    q->iq = roost_stanza_copy(ev->stanza);
    return q;
}

static roost_verdict_t
mam_query_set(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *query = roost_stanza_first_child(ev->stanza);
    const char *text = NULL, *qid;
    roost_stanza_err_t err;
    mam_query_t *q;

    if (!mam_own(ev))
        return roost_jid_node(ev->to) == NULL
                   ? ROOST_PASS
                   : roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    if (mam_data(ev->mod)->key_state != 1)
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    q = mam_query_new(ev);
    if ((qid = roost_stanza_attr(query, "queryid")) != NULL)
        q->queryid = roost_xstrdup(qid);
    if ((err = mam_query_parse(q, query, &text)) != ROOST_SE_NONE) {
        mam_query_free(q);
        return roost_bounce(ev, err, text);
    }
    roost_store_async(ev->mod, mam_query_work, mam_query_done, q);
    return ROOST_HANDLED;
}

/* XEP-0313 §4.1.5: the fields a query may use. */
static roost_verdict_t
mam_query_get(const roost_ev_t *ev, void *arg)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},      {"start", "text-single"},
        {"end", "text-single"},      {"before-id", "text-single"},
        {"after-id", "text-single"}, {"ids", "list-multi"}};
    roost_stanza_t *q, *x, *f, *v;
    roost_verdict_t r;

    if (!mam_own(ev))
        return roost_jid_node(ev->to) == NULL
                   ? ROOST_PASS
                   : roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    q = roost_stanza_new(MAM_NS, "query");
    x = roost_stanza_add_child(q, MAM_NS_DATA, "x");
    roost_stanza_set_attr(x, "type", "form");
    f = roost_stanza_add_child(x, NULL, "field");
    roost_stanza_set_attr(f, "type", "hidden");
    roost_stanza_set_attr(f, "var", "FORM_TYPE");
    roost_stanza_add_text(roost_stanza_add_child(f, NULL, "value"), MAM_NS,
                          strlen(MAM_NS));
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        f = roost_stanza_add_child(x, NULL, "field");
        roost_stanza_set_attr(f, "type", fields[i][1]);
        roost_stanza_set_attr(f, "var", fields[i][0]);
        if (strcmp(fields[i][0], "ids") == 0) {
            v = roost_stanza_add_child(f, MAM_NS_VAL, "validate");
            roost_stanza_set_attr(v, "datatype", "xs:string");
            roost_stanza_add_child(v, NULL, "open");
        }
    }
    r = roost_reply(ev, q);
    roost_stanza_unref(q);
    return r;
}

static roost_verdict_t
mam_metadata_get(const roost_ev_t *ev, void *arg)
{
    mam_query_t *q;

    if (!mam_own(ev))
        return roost_jid_node(ev->to) == NULL
                   ? ROOST_PASS
                   : roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    if (mam_data(ev->mod)->key_state != 1)
        return roost_bounce(ev, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
    q = mam_query_new(ev);
    q->metadata = 1;
    roost_store_async(ev->mod, mam_query_work, mam_query_done, q);
    return ROOST_HANDLED;
}

/* --- preferences protocol --- */

static roost_verdict_t
mam_prefs_get(const roost_ev_t *ev, void *arg)
{
    void **slot;
    roost_stanza_t *el;
    roost_verdict_t r;

    if (!mam_own(ev))
        return roost_jid_node(ev->to) == NULL
                   ? ROOST_PASS
                   : roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    slot = roost_user_data(ev->mod, roost_jid_node(ev->to));
    el = mam_prefs_xml(slot ? *slot : NULL, mam_data(ev->mod)->policy, 0);
    r = roost_reply(ev, el);
    roost_stanza_unref(el);
    return r;
}

typedef struct {
    roost_mod_t *m;
    roost_store_t *store;
    char *user, *xml;
    size_t len;
    mam_prefs_t *prefs;
    roost_jid_t *requester;
    roost_stanza_t *iq;
} mam_prefs_job_t;

static int
mam_prefs_work(void *arg)
{
    mam_prefs_job_t *j = arg;

    return roost_store_set(j->store, j->user, NULL, j->xml, j->len);
}

static void
mam_prefs_done(void *arg, int rc)
{
    mam_prefs_job_t *j = arg;
    roost_session_t *s = roost_session_find(j->m, j->requester);
    void **slot = roost_user_data(j->m, j->user);

    if (rc < 0) {
        roost_log(j->m, ROOST_LOG_ERROR,
                  "storing archive preferences of %s "
                  "failed: %s",
                  j->user, roost_strerror(rc));
        if (s != NULL)
            mam_deliver_error(s, j->iq, ROOST_SE_INTERNAL_SERVER_ERROR, NULL);
        mam_prefs_free(j->m, j->prefs);
    } else {
        if (s != NULL) {
            roost_stanza_t *reply = roost_stanza_reply(j->iq);
            roost_stanza_t *shown =
                mam_prefs_xml(j->prefs, mam_data(j->m)->policy, 0);

            roost_stanza_add_copy(reply, shown);
            roost_session_deliver(s, reply);
            roost_stanza_unref(shown);
            roost_stanza_unref(reply);
        }
        if (slot != NULL) {
            mam_prefs_free(j->m, *slot);
            *slot = j->prefs;
        } else {
            mam_prefs_free(j->m, j->prefs); /* loaded again when needed */
        }
    }
    roost_jid_free(j->requester);
    roost_stanza_unref(j->iq);
    roost_free(j->user);
    roost_free(j->xml);
    roost_free(j);
}

static roost_verdict_t
mam_prefs_set(const roost_ev_t *ev, void *arg)
{
    roost_stanza_t *el = roost_stanza_first_child(ev->stanza), *x;
    mam_prefs_job_t *j;
    mam_prefs_t *p;

    if (!mam_own(ev))
        return roost_jid_node(ev->to) == NULL
                   ? ROOST_PASS
                   : roost_bounce(ev, ROOST_SE_FORBIDDEN, NULL);
    if ((p = mam_prefs_from(el)) == NULL)
        return roost_bounce(ev, ROOST_SE_BAD_REQUEST,
                            "Invalid default or JID in the preferences");
    j = roost_xcalloc(1, sizeof(*j)); /* freed in mam_prefs_done */
    j->m = ev->mod;
    j->store = mam_data(ev->mod)->prefs;
    j->user = roost_xstrdup(roost_jid_node(ev->to));
    j->prefs = p;
    x = mam_prefs_xml(p, mam_data(ev->mod)->policy, 1);
    j->xml = roost_stanza_serialize(x, NULL, &j->len);
    roost_stanza_unref(x);
    j->requester = roost_jid_dup(ev->from);
    j->iq = roost_stanza_copy(ev->stanza);
    roost_store_async(ev->mod, mam_prefs_work, mam_prefs_done, j);
    return ROOST_HANDLED;
}

/* --- expiry (archive_expires_after) --- */

typedef struct {
    roost_mod_t *m;
    roost_store_t *arch, *users;
    int64_t cutoff; /* items stamped at or before this (us) go */
    char *cursor;   /* the round goes on after this account ("": start) */
    char **names;   /* worker: the accounts this job looks at */
    int nnames;
    int removed;  /* out: items removed */
    int more;     /* out: the round is not finished */
    char *resume; /* out: the next job's cursor */
} mam_expire_t;

static void mam_expire_arm(roost_mod_t *m, uint64_t msec);

static int
mam_expire_key(void *arg, const char *key, const char *val, size_t len)
{
    mam_expire_t *j = arg;

    if (j->cursor[0] != '\0' && strcmp(key, j->cursor) <= 0)
        return 0;
    if (j->nnames == MAM_PURGE_USERS) {
        j->more = 1;
        return 1;
    }
    j->names[j->nnames++] = roost_xstrdup(key); /* freed in mam_expire_done */
    return 0;
}

/* Storage worker: one bounded step of the purge round. */
static int
mam_expire_work(void *arg)
{
    mam_expire_t *j = arg;
    const char *last = j->cursor;
    int rc;

    j->names = roost_xcalloc(MAM_PURGE_USERS, sizeof(*j->names));
    if ((rc = roost_store_keys(j->users, "", mam_expire_key, j)) < 0)
        return rc;
    for (int i = 0; i < j->nnames; i++) {
        roost_store_query_t q = {0};
        int budget = MAM_PURGE_BATCH - j->removed;

        q.end = j->cutoff;
        q.limit = budget;
        if ((rc = mam_remove_found(j->arch, j->names[i], &q, budget)) < 0)
            return rc;
        j->removed += rc;
        if (rc == budget) {
            /* this account may have more: the next job starts with it */
            j->more = 1;
            break;
        }
        /* an account with an empty archive is visited no more */
        if ((rc = roost_store_count(j->arch, j->names[i])) < 0)
            return rc;
        if (rc == 0 && (rc = roost_store_delete(j->users, "", j->names[i])) < 0)
            return rc;
        last = j->names[i];
    }
    j->resume = roost_xstrdup(j->more ? last : "");
    return 0;
}

static void
mam_expire_done(void *arg, int rc)
{
    mam_expire_t *j = arg;
    mam_t *d = mam_data(j->m);
    const struct mam_conf *conf = roost_mod_conf(j->m);

    if (rc < 0) {
        roost_log(j->m, ROOST_LOG_ERROR, "archive expiry failed: %s",
                  roost_strerror(rc));
        j->more = 0; /* tried again next interval, from where it was */
    } else {
        if (j->removed > 0)
            roost_log(j->m, ROOST_LOG_DEBUG, "archive expiry removed %d items",
                      j->removed);
        roost_free(d->purge_cursor);
        d->purge_cursor = j->resume; /* freed in mam_unload or here */
        j->resume = NULL;
    }
    mam_expire_arm(j->m, j->more ? MAM_PURGE_AGAIN
                                 : (uint64_t)conf->cleanup_interval);
    for (int i = 0; i < j->nnames; i++)
        roost_free(j->names[i]);
    roost_free(j->names);
    roost_free(j->resume);
    roost_free(j->cursor);
    roost_free(j);
}

static void
mam_expire_tick(roost_mod_t *m, void *arg)
{
    mam_t *d = mam_data(m);
    const struct mam_conf *conf = roost_mod_conf(m);
    mam_expire_t *j;
    int64_t cutoff = mam_now() - conf->expires_after * 1000;

    if (cutoff <= 0) { /* nothing can be that old; 0 would mean no bound */
        mam_expire_arm(m, (uint64_t)conf->cleanup_interval);
        return;
    }
    j = roost_xcalloc(1, sizeof(*j)); /* freed in mam_expire_done */
    j->m = m;
    j->arch = d->arch;
    j->users = d->users;
    j->cutoff = cutoff;
    j->cursor = roost_xstrdup(d->purge_cursor ? d->purge_cursor : "");
    roost_store_async(m, mam_expire_work, mam_expire_done, j);
}

static void
mam_expire_arm(roost_mod_t *m, uint64_t msec)
{
    roost_timer_add(m, msec, mam_expire_tick, NULL);
}

/* Indexing archives from before mam_users: marker read -> account list ->
 * each account with items recorded -> marker written, all on the storage
 * worker, before the first purge round (which runs a minute later). */
typedef struct {
    roost_mod_t *m;
    roost_store_t *arch, *users;
    char **names; /* NULL-terminated, owned */
    int done;     /* out: the marker was there */
    int added;    /* out: accounts recorded */
} mam_index_t;

static void
mam_index_free(mam_index_t *x)
{
    for (int i = 0; x->names != NULL && x->names[i] != NULL; i++)
        roost_free(x->names[i]);
    roost_free(x->names);
    roost_free(x);
}

static int
mam_index_check_work(void *arg)
{
    mam_index_t *x = arg;
    char *val = NULL;
    size_t len;
    int rc = roost_store_get(x->users, MAM_INDEX_OWNER, MAM_INDEX_MARKER, &val,
                             &len);

    roost_free(val);
    if (rc < 0 && rc != -ROOST_ENOTFOUND)
        return rc;
    x->done = rc == 0;
    return 0;
}

static int
mam_index_work(void *arg)
{
    mam_index_t *x = arg;
    char *val;
    size_t len;
    int rc;

    for (int i = 0; x->names[i] != NULL; i++) {
        if ((rc = roost_store_count(x->arch, x->names[i])) < 0)
            return rc;
        if (rc == 0)
            continue;
        val = NULL;
        rc = roost_store_get(x->users, "", x->names[i], &val, &len);
        roost_free(val);
        if (rc == -ROOST_ENOTFOUND) {
            if ((rc = roost_store_set(x->users, "", x->names[i], "", 0)) < 0)
                return rc;
            x->added++;
        } else if (rc < 0) {
            return rc;
        }
    }
    return roost_store_set(x->users, MAM_INDEX_OWNER, MAM_INDEX_MARKER, "1", 1);
}

static void
mam_index_done(void *arg, int rc)
{
    mam_index_t *x = arg;

    if (rc < 0)
        roost_log(x->m, ROOST_LOG_ERROR,
                  "indexing archives for expiry failed: %s (tried again at "
                  "the next start)",
                  roost_strerror(rc));
    else if (x->added > 0)
        roost_log(x->m, ROOST_LOG_INFO,
                  "%d archives from an earlier version will now expire",
                  x->added);
    mam_index_free(x);
}

static void
mam_index_listed(roost_mod_t *m, void *arg, int result,
                 const char *const *users)
{
    mam_index_t *x = arg;
    int n = 0;

    if (result < 0 || users == NULL) {
        roost_log(m, ROOST_LOG_ERROR,
                  "listing accounts to index archives failed: %s",
                  roost_strerror(result));
        mam_index_free(x);
        return;
    }
    if (result > MAM_INDEX_MAX)
        roost_log(m, ROOST_LOG_WARN,
                  "%d accounts: the archives of the first %d are indexed "
                  "for expiry, the others when they next archive",
                  result, MAM_INDEX_MAX);
    while (users[n] != NULL)
        n++;
    x->names = roost_xcalloc((size_t)n + 1, sizeof(*x->names));
    for (int i = 0; i < n; i++)
        x->names[i] = roost_xstrdup(users[i]);
    roost_store_async(m, mam_index_work, mam_index_done, x);
}

static void
mam_index_checked(void *arg, int rc)
{
    mam_index_t *x = arg;

    if (rc < 0 || x->done) {
        if (rc < 0)
            roost_log(x->m, ROOST_LOG_ERROR,
                      "reading the archive index marker failed: %s",
                      roost_strerror(rc));
        mam_index_free(x);
        return;
    }
    roost_host_account_list(x->m, MAM_INDEX_MAX, mam_index_listed, x);
}

static void
mam_index_start(roost_mod_t *m)
{
    mam_t *d = mam_data(m);
    mam_index_t *x = roost_xcalloc(1, sizeof(*x)); /* mam_index_free */

    x->m = m;
    x->arch = d->arch;
    x->users = d->users;
    roost_store_async(m, mam_index_check_work, mam_index_checked, x);
}

/* --- account --- */

typedef struct {
    roost_store_t *arch, *prefs, *users;
    char *user;
} mam_purge_t;

static int
mam_purge_work(void *arg)
{
    mam_purge_t *p = arg;
    int rc = roost_store_remove(p->arch, p->user, NULL);
    int rc2 = roost_store_delete(p->prefs, p->user, NULL);
    int rc3 = roost_store_delete(p->users, "", p->user);

    return rc < 0 ? rc : rc2 < 0 ? rc2 : rc3;
}

static void
mam_purge_done(void *arg, int rc)
{
    mam_purge_t *p = arg;

    roost_free(p->user);
    roost_free(p);
}

static roost_verdict_t
mam_user_deleted(const roost_ev_t *ev, void *arg)
{
    mam_t *d = mam_data(ev->mod);
    mam_purge_t *p = roost_xcalloc(1, sizeof(*p)); /* mam_purge_done */

    p->arch = d->arch;
    p->prefs = d->prefs;
    p->users = d->users;
    p->user = roost_xstrdup(roost_jid_node(ev->to));
    roost_store_async(ev->mod, mam_purge_work, mam_purge_done, p);
    return ROOST_PASS;
}

/* --- lifecycle --- */

static const roost_user_state_t mam_user_ops = {
    .load = mam_prefs_load,
    .free = mam_prefs_free,
};

static int
mam_load(roost_mod_t *m)
{
    const struct mam_conf *conf = roost_mod_conf(m);
    mam_key_job_t *kj;
    mam_t *d;
    int rc;

    d = roost_xcalloc(1, sizeof(*d)); /* freed in mam_unload */
    *roost_mod_data(m) = d;
    if ((d->policy = mam_policy_parse(conf->default_policy)) < 0) {
        roost_log(m, ROOST_LOG_ERROR,
                  "default_policy must be always, never or roster, not %s",
                  conf->default_policy);
        return -ROOST_ECONFIG;
    }
    d->arch = roost_store_open(m, "mam", ROOST_STORE_ARCHIVE);
    d->prefs = roost_store_open(m, "mam_prefs", ROOST_STORE_KEYVAL);
    d->keys = roost_store_open(m, "mam_key", ROOST_STORE_KEYVAL);
    d->users = roost_store_open(m, "mam_users", ROOST_STORE_MAP);
    if (d->arch == NULL || d->prefs == NULL || d->keys == NULL ||
        d->users == NULL)
        return -ROOST_ESTORAGE;
    /* Runs before any append's done callback: the worker is FIFO. */
    kj = roost_xcalloc(1, sizeof(*kj)); /* freed in mam_key_done */
    kj->m = m;
    kj->store = d->keys;
    roost_store_async(m, mam_key_work, mam_key_done, kj);

    /* XEP-0313 §7: advertised on the account's bare JID (mod_disco
     * answers there). */
    roost_add_account_feature(m, MAM_NS);
    roost_add_account_feature(m, MAM_NS_EXT);
    roost_add_account_feature(m, MAM_NS_SID);
    rc = roost_user_state(m, &mam_user_ops);
    /* Above ROOST_PRIO_DEFAULT: the stanza-id must be on the message
     * before mod_message delivers it or mod_offline stores it. */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_BARE, ROOST_PRIO_ARCHIVE,
                        mam_incoming, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_MESSAGE_FULL, ROOST_PRIO_ARCHIVE,
                        mam_incoming, NULL);
    /* An observer that always PASSes: filters at ROOST_PRIO_FILTER have
     * decided whether the message goes out at all. */
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_PRE_STANZA, ROOST_PRIO_DEFAULT,
                        mam_outgoing, NULL);
    if (rc == 0)
        rc = roost_hook(m, ROOST_EV_USER_DELETED, ROOST_PRIO_DEFAULT,
                        mam_user_deleted, NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, MAM_NS, "query", mam_query_get, mam_query_set,
                           NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, MAM_NS, "prefs", mam_prefs_get, mam_prefs_set,
                           NULL);
    if (rc == 0)
        rc = roost_hook_iq(m, MAM_NS, "metadata", mam_metadata_get, NULL, NULL);
    if (rc == 0 && conf->expires_after > 0)
        mam_index_start(m);
    if (rc == 0 && conf->expires_after > 0)
        mam_expire_arm(m, conf->cleanup_interval < MAM_PURGE_FIRST
                              ? (uint64_t)conf->cleanup_interval
                              : MAM_PURGE_FIRST);
    return rc;
}

static void
mam_unload(roost_mod_t *m)
{
    mam_t *d = mam_data(m);

    if (d == NULL)
        return;
    /* The core drained the worker: no append is in flight, so the queues
     * are empty; the pass list may hold stanzas that never came back. */
    while (d->queues != NULL)
        mam_queue_free(d, d->queues);
    while (d->pass != NULL)
        mam_pass_take(d, d->pass->st);
    roost_free(d->purge_cursor);
    roost_free(d);
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(mam) = {
    .abi = ROOST_ABI,
    .name = "mam",
    .opts = mam_opts,
    .conf_size = sizeof(struct mam_conf),
    .load = mam_load,
    .unload = mam_unload,
};
