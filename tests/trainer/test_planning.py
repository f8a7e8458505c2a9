"""Planning-token mask, strategic-gram mining and semantic entropy (HICRA).

The mask must mark exactly the sampled tokens whose characters overlap a matched gram,
on three tokenizers built here: a byte-level BPE (tokens straddling word boundaries and
splitting multi-byte characters), a character-level one and a WordPiece one.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from tirgym.episode import Episode, Turn
from tirgym.protocol import TurnFormat
from tirgym.trainer.planning import (
    GramBank,
    StrategicGrams,
    builtin_grams,
    mine_strategic_grams,
    normalize_gram,
    planning_mask,
    semantic_entropy,
    strategic_gram_counts,
    word_ngrams,
)
from tirgym.trainer.token_spans import (
    SPAN_ANSWER,
    SPAN_OTHER,
    SPAN_THINK,
    SPAN_TOOL,
    span_labels,
    token_char_spans,
)

# ----------------------------------------------------------------------------- tokenizers


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


B2U = _bytes_to_unicode()
U2B = {u: b for b, u in B2U.items()}


def bl(s: str) -> str:
    """Byte-level token string of text s."""
    return "".join(B2U[b] for b in s.encode("utf-8"))


def hand_bpe(pieces: list[str]) -> tuple[Tokenizer, list[int]]:
    """A byte-level BPE whose vocab holds exactly `pieces` (as sampled, in order)."""
    vocab: dict[str, int] = {}
    for p in pieces:
        vocab.setdefault(bl(p) if isinstance(p, str) else p, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.decoder = decoders.ByteLevel()
    return tok, [vocab[bl(p)] for p in pieces]


def hand_bytes_bpe(byte_pieces: list[bytes]) -> tuple[Tokenizer, list[int]]:
    vocab: dict[str, int] = {}
    keys = ["".join(B2U[b] for b in bp) for bp in byte_pieces]
    for k in keys:
        vocab.setdefault(k, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.decoder = decoders.ByteLevel()
    return tok, [vocab[k] for k in keys]


def trained_bpe(corpus: list[str]) -> Tokenizer:
    """Byte-level BPE trained without the word-splitting regex, so merges cross spaces."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(
        vocab_size=400,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, tr)
    return tok


def char_tokenizer(text: str) -> Tokenizer:
    vocab = {c: i for i, c in enumerate(sorted(set(text)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=next(iter(vocab))))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok


def wordpiece(tokens: list[str]) -> Tokenizer:
    vocab = {"[UNK]": 0}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.decoder = decoders.WordPiece(cleanup=False)
    return tok


def episode_of(
    turn_ids: list[list[int]], prompt: list[int] | None = None, obs: list[int] | None = None
):
    """prompt, turn 0, obs, turn 1, ... with loss mask 1 exactly on turn tokens."""
    prompt = prompt or []
    obs = obs or []
    ids, mask, turns = list(prompt), [0] * len(prompt), []
    for k, t in enumerate(turn_ids):
        if k:
            ids += obs
            mask += [0] * len(obs)
        turns.append(Turn(start=len(ids), end=len(ids) + len(t), action="answer"))
        ids += t
        mask += [1] * len(t)
    return Episode(env_id="t", seed=0, token_ids=ids, loss_mask=mask, turns=turns)


GRAMS = StrategicGrams.from_list(["notice that", "let me check", "first, we need to"])


# ----------------------------------------------------------------------------- offsets


def test_offsets_on_straddling_bpe_tokens_are_exact():
    pieces = ["<think>Hm", "m, no", "tice", " that th", "e s", "um", "</think>"]
    tok, ids = hand_bpe(pieces)
    text, spans = token_char_spans(tok, ids)
    assert text == "".join(pieces)
    assert [text[a:b] for a, b in spans] == pieces


def test_offsets_of_tokens_that_split_a_multibyte_character():
    # "é" = c3 a9 and "日" = e6 97 a5; the middle token finishes é and starts 日.
    tok, ids = hand_bytes_bpe([b"caf\xc3", b"\xa9 \xe6", b"\x97", b"\xa5!"])
    text, spans = token_char_spans(tok, ids)
    assert text == "café 日!"
    got = [text[a:b] for a, b in spans]
    assert got == ["café", "é 日", "日", "日!"]


def test_offsets_through_hf_wrapper_match_raw_tokenizer():
    tok, ids = hand_bpe(["<think>", "notice th", "at", "</think>"])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok)
    assert token_char_spans(hf, ids) == token_char_spans(tok, ids)


