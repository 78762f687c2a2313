#!/bin/bash
# schedule.sh - 45 simulated days of hourly `strata run` (STRATA_NOW steps
# by 3600) against a tiny tree that changes every hour, with the default
# policy (monthly full on the month's last day 01:00 kept 1y, full daily
# 02:00 kept 7d, differential Sunday 01:00 kept 30d, incremental hourly kept
# 24h) and two windows where the machine is "off" (one over 02:00, one over
# a month's last day).  Then:
#   - the snapshots that remain are exactly the list an independent model
#     of the policy (awk, below) computes: kinds, labels, times;
#   - each remaining snapshot restores to the tree as it was at its hour;
#   - the archive files on disk are exactly those the catalog references,
#     and verify --read-data passes;
#   - a run after an off window takes the missed level.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq sqlite3 awk date

export TZ=UTC
repo=$T/repo
src=$T/src
srel=$(rel "$src")
conf=$T/strata.conf
mkdir -p "$src/add" "$T/states"

cat >"$conf" <<EOF
# the default policy, spelled out
[repository]
path = $repo

[set tiny]
source = $src
exclude = *.tmp
monthly = last-day 01:00
monthly-keep = 1y
full = daily 02:00
full-keep = 7d
differential = sun 01:00
differential-keep = 30d
incremental = hourly
incremental-keep = 24h
rpo = 1h
EOF

expect_exit 0 strata -r "$repo" init
expect_exit 0 strata --config "$conf" config check

T0=$(date -u -d '2026-01-20 05:00:00' +%s)
HOURS=$((45 * 24))
# Off windows (hour indexes): 2026-01-30 00:00..04:59 (misses the 02:00
# full) and 2026-02-28 00:00..03:59 (misses the monthly and the full).
off1=$((($(date -u -d '2026-01-30 00:00' +%s) - T0) / 3600))
off2=$((($(date -u -d '2026-02-28 00:00' +%s) - T0) / 3600))
declare -A OFF=()
for i in 0 1 2 3 4; do OFF[$((off1 + i))]=1; done
for i in 0 1 2 3; do OFF[$((off2 + i))]=1; done

# day starts (UTC epoch) that are the last day of their month, in range
ends=""
for ((d = T0 / 86400 - 62; d <= (T0 + HOURS * 3600) / 86400 + 1; d++)); do
	if [[ $(date -u -d "@$(((d + 1) * 86400))" +%d) == 01 ]]; then
		ends+="$((d * 86400)),"
	fi
done

# The independent model: the same policy computed from first principles,
# with prune keeping the base chain of every kept snapshot and the newest.
offlist=$(printf '%s,' "${!OFF[@]}")
awk -v t0="$T0" -v n="$HOURS" -v off="$offlist" -v ends="$ends" '
function newest_cover(what,   i) {
	for (i = ns; i >= 1; i--) {
		if (!(i in alive)) continue
		if (what == "any") return T[i]
		if (what == "diff" && (K[i] == "differential" || K[i] == "full")) return T[i]
		if (what == "full" && K[i] == "full") return T[i]
		if (what == "monthly" && K[i] == "full" && L[i] == "monthly") return T[i]
	}
	return -1
}
function newest_idx(kind,   i) {
	for (i = ns; i >= 1; i--)
		if ((i in alive) && (kind == "" || K[i] == kind)) return i
	return 0
}
function keep_for(i) {
	if (L[i] == "monthly") return 365 * 86400
	if (K[i] == "full") return 7 * 86400
	if (K[i] == "differential") return 30 * 86400
	return 86400
}
function prune(t,   i, keep, b) {
	for (i = 1; i <= ns; i++) if (i in alive) keep[i] = (t - T[i] <= keep_for(i))
	keep[newest_idx("")] = 1
	for (i = ns; i >= 1; i--)
		if ((i in alive) && keep[i] && B[i]) keep[B[i]] = 1
	for (i = 1; i <= ns; i++) if ((i in alive) && !keep[i]) delete alive[i]
}
BEGIN {
	split(off, O, ","); for (i in O) if (O[i] != "") isoff[O[i]] = 1
	split(ends, E, ","); for (i in E) if (E[i] != "") lastday[E[i]] = 1
	ns = 0
	for (h = 0; h < n; h++) {
		if (h in isoff) continue
		t = t0 + h * 3600
		day = t - t % 86400
		s_inc = t - t % 3600
		s_full = day + 7200; if (s_full > t) s_full -= 86400
		s_diff = -1
		for (d = 0; d <= 7 && s_diff < 0; d++) {
			ds = day - d * 86400
			if ((int(ds / 86400) + 4) % 7 == 0 && ds + 3600 <= t) s_diff = ds + 3600
		}
		s_mon = -1
		for (d = 0; d <= 62 && s_mon < 0; d++) {
			ds = day - d * 86400
			if ((ds in lastday) && ds + 3600 <= t) s_mon = ds + 3600
		}
		lvl = ""
		if (s_mon >= 0 && newest_cover("monthly") < s_mon) lvl = "monthly"
		else if (newest_cover("full") < s_full) lvl = "full"
		else if (s_diff >= 0 && newest_cover("diff") < s_diff) lvl = "differential"
		else if (newest_cover("any") < s_inc) lvl = "incremental"
		if (lvl == "") continue
		kind = (lvl == "monthly") ? "full" : lvl
		if (kind != "full" && !newest_idx("full")) kind = "full"
		ns++
		T[ns] = t; K[ns] = kind; L[ns] = (lvl == "monthly") ? "monthly" : "null"
		B[ns] = kind == "incremental" ? newest_idx("") : kind == "differential" ? newest_idx("full") : 0
		alive[ns] = 1
		prune(t)
	}
	for (i = 1; i <= ns; i++) if (i in alive) print T[i], K[i], L[i]
}' >"$T/model"
declare -A KEEP=()
while read -r t _; do KEEP[$t]=1; done <"$T/model"

