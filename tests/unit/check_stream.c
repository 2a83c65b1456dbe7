/* tests/unit/check_stream.c: the c2s stream state machine (core/stream.c)
 * driven with plain buffers and fake callbacks: no sockets, no TLS, no
 * SASL library.  Each TCase is one phase or rule of RFC 6120 §4-§7. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

typedef struct {
    char out[65536];
    size_t outlen;
    int writes; /* ops->write calls */
    int starttls_calls, sasl_calls, closed_calls, stanzas;
    char last_mech[64], last_data[256], last_res[256];
    int bind_fail;
    char bound[512];
    char last_stanza[4096];
} fake_t;

static fake_t F;

static void
f_write(void *ud, const char *buf, size_t len)
{
    fake_t *f = ud;

    ck_assert_uint_lt(f->outlen + len, sizeof(f->out));
    f->writes++;
    memcpy(f->out + f->outlen, buf, len);
    f->outlen += len;
    f->out[f->outlen] = '\0';
}

static int
f_host_ok(void *ud, const char *domain)
{
    return strcmp(domain, "example.com") == 0 ||
           strcmp(domain, "other.test") == 0;
}

static const char *const mechs[] = {"SCRAM-SHA-256", "PLAIN", NULL};

static const char *const *
f_mechs(void *ud, const char *host)
{
    return mechs;
}

static void
f_starttls(void *ud)
{
    ((fake_t *)ud)->starttls_calls++;
}

static void
f_sasl(void *ud, const char *mech, const char *data)
{
    fake_t *f = ud;

    f->sasl_calls++;
    snprintf(f->last_mech, sizeof(f->last_mech), "%s", mech ? mech : "");
    snprintf(f->last_data, sizeof(f->last_data), "%s", data ? data : "");
}

static const char *
f_bind(void *ud, const char *res, roost_stanza_err_t *err)
{
    fake_t *f = ud;

    snprintf(f->last_res, sizeof(f->last_res), "%s", res ? res : "(null)");
    if (f->bind_fail) {
        *err = ROOST_SE_CONFLICT;
        return NULL;
    }
    snprintf(f->bound, sizeof(f->bound), "juliet@example.com/%s",
             res ? res : "generated");
    return f->bound;
}

static void
f_stanza(void *ud, roost_stanza_t *st)
{
    fake_t *f = ud;
    char *x = roost_stanza_serialize(st, ROOST_NS_CLIENT, NULL);

    f->stanzas++;
    snprintf(f->last_stanza, sizeof(f->last_stanza), "%s", x);
    roost_free(x);
}

static int preauth_answer; /* what f_preauth_iq returns */
static int preauth_calls;

static int
f_preauth_iq(void *ud, roost_stanza_t *iq)
{
    preauth_calls++;
    return preauth_answer;
}

static void
f_closed(void *ud)
{
    ((fake_t *)ud)->closed_calls++;
}

static const roost_stream_ops_t ops = {
    .write = f_write,
    .host_ok = f_host_ok,
    .sasl_mechs = f_mechs,
    .starttls = f_starttls,
    .sasl_step = f_sasl,
    .bind = f_bind,
    .stanza = f_stanza,
    .features = NULL,
    .closed = f_closed,
    .preauth_iq = f_preauth_iq,
};

#define HDR                                                                    \
    "<?xml version='1.0'?><stream:stream to='example.com' "                    \
    "xmlns='jabber:client' "                                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

static roost_stream_t *
mk(int tls_active, int require)
{
    roost_stream_conf_t c = {
        .limits = {.max_stanza = 10000, .max_depth = 16, .max_attrs = 16},
        .tls_available = 1,
        .tls_active = tls_active,
        .require_encryption = require,
        .max_auth_attempts = 3};

    memset(&F, 0, sizeof(F));
    return roost_stream_new(&c, &ops, &F);
}

/* Feeds s completely, re-feeding after pauses that are not waits. */
static int
feed(roost_stream_t *st, const char *s)
{
    size_t len = strlen(s), off = 0, used;
    int rc;

    for (;;) {
        rc = roost_stream_feed(st, s + off, len - off, &used);
        if (rc != ROOST_EAGAIN)
            return rc;
        off += used;
        if (roost_stream_state(st) == ROOST_SS_TLS_WAIT ||
            roost_stream_state(st) == ROOST_SS_SASL_WAIT)
            return rc;
        if (off >= len)
            return 0;
    }
}

