/* modules/mod_version.c: Software Version (XEP-0092), server side.
 *
 * Answers iq get jabber:iq:version addressed to the host with the server's
 * name ("Roost") and version (roost_version()), and the operating system
 * (uname sysname) only when the vhost option show_os is true: revealing
 * the OS helps attackers, so it is off by default (XEP-0092 §6).
 *
 * Not for: querying clients' versions (the core routes iqs to full JIDs). */
#include <stddef.h>
#include <string.h>
#include <sys/utsname.h>

#include <roost/module.h>

#define VERSION_NS "jabber:iq:version"

struct version_conf {
    int show_os;
};

static const roost_opt_t version_opts[] = {
    {"show_os", ROOST_OPT_BOOL, offsetof(struct version_conf, show_os), "false",
     0, 0},
    {NULL, 0, 0, NULL, 0, 0}};

static void
version_add_text(roost_stanza_t *parent, const char *name, const char *text)
{
    roost_stanza_t *el = roost_stanza_add_child(parent, NULL, name);

    roost_stanza_add_text(el, text, strlen(text));
}

/* IQ get handler: <query><name/><version/>[<os/>]</query>. */
static roost_verdict_t
version_get(const roost_ev_t *ev, void *arg)
{
    const struct version_conf *conf = roost_mod_conf(ev->mod);
    roost_stanza_t *q = roost_stanza_new(VERSION_NS, "query");
    struct utsname u;
    roost_verdict_t v;

    version_add_text(q, "name", "Roost");
    version_add_text(q, "version", roost_version());
    if (conf->show_os && uname(&u) == 0)
        version_add_text(q, "os", u.sysname);
    v = roost_reply(ev, q);
    roost_stanza_unref(q);
    return v;
}

static int
version_load(roost_mod_t *m)
{
    roost_add_feature(m, VERSION_NS);
    return roost_hook_iq(m, VERSION_NS, "query", version_get, NULL, NULL);
}

ROOST_MODULE(version) = {
    .abi = ROOST_ABI,
    .name = "version",
    .opts = version_opts,
    .conf_size = sizeof(struct version_conf),
    .load = version_load,
};
