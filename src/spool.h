/*
 * spool.h — where a message body lives while it is received and relayed:
 * memory up to a bound, beyond that an anonymous memfd (never a named file).
 * Nothing is ever written to the filesystem.
 */
#ifndef SUBPROXY_SPOOL_H
#define SUBPROXY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* A new empty spool that keeps up to mem_max bytes in memory. */
struct spool *spool_new(size_t mem_max);

/* Append len bytes.  Past mem_max the content moves to a memfd
 * (memfd_create "subproxy-msg", MFD_CLOEXEC|MFD_ALLOW_SEALING).  Returns 0,
 * or -1 with errno (ENOSPC/EIO/ENOMEM...) — the caller must then refuse the
 * message with a 4xx; the spool stays usable but incomplete. */
int spool_append(struct spool *sp, const void *buf, size_t len);

/* Bytes appended so far. */
uint64_t spool_size(const struct spool *sp);

/* Copy up to buflen bytes from offset `off` into buf; *n_r = bytes copied
 * (0 at the end).  Returns 0 or -1 (I/O error). */
int spool_read(const struct spool *sp, uint64_t off, void *buf, size_t buflen, size_t *n_r);

/* 1 when the content is in a memfd. */
int spool_in_file(const struct spool *sp);

/* A read-only file descriptor with the whole content, sealed against
 * writes, shrinking and growing (F_SEAL_WRITE|F_SEAL_SHRINK|F_SEAL_GROW|
 * F_SEAL_SEAL), suitable for passing to another process.  If the content is
 * in memory it is first moved to a memfd.  After this call no further
 * appends are possible (-1 EPERM).  The descriptor stays owned by the spool
 * (closed by spool_free); returns -1 on error.  Its file offset is 0 (the
 * spool only ever writes with pwrite, and sealing does not seek: front's
 * filter has no lseek), and it is shared with every process the descriptor
 * is passed to: readers use pread or mmap, never the offset. */
int spool_seal(struct spool *sp);

/* Forget the content (memory is wiped with sodium_memzero / the memfd
 * closed).  The spool can be reused. */
void spool_reset(struct spool *sp);

/* Free; *spp = NULL; NULL is a no-op. */
void spool_free(struct spool **spp);

#endif
