/*
 * test_toml.c: the TOML 1.0 reader.  Valid documents are the TOML 1.0
 * specification's examples; invalid ones check that the error is located at
 * the right line and column.  toml_test_suite runs every TOML 1.0 case of
 * the toml-test suite when RS_TOML_TEST_DIR names its tests/ directory, and
 * rustresort_files reads RustResort's own config files when they are at
 * hand (../shared/fixtures/rustresort); both skip, saying why, otherwise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "config/toml.h"
#include "core/buf.h"
#include "core/util.h"

static struct rs_toml *doc;
static rs_error perr_;

/* Parse text as "t.toml"; the document stays in `doc` until the next call. */
static int parse(const char *text)
{
	rs_toml_free(doc);
	doc = NULL;
	memset(&perr_, 0, sizeof perr_);
	return rs_toml_parse(&doc, "t.toml", text, strlen(text), &perr_);
}

static const struct rs_toml_entry *get(const char *key) { return rs_toml_find(doc, key); }

static const char *get_str(const char *key)
{
	const struct rs_toml_entry *e = get(key);
	return e && e->type == RS_TOML_STRING ? e->str : "(missing)";
}

static long long get_int(const char *key)
{
	const struct rs_toml_entry *e = get(key);
	return e && e->type == RS_TOML_INT ? (long long)e->num : -424242;
}

static double get_float(const char *key)
{
	const struct rs_toml_entry *e = get(key);
	return e && e->type == RS_TOML_FLOAT ? e->fnum : -424242.0;
}

static const char *get_dt(const char *key)
{
	const struct rs_toml_entry *e = get(key);
	return e && e->type == RS_TOML_DATETIME ? e->str : "(missing)";
}

static int get_type(const char *key)
{
	const struct rs_toml_entry *e = get(key);
	return e ? e->type : 0;
}

static int get_bool(const char *key)
{
	const struct rs_toml_entry *e = get(key);
	return e && e->type == RS_TOML_BOOL ? e->boolean : -1;
}

#define PARSE_OK(text)                                                           \
	do {                                                                     \
		if (parse(text) != RS_OK)                                        \
			TH_FAIL("unexpected error: %s", perr_.message);          \
	} while (0)

/* The parse must fail with a message starting "t.toml:LOC: " and containing `what`. */
#define PARSE_ERR(text, loc, what)                                               \
	do {                                                                     \
		if (parse(text) == RS_OK)                                        \
			TH_FAIL("parsed, expected error at %s", loc);            \
		if (perr_.code != RS_ECONFIG ||                                  \
		    strncmp(perr_.message, "t.toml:" loc ": ", strlen("t.toml:" loc ": ")) != 0 || \
		    !strstr(perr_.message, what))                                \
			TH_FAIL("wanted t.toml:%s: ...%s...; got \"%s\"", loc, what, perr_.message); \
	} while (0)

/* ---------------------------------------------------------------------- */
/* Valid                                                                   */

TEST(spec_comments)
{
	PARSE_OK("# This is a full-line comment\n"
		 "key = \"value\"  # This is a comment at the end of a line\n"
		 "another = \"# This is not a comment\"\n");
	CHECK_EQ_INT(doc->n, 2);
	CHECK_EQ_STR(get_str("key"), "value");
	CHECK_EQ_STR(get_str("another"), "# This is not a comment");
	CHECK_EQ_INT(get("another")->line, 3);
	CHECK_EQ_INT(get("another")->col, 1);
	CHECK_EQ_INT(get("another")->vcol, 11);
}

TEST(spec_keys)
{
	PARSE_OK("key = \"value\"\nbare_key = \"value\"\nbare-key = \"value\"\n1234 = \"value\"\n"
		 "\"127.0.0.1\" = \"value\"\n\"character encoding\" = \"value\"\n"
		 "\"\xca\x8e\xc7\x9d\xca\x9e\" = \"value\"\n'key2' = \"value\"\n"
		 "'quoted \"value\"' = \"value\"\n\"\" = \"blank\"\n");
	CHECK_EQ_INT(doc->n, 10);
	CHECK_EQ_STR(get_str("bare-key"), "value");
	CHECK_EQ_STR(get_str("1234"), "value");
	CHECK_EQ_STR(get_str("\"127.0.0.1\""), "value");
	CHECK_EQ_STR(get_str("\"character encoding\""), "value");
	CHECK_EQ_STR(get_str("key2"), "value"); /* 'key2' is the bare key key2 */
	CHECK_EQ_STR(get_str("\"quoted \\\"value\\\"\""), "value");
	CHECK_EQ_STR(get_str("\"\""), "blank");
}

TEST(spec_dotted_keys)
{
	PARSE_OK("name = \"Orange\"\nphysical.color = \"orange\"\nphysical.shape = \"round\"\n"
		 "site.\"google.com\" = true\nfruit.name = \"banana\"\nfruit. color = \"yellow\"\n"
		 "fruit . flavor = \"banana\"\n3.14159 = \"pi\"\n");
	CHECK_EQ_STR(get_str("physical.color"), "orange");
	CHECK_EQ_STR(get_str("physical.shape"), "round");
	CHECK_EQ_INT(get_bool("site.\"google.com\""), 1);
	CHECK_EQ_STR(get_str("fruit.color"), "yellow");
	CHECK_EQ_STR(get_str("fruit.flavor"), "banana");
	CHECK_EQ_STR(get_str("3.14159"), "pi");
	/* dotted keys may extend a dotted table within the same section */
	PARSE_OK("apple.type = \"fruit\"\norange.type = \"fruit\"\napple.skin = \"thin\"\n");
	CHECK_EQ_STR(get_str("apple.skin"), "thin");
}

