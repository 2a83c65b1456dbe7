/* tools/roostctl.c: account administration from the command line.
 *
 *   roostctl -c FILE adduser JID [--password P]
 *   roostctl -c FILE passwd JID [--password P]
 *   roostctl -c FILE deluser JID
 *   roostctl -c FILE users DOMAIN
 *   roostctl -c FILE roster JID
 *   roostctl -c FILE subscribers JID
 *   roostctl -c FILE subscriptions JID
 *   roostctl -c FILE roster-add JID CONTACT [--name N] [--group G ...]
 *                                [--subscription none|to|from|both]
 *   roostctl -c FILE roster-del JID CONTACT
 *
 * Opens the storage named by the server's config file directly (SQLite
 * serialises with a running roostd) and works through core/auth.c and
 * core/roster.c, so credentials and roster items are written exactly as
 * the server writes them.  Exit codes: 0 ok, 1 operational error (one
 * line on stderr), 2 usage.
 *
 * Not for a running server's in-memory state: a user deleted here keeps
 * any open session until it ends, and roostd keeps the roster of an
 * account with a session in memory and writes it back item by item, so
 * a roster edited here while the user is online may be shown to the
 * user only at the next login, or be overwritten by the server.  Status
 * and import/export commands are still to come. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <roost/jid.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "roster.h"
#include "storage.h"

#define CTL_PASS_MAX 1024 /* as core/auth.c accepts */

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

static void
ctl_usage(FILE *fp)
{
    fputs("usage: roostctl -c FILE COMMAND [ARGS]\n"
          "\n"
          "commands:\n"
          "  adduser JID [--password P]  create an account\n"
          "  passwd JID [--password P]   set an account's password\n"
          "  deluser JID                 delete an account and all its "
          "data\n"
          "  users DOMAIN                list the accounts of DOMAIN\n"
          "  roster JID                  list the account's roster\n"
          "  subscribers JID             contacts subscribed to the user\n"
          "                              (subscription from or both)\n"
          "  subscriptions JID           contacts the user is subscribed "
          "to\n"
          "                              (subscription to or both)\n"
          "  roster-add JID CONTACT [--name N] [--group G ...]\n"
          "             [--subscription none|to|from|both]\n"
          "                              add or change a roster item\n"
          "  roster-del JID CONTACT      remove a roster item\n"
          "\n"
          "Without --password the password is read from standard input\n"
          "(one line).  --password is visible to other local users.\n"
          "\n"
          "roster prints one item per line, tab-separated: contact,\n"
          "subscription, flags (comma-separated ask, pending-in, approved,\n"
          "hidden; '-' for none), name (empty for none), then one field\n"
          "per group; backslash, tab, CR and newline in names and groups\n"
          "are written as \\\\, \\t, \\r and \\n.  A 'hidden' item only\n"
          "records a subscription request the user has not answered.\n"
          "\n"
          "roster-add keeps what is not given of an existing item; --group\n"
          "replaces all groups, --name \"\" removes the name.  A new item\n"
          "has subscription none.  Setting a subscription does not tell\n"
          "the contact (no presence is sent): make the contact's roster\n"
          "agree with roster-add on that account too.  roster-del does not\n"
          "tell the contact either.\n"
          "\n"
          "Roster commands are meant for accounts that are offline: a\n"
          "running roostd keeps the roster of an online user in memory and\n"
          "writes it back on changes.  An edit made while the user is\n"
          "online is not seen by that user's sessions until the next\n"
          "login, and a change the server makes to the same item in the\n"
          "meantime overwrites it.  roostctl cannot tell whether a user is\n"
          "online: stop roostd, or check first.\n"
          "\n"
          "options:\n"
          "  -c, --config FILE  the server's configuration file\n"
          "  -h, --help         this text\n",
          fp);
}

static int ctl_fail(const char *fmt, ...) ROOST_PRINTF(1, 2);

static int
ctl_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("roostctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CTL_FAIL;
}

/* Reads one line of at most CTL_PASS_MAX bytes from stdin into buf
 * (CTL_PASS_MAX + 1 bytes), without echo on a terminal.  0, or CTL_FAIL
 * with the reason printed. */
