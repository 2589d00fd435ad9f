// kvnode console. Plain JavaScript, no build step: every request goes through the node's
// public HTTP API, and everything shown from the cluster is put on the page as text
// (textContent), never as HTML.
"use strict";

const REFRESH_MS = 700; // the cluster view: a node going down shows within a second or two
const ASK_TIMEOUT_MS = 900; // one status request; longer means "down" for this refresh
const COORDINATION_REFRESH_MS = 2000;
const LIST_PAGE = 1000;
const MAX_EVENTS_SHOWN = 500;
const WATCH_RETRY_MS = 500;
const MAX_LEASES_DETAILED = 100;

const state = {
  token: "", // in this page's memory only: never stored, never in a URL
  endpoints: [location.origin], // this node first, then the members it lists
  reachedByBrowser: new Set(), // members whose own /status this page has read
};

// -- requests ---------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error ? body.error : "";
    this.body = body || {};
  }
}

/** One request to one node: `base` is a node's origin (this node's by default). */
async function ask(path, { method = "GET", body, base = location.origin, timeout = 5000, signal } = {}) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (typeof body === "object" && body !== null && !(body instanceof Uint8Array)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const timer = new AbortController();
  const timeoutId = setTimeout(() => timer.abort(), timeout);
  if (signal) signal.addEventListener("abort", () => timer.abort());
  try {
    return await fetch(base + path, { method, body, headers, signal: timer.signal, cache: "no-store" });
  } finally {
    clearTimeout(timeoutId);
  }
}

/** A request whose reply is JSON; a failure becomes an ApiFailure with the node's message. */
async function askJson(path, options) {
  const response = await ask(path, options);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { message: text }; }
  if (!response.ok) throw new ApiFailure(response.status, body);
  return { body, headers: response.headers };
}

/** Ask this node, then each other member, until one answers (a node may be down); the
 *  reply says which node (`base`) answered. */
async function askAny(path, options) {
  let last;
  for (const base of state.endpoints) {
    try {
      return { ...(await askJson(path, { ...options, base })), base };
    } catch (error) {
      if (error instanceof ApiFailure && error.status < 500) throw error; // the answer
      last = error;
    }
  }
  throw last;
}

function keyPath(key) {
  return "/kv/" + encodeURIComponent(key);
}

function say(text, kind = "error") {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = text ? kind : "";
}

function explain(error) {
  if (error instanceof ApiFailure) {
    if (error.status === 401) return "This cluster needs a token: type it above and press Use.";
    return `${error.code || "error"} (${error.status}): ${error.message}`;
  }
  return `no answer: ${error.message || error}`;
}

// -- building the page ------------------------------------------------------------------

/** An element with text children only: nothing from the cluster is ever parsed as HTML. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "className") node.className = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function decodeText(bytes) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (_) {
    return null;
  }
}

function toBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text) {
  const binary = atob(text.replace(/\s+/g, ""));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function toHex(bytes) {
  const lines = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = Array.from(bytes.slice(at, at + 16), (b) => b.toString(16).padStart(2, "0"));
    lines.push(at.toString(16).padStart(8, "0") + "  " + row.join(" "));
  }
  return lines.join("\n");
}

function secondsLeft(expireAtMs) {
  if (!expireAtMs) return "none";
  return `${Math.max(0, (expireAtMs - Date.now()) / 1000).toFixed(1)} s`;
}

/** A listed item's or an event's value as text (base64 is decoded and shown as such). */
function shownValue(item) {
  if (item.value !== undefined) return item.value;
  if (item.value_base64 !== undefined) {
    const bytes = fromBase64(item.value_base64);
    return decodeText(bytes) ?? `base64:${item.value_base64}`;
  }
  return "";
}

// -- views ------------------------------------------------------------------------------

const views = {};

function show(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.classList.toggle("active", tab.dataset.view === name);
  }
  for (const section of document.querySelectorAll(".view")) {
    section.classList.toggle("active", section.id === `view-${name}`);
  }
  if (location.hash.slice(1) !== name) history.replaceState(null, "", `#${name}`);
  say("");
  views[name]?.opened?.();
}

