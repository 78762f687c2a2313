#!/bin/bash
# crash.sh - kill -9 during a backup at several moments: afterwards list
# works, verify --read-data passes, the earlier snapshot restores exactly,
# the lock is free, the next backup succeeds and removes the leftovers.
# Then: a source file that cannot be read gives exit 3, a warning naming
# it, a snapshot in state "warning", and the other files restore.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq sqlite3 base64 split setpriv

repo=$T/repo
src=$T/src
srel=$(rel "$src")
mb=${CRASH_TREE_MB:-300}

log "generating a ${mb} MB tree"
mkdir -p "$src/big" "$src/small"
# half random, half base64 of random (compressible, slower to compress)
head -c $((mb * 524288)) /dev/urandom | split -b 4M - "$src/big/rand."
head -c $((mb * 393216)) /dev/urandom | base64 -w 100 | split -b 4M - "$src/big/b64."
for d in $(seq 1 20); do
	mkdir "$src/small/$d"
	for f in $(seq 1 100); do printf 'small %d %d\n' "$d" "$f" >"$src/small/$d/$f"; done
done

expect_exit 0 strata -r "$repo" init
printf 'before the crashes\n' >"$src/marker"
snapshot_state "$src" "$T/state0"
expect_exit 0 strata -r "$repo" backup --level full "$src"
id0=$(latest_id "$repo")
rm "$src/marker"
printf 'changed for the crashed runs\n' >"$src/marker2"
n_snaps=$(strata -r "$repo" list --json | jq length)

tmp_files() { find "$repo" -name '.tmp-*' | wc -l; }

# crash_at WHEN: start a full backup, kill -9 it at WHEN (seconds, or
# "tmp" = as soon as a temporary archive file exists); sets $killed
crash_at() {
	local when=$1 pid i st=0
	"$STRATA" -r "$repo" backup --level full "$src" >"$T/crash.out" 2>&1 </dev/null &
	pid=$!
	BG_PIDS+=("$pid")
	if [[ $when == tmp ]]; then
		for ((i = 0; i < 3000; i++)); do
			[[ -n $(find "$repo/archives" -name '.tmp-*' -print -quit) ]] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.01
		done
	else
		sleep "$when"
	fi
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" || st=$?
	BG_PIDS=()
	if ((st == 137)); then
		killed=$((killed + 1))
		log "crash at $when: killed ($(tmp_files) temporary files left)"
	elif ((st == 0)); then
		log "crash at $when: the backup had already finished"
	else
		cat "$T/crash.out" >&2
		fail "backup interrupted at $when exited $st before the kill"
	fi
	return 0
}

# after a crash: everything complete before is intact
check_after_crash() {
	local when=$1 n
	expect_exit 0 strata -r "$repo" list
	expect_exit 0 strata -r "$repo" list --json
	n=$(jq length "$OUT")
	((n == n_snaps || n == n_snaps + 1)) || fail "after crash at $when: $n snapshots listed, had $n_snaps"
	n_snaps=$n
	jq -e 'all(.[]; .state == "complete" or .state == "warning")' "$OUT" >/dev/null ||
		fail "after crash at $when: list shows an incomplete snapshot"
	expect_exit 0 strata -r "$repo" verify --read-data
	rm -rf "$T/out"
	expect_exit 0 strata -r "$repo" restore "$id0" --to "$T/out"
	snapshot_state "$T/out/$srel" "$T/state_out"
	compare_states "$T/state0" "$T/state_out" "after crash at $when: snapshot $id0 and its source"
	sqlite3 "$repo/catalog.db" 'pragma integrity_check' >"$T/integrity" 2>&1 || true
	[[ $(cat "$T/integrity") == ok ]] || fail "after crash at $when: catalog integrity: $(head -3 "$T/integrity")"
}

killed=0
for when in 0.2 0.5 1 2 tmp 3; do
	crash_at "$when"
	check_after_crash "$when"
done
((killed >= 2)) || fail "only $killed of 6 backups were still running when killed: the tree is too small to test crashes"

# The next backup succeeds (no stale lock) and cleans the leftovers.
expect_exit 0 strata -r "$repo" backup --level incremental "$src"
[[ $(tmp_files) == 0 ]] || fail "temporary files remain after the next backup: $(find "$repo" -name '.tmp-*')"
referenced=$(sqlite3 "$repo/catalog.db" 'select name from archive order by name')
ondisk=$(archives "$repo")
[[ "$referenced" == "$ondisk" ]] || fail "archives on disk and in the catalog differ after cleanup:
catalog: $referenced
disk:    $ondisk"
snapshot_state "$src" "$T/state1"
rm -rf "$T/out"
expect_exit 0 strata -r "$repo" restore "$(latest_id "$repo")" --to "$T/out"
snapshot_state "$T/out/$srel" "$T/state_out1"
compare_states "$T/state1" "$T/state_out1" "the backup after the crashes and its source"

# --- An unreadable source file, as an unprivileged user (root reads everything).
log "unreadable source files as nobody"
chmod 0755 "$T"
u=$T/nobody
mkdir -p "$u/src/sub" "$u/src/closed_dir"
printf 'readable\n' >"$u/src/ok1"
printf 'readable\n' >"$u/src/sub/ok2"
printf 'secret\n' >"$u/src/unreadable"
printf 'hidden\n' >"$u/src/closed_dir/inside"
chown -R 65534:65534 "$u"
chmod 0000 "$u/src/unreadable"
chmod 0000 "$u/src/closed_dir"
asnobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
expect_exit 0 asnobody "$STRATA" -r "$u/repo" init
expect_exit 3 asnobody "$STRATA" -r "$u/repo" backup --level full "$u/src"
expect_err_contains "$u/src/unreadable"
expect_err_contains "$u/src/closed_dir"
expect_exit 0 asnobody "$STRATA" -r "$u/repo" list --json
uid=$(jq -r 'max_by(.id).id' "$OUT")
st=$(jq -r 'max_by(.id).state' "$OUT")
[[ $st == warning ]] || fail "snapshot with unreadable files has state '$st', wanted 'warning'"
expect_exit 0 strata -r "$u/repo" restore "$uid" --to "$T/out_nobody"
urel=$(rel "$u/src")
cmp -s "$u/src/ok1" "$T/out_nobody/$urel/ok1" || fail "ok1 not restored from the warning snapshot"
cmp -s "$u/src/sub/ok2" "$T/out_nobody/$urel/sub/ok2" || fail "sub/ok2 not restored from the warning snapshot"
if [[ -f $T/out_nobody/$urel/unreadable ]] && [[ -s $T/out_nobody/$urel/unreadable ]]; then
	fail "the unreadable file was restored with content"
fi
log "crash ok ($killed backups killed mid-run)"
