/* core/s2s.c: server-to-server streams with STARTTLS and Server Dialback.
 * See core/s2s.h for what it does and does not do.
 *
 * One roost_s2s_t is one TCP connection, outgoing (we initiate: we send
 * stanzas on it, and dialback verify requests) or incoming (the peer
 * sends stanzas, dialback results to verify, and verify requests for its
 * own keys).  The 2012 dialback advisory is kept in mind throughout: a
 * verify answer is accepted only for a request sent on that very stream,
 * a result only names pairs whose 'to' we host, and every inbound
 * stanza's domains must be a pair verified on its stream. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <idn2.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "component.h"
#include "log.h"
#include "resolve.h"
#include "s2s.h"
#include "server.h"
#include "tls.h"
#include "xml.h"

#define NS_SERVER    "jabber:server"
#define NS_DB        "jabber:server:dialback"
#define NS_DB_FEAT   "urn:xmpp:features:dialback"
#define NS_BIDI      "urn:xmpp:bidi"
#define NS_BIDI_FEAT "urn:xmpp:features:bidi"
#define S2S_GRACE_MS 2000

typedef enum { S2S_OUT = 0, S2S_IN = 1 } s2s_dir_t;

typedef enum {
    OUT_CONNECTING = 0, /* TCP connect (and name resolution) */
    OUT_OPEN,           /* header sent, waiting for the peer's features */
    OUT_TLS,            /* <starttls/> sent, waiting for <proceed/> */
    OUT_SASL,           /* <auth mechanism='EXTERNAL'/> sent */
    OUT_READY,          /* features after TLS seen: dialback can run */
    IN_OPEN,            /* waiting for the peer's header */
    IN_READY            /* header answered */
} s2s_state_t;

/* A dialback verification we asked an authoritative server for, for an
 * incoming stream (in_id): on our outgoing stream to it, or on a stream
 * of its on which it asked for bidi (XEP-0288) and is verified. */
typedef struct s2s_verify {
    char *id;             /* the incoming stream's id */
    char *key;            /* the key the peer gave there */
    char *remote, *local; /* the pair to verify (remote's key for local) */
    uint64_t in_id;
    int sent;
    struct s2s_verify *next;
} s2s_verify_t;

typedef struct roost_s2s roost_s2s_t;

/* A (remote, local) domain pair on an incoming stream.  Verified pairs of
 * a bidi stream (XEP-0288) are also in s2s_bidi_table, keyed like
 * s2s_out_table ("local remote"), so that routing finds them in O(1). */
typedef struct s2s_pair {
    char *remote, *local;
    int valid; /* 0 pending, 1 verified */
    struct s2s_pair *next;
    char *key;         /* while in s2s_bidi_table */
    roost_s2s_t *conn; /* the stream holding the pair */
    UT_hash_handle hh; /* s2s_bidi_table */
} s2s_pair_t;

struct roost_s2s {
    uint64_t id;
    s2s_dir_t dir;
    s2s_state_t state;
    int refs, closing, freeing;
    struct bufferevent *bev;
    roost_xml_t *xml;
    char stream_id[40]; /* IN: ours; OUT: the peer's */
    int tls;
    int notls;     /* IN: the listener has tls = "none" (no STARTTLS) */
    int bidi;      /* XEP-0288: OUT we sent <bidi/>, IN the peer did */
    int bidi_used; /* the reverse direction carried a stanza (logged) */
    char addr[64];
    char *local, *remote; /* OUT: from/to; IN: our host once named */
    char *key;            /* OUT: "local remote" (table key) */
    /* OUT */
    roost_stanza_t **q;
    int qn, qcap;
    int authed, db_sent;
    int connect_failed;      /* no target could even be tried */
    int sasl_failed;         /* EXTERNAL was refused: dialback, if allowed */
    roost_resolve_t *lookup; /* in flight */
    roost_target_t *targets; /* where the peer may be, in order */
    int ntargets, ti;        /* the target being tried */
    size_t ai;               /* its address being tried */
    s2s_verify_t *verifies;
    /* IN */
    s2s_pair_t *pairs;
    char *hdr_from;  /* the 'from' of the peer's header, prepared */
    int sasl_authed; /* SASL EXTERNAL succeeded on this stream */
    /* Pre-auth limits (core/conn.c) until a pair is verified here. */
    int preauth;
    size_t pa_mem, pa_read, pa_mark;
    struct event *timer; /* connect/auth deadline, then idle, then flush */
    UT_hash_handle hh;   /* OUT: s2s_out by key */
    roost_s2s_t *all_next, *all_prev;
};

/* s2s.peers hashed by domain at start: a policy lookup is O(1). */
typedef struct s2s_peer {
    const roost_s2s_peer_t *conf; /* in roost_srv->cfg */
    UT_hash_handle hh;
} s2s_peer_t;

static s2s_peer_t *s2s_peer_table;
static roost_s2s_t *s2s_out_table;
static s2s_pair_t *s2s_bidi_table;
static roost_s2s_t *s2s_all;
static uint64_t s2s_next_id;
static char s2s_secret[65];
static SSL_CTX *s2s_client_ctx;
static X509_STORE *s2s_store; /* trust anchors for PKIX (XEP-0178) */
static roost_resolver_t *s2s_resolver;
static roost_resolve_route_t *s2s_routes;
static struct evconnlistener **s2s_listeners;
static int s2s_nlisteners;

static void s2s_read_cb(struct bufferevent *bev, void *arg);
static void s2s_event_cb(struct bufferevent *bev, short what, void *arg);
static void s2s_close(roost_s2s_t *c, const char *cond, const char *text);
static void s2s_out_fail(roost_s2s_t *c, roost_stanza_err_t cond);
static void s2s_out_end(roost_s2s_t *c, roost_stanza_err_t cond,
                        const char *why);
static void s2s_out_bidi_stanza(roost_s2s_t *c, roost_stanza_t *st);
static void s2s_verifies_fail(roost_s2s_t *c);
static void s2s_in_verify(roost_s2s_t *c, roost_stanza_t *el);
static const roost_xml_cb_t s2s_xml_cb;

static void s2s_log(const roost_s2s_t *c, int level, const char *fmt, ...)
    ROOST_PRINTF(3, 4);

static void
s2s_log(const roost_s2s_t *c, int level, const char *fmt, ...)
{
    char tag[600], msg[1024];
    va_list ap;

    if (level > roost_log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(tag, sizeof(tag), "s2s%s:%012" PRIx64 " %s%s%s",
             c->dir == S2S_OUT ? "out" : "in", c->id, c->local ? c->local : "?",
             c->dir == S2S_OUT ? "->" : "<-", c->remote ? c->remote : c->addr);
    roost_log_write(level, tag, "%s", msg);
}

static void
timeval_ms(struct timeval *tv, int64_t ms)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

/* --- dialback keys (XEP-0185) --- */

static void
hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

void
roost_s2s_dialback_key(const char *secret, const char *receiving,
                       const char *originating, const char *id, char out[65])
{
    unsigned char d[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0, mlen = 0;
    char hkey[65], *msg;
    size_t len = strlen(receiving) + strlen(originating) + strlen(id) + 3;

    EVP_Digest(secret, strlen(secret), d, &dlen, EVP_sha256(), NULL);
    hex(d, dlen, hkey);
    msg = roost_xmalloc(len);
    snprintf(msg, len, "%s %s %s", receiving, originating, id);
    HMAC(EVP_sha256(), hkey, (int)strlen(hkey), (const unsigned char *)msg,
         strlen(msg), mac, &mlen);
    roost_free(msg);
    hex(mac, mlen, out);
}

/* Constant time, for keys. */
static int
s2s_key_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char r = la != lb;

    for (size_t i = 0; i < la && i < lb; i++)
        r |= (unsigned char)(a[i] ^ b[i]);
    return r == 0;
}

/* --- policy per peer (s2s.peers) --- */

/* Whether streams with domain (prepared; NULL: not known yet) need TLS
 * before dialback, and whether XEP-0288 is used with it: its s2s.peers
 * entry, else the s2s group's setting. */
static const roost_s2s_peer_t *
s2s_peer(const char *domain)
{
    s2s_peer_t *p = NULL;

    if (domain != NULL && s2s_peer_table != NULL)
        HASH_FIND_STR(s2s_peer_table, domain, p);
    return p != NULL ? p->conf : NULL;
}

static int
s2s_require_tls(const char *domain)
{
    const roost_s2s_peer_t *p = s2s_peer(domain);

    return p != NULL ? p->require_encryption
                     : roost_srv->cfg->s2s_require_encryption;
}

static int
s2s_bidi_on(const char *domain)
{
    const roost_s2s_peer_t *p = s2s_peer(domain);

    return p != NULL ? p->bidi : roost_srv->cfg->s2s_bidi;
}

/* --- lifetime --- */

static void
s2s_verify_free(s2s_verify_t *v)
{
    roost_free(v->id);
    roost_free(v->key);
    roost_free(v->remote);
    roost_free(v->local);
    roost_free(v);
}

static roost_s2s_t *
s2s_new(s2s_dir_t dir)
{
    roost_s2s_t *c = roost_xcalloc(1, sizeof(*c)); /* s2s_free_now */

    c->id = ++s2s_next_id;
    c->dir = dir;
    c->refs = 1;
    c->all_next = s2s_all;
    if (s2s_all != NULL)
        s2s_all->all_prev = c;
    s2s_all = c;
    return c;
}

/* "local remote", the key of s2s_out_table and s2s_bidi_table, into buf
 * (S2S_KEY_MAX): no allocation per routed stanza. */
#define S2S_KEY_MAX (2 * (ROOST_JID_PART_MAX + 1) + 1)

static void
s2s_key(char buf[S2S_KEY_MAX], const char *local, const char *remote)
{
    snprintf(buf, S2S_KEY_MAX, "%s %s", local, remote);
}

/* Index p for routing when it is a verified pair of an incoming stream
 * on which the peer asked for bidi (XEP-0288); unindex it otherwise.  A
 * pair verified on two such streams is indexed for the first only. */
static void
s2s_bidi_unindex(s2s_pair_t *p)
{
    if (p->key == NULL)
        return;
    HASH_DEL(s2s_bidi_table, p);
    roost_free(p->key);
    p->key = NULL;
}

static void
s2s_bidi_update(roost_s2s_t *c, s2s_pair_t *p)
{
    char key[S2S_KEY_MAX];
    s2s_pair_t *other;

    if (!(c->dir == S2S_IN && c->bidi && p->valid && !c->closing &&
          s2s_bidi_on(p->remote))) {
        s2s_bidi_unindex(p);
        return;
    }
    if (p->key != NULL)
        return;
    s2s_key(key, p->local, p->remote);
    HASH_FIND_STR(s2s_bidi_table, key, other);
    if (other != NULL)
        return;
    p->key = roost_xstrdup(key);
    p->conn = c;
    HASH_ADD_KEYPTR(hh, s2s_bidi_table, p->key, strlen(p->key), p);
}

static void
s2s_free_now(roost_s2s_t *c)
{
    if (c->preauth)
        roost_preauth_account(&c->pa_mem, 0);
    if (c->dir == S2S_OUT && c->key != NULL)
        HASH_DEL(s2s_out_table, c);
    if (c->lookup != NULL)
        roost_resolve_cancel(c->lookup);
    roost_resolve_targets_free(c->targets, c->ntargets);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->timer != NULL)
        event_free(c->timer);
    roost_xml_free(c->xml);
    for (int i = 0; i < c->qn; i++)
        roost_stanza_unref(c->q[i]);
    roost_free(c->q);
    while (c->verifies != NULL) {
        s2s_verify_t *v = c->verifies;

        c->verifies = v->next;
        s2s_verify_free(v);
    }
    while (c->pairs != NULL) {
        s2s_pair_t *p = c->pairs;

        c->pairs = p->next;
        s2s_bidi_unindex(p);
        roost_free(p->remote);
        roost_free(p->local);
        roost_free(p);
    }
    roost_free(c->local);
    roost_free(c->remote);
    roost_free(c->key);
    roost_free(c->hdr_from);
    if (c->all_prev != NULL)
        c->all_prev->all_next = c->all_next;
    else
        s2s_all = c->all_next;
    if (c->all_next != NULL)
        c->all_next->all_prev = c->all_prev;
    roost_free(c);
}

