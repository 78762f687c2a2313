/*
 * check_store.c - unit tests for store/: archive round trips (plain and
 * sealed, several frame sizes and thread counts), the zstd escape hatch,
 * the seek table layout, corruption and tampering detection, repository
 * creation, unlocking and locking, frame tables and the frame cache.
 *
 * Run one test under a debugger or valgrind with CK_FORK=no.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"

static char tmpdir[256];
static int tmpfd = -1;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/check_store.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	tmpfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(tmpfd, 0);
}

static void teardown(void)
{
	char cmd[512];

	if (tmpfd >= 0)
		close(tmpfd);
	tmpfd = -1;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Deterministic test data: runs of random bytes and of repetitive text. */
static uint8_t *make_data(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	size_t i = 0;

	ck_assert_ptr_nonnull(p);
	while (i < n) {
		size_t run = 1000 + (size_t)(x % 20000);
		bool rnd = (x >> 20) & 1;

		for (size_t k = 0; k < run && i < n; k++, i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = rnd ? (uint8_t)x : (uint8_t)("strata backup "[i % 14] + (i / 4096) % 3);
		}
	}
	return p;
}

static uint8_t *make_random(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n);
	uint64_t x = seed + 88172645463325252ull;

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 11);
	}
	return p;
}

static const uint8_t key1[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t key2[32] = { 9 };

/* Write data as one archive, in uneven chunks, cutting now and then when asked. */
static void write_archive(const uint8_t *data, size_t n, uint32_t frame_size, int threads,
			  const uint8_t *key, bool cuts, struct strata_archive_info *info)
{
	struct strata_archive_writer_options o = { .frame_size = frame_size, .threads = threads,
						   .master_key = key };
	struct strata_archive_writer *w;
	struct strata_error err = { 0 };
	size_t off = 0, step = 1;

	ck_assert_int_eq(strata_archive_writer_open(tmpfd, &o, &w, &err), 0);
	while (off < n) {
		size_t k = step < n - off ? step : n - off;

		ck_assert_int_eq(strata_archive_writer_write(w, data + off, k, &err), 0);
		off += k;
		ck_assert_uint_eq(strata_archive_writer_offset(w), off);
		step = (step * 7 + 13) % 70001;
		/* cuts that share a job (small next) and cuts that end it */
		if (cuts && step % 5 == 0)
			ck_assert_int_eq(strata_archive_writer_cut(w, step % 3 ? (uint32_t)step % 9000 :
								   frame_size, &err), 0);
	}
	ck_assert_int_eq(strata_archive_writer_finish(w, info, &err), 0);
	strata_archive_writer_free(w);
	ck_assert_uint_eq(info->stream_size, n);
}

static void check_reads(struct strata_archive_reader *r, const uint8_t *data, size_t n,
			unsigned seed)
{
	struct strata_error err = { 0 };
	uint8_t *buf = malloc(n + 1);
	uint64_t x = seed + 7;

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(strata_archive_reader_stream_size(r), n);
	ck_assert_int_eq(strata_archive_reader_pread(r, buf, n, 0, &err), 0);
	ck_assert(memcmp(buf, data, n) == 0);
	for (int i = 0; i < 150 && n; i++) {
		uint64_t off, len;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		off = (x >> 17) % n;
		len = (x >> 40) % (n - off + 1);
		if (i % 3 == 0 && len > 70000)
			len = 70000;
		ck_assert_int_eq(strata_archive_reader_pread(r, buf, len, off, &err), 0);
		ck_assert(memcmp(buf, data + off, len) == 0);
	}
	ck_assert_int_eq(strata_archive_reader_pread(r, buf, 1, n, &err), -EINVAL);
	ck_assert_int_eq(strata_archive_reader_pread(r, buf, 0, n, NULL), 0);
	free(buf);
}

static bool frames_equal(const struct strata_frame *a, const struct strata_frame *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (a[i].coffset != b[i].coffset || a[i].uoffset != b[i].uoffset ||
		    a[i].csize != b[i].csize || a[i].usize != b[i].usize ||
		    a[i].checksum != b[i].checksum)
			return false;
	return true;
}

static void roundtrip(size_t n, uint32_t frame_size, int threads, const uint8_t *key, bool cuts)
{
	struct strata_archive_info info;
	struct strata_archive_reader *r;
	struct strata_frame_cache *cache;
	struct strata_error err = { 0 };
	uint8_t *data = make_data(n, (unsigned)(n + frame_size + (unsigned)threads));
	uint8_t sha[32];
	uint64_t size;
	struct stat st;

	write_archive(data, n, frame_size, threads, key, cuts, &info);
	ck_assert_int_eq(info.encrypted, key != NULL);
	ck_assert_int_eq(fstatat(tmpfd, info.name, &st, 0), 0);
	ck_assert_uint_eq(info.file_size, (uint64_t)st.st_size);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(strata_file_sha256(tmpfd, info.name, sha, &size, &err), 0);
	ck_assert_uint_eq(size, info.file_size);
	ck_assert(memcmp(sha, info.sha256, 32) == 0);
	ck_assert_ptr_nonnull(strstr(info.name, key ? ".tar.zst.sealed" : ".tar.zst"));
	for (uint32_t i = 0; i < info.nframes; i++)
		ck_assert_uint_le(info.frames[i].usize, frame_size ? frame_size : 1u << 20);

	/* frame table from the seek table, private cache */
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key, NULL, 0, NULL, &r, &err),
			 0);
	ck_assert_uint_eq(strata_archive_reader_nframes(r), info.nframes);
	ck_assert(frames_equal(strata_archive_reader_frames(r), info.frames, info.nframes));
	ck_assert(memcmp(strata_archive_reader_id(r), info.id, 16) == 0);
	check_reads(r, data, n, 1);
	for (uint32_t i = 0; i < info.nframes; i++)
		ck_assert_int_eq(strata_archive_reader_check_frame(r, i, &err), 0);
	ck_assert_int_eq(strata_archive_reader_check_frame(r, info.nframes, &err), -EINVAL);
	strata_archive_reader_close(r);

	/* frame table from the caller, shared cache, readahead */
	ck_assert_int_eq(strata_frame_cache_new(1 << 20, &cache), 0);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key, info.frames,
						    info.nframes, cache, &r, &err), 0);
	strata_archive_reader_readahead(r, 0, 8);
	check_reads(r, data, n, 2);
	strata_archive_reader_readahead(r, n / 2, 100);
	strata_archive_reader_close(r);
	strata_frame_cache_free(cache);

	ck_assert_int_eq(unlinkat(tmpfd, info.name, 0), 0);
	strata_archive_info_release(&info);
	free(data);
}