static int
ctl_read_password(char *buf)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    int c, r = CTL_OK;
    size_t n = 0;

    if (tty) {
        fputs("Password: ", stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    while ((c = getchar()) != EOF && c != '\n') {
        if (c == '\0') {
            r = ctl_fail("password contains a NUL byte");
            break;
        }
        if (n == CTL_PASS_MAX) {
            r = ctl_fail("password longer than %d bytes", CTL_PASS_MAX);
            break;
        }
        buf[n++] = (char)c;
    }
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (r == CTL_OK && n == 0)
        r = ctl_fail("empty password refused");
    return r;
}

/* Parses a bare user JID on a configured host.  *j is the JID or NULL
 * with the exit code returned. */
static int
ctl_user_jid(const roost_config_t *cfg, const char *arg, roost_jid_t **j)
{
    *j = roost_jid_new(arg);
    if (*j == NULL || roost_jid_node(*j) == NULL ||
        roost_jid_resource(*j) != NULL) {
        roost_jid_free(*j);
        *j = NULL;
        fprintf(stderr, "roostctl: '%s' is not a user@domain JID\n", arg);
        return CTL_USAGE;
    }
    if (roost_config_host(cfg, roost_jid_domain(*j)) == NULL) {
        ctl_fail("host %s is not configured in %s", roost_jid_domain(*j),
                 cfg->path);
        roost_jid_free(*j);
        *j = NULL;
        return CTL_FAIL;
    }
    return CTL_OK;
}

/* adduser and passwd */
static int
ctl_set(const roost_config_t *cfg, const char *arg, const char *password,
        int create)
{
    char buf[CTL_PASS_MAX + 1];
    roost_jid_t *j;
    int r;

    if ((r = ctl_user_jid(cfg, arg, &j)) != CTL_OK)
        return r;
    if (password == NULL && (r = ctl_read_password(buf)) != CTL_OK)
        goto out;
    r = (create ? roost_auth_create : roost_auth_set_password)(
        roost_jid_domain(j), roost_jid_node(j), password ? password : buf,
        (int)cfg->scram_iterations);
    if (r == -ROOST_EEXIST)
        r = ctl_fail("user %s exists", roost_jid_bare(j));
    else if (r == -ROOST_ENOTFOUND)
        r = ctl_fail("no user %s", roost_jid_bare(j));
    else if (r == -ROOST_EINVAL)
        r = ctl_fail("password refused: empty, too long or not allowed by "
                     "SASLprep (RFC 4013)");
    else if (r < 0)
        r = ctl_fail("%s: %s", roost_jid_bare(j), roost_strerror(r));
out:
    explicit_bzero(buf, sizeof(buf));
    roost_jid_free(j);
    return r;
}

static int
ctl_deluser(const roost_config_t *cfg, const char *arg)
{
    roost_jid_t *j;
    int r, p;

    if ((r = ctl_user_jid(cfg, arg, &j)) != CTL_OK)
        return r;
    /* The account goes first, so nobody logs in while the data goes.
     * Data is purged even without an account: it cleans up after an
     * earlier deluser that failed half-way. */
    r = roost_auth_delete(roost_jid_domain(j), roost_jid_node(j));
    p = roost_storage_purge_user(roost_jid_domain(j), roost_jid_node(j));
    if (r == -ROOST_ENOTFOUND)
        r = ctl_fail("no user %s", roost_jid_bare(j));
    else if (r < 0 || p < 0)
        r = ctl_fail("%s: %s", roost_jid_bare(j),
                     roost_strerror(r < 0 ? r : p));
    roost_jid_free(j);
    return r;
}

static int
ctl_print_user(void *arg, const char *user)
{
    printf("%s@%s\n", user, (const char *)arg);
    return 0;
}

static int
ctl_users(const roost_config_t *cfg, const char *arg)
{
    const roost_host_conf_t *h;
    char *domain = roost_jid_prep_domain(arg);
    int r;

    if (domain == NULL) {
        fprintf(stderr, "roostctl: '%s' is not a domain\n", arg);
        return CTL_USAGE;
    }
    h = roost_config_host(cfg, domain);
    roost_free(domain);
    if (h == NULL)
        return ctl_fail("host %s is not configured in %s", arg, cfg->path);
    r = roost_auth_users(h->domain, ctl_print_user, h->domain);
    if (r < 0)
        return ctl_fail("%s: %s", h->domain, roost_strerror(r));
    if (fflush(stdout) != 0)
        return ctl_fail("stdout: %s", strerror(errno));
    return CTL_OK;
}

/* --- rosters ---
 *
 * A roster is the MAP store "roster" of the account (core/roster.c): key
 * = contact bare JID, value = the item's private XML form, key "" = the
 * version counter (XEP-0237), which every change bumps.  Items are
 * checked with the core's own loader (roost_roster_load_entry) and
 * written with its encoder (roost_roster_item_encode), so the format has
 * one owner.  The core has no accessor that hands a loaded item back, so
 * ctl_item_decode reads the attributes for display and proves itself by
 * re-encoding: an item it cannot reproduce byte for byte carries state
 * roostctl does not know, and is listed with a warning but never
 * rewritten. */

#define CTL_ROSTER_TEXT_MAX  1023 /* as mod_roster: name and group bytes */
#define CTL_ROSTER_GROUP_MAX 64   /* groups per item (core keeps 64) */

/* One decoded item; it.* strings point into el. */
typedef struct {
    roost_stanza_t *el;
    roost_roster_item_t it;
    const char *groups[CTL_ROSTER_GROUP_MAX + 1];
    int exact; /* re-encodes to the stored bytes */
} ctl_item_t;

static void
ctl_item_free(ctl_item_t *ci)
{
    roost_stanza_unref(ci->el);
    ci->el = NULL;
}

/* Decodes a stored item (key = contact).  0, or -ROOST_EINVAL for an item
 * the core itself would ignore as damaged. */
static int
ctl_item_decode(const char *key, const char *val, size_t len, ctl_item_t *ci)
{
    roost_roster_t *probe = roost_roster_new();
    int ok, ng = 0;
    char *again;

    memset(ci, 0, sizeof(*ci));
    roost_roster_load_entry(probe, key, val, len);
    ok = roost_roster_size(probe) == 1;
    roost_roster_free(probe);
    if (!ok || (ci->el = roost_stanza_parse(val, len)) == NULL)
        return -ROOST_EINVAL;
    ci->it.jid = roost_stanza_attr(ci->el, "jid");
    ci->it.name = roost_stanza_attr(ci->el, "name");
    ci->it.sub =
        (roost_sub_t)roost_sub_parse(roost_stanza_attr(ci->el, "subscription"));
    ci->it.ask = roost_stanza_attr(ci->el, "ask") != NULL;
    ci->it.pending_in = roost_stanza_attr(ci->el, "pending-in") != NULL;
    ci->it.approved = roost_stanza_attr(ci->el, "approved") != NULL;
    ci->it.hidden = roost_stanza_attr(ci->el, "hidden") != NULL;
    for (roost_stanza_t *g = roost_stanza_first_child(ci->el);
         g != NULL && ng < CTL_ROSTER_GROUP_MAX;
         g = roost_stanza_next_sibling(g))
        if (strcmp(roost_stanza_name(g), "group") == 0)
            ci->groups[ng++] = roost_stanza_text(g);
    ci->groups[ng] = NULL;
    ci->it.groups = ci->groups;
    again = roost_roster_item_encode(&ci->it);
    ci->exact = strlen(again) == len && memcmp(again, val, len) == 0;
    roost_free(again);
    return 0;
}

/* Writes s with backslash, tab, CR and newline escaped (C style), so a
 * line is always one item and a field never contains a tab. */
static void
ctl_put_field(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", stdout);
        else if (*s == '\t')
            fputs("\\t", stdout);
        else if (*s == '\n')
            fputs("\\n", stdout);
        else if (*s == '\r')
            fputs("\\r", stdout);
        else
            putchar(*s);
    }
}

