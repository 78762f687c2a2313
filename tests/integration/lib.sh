# shellcheck shell=bash
# lib.sh - shared setup for strata's integration tests; sourced by each test.
#
# Environment (meson sets the first three):
#   STRATA     the strata binary
#   TREESTATE  the tree digest tool built from treestate.c
#   SRCDIR     tests/integration in the source tree
#   BIG_FILE_MB  size of the big incompressible file gen_tree makes when
#                asked for one (roundtrip only), default 200
#   KEEP_TMP=1   keep the temporary directory for a post-mortem
#
# Every test gets $T, a fresh directory under /tmp that the EXIT trap
# removes, after unmounting anything mounted below it and killing the
# background processes registered in BG_PIDS.
set -euo pipefail

: "${STRATA:?STRATA must name the strata binary}"
: "${TREESTATE:?TREESTATE must name the treestate binary}"
export LC_ALL=C
# Argon2 parameters that cost nothing, for every test repository.
export STRATA_KDF_COST="1,8192"
unset STRATA_PASSPHRASE STRATA_REPOSITORY

TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "/tmp/strata-it-${TEST_NAME}.XXXXXX")
BG_PIDS=()

cleanup() {
	local rc=$? pid mnt
	set +e
	for pid in "${BG_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	# Unmount everything below $T, deepest first.
	if [[ -r /proc/self/mounts ]]; then
		while read -r mnt; do
			fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
		done < <(awk -v t="$T" 'index($2, t "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
	fi
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		echo "# kept $T" >&2
	else
		chmod -R u+rwx "$T" 2>/dev/null
		rm -rf "$T"
	fi
	if ((rc == 0)); then
		echo "# $TEST_NAME: PASS" >&2
	elif ((rc == 77)); then
		echo "# $TEST_NAME: SKIP" >&2
	else
		echo "# $TEST_NAME: FAIL (exit $rc)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '# %s\n' "$*" >&2; }

fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

skip() {
	printf 'SKIP: %s\n' "$*" >&2
	exit 77
}

need() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || skip "'$p' is not installed"
	done
}

# The binary under test, bounded in time so a hang fails instead of stalling CI.
# With STRATA_VALGRIND=1 (meson test --setup valgrind) every call runs under
# valgrind: a memory error or a definite leak exits 99, which no test expects.
strata() {
	if [[ ${STRATA_VALGRIND:-0} == 1 ]]; then
		timeout -k 10 "${STRATA_TIMEOUT:-1800}" valgrind --quiet --error-exitcode=99 \
			--leak-check=full --errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect "$STRATA" "$@"
	else
		timeout -k 10 "${STRATA_TIMEOUT:-900}" "$STRATA" "$@"
	fi
}

# expect_exit CODE cmd...: run cmd, keep its output in $OUT and $ERR (files)
# and fail unless it exits with CODE.  A death by signal is always a failure.
OUT=
ERR=
RC=0
run_cmd() {
	OUT=$T/.last.out
	ERR=$T/.last.err
	RC=0
	"$@" >"$OUT" 2>"$ERR" </dev/null || RC=$?
}
show_last() {
	echo "--- stdout (first 20 lines):" >&2
	head -n 20 "$OUT" >&2
	echo "--- stderr (first 20 lines):" >&2
	head -n 20 "$ERR" >&2
}
expect_exit() {
	local want=$1
	shift
	run_cmd "$@"
	if ((RC >= 124 && RC != want)); then
		show_last
		fail "$(printf '%q ' "$@")-> exit $RC (signal or timeout), wanted $want"
	fi
	if [[ $RC != "$want" ]]; then
		show_last
		fail "$(printf '%q ' "$@")-> exit $RC, wanted $want"
	fi
}
# expect_fail cmd...: non-zero, but neither a crash (signal) nor a timeout.
expect_fail() {
	run_cmd "$@"
	if ((RC == 0)); then
		show_last
		fail "$(printf '%q ' "$@")succeeded, wanted a failure"
	fi
	if ((RC >= 124)); then
		show_last
		fail "$(printf '%q ' "$@")-> exit $RC (crash, signal or timeout)"
	fi
}
# stderr of the last command is exactly one line (the git-style message).
expect_one_line_err() {
	local n
	n=$(wc -l <"$ERR")
	if [[ $n != 1 ]]; then
		show_last
		fail "wanted exactly one line on stderr, got $n"
	fi
}
# stderr of the last command mentions a fixed string.
expect_err_contains() {
	if ! grep -qF -- "$1" "$ERR"; then
		show_last
		fail "stderr does not mention '$1'"
	fi
}

# stdout or stderr of the last command mentions it (verify reports on stdout).
expect_output_contains() {
	if ! grep -qF -- "$1" "$OUT" "$ERR"; then
		show_last
		fail "neither stdout nor stderr mentions '$1'"
	fi
}

# ---------------------------------------------------------------------------
# Tree state

# snapshot_state DIR OUT [treestate options]
snapshot_state() {
	local dir=$1 out=$2
	shift 2
	"$TREESTATE" "$@" "$dir" >"$out" || fail "treestate $dir failed"
	[[ -s $out ]] || fail "treestate $dir printed nothing"
}

# compare_states EXPECTED ACTUAL [what]
compare_states() {
	local a=$1 b=$2 what=${3:-trees}
	if ! diff -u "$a" "$b" >"$T/.state.diff"; then
		echo "--- $what differ: first differences (- expected, + actual):" >&2
		grep -E '^[-+][^-+]' "$T/.state.diff" | head -n 40 >&2
		fail "$what differ ($(grep -cE '^[-+][^-+]' "$T/.state.diff") lines)"
	fi
}

# path of a source directory as stored in a snapshot (no leading '/')
rel() { printf '%s' "${1#/}"; }

# ---------------------------------------------------------------------------
# Repository helpers (need jq)

# snapshot ids, oldest first
snap_ids() { strata -r "$1" list --json | jq -r '.[].id'; }
latest_id() { strata -r "$1" list --json | jq -r 'max_by(.id).id'; }
# snap_field REPO ID FIELD
snap_field() {
	strata -r "$1" list --json | jq -r --argjson id "$2" --arg f "$3" '.[] | select(.id == $id) | .[$f]'
}
# archive files, sorted
archives() { find "$1/archives" -maxdepth 1 -type f -name '*.tar.zst*' ! -name '.*' -printf '%f\n' | sort; }
# the one archive that appeared between two listings (files)
new_archive() {
	local n
	n=$(comm -13 "$1" "$2")
	[[ $(printf '%s\n' "$n" | grep -c .) == 1 ]] || fail "expected one new archive, got: '$n'"
	printf '%s' "$n"
}
# flip_byte FILE OFFSET: xor one byte with 0xff, in place
flip_byte() {
	local f=$1 off=$2 b
	b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
	[[ -n $b ]] || fail "flip_byte: offset $off beyond $f"
	# shellcheck disable=SC2059
	printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# ---------------------------------------------------------------------------
# The test tree.  gen_tree DIR [BIG_MB]: everything a backup must carry.
# BIG_MB (default 0 = none) adds bin/big, that many MiB of random bytes.

# what gen_tree could create here (tests may look at them)
# shellcheck disable=SC2034
HAVE_ACL=0 HAVE_XATTR=0 HAVE_MKNOD=0

ts() { touch -h -d "$1" -- "${@:2}"; }

gen_tree() {
	local d=$1 big=${2:-0} i long p
	mkdir -p "$d"
	d=$(cd "$d" && pwd)

	# Regular files: sizes around block and frame boundaries, text and random.
	mkdir -p "$d/text" "$d/bin"
	: >"$d/text/empty"
	printf 'a' >"$d/text/one"
	seq 1 200000 >"$d/text/seq.txt"
	{ yes 'strata compressible line of text 0123456789' || :; } | head -c 5242880 >"$d/text/yes5m"
	# Random between a first byte 'R' and a last byte 'Z': rsync --sparse
	# writes a block of zeros as a hole, so a random file whose last block
	# held one byte (r4097, r131073, ...) came back with a hole when that byte
	# was 0x00 (1 tree in 256 per file), and mount.sh saw a difference.
	for i in 1 511 512 513 4095 4096 4097 65536 131073 1048575 1048576 1048577; do
		if ((i == 1)); then
			printf R
		else
			printf R && head -c "$((i - 2))" /dev/urandom && printf Z
		fi >"$d/bin/r$i"
	done
	head -c 3000000 /dev/urandom >"$d/bin/r3m"
	if ((big > 0)); then
		head -c "$((big * 1048576))" /dev/urandom >"$d/bin/big"
	fi

	# Empty directories.
	mkdir -p "$d/empty_dir/nested_empty" "$d/empty2"

	# Symlinks: relative, absolute, dangling, to a directory.
	mkdir -p "$d/links"
	ln -s ../text/one "$d/links/rel"
	ln -s /etc/hostname "$d/links/abs"
	ln -s does/not/exist "$d/links/dangling"
	ln -s /nonexistent/strata/target "$d/links/abs_dangling"
	ln -s ../text "$d/links/todir"
	ln -s "$(printf 'odd \\ target\nwith newline')" "$d/links/oddtarget"

	# Hardlink groups: three names across directories, and a pair.
	mkdir -p "$d/hl/a" "$d/hl/b"
	printf 'hardlinked content\n' >"$d/hl/a/one"
	ln "$d/hl/a/one" "$d/hl/b/two"
	ln "$d/hl/a/one" "$d/hl/three"
	head -c 70000 /dev/urandom >"$d/hl/pair1"
	ln "$d/hl/pair1" "$d/hl/b/pair2"

	# Special files.
	mkdir -p "$d/special"
	mkfifo "$d/special/fifo"
	if mknod "$d/special/null" c 1 3 2>/dev/null; then
		# shellcheck disable=SC2034
		HAVE_MKNOD=1
		mknod "$d/special/loop" b 7 200
	fi

	# Extended attributes and ACLs.
	mkdir -p "$d/xattr" "$d/acl/dir/sub"
	printf 'x\n' >"$d/xattr/file"
	printf 'y\n' >"$d/acl/file"
	printf 'z\n' >"$d/acl/dir/inherits"
	if setfattr -n user.comment -v "hello world" "$d/xattr/file" 2>/dev/null; then
		HAVE_XATTR=1
		setfattr -n user.binary -v 0x00ff10ab00 "$d/xattr/file"
		setfattr -n user.empty "$d/xattr/file"
		setfattr -n user.dir -v "on a directory" "$d/xattr"
		head -c 3000 /dev/urandom >"$T/.xattr.bin"
		setfattr -n user.big -v "0x$(od -An -tx1 -v "$T/.xattr.bin" | tr -d ' \n')" "$d/xattr/file"
	fi
	if setfacl -m u:1234:rwx,g:5678:r "$d/acl/file" 2>/dev/null; then
		HAVE_ACL=1
		setfacl -d -m u:1234:rx,g::r "$d/acl/dir"
		printf 'inherits default acl\n' >"$d/acl/dir/sub/child"
	fi

	# Sparse files with big aligned holes.
	mkdir -p "$d/sparse"
	truncate -s 100M "$d/sparse/s100"
	for i in 0 10 50 99; do
		head -c 1048576 /dev/urandom | dd of="$d/sparse/s100" bs=1M seek="$i" conv=notrunc status=none
	done
	truncate -s 64M "$d/sparse/allhole"
	truncate -s 30M "$d/sparse/tail_data"
	printf 'tail' | dd of="$d/sparse/tail_data" bs=1 seek=$((30 * 1048576 - 4)) conv=notrunc status=none

	# Modes.
	mkdir -p "$d/modes/sticky" "$d/modes/sgid_dir" "$d/modes/private_dir"
	for i in m0000 suid sgid m0600 m0444 m0755 plain; do
		printf '%s\n' "$i" >"$d/modes/$i"
	done
	chmod 0000 "$d/modes/m0000"
	chmod 4755 "$d/modes/suid"
	chmod 2755 "$d/modes/sgid"
	chmod 0600 "$d/modes/m0600"
	chmod 0444 "$d/modes/m0444"
	chmod 0755 "$d/modes/m0755"
	printf 'in private\n' >"$d/modes/private_dir/f"
	chmod 1777 "$d/modes/sticky"
	chmod 2775 "$d/modes/sgid_dir"
	chmod 0700 "$d/modes/private_dir"

	# Owners other than root, one without a passwd entry.
	mkdir -p "$d/owners/dir"
	printf 'o\n' >"$d/owners/f"
	printf 'o2\n' >"$d/owners/f2"
	printf 'nopw\n' >"$d/owners/nopasswd"
	ln -s f "$d/owners/link"
	chown 1234:5678 "$d/owners/f" "$d/owners/f2" "$d/owners/dir"
	chown -h 1234:5678 "$d/owners/link"
	chown 4242424:4242425 "$d/owners/nopasswd"
	chown 65534:65534 "$d/owners"

	# Hard names.
	mkdir -p "$d/names"
	printf '1\n' >"$d/names/with space"
	printf '2\n' >"$d/names/new"$'\n'"line"
	printf '3\n' >"$d/names/-leading-dash"
	printf '4\n' >"$d/names/"$'\xff\xfe'
	printf '5\n' >"$d/names/tab"$'\t'"here"
	printf '6\n' >"$d/names/back\\slash"
	printf '7\n' >"$d/names/*glob?[x]"
	printf '8\n' >"$d/names/=equals"
	printf '9\n' >"$d/names/naïve ünïcödé"
	printf '10\n' >"$d/names/trailing space "
	printf '11\n' >"$d/names/.hidden"
	mkdir -p "$d/names/dir with space/-dash dir"
	printf '12\n' >"$d/names/dir with space/-dash dir/"$'\x01\x7f'

	# A path over 1,000 bytes: nested directories with long names.
	p=$d/long
	for i in 1 2 3 4 5 6; do
		long=$(printf '%*s' 180 '' | tr ' ' "$i")
		p=$p/$long
	done
	mkdir -p "$p"
	printf 'deep\n' >"$p/file_at_the_bottom"
	((${#p} - ${#d} > 1000)) || fail "gen_tree: long path too short"

	# Directories the mutations delete or rename.
	mkdir -p "$d/deldir/inner" "$d/renme/inner"
	printf 'del\n' >"$d/deldir/inner/f"
	printf 'ren\n' >"$d/renme/inner/f"
	printf 'ren2\n' >"$d/renme/g"

	# Nanosecond and unusual mtimes (files and symlinks).
	ts '2021-03-04 05:06:07.123456789' "$d/text/one" "$d/names/with space" "$d/links/rel" "$d/special/fifo"
	ts '2021-03-04 05:06:07.000000001' "$d/text/seq.txt"
	ts '1969-07-20 20:17:40.5' "$d/modes/plain"
	ts '2106-02-07 06:28:17.999999999' "$d/modes/m0444"
	ts '1970-01-01 00:00:00' "$d/text/empty"

	# Directory mtimes last: creating children changed them.
	find "$d" -depth -type d -exec touch -d '2022-02-02 02:02:02.202020202' {} +
	touch -d '2020-10-10 10:10:10.101010101' "$d/empty2" "$d/names"
}

# Mutations between the levels of roundtrip.sh.  Each leaves the tree in a
# new state; the tests record it with snapshot_state right after.

# content with the same size, appends, deletions, renames, additions,
# mode/owner-only changes, xattr change, new hardlink, file -> symlink
mutate_1() {
	local d=$1 m
	printf 'X' | dd of="$d/text/seq.txt" bs=1 seek=100 conv=notrunc status=none
	# same size and same mtime: only ctime tells
	m=$(stat -c %y "$d/bin/r4096")
	head -c 4096 /dev/urandom >"$d/bin/r4096"
	touch -d "$m" "$d/bin/r4096"
	printf 'appended\n' >>"$d/text/one"
	head -c 1000 /dev/urandom >>"$d/bin/r1048576"
	rm -f "$d/bin/r4097" "$d/names/-leading-dash"
	rm -rf "$d/deldir"
	mv "$d/renme" "$d/renamed"
	mkdir -p "$d/new"
	for m in 1 2 3; do
		printf 'new file %s\n' "$m" >"$d/new/added$m"
	done
	head -c 200000 /dev/urandom >"$d/new/added_random"
	chmod 0640 "$d/modes/plain"
	chown 4321:8765 "$d/owners/f2"
	if ((HAVE_XATTR)); then
		setfattr -n user.comment -v "changed" "$d/xattr/file"
		setfattr -x user.empty "$d/xattr/file"
	fi
	ln "$d/text/yes5m" "$d/hl/yes_link"
	rm -f "$d/names/with space"
	ln -s ../text/one "$d/names/with space"
}

# sparse rewrite, symlink -> dir, unlink one name of a group, dir mode,
# ACL change, newline name, truncate to 0, fifo -> file, xattr removal
mutate_2() {
	local d=$1
	head -c 65536 /dev/urandom | dd of="$d/sparse/s100" bs=1M seek=30 conv=notrunc status=none
	rm -f "$d/links/todir"
	mkdir "$d/links/todir"
	printf 'now a dir\n' >"$d/links/todir/f"
	rm -f "$d/hl/b/two"
	chmod 0750 "$d/modes/sgid_dir"
	if ((HAVE_ACL)); then
		setfacl -m u:4321:r "$d/acl/file"
	fi
	printf 'another\n' >"$d/new/second"$'\n'"newline"
	: >"$d/bin/r65536"
	rm -f "$d/special/fifo"
	printf 'fifo became a file\n' >"$d/special/fifo"
	if ((HAVE_XATTR)); then
		setfattr -x user.dir "$d/xattr"
	fi
	touch -d '2023-05-06 07:08:09.987654321' "$d/new/added1"
}

# metadata-only touch, re-create a deleted name, rename a file, delete a
# file whose hardlink survives, a big content change
mutate_3() {
	local d=$1
	touch -d '2024-01-01 00:00:00.000000007' "$d/text/yes5m"
	printf 'back again, other content\n' >"$d/bin/r4097"
	mv "$d/new/added2" "$d/new/added2_renamed"
	rm -f "$d/hl/a/one"
	head -c 1048576 /dev/urandom >"$d/bin/r1048576"
	chown -h 1234:1234 "$d/links/rel"
	rm -rf "$d/empty2"
	mkdir -p "$d/empty3"
}
