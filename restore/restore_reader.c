/*
 * restore_reader.c - the content reader: a catalog version's logical bytes
 * (sparse maps honoured, holes read as zeros) from the archive that holds
 * them, through a table of open archive readers shared by threads.
 */
#include "restore.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


struct open_archive {
	int64_t id;
	struct strata_archive_reader *r;
};

struct strata_reader {
	struct strata_repo *repo;
	struct strata_frame_cache *cache;
	pthread_mutex_t lock;
	struct open_archive *v;
	size_t n, alloc;
	unsigned readahead;
};

void strata_reader_set_readahead(struct strata_reader *rd, unsigned frames)
{
	rd->readahead = frames;
}

int strata_reader_new(struct strata_repo *repo, struct strata_frame_cache *cache,
		      struct strata_reader **ret, struct strata_error *err)
{
	struct strata_reader *rd = calloc(1, sizeof(*rd));

	if (!rd)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	rd->repo = repo;
	rd->cache = cache;
	pthread_mutex_init(&rd->lock, NULL);
	*ret = rd;
	return 0;
}

void strata_reader_free(struct strata_reader *rd)
{
	if (!rd)
		return;
	for (size_t i = 0; i < rd->n; i++)
		strata_archive_reader_close(rd->v[i].r);
	free(rd->v);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
}

/* The open reader for archive row 'id', opening it on first use. */
static int reader_get(struct strata_reader *rd, struct strata_catalog *cat, int64_t id,
		      struct strata_archive_reader **ret, struct strata_error *err)
{
	struct strata_archive_row row;
	struct strata_frame *frames = NULL;
	uint32_t nframes = 0;
	struct strata_archive_reader *r = NULL;
	int rc = 0;

	pthread_mutex_lock(&rd->lock);
	for (size_t i = 0; i < rd->n; i++) {
		if (rd->v[i].id == id) {
			*ret = rd->v[i].r;
			pthread_mutex_unlock(&rd->lock);
			return 0;
		}
	}
	memset(&row, 0, sizeof(row));
	rc = strata_catalog_archive_get(cat, id, &row, err);
	if (rc < 0)
		goto out;
	rc = strata_frames_decode(row.frames, row.frames_len, &frames, &nframes, err);
	if (rc < 0)
		goto out;
	rc = strata_archive_reader_open(strata_repo_archives_fd(rd->repo), row.name,
					strata_repo_master_key(rd->repo), frames, nframes, rd->cache,
					&r, err);
	if (rc < 0)
		goto out;
	if (strata_grow(&rd->v, &rd->alloc, rd->n + 1, sizeof(*rd->v)) < 0) {
		strata_archive_reader_close(r);
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rd->v[rd->n].id = id;
	rd->v[rd->n].r = r;
	rd->n++;
	*ret = r;
out:
	pthread_mutex_unlock(&rd->lock);
	free(frames);
	free(row.frames);
	return rc;
}

/*
 * The archive holding e's bytes from off, with n clamped to the file's
 * end: 1, or 0 when there is nothing to read, or a negative error.
 */
static int reader_for(struct strata_reader *rd, struct strata_catalog *cat,
		      const struct strata_entry *e, uint64_t off, size_t *n,
		      struct strata_archive_reader **ret, struct strata_error *err)
{
	int rc;

	if (e->type != STRATA_T_REG || off >= e->size || *n == 0)
		return 0;
	if (*n > e->size - off)
		*n = (size_t)(e->size - off);
	if (e->archive == 0)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"catalog: file of %llu bytes has no archive",
					(unsigned long long)e->size);
	rc = reader_get(rd, cat, e->archive, ret, err);
	return rc < 0 ? rc : 1;
}

int64_t strata_reader_pread(struct strata_reader *rd, struct strata_catalog *cat,
			    const struct strata_entry *e, void *buf, size_t n, uint64_t off,
			    struct strata_error *err)
{
	struct strata_archive_reader *ar = NULL;
	uint8_t *out = buf;
	uint64_t packed = 0;
	int rc;

	rc = reader_for(rd, cat, e, off, &n, &ar, err);
	if (rc <= 0)
		return rc;
	if (!e->sparse_len) {
		rc = strata_archive_reader_pread(ar, buf, n, e->data_offset + off, err);
		if (rc == 0 && rd->readahead)
			strata_archive_reader_readahead(ar, e->data_offset + off + n - 1, rd->readahead);
		return rc < 0 ? rc : (int64_t)n;
	}
	/* Sparse: zeros, except where a data segment covers the range. */
	memset(buf, 0, n);
	for (size_t i = 0; i + 16 <= e->sparse_len; i += 16) {
		uint64_t so = strata_get_le64(e->sparse + i), sl = strata_get_le64(e->sparse + i + 8);
		uint64_t lo = off > so ? off : so;
		uint64_t hi = off + n < so + sl ? off + n : so + sl;

		if (lo < hi) {
			rc = strata_archive_reader_pread(ar, out + (lo - off), (size_t)(hi - lo),
							 e->data_offset + packed + (lo - so), err);
			if (rc < 0)
				return rc;
		}
		packed += sl;
		if (so >= off + n)
			break;
	}
	return (int64_t)n;
}

int64_t strata_reader_view(struct strata_reader *rd, struct strata_catalog *cat,
			   const struct strata_entry *e, uint64_t off, size_t n,
			   struct strata_frame_view *ret, struct strata_error *err)
{
	struct strata_archive_reader *ar = NULL;
	int rc;

	memset(ret, 0, sizeof(*ret));
	if (e->sparse_len && e->type == STRATA_T_REG && off < e->size && n)
		return -ENOTSUP;
	rc = reader_for(rd, cat, e, off, &n, &ar, err);
	if (rc <= 0)
		return rc;
	rc = strata_archive_reader_view(ar, e->data_offset + off, n, ret, err);
	return rc < 0 ? rc : (int64_t)ret->len;
}

void strata_reader_prefetch(struct strata_reader *rd, struct strata_catalog *cat,
			    const struct strata_entry *e, uint64_t off, uint64_t n,
			    bool decompress)
{
	struct strata_archive_reader *ar = NULL;

	if (e->type != STRATA_T_REG || e->sparse_len || e->archive == 0 || off >= e->size || !n)
		return;
	if (n > e->size - off)
		n = e->size - off;
	if (reader_get(rd, cat, e->archive, &ar, NULL) < 0)
		return;
	if (decompress)
		strata_archive_reader_prefetch(ar, e->data_offset + off, n);
	else
		strata_archive_reader_willneed(ar, e->data_offset + off, n);
}

void strata_reader_drop(struct strata_reader *rd, struct strata_catalog *cat,
			const struct strata_entry *e, uint64_t off, uint64_t n)
{
	struct strata_archive_reader *ar = NULL;

	if (e->type != STRATA_T_REG || e->sparse_len || e->archive == 0 || off >= e->size || !n)
		return;
	if (n > e->size - off)
		n = e->size - off;
	if (reader_get(rd, cat, e->archive, &ar, NULL) == 0)
		strata_archive_reader_drop(ar, e->data_offset + off, n);
}
