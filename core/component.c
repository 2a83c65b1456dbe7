/* core/component.c: external components (XEP-0114, jabber:component:accept)
 * on listeners of type "component".
 *
 * A component opens a stream to its own domain (one of `components` in
 * the config), proves it knows the shared secret (<handshake/> with
 * SHA-1 of stream id + secret, compared in constant time), and from then
 * on the router hands it every stanza for its domain (and subdomains of
 * it), local or arriving over s2s, and routes what it sends (to local
 * users, or to remote domains over s2s, core/s2s.c answering dialback for
 * the component's domain), whose 'from' must be in its domain
 * (<invalid-from/> otherwise).  One connection per component domain; a
 * second one is refused with <conflict/>.  Stanzas for a component that is
 * not connected are bounced (service-unavailable) by the router's rules.
 *
 * Until the handshake a connection is under the pre-authentication
 * limits of core/conn.c (bytes, stanza size, the total), as clients are.
 *
 * Not here: TLS on the component port (XEP-0114 is meant for localhost or
 * a private network), XEP-0225 (component connections). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>

#include "component.h"
#include "log.h"
#include "server.h"
#include "xml.h"

#define COMP_GRACE_MS 2000

typedef struct roost_comp roost_comp_t;

struct roost_comp {
    uint64_t id;
    int refs, closing, freeing;
    int authed;
    struct bufferevent *bev;
    roost_xml_t *xml;
    const roost_component_conf_t *conf; /* once the header named it */
    char stream_id[33];
    char addr[64];
    struct event *timer; /* authentication deadline, then the flush */
    roost_comp_t *next;  /* comp_all */
    /* Pre-auth limits (core/conn.c) until the handshake. */
    int preauth;
    size_t pa_mem, pa_read, pa_mark;
};

static roost_comp_t *comp_all;
static uint64_t comp_next_id;
static struct evconnlistener **comp_listeners;
static int comp_nlisteners;

static void comp_close(roost_comp_t *c, const char *cond, const char *text);

static void comp_log(const roost_comp_t *c, int level, const char *fmt, ...)
    ROOST_PRINTF(3, 4);

static void
comp_log(const roost_comp_t *c, int level, const char *fmt, ...)
{
    char tag[400], msg[1024];
    va_list ap;

    if (level > roost_log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(tag, sizeof(tag), "component:%012" PRIx64 " %s", c->id,
             c->conf != NULL ? c->conf->domain : c->addr);
    roost_log_write(level, tag, "%s", msg);
}

/* The authenticated connection of the component serving domain (its own
 * domain or a subdomain of it), or NULL. */
static roost_comp_t *
comp_for_domain(const char *domain)
{
    for (roost_comp_t *c = comp_all; c != NULL; c = c->next) {
        size_t dl, cl;

        if (!c->authed || c->closing)
            continue;
        dl = strlen(domain);
        cl = strlen(c->conf->domain);
        if (strcmp(domain, c->conf->domain) == 0 ||
            (dl > cl + 1 && domain[dl - cl - 1] == '.' &&
             strcmp(domain + dl - cl, c->conf->domain) == 0))
            return c;
    }
    return NULL;
}

static const roost_component_conf_t *
comp_conf(const char *domain)
{
    for (int i = 0; i < roost_srv->cfg->ncomponents; i++)
        if (strcmp(roost_srv->cfg->components[i].domain, domain) == 0)
            return &roost_srv->cfg->components[i];
    return NULL;
}

int
roost_component_serves(const char *domain)
{
    const roost_config_t *cfg = roost_srv->cfg;

    for (int i = 0; i < cfg->ncomponents; i++) {
        const char *d = cfg->components[i].domain;
        size_t dl = strlen(domain), cl = strlen(d);

        if (strcmp(domain, d) == 0 ||
            (dl > cl + 1 && domain[dl - cl - 1] == '.' &&
             strcmp(domain + dl - cl, d) == 0))
            return 1;
    }
    return 0;
}

/* --- lifetime and output --- */

static void
comp_free_now(roost_comp_t *c)
{
    roost_comp_t **pp;

    for (pp = &comp_all; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->preauth)
        roost_preauth_account(&c->pa_mem, 0);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->timer != NULL)
        event_free(c->timer);
    roost_xml_free(c->xml);
    roost_free(c);
}