# ----------------------------------------------------------------------------- masks


def test_mask_bpe_marks_exactly_overlapping_tokens():
    pieces = [
        "<think>Hm",
        "m, no",
        "tice",
        " that th",
        "e s",
        "um. Let",
        " me",
        " check",
        "!</think>",
    ]
    pieces += ["<answer>notice that</answer>"]
    tok, ids = hand_bpe(pieces)
    ep = episode_of([ids], prompt=[ids[0], ids[1]])
    mask = planning_mask(ep, tok, GRAMS)
    got = [pieces[i] for i in range(len(pieces)) if mask[2 + i]]
    # "m, no" holds the "no" of notice; " that th" ends the gram; "um. Let" starts the next.
    assert got == ["m, no", "tice", " that th", "um. Let", " me", " check"]
    assert not mask[:2].any(), "prompt tokens are never planning tokens"


def test_mask_char_tokenizer_marks_exactly_gram_characters():
    body = "First we need to add. Notice that 3 is odd; notice thatch is not."
    text = f"<think>{body}</think><answer>3</answer>"
    tok = char_tokenizer(text)
    ids = tok.encode(text).ids
    assert len(ids) == len(text)
    ep = episode_of([ids])
    mask = planning_mask(ep, tok, GRAMS)
    expected = np.zeros(len(text), bool)
    for phrase in ("First we need to", "Notice that"):
        i = text.index(phrase)
        expected[i : i + len(phrase)] = True
    assert (mask == expected).all()


def test_mask_wordpiece_respects_word_boundaries():
    vocab = [
        "<think>",
        "</think>",
        "no",
        "##tice",
        "##s",
        "that",
        "we",
        "let",
        "me",
        "check",
        "##ed",
        "ok",
    ]
    tok = wordpiece(vocab)
    seq = ["<think>", "no", "##tice", "that", "we", "no", "##tice", "##s", "that", "let", "me"]
    seq += ["check", "let", "me", "check", "##ed", "</think>"]
    ids = [tok.token_to_id(t) for t in seq]
    ep = episode_of([ids], prompt=[tok.token_to_id("ok")])
    mask = planning_mask(ep, tok, GRAMS)[1:]
    got = [i for i in range(len(seq)) if mask[i]]
    # "no ##tice that" matches; "notices that" does not; "let me check" yes, "let me checked" no.
    assert got == [1, 2, 3, 9, 10, 11]


def test_mask_only_in_think_and_only_on_turn_tokens():
    text0 = "<think>notice that</think><answer>let me check</answer>"
    obs = "notice that let me check"
    text1 = "no think here, notice that<answer>x</answer>"
    tok = char_tokenizer(text0 + obs + text1)
    ep = episode_of([tok.encode(text0).ids, tok.encode(text1).ids], obs=tok.encode(obs).ids)
    mask = planning_mask(ep, tok, GRAMS)
    marked = "".join(tok.id_to_token(ep.token_ids[i]) for i in range(len(mask)) if mask[i])
    assert marked == "notice that"
    all_scope = planning_mask(ep, tok, GRAMS, scope="all")
    assert all_scope.sum() == len("notice that") * 2 + len("let me check")


