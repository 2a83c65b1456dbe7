/* core/config.c: reading and validating the server configuration.
 *
 * libconfig parses the file; everything after that is table-driven: the
 * core's options (top level, limits, storage, listen entries, hosts) are
 * roost_opt_t tables below (HOUSE 17), filled by the same code that fills
 * module option structs, so a module option and a core option accept the
 * same syntax and fail the same way ("file:line: message").  Paths the
 * admin provides (data_dir, modules_dir, cert, key) are relative to the
 * config file's directory; files the server writes (storage path, pidfile,
 * log_file) are relative to data_dir.
 *
 * Not for applying the configuration (log level, privileges, listeners):
 * the server does that from the roost_config_t this file returns, and the
 * module loader calls roost_config_module_opts(). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libconfig.h>

#include <roost/jid.h>

#include "config.h"

#ifndef ROOST_MODULEDIR
#define ROOST_MODULEDIR "/usr/local/lib/roost"
#endif

#define CONF_OFF(type, field) offsetof(type, field)
#define CONF_DAY_MS           (86400 * INT64_C(1000))

/* Raw forms of the config sections: strings point into libconfig and are
 * copied (and resolved, for paths) into roost_config_t afterwards. */
typedef struct {
    const char *log_level, *log_file, *data_dir, *pidfile;
    const char *user, *group, *modules_dir;
    int64_t scram_iterations, worker_threads;
} conf_top_t;

typedef struct {
    const char *driver, *path;
} conf_storage_t;

typedef struct {
    int require_encryption;
    const char *dialback_secret, *dns_servers, *ca_file;
    int secure_auth, bidi;
    int64_t connect_timeout, idle_timeout;
} conf_s2s_t;

typedef struct {
    const char *domain;
    int require_encryption, bidi;
} conf_peer_t;

typedef struct {
    const char *domain, *host;
    int64_t port;
} conf_route_t;

typedef struct {
    const char *domain, *secret;
} conf_component_t;

typedef struct {
    const char *address, *type, *tls;
    int64_t port;
} conf_listen_t;

typedef struct {
    const char *domain, *cert, *key;
    const char *const *modules, *const *admins;
    int anonymous, require_encryption;
} conf_host_t;

/* The core's options.  min == max == 0 means unbounded; MSEC bounds are
 * milliseconds while the text (and the file) says seconds. */
static const roost_opt_t conf_top_opts[] = {
    {"log_level", ROOST_OPT_STR, CONF_OFF(conf_top_t, log_level), "info", 0, 0},
    {"log_file", ROOST_OPT_STR, CONF_OFF(conf_top_t, log_file), NULL, 0, 0},
    {"data_dir", ROOST_OPT_STR, CONF_OFF(conf_top_t, data_dir), "data", 0, 0},
    {"pidfile", ROOST_OPT_STR, CONF_OFF(conf_top_t, pidfile), NULL, 0, 0},
    {"user", ROOST_OPT_STR, CONF_OFF(conf_top_t, user), NULL, 0, 0},
    {"group", ROOST_OPT_STR, CONF_OFF(conf_top_t, group), NULL, 0, 0},
    {"modules_dir", ROOST_OPT_STR, CONF_OFF(conf_top_t, modules_dir),
     ROOST_MODULEDIR, 0, 0},
    {"scram_iterations", ROOST_OPT_INT, CONF_OFF(conf_top_t, scram_iterations),
     "4096", 4096, 1000000},
    {"worker_threads", ROOST_OPT_INT, CONF_OFF(conf_top_t, worker_threads), "2",
     1, 64},
    {NULL, 0, 0, NULL, 0, 0}};

static const roost_opt_t conf_limits_opts[] = {
    {"max_stanza_size", ROOST_OPT_SIZE,
     CONF_OFF(roost_config_t, max_stanza_size), "262144", 1024,
     64 * 1024 * 1024},
    {"max_depth", ROOST_OPT_INT, CONF_OFF(roost_config_t, max_depth), "64", 1,
     1000},
    {"max_attrs", ROOST_OPT_INT, CONF_OFF(roost_config_t, max_attrs), "64", 1,
     10000},
    {"c2s_timeout", ROOST_OPT_MSEC, CONF_OFF(roost_config_t, c2s_timeout),
     "300", 1, CONF_DAY_MS},
    {"auth_timeout", ROOST_OPT_MSEC, CONF_OFF(roost_config_t, auth_timeout),
     "30", 1, CONF_DAY_MS},
    {"output_high_water", ROOST_OPT_SIZE, CONF_OFF(roost_config_t, output_hwm),
     "524288", 1024, INT64_C(1) << 30},
    {"auth_fail_delay", ROOST_OPT_MSEC,
     CONF_OFF(roost_config_t, auth_fail_delay), "1.0", 0, 60000},
    {"max_resources", ROOST_OPT_INT, CONF_OFF(roost_config_t, max_resources),
     "10", 1, 1000},
    {"sm_resume_timeout", ROOST_OPT_MSEC,
     CONF_OFF(roost_config_t, sm_resume_timeout), "300", 0, CONF_DAY_MS},
    {"sm_max_queue", ROOST_OPT_INT, CONF_OFF(roost_config_t, sm_max_queue),
     "1000", 1, 1000000},
    {"max_connections_per_ip", ROOST_OPT_INT,
     CONF_OFF(roost_config_t, max_conn_per_ip), "100", 0, 1000000},
    {"auth_failures_per_ip", ROOST_OPT_INT,
     CONF_OFF(roost_config_t, auth_failures_per_ip), "10", 0, 1000000},
    {"auth_failure_window", ROOST_OPT_MSEC,
     CONF_OFF(roost_config_t, auth_failure_window), "300", 1, CONF_DAY_MS},
    {"c2s_rate", ROOST_OPT_SIZE, CONF_OFF(roost_config_t, c2s_rate), "262144",
     0, INT64_C(1) << 30},
    {"fast_token_lifetime", ROOST_OPT_MSEC,
     CONF_OFF(roost_config_t, fast_token_lifetime), "1209600", 0,
     INT64_C(366) * CONF_DAY_MS},
    {"c2s_burst", ROOST_OPT_SIZE, CONF_OFF(roost_config_t, c2s_burst),
     "1048576", 1024, INT64_C(1) << 30},
    {"preauth_max_bytes", ROOST_OPT_SIZE,
     CONF_OFF(roost_config_t, preauth_max_bytes), "65536", 0, INT64_C(1) << 30},
    {"preauth_max_stanza_size", ROOST_OPT_SIZE,
     CONF_OFF(roost_config_t, preauth_max_stanza), "16384", 1024,
     64 * 1024 * 1024},
    {"preauth_max_total", ROOST_OPT_SIZE,
     CONF_OFF(roost_config_t, preauth_max_total), "67108864", 0,
     INT64_C(1) << 40},
    {NULL, 0, 0, NULL, 0, 0}};

