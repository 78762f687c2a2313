#!/bin/bash
# levels.sh - what each level stores, on a 10,000-file tree:
# an unchanged incremental adds no version rows and almost no bytes; an
# incremental stores exactly the changed files; a differential stores the
# union of changes since the full; a full stores everything; diff --json
# names exactly the added, removed and modified paths.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq sqlite3 zstd tar

repo=$T/repo
src=$T/src
srel=$(rel "$src")

log "generating 10,000 files"
for d in $(seq -w 0 99); do
	mkdir -p "$src/d$d"
	for f in $(seq -w 0 99); do
		printf 'file %s/%s of the levels test\n' "$d" "$f" >"$src/d$d/f$f"
	done
done
expect_exit 0 strata -r "$repo" init

versions() { sqlite3 "$repo/catalog.db" 'select count(*) from version'; }
# regular files in an archive's tar listing, relative, sorted (plus the manifest)
tar_list() {
	zstd -dc -- "$repo/archives/$1" | tar --warning=no-unknown-keyword -tf - | sed 's#^\./##' | grep -v '/$' | sort
}
# backup LEVEL: run it, set $id and $arch (the new archive, "" if none)
backup() {
	archives "$repo" >"$T/arch.before"
	expect_exit 0 strata -r "$repo" backup --level "$1" "$src"
	id=$(latest_id "$repo")
	archives "$repo" >"$T/arch.after"
	arch=$(comm -13 "$T/arch.before" "$T/arch.after")
	[[ $(snap_field "$repo" "$id" kind) == "$1" ]] || fail "snapshot $id is not a $1"
	# the archive's manifest names its snapshot and the base it was compared with
	if [[ -n $arch ]]; then
		local base want got
		base=$(snap_field "$repo" "$id" base)
		want="# strata-manifest 1 id=$id kind=$1 base=${base/#null/-}"
		got=$(zstd -dc -- "$repo/archives/$arch" | tar --warning=no-unknown-keyword -xOf - .strata/manifest |
			awk 'NR == 1 { print $1, $2, $3, $4, $7, $8 }')  # reads it all: no SIGPIPE
		[[ $got == "$want" ]] || fail "archive $arch: manifest header '$got', wanted '$want'"
	fi
}
# expect_stored N FILE...: the new archive holds exactly these files + the
# manifest, and files_stored is N (the files plus directories whose
# metadata changed: adding or removing a name changes a directory's mtime)
expect_stored() {
	local p n_stored=$1
	shift
	[[ -n $arch ]] || fail "snapshot $id stored no archive"
	{
		for p in "$@"; do printf '%s/%s\n' "$srel" "$p"; done
		echo .strata/manifest
	} | sort >"$T/want.list"
	tar_list "$arch" >"$T/got.list"
	compare_states "$T/want.list" "$T/got.list" "files stored by snapshot $id (archive $arch)"
	local fs
	fs=$(snap_field "$repo" "$id" files_stored)
	[[ $fs == "$n_stored" ]] || fail "snapshot $id: files_stored $fs, wanted $n_stored"
}

log "full"
backup full
full=$id
v_full=$(versions)
full_bytes=$(snap_field "$repo" "$full" bytes_stored)
((v_full >= 10100)) || fail "full: only $v_full version rows for 10,100 entries"
tar_list "$arch" | grep -c "^$srel/d[0-9]*/f[0-9]*\$" >"$T/n" || true
[[ $(cat "$T/n") == 10000 ]] || fail "full archive holds $(cat "$T/n") of 10000 files"
[[ $(snap_field "$repo" "$full" files) -ge 10000 ]] || fail "full: files < 10000"

log "unchanged incremental"
backup incremental
inc0=$id
[[ $(versions) == "$v_full" ]] || fail "unchanged incremental added $(($(versions) - v_full)) version rows"
fs=$(snap_field "$repo" "$inc0" files_stored)
[[ $fs == 0 ]] || fail "unchanged incremental: files_stored $fs, wanted 0"
bs=$(snap_field "$repo" "$inc0" bytes_stored)
log "unchanged incremental: bytes_stored $bs (full: $full_bytes)"
((bs * 4 < full_bytes)) || fail "unchanged incremental stored $bs bytes, the full $full_bytes"
if [[ -n $arch ]]; then
	tar_list "$arch" >"$T/got.list"
	[[ $(cat "$T/got.list") == .strata/manifest ]] || fail "unchanged incremental archive holds: $(head -5 "$T/got.list")"
