#!/bin/bash
# mount.sh - `strata mount` for real (issue 3): every snapshot of the
# round-trip tree (full, incremental, differential, incremental) reads back
# through the mount exactly as the tree was (treestate, the same comparison
# as restore), inodes are stable and hardlinks share one, every modifying
# call fails with EROFS, cp -a and rsync -aHAX out of the mount reproduce
# the tree, a backup that completes while mounted appears within a second
# and latest moves, --snapshot mounts one tree at the root, a damaged frame
# is EIO for that file only with a log line, --allow-other lets the kernel
# enforce the backed-up modes, and SIGTERM of a foreground mount leaves no
# stale mount.  The EXIT trap of lib.sh unmounts anything left below $T.
# shellcheck source-path=SCRIPTDIR source=lib.sh
# shellcheck disable=SC2010,SC2012,SC2016 # snapshot names are [0-9A-Za-z.-] (ls is fine); bash -c scripts take their arguments positionally
source "$(dirname "$0")/lib.sh"
need jq fusermount3 getfattr setfattr getfacl rsync
[[ -c /dev/fuse ]] || skip "no /dev/fuse"

# The snapshot keeps the modes of every directory above the source, and the
# unprivileged user of the access test must be able to walk down to it.
chmod 0755 "$T"
repo=$T/repo
src=$T/src
mnt=$T/mnt
srel=$(rel "$src")
mkdir -p "$mnt"

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }
umount_mnt() {
	fusermount3 -u "$1" 2>/dev/null || strata umount "$1" >/dev/null 2>&1 || :
	! is_mounted "$1" || fail "'$1' is still mounted"
}
# Mount in the background (the command returns once the mount answers).
mount_bg() {
	local m=$1
	shift
	expect_exit 0 strata -r "$repo" mount "$m" "$@"
	is_mounted "$m" || fail "strata mount returned but '$m' is not mounted"
}
# A foreground mount as a background job; waits until it answers.
FG_PID=
mount_fg() {
	local m=$1 log=$2 i
	shift 2
	# The binary itself (not the timeout wrapper), so signals reach it, and
	# with job control on, so SIGINT is not ignored as in a background job.
	set -m
	"$STRATA" -r "$repo" mount "$m" --foreground "$@" 2>"$log" &
	FG_PID=$!
	set +m
	BG_PIDS+=("$FG_PID")
	for ((i = 0; i < 500; i++)); do
		if is_mounted "$m" && stat "$m/." >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$FG_PID" 2>/dev/null || { cat "$log" >&2; fail "foreground mount exited"; }
		sleep 0.02
	done
	fail "foreground mount of '$m' did not answer in 10 s"
}
# expect_erofs cmd...: fails, and the reason is a read-only file system.
expect_erofs() {
	run_cmd "$@"
	if ((RC == 0)); then
		show_last
		fail "$(printf '%q ' "$@")succeeded on the read-only mount"
	fi
	grep -q 'Read-only file system' "$ERR" ||
		{ show_last; fail "$(printf '%q ' "$@")did not fail with EROFS"; }
}
name_of() { strata -r "$repo" list --json | jq -r --argjson id "$1" '.[] | select(.id == $id) | .name'; }
set_of() { strata -r "$repo" list --json | jq -r --argjson id "$1" '.[] | select(.id == $id) | .set'; }

# ---------------------------------------------------------------------------
log "generating the tree and four snapshots"
gen_tree "$src" "${BIG_FILE_MB:-20}"
expect_exit 0 strata -r "$repo" init
levels=(full incremental differential incremental)
declare -a ids names
for i in 0 1 2 3; do
	if ((i > 0)); then
		"mutate_$i" "$src"
	fi
	snapshot_state "$src" "$T/state$i"
	expect_exit 0 strata -r "$repo" backup --level "${levels[i]}" "$src"
	ids[i]=$(latest_id "$repo")
	names[i]=$(name_of "${ids[i]}")
	[[ -n ${names[i]} ]] || fail "snapshot ${ids[i]} has no name"
done
set=$(set_of "${ids[0]}")

log "mount"
start=$(date +%s%N)
mount_bg "$mnt"
ls "$mnt/$set" >/dev/null || fail "cannot list $mnt/$set"
log "mount answered in $((($(date +%s%N) - start) / 1000000)) ms"

