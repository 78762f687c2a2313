/*
 * store.h - where strata's bytes live: the repository directory, its keys
 * and lock, and the archive container (DESIGN.md sections 3 and 4).
 *
 * An archive is one byte stream (a pax tar written by backup/) cut into
 * independent zstd frames, each with its content checksum, followed by a
 * seek table in zstd's seekable format:
 *
 *   [header: zstd skippable frame, magic 0x184D2A50, payload "STRATA\0\1",
 *            flags, 16-byte archive id, 32-byte salt]
 *   frame 0 .. frame N-1   zstd frames (plain), or AES-256-GCM sealed
 *                          zstd frames (encrypted): ciphertext || 16-byte tag
 *   [seek table: zstd skippable frame, magic 0x184D2A5E, per frame
 *    {compressed size u32le, decompressed size u32le, xxh64 low 32 bits u32le},
 *    footer {frame count u32le, descriptor 0x80, magic 0x8F92EAB1 u32le}]
 *
 * A plain archive is therefore a valid zstd stream: `zstd -dc A | tar -x`.
 * Encrypted frames: key = HKDF-SHA256(master key, salt, "strata archive v1"),
 * nonce = 12 bytes: frame index u64le || 0u32, AAD = archive id (16) ||
 * frame index u64le || last-frame flag (1 byte).  So frames cannot be
 * swapped, dropped or truncated unnoticed.
 *
 * Thread safety: a writer is used by one thread (it runs its own worker
 * threads inside).  A reader may be used by many threads at once.  A frame
 * cache is shared and internally locked.
 */
#ifndef STRATA_STORE_H
#define STRATA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define STRATA_KEY_LEN 32
#define STRATA_ARCHIVE_ID_LEN 16
#define STRATA_FRAME_MAX (8u << 20)   /* hard cap on one frame's decompressed size */

/* ---- repository ------------------------------------------------------ */

struct strata_repo;

struct strata_repo_create_options {
	/* NULL: unencrypted.  Otherwise the passphrase (not NUL-terminated). */
	const char *passphrase;
	size_t passphrase_len;
	/* Argon2id cost; 0 = defaults (t=3, m=64 MiB, p=1). Tests set small. */
	uint32_t kdf_t_cost;
	uint32_t kdf_m_cost_kib;
};

/*
 * Create REPO: the directory (0700; it may exist but must be empty),
 * strata.repo, archives/, and when encrypting a random master key sealed
 * with Argon2id(passphrase) into 'key' (0600).  Fails with -EEXIST
 * (usage kind) when a repository is already there.  Does not create the
 * catalog (that is catalog/'s job, at REPO/catalog.db).
 */
int strata_repo_create(const char *path, const struct strata_repo_create_options *opts,
		       struct strata_error *err);

/*
 * Open an existing repository: reads strata.repo, opens archives/.
 * -ENOENT (not-found) when path holds no repository; -EBADMSG (corrupt) on
 * a damaged strata.repo.  The returned handle owns its fds.
 */
int strata_repo_open(const char *path, struct strata_repo **ret, struct strata_error *err);
/* Release locks and fds; NULL is fine.  Wipes the master key from memory. */
void strata_repo_close(struct strata_repo *repo);

const char *strata_repo_path(const struct strata_repo *repo);
/* 32 hex chars, stable for the repository's life. */
const char *strata_repo_id(const struct strata_repo *repo);
bool strata_repo_encrypted(const struct strata_repo *repo);

/*
 * Unlock an encrypted repository with its passphrase: -EACCES with kind
 * auth and message "wrong passphrase for repository '<path>'" when the key
 * does not open.  A no-op returning 0 for an unencrypted repository.
 */
int strata_repo_unlock(struct strata_repo *repo, const char *pass, size_t len,
		       struct strata_error *err);
/* The master key after unlock, NULL when unencrypted or still locked. */
const uint8_t *strata_repo_master_key(const struct strata_repo *repo);

/*
 * The repository's write lock (flock on REPO/lock).  wait=false: -EAGAIN
 * with kind locked when another process holds it.  Released by
 * strata_repo_unlock_write or close.
 */
int strata_repo_lock_write(struct strata_repo *repo, bool wait, struct strata_error *err);
void strata_repo_unlock_write(struct strata_repo *repo);

/* fd of REPO/archives, owned by the repo; archive file names are relative to it. */
int strata_repo_archives_fd(const struct strata_repo *repo);

/* ---- frame tables ---------------------------------------------------- */

struct strata_frame {
	uint64_t coffset;   /* byte offset of the (sealed) frame in the file */
	uint64_t uoffset;   /* offset of its first byte in the uncompressed stream */
	uint32_t csize;     /* bytes in the file (including the GCM tag) */
	uint32_t usize;     /* decompressed bytes, <= STRATA_FRAME_MAX */
	uint32_t checksum;  /* low 32 bits of XXH64 of the decompressed bytes */
};

