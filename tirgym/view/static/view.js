"use strict";
// tirgym trajectory viewer. The data lives in the page (see tirgym/view/data.py): an index
// of columns for the list, one JSON line per episode (parsed when opened) and a lowercased
// search text per episode. Only one page of the list and one episode are ever in the DOM.
(function () {
  const $ = (id) => document.getElementById(id);
  const META = JSON.parse($("data-meta").textContent);
  const IDX = JSON.parse($("data-index").textContent);
  const N = META.count;
  const PAGE = 100;
  const VOCAB = META.vocab;
  const HAS_STEP = IDX.step.some((s) => s !== null && s !== undefined);
  const HAS_ADV = META.layers.advantage;

  // The script runs before the details and search blobs are parsed (they follow it in
  // the page): the list shows at once; opening an episode or searching waits for them.
  let dataLoaded = document.readyState !== "loading";
  const loaded = new Promise((resolve) => {
    if (dataLoaded) resolve();
    else document.addEventListener("DOMContentLoaded", () => { dataLoaded = true; resolve(); }, { once: true });
  });

  let detailLines = null;
  function detail(i) {
    if (detailLines === null) detailLines = $("data-details").textContent.split("\n");
    return JSON.parse(detailLines[i]);
  }

  const esc = (s) =>
    String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const fmt = (x, d = 3) =>
    x === null || x === undefined || Number.isNaN(x) ? "–" : Number.isInteger(x) ? String(x) : x.toFixed(d);
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

  // ---------------------------------------------------------------- search
  // The search blob holds each episode's text as Python's json.dumps(ensure_ascii) wrote
  // it, with "<" as \u003c: the query is escaped the same way and found with indexOf.
  let searchBlob = null;
  let lineStarts = null;
  function pyEscape(q) {
    let out = "";
    const named = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };
    for (const ch of q) {
      for (let k = 0; k < ch.length; k++) {
        const c = ch[k];
        const code = c.charCodeAt(0);
        if (named[c]) out += named[c];
        else if (code < 0x20 || code > 0x7e || c === "<") out += "\\u" + code.toString(16).padStart(4, "0");
        else out += c;
      }
    }
    return out;
  }
  function searchHits(query) {
    if (searchBlob === null) {
      searchBlob = $("data-search").textContent;
      lineStarts = [0];
      for (let p = searchBlob.indexOf("\n"); p >= 0; p = searchBlob.indexOf("\n", p + 1)) lineStarts.push(p + 1);
    }
    const q = pyEscape(query.toLowerCase());
    const hits = new Uint8Array(N);
    let pos = 0;
    while (q.length) {
      pos = searchBlob.indexOf(q, pos);
      if (pos < 0) break;
      let lo = 0, hi = lineStarts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (lineStarts[mid] <= pos) lo = mid; else hi = mid - 1;
      }
      hits[lo] = 1;
      pos = lo + 1 < lineStarts.length ? lineStarts[lo + 1] : searchBlob.length;
    }
    return hits;
  }

  // ---------------------------------------------------------------- list
  const COLS = [
    ["i", "#", null],
    ["env", "env", "l"],
    ["seed", "seed", null],
    ...(HAS_STEP ? [["step", "step", null]] : []),
    ["group", "group", "l"],
    ["reward", "reward", null],
    ["success", "ok", null],
    ["turns", "turns", null],
    ["tokens", "len", null],
    ["tool_errors", "tool", null],
    ["format_errors", "fmt", null],
    ["stop", "stop", "l"],
    ...(HAS_ADV ? [["adv", "adv", null]] : []),
  ];
  const SORTS = [["i", "file order"], ["reward", "reward"], ["outcome", "outcome"], ["turns", "turns"],
    ["tokens", "length"], ["sampled", "sampled tokens"], ["tool_errors", "tool errors"],
    ["format_errors", "format errors"], ["seed", "seed"], ["env", "env"], ["group", "group"],
    ...(HAS_STEP ? [["step", "step"]] : []), ...(HAS_ADV ? [["adv", "advantage"]] : [])];
  const state = { view: null, page: 0, current: null, search: "", layer: "mask", tab: "episodes", sub: "conv" };

  function col(name, i) { return name === "i" ? i : IDX[name][i]; }

  function numOr(el) { const v = el.value.trim(); return v === "" ? null : Number(v); }

  function applyFilters() {
    if (state.search && !dataLoaded) {
      $("ep-count").textContent = "reading episode texts…";
      loaded.then(applyFilters);
      return;
    }
    const env = $("f-env").value, succ = $("f-success").value;
    const rmin = numOr($("f-rmin")), rmax = numOr($("f-rmax"));
    const tmin = numOr($("f-tmin")), tmax = numOr($("f-tmax"));
    const lmin = numOr($("f-lmin")), lmax = numOr($("f-lmax"));
    const smin = numOr($("f-smin")), smax = numOr($("f-smax"));
    const group = $("f-group").value.trim();
    const toolErr = $("f-toolerr").checked, fmtErr = $("f-fmterr").checked;
    const hits = state.search ? searchHits(state.search) : null;
    const out = [];
    for (let i = 0; i < N; i++) {
      if (env && IDX.env[i] !== env) continue;
      if (succ && (IDX.success[i] ? "1" : "0") !== succ) continue;
      const r = IDX.reward[i];
      if (rmin !== null && !(r >= rmin)) continue;
      if (rmax !== null && !(r <= rmax)) continue;
      if (tmin !== null && IDX.turns[i] < tmin) continue;
      if (tmax !== null && IDX.turns[i] > tmax) continue;
      if (lmin !== null && IDX.tokens[i] < lmin) continue;
      if (lmax !== null && IDX.tokens[i] > lmax) continue;
      const s = IDX.step[i];
      if (smin !== null && !(s >= smin)) continue;
      if (smax !== null && !(s <= smax)) continue;
      if (group && !String(IDX.group[i]).includes(group)) continue;
      if (toolErr && !IDX.tool_errors[i]) continue;
      if (fmtErr && !IDX.format_errors[i]) continue;
      if (hits && !hits[i]) continue;
      out.push(i);
    }
    const key = $("f-sort").value, desc = $("f-desc").checked ? -1 : 1;
    if (key !== "i") {
      const v = IDX[key];
      out.sort((a, b) => {
        const x = v[a], y = v[b];
        if (x === y) return a - b;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * desc;
      });
    } else if (desc < 0) out.reverse();
    state.view = out;
    state.page = 0;
    renderList();
  }

  function cell(name, i) {
    const v = col(name, i);
    if (name === "success") return v ? '<span class="ok">&#10003;</span>' : '<span class="no">&#10007;</span>';
    if (name === "reward" || name === "adv") return fmt(v);
    if (name === "group") return esc(String(v).replace(IDX.env[i] + "#", "#"));
    if (name === "env") return `<span title="${esc(v)}">${esc(String(v).replace(/^tirgym\//, ""))}</span>`;
    return esc(v === null || v === undefined ? "–" : v);
  }

  function renderList() {
    const v = state.view, pages = Math.max(1, Math.ceil(v.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const rows = [];
    for (const i of v.slice(state.page * PAGE, (state.page + 1) * PAGE)) {
      const sel = i === state.current ? " sel" : "";
      rows.push(`<tr class="ep-row${sel}" data-i="${i}">` +
        COLS.map(([n, , c]) => `<td${c ? ` class="${c}"` : ""}>${cell(n, i)}</td>`).join("") + "</tr>");
    }
    $("ep-table").tBodies[0].innerHTML = rows.join("");
    $("ep-count").textContent = `${v.length} of ${N} episodes`;
    $("pg-info").textContent = `page ${state.page + 1} / ${pages}`;
    $("pg-prev").disabled = state.page === 0;
    $("pg-next").disabled = state.page >= pages - 1;
  }

  // ---------------------------------------------------------------- one episode
  // Per-token arrays over the whole sequence; the page data holds lp and adv for the
  // trained tokens only, in order (masked tokens have neither).
  function tokenArrays(d) {
    const n = d.ids.length;
    const trained = new Uint8Array(n), plan = new Uint8Array(n);
    const lp = new Float64Array(n), adv = d.adv ? new Float64Array(n).fill(NaN) : null;
    let j = 0;
    for (const [s, e] of d.mask) {
      trained.fill(1, s, e);
      for (let k = s; k < e; k++, j++) {
        lp[k] = d.lp[j] === null || d.lp[j] === undefined ? NaN : d.lp[j];
        if (adv) adv[k] = d.adv[j] === null ? NaN : d.adv[j];
      }
    }
    if (d.plan) for (const [s, e] of d.plan) plan.fill(1, s, e);
    const role = new Array(n).fill("");
    for (const [s, e, r] of d.spans) for (let k = s; k < e && k < n; k++) role[k] = r;
    return { n, trained, plan, role, lp, adv };
  }

  function openEpisode(i) {
    if (!dataLoaded) {
      $("detail-empty").textContent = "reading episodes…";
      loaded.then(() => openEpisode(i));
      return;
    }
    state.current = i;
    const d = detail(i);
    d.arr = tokenArrays(d);
    state.d = d;
    $("detail-empty").hidden = true;
    $("detail-body").hidden = false;
    for (const tr of $("ep-table").tBodies[0].rows) tr.classList.toggle("sel", Number(tr.dataset.i) === i);
    renderHead(d);
    renderConversation(d);
    renderTokens();
    renderGroup(d);
    renderEpisodeCurve();
    if (state.tab === "curves") renderCurves();
    history.replaceState(null, "", "#ep=" + i);
  }

  function renderHead(d) {
    const step = IDX.step[d.i];
    const items = [
      `<b>#${d.i}</b>`, `<b>${esc(d.env)}</b>`, `seed ${d.seed}`,
      ...(step !== null && step !== undefined ? [`step ${step}`] : []),
      `group ${esc(d.group || "–")}`,
      `reward <b>${fmt(d.reward)}</b>`, `outcome ${fmt(d.outcome)}`,
      d.success ? '<span class="ok">success</span>' : '<span class="no">no success</span>',
      `stop ${esc(d.stop || "–")}`, `${d.turns.length} turns`,
      `${d.ids.length} tokens (${IDX.sampled[d.i]} sampled)`,
      ...(d.trainable ? [] : ['<span class="badge err">not trainable</span>']),
    ];
    $("ep-head").innerHTML = items.map((x) => `<span>${x}</span>`).join("");
  }

  function partsHtml(parts) {
    return parts.map(([k, t]) => {
      const label = { think: "think", tool_call: "tool call", answer: "answer", python: "python", text: "outside tags" }[k] || k;
      return `<div class="part ${esc(k)}"><span class="k">${label}</span>${esc(t)}</div>`;
    }).join("");
  }

  function renderConversation(d) {
    const html = [];
    let turn = 0, seenUser = false;
    for (const m of d.messages) {
      const role = m.role;
      if (role === "system") {
        html.push(`<div class="msg system"><div class="who">system</div><div class="body">${esc(m.content)}</div></div>`);
      } else if (role === "assistant") {
        const t = d.turns[turn];
        const who = [`model turn ${turn + 1}`];
        let body = esc(m.content);
        if (t) {
          who.push(`action ${esc(t.action)}`, `turn reward <b>${fmt(t.reward)}</b>`);
          const comps = Object.entries(t.components || {}).map(([k, v]) => `${esc(k)} ${fmt(v)}`).join(", ");
          if (comps) who.push(comps);
          if (t.tool_calls) who.push(`${t.tool_calls} tool call${t.tool_calls > 1 ? "s" : ""}`);
          if (t.tool_errors) who.push(`<span class="badge err">${t.tool_errors} tool error</span>`);
          if (t.finish) who.push(`finish ${esc(t.finish)}`);
          body = partsHtml(t.parts.length ? t.parts : [["text", m.content]]);
          for (const e of t.format_errors) body += `<div class="badge err">format: ${esc(e)}</div>`;
        }
        html.push(`<div class="msg assistant"><div class="who">${who.join("<span>·</span>")}</div><div class="body">${body}</div></div>`);
        turn++;
      } else {
        const label = !seenUser && role === "user" ? "task" : `env reply (${esc(role)})`;
        seenUser = seenUser || role === "user";
        html.push(`<div class="msg ${label === "task" ? "task" : "env"}"><div class="who">${label}</div><div class="body">${esc(m.content)}</div></div>`);
      }
    }
    html.push(`<div class="outcome">outcome reward <b>${fmt(d.outcome)}</b> · total reward <b>${fmt(d.reward)}</b> · ` +
      `${d.success ? '<span class="ok">success</span>' : '<span class="no">no success</span>'} · stop ${esc(d.stop || "–")}` +
      `${d.terminated ? " · terminated" : ""}${d.truncated ? " · truncated" : ""}</div>`);
    $("sub-conv").innerHTML = html.join("");
  }

  // ---------------------------------------------------------------- token view
  const LAYERS = [
    ["mask", "trained vs masked", () => true, ""],
    ["logprob", "sampled logprob", () => true, ""],
    ["advantage", "advantage", () => META.layers.advantage, "not logged: train with log.token_advantages: true"],
    ["planning", "HICRA planning tokens", () => META.layers.planning, "needs the policy tokenizer (--tokenizer)"],
  ];

  function mix(a, b, t) {
    return `rgb(${a.map((x, k) => Math.round(x + (b[k] - x) * t)).join(",")})`;
  }
  const WHITE = [255, 255, 255], RED = [215, 48, 39], BLUE = [33, 102, 172], BLUE_LIGHT = [214, 226, 248];
  const ORANGE = [245, 166, 35];

  // One advantage scale for the whole source (99th percentile of |episode advantage|),
  // so a colour means the same credit in every episode; an episode without it uses its own.
  const RUN_ADV_SCALE = (() => {
    const v = IDX.adv.filter((a) => a !== null && a !== undefined).map(Math.abs).sort((a, b) => a - b);
    return v.length && v[Math.floor(0.99 * (v.length - 1))] > 0 ? v[Math.floor(0.99 * (v.length - 1))] : null;
  })();

  function advScale(d) {
    if (!d.adv) return 1;
    if (RUN_ADV_SCALE !== null) return RUN_ADV_SCALE;
    const vals = [];
    for (let k = 0; k < d.arr.n; k++) if (d.arr.trained[k] && !Number.isNaN(d.arr.adv[k])) vals.push(Math.abs(d.arr.adv[k]));
    vals.sort((a, b) => a - b);
    const m = vals.length ? vals[Math.floor(0.99 * (vals.length - 1))] : 0;
    return m > 0 ? m : 1;
  }

  function tokenColour(d, k, layer, scale) {
    const trained = d.arr.trained[k];
    if (layer === "mask") return trained ? mix(WHITE, BLUE_LIGHT, 1) : null;
    if (!trained) return null;
    if (layer === "logprob") return Number.isNaN(d.arr.lp[k]) ? null : mix(WHITE, RED, Math.min(1, -d.arr.lp[k] / 5));
    if (layer === "advantage") {
      const a = d.arr.adv ? d.arr.adv[k] : NaN;
      if (Number.isNaN(a)) return null;
      const t = Math.max(-1, Math.min(1, a / scale));
      return t < 0 ? mix(WHITE, RED, -t) : mix(WHITE, BLUE, t);
    }
    if (layer === "planning") return d.arr.plan[k] ? mix(WHITE, ORANGE, 1) : mix(WHITE, BLUE_LIGHT, 0.5);
    return null;
  }

  function legendHtml(layer, scale) {
    if (layer === "mask")
      return `<span class="sw" style="background:${mix(WHITE, BLUE_LIGHT, 1)}"></span> trained (sampled) <span class="sw"></span> masked (prompt, env replies)`;
    if (layer === "logprob")
      return `0 <span class="scale" style="background:linear-gradient(to right,#fff,${mix(WHITE, RED, 1)})"></span> &le; -5 (sampled logprob, trained tokens)`;
    if (layer === "advantage")
      return `${fmt(-scale)} <span class="scale" style="background:linear-gradient(to right,${mix(WHITE, RED, 1)},#fff,${mix(WHITE, BLUE, 1)})"></span> +${fmt(scale)} (advantage the update used; scale: 99th pct |A| ${RUN_ADV_SCALE !== null ? "of all episodes" : "in this episode"})`;
    if (layer === "planning")
      return `<span class="sw" style="background:${mix(WHITE, ORANGE, 1)}"></span> planning token <span class="sw" style="background:${mix(WHITE, BLUE_LIGHT, 0.5)}"></span> other trained token`;
    return "";
  }

  function tokenText(id) {
    if (VOCAB) {
      const t = VOCAB[id];
      return t === undefined ? `⟨${id}⟩` : t;
    }
    return `⟨${id}⟩`;
  }

  function renderTokens() {
    const d = state.d;
    if (!d) return;
    const layer = state.layer, scale = advScale(d);
    $("legend").innerHTML = legendHtml(layer, scale);
    const starts = new Map(d.spans.map(([s, , r]) => [s, r]));
    const out = [];
    for (let k = 0; k < d.arr.n; k++) {
      if (starts.has(k)) out.push(`<span class="role">${esc(starts.get(k))}</span>`);
      const bg = tokenColour(d, k, layer, scale);
      let text = tokenText(d.ids[k]);
      text = text === "" ? "∅" : text.replace(/\n/g, "↵\n");
      const style = bg ? ` style="background:${bg}"` : d.arr.trained[k] ? "" : ' style="color:#777"';
      out.push(`<span class="t" data-k="${k}"${style}>${esc(text)}</span>`);
    }
    if (!VOCAB) out.unshift('<div class="hint">No tokenizer found: token ids are shown. Pass --tokenizer MODEL_DIR to see text.</div>');
    $("token-view").innerHTML = out.join("");
  }

  function tokenInfo(k) {
    const d = state.d;
    const bits = [`token ${k}`, `id ${d.ids[k]}`, JSON.stringify(tokenText(d.ids[k])), d.arr.role[k] || "–",
      d.arr.trained[k] ? "trained" : "masked"];
    if (d.arr.trained[k]) bits.push(`logprob ${fmt(d.arr.lp[k], 4)} (p ${fmt(Math.exp(d.arr.lp[k]), 3)})`);
    if (d.arr.adv) bits.push(d.arr.trained[k] ? `advantage ${fmt(d.arr.adv[k], 4)}` : "no advantage (masked)");
    else bits.push("advantage not logged");
    if (d.plan) bits.push(d.arr.plan[k] ? "planning token" : "not planning");
    $("token-info").textContent = bits.join("  ·  ");
  }

  // ---------------------------------------------------------------- group view
  function finalAnswer(d) {
    for (let t = d.turns.length - 1; t >= 0; t--) {
      const a = d.turns[t].parts.find((p) => p[0] === "answer" || p[0] === "tool_call");
      if (a) return `${a[0] === "answer" ? "answer" : "tool call"}: ${a[1]}`;
    }
    const last = d.messages.filter((m) => m.role === "assistant").pop();
    return last ? last.content : "";
  }

  function renderGroup(d) {
    const g = d.group, step = IDX.step[d.i];
    if (!g) { $("sub-group").innerHTML = '<p class="hint">This episode has no group id.</p>'; return; }
    const members = [];
    for (let j = 0; j < N; j++) if (IDX.group[j] === g && IDX.step[j] === step) members.push(j);
    const rewards = members.map((j) => IDX.reward[j]);
    const mu = mean(rewards);
    const sd = Math.sqrt(mean(rewards.map((r) => (r - mu) ** 2)));
    const lo = Math.min(...rewards), hi = Math.max(...rewards);
    members.sort((a, b) => IDX.reward[b] - IDX.reward[a] || a - b);
    const cards = members.map((j) => {
      const dj = j === d.i ? d : detail(j);
      const w = hi > lo ? (IDX.reward[j] - lo) / (hi - lo) : 1;
      const adv = IDX.adv[j];
      return `<div class="card${j === d.i ? " sel" : ""}" data-i="${j}">` +
        `<div><b>#${j}</b> ${IDX.success[j] ? '<span class="ok">success</span>' : '<span class="no">fail</span>'}</div>` +
        `<div>reward <b>${fmt(IDX.reward[j])}</b> · r − mean ${fmt(IDX.reward[j] - mu)}</div>` +
        `<div class="bar" style="width:${Math.round(10 + 90 * w)}%;background:${IDX.reward[j] >= mu ? mix(WHITE, BLUE, 0.8) : mix(WHITE, RED, 0.8)}"></div>` +
        `<div>advantage ${adv === null || adv === undefined ? '<span class="hint">not logged</span>' : `<b>${fmt(adv)}</b> (mean over trained tokens)`}</div>` +
        `<div>${IDX.turns[j]} turns · ${IDX.sampled[j]} sampled tokens · ${esc(IDX.stop[j] || "–")}</div>` +
        `<div class="ans">${esc(finalAnswer(dj))}</div></div>`;
    });
    $("sub-group").innerHTML =
      `<p>Group <b>${esc(g)}</b>${step !== null && step !== undefined ? ` at step ${step}` : ""}: ${members.length} rollouts, ` +
      `reward mean ${fmt(mu)}, std ${fmt(sd)}. GRPO compares each rollout with this group.</p>` +
      `<div class="cards">${cards.join("")}</div>`;
  }

  // ---------------------------------------------------------------- learning curves
  const METRICS = META.metrics || [];
  const METRIC_KEYS = [...new Set(METRICS.flatMap((r) => Object.keys(r)))].filter((k) => k !== "step").sort();
  const DEFAULT_CURVES = ["reward_mean", "success_rate", "eval/success", "response_tokens_mean", "token_entropy", "loss"];
  const shown = new Set(DEFAULT_CURVES.filter((k) => METRIC_KEYS.includes(k)));

  function chartSvg(key, marker, w = 330, h = 170) {
    const pts = METRICS.filter((r) => r[key] !== null && r[key] !== undefined).map((r) => [r.step, r[key]]);
    const pad = { l: 46, r: 10, t: 18, b: 22 };
    if (!pts.length) return "";
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (marker !== null && marker !== undefined) { x0 = Math.min(x0, marker); x1 = Math.max(x1, marker); }
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
    const Y = (y) => h - pad.b - ((y - y0) / (y1 - y0)) * (h - pad.t - pad.b);
    const path = pts.map((p, k) => `${k ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    const dots = pts.length <= 60 ? pts.map((p) => `<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="2" fill="#2855c8"/>`).join("") : "";
    const mark = marker !== null && marker !== undefined
      ? `<line x1="${X(marker)}" x2="${X(marker)}" y1="${pad.t}" y2="${h - pad.b}" stroke="#c0392b" stroke-dasharray="3,2"/>` +
        `<text x="${X(marker) + 3}" y="${pad.t + 9}" style="fill:#c0392b">step ${marker}</text>` : "";
    return `<svg class="chart" width="${w}" height="${h}" data-key="${esc(key)}">` +
      `<text x="${pad.l}" y="12" style="fill:#1d1d1f;font-weight:600">${esc(key)}</text>` +
      `<line x1="${pad.l}" x2="${w - pad.r}" y1="${h - pad.b}" y2="${h - pad.b}" stroke="#ccc"/>` +
      `<line x1="${pad.l}" x2="${pad.l}" y1="${pad.t}" y2="${h - pad.b}" stroke="#ccc"/>` +
      `<text x="${pad.l - 4}" y="${Y(y1) + 3}" text-anchor="end">${fmt(y1)}</text>` +
      `<text x="${pad.l - 4}" y="${Y(y0) + 3}" text-anchor="end">${fmt(y0)}</text>` +
      `<text x="${pad.l}" y="${h - 6}">${x0}</text><text x="${w - pad.r}" y="${h - 6}" text-anchor="end">step ${x1}</text>` +
      `<path d="${path}" fill="none" stroke="#2855c8" stroke-width="1.5"/>${dots}${mark}</svg>`;
  }

  function currentStep() {
    return state.current === null ? null : IDX.step[state.current];
  }

  function renderCurves() {
    $("curve-pick").innerHTML = "<p>Metrics from metrics.jsonl" +
      (currentStep() !== null && currentStep() !== undefined ? `; the dashed line is the open episode's step (${currentStep()})` : "") +
      ".</p>" + METRIC_KEYS.map((k) =>
        `<label><input type="checkbox" data-key="${esc(k)}"${shown.has(k) ? " checked" : ""}> ${esc(k)}</label>`).join("");
    $("curves").innerHTML = [...shown].map((k) => chartSvg(k, currentStep())).join("");
  }

  function renderEpisodeCurve() {
    const step = currentStep();
    if (!METRICS.length || step === null || step === undefined) { $("ep-curve").innerHTML = ""; return; }
    const keys = ["reward_mean", "success_rate"].filter((k) => METRIC_KEYS.includes(k));
    $("ep-curve").innerHTML = `<div class="hint">Training curves, this episode's step marked:</div>` +
      keys.map((k) => chartSvg(k, step, 300, 140)).join("");
  }

  // ---------------------------------------------------------------- eval table
  function ci(m) {
    if (!m || m.mean === null || m.mean === undefined) return "–";
    const c = m.ci ? ` <span class="ci">[${fmt(m.ci[0])}, ${fmt(m.ci[1])}]</span>` : "";
    return `${fmt(m.mean)}${c}`;
  }

  function renderEval() {
    const R = META.results;
    if (!R) return;
    const rows = [...Object.entries(R.envs || {}), ["overall", R.overall]];
    const ks = [...new Set(rows.flatMap(([, m]) => Object.keys(m.pass_at_k || {})))].sort((a, b) => a - b);
    const head = ["env", "episodes", "tasks", "success", ...ks.map((k) => `pass@${k}`), "reward", "turns",
      "tool error rate", "format error rate", "truncation rate"];
    const body = rows.map(([name, m]) => "<tr>" + [
      `<td class="l">${name === "overall" ? "<b>overall</b>" : esc(name)}</td>`,
      `<td>${fmt(m.episodes)}</td>`, `<td>${fmt(m.tasks)}</td>`, `<td>${ci(m.success)}</td>`,
      ...ks.map((k) => `<td>${ci((m.pass_at_k || {})[k])}</td>`),
      `<td>${ci(m.reward)}</td>`, `<td>${fmt(m.turns, 2)}</td>`,
      `<td>${ci(m.tool_error_rate)}</td>`, `<td>${ci(m.format_error_rate)}</td>`, `<td>${ci(m.truncation_rate)}</td>`,
    ].join("") + "</tr>").join("");
    const intervals = Object.entries(R.intervals || {}).map(([k, v]) => `<li>${esc(k)}: ${esc(v)}</li>`).join("");
    const warns = (R.warnings || []).map((w) => `<li class="warn">${esc(w)}</li>`).join("");
    $("eval-body").innerHTML =
      `<p>policy <b>${esc(R.policy)}</b> · suite ${esc(R.suite || "–")} · ${R.samples} samples per task · ` +
      `sampling ${esc(JSON.stringify(R.sampling))}</p>` +
      `<table class="grid"><thead><tr>${head.map((h, k) => `<th${k ? "" : ' class="l"'}>${h}</th>`).join("")}</tr></thead><tbody>${body}</tbody></table>` +
      `<p>Intervals (95%):</p><ul>${intervals}</ul>${warns ? `<p>Warnings:</p><ul>${warns}</ul>` : ""}`;
  }

  // ---------------------------------------------------------------- wiring
  function showTab(tab) {
    state.tab = tab;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
    for (const p of ["episodes", "curves", "eval"]) $("page-" + p).hidden = p !== tab;
    if (tab === "curves") renderCurves();
    if (tab === "eval") renderEval();
  }

  function showSub(sub) {
    state.sub = sub;
    for (const b of document.querySelectorAll("#subtabs button")) b.classList.toggle("active", b.dataset.sub === sub);
    for (const s of ["conv", "tokens", "group"]) $("sub-" + s).hidden = s !== sub;
  }

  function init() {
    const kind = { run: "training run", eval: "eval", episodes: "episodes" }[META.kind];
    $("title").textContent = `${kind}: ${META.path}`;
    document.title = `tirgym view: ${META.path}`;
    $("tab-curves").hidden = !METRICS.length;
    $("tab-eval").hidden = !META.results;
    $("step-filter").hidden = !HAS_STEP;
    const envs = [...new Set(IDX.env)].sort();
    $("f-env").innerHTML += envs.map((e) => `<option>${esc(e)}</option>`).join("");
    $("f-sort").innerHTML = SORTS.map(([k, l]) => `<option value="${k}">${l}</option>`).join("");
    const TIPS = { tool_errors: "tool errors", format_errors: "format errors", tokens: "tokens in the sequence", success: "success" };
    $("ep-table").tHead.innerHTML = "<tr>" + COLS.map(([n, l, c]) =>
      `<th data-sort="${n}" title="${TIPS[n] || l}"${c ? ` class="${c}"` : ""}>${l}</th>`).join("") + "</tr>";
    $("layer").innerHTML = LAYERS.map(([k, l, on, why]) =>
      `<option value="${k}"${on() ? "" : " disabled"}>${l}${on() ? "" : ` (${why})`}</option>`).join("");

    const refilter = () => applyFilters();
    for (const id of ["f-env", "f-success", "f-sort", "f-desc", "f-toolerr", "f-fmterr"]) $(id).addEventListener("change", refilter);
    for (const id of ["f-rmin", "f-rmax", "f-tmin", "f-tmax", "f-lmin", "f-lmax", "f-smin", "f-smax", "f-group"])
      $(id).addEventListener("change", refilter);
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); state.search = $("f-search").value.trim(); applyFilters(); });
    $("f-search").addEventListener("search", () => { state.search = $("f-search").value.trim(); applyFilters(); });
    $("ep-table").tHead.addEventListener("click", (e) => {
      const key = e.target.dataset && e.target.dataset.sort;
      if (!key || !SORTS.some(([k]) => k === key)) return;
      if ($("f-sort").value === key) $("f-desc").checked = !$("f-desc").checked;
      else { $("f-sort").value = key; $("f-desc").checked = key !== "i"; }
      applyFilters();
    });
    $("ep-table").tBodies[0].addEventListener("click", (e) => {
      const tr = e.target.closest("tr.ep-row");
      if (tr) openEpisode(Number(tr.dataset.i));
    });
    $("pg-prev").addEventListener("click", () => { state.page--; renderList(); });
    $("pg-next").addEventListener("click", () => { state.page++; renderList(); });
    $("tabs").addEventListener("click", (e) => { if (e.target.dataset.tab) showTab(e.target.dataset.tab); });
    $("subtabs").addEventListener("click", (e) => { if (e.target.dataset.sub) showSub(e.target.dataset.sub); });
    $("layer").addEventListener("change", () => { state.layer = $("layer").value; renderTokens(); });
    $("token-view").addEventListener("mouseover", (e) => {
      const k = e.target.dataset && e.target.dataset.k;
      if (k !== undefined) tokenInfo(Number(k));
    });
    $("sub-group").addEventListener("click", (e) => {
      const card = e.target.closest(".card");
      if (card) openEpisode(Number(card.dataset.i));
    });
    $("curve-pick").addEventListener("change", (e) => {
      const k = e.target.dataset.key;
      if (!k) return;
      if (e.target.checked) shown.add(k); else shown.delete(k);
      renderCurves();
    });
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" || state.current === null || !state.view) return;
      const pos = state.view.indexOf(state.current);
      const next = e.key === "j" ? pos + 1 : e.key === "k" ? pos - 1 : null;
      if (next === null || next < 0 || next >= state.view.length) return;
      state.page = Math.floor(next / PAGE);
      renderList();
      openEpisode(state.view[next]);
    });

    applyFilters();
    const m = /ep=(\d+)/.exec(location.hash);
    if (m && Number(m[1]) < N) openEpisode(Number(m[1]));
    // read by the browser tests and benchmarks/bench_view.py
    document.body.dataset.readyMs = performance.now().toFixed(1);
    document.body.dataset.ready = "1";
    loaded.then(() => {
      document.body.dataset.loadedMs = performance.now().toFixed(1);
      document.body.dataset.loaded = "1";
    });
  }

  init();
})();
