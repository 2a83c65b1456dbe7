/* core/roster.c: rosters in memory (RFC 6121 §2) and the roost/roster.h
 * API on top of them.
 *
 * A roster is a hash of items by contact bare JID plus a version counter
 * (XEP-0237: any change bumps it).  Items are stored one per key in the
 * MAP store "roster" as a private XML form, the version under key "".
 * Loading and persisting go through host hooks (core/user.c), so this
 * file has no storage or session code and links into the module harness
 * as it is.  Every item and its strings are one allocation (freed on
 * replace, remove and roost_roster_free). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uthash.h>

#include "log.h"
#include "roster.h"

typedef struct roster_entry {
    roost_roster_item_t it; /* strings point into this allocation */
    UT_hash_handle hh;
} roster_entry_t;

struct roost_roster {
    roster_entry_t *items;
    int64_t version;
    char version_str[24];
};

static const char *const sub_names[] = {"none", "to", "from", "both"};

const char *
roost_sub_name(roost_sub_t sub)
{
    return (unsigned)sub < 4 ? sub_names[sub] : "none";
}

int
roost_sub_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name != NULL && strcmp(name, sub_names[i]) == 0)
            return i;
    return -1;
}

roost_roster_t *
roost_roster_new(void)
{
    roost_roster_t *r = roost_xcalloc(1, sizeof(*r));

    snprintf(r->version_str, sizeof(r->version_str), "0");
    return r;
}

void
roost_roster_free(roost_roster_t *r)
{
    roster_entry_t *e, *tmp;

    if (r == NULL)
        return;
    HASH_ITER (hh, r->items, e, tmp) {
        HASH_DEL(r->items, e);
        roost_free(e);
    }
    roost_free(r);
}

int
roost_roster_size(const roost_roster_t *r)
{
    return (int)HASH_COUNT(r->items);
}

/* One block: the entry, the group pointer array, then the strings. */
static roster_entry_t *
entry_new(const roost_roster_item_t *it)
{
    size_t ng = 0, size, jl = strlen(it->jid) + 1;
    size_t nl = it->name != NULL ? strlen(it->name) + 1 : 0;
    roster_entry_t *e;
    char *p;
    const char **groups;

    for (; it->groups != NULL && it->groups[ng] != NULL; ng++)
        ;
    size = sizeof(*e) + (ng + 1) * sizeof(char *) + jl + nl;
    for (size_t i = 0; i < ng; i++)
        size += strlen(it->groups[i]) + 1;
    e = roost_xcalloc(1, size);
    groups = (const char **)(e + 1);
    p = (char *)(groups + ng + 1);
    e->it = *it;
    memcpy(p, it->jid, jl);
    e->it.jid = p;
    p += jl;
    if (nl > 0) {
        memcpy(p, it->name, nl);
        e->it.name = p;
        p += nl;
    }
    for (size_t i = 0; i < ng; i++) {
        size_t gl = strlen(it->groups[i]) + 1;

        memcpy(p, it->groups[i], gl);
        groups[i] = p;
        p += gl;
    }
    groups[ng] = NULL;
    e->it.groups = groups;
    return e;
}

static void
roster_put(roost_roster_t *r, roster_entry_t *e)
{
    roster_entry_t *old;

    HASH_FIND_STR(r->items, e->it.jid, old);
    if (old != NULL) {
        HASH_DEL(r->items, old);
        roost_free(old);
    }
    HASH_ADD_KEYPTR(hh, r->items, e->it.jid, strlen(e->it.jid), e);
}

/* The protocol attributes and groups of an item (RFC 6121 §2.1.2). */
static void
item_fill(roost_stanza_t *el, const roost_roster_item_t *it)
{
    roost_stanza_set_attr(el, "jid", it->jid);
    if (it->name != NULL)
        roost_stanza_set_attr(el, "name", it->name);
    roost_stanza_set_attr(el, "subscription", roost_sub_name(it->sub));
    if (it->ask)
        roost_stanza_set_attr(el, "ask", "subscribe");
    /* RFC 6121 §2.1.2.1, §3.4.1: pre-approval is shown. */
    if (it->approved)
        roost_stanza_set_attr(el, "approved", "true");
    for (int i = 0; it->groups != NULL && it->groups[i] != NULL; i++) {
        roost_stanza_t *g = roost_stanza_add_child(el, NULL, "group");

        roost_stanza_add_text(g, it->groups[i], strlen(it->groups[i]));
    }
}

