/* modules/mod_ping.c: XMPP Ping (XEP-0199), server side.
 *
 * Answers <iq type='get'><ping xmlns='urn:xmpp:ping'/></iq> addressed to the
 * host with an empty result and advertises urn:xmpp:ping in disco#info.
 *
 * Not for: pings to a user's full JID (the core routes those to the client)
 * or server-initiated pings to idle clients (a keepalive module's job).
 * This file is the complete small example in doc/modules.md. */
#include <roost/module.h>

#define PING_NS "urn:xmpp:ping"

/* IQ get handler: an empty result with id, to and from swapped. */
static roost_verdict_t
ping_get(const roost_ev_t *ev, void *arg)
{
    return roost_reply(ev, NULL);
}

static int
ping_load(roost_mod_t *m)
{
    roost_add_feature(m, PING_NS);
    return roost_hook_iq(m, PING_NS, "ping", ping_get, NULL, NULL);
}

ROOST_MODULE(ping) = {
    .abi = ROOST_ABI,
    .name = "ping",
    .load = ping_load,
};