def test_mask_matches_byte_oracle_on_trained_bpe():
    """Property check against an independent oracle: token bytes -> character overlap."""
    rng = random.Random(0)
    words = ["notice", "that", "let", "me", "check", "we", "need", "to", "first", "sum", "café"]
    words += ["日本", "naïve", "try", "again", "the", "notice that", "let me check", "first, we"]
    corpus = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(200)]
    tok = trained_bpe(corpus)
    vocab = tok.get_vocab()
    assert any(" " in bytes(U2B[c] for c in t).decode("utf-8", "replace").strip() for t in vocab), (
        "the test needs tokens that straddle word boundaries"
    )
    grams = builtin_grams().merged(GRAMS)
    checked = 0
    for _ in range(40):
        body = " ".join(rng.choice(words) for _ in range(25))
        text = f"<think>{body}</think><answer>1</answer>"
        ids = tok.encode(text).ids
        ep = episode_of([ids])
        mask = planning_mask(ep, tok, grams)
        # Oracle: byte range of each token; a token is planning iff its bytes overlap a match.
        raw = b"".join(bytes(U2B[c] for c in tok.id_to_token(i)) for i in ids)
        full = raw.decode("utf-8")
        char_byte = np.cumsum([0] + [len(c.encode()) for c in full])
        hits = [
            (char_byte[a], char_byte[b]) for a, b, _ in grams.find(full, 7, full.index("</think>"))
        ]
        pos, expected = 0, []
        for i in ids:
            n = len(bytes(U2B[c] for c in tok.id_to_token(i)))
            expected.append(any(pos < hb and pos + n > ha for ha, hb in hits))
            pos += n
        assert list(mask) == expected
        checked += sum(expected)
    assert checked > 50


def test_span_labels():
    text = "<think>plan</think><tool_call>{}</tool_call>"
    text2 = "<answer>7</answer>"
    tok = char_tokenizer(text + text2 + "~")
    ep = episode_of([tok.encode(text).ids, tok.encode(text2).ids], prompt=tok.encode("~").ids)
    lab = span_labels(ep, tok)
    assert lab[0] == SPAN_OTHER
    n_think = len("<think>plan</think>")
    assert (lab[1 : 1 + n_think] == SPAN_THINK).all()
    assert (lab[1 + n_think : 1 + len(text)] == SPAN_TOOL).all()
    assert (lab[1 + len(text) :] == SPAN_ANSWER).all()


def test_span_labels_read_python_blocks_as_the_env_does():
    text = "<think>t</think>```python\nx\n```"
    tok = char_tokenizer(text + "~")
    ep = episode_of([tok.encode(text).ids], prompt=tok.encode("~").ids)
    n_think = len("<think>t</think>")
    tool = span_labels(ep, tok)  # default: python blocks are tool calls
    assert (tool[1 + n_think :] == SPAN_TOOL).all()
    plain = span_labels(ep, tok, TurnFormat())  # an env without python blocks
    assert (plain[1 : 1 + n_think] == SPAN_THINK).all() and (
        plain[1 + n_think :] == SPAN_OTHER
    ).all()


# ----------------------------------------------------------------------------- grams


def test_normalize_and_find_tolerate_punctuation_and_case():
    assert normalize_gram("First, we need to") == "first we need to"
    sg = StrategicGrams.from_list(["let's try", "re-evaluate the plan"])
    found = sg.find("OK. Let's  try it; then Re evaluate the plan. lets try")
    assert [g for _, _, g in found] == ["let s try", "re evaluate the plan"]


def test_overlapping_grams_are_all_counted():
    sg = StrategicGrams.from_list(["let me check", "check again"])
    assert [g for *_, g in sg.find("let me check again")] == ["let me check", "check again"]


def test_word_ngrams_stop_at_punctuation_and_skip_digits():
    grams = word_ngrams("Let me verify this. Add 3 to it", (3, 3))
    assert grams == {"let me verify", "me verify this"}