START_TEST(test_roundtrip_plain)
{
	static const uint32_t sizes[] = { 4096, 65543, 0 };
	static const int threads[] = { 1, 2, 4 };

	for (size_t i = 0; i < 3; i++)
		for (size_t t = 0; t < 3; t++)
			roundtrip(700000 + i * 1111, sizes[i], threads[t], NULL, t == 1);
}
END_TEST

START_TEST(test_roundtrip_sealed)
{
	static const uint32_t sizes[] = { 4096, 65543, 0 };
	static const int threads[] = { 1, 3, 0 };

	for (size_t i = 0; i < 3; i++)
		for (size_t t = 0; t < 3; t++)
			roundtrip(700000 + i * 777, sizes[i], threads[t], key1, t == 2);
}
END_TEST

START_TEST(test_roundtrip_big_frames)
{
	roundtrip(3u << 20, 0, 2, NULL, false);
	roundtrip((3u << 20) + 5, 2u << 20, 0, key1, false);
	/* frame_size above the cap is clamped */
	roundtrip(100000, STRATA_FRAME_MAX * 2, 1, NULL, false);
}
END_TEST

START_TEST(test_roundtrip_empty)
{
	struct strata_archive_info info;
	struct strata_archive_reader *r;
	struct strata_error err = { 0 };
	uint8_t b;

	write_archive(NULL, 0, 0, 0, NULL, false, &info);
	ck_assert_uint_eq(info.nframes, 0);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, NULL, NULL, 0, NULL, &r, &err),
			 0);
	ck_assert_uint_eq(strata_archive_reader_stream_size(r), 0);
	ck_assert_int_eq(strata_archive_reader_pread(r, &b, 0, 0, &err), 0);
	ck_assert_int_eq(strata_archive_reader_pread(r, &b, 1, 0, &err), -EINVAL);
	strata_archive_reader_close(r);
	strata_archive_info_release(&info);
}
END_TEST