TEST(spec_basic_strings)
{
	PARSE_OK("str = \"I'm a string. \\\"You can quote me\\\". Name\\tJos\\u00E9\\nLocation\\tSF.\"\n"
		 "esc = \"\\b\\t\\n\\f\\r\\\"\\\\\"\nbig = \"\\U0001F600\"\ntab = \"a\tb\"\n"
		 "utf = \"caf\xc3\xa9\"\n");
	CHECK_EQ_STR(get_str("str"), "I'm a string. \"You can quote me\". Name\tJos\xc3\xa9\nLocation\tSF.");
	CHECK_EQ_STR(get_str("esc"), "\b\t\n\f\r\"\\");
	CHECK_EQ_STR(get_str("big"), "\xf0\x9f\x98\x80");
	CHECK_EQ_STR(get_str("tab"), "a\tb");
	CHECK_EQ_STR(get_str("utf"), "caf\xc3\xa9");
}

TEST(spec_literal_strings)
{
	PARSE_OK("winpath  = 'C:\\Users\\nodejs\\templates'\nwinpath2 = '\\\\ServerX\\admin$\\system32\\'\n"
		 "quoted   = 'Tom \"Dubs\" Preston-Werner'\nregex    = '<\\i\\c*\\s*>'\n");
	CHECK_EQ_STR(get_str("winpath"), "C:\\Users\\nodejs\\templates");
	CHECK_EQ_STR(get_str("winpath2"), "\\\\ServerX\\admin$\\system32\\");
	CHECK_EQ_STR(get_str("quoted"), "Tom \"Dubs\" Preston-Werner");
	CHECK_EQ_STR(get_str("regex"), "<\\i\\c*\\s*>");
}

TEST(spec_integers)
{
	PARSE_OK("int1 = +99\nint2 = 42\nint3 = 0\nint4 = -17\nint5 = 1_000\nint6 = 5_349_221\n"
		 "int7 = 53_49_221\nint8 = 1_2_3_4_5\nhex1 = 0xDEADBEEF\nhex2 = 0xdeadbeef\n"
		 "hex3 = 0xdead_beef\noct1 = 0o01234567\noct2 = 0o755\nbin1 = 0b11010110\n"
		 "max = 9223372036854775807\nmin = -9223372036854775808\nz1 = +0\nz2 = -0\n");
	CHECK_EQ_INT(get_int("int1"), 99);
	CHECK_EQ_INT(get_int("int2"), 42);
	CHECK_EQ_INT(get_int("int3"), 0);
	CHECK_EQ_INT(get_int("int4"), -17);
	CHECK_EQ_INT(get_int("int5"), 1000);
	CHECK_EQ_INT(get_int("int6"), 5349221);
	CHECK_EQ_INT(get_int("int7"), 5349221);
	CHECK_EQ_INT(get_int("int8"), 12345);
	CHECK_EQ_INT(get_int("hex1"), 0xDEADBEEF);
	CHECK_EQ_INT(get_int("hex2"), 0xDEADBEEF);
	CHECK_EQ_INT(get_int("hex3"), 0xDEADBEEF);
	CHECK_EQ_INT(get_int("oct1"), 01234567);
	CHECK_EQ_INT(get_int("oct2"), 0755);
	CHECK_EQ_INT(get_int("bin1"), 214);
	CHECK(get("max")->num == INT64_MAX);
	CHECK(get("min")->num == INT64_MIN);
	CHECK_EQ_INT(get_int("z1"), 0);
	CHECK_EQ_INT(get_int("z2"), 0);
}

TEST(spec_booleans)
{
	PARSE_OK("bool1 = true\nbool2 = false\n");
	CHECK_EQ_INT(get_bool("bool1"), 1);
	CHECK_EQ_INT(get_bool("bool2"), 0);
}

TEST(arrays_of_strings)
{
	PARSE_OK("colors = [ \"red\", \"yellow\", \"green\" ]\n"
		 "mixed = [ \"all\", 'strings', ]\n"
		 "empty = []\n"
		 "long = [\n  \"a\", # first\n  # a comment line\n  'b'\n  ,\"c\",\n]\nafter = 1\n");
	const struct rs_toml_entry *e = get("colors");
	CHECK(e && e->type == RS_TOML_ARRAY && e->n_items == 3);
	CHECK_EQ_STR(e->items[0], "red");
	CHECK_EQ_STR(e->items[2], "green");
	CHECK(e->items[3] == NULL);
	e = get("mixed");
	CHECK(e && e->n_items == 2);
	CHECK_EQ_STR(e->items[1], "strings");
	e = get("empty");
	CHECK(e && e->type == RS_TOML_ARRAY && e->n_items == 0 && e->items[0] == NULL);
	e = get("long");
	CHECK(e && e->n_items == 3);
	CHECK_EQ_STR(e->items[1], "b");
	CHECK_EQ_INT(get("after")->line, 10);
}