/* What a finished archive is: everything the catalog records about it. */
struct strata_archive_info {
	uint8_t id[STRATA_ARCHIVE_ID_LEN];
	char name[64];              /* file name inside archives/ */
	uint64_t file_size;         /* bytes on disk */
	uint64_t stream_size;       /* uncompressed bytes */
	uint8_t sha256[32];         /* of the whole file as on disk */
	bool encrypted;
	uint8_t salt[32];
	struct strata_frame *frames; /* owned by the info; free with _release */
	uint32_t nframes;
};
void strata_archive_info_release(struct strata_archive_info *info);

/*
 * Serialise a frame table for the catalog (packed little-endian, 28 bytes a
 * frame, coffset u64, uoffset u64, csize, usize, checksum) and parse it
 * back, validating that offsets are contiguous and sizes capped.
 */
int strata_frames_encode(const struct strata_frame *f, uint32_t n, uint8_t **ret, size_t *ret_len);
int strata_frames_decode(const uint8_t *p, size_t len, struct strata_frame **ret, uint32_t *ret_n,
			 struct strata_error *err);

/* ---- writer ---------------------------------------------------------- */

struct strata_archive_writer;

/* The zstd level of a backup that names none (strata backup --compression). */
#define STRATA_COMPRESSION_DEFAULT 1

struct strata_archive_writer_options {
	uint32_t frame_size;   /* target decompressed frame size; 0 = 1 MiB */
	int level;             /* zstd level; 0 = STRATA_COMPRESSION_DEFAULT */
	int threads;           /* compression workers; 0 = number of CPUs */
	const uint8_t *master_key; /* NULL: plain archive */
};

/*
 * Start a new archive in 'dirfd' (normally strata_repo_archives_fd) under a
 * temporary name; nothing is visible under its final name until _finish.
 * The final name is "<32 hex id>.tar.zst" (plain) or "<id>.tar.zst.sealed".
 */
int strata_archive_writer_open(int dirfd, const struct strata_archive_writer_options *opts,
			       struct strata_archive_writer **ret, struct strata_error *err);

/* Append bytes to the uncompressed stream.  Sticky: after a failure every call returns it. */
int strata_archive_writer_write(struct strata_archive_writer *w, const void *buf, size_t n,
				struct strata_error *err);

/*
 * The free part of the current frame's input buffer, for a caller that
 * wants to produce bytes in place (read(2) straight into it): *ret_buf
 * and *ret_len (>= 1) stay valid until the next call on w.  Appending
 * n <= *ret_len bytes that start at *ret_buf with _write then copies
 * nothing; anything else written first moves the window.  Sticky errors
 * as _write.
 */
int strata_archive_writer_reserve(struct strata_archive_writer *w, void **ret_buf, size_t *ret_len,
				  struct strata_error *err);

/*
 * End the current frame here if it holds any bytes, so the next byte
 * starts a new frame.  next: how large the next frame may grow.  While the
 * job being filled has room for twice that (and next is under half a
 * frame), the next frame shares its compression job, one hand-over to the
 * workers for many small frames; otherwise the job goes now and the next
 * frame starts a job of its own, where it can reach frame_size.  Backup
 * cuts before a large file (next = frame_size) so that file's data starts
 * at a frame boundary, and between runs of small files.
 */
int strata_archive_writer_cut(struct strata_archive_writer *w, uint32_t next,
			      struct strata_error *err);

/* Uncompressed bytes appended so far (the offset the next byte will have). */
uint64_t strata_archive_writer_offset(const struct strata_archive_writer *w);

/*
 * Flush all frames, write the seek table, fsync the file, rename it to its
 * final name and fsync the directory.  Fills *ret (caller releases it).
 * After _finish, free the writer with _free.
 */
int strata_archive_writer_finish(struct strata_archive_writer *w, struct strata_archive_info *ret,
				 struct strata_error *err);

/* Free; if not finished, stops the workers and unlinks the temporary file. NULL is fine. */
void strata_archive_writer_free(struct strata_archive_writer *w);

/* ---- frame cache ----------------------------------------------------- */

struct strata_frame_cache;

/* A bounded LRU of decompressed frames shared by readers. budget in bytes (0 = 64 MiB). */
int strata_frame_cache_new(uint64_t budget, struct strata_frame_cache **ret);
void strata_frame_cache_free(struct strata_frame_cache *c);
/*
 * Add one buffer, mapped and touched, to the cache's pool for small frames:
 * its size in bytes, or -ENOSPC when the pool is full or the budget
 * reached (-ENOMEM).  For a thread with time to spare (the mount, between
 * requests): on a VM a page's first touch can cost more than decompressing
 * it, and a fresh mount reading small files would pay it for every frame.
 */
