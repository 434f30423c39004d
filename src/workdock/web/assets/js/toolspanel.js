// The tools panel: exactly what the next turn of this chat gets, in collapsible groups by source
// and server, with a search; a server or source that failed shows in its group with its reason.
// "Refresh tools" asks the workspace agent to re-read its configuration and re-list its servers.
// Each tool, server and source has a switch: what is turned off is stored on the chat and left out
// from the next step on. Over the chat's tool budget most tools are "deferred": the model reaches
// them through find_tools; each says which it is. A per-user admin server (OAuth) shows the
// user's own sign-in: "Sign in" while it needs one, "Sign out" once signed in.

import { api } from "./api.js";
import { h, icon } from "./dom.js";
import { openSignIn } from "./signin.js";

const SOURCES = [
  ["builtin", "Built-in", "Files and commands in the workspace, run by its agent."],
  ["workspace", "Workspace servers", "From the workspace's .mcp.json."],
  ["admin", "Admin servers", "MCP servers configured by an admin: shared, or signed in to with your own account."],
];

export class ToolsPanel {
  constructor(view) {
    this.view = view;
    this.data = null;
    this.opened = new Map(); // group key → open, as the user left it (survives a refresh)
    this.content = h("div", { class: "panel-content" }, h("div", { class: "muted small pad" }, "Loading tools…"));
    this.summary = h("div", { class: "muted small tools-summary", "aria-live": "polite" });
    this.search = h("input", { class: "tools-search", type: "search", placeholder: "Search tools",
      "aria-label": "Search tools", autocomplete: "off", spellcheck: "false" });
    this.search.addEventListener("input", () => this.render());
    this.refreshButton = h("button", { class: "btn-ghost btn-sm", type: "button", onclick: () => this.refresh() },
      icon("refresh"), "Refresh tools");
    this.el = h("aside", { class: "tools-panel", "aria-label": "Tools" },
      h("header", { class: "panel-header" },
        h("div", {}, h("h2", {}, "Tools"), h("div", { class: "muted small" }, "What the next turn gets")),
        h("button", { class: "btn-icon", type: "button", title: "Close", "aria-label": "Close tools",
          onclick: () => view.toggleTools(false) }, icon("x"))),
      h("div", { class: "panel-toolbar" }, this.search, this.refreshButton),
      // The chat's approval policy: which of these tools' calls wait for the user.
      h("label", { class: "panel-approval small" }, h("span", {}, "Ask before a call"), view.policySelect),
      this.summary,
      this.content);
  }

  async refresh() {
    const chat = this.view.chat;
    if (!chat) return;
    this.refreshButton.disabled = true;
    this.refreshButton.classList.add("busy");
    try {
      await api.refreshWorkspace(chat.workspace_id);
      await this.view.loadTools();
      this.view.app.toast("Tools refreshed", "ok");
    } catch (error) {
      this.view.app.toast(`Refresh failed: ${error.message}`, "error");
    } finally {
      this.refreshButton.disabled = false;
      this.refreshButton.classList.remove("busy");
    }
  }

  showError(error) {
    this.content.replaceChildren(h("div", { class: "failure" }, icon("alert"),
      h("div", {}, h("strong", {}, "Could not list the tools"), h("div", { class: "small" }, error.message))));
  }

  show({ tools, failures, warnings, catalog, sign_ins: signIns }, workspace) {
    const own = new Map((signIns || []).map((s) => [s.server, s]));
    // A per-user server's failure carries the user's own state (needs_auth until they sign in).
    const mine = failures.map((f) => (f.source === "admin" && own.has(f.server) ? { ...f, state: own.get(f.server).state } : f));
    this.data = { tools, catalog, signIns: own, warnings: warnings || [], failures: [...mine, ...unavailableServers(workspace)] };
    this.render();
  }

  /** What the chat turned off, as stored on it. */
  disabled() {
    const stored = this.view.chat?.disabled_tools || {};
    return { sources: [...(stored.sources || [])], servers: [...(stored.servers || [])], tools: [...(stored.tools || [])] };
  }

  /** Turn a source, server or tool on or off for this chat; the next step gets the change. */
  async toggle(kind, key, on, input) {
    const disabled = this.disabled();
    const same = (a) => kind === "servers" ? a.source === key.source && a.server === key.server : a === key;
    disabled[kind] = disabled[kind].filter((item) => !same(item));
    if (!on) disabled[kind].push(key);
    input.disabled = true;
    try {
      this.view.chat = await api.patchChat(this.view.chatId, { disabled_tools: disabled });
      await this.view.loadTools();
    } catch (error) {
      input.checked = !on;
      this.view.app.toast(`Could not change the tools: ${error.message}`, "error");
    } finally {
      input.disabled = false;
    }
  }