/* The user's account and roster store.  CTL_OK with *j and *st set (the
 * caller frees both), or the exit code with nothing to free. */
static int
ctl_roster_open(const roost_config_t *cfg, const char *arg, roost_jid_t **j,
                roost_store_t **st)
{
    int r = ctl_user_jid(cfg, arg, j);

    *st = NULL;
    if (r != CTL_OK)
        return r;
    r = roost_auth_exists(roost_jid_domain(*j), roost_jid_node(*j));
    if (r != 1) {
        r = r == 0 ? ctl_fail("no user %s", roost_jid_bare(*j))
                   : ctl_fail("%s: %s", roost_jid_bare(*j), roost_strerror(r));
        roost_jid_free(*j);
        *j = NULL;
        return r;
    }
    *st = roost_storage_store(roost_jid_domain(*j), "roster", ROOST_STORE_MAP);
    if (*st == NULL) {
        roost_jid_free(*j);
        *j = NULL;
        return ctl_fail("cannot open the roster store");
    }
    return CTL_OK;
}

enum { CTL_LIST_ALL, CTL_LIST_FROM, CTL_LIST_TO };

typedef struct {
    int what;
    const char *user;
    int damaged;
} ctl_list_t;

static int
ctl_list_cb(void *arg, const char *key, const char *val, size_t len)
{
    ctl_list_t *l = arg;
    ctl_item_t ci;
    const char *sep = "";

    if (*key == '\0')
        return 0; /* the version */
    if (ctl_item_decode(key, val, len, &ci) < 0) {
        fprintf(stderr, "roostctl: %s: damaged roster item for %s skipped\n",
                l->user, key);
        l->damaged++;
        return 0;
    }
    if (!ci.exact)
        fprintf(stderr,
                "roostctl: %s: roster item %s has state roostctl does "
                "not know (listed as far as understood)\n",
                l->user, key);
    if (l->what == CTL_LIST_FROM || l->what == CTL_LIST_TO) {
        roost_sub_t want =
            l->what == CTL_LIST_FROM ? ROOST_SUB_FROM : ROOST_SUB_TO;

        if (ci.it.sub == want || ci.it.sub == ROOST_SUB_BOTH)
            printf("%s\n", ci.it.jid);
        ctl_item_free(&ci);
        return 0;
    }
    /* contact, subscription, flags, name, groups...: tab-separated */
    ctl_put_field(ci.it.jid);
    printf("\t%s\t", roost_sub_name(ci.it.sub));
    if (ci.it.ask) {
        fputs("ask", stdout);
        sep = ",";
    }
    if (ci.it.pending_in) {
        printf("%spending-in", sep);
        sep = ",";
    }
    if (ci.it.approved) {
        printf("%sapproved", sep);
        sep = ",";
    }
    if (ci.it.hidden) {
        printf("%shidden", sep);
        sep = ",";
    }
    if (*sep == '\0')
        putchar('-');
    putchar('\t');
    if (ci.it.name != NULL)
        ctl_put_field(ci.it.name);
    for (int i = 0; ci.it.groups[i] != NULL; i++) {
        putchar('\t');
        ctl_put_field(ci.it.groups[i]);
    }
    putchar('\n');
    ctl_item_free(&ci);
    return 0;
}

