/*
 * treestate.c - the one tree digest of the integration tests: prints a
 * canonical description of a directory tree so that a source, a restore
 * and (later) a mount can be compared with diff(1).
 *
 * Usage: treestate [--no-root] [--no-nlink] [--no-holes] [--exclude REL]... DIR
 *
 * One line per entry, sorted by the raw bytes of the path relative to DIR.
 * DIR itself is the entry "." (its name is not printed, its metadata is;
 * --no-root leaves it out).  Fields, space separated, in this order:
 *
 *   PATH type=T mode=OOOOO uid=U gid=G [nlink=N] [size=S] [mtime=SEC.NSEC]
 *        [sha256=HEX] [holes=A-B,...] [target=ESC] [rdev=MAJ:MIN]
 *        [hardlink=ESC] [xattr.ESC=HEX]...
 *
 *   PATH, target, hardlink and xattr names are escaped: bytes 0x21..0x7e
 *   other than '\\' and '=' are literal, every other byte is \xHH, so any
 *   name (spaces, newlines, invalid UTF-8) prints on one unambiguous line.
 *   type: f d l p c b s.  mode: octal with setuid/setgid/sticky, no type.
 *   nlink: for non-directories only (directory link counts are a property
 *     of the file system); --no-nlink drops it (used to compare a subtree
 *     whose hardlink groups reach outside it).
 *   size, sha256, holes: regular files.  holes: the holes SEEK_HOLE reports,
 *     shrunk inward to 64 KiB boundaries and dropped when that leaves
 *     nothing, so block allocation details of a file system do not matter
 *     but "sparse where the source had big holes" does; --no-holes drops it.
 *   mtime: lstat mtime with nanoseconds, for every type (also symlinks and
 *     directories).
 *   hardlink: for a non-directory whose (dev, ino) is shared by several
 *     entries below DIR, the smallest path of that group.
 *   xattr: every extended attribute (user.*, security.*, trusted.*,
 *     system.posix_acl_access/default, so ACLs are compared raw), sorted by
 *     name, value in hex.
 * Not printed: atime, ctime, inode and device numbers, directory sizes.
 *
 * The walk is openat()/fdopendir() based, so paths far longer than
 * PATH_MAX work; xattrs are read by name after fchdir() into the parent.
 * Exit 0, or 1 with a message on stderr if anything could not be read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <openssl/evp.h>

#define HOLE_ALIGN ((off_t)65536)

struct buf {
	char *p;
	size_t len, cap;
};

struct entry {
	char *path;          /* relative, raw bytes, NUL-terminated */
	size_t path_len;
	char *line;          /* all fields after the path, before hardlink= */
	bool nondir;
	dev_t dev;
	ino_t ino;
	size_t group_leader; /* index into sorted array, or SIZE_MAX */
};

static struct entry *entries;
static size_t n_entries, cap_entries;
static bool opt_no_root, opt_no_nlink, opt_no_holes;
static char **opt_exclude;
static size_t n_exclude;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("treestate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		die("internal: field too long");
	buf_add(b, tmp, (size_t)n);
}

static void buf_escape(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x21 && c <= 0x7e && c != '\\' && c != '=') {
			buf_add(b, &s[i], 1);
		} else {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
			buf_add(b, e, 4);
		}
	}
}

static void buf_hex(struct buf *b, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		char e[2] = { hex[s[i] >> 4], hex[s[i] & 15] };
		buf_add(b, e, 2);
	}
}

static char *join(const char *dir, const char *name)
{
	struct buf b = { 0 };

	if (strcmp(dir, ".") != 0) {
		buf_add(&b, dir, strlen(dir));
		buf_add(&b, "/", 1);
	}
	buf_add(&b, name, strlen(name));
	return b.p;
}

static bool excluded(const char *rel)
{
	for (size_t i = 0; i < n_exclude; i++)
		if (strcmp(rel, opt_exclude[i]) == 0)
			return true;
	return false;
}