// -- cluster ----------------------------------------------------------------------------

views.cluster = {
  async refresh() {
    let listing;
    try {
      listing = await askAny("/cluster/members", { timeout: ASK_TIMEOUT_MS });
    } catch (error) {
      document.getElementById("cluster-source").textContent = `No member answered: ${explain(error)}`;
      return;
    }
    const members = listing.body;
    const listedBy = listing.headers.get("X-KV-Node") || "";
    state.endpoints = [location.origin, ...members.map((m) => m.http_url).filter((u) => u && u !== location.origin)];
    const statuses = await Promise.all(members.map((member) => this.statusOf(member, listedBy, listing.base)));
    const leaderCommit = Math.max(0, ...statuses.filter((s) => s && s.role === "leader").map((s) => s.commit_index));
    const rows = members.map((member, at) => {
      const status = statuses[at];
      const asked = status !== null;
      // A member this browser has never reached (an advertised name only the nodes can
      // resolve, as in Docker) is shown as the listing node sees it. One it has reached
      // and no longer can is down, at once: the nodes notice a paused peer more slowly.
      if (asked) state.reachedByBrowser.add(member.id);
      const seenByListing = !state.reachedByBrowser.has(member.id) && member.reachable;
      const up = asked || seenByListing;
      const leader = member.is_leader || (asked && status.role === "leader");
      const applied = asked ? status.applied_index : member.applied_index;
      const lag = leaderCommit && applied !== undefined && applied !== null ? Math.max(0, leaderCommit - applied) : "";
      const row = el(
        "tr",
        { "data-member": member.id },
        el("td", {}, member.id),
        el("td", {}, member.http_url || "unknown"),
        el("td", {}, asked ? status.role : leader ? "leader" : "?"),
        el("td", {}, asked ? status.term : ""),
        el("td", {}, asked ? status.commit_index : ""),
        el("td", {}, applied ?? ""),
        el("td", {}, lag),
        el("td", {}, member.reachable ? "yes" : "no"),
        el("td", { className: up ? "up" : "down-text" }, asked ? "up" : up ? `up (seen by ${listedBy})` : "down"),
      );
      if (leader) row.classList.add("leader");
      if (!up) row.classList.add("down");
      return row;
    });
    fill(document.querySelector("#members tbody"), rows);
    const cluster = listing.headers.get("X-KV-Cluster");
    document.getElementById("cluster-id").textContent = cluster ? `cluster ${cluster}` : "";
    document.getElementById("cluster-source").textContent =
      `Members as ${listedBy || "a node"} lists them, ${new Date().toLocaleTimeString()}.`;
  },

  /** A member's own /status, or null when it does not answer in time. The node that
   *  listed the members is asked where it answered (its advertised URL may be a name
   *  this browser cannot reach). */
  async statusOf(member, listedBy, listedAt) {
    const base = member.id === listedBy ? listedAt : member.http_url;
    if (!base) return null;
    try {
      return (await askJson("/status", { base, timeout: ASK_TIMEOUT_MS })).body;
    } catch (_) {
      return null;
    }
  },
};

// -- keys -------------------------------------------------------------------------------

