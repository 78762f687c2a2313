/*
 * store_repo.c - the repository directory (DESIGN.md section 3): creating
 * and opening it, its small text files, the passphrase-sealed master key
 * and the writer lock.
 *
 * Files:
 *   strata.repo   "format 1", "id <32 hex>", "encrypted yes|no", one per line
 *   key           "format 1", "kdf argon2id|scrypt", KDF parameters,
 *                 "salt <hex>", "nonce <24 hex>", "sealed <hex of 48 bytes>":
 *                 the random master key sealed with AES-256-GCM under the
 *                 passphrase-derived key, AAD "strata key v1" || repo id,
 *                 so a wrong passphrase fails the tag.
 *   archives/     one file per archive
 *   lock          flock(LOCK_EX) held by the one writer
 *
 * Every file is written to a temporary name, fsynced and renamed; the
 * directory is fsynced after.  strata.repo is written last, so a
 * half-created directory is never taken for a repository.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"

#define REPO_FILE "strata.repo"
#define KEY_FILE "key"
#define LOCK_FILE "lock"
#define ARCHIVES_DIR "archives"
#define SMALL_FILE_MAX 4096
#define KEY_AAD_PREFIX "strata key v1"
#define KDF_SALT_LEN 32

/* Argon2id defaults and the caps accepted from a key file. */
#define ARGON2_T_DEFAULT 3
#define ARGON2_M_DEFAULT 65536
#define ARGON2_P_DEFAULT 1
#define KDF_T_MAX 64
#define KDF_M_MAX (4u << 20)   /* KiB: 4 GiB */
#define KDF_P_MAX 64
#define SCRYPT_R 8
#define SCRYPT_LOGN_MAX 24

struct strata_repo {
	char *path;
	int dirfd;
	int archives_fd;
	int lock_fd;
	bool encrypted;
	bool unlocked;
	bool locked;
	char id[33];
	uint8_t master_key[STRATA_KEY_LEN];
};

/* ---- small "key value" text files ------------------------------------ */

struct kv {
	char key[32];
	char value[160];
};

#define KV_MAX 16

/*
 * Read dirfd/name (at most SMALL_FILE_MAX bytes) and split it into
 * "key value" lines.  -ENOENT when missing, -EBADMSG when malformed.
 */
static int kv_read(int dirfd, const char *name, const char *what, struct kv *kv, int *ret_n,
		   struct strata_error *err)
{
	char buf[SMALL_FILE_MAX + 2];
	ssize_t len;
	int fd, n = 0, rc;
	char *line, *next;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return rc;
		return strata_error_errno(err, errno, "cannot open '%s'", what);
	}
	len = 0;
	rc = 0;
	while ((size_t)len < sizeof(buf) - 1) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			break;
		}
		if (k == 0)
			break;
		len += k;
	}
	close(fd);
	if (rc < 0)
		return strata_error_errno(err, -rc, "cannot read '%s'", what);
	if (len > SMALL_FILE_MAX)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt '%s': file too large", what);
	if (memchr(buf, '\0', (size_t)len))
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt '%s': contains a NUL byte", what);
	buf[len] = '\0';
	for (line = buf; *line; line = next) {
		char *sp, *nl = strchr(line, '\n');
		size_t klen, vlen;

		next = nl ? nl + 1 : line + strlen(line);
		if (nl)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		sp = strchr(line, ' ');
		if (!sp || n >= KV_MAX)
			return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
						"corrupt '%s': malformed line", what);
		klen = (size_t)(sp - line);
		vlen = strlen(sp + 1);
		if (klen == 0 || klen >= sizeof(kv[n].key) || vlen == 0 ||
		    vlen >= sizeof(kv[n].value))
			return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
						"corrupt '%s': malformed line", what);
		for (int i = 0; i < n; i++)
			if (strlen(kv[i].key) == klen && !memcmp(kv[i].key, line, klen))
				return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
							"corrupt '%s': duplicate '%.*s'", what,
							(int)klen, line);
		memcpy(kv[n].key, line, klen);
		kv[n].key[klen] = '\0';
		memcpy(kv[n].value, sp + 1, vlen + 1);
		n++;
	}
	*ret_n = n;
	return 0;
}

static const char *kv_get(const struct kv *kv, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return kv[i].value;
	return NULL;
}