static const roost_opt_t conf_storage_opts[] = {
    {"driver", ROOST_OPT_STR, CONF_OFF(conf_storage_t, driver), "sqlite", 0, 0},
    {"path", ROOST_OPT_STR, CONF_OFF(conf_storage_t, path), "roost.db", 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

static const roost_opt_t conf_s2s_opts[] = {
    {"require_encryption", ROOST_OPT_BOOL,
     CONF_OFF(conf_s2s_t, require_encryption), "true", 0, 0},
    {"dialback_secret", ROOST_OPT_STR, CONF_OFF(conf_s2s_t, dialback_secret),
     NULL, 0, 0},
    {"connect_timeout", ROOST_OPT_MSEC, CONF_OFF(conf_s2s_t, connect_timeout),
     "30", 100, CONF_DAY_MS},
    {"idle_timeout", ROOST_OPT_MSEC, CONF_OFF(conf_s2s_t, idle_timeout), "300",
     1000, CONF_DAY_MS},
    {"dns_servers", ROOST_OPT_STR, CONF_OFF(conf_s2s_t, dns_servers), NULL, 0,
     0},
    {"ca_file", ROOST_OPT_STR, CONF_OFF(conf_s2s_t, ca_file), NULL, 0, 0},
    {"secure_auth", ROOST_OPT_BOOL, CONF_OFF(conf_s2s_t, secure_auth), "false",
     0, 0},
    {"bidi", ROOST_OPT_BOOL, CONF_OFF(conf_s2s_t, bidi), "true", 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

/* Defaults here are placeholders: an unset key takes the s2s group's
 * value (conf_load_peers). */
static const roost_opt_t conf_peer_opts[] = {
    {"domain", ROOST_OPT_STR, CONF_OFF(conf_peer_t, domain), NULL, 0, 0},
    {"require_encryption", ROOST_OPT_BOOL,
     CONF_OFF(conf_peer_t, require_encryption), "true", 0, 0},
    {"bidi", ROOST_OPT_BOOL, CONF_OFF(conf_peer_t, bidi), "true", 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

static const roost_opt_t conf_route_opts[] = {
    {"domain", ROOST_OPT_STR, CONF_OFF(conf_route_t, domain), NULL, 0, 0},
    {"host", ROOST_OPT_STR, CONF_OFF(conf_route_t, host), NULL, 0, 0},
    {"port", ROOST_OPT_INT, CONF_OFF(conf_route_t, port), "5269", 1, 65535},
    {NULL, 0, 0, NULL, 0, 0}};

static const roost_opt_t conf_component_opts[] = {
    {"domain", ROOST_OPT_STR, CONF_OFF(conf_component_t, domain), NULL, 0, 0},
    {"secret", ROOST_OPT_STR, CONF_OFF(conf_component_t, secret), NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

static const roost_opt_t conf_listen_opts[] = {
    {"address", ROOST_OPT_STR, CONF_OFF(conf_listen_t, address), NULL, 0, 0},
    {"port", ROOST_OPT_INT, CONF_OFF(conf_listen_t, port), NULL, 1, 65535},
    {"type", ROOST_OPT_STR, CONF_OFF(conf_listen_t, type), "c2s", 0, 0},
    {"tls", ROOST_OPT_STR, CONF_OFF(conf_listen_t, tls), "starttls", 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

static const roost_opt_t conf_host_opts[] = {
    {"domain", ROOST_OPT_STR, CONF_OFF(conf_host_t, domain), NULL, 0, 0},
    {"cert", ROOST_OPT_STR, CONF_OFF(conf_host_t, cert), NULL, 0, 0},
    {"key", ROOST_OPT_STR, CONF_OFF(conf_host_t, key), NULL, 0, 0},
    {"modules", ROOST_OPT_STRLIST, CONF_OFF(conf_host_t, modules), "", 0, 0},
    {"admins", ROOST_OPT_STRLIST, CONF_OFF(conf_host_t, admins), "", 0, 0},
    {"anonymous", ROOST_OPT_BOOL, CONF_OFF(conf_host_t, anonymous), "false", 0,
     0},
    {"require_encryption", ROOST_OPT_BOOL,
     CONF_OFF(conf_host_t, require_encryption), "true", 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

/* Top-level keys handled outside conf_top_opts. */
static const char *const conf_sections[] = {
    "limits", "storage", "listen", "hosts", "s2s", "components", NULL};

/* Used when the file has no listen list (the sample's two entries). */
static const roost_listen_conf_t conf_default_listen[] = {
    {"127.0.0.1", 5222, ROOST_LISTEN_C2S, ROOST_TLS_STARTTLS},
    {"127.0.0.1", 5223, ROOST_LISTEN_C2S, ROOST_TLS_DIRECT}};

/* Allocations the config keeps for its lifetime (STRLIST arrays) hang off
 * the libconfig root setting's hook and are freed by config_destroy()
 * through the destructor. */
typedef struct {
    size_t n, cap;
    void **p;
} conf_keep_t;

static void
conf_keep_free(void *hook)
{
    conf_keep_t *k = hook;

    for (size_t i = 0; i < k->n; i++)
        roost_free(k->p[i]);
    roost_free(k->p);
    roost_free(k);
}

static void
conf_keep(roost_config_t *c, void *p)
{
    config_setting_t *root = config_root_setting((config_t *)c->lc);
    conf_keep_t *k = config_setting_get_hook(root);

    if (k == NULL) {
        k = roost_xcalloc(1, sizeof(*k));
        config_setting_set_hook(root, k);
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 8;
        k->p = roost_xrealloc(k->p, k->cap * sizeof(*k->p));
    }
    k->p[k->n++] = p;
}

/* Records "file:line: msg" (or "file: msg" when line is 0) in *err unless
 * an error is already there.  Returns -ROOST_ECONFIG. */
static int
conf_set_err(const roost_config_t *c, const char *file, unsigned line,
             const char *msg, char **err)
{
    const char *slash = strrchr(c->path, '/');
    char where[PATH_MAX + 32];
    int n;

    if (err == NULL || *err != NULL)
        return -ROOST_ECONFIG;
    /* libconfig names @include'd files as written: relative ones were
     * found in the config file's directory. */
    if (file == NULL)
        snprintf(where, sizeof(where), "%s", c->path);
    else if (file[0] != '/' && slash != NULL)
        snprintf(where, sizeof(where), "%.*s/%s", (int)(slash - c->path),
                 c->path, file);
    else
        snprintf(where, sizeof(where), "%s", file);
    if (line > 0) /* else no line applies: "file: msg" */
        snprintf(where + strlen(where), sizeof(where) - strlen(where), ":%u",
                 line);
    n = snprintf(NULL, 0, "%s: %s", where, msg);
    *err = roost_xmalloc((size_t)n + 1);
    snprintf(*err, (size_t)n + 1, "%s: %s", where, msg);
    return -ROOST_ECONFIG;
}

static int conf_fail(const roost_config_t *c, const config_setting_t *s,
                     char **err, const char *fmt, ...) ROOST_PRINTF(4, 5);

/* An error about setting s (NULL: about the whole file). */
static int
conf_fail(const roost_config_t *c, const config_setting_t *s, char **err,
          const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return conf_set_err(c, s ? config_setting_source_file(s) : NULL,
                        s ? config_setting_source_line(s) : 0, msg, err);
}

static bool
conf_in_range(const roost_opt_t *o, int64_t v)
{
    if (o->min == 0 && o->max == 0)
        return v >= 0 || o->type == ROOST_OPT_INT;
    return v >= o->min && v <= o->max;
}

/* Seconds (finite double) to milliseconds, or -ROOST_ELIMIT. */
static int
conf_sec_to_ms(double sec, int64_t *ms)
{
    double v = sec * 1000.0;

    /* 9.2e18 is below INT64_MAX and above any sensible bound. */
    if (!isfinite(v) || v < -9.2e18 || v > 9.2e18)
        return -ROOST_ELIMIT;
    /* round half away from zero, without needing libm */
    *ms = (int64_t)(v < 0 ? v - 0.5 : v + 0.5);
    return 0;
}

static int
conf_parse_int(const char *text, int64_t *out)
{
    char *end;
    long long v;

    if (!(text[0] >= '0' && text[0] <= '9') &&
        !(text[0] == '-' && text[1] >= '0' && text[1] <= '9'))
        return -ROOST_EINVAL;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (*end != '\0')
        return -ROOST_EINVAL;
    if (errno == ERANGE)
        return -ROOST_ELIMIT;
    *out = v;
    return 0;
}

/* Seconds as decimal text: "300", "0.5", "-1" (then out of range). */
static int
conf_parse_sec(const char *text, int64_t *out)
{
    const char *p = text + (text[0] == '-');
    char *end;
    size_t digits = strspn(p, "0123456789");

    if (digits == 0)
        return -ROOST_EINVAL;
    p += digits;
    if (*p == '.') {
        if (strspn(p + 1, "0123456789") == 0)
            return -ROOST_EINVAL;
        p += 1 + strspn(p + 1, "0123456789");
    }
    if (*p != '\0')
        return -ROOST_EINVAL;
    return conf_sec_to_ms(strtod(text, &end), out);
}

/* "a, b c" -> {"a", "b", "c", NULL} in one block. */
static char **
conf_split_list(const char *text)
{
    static const char sep[] = ", \t\n";
    size_t n = 0, len = strlen(text);
    char **arr, *copy;

    for (const char *p = text + strspn(text, sep); *p;
         p += strcspn(p, sep), p += strspn(p, sep))
        n++;
    arr = roost_xmalloc((n + 1) * sizeof(char *) + len + 1);
    copy = memcpy((char *)(arr + n + 1), text, len + 1);
    n = 0;
    for (char *p = copy + strspn(copy, sep); *p;) {
        size_t w = strcspn(p, sep);

        arr[n++] = p;
        p += w;
        if (*p) {
            *p++ = '\0';
            p += strspn(p, sep);
        }
    }
    arr[n] = NULL;
    return arr;
}

/* Parses text as option o into dst, which points at the field itself (not
 * at the conf struct: o->offset is not applied).  Text forms: BOOL
 * "true"/"false"; INT a decimal integer; SIZE a decimal count of bytes;
 * MSEC decimal seconds ("300", "0.5") stored as milliseconds; STR stores
 * text itself (borrowed: it must outlive dst); STRLIST stores a new
 * NULL-terminated array (one block, roost_free) of the items separated by
 * commas or white space.  NULL text stores 0 / NULL.  Range checks use
 * o->min and o->max (milliseconds for MSEC; both 0 = unbounded, though SIZE
 * and MSEC are never negative).  Returns 0, -ROOST_EINVAL for bad syntax,
 * -ROOST_ELIMIT when out of range; dst is untouched on error. */
int
roost_config_parse_opt(const roost_opt_t *o, const char *text, void *dst)
{
    int64_t v = 0;
    int rc;

    switch (o->type) {
    case ROOST_OPT_BOOL:
        if (text == NULL || strcmp(text, "false") == 0)
            *(int *)dst = 0;
        else if (strcmp(text, "true") == 0)
            *(int *)dst = 1;
        else
            return -ROOST_EINVAL;
        return 0;
    case ROOST_OPT_INT:
    case ROOST_OPT_SIZE:
    case ROOST_OPT_MSEC:
        if (text == NULL) {
            *(int64_t *)dst = 0;
            return 0;
        }
        rc = o->type == ROOST_OPT_MSEC ? conf_parse_sec(text, &v)
                                       : conf_parse_int(text, &v);
        if (rc != 0)
            return rc;
        if (!conf_in_range(o, v))
            return -ROOST_ELIMIT;
        *(int64_t *)dst = v;
        return 0;
    case ROOST_OPT_STR: *(const char **)dst = text; return 0;
    case ROOST_OPT_STRLIST:
        *(char ***)dst = text ? conf_split_list(text) : NULL;
        return 0;
    }
    return -ROOST_EINVAL;
}

static const char *
conf_type_name(roost_opt_type_t t)
{
    switch (t) {
    case ROOST_OPT_BOOL: return "true or false";
    case ROOST_OPT_INT: return "an integer";
    case ROOST_OPT_SIZE: return "an integer (bytes)";
    case ROOST_OPT_MSEC: return "a number of seconds";
    case ROOST_OPT_STR: return "a string";
    case ROOST_OPT_STRLIST: return "a list of strings";
    }
    return "?";
}

static int
conf_range_fail(roost_config_t *c, const config_setting_t *s,
                const roost_opt_t *o, char **err)
{
    if (o->type == ROOST_OPT_MSEC)
        return conf_fail(c, s, err, "'%s' must be between %g and %g seconds",
                         o->name, (double)o->min / 1000.0,
                         (double)o->max / 1000.0);
    if (o->min == 0 && o->max == 0)
        return conf_fail(c, s, err, "'%s' must not be negative", o->name);
    return conf_fail(c, s, err, "'%s' must be between %" PRId64 " and %" PRId64,
                     o->name, o->min, o->max);
}

/* Stores the value of setting s as option o into field.  STRLIST arrays
 * are kept by the config; strings point into libconfig. */
static int
conf_opt_from_setting(roost_config_t *c, const roost_opt_t *o,
                      const config_setting_t *s, void *field, char **err)
{
    int t = config_setting_type(s);
    int64_t v;

    switch (o->type) {
    case ROOST_OPT_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            break;
        *(int *)field = config_setting_get_bool(s) ? 1 : 0;
        return 0;
    case ROOST_OPT_INT:
    case ROOST_OPT_SIZE:
    case ROOST_OPT_MSEC:
        if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
            v = config_setting_get_int64(s);
            if (o->type == ROOST_OPT_MSEC && conf_sec_to_ms((double)v, &v) != 0)
                return conf_range_fail(c, s, o, err);
        } else if (t == CONFIG_TYPE_FLOAT && o->type == ROOST_OPT_MSEC) {
            if (conf_sec_to_ms(config_setting_get_float(s), &v) != 0)
                return conf_range_fail(c, s, o, err);
        } else {
            break;
        }
        if (!conf_in_range(o, v))
            return conf_range_fail(c, s, o, err);
        *(int64_t *)field = v;
        return 0;
    case ROOST_OPT_STR:
        if (t != CONFIG_TYPE_STRING)
            break;
        *(const char **)field = config_setting_get_string(s);
        return 0;
    case ROOST_OPT_STRLIST: {
        const char **arr;
        int n;

        if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
            break;
        n = config_setting_length(s);
        for (int i = 0; i < n; i++)
            if (config_setting_type(config_setting_get_elem(s, i)) !=
                CONFIG_TYPE_STRING)
                return conf_fail(c, config_setting_get_elem(s, i), err,
                                 "'%s' must be a list of strings", o->name);
        arr = roost_xmalloc(((size_t)n + 1) * sizeof(*arr));
        for (int i = 0; i < n; i++)
            arr[i] = config_setting_get_string(config_setting_get_elem(s, i));
        arr[n] = NULL;
        conf_keep(c, arr);
        *(const char ***)field = arr;
        return 0;
    }
    }
    return conf_fail(c, s, err, "'%s' must be %s", o->name,
                     conf_type_name(o->type));
}

static int
conf_opt_default(roost_config_t *c, const roost_opt_t *o, void *field,
                 const char *what, char **err)
{
    if (roost_config_parse_opt(o, o->dflt, field) != 0)
        return conf_fail(c, NULL, err, "%s: bad default '%s' for '%s'", what,
                         o->dflt, o->name);
    if (o->type == ROOST_OPT_STRLIST && *(void **)field != NULL)
        conf_keep(c, *(void **)field);
    return 0;
}

static const config_setting_t *
conf_member(const config_setting_t *g, const char *name)
{
    return g ? config_setting_get_member(g, name) : NULL;
}

static const roost_opt_t *
conf_find_opt(const roost_opt_t *opts, const char *name)
{
    for (; opts && opts->name; opts++)
        if (strcmp(opts->name, name) == 0)
            return opts;
    return NULL;
}

static bool
conf_in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

/* Fills dst (the struct opts' offsets refer to) from group g, which may
 * be NULL (all defaults).  A member of g that is not in opts is skipped
 * when its name is in `skip` or, with allow_groups, when it is a group
 * (module options, checked by roost_config_module_opts); otherwise it is
 * an error. */
static int
conf_fill(roost_config_t *c, const config_setting_t *g, const roost_opt_t *opts,
          void *dst, const char *const *skip, bool allow_groups, char **err)
{
    int n = g ? config_setting_length(g) : 0;

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, i);
        const char *name = config_setting_name(m);

        if (conf_find_opt(opts, name) || conf_in_list(skip, name) ||
            (allow_groups && config_setting_is_group(m)))
            continue;
        return conf_fail(c, m, err, "unknown option '%s'", name);
    }
    for (const roost_opt_t *o = opts; o->name; o++) {
        const config_setting_t *m = conf_member(g, o->name);
        void *field = (char *)dst + o->offset;
        int rc = m ? conf_opt_from_setting(c, o, m, field, err)
                   : conf_opt_default(c, o, field, "core", err);

        if (rc != 0)
            return rc;
    }
    return 0;
}

/* base + "/" + p unless p is absolute.  New string. */
static char *
conf_path(const char *base, const char *p)
{
    size_t bl = strlen(base), pl = strlen(p);
    char *s;

    if (p[0] == '/')
        return roost_xstrdup(p);
    s = roost_xmalloc(bl + pl + 2);
    memcpy(s, base, bl);
    s[bl] = '/';
    memcpy(s + bl + 1, p, pl + 1);
    return s;
}

/* Resolves the string option `name` of group g (for the error line). */
static int
conf_path_opt(roost_config_t *c, const config_setting_t *g, const char *name,
              const char *base, const char *val, char **out, char **err)
{
    if (val == NULL) {
        *out = NULL;
        return 0;
    }
    if (val[0] == '\0')
        return conf_fail(c, conf_member(g, name), err, "'%s' must not be empty",
                         name);
    *out = conf_path(base, val);
    return 0;
}

/* mkdir -p with mode 0750. */
static int
conf_mkdirs(const char *path)
{
    char *p = roost_xstrdup(path);
    struct stat st;
    int rc = 0;

    for (char *q = p + 1;; q++) {
        char save = *q;

        if (save != '/' && save != '\0')
            continue;
        *q = '\0';
        if (mkdir(p, 0750) != 0 && errno != EEXIST)
            rc = -errno;
        *q = save;
        if (rc != 0 || save == '\0')
            break;
    }
    roost_free(p);
    if (rc == 0 && stat(path, &st) != 0)
        rc = -errno;
    else if (rc == 0 && !S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    return rc;
}

static int
conf_enum(roost_config_t *c, const config_setting_t *g, const char *name,
          const char *val, const char *const *names, char **err)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(val, names[i]) == 0)
            return i;
    return conf_fail(c, conf_member(g, name), err, "bad %s '%s'", name, val);
}

static int
conf_load_top(roost_config_t *c, const config_setting_t *root,
              const char *confdir, bool mkdirs, char **err)
{
    static const char *const levels[] = {"error", "warn", "info", "debug",
                                         NULL};
    conf_top_t t;
    int rc, level;

    if ((rc = conf_fill(c, root, conf_top_opts, &t, conf_sections, true,
                        err)) != 0)
        return rc;
    c->scram_iterations = t.scram_iterations;
    c->worker_threads = t.worker_threads;
    if ((level = conf_enum(c, root, "log_level", t.log_level, levels, err)) < 0)
        return level;
    c->log_level = level;
    if ((rc = conf_path_opt(c, root, "data_dir", confdir, t.data_dir,
                            &c->data_dir, err)) != 0 ||
        (rc = conf_path_opt(c, root, "modules_dir", confdir, t.modules_dir,
                            &c->modules_dir, err)) != 0)
        return rc;
    if (mkdirs && (rc = conf_mkdirs(c->data_dir)) != 0)
        return conf_fail(c, config_setting_get_member(root, "data_dir"), err,
                         "cannot create data_dir %s: %s", c->data_dir,
                         strerror(-rc));
    if ((rc = conf_path_opt(c, root, "log_file", c->data_dir, t.log_file,
                            &c->log_file, err)) != 0 ||
        (rc = conf_path_opt(c, root, "pidfile", c->data_dir, t.pidfile,
                            &c->pidfile, err)) != 0)
        return rc;
    c->user = t.user ? roost_xstrdup(t.user) : NULL;
    c->group = t.group ? roost_xstrdup(t.group) : NULL;
    return 0;
}

/* The named top-level section, which must have the given shape. */
static int
conf_section(roost_config_t *c, const config_setting_t *root, const char *name,
             bool list, const config_setting_t **out, char **err)
{
    const config_setting_t *s = config_setting_get_member(root, name);

    *out = s;
    if (s == NULL)
        return 0;
    if (list ? !(config_setting_is_list(s) || config_setting_is_array(s))
             : !config_setting_is_group(s))
        return conf_fail(c, s, err, "'%s' must be %s", name,
                         list ? "a list ( ... )" : "a group { ... }");
    return 0;
}

static int
conf_load_limits(roost_config_t *c, const config_setting_t *root, char **err)
{
    static const char *const drivers[] = {"sqlite", "memory", NULL};
    const config_setting_t *s;
    conf_storage_t st;
    int rc;

    if ((rc = conf_section(c, root, "limits", false, &s, err)) != 0 ||
        (rc = conf_fill(c, s, conf_limits_opts, c, NULL, false, err)) != 0)
        return rc;
    if ((rc = conf_section(c, root, "storage", false, &s, err)) != 0 ||
        (rc = conf_fill(c, s, conf_storage_opts, &st, NULL, false, err)) != 0)
        return rc;
    if ((rc = conf_enum(c, s, "driver", st.driver, drivers, err)) < 0)
        return rc;
    c->storage_driver = roost_xstrdup(st.driver);
    return conf_path_opt(c, s, "path", c->data_dir, st.path, &c->storage_path,
                         err);
}

/* s2s.peers = ( { domain; require_encryption; bidi; }, ... ): policy per
 * remote domain, unset keys from the s2s group. */
static int
conf_load_peers(roost_config_t *c, const config_setting_t *peers, char **err)
{
    int rc, n;

    if (!config_setting_is_list(peers))
        return conf_fail(c, peers, err, "'peers' must be a list of groups");
    n = config_setting_length(peers);
    c->s2s_peers =
        roost_xcalloc((size_t)(n > 0 ? n : 1), sizeof(*c->s2s_peers));
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(peers, i);
        roost_s2s_peer_t *p = &c->s2s_peers[c->ns2s_peers];
        conf_peer_t r;

        memset(&r, 0, sizeof(r));
        if (!config_setting_is_group(e))
            return conf_fail(c, e, err, "peers entries must be groups");
        if ((rc = conf_fill(c, e, conf_peer_opts, &r, NULL, false, err)) != 0)
            return rc;
        if (r.domain == NULL)
            return conf_fail(c, e, err, "a peer needs 'domain'");
        if ((p->domain = roost_jid_prep_domain(r.domain)) == NULL)
            return conf_fail(c, e, err, "'%s' is not a valid domain", r.domain);
        c->ns2s_peers++;
        for (int j = 0; j < c->ns2s_peers - 1; j++)
            if (strcmp(c->s2s_peers[j].domain, p->domain) == 0)
                return conf_fail(c, e, err, "peer '%s' is listed twice",
                                 p->domain);
        p->require_encryption =
            config_setting_get_member(e, "require_encryption") != NULL
                ? r.require_encryption
                : c->s2s_require_encryption;
        p->bidi =
            config_setting_get_member(e, "bidi") != NULL ? r.bidi : c->s2s_bidi;
    }
    return 0;
}

/* s2s = { require_encryption; dialback_secret; connect_timeout;
 * idle_timeout; bidi; routes = ( { domain; host; port; }, ... );
 * peers = ( ... ); } */
static int
conf_load_s2s(roost_config_t *c, const config_setting_t *root, char **err)
{
    static const char *const skip[] = {"routes", "peers", NULL};
    const config_setting_t *peers;
    const config_setting_t *s, *routes;
    conf_s2s_t raw;
    int rc, n;

    memset(&raw, 0, sizeof(raw));
    if ((rc = conf_section(c, root, "s2s", false, &s, err)) != 0 ||
        (rc = conf_fill(c, s, conf_s2s_opts, &raw, skip, true, err)) != 0)
        return rc;
    c->s2s_require_encryption = raw.require_encryption;
    c->s2s_connect_timeout = raw.connect_timeout;
    c->s2s_idle_timeout = raw.idle_timeout;
    if (raw.dialback_secret != NULL && *raw.dialback_secret != '\0')
        c->s2s_secret = roost_xstrdup(raw.dialback_secret);
    if (raw.dns_servers != NULL && *raw.dns_servers != '\0')
        c->s2s_dns_servers = roost_xstrdup(raw.dns_servers);
    c->s2s_secure_auth = raw.secure_auth;
    c->s2s_bidi = raw.bidi;
    peers = s != NULL ? config_setting_get_member(s, "peers") : NULL;
    if (peers != NULL && (rc = conf_load_peers(c, peers, err)) != 0)
        return rc;
    if (raw.ca_file != NULL) {
        /* Relative to the config file's directory, as every path. */
        char *dir = roost_xstrdup(c->path), *slash = strrchr(dir, '/');

        if (slash != NULL)
            slash[slash == dir ? 1 : 0] = '\0';
        rc = conf_path_opt(c, s, "ca_file", dir, raw.ca_file, &c->s2s_ca_file,
                           err);
        roost_free(dir);
        if (rc != 0)
            return rc;
    }
    routes = s != NULL ? config_setting_get_member(s, "routes") : NULL;
    if (routes == NULL)
        return 0;
    if (!config_setting_is_list(routes))
        return conf_fail(c, routes, err, "'routes' must be a list of groups");
    n = config_setting_length(routes);
    c->s2s_routes =
        roost_xcalloc((size_t)(n > 0 ? n : 1), sizeof(*c->s2s_routes));
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(routes, i);
        conf_route_t r;
        char *d;

        memset(&r, 0, sizeof(r));
        if (!config_setting_is_group(e))
            return conf_fail(c, e, err, "routes entries must be groups");
        if ((rc = conf_fill(c, e, conf_route_opts, &r, NULL, false, err)) != 0)
            return rc;
        if (r.domain == NULL || r.host == NULL)
            return conf_fail(c, e, err, "a route needs '%s'",
                             r.domain == NULL ? "domain" : "host");
        if ((d = roost_jid_prep_domain(r.domain)) == NULL)
            return conf_fail(c, e, err, "'%s' is not a valid domain", r.domain);
        c->s2s_routes[c->ns2s_routes].domain = d;
        c->s2s_routes[c->ns2s_routes].host = roost_xstrdup(r.host);
        c->s2s_routes[c->ns2s_routes].port = (int)r.port;
        c->ns2s_routes++;
    }
    return 0;
}

/* components = ( { domain = "gw.example"; secret = "..."; }, ... ) */
static int
conf_load_components(roost_config_t *c, const config_setting_t *root,
                     char **err)
{
    const config_setting_t *s;
    int rc, n;

    if ((rc = conf_section(c, root, "components", true, &s, err)) != 0)
        return rc;
    if (s == NULL)
        return 0;
    n = config_setting_length(s);
    c->components =
        roost_xcalloc((size_t)(n > 0 ? n : 1), sizeof(*c->components));
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);
        conf_component_t raw;
        char *d;

        memset(&raw, 0, sizeof(raw));
        if (!config_setting_is_group(e))
            return conf_fail(c, e, err, "components entries must be groups");
        if ((rc = conf_fill(c, e, conf_component_opts, &raw, NULL, false,
                            err)) != 0)
            return rc;
        if (raw.domain == NULL || raw.secret == NULL || *raw.secret == '\0')
            return conf_fail(c, e, err, "a component needs '%s'",
                             raw.domain == NULL ? "domain" : "secret");
        if ((d = roost_jid_prep_domain(raw.domain)) == NULL)
            return conf_fail(c, e, err, "'%s' is not a valid domain",
                             raw.domain);
        for (int j = 0; j < c->ncomponents; j++)
            if (strcmp(c->components[j].domain, d) == 0) {
                roost_free(d);
                return conf_fail(c, e, err, "component '%s' is listed twice",
                                 raw.domain);
            }
        c->components[c->ncomponents].domain = d;
        c->components[c->ncomponents].secret = roost_xstrdup(raw.secret);
        c->ncomponents++;
    }
    return 0;
}

static int
conf_load_listen(roost_config_t *c, const config_setting_t *root, char **err)
{
    static const char *const types[] = {"c2s", "s2s", "component", NULL};
    static const char *const tls[] = {"starttls", "direct", "none", NULL};
    const config_setting_t *s;
    int rc, n;

    if ((rc = conf_section(c, root, "listen", true, &s, err)) != 0)
        return rc;
    if (s == NULL) {
        n = (int)(sizeof(conf_default_listen) / sizeof(*conf_default_listen));
        c->listen = roost_xcalloc((size_t)n, sizeof(*c->listen));
        for (int i = 0; i < n; i++) {
            const roost_listen_conf_t *d = &conf_default_listen[i];

            c->listen[i] = *d;
            c->listen[i].address = roost_xstrdup(d->address);
        }
        c->nlisten = n;
        return 0;
    }
    if ((n = config_setting_length(s)) == 0)
        return conf_fail(c, s, err, "'listen' has no entries");
    c->listen = roost_xcalloc((size_t)n, sizeof(*c->listen));
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);
        roost_listen_conf_t *l = &c->listen[i];
        unsigned char addr[16];
        conf_listen_t raw;

        if (!config_setting_is_group(e))
            return conf_fail(c, e, err, "listen entries must be groups");
        if ((rc = conf_fill(c, e, conf_listen_opts, &raw, NULL, false, err)) !=
            0)
            return rc;
        if (raw.address == NULL || raw.port == 0)
            return conf_fail(c, e, err, "listen entry needs '%s'",
                             raw.address == NULL ? "address" : "port");
        if (inet_pton(AF_INET, raw.address, addr) != 1 &&
            inet_pton(AF_INET6, raw.address, addr) != 1)
            return conf_fail(c, config_setting_get_member(e, "address"), err,
                             "'address' must be a numeric IPv4 or IPv6 "
                             "address, not '%s'",
                             raw.address);
        if ((rc = conf_enum(c, e, "type", raw.type, types, err)) < 0)
            return rc;
        l->type = (roost_listen_type_t)rc;
        if ((rc = conf_enum(c, e, "tls", raw.tls, tls, err)) < 0)
            return rc;
        l->tls = (roost_tls_mode_t)rc;
        l->address = roost_xstrdup(raw.address);
        l->port = (int)raw.port;
        c->nlisten = i + 1;
        for (int k = 0; k < i; k++)
            if (c->listen[k].port == l->port &&
                strcmp(c->listen[k].address, l->address) == 0)
                return conf_fail(c, e, err, "%s port %d is already listed",
                                 l->address, l->port);
    }
    return 0;
}

static bool
conf_module_name_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* modules and admins of host h from raw r: owned copies, validated. */
static int
conf_host_lists(roost_config_t *c, const config_setting_t *g,
                roost_host_conf_t *h, const conf_host_t *r, char **err)
{
    const config_setting_t *ms = config_setting_get_member(g, "modules");
    const config_setting_t *as = config_setting_get_member(g, "admins");
    size_t n;

    for (n = 0; r->modules[n]; n++)
        ;
    h->modules = roost_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(ms, (int)i);

        if (!conf_module_name_ok(r->modules[i]))
            return conf_fail(c, e, err, "bad module name '%s'", r->modules[i]);
        if (conf_in_list((const char *const *)h->modules, r->modules[i]))
            return conf_fail(c, e, err, "module '%s' is listed twice",
                             r->modules[i]);
        h->modules[i] = roost_xstrdup(r->modules[i]);
    }
    for (n = 0; r->admins[n]; n++)
        ;
    h->admins = roost_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(as, (int)i);
        roost_jid_t *j = roost_jid_new(r->admins[i]);

        if (j == NULL || roost_jid_resource(j) != NULL) {
            roost_jid_free(j);
            return conf_fail(c, e, err, "admin '%s' is not a bare JID",
                             r->admins[i]);
        }
        h->admins[i] = roost_xstrdup(roost_jid_bare(j));
        roost_jid_free(j);
    }
    return 0;
}

