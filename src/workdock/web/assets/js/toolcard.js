// One tool call as a collapsible card: name, origin, arguments (as they stream in), state badge,
// duration and result. `execute` and `edit_files` get views of their own.
//
// A call that waits for approval shows Approve / Deny (with an optional reason) and "always allow
// in this chat" in a slot of its own, so other requests to the user (such as a request for input)
// can sit beside it on the same card.
//
// A card keeps its element for the whole life of the call (streaming → running → done, live →
// persisted) and is only updated, so an open card stays open while the turn goes on.

import { copyButton, formatDuration, h, icon } from "./dom.js";
import { ElicitationForm } from "./elicitation.js";

const TEXT_PREVIEW_CHARS = 1500;
const TEXT_PREVIEW_LINES = 24;
const IMAGE_TYPES = /^image\/(png|jpeg|gif|webp|bmp|avif)$/i;

/**
 * call: {id, name, source, server, argsText, args, hasArgs, startedAt, result, reports, answer, approval, approve}
 * approval: "pending" while the call waits for the user; approve(body) sends {approve, reason?, always?}
 * result: {is_error, content: [{type, text|data, media_type}], structured_content, duration_ms}
 * reports (while it runs): {progress: {progress, total, message}, output, elicitations: [request], version}
 * answer(elicitationId, action, content) → Promise: sends the user's answer to a request for input
 */
export class ToolCard {
  constructor(call) {
    this.summary = h("summary", { class: "tool-summary" });
    this.body = h("div", { class: "tool-body" });
    this.el = h("details", { class: "tool-card", dataset: { callId: call.id, tool: call.name } },
      this.summary, this.body);
    this.signature = null;
    this.forms = new Map(); // elicitation id → ElicitationForm, kept across renders
    this.update(call);
  }

  state(call) {
    if (call.result) return call.result.denied ? "denied" : call.result.is_error ? "error" : "done";
    if (call.approval === "pending") return "approval";
    if (call.interrupted) return "stopped";
    if (call.reports?.elicitations?.some((r) => r.status === "pending")) return "asking";
    return call.hasArgs ? "running" : "streaming";
  }

  update(call) {
    const state = this.state(call);
    const signature = JSON.stringify([state, call.approval, call.argsText?.length, call.hasArgs, call.source, call.server,
      call.result ? [call.result.duration_ms, call.result.content?.length, JSON.stringify(call.result.content).length] : null,
      call.reports?.version]);
    this.el.dataset.state = state;
    if (signature === this.signature) return;
    if (state === "approval" && this.shown !== "approval") this.el.open = true; // the question is in the body
    this.shown = state;
    this.signature = signature;
    this.call = call;
    this.renderSummary(call, state);
    this.renderBody(call, state);
  }

  renderSummary(call, state) {
    const kind = call.name === "execute" ? "terminal" : /file/.test(call.name) ? "file" : "tools";
    const duration = call.result?.duration_ms;
    this.summary.replaceChildren(
      icon("chevron", "icon chevron"),
      h("span", { class: `tool-icon tool-icon-${kind}` }, icon(kind)),
      h("span", { class: "tool-name", title: call.name }, call.name),
      h("span", { class: "tool-preview" }, argsPreview(call)),
      h("span", { class: "tool-meta" },
        sourceChip(call),
        duration !== undefined && duration !== null
          ? h("span", { class: "tool-duration" }, formatDuration(duration))
          : (state === "running" || state === "asking") && call.startedAt
            ? h("span", { class: "tool-duration", dataset: { since: String(call.startedAt) } }, formatDuration(Date.now() - call.startedAt))
            : null,
        badge(state)),
    );
  }

