/*
 * restore.h - reading entries back: random access to a version's content,
 * restore to disk with full metadata, and verification.
 *
 * Content reads go straight to the archive holding the version's bytes
 * (catalog: archive, data_offset, sparse map); no tar parsing is needed on
 * the hot path.  Restore writes through libarchive's archive_write_disk
 * with the secure flags (no "..", no absolute paths, no writes through
 * symlinks), so a hostile catalog or archive cannot write outside DIR.
 */
#ifndef STRATA_RESTORE_H
#define STRATA_RESTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "common.h"
#include "store.h"

/* ---- content reader --------------------------------------------------- */

struct strata_reader;

/*
 * A reader maps catalog archive ids to open archive readers (opened on
 * first use, kept open).  Thread-safe when each thread passes its own
 * catalog handle to the calls below.  cache may be NULL.
 */
int strata_reader_new(struct strata_repo *repo, struct strata_frame_cache *cache,
		      struct strata_reader **ret, struct strata_error *err);
void strata_reader_free(struct strata_reader *rd);

/*
 * Sequential consumers (restore, verify) ask the reader to decompress the
 * next 'frames' frames of an archive on a background thread after each
 * read, so decompression overlaps with their own work.  Needs a shared
 * cache (strata_reader_new with cache != NULL); 0 turns it off (default).
 */
void strata_reader_set_readahead(struct strata_reader *rd, unsigned frames);

/*
 * Read up to n bytes of entry e's logical content at offset off (holes of
 * sparse files read as zeros).  Returns bytes read (0 at EOF) or a negative
 * errno; a damaged frame is -EBADMSG with a message naming the archive.
 */
int64_t strata_reader_pread(struct strata_reader *rd, struct strata_catalog *cat,
			    const struct strata_entry *e, void *buf, size_t n, uint64_t off,
			    struct strata_error *err);

/*
 * Entry e's content at off in place, without copying: up to n bytes, fewer
 * where a frame ends, in *ret (release with strata_frame_view_release).
 * Returns the bytes viewed (0 at EOF), -ENOTSUP for a sparse file (use
 * strata_reader_pread), or an error as strata_reader_pread.
 */
int64_t strata_reader_view(struct strata_reader *rd, struct strata_catalog *cat,
			   const struct strata_entry *e, uint64_t off, size_t n,
			   struct strata_frame_view *ret, struct strata_error *err);

/*
 * Bytes [off, off + n) of entry e's content will be read soon.  decompress
 * false: start reading their compressed frames from disk in the background
 * and return at once; true: decompress those frames into the shared cache
 * on the calling thread (frames cached or being loaded by another thread
 * are skipped).  A no-op for sparse files.  Best effort: errors are left
 * for the read that needs the bytes.
 */
void strata_reader_prefetch(struct strata_reader *rd, struct strata_catalog *cat,
			    const struct strata_entry *e, uint64_t off, uint64_t n,
			    bool decompress);

/*
 * Bytes [off, off + n) of entry e's content will not be read again soon:
 * drop the frames that hold only them from the shared cache (a no-op for
 * sparse files).
 */
void strata_reader_drop(struct strata_reader *rd, struct strata_catalog *cat,
			const struct strata_entry *e, uint64_t off, uint64_t n);

/* ---- restore ---------------------------------------------------------- */

struct strata_restore_options {
	const char *const *paths;   /* subtrees to restore (relative to the snapshot root), NULL = all */
	bool no_owner;              /* do not chown (default: chown when root) */
	bool overwrite;             /* replace existing files in the target */
	void (*warn)(void *ctx, const char *msg);
	void (*progress)(void *ctx, uint64_t entries, uint64_t bytes, const char *path);
	void *ctx;
};

struct strata_restore_stats {
	uint64_t entries;
	uint64_t bytes;
	uint64_t errors;            /* entries that could not be restored (each reported via warn) */
};

/*
 * Restore snapshot 'snap' into directory 'target' (created if missing).
 * Entries whose content is damaged are reported through warn, counted,
 * and the rest still restores; the return is then -EBADMSG (corrupt) naming
 * the first damaged file and archive.
 */
int strata_restore_run(struct strata_repo *repo, struct strata_catalog *cat,
		       const struct strata_snapshot *snap, const char *target,
		       const struct strata_restore_options *opts, struct strata_restore_stats *ret,
		       struct strata_error *err);

/* ---- verify ----------------------------------------------------------- */

struct strata_verify_options {
	bool read_data;             /* open every frame and check every file's SHA-256 */
	int64_t snapshot;           /* 0 = the whole repository */
	void (*problem)(void *ctx, const char *msg);  /* one line per problem found */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
};

struct strata_verify_stats {
	uint64_t archives, frames, files, bytes, problems;
};

/*
 * Check the catalog (integrity_check), every archive present with the
 * recorded size (and, with read_data, its SHA-256, every frame and every
 * stored file's content hash).  Returns 0 when nothing is wrong, else
 * -EBADMSG (corrupt) with the first problem; all problems go to 'problem'.
 */
int strata_verify_run(struct strata_repo *repo, struct strata_catalog *cat,
		      const struct strata_verify_options *opts, struct strata_verify_stats *ret,
		      struct strata_error *err);

#endif