static int
conf_load_host(roost_config_t *c, const config_setting_t *g,
               const char *confdir, roost_host_conf_t *h, char **err)
{
    conf_host_t r;
    int rc;

    if (!config_setting_is_group(g))
        return conf_fail(c, g, err, "host entries must be groups");
    h->line = config_setting_source_line(g);
    h->setting = g;
    if ((rc = conf_fill(c, g, conf_host_opts, &r, NULL, true, err)) != 0)
        return rc;
    if (r.domain == NULL)
        return conf_fail(c, g, err, "host entry needs 'domain'");
    if ((h->domain = roost_jid_prep_domain(r.domain)) == NULL)
        return conf_fail(c, config_setting_get_member(g, "domain"), err,
                         "invalid domain '%s'", r.domain);
    for (const roost_host_conf_t *o = c->hosts; o < h; o++)
        if (strcmp(o->domain, h->domain) == 0)
            return conf_fail(c, config_setting_get_member(g, "domain"), err,
                             "host '%s' is already defined at line %d",
                             h->domain, o->line);
    if ((r.cert == NULL) != (r.key == NULL))
        return conf_fail(c, conf_member(g, r.cert ? "cert" : "key"), err,
                         "'cert' and 'key' must be given together");
    if (r.cert) {
        if ((rc = conf_path_opt(c, g, "cert", confdir, r.cert, &h->cert,
                                err)) != 0 ||
            (rc = conf_path_opt(c, g, "key", confdir, r.key, &h->key, err)) !=
                0)
            return rc;
    } else {
        size_t n = strlen(c->data_dir) + strlen(h->domain) + 16;

        h->cert = roost_xmalloc(n);
        h->key = roost_xmalloc(n);
        snprintf(h->cert, n, "%s/certs/%s.crt", c->data_dir, h->domain);
        snprintf(h->key, n, "%s/certs/%s.key", c->data_dir, h->domain);
        h->cert_generated = 1;
    }
    h->anonymous = r.anonymous;
    h->require_encryption = r.require_encryption;
    return conf_host_lists(c, g, h, &r, err);
}

