/*
 * store_archive.c - what the archive writer and reader share (DESIGN.md
 * section 4, layout in store.h): frame nonces and AADs, sealing, and the
 * frame table's encoding and checks.  The writer is store_writer.c, the
 * frame cache and the reader store_reader.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "store.h"
#include "store_int.h"

const uint8_t strata_header_sig[8] = { 'S', 'T', 'R', 'A', 'T', 'A', 0, 1 };

void strata_archive_frame_nonce(uint8_t nonce[12], uint64_t index)
{
	strata_put_le64(nonce, index);
	strata_put_le32(nonce + 8, 0);
}

void strata_archive_frame_aad(uint8_t aad[STRATA_ARCHIVE_ID_LEN + 9],
			      const uint8_t id[STRATA_ARCHIVE_ID_LEN], uint64_t index, bool last)
{
	memcpy(aad, id, STRATA_ARCHIVE_ID_LEN);
	strata_put_le64(aad + STRATA_ARCHIVE_ID_LEN, index);
	aad[STRATA_ARCHIVE_ID_LEN + 8] = last ? 1 : 0;
}

int strata_frame_seal(const uint8_t key[32], const uint8_t id[16], uint64_t index, bool last,
		      uint8_t *buf, size_t n)
{
	uint8_t nonce[STRATA_GCM_NONCE_LEN], aad[STRATA_ARCHIVE_ID_LEN + 9];

	strata_archive_frame_nonce(nonce, index);
	strata_archive_frame_aad(aad, id, index, last);
	return strata_crypto_gcm_seal(key, nonce, aad, sizeof(aad), buf, n, buf + n);
}

void strata_archive_info_release(struct strata_archive_info *info)
{
	if (!info)
		return;
	free(info->frames);
	info->frames = NULL;
	info->nframes = 0;
}

/* ---- frame tables ------------------------------------------------------ */

int strata_frames_check(const struct strata_frame *f, uint32_t n, uint64_t file_end,
			const char *what, struct strata_error *err)
{
	uint64_t c = STRATA_HEADER_SIZE, u = 0;
	const char *why = NULL;
	uint32_t i;

	if (n > STRATA_FRAMES_MAX)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"%s: too many frames (%u)", what, n);
	for (i = 0; i < n; i++) {
		if (f[i].coffset != c)
			why = "compressed offset not contiguous";
		else if (f[i].uoffset != u)
			why = "stream offset not contiguous";
		else if (f[i].usize == 0 || f[i].usize > STRATA_FRAME_MAX)
			why = "bad decompressed size";
		else if (f[i].csize < STRATA_ZSTD_FRAME_MIN || f[i].csize > STRATA_CFRAME_MAX)
			why = "bad compressed size";
		else if (c + f[i].csize > file_end)
			why = "frame past the end of the file";
		if (why)
			return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
						"%s: frame %u: %s", what, i, why);
		c += f[i].csize;
		u += f[i].usize;
	}
	return 0;
}

int strata_frames_encode(const struct strata_frame *f, uint32_t n, uint8_t **ret, size_t *ret_len)
{
	size_t len = (size_t)n * STRATA_FRAME_ENC_SIZE;
	uint8_t *p;

	if (n > STRATA_FRAMES_MAX)
		return -E2BIG;
	p = malloc(len ? len : 1);
	if (!p)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *q = p + (size_t)i * STRATA_FRAME_ENC_SIZE;

		strata_put_le64(q, f[i].coffset);
		strata_put_le64(q + 8, f[i].uoffset);
		strata_put_le32(q + 16, f[i].csize);
		strata_put_le32(q + 20, f[i].usize);
		strata_put_le32(q + 24, f[i].checksum);
	}
	*ret = p;
	*ret_len = len;
	return 0;
}

int strata_frames_decode(const uint8_t *p, size_t len, struct strata_frame **ret, uint32_t *ret_n,
			 struct strata_error *err)
{
	struct strata_frame *f;
	size_t n;
	int rc;

	if (len % STRATA_FRAME_ENC_SIZE)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt frame table: length %zu is not a multiple of %d",
					len, STRATA_FRAME_ENC_SIZE);
	n = len / STRATA_FRAME_ENC_SIZE;
	if (n > STRATA_FRAMES_MAX)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt frame table: too many frames (%zu)", n);
	f = malloc(n ? n * sizeof(*f) : 1);
	if (!f)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const uint8_t *q = p + i * STRATA_FRAME_ENC_SIZE;

		f[i].coffset = strata_get_le64(q);
		f[i].uoffset = strata_get_le64(q + 8);
		f[i].csize = strata_get_le32(q + 16);
		f[i].usize = strata_get_le32(q + 20);
		f[i].checksum = strata_get_le32(q + 24);
	}
	rc = strata_frames_check(f, (uint32_t)n, UINT64_MAX, "corrupt frame table", err);
	if (rc < 0) {
		free(f);
		return rc;
	}
	*ret = f;
	*ret_n = (uint32_t)n;
	return 0;
}

int strata_file_sha256(int dirfd, const char *name, uint8_t out[32], uint64_t *ret_size,
		       struct strata_error *err)
{
	struct strata_sha256 *h = NULL;
	uint8_t *buf = NULL;
	uint64_t size = 0;
	int fd, rc;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
						"archive '%s' not found", name);
		return strata_error_errno(err, errno, "cannot open '%s'", name);
	}
	buf = malloc(1u << 20);
	if (!buf || strata_sha256_new(&h) < 0) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, buf, 1u << 20);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = strata_error_errno(err, errno, "cannot read '%s'", name);
			goto out;
		}
		if (k == 0)
			break;
		strata_sha256_update(h, buf, (size_t)k);
		size += (uint64_t)k;
	}
	strata_sha256_final(h, out);
	if (ret_size)
		*ret_size = size;
	rc = 0;
out:
	strata_sha256_free(h);
	free(buf);
	close(fd);
	return rc;
}