/* sha256 and hole map of the regular file open at fd. */
static void add_content(struct buf *line, int fd, const char *rel, off_t size)
{
	static unsigned char data[1 << 17];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool first = true;
	off_t off = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		die("EVP_DigestInit failed");
	for (;;) {
		ssize_t n = read(fd, data, sizeof(data));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("cannot read '%s': %s", rel, strerror(errno));
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, data, (size_t)n) != 1)
			die("EVP_DigestUpdate failed");
	}
	if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1)
		die("EVP_DigestFinal failed");
	EVP_MD_CTX_free(ctx);
	buf_add(line, " sha256=", 8);
	buf_hex(line, md, md_len);

	if (opt_no_holes)
		return;
	buf_add(line, " holes=", 7);
	while (off < size) {
		off_t hole = lseek(fd, off, SEEK_HOLE);
		off_t data_start, a, z;

		if (hole < 0)
			die("SEEK_HOLE '%s': %s", rel, strerror(errno));
		if (hole >= size)
			break;
		data_start = lseek(fd, hole, SEEK_DATA);
		if (data_start < 0) {
			if (errno != ENXIO)
				die("SEEK_DATA '%s': %s", rel, strerror(errno));
			data_start = size;
		}
		a = (hole + HOLE_ALIGN - 1) / HOLE_ALIGN * HOLE_ALIGN;
		z = data_start / HOLE_ALIGN * HOLE_ALIGN;
		if (data_start == size)
			z = size;  /* a trailing hole runs to the end */
		if (z > a) {
			buf_printf(line, "%s%lld-%lld", first ? "" : ",", (long long)a, (long long)z);
			first = false;
		}
		off = data_start;
	}
	if (first)
		buf_add(line, "-", 1);
}

/* All xattrs of 'name' in the current directory (we fchdir'ed there). */
static void add_xattrs(struct buf *line, const char *name, const char *rel)
{
	char *list = NULL, **names = NULL;
	ssize_t len;
	size_t n = 0;

	for (;;) {
		len = llistxattr(name, NULL, 0);
		if (len < 0) {
			if (errno == ENOTSUP || errno == ENOSYS)
				return;
			die("llistxattr '%s': %s", rel, strerror(errno));
		}
		if (len == 0)
			return;
		list = xrealloc(list, (size_t)len);
		len = llistxattr(name, list, (size_t)len);
		if (len >= 0)
			break;
		if (errno != ERANGE)
			die("llistxattr '%s': %s", rel, strerror(errno));
	}
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1) {
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = list + i;
	}
	/* sort names by bytes (insertion sort: few names) */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		unsigned char *val = NULL;
		ssize_t vlen;

		for (;;) {
			vlen = lgetxattr(name, names[i], NULL, 0);
			if (vlen < 0)
				die("lgetxattr '%s' '%s': %s", rel, names[i], strerror(errno));
			val = xrealloc(val, (size_t)vlen);
			vlen = lgetxattr(name, names[i], val, (size_t)vlen);
			if (vlen >= 0)
				break;
			if (errno != ERANGE)
				die("lgetxattr '%s' '%s': %s", rel, names[i], strerror(errno));
		}
		buf_add(line, " xattr.", 7);
		buf_escape(line, names[i], strlen(names[i]));
		buf_add(line, "=", 1);
		if (vlen == 0)
			buf_add(line, "-", 1);
		buf_hex(line, val, (size_t)vlen);
		free(val);
	}
	free(names);
	free(list);
}

static void walk(int dirfd, const char *rel);

/* Describe entry 'name' of dirfd (rel is its path below the root). */
static void visit(int dirfd, const char *name, const char *rel, bool is_root)
{
	struct buf line = { 0 };
	struct stat st;
	char type;
	struct entry *e;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		die("cannot stat '%s': %s", rel, strerror(errno));
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:  type = 'f'; break;
	case S_IFDIR:  type = 'd'; break;
	case S_IFLNK:  type = 'l'; break;
	case S_IFIFO:  type = 'p'; break;
	case S_IFCHR:  type = 'c'; break;
	case S_IFBLK:  type = 'b'; break;
	case S_IFSOCK: type = 's'; break;
	default: die("'%s': unknown file type %o", rel, (unsigned)st.st_mode);
	}
	buf_printf(&line, " type=%c mode=%05o uid=%u gid=%u", type,
		   (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
	if (type != 'd' && !opt_no_nlink)
		buf_printf(&line, " nlink=%lu", (unsigned long)st.st_nlink);
	if (type == 'f')
		buf_printf(&line, " size=%lld", (long long)st.st_size);
	buf_printf(&line, " mtime=%lld.%09ld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);

	if (type == 'f') {
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);

		if (fd < 0)
			die("cannot open '%s': %s", rel, strerror(errno));
		add_content(&line, fd, rel, st.st_size);
		close(fd);
	} else if (type == 'l') {
		struct buf t = { 0 };
		size_t cap = 256;

		for (;;) {
			ssize_t n;

			t.p = xrealloc(t.p, cap);
			n = readlinkat(dirfd, name, t.p, cap);
			if (n < 0)
				die("cannot readlink '%s': %s", rel, strerror(errno));
			if ((size_t)n < cap) {
				t.len = (size_t)n;
				break;
			}
			cap *= 2;
		}
		buf_add(&line, " target=", 8);
		buf_escape(&line, t.p, t.len);
		free(t.p);
	} else if (type == 'c' || type == 'b') {
		buf_printf(&line, " rdev=%u:%u", major(st.st_rdev), minor(st.st_rdev));
	}

	if (fchdir(dirfd) < 0)
		die("fchdir for '%s': %s", rel, strerror(errno));
	add_xattrs(&line, name, rel);

	if (!is_root || !opt_no_root) {
		if (n_entries == cap_entries) {
			cap_entries = cap_entries ? cap_entries * 2 : 1024;
			entries = xrealloc(entries, cap_entries * sizeof(*entries));
		}
		e = &entries[n_entries++];
		e->path = strdup(rel);
		if (!e->path)
			die("out of memory");
		e->path_len = strlen(rel);
		e->line = line.p;
		e->nondir = type != 'd';
		e->dev = st.st_dev;
		e->ino = st.st_ino;
		e->group_leader = SIZE_MAX;
	} else {
		free(line.p);
	}

	if (type == 'd') {
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			die("cannot open directory '%s': %s", rel, strerror(errno));
		walk(fd, rel);  /* closes fd */
	}
}

static void walk(int dirfd, const char *rel)
{
	DIR *d = fdopendir(dirfd);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (!d)
		die("fdopendir '%s': %s", rel, strerror(errno));
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				die("readdir '%s': %s", rel, strerror(errno));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n] = strdup(de->d_name);
		if (!names[n])
			die("out of memory");
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		char *child = join(rel, names[i]);

		if (!excluded(child))
			visit(dirfd, names[i], child, false);
		free(child);
		free(names[i]);
	}
	free(names);
	closedir(d);
}

