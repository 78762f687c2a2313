/*
 * store_reader.c - the shared frame cache and the random-access archive
 * reader (DESIGN.md section 4, layout in store.h).
 *
 * Cache.  A hash table plus an LRU list of decompressed frames keyed by
 * (archive id, frame index), under one mutex.  Entries are refcounted: an
 * entry evicted while a reader still copies from it leaves the table at
 * once (its bytes stop counting against the budget) and is freed by the
 * last strata_frame_cache_put.  A frame being loaded has a claim on the
 * cache's loading list: a reader that misses on a claimed frame waits for
 * that load instead of decompressing the frame a second time, and
 * prefetching skips it (single flight).
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
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <zstd.h>

#include "store.h"
#include "store_int.h"

#define CACHE_BUDGET_DEFAULT (64ull << 20)
#define DCTX_POOL_MAX 64
#define CACHE_SPARES 8                 /* buffers of freed frames kept */
#define CACHE_SPARE_MAX (8u << 20)     /* their bytes, at most (and budget / 8) */
#define CACHE_INBUFS 4                 /* compressed-input buffers kept */
/* Frames up to this size (runs of small files: 32 KiB plus the last
 * file; 99.7% of them on the bench tree) get buffers of exactly this
 * size, which the warm pool holds. */
#define WARM_SLOT (64u << 10)
#define CACHE_FRESH_MAX (4u << 20)     /* small frames in fresh memory, at most */

/* ---- frame cache ------------------------------------------------------------ */

/* A frame some thread is loading (it lives on that thread's stack). */
struct cache_claim {
	uint8_t id[STRATA_ARCHIVE_ID_LEN];
	uint32_t index;
	atomic_bool disk;          /* the loader waits for the disk */
	struct cache_claim *next;
};

struct cache_buf {
	uint8_t *p;
	size_t cap;
};

