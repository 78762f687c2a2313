/*
 * store_archive.c - the archive container (DESIGN.md section 4, layout in
 * store.h): the parallel writer, frame tables, the shared frame cache and
 * the random-access reader.
 *
 * Writer.  The caller's bytes are copied once, into the input buffer of
 * the job being filled.  A full (or cut) job gets the next frame index and
 * goes to a FIFO served by a pool of worker threads, each with its own
 * ZSTD_CCtx, which compress it one-shot with the content checksum on.  The
 * calling thread writes finished jobs to the file strictly in index order
 * (a ring of at most 2 * threads jobs in flight bounds memory; buffers are
 * recycled through a free list).  Sealing needs the last-frame flag, which
 * is only known once a later frame exists or _finish runs: a worker seals
 * its frame when it already knows, otherwise the calling thread seals it
 * just before writing it; and the newest frame is never written before
 * _finish.  The writer's first error is sticky.
 *
 * Locking: w->lock protects the pending FIFO, job->done/sealed, and the
 * submitted/finishing/stop fields workers read.  The ring, the free list,
 * the frame table and the file belong to the calling thread.
 *
 * Cache.  A hash table plus an LRU list of decompressed frames keyed by
 * (archive id, frame index), under one mutex.  Entries are refcounted: an
 * entry evicted while a reader still copies from it leaves the table at
 * once (its bytes stop counting against the budget) and is freed by the
 * last strata_frame_cache_put.
 *
 * Reader.  Any number of threads may call pread: the frame table is
 * immutable after open, decompression contexts come from a small locked
 * pool, and every frame read from disk is authenticated (sealed), then
 * checked against its zstd content checksum and the frame table before it
 * enters the cache.
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

#define FRAME_SIZE_DEFAULT (1u << 20)
#define LEVEL_DEFAULT 3
#define THREADS_MAX 64
#define CACHE_BUDGET_DEFAULT (64ull << 20)
#define DCTX_POOL_MAX 64

static const uint8_t header_sig[8] = { 'S', 'T', 'R', 'A', 'T', 'A', 0, 1 };

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

static int frame_seal(const uint8_t key[32], const uint8_t id[16], uint64_t index, bool last,
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

/*
 * Check a frame table: frame 0 right after the header, frames contiguous
 * in the file and in the stream, sizes within caps, the end within
 * file_end.  'what' starts the message.
 */
static int frames_check(const struct strata_frame *f, uint32_t n, uint64_t file_end,
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
	rc = frames_check(f, (uint32_t)n, UINT64_MAX, "corrupt frame table", err);
	if (rc < 0) {
		free(f);
		return rc;
	}
	*ret = f;
	*ret_n = (uint32_t)n;
	return 0;
}

/* ---- writer ---------------------------------------------------------------- */

struct wjob {
	struct wjob *next;       /* pending FIFO or free list */
	uint64_t index;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;            /* compressed frame, then the GCM tag */
	size_t out_len;          /* zstd frame bytes (tag not included) */
	uint32_t checksum;
	bool done;
	bool sealed;
	int rc;
	char msg[128];
};

struct strata_archive_writer {
	int dirfd;
	int fd;
	char tmpname[64];
	char name[64];
	uint8_t id[STRATA_ARCHIVE_ID_LEN];
	uint8_t salt[32];
	uint8_t key[STRATA_KEY_LEN];
	bool sealing;
	uint32_t frame_size;
	int level;
	unsigned nthreads;
	size_t out_cap;

	pthread_mutex_t lock;
	bool lock_init;
	pthread_cond_t work_cond;
	pthread_cond_t done_cond;
	pthread_t *threads;
	unsigned nstarted;
	bool stop;
	bool finishing;
	struct wjob *pending_head, *pending_tail;
	uint64_t submitted;

	struct wjob **ring;      /* jobs in flight, in index order */
	unsigned ring_cap, ring_head, ring_count;
	struct wjob *free_jobs;
	unsigned njobs;
	struct wjob *cur;

	struct strata_frame *frames;
	uint32_t nframes, frames_alloc;
	uint64_t coffset;
	uint64_t offset;
	struct strata_sha256 *sha;

	int error;
	struct strata_error errbuf;
	bool finished;
};

static void wjob_free(struct wjob *j)
{
	if (!j)
		return;
	free(j->in);
	free(j->out);
	free(j);
}

static void *writer_worker(void *arg)
{
	struct strata_archive_writer *w = arg;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();

	if (cctx && (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, w->level)) ||
		     ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)))) {
		ZSTD_freeCCtx(cctx);
		cctx = NULL;
	}
	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct wjob *j;
		size_t r;
		bool know, last;

		while (!w->stop && !w->pending_head)
			pthread_cond_wait(&w->work_cond, &w->lock);
		if (w->stop)
			break;
		j = w->pending_head;
		w->pending_head = j->next;
		if (!w->pending_head)
			w->pending_tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&w->lock);

		if (!cctx) {
			j->rc = -ENOMEM;
			snprintf(j->msg, sizeof(j->msg), "cannot create a compression context");
			goto done;
		}
		r = ZSTD_compress2(cctx, j->out, w->out_cap - STRATA_GCM_TAG_LEN, j->in, j->in_len);
		if (ZSTD_isError(r) || r < 4) {
			j->rc = -EIO;
			snprintf(j->msg, sizeof(j->msg), "frame %llu: compression failed: %s",
				 (unsigned long long)j->index,
				 ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short frame");
			goto done;
		}
		j->out_len = r;
		j->checksum = strata_get_le32(j->out + r - 4);
		if (w->sealing) {
			pthread_mutex_lock(&w->lock);
			know = j->index + 1 < w->submitted || w->finishing;
			last = w->finishing && j->index + 1 == w->submitted;
			pthread_mutex_unlock(&w->lock);
			if (know) {
				if (frame_seal(w->key, w->id, j->index, last, j->out, r) < 0) {
					j->rc = -EIO;
					snprintf(j->msg, sizeof(j->msg), "frame %llu: sealing failed",
						 (unsigned long long)j->index);
					goto done;
				}
				j->sealed = true;
			}
		}
done:
		pthread_mutex_lock(&w->lock);
		j->done = true;
		pthread_cond_broadcast(&w->done_cond);
	}
	pthread_mutex_unlock(&w->lock);
	ZSTD_freeCCtx(cctx);
	return NULL;
}

