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
 * Where a remote server is: a static route (s2s.routes), SRV records or
 * the domain itself on port 5269 (core/resolve.c, c-ares).  Also SASL
 * EXTERNAL with PKIX certificates (XEP-0178; names per RFC 6125: DNS-ID,
 * SRV-ID, XmppAddr, the CN only without those), direct TLS (XEP-0368).
 *
 * Local domains are the hosts and the external components' domains
 * (XEP-0114): a component sends to remote domains through here, and this
 * server is the dialback authoritative server for its domain.
 *
 * Bidirectional streams (XEP-0288): offered on incoming streams and asked
 * for on outgoing ones (s2s.bidi, per peer in s2s.peers).  On a peer's
 * bidi stream, our stanzas from L to R use it once R was verified for L
 * there (instead of a stream of ours); on our bidi stream to R as L, the
 * peer may send from R to L only.  A dialback verify request goes on our
 * stream to the authoritative server if it is authenticated, else on a
 * bidi stream of that server's verified for the pair, else on our stream
 * to it (made if needed).
 *
 * Policy per remote domain (s2s.peers, hashed): require_encryption and
 * bidi, both directions.  Before dialback the peer is unknown, so on a
 * stream without TLS a db:result or db:verify is refused
 * (<policy-violation/>) for a domain whose policy requires TLS.
 *
 * Incoming streams are under the pre-authentication limits of core/conn.c
 * (bytes, stanza size, the total) until a pair is verified on them. */
#ifndef ROOST_CORE_S2S_H
#define ROOST_CORE_S2S_H

#include <openssl/x509.h>
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

/* Whether cert (borrowed) names domain (prepared) as an XMPP server
 * (RFC 6120 §13.7.1.2, RFC 6125 §6, XEP-0178): a DNS-ID, an SRV-ID for
 * _xmpp-server or an XmppAddr in subjectAltName; the CN only when the
 * certificate has none of these.  Wildcards only in DNS-IDs and SRV-IDs,
 * as the whole left-most label.  Checks names only, not the chain.
 * 1 or 0. */
int roost_s2s_cert_name_ok(X509 *cert, const char *domain);

#endif /* ROOST_CORE_S2S_H */
