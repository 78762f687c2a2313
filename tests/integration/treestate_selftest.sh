#!/bin/bash
# treestate_selftest.sh - the tree digest must see what a copy keeps and
# catch what a broken restore would lose.  Needs no strata binary.
STRATA=${STRATA:-/bin/false}
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
need cp tar setfattr

src=$T/src
gen_tree "$src" 3
snapshot_state "$src" "$T/s0"

# Every kind of entry shows up.
for want in ' type=p ' ' type=l ' ' type=d ' 'holes=0-' 'hardlink=' \
	'mode=04755' 'mode=02755' 'mode=01777' 'mode=00000' 'uid=4242424' \
	'mtime=1614834367.123456789' 'mtime=-' 'names/\xff\xfe ' 'names/new\x0aline ' \
	'names/tab\x09here ' 'target=odd\x20\x5c\x20target\x0awith\x20newline'; do
	grep -qF -- "$want" "$T/s0" || fail "treestate output lacks '$want'"
done
if ((HAVE_XATTR)); then
	grep -qF 'xattr.user.binary=00ff10ab00' "$T/s0" || fail "xattr missing"
fi
if ((HAVE_ACL)); then
	grep -qF 'xattr.system.posix_acl_access=' "$T/s0" || fail "access ACL missing"
	grep -qF 'xattr.system.posix_acl_default=' "$T/s0" || fail "default ACL missing"
fi
grep -q '^long/.\{1000,\}/file_at_the_bottom ' "$T/s0" || fail "long path missing"
[[ $(grep -c 'hardlink=hl/a/one$\|hardlink=hl/a/one ' "$T/s0") == 3 ]] || fail "hardlink group of 3 not found"
# deterministic
snapshot_state "$src" "$T/s0b"
compare_states "$T/s0" "$T/s0b" "two runs over the same tree"

# A faithful copy is equal, line by line.
cp -a "$src" "$T/copy"
snapshot_state "$T/copy" "$T/s1"
compare_states "$T/s0" "$T/s1" "source and cp -a copy"

# A path over 4096 bytes (openat recursion).
deep=$T/copy/deep
mkdir -p "$deep"
(
	cd "$deep" || exit 1
	for _ in $(seq 1 25); do
		n=$(printf '%*s' 200 '' | tr ' ' 'q')
		mkdir "$n"
		cd "$n" || exit 1
	done
	printf 'very deep\n' >f
)
snapshot_state "$T/copy" "$T/s1deep"
grep -q '^deep/.\{4500,\}/f type=f' "$T/s1deep" || fail "path over 4096 bytes not listed"
rm -rf "$deep"

# Each of these changes must be caught.
check_caught() {
	local what=$1
	snapshot_state "$T/copy" "$T/s2"
	if diff -q "$T/s0" "$T/s2" >/dev/null; then
		fail "treestate did not notice: $what"
	fi
	rm -rf "$T/copy"
	cp -a "$src" "$T/copy"
}
touch -d '2021-03-04 05:06:07.123456788' "$T/copy/text/one"; check_caught "mtime off by 1 ns"
touch -h -d '2001-01-01' "$T/copy/links/rel"; check_caught "symlink mtime"
touch -d '2001-01-01' "$T/copy/empty_dir"; check_caught "directory mtime"
touch -d '2001-01-01' "$T/copy"; check_caught "root directory mtime"
chmod 0644 "$T/copy/modes/suid"; check_caught "setuid bit"
chown 1235 "$T/copy/owners/f"; check_caught "uid"
printf 'b' | dd of="$T/copy/text/one" conv=notrunc status=none; check_caught "content, same size"
if ((HAVE_XATTR)); then
	setfattr -n user.comment -v "hello worle" "$T/copy/xattr/file"; check_caught "xattr value"
fi
if ((HAVE_ACL)); then
	setfacl -m u:1234:r "$T/copy/acl/file"; check_caught "ACL"
	setfacl -k "$T/copy/acl/dir"; check_caught "default ACL"
fi
cat "$T/copy/hl/b/two" >"$T/x" && rm "$T/copy/hl/b/two" && cp -p "$T/x" "$T/copy/hl/b/two"; check_caught "broken hardlink"
cp --sparse=never -p "$T/copy/sparse/s100" "$T/x" && cp -p --sparse=never "$T/x" "$T/copy/sparse/s100"; check_caught "sparse file made dense"
ln -sf ../text/One "$T/copy/links/rel"; check_caught "symlink target"
rm -f "$T/copy/special/fifo" && : >"$T/copy/special/fifo"; check_caught "fifo became a file"

# tar without --xattrs/--acls drops xattrs; treestate must see it.
if ((HAVE_XATTR)); then
	mkdir "$T/untar"
	tar -C "$src" -cf - . | tar -C "$T/untar" -xpf -
	snapshot_state "$T/untar" "$T/s3"
	if diff -q "$T/s0" "$T/s3" >/dev/null; then
		fail "treestate did not notice xattrs dropped by tar"
	fi
fi
log "treestate self-test ok ($(wc -l <"$T/s0") entries)"