static void
s2s_release(roost_s2s_t *c)
{
    if (--c->refs == 0)
        s2s_free_now(c);
}

static void
s2s_free_cb(evutil_socket_t fd, short what, void *arg)
{
    s2s_release(arg);
}

/* Frees c at the end of this loop turn (no callback of it is running
 * then); it leaves the table at once. */
static void
s2s_schedule_free(roost_s2s_t *c)
{
    struct timeval zero = {0, 0};

    if (c->freeing)
        return;
    c->freeing = c->closing = 1;
    s2s_verifies_fail(c);
    if (c->dir == S2S_OUT && c->key != NULL) {
        HASH_DEL(s2s_out_table, c);
        roost_free(c->key);
        c->key = NULL;
    }
    if (c->bev != NULL)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    event_base_once(roost_srv->base, -1, EV_TIMEOUT, s2s_free_cb, c, &zero);
}

static roost_s2s_t *
s2s_find_id(uint64_t id)
{
    for (roost_s2s_t *c = s2s_all; c != NULL; c = c->all_next)
        if (c->id == id && !c->closing)
            return c;
    return NULL;
}

/* --- pre-auth limits (incoming streams, core/conn.c) --- */

/* Brings c's share of the pre-auth total up to date: O(1). */
static void
s2s_preauth_update(roost_s2s_t *c)
{
    struct bufferevent *under;
    size_t cost;

    if (!c->preauth || c->bev == NULL)
        return;
    cost = sizeof(*c) + roost_xml_memory(c->xml) +
           evbuffer_get_length(bufferevent_get_input(c->bev)) +
           evbuffer_get_length(bufferevent_get_output(c->bev));
    under = bufferevent_get_underlying(c->bev);
    if (under != NULL)
        cost += evbuffer_get_length(bufferevent_get_input(under)) +
                evbuffer_get_length(bufferevent_get_output(under));
    roost_preauth_account(&c->pa_mem, cost);
}

/* A pair was verified on incoming c: the peer is known, the pre-auth
 * limits end (the stanza limit becomes limits.max_stanza_size). */
static void
s2s_in_authed(roost_s2s_t *c)
{
    if (!c->preauth)
        return;
    c->preauth = 0;
    roost_preauth_account(&c->pa_mem, 0);
    roost_xml_set_max_stanza(c->xml, (size_t)roost_srv->cfg->max_stanza_size);
}

/* --- output --- */

static void
s2s_write(roost_s2s_t *c, const char *buf, size_t len)
{
    struct bufferevent *under;
    size_t queued;

    if (c->bev == NULL || c->freeing)
        return;
    evbuffer_add(bufferevent_get_output(c->bev), buf, len);
    queued = evbuffer_get_length(bufferevent_get_output(c->bev));
    under = bufferevent_get_underlying(c->bev);
    if (under != NULL)
        queued += evbuffer_get_length(bufferevent_get_output(under));
    if ((int64_t)queued > 4 * roost_srv->cfg->output_hwm) {
        s2s_log(c, ROOST_LOG_WARN, "closing: %zu bytes queued to a slow peer",
                queued);
        if (c->dir == S2S_OUT)
            s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_TIMEOUT);
        else
            s2s_schedule_free(c);
        return;
    }
    s2s_preauth_update(c);
}

static void
s2s_puts(roost_s2s_t *c, const char *s)
{
    s2s_write(c, s, strlen(s));
}

static void
s2s_send_stanza(roost_s2s_t *c, const roost_stanza_t *st)
{
    size_t len;
    /* Serialised with jabber:client as the implied namespace: the
     * stream's default (jabber:server) is then what the peer reads. */
    char *xml = roost_stanza_serialize(st, ROOST_NS_CLIENT, &len);

    s2s_write(c, xml, len);
    roost_free(xml);
}

static void
s2s_header(roost_s2s_t *c)
{
    char buf[2400];

    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER
             "' xmlns:stream='" ROOST_NS_STREAM "' xmlns:db='" NS_DB
             "' version='1.0'");
    if (c->dir == S2S_IN)
        roost_xml_append_attr(buf, sizeof(buf), "id", c->stream_id);
    if (c->local != NULL)
        roost_xml_append_attr(buf, sizeof(buf), "from", c->local);
    if (c->dir == S2S_OUT && c->remote != NULL)
        roost_xml_append_attr(buf, sizeof(buf), "to", c->remote);
    else if (c->dir == S2S_IN && c->hdr_from != NULL)
        /* RFC 6120 §4.7.2: the initiator's from, as to. */
        roost_xml_append_attr(buf, sizeof(buf), "to", c->hdr_from);
    strcat(buf, ">");
    s2s_puts(c, buf);
}

/* A stream error, </stream:stream>, then the connection goes once the
 * bytes are out (or after a grace period). */
static void
s2s_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_s2s_t *c = arg;

    s2s_schedule_free(c);
}

static void
s2s_close(roost_s2s_t *c, const char *cond, const char *text)
{
    struct timeval tv;
    char buf[600];

    if (c->closing)
        return;
    c->closing = 1;
    if (c->dir == S2S_OUT && c->key != NULL) {
        /* New stanzas for that domain make a new stream. */
        HASH_DEL(s2s_out_table, c);
        roost_free(c->key);
        c->key = NULL;
    }
    if (c->bev == NULL || c->state == OUT_CONNECTING) {
        s2s_schedule_free(c);
        return;
    }
    if (cond != NULL) {
        s2s_log(c, ROOST_LOG_INFO, "stream error %s%s%s", cond,
                text ? ": " : "", text ? text : "");
        snprintf(buf, sizeof(buf),
                 "<stream:error><%s xmlns='" ROOST_NS_STREAMS "'/>", cond);
        if (text != NULL) {
            size_t n = strlen(buf);

            snprintf(buf + n, sizeof(buf) - n,
                     "<text xmlns='" ROOST_NS_STREAMS "'>%.300s</text>", text);
        }
        strcat(buf, "</stream:error>");
        s2s_puts(c, buf);
    }
    s2s_puts(c, "</stream:stream>");
    bufferevent_disable(c->bev, EV_READ);
    if (c->timer == NULL)
        c->timer = evtimer_new(roost_srv->base, s2s_flush_cb, c);
    event_del(c->timer);
    event_assign(c->timer, roost_srv->base, -1, 0, s2s_flush_cb, c);
    timeval_ms(&tv, S2S_GRACE_MS);
    evtimer_add(c->timer, &tv);
}

/* --- PKIX (XEP-0178, RFC 6125) --- */

/* Accept any certificate during the handshake: whether it authenticates
 * the peer is decided afterwards, against s2s_store and the domain. */
static int
s2s_verify_any(int ok, X509_STORE_CTX *ctx)
{
    return 1;
}

/* A DNS name from a certificate (pattern: len bytes, no NUL inside)
 * against host (A-labels), case-insensitively (RFC 6125 §6.4.1).  A
 * wildcard is accepted only as the whole left-most label, matches
 * exactly one label, and needs two more labels after it (RFC 6125
 * §6.4.3, as X509_check_host and Prosody's util.x509 do): "*.example.org"
 * matches "a.example.org", never "example.org", "a.b.example.org",
 * nor does "f*.example.org" or "*.org" match anything. */
static int
s2s_dns_match(const char *pattern, size_t len, const char *host)
{
    size_t hl = strlen(host);
    const char *dot;

    if (len > 0 && pattern[len - 1] == '.')
        len--; /* an absolute name */
    if (hl > 0 && host[hl - 1] == '.')
        hl--;
    if (len == 0 || hl == 0)
        return 0;
    if (len > 2 && pattern[0] == '*' && pattern[1] == '.') {
        const char *rest = pattern + 2;
        size_t rl = len - 2;

        if (memchr(rest, '*', rl) != NULL || memchr(rest, '.', rl) == NULL)
            return 0;
        dot = memchr(host, '.', hl);
        if (dot == NULL || dot == host)
            return 0;
        return (size_t)(host + hl - dot - 1) == rl &&
               strncasecmp(dot + 1, rest, rl) == 0;
    }
    if (memchr(pattern, '*', len) != NULL)
        return 0; /* partial wildcards are not accepted */
    return hl == len && strncasecmp(pattern, host, len) == 0;
}