static uint8_t *read_file(const char *name, size_t *ret_len)
{
	struct stat st;
	uint8_t *p;
	int fd = openat(tmpfd, name, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(strata_read_full(fd, p, (size_t)st.st_size), 0);
	close(fd);
	*ret_len = (size_t)st.st_size;
	return p;
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
	int fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(strata_write_full(fd, p, n), 0);
	close(fd);
}

START_TEST(test_zstd_cli)
{
	struct strata_archive_info info;
	size_t n = 900000, len;
	uint8_t *data = make_data(n, 5), *out;
	char cmd[1024];

	if (system("zstd --version >/dev/null 2>&1") != 0) {
		free(data);
		return;   /* no zstd binary: nothing to compare with */
	}
	write_archive(data, n, 65536, 2, NULL, true, &info);
	snprintf(cmd, sizeof(cmd), "zstd -q -dc '%s/%s' > '%s/out'", tmpdir, info.name, tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	out = read_file("out", &len);
	ck_assert_uint_eq(len, n);
	ck_assert(memcmp(out, data, n) == 0);
	snprintf(cmd, sizeof(cmd), "zstd -q -t '%s/%s'", tmpdir, info.name);
	ck_assert_int_eq(system(cmd), 0);
	free(out);
	free(data);
	strata_archive_info_release(&info);
}
END_TEST

START_TEST(test_seek_table_layout)
{
	struct strata_archive_info info;
	size_t n = 300000, len, tsize;
	uint8_t *data = make_data(n, 6), *f, *t, *p;
	uint64_t c;

	write_archive(data, n, 100000, 2, NULL, false, &info);
	ck_assert_uint_eq(info.nframes, 3);
	f = read_file(info.name, &len);
	ck_assert_uint_eq(len, info.file_size);
	/* header */
	ck_assert_uint_eq(strata_get_le32(f), 0x184D2A50u);
	ck_assert_uint_eq(strata_get_le32(f + 4), STRATA_HEADER_PAYLOAD);
	ck_assert(memcmp(f + 8, "STRATA\0\1", 8) == 0);
	ck_assert(memcmp(f + 20, info.id, 16) == 0);
	/* footer */
	t = f + len - 9;
	ck_assert_uint_eq(strata_get_le32(t), 3);
	ck_assert_uint_eq(t[4], 0x80);
	ck_assert_uint_eq(strata_get_le32(t + 5), 0x8F92EAB1u);
	tsize = 3 * 12 + 9;
	p = f + len - tsize - 8;
	ck_assert_uint_eq(strata_get_le32(p), 0x184D2A5Eu);
	ck_assert_uint_eq(strata_get_le32(p + 4), tsize);
	c = STRATA_HEADER_SIZE;
	for (uint32_t i = 0; i < 3; i++) {
		const uint8_t *e = p + 8 + 12 * i;
		const struct strata_frame *fr = &info.frames[i];

		ck_assert_uint_eq(strata_get_le32(e), fr->csize);
		ck_assert_uint_eq(strata_get_le32(e + 4), fr->usize);
		ck_assert_uint_eq(strata_get_le32(e + 8), fr->checksum);
		ck_assert_uint_eq(fr->coffset, c);
		ck_assert_uint_eq(fr->uoffset, i * 100000u);
		/* each frame is a zstd frame whose last 4 bytes are its checksum */
		ck_assert_uint_eq(strata_get_le32(f + c), 0xFD2FB528u);
		ck_assert_uint_eq(strata_get_le32(f + c + fr->csize - 4), fr->checksum);
		c += fr->csize;
	}
	ck_assert_uint_eq(c + 8 + tsize, len);
	free(f);
	free(data);
	strata_archive_info_release(&info);
}
END_TEST

/* Open with the seek table and read everything; the first error code. */
static int open_and_read(const char *name, const uint8_t *key, const struct strata_frame *frames,
			 uint32_t nframes, struct strata_error *err)
{
	struct strata_archive_reader *r;
	uint8_t *buf;
	uint64_t n;
	int rc;

	strata_error_init(err);
	rc = strata_archive_reader_open(tmpfd, name, key, frames, nframes, NULL, &r, err);
	if (rc < 0)
		return rc;
	n = strata_archive_reader_stream_size(r);
	buf = malloc(n + 1);
	ck_assert_ptr_nonnull(buf);
	rc = strata_archive_reader_pread(r, buf, n, 0, err);
	free(buf);
	strata_archive_reader_close(r);
	return rc;
}

static void flip_and_expect(const char *name, const uint8_t *orig, size_t len, size_t pos,
			    const uint8_t *key, bool must_fail)
{
	struct strata_error err;
	uint8_t *copy = malloc(len);
	int rc;

	memcpy(copy, orig, len);
	copy[pos] ^= 0x20;
	write_file(name, copy, len);
	rc = open_and_read(name, key, NULL, 0, &err);
	if (must_fail || rc != 0) {
		ck_assert_msg(rc == -EBADMSG, "flip at %zu: rc %d (%s)", pos, rc, err.msg);
		ck_assert_int_eq(err.kind, STRATA_ERR_CORRUPT);
		ck_assert_msg(strstr(err.msg, name) != NULL, "message '%s' does not name '%s'",
			      err.msg, name);
	}
	free(copy);
}

START_TEST(test_corrupt_sealed_frame)
{
	struct strata_archive_info info;
	size_t n = 20000, len;
	uint8_t *data = make_data(n, 7), *f;

	write_archive(data, n, 8192, 2, key1, false, &info);
	ck_assert_uint_eq(info.nframes, 3);
	f = read_file(info.name, &len);
	/* every byte of every sealed frame is authenticated */
	for (uint64_t p = info.frames[0].coffset; p < info.frames[2].coffset + info.frames[2].csize;
	     p += 3)
		flip_and_expect(info.name, f, len, p, key1, true);
	write_file(info.name, f, len);
	ck_assert_int_eq(open_and_read(info.name, key1, NULL, 0, &(struct strata_error){ 0 }), 0);
	free(f);
	free(data);
	strata_archive_info_release(&info);
}
END_TEST

START_TEST(test_corrupt_plain_frame)
{
	struct strata_archive_info info;
	size_t n = 3 * 8192, len;
	uint8_t *data = make_random(n, 8), *f;
	const struct strata_frame *fr;

	write_archive(data, n, 8192, 2, NULL, false, &info);
	fr = &info.frames[1];
	f = read_file(info.name, &len);
	/* in a raw (incompressible) frame every content byte matters */
	for (uint64_t p = fr->coffset + 12; p < fr->coffset + fr->csize - 4; p += 97)
		flip_and_expect(info.name, f, len, p, NULL, true);
	/* the frame's checksum and its magic */
	for (uint64_t p = fr->coffset + fr->csize - 4; p < fr->coffset + fr->csize; p++)
		flip_and_expect(info.name, f, len, p, NULL, true);
	flip_and_expect(info.name, f, len, fr->coffset, NULL, true);
	/* anywhere else: an error or the right bytes, never wrong bytes */
	for (uint64_t p = fr->coffset; p < fr->coffset + 12; p++)
		flip_and_expect(info.name, f, len, p, NULL, false);
	free(f);
	free(data);
	strata_archive_info_release(&info);
}
END_TEST

START_TEST(test_corrupt_compressible_frame)
{
	struct strata_archive_info info;
	size_t n = 50000, len;
	uint8_t *data = make_data(n, 9), *f;

	write_archive(data, n, 16384, 1, NULL, false, &info);
	f = read_file(info.name, &len);
	for (uint64_t p = STRATA_HEADER_SIZE; p < info.frames[info.nframes - 1].coffset; p += 5)
		flip_and_expect(info.name, f, len, p, NULL, false);
	free(f);
	free(data);
	strata_archive_info_release(&info);
}
END_TEST

START_TEST(test_corrupt_seek_table)
{
	struct strata_archive_info info;
	size_t n = 40000, len, tstart;
	uint8_t *data = make_data(n, 10), *f;

	for (int sealed = 0; sealed < 2; sealed++) {
		write_archive(data, n, 10000, 2, sealed ? key1 : NULL, false, &info);
		f = read_file(info.name, &len);
		tstart = info.frames[info.nframes - 1].coffset + info.frames[info.nframes - 1].csize;
		for (size_t p = tstart; p < len; p++)
			flip_and_expect(info.name, f, len, p, sealed ? key1 : NULL, true);
		/* the header too */
		for (size_t p = 0; p < 20; p++)
			flip_and_expect(info.name, f, len, p, sealed ? key1 : NULL, true);
		free(f);
		strata_archive_info_release(&info);
	}
	free(data);
}
END_TEST

START_TEST(test_sealed_tamper)
{
	struct strata_archive_info info;
	struct strata_error err;
	size_t n = 4 * 8192, len, tlen;
	uint8_t *data = make_random(n, 11), *f, *g;
	const struct strata_frame *fr;
	uint32_t cs;

	write_archive(data, n, 8192, 2, key1, false, &info);
	ck_assert_uint_eq(info.nframes, 4);
	fr = info.frames;
	cs = fr[0].csize;
	ck_assert_uint_eq(fr[1].csize, cs);
	f = read_file(info.name, &len);

	/* swap frames 0 and 1 */
	g = malloc(len);
	memcpy(g, f, len);
	memcpy(g + fr[0].coffset, f + fr[1].coffset, cs);
	memcpy(g + fr[1].coffset, f + fr[0].coffset, cs);
	write_file(info.name, g, len);
	ck_assert_int_eq(open_and_read(info.name, key1, NULL, 0, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, info.name));
	ck_assert_ptr_nonnull(strstr(err.msg, "frame 0"));

	/* drop the last frame and rewrite a consistent seek table */
	tlen = 0;
	memcpy(g, f, fr[3].coffset);
	tlen = fr[3].coffset;
	strata_put_le32(g + tlen, 0x184D2A5Eu);
	strata_put_le32(g + tlen + 4, 3 * 12 + 9);
	tlen += 8;
	for (int i = 0; i < 3; i++, tlen += 12) {
		strata_put_le32(g + tlen, fr[i].csize);
		strata_put_le32(g + tlen + 4, fr[i].usize);
		strata_put_le32(g + tlen + 8, fr[i].checksum);
	}
	strata_put_le32(g + tlen, 3);
	g[tlen + 4] = 0x80;
	strata_put_le32(g + tlen + 5, 0x8F92EAB1u);
	tlen += 9;
	write_file(info.name, g, tlen);
	ck_assert_int_eq(open_and_read(info.name, key1, NULL, 0, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "frame 2"));

	/* truncated file: the seek table is gone; with the catalog's table a frame is short */
	write_file(info.name, f, fr[3].coffset + 100);
	ck_assert_int_eq(open_and_read(info.name, key1, NULL, 0, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, info.name));
	ck_assert_int_eq(open_and_read(info.name, key1, info.frames, info.nframes, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, info.name));
	/* frame table from the catalog only covering 3 frames of the full file */
	write_file(info.name, f, len);
	ck_assert_int_eq(open_and_read(info.name, key1, info.frames, 3, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "frame 2"));

	/* wrong key, no key */
	ck_assert_int_eq(open_and_read(info.name, key2, NULL, 0, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, info.name));
	ck_assert_int_eq(open_and_read(info.name, NULL, NULL, 0, &err), -EACCES);
	ck_assert_int_eq(err.kind, STRATA_ERR_AUTH);
	ck_assert_int_eq(open_and_read(info.name, key1, NULL, 0, &err), 0);
	free(g);
	free(f);
	free(data);
	strata_archive_info_release(&info);
}
END_TEST

/*
 * Small frames share compression jobs, yet each is its own frame: 40 cuts
 * with a small 'next' give 40 frames of the sizes cut, sealed or not; a cut
 * for a large frame then starts a job, so the large data's frames are whole.
 */
static void batched_cuts(const uint8_t *key, int threads)
{
	struct strata_archive_writer_options o = { .threads = threads, .master_key = key };
	struct strata_archive_writer *w;
	struct strata_archive_reader *r;
	struct strata_archive_info info;
	struct strata_error err = { 0 };
	size_t n = 40 * 3000 + 1000 + (3u << 20), off = 0;
	uint8_t *data = make_data(n, 77);

	ck_assert_int_eq(strata_archive_writer_open(tmpfd, &o, &w, &err), 0);
	for (int i = 0; i < 40; i++, off += 3000) {
		ck_assert_int_eq(strata_archive_writer_write(w, data + off, 3000, &err), 0);
		ck_assert_int_eq(strata_archive_writer_cut(w, 4096, &err), 0);
		ck_assert_int_eq(strata_archive_writer_cut(w, 4096, &err), 0);  /* nothing since: no-op */
	}
	ck_assert_int_eq(strata_archive_writer_write(w, data + off, 1000, &err), 0);
	off += 1000;
	ck_assert_int_eq(strata_archive_writer_cut(w, 1u << 20, &err), 0);
	ck_assert_int_eq(strata_archive_writer_write(w, data + off, n - off, &err), 0);
	ck_assert_int_eq(strata_archive_writer_finish(w, &info, &err), 0);
	strata_archive_writer_free(w);

	ck_assert_uint_eq(info.nframes, 44);
	for (uint32_t i = 0; i < 40; i++)
		ck_assert_uint_eq(info.frames[i].usize, 3000);
	ck_assert_uint_eq(info.frames[40].usize, 1000);
	for (uint32_t i = 41; i < 44; i++)
		ck_assert_uint_eq(info.frames[i].usize, 1u << 20);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key, NULL, 0, NULL, &r, &err),
			 0);
	for (uint32_t i = 0; i < info.nframes; i++)
		ck_assert_int_eq(strata_archive_reader_check_frame(r, i, &err), 0);
	check_reads(r, data, n, 3);
	strata_archive_reader_close(r);
	ck_assert_int_eq(unlinkat(tmpfd, info.name, 0), 0);
	strata_archive_info_release(&info);
	free(data);
}