int strata_frame_cache_warm_one(struct strata_frame_cache *c);

/* ---- reader ---------------------------------------------------------- */

struct strata_archive_reader;

/*
 * Open archive 'name' in dirfd.  The frame table comes from 'frames' when
 * given (the catalog's copy, which the reader takes a copy of) or else is
 * read from the file's seek table.  master_key is required for a sealed
 * archive (-EACCES/auth otherwise).  cache may be NULL (a private
 * one-frame cache is used).  Errors name the archive.
 */
int strata_archive_reader_open(int dirfd, const char *name, const uint8_t *master_key,
			       const struct strata_frame *frames, uint32_t nframes,
			       struct strata_frame_cache *cache,
			       struct strata_archive_reader **ret, struct strata_error *err);
void strata_archive_reader_close(struct strata_archive_reader *r);

uint64_t strata_archive_reader_stream_size(const struct strata_archive_reader *r);
uint32_t strata_archive_reader_nframes(const struct strata_archive_reader *r);
const struct strata_frame *strata_archive_reader_frames(const struct strata_archive_reader *r);
/* The archive id from the header. */
const uint8_t *strata_archive_reader_id(const struct strata_archive_reader *r);

/*
 * Read n bytes at uncompressed offset off into buf.  Every frame touched is
 * authenticated (sealed) and checksum-verified; a damaged frame is
 * -EBADMSG (corrupt) with "archive '<name>': frame <i>: <what>".  Reading
 * past the end is -EINVAL.  Thread-safe.
 */
int strata_archive_reader_pread(struct strata_archive_reader *r, void *buf, size_t n, uint64_t off,
				struct strata_error *err);

/*
 * Stream bytes in place, for a caller that passes them on without copying
 * them (the FUSE driver replies straight from the frame cache).  Holds the
 * frame until released.
 */
struct strata_frame_view {
	const uint8_t *data;
	size_t len;
	/* internal */
	struct strata_frame_cache *cache_;
	struct strata_cache_entry *entry_;
	uint8_t *private_;
};

/*
 * View the bytes at stream offset off: up to n of them, fewer where the
 * frame holding off ends.  The frame is loaded and verified like pread and
 * errors are pread's.  The view (ret->data, ret->len) stays valid until
 * strata_frame_view_release, also after the reader is closed.
 */
int strata_archive_reader_view(struct strata_archive_reader *r, uint64_t off, size_t n,
			       struct strata_frame_view *ret, struct strata_error *err);
/* Release a view (a zeroed one is fine); zeroes it. */
void strata_frame_view_release(struct strata_frame_view *v);

/* Open, authenticate and decompress frame i without caching it (verify). */
int strata_archive_reader_check_frame(struct strata_archive_reader *r, uint32_t i,
				      struct strata_error *err);

/*
 * Hint that the frames after 'off' will be read soon: decompress up to
 * 'count' following frames into the cache on a background thread.  Best
 * effort; never fails.
 */
void strata_archive_reader_readahead(struct strata_archive_reader *r, uint64_t off, unsigned count);

/*
 * Bytes [off, off + n) of the stream will be read soon: ask the kernel to
 * start reading the compressed frames that hold them (posix_fadvise
 * WILLNEED); returns at once.  Best effort.
 */
void strata_archive_reader_willneed(struct strata_archive_reader *r, uint64_t off, uint64_t n);

/*
 * Decompress the frames holding [off, off + n) into the shared cache on
 * the calling thread, skipping those already cached and those another
 * thread is loading (never waits for one).  A no-op with a private cache.
 * Best effort: errors are left for the pread that needs the frame.
 */
void strata_archive_reader_prefetch(struct strata_archive_reader *r, uint64_t off, uint64_t n);

/*
 * The frames wholly inside [off, off + n) will not be read again soon (a
 * streaming reader has passed them and the kernel caches what it got):
 * take them out of the shared cache, so their memory serves the next
 * frames instead of new pages.  Readers still copying keep theirs alive.
 */
void strata_archive_reader_drop(struct strata_archive_reader *r, uint64_t off, uint64_t n);

/* SHA-256 of a whole file in dirfd (verify compares it with the catalog). */
int strata_file_sha256(int dirfd, const char *name, uint8_t out[32], uint64_t *ret_size,
		       struct strata_error *err);

/* ---- small crypto helpers shared with backup/ and restore/ ------------ */

struct strata_sha256;
int strata_sha256_new(struct strata_sha256 **ret);
void strata_sha256_update(struct strata_sha256 *h, const void *p, size_t n);
void strata_sha256_final(struct strata_sha256 *h, uint8_t out[32]);  /* may be reused after */
void strata_sha256_free(struct strata_sha256 *h);

/* Fill buf with cryptographically random bytes. */
int strata_random(void *buf, size_t n);

#endif
