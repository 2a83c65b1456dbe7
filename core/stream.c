/* core/stream.c: the c2s stream state machine (RFC 6120 §4-§7), sans I/O.
 *
 * Takes bytes, drives core/xml.c, answers stream negotiation (header,
 * features, STARTTLS, SASL, resource binding, the legacy session) and hands
 * bound stanzas to ops->stanza.  What it does not do: sockets, TLS, SASL
 * mechanics, session tables, routing; those are callbacks (core/conn.c
 * provides them).  See core/stream.h for the contract. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <roost/jid.h>
#include "stream.h"

#define NS_CLIENT ROOST_NS_CLIENT
#define NS_SASL2  "urn:xmpp:sasl:2"
#define NS_BIND2  "urn:xmpp:bind:0"
#define NS_SM     "urn:xmpp:sm:3"
#define NS_FAST   "urn:xmpp:fast:0"

struct roost_stream {
    roost_stream_conf_t conf;
    const roost_stream_ops_t *ops;
    void *ud;
    roost_xml_t *xml;
    roost_stream_state_t state;
    int header_sent;       /* our <stream:stream> is out */
    int authenticated;     /* SASL succeeded */
    int sasl_active;       /* an exchange is in progress (after <auth/>) */
    int sasl2;             /* ... and it is XEP-0388's <authenticate/> */
    roost_stanza_t *bind2; /* its XEP-0386 <bind/> request, or NULL */
    char *agent_id;        /* its <user-agent id=''/>, or NULL */
    char *fast_req;        /* XEP-0484 <request-token mechanism=''/> */
    int fast_invalidate;   /* <fast invalidate='true'/> */
    int auth_failures;
    int stop; /* a callback asked the parser to stop */
    int closed_called;
    int fresh;  /* the parser has seen no byte since a reset */
    char *host; /* prepared 'to' of the client's header */
    char *peer; /* the client's 'from', if a valid JID */
    char *user; /* authenticated localpart */
    char id[33];
};

static void stream_send_header(roost_stream_t *st);

/* SASL succeeded: the stanza limit for authenticated streams applies
 * from the next byte (pre-authentication stanzas are small: headers,
 * SASL, XEP-0077 forms). */
static void
stream_authenticated(roost_stream_t *st)
{
    st->authenticated = 1;
    if (st->conf.max_stanza_authed > 0)
        roost_xml_set_max_stanza(st->xml, st->conf.max_stanza_authed);
}

/* Corking: what one step sends in pieces (our header and the features
 * after it, or the features' children) leaves in one write, so over TLS
 * one record and one encryption instead of one per piece (six per
 * stream start before).  The loop thread runs one stream's step at a
 * time, so one buffer serves all streams; a write by another stream
 * meanwhile goes out directly. */
static struct {
    roost_stream_t *owner;
    int depth;
    char *buf;
    size_t len, cap;
} stream_cork_buf;

static void
stream_cork(roost_stream_t *st)
{
    if (stream_cork_buf.depth == 0)
        stream_cork_buf.owner = st;
    if (stream_cork_buf.owner == st)
        stream_cork_buf.depth++;
}

static void
stream_uncork(roost_stream_t *st)
{
    size_t n = stream_cork_buf.len;

    if (stream_cork_buf.owner != st || --stream_cork_buf.depth > 0)
        return;
    stream_cork_buf.owner = NULL;
    stream_cork_buf.len = 0;
    if (n > 0)
        st->ops->write(st->ud, stream_cork_buf.buf, n);
}

static void
stream_write(roost_stream_t *st, const char *s, size_t len)
{
    if (stream_cork_buf.owner == st) {
        if (stream_cork_buf.cap - stream_cork_buf.len < len) {
            size_t cap = stream_cork_buf.cap > 0 ? stream_cork_buf.cap : 2048;

            while (cap - stream_cork_buf.len < len)
                cap *= 2;
            stream_cork_buf.buf = roost_xrealloc(stream_cork_buf.buf, cap);
            stream_cork_buf.cap = cap;
        }
        memcpy(stream_cork_buf.buf + stream_cork_buf.len, s, len);
        stream_cork_buf.len += len;
        return;
    }
    st->ops->write(st->ud, s, len);
}

static void
stream_puts(roost_stream_t *st, const char *s)
{
    stream_write(st, s, strlen(s));
}

static void
stream_finish(roost_stream_t *st)
{
    st->state = ROOST_SS_CLOSED;
    st->stop = 1;
    if (!st->closed_called) {
        st->closed_called = 1;
        st->ops->closed(st->ud);
    }
}

void
roost_stream_error(roost_stream_t *st, const char *cond, const char *text)
{
    roost_stream_error_app(st, cond, text, NULL);
}