  // Named "Use this tool" (not by the tool's name, which the row shows beside it): a switch named
  // after every tool would answer to any word of any tool name.
  switchFor(kind, key, on, label, blocked = false) {
    const what = { sources: "source", servers: "server", tools: "tool" }[kind];
    const input = h("input", { type: "checkbox", class: "tool-switch", checked: on, disabled: blocked,
      "aria-label": `Use this ${what}`, title: blocked ? "Turned off with its server or source" : label });
    input.addEventListener("change", () => this.toggle(kind, key, input.checked, input));
    return input;
  }

  render() {
    if (!this.data) return;
    const { tools, warnings, failures, catalog } = this.data;
    const disabled = this.disabled();
    const query = this.search.value.trim().toLowerCase();
    const matches = (tool) => !query || [tool.name, tool.server || "", tool.description || ""]
      .some((text) => text.toLowerCase().includes(query));
    const failed = failures.filter((f) => !f.starting).length;
    const on = tools.filter((t) => t.state !== "disabled");
    const deferred = tools.filter((t) => t.state === "deferred").length;
    const off = tools.length - on.length;
    this.summary.textContent = `${on.length} tool${on.length === 1 ? "" : "s"} ready`
      + (failed ? ` · ${failed} failed` : "")
      + (off ? ` · ${off} off` : "")
      + (catalog?.deferred ? ` · ${on.length - deferred} loaded, ${deferred} through find_tools` : "")
      + (query ? ` · ${tools.filter(matches).length} match${tools.filter(matches).length === 1 ? "" : "es"}` : "");
    const parts = warnings.map((warning) => h("div", { class: "warning small" }, warning));
    for (const [source, title, hint] of SOURCES) {
      const mine = tools.filter((t) => t.source === source);
      const troubles = failures.filter((f) => f.source === source);
      if (!mine.length && !troubles.length && source === "admin") continue;
      const groups = this.groups(source, mine, troubles);
      const shown = groups.filter((g) => !query || g.tools.some(matches));
      if (query && !shown.length) continue;
      const count = query ? `${mine.filter(matches).length} of ${mine.length}` : String(mine.length);
      const sourceOn = !disabled.sources.includes(source);
      parts.push(this.collapsible(`source:${source}`, true, { class: "panel-section", dataset: { source } },
        [this.switchFor("sources", source, sourceOn, `Use ${title.toLowerCase()}`),
          h("h3", {}, title), h("span", { class: "count" }, count),
          troubles.length ? h("span", { class: "chip chip-failed" }, `${troubles.length} failed`) : null],
        [h("div", { class: "muted small hint" }, hint),
          mine.length || troubles.length ? null : h("div", { class: "muted small" }, "None."),
          shown.map((group) => this.groupView(source, group, groups.length, query, matches))],
        Boolean(query)));
    }
    if (query && !parts.some((p) => p.classList.contains("panel-section"))) {
      parts.push(h("div", { class: "muted small pad no-match" }, `No tool matches “${this.search.value.trim()}”.`));
    }
    this.content.replaceChildren(...parts);
  }

  /** A source's tools by server (one unnamed group for the built-ins), failed servers included. */
  groups(source, tools, troubles) {
    const groups = new Map();
    const group = (server) => {
      if (!groups.has(server)) groups.set(server, { server, tools: [], failures: [] });
      return groups.get(server);
    };
    for (const failure of troubles) group(failure.server || "").failures.push(failure);
    for (const tool of tools) group(source === "builtin" ? "" : tool.server || "").tools.push(tool);
    return [...groups.values()].sort((a, b) => (b.failures.length - a.failures.length) || a.server.localeCompare(b.server));
  }