/* roster, subscribers, subscriptions */
static int
ctl_roster_list(const roost_config_t *cfg, const char *arg, int what)
{
    ctl_list_t l = {.what = what, .user = arg};
    roost_store_t *st;
    roost_jid_t *j;
    int r;

    if ((r = ctl_roster_open(cfg, arg, &j, &st)) != CTL_OK)
        return r;
    r = roost_store_keys(st, roost_jid_node(j), ctl_list_cb, &l);
    if (r < 0)
        r = ctl_fail("%s: %s", roost_jid_bare(j), roost_strerror(r));
    else if (fflush(stdout) != 0)
        r = ctl_fail("stdout: %s", strerror(errno));
    else
        r = CTL_OK;
    roost_store_close(st);
    roost_jid_free(j);
    return r;
}

/* Bumps the stored roster version (key "") so that clients caching the
 * roster (XEP-0237) fetch it again. */
static int
ctl_roster_bump(roost_store_t *st, const char *user)
{
    char *val = NULL, buf[24];
    long long v = 0;
    size_t len;
    int r = roost_store_get(st, user, "", &val, &len);

    if (r < 0 && r != -ROOST_ENOTFOUND)
        return r;
    if (val != NULL) {
        char *end;

        errno = 0;
        v = strtoll(val, &end, 10);
        if (errno != 0 || end == val || v < 0)
            v = 0;
        roost_free(val);
    }
    snprintf(buf, sizeof(buf), "%lld", v + 1);
    return roost_store_set(st, user, "", buf, strlen(buf));
}

