#!/bin/bash
# demo.sh - a first tour of strata on a throwaway tree: init, a full backup,
# a change, an incremental, list, ls, diff, verify, restore, and a check
# that the restored tree equals the source (diff -r).  Everything lives in
# a temporary directory removed at exit.  Uses build/cli/strata; set
# STRATA=/path/to/strata to try another binary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
STRATA=${STRATA:-$here/../build/cli/strata}
if [ ! -x "$STRATA" ]; then
	echo "demo: no strata binary at '$STRATA' (build first: meson setup build && ninja -C build)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-demo.XXXXXX")
trap 'fusermount3 -u "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
src=$tmp/src
repo=$tmp/repo
out=$tmp/restore
export STRATA_REPOSITORY=$repo

step() { printf '\n== %s\n' "$*"; }
run() { printf '$ strata %s\n' "$*"; "$STRATA" "$@"; }

step "a small sample tree in $src"
mkdir -p "$src/etc/erp" "$src/srv/erp/data"
printf '[db]\nhost = localhost\nport = 5432\n' > "$src/etc/erp/settings.ini"
printf 'order,item,qty\n1,widget,3\n2,gadget,5\n' > "$src/srv/erp/data/orders.csv"
head -c 200000 /dev/urandom > "$src/srv/erp/data/blob.bin"
ln -s ../../etc/erp/settings.ini "$src/srv/erp/settings.link"       # a symlink
ln "$src/srv/erp/data/orders.csv" "$src/srv/erp/data/orders.hardlink" # a hardlink
chmod 0640 "$src/etc/erp/settings.ini"
find "$src" | sort | sed "s|^$tmp/||"

step "a repository"
run init

step "a full backup"
run backup --level full "$src"

step "change a file and add one, then an incremental"
printf '3,sprocket,7\n' >> "$src/srv/erp/data/orders.csv"
echo "new" > "$src/srv/erp/data/new.txt"
run backup --level incremental "$src"

step "the snapshots"
run list
first=$("$STRATA" -q list | awk 'NR == 2 { print $1 }')
last=$("$STRATA" -q list | awk 'END { print $1 }')

step "browse the latest snapshot (paths are stored without the leading /, as tar does)"
run ls latest "${src#/}/srv/erp"
run ls latest "${src#/}/srv/erp/data"

step "what changed between snapshot $first and $last, from the catalog alone"
run diff "$first" "$last"

step "verify every archive, frame and file hash"
run verify --read-data

step "mount every snapshot read-only and use it like any directory"
mkdir -p "$tmp/mnt"
run mount "$tmp/mnt"
printf '$ ls %s/default\n' "$tmp/mnt"
ls "$tmp/mnt/default"
printf '$ cat %s/default/latest/%s/etc/erp/settings.ini\n' "$tmp/mnt" "${src#/}"
cat "$tmp/mnt/default/latest/${src#/}/etc/erp/settings.ini"
printf '$ diff -r %s %s/default/latest/%s\n' "$src" "$tmp/mnt" "${src#/}"
diff -r "$src" "$tmp/mnt/default/latest/${src#/}"
echo "the mounted latest snapshot is identical to the source"
printf '$ strata umount %s\n' "$tmp/mnt"
"$STRATA" umount "$tmp/mnt"

step "restore the latest snapshot and compare it with the source"
run restore latest --to "$out"
printf '$ diff -r %s %s\n' "$src" "$out$src"
diff -r "$src" "$out$src"
echo "restored tree is identical to the source"

step "done"
echo "repository $repo: init, full and incremental backups, list, ls, diff, verify, mount, restore: all fine"