/* The string of an otherName's value when it is of the given ASN.1 type
 * and holds no NUL (an embedded NUL is an attack on C string compares),
 * else NULL; *len gets its length. */
static const char *
s2s_othername_str(const GENERAL_NAME *gn, int nid, int type, size_t *len)
{
    const OTHERNAME *on = gn->d.otherName;
    const ASN1_STRING *v;

    if (on == NULL || OBJ_obj2nid(on->type_id) != nid || on->value == NULL ||
        on->value->type != type)
        return NULL;
    v = on->value->value.asn1_string;
    if (v == NULL || v->length <= 0 ||
        memchr(v->data, '\0', (size_t)v->length) != NULL)
        return NULL;
    *len = (size_t)v->length;
    return (const char *)v->data;
}

int
roost_s2s_cert_name_ok(X509 *cert, const char *domain)
{
    GENERAL_NAMES *sans;
    char *ace = NULL;
    const char *host;
    int found = 0, ok = 0;

    if (cert == NULL || domain == NULL || *domain == '\0')
        return 0;
    /* DNS-IDs are A-labels; domains here are prepared U-labels. */
    if (idn2_to_ascii_8z(domain, &ace, IDN2_NONTRANSITIONAL) != IDN2_OK)
        ace = NULL;
    host = ace != NULL ? ace : domain;
    sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; !ok && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        const char *v;
        size_t len;

        if (gn->type == GEN_DNS) {
            const ASN1_IA5STRING *d = gn->d.dNSName;

            found = 1;
            ok = d != NULL && d->length > 0 &&
                 memchr(d->data, '\0', (size_t)d->length) == NULL &&
                 s2s_dns_match((const char *)d->data, (size_t)d->length, host);
        } else if (gn->type == GEN_URI) {
            found = 1; /* a URI-ID counts as present (RFC 6125 §6.4.4) */
        } else if (gn->type == GEN_OTHERNAME &&
                   (v = s2s_othername_str(gn, NID_XmppAddr, V_ASN1_UTF8STRING,
                                          &len)) != NULL) {
            /* XmppAddr (RFC 6120 §13.7.1.4): a bare domain JID, compared
             * prepared; no wildcards, no localpart or resource. */
            char *s = roost_xstrndup(v, len);
            char *d =
                strpbrk(s, "@/") == NULL ? roost_jid_prep_domain(s) : NULL;

            found = 1;
            ok = d != NULL && strcmp(d, domain) == 0;
            roost_free(d);
            roost_free(s);
        } else if (gn->type == GEN_OTHERNAME &&
                   (v = s2s_othername_str(gn, NID_SRVName, V_ASN1_IA5STRING,
                                          &len)) != NULL) {
            /* SRV-ID (RFC 4985, RFC 6125 §6.5.1): the service must be
             * _xmpp-server, then the domain by the DNS-ID rules. */
            static const char svc[] = "_xmpp-server.";

            found = 1;
            ok = len > sizeof(svc) - 1 &&
                 strncasecmp(v, svc, sizeof(svc) - 1) == 0 &&
                 s2s_dns_match(v + sizeof(svc) - 1, len - (sizeof(svc) - 1),
                               host);
        } else if (gn->type == GEN_OTHERNAME) {
            int nid = OBJ_obj2nid(gn->d.otherName->type_id);

            /* Of a kind we read, but malformed: still an identifier. */
            if (nid == NID_XmppAddr || nid == NID_SRVName)
                found = 1;
        }
    }
    GENERAL_NAMES_free(sans);
    if (!ok && !found) {
        /* RFC 6125 §6.4.4: the CN only when the certificate has no
         * identifier of a kind we support (as Prosody does). */
        const X509_NAME *subj = X509_get_subject_name(cert);
        int i = -1;

        while (!ok &&
               (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0) {
            const ASN1_STRING *cn =
                X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
            unsigned char *u = NULL;
            int n = ASN1_STRING_to_UTF8(&u, cn);

            ok = n > 0 && memchr(u, '\0', (size_t)n) == NULL &&
                 s2s_dns_match((const char *)u, (size_t)n, host);
            OPENSSL_free(u);
        }
    }
    if (ace != NULL)
        idn2_free(ace);
    return ok;
}

/* Whether the peer of ssl presented a certificate that chains to a trust
 * anchor (name NULL) and, with name, is for that domain (DNS-ID, SRV-ID
 * or XmppAddr: roost_s2s_cert_name_ok). */
static int
s2s_cert_ok(SSL *ssl, const char *name)
{
    X509 *cert = ssl != NULL ? SSL_get1_peer_certificate(ssl) : NULL;
    STACK_OF(X509) *chain = ssl != NULL ? SSL_get_peer_cert_chain(ssl) : NULL;
    X509_STORE_CTX *ctx;
    int ok = 0;

    if (cert == NULL || s2s_store == NULL) {
        X509_free(cert);
        return 0;
    }
    ctx = X509_STORE_CTX_new();
    if (ctx != NULL && X509_STORE_CTX_init(ctx, s2s_store, cert, chain) == 1)
        ok = X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    if (ok && name != NULL)
        ok = roost_s2s_cert_name_ok(cert, name);
    X509_free(cert);
    return ok;
}

static SSL *
s2s_ssl(const roost_s2s_t *c)
{
    return c->tls && c->bev != NULL ? bufferevent_openssl_get_ssl(c->bev)
                                    : NULL;
}

/* Our certificate, for peers that authenticate us with SASL EXTERNAL. */
static void
s2s_use_host_cert(roost_s2s_t *c, SSL *ssl)
{
    roost_host_t *h = roost_server_host(c->local != NULL ? c->local : "");
    X509 *cert = h != NULL ? SSL_CTX_get0_certificate(h->tls) : NULL;
    EVP_PKEY *key = h != NULL ? SSL_CTX_get0_privatekey(h->tls) : NULL;

    if (cert != NULL && key != NULL) {
        SSL_use_certificate(ssl, cert);
        SSL_use_PrivateKey(ssl, key);
    }
}

/* --- local domains: hosts and components --- */

/* Whether domain is ours for federation: a host, or a component's
 * (XEP-0114) domain, for which this server is the authoritative server
 * in dialback and which remote servers reach through our s2s port. */
static int
s2s_is_local(const char *domain)
{
    return domain != NULL && (roost_server_host(domain) != NULL ||
                              roost_component_serves(domain));
}

/* The host that speaks for domain (bounces, TLS context): the host
 * itself; for a component's domain, the host it is a subdomain of, or
 * the first host (as core/component.c does); NULL if not ours. */
static roost_host_t *
s2s_host_for(const char *domain)
{
    roost_host_t *h = roost_server_host(domain);

    if (h != NULL || domain == NULL || !roost_component_serves(domain))
        return h;
    for (const char *d = strchr(domain, '.'); d != NULL && h == NULL;
         d = strchr(d + 1, '.'))
        h = roost_server_host(d + 1);
    return h != NULL ? h : roost_srv->hosts;
}

/* --- outgoing streams --- */

static roost_host_t *
s2s_local_host(const roost_s2s_t *c)
{
    return s2s_host_for(c->local);
}

/* The verify requests on c (going away) are answered as failed on the
 * streams that wait for them (XEP-0220 §2.4: the receiving server could
 * not verify). */
static void
s2s_verifies_fail(roost_s2s_t *c)
{
    while (c->verifies != NULL) {
        s2s_verify_t *v = c->verifies;
        roost_s2s_t *in = s2s_find_id(v->in_id);

        c->verifies = v->next;
        if (in != NULL) {
            char buf[600];

            snprintf(buf, sizeof(buf), "<db:result type='error'");
            roost_xml_append_attr(buf, sizeof(buf), "from", v->local);
            roost_xml_append_attr(buf, sizeof(buf), "to", v->remote);
            strcat(buf, "><error type='cancel'><remote-server-not-found "
                        "xmlns='" ROOST_NS_STANZAS "'/></error></db:result>");
            s2s_puts(in, buf);
        }
        s2s_verify_free(v);
    }
}

/* Bounces every queued stanza (RFC 6120 §10.4.3) and ends the stream;
 * verify requests riding on it are answered as failed.  why: NULL for a
 * failure, else what the peer did (it ended the stream), which is what
 * gets logged. */
static void
s2s_out_end(roost_s2s_t *c, roost_stanza_err_t cond, const char *why)
{
    roost_host_t *h = s2s_local_host(c);
    roost_stanza_t **q = c->q;
    int qn = c->qn;

    c->q = NULL;
    c->qn = c->qcap = 0;
    if (why == NULL)
        s2s_log(c, ROOST_LOG_INFO, "failed (%s): %d queued stanzas bounced",
                roost_stanza_err_name(cond), qn);
    else if (qn > 0)
        s2s_log(c, ROOST_LOG_INFO, "%s: %d queued stanzas bounced (%s)", why,
                qn, roost_stanza_err_name(cond));
    else
        s2s_log(c, ROOST_LOG_INFO, "%s", why);
    s2s_verifies_fail(c);
    s2s_close(c, NULL, NULL);
    for (int i = 0; i < qn; i++) {
        if (h != NULL)
            roost_router_bounce(h, q[i], cond, NULL);
        roost_stanza_unref(q[i]);
    }
    roost_free(q);
}

static void
s2s_out_fail(roost_s2s_t *c, roost_stanza_err_t cond)
{
    s2s_out_end(c, cond, NULL);
}

/* Whether outgoing c was still waiting to be authenticated (it has our
 * key out, or stanzas queued): the peer ending it then is a refusal. */
static int
s2s_out_waiting(const roost_s2s_t *c)
{
    return !c->authed && (c->db_sent || c->qn > 0 || c->state == OUT_SASL);
}