static int cmp_path(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
	int c = memcmp(x->path, y->path, n);

	if (c)
		return c;
	return (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

static const struct entry *sorted_base;

static int cmp_inode(const void *a, const void *b)
{
	const struct entry *x = &sorted_base[*(const size_t *)a];
	const struct entry *y = &sorted_base[*(const size_t *)b];

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	/* indices follow path order */
	return (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

static void usage(void)
{
	fputs("usage: treestate [--no-root] [--no-nlink] [--no-holes] [--exclude REL]... DIR\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	size_t *idx;
	int rootfd, parent;
	struct buf out = { 0 };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-root") == 0) {
			opt_no_root = true;
		} else if (strcmp(argv[i], "--no-nlink") == 0) {
			opt_no_nlink = true;
		} else if (strcmp(argv[i], "--no-holes") == 0) {
			opt_no_holes = true;
		} else if (strcmp(argv[i], "--exclude") == 0 && i + 1 < argc) {
			opt_exclude = xrealloc(opt_exclude, (n_exclude + 1) * sizeof(*opt_exclude));
			opt_exclude[n_exclude++] = argv[++i];
		} else if (strcmp(argv[i], "--") == 0 && i + 2 == argc) {
			dir = argv[++i];
		} else if (argv[i][0] == '-' || dir) {
			usage();
		} else {
			dir = argv[i];
		}
	}
	if (!dir)
		usage();

	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		die("cannot open '%s': %s", dir, strerror(errno));
	/* The root is visited as "." relative to itself, which stats and reads
	 * xattrs of the directory without needing its parent. */
	parent = dup(rootfd);
	if (parent < 0)
		die("dup: %s", strerror(errno));
	visit(parent, ".", ".", true);
	close(parent);
	close(rootfd);

	qsort(entries, n_entries, sizeof(*entries), cmp_path);

	idx = xrealloc(NULL, n_entries * sizeof(*idx));
	for (size_t i = 0; i < n_entries; i++)
		idx[i] = i;
	sorted_base = entries;
	qsort(idx, n_entries, sizeof(*idx), cmp_inode);
	for (size_t i = 0; i < n_entries;) {
		size_t j = i + 1;

		while (j < n_entries && entries[idx[j]].dev == entries[idx[i]].dev &&
		       entries[idx[j]].ino == entries[idx[i]].ino)
			j++;
		if (j - i > 1 && entries[idx[i]].nondir)
			for (size_t k = i; k < j; k++)
				entries[idx[k]].group_leader = idx[i];
		i = j;
	}
	free(idx);

	for (size_t i = 0; i < n_entries; i++) {
		const struct entry *e = &entries[i];

		out.len = 0;
		buf_escape(&out, e->path, e->path_len);
		buf_add(&out, e->line, strlen(e->line));
		if (e->group_leader != SIZE_MAX) {
			buf_add(&out, " hardlink=", 10);
			buf_escape(&out, entries[e->group_leader].path, entries[e->group_leader].path_len);
		}
		buf_add(&out, "\n", 1);
		if (fwrite(out.p, 1, out.len, stdout) != out.len)
			die("write: %s", strerror(errno));
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		die("write: %s", strerror(errno));
	free(out.p);
	return 0;
}
