#!/bin/bash
# gen-tree.sh DIR [SEED] - deterministically generate a "server" tree for the
# strata benchmarks: ~500 MB / ~50,000 files at BENCH_SCALE=1 (default).
#
#   srv/ home/ opt/ etc/   source-like text, 200 B - 20 KiB, nested dirs
#   var/log/               log files, a few MiB each
#   data/blobs/            incompressible files (AES-CTR keystream)
#   data/images/disk.img   ~100 MiB mixed file (random/text/zeros chunks)
#   var/lib/app/app.db     SQLite database, ~16 MiB
#   + symlinks (relative, absolute, dangling), hard links, empty files/dirs
#
# Same SEED + same BENCH_SCALE => byte-identical file contents (mtimes are
# the generation time).  DIR must not exist or be empty.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: gen-tree.sh DIR [SEED]}
seed=${2:-1}
scale=${BENCH_SCALE:-1}
export LC_ALL=C

if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
	echo "gen-tree: $dir exists and is not empty" >&2
	exit 1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# integer helper: n * scale, at least $2
sc() { awk -v n="$1" -v s="$scale" -v m="${2:-1}" 'BEGIN { v = int(n * s + 0.5); print (v < m ? m : v) }'; }

nsrc=$(sc 48000 20)
nlogs=$(sc 16 2)
logbytes=$(sc $((64 * 1048576)) 65536)
nblobs=$(sc 40 2)
blobbytes=$(sc $((120 * 1048576)) 65536)
bigmib=$(sc 100 1)
dbrows=$(sc 150000 1000)

start=$(date +%s.%N)

# ---- 1. source-like text (one awk for dirs, one for all files) ------------
# shellcheck disable=SC2016
tree_awk='
function mkdirs(    np, j, p, par, depth, m, pre) {
	np = int(nsrc / 1200); if (np < 2) np = 2
	NPRE = split("srv/app srv/git home/alice/src home/bob/projects opt/tools etc", PRE, " ")
	ND = int(nsrc / 22); if (ND < np) ND = np
	for (j = 0; j < ND; j++) {
		if (j < np) {
			pre = PRE[1 + j % NPRE]
			D[j] = pre "/" (pre == "etc" ? word() ".d" : word() "-" KW[1 + ri(NK)])
			DEPTH[j] = 0
		} else {
			m = int(j / np); if (m > 12) m = 12
			par = j - np * (1 + ri(m))
			if (DEPTH[par] >= 6) par = j % np
			D[j] = D[par] "/" (ri(2) ? DIRNAME[1 + ri(NDN)] : word())
			DEPTH[j] = DEPTH[par] + 1
		}
	}
}
BEGIN {
	rinit(seed); init_words(); mkdirs()
	if (mode == "dirs") {
		for (j = 0; j < ND; j++) print root "/" D[j]
		print root "/var/log"; print root "/var/lib/app"; print root "/var/cache/empty"
		print root "/data/blobs"; print root "/data/images"; print root "/srv/links"
		print root "/tmp/empty.d"
		exit
	}
	init_pool()
	for (i = 0; i < nsrc; i++) {
		d = D[int(i * ND / nsrc)]
		base = (ri(3) ? ident() : word())
		ext = (d ~ /^etc/) ? ".conf" : EXTS[1 + ri(NEXT)]
		rel = d "/" base ext
		if (rel in SEEN) rel = d "/" base "_" i ext
		SEEN[rel] = 1
		sz = (i % 997 == 0) ? 0 : rlog(200, 20480)
		write_text(root "/" rel, sz, 0)
		# links: printed as "kind<TAB>target<TAB>linkpath"
		r = ri(1000)
		if (r < 3)
			printf "s\t%s\t%s/%s\n", base ext, root, rel ".lnk" > links
		else if (r < 4)
			printf "s\t/%s/%s\t%s/%s\n", word(), word(), root, rel ".dangling" > links
		else if (r < 5)
			printf "s\t/usr/share/zoneinfo/UTC\t%s/srv/links/tz%d\n", root, i > links
		else if (r < 11)
			printf "h\t%s/%s\t%s/%s\n", root, rel, root, rel ".orig" > links
	}
	# a few directory symlinks
	for (j = 0; j < 20 && j < ND; j++)
		printf "s\t../../%s\t%s/srv/links/dir%d\n", D[ri(ND)], root, j > links
	close(links)
}'
awk -v seed="$seed" -v nsrc="$nsrc" -v mode=dirs -v root="$dir" \
	-f "$here/lib/gen.awk" -f <(printf '%s\n' "$tree_awk") |
	xargs -d '\n' mkdir -p
links=$(mktemp)
trap 'rm -f "$links"' EXIT
awk -v seed="$seed" -v nsrc="$nsrc" -v mode=files -v root="$dir" -v links="$links" \
	-f "$here/lib/gen.awk" -f <(printf '%s\n' "$tree_awk")