void
roost_stream_error_app(roost_stream_t *st, const char *cond, const char *text,
                       const roost_stanza_t *app)
{
    roost_stanza_t *err;
    char *xml;
    size_t len;

    if (st->state == ROOST_SS_CLOSED)
        return;
    if (st->ops->error_sent != NULL)
        st->ops->error_sent(st->ud, cond, text);
    if (!st->header_sent)
        stream_send_header(st);
    err = roost_stanza_new(ROOST_NS_STREAM, "error");
    roost_stanza_add_child(err, ROOST_NS_STREAMS, cond);
    if (text != NULL) {
        roost_stanza_t *t =
            roost_stanza_add_child(err, ROOST_NS_STREAMS, "text");
        roost_stanza_add_text(t, text, strlen(text));
    }
    /* The stream prefix is declared on our header; write it by hand so the
     * element reads <stream:error>, as every peer expects. */
    xml =
        roost_stanza_serialize(roost_stanza_first_child(err), NS_CLIENT, NULL);
    stream_puts(st, "<stream:error>");
    stream_puts(st, xml);
    roost_free(xml);
    if (text != NULL) {
        xml = roost_stanza_serialize(
            roost_stanza_next_sibling(roost_stanza_first_child(err)), NS_CLIENT,
            &len);
        stream_write(st, xml, len);
        roost_free(xml);
    }
    if (app != NULL) {
        xml = roost_stanza_serialize(app, NS_CLIENT, &len);
        stream_write(st, xml, len);
        roost_free(xml);
    }
    stream_puts(st, "</stream:error></stream:stream>");
    roost_stanza_unref(err);
    stream_finish(st);
}

void
roost_stream_close(roost_stream_t *st)
{
    if (st->state == ROOST_SS_CLOSED)
        return;
    if (!st->header_sent)
        stream_send_header(st);
    stream_puts(st, "</stream:stream>");
    stream_finish(st);
}

void
roost_stream_send(roost_stream_t *st, const roost_stanza_t *s)
{
    char *xml;
    size_t len;

    if (st->state == ROOST_SS_CLOSED)
        return;
    xml = roost_stanza_serialize(s, NS_CLIENT, &len);
    stream_write(st, xml, len);
    roost_free(xml);
}

static void
stream_send_header(roost_stream_t *st)
{
    char buf[4096 + 256];

    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' "
             "version='1.0' xml:lang='en'");
    roost_xml_append_attr(buf, sizeof(buf), "id", st->id);
    if (st->host != NULL)
        roost_xml_append_attr(buf, sizeof(buf), "from", st->host);
    if (st->peer != NULL && strlen(st->peer) < 3072)
        roost_xml_append_attr(buf, sizeof(buf), "to", st->peer);
    strcat(buf, ">");
    stream_puts(st, buf);
    st->header_sent = 1;
}

static void
stream_new_id(roost_stream_t *st)
{
    unsigned char r[16];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        /* getrandom on Linux >= 3.17 does not fail for 16 bytes once the
         * pool is initialised; keep a unique id anyway. */
        static unsigned long counter;
        snprintf(st->id, sizeof(st->id), "c%lx%p", ++counter, (void *)st);
        return;
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(st->id + 2 * i, 3, "%02x", r[i]);
}

/* XEP-0484: the FAST mechanisms this stream can use (ops->fast_mechs). */
static void
stream_fast_mechs(roost_stream_t *st, const char *out[ROOST_STREAM_FAST_MAX])
{
    out[0] = "HT-SHA-256-NONE";
    out[1] = NULL;
    if (st->ops->fast_mechs != NULL)
        st->ops->fast_mechs(st->ud, out);
}