views.keys = {
  prefix: "",
  nextStartAfter: "",
  shown: null, // {key, revision, bytes, lease, expireAt} of the key in the detail pane

  opened() {
    this.list(this.prefix);
  },

  async list(prefix, startAfter = "") {
    this.prefix = prefix;
    document.getElementById("goto-prefix").value = prefix;
    this.drawCrumbs();
    const query = new URLSearchParams({ prefix, limit: String(LIST_PAGE) });
    if (startAfter) query.set("start_after", startAfter);
    let reply;
    try {
      reply = await askAny(`/kv/?${query}`);
    } catch (error) {
      say(explain(error));
      fill(document.querySelector("#listing tbody"), []);
      document.getElementById("more").hidden = true;
      return;
    }
    const more = reply.headers.get("X-KV-More") === "true";
    this.nextStartAfter = more ? decodeURIComponent(reply.headers.get("X-KV-Next-Start-After")) : "";
    document.getElementById("more").hidden = !more;
    const tbody = document.querySelector("#listing tbody");
    const rows = startAfter ? [...tbody.children] : [];
    const folders = new Set(startAfter ? [...tbody.querySelectorAll("[data-folder]")].map((r) => r.dataset.folder) : []);
    for (const item of reply.body) {
      const rest = item.key.slice(prefix.length);
      const slash = rest.indexOf("/");
      if (slash >= 0 && slash < rest.length - 1) {
        const folder = prefix + rest.slice(0, slash + 1);
        if (folders.has(folder)) continue;
        folders.add(folder);
        rows.push(el("tr", { "data-folder": folder },
          el("td", {}, el("button", { className: "link folder", type: "button", onclick: () => this.list(folder) }, rest.slice(0, slash + 1))),
          el("td", {}, ""), el("td", {}, "")));
      } else {
        rows.push(el("tr", { "data-key": item.key },
          el("td", {}, el("button", { className: "link", type: "button", onclick: () => this.open(item.key) }, rest)),
          el("td", {}, item.revision),
          el("td", {}, item.expire_at ? secondsLeft(item.expire_at) : "")));
      }
    }
    fill(tbody, rows);
  },

  drawCrumbs() {
    const crumbs = document.getElementById("crumbs");
    const parts = [el("button", { type: "button", onclick: () => this.list("") }, "/")];
    let at = 0;
    while (true) {
      const slash = this.prefix.indexOf("/", at);
      if (slash < 0) break;
      const prefix = this.prefix.slice(0, slash + 1);
      parts.push(el("button", { type: "button", onclick: () => this.list(prefix) }, this.prefix.slice(at, slash + 1)));
      at = slash + 1;
    }
    crumbs.replaceChildren(el("span", {}, "Folder: "), ...parts);
  },

  async open(key) {
    let response;
    try {
      response = await ask(keyPath(key));
    } catch (error) {
      say(explain(error));
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      say(explain(new ApiFailure(response.status, body)));
      if (response.status === 404) this.list(this.prefix);
      return;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    const headers = response.headers;
    this.shown = {
      key,
      bytes,
      revision: Number(headers.get("X-KV-Revision")),
      createRevision: Number(headers.get("X-KV-Create-Revision")),
      expireAt: Number(headers.get("X-KV-Expire-At") || 0),
      lease: headers.get("X-KV-Lease") || "",
    };
    this.drawDetail();
  },

  drawDetail() {
    const shown = this.shown;
    document.getElementById("editor").hidden = true;
    document.getElementById("confirm-delete").hidden = true;
    document.getElementById("detail").hidden = false;
    document.getElementById("detail-key").textContent = shown.key;
    document.getElementById("detail-revision").textContent = shown.revision;
    document.getElementById("detail-create-revision").textContent = shown.createRevision;
    document.getElementById("detail-ttl").textContent = secondsLeft(shown.expireAt);
    document.getElementById("detail-lease").textContent = shown.lease || "none";
    document.getElementById("detail-size").textContent = `${shown.bytes.length} bytes`;
    const text = decodeText(shown.bytes);
    document.getElementById("detail-value").hidden = text === null;
    document.getElementById("detail-value").textContent = text ?? "";
    document.getElementById("detail-binary").hidden = text !== null;
    document.getElementById("detail-hex").textContent = text === null ? toHex(shown.bytes) : "";
    document.getElementById("detail-base64").textContent = text === null ? toBase64(shown.bytes) : "";
  },

  tickTtl() {
    if (this.shown && this.shown.expireAt && !document.getElementById("detail").hidden) {
      document.getElementById("detail-ttl").textContent = secondsLeft(this.shown.expireAt);
    }
  },

  edit(creating) {
    const shown = creating ? null : this.shown;
    this.editing = shown;
    document.getElementById("detail").hidden = true;
    document.getElementById("editor").hidden = false;
    document.getElementById("editor-title").textContent = creating ? "New key" : "Edit";
    const keyInput = document.getElementById("editor-key");
    keyInput.value = creating ? this.prefix : shown.key;
    keyInput.readOnly = !creating;
    const text = shown ? decodeText(shown.bytes) : "";
    document.getElementById("editor-format").value = text === null ? "base64" : "text";
    document.getElementById("editor-value").value = text === null ? toBase64(shown.bytes) : text;
    // A PUT without a ttl would drop the key's deadline: keep what is left of it.
    const left = shown && shown.expireAt ? Math.ceil((shown.expireAt - Date.now()) / 1000) : 0;
    document.getElementById("editor-ttl").value = left > 0 ? String(left) : "";
    document.getElementById("editor-ttl").disabled = Boolean(shown && shown.lease);
    document.getElementById("editor-note").textContent = creating
      ? "Created only if no key of that name exists."
      : `Saved only if the key is still at revision ${shown.revision}; a change made meanwhile is reported, not overwritten.` +
        (shown.lease ? ` It stays attached to lease ${shown.lease}.` : "");
  },

  async save() {
    const key = document.getElementById("editor-key").value;
    const raw = document.getElementById("editor-value").value;
    const ttl = document.getElementById("editor-ttl").value.trim();
    let bytes;
    try {
      bytes = document.getElementById("editor-format").value === "base64" ? fromBase64(raw) : new TextEncoder().encode(raw);
    } catch (_) {
      say("The value is not valid base64.");
      return;
    }
    if (!key) {
      say("Give the key a name.");
      return;
    }
    const shown = this.editing;
    try {
      if (shown && shown.lease) {
        await this.saveLeased(shown, bytes);
      } else {
        const query = new URLSearchParams(shown ? { prev_revision: String(shown.revision) } : { prev_exist: "false" });
        if (ttl) query.set("ttl", ttl);
        await askJson(`${keyPath(key)}?${query}`, { method: "PUT", body: bytes });
      }
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 412) {
        say(shown
          ? `Conflict: ${key} changed since it was shown (revision ${shown.revision}, now ${error.body.current_revision || "deleted"}). Nothing was written; open it again to see the new value.`
          : `${key} already exists. Nothing was written.`);
      } else {
        say(explain(error));
      }
      return;
    }
    say(`Saved ${key}.`, "ok");
    await this.list(this.prefix);
    await this.open(key);
  },

  /** A leased key keeps its lease: a compare-and-swap by transaction (a PUT with a lease
   *  takes no condition). */
  async saveLeased(shown, bytes) {
    const text = decodeText(bytes);
    const put = { key: shown.key, lease: Number(shown.lease) };
    if (text === null) put.value_base64 = toBase64(bytes);
    else put.value = text;
    const { body } = await askJson("/txn", {
      method: "POST",
      body: {
        compare: [{ key: shown.key, target: "revision", op: "==", value: shown.revision }],
        success: [{ put }],
        failure: [{ get: { key: shown.key } }],
      },
    });
    if (!body.succeeded) {
      const current = body.responses[0].get;
      throw new ApiFailure(412, { error: "compare_failed", current_revision: current.found ? current.revision : 0 });
    }
  },

  askDelete() {
    document.getElementById("confirm-key").textContent = this.shown.key;
    document.getElementById("confirm-delete").hidden = false;
  },

  async remove() {
    const shown = this.shown;
    document.getElementById("confirm-delete").hidden = true;
    try {
      await askJson(`${keyPath(shown.key)}?prev_revision=${shown.revision}`, { method: "DELETE" });
    } catch (error) {
      say(error instanceof ApiFailure && error.status === 412
        ? `Conflict: ${shown.key} changed since it was shown (revision ${shown.revision}). Nothing was deleted.`
        : explain(error));
      return;
    }
    say(`Deleted ${shown.key}.`, "ok");
    document.getElementById("detail").hidden = true;
    this.shown = null;
    await this.list(this.prefix);
  },
};

