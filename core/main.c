/* core/main.c: roostd, the server process.
 *
 * Parses the command line (`roostd -c FILE`), reads the config, opens
 * storage, starts the worker threads, builds the vhosts and listeners,
 * drops privileges (HOUSE 20) and runs the event loop until SIGTERM or
 * SIGINT.  SIGHUP reopens the log file, re-reads the config and applies
 * what can change at run time (log_level, certificates and keys); what
 * cannot is logged as needing a restart.  Everything it starts is torn
 * down in reverse order so that the sanitizers see a clean exit.  Not for
 * the reload mechanics of a subsystem: those live with it
 * (roost_server_reload_tls). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <libconfig.h>

#include "config.h"
#include "log.h"
#include "sasl.h"
#include "server.h"
#include "storage.h"
#include "worker.h"

static void
usage(FILE *fp)
{
    fprintf(fp, "usage: roostd -c FILE [-d]\n"
                "  -c FILE   configuration file (libconfig syntax)\n"
                "  -d        log at debug level (overrides log_level)\n"
                "  -t        check the configuration and exit\n"
                "  -V        print the version and exit\n");
}

/* Who roostd runs as after the drop; resolved before anything is bound
 * so that a typo in `user` fails before the server listens. */
typedef struct {
    int drop; /* `user` is set */
    uid_t uid;
    gid_t gid;
    const char *user;
} main_creds_t;

/* What SIGHUP needs.  The running config is never replaced (modules,
 * hosts and listeners point into it); the newest config read without
 * error is kept as well, for the certificate paths in use. */
typedef struct {
    int debug;               /* -d: stays at debug whatever log_level says */
    roost_config_t *running; /* what the server was built from */
    roost_config_t *applied; /* running, or a later config (freed here) */
} main_reload_t;

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;

    ROOST_LOG(ROOST_LOG_INFO, "core", "signal %d: shutting down", (int)sig);
    event_base_loopexit(base, NULL);
}

static int
mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Points the log at path (appending) or at stderr.  The file is opened
 * onto file descriptor 2 and the log writes to stderr: a reopen (log
 * rotation) is then one dup2(), atomic for worker threads that are
 * writing a line at that moment, and nothing is ever freed under them.
 * Anything a library prints to stderr lands in the log too.  0 or -1
 * with errno set. */
static int
main_log_open(const char *path)
{
    int fd;

    if (path == NULL)
        return roost_log_open(NULL) == 0 ? 0 : -1;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return -1;
    if (fd != STDERR_FILENO) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            int e = errno;

            close(fd);
            errno = e;
            return -1;
        }
        close(fd);
    }
    return roost_log_open(NULL) == 0 ? 0 : -1;
}

/* The loop, with epoll's change list: a connection's read and write
 * interest is switched on and off several times in one loop turn (each
 * write enables EV_WRITE, each drained output disables it), and the list
 * hands the kernel only the net change once per turn instead of an
 * epoll_ctl per switch (24 per STARTTLS login before).  Its one hazard,
 * two descriptors dup()ed from one file in the same base, does not occur
 * here: every descriptor the loop watches is a socket, pipe or eventfd
 * of its own. */
static struct event_base *
main_event_base(void)
{
    struct event_config *ec = event_config_new();
    struct event_base *b;

    if (ec == NULL)
        roost_fatal("cannot create the event loop");
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    b = event_base_new_with_config(ec);
    event_config_free(ec);
    if (b == NULL)
        roost_fatal("cannot create the event loop");
    return b;
}

static void
main_resolve_user(const roost_config_t *cfg, main_creds_t *cr)
{
    struct passwd *pw;
    struct group *gr;

    memset(cr, 0, sizeof(*cr));
    if (cfg->user == NULL) {
        /* Prosody refuses to run as root unless told to; we run but say
         * so at every start (HOUSE 20, doc: roost.conf.sample). */
        if (geteuid() == 0)
            ROOST_LOG(ROOST_LOG_WARN, "core",
                      "running as root: set `user` (and `group`) in %s so "
                      "that roostd drops its privileges after binding",
                      cfg->path);
        return;
    }
    errno = 0;
    if ((pw = getpwnam(cfg->user)) == NULL)
        roost_fatal("user %s: %s", cfg->user,
                    errno != 0 ? strerror(errno) : "no such user");
    cr->drop = 1;
    cr->user = cfg->user;
    cr->uid = pw->pw_uid;
    cr->gid = pw->pw_gid;
    if (cfg->group != NULL) {
        errno = 0;
        if ((gr = getgrnam(cfg->group)) == NULL)
            roost_fatal("group %s: %s", cfg->group,
                        errno != 0 ? strerror(errno) : "no such group");
        cr->gid = gr->gr_gid;
    }
}