/* The prepared bare JID of a contact for user j, or NULL (printed). */
static roost_jid_t *
ctl_contact_jid(const roost_jid_t *j, const char *arg)
{
    roost_jid_t *c = roost_jid_new(arg);

    if (c == NULL || roost_jid_resource(c) != NULL) {
        fprintf(stderr, "roostctl: '%s' is not a bare JID\n", arg);
        roost_jid_free(c);
        return NULL;
    }
    if (strcmp(roost_jid_bare(c), roost_jid_bare(j)) == 0) {
        fprintf(stderr, "roostctl: a user is not a contact of itself\n");
        roost_jid_free(c);
        return NULL;
    }
    return c;
}

typedef struct {
    const char *name;
    const char *groups[CTL_ROSTER_GROUP_MAX + 1];
    int ngroups;
    int sub; /* -1: not given */
} ctl_item_opts_t;

static int
ctl_roster_add(const roost_config_t *cfg, const char *arg, const char *contact,
               const ctl_item_opts_t *o)
{
    roost_store_t *st;
    roost_jid_t *j, *c;
    roost_roster_item_t it;
    ctl_item_t old = {0};
    char *val = NULL, *enc;
    size_t len;
    int r, have;

    if ((r = ctl_roster_open(cfg, arg, &j, &st)) != CTL_OK)
        return r;
    if ((c = ctl_contact_jid(j, contact)) == NULL) {
        r = CTL_USAGE;
        goto out;
    }
    r = roost_store_get(st, roost_jid_node(j), roost_jid_bare(c), &val, &len);
    if (r < 0 && r != -ROOST_ENOTFOUND) {
        r = ctl_fail("%s: %s", roost_jid_bare(j), roost_strerror(r));
        goto out;
    }
    have = r == 0;
    if (have && (ctl_item_decode(roost_jid_bare(c), val, len, &old) < 0 ||
                 !old.exact)) {
        r = ctl_fail("%s: the stored item for %s is damaged or has state "
                     "roostctl does not know; not rewritten",
                     roost_jid_bare(j), roost_jid_bare(c));
        goto out;
    }
    /* An existing item keeps what is not given; a new one starts as
     * "none" with no flags.  Forcing a subscription clears the pending
     * flags it makes moot: ask once subscribed to the contact,
     * pending-in and pre-approval once the contact is subscribed. */
    memset(&it, 0, sizeof(it));
    if (have)
        it = old.it;
    it.jid = roost_jid_bare(c);
    it.hidden = 0;
    if (o->name != NULL)
        it.name = *o->name != '\0' ? o->name : NULL;
    if (o->ngroups > 0)
        it.groups = o->groups;
    if (o->sub >= 0) {
        it.sub = (roost_sub_t)o->sub;
        if (it.sub == ROOST_SUB_TO || it.sub == ROOST_SUB_BOTH)
            it.ask = 0;
        if (it.sub == ROOST_SUB_FROM || it.sub == ROOST_SUB_BOTH)
            it.pending_in = it.approved = 0;
    }
    enc = roost_roster_item_encode(&it);
    r = roost_store_set(st, roost_jid_node(j), it.jid, enc, strlen(enc));
    roost_free(enc);
    if (r == 0)
        r = ctl_roster_bump(st, roost_jid_node(j));
    r = r < 0 ? ctl_fail("%s: %s", roost_jid_bare(j), roost_strerror(r))
              : CTL_OK;
out:
    ctl_item_free(&old);
    roost_free(val);
    roost_jid_free(c);
    roost_store_close(st);
    roost_jid_free(j);
    return r;
}