# The layout: MOUNT/<set>/<name>... and latest.
[[ $(ls "$mnt") == "$set" ]] || fail "mount root lists '$(ls "$mnt")', wanted '$set'"
want=$(printf '%s\n' "${names[@]}" latest | sort)
got=$(ls "$mnt/$set" | sort)
[[ $want == "$got" ]] || fail "set directory lists '$got', wanted '$want'"
[[ -L $mnt/$set/latest ]] || fail "latest is not a symlink"
[[ $(readlink "$mnt/$set/latest") == "${names[3]}" ]] || fail "latest -> $(readlink "$mnt/$set/latest")"

log "fidelity: every snapshot equals the tree it was taken from"
for i in 0 1 2 3; do
	snapshot_state "$mnt/$set/${names[i]}/$srel" "$T/mounted$i"
	compare_states "$T/state$i" "$T/mounted$i" "snapshot ${names[i]} (${levels[i]}): source and mount"
done
snapshot_state "$mnt/$set/latest/$srel" "$T/mounted_latest"
compare_states "$T/state3" "$T/mounted_latest" "latest and the newest snapshot"
# sha256sum of every file, straight
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/sum.src"
(cd "$mnt/$set/${names[3]}/$srel" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/sum.mnt"
compare_states "$T/sum.src" "$T/sum.mnt" "sha256sum of source and mount"
# The same by name, with names taken from the source and the kernel's
# caches dropped: every file is looked up, and a small one has its frames
# loaded right after its lookup, before its read (fs_ops.c: op_lookup).
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || :
(cd "$src" && find . -type f -print0 | sort -z) >"$T/names.src"
(cd "$mnt/$set/${names[3]}/$srel" && xargs -0 sha256sum <"$T/names.src") >"$T/sum.byname"
compare_states "$T/sum.src" "$T/sum.byname" "sha256sum of source and mount, files read by name"
if ((HAVE_ACL)); then
	getfacl -n "$src/acl/file" >"$T/acl.src" 2>/dev/null
	getfacl -n "$mnt/$set/${names[3]}/$srel/acl/file" >"$T/acl.mnt" 2>/dev/null ||
		fail "getfacl on the mount failed"
	sed -i 1d "$T/acl.src" "$T/acl.mnt"   # the "# file:" line
	compare_states "$T/acl.src" "$T/acl.mnt" "getfacl of source and mount"
fi

log "inodes: stable, hardlinks shared with st_nlink, no collisions"
s0=$mnt/$set/${names[0]}/$srel
a=$(stat -c '%i %h' "$s0/hl/a/one")
b=$(stat -c '%i %h' "$s0/hl/b/two")
c=$(stat -c '%i %h' "$s0/hl/three")
[[ $a == "$b" && $a == "$c" ]] || fail "hardlink group: '$a' '$b' '$c' (inode nlink), wanted equal"
[[ ${a#* } == 3 ]] || fail "hardlink group: nlink ${a#* }, wanted 3"
[[ $(find "$s0/hl" -samefile "$s0/hl/three" | wc -l) == 3 ]] || fail "find -samefile does not find 3 names"
find "$s0" -printf '%i %p\n' | sort >"$T/inodes1"
# forget everything the kernel knows, then ask again
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || :
find "$s0" -printf '%i %p\n' | sort >"$T/inodes2"
compare_states "$T/inodes1" "$T/inodes2" "inode numbers before and after dropping caches"
dups=$(find "$s0" ! -type d -links 1 -printf '%i\n' | sort | uniq -d)
[[ -z $dups ]] || fail "distinct entries share inodes: $dups"
dirdups=$(find "$s0" -type d -printf '%i\n' | sort | uniq -d)
[[ -z $dirdups ]] || fail "directories share inodes: $dirdups"
# Across snapshots: an unchanged file is one inode (one catalog version,
# see fs/fs_inode.c), a changed one (even only its ctime) another, and a
# directory is one per snapshot.
ino_in() { stat -c %i "$mnt/$set/${names[$1]}/$srel/$2"; }
[[ $(ino_in 0 text/empty) == "$(ino_in 1 text/empty)" ]] ||
	fail "unchanged text/empty has two inodes in snapshots 0 and 1"
for p in text/one bin/r4096 text; do
	[[ $(ino_in 0 "$p") != "$(ino_in 1 "$p")" ]] || fail "$p: one inode in snapshots 0 and 1"
done
# so diff -r skips the unchanged files and still finds every change,
# including bin/r4096 (same size and mtime, new content)
rc=0
diff -rq --no-dereference "$mnt/$set/${names[0]}/$srel" "$mnt/$set/${names[1]}/$srel" >"$T/diffq" 2>&1 || rc=$?
((rc == 1)) || { cat "$T/diffq" >&2; fail "diff -rq of snapshots 0 and 1 exited $rc, wanted 1"; }
grep -q 'bin/r4096 and .* differ$' "$T/diffq" || { cat "$T/diffq" >&2; fail "diff -r misses bin/r4096"; }
grep -q 'text/one and .* differ$' "$T/diffq" || { cat "$T/diffq" >&2; fail "diff -r misses text/one"; }
grep -q 'Only in .*: new$' "$T/diffq" || { cat "$T/diffq" >&2; fail "diff -r misses new/"; }
! grep -q 'text/empty' "$T/diffq" || fail "diff -r reports unchanged text/empty"

log "read-only: every modifying call fails with EROFS"
s3=$mnt/$set/${names[3]}/$srel
expect_erofs touch "$s3/text/one"
expect_erofs touch "$s3/text/newfile"
expect_erofs rm -f "$s3/text/one"
expect_erofs mv "$s3/text/one" "$s3/text/moved"
expect_erofs mkdir "$s3/newdir"
expect_erofs rmdir "$s3/empty_dir/nested_empty"
expect_erofs chmod 0777 "$s3/text/one"
expect_erofs chown 1:1 "$s3/text/one"
expect_erofs setfattr -n user.x -v y "$s3/text/one"
expect_erofs setfattr -x user.comment "$s3/xattr/file"
expect_erofs truncate -s 0 "$s3/text/one"
expect_erofs ln "$s3/text/one" "$s3/text/hard"
expect_erofs ln -s one "$s3/text/soft"
expect_erofs dd if=/dev/zero of="$s3/text/one" bs=1 count=1 conv=notrunc status=none
expect_erofs bash -c ': >"$1"' _ "$s3/text/one"
expect_erofs bash -c 'printf x >>"$1"' _ "$s3/text/one"
expect_erofs touch -d 2000-01-01 "$s3/text/one"
expect_erofs mkfifo "$s3/newfifo"
expect_erofs rm -rf "$mnt/$set/${names[0]}"
expect_erofs mkdir "$mnt/newset"
[[ $(cat "$s3/text/one") == "$(cat "$src/text/one")" ]] || fail "text/one changed"

log "cp -a out of the mount reproduces the tree"
cp -a "$s3" "$T/cp3"
snapshot_state "$T/cp3" "$T/cpstate3"
compare_states "$T/state3" "$T/cpstate3" "source and cp -a out of the mount"
rm -rf "$T/cp3"
if command -v rsync >/dev/null; then
	log "rsync -aHAX out of the mount reproduces the tree"
	rsync -aHAX --sparse "$s3/" "$T/rs3/" || fail "rsync -aHAX out of the mount failed"
	snapshot_state "$T/rs3" "$T/rsstate3"
	compare_states "$T/state3" "$T/rsstate3" "source and rsync -aHAX out of the mount"
	rm -rf "$T/rs3"
else
	log "rsync is not installed: rsync -aHAX check skipped"
fi

log "live: a backup that completes while mounted appears within a second"
printf 'while mounted\n' >"$src/text/live"
snapshot_state "$src" "$T/state4"
ls "$mnt/$set" >/dev/null
expect_exit 0 strata -r "$repo" backup --level incremental "$src"
done_ns=$(date +%s%N)
seen=
while (($(date +%s%N) - done_ns < 1000000000)); do
	name4=$(ls "$mnt/$set" | grep -vxF -e latest "${names[@]/#/-e}" || :)
	if [[ -n $name4 && $(readlink "$mnt/$set/latest") == "$name4" ]]; then
		seen=1
		break
	fi
	sleep 0.02
done
[[ -n $seen ]] || fail "the new snapshot is not visible (or latest did not move) within 1 s"
# The backup must not have taken itself for the catalog's last user: the
# mount's SQLite handles keep reading the live WAL, not a deleted one.
mpid=$(pgrep -n -f -- "mount $mnt\$" || :)
[[ -n $mpid ]] || fail "cannot find the mount process"
if ls -l "/proc/$mpid/fd" 2>/dev/null | grep -q 'catalog\.db.*(deleted)'; then
	fail "the mount reads a deleted catalog WAL or shm after a backup: $(ls -l "/proc/$mpid/fd" | grep catalog)"
fi
log "new snapshot visible after $((($(date +%s%N) - done_ns) / 1000000)) ms"
id4=$(latest_id "$repo")
[[ $(name_of "$id4") == "$name4" ]] || fail "the new directory '$name4' is not snapshot $id4"
snapshot_state "$mnt/$set/$name4/$srel" "$T/mounted4"
compare_states "$T/state4" "$T/mounted4" "snapshot taken while mounted"
# symlink targets are cached by the kernel: paths through the moved latest
# must reach the new snapshot, not the one latest was read as before
cmp -s "$mnt/$set/latest/$srel/text/live" "$src/text/live" ||
	fail "a path through latest does not reach the new snapshot $name4"

log "live: a pruned snapshot disappears within a second; the others stay readable"
# The kernel keeps listings (no-opendir): the set directory's mtime must move.
cd "$mnt/$set" || fail "cannot enter $mnt/$set"
ls >/dev/null
strata -r "$repo" list --json | jq -r '.[].name' | sort >"$T/before.names"
# every period 1 h, a day later: only the newest and its base chain stay
STRATA_NOW=$(($(date +%s) + 86400)) expect_exit 0 strata -r "$repo" prune --set "$set" \
	--incremental-keep 1h --differential-keep 1h --full-keep 1h --monthly-keep 1h
pruned_ns=$(date +%s%N)
strata -r "$repo" list --json | jq -r '.[].name' | sort >"$T/after.names"
gone=$(comm -23 "$T/before.names" "$T/after.names")
[[ -n $gone ]] || fail "the prune removed no snapshot; the test needs one removed"
seen=
while (($(date +%s%N) - pruned_ns < 1000000000)); do
	# listed from inside the set directory: no path lookup refreshes it
	ls | grep -vxF latest | sort >"$T/listed.names"
	if cmp -s "$T/listed.names" "$T/after.names"; then
		seen=1
		break
	fi
	sleep 0.02
done
cd "$T" || fail "cannot leave the mount"
[[ -n $seen ]] || fail "after the prune the set lists '$(tr '\n' ' ' <"$T/listed.names")', wanted '$(tr '\n' ' ' <"$T/after.names")' within 1 s"
log "pruned snapshot gone from the listing after $((($(date +%s%N) - pruned_ns) / 1000000)) ms"
[[ ! -e $mnt/$set/$gone ]] || fail "pruned snapshot $gone can still be looked up"
snapshot_state "$mnt/$set/$name4/$srel" "$T/mounted4b"
compare_states "$T/state4" "$T/mounted4b" "the newest snapshot after the prune"
umount_mnt "$mnt"

log "--snapshot ID mounts one tree at the root"
# (snapshot 2, the differential: the prune above kept it as a base)
mount_bg "$mnt" --snapshot "${ids[2]}"
snapshot_state "$mnt/$srel" "$T/single2"
compare_states "$T/state2" "$T/single2" "--snapshot ${ids[2]} and its source state"
umount_mnt "$mnt"

log "mount point in use, missing or dead: one clear error, nothing stacked"
mount_bg "$mnt"
expect_exit 2 strata -r "$repo" mount "$mnt"
expect_one_line_err
expect_err_contains "already a FUSE mount"
n=$(awk -v m="$mnt" '$2 == m { n++ } END { print n + 0 }' /proc/self/mounts)
[[ $n == 1 ]] || fail "a second mount was stacked on '$mnt' ($n mounts)"
ls "$mnt/$set" >/dev/null || fail "the first mount stopped answering"
umount_mnt "$mnt"
expect_exit 4 strata -r "$repo" mount "$T/no-such-dir"
expect_err_contains "$T/no-such-dir"
# a mount whose process was killed answers ENOTCONN until unmounted
mount_fg "$mnt" "$T/fg.log"
kill -KILL "$FG_PID"
wait "$FG_PID" 2>/dev/null || :
expect_exit 2 strata -r "$repo" mount "$mnt"
expect_err_contains "process has ended"
fusermount3 -u "$mnt" || fail "cannot unmount the dead mount"
mount_bg "$mnt"
umount_mnt "$mnt"

log "access: the kernel enforces the backed-up modes"
user=strata-mt$$
if command -v useradd >/dev/null && command -v setpriv >/dev/null &&
	useradd -M -N -s /usr/sbin/nologin "$user" 2>/dev/null; then
	trap 'rc=$?; userdel "$user" 2>/dev/null; (exit $rc); cleanup' EXIT
	uid=$(id -u "$user")
	gid=$(id -g "$user")
	as_user() { setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@"; }
	# without --allow-other only the mounting user sees the tree
	mount_bg "$mnt"
	if as_user ls "$mnt" >/dev/null 2>&1; then
		fail "user $user can list the mount without --allow-other"
	fi
	umount_mnt "$mnt"
	mount_bg "$mnt" --allow-other
	s=$mnt/$set/${names[3]}/$srel
	as_user cat "$s/modes/m0755" >/dev/null || fail "user $user cannot read a 0755 file"
	if as_user cat "$s/modes/m0600" >/dev/null 2>&1; then
		fail "user $user can read a 0600 root file"
	fi
	if as_user ls "$s/modes/private_dir" >/dev/null 2>&1; then
		fail "user $user can list a 0700 root directory"
	fi
	if ((HAVE_ACL)); then
		# acl/file grants u:1234 rwx; a user with another uid gets only "other" bits
		as_user cat "$s/acl/file" >/dev/null 2>&1 || :
	fi
	umount_mnt "$mnt"
	userdel "$user" 2>/dev/null || :
	trap cleanup EXIT
else
	log "cannot create a test user: --allow-other access check skipped"
fi

log "SIGTERM of a foreground mount leaves no stale mount"
mount_fg "$mnt" "$T/fg.log"
ls "$mnt/$set" >/dev/null
kill -TERM "$FG_PID"
wait "$FG_PID" || fail "foreground mount exited $? after SIGTERM"
! is_mounted "$mnt" || fail "stale mount after SIGTERM"
ls "$mnt" >/dev/null 2>&1 || fail "mount point unusable after SIGTERM"
mount_fg "$mnt" "$T/fg.log"
kill -INT "$FG_PID"
wait "$FG_PID" || fail "foreground mount exited $? after SIGINT"
! is_mounted "$mnt" || fail "stale mount after SIGINT"

log "damage: a corrupted frame is EIO for that file only, with a log line"
dsrc=$T/dsrc
repo=$T/drepo
mkdir -p "$dsrc/small"
for i in $(seq 1 30); do printf 'small file %d\n' "$i" >"$dsrc/small/f$i"; done
head -c $((8 * 1048576)) /dev/urandom >"$dsrc/big"
printf 'tail\n' >"$dsrc/zz_last"
expect_exit 0 strata -r "$repo" init
expect_exit 0 strata -r "$repo" backup --level full "$dsrc"
did=$(latest_id "$repo")
dname=$(name_of "$did")
dset=$(set_of "$did")
aname=$(archives "$repo")
flip_byte "$repo/archives/$aname" $(($(stat -c %s "$repo/archives/$aname") / 2))
mount_fg "$mnt" "$T/damage.log"
d=$mnt/$dset/$dname/$(rel "$dsrc")
if cat "$d/big" >/dev/null 2>"$T/cat.err"; then
	fail "reading a file over a damaged frame succeeded"
fi
grep -q 'Input/output error' "$T/cat.err" || fail "damaged read: $(cat "$T/cat.err"), wanted EIO"
for i in $(seq 1 30); do
	cmp -s "$dsrc/small/f$i" "$d/small/f$i" || fail "small/f$i unreadable next to a damaged frame"
done
cmp -s "$dsrc/zz_last" "$d/zz_last" || fail "zz_last unreadable next to a damaged frame"
kill -TERM "$FG_PID"
wait "$FG_PID" || :
grep -q "big" "$T/damage.log" || { cat "$T/damage.log" >&2; fail "the log line does not name the file"; }
grep -q "${aname%%.*}" "$T/damage.log" || { cat "$T/damage.log" >&2; fail "the log line does not name the archive"; }
[[ $(grep -c . "$T/damage.log") -le 2 ]] || { cat "$T/damage.log" >&2; fail "more than one log line per damaged file"; }

log "an encrypted repository mounts with the passphrase from the environment"
repo=$T/erepo
esrc=$T/esrc
mkdir -p "$esrc/d"
printf 'secret\n' >"$esrc/d/f"
head -c 3000000 /dev/urandom >"$esrc/big"
snapshot_state "$esrc" "$T/estate"
export STRATA_PASSPHRASE="mount test passphrase"
expect_exit 0 strata -r "$repo" init --encrypt
expect_exit 0 strata -r "$repo" backup --level full "$esrc"
eid=$(latest_id "$repo")
mount_bg "$mnt" --snapshot "$eid"
snapshot_state "$mnt/$(rel "$esrc")" "$T/emounted"
compare_states "$T/estate" "$T/emounted" "encrypted snapshot: source and mount"
umount_mnt "$mnt"
STRATA_PASSPHRASE=wrong expect_fail strata -r "$repo" mount "$mnt"
! is_mounted "$mnt" || fail "mounted with a wrong passphrase"
unset STRATA_PASSPHRASE

log "mount ok"
