/* bench/roostbench.c: Roost's XMPP load generator.
 *
 * One single-threaded libevent process that opens many c2s connections to
 * any XMPP server (Roost, Prosody, ejabberd...) over plain TCP or STARTTLS,
 * logs them in with SASL PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256 (RFC 5802,
 * client side written here on OpenSSL's PBKDF2 and HMAC), binds a resource
 * and then drives one scenario.  Incoming streams are parsed with expat.
 * The server's CPU time and RSS are read from /proc/PID/stat and
 * /proc/PID/status of the pid given with --pid; the generator's own CPU
 * time (getrusage) is printed beside it, so that a run where the generator
 * was the bottleneck shows as one.
 *
 * Each scenario prints one machine-readable line "RESULT key=value ..." on
 * stdout (bench/compare.sh collects them); progress goes to stderr.
 *
 * Not a conformance test: it checks only what it needs to drive the load
 * (it does verify the SCRAM server signature).  Not part of the server: it
 * links none of the core and allocates with plain malloc.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <expat.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#define NS_STREAM   "http://etherx.jabber.org/streams"
#define NS_CLIENT   "jabber:client"
#define NS_TLS      "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL     "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND     "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION  "urn:ietf:params:xml:ns:xmpp-session"
#define NS_ROSTER   "jabber:iq:roster"
#define NS_REGISTER "jabber:iq:register"
#define NS_PING     "urn:xmpp:ping"
#define SEP         "|" /* expat namespace separator */

/* Filler so that a benchmark message has a realistic size (~120 bytes of
 * body, ~220 on the wire). */
#define BODY_PAD                                                               \
    "The quick brown fox jumps over the lazy dog; pack my box with five "      \
    "dozen liquor jugs."

/* ------------------------------------------------------------ utilities */

static void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1); /* freed by the matching *_free below */

    if (p == NULL) {
        fprintf(stderr, "roostbench: out of memory\n");
        abort();
    }
    return p;
}

static void *
xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);

    if (p == NULL) {
        fprintf(stderr, "roostbench: out of memory\n");
        abort();
    }
    return p;
}

