/* core/component.h: external components (XEP-0114).  See core/component.c. */
#ifndef ROOST_CORE_COMPONENT_H
#define ROOST_CORE_COMPONENT_H

#include <roost/jid.h>
#include <roost/stanza.h>

#include "config.h"

/* Opens a listener of type "component". */
int roost_component_listen(const roost_listen_conf_t *l, char **err);
/* Closes every component connection (shutdown). */
void roost_component_shutdown(void);
/* Whether domain belongs to a configured component (its domain or a
 * subdomain of it), connected or not. */
int roost_component_serves(const char *domain);
/* Sends st (borrowed) to the connected component serving to's domain.
 * 0, or -ROOST_ENOTFOUND when it is not connected. */
int roost_component_route(roost_stanza_t *st, const roost_jid_t *to);

#endif /* ROOST_CORE_COMPONENT_H */