fi

log "incremental after changing 3 files"
printf 'changed\n' >>"$src/d01/f01"
printf 'changed\n' >>"$src/d50/f50"
printf 'changed\n' >>"$src/d99/f99"
backup incremental
inc1=$id
expect_stored 3 d01/f01 d50/f50 d99/f99

log "incremental: 2 more changed, 1 removed, 1 added"
printf 'changed\n' >>"$src/d02/f02"
printf 'changed again\n' >>"$src/d50/f50"
rm "$src/d03/f03"
printf 'new\n' >"$src/d04/new_file"
backup incremental
inc2=$id
expect_stored 5 d02/f02 d04/new_file d50/f50  # + d03/ d04/

log "differential: the union since the full"
backup differential
diff1=$id
[[ $(snap_field "$repo" "$diff1" base) == "$full" ]] || fail "differential base is not the full $full"
expect_stored 7 d01/f01 d02/f02 d04/new_file d50/f50 d99/f99  # + d03/ d04/

log "full again: everything"
backup full
full2=$id
n=$(tar_list "$arch" | grep -c "^$srel/d[0-9]*/\(f[0-9]*\|new_file\)\$" || true)
[[ $n == 10000 ]] || fail "second full archive holds $n of 10000 files"

# diff --json: exact sets; directories whose mtime changed may show as modified or metadata.
# json_set KEY: sorted relative paths of that key in $OUT
json_set() { jq -r --arg k "$1" '.[$k][] | ltrimstr("/")' "$OUT" | sort; }
# drop the source's directories and its ancestors (their mtimes change)
not_dirs() {
	awk -v s="$srel" '$0 != s && $0 !~ ("^" s "/d[0-9]+$") && index(s "/", $0 "/") != 1'
}
check_diff() {
	# shellcheck disable=SC2034 # read through ${!k}
	local a=$1 b=$2 added=$3 removed=$4 modified=$5 k want
	expect_exit 0 strata -r "$repo" diff "$a" "$b" --json
	jq -e 'type == "object" and (.added|type) == "array" and (.removed|type) == "array"
		and (.modified|type) == "array" and (.metadata|type) == "array"' "$OUT" >/dev/null ||
		fail "diff $a $b --json: not an object with the four arrays"
	for k in added removed modified; do
		want=${!k}
		tr ' ' '\n' <<<"$want" | sed "/^\$/d; s#^#$srel/#" | sort >"$T/want.$k"
		json_set "$k" | not_dirs >"$T/got.$k" || true
		compare_states "$T/want.$k" "$T/got.$k" "diff $a $b: '$k' paths"
	done
	json_set metadata | not_dirs >"$T/got.metadata" || true
	[[ ! -s $T/got.metadata ]] || fail "diff $a $b: unexpected metadata changes: $(head -3 "$T/got.metadata")"
}
check_diff "$full" "$inc0" "" "" ""
check_diff "$full" "$inc1" "" "" "d01/f01 d50/f50 d99/f99"
check_diff "$inc1" "$inc2" "d04/new_file" "d03/f03" "d02/f02 d50/f50"
check_diff "$full" "$diff1" "d04/new_file" "d03/f03" "d01/f01 d02/f02 d50/f50 d99/f99"

# The differential alone (with its full) restores the current tree.
snapshot_state "$src" "$T/state.now"
expect_exit 0 strata -r "$repo" restore "$diff1" --to "$T/out"
snapshot_state "$T/out/$srel" "$T/state.diff"
compare_states "$T/state.now" "$T/state.diff" "source and restore of the differential"
# an unchanged tree backed up again as a full differs in nothing
check_diff "$diff1" "$full2" "" "" ""
log "levels ok"
