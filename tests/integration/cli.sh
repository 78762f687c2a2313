#!/bin/bash
# cli.sh - the command line contract: help, usage errors (exit 2, one
# line), not found (exit 4), locked (exit 7), the exit-code table equal to
# the man page's EXIT STATUS section, and list --json with its keys.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need jq flock

repo=$T/repo
src=$T/src
man=${SRCDIR:-$(dirname "$0")}/../../docs/strata.1
mkdir -p "$src/d"
printf 'one\n' >"$src/d/one"
printf 'two\n' >"$src/two"

# Help.
expect_exit 0 strata --help
grep -qi usage "$OUT" || fail "strata --help prints no usage"
# every command that strata --help lists, so a new one cannot miss its help
mapfile -t commands < <(awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }' "$OUT")
((${#commands[@]} >= 13)) || fail "strata --help lists only ${#commands[@]} commands: ${commands[*]}"
for c in "${commands[@]}"; do
	expect_exit 0 strata "$c" --help
	grep -qi usage "$OUT" || fail "strata $c --help prints no usage"
	grep -q -- "$c" "$OUT" || fail "strata $c --help does not name the command"
	[[ ! -s $ERR ]] || fail "strata $c --help writes to stderr"
done

# Usage errors: exit 2, one line on stderr, nothing on stdout.
usage_error() {
	expect_exit 2 strata "$@"
	expect_one_line_err
	[[ ! -s $OUT ]] || fail "$* printed on stdout"
}
usage_error no-such-command
usage_error --no-such-option
usage_error -r "$repo" list --no-such-option
usage_error -r "$repo" backup --level hourly "$src"
usage_error -r "$repo" backup --level full
for l in 0 20 -1 3x ''; do
	usage_error -r "$repo" backup --level full --compression "$l" "$src"
	expect_err_contains "--compression '$l'"
done
usage_error -r "$repo" restore
usage_error -r "$repo" diff 1
usage_error
usage_error -r

# Not found.
expect_exit 4 strata -r "$T/no-such-repo" list
expect_one_line_err
expect_err_contains "$T/no-such-repo"
expect_exit 4 strata -r "$T/no-such-repo" backup --level full "$src"
[[ ! -e $T/no-such-repo ]] || fail "backup into a missing repository created it"

expect_exit 0 strata -r "$repo" init
[[ $(stat -c %a "$repo") == 700 ]] || fail "repository directory is not 0700"
[[ $(stat -c %a "$repo/catalog.db") == 600 ]] || fail "catalog.db is not 0600"
expect_fail strata -r "$repo" init
[[ $RC != 1 ]] || fail "init over an existing repository: internal error"
expect_exit 0 strata -r "$repo" list --json
jq -e 'type == "array" and length == 0' "$OUT" >/dev/null || fail "list --json of an empty repository is not []"

expect_exit 4 strata -r "$repo" backup --level full "$T/no-such-source"
expect_exit 0 strata -r "$repo" backup --level full "$src"
expect_exit 0 strata -r "$repo" backup --level incremental --set other "$src/d"

# --compression reaches zstd: the same compressible file is smaller at 19.
mkdir "$T/zsrc"
seq 1 200000 >"$T/zsrc/seq"
for l in 1 19; do
	expect_exit 0 strata -r "$T/repo-z$l" init
	expect_exit 0 strata -r "$T/repo-z$l" backup --level full --compression "$l" "$T/zsrc"
	du -b "$T/repo-z$l"/archives/*.tar.zst | awk '{ print $1 }' >"$T/z$l.size"
	rm -rf "$T/out-z"
	expect_exit 0 strata -r "$T/repo-z$l" restore latest --to "$T/out-z"
	cmp "$T/zsrc/seq" "$T/out-z/$(rel "$T/zsrc")/seq" || fail "--compression $l: restored file differs"
done
(($(cat "$T/z19.size") < $(cat "$T/z1.size"))) ||
	fail "--compression 19 archive ($(cat "$T/z19.size") B) not smaller than at 1 ($(cat "$T/z1.size") B)"
for s in 999999 no-such-name 2020-01-01T000000Z-full other/no-such; do
	expect_exit 4 strata -r "$repo" ls "$s"
	expect_one_line_err
	expect_err_contains "$s"
	expect_exit 4 strata -r "$repo" restore "$s" --to "$T/out"
	expect_exit 4 strata -r "$repo" verify "$s"
done
id=$(latest_id "$repo")
expect_exit 4 strata -r "$repo" ls "$id" "$src/no/such/path"
expect_exit 4 strata -r "$repo" restore "$id" "$src/no/such/path" --to "$T/out"
expect_exit 4 strata -r "$repo" diff "$id" 999999

# STRATA_REPOSITORY instead of -r.
STRATA_REPOSITORY=$repo expect_exit 0 strata list

# list --json: an array of objects with the documented keys and types.
expect_exit 0 strata -r "$repo" list --json
jq -e 'type == "array" and length == 2' "$OUT" >/dev/null || fail "list --json: not an array of 2"
for k in id name set kind base started state files files_stored bytes_read bytes_stored label; do
	jq -e --arg k "$k" 'all(.[]; has($k))' "$OUT" >/dev/null || fail "list --json: key '$k' missing"
done
jq -e 'all(.[]; (.id|type) == "number" and (.files|type) == "number" and (.bytes_stored|type) == "number"
	and (.name|type) == "string" and (.kind|IN("full","incremental","differential"))
	and (.state|IN("complete","warning")))' "$OUT" >/dev/null || fail "list --json: wrong value types"
jq -e '[.[].set] | sort == ["default","other"] or sort == ["main","other"] or (unique|length) == 2' "$OUT" >/dev/null ||
	fail "list --json: --set not recorded"
jq -e '[.[].name] | all(test(":") | not)' "$OUT" >/dev/null || fail "snapshot names contain a colon"
# the plain list names both snapshots
expect_exit 0 strata -r "$repo" list
for n in $(jq -r '.[].name' <(strata -r "$repo" list --json)); do
	grep -qF -- "$n" "$OUT" || fail "list does not show snapshot $n"
done

# ls shows the files; diff between identical trees is empty.
full=$(strata -r "$repo" list --json | jq -r 'map(select(.set != "other")) | .[0].id')
expect_exit 0 strata -r "$repo" ls "$full" "$src"
grep -q two "$OUT" || fail "ls does not list 'two'"
expect_exit 0 strata -r "$repo" backup --level incremental "$src"
inc=$(latest_id "$repo")
expect_exit 0 strata -r "$repo" diff "$full" "$inc" --json
jq -e '[.added, .removed, .modified, .metadata] | map(length) | add == 0' "$OUT" >/dev/null ||
	fail "diff of two identical snapshots is not empty: $(cat "$OUT")"

# Locked: with a writer holding the lock, backup --no-wait exits 7, a plain
# backup waits for the lock and then runs; readers do not wait.
exec {lockfd}>>"$repo/lock"
flock -x "$lockfd"
STRATA_TIMEOUT=60 expect_exit 7 strata -r "$repo" backup --no-wait --level incremental "$src"
expect_one_line_err
STRATA_TIMEOUT=60 expect_exit 0 strata -r "$repo" list
STRATA_TIMEOUT=60 expect_exit 0 strata -r "$repo" restore "$full" --to "$T/out_locked"
n_before=$(strata -r "$repo" list --json | jq length)
# (the waiter must not inherit our locked descriptor)
"$STRATA" -r "$repo" backup --level incremental "$src" >"$T/wait.out" 2>&1 </dev/null {lockfd}>&- &
waiter=$!
BG_PIDS+=("$waiter")
sleep 1
kill -0 "$waiter" 2>/dev/null || fail "backup did not wait for the held lock: $(cat "$T/wait.out")"
exec {lockfd}>&-
wst=0
timeout 60 tail --pid="$waiter" -f /dev/null || fail "backup still waiting 60 s after the lock was released"
wait "$waiter" || wst=$?
BG_PIDS=()
[[ $wst == 0 ]] || fail "backup that waited for the lock exits $wst: $(cat "$T/wait.out")"
[[ $(strata -r "$repo" list --json | jq length) == $((n_before + 1)) ]] || fail "the waiting backup made no snapshot"

# libarchive is loaded by a backup only (backup/tarlib.h): the binary does
# not link it, and when the library found is not libarchive, a backup fails
# at its start with one line naming it (exit 8, io), records nothing, and
# commands that do not write tar members still work.
if ldd "$STRATA" | grep -q 'libarchive'; then
	fail "strata links libarchive; only a backup should load it"
fi
if command -v cc >/dev/null; then
	mkdir -p "$T/stublib"
	echo 'int strata_stub;' | cc -shared -fPIC -x c -o "$T/stublib/libarchive.so.13" - ||
		fail "cannot build the stub library"
	n_before=$(strata -r "$repo" list --json | jq length)
	LD_LIBRARY_PATH=$T/stublib expect_exit 8 strata -r "$repo" backup --level full "$src"
	expect_one_line_err
	grep -q 'libarchive' "$ERR" || fail "the error does not name libarchive: $(cat "$ERR")"
	LD_LIBRARY_PATH=$T/stublib expect_exit 0 strata -r "$repo" list --json
	[[ $(jq length "$OUT") == "$n_before" ]] || fail "a backup without libarchive recorded a snapshot"
	LD_LIBRARY_PATH=$T/stublib expect_exit 0 strata -r "$repo" restore "$full" --to "$T/out_nolib"
	expect_exit 0 strata -r "$repo" verify
fi

# The exit-code table equals the man page's EXIT STATUS section.
[[ -r $man ]] || fail "man page $man missing"
expect_exit 0 strata --exit-codes
awk '{ print $1 }' "$OUT" >"$T/codes.bin"
# the codes of the interface keep their meaning (new codes may follow)
printf '%s\n' "0 success" "1 internal" "2 usage" "3 warning" "4 not-found" "5 corrupt" \
	"6 auth" "7 locked" "8 io" >"$T/codes.want"
awk '$1 <= 8 { print $1, $2 }' "$OUT" | compare_states "$T/codes.want" /dev/stdin "exit codes 0-8 of the interface and strata --exit-codes"
# man: entries of the EXIT STATUS section as "CODE<TAB>text" (.TP/.IP lists)
awk '
	function clean(s) { gsub(/\\f[BIRP]|\\f\(..|\\&|"/, "", s); gsub(/\\-/, "-", s); return s }
	function flush() { if (code != "") print code "\t" text; code = ""; text = "" }
	function settag(s) { s = clean(s); sub(/^[ \t]+/, "", s); code = s; sub(/[ \t].*/, "", code); sub(/^[^ \t]+/, "", s); text = s }
	/^\.SH/ { flush(); insec = ($0 ~ /EXIT[ _]STATUS/); next }
	!insec { next }
	/^\.\\"/ { next }
	/^\.(TP|PP|LP|P)([ \t]|$)/ { flush(); tag = ($0 ~ /^\.TP/); next }
	/^\.IP/ { flush(); sub(/^\.IP[ \t]*/, ""); settag($0); tag = 0; next }
	tag { sub(/^\.[A-Za-z]+[ \t]+/, ""); settag($0); tag = 0; next }
	/^\.[A-Za-z]+[ \t]*$/ { next }
	code != "" { sub(/^\.[A-Za-z]+[ \t]+/, ""); text = text " " clean($0) }
	END { flush() }
' "$man" | grep -E '^[0-9]+	' >"$T/man.table" || true
[[ -s $T/man.table ]] || fail "no EXIT STATUS table found in $man"
cut -f1 "$T/man.table" | sort -n >"$T/man.codes"
sort -n "$T/codes.bin" >"$T/bin.codes"
compare_states "$T/man.codes" "$T/bin.codes" "exit codes in $man and strata --exit-codes"
while read -r code name; do
	text=$(awk -F'\t' -v c="$code" '$1 == c { print tolower($2) }' "$T/man.table" | tr -- '-_' '  ')
	n=$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]' | tr -- '-_' '  ')
	[[ $text == *"$n"* ]] || fail "exit code $code is '$name' in strata --exit-codes but the man page says:$text"
done <"$OUT"
log "cli ok"
