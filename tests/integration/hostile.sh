#!/bin/bash
# hostile.sh - restore never writes outside its target, whatever the
# catalog says.  restore takes metadata from the catalog and content from
# the archives, so the attacks are crafted catalogs (sqlite3 on a copy of
# a good repository): names '..', 'a/../../x' and absolute-looking names,
# a symlink with children, loops in the node tree, and nonsense sizes,
# offsets, frame tables and xattr blobs.  Each restore must fail cleanly
# (non-zero, no signal, no hang) and leave everything outside DIR as it was.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq sqlite3

export STRATA_TIMEOUT=120
good=$T/good
src=$T/src
srel=$(rel "$src")
jail=$T/jail
pwn=/tmp/strata-pwned-$$
mkdir -p "$jail/sentinel"
printf 'sentinel\n' >"$jail/sentinel/keep"
touch -d '2020-01-01' "$jail/sentinel/keep" "$jail/sentinel"

mkdir -p "$src/dir_a" "$src/dir_b"
printf 'HOSTILE-PAYLOAD victim\n' >"$src/dir_a/victim_file"
printf 'HOSTILE-PAYLOAD other\n' >"$src/dir_b/other_file"
printf 'HOSTILE-PAYLOAD top\n' >"$src/top_file"
head -c 300000 /dev/urandom >"$src/dir_b/big_file"
ln -s "$jail/sentinel" "$src/evil_link"
ln -s ../../../../../../../../../../../../.. "$src/evil_rellink"

expect_exit 0 strata -r "$good" init
expect_exit 0 strata -r "$good" backup --level full "$src"
id=$(latest_id "$good")
sqlite3 "$good/catalog.db" 'pragma wal_checkpoint(truncate)' >/dev/null

# the state of everything a restore must not touch
outside_state() {
	# (directory mtimes change as the test makes and removes its copies)
	find "$T" \( -path "$T/repo" -o -path "$jail/out" -o -path "$T/.*" -o -path "$T/outside.*" \) -prune \
		-o -type d -printf '%p %y %m\n' -o -printf '%p %y %m %s %T@\n' | sort
	ls -d /tmp/strata-pwned* 2>/dev/null || true
	ls -d /x /pwned /evil* 2>/dev/null || true
}
outside_state >"$T/outside.before"

late_fail=()
node() { printf "(select id from node where hex(name) = hex('%s'))" "$1"; }

# attack NAME SQL...: restore a copy of the good repository after SQL
attack() {
	local what=$1 sql=$2
	log "attack: $what"
	rm -rf "$T/repo" "$jail/out"
	cp -a "$good" "$T/repo"
	sqlite3 "$T/repo/catalog.db" "$sql" || fail "attack '$what': the SQL failed: $sql"
	mkdir -p "$jail/out"
	run_cmd strata -r "$T/repo" restore "$id" --to "$jail/out"
	log "  exit $RC: $(head -n 1 "$ERR")"
	((RC < 124)) || { show_last; fail "attack '$what': restore exits $RC (crash, signal or timeout)"; }
	# a silent success is reported at the end, after the other attacks ran
	if ((RC == 0)); then
		late_fail+=("attack '$what': restore exits 0 (the damage goes unreported)")
	elif ((RC == 2)); then
		late_fail+=("attack '$what': restore exits 2 (usage) for a damaged catalog: $(head -n 1 "$ERR")")
	elif [[ ! -s $ERR ]]; then
		late_fail+=("attack '$what': restore exits $RC without a message")
	fi
	outside_state >"$T/outside.after"
	compare_states "$T/outside.before" "$T/outside.after" "attack '$what': files outside the restore target"
	if grep -r -l -F HOSTILE-PAYLOAD "$T" --exclude-dir=out --exclude-dir=repo --exclude-dir=good \
		--exclude-dir=src --exclude='.last.*' 2>/dev/null; then
		fail "attack '$what': payload written outside the target"
	fi
}

# names that climb out of the target
attack "top node renamed '..'" \
	"update node set name = cast('..' as blob) where parent is null"
attack "top node renamed '.'" \
	"update node set name = cast('.' as blob) where parent is null"
attack "file renamed '../../../..'" \
	"update node set name = cast('../../../../../../../../../../../../../../../../..$pwn' as blob) where id = $(node victim_file)"
attack "file renamed 'a/../../x'" \
	"update node set name = cast('a/../../../../../../../../../../../../../x' as blob) where id = $(node victim_file)"
attack "top node renamed to an absolute path" \
	"update node set name = cast('$pwn' as blob) where parent is null"
attack "directory renamed '..'" \
	"update node set name = cast('..' as blob) where id = $(node dir_a)"
attack "file renamed ''" \
	"update node set name = x'' where id = $(node victim_file)"
attack "name with a NUL byte" \
	"update node set name = x'2e2e002f78' where id = $(node victim_file)"
# writes through symlinks
attack "file below an absolute symlink" \
	"update node set parent = $(node evil_link) where id = $(node victim_file)"
attack "directory below an absolute symlink" \
	"update node set parent = $(node evil_link) where id = $(node dir_b)"
attack "file below a relative symlink that climbs out" \
	"update node set parent = $(node evil_rellink) where id = $(node top_file)"
# loops and nonsense
attack "node is its own parent" \
	"update node set parent = id where id = $(node dir_a)"
attack "two nodes are each other's parent" \
	"update node set parent = $(node dir_b) where id = $(node dir_a);
	 update node set parent = $(node dir_a) where id = $(node dir_b)"
attack "huge size" \
	"update version set size = 4611686018427387904 where node = $(node big_file)"
attack "negative size" \
	"update version set size = -5 where node = $(node big_file)"
attack "data offset beyond the stream" \
	"update version set data_offset = 1099511627776 where node = $(node big_file)"
attack "negative data offset" \
	"update version set data_offset = -4096 where node = $(node big_file)"
attack "garbage frame table" \
	"update archive set frames = randomblob(100)"
attack "empty frame table" \
	"update archive set frames = x''"
attack "missing archive row" \
	"delete from archive"
attack "garbage xattr blob" \
	"insert or replace into version_ext(version, xattrs) select id, x'ffffffff41414141' from version where node = $(node top_file)"
attack "garbage sparse map" \
	"insert or replace into version_ext(version, sparse) select id, x'00000000000000000000000000000040' from version where node = $(node big_file)"
attack "unknown entry type" \
	"update attr set type = 120"

# A content hash that does not match: verify --read-data must notice.
rm -rf "$T/repo"
cp -a "$good" "$T/repo"
sqlite3 "$T/repo/catalog.db" "update version set sha256 = zeroblob(32) where node = $(node victim_file)"
expect_exit 5 strata -r "$T/repo" verify --read-data
expect_output_contains victim_file

# The good repository is untouched by all that and restores fine.
rm -rf "$jail/out"
expect_exit 0 strata -r "$good" restore "$id" --to "$jail/out"
cmp -s "$src/dir_a/victim_file" "$jail/out/$srel/dir_a/victim_file" || fail "good restore differs"
[[ $(readlink "$jail/out/$srel/evil_link") == "$jail/sentinel" ]] || fail "symlink not restored as a symlink"
if ((${#late_fail[@]} > 0)); then
	printf '%s\n' "${late_fail[@]}" >&2
	fail "${#late_fail[@]} attacks were not reported (nothing was written outside the target)"
fi
log "hostile ok"
