/* core/module.c: loading modules and the module API (roost/module.h).
 *
 * A module is a .so exporting roost_module_<name>; it is dlopen()ed once
 * (RTLD_NOW|RTLD_LOCAL, HOUSE 1), its ABI checked, and instantiated once
 * per vhost that lists it: options filled from config, then load().  All
 * that an instance registers (hooks, IQ handlers, features, identities,
 * stream features, timers, stores) is recorded with its owner and removed
 * by the core on unload.  Not here: routing (router.c), sessions
 * (server.c, conn.c). */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include <event2/event.h>

#include <roost/roster.h>

#include "log.h"
#include "server.h"
#include "sm.h"
#include "storage.h"
#include "worker.h"

typedef struct mod_so {
    char *name;
    void *dl;
    const roost_module_t *def;
    struct mod_so *next;
} mod_so_t;

typedef struct mod_timer {
    int id;
    roost_mod_t *mod;
    struct event *ev;
    void (*fn)(roost_mod_t *, void *);
    void *arg;
    struct mod_timer *next;
} mod_timer_t;

typedef struct mod_store {
    roost_store_t *st;
    struct mod_store *next;
} mod_store_t;

struct roost_mod {
    const roost_module_t *def;
    roost_host_t *host;
    void *conf;
    void *data;
    int index; /* slot index in sessions */
    int next_timer;
    mod_timer_t *timers;
    mod_store_t *stores;
    char tag[128]; /* "host/module" for logs */
};

static mod_so_t *loaded_sos;
static const roost_opt_t no_opts[] = {{NULL, 0, 0, NULL, 0, 0}};

static const roost_module_t *
module_find(const char *name, char **err)
{
    char path[4096], sym[128];
    mod_so_t *so;
    void *dl;
    const roost_module_t *def;

    for (so = loaded_sos; so != NULL; so = so->next)
        if (strcmp(so->name, name) == 0)
            return so->def;
    if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name) ||
        strlen(name) > 64) {
        *err = roost_xstrdup("invalid module name");
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/mod_%s.so", roost_srv->cfg->modules_dir,
             name);
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *e = dlerror();

        *err = roost_xmalloc(strlen(path) + strlen(e ? e : "") + 64);
        sprintf(*err, "cannot load module %s: %s", name, e ? e : "?");
        return NULL;
    }
    snprintf(sym, sizeof(sym), "roost_module_%s", name);
    def = dlsym(dl, sym);
    if (def == NULL || def->abi != ROOST_ABI || def->name == NULL ||
        strcmp(def->name, name) != 0) {
        *err = roost_xmalloc(256);
        snprintf(*err, 256, "module %s: %s", name,
                 def == NULL             ? "no roost_module_ symbol"
                 : def->abi != ROOST_ABI ? "ABI version mismatch (rebuild "
                                           "it against this server)"
                                         : "name mismatch");
        dlclose(dl);
        return NULL;
    }
    so = roost_xcalloc(1, sizeof(*so));
    so->name = roost_xstrdup(name);
    so->dl = dl;
    so->def = def;
    so->next = loaded_sos;
    loaded_sos = so;
    return def;
}

static int
host_has_module(roost_host_t *h, const char *name)
{
    for (int i = 0; i < h->nmods; i++)
        if (strcmp(h->mods[i]->def->name, name) == 0)
            return 1;
    return 0;
}