TEST(spec_tables)
{
	PARSE_OK("[table-1]\nkey1 = \"some string\"\nkey2 = 123\n\n[table-2]\nkey1 = \"another string\"\n"
		 "key2 = 456\n[dog.\"tater.man\"]\ntype.name = \"pug\"\n"
		 "[a.b.c]\nx = 1\n[ d.e.f ]\ny = 2\n[ g .  h  . i ]\nz = 3\n"
		 "[ j . \"\xca\x9e\" . 'l' ]\nw = 4\n[database.\"sync\"]\nmode = \"d1\"\n");
	CHECK_EQ_STR(get_str("table-1.key1"), "some string");
	CHECK_EQ_INT(get_int("table-2.key2"), 456);
	CHECK_EQ_STR(get_str("dog.\"tater.man\".type.name"), "pug");
	CHECK_EQ_INT(get_int("a.b.c.x"), 1);
	CHECK_EQ_INT(get_int("d.e.f.y"), 2);
	CHECK_EQ_INT(get_int("g.h.i.z"), 3);
	CHECK_EQ_INT(get_int("j.\"\xca\x9e\".l.w"), 4);
	CHECK_EQ_STR(get_str("database.sync.mode"), "d1");
}

TEST(spec_table_order)
{
	/* a super-table may be defined after its sub-table, once */
	PARSE_OK("[x.y.z.w]\na = 1\n[x]\nb = 2\n");
	CHECK_EQ_INT(get_int("x.y.z.w.a"), 1);
	CHECK_EQ_INT(get_int("x.b"), 2);
	/* the spec's example: a sub-table of a table made by dotted keys */
	PARSE_OK("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
		 "[fruit.apple.texture]\nsmooth = true\n");
	CHECK_EQ_INT(get_bool("fruit.apple.taste.sweet"), 1);
	CHECK_EQ_INT(get_bool("fruit.apple.texture.smooth"), 1);
	/* root keys before any header, empty tables */
	PARSE_OK("top = 1\n[empty]\n[other]\nk = 'v'\n");
	CHECK_EQ_INT(doc->n, 2);
}

TEST(line_endings_and_bom)
{
	PARSE_OK("\xEF\xBB\xBF# bom\r\na = 1\r\n[t]\r\nb = \"x\" # c\r\n");
	CHECK_EQ_INT(get_int("a"), 1);
	CHECK_EQ_STR(get_str("t.b"), "x");
	CHECK_EQ_INT(get("t.b")->line, 4);
	PARSE_OK("");
	CHECK_EQ_INT(doc->n, 0);
	PARSE_OK("a = 1"); /* no final newline */
	CHECK_EQ_INT(get_int("a"), 1);
	PARSE_OK("  \t# only a comment");
}

TEST(quote_round_trip)
{
	const char *samples[] = {"plain", "", "q\"b\\s", "\x01\x1f\x7f\b\t\n\f\r", "caf\xc3\xa9 \xf0\x9f\x98\x80", "'"};
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		rs_buf b = RS_BUF_INIT(0);
		rs_buf_puts(&b, "k = ");
		CHECK_EQ_INT(rs_toml_quote(&b, samples[i]), 0);
		rs_buf_puts(&b, "\n");
		CHECK(!b.failed);
		int rc = parse(b.data);
		rs_buf_free(&b);
		CHECK_MSG(rc == RS_OK, "sample %zu: %s", i, perr_.message);
		CHECK_EQ_STR(get_str("k"), samples[i]);
	}
	CHECK(rs_toml_is_utf8("caf\xc3\xa9", 5));
	CHECK(!rs_toml_is_utf8("\xc3", 1));
	CHECK(!rs_toml_is_utf8("\xed\xa0\x80", 3)); /* a surrogate */
	CHECK(!rs_toml_is_utf8("\xc0\xaf", 2));     /* overlong */
}

TEST(spec_floats)
{
	PARSE_OK("flt1 = +1.0\nflt2 = 3.1415\nflt3 = -0.01\nflt4 = 5e+22\nflt5 = 1e06\n"
		 "flt6 = -2E-2\nflt7 = 6.626e-34\nflt8 = 224_617.445_991_228\nsf1 = inf\n"
		 "sf2 = +inf\nsf3 = -inf\nsf4 = nan\nsf6 = -nan\nz = -0.0\nbig = 1e400\n");
	CHECK(get_float("flt1") == 1.0);
	CHECK(get_float("flt2") == 3.1415);
	CHECK(get_float("flt3") == -0.01);
	CHECK(get_float("flt4") == 5e22);
	CHECK(get_float("flt5") == 1e6);
	CHECK(get_float("flt6") == -2e-2);
	CHECK(get_float("flt7") == 6.626e-34);
	CHECK(get_float("flt8") == 224617.445991228);
	CHECK(isinf(get_float("sf1")) && get_float("sf1") > 0);
	CHECK(isinf(get_float("sf2")) && get_float("sf2") > 0);
	CHECK(isinf(get_float("sf3")) && get_float("sf3") < 0);
	CHECK(isnan(get_float("sf4")) && isnan(get_float("sf6")));
	CHECK(get_float("z") == 0.0 && signbit(get_float("z")));
	CHECK(isinf(get_float("big")));
	CHECK_EQ_INT(get("flt8")->vcol, 8);
}