# ---- 2. logs ---------------------------------------------------------------
# shellcheck disable=SC2016
awk -v seed="$((seed + 1000))" -v n="$nlogs" -v total="$logbytes" -v root="$dir" \
	-f "$here/lib/gen.awk" -f <(printf '%s\n' '
BEGIN {
	rinit(seed); init_words()
	split("nginx postgresql app syslog auth worker cron mail", SVC, " ")
	for (i = 0; i < n; i++) { w[i] = rlog(100, 600); sum += w[i] }
	for (i = 0; i < n; i++) {
		kind = i % 3
		name = SVC[1 + i % 8] (i >= 8 ? "." int(i / 8) : "") (kind == 0 ? "-access" : "") ".log"
		write_log(root "/var/log/" name, kind, int(total * w[i] / sum), 86400 * (i % 5), 0)
	}
}')

# ---- 3. incompressible blobs (deterministic AES-CTR keystream) -------------
prng() { # NAME BYTES > out
	local key iv
	key=$(printf 'strata-bench:%s:%s' "$seed" "$1" | sha256sum | cut -c1-64)
	iv=$(printf 'iv:%s:%s' "$seed" "$1" | sha256sum | cut -c1-32)
	openssl enc -aes-256-ctr -K "$key" -iv "$iv" </dev/zero 2>/dev/null | head -c "$2" || true
}
# shellcheck disable=SC2016
awk -v seed="$((seed + 2000))" -v n="$nblobs" -v total="$blobbytes" -f "$here/lib/gen.awk" \
	-f <(printf '%s\n' '
BEGIN {
	rinit(seed); split(".jpg .png .gz .zst .pdf .mp4 .bin", E, " ")
	for (i = 0; i < n; i++) { w[i] = rlog(16, 8192); sum += w[i] }
	for (i = 0; i < n; i++) printf "blob%03d%s %d\n", i, E[1 + i % 7], int(total * w[i] / sum)
}') | while read -r name bytes; do
	prng "$name" "$bytes" >"$dir/data/blobs/$name"
done

# ---- 4. one ~100 MiB mixed file: 1 MiB chunks of random / text / zeros -----
tmpd=$(mktemp -d)
trap 'rm -f "$links"; rm -rf "$tmpd"' EXIT
prng big "$((bigmib * 1048576))" >"$tmpd/rand"
tar -C "$dir" --sort=name -cf - var/log srv 2>/dev/null | head -c "$((bigmib * 1048576))" >"$tmpd/text" || true
tmib=$(($(stat -c %s "$tmpd/text") / 1048576))
big="$dir/data/images/disk.img"
: >"$big"
# shellcheck disable=SC2016
awk -v seed="$((seed + 3000))" -v n="$bigmib" -f "$here/lib/gen.awk" \
	-f <(printf '%s\n' 'BEGIN { rinit(seed); for (i = 0; i < n; i++) { r = ri(100); print (r < 45 ? "r" : r < 80 ? "t" : "z") } }') |
	{
		i=0
		while read -r kind; do
			case $kind in
			r) dd if="$tmpd/rand" bs=1M skip="$i" count=1 status=none ;;
			t) dd if="$tmpd/text" bs=1M skip="$((i % (tmib > 0 ? tmib : 1)))" count=1 status=none ;;
			z) head -c 1048576 /dev/zero ;;
			esac
			i=$((i + 1))
		done
	} >>"$big"

# ---- 5. SQLite database ----------------------------------------------------
sqlite3 "$dir/var/lib/app/app.db" >/dev/null <<EOF
PRAGMA page_size=4096;
PRAGMA journal_mode=DELETE;
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, created INTEGER, bio TEXT);
CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INTEGER, kind TEXT, ts INTEGER, payload TEXT);
CREATE INDEX events_user ON events(user_id, ts);
BEGIN;
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $((dbrows / 10)))
INSERT INTO users SELECT n, 'user' || n, printf('user%d@example.org', n),
	1700000000 + (n * 7919 + $seed) % 31536000,
	substr('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua', 1 + (n * 31 + $seed) % 60, 20 + n % 50)
FROM c;
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $dbrows)
INSERT INTO events SELECT n, 1 + (n * 2654435761 + $seed) % $((dbrows / 10)),
	substr('login  logout click  view   buy    error  ', 1 + 7 * ((n * 40503) % 6), 6),
	1700000000 + n * 13,
	printf('{"k":%d,"v":"%x","s":"%s","n":%d}', (n * 2654435761) % 1000, (n * 2246822519 + $seed) % 4294967296,
		substr('alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu', 1 + (n * 7) % 50, 8 + n % 12), n % 97)
FROM c;
COMMIT;
EOF

# ---- 6. links and odd entries ----------------------------------------------
# one perl process instead of one ln per link (perl-base is always on Debian)
perl -ne 'chomp; my ($k, $t, $l) = split /\t/;
	if ($k eq "s") { symlink($t, $l) or die "symlink $l: $!\n" } else { link($t, $l) or die "link $l: $!\n" }' "$links"
ln "$dir/var/lib/app/app.db" "$dir/var/lib/app/app.db.hardlink"
printf 'name with spaces\n' >"$dir/srv/links/file with spaces.txt"
printf 'utf-8\n' >"$dir/srv/links/$(printf 'caf\303\251-\346\227\245\346\234\254.txt')"

# ---- summary ---------------------------------------------------------------
end=$(date +%s.%N)
read -r nfiles ndirs nlinks < <(find "$dir" -printf '%y\n' | awk '$1=="f"{f++} $1=="d"{d++} $1=="l"{l++} END{print f+0, d+0, l+0}')
bytes=$(du -sb "$dir" | cut -f1)
awk -v f="$nfiles" -v d="$ndirs" -v l="$nlinks" -v b="$bytes" -v t="$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')" -v dir="$dir" \
	'BEGIN { printf "gen-tree: %s: %d files, %d dirs, %d symlinks, %d entries, %.1f MiB (%d bytes) in %s s\n", dir, f, d, l, f + d + l, b / 1048576, b, t }'