/* Record the sticky error; always returns its code. */
static int writer_fail(struct strata_archive_writer *w, struct strata_error *err, int code,
		       enum strata_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int writer_fail(struct strata_archive_writer *w, struct strata_error *err, int code,
		       enum strata_error_kind kind, const char *fmt, ...)
{
	va_list ap;

	if (!w->error) {
		va_start(ap, fmt);
		strata_error_setv(&w->errbuf, code, kind, fmt, ap);
		va_end(ap);
		w->error = w->errbuf.code;
	}
	return strata_error_set(err, w->error, w->errbuf.kind, "%s", w->errbuf.msg);
}

static int writer_sticky(struct strata_archive_writer *w, struct strata_error *err)
{
	if (w->finished && !w->error)
		return writer_fail(w, err, -EINVAL, STRATA_ERR_INTERNAL,
				   "archive '%s': writer already finished", w->name);
	return strata_error_set(err, w->error, w->errbuf.kind, "%s", w->errbuf.msg);
}

/* Append to the file and the running SHA-256. */
static int writer_emit(struct strata_archive_writer *w, const void *p, size_t n,
		       struct strata_error *err)
{
	int rc = strata_write_full(w->fd, p, n);

	if (rc < 0)
		return writer_fail(w, err, rc, STRATA_ERR_IO, "cannot write archive '%s': %s",
				   w->tmpname, strerror(-rc));
	strata_sha256_update(w->sha, p, n);
	w->coffset += n;
	return 0;
}

/* Write one finished job (calling thread), sealing it first if the worker could not. */
static int writer_write_job(struct strata_archive_writer *w, struct wjob *j,
			    struct strata_error *err)
{
	struct strata_frame *f;
	size_t n;
	int rc;

	if (j->rc < 0)
		return writer_fail(w, err, j->rc, STRATA_ERR_INTERNAL, "archive '%s': %s",
				   w->name, j->msg);
	if (w->sealing && !j->sealed) {
		bool last = w->finishing && j->index + 1 == w->submitted;

		/* writer_drain never writes the newest frame before _finish */
		if (!w->finishing && j->index + 1 == w->submitted)
			return writer_fail(w, err, -EIO, STRATA_ERR_INTERNAL,
					   "archive '%s': frame %llu written before its successor",
					   w->name, (unsigned long long)j->index);
		rc = frame_seal(w->key, w->id, j->index, last, j->out, j->out_len);
		if (rc < 0)
			return writer_fail(w, err, rc, STRATA_ERR_INTERNAL,
					   "archive '%s': frame %llu: sealing failed", w->name,
					   (unsigned long long)j->index);
		j->sealed = true;
	}
	n = j->out_len + (w->sealing ? STRATA_GCM_TAG_LEN : 0);
	if (w->nframes == w->frames_alloc) {
		uint32_t na = w->frames_alloc ? w->frames_alloc * 2 : 64;
		struct strata_frame *nf;

		if (w->nframes >= STRATA_FRAMES_MAX)
			return writer_fail(w, err, -EFBIG, STRATA_ERR_USAGE,
					   "archive '%s': too many frames", w->name);
		if (na > STRATA_FRAMES_MAX)
			na = STRATA_FRAMES_MAX;
		nf = realloc(w->frames, (size_t)na * sizeof(*nf));
		if (!nf)
			return writer_fail(w, err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		w->frames = nf;
		w->frames_alloc = na;
	}
	f = &w->frames[w->nframes];
	f->coffset = w->coffset;
	f->uoffset = w->nframes ? f[-1].uoffset + f[-1].usize : 0;
	f->csize = (uint32_t)n;
	f->usize = (uint32_t)j->in_len;
	f->checksum = j->checksum;
	rc = writer_emit(w, j->out, n, err);
	if (rc < 0)
		return rc;
	w->nframes++;
	return 0;
}

/*
 * Write finished jobs at the head of the ring, in order.  Never writes
 * the newest frame before _finish.  With wait, blocks until at least one
 * job was written (or, finishing, until the ring is empty).
 */
static int writer_drain(struct strata_archive_writer *w, bool wait, struct strata_error *err)
{
	bool wrote = false;
	int rc = 0;

	pthread_mutex_lock(&w->lock);
	while (w->ring_count) {
		struct wjob *j = w->ring[w->ring_head];

		if (!w->finishing && j->index + 1 == w->submitted)
			break;
		if (!j->done) {
			if (!wait || (wrote && !w->finishing))
				break;
			pthread_cond_wait(&w->done_cond, &w->lock);
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		rc = writer_write_job(w, j, err);
		pthread_mutex_lock(&w->lock);
		if (rc < 0)
			break;
		w->ring_head = (w->ring_head + 1) % w->ring_cap;
		w->ring_count--;
		j->next = w->free_jobs;
		w->free_jobs = j;
		wrote = true;
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* Hand the current job to the workers. */
static int writer_submit(struct strata_archive_writer *w, struct strata_error *err)
{
	struct wjob *j = w->cur;
	int rc;

	while (w->ring_count >= w->ring_cap) {
		rc = writer_drain(w, true, err);
		if (rc < 0)
			return rc;
	}
	w->cur = NULL;
	j->done = false;
	j->sealed = false;
	j->rc = 0;
	j->next = NULL;
	pthread_mutex_lock(&w->lock);
	j->index = w->submitted++;
	w->ring[(w->ring_head + w->ring_count) % w->ring_cap] = j;
	w->ring_count++;
	if (w->pending_tail)
		w->pending_tail->next = j;
	else
		w->pending_head = j;
	w->pending_tail = j;
	pthread_cond_signal(&w->work_cond);
	pthread_mutex_unlock(&w->lock);
	return writer_drain(w, false, err);
}

/* Make sure w->cur is a job with room. */
static int writer_cur(struct strata_archive_writer *w, struct strata_error *err)
{
	struct wjob *j;

	if (w->cur)
		return 0;
	if (w->free_jobs) {
		j = w->free_jobs;
		w->free_jobs = j->next;
	} else {
		j = calloc(1, sizeof(*j));
		if (!j)
			return writer_fail(w, err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		j->in = malloc(w->frame_size);
		j->out = malloc(w->out_cap);
		if (!j->in || !j->out) {
			wjob_free(j);
			return writer_fail(w, err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		}
		w->njobs++;
	}
	j->in_len = 0;
	j->next = NULL;
	w->cur = j;
	return 0;
}

int strata_archive_writer_open(int dirfd, const struct strata_archive_writer_options *opts,
			       struct strata_archive_writer **ret, struct strata_error *err)
{
	static const struct strata_archive_writer_options defaults;
	struct strata_archive_writer *w;
	uint8_t header[STRATA_HEADER_SIZE], *p;
	char hex[2 * STRATA_ARCHIVE_ID_LEN + 1];
	long ncpu;
	int rc;

	if (!opts)
		opts = &defaults;
	if (opts->level && (opts->level < ZSTD_minCLevel() || opts->level > ZSTD_maxCLevel()))
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"invalid compression level %d", opts->level);
	w = calloc(1, sizeof(*w));
	if (!w)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	w->dirfd = dirfd;
	w->fd = -1;
	w->frame_size = opts->frame_size ? opts->frame_size : FRAME_SIZE_DEFAULT;
	if (w->frame_size > STRATA_FRAME_MAX)
		w->frame_size = STRATA_FRAME_MAX;
	w->level = opts->level ? opts->level : LEVEL_DEFAULT;
	if (opts->threads > 0) {
		w->nthreads = (unsigned)opts->threads;
	} else {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		w->nthreads = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	if (w->nthreads > THREADS_MAX)
		w->nthreads = THREADS_MAX;
	w->sealing = opts->master_key != NULL;
	w->out_cap = ZSTD_compressBound(w->frame_size) + STRATA_GCM_TAG_LEN;
	w->ring_cap = 2 * w->nthreads;

	if (pthread_mutex_init(&w->lock, NULL)) {
		free(w);
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	}
	pthread_cond_init(&w->work_cond, NULL);
	pthread_cond_init(&w->done_cond, NULL);
	w->lock_init = true;

	if (strata_random(w->id, sizeof(w->id)) < 0 ||
	    (w->sealing && strata_random(w->salt, sizeof(w->salt)) < 0)) {
		rc = strata_error_set(err, -EIO, STRATA_ERR_INTERNAL, "cannot get random bytes");
		goto out;
	}
	strata_hex(hex, w->id, sizeof(w->id));
	snprintf(w->tmpname, sizeof(w->tmpname), ".tmp-%s", hex);
	snprintf(w->name, sizeof(w->name), "%s.tar.zst%s", hex, w->sealing ? ".sealed" : "");
	if (w->sealing && strata_crypto_hkdf(opts->master_key, STRATA_KEY_LEN, w->salt,
					     sizeof(w->salt), STRATA_ARCHIVE_KDF_INFO, w->key,
					     sizeof(w->key)) < 0) {
		rc = strata_error_set(err, -EIO, STRATA_ERR_INTERNAL,
				      "cannot derive the key of archive '%s'", w->name);
		goto out;
	}
	w->ring = calloc(w->ring_cap, sizeof(*w->ring));
	w->threads = calloc(w->nthreads, sizeof(*w->threads));
	if (!w->ring || !w->threads || strata_sha256_new(&w->sha) < 0) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	w->fd = openat(dirfd, w->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		       0600);
	if (w->fd < 0) {
		rc = strata_error_errno(err, errno, "cannot create archive '%s'", w->tmpname);
		goto out;
	}
	p = header;
	strata_put_le32(p, STRATA_SKIPPABLE_HEADER_MAGIC);
	strata_put_le32(p + 4, STRATA_HEADER_PAYLOAD);
	memcpy(p + 8, header_sig, sizeof(header_sig));
	strata_put_le32(p + 16, w->sealing ? STRATA_HEADER_FLAG_SEALED : 0);
	memcpy(p + 20, w->id, STRATA_ARCHIVE_ID_LEN);
	memcpy(p + 20 + STRATA_ARCHIVE_ID_LEN, w->salt, sizeof(w->salt));
	rc = writer_emit(w, header, sizeof(header), err);
	if (rc < 0)
		goto out;
	for (unsigned i = 0; i < w->nthreads; i++) {
		if (pthread_create(&w->threads[i], NULL, writer_worker, w)) {
			if (i == 0) {
				rc = strata_error_set(err, -EAGAIN, STRATA_ERR_INTERNAL,
						      "cannot start compression threads");
				goto out;
			}
			break;
		}
		w->nstarted++;
	}
	*ret = w;
	w = NULL;
	rc = 0;
out:
	strata_archive_writer_free(w);
	return rc;
}

int strata_archive_writer_write(struct strata_archive_writer *w, const void *buf, size_t n,
				struct strata_error *err)
{
	const uint8_t *p = buf;
	int rc;

	if (w->error || w->finished)
		return writer_sticky(w, err);
	while (n) {
		size_t room, k;

		rc = writer_cur(w, err);
		if (rc < 0)
			return rc;
		room = w->frame_size - w->cur->in_len;
		k = n < room ? n : room;
		memcpy(w->cur->in + w->cur->in_len, p, k);
		w->cur->in_len += k;
		w->offset += k;
		p += k;
		n -= k;
		if (w->cur->in_len == w->frame_size) {
			rc = writer_submit(w, err);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int strata_archive_writer_cut(struct strata_archive_writer *w, struct strata_error *err)
{
	if (w->error || w->finished)
		return writer_sticky(w, err);
	if (w->cur && w->cur->in_len)
		return writer_submit(w, err);
	return 0;
}

uint64_t strata_archive_writer_offset(const struct strata_archive_writer *w)
{
	return w->offset;
}

int strata_archive_writer_finish(struct strata_archive_writer *w, struct strata_archive_info *ret,
				 struct strata_error *err)
{
	uint8_t *table = NULL, *q;
	size_t tlen;
	int rc;

	if (w->error || w->finished)
		return writer_sticky(w, err);
	if (w->cur && w->cur->in_len) {
		rc = writer_submit(w, err);
		if (rc < 0)
			goto out;
	}
	pthread_mutex_lock(&w->lock);
	w->finishing = true;
	pthread_mutex_unlock(&w->lock);
	rc = writer_drain(w, true, err);
	if (rc < 0)
		goto out;
	if (w->ring_count) {
		rc = writer_fail(w, err, -EIO, STRATA_ERR_INTERNAL,
				 "archive '%s': frames left unwritten", w->name);
		goto out;
	}
	tlen = 8 + (size_t)w->nframes * STRATA_SEEK_ENTRY_SIZE + STRATA_SEEK_FOOTER_SIZE;
	table = malloc(tlen);
	if (!table) {
		rc = writer_fail(w, err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	strata_put_le32(table, STRATA_SEEKTABLE_MAGIC);
	strata_put_le32(table + 4, (uint32_t)(tlen - 8));
	q = table + 8;
	for (uint32_t i = 0; i < w->nframes; i++, q += STRATA_SEEK_ENTRY_SIZE) {
		strata_put_le32(q, w->frames[i].csize);
		strata_put_le32(q + 4, w->frames[i].usize);
		strata_put_le32(q + 8, w->frames[i].checksum);
	}
	strata_put_le32(q, w->nframes);
	q[4] = STRATA_SEEKTABLE_DESCRIPTOR;
	strata_put_le32(q + 5, STRATA_SEEKTABLE_FOOTER_MAGIC);
	rc = writer_emit(w, table, tlen, err);
	if (rc < 0)
		goto out;
	if (fsync(w->fd) < 0) {
		rc = writer_fail(w, err, -errno, STRATA_ERR_IO, "cannot sync archive '%s': %s",
				 w->tmpname, strerror(errno));
		goto out;
	}
	if (renameat(w->dirfd, w->tmpname, w->dirfd, w->name) < 0) {
		rc = writer_fail(w, err, -errno, STRATA_ERR_IO, "cannot rename archive '%s': %s",
				 w->tmpname, strerror(errno));
		goto out;
	}
	w->finished = true;
	if (fsync(w->dirfd) < 0) {
		rc = writer_fail(w, err, -errno, STRATA_ERR_IO,
				 "cannot sync the directory of archive '%s': %s", w->name,
				 strerror(errno));
		goto out;
	}
	if (!w->frames) {
		w->frames = calloc(1, sizeof(*w->frames));
		if (!w->frames) {
			rc = writer_fail(w, err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
	}
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->id, w->id, sizeof(ret->id));
	memcpy(ret->name, w->name, sizeof(ret->name));
	ret->file_size = w->coffset;
	ret->stream_size = w->offset;
	strata_sha256_final(w->sha, ret->sha256);
	ret->encrypted = w->sealing;
	memcpy(ret->salt, w->salt, sizeof(ret->salt));
	ret->nframes = w->nframes;
	ret->frames = w->frames;
	w->frames = NULL;
	rc = 0;
out:
	free(table);
	return rc;
}

void strata_archive_writer_free(struct strata_archive_writer *w)
{
	struct wjob *j;

	if (!w)
		return;
	if (w->lock_init) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_broadcast(&w->work_cond);
		pthread_mutex_unlock(&w->lock);
	}
	for (unsigned i = 0; i < w->nstarted; i++)
		pthread_join(w->threads[i], NULL);
	while (w->ring_count) {
		wjob_free(w->ring[w->ring_head]);
		w->ring_head = (w->ring_head + 1) % w->ring_cap;
		w->ring_count--;
	}
	while ((j = w->free_jobs)) {
		w->free_jobs = j->next;
		wjob_free(j);
	}
	wjob_free(w->cur);
	if (w->fd >= 0) {
		close(w->fd);
		if (!w->finished)
			unlinkat(w->dirfd, w->tmpname, 0);
	}
	if (w->lock_init) {
		pthread_cond_destroy(&w->work_cond);
		pthread_cond_destroy(&w->done_cond);
		pthread_mutex_destroy(&w->lock);
	}
	strata_crypto_wipe(w->key, sizeof(w->key));
	strata_sha256_free(w->sha);
	free(w->frames);
	free(w->ring);
	free(w->threads);
	free(w);
}

/* ---- frame cache ------------------------------------------------------------ */

struct strata_frame_cache {
	pthread_mutex_t lock;
	uint64_t budget;
	uint64_t used;
	uint64_t count;
	struct strata_cache_entry **buckets;
	size_t nbuckets;                       /* a power of two */
	struct strata_cache_entry *lru_head;   /* most recently used */
	struct strata_cache_entry *lru_tail;
};

int strata_frame_cache_new(uint64_t budget, struct strata_frame_cache **ret)
{
	struct strata_frame_cache *c;
	uint64_t want;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->budget = budget ? budget : CACHE_BUDGET_DEFAULT;
	want = c->budget / (64u << 10);
	c->nbuckets = 64;
	while (c->nbuckets < want && c->nbuckets < (1u << 20))
		c->nbuckets <<= 1;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->buckets || pthread_mutex_init(&c->lock, NULL)) {
		free(c->buckets);
		free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

static size_t cache_hash(const struct strata_frame_cache *c, const uint8_t id[16], uint32_t index)
{
	uint64_t h = strata_get_le64(id) ^ (strata_get_le64(id + 8) * 0x9E3779B97F4A7C15ull);

	h ^= index * 0xC2B2AE3D27D4EB4Full;
	h ^= h >> 29;
	return (size_t)(h & (c->nbuckets - 1));
}

static void cache_lru_unlink(struct strata_frame_cache *c, struct strata_cache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void cache_lru_push(struct strata_frame_cache *c, struct strata_cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	else
		c->lru_tail = e;
	c->lru_head = e;
}

static void cache_entry_free(struct strata_cache_entry *e)
{
	free(e->data);
	free(e);
}

/* Take e out of the table and the LRU (c->lock held); frees it when unreferenced. */
static void cache_remove(struct strata_frame_cache *c, struct strata_cache_entry *e)
{
	struct strata_cache_entry **pp = &c->buckets[cache_hash(c, e->key_id, e->key_index)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	cache_lru_unlink(c, e);
	e->in_table = false;
	c->used -= e->size;
	c->count--;
	if (!e->refs)
		cache_entry_free(e);
}

struct strata_cache_entry *strata_frame_cache_get(struct strata_frame_cache *c,
						  const uint8_t id[STRATA_ARCHIVE_ID_LEN],
						  uint32_t index)
{
	struct strata_cache_entry *e;

	pthread_mutex_lock(&c->lock);
	for (e = c->buckets[cache_hash(c, id, index)]; e; e = e->hnext)
		if (e->key_index == index && !memcmp(e->key_id, id, STRATA_ARCHIVE_ID_LEN))
			break;
	if (e) {
		e->refs++;
		cache_lru_unlink(c, e);
		cache_lru_push(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	return e;
}

struct strata_cache_entry *strata_frame_cache_insert(struct strata_frame_cache *c,
						     const uint8_t id[STRATA_ARCHIVE_ID_LEN],
						     uint32_t index, uint8_t *data, uint32_t size)
{
	struct strata_cache_entry *e, *n;
	size_t b;

	n = calloc(1, sizeof(*n));
	pthread_mutex_lock(&c->lock);
	b = cache_hash(c, id, index);
	for (e = c->buckets[b]; e; e = e->hnext)
		if (e->key_index == index && !memcmp(e->key_id, id, STRATA_ARCHIVE_ID_LEN))
			break;
	if (e && e->size == size) {
		/* another thread got there first */
		e->refs++;
		cache_lru_unlink(c, e);
		cache_lru_push(c, e);
		pthread_mutex_unlock(&c->lock);
		free(data);
		free(n);
		return e;
	}
	if (!n) {
		/* no memory for the entry: the caller goes around the cache */
		pthread_mutex_unlock(&c->lock);
		free(data);
		return NULL;
	}
	if (e)
		cache_remove(c, e);
	memcpy(n->key_id, id, STRATA_ARCHIVE_ID_LEN);
	n->key_index = index;
	n->data = data;
	n->size = size;
	n->refs = 1;
	n->in_table = true;
	n->hnext = c->buckets[b];
	c->buckets[b] = n;
	cache_lru_push(c, n);
	c->used += size;
	c->count++;
	while (c->used > c->budget && c->lru_tail)
		cache_remove(c, c->lru_tail);
	pthread_mutex_unlock(&c->lock);
	return n;
}

void strata_frame_cache_put(struct strata_frame_cache *c, struct strata_cache_entry *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&c->lock);
	e->refs--;
	if (!e->refs && !e->in_table)
		cache_entry_free(e);
	pthread_mutex_unlock(&c->lock);
}

uint64_t strata_frame_cache_used(struct strata_frame_cache *c, uint64_t *ret_count)
{
	uint64_t used;

	pthread_mutex_lock(&c->lock);
	used = c->used;
	if (ret_count)
		*ret_count = c->count;
	pthread_mutex_unlock(&c->lock);
	return used;
}

void strata_frame_cache_free(struct strata_frame_cache *c)
{
	if (!c)
		return;
	while (c->lru_tail)
		cache_remove(c, c->lru_tail);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}

/* ---- reader ------------------------------------------------------------------ */

struct strata_archive_reader {
	int fd;
	char *name;
	uint64_t file_size;
	struct strata_frame *frames;
	uint32_t nframes;
	uint64_t stream_size;
	uint8_t id[STRATA_ARCHIVE_ID_LEN];
	uint8_t key[STRATA_KEY_LEN];
	bool sealed;
	struct strata_frame_cache *cache;
	bool own_cache;

	pthread_mutex_t lock;          /* the DCtx pool and the readahead state */
	ZSTD_DCtx *dctx[DCTX_POOL_MAX];
	unsigned ndctx;

	pthread_cond_t ra_cond;
	pthread_t ra_thread;
	bool ra_started;
	bool ra_stop;
	uint32_t ra_next, ra_end;
};

static int reader_corrupt(struct strata_archive_reader *r, struct strata_error *err,
			  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int reader_corrupt(struct strata_archive_reader *r, struct strata_error *err,
			  const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT, "archive '%s': %s", r->name,
				what);
}

/* Read the header; fills r->id and r->sealed, returns the salt. */
static int reader_header(struct strata_archive_reader *r, uint8_t salt[32],
			 struct strata_error *err)
{
	uint8_t h[STRATA_HEADER_SIZE];
	uint32_t flags;
	int rc;

	if (r->file_size < STRATA_HEADER_SIZE)
		return reader_corrupt(r, err, "too short for a header");
	rc = strata_pread_full(r->fd, h, sizeof(h), 0);
	if (rc == -ENODATA)
		return reader_corrupt(r, err, "truncated");
	if (rc < 0)
		return strata_error_errno(err, -rc, "cannot read archive '%s'", r->name);
	if (strata_get_le32(h) != STRATA_SKIPPABLE_HEADER_MAGIC ||
	    strata_get_le32(h + 4) != STRATA_HEADER_PAYLOAD ||
	    memcmp(h + 8, header_sig, sizeof(header_sig)))
		return reader_corrupt(r, err, "not a strata archive (bad header)");
	flags = strata_get_le32(h + 16);
	if (flags & ~STRATA_HEADER_FLAG_SEALED)
		return reader_corrupt(r, err, "unknown header flags 0x%x", flags);
	r->sealed = flags & STRATA_HEADER_FLAG_SEALED;
	memcpy(r->id, h + 20, STRATA_ARCHIVE_ID_LEN);
	memcpy(salt, h + 20 + STRATA_ARCHIVE_ID_LEN, 32);
	return 0;
}

/* Parse the zstd seekable-format seek table at the end of the file. */
static int reader_seek_table(struct strata_archive_reader *r, struct strata_error *err)
{
	uint8_t foot[STRATA_SEEK_FOOTER_SIZE], sk[8], *tab = NULL;
	uint64_t tsize, tstart, c = STRATA_HEADER_SIZE, u = 0;
	uint32_t n;
	int rc;

	if (r->file_size < STRATA_HEADER_SIZE + 8 + STRATA_SEEK_FOOTER_SIZE)
		return reader_corrupt(r, err, "too short for a seek table");
	rc = strata_pread_full(r->fd, foot, sizeof(foot), r->file_size - sizeof(foot));
	if (rc < 0)
		return strata_error_errno(err, rc == -ENODATA ? EIO : -rc,
					  "cannot read archive '%s'", r->name);
	if (strata_get_le32(foot + 5) != STRATA_SEEKTABLE_FOOTER_MAGIC ||
	    foot[4] != STRATA_SEEKTABLE_DESCRIPTOR)
		return reader_corrupt(r, err, "bad seek table footer");
	n = strata_get_le32(foot);
	if (n > STRATA_FRAMES_MAX)
		return reader_corrupt(r, err, "seek table: too many frames (%u)", n);
	tsize = (uint64_t)n * STRATA_SEEK_ENTRY_SIZE + STRATA_SEEK_FOOTER_SIZE;
	if (STRATA_HEADER_SIZE + 8 + tsize > r->file_size)
		return reader_corrupt(r, err, "seek table larger than the file");
	tstart = r->file_size - 8 - tsize;
	rc = strata_pread_full(r->fd, sk, sizeof(sk), tstart);
	if (rc < 0)
		return strata_error_errno(err, rc == -ENODATA ? EIO : -rc,
					  "cannot read archive '%s'", r->name);
	if (strata_get_le32(sk) != STRATA_SEEKTABLE_MAGIC || strata_get_le32(sk + 4) != tsize)
		return reader_corrupt(r, err, "bad seek table header");
	tab = malloc(tsize);
	r->frames = malloc(n ? (size_t)n * sizeof(*r->frames) : 1);
	if (!tab || !r->frames) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = strata_pread_full(r->fd, tab, tsize, tstart + 8);
	if (rc < 0) {
		rc = strata_error_errno(err, rc == -ENODATA ? EIO : -rc,
					"cannot read archive '%s'", r->name);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *q = tab + (size_t)i * STRATA_SEEK_ENTRY_SIZE;
		struct strata_frame *f = &r->frames[i];

		f->coffset = c;
		f->uoffset = u;
		f->csize = strata_get_le32(q);
		f->usize = strata_get_le32(q + 4);
		f->checksum = strata_get_le32(q + 8);
		if (f->usize == 0 || f->usize > STRATA_FRAME_MAX || f->csize < STRATA_ZSTD_FRAME_MIN ||
		    f->csize > STRATA_CFRAME_MAX || c + f->csize > tstart) {
			rc = reader_corrupt(r, err, "seek table: frame %u: bad sizes", i);
			goto out;
		}
		c += f->csize;
		u += f->usize;
	}
	if (c != tstart) {
		rc = reader_corrupt(r, err, "seek table does not match the file size");
		goto out;
	}
	r->nframes = n;
	rc = 0;
out:
	free(tab);
	return rc;
}

int strata_archive_reader_open(int dirfd, const char *name, const uint8_t *master_key,
			       const struct strata_frame *frames, uint32_t nframes,
			       struct strata_frame_cache *cache,
			       struct strata_archive_reader **ret, struct strata_error *err)
{
	struct strata_archive_reader *r;
	uint8_t salt[32];
	struct stat st;
	char what[320];
	int rc;

	if (!name || !strata_path_is_safe(name, strlen(name)) || strchr(name, '/') ||
	    strlen(name) > 255)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "invalid archive name '%s'",
					name ? name : "");
	r = calloc(1, sizeof(*r));
	if (!r)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	r->fd = -1;
	r->name = strdup(name);
	if (!r->name || pthread_mutex_init(&r->lock, NULL)) {
		free(r->name);
		free(r);
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	}
	pthread_cond_init(&r->ra_cond, NULL);
	r->fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (r->fd < 0) {
		if (errno == ENOENT)
			rc = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
					      "archive '%s' not found", name);
		else
			rc = strata_error_errno(err, errno, "cannot open archive '%s'", name);
		goto out;
	}
	if (fstat(r->fd, &st) < 0) {
		rc = strata_error_errno(err, errno, "cannot stat archive '%s'", name);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				      "archive '%s' is not a regular file", name);
		goto out;
	}
	r->file_size = (uint64_t)st.st_size;
	rc = reader_header(r, salt, err);
	if (rc < 0)
		goto out;
	if (r->sealed && !master_key) {
		rc = strata_error_set(err, -EACCES, STRATA_ERR_AUTH,
				      "archive '%s' is encrypted: the repository key is needed",
				      name);
		goto out;
	}
	if (frames) {
		snprintf(what, sizeof(what), "archive '%s': bad frame table", name);
		rc = frames_check(frames, nframes, r->file_size, what, err);
		if (rc < 0)
			goto out;
		r->frames = malloc(nframes ? (size_t)nframes * sizeof(*r->frames) : 1);
		if (!r->frames) {
			rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		if (nframes)
			memcpy(r->frames, frames, (size_t)nframes * sizeof(*r->frames));
		r->nframes = nframes;
	} else {
		rc = reader_seek_table(r, err);
		if (rc < 0)
			goto out;
	}
	if (r->nframes)
		r->stream_size = r->frames[r->nframes - 1].uoffset + r->frames[r->nframes - 1].usize;
	if (r->sealed) {
		for (uint32_t i = 0; i < r->nframes; i++) {
			if (r->frames[i].csize < STRATA_ZSTD_FRAME_MIN + STRATA_GCM_TAG_LEN) {
				rc = reader_corrupt(r, err, "frame %u: too short to be sealed", i);
				goto out;
			}
		}
		if (strata_crypto_hkdf(master_key, STRATA_KEY_LEN, salt, sizeof(salt),
				       STRATA_ARCHIVE_KDF_INFO, r->key, sizeof(r->key)) < 0) {
			rc = strata_error_set(err, -EIO, STRATA_ERR_INTERNAL,
					      "cannot derive the key of archive '%s'", name);
			goto out;
		}
	}
	if (cache) {
		r->cache = cache;
	} else {
		if (strata_frame_cache_new(STRATA_FRAME_MAX, &r->cache) < 0) {
			rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		r->own_cache = true;
	}
	*ret = r;
	r = NULL;
	rc = 0;
out:
	strata_archive_reader_close(r);
	return rc;
}

void strata_archive_reader_close(struct strata_archive_reader *r)
{
	if (!r)
		return;
	if (r->ra_started) {
		pthread_mutex_lock(&r->lock);
		r->ra_stop = true;
		pthread_cond_signal(&r->ra_cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->ra_thread, NULL);
	}
	for (unsigned i = 0; i < r->ndctx; i++)
		ZSTD_freeDCtx(r->dctx[i]);
	if (r->own_cache)
		strata_frame_cache_free(r->cache);
	if (r->fd >= 0)
		close(r->fd);
	strata_crypto_wipe(r->key, sizeof(r->key));
	pthread_cond_destroy(&r->ra_cond);
	pthread_mutex_destroy(&r->lock);
	free(r->frames);
	free(r->name);
	free(r);
}

uint64_t strata_archive_reader_stream_size(const struct strata_archive_reader *r)
{
	return r->stream_size;
}

uint32_t strata_archive_reader_nframes(const struct strata_archive_reader *r)
{
	return r->nframes;
}

const struct strata_frame *strata_archive_reader_frames(const struct strata_archive_reader *r)
{
	return r->frames;
}

const uint8_t *strata_archive_reader_id(const struct strata_archive_reader *r)
{
	return r->id;
}

static ZSTD_DCtx *reader_dctx_get(struct strata_archive_reader *r)
{
	ZSTD_DCtx *d = NULL;

	pthread_mutex_lock(&r->lock);
	if (r->ndctx)
		d = r->dctx[--r->ndctx];
	pthread_mutex_unlock(&r->lock);
	return d ? d : ZSTD_createDCtx();
}

static void reader_dctx_put(struct strata_archive_reader *r, ZSTD_DCtx *d)
{
	pthread_mutex_lock(&r->lock);
	if (r->ndctx < DCTX_POOL_MAX) {
		r->dctx[r->ndctx++] = d;
		d = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	ZSTD_freeDCtx(d);
}

/*
 * Read, authenticate, check and decompress frame i into a new buffer of
 * frames[i].usize bytes (the caller frees it).
 */
static int reader_load(struct strata_archive_reader *r, uint32_t i, uint8_t **ret,
		       struct strata_error *err)
{
	const struct strata_frame *f = &r->frames[i];
	uint8_t *in = NULL, *out = NULL;
	ZSTD_DCtx *d = NULL;
	unsigned long long fcs;
	size_t zlen = f->csize, got;
	int rc;

	in = malloc(f->csize);
	out = malloc(f->usize);
	if (!in || !out) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = strata_pread_full(r->fd, in, f->csize, f->coffset);
	if (rc == -ENODATA) {
		rc = reader_corrupt(r, err, "frame %u: truncated", i);
		goto out;
	}
	if (rc < 0) {
		rc = strata_error_errno(err, -rc, "cannot read archive '%s'", r->name);
		goto out;
	}
	if (r->sealed) {
		uint8_t nonce[STRATA_GCM_NONCE_LEN], aad[STRATA_ARCHIVE_ID_LEN + 9];

		zlen = f->csize - STRATA_GCM_TAG_LEN;
		strata_archive_frame_nonce(nonce, i);
		strata_archive_frame_aad(aad, r->id, i, i + 1 == r->nframes);
		rc = strata_crypto_gcm_open(r->key, nonce, aad, sizeof(aad), in, zlen, in + zlen);
		if (rc == -EBADMSG) {
			rc = reader_corrupt(r, err,
					    "frame %u: authentication failed (damaged, moved or truncated)",
					    i);
			goto out;
		}
		if (rc < 0) {
			rc = strata_error_set(err, rc, STRATA_ERR_INTERNAL,
					      "archive '%s': frame %u: cannot decrypt", r->name, i);
			goto out;
		}
	}
	if (zlen < STRATA_ZSTD_FRAME_MIN || strata_get_le32(in) != STRATA_ZSTD_FRAME_MAGIC) {
		rc = reader_corrupt(r, err, "frame %u: not a zstd frame", i);
		goto out;
	}
	if (!(in[4] & 0x04)) {
		rc = reader_corrupt(r, err, "frame %u: no content checksum", i);
		goto out;
	}
	got = ZSTD_findFrameCompressedSize(in, zlen);
	if (ZSTD_isError(got) || got != zlen) {
		rc = reader_corrupt(r, err, "frame %u: bad frame length", i);
		goto out;
	}
	fcs = ZSTD_getFrameContentSize(in, zlen);
	if (fcs != f->usize) {
		rc = reader_corrupt(r, err, "frame %u: size mismatch", i);
		goto out;
	}
	if (strata_get_le32(in + zlen - 4) != f->checksum) {
		rc = reader_corrupt(r, err, "frame %u: checksum mismatch", i);
		goto out;
	}
	d = reader_dctx_get(r);
	if (!d) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	got = ZSTD_decompressDCtx(d, out, f->usize, in, zlen);
	if (ZSTD_isError(got)) {
		rc = reader_corrupt(r, err, "frame %u: %s", i, ZSTD_getErrorName(got));
		ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
		goto out;
	}
	if (got != f->usize) {
		rc = reader_corrupt(r, err, "frame %u: size mismatch", i);
		goto out;
	}
	*ret = out;
	out = NULL;
	rc = 0;
out:
	if (d)
		reader_dctx_put(r, d);
	free(in);
	free(out);
	return rc;
}

/* The frame holding stream offset off (off < stream_size). */
static uint32_t reader_find(const struct strata_archive_reader *r, uint64_t off)
{
	uint32_t lo = 0, hi = r->nframes - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;

		if (r->frames[mid].uoffset <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* A referenced cache entry for frame i, loading it on a miss. */
static int reader_frame_get(struct strata_archive_reader *r, uint32_t i,
			    struct strata_cache_entry **ret, uint8_t **ret_private,
			    struct strata_error *err)
{
	struct strata_cache_entry *e;
	uint8_t *data;
	int rc;

	*ret = NULL;
	*ret_private = NULL;
	e = strata_frame_cache_get(r->cache, r->id, i);
	if (e && e->size == r->frames[i].usize) {
		*ret = e;
		return 0;
	}
	strata_frame_cache_put(r->cache, e);
	rc = reader_load(r, i, &data, err);
	if (rc < 0)
		return rc;
	e = strata_frame_cache_insert(r->cache, r->id, i, data, r->frames[i].usize);
	if (!e || e->size != r->frames[i].usize) {
		strata_frame_cache_put(r->cache, e);
		/* no memory for a cache entry, or another size under our key: go around the cache */
		rc = reader_load(r, i, &data, err);
		if (rc < 0)
			return rc;
		*ret_private = data;
		return 0;
	}
	*ret = e;
	return 0;
}

int strata_archive_reader_pread(struct strata_archive_reader *r, void *buf, size_t n, uint64_t off,
				struct strata_error *err)
{
	uint8_t *dst = buf;
	uint32_t i;
	int rc = 0;

	if (off > r->stream_size || n > r->stream_size - off)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"archive '%s': read past the end (offset %llu, %zu bytes)",
					r->name, (unsigned long long)off, n);
	if (!n)
		return 0;
	i = reader_find(r, off);
	while (n) {
		const struct strata_frame *f = &r->frames[i];
		struct strata_cache_entry *e;
		uint8_t *priv;
		uint64_t in_off = off - f->uoffset;
		size_t k = f->usize - in_off;

		if (k > n)
			k = n;
		rc = reader_frame_get(r, i, &e, &priv, err);
		if (rc < 0)
			break;
		memcpy(dst, (e ? e->data : priv) + in_off, k);
		strata_frame_cache_put(r->cache, e);
		free(priv);
		dst += k;
		off += k;
		n -= k;
		i++;
	}
	return rc;
}

int strata_archive_reader_check_frame(struct strata_archive_reader *r, uint32_t i,
				      struct strata_error *err)
{
	uint8_t *data;
	int rc;

	if (i >= r->nframes)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"archive '%s': no frame %u", r->name, i);
	rc = reader_load(r, i, &data, err);
	if (rc == 0)
		free(data);
	return rc;
}

static void *reader_readahead_main(void *arg)
{
	struct strata_archive_reader *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct strata_cache_entry *e;
		uint32_t i;

		while (!r->ra_stop && r->ra_next >= r->ra_end)
			pthread_cond_wait(&r->ra_cond, &r->lock);
		if (r->ra_stop)
			break;
		i = r->ra_next++;
		pthread_mutex_unlock(&r->lock);
		e = strata_frame_cache_get(r->cache, r->id, i);
		if (!e) {
			uint8_t *data;

			/* errors are reported by the pread that needs the frame */
			if (reader_load(r, i, &data, NULL) == 0)
				e = strata_frame_cache_insert(r->cache, r->id, i, data,
							      r->frames[i].usize);
		}
		strata_frame_cache_put(r->cache, e);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

void strata_archive_reader_readahead(struct strata_archive_reader *r, uint64_t off, unsigned count)
{
	uint32_t first;

	/* a private one-frame cache would only evict the frame being read */
	if (r->own_cache || !count || off >= r->stream_size)
		return;
	first = reader_find(r, off) + 1;
	if (first >= r->nframes)
		return;
	pthread_mutex_lock(&r->lock);
	if (!r->ra_started && !r->ra_stop) {
		if (pthread_create(&r->ra_thread, NULL, reader_readahead_main, r) == 0)
			r->ra_started = true;
		else
			r->ra_stop = true;   /* no thread: readahead stays off */
	}
	if (r->ra_started) {
		r->ra_next = first;
		r->ra_end = count > r->nframes - first ? r->nframes : first + count;
		pthread_cond_signal(&r->ra_cond);
	}
	pthread_mutex_unlock(&r->lock);
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
