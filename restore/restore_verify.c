/*
 * restore_verify.c - strata verify: the catalog's integrity, every archive
 * present with its recorded size, and with read_data the archive's SHA-256,
 * every frame opened and every stored file's content hashed against the
 * catalog.  Problems are reported one line each; the run goes on after one.
 */
#include "restore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct verify_run {
	struct strata_repo *repo;
	struct strata_catalog *cat;
	const struct strata_verify_options *opts;
	struct strata_verify_stats stats;
	struct strata_error first;
	struct strata_reader *rd;
	struct strata_sha256 *sha;
	uint8_t *buf;
	/* (archive, data_offset) pairs already hashed, sorted lazily */
	struct { int64_t archive; uint64_t off; } *seen;
	size_t nseen, aseen;
	int64_t *bad_archives;         /* archives found missing or damaged */
	size_t nbad;
	uint64_t done, total;
	uint64_t visited;              /* entries the current walk reached */
};

static void problem(struct verify_run *vr, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct verify_run *vr, int code, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vr->stats.problems++;
	if (!vr->first.code)
		strata_error_set(&vr->first, code, STRATA_ERR_CORRUPT, "%s", msg);
	if (vr->opts->problem)
		vr->opts->problem(vr->opts->ctx, msg);
}

static bool archive_bad(struct verify_run *vr, int64_t id)
{
	for (size_t i = 0; i < vr->nbad; i++)
		if (vr->bad_archives[i] == id)
			return true;
	return false;
}

static void mark_bad(struct verify_run *vr, int64_t id)
{
	int64_t *nv = realloc(vr->bad_archives, (vr->nbad + 1) * sizeof(*nv));

	if (nv) {
		vr->bad_archives = nv;
		vr->bad_archives[vr->nbad++] = id;
	}
}

static int check_archive(struct verify_run *vr, const struct strata_archive_row *a)
{
	int dfd = strata_repo_archives_fd(vr->repo);
	struct strata_error e = { 0 };
	struct strata_frame *frames = NULL;
	struct strata_archive_reader *r = NULL;
	uint32_t nframes = 0;
	struct stat st;

	vr->stats.archives++;
	if (fstatat(dfd, a->name, &st, 0) < 0) {
		problem(vr, -ENOENT, "archive '%s' of snapshot %lld: %s", a->name, (long long)a->snapshot,
			strerror(errno));
		mark_bad(vr, a->id);
		return 0;
	}
	if ((uint64_t)st.st_size != a->file_size) {
		problem(vr, -EBADMSG, "archive '%s': size %llu, the catalog says %llu", a->name,
			(unsigned long long)st.st_size, (unsigned long long)a->file_size);
		mark_bad(vr, a->id);
		return 0;
	}
	if (strata_frames_decode(a->frames, a->frames_len, &frames, &nframes, &e) < 0) {
		problem(vr, -EBADMSG, "archive '%s': frame table in the catalog: %s", a->name, e.msg);
		mark_bad(vr, a->id);
		return 0;
	}
	if (!vr->opts->read_data) {
		vr->stats.frames += nframes;
		goto out;
	}
	{
		uint8_t sum[32];
		uint64_t size;

		if (strata_file_sha256(dfd, a->name, sum, &size, &e) < 0) {
			problem(vr, e.code, "%s", e.msg);
			mark_bad(vr, a->id);
			goto out;
		}
		if (memcmp(sum, a->sha256, 32) != 0)
			problem(vr, -EBADMSG, "archive '%s': SHA-256 differs from the catalog", a->name);
	}
	strata_error_init(&e);
	if (strata_archive_reader_open(dfd, a->name, strata_repo_master_key(vr->repo), frames, nframes,
				       NULL, &r, &e) < 0) {
		problem(vr, e.code, "%s", e.msg);
		mark_bad(vr, a->id);
		goto out;
	}
	for (uint32_t i = 0; i < nframes; i++) {
		strata_error_init(&e);
		if (strata_archive_reader_check_frame(r, i, &e) < 0)
			problem(vr, e.code, "%s", e.msg);
		vr->stats.frames++;
	}
out:
	strata_archive_reader_close(r);
	free(frames);
	return 0;
}

static bool seen_add(struct verify_run *vr, int64_t archive, uint64_t off)
{
	/* linear probing on a small open-addressed table would be faster;
	 * a sorted array is enough here: one entry per stored file. */
	size_t lo = 0, hi = vr->nseen;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (vr->seen[mid].archive < archive ||
		    (vr->seen[mid].archive == archive && vr->seen[mid].off < off))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < vr->nseen && vr->seen[lo].archive == archive && vr->seen[lo].off == off)
		return false;
	if (strata_grow(&vr->seen, &vr->aseen, vr->nseen + 1, sizeof(*vr->seen)) < 0)
		return true;
	memmove(&vr->seen[lo + 1], &vr->seen[lo], (vr->nseen - lo) * sizeof(*vr->seen));
	vr->seen[lo].archive = archive;
	vr->seen[lo].off = off;
	vr->nseen++;
	return true;
}

