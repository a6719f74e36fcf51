"""The original's prompt files and prompt order, its zero-shot test settings, and its base-to-novel test
(averaged checkpoint, class descriptions)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from slowfast.cli import zero_shot as zs_tool
from slowfast.engine import base_to_novel_protocol as b2n
from slowfast.engine.zero_shot_protocol import PROTOCOLS, ProtocolError, protocol_opts
from slowfast.text.encode_prompts import build_prompt_table, class_prompts
from slowfast.text.prompt_file import match_xprompts
from slowfast.utils.class_index import read_class_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HMDB51 = read_class_names(os.path.join(ROOT, "label_db", "hmdb51-index2cls.json"))


# ---- the original's prompt files ------------------------------------------------------------------------
def original_style_prompt_file(classes, renamed) -> str:
    """An extended-prompt file laid out as the original's: an LLM comment line before most entries, keys in the
    original's spelling (`renamed`: class -> key), labels that may differ from the key, an empty aa list."""
    out = []
    for i, name in enumerate(classes):
        key = renamed.get(name, name)
        if i % 5:
            out.append(f"# This is an example of {key}...")
        out += [f"{key}:", f"  label: {key}", "  xprompt_oo:", f"    - where clause oo of {name} happens",
                "  xprompt_ao:", f"    - which involves clause ao of {name}"]
        out += ["  xprompt_aa: []", ""] if i % 7 == 0 else ["  xprompt_aa:", f"    - starting with step aa of {name}", ""]
    return "\n".join(out)


def test_the_original_hmdb51_prompt_file_loads_through_the_alias_table(tmp_path):
    path = tmp_path / "classes_xprompt_hmdb51.yml"
    path.write_text(original_style_prompt_file(HMDB51, {"fall floor": "falling to the floor"}))
    entries, report = match_xprompts(str(path), HMDB51, "xmix")
    assert report.aliased == [("fall floor", "falling to the floor")] and not report.by_order
    assert entries["fall floor"]["xprompt_oo"] == ["where clause oo of fall floor happens"]
    assert list(entries) == HMDB51


def test_a_renaming_outside_the_alias_table_is_still_refused(tmp_path):
    from slowfast.text.schema import SchemaError

    path = tmp_path / "x.yml"
    path.write_text(original_style_prompt_file(HMDB51, {"fall floor": "falling down"}))
    with pytest.raises(SchemaError, match="no entry for 1 of 51 classes.*fall floor"):
        match_xprompts(str(path), HMDB51, "xmix")


def _prompt_order_in_a_process(order: str, hash_seed: str) -> list:
    code = ("import json; from slowfast.text.encode_prompts import build_prompt_table; "
            "entry = {'xprompt_oo': ['o1', 'o2', 'o3'], 'xprompt_ao': ['a1', 'a2'], 'xprompt_aa': ['s1', 's2']}; "
            f"t, m = build_prompt_table(['c', 'd'], {{'c': entry}}, ['{{}}.'], 'xmix', {order!r}); "
            "print(json.dumps(t))")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_set_prompt_order_changes_with_the_hash_seed_as_the_originals():
    first = {_prompt_order_in_a_process("first", str(seed))[0][0] for seed in range(3)}
    assert first == {"c."}  # ours: the bare prompt leads (and is repeated first) in every process
    runs = [_prompt_order_in_a_process("set", str(seed)) for seed in range(6)]
    assert len({json.dumps(r) for r in runs}) > 1  # which prompts lead, and get repeated, changes with the seed
    assert _prompt_order_in_a_process("set", "3") == runs[3]  # and is fixed by it
    # The same prompts either way; class "d" has one prompt, repeated to the longest list's M = 8.
    assert all(sorted(set(r[0])) == sorted(set(runs[0][0])) and r[1] == ["d."] * 8 for r in runs)


def test_set_prompt_order_keeps_duplicates_of_single_kind_lists_as_the_original():
    entry = {"xprompt_oo": ["where a plate is on a table", "where a plate is on a table"]}
    assert class_prompts("{}.", "eat", entry, "xoo", "set").count("eat, where a plate is on a table.") == 2
    assert class_prompts("{}.", "eat", entry, "xoo", "first").count("eat, where a plate is on a table.") == 1
    with pytest.raises(ValueError, match="unknown prompt order"):
        build_prompt_table(["eat"], {"eat": entry}, ["{}."], "xoo", "sorted")


# ---- zero-shot test protocols -----------------------------------------------------------------------------
def _zero_shot_cfg(*argv):
    args = zs_tool.build_parser().parse_args(["--data-root", ".", *argv])
    return zs_tool.zero_shot_config(args)


