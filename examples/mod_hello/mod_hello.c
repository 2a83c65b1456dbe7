/* examples/mod_hello/mod_hello.c: the template for third-party Roost
 * modules, built out of tree against `pkg-config roost-module`.
 *
 * Answers <iq type='get'><hello xmlns='urn:example:hello'/></iq> sent to
 * the host with <hello xmlns='urn:example:hello'>Hello, JID</hello>, where
 * JID is the requester's bare JID and "Hello" is the per-vhost option
 * "greeting".  It shows the parts every module has: a conf struct with a
 * typed option table, load() registering an IQ handler and a disco
 * feature, per-vhost state behind roost_mod_data(), and logging.
 *
 * Not for: anything real.  Copy it, rename "hello" everywhere, and read
 * doc/modules.md in the Roost source tree. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <roost/module.h>

#define HELLO_NS "urn:example:hello"

/* Filled by the core from the config group hello { ... } of each vhost
 * before load(); strings are owned by the core. */
struct hello_conf {
    const char *greeting;
};

static const roost_opt_t hello_opts[] = {{"greeting", ROOST_OPT_STR,
                                          offsetof(struct hello_conf, greeting),
                                          "Hello", 0, 0},
                                         {NULL, 0, 0, NULL, 0, 0}};

/* Per-vhost state: how many greetings this vhost has sent. */
struct hello_state {
    unsigned long greeted;
};

/* IQ get handler.  ev->stanza is borrowed; roost_reply() copies the
 * payload, so we unref ours. */
static roost_verdict_t
hello_get(const roost_ev_t *ev, void *arg)
{
    const struct hello_conf *conf = roost_mod_conf(ev->mod);
    struct hello_state *state = *roost_mod_data(ev->mod);
    const char *who = roost_jid_bare(ev->from);
    roost_stanza_t *payload = roost_stanza_new(HELLO_NS, "hello");
    char text[2048];
    int n;
    roost_verdict_t v;

    n = snprintf(text, sizeof(text), "%s, %s", conf->greeting, who);
    if (n < 0 || (size_t)n >= sizeof(text))
        n = (int)strlen(text); /* truncated; still a valid string */
    roost_stanza_add_text(payload, text, (size_t)n);
    v = roost_reply(ev, payload);
    roost_stanza_unref(payload);
    state->greeted++;
    roost_log(ev->mod, ROOST_LOG_DEBUG, "greeted %s (%lu so far)", who,
              state->greeted);
    return v;
}

static int
hello_load(roost_mod_t *m)
{
    /* Freed in hello_unload (process lifetime of the vhost). */
    *roost_mod_data(m) = roost_xcalloc(1, sizeof(struct hello_state));
    roost_add_feature(m, HELLO_NS);
    return roost_hook_iq(m, HELLO_NS, "hello", hello_get, NULL, NULL);
}

/* Hooks and features are already gone; free only our own state. */
static void
hello_unload(roost_mod_t *m)
{
    roost_free(*roost_mod_data(m));
    *roost_mod_data(m) = NULL;
}

ROOST_MODULE(hello) = {
    .abi = ROOST_ABI,
    .name = "hello",
    .opts = hello_opts,
    .conf_size = sizeof(struct hello_conf),
    .load = hello_load,
    .unload = hello_unload,
};
