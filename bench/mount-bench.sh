#!/bin/bash
# mount-bench.sh - issue 3's mount targets: strata mount against restic
# mount, borg mount and archivemount (over a tar.zst) on the bench tree.
#
#   ready     mount command until the first `ls` of the snapshot answers,
#             page cache dropped; the median of the tool's 3-4 mounts below
#   find      `find` over the mounted snapshot, warm (median of 3), and the
#             same over the source tree
#   seq       cold sequential read of data/images/disk.img (fresh mount,
#             page cache dropped), MiB/s; reference: `zstd -d` of that file
#             compressed with zstd -3, also cold
#   small     1,000 randomly chosen small files (same list for every tool),
#             fresh mount, page cache dropped
#   diff      `diff -r` of two mounted snapshots (full, then after
#             bench/mutate.sh), fresh mount, page cache dropped
#   seqpairs  strata only: 'seq' again against zstd -d in MB_SEQ_PAIRS
#             (default 9) alternating cold pairs; the table's seq cells
#             for strata and zstd -d are then those medians
#   smallpairs strata and borg: 'small' again in MB_SMALL_PAIRS (default 5)
#             alternating cold rounds; reports the medians and the median
#             of the per-round ratios
#   rss       peak RSS of the mount process (VmHWM), the largest of the
#             steps' mount processes
#   ready100  strata only: mount ready (as 'ready', page cache dropped) on a
#             repository of 100 snapshots of a small tree (median of 3)
#   A step that runs longer than MB_STEP_TIMEOUT (default 300 s) reports
#   ">N" (archivemount reads a 100 MiB file at < 0.33 MiB/s).
#   flat      strata only: peak RSS after `find` + reading every file, with
#             ~50,000 and ~500,000 files (tiny files, --cache-size 64M)
#
# Environment: BENCH_DIR (default bench/work; this script works in
# BENCH_DIR/mount), BENCH_SCALE (default 1), STRATA (default
# build/cli/strata), MB_SMALL (default 1000), MB_SKIP="restic borg
# archivemount flat ready100 seqpairs smallpairs" to leave tools or steps out.  Run as root (cache drop,
# FUSE).  Writes BENCH_DIR/mount/results.md and prints it.
# shellcheck disable=SC2010,SC2016 # snapshot names are [0-9A-Za-z.-]; bash -c scripts take their arguments positionally
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
W=${BENCH_DIR:-$here/work}/mount
STRATA=${STRATA:-$top/build/cli/strata}
NSMALL=${MB_SMALL:-1000}
TMO=${MB_STEP_TIMEOUT:-300}
SKIP=" ${MB_SKIP:-} "
export LC_ALL=C
export RESTIC_PASSWORD=strata-bench RESTIC_CACHE_DIR=$W/restic-cache
export BORG_PASSPHRASE=strata-bench BORG_BASE_DIR=$W/borg-home
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

note() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
# Nanoseconds from bash's own clock: a date(1) here would add its own cold
# start (tens of ms after a cache drop) to the step it times.
now() { local t=${EPOCHREALTIME/./}; echo "${t}000"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || :; }
skip() { [[ $SKIP == *" $1 "* ]]; }
have() { command -v "$1" >/dev/null 2>&1; }
declare -A R

mkdir -p "$W"
W=$(cd "$W" && pwd)
MNT=$W/mnt
mkdir -p "$MNT"
umount_all() {
	fusermount3 -u "$MNT" 2>/dev/null || fusermount -u "$MNT" 2>/dev/null || :
	local i
	for ((i = 0; i < 100; i++)); do
		awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts || return 0
		sleep 0.05
	done
	umount -l "$MNT" 2>/dev/null || :
}
trap umount_all EXIT