// -- watch ------------------------------------------------------------------------------

views.watch = {
  running: null, // {stop: AbortController, next: revision to resume from}

  async start() {
    this.stop();
    const target = document.getElementById("watch-target").value;
    const isPrefix = document.getElementById("watch-prefix").checked;
    if (!target && !isPrefix) {
      say("Give a key, or tick the box to watch a prefix (empty: every key).");
      return;
    }
    await views.cluster.refresh(); // learn every member first: the watch moves to them
    const run = { stop: new AbortController(), next: 0, target, isPrefix };
    this.running = run;
    document.getElementById("watch-start").disabled = true;
    document.getElementById("watch-stop").disabled = false;
    fill(document.querySelector("#events tbody"), []);
    let endpoint = 0;
    while (this.running === run) {
      const base = state.endpoints[endpoint % state.endpoints.length];
      const outcome = await this.follow(run, base);
      if (this.running !== run) break;
      if (outcome === "compacted") {
        this.setState(`Stopped: the changes from revision ${run.next} are no longer retained. Start again to watch from now.`);
        this.stop();
        break;
      }
      if (outcome === "refused") {
        this.stop();
        break;
      }
      endpoint += 1; // the node failed or left its leader: resume on the next one
      this.setState(`Lost ${base}; resuming from revision ${run.next || "now"} on another node...`);
      await new Promise((resolve) => setTimeout(resolve, WATCH_RETRY_MS));
    }
  },

  stop() {
    if (this.running) this.running.stop.abort();
    this.running = null;
    document.getElementById("watch-start").disabled = false;
    document.getElementById("watch-stop").disabled = true;
  },

  setState(text) {
    document.getElementById("watch-state").textContent = text;
  },

  /** One stream from one node until it ends; says how it ended. */
  async follow(run, base) {
    const query = new URLSearchParams({ watch: "stream" });
    if (run.next) query.set("from_revision", String(run.next));
    const path = run.isPrefix ? `/kv/?prefix=${encodeURIComponent(run.target)}&${query}` : `${keyPath(run.target)}?${query}`;
    let response;
    try {
      response = await ask(path, { base, timeout: 2 ** 31 - 1, signal: run.stop.signal });
    } catch (_) {
      return "lost";
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      if (response.status === 410) return "compacted";
      if (response.status < 500) {
        say(explain(new ApiFailure(response.status, body)));
        return "refused";
      }
      return "lost";
    }
    const node = response.headers.get("X-KV-Node") || base;
    if (!run.next) run.next = Number(response.headers.get("X-KV-Index")) + 1;
    this.setState(`Watching ${run.isPrefix ? "every key under " : ""}${JSON.stringify(run.target)} on ${node}, from revision ${run.next}.`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return "lost";
        buffered += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (!line) continue;
          const event = JSON.parse(line);
          if (event.type === "progress") {
            run.next = Math.max(run.next, event.revision + 1);
          } else if (event.type === "error") {
            return event.error === "revision_compacted" ? "compacted" : "lost";
          } else {
            run.next = Math.max(run.next, event.revision + 1);
            this.addEvent(event, node);
          }
        }
      }
    } catch (_) {
      return "lost";
    }
  },

  addEvent(event, node) {
    const tbody = document.querySelector("#events tbody");
    tbody.prepend(el("tr", {},
      el("td", {}, new Date().toLocaleTimeString()),
      el("td", {}, event.revision),
      el("td", { className: event.type }, event.type),
      el("td", {}, event.key),
      el("td", {}, shownValue(event)),
      el("td", {}, node)));
    while (tbody.children.length > MAX_EVENTS_SHOWN) tbody.lastElementChild.remove();
  },
};

