/* tests/fuzz/fuzz_stream.c: libFuzzer target for the c2s stream state
 * machine (core/stream.c) with core/xml.c under it and the real SASL
 * exchange (core/sasl.c) against the account alice/pencil on example.com
 * in the memory storage backend.
 *
 * Input: one configuration byte, then the raw bytes a client sends.
 * Configuration bits: 0 STARTTLS available, 1 TLS active from the start
 * (direct TLS), 2 TLS required before SASL, 3 resource binding fails, 4 a
 * pre-auth iq is taken (XEP-0077 style), 5 the TLS handshake after
 * <proceed/> fails, 6-7 max_auth_attempts - 1.  The bytes are fed in
 * chunks whose sizes come from a PRNG seeded by the input, and whenever
 * the stream waits for TLS or SASL the harness answers as core/conn.c
 * would (SASL steps run synchronously here), so the whole pre-auth
 * machine is reachable: header, features, STARTTLS, SASL PLAIN/SCRAM,
 * restart, bind, bound stanzas.  Every bound stanza is echoed back as an
 * error reply through roost_stream_send().
 *
 * Oracles (abort on violation): everything the stream writes must be
 * well-formed XMPP (fed to a second roost_xml parser, reset where the
 * server restarts the stream), nothing is written after ops->closed,
 * ops->closed is called at most once, the return codes and consumed
 * counts of roost_stream_feed() obey the contract in core/stream.h, and
 * callbacks only happen in the states that allow them.  Not a test of the
 * XML parser alone (fuzz_xml.c) or of SASL alone (fuzz_sasl.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <roost/common.h>
#include <roost/jid.h>
#include "auth.h"
#include "log.h"
#include "sasl.h"
#include "storage.h"
#include "stream.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HOST "example.com"

typedef struct fuzz_state {
    uint64_t rng;
    roost_stream_t *st;
    roost_xml_t *check; /* parses what the stream writes */
    roost_sasl_t *sasl;
    uint8_t cfg;
    int closed_calls, checked_open, checked_close;
    int pending_tls; /* starttls called, not answered */
    int pending_sasl;
    char *sasl_mech, *sasl_data;
    char bound[3200];
} fuzz_state_t;

static void
fuzz_check(int ok)
{
    if (!ok)
        abort();
}

static uint64_t
fuzz_next(fuzz_state_t *f)
{
    /* xorshift64* */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 0x2545F4914F6CDD1DULL;
}

/* --- the output checker: a second parser over what the server writes */

static int
chk_open(void *ud, const char *ns, const char *name, const char *const *attrs,
         const char *default_ns)
{
    fuzz_state_t *f = ud;

    fuzz_check(ns != NULL && strcmp(ns, ROOST_NS_STREAM) == 0 &&
               strcmp(name, "stream") == 0);
    fuzz_check(default_ns != NULL && strcmp(default_ns, ROOST_NS_CLIENT) == 0);
    f->checked_open++;
    return 0;
}

static int
chk_stanza(void *ud, roost_stanza_t *st)
{
    roost_stanza_unref(st);
    return 0;
}

static void
chk_close(void *ud)
{
    ((fuzz_state_t *)ud)->checked_close++;
}

static void
chk_error(void *ud, const char *cond, const char *text)
{
    /* The server wrote something that is not well-formed XMPP. */
    abort();
}

static const roost_xml_cb_t chk_cb = {chk_open, chk_stanza, chk_close,
                                      chk_error};

/* --- stream ops, as core/conn.c provides them */

static void
f_write(void *ud, const char *buf, size_t len)
{
    fuzz_state_t *f = ud;
    size_t used;

    fuzz_check(f->closed_calls == 0);
    if (len == 0)
        return;
    /* Output after </stream:stream> would also be a bug. */
    fuzz_check(f->checked_close == 0);
    fuzz_check(roost_xml_feed(f->check, buf, len, &used) == 0 && used == len);
}

static int
f_host_ok(void *ud, const char *domain)
{
    return strcmp(domain, HOST) == 0 || strcmp(domain, "other.test") == 0;
}

static int
f_cb_data(void *arg, const char *type, unsigned char *out, size_t *len)
{
    static const unsigned char cb[32] = "fuzz_stream channel binding 32b";

    if (*len < sizeof(cb))
        return -1;
    memcpy(out, cb, sizeof(cb));
    *len = sizeof(cb);
    return 0;
}

static void
f_new_sasl(fuzz_state_t *f)
{
    static const char *const types[] = {"tls-exporter", NULL};
    int tls = roost_stream_tls_active(f->st);

    roost_sasl_free(f->sasl);
    f->sasl = roost_sasl_new(HOST, tls, tls ? types : NULL, f_cb_data, NULL,
                             (f->cfg & 0x10) != 0);
    fuzz_check(f->sasl != NULL);
}