/* Hands a file or directory that root created (or that belongs to root)
 * to the target user, so that the server can still write it after the
 * drop.  Files owned by anyone else were set up by the admin and stay as
 * they are; symlinks are never followed. */
static void
main_chown_root_owned(const char *path, const main_creds_t *cr)
{
    /* Zeroed: gcc -O2 may test st_mode before lstat's result, which
     * valgrind reports when lstat fails (tests/valgrind.sh, ops). */
    struct stat st = {0};

    if (path == NULL || lstat(path, &st) != 0 || S_ISLNK(st.st_mode) ||
        st.st_uid != 0)
        return;
    if (lchown(path, cr->uid, cr->gid) != 0)
        roost_fatal("cannot hand %s to %s: %s", path, cr->user,
                    strerror(errno));
}

/* What roostd created as root before the drop: data_dir, the SQLite file
 * and its WAL/SHM/journal, the log file, generated certificates. */
static void
main_chown_files(const roost_config_t *cfg, const main_creds_t *cr)
{
    static const char *const sq_suffix[] = {"", "-wal", "-shm", "-journal"};
    char buf[4096];

    if (geteuid() != 0)
        return;
    main_chown_root_owned(cfg->data_dir, cr);
    if (cfg->storage_path != NULL &&
        strcmp(cfg->storage_driver, "sqlite") == 0) {
        for (size_t i = 0; i < sizeof(sq_suffix) / sizeof(sq_suffix[0]); i++) {
            snprintf(buf, sizeof(buf), "%s%s", cfg->storage_path, sq_suffix[i]);
            main_chown_root_owned(buf, cr);
        }
    }
    main_chown_root_owned(cfg->log_file, cr);
    for (int i = 0; i < cfg->nhosts; i++) {
        const roost_host_conf_t *hc = &cfg->hosts[i];
        char *slash;

        if (!hc->cert_generated)
            continue;
        main_chown_root_owned(hc->cert, cr);
        main_chown_root_owned(hc->key, cr);
        snprintf(buf, sizeof(buf), "%s", hc->cert);
        if ((slash = strrchr(buf, '/')) != NULL && slash != buf) {
            *slash = '\0';
            main_chown_root_owned(buf, cr);
        }
    }
}

/* setgroups -> setresgid -> setresuid (OpenSMTPD), then proof that root
 * cannot come back.  Any failure is fatal: a server that meant to drop
 * and did not must not serve. */
static void
main_drop_privileges(const roost_config_t *cfg, const main_creds_t *cr)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (!cr->drop)
        return;
    if (getuid() == cr->uid && geteuid() == cr->uid && getgid() == cr->gid &&
        getegid() == cr->gid) {
        ROOST_LOG(ROOST_LOG_INFO, "core", "already running as %s", cr->user);
        return;
    }
    main_chown_files(cfg, cr);
    if (setgroups(1, &cr->gid) != 0)
        roost_fatal("cannot drop privileges to %s: setgroups: %s%s", cr->user,
                    strerror(errno),
                    errno == EPERM ? " (start roostd as root)" : "");
    if (setresgid(cr->gid, cr->gid, cr->gid) != 0)
        roost_fatal("cannot drop privileges to %s: setresgid: %s", cr->user,
                    strerror(errno));
    if (setresuid(cr->uid, cr->uid, cr->uid) != 0)
        roost_fatal("cannot drop privileges to %s: setresuid: %s", cr->user,
                    strerror(errno));
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
        ru != cr->uid || eu != cr->uid || su != cr->uid || rg != cr->gid ||
        eg != cr->gid || sg != cr->gid)
        roost_fatal("cannot drop privileges to %s: ids did not change",
                    cr->user);
    if (cr->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        roost_fatal("cannot drop privileges to %s: root could be regained",
                    cr->user);
    ROOST_LOG(ROOST_LOG_INFO, "core", "running as %s (uid %ld, gid %ld)",
              cr->user, (long)cr->uid, (long)cr->gid);
}

