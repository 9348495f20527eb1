"""Completion as plain functions: the cursor read from text, the schema at a key path, and the items offered."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from mljob.server import completion, cursor, schema_lookup
from mljob.server.cursor import ITEM
from mljob.server.features import FeatureContext
from mljob.server.schema_lookup import Facts
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument

from mljob import schemas

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
SWEEP = "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
FLOW = "$schema: https://azuremlschemas.azureedge.net/promptflow/latest/Flow.schema.json\n"
MARK = "‸"
_versions = itertools.count(1)


def split(text: str) -> tuple[list[str], int, int]:
    """Lines of `text` and the (line, column) of the cursor mark, which is removed."""
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if MARK in line:
            lines[number] = line.replace(MARK, "", 1)
            return lines, number, line.index(MARK)
    raise AssertionError("no cursor mark")


def at(text: str) -> cursor.Cursor | None:
    lines, line, column = split(text)
    return cursor.at(lines, line, column)


def items(text: str, path: Path | None = None, settings: ServerSettings | None = None,
          character: int | None = None) -> list[lsp.CompletionItem]:
    lines, line, column = split(text)
    doc = OpenDocument("file:///x/job.yml" if path is None else path.as_uri(), "\n".join(lines), next(_versions),
                       path)
    ctx = FeatureContext(settings or ServerSettings())
    return completion.complete(doc, line, column if character is None else character, ctx).items


def labels(found: list[lsp.CompletionItem]) -> list[str]:
    return [i.label for i in sorted(found, key=lambda i: (i.sort_text or "", i.label))]


def by_label(found: list[lsp.CompletionItem]) -> dict[str, lsp.CompletionItem]:
    return {i.label: i for i in found}


def new_text(item: lsp.CompletionItem) -> str:
    assert isinstance(item.text_edit, lsp.TextEdit)
    return item.text_edit.new_text


# --- cursor: structure from text -------------------------------------------------------------------------------------


def test_cursor_key_path_from_indentation():
    cur = at("a:\n  b:\n    c: 1\n    d‸\ne: 2")
    assert cur is not None
    assert (cur.at, cur.path, cur.word, cur.start, cur.indent) == ("key", ("a", "b"), "d", 4, 4)
    assert set(cur.siblings()) == {"c"}


def test_cursor_blank_indented_line_takes_the_cursor_column():
    assert at("a:\n  b: 1\n  ‸\nc: 2").path == ("a",)
    assert at("a:\n  b: 1\n‸\nc: 2").path == ()


def test_cursor_value_position_and_word():
    cur = at("a:\n  mode: dow‸nload")
    assert (cur.at, cur.path, cur.word, cur.start, cur.stop) == ("value", ("a", "mode"), "dow", 8, 16)


def test_cursor_key_being_renamed_keeps_its_colon_and_is_not_a_sibling():
    cur = at("r:\n  inst‸: 3\n  shm_size: 2g")
    assert (cur.at, cur.has_colon, cur.stop) == ("key", True, 6)
    assert set(cur.siblings()) == {"shm_size"}


def test_cursor_list_items():
    assert at("nodes:\n  - ‸").path == ("nodes", ITEM)
    cur = at("nodes:\n  - name: a\n    ty‸\n  - name: b")
    assert cur.path == ("nodes", ITEM) and set(cur.siblings()) == {"name"}
    compact = at("nodes:\n- name: a\n  ‸\nother: 1")
    assert compact.path == ("nodes", ITEM) and set(compact.siblings()) == {"name"}
    assert at("a:\n- b\n- ‸").path == ("a", ITEM)


def test_cursor_flow_mappings_and_sequences():
    cur = at("d: {type: pytorch, ‸}")
    assert (cur.at, cur.path, cur.style, set(cur.siblings())) == ("key", ("d",), "flow", {"type"})
    assert cur.value_of(1, "type") == "pytorch"
    value = at("d: {a: [x, {b: ‸")
    assert (value.at, value.path) == ("value", ("d", "a", ITEM, "b"))
    assert at("d: [a, ‸").path == ("d", ITEM)
    multi = at("d: {a: 1,\n  b‸")
    assert (multi.at, multi.path, multi.word) == ("key", ("d",), "b")
    assert at("d: {a: 1} ‸") is None  # after the collection closed


def test_cursor_inside_block_and_plain_scalars_is_a_value():
    block = at("command: >-\n  python t.py\n  - looks: like a key ${{inp‸")
    assert (block.at, block.path, block.style) == ("value", ("command",), "literal")
    assert block.value_text.endswith("${{inp")
    plain = at("command: python t.py\n  --x ${{inp‸")
    assert (plain.at, plain.path, plain.style) == ("value", ("command",), "plain")


def test_cursor_none_in_comments_and_indentation():
    assert at("# a comment ‸") is None
    assert at("a: 1 # co‸") is None
    assert at("  ‸x: 1") is None
    assert at("a: '#not a comment‸'") is not None


def test_cursor_tabs_count_as_indentation():
    cur = at("resources:\n\tinst‸")
    assert (cur.path, cur.word) == (("resources",), "inst")


def test_cursor_several_documents():
    cur = at("type: sweep\nx: 1\n---\ntype: command\n‸\n---\nz: 1")
    assert (cur.top, cur.end) == (3, 5)
    assert set(cur.siblings()) == {"type"}
    assert at("a: 1\n---‸") is None


def test_cursor_quoted_values_and_keys():
    cur = at('"quoted key": "val‸ue"')
    assert (cur.path, cur.style, cur.word, cur.start, cur.stop) == (("quoted key",), "quoted", "val", 15, 20)


def test_find_mapping_and_block_text():
    lines = ["inputs:", "  a: 1", "  # about b", "  b:", "    type: uri_file", "", "    path: x", "  # next",
             "outputs: {m: 1, n: 2}", "z: 1"]
    found = cursor.find_mapping(lines, 0, len(lines), ("inputs",))
    assert set(found) == {"a", "b"}
    assert cursor.block_text(lines, found["a"], len(lines)) == ["  a: 1"]
    assert cursor.block_text(lines, found["b"], len(lines)) == ["  b:", "    type: uri_file", "", "    path: x"]
    assert set(cursor.find_mapping(lines, 0, len(lines), ("outputs",))) == {"m", "n"}
    assert cursor.find_mapping(lines, 0, len(lines), ("nothing",)) is None


# --- schema lookup ----------------------------------------------------------------------------------------------------


def _command() -> tuple[object, str]:
    return schemas.load("commandJob.schema.json"), "commandJob.schema.json"


def _facts(values: dict[str, str], keys: set[str] | None = None) -> Facts:
    return Facts(value=values.get, keys=lambda: set(values) if keys is None else keys)


def test_lookup_root_properties_and_required():
    lookup = schema_lookup.bundled()
    schema, base = _command()
    exp = lookup.at(schema, base, (), lambda depth: schema_lookup.NO_FACTS)
    props = lookup.properties(exp)
    assert {"command", "environment", "code", "inputs", "resources"} <= set(props)
    assert {n for n, p in props.items() if p.required} == {"command", "environment"}
    assert props["tags"].description.startswith("Dictionary of tags")  # the property's own text beside its $ref
    assert lookup.expand(schema, base) is lookup.expand(schema, base)  # cached: analysed once per process


def test_lookup_union_narrowed_by_type():
    lookup = schema_lookup.bundled()
    schema, base = _command()

    def facts(type_value: str | None):
        return lambda depth: _facts({"type": type_value} if type_value and depth == 1 else {})

    pytorch = lookup.properties(lookup.at(schema, base, ("distribution",), facts("pytorch")))
    assert set(pytorch) == {"type", "process_count_per_instance", "process_count"}
    assert pytorch["process_count"].deprecated and "2021" in (pytorch["process_count"].deprecation or "")
    every = lookup.properties(lookup.at(schema, base, ("distribution",), facts(None)))
    assert {"worker_count", "parameter_server_count", "port", "process_count_per_instance"} <= set(every)
    assert every["type"].required


def test_lookup_if_then_else_decides_required_from_the_text():
    lookup = schema_lookup.bundled()
    schema = schemas.load("sweepJob.schema.json")
    ga = lookup.at(schema, "sweepJob.schema.json", (), lambda d: _facts({"type": "sweep"}))
    assert ga.required == {"type", "trial", "sampling_algorithm", "search_space", "objective", "limits"}
    preview = lookup.at(schema, "sweepJob.schema.json", (), lambda d: _facts({"type": "sweep_job"}))
    assert preview.required == {"type", "trial", "search_space", "objective"}
    unknown = lookup.at(schema, "sweepJob.schema.json", (), lambda d: schema_lookup.NO_FACTS)
    assert unknown.required == {"type"}  # the text does not say: nothing is claimed


def test_lookup_choices_with_meanings_and_deprecation():
    lookup = schema_lookup.bundled()
    schema, base = _command()
    exp = lookup.at(schema, base, ("inputs", "x", "mode"), lambda d: schema_lookup.NO_FACTS)
    found = {schema_lookup.value_text(c.value): c for c in lookup.choices(exp)}
    assert found["download"].description.startswith("Download the data")
    assert found["mount"].deprecated and not found["ro_mount"].deprecated
    optional = lookup.at(schema, base, ("inputs", "x", "optional"), lambda d: schema_lookup.NO_FACTS)
    assert [c.value for c in lookup.choices(optional) if c.origin == "boolean"] == [True, False]


def test_lookup_type_values_mean_their_branch():
    lookup = schema_lookup.bundled()
    schema, base = _command()
    parent = lookup.at(schema, base, ("distribution",), lambda d: schema_lookup.NO_FACTS)
    exp = lookup.expand_parts(lookup.child(parent, "type"))
    meanings = {c.value: c.description for c in lookup.choices(exp)}
    assert meanings["pytorch"].startswith("PyTorch distributed training")
    assert meanings["ray"].startswith("Ray cluster")


def test_lookup_local_schema_extending_ours(tmp_path: Path):
    (tmp_path / "team.schema.json").write_text(json.dumps({
        "type": "object", "x-mljob-kind": "command",
        "properties": {"team": {"description": "Owning team.", "enum": ["vision", "speech"],
                                "enumDescriptions": ["Images.", "Audio."]},
                       "resources": {"$ref": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
                                             "#/properties/resources"}}}), encoding="utf-8")
    found = items("$schema: ./team.schema.json\nresources:\n  ‸", tmp_path / "job.yml")
    assert "instance_count" in labels(found)
    team = by_label(items("$schema: ./team.schema.json\nteam: ‸", tmp_path / "job.yml"))
    assert set(team) == {"vision", "speech"} and team["speech"].documentation.value == "Audio."


# --- completion: empty and unknown documents ------------------------------------------------------------------------


def test_empty_document_offers_a_skeleton_per_job_kind_and_schema_lines():
    found = items("‸")
    jobs = [e for e in schemas.entries() if e.job]
    skeletons = [i for i in found if i.kind == lsp.CompletionItemKind.Snippet]
    assert len(skeletons) == len(jobs) == 5
    command = next(i for i in skeletons if i.label == "command job")
    assert new_text(command) == schemas.load("commandJob.schema.json")["defaultSnippets"][0]["bodyText"]
    assert command.insert_text_format == lsp.InsertTextFormat.Snippet
    assert "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json" in command.documentation.value
    lines = {i.label for i in found if i.label.startswith("$schema: ")}
    assert lines == {f"$schema: {e.url}" for e in schemas.entries()}
    assert labels(items("# a comment first\n\n‸")) == labels(found)


def test_unknown_document_offers_only_the_schema_line_where_it_is_typed():
    assert all(i.label.startswith("$schema: ") for i in items("name: env\n$sc‸"))
    assert items("name: env\ndep‸") == []
    assert items("name: env\ndeps:\n  ‸") == []


def test_schema_url_values():
    found = items("$schema: ‸")
    assert [i.label for i in found] == [e.url for e in schemas.entries()]
    assert new_text(found[0]) == found[0].label
    assert new_text(items("$schema:‸")[0]).startswith(" https://")  # a value needs the space after the colon


# --- completion: keys -----------------------------------------------------------------------------------------------


def test_root_keys_required_first_then_optional_not_present():
    found = items(CMD + "code: src\n‸")
    ordered = labels(found)
    assert ordered[:2] == ["command", "environment"]
    assert "code" not in ordered and "$schema" not in ordered
    command = by_label(found)["command"]
    assert command.detail == "string · required"
    assert command.documentation.kind == lsp.MarkupKind.Markdown
    assert command.documentation.value.startswith("Shell command run in the job's container")


def test_key_insert_texts_by_value_shape():
    found = by_label(items(CMD + "‸"))
    assert new_text(found["display_name"]) == "display_name: "
    assert found["display_name"].insert_text_format == lsp.InsertTextFormat.PlainText
    assert new_text(found["resources"]) == "resources:\n  $0"
    assert found["resources"].insert_text_format == lsp.InsertTextFormat.Snippet
    assert found["resources"].insert_text_mode == lsp.InsertTextMode.AsIs
    nested = by_label(items(CMD + "resources:\n  ‸"))
    assert new_text(nested["locations"]) == "locations:\n    - $0"
    assert new_text(nested["shm_size"]) == "shm_size: "


def test_deprecated_keys_are_tagged_and_last():
    found = items(SWEEP + "type: sweep\n‸")
    ordered = labels(found)
    deprecated = {"algorithm", "max_total_trials", "max_concurrent_trials", "timeout_minutes"}
    assert set(ordered[-len(deprecated):]) == deprecated
    algorithm = by_label(found)["algorithm"]
    assert algorithm.tags == [lsp.CompletionItemTag.Deprecated]
    assert algorithm.documentation.value.startswith("**Deprecated:** `algorithm` is the 2021 preview syntax")
    assert ordered[:5] == ["limits", "objective", "sampling_algorithm", "search_space", "trial"]


def test_nested_mapping_narrowed_by_type():
    assert labels(items(CMD + "distribution:\n  type: mpi\n  ‸")) == ["process_count_per_instance"]
    union = labels(items(CMD + "distribution:\n  ‸"))
    assert union[0] == "type" and {"worker_count", "port"} <= set(union)
    assert {"pytorch", "mpi", "tensorflow"} <= set(union)  # the schema's ready-made bodies


def test_renaming_a_key_inserts_only_the_name():
    found = by_label(items(CMD + "resources:\n  inst‸: 3"))
    assert new_text(found["instance_count"]) == "instance_count"
    edit = found["instance_count"].text_edit
    assert (edit.range.start.character, edit.range.end.character) == (2, 6)


def test_list_items():
    found = items(FLOW + "nodes:\n  - ‸")
    assert labels(found)[0] == "name"  # required
    assert new_text(by_label(found)["source"]) == "source:\n      $0"
    second = labels(items(FLOW + "nodes:\n  - name: a\n    ‸"))
    assert "name" not in second and "source" in second


def test_flow_mapping_keys_and_values():
    assert labels(items(CMD + "distribution: {type: pytorch, ‸}")) == ["process_count_per_instance",
                                                                        "process_count"]
    assert new_text(by_label(items(CMD + "distribution: {type: pytorch, ‸}"))["process_count_per_instance"]) \
        == "process_count_per_instance: "
    assert labels(items(CMD + "distribution: {type: ‸}")) == ["pytorch", "tensorflow", "mpi", "ray"]


# --- completion: values ---------------------------------------------------------------------------------------------


def test_enum_values_with_meanings_deprecated_last():
    found = items(CMD + "inputs:\n  x:\n    type: uri_file\n    mode: ‸")
    ordered = labels(found)
    assert ordered[:5] == ["ro_mount", "download", "direct", "eval_mount", "eval_download"]
    assert ordered[-1] == "mount" and by_label(found)["mount"].tags == [lsp.CompletionItemTag.Deprecated]
    assert by_label(found)["download"].documentation.value == ("Download the data to the compute's local disk "
                                                               "before the job starts.")


def test_boolean_values():
    found = items(CMD + "inputs:\n  x:\n    optional: ‸")
    assert labels(found)[:2] == ["true", "false"]


def test_value_after_colon_without_space_gets_one():
    found = by_label(items(CMD + "environment:\n  os_type:‸"))
    assert new_text(found["linux"]) == " linux"


def test_type_value_is_not_narrowed_by_itself():
    assert labels(items(CMD + "distribution:\n  type: mp‸")) == ["pytorch", "tensorflow", "mpi", "ray"]


def test_compute_names_from_the_registry(tmp_path: Path):
    registry = tmp_path / "computes.yml"
    registry.write_text("computes:\n  gpu-box: {type: process}\n  cluster: {type: ray}\n", encoding="utf-8")
    settings = ServerSettings(compute_registry=registry)
    found = labels(items(CMD + "compute: ‸", settings=settings))
    assert {"local", "azureml:process", "azureml:gpu-box", "azureml:cluster"} <= set(found)
    below = labels(items(CMD + "compute:\n  ‸", settings=settings))  # the value on the line below its key
    assert "azureml:gpu-box" in below


def test_environment_names_after_azureml(tmp_path: Path):
    envs = tmp_path / "environments.yml"
    envs.write_text("environments:\n  sklearn: python:3.11-slim\n", encoding="utf-8")
    found = by_label(items(CMD + "environment: azureml:‸", settings=ServerSettings(environments_file=envs)))
    item = found["azureml:sklearn@latest"]
    assert item.detail == "environment → python:3.11-slim"
    edit = item.text_edit
    assert (edit.range.start.character, edit.range.end.character) == (13, 21)  # replaces what was typed


def test_body_snippets_after_a_mapping_key():
    found = by_label(items(CMD + "distribution: ‸"))
    assert new_text(found["pytorch"]) == "\n  type: pytorch\n  process_count_per_instance: ${1:1}"


# --- completion: paths ----------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "train.py").write_text("", encoding="utf-8")
    (tmp_path / "conda.yml").write_text("", encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("", encoding="utf-8")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    return tmp_path


def test_code_offers_folders_only(project: Path):
    assert labels(items(CMD + "code: ‸", project / "job.yml")) == ["data/", "docker/", "src/"]
    inner = items(CMD + "code: src/‸", project / "job.yml")
    assert labels(inner) == ["pkg/"]
    edit = inner[0].text_edit
    assert (edit.range.start.character, edit.range.end.character) == (10, 10)


def test_conda_file_input_path_and_dockerfile_paths(project: Path):
    job = project / "job.yml"
    assert "conda.yml" in labels(items(CMD + "environment:\n  image: x\n  conda_file: ‸", job))
    assert labels(items(CMD + "inputs:\n  d:\n    type: uri_file\n    path: data/‸", job)) == ["a.csv"]
    build = CMD + "environment:\n  build:\n    path: docker\n    dockerfile_path: ‸"
    assert labels(items(build, job)) == ["Dockerfile"]
    assert labels(items(CMD + "environment:\n  build:\n    path: ‸", job)) == ["data/", "docker/", "src/"]


def test_paths_stay_inside_the_job_folder(project: Path):
    job = project / "src" / "job.yml"
    assert items(CMD + "code: ../‸", job) == []
    assert items(CMD + "code: /‸", job) == []
    assert items(CMD + "code: azureml:‸", job) == []
    assert items(CMD + "outputs:\n  m:\n    path: ‸", job) == []  # an output path is a cloud location


# --- completion: expressions ----------------------------------------------------------------------------------------


JOB = (CMD + "command: >-\n  python t.py --a ${{‸\ninputs:\n  epochs: 20\n  data:\n    type: uri_file\n"
       "    path: data/a.csv\noutputs:\n  model:\n    type: uri_folder\n")


def test_expression_namespaces_by_kind():
    assert labels(items(JOB)) == ["inputs.", "outputs."]
    sweep = SWEEP + "type: sweep\ntrial:\n  command: python t.py ${{‸\n"
    assert labels(items(sweep)) == ["inputs.", "outputs.", "search_space."]


def test_expression_names_from_this_document():
    found = items(JOB.replace("${{‸", "${{inputs.‸"))
    assert labels(found) == ["data", "epochs"]
    data = by_label(found)["data"]
    assert new_text(data) == "data}}"
    assert data.documentation.value == "```yaml\ndata:\n  type: uri_file\n  path: data/a.csv\n```"
    assert (by_label(found)["epochs"].detail, by_label(found)["epochs"].documentation) == ("epochs: 20", None)
    closed = by_label(items(CMD + "command: python ${{inputs.ep‸}}\ninputs:\n  epochs: 2\n"))
    assert new_text(closed["epochs"]) == "epochs"
    assert labels(items(JOB.replace("${{‸", "${{ outputs.‸"))) == ["model"]


def test_expression_names_in_a_sweep_search_space():
    text = (SWEEP + "type: sweep\ntrial:\n  command: python t.py --lr ${{search_space.‸\nsearch_space:\n"
            "  lr:\n    type: uniform\n    min_value: 0\n    max_value: 1\n")
    assert labels(items(text)) == ["lr"]


def test_expression_2021_form():
    found = by_label(items(CMD + "command: python t.py {inputs.‸\ninputs:\n  epochs: 2\n"))
    assert new_text(found["epochs"]) == "epochs}"


def test_expression_names_while_the_text_does_not_parse():
    broken = CMD + "command: python t.py ${{inputs.‸\nenvironment: [unclosed\ninputs:\n  epochs: 2\n\tlr: 1\n"
    assert labels(items(broken)) == ["epochs"]


# --- broken text, unicode, line ends, several documents ---------------------------------------------------------------


def test_completion_in_broken_text():
    unclosed = CMD + "command: [python, t.py\nresources:\n  ‸"
    assert "instance_count" in labels(items(unclosed))
    assert "compute" in labels(items(CMD + "command: x\nco‸"))
    assert "conda_file" in labels(items(CMD + "environment:\n  image: x\n  co‸"))
    assert "instance_count" in labels(items(CMD + "resources:\n\tshm_size: 2g\n\tinst‸"))
    assert labels(items(CMD + "distribution: {type: ‸\ncode: src")) == ["pytorch", "tensorflow", "mpi", "ray"]
    assert "resources" in labels(items(CMD + "resou‸\ncommand: 'unclosed"))


def test_utf16_positions_with_emoji_before_the_cursor():
    text = CMD + "description: 😀 ok\ninputs:\n  x:\n    mode: 😀dow‸"
    lines, line, column = split(text)
    character = column + 1  # the emoji is two UTF-16 units
    found = by_label(items(text, character=character))
    edit = found["download"].text_edit
    assert (edit.range.start.character, edit.range.end.character) == (10, 15)


def test_crlf_line_ends():
    found = labels(items((CMD + "resources:\n  instance_count: 1\n  ‸\n").replace("\n", "\r\n")))
    assert "shm_size" in found and "instance_count" not in found


def test_several_documents_each_with_its_schema():
    text = SWEEP + "type: sweep\n---\n" + CMD + "‸\n---\n" + FLOW
    found = labels(items(text))
    assert found[:2] == ["command", "environment"] and "trial" not in found


def test_modeline_selects_the_schema():
    text = "# yaml-language-server: $schema=https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n‸"
    assert "trial" in labels(items(text))


# --- speed --------------------------------------------------------------------------------------------------------


def test_completion_never_parses_or_validates_the_document(monkeypatch: pytest.MonkeyPatch):
    import mljob.runner.document as document
    import mljob.runner.validate as validate

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("completion must not parse or validate the whole document")

    monkeypatch.setattr(document, "parse", forbidden)
    monkeypatch.setattr(validate, "validate_text", forbidden)
    monkeypatch.setattr(validate, "analyze", forbidden)
    assert labels(items(JOB.replace("${{‸", "${{inputs.‸"))) == ["data", "epochs"]
    assert "shm_size" in labels(items(CMD + "resources:\n  ‸"))


def test_completion_on_a_3000_line_file_is_fast():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from generate import big_command_job

    lines = big_command_job(3000).split("\n")
    tags = lines.index("tags:")
    text = "\n".join([*lines[:tags], "resources2:", "  ‸", *lines[tags:]]).replace("resources2:", "distribution:")
    doc_lines, line, column = split(text)
    doc = OpenDocument("file:///big/job.yml", "\n".join(doc_lines), 1, None)
    ctx = FeatureContext(ServerSettings())
    # How fast is for bench/lsp.py to say (about 1 ms here); the test checks the answer on a big file.
    assert "type" in labels(completion.complete(doc, line, column, ctx).items)


def test_nothing_but_expressions_inside_free_text():
    assert items(CMD + "command: python main.py ‸") == []  # `python main.py` is the schema's example
    assert items(CMD + "command: >-\n  python t.py\n  --x ‸") == []
    assert labels(items(CMD + "command: ‸")) == ["python main.py"]


def test_dash_just_typed_gets_its_space():
    found = by_label(items(FLOW + "nodes:\n  -‸"))
    assert new_text(found["name"]) == " name: "
    assert new_text(by_label(items(FLOW + "nodes:\n  - ‸"))["name"]) == "name: "


def test_a_schema_that_refers_to_itself_does_not_hang(tmp_path: Path):
    (tmp_path / "loop.schema.json").write_text(json.dumps({
        "$defs": {"x": {"anyOf": [{"$ref": "#/$defs/x"}, {"$ref": "#/$defs/x"}, {"properties": {"a": {}}}],
                        "if": {"anyOf": [{"$ref": "#/$defs/x/if"}]}, "then": {"properties": {"b": {}}}}},
        "$ref": "#/$defs/x"}), encoding="utf-8")
    found = labels(items("$schema: ./loop.schema.json\n‸", tmp_path / "job.yml"))
    assert {"a", "b"} <= set(found)
