#!/bin/bash
# roundtrip.sh - full, incremental, differential, incremental over a tree
# holding every kind of entry and metadata; every snapshot restores to
# exactly the state it was taken from (treestate, every line), and a
# restore of chosen paths gives exactly those subtrees.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq

repo=$T/repo
src=$T/src
big=${BIG_FILE_MB:-200}

log "generating the tree (big file: $big MiB)"
gen_tree "$src" "$big"
expect_exit 0 strata -r "$repo" init

levels=(full incremental differential incremental)
declare -a ids
for i in 0 1 2 3; do
	if ((i > 0)); then
		"mutate_$i" "$src"
	fi
	snapshot_state "$src" "$T/state$i"
	if ((i == 0)); then
		# subtrees for the path restore; no hardlink group reaches outside them
		snapshot_state "$src/modes" "$T/state0.modes"
		snapshot_state "$src/names" "$T/state0.names"
	fi
	log "backup ${levels[i]}"
	expect_exit 0 strata -r "$repo" backup --level "${levels[i]}" "$src"
	ids[i]=$(latest_id "$repo")
	kind=$(snap_field "$repo" "${ids[i]}" kind)
	[[ $kind == "${levels[i]}" ]] || fail "snapshot ${ids[i]}: kind '$kind', wanted '${levels[i]}'"
	state=$(snap_field "$repo" "${ids[i]}" state)
	[[ $state == complete ]] || fail "snapshot ${ids[i]}: state '$state', wanted 'complete'"
	# the source was not changed by reading it
	snapshot_state "$src" "$T/after$i"
	compare_states "$T/state$i" "$T/after$i" "source before and after backup $i"
done
[[ $(snap_ids "$repo" | sort -u | wc -l) == 4 ]] || fail "list does not show 4 distinct snapshots"

# The bases the design asks for: incremental -> previous, differential -> full.
base1=$(snap_field "$repo" "${ids[1]}" base)
base2=$(snap_field "$repo" "${ids[2]}" base)
base3=$(snap_field "$repo" "${ids[3]}" base)
[[ $base1 == "${ids[0]}" ]] || fail "incremental ${ids[1]} has base '$base1', wanted ${ids[0]}"
[[ $base2 == "${ids[0]}" ]] || fail "differential ${ids[2]} has base '$base2', wanted the full ${ids[0]}"
[[ $base3 == "${ids[2]}" ]] || fail "incremental ${ids[3]} has base '$base3', wanted ${ids[2]}"

# Restore every snapshot, newest first, each into a fresh directory.
srel=$(rel "$src")
for i in 3 2 1 0; do
	log "restore snapshot ${ids[i]} (${levels[i]})"
	out=$T/restore$i
	expect_exit 0 strata -r "$repo" restore "${ids[i]}" --to "$out"
	[[ -d $out/$srel ]] || fail "restore ${ids[i]}: $out/$srel missing"
	snapshot_state "$out/$srel" "$T/restored$i"
	compare_states "$T/state$i" "$T/restored$i" "snapshot ${ids[i]} (${levels[i]}) source and restore"
	rm -rf "$out"
done

# Restore chosen paths of the full while later snapshots exist.
log "restore of two paths from snapshot ${ids[0]}"
out=$T/restore_paths
expect_exit 0 strata -r "$repo" restore "${ids[0]}" "$src/modes" "$src/names" --to "$out"
snapshot_state "$out/$srel/modes" "$T/restored.modes"
snapshot_state "$out/$srel/names" "$T/restored.names"
compare_states "$T/state0.modes" "$T/restored.modes" "subtree modes/ source and restore"
compare_states "$T/state0.names" "$T/restored.names" "subtree names/ source and restore"
extra=$(find "$out/$srel" -mindepth 1 -maxdepth 1 ! -name modes ! -name names -printf '%f\n')
[[ -z $extra ]] || fail "path restore wrote more than asked: $extra"

# A single file, from the differential.
out=$T/restore_file
expect_exit 0 strata -r "$repo" restore "${ids[2]}" "$src/sparse/s100" --to "$out"
want=$(grep '^sparse/s100 ' "$T/state2" | sed 's/^sparse\/s100 //; s/ nlink=[0-9]*//')
got=$("$TREESTATE" --no-nlink "$out/$srel/sparse" | grep '^s100 ' | sed 's/^s100 //')
[[ "$want" == "$got" ]] || fail "single file restore differs: want '$want' got '$got'"
[[ -z $(find "$out/$srel/sparse" -mindepth 1 ! -name s100) ]] || fail "single file restore wrote siblings"

# ls and diff agree with what happened.
expect_exit 0 strata -r "$repo" ls "${ids[1]}" "$src/new"
grep -q added_random "$OUT" || fail "ls of the incremental does not show new/added_random"
expect_exit 0 strata -r "$repo" diff "${ids[0]}" "${ids[1]}" --json
jq -e --arg p "$srel/new/added1" 'any(.added[]; ltrimstr("/") == $p)' "$OUT" >/dev/null ||
	fail "diff ${ids[0]} ${ids[1]} does not list new/added1 as added"
# a removed directory may be listed alone or with its contents
jq -e --arg p "$srel/deldir/inner/f" 'any(.removed[]; ltrimstr("/") as $r | $p == $r or ($p | startswith($r + "/")))' "$OUT" >/dev/null ||
	fail "diff ${ids[0]} ${ids[1]} does not list deldir/inner/f (or deldir) as removed"
jq -e --arg p "$srel/renme" 'any(.removed[]; ltrimstr("/") == $p)' "$OUT" >/dev/null ||
	fail "diff ${ids[0]} ${ids[1]} does not list the renamed directory renme as removed"
jq -e --arg p "$srel/renamed/inner/f" 'any(.added[]; ltrimstr("/") as $r | $p == $r or ($p | startswith($r + "/")))' "$OUT" >/dev/null ||
	fail "diff ${ids[0]} ${ids[1]} does not list renamed/inner/f (or renamed) as added"
jq -e --arg p "$srel/owners/f2" 'any(.metadata[]; ltrimstr("/") == $p)' "$OUT" >/dev/null ||
	fail "diff ${ids[0]} ${ids[1]} does not list the owner change of owners/f2 as metadata"
jq -e --arg p "$srel/text/seq.txt" 'any(.modified[]; ltrimstr("/") == $p)' "$OUT" >/dev/null ||
	fail "diff ${ids[0]} ${ids[1]} does not list text/seq.txt as modified"
jq -e --arg p "$srel/bin/r4096" 'any(.modified[]; ltrimstr("/") == $p)' "$OUT" >/dev/null ||
	fail "diff ${ids[0]} ${ids[1]} misses bin/r4096 (same size and mtime, new content)"

expect_exit 0 strata -r "$repo" verify --read-data
log "roundtrip ok"