static int
ctl_roster_del(const roost_config_t *cfg, const char *arg, const char *contact)
{
    roost_store_t *st;
    roost_jid_t *j, *c;
    char *val = NULL;
    size_t len;
    int r;

    if ((r = ctl_roster_open(cfg, arg, &j, &st)) != CTL_OK)
        return r;
    if ((c = ctl_contact_jid(j, contact)) == NULL) {
        r = CTL_USAGE;
        goto out;
    }
    r = roost_store_get(st, roost_jid_node(j), roost_jid_bare(c), &val, &len);
    roost_free(val);
    if (r == -ROOST_ENOTFOUND) {
        r = ctl_fail("%s has no roster item %s", roost_jid_bare(j),
                     roost_jid_bare(c));
        goto out;
    }
    if (r == 0)
        r = roost_store_delete(st, roost_jid_node(j), roost_jid_bare(c));
    if (r == 0)
        r = ctl_roster_bump(st, roost_jid_node(j));
    r = r < 0 ? ctl_fail("%s: %s", roost_jid_bare(j), roost_strerror(r))
              : CTL_OK;
out:
    roost_jid_free(c);
    roost_store_close(st);
    roost_jid_free(j);
    return r;
}

/* Matches argv[*k] against --NAME VALUE or --NAME=VALUE: 1 with *val
 * set (and *k advanced past a separate value), 0 for another word, -1
 * for --NAME without a value. */
static int
ctl_opt_value(int argc, char **argv, int *k, const char *name, const char **val)
{
    size_t n = strlen(name);

    if (strncmp(argv[*k], name, n) != 0)
        return 0;
    if (argv[*k][n] == '=') {
        *val = argv[*k] + n + 1;
        return 1;
    }
    if (argv[*k][n] != '\0')
        return 0;
    if (*k + 1 >= argc)
        return -1;
    *val = argv[++*k];
    return 1;
}

/* Checks and records one --group; CTL_OK or CTL_USAGE (printed). */
static int
ctl_add_group(ctl_item_opts_t *o, const char *g)
{
    if (*g == '\0' || strlen(g) > CTL_ROSTER_TEXT_MAX) {
        fprintf(stderr, "roostctl: a group must have 1 to %d bytes\n",
                CTL_ROSTER_TEXT_MAX);
        return CTL_USAGE;
    }
    for (int i = 0; i < o->ngroups; i++)
        if (strcmp(o->groups[i], g) == 0) {
            fprintf(stderr, "roostctl: group '%s' given twice\n", g);
            return CTL_USAGE;
        }
    if (o->ngroups == CTL_ROSTER_GROUP_MAX) {
        fprintf(stderr, "roostctl: more than %d groups\n",
                CTL_ROSTER_GROUP_MAX);
        return CTL_USAGE;
    }
    o->groups[o->ngroups++] = g;
    o->groups[o->ngroups] = NULL;
    return CTL_OK;
}

