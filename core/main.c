/* core/main.c: roostd, the server process.
 *
 * Parses the command line (`roostd -c FILE`), reads the config, opens
 * storage, starts the worker threads, builds the vhosts and listeners,
 * drops privileges (HOUSE 20) and runs the event loop until SIGTERM or
 * SIGINT.  Everything it starts is torn down in reverse order so that the
 * sanitizers see a clean exit. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

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

static void
drop_privileges(const roost_config_t *cfg)
{
    struct passwd *pw;
    struct group *gr = NULL;
    gid_t gid;

    if (cfg->user == NULL)
        return;
    if ((pw = getpwnam(cfg->user)) == NULL)
        roost_fatal("unknown user %s", cfg->user);
    gid = pw->pw_gid;
    if (cfg->group != NULL) {
        if ((gr = getgrnam(cfg->group)) == NULL)
            roost_fatal("unknown group %s", cfg->group);
        gid = gr->gr_gid;
    }
    if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
        roost_fatal("cannot drop privileges to %s: %s", cfg->user,
                    strerror(errno));
    ROOST_LOG(ROOST_LOG_INFO, "core", "running as %s", cfg->user);
}

int
main(int argc, char **argv)
{
    const char *path = NULL;
    int debug = 0, check_only = 0, opt;
    roost_config_t *cfg;
    struct event_base *base;
    struct event *sig_term, *sig_int;
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
    if (roost_log_open(cfg->log_file) != 0)
        roost_fatal("cannot open log file %s", cfg->log_file);
    signal(SIGPIPE, SIG_IGN);
    if (mkdir_p(cfg->data_dir, 0750) != 0)
        roost_fatal("cannot create data_dir %s: %s", cfg->data_dir,
                    strerror(errno));
    evthread_use_pthreads();
    if (roost_storage_init(cfg->storage_driver, cfg->storage_path, &err) != 0)
        roost_fatal("storage: %s", err);
    if (roost_sasl_init(&err) != 0)
        roost_fatal("SASL: %s", err);
    base = event_base_new();
    if (base == NULL)
        roost_fatal("cannot create the event loop");
    if (roost_worker_init(base, (int)cfg->worker_threads) != 0)
        roost_fatal("cannot start worker threads");
    if (roost_server_init(cfg, base, &err) != 0)
        roost_fatal("%s", err);
    drop_privileges(cfg);
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
    ROOST_LOG(ROOST_LOG_INFO, "core", "roostd %s ready (%d host%s)",
              ROOST_VERSION, cfg->nhosts, cfg->nhosts == 1 ? "" : "s");

    event_base_dispatch(base);

    roost_server_shutdown();
    roost_worker_shutdown();
    event_free(sig_term);
    event_free(sig_int);
    event_base_free(base);
    roost_sasl_shutdown();
    roost_storage_shutdown();
    if (cfg->pidfile != NULL)
        unlink(cfg->pidfile);
    roost_config_free(cfg);
    ROOST_LOG(ROOST_LOG_INFO, "core", "stopped");
    return 0;
}
