/*
 * common.h - the error type, bounded helpers and safe path functions shared
 * by every strata module.  Depends on libc only.
 *
 * Error convention (all modules): a fallible function returns 0 on success
 * or a negative errno (-EIO, -EBADMSG for corrupt data, -ENOENT, -EACCES for
 * a wrong passphrase, -EAGAIN for a held lock).  It fills the caller's
 * struct strata_error once, with the first, most specific message; callers
 * up the stack do not overwrite it (strata_error_set keeps the first one).
 */
#ifndef STRATA_COMMON_H
#define STRATA_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Stable error kinds; cli/ maps each to an exit code (see docs/strata.1). */
enum strata_error_kind {
	STRATA_ERR_NONE = 0,
	STRATA_ERR_USAGE,     /* bad option, bad argument, bad config */
	STRATA_ERR_IO,        /* a system call failed */
	STRATA_ERR_CORRUPT,   /* damaged archive, catalog or key file */
	STRATA_ERR_AUTH,      /* wrong passphrase, missing key */
	STRATA_ERR_LOCKED,    /* another writer holds the repository lock */
	STRATA_ERR_NOT_FOUND, /* no such snapshot, path, repository */
	STRATA_ERR_INTERNAL,  /* a bug or an impossible state */
};

#define STRATA_ERROR_MSG_MAX 1024

struct strata_error {
	int code;                  /* negative errno, 0 when unset */
	enum strata_error_kind kind;
	char msg[STRATA_ERROR_MSG_MAX];
};

/* Zero an error before use (a zeroed struct is also fine). */
void strata_error_init(struct strata_error *err);

/*
 * Record an error unless one is already recorded (the first message wins).
 * 'code' must be negative; returns it so failing is one line:
 *     return strata_error_set(err, -EIO, STRATA_ERR_IO, "cannot open '%s': %s", p, strerror(errno));
 * err may be NULL.
 */