/* A required decimal field within [lo, hi]. */
static int kv_u64(const struct kv *kv, int n, const char *key, uint64_t lo, uint64_t hi,
		  uint64_t *ret, const char *what, struct strata_error *err)
{
	const char *v = kv_get(kv, n, key);
	uint64_t x;

	if (!v)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt '%s': missing '%s'", what, key);
	if (strata_parse_u64(v, &x) < 0 || x < lo || x > hi)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt '%s': bad '%s'", what, key);
	*ret = x;
	return 0;
}

/* A required hex field of exactly n bytes. */
static int kv_hex(const struct kv *kv, int cnt, const char *key, uint8_t *dst, size_t n,
		  const char *what, struct strata_error *err)
{
	const char *v = kv_get(kv, cnt, key);

	if (!v)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt '%s': missing '%s'", what, key);
	if (strlen(v) != 2 * n || strata_unhex(dst, n, v) < 0)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"corrupt '%s': bad '%s'", what, key);
	return 0;
}

/* Write dirfd/name atomically: temp file, fsync, rename, fsync dir. */
static int file_write_atomic(int dirfd, const char *name, const char *what, const void *data,
			     size_t len, mode_t mode, struct strata_error *err)
{
	char tmp[64];
	int fd, rc;

	snprintf(tmp, sizeof(tmp), ".tmp-%s", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return strata_error_errno(err, errno, "cannot create '%s'", what);
	rc = strata_write_full(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dirfd, tmp, 0);
		return strata_error_errno(err, -rc, "cannot write '%s'", what);
	}
	if (fsync(dirfd) < 0)
		return strata_error_errno(err, errno, "cannot sync '%s'", what);
	return 0;
}

/* ---- create ------------------------------------------------------------ */

static int dir_is_empty(int dirfd, bool *ret)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d;
	struct dirent *de;
	bool empty = true;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = false;
			break;
		}
	}
	closedir(d);
	*ret = empty;
	return 0;
}

static int key_file_create(int dirfd, const char *path, const char *repo_id,
			   const struct strata_repo_create_options *opts, struct strata_error *err)
{
	uint8_t master[STRATA_KEY_LEN], kek[STRATA_KEY_LEN], salt[KDF_SALT_LEN];
	uint8_t nonce[STRATA_GCM_NONCE_LEN], sealed[STRATA_KEY_LEN + STRATA_GCM_TAG_LEN];
	uint8_t aad[sizeof(KEY_AAD_PREFIX) - 1 + 32];
	char salt_hex[2 * KDF_SALT_LEN + 1], nonce_hex[2 * STRATA_GCM_NONCE_LEN + 1];
	char sealed_hex[2 * sizeof(sealed) + 1], params[128], text[512];
	char what[4200];
	int rc;

	snprintf(what, sizeof(what), "%s/%s", path, KEY_FILE);
	if (strata_random(master, sizeof(master)) < 0 || strata_random(salt, sizeof(salt)) < 0 ||
	    strata_random(nonce, sizeof(nonce)) < 0) {
		rc = strata_error_set(err, -EIO, STRATA_ERR_INTERNAL, "cannot get random bytes");
		goto out;
	}
#if HAVE_ARGON2
	{
		uint32_t t = opts->kdf_t_cost ? opts->kdf_t_cost : ARGON2_T_DEFAULT;
		uint32_t m = opts->kdf_m_cost_kib ? opts->kdf_m_cost_kib : ARGON2_M_DEFAULT;
		uint32_t p = ARGON2_P_DEFAULT;

		if (t > KDF_T_MAX || m > KDF_M_MAX || m < 8 * p) {
			rc = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					      "invalid argon2id cost (t=%u, m=%u KiB)", t, m);
			goto out;
		}
		rc = strata_crypto_argon2id(opts->passphrase, opts->passphrase_len, salt,
					    sizeof(salt), t, m, p, kek, sizeof(kek));
		snprintf(params, sizeof(params), "kdf argon2id\nt %u\nm %u\np %u\n", t, m, p);
	}
#else
	{
		/* scrypt: n from the memory cost (128 * r * n bytes), r = 8, p = 1. */
		uint32_t m = opts->kdf_m_cost_kib ? opts->kdf_m_cost_kib : ARGON2_M_DEFAULT;
		unsigned logn = 1;

		while (logn < SCRYPT_LOGN_MAX && (128ull * SCRYPT_R << (logn + 1)) / 1024 <= m)
			logn++;
		rc = strata_crypto_scrypt(opts->passphrase, opts->passphrase_len, salt,
					  sizeof(salt), 1ull << logn, SCRYPT_R, 1, kek, sizeof(kek));
		snprintf(params, sizeof(params), "kdf scrypt\nlogn %u\nr %u\np 1\n", logn,
			 SCRYPT_R);
	}
