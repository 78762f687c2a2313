/*
 * fs_prefetch.c - open files and read-ahead.  A sequential read of a big
 * file should decompress the next frames on another core while the kernel
 * copies this one (issue 3: cold reads at >= 0.8 x zstd -d).  The kernel's
 * own readahead (raised for the mount, see fs_mount.c) already sends the
 * next requests in parallel; on top of that one worker thread per mount
 * takes the newest hint, asks the kernel to read the compressed frames of
 * the next RA_IO_WINDOW bytes from disk in the background, and decompresses
 * the frames of the next window into the shared frame cache through
 * restore's reader, so the request that then needs them is a cache hit.
 * Frames the reader has left behind are dropped from the cache: the
 * kernel keeps what it got (keep_cache), and the next frames then reuse
 * their memory instead of faulting in new pages.
 * Frames another thread is loading are skipped, never waited for.  Hints
 * are dropped when a newer one arrives; errors are left for the read that
 * needs the frame to report.
 *
 * Locking: pf.lock guards the pending job; a job holds a reference to its
 * fs_file so a release during read-ahead does not free the entry.
 */
#include "fs_int.h"

#include <stdlib.h>

#define RA_STEP (1u << 20)        /* decompressed per step; a newer hint waits at most this */
#define RA_WINDOW (8u << 20)      /* decompressed ahead of the reader (at most) */
#define RA_IO_WINDOW (32u << 20)  /* read from disk ahead of the reader */
#define RA_SLACK (8u << 20)       /* parallel requests arrive a little out of order */
#define RA_MIN_READ (32u << 10)   /* smaller reads are not a streaming copy */
/* Parallel requests trail the newest by less than the kernel's readahead. */
#define RA_DROP_LAG ((uint64_t)FS_READ_AHEAD_KB << 10)

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

	pthread_mutex_lock(&pf->lock);
	for (;;) {
		struct strata_catalog *cat;
		struct fs_file *f;
		uint64_t o, to, io_from, io_to;

		while (!pf->stop && !pf->f)
			pthread_cond_wait(&pf->cond, &pf->lock);
		if (pf->stop)
			break;
		f = pf->f;
		o = pf->from;
		to = pf->to;
		io_from = pf->io_from;
		io_to = pf->io_to;
		pf->f = NULL;
		pthread_mutex_unlock(&pf->lock);
		cat = fs_cat_get(fs);
		if (cat && io_from < io_to)
			strata_reader_prefetch(fs->reader, cat, f->e, io_from, io_to - io_from,
					       false);
		pthread_mutex_lock(&pf->lock);
		while (cat && o < to && !pf->stop && !pf->f) {
			uint64_t k = to - o < RA_STEP ? to - o : RA_STEP;

			pthread_mutex_unlock(&pf->lock);
			strata_reader_prefetch(fs->reader, cat, f->e, o, k, true);
			o += k;
			pthread_mutex_lock(&pf->lock);
		}
		pthread_mutex_unlock(&pf->lock);
		fs_cat_put(fs, cat);
		fs_file_unref(f);
		pthread_mutex_lock(&pf->lock);
	}
	pthread_mutex_unlock(&pf->lock);
	return NULL;
}

void fs_prefetch_init(struct fs *fs)
{
	struct fs_prefetch *pf = &fs->pf;
	uint64_t budget = fs->opts.cache_size ? fs->opts.cache_size : FS_DEFAULT_CACHE;

	pthread_mutex_init(&pf->lock, NULL);
	pthread_cond_init(&pf->cond, NULL);
	pf->started = false;
	pf->stop = false;
	pf->f = NULL;
	/* Frames decompressed ahead must not evict the ones being read. */
	pf->window = budget / 4 < RA_WINDOW ? budget / 4 : RA_WINDOW;
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

void fs_prefetch_hint(struct fs *fs, struct fs_file *f, uint64_t off, size_t n,
		      uint64_t *ret_drop_from, uint64_t *ret_drop_to)
{
	struct fs_prefetch *pf = &fs->pf;
	const struct strata_entry *e = f->e;
	uint64_t end = off + n, from = 0, to = 0, io_from = 0, io_to = 0;
	struct fs_file *old = NULL;
	bool sequential = off + RA_SLACK >= f->next_off && off <= f->next_off + RA_SLACK;

	if (!sequential || end > f->next_off)
		f->next_off = end;
	*ret_drop_from = *ret_drop_to = 0;
	if (!sequential || n < RA_MIN_READ || e->sparse)
		return;
	/*
	 * Frames well behind a streaming reader are in the kernel's cache.
	 * Only frames wholly inside a range are dropped, so each range starts
	 * a largest frame before the end of the last one: a frame the last
	 * range cut is inside this one.
	 */
	if (off > f->drop_until + RA_DROP_LAG) {
		*ret_drop_from = f->drop_until > STRATA_FRAME_MAX ?
					 f->drop_until - STRATA_FRAME_MAX : 0;
		*ret_drop_to = off - RA_DROP_LAG;
		f->drop_until = *ret_drop_to;
	}
	if (end >= e->size)
		return;
	/* Ask again once the reader is within half a window of the end. */
	if (f->ra_until <= end + pf->window / 2) {
		from = end > f->ra_until ? end : f->ra_until;
		to = e->size - end > pf->window ? end + pf->window : e->size;
		f->ra_until = to;
	}
	if (f->io_until <= end + RA_IO_WINDOW / 2) {
		io_from = end > f->io_until ? end : f->io_until;
		io_to = e->size - end > RA_IO_WINDOW ? end + RA_IO_WINDOW : e->size;
		f->io_until = io_to;
	}
	if (from >= to && io_from >= io_to)
		return;
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
	if (old == f) {
		/* not taken yet: keep what it asked for and this hint does not */
		if (from >= to) {
			from = pf->from;
			to = pf->to;
		}
		if (io_from >= io_to) {
			io_from = pf->io_from;
			io_to = pf->io_to;
		}
	}
	atomic_fetch_add(&f->refs, 1);
	pf->f = f;
	pf->from = from;
	pf->to = to;
	pf->io_from = io_from;
	pf->io_to = io_to;
	pthread_cond_signal(&pf->cond);
	pthread_mutex_unlock(&pf->lock);
	fs_file_unref(old);
}