# ---- the tree, two states -----------------------------------------------
TREE=$W/tree
# done.backups lists the tools whose repositories hold both states; a run
# wanting one more starts over (the tree is in its second state by then).
want="strata"
have restic && ! skip restic && want+=" restic"
have borg && ! skip borg && want+=" borg"
for t in $want; do
	grep -qx "$t" "$W/done.backups" 2>/dev/null && continue
	[[ -e $W/done.backups ]] && note "no $t repository from the earlier run: starting over"
	rm -rf "$TREE" "$W/done.backups"
	break
done
if [[ ! -d $TREE ]]; then
	note "generating the tree"
	"$here/gen-tree.sh" "$TREE" 1 >/dev/null || exit 1
fi
REL=${TREE#/}
# the same small files for every tool, chosen in the first state
pick_small() {
	find "$TREE" -type f -size -20k -printf '%P\n' | shuf -n "$NSMALL" --random-source=<(yes) >"$W/small.list"
}

# The mount's server process (its VmHWM is the mount's peak RSS): the
# newest process whose command line names the mount point.
pid_of_mount() { pgrep -n -f -- "$1.* $MNT\$|$1.* $MNT " || pgrep -n -f -- " $MNT"; }
MPID=
rss_of() { awk '/VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# ---- backups ------------------------------------------------------------
if [[ ! -f $W/done.backups ]]; then
	rm -rf "$W/strata" "$W/restic" "$W/borg" "$W/tree.tar.zst"
	note "backups of state 1"
	"$STRATA" -r "$W/strata" init >/dev/null
	"$STRATA" -r "$W/strata" backup --level full "$TREE" >/dev/null || exit 1
	if have restic && ! skip restic; then
		restic init -r "$W/restic" >/dev/null 2>&1
		restic -r "$W/restic" backup -q "$TREE" >/dev/null 2>&1
	fi
	if have borg && ! skip borg; then
		borg init -e none "$W/borg" >/dev/null 2>&1
		borg create "$W/borg::one" "$TREE" >/dev/null 2>&1
	fi
	tar -C / -cf - "$REL" | zstd -3 -T0 -q >"$W/tree.tar.zst"
	pick_small
	note "mutating, backups of state 2"
	"$here/mutate.sh" "$TREE" >/dev/null 2>&1 || note "mutate.sh failed; second state = first"
	"$STRATA" -r "$W/strata" backup --level incremental "$TREE" >/dev/null || exit 1
	have restic && ! skip restic && restic -r "$W/restic" backup -q "$TREE" >/dev/null 2>&1
	have borg && ! skip borg && borg create "$W/borg::two" "$TREE" >/dev/null 2>&1
	printf '%s\n' $want >"$W/done.backups"
fi
[[ -s $W/small.list ]] || pick_small

# ---- per tool: mount, and where snapshots 1 and 2 are ----------------------
# mount_TOOL sets S1 and S2 (the tree's root in each snapshot) and MPID, and
# READY to the moment its first `ls` answered: what it does after that
# (finding the snapshot names, pgrep) is not part of "mount ready".
READY=
mount_strata() {
	local names
	"$STRATA" -r "$W/strata" mount "$MNT" || return 1
	ls "$MNT/default" >/dev/null || return 1
	READY=$(now)
	mapfile -t names < <(ls "$MNT/default" | grep -v '^latest$' | sort)
	S1=$MNT/default/${names[0]}/$REL
	S2=$MNT/default/${names[-1]}/$REL
	MPID=$(pid_of_mount mount)
}
mount_restic() {
	local snaps
	restic -r "$W/restic" mount "$MNT" >/dev/null 2>&1 &
	MPID=$!
	until ls "$MNT/snapshots" >/dev/null 2>&1 && [[ -n $(ls "$MNT/snapshots") ]]; do
		kill -0 "$MPID" 2>/dev/null || return 1
		sleep 0.01
	done
	READY=$(now)
	mapfile -t snaps < <(ls "$MNT/snapshots" | grep -v '^latest$' | sort)
	S1=$MNT/snapshots/${snaps[0]}/$REL
	S2=$MNT/snapshots/${snaps[-1]}/$REL
	ls "$S1" >/dev/null
}
mount_borg() {
	# borg mount needs Debian's python3-llfuse, which borgbackup only recommends
	borg mount "$W/borg" "$MNT" >/dev/null 2>"$W/borg-mount.err" || {
		note "borg mount: $(tail -n 1 "$W/borg-mount.err")"
		return 1
	}
	S1=$MNT/one/$REL
	S2=$MNT/two/$REL
	ls "$S1" >/dev/null || return 1
	READY=$(now)
	MPID=$(pid_of_mount borg)
}
mount_archivemount() {
	archivemount -o ro,readonly "$W/tree.tar.zst" "$MNT" >/dev/null 2>&1 || return 1
	S1=$MNT/$REL
	S2=
	ls "$S1" >/dev/null || return 1
	READY=$(now)
	MPID=$(pid_of_mount archivemount)
}

# timed KEY CMD...: seconds into R[KEY], or ">TMO" when it times out
timed() {
	local key=$1 t0 rc
	shift
	t0=$(now)
	timeout -k 5 "$TMO" "$@" >/dev/null 2>&1
	rc=$?
	if ((rc == 124 || rc == 137)); then
		R[$key]=">$TMO"
		return 1
	fi
	R[$key]=$(secs "$t0" "$(now)")
}

# R[TOOL.rss]: the largest peak RSS of the tool's mount processes so far
# (each step mounts afresh); nothing when the process is already gone.
peak_rss() {
	local kb
	kb=$(rss_of "$MPID")
	[[ -n $kb ]] || return 0
	if [[ -z ${R[$1.rss]:-} ]] || ((kb / 1024 > R[$1.rss])); then
		R[$1.rss]=$((kb / 1024))
	fi
}

# mount_cold TOOL: mount after a cache drop; the time until the first `ls`
# answered joins READIES.  Every step mounts this way, and the table's
# "mount ready" is the median of them: one cold mount swings by a factor of
# three on this VM (strata 0.04-0.20 s, the first one after the machine
# booted the slowest).
READIES=()
mount_cold() {
	local t0
	drop
	t0=$(now)
	"mount_$1" || return 1
	READIES+=("$(secs "$t0" "$READY")")
	R[$1.ready]=$(median "${READIES[@]}")
}

bench_tool() {
	local tool=$1 f i list=() mib
	note "$tool"
	READIES=()
	umount_all
	mount_cold "$tool" || { note "$tool: mount failed"; umount_all; return; }
	timed "$tool.find" find "$S1" && for i in 1 2 3; do
		timed "$tool.find" find "$S1" || break
		list+=("${R[$tool.find]}")
	done
	((${#list[@]} == 3)) && R[$tool.find]=$(median "${list[@]}")
	peak_rss "$tool"
	umount_all

	mount_cold "$tool" || return
	f=$S1/data/images/disk.img
	mib=$(($(stat -c %s "$TREE/data/images/disk.img") / 1048576))
	if timed "$tool.seq" cat "$f"; then
		R[$tool.seq]=$(awk -v m="$mib" -v s="${R[$tool.seq]}" 'BEGIN { printf "%.0f", m / s }')
	else
		R[$tool.seq]="<$(awk -v m="$mib" -v s="$TMO" 'BEGIN { printf "%.2f", m / s }')"
	fi
	peak_rss "$tool"
	umount_all

	mount_cold "$tool" || return
	timed "$tool.small" bash -c 'cd "$1" && xargs -d "\n" cat <"$2"' _ "$S1" "$W/small.list"
	peak_rss "$tool"
	umount_all

	if [[ -n $S2 ]]; then
		mount_cold "$tool" || return
		timed "$tool.diff" diff -r "$S1" "$S2"
	fi
	peak_rss "$tool"
	umount_all
}

bench_tool strata
for t in restic borg archivemount; do
	if skip "$t" || ! have "$t"; then
		continue
	fi
	bench_tool "$t"
done

# ---- references -------------------------------------------------------------
note "references"
list=()
for i in 1 2 3; do
	t0=$(now)
	find "$TREE" >/dev/null
	list+=("$(secs "$t0" "$(now)")")
done
R[source.find]=$(median "${list[@]}")
zstd -3 -q -f "$TREE/data/images/disk.img" -o "$W/disk.img.zst"
drop
t0=$(now)
zstd -dc "$W/disk.img.zst" >/dev/null
R[zstd.seq]=$(awk -v m="$(($(stat -c %s "$TREE/data/images/disk.img") / 1048576))" \
	-v s="$(secs "$t0" "$(now)")" 'BEGIN { printf "%.0f", m / s }')

# ---- cold sequential read against zstd -d, in alternating pairs --------------
# One cold zstd -d on this VM ranges 110-180 ms from run to run, which moved
# the ratio between 0.57 and 1.03; the medians of alternating pairs do not.
seq_pairs() {
	local i t0 mib zs=() ss=() rs=() z s
	mib=$(($(stat -c %s "$TREE/data/images/disk.img") / 1048576))
	for ((i = 0; i < ${MB_SEQ_PAIRS:-9}; i++)); do
		drop
		t0=$(now)
		zstd -dc "$W/disk.img.zst" >/dev/null
		z=$(secs "$t0" "$(now)")
		umount_all
		drop
		mount_strata || return
		t0=$(now)
		cat "$S1/data/images/disk.img" >/dev/null || return
		s=$(secs "$t0" "$(now)")
		umount_all
		zs+=("$(awk -v m="$mib" -v s="$z" 'BEGIN { printf "%.0f", m / s }')")
		ss+=("$(awk -v m="$mib" -v s="$s" 'BEGIN { printf "%.0f", m / s }')")
		rs+=("$(awk -v z="$z" -v s="$s" 'BEGIN { printf "%.2f", z / s }')")
	done
	R[zstd.seq]=$(median "${zs[@]}")
	R[strata.seq]=$(median "${ss[@]}")
	R[seq.ratio]="$(median "${rs[@]}") (pairs: ${rs[*]})"
}
if ! skip seqpairs; then
	note "cold sequential read, strata and zstd -d in pairs"
	seq_pairs
fi

# ---- small files against borg mount, in alternating rounds ---------------------
# One cold run of the small files swings by a factor of two on this VM from
# one hour to the next (strata 0.26-0.53 s, borg 0.58-1.10 s); rounds that
# alternate the two tools, each on a fresh mount after a cache drop, give a
# ratio both tools saw under the same conditions.
# small_round TOOL: seconds for the small files through a fresh cold mount
small_round() {
	local t0 rc=0
	umount_all
	drop
	"mount_$1" || return
	t0=$(now)
	(cd "$S1" && xargs -d '\n' cat <"$W/small.list" >/dev/null) || rc=1
	secs "$t0" "$(now)"
	umount_all
	return "$rc"
}
small_pairs() {
	local i ss=() bs=() rs=() s b
	for ((i = 0; i < ${MB_SMALL_PAIRS:-5}; i++)); do
		b=$(small_round borg) || return
		s=$(small_round strata) || return
		ss+=("$s")
		bs+=("$b")
		rs+=("$(awk -v b="$b" -v s="$s" 'BEGIN { printf "%.2f", b / s }')")
	done
	R[small.pairs]="strata $(median "${ss[@]}") s, borg $(median "${bs[@]}") s, borg/strata $(median "${rs[@]}") (rounds: ${rs[*]})"
}
if ! skip smallpairs && ! skip borg && have borg; then
	note "small files, strata and borg in rounds"
	small_pairs
fi

# ---- mount ready with 100 snapshots (strata) ----------------------------------
ready100() {
	local d=$W/snap100 repo=$W/snap100.repo i t0 level list=()
	if [[ ! -f $W/done.snap100 ]]; then
		rm -rf "$d" "$repo"
		mkdir -p "$d"
		for ((i = 0; i < 20; i++)); do echo "$i" >"$d/f$i"; done
		"$STRATA" -r "$repo" init >/dev/null || return
		for ((i = 0; i < 100; i++)); do
			echo "$i" >"$d/counter"
			level=incremental
			((i)) || level=full
			"$STRATA" -r "$repo" backup --level "$level" "$d" >/dev/null || return
		done
		touch "$W/done.snap100"
	fi
	for i in 1 2 3; do
		umount_all
		drop
		t0=$(now)
		"$STRATA" -r "$repo" mount "$MNT" && ls "$MNT/default" >/dev/null || return
		list+=("$(secs "$t0" "$(now)")")
	done
	umount_all
	R[strata.ready100]=$(median "${list[@]}")
}
if ! skip ready100; then
	note "ready with 100 snapshots"
	ready100
fi

# ---- flat memory: 50,000 vs 500,000 files -----------------------------------
flat() {
	local n=$1 d=$W/flat$1 repo=$W/flat$1.repo
	if [[ ! -d $repo ]]; then
		rm -rf "$d"
		mkdir -p "$d"
		# n tiny files in n/100 directories
		awk -v n="$n" -v d="$d" 'BEGIN {
			for (i = 0; i < n; i++) {
				if (i % 100 == 0) { dir = sprintf("%s/d%05d", d, i / 100); system("mkdir -p " dir) }
				f = sprintf("%s/f%03d", dir, i % 100); printf "%d\n", i > f; close(f)
			} }'
		"$STRATA" -r "$repo" init >/dev/null
		"$STRATA" -r "$repo" backup --level full "$d" >/dev/null || return
	fi
	umount_all
	"$STRATA" -r "$repo" mount "$MNT" --cache-size 64M || return
	MPID=$(pid_of_mount mount)
	find "$MNT" -type f -print0 | xargs -0 cat >/dev/null
	R[flat.$n]=$(($(rss_of "$MPID") / 1024))
	umount_all
}
if ! skip flat; then
	note "flat memory"
	flat 50000
	flat 500000
fi

# ---- report -------------------------------------------------------------------
v() { printf '%s' "${R[$1]:-n/a}"; }
{
	echo "# mount benchmark, $(date -u +%Y-%m-%d), $(nproc) CPUs, tree: $(find "$TREE" | wc -l) entries, $(du -sh "$TREE" | cut -f1)"
	echo
	echo "| | strata | restic | borg | archivemount |"
	echo "|---|---|---|---|---|"
	for k in ready find seq small diff rss; do
		case $k in
		ready) l="mount ready, cold (s; median of each tool's mounts)" ;;
		find) l="find, warm (s; source tree: $(v source.find))" ;;
		seq) l="100 MiB file, cold (MiB/s; zstd -d: $(v zstd.seq))" ;;
		small) l="$NSMALL random small files, cold (s)" ;;
		diff) l="diff -r of two snapshots, cold (s)" ;;
		rss) l="mount peak RSS (MiB)" ;;
		esac
		echo "| $l | $(v strata.$k) | $(v restic.$k) | $(v borg.$k) | $(v archivemount.$k) |"
	done
	echo
	echo "strata cold sequential read / zstd -d, median of ${MB_SEQ_PAIRS:-9} alternating pairs (the table shows the medians of each): $(v seq.ratio)"
	echo
	echo "$NSMALL random small files, cold, median of ${MB_SMALL_PAIRS:-5} alternating rounds with borg mount: $(v small.pairs)"
	echo
	echo "strata mount ready, 100 snapshots in the repository (s, median of 3): $(v strata.ready100)"
	echo
	echo "strata mount peak RSS with --cache-size 64M after reading every file: $(v flat.50000) MiB (50,000 files), $(v flat.500000) MiB (500,000 files)"
} | tee "$W/results.md"
