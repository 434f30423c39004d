// Workspaces: each agent's connection and every MCP server's state; a server's error and the
// tail of its stderr open on click. "Refresh tools" has the agent re-read .mcp.json and re-list.
// "Add a workspace" makes a linked one (its agent dials this server) and shows the command to run
// in the workspace; the list is polled while the page is open, so a connecting agent shows up live.
// A server that waits for an OAuth sign-in gets "Sign in": the browser goes to its authorization
// server, which sends it back through this server's /oauth/callback to this page.

import { api } from "./api.js";
import { copyButton, h, icon, timeAgo } from "./dom.js";
import { openSignIn } from "./signin.js";

const POLL_MS = 3000;

const STATE_CLASS = { ready: "ok", connecting: "busy", restarting: "busy", starting: "busy", failed: "bad",
  needs_auth: "busy",
  disabled: "off", stopped: "off", pending_approval: "warn", needs_input: "warn" };

export const POLICIES = [["auto", "Auto"], ["ask", "Ask"], ["ask-all", "Ask all"]];

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
      h("div", { class: "page-body" }, this.list, this.addForm(), app.user?.is_admin ? this.settingsForm() : null));
  }

  // Admin: the approval policy chats get when they are created without one.
  settingsForm() {
    const select = h("select", { class: "default-policy", "aria-label": "Tool approval of new chats" },
      POLICIES.map(([value, label]) => h("option", { value }, label)));
    select.disabled = true;
    api.settings().then((settings) => { select.value = settings.default_approval_policy; select.disabled = false; })
      .catch(() => {});
    select.addEventListener("change", async () => {
      try {
        await api.patchSettings({ default_approval_policy: select.value });
        this.app.toast("New chats now use this approval policy.");
      } catch (error) {
        this.app.toast(error.message, "error");
      }
    });
    return h("section", { class: "add-workspace settings" },
      h("h2", {}, "Settings"),
      h("label", { class: "field" }, h("span", {}, "Tool approval of new chats"), select),
      h("p", { class: "muted small" }, "Auto runs every tool call. Ask waits for your approval before a tool that is not read-only. Ask all waits before every call."));
  }

  async open() {
    document.title = "Workspaces · workdock";
    await this.load();
    this.timer = setInterval(() => { if (!document.hidden) this.load({ quiet: true }); }, POLL_MS);
  }

  close() {
    clearInterval(this.timer);
  }

  async load({ quiet = false } = {}) {
    if (this.loading) return;
    // A value being typed for a server's input is not wiped by the poll.
    if (quiet && [...this.list.querySelectorAll(".server-input")].some((i) => i === document.activeElement
      || (i.tagName === "SELECT" ? i.value !== i.dataset.initial : i.value))) return;
    this.loading = true;
    try {
      const { workspaces } = await api.workspaces();
      this.app.setWorkspaces(workspaces);
      // Server rows that are open stay open across a poll.
      const open = new Set([...this.list.querySelectorAll("details[open]")].map((d) =>
        `${d.closest("[data-workspace-id]")?.dataset.workspaceId}/${d.dataset.server}`));
      this.list.replaceChildren(...(workspaces.length ? workspaces.map((w) => this.card(w))
        : [h("div", { class: "empty-note" }, "No workspace yet. Run ", h("code", {}, "workdock up"),
          " in a project, or add one below and start its agent.")]));
      for (const details of this.list.querySelectorAll("details[data-server]")) {
        if (open.has(`${details.closest("[data-workspace-id]").dataset.workspaceId}/${details.dataset.server}`)) details.open = true;
      }
    } catch (error) {
      if (!quiet) this.list.replaceChildren(h("div", { class: "failure" }, icon("alert"), error.message));
    } finally {
      this.loading = false;
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
    const linked = workspace.connection === "link";
    const actions = [refresh];
    if (linked) {
      const rotate = h("button", { class: "btn-ghost btn-sm", type: "button", title: "Make a new agent token; the old one stops working" },
        icon("refresh"), "New token");
      rotate.addEventListener("click", async () => {
        if (!confirm(`Make a new agent token for “${workspace.name}”? Its agent is disconnected until it runs with the new one.`)) return;
        try {
          this.showConnect(await api.rotateAgentToken(workspace.id));
          await this.load();
        } catch (error) {
          this.app.toast(error.message, "error");
        }
      });
      actions.push(rotate);
    }
    actions.push(remove);
    const card = h("article", { class: "workspace-card", dataset: { workspaceId: workspace.id, connection: workspace.connection,
      connected: String(Boolean(agent.connected)) } },
      h("header", { class: "workspace-head" },
        h("div", { class: "workspace-title" },
          h("span", { class: `dot dot-${agent.reachable ? "ok" : "bad"}`, title: agent.reachable ? "agent reachable" : "agent unreachable" }),
          h("h2", {}, workspace.name),
          h("span", { class: "chip" }, linked ? "linked" : "direct"),
          workspace.path ? h("span", { class: "muted small mono workspace-path" }, workspace.path) : null,
          linked ? null : h("span", { class: "muted small mono" }, workspace.agent_url)),
        h("div", { class: "row-actions" }, actions)),
      linked ? linkLine(agent) : null,
      agent.reachable
        ? h("div", { class: "muted small" }, servers.length
          ? `${ready} of ${servers.length} MCP server${servers.length === 1 ? "" : "s"} ready`
          : broken.length ? "No MCP servers running: a config file has an error (below). The built-in tools still work."
            : "No MCP servers declared (.mcp.json). The built-in tools still work.")
        : h("div", { class: "failure" }, icon("alert"), h("div", {}, h("strong", {}, linked ? "Agent not connected" : "Agent unreachable"),
          h("div", { class: "small" }, agent.error || ""))),
      servers.length ? h("div", { class: "server-list" }, servers.map((s) => serverRow(s, this.heldActions(workspace)))) : null,
      broken.map((f) => h("div", { class: "failure small config-error" }, icon("alert"),
        h("div", {}, `${f.path}: ${f.error}`, h("div", { class: "muted" }, keptNote(f.kept_servers || []))))));
    return card;
  }

  /** What a held server's row can do: approve it (or its whole file), give an input's value. */
  heldActions(workspace) {
    const run = async (work, done) => {
      try {
        await work();
        this.app.toast(done, "ok");
      } catch (error) {
        this.app.toast(error.message, "error");
      }
      await this.load();
    };
    return {
      approve: (server) => run(() => api.trustServers(workspace.id, { servers: [server.name] }), `Approved ${server.name}: starting`),
      approveFile: (server) => run(() => api.trustServers(workspace.id, { file: server.config_file }), `Approved every server of ${server.config_file}`),
      giveInput: (server, input, value) => run(() => api.giveInput(workspace.id, { id: input.id, value }), `Sent ${input.id} to ${server.name}`),
      signIn: (server, button) => openSignIn(() => api.startSignIn(workspace.id, server.name), server.name, button,
        (text, kind) => this.app.toast(text, kind)),
    };
  }

  /** The command that links a workspace's agent to this server, with its token (shown this once). */
  showConnect(created) {
    const { command, env } = created.connect;
    const line = `${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")} ${command}`;
    this.connect.replaceChildren(
      h("div", { class: "connect-head" }, icon("terminal"),
        h("strong", {}, `Run this in the workspace “${created.name}” to connect its agent`)),
      h("div", { class: "code-block connect-command" },
        h("div", { class: "code-head" }, h("span", { class: "code-lang" }, "shell"), copyButton(() => line, "Copy command")),
        h("pre", {}, h("code", {}, line))),
      h("div", { class: "muted small" }, "The token is shown only now. The agent dials out to this server, so the workspace needs no open port; ",
        "it reconnects by itself. Lost the token? Use “New token” on the workspace."));
    this.connect.hidden = false;
  }

  addForm() {
    this.connect = h("div", { class: "card connect", hidden: true, role: "status" });
    const name = h("input", { name: "name", required: true, placeholder: "my-project", autocomplete: "off" });
    const url = h("input", { name: "agent_url", placeholder: "http://127.0.0.1:4571", type: "url" });
    const token = h("input", { name: "agent_token", placeholder: "agent token", type: "password", autocomplete: "off" });
    const direct = h("details", { class: "direct-options" },
      h("summary", { class: "muted small" }, "Advanced: an agent this server can reach directly"),
      h("div", { class: "muted small" }, "Point at a running ", h("code", {}, "workdock agent --listen"), " and give its token."),
      h("div", { class: "form-grid form-grid-2" }, h("label", {}, "Agent URL", url), h("label", {}, "Agent token", token)));
    const form = h("form", { class: "card add-workspace" },
      h("h2", {}, "Add a workspace"),
      h("div", { class: "muted small" }, "Name it, then run the command shown in the workspace (container, VM or laptop): its ",
        h("code", {}, "workdock agent"), " connects out to this server."),
      h("div", { class: "form-grid form-grid-1" }, h("label", {}, "Name", name)),
      direct,
      h("div", { class: "form-actions" }, h("button", { class: "btn-primary", type: "submit" }, icon("plus"), "Add workspace")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: name.value.trim() };
      if (direct.open && (url.value.trim() || token.value)) Object.assign(body, { agent_url: url.value.trim(), agent_token: token.value });
      try {
        const created = await api.createWorkspace(body);
        form.reset();
        direct.open = false;
        if (created.connect) this.showConnect(created);
        else this.connect.hidden = true;
        await this.load();
      } catch (error) {
        this.app.toast(error.message, "error");
      }
    });
    return [this.connect, form];
  }
}

