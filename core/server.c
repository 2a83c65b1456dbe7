/* core/server.c: virtual hosts and the session tables.
 *
 * Builds one roost_host_t per configured domain (TLS context with SNI,
 * module instances), opens the listeners, and keeps the bound sessions
 * indexed by full JID and by account so routing never scans (DESIGN.md).
 * Binding applies RFC 6120 §7.7.2.2 conflict handling: a new session with
 * the resource of an existing one replaces it (the old one gets a
 * <conflict/> stream error), as Prosody and ejabberd do by default.  Not
 * here: sockets (conn.c), routing (router.c). */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "log.h"
#include "component.h"
#include "s2s.h"
#include "server.h"
#include "sm.h"
#include "storage.h"
#include "tls.h"
#include "worker.h"

roost_server_t *roost_srv;

roost_host_t *
roost_server_host(const char *name)
{
    roost_host_t *h;

    if (roost_srv == NULL || name == NULL)
        return NULL;
    HASH_FIND_STR(roost_srv->hosts, name, h);
    return h;
}

roost_session_t *
roost_server_find_session(roost_host_t *h, const char *full)
{
    roost_session_t *s;

    HASH_FIND_STR(h->by_full, full, s);
    return s;
}

roost_user_t *
roost_server_find_user(roost_host_t *h, const char *node)
{
    roost_user_t *u;

    if (node == NULL)
        return NULL;
    HASH_FIND_STR(h->users, node, u);
    return u;
}

static SSL_CTX *
server_sni_lookup(const char *servername, void *arg)
{
    roost_host_t *h = roost_server_host(servername);

    return h != NULL ? h->tls : NULL;
}