static void
clear_out(void)
{
    F.outlen = 0;
    F.out[0] = '\0';
}

/* Gets a stream to the bound state (TLS active from the start). */
static roost_stream_t *
mk_bound(void)
{
    roost_stream_t *st = mk(1, 1);

    feed(st, HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>AGp1bGlldABwdw==</auth>");
    roost_stream_sasl_result(st, 2, "", NULL, "juliet");
    feed(st, HDR "<iq type='set' id='b1'><bind "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony"
                 "</resource></bind></iq>");
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_BOUND);
    clear_out();
    return st;
}

START_TEST(header_features_before_tls)
{
    roost_stream_t *st = mk(0, 1);

    ck_assert_int_eq(feed(st, HDR), 0);
    ck_assert_ptr_nonnull(strstr(F.out, "<stream:stream"));
    ck_assert_ptr_nonnull(strstr(F.out, "from='example.com'"));
    ck_assert_ptr_nonnull(strstr(F.out, "version='1.0'"));
    ck_assert_ptr_nonnull(strstr(F.out, "<stream:features><starttls "
                                        "xmlns=\"urn:ietf:params:xml:ns:"
                                        "xmpp-tls\"><required/></starttls>"));
    /* RFC 6120 §5.3.1 + require_encryption: no mechanisms before TLS. */
    ck_assert_ptr_null(strstr(F.out, "mechanisms"));
    ck_assert_str_eq(roost_stream_host(st), "example.com");
    roost_stream_free(st);
}
END_TEST

START_TEST(header_optional_tls_offers_sasl)
{
    roost_stream_t *st = mk(0, 0);

    feed(st, HDR);
    ck_assert_ptr_nonnull(strstr(F.out, "<starttls"));
    ck_assert_ptr_null(strstr(F.out, "<required/>"));
    ck_assert_ptr_nonnull(strstr(F.out, "<mechanism>SCRAM-SHA-256"
                                        "</mechanism><mechanism>PLAIN"));
    /* Header and features leave in one write: one TLS record. */
    ck_assert_int_eq(F.writes, 1);
    roost_stream_free(st);
}
END_TEST

static const struct {
    const char *input;
    const char *cond;
} bad_headers[] = {
    {"<stream:stream to='example.com' xmlns='jabber:client' "
     "xmlns:stream='http://wrong/' version='1.0'>",
     "invalid-namespace"},
    {"<stream:stream to='example.com' xmlns='jabber:server' "
     "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
     "invalid-namespace"},
    {"<stream:stream to='nowhere.test' xmlns='jabber:client' "
     "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
     "host-unknown"},
    {"<stream:stream xmlns='jabber:client' "
     "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
     "host-unknown"},
    {"<stream:stream to='example.com' xmlns='jabber:client' "
     "xmlns:stream='http://etherx.jabber.org/streams'>",
     "unsupported-version"},
    {"<stream:stream to='example.com' xmlns='jabber:client' "
     "xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>",
     "unsupported-version"},
    {"<stream:stream to='example.com' xmlns='jabber:client' "
     "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
     "<!-- hi -->",
     "restricted-xml"},
    {"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><stream:stream/>",
     "restricted-xml"},
    {"not xml at all", "not-well-formed"},
};

START_TEST(header_errors)
{
    roost_stream_t *st = mk(0, 1);
    char want[256];

    ck_assert_int_lt(feed(st, bad_headers[_i].input), 0);
    snprintf(want, sizeof(want),
             "<stream:error><%s xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\""
             "/>",
             bad_headers[_i].cond);
    ck_assert_msg(strstr(F.out, want) != NULL, "row %d: got %s", _i, F.out);
    ck_assert(strlen(F.out) > 31);
    ck_assert_str_eq(F.out + strlen(F.out) - 31,
                     "</stream:error></stream:stream>");
    /* RFC 6120 §4.9.1.1: our header precedes the error. */
    ck_assert_ptr_nonnull(strstr(F.out, "<stream:stream"));
    ck_assert_int_eq(F.closed_calls, 1);
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_CLOSED);
    ck_assert_int_eq(feed(st, "<more/>"), -ROOST_EINVAL);
    roost_stream_free(st);
}
END_TEST