char *
roost_roster_item_encode(const roost_roster_item_t *it)
{
    roost_stanza_t *el = roost_stanza_new(NULL, "item");
    char *out;

    item_fill(el, it);
    /* Our private state, never shown to clients. */
    if (it->pending_in)
        roost_stanza_set_attr(el, "pending-in", "1");
    if (it->approved)
        roost_stanza_set_attr(el, "approved", "1");
    if (it->hidden)
        roost_stanza_set_attr(el, "hidden", "1");
    out = roost_stanza_serialize(el, NULL, NULL);
    roost_stanza_unref(el);
    return out;
}

/* --- loading --- */

/* The stored form as roost_roster_item_encode writes it, read without
 * expat: a login reads every item of the roster, and a contact's load
 * (presence to an offline account) its item for the sender, so this is
 * the commonest document the server parses.  Only what is certainly
 * well-formed and means the same to expat is accepted: <item> with
 * double-quoted known attributes (each at most once) and <group>
 * children with text, ASCII only (no UTF-8 to check), no character
 * references, no control characters, '>' escaped; anything else
 * returns -1 and goes to the XML parser, which decides as before. */
typedef struct {
    char buf[1024]; /* decoded strings, NUL-terminated */
    size_t used;
    const char *attr[7]; /* by ROSTER_A_* */
    const char *groups[65];
    int ng;
} roster_fast_t;

enum {
    ROSTER_A_JID,
    ROSTER_A_NAME,
    ROSTER_A_SUB,
    ROSTER_A_ASK,
    ROSTER_A_PENDING,
    ROSTER_A_APPROVED,
    ROSTER_A_HIDDEN
};

static const char *const roster_attr_names[] = {
    "jid", "name", "subscription", "ask", "pending-in", "approved", "hidden"};

/* Decodes p[0..n) (text or attribute value, end excluded) into f->buf;
 * NULL if it holds what the fast path leaves to expat. */
static const char *
roster_fast_text(roster_fast_t *f, const char *p, size_t n, int attr)
{
    char *out = f->buf + f->used, *o = out;

    if (n + 1 > sizeof(f->buf) - f->used)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        /* roost_stanza_serialize escapes '>' (so no "]]>" either). */
        if (c >= 0x80 || c < 0x20 || c == '<' || c == '>' || (attr && c == '"'))
            return NULL;
        if (c != '&') {
            *o++ = (char)c;
            continue;
        }
        if (n - i >= 5 && memcmp(p + i, "&amp;", 5) == 0)
            *o++ = '&', i += 4;
        else if (n - i >= 4 && memcmp(p + i, "&lt;", 4) == 0)
            *o++ = '<', i += 3;
        else if (n - i >= 4 && memcmp(p + i, "&gt;", 4) == 0)
            *o++ = '>', i += 3;
        else if (n - i >= 6 && memcmp(p + i, "&quot;", 6) == 0)
            *o++ = '"', i += 5;
        else if (n - i >= 6 && memcmp(p + i, "&apos;", 6) == 0)
            *o++ = '\'', i += 5;
        else
            return NULL;
    }
    *o++ = '\0';
    f->used += (size_t)(o - out);
    return out;
}

static int
roster_fast_parse(roster_fast_t *f, const char *p, size_t len)
{
    const char *end = p + len;

    memset(f->attr, 0, sizeof(f->attr));
    f->used = 0;
    f->ng = 0;
    if (len < 7 || memcmp(p, "<item", 5) != 0)
        return -1;
    p += 5;
    for (;;) {
        const char *name, *q;
        size_t nl;
        int a;

        if (end - p >= 2 && p[0] == '/' && p[1] == '>')
            return p + 2 == end ? 0 : -1;
        if (p < end && *p == '>') {
            p++;
            break;
        }
        if (p >= end || *p != ' ')
            return -1;
        name = ++p;
        while (p < end && *p != '=')
            p++;
        nl = (size_t)(p - name);
        if (end - p < 2 || p[1] != '"')
            return -1;
        for (a = 0; a < 7; a++)
            if (strlen(roster_attr_names[a]) == nl &&
                memcmp(roster_attr_names[a], name, nl) == 0)
                break;
        if (a == 7 || f->attr[a] != NULL)
            return -1;
        p += 2;
        if ((q = memchr(p, '"', (size_t)(end - p))) == NULL ||
            (f->attr[a] = roster_fast_text(f, p, (size_t)(q - p), 1)) == NULL)
            return -1;
        p = q + 1;
    }
    /* Children: <group>text</group>, then </item>. */
    for (;;) {
        const char *q;

        if (end - p == 7 && memcmp(p, "</item>", 7) == 0)
            return 0;
        if (end - p < 7 || memcmp(p, "<group>", 7) != 0)
            return -1;
        p += 7;
        if ((q = memchr(p, '<', (size_t)(end - p))) == NULL || q == p ||
            end - q < 8 || memcmp(q, "</group>", 8) != 0)
            return -1;
        /* Past 64 groups, checked and dropped (as the XML path does). */
        if ((f->groups[f->ng] = roster_fast_text(f, p, (size_t)(q - p), 0)) ==
            NULL)
            return -1;
        if (f->ng < 64)
            f->ng++;
        p = q + 8;
    }
}