int strata_error_set(struct strata_error *err, int code,
		     enum strata_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int strata_error_setv(struct strata_error *err, int code,
		      enum strata_error_kind kind, const char *fmt, va_list ap);

/* Shorthand for a failed system call: kind IO, message "<what>: strerror(errno)". */
int strata_error_errno(struct strata_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A printable name for a kind: "usage", "io", "corrupt", ... */
const char *strata_error_kind_name(enum strata_error_kind kind);

/*
 * Quote arbitrary bytes for a message or a listing: printable ASCII is
 * kept, everything else (newline, tab, non-UTF-8, control bytes, backslash)
 * becomes a C escape (\n, \t, \\, \xNN).  Writes at most 'size' bytes
 * including the NUL; returns dst.  Truncates with "..." when it must.
 */
char *strata_quote(char *dst, size_t size, const char *src, size_t len);

/*
 * A growable byte buffer with a hard cap checked before each allocation.
 * Initialise with STRATA_BUF_INIT(cap) or zero (cap 0 = 1 GiB).
 */
struct strata_buf {
	uint8_t *data;
	size_t len;
	size_t alloc;
	size_t cap;
};
#define STRATA_BUF_INIT(c) { NULL, 0, 0, (c) }

/* Append n bytes; -ENOMEM, or -E2BIG when the cap would be exceeded. */
int strata_buf_append(struct strata_buf *b, const void *p, size_t n);
int strata_buf_printf(struct strata_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Reset length to 0 keeping memory. */
void strata_buf_reset(struct strata_buf *b);
/* Free memory; safe on a zeroed buffer. */
void strata_buf_release(struct strata_buf *b);

/*
 * A map from a (dev, ino) pair to a caller's index, for hardlink groups:
 * open addressing, grows at half full.  Initialise to zero.
 */
struct strata_inomap {
	struct strata_inomap_slot { uint64_t dev, ino; size_t val; bool used; } *slots;
	size_t n, cap;
};
/* The value for (dev, ino), or SIZE_MAX when absent. */
size_t strata_inomap_get(const struct strata_inomap *m, uint64_t dev, uint64_t ino);
/* Insert or replace; 0 or -ENOMEM. */
int strata_inomap_put(struct strata_inomap *m, uint64_t dev, uint64_t ino, size_t val);
void strata_inomap_release(struct strata_inomap *m);

/*
 * Make room for at least 'need' elements of 'size' bytes in the array *pv
 * whose capacity is *alloc, doubling from 16.  0, or -ENOMEM with the array
 * left as it was.  pv is the address of the array pointer.
 */
int strata_grow(void *pv, size_t *alloc, size_t need, size_t size);

/* Little-endian fixed-width encoders used by on-disk formats. */
static inline void strata_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t strata_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void strata_put_le64(uint8_t *p, uint64_t v)
{
	strata_put_le32(p, (uint32_t)v);
	strata_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t strata_get_le64(const uint8_t *p)
{
	return (uint64_t)strata_get_le32(p) | (uint64_t)strata_get_le32(p + 4) << 32;
}

/* Lowercase hex of n bytes into dst (2n+1 bytes). */
void strata_hex(char *dst, const uint8_t *src, size_t n);
/* Parse exactly 2n hex digits; -EINVAL otherwise. */
int strata_unhex(uint8_t *dst, size_t n, const char *src);

/*
 * Path safety for anything read from an archive or a catalog.  A relative
 * path is safe when it is non-empty, not absolute, has no "." or ".."
 * component, no empty component and no NUL before len.  Returns true/false.
 */
bool strata_path_is_safe(const char *path, size_t len);

/* Read/write all bytes, retrying EINTR and short counts. 0 or -errno. */
int strata_read_full(int fd, void *buf, size_t n);
int strata_pread_full(int fd, void *buf, size_t n, uint64_t off);
int strata_write_full(int fd, const void *buf, size_t n);
int strata_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);
/*
 * Long waits (the disk, a frame another thread reads from disk) announce
 * themselves with strata_will_block(), which calls the process's hook if
 * one is set: the mount's request loop then hands reading /dev/fuse to
 * another thread (fs/fs_loop.c).  The hook runs in the waiting thread and
 * must be cheap when it has nothing to do.
 */
void strata_set_block_hook(void (*hook)(void));
void strata_will_block(void);

/* Time helpers: nanoseconds since the epoch. */
int64_t strata_now_ns(void);
/*
 * Format a UTC time as "2026-11-23T020000Z" (no colon, sorts by time) into
 * dst of at least 20 bytes, or as ISO 8601 "2026-11-23T02:00:00Z" with iso.
 */
void strata_format_time(char *dst, size_t size, int64_t ns, bool iso);

/*
 * For a command that starts, does a little and exits (`strata run`, `strata
 * backup`): have the heap hold 'bytes' of memory that is already mapped, so
 * its mallocs do not fault in fresh pages one at a time.  On a
 * paravirtualised VM with shadow paging a first touch costs ~14 us a page,
 * a bulk MADV_POPULATE_WRITE under 1 us, and an hourly `strata run`
 * touched ~200 fresh heap pages.  It also keeps chunks up to 512 KiB
 * (zstd's tables for a small frame) on the heap rather than in fresh mmaps
 * and keeps 'bytes' at the heap's top across trims.  Best effort; call it
 * before starting threads (only the main arena is prefaulted).
 */
void strata_heap_prefault(size_t bytes);

/*
 * Lower the calling thread's priority by 'delta' nice levels (Linux nice
 * is per thread), for helpers that must not delay the threads a user
 * waits on.  Best effort: never above 19.
 */
void strata_thread_nice(int delta);

/* A macro's value as a string literal: STRATA_STR(3) is "3". */
#define STRATA_STR_(x) #x
#define STRATA_STR(x) STRATA_STR_(x)

/* Checked strtoull/strtoll over the whole string: 0 or -EINVAL/-ERANGE. */
int strata_parse_u64(const char *s, uint64_t *ret);
int strata_parse_i64(const char *s, int64_t *ret);
/* "256M", "1G", "4096", "64k": bytes, binary units. */
int strata_parse_size(const char *s, uint64_t *ret);

#endif
