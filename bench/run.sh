#!/bin/bash
# run.sh - strata benchmark against tar|zstd, restic and borg on one tree.
#
# Environment:
#   BENCH_DIR      work directory (default: bench/work, gitignored)
#   BENCH_SCALE    tree size factor (default 1 = ~500 MB / ~50,000 files;
#                  0.1 for a quick smoke run)
#   BENCH_SEED     tree seed (default 1)
#   STRATA         strata binary (default: build/cli/strata)
#   BENCH_TIMEOUT  per-step timeout in seconds (default 900)
#   BENCH_BORG_ENCRYPTION  borg init -e mode (default none, like strata's
#                  unencrypted repo; restic always encrypts)
#   BENCH_REPS     repetitions for the cheap steps, median reported (default 3)
#   BENCH_WAIT_IDLE  before each timed step, wait up to this many seconds for
#                  the other processes on the host to use < 0.2 cores
#                  (default 0 = don't wait; the load is reported either way)
#
# Order: generate (or reuse a pristine) tree, warm the page cache, find
# walk, all fulls, all unchanged incrementals, mutate once, all incrementals
# after activity, raw speeds, then the restores with the page cache dropped
# before each.  Every tool is independent: a missing or failing strata
# leaves its column "n/a" and the peers still report.
# shellcheck disable=SC2016 # bash -c scripts get their arguments positionally
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
W=${BENCH_DIR:-$here/work}
SCALE=${BENCH_SCALE:-1}
SEED=${BENCH_SEED:-1}
STRATA=${STRATA:-$top/build/cli/strata}
TMO=${BENCH_TIMEOUT:-900}
REPS=${BENCH_REPS:-3}
BORG_ENC=${BENCH_BORG_ENCRYPTION:-none}
WAIT_IDLE=${BENCH_WAIT_IDLE:-0}
HZ=$(getconf CLK_TCK)
export LC_ALL=C