START_TEST(test_writer_batched_cuts)
{
	batched_cuts(NULL, 2);
	batched_cuts(key1, 2);
	batched_cuts(key1, 1);
}
END_TEST

START_TEST(test_writer_lifecycle)
{
	struct strata_archive_writer_options o = { .frame_size = 4096, .threads = 2 };
	struct strata_archive_writer *w;
	struct strata_archive_info info;
	struct strata_error err = { 0 };
	uint8_t *data = make_data(100000, 12);
	char cmd[600];

	/* unfinished: workers stop, the temporary file goes away */
	ck_assert_int_eq(strata_archive_writer_open(tmpfd, &o, &w, &err), 0);
	ck_assert_int_eq(strata_archive_writer_write(w, data, 100000, &err), 0);
	strata_archive_writer_free(w);
	strata_archive_writer_free(NULL);
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", tmpdir);
	ck_assert_int_eq(system(cmd), 0);

	/* after finish every call fails */
	ck_assert_int_eq(strata_archive_writer_open(tmpfd, &o, &w, &err), 0);
	ck_assert_int_eq(strata_archive_writer_write(w, data, 5000, &err), 0);
	ck_assert_int_eq(strata_archive_writer_cut(w, 0, &err), 0);
	ck_assert_int_eq(strata_archive_writer_cut(w, 0, &err), 0);
	ck_assert_int_eq(strata_archive_writer_finish(w, &info, &err), 0);
	ck_assert_uint_eq(info.nframes, 2);
	ck_assert_int_ne(strata_archive_writer_write(w, data, 1, &err), 0);
	strata_error_init(&err);
	ck_assert_int_ne(strata_archive_writer_finish(w, &info, &err), 0);
	strata_archive_writer_free(w);
	strata_archive_info_release(&info);

	/* bad level */
	o.level = 1000;
	strata_error_init(&err);
	ck_assert_int_eq(strata_archive_writer_open(tmpfd, &o, &w, &err), -EINVAL);
	free(data);
}
END_TEST

START_TEST(test_writer_sticky)
{
	struct strata_archive_writer_options o = { .frame_size = 16384, .threads = 2 };
	struct strata_archive_writer *w;
	struct strata_archive_info info;
	struct strata_error err = { 0 }, err2 = { 0 };
	struct rlimit old, lim;
	uint8_t *data = make_random(1000000, 15);
	size_t off;
	int rc = 0;
	char cmd[600];

	/* a file size limit makes the archive's write fail part way */
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 100000;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(strata_archive_writer_open(tmpfd, &o, &w, &err), 0);
	for (off = 0; off < 1000000 && rc == 0; off += 10000)
		rc = strata_archive_writer_write(w, data + off, 10000, &err);
	if (rc == 0)
		rc = strata_archive_writer_finish(w, &info, &err);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_int_eq(rc, -EFBIG);
	ck_assert_int_eq(err.kind, STRATA_ERR_IO);
	ck_assert_ptr_nonnull(strstr(err.msg, "cannot write archive"));
	/* sticky: the same error again, even with room now */
	ck_assert_int_eq(strata_archive_writer_write(w, data, 10, &err2), -EFBIG);
	ck_assert_str_eq(err2.msg, err.msg);
	strata_error_init(&err2);
	ck_assert_int_eq(strata_archive_writer_cut(w, 0, &err2), -EFBIG);
	strata_error_init(&err2);
	ck_assert_int_eq(strata_archive_writer_finish(w, &info, &err2), -EFBIG);
	strata_archive_writer_free(w);
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	free(data);
}
END_TEST

