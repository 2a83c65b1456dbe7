/* tests/unit/check_config.c: unit tests for core/config.c.
 *
 * Writes config files into a fresh temporary directory and checks that
 * the sample (etc/roost.conf.sample, found through $srcdir as automake's
 * test driver sets it) loads with its documented defaults, that each
 * validation error names the right file and line, path resolution, module
 * options and roost_config_parse_opt.  Not a fuzzer (fuzz_config.c). */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* By path: an autoconf config.h in the build directory shadows
 * "config.h" for files outside core/. */
#include "../../core/config.h"

/* Small enough that derived paths cannot overflow PATH_MAX buffers. */
static char tmpdir[512];
static char confpath[600];

static void
setup(void)
{
    char tmpl[] = "/tmp/roost-check-config-XXXXXX", real[PATH_MAX];

    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    /* realpath: /tmp may be a symlink, and errors name the real path */
    ck_assert_ptr_nonnull(realpath(tmpl, real));
    ck_assert_uint_lt(strlen(real), sizeof(tmpdir));
    memcpy(tmpdir, real, strlen(real) + 1);
    snprintf(confpath, sizeof(confpath), "%s/roost.conf", tmpdir);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void
teardown(void)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Writes text as tmpdir/roost.conf and loads it. */
static roost_config_t *
load(const char *text, char **err)
{
    write_file(confpath, text);
    return roost_config_load(confpath, err);
}

static char *
sample_text(void)
{
    const char *srcdir = getenv("srcdir");
    char path[PATH_MAX];
    FILE *fp;
    char *buf = roost_xmalloc(65536);
    size_t n;

    snprintf(path, sizeof(path), "%s/etc/roost.conf.sample",
             srcdir ? srcdir : ".");
    fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s (set srcdir)", path);
    n = fread(buf, 1, 65535, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* 1-based line of the first line of text containing needle. */
static int
line_of(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    int line = 1;

    ck_assert_ptr_nonnull(p);
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

static char *
path_in(const char *rel)
{
    static char buf[PATH_MAX];

    snprintf(buf, sizeof(buf), "%s/%s", tmpdir, rel);
    return buf;
}

#define HOST "hosts = ({ domain = \"localhost\"; });\n"

START_TEST(test_sample)
{
    char *text = sample_text(), *err = (char *)1;
    roost_config_t *c = load(text, &err);
    const roost_host_conf_t *h;
    struct stat st;

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_ptr_null(err);
    ck_assert_str_eq(c->path, confpath);
    ck_assert_int_eq(c->log_level, ROOST_LOG_INFO);
    ck_assert_ptr_null(c->log_file);
    ck_assert_str_eq(c->data_dir, path_in("data"));
    ck_assert_int_eq(stat(c->data_dir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_ptr_null(c->pidfile);
    ck_assert_ptr_null(c->user);
    ck_assert_ptr_null(c->group);
    ck_assert_ptr_nonnull(c->modules_dir);
    ck_assert_int_eq(c->modules_dir[0], '/');
#ifdef ROOST_MODULEDIR
    ck_assert_str_eq(c->modules_dir, ROOST_MODULEDIR);
#endif
    ck_assert_str_eq(c->storage_driver, "sqlite");
    ck_assert_str_eq(c->storage_path, path_in("data/roost.db"));
    ck_assert_int_eq(c->max_stanza_size, 262144);
    ck_assert_int_eq(c->max_depth, 64);
    ck_assert_int_eq(c->max_attrs, 64);
    ck_assert_int_eq(c->c2s_timeout, 300000);
    ck_assert_int_eq(c->auth_timeout, 30000);
    ck_assert_int_eq(c->output_hwm, 524288);
    ck_assert_int_eq(c->auth_fail_delay, 1000);
    ck_assert_int_eq(c->scram_iterations, 4096);
    ck_assert_int_eq(c->worker_threads, 2);
    ck_assert_int_eq(c->max_resources, 10);
    ck_assert_int_eq(c->sm_resume_timeout, 300000);
    ck_assert_int_eq(c->sm_max_queue, 1000);
    ck_assert_int_eq(c->max_conn_per_ip, 100);
    ck_assert_int_eq(c->auth_failures_per_ip, 10);
    ck_assert_int_eq(c->auth_failure_window, 300000);
    ck_assert_int_eq(c->c2s_rate, 262144);
    ck_assert_int_eq(c->c2s_burst, 1048576);
    ck_assert_int_eq(c->fast_token_lifetime, INT64_C(1209600000));
    ck_assert_int_eq(c->s2s_require_encryption, 1);
    ck_assert_int_eq(c->s2s_connect_timeout, 30000);
    ck_assert_int_eq(c->s2s_idle_timeout, 300000);
    ck_assert_ptr_null(c->s2s_secret);
    ck_assert_ptr_null(c->s2s_dns_servers);
    ck_assert_int_eq(c->ns2s_routes, 0);
    ck_assert_int_eq(c->s2s_secure_auth, 0);
    ck_assert_ptr_null(c->s2s_ca_file);
    ck_assert_int_eq(c->nlisten, 2);
    ck_assert_str_eq(c->listen[0].address, "127.0.0.1");
    ck_assert_int_eq(c->listen[0].port, 5222);
    ck_assert_int_eq(c->listen[0].type, ROOST_LISTEN_C2S);
    ck_assert_int_eq(c->listen[0].tls, ROOST_TLS_STARTTLS);
    ck_assert_str_eq(c->listen[1].address, "127.0.0.1");
    ck_assert_int_eq(c->listen[1].port, 5223);
    ck_assert_int_eq(c->listen[1].tls, ROOST_TLS_DIRECT);
    ck_assert_int_eq(c->nhosts, 1);
    h = &c->hosts[0];
    ck_assert_str_eq(h->domain, "localhost");
    ck_assert_int_eq(h->line, line_of(text, "{ domain = \"localhost\""));
    ck_assert_ptr_nonnull(h->setting);
    ck_assert_str_eq(h->cert, path_in("data/certs/localhost.crt"));
    ck_assert_str_eq(h->key, path_in("data/certs/localhost.key"));
    ck_assert_int_eq(h->cert_generated, 1);
    ck_assert_str_eq(h->modules[0], "disco");
    ck_assert_str_eq(h->modules[1], "ping");
    ck_assert_str_eq(h->modules[2], "version");
    ck_assert_str_eq(h->modules[3], "message");
    ck_assert_str_eq(h->modules[4], "roster");
    ck_assert_ptr_null(h->modules[5]);
    ck_assert_ptr_null(h->admins[0]);
    ck_assert_int_eq(h->anonymous, 0);
    ck_assert_int_eq(h->require_encryption, 1);
    ck_assert_ptr_eq(roost_config_host(c, "localhost"), h);
    roost_config_free(c);
    roost_free(text);
}
END_TEST

/* The sample's values are the defaults: a file with only a host loads to
 * the same configuration. */
START_TEST(test_minimal_equals_sample)
{
    char *text = sample_text(), *err;
    roost_config_t *s = load(text, &err), *m;

    ck_assert_ptr_nonnull(s);
    m = load(HOST, &err);
    ck_assert_msg(m != NULL, "%s", err);
#define SAME_INT(f) ck_assert_int_eq(s->f, m->f)
#define SAME_STR(f)                                                            \
    do {                                                                       \
        if (s->f == NULL || m->f == NULL)                                      \
            ck_assert_ptr_eq(s->f, m->f);                                      \
        else                                                                   \
            ck_assert_str_eq(s->f, m->f);                                      \
    } while (0)
    SAME_INT(log_level);
    SAME_STR(log_file);
    SAME_STR(data_dir);
    SAME_STR(pidfile);
    SAME_STR(user);
    SAME_STR(group);
    SAME_STR(modules_dir);
    SAME_STR(storage_driver);
    SAME_STR(storage_path);
    SAME_INT(max_stanza_size);
    SAME_INT(max_depth);
    SAME_INT(max_attrs);
    SAME_INT(c2s_timeout);
    SAME_INT(auth_timeout);
    SAME_INT(output_hwm);
    SAME_INT(auth_fail_delay);
    SAME_INT(scram_iterations);
    SAME_INT(worker_threads);
    SAME_INT(max_resources);
    SAME_INT(sm_resume_timeout);
    SAME_INT(sm_max_queue);
    SAME_INT(max_conn_per_ip);
    SAME_INT(auth_failures_per_ip);
    SAME_INT(auth_failure_window);
    SAME_INT(c2s_rate);
    SAME_INT(c2s_burst);
    SAME_INT(fast_token_lifetime);
    SAME_INT(nlisten);
    for (int i = 0; i < s->nlisten; i++) {
        SAME_STR(listen[i].address);
        SAME_INT(listen[i].port);
        SAME_INT(listen[i].type);
        SAME_INT(listen[i].tls);
    }
    SAME_STR(hosts[0].cert);
    SAME_INT(hosts[0].anonymous);
    SAME_INT(hosts[0].require_encryption);
    ck_assert_ptr_null(m->hosts[0].modules[0]); /* default: [ ] */
    roost_config_free(s);
    roost_config_free(m);
    roost_free(text);
}
END_TEST

typedef struct {
    const char *text;
    int line;           /* expected line; 0: "file: msg" */
    const char *substr; /* expected in the message */
} err_case_t;

static const err_case_t errors[] = {
    /* syntax */
    {HOST "log_level = ;\n", 2, "syntax error"},
    {HOST "\n\nlimits = { max_depth = = 5; };\n", 4, "syntax error"},
    {HOST "a = 1;\na = 2;\n", 3, "duplicate"},
    /* unknown keys */
    {HOST "bogus = 1;\n", 2, "unknown option 'bogus'"},
    {HOST "limits = {\n max_foo = 1;\n};\n", 3, "unknown option 'max_foo'"},
    {HOST "storage = { driver = \"sqlite\";\n file = \"x\"; };\n", 3,
     "unknown option 'file'"},
    {HOST "listen = ({ address = \"::1\"; port = 5222;\n secure = true; "
          "});\n",
     3, "unknown option 'secure'"},
    {"hosts = ({ domain = \"localhost\";\n\n colour = \"blue\"; });\n", 3,
     "unknown option 'colour'"},
    {"hosts = ({ domain = \"localhost\"; limits = 3; });\n", 1,
     "unknown option 'limits'"},
    /* types */
    {HOST "log_level = 1;\n", 2, "'log_level' must be a string"},
    {HOST "limits = { max_depth = \"64\"; };\n", 2,
     "'max_depth' must be an integer"},
    {HOST "limits = { max_stanza_size = 1.5; };\n", 2,
     "'max_stanza_size' must be an integer (bytes)"},
    {HOST "limits = { c2s_timeout = \"300\"; };\n", 2,
     "'c2s_timeout' must be a number of seconds"},
    {"hosts = ({ domain = \"localhost\"; anonymous = 1; });\n", 1,
     "'anonymous' must be true or false"},
    {"hosts = ({ domain = \"localhost\"; modules = \"ping\"; });\n", 1,
     "'modules' must be a list of strings"},
    {"hosts = ({ domain = \"localhost\";\n modules = [ 1, 2 ]; });\n", 2,
     "'modules' must be a list of strings"},
    {"hosts = ({ domain = \"localhost\";\n modules = ( \"a\", 2 ); });\n", 2,
     "'modules' must be a list of strings"},
    {HOST "listen = ({ address = \"::1\"; port = 5222.0; });\n", 2,
     "'port' must be an integer"},
    {HOST "\nstorage = \"sqlite\";\n", 3, "'storage' must be a group"},
    {HOST "limits = 5;\n", 2, "'limits' must be a group"},
    {HOST "listen = { address = \"::1\"; port = 1; };\n", 2,
     "'listen' must be a list"},
    {"hosts = { domain = \"localhost\"; };\n", 1, "'hosts' must be a list"},
    {HOST "listen = ( 5 );\n", 2, "listen entries must be groups"},
    {"hosts = ( \"localhost\" );\n", 1, "host entries must be groups"},
    /* ranges */
    {HOST "listen = ({ address = \"::1\"; port = 0; });\n", 2,
     "'port' must be between 1 and 65535"},
    {HOST "listen = ({ address = \"::1\"; port = 65536; });\n", 2,
     "'port' must be between 1 and 65535"},
    {HOST "limits = { max_stanza_size = 1023; };\n", 2, "1024 and 67108864"},
    {HOST "limits = { max_stanza_size = 67108865; };\n", 2, "1024 and"},
    {HOST "limits = { max_stanza_size = 100000000000L; };\n", 2, "1024 and"},
    {HOST "limits = { max_depth = 0; };\n", 2, "between 1 and 1000"},
    {HOST "limits = { max_depth = 1001; };\n", 2, "between 1 and 1000"},
    {HOST "limits = { max_attrs = 10001; };\n", 2, "between 1 and 10000"},
    {HOST "limits = { c2s_timeout = 0; };\n", 2,
     "'c2s_timeout' must be between 0.001 and 86400 seconds"},
    {HOST "limits = { c2s_timeout = -1.5; };\n", 2, "c2s_timeout"},
    {HOST "limits = { c2s_timeout = 86400.5; };\n", 2, "c2s_timeout"},
    {HOST "limits = { auth_timeout = 0.0001; };\n", 2, "auth_timeout"},
    {HOST "limits = { auth_fail_delay = -0.5; };\n", 2, "auth_fail_delay"},
    {HOST "limits = { c2s_timeout = 1e300; };\n", 2, "c2s_timeout"},
    {HOST "limits = { output_high_water = 1023; };\n", 2, "output_high_water"},
    {HOST "limits = { max_resources = 0; };\n", 2, "between 1 and 1000"},
    {HOST "limits = { max_resources = 1001; };\n", 2, "between 1 and 1000"},
    {HOST "s2s = { routes = ( { host = \"h\"; } ); };\n", 2, "needs 'domain'"},
    {HOST "s2s = { routes = ( { domain = \"d.example\"; } ); };\n", 2,
     "needs 'host'"},
    {HOST "s2s = { routes = ( { domain = \"d.example\"; host = \"h\"; "
          "port = 0; } ); };\n",
     2, "between 1 and 65535"},
    {HOST "s2s = { routes = 5; };\n", 2, "must be a list"},
    {HOST "s2s = { connect_timeout = 0.01; };\n", 2, "connect_timeout"},
    {HOST "s2s = { nonsense = 1; };\n", 2, "nonsense"},
    {HOST "components = ( { domain = \"gw.example\"; } );\n", 2,
     "needs 'secret'"},
    {HOST "components = ( { secret = \"s\"; } );\n", 2, "needs 'domain'"},
    {HOST "components = ( { domain = \"gw.example\"; secret = \"s\"; },\n"
          "  { domain = \"GW.example\"; secret = \"t\"; } );\n",
     3, "listed twice"},
    {HOST "listen = ( { address = \"127.0.0.1\"; port = 5269; "
          "type = \"x2s\"; } );\n",
     2, "x2s"},
    {HOST "scram_iterations = 4095;\n", 2, "between 4096 and 1000000"},
    {HOST "scram_iterations = 1000001;\n", 2, "between 4096 and 1000000"},
    {HOST "worker_threads = 0;\n", 2, "between 1 and 64"},
    {HOST "worker_threads = 65;\n", 2, "between 1 and 64"},
    /* enums */
    {HOST "log_level = \"verbose\";\n", 2, "bad log_level 'verbose'"},
    {HOST "storage = { driver = \"mysql\"; };\n", 2, "bad driver 'mysql'"},
    {HOST "listen = ({ address = \"::1\"; port = 1;\n type = \"s3s\"; });\n", 3,
     "bad type 's3s'"},
    {HOST "listen = ({ address = \"::1\"; port = 1;\n\n tls = \"yes\"; });\n",
     4, "bad tls 'yes'"},
    /* listen entries */
    {HOST "listen = ();\n", 2, "'listen' has no entries"},
    {HOST "listen = ({ port = 5222; });\n", 2, "needs 'address'"},
    {HOST "listen = ({ address = \"::\"; });\n", 2, "needs 'port'"},
    {HOST "listen = ({ address = \"localhost\"; port = 1; });\n", 2,
     "numeric IPv4 or IPv6"},
    {HOST "listen = ({ address = \"::1\"; port = 1; },\n"
          "{ address = \"::1\"; port = 1; });\n",
     3, "already listed"},
    /* hosts */
    {"hosts = ();\n", 1, "no hosts configured"},
    {"log_level = \"info\";\n", 0, "no hosts configured"},
    {"hosts = ({ domain = \"localhost\"; },\n\n"
     " { domain = \"LocalHost.\"; });\n",
     3, "host 'localhost' is already defined at line 1"},
    {"hosts = ({ anonymous = true; });\n", 1, "needs 'domain'"},
    {"hosts = ({\n domain = \"foo bar\"; });\n", 2, "invalid domain"},
    {"hosts = ({ domain = \"localhost\";\n cert = \"a.crt\"; });\n", 2,
     "'cert' and 'key' must be given together"},
    {"hosts = ({ domain = \"localhost\";\n key = \"a.key\"; });\n", 2,
     "'cert' and 'key' must be given together"},
    {"hosts = ({ domain = \"localhost\"; cert = \"\"; key = \"k\"; });\n", 1,
     "'cert' must not be empty"},
    {"hosts = ({ domain = \"localhost\";\n admins = [\n \"a@b/c\" ]; });\n", 3,
     "admin 'a@b/c' is not a bare JID"},
    {"hosts = ({ domain = \"localhost\"; admins = [ \"@b\" ]; });\n", 1,
     "not a bare JID"},
    {"hosts = ({ domain = \"localhost\"; modules = [ \"../x\" ]; });\n", 1,
     "bad module name '../x'"},
    {"hosts = ({ domain = \"localhost\"; modules = [ \"\" ]; });\n", 1,
     "bad module name"},
    {"hosts = ({ domain = \"localhost\";\n modules = [ \"ping\",\n"
     "\"ping\" ]; });\n",
     3, "module 'ping' is listed twice"},
    /* paths */
    {HOST "data_dir = \"\";\n", 2, "'data_dir' must not be empty"},
    {HOST "data_dir = \"roost.conf/x\";\n", 2, "cannot create data_dir"},
    {HOST "pidfile = \"\";\n", 2, "'pidfile' must not be empty"},
};

START_TEST(test_errors)
{
    const err_case_t *e = &errors[_i];
    char *err = NULL, want[PATH_MAX + 16];
    roost_config_t *c = load(e->text, &err);

    ck_assert_msg(c == NULL, "case %d loaded", _i);
    ck_assert_ptr_nonnull(err);
    if (e->line)
        snprintf(want, sizeof(want), "%s:%d: ", confpath, e->line);
    else
        snprintf(want, sizeof(want), "%s: ", confpath);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                  "case %d: \"%s\" does not start with \"%s\"", _i, err, want);
    ck_assert_msg(strstr(err, e->substr) != NULL,
                  "case %d: \"%s\" lacks \"%s\"", _i, err, e->substr);
    roost_free(err);
}
END_TEST

START_TEST(test_file_errors)
{
    char *err = NULL, want[PATH_MAX + 64];
    roost_config_t *c;

    /* missing file */
    c = roost_config_load(path_in("nope.conf"), &err);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, "nope.conf: cannot open"));
    roost_free(err);

    /* an error inside an @include'd file names that file */
    write_file(path_in("hosts.inc"), "hosts = ({ domain = \"localhost\";\n"
                                     " bogus = 2; });\n");
    c = load("log_level = \"debug\";\n@include \"hosts.inc\"\n", &err);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s:2: unknown option 'bogus'",
             path_in("hosts.inc"));
    ck_assert_str_eq(err, want);
    roost_free(err);

    write_file(path_in("hosts.inc"), "\nhosts = ({ domain = ;\n });\n");
    c = load("log_level = \"debug\";\n@include \"hosts.inc\"\n", &err);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s:2: ", path_in("hosts.inc"));
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    roost_free(err);

    c = load("@include \"missing.inc\"\n", &err);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s:1: ", confpath);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    roost_free(err);

    /* and includes work */
    write_file(path_in("hosts.inc"), HOST);
    c = load("log_level = \"debug\";\n@include \"hosts.inc\"\n", &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->log_level, ROOST_LOG_DEBUG);
    roost_config_free(c);
}
END_TEST

START_TEST(test_paths)
{
    char *err, sub[600], conf[PATH_MAX];
    roost_config_t *c;

    snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(conf, sizeof(conf), "%s/roost.conf", sub);
    write_file(conf,
               "data_dir = \"../var/lib\";\n"
               "log_file = \"log.txt\";\n"
               "pidfile = \"/run/roost.pid\";\n"
               "modules_dir = \"mods\";\n"
               "user = \"roost\"; group = \"nogroup\";\n"
               "storage = { driver = \"memory\"; path = \"db/x.db\"; };\n"
               "hosts = ({ domain = \"a.example\"; cert = \"a.crt\";\n"
               "  key = \"/etc/ssl/a.key\"; },\n"
               " { domain = \"B.Example.\"; admins = [ \"Root@B.example\" ];"
               " anonymous = true; require_encryption = false; });\n");
    /* the config path given relative to the cwd comes back absolute */
    ck_assert_int_eq(chdir(tmpdir), 0);
    c = roost_config_load("etc/../etc/roost.conf", &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->path, conf);
    ck_assert_str_eq(c->data_dir, path_in("etc/../var/lib"));
    ck_assert_int_eq(access(path_in("var/lib"), F_OK), 0);
    ck_assert_str_eq(c->log_file, path_in("etc/../var/lib/log.txt"));
    ck_assert_str_eq(c->pidfile, "/run/roost.pid");
    ck_assert_str_eq(c->modules_dir, path_in("etc/mods"));
    ck_assert_str_eq(c->user, "roost");
    ck_assert_str_eq(c->group, "nogroup");
    ck_assert_str_eq(c->storage_driver, "memory");
    ck_assert_str_eq(c->storage_path, path_in("etc/../var/lib/db/x.db"));
    ck_assert_str_eq(c->hosts[0].cert, path_in("etc/a.crt"));
    ck_assert_str_eq(c->hosts[0].key, "/etc/ssl/a.key");
    ck_assert_int_eq(c->hosts[0].cert_generated, 0);
    ck_assert_str_eq(c->hosts[1].domain, "b.example");
    ck_assert_str_eq(c->hosts[1].cert,
                     path_in("etc/../var/lib/certs/b.example.crt"));
    ck_assert_int_eq(c->hosts[1].cert_generated, 1);
    ck_assert_str_eq(c->hosts[1].admins[0], "root@b.example");
    ck_assert_ptr_null(c->hosts[1].admins[1]);
    ck_assert_int_eq(c->hosts[1].anonymous, 1);
    ck_assert_int_eq(c->hosts[1].require_encryption, 0);
    ck_assert_int_eq(c->hosts[1].line, 9);
    /* host lookup prepares the name it is given */
    ck_assert_ptr_eq(roost_config_host(c, "b.example"), &c->hosts[1]);
    ck_assert_ptr_eq(roost_config_host(c, "B.EXAMPLE."), &c->hosts[1]);
    ck_assert_ptr_null(roost_config_host(c, "c.example"));
    ck_assert_ptr_null(roost_config_host(c, "a b"));
    roost_config_free(c);
}
END_TEST

START_TEST(test_values)
{
    char *err;
    roost_config_t *c =
        load("log_level = \"warn\";\n"
             "limits = { max_stanza_size = 1024; max_depth = 1000;\n"
             "  c2s_timeout = 0.5; auth_timeout = 86400; auth_fail_delay = 0;\n"
             "  output_high_water = 1073741824; max_resources = 1000;\n"
             "  max_attrs = 1; };\n"
             "scram_iterations = 1000000; worker_threads = 64;\n"
             "listen = ({ address = \"::\"; port = 65535; tls = \"none\"; });\n"
             "unused = { anything = \"goes\"; };\n" /* module options */
             "hosts = ({ domain = \"[::1]\"; mod_x = { y = 1; }; });\n",
             &err);

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->log_level, ROOST_LOG_WARN);
    ck_assert_int_eq(c->max_stanza_size, 1024);
    ck_assert_int_eq(c->max_depth, 1000);
    ck_assert_int_eq(c->max_attrs, 1);
    ck_assert_int_eq(c->c2s_timeout, 500);
    ck_assert_int_eq(c->auth_timeout, 86400000);
    ck_assert_int_eq(c->auth_fail_delay, 0);
    ck_assert_int_eq(c->output_hwm, 1073741824);
    ck_assert_int_eq(c->max_resources, 1000);
    ck_assert_int_eq(c->scram_iterations, 1000000);
    ck_assert_int_eq(c->worker_threads, 64);
    ck_assert_int_eq(c->nlisten, 1);
    ck_assert_str_eq(c->listen[0].address, "::");
    ck_assert_int_eq(c->listen[0].port, 65535);
    ck_assert_int_eq(c->listen[0].tls, ROOST_TLS_NONE);
    ck_assert_str_eq(c->hosts[0].domain, "[::1]");
    roost_config_free(c);
}
END_TEST

/* A module's conf struct and its option table. */
struct mod_conf {
    int flag;
    int64_t count, size, timeout, dflt_only;
    const char *name;
    const char *const *list;
    const char *unset;
};

static const roost_opt_t mod_opts[] = {
    {"flag", ROOST_OPT_BOOL, offsetof(struct mod_conf, flag), "true", 0, 0},
    {"count", ROOST_OPT_INT, offsetof(struct mod_conf, count), "3", 1, 100},
    {"size", ROOST_OPT_SIZE, offsetof(struct mod_conf, size), "4096", 0, 0},
    {"timeout", ROOST_OPT_MSEC, offsetof(struct mod_conf, timeout), "0.25", 100,
     60000},
    {"dflt_only", ROOST_OPT_INT, offsetof(struct mod_conf, dflt_only), "-7", 0,
     0},
    {"name", ROOST_OPT_STR, offsetof(struct mod_conf, name), "anon", 0, 0},
    {"list", ROOST_OPT_STRLIST, offsetof(struct mod_conf, list), "p, q", 0, 0},
    {"unset", ROOST_OPT_STR, offsetof(struct mod_conf, unset), NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

static const char mod_text[] =
    "ping = { count = 5; timeout = 2.5; name = \"top\"; };\n" /* 1 */
    "hosts = (\n"                                             /* 2 */
    " { domain = \"a.example\";\n"                            /* 3 */
    "   ping = { count = 7; list = [ \"x\", \"y\" ]; flag = false;\n"
    "            size = 1048576; }; },\n"                         /* 5 */
    " { domain = \"b.example\"; },\n"                             /* 6 */
    " { domain = \"c.example\";\n"                                /* 7 */
    "   ping = {\n"                                               /* 8 */
    "     bogus = 1; }; },\n"                                     /* 9 */
    " { domain = \"d.example\"; ping = {\n"                       /* 10 */
    "     count = 101; }; },\n"                                   /* 11 */
    " { domain = \"e.example\"; ping = { timeout = 0.05; }; },\n" /* 12 */
    " { domain = \"f.example\"; ping = { name = 1; }; },\n"       /* 13 */
    " { domain = \"g.example\"; ping = { list = ( ); }; }\n"      /* 14 */
    ");\n";

START_TEST(test_module_opts)
{
    char *err = NULL, want[PATH_MAX + 64];
    roost_config_t *c = load(mod_text, &err);
    struct mod_conf mc;

    ck_assert_msg(c != NULL, "%s", err);
    /* host group wins, then the top-level group, then the defaults */
    memset(&mc, 0, sizeof(mc));
    ck_assert_int_eq(
        roost_config_module_opts(c, &c->hosts[0], "ping", mod_opts, &mc, &err),
        0);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(mc.flag, 0);
    ck_assert_int_eq(mc.count, 7);
    ck_assert_int_eq(mc.size, 1048576);
    ck_assert_int_eq(mc.timeout, 2500);
    ck_assert_int_eq(mc.dflt_only, -7);
    ck_assert_str_eq(mc.name, "top");
    ck_assert_str_eq(mc.list[0], "x");
    ck_assert_str_eq(mc.list[1], "y");
    ck_assert_ptr_null(mc.list[2]);
    ck_assert_ptr_null(mc.unset);

    memset(&mc, 0, sizeof(mc));
    ck_assert_int_eq(
        roost_config_module_opts(c, &c->hosts[1], "ping", mod_opts, &mc, &err),
        0);
    ck_assert_int_eq(mc.flag, 1);
    ck_assert_int_eq(mc.count, 5);
    ck_assert_int_eq(mc.size, 4096);
    ck_assert_int_eq(mc.timeout, 2500);
    ck_assert_str_eq(mc.name, "top");
    ck_assert_str_eq(mc.list[0], "p");
    ck_assert_str_eq(mc.list[1], "q");
    ck_assert_ptr_null(mc.list[2]);

    /* a module with no groups at all: pure defaults; no host */
    memset(&mc, 0, sizeof(mc));
    ck_assert_int_eq(
        roost_config_module_opts(c, NULL, "other", mod_opts, &mc, &err), 0);
    ck_assert_int_eq(mc.count, 3);
    ck_assert_int_eq(mc.timeout, 250);
    ck_assert_str_eq(mc.name, "anon");

    memset(&mc, 0, sizeof(mc));
    ck_assert_int_eq(
        roost_config_module_opts(c, &c->hosts[6], "ping", mod_opts, &mc, &err),
        0);
    ck_assert_ptr_null(mc.list[0]);

    /* errors, each with its line */
    {
        static const struct {
            int host, line;
            const char *substr;
        } bad[] = {
            {2, 9, "unknown option 'bogus' for module 'ping'"},
            {3, 11, "'count' must be between 1 and 100"},
            {4, 12, "'timeout' must be between 0.1 and 60 seconds"},
            {5, 13, "'name' must be a string"},
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            memset(&mc, 0, sizeof(mc));
            ck_assert_int_eq(roost_config_module_opts(c, &c->hosts[bad[i].host],
                                                      "ping", mod_opts, &mc,
                                                      &err),
                             -ROOST_ECONFIG);
            snprintf(want, sizeof(want), "%s:%d: %s", confpath, bad[i].line,
                     bad[i].substr);
            ck_assert_str_eq(err, want);
            roost_free(err);
        }
    }
    /* a module without options still rejects keys in its group */
    ck_assert_int_eq(
        roost_config_module_opts(c, &c->hosts[0], "ping", NULL, &mc, &err),
        -ROOST_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "unknown option 'count'"));
    roost_free(err);
    roost_config_free(c);
}
END_TEST

START_TEST(test_module_opts_top_errors)
{
    static const roost_opt_t bad_default[] = {
        {"n", ROOST_OPT_INT, 0, "ten", 0, 0}, {NULL, 0, 0, NULL, 0, 0}};
    char *err = NULL, want[PATH_MAX + 64];
    roost_config_t *c =
        load("ping = {\n oops = 1; };\nversion = 3;\n" HOST, &err);
    struct mod_conf mc;
    int64_t n;

    ck_assert_ptr_null(c); /* version = 3 is an unknown scalar */
    roost_free(err);
    c = load("ping = {\n oops = 1; };\n" HOST, &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(
        roost_config_module_opts(c, &c->hosts[0], "ping", mod_opts, &mc, &err),
        -ROOST_ECONFIG);
    snprintf(want, sizeof(want),
             "%s:2: unknown option 'oops' for module "
             "'ping'",
             confpath);
    ck_assert_str_eq(err, want);
    roost_free(err);
    /* a bad default is the module's bug: reported without a line */
    ck_assert_int_eq(
        roost_config_module_opts(c, &c->hosts[0], "x", bad_default, &n, &err),
        -ROOST_ECONFIG);
    snprintf(want, sizeof(want), "%s: module 'x': bad default 'ten' for 'n'",
             confpath);
    ck_assert_str_eq(err, want);
    roost_free(err);
    /* core section names are not module groups */
    ck_assert_int_eq(roost_config_module_opts(c, &c->hosts[0], "limits",
                                              mod_opts, &mc, &err),
                     0);
    roost_config_free(c);
}
END_TEST

typedef struct {
    roost_opt_type_t type;
    const char *text;
    int64_t min, max;
    int rc;
    int64_t want; /* for BOOL and the integer types */
} parse_case_t;

static const parse_case_t parses[] = {
    {ROOST_OPT_BOOL, "true", 0, 0, 0, 1},
    {ROOST_OPT_BOOL, "false", 0, 0, 0, 0},
    {ROOST_OPT_BOOL, NULL, 0, 0, 0, 0},
    {ROOST_OPT_BOOL, "yes", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_BOOL, "TRUE", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_BOOL, "", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_INT, "42", 0, 0, 0, 42},
    {ROOST_OPT_INT, "-5", 0, 0, 0, -5},
    {ROOST_OPT_INT, "9223372036854775807", 0, 0, 0, INT64_MAX},
    {ROOST_OPT_INT, "9223372036854775808", 0, 0, -ROOST_ELIMIT, 0},
    {ROOST_OPT_INT, "4", 1, 4, 0, 4},
    {ROOST_OPT_INT, "5", 1, 4, -ROOST_ELIMIT, 0},
    {ROOST_OPT_INT, "0", 1, 4, -ROOST_ELIMIT, 0},
    {ROOST_OPT_INT, NULL, 1, 4, 0, 0},
    {ROOST_OPT_INT, "", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_INT, "-", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_INT, "4x", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_INT, " 4", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_INT, "+4", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_INT, "0x10", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_INT, "1.5", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_SIZE, "1048576", 0, 0, 0, 1048576},
    {ROOST_OPT_SIZE, "0", 0, 0, 0, 0},
    {ROOST_OPT_SIZE, "-1", 0, 0, -ROOST_ELIMIT, 0},
    {ROOST_OPT_SIZE, "1k", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_SIZE, "1023", 1024, 2048, -ROOST_ELIMIT, 0},
    {ROOST_OPT_MSEC, "300", 0, 0, 0, 300000},
    {ROOST_OPT_MSEC, "0.5", 0, 0, 0, 500},
    {ROOST_OPT_MSEC, "0.0015", 0, 0, 0, 2},
    {ROOST_OPT_MSEC, "0.0004", 0, 0, 0, 0},
    {ROOST_OPT_MSEC, "0.0004", 1, 10, -ROOST_ELIMIT, 0},
    {ROOST_OPT_MSEC, "10", 1, 10000, 0, 10000},
    {ROOST_OPT_MSEC, "10.001", 1, 10000, -ROOST_ELIMIT, 0},
    {ROOST_OPT_MSEC, "-1", 0, 0, -ROOST_ELIMIT, 0},
    {ROOST_OPT_MSEC, "99999999999999999999", 0, 0, -ROOST_ELIMIT, 0},
    {ROOST_OPT_MSEC, ".5", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_MSEC, "5.", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_MSEC, "1e3", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_MSEC, "inf", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_MSEC, "nan", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_MSEC, "5s", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_MSEC, "", 0, 0, -ROOST_EINVAL, 0},
    {ROOST_OPT_MSEC, NULL, 0, 0, 0, 0},
};

START_TEST(test_parse_opt)
{
    const parse_case_t *p = &parses[_i];
    roost_opt_t o = {"x", p->type, 0, NULL, p->min, p->max};
    union {
        int b;
        int64_t i;
    } v;
    int rc;

    memset(&v, 0x5a, sizeof(v));
    rc = roost_config_parse_opt(&o, p->text, &v);
    ck_assert_msg(rc == p->rc, "case %d (\"%s\"): rc %d", _i,
                  p->text ? p->text : "(null)", rc);
    if (rc != 0) {
        /* untouched */
        ck_assert_int_eq(v.i, 0x5a5a5a5a5a5a5a5a);
    } else if (p->type == ROOST_OPT_BOOL) {
        ck_assert_int_eq(v.b, p->want);
    } else {
        ck_assert_int_eq(v.i, p->want);
    }
}
END_TEST

START_TEST(test_parse_opt_strings)
{
    roost_opt_t s = {"s", ROOST_OPT_STR, 0, NULL, 0, 0};
    roost_opt_t l = {"l", ROOST_OPT_STRLIST, 0, NULL, 0, 0};
    static const struct {
        const char *text;
        const char *items[4];
    } lists[] = {
        {"a", {"a", NULL}},
        {"a, b  c", {"a", "b", "c", NULL}},
        {" ,a,,\tb ,", {"a", "b", NULL}},
        {"", {NULL}},
        {" , ", {NULL}},
    };
    const char *str = "x", *text = "hello";
    char **arr;

    ck_assert_int_eq(roost_config_parse_opt(&s, text, &str), 0);
    ck_assert_ptr_eq(str, text); /* borrowed, not copied */
    ck_assert_int_eq(roost_config_parse_opt(&s, NULL, &str), 0);
    ck_assert_ptr_null(str);
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        size_t k;

        ck_assert_int_eq(roost_config_parse_opt(&l, lists[i].text, &arr), 0);
        for (k = 0; lists[i].items[k]; k++)
            ck_assert_str_eq(arr[k], lists[i].items[k]);
        ck_assert_ptr_null(arr[k]);
        roost_free(arr);
    }
    arr = (char **)&str;
    ck_assert_int_eq(roost_config_parse_opt(&l, NULL, &arr), 0);
    ck_assert_ptr_null(arr);
}
END_TEST

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("sample");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sample);
    tcase_add_test(tc, test_minimal_equals_sample);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_errors, 0, NELEM(errors));
    tcase_add_test(tc, test_file_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("paths");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_paths);
    suite_add_tcase(s, tc);
    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_values);
    suite_add_tcase(s, tc);
    tc = tcase_create("module_opts");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_module_opts);
    tcase_add_test(tc, test_module_opts_top_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("parse_opt");
    tcase_add_loop_test(tc, test_parse_opt, 0, NELEM(parses));
    tcase_add_test(tc, test_parse_opt_strings);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