int
roost_modules_load_host(roost_host_t *h, char **err)
{
    char *const *names = h->conf->modules;
    int n = 0;

    while (names != NULL && names[n] != NULL)
        n++;
    h->mods = roost_xcalloc((size_t)n + 1, sizeof(*h->mods));
    for (int i = 0; i < n; i++) {
        const roost_module_t *def = module_find(names[i], err);
        roost_mod_t *m;
        int rc;

        if (def == NULL)
            return -ROOST_ECONFIG;
        if (host_has_module(h, def->name))
            continue;
        for (const char *const *d = def->depends; d != NULL && *d; d++) {
            int listed = 0;

            for (int k = 0; k < n; k++)
                listed |= strcmp(names[k], *d) == 0;
            if (!listed) {
                *err = roost_xmalloc(256);
                snprintf(*err, 256, "host %s: module %s needs module %s",
                         h->name, def->name, *d);
                return -ROOST_ECONFIG;
            }
        }
        m = roost_xcalloc(1, sizeof(*m));
        m->def = def;
        m->host = h;
        m->index = h->nmods;
        snprintf(m->tag, sizeof(m->tag), "%s/%s", h->name, def->name);
        m->conf = roost_xcalloc(1, def->conf_size ? def->conf_size : 1);
        /* Always, so that a module without options still gets "unknown
         * key" errors for a stray group of its name. */
        if (roost_config_module_opts(roost_srv->cfg, h->conf, def->name,
                                     def->opts ? def->opts : no_opts, m->conf,
                                     err) != 0) {
            roost_free(m->conf);
            roost_free(m);
            return -ROOST_ECONFIG;
        }
        h->mods[h->nmods++] = m;
        rc = def->load != NULL ? def->load(m) : 0;
        if (rc != 0) {
            *err = roost_xmalloc(256);
            snprintf(*err, 256, "host %s: module %s failed to load: %s",
                     h->name, def->name, roost_strerror(rc));
            return rc;
        }
        ROOST_LOG(ROOST_LOG_DEBUG, m->tag, "loaded");
    }
    return 0;
}

static void
reg_remove(roost_reg_entry_t **list, roost_mod_t *m)
{
    roost_reg_entry_t **pp = list, *e;

    while ((e = *pp) != NULL) {
        if (e->mod == m) {
            *pp = e->next;
            roost_free(e->a);
            roost_free(e->b);
            roost_free(e->c);
            roost_stanza_unref(e->el);
            roost_free(e);
        } else {
            pp = &e->next;
        }
    }
}

/* Account discovery (roost_add_account_feature): the features and
 * identities the server reports for a local account's bare JID.  One list
 * for every host (an entry's module knows its host), so this registry
 * needs no field in roost_host_t; module_unload drops a module's entries.
 * An entry with b == NULL is a feature (a), else an identity (a/b/c). */
static roost_reg_entry_t *account_reg;

static void
account_reg_add(roost_mod_t *m, const char *a, const char *b, const char *c)
{
    roost_reg_entry_t **pp = &account_reg, *e;

    for (; *pp != NULL; pp = &(*pp)->next)
        if (b == NULL && (*pp)->mod == m && (*pp)->b == NULL &&
            strcmp((*pp)->a, a) == 0)
            return; /* a feature once per module, as roost_add_feature */
    e = roost_xcalloc(1, sizeof(*e)); /* freed by reg_remove */
    e->a = roost_xstrdup(a);
    e->b = b != NULL ? roost_xstrdup(b) : NULL;
    e->c = c != NULL ? roost_xstrdup(c) : NULL;
    e->mod = m;
    *pp = e;
}

void
roost_add_account_feature(roost_mod_t *m, const char *xmlns)
{
    if (xmlns != NULL)
        account_reg_add(m, xmlns, NULL, NULL);
}

void
roost_add_account_identity(roost_mod_t *m, const char *category,
                           const char *type, const char *name)
{
    if (category != NULL && type != NULL)
        account_reg_add(m, category, type, name);
}

void
roost_host_account_features(roost_mod_t *m, void (*fn)(void *, const char *),
                            void *arg)
{
    for (roost_reg_entry_t *e = account_reg; e != NULL; e = e->next)
        if (e->mod->host == m->host && e->b == NULL)
            fn(arg, e->a);
}

void
roost_host_account_identities(roost_mod_t *m,
                              void (*fn)(void *, const char *, const char *,
                                         const char *),
                              void *arg)
{
    for (roost_reg_entry_t *e = account_reg; e != NULL; e = e->next)
        if (e->mod->host == m->host && e->b != NULL)
            fn(arg, e->a, e->b, e->c);
}

