/*
 * rfc5322.h — RFC 5322 address lists: the addr-specs of a From, Sender (or
 * any address-list / mailbox-list) field value.  Pure: no I/O, no state;
 * message.c uses it for the From and Sender checks of the intake.
 */
#ifndef SUBPROXY_RFC5322_H
#define SUBPROXY_RFC5322_H

#include <stddef.h>

#define RFC5322_ADDR_MAX 254    /* octets of an addr-spec (RFC 5321 path without <>) */

/* Parse an RFC 5322 address-list / mailbox-list field value (unfolded or
 * folded; comments, quoted strings, display names, groups, obsolete route
 * syntax) and return up to max addr-specs (malloc'ed, caller frees) in
 * addrs.  Returns the number found (may exceed max: extra ones are counted
 * but not stored), or -1 on a syntax error (also: an addr-spec over
 * RFC5322_ADDR_MAX octets, invalid UTF-8, control characters); on -1
 * nothing is left stored in addrs.  Addresses are returned in canonical
 * form: the local part unquoted when it is a dot-atom, else quoted with
 * '"' and '\' escaped.  value need not be NUL-terminated: len bounds the
 * parse, and a NUL inside it is an error. */
int rfc5322_parse_addresses(const char *value, size_t len, char **addrs, size_t max);

/* free() and clear addrs[0..n-1] (NULL entries are fine). */
void rfc5322_free_addresses(char **addrs, size_t n);

/*
 * The one rule for the From field a DKIM signature can be made for, used
 * by front (smtp_txn.c decides with it before asking the signer, 550
 * 5.6.0) and by the signer (dkim.c applies it), so that they never
 * disagree: the field value, unfolded (without the CR LF of each fold, as
 * message.c holds it; dkim.c removes them first), parses as above (groups, comments, display
 * names, obsolete list syntax such as an empty list element all read the
 * same way) and holds exactly one address, whose domain is not a domain
 * literal and holds only letters, digits, '-', '_', '.' and octets
 * >= 0x80 (what can be a signing domain d=).
 */

/* Room for the domain the rule takes, NUL included: front and the signer
 * both use it, so a long domain cannot pass one and not the other. */
#define RFC5322_DOMAIN_MAX 256

/* The domain of addr (an addr-spec as rfc5322_parse_addresses returns it),
 * lower-cased into dom (domlen octets).  0, or -1 when it breaks the rule
 * above or does not fit. */
int rfc5322_addr_domain(const char *addr, char *dom, size_t domlen);

/* The domain of the single address of a From field value[0..len), by the
 * rule above: 0, or -1 (unparsable, no or several addresses, a domain the
 * rule refuses, too long for dom). */
int rfc5322_from_domain(const char *value, size_t len, char *dom, size_t domlen);

#endif
