// The chat view: history from the API, the running turn from the SSE stream, the composer.
//
// The transcript is a list of keyed items rebuilt from state after every change and reconciled
// against the DOM: an item whose content did not change keeps its element untouched (text
// selection, open tool cards and scroll position survive streaming).
//
// Resuming: the stream is opened first and the history fetched on every (re)connect. Persisted
// messages are keyed by id, so a replayed `data-message` is harmless; the live part of a turn is
// rebuilt from the replay, which always starts at the turn's `start` when the browser's
// Last-Event-ID cannot be honoured (e.g. after a server restart).
//
// Retry: the turn a retry replaced stays in the history, marked superseded; it folds into one
// "earlier attempt" row that opens on click.

import { api } from "./api.js";
import { copyText, h, icon, timeAgo } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { ComposerMenus } from "./composer_menus.js";
import { ToolCard, tickDurations } from "./toolcard.js";
import { ToolsPanel, unavailableServers } from "./toolspanel.js";
import { POLICIES } from "./workspaces.js";

const RECONNECT_MS = 1500;
const LIVE_OUTPUT_CHARS = 64 * 1024; // of a running command's output shown on its card (the result has it all)

export class ChatView {
  constructor(app, chatId) {
    this.app = app;
    this.chatId = chatId;
    this.chat = null;
    this.messages = new Map();
    this.results = new Map();
    this.live = newLive();
    this.liveError = null;
    this.toolInfo = new Map();
    // Calls that wait for the user's answer (tool_call_id → true): from the chat's
    // `pending_approvals` and the stream's `tool-approval-request`, until answered.
    this.approvals = new Map();
    this.sourceFailures = []; // tool sources that failed (the agent, an admin server), with why
    this.serverFailures = []; // workspace servers that offer no tools right now
    this.openAttempts = new Set(); // keys of superseded runs the user opened
    this.nodes = new Map(); // item key → {el, sig, update}
    this.connected = false;
    this.closed = false;
    this.answer = (elicitationId, action, content) => this.answerElicitation(elicitationId, action, content);
    this.build();
  }

  // ---- layout ---------------------------------------------------------------------------------