enum { CTL_O_PASSWORD = 1, CTL_O_ITEM = 2 };

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const struct {
        const char *name;
        int nargs, opts;
    } cmds[] = {{"adduser", 1, CTL_O_PASSWORD},
                {"passwd", 1, CTL_O_PASSWORD},
                {"deluser", 1, 0},
                {"users", 1, 0},
                {"roster", 1, 0},
                {"subscribers", 1, 0},
                {"subscriptions", 1, 0},
                {"roster-add", 2, CTL_O_ITEM},
                {"roster-del", 2, 0}};
    const char *conf = NULL, *cmd, *args[2] = {NULL, NULL}, *password = NULL;
    const char *v;
    ctl_item_opts_t item = {.sub = -1};
    roost_config_t *cfg;
    char *err = NULL;
    int opt, k, nargs = 0, r, m;
    size_t c;

    while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        if (opt == 'c') {
            conf = optarg;
        } else if (opt == 'h') {
            ctl_usage(stdout);
            return CTL_OK;
        } else {
            ctl_usage(stderr);
            return CTL_USAGE;
        }
    }
    if (optind >= argc || conf == NULL) {
        ctl_usage(stderr);
        return CTL_USAGE;
    }
    cmd = argv[optind];
    for (c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++)
        if (strcmp(cmds[c].name, cmd) == 0)
            break;
    if (c == sizeof(cmds) / sizeof(cmds[0])) {
        fprintf(stderr, "roostctl: unknown command '%s'\n", cmd);
        ctl_usage(stderr);
        return CTL_USAGE;
    }
    /* COMMAND's own arguments: positionals and its --options, each as
     * --opt VALUE or --opt=VALUE */
    for (k = optind + 1; k < argc; k++) {
        m = 0;
        if ((cmds[c].opts & CTL_O_PASSWORD) &&
            (m = ctl_opt_value(argc, argv, &k, "--password", &v)) == 1) {
            password = v;
        } else if ((cmds[c].opts & CTL_O_ITEM) && m == 0 &&
                   (m = ctl_opt_value(argc, argv, &k, "--name", &v)) == 1) {
            if (strlen(v) > CTL_ROSTER_TEXT_MAX) {
                fprintf(stderr, "roostctl: a name has at most %d bytes\n",
                        CTL_ROSTER_TEXT_MAX);
                return CTL_USAGE;
            }
            item.name = v;
        } else if ((cmds[c].opts & CTL_O_ITEM) && m == 0 &&
                   (m = ctl_opt_value(argc, argv, &k, "--group", &v)) == 1) {
            if (ctl_add_group(&item, v) != CTL_OK)
                return CTL_USAGE;
        } else if ((cmds[c].opts & CTL_O_ITEM) && m == 0 &&
                   (m = ctl_opt_value(argc, argv, &k, "--subscription", &v)) ==
                       1) {
            if ((item.sub = roost_sub_parse(v)) < 0) {
                fprintf(stderr,
                        "roostctl: --subscription: none, to, from or "
                        "both, not '%s'\n",
                        v);
                return CTL_USAGE;
            }
        } else if (m < 0 || argv[k][0] == '-' || nargs == cmds[c].nargs) {
            fprintf(stderr, "roostctl: %s: unexpected '%s'\n", cmd, argv[k]);
            return CTL_USAGE;
        } else {
            args[nargs++] = argv[k];
        }
    }
    if (nargs != cmds[c].nargs) {
        fprintf(stderr, "roostctl: %s: missing argument\n", cmd);
        return CTL_USAGE;
    }

    if ((cfg = roost_config_load(conf, &err)) == NULL) {
        r = ctl_fail("%s", err ? err : conf);
        roost_free(err);
        return r;
    }
    roost_log_level = cfg->log_level;
    if (strcmp(cfg->storage_driver, "memory") == 0) {
        r = ctl_fail("%s: storage driver 'memory' keeps no data to "
                     "administer",
                     cfg->path);
        roost_config_free(cfg);
        return r;
    }
    if (roost_storage_init(cfg->storage_driver, cfg->storage_path, &err) != 0) {
        r = ctl_fail("storage: %s", err ? err : "cannot open");
        roost_free(err);
        roost_config_free(cfg);
        return r;
    }
    if (strcmp(cmd, "adduser") == 0 || strcmp(cmd, "passwd") == 0)
        r = ctl_set(cfg, args[0], password, cmd[0] == 'a');
    else if (strcmp(cmd, "deluser") == 0)
        r = ctl_deluser(cfg, args[0]);
    else if (strcmp(cmd, "users") == 0)
        r = ctl_users(cfg, args[0]);
    else if (strcmp(cmd, "roster") == 0)
        r = ctl_roster_list(cfg, args[0], CTL_LIST_ALL);
    else if (strcmp(cmd, "subscribers") == 0)
        r = ctl_roster_list(cfg, args[0], CTL_LIST_FROM);
    else if (strcmp(cmd, "subscriptions") == 0)
        r = ctl_roster_list(cfg, args[0], CTL_LIST_TO);
    else if (strcmp(cmd, "roster-add") == 0)
        r = ctl_roster_add(cfg, args[0], args[1], &item);
    else
        r = ctl_roster_del(cfg, args[0], args[1]);
    roost_storage_shutdown();
    roost_config_free(cfg);
    return r;
}
