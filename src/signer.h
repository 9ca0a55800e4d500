/*
 * signer.h — the DKIM signer process.  Runs in the parent (signer_spawn)
 * and in the signer child; front's side is signer_client.h.
 *
 * The signer alone holds the DKIM private keys.  It is forked before any
 * key is read, loads the keys itself (so no other process ever has them in
 * memory), reports READY or the reason it cannot start, then serves its
 * client slots until front closes them.
 *
 * Messages (src/proc.h framing):
 *   PROC_SIGN_REQ  front -> signer: u64 size, bytes prefix (at most
 *                  SIGNER_PREFIX_MAX octets: the header fields front adds,
 *                  complete, CRLF-terminated); fd: the message as the
 *                  client sent it, front's own spool (spool.h), a memfd
 *                  of exactly `size` octets sealed with at least
 *                  SIGNER_SEALS.  The message signed is prefix then the
 *                  memfd's content (dkim_sign_parts), never copied into
 *                  one buffer with the prefix; the signer reads a message
 *                  under SIGNER_COPY_MAX octets into a buffer of its own
 *                  (wiped after) and maps a larger one.
 *   PROC_SIGN_REP  signer -> front: u32 status (enum dkim_result), str the
 *                  DKIM-Signature field(s) to prepend (CRLF-terminated;
 *                  "" unless DKIM_RES_OK)
 *   PROC_READY     signer -> parent, on its start-up socket (proc.h
 *                  layout): u32 keys, str text
 *   PROC_ERR       signer -> parent: u32 1, str sentence
 * A request whose descriptor is missing, not a memfd, not sealed with
 * SIGNER_SEALS (checked with F_GET_SEALS before it is read or mapped: a
 * sealed memfd can never change again, so what is signed is what front
 * relays)
 * or not of the stated size, or whose payload is malformed (a prefix over
 * SIGNER_PREFIX_MAX, bytes left over) gets DKIM_RES_INTERNAL and the
 * signer goes on; a message of another type, a broken frame or an
 * unexpected descriptor ends it (exit 1).
 */
#ifndef SUBPROXY_SIGNER_H
#define SUBPROXY_SIGNER_H

#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/types.h>

struct config;

#define SIGNER_MSG_MAX  (1ULL << 31)    /* octets of one message, prefix included */
#define SIGNER_PREFIX_MAX 16384         /* octets of the prefix in a request */
#define SIGNER_SEALS    (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
/* a message under this many octets is read into the signer (one pread),
 * a larger one mapped (fewer calls per message; no larger copy) */
#define SIGNER_COPY_MAX 65536

/* The message of a request, a sealed memfd of `size` octets (the stated
 * size, the seals checked): under SIGNER_COPY_MAX octets read into
 * copy[0..SIGNER_COPY_MAX) in one pread(2) that also proves the size (one
 * octet more is asked for), larger ones mapped read-only after lseek(2)
 * proved it.  Mapping costs three calls where the copy costs one (mmap,
 * the page fault, munmap, whose TLB shootdown interrupts the other slot
 * threads).  Returns the octets, *map_r set when mapped
 * (signer_message_done() undoes either), or NULL when the memfd is not of
 * that size or cannot be read (copy then wiped of whatever the read
 * brought).  (The signer's slot threads; tests.) */
const uint8_t *signer_message_get(uint8_t *copy, int memfd, uint64_t size, void **map_r);

/* Forget what signer_message_get() returned: unmap it, or wipe copy. */
void signer_message_done(uint8_t *copy, const uint8_t *msg, uint64_t size, void *map);

/* Fork the signer (proc_spawn.h) with `nslots` client slots, one socket
 * per front worker (1..PROC_SPAWN_FDS_MAX).  Returns its pid and stores
 * front's end of each slot's socket in fds_r[0..nslots) once the signer
 * reported READY (within `timeout` seconds); on failure returns -1 with the
 * signer's own sentence in err (e.g. a key file's mode), the child reaped
 * and fds_r[] -1.
 *
 * The signer serves each slot on a thread of its own ("signer-slotN" in
 * /proc/PID/task/TID/comm), started before its sandbox: a signature is
 * milliseconds of CPU, and the workers' messages are signed on as many
 * cores at once.  A slot whose front does not take its reply is not read
 * until it does; the other slots go on.  Its heartbeat (metrics.h) is the
 * time of the slot loop that ran longest ago.  It exits 0 when front has
 * closed every slot, 1 when front breaks the protocol. */
pid_t signer_spawn(const struct config *cfg, size_t nslots, int timeout, int *fds_r, char *err,
    size_t errlen);

#endif