/* Brings c's share of the pre-auth total up to date: O(1). */
static void
comp_preauth_update(roost_comp_t *c)
{
    if (!c->preauth || c->bev == NULL)
        return;
    roost_preauth_account(
        &c->pa_mem, sizeof(*c) + roost_xml_memory(c->xml) +
                        evbuffer_get_length(bufferevent_get_input(c->bev)) +
                        evbuffer_get_length(bufferevent_get_output(c->bev)));
}

static void
comp_release(roost_comp_t *c)
{
    if (--c->refs == 0)
        comp_free_now(c);
}

static void
comp_free_cb(evutil_socket_t fd, short what, void *arg)
{
    comp_release(arg);
}

static void
comp_schedule_free(roost_comp_t *c)
{
    struct timeval zero = {0, 0};

    if (c->freeing)
        return;
    c->freeing = c->closing = 1;
    if (c->bev != NULL)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    event_base_once(roost_srv->base, -1, EV_TIMEOUT, comp_free_cb, c, &zero);
}

static void
comp_write(roost_comp_t *c, const char *buf, size_t len)
{
    if (c->bev == NULL || c->freeing)
        return;
    evbuffer_add(bufferevent_get_output(c->bev), buf, len);
    if ((int64_t)evbuffer_get_length(bufferevent_get_output(c->bev)) >
        4 * roost_srv->cfg->output_hwm) {
        comp_log(c, ROOST_LOG_WARN, "closing: the component does not read");
        comp_schedule_free(c);
        return;
    }
    comp_preauth_update(c);
}

static void
comp_puts(roost_comp_t *c, const char *s)
{
    comp_write(c, s, strlen(s));
}

static void
comp_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    comp_schedule_free(arg);
}

static void
comp_close(roost_comp_t *c, const char *cond, const char *text)
{
    struct timeval tv = {COMP_GRACE_MS / 1000, 0};
    char buf[512];

    if (c->closing)
        return;
    c->closing = 1;
    if (cond != NULL) {
        comp_log(c, ROOST_LOG_INFO, "stream error %s%s%s", cond,
                 text ? ": " : "", text ? text : "");
        snprintf(buf, sizeof(buf),
                 "<stream:error><%s xmlns='" ROOST_NS_STREAMS
                 "'/>%s%s%s</stream:error>",
                 cond, text ? "<text xmlns='" ROOST_NS_STREAMS "'>" : "",
                 text ? text : "", text ? "</text>" : "");
        comp_puts(c, buf);
    }
    comp_puts(c, "</stream:stream>");
    if (c->bev != NULL)
        bufferevent_disable(c->bev, EV_READ);
    event_del(c->timer);
    event_assign(c->timer, roost_srv->base, -1, 0, comp_flush_cb, c);
    evtimer_add(c->timer, &tv);
}

int
roost_component_route(roost_stanza_t *st, const roost_jid_t *to)
{
    roost_comp_t *c = comp_for_domain(roost_jid_domain(to));
    size_t len;
    char *xml;

    if (c == NULL)
        return -ROOST_ENOTFOUND;
    /* Serialised with jabber:client implied: the stream's default
     * namespace (jabber:component:accept) is what the component reads. */
    xml = roost_stanza_serialize(st, ROOST_NS_CLIENT, &len);
    comp_write(c, xml, len);
    roost_free(xml);
    return 0;
}

/* --- input --- */

static const char *
comp_attr(const char *const *attrs, const char *name)
{
    for (; attrs != NULL && attrs[0] != NULL; attrs += 2)
        if (strcmp(attrs[0], name) == 0)
            return attrs[1];
    return NULL;
}

static int
comp_xml_open(void *ud, const char *ns, const char *name,
              const char *const *attrs, const char *default_ns)
{
    roost_comp_t *c = ud;
    const char *to = comp_attr(attrs, "to");
    char *domain = to != NULL ? roost_jid_prep_domain(to) : NULL;
    char buf[600];
    unsigned char r[16];

    c->conf = domain != NULL ? comp_conf(domain) : NULL;
    roost_free(domain);
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        memset(r, (int)(c->id & 0xff), sizeof(r));
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(c->stream_id + 2 * i, 3, "%02x", r[i]);
    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='" ROOST_NS_COMPONENT
             "' xmlns:stream='" ROOST_NS_STREAM "' id='%s' from='%s'>",
             c->stream_id, c->conf != NULL ? c->conf->domain : "");
    comp_puts(c, buf);
    if (ns == NULL || strcmp(ns, ROOST_NS_STREAM) != 0 ||
        strcmp(name, "stream") != 0 || default_ns == NULL ||
        strcmp(default_ns, ROOST_NS_COMPONENT) != 0) {
        comp_close(c, "invalid-namespace", NULL);
        return 1;
    }
    if (c->conf == NULL) {
        comp_close(c, "host-unknown", NULL);
        return 1;
    }
    return 0;
}

