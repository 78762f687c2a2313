/*
 * fuzz_archive.c - fuzz target for the archive reader: the input is an
 * archive file.  It is opened from its own seek table without a key and
 * with a fixed dummy key, checked frame by frame and read whole and in
 * pieces.  Any outcome but a crash, a hang or a leak is fine.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define READ_MAX (64u << 20)

static void read_all(int dirfd, const char *name, const uint8_t *key,
		     struct strata_frame_cache *cache)
{
	struct strata_archive_reader *r;
	struct strata_error err = { 0 };
	uint64_t n, off;
	uint32_t nf;
	uint8_t *buf;

	if (strata_archive_reader_open(dirfd, name, key, NULL, 0, cache, &r, &err) < 0)
		return;
	nf = strata_archive_reader_nframes(r);
	for (uint32_t i = 0; i < nf && i < 64; i++)
		strata_archive_reader_check_frame(r, i, NULL);
	n = strata_archive_reader_stream_size(r);
	if (n > READ_MAX)
		n = READ_MAX;
	buf = malloc(n + 1);
	if (buf) {
		strata_archive_reader_pread(r, buf, n, 0, NULL);
		/* small reads straddling frame boundaries, through the cache */
		for (off = 0; off < n; off += 4093) {
			size_t k = n - off < 8191 ? (size_t)(n - off) : 8191;

			if (strata_archive_reader_pread(r, buf, k, off, NULL) < 0)
				break;
		}
		strata_archive_reader_pread(r, buf, 1, strata_archive_reader_stream_size(r), NULL);
	}
	free(buf);
	strata_archive_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t dummy_key[STRATA_KEY_LEN] = { 0x42 };
	struct strata_frame_cache *cache = NULL;
	char dir[] = "/tmp/fuzz_archive.XXXXXX";
	int dirfd = -1, fd;

	if (!mkdtemp(dir))
		return 0;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		goto out;
	fd = openat(dirfd, "a.tar.zst", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	if (strata_write_full(fd, data, size) < 0) {
		close(fd);
		goto out;
	}
	close(fd);
	read_all(dirfd, "a.tar.zst", NULL, NULL);
	if (strata_frame_cache_new(1u << 20, &cache) == 0) {
		read_all(dirfd, "a.tar.zst", dummy_key, cache);
		strata_frame_cache_free(cache);
	}
out:
	if (dirfd >= 0) {
		unlinkat(dirfd, "a.tar.zst", 0);
		close(dirfd);
	}
	rmdir(dir);
	return 0;
}
