#!/bin/bash
# escape_hatch.sh - an unencrypted archive is a plain .tar.zst: zstd -t
# passes, `zstd -dc | tar -x` gives back the snapshot, the seek table
# follows zstd's seekable format, and the last member is .strata/manifest.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq zstd tar od

repo=$T/repo
src=$T/src
srel=$(rel "$src")
gen_tree "$src" 24
snapshot_state "$src" "$T/state0"
expect_exit 0 strata -r "$repo" init
expect_exit 0 strata -r "$repo" backup --level full "$src"

mapfile -t arch < <(archives "$repo")
[[ ${#arch[@]} == 1 ]] || fail "expected one archive, found ${#arch[@]}: ${arch[*]}"
a=$repo/archives/${arch[0]}
[[ ${arch[0]} =~ ^[0-9a-f]{32}\.tar\.zst$ ]] || fail "archive name '${arch[0]}' is not <32hex>.tar.zst"

zstd -tq -- "$a" || fail "zstd -t rejects $a"

# The last tar member is the manifest.
zstd -dc -- "$a" | tar --warning=no-unknown-keyword -tf - >"$T/members"
last=$(tail -n 1 "$T/members")
[[ ${last#./} == .strata/manifest ]] || fail "last member is '$last', not .strata/manifest"

# Extract with GNU tar alone and compare with the source, every line.
# ACLs travel as raw system.posix_acl_* xattrs (docs/FORMAT.md): GNU tar
# restores them with --xattrs; its --acls would reset them (no SCHILY.acl.*).
mkdir "$T/x"
zstd -dc -- "$a" | tar -C "$T/x" --xattrs --xattrs-include='*' --numeric-owner \
	--same-permissions --same-owner --warning=no-unknown-keyword -xf - 2>"$T/tar.err" || {
	cat "$T/tar.err" >&2
	fail "zstd -dc | tar -x failed"
}
[[ -s $T/x/.strata/manifest ]] || fail "manifest not extracted"
# The manifest's first line names the snapshot, as `strata list` does.
head -n 1 "$T/x/.strata/manifest" >"$T/mhead"
strata -r "$repo" list --json | jq -r '.[0] | "# strata-manifest 1 id=\(.id) name=\(.name) set=\(.set) kind=\(.kind) base=-"' >"$T/mwant"
[[ $(cut -d' ' -f1-8 "$T/mhead") == "$(cat "$T/mwant")" ]] ||
	fail "manifest header '$(cat "$T/mhead")', wanted it to start '$(cat "$T/mwant")'"
grep -Eq ' started_ns=[0-9]{19} label=-$' "$T/mhead" || fail "manifest header '$(cat "$T/mhead")' lacks started_ns and label"
# Then the snapshot's whole tree, a line per entry: type mode
# uid gid size mtime_ns archive offset sha256 path [-> target], with %XX
# for bytes <= 0x20, >= 0x7f and '%' (so the fields split on spaces).
m=$T/mlines
tail -n +2 "$T/x/.strata/manifest" >"$m"
n_tree=$(find "$T/x" -mindepth 1 -path "$T/x/.strata" -prune -o -printf . | wc -c)
[[ $(wc -l <"$m") == "$n_tree" ]] || fail "manifest has $(wc -l <"$m") entry lines, the snapshot $n_tree entries"
bad=$(awk '!(NF == 10 || (NF == 12 && $1 == "l" && $11 == "->")) || ($7 != "this" && $7 != "-") { print NR ": " $0; exit }' "$m")
[[ -z $bad ]] || fail "manifest line $bad"
f=$(cd "$src" && find . -type f -size +0 -newermt 1970-01-02 -regex '[A-Za-z0-9/._-]*' -print -quit)
f=${f#./}
want="$(stat -c '%s' "$src/$f") $(stat -c '%.9Y' "$src/$f" | tr -d .)"
line=$(awk -v p="$srel/$f" '$10 == p' "$m")
[[ $(awk '{ print $5, $6 }' <<<"$line") == "$want" ]] || fail "manifest line of $f: '$line', wanted size and mtime $want"
[[ $(awk '{ print $9 }' <<<"$line") == "$(sha256sum <"$src/$f" | cut -d' ' -f1)" ]] ||
	fail "manifest sha256 of $f differs from sha256sum"
snapshot_state "$T/x/$srel" "$T/state.tar"
# The pre-1970 mtime with a fraction (modes/plain) is checked on its own
# below, so a failure there does not hide the checks that follow.
grep -v '^modes/plain ' "$T/state0" >"$T/state0.a"
grep -v '^modes/plain ' "$T/state.tar" >"$T/state.tar.a"
compare_states "$T/state0.a" "$T/state.tar.a" "source and 'zstd -dc | tar -x'"
late_fail=
if ! cmp -s <(grep '^modes/plain ' "$T/state0") <(grep '^modes/plain ' "$T/state.tar"); then
	late_fail="pre-1970 mtime with nanoseconds differs after 'zstd -dc | tar -x':
  source: $(grep '^modes/plain ' "$T/state0" | grep -o 'mtime=[^ ]*')
  tar -x: $(grep '^modes/plain ' "$T/state.tar" | grep -o 'mtime=[^ ]*')
  pax header: $(zstd -dc -- "$a" | grep -a -o '[0-9]* mtime=-[0-9.]*' | head -n 1)"
fi

# The seek table (zstd contrib/seekable_format): the file ends with a
# skippable frame [0x184D2A5E][size u32][entries][nframes u32][descriptor u8][0x8F92EAB1].
u32() { od -An -tu4 --endian=little -j "$2" -N4 -- "$1" | tr -d ' '; }
u8() { od -An -tu1 -j "$2" -N1 -- "$1" | tr -d ' '; }
size=$(stat -c %s -- "$a")
magic=$(od -An -tx1 -j $((size - 4)) -N4 -- "$a" | tr -d ' ')
[[ $magic == b1ea928f ]] || fail "seek table footer magic is '$magic', wanted b1 ea 92 8f"
nframes=$(u32 "$a" $((size - 9)))
desc=$(u8 "$a" $((size - 5)))
((desc & 0x7c)) && fail "seek table descriptor has reserved bits set: $desc"
esize=8
((desc & 0x80)) && esize=12
tsize=$((nframes * esize + 9))
tstart=$((size - 8 - tsize))
((nframes > 0 && tstart > 0)) || fail "seek table: $nframes frames, bad start $tstart"
[[ $(u32 "$a" "$tstart") == $((0x184D2A5E)) ]] || fail "no skippable magic 0x184D2A5E at the seek table start ($tstart)"
[[ $(u32 "$a" $((tstart + 4))) == "$tsize" ]] || fail "seek table frame size field != $tsize"
log "seek table: $nframes frames, entry size $esize"

# Entries: compressed sizes add up to the frames' bytes, decompressed sizes
# to the tar stream, and every frame starts with the zstd magic.
od -An -tu4 --endian=little -v -j $((tstart + 8)) -N $((nframes * esize)) -- "$a" |
	tr -s ' \n' '\n' | sed '/^$/d' >"$T/entries"
[[ $(wc -l <"$T/entries") == $((nframes * esize / 4)) ]] || fail "seek table entries truncated"
off=0 dsum=0 k=0
while read -r c; do
	read -r dsz
	if ((esize == 12)); then read -r _; fi
	((c > 0)) || fail "seek table: frame $k has compressed size 0"
	offs[k]=$off
	off=$((off + c))
	dsum=$((dsum + dsz))
	k=$((k + 1))
done <"$T/entries"
# frames may follow an optional leading skippable frame (a header)
lead=$((tstart - off))
((lead >= 0)) || fail "seek table: frames ($off bytes) overrun the table at $tstart"
if ((lead > 0)); then
	m=$(u32 "$a" 0)
	(((m & 0xFFFFFFF0) == 0x184D2A50)) || fail "$lead bytes before the first frame are not a skippable frame"
fi
for ((k = 0; k < nframes; k++)); do
	[[ $(u32 "$a" $((lead + offs[k]))) == $((0xFD2FB528)) ]] || fail "frame $k at $((lead + offs[k])) lacks the zstd magic"
done
stream=$(zstd -dc -- "$a" | wc -c)
[[ $dsum == "$stream" ]] || fail "seek table decompressed sizes sum to $dsum, the stream is $stream bytes"
if ((esize == 12)); then log "seek table carries checksums"; fi

[[ -z $late_fail ]] || fail "$late_fail"
log "escape hatch ok ($nframes frames, $stream bytes of tar)"
