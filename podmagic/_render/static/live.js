// podmagic live view: the front end of podmagic/_render/_live.py (see its docstring for the
// messages and the data-podmagic selectors). Plain ES module, no build step.
//
// One store per run (keyed by run_id) holds the newest lines; it is filled by the model's
// custom messages even while no view shows, so a view that is re-created (a display update,
// a second view of the same output) renders at once from it, with its follow/filter state.

const STORES = new Map();
const MAX_STORES = 20;
const DECODER = new TextDecoder();
// Lines a view keeps drawn while it follows the tail (see render's draw).
const FOLLOW_LINES = 500;
// Past this many pods the chips are counts per status (with a control to show every pod's):
// hundreds of chips would push the filters and the lines off the screen.
const CHIP_LIMIT = 24;
// The order of the status counts.
const STATUSES = ["running", "queued", "ok", "failed", "error", "timeout", "cancelled", "not started", "skipped"];

function storeFor(model) {
  const id = model.get("run_id") || "";
  let store = STORES.get(id);
  if (!store) {
    store = {
      lines: [], // [pod, stream, text], the newest max_lines
      next: 0, // index of the line after the last one held (lines before lines[0]: dropped)
      views: new Set(),
      ui: { follow: true, pod: "", stream: "", scrollTop: 0, allChips: false },
      skew: 0, // browser clock minus kernel clock, seconds
      heard: Date.now(), // when the kernel last sent something (a batch, snapshot or beat)
      lost: "", // why the run's kernel is taken for gone (see lose): its views say so
      lostAt: 0, // browser clock, seconds, when it was lost: the elapsed time stops there
      silent: false, // lost only for silence: the next message from the kernel undoes it
    };
    STORES.set(id, store);
    if (STORES.size > MAX_STORES) STORES.delete(STORES.keys().next().value);
  }
  return store;
}

// The [pod, stream, text] lines of a batch or snapshot: msg.g counts the lines of each run of
// one pod and stream ([pod, stream, count, ...]), the first buffer holds all their texts
// joined by newlines (UTF-8).
function linesOf(msg, buffers) {
  const index = Array.isArray(msg.g) ? msg.g : [];
  if (!index.length || !buffers || !buffers.length) return [];
  const texts = DECODER.decode(buffers[0]).split("\n");
  const lines = [];
  let at = 0;
  for (let i = 0; i + 2 < index.length; i += 3) {
    for (let n = 0; n < index[i + 2]; n += 1) lines.push([index[i], index[i + 1], texts[at++] ?? ""]);
  }
  return lines;
}

// The view's model has lost its kernel (restarted, dead, or silent far longer than its beats):
// the run it shows is not going on anywhere the page can see, so its views stop their clock
// and say so instead of showing a run that ticks on forever. Only while the run is running.
function lose(store, model, reason, silent) {
  if (store.lost && !store.silent) return; // a restart outranks silence
  if ((model.get("state") || "running") !== "running") return;
  store.lost = reason;
  store.lostAt = store.lostAt && store.silent ? store.lostAt : Date.now() / 1000;
  store.silent = silent;
  for (const view of [...store.views]) view.lost();
}