#endif
	if (rc < 0) {
		rc = strata_error_set(err, rc, STRATA_ERR_INTERNAL,
				      "cannot derive the key of repository '%s'", path);
		goto out;
	}
	memcpy(aad, KEY_AAD_PREFIX, sizeof(KEY_AAD_PREFIX) - 1);
	memcpy(aad + sizeof(KEY_AAD_PREFIX) - 1, repo_id, 32);
	memcpy(sealed, master, STRATA_KEY_LEN);
	rc = strata_crypto_gcm_seal(kek, nonce, aad, sizeof(aad), sealed, STRATA_KEY_LEN,
				    sealed + STRATA_KEY_LEN);
	if (rc < 0) {
		rc = strata_error_set(err, rc, STRATA_ERR_INTERNAL,
				      "cannot seal the key of repository '%s'", path);
		goto out;
	}
	strata_hex(salt_hex, salt, sizeof(salt));
	strata_hex(nonce_hex, nonce, sizeof(nonce));
	strata_hex(sealed_hex, sealed, sizeof(sealed));
	snprintf(text, sizeof(text), "# strata repository key\nformat 1\n%ssalt %s\nnonce %s\nsealed %s\n",
		 params, salt_hex, nonce_hex, sealed_hex);
	rc = file_write_atomic(dirfd, KEY_FILE, what, text, strlen(text), 0600, err);
out:
	strata_crypto_wipe(master, sizeof(master));
	strata_crypto_wipe(kek, sizeof(kek));
	strata_crypto_wipe(sealed, sizeof(sealed));
	return rc;
}

int strata_repo_create(const char *path, const struct strata_repo_create_options *opts,
		       struct strata_error *err)
{
	static const struct strata_repo_create_options defaults;
	uint8_t id[16];
	char id_hex[33], text[256], what[4200];
	int dirfd = -1, fd, rc;
	bool empty = false;

	if (!opts)
		opts = &defaults;
	if (!path || !*path || strlen(path) >= 4096)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "invalid repository path");
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return strata_error_errno(err, errno, "cannot create repository '%s'", path);
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return strata_error_errno(err, errno, "cannot open repository '%s'", path);
	if (faccessat(dirfd, REPO_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = strata_error_set(err, -EEXIST, STRATA_ERR_USAGE,
				      "repository '%s' already exists", path);
		goto out;
	}
	rc = dir_is_empty(dirfd, &empty);
	if (rc < 0) {
		rc = strata_error_errno(err, -rc, "cannot read '%s'", path);
		goto out;
	}
	if (!empty) {
		rc = strata_error_set(err, -EEXIST, STRATA_ERR_USAGE,
				      "cannot create repository in '%s': directory not empty", path);
		goto out;
	}
	if (fchmod(dirfd, 0700) < 0) {
		rc = strata_error_errno(err, errno, "cannot chmod '%s'", path);
		goto out;
	}
	if (strata_random(id, sizeof(id)) < 0) {
		rc = strata_error_set(err, -EIO, STRATA_ERR_INTERNAL, "cannot get random bytes");
		goto out;
	}
	strata_hex(id_hex, id, sizeof(id));
	if (mkdirat(dirfd, ARCHIVES_DIR, 0700) < 0) {
		rc = strata_error_errno(err, errno, "cannot create '%s/%s'", path, ARCHIVES_DIR);
		goto out;
	}
	fd = openat(dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = strata_error_errno(err, errno, "cannot create '%s/%s'", path, LOCK_FILE);
		goto out;
	}
	close(fd);
	if (opts->passphrase) {
		rc = key_file_create(dirfd, path, id_hex, opts, err);
		if (rc < 0)
			goto out;
	}
	snprintf(text, sizeof(text), "# strata repository\nformat 1\nid %s\nencrypted %s\n",
		 id_hex, opts->passphrase ? "yes" : "no");
	snprintf(what, sizeof(what), "%s/%s", path, REPO_FILE);
	rc = file_write_atomic(dirfd, REPO_FILE, what, text, strlen(text), 0600, err);
out:
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

/* ---- open / close -------------------------------------------------------- */

int strata_repo_open(const char *path, struct strata_repo **ret, struct strata_error *err)
{
	struct strata_repo *repo = NULL;
	struct kv kv[KV_MAX];
	char what[4200];
	const char *v;
	uint64_t format;
	int n, rc;

	if (!path || !*path || strlen(path) >= 4096)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "invalid repository path");
	snprintf(what, sizeof(what), "%s/%s", path, REPO_FILE);
	repo = calloc(1, sizeof(*repo));
	if (!repo)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	repo->dirfd = repo->archives_fd = repo->lock_fd = -1;
	repo->path = strdup(path);
	if (!repo->path) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	repo->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (repo->dirfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			rc = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
					      "no repository at '%s'", path);
		else
			rc = strata_error_errno(err, errno, "cannot open repository '%s'", path);
		goto out;
	}
	rc = kv_read(repo->dirfd, REPO_FILE, what, kv, &n, err);
	if (rc == -ENOENT) {
		rc = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
				      "no repository at '%s'", path);
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = kv_u64(kv, n, "format", 1, UINT32_MAX, &format, what, err);
	if (rc < 0)
		goto out;
	if (format != 1) {
		rc = strata_error_set(err, -ENOTSUP, STRATA_ERR_USAGE,
				      "repository '%s' has unsupported format %llu", path,
				      (unsigned long long)format);
		goto out;
	}
	v = kv_get(kv, n, "id");
	if (!v || strlen(v) != 32 || strspn(v, "0123456789abcdef") != 32) {
		rc = strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
				      "corrupt '%s': bad 'id'", what);
		goto out;
	}
	memcpy(repo->id, v, 33);
	v = kv_get(kv, n, "encrypted");
	if (!v || (strcmp(v, "yes") && strcmp(v, "no"))) {
		rc = strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
				      "corrupt '%s': bad 'encrypted'", what);
		goto out;
	}
	repo->encrypted = !strcmp(v, "yes");
	repo->archives_fd = openat(repo->dirfd, ARCHIVES_DIR,
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (repo->archives_fd < 0) {
		rc = strata_error_errno(err, errno, "cannot open '%s/%s'", path, ARCHIVES_DIR);
		goto out;
	}
	*ret = repo;
	repo = NULL;
	rc = 0;
out:
	strata_repo_close(repo);
	return rc;
}