struct pread_arg {
	struct strata_archive_reader *r;
	const uint8_t *data;
	size_t n;
	unsigned seed;
	int failures;
};

static void *pread_thread(void *p)
{
	struct pread_arg *a = p;
	struct strata_error err = { 0 };
	uint8_t *buf = malloc(40000);
	uint64_t x = a->seed;

	for (int i = 0; i < 300; i++) {
		uint64_t off, len;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		off = (x >> 17) % a->n;
		len = (x >> 45) % 40000;
		if (len > a->n - off)
			len = a->n - off;
		if (strata_archive_reader_pread(a->r, buf, len, off, &err) != 0 ||
		    memcmp(buf, a->data + off, len) != 0)
			a->failures++;
		if (i % 50 == 0)
			strata_archive_reader_readahead(a->r, off, 4);
	}
	free(buf);
	return NULL;
}

START_TEST(test_reader_threads)
{
	struct strata_archive_info info;
	struct strata_archive_reader *r;
	struct strata_frame_cache *cache;
	struct strata_error err = { 0 };
	struct pread_arg args[4];
	pthread_t th[4];
	size_t n = 1000000;
	uint8_t *data = make_data(n, 13);

	write_archive(data, n, 16384, 2, key1, false, &info);
	ck_assert_int_eq(strata_frame_cache_new(100000, &cache), 0);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key1, NULL, 0, cache, &r,
						    &err), 0);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct pread_arg){ r, data, n, (unsigned)i * 31 + 1, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, pread_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].failures, 0);
	}
	ck_assert_uint_le(strata_frame_cache_used(cache, NULL), 100000);
	strata_archive_reader_close(r);
	strata_frame_cache_free(cache);
	strata_archive_info_release(&info);
	free(data);
}
END_TEST

/* Views, prefetch and drop: the FUSE driver's in-place reads and read-ahead. */
START_TEST(test_reader_views)
{
	struct strata_archive_info info;
	struct strata_archive_reader *r;
	struct strata_frame_cache *cache;
	struct strata_error err = { 0 };
	struct strata_frame_view v, held;
	const struct strata_frame *f;
	uint64_t count, x = 5;
	size_t n = 300000;
	uint8_t *data = make_data(n, 15);
	uint32_t nf;

	write_archive(data, n, 16384, 1, key1, false, &info);
	ck_assert_int_eq(strata_frame_cache_new(4u << 20, &cache), 0);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key1, NULL, 0, cache, &r,
						    &err), 0);
	f = strata_archive_reader_frames(r);
	nf = strata_archive_reader_nframes(r);
	ck_assert_uint_ge(nf, 4);
	for (int i = 0; i < 200; i++) {
		uint64_t off, len, fend;
		uint32_t k = 0;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		off = (x >> 17) % n;
		len = 1 + (x >> 40) % (n - off);
		ck_assert_int_eq(strata_archive_reader_view(r, off, len, &v, &err), 0);
		while (k + 1 < nf && f[k + 1].uoffset <= off)
			k++;
		fend = f[k].uoffset + f[k].usize;
		ck_assert_uint_eq(v.len, len < fend - off ? len : fend - off);
		ck_assert(memcmp(v.data, data + off, v.len) == 0);
		strata_frame_view_release(&v);
		ck_assert_ptr_null(v.data);
	}
	ck_assert_int_eq(strata_archive_reader_view(r, n, 1, &v, &err), -EINVAL);
	ck_assert_int_eq(strata_archive_reader_view(r, n, 0, &v, &err), 0);
	ck_assert_uint_eq(v.len, 0);
	strata_frame_view_release(&v);

	/* prefetch fills the cache with every frame of the range, drop empties
	 * it of those wholly inside its range */
	strata_archive_reader_willneed(r, 0, n);
	strata_archive_reader_prefetch(r, 0, n);
	ck_assert_uint_eq(strata_frame_cache_used(cache, &count), n);
	ck_assert_uint_eq(count, nf);
	strata_archive_reader_drop(r, f[1].uoffset + 1, f[nf - 1].uoffset - f[1].uoffset - 1);
	ck_assert_uint_eq(strata_frame_cache_used(cache, &count),
			  f[0].usize + f[1].usize + f[nf - 1].usize);
	ck_assert_uint_eq(count, 3);
	strata_archive_reader_drop(r, 0, n);
	ck_assert_uint_eq(strata_frame_cache_used(cache, &count), 0);
	ck_assert_uint_eq(count, 0);

	/* a view outlives its entry's eviction and the reader itself */
	ck_assert_int_eq(strata_archive_reader_view(r, 10, 100, &held, &err), 0);
	strata_archive_reader_drop(r, 0, n);
	strata_archive_reader_close(r);
	ck_assert(memcmp(held.data, data + 10, 100) == 0);
	strata_frame_view_release(&held);

	/* a private cache: views work, prefetch and drop do nothing */
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key1, NULL, 0, NULL, &r,
						    &err), 0);
	strata_archive_reader_prefetch(r, 0, n);
	ck_assert_int_eq(strata_archive_reader_view(r, n - 5, 10, &v, &err), -EINVAL);
	ck_assert_int_eq(strata_archive_reader_view(r, n - 5, 5, &v, &err), 0);
	ck_assert_uint_eq(v.len, 5);
	ck_assert(memcmp(v.data, data + n - 5, 5) == 0);
	ck_assert_int_eq(strata_archive_reader_view(r, 0, n, &held, &err), 0);
	ck_assert(memcmp(held.data, data, held.len) == 0);
	strata_archive_reader_drop(r, 0, n);
	strata_frame_view_release(&v);
	strata_frame_view_release(&held);
	strata_archive_reader_close(r);

	strata_frame_cache_free(cache);
	strata_archive_info_release(&info);
	free(data);
}
END_TEST

