/* tools/roostctl.c: account administration from the command line.
 *
 *   roostctl -c FILE adduser JID [--password P]
 *   roostctl -c FILE passwd JID [--password P]
 *   roostctl -c FILE deluser JID
 *   roostctl -c FILE users DOMAIN
 *
 * Opens the storage named by the server's config file directly (SQLite
 * serialises with a running roostd) and works through core/auth.c, so
 * credentials are written exactly as the server writes them.  Exit codes:
 * 0 ok, 1 operational error (one line on stderr), 2 usage.
 *
 * Not for a running server's in-memory state: a user deleted here keeps
 * any open session until it ends.  Roster, status and import/export
 * commands are still to come. */
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
          "\n"
          "Without --password the password is read from standard input\n"
          "(one line).  --password is visible to other local users.\n"
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

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const struct {
        const char *name;
        int nargs, password_ok;
    } cmds[] = {{"adduser", 1, 1},
                {"passwd", 1, 1},
                {"deluser", 1, 0},
                {"users", 1, 0}};
    const char *conf = NULL, *cmd, *args[1] = {NULL}, *password = NULL;
    roost_config_t *cfg;
    char *err = NULL;
    int opt, k, nargs = 0, r;
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
    /* COMMAND's own arguments: positionals and --password P / =P */
    for (k = optind + 1; k < argc; k++) {
        if (cmds[c].password_ok && strcmp(argv[k], "--password") == 0 &&
            k + 1 < argc) {
            password = argv[++k];
        } else if (cmds[c].password_ok &&
                   strncmp(argv[k], "--password=", 11) == 0) {
            password = argv[k] + 11;
        } else if (argv[k][0] == '-' || nargs == cmds[c].nargs) {
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
    else
        r = ctl_users(cfg, args[0]);
    roost_storage_shutdown();
    roost_config_free(cfg);
    return r;
}