START_TEST(require_encryption_setter)
{
    /* Per-vhost policy set before the features go out. */
    roost_stream_t *st = mk(0, 1);

    roost_stream_set_require_encryption(st, 0);
    feed(st, HDR);
    ck_assert_ptr_null(strstr(F.out, "<required/>"));
    ck_assert_ptr_nonnull(strstr(F.out, "<mechanisms"));
    roost_stream_free(st);
}
END_TEST

START_TEST(starttls_flow)
{
    roost_stream_t *st = mk(0, 1);
    const char *in = HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                         "INJECTED";
    size_t used;

    ck_assert_int_eq(roost_stream_feed(st, in, strlen(in), &used),
                     ROOST_EAGAIN);
    /* Re-feed after the header pause until the wait. */
    while (roost_stream_state(st) != ROOST_SS_TLS_WAIT) {
        size_t more;
        ck_assert_int_eq(
            roost_stream_feed(st, in + used, strlen(in) - used, &more),
            ROOST_EAGAIN);
        used += more;
    }
    ck_assert_uint_eq(used, strlen(in) - strlen("INJECTED"));
    ck_assert_ptr_nonnull(strstr(F.out, "<proceed xmlns='urn:ietf:params:"
                                        "xml:ns:xmpp-tls'/>"));
    ck_assert_int_eq(F.starttls_calls, 1);
    ck_assert_int_eq(roost_stream_feed(st, "x", 1, &used), ROOST_EAGAIN);
    ck_assert_uint_eq(used, 0);
    roost_stream_tls_done(st, 1);
    ck_assert(roost_stream_tls_active(st));
    clear_out();
    ck_assert_int_eq(feed(st, HDR), 0);
    ck_assert_ptr_null(strstr(F.out, "starttls"));
    ck_assert_ptr_nonnull(strstr(F.out, "<mechanism>PLAIN</mechanism>"));
    roost_stream_free(st);
}
END_TEST

START_TEST(starttls_twice_fails)
{
    roost_stream_t *st = mk(1, 1);

    feed(st, HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    ck_assert_ptr_nonnull(strstr(F.out, "<failure xmlns='urn:ietf:params:"
                                        "xml:ns:xmpp-tls'/>"));
    ck_assert_int_eq(F.starttls_calls, 0);
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_CLOSED);
    roost_stream_free(st);
}
END_TEST

START_TEST(auth_requires_tls)
{
    roost_stream_t *st = mk(0, 1);

    feed(st, HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>AGEAYg==</auth>");
    ck_assert_ptr_nonnull(strstr(F.out, "<failure xmlns='urn:ietf:params:"
                                        "xml:ns:xmpp-sasl'><encryption-"
                                        "required/></failure>"));
    ck_assert_int_eq(F.sasl_calls, 0);
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_PREAUTH);
    roost_stream_free(st);
}
END_TEST

START_TEST(sasl_challenge_success_restart)
{
    roost_stream_t *st = mk(1, 1);

    ck_assert_int_eq(feed(st, HDR "<auth xmlns='urn:ietf:params:xml:ns:"
                                  "xmpp-sasl' mechanism='SCRAM-SHA-256'>"
                                  "biwsbj1qLHI9YWJj</auth>"),
                     ROOST_EAGAIN);
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_SASL_WAIT);
    ck_assert_str_eq(F.last_mech, "SCRAM-SHA-256");
    ck_assert_str_eq(F.last_data, "biwsbj1qLHI9YWJj");
    roost_stream_sasl_result(st, 1, "cj1hYmM=", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(F.out, "<challenge xmlns='urn:ietf:params:"
                                        "xml:ns:xmpp-sasl'>cj1hYmM="
                                        "</challenge>"));
    ck_assert_int_eq(feed(st, "<response xmlns='urn:ietf:params:xml:ns:"
                              "xmpp-sasl'>Yz1i</response>"),
                     ROOST_EAGAIN);
    ck_assert_str_eq(F.last_mech, "");
    ck_assert_str_eq(F.last_data, "Yz1i");
    roost_stream_sasl_result(st, 2, "dj1k", NULL, "juliet");
    /* COMPAT: whitespace between </auth> and the new header is skipped. */
    ck_assert_int_eq(feed(st, "\n \r\n"), 0);
    ck_assert_ptr_nonnull(strstr(F.out, "<success xmlns='urn:ietf:params:"
                                        "xml:ns:xmpp-sasl'>dj1k</success>"));
    ck_assert_str_eq(roost_stream_user(st), "juliet");
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_HEADER);
    clear_out();
    ck_assert_int_eq(feed(st, HDR), 0);
    ck_assert_ptr_nonnull(strstr(F.out, "<bind xmlns=\"urn:ietf:params:xml:"
                                        "ns:xmpp-bind\"/>"));
    ck_assert_ptr_nonnull(strstr(F.out, "<session xmlns=\"urn:ietf:params:"
                                        "xml:ns:xmpp-session\"><optional/>"));
    ck_assert_ptr_null(strstr(F.out, "mechanisms"));
    roost_stream_free(st);
}
END_TEST