/*
 * Small frames take fresh memory only up to 4 MiB of buffers (64 KiB each):
 * past that the oldest frame's buffer is reused, unless the warming pool
 * has touched buffers to give, which let the cache grow.
 */
START_TEST(test_reader_fresh_memory)
{
	struct strata_archive_info info;
	struct strata_archive_reader *r;
	struct strata_frame_cache *cache;
	struct strata_error err = { 0 };
	struct strata_frame_view v;
	size_t n = 200u * 16384;
	uint8_t *data = make_data(n, 17);
	uint64_t count = 0, max = (4u << 20) / (64u << 10);
	int warmed = 0;

	write_archive(data, n, 16384, 1, key1, false, &info);
	ck_assert_int_eq(strata_frame_cache_new(64u << 20, &cache), 0);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key1, NULL, 0, cache, &r,
						    &err), 0);
	ck_assert_uint_ge(strata_archive_reader_nframes(r), 150);
	for (size_t off = 0; off < n / 2; off += 16384) {
		ck_assert_int_eq(strata_archive_reader_view(r, off, 10, &v, &err), 0);
		ck_assert(memcmp(v.data, data + off, 10) == 0);
		strata_frame_view_release(&v);
	}
	strata_frame_cache_used(cache, &count);
	ck_assert_uint_le(count, max + 1);
	ck_assert_uint_ge(count, max - 1);
	/* touched buffers from the pool: the cache grows by as many */
	for (int i = 0; i < 40; i++)
		if (strata_frame_cache_warm_one(cache) > 0)
			warmed++;
	ck_assert_int_eq(warmed, 40);
	for (size_t off = n / 2; off < n; off += 16384) {
		ck_assert_int_eq(strata_archive_reader_view(r, off, 10, &v, &err), 0);
		ck_assert(memcmp(v.data, data + off, 10) == 0);
		strata_frame_view_release(&v);
	}
	strata_frame_cache_used(cache, &count);
	ck_assert_uint_ge(count, max + 40 - 1);
	ck_assert_uint_le(count, max + 40 + 1);

	strata_archive_reader_close(r);
	strata_frame_cache_free(cache);
	strata_archive_info_release(&info);
	free(data);
}
END_TEST

static int hook_calls;

static void count_hook(void)
{
	hook_calls++;
}

/*
 * A frame read from the disk announces the wait (strata_will_block), one
 * in the page cache or the frame cache does not: the mount's request loop
 * hands its leadership on only for the first.
 */
START_TEST(test_reader_block_hook)
{
	struct strata_archive_info info;
	struct strata_archive_reader *r;
	struct strata_frame_cache *cache;
	struct strata_error err = { 0 };
	struct strata_frame_view v;
	struct statfs sf;
	size_t n = 200000;
	uint8_t *data = make_data(n, 16);
	int fd;

	write_archive(data, n, 16384, 1, key1, false, &info);
	fd = openat(tmpfd, info.name, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fdatasync(fd), 0);
	ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	ck_assert_int_eq(strata_frame_cache_new(4u << 20, &cache), 0);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, info.name, key1, NULL, 0, cache, &r,
						    &err), 0);
	strata_set_block_hook(count_hook);

	/* from the disk (tmpfs and the like keep every page in memory) */
	hook_calls = 0;
	ck_assert_int_eq(strata_archive_reader_view(r, 100000, 10, &v, &err), 0);
	ck_assert(memcmp(v.data, data + 100000, 10) == 0);
	strata_frame_view_release(&v);
	ck_assert_int_eq(fstatfs(fd, &sf), 0);
	if (sf.f_type != 0x01021994 /* TMPFS_MAGIC */)
		ck_assert_int_ge(hook_calls, 1);

	/* from the frame cache, then from the page cache: no wait */
	hook_calls = 0;
	ck_assert_int_eq(strata_archive_reader_view(r, 100000, 10, &v, &err), 0);
	strata_frame_view_release(&v);
	{
		uint8_t *all = malloc(info.file_size);   /* the whole file into the page cache */

		ck_assert_ptr_nonnull(all);
		ck_assert_int_eq(strata_pread_full(fd, all, info.file_size, 0), 0);
		free(all);
	}
	strata_archive_reader_drop(r, 0, n);
	ck_assert_int_eq(strata_archive_reader_view(r, 100000, 10, &v, &err), 0);
	ck_assert(memcmp(v.data, data + 100000, 10) == 0);
	strata_frame_view_release(&v);
	ck_assert_int_eq(hook_calls, 0);

	strata_set_block_hook(NULL);
	strata_archive_reader_close(r);
	strata_frame_cache_free(cache);
	close(fd);
	strata_archive_info_release(&info);
	free(data);
}
END_TEST

START_TEST(test_reader_bad_open)
{
	struct strata_archive_reader *r;
	struct strata_error err = { 0 };

	ck_assert_int_eq(strata_archive_reader_open(tmpfd, "nope.tar.zst", NULL, NULL, 0, NULL, &r,
						    &err), -ENOENT);
	ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
	strata_error_init(&err);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, "../x", NULL, NULL, 0, NULL, &r, &err),
			 -EINVAL);
	write_file("short", (const uint8_t *)"hello", 5);
	strata_error_init(&err);
	ck_assert_int_eq(strata_archive_reader_open(tmpfd, "short", NULL, NULL, 0, NULL, &r, &err),
			 -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "archive 'short'"));
}
END_TEST

