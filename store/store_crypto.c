/*
 * store_crypto.c - the small cryptographic toolbox of store/: SHA-256,
 * random bytes, HKDF-SHA256, AES-256-GCM sealing in place, and the
 * passphrase KDFs (Argon2id through libargon2, scrypt through OpenSSL when
 * libargon2 is missing).  Everything goes through OpenSSL 3 EVP; secrets
 * are wiped with OPENSSL_cleanse.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#if HAVE_ARGON2
#include <argon2.h>
#endif

#include "store.h"
#include "store_int.h"

struct strata_sha256 {
	EVP_MD_CTX *ctx;
};

int strata_sha256_new(struct strata_sha256 **ret)
{
	struct strata_sha256 *h;
	int rc = -ENOMEM;

	h = calloc(1, sizeof(*h));
	if (!h)
		goto out;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx)
		goto out;
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		rc = -EIO;
		goto out;
	}
	*ret = h;
	h = NULL;
	rc = 0;
out:
	strata_sha256_free(h);
	return rc;
}

void strata_sha256_update(struct strata_sha256 *h, const void *p, size_t n)
{
	if (n)
		EVP_DigestUpdate(h->ctx, p, n);
}

void strata_sha256_final(struct strata_sha256 *h, uint8_t out[32])
{
	unsigned int len = 32;

	EVP_DigestFinal_ex(h->ctx, out, &len);
	/* Same digest again: _ex2 with NULL reuses the fetched SHA-256 (OpenSSL 3) */
	EVP_DigestInit_ex2(h->ctx, NULL, NULL);
}

void strata_sha256_free(struct strata_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

/*
 * Straight from the kernel (getrandom(2), the source OpenSSL seeds from):
 * RAND_bytes' first call instantiates its DRBG, fetching AES through the
 * provider machinery, which was ~15% of the instructions of an hourly
 * `strata run`.
 */
int strata_random(void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t k = getrandom(p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

void strata_crypto_wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

int strata_crypto_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		       const char *info, uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5];
	int rc = -EIO;

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		goto out;
	ctx = EVP_KDF_CTX_new(kdf);
	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
						      strlen(info));
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, out_len, params) != 1)
		goto out;
	rc = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* One AES-256-GCM pass in place; enc selects sealing or opening. */
static int gcm_run(bool enc, const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
		   size_t aad_len, uint8_t *buf, size_t n, uint8_t tag[16])
{
	EVP_CIPHER_CTX *ctx;
	int len, rc = -EIO;

	if (n > INT_MAX || aad_len > INT_MAX)
		return -EINVAL;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, STRATA_GCM_NONCE_LEN, NULL) != 1)
		goto out;
	if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
		goto out;
	if (aad_len && EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1)
		goto out;
	if (n && EVP_CipherUpdate(ctx, buf, &len, buf, (int)n) != 1)
		goto out;
	if (enc) {
		if (EVP_CipherFinal_ex(ctx, buf + n, &len) != 1)
			goto out;
		if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, STRATA_GCM_TAG_LEN, tag) != 1)
			goto out;
	} else {
		if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, STRATA_GCM_TAG_LEN, tag) != 1)
			goto out;
		if (EVP_CipherFinal_ex(ctx, buf + n, &len) != 1) {
			rc = -EBADMSG;
			goto out;
		}
	}
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int strata_crypto_gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
			   size_t aad_len, uint8_t *buf, size_t n, uint8_t tag[16])
{
	return gcm_run(true, key, nonce, aad, aad_len, buf, n, tag);
}

int strata_crypto_gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
			   size_t aad_len, uint8_t *buf, size_t n, const uint8_t tag[16])
{
	uint8_t t[STRATA_GCM_TAG_LEN];

	memcpy(t, tag, sizeof(t));
	return gcm_run(false, key, nonce, aad, aad_len, buf, n, t);
}

int strata_crypto_argon2id(const char *pass, size_t len, const uint8_t *salt, size_t salt_len,
			   uint32_t t_cost, uint32_t m_cost_kib, uint32_t parallelism,
			   uint8_t *out, size_t out_len)
{
#if HAVE_ARGON2
	int r;

	if (len > UINT32_MAX || salt_len > UINT32_MAX || out_len > UINT32_MAX)
		return -EINVAL;
	r = argon2id_hash_raw(t_cost, m_cost_kib, parallelism, pass, len, salt, salt_len, out,
			      out_len);
	if (r == ARGON2_OK)
		return 0;
	if (r == ARGON2_MEMORY_ALLOCATION_ERROR)
		return -ENOMEM;
	return -EINVAL;
#else
	(void)pass; (void)len; (void)salt; (void)salt_len; (void)t_cost;
	(void)m_cost_kib; (void)parallelism; (void)out; (void)out_len;
	return -ENOTSUP;
#endif
}

int strata_crypto_scrypt(const char *pass, size_t len, const uint8_t *salt, size_t salt_len,
			 uint64_t n, uint32_t r, uint32_t p, uint8_t *out, size_t out_len)
{
	/* scrypt needs 128 * r * (n + p) bytes and a little more. */
	uint64_t maxmem = 128u * (uint64_t)r * (n + p) + (1u << 20);

	if (EVP_PBE_scrypt(pass, len, salt, salt_len, n, r, p, maxmem, out, out_len) != 1)
		return -EINVAL;
	return 0;
}