/* The entry from a stored item, as the XML parser reads it. */
static void
roster_load_xml(roost_roster_t *r, const char *key, const char *val, size_t len)
{
    roost_stanza_t *el;
    roost_roster_item_t it;
    const char *groups[65];
    int ng = 0, sub;

    if (*key == '\0') {
        int64_t v = 0;

        if (sscanf(val, "%" SCNd64, &v) == 1 && v >= 0) {
            r->version = v;
            snprintf(r->version_str, sizeof(r->version_str), "%" PRId64, v);
        }
        return;
    }
    el = roost_stanza_parse(val, len);
    memset(&it, 0, sizeof(it));
    it.jid = el != NULL ? roost_stanza_attr(el, "jid") : NULL;
    sub = el != NULL ? roost_sub_parse(roost_stanza_attr(el, "subscription"))
                     : -1;
    if (it.jid == NULL || strcmp(it.jid, key) != 0 || sub < 0) {
        ROOST_LOG(ROOST_LOG_WARN, "roster", "ignoring a damaged item for %s",
                  key);
        roost_stanza_unref(el);
        return;
    }
    it.sub = (roost_sub_t)sub;
    it.name = roost_stanza_attr(el, "name");
    it.ask = roost_stanza_attr(el, "ask") != NULL;
    it.pending_in = roost_stanza_attr(el, "pending-in") != NULL;
    it.approved = roost_stanza_attr(el, "approved") != NULL;
    it.hidden = roost_stanza_attr(el, "hidden") != NULL;
    for (roost_stanza_t *g = roost_stanza_first_child(el); g != NULL && ng < 64;
         g = roost_stanza_next_sibling(g))
        if (strcmp(roost_stanza_name(g), "group") == 0)
            groups[ng++] = roost_stanza_text(g);
    groups[ng] = NULL;
    it.groups = groups;
    roster_put(r, entry_new(&it));
    roost_stanza_unref(el);
}

void
roost_roster_load_entry(roost_roster_t *r, const char *key, const char *val,
                        size_t len)
{
    roster_fast_t f;
    roost_roster_item_t it;
    int sub;

    if (*key == '\0' || roster_fast_parse(&f, val, len) != 0) {
        roster_load_xml(r, key, val, len);
        return;
    }
    memset(&it, 0, sizeof(it));
    it.jid = f.attr[ROSTER_A_JID];
    sub = roost_sub_parse(f.attr[ROSTER_A_SUB]);
    if (it.jid == NULL || strcmp(it.jid, key) != 0 || sub < 0) {
        ROOST_LOG(ROOST_LOG_WARN, "roster", "ignoring a damaged item for %s",
                  key);
        return;
    }
    it.sub = (roost_sub_t)sub;
    it.name = f.attr[ROSTER_A_NAME];
    it.ask = f.attr[ROSTER_A_ASK] != NULL;
    it.pending_in = f.attr[ROSTER_A_PENDING] != NULL;
    it.approved = f.attr[ROSTER_A_APPROVED] != NULL;
    it.hidden = f.attr[ROSTER_A_HIDDEN] != NULL;
    f.groups[f.ng] = NULL;
    it.groups = f.groups;
    roster_put(r, entry_new(&it));
}

/* --- the public API --- */

static void
roster_bump(roost_mod_t *m, const char *user, roost_roster_t *r)
{
    r->version++;
    snprintf(r->version_str, sizeof(r->version_str), "%" PRId64, r->version);
    roost_host_roster_persist(m, user, "", r->version_str);
}

