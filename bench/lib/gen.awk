# Shared deterministic text generators for gen-tree.sh and mutate.sh.
#
# Uses its own Park-Miller PRNG (x = x*16807 mod 2^31-1; all products stay
# below 2^53, so every awk computes them exactly with doubles) instead of
# awk's rand(): the output is then identical with mawk, gawk and busybox awk.

function rinit(s) { _st = (int(s) * 7919 + 12345) % 2147483646 + 1 }
function rnd() { _st = (_st * 16807) % 2147483647; return _st / 2147483647 }
function ri(n) { return int(rnd() * n) }                  # 0 .. n-1
function rlog(lo, hi) { return int(lo * exp(rnd() * log(hi / lo))) }

# ---- vocabulary -----------------------------------------------------------
function init_words(    syl, ns, i, j, n, w) {
	ns = split("ba be bi bo bu ca co cu da de di do fa fe fi fo ga ge go ha he hi ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo za ze str tr pl gr ch sh th qu x er an in on en al el", syl, " ")
	NW = 3000
	for (i = 0; i < NW; i++) {
		n = 1 + ri(3)
		w = ""
		for (j = 0; j < n; j++)
			w = w syl[1 + ri(ns)]
		if (ri(3) == 0) w = w substr("srtnlmdk", 1 + ri(8), 1)
		WORD[i] = w
	}
	NK = split("get set init free read write open close parse load save update buffer config state count size index node list map table entry handle error result value data name path file user client server request response cache queue lock item key hash ctx opts", KW, " ")
	NDN = split("src lib include test tests util core api internal docs cmd pkg scripts tools common net io db model view web static templates migrations vendor build", DIRNAME, " ")
	NEXT = split(".c .h .c .py .js .go .rs .md .txt .json .yaml .sh .html .css .java .rb", EXTS, " ")
}
function word() { return WORD[ri(NW)] }
function ident(    r) {
	r = ri(5)
	if (r == 0) return KW[1 + ri(NK)]
	if (r == 1) return word() "_" KW[1 + ri(NK)]
	if (r == 2) return KW[1 + ri(NK)] "_" word()
	if (r == 3) return word() toupper(substr(word(), 1, 1)) "x"
	return word()
}
function sentence(    n, s, i) {
	n = 3 + ri(9)
	s = word()
	for (i = 1; i < n; i++) s = s " " word()
	return s
}
function indent(    n) {
	n = ri(4)
	return substr("                ", 1, 4 * n)
}

# one code-like line
function codeline(    t) {
	t = ri(16)
	if (t == 0) return indent() "if (" ident() " " substr("==!=< > <=>=", 1 + 2 * ri(6), 2) " " ident() ") {"
	if (t == 1) return indent() "return " ident() "(" ident() ", " ri(4096) ");"
	if (t == 2) return indent() ident() " = " ident() "." ident() "(" ident() ");"
	if (t == 3) return indent() "// " sentence()
	if (t == 4) return indent() "}"
	if (t == 5) return ""
	if (t == 6) return "#include <" word() "/" word() ".h>"
	if (t == 7) return "def " ident() "(self, " ident() ", " ident() "=None):"
	if (t == 8) return indent() "for (size_t i = 0; i < " ident() "->" ident() "; i++) {"
	if (t == 9) return indent() "log_" substr("infowarnerrordebug", 1 + 4 * ri(4), 4) "(\"" sentence() ": %s\", " ident() ");"
	if (t == 10) return "import " word() "." word()
	if (t == 11) return indent() "const char *" ident() " = \"" word() "-" word() "\";"
	if (t == 12) return indent() "struct " ident() " *" ident() " = " ident() "(" ident() ", " ri(65536) ");"
	if (t == 13) return indent() "    " ident() ": " ident() ","
	if (t == 14) return " * " sentence()
	return indent() ident() "(" ident() ", &" ident() ", sizeof(" ident() "));"
}
function init_pool(    i) {
	NL = 20000
	for (i = 0; i < NL; i++) POOL[i] = codeline()
}

# write a source-like file of about `size` bytes (">" truncates in place, so
# hard links keep sharing the inode)
function write_text(path, size, append,    base, got, l) {
	base = ri(NL)
	got = 0
	if (!append) printf "" > path
	while (got < size) {
		if (ri(10) == 0) l = codeline()
		else l = POOL[(base + ri(600)) % NL]
		print l >> path
		got += length(l) + 1
	}
	close(path)
}

# ---- logs -----------------------------------------------------------------
function two(n) { return n < 10 ? "0" n : n }
function logsentence(    n, s, i) {
	n = 3 + ri(7)
	s = WORD[ri(250)]
	for (i = 1; i < n; i++) s = s " " WORD[ri(250)]
	return s
}
function logline(kind, t,    ts, d) {
	if (!LOGINIT) {
		LOGINIT = 1
		split("GET GET GET GET POST POST PUT DELETE HEAD", METH, " ")
		split("200 200 200 200 200 304 404 500 301 201", STAT, " ")
		split("Mozilla/5.0|curl/8.4.0|Go-http-client/1.1|python-requests/2.31.0|Prometheus/2.45.0", UA, "|")
		split("INFO INFO INFO WARN ERROR DEBUG", LVL, " ")
	}
	d = int(t / 86400)
	ts = sprintf("2024-11-%s %s:%s:%s.%03d", two(1 + d % 28), two(int(t / 3600) % 24), two(int(t / 60) % 60), two(t % 60), ri(1000))
	if (kind == 0)
		return sprintf("10.%d.%d.%d - - [%s] \"%s /%s/%s?id=%d HTTP/1.1\" %s %d \"-\" \"%s\" %.3f", ri(4), ri(16), 1 + ri(254), ts, METH[1 + ri(9)], WORD[ri(120)], WORD[ri(400)], ri(100000), STAT[1 + ri(10)], ri(50000), UA[1 + ri(5)], rnd() * 2)
	if (kind == 1)
		return ts " [" LVL[1 + ri(6)] "] " KW[1 + ri(NK)] "_" WORD[ri(60)] "[" 1000 + ri(30) "]: " logsentence() " (" KW[1 + ri(NK)] "=" ri(1000) ")"
	return ts " host" ri(8) " " WORD[ri(40)] "d[" 100 + ri(90) "]: " logsentence()
}
function write_log(path, kind, size, t0, append,    got, l, t) {
	got = 0
	t = t0
	if (!append) printf "" > path
	while (got < size) {
		t += ri(3)
		l = logline(kind, t)
		print l >> path
		got += length(l) + 1
	}
	close(path)
	return t
}