static int
conf_load_hosts(roost_config_t *c, const config_setting_t *root,
                const char *confdir, char **err)
{
    const config_setting_t *s;
    int rc, n;

    if ((rc = conf_section(c, root, "hosts", true, &s, err)) != 0)
        return rc;
    if (s == NULL || (n = config_setting_length(s)) == 0)
        return conf_fail(c, s, err, "no hosts configured");
    c->hosts = roost_xcalloc((size_t)n, sizeof(*c->hosts));
    for (int i = 0; i < n; i++) {
        /* counted first so that roost_config_free sees partial hosts */
        c->nhosts = i + 1;
        if ((rc = conf_load_host(c, config_setting_get_elem(s, i), confdir,
                                 &c->hosts[i], err)) != 0)
            return rc;
    }
    return 0;
}

/* The common part of roost_config_load and roost_config_load_text: abs is
 * the file's absolute name (borrowed), text NULL to read that file or the
 * NUL-terminated contents to use instead (then nothing is created). */
static roost_config_t *
conf_load(const char *abs, const char *text, char **err)
{
    char *confdir, *slash;
    roost_config_t *c = roost_xcalloc(1, sizeof(*c));
    config_t *lc;
    const config_setting_t *root;
    int ok;

    c->path = roost_xstrdup(abs);
    confdir = roost_xstrdup(abs);
    slash = strrchr(confdir, '/');
    if (slash != NULL)
        slash[slash == confdir ? 1 : 0] = '\0';
    lc = roost_xmalloc(sizeof(*lc));
    config_init(lc);
    config_set_destructor(lc, conf_keep_free);
    config_set_include_dir(lc, confdir);
    c->lc = lc;
    ok = text != NULL ? config_read_string(lc, text)
                      : config_read_file(lc, c->path);
    if (!ok) {
        if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
            conf_fail(c, NULL, err, "cannot read: %s", strerror(errno));
        else
            conf_set_err(c, config_error_file(lc),
                         (unsigned)config_error_line(lc), config_error_text(lc),
                         err);
        goto fail;
    }
    root = config_root_setting(lc);
    if (conf_load_top(c, root, confdir, text == NULL, err) != 0 ||
        conf_load_limits(c, root, err) != 0 ||
        conf_load_s2s(c, root, err) != 0 ||
        conf_load_components(c, root, err) != 0 ||
        conf_load_listen(c, root, err) != 0 ||
        conf_load_hosts(c, root, confdir, err) != 0)
        goto fail;
    roost_free(confdir);
    return c;
fail:
    roost_free(confdir);
    roost_config_free(c);
    return NULL;
}