static void
s2s_out_flush(roost_s2s_t *c)
{
    struct timeval tv;

    for (int i = 0; i < c->qn; i++) {
        s2s_send_stanza(c, c->q[i]);
        roost_stanza_unref(c->q[i]);
    }
    c->qn = 0;
    /* Idle from now on unless used again. */
    timeval_ms(&tv, roost_srv->cfg->s2s_idle_timeout);
    evtimer_add(c->timer, &tv);
}

static void
s2s_send_verify(roost_s2s_t *c, s2s_verify_t *v)
{
    char buf[1200];

    v->sent = 1;
    snprintf(buf, sizeof(buf), "<db:verify");
    roost_xml_append_attr(buf, sizeof(buf), "from", v->local);
    roost_xml_append_attr(buf, sizeof(buf), "to", v->remote);
    roost_xml_append_attr(buf, sizeof(buf), "id", v->id);
    strcat(buf, ">");
    s2s_puts(c, buf);
    s2s_puts(c, v->key);
    s2s_puts(c, "</db:verify>");
}

static void
s2s_out_send_verifies(roost_s2s_t *c)
{
    for (s2s_verify_t *v = c->verifies; v != NULL; v = v->next)
        if (!v->sent)
            s2s_send_verify(c, v);
}

/* TLS is up (or not required) and the features are in: ask to be let in
 * (our key) if we have something to send, and send verify requests. */
static void
s2s_out_ready(roost_s2s_t *c)
{
    c->state = OUT_READY;
    s2s_out_send_verifies(c);
    if (c->authed && c->qn > 0) {
        s2s_out_flush(c);
        return;
    }
    if (!c->authed && !c->db_sent && c->qn > 0) {
        char key[65], buf[800];

        roost_s2s_dialback_key(s2s_secret, c->remote, c->local, c->stream_id,
                               key);
        c->db_sent = 1;
        snprintf(buf, sizeof(buf), "<db:result");
        roost_xml_append_attr(buf, sizeof(buf), "from", c->local);
        roost_xml_append_attr(buf, sizeof(buf), "to", c->remote);
        strcat(buf, ">");
        s2s_puts(c, buf);
        s2s_puts(c, key);
        s2s_puts(c, "</db:result>");
    }
}

static void
s2s_out_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_s2s_t *c = arg;

    if (c->closing)
        return;
    if (!c->authed && (c->qn > 0 || c->verifies != NULL)) {
        s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_TIMEOUT);
        return;
    }
    /* Idle (or never used for our own stanzas). */
    s2s_log(c, ROOST_LOG_DEBUG, "idle: closing");
    s2s_close(c, NULL, NULL);
}

static void
s2s_start_tls_out(roost_s2s_t *c)
{
    SSL *ssl = SSL_new(s2s_client_ctx);
    struct bufferevent *tb;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    /* <proceed/> and anything after it (injection) must not reach the
     * TLS layer as if it were a record. */
    evbuffer_drain(in, evbuffer_get_length(in));
    SSL_set_tlsext_host_name(ssl, c->remote);
    s2s_use_host_cert(c, ssl);
    tb = bufferevent_openssl_filter_new(roost_srv->base, c->bev, ssl,
                                        BUFFEREVENT_SSL_CONNECTING,
                                        BEV_OPT_CLOSE_ON_FREE);
    if (tb == NULL) {
        SSL_free(ssl);
        s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
        return;
    }
    c->bev = tb;
    c->tls = 1;
    bufferevent_setcb(tb, s2s_read_cb, NULL, s2s_event_cb, c);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    roost_xml_reset(c->xml);
    c->state = OUT_OPEN;
    s2s_header(c);
}

static int
s2s_type_is(const roost_stanza_t *el, const char *v)
{
    const char *t = roost_stanza_attr(el, "type");

    return t != NULL && strcmp(t, v) == 0;
}

/* XEP-0178: when the peer offers EXTERNAL and its certificate is valid
 * for its domain, authenticate with ours (the receiving server checks
 * it).  Returns non-zero when <auth/> went out. */
static int
s2s_out_try_external(roost_s2s_t *c, roost_stanza_t *features)
{
    roost_stanza_t *mechs =
        roost_stanza_child(features, ROOST_NS_SASL, "mechanisms");
    int offered = 0;
    unsigned char b64[4 * ((ROOST_JID_PART_MAX + 2) / 3) + 4];
    char buf[sizeof(b64) + 128];

    for (roost_stanza_t *m = mechs ? roost_stanza_first_child(mechs) : NULL;
         m != NULL; m = roost_stanza_next_sibling(m)) {
        const char *t = roost_stanza_name(m) ? roost_stanza_text(m) : NULL;

        if (t != NULL && strcmp(t, "EXTERNAL") == 0)
            offered = 1;
    }
    if (!offered || !c->tls || !s2s_cert_ok(s2s_ssl(c), c->remote))
        return 0;
    EVP_EncodeBlock(b64, (const unsigned char *)c->local,
                    (int)strlen(c->local));
    snprintf(buf, sizeof(buf),
             "<auth xmlns='" ROOST_NS_SASL "' mechanism='EXTERNAL'>%s</auth>",
             (const char *)b64);
    s2s_puts(c, buf);
    c->state = OUT_SASL;
    return 1;
}

/* A db:verify answer (type valid or invalid) on c, our outgoing stream
 * or a bidi stream of the peer's (XEP-0288): only an answer to a request
 * we sent on c counts, from the domain we asked; the pair on the
 * incoming stream waiting for it is then verified or refused. */
static void
s2s_verify_answer(roost_s2s_t *c, roost_stanza_t *el)
{
    const char *id = roost_stanza_attr(el, "id");
    const char *from = roost_stanza_attr(el, "from");
    s2s_verify_t **pp, *v = NULL;
    roost_s2s_t *in;
    char buf[800];

    for (pp = &c->verifies; id != NULL && *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->sent && strcmp((*pp)->id, id) == 0) {
            v = *pp;
            *pp = v->next;
            break;
        }
    if (v == NULL || from == NULL || strcmp(from, v->remote) != 0) {
        s2s_log(c, ROOST_LOG_INFO, "unsolicited dialback verify ignored");
        if (v != NULL)
            s2s_verify_free(v);
        return;
    }
    in = s2s_find_id(v->in_id);
    if (in != NULL) {
        int ok = s2s_type_is(el, "valid");

        for (s2s_pair_t *p = in->pairs; p != NULL; p = p->next)
            if (strcmp(p->remote, v->remote) == 0 &&
                strcmp(p->local, v->local) == 0) {
                p->valid = ok;
                s2s_bidi_update(in, p);
                if (ok)
                    s2s_in_authed(in);
            }
        snprintf(buf, sizeof(buf), "<db:result");
        roost_xml_append_attr(buf, sizeof(buf), "from", v->local);
        roost_xml_append_attr(buf, sizeof(buf), "to", v->remote);
        roost_xml_append_attr(buf, sizeof(buf), "type",
                              ok ? "valid" : "invalid");
        strcat(buf, "/>");
        s2s_puts(in, buf);
        s2s_log(in, ROOST_LOG_INFO, "%s %s by dialback",
                ok ? "verified" : "refused", v->remote);
        if (!ok)
            s2s_close(in, "not-authorized", "dialback key is invalid");
    }
    s2s_verify_free(v);
}

static int
s2s_out_element(roost_s2s_t *c, roost_stanza_t *el)
{
    const char *ns = roost_stanza_ns(el), *name = roost_stanza_name(el);

    if (ns == NULL)
        ns = "";
    if (strcmp(ns, ROOST_NS_STREAM) == 0 && strcmp(name, "features") == 0) {
        roost_stanza_t *tls = roost_stanza_child(el, ROOST_NS_TLS, "starttls");

        if (!c->tls && tls != NULL) {
            c->state = OUT_TLS;
            s2s_puts(c, "<starttls xmlns='" ROOST_NS_TLS "'/>");
            return 0;
        }
        if (!c->tls && s2s_require_tls(c->remote)) {
            /* s2s.require_encryption, or this peer's (s2s.peers). */
            s2s_log(c, ROOST_LOG_INFO, "peer offers no TLS: giving up");
            s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
            return 1;
        }
        if (!c->bidi && !c->authed && s2s_bidi_on(c->remote) &&
            roost_stanza_child(el, NS_BIDI_FEAT, "bidi") != NULL) {
            /* XEP-0288 §2: before authenticating; the peer may then send
             * its stanzas for us on this stream (s2s_out_bidi_stanza). */
            s2s_puts(c, "<bidi xmlns='" NS_BIDI "'/>");
            c->bidi = 1;
        }
        if (!c->authed && !c->sasl_failed && s2s_out_try_external(c, el))
            return 0;
        if (!c->authed && roost_srv->cfg->s2s_secure_auth) {
            /* s2s.secure_auth: no dialback. */
            s2s_log(c, ROOST_LOG_INFO,
                    "cannot authenticate with certificates: giving up");
            s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
            return 1;
        }
        s2s_out_ready(c);
        return 0;
    }
    if (strcmp(ns, ROOST_NS_SASL) == 0 && c->state == OUT_SASL) {
        if (strcmp(name, "success") == 0) {
            /* RFC 6120 §6.4.6: a new stream, authenticated. */
            c->authed = 1;
            s2s_log(c, ROOST_LOG_INFO, "authenticated (SASL EXTERNAL)");
            roost_xml_reset(c->xml);
            c->state = OUT_OPEN;
            s2s_header(c);
            return 1;
        }
        s2s_log(c, ROOST_LOG_INFO, "SASL EXTERNAL refused");
        c->sasl_failed = 1;
        if (roost_srv->cfg->s2s_secure_auth) {
            s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
            return 1;
        }
        s2s_out_ready(c); /* dialback instead */
        return 0;
    }
    if (strcmp(ns, ROOST_NS_TLS) == 0 && strcmp(name, "proceed") == 0 &&
        c->state == OUT_TLS) {
        s2s_start_tls_out(c);
        return 1; /* the parser was reset */
    }
    if (strcmp(ns, ROOST_NS_TLS) == 0) {
        s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
        return 1;
    }
    if (strcmp(ns, NS_DB) == 0 && strcmp(name, "result") == 0) {
        const char *from = roost_stanza_attr(el, "from");
        const char *to = roost_stanza_attr(el, "to");

        if (!c->db_sent || from == NULL || to == NULL ||
            strcmp(from, c->remote) != 0 || strcmp(to, c->local) != 0)
            return 0; /* not an answer to our request: ignore */
        if (s2s_type_is(el, "valid")) {
            c->authed = 1;
            s2s_log(c, ROOST_LOG_INFO, "authenticated (dialback)");
            s2s_out_flush(c);
        } else {
            s2s_log(c, ROOST_LOG_INFO, "dialback refused");
            s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
            return 1;
        }
        return 0;
    }
    if (strcmp(ns, NS_DB) == 0 && strcmp(name, "verify") == 0 && c->bidi &&
        roost_stanza_attr(el, "type") == NULL) {
        /* XEP-0288: the peer's outgoing direction is this stream, so a
         * verify request for our keys can come here. */
        s2s_in_verify(c, el);
        return c->closing;
    }
    if (strcmp(ns, NS_DB) == 0 && strcmp(name, "verify") == 0) {
        s2s_verify_answer(c, el);
        return c->closing;
    }
    if (strcmp(ns, ROOST_NS_STREAM) == 0 && strcmp(name, "error") == 0) {
        roost_stanza_t *cond = roost_stanza_first_child(el);

        s2s_log(c, ROOST_LOG_INFO, "peer sent a stream error: %s",
                cond != NULL && roost_stanza_name(cond) != NULL
                    ? roost_stanza_name(cond)
                    : "(no condition)");
        s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
        return 1;
    }
    if (c->bidi && roost_stanza_kind(el) != ROOST_STANZA_OTHER) {
        s2s_out_bidi_stanza(c, el);
        return c->closing;
    }
    /* Stanzas on our outgoing stream without bidi (XEP-0288). */
    s2s_close(c, "unsupported-stanza-type", NULL);
    return 1;
}