START_TEST(sasl_pipelined_after_header)
{
    /* Header and <auth/> in one chunk: the stream pauses at the wait and
     * says how much it consumed; the rest stays with the caller. */
    roost_stream_t *st = mk(1, 1);
    const char *in = HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                         "mechanism='PLAIN'>AGp1bGlldABwdw==</auth>"
                         "<stream:stream";
    size_t len = strlen(in), off = 0, used;

    while (roost_stream_state(st) != ROOST_SS_SASL_WAIT) {
        ck_assert_int_eq(roost_stream_feed(st, in + off, len - off, &used),
                         ROOST_EAGAIN);
        off += used;
    }
    ck_assert_str_eq(in + off, "<stream:stream");
    roost_stream_free(st);
}
END_TEST

START_TEST(sasl_failures_limit)
{
    roost_stream_t *st = mk(1, 1);

    feed(st, HDR);
    for (int i = 0; i < 3; i++) {
        feed(st, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>AGEAYg==</auth>");
        roost_stream_sasl_result(st, 3, NULL, "not-authorized", NULL);
        ck_assert_ptr_nonnull(strstr(F.out, "<not-authorized/></failure>"));
    }
    /* RFC 6120 §6.4.5: too many retries close with policy-violation. */
    ck_assert_ptr_nonnull(strstr(F.out, "<policy-violation xmlns="));
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_CLOSED);
    roost_stream_free(st);
}
END_TEST

START_TEST(sasl_abort_and_stray_response)
{
    roost_stream_t *st = mk(1, 1);

    feed(st, HDR "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    ck_assert_ptr_nonnull(strstr(F.out, "<malformed-request/></failure>"));
    feed(st, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    ck_assert_ptr_nonnull(strstr(F.out, "<invalid-mechanism/></failure>"));
    feed(st, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
             "mechanism='SCRAM-SHA-256'>eA==</auth>");
    roost_stream_sasl_result(st, 1, "eQ==", NULL, NULL);
    feed(st, "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    ck_assert_ptr_nonnull(strstr(F.out, "<aborted/></failure>"));
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_PREAUTH);
    roost_stream_free(st);
}
END_TEST

START_TEST(stanza_before_auth)
{
    roost_stream_t *st = mk(1, 1);

    feed(st, HDR "<message to='romeo@example.net'><body>x</body></message>");
    ck_assert_ptr_nonnull(strstr(F.out, "<not-authorized xmlns="));
    ck_assert_int_eq(F.stanzas, 0);
    roost_stream_free(st);
}
END_TEST

/* XEP-0077: an iq before authentication goes to ops->preauth_iq, only
 * where SASL is offered; one it does not take closes the stream. */
START_TEST(preauth_iq_hook)
{
    roost_stream_t *st = mk(0, 1);

    preauth_calls = 0;
    preauth_answer = 1;
    feed(st, HDR "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/>"
                 "</iq>");
    /* Before TLS, with TLS required: not even asked. */
    ck_assert_int_eq(preauth_calls, 0);
    ck_assert_ptr_nonnull(strstr(F.out, "<not-authorized xmlns="));
    roost_stream_free(st);

    st = mk(1, 1);
    preauth_calls = 0;
    feed(st, HDR "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/>"
                 "</iq>");
    ck_assert_int_eq(preauth_calls, 1);
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_PREAUTH);
    preauth_answer = 0;
    feed(st, "<iq type='get' id='r2'><query xmlns='urn:other'/></iq>");
    ck_assert_int_eq(preauth_calls, 2);
    ck_assert_ptr_nonnull(strstr(F.out, "<not-authorized xmlns="));
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_CLOSED);
    roost_stream_free(st);
}
END_TEST

