/*
 * smtp_server.h — the client leg: listeners, sessions, the SMTP state machine.
 *
 * One event loop serves every session.  Each session processes one command at
 * a time from a strict queue (pipelined input waits in the input buffer while
 * an async step — password check, relay operation — is pending); replies of a
 * pipelined group are flushed in one write.
 */
#ifndef SUBPROXY_SMTP_SERVER_H
#define SUBPROXY_SMTP_SERVER_H

#include <stddef.h>

struct config;
struct dns_ctx;
struct event_base;
struct tls_server;
struct server;
struct keeper_fds;

/* Build the server: TLS credentials (the private key is the keeper's),
 * relay context, DNS.  `fds` are the listening sockets, one per
 * cfg->listens entry, already bound; signer_fd is the socket to the DKIM
 * signer, kfds the sockets to the keeper, recorder_fd the one to the audit
 * log's recorder (-1: no audit log) (all owned from now on); workers: the
 * front workers of this generation (auditrec_new()).
 * Returns NULL with a sentence in err. */
struct server *server_new(struct event_base *base, const struct config *cfg,
    const struct keeper_fds *kfds, const int *fds, int signer_fd, int recorder_fd,
    unsigned workers, char *err, size_t errlen);

/* 1 after a fatal fault (the signer, keeper or recorder went away or broke
 * the protocol): the process must exit FRONT_EXIT_PEER (front.h). */
int server_failed(const struct server *srv);

/* The start-up DANE check of our own listeners (owntlsa.h): runs the event
 * loop until answered.  Returns 0, or -1 with the reason in err. */
int server_check_own_tlsa(struct server *srv, char *err, size_t errlen);

/* Start accepting. */
void server_start(struct server *srv);

/* Drain (a reload started a new generation of workers): no new sessions;
 * the open ones go on as usual (new transactions too) with this process's
 * configuration and keys.  When the last one is gone the event loop is
 * asked to exit; after [server] shutdown-timeout the rest is stopped as by
 * server_shutdown(). */
void server_drain(struct server *srv);

/* Graceful stop: no new sessions; idle sessions get 421 and are closed; a
 * session waiting for the relay's final reply gets that reply, then 421.
 * When the last session is gone, the event loop is asked to exit. */
void server_shutdown(struct server *srv);

/* The resolver and the TLS credentials the server built (for the live
 * self-audit, audit.h). */
struct dns_ctx *server_dns(const struct server *srv);
const struct tls_server *server_tls(const struct server *srv);
/* front's handle on the audit log (auditrec.h), for the live self-audit. */
struct auditrec *server_audit(const struct server *srv);

/* Number of open sessions. */
unsigned server_sessions(const struct server *srv);

void server_free(struct server **srvp);

#endif