/* Reads and validates path (borrowed).  Returns the configuration
 * (roost_config_free) or NULL with *err set to a new "file:line: message"
 * string (roost_free).  Creates data_dir if it is missing; changes nothing
 * else (the log level and log file are the caller's to apply). */
roost_config_t *
roost_config_load(const char *path, char **err)
{
    char abs[PATH_MAX];
    roost_config_t *c;

    *err = NULL;
    if (realpath(path, abs) == NULL) {
        c = roost_xcalloc(1, sizeof(*c));
        c->path = roost_xstrdup(path);
        conf_fail(c, NULL, err, "cannot open: %s", strerror(errno));
        roost_config_free(c);
        return NULL;
    }
    return conf_load(abs, NULL, err);
}

/* Borrows all.  Like roost_config_load, but parses len bytes of text as
 * the contents of the file path (absolute; it need not exist: it names the
 * file in messages and anchors relative paths).  Text stops at a NUL byte,
 * as a file read by libconfig would.  Creates no directory and touches no
 * file, except what an @include in the text names. */
roost_config_t *
roost_config_load_text(const char *path, const char *text, size_t len,
                       char **err)
{
    char *copy = roost_xmalloc(len + 1);
    roost_config_t *c;

    *err = NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    c = conf_load(path, copy, err);
    roost_free(copy);
    return c;
}