static void
s2s_out_connected(roost_s2s_t *c)
{
    c->state = OUT_OPEN;
    s2s_log(c, ROOST_LOG_DEBUG, "connected");
    s2s_header(c);
}

/* Connects to the next address of the targets (RFC 6120 §3.2.1 step 6:
 * each in turn until one answers); none left: the domain is not
 * reachable. */
static void
s2s_try_connect(roost_s2s_t *c)
{
    while (c->ti < c->ntargets) {
        const roost_target_t *t = &c->targets[c->ti];
        const roost_target_addr_t *a;

        if (c->ai >= t->naddrs) {
            c->ti++;
            c->ai = 0;
            continue;
        }
        a = &t->addrs[c->ai++];
        if (t->direct_tls) {
            /* XEP-0368: TLS from the first byte, ALPN xmpp-server, SNI
             * the domain (not the target host). */
            static const unsigned char alpn[] = "\x0bxmpp-server";
            SSL *ssl = SSL_new(s2s_client_ctx);

            SSL_set_tlsext_host_name(ssl, c->remote);
            SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
            s2s_use_host_cert(c, ssl);
            c->bev = bufferevent_openssl_socket_new(roost_srv->base, -1, ssl,
                                                    BUFFEREVENT_SSL_CONNECTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
            c->tls = 1;
        } else {
            c->bev = bufferevent_socket_new(roost_srv->base, -1,
                                            BEV_OPT_CLOSE_ON_FREE);
            c->tls = 0;
        }
        if (c->bev == NULL)
            continue;
        snprintf(c->addr, sizeof(c->addr), "%.50s:%u", t->host,
                 (unsigned)t->port);
        bufferevent_setcb(c->bev, s2s_read_cb, NULL, s2s_event_cb, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        s2s_log(c, ROOST_LOG_INFO, "connecting to %s port %u%s", t->host,
                (unsigned)t->port, t->direct_tls ? " (direct TLS)" : "");
        if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&a->sa,
                                       (int)a->len) == 0)
            return;
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
}

/* The connection attempt failed before the stream began: the next
 * address, if any. */
static void
s2s_connect_next(roost_s2s_t *c)
{
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    c->bev = NULL;
    c->state = OUT_CONNECTING;
    s2s_try_connect(c);
}

static void
s2s_resolved(void *arg, const roost_target_t *targets, int n, int err)
{
    roost_s2s_t *c = arg;

    c->lookup = NULL;
    if (c->closing)
        return;
    if (err != 0 || n <= 0) {
        s2s_log(c, ROOST_LOG_INFO, "cannot resolve: %s", roost_strerror(err));
        s2s_out_fail(c, err == -ROOST_EAGAIN
                            ? ROOST_SE_REMOTE_SERVER_TIMEOUT
                            : ROOST_SE_REMOTE_SERVER_NOT_FOUND);
        return;
    }
    c->targets = roost_resolve_targets_copy(targets, n);
    c->ntargets = n;
    c->ti = 0;
    c->ai = 0;
    s2s_try_connect(c);
}

/* The stream for local -> remote, made (connecting) if needed. */
static roost_s2s_t *
s2s_out_get(const char *local, const char *remote)
{
    roost_config_t *cfg = roost_srv->cfg;
    char key[S2S_KEY_MAX];
    roost_resolve_opts_t opts;
    roost_s2s_t *c;
    struct timeval tv;

    s2s_key(key, local, remote);
    HASH_FIND_STR(s2s_out_table, key, c);
    if (c != NULL)
        return c;
    c = s2s_new(S2S_OUT);
    c->key = roost_xstrdup(key);
    c->local = roost_xstrdup(local);
    c->remote = roost_xstrdup(remote);
    HASH_ADD_KEYPTR(hh, s2s_out_table, c->key, strlen(c->key), c);
    c->timer = evtimer_new(roost_srv->base, s2s_out_timer_cb, c);
    timeval_ms(&tv, cfg->s2s_connect_timeout);
    evtimer_add(c->timer, &tv);
    snprintf(c->addr, sizeof(c->addr), "%.60s", remote);
    c->xml = roost_xml_new(&(roost_xml_limits_t){(size_t)cfg->max_stanza_size,
                                                 (int)cfg->max_depth,
                                                 (int)cfg->max_attrs},
                           &s2s_xml_cb, c);
    /* RFC 6120 §3.2: static route, SRV (xmpps and xmpp), then the domain
     * on 5269; asynchronous (core/resolve.c). */
    opts.routes = s2s_routes;
    opts.nroutes = (size_t)cfg->ns2s_routes;
    opts.timeout_ms = (uint32_t)(cfg->s2s_connect_timeout / 2);
    if (s2s_resolver == NULL ||
        roost_resolve_server(s2s_resolver, remote, &opts, s2s_resolved, c,
                             &c->lookup) != 0)
        c->connect_failed = 1;
    return c;
}

/* For local -> remote when no outgoing stream of ours is authenticated
 * for it: an incoming stream on which the peer asked for bidi (XEP-0288)
 * and verified remote for local (dialback or SASL EXTERNAL), or NULL. */
static roost_s2s_t *
s2s_bidi_find(const char *local, const char *remote)
{
    char key[S2S_KEY_MAX];
    roost_s2s_t *c;
    s2s_pair_t *p;

    s2s_key(key, local, remote);
    HASH_FIND_STR(s2s_out_table, key, c);
    if (c != NULL && !c->closing && (c->authed || c->qn > 0))
        return NULL; /* ours is up, or holds earlier stanzas: in order */
    HASH_FIND_STR(s2s_bidi_table, key, p);
    if (p == NULL || p->conn->closing || p->conn->state != IN_READY)
        return NULL;
    return p->conn;
}

/* A stanza from the peer on our outgoing stream (XEP-0288).  The
 * direction peer -> us is authenticated for one pair only: from the
 * domain we connected to (found by its DNS, as dialback trusts it; with
 * s2s.secure_auth, its certificate must be valid for it) to the domain we
 * authenticated as; anything else is <invalid-from/>. */
static void
s2s_out_bidi_stanza(roost_s2s_t *c, roost_stanza_t *st)
{
    const char *from_s = roost_stanza_attr(st, "from");
    const char *to_s = roost_stanza_attr(st, "to");
    roost_jid_t *from = from_s ? roost_jid_new(from_s) : NULL;
    roost_jid_t *to = to_s ? roost_jid_new(to_s) : NULL;

    if (from == NULL || to == NULL) {
        s2s_close(c, "improper-addressing", NULL);
    } else if (!c->authed || strcmp(roost_jid_domain(from), c->remote) != 0 ||
               strcmp(roost_jid_domain(to), c->local) != 0 ||
               (roost_srv->cfg->s2s_secure_auth &&
                !s2s_cert_ok(s2s_ssl(c), c->remote))) {
        s2s_close(c, "invalid-from",
                  "that domain pair is not verified on this stream");
    } else {
        struct timeval tv;

        if (!c->bidi_used)
            s2s_log(c, ROOST_LOG_INFO,
                    "bidirectional (XEP-0288): stanzas from %s arrive on "
                    "this stream",
                    c->remote);
        c->bidi_used = 1;
        /* In use: not idle. */
        timeval_ms(&tv, roost_srv->cfg->s2s_idle_timeout);
        evtimer_add(c->timer, &tv);
        roost_stanza_set_attr(st, "from", roost_jid_full(from));
        roost_stanza_set_attr(st, "to", roost_jid_full(to));
        roost_router_route(s2s_local_host(c), NULL, st);
    }
    roost_jid_free(from);
    roost_jid_free(to);
}

void
roost_s2s_route(roost_stanza_t *st, const roost_jid_t *from,
                const roost_jid_t *to)
{
    /* From a host, or from a component (its domain checked by
     * core/component.c), which then is dialback's originating domain. */
    roost_host_t *h = s2s_host_for(roost_jid_domain(from));
    roost_s2s_t *c;

    if (h == NULL)
        return; /* not from one of ours: nothing to send it as */
    if ((c = s2s_bidi_find(roost_jid_domain(from), roost_jid_domain(to))) !=
        NULL) {
        /* XEP-0288: the peer's stream, verified for that pair. */
        if (!c->bidi_used)
            s2s_log(c, ROOST_LOG_INFO,
                    "bidirectional (XEP-0288): stanzas to %s go on this "
                    "stream",
                    roost_jid_domain(to));
        c->bidi_used = 1;
        s2s_send_stanza(c, st);
        return;
    }
    c = s2s_out_get(roost_jid_domain(from), roost_jid_domain(to));
    if (c->closing) {
        roost_router_bounce(h, st, ROOST_SE_REMOTE_SERVER_NOT_FOUND, NULL);
        return;
    }
    if (c->authed) {
        struct timeval tv;

        s2s_send_stanza(c, st);
        timeval_ms(&tv, roost_srv->cfg->s2s_idle_timeout);
        evtimer_add(c->timer, &tv);
        return;
    }
    if (c->qn == c->qcap) {
        c->qcap = c->qcap ? c->qcap * 2 : 8;
        c->q = roost_xrealloc(c->q, (size_t)c->qcap * sizeof(*c->q));
    }
    c->q[c->qn++] = roost_stanza_ref(st);
    if (c->connect_failed)
        s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
    else if (c->state == OUT_READY)
        s2s_out_ready(c); /* sends our key if not yet done */
}

/* --- incoming streams --- */

static int
s2s_in_pair_valid(const roost_s2s_t *c, const char *remote, const char *local)
{
    for (const s2s_pair_t *p = c->pairs; p != NULL; p = p->next)
        if (p->valid && strcmp(p->remote, remote) == 0 &&
            strcmp(p->local, local) == 0)
            return 1;
    return 0;
}

static void
s2s_in_features(roost_s2s_t *c)
{
    int secure = roost_srv->cfg->s2s_secure_auth;
    /* The peer is not authenticated yet: its header's from only says
     * whose policy applies to what we offer (s2s_in_plain_ok decides). */
    int req = !c->tls && s2s_require_tls(c->hdr_from);
    /* Assembled, then written once: one TLS record, not one per piece. */
    char buf[512] = "<stream:features>";

    if (!c->tls && !c->notls)
        strcat(buf, req ? "<starttls xmlns='" ROOST_NS_TLS
                          "'><required/></starttls>"
                        : "<starttls xmlns='" ROOST_NS_TLS "'/>");
    if (!req) {
        /* EXTERNAL while not authenticated that way, and only when the
         * peer's certificate chains to a trust anchor (the name is
         * checked against the authzid). */
        if (!c->sasl_authed && s2s_cert_ok(s2s_ssl(c), NULL))
            strcat(buf, "<mechanisms xmlns='" ROOST_NS_SASL
                        "'><mechanism>EXTERNAL</mechanism></mechanisms>");
        if (!secure)
            strcat(buf,
                   "<dialback xmlns='" NS_DB_FEAT "'><errors/></dialback>");
        if (!c->bidi && s2s_bidi_on(c->hdr_from))
            strcat(buf, "<bidi xmlns='" NS_BIDI_FEAT "'/>");
    }
    strcat(buf, "</stream:features>");
    s2s_puts(c, buf);
}

/* <auth mechanism='EXTERNAL'/> (XEP-0178 §3): the authzid (or the
 * stream's from) names the peer's domain; its certificate must be valid
 * for it.  Then the stream restarts, that domain verified for ours. */
static int
s2s_in_auth(roost_s2s_t *c, roost_stanza_t *el)
{
    const char *mech = roost_stanza_attr(el, "mechanism");
    const char *text = roost_stanza_text(el);
    unsigned char dec[ROOST_JID_PART_MAX + 4];
    char *domain = NULL;
    s2s_pair_t *p;

    if (mech == NULL || strcmp(mech, "EXTERNAL") != 0 || !c->tls ||
        c->sasl_authed) {
        s2s_puts(c, "<failure xmlns='" ROOST_NS_SASL
                    "'><invalid-mechanism/></failure>");
        return 0;
    }
    if (text != NULL && *text != '\0' && strcmp(text, "=") != 0) {
        size_t len = strlen(text);
        int n;

        if (len > 4 * ((ROOST_JID_PART_MAX + 2) / 3) ||
            (n = EVP_DecodeBlock(dec, (const unsigned char *)text, (int)len)) <
                0) {
            s2s_puts(c, "<failure xmlns='" ROOST_NS_SASL
                        "'><incorrect-encoding/></failure>");
            return 0;
        }
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        while (n > 0 && dec[n - 1] == '\0')
            n--;
        dec[n] = '\0';
        domain = roost_jid_prep_domain((const char *)dec);
    } else if (c->hdr_from != NULL) {
        domain = roost_xstrdup(c->hdr_from);
    }
    if (domain == NULL || c->local == NULL || s2s_is_local(domain) ||
        !s2s_cert_ok(s2s_ssl(c), domain)) {
        s2s_log(c, ROOST_LOG_INFO, "SASL EXTERNAL refused for %s",
                domain ? domain : "(no domain)");
        roost_free(domain);
        s2s_puts(c, "<failure xmlns='" ROOST_NS_SASL
                    "'><not-authorized/></failure>");
        return 0;
    }
    p = roost_xcalloc(1, sizeof(*p)); /* s2s_free_now */
    p->remote = domain;
    p->local = roost_xstrdup(c->local);
    p->valid = 1;
    p->next = c->pairs;
    c->pairs = p;
    s2s_bidi_update(c, p);
    s2s_in_authed(c);
    if (c->remote == NULL)
        c->remote = roost_xstrdup(domain);
    c->sasl_authed = 1;
    s2s_log(c, ROOST_LOG_INFO, "authenticated %s (SASL EXTERNAL)", domain);
    s2s_puts(c, "<success xmlns='" ROOST_NS_SASL "'/>");
    roost_xml_reset(c->xml);
    c->state = IN_OPEN;
    return 1;
}

/* db:result from the peer: verify its key with the authoritative server
 * of the domain it claims, through our stream to that domain. */
static void
s2s_in_result(roost_s2s_t *c, roost_stanza_t *el)
{
    const char *from = roost_stanza_attr(el, "from");
    const char *to = roost_stanza_attr(el, "to");
    const char *key = roost_stanza_text(el);
    char *remote = from != NULL ? roost_jid_prep_domain(from) : NULL;
    roost_s2s_t *out;
    s2s_verify_t *v;
    s2s_pair_t *p;

    if (remote == NULL || to == NULL || key == NULL || *key == '\0') {
        roost_free(remote);
        s2s_close(c, "improper-addressing",
                  "dialback result without from, "
                  "to or key");
        return;
    }
    if (!s2s_is_local(to)) {
        roost_free(remote);
        s2s_close(c, "host-unknown", NULL);
        return;
    }
    if (s2s_is_local(remote)) {
        /* A peer claiming one of our own domains. */
        roost_free(remote);
        s2s_close(c, "invalid-from", NULL);
        return;
    }
    p = roost_xcalloc(1, sizeof(*p)); /* s2s_free_now */
    p->remote = remote;
    p->local = roost_xstrdup(to);
    p->next = c->pairs;
    c->pairs = p;
    if (c->remote == NULL)
        c->remote = roost_xstrdup(remote);
    v = roost_xcalloc(1, sizeof(*v)); /* freed with the answer */
    v->id = roost_xstrdup(c->stream_id);
    v->key = roost_xstrndup(key, 256);
    v->remote = roost_xstrdup(remote);
    v->local = roost_xstrdup(to);
    v->in_id = c->id;
    s2s_log(c, ROOST_LOG_DEBUG, "verifying %s's key", remote);
    /* The authoritative server is asked on a stream that exists if one
     * can carry it: our authenticated stream to it (s2s_out_get finds
     * it), else a stream of its on which it asked for bidi and is
     * verified for that pair (our direction on it, XEP-0288), else our
     * stream to it, made if needed. */
    if ((out = s2s_bidi_find(to, remote)) != NULL && out != c) {
        v->next = out->verifies;
        out->verifies = v;
        s2s_log(out, ROOST_LOG_INFO,
                "dialback verify request for %s sent on this bidirectional "
                "stream (XEP-0288)",
                remote);
        s2s_send_verify(out, v);
        return;
    }
    out = s2s_out_get(to, remote);
    v->next = out->verifies;
    out->verifies = v;
    if (out->state == OUT_READY)
        s2s_out_send_verifies(out);
}

/* db:verify on an incoming stream: we are the authoritative server. */
static void
s2s_in_verify(roost_s2s_t *c, roost_stanza_t *el)
{
    const char *from = roost_stanza_attr(el, "from");
    const char *to = roost_stanza_attr(el, "to");
    const char *id = roost_stanza_attr(el, "id");
    const char *key = roost_stanza_text(el);
    char want[65], buf[900];
    int ok;

    if (from == NULL || to == NULL || id == NULL || key == NULL) {
        s2s_close(c, "improper-addressing", NULL);
        return;
    }
    if (!s2s_is_local(to)) {
        s2s_close(c, "host-unknown", NULL);
        return;
    }
    /* Keys of a component's domain too: we made them (roost_s2s_route). */
    roost_s2s_dialback_key(s2s_secret, from, to, id, want);
    ok = s2s_key_eq(want, key);
    snprintf(buf, sizeof(buf), "<db:verify");
    roost_xml_append_attr(buf, sizeof(buf), "from", to);
    roost_xml_append_attr(buf, sizeof(buf), "to", from);
    roost_xml_append_attr(buf, sizeof(buf), "id", id);
    roost_xml_append_attr(buf, sizeof(buf), "type", ok ? "valid" : "invalid");
    strcat(buf, "/>");
    s2s_puts(c, buf);
}

static void
s2s_in_stanza(roost_s2s_t *c, roost_stanza_t *st)
{
    const char *from_s = roost_stanza_attr(st, "from");
    const char *to_s = roost_stanza_attr(st, "to");
    roost_jid_t *from = from_s ? roost_jid_new(from_s) : NULL;
    roost_jid_t *to = to_s ? roost_jid_new(to_s) : NULL;
    roost_host_t *h;

    if (from == NULL || to == NULL) {
        /* RFC 6120 §8.1.1.1, §8.1.2.1: both required between servers. */
        s2s_close(c, "improper-addressing", NULL);
        goto out;
    }
    if (!s2s_in_pair_valid(c, roost_jid_domain(from), roost_jid_domain(to))) {
        s2s_close(c, "invalid-from",
                  "that domain pair is not verified "
                  "on this stream");
        goto out;
    }
    /* A host, or a component the router hands it to (XEP-0114). */
    h = s2s_host_for(roost_jid_domain(to));
    roost_stanza_set_attr(st, "from", roost_jid_full(from));
    roost_stanza_set_attr(st, "to", roost_jid_full(to));
    roost_router_route(h, NULL, st);
out:
    roost_jid_free(from);
    roost_jid_free(to);
}

static void
s2s_start_tls_in(roost_s2s_t *c)
{
    roost_host_t *h = s2s_local_host(c);
    SSL *ssl = SSL_new(h != NULL ? h->tls : roost_srv->default_tls);
    struct bufferevent *tb;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    /* Ask for the peer's certificate (SASL EXTERNAL, XEP-0178); one
     * that does not verify only means dialback. */
    SSL_set_verify(ssl, SSL_VERIFY_PEER, s2s_verify_any);
    /* Prosody and ejabberd offer ALPN xmpp-server on s2s STARTTLS; the
     * host context is set up for xmpp-client. */
    roost_tls_set_conn_alpn(ssl, "xmpp-server");
    /* Nothing sent before the handshake is read as if it were inside. */
    evbuffer_drain(in, evbuffer_get_length(in));
    tb = bufferevent_openssl_filter_new(roost_srv->base, c->bev, ssl,
                                        BUFFEREVENT_SSL_ACCEPTING,
                                        BEV_OPT_CLOSE_ON_FREE);
    if (tb == NULL) {
        SSL_free(ssl);
        s2s_schedule_free(c);
        return;
    }
    c->bev = tb;
    c->tls = 1;
    c->pa_mark = 0; /* a new input buffer */
    bufferevent_setcb(tb, s2s_read_cb, NULL, s2s_event_cb, c);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    roost_xml_reset(c->xml);
    c->state = IN_OPEN;
}

/* Whether el may come on incoming c without TLS.  The peer is not known
 * before dialback, so the domain a dialback element claims decides:
 * a db:result or db:verify only for a domain whose policy allows
 * plaintext (s2s.peers), so that a domain that needs TLS cannot be
 * authenticated (nor have its keys checked) on a plaintext stream;
 * anything else by the domain the stream authenticated as, or the
 * header's (stanzas still need a verified pair). */
static int
s2s_in_plain_ok(const roost_s2s_t *c, roost_stanza_t *el, const char *ns,
                const char *name)
{
    const char *from = roost_stanza_attr(el, "from");
    char *d;
    int ok;

    if (c->tls)
        return 1;
    if (strcmp(ns, NS_DB) != 0 ||
        (strcmp(name, "result") != 0 && strcmp(name, "verify") != 0))
        return !s2s_require_tls(c->remote != NULL ? c->remote : c->hdr_from);
    if (from == NULL || (d = roost_jid_prep_domain(from)) == NULL)
        return 0;
    ok = !s2s_require_tls(d);
    roost_free(d);
    return ok;
}

static int
s2s_in_element(roost_s2s_t *c, roost_stanza_t *el)
{
    const char *ns = roost_stanza_ns(el), *name = roost_stanza_name(el);

    if (ns == NULL)
        ns = "";
    if (strcmp(ns, ROOST_NS_TLS) == 0 && strcmp(name, "starttls") == 0) {
        if (c->tls || c->notls) {
            s2s_puts(c, "<failure xmlns='" ROOST_NS_TLS "'/>");
            s2s_close(c, NULL, NULL);
            return 1;
        }
        s2s_puts(c, "<proceed xmlns='" ROOST_NS_TLS "'/>");
        s2s_start_tls_in(c);
        return 1;
    }
    if (!s2s_in_plain_ok(c, el, ns, name)) {
        /* RFC 6120 §5.3.1: TLS first (for this domain). */
        s2s_close(c, "policy-violation", "STARTTLS is required");
        return 1;
    }
    if (strcmp(ns, NS_BIDI) == 0 && strcmp(name, "bidi") == 0) {
        /* XEP-0288 §2: no answer; once a pair is verified here, our
         * stanzas for the peer may use this stream (s2s_bidi_find). */
        c->bidi = 1;
        for (s2s_pair_t *p = c->pairs; p != NULL; p = p->next)
            s2s_bidi_update(c, p);
        s2s_log(c, ROOST_LOG_DEBUG, "peer asks for a bidirectional stream");
        return 0;
    }
    if (strcmp(ns, ROOST_NS_SASL) == 0 && strcmp(name, "auth") == 0)
        return s2s_in_auth(c, el);
    if (strcmp(ns, NS_DB) == 0 && strcmp(name, "result") == 0) {
        if (roost_srv->cfg->s2s_secure_auth) {
            s2s_close(c, "not-authorized",
                      "dialback is not accepted here (certificates only)");
            return 1;
        }
        s2s_in_result(c, el);
        return c->closing;
    }
    if (strcmp(ns, NS_DB) == 0 && strcmp(name, "verify") == 0) {
        /* A request (we are the authoritative server), or the answer to
         * one we sent on this stream (bidi, s2s_in_result). */
        if (roost_stanza_attr(el, "type") != NULL)
            s2s_verify_answer(c, el);
        else
            s2s_in_verify(c, el);
        return c->closing;
    }
    if (roost_stanza_kind(el) != ROOST_STANZA_OTHER) {
        s2s_in_stanza(c, el);
        return c->closing;
    }
    if (strcmp(ns, ROOST_NS_STREAM) == 0 && strcmp(name, "error") == 0) {
        s2s_close(c, NULL, NULL);
        return 1;
    }
    s2s_close(c, "unsupported-stanza-type", NULL);
    return 1;
}

static void
s2s_in_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    roost_s2s_t *c = arg;

    if (c->closing)
        return;
    for (s2s_pair_t *p = c->pairs; p != NULL; p = p->next)
        if (p->valid)
            return; /* authenticated: the peer decides when to close */
    s2s_close(c, "connection-timeout", "no domain verified in time");
}