const roost_roster_item_t *
roost_roster_item(roost_mod_t *m, const char *user, const char *contact)
{
    roost_roster_t *r = roost_host_roster(m, user);
    roster_entry_t *e;

    if (r == NULL || contact == NULL)
        return NULL;
    HASH_FIND_STR(r->items, contact, e);
    return e != NULL ? &e->it : NULL;
}

int
roost_roster_items(roost_mod_t *m, const char *user,
                   int (*fn)(void *, const roost_roster_item_t *), void *arg)
{
    roost_roster_t *r = roost_host_roster(m, user);
    roster_entry_t *e, *tmp;

    if (r == NULL)
        return -ROOST_ENOTFOUND;
    HASH_ITER (hh, r->items, e, tmp) {
        if (fn(arg, &e->it) != 0)
            break;
    }
    return (int)HASH_COUNT(r->items);
}

const char *
roost_roster_version(roost_mod_t *m, const char *user)
{
    roost_roster_t *r = roost_host_roster(m, user);

    return r != NULL ? r->version_str : NULL;
}

int
roost_roster_set(roost_mod_t *m, const char *user,
                 const roost_roster_item_t *it, int max)
{
    roost_roster_t *r = roost_host_roster(m, user);
    roster_entry_t *e;
    char *val;

    if (r == NULL)
        return -ROOST_ENOTFOUND;
    if (it == NULL || it->jid == NULL || *it->jid == '\0' ||
        (unsigned)it->sub > ROOST_SUB_BOTH)
        return -ROOST_EINVAL;
    HASH_FIND_STR(r->items, it->jid, e);
    if (e == NULL && max > 0 && (int)HASH_COUNT(r->items) >= max)
        return -ROOST_ELIMIT;
    e = entry_new(it);
    roster_put(r, e);
    val = roost_roster_item_encode(&e->it);
    roost_host_roster_persist(m, user, e->it.jid, val);
    roost_free(val);
    roster_bump(m, user, r);
    return 0;
}

int
roost_roster_remove(roost_mod_t *m, const char *user, const char *contact)
{
    roost_roster_t *r = roost_host_roster(m, user);
    roster_entry_t *e;

    if (r == NULL || contact == NULL)
        return -ROOST_ENOTFOUND;
    HASH_FIND_STR(r->items, contact, e);
    if (e == NULL)
        return -ROOST_ENOTFOUND;
    HASH_DEL(r->items, e);
    roost_free(e);
    roost_host_roster_persist(m, user, contact, NULL);
    roster_bump(m, user, r);
    return 0;
}

roost_stanza_t *
roost_roster_item_xml(roost_stanza_t *parent, const roost_roster_item_t *it)
{
    roost_stanza_t *el =
        roost_stanza_add_child(parent, "jabber:iq:roster", "item");

    item_fill(el, it);
    return el;
}

void
roost_roster_push(roost_mod_t *m, const char *user, const char *contact)
{
    roost_session_t *ss[64];
    int n = roost_user_sessions(m, user, ss, 64);
    const roost_roster_item_t *it = roost_roster_item(m, user, contact);
    const char *ver = roost_roster_version(m, user);
    roost_stanza_t *iq = NULL, *q;
    roost_roster_item_t gone;
    static uint64_t push_id;
    char id[40];

    if (n > 64)
        n = 64; /* max_resources is far lower; a safety bound */
    if (it != NULL && it->hidden)
        return;
    for (int i = 0; i < n; i++) {
        if (!roost_session_roster_requested(ss[i]))
            continue;
        if (iq == NULL) {
            iq = roost_stanza_new(ROOST_NS_CLIENT, "iq");
            roost_stanza_set_attr(iq, "type", "set");
            snprintf(id, sizeof(id), "push%" PRIu64, ++push_id);
            roost_stanza_set_attr(iq, "id", id);
            q = roost_stanza_add_child(iq, "jabber:iq:roster", "query");
            if (ver != NULL)
                roost_stanza_set_attr(q, "ver", ver);
            if (it == NULL) {
                memset(&gone, 0, sizeof(gone));
                gone.jid = contact;
                roost_stanza_set_attr(roost_roster_item_xml(q, &gone),
                                      "subscription", "remove");
            } else {
                roost_roster_item_xml(q, it);
            }
        }
        /* RFC 6121 §2.1.6: to the full JID; from omitted or the bare JID
         * of the account. */
        roost_stanza_set_attr(iq, "to",
                              roost_jid_full(roost_session_jid(ss[i])));
        roost_session_deliver(ss[i], iq);
    }
    roost_stanza_unref(iq);
}