static void
stream_send_features(roost_stream_t *st)
{
    roost_stanza_t *f = roost_stanza_new(ROOST_NS_STREAM, "features");
    char *xml, *inner;
    size_t len;

    if (!st->authenticated) {
        int sasl_ok = st->conf.tls_active || !st->conf.require_encryption;

        if (!st->conf.tls_active && st->conf.tls_available) {
            roost_stanza_t *tls =
                roost_stanza_add_child(f, ROOST_NS_TLS, "starttls");
            if (st->conf.require_encryption)
                roost_stanza_add_child(tls, ROOST_NS_TLS, "required");
        }
        if (sasl_ok) {
            const char *const *m = st->ops->sasl_mechs(st->ud, st->host);
            roost_stanza_t *mechs =
                roost_stanza_add_child(f, ROOST_NS_SASL, "mechanisms");

            roost_stanza_t *auth2 =
                roost_stanza_add_child(f, NS_SASL2, "authentication");
            roost_stanza_t *inl, *b2, *b2i;

            for (; m != NULL && *m != NULL; m++) {
                roost_stanza_t *e =
                    roost_stanza_add_child(mechs, ROOST_NS_SASL, "mechanism");
                roost_stanza_add_text(e, *m, strlen(*m));
                /* XEP-0388: the same mechanisms, without a restart.  The
                 * same list matters: core/sasl.c hashes it once for the
                 * XEP-0474 h of both profiles. */
                e = roost_stanza_add_child(auth2, NS_SASL2, "mechanism");
                roost_stanza_add_text(e, *m, strlen(*m));
            }
            /* XEP-0386: bind inline, with XEP-0198 enabled inline. */
            inl = roost_stanza_add_child(auth2, NS_SASL2, "inline");
            b2 = roost_stanza_add_child(inl, NS_BIND2, "bind");
            b2i = roost_stanza_add_child(b2, NS_BIND2, "inline");
            roost_stanza_set_attr(
                roost_stanza_add_child(b2i, NS_BIND2, "feature"), "var", NS_SM);
            /* XEP-0484 §3.1 (over TLS only, its §7). */
            if (st->conf.fast && st->conf.tls_active &&
                st->ops->fast_token != NULL) {
                roost_stanza_t *fa =
                    roost_stanza_add_child(inl, NS_FAST, "fast");
                const char *fm[ROOST_STREAM_FAST_MAX];

                /* Only those whose channel binding this TLS has. */
                stream_fast_mechs(st, fm);
                for (int i = 0; fm[i] != NULL; i++)
                    roost_stanza_add_text(
                        roost_stanza_add_child(fa, NS_FAST, "mechanism"), fm[i],
                        strlen(fm[i]));
            }
            if (st->ops->sasl_features != NULL)
                st->ops->sasl_features(st->ud, f);
        }
    } else {
        roost_stanza_t *sess;

        roost_stanza_add_child(f, ROOST_NS_BIND, "bind");
        sess = roost_stanza_add_child(f, ROOST_NS_SESSION, "session");
        roost_stanza_add_child(sess, ROOST_NS_SESSION, "optional");
        if (st->ops->features != NULL)
            st->ops->features(st->ud, f);
    }
    /* Serialise the children inside a hand-written <stream:features> so
     * the stream prefix is used, as for <stream:error>. */
    stream_cork(st);
    stream_puts(st, "<stream:features>");
    for (roost_stanza_t *c = roost_stanza_first_child(f); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        inner = roost_stanza_serialize(c, NS_CLIENT, &len);
        stream_write(st, inner, len);
        roost_free(inner);
    }
    stream_puts(st, "</stream:features>");
    stream_uncork(st);
    (void)xml;
    roost_stanza_unref(f);
}

static const char *
attr_get(const char *const *attrs, const char *name)
{
    for (; attrs != NULL && attrs[0] != NULL; attrs += 2)
        if (strcmp(attrs[0], name) == 0)
            return attrs[1];
    return NULL;
}

static int
xml_stream_open(void *ud, const char *ns, const char *name,
                const char *const *attrs, const char *default_ns)
{
    roost_stream_t *st = ud;
    const char *to = attr_get(attrs, "to");
    const char *from = attr_get(attrs, "from");
    const char *version = attr_get(attrs, "version");

    roost_free(st->peer);
    st->peer = NULL;
    if (from != NULL) {
        roost_jid_t *j = roost_jid_new(from);

        if (j != NULL) {
            st->peer = roost_xstrdup(roost_jid_full(j));
            roost_jid_free(j);
        }
    }
    /* The host is fixed by the first header; restarts must name it
     * again (RFC 6120 §4.3.3 restarts keep the same 'to'). */
    if (to != NULL) {
        char *h = roost_jid_prep_domain(to);

        if (h != NULL && st->host != NULL && strcmp(h, st->host) != 0) {
            roost_free(h);
            roost_stream_error(st, "host-unknown",
                               "the host changed on stream restart");
            return 1;
        }
        if (h != NULL && st->host == NULL) {
            if (st->ops->host_ok(st->ud, h))
                st->host = h;
            else
                roost_free(h);
        } else {
            roost_free(h);
        }
    }
    stream_new_id(st);
    if (ns == NULL || strcmp(ns, ROOST_NS_STREAM) != 0) {
        roost_stream_error(st, "invalid-namespace",
                           "the stream namespace must be "
                           "http://etherx.jabber.org/streams");
        return 1;
    }
    if (strcmp(name, "stream") != 0) {
        roost_stream_error(st, "not-well-formed",
                           "the root element must be <stream:stream/>");
        return 1;
    }
    if (default_ns == NULL || strcmp(default_ns, ROOST_NS_CLIENT) != 0) {
        roost_stream_error(st, "invalid-namespace",
                           "the content namespace must be jabber:client");
        return 1;
    }
    if (st->host == NULL) {
        roost_stream_error(st, "host-unknown",
                           to == NULL ? "the stream header has no 'to'"
                                      : "this server does not serve that "
                                        "host");
        return 1;
    }
    /* RFC 6120 §4.7.5: no version means 0.9; we speak 1.x only. */
    if (version == NULL || strncmp(version, "1.", 2) != 0 ||
        strspn(version + 2, "0123456789") != strlen(version + 2) ||
        version[2] == '\0') {
        roost_stream_error(st, "unsupported-version",
                           "only XMPP version 1.0 is supported");
        return 1;
    }
    stream_cork(st);
    stream_send_header(st);
    stream_send_features(st);
    stream_uncork(st);
    st->state = st->authenticated ? ROOST_SS_AUTHED : ROOST_SS_PREAUTH;
    return 0;
}

