#!/bin/bash
# encryption.sh - an encrypted repository leaks neither contents nor names
# into its archives; a wrong passphrase is one line and exit 6; the three
# passphrase sources work; a flipped byte in a sealed archive is caught by
# verify and restore (exit 5) without losing the undamaged files.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq

repo=$T/repo
src=$T/src
srel=$(rel "$src")
pass='correct horse battery staple'
pwfile=$T/pw
printf '%s\n' "$pass" >"$pwfile"
wrongfile=$T/wrong
printf 'not the passphrase\n' >"$wrongfile"

# Distinctive contents and names, in compressible and incompressible files.
marker_content=ZEBRACONTENTMARKER7319
marker_name=QUOKKANAMEMARKER4402
mkdir -p "$src/$marker_name-dir" "$src/plain"
for i in $(seq 1 2000); do printf '%s line %d\n' "$marker_content" "$i"; done >"$src/plain/text"
{
	head -c 100000 /dev/urandom
	printf '%s' "$marker_content"
	head -c 100000 /dev/urandom
} >"$src/plain/mixed"
printf '%s\n' "$marker_content" >"$src/$marker_name-dir/$marker_name.txt"
for i in $(seq 1 20); do printf 'small %d\n' "$i" >"$src/plain/small$i"; done
# the big file a flipped byte in the middle of the archive will hit
head -c $((8 * 1048576)) /dev/urandom >"$src/big"
snapshot_state "$src" "$T/state0"

export STRATA_PASSPHRASE=$pass
expect_exit 0 strata -r "$repo" init --encrypt
[[ -s $repo/key ]] || fail "init --encrypt wrote no key file"
expect_exit 0 strata -r "$repo" backup --level full "$src"
id=$(latest_id "$repo")

mapfile -t arch < <(archives "$repo")
[[ ${#arch[@]} == 1 ]] || fail "expected one archive, found: ${arch[*]}"
[[ ${arch[0]} =~ ^[0-9a-f]{32}\.tar\.zst\.sealed$ ]] || fail "archive '${arch[0]}' is not <32hex>.tar.zst.sealed"
a=$repo/archives/${arch[0]}

# Nothing readable in the archives: contents, names, the manifest, zstd frames.
for s in "$marker_content" "$marker_name" "$srel" .strata/manifest ustar; do
	if grep -r -a -l -F -- "$s" "$repo/archives" >"$T/hits"; then
		fail "'$s' appears in plaintext in: $(cat "$T/hits")"
	fi
done
if zstd -dc -- "$a" >/dev/null 2>&1; then
	fail "the sealed archive decompresses as plain zstd"
fi
# the key file holds no passphrase
if grep -a -q -F -- "$pass" "$repo/key" "$repo/strata.repo"; then
	fail "the passphrase appears in the key or strata.repo file"
fi

# The right passphrase from the environment restores the tree exactly.
expect_exit 0 strata -r "$repo" restore "$id" --to "$T/out_env"
snapshot_state "$T/out_env/$srel" "$T/state_env"
compare_states "$T/state0" "$T/state_env" "source and restore (STRATA_PASSPHRASE)"
expect_exit 0 strata -r "$repo" verify --read-data

# A wrong passphrase: one line, exit 6, for restore and verify.
STRATA_PASSPHRASE=wrong expect_exit 6 strata -r "$repo" restore "$id" --to "$T/out_wrong"
expect_one_line_err
[[ -z $(find "$T/out_wrong" -type f 2>/dev/null) ]] || fail "a restore with a wrong passphrase wrote files"
STRATA_PASSPHRASE=wrong expect_exit 6 strata -r "$repo" verify --read-data
expect_one_line_err
STRATA_PASSPHRASE=wrong expect_exit 6 strata -r "$repo" backup --level incremental "$src"
expect_one_line_err

# --passphrase-file and --passphrase-command (without the environment).
unset STRATA_PASSPHRASE
expect_exit 0 strata -r "$repo" --passphrase-file "$pwfile" restore "$id" --to "$T/out_file"
snapshot_state "$T/out_file/$srel" "$T/state_file"
compare_states "$T/state0" "$T/state_file" "source and restore (--passphrase-file)"
expect_exit 0 strata -r "$repo" --passphrase-command "cat $pwfile" verify --read-data
expect_exit 6 strata -r "$repo" --passphrase-file "$wrongfile" verify --read-data
expect_one_line_err
expect_exit 6 strata -r "$repo" --passphrase-command "cat $wrongfile" restore "$id" --to "$T/out_wrong2"
expect_one_line_err
# no passphrase at all and no terminal: fails cleanly (auth or usage), no prompt hang
expect_fail strata -r "$repo" verify --read-data
export STRATA_PASSPHRASE=$pass

# Flip one byte in the middle of the sealed archive.
size=$(stat -c %s -- "$a")
flip_byte "$a" $((size / 2))
expect_exit 5 strata -r "$repo" verify --read-data
expect_output_contains "${arch[0]%%.*}"
expect_exit 5 strata -r "$repo" restore "$id" --to "$T/out_bad"
expect_err_contains "big"
# every other file is restored and intact
snapshot_state "$T/out_bad/$srel" "$T/state_bad" --exclude big
grep -v '^big ' "$T/state0" >"$T/state0_nobig"
compare_states "$T/state0_nobig" "$T/state_bad" "source and restore around the damaged frame"
if [[ -f $T/out_bad/$srel/big ]] && cmp -s "$src/big" "$T/out_bad/$srel/big"; then
	fail "big restored intact although its frame was damaged (did the flip miss it?)"
fi
log "encryption ok"