TEST(spec_datetimes)
{
	PARSE_OK("odt1 = 1979-05-27T07:32:00Z\nodt2 = 1979-05-27T00:32:00-07:00\n"
		 "odt3 = 1979-05-27T00:32:00.999999-07:00\nodt4 = 1979-05-27 07:32:00Z # a space\n"
		 "ldt1 = 1979-05-27T07:32:00\nld1 = 1979-05-27\nlt1 = 07:32:00\nlt2 = 00:32:00.999999\n"
		 "leap = 2000-02-29\nlower = 1987-07-05t17:45:00z\narr = [1979-05-27, 07:32:00]\n");
	CHECK_EQ_STR(get_dt("odt1"), "1979-05-27T07:32:00Z");
	CHECK_EQ_STR(get_dt("odt2"), "1979-05-27T00:32:00-07:00");
	CHECK_EQ_STR(get_dt("odt3"), "1979-05-27T00:32:00.999999-07:00");
	CHECK_EQ_STR(get_dt("odt4"), "1979-05-27 07:32:00Z");
	CHECK_EQ_STR(get_dt("ldt1"), "1979-05-27T07:32:00");
	CHECK_EQ_STR(get_dt("ld1"), "1979-05-27");
	CHECK_EQ_STR(get_dt("lt1"), "07:32:00");
	CHECK_EQ_STR(get_dt("lt2"), "00:32:00.999999");
	CHECK_EQ_STR(get_dt("leap"), "2000-02-29");
	CHECK_EQ_STR(get_dt("lower"), "1987-07-05t17:45:00z");
	CHECK_EQ_INT(get("arr")->item_type, RS_TOML_DATETIME);
}

TEST(spec_inline_tables)
{
	PARSE_OK("name = { first = \"Tom\", last = \"Preston-Werner\" }\n"
		 "point = { x = 1, y = 2 }\nanimal = { type.name = \"pug\" }\nempty = {}\n"
		 "[database]\nsync = { mode = \"d1\", d1 = { database = \"rr\", remote = true } }\n");
	CHECK_EQ_INT(get_type("name"), RS_TOML_TABLE);
	CHECK_EQ_STR(get_str("name.first"), "Tom");
	CHECK_EQ_STR(get_str("name.last"), "Preston-Werner");
	CHECK_EQ_INT(get_int("point.y"), 2);
	CHECK_EQ_STR(get_str("animal.type.name"), "pug");
	CHECK_EQ_INT(get_type("empty"), RS_TOML_TABLE);
	CHECK_EQ_STR(get_str("database.sync.mode"), "d1");
	CHECK_EQ_STR(get_str("database.sync.d1.database"), "rr");
	CHECK_EQ_INT(get_bool("database.sync.d1.remote"), 1);
	/* the table's entry comes first, where the key starts; members where theirs do */
	CHECK(get("name") < get("name.first"));
	CHECK_EQ_INT(get("name.last")->col, 25);
	CHECK_EQ_INT(get("database.sync.d1.remote")->line, 6);
}

TEST(spec_arrays_of_tables)
{
	PARSE_OK("[[products]]\nname = \"Hammer\"\nsku = 738594937\n\n[[products]]  # empty\n\n"
		 "[[products]]\nname = \"Nail\"\ncolor = \"gray\"\n\n"
		 "[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n"
		 "[[fruits.varieties]]\nname = \"red delicious\"\n[[fruits.varieties]]\nname = \"granny smith\"\n"
		 "[[fruits]]\nname = \"banana\"\n[[fruits.varieties]]\nname = \"plantain\"\n"
		 "[database]\npath = \"x.db\"\n");
	CHECK_EQ_INT(get_type("products"), RS_TOML_TABLES);
	CHECK_EQ_INT(get("products")->line, 1);
	CHECK_EQ_STR(get_str("products[0].name"), "Hammer");
	CHECK_EQ_INT(get_int("products[0].sku"), 738594937);
	CHECK_EQ_STR(get_str("products[2].color"), "gray");
	CHECK(get("products[0].name")->nested && !get("products")->nested);
	CHECK_EQ_STR(get_str("fruits[0].physical.color"), "red");
	CHECK_EQ_STR(get_str("fruits[0].varieties[1].name"), "granny smith");
	CHECK_EQ_STR(get_str("fruits[1].varieties[0].name"), "plantain");
	CHECK(get("fruits[0].varieties")->nested);
	/* a [table] after them is at the root again */
	CHECK_EQ_STR(get_str("database.path"), "x.db");
	CHECK(!get("database.path")->nested);
}