/* --- parser callbacks (both directions) --- */

static const char *
s2s_attr_get(const char *const *attrs, const char *name)
{
    for (; attrs != NULL && attrs[0] != NULL; attrs += 2)
        if (strcmp(attrs[0], name) == 0)
            return attrs[1];
    return NULL;
}

static int
s2s_xml_open(void *ud, const char *ns, const char *name,
             const char *const *attrs, const char *default_ns)
{
    roost_s2s_t *c = ud;
    const char *to = s2s_attr_get(attrs, "to");
    const char *id = s2s_attr_get(attrs, "id");

    if (ns == NULL || strcmp(ns, ROOST_NS_STREAM) != 0 ||
        strcmp(name, "stream") != 0 || default_ns == NULL ||
        strcmp(default_ns, NS_SERVER) != 0) {
        if (c->dir == S2S_IN && c->state == IN_OPEN)
            s2s_header(c);
        s2s_close(c, "invalid-namespace", NULL);
        return 1;
    }
    if (c->dir == S2S_OUT) {
        if (id == NULL) {
            s2s_close(c, "invalid-xml", "no stream id");
            return 1;
        }
        snprintf(c->stream_id, sizeof(c->stream_id), "%.39s", id);
        return 0;
    }
    /* Incoming: a header names the host (the first one fixes it). */
    {
        unsigned char r[16];
        char *host = to != NULL ? roost_jid_prep_domain(to) : NULL;

        if (host == NULL || !s2s_is_local(host) ||
            (c->local != NULL && strcmp(c->local, host) != 0)) {
            roost_free(host);
            s2s_header(c);
            s2s_close(c, "host-unknown", NULL);
            return 1;
        }
        if (c->local == NULL)
            c->local = host;
        else
            roost_free(host);
        {
            const char *from = s2s_attr_get(attrs, "from");

            roost_free(c->hdr_from);
            c->hdr_from = from != NULL ? roost_jid_prep_domain(from) : NULL;
        }
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            memset(r, (int)(c->id & 0xff), sizeof(r));
        hex(r, sizeof(r), c->stream_id);
        s2s_header(c);
        s2s_in_features(c);
        c->state = IN_READY;
    }
    return 0;
}

