"""Viewer load time for a large episode log, in Debian's headless chromium.

Generates an episodes JSONL (default 100k episodes, 3 turns each), builds the viewer page
(`tirgym view --out`), opens it in headless chromium and prints:
  build_s       tirgym's streaming read of the JSONL and writing of the page
  ready_ms      navigation start -> list shown (the page's own performance.now() at ready)
  loaded_ms     navigation start -> every episode's data parsed (openable, searchable)
  open_ms       click on an episode -> its conversation and token view rendered
  next_page_ms  the list's next page; filter_ms: one filter over all episodes;
  search_ms     full-text search over all episodes (first search builds its line table)
and, as the baseline measured in the same run, the same index rendered the naive way: one
table row per episode in the DOM (what paging avoids); the ratio is baseline / viewer.

Usage: python benchmarks/bench_view.py [--episodes 100000] [--tokens 120] [--keep DIR]
Needs `apt-get install chromium chromium-driver` and selenium (dev extra).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from tirgym.episode import Episode, Span, Turn, append_jsonl
from tirgym.view import build_view, write_page

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)
WORDS = [
    "think",
    "about",
    "the",
    "middle",
    "then",
    "guess",
    "higher",
    "lower",
    "answer",
    "tool",
    "result",
    "number",
]


def make_episode(i: int, rng: random.Random, tokens: int) -> Episode:
    """A GuessNumber-shaped episode: prompt, three sampled turns, two env replies."""
    per = max(4, tokens // 6)
    prompt = 2 * per
    ids = [rng.randrange(2048) for _ in range(tokens)]
    mask = [0] * len(ids)
    turns, spans, messages = [], [Span(0, prompt, "user")], [{"role": "user", "content": "Guess."}]
    pos = prompt
    for t in range(3):
        end = min(pos + per, len(ids))
        mask[pos:end] = [1] * (end - pos)
        words = " ".join(rng.choice(WORDS) for _ in range(per))
        text = f"<think>{words}</think><answer>{rng.randrange(100)}</answer>"
        turns.append(Turn(pos, end, text=text, action="answer", reward=0.0))
        spans.append(Span(pos, end, "assistant"))
        messages.append({"role": "assistant", "content": text})
        pos = end
        if t < 2:
            reply_end = min(pos + per // 2, len(ids))
            spans.append(Span(pos, reply_end, "user"))
            messages.append({"role": "user", "content": rng.choice(["higher", "lower"])})
            pos = reply_end
    success = rng.random() < 0.4
    return Episode(
        env_id=f"tirgym/Env{i % 5}-v0",
        seed=i,
        group_id=f"g{i // 8}",
        token_ids=ids,
        loss_mask=mask,
        logprobs=[-rng.random() * 3 if m else 0.0 for m in mask],
        spans=spans,
        turns=turns,
        outcome_reward=float(success),
        success=success,
        stop_reason="answer",
        messages=messages,
        info={
            "train_step": i // 256 + 1,
            "token_advantages": [round(rng.gauss(0, 1), 5) if m else 0.0 for m in mask],
        },
    )


def naive_page(index: dict) -> str:
    """The baseline: every episode as a table row in the DOM."""
    cols = ["env", "seed", "group", "step", "reward", "turns", "tokens", "stop"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{index[c][i]}</td>" for c in cols) + "</tr>"
        for i in range(len(index["env"]))
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'></head>"
        f"<body><table><tbody>{rows}</tbody></table><script>document.body.dataset.readyMs = "
        "performance.now().toFixed(1); document.body.dataset.ready = '1'; "
        "document.body.dataset.loadedMs = document.body.dataset.readyMs; "
        "document.body.dataset.loaded = '1';</script></body></html>"
    )


def browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    drv.set_page_load_timeout(600)
    return drv


def load_times(drv, url: str) -> tuple[float, float]:
    """(list shown, all episode data parsed) in ms since navigation start, by the page's clock."""
    drv.get(url)  # returns after the load event
    while drv.execute_script("return document.body.dataset.loaded") != "1":
        time.sleep(0.05)
    ds = drv.execute_script(
        "return [document.body.dataset.readyMs, document.body.dataset.loadedMs]"
    )
    return float(ds[0]), float(ds[1])


TIMED = "const t = performance.now(); {action}; return performance.now() - t;"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--tokens", type=int, default=120, help="tokens per episode")
    ap.add_argument("--keep", help="write the files here (default: a temp dir, removed)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_view_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        eps_file = work / "episodes.jsonl"
        eps_file.unlink(missing_ok=True)
        rng = random.Random(0)
        t = time.perf_counter()
        for start in range(0, args.episodes, 5000):
            n = min(5000, args.episodes - start)
            append_jsonl(
                eps_file, (make_episode(i, rng, args.tokens) for i in range(start, start + n))
            )
        gen_s = time.perf_counter() - t
        t = time.perf_counter()
        html, data = build_view(eps_file)
        page = write_page(html, work / "view.html")
        build_s = time.perf_counter() - t
        naive = work / "naive.html"
        naive.write_text(naive_page(data.index), encoding="utf-8")
        print(
            f"episodes {data.count}  jsonl {eps_file.stat().st_size / 1e6:.0f} MB (generated in "
            f"{gen_s:.1f} s)  page {page.stat().st_size / 1e6:.0f} MB  build_s {build_s:.1f}"
        )

        drv = browser(work / "profile")
        try:
            t = time.perf_counter()
            ours, ours_loaded = load_times(drv, page.as_uri())
            wall = time.perf_counter() - t
            rows = drv.execute_script("return document.querySelectorAll('tr.ep-row').length")
            open_ms = drv.execute_script(
                TIMED.format(action="document.querySelector('tr.ep-row').click()")
            )
            next_ms = drv.execute_script(
                TIMED.format(action="document.getElementById('pg-next').click()")
            )
            filter_ms = drv.execute_script(
                TIMED.format(
                    action="const s = document.getElementById('f-success'); s.value = '1'; "
                    "s.dispatchEvent(new Event('change'))"
                )
            )
            search_ms = drv.execute_script(
                TIMED.format(
                    action="document.getElementById('f-search').value = 'middle then guess'; "
                    "document.getElementById('filters').requestSubmit()"
                )
            )
            shown = drv.execute_script("return document.getElementById('ep-count').textContent")
            t = time.perf_counter()
            base, _ = load_times(drv, naive.as_uri())
            base_wall = time.perf_counter() - t
            base_rows = drv.execute_script("return document.querySelectorAll('tr').length")
        finally:
            drv.quit()
        print(
            f"viewer:   ready_ms {ours:.0f} (list shown)  loaded_ms {ours_loaded:.0f} (every "
            f"episode readable; wall {wall:.1f} s)  {rows} rows in the DOM"
        )
        print(
            f"          open_ms {open_ms:.0f}  next_page_ms {next_ms:.0f}  filter_ms {filter_ms:.0f}  "
            f"search_ms {search_ms:.0f}  ({shown} after filter + search)"
        )
        print(
            f"baseline: ready_ms {base:.0f}  (wall to ready {base_wall:.1f} s, {base_rows} rows in the DOM, one per episode)"
        )
        print(
            f"ratio baseline/viewer: list shown {base / max(ours, 1e-9):.1f}x, every episode "
            f"readable {base / max(ours_loaded, 1e-9):.1f}x"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
