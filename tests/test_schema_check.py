"""The schema walker on small inline schemas: each keyword, and where its message points."""

from __future__ import annotations

from mljob.runner.document import parse
from mljob.runner.schema_check import Checker, SchemaSet

SCHEMA = {
    "$defs": {
        "dist": {
            "anyOf": [
                {"type": "object", "properties": {"type": {"const": "pytorch"},
                                                   "process_count_per_instance": {"type": "integer"}},
                 "required": ["type"], "additionalProperties": False},
                {"type": "object", "properties": {"type": {"const": "mpi"}}, "additionalProperties": False},
            ]
        },
        "code": {"anyOf": [{"type": "string"},
                           {"type": "object", "properties": {"local_path": {"type": "string"}},
                            "deprecated": True, "deprecationMessage": "write `code: src`"}]},
    },
    "type": "object",
    "properties": {
        "command": {"type": "string"},
        "count": {"type": "integer", "minimum": 1},
        "goal": {"enum": ["minimize", "maximize"]},
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "distribution": {"$ref": "#/$defs/dist"},
        "code": {"$ref": "#/$defs/code"},
        "old": {"type": "integer", "deprecated": True, "deprecationMessage": "use `new`"},
        "items": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "resources": {"type": "object", "properties": {"instance_count": {"type": "integer"}}},
    },
    "required": ["command"],
    "additionalProperties": False,
}


def check(text: str):
    doc = parse(text)
    checker = Checker(SchemaSet(loader=lambda base: SCHEMA), "test job")
    return checker.check(doc.docs[0].root, SCHEMA, "inline")


def one(text: str):
    found = check(text)
    assert len(found) == 1, found
    return found[0]


def test_clean():
    assert check("command: echo\ncount: 2\ngoal: minimize\ndistribution: {type: pytorch}\n") == []


def test_unknown_key_suggests():
    d = one("command: echo\ncomand: x\n")
    assert (d.code, d.line, d.column) == ("MLJ101", 1, 0)
    assert "Did you mean `command`" in d.message and d.data["replace_with"] == "command"


def test_missing_required_at_top():
    d = one("count: 1\n")
    assert d.code == "MLJ102" and d.data["missing"] == "command" and d.line == 0


def test_wrong_type_points_at_value():
    d = one("command: echo\ncount: two\n")
    assert (d.code, d.line, d.column) == ("MLJ103", 1, 7)
    assert "must be an integer" in d.message


def test_string_where_mapping_expected_explains_key_value():
    d = one("command: echo\nresources: instance_count=2\n")
    assert d.code == "MLJ103" and "`key: value`" in d.message


def test_enum_suggests():
    d = one("command: echo\ngoal: minimise\n")
    assert d.code == "MLJ104" and d.data["replace_with"] == "minimize"


def test_minimum():
    d = one("command: echo\ncount: 0\n")
    assert d.code == "MLJ105" and (d.line, d.column) == (1, 7)


def test_pattern_and_placeholder():
    assert one("command: echo\nname: ABC\n").code == "MLJ106"
    assert one("command: echo\nname: < your name >\n").code == "MLJ217"


def test_discriminated_union_reports_inside_branch():
    d = one("command: echo\ndistribution:\n  type: pytorch\n  process_count_per_instanc: 2\n")
    assert d.code == "MLJ101" and d.line == 3 and d.data["replace_with"] == "process_count_per_instance"


def test_unknown_discriminator():
    d = one("command: echo\ndistribution:\n  type: pytorchh\n")
    assert (d.code, d.line, d.column) == ("MLJ107", 2, 8)
    assert d.data["replace_with"] == "pytorch"


def test_deprecated_branch_and_property_warn():
    found = check("command: echo\ncode:\n  local_path: src\nold: 1\n")
    assert [(d.code, d.severity.label, d.line) for d in found] == [("MLJ301", "warning", 1), ("MLJ301", "warning", 3)]
    assert found[0].message == "write `code: src`"


def test_array_items_and_min_items():
    d = one("command: echo\nitems: [1, x]\n")
    assert d.code == "MLJ103" and d.column == 11
    assert one("command: echo\nitems: []\n").code == "MLJ108"


def test_bound_expression_accepted_for_numbers():
    assert check("command: echo\ncount: ${{parent.inputs.n}}\n") == []