static void
sasl_failure(roost_stream_t *st, const char *cond)
{
    char buf[128];

    snprintf(buf, sizeof(buf),
             "<failure xmlns='" ROOST_NS_SASL "'><%s/></failure>", cond);
    stream_puts(st, buf);
}

static void
sasl2_failure(roost_stream_t *st, const char *cond, const char *text)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "<failure xmlns='" NS_SASL2 "'><%s xmlns='" ROOST_NS_SASL
             "'/>%s%s%s</failure>",
             cond, text ? "<text>" : "", text ? text : "",
             text ? "</text>" : "");
    stream_puts(st, buf);
}

/* XEP-0388: <authenticate/> (with an optional XEP-0386 <bind/>),
 * <response/>, <abort/>. */
static int
handle_sasl2(roost_stream_t *st, roost_stanza_t *el)
{
    const char *name = roost_stanza_name(el);

    if (strcmp(name, "authenticate") == 0) {
        const char *mech = roost_stanza_attr(el, "mechanism");
        roost_stanza_t *ir =
            roost_stanza_child(el, NS_SASL2, "initial-response");
        roost_stanza_t *ua = roost_stanza_child(el, NS_SASL2, "user-agent");
        roost_stanza_t *b = roost_stanza_child(el, NS_BIND2, "bind");

        if (!st->conf.tls_active && st->conf.require_encryption) {
            sasl2_failure(st, "encryption-required", NULL);
            return 0;
        }
        if (st->sasl_active || mech == NULL || *mech == '\0') {
            sasl2_failure(st, "invalid-mechanism", NULL);
            return 0;
        }
        st->sasl_active = 1;
        st->sasl2 = 1;
        roost_stanza_unref(st->bind2);
        st->bind2 = b != NULL ? roost_stanza_copy(b) : NULL;
        roost_free(st->agent_id);
        st->agent_id = NULL;
        if (ua != NULL && roost_stanza_attr(ua, "id") != NULL)
            st->agent_id = roost_xstrndup(roost_stanza_attr(ua, "id"), 64);
        {
            roost_stanza_t *rt =
                roost_stanza_child(el, NS_FAST, "request-token");
            roost_stanza_t *fe = roost_stanza_child(el, NS_FAST, "fast");
            const char *inv = fe ? roost_stanza_attr(fe, "invalidate") : NULL;

            roost_free(st->fast_req);
            st->fast_req =
                rt != NULL && roost_stanza_attr(rt, "mechanism") != NULL
                    ? roost_xstrndup(roost_stanza_attr(rt, "mechanism"), 31)
                    : NULL;
            st->fast_invalidate = inv != NULL && (strcmp(inv, "true") == 0 ||
                                                  strcmp(inv, "1") == 0);
        }
        st->state = ROOST_SS_SASL_WAIT;
        st->ops->sasl_step(st->ud, mech,
                           ir != NULL ? roost_stanza_text(ir) : NULL);
        return 1;
    }
    if (strcmp(name, "response") == 0 && st->sasl_active && st->sasl2) {
        st->state = ROOST_SS_SASL_WAIT;
        st->ops->sasl_step(st->ud, NULL, roost_stanza_text(el));
        return 1;
    }
    if (strcmp(name, "abort") == 0 && st->sasl_active && st->sasl2) {
        st->sasl_active = 0;
        sasl2_failure(st, "aborted", NULL);
        return 0;
    }
    sasl2_failure(st, "malformed-request", NULL);
    return 0;
}

static int
handle_preauth(roost_stream_t *st, roost_stanza_t *el)
{
    const char *ns = roost_stanza_ns(el), *name = roost_stanza_name(el);

    if (ns != NULL && strcmp(ns, ROOST_NS_TLS) == 0 &&
        strcmp(name, "starttls") == 0) {
        if (st->conf.tls_active || !st->conf.tls_available || st->sasl_active) {
            /* RFC 6120 §5.4.2.2: failure, then close the stream. */
            stream_puts(st, "<failure xmlns='" ROOST_NS_TLS "'/>");
            roost_stream_close(st);
            return 1;
        }
        stream_puts(st, "<proceed xmlns='" ROOST_NS_TLS "'/>");
        st->state = ROOST_SS_TLS_WAIT;
        st->ops->starttls(st->ud);
        return 1;
    }
    if (ns != NULL && strcmp(ns, ROOST_NS_SASL) == 0) {
        const char *text = roost_stanza_text(el);

        if (strcmp(name, "auth") == 0) {
            const char *mech = roost_stanza_attr(el, "mechanism");

            if (!st->conf.tls_active && st->conf.require_encryption) {
                sasl_failure(st, "encryption-required");
                return 0;
            }
            if (mech == NULL || *mech == '\0') {
                sasl_failure(st, "invalid-mechanism");
                return 0;
            }
            st->sasl_active = 1;
            st->sasl2 = 0;
            st->state = ROOST_SS_SASL_WAIT;
            st->ops->sasl_step(st->ud, mech, text);
            return 1;
        }
        if (strcmp(name, "response") == 0) {
            if (!st->sasl_active) {
                sasl_failure(st, "malformed-request");
                return 0;
            }
            st->state = ROOST_SS_SASL_WAIT;
            st->ops->sasl_step(st->ud, NULL, text);
            return 1;
        }
        if (strcmp(name, "abort") == 0) {
            st->sasl_active = 0;
            sasl_failure(st, "aborted");
            return 0;
        }
    }
    if (ns != NULL && strcmp(ns, NS_SASL2) == 0)
        return handle_sasl2(st, el);
    if (roost_stanza_kind(el) == ROOST_STANZA_IQ &&
        (st->conf.tls_active || !st->conf.require_encryption) &&
        st->ops->preauth_iq != NULL && !st->sasl_active &&
        st->ops->preauth_iq(st->ud, el))
        return st->state == ROOST_SS_CLOSED;
    roost_stream_error(st, "not-authorized",
                       "authenticate before sending stanzas");
    return 1;
}