struct strata_frame_cache {
	pthread_mutex_t lock;
	pthread_cond_t loaded;                 /* broadcast when a claim ends */
	struct cache_claim *claims;            /* frames being loaded, not yet in the table */
	/*
	 * Buffers kept for the next loads: the data of freed frames, and the
	 * compressed input of finished loads.  A streaming read then reuses
	 * memory instead of faulting in new pages (a page fault per 4 KiB
	 * was a third of a cold sequential read's CPU time).  Bounded by
	 * CACHE_SPARE_MAX and CACHE_INBUFS; not counted in 'used'.
	 */
	struct cache_buf spare[CACHE_SPARES];
	unsigned nspare;
	uint64_t spare_bytes, spare_max;
	struct cache_buf inbuf[CACHE_INBUFS];
	unsigned ninbuf;
	/*
	 * Buffers of WARM_SLOT bytes whose pages are already mapped and
	 * touched (strata_frame_cache_warm_one, then every small frame's buffer
	 * when its entry goes).  Counted in the budget as if in use.
	 */
	uint8_t **warm;
	size_t nwarm, warm_cap;
	uint64_t held;                         /* the entries' buffers, allocated size */
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
	c->spare_max = c->budget / 8 < CACHE_SPARE_MAX ? c->budget / 8 : CACHE_SPARE_MAX;
	want = c->budget / (64u << 10);
	c->nbuckets = 64;
	while (c->nbuckets < want && c->nbuckets < (1u << 20))
		c->nbuckets <<= 1;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	c->warm_cap = (size_t)(c->budget / WARM_SLOT);
	c->warm = calloc(c->warm_cap ? c->warm_cap : 1, sizeof(*c->warm));
	if (!c->buckets || !c->warm || pthread_mutex_init(&c->lock, NULL)) {
		free(c->buckets);
		free(c->warm);
		free(c);
		return -ENOMEM;
	}
	if (pthread_cond_init(&c->loaded, NULL)) {
		pthread_mutex_destroy(&c->lock);
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

/* The memory a frame's buffer holds, which the budget bounds (frames of
 * small files sit in WARM_SLOT buffers). */
static uint64_t cache_held(const uint8_t *p)
{
	return p ? malloc_usable_size((void *)p) : 0;
}

static void cache_remove(struct strata_frame_cache *c, struct strata_cache_entry *e);

/* Room in the pool for one more buffer, within the budget.  c->lock held. */
static bool warm_room(const struct strata_frame_cache *c)
{
	return c->nwarm < c->warm_cap &&
	       c->held + (c->nwarm + 1) * (uint64_t)WARM_SLOT <= c->budget;
}

/* Keep a freed frame's buffer for a later load, or free it.  c->lock held. */
static void cache_spare_put(struct strata_frame_cache *c, uint8_t *p, size_t cap)
{
	if (p && cap <= WARM_SLOT && cache_held(p) >= WARM_SLOT && warm_room(c)) {
		c->warm[c->nwarm++] = p;  /* touched memory, big enough for any small frame */
		return;
	}
	if (p && c->nspare < CACHE_SPARES && c->spare_bytes + cap <= c->spare_max) {
		c->spare[c->nspare++] = (struct cache_buf){ p, cap };
		c->spare_bytes += cap;
		return;
	}
	free(p);
}

/*
 * malloc for a frame-sized buffer.  New memory is populated with one call
 * instead of a page fault per 4 KiB as the decompressor first writes it:
 * on a virtual machine a fault costs more than decompressing the page.
 */
static uint8_t *frame_alloc(size_t size)
{
	uint8_t *p = malloc(size);
#ifdef MADV_POPULATE_WRITE
	uintptr_t a, b;

	if (!p || size < (64u << 10))
		return p;
	a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	b = ((uintptr_t)p + size) & ~(uintptr_t)4095;
	if (a < b)
		(void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
#endif
	return p;
}

/* A buffer for a frame of 'size' bytes: a kept one of about that size, or a new one. */
static uint8_t *cache_spare_get(struct strata_frame_cache *c, size_t size)
{
	uint8_t *p = NULL;

	if (size <= WARM_SLOT) {
		pthread_mutex_lock(&c->lock);
		/*
		 * Without a touched buffer in the pool, reuse the oldest
		 * frame's memory once the cache holds CACHE_FRESH_MAX, not only
		 * at the budget: fresh memory costs ~13 us per 4 KiB page on
		 * this kind of VM (MADV_POPULATE_WRITE or huge pages no less),
		 * 0.4 ms per small frame, more than reading and decompressing
		 * it.  The cache grows past that with the pool the warming
		 * thread touches while the mount is idle.
		 */
		if (!c->nwarm && c->lru_tail &&
		    (c->held + WARM_SLOT > c->budget || c->held >= CACHE_FRESH_MAX))
			cache_remove(c, c->lru_tail);
		if (c->nwarm)
			p = c->warm[--c->nwarm];
		pthread_mutex_unlock(&c->lock);
		return p ? p : frame_alloc(WARM_SLOT);
	}
	pthread_mutex_lock(&c->lock);
	for (unsigned k = 0; k < c->nspare; k++) {
		if (c->spare[k].cap >= size && c->spare[k].cap - size <= size / 8 + 4096) {
			p = c->spare[k].p;
			c->spare_bytes -= c->spare[k].cap;
			c->spare[k] = c->spare[--c->nspare];
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return p ? p : frame_alloc(size);
}

/* A buffer of at least 'size' bytes for compressed input; *cap is its size. */
static uint8_t *cache_inbuf_get(struct strata_frame_cache *c, size_t size, size_t *cap)
{
	struct cache_buf b = { NULL, 0 };

	pthread_mutex_lock(&c->lock);
	if (c->ninbuf)
		b = c->inbuf[--c->ninbuf];
	pthread_mutex_unlock(&c->lock);
	if (b.cap < size) {
		free(b.p);
		b.cap = size;
		b.p = frame_alloc(size);
	}
	*cap = b.cap;
	return b.p;
}

static void cache_inbuf_put(struct strata_frame_cache *c, uint8_t *p, size_t cap)
{
	if (!p)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->ninbuf < CACHE_INBUFS) {
		c->inbuf[c->ninbuf++] = (struct cache_buf){ p, cap };
		p = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	free(p);
}

static void cache_entry_free(struct strata_frame_cache *c, struct strata_cache_entry *e)
{
	cache_spare_put(c, e->data, e->size);
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
	c->held -= cache_held(e->data);
	c->count--;
	if (!e->refs)
		cache_entry_free(c, e);
}

/* The entry for (id, index), referenced and made most recent; NULL on a miss.  c->lock held. */
static struct strata_cache_entry *cache_lookup(struct strata_frame_cache *c,
					       const uint8_t id[STRATA_ARCHIVE_ID_LEN],
					       uint32_t index)
{
	struct strata_cache_entry *e;

	for (e = c->buckets[cache_hash(c, id, index)]; e; e = e->hnext)
		if (e->key_index == index && !memcmp(e->key_id, id, STRATA_ARCHIVE_ID_LEN))
			break;
	if (e) {
		e->refs++;
		cache_lru_unlink(c, e);
		cache_lru_push(c, e);
	}
	return e;
}

struct strata_cache_entry *strata_frame_cache_get(struct strata_frame_cache *c,
						  const uint8_t id[STRATA_ARCHIVE_ID_LEN],
						  uint32_t index)
{
	struct strata_cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = cache_lookup(c, id, index);
	pthread_mutex_unlock(&c->lock);
	return e;
}

enum { CLAIM_HIT, CLAIM_LOAD, CLAIM_BUSY };

/*
 * Frame (id, index) of 'size' bytes: CLAIM_HIT with a referenced entry in
 * *ret, or CLAIM_LOAD with 'cl' on the loading list (the caller loads the
 * frame, inserts it, then calls cache_unclaim).  When another thread is
 * loading it: with 'wait', wait for that load to end and look again; else
 * CLAIM_BUSY.  An entry of another size under the key is a miss.
 */
static int cache_claim(struct strata_frame_cache *c, const uint8_t id[STRATA_ARCHIVE_ID_LEN],
		       uint32_t index, uint32_t size, bool wait, struct cache_claim *cl,
		       struct strata_cache_entry **ret)
{
	struct strata_cache_entry *e;
	struct cache_claim *o;
	bool announced = false;

	*ret = NULL;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		e = cache_lookup(c, id, index);
		if (e && e->size == size) {
			pthread_mutex_unlock(&c->lock);
			*ret = e;
			return CLAIM_HIT;
		}
		if (e)
			e->refs--;   /* a stale size: load and replace it */
		for (o = c->claims; o; o = o->next)
			if (o->index == index && !memcmp(o->id, id, STRATA_ARCHIVE_ID_LEN))
				break;
		if (!o)
			break;
		if (!wait) {
			pthread_mutex_unlock(&c->lock);
			return CLAIM_BUSY;
		}
		if (!announced && atomic_load(&o->disk)) {
			/* a wait for the disk: announced outside the lock, then
			 * look again (the load may be done) */
			announced = true;
			pthread_mutex_unlock(&c->lock);
			strata_will_block();
			pthread_mutex_lock(&c->lock);
			continue;
		}
		pthread_cond_wait(&c->loaded, &c->lock);
	}
	memcpy(cl->id, id, STRATA_ARCHIVE_ID_LEN);
	cl->index = index;
	atomic_init(&cl->disk, false);
	cl->next = c->claims;
	c->claims = cl;
	pthread_mutex_unlock(&c->lock);
	return CLAIM_LOAD;
}

/* End a claim (the frame is in the table, or its load failed) and wake the waiters. */
static void cache_unclaim(struct strata_frame_cache *c, struct cache_claim *cl)
{
	struct cache_claim **pp;

	pthread_mutex_lock(&c->lock);
	for (pp = &c->claims; *pp != cl; pp = &(*pp)->next)
		;
	*pp = cl->next;
	pthread_cond_broadcast(&c->loaded);
	pthread_mutex_unlock(&c->lock);
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
	c->held += cache_held(data);
	c->count++;
	/* warm buffers go first: evicting a small frame may only move its buffer there */
	while (c->held + c->nwarm * (uint64_t)WARM_SLOT > c->budget && (c->nwarm || c->lru_tail)) {
		if (c->nwarm)
			free(c->warm[--c->nwarm]);
		else
			cache_remove(c, c->lru_tail);
	}
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
		cache_entry_free(c, e);
	pthread_mutex_unlock(&c->lock);
}

int strata_frame_cache_warm_one(struct strata_frame_cache *c)
{
	uint8_t *p;
	bool room;

	pthread_mutex_lock(&c->lock);
	room = warm_room(c);
	pthread_mutex_unlock(&c->lock);
	if (!room)
		return -ENOSPC;
	p = frame_alloc(WARM_SLOT);
	if (!p)
		return -ENOMEM;
	/* populated, and touched once: the first write to a page is what costs */
	for (size_t o = 0; o < WARM_SLOT; o += 4096)
		p[o] = 0;
	pthread_mutex_lock(&c->lock);
	room = warm_room(c);
	if (room)
		c->warm[c->nwarm++] = p;
	pthread_mutex_unlock(&c->lock);
	if (!room) {
		free(p);
		return -ENOSPC;
	}
	return WARM_SLOT;
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
	while (c->nspare)
		free(c->spare[--c->nspare].p);
	while (c->nwarm)
		free(c->warm[--c->nwarm]);
	free(c->warm);
	while (c->ninbuf)
		free(c->inbuf[--c->ninbuf].p);
	pthread_cond_destroy(&c->loaded);
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
	    memcmp(h + 8, strata_header_sig, sizeof(strata_header_sig)))
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
		rc = strata_frames_check(frames, nframes, r->file_size, what, err);
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
 * Read n bytes at off: first without waiting for the disk (RWF_NOWAIT);
 * if they are not all in the page cache, mark the claim (others waiting
 * for this frame then know it is the disk) and say strata_will_block()
 * before the read that waits.
 */
static int reader_pread_frame(struct strata_archive_reader *r, struct cache_claim *cl, void *buf,
			      size_t n, uint64_t off)
{
	struct iovec iov = { .iov_base = buf, .iov_len = n };
	ssize_t got = preadv2(r->fd, &iov, 1, (off_t)off, RWF_NOWAIT);

	if (got == (ssize_t)n)
		return 0;
	if (got < 0)
		got = 0;   /* EAGAIN, or unsupported: the blocking read reports real errors */
	if (cl)
		atomic_store(&cl->disk, true);
	strata_will_block();
	return strata_pread_full(r->fd, (uint8_t *)buf + got, n - (size_t)got, off + (uint64_t)got);
}

/*
 * Read, authenticate, check and decompress frame i into a new buffer of
 * frames[i].usize bytes (the caller frees it); cl, the
 * claim the load is made under, or NULL.
 */
static int reader_load(struct strata_archive_reader *r, uint32_t i, struct cache_claim *cl,
		       uint8_t **ret, struct strata_error *err)
{
	const struct strata_frame *f = &r->frames[i];
	uint8_t *in = NULL, *out = NULL;
	ZSTD_DCtx *d = NULL;
	unsigned long long fcs;
	size_t zlen = f->csize, got, incap = 0;
	int rc;

	in = cache_inbuf_get(r->cache, f->csize, &incap);
	out = cache_spare_get(r->cache, f->usize);
	if (!in || !out) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = reader_pread_frame(r, cl, in, f->csize, f->coffset);
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
	cache_inbuf_put(r->cache, in, incap);
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
	struct cache_claim cl;
	uint8_t *data;
	int rc;

	*ret = NULL;
	*ret_private = NULL;
	if (cache_claim(r->cache, r->id, i, r->frames[i].usize, true, &cl, &e) == CLAIM_HIT) {
		*ret = e;
		return 0;
	}
	rc = reader_load(r, i, &cl, &data, err);
	if (rc < 0) {
		cache_unclaim(r->cache, &cl);
		return rc;
	}
	e = strata_frame_cache_insert(r->cache, r->id, i, data, r->frames[i].usize);
	cache_unclaim(r->cache, &cl);
	if (!e || e->size != r->frames[i].usize) {
		strata_frame_cache_put(r->cache, e);
		/* no memory for a cache entry, or another size under our key: go around the cache */
		rc = reader_load(r, i, NULL, &data, err);
		if (rc < 0)
			return rc;
		*ret_private = data;
		return 0;
	}
	*ret = e;
	return 0;
}

/* [off, off + n) beyond the stream: the error, and true. */
static bool past_end(const struct strata_archive_reader *r, uint64_t off, size_t n,
		     struct strata_error *err)
{
	if (off <= r->stream_size && n <= r->stream_size - off)
		return false;
	strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
			 "archive '%s': read past the end (offset %llu, %zu bytes)", r->name,
			 (unsigned long long)off, n);
	return true;
}

int strata_archive_reader_pread(struct strata_archive_reader *r, void *buf, size_t n, uint64_t off,
				struct strata_error *err)
{
	uint8_t *dst = buf;
	uint32_t i;
	int rc = 0;

	if (past_end(r, off, n, err))
		return -EINVAL;
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

int strata_archive_reader_view(struct strata_archive_reader *r, uint64_t off, size_t n,
			       struct strata_frame_view *ret, struct strata_error *err)
{
	const struct strata_frame *f;
	struct strata_cache_entry *e;
	uint8_t *priv;
	uint32_t i;
	int rc;

	memset(ret, 0, sizeof(*ret));
	if (past_end(r, off, n, err))
		return -EINVAL;
	if (!n)
		return 0;
	i = reader_find(r, off);
	f = &r->frames[i];
	rc = reader_frame_get(r, i, &e, &priv, err);
	if (rc < 0)
		return rc;
	ret->data = (e ? e->data : priv) + (off - f->uoffset);
	ret->len = f->usize - (off - f->uoffset);
	if (ret->len > n)
		ret->len = n;
	ret->cache_ = r->cache;
	ret->entry_ = e;
	ret->private_ = priv;
	return 0;
}

void strata_frame_view_release(struct strata_frame_view *v)
{
	if (v->entry_)
		strata_frame_cache_put(v->cache_, v->entry_);
	free(v->private_);
	memset(v, 0, sizeof(*v));
}

int strata_archive_reader_check_frame(struct strata_archive_reader *r, uint32_t i,
				      struct strata_error *err)
{
	uint8_t *data;
	int rc;

	if (i >= r->nframes)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"archive '%s': no frame %u", r->name, i);
	rc = reader_load(r, i, NULL, &data, err);
	if (rc == 0)
		free(data);
	return rc;
}

/*
 * Load frame i into the cache unless it is there or another thread is
 * loading it; never waits for another load.  Returns a referenced entry or
 * NULL.  Errors are left for the pread that needs the frame.
 */
static struct strata_cache_entry *reader_prefetch_frame(struct strata_archive_reader *r, uint32_t i)
{
	struct strata_cache_entry *e;
	struct cache_claim cl;
	uint8_t *data;

	if (cache_claim(r->cache, r->id, i, r->frames[i].usize, false, &cl, &e) != CLAIM_LOAD)
		return e;
	if (reader_load(r, i, &cl, &data, NULL) == 0)
		e = strata_frame_cache_insert(r->cache, r->id, i, data, r->frames[i].usize);
	cache_unclaim(r->cache, &cl);
	return e;
}

/* The frames holding [off, off + n), clipped to the stream; false when empty. */
static bool reader_span(const struct strata_archive_reader *r, uint64_t off, uint64_t n,
			uint32_t *first, uint32_t *last)
{
	if (!n || off >= r->stream_size)
		return false;
	if (n > r->stream_size - off)
		n = r->stream_size - off;
	*first = reader_find(r, off);
	*last = reader_find(r, off + n - 1);
	return true;
}

void strata_archive_reader_willneed(struct strata_archive_reader *r, uint64_t off, uint64_t n)
{
	uint64_t from, to;
	uint32_t a, b;

	if (!reader_span(r, off, n, &a, &b))
		return;
	from = r->frames[a].coffset;
	to = r->frames[b].coffset + r->frames[b].csize;
	(void)posix_fadvise(r->fd, (off_t)from, (off_t)(to - from), POSIX_FADV_WILLNEED);
}

void strata_archive_reader_prefetch(struct strata_archive_reader *r, uint64_t off, uint64_t n)
{
	uint32_t a, b;

	/* a private one-frame cache would only evict the frame being read */
	if (r->own_cache || !reader_span(r, off, n, &a, &b))
		return;
	for (uint32_t i = a; i <= b; i++)
		strata_frame_cache_put(r->cache, reader_prefetch_frame(r, i));
}

void strata_archive_reader_drop(struct strata_archive_reader *r, uint64_t off, uint64_t n)
{
	struct strata_frame_cache *c = r->cache;
	uint32_t a, b;

	if (r->own_cache || !reader_span(r, off, n, &a, &b))
		return;
	/* only frames wholly inside the range */
	if (r->frames[a].uoffset < off)
		a++;
	if (off + n < r->frames[b].uoffset + r->frames[b].usize) {
		if (b == 0)
			return;
		b--;
	}
	pthread_mutex_lock(&c->lock);
	for (uint32_t i = a; i <= b && a <= b; i++) {
		struct strata_cache_entry *e = cache_lookup(c, r->id, i);

		if (e) {
			e->refs--;
			cache_remove(c, e);
		}
	}
	pthread_mutex_unlock(&c->lock);
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
		e = reader_prefetch_frame(r, i);
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
