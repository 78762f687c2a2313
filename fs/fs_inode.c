/*
 * fs_inode.c - how the mount names things: FUSE node ids (which are also the
 * st_ino users see) computed from catalog ids, and the one table the driver
 * keeps, for hardlinks.
 *
 * Invariants:
 * - A node id is a pure function of what it names, so the driver keeps no
 *   table of inodes and its memory does not grow with the number of files
 *   or snapshots.  Every handler decodes the id it is given:
 *
 *     1                         the mount's root: the list of sets, or with
 *                               --snapshot ID the root of that snapshot
 *     2 + 2 * set_id            MOUNT/<set>
 *     3 + 2 * (set_id | snap << 17)
 *                               MOUNT/<set>/latest while it points to
 *                               snapshot 'snap'
 *     snap << 40 | node         directory 'node' of the set tree as it is
 *                               in snapshot 'snap'; node 0 is the
 *                               snapshot's own directory MOUNT/<set>/<name>
 *     1 << 62 | version         every other entry: catalog version
 *                               'version', whichever snapshot shows it
 *
 *   with 1 <= set_id < 2^17, 1 <= snap < 2^22, 0 <= node < 2^40 and
 *   1 <= version < 2^62 (catalog row ids), so the top ids lie below 2^40,
 *   directory ids in [2^40, 2^62), file ids in [2^62, 2^63), and bit 63
 *   stays clear.  An entry whose ids do not fit is
 *   reported as EIO (EOVERFLOW inside).
 * - Ids are stable for the life of the mount.  Two different things never
 *   share one: a directory id names one node in one snapshot (the kernel
 *   allows a directory only one name), a file id one catalog version.
 * - So every symlink's target is fixed for the life of its id, and the
 *   kernel may cache symlink targets (FUSE_CAP_CACHE_SYMLINKS): `latest`
 *   gets a new id when it moves to a newer snapshot, and its next lookup
 *   (FS_TOP_TIMEOUT) replaces the cached one.  `diff -r`, `find -L` and
 *   `cp -rL` resolve a symlinked directory once per name instead of once
 *   per path below it.
 * - An unchanged file has ONE id in every snapshot that holds it.  A
 *   catalog version is immutable (content, metadata, ctime, nlink: any
 *   change makes a new version), so the snapshots that share it are
 *   showing the same file, exactly as rsnapshot or Time Machine trees
 *   hardlink an unchanged file into every snapshot directory.  Tools that
 *   compare snapshots take the shortcut they take for hardlinks: `diff -r`
 *   and `cmp` see the same (st_dev, st_ino) with equal attributes and skip
 *   reading both files, so comparing a full with an incremental reads only
 *   what changed.  st_nlink stays the backed-up link count, so cp -a,
 *   rsync -H, tar and du, which only track names of files with
 *   st_nlink > 1, treat each snapshot's copy as its own file.
 * - Hardlinks.  The catalog has one node (and version) per name.  For a
 *   regular file with nlink > 1 in snapshot S the first name handed out (by
 *   lookup, readdir or readdirplus) fixes the group's id: the map (S, dev,
 *   ino) -> node id remembers it and every other name of the group answers
 *   with that id, so stat, find -samefile, cp -a, rsync -H and du see one
 *   inode with the backed-up st_nlink.  getattr, open and read on the
 *   shared id use the first name's version, which has the same content and
 *   metadata.  The map only grows (entries are 32 bytes, one per hardlink
 *   group visited), since forgetting one would let a later lookup hand the
 *   group a second id.
 * - Lookup counts: no per-inode state exists, so forget is a no-op and
 *   readdirplus needs no undo when an entry does not fit (libfuse
 *   passthrough_ll.c counts and undoes because it keeps an fd per inode).
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NODE_MASK ((UINT64_C(1) << FS_NODE_BITS) - 1)

void fs_ino_decode(const struct fs *fs, fuse_ino_t nodeid, struct fs_ino *ret)
{
	uint64_t id = nodeid;

	memset(ret, 0, sizeof(*ret));
	if (id == FUSE_ROOT_ID) {
		if (fs->opts.snapshot > 0) {
			ret->kind = FS_TREE;
			ret->snap = fs->opts.snapshot;
			ret->node = 0;
		} else {
			ret->kind = FS_ROOT;
		}
		return;
	}
	if (id >> FS_NODE_BITS == 0) {
		if (id < 4 || fs->opts.snapshot > 0)
			return;
		ret->kind = id & 1 ? FS_LATEST : FS_SET;
		ret->set_id = (int64_t)((id - 2) / 2);
		if (ret->kind == FS_LATEST) {
			ret->snap = ret->set_id >> FS_SET_BITS;
			ret->set_id &= (INT64_C(1) << FS_SET_BITS) - 1;
		}
		return;
	}
	if (id >> 63)
		return;
	if (id >> FS_FILE_BIT) {
		ret->version = (int64_t)(id & ((UINT64_C(1) << FS_FILE_BIT) - 1));
		if (ret->version > 0)
			ret->kind = FS_FILE;
		return;
	}
	ret->snap = (int64_t)(id >> FS_NODE_BITS);
	ret->node = (int64_t)(id & NODE_MASK);
	if (fs->opts.snapshot > 0 && ret->snap != fs->opts.snapshot)
		return;
	if (fs->opts.snapshot > 0 && ret->node == 0)
		return;  /* the single snapshot's root is id 1 */
	ret->kind = FS_TREE;
}

