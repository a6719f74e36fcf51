"""Answer parsing and schema checks, prompts, settings resolution and secrets (no server needed)."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from helpers import ROOT

from slowfast.text import llm_instructions
from slowfast.text.llm import LLMFatalError, RetryPolicy, Secret, redact, resolve_settings
from slowfast.text.schema import (
    SchemaError,
    load_entries,
    load_yaml_file,
    parse_yaml_answer,
    strip_code_fences,
    validate_askg,
    validate_xprompt,
)
from slowfast.text.stages import read_class_index

GOOD = yaml.safe_load(llm_instructions.ASKG_EXAMPLE_ANSWER)


def askg_with(**changes) -> dict:
    entry = dict(GOOD["drinking beer"])
    entry.update(changes)
    return {"drinking beer": entry}


def test_code_fence_is_stripped_before_parsing():
    assert parse_yaml_answer("Here it is:\n```yaml\na:\n  b: 1\n```\nHope it helps") == {"a": {"b": 1}}
    assert strip_code_fences("a: 1") == "a: 1"


def test_one_shot_example_passes_validation_and_label_becomes_the_class_name():
    entry = validate_askg(GOOD, "Drinking Beer")
    assert entry["label"] == "Drinking Beer"
    assert list(entry) == list(llm_instructions.ASKG_FIELDS)
    assert entry["obj_rel_triples"][0] == "<bottle, holds, beer>"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"obj_en_li": ["a", "b", "c", "d"]}, "'obj_en_li' must have 5 to 10 items, got 4"),
        ({"obj_en_li": [f"o{i}" for i in range(11)]}, "'obj_en_li' must have 5 to 10 items, got 11"),
        ({"obj_rel_triples": ["<rope, harness>"]}, "exactly three non-empty parts"),
        ({"obj_rel_triples": ["rope, tied to, harness"]}, "angle brackets"),
        ({"act_obj_triples": "<a, b, c>"}, "must be a non-empty list"),
        ({"sub_act_en_li": [None]}, "'sub_act_en_li' item 1 must be a non-empty string"),
        ({"act_rel_triples": None}, "must be a non-empty list"),
    ],
)
def test_askg_schema_violation_is_rejected_with_a_message_naming_the_field(changes, message):
    with pytest.raises(SchemaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_askg(askg_with(**changes), "drinking beer")


def test_missing_askg_field_is_rejected():
    obj = askg_with()
    del obj["drinking beer"]["sub_act_en_li"]
    with pytest.raises(SchemaError, match="'sub_act_en_li' is missing"):
        validate_askg(obj, "drinking beer")


def test_triple_given_as_a_three_item_list_is_normalised_to_angle_brackets():
    entry = validate_askg(askg_with(obj_rel_triples=[["rope", "tied  to", "harness"]]), "x")
    assert entry["obj_rel_triples"] == ["<rope, tied to, harness>"]


def test_xprompt_needs_one_clause_per_source_triple():
    askg = validate_askg(GOOD, "drinking beer")
    answer = yaml.safe_load(llm_instructions.XPROMPT_EXAMPLE_ANSWER)
    assert validate_xprompt(answer, "drinking beer", askg)["xprompt_oo"][0] == "where a bottle holds the beer"
    answer["drinking beer"]["xprompt_ao"].pop()
    msg = "'xprompt_ao' must have exactly one clause per act_obj_triples triple: 7 expected, got 6"
    with pytest.raises(SchemaError, match=msg):
        validate_xprompt(answer, "drinking beer", askg)


def test_xprompt_clause_loses_a_repeated_lead_in_and_final_period():
    obj = {"x": {"label": "x", "xprompt_oo": ["This is an example of Drinking Beer, where beer foams."],
                 "xprompt_ao": ["which uses a glass"], "xprompt_aa": ["starting with pouring."]}}
    entry = validate_xprompt(obj, "Drinking Beer")
    assert entry["xprompt_oo"] == ["where beer foams"] and entry["xprompt_aa"] == ["starting with pouring"]


def test_yaml_file_with_a_duplicated_class_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "askg.yml"
    text = llm_instructions.ASKG_EXAMPLE_ANSWER
    path.write_text(text + text)
    second = text.count("\n") + 1
    msg = rf"askg.yml: key drinking beer is repeated \(lines 1 and {second}\)"
    with pytest.raises(SchemaError, match=msg):
        load_yaml_file(str(path))


def test_invalid_entry_in_an_askg_file_names_the_file_and_class(tmp_path):
    path = tmp_path / "askg.yml"
    path.write_text(yaml.safe_dump(askg_with(obj_en_li=["a"])))
    with pytest.raises(SchemaError, match="askg.yml: class 'drinking beer': field 'obj_en_li'"):
        load_entries(str(path), "askg")


def test_stage_2_user_message_lists_the_triples_as_numbered_lines():
    msg = llm_instructions.xprompt_user_message(validate_askg(GOOD, "drinking beer"))
    blocks = msg.split("\n\n")
    assert blocks[0] == "action label: drinking beer"
    assert blocks[1].splitlines()[:2] == ["object-object relation triples:", "1 - <bottle, holds, beer>"]
    assert blocks[3].splitlines()[1] == "1 - <drinking beer, starts with, opening the bottle>"
    assert "obj_en_li" not in msg and "opening the bottle precedes" not in msg


def test_stage_1_user_message_lower_cases_the_class_name():
    assert llm_instructions.askg_messages("Apply Eye Makeup")[-1]["content"] == "action entity: [apply eye makeup]"


def test_backoff_is_bounded_exponential_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=8.0)
    rng = random.Random(0)
    delays = [policy.delay(i, rng=rng) for i in range(6) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(policy.delay(1, rng=rng) for _ in range(50)) <= 2.0
    assert len({round(d, 6) for d in delays}) > 100
    assert policy.delay(0, retry_after=3.0) == 3.0 and policy.delay(0, retry_after=100.0) == 8.0


def test_settings_take_the_flag_then_the_environment_then_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("OPENAI_API_KEY=from-file\nOPENAI_MODEL=file-model\n")
    s = resolve_settings(env_file=str(env_file), environ={})
    assert s.api_key.reveal() == "from-file" and s.model == "file-model"
    s = resolve_settings(env_file=str(env_file), environ={"OPENAI_API_KEY": "from-env"})
    assert s.api_key.reveal() == "from-env" and s.key_source == "environment"
    s = resolve_settings(api_key="from-flag", env_file=str(env_file), environ={"OPENAI_API_KEY": "from-env"})
    assert s.api_key.reveal() == "from-flag"


def test_official_endpoint_without_a_key_is_refused_but_a_local_server_needs_none(tmp_path):
    with pytest.raises(LLMFatalError, match="no API key"):
        resolve_settings(env_file=str(tmp_path / "none"), environ={})
    s = resolve_settings(base_url="http://127.0.0.1:11434/v1/", env_file=None, environ={})
    assert s.base_url == "http://127.0.0.1:11434/v1" and s.api_key.reveal()


def test_settings_and_secret_reprs_hide_the_key():
    key = "sk-live-1234567890abcdefghijkl"
    s = resolve_settings(api_key=key, env_file=None, environ={})
    for text in (repr(s), str(s), repr(s.api_key), str(s.api_key), f"{s}"):
        assert key not in text and "1234567890" not in text
    assert redact(f"bad key {key}", [key]) == "bad key ***"
    assert "sk-live-1234" not in redact("key sk-live-1234...ijkl is wrong", [key])
    assert Secret(key).reveal() == key


def test_class_index_with_a_gap_or_a_repeated_name_is_refused(tmp_path):
    path = tmp_path / "idx.json"
    path.write_text(json.dumps({"0": "a", "2": "b"}))
    with pytest.raises(SchemaError, match="missing \\[1\\]"):
        read_class_index(str(path))
    path.write_text(json.dumps({"0": "a", "1": "a"}))
    with pytest.raises(SchemaError, match="classes 0 and 1 have the same name 'a'"):
        read_class_index(str(path))


@pytest.mark.parametrize("script", ["ASKG_text_prompt.py", "extended_text_prompt.py", "text_prompts.py"])
def test_each_cli_documents_every_flag_in_its_help(script):
    import os
    import subprocess
    import sys

    from slowfast.cli.text import askg_parser, features_parser, xprompt_parser

    root = ROOT
    parser = {"ASKG_text_prompt.py": askg_parser, "extended_text_prompt.py": xprompt_parser,
              "text_prompts.py": features_parser}[script]()
    out = subprocess.run([sys.executable, os.path.join(root, "utils", script), "--help"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for action in parser._actions:
        assert action.help, f"{script}: {action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in out.stdout


def test_unquoted_triples_in_a_flow_list_are_rejoined():
    answer = parse_yaml_answer(
        "x:\n  label: x\n  obj_en_li: [a, b, c, d, e]\n  obj_rel_triples: [<a, on, b>, <c, under, d>]\n"
        "  act_obj_triples: [<x, uses, a>]\n  sub_act_en_li: [s1, s2]\n  act_rel_triples: [<x, starts with, s1>]\n"
    )
    assert validate_askg(answer, "x")["obj_rel_triples"] == ["<a, on, b>", "<c, under, d>"]


def test_base_url_falls_back_to_the_old_sdk_variable_name():
    s = resolve_settings(env_file=None, environ={"OPENAI_API_BASE": "http://127.0.0.1:8000/v1"})
    assert s.base_url == "http://127.0.0.1:8000/v1"
    s = resolve_settings(env_file=None, environ={"OPENAI_API_BASE": "http://a/v1", "OPENAI_BASE_URL": "http://b/v1"})
    assert s.base_url == "http://b/v1"