TEST(spec_multiline_strings)
{
	PARSE_OK("str1 = \"\"\"\nRoses are red\nViolets are blue\"\"\"\n"
		 "str2 = \"\"\"\nThe quick brown \\\n\n\n  fox jumps over \\\n    the lazy dog.\"\"\"\n"
		 "str3 = \"\"\"\\\n       The quick brown \\\n       fox.\\\n       \"\"\"\n"
		 "str4 = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"\n"
		 "str5 = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"\n"
		 "lit1 = '''\nThe first newline is\ntrimmed in raw strings.\n   All other whitespace\n"
		 "   is preserved.\n'''\n"
		 "lit2 = '''I [dw]on't need \\d{2} apples'''\nquot15 = '''Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"'''\n"
		 "apos15 = \"Here are fifteen apostrophes: '''''''''''''''\"\n"
		 "str = ''''That,' she said, 'is still pointless.''''\n"
		 "crlf = \"\"\"\r\na\r\nb\"\"\"\nafter = 1\n");
	CHECK_EQ_STR(get_str("str1"), "Roses are red\nViolets are blue");
	CHECK_EQ_STR(get_str("str2"), "The quick brown fox jumps over the lazy dog.");
	CHECK_EQ_STR(get_str("str3"), "The quick brown fox.");
	CHECK_EQ_STR(get_str("str4"), "Here are two quotation marks: \"\". Simple enough.");
	CHECK_EQ_STR(get_str("str5"), "\"This,\" she said, \"is just a pointless statement.\"");
	CHECK_EQ_STR(get_str("lit1"), "The first newline is\ntrimmed in raw strings.\n   All other whitespace\n"
				      "   is preserved.\n");
	CHECK_EQ_STR(get_str("lit2"), "I [dw]on't need \\d{2} apples");
	CHECK_EQ_STR(get_str("quot15"), "Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"");
	CHECK_EQ_STR(get_str("str"), "'That,' she said, 'is still pointless.'");
	CHECK_EQ_STR(get_str("crlf"), "a\nb");
	/* lines counted through multi-line strings */
	CHECK_EQ_INT(get("after")->line, 29);
}

TEST(arrays_of_any_values)
{
	PARSE_OK("integers = [ 1, 2, 3 ]\nnested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]\n"
		 "nested_mixed_array = [ [ 1, 2 ], [\"a\", \"b\", \"c\"] ]\n"
		 "numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]\n"
		 "contributors = [\n  \"Foo Bar <foo@example.com>\",\n"
		 "  { name = \"Baz Qux\", email = \"bazqux@example.com\", url = \"https://example.com/bazqux\" }\n]\n"
		 "points = [ { x = 1, y = 2 }, { x = 7, y = 8 } ]\nml = [ \"\"\"a\nb\"\"\", '''c''' ]\n");
	CHECK_EQ_INT(get("integers")->item_type, RS_TOML_INT);
	CHECK_EQ_INT(get("integers")->n_items, 0);
	CHECK_EQ_INT(get("nested_arrays_of_ints")->item_type, RS_TOML_ARRAY);
	CHECK_EQ_INT(get("numbers")->item_type, RS_TOML_FLOAT);
	const struct rs_toml_entry *c = get("contributors");
	CHECK(c && c->n_items == 1 && c->item_type == RS_TOML_TABLE);
	CHECK_EQ_STR(c->items[0], "Foo Bar <foo@example.com>");
	CHECK_EQ_INT(c->item_line, 7);
	CHECK_EQ_INT(c->item_col, 3);
	/* values inside arrays give no entries of their own */
	CHECK(get("points[0].x") == NULL && get("contributors[1].name") == NULL);
	const struct rs_toml_entry *ml = get("ml");
	CHECK(ml && ml->n_items == 2 && ml->item_type == 0);
	CHECK_EQ_STR(ml->items[0], "a\nb");
	CHECK_EQ_STR(ml->items[1], "c");
	/* duplicate keys inside an inline table in an array are still errors */
	PARSE_ERR("p = [ { x = 1, x = 2 } ]\n", "1:16", "duplicate key p[0].x");
}

TEST(nul_in_strings)
{
	PARSE_OK("s = \"a\\u0000b\"\narr = [ \"x\\u0000y\" ]\n\"k\\u0000\" = 1\nplain = \"ab\"\n");
	const struct rs_toml_entry *e = get("s");
	CHECK(e && e->type == RS_TOML_STRING && e->len == 3 && e->has_nul);
	CHECK(memcmp(e->str, "a\0b", 3) == 0);
	CHECK(get("arr")->has_nul);
	CHECK_EQ_INT(get_int("\"k\\u0000\""), 1); /* shown escaped in the canonical key */
	CHECK(!get("plain")->has_nul && get("plain")->len == 2);
}

/* Where RustResort's config files are kept for tests, or NULL (tests run from the project's root). */
static const char *rustresort_fixtures(void)
{
	static const char *const dirs[] = {"../shared/fixtures/rustresort", "../../shared/fixtures/rustresort"};
	const char *env = getenv("RS_RUSTRESORT_FIXTURES");
	if (env && *env)
		return env;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		char path[256];
		snprintf(path, sizeof path, "%s/default.toml", dirs[i]);
		FILE *f = fopen(path, "r");
		if (f) {
			fclose(f);
			return dirs[i];
		}
	}
	return NULL;
}

/* Read path and parse it under its own name; RS_OK or the parse's code (message in perr_). */
static int parse_file(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	rs_toml_free(doc);
	doc = NULL;
	memset(&perr_, 0, sizeof perr_);
	int rc = rs_read_file(path, &text, &len, &perr_);
	if (rc == RS_OK)
		rc = rs_toml_parse(&doc, path, text, len, &perr_);
	free(text);
	return rc;
}

TEST(rustresort_files)
{
	const char *dir = rustresort_fixtures();
	char path[512];
	if (!dir)
		SKIP("RustResort's config files are not at ../shared/fixtures/rustresort (or $RS_RUSTRESORT_FIXTURES)");
	snprintf(path, sizeof path, "%s/default.toml", dir);
	CHECK_MSG(parse_file(path) == RS_OK, "%s", perr_.message);
	CHECK_EQ_STR(get_str("database.path"), "data/rustresort.db");
	CHECK_EQ_STR(get_str("database.sync.mode"), "none");
	CHECK_EQ_INT(get_int("database.sync.d1.history_retention_count"), 10000);
	CHECK_EQ_INT(get_int("storage.backup.interval_seconds"), 86400);
	snprintf(path, sizeof path, "%s/local.toml.example", dir);
	CHECK_MSG(parse_file(path) == RS_OK, "%s", perr_.message);
}

/*
 * Every TOML 1.0 case of the toml-test suite (github.com/toml-lang/toml-test,
 * its tests/ directory named by RS_TOML_TEST_DIR): each valid/ file parses,
 * each invalid/ file is refused.  Values are compared with the suite's JSON
 * by a script once (docs/RELIABILITY.md, configuration), not here: this keeps the test free of a
 * JSON model of TOML values.
 */