/* After the drop: a certificate or key the server cannot read now cannot
 * be reloaded on SIGHUP either; say so at start, not at renewal time. */
static void
main_check_readable(const roost_config_t *cfg, const main_creds_t *cr)
{
    if (!cr->drop)
        return;
    for (int i = 0; i < cfg->nhosts; i++) {
        const char *f[2] = {cfg->hosts[i].cert, cfg->hosts[i].key};

        for (int j = 0; j < 2; j++)
            if (access(f[j], R_OK) != 0)
                ROOST_LOG(ROOST_LOG_WARN, cfg->hosts[i].domain,
                          "%s is not readable by %s (%s): SIGHUP cannot "
                          "reload it",
                          f[j], cr->user, strerror(errno));
    }
}

static int
main_streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int
main_strlist_eq(char *const *a, char *const *b)
{
    size_t i = 0;

    if (a == NULL || b == NULL)
        return a == b;
    for (; a[i] != NULL && b[i] != NULL; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return a[i] == NULL && b[i] == NULL;
}

static void
main_needs_restart(const char *what)
{
    ROOST_LOG(ROOST_LOG_WARN, "core",
              "reload: %s changed: not applied, needs a restart", what);
}

/* Whether two libconfig settings (or their absence) hold the same value:
 * types, scalars, group members by name, list and array items in order. */
static int
main_setting_eq(const config_setting_t *a, const config_setting_t *b)
{
    int n;

    if (a == NULL || b == NULL)
        return a == b;
    if (config_setting_type(a) != config_setting_type(b))
        return 0;
    switch (config_setting_type(a)) {
    case CONFIG_TYPE_INT:
        return config_setting_get_int(a) == config_setting_get_int(b);
    case CONFIG_TYPE_INT64:
        return config_setting_get_int64(a) == config_setting_get_int64(b);
    case CONFIG_TYPE_FLOAT:
        return config_setting_get_float(a) == config_setting_get_float(b);
    case CONFIG_TYPE_BOOL:
        return config_setting_get_bool(a) == config_setting_get_bool(b);
    case CONFIG_TYPE_STRING:
        return main_streq(config_setting_get_string(a),
                          config_setting_get_string(b));
    case CONFIG_TYPE_GROUP:
        n = config_setting_length(a);
        if (n != config_setting_length(b))
            return 0;
        for (int i = 0; i < n; i++) {
            const config_setting_t *x = config_setting_get_elem(a, i);

            if (!main_setting_eq(
                    x, config_setting_get_member(b, config_setting_name(x))))
                return 0;
        }
        return 1;
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY:
        n = config_setting_length(a);
        if (n != config_setting_length(b))
            return 0;
        for (int i = 0; i < n; i++)
            if (!main_setting_eq(config_setting_get_elem(a, i),
                                 config_setting_get_elem(b, i)))
                return 0;
        return 1;
    default: return 1;
    }
}

/* The group named after module inside host h, and the top-level one
 * (roost_config_module_opts reads both). */
static void
main_module_groups(const roost_config_t *c, const roost_host_conf_t *h,
                   const char *module, const config_setting_t *out[2])
{
    const config_setting_t *hs = h->setting;

    out[0] = hs != NULL ? config_setting_get_member(hs, module) : NULL;
    out[1] = config_setting_get_member(
        config_root_setting((const config_t *)c->lc), module);
}

static int
main_listen_in(const roost_listen_conf_t *l, const roost_config_t *c)
{
    for (int i = 0; i < c->nlisten; i++)
        if (c->listen[i].port == l->port && c->listen[i].type == l->type &&
            c->listen[i].tls == l->tls &&
            main_streq(c->listen[i].address, l->address))
            return 1;
    return 0;
}

/* Logs every difference between the running config and the new one that
 * a reload does not apply. */
static void
main_reload_diff(const roost_config_t *run, const roost_config_t *cfg)
{
    static const struct {
        const char *name;
        size_t off;
    } nums[] = {
#define MAIN_NUM(n, f) {n, offsetof(roost_config_t, f)}
        MAIN_NUM("limits.max_stanza_size", max_stanza_size),
        MAIN_NUM("limits.max_depth", max_depth),
        MAIN_NUM("limits.max_attrs", max_attrs),
        MAIN_NUM("limits.c2s_timeout", c2s_timeout),
        MAIN_NUM("limits.auth_timeout", auth_timeout),
        MAIN_NUM("limits.output_high_water", output_hwm),
        MAIN_NUM("limits.auth_fail_delay", auth_fail_delay),
        MAIN_NUM("limits.max_resources", max_resources),
        MAIN_NUM("limits.sm_resume_timeout", sm_resume_timeout),
        MAIN_NUM("limits.sm_max_queue", sm_max_queue),
        MAIN_NUM("limits.max_connections_per_ip", max_conn_per_ip),
        MAIN_NUM("limits.auth_failures_per_ip", auth_failures_per_ip),
        MAIN_NUM("limits.auth_failure_window", auth_failure_window),
        MAIN_NUM("limits.c2s_rate", c2s_rate),
        MAIN_NUM("limits.c2s_burst", c2s_burst),
        MAIN_NUM("limits.preauth_max_bytes", preauth_max_bytes),
        MAIN_NUM("limits.preauth_max_stanza_size", preauth_max_stanza),
        MAIN_NUM("limits.preauth_max_total", preauth_max_total),
        MAIN_NUM("scram_iterations", scram_iterations),
        MAIN_NUM("worker_threads", worker_threads),
        MAIN_NUM("s2s.connect_timeout", s2s_connect_timeout),
        MAIN_NUM("s2s.idle_timeout", s2s_idle_timeout),
#undef MAIN_NUM
    };
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
#define MAIN_STR(n, f) {n, offsetof(roost_config_t, f)}
        MAIN_STR("log_file", log_file),
        MAIN_STR("data_dir", data_dir),
        MAIN_STR("pidfile", pidfile),
        MAIN_STR("user", user),
        MAIN_STR("group", group),
        MAIN_STR("modules_dir", modules_dir),
        MAIN_STR("storage.driver", storage_driver),
        MAIN_STR("storage.path", storage_path),
        MAIN_STR("s2s.dialback_secret", s2s_secret),
        MAIN_STR("s2s.dns_servers", s2s_dns_servers),
#undef MAIN_STR
    };
    const char *a = (const char *)run, *b = (const char *)cfg;
    char what[512];

    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (*(const int64_t *)(a + nums[i].off) !=
            *(const int64_t *)(b + nums[i].off))
            main_needs_restart(nums[i].name);
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (!main_streq(*(char *const *)(a + strs[i].off),
                        *(char *const *)(b + strs[i].off)))
            main_needs_restart(strs[i].name);
    if (run->s2s_require_encryption != cfg->s2s_require_encryption)
        main_needs_restart("s2s.require_encryption");
    if (run->s2s_bidi != cfg->s2s_bidi)
        main_needs_restart("s2s.bidi");
    if (run->ns2s_peers != cfg->ns2s_peers)
        main_needs_restart("s2s.peers");
    for (int i = 0; i < run->ns2s_peers && i < cfg->ns2s_peers; i++)
        if (!main_streq(run->s2s_peers[i].domain, cfg->s2s_peers[i].domain) ||
            run->s2s_peers[i].require_encryption !=
                cfg->s2s_peers[i].require_encryption ||
            run->s2s_peers[i].bidi != cfg->s2s_peers[i].bidi) {
            main_needs_restart("s2s.peers");
            break;
        }
    if (run->ns2s_routes != cfg->ns2s_routes)
        main_needs_restart("s2s.routes");
    for (int i = 0; i < run->ns2s_routes && i < cfg->ns2s_routes; i++)
        if (!main_streq(run->s2s_routes[i].domain, cfg->s2s_routes[i].domain) ||
            !main_streq(run->s2s_routes[i].host, cfg->s2s_routes[i].host) ||
            run->s2s_routes[i].port != cfg->s2s_routes[i].port) {
            main_needs_restart("s2s.routes");
            break;
        }
    for (int i = 0; i < cfg->nlisten; i++)
        if (!main_listen_in(&cfg->listen[i], run)) {
            snprintf(what, sizeof(what), "listen (new listener %s port %d)",
                     cfg->listen[i].address, cfg->listen[i].port);
            main_needs_restart(what);
        }
    for (int i = 0; i < run->nlisten; i++)
        if (!main_listen_in(&run->listen[i], cfg)) {
            snprintf(what, sizeof(what), "listen (listener %s port %d removed)",
                     run->listen[i].address, run->listen[i].port);
            main_needs_restart(what);
        }
    for (int i = 0; i < cfg->nhosts; i++) {
        const roost_host_conf_t *n = &cfg->hosts[i];
        const roost_host_conf_t *o = roost_config_host(run, n->domain);

        if (o == NULL) {
            snprintf(what, sizeof(what), "hosts (%s added)", n->domain);
            main_needs_restart(what);
            continue;
        }
        if (!main_strlist_eq(o->modules, n->modules)) {
            snprintf(what, sizeof(what), "hosts (%s: modules)", n->domain);
            main_needs_restart(what);
        }
        /* Module options are read once, when the module loads. */
        for (int m = 0; n->modules != NULL && n->modules[m] != NULL; m++) {
            const config_setting_t *og[2], *ng[2];

            main_module_groups(run, o, n->modules[m], og);
            main_module_groups(cfg, n, n->modules[m], ng);
            if (!main_setting_eq(og[0], ng[0]) ||
                !main_setting_eq(og[1], ng[1])) {
                snprintf(what, sizeof(what), "hosts (%s: %s options)",
                         n->domain, n->modules[m]);
                main_needs_restart(what);
            }
        }
        if (!main_strlist_eq(o->admins, n->admins)) {
            snprintf(what, sizeof(what), "hosts (%s: admins)", n->domain);
            main_needs_restart(what);
        }
        if (o->anonymous != n->anonymous ||
            o->require_encryption != n->require_encryption) {
            snprintf(what, sizeof(what),
                     "hosts (%s: anonymous/require_encryption)", n->domain);
            main_needs_restart(what);
        }
    }
    for (int i = 0; i < run->nhosts; i++)
        if (roost_config_host(cfg, run->hosts[i].domain) == NULL) {
            snprintf(what, sizeof(what), "hosts (%s removed)",
                     run->hosts[i].domain);
            main_needs_restart(what);
        }
}

