/*
 * tarlib.h - libarchive's pax writer, loaded on first use.
 *
 * Only a backup writes tar members, and libarchive drags twelve libraries
 * into every process that links it (libxml2, ICU, libstdc++, nettle, lzma,
 * ...): ~5 ms of dynamic loading and relocation per start, ~12 ms after a
 * cache drop.  Every other command (mount, restore, list, status, verify)
 * starts without them, so strata links libarchive's headers only and
 * dlopen()s the library the first time a backup needs it.  The same
 * pattern as systemd's dlopen_*() helpers: one pointer per function, typed
 * from libarchive's own prototypes so the compiler checks every call.
 */
#ifndef STRATA_TARLIB_H
#define STRATA_TARLIB_H

#include "common.h"

#include <archive.h>
#include <archive_entry.h>

/* The soname of libarchive 3.x; meson checks the headers are 3.x. */
#define TARLIB_SONAME "libarchive.so.13"

/* Every libarchive function strata calls.  X(name) per function. */
#define TARLIB_FUNCS(X)                      \
	X(archive_version_number)            \
	X(archive_error_string)              \
	X(archive_write_new)                 \
	X(archive_write_free)                \
	X(archive_write_set_format_pax)      \
	X(archive_write_set_bytes_per_block) \
	X(archive_write_open)                \
	X(archive_write_header)              \
	X(archive_write_data)                \
	X(archive_write_close)               \
	X(archive_entry_new)                 \
	X(archive_entry_free)                \
	X(archive_entry_clear)               \
	X(archive_entry_set_pathname)        \
	X(archive_entry_copy_pathname)       \
	X(archive_entry_set_filetype)        \
	X(archive_entry_set_mode)            \
	X(archive_entry_set_perm)            \
	X(archive_entry_set_size)            \
	X(archive_entry_set_mtime)           \
	X(archive_entry_set_uid)             \
	X(archive_entry_set_gid)             \
	X(archive_entry_copy_uname)          \
	X(archive_entry_copy_gname)          \
	X(archive_entry_set_rdev)            \
	X(archive_entry_copy_symlink)        \
	X(archive_entry_copy_hardlink)       \
	X(archive_entry_xattr_add_entry)     \
	X(archive_entry_sparse_add_entry)

#define TARLIB_DECLARE(f) extern __typeof__(f) *sym_##f;
TARLIB_FUNCS(TARLIB_DECLARE)
#undef TARLIB_DECLARE

/*
 * Load libarchive and resolve every sym_ pointer; cheap after the first
 * call.  Fails (STRATA_ERR_INTERNAL, naming the library and what is
 * missing) when the library is absent or older than the headers strata was
 * built with.
 */
int tarlib_load(struct strata_error *err);

#endif
