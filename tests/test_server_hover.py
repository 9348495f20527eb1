"""Hover as a plain function: keys, values, expressions, `$schema`, deprecations — on text, broken or not."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from lsprotocol import types as lsp
from mljob.server import hover
from mljob.server.features import FeatureContext
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
SWEEP = "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\ntype: sweep\n"
MARK = "‸"
_versions = itertools.count(1)


def hover_at(text: str, path: Path | None = None, character: int | None = None) -> lsp.Hover | None:
    lines = text.split("\n")
    line, column = next((n, row.index(MARK)) for n, row in enumerate(lines) if MARK in row)
    lines[line] = lines[line].replace(MARK, "", 1)
    doc = OpenDocument("file:///x/job.yml" if path is None else path.as_uri(), "\n".join(lines), next(_versions),
                       path)
    return hover.hover(doc, line, column if character is None else character, FeatureContext(ServerSettings()))


def markdown(found: lsp.Hover | None) -> str:
    assert found is not None and isinstance(found.contents, lsp.MarkupContent)
    assert found.contents.kind == lsp.MarkupKind.Markdown
    return found.contents.value


def span(found: lsp.Hover | None) -> tuple[int, int, int]:
    assert found is not None and found.range is not None
    return found.range.start.line, found.range.start.character, found.range.end.character


def test_key_description_type_default():
    found = hover_at(CMD + "resources:\n  sh‸m_size: 2g")
    text = markdown(found)
    assert text.startswith("**shm_size**\n\nSize of the Docker container's shared memory block")
    assert "Type: `string` · Default: `2g`" in text
    assert span(found) == (2, 2, 10)


def test_required_key_says_so():
    assert "Type: `string` · required" in markdown(hover_at(CMD + "comm‸and: echo"))


def test_enum_value_meaning_then_the_keys_allowed_values():
    found = hover_at(CMD + "inputs:\n  x:\n    mode: down‸load")
    text = markdown(found)
    assert text.startswith("`download` — Download the data to the compute's local disk before the job starts.")
    assert "Allowed values:\n- `ro_mount` — Read-only mount (default)" in text
    assert "- `mount` — " in text and "*(deprecated)*" in text
    assert span(found) == (3, 10, 18)


def test_discriminator_value_in_flow_mapping_means_its_branch():
    text = markdown(hover_at(CMD + "distribution: {type: pyt‸orch}"))
    assert text.startswith("`pytorch` — PyTorch distributed training")


def test_deprecated_key_shows_its_message_first():
    text = markdown(hover_at(SWEEP + "algo‸rithm: random"))
    assert text.startswith("**Deprecated:** `algorithm` is the 2021 preview syntax; write `sampling_algorithm`.")
    nested = markdown(hover_at(CMD + "code:\n  local‸_path: src"))
    assert nested.startswith("**Deprecated:** `code.local_path` is the 2021 preview syntax")


def test_schema_value_names_the_kind_and_the_bundled_file():
    found = hover_at("$schema: https://azuremlschemas.azureedge.net/latest/sweep‸Job.schema.json\ntype: sweep")
    assert markdown(found) == ("**Sweep job** (job kind `sweep`)\n\nValidated and completed with the bundled schema "
                               "`sweepJob.schema.json`; nothing is downloaded.")
    assert span(found) == (0, 9, 73)
    key = markdown(hover_at("$sche‸ma: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"))
    assert key.startswith("**$schema**") and "**Command job** (job kind `command`)" in key


def test_schema_value_unknown_url_and_local_file(tmp_path: Path):
    unknown = markdown(hover_at("$schema: https://example.invalid/x‸.json\ncommand: echo\nenvironment: azureml:e@1"))
    assert "never downloads one" in unknown and "command job" in unknown
    (tmp_path / "team.schema.json").write_text(json.dumps({"type": "object", "x-mljob-kind": "command"}),
                                               encoding="utf-8")
    local = markdown(hover_at("$schema: ./team‸.schema.json\n", tmp_path / "job.yml"))
    assert local.startswith(f"**Local schema** `{(tmp_path / 'team.schema.json').resolve()}` (job kind `command`)")


JOB = (CMD + "command: python t.py --data ${{inputs.da‸ta}} --out ${{outputs.model}}\ninputs:\n  epochs: 20\n"
       "  data:\n    type: uri_file\n    path: data/a.csv\noutputs:\n  model:\n    type: uri_folder\n")


def test_expression_shows_the_definition():
    found = hover_at(JOB)
    assert markdown(found) == ("**inputs.data** (line 5)\n\n```yaml\ndata:\n  type: uri_file\n  path: data/a.csv\n"
                               "```")
    assert span(found) == (1, 28, 44)
    out = markdown(hover_at(JOB.replace("inputs.da‸ta", "inputs.data").replace("outputs.mo", "outputs.‸mo")))
    assert out.startswith("**outputs.model** (line 9)")


def test_expression_2021_form_and_search_space():
    old = markdown(hover_at(CMD + "command: python t.py {inputs.ep‸ochs}\ninputs:\n  epochs: 20\n"))
    assert old == "**inputs.epochs** (line 4)\n\n```yaml\nepochs: 20\n```"
    sweep = (SWEEP + "trial:\n  command: python t.py --lr ${{search_space.l‸r}}\nsearch_space:\n  lr:\n"
             "    type: uniform\n")
    assert markdown(hover_at(sweep)).startswith("**search_space.lr** (line 6)\n\n```yaml\nlr:\n  type: uniform")


def test_expression_that_names_nothing():
    text = markdown(hover_at(CMD + "command: python ${{inputs.miss‸ing}}\ninputs:\n  epochs: 1\n"))
    assert text == "`inputs.missing` is not defined in this job: add `missing` under `inputs`."
    no_space = markdown(hover_at(CMD + "command: python ${{search_space.l‸r}}\n"))
    assert "has no `search_space`" in no_space


def test_expression_inside_a_block_scalar_of_broken_text():
    text = CMD + "command: >-\n  python t.py\n  --e ${{inputs.ep‸ochs}}\nenvironment: [unclosed\ninputs:\n  epochs: 3\n"
    assert markdown(hover_at(text)).startswith("**inputs.epochs** (line 7)")


def test_hover_in_broken_text_and_with_tabs():
    assert markdown(hover_at(CMD + "command: 'unclosed\nresources:\n\tinstance‸_count: 1")).startswith(
        "**instance_count**")


def test_utf16_ranges_after_emoji():
    text = CMD + "inputs:\n  x:\n    description: 😀\n    mode: 😀 down‸load"
    lines = text.split("\n")
    column = lines[-1].index(MARK)
    found = hover_at(text, character=column + 1)
    assert markdown(found).startswith("**mode**")  # the value `😀 download` is no enum value
    assert span(found) == (4, 10, 21)


def test_nothing_to_say():
    assert hover_at(CMD + "# a comm‸ent") is None
    assert hover_at(CMD + "‸") is None
    assert hover_at("name: env\ndepen‸dencies:\n  - python") is None  # not a job file
    assert hover_at(CMD + "unknown_ke‸y: 1") is None