/* SIGHUP.  Runs on the event loop like every other callback, so nothing
 * it swaps is in use by the loop at that moment. */
static void
main_reload(main_reload_t *r)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    roost_config_t *cfg;
    char *err = NULL;
    int failed;

    ROOST_LOG(ROOST_LOG_INFO, "core", "SIGHUP: reloading %s", r->running->path);
    /* First, so that the rest of the reload goes to the new file. */
    if (r->running->log_file != NULL &&
        main_log_open(r->running->log_file) != 0)
        ROOST_LOG(ROOST_LOG_ERROR, "core",
                  "reload: cannot reopen log file %s: %s; still writing to "
                  "the old one",
                  r->running->log_file, strerror(errno));
    /* The absolute path: a relative -c must not depend on the cwd. */
    cfg = roost_config_load(r->running->path, &err);
    if (cfg == NULL) {
        ROOST_LOG(ROOST_LOG_ERROR, "core",
                  "reload: %s; keeping the running configuration", err);
        roost_free(err);
    } else {
        main_reload_diff(r->running, cfg);
        if (r->debug && cfg->log_level != ROOST_LOG_DEBUG)
            ROOST_LOG(ROOST_LOG_INFO, "core",
                      "reload: log_level stays debug (-d)");
        else if (!r->debug && cfg->log_level != roost_log_level) {
            /* Written whatever the old and new levels are. */
            roost_log_write(ROOST_LOG_INFO, "core",
                            "reload: log_level %s -> %s",
                            names[roost_log_level], names[cfg->log_level]);
            roost_log_level = cfg->log_level;
        }
        if (r->applied != r->running)
            roost_config_free(r->applied);
        r->applied = cfg;
    }
    failed = roost_server_reload_tls(r->applied);
    ROOST_LOG(failed == 0 && cfg != NULL ? ROOST_LOG_INFO : ROOST_LOG_WARN,
              "core", "reload finished%s%s",
              cfg == NULL ? "; the config file has errors" : "",
              failed > 0 ? "; some certificates were not reloaded" : "");
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
    main_reload(arg);
}