static int
s2s_xml_stanza(void *ud, roost_stanza_t *el)
{
    roost_s2s_t *c = ud;
    int stop;

    c->refs++;
    stop = c->closing          ? 1
           : c->dir == S2S_OUT ? s2s_out_element(c, el)
                               : s2s_in_element(c, el);
    roost_stanza_unref(el);
    if (c->closing)
        stop = 1;
    s2s_release(c);
    return stop;
}

static void
s2s_xml_close(void *ud)
{
    roost_s2s_t *c = ud;

    /* The peer ended the stream: not a failure once it is established
     * (what is still queued bounces all the same). */
    if (c->dir == S2S_OUT) {
        s2s_out_end(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND,
                    s2s_out_waiting(c) ? "the peer closed the stream before "
                                         "authenticating us"
                                       : "the peer closed the stream");
        return;
    }
    s2s_log(c, c->remote != NULL ? ROOST_LOG_INFO : ROOST_LOG_DEBUG,
            "the peer closed the stream");
    s2s_close(c, NULL, NULL);
}

static void
s2s_xml_error(void *ud, const char *cond, const char *text)
{
    roost_s2s_t *c = ud;

    if (c->dir == S2S_IN && c->state == IN_OPEN)
        s2s_header(c);
    if (c->dir == S2S_OUT)
        s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_NOT_FOUND);
    else
        s2s_close(c, cond, text);
}

static const roost_xml_cb_t s2s_xml_cb = {
    .stream_open = s2s_xml_open,
    .stanza = s2s_xml_stanza,
    .stream_close = s2s_xml_close,
    .error = s2s_xml_error,
};