/* A stanza the stream answers itself: once bound, through the owner, so
 * stream management counts it. */
static void
stream_reply(roost_stream_t *st, roost_stanza_t *reply)
{
    if (st->state == ROOST_SS_BOUND && st->ops->reply != NULL)
        st->ops->reply(st->ud, reply);
    else
        roost_stream_send(st, reply);
}

static void
send_iq_error(roost_stream_t *st, roost_stanza_t *iq, roost_stanza_err_t e)
{
    roost_stanza_t *err = roost_stanza_error(iq, e, NULL);

    /* The client's own iq: no 'to' on the reply is right for c2s. */
    roost_stanza_set_attr(err, "from", NULL);
    stream_reply(st, err);
    roost_stanza_unref(err);
}

static void
handle_bind(roost_stream_t *st, roost_stanza_t *iq, roost_stanza_t *bind)
{
    roost_stanza_t *res_el =
        roost_stanza_child(bind, ROOST_NS_BIND, "resource");
    const char *res = res_el != NULL ? roost_stanza_text(res_el) : NULL;
    roost_stanza_err_t err = ROOST_SE_INTERNAL_SERVER_ERROR;
    const char *full;
    roost_stanza_t *reply, *b, *j;

    if (res != NULL && *res == '\0')
        res = NULL;
    full = st->ops->bind(st->ud, res, &err);
    if (full == NULL) {
        send_iq_error(st, iq, err);
        return;
    }
    reply = roost_stanza_reply(iq);
    roost_stanza_set_attr(reply, "from", NULL);
    roost_stanza_set_attr(reply, "to", NULL);
    b = roost_stanza_add_child(reply, ROOST_NS_BIND, "bind");
    j = roost_stanza_add_child(b, ROOST_NS_BIND, "jid");
    roost_stanza_add_text(j, full, strlen(full));
    st->state = ROOST_SS_BOUND;
    roost_stream_send(st, reply);
    roost_stanza_unref(reply);
}

static int
handle_authed(roost_stream_t *st, roost_stanza_t *el)
{
    roost_stanza_kind_t kind = roost_stanza_kind(el);
    roost_stanza_t *payload;
    const char *type;
    const char *ens = roost_stanza_ns(el);

    if (ens != NULL && strcmp(ens, "urn:xmpp:sm:3") == 0 &&
        st->ops->sm != NULL) {
        int stop = st->ops->sm(st->ud, el, st->state == ROOST_SS_BOUND);

        return stop || st->state == ROOST_SS_CLOSED || st->stop;
    }
    if (kind == ROOST_STANZA_OTHER && st->state == ROOST_SS_BOUND &&
        ens != NULL && strcmp(ens, ROOST_NS_CLIENT) != 0 &&
        st->ops->nonza != NULL && st->ops->nonza(st->ud, el))
        return st->state == ROOST_SS_CLOSED || st->stop;
    if (kind == ROOST_STANZA_OTHER) {
        const char *ns = roost_stanza_ns(el);

        if (ns != NULL && strcmp(ns, ROOST_NS_CLIENT) == 0)
            roost_stream_error(st, "unsupported-stanza-type", NULL);
        else
            roost_stream_error(st, "unsupported-stanza-type",
                               "unknown top-level element");
        return 1;
    }
    if (st->state == ROOST_SS_BOUND && st->ops->inbound != NULL)
        st->ops->inbound(st->ud);
    type = roost_stanza_attr(el, "type");
    payload = kind == ROOST_STANZA_IQ ? roost_stanza_first_child(el) : NULL;
    if (kind == ROOST_STANZA_IQ && type != NULL && strcmp(type, "set") == 0 &&
        payload != NULL && roost_stanza_ns(payload) != NULL &&
        strcmp(roost_stanza_ns(payload), ROOST_NS_BIND) == 0 &&
        strcmp(roost_stanza_name(payload), "bind") == 0) {
        if (st->state == ROOST_SS_BOUND)
            send_iq_error(st, el, ROOST_SE_NOT_ALLOWED);
        else
            handle_bind(st, el, payload);
        return 0;
    }
    if (st->state != ROOST_SS_BOUND) {
        roost_stream_error(st, "not-authorized",
                           "bind a resource before sending stanzas");
        return 1;
    }
    if (kind == ROOST_STANZA_IQ && type != NULL && strcmp(type, "set") == 0 &&
        payload != NULL && roost_stanza_ns(payload) != NULL &&
        strcmp(roost_stanza_ns(payload), ROOST_NS_SESSION) == 0 &&
        roost_stanza_attr(el, "to") == NULL) {
        /* RFC 3921 §3: legacy session establishment is a no-op today. */
        roost_stanza_t *reply = roost_stanza_reply(el);

        roost_stanza_set_attr(reply, "from", NULL);
        roost_stanza_set_attr(reply, "to", NULL);
        stream_reply(st, reply);
        roost_stanza_unref(reply);
        return 0;
    }
    st->ops->stanza(st->ud, el);
    return st->state == ROOST_SS_CLOSED || st->stop;
}

