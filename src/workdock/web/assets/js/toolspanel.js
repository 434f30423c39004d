// The tools panel: exactly what the next turn of this chat gets, grouped by source, and every
// source that failed with its reason. "Refresh tools" asks the workspace agent to re-read its
// configuration and re-list its servers first.

import { api } from "./api.js";
import { h, icon } from "./dom.js";

const SOURCES = [
  ["builtin", "Built-in", "Files and commands in the workspace, run by its agent."],
  ["workspace", "Workspace servers", "From the workspace's .mcp.json."],
  ["admin", "Admin servers", "Shared MCP servers configured by an admin."],
];

export class ToolsPanel {
  constructor(view) {
    this.view = view;
    this.content = h("div", { class: "panel-content" }, h("div", { class: "muted small pad" }, "Loading tools…"));
    this.refreshButton = h("button", { class: "btn-ghost btn-sm", type: "button", onclick: () => this.refresh() },
      icon("refresh"), "Refresh tools");
    this.el = h("aside", { class: "tools-panel", "aria-label": "Tools" },
      h("header", { class: "panel-header" },
        h("div", {}, h("h2", {}, "Tools"), h("div", { class: "muted small" }, "What the next turn gets")),
        h("button", { class: "btn-icon", type: "button", title: "Close", "aria-label": "Close tools",
          onclick: () => view.toggleTools(false) }, icon("x"))),
      h("div", { class: "panel-toolbar" }, this.refreshButton),
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

  show({ tools, failures, warnings }, workspace) {
    const parts = [];
    const failed = [...failures, ...unavailableServers(workspace)];
    if (failed.length) {
      parts.push(h("section", { class: "panel-section failures" },
        h("h3", {}, `Not available (${failed.length})`),
        failed.map((f) => h("div", { class: "failure", dataset: { source: f.source, server: f.server || "" } }, icon("alert"),
          h("div", { class: "failure-body" },
            h("strong", {}, [labelOf(f.source), f.server].filter(Boolean).join(" · "), f.state ? ` — ${f.state}` : ""),
            h("div", { class: "small failure-text" }, f.error),
            f.stderr_tail?.length ? h("details", { class: "stderr-details" }, h("summary", {}, "stderr"),
              h("pre", { class: "stderr" }, f.stderr_tail.join("\n"))) : null)))));
    }
    for (const warning of warnings || []) parts.push(h("div", { class: "warning small" }, warning));
    for (const [source, title, hint] of SOURCES) {
      const mine = tools.filter((t) => t.source === source);
      if (!mine.length && source === "admin") continue;
      const groups = new Map();
      for (const tool of mine) {
        const key = tool.server || "";
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(tool);
      }
      parts.push(h("section", { class: "panel-section", dataset: { source } },
        h("h3", {}, title, h("span", { class: "count" }, String(mine.length))),
        h("div", { class: "muted small hint" }, hint),
        mine.length ? null : h("div", { class: "muted small" }, "None."),
        [...groups].map(([server, list]) => h("div", { class: "tool-group" },
          server ? h("div", { class: "group-name" }, icon("server"), server) : null,
          h("ul", { class: "tool-list" }, list.map((tool) => h("li", { title: tool.description || "" },
            h("code", {}, tool.name),
            tool.description ? h("div", { class: "tool-desc" }, firstLine(tool.description)) : null)))))));
    }
    this.content.replaceChildren(...parts);
  }
}

function labelOf(source) {
  return Object.fromEntries(SOURCES.map(([key, title]) => [key, title]))[source] || source;
}

function firstLine(text) {
  const line = text.trim().split("\n")[0];
  return line.length > 140 ? `${line.slice(0, 140)}…` : line;
}

/** Workspace servers that are declared but offer no tools right now, as tool-source failures. */
export function unavailableServers(workspace) {
  return (workspace?.agent?.servers || []).filter((s) => s.state !== "ready" && s.state !== "disabled")
    .map((s) => ({ source: "workspace", server: s.name, state: s.state, error: s.error || s.state,
      stderr_tail: s.stderr_tail || [] }));
}