/* Frees c and everything it owns (NULL is fine); pointers obtained from
 * it, including module option strings, become invalid. */
void
roost_config_free(roost_config_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nhosts; i++) {
        roost_host_conf_t *h = &c->hosts[i];

        roost_free(h->domain);
        roost_free(h->cert);
        roost_free(h->key);
        for (char **p = h->modules; p && *p; p++)
            roost_free(*p);
        roost_free(h->modules);
        for (char **p = h->admins; p && *p; p++)
            roost_free(*p);
        roost_free(h->admins);
    }
    roost_free(c->hosts);
    for (int i = 0; i < c->nlisten; i++)
        roost_free(c->listen[i].address);
    roost_free(c->listen);
    for (int i = 0; i < c->ns2s_routes; i++) {
        roost_free(c->s2s_routes[i].domain);
        roost_free(c->s2s_routes[i].host);
    }
    roost_free(c->s2s_routes);
    for (int i = 0; i < c->ns2s_peers; i++)
        roost_free(c->s2s_peers[i].domain);
    roost_free(c->s2s_peers);
    roost_free(c->s2s_secret);
    roost_free(c->s2s_dns_servers);
    roost_free(c->s2s_ca_file);
    for (int i = 0; i < c->ncomponents; i++) {
        roost_free(c->components[i].domain);
        roost_free(c->components[i].secret);
    }
    roost_free(c->components);
    if (c->lc) {
        config_destroy(c->lc);
        roost_free(c->lc);
    }
    roost_free(c->path);
    roost_free(c->log_file);
    roost_free(c->data_dir);
    roost_free(c->pidfile);
    roost_free(c->user);
    roost_free(c->group);
    roost_free(c->modules_dir);
    roost_free(c->storage_driver);
    roost_free(c->storage_path);
    roost_free(c);
}