static int
xml_stanza(void *ud, roost_stanza_t *el)
{
    roost_stream_t *st = ud;
    int stop = 0;

    switch (st->state) {
    case ROOST_SS_PREAUTH: stop = handle_preauth(st, el); break;
    case ROOST_SS_AUTHED:
    case ROOST_SS_BOUND: stop = handle_authed(st, el); break;
    default:
        /* Input while waiting for TLS or SASL cannot reach here: the
         * parser is stopped in those states. */
        stop = 1;
        break;
    }
    roost_stanza_unref(el);
    if (st->stop)
        stop = 1;
    return stop;
}

static void
xml_stream_close(void *ud)
{
    roost_stream_t *st = ud;

    roost_stream_close(st);
}

static void
xml_error(void *ud, const char *cond, const char *text)
{
    roost_stream_error(ud, cond, text);
}

static const roost_xml_cb_t stream_xml_cb = {
    .stream_open = xml_stream_open,
    .stanza = xml_stanza,
    .stream_close = xml_stream_close,
    .error = xml_error,
};

roost_stream_t *
roost_stream_new(const roost_stream_conf_t *conf, const roost_stream_ops_t *ops,
                 void *ud)
{
    roost_stream_t *st = roost_xcalloc(1, sizeof(*st));

    st->conf = *conf;
    if (st->conf.max_auth_attempts < 1)
        st->conf.max_auth_attempts = 1;
    st->ops = ops;
    st->ud = ud;
    st->xml = roost_xml_new(&conf->limits, &stream_xml_cb, st);
    st->state = ROOST_SS_HEADER;
    st->fresh = 1;
    stream_new_id(st);
    return st;
}

void
roost_stream_free(roost_stream_t *st)
{
    if (st == NULL)
        return;
    if (stream_cork_buf.owner == st) {
        stream_cork_buf.owner = NULL;
        stream_cork_buf.depth = 0;
        stream_cork_buf.len = 0;
    }
    roost_xml_free(st->xml);
    roost_free(st->host);
    roost_free(st->peer);
    roost_free(st->user);
    roost_free(st->agent_id);
    roost_free(st->fast_req);
    roost_stanza_unref(st->bind2);
    roost_free(st);
}

int
roost_stream_feed(roost_stream_t *st, const char *buf, size_t len,
                  size_t *consumed)
{
    size_t used = 0;
    int rc;

    *consumed = 0;
    if (st->state == ROOST_SS_CLOSED)
        return -ROOST_EINVAL;
    if (st->state == ROOST_SS_TLS_WAIT || st->state == ROOST_SS_SASL_WAIT)
        return ROOST_EAGAIN;
    st->stop = 0;
    if (st->fresh) {
        /* COMPAT: go-sendxmpp (and others) send a newline after </auth>
         * or <starttls/>; before the new header it is not part of any
         * document, and an XML declaration must come first. */
        size_t ws = 0;

        while (ws < len && (buf[ws] == ' ' || buf[ws] == '\n' ||
                            buf[ws] == '\r' || buf[ws] == '\t'))
            ws++;
        if (ws == len) {
            *consumed = len;
            return 0;
        }
        st->fresh = 0;
        if (ws > 0) {
            rc = roost_stream_feed(st, buf + ws, len - ws, &used);
            *consumed = used + ws;
            if (rc == 0)
                *consumed = len;
            return rc;
        }
    }
    rc = roost_xml_feed(st->xml, buf, len, &used);
    if (st->state == ROOST_SS_CLOSED)
        return -ROOST_EINVAL;
    if (rc == ROOST_EAGAIN) {
        *consumed = used;
        /* A stop that is not a wait (bind, pipelining) just means: call
         * again with the rest. */
        return ROOST_EAGAIN;
    }
    if (rc < 0) {
        /* The error callback has closed the stream. */
        if (st->state != ROOST_SS_CLOSED)
            roost_stream_error(st, "not-well-formed", NULL);
        return -ROOST_EINVAL;
    }
    *consumed = len;
    return 0;
}

