/*
 * tarlib.c - dlopen() of libarchive for the backup's tar writer; see
 * tarlib.h for why.
 *
 * The pointers are resolved all at once, under a once-only lock, before
 * the first use: a backup either has the whole writer or fails at its
 * start with one line naming the library, never halfway through a tree.
 */
#include "tarlib.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define TARLIB_DEFINE(f) __typeof__(f) *sym_##f;
TARLIB_FUNCS(TARLIB_DEFINE)
#undef TARLIB_DEFINE

static pthread_once_t tarlib_once = PTHREAD_ONCE_INIT;
static char tarlib_failure[256]; /* empty once loaded */

static void tarlib_resolve(void)
{
	/* RTLD_NOW: a missing symbol shows here, not as a crash mid-backup */
	void *h = dlopen(TARLIB_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *missing = NULL;

	if (!h) {
		snprintf(tarlib_failure, sizeof(tarlib_failure), "%s", dlerror());
		return;
	}
#define TARLIB_RESOLVE(f)                                            \
	if (!missing) {                                              \
		void *p = dlsym(h, #f);                              \
		if (p)                                               \
			memcpy(&sym_##f, &p, sizeof(p));             \
		else                                                 \
			missing = #f;                                \
	}
	TARLIB_FUNCS(TARLIB_RESOLVE)
#undef TARLIB_RESOLVE
	if (missing) {
		snprintf(tarlib_failure, sizeof(tarlib_failure), "%s has no %s", TARLIB_SONAME,
			 missing);
		return;
	}
	if (sym_archive_version_number() < ARCHIVE_VERSION_NUMBER) {
		snprintf(tarlib_failure, sizeof(tarlib_failure),
			 "%s is version %d, strata was built with %d", TARLIB_SONAME,
			 sym_archive_version_number(), ARCHIVE_VERSION_NUMBER);
		return;
	}
	/* the handle stays open for the life of the process */
}

int tarlib_load(struct strata_error *err)
{
	if (pthread_once(&tarlib_once, tarlib_resolve) != 0)
		return strata_error_set(err, -EAGAIN, STRATA_ERR_INTERNAL,
					"cannot load %s", TARLIB_SONAME);
	if (tarlib_failure[0])
		return strata_error_set(err, -ELIBACC, STRATA_ERR_IO,
					"cannot load libarchive (package libarchive13): %s",
					tarlib_failure);
	return 0;
}
