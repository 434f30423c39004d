// Workspaces: each agent's reachability and every MCP server's state; a server's error and the
// tail of its stderr open on click. "Refresh tools" has the agent re-read .mcp.json and re-list.

import { api } from "./api.js";
import { h, icon } from "./dom.js";

const STATE_CLASS = { ready: "ok", connecting: "busy", restarting: "busy", starting: "busy", failed: "bad",
  disabled: "off", stopped: "off" };

export class WorkspacesView {
  constructor(app) {
    this.app = app;
    this.list = h("div", { class: "workspace-list" }, h("div", { class: "muted" }, "Loading workspaces…"));
    this.el = h("div", { class: "page" },
      h("header", { class: "page-header" },
        h("button", { class: "btn-icon only-mobile", type: "button", "aria-label": "Menu",
          onclick: () => app.toggleSidebar() }, icon("menu")),
        h("div", {}, h("h1", {}, "Workspaces"),
          h("div", { class: "muted small" }, "Each workspace is an agent running next to your code, with its MCP servers."))),
      h("div", { class: "page-body" }, this.list, this.addForm()));
  }

  async open() {
    document.title = "Workspaces · workdock";
    await this.load();
  }

  close() {}

  async load() {
    try {
      const { workspaces } = await api.workspaces();
      this.app.setWorkspaces(workspaces);
      this.list.replaceChildren(...(workspaces.length ? workspaces.map((w) => this.card(w))
        : [h("div", { class: "empty-note" }, "No workspace yet. Run ", h("code", {}, "workdock up"),
          " in a project, or add a running agent below.")]));
    } catch (error) {
      this.list.replaceChildren(h("div", { class: "failure" }, icon("alert"), error.message));
    }
  }

  card(workspace) {
    const agent = workspace.agent;
    const refresh = h("button", { class: "btn-ghost btn-sm", type: "button" }, icon("refresh"), "Refresh tools");
    refresh.addEventListener("click", async () => {
      refresh.disabled = true;
      refresh.classList.add("busy");
      try {
        const updated = await api.refreshWorkspace(workspace.id);
        card.replaceWith(this.card(updated));
        this.app.toast(`Refreshed ${workspace.name}`, "ok");
      } catch (error) {
        this.app.toast(`Refresh failed: ${error.message}`, "error");
        refresh.disabled = false;
        refresh.classList.remove("busy");
      }
    });
    const remove = h("button", { class: "btn-icon danger", type: "button", title: "Remove workspace",
      "aria-label": `Remove ${workspace.name}` }, icon("trash"));
    remove.addEventListener("click", async () => {
      if (!confirm(`Remove the workspace “${workspace.name}” and its chats?`)) return;
      try {
        await api.deleteWorkspace(workspace.id);
        this.app.refreshChats();
        await this.load();
      } catch (error) {
        this.app.toast(error.message, "error");
      }
    });
    const servers = agent.servers || [];
    const ready = servers.filter((s) => s.state === "ready").length;
    const broken = (agent.config_files || []).filter((f) => f.state === "invalid");
    const card = h("article", { class: "workspace-card", dataset: { workspaceId: workspace.id } },
      h("header", { class: "workspace-head" },
        h("div", { class: "workspace-title" },
          h("span", { class: `dot dot-${agent.reachable ? "ok" : "bad"}`, title: agent.reachable ? "agent reachable" : "agent unreachable" }),
          h("h2", {}, workspace.name),
          h("span", { class: "muted small mono" }, workspace.agent_url)),
        h("div", { class: "row-actions" }, refresh, remove)),
      agent.reachable
        ? h("div", { class: "muted small" }, servers.length
          ? `${ready} of ${servers.length} MCP server${servers.length === 1 ? "" : "s"} ready`
          : broken.length ? "No MCP servers running: a config file has an error (below). The built-in tools still work."
            : "No MCP servers declared (.mcp.json). The built-in tools still work.")
        : h("div", { class: "failure" }, icon("alert"), h("div", {}, h("strong", {}, "Agent unreachable"),
          h("div", { class: "small" }, agent.error || ""))),
      servers.length ? h("div", { class: "server-list" }, servers.map((s) => serverRow(s))) : null,
      broken.map((f) => h("div", { class: "failure small config-error" }, icon("alert"),
        h("div", {}, `${f.path}: ${f.error}`, h("div", { class: "muted" }, keptNote(f.kept_servers || []))))));
    return card;
  }

  addForm() {
    const name = h("input", { name: "name", required: true, placeholder: "my-project", autocomplete: "off" });
    const url = h("input", { name: "agent_url", required: true, placeholder: "http://127.0.0.1:7411", type: "url" });
    const token = h("input", { name: "agent_token", required: true, placeholder: "agent token", type: "password",
      autocomplete: "off" });
    const form = h("form", { class: "card add-workspace" },
      h("h2", {}, "Add a workspace"),
      h("div", { class: "muted small" }, "Point at a running ", h("code", {}, "workdock agent"), " and give its token."),
      h("div", { class: "form-grid" },
        h("label", {}, "Name", name), h("label", {}, "Agent URL", url), h("label", {}, "Agent token", token)),
      h("div", { class: "form-actions" }, h("button", { class: "btn-primary", type: "submit" }, icon("plus"), "Add workspace")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api.createWorkspace({ name: name.value.trim(), agent_url: url.value.trim(), agent_token: token.value });
        form.reset();
        await this.load();
      } catch (error) {
        this.app.toast(error.message, "error");
      }
    });
    return form;
  }
}

/** What an invalid config file still contributes (the agent's log and `workdock status` say the same). */
function keptNote(kept) {
  return kept.length ? `Its last good servers keep running (${kept.join(", ")}) until it is fixed.`
    : "It declares no servers until it is fixed.";
}

function serverRow(server) {
  const state = server.state;
  const hasDetail = server.error || (server.stderr_tail || []).length || (server.warnings || []).length;
  const details = h("details", { class: `server-row state-${STATE_CLASS[state] || "off"}`, dataset: { server: server.name } },
    h("summary", {},
      h("span", { class: `dot dot-${STATE_CLASS[state] || "off"}` }),
      h("span", { class: "server-name" }, server.name),
      server.transport ? h("span", { class: "chip" }, server.transport) : null,
      h("span", { class: "server-state" }, state),
      h("span", { class: "muted small server-tools" }, state === "ready" ? `${server.tool_count} tools` : ""),
      server.restarts ? h("span", { class: "muted small" }, `${server.restarts} restarts`) : null,
      hasDetail ? icon("chevron", "icon chevron") : null),
    h("div", { class: "server-detail" },
      server.error ? h("div", { class: "failure-text" }, server.error) : null,
      (server.warnings || []).map((w) => h("div", { class: "warning small" }, w)),
      (server.stderr_tail || []).length
        ? [h("div", { class: "tool-section-title" }, "stderr (last lines)"),
          h("pre", { class: "stderr" }, server.stderr_tail.join("\n"))]
        : h("div", { class: "muted small" }, hasDetail ? "" : "Nothing to report.")));
  return details;
}
