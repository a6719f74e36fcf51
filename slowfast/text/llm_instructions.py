"""Prompts for the two LLM stages, written for this project after the structure of the original STDD scripts.

Both stages send [system, one-shot user, one-shot assistant, real user]. Stage 1 asks for an Action
Semantic Knowledge Graph (ASKG) of one action; stage 2 turns that graph's relation triples into
clauses that complete "This is an example of <action>, ...". Temperatures follow the original work
(0 for the graph, 0.7 for the clauses); both are overridable from the CLIs.
"""

from __future__ import annotations

from collections.abc import Mapping

ASKG_TEMPERATURE = 0.0
XPROMPT_TEMPERATURE = 0.7
MAX_TOKENS = 1024
# An answer longer than this many characters per allowed completion token (16,384 at the default 1024) is
# rejected unparsed: English runs about 4 characters a token, so only a server that ignores max_tokens (or
# a proxy padding the answer) sends more, and such an answer must not be parsed, kept or sent back whole.
ANSWER_CHARS_PER_TOKEN = 16
# A re-ask quotes at most this much of the rejected answer and of the error (a few times a good answer).
REASK_QUOTE_CHARS = 4000
REASK_ERROR_CHARS = 1000

ASKG_FIELDS = ("label", "obj_en_li", "obj_rel_triples", "act_obj_triples", "sub_act_en_li", "act_rel_triples")
XPROMPT_FIELDS = ("label", "xprompt_oo", "xprompt_ao", "xprompt_aa")
# Which ASKG triples each xprompt field answers, one clause per triple.
XPROMPT_SOURCES = {"xprompt_oo": "obj_rel_triples", "xprompt_ao": "act_obj_triples", "xprompt_aa": "act_rel_triples"}
# Readable names of the ASKG fields shown to the stage-2 model.
READABLE_FIELDS = {
    "label": "action label",
    "obj_rel_triples": "object-object relation triples",
    "act_obj_triples": "action-object relation triples",
    "act_rel_triples": "action-action relation triples",
}

ASKG_SYSTEM = """\
You are a knowledge base of everyday human actions and the things people use while doing them.
You will receive one action name in square brackets. Describe what a video of that action shows:

1. Objects: list the K most important physical objects or body parts involved, 5 <= K <= 10.
2. Object-object relations: short triples <object, predicate, object> saying how pairs of those objects relate.
3. Action-object relations: short triples <action, predicate, object> saying how the action uses each object.
4. Sub-actions: the steps of the action, in the order they happen.
5. Action-action relations: triples that order the steps: first <action, starts with, first step>, then
   <step, precedes, next step> for each following step.

Every triple is a single string in angle brackets with exactly three parts separated by commas; do not
put commas inside a part. Answer with YAML only (no prose, comments are allowed), under one root key
equal to the action name, with exactly these fields: label, obj_en_li, obj_rel_triples, act_obj_triples,
sub_act_en_li, act_rel_triples. Quote every triple."""

ASKG_EXAMPLE_USER = "action entity: [drinking beer]"

ASKG_EXAMPLE_ANSWER = """\
drinking beer:
  label: drinking beer
  obj_en_li: [beer, glass, bottle, bottle opener, hand, mouth, coaster]
  obj_rel_triples:
    - "<bottle, holds, beer>"
    - "<bottle opener, removes the cap of, bottle>"
    - "<beer, is poured into, glass>"
    - "<hand, grips, glass>"
    - "<glass, is raised to, mouth>"
    - "<glass, rests on, coaster>"
  act_obj_triples:
    - "<drinking beer, consumes, beer>"
    - "<drinking beer, is done from, glass>"
    - "<drinking beer, may start from, bottle>"
    - "<drinking beer, needs, bottle opener>"
    - "<drinking beer, uses, hand>"
    - "<drinking beer, involves, mouth>"
    - "<drinking beer, puts the glass down on, coaster>"
  sub_act_en_li:
    - opening the bottle
    - pouring the beer into the glass
    - lifting the glass
    - taking a sip
    - swallowing the beer
    - putting the glass down
  act_rel_triples:
    - "<drinking beer, starts with, opening the bottle>"
    - "<opening the bottle, precedes, pouring the beer into the glass>"
    - "<pouring the beer into the glass, precedes, lifting the glass>"
    - "<lifting the glass, precedes, taking a sip>"
    - "<taking a sip, precedes, swallowing the beer>"
    - "<swallowing the beer, precedes, putting the glass down>"
"""