int
main(int argc, char **argv)
{
    const char *path = NULL;
    int debug = 0, check_only = 0, opt;
    roost_config_t *cfg;
    struct event_base *base;
    struct event *sig_term, *sig_int, *sig_hup;
    main_creds_t creds;
    main_reload_t reload;
    char *err = NULL;

    while ((opt = getopt(argc, argv, "c:dtVh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'd': debug = 1; break;
        case 't': check_only = 1; break;
        case 'V': printf("roostd %s\n", ROOST_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    cfg = roost_config_load(path, &err);
    if (cfg == NULL) {
        fprintf(stderr, "roostd: %s\n", err);
        roost_free(err);
        return 1;
    }
    if (check_only) {
        printf("roostd: %s: configuration OK\n", path);
        roost_config_free(cfg);
        return 0;
    }
    roost_log_level = debug ? ROOST_LOG_DEBUG : cfg->log_level;
    signal(SIGPIPE, SIG_IGN);
    /* Until the loop handles it, a SIGHUP must not kill the server. */
    signal(SIGHUP, SIG_IGN);
    /* data_dir first: log_file is relative to it. */
    if (mkdir_p(cfg->data_dir, 0750) != 0)
        roost_fatal("cannot create data_dir %s: %s", cfg->data_dir,
                    strerror(errno));
    if (main_log_open(cfg->log_file) != 0)
        roost_fatal("cannot open log file %s: %s", cfg->log_file,
                    strerror(errno));
    /* Before anything is bound: an unknown user fails here. */
    main_resolve_user(cfg, &creds);
    evthread_use_pthreads();
    if (roost_storage_init(cfg->storage_driver, cfg->storage_path, &err) != 0)
        roost_fatal("storage: %s", err);
    if (roost_sasl_init(&err) != 0)
        roost_fatal("SASL: %s", err);
    base = main_event_base();
    if (roost_worker_init(base, (int)cfg->worker_threads) != 0)
        roost_fatal("cannot start worker threads");
    if (roost_server_init(cfg, base, &err) != 0)
        roost_fatal("%s", err);
    /* Ports are bound, certificates loaded and the database open. */
    main_drop_privileges(cfg, &creds);
    main_check_readable(cfg, &creds);
    if (cfg->pidfile != NULL) {
        FILE *fp = fopen(cfg->pidfile, "w");

        if (fp == NULL)
            roost_fatal("cannot write pidfile %s", cfg->pidfile);
        fprintf(fp, "%ld\n", (long)getpid());
        fclose(fp);
    }
    sig_term = evsignal_new(base, SIGTERM, on_signal, base);
    sig_int = evsignal_new(base, SIGINT, on_signal, base);
    evsignal_add(sig_term, NULL);
    evsignal_add(sig_int, NULL);
    reload = (main_reload_t){.debug = debug, .running = cfg, .applied = cfg};
    sig_hup = evsignal_new(base, SIGHUP, on_hup, &reload);
    evsignal_add(sig_hup, NULL);
    ROOST_LOG(ROOST_LOG_INFO, "core", "roostd %s ready (%d host%s)",
              ROOST_VERSION, cfg->nhosts, cfg->nhosts == 1 ? "" : "s");

    event_base_dispatch(base);

    roost_server_shutdown();
    roost_worker_shutdown();
    event_free(sig_term);
    event_free(sig_int);
    event_free(sig_hup);
    event_base_free(base);
    roost_sasl_shutdown();
    roost_storage_shutdown();
    if (cfg->pidfile != NULL)
        unlink(cfg->pidfile);
    if (reload.applied != cfg)
        roost_config_free(reload.applied);
    roost_config_free(cfg);
    ROOST_LOG(ROOST_LOG_INFO, "core", "stopped");
    return 0;
}