  renderBody(call, state) {
    const sections = [];
    if (call.name === "execute" && call.args && typeof call.args === "object") {
      sections.push(section("Command", h("pre", { class: "terminal-command" }, h("span", { class: "prompt" }, "$ "),
        String(call.args.command ?? "")), call.args.cwd ? h("div", { class: "muted small" }, `in ${call.args.cwd}`) : null));
    } else {
      sections.push(section("Arguments", argsView(call)));
    }
    if (state === "approval") sections.push(approvalView(call));
    const reports = call.reports;
    for (const request of reports?.elicitations || []) {
      let form = this.forms.get(request.elicitationId);
      if (!form) {
        form = new ElicitationForm(request, (action, content) => call.answer(request.elicitationId, action, content));
        this.forms.set(request.elicitationId, form);
      } else {
        form.update(request);
      }
      if (request.status === "pending" || !call.result) sections.push(section("Input requested", form.el));
    }
    if (call.result) {
      const title = call.name === "execute" ? "Output" : call.result.is_error ? "Error" : "Result";
      sections.push(section(title, resultView(call)));
    } else if (state === "running" || state === "streaming" || state === "asking") {
      if (reports?.output) {
        sections.push(section("Output", h("div", { class: "terminal" },
          h("pre", { class: "result-text terminal-output live-output" }, reports.output))));
      }
      if (reports?.progress) sections.push(progressView(reports.progress));
      sections.push(h("div", { class: "tool-waiting" }, h("span", { class: "spinner" }),
        state === "streaming" ? "Receiving arguments…" : state === "asking" ? "Waiting for your answer…" : "Running…"));
    }
    this.body.replaceChildren(...sections);
    const live = this.body.querySelector(".live-output");
    if (live) live.scrollTop = live.scrollHeight; // follow the end, as a terminal does
    if (reports?.elicitations?.some((r) => r.status === "pending")) this.el.open = true; // a question is never hidden
  }
}

function approvalView(call) {
  const reason = h("input", { class: "approval-reason", type: "text", maxlength: "2000",
    placeholder: "Reason (optional, the model reads it)", "aria-label": "Reason for denying" });
  const always = h("input", { type: "checkbox", class: "approval-always" });
  const buttons = [];
  const send = (body) => {
    for (const button of buttons) button.disabled = true;
    call.approve?.(body);
  };
  const approve = h("button", { class: "btn-primary btn-sm approve", type: "button",
    onclick: () => send({ approve: true, always: always.checked }) }, "Approve");
  const deny = h("button", { class: "btn-ghost btn-sm deny", type: "button",
    onclick: () => send({ approve: false, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) }) }, "Deny");
  buttons.push(approve, deny);
  return h("section", { class: "tool-section tool-approval", role: "group", "aria-label": "Approve this call" },
    h("div", { class: "tool-section-title" }, "This call waits for your approval"),
    h("div", { class: "approval-row" }, approve, deny, reason),
    h("label", { class: "approval-always-label small" }, always, ` Always allow ${call.name} in this chat`));
}

function progressView({ progress, total, message }) {
  const known = typeof total === "number" && total > 0;
  const percent = known ? Math.max(0, Math.min(100, (progress / total) * 100)) : null;
  const label = message || (known ? `${Math.round(percent)} %` : `${progress}`);
  return h("div", { class: "tool-progress" },
    h("progress", { max: known ? "100" : undefined, value: known ? String(percent) : undefined, "aria-label": "Progress" }),
    h("span", { class: "tool-progress-label muted small" }, label));
}

function section(title, ...content) {
  return h("section", { class: "tool-section" }, h("div", { class: "tool-section-title" }, title), ...content);
}

function badge(state) {
  const labels = { streaming: "preparing", running: "running", done: "done", error: "error", stopped: "stopped",
    asking: "needs input", approval: "needs approval", denied: "denied" };
  return h("span", { class: `badge badge-${state}` },
    state === "running" || state === "streaming" ? h("span", { class: "spinner spinner-xs" }) : null,
    labels[state]);
}

export function sourceLabel(source, server) {
  if (source === "builtin") return "built-in";
  if (source === "admin") return server ? `admin · ${server}` : "admin server";
  if (source === "workspace") return server ? `workspace · ${server}` : "workspace server";
  return null;
}

function sourceChip(call) {
  const label = sourceLabel(call.source, call.server);
  return label ? h("span", { class: `chip chip-${call.source}`, title: "where this tool comes from" }, label) : null;
}

function argsPreview(call) {
  const args = call.args;
  if (args && typeof args === "object") {
    if (call.name === "execute" && typeof args.command === "string") return args.command;
    if (typeof args.path === "string") return args.path;
    if (call.name === "edit_files" && Array.isArray(args.files)) return args.files.map((f) => f?.path).filter(Boolean).join(", ");
    const text = JSON.stringify(args);
    return text === "{}" ? "" : text;
  }
  return call.argsText || "";
}

