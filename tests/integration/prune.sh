#!/bin/bash
# prune.sh - retention with dependencies, and the operational edges of the
# scheduled commands:
#   - a full that a kept differential (or incremental chain) depends on is
#     kept past its period; prune --dry-run prints every keep and remove with
#     its reason (text and --json) and changes nothing;
#   - a prune killed with SIGKILL at several points leaves a repository that
#     verify --read-data accepts, and the next prune finishes with the same
#     result as an uninterrupted one;
#   - status exits 9 when the newest snapshot is older than the RPO;
#   - run --no-wait (and prune --no-wait) while another process holds the
#     lock exit 7; without --no-wait, run waits with a message;
#   - a differential with no full before it becomes a full and says so;
#   - pre/post hooks get the set, level and result, a failing pre-hook stops
#     the backup, a hook over its timeout is killed;
#   - configuration errors name file, line and key, exit 2.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq sqlite3 flock

export TZ=UTC
repo=$T/repo
src=$T/src
conf=$T/strata.conf
mkdir -p "$src/sub"
printf 'one\n' >"$src/a"
printf 'two\n' >"$src/sub/b"
expect_exit 0 strata -r "$repo" init

cat >"$conf" <<EOF
[repository]
path = $repo
[set s]
source = $src
EOF

D=86400
T0=$(date -u -d '2026-03-02 00:00:00' +%s)   # a Monday
at() { STRATA_NOW=$1 "${@:2}"; }
bk() { # bk TIME LEVEL [--label L]
	local t=$1 l=$2
	shift 2
	printf '%s %s\n' "$t" "$l" >>"$src/a"
	at "$t" expect_exit 0 strata -r "$repo" backup -q -s s -l "$l" "$@" "$src"
}
name_at() { strata -r "$repo" list --json | jq -r --arg s "$1" '.[] | select(.started == $s) | .name'; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

log "history: full, incrementals, differential, more incrementals"
bk "$T0" full                                   # day 0 00:00
bk $((T0 + 3600)) incremental
bk $((T0 + 7200)) incremental
bk $((T0 + 1 * D)) differential                 # base: the day-0 full
bk $((T0 + 1 * D + 3600)) incremental
bk $((T0 + 2 * D)) incremental
full0=$(name_at "$(iso "$T0")")
diff1=$(name_at "$(iso $((T0 + D)))")
inc_a=$(name_at "$(iso $((T0 + 3600)))")
inc_last=$(name_at "$(iso $((T0 + 2 * D)))")
[[ -n $full0 && -n $diff1 && -n $inc_a ]] || fail "history not as planned"

# Day 10: the full is older than 7d, but the differential (30d) needs it;
# the incrementals before the differential are older than 24h and nothing
# kept depends on them; the newest incremental's chain goes back through the
# day-1 incremental and the differential.
now=$((T0 + 10 * D))
archives "$repo" >"$T/arch.before"
at $now expect_exit 0 strata --config "$conf" prune --dry-run
cp "$OUT" "$T/dry.txt"
grep -qxF "s/$full0  kept: base of differential $diff1" "$T/dry.txt" ||
	{ cat "$T/dry.txt" >&2; fail "dry-run does not keep the full as the differential's base"; }
grep -qxF "s/$inc_a  removed: incremental older than 24h" "$T/dry.txt" ||
	{ cat "$T/dry.txt" >&2; fail "dry-run does not remove the old incremental"; }
grep -qxF "s/$inc_last  kept: newest snapshot of set 's'" "$T/dry.txt" ||
	{ cat "$T/dry.txt" >&2; fail "dry-run does not keep the newest snapshot"; }
grep -qF "s/$diff1  kept: differential within 30d" "$T/dry.txt" || fail "differential reason"
[[ $(grep -c ': ' "$T/dry.txt") == 6 ]] || fail "dry-run does not print every snapshot"
archives "$repo" >"$T/arch.after"
cmp -s "$T/arch.before" "$T/arch.after" || fail "dry-run changed archives"
[[ $(snap_ids "$repo" | wc -l) == 6 ]] || fail "dry-run removed snapshots"
at $now expect_exit 0 strata --config "$conf" prune --dry-run --json
jq -e --arg n "$full0" '.snapshots[] | select(.name == $n) | .action == "keep" and (.reason | startswith("kept: base of differential"))' "$OUT" >/dev/null ||
	fail "prune --dry-run --json: no keep with reason for the full"
jq -e '.dry_run == true and .removed == 2' "$OUT" >/dev/null || fail "prune --dry-run --json totals"

# The killed prunes work on copies of this repository.
cp -a "$repo" "$T/pristine"

log "prune for real"
at $now expect_exit 0 strata --config "$conf" prune
strata -r "$repo" list --json | jq -r '.[].name' >"$T/names.after"
grep -qxF "$full0" "$T/names.after" || fail "the differential's full was removed"
grep -qxF "$inc_a" "$T/names.after" && fail "the old incremental was not removed"
[[ $(wc -l <"$T/names.after") == 4 ]] || fail "wanted 4 snapshots after prune, got $(wc -l <"$T/names.after")"
expect_exit 0 strata -r "$repo" verify --read-data
sqlite3 "$repo/catalog.db" 'select name from archive order by name' >"$T/cat.archives"
archives "$repo" >"$T/disk.archives"
compare_states "$T/cat.archives" "$T/disk.archives" "catalog archives and archive files"
expect_exit 0 strata -r "$repo" restore "$inc_last" --to "$T/out"
snapshot_state "$src" "$T/src.state"
snapshot_state "$T/out/$(rel "$src")" "$T/out.state"
compare_states "$T/src.state" "$T/out.state" "source and restore of the newest snapshot after prune"

log "prune killed at every stage"
for stage in begin snapshot:1 snapshot:2 commit unlink:1 unlink:2; do
	rm -rf "$T/k"
	cp -a "$T/pristine" "$T/k"
	sed "s#^path = .*#path = $T/k#" "$conf" >"$T/k.conf"
	STRATA_TEST_PRUNE_KILL=$stage at $now expect_exit 137 strata --config "$T/k.conf" prune
	expect_exit 0 strata -r "$T/k" verify --read-data
	at $now expect_exit 0 strata --config "$T/k.conf" prune
	expect_exit 0 strata -r "$T/k" verify --read-data
	strata -r "$T/k" list --json | jq -r '.[].name' >"$T/k.names"
	compare_states "$T/names.after" "$T/k.names" "snapshots after a prune killed at $stage and a second prune"
	sqlite3 "$T/k/catalog.db" 'select name from archive order by name' >"$T/k.cat"
	archives "$T/k" >"$T/k.disk"
	compare_states "$T/k.cat" "$T/k.disk" "archives after a prune killed at $stage"
done

log "status and the RPO"
last=$(strata -r "$repo" list --json | jq -r 'max_by(.id).started')
tl=$(date -u -d "$last" +%s)
at $((tl + 1800)) expect_exit 0 strata --config "$conf" status
at $((tl + 7200)) expect_exit 9 strata --config "$conf" status
grep -qF "RPO BREACHED" "$OUT" || fail "status does not say the RPO is breached"
at $((tl + 7200)) expect_exit 9 strata --config "$conf" status --json
jq -e '.[0].rpo_breached == true and .[0].age_seconds == 7200' "$OUT" >/dev/null || fail "status --json"
at $((tl + 7200)) expect_exit 0 strata --config "$conf" status --rpo 3h
strata --exit-codes | grep -qx '9 rpo-breached' || fail "exit code 9 missing from the table"

log "the lock: --no-wait exits 7, otherwise run waits"
# this shell holds the lock itself: no helper process outlives the test
exec 9>>"$repo/lock"
flock -n 9 || fail "cannot take the lock for the test"
at $((tl + 3600)) expect_exit 7 strata --config "$conf" run --no-wait
expect_one_line_err
expect_err_contains "locked"
at $((tl + 3600)) expect_exit 7 strata --config "$conf" prune --no-wait
flock -u 9
exec 9>&-
# a subshell holds it for a second; run waits for it
(
	exec 9>>"$repo/lock"
	flock -n 9 || exit 1
	touch "$T/locked"
	sleep 1
) &
BG_PIDS+=($!)
for _ in $(seq 100); do [[ -e $T/locked ]] && break; sleep 0.05; done
[[ -e $T/locked ]] || fail "the helper did not take the lock"
at $((tl + 3600)) expect_exit 0 strata --config "$conf" run
expect_err_contains "waiting for the repository lock"
wait

log "a differential with no full becomes a full"
repo2=$T/repo2
expect_exit 0 strata -r "$repo2" init
cat >"$T/d.conf" <<EOF
[repository]
path = $repo2
[set d]
source = $src
monthly = never
full = never
differential = daily 01:00
incremental = never
EOF
at $((T0 + 3600)) expect_exit 0 strata --config "$T/d.conf" run
expect_err_contains "made a full backup"
[[ $(strata -r "$repo2" list --json | jq -r '.[0].kind') == full ]] || fail "not a full"
at $((T0 + 7200)) expect_exit 0 strata --config "$T/d.conf" run
expect_output_contains "nothing due"
at $((T0 + D + 3600)) expect_exit 0 strata --config "$T/d.conf" run --json
jq -e '.sets[0].due == "differential" and .sets[0].snapshot.kind == "differential"' "$OUT" >/dev/null ||
	fail "the second day's differential"

log "hooks"
repo3=$T/repo3
expect_exit 0 strata -r "$repo3" init
cat >"$T/h.conf" <<EOF
[repository]
path = $repo3
[set h]
source = $src
pre-hook = echo "pre \$STRATA_SET \$STRATA_LEVEL" >>$T/hooks.log
post-hook = echo "post \$STRATA_SET \$STRATA_LEVEL \$STRATA_RESULT \$STRATA_SNAPSHOT" >>$T/hooks.log
EOF
at "$T0" expect_exit 0 strata --config "$T/h.conf" run
grep -qx 'pre h monthly' "$T/hooks.log" || fail "pre-hook: $(cat "$T/hooks.log")"
grep -qE '^post h monthly success 2026-03-02T000000Z-full$' "$T/hooks.log" || fail "post-hook: $(cat "$T/hooks.log")"
at $((T0 + 3600)) expect_fail strata --config "$T/h.conf" run --pre-hook 'exit 3'
expect_err_contains "pre-hook failed with exit status 3"
[[ $(snap_ids "$repo3" | wc -l) == 1 ]] || fail "a failed pre-hook still backed up"
SECONDS=0
at $((T0 + 3600)) expect_fail strata --config "$T/h.conf" run --pre-hook 'sleep 30' --hook-timeout 1s
expect_err_contains "pre-hook timed out after 1s"
((SECONDS < 10)) || fail "the hook was not killed on time"

log "configuration errors"
bad() { # bad WANT_IN_MESSAGE: the config in $T/bad.conf is refused with exit 2
	expect_exit 2 strata --config "$T/bad.conf" config check
	expect_one_line_err
	expect_err_contains "$1"
}
printf '[repository]\npath = %s\n[set x]\nsource = %s\nsorce = /etc\n' "$repo" "$src" >"$T/bad.conf"
bad "$T/bad.conf:5: unknown key 'sorce' in [set x]"
printf '[repository]\npath = %s\n[set x]\nsource = %s\nfull-keep = 7 days\n' "$repo" "$src" >"$T/bad.conf"
bad "$T/bad.conf:5: key 'full-keep': '7 days' is not a duration"
printf '[repository]\npath = %s\npassphrase-file = /nonexistent/pass\n[set x]\nsource = %s\n' "$repo" "$src" >"$T/bad.conf"
bad "$T/bad.conf:3: key 'passphrase-file': cannot read '/nonexistent/pass'"
printf '[repository]\npath = %s\n[set x]\nsource = %s\nfull = daily 25:00\n' "$repo" "$src" >"$T/bad.conf"
bad "$T/bad.conf:5: key 'full': 'daily 25:00' is not a schedule"
printf '[repository]\npath = %s\n[set x]\nsource = %s\ncompression = 22\n' "$repo" "$src" >"$T/bad.conf"
bad "$T/bad.conf:5: key 'compression': '22' is not a zstd level from 1 to 19"
printf '[repository]\npath = %s\n[set x]\nexclude = *.pyc\n' "$repo" >"$T/bad.conf"
bad "$T/bad.conf:3: [set x] has no key 'source'"
printf '[repositry]\npath = %s\n' "$repo" >"$T/bad.conf"
bad "$T/bad.conf:1: unknown section '[repositry]'"
printf '[repository]\npath = %s\nthis line is wrong\n' "$repo" >"$T/bad.conf"
bad "$T/bad.conf:3: syntax error"
expect_exit 2 strata --config "$T/missing.conf" config check
expect_err_contains "$T/missing.conf"
expect_exit 2 strata --config "$conf" run --full 'every day'
expect_err_contains "option '--full'"