// -- leases and locks -------------------------------------------------------------------

views.coordination = {
  opened() {
    this.refresh();
  },

  async refresh() {
    try {
      const [leases, locks, elections] = await Promise.all([
        askAny("/lease/"),
        askAny(`/kv/?prefix=locks/&limit=100000`),
        askAny(`/kv/?prefix=elections/&limit=100000`),
      ]);
      await this.drawLeases(leases.body);
      fill(document.querySelector("#locks tbody"), [
        ...this.queues("lock", "locks/", locks.body),
        ...this.queues("election", "elections/", elections.body),
      ]);
    } catch (error) {
      say(explain(error));
    }
  },

  /** Each lease with the keys attached to it (the list has only ids and deadlines: the
   *  first MAX_LEASES_DETAILED are asked for one by one). */
  async drawLeases(leases) {
    const detailed = await Promise.all(leases.slice(0, MAX_LEASES_DETAILED).map(async (lease) => {
      try {
        return (await askAny(`/lease/${lease.id}`)).body;
      } catch (_) {
        return lease; // expired or revoked meanwhile
      }
    }));
    const rows = [...detailed, ...leases.slice(MAX_LEASES_DETAILED)].map((lease) => el("tr", { "data-lease": lease.id },
      el("td", {}, lease.id),
      el("td", {}, `${lease.ttl} s`),
      el("td", {}, secondsLeft(lease.expire_at)),
      el("td", {}, lease.keys ? lease.keys.join(", ") || "none" : "")));
    fill(document.querySelector("#leases tbody"), rows);
  },

  /** One row per lock (election): its contenders in create order, the first holds it. */
  queues(kind, prefix, items) {
    const byName = new Map();
    for (const item of items) {
      const rest = item.key.slice(prefix.length);
      const slash = rest.lastIndexOf("/");
      if (slash < 0) continue;
      const name = rest.slice(0, slash);
      if (!byName.has(name)) byName.set(name, []);
      byName.get(name).push({ lease: rest.slice(slash + 1), token: item.create_revision });
    }
    return [...byName.entries()].sort().map(([name, queue]) => {
      queue.sort((a, b) => a.token - b.token);
      const [holder, ...waiting] = queue;
      return el("tr", { "data-lock": name },
        el("td", {}, kind),
        el("td", {}, name),
        el("td", {}, `lease ${holder.lease}, token ${holder.token}`),
        el("td", {}, waiting.map((w) => `lease ${w.lease} (token ${w.token})`).join(", ") || "none"));
    });
  },
};