TEST(toml_test_suite)
{
	const char *dir = getenv("RS_TOML_TEST_DIR");
	char list[512], line[512], path[1024];
	if (!dir || !*dir)
		SKIP("RS_TOML_TEST_DIR is not set (the tests/ directory of toml-lang/toml-test)");
	snprintf(list, sizeof list, "%s/files-toml-1.0.0", dir);
	FILE *f = fopen(list, "r");
	CHECK_MSG(f != NULL, "cannot open %s", list);
	int cases = 0, wrong = 0;
	char first[1600] = "";
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = '\0';
		size_t l = strlen(line);
		if (l < 6 || strcmp(line + l - 5, ".toml") != 0)
			continue;
		int valid = strncmp(line, "valid/", 6) == 0;
		snprintf(path, sizeof path, "%s/%s", dir, line);
		int rc = parse_file(path);
		cases++;
		if ((rc == RS_OK) != valid) {
			if (!wrong++)
				snprintf(first, sizeof first, "%s: %s", line, valid ? perr_.message : "accepted");
		}
	}
	fclose(f);
	printf("# toml-test 1.0.0: %d cases, %d wrong\n", cases, wrong);
	CHECK_MSG(cases > 500, "only %d cases in %s", cases, list);
	CHECK_MSG(wrong == 0, "%d of %d cases wrong; first: %s", wrong, cases, first);
}

/* ---------------------------------------------------------------------- */
/* Invalid: every error located                                            */

TEST(err_missing_value)
{
	PARSE_ERR("key = # INVALID\n", "1:7", "expected a value");
	PARSE_ERR("key = \n", "1:7", "expected a value");
	PARSE_ERR("ok = 1\nkey =", "2:6", "expected a value");
	PARSE_ERR("key\n", "1:4", "expected '='");
	PARSE_ERR("bare key = 1\n", "1:6", "expected '='");
	PARSE_ERR("= \"no key name\"\n", "1:1", "expected a key");
	PARSE_ERR("a. = 1\n", "1:4", "expected a key");
}

TEST(err_trailing_text)
{
	PARSE_ERR("a = \"x\" b\n", "1:9", "expected the end of the line");
	PARSE_ERR("first = \"Tom\" last = \"Preston-Werner\" # INVALID\n", "1:15",
		  "expected the end of the line");
	PARSE_ERR("[a] [a]\n", "1:5", "expected the end of the line after the table header");
	PARSE_ERR("a = 1 2\n", "1:7", "end of the line");
	PARSE_ERR("a = hello\n", "1:5", "strings need quotes");
	PARSE_ERR("a = truex\n", "1:5", "strings need quotes");
}

TEST(err_strings)
{
	PARSE_ERR("s = \"a\\qb\"\n", "1:7", "invalid escape sequence \\q");
	PARSE_ERR("s = \"\\x41\"\n", "1:6", "invalid escape sequence \\x");
	PARSE_ERR("s = \"\\u12\"\n", "1:6", "needs 4 hex digits");
	PARSE_ERR("s = \"\\U0000004\"\n", "1:6", "needs 8 hex digits");
	PARSE_ERR("s = \"\\uD800\"\n", "1:6", "not a Unicode scalar value");
	PARSE_ERR("s = \"\\U00110000\"\n", "1:6", "not a Unicode scalar value");
	PARSE_ERR("s = \"abc\n", "1:5", "unterminated string");
	PARSE_ERR("x = 1\ns = 'abc", "2:5", "unterminated string");
	PARSE_ERR("s = \"a\\\nb\"\n", "1:7", "backslash followed by the end of the line");
	PARSE_ERR("s = \"a\x01z\"\n", "1:7", "control character U+0001");
	PARSE_ERR("s = 'a\x7fz'\n", "1:7", "control character U+007F");
	PARSE_ERR("\"\"\"key\"\"\" = 1\n", "1:1", "a key cannot be a multi-line string");
	PARSE_ERR("# ok\n\"k\x02\" = 1\n", "2:3", "control character");
}

TEST(err_duplicates)
{
	PARSE_ERR("name = \"Tom\"\nname = \"Pradyun\"\n", "2:1", "duplicate key name (first on line 1)");
	PARSE_ERR("spelling = \"favorite\"\n\"spelling\" = \"favourite\"\n", "2:1", "duplicate key");
	PARSE_ERR("[fruit]\napple = \"red\"\n\n[fruit]\norange = \"orange\"\n", "4:1",
		  "duplicate table [fruit] (first on line 1)");
	PARSE_ERR("[a]\n[a]\n", "2:1", "duplicate table [a]");
	PARSE_ERR("[a.b]\n[a]\n[a]\n", "3:1", "duplicate table [a]");
	PARSE_ERR("[database]\npath = 'a'\n[database.\"sync\"]\n[database.sync]\n", "4:1",
		  "duplicate table [database.sync]");
}