START_TEST(test_frames_codec)
{
	struct strata_archive_info info;
	struct strata_error err = { 0 };
	struct strata_frame *f, bad[2];
	uint8_t *enc, *data = make_data(50000, 14), junk[28 * 3];
	size_t len;
	uint32_t n;

	write_archive(data, 50000, 8000, 1, NULL, false, &info);
	ck_assert_int_eq(strata_frames_encode(info.frames, info.nframes, &enc, &len), 0);
	ck_assert_uint_eq(len, info.nframes * 28u);
	ck_assert_int_eq(strata_frames_decode(enc, len, &f, &n, &err), 0);
	ck_assert_uint_eq(n, info.nframes);
	ck_assert(frames_equal(f, info.frames, n));
	free(f);
	/* wrong length */
	ck_assert_int_eq(strata_frames_decode(enc, len - 1, &f, &n, &err), -EBADMSG);
	ck_assert_int_eq(err.kind, STRATA_ERR_CORRUPT);
	/* a gap between frames */
	strata_put_le64(enc + 28, strata_get_le64(enc + 28) + 1);
	strata_error_init(&err);
	ck_assert_int_eq(strata_frames_decode(enc, len, &f, &n, &err), -EBADMSG);
	free(enc);
	/* zero and oversized frames, stream offsets not from 0 */
	bad[0] = (struct strata_frame){ STRATA_HEADER_SIZE, 0, 100, 0, 0 };
	ck_assert_int_eq(strata_frames_encode(bad, 1, &enc, &len), 0);
	ck_assert_int_eq(strata_frames_decode(enc, len, &f, &n, NULL), -EBADMSG);
	free(enc);
	bad[0] = (struct strata_frame){ STRATA_HEADER_SIZE, 0, 100, STRATA_FRAME_MAX + 1, 0 };
	ck_assert_int_eq(strata_frames_encode(bad, 1, &enc, &len), 0);
	ck_assert_int_eq(strata_frames_decode(enc, len, &f, &n, NULL), -EBADMSG);
	free(enc);
	bad[0] = (struct strata_frame){ STRATA_HEADER_SIZE, 0, 100, 100, 0 };
	bad[1] = (struct strata_frame){ STRATA_HEADER_SIZE + 100, 99, 100, 100, 0 };
	ck_assert_int_eq(strata_frames_encode(bad, 2, &enc, &len), 0);
	ck_assert_int_eq(strata_frames_decode(enc, len, &f, &n, NULL), -EBADMSG);
	free(enc);
	/* garbage */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	ck_assert_int_eq(strata_frames_decode(junk, sizeof(junk), &f, &n, NULL), -EBADMSG);
	/* empty table */
	ck_assert_int_eq(strata_frames_decode(junk, 0, &f, &n, NULL), 0);
	ck_assert_uint_eq(n, 0);
	free(f);
	strata_archive_info_release(&info);
	free(data);
}
END_TEST

START_TEST(test_frame_cache)
{
	struct strata_frame_cache *c;
	struct strata_cache_entry *e, *held;
	uint8_t id[16] = { 1 }, id2[16] = { 2 };
	uint64_t count;

	ck_assert_int_eq(strata_frame_cache_new(10000, &c), 0);
	held = strata_frame_cache_insert(c, id, 0, memset(malloc(3000), 'a', 3000), 3000);
	ck_assert_ptr_nonnull(held);
	for (uint32_t i = 1; i < 10; i++) {
		e = strata_frame_cache_insert(c, id, i, memset(malloc(3000), 'b', 3000), 3000);
		ck_assert_ptr_nonnull(e);
		strata_frame_cache_put(c, e);
		ck_assert_uint_le(strata_frame_cache_used(c, NULL), 10000);
	}
	ck_assert_uint_eq(strata_frame_cache_used(c, &count), 9000);
	ck_assert_uint_eq(count, 3);
	/* the held entry was evicted but is still readable */
	ck_assert_ptr_null(strata_frame_cache_get(c, id, 0));
	ck_assert_int_eq(held->data[2999], 'a');
	strata_frame_cache_put(c, held);
	/* most recent survive; a get refreshes */
	e = strata_frame_cache_get(c, id, 7);
	ck_assert_ptr_nonnull(e);
	strata_frame_cache_put(c, e);
	e = strata_frame_cache_insert(c, id2, 7, calloc(1, 3000), 3000);
	strata_frame_cache_put(c, e);
	e = strata_frame_cache_get(c, id, 7);
	ck_assert_ptr_nonnull(e);
	strata_frame_cache_put(c, e);
	ck_assert_ptr_null(strata_frame_cache_get(c, id, 8));
	/* a duplicate insert returns the existing entry */
	e = strata_frame_cache_insert(c, id2, 7, calloc(1, 3000), 3000);
	ck_assert_uint_eq(strata_frame_cache_used(c, &count), 9000);
	strata_frame_cache_put(c, e);
	/* an entry larger than the budget does not stay */
	e = strata_frame_cache_insert(c, id, 99, calloc(1, 20000), 20000);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_le(strata_frame_cache_used(c, NULL), 10000);
	strata_frame_cache_put(c, e);
	strata_frame_cache_free(c);
	strata_frame_cache_free(NULL);
}
END_TEST

/* ---- repository ---------------------------------------------------------- */

static void repo_path(char *dst, size_t n, const char *sub)
{
	snprintf(dst, n, "%s/%s", tmpdir, sub);
}