void strata_repo_close(struct strata_repo *repo)
{
	if (!repo)
		return;
	strata_repo_unlock_write(repo);
	if (repo->lock_fd >= 0)
		close(repo->lock_fd);
	if (repo->archives_fd >= 0)
		close(repo->archives_fd);
	if (repo->dirfd >= 0)
		close(repo->dirfd);
	strata_crypto_wipe(repo->master_key, sizeof(repo->master_key));
	free(repo->path);
	free(repo);
}

const char *strata_repo_path(const struct strata_repo *repo)
{
	return repo->path;
}

const char *strata_repo_id(const struct strata_repo *repo)
{
	return repo->id;
}

bool strata_repo_encrypted(const struct strata_repo *repo)
{
	return repo->encrypted;
}

int strata_repo_archives_fd(const struct strata_repo *repo)
{
	return repo->archives_fd;
}

const uint8_t *strata_repo_master_key(const struct strata_repo *repo)
{
	return repo->encrypted && repo->unlocked ? repo->master_key : NULL;
}

/* ---- unlock ---------------------------------------------------------------- */

int strata_repo_unlock(struct strata_repo *repo, const char *pass, size_t len,
		       struct strata_error *err)
{
	uint8_t kek[STRATA_KEY_LEN], salt[KDF_SALT_LEN], nonce[STRATA_GCM_NONCE_LEN];
	uint8_t sealed[STRATA_KEY_LEN + STRATA_GCM_TAG_LEN];
	uint8_t aad[sizeof(KEY_AAD_PREFIX) - 1 + 32];
	struct kv kv[KV_MAX];
	char what[4200];
	const char *kdf;
	uint64_t format, t, m, p;
	int n, rc;

