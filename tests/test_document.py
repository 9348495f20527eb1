from __future__ import annotations

from pathlib import Path

from mljob.runner.document import MAX_BYTES, decode, get, node_range, parse, read


def codes(doc):
    return [d.code for d in doc.diagnostics]


def test_positions_of_keys_and_values():
    doc = parse("a: 1\nb:\n  c: hello\n")
    root = doc.docs[0].root
    c = get(root, "b", "c")
    assert (c.start_mark.line, c.start_mark.column) == (2, 5)
    assert node_range(c).end.column == 10


def test_utf16_columns_count_astral_characters_twice():
    doc = parse("a: 😀 x\n")
    x_col = doc.line_text(0).index("x")
    assert x_col == 5
    assert doc.utf16_column(0, x_col) == 6
    assert doc.from_utf16(0, 6) == 5


def test_bom_and_crlf():
    doc = parse("\ufeffa: 1\r\nb: 2\r\n")
    assert not doc.diagnostics
    b = get(doc.docs[0].root, "b")
    assert b.start_mark.line == 1 and b.start_mark.column == 3


def test_duplicate_key_is_reported_on_the_second():
    doc = parse("a: 1\nb: 2\na: 3\n")
    assert codes(doc) == ["MLJ004"]
    assert doc.diagnostics[0].line == 2 and doc.diagnostics[0].column == 0


def test_several_documents():
    doc = parse("a: 1\n---\nb: 2\n")
    assert len(doc.docs) == 2
    assert get(doc.docs[1].root, "b").start_mark.line == 2


def test_tab_indentation_is_explained():
    doc = parse("a:\n\tb: 1\n")
    assert codes(doc) == ["MLJ006"]
    assert doc.diagnostics[0].line == 1
    assert "spaces" in doc.diagnostics[0].message


def test_syntax_error_has_position():
    doc = parse("a: b: c\n")
    assert codes(doc) == ["MLJ002"]
    assert (doc.diagnostics[0].line, doc.diagnostics[0].column) == (0, 4)


def test_alias_bomb_is_bounded():
    lines = ["a: &a [1,1,1,1,1,1,1,1,1]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    doc = parse("\n".join(lines) + "\n")
    assert codes(doc) == ["MLJ005"]
    assert doc.docs[0].root is None


def test_recursive_alias():
    doc = parse("a: &x [*x]\n")
    assert codes(doc) == ["MLJ005"]


def test_merge_keys_are_seen():
    doc = parse("base: &b {x: 1}\njob:\n  <<: *b\n  y: 2\n")
    assert get(doc.docs[0].root, "job", "x").value == "1"


def test_invalid_utf8_names_the_position():
    text, problem = decode(b"a: 1\nb: \xff\n")
    assert text is None and problem is not None
    assert problem.code == "MLJ001" and problem.line == 1 and problem.column == 3


def test_binary_file():
    text, problem = decode(b"\x7fELF\x00\x00\x01")
    assert text is None and "binary" in problem.message


def test_huge_file_is_not_read(tmp_path: Path):
    big = tmp_path / "big.yml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    doc = read(big)
    assert codes(doc) == ["MLJ001"]
    assert "50.0 MiB" in doc.diagnostics[0].message and MAX_BYTES < 50 * 1024 * 1024