/* The host whose prepared domain is domain (borrowed; prepared here if it
 * is not already), or NULL. */
const roost_host_conf_t *
roost_config_host(const roost_config_t *c, const char *domain)
{
    const roost_host_conf_t *found = NULL;
    char *prep;

    for (int i = 0; i < c->nhosts; i++)
        if (strcmp(c->hosts[i].domain, domain) == 0)
            return &c->hosts[i];
    if ((prep = roost_jid_prep_domain(domain)) == NULL)
        return NULL;
    for (int i = 0; i < c->nhosts && !found; i++)
        if (strcmp(c->hosts[i].domain, prep) == 0)
            found = &c->hosts[i];
    roost_free(prep);
    return found;
}

/* The group `module` inside g if g has one; an error if it is not a
 * group. */
static int
conf_module_group(roost_config_t *c, const config_setting_t *g,
                  const char *module, const config_setting_t **out, char **err)
{
    const config_setting_t *s = conf_member(g, module);

    *out = NULL;
    if (s == NULL)
        return 0;
    if (!config_setting_is_group(s))
        return conf_fail(c, s, err, "options of module '%s' must be a group",
                         module);
    *out = s;
    return 0;
}

/* Fills conf (borrowed, zeroed by the caller, opts' offsets refer to it)
 * for module on host h (may be NULL: top level and defaults only).  For
 * each option the host's `module = { ... }` group wins over a top-level
 * one, which wins over the option's default.  Keys in either group that
 * opts does not declare are errors.  STR values point into the config and
 * STRLIST arrays are kept by it: both live until roost_config_free(c).
 * Returns 0 or -ROOST_ECONFIG with *err = "file:line: message"
 * (roost_free). */