TEST(err_redefinitions)
{
	PARSE_ERR("fruit.apple = 1\nfruit.apple.smooth = true\n", "2:1", "fruit.apple is already a value");
	PARSE_ERR("[fruit]\napple = \"red\"\n\n[fruit.apple]\ntexture = \"smooth\"\n", "4:1",
		  "fruit.apple is already a value (line 2)");
	PARSE_ERR("[fruit]\napple.color = \"red\"\n[fruit.apple]\n", "3:1", "dotted keys");
	PARSE_ERR("[a.b.c]\nz = 9\n[a]\nb.c.t = 8\n", "4:1", "cannot be extended");
	PARSE_ERR("[a.b]\nc = 1\n[a]\nb.d = 2\n", "4:1", "cannot be extended");
	PARSE_ERR("a.b = 1\n[x]\n[a]\n", "3:1", "dotted keys");
	PARSE_ERR("a.b = 1\na = 2\n", "2:1", "duplicate key a");
	PARSE_ERR("a = [\"x\"]\n[a.b]\n", "2:1", "already a value");
}

TEST(err_new_syntax)
{
	/* floats */
	PARSE_ERR("f = 3.\n", "1:7", "no digits after the point");
	PARSE_ERR("f = .7\n", "1:5", "expected a value");
	PARSE_ERR("f = 03.14\n", "1:5", "leading zeros");
	PARSE_ERR("f = 1e\n", "1:6", "no digits in the exponent");
	PARSE_ERR("f = 1.5_\n", "1:8", "'_' must be between digits");
	PARSE_ERR("f = 1.5x\n", "1:8", "invalid character 'x' in a float");
	PARSE_ERR("f = infinity\n", "1:5", "strings need quotes");
	/* dates and times */
	PARSE_ERR("d = 1979-13-27\n", "1:5", "month or day out of range");
	PARSE_ERR("d = 2023-02-29\n", "1:5", "not a leap year");
	PARSE_ERR("d = 1979-05-27T25:00:00\n", "1:5", "out of range");
	PARSE_ERR("t = 07:32\n", "1:5", "seconds are required");
	PARSE_ERR("d = 1979-05-27T07:32:00+7:00\n", "1:5", "offset");
	PARSE_ERR("d = 1979-05-27X\n", "1:5", "expected T or a space");
	/* inline tables: one line, no trailing comma, closed afterwards */
	PARSE_ERR("t = { a = 1,\n b = 2 }\n", "1:13", "must end on the line it starts");
	PARSE_ERR("t = { a = 1, }\n", "1:14", "expected a key");
	PARSE_ERR("t = { a = 1 b = 2 }\n", "1:13", "expected ',' or '}'");
	PARSE_ERR("t = { a = 1, a = 2 }\n", "1:14", "duplicate key t.a");
	PARSE_ERR("t = { a = 1 }\nt.b = 2\n", "2:1", "t is already a value");
	PARSE_ERR("t = { a = 1 }\n[t]\n", "2:1", "t is already a value");
	PARSE_ERR("[a]\nt = { x = 1 }\n[a.t.y]\n", "3:1", "a.t is already a value");
	/* arrays of tables */
	PARSE_ERR("[[a]]\n[a]\n", "2:1", "a is an array of tables (line 1)");
	PARSE_ERR("[a]\n[[a]]\n", "2:1", "[[a]]: a is already a table (line 1)");
	PARSE_ERR("a = []\n[[a]]\n", "2:1", "a is already a value");
	PARSE_ERR("[[a]\n", "1:5", "expected ']]'");
	PARSE_ERR("[[a]]\nx = 1\nx = 2\n", "3:1", "duplicate key a[0].x (first on line 2)");
	PARSE_ERR("[[a]]\n[a.b]\n[a.b]\n", "3:1", "duplicate table [a[0].b]");
	/* multi-line strings */
	PARSE_ERR("s = \"\"\"abc\n", "1:5", "unterminated multi-line string");
	PARSE_ERR("s = '''abc\n\n", "1:5", "unterminated multi-line string");
	PARSE_ERR("s = \"\"\"a\"\"\"\"\"\"\n", "1:9", "more than five quotes");
	PARSE_ERR("s = \"\"\"a\\  b\"\"\"\n", "1:9", "a backslash followed by spaces must end the line");
	PARSE_ERR("s = \"\"\"a\x01\"\"\"\n", "1:9", "control character U+0001");
	PARSE_ERR("s = \"\"\"a\rb\"\"\"\n", "1:9", "carriage return");
	/* arrays */
	PARSE_ERR("a = [ 1 2 ]\n", "1:9", "expected ',' or ']'");
	PARSE_ERR("a = [ [ 1, 2 ]\n", "2:1", "unterminated array (opened on line 1)");
}

TEST(err_nesting_depth)
{
	rs_buf b = RS_BUF_INIT(0);
	rs_buf_puts(&b, "a = ");
	for (int i = 0; i <= RS_TOML_MAX_DEPTH; i++)
		rs_buf_puts(&b, "[");
	CHECK(!b.failed);
	int rc = parse(b.data);
	rs_buf_free(&b);
	CHECK_EQ_INT(rc, RS_ECONFIG);
	CHECK_MSG(strstr(perr_.message, "nested more than") != NULL, "%s", perr_.message);
	b = (rs_buf)RS_BUF_INIT(0);
	rs_buf_puts(&b, "a = ");
	for (int i = 0; i <= RS_TOML_MAX_DEPTH; i++)
		rs_buf_puts(&b, "{b=");
	CHECK(!b.failed);
	rc = parse(b.data);
	rs_buf_free(&b);
	CHECK_EQ_INT(rc, RS_ECONFIG);
	CHECK_MSG(strstr(perr_.message, "nested more than") != NULL, "%s", perr_.message);
}