/** A linked workspace's connection: since when, from where, which agent version, the last error. */
function linkLine(agent) {
  const parts = agent.connected
    ? [`Connected ${timeAgo(agent.connected_since)}`, agent.peer ? `from ${agent.peer}` : null,
      agent.agent_version ? `agent ${agent.agent_version}` : null]
    : [`Disconnected since ${new Date(agent.disconnected_since).toLocaleString()}`,
      agent.last_error ? `last error: ${agent.last_error}` : null];
  return h("div", { class: `link-state small ${agent.connected ? "link-up" : "link-down"}` },
    h("span", { class: `dot dot-${agent.connected ? "ok" : "off"}` }), parts.filter(Boolean).join(" · "));
}

/** What an invalid config file still contributes (the agent's log and `workdock status` say the same). */
function keptNote(kept) {
  return kept.length ? `Its last good servers keep running (${kept.join(", ")}) until it is fixed.`
    : "It declares no servers until it is fixed.";
}

/** A pending server's command line and its Approve buttons; a waiting server's input fields; a
 * server that waits for sign-in, its Sign in button. */
function heldBlock(server, actions) {
  if (server.state === "needs_auth") {
    const button = h("button", { class: "btn-primary btn-sm sign-in", type: "button" }, "Sign in");
    button.addEventListener("click", () => actions.signIn(server, button));
    return h("div", { class: "held" },
      h("div", { class: "small" }, "This server signs in with OAuth: its own sign-in page opens, then you come back here."),
      h("div", { class: "row-actions" }, button));
  }
  if (server.state === "pending_approval") {
    return h("div", { class: "held" },
      h("div", { class: "small" }, "This workspace's own config ", h("code", {}, server.config_file || ""), " asks to run:"),
      h("pre", { class: "launch" }, server.launch || ""),
      h("div", { class: "row-actions" },
        h("button", { class: "btn-primary btn-sm", type: "button", onclick: () => actions.approve(server) }, icon("check"), "Approve"),
        server.config_file ? h("button", { class: "btn-ghost btn-sm", type: "button", onclick: () => actions.approveFile(server) },
          "Approve all from this file") : null));
  }
  if (server.state === "needs_input") {
    return h("div", { class: "held" }, (server.inputs || []).map((input) => {
      // A pickString offers its choices (its default first chosen); anything else is typed.
      const field = (input.options || []).length
        ? h("select", { class: "server-input", name: input.id, dataset: { initial: input.default || input.options[0] } },
          input.options.map((option) => h("option", { value: option, selected: option === input.default }, option)))
        : h("input", { class: "server-input", name: input.id, autocomplete: "off",
          type: input.password ? "password" : "text", placeholder: input.id });
      const form = h("form", { class: "input-form" },
        h("label", { class: "small" }, input.description || input.id, field),
        h("button", { class: "btn-primary btn-sm", type: "submit" }, "Save"),
        h("div", { class: "muted small" }, `or set ${input.env} in the agent's environment`));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const value = field.value;
        if (field.tagName === "INPUT") field.value = ""; // a password is not kept in the page
        actions.giveInput(server, input, value);
      });
      return form;
    }));
  }
  return null;
}

function serverRow(server, actions) {
  const state = server.state;
  const held = actions ? heldBlock(server, actions) : null;
  const hasDetail = held || server.error || (server.stderr_tail || []).length || (server.warnings || []).length;
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
      server.error ? h("div", { class: held ? "small" : "failure-text" }, server.error) : null,
      held,
      (server.warnings || []).map((w) => h("div", { class: "warning small" }, w)),
      (server.stderr_tail || []).length
        ? [h("div", { class: "tool-section-title" }, "stderr (last lines)"),
          h("pre", { class: "stderr" }, server.stderr_tail.join("\n"))]
        : h("div", { class: "muted small" }, hasDetail ? "" : "Nothing to report.")));
  if (held) details.open = true; // what the user must do is shown, not folded away
  return details;
}