START_TEST(bind_and_stanzas)
{
    roost_stream_t *st = mk(1, 1);

    feed(st, HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>AGp1bGlldABwdw==</auth>");
    roost_stream_sasl_result(st, 2, "", NULL, "juliet");
    ck_assert_ptr_nonnull(strstr(F.out, "<success xmlns='urn:ietf:params:"
                                        "xml:ns:xmpp-sasl'/>"));
    /* A stanza before bind is refused (RFC 6120 §7.1). */
    feed(st, HDR);
    clear_out();
    feed(st, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
             "xmpp-bind'><resource>balcony</resource></bind></iq>");
    ck_assert_str_eq(F.last_res, "balcony");
    ck_assert_ptr_nonnull(strstr(F.out, "<jid>juliet@example.com/balcony"
                                        "</jid>"));
    ck_assert_ptr_nonnull(strstr(F.out, "id=\"b1\""));
    ck_assert_ptr_nonnull(strstr(F.out, "type=\"result\""));
    clear_out();
    feed(st, "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:"
             "ns:xmpp-session'/></iq>");
    ck_assert_ptr_nonnull(strstr(F.out, "type=\"result\""));
    ck_assert_int_eq(F.stanzas, 0);
    feed(st, "<message to='romeo@example.net'><body>hi</body>"
             "<x xmlns='urn:example'>keep</x></message>");
    ck_assert_int_eq(F.stanzas, 1);
    ck_assert_ptr_nonnull(strstr(F.last_stanza, "<x xmlns=\"urn:example\">"
                                                "keep</x>"));
    clear_out();
    feed(st, "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:"
             "xmpp-bind'/></iq>");
    ck_assert_ptr_nonnull(strstr(F.out, "<not-allowed"));
    roost_stream_free(st);
}
END_TEST

START_TEST(bind_generated_and_error)
{
    roost_stream_t *st = mk(1, 1);

    feed(st, HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>AA==</auth>");
    roost_stream_sasl_result(st, 2, "", NULL, "juliet");
    feed(st, HDR "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:"
                 "ns:xmpp-bind'/></iq>");
    ck_assert_str_eq(F.last_res, "(null)");
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_BOUND);
    roost_stream_free(st);

    st = mk(1, 1);
    feed(st, HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>AA==</auth>");
    roost_stream_sasl_result(st, 2, "", NULL, "juliet");
    F.bind_fail = 1;
    feed(st, HDR);
    clear_out();
    feed(st, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:"
             "ns:xmpp-bind'><resource>r</resource></bind></iq>");
    ck_assert_ptr_nonnull(strstr(F.out, "type=\"error\""));
    ck_assert_ptr_nonnull(strstr(F.out, "<conflict xmlns="));
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_AUTHED);
    feed(st, "<message/>");
    ck_assert_ptr_nonnull(strstr(F.out, "<not-authorized xmlns="));
    roost_stream_free(st);
}
END_TEST

START_TEST(unknown_top_level)
{
    roost_stream_t *st = mk_bound();

    feed(st, "<foo xmlns='urn:example:nonza'/>");
    ck_assert_ptr_nonnull(strstr(F.out, "<unsupported-stanza-type xmlns="));
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_CLOSED);
    roost_stream_free(st);
}
END_TEST

START_TEST(peer_closes)
{
    roost_stream_t *st = mk_bound();

    feed(st, "</stream:stream>");
    ck_assert_str_eq(F.out, "</stream:stream>");
    ck_assert_int_eq(F.closed_calls, 1);
    roost_stream_free(st);
}
END_TEST

START_TEST(limits_give_policy_violation)
{
    roost_stream_t *st = mk_bound();
    char big[12000];

    memset(big, 'a', sizeof(big));
    memcpy(big, "<message><body>", 15);
    big[sizeof(big) - 1] = '\0';
    feed(st, big);
    ck_assert_ptr_nonnull(strstr(F.out, "<policy-violation xmlns="));
    ck_assert_int_eq(F.stanzas, 0);
    roost_stream_free(st);
}
END_TEST