static void
module_unload(roost_mod_t *m)
{
    roost_host_t *h = m->host;
    roost_iq_entry_t *iq, *tmp;

    /* Pending storage work may still call back into the module. */
    roost_worker_drain();
    for (int ev = 0; ev < ROOST_EV__COUNT; ev++) {
        roost_hook_entry_t **pp = &h->hooks[ev], *e;

        while ((e = *pp) != NULL) {
            if (e->mod == m) {
                *pp = e->next;
                roost_free(e);
            } else {
                pp = &e->next;
            }
        }
    }
    HASH_ITER (hh, h->iqs, iq, tmp) {
        if (iq->mod == m) {
            HASH_DEL(h->iqs, iq);
            roost_free(iq->key);
            roost_free(iq);
        }
    }
    roost_users_drop_module(h, m);
    reg_remove(&h->features, m);
    reg_remove(&h->identities, m);
    reg_remove(&h->stream_features, m);
    reg_remove(&h->preauth_features, m);
    reg_remove(&account_reg, m);
    HASH_ITER (hh, h->preauth_iqs, iq, tmp) {
        if (iq->mod == m) {
            HASH_DEL(h->preauth_iqs, iq);
            roost_free(iq->key);
            roost_free(iq);
        }
    }
    HASH_ITER (hh, h->nonzas, iq, tmp) {
        if (iq->mod == m) {
            HASH_DEL(h->nonzas, iq);
            roost_free(iq->key);
            roost_free(iq);
        }
    }
    while (m->timers != NULL) {
        mod_timer_t *t = m->timers;

        m->timers = t->next;
        event_free(t->ev);
        roost_free(t);
    }
    if (m->def->unload != NULL)
        m->def->unload(m);
    while (m->stores != NULL) {
        mod_store_t *s = m->stores;

        m->stores = s->next;
        roost_store_close(s->st);
        roost_free(s);
    }
    roost_free(m->conf);
    ROOST_LOG(ROOST_LOG_DEBUG, m->tag, "unloaded");
    roost_free(m);
}

void
roost_modules_unload_host(roost_host_t *h)
{
    for (int i = h->nmods - 1; i >= 0; i--)
        module_unload(h->mods[i]);
    roost_free(h->mods);
    h->mods = NULL;
    h->nmods = 0;
}

void
roost_modules_shutdown(void)
{
    while (loaded_sos != NULL) {
        mod_so_t *so = loaded_sos;

        loaded_sos = so->next;
        /* Keep the code mapped under ASan so leak reports can symbolize;
         * dlclose is still correct, but it buys nothing at exit. */
        roost_free(so->name);
        roost_free(so);
    }
}

/* The events being dispatched by roost_hooks_run_r and
 * roost_hooks_deliver_r, innermost first (a handler may route a stanza,
 * which runs hooks again): where roost_event_replace finds the event it
 * is given.  The frames live on the stacks of those two; loop thread
 * only. */
typedef struct hooks_frame {
    roost_ev_t e;
    roost_stanza_t **cur; /* the caller's reference, swapped on replace */
    struct hooks_frame *up;
} hooks_frame_t;

static hooks_frame_t *hooks_top;