def test_mining_keeps_top_clusters_and_merges_variants():
    texts = []
    for i in range(10):
        t = "let me verify the result."
        if i < 8:
            t += " we should try another way."
        if i < 3:
            t += f" the {['red', 'blue', 'green'][i]} cat sat on the mat."
        texts.append(t)
    mined = mine_strategic_grams(texts, top_frac=0.2, min_df=2)
    # "let me verify" / "me verify the" / "let me verify the" ... form one cluster, df 10.
    assert "let me verify the" in mined.clusters
    assert "let me verify" in mined.clusters
    assert len(set(mined.clusters.values())) == 1
    assert "we should try" not in mined.clusters  # df 8 cluster falls outside the top 20%
    mined_half = mine_strategic_grams(texts, top_frac=0.5, min_df=2)
    assert "we should try another" in mined_half.clusters
    assert not any("cat" in g for g in mined_half.clusters)


def test_mining_with_an_embedder():
    texts = ["let me verify this. we try another way."] * 3 + ["we try another way."] * 2

    def embed(xs):  # bag of words: grams sharing words are near
        vocab = sorted({w for x in xs for w in x.split()})
        return np.array([[x.split().count(w) for w in vocab] for x in xs], float)

    mined = mine_strategic_grams(texts, top_frac=0.5, embed=embed, threshold=0.6)
    assert "we try another" in mined.clusters
    assert "let me verify" not in mined.clusters


def test_gram_bank_refreshes_and_saves(tmp_path):
    bank = GramBank(run_dir=tmp_path, every=2, min_df=2)
    ep = Episode(
        "t", 0, success=True, turns=[Turn(0, 0, text="<think>we pick the left door.</think>")]
    )
    bad = Episode("t", 0, success=False, turns=[Turn(0, 0, text="<think>go up now.</think>")])
    g = bank.observe([ep, ep, bad], step=0)
    assert "we pick the" in g.clusters and "notice that" in g.clusters
    assert "go up now" not in g.clusters
    saved = StrategicGrams.load(tmp_path / "strategic_grams.json")
    assert saved.clusters == g.clusters
    assert bank.observe([], step=1) is g  # not refreshed before `every` steps


def test_semantic_entropy():
    assert semantic_entropy({"a": 2, "b": 2}) == pytest.approx(math.log(2))
    assert semantic_entropy({"a": 5}) == 0.0
    assert semantic_entropy({}) == 0.0
    p = np.array([1, 2, 3]) / 6
    assert semantic_entropy([1, 2, 3]) == pytest.approx(-(p * np.log(p)).sum())
    counts = strategic_gram_counts(
        ["Notice that x. Let me check. Let me verify.", "note that y"], builtin_grams()
    )
    assert counts == {"deduce": 2, "verify": 2}
    by_gram = strategic_gram_counts(["Notice that x. notice that"], builtin_grams(), by="gram")
    assert by_gram == {"notice that": 2}


def test_explained_guess_demos_carry_planning_tokens(tiny_path):
    """GuessNumber(explain=True) solver demos win and have planning tokens for HICRA to
    credit; the plain demos ("Binary search.") have none."""
    from transformers import AutoTokenizer

    from tirgym.agents import RolloutLimits, Task, rollout
    from tirgym.agents.scripted import SolverPolicy

    tok = AutoTokenizer.from_pretrained(tiny_path)
    counts = {}
    for explain in (False, True):
        kw = {"low": 1, "high": 7, "max_turns": 3, "explain": explain}
        eps = rollout(
            SolverPolicy(tok),
            [Task("tirgym/GuessNumber-v0", s, kw) for s in range(4)],
            limits=RolloutLimits(max_new_tokens=64),
        )
        assert all(e.success for e in eps)
        counts[explain] = sum(int(planning_mask(e, tok).sum()) for e in eps)
    assert counts[False] == 0
    assert counts[True] >= 4 * 3  # at least a few tokens of "my plan is to" in every episode