void
roost_stream_tls_done(roost_stream_t *st, int ok)
{
    if (st->state != ROOST_SS_TLS_WAIT)
        return;
    if (!ok) {
        /* Nothing sensible can be sent on a broken TLS layer. */
        stream_finish(st);
        return;
    }
    st->conf.tls_active = 1;
    st->header_sent = 0;
    roost_xml_reset(st->xml);
    st->fresh = 1;
    st->state = ROOST_SS_HEADER;
}

/* XEP-0386 §4: the resource is the client's tag plus a part the server
 * chooses: stable for one user agent (its id), random otherwise. */
static void
bind2_resource(roost_stream_t *st, char *out, size_t size)
{
    roost_stanza_t *tag = roost_stanza_child(st->bind2, NS_BIND2, "tag");
    const char *t = tag != NULL ? roost_stanza_text(tag) : NULL;
    uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 */
    unsigned char r[8];

    if (st->agent_id != NULL) {
        for (const char *p = st->user; *p != '\0'; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ '/') * 1099511628211ULL;
        for (const char *p = st->agent_id; *p != '\0'; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    } else if (getrandom(r, sizeof(r), 0) == (ssize_t)sizeof(r)) {
        memcpy(&h, r, sizeof(h));
    }
    snprintf(out, size, "%.64s%s%016llx", t != NULL && *t != '\0' ? t : "",
             t != NULL && *t != '\0' ? "." : "", (unsigned long long)h);
}

/* Features of a stream authenticated by XEP-0388 (no restart): what an
 * authenticated stream offers, without bind when Bind2 bound already. */
static void
stream_send_features_now(roost_stream_t *st, int bound)
{
    roost_stanza_t *f = roost_stanza_new(ROOST_NS_STREAM, "features");
    char *inner;
    size_t len;

    if (!bound) {
        roost_stanza_t *sess;

        roost_stanza_add_child(f, ROOST_NS_BIND, "bind");
        sess = roost_stanza_add_child(f, ROOST_NS_SESSION, "session");
        roost_stanza_add_child(sess, ROOST_NS_SESSION, "optional");
    }
    if (st->ops->features != NULL)
        st->ops->features(st->ud, f);
    stream_cork(st);
    stream_puts(st, "<stream:features>");
    for (roost_stanza_t *c = roost_stanza_first_child(f); c != NULL;
         c = roost_stanza_next_sibling(c)) {
        inner = roost_stanza_serialize(c, NS_CLIENT, &len);
        stream_write(st, inner, len);
        roost_free(inner);
    }
    stream_puts(st, "</stream:features>");
    stream_uncork(st);
    roost_stanza_unref(f);
}

/* XEP-0388 §3.7.1 success: additional data, the authorization identity
 * (the full JID when Bind2 bound a resource), <bound/> with what was
 * enabled inline, then the features; no stream restart. */
static void
sasl2_success(roost_stream_t *st, const char *data, const char *user)
{
    const char *full = NULL;
    roost_stanza_err_t err = ROOST_SE_INTERNAL_SERVER_ERROR;
    roost_stanza_t *aid;
    char res[128], *xml;
    size_t len;

    st->sasl_active = 0;
    stream_authenticated(st);
    roost_free(st->user);
    st->user = roost_xstrdup(user != NULL ? user : "");
    st->state = ROOST_SS_AUTHED;
    if (st->bind2 != NULL) {
        bind2_resource(st, res, sizeof(res));
        full = st->ops->bind(st->ud, res, &err);
    }
    stream_puts(st, "<success xmlns='" NS_SASL2 "'>");
    if (data != NULL && *data != '\0') {
        stream_puts(st, "<additional-data>");
        stream_puts(st, data);
        stream_puts(st, "</additional-data>");
    }
    aid = roost_stanza_new(NS_SASL2, "authorization-identifier");
    if (full != NULL) {
        roost_stanza_add_text(aid, full, strlen(full));
    } else {
        char bare[2100];

        snprintf(bare, sizeof(bare), "%s@%s", st->user,
                 st->host != NULL ? st->host : "");
        roost_stanza_add_text(aid, bare, strlen(bare));
    }
    xml = roost_stanza_serialize(aid, NS_CLIENT, &len);
    stream_write(st, xml, len);
    roost_free(xml);
    roost_stanza_unref(aid);
    if (full != NULL) {
        roost_stanza_t *en = roost_stanza_child(st->bind2, NS_SM, "enable");

        st->state = ROOST_SS_BOUND;
        stream_puts(st, "<bound xmlns='" NS_BIND2 "'>");
        /* XEP-0198 enabled inline: its answer lands inside <bound/>. */
        if (en != NULL && st->ops->sm != NULL)
            st->ops->sm(st->ud, en, 1);
        stream_puts(st, "</bound>");
    }
    if (st->fast_req != NULL && st->conf.fast && st->ops->fast_token != NULL) {
        char token[64], expiry[32], buf[200];
        const char *fm[ROOST_STREAM_FAST_MAX];
        int offered = 0;

        /* XEP-0484 §3.2: one of the mechanisms we offer on this stream. */
        stream_fast_mechs(st, fm);
        for (int i = 0; fm[i] != NULL; i++)
            offered |= strcmp(fm[i], st->fast_req) == 0;
        /* XEP-0484 §3.3: a token for the requested mechanism. */
        if (offered &&
            st->ops->fast_token(st->ud, st->fast_req, token, expiry) == 0) {
            snprintf(buf, sizeof(buf),
                     "<token xmlns='" NS_FAST "' expiry='%s' token='%s'/>",
                     expiry, token);
            stream_puts(st, buf);
        }
    }
    stream_puts(st, "</success>");
    roost_stanza_unref(st->bind2);
    st->bind2 = NULL;
    stream_send_features_now(st, full != NULL);
}

void
roost_stream_sasl_result(roost_stream_t *st, int status, const char *data,
                         const char *cond, const char *user)
{

    if (st->state != ROOST_SS_SASL_WAIT)
        return;
    switch (status) {
    case 1: /* continue */
        st->state = ROOST_SS_PREAUTH;
        if (st->sasl2) {
            stream_puts(st, "<challenge xmlns='" NS_SASL2 "'>");
            stream_puts(st, data != NULL ? data : "");
            stream_puts(st, "</challenge>");
            break;
        }
        stream_puts(st, "<challenge xmlns='" ROOST_NS_SASL "'>");
        stream_puts(st, data != NULL ? data : "");
        stream_puts(st, "</challenge>");
        break;
    case 2: /* success */
        if (st->sasl2) {
            sasl2_success(st, data, user);
            break;
        }
        if (data != NULL && *data != '\0') {
            stream_puts(st, "<success xmlns='" ROOST_NS_SASL "'>");
            stream_puts(st, data);
            stream_puts(st, "</success>");
        } else {
            stream_puts(st, "<success xmlns='" ROOST_NS_SASL "'/>");
        }
        st->sasl_active = 0;
        stream_authenticated(st);
        roost_free(st->user);
        st->user = roost_xstrdup(user != NULL ? user : "");
        st->header_sent = 0;
        roost_xml_reset(st->xml);
        st->fresh = 1;
        st->state = ROOST_SS_HEADER;
        break;
    default:
        st->sasl_active = 0;
        st->state = ROOST_SS_PREAUTH;
        if (st->sasl2)
            sasl2_failure(st, cond != NULL ? cond : "not-authorized", NULL);
        else
            sasl_failure(st, cond != NULL ? cond : "not-authorized");
        if (++st->auth_failures >= st->conf.max_auth_attempts)
            roost_stream_error(st, "policy-violation",
                               "too many authentication failures");
        break;
    }
}

void
roost_stream_set_require_encryption(roost_stream_t *st, int on)
{
    st->conf.require_encryption = on != 0;
}

void
roost_stream_set_owner(roost_stream_t *st, void *ud)
{
    st->ud = ud;
}

void
roost_stream_set_bound(roost_stream_t *st)
{
    if (st->state == ROOST_SS_AUTHED)
        st->state = ROOST_SS_BOUND;
}

roost_stream_state_t
roost_stream_state(const roost_stream_t *st)
{
    return st->state;
}

const char *
roost_stream_host(const roost_stream_t *st)
{
    return st->host;
}

const char *
roost_stream_user(const roost_stream_t *st)
{
    return st->user;
}

const char *
roost_stream_sasl2_agent(const roost_stream_t *st)
{
    return st->sasl2 ? st->agent_id : NULL;
}

int
roost_stream_fast_invalidate(const roost_stream_t *st)
{
    return st->fast_invalidate;
}

void
roost_stream_fast_rotate(roost_stream_t *st, const char *mech)
{
    if (st->fast_req == NULL && !st->fast_invalidate && mech != NULL)
        st->fast_req = roost_xstrdup(mech);
}

const char *
roost_stream_id(const roost_stream_t *st)
{
    return st->id;
}

int
roost_stream_tls_active(const roost_stream_t *st)
{
    return st->conf.tls_active;
}

size_t
roost_stream_memory(const roost_stream_t *st)
{
    return sizeof(*st) + roost_xml_memory(st->xml);
}

int
roost_stream_release_idle(roost_stream_t *st)
{
    if (st == NULL || st->state == ROOST_SS_CLOSED || st->fresh)
        return 0;
    return roost_xml_release(st->xml);
}