static int check_file(void *ctx, const struct strata_entry *e, const char *path, size_t path_len)
{
	struct verify_run *vr = ctx;
	struct strata_error err = { 0 };
	uint8_t sum[32];
	char q[1400];

	vr->visited++;
	if (e->type != STRATA_T_REG || e->size == 0 || !e->has_sha256)
		return 0;
	if (!seen_add(vr, e->archive, e->data_offset))
		return 0;
	strata_quote(q, sizeof(q), path, path_len);
	if (archive_bad(vr, e->archive)) {
		problem(vr, -EBADMSG, "file '/%s': its archive is missing or damaged", q);
		return 0;
	}
	strata_sha256_final(vr->sha, sum);   /* reset */
	for (uint64_t off = 0; off < e->size;) {
		size_t want = e->size - off < (1u << 20) ? (size_t)(e->size - off) : (1u << 20);
		int64_t got = strata_reader_pread(vr->rd, vr->cat, e, vr->buf, want, off, &err);

		if (got <= 0) {
			problem(vr, -EBADMSG, "file '/%s': %s", q, got == 0 ? "short content" : err.msg);
			return 0;
		}
		strata_sha256_update(vr->sha, vr->buf, (size_t)got);
		off += (uint64_t)got;
		vr->stats.bytes += (uint64_t)got;
	}
	strata_sha256_final(vr->sha, sum);
	vr->stats.files++;
	if (memcmp(sum, e->sha256, 32) != 0)
		problem(vr, -EBADMSG, "file '/%s': content differs from its SHA-256 in the catalog", q);
	if (vr->opts->progress)
		vr->opts->progress(vr->opts->ctx, ++vr->done, vr->total);
	return 0;
}

int strata_verify_run(struct strata_repo *repo, struct strata_catalog *cat,
		      const struct strata_verify_options *opts, struct strata_verify_stats *ret,
		      struct strata_error *err)
{
	struct verify_run vr;
	struct strata_archive_row *rows = NULL;
	struct strata_snapshot *snaps = NULL;
	size_t nrows = 0, nsnaps = 0;
	struct strata_error e = { 0 };
	int rc;

	memset(&vr, 0, sizeof(vr));
	vr.repo = repo;
	vr.cat = cat;
	vr.opts = opts;

	if (strata_catalog_check(cat, &e) < 0)
		problem(&vr, e.code, "catalog: %s", e.msg);
	rc = strata_catalog_archives(cat, opts->snapshot, &rows, &nrows, err);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < nrows; i++)
		check_archive(&vr, &rows[i]);
	if (opts->read_data) {
		vr.buf = malloc(1u << 20);
		if (!vr.buf || strata_sha256_new(&vr.sha) < 0) {
			rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		rc = strata_reader_new(repo, NULL, &vr.rd, err);
		if (rc < 0)
			goto out;
		if (opts->snapshot) {
			char spec[32];

			snaps = malloc(sizeof(*snaps));
			snprintf(spec, sizeof(spec), "%lld", (long long)opts->snapshot);
			rc = snaps ? strata_catalog_snapshot_find(cat, spec, NULL, snaps, err) : -ENOMEM;
			nsnaps = 1;
		} else {
			rc = strata_catalog_snapshot_list(cat, NULL, &snaps, &nsnaps, err);
		}
		for (size_t i = 0; rc == 0 && i < nsnaps; i++) {
			vr.visited = 0;
			rc = strata_catalog_walk(cat, snaps[i].set_id, snaps[i].id, 0, check_file, &vr, err);
			if (rc == 0 && vr.visited < snaps[i].files)
				problem(&vr, -EBADMSG,
					"catalog: snapshot '%s' has %llu entries, only %llu are reachable",
					snaps[i].name, (unsigned long long)snaps[i].files,
					(unsigned long long)vr.visited);
		}
		if (rc < 0)
			goto out;
	}
	if (vr.first.code)
		rc = strata_error_set(err, vr.first.code, STRATA_ERR_CORRUPT, "%s", vr.first.msg);
out:
	if (ret)
		*ret = vr.stats;
	strata_archive_rows_free(rows, nrows);
	free(snaps);
	free(vr.seen);
	free(vr.bad_archives);
	free(vr.buf);
	strata_sha256_free(vr.sha);
	strata_reader_free(vr.rd);
	return rc;
}
