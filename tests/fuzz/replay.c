/*
 * replay.c — runs a libFuzzer target's corpus without libFuzzer, so that
 * make check replays every seed of every target (and every crash found
 * later and added to the corpus) as a regression test.
 *
 * Linked with one tests/fuzz/fuzz_NAME.c and the library, built with the
 * normal compiler and AddressSanitizer + UBSan (make check builds it in
 * build-san/replay/).  Each argument is a file or a directory (its regular
 * files, in name order); each file is passed to LLVMFuzzerTestOneInput
 * once, in a buffer of exactly its size (so ASan sees an over-read).  A
 * sanitizer report or a crash ends the process; otherwise it prints
 * "replayed N inputs" and exits 0.  Exits 2 when an argument cannot be
 * read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto err;
	/* malloc(0) may return NULL: keep one octet, pass the exact size */
	if ((buf = malloc(len > 0 ? (size_t)len : 1)) == NULL ||
	    fread(buf, 1, (size_t)len, f) != (size_t)len)
		goto err;
	fclose(f);
	fprintf(stderr, "replay: %s (%ld octets)\n", path, len);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
err:
	fprintf(stderr, "replay: %s: %s\n", path, strerror(errno ? errno : EIO));
	if (f != NULL)
		fclose(f);
	free(buf);
	return -1;
}

static int
replay_dir(const char *dir, size_t *n)
{
	struct dirent **ents;
	struct stat st;
	char path[4096];
	int i, count, rc = 0;

	if ((count = scandir(dir, &ents, NULL, alphasort)) < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(path) < 0)
				rc = -1;
			else
				(*n)++;
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

int
main(int argc, char **argv)
{
	struct stat st;
	size_t n = 0;
	int i;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 2;
		}
		if (S_ISDIR(st.st_mode) ? replay_dir(argv[i], &n) < 0 : replay_file(argv[i]) < 0)
			return 2;
		if (!S_ISDIR(st.st_mode))
			n++;
	}
	printf("replayed %zu inputs\n", n);
	return 0;
}