int
roost_config_module_opts(roost_config_t *c, const roost_host_conf_t *h,
                         const char *module, const roost_opt_t *opts,
                         void *conf, char **err)
{
    const config_setting_t *root = config_root_setting((config_t *)c->lc);
    const config_setting_t *hg, *tg, *groups[2];
    char what[128];
    int rc;

    *err = NULL;
    if ((rc = conf_module_group(c, h ? h->setting : NULL, module, &hg, err)) !=
        0)
        return rc;
    /* A module cannot take over a core section's name. */
    if (conf_in_list(conf_sections, module))
        tg = NULL;
    else if ((rc = conf_module_group(c, root, module, &tg, err)) != 0)
        return rc;
    groups[0] = hg;
    groups[1] = tg;
    for (int k = 0; k < 2; k++) {
        int n = groups[k] ? config_setting_length(groups[k]) : 0;

        for (int i = 0; i < n; i++) {
            const config_setting_t *m = config_setting_get_elem(groups[k], i);

            if (conf_find_opt(opts, config_setting_name(m)) == NULL)
                return conf_fail(c, m, err,
                                 "unknown option '%s' for module '%s'",
                                 config_setting_name(m), module);
        }
    }
    snprintf(what, sizeof(what), "module '%s'", module);
    for (const roost_opt_t *o = opts; o && o->name; o++) {
        const config_setting_t *m = conf_member(hg, o->name);
        void *field = (char *)conf + o->offset;

        if (m == NULL)
            m = conf_member(tg, o->name);
        rc = m ? conf_opt_from_setting(c, o, m, field, err)
               : conf_opt_default(c, o, field, what, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}