	if (!repo->encrypted || repo->unlocked)
		return 0;
	snprintf(what, sizeof(what), "%s/%s", repo->path, KEY_FILE);
	rc = kv_read(repo->dirfd, KEY_FILE, what, kv, &n, err);
	if (rc == -ENOENT) {
		rc = strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
				      "repository '%s' is encrypted but '%s' is missing",
				      repo->path, what);
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = kv_u64(kv, n, "format", 1, 1, &format, what, err);
	if (rc < 0)
		goto out;
	rc = kv_hex(kv, n, "salt", salt, sizeof(salt), what, err);
	if (rc < 0)
		goto out;
	rc = kv_hex(kv, n, "nonce", nonce, sizeof(nonce), what, err);
	if (rc < 0)
		goto out;
	rc = kv_hex(kv, n, "sealed", sealed, sizeof(sealed), what, err);
	if (rc < 0)
		goto out;
	kdf = kv_get(kv, n, "kdf");
	if (kdf && !strcmp(kdf, "argon2id")) {
		if ((rc = kv_u64(kv, n, "t", 1, KDF_T_MAX, &t, what, err)) < 0 ||
		    (rc = kv_u64(kv, n, "p", 1, KDF_P_MAX, &p, what, err)) < 0 ||
		    (rc = kv_u64(kv, n, "m", 8 * p, KDF_M_MAX, &m, what, err)) < 0)
			goto out;
		if (!HAVE_ARGON2) {
			rc = strata_error_set(err, -ENOTSUP, STRATA_ERR_USAGE,
					      "repository '%s' uses argon2id but strata was built without libargon2",
					      repo->path);
			goto out;
		}
		rc = strata_crypto_argon2id(pass, len, salt, sizeof(salt), (uint32_t)t,
					    (uint32_t)m, (uint32_t)p, kek, sizeof(kek));
	} else if (kdf && !strcmp(kdf, "scrypt")) {
		if ((rc = kv_u64(kv, n, "logn", 1, SCRYPT_LOGN_MAX, &t, what, err)) < 0 ||
		    (rc = kv_u64(kv, n, "r", 1, 32, &m, what, err)) < 0 ||
		    (rc = kv_u64(kv, n, "p", 1, KDF_P_MAX, &p, what, err)) < 0)
			goto out;
		rc = strata_crypto_scrypt(pass, len, salt, sizeof(salt), 1ull << t, (uint32_t)m,
					  (uint32_t)p, kek, sizeof(kek));
	} else {
		rc = strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
				      "corrupt '%s': bad 'kdf'", what);
		goto out;
	}
	if (rc < 0) {
		rc = strata_error_set(err, rc, STRATA_ERR_INTERNAL,
				      "cannot derive the key of repository '%s'", repo->path);
		goto out;
	}
	memcpy(aad, KEY_AAD_PREFIX, sizeof(KEY_AAD_PREFIX) - 1);
	memcpy(aad + sizeof(KEY_AAD_PREFIX) - 1, repo->id, 32);
	rc = strata_crypto_gcm_open(kek, nonce, aad, sizeof(aad), sealed, STRATA_KEY_LEN,
				    sealed + STRATA_KEY_LEN);
	if (rc == -EBADMSG) {
		rc = strata_error_set(err, -EACCES, STRATA_ERR_AUTH,
				      "wrong passphrase for repository '%s'", repo->path);
		goto out;
	}
	if (rc < 0) {
		rc = strata_error_set(err, rc, STRATA_ERR_INTERNAL,
				      "cannot open the key of repository '%s'", repo->path);
		goto out;
	}
	memcpy(repo->master_key, sealed, STRATA_KEY_LEN);
	repo->unlocked = true;
out:
	strata_crypto_wipe(kek, sizeof(kek));
	strata_crypto_wipe(sealed, sizeof(sealed));
	return rc;
}

/* ---- writer lock ------------------------------------------------------------- */

int strata_repo_lock_write(struct strata_repo *repo, bool wait, struct strata_error *err)
{
	if (repo->locked)
		return 0;
	if (repo->lock_fd < 0) {
		repo->lock_fd = openat(repo->dirfd, LOCK_FILE,
				       O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (repo->lock_fd < 0)
			return strata_error_errno(err, errno, "cannot open '%s/%s'", repo->path,
						  LOCK_FILE);
	}
	while (flock(repo->lock_fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return strata_error_set(err, -EAGAIN, STRATA_ERR_LOCKED,
						"repository '%s' is locked by another writer",
						repo->path);
		return strata_error_errno(err, errno, "cannot lock '%s/%s'", repo->path,
					  LOCK_FILE);
	}
	repo->locked = true;
	return 0;
}

void strata_repo_unlock_write(struct strata_repo *repo)
{
	if (!repo || !repo->locked)
		return;
	flock(repo->lock_fd, LOCK_UN);
	repo->locked = false;
}
