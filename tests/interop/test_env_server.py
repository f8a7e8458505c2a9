"""The env server and RemoteEnv against a real uvicorn server on 127.0.0.1."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gymnasium.utils.env_checker import check_env

import tirgym
from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.envs.base import Outcome, TextEnv
from tirgym.envs.remote import RemoteEnv
from tirgym.errors import TirgymError
from tirgym.serve import ServeSettings, make_env_app

GUESS = "tirgym/GuessNumber-v0"
ACTIONS = [
    "<answer>50</answer>",
    "no tags at all",
    "<think>hmm</think><answer>25</answer>",
    "<answer>seventy</answer>",
    "<answer>75</answer>",
    "<answer>12</answer>",
    "<answer>88</answer>",
    "<answer>3</answer>",
    "<answer>97</answer>",
    "<answer>60</answer>",
]


@pytest.fixture
def server(serve):
    return serve(make_env_app(ServeSettings(session_ttl_s=60)))


def _play(env, seed, actions):
    """(obs, info) of reset, then (obs, reward, terminated, truncated, info) per step."""
    trace = [env.reset(seed=seed)]
    for a in actions:
        out = env.step(a)
        trace.append(out)
        if out[2] or out[3]:
            break
    return trace


def test_remote_env_passes_check_env(server):
    env = tirgym.make(GUESS, remote=server.url)
    assert isinstance(env, RemoteEnv)
    check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize(
    "env_id,kwargs,actions",
    [
        (GUESS, {}, ACTIONS),
        (
            "tirgym/Sokoban-v0",
            {},
            ["<answer>up</answer>", "<answer>left</answer>", "bad", "<answer>down</answer>"],
        ),
        ("tirgym/Countdown-v0", {}, ["<answer>1+2</answer>"]),
        ("tirgym/MathAnswer-v0", {}, ["<answer>42</answer>"]),
    ],
)
def test_same_seeds_give_the_same_episodes_locally_and_remotely(server, env_id, kwargs, actions):
    for seed in (0, 7, 123):
        local = tirgym.make(env_id, **kwargs)
        remote = tirgym.make(env_id, remote=server.url, **kwargs)
        assert _play(remote, seed, actions) == _play(local, seed, actions)
        assert remote.num_tasks == local.unwrapped.num_tasks
        remote.close()


def test_rollout_through_remote_envs_reproduces_local_episodes(server, hf_policy):
    """The rollout engine takes a RemoteEnv wherever it takes a local env."""
    params = SamplingParams(seed=5)
    limits = RolloutLimits(max_turns=3, max_new_tokens=12)
    local = rollout(hf_policy, [Task(GUESS, s) for s in (1, 2)], params=params, limits=limits)
    remote = rollout(
        hf_policy,
        [Task(GUESS, s, kwargs={"remote": server.url}) for s in (1, 2)],
        params=params,
        limits=limits,
    )
    for a, b in zip(local, remote, strict=True):
        assert a.token_ids == b.token_ids and a.loss_mask == b.loss_mask
        assert [t.reward_components for t in a.turns] == [t.reward_components for t in b.turns]
        assert (a.stop_reason, a.outcome_reward) == (b.stop_reason, b.outcome_reward)
    assert len(server.app.state.store) == 0  # rollout closed every session


def _binary_search(url: str, seed: int) -> bool:
    env = tirgym.make(GUESS, remote=url)
    try:
        obs, info = env.reset(seed=seed)
        lo, hi = 1, 100
        for _ in range(info["max_turns"]):
            guess = (lo + hi) // 2
            obs, _r, term, trunc, info = env.step(f"<answer>{guess}</answer>")
            if term or trunc:
                return bool(info["success"])
            if "higher" in obs:
                lo = guess + 1
            else:
                hi = guess - 1
        return False
    finally:
        env.close()


def test_64_concurrent_sessions_all_succeed(server):
    with ThreadPoolExecutor(64) as pool:
        wins = list(pool.map(lambda s: _binary_search(server.url, s), range(64)))
    assert all(wins)
    assert len(server.app.state.store) == 0


def _detail(r: httpx.Response) -> str:
    d = r.json()["detail"]
    assert isinstance(d, str) and "\n" not in d
    return d


def test_bad_requests_get_one_line_4xx_and_the_server_keeps_serving(server):
    c = httpx.Client(base_url=server.url)
    r = c.post("/sessions", json={"env_id": "tirgym/Nope-v0"})
    assert r.status_code == 400 and "Unknown env id" in _detail(r)
    r = c.post("/sessions", json={"env_id": GUESS, "kwargs": {"hgih": 5}})
    assert r.status_code == 400 and "high" in _detail(r)
    r = c.post("/sessions", json={"env_id": GUESS, "kwargs": {"low": 5, "high": 5}})
    assert r.status_code == 400 and "low < high" in _detail(r)
    r = c.post("/sessions", json={"env": GUESS})
    assert r.status_code == 422 and "env_id" in _detail(r)
    r = c.post("/sessions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    sid = c.post("/sessions", json={"env_id": GUESS}).json()["session_id"]
    r = c.post(f"/sessions/{sid}/step", json={"action": {"text": "<answer>1</answer>"}})
    assert r.status_code == 409 and "reset" in _detail(r)
    assert c.post(f"/sessions/{sid}/reset", json={"seed": 3}).status_code == 200
    for body in (
        {"action": {"text": 5}},
        {"action": "<answer>1</answer>"},
        {"action": {"text": "x" * 300_000}},
        {},
        {"action": {"text": "a"}, "timeout_s": -1},
    ):
        r = c.post(f"/sessions/{sid}/step", json=body)
        assert r.status_code == 422, body
        _detail(r)
    r = c.post(f"/sessions/{sid}/reset", json={"seed": -1})
    assert r.status_code == 422 and "seed" in _detail(r)
    r = c.post("/sessions/deadbeef/step", json={"action": {"text": "a"}})
    assert r.status_code == 404 and "session" in _detail(r)
    # after all that, the same session plays on
    r = c.post(f"/sessions/{sid}/step", json={"action": {"text": "<answer>50</answer>"}})
    assert r.status_code == 200 and "The number is" in r.json()["observation"]["text"]
    assert _binary_search(server.url, 11)


def test_hostile_actions_do_not_break_the_server(server):
    env = tirgym.make(GUESS, remote=server.url, max_turns=20, max_invalid_turns=0)
    env.reset(seed=0)
    # control bytes, NUL, right-to-left marks, unclosed tags, deep JSON
    for text in ["\x00\x1b[2J\x7f", "\u202e<answer>", "<tool_call>{" * 500, "[" * 10_000]:
        obs, *_ = env.step(text)
        assert isinstance(obs, str) and "\x00" not in obs
    # a lone surrogate cannot be UTF-8: refused in one line, the session plays on
    with pytest.raises(TirgymError, match="422 action.text"):
        env.step("\ud800<answer>\udfff</answer>")
    assert "The number is" in env.step("<answer>50</answer>")[0]
    env.close()
    assert _binary_search(server.url, 4)


class _Exploding(TextEnv):
    """Raises on a 'boom' action, hangs on a 'hang' action."""

    def generate_task(self, rng, options):
        return "say something"

    def on_answer(self, answer):
        if answer == "refuse":
            raise TirgymError("answers must be polite")
        if answer == "boom":
            raise ZeroDivisionError("division by zero")
        if answer == "hang":
            time.sleep(2.0)
        return Outcome(reply="ok", terminated=True, success=True)


def test_an_env_that_raises_or_hangs_loses_only_its_session(serve):
    app = make_env_app(
        ServeSettings(step_timeout_s=0.5), make_env=lambda env_id, **kw: _Exploding(max_turns=2)
    )
    server = serve(app)
    c = httpx.Client(base_url=server.url)

    def session():
        sid = c.post("/sessions", json={"env_id": "x"}).json()["session_id"]
        assert c.post(f"/sessions/{sid}/reset", json={"seed": 0}).status_code == 200
        return sid

    bystander = session()
    refused = session()
    r = c.post(f"/sessions/{refused}/step", json={"action": {"text": "<answer>refuse</answer>"}})
    assert r.status_code == 400 and _detail(r) == "answers must be polite"
    assert c.get(f"/sessions/{refused}/state").status_code == 200  # a refusal keeps the session
    boom = session()
    r = c.post(f"/sessions/{boom}/step", json={"action": {"text": "<answer>boom</answer>"}})
    assert r.status_code == 500 and "ZeroDivisionError" in _detail(r)
    assert c.get(f"/sessions/{boom}/state").status_code == 404
    hang = session()
    r = c.post(f"/sessions/{hang}/step", json={"action": {"text": "<answer>hang</answer>"}})
    assert r.status_code == 504 and "0.5s" in _detail(r)
    r = c.post(f"/sessions/{bystander}/step", json={"action": {"text": "<answer>hi</answer>"}})
    assert r.status_code == 200 and r.json()["done"] is True


def test_client_disconnecting_mid_episode_is_reaped(serve):
    closed = threading.Event()

    class Slow(_Exploding):
        def close(self):
            closed.set()

    app = make_env_app(
        ServeSettings(session_ttl_s=0.6, reap_every_s=0.1),
        make_env=lambda env_id, **kw: Slow(max_turns=3),
    )
    server = serve(app)
    c = httpx.Client(base_url=server.url)
    sid = c.post("/sessions", json={"env_id": "x"}).json()["session_id"]
    c.post(f"/sessions/{sid}/reset", json={"seed": 0})
    # the client hangs up while its step is running, and never comes back
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.url}/sessions/{sid}/step",
            json={"action": {"text": "<answer>hang</answer>"}},
            timeout=0.2,
        )
    assert closed.wait(5.0), "the abandoned session was not reaped"
    assert len(app.state.store) == 0
    assert c.get("/health").json()["status"] == "healthy"
    sid = c.post("/sessions", json={"env_id": "x"}).json()["session_id"]
    assert c.post(f"/sessions/{sid}/reset", json={}).status_code == 200


def test_bearer_token(serve):
    server = serve(make_env_app(ServeSettings(token="s3cret")))
    assert httpx.get(f"{server.url}/health").status_code == 200
    r = httpx.post(f"{server.url}/sessions", json={"env_id": GUESS})
    assert r.status_code == 401 and "bearer" in _detail(r)
    with pytest.raises(TirgymError, match="401"):
        RemoteEnv(server.url, GUESS, token="wrong")
    env = RemoteEnv(server.url, GUESS, token="s3cret")
    obs, _ = env.reset(seed=1)
    assert "Guess it" in obs
    env.close()


def test_served_env_list_and_capacity(serve):
    server = serve(make_env_app(ServeSettings(env_ids=(GUESS,), max_sessions=2)))
    c = httpx.Client(base_url=server.url)
    assert c.get("/envs").json() == {"envs": [GUESS]}
    r = c.post("/sessions", json={"env_id": "tirgym/Sokoban-v0"})
    assert r.status_code == 404 and GUESS in _detail(r)
    a = tirgym.make(GUESS, remote=server.url)
    b = tirgym.make(GUESS, remote=server.url)
    with pytest.raises(TirgymError, match="server full"):
        tirgym.make(GUESS, remote=server.url)
    a.close()
    tirgym.make(GUESS, remote=server.url).close()
    b.close()


def test_unreachable_server_is_one_line():
    with pytest.raises(TirgymError, match="unreachable"):
        tirgym.make(GUESS, remote="http://127.0.0.1:9")


def test_cli_serve_env(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad = subprocess.run(
        [sys.executable, "-m", "tirgym", "serve-env", "--envs", "tirgym/Nope-v0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and re.search(r"Unknown env id", bad.stderr)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tirgym", "serve-env", "--envs", GUESS, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert _binary_search(url, 2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_suite_entry_runs_its_env_remotely(server, tmp_path):
    suite = tmp_path / "remote.yaml"
    suite.write_text(
        "name: remote-guess\nenvs:\n"
        f"  - id: {GUESS}\n    kwargs: {{remote: '{server.url}', high: 10}}\n"
    )
    (entry,) = tirgym.get_suite(str(suite)).envs
    env = tirgym.make(entry.id, **entry.kwargs)
    assert isinstance(env, RemoteEnv)
    assert "between 1 and 10" in env.reset(seed=0)[0]
    assert env.num_tasks is None  # generated tasks, as locally
    env.close()
    with pytest.raises(TirgymError, match="remote must be an env server URL"):
        tirgym.validate_env_kwargs(GUESS, {"remote": 8700})
    with pytest.raises(TirgymError, match="high"):
        tirgym.validate_env_kwargs(GUESS, {"remote": server.url, "hihg": 3})