XPROMPT_SYSTEM = """\
You are a knowledge base of everyday human actions. You will receive the label of an action and
three groups of relation triples about it. For every triple, write one clause that completes the
sentence "This is an example of <label>, ..." and says what the triple says, in plain English:
- object-object triples give clauses starting with "where" (field xprompt_oo);
- action-object triples give clauses starting with "which" (field xprompt_ao);
- action-action triples give clauses like "starting with ..." or "where ... comes before ..." (field xprompt_aa).
Write exactly one clause per triple, in the same order. Do not repeat the label and do not write
"This is an example of": output only the words after the comma, without a final period. Answer with
YAML only, under one root key equal to the label, with exactly these fields: label, xprompt_oo,
xprompt_ao, xprompt_aa."""

XPROMPT_EXAMPLE_ANSWER = """\
drinking beer:
  label: drinking beer
  xprompt_oo:
    - where a bottle holds the beer
    - where a bottle opener takes the cap off the bottle
    - where the beer is poured into a glass
    - where a hand grips the glass
    - where the glass is raised to the mouth
    - where the glass rests on a coaster
  xprompt_ao:
    - which consumes beer
    - which is done from a glass
    - which may start from a bottle
    - which needs a bottle opener
    - which uses a hand
    - which involves the mouth
    - which puts the glass down on a coaster
  xprompt_aa:
    - starting with opening the bottle
    - where opening the bottle comes before pouring the beer into the glass
    - where pouring the beer into the glass comes before lifting the glass
    - where lifting the glass comes before taking a sip
    - where taking a sip comes before swallowing the beer
    - where swallowing the beer comes before putting the glass down
"""

REASK = """\
Your answer could not be used: {error}
Answer again for the same input, with YAML only, following the instructions exactly."""


def askg_user_message(class_name: str) -> str:
    return f"action entity: [{class_name.lower()}]"


def xprompt_user_message(askg_entry: Mapping) -> str:
    """The ASKG entry as readable blocks: "action label: x", then each triple group as numbered lines."""
    blocks = [f"{READABLE_FIELDS['label']}: {askg_entry['label']}"]
    for key in ("obj_rel_triples", "act_obj_triples", "act_rel_triples"):
        lines = [f"{READABLE_FIELDS[key]}:"] + [f"{i} - {t}" for i, t in enumerate(askg_entry[key], start=1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _example_askg() -> dict:
    import yaml

    return yaml.safe_load(ASKG_EXAMPLE_ANSWER)["drinking beer"]


def askg_messages(class_name: str) -> list[dict]:
    return [
        {"role": "system", "content": ASKG_SYSTEM},
        {"role": "user", "content": ASKG_EXAMPLE_USER},
        {"role": "assistant", "content": ASKG_EXAMPLE_ANSWER},
        {"role": "user", "content": askg_user_message(class_name)},
    ]


def xprompt_messages(askg_entry: Mapping) -> list[dict]:
    return [
        {"role": "system", "content": XPROMPT_SYSTEM},
        {"role": "user", "content": xprompt_user_message(_example_askg())},
        {"role": "assistant", "content": XPROMPT_EXAMPLE_ANSWER},
        {"role": "user", "content": xprompt_user_message(askg_entry)},
    ]


def reask_messages(messages: list[dict], bad_answer: str, error: str) -> list[dict]:
    """The conversation so far plus the rejected answer and a request to fix `error`, each cut to a few
    thousand characters (a huge answer is not sent back whole)."""
    return messages + [
        {"role": "assistant", "content": shorten(bad_answer, REASK_QUOTE_CHARS)},
        {"role": "user", "content": REASK.format(error=shorten(error, REASK_ERROR_CHARS))},
    ]


def shorten(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and a note of how many more were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} [... {len(text) - limit} more characters not shown]"