@pytest.mark.parametrize("benchmark, protocol, views, patching", [
    ("ucf101", "stdd", 3, None), ("hmdb51", "stdd", 3, None), ("k600", "stdd", 3, None),
    ("ucf101", "original-b16", 1, None), ("hmdb51", "original-b16", 3, 0.5), ("k600", "original-b16", 3, None),
    ("k400", "original-b16", 3, None), ("ucf101", "original-l14", 3, 0.6), ("k600", "original-l14", 3, 0.6),
])
def test_zero_shot_protocols_set_the_views_and_patching_of_each_script(benchmark, protocol, views, patching):
    cfg = _zero_shot_cfg("--benchmark", benchmark, "--protocol", protocol)
    assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS) == (views, 1)
    assert cfg.TEST.PATCHING_MODEL is (patching is not None)
    if patching is not None:
        assert cfg.TEST.PATCHING_RATIO == patching


def test_default_protocol_leaves_patching_to_the_config_and_flags_win():
    assert _zero_shot_cfg("--benchmark", "ucf101", "--opts", "TEST.PATCHING_MODEL", "True").TEST.PATCHING_MODEL
    cfg = _zero_shot_cfg("--benchmark", "ucf101", "--protocol", "original-b16", "--views", "5", "--crops", "3")
    assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS) == (5, 3)
    assert set(zs_tool.build_parser()._option_string_actions["--protocol"].choices) == set(PROTOCOLS)
    with pytest.raises(ProtocolError, match="unknown test protocol"):
        protocol_opts("paper", "ucf101")


# ---- base-to-novel: class descriptions --------------------------------------------------------------------
BASE = ["pour", "sword exercise", "sword", "ride bike"]


def _descriptions(tmp_path, texts):
    path = tmp_path / "train_rephrased.json"
    path.write_text(json.dumps({str(i): t for i, t in enumerate(texts)}))
    return str(path)


def test_class_descriptions_in_frosters_format_are_put_in_class_order(tmp_path):
    texts = ["Sword: A person holds a sword", "Pour: A person pours a liquid", "Ride bike: A person pedals",
             "Sword exercise: A person practises moves with a sword"]
    got = b2n.read_class_descriptions(_descriptions(tmp_path, texts), BASE)
    assert got == [texts[1], texts[3], texts[0], texts[2]]


def test_class_descriptions_without_names_are_taken_by_index(tmp_path):
    texts = ["someone pours", "sword moves", "a sword", "cycling"]
    assert b2n.read_class_descriptions(_descriptions(tmp_path, texts), BASE) == texts


@pytest.mark.parametrize("texts, match", [
    (["Pour: a", "Sword exercise: b", "Sword: c", "Ride horse: d"], "Ride horse"),
    (["Pour: a", "Sword: b", "Sword: c", "Ride bike: d"], "named twice"),
    (["Pour: a", "Sword: b", "Ride bike: d"], "describes 3 classes but the list has 4"),
])
def test_class_descriptions_that_do_not_match_the_classes_are_refused(tmp_path, texts, match):
    with pytest.raises(ProtocolError, match=match):
        b2n.read_class_descriptions(_descriptions(tmp_path, texts), BASE)


# ---- base-to-novel: the averaged checkpoint ---------------------------------------------------------------
def _checkpoints(output_dir, epochs):
    folder = output_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for e in epochs:
        torch.save({"epoch": e - 1, "model_state": {"model.w": torch.full((2,), float(e))}},
                   folder / f"checkpoint_epoch_{e:05d}.pyth")


def test_seed_is_tested_with_the_average_of_its_epochs_2_to_last(tmp_path):
    _checkpoints(tmp_path, [1, 2, 3, 4])
    path = b2n.averaged_checkpoint(str(tmp_path))
    assert os.path.basename(path) == "swa_2_4.pth"
    assert torch.equal(torch.load(path, weights_only=True)["model_state"]["model.w"], torch.full((2,), 3.0))
    stamp = os.stat(path).st_mtime_ns
    assert b2n.averaged_checkpoint(str(tmp_path)) == path and os.stat(path).st_mtime_ns == stamp  # reused
    os.utime(tmp_path / "checkpoints" / "checkpoint_epoch_00004.pyth", ns=(stamp + 10**9, stamp + 10**9))
    b2n.averaged_checkpoint(str(tmp_path))
    assert os.stat(path).st_mtime_ns != stamp  # a newer checkpoint: averaged again


def test_a_run_of_one_epoch_is_tested_with_that_epoch(tmp_path):
    _checkpoints(tmp_path, [1])
    path = b2n.averaged_checkpoint(str(tmp_path))
    assert os.path.basename(path) == "swa_1_1.pth"
    with pytest.raises(ProtocolError, match="no checkpoint to average"):
        b2n.averaged_checkpoint(str(tmp_path / "empty"))