ADDED=()
mutate() {
	local h=$1
	printf 'hour %d\n' "$h" >"$src/hour"
	if ((h % 5 == 0)); then
		printf 'added at %d\n' "$h" >"$src/add/f$h"
		ADDED+=("$src/add/f$h")
	fi
	if ((h % 7 == 3 && ${#ADDED[@]} > 0)); then
		rm -f "${ADDED[0]}"
		ADDED=("${ADDED[@]:1}")
	fi
	if ((h % 13 == 0)); then mkdir -p "$src/d$h" && printf 'x%d\n' "$h" >"$src/d$h/x"; fi
	if ((h % 26 == 0 && h > 0)); then rm -rf "$src/d$((h - 13))"; fi
	printf 'junk\n' >"$src/scratch.tmp"
}

log "simulating $HOURS hours"
start=$SECONDS
for ((h = 0; h < HOURS; h++)); do
	now=$((T0 + h * 3600))
	mutate "$h"
	[[ -z ${OFF[$h]:-} ]] || continue
	# the tree as this hour's snapshot must restore it (only the hours whose
	# snapshot the model says remains: the loop must stay fast)
	if [[ -n ${KEEP[$now]:-} ]]; then
		"$TREESTATE" --exclude scratch.tmp "$src" >"$T/states/$now" || fail "treestate failed"
	fi
	# no timeout(1) wrapper here: meson's test timeout bounds the loop
	STRATA_NOW=$now "$STRATA" --config "$conf" run -q >"$T/run.out" 2>"$T/run.err" ||
		{ cat "$T/run.err" >&2; fail "run at hour $h ($(date -u -d "@$now")) failed"; }
	if ((h == off1 + 5 || h == off2 + 4)); then
		# the first run after an off window takes the missed full (and monthly)
		strata -r "$repo" list --json | jq -r 'max_by(.id) | "\(.kind) \(.label) \(.started)"' >"$T/last"
		want="full null $(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)"
		((h != off2 + 4)) || want="full monthly $(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)"
		[[ $(cat "$T/last") == "$want" ]] || fail "after the off window: got '$(cat "$T/last")', wanted '$want'"
	fi
done
log "simulation took $((SECONDS - start))s"
((SECONDS - start < 600)) || fail "the simulation is too slow"

while read -r t k l; do
	printf '%s %s %s\n' "$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%SZ)" "$k" "$l"
done <"$T/model" >"$T/want.list"
strata -r "$repo" list --json | jq -r '.[] | "\(.started) \(.kind) \(.label)"' >"$T/got.list"
compare_states "$T/want.list" "$T/got.list" "remaining snapshots (model vs repository)"
log "$(wc -l <"$T/got.list") snapshots remain, as the model says"
grep -q ' monthly$' "$T/got.list" || fail "no monthly snapshot remains"
grep -q ' differential ' "$T/got.list" || fail "no differential remains"

log "restoring every remaining snapshot"
strata -r "$repo" list --json | jq -r '.[] | "\(.id) \(.started)"' >"$T/ids"
while read -r id started; do
	t=$(date -u -d "$started" +%s)
	rm -rf "$T/out"
	expect_exit 0 strata -r "$repo" restore "$id" --to "$T/out"
	snapshot_state "$T/out/$srel" "$T/got.state"
	compare_states "$T/states/$t" "$T/got.state" "snapshot $id ($started) and the tree at that hour"
done <"$T/ids"

log "archives on disk are exactly the catalog's"
sqlite3 "$repo/catalog.db" 'select name from archive order by name' >"$T/cat.archives"
archives "$repo" >"$T/disk.archives"
compare_states "$T/cat.archives" "$T/disk.archives" "catalog archives and archive files"
[[ -z $(find "$repo/archives" -name '.tmp-*') ]] || fail "temporary files left in archives/"
# every archive row belongs to a remaining snapshot
n_orphan=$(sqlite3 "$repo/catalog.db" 'select count(*) from archive where snapshot not in (select id from snapshot)')
[[ $n_orphan == 0 ]] || fail "$n_orphan archive rows without a snapshot"
n_dead=$(sqlite3 "$repo/catalog.db" 'select count(*) from version where first_snapshot not in (select id from snapshot)')
[[ $n_dead == 0 ]] || fail "$n_dead versions born in removed snapshots"
expect_exit 0 strata -r "$repo" verify --read-data

log "status: fresh now, breached 2 hours later"
last=$((T0 + (HOURS - 1) * 3600))
STRATA_NOW=$last expect_exit 0 strata --config "$conf" status
STRATA_NOW=$((last + 7200)) expect_exit 9 strata --config "$conf" status