static int
attr_same(const roost_stanza_t *a, const roost_stanza_t *b, const char *name)
{
    const char *x = roost_stanza_attr(a, name), *y = roost_stanza_attr(b, name);

    return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

int
roost_event_replace(const roost_ev_t *ev, roost_stanza_t *st)
{
    hooks_frame_t *f;

    for (f = hooks_top; f != NULL && &f->e != ev; f = f->up)
        ;
    /* The router classified the stanza by these: a replacement keeps
     * them, or routing would not match what the hooks decided on. */
    if (f == NULL || st == NULL || f->e.stanza == NULL ||
        roost_stanza_kind(st) != roost_stanza_kind(f->e.stanza) ||
        !attr_same(st, f->e.stanza, "from") ||
        !attr_same(st, f->e.stanza, "to") ||
        !attr_same(st, f->e.stanza, "type"))
        return -ROOST_EINVAL;
    roost_stanza_ref(st);
    roost_stanza_unref(*f->cur);
    *f->cur = st;
    f->e.stanza = st;
    return 0;
}

roost_verdict_t
roost_hooks_run_r(roost_host_t *h, roost_event_t ev, roost_session_t *origin,
                  roost_stanza_t **st, const roost_jid_t *from,
                  const roost_jid_t *to)
{
    hooks_frame_t f = {
        .e = {.origin = origin, .stanza = *st, .from = from, .to = to},
        .cur = st,
        .up = hooks_top};
    roost_verdict_t v = ROOST_PASS;

    hooks_top = &f;
    for (roost_hook_entry_t *k = h->hooks[ev]; k != NULL; k = k->next) {
        f.e.mod = k->mod;
        if (k->fn(&f.e, k->arg) == ROOST_HANDLED ||
            (origin != NULL && origin->closing && ev == ROOST_EV_PRE_STANZA)) {
            v = ROOST_HANDLED;
            break;
        }
    }
    hooks_top = f.up;
    return v;
}

roost_verdict_t
roost_hooks_run(roost_host_t *h, roost_event_t ev, roost_session_t *origin,
                roost_stanza_t *st, const roost_jid_t *from,
                const roost_jid_t *to)
{
    roost_stanza_t *cur = st != NULL ? roost_stanza_ref(st) : NULL;
    roost_verdict_t v = roost_hooks_run_r(h, ev, origin, &cur, from, to);

    roost_stanza_unref(cur);
    return v;
}

roost_verdict_t
roost_hooks_deliver_r(roost_session_t *s, roost_stanza_t **st)
{
    roost_hook_entry_t *k = s->host->hooks[ROOST_EV_DELIVER];
    const char *from_s;
    roost_jid_t *from;
    hooks_frame_t f;
    roost_verdict_t v = ROOST_PASS;

    if (k == NULL)
        return ROOST_PASS; /* the common case costs one load */
    from_s = roost_stanza_attr(*st, "from");
    from = from_s != NULL ? roost_jid_new(from_s) : NULL;
    /* A frame as in roost_hooks_run_r: a hook may substitute the stanza
     * this session gets (roost_event_replace). */
    memset(&f, 0, sizeof(f));
    f.e.stanza = *st;
    f.e.from = from;
    f.e.to = s->jid;
    f.e.session = s;
    f.cur = st;
    f.up = hooks_top;
    hooks_top = &f;
    for (; k != NULL && !s->closing; k = k->next) {
        f.e.mod = k->mod;
        if (k->fn(&f.e, k->arg) == ROOST_HANDLED) {
            v = ROOST_HANDLED;
            break;
        }
    }
    hooks_top = f.up;
    roost_jid_free(from);
    return v;
}

static roost_iq_entry_t *
iq_table_find(roost_iq_entry_t *table, const char *xmlns, const char *child)
{
    char key[1024];
    roost_iq_entry_t *e;

    if (snprintf(key, sizeof(key), "%s %s", xmlns, child) >= (int)sizeof(key))
        return NULL;
    HASH_FIND_STR(table, key, e);
    return e;
}

roost_iq_entry_t *
roost_iq_find(roost_host_t *h, const char *xmlns, const char *child)
{
    return iq_table_find(h->iqs, xmlns, child);
}

roost_iq_entry_t *
roost_preauth_iq_find(roost_host_t *h, const char *xmlns, const char *child)
{
    return iq_table_find(h->preauth_iqs, xmlns, child);
}

roost_iq_entry_t *
roost_nonza_find(roost_host_t *h, const char *xmlns, const char *name)
{
    return iq_table_find(h->nonzas, xmlns, name);
}

void
roost_modules_stream_features(roost_host_t *h, roost_stanza_t *el)
{
    for (roost_reg_entry_t *e = h->stream_features; e != NULL; e = e->next)
        roost_stanza_add_copy(el, e->el);
}

void
roost_modules_preauth_features(roost_host_t *h, roost_stanza_t *el)
{
    for (roost_reg_entry_t *e = h->preauth_features; e != NULL; e = e->next)
        roost_stanza_add_copy(el, e->el);
}

/* --- the public API --- */

int
roost_hook(roost_mod_t *m, roost_event_t ev, int prio, roost_handler_fn fn,
           void *arg)
{
    roost_hook_entry_t **pp, *e;

    if ((int)ev < 0 || ev >= ROOST_EV__COUNT || fn == NULL)
        return -ROOST_EINVAL;
    e = roost_xcalloc(1, sizeof(*e));
    e->prio = prio;
    e->fn = fn;
    e->arg = arg;
    e->mod = m;
    /* Higher priority first; equal priorities keep registration order. */
    for (pp = &m->host->hooks[ev]; *pp != NULL && (*pp)->prio >= prio;
         pp = &(*pp)->next)
        ;
    e->next = *pp;
    *pp = e;
    return 0;
}

static int
iq_register(roost_mod_t *m, roost_iq_entry_t **table, const char *xmlns,
            const char *child, roost_handler_fn get, roost_handler_fn set,
            void *arg)
{
    roost_iq_entry_t *e;
    size_t len;

    if (xmlns == NULL || child == NULL || (get == NULL && set == NULL))
        return -ROOST_EINVAL;
    len = strlen(xmlns) + strlen(child) + 2;
    if (len > 1024)
        return -ROOST_EINVAL;
    e = iq_table_find(*table, xmlns, child);
    if (e != NULL) {
        /* Get and set may be registered separately, by the same module. */
        if ((get != NULL && e->get != NULL) ||
            (set != NULL && e->set != NULL) || e->mod != m || e->arg != arg)
            return -ROOST_EEXIST;
        if (get != NULL)
            e->get = get;
        if (set != NULL)
            e->set = set;
        return 0;
    }
    e = roost_xcalloc(1, sizeof(*e));
    e->key = roost_xmalloc(len);
    snprintf(e->key, len, "%s %s", xmlns, child);
    e->get = get;
    e->set = set;
    e->arg = arg;
    e->mod = m;
    HASH_ADD_KEYPTR(hh, *table, e->key, strlen(e->key), e);
    return 0;
}

int
roost_hook_iq(roost_mod_t *m, const char *xmlns, const char *child,
              roost_handler_fn get, roost_handler_fn set, void *arg)
{
    return iq_register(m, &m->host->iqs, xmlns, child, get, set, arg);
}

int
roost_hook_preauth_iq(roost_mod_t *m, const char *xmlns, const char *child,
                      roost_handler_fn get, roost_handler_fn set, void *arg)
{
    return iq_register(m, &m->host->preauth_iqs, xmlns, child, get, set, arg);
}

int
roost_hook_nonza(roost_mod_t *m, const char *xmlns, const char *name,
                 roost_handler_fn fn, void *arg)
{
    if (fn == NULL || roost_nonza_find(m->host, xmlns, name) != NULL)
        return fn == NULL ? -ROOST_EINVAL : -ROOST_EEXIST;
    return iq_register(m, &m->host->nonzas, xmlns, name, fn, NULL, arg);
}

static void
reg_append(roost_reg_entry_t **list, roost_reg_entry_t *n)
{
    while (*list != NULL)
        list = &(*list)->next;
    *list = n;
}

void
roost_add_feature(roost_mod_t *m, const char *xmlns)
{
    roost_reg_entry_t *e;

    for (e = m->host->features; e != NULL; e = e->next)
        if (e->mod == m && strcmp(e->a, xmlns) == 0)
            return;
    e = roost_xcalloc(1, sizeof(*e));
    e->a = roost_xstrdup(xmlns);
    e->mod = m;
    reg_append(&m->host->features, e);
}

void
roost_add_identity(roost_mod_t *m, const char *category, const char *type,
                   const char *name)
{
    roost_reg_entry_t *e = roost_xcalloc(1, sizeof(*e));

    e->a = roost_xstrdup(category);
    e->b = roost_xstrdup(type);
    e->c = name != NULL ? roost_xstrdup(name) : NULL;
    e->mod = m;
    reg_append(&m->host->identities, e);
}

void
roost_add_stream_feature(roost_mod_t *m, const roost_stanza_t *el)
{
    roost_reg_entry_t *e = roost_xcalloc(1, sizeof(*e));

    e->el = roost_stanza_copy(el);
    e->mod = m;
    reg_append(&m->host->stream_features, e);
}

void
roost_add_preauth_stream_feature(roost_mod_t *m, const roost_stanza_t *el)
{
    roost_reg_entry_t *e = roost_xcalloc(1, sizeof(*e));

    e->el = roost_stanza_copy(el);
    e->mod = m;
    reg_append(&m->host->preauth_features, e);
}

void
roost_host_features(roost_mod_t *m, void (*fn)(void *, const char *), void *arg)
{
    for (roost_reg_entry_t *e = m->host->features; e != NULL; e = e->next)
        fn(arg, e->a);
}

void
roost_host_identities(roost_mod_t *m,
                      void (*fn)(void *, const char *, const char *,
                                 const char *),
                      void *arg)
{
    for (roost_reg_entry_t *e = m->host->identities; e != NULL; e = e->next)
        fn(arg, e->a, e->b, e->c);
}

const char *
roost_session_addr(const roost_session_t *s)
{
    return s->addr;
}

int
roost_host_is_admin(roost_mod_t *m, const roost_jid_t *jid)
{
    char *const *a = m->host->conf->admins;

    for (; jid != NULL && a != NULL && *a != NULL; a++)
        if (strcmp(*a, roost_jid_bare(jid)) == 0)
            return 1;
    return 0;
}

int
roost_host_online_count(roost_mod_t *m)
{
    return m->host->online;
}

int
roost_host_online_users(roost_mod_t *m, int (*fn)(void *arg, const char *node),
                        void *arg)
{
    roost_user_t *u, *tmp;
    int n = 0;

    HASH_ITER (hh, m->host->users, u, tmp) {
        if (u->count == 0)
            continue;
        n++;
        if (fn(arg, u->node) != 0)
            break;
    }
    return n;
}

int
roost_mod_index(const roost_mod_t *m)
{
    return m->index;
}

void
roost_session_set_roster_requested(roost_session_t *s)
{
    if (s != NULL)
        s->roster_requested = 1;
}

int
roost_session_roster_requested(const roost_session_t *s)
{
    return s->roster_requested;
}

const void *
roost_mod_conf(const roost_mod_t *m)
{
    return m->conf;
}

void **
roost_mod_data(roost_mod_t *m)
{
    return &m->data;
}

const char *
roost_mod_host(const roost_mod_t *m)
{
    return m->host->name;
}

const char *
roost_mod_name(const roost_mod_t *m)
{
    return m->def->name;
}

int
roost_send(roost_mod_t *m, roost_stanza_t *st)
{
    if (roost_stanza_attr(st, "from") == NULL)
        roost_stanza_set_attr(st, "from", m->host->name);
    if (roost_stanza_attr(st, "to") == NULL)
        return -ROOST_EINVAL;
    if (m->host->hooks[ROOST_EV_OUTBOUND] != NULL) {
        /* On behalf of a local account of this vhost: its own filters
         * decide before the stanza goes anywhere (other vhosts too). */
        roost_jid_t *from = roost_jid_new(roost_stanza_attr(st, "from"));
        roost_jid_t *to = roost_jid_new(roost_stanza_attr(st, "to"));
        roost_user_t *u =
            from != NULL && roost_jid_node(from) != NULL &&
                    strcmp(roost_jid_domain(from), m->host->name) == 0
                ? roost_server_find_user(m->host, roost_jid_node(from))
                : NULL;
        /* A hook may substitute the stanza (roost_event_replace): what
         * is routed is then the substitute. */
        roost_stanza_t *cur = roost_stanza_ref(st);
        int drop = u != NULL && u->loaded && to != NULL &&
                   roost_hooks_run_r(m->host, ROOST_EV_OUTBOUND, NULL, &cur,
                                     from, to) == ROOST_HANDLED;

        roost_jid_free(from);
        roost_jid_free(to);
        if (!drop)
            roost_router_route(m->host, NULL, cur);
        roost_stanza_unref(cur);
        return 0;
    }
    roost_router_route(m->host, NULL, st);
    return 0;
}

roost_verdict_t
roost_bounce(const roost_ev_t *ev, roost_stanza_err_t cond, const char *text)
{
    roost_router_bounce(ev->mod->host, ev->stanza, cond, text);
    return ROOST_HANDLED;
}

roost_verdict_t
roost_reply(const roost_ev_t *ev, const roost_stanza_t *payload)
{
    roost_stanza_t *r = roost_stanza_reply(ev->stanza);

    if (payload != NULL)
        roost_stanza_add_copy(r, payload);
    if (roost_stanza_attr(r, "from") == NULL)
        roost_stanza_set_attr(r, "from", ev->mod->host->name);
    roost_router_route(ev->mod->host, NULL, r);
    roost_stanza_unref(r);
    return ROOST_HANDLED;
}

int
roost_user_sessions(roost_mod_t *m, const char *node, roost_session_t **out,
                    int max)
{
    roost_user_t *u = roost_server_find_user(m->host, node);
    int n = 0;

    if (u == NULL)
        return 0;
    for (roost_session_t *s = u->sessions; s != NULL; s = s->next_of_user) {
        if (n < max)
            out[n] = s;
        n++;
    }
    return n;
}

roost_session_t *
roost_session_find(roost_mod_t *m, const roost_jid_t *full)
{
    roost_host_t *h = roost_server_host(roost_jid_domain(full));

    if (h == NULL || roost_jid_resource(full) == NULL)
        return NULL;
    return roost_server_find_session(h, roost_jid_full(full));
}

const roost_jid_t *
roost_session_jid(const roost_session_t *s)
{
    return s->jid;
}

int
roost_session_available(const roost_session_t *s)
{
    return s->available;
}

int
roost_session_hibernating(const roost_session_t *s)
{
    return s->hibernating;
}

int
roost_session_priority(const roost_session_t *s)
{
    return s->priority;
}

void
roost_session_set_presence(roost_session_t *s, int available, int priority)
{
    s->available = available != 0;
    s->priority = priority;
}

int
roost_session_deliver(roost_session_t *s, roost_stanza_t *st)
{
    if (s->closing)
        return -ROOST_ENOTFOUND;
    return roost_conn_send(s, st);
}

void **
roost_session_slot(roost_session_t *s, const roost_mod_t *m)
{
    if (s->slots == NULL || m->index >= s->nslots) {
        int n = s->host != NULL ? s->host->nmods : 0;

        if (n <= m->index)
            n = m->index + 1;
        s->slots = roost_xrealloc(s->slots, (size_t)n * sizeof(void *));
        for (int i = s->nslots; i < n; i++)
            s->slots[i] = NULL;
        s->nslots = n;
    }
    return &s->slots[m->index];
}

void
roost_session_close(roost_session_t *s, const char *cond)
{
    roost_conn_close(s, cond, NULL);
}

static void
timer_fire(evutil_socket_t fd, short what, void *arg)
{
    mod_timer_t *t = arg, **pp;
    roost_mod_t *m = t->mod;

    for (pp = &m->timers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    t->fn(m, t->arg);
    event_free(t->ev);
    roost_free(t);
}

int
roost_timer_add(roost_mod_t *m, uint64_t msec,
                void (*fn)(roost_mod_t *, void *), void *arg)
{
    mod_timer_t *t = roost_xcalloc(1, sizeof(*t));
    struct timeval tv = {(time_t)(msec / 1000),
                         (suseconds_t)((msec % 1000) * 1000)};

    t->id = ++m->next_timer;
    t->mod = m;
    t->fn = fn;
    t->arg = arg;
    t->ev = evtimer_new(roost_srv->base, timer_fire, t);
    evtimer_add(t->ev, &tv);
    t->next = m->timers;
    m->timers = t;
    return t->id;
}

void
roost_timer_cancel(roost_mod_t *m, int id)
{
    for (mod_timer_t **pp = &m->timers; *pp != NULL; pp = &(*pp)->next) {
        mod_timer_t *t = *pp;

        if (t->id == id) {
            *pp = t->next;
            event_free(t->ev);
            roost_free(t);
            return;
        }
    }
}

void
roost_log(const roost_mod_t *m, int level, const char *fmt, ...)
{
    va_list ap;

    if (level > roost_log_level)
        return;
    va_start(ap, fmt);
    roost_log_vwrite(level, m->tag, fmt, ap);
    va_end(ap);
}

const char *
roost_version(void)
{
    return ROOST_VERSION;
}

roost_store_t *
roost_store_open(roost_mod_t *m, const char *name, roost_store_shape_t shape)
{
    roost_store_t *st = roost_storage_store(m->host->name, name, shape);
    mod_store_t *ms;

    if (st == NULL) {
        roost_log(m, ROOST_LOG_ERROR, "cannot open store %s", name);
        return NULL;
    }
    ms = roost_xcalloc(1, sizeof(*ms));
    ms->st = st;
    ms->next = m->stores;
    m->stores = ms;
    return st;
}

void
roost_store_async(roost_mod_t *m, int (*work)(void *),
                  void (*done)(void *, int), void *arg)
{
    roost_sm_storage_submit(work, done, arg);
}

void
roost_session_hold(roost_session_t *s)
{
    roost_conn_hold(s);
}

void
roost_session_release(roost_session_t *s)
{
    roost_conn_release(s);
}