/* <handshake>hex SHA-1(stream id + secret)</handshake> (XEP-0114 §3). */
static void
comp_handshake(roost_comp_t *c, roost_stanza_t *el)
{
    const char *got = roost_stanza_text(el);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char want[2 * EVP_MAX_MD_SIZE + 1], *in;
    size_t len = strlen(c->stream_id) + strlen(c->conf->secret) + 1;
    unsigned char diff = 0;

    in = roost_xmalloc(len);
    snprintf(in, len, "%s%s", c->stream_id, c->conf->secret);
    EVP_Digest(in, strlen(in), d, &dlen, EVP_sha1(), NULL);
    roost_free(in);
    for (unsigned int i = 0; i < dlen; i++)
        snprintf(want + 2 * i, 3, "%02x", d[i]);
    if (got == NULL || strlen(got) != 2 * dlen)
        diff = 1;
    for (size_t i = 0; got != NULL && i < 2 * dlen && got[i] != '\0'; i++) {
        char g = got[i];

        if (g >= 'A' && g <= 'F')
            g = (char)(g - 'A' + 'a');
        diff |= (unsigned char)(g ^ want[i]);
    }
    if (diff != 0) {
        comp_close(c, "not-authorized", "wrong handshake");
        return;
    }
    if (comp_for_domain(c->conf->domain) != NULL) {
        comp_close(c, "conflict", "this component is already connected");
        return;
    }
    c->authed = 1;
    /* The pre-auth limits end (stanzas up to limits.max_stanza_size). */
    c->preauth = 0;
    roost_preauth_account(&c->pa_mem, 0);
    roost_xml_set_max_stanza(c->xml, (size_t)roost_srv->cfg->max_stanza_size);
    event_del(c->timer);
    comp_puts(c, "<handshake/>");
    comp_log(c, ROOST_LOG_INFO, "connected (XEP-0114)");
}

static void
comp_stanza(roost_comp_t *c, roost_stanza_t *st)
{
    const char *from_s = roost_stanza_attr(st, "from");
    const char *to_s = roost_stanza_attr(st, "to");
    roost_jid_t *from = from_s ? roost_jid_new(from_s) : NULL;
    roost_jid_t *to = to_s ? roost_jid_new(to_s) : NULL;
    roost_host_t *h = roost_srv->hosts;

    if (from == NULL || to == NULL) {
        comp_close(c, "improper-addressing", NULL);
    } else if (comp_for_domain(roost_jid_domain(from)) != c) {
        comp_close(c, "invalid-from", "not this component's domain");
    } else {
        roost_stanza_set_attr(st, "from", roost_jid_full(from));
        roost_stanza_set_attr(st, "to", roost_jid_full(to));
        /* Bounces come from the first host: the component is no vhost. */
        roost_router_route(h, NULL, st);
    }
    roost_jid_free(from);
    roost_jid_free(to);
}

static int
comp_xml_stanza(void *ud, roost_stanza_t *el)
{
    roost_comp_t *c = ud;
    const char *ns = roost_stanza_ns(el);

    c->refs++;
    if (c->closing) {
        /* nothing */
    } else if (!c->authed) {
        if (strcmp(roost_stanza_name(el), "handshake") == 0 &&
            (ns == NULL || strcmp(ns, ROOST_NS_CLIENT) == 0))
            comp_handshake(c, el);
        else
            comp_close(c, "not-authorized", "handshake first");
    } else if (roost_stanza_kind(el) != ROOST_STANZA_OTHER) {
        comp_stanza(c, el);
    } else {
        comp_close(c, "unsupported-stanza-type", NULL);
    }
    roost_stanza_unref(el);
    {
        int stop = c->closing;

        comp_release(c);
        return stop;
    }
}

static void
comp_xml_close(void *ud)
{
    comp_close(ud, NULL, NULL);
}

static void
comp_xml_error(void *ud, const char *cond, const char *text)
{
    comp_close(ud, cond, text);
}

