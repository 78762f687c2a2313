/*
 * common.c - error recording, quoting, bounded buffers, fd and time helpers.
 */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void strata_error_init(struct strata_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

int strata_error_setv(struct strata_error *err, int code,
		      enum strata_error_kind kind, const char *fmt, va_list ap)
{
	if (code >= 0)
		code = -EIO;
	if (!err || err->code != 0)
		return code;
	err->code = code;
	err->kind = kind;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int strata_error_set(struct strata_error *err, int code,
		     enum strata_error_kind kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = strata_error_setv(err, code, kind, fmt, ap);
	va_end(ap);
	return code;
}

int strata_error_errno(struct strata_error *err, int errnum, const char *fmt, ...)
{
	char what[STRATA_ERROR_MSG_MAX / 2];
	va_list ap;

	if (errnum <= 0)
		errnum = EIO;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return strata_error_set(err, -errnum, STRATA_ERR_IO, "%s: %s", what,
				strerror(errnum));
}

const char *strata_error_kind_name(enum strata_error_kind kind)
{
	switch (kind) {
	case STRATA_ERR_NONE: return "none";
	case STRATA_ERR_USAGE: return "usage";
	case STRATA_ERR_IO: return "io";
	case STRATA_ERR_CORRUPT: return "corrupt";
	case STRATA_ERR_AUTH: return "auth";
	case STRATA_ERR_LOCKED: return "locked";
	case STRATA_ERR_NOT_FOUND: return "not-found";
	case STRATA_ERR_INTERNAL: return "internal";
	}
	return "internal";
}

char *strata_quote(char *dst, size_t size, const char *src, size_t len)
{
	size_t o = 0;

	if (size == 0)
		return dst;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char tmp[5];
		size_t n;

		if (c == '\n')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\n");
		else if (c == '\t')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\t");
		else if (c == '\\')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else {
			tmp[0] = (char)c;
			tmp[1] = '\0';
			n = 1;
		}
		if (o + n + 4 > size) {
			if (size >= 4) {
				o = o < size - 4 ? o : size - 4;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(dst + o, tmp, n);
		o += n;
	}
	dst[o < size ? o : size - 1] = '\0';
	return dst;
}

int strata_buf_append(struct strata_buf *b, const void *p, size_t n)
{
	size_t cap = b->cap ? b->cap : (size_t)1 << 30;

	if (n > cap || b->len > cap - n)
		return -E2BIG;
	if (b->len + n + 1 > b->alloc) {
		size_t na = b->alloc ? b->alloc : 256;
		uint8_t *nd;

		while (na < b->len + n + 1)
			na *= 2;
		nd = realloc(b->data, na);
		if (!nd)
			return -ENOMEM;
		b->data = nd;
		b->alloc = na;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return 0;
}

int strata_buf_printf(struct strata_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return strata_buf_append(b, small, (size_t)n);
	{
		char *big = malloc((size_t)n + 1);

		if (!big)
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		r = strata_buf_append(b, big, (size_t)n);
		free(big);
	}
	return r;
}

void strata_buf_reset(struct strata_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void strata_buf_release(struct strata_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

void strata_hex(char *dst, const uint8_t *src, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 15];
	}
	dst[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int strata_unhex(uint8_t *dst, size_t n, const char *src)
{
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (!src[2 * i] || !src[2 * i + 1])
			return -EINVAL;
		hi = hexval(src[2 * i]);
		lo = hexval(src[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		dst[i] = (uint8_t)(hi << 4 | lo);
	}
	return src[2 * n] == '\0' ? 0 : -EINVAL;
}

bool strata_path_is_safe(const char *path, size_t len)
{
	size_t start = 0;

	if (len == 0 || path[0] == '/')
		return false;
	if (memchr(path, '\0', len))
		return false;
	while (start <= len) {
		const char *slash = memchr(path + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - path) : len;
		size_t clen = end - start;

		if (clen == 0)
			return false;
		if (clen == 1 && path[start] == '.')
			return false;
		if (clen == 2 && path[start] == '.' && path[start + 1] == '.')
			return false;
		start = end + 1;
		if (!slash)
			break;
	}
	return true;
}

int strata_read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int strata_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static void (*_Atomic block_hook)(void);

void strata_set_block_hook(void (*hook)(void))
{
	atomic_store(&block_hook, hook);
}

void strata_will_block(void)
{
	void (*hook)(void) = atomic_load(&block_hook);

	if (hook)
		hook();
}

int strata_write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = write(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int strata_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = pwrite(fd, p, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int64_t strata_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void strata_format_time(char *dst, size_t size, int64_t ns, bool iso)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (ns < 0 && ns % 1000000000)
		t--;
	gmtime_r(&t, &tm);
	strftime(dst, size, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H%M%SZ", &tm);
}

int strata_parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int strata_parse_i64(const char *s, int64_t *ret)
{
	long long v;
	char *end;

	if (!s || !*s || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int strata_parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' && shift)
		end++;
	if ((*end == 'B' || *end == 'b') && shift)
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (ULLONG_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

static size_t inomap_hash(uint64_t dev, uint64_t ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull ^ dev * 0xc2b2ae3d27d4eb4full;

	return (size_t)(h ^ (h >> 29));
}

size_t strata_inomap_get(const struct strata_inomap *m, uint64_t dev, uint64_t ino)
{
	if (!m->cap)
		return SIZE_MAX;
	for (size_t i = inomap_hash(dev, ino) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const struct strata_inomap_slot *s = &m->slots[i];

		if (!s->used)
			return SIZE_MAX;
		if (s->dev == dev && s->ino == ino)
			return s->val;
	}
}

int strata_inomap_put(struct strata_inomap *m, uint64_t dev, uint64_t ino, size_t val)
{
	if (2 * (m->n + 1) > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 64;
		struct strata_inomap_slot *ns = calloc(ncap, sizeof(*ns));
		struct strata_inomap old = *m;

		if (!ns)
			return -ENOMEM;
		m->slots = ns;
		m->cap = ncap;
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.slots[i].used)
				strata_inomap_put(m, old.slots[i].dev, old.slots[i].ino, old.slots[i].val);
		free(old.slots);
	}
	for (size_t i = inomap_hash(dev, ino) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct strata_inomap_slot *s = &m->slots[i];

		if (!s->used) {
			s->used = true;
			s->dev = dev;
			s->ino = ino;
			s->val = val;
			m->n++;
			return 0;
		}
		if (s->dev == dev && s->ino == ino) {
			s->val = val;
			return 0;
		}
	}
}

void strata_inomap_release(struct strata_inomap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->n = m->cap = 0;
}

int strata_grow(void *pv, size_t *alloc, size_t need, size_t size)
{
	void **p = pv, *nv;
	size_t na = *alloc ? *alloc : 16;

	if (need <= *alloc)
		return 0;
	while (na < need) {
		if (na > SIZE_MAX / 2)
			return -ENOMEM;
		na *= 2;
	}
	if (size && na > SIZE_MAX / size)
		return -ENOMEM;
	nv = realloc(*p, na * size);
	if (!nv)
		return -ENOMEM;
	*p = nv;
	*alloc = na;
	return 0;
}

void strata_heap_prefault(size_t bytes)
{
#ifdef MADV_POPULATE_WRITE
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), top, start;
	struct mallinfo2 mi;
	void *p;

	/* a trim keeps 'bytes' at the top */
	if (!mallopt(M_MMAP_THRESHOLD, 512 << 10) || !mallopt(M_TOP_PAD, bytes > INT_MAX ? INT_MAX : (int)bytes))
		return;
	/* grow the heap by at least 'bytes', then give the chunk back to its top */
	p = malloc(256 << 10);
	if (!p)
		return;
	free(p);
	mi = mallinfo2();
	top = (uintptr_t)sbrk(0);
	if (top == (uintptr_t)-1 || mi.keepcost > top)
		return;
	start = (top - mi.keepcost + page - 1) & ~(page - 1);
	if (start < top)
		(void)madvise((void *)start, top - start, MADV_POPULATE_WRITE);
#else
	(void)bytes;
#endif
}

void strata_thread_nice(int delta)
{
	id_t tid = (id_t)gettid();
	int cur;

	errno = 0;
	cur = getpriority(PRIO_PROCESS, tid);
	if (errno == 0 && cur < 19)
		(void)setpriority(PRIO_PROCESS, tid, cur + delta > 19 ? 19 : cur + delta);
}