START_TEST(test_repo_plain)
{
	struct strata_repo *repo;
	struct strata_error err = { 0 };
	char path[512], p2[600];
	struct stat st;

	repo_path(path, sizeof(path), "repo");
	ck_assert_int_eq(strata_repo_create(path, NULL, &err), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	snprintf(p2, sizeof(p2), "%s/archives", path);
	ck_assert_int_eq(stat(p2, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(strata_repo_create(path, NULL, &err), -EEXIST);
	ck_assert_int_eq(err.kind, STRATA_ERR_USAGE);

	ck_assert_int_eq(strata_repo_open(path, &repo, &err), 0);
	ck_assert_str_eq(strata_repo_path(repo), path);
	ck_assert_uint_eq(strlen(strata_repo_id(repo)), 32);
	ck_assert(!strata_repo_encrypted(repo));
	ck_assert_int_eq(strata_repo_unlock(repo, "x", 1, &err), 0);
	ck_assert_ptr_null(strata_repo_master_key(repo));
	ck_assert_int_ge(strata_repo_archives_fd(repo), 0);
	strata_repo_close(repo);
	strata_repo_close(NULL);

	/* not a repository; a non-empty directory */
	strata_error_init(&err);
	repo_path(p2, sizeof(p2), "none");
	ck_assert_int_eq(strata_repo_open(p2, &repo, &err), -ENOENT);
	ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
	strata_error_init(&err);
	ck_assert_int_eq(strata_repo_create(tmpdir, NULL, &err), -EEXIST);
}
END_TEST

static void write_path(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_repo_corrupt)
{
	static const char *bad[] = {
		"format 1\nid 0123\nencrypted no\n",
		"format 1\nid 0123456789abcdef0123456789abcdef\nencrypted maybe\n",
		"format 1\nformat 1\nid 0123456789abcdef0123456789abcdef\nencrypted no\n",
		"id 0123456789abcdef0123456789abcdef\nencrypted no\n",
		"garbage",
		"format x\n",
	};
	struct strata_repo *repo;
	struct strata_error err;
	char path[512], file[600];

	repo_path(path, sizeof(path), "repo");
	ck_assert_int_eq(strata_repo_create(path, NULL, NULL), 0);
	snprintf(file, sizeof(file), "%s/strata.repo", path);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_path(file, bad[i]);
		strata_error_init(&err);
		ck_assert_int_eq(strata_repo_open(path, &repo, &err), -EBADMSG);
		ck_assert_int_eq(err.kind, STRATA_ERR_CORRUPT);
		ck_assert_ptr_nonnull(strstr(err.msg, "strata.repo"));
	}
	write_path(file, "format 2\nid 0123456789abcdef0123456789abcdef\nencrypted no\n");
	ck_assert_int_eq(strata_repo_open(path, &repo, NULL), -ENOTSUP);
}
END_TEST

START_TEST(test_repo_encrypted)
{
	struct strata_repo_create_options o = { .passphrase = "correct horse", .passphrase_len = 13,
						.kdf_t_cost = 1, .kdf_m_cost_kib = 64 };
	struct strata_repo *repo, *repo2;
	struct strata_error err = { 0 };
	char path[512], file[600], expect[700];
	uint8_t key[32];
	struct stat st;

	repo_path(path, sizeof(path), "repo");
	ck_assert_int_eq(strata_repo_create(path, &o, &err), 0);
	snprintf(file, sizeof(file), "%s/key", path);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);

	ck_assert_int_eq(strata_repo_open(path, &repo, &err), 0);
	ck_assert(strata_repo_encrypted(repo));
	ck_assert_ptr_null(strata_repo_master_key(repo));
	ck_assert_int_eq(strata_repo_unlock(repo, "wrong horse", 11, &err), -EACCES);
	ck_assert_int_eq(err.kind, STRATA_ERR_AUTH);
	snprintf(expect, sizeof(expect), "wrong passphrase for repository '%s'", path);
	ck_assert_str_eq(err.msg, expect);
	ck_assert_ptr_null(strata_repo_master_key(repo));
	strata_error_init(&err);
	ck_assert_int_eq(strata_repo_unlock(repo, "correct horse", 13, &err), 0);
	ck_assert_ptr_nonnull(strata_repo_master_key(repo));
	memcpy(key, strata_repo_master_key(repo), 32);

	ck_assert_int_eq(strata_repo_open(path, &repo2, &err), 0);
	ck_assert_int_eq(strata_repo_unlock(repo2, "correct horse", 13, &err), 0);
	ck_assert(memcmp(strata_repo_master_key(repo2), key, 32) == 0);
	strata_repo_close(repo2);
	strata_repo_close(repo);

	/* a damaged key file */
	write_path(file, "format 1\nkdf argon2id\nt 1\nm 64\np 1\nsalt zz\n");
	ck_assert_int_eq(strata_repo_open(path, &repo, &err), 0);
	strata_error_init(&err);
	ck_assert_int_eq(strata_repo_unlock(repo, "correct horse", 13, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "key"));
	strata_repo_close(repo);
}
END_TEST

START_TEST(test_repo_lock)
{
	struct strata_repo *a, *b;
	struct strata_error err = { 0 };
	char path[512];

	repo_path(path, sizeof(path), "repo");
	ck_assert_int_eq(strata_repo_create(path, NULL, &err), 0);
	ck_assert_int_eq(strata_repo_open(path, &a, &err), 0);
	ck_assert_int_eq(strata_repo_open(path, &b, &err), 0);
	ck_assert_int_eq(strata_repo_lock_write(a, false, &err), 0);
	ck_assert_int_eq(strata_repo_lock_write(a, false, &err), 0);
	ck_assert_int_eq(strata_repo_lock_write(b, false, &err), -EAGAIN);
	ck_assert_int_eq(err.kind, STRATA_ERR_LOCKED);
	strata_repo_unlock_write(a);
	strata_error_init(&err);
	ck_assert_int_eq(strata_repo_lock_write(b, false, &err), 0);
	ck_assert_int_eq(strata_repo_lock_write(a, false, &err), -EAGAIN);
	strata_repo_close(b);
	strata_error_init(&err);
	ck_assert_int_eq(strata_repo_lock_write(a, true, &err), 0);
	strata_repo_close(a);
}
END_TEST

START_TEST(test_sha256)
{
	struct strata_sha256 *h;
	uint8_t out[32];
	char hex[65];

	ck_assert_int_eq(strata_sha256_new(&h), 0);
	strata_sha256_update(h, "abc", 3);
	strata_sha256_final(h, out);
	strata_hex(hex, out, 32);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	strata_sha256_final(h, out);   /* reused: the empty string */
	strata_hex(hex, out, 32);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	strata_sha256_free(h);
	ck_assert_int_eq(strata_random(out, sizeof(out)), 0);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = tcase_create("archive");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_roundtrip_plain);
	tcase_add_test(tc, test_roundtrip_sealed);
	tcase_add_test(tc, test_roundtrip_big_frames);
	tcase_add_test(tc, test_roundtrip_empty);
	tcase_add_test(tc, test_zstd_cli);
	tcase_add_test(tc, test_seek_table_layout);
	tcase_add_test(tc, test_writer_batched_cuts);
	tcase_add_test(tc, test_writer_lifecycle);
	tcase_add_test(tc, test_writer_sticky);
	tcase_add_test(tc, test_reader_threads);
	tcase_add_test(tc, test_reader_views);
	tcase_add_test(tc, test_reader_block_hook);
	tcase_add_test(tc, test_reader_fresh_memory);
	tcase_add_test(tc, test_reader_bad_open);
	suite_add_tcase(s, tc);

	tc = tcase_create("corruption");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_corrupt_sealed_frame);
	tcase_add_test(tc, test_corrupt_plain_frame);
	tcase_add_test(tc, test_corrupt_compressible_frame);
	tcase_add_test(tc, test_corrupt_seek_table);
	tcase_add_test(tc, test_sealed_tamper);
	suite_add_tcase(s, tc);

	tc = tcase_create("tables");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_frames_codec);
	tcase_add_test(tc, test_frame_cache);
	tcase_add_test(tc, test_sha256);
	suite_add_tcase(s, tc);

	tc = tcase_create("repo");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_repo_plain);
	tcase_add_test(tc, test_repo_corrupt);
	tcase_add_test(tc, test_repo_encrypted);
	tcase_add_test(tc, test_repo_lock);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
