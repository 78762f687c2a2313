#!/bin/bash
# corruption.sh - damaged repositories: a flipped byte, a truncated or a
# deleted archive, a damaged seek table, a truncated or garbage catalog.
# Each is reported with a clear message and a non-zero exit, never a
# crash, never wrong bytes; undamaged files still restore.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq

good=$T/good
src=$T/src
srel=$(rel "$src")
mkdir -p "$src/small"
for i in $(seq 1 30); do printf 'small file %d\n' "$i" >"$src/small/f$i"; done
head -c $((8 * 1048576)) /dev/urandom >"$src/big"
printf 'tail\n' >"$src/zz_last"
snapshot_state "$src" "$T/state0"
grep -v '^big ' "$T/state0" >"$T/state0_nobig"

expect_exit 0 strata -r "$good" init
expect_exit 0 strata -r "$good" backup --level full "$src"
id=$(latest_id "$good")
mapfile -t arch < <(archives "$good")
[[ ${#arch[@]} == 1 ]] || fail "expected one archive, found: ${arch[*]}"
aname=${arch[0]}
ahex=${aname%%.*}

# fresh REPO copy for one scenario
fresh() {
	rm -rf "$T/repo"
	cp -a "$good" "$T/repo"
	repo=$T/repo
	a=$repo/archives/$aname
	rm -rf "$T/out"
}

log "flipped byte in the middle of the archive"
fresh
flip_byte "$a" $(($(stat -c %s "$a") / 2))
expect_exit 5 strata -r "$repo" verify --read-data
expect_output_contains "$ahex"
expect_exit 5 strata -r "$repo" verify "$id" --read-data
expect_exit 5 strata -r "$repo" restore "$id" --to "$T/out"
expect_err_contains big
snapshot_state "$T/out/$srel" "$T/state_out" --exclude big
compare_states "$T/state0_nobig" "$T/state_out" "source and restore around the damaged frame"
if [[ -f $T/out/$srel/big ]] && cmp -s "$src/big" "$T/out/$srel/big"; then
	fail "big restored intact although its frame was damaged"
fi
# restoring only undamaged paths succeeds
rm -rf "$T/out"
expect_exit 0 strata -r "$repo" restore "$id" "$src/small" --to "$T/out"
cmp -s "$src/small/f7" "$T/out/$srel/small/f7" || fail "small/f7 not restored from a partly damaged archive"

log "truncated archive"
fresh
truncate -s $(($(stat -c %s "$a") / 3)) "$a"
expect_exit 5 strata -r "$repo" verify --read-data
expect_output_contains "$ahex"
expect_fail strata -r "$repo" restore "$id" --to "$T/out"
[[ $RC == 5 ]] || log "note: restore of a truncated archive exits $RC (5 expected)"

log "archive cut by one byte (the seek table footer)"
fresh
truncate -s $(($(stat -c %s "$a") - 1)) "$a"
expect_exit 5 strata -r "$repo" verify --read-data
expect_output_contains "$ahex"

log "damaged seek table"
fresh
flip_byte "$a" $(($(stat -c %s "$a") - 12))
expect_exit 5 strata -r "$repo" verify --read-data

log "deleted archive"
fresh
rm -f "$a"
expect_fail strata -r "$repo" verify
[[ $RC == 5 || $RC == 4 ]] || fail "verify with a missing archive exits $RC, wanted 5 (or 4)"
expect_output_contains "$ahex"
expect_fail strata -r "$repo" restore "$id" --to "$T/out"
expect_err_contains "$ahex"

log "empty archive file"
fresh
: >"$a"
expect_exit 5 strata -r "$repo" verify --read-data

# A damaged catalog: every command fails with one clear line, no crash.
catalog_case() {
	local what=$1 cmd
	log "catalog: $what"
	for cmd in "list" "list --json" "verify" "ls $id" "restore $id --to $T/out" "backup --level incremental $src"; do
		# shellcheck disable=SC2086 # cmd is a word list
		expect_fail strata -r "$repo" $cmd
		if [[ $RC == 1 ]]; then
			log "note: '$cmd' on a $what catalog exits 1 (internal); a corrupt-catalog code is better"
		fi
		[[ -s $ERR ]] || fail "'$cmd' on a $what catalog fails silently"
		if (($(wc -l <"$ERR") > 3)); then
			show_last
			fail "'$cmd' on a $what catalog prints more than a clear message"
		fi
	done
	[[ ! -e $T/out/$srel/big ]] || fail "restore with a $what catalog wrote files"
}
fresh
truncate -s 100 "$repo/catalog.db"
rm -f "$repo/catalog.db-wal" "$repo/catalog.db-shm"
catalog_case "truncated"

fresh
head -c 65536 /dev/urandom >"$repo/catalog.db"
rm -f "$repo/catalog.db-wal" "$repo/catalog.db-shm"
catalog_case "garbage"

fresh
# a valid header, the rest garbage
sz=$(stat -c %s "$repo/catalog.db")
head -c $((sz - 4096)) /dev/urandom | dd of="$repo/catalog.db" bs=4096 seek=1 conv=notrunc status=none
rm -f "$repo/catalog.db-wal" "$repo/catalog.db-shm"
catalog_case "half garbage"

fresh
rm -f "$repo/catalog.db" "$repo/catalog.db-wal" "$repo/catalog.db-shm"
log "catalog: missing"
expect_fail strata -r "$repo" list
[[ -s $ERR ]] || fail "list without a catalog fails silently"
[[ ! -e $repo/catalog.db ]] || [[ $(stat -c %s "$repo/catalog.db") -gt 0 ]] || true

# a damaged strata.repo
fresh
printf 'garbage\n' >"$repo/strata.repo"
log "strata.repo: garbage"
expect_fail strata -r "$repo" list
[[ -s $ERR ]] || fail "list with a garbage strata.repo fails silently"

# the good repository is still good after all that
expect_exit 0 strata -r "$good" verify --read-data
log "corruption ok"