// -- start ------------------------------------------------------------------------------

function start() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => show(tab.dataset.view));
  }
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = document.getElementById("token").value.trim();
    document.getElementById("token").value = "";
    document.getElementById("login-state").textContent = state.token ? "token in use (this page only)" : "no token";
    say("");
    views.cluster.refresh(); // the members, and so where to go when this node fails
    const current = location.hash.slice(1);
    views[current]?.opened?.();
  });
  const keys = views.keys;
  document.getElementById("goto").addEventListener("submit", (event) => {
    event.preventDefault();
    keys.list(document.getElementById("goto-prefix").value);
  });
  document.getElementById("more").addEventListener("click", () => keys.list(keys.prefix, keys.nextStartAfter));
  document.getElementById("new-key").addEventListener("click", () => keys.edit(true));
  document.getElementById("edit").addEventListener("click", () => keys.edit(false));
  document.getElementById("delete").addEventListener("click", () => keys.askDelete());
  document.getElementById("confirm-yes").addEventListener("click", () => keys.remove());
  document.getElementById("confirm-no").addEventListener("click", () => { document.getElementById("confirm-delete").hidden = true; });
  document.getElementById("cancel-edit").addEventListener("click", () => {
    document.getElementById("editor").hidden = true;
    if (keys.shown) keys.drawDetail();
  });
  document.getElementById("editor").addEventListener("submit", (event) => {
    event.preventDefault();
    keys.save();
  });
  document.getElementById("watch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    views.watch.start();
  });
  document.getElementById("watch-stop").addEventListener("click", () => {
    views.watch.stop();
    views.watch.setState("Stopped.");
  });
  const fromHash = () => {
    const name = location.hash.slice(1);
    show(views[name] ? name : "cluster");
  };
  window.addEventListener("hashchange", fromHash);
  fromHash();
  const refreshCluster = async () => {
    await views.cluster.refresh();
    setTimeout(refreshCluster, REFRESH_MS);
  };
  refreshCluster();
  setInterval(() => keys.tickTtl(), 200);
  setInterval(() => {
    if (document.getElementById("view-coordination").classList.contains("active")) views.coordination.refresh();
  }, COORDINATION_REFRESH_MS);
}

start();
