"""The viewer's data: sources, the index, episode details, safe embedding, CLI and server."""

import json
import re
import urllib.error
import urllib.request

import pytest
from view_helpers import make_episode

from tirgym.cli import main
from tirgym.episode import save_jsonl
from tirgym.errors import TirgymError
from tirgym.view import build_view, default_out, find_source, make_server
from tirgym.view.data import INDEX_COLUMNS, build_data, dumps


def _blobs(html: str) -> dict[str, str]:
    """The page's data elements by id, as the browser's parser would read them."""
    return dict(re.findall(r'<script type="[^"]+" id="data-(\w+)">(.*?)</script>', html, re.S))


def test_index_has_a_value_per_episode_and_column(episodes_file):
    data = build_data(find_source(episodes_file))
    assert data.count == 12
    assert set(data.index) == set(INDEX_COLUMNS)
    assert all(len(v) == 12 for v in data.index.values())
    assert data.index["success"][:4] == [False, True, False, True]
    assert data.index["tool_errors"][:4] == [1, 0, 0, 1]
    assert data.index["format_errors"][0] == 1 and data.index["format_errors"][1] == 0
    assert data.index["sampled"][0] == 10 and data.index["turns"][0] == 2
    assert data.index["reward"][1] == pytest.approx(1.1)  # outcome 1 + turn reward 0.1


def test_detail_separates_think_tool_call_and_answer(episodes_file):
    d = json.loads(build_data(find_source(episodes_file)).details[3])
    assert [k for k, _ in d["turns"][0]["parts"]] == ["think", "tool_call"]
    assert d["turns"][0]["parts"][0][1] == "plan: try the middle"
    assert d["turns"][1]["parts"] == [["answer", "3"]]
    assert d["mask"] == [[6, 11], [15, 20]]
    assert d["adv"] is None and d["plan"] is None  # not logged, no tokenizer


def test_logged_token_advantages_reach_the_page(tmp_path):
    ep = make_episode(0)
    ep.info["token_advantages"] = [0.0] * 6 + [0.75] * 5 + [0.0] * 4 + [-0.25] * 5
    save_jsonl(tmp_path / "e.jsonl", [ep])
    data = build_data(find_source(tmp_path / "e.jsonl"))
    d = json.loads(data.details[0])
    assert d["adv"] == [0.75] * 5 + [-0.25] * 5  # the trained tokens' values, in order
    assert d["lp"] == [-0.5] * 10
    assert "token_advantages" not in d["info"]
    assert data.index["adv"] == [0.25]  # mean over the 10 trained tokens
    assert data.meta["layers"]["advantage"] is True


def test_text_cannot_end_the_script_element(tmp_path):
    """A conversation holding </script> or <!-- stays data: every data element parses."""
    nasty = '</script><script>alert(1)</script><!-- é \u2028 "q"'
    save_jsonl(tmp_path / "e.jsonl", [make_episode(0, text=nasty)])
    html, _ = build_view(tmp_path / "e.jsonl")
    blobs = _blobs(html)
    assert set(blobs) == {"meta", "index", "details", "search"}
    assert "<" not in blobs["details"] and blobs["details"].isascii()
    d = json.loads(blobs["details"])
    assert nasty in d["messages"][1]["content"]
    assert nasty.lower() in json.loads(blobs["search"])
    assert dumps("<x>") == '"\\u003cx>"'


def test_page_is_self_contained(episodes_file):
    html, _ = build_view(episodes_file)
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html)
    assert refs == ["data:,"]  # the favicon, inline: the page asks the network for nothing
    assert "@import" not in html and "url(" not in html
    assert html.count("<script") == 5  # four data elements and the inline script


def test_run_dir_brings_metrics_and_the_tokenizer(tiny_run):
    src = find_source(tiny_run)
    assert src.kind == "run" and src.tokenizer == str(tiny_run / "tiny_model")
    _, data = build_view(tiny_run)
    steps = {s for s in data.index["step"]}
    assert steps == {1, 2}
    assert [r["step"] for r in data.meta["metrics"] if "reward_mean" in r] == [1, 2]
    vocab = data.meta["vocab"]
    first = json.loads(data.details[0])
    assert all(str(i) in vocab for i in first["ids"])
    assert data.meta["layers"] == {
        "mask": True,
        "logprob": True,
        "advantage": True,
        "planning": True,
    }


def test_eval_dir_uses_the_results_loader(tmp_path):
    from tirgym.eval.runner import evaluate

    res = evaluate(
        "random",
        envs=["tirgym/GuessNumber-v0"],
        env_kwargs={"low": 1, "high": 4},
        seeds=3,
        samples=2,
        out_dir=tmp_path / "ev",
        charts=False,
    )
    _, data = build_view(tmp_path / "ev")
    assert data.meta["kind"] == "eval" and data.count == len(res.episodes) == 6
    assert data.meta["results"]["overall"]["pass_at_k"]["2"]["tasks"] == 3
    (tmp_path / "ev" / "results.json").write_text("{}")
    with pytest.raises(TirgymError, match="not a tirgym eval results file"):
        find_source(tmp_path / "ev")


def test_cli_writes_the_page_and_fails_in_one_line(episodes_file, tmp_path, capsys):
    out = tmp_path / "v.html"
    main(["view", str(episodes_file), "--out", str(out)])
    assert "12 episodes" in capsys.readouterr().out
    assert out.read_text().startswith("<!doctype html>")
    with pytest.raises(SystemExit) as exit_:
        main(["view", str(tmp_path / "missing")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such run dir" in err
    assert default_out(episodes_file).name == "eps.view.html"
    assert default_out(tmp_path).name == "view.html"


def test_server_answers_the_page_on_loopback_only(episodes_file):
    import threading

    html, _ = build_view(episodes_file)
    server = make_server(html)
    host, port = server.server_address
    assert host == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        assert body.decode() == html
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