static void
server_random_resource(char *buf, size_t size)
{
    unsigned char r[8];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        memset(r, 0, sizeof(r));
    snprintf(buf, size, "roost-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
}

const char *
roost_server_bind(roost_session_t *s, const char *resource,
                  roost_stanza_err_t *err)
{
    roost_host_t *h = s->host;
    const char *node = roost_stream_user(s->stream);
    char gen[32];
    roost_jid_t *jid;
    roost_session_t *old;
    roost_user_t *u;

    if (resource == NULL) {
        server_random_resource(gen, sizeof(gen));
        resource = gen;
    }
    jid = roost_jid_from_parts(node, h->name, resource);
    if (jid == NULL) {
        /* RFC 6120 §7.7.2.1: a resourcepart we cannot prepare. */
        *err = ROOST_SE_BAD_REQUEST;
        return NULL;
    }
    old = roost_server_find_session(h, roost_jid_full(jid));
    /* SASL success loaded and pinned the account (core/user.c). */
    u = s->pinned;
    if (u == NULL) {
        roost_jid_free(jid);
        *err = ROOST_SE_INTERNAL_SERVER_ERROR;
        return NULL;
    }
    if (old == NULL && u->count >= roost_srv->cfg->max_resources) {
        roost_jid_free(jid);
        *err = ROOST_SE_RESOURCE_CONSTRAINT;
        return NULL;
    }
    if (old != NULL) {
        roost_session_log(old, ROOST_LOG_INFO,
                          "replaced by a new session (conflict)");
        roost_conn_close(old, "conflict", "Replaced by new connection");
        roost_server_unbind(old);
    }
    /* Online means routable, even for an account that storage does not
     * know (SASL ANONYMOUS). */
    if (!u->exists)
        u->transient = 1;
    u->exists = 1;
    s->jid = jid;
    s->user = u;
    s->next_of_user = u->sessions;
    u->sessions = s;
    if (u->count++ == 0)
        h->online++; /* roost_host_online_count */
    HASH_ADD_KEYPTR(hh, h->by_full, roost_jid_full(jid),
                    strlen(roost_jid_full(jid)), s);
    roost_hooks_run(h, ROOST_EV_SESSION_BOUND, s, NULL, jid, jid);
    return roost_jid_full(jid);
}

static int
purge_work(void *arg)
{
    char **hu = arg;

    return roost_storage_purge_user(hu[0], hu[1]);
}

static void
purge_done(void *arg, int rc)
{
    char **hu = arg;

    if (rc < 0)
        ROOST_LOG(ROOST_LOG_WARN, hu[0], "purging the data of %s failed: %s",
                  hu[1], roost_strerror(rc));
    roost_free(hu[0]);
    roost_free(hu[1]);
    roost_free(hu);
}

/* The last session of an account that exists only while online
 * (anonymous) is gone: what modules stored for it goes too, after their
 * own SESSION_CLOSED writes (the storage queue is FIFO), as Prosody's
 * anonymous authentication does.  A new login with the same random name
 * is not possible before the purge ran: names are 64 random bits. */
static void
server_purge_transient(roost_user_t *u)
{
    char **hu = roost_xcalloc(2, sizeof(char *));

    hu[0] = roost_xstrdup(u->host->name);
    hu[1] = roost_xstrdup(u->node);
    /* In memory too: the entry may live on while stanzas are in flight. */
    u->exists = 0;
    u->transient = 0;
    roost_sm_storage_submit(purge_work, purge_done, hu);
}

void
roost_server_unbind(roost_session_t *s)
{
    roost_user_t *u = s->user;
    roost_session_t **pp;

    if (u == NULL)
        return;
    HASH_DEL(s->host->by_full, s);
    for (pp = &u->sessions; *pp != NULL; pp = &(*pp)->next_of_user) {
        if (*pp == s) {
            *pp = s->next_of_user;
            break;
        }
    }
    s->user = NULL;
    s->available = 0;
    /* The entry itself lives on while the session pins it (user.c). */
    if (--u->count == 0)
        s->host->online--;
    roost_hooks_run(s->host, ROOST_EV_SESSION_CLOSED, s, NULL, s->jid, s->jid);
    if (u->count == 0 && u->transient)
        server_purge_transient(u);
}

static int
server_add_host(const roost_host_conf_t *hc, char **err)
{
    roost_host_t *h = roost_xcalloc(1, sizeof(*h));

    h->name = roost_xstrdup(hc->domain);
    h->conf = hc;
    HASH_ADD_KEYPTR(hh, roost_srv->hosts, h->name, strlen(h->name), h);
    roost_users_host_init(h);
    if (hc->cert_generated &&
        roost_tls_selfsigned(hc->domain, hc->cert, hc->key, err) != 0)
        return -ROOST_ETLS;
    h->tls = roost_tls_ctx_new(hc->cert, hc->key, err);
    if (h->tls == NULL)
        return -ROOST_ETLS;
    roost_tls_set_sni(h->tls, server_sni_lookup, NULL);
    roost_tls_set_alpn(h->tls, "xmpp-client");
    if (roost_srv->default_tls == NULL)
        roost_srv->default_tls = h->tls;
    return 0;
}

int
roost_server_init(roost_config_t *cfg, struct event_base *base, char **err)
{
    roost_host_t *h, *tmp;
    int rc;

    roost_srv = roost_xcalloc(1, sizeof(*roost_srv));
    roost_srv->cfg = cfg;
    roost_srv->base = base;
    if ((rc = roost_tls_init()) != 0) {
        *err = roost_xstrdup("cannot initialise OpenSSL");
        return rc;
    }
    for (int i = 0; i < cfg->nhosts; i++)
        if ((rc = server_add_host(&cfg->hosts[i], err)) != 0)
            return rc;
    HASH_ITER (hh, roost_srv->hosts, h, tmp) {
        if ((rc = roost_modules_load_host(h, err)) != 0)
            return rc;
    }
    if ((rc = roost_s2s_init(err)) != 0)
        return rc;
    for (int i = 0; i < cfg->ncomponents; i++)
        if (roost_server_host(cfg->components[i].domain) != NULL) {
            *err = roost_xmalloc(512);
            snprintf(*err, 512, "component %.400s is also a host",
                     cfg->components[i].domain);
            return -ROOST_ECONFIG;
        }
    for (int i = 0; i < cfg->nlisten; i++) {
        rc = cfg->listen[i].type == ROOST_LISTEN_S2S
                 ? roost_s2s_listen(&cfg->listen[i], err)
             : cfg->listen[i].type == ROOST_LISTEN_COMPONENT
                 ? roost_component_listen(&cfg->listen[i], err)
                 : roost_conn_listen(&cfg->listen[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
roost_server_reload_tls(const roost_config_t *cfg)
{
    roost_host_t *h, *tmp;
    int failed = 0;

    HASH_ITER (hh, roost_srv->hosts, h, tmp) {
        const roost_host_conf_t *hc = roost_config_host(cfg, h->name);
        char *err = NULL, was[96], now[96];
        SSL_CTX *ctx;

        if (hc == NULL)
            hc = h->conf;
        if (hc->cert_generated &&
            roost_tls_selfsigned(hc->domain, hc->cert, hc->key, &err) != 0)
            ctx = NULL;
        else
            ctx = roost_tls_ctx_reload(h->tls, hc->cert, hc->key, &err);
        if (ctx == NULL) {
            ROOST_LOG(ROOST_LOG_ERROR, h->name,
                      "reload: %s; keeping the certificate in use", err);
            roost_free(err);
            failed++;
            continue;
        }
        roost_tls_ctx_fingerprint(h->tls, was, sizeof(was));
        roost_tls_ctx_fingerprint(ctx, now, sizeof(now));
        if (roost_srv->default_tls == h->tls)
            roost_srv->default_tls = ctx;
        /* Open connections hold their own reference to the old one. */
        SSL_CTX_free(h->tls);
        h->tls = ctx;
        ROOST_LOG(ROOST_LOG_INFO, h->name,
                  "reload: certificate %s %s (SHA-256 %s)", hc->cert,
                  strcmp(was, now) == 0 ? "unchanged" : "replaced", now);
    }
    return failed;
}

void
roost_server_shutdown(void)
{
    roost_host_t *h, *tmp;

    if (roost_srv == NULL)
        return;
    for (int i = 0; i < roost_srv->nlisteners; i++)
        evconnlistener_free(roost_srv->listeners[i]);
    roost_free(roost_srv->listeners);
    /* Close every connection politely, give them a moment to flush, let
     * running SASL jobs finish, then free whatever is left. */
    roost_srv->shutting_down = 1;
    for (roost_session_t *s = roost_srv->all; s != NULL; s = s->all_next)
        if (!s->closing)
            roost_conn_close(s, "system-shutdown", NULL);
    if (roost_srv->nsessions > 0) {
        struct timeval tv = {2, 0};

        event_base_loopexit(roost_srv->base, &tv);
        event_base_dispatch(roost_srv->base);
    }
    roost_s2s_shutdown();
    roost_component_shutdown();
    roost_worker_drain();
    roost_conn_free_all();
    HASH_ITER (hh, roost_srv->hosts, h, tmp) {
        roost_users_host_free(h);
        roost_modules_unload_host(h);
        HASH_DEL(roost_srv->hosts, h);
        SSL_CTX_free(h->tls);
        roost_free(h->name);
        roost_free(h);
    }
    roost_modules_shutdown();
    roost_free(roost_srv);
    roost_srv = NULL;
}