static const char *const *
f_mechs(void *ud, const char *host)
{
    fuzz_state_t *f = ud;

    fuzz_check(host != NULL && f_host_ok(ud, host));
    f_new_sasl(f);
    return roost_sasl_mechs(f->sasl);
}

static void
f_sasl_features(void *ud, roost_stanza_t *el)
{
    roost_stanza_t *r = roost_stanza_add_child(
        el, "http://jabber.org/features/iq-register", "register");

    fuzz_check(r != NULL);
}

static void
f_starttls(void *ud)
{
    fuzz_state_t *f = ud;

    fuzz_check(roost_stream_state(f->st) == ROOST_SS_TLS_WAIT);
    fuzz_check(!f->pending_tls && !f->pending_sasl);
    f->pending_tls = 1;
}

static void
f_sasl_step(void *ud, const char *mech, const char *data)
{
    fuzz_state_t *f = ud;

    fuzz_check(roost_stream_state(f->st) == ROOST_SS_SASL_WAIT);
    fuzz_check(!f->pending_tls && !f->pending_sasl);
    fuzz_check(data != NULL);
    fuzz_check(mech == NULL || *mech != '\0');
    f->pending_sasl = 1;
    roost_free(f->sasl_mech);
    roost_free(f->sasl_data);
    f->sasl_mech = mech != NULL ? roost_xstrdup(mech) : NULL;
    f->sasl_data = roost_xstrdup(data);
    if (mech != NULL)
        f_new_sasl(f);
}

static const char *
f_bind(void *ud, const char *resource, roost_stanza_err_t *err)
{
    fuzz_state_t *f = ud;
    roost_jid_t *j;

    fuzz_check(roost_stream_state(f->st) == ROOST_SS_AUTHED);
    fuzz_check(resource == NULL || *resource != '\0');
    if (f->cfg & 0x08) {
        *err = ROOST_SE_CONFLICT;
        return NULL;
    }
    j = roost_jid_from_parts(roost_stream_user(f->st), HOST,
                             resource != NULL ? resource : "generated");
    if (j == NULL) {
        *err = ROOST_SE_BAD_REQUEST;
        return NULL;
    }
    fuzz_check(strlen(roost_jid_full(j)) < sizeof(f->bound));
    strcpy(f->bound, roost_jid_full(j));
    roost_jid_free(j);
    return f->bound;
}

static void
f_stanza(void *ud, roost_stanza_t *el)
{
    fuzz_state_t *f = ud;
    roost_stanza_kind_t kind = roost_stanza_kind(el);
    const char *type = roost_stanza_attr(el, "type");
    roost_stanza_t *e;

    fuzz_check(roost_stream_state(f->st) == ROOST_SS_BOUND);
    fuzz_check(kind != ROOST_STANZA_OTHER);
    /* Echo it back: whatever the client sent must serialise into a
     * well-formed stream (the checker sees it). */
    if (type != NULL && strcmp(type, "error") == 0)
        return;
    e = roost_stanza_error(el, ROOST_SE_SERVICE_UNAVAILABLE, type);
    roost_stream_send(f->st, e);
    roost_stanza_unref(e);
    if ((fuzz_next(f) & 63) == 0)
        roost_stream_error(f->st, "policy-violation", "fuzz said so");
}

static int
f_preauth_iq(void *ud, roost_stanza_t *iq)
{
    fuzz_state_t *f = ud;
    roost_stanza_t *e;

    fuzz_check(roost_stream_state(f->st) == ROOST_SS_PREAUTH);
    fuzz_check(roost_stanza_kind(iq) == ROOST_STANZA_IQ);
    if (!(f->cfg & 0x10))
        return 0;
    e = roost_stanza_error(iq, ROOST_SE_NOT_ALLOWED, NULL);
    roost_stream_send(f->st, e);
    roost_stanza_unref(e);
    return 1;
}

static void
f_features(void *ud, roost_stanza_t *el)
{
    roost_stanza_add_child(el, "urn:xmpp:sm:3", "sm");
}

static void
f_error_sent(void *ud, const char *cond, const char *text)
{
    fuzz_check(cond != NULL && *cond != '\0');
}

static void
f_closed(void *ud)
{
    fuzz_state_t *f = ud;

    fuzz_check(roost_stream_state(f->st) == ROOST_SS_CLOSED);
    f->closed_calls++;
}

static const roost_stream_ops_t ops = {
    .write = f_write,
    .host_ok = f_host_ok,
    .sasl_mechs = f_mechs,
    .starttls = f_starttls,
    .sasl_step = f_sasl_step,
    .bind = f_bind,
    .stanza = f_stanza,
    .sasl_features = f_sasl_features,
    .preauth_iq = f_preauth_iq,
    .features = f_features,
    .error_sent = f_error_sent,
    .closed = f_closed,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *err = NULL;

    roost_log_level = ROOST_LOG_ERROR;
    if (roost_storage_init("memory", NULL, &err) != 0 ||
        roost_sasl_init(&err) != 0 ||
        roost_auth_create(HOST, "alice", "pencil", 0) != 0)
        abort();
    return 0;
}