/* --- I/O --- */

static void
s2s_read_cb(struct bufferevent *bev, void *arg)
{
    roost_s2s_t *c = arg;
    struct evbuffer *in;

    c->refs++;
    in = bufferevent_get_input(bev);
    if (c->preauth && !c->closing && c->bev == bev &&
        roost_preauth_count(&c->pa_read, &c->pa_mark,
                            evbuffer_get_length(in))) {
        /* limits.preauth_max_bytes, as for c2s (core/conn.c). */
        s2s_log(c, ROOST_LOG_INFO,
                "closing: %zu bytes before authentication "
                "(preauth_max_bytes)",
                c->pa_read);
        evbuffer_drain(in, evbuffer_get_length(in));
        c->pa_mark = 0;
        s2s_close(c, "policy-violation", "too much data before authentication");
    }
    while (!c->closing && c->bev == bev &&
           evbuffer_get_length(in = bufferevent_get_input(bev)) > 0) {
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
    if (c->preauth && c->bev == bev) {
        /* What is left was counted already. */
        c->pa_mark = evbuffer_get_length(bufferevent_get_input(bev));
        s2s_preauth_update(c);
    }
    s2s_release(c);
}

static void
s2s_event_cb(struct bufferevent *bev, short what, void *arg)
{
    roost_s2s_t *c = arg;

    if (what & BEV_EVENT_CONNECTED) {
        if (c->dir == S2S_OUT && c->state == OUT_CONNECTING)
            s2s_out_connected(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        int out_up = c->dir == S2S_OUT && c->state != OUT_CONNECTING;
        /* The peer hung up: TCP FIN, also without TLS close_notify (a
         * server shutting down often sends neither that nor
         * </stream:stream>).  Logged as such, not as a failure. */
        int hangup = ((what & BEV_EVENT_EOF) && e == 0) ||
                     ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;

        if (c->closing) {
            s2s_schedule_free(c);
            return;
        }
        if (out_up && hangup) {
            s2s_out_end(c, ROOST_SE_REMOTE_SERVER_TIMEOUT,
                        s2s_out_waiting(c)
                            ? "the peer closed the connection before "
                              "authenticating us"
                            : "the peer closed the connection");
            return;
        }
        if (c->dir == S2S_IN && hangup) {
            s2s_log(c, c->remote != NULL ? ROOST_LOG_INFO : ROOST_LOG_DEBUG,
                    "the peer closed the connection");
            s2s_schedule_free(c);
            return;
        }
        s2s_log(c, ROOST_LOG_INFO, "connection %s%s%s",
                (what & BEV_EVENT_EOF) ? "closed" : "failed",
                e != 0 ? ": TLS: " : "",
                e != 0 ? ERR_reason_error_string(e) : "");
        if (c->dir == S2S_OUT && c->state == OUT_CONNECTING)
            s2s_connect_next(c);
        else if (out_up)
            s2s_out_fail(c, ROOST_SE_REMOTE_SERVER_TIMEOUT);
        else
            s2s_schedule_free(c);
    }
}

static void
s2s_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
              struct sockaddr *sa, int socklen, void *arg)
{
    const roost_listen_conf_t *l = arg;
    roost_config_t *cfg = roost_srv->cfg;
    roost_s2s_t *c;
    struct timeval tv;
    char ip[ROOST_ADDR_STRLEN];

    roost_addr_str(sa, ip);
    if (roost_preauth_full(ip)) {
        /* limits.preauth_max_total: as c2s does, before any byte. */
        evutil_closesocket(fd);
        return;
    }
    c = s2s_new(S2S_IN);
    snprintf(c->addr, sizeof(c->addr), "%s", ip);
    c->state = IN_OPEN;
    c->notls = l != NULL && l->tls == ROOST_TLS_NONE;
    /* Until a pair is verified: limits.preauth_* (s2s_in_authed). */
    c->preauth = 1;
    c->xml = roost_xml_new(&(roost_xml_limits_t){roost_preauth_max_stanza(),
                                                 (int)cfg->max_depth,
                                                 (int)cfg->max_attrs},
                           &s2s_xml_cb, c);
    if (l != NULL && l->tls == ROOST_TLS_DIRECT) {
        /* XEP-0368: TLS from the first byte (an _xmpps-server target);
         * SNI picks the host's certificate, ALPN is xmpp-server. */
        SSL *ssl = SSL_new(roost_srv->default_tls);

        SSL_set_verify(ssl, SSL_VERIFY_PEER, s2s_verify_any);
        roost_tls_set_conn_alpn(ssl, "xmpp-server");
        c->bev = bufferevent_openssl_socket_new(roost_srv->base, fd, ssl,
                                                BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        c->tls = 1;
    } else {
        c->bev =
            bufferevent_socket_new(roost_srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        s2s_schedule_free(c);
        return;
    }
    bufferevent_setcb(c->bev, s2s_read_cb, NULL, s2s_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->timer = evtimer_new(roost_srv->base, s2s_in_timer_cb, c);
    timeval_ms(&tv, cfg->s2s_connect_timeout);
    evtimer_add(c->timer, &tv);
    s2s_preauth_update(c);
    s2s_log(c, ROOST_LOG_DEBUG, "connected");
}

/* --- setup --- */

int
roost_s2s_enabled(void)
{
    return s2s_nlisteners > 0;
}

int
roost_s2s_listen(const roost_listen_conf_t *l, char **err)
{
    int rc = roost_listen_bind(l, s2s_accept_cb, (void *)l, 128, "s2s",
                               &s2s_listeners, &s2s_nlisteners, err);

    if (rc < 0)
        return rc;
    ROOST_LOG(ROOST_LOG_INFO, "core", "listening on %s port %d (s2s, %s)",
              l->address, l->port,
              l->tls == ROOST_TLS_DIRECT               ? "direct TLS"
              : l->tls == ROOST_TLS_NONE               ? "no TLS"
              : roost_srv->cfg->s2s_require_encryption ? "STARTTLS required"
                                                       : "STARTTLS offered");
    return 0;
}

int
roost_s2s_init(char **err)
{
    const char *secret = roost_srv->cfg->s2s_secret;
    roost_resolver_conf_t rc = {0};
    unsigned char r[32];

    if (secret != NULL) {
        snprintf(s2s_secret, sizeof(s2s_secret), "%.64s", secret);
    } else {
        /* Keys only need to outlive the verifications in flight. */
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            *err = roost_xstrdup("no randomness for the dialback secret");
            return -ROOST_EIO;
        }
        hex(r, sizeof(r), s2s_secret);
    }
    s2s_client_ctx = SSL_CTX_new(TLS_client_method());
    if (s2s_client_ctx == NULL) {
        *err = roost_xstrdup("cannot create the s2s TLS context");
        return -ROOST_ETLS;
    }
    SSL_CTX_set_min_proto_version(s2s_client_ctx, TLS1_2_VERSION);
    /* Authentication is dialback's (XEP-0220 over TLS); PKIX and SASL
     * EXTERNAL come with XEP-0178. */
    SSL_CTX_set_verify(s2s_client_ctx, SSL_VERIFY_NONE, NULL);
    /* Trust anchors for XEP-0178: the system's, or s2s.ca_file. */
    s2s_store = X509_STORE_new();
    if (roost_srv->cfg->s2s_ca_file != NULL) {
        if (X509_STORE_load_file(s2s_store, roost_srv->cfg->s2s_ca_file) != 1) {
            *err = roost_xmalloc(600);
            snprintf(*err, 600, "cannot read s2s.ca_file %.500s",
                     roost_srv->cfg->s2s_ca_file);
            return -ROOST_ETLS;
        }
    } else {
        X509_STORE_set_default_paths(s2s_store);
    }
    rc.servers = roost_srv->cfg->s2s_dns_servers;
    if (roost_resolver_new(roost_srv->base, &rc, &s2s_resolver) != 0) {
        *err = roost_xstrdup("cannot start the DNS resolver (c-ares)");
        return -ROOST_EIO;
    }
    s2s_routes = roost_xcalloc((size_t)roost_srv->cfg->ns2s_routes + 1,
                               sizeof(*s2s_routes)); /* shutdown */
    for (int i = 0; i < roost_srv->cfg->ns2s_peers; i++) {
        s2s_peer_t *p = roost_xcalloc(1, sizeof(*p)); /* shutdown */

        p->conf = &roost_srv->cfg->s2s_peers[i];
        HASH_ADD_KEYPTR(hh, s2s_peer_table, p->conf->domain,
                        strlen(p->conf->domain), p);
    }
    for (int i = 0; i < roost_srv->cfg->ns2s_routes; i++) {
        s2s_routes[i].domain = roost_srv->cfg->s2s_routes[i].domain;
        s2s_routes[i].host = roost_srv->cfg->s2s_routes[i].host;
        s2s_routes[i].port = (uint16_t)roost_srv->cfg->s2s_routes[i].port;
    }
    return 0;
}

void
roost_s2s_shutdown(void)
{
    for (int i = 0; i < s2s_nlisteners; i++)
        evconnlistener_free(s2s_listeners[i]);
    roost_free(s2s_listeners);
    s2s_listeners = NULL;
    s2s_nlisteners = 0;
    while (s2s_all != NULL) {
        roost_s2s_t *c = s2s_all;

        if (c->bev != NULL && !c->closing)
            s2s_puts(c, "</stream:stream>");
        c->refs = 1;
        s2s_free_now(c);
    }
    roost_resolver_free(s2s_resolver);
    s2s_resolver = NULL;
    roost_free(s2s_routes);
    s2s_routes = NULL;
    {
        s2s_peer_t *p, *tmp;

        HASH_ITER (hh, s2s_peer_table, p, tmp) {
            HASH_DEL(s2s_peer_table, p);
            roost_free(p);
        }
    }
    if (s2s_client_ctx != NULL)
        SSL_CTX_free(s2s_client_ctx);
    s2s_client_ctx = NULL;
    X509_STORE_free(s2s_store);
    s2s_store = NULL;
}