function argsView(call) {
  if (call.hasArgs && call.args !== undefined) {
    if (call.name === "edit_files" && Array.isArray(call.args?.files)) {
      return h("div", {}, call.args.files.map((file) => h("div", { class: "mono small" },
        `${file?.path ?? "?"} — ${Array.isArray(file?.edits) ? file.edits.length : 0} edit(s)`)));
    }
    const text = typeof call.args === "string" ? call.args : JSON.stringify(call.args, null, 2);
    return clippedText(text, "json");
  }
  // Still streaming: the raw JSON text so far, with a caret.
  return h("pre", { class: "json streaming" }, call.argsText || "", h("span", { class: "caret" }));
}

function resultText(result) {
  return (result.content || []).filter((b) => b.type === "text").map((b) => b.text || "").join("\n");
}

function resultView(call) {
  const { result } = call;
  const parts = [];
  const text = resultText(result);
  if (call.name === "execute" && !/^started in the background/.test(text)) {
    parts.push(executeView(text, result.is_error));
  } else if (call.name === "edit_files" && !result.is_error) {
    parts.push(diffView(text));
  } else if (text) {
    parts.push(clippedText(text, result.is_error ? "error-text" : ""));
  }
  for (const block of result.content || []) {
    if (block.type === "image" && block.data && IMAGE_TYPES.test(block.media_type || "")) {
      parts.push(h("img", { class: "tool-image", alt: block.name || "image from the tool",
        src: `data:${block.media_type};base64,${block.data.replace(/[^A-Za-z0-9+/=]/g, "")}` }));
    }
  }
  if (result.structured_content !== null && result.structured_content !== undefined) {
    parts.push(h("div", { class: "tool-section-title sub" }, "Structured content"),
      clippedText(JSON.stringify(result.structured_content, null, 2), "json"));
  }
  if (!parts.length) parts.push(h("div", { class: "muted small" }, "(empty result)"));
  return h("div", { class: "tool-result" }, parts);
}

/** Text cut to a preview with "Show more"; the full text is only laid out when asked for. */
export function clippedText(text, cls = "") {
  const lines = text.split("\n");
  let preview = text;
  if (lines.length > TEXT_PREVIEW_LINES) preview = lines.slice(0, TEXT_PREVIEW_LINES).join("\n");
  if (preview.length > TEXT_PREVIEW_CHARS) preview = preview.slice(0, TEXT_PREVIEW_CHARS);
  const pre = h("pre", { class: `result-text ${cls}` }, preview);
  const copy = copyButton(() => text);
  if (preview.length === text.length) return h("div", { class: "clipped" }, h("div", { class: "clip-actions" }, copy), pre);
  const more = h("button", { class: "btn-link show-more", type: "button" },
    `Show more (${(text.length - preview.length).toLocaleString()} more characters)`);
  let open = false;
  more.addEventListener("click", () => {
    open = !open;
    pre.textContent = open ? text : preview;
    more.textContent = open ? "Show less" : `Show more (${(text.length - preview.length).toLocaleString()} more characters)`;
  });
  return h("div", { class: "clipped" }, h("div", { class: "clip-actions" }, copy), pre, more);
}

function executeView(text, isError) {
  // The built-in tool ends its text with "[exit code N]" (plus "(timed out)" when it was).
  const match = /\n?\[exit code (-?\d+|None|null)([^\]]*)\]\s*$/.exec(text);
  const output = match ? text.slice(0, match.index) : text;
  const code = match ? match[1] : null;
  return h("div", { class: "terminal" },
    output ? clippedText(output, "terminal-output") : h("div", { class: "muted small" }, "(no output)"),
    code !== null
      ? h("div", { class: `exit-code ${code === "0" ? "ok" : "bad"}` }, `exit code ${code}${match[2] || ""}`)
      : isError ? null : null);
}

function diffView(text) {
  const lines = text.replace(/\n+$/, "").split("\n");
  const pre = h("pre", { class: "diff" });
  for (const [index, line] of lines.entries()) {
    const cls = line.startsWith("+++") || line.startsWith("---") ? "diff-file"
      : line.startsWith("@@") ? "diff-hunk" : line.startsWith("+") ? "diff-add" : line.startsWith("-") ? "diff-del" : "";
    pre.append(h("span", { class: `diff-line ${cls}` }, line || " "), index < lines.length - 1 ? "\n" : "");
  }
  return h("div", { class: "clipped" }, h("div", { class: "clip-actions" }, copyButton(() => text)), pre);
}

/** Tick the "running for" durations of live cards once a second. */
export function tickDurations(root) {
  for (const el of root.querySelectorAll("[data-since]")) {
    el.textContent = formatDuration(Date.now() - Number(el.dataset.since));
  }
}