  build() {
    this.titleEl = h("h1", { class: "chat-title", title: "Rename", tabindex: "0" });
    this.titleEl.addEventListener("click", () => this.rename());
    this.titleEl.addEventListener("keydown", (e) => { if (e.key === "Enter") this.rename(); });
    this.metaEl = h("div", { class: "chat-meta" });
    this.statusEl = h("span", { class: "status-pill", "aria-live": "polite" });
    this.policySelect = h("select", { class: "approval-select", "aria-label": "Tool approval",
      title: "Auto runs every call; Ask waits before tools that are not read-only; Ask all before every call" },
      POLICIES.map(([value, label]) => h("option", { value }, label)));
    this.policySelect.addEventListener("change", () => this.setPolicy(this.policySelect.value));
    this.toolsButton = h("button", { class: "btn-ghost tools-button", type: "button", title: "Tools the next turn gets",
      "aria-label": "Tools", onclick: () => this.toggleTools() }, icon("tools"), h("span", { class: "label" }, "Tools"));
    const header = h("header", { class: "chat-header" },
      h("button", { class: "btn-icon only-mobile", type: "button", title: "Menu", "aria-label": "Menu",
        onclick: () => this.app.toggleSidebar() }, icon("menu")),
      h("div", { class: "chat-heading" }, this.titleEl, this.metaEl),
      h("div", { class: "chat-actions" }, this.statusEl, this.toolsButton,
        h("button", { class: "btn-icon rename-button", type: "button", title: "Rename chat", "aria-label": "Rename chat",
          onclick: () => this.rename() }, icon("pencil")),
        h("button", { class: "btn-icon danger", type: "button", title: "Delete chat", "aria-label": "Delete chat",
          onclick: () => this.remove() }, icon("trash"))));
    this.banner = h("div", { class: "banner", hidden: true });
    this.transcript = h("div", { class: "transcript", role: "log", "aria-live": "polite" });
    this.scroller = h("div", { class: "scroller" }, this.banner, this.transcript);
    this.input = h("textarea", { class: "composer-input", rows: 1, placeholder: "Message the workspace…",
      "aria-label": "Message" });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener("input", () => this.autosize());
    this.menus = new ComposerMenus(this); // `@` attaches a resource, `/` runs a prompt
    this.sendButton = h("button", { class: "btn-primary btn-send", type: "button", title: "Send (Enter)",
      "aria-label": "Send", onclick: () => this.send() }, icon("send"));
    this.stopButton = h("button", { class: "btn-stop", type: "button", title: "Stop the running turn",
      "aria-label": "Stop", hidden: true, onclick: () => this.interrupt() }, icon("stop"), h("span", {}, "Stop"));
    // The model the next message goes to: a switch is stored on the chat; the history stays as it is.
    this.modelPicker = h("select", { class: "model-picker", "aria-label": "Next turn's model", title: "The model the next message goes to", hidden: true });
    this.modelPicker.addEventListener("change", () => this.switchModel(this.modelPicker.value));
    const composer = h("div", { class: "composer" }, this.menus.el,
      h("div", { class: "composer-box" }, this.input, h("div", { class: "composer-buttons" }, this.stopButton, this.sendButton)),
      h("div", { class: "composer-hint" }, this.modelPicker, "Enter to send · Shift+Enter for a new line · @ attach a resource · / run a prompt"));
    this.panel = new ToolsPanel(this);
    this.main = h("div", { class: "chat-main" }, header, this.scroller, composer);
    this.el = h("div", { class: "chat-view" }, this.main, this.panel.el);
    this.ticker = setInterval(() => tickDurations(this.transcript), 1000);
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async open() {
    this.connect();
    this.loadTools();
    this.loadModels();
    this.input.focus();
  }

  async loadModels() {
    try {
      const { models } = await api.models();
      this.models = models;
      this.renderModelPicker();
    } catch { /* no picker: the chat keeps its model */ }
  }

  renderModelPicker() {
    if (!this.models || !this.chat || document.activeElement === this.modelPicker) return;
    const names = this.models.includes(this.chat.model) || !this.chat.model ? this.models : [this.chat.model, ...this.models];
    this.modelPicker.hidden = names.length < 1;
    this.modelPicker.replaceChildren(...names.map((m) => h("option", { value: m, selected: m === this.chat.model }, m)));
  }

  async switchModel(model) {
    try {
      this.chat = await api.patchChat(this.chatId, { model });
      this.app.toast(`The next message goes to ${model}`, "ok");
      this.render();
    } catch (error) {
      this.app.toast(`Could not switch the model: ${error.message}`, "error");
      this.renderModelPicker();
    }
  }

  close() {
    this.closed = true;
    clearInterval(this.ticker);
    clearTimeout(this.retry);
    this.source?.close();
  }

  connect() {
    if (this.closed) return;
    const after = this.lastEventId ? `?after=${encodeURIComponent(this.lastEventId)}` : "";
    const source = new EventSource(`/api/v0/chats/${this.chatId}/stream${after}`);
    this.source = source;
    source.addEventListener("open", () => {
      this.setConnected(true);
      this.refresh(); // history and queue as they are now; the stream covers what follows
    });
    source.addEventListener("message", (event) => {
      if (event.lastEventId) this.lastEventId = event.lastEventId;
      let chunk;
      try { chunk = JSON.parse(event.data); } catch { return; }
      this.onChunk(chunk);
    });
    source.addEventListener("error", () => {
      this.setConnected(false);
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error such as 401/404): find out why, then retry ourselves.
        source.close();
        this.retry = setTimeout(() => this.checkAndReconnect(), RECONNECT_MS);
      }
    });
  }

  async checkAndReconnect() {
    try {
      await api.chat(this.chatId);
    } catch (error) {
      if (error.status === 404) { this.showBanner("This chat no longer exists.", "error"); return; }
      if (error.status === 401) return; // the app shows the login screen
    }
    this.connect();
  }

  setConnected(connected) {
    if (this.connected === connected) return;
    this.connected = connected;
    if (connected) this.hideBanner();
    else if (!this.closed) this.reconnectTimer = setTimeout(() => {
      if (!this.connected && !this.closed) this.showBanner("Connection lost — reconnecting…", "warn");
    }, 800);
  }

  showBanner(text, kind) {
    this.banner.hidden = false;
    this.banner.className = `banner banner-${kind}`;
    this.banner.replaceChildren(h("span", { class: "spinner spinner-xs" }), text);
  }

  hideBanner() {
    clearTimeout(this.reconnectTimer);
    this.banner.hidden = true;
  }

  async refresh() {
    try {
      const [chat, history] = await Promise.all([api.chat(this.chatId), api.messages(this.chatId)]);
      this.chat = chat;
      for (const message of history.messages) this.ingest(message);
      this.render();
    } catch (error) {
      if (error.status === 404) this.showBanner("This chat no longer exists.", "error");
      else if (error.status !== 401) this.app.toast(error.message, "error");
    }
  }

  async refreshChat() {
    try {
      this.chat = await api.chat(this.chatId);
      // Merged, not replaced: a request streamed while this answer was on its way stays.
      if (!this.chat.running) this.approvals.clear();
      for (const pending of this.chat.pending_approvals || []) this.approvals.set(pending.tool_call_id, true);
      this.render();
    } catch { /* the stream's own error handling reports a lost server */ }
  }

  async loadTools() {
    try {
      const chat = this.chat || await api.chat(this.chatId);
      // The workspace's server states too: a server that failed offers no tools, and the panel
      // says so instead of silently listing fewer tools.
      const [tools, workspace] = await Promise.all([api.tools(this.chatId),
        api.workspace(chat.workspace_id).catch(() => null)]);
      this.toolInfo = new Map(tools.tools.map((t) => [t.name, t]));
      this.panel.show(tools, workspace);
      this.sourceFailures = tools.failures;
      this.serverFailures = unavailableServers(workspace);
      this.renderToolsButton();
      this.render();
    } catch (error) {
      this.panel.showError(error);
    }
  }

  // ---- state ----------------------------------------------------------------------------------

  ingest(message) {
    this.messages.set(message.id, message);
    if (message.role === "tool") {
      for (const part of message.parts) if (part.tool_call_id) this.results.set(part.tool_call_id, part);
    }
  }

  onChunk(chunk) {
    const live = this.live;
    switch (chunk.type) {
      case "data-status": {
        const { status } = chunk.data;
        if (this.chat) {
          this.chat.status = status;
          this.chat.running = status === "running";
        }
        if (chunk.data.tool_failures) { this.sourceFailures = chunk.data.tool_failures; this.renderToolsButton(); }
        if (status !== "running") { this.live = newLive(); this.refreshChat(); this.app.refreshChats(); }
        break;
      }
      case "data-superseded":
        for (const id of chunk.data.message_ids) {
          const message = this.messages.get(id);
          if (message) this.messages.set(id, { ...message, superseded: true });
        }
        break;
      case "data-message": {
        const message = chunk.data;
        this.ingest(message);
        if (message.role === "user") { this.liveError = null; this.refreshChat(); this.app.refreshChats(); }
        if (message.role === "assistant") {
          // The step is stored: its live text is now in the history; its calls keep their cards.
          live.texts.clear();
          live.order = live.order.filter((key) => key.startsWith("c") && !this.persistedCall(key.slice(1)));
        }
        break;
      }
      case "start":
        this.live = newLive();
        this.liveError = null;
        break;
      case "start-step":
        live.texts.clear();
        live.order = live.order.filter((key) => !key.startsWith("t"));
        break;
      case "text-start":
      case "reasoning-start":
        live.texts.set(chunk.id, { kind: chunk.type.startsWith("text") ? "text" : "reasoning", text: "" });
        live.order.push(`t${chunk.id}`);
        break;
      case "text-delta":
      case "reasoning-delta": {
        const part = live.texts.get(chunk.id);
        if (part) part.text += chunk.delta;
        break;
      }
      case "tool-input-start":
        live.calls.set(chunk.toolCallId, { name: chunk.toolName, argsText: "" });
        live.order.push(`c${chunk.toolCallId}`);
        break;
      case "tool-input-delta": {
        const call = live.calls.get(chunk.toolCallId);
        if (call) call.argsText += chunk.inputTextDelta;
        break;
      }
      case "tool-input-available": {
        let call = live.calls.get(chunk.toolCallId);
        if (!call) {
          call = { name: chunk.toolName, argsText: "" };
          live.calls.set(chunk.toolCallId, call);
          live.order.push(`c${chunk.toolCallId}`);
        }
        call.args = chunk.input;
        call.hasArgs = true;
        call.startedAt = Date.now();
        break;
      }
      case "tool-approval-request":
        this.approvals.set(chunk.toolCallId, true);
        break;
      case "tool-approval-response":
        this.approvals.delete(chunk.approvalId);
        break;
      case "tool-output-denied":
        this.approvals.delete(chunk.toolCallId);
        this.results.set(chunk.toolCallId, { is_error: true, denied: true, duration_ms: null,
          content: [{ type: "text", text: "Denied" }] });
        break;
      case "tool-output-available":
        this.approvals.delete(chunk.toolCallId);
        this.results.set(chunk.toolCallId, { is_error: false, ...chunk.output });
        break;
      case "tool-output-error": {
        const started = live.calls.get(chunk.toolCallId)?.startedAt;
        this.results.set(chunk.toolCallId, { is_error: true, content: [{ type: "text", text: chunk.errorText }],
          duration_ms: started ? Date.now() - started : null });
        break;
      }
      case "data-tool-progress":
        this.report(chunk.data.toolCallId).progress = chunk.data;
        break;
      case "data-tool-output": {
        const report = this.report(chunk.data.toolCallId);
        report.output = (report.output + chunk.data.text).slice(-LIVE_OUTPUT_CHARS);
        break;
      }
      case "data-tool-elicitation": {
        // A later chunk with the same id (answered, expired) replaces the earlier one.
        const report = this.report(chunk.data.toolCallId);
        const index = report.elicitations.findIndex((r) => r.elicitationId === chunk.data.elicitationId);
        if (index >= 0) report.elicitations[index] = chunk.data;
        else report.elicitations.push(chunk.data);
        break;
      }
      case "error":
        this.liveError = chunk.errorText;
        break;
      case "abort":
        this.live = newLive();
        break;
      default:
        return; // finish, finish-step, text-end, ...: nothing to show
    }
    this.scheduleRender();
  }

  /** What a running call reported (progress, live output, requests for input); bumped on change. */
  report(callId) {
    let report = this.live.reports.get(callId);
    if (!report) {
      report = { progress: null, output: "", elicitations: [], version: 0 };
      this.live.reports.set(callId, report);
    }
    report.version += 1;
    return report;
  }

  answerElicitation(elicitationId, action, content) {
    return api.answerElicitation(this.chatId, elicitationId, content === undefined ? { action } : { action, content });
  }

  persistedCall(callId) {
    for (const message of this.messages.values()) {
      if (message.role === "assistant" && message.parts.some((p) => p.tool_call_id === callId)) return true;
    }
    return false;
  }

  // ---- rendering ------------------------------------------------------------------------------

  scheduleRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = null; this.render(); });
  }

  items() {
    const items = [];
    const persistedCalls = new Set();
    const sorted = [...this.messages.values()].sort((a, b) => a.id - b.id);
    let lastAssistant = null;
    let attempt = null; // the run of superseded messages being folded, {key, open}
    for (const message of sorted) {
      if (message.superseded) {
        if (!attempt) {
          const key = `s${message.id}`;
          attempt = { key, open: this.openAttempts.has(key) };
          items.push({ key, kind: "attempt", open: attempt.open });
        }
        if (!attempt.open) {
          for (const part of message.parts) if (part.tool_call_id) persistedCalls.add(part.tool_call_id);
          continue;
        }
      } else {
        attempt = null;
      }
      const superseded = Boolean(message.superseded);
      if (message.role === "user") {
        const text = message.parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");
        // Attached resources and the prompt a message came from are shown under its text.
        const extras = message.parts.filter((p) => p.type === "resource" || p.type === "prompt")
          .map((p) => (p.type === "prompt" ? `/${p.name}` : `@${p.uri}`));
        items.push({ key: `m${message.id}`, kind: "user", text, extras, at: message.created_at, superseded });
        continue;
      }
      if (message.role !== "assistant") continue;
      if (!superseded) lastAssistant = message;
      message.parts.forEach((part, index) => {
        const key = `m${message.id}-${index}`;
        if (part.type === "text") items.push({ key, kind: "text", text: part.text, superseded });
        else if (part.type === "reasoning") items.push({ key, kind: "reasoning", text: part.text, superseded });
        else if (part.type === "error") items.push({ key, kind: "error", text: part.text, superseded });
        else if (part.type === "interrupted") {
          items.push({ key, kind: "interrupted", text: part.reason ? part.text : "", superseded });
        } else if (part.type === "tool-call") {
          persistedCalls.add(part.tool_call_id);
          items.push({ key: `c${part.tool_call_id}`, kind: "tool", call: this.persistedCard(part), superseded });
        }
      });
    }
    const running = Boolean(this.chat?.running);
    for (const key of this.live.order) {
      const id = key.slice(1);
      if (key.startsWith("t")) {
        const part = this.live.texts.get(id);
        if (part) items.push({ key, kind: part.kind, text: part.text, streaming: true });
      } else if (!persistedCalls.has(id)) {
        const call = this.live.calls.get(id);
        if (call) items.push({ key, kind: "tool", call: this.liveCard(id, call) });
      }
    }
    if (this.liveError && !(lastAssistant?.parts.some((p) => p.type === "error" && p.text === this.liveError))) {
      items.push({ key: "live-error", kind: "error", text: this.liveError });
    }
    if (running && !this.live.order.some((key) => key.startsWith("t") || !persistedCalls.has(key.slice(1)))) {
      items.push({ key: "thinking", kind: "thinking" });
    }
    const lastUser = items.findLast((item) => item.kind === "user" && !item.superseded);
    if (lastUser) lastUser.editable = !running && !(this.chat?.queued || []).length;
    const queued = (this.chat?.queued || []).filter((q) => q.rerun_of == null);
    const settled = !running && !(this.chat?.queued || []).length;
    if (settled && ["error", "interrupted"].includes(this.chat?.status) && sorted.some((m) => m.role === "user")) {
      items.push({ key: "retry", kind: "retry", text: this.chat.status });
    }
    for (const entry of queued) {
      items.push({ key: `q${entry.id}`, kind: "queued", id: entry.id, text: entry.content });
    }
    return items;
  }

  persistedCard(part) {
    const live = this.live.calls.get(part.tool_call_id);
    const result = this.results.get(part.tool_call_id);
    const waiting = this.approvals.has(part.tool_call_id) && !result;
    const stopped = !result && !waiting && !(this.chat?.running && live);
    return { id: part.tool_call_id, name: part.tool_name, source: part.source, server: part.server,
      args: part.args, hasArgs: true, argsText: "", startedAt: live?.startedAt, result,
      interrupted: stopped, reports: this.live.reports.get(part.tool_call_id), answer: this.answer,
      approval: waiting ? "pending" : null, approve: (body) => this.answerApproval(part.tool_call_id, body) };
  }

  liveCard(id, call) {
    const info = this.toolInfo.get(call.name);
    let args = call.args;
    return { id, name: call.name, source: info?.source, server: info?.server, args, hasArgs: Boolean(call.hasArgs),
      argsText: call.argsText, startedAt: call.startedAt, result: this.results.get(id),
      interrupted: !this.chat?.running && !this.results.get(id), reports: this.live.reports.get(id), answer: this.answer,
      approval: this.approvals.has(id) && !this.results.get(id) ? "pending" : null,
      approve: (body) => this.answerApproval(id, body) };
  }

  async answerApproval(callId, body) {
    try {
      await api.answerApproval(this.chatId, callId, body);
      this.approvals.delete(callId);
      if (body.always) this.refreshChat();
      this.scheduleRender();
    } catch (error) {
      this.app.toast(`Could not send the answer: ${error.message}`, "error");
      this.refreshChat();
    }
  }

  render() {
    if (!this.chat) return;
    const nearBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 80;
    this.renderHeader();
    const items = this.items();
    const seen = new Set();
    let previous = null;
    for (const item of items) {
      seen.add(item.key);
      let node = this.nodes.get(item.key);
      const sig = signature(item);
      if (!node || node.kind !== item.kind) {
        node?.el.remove();
        node = this.makeNode(item);
        this.nodes.set(item.key, node);
      } else if (node.sig !== sig) {
        node.update(item);
      }
      node.sig = sig;
      node.el.classList.toggle("is-superseded", Boolean(item.superseded));
      const want = previous ? previous.nextSibling : this.transcript.firstChild;
      if (want !== node.el) this.transcript.insertBefore(node.el, want);
      previous = node.el;
    }
    for (const [key, node] of this.nodes) {
      if (!seen.has(key)) { node.el.remove(); this.nodes.delete(key); }
    }
    if (!items.length) {
      this.transcript.replaceChildren(emptyChat(this.chat));
      this.nodes.clear();
    } else {
      this.transcript.querySelector(".empty-chat")?.remove();
    }
    if (nearBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  makeNode(item) {
    switch (item.kind) {
      case "user": {
        let text = item.text;
        const bubble = h("div", { class: "bubble" });
        // replaceChildren would show a null as the text "null": only what there is.
        const fill = (next) => bubble.replaceChildren(...[next.text,
          next.extras?.length ? h("div", { class: "msg-attachments" }, next.extras.map((x) => h("span", { class: "attachment-chip" }, x))) : null].filter((x) => x != null));
        fill(item);
        // The last message can be edited and run again (a retry with the new text).
        const edit = h("button", { class: "btn-icon btn-edit", type: "button", title: "Edit and run again",
          "aria-label": "Edit", hidden: !item.editable, onclick: () => this.editLast(el, bubble, text) }, icon("pencil"));
        const actions = messageActions(() => text);
        actions.prepend(edit);
        const el = h("div", { class: "msg msg-user" }, bubble, actions);
        return { kind: item.kind, el, update: (next) => {
          text = next.text;
          fill(next);
          edit.hidden = !next.editable;
          if (!next.editable) {
            el.querySelector(".edit-box")?.remove();
            bubble.hidden = false;
          }
        } };
      }
      case "text": {
        let text = item.text;
        const body = h("div", { class: "markdown" });
        const actions = messageActions(() => text);
        const el = h("div", { class: "msg msg-assistant" }, body, actions);
        const update = (next) => {
          text = next.text;
          body.replaceChildren(renderMarkdown(next.text));
          el.classList.toggle("streaming", Boolean(next.streaming));
          actions.hidden = Boolean(next.streaming); // copied once it is whole
        };
        update(item);
        return { kind: item.kind, el, update };
      }
      case "reasoning": {
        const body = h("div", { class: "reasoning-body" });
        const el = h("details", { class: "msg reasoning" }, h("summary", {}, "Reasoning"), body);
        const update = (next) => body.replaceChildren(next.text);
        update(item);
        return { kind: item.kind, el, update };
      }
      case "tool": {
        const card = new ToolCard(item.call);
        return { kind: item.kind, el: h("div", { class: "msg msg-tool" }, card.el), update: (next) => card.update(next.call) };
      }
      case "error": {
        let value = item.text;
        const text = h("div", { class: "error-text" }, value);
        const el = h("div", { class: "msg msg-error", role: "alert" }, icon("alert"), text, messageActions(() => value));
        return { kind: item.kind, el, update: (next) => { value = next.text; text.replaceChildren(value); } };
      }
      case "interrupted": {
        const el = h("div", { class: "msg notice interrupted-mark" });
        const update = (next) => el.replaceChildren(h("strong", {}, "Interrupted"), next.text ? ` · ${next.text}` : "");
        update(item);
        return { kind: item.kind, el, update };
      }
      case "attempt": {
        const button = h("button", { class: "btn-link", type: "button" });
        const el = h("div", { class: "msg attempt" }, icon("refresh"), h("span", {}, "An earlier attempt was replaced by a retry."), button);
        const update = (next) => {
          button.textContent = next.open ? "Hide it" : "Show it";
          button.setAttribute("aria-expanded", String(next.open));
        };
        button.addEventListener("click", () => {
          if (this.openAttempts.has(item.key)) this.openAttempts.delete(item.key);
          else this.openAttempts.add(item.key);
          this.render();
        });
        update(item);
        return { kind: item.kind, el, update };
      }
      case "retry": {
        const button = h("button", { class: "btn-ghost btn-sm retry-button", type: "button",
          onclick: () => this.retryTurn(button) }, icon("refresh"), "Retry");
        const note = h("span", { class: "muted small" });
        const update = (next) => {
          note.textContent = next.text === "error" ? "The last turn ended in an error." : "The last turn was interrupted.";
        };
        update(item);
        return { kind: item.kind, el: h("div", { class: "msg retry-row" }, button, note), update };
      }
      case "thinking":
        return { kind: item.kind, el: h("div", { class: "msg thinking", "aria-label": "The model is working" },
          h("span", { class: "dot" }), h("span", { class: "dot" }), h("span", { class: "dot" })), update() {} };
      case "queued": {
        const text = h("div", { class: "bubble" }, item.text);
        const el = h("div", { class: "msg msg-user queued" }, text,
          h("div", { class: "queued-meta" }, h("span", { class: "chip" }, "Queued"),
            h("button", { class: "btn-link", type: "button", onclick: () => this.unqueue(item.id) }, "Cancel")));
        return { kind: item.kind, el, update: (next) => text.replaceChildren(next.text) };
      }
      default:
        return { kind: item.kind, el: h("div"), update() {} };
    }
  }

  renderHeader() {
    const chat = this.chat;
    this.renderModelPicker();
    if (this.titleEl.textContent !== chat.title && !this.renaming) this.titleEl.textContent = chat.title;
    document.title = `${chat.title} · workdock`;
    const workspace = this.app.workspace(chat.workspace_id);
    const model = chat.model || "no model";
    this.metaEl.replaceChildren(
      h("span", { class: "meta-item meta-workspace", title: workspace?.path || workspace?.agent_url || "" },
        icon("server"), h("span", { class: "meta-text" }, workspace?.name || "workspace")),
      h("span", { class: "meta-sep" }, "·"),
      h("span", { class: "meta-item meta-model", title: model }, h("span", { class: "meta-text mono" }, model)));
    const status = chat.running ? "running" : chat.status;
    const label = { running: "Running", idle: "Ready", error: "Error", interrupted: "Interrupted" }[status] || status;
    this.statusEl.className = `status-pill status-${status}`;
    this.statusEl.title = label;
    this.statusEl.replaceChildren(status === "running" ? h("span", { class: "spinner spinner-xs" }) : h("span", { class: "status-dot" }),
      h("span", { class: "label" }, label));
    this.stopButton.hidden = !chat.running;
    if (document.activeElement !== this.policySelect) this.policySelect.value = chat.approval_policy || "auto";
  }

  async setPolicy(policy) {
    try {
      this.chat = { ...this.chat, ...(await api.patchChat(this.chatId, { approval_policy: policy })) };
      this.render();
    } catch (error) {
      this.app.toast(error.message, "error");
    }
  }

  // Counts, not alarm: a failed optional server is worth a number. Red only when a whole source
  // is gone (the workspace agent unreachable: no workspace tools, and the built-ins cannot run).
  renderToolsButton() {
    const failures = [...this.sourceFailures, ...this.serverFailures.filter((f) => !f.starting)];
    const ready = [...this.toolInfo.values()].filter((t) => t.state !== "disabled").length;
    const alarm = failures.some((f) => !f.server);
    const button = this.toolsButton;
    button.classList.toggle("has-failures", alarm);
    button.dataset.ready = String(ready);
    button.dataset.failed = String(failures.length);
    button.replaceChildren(icon("tools"), h("span", { class: "label" }, "Tools"),
      h("span", { class: "tools-count" }, String(ready)),
      failures.length ? h("span", { class: "tools-failed" }, `· ${failures.length}`, h("span", { class: "label" }, " failed")) : null);
    const names = failures.map((f) => f.server || (f.source === "workspace" ? "workspace agent" : f.source));
    button.title = `${ready} tool${ready === 1 ? "" : "s"} ready${failures.length ? ` · ${failures.length} failed: ${names.join(", ")}` : ""}`;
    button.setAttribute("aria-label", `Tools: ${button.title}`);
  }

  // ---- actions --------------------------------------------------------------------------------

  async send() {
    const content = this.input.value;
    const attachments = this.menus.attachments();
    if (!content.trim() && !attachments.length) return;
    this.input.value = "";
    this.autosize();
    try {
      const answer = await api.send(this.chatId, content.trim() ? content : "", attachments);
      this.menus.clearAttachments();
      if (answer.queued) await this.refreshChat();
      this.app.refreshChats();
    } catch (error) {
      this.input.value = content;
      this.autosize();
      this.app.toast(`Not sent: ${error.message}`, "error");
    }
  }

  /** Edit the last user message in place; "Run again" re-runs the turn from the edited text. */
  editLast(el, bubble, text) {
    if (el.querySelector(".edit-box")) return;
    const area = h("textarea", { class: "edit-input", rows: 3, "aria-label": "Edited text" });
    area.value = text;
    const box = h("div", { class: "edit-box" }, area,
      h("div", { class: "edit-buttons" },
        h("button", { class: "btn-ghost btn-sm", type: "button", onclick: () => { box.remove(); bubble.hidden = false; } }, "Cancel"),
        h("button", { class: "btn-primary btn-sm", type: "button", onclick: async ({ currentTarget: button }) => {
          const content = area.value;
          if (!content.trim()) return;
          button.disabled = true;
          try {
            await api.retry(this.chatId, content);
            box.remove();
            bubble.hidden = false;
          } catch (error) {
            button.disabled = false;
            this.app.toast(`Could not run again: ${error.message}`, "error");
          }
        } }, "Run again")));
    bubble.hidden = true;
    el.insertBefore(box, bubble);
    area.focus();
  }

  async retryTurn(button) {
    button.disabled = true;
    try {
      await api.retry(this.chatId);
    } catch (error) {
      this.app.toast(`Could not retry: ${error.message}`, "error");
      button.disabled = false;
      this.refreshChat();
    }
  }

  async interrupt() {
    this.stopButton.disabled = true;
    try {
      await api.interrupt(this.chatId);
    } catch (error) {
      this.app.toast(`Could not stop: ${error.message}`, "error");
    } finally {
      this.stopButton.disabled = false;
    }
  }

  async unqueue(queuedId) {
    try {
      await api.unqueue(this.chatId, queuedId);
    } catch (error) {
      this.app.toast(error.message, "error");
    }
    this.refreshChat();
  }

  rename() {
    if (this.renaming || !this.chat) return;
    this.renaming = true;
    const input = h("input", { class: "rename-input", value: this.chat.title, "aria-label": "Chat title", maxlength: 200 });
    const done = async (save) => {
      if (!this.renaming) return;
      this.renaming = false;
      const title = input.value.trim();
      input.replaceWith(this.titleEl);
      if (save && title && title !== this.chat.title) {
        try {
          this.chat = await api.patchChat(this.chatId, { title });
          this.app.refreshChats();
        } catch (error) {
          this.app.toast(error.message, "error");
        }
      }
      this.render();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") done(true);
      if (e.key === "Escape") done(false);
    });
    input.addEventListener("blur", () => done(true));
    this.titleEl.replaceWith(input);
    input.focus();
    input.select();
  }

  async remove() {
    if (!confirm(`Delete “${this.chat?.title || "this chat"}”? Its history is deleted too.`)) return;
    try {
      await api.deleteChat(this.chatId);
      this.app.refreshChats();
      location.hash = "#/";
    } catch (error) {
      this.app.toast(error.message, "error");
    }
  }

  toggleTools(force) {
    const open = force ?? !this.el.classList.contains("tools-open");
    this.el.classList.toggle("tools-open", open);
    if (open) this.loadTools();
  }
}