TEST(err_integers)
{
	PARSE_ERR("i = 0123\n", "1:5", "leading zeros");
	PARSE_ERR("i = -012\n", "1:5", "leading zeros");
	PARSE_ERR("i = 1__2\n", "1:7", "'_' in an integer must be between digits");
	PARSE_ERR("i = _1\n", "1:5", "strings need quotes");
	PARSE_ERR("i = 1_\n", "1:6", "'_' in an integer");
	PARSE_ERR("i = 0x_1\n", "1:7", "'_'");
	PARSE_ERR("i = +0x1\n", "1:5", "sign is not allowed");
	PARSE_ERR("i = 0x\n", "1:5", "invalid integer");
	PARSE_ERR("i = 0xG1\n", "1:7", "invalid character 'G'");
	PARSE_ERR("i = 0o8\n", "1:7", "invalid character '8'");
	PARSE_ERR("i = 0b102\n", "1:9", "invalid character '2'");
	PARSE_ERR("i = 0X1F\n", "1:5", "leading zeros");
	PARSE_ERR("i = 12a\n", "1:7", "invalid character 'a'");
	PARSE_ERR("i = -\n", "1:5", "invalid integer");
	PARSE_ERR("i = 9223372036854775808\n", "1:5", "out of range");
	PARSE_ERR("i = -9223372036854775809\n", "1:5", "out of range");
	PARSE_ERR("i = 0x8000000000000000\n", "1:5", "out of range");
	/* columns count characters, not bytes */
	PARSE_ERR("\"\xca\x8e\xc7\x9d\xca\x9e\" = 1x\n", "1:10", "invalid character 'x'");
}

TEST(err_arrays)
{
	PARSE_ERR("a = [ \"a\" \"b\" ]\n", "1:11", "expected ',' or ']'");
	PARSE_ERR("a = [ , ]\n", "1:7", "expected a value before ','");
	PARSE_ERR("a = [ \"a\",\n  \"b\"\n", "3:1", "unterminated array (opened on line 1)");
	PARSE_ERR("a = [\n  \"a\" # c\n  \"b\"\n]\n", "3:3", "expected ',' or ']'");
	PARSE_ERR("a = [ \"a\" ] x\n", "1:13", "end of the line");
}

TEST(err_headers_and_bytes)
{
	PARSE_ERR("[a\nb = 1\n", "1:3", "expected ']'");
	PARSE_ERR("[]\n", "1:2", "expected a key");
	PARSE_ERR("[a b]\n", "1:4", "expected ']'");
	PARSE_ERR("[a.]\n", "1:4", "expected a key");
	PARSE_ERR("a = 1\rb = 2\n", "1:6", "carriage return");
	PARSE_ERR("a = 1\n# x\x01y\n", "2:4", "control character U+0001 in a comment");
	PARSE_ERR("a = 'ok'\nb = 'x\xff'\n", "2:7", "invalid UTF-8");
	PARSE_ERR("a = 'x\xc0\xaf'\n", "1:7", "invalid UTF-8");
	const char nul[] = "a = 1\nb = \0\n";
	rs_toml_free(doc);
	doc = NULL;
	CHECK(rs_toml_parse(&doc, "t.toml", nul, sizeof nul - 1, &perr_) == RS_ECONFIG);
	CHECK_MSG(strncmp(perr_.message, "t.toml:2:5: NUL", 15) == 0, "%s", perr_.message);
}

TEST(err_too_many_keys)
{
	rs_buf b = RS_BUF_INIT(0);
	for (int i = 0; i <= RS_TOML_MAX_NODES; i++)
		rs_buf_printf(&b, "k%d = 1\n", i);
	CHECK(!b.failed);
	int rc = parse(b.data);
	rs_buf_free(&b);
	CHECK_EQ_INT(rc, RS_ECONFIG);
	CHECK(strstr(perr_.message, "more than") != NULL);
}

/* Input cut short at every kind of place. */
TEST(truncated_input)
{
	PARSE_ERR("a=\"\\", "1:4", "backslash followed by the end of the file");
	PARSE_ERR("a=\"\\u", "1:4", "needs 4 hex digits");
	PARSE_ERR("[", "1:2", "expected a key");
	PARSE_ERR("a=[", "1:4", "unterminated array");
	PARSE_ERR("a=['x'", "1:7", "unterminated array");
	PARSE_ERR("a=\xef\xbb\xbf", "1:3", "expected a value");
}

int main(void)
{
	RUN(spec_comments);
	RUN(spec_keys);
	RUN(spec_dotted_keys);
	RUN(spec_basic_strings);
	RUN(spec_literal_strings);
	RUN(spec_integers);
	RUN(spec_booleans);
	RUN(arrays_of_strings);
	RUN(spec_tables);
	RUN(spec_table_order);
	RUN(line_endings_and_bom);
	RUN(quote_round_trip);
	RUN(err_missing_value);
	RUN(err_trailing_text);
	RUN(err_strings);
	RUN(err_duplicates);
	RUN(err_redefinitions);
	RUN(err_integers);
	RUN(err_arrays);
	RUN(err_headers_and_bytes);
	RUN(err_too_many_keys);
	RUN(truncated_input);
	RUN(spec_floats);
	RUN(spec_datetimes);
	RUN(spec_inline_tables);
	RUN(spec_arrays_of_tables);
	RUN(spec_multiline_strings);
	RUN(arrays_of_any_values);
	RUN(nul_in_strings);
	RUN(err_new_syntax);
	RUN(err_nesting_depth);
	RUN(rustresort_files);
	RUN(toml_test_suite);
	rs_toml_free(doc);
	TEST_MAIN_END;
}
