"""The parity configs hold every switch docs/differences.md marks "(parity)", and every switch the page names is
real: the page's tables are the one list, read here.

A "switch" cell names config keys as `KEY VALUE` and command-line flags as `--flag`, each followed by the file
that reads it in backticks. A switch marked "(parity)" must be set to that value by configs/Parity/original_code.yaml
(and by nothing else), and every parity recipe must hold it.
"""

import ast
import os
import re

import pytest
from differences_page import named_switches, parity_switches, switch_cells

from slowfast.config import all_keys, get_cfg, merge_from_file, merge_from_list

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWITCHES = os.path.join(ROOT, "configs", "Parity", "original_code.yaml")
RECIPES = {  # parity recipe -> the recipe it is the parity version of
    os.path.join(ROOT, "configs", "Kinetics", "STDD_vitb16_8x16_k400_parity.yaml"):
        os.path.join(ROOT, "configs", "Kinetics", "STDD_vitb16_8x16_k400.yaml"),
    os.path.join(ROOT, "configs", "BaseToNovel", "STDD_vitb16_8x16_b2n_parity.yaml"):
        os.path.join(ROOT, "configs", "BaseToNovel", "STDD_vitb16_8x16_b2n.yaml"),
}


def _typed(key: str, text: str):
    return _get(merge_from_list(get_cfg(), [key, text]), key)


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return list(node) if isinstance(node, tuple) else node


def _load(*files):
    cfg = get_cfg()
    for f in files:
        merge_from_file(cfg, f)
    return cfg


def _reads_key(path: str, key: str) -> bool:
    """Whether the module reads config key `key`: as an attribute (`cfg.DATA.X`, or `d.X` with d a section), or
    names it whole in code (a table of config keys the code reads through), not in a comment or docstring."""
    section, leaf = key.split(".")[-2:]
    tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == leaf:
            parent = node.value
            if not isinstance(parent, ast.Attribute) or parent.attr == section:
                return True
        if isinstance(node, ast.Constant) and node.value == key and id(node) not in docstrings:
            return True
    return False


def test_the_page_marks_the_switches_the_tests_rely_on():
    # Guards the parser: the switches named in the issue that motivated the page, with their values.
    marked = parity_switches()
    assert {"TRAIN.MIXED_PRECISION_DTYPE": "float16", "DATA.ORIGINAL_SAMPLING": "True",
            "TEST.MIXED_PRECISION": "False", "DATA.RANDOM_FLIP": "True"}.items() <= marked.items()
    assert len(switch_cells()) > 40


def test_the_shared_parity_file_sets_exactly_the_switches_the_page_marks():
    switches = {k: _typed(k, v) for k, v in parity_switches().items()}
    shared = _load(SWITCHES)
    set_there = {k: _get(shared, k) for k in all_keys(shared) if _get(shared, k) != _get(get_cfg(), k)}
    # A marked switch whose value is also the default is still written in the file: check it by text.
    text = open(SWITCHES, encoding="utf-8").read()
    for key, value in switches.items():
        assert _get(shared, key) == value, key
        assert re.search(rf"^\s+{key.split('.')[-1]}:", text, re.M), f"{key} is not written in {SWITCHES}"
    assert set(set_there) <= set(switches), f"set in {SWITCHES} but not marked (parity) on the page"


@pytest.mark.parametrize("parity, recipe", sorted(RECIPES.items()), ids=lambda p: os.path.basename(p))
def test_every_parity_recipe_is_its_recipe_plus_the_shared_switches(parity, recipe):
    switches = {k: _typed(k, v) for k, v in parity_switches().items()}
    cfg = _load(parity)
    assert {k: _get(cfg, k) for k in switches} == switches
    # Nothing else differs from its recipe but the output folder: the switches cannot drift apart.
    base = _load(recipe)
    differ = {k for k in all_keys(cfg) if _get(cfg, k) != _get(base, k)}
    assert differ <= set(switches) | {"OUTPUT_DIR"}


def test_every_config_switch_on_the_page_exists_and_is_read_where_the_page_says():
    cfg_keys = set(all_keys(get_cfg()))
    checked = 0
    for cell in switch_cells():
        config, flags, files = named_switches(cell)
        for path in files:
            assert os.path.isfile(os.path.join(ROOT, path)), f"{path} named in: {cell}"
        for key, value, _ in config:
            assert key in cfg_keys, f"{key} is not a config key: {cell}"
            _typed(key, value)  # a value the key accepts
            assert files and any(_reads_key(p, key) for p in files), f"no file named reads {key}: {cell}"
            checked += 1
        for flag in flags:
            sources = [open(os.path.join(ROOT, p), encoding="utf-8").read() for p in files]
            assert any(f'"{flag}"' in src for src in sources), f"no file named defines {flag}: {cell}"
            checked += 1
    assert checked >= 20


def test_parity_recipes_include_the_shared_file_rather_than_repeat_it():
    for parity in RECIPES:
        text = open(parity, encoding="utf-8").read()
        assert "../Parity/original_code.yaml" in text
        assert not re.search(r"^(MODEL|DATA|TEST|TRAIN):", text, re.M), f"{parity} repeats switches"


def test_base_files_merge_in_order_and_a_bad_base_is_refused(tmp_path):
    from slowfast.config import ConfigError

    (tmp_path / "a.yaml").write_text("NUM_GPUS: 2\nRNG_SEED: 5\n")
    (tmp_path / "b.yaml").write_text("NUM_GPUS: 3\n")
    (tmp_path / "c.yaml").write_text("_BASE_: [a.yaml, b.yaml]\nRNG_SEED: 7\n")
    cfg = _load(str(tmp_path / "c.yaml"))
    assert (cfg.NUM_GPUS, cfg.RNG_SEED) == (3, 7)
    (tmp_path / "d.yaml").write_text("_BASE_: [a.yaml, 3]\n")
    with pytest.raises(ConfigError, match="_BASE_ must be a file name or a list of file names"):
        _load(str(tmp_path / "d.yaml"))


def test_base_to_novel_tool_keeps_ssv2_flips_only_under_the_parity_recipe(tmp_path):
    from slowfast.cli import base_to_novel as tool

    b2n = os.path.join(ROOT, "configs", "BaseToNovel")
    for cfg_file, expected in (("STDD_vitb16_8x16_b2n.yaml", False), ("STDD_vitb16_8x16_b2n_parity.yaml", True)):
        args = tool.build_parser().parse_args(["--dataset", "ssv2", "--video-root", str(tmp_path),
                                               "--cfg", os.path.join(b2n, cfg_file)])
        assert tool._config(args, flips=False).DATA.RANDOM_FLIP is expected, cfg_file