fuse_ino_t fs_ino_set(int64_t set_id)
{
	if (set_id <= 0 || (uint64_t)set_id >> FS_SET_BITS)
		return 0;
	return (fuse_ino_t)(2 + 2 * (uint64_t)set_id);
}

fuse_ino_t fs_ino_latest(int64_t set_id, int64_t snap)
{
	if (!fs_ino_set(set_id) || snap <= 0 || (uint64_t)snap >> FS_SNAP_BITS)
		return 0;
	return (fuse_ino_t)(3 + 2 * ((uint64_t)set_id | (uint64_t)snap << FS_SET_BITS));
}

fuse_ino_t fs_ino_tree(const struct fs *fs, int64_t snap, int64_t node)
{
	if (snap <= 0 || node < 0 || (uint64_t)snap >> FS_SNAP_BITS ||
	    (uint64_t)node > NODE_MASK)
		return 0;
	if (node == 0 && fs->opts.snapshot > 0)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)((uint64_t)snap << FS_NODE_BITS | (uint64_t)node);
}

fuse_ino_t fs_ino_version(int64_t version)
{
	if (version <= 0 || (uint64_t)version >> FS_FILE_BIT)
		return 0;
	return (fuse_ino_t)(UINT64_C(1) << FS_FILE_BIT | (uint64_t)version);
}

/* ---- hardlink map: open addressing, linear probing, only grows ---------- */

void fs_hlmap_init(struct fs_hlmap *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
}

void fs_hlmap_release(struct fs_hlmap *m)
{
	free(m->v);
	m->v = NULL;
	m->n = m->alloc = 0;
	pthread_mutex_destroy(&m->lock);
}

static size_t hl_hash(int64_t snap, uint64_t dev, uint64_t ino)
{
	uint64_t h = (uint64_t)snap * UINT64_C(0x9E3779B97F4A7C15);

	h ^= dev + UINT64_C(0x632BE59BD9B4E019) + (h << 6) + (h >> 2);
	h ^= ino * UINT64_C(0xC2B2AE3D27D4EB4F);
	h ^= h >> 29;
	return (size_t)h;
}

static struct fs_hl_slot *hl_slot(struct fs_hl_slot *v, size_t alloc, int64_t snap, uint64_t dev,
				  uint64_t ino)
{
	size_t i = hl_hash(snap, dev, ino) & (alloc - 1);

	while (v[i].snap && !(v[i].snap == snap && v[i].dev == dev && v[i].ino == ino))
		i = (i + 1) & (alloc - 1);
	return &v[i];
}

static int hl_grow(struct fs_hlmap *m)
{
	size_t na = m->alloc ? m->alloc * 2 : 64;
	struct fs_hl_slot *nv = calloc(na, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < m->alloc; i++)
		if (m->v[i].snap)
			*hl_slot(nv, na, m->v[i].snap, m->v[i].dev, m->v[i].ino) = m->v[i];
	free(m->v);
	m->v = nv;
	m->alloc = na;
	return 0;
}

fuse_ino_t fs_ino_entry(struct fs *fs, int64_t snap, const struct strata_entry *e)
{
	struct fs_hlmap *m = &fs->hl;
	struct fs_hl_slot *s;
	fuse_ino_t id;

	if (e->type == STRATA_T_DIR)
		return fs_ino_tree(fs, snap, e->node_id);
	id = fs_ino_version(e->version_id);
	if (!id || e->type != STRATA_T_REG || e->nlink <= 1)
		return id;
	pthread_mutex_lock(&m->lock);
	if ((m->n + 1) * 4 > m->alloc * 3 && hl_grow(m) < 0) {
		/* Out of memory: the name's own id (hardlinks then look like copies). */
		pthread_mutex_unlock(&m->lock);
		return id;
	}
	s = hl_slot(m->v, m->alloc, snap, e->dev, e->ino);
	if (!s->snap) {
		s->snap = snap;
		s->dev = e->dev;
		s->ino = e->ino;
		s->nodeid = id;
		m->n++;
	}
	id = s->nodeid;
	pthread_mutex_unlock(&m->lock);
	return id;
}