/** A message's actions: an icon-only copy button, so the message's own text stays just its text. */
function messageActions(getText) {
  const button = h("button", { class: "btn-icon btn-copy", type: "button", title: "Copy to the clipboard", "aria-label": "Copy" },
    icon("copy"));
  button.addEventListener("click", async () => {
    const ok = await copyText(getText());
    button.replaceChildren(icon(ok ? "check" : "x"));
    button.setAttribute("aria-label", ok ? "Copied" : "Copy failed");
    setTimeout(() => {
      button.replaceChildren(icon("copy"));
      button.setAttribute("aria-label", "Copy");
    }, 1500);
  });
  return h("div", { class: "msg-actions" }, button);
}

function newLive() {
  return { texts: new Map(), calls: new Map(), order: [], reports: new Map() };
}

function signature(item) {
  switch (item.kind) {
    case "text":
    case "reasoning":
      return `${item.text.length}:${item.streaming ? 1 : 0}:${item.text.slice(-16)}`;
    case "attempt":
      return item.open ? "open" : "closed";
    case "user":
      return `${item.editable ? 1 : 0}:${item.text}\u0000${(item.extras || []).join(" ")}`;
    case "tool":
      return JSON.stringify([item.call.hasArgs, item.call.argsText?.length, item.call.source, item.call.server,
        item.call.interrupted, item.call.approval, item.call.result?.duration_ms, item.call.result?.is_error,
        item.call.reports?.version,
        item.call.result ? JSON.stringify(item.call.result.content).length : -1]);
    case "user":
      return `${item.text}\u0000${(item.extras || []).join(" ")}`;
    default:
      return item.text ?? "";
  }
}

function emptyChat(chat) {
  return h("div", { class: "empty-chat" },
    h("div", { class: "empty-icon" }, icon("chat")),
    h("h2", {}, "Ask anything about this workspace"),
    h("p", { class: "muted" }, `The model can read and edit files, run commands and use every MCP tool of the workspace. Started ${timeAgo(chat.created_at)}.`));
}