function receive(store, model, msg, buffers) {
  if (!msg || typeof msg !== "object") return;
  store.heard = Date.now();
  if (store.lost && store.silent) {
    // Only busy: the kernel speaks again.
    store.lost = "";
    store.lostAt = 0;
    store.silent = false;
    for (const view of [...store.views]) view.lost();
  }
  if (msg.k !== "batch" && msg.k !== "snapshot") return; // "beat": only heard
  if (msg.st && typeof msg.st === "object") {
    // The state that changed rides in the batch (the kernel sends no update message for
    // it): set here, the views' change handlers draw it, before the lines that need it.
    for (const [name, value] of Object.entries(msg.st)) model.set(name, value);
  }
  const max = Math.max(1, model.get("max_lines") || 5000);
  const snapshot = msg.k === "snapshot";
  if (snapshot) {
    store.lines = [];
    store.next = msg.s;
    if (typeof msg.now === "number") store.skew = Date.now() / 1000 - msg.now;
  } else if (!Array.isArray(msg.g)) {
    return; // state only
  }
  let index = msg.s;
  for (const entry of linesOf(msg, buffers)) {
    if (index >= store.next) {
      store.lines.push(entry);
      store.next = index + 1;
    }
    index += 1;
  }
  const excess = store.lines.length - max;
  if (excess > 0) {
    store.lines.splice(0, excess);
  }
  for (const view of [...store.views]) view.update(snapshot); // a snapshot: redraw all
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function themeOf(root) {
  const flag = document.body && document.body.dataset.jpThemeLight;
  if (flag === "true") return "light";
  if (flag === "false") return "dark";
  // No JupyterLab flag (VS Code, Colab, ...): judge the first opaque background.
  for (let node = root; node && node.nodeType === 1; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    const match = colour && colour.match(/rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?/);
    if (match && (match[4] === undefined || Number(match[4]) > 0.5)) {
      const [r, g, b] = [match[1], match[2], match[3]].map(Number);
      return 0.299 * r + 0.587 * g + 0.114 * b < 128 ? "dark" : "light";
    }
  }
  return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches
    ? "dark"
    : "light";
}

function seconds(value) {
  return `${Math.max(0, value).toFixed(1)} s`;
}

function render({ model, el: host }) {
  const store = storeFor(model);
  const ui = store.ui;
  const root = el("div", { class: "podmagic-live", "data-podmagic": "live" });
  const header = el("div", { class: "pm-header", "data-podmagic": "header" });
  const command = el("code", { "data-podmagic": "command" });
  const where = el("div", { class: "pm-where", "data-podmagic": "where" });
  header.append(command, where);
  const bar = el("div", { class: "pm-bar" });
  const status = el("span", { class: "pm-status", "data-podmagic": "status" });
  const progress = el("progress", { "data-podmagic": "progress", max: "1", value: "0" });
  const progressText = el("span", { "data-podmagic": "progress-text" });
  const elapsed = el("span", { class: "pm-elapsed", "data-podmagic": "elapsed" });
  bar.append(status, progress, progressText, elapsed);
  const chips = el("div", { class: "pm-chips", "data-podmagic": "chips" });
  const chipsToggle = el("button", { type: "button", class: "pm-chips-toggle", "data-podmagic": "chips-toggle", hidden: "" });
  const tools = el("div", { class: "pm-tools" });
  const podFilter = el("select", { "data-podmagic": "filter-pod", "aria-label": "pod" });
  const streamFilter = el("select", { "data-podmagic": "filter-stream", "aria-label": "stream" });
  for (const [value, label] of [["", "stdout + stderr"], ["1", "stdout"], ["2", "stderr"]]) {
    streamFilter.append(el("option", { value }, label));
  }
  const follow = el("button", { type: "button", "data-podmagic": "follow" }, "follow ↓");
  tools.append(podFilter, streamFilter, follow);
  const box = el("div", { class: "pm-lines", "data-podmagic": "lines", tabindex: "0" });
  const marker = el("div", { class: "pm-dropped", "data-podmagic": "dropped", hidden: "" });
  box.append(marker);
  root.append(header, bar, chips, tools, box);
  host.append(root);

  let theme = "";
  let labels = [];
  let width = 0; // the longest label: lines line up in the monospace box

  function applyTheme() {
    const next = themeOf(host);
    if (next === theme) return;
    theme = next;
    root.dataset.theme = theme;
    const palette = (model.get("palette") || {}).pods || {};
    const colours = palette[theme] || palette.light || ["currentColor"];
    colours.forEach((colour, i) => root.style.setProperty(`--pm-c${i}`, colour));
    root.style.setProperty("--pm-ncolours", String(colours.length));
    root._colours = colours.length;
    const error = ((model.get("palette") || {}).error || {})[theme];
    if (error) root.style.setProperty("--pm-error", error);
  }

  function colourOf(pod) {
    return `var(--pm-c${pod % (root._colours || 1)})`;
  }

  function visible(pod, stream) {
    return (ui.pod === "" || String(pod) === ui.pod) && (ui.stream === "" || String(stream) === ui.stream);
  }

  // A line is three elements: the pod's label in its colour, the separator (a text node: on
  // stderr the line's error colour), the text.
  function lineNode([pod, stream, text]) {
    const node = el("div", { class: stream === 2 ? "pm-line pm-err" : "pm-line", "data-podmagic": "line", "data-pod": String(pod), "data-stream": String(stream) });
    const name = el("span", { class: "pm-pod", "data-podmagic": "line-pod" }, (labels[pod] || `#${pod}`).padEnd(width));
    name.style.color = colourOf(pod);
    const body = el("span", { class: "pm-text", "data-podmagic": "line-text" }, text);
    node.append(name, stream === 2 ? " ! " : " | ", body);
    if (!visible(pod, stream)) node.hidden = true;
    return node;
  }

  // The box holds the store's lines first … next - 1 (counted from the run's first line).
  // While it follows the tail with no filter, only the newest FOLLOW_LINES of them: nobody
  // reads thousands of lines flying by, and a page that draws fewer keeps up with fast
  // output. Scrolling up (or filtering) draws the store's earlier lines above them, and the
  // browser's scroll anchoring keeps what is in view in place. Lines are drawn once per
  // animation frame, however many batches came since the last one; a hidden page draws
  // nothing until it shows again.
  let first = 0;
  let next = 0;
  let full = true; // redraw everything at the next frame
  let frame = 0;

  function storeStart() {
    return store.next - store.lines.length;
  }

  function firstToDraw() {
    const windowed = ui.follow && ui.pod === "" && ui.stream === "";
    return Math.max(storeStart(), windowed ? store.next - FOLLOW_LINES : 0);
  }

  function nodes(from, to) {
    const fragment = document.createDocumentFragment();
    const base = storeStart();
    for (let i = from; i < to; i += 1) fragment.append(lineNode(store.lines[i - base]));
    return fragment;
  }

  function setMarker() {
    const dropped = storeStart();
    marker.hidden = first === 0;
    marker.textContent = `… ${first} earlier line${first === 1 ? "" : "s"}` + (first === dropped ? " dropped" : "");
  }

  function scrollToEnd() {
    if (ui.follow) box.scrollTop = box.scrollHeight;
  }

  // The first `count` lines, in one operation (one by one, each removal costs a layout).
  function removeLines(count) {
    if (count <= 0 || !marker.nextSibling) return;
    const range = document.createRange();
    range.setStartAfter(marker);
    if (count >= box.childElementCount - 1) range.setEndAfter(box.lastChild);
    else range.setEndBefore(box.children[count + 1]);
    range.deleteContents();
  }

  function redraw() {
    full = false;
    removeLines(box.childElementCount - 1);
    first = firstToDraw();
    next = store.next;
    box.append(nodes(first, next));
    setMarker();
    if (ui.follow) scrollToEnd();
    else box.scrollTop = ui.scrollTop;
  }

  // Following stopped or a filter was set: the store's lines before the first drawn one too.
  function extend() {
    const from = firstToDraw();
    if (full || from >= first) return;
    box.insertBefore(nodes(from, first), marker.nextSibling);
    first = from;
    setMarker();
  }

  function draw() {
    frame = 0;
    // Out of the page (a windowed notebook, or a view replaced by a display update):
    // draw nothing now, redraw from the store when back.
    if (!host.isConnected) return void (full = true);
    const from = Math.max(first, firstToDraw());
    if (full || from >= next) return redraw();
    removeLines(from - first);
    box.append(nodes(next, store.next));
    first = from;
    next = store.next;
    setMarker();
    scrollToEnd();
  }

  const view = {
    update(redrawAll) {
      if (redrawAll) full = true;
      if (!frame) frame = requestAnimationFrame(draw);
    },
    lost() {
      onState();
    },
  };

  function setFollow(value) {
    ui.follow = value;
    follow.setAttribute("aria-pressed", value ? "true" : "false");
    follow.classList.toggle("pm-active", value);
  }

  function applyFilters() {
    podFilter.value = ui.pod;
    streamFilter.value = ui.stream;
    for (const node of box.querySelectorAll('[data-podmagic="line"]')) {
      node.hidden = !visible(node.dataset.pod, node.dataset.stream);
    }
    for (const chip of chips.querySelectorAll('[data-podmagic="chip"]')) {
      const pressed = chip.dataset.index !== "" && chip.dataset.index === ui.pod;
      chip.setAttribute("aria-pressed", pressed ? "true" : "false");
    }
    extend();
    scrollToEnd();
  }

  function onHeader() {
    const h = model.get("header") || {};
    command.textContent = h.command || "";
    where.textContent = h.where || "";
  }

  function onPods() {
    const pods = model.get("pods") || [];
    const running = pods.filter((p) => p[1] !== "skipped");
    const relabel = running.some((p, i) => labels[i] !== p[0]) || running.length !== labels.length;
    labels = running.map((p) => p[0]);
    width = Math.max(0, ...labels.map((label) => label.length));
    const many = pods.length > CHIP_LIMIT;
    chipsToggle.hidden = !many;
    chipsToggle.textContent = ui.allChips ? "fewer ▴" : `all ${pods.length} pods ▾`;
    chipsToggle.setAttribute("aria-expanded", ui.allChips ? "true" : "false");
    root.classList.toggle("pm-many-chips", many && ui.allChips);
    if (many && !ui.allChips) {
      const counts = new Map();
      for (const [, state] of pods) counts.set(state, (counts.get(state) || 0) + 1);
      const order = [...counts.keys()].sort((a, b) => (STATUSES.indexOf(a) + 1 || 99) - (STATUSES.indexOf(b) + 1 || 99));
      chips.replaceChildren(
        ...order.map((state) => {
          const chip = el("span", { class: "pm-chip pm-count", "data-podmagic": "chip-count", "data-status": state });
          chip.append(`${counts.get(state)} `, el("span", { class: "pm-chip-state" }, state));
          return chip;
        }),
        chipsToggle,
      );
    } else chips.replaceChildren(
      ...pods.map(([label, state, detail], i) => {
        const chip = el("button", {
          type: "button",
          class: "pm-chip",
          "data-podmagic": "chip",
          "data-pod": label,
          "data-status": state,
          "data-index": state === "skipped" ? "" : String(i),
          title: detail ? `${label}: ${detail}` : `${label}: ${state}`,
          "aria-pressed": state !== "skipped" && ui.pod === String(i) ? "true" : "false",
        });
        const dot = el("span", { class: "pm-dot" }, "●");
        if (state !== "skipped") dot.style.color = colourOf(i);
        chip.append(dot, ` ${label} `, el("span", { class: "pm-chip-state" }, state));
        return chip;
      }),
      ...(many ? [chipsToggle] : []),
    );
    if (relabel) {
      const current = podFilter.value;
      podFilter.replaceChildren(el("option", { value: "" }, "all pods"), ...labels.map((label, i) => el("option", { value: String(i) }, label)));
      podFilter.value = current;
      if (store.lines.length) redraw();
    }
  }

  function onProgress() {
    const p = model.get("progress") || {};
    progress.max = Math.max(1, p.total || 0);
    progress.value = Math.min(p.done || 0, p.total || 0);
    progressText.textContent = `${p.done || 0} / ${p.total || 0} done` + (p.failed ? ` · ${p.failed} failed` : "");
    root.classList.toggle("pm-has-failed", Boolean(p.failed));
  }

  function tick() {
    const started = model.get("started") || 0;
    const ended = model.get("ended") || 0;
    if (!started) return (elapsed.textContent = "");
    const now = ended || (store.lost ? store.lostAt : Date.now() / 1000) - store.skew;
    elapsed.textContent = seconds(now - started);
    // The kernel beats every beat_every seconds while the run goes on, even when it has no
    // output: silence far past that means it is gone (or stuck), not a quiet run.
    const limit = Math.max(15, 3 * (model.get("beat_every") || 5));
    if (!ended && Date.now() - store.heard > limit * 1000) {
      const quiet = Math.round((Date.now() - store.heard) / 1000);
      lose(store, model, `no word from the kernel for ${quiet} s: it may be busy, restarted or gone`, true);
    }
  }

  let timer = null;
  function onState() {
    const state = store.lost && (model.get("state") || "running") === "running" ? "lost" : model.get("state") || "running";
    root.dataset.state = state;
    status.textContent = state === "lost" ? store.lost : state;
    tick();
    if (state === "running" && timer === null) timer = setInterval(tick, 200);
    if (state !== "running" && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  box.addEventListener("scroll", () => {
    ui.scrollTop = box.scrollTop;
    const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 8;
    if (atEnd === ui.follow) return;
    setFollow(atEnd);
    if (!atEnd) extend();
  });
  follow.addEventListener("click", () => {
    setFollow(true);
    scrollToEnd();
  });
  podFilter.addEventListener("change", () => {
    ui.pod = podFilter.value;
    applyFilters();
  });
  streamFilter.addEventListener("change", () => {
    ui.stream = streamFilter.value;
    applyFilters();
  });
  chipsToggle.addEventListener("click", (event) => {
    event.stopPropagation();
    ui.allChips = !ui.allChips;
    onPods();
  });
  chips.addEventListener("click", (event) => {
    const chip = event.target.closest('[data-podmagic="chip"]');
    if (!chip || chip.dataset.index === "") return;
    ui.pod = ui.pod === chip.dataset.index ? "" : chip.dataset.index;
    applyFilters();
  });

  const observer = new MutationObserver(() => {
    const before = theme;
    applyTheme();
    if (theme !== before) onPods();
  });
  if (document.body) observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });

  const handlers = [
    ["change:header", onHeader],
    ["change:pods", onPods],
    ["change:progress", onProgress],
    ["change:state", onState],
    ["change:started", tick],
    ["change:ended", tick],
  ];
  for (const [name, handler] of handlers) model.on(name, handler);

  applyTheme();
  onHeader();
  onPods();
  onProgress();
  onState();
  setFollow(ui.follow);
  applyFilters();
  redraw();
  // The theme is known for sure only once the view is in the page.
  requestAnimationFrame(() => {
    const before = theme;
    applyTheme();
    if (theme !== before) onPods(), redraw();
    scrollToEnd();
  });
  store.views.add(view);

  return () => {
    store.views.delete(view);
    if (frame) cancelAnimationFrame(frame);
    for (const [name, handler] of handlers) model.off(name, handler);
    observer.disconnect();
    if (timer !== null) clearInterval(timer);
  };
}

function initialize({ model }) {
  const store = storeFor(model);
  const onMessage = (msg, buffers) => receive(store, model, msg, buffers);
  model.on("msg:custom", onMessage);
  // ipywidgets' manager marks every model's comm dead when its kernel restarts (JupyterLab,
  // Notebook 7: "comm_live_update"); a model closed while its run is running went the same
  // way (its comm closed: "comm:close", "destroy").
  const onGone = () => lose(store, model, "kernel restarted or gone: run not finished", false);
  for (const name of ["comm_live_update", "comm:close", "destroy"]) model.on(name, onGone);
  // A model created late (a reloaded page) has none of the lines sent so far: ask for them.
  model.send({ k: "hello" });
  return () => {
    model.off("msg:custom", onMessage);
    for (const name of ["comm_live_update", "comm:close", "destroy"]) model.off(name, onGone);
  };
}

export default { initialize, render };