  groupView(source, group, siblings, query, matches) {
    const list = group.tools.filter(matches);
    // One server that failed is news, not an alarm: shown plainly. A whole source gone stays red.
    const failuresView = group.failures.map((f) => h("div", { class: `failure${f.server ? " failure-server" : ""}`,
      dataset: { source: f.source, server: f.server || "" } },
      icon("alert"),
      h("div", { class: "failure-body" },
        h("strong", {}, f.server ? `${f.server} — ${stateLabel(f)}` : "Not available"),
        h("div", { class: "small failure-text" }, f.error),
        f.stderr_tail?.length ? h("details", { class: "stderr-details" }, h("summary", {}, "stderr"),
          h("pre", { class: "stderr" }, f.stderr_tail.join("\n"))) : null)));
    const disabled = this.disabled();
    const sourceOff = disabled.sources.includes(source);
    const serverOff = sourceOff || disabled.servers.some((s) => s.source === source && s.server === group.server);
    const tools = list.length ? h("ul", { class: "tool-list" }, list.map((tool) => h("li", {
      title: tool.description || "", class: tool.state === "disabled" ? "tool-off" : "", dataset: { state: tool.state || "loaded" } },
      h("div", { class: "tool-line" },
        tool.name === "find_tools" ? null
          : this.switchFor("tools", tool.name, tool.state !== "disabled", `Use ${tool.name}`, (source !== "builtin" && serverOff) || sourceOff),
        h("code", {}, tool.name),
        tool.state === "deferred" ? h("span", { class: "chip chip-deferred", title: "Offered once find_tools finds it" }, "via search") : null,
        tool.state === "disabled" ? h("span", { class: "chip chip-off" }, "off") : null),
      tool.description ? h("div", { class: "tool-desc" }, firstLine(tool.description)) : null))) : null;
    if (!group.server) return h("div", { class: "tool-group", dataset: { server: "" } }, failuresView, tools);
    // Open by default: the only group of its source, or one that failed (its reason is the news).
    const open = siblings === 1 || group.failures.length > 0;
    const count = query ? `${list.length} of ${group.tools.length}` : String(group.tools.length);
    return this.collapsible(`server:${source}:${group.server}`, open, { class: "tool-group", dataset: { server: group.server } },
      [this.switchFor("servers", { source, server: group.server }, !serverOff, `Use server ${group.server}`, sourceOff),
        icon("server"), h("span", { class: "group-name" }, group.server), h("span", { class: "count" }, count),
        group.failures.length ? h("span", { class: "chip chip-failed" }, stateLabel(group.failures[0])) : null],
      [failuresView, this.signInView(source, group), tools], Boolean(query) && list.length > 0);
  }

  /** A per-user admin server: "Sign in" while the user needs to, "Sign out" once they are. */
  signInView(source, group) {
    const own = source === "admin" ? this.data.signIns.get(group.server) : null;
    if (!own) return null;
    const toast = (text, kind) => this.view.app.toast(text, kind);
    if (own.state === "needs_auth") {
      const button = h("button", { class: "btn-primary btn-sm sign-in", type: "button" }, "Sign in");
      button.addEventListener("click", () => openSignIn(() => api.startAdminSignIn(own.server_id), group.server, button, toast));
      return h("div", { class: "held" },
        h("div", { class: "small" }, "Sign in with your own account: its sign-in page opens, then you come back here."),
        h("div", { class: "row-actions" }, button));
    }
    const button = h("button", { class: "btn-ghost btn-sm sign-out", type: "button" }, "Sign out");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api.signOutAdmin(own.server_id);
        toast(`Signed out of ${group.server}`, "ok");
      } catch (error) {
        toast(`Sign-out of ${group.server} failed: ${error.message}`, "error");
      }
      await this.view.loadTools();
    });
    return h("div", { class: "row-actions" }, button);
  }

  /** A <details> whose open state the user owns; a search opens what it found. */
  collapsible(key, openByDefault, attrs, summary, body, forceOpen) {
    const open = forceOpen || (this.opened.has(key) ? this.opened.get(key) : openByDefault);
    const el = h("details", { ...attrs, open }, h("summary", { class: "group-summary" }, icon("chevron", "icon chevron"), summary), body);
    el.addEventListener("toggle", () => { if (!forceOpen) this.opened.set(key, el.open); });
    return el;
  }
}

/** A failed server that is trying again says so ("connecting" alone would hide that it failed). */
function stateLabel(failure) {
  if (failure.starting) return "starting";
  if (failure.state === "connecting") return "failed, retrying";
  return failure.state || "failed";
}

function firstLine(text) {
  const line = text.trim().split("\n")[0];
  return line.length > 140 ? `${line.slice(0, 140)}…` : line;
}

/** Workspace servers that are declared but offer no tools right now, as tool-source failures.
 * One still on its first start is `starting`, not failed (a failed one retrying keeps its error). */
export function unavailableServers(workspace) {
  return (workspace?.agent?.servers || []).filter((s) => s.state !== "ready" && s.state !== "disabled")
    .map((s) => ({ source: "workspace", server: s.name, state: s.state, error: s.error || s.state,
      stderr_tail: s.stderr_tail || [], starting: s.state === "connecting" && !s.error }));
}