static char *
xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);

    memcpy(p, s, n);
    return p;
}

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
gen_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("roostbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
note(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("roostbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ------------------------------------------------- the server's /proc */

static long srv_pid;

/* CPU seconds (user + system, all threads) of the server; -1 without
 * --pid. */
static double
srv_cpu_s(void)
{
    char path[64], buf[4096], *p;
    unsigned long long ut, st;
    FILE *fp;
    size_t n;
    int i;

    if (srv_pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", srv_pid);
    if ((fp = fopen(path, "r")) == NULL)
        die("cannot read %s: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* Field 2 (comm) may hold spaces: count from the last ')'.  The next
     * field is 3 (state); utime and stime are 14 and 15. */
    if ((p = strrchr(buf, ')')) == NULL)
        die("unexpected %s", path);
    p++;
    for (i = 3; i < 14; i++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            die("unexpected %s", path);
    }
    if (sscanf(p, " %llu %llu", &ut, &st) != 2)
        die("unexpected %s", path);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Resident set size of the server in KiB (VmRSS); -1 without --pid. */
static long
srv_rss_kib(void)
{
    char path[64], line[256];
    long kib = -1;
    FILE *fp;

    if (srv_pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", srv_pid);
    if ((fp = fopen(path, "r")) == NULL)
        die("cannot read %s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), fp) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(fp);
    return kib;
}

/* A snapshot of the clocks a result is made of. */
typedef struct {
    int64_t wall;
    double srv, gen;
} snap_t;

static snap_t
snap(void)
{
    snap_t s;

    s.wall = now_ns();
    s.srv = srv_cpu_s();
    s.gen = gen_cpu_s();
    return s;
}

static double
snap_wall(const snap_t *a, const snap_t *b)
{
    return (double)(b->wall - a->wall) / 1e9;
}

/* ------------------------------------------------------------- options */

enum { TLS_NONE, TLS_STARTTLS };
enum { SETUP_BIND, SETUP_FULL }; /* FULL: also roster get + presence */

static struct {
    const char *host, *domain, *password, *prefix, *mech;
    int port, tls, n, conc, first, pairs, window, users, contacts, updates,
        lat_updates, fan_conc, to_full, verbose, star, fill, queries, partners,
        resume;
    double duration, warmup, rate, hold, settle, timeout;
} opt = {
    .host = "127.0.0.1",
    .domain = "localhost",
    .password = "bench-pass",
    .prefix = "u",
    .mech = "SCRAM-SHA-1",
    .port = 5222,
    .tls = TLS_STARTTLS,
    .n = 200,
    .conc = 20,
    .pairs = 50,
    .window = 10,
    .users = 200,
    .contacts = 150,
    .updates = 400,
    .lat_updates = 100,
    .fan_conc = 16,
    .duration = 10,
    .warmup = 1,
    .rate = 1000,
    .hold = 5,
    .settle = 2,
    .timeout = 300,
    .queries = 20,
    .partners = 10,
};

static struct event_base *base;
static SSL_CTX *ssl_ctx;
static struct sockaddr_in srv_addr;

/* --resume: the newest TLS session (ticket) each account got, offered on
 * its next connection the way a client with a session cache does. */
static SSL_SESSION **resume_sess;
static int resume_cap, resume_reused, resume_full;

/* ------------------------------------------------------------- base64 */

static char *
b64_encode(const unsigned char *in, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

/* Returns the decoded length, or -1; out has room for 3/4 of strlen(in). */
static int
b64_decode(const char *in, unsigned char *out)
{
    size_t len = strlen(in);
    int n;

    if (len % 4 != 0)
        return -1;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    while (len > 0 && in[len - 1] == '=') { /* EVP counts the padding */
        len--;
        n--;
    }
    return n;
}

/* ---------------------------------------------------- element trees */

typedef struct el {
    char *name;   /* "namespace|local", or "local" without namespace */
    char **attrs; /* name, value, ..., NULL */
    char *text;
    size_t tlen, tcap;
    struct el *kids, *last, *next, *parent;
} el_t;

static el_t *
el_new(const char *name, const char **attrs)
{
    el_t *e = xcalloc(1, sizeof(*e));
    size_t n = 0, i;

    e->name = xstrdup(name);
    while (attrs[n] != NULL)
        n++;
    e->attrs = xmalloc((n + 1) * sizeof(char *));
    for (i = 0; i < n; i++)
        e->attrs[i] = xstrdup(attrs[i]);
    e->attrs[n] = NULL;
    return e;
}

static void
el_free(el_t *e)
{
    el_t *k, *next;
    size_t i;

    if (e == NULL)
        return;
    for (k = e->kids; k != NULL; k = next) {
        next = k->next;
        el_free(k);
    }
    for (i = 0; e->attrs[i] != NULL; i++)
        free(e->attrs[i]);
    free(e->attrs);
    free(e->text);
    free(e->name);
    free(e);
}

static const char *
el_attr(const el_t *e, const char *name)
{
    size_t i;

    for (i = 0; e->attrs[i] != NULL; i += 2)
        if (strcmp(e->attrs[i], name) == 0)
            return e->attrs[i + 1];
    return NULL;
}

static el_t *
el_child(const el_t *e, const char *name)
{
    el_t *k;

    for (k = e->kids; k != NULL; k = k->next)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

static const char *
el_text(const el_t *e)
{
    return e != NULL && e->text != NULL ? e->text : "";
}

/* ------------------------------------------------------------ clients */

enum {
    CS_CONNECTING,
    CS_FEATURES, /* stream open, waiting for <stream:features/> */
    CS_STARTTLS,
    CS_AUTH,
    CS_BIND,
    CS_SESSION,
    CS_ROSTER,
    CS_READY,
    CS_REGISTER,
    CS_CLOSING,
};

enum { PEND_NONE, PEND_TLS, PEND_RESTART };

typedef struct client client_t;

/* What a scenario does with its clients.  ready: the session is set up;
 * stanza: a stanza in the READY state (borrowed); done: the connection
 * ended (ok: after our own close); the client is freed right after. */
typedef struct {
    void (*ready)(client_t *c);
    void (*stanza)(client_t *c, el_t *e);
    void (*done)(client_t *c, int ok);
} scen_t;

struct client {
    int idx; /* user number: <prefix><idx>@<domain> */
    char user[64], full[512];
    struct bufferevent *bev;
    XML_Parser xp;
    int depth;
    el_t *cur;
    int state, tls, authed, pending, dead, in_parse, session_needed, sig_ok;
    int setup, registering;
    const scen_t *sc;
    /* SCRAM */
    const EVP_MD *md;
    char *cfirst_bare, cnonce[64], server_sig[128];
    /* scenario state */
    int roster_items, roster_both, nsubs;
    int64_t t0, t_rq; /* t_rq: roster get sent */
};

static int nclients_live;

static void client_free(client_t *c);
static void client_stream_open(client_t *c);

static void client_send(client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
client_send(client_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->dead || c->bev == NULL)
        return;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
    va_end(ap);
}

/* Ends the connection at once (after a protocol failure, or after the
 * server closed); the scenario hears done(c, ok). */
static void
client_finish(client_t *c, int ok)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (c->in_parse)
        XML_StopParser(c->xp, XML_FALSE);
    if (c->sc->done != NULL)
        c->sc->done(c, ok);
}

static void client_fail(client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static unsigned nfail_notes;

static void
client_fail(client_t *c, const char *fmt, ...)
{
    va_list ap;

    if (c->dead)
        return;
    if (nfail_notes++ < 10 || opt.verbose) {
        va_start(ap, fmt);
        fprintf(stderr, "roostbench: %s: ", c->user);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    client_finish(c, 0);
}

/* Closes our stream; done(c, 1) follows once the server closes its own. */
static void
client_end(client_t *c)
{
    if (c->dead || c->state == CS_CLOSING)
        return;
    client_send(c, "</stream:stream>");
    c->state = CS_CLOSING;
}

/* -- expat handlers */

static void client_element(client_t *c, el_t *e);

static void XMLCALL
xml_start(void *ud, const char *name, const char **attrs)
{
    client_t *c = ud;
    el_t *e;

    if (c->dead || c->pending)
        return;
    if (c->depth++ == 0) {
        if (strcmp(name, NS_STREAM SEP "stream") != 0)
            client_fail(c, "not a stream header: %s", name);
        return;
    }
    e = el_new(name, attrs);
    if (c->cur != NULL) {
        e->parent = c->cur;
        if (c->cur->last != NULL)
            c->cur->last->next = e;
        else
            c->cur->kids = e;
        c->cur->last = e;
    }
    c->cur = e;
}

static void XMLCALL
xml_end(void *ud, const char *name)
{
    client_t *c = ud;
    el_t *e = c->cur;

    (void)name;
    if (c->dead || c->pending)
        return;
    if (--c->depth == 0) { /* </stream:stream> */
        if (c->state == CS_CLOSING)
            client_finish(c, 1);
        else
            client_fail(c, "server closed the stream");
        return;
    }
    c->cur = e->parent;
    if (c->depth == 1) {
        client_element(c, e);
        el_free(e);
    }
}

static void XMLCALL
xml_text(void *ud, const char *s, int len)
{
    client_t *c = ud;
    el_t *e = c->cur;

    if (e == NULL || c->dead || c->pending)
        return;
    if (e->tlen + (size_t)len + 1 > e->tcap) {
        e->tcap = (e->tlen + (size_t)len + 1) * 2;
        e->text = realloc(e->text, e->tcap);
        if (e->text == NULL)
            die("out of memory");
    }
    memcpy(e->text + e->tlen, s, (size_t)len);
    e->tlen += (size_t)len;
    e->text[e->tlen] = '\0';
}

/* Frees a partly parsed element tree (at a stream restart or the end). */
static void
el_free_root(el_t *e)
{
    while (e != NULL && e->parent != NULL)
        e = e->parent;
    el_free(e);
}

static void
client_parser_new(client_t *c)
{
    if (c->xp != NULL)
        XML_ParserFree(c->xp);
    el_free_root(c->cur);
    c->cur = NULL;
    c->depth = 0;
    c->xp = XML_ParserCreateNS(NULL, SEP[0]);
    if (c->xp == NULL)
        die("out of memory");
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, xml_start, xml_end);
    XML_SetCharacterDataHandler(c->xp, xml_text);
}

static void
client_stream_open(client_t *c)
{
    client_parser_new(c);
    c->state = CS_FEATURES;
    client_send(c,
                "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
                "' xmlns:stream='" NS_STREAM "' to='%s' version='1.0'>",
                opt.domain);
}

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);

/* SSL_CTX_sess_set_new_cb: keep the account's newest session. */
static int
resume_new_cb(SSL *ssl, SSL_SESSION *sess)
{
    client_t *c = SSL_get_app_data(ssl);

    if (c == NULL || c->idx < 0)
        return 0;
    if (c->idx >= resume_cap) {
        int n = c->idx + 1024;

        resume_sess = realloc(resume_sess, sizeof(*resume_sess) * (size_t)n);
        if (resume_sess == NULL)
            die("out of memory");
        memset(resume_sess + resume_cap, 0,
               sizeof(*resume_sess) * (size_t)(n - resume_cap));
        resume_cap = n;
    }
    /* A copy: OpenSSL marks the connection's own session object not
     * resumable when the connection is freed without a TLS close_notify
     * (as ours are, after the XMPP stream's close). */
    SSL_SESSION_free(resume_sess[c->idx]);
    resume_sess[c->idx] = SSL_SESSION_dup(sess);
    return 0;
}

/* Counts, once per TLS connection that got as far as the scenario's end,
 * whether it resumed. */
static void
resume_count(client_t *c)
{
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

    if (ssl == NULL)
        return;
    if (SSL_session_reused(ssl))
        resume_reused++;
    else
        resume_full++;
}

static void
client_start_tls(client_t *c)
{
    SSL *ssl = SSL_new(ssl_ctx);
    struct bufferevent *tb;

    if (ssl == NULL)
        die("SSL_new failed");
    SSL_set_tlsext_host_name(ssl, opt.domain);
    SSL_set_app_data(ssl, c);
    if (opt.resume && c->idx < resume_cap && resume_sess[c->idx] != NULL)
        SSL_set_session(ssl, resume_sess[c->idx]);
    tb = bufferevent_openssl_filter_new(
        base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (tb == NULL)
        die("bufferevent_openssl_filter_new failed");
    c->bev = tb;
    c->tls = 1;
    bufferevent_setcb(tb, client_read_cb, NULL, client_event_cb, c);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    client_stream_open(c);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
    client_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[16384];
    int n;

    while (!c->dead && (n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
        enum XML_Status st;

        c->in_parse = 1;
        st = XML_Parse(c->xp, buf, n, 0);
        c->in_parse = 0;
        if (c->dead)
            break;
        if (c->pending == PEND_TLS) {
            c->pending = PEND_NONE;
            client_start_tls(c);
            return; /* the TLS filter reads on from here */
        }
        if (c->pending == PEND_RESTART) {
            c->pending = PEND_NONE;
            client_stream_open(c);
            continue;
        }
        if (st != XML_STATUS_OK)
            client_fail(c, "XML: %s", XML_ErrorString(XML_GetErrorCode(c->xp)));
    }
    if (c->dead)
        client_free(c);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    client_t *c = arg;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == CS_CONNECTING) {
            int one = 1;

            setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY,
                       &one, sizeof(one));
            client_stream_open(c);
        }
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->state == CS_CLOSING)
            client_finish(c, 1);
        else if (what & BEV_EVENT_EOF)
            client_fail(c, "connection closed by the server");
        else {
            unsigned long e = bufferevent_get_openssl_error(c->bev);

            client_fail(
                c, "connection error: %s",
                e ? ERR_error_string(e, NULL)
                  : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        }
        client_free(c);
    }
}

static client_t *
client_new(int idx, int setup, const scen_t *sc)
{
    client_t *c = xcalloc(1, sizeof(*c));

    c->idx = idx;
    c->setup = setup;
    c->sc = sc;
    snprintf(c->user, sizeof(c->user), "%s%d", opt.prefix, idx);
    c->state = CS_CONNECTING;
    c->t0 = now_ns();
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        die("bufferevent_socket_new failed");
    bufferevent_setcb(c->bev, client_read_cb, NULL, client_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    nclients_live++;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&srv_addr,
                                   sizeof(srv_addr)) < 0) {
        client_fail(c, "connect: %s", strerror(errno));
        client_free(c);
        return NULL;
    }
    return c;
}

static void
client_free(client_t *c)
{
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->xp != NULL)
        XML_ParserFree(c->xp);
    c->xp = NULL;
    el_free_root(c->cur);
    free(c->cfirst_bare);
    free(c);
    nclients_live--;
}

/* ---------------------------------------------------------------- SCRAM */

/* SaltedPassword cache (RFC 5802 §5.1 lets a client store it): a run logs
 * in the same accounts many times, and the PBKDF2 would otherwise make the
 * generator, not the server, the bottleneck of a SCRAM login storm. */
typedef struct salt_ent {
    const EVP_MD *md;
    int iter, slen;
    unsigned char salt[128], salted[EVP_MAX_MD_SIZE];
    struct salt_ent *next;
} salt_ent_t;

#define SALT_BUCKETS 4096
static salt_ent_t *salt_cache[SALT_BUCKETS];

static const unsigned char *
scram_salted(const EVP_MD *md, const unsigned char *salt, int slen, int iter)
{
    unsigned h = 2166136261u;
    salt_ent_t *e;
    int i;

    for (i = 0; i < slen; i++)
        h = (h ^ salt[i]) * 16777619u;
    h %= SALT_BUCKETS;
    for (e = salt_cache[h]; e != NULL; e = e->next)
        if (e->md == md && e->iter == iter && e->slen == slen &&
            memcmp(e->salt, salt, (size_t)slen) == 0)
            return e->salted;
    e = xcalloc(1, sizeof(*e));
    e->md = md;
    e->iter = iter;
    e->slen = slen;
    memcpy(e->salt, salt, (size_t)slen);
    if (!PKCS5_PBKDF2_HMAC(opt.password, (int)strlen(opt.password), salt, slen,
                           iter, md, EVP_MD_get_size(md), e->salted))
        die("PBKDF2 failed");
    e->next = salt_cache[h];
    salt_cache[h] = e;
    return e->salted;
}

static void
scram_start(client_t *c, const char *mech)
{
    unsigned char rnd[18];
    char *nonce, *first, *b64, bare[256];

    c->md = strcmp(mech, "SCRAM-SHA-256") == 0 ? EVP_sha256() : EVP_sha1();
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        die("RAND_bytes failed");
    nonce = b64_encode(rnd, sizeof(rnd)); /* 24 chars, no ',' */
    snprintf(c->cnonce, sizeof(c->cnonce), "%s", nonce);
    free(nonce);
    snprintf(bare, sizeof(bare), "n=%s,r=%s", c->user, c->cnonce);
    c->cfirst_bare = xstrdup(bare);
    first = xmalloc(strlen(bare) + 4);
    sprintf(first, "n,,%s", bare);
    b64 = b64_encode((unsigned char *)first, strlen(first));
    client_send(c, "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>", mech,
                b64);
    free(b64);
    free(first);
}

static void
scram_challenge(client_t *c, const char *text)
{
    unsigned char sfirst[1024], salt[256], ckey[EVP_MAX_MD_SIZE],
        stored[EVP_MAX_MD_SIZE], csig[EVP_MAX_MD_SIZE], skey[EVP_MAX_MD_SIZE],
        ssig[EVP_MAX_MD_SIZE], proof[EVP_MAX_MD_SIZE];
    const unsigned char *salted;
    char *r = NULL, *s = NULL, *tok, *save = NULL, *copy, *authmsg, *final, *pb,
         *b64;
    unsigned mdlen = (unsigned)EVP_MD_get_size(c->md), len;
    int n, slen, iter = 0;
    size_t i, alen;

    if (strlen(text) * 3 / 4 >= sizeof(sfirst) ||
        (n = b64_decode(text, sfirst)) < 0) {
        client_fail(c, "bad SCRAM challenge");
        return;
    }
    sfirst[n] = '\0';
    copy = xstrdup((char *)sfirst);
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "r=", 2) == 0)
            r = tok + 2;
        else if (strncmp(tok, "s=", 2) == 0)
            s = tok + 2;
        else if (strncmp(tok, "i=", 2) == 0)
            iter = atoi(tok + 2);
    }
    if (r == NULL || s == NULL || iter <= 0 ||
        strncmp(r, c->cnonce, strlen(c->cnonce)) != 0 ||
        strlen(s) * 3 / 4 >= sizeof(salt) || (slen = b64_decode(s, salt)) < 0 ||
        slen > 128) {
        client_fail(c, "bad SCRAM server-first-message");
        free(copy);
        return;
    }
    salted = scram_salted(c->md, salt, slen, iter);
    alen = strlen(c->cfirst_bare) + strlen((char *)sfirst) + strlen(r) + 16;
    authmsg = xmalloc(alen);
    snprintf(authmsg, alen, "%s,%s,c=biws,r=%s", c->cfirst_bare, (char *)sfirst,
             r);
    HMAC(c->md, salted, (int)mdlen, (const unsigned char *)"Client Key", 10,
         ckey, &len);
    EVP_Digest(ckey, mdlen, stored, NULL, c->md, NULL);
    HMAC(c->md, stored, (int)mdlen, (unsigned char *)authmsg, strlen(authmsg),
         csig, &len);
    for (i = 0; i < mdlen; i++)
        proof[i] = ckey[i] ^ csig[i];
    HMAC(c->md, salted, (int)mdlen, (const unsigned char *)"Server Key", 10,
         skey, &len);
    HMAC(c->md, skey, (int)mdlen, (unsigned char *)authmsg, strlen(authmsg),
         ssig, &len);
    b64 = b64_encode(ssig, mdlen);
    snprintf(c->server_sig, sizeof(c->server_sig), "v=%s", b64);
    free(b64);
    pb = b64_encode(proof, mdlen);
    alen = strlen(r) + strlen(pb) + 32;
    final = xmalloc(alen);
    snprintf(final, alen, "c=biws,r=%s,p=%s", r, pb);
    b64 = b64_encode((unsigned char *) final, strlen(final));
    client_send(c, "<response xmlns='" NS_SASL "'>%s</response>", b64);
    free(b64);
    free(final);
    free(pb);
    free(authmsg);
    free(copy);
}

/* The server-final-message must carry our expected ServerSignature. */
static int
scram_verify(client_t *c, const char *text)
{
    unsigned char buf[256];
    int n;

    if (strlen(text) * 3 / 4 >= sizeof(buf) || (n = b64_decode(text, buf)) < 0)
        return -1;
    buf[n] = '\0';
    return strcmp((char *)buf, c->server_sig) == 0 ? 0 : -1;
}

/* ------------------------------------------------ the session state machine */

static int mech_unsupported;
static char offered_mechs[256];

static void
client_auth(client_t *c, el_t *features)
{
    el_t *mechs = el_child(features, NS_SASL SEP "mechanisms"), *m;
    int found = 0;

    offered_mechs[0] = '\0';
    for (m = mechs != NULL ? mechs->kids : NULL; m != NULL; m = m->next) {
        if (strlen(offered_mechs) + strlen(el_text(m)) + 2 <
            sizeof(offered_mechs)) {
            if (offered_mechs[0] != '\0')
                strcat(offered_mechs, " ");
            strcat(offered_mechs, el_text(m));
        }
        if (strcmp(el_text(m), opt.mech) == 0)
            found = 1;
    }
    if (!found) {
        mech_unsupported = 1;
        client_fail(c, "%s not offered (offered: %s)", opt.mech, offered_mechs);
        return;
    }
    c->state = CS_AUTH;
    if (strcmp(opt.mech, "PLAIN") == 0) {
        char raw[512];
        char *b64;
        int n =
            snprintf(raw, sizeof(raw), "%c%s%c%s", 0, c->user, 0, opt.password);

        b64 = b64_encode((unsigned char *)raw, (size_t)n);
        client_send(c, "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>%s</auth>",
                    b64);
        free(b64);
    } else if (strncmp(opt.mech, "SCRAM-SHA-", 10) == 0) {
        scram_start(c, opt.mech);
    } else {
        die("unknown mechanism %s", opt.mech);
    }
}

static unsigned bind_seq;

static void
client_features(client_t *c, el_t *e)
{
    if (!c->tls && opt.tls == TLS_STARTTLS) {
        if (el_child(e, NS_TLS SEP "starttls") == NULL) {
            client_fail(c, "STARTTLS not offered");
            return;
        }
        client_send(c, "<starttls xmlns='" NS_TLS "'/>");
        c->state = CS_STARTTLS;
        return;
    }
    if (c->registering) {
        client_send(c,
                    "<iq type='set' id='reg'><query xmlns='" NS_REGISTER
                    "'><username>%s</username><password>%s</password>"
                    "</query></iq>",
                    c->user, opt.password);
        c->state = CS_REGISTER;
        return;
    }
    if (!c->authed) {
        client_auth(c, e);
        return;
    }
    /* RFC 6121 §1.3 / draft-cridland-xmpp-session: <session/> only when
     * offered and not marked optional. */
    c->session_needed = el_child(e, NS_SESSION SEP "session") != NULL &&
                        el_child(el_child(e, NS_SESSION SEP "session"),
                                 NS_SESSION SEP "optional") == NULL;
    /* A fresh resource per connection: a login storm reusing accounts
     * must not replace (RFC 6120 §7.7.2.2) a session still closing. */
    client_send(c,
                "<iq type='set' id='bind'><bind xmlns='" NS_BIND
                "'><resource>bench%u</resource></bind></iq>",
                ++bind_seq);
    c->state = CS_BIND;
}

static void
client_after_bind(client_t *c)
{
    if (c->setup == SETUP_BIND) {
        c->state = CS_READY;
        c->sc->ready(c);
        return;
    }
    client_send(c, "<iq type='get' id='roster'><query xmlns='" NS_ROSTER
                   "'/></iq>");
    c->t_rq = now_ns();
    c->state = CS_ROSTER;
}

static void
client_roster_result(client_t *c, el_t *e)
{
    el_t *q = el_child(e, NS_ROSTER SEP "query"), *it;

    c->roster_items = c->roster_both = 0;
    for (it = q != NULL ? q->kids : NULL; it != NULL; it = it->next) {
        const char *sub = el_attr(it, "subscription");

        c->roster_items++;
        if (sub != NULL && strcmp(sub, "both") == 0)
            c->roster_both++;
    }
}

static void
client_iq_in(client_t *c, el_t *e)
{
    const char *type = el_attr(e, "type"), *id = el_attr(e, "id"),
               *from = el_attr(e, "from");
    el_t *k = e->kids;

    if (type == NULL || id == NULL ||
        (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return;
    /* Roster pushes (RFC 6121 §2.1.6) and pings (XEP-0199) are
     * acknowledged; anything else is refused as a client would. */
    if (k != NULL && (strcmp(k->name, NS_ROSTER SEP "query") == 0 ||
                      strcmp(k->name, NS_PING SEP "ping") == 0)) {
        if (from != NULL)
            client_send(c, "<iq type='result' id='%s' to='%s'/>", id, from);
        else
            client_send(c, "<iq type='result' id='%s'/>", id);
    } else if (from != NULL) {
        client_send(c,
                    "<iq type='error' id='%s' to='%s'><error type='cancel'>"
                    "<service-unavailable xmlns='urn:ietf:params:xml:ns:"
                    "xmpp-stanzas'/></error></iq>",
                    id, from);
    }
}

static void
client_element(client_t *c, el_t *e)
{
    const char *n = e->name;

    if (strcmp(n, NS_STREAM SEP "error") == 0 && c->state != CS_CLOSING) {
        client_fail(c, "stream error: %s",
                    e->kids != NULL ? e->kids->name : "?");
        return;
    }
    switch (c->state) {
    case CS_FEATURES:
        if (strcmp(n, NS_STREAM SEP "features") == 0)
            client_features(c, e);
        else
            client_fail(c, "expected features, got %s", n);
        return;
    case CS_STARTTLS:
        if (strcmp(n, NS_TLS SEP "proceed") == 0) {
            c->pending = PEND_TLS;
            XML_StopParser(c->xp, XML_FALSE);
        } else {
            client_fail(c, "STARTTLS refused: %s", n);
        }
        return;
    case CS_AUTH:
        if (strcmp(n, NS_SASL SEP "challenge") == 0 && c->md != NULL &&
            c->server_sig[0] == '\0') {
            scram_challenge(c, el_text(e));
        } else if (strcmp(n, NS_SASL SEP "challenge") == 0 && c->md != NULL &&
                   !c->sig_ok) {
            /* RFC 6120 §6.3.10 allows the server-final-message in a
             * challenge, answered with an empty response. */
            if (scram_verify(c, el_text(e)) != 0) {
                client_fail(c, "SCRAM server signature mismatch");
                return;
            }
            c->sig_ok = 1;
            client_send(c, "<response xmlns='" NS_SASL "'/>");
        } else if (strcmp(n, NS_SASL SEP "success") == 0) {
            if (c->md != NULL && !c->sig_ok &&
                scram_verify(c, el_text(e)) != 0) {
                client_fail(c, "SCRAM server signature mismatch");
                return;
            }
            c->authed = 1;
            c->pending = PEND_RESTART;
            XML_StopParser(c->xp, XML_FALSE);
        } else if (strcmp(n, NS_SASL SEP "failure") == 0) {
            client_fail(c, "SASL failure: %s",
                        e->kids != NULL ? e->kids->name : "?");
        } else {
            client_fail(c, "unexpected %s during SASL", n);
        }
        return;
    case CS_REGISTER:
        if (strcmp(n, NS_CLIENT SEP "iq") == 0) {
            const char *type = el_attr(e, "type");
            el_t *err = el_child(e, NS_CLIENT SEP "error");

            if (type != NULL && strcmp(type, "result") == 0)
                c->nsubs = 1; /* created */
            else if (err != NULL &&
                     el_child(err, "urn:ietf:params:xml:ns:xmpp-stanzas" SEP
                                   "conflict") != NULL)
                c->nsubs = 2; /* existed */
            else
                c->nsubs = -1;
            client_end(c);
        }
        return;
    case CS_BIND:
        if (strcmp(n, NS_CLIENT SEP "iq") == 0) {
            el_t *b = el_child(e, NS_BIND SEP "bind");
            const char *type = el_attr(e, "type");

            if (type == NULL || strcmp(type, "result") != 0 || b == NULL) {
                client_fail(c, "bind failed");
                return;
            }
            snprintf(c->full, sizeof(c->full), "%s",
                     el_text(el_child(b, NS_BIND SEP "jid")));
            if (c->session_needed) {
                client_send(
                    c, "<iq type='set' id='sess'><session xmlns='" NS_SESSION
                       "'/></iq>");
                c->state = CS_SESSION;
            } else {
                client_after_bind(c);
            }
        }
        return;
    case CS_SESSION:
        if (strcmp(n, NS_CLIENT SEP "iq") == 0)
            client_after_bind(c);
        return;
    case CS_ROSTER:
        if (strcmp(n, NS_CLIENT SEP "iq") == 0 && el_attr(e, "id") != NULL &&
            strcmp(el_attr(e, "id"), "roster") == 0) {
            client_roster_result(c, e);
            client_send(c, "<presence/>");
            c->state = CS_READY;
            c->sc->ready(c);
        } else if (strcmp(n, NS_CLIENT SEP "iq") == 0) {
            client_iq_in(c, e);
        }
        return;
    case CS_READY:
        if (strcmp(n, NS_CLIENT SEP "iq") == 0)
            client_iq_in(c, e);
        if (c->sc->stanza != NULL)
            c->sc->stanza(c, e);
        return;
    default: return; /* CS_CLOSING: whatever still arrives */
    }
}

/* ------------------------------------------------------------- the loop */

static int (*loop_cond)(void);
static int loop_met;
static int64_t loop_deadline;

static void
loop_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (loop_cond != NULL && loop_cond()) {
        loop_met = 1;
        event_base_loopbreak(base);
    } else if (now_ns() >= loop_deadline) {
        event_base_loopbreak(base);
    }
}

/* Runs the event loop until cond() holds (checked every 2 ms) or seconds
 * pass.  Returns 0 when cond held, -1 on time-out (always -1 when cond is
 * NULL: a plain wait). */
static int
run_until(int (*cond)(void), double seconds)
{
    struct timeval tv = {0, 2000};
    struct event *tick = event_new(base, -1, EV_PERSIST, loop_tick, NULL);

    loop_cond = cond;
    loop_met = 0;
    loop_deadline = now_ns() + (int64_t)(seconds * 1e9);
    if (cond != NULL && cond()) {
        event_free(tick);
        return 0;
    }
    event_add(tick, &tv);
    event_base_dispatch(base);
    event_free(tick);
    return loop_met ? 0 : -1;
}

/* ----------------------------------------------- opening many sessions */

/* A pool of sessions opened with at most opt.conc connecting at once.
 * pool_soft: pool_open reports failed sessions instead of exiting (idle:
 * how far a server gets is the result). */
static int pool_soft;
static struct {
    client_t **cl;
    int n, started, ready, failed, closed, setup;
    const scen_t *sc;
} pool;

static void
pool_start_next(void)
{
    while (pool.started < pool.n &&
           pool.started - pool.ready - pool.failed < opt.conc) {
        int i = pool.started++;

        pool.cl[i] = client_new(opt.first + i, pool.setup, pool.sc);
    }
}

static int
pool_all_ready(void)
{
    return pool.ready + pool.failed >= pool.n || mech_unsupported;
}

static int
pool_all_closed(void)
{
    return nclients_live == 0;
}

static void
pool_ready(client_t *c)
{
    pool.ready++;
    pool_start_next();
}

static void
pool_done(client_t *c, int ok)
{
    int i = c->idx - opt.first;

    if (c->state != CS_READY && c->state != CS_CLOSING)
        pool.failed++;
    else
        pool.closed++;
    if (i >= 0 && i < pool.n && pool.cl[i] == c)
        pool.cl[i] = NULL;
    pool_start_next();
}

/* Opens n sessions <prefix><first>..; returns when all are ready (or
 * failed).  The caller's scen_t must call pool_ready / pool_done. */
static void
pool_open(int n, int setup, const scen_t *sc)
{
    memset(&pool, 0, sizeof(pool));
    pool.cl = xcalloc((size_t)n, sizeof(client_t *));
    pool.n = n;
    pool.setup = setup;
    pool.sc = sc;
    pool_start_next();
    if (run_until(pool_all_ready, opt.timeout) < 0) {
        if (!pool_soft)
            die("sessions not ready after %.0f s (%d of %d, %d failed)",
                opt.timeout, pool.ready, n, pool.failed);
        note("sessions not ready after %.0f s (%d of %d, %d failed)",
             opt.timeout, pool.ready, n, pool.failed);
    }
    if (mech_unsupported)
        return;
    if (pool.failed > 0 && !pool_soft)
        die("%d of %d sessions failed to open", pool.failed, n);
    if (pool.failed > 0)
        note("%d of %d sessions failed to open (%d ready)", pool.failed, n,
             pool.ready);
}

static void
pool_close_all(void)
{
    int i;

    for (i = 0; i < pool.n; i++)
        if (pool.cl[i] != NULL)
            client_end(pool.cl[i]);
    if (run_until(pool_all_closed, 60) < 0)
        note("%d sessions not closed by the server after 60 s", nclients_live);
    free(pool.cl);
    pool.cl = NULL;
}

static void
print_common(void)
{
    printf(" host=%s:%d tls=%s", opt.host, opt.port,
           opt.tls == TLS_STARTTLS ? "starttls" : "none");
}

/* ------------------------------------------------ scenario: registration */

static int reg_created, reg_existed, reg_failed, reg_done, reg_started;

static void reg_next(void);

static void
reg_done_cb(client_t *c, int ok)
{
    if (c->nsubs == 1)
        reg_created++;
    else if (c->nsubs == 2)
        reg_existed++;
    else
        reg_failed++;
    reg_done++;
    reg_next();
}

static const scen_t reg_scen = {NULL, NULL, reg_done_cb};

static void
reg_next(void)
{
    while (reg_started < opt.n && reg_started - reg_done < opt.conc) {
        client_t *c =
            client_new(opt.first + reg_started++, SETUP_BIND, &reg_scen);

        if (c != NULL)
            c->registering = 1;
    }
}

static int
reg_all_done(void)
{
    return reg_done >= opt.n;
}

/* register: XEP-0077 in-band registration of <prefix><first..first+n-1>
 * (an account that exists already counts as "existed", not failed). */
static int
cmd_register(void)
{
    snap_t a, b;

    a = snap();
    reg_next();
    if (run_until(reg_all_done, opt.timeout) < 0)
        die("registration not finished after %.0f s (%d of %d)", opt.timeout,
            reg_done, opt.n);
    b = snap();
    printf("RESULT scenario=register n=%d created=%d existed=%d failed=%d "
           "wall_s=%.3f srv_cpu_s=%.3f gen_cpu_s=%.3f",
           opt.n, reg_created, reg_existed, reg_failed, snap_wall(&a, &b),
           b.srv - a.srv, b.gen - a.gen);
    print_common();
    printf("\n");
    return reg_failed > 0 ? 1 : 0;
}

/* ------------------------------------------------ scenario: login storm */

static int login_ok, login_failed, login_started;
static int64_t login_last;

static void
login_ready(client_t *c)
{
    client_end(c);
}

static void login_next(void);

static void
login_done(client_t *c, int ok)
{
    resume_count(c);
    if (ok && c->state == CS_CLOSING)
        login_ok++;
    else
        login_failed++;
    login_last = now_ns();
    login_next();
}

static const scen_t login_scen = {login_ready, NULL, login_done};

/* Logins cycle over a small set of accounts (--users, default 50) so the
 * SCRAM client cache holds: the generator stays cheap. */
static void
login_next(void)
{
    while (!mech_unsupported && login_started < opt.n &&
           login_started - login_ok - login_failed < opt.conc) {
        int idx = opt.first + login_started % opt.users;

        login_started++;
        client_new(idx, SETUP_BIND, &login_scen);
    }
}

static int
login_all_done(void)
{
    return login_ok + login_failed >= opt.n ||
           (mech_unsupported && nclients_live == 0);
}

static int
cmd_login(void)
{
    snap_t a, b;
    double wall;

    if (opt.users > opt.n)
        opt.users = opt.n;
    a = snap();
    login_next();
    if (run_until(login_all_done, opt.timeout) < 0)
        die("logins not finished after %.0f s (%d ok, %d failed)", opt.timeout,
            login_ok, login_failed);
    b = snap();
    b.wall = login_last;
    wall = snap_wall(&a, &b);
    printf("RESULT scenario=login mech=%s", opt.mech);
    print_common();
    if (mech_unsupported) {
        printf(" status=unsupported offered=\"%s\"\n", offered_mechs);
        return 0;
    }
    printf(" n=%d ok=%d failed=%d conc=%d wall_s=%.3f logins_per_s=%.1f "
           "srv_cpu_s=%.3f srv_ms_per_login=%.4f gen_cpu_s=%.3f "
           "gen_ms_per_login=%.4f tls_resumed=%d tls_full=%d "
           "offered=\"%s\"\n",
           opt.n, login_ok, login_failed, opt.conc, wall,
           wall > 0 ? login_ok / wall : 0, b.srv - a.srv,
           login_ok ? (b.srv - a.srv) * 1000 / login_ok : 0, b.gen - a.gen,
           login_ok ? (b.gen - a.gen) * 1000 / login_ok : 0, resume_reused,
           resume_full, offered_mechs);
    return login_failed > 0 ? 1 : 0;
}

/* ------------------------------------------------ scenario: idle sessions */

static const scen_t idle_scen = {pool_ready, NULL, pool_done};

static int
cmd_idle(void)
{
    snap_t a, b, c, d;
    long rss0, rss1;
    int k;

    rss0 = srv_rss_kib();
    a = snap();
    pool_soft = 1;
    pool_open(opt.n, SETUP_FULL, &idle_scen);
    printf("RESULT scenario=idle mech=%s", opt.mech);
    print_common();
    if (mech_unsupported) {
        printf(" status=unsupported\n");
        return 0;
    }
    b = snap();
    run_until(NULL, opt.settle);
    rss1 = srv_rss_kib();
    c = snap();
    run_until(NULL, opt.hold);
    d = snap();
    /* per session: over the sessions that came up (all, normally) */
    k = pool.ready > 0 ? pool.ready : 1;
    printf(" n=%d ok=%d failed=%d setup_s=%.3f srv_cpu_setup_s=%.3f "
           "srv_ms_per_session_setup=%.4f rss0_kib=%ld rss1_kib=%ld "
           "kib_per_session=%.2f hold_s=%.1f srv_cpu_hold_s=%.3f "
           "gen_cpu_s=%.3f\n",
           opt.n, pool.ready, pool.failed, snap_wall(&a, &b), b.srv - a.srv,
           (b.srv - a.srv) * 1000 / k, rss0, rss1, (double)(rss1 - rss0) / k,
           snap_wall(&c, &d), d.srv - c.srv, d.gen - a.gen);
    fflush(stdout);
    pool_close_all();
    return pool.ready < opt.n ? 1 : 0;
}

/* ---------------------------------------------- scenario: 1:1 messages */

/* Pairs (2k, 2k+1) of sessions.  Saturated mode: each side keeps --window
 * messages in flight and answers every delivered message with a new one,
 * so the server sets the pace.  Rate mode: a 1 ms timer offers --rate
 * messages per second in all, round robin over the senders, each body
 * carrying its send time. */
static int64_t msg_sent, msg_recv, msg_errors;
static int msg_on, msg_saturated;
static int64_t *lat;
static size_t nlat, lat_cap;

static void
msg_send(client_t *c)
{
    client_t *peer;
    int p = c->idx ^ 1;
    char to[512];

    if (opt.to_full && (peer = pool.cl[p - opt.first]) != NULL)
        snprintf(to, sizeof(to), "%s", peer->full);
    else
        snprintf(to, sizeof(to), "%s%d@%s", opt.prefix, p, opt.domain);
    client_send(c,
                "<message to='%s' type='chat' id='m%" PRId64
                "'><body>t=%" PRId64 " " BODY_PAD "</body></message>",
                to, msg_sent, now_ns());
    msg_sent++;
}

static void
msg_stanza(client_t *c, el_t *e)
{
    el_t *body;
    const char *type;
    int64_t t;

    if (strcmp(e->name, NS_CLIENT SEP "message") != 0)
        return;
    type = el_attr(e, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        msg_errors++;
        return;
    }
    if ((body = el_child(e, NS_CLIENT SEP "body")) == NULL)
        return;
    msg_recv++;
    if (!msg_saturated) {
        if (sscanf(el_text(body), "t=%" SCNd64, &t) == 1) {
            if (nlat == lat_cap) {
                lat_cap = lat_cap ? lat_cap * 2 : 65536;
                lat = realloc(lat, lat_cap * sizeof(*lat));
                if (lat == NULL)
                    die("out of memory");
            }
            lat[nlat++] = now_ns() - t;
        }
    } else if (msg_on) {
        msg_send(c);
    }
}

static const scen_t msg_scen = {pool_ready, msg_stanza, pool_done};

static int
msg_drained(void)
{
    return msg_recv + msg_errors >= msg_sent;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static double
pct_ms(const int64_t *v, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static int64_t rate_t0, rate_total;
static int rate_next;

static void
rate_tick(evutil_socket_t fd, short what, void *arg)
{
    int64_t due;
    int nsend = pool.n;

    (void)fd;
    (void)what;
    (void)arg;
    if (!msg_on)
        return;
    due = (int64_t)((double)(now_ns() - rate_t0) / 1e9 * opt.rate);
    if (due > rate_total)
        due = rate_total;
    while (msg_sent < due) {
        client_t *c = pool.cl[rate_next];

        rate_next = (rate_next + 1) % nsend;
        if (c != NULL)
            msg_send(c);
    }
}

static int
cmd_msg(int saturated)
{
    snap_t a, b;
    int64_t r0, r1;
    int i, lost;

    msg_saturated = saturated;
    pool_open(2 * opt.pairs, SETUP_FULL, &msg_scen);
    if (mech_unsupported)
        die("mechanism %s not offered", opt.mech);
    run_until(NULL, 1.0); /* let presence and roster traffic settle */
    if (saturated) {
        msg_on = 1;
        for (i = 0; i < pool.n; i++) {
            int w;

            for (w = 0; w < opt.window && pool.cl[i] != NULL; w++)
                msg_send(pool.cl[i]);
        }
        run_until(NULL, opt.warmup);
        a = snap();
        r0 = msg_recv;
        run_until(NULL, opt.duration);
        b = snap();
        r1 = msg_recv;
        msg_on = 0;
    } else {
        struct timeval tv = {0, 1000};
        struct event *tick = event_new(base, -1, EV_PERSIST, rate_tick, NULL);

        rate_total = (int64_t)(opt.rate * opt.duration);
        msg_on = 1;
        a = snap();
        rate_t0 = a.wall;
        r0 = 0;
        event_add(tick, &tv);
        run_until(NULL, opt.duration);
        event_free(tick);
        msg_on = 0;
        b = snap();
        r1 = msg_recv;
    }
    if (run_until(msg_drained, 10) < 0)
        note("%" PRId64 " messages not delivered 10 s after the end",
             msg_sent - msg_recv - msg_errors);
    lost = (int)(msg_sent - msg_recv);
    if (saturated) {
        double wall = snap_wall(&a, &b), n = (double)(r1 - r0);

        printf("RESULT scenario=msg mech=%s", opt.mech);
        print_common();
        printf(" pairs=%d window=%d to=%s delivered=%.0f wall_s=%.3f "
               "msgs_per_s=%.1f srv_cpu_s=%.3f srv_s_per_10k=%.4f "
               "srv_util=%.3f gen_cpu_s=%.3f gen_s_per_10k=%.4f "
               "errors=%" PRId64 " lost=%d\n",
               opt.pairs, opt.window, opt.to_full ? "full" : "bare", n, wall,
               n / wall, b.srv - a.srv, n > 0 ? (b.srv - a.srv) * 1e4 / n : 0,
               (b.srv - a.srv) / wall, b.gen - a.gen,
               n > 0 ? (b.gen - a.gen) * 1e4 / n : 0, msg_errors, lost);
    } else {
        double wall = snap_wall(&a, &b);

        qsort(lat, nlat, sizeof(*lat), cmp_i64);
        printf("RESULT scenario=rate mech=%s", opt.mech);
        print_common();
        printf(" pairs=%d to=%s offered_per_s=%.0f sent=%" PRId64
               " delivered=%" PRId64 " wall_s=%.3f lat_p50_ms=%.3f "
               "lat_p99_ms=%.3f lat_max_ms=%.3f srv_cpu_s=%.3f "
               "srv_s_per_10k=%.4f srv_util=%.3f gen_cpu_s=%.3f "
               "errors=%" PRId64 " lost=%d\n",
               opt.pairs, opt.to_full ? "full" : "bare", opt.rate, msg_sent,
               msg_recv, wall, pct_ms(lat, nlat, 0.5), pct_ms(lat, nlat, 0.99),
               nlat ? (double)lat[nlat - 1] / 1e6 : 0, b.srv - a.srv,
               r1 > 0 ? (b.srv - a.srv) * 1e4 / (double)r1 : 0,
               (b.srv - a.srv) / wall, b.gen - a.gen, msg_errors, lost);
    }
    fflush(stdout);
    pool_close_all();
    return lost > 0 ? 1 : 0;
}

/* ------------------------------------------------ scenario: presence fan-out */

/* Users <prefix>0..U-1; user i's contacts are the --contacts users nearest
 * to it on a ring (i±1 .. i±K/2 mod U), with mutual subscriptions made by
 * the "roster" command.  An update is <presence> with <status>fan SEQ
 * </status> from one user; it is complete when all its K contacts have it. */
static int
ring_contact(int i, int k)
{
    int half = opt.contacts / 2, d = k < half ? k + 1 : -(k - half + 1);

    return ((i + d) % opt.users + opt.users) % opt.users;
}

typedef struct {
    int64_t t0, t1;
    int got;
} upd_t;

static upd_t *upd;
static int upd_n, upd_sent, upd_done, upd_conc, upd_base;
static int64_t fan_presence_in, fan_last_presence, fan_notified;
static int64_t *fan_lat;
static size_t fan_nlat;

static void
fan_send_next(void)
{
    while (upd_sent < upd_n && upd_sent - upd_done < upd_conc) {
        int seq = upd_base + upd_sent++;
        client_t *c = pool.cl[(int)(((int64_t)seq * 7919) % opt.users)];

        upd[seq].t0 = now_ns();
        client_send(c, "<presence><status>fan %d</status></presence>", seq);
    }
}

static void
fan_stanza(client_t *c, el_t *e)
{
    const char *type, *from;
    el_t *st;
    int seq;

    if (strcmp(e->name, NS_CLIENT SEP "presence") != 0)
        return;
    fan_presence_in++;
    fan_last_presence = now_ns();
    type = el_attr(e, "type");
    from = el_attr(e, "from");
    if (type != NULL || from == NULL || strcmp(from, c->full) == 0)
        return;
    st = el_child(e, NS_CLIENT SEP "status");
    if (st == NULL || sscanf(el_text(st), "fan %d", &seq) != 1 || seq < 0 ||
        seq >= upd_base + upd_n || upd == NULL)
        return;
    fan_notified++;
    if (++upd[seq].got == opt.contacts) {
        upd[seq].t1 = now_ns();
        fan_lat[fan_nlat++] = upd[seq].t1 - upd[seq].t0;
        upd_done++;
        fan_send_next();
    }
}

static const scen_t fan_scen = {pool_ready, fan_stanza, pool_done};

static int
fan_quiet(void)
{
    return now_ns() - fan_last_presence > 1500000000;
}

static int
fan_phase_done(void)
{
    return upd_done >= upd_n;
}

/* Runs n updates with conc in flight; prints one RESULT line. */
static void
fan_phase(const char *phase, int n, int conc)
{
    snap_t a, b;
    int64_t notified0 = fan_notified;
    double wall, notes;

    upd_base += upd_n;
    upd_n = n;
    upd_sent = upd_done = 0;
    upd_conc = conc;
    fan_nlat = 0;
    fan_lat = xcalloc((size_t)n, sizeof(*fan_lat));
    a = snap();
    fan_send_next();
    if (run_until(fan_phase_done, opt.timeout) < 0)
        note("fan-out %s: %d of %d updates complete after %.0f s", phase,
             upd_done, n, opt.timeout);
    b = snap();
    wall = snap_wall(&a, &b);
    notes = (double)(fan_notified - notified0);
    qsort(fan_lat, fan_nlat, sizeof(*fan_lat), cmp_i64);
    printf("RESULT scenario=fanout phase=%s mech=%s", phase, opt.mech);
    print_common();
    printf(" users=%d contacts=%d updates=%d conc=%d complete=%d "
           "notifications=%.0f wall_s=%.3f notif_per_s=%.1f "
           "lat_p50_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f srv_cpu_s=%.3f "
           "srv_s_per_10k=%.4f gen_cpu_s=%.3f gen_s_per_10k=%.4f\n",
           opt.users, opt.contacts, n, conc, upd_done, notes, wall,
           notes / wall, pct_ms(fan_lat, fan_nlat, 0.5),
           pct_ms(fan_lat, fan_nlat, 0.99),
           fan_nlat ? (double)fan_lat[fan_nlat - 1] / 1e6 : 0, b.srv - a.srv,
           notes > 0 ? (b.srv - a.srv) * 1e4 / notes : 0, b.gen - a.gen,
           notes > 0 ? (b.gen - a.gen) * 1e4 / notes : 0);
    fflush(stdout);
    free(fan_lat);
    fan_lat = NULL;
}

static int
cmd_fanout(void)
{
    int i, minboth = opt.contacts, total;

    opt.n = opt.users;
    total = opt.lat_updates + opt.updates;
    upd = xcalloc((size_t)total, sizeof(*upd));
    pool_open(opt.users, SETUP_FULL, &fan_scen);
    if (mech_unsupported)
        die("mechanism %s not offered", opt.mech);
    for (i = 0; i < pool.n; i++)
        if (pool.cl[i] != NULL && pool.cl[i]->roster_both < minboth)
            minboth = pool.cl[i]->roster_both;
    if (minboth < opt.contacts)
        die("a fan-out user has %d mutual contacts, not %d: run the roster "
            "command first",
            minboth, opt.contacts);
    fan_last_presence = now_ns();
    if (run_until(fan_quiet, 120) < 0)
        note("presence still flowing after 120 s");
    note("fan-out: %d users online, %" PRId64 " presences received at login",
         opt.users, fan_presence_in);
    upd_n = 0;
    upd_base = 0;
    fan_phase("latency", opt.lat_updates, 1);
    fan_phase("throughput", opt.updates, opt.fan_conc);
    pool_close_all();
    free(upd);
    return 0;
}

/* -------------------------------- provisioning: mutual subscriptions */

static int64_t sub_queue_pos, sub_queue_len, sub_acked, sub_sent;

static void
sub_pump(void)
{
    /* (user i, contact k) in order; at most 400 subscribes unanswered */
    while (sub_queue_pos < sub_queue_len && sub_sent - sub_acked < 400) {
        int i = (int)(sub_queue_pos / opt.contacts),
            k = (int)(sub_queue_pos % opt.contacts);
        client_t *c = pool.cl[i];

        sub_queue_pos++;
        if (c == NULL || c->roster_both >= opt.contacts)
            continue;
        /* --star: user 0 alone subscribes, to users 1..K */
        client_send(c, "<presence type='subscribe' to='%s%d@%s'/>", opt.prefix,
                    opt.first + (opt.star ? k + 1 : ring_contact(i, k)),
                    opt.domain);
        sub_sent++;
    }
}

static void
sub_stanza(client_t *c, el_t *e)
{
    const char *type = el_attr(e, "type"), *from = el_attr(e, "from");

    if (strcmp(e->name, NS_CLIENT SEP "presence") == 0 && type != NULL &&
        from != NULL) {
        if (strcmp(type, "subscribe") == 0) {
            client_send(c, "<presence type='subscribed' to='%s'/>", from);
            /* --star: a contact subscribes back, for "both" */
            if (opt.star && c->idx != opt.first) {
                client_send(c, "<presence type='subscribe' to='%s'/>", from);
                sub_sent++;
            }
        } else if (strcmp(type, "subscribed") == 0) {
            sub_acked++;
            sub_pump();
        }
    } else if (strcmp(e->name, NS_CLIENT SEP "iq") == 0 &&
               el_attr(e, "id") != NULL &&
               strcmp(el_attr(e, "id"), "verify") == 0) {
        client_roster_result(c, e);
        c->nsubs = 1;
    }
}

static const scen_t sub_scen = {pool_ready, sub_stanza, pool_done};

static int
sub_all_acked(void)
{
    return sub_queue_pos >= sub_queue_len && sub_acked >= sub_sent;
}

static int
sub_all_verified(void)
{
    int i;

    for (i = 0; i < pool.n; i++)
        if (pool.cl[i] != NULL && !pool.cl[i]->nsubs)
            return 0;
    return 1;
}

/* roster: mutual subscriptions between each of --users users and its
 * --contacts ring neighbours, made through the protocol (RFC 6121 §3):
 * every user sends subscribe to each neighbour and approves every
 * subscribe it receives. */
static int
cmd_roster(void)
{
    snap_t a, b;
    int i, bad = 0, minboth = opt.contacts;

    if (opt.contacts >= opt.users)
        die("--contacts must be less than --users");
    if (opt.star)
        opt.users = opt.contacts + 1;
    opt.n = opt.users;
    a = snap();
    pool_open(opt.users, SETUP_FULL, &sub_scen);
    if (mech_unsupported)
        die("mechanism %s not offered", opt.mech);
    sub_queue_len = (int64_t)(opt.star ? 1 : opt.users) * opt.contacts;
    sub_pump();
    if (run_until(sub_all_acked, opt.timeout) < 0)
        note("%" PRId64 " of %" PRId64 " subscriptions approved after %.0f s",
             sub_acked, sub_sent, opt.timeout);
    run_until(NULL, 2.0);
    for (i = 0; i < pool.n; i++)
        client_send(pool.cl[i],
                    "<iq type='get' id='verify'><query xmlns='" NS_ROSTER
                    "'/></iq>");
    if (run_until(sub_all_verified, 60) < 0)
        die("roster verification timed out");
    for (i = 0; i < pool.n; i++) {
        int want = opt.star && i > 0 ? 1 : opt.contacts;

        if (pool.cl[i]->roster_both < want)
            bad++;
        if (pool.cl[i]->roster_both < minboth && (!opt.star || i == 0))
            minboth = pool.cl[i]->roster_both;
    }
    b = snap();
    printf("RESULT scenario=roster users=%d contacts=%d subscribes=%" PRId64
           " approved=%" PRId64 " users_incomplete=%d min_both=%d "
           "wall_s=%.3f srv_cpu_s=%.3f gen_cpu_s=%.3f\n",
           opt.users, opt.contacts, sub_sent, sub_acked, bad, minboth,
           snap_wall(&a, &b), b.srv - a.srv, b.gen - a.gen);
    fflush(stdout);
    pool_close_all();
    return bad > 0 ? 1 : 0;
}

/* ---------------------------------------- waiting for the server to idle */

/* Returns a snapshot taken when the server's CPU time stopped growing:
 * the first of 4 polls 100 ms apart that all read the same CPU time (so
 * asynchronous work, such as storage commits after the last reply, is
 * counted), or the last poll after `limit` seconds. */
static snap_t
srv_quiet_snap(double limit)
{
    snap_t first = snap(), cur;
    int64_t end = now_ns() + (int64_t)(limit * 1e9);
    int same = 0;

    if (srv_pid <= 0)
        return first;
    while (now_ns() < end) {
        run_until(NULL, 0.1);
        cur = snap();
        if (cur.srv == first.srv) {
            if (++same >= 3)
                return first;
        } else {
            first = cur;
            same = 0;
        }
    }
    return snap();
}

/* ------------------------------------ scenario: login with a big roster */

/* rlogin: -n logins of the one account <prefix><first>, --conc at once
 * (default 1), each with the full set-up (STARTTLS, SASL, bind, roster
 * get, initial presence), then closed.  Per login: wall ms from connect
 * to the roster result, and from the roster get to its result; server CPU
 * per login over the whole run (until the server's CPU is quiet after the
 * last close, so presence probes and broadcasts are in it). */
static int rl_ok, rl_failed, rl_started, rl_items = -1, rl_both = -1;
static int64_t *rl_lat, *rl_rq;
static size_t rl_n;

static void rl_next(void);

static void
rl_ready(client_t *c)
{
    int64_t t = now_ns();

    rl_lat[rl_n] = t - c->t0;
    rl_rq[rl_n++] = t - c->t_rq;
    if (rl_items < 0 || c->roster_items < rl_items)
        rl_items = c->roster_items;
    if (rl_both < 0 || c->roster_both < rl_both)
        rl_both = c->roster_both;
    client_end(c);
}

static void
rl_done(client_t *c, int ok)
{
    if (ok && c->state == CS_CLOSING)
        rl_ok++;
    else
        rl_failed++;
    rl_next();
}

static const scen_t rl_scen = {rl_ready, NULL, rl_done};

static void
rl_next(void)
{
    while (!mech_unsupported && rl_started < opt.n &&
           rl_started - rl_ok - rl_failed < opt.conc) {
        rl_started++;
        client_new(opt.first, SETUP_FULL, &rl_scen);
    }
}

static int
rl_all_done(void)
{
    return rl_ok + rl_failed >= opt.n ||
           (mech_unsupported && nclients_live == 0);
}

static int
cmd_rlogin(void)
{
    snap_t a, b;
    double cpu;

    rl_lat = xcalloc((size_t)opt.n, sizeof(*rl_lat));
    rl_rq = xcalloc((size_t)opt.n, sizeof(*rl_rq));
    a = srv_quiet_snap(10);
    rl_next();
    if (run_until(rl_all_done, opt.timeout) < 0)
        die("logins not finished after %.0f s (%d ok, %d failed)", opt.timeout,
            rl_ok, rl_failed);
    b = srv_quiet_snap(10);
    cpu = b.srv - a.srv;
    qsort(rl_lat, rl_n, sizeof(*rl_lat), cmp_i64);
    qsort(rl_rq, rl_n, sizeof(*rl_rq), cmp_i64);
    printf("RESULT scenario=rlogin mech=%s", opt.mech);
    print_common();
    printf(" user=%s%d n=%d ok=%d failed=%d conc=%d roster_items=%d "
           "login_p50_ms=%.3f login_p90_ms=%.3f roster_p50_ms=%.3f "
           "roster_p90_ms=%.3f srv_cpu_s=%.3f srv_ms_per_login=%.4f "
           "gen_cpu_s=%.3f roster_both=%d\n",
           opt.prefix, opt.first, opt.n, rl_ok, rl_failed, opt.conc, rl_items,
           pct_ms(rl_lat, rl_n, 0.5), pct_ms(rl_lat, rl_n, 0.9),
           pct_ms(rl_rq, rl_n, 0.5), pct_ms(rl_rq, rl_n, 0.9), cpu,
           rl_ok ? cpu * 1000 / rl_ok : 0, b.gen - a.gen, rl_both);
    fflush(stdout);
    return rl_failed > 0 ? 1 : 0;
}

/* ------------------------------------ scenario: offline message delivery */

/* offline: <prefix><first> sends -n chat messages to <prefix><first+1>,
 * which has no session (the server stores them); it closes once the
 * server answered a ping sent after the last one and the server's CPU is
 * quiet: "store" = server CPU from the first message to then (parsing and
 * routing the messages included).  Then <prefix><first+1> logs in (roster
 * get, initial presence): "deliver" = from its initial presence to the
 * n-th stored message received, and the server CPU over that (until
 * quiet). */
static int off_got, off_ping, off_errors, off_phase;
static int64_t off_t0, off_t1;

static void
off_stanza(client_t *c, el_t *e)
{
    const char *type = el_attr(e, "type"), *id = el_attr(e, "id");

    if (strcmp(e->name, NS_CLIENT SEP "iq") == 0 && id != NULL &&
        strcmp(id, "offping") == 0) {
        off_ping = 1;
        return;
    }
    if (strcmp(e->name, NS_CLIENT SEP "message") != 0)
        return;
    if (type != NULL && strcmp(type, "error") == 0) {
        off_errors++;
        return;
    }
    if (strncmp(el_text(el_child(e, NS_CLIENT SEP "body")), "off ", 4) == 0 &&
        ++off_got == opt.n)
        off_t1 = now_ns();
}

static void
off_ready(client_t *c)
{
    if (off_phase == 1)
        off_t0 = now_ns(); /* the recipient's initial presence just went out */
    pool_ready(c);
}

static const scen_t off_scen = {off_ready, off_stanza, pool_done};

static int
off_pinged(void)
{
    return off_ping;
}

static int
off_all_in(void)
{
    return off_got >= opt.n;
}

static int
cmd_offline(void)
{
    snap_t a, b, c, d;
    client_t *s;
    int i, errors_store;

    /* the sender: bind only (it needs no presence to send) */
    pool_open(1, SETUP_BIND, &off_scen);
    s = pool.cl[0];
    if (mech_unsupported)
        die("mechanism %s not offered", opt.mech);
    a = srv_quiet_snap(10);
    for (i = 0; i < opt.n; i++)
        client_send(
            s,
            "<message to='%s%d@%s' type='chat' id='o%d'><body>off %d " BODY_PAD
            "</body></message>",
            opt.prefix, opt.first + 1, opt.domain, i, i);
    client_send(s,
                "<iq type='get' id='offping'><ping xmlns='" NS_PING "'/></iq>");
    if (run_until(off_pinged, opt.timeout) < 0)
        die("no ping reply after %.0f s", opt.timeout);
    b = srv_quiet_snap(30);
    errors_store = off_errors;
    pool_close_all();

    /* the recipient logs in */
    opt.first++;
    off_phase = 1;
    c = srv_quiet_snap(10);
    pool_open(1, SETUP_FULL, &off_scen);
    opt.first--;
    if (run_until(off_all_in, opt.timeout) < 0)
        note("offline: %d of %d messages delivered after %.0f s", off_got,
             opt.n, opt.timeout);
    d = srv_quiet_snap(30);
    printf("RESULT scenario=offline mech=%s", opt.mech);
    print_common();
    printf(" n=%d store_wall_s=%.3f store_srv_cpu_s=%.3f "
           "store_srv_ms_per_msg=%.4f store_errors=%d delivered=%d "
           "deliver_ms=%.3f deliver_srv_cpu_s=%.3f "
           "deliver_srv_ms_per_msg=%.4f gen_cpu_s=%.3f\n",
           opt.n, snap_wall(&a, &b), b.srv - a.srv,
           (b.srv - a.srv) * 1000 / opt.n, errors_store, off_got,
           off_got >= opt.n ? (double)(off_t1 - off_t0) / 1e6 : -1,
           d.srv - c.srv, (d.srv - c.srv) * 1000 / opt.n, d.gen - a.gen);
    fflush(stdout);
    opt.first++;
    pool_close_all();
    opt.first--;
    return off_got >= opt.n && errors_store == 0 ? 0 : 1;
}

/* ---------------------------------------------- scenario: MAM queries */

/* mam: <prefix><first> owns the archive; --partners P accounts
 * <prefix><first+1..first+P> are its correspondents.  All log in with
 * initial presence.  --fill N: the partners send N chat messages (round
 * robin, 100 in flight) to the owner's bare JID, through the server,
 * which archives each for the sender and the recipient.  Then --queries Q
 * of each kind, one at a time, by the owner (urn:xmpp:mam:2, RSM max 50):
 * "last" the last page of the whole archive (<before/>), "with" the
 * first page with the first partner, "window" the first page between
 * start and end, 40% and 60% of the way between the archive's first and
 * last timestamps (read first with two untimed queries).  Per kind: wall
 * ms per query (p50, p90) and server CPU ms per query. */
static int mam_sent, mam_recv, mam_results, mam_iq_done, mam_iq_err;
static char mam_stamp[64];

static void
mam_fill_next(void)
{
    while (mam_sent < opt.fill && mam_sent - mam_recv < 100) {
        client_t *c = pool.cl[1 + mam_sent % opt.partners];

        client_send(
            c,
            "<message to='%s%d@%s' type='chat' id='a%d'><body>mam %d " BODY_PAD
            "</body></message>",
            opt.prefix, opt.first, opt.domain, mam_sent, mam_sent);
        mam_sent++;
    }
}

static void
mam_stanza(client_t *c, el_t *e)
{
    el_t *r, *f, *d;

    if (c != pool.cl[0])
        return;
    if (strcmp(e->name, NS_CLIENT SEP "message") == 0) {
        if ((r = el_child(e, "urn:xmpp:mam:2" SEP "result")) != NULL) {
            mam_results++;
            f = el_child(r, "urn:xmpp:forward:0" SEP "forwarded");
            d = f != NULL ? el_child(f, "urn:xmpp:delay" SEP "delay") : NULL;
            if (d != NULL && el_attr(d, "stamp") != NULL)
                snprintf(mam_stamp, sizeof(mam_stamp), "%s",
                         el_attr(d, "stamp"));
        } else if (strncmp(el_text(el_child(e, NS_CLIENT SEP "body")), "mam ",
                           4) == 0) {
            if (++mam_recv % 1000 == 0)
                note("MAM fill: %d", mam_recv);
            mam_fill_next();
        }
    } else if (strcmp(e->name, NS_CLIENT SEP "iq") == 0 &&
               el_attr(e, "id") != NULL &&
               strncmp(el_attr(e, "id"), "mq", 2) == 0) {
        const char *type = el_attr(e, "type");

        if (type == NULL || strcmp(type, "result") != 0) {
            mam_iq_err++;
            if (mam_iq_err < 4)
                note("MAM query %s: type %s", el_attr(e, "id"),
                     type != NULL ? type : "?");
        }
        mam_iq_done++;
    }
}

static const scen_t mam_scen = {pool_ready, mam_stanza, pool_done};

static int
mam_filled(void)
{
    return mam_recv >= opt.fill;
}

static int mam_want;

static int
mam_iq_in(void)
{
    return mam_iq_done >= mam_want;
}

/* Sends one query (kind 0 last page, 1 with, 2 window, 3 first item)
 * and waits for its iq result; returns the number of results. */
static int
mam_query(int kind, int max, const char *start, const char *end)
{
    static int seq;
    char form[1024] = "", set[256];
    int r0 = mam_results;

    if (kind == 1)
        snprintf(form, sizeof(form),
                 "<x xmlns='jabber:x:data' type='submit'><field "
                 "var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value>"
                 "</field><field var='with'><value>%s%d@%s</value></field>"
                 "</x>",
                 opt.prefix, opt.first + 1, opt.domain);
    else if (kind == 2)
        snprintf(form, sizeof(form),
                 "<x xmlns='jabber:x:data' type='submit'><field "
                 "var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value>"
                 "</field><field var='start'><value>%s</value></field>"
                 "<field var='end'><value>%s</value></field></x>",
                 start, end);
    snprintf(set, sizeof(set),
             "<set xmlns='http://jabber.org/protocol/rsm'><max>%d</max>%s"
             "</set>",
             max, kind == 0 ? "<before/>" : "");
    seq++;
    client_send(pool.cl[0],
                "<iq type='set' id='mq%d'><query xmlns='urn:xmpp:mam:2' "
                "queryid='q%d'>%s%s</query></iq>",
                seq, seq, form, set);
    mam_want = mam_iq_done + 1;
    if (run_until(mam_iq_in, 60) < 0)
        die("MAM query %d: no answer after 60 s", seq);
    return mam_results - r0;
}

static time_t
mam_parse_stamp(const char *s)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        die("unexpected MAM stamp %s", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static void
mam_fmt_stamp(time_t t, char *buf, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
cmd_mam(void)
{
    static const char *const kinds[] = {"last", "with", "window"};
    char start[64], end[64];
    time_t t_first, t_last;
    int64_t *qlat;
    snap_t a, b;
    int k, q, nres, minres;

    pool_open(1 + opt.partners, SETUP_FULL, &mam_scen);
    if (mech_unsupported)
        die("mechanism %s not offered", opt.mech);
    run_until(NULL, 0.5);
    if (opt.fill > 0) {
        a = srv_quiet_snap(10);
        mam_fill_next();
        if (run_until(mam_filled, opt.timeout) < 0) {
            /* a server too slow to archive them all in --timeout: stop
             * sending, let the ones in flight arrive, report how far */
            note("MAM fill: %d of %d messages after %.0f s: stopping", mam_recv,
                 opt.fill, opt.timeout);
            opt.fill = mam_sent;
            if (run_until(mam_filled, 300) < 0)
                die("MAM fill: %d of %d in flight still missing",
                    mam_sent - mam_recv, mam_sent);
        }
        b = srv_quiet_snap(30);
        printf("RESULT scenario=mam phase=fill");
        print_common();
        printf(" n=%d partners=%d wall_s=%.3f srv_cpu_s=%.3f "
               "srv_ms_per_msg=%.4f gen_cpu_s=%.3f\n",
               mam_recv, opt.partners, snap_wall(&a, &b), b.srv - a.srv,
               (b.srv - a.srv) * 1000 / mam_recv, b.gen - a.gen);
        fflush(stdout);
    }
    if (opt.queries > 0) {
        /* the window: from the first and the last item's stamps */
        mam_stamp[0] = '\0';
        if (mam_query(3, 1, NULL, NULL) != 1 || mam_stamp[0] == '\0')
            die("MAM: no first item (is the archive filled?)");
        t_first = mam_parse_stamp(mam_stamp);
        mam_query(0, 1, NULL, NULL);
        t_last = mam_parse_stamp(mam_stamp);
        /* stamps have whole seconds: the window is at least 1 s wide */
        t_first += (t_last - t_first) * 2 / 5;
        t_last = t_first + (t_last - t_first) / 3 > t_first + 1
                     ? t_first + (t_last - t_first) / 3
                     : t_first + 1;
        mam_fmt_stamp(t_first, start, sizeof(start));
        mam_fmt_stamp(t_last, end, sizeof(end));
        note("MAM window %s .. %s", start, end);
        qlat = xcalloc((size_t)opt.queries, sizeof(*qlat));
        for (k = 0; k < 3; k++) {
            minres = 1 << 30;
            mam_iq_err = 0;
            a = srv_quiet_snap(10);
            for (q = 0; q < opt.queries; q++) {
                int64_t t = now_ns();

                nres = mam_query(k, 50, start, end);
                qlat[q] = now_ns() - t;
                if (nres < minres)
                    minres = nres;
            }
            b = snap();
            qsort(qlat, (size_t)opt.queries, sizeof(*qlat), cmp_i64);
            printf("RESULT scenario=mam phase=%s", kinds[k]);
            print_common();
            printf(" queries=%d min_results=%d errors=%d wall_p50_ms=%.3f "
                   "wall_p90_ms=%.3f srv_cpu_s=%.3f srv_ms_per_query=%.3f "
                   "gen_cpu_s=%.3f window=%s/%s\n",
                   opt.queries, minres, mam_iq_err,
                   pct_ms(qlat, (size_t)opt.queries, 0.5),
                   pct_ms(qlat, (size_t)opt.queries, 0.9), b.srv - a.srv,
                   (b.srv - a.srv) * 1000 / opt.queries, b.gen - a.gen, start,
                   end);
            fflush(stdout);
        }
        free(qlat);
    }
    pool_close_all();
    return 0;
}

/* ----------------------------------------------------------------- main */

static void
usage(FILE *fp)
{
    fputs("usage: roostbench COMMAND [options]\n"
          "\n"
          "commands:\n"
          "  register   XEP-0077 in-band registration of -n accounts\n"
          "  roster     mutual subscriptions between --users accounts, each\n"
          "             with --contacts ring neighbours (provisioning)\n"
          "  login      login storm: -n logins (bind, then close), --conc at "
          "once\n"
          "  idle       -n idle sessions; server RSS per session\n"
          "  msg        1:1 messages between --pairs pairs, saturated "
          "(--window)\n"
          "  rate       1:1 messages at --rate per second; latency "
          "percentiles\n"
          "  fanout     presence fan-out to --contacts contacts; latency and\n"
          "             server CPU per 10k notifications\n"
          "  rlogin     -n full logins (roster get, presence) of the one\n"
          "             account <prefix><first>, --conc [1] at once: wall ms\n"
          "             to the roster result, server CPU per login\n"
          "  offline    -n messages from <prefix><first> to <prefix><first+1>\n"
          "             while it is offline, then its login: store and\n"
          "             delivery CPU, presence-to-last-message time\n"
          "  mam        --fill N messages from --partners P [10] accounts\n"
          "             into <prefix><first>'s archive, then --queries Q [20]\n"
          "             of each kind (last page, with=, start/end window)\n"
          "\n"
          "options (defaults in brackets):\n"
          "  --host A [127.0.0.1] --port P [5222] --domain D [localhost]\n"
          "  --tls starttls|none [starttls]\n"
          "  --mech PLAIN|SCRAM-SHA-1|SCRAM-SHA-256 [SCRAM-SHA-1]\n"
          "  --prefix S [u] --first I [0] --password P [bench-pass]\n"
          "  --pid PID      the server process, for CPU and RSS\n"
          "  -n N [200] --conc C [20] --users U [200; login: 50]\n"
          "  --pairs P [50] --window W [10] --duration S [10] --warmup S [1]\n"
          "  --rate R [1000] --to bare|full [bare]\n"
          "  --contacts K [150] --updates N [400] --lat-updates N [100]\n"
          "  --fan-conc C [16] --hold S [5] --settle S [2] --timeout S [300]\n"
          "  --star         roster: user 0 alone subscribes, to users 1..K\n"
          "  --resume       login: offer each account's last TLS session\n"
          "                 (ticket) again, as a client with a cache does\n"
          "  --fill N [0] --queries Q [20] --partners P [10]   (mam)\n"
          "  -v             report every failed session\n"
          "\n"
          "Each command prints one or more lines 'RESULT key=value ...'.\n",
          fp);
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, NULL, 'H'},     {"port", 1, NULL, 'p'},
        {"domain", 1, NULL, 'd'},   {"tls", 1, NULL, 't'},
        {"mech", 1, NULL, 'm'},     {"prefix", 1, NULL, 'P'},
        {"first", 1, NULL, 'f'},    {"password", 1, NULL, 'w'},
        {"pid", 1, NULL, 'i'},      {"conc", 1, NULL, 'c'},
        {"users", 1, NULL, 'u'},    {"pairs", 1, NULL, 'a'},
        {"window", 1, NULL, 'W'},   {"duration", 1, NULL, 'D'},
        {"warmup", 1, NULL, 'A'},   {"rate", 1, NULL, 'r'},
        {"to", 1, NULL, 'T'},       {"contacts", 1, NULL, 'k'},
        {"updates", 1, NULL, 'U'},  {"lat-updates", 1, NULL, 'L'},
        {"fan-conc", 1, NULL, 'F'}, {"hold", 1, NULL, 'h'},
        {"settle", 1, NULL, 's'},   {"timeout", 1, NULL, 'O'},
        {"star", 0, NULL, 'S'},     {"fill", 1, NULL, 'I'},
        {"queries", 1, NULL, 'Q'},  {"partners", 1, NULL, 'R'},
        {"resume", 0, NULL, 'e'},   {"help", 0, NULL, '?'},
        {NULL, 0, NULL, 0}};
    const char *cmd;
    int ch, users_set = 0, conc_set = 0, rc;
    struct rlimit rl;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    cmd = argv[1];
    optind = 2;
    while ((ch = getopt_long(argc, argv, "n:v", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'd': opt.domain = optarg; break;
        case 't':
            if (strcmp(optarg, "starttls") == 0)
                opt.tls = TLS_STARTTLS;
            else if (strcmp(optarg, "none") == 0)
                opt.tls = TLS_NONE;
            else
                die("--tls starttls|none");
            break;
        case 'm': opt.mech = optarg; break;
        case 'P': opt.prefix = optarg; break;
        case 'f': opt.first = atoi(optarg); break;
        case 'w': opt.password = optarg; break;
        case 'i': srv_pid = atol(optarg); break;
        case 'n': opt.n = atoi(optarg); break;
        case 'c':
            opt.conc = atoi(optarg);
            conc_set = 1;
            break;
        case 'S': opt.star = 1; break;
        case 'e': opt.resume = 1; break;
        case 'I': opt.fill = atoi(optarg); break;
        case 'Q': opt.queries = atoi(optarg); break;
        case 'R': opt.partners = atoi(optarg); break;
        case 'u':
            opt.users = atoi(optarg);
            users_set = 1;
            break;
        case 'a': opt.pairs = atoi(optarg); break;
        case 'W': opt.window = atoi(optarg); break;
        case 'D': opt.duration = atof(optarg); break;
        case 'A': opt.warmup = atof(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'T': opt.to_full = strcmp(optarg, "full") == 0; break;
        case 'k': opt.contacts = atoi(optarg); break;
        case 'U': opt.updates = atoi(optarg); break;
        case 'L': opt.lat_updates = atoi(optarg); break;
        case 'F': opt.fan_conc = atoi(optarg); break;
        case 'h': opt.hold = atof(optarg); break;
        case 's': opt.settle = atof(optarg); break;
        case 'O': opt.timeout = atof(optarg); break;
        case 'v': opt.verbose = 1; break;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || opt.n <= 0 || opt.conc <= 0 || opt.users <= 0 ||
        opt.pairs <= 0 || opt.window <= 0 || opt.contacts <= 0 ||
        opt.rate <= 0 || opt.duration <= 0) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "login") == 0 && !users_set)
        opt.users = 50;
    if (strcmp(cmd, "rlogin") == 0 && !conc_set)
        opt.conc = 1;
    if (opt.partners <= 0 || opt.fill < 0 || opt.queries < 0) {
        usage(stderr);
        return 2;
    }
    /* One descriptor per session: raise the soft limit to the hard one
     * (idle -n 15000 needs more than the usual 1024). */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            note("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)opt.n + 64 > rl.rlim_cur &&
        (strcmp(cmd, "idle") == 0 || strcmp(cmd, "register") == 0))
        die("-n %d sessions need %d descriptors; the limit is %llu", opt.n,
            opt.n + 64, (unsigned long long)rl.rlim_cur);

    signal(SIGPIPE, SIG_IGN);
    memset(&srv_addr, 0, sizeof(srv_addr));
    srv_addr.sin_family = AF_INET;
    srv_addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &srv_addr.sin_addr) != 1)
        die("--host must be a numeric IPv4 address");
    if (srv_pid > 0)
        srv_cpu_s(); /* fail early on a wrong pid */
    if ((base = event_base_new()) == NULL)
        die("event_base_new failed");
    if ((ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
        die("SSL_CTX_new failed");
    /* Benchmark servers use self-signed certificates: no verification. */
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    if (opt.resume) {
        SSL_CTX_set_session_cache_mode(
            ssl_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ssl_ctx, resume_new_cb);
    }

    if (strcmp(cmd, "register") == 0)
        rc = cmd_register();
    else if (strcmp(cmd, "roster") == 0)
        rc = cmd_roster();
    else if (strcmp(cmd, "login") == 0)
        rc = cmd_login();
    else if (strcmp(cmd, "idle") == 0)
        rc = cmd_idle();
    else if (strcmp(cmd, "msg") == 0)
        rc = cmd_msg(1);
    else if (strcmp(cmd, "rate") == 0)
        rc = cmd_msg(0);
    else if (strcmp(cmd, "fanout") == 0)
        rc = cmd_fanout();
    else if (strcmp(cmd, "rlogin") == 0)
        rc = cmd_rlogin();
    else if (strcmp(cmd, "offline") == 0)
        rc = cmd_offline();
    else if (strcmp(cmd, "mam") == 0)
        rc = cmd_mam();
    else {
        usage(stderr);
        return 2;
    }
    fflush(stdout);
    SSL_CTX_free(ssl_ctx);
    event_base_free(base);
    return rc;
}
