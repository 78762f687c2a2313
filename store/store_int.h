/*
 * store_int.h - internals shared by the store/ sources (and its unit
 * test).  No other module includes this file.
 */
#ifndef STRATA_STORE_INT_H
#define STRATA_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* ---- archive container constants ------------------------------------- */

#define STRATA_SKIPPABLE_HEADER_MAGIC 0x184D2A50u
#define STRATA_SEEKTABLE_MAGIC 0x184D2A5Eu
#define STRATA_SEEKTABLE_FOOTER_MAGIC 0x8F92EAB1u
#define STRATA_SEEKTABLE_DESCRIPTOR 0x80u
#define STRATA_ZSTD_FRAME_MAGIC 0xFD2FB528u

/* Header payload: "STRATA\0\1", flags u32le, archive id, salt. */
#define STRATA_HEADER_PAYLOAD (8 + 4 + STRATA_ARCHIVE_ID_LEN + 32)
#define STRATA_HEADER_SIZE (8 + STRATA_HEADER_PAYLOAD)
#define STRATA_HEADER_FLAG_SEALED 0x1u

#define STRATA_SEEK_ENTRY_SIZE 12
#define STRATA_SEEK_FOOTER_SIZE 9
#define STRATA_FRAME_ENC_SIZE 28

#define STRATA_GCM_TAG_LEN 16
#define STRATA_GCM_NONCE_LEN 12
/* The smallest zstd frame with a content checksum is larger than this. */
#define STRATA_ZSTD_FRAME_MIN 9u
/* Caps for anything parsed: frames per archive, compressed frame size. */
#define STRATA_FRAMES_MAX (1u << 23)
#define STRATA_CFRAME_MAX (STRATA_FRAME_MAX + (STRATA_FRAME_MAX >> 7) + 4096u + STRATA_GCM_TAG_LEN)

#define STRATA_ARCHIVE_KDF_INFO "strata archive v1"

/* ---- crypto (store_crypto.c) ------------------------------------------ */

/* Wipe secrets (OPENSSL_cleanse). */
void strata_crypto_wipe(void *p, size_t n);

/* HKDF-SHA256(ikm, salt, info) -> out[outlen].  0 or -EIO. */
int strata_crypto_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		       const char *info, uint8_t *out, size_t out_len);

/*
 * AES-256-GCM in place.  seal: encrypts buf[0..n) and writes the tag to
 * tag[16].  open: decrypts buf[0..n) and checks tag; -EBADMSG when the tag
 * does not match (buf then holds garbage), -EIO on a library failure.
 */
int strata_crypto_gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
			   size_t aad_len, uint8_t *buf, size_t n, uint8_t tag[16]);
int strata_crypto_gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
			   size_t aad_len, uint8_t *buf, size_t n, const uint8_t tag[16]);

/* Passphrase KDFs.  0, -EINVAL (bad parameters), -ENOMEM or -EIO. */
int strata_crypto_argon2id(const char *pass, size_t len, const uint8_t *salt, size_t salt_len,
			   uint32_t t_cost, uint32_t m_cost_kib, uint32_t parallelism,
			   uint8_t *out, size_t out_len);
int strata_crypto_scrypt(const char *pass, size_t len, const uint8_t *salt, size_t salt_len,
			 uint64_t n, uint32_t r, uint32_t p, uint8_t *out, size_t out_len);

/* ---- archive sealing (store_archive.c) ------------------------------- */

/* Nonce and AAD of frame 'index' of archive 'id' (see store.h). */
void strata_archive_frame_nonce(uint8_t nonce[12], uint64_t index);
void strata_archive_frame_aad(uint8_t aad[STRATA_ARCHIVE_ID_LEN + 9],
			      const uint8_t id[STRATA_ARCHIVE_ID_LEN], uint64_t index, bool last);

/* "STRATA\0\1": the header payload's signature. */
extern const uint8_t strata_header_sig[8];

/* Seal frame 'index' in place: buf[0..n) encrypted, its tag at buf + n. */
int strata_frame_seal(const uint8_t key[32], const uint8_t id[16], uint64_t index, bool last,
		      uint8_t *buf, size_t n);

/*
 * Check a frame table: frame 0 right after the header, frames contiguous
 * in the file and in the stream, sizes within caps, the end within
 * file_end.  'what' starts the message.
 */
int strata_frames_check(const struct strata_frame *f, uint32_t n, uint64_t file_end,
			const char *what, struct strata_error *err);

/* ---- frame cache internals (store_reader.c) -------------------------- */

/*
 * A cached, decompressed frame.  Owned by the cache; a caller holding a
 * reference from _get or _insert reads data[0..size) and releases it with
 * _put.  An entry evicted while referenced is freed by the last _put.
 */
struct strata_cache_entry {
	uint8_t key_id[STRATA_ARCHIVE_ID_LEN];
	uint32_t key_index;
	uint32_t size;
	uint8_t *data;
	unsigned refs;
	bool in_table;
	struct strata_cache_entry *hnext;             /* hash chain */
	struct strata_cache_entry *lru_prev, *lru_next;
};

/* Look up (id, index); NULL on a miss.  A hit is referenced and made most recent. */
struct strata_cache_entry *strata_frame_cache_get(struct strata_frame_cache *c,
						  const uint8_t id[STRATA_ARCHIVE_ID_LEN],
						  uint32_t index);
/*
 * Insert data (malloc'd, size bytes; the cache takes ownership even on
 * failure) under (id, index), evicting least recently used entries over
 * budget.  Returns a referenced entry: the new one, or an existing one of
 * the same size for the same key (data is then freed); NULL only when the
 * entry itself cannot be allocated (data is freed too).
 */
struct strata_cache_entry *strata_frame_cache_insert(struct strata_frame_cache *c,
						     const uint8_t id[STRATA_ARCHIVE_ID_LEN],
						     uint32_t index, uint8_t *data, uint32_t size);
void strata_frame_cache_put(struct strata_frame_cache *c, struct strata_cache_entry *e);
/* Bytes held by entries in the table, and their number (tests). */
uint64_t strata_frame_cache_used(struct strata_frame_cache *c, uint64_t *ret_count);

#endif
