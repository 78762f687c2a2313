/*
 * fs_prefetch.c - open files and read-ahead.  A sequential read of a big
 * file should decompress the next frames on another core while the kernel
 * copies this one (issue 3: cold reads at >= 0.8 x zstd -d).  One worker
 * thread per mount takes the newest hint and reads one byte at each MiB of
 * the range ahead through restore's reader, which leaves those frames
 * decompressed in the shared frame cache; the read that then needs them is
 * a cache hit.  Frames of big files are 1 MiB and start at the file's data
 * (backup cuts a frame before a large file), so one byte per MiB touches
 * each frame once.  Hints are dropped when a newer one arrives; errors are
 * left for the read that needs the frame to report.
 *
 * Locking: pf.lock guards the pending job; a job holds a reference to its
 * fs_file so a release during read-ahead does not free the entry.
 */
#include "fs_int.h"

#include <stdlib.h>

#define RA_STEP (1u << 20)
#define RA_WINDOW (4u << 20)     /* how far ahead of the reader */
#define RA_MIN_READ (32u << 10)  /* smaller reads are not a streaming copy */

void fs_file_unref(struct fs_file *f)
{
	if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	strata_entry_list_release(&f->list);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static void *prefetch_main(void *arg)
{
	struct fs *fs = arg;
	struct fs_prefetch *pf = &fs->pf;
	uint8_t byte;

	pthread_mutex_lock(&pf->lock);
	for (;;) {
		struct fs_file *f;
		uint64_t o, to;

		while (!pf->stop && !pf->f)
			pthread_cond_wait(&pf->cond, &pf->lock);
		if (pf->stop)
			break;
		f = pf->f;
		o = pf->from;
		to = pf->to;
		pf->f = NULL;
		while (o < to && !pf->stop && !pf->f) {
			struct strata_catalog *cat;

			pthread_mutex_unlock(&pf->lock);
			cat = fs_cat_get(fs);
			if (cat) {
				(void)strata_reader_pread(fs->reader, cat, f->e, &byte, 1, o, NULL);
				fs_cat_put(fs, cat);
			}
			o += RA_STEP;
			pthread_mutex_lock(&pf->lock);
		}
		pthread_mutex_unlock(&pf->lock);
		fs_file_unref(f);
		pthread_mutex_lock(&pf->lock);
	}
	pthread_mutex_unlock(&pf->lock);
	return NULL;
}

void fs_prefetch_init(struct fs *fs)
{
	struct fs_prefetch *pf = &fs->pf;

	pthread_mutex_init(&pf->lock, NULL);
	pthread_cond_init(&pf->cond, NULL);
	pf->started = false;
	pf->stop = false;
	pf->f = NULL;
}

void fs_prefetch_release(struct fs *fs)
{
	struct fs_prefetch *pf = &fs->pf;
	struct fs_file *f;

	pthread_mutex_lock(&pf->lock);
	pf->stop = true;
	f = pf->f;
	pf->f = NULL;
	pthread_cond_signal(&pf->cond);
	pthread_mutex_unlock(&pf->lock);
	if (pf->started)
		pthread_join(pf->thread, NULL);
	pf->started = false;
	fs_file_unref(f);
	pthread_cond_destroy(&pf->cond);
	pthread_mutex_destroy(&pf->lock);
}

void fs_prefetch_hint(struct fs *fs, struct fs_file *f, uint64_t off, size_t n)
{
	struct fs_prefetch *pf = &fs->pf;
	const struct strata_entry *e = f->e;
	uint64_t end = off + n, from, to;
	struct fs_file *old = NULL;
	bool sequential = off == f->next_off;

	f->next_off = end;
	if (!sequential || n < RA_MIN_READ || end >= e->size || e->sparse)
		return;
	/* Ask again once the reader is within half a window of the end. */
	if (f->ra_until > end + RA_WINDOW / 2)
		return;
	/* The first MiB boundary from the end of this read on: the next frame. */
	from = (end + RA_STEP - 1) / RA_STEP * RA_STEP;
	if (from < f->ra_until)
		from = f->ra_until;
	to = end + RA_WINDOW < e->size ? end + RA_WINDOW : e->size;
	if (from >= to)
		return;
	f->ra_until = to;
	pthread_mutex_lock(&pf->lock);
	if (pf->stop) {
		pthread_mutex_unlock(&pf->lock);
		return;
	}
	if (!pf->started) {
		if (pthread_create(&pf->thread, NULL, prefetch_main, fs) != 0) {
			pf->stop = true;  /* no thread: no read-ahead */
			pthread_mutex_unlock(&pf->lock);
			return;
		}
		pf->started = true;
	}
	old = pf->f;
	atomic_fetch_add(&f->refs, 1);
	pf->f = f;
	pf->from = from;
	pf->to = to;
	pthread_cond_signal(&pf->cond);
	pthread_mutex_unlock(&pf->lock);
	fs_file_unref(old);
}