mkdir -p "$W"
W=$(cd "$W" && pwd)
TREE=$W/tree
REL=${TREE#/}
LOGS=$W/logs
TSV=$W/results.tsv

export RESTIC_PASSWORD=strata-bench RESTIC_CACHE_DIR=$W/restic-cache
export BORG_PASSPHRASE=strata-bench BORG_BASE_DIR=$W/borg-home
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

for tool in tar zstd restic borg sqlite3 openssl timeout /usr/bin/time; do
	command -v "$tool" >/dev/null || {
		echo "run.sh: missing $tool (apt-get install tar zstd restic borgbackup sqlite3 openssl coreutils time)" >&2
		exit 1
	}
done

declare -A T M S  # wall seconds, peak RSS KiB, sizes/values per key
note() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
bytes() { du -sb "$1" 2>/dev/null | cut -f1; }

# busy CPU time of the whole host, in clock ticks
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# wait (at most WAIT_IDLE s) until the rest of the host is quiet
wait_idle() {
	local end b0 b1
	[ "$WAIT_IDLE" -gt 0 ] || return 0
	end=$((SECONDS + WAIT_IDLE))
	while [ "$SECONDS" -lt "$end" ]; do
		b0=$(cpu_busy)
		sleep 0.5
		b1=$(cpu_busy)
		[ $(((b1 - b0) * 10)) -lt $((HZ * 1)) ] && return 0   # < 0.2 cores over 0.5 s
	done
	note "host still busy after ${WAIT_IDLE} s, measuring anyway"
}
declare -A OTHER   # average cores used by other processes during a step
BUSY_STEPS=""
# run KEY CMD... : time CMD (wall clock, ns resolution), its peak RSS, and
# how much CPU the rest of the host used meanwhile
run() {
	local key=$1 t0 t1 b0 b1 rc rss us sy
	shift
	wait_idle
	b0=$(cpu_busy)
	t0=$(date +%s.%N)
	/usr/bin/time -f '%M %U %S' -o "$LOGS/$key.rss" timeout -k 10 "$TMO" "$@" >"$LOGS/$key.log" 2>&1
	rc=$?
	t1=$(date +%s.%N)
	b1=$(cpu_busy)
	if [ "$rc" -eq 0 ]; then
		T[$key]=$(fsub "$t0" "$t1")
		read -r rss us sy < <(tail -n 1 "$LOGS/$key.rss")
		M[$key]=$rss
		OTHER[$key]=$(awk -v db="$((b1 - b0))" -v hz="$HZ" -v u="$us" -v s="$sy" -v t="${T[$key]}" \
			'BEGIN { o = (db / hz - u - s) / (t > 0 ? t : 1); printf "%.2f", (o < 0 ? 0 : o) }')
		note "$key: ${T[$key]} s, peak RSS $((M[$key] / 1024)) MiB, cpu ${us}u+${sy}s, other processes ${OTHER[$key]} cores"
		if awk -v o="${OTHER[$key]}" -v t="${T[$key]}" 'BEGIN { exit !(o > 0.25 && o * t > 0.1) }'; then BUSY_STEPS+=" $key (${OTHER[$key]})"; fi
	else
		T[$key]=fail
		note "$key: FAILED (exit $rc), see $LOGS/$key.log"
	fi
	printf '%s\t%s\t%s\t%s\t%s\n' "$key" "${T[$key]}" "${M[$key]:-}" "$rc" "${OTHER[$key]:-}" >>"$TSV"
	return "$rc"
}
# runrep KEY PREP CMD... : REPS runs of CMD (PREP, a function name or
# "true", runs untimed before each); T[KEY] = median
runrep() {
	local key=$1 prep=$2 i ts=() ms=()
	shift 2
	for ((i = 1; i <= REPS; i++)); do
		"$prep" || return 1
		run "$key.$i" "$@" || { T[$key]=fail; return 1; }
		ts+=("${T[$key.$i]}")
		ms+=("${M[$key.$i]}")
	done
	T[$key]=$(median "${ts[@]}")
	M[$key]=$(median "${ms[@]}")
	printf '%s\t%s\t%s\t0\n' "$key" "${T[$key]}" "${M[$key]}" >>"$TSV"
}
ok() { [ -n "${T[$1]:-}" ] && [ "${T[$1]}" != fail ]; }

DROP=yes
drop_caches() {
	sync
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		[ "$DROP" = yes ] && note "WARNING: cannot drop the page cache (not root?); restores run warm"
		DROP=no
	fi
}

# ---------------------------------------------------------------- tree ----
state="seed=$SEED scale=$SCALE"
if [ -d "$TREE" ] && [ "$(cat "$W/tree.state" 2>/dev/null)" = "$state pristine" ]; then
	note "reusing pristine tree $TREE ($state)"
else
	note "generating tree $TREE ($state)"
	rm -rf "$TREE" "$W/tree.state"
	BENCH_SCALE=$SCALE "$here/gen-tree.sh" "$TREE" "$SEED" || exit 1
	echo "$state pristine" >"$W/tree.state"
fi
rm -rf "$LOGS" "$W/tar" "$W/restic" "$W/borg" "$W/strata" "$W/restore" "$W/raw" "$RESTIC_CACHE_DIR" "$BORG_BASE_DIR"
mkdir -p "$LOGS" "$W/tar" "$W/raw" "$BORG_BASE_DIR"
printf "key\tseconds\tpeak_rss_kib\texit\tother_cores\n" >"$TSV"
read -r NF ND NL < <(find "$TREE" -printf '%y\n' | awk '$1=="f"{f++} $1=="d"{d++} $1=="l"{l++} END{print f+0, d+0, l+0}')
ENTRIES=$((NF + ND + NL))
TREEBYTES=$(bytes "$TREE")
note "tree: $NF files, $ND dirs, $NL symlinks = $ENTRIES entries, $((TREEBYTES / 1048576)) MiB"

# warm the page cache (metadata and data).  Done again, untimed, before each
# timed backup: some VMs page out page-cache pages that sat idle for a while
# (e.g. DAMON_RECLAIM), which would penalise whichever tool runs last.
warm() { find "$TREE" >/dev/null; [ "${1:-}" = meta ] || tar -C / -cf - "$REL" 2>/dev/null | cat >/dev/null; }
warm_meta() { warm meta; }
warm

# -------------------------------------------------------------- strata ----
SR=$W/strata/repo
STRATA_OK=no STRATA_WHY="binary $STRATA not found"
if [ -x "$STRATA" ]; then
	mkdir -p "$W/strata"
	if run strata_init "$STRATA" -r "$SR" init && [ -f "$SR/catalog.db" ]; then
		STRATA_OK=yes
	else
		STRATA_WHY="'strata init' failed or created no $SR/catalog.db"
		T[strata_init]=fail
	fi
fi
[ "$STRATA_OK" = yes ] || note "strata: n/a ($STRATA_WHY)"
strata_fail() { STRATA_OK=no STRATA_WHY=$1; note "strata: giving up: $1"; }

# ------------------------------------------------------------ find walk ---
REPS_SAVED=$REPS
REPS=$((REPS < 5 ? 5 : REPS))
runrep find warm_meta bash -c 'find "$1" -printf "%s %T@ %i\n" >/dev/null' _ "$TREE"
REPS=$REPS_SAVED

# ---------------------------------------------------------------- fulls ---
note "== full backups"
# tar: plain tar | zstd; the level-0 snapshot file for the incrementals is
# made by an untimed metadata-only pass (GNU tar does not read file data
# when the archive is /dev/null)
warm
run tar_full bash -c 'set -o pipefail; tar -C / -cf - "$1" | zstd -3 -T0 -q -o "$2"' _ "$REL" "$W/tar/full.tar.zst" &&
	S[tar_full]=$(bytes "$W/tar/full.tar.zst")
tar -C / --listed-incremental="$W/tar/level0.snar" -cf /dev/null "$REL" 2>"$LOGS/tar_snar.log" || note "tar: snar creation failed"

run restic_init restic -r "$W/restic" init && warm &&
	run restic_full restic -r "$W/restic" backup --host bench --tag full --quiet "$TREE" &&
	S[restic_full]=$(bytes "$W/restic")

run borg_init borg init -e "$BORG_ENC" "$W/borg" && warm &&
	run borg_full borg create "$W/borg::full" "$TREE" &&
	S[borg_full]=$(bytes "$W/borg")

SID="" ARCHIVES=()
if [ "$STRATA_OK" = yes ]; then
	warm
	if run strata_full "$STRATA" -r "$SR" backup --level full "$TREE"; then
		S[strata_full]=$(bytes "$SR")
		mapfile -t ARCHIVES < <(ls -S "$SR"/archives/*.tar.zst 2>/dev/null)
		"$STRATA" -r "$SR" list --json >"$LOGS/strata_list_full.json" 2>&1
		if command -v jq >/dev/null; then
			SID=$(jq -r '(if type == "array" then . else (.snapshots // []) end) | .[0].id // empty' "$LOGS/strata_list_full.json" 2>/dev/null)
		fi
		[ -n "$SID" ] || SID=$(grep -o '"id" *: *"\{0,1\}[^",}]*' "$LOGS/strata_list_full.json" | head -n 1 | sed 's/.*: *"\{0,1\}//')
		[ ${#ARCHIVES[@]} -gt 0 ] || note "strata: no REPO/archives/*.tar.zst after the full"
		[ -n "$SID" ] || note "strata: no snapshot id in 'list --json'; restore will be skipped"
		# catalog size per entry
		db=$SR/catalog.db
		sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null 2>&1
		cat_bytes=$(stat -c %s "$db")
		[ -f "$db-wal" ] && cat_bytes=$((cat_bytes + $(stat -c %s "$db-wal")))
		S[catalog_bytes]=$cat_bytes
		S[catalog_per_entry]=$(awk -v b="$cat_bytes" -v n="$ENTRIES" 'BEGIN { printf "%.1f", b / n }')
		note "strata catalog: $cat_bytes bytes / $ENTRIES entries = ${S[catalog_per_entry]} bytes per entry"
	else
		strata_fail "full backup failed"
	fi
fi

# A single 2-3 s run of each full swings by 10% on a shared 2-core VM, so
# the full's ratio also comes from REPS alternating runs (tar, then strata
# at its default level, then strata at zstd level 3 like tar's, each strata
# into a fresh scratch repository), page cache warmed before each: medians
# in T[tar_full_pairs], T[strata_full_pairs] and T[strata3_full_pairs].

# strata_pair KEY [BACKUP OPTION...]: a full into a fresh scratch repository
strata_pair() {
	local key=$1
	shift
	rm -rf "$W/strata/pair"
	"$STRATA" -r "$W/strata/pair" init >/dev/null 2>&1 || return 1
	warm
	run "$key" "$STRATA" -r "$W/strata/pair" backup --level full "$@" "$TREE"
}
if [ "$STRATA_OK" = yes ] && ok tar_full && ok strata_full && [ "$REPS" -gt 1 ]; then
	note "== full backups, $REPS alternating pairs"
	tp=() sp=() s3=()
	for ((i = 1; i <= REPS; i++)); do
		warm
		run "tar_full_pair.$i" bash -c 'set -o pipefail; tar -C / -cf - "$1" | zstd -3 -T0 -q -f -o "$2"' \
			_ "$REL" "$W/tar/pair.tar.zst" || break
		strata_pair "strata_full_pair.$i" || break
		strata_pair "strata3_full_pair.$i" --compression 3 || break
		S[strata3_full]=$(bytes "$W/strata/pair")
		tp+=("${T[tar_full_pair.$i]}") sp+=("${T[strata_full_pair.$i]}") s3+=("${T[strata3_full_pair.$i]}")
	done
	rm -rf "$W/strata/pair" "$W/tar/pair.tar.zst"
	if [ "${#s3[@]}" -eq "$REPS" ]; then
		T[tar_full_pairs]=$(median "${tp[@]}") T[strata_full_pairs]=$(median "${sp[@]}")
		T[strata3_full_pairs]=$(median "${s3[@]}")
	fi
fi

# ------------------------------------------------------------ unchanged ---
note "== unchanged incrementals (median of $REPS)"
tar_snar_copy() { cp "$W/tar/level0.snar" "$W/tar/unch.snar" && warm meta; }
if [ -f "$W/tar/level0.snar" ]; then
	runrep tar_unch tar_snar_copy bash -c 'set -o pipefail; tar -C / --listed-incremental="$2" -cf - "$1" | zstd -3 -T0 -q -f -o "$3"' \
		_ "$REL" "$W/tar/unch.snar" "$W/tar/unch.tar.zst" && S[tar_unch]=$(bytes "$W/tar/unch.tar.zst")
fi
ok restic_full && runrep restic_unch warm_meta restic -r "$W/restic" backup --host bench --quiet "$TREE"
ok borg_full && runrep borg_unch warm_meta borg create "$W/borg::unchanged-{utcnow:%H%M%S.%f}" "$TREE"
if [ "$STRATA_OK" = yes ]; then
	runrep strata_unch warm_meta "$STRATA" -r "$SR" backup --level incremental "$TREE" || strata_fail "unchanged incremental failed"
fi

# --------------------------------------------------------------- mutate ---
note "== mutate (one hour of activity)"
echo "seed=$SEED scale=$SCALE mutated" >"$W/tree.state"
"$here/mutate.sh" "$TREE" "$((SEED + 1))" | tee "$LOGS/mutate.log"

note "== incrementals after activity"
if [ -f "$W/tar/level0.snar" ]; then
	cp "$W/tar/level0.snar" "$W/tar/inc.snar"
	warm
	run tar_inc bash -c 'set -o pipefail; tar -C / --listed-incremental="$2" -cf - "$1" | zstd -3 -T0 -q -o "$3"' \
		_ "$REL" "$W/tar/inc.snar" "$W/tar/inc.tar.zst" && S[tar_inc]=$(bytes "$W/tar/inc.tar.zst")
fi
if ok restic_full; then
	before=$(bytes "$W/restic")
	warm
	run restic_inc restic -r "$W/restic" backup --host bench --quiet "$TREE" && S[restic_inc]=$(($(bytes "$W/restic") - before))
fi
if ok borg_full; then
	before=$(bytes "$W/borg")
	warm
	run borg_inc borg create "$W/borg::after-activity" "$TREE" && S[borg_inc]=$(($(bytes "$W/borg") - before))
fi
if [ "$STRATA_OK" = yes ]; then
	before=$(bytes "$SR")
	warm
	if run strata_inc "$STRATA" -r "$SR" backup --level incremental "$TREE"; then
		S[strata_inc]=$(($(bytes "$SR") - before))
	else
		strata_fail "incremental after activity failed"
	fi
fi

# ----------------------------------------------------------- raw speeds ---
note "== raw speeds"
big=$TREE/data/images/disk.img
bigsz=$(stat -c %s "$big")
mibs() { ok "$1" && awk -v b="$2" -v t="${T[$1]}" 'BEGIN { if (t > 0) printf "%.0f", b / 1048576 / t; else print "n/a" }'; }
cat "$big" >/dev/null
run raw_zstd_c zstd -3 -T0 -q -f "$big" -o "$W/raw/big.zst" && S[raw_zstd_c]=$(mibs raw_zstd_c "$bigsz")
run raw_zstd_d bash -c 'zstd -dc "$1" >/dev/null' _ "$W/raw/big.zst" && S[raw_zstd_d]=$(mibs raw_zstd_d "$bigsz")
ossl() { openssl speed -seconds 1 -bytes 16384 -evp "$1" 2>/dev/null | tail -n 1 | awk '{ v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1048576 }'; }
S[raw_aes]=$(ossl aes-256-gcm)
S[raw_sha]=$(ossl sha256)
note "zstd -3 -T0: ${S[raw_zstd_c]:-n/a} MiB/s, zstd -d: ${S[raw_zstd_d]:-n/a} MiB/s, aes-256-gcm: ${S[raw_aes]} MiB/s, sha256: ${S[raw_sha]} MiB/s"

# -------------------------------------------------------------- restore ---
note "== restores (page cache dropped before each)"
RD=$W/restore
restore_prep() { rm -rf "$RD"; mkdir -p "$RD"; drop_caches; }
restored_entries() { find "$RD/$REL" 2>/dev/null | wc -l; }
# the two restores the target compares, each run once and then in pairs
# reference: the full's archive(s), largest first, through zstd | tar
REF_RESTORE=(bash -c 'set -o pipefail; zstd -dc "${@:2}" | tar -x -i -C "$1"' _ "$RD" "${ARCHIVES[@]}")
STRATA_RESTORE=("$STRATA" -r "$SR" restore "$SID" --to "$RD")
if [ "$STRATA_OK" = yes ] && [ ${#ARCHIVES[@]} -gt 0 ]; then
	restore_prep
	run restore_ref "${REF_RESTORE[@]}"
	S[restore_ref_entries]=$(restored_entries)
fi
if [ "$STRATA_OK" = yes ] && [ -n "$SID" ]; then
	restore_prep
	run strata_restore "${STRATA_RESTORE[@]}"
	S[strata_restore_entries]=$(restored_entries)
	[ "${S[strata_restore_entries]}" -eq "$ENTRIES" ] ||
		note "WARNING: strata restored ${S[strata_restore_entries]} entries under $RD/$REL, the tree had $ENTRIES"
fi
# The single cold runs above swing by 25% (zstd -dc | tar -x 2.00-2.78 s
# within ten minutes on one host), so the target is also read off
# alternating cold pairs, as the full's.
if ok restore_ref && ok strata_restore && [ "$REPS" -gt 1 ]; then
	note "== restores, $REPS alternating cold pairs"
	rp=() sp=()
	for ((i = 1; i <= REPS; i++)); do
		restore_prep
		run "restore_ref_pair.$i" "${REF_RESTORE[@]}" || break
		restore_prep
		run "strata_restore_pair.$i" "${STRATA_RESTORE[@]}" || break
		rp+=("${T[restore_ref_pair.$i]}") sp+=("${T[strata_restore_pair.$i]}")
	done
	if [ ${#sp[@]} -eq "$REPS" ]; then
		T[restore_ref_pairs]=$(median "${rp[@]}") T[strata_restore_pairs]=$(median "${sp[@]}")
	fi
fi
if ok tar_full; then
	restore_prep
	run tar_restore bash -c 'set -o pipefail; zstd -dc "$2" | tar -x -C "$1"' _ "$RD" "$W/tar/full.tar.zst"
fi
if ok restic_full; then
	restore_prep
	run restic_restore restic -r "$W/restic" restore latest --host bench --tag full --target "$RD"
fi
if ok borg_full; then
	restore_prep
	run borg_restore bash -c 'cd "$1" && borg extract "$2::full"' _ "$RD" "$W/borg"
fi
rm -rf "$RD"

# --------------------------------------------------------------- report ---
fmt() { if ok "$1"; then printf '%.2f' "${T[$1]}"; else printf 'n/a'; fi; }
mib() { if [ -n "${S[$1]:-}" ]; then awk -v b="${S[$1]}" 'BEGIN { printf "%.1f", b / 1048576 }'; else printf 'n/a'; fi; }
rss() { if ok "$1" && [ -n "${M[$1]:-}" ]; then printf '%d' "$((M[$1] / 1024))"; else printf 'n/a'; fi; }
# target LABEL NUM_KEY DEN_KEY LIMIT : ratio of two timings vs a limit
RES_ROWS=""
target() {
	local label=$1 num=$2 den=$3 lim=$4 r verdict
	if ok "$num" && ok "$den"; then
		r=$(awk -v a="${T[$num]}" -v b="${T[$den]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 999) }')
		verdict=$(awk -v r="$r" -v l="$lim" 'BEGIN { print (r <= l ? "PASS" : "FAIL") }')
		RES_ROWS+="| $label | ${T[$num]} s / ${T[$den]} s | **$r** | ≤ $lim | $verdict |"$'\n'
	elif [ "$STRATA_OK" != yes ] || ok "$den"; then
		RES_ROWS+="| $label | n/a / $(fmt "$den") s | n/a | ≤ $lim | pending |"$'\n'
	else
		RES_ROWS+="| $label | n/a | n/a | ≤ $lim | n/a (peer failed) |"$'\n'
	fi
}
target "full ≤ 1.0 × tar \\| zstd -3 -T0" strata_full tar_full 1.0
target "full ≤ 1.0 × tar \\| zstd -3 -T0 (median of $REPS alternating pairs)" strata_full_pairs tar_full_pairs 1.0
target "full at --compression 3 ≤ 1.0 × tar \\| zstd -3 -T0 (median of $REPS alternating pairs)" strata3_full_pairs tar_full_pairs 1.0
target "full ≤ 0.5 × restic" strata_full restic_full 0.5
target "full ≤ 0.5 × borg" strata_full borg_full 0.5
target "unchanged incremental ≤ 2 × find stat walk" strata_unch find 2.0
target "incremental after activity ≤ 0.5 × restic" strata_inc restic_inc 0.5
target "incremental after activity ≤ 1.5 × tar --listed-incremental" strata_inc tar_inc 1.5
target "restore of the full ≤ 1.2 × zstd -dc \\| tar -x" strata_restore restore_ref 1.2
target "restore of the full ≤ 1.2 × zstd -dc \\| tar -x (median of $REPS alternating pairs)" strata_restore_pairs restore_ref_pairs 1.2
if [ -n "${S[catalog_per_entry]:-}" ]; then
	v=$(awk -v r="${S[catalog_per_entry]}" 'BEGIN { print (r <= 150 ? "PASS" : "FAIL") }')
	RES_ROWS+="| catalog ≤ 150 bytes per entry | ${S[catalog_bytes]} B / $ENTRIES entries | **${S[catalog_per_entry]}** | ≤ 150 | $v |"$'\n'
else
	RES_ROWS+="| catalog ≤ 150 bytes per entry | n/a | n/a | ≤ 150 | pending |"$'\n'
fi

cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
strata_ver="$(git -C "$top" describe --always --dirty 2>/dev/null || echo '?')$([ -x "$STRATA" ] && date -r "$STRATA" '+, binary built %F %T')"
stamp=$(date +%F)
suffix=""
[ "$SCALE" = 1 ] || suffix="-scale$SCALE"
out=$here/results-$stamp$suffix.md
# a second run on the same day keeps the first one's file (it may be committed)
[ -e "$out" ] && out=$here/results-$stamp-$(date +%H%M)$suffix.md
{
	echo "## Results $stamp (scale $SCALE)"
	echo
	echo "Tree: $NF files, $ND dirs, $NL symlinks ($ENTRIES entries), $((TREEBYTES / 1048576)) MiB, seed $SEED."
	echo "Host: $(nproc) × $cpu, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)."
	echo "Tools: $(tar --version | head -n 1), zstd $(zstd -V | grep -o 'v[0-9.]*'), $(restic version | cut -d' ' -f1-2), $(borg --version) (-e $BORG_ENC, lz4), strata $strata_ver$([ "$STRATA_OK" = yes ] || echo " (n/a: $STRATA_WHY)")."
	if [ -n "$BUSY_STEPS" ]; then
		echo "**Host not idle**: other processes used > 0.25 cores on average during:$BUSY_STEPS - those timings are inflated."
	else
		echo "Host idle during all timed steps (other processes < 0.25 cores)."
	fi
	echo "Page cache warmed (untimed) before every backup step; restores with the cache dropped: $DROP. find is the median of $((REPS < 5 ? 5 : REPS)) runs, unchanged incrementals of $REPS."
	echo
	echo "| operation (wall s) | strata | tar + zstd | restic | borg |"
	echo "|---|---|---|---|---|"
	echo "| init | $(fmt strata_init) | – | $(fmt restic_init) | $(fmt borg_init) |"
	echo "| full backup | $(fmt strata_full) | $(fmt tar_full) | $(fmt restic_full) | $(fmt borg_full) |"
	echo "| unchanged incremental | $(fmt strata_unch) | $(fmt tar_unch) | $(fmt restic_unch) | $(fmt borg_unch) |"
	echo "| incremental after activity | $(fmt strata_inc) | $(fmt tar_inc) | $(fmt restic_inc) | $(fmt borg_inc) |"
	echo "| restore of the full (cold) | $(fmt strata_restore) | $(fmt tar_restore) | $(fmt restic_restore) | $(fmt borg_restore) |"
	echo "| repo size after full (MiB) | $(mib strata_full) | $(mib tar_full) | $(mib restic_full) | $(mib borg_full) |"
	echo "| repo size after full at --compression 3 (MiB) | $(mib strata3_full) | – | – | – |"
	echo "| added by the incremental after activity (MiB) | $(mib strata_inc) | $(mib tar_inc) | $(mib restic_inc) | $(mib borg_inc) |"
	echo "| peak RSS full (MiB) | $(rss strata_full) | $(rss tar_full) | $(rss restic_full) | $(rss borg_full) |"
	echo "| peak RSS incremental after activity (MiB) | $(rss strata_inc) | $(rss tar_inc) | $(rss restic_inc) | $(rss borg_inc) |"
	echo
	echo "References: find stat walk (warm) $(fmt find) s; \`zstd -dc\` of strata's full archive \`| tar -x\` (cold) $(fmt restore_ref) s;"
	echo "raw zstd -3 -T0 ${S[raw_zstd_c]:-n/a} MiB/s, zstd -d ${S[raw_zstd_d]:-n/a} MiB/s (on the $((bigsz / 1048576)) MiB mixed file), openssl aes-256-gcm ${S[raw_aes]:-n/a} MiB/s, sha256 ${S[raw_sha]:-n/a} MiB/s."
	echo "Activity: $(tail -n 1 "$LOGS/mutate.log" 2>/dev/null)."
	echo
	echo "| target | measured | ratio | limit | result |"
	echo "|---|---|---|---|---|"
	printf '%s' "$RES_ROWS"
} >"$out"
echo
cat "$out"
echo
note "written $out (raw numbers: $TSV, logs: $LOGS)"