/* Answers a pending TLS handshake or SASL step, as core/conn.c does
 * after the event loop or the worker is done. */
static void
fuzz_answer(fuzz_state_t *f)
{
    if (f->pending_tls) {
        int ok = (f->cfg & 0x20) == 0;

        f->pending_tls = 0;
        roost_stream_tls_done(f->st, ok);
        if (ok) {
            /* The server's next bytes start a new document. */
            fuzz_check(roost_stream_state(f->st) == ROOST_SS_HEADER);
            roost_xml_reset(f->check);
        } else {
            fuzz_check(roost_stream_state(f->st) == ROOST_SS_CLOSED);
        }
    } else if (f->pending_sasl) {
        const char *out = NULL, *cond = NULL;
        roost_sasl_status_t s;

        f->pending_sasl = 0;
        s = roost_sasl_step(f->sasl, f->sasl_mech, f->sasl_data, &out, &cond);
        fuzz_check(out != NULL);
        roost_stream_sasl_result(
            f->st, (int)s, out, cond,
            s == ROOST_SASL_SUCCESS ? roost_sasl_user(f->sasl) : NULL);
        if (s == ROOST_SASL_SUCCESS) {
            fuzz_check(roost_stream_state(f->st) == ROOST_SS_HEADER);
            fuzz_check(roost_stream_user(f->st) != NULL);
            roost_xml_reset(f->check);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const roost_xml_limits_t chk_lim = {1 << 24, 4096, 4096};
    fuzz_state_t f;
    roost_stream_conf_t conf;
    size_t off = 0;

    if (size < 1)
        return 0;
    memset(&f, 0, sizeof(f));
    f.cfg = data[0];
    f.rng = 14695981039346656037ULL;
    for (size_t i = 0; i < size; i++)
        f.rng = (f.rng ^ data[i]) * 1099511628211ULL;
    if (f.rng == 0)
        f.rng = 1;
    data++;
    size--;
    memset(&conf, 0, sizeof(conf));
    conf.limits.max_stanza = 8192;
    conf.limits.max_depth = 16;
    conf.limits.max_attrs = 16;
    conf.tls_available = (f.cfg & 0x01) != 0;
    conf.tls_active = (f.cfg & 0x02) != 0;
    conf.require_encryption = (f.cfg & 0x04) != 0;
    conf.max_auth_attempts = 1 + (f.cfg >> 6);
    f.check = roost_xml_new(&chk_lim, &chk_cb, &f);
    f.st = roost_stream_new(&conf, &ops, &f);
    fuzz_check(roost_stream_state(f.st) == ROOST_SS_HEADER);
    while (off < size) {
        size_t n = 1 + (size_t)(fuzz_next(&f) % 128), used = 99999;
        roost_stream_state_t before = roost_stream_state(f.st);
        int rc;

        if (n > size - off)
            n = size - off;
        rc = roost_stream_feed(f.st, (const char *)data + off, n, &used);
        if (rc < 0) {
            fuzz_check(rc == -ROOST_EINVAL);
            fuzz_check(roost_stream_state(f.st) == ROOST_SS_CLOSED);
            fuzz_check(f.closed_calls == 1);
            break;
        }
        fuzz_check(used <= n);
        if (rc == 0) {
            fuzz_check(used == n);
        } else {
            fuzz_check(rc == ROOST_EAGAIN);
            /* A pause that consumed nothing must be a wait, or the
             * caller would spin. */
            fuzz_check(used > 0 || f.pending_tls || f.pending_sasl ||
                       before == ROOST_SS_TLS_WAIT ||
                       before == ROOST_SS_SASL_WAIT);
        }
        off += used;
        if (roost_stream_state(f.st) == ROOST_SS_CLOSED)
            break;
        fuzz_answer(&f);
        if (roost_stream_state(f.st) == ROOST_SS_CLOSED)
            break;
        fuzz_check(f.closed_calls == 0);
    }
    fuzz_check(f.closed_calls <= 1);
    fuzz_check(roost_stream_memory(f.st) > 0);
    if (roost_stream_state(f.st) != ROOST_SS_CLOSED) {
        /* The client went away: an orderly close must still be
         * well-formed and end the checker's document. */
        roost_stream_close(f.st);
        fuzz_check(f.closed_calls == 1);
        fuzz_check(f.checked_close == 1);
    }
    roost_stream_free(f.st);
    roost_xml_free(f.check);
    roost_sasl_free(f.sasl);
    roost_free(f.sasl_mech);
    roost_free(f.sasl_data);
    return 0;
}
