/*
 * spool.c — message body storage: a memory buffer up to mem_max, then an
 * anonymous sealed-able memfd.  Nothing touches the filesystem.
 */
#include "spool.h"
#include "log.h"
#include "util.h"

#include <sys/mman.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#define SPOOL_MEM_MIN 4096

struct spool {
	size_t mem_max;
	unsigned char *buf;     /* content while in memory */
	size_t cap;
	int fd;                 /* memfd once moved, else -1 */
	uint64_t size;
	int sealed;
};

struct spool *
spool_new(size_t mem_max)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));

	sp->mem_max = mem_max;
	sp->fd = -1;
	return sp;
}

/* Write all of buf at offset off; returns 0 or -1 with errno, *done_r gets
 * the octets written either way. */
static int
spool_pwrite_all(int fd, const void *buf, size_t len, uint64_t off, size_t *done_r)
{
	const unsigned char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t w = pwrite(fd, p + done, len - done, (off_t)(off + done));

		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (w == 0) {
			errno = EIO;
			break;
		}
		done += (size_t)w;
	}
	*done_r = done;
	return done == len ? 0 : -1;
}

/* Drop the memory buffer, wiping it first. */
static void
spool_wipe_mem(struct spool *sp)
{
	if (sp->buf != NULL) {
		sodium_memzero(sp->buf, sp->cap);
		free(sp->buf);
	}
	sp->buf = NULL;
	sp->cap = 0;
}

/* Move the in-memory content to a new memfd.  Returns 0 or -1 with errno
 * (the content then stays in memory). */
static int
spool_to_file(struct spool *sp)
{
	size_t done;
	int fd, saved;

	fd = memfd_create("subproxy-msg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		saved = errno;
		log_err("spool: memfd_create: %s", strerror(saved));
		errno = saved;
		return -1;
	}
	if (spool_pwrite_all(fd, sp->buf, (size_t)sp->size, 0, &done) < 0) {
		saved = errno;
		log_err("spool: writing memfd: %s", strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	spool_wipe_mem(sp);
	sp->fd = fd;
	return 0;
}

/* Make room for len more octets in memory; 0 or -1 (ENOMEM). */
static int
spool_grow(struct spool *sp, size_t need)
{
	size_t ncap = sp->cap ? sp->cap : SPOOL_MEM_MIN;
	unsigned char *nbuf;

	while (ncap < need)
		ncap = ncap > sp->mem_max / 2 ? sp->mem_max : ncap * 2;
	if (ncap > sp->mem_max)
		ncap = sp->mem_max;
	/* no realloc: the old block must be wiped, not left behind */
	if ((nbuf = malloc(ncap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (sp->size > 0)
		memcpy(nbuf, sp->buf, (size_t)sp->size);
	spool_wipe_mem(sp);
	sp->buf = nbuf;
	sp->cap = ncap;
	return 0;
}

int
spool_append(struct spool *sp, const void *buf, size_t len)
{
	size_t done;
	int r;

	if (sp->sealed) {
		errno = EPERM;
		return -1;
	}
	if (len == 0)
		return 0;
	if (sp->fd < 0 && sp->size + len <= sp->mem_max) {
		if (sp->size + len > sp->cap && spool_grow(sp, (size_t)sp->size + len) < 0)
			return -1;
		memcpy(sp->buf + sp->size, buf, len);
		sp->size += len;
		return 0;
	}
	if (sp->fd < 0 && spool_to_file(sp) < 0)
		return -1;
	r = spool_pwrite_all(sp->fd, buf, len, sp->size, &done);
	sp->size += done;
	if (r < 0) {
		int saved = errno;

		log_err("spool: writing memfd: %s", strerror(saved));
		errno = saved;
	}
	return r;
}

uint64_t
spool_size(const struct spool *sp)
{
	return sp->size;
}

int
spool_read(const struct spool *sp, uint64_t off, void *buf, size_t buflen, size_t *n_r)
{
	unsigned char *p = buf;
	size_t want, done = 0;

	*n_r = 0;
	if (off >= sp->size || buflen == 0)
		return 0;
	want = sp->size - off < buflen ? (size_t)(sp->size - off) : buflen;
	if (sp->fd < 0) {
		memcpy(p, sp->buf + off, want);
		*n_r = want;
		return 0;
	}
	while (done < want) {
		ssize_t r = pread(sp->fd, p + done, want - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int saved = r < 0 ? errno : EIO;

			log_err("spool: reading memfd: %s", strerror(saved));
			errno = saved;
			return -1;
		}
		done += (size_t)r;
	}
	*n_r = done;
	return 0;
}

int
spool_in_file(const struct spool *sp)
{
	return sp->fd >= 0;
}

int
spool_seal(struct spool *sp)
{
	int saved;

	if (sp->sealed)
		return sp->fd;
	if (sp->fd < 0 && spool_to_file(sp) < 0)
		return -1;
	if (fcntl(sp->fd, F_ADD_SEALS,
	    F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		saved = errno;
		log_err("spool: sealing memfd: %s", strerror(saved));
		errno = saved;
		return -1;
	}
	/* no lseek: the spool writes with pwrite only, so the offset is still
	 * 0, and no reader uses it (it is shared with whoever receives the
	 * descriptor: spool_read is pread, the signer mmaps) */
	sp->sealed = 1;
	return sp->fd;
}

void
spool_reset(struct spool *sp)
{
	spool_wipe_mem(sp);
	if (sp->fd >= 0) {
		/* give the pages back now unless sealed (another process may hold it) */
		if (!sp->sealed && ftruncate(sp->fd, 0) < 0)
			log_warn("spool: ftruncate: %s", strerror(errno));
		close(sp->fd);
	}
	sp->fd = -1;
	sp->size = 0;
	sp->sealed = 0;
}

void
spool_free(struct spool **spp)
{
	if (spp == NULL || *spp == NULL)
		return;
	spool_reset(*spp);
	free(*spp);
	*spp = NULL;
}
