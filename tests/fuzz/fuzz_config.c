/* tests/fuzz/fuzz_config.c: libFuzzer target for the configuration reader
 * (core/config.c over libconfig).
 *
 * The input is the text of a config file, loaded with
 * roost_config_load_text() as /nonexistent/roost.conf (no file is read and
 * no directory made; inputs with @include are skipped, since an include
 * reads a file).  A loaded config must be consistent (hosts with prepared
 * domains, absolute paths, limits in their ranges, listeners) and is then
 * asked for the options of a module declaring one option of every type,
 * on every host and at top level, under two module names; the option text
 * forms are fed to roost_config_parse_opt() as well.  A failure must come
 * with a "file:line: message" error naming the file.  Anything else
 * aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATH "/nonexistent/roost.conf"

struct fuzz_conf {
    int b;
    int64_t i, sz, ms;
    const char *s;
    char **list;
};

static const roost_opt_t opts[] = {
    {"b", ROOST_OPT_BOOL, offsetof(struct fuzz_conf, b), "false", 0, 0},
    {"i", ROOST_OPT_INT, offsetof(struct fuzz_conf, i), "-5", -10, 1000},
    {"sz", ROOST_OPT_SIZE, offsetof(struct fuzz_conf, sz), "1024", 0, 0},
    {"ms", ROOST_OPT_MSEC, offsetof(struct fuzz_conf, ms), "0.5", 1, 60000},
    {"s", ROOST_OPT_STR, offsetof(struct fuzz_conf, s), NULL, 0, 0},
    {"list", ROOST_OPT_STRLIST, offsetof(struct fuzz_conf, list), "a, b", 0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

static void
fuzz_check(int ok)
{
    if (!ok)
        abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    roost_log_level = ROOST_LOG_ERROR;
    return 0;
}

static void
fuzz_error_ok(const char *err)
{
    fuzz_check(err != NULL);
    fuzz_check(strncmp(err, PATH, strlen(PATH)) == 0);
    fuzz_check(err[strlen(PATH)] == ':');
}

static void
fuzz_module(roost_config_t *c, const roost_host_conf_t *h, const char *name)
{
    struct fuzz_conf fc;
    char *err = NULL;

    memset(&fc, 0, sizeof(fc));
    if (roost_config_module_opts(c, h, name, opts, &fc, &err) != 0) {
        fuzz_error_ok(err);
        roost_free(err);
        return;
    }
    fuzz_check(err == NULL);
    fuzz_check(fc.b == 0 || fc.b == 1);
    fuzz_check(fc.i >= -10 && fc.i <= 1000);
    fuzz_check(fc.sz >= 0);
    fuzz_check(fc.ms >= 1 && fc.ms <= 60000);
    fuzz_check(fc.list != NULL);
    for (char **p = fc.list; *p != NULL; p++)
        fuzz_check(strlen(*p) < 1 << 24);
}

static void
fuzz_loaded(roost_config_t *c)
{
    fuzz_check(c->nhosts >= 1 && c->hosts != NULL);
    fuzz_check(c->nlisten >= 1 && c->listen != NULL);
    fuzz_check(c->data_dir != NULL && c->data_dir[0] == '/');
    fuzz_check(c->modules_dir != NULL && c->modules_dir[0] == '/');
    fuzz_check(c->storage_path != NULL && c->storage_path[0] == '/');
    fuzz_check(c->log_level >= 0 && c->log_level <= 3);
    fuzz_check(c->max_stanza_size >= 1024);
    fuzz_check(c->max_depth >= 1 && c->max_depth <= 1000);
    fuzz_check(c->max_attrs >= 1 && c->max_attrs <= 10000);
    fuzz_check(c->auth_timeout >= 1 && c->c2s_timeout >= 1);
    for (int i = 0; i < c->nlisten; i++)
        fuzz_check(c->listen[i].address != NULL && c->listen[i].port >= 1 &&
                   c->listen[i].port <= 65535);
    for (int i = 0; i < c->nhosts; i++) {
        const roost_host_conf_t *h = &c->hosts[i];

        fuzz_check(h->domain != NULL && *h->domain != '\0');
        fuzz_check(h->cert != NULL && h->cert[0] == '/');
        fuzz_check(h->key != NULL && h->key[0] == '/');
        fuzz_check(h->modules != NULL && h->admins != NULL);
        fuzz_check(roost_config_host(c, h->domain) == h);
        fuzz_module(c, h, "fuzzmod");
        fuzz_module(c, h, "limits");
    }
    fuzz_module(c, NULL, "fuzzmod");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    roost_config_t *c;
    char *err = NULL, *line;

    if (memmem(data, size, "@include", 8) != NULL)
        return 0;
    c = roost_config_load_text(PATH, text, size, &err);
    if (c == NULL) {
        fuzz_error_ok(err);
        roost_free(err);
    } else {
        fuzz_check(err == NULL);
        fuzz_loaded(c);
        roost_config_free(c);
    }
    /* The first line as an option value of every type. */
    line = roost_xmalloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';
    line[strcspn(line, "\n")] = '\0';
    for (const roost_opt_t *o = opts; o->name != NULL; o++) {
        union {
            int b;
            int64_t v;
            const char *s;
            char **list;
        } dst;
        int rc;

        memset(&dst, 0, sizeof(dst));
        rc = roost_config_parse_opt(o, line, &dst);
        fuzz_check(rc == 0 || rc == -ROOST_EINVAL || rc == -ROOST_ELIMIT);
        if (rc == 0 && o->type == ROOST_OPT_STRLIST)
            roost_free(dst.list);
        if (rc == 0 && o->type == ROOST_OPT_MSEC)
            fuzz_check(dst.v >= o->min && dst.v <= o->max);
    }
    roost_free(line);
    return 0;
}
