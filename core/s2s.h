/* core/s2s.h: server-to-server streams (RFC 6120 over jabber:server) with
 * STARTTLS and Server Dialback (XEP-0220, keys per XEP-0185).
 *
 * Outgoing: one stream per (local domain, remote domain) pair, made when
 * the router has a stanza for a domain this server does not host; stanzas
 * wait in the stream's queue until the remote server accepted our
 * dialback key, and are bounced (remote-server-not-found or
 * remote-server-timeout) when the stream cannot be made.  Incoming: a
 * listener of type "s2s"; a remote domain may send stanzas for a local
 * domain only once that pair was verified on that stream (dialback
 * through a connection back to the remote domain's authoritative server);
 * anything else is <invalid-from/>.
 *
 * Where a remote server is: a static route (s2s.routes) or the domain
 * itself on port 5269 (libevent's asynchronous resolver; SRV comes with
 * core/resolve.c).  Not yet: SASL EXTERNAL with PKIX certificates
 * (XEP-0178), direct TLS (XEP-0368), bidirectional streams (XEP-0288). */
#ifndef ROOST_CORE_S2S_H
#define ROOST_CORE_S2S_H

#include <roost/jid.h>
#include <roost/stanza.h>

#include "config.h"

/* Whether federation is on (an s2s listener is configured: dialback needs
 * remote servers to be able to call back). */
int roost_s2s_enabled(void);
/* Process start/end (after roost_server_init made the hosts). */
int roost_s2s_init(char **err);
void roost_s2s_shutdown(void);
/* Opens an s2s listener. */
int roost_s2s_listen(const roost_listen_conf_t *l, char **err);
/* Sends st (borrowed) from a local domain (from's) to a remote one (to's),
 * making the stream if needed.  Stanzas that cannot be sent are bounced
 * to their sender by the router's rules (never errors). */
void roost_s2s_route(roost_stanza_t *st, const roost_jid_t *from,
                     const roost_jid_t *to);

/* Dialback key (XEP-0185): hex HMAC-SHA256 keyed with the hex SHA-256 of
 * secret, over "receiving originating stream-id".  out: 65 bytes. */
void roost_s2s_dialback_key(const char *secret, const char *receiving,
                            const char *originating, const char *id,
                            char out[65]);

#endif /* ROOST_CORE_S2S_H */