static const roost_xml_cb_t comp_xml_cb = {
    .stream_open = comp_xml_open,
    .stanza = comp_xml_stanza,
    .stream_close = comp_xml_close,
    .error = comp_xml_error,
};

static void
comp_read_cb(struct bufferevent *bev, void *arg)
{
    roost_comp_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    c->refs++;
    if (c->preauth && !c->closing &&
        roost_preauth_count(&c->pa_read, &c->pa_mark,
                            evbuffer_get_length(in))) {
        /* limits.preauth_max_bytes, as for c2s (core/conn.c). */
        comp_log(c, ROOST_LOG_INFO,
                 "closing: %zu bytes before the handshake "
                 "(preauth_max_bytes)",
                 c->pa_read);
        evbuffer_drain(in, evbuffer_get_length(in));
        c->pa_mark = 0;
        comp_close(c, "policy-violation",
                   "too much data before authentication");
    }
    while (!c->closing && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used = 0;
        int rc;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        rc = roost_xml_feed(c->xml, v.iov_base, v.iov_len, &used);
        if (rc < 0)
            break;
        evbuffer_drain(in, rc == 0 ? v.iov_len : used);
    }
    if (c->preauth) {
        c->pa_mark = evbuffer_get_length(in); /* counted already */
        comp_preauth_update(c);
    }
    comp_release(c);
}

static void
comp_event_cb(struct bufferevent *bev, short what, void *arg)
{
    roost_comp_t *c = arg;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        comp_log(c, c->authed ? ROOST_LOG_INFO : ROOST_LOG_DEBUG,
                 "disconnected");
        comp_schedule_free(c);
    }
}

static void
comp_auth_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_comp_t *c = arg;

    if (!c->authed)
        comp_close(c, "connection-timeout", "no handshake in time");
}

static void
comp_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
               struct sockaddr *sa, int socklen, void *arg)
{
    roost_config_t *cfg = roost_srv->cfg;
    roost_comp_t *c;
    struct timeval tv;
    char ip[ROOST_ADDR_STRLEN];

    roost_addr_str(sa, ip);
    if (roost_preauth_full(ip)) {
        /* limits.preauth_max_total: as c2s does, before any byte. */
        evutil_closesocket(fd);
        return;
    }
    c = roost_xcalloc(1, sizeof(*c)); /* comp_free_now */
    c->id = ++comp_next_id;
    c->refs = 1;
    c->next = comp_all;
    comp_all = c;
    snprintf(c->addr, sizeof(c->addr), "%s", ip);
    /* Until the handshake: limits.preauth_* (comp_handshake). */
    c->preauth = 1;
    c->xml = roost_xml_new(&(roost_xml_limits_t){roost_preauth_max_stanza(),
                                                 (int)cfg->max_depth,
                                                 (int)cfg->max_attrs},
                           &comp_xml_cb, c);
    c->bev = bufferevent_socket_new(roost_srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(roost_srv->base, comp_auth_timer_cb, c);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        comp_schedule_free(c);
        return;
    }
    bufferevent_setcb(c->bev, comp_read_cb, NULL, comp_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    tv.tv_sec = (time_t)(cfg->auth_timeout / 1000);
    tv.tv_usec = (suseconds_t)((cfg->auth_timeout % 1000) * 1000);
    evtimer_add(c->timer, &tv);
    comp_preauth_update(c);
}

int
roost_component_listen(const roost_listen_conf_t *l, char **err)
{
    int rc = roost_listen_bind(l, comp_accept_cb, NULL, 64, "component",
                               &comp_listeners, &comp_nlisteners, err);

    if (rc < 0)
        return rc;
    ROOST_LOG(ROOST_LOG_INFO, "core", "listening on %s port %d (components)",
              l->address, l->port);
    return 0;
}

void
roost_component_shutdown(void)
{
    for (int i = 0; i < comp_nlisteners; i++)
        evconnlistener_free(comp_listeners[i]);
    roost_free(comp_listeners);
    comp_listeners = NULL;
    comp_nlisteners = 0;
    while (comp_all != NULL) {
        roost_comp_t *c = comp_all;

        if (c->bev != NULL && !c->closing)
            comp_puts(c,
                      "<stream:error><system-shutdown xmlns='" ROOST_NS_STREAMS
                      "'/></stream:error></stream:stream>");
        c->refs = 1;
        comp_free_now(c);
    }
}