/* Issue 6: a smaller stanza limit until SASL succeeds, lifted after. */
START_TEST(preauth_stanza_limit_lifted)
{
    roost_stream_conf_t c = {
        .limits = {.max_stanza = 2000, .max_depth = 16, .max_attrs = 16},
        .tls_available = 1,
        .tls_active = 1,
        .require_encryption = 1,
        .max_auth_attempts = 3,
        .max_stanza_authed = 10000};
    char big[3000 + 128];
    roost_stream_t *st;

    snprintf(big, sizeof(big),
             "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
             "mechanism='PLAIN'>%03000d</auth>",
             0);
    memset(&F, 0, sizeof(F));
    st = roost_stream_new(&c, &ops, &F);
    feed(st, HDR);
    feed(st, big);
    ck_assert_ptr_nonnull(strstr(F.out, "<policy-violation xmlns="));
    ck_assert_int_eq(F.sasl_calls, 0);
    roost_stream_free(st);

    memset(&F, 0, sizeof(F));
    st = roost_stream_new(&c, &ops, &F);
    feed(st, HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>AGp1bGlldABwdw==</auth>");
    roost_stream_sasl_result(st, 2, "", NULL, "juliet");
    feed(st, HDR "<iq type='set' id='b1'><bind "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    ck_assert_int_eq(roost_stream_state(st), ROOST_SS_BOUND);
    snprintf(big, sizeof(big), "<message><body>%03000d</body></message>", 0);
    feed(st, big);
    ck_assert_int_eq(F.stanzas, 1);
    ck_assert_ptr_null(strstr(F.out, "<policy-violation"));
    roost_stream_free(st);
}
END_TEST

START_TEST(error_text_and_idempotent)
{
    roost_stream_t *st = mk_bound();

    roost_stream_error(st, "conflict", "Replaced by new connection");
    ck_assert_ptr_nonnull(strstr(F.out, "<stream:error><conflict xmlns=\"urn:"
                                        "ietf:params:xml:ns:xmpp-streams\"/>"
                                        "<text xmlns=\"urn:ietf:params:xml:"
                                        "ns:xmpp-streams\">Replaced by new "
                                        "connection</text></stream:error>"));
    clear_out();
    roost_stream_error(st, "conflict", NULL);
    roost_stream_close(st);
    ck_assert_uint_eq(F.outlen, 0);
    ck_assert_int_eq(F.closed_calls, 1);
    roost_stream_free(st);
}
END_TEST

static Suite *
stream_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc;

    tc = tcase_create("header");
    tcase_add_test(tc, header_features_before_tls);
    tcase_add_test(tc, header_optional_tls_offers_sasl);
    tcase_add_test(tc, require_encryption_setter);
    tcase_add_loop_test(tc, header_errors, 0,
                        sizeof(bad_headers) / sizeof(bad_headers[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("starttls");
    tcase_add_test(tc, starttls_flow);
    tcase_add_test(tc, starttls_twice_fails);
    suite_add_tcase(s, tc);
    tc = tcase_create("sasl");
    tcase_add_test(tc, auth_requires_tls);
    tcase_add_test(tc, sasl_challenge_success_restart);
    tcase_add_test(tc, sasl_pipelined_after_header);
    tcase_add_test(tc, sasl_failures_limit);
    tcase_add_test(tc, sasl_abort_and_stray_response);
    tcase_add_test(tc, stanza_before_auth);
    tcase_add_test(tc, preauth_iq_hook);
    suite_add_tcase(s, tc);
    tc = tcase_create("bind");
    tcase_add_test(tc, bind_and_stanzas);
    tcase_add_test(tc, bind_generated_and_error);
    suite_add_tcase(s, tc);
    tc = tcase_create("bound");
    tcase_add_test(tc, unknown_top_level);
    tcase_add_test(tc, peer_closes);
    tcase_add_test(tc, limits_give_policy_violation);
    tcase_add_test(tc, error_text_and_idempotent);
    tcase_add_test(tc, preauth_stanza_limit_lifted);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(stream_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
