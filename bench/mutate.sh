#!/bin/bash
# mutate.sh DIR [SEED] - deterministic "one hour of activity" on a tree made
# by gen-tree.sh:
#   - append to every log in var/log (~2% of its size)
#   - modify ~1% of the source files (edit lines in place, some grow)
#   - add ~300 files (some in a new directory), delete ~40 files
#   - a few UPDATE/INSERT/DELETE statements on the SQLite database
#   - touch ~200 files without changing their content
# Same tree + same SEED => same result.  Counts scale with the tree.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: mutate.sh DIR [SEED]}
seed=${2:-2}
export LC_ALL=C
dir=$(cd "$dir" && pwd)

tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT

# regular, singly-linked text files outside var/ and data/ (sorted => stable)
find "$dir" \( -path "$dir/var" -o -path "$dir/data" \) -prune -o -type f -links 1 -size +0 -print |
	sort >"$tmpd/src"

# shellcheck disable=SC2016
awk -v seed="$seed" -v out="$tmpd" -f "$here/lib/gen.awk" -f <(printf '%s\n' '
function dirname(p) { sub(/\/[^\/]*$/, "", p); return p }
BEGIN {
	rinit(seed); init_words(); init_pool()
	while ((getline l < (out "/src")) > 0) F[n++] = l
	close(out "/src")
	nmod = int(n / 100); nadd = int(n / 160); ndel = int(n / 1200) + 1; ntouch = int(n / 240) + 1
	# modify: rewrite the file with a few lines replaced / inserted
	for (k = 0; k < nmod; k++) {
		i = ri(n); if (i in USED) continue
		USED[i] = 1; p = F[i]; m = 0
		while ((getline l < p) > 0) L[m++] = l
		close(p)
		e1 = ri(m + 1); e2 = ri(m + 1); grow = ri(4) == 0 ? 1 + ri(40) : 0
		printf "" > p
		for (j = 0; j < m; j++) {
			if (j == e1 || j == e2) print codeline() > p
			else print L[j] > p
			if (j == e1) for (g = 0; g < grow; g++) print codeline() > p
		}
		if (m == 0) print codeline() > p
		close(p)
		delete L
	}
	# add: new files next to existing ones, a third in a new directory
	nd = dirname(F[ri(n)]) "/feature-" word()
	system("mkdir -p \"" nd "\"")
	for (k = 0; k < nadd; k++) {
		d = (k % 3 == 0) ? nd : dirname(F[ri(n)])
		p = d "/new_" ident() "_" k EXTS[1 + ri(NEXT)]
		write_text(p, rlog(200, 20480), 0)
	}
	# delete / touch lists (never a file we modified)
	for (k = 0; k < ndel; k++) { i = ri(n); if (!(i in USED)) { USED[i] = 1; print F[i] > (out "/del") } }
	for (k = 0; k < ntouch; k++) { i = ri(n); if (!(i in USED)) { USED[i] = 1; print F[i] > (out "/touch") } }
	close(out "/del"); close(out "/touch")
	printf "mutate: modified %d, added %d, ", nmod, nadd
}' ) 2>"$tmpd/err" || { cat "$tmpd/err" >&2; exit 1; }

ndel=$(wc -l <"$tmpd/del")
ntouch=$(wc -l <"$tmpd/touch")
xargs -d '\n' rm -f <"$tmpd/del"
xargs -d '\n' touch -c <"$tmpd/touch"

# logs: append ~2% of each file
# shellcheck disable=SC2016
find "$dir/var/log" -type f -name '*.log' | sort | while read -r f; do
	printf '%s %s\n' "$f" "$(stat -c %s "$f")"
done | awk -v seed="$((seed + 1000))" -f "$here/lib/gen.awk" -f <(printf '%s\n' '
BEGIN { rinit(seed); init_words() }
{ kind = ($1 ~ /-access\.log$/) ? 0 : (NR % 3 == 0 ? 2 : 1); write_log($1, kind, int($2 / 50), 86400 * 30 + NR * 7, 1); n++; b += int($2 / 50) }
END { printf "appended %d KiB to %d logs, ", b / 1024, n }')

# SQLite: a handful of statements touching pages all over the file
db="$dir/var/lib/app/app.db"
if [ -f "$db" ]; then
	sqlite3 "$db" >/dev/null <<EOF
BEGIN;
UPDATE users SET bio = bio || ' (edited $seed)' WHERE id % 997 = $((seed % 997));
UPDATE events SET payload = json_set(payload, '$.s', 'changed-$seed') WHERE id % 1499 = $((seed % 1499));
DELETE FROM events WHERE id % 4999 = $((seed % 4999));
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500)
INSERT INTO events(user_id, kind, ts, payload)
	SELECT 1 + (n * 7919 + $seed) % (SELECT count(*) FROM users), 'view', 1800000000 + n, printf('{"k":%d,"new":%d}', n, $seed) FROM c;
COMMIT;
EOF
fi

echo "deleted $ndel, touched $ntouch, db updated"
