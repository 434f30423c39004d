// A tool's request for input, as a form built from its JSON schema (the flat schemas MCP
// elicitation allows: string, number, integer, boolean, enums single or multiple), with required
// marks and defaults; Accept sends the values, Decline and Cancel send no content.
//
// The form element lives as long as its request: a card that re-renders (progress, output) moves
// the same element, so what the user typed stays.

import { h } from "./dom.js";

const FORMATS = { email: "email", uri: "url", date: "date", "date-time": "datetime-local" };

/** request: {elicitationId, status, mode, message, requested_schema | url}; answer(action, content) → Promise */
export class ElicitationForm {
  constructor(request, answer) {
    this.request = request;
    this.answer = answer;
    this.error = h("div", { class: "elicit-error", role: "alert", hidden: true });
    this.fields = [];
    this.form = h("form", { class: "elicit-form", dataset: { elicitationId: request.elicitationId },
      "aria-label": "Input requested by the tool" });
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.send("accept"); });
    this.build();
    this.el = h("div", { class: "elicitation" }, this.form);
    this.status = null;
    this.update(request);
  }

  build() {
    const { request } = this;
    const children = [h("div", { class: "elicit-message" }, request.message || "The tool asks for input.")];
    if (request.mode === "url") {
      children.push(h("a", { class: "elicit-url", href: request.url, target: "_blank", rel: "noopener noreferrer" }, request.url));
    } else {
      const schema = request.requested_schema || {};
      const required = new Set(schema.required || []);
      for (const [name, property] of Object.entries(schema.properties || {})) {
        const field = makeField(name, property || {}, required.has(name));
        this.fields.push(field);
        children.push(field.el);
      }
    }
    this.buttons = [
      h("button", { class: "btn-primary btn-sm", type: "submit", dataset: { action: "accept" } }, request.mode === "url" ? "Done" : "Accept"),
      h("button", { class: "btn-ghost btn-sm", type: "button", dataset: { action: "decline" }, onclick: () => this.send("decline") }, "Decline"),
      h("button", { class: "btn-ghost btn-sm", type: "button", dataset: { action: "cancel" }, onclick: () => this.send("cancel") }, "Cancel"),
    ];
    children.push(this.error, h("div", { class: "elicit-actions" }, this.buttons));
    this.form.replaceChildren(...children);
  }

  /** Reflect the request's status: pending (answerable), answered, or expired. */
  update(request) {
    this.request = request;
    if (this.status === request.status) return;
    this.status = request.status;
    const pending = request.status === "pending";
    for (const el of this.form.querySelectorAll("input, select, button")) el.disabled = !pending;
    this.el.dataset.status = request.status;
    this.note?.remove();
    if (!pending) {
      const text = { accept: "Answered", decline: "Declined", cancel: "Cancelled", expired: "No longer asked: the call ended" }[request.status] || request.status;
      this.note = h("div", { class: "elicit-status muted small" }, text);
      this.el.append(this.note);
    }
  }

  async send(action) {
    let content;
    if (action === "accept" && this.request.mode !== "url") {
      if (!this.form.reportValidity()) return;
      content = {};
      for (const field of this.fields) {
        const value = field.value();
        if (value !== undefined) content[field.name] = value;
      }
    }
    this.error.hidden = true;
    for (const button of this.buttons) button.disabled = true;
    try {
      await this.answer(action, content);
      this.update({ ...this.request, status: action });
    } catch (error) {
      this.error.hidden = false;
      this.error.textContent = error.message;
      if (error.status === 404 || error.status === 409) this.update({ ...this.request, status: "expired" });
      else for (const button of this.buttons) button.disabled = false;
    }
  }
}

function choices(property) {
  const options = property.oneOf || property.anyOf;
  if (Array.isArray(options)) return options.map((o) => ({ value: o.const, label: o.title ?? String(o.const) }));
  if (Array.isArray(property.enum)) {
    return property.enum.map((value, i) => ({ value, label: property.enumNames?.[i] ?? String(value) }));
  }
  return null;
}

function makeField(name, property, required) {
  const id = `elicit-${Math.random().toString(36).slice(2)}-${name}`;
  const title = property.title || name;
  const label = h("label", { class: "elicit-label", for: id }, title,
    required ? h("span", { class: "required", "aria-hidden": "true", title: "required" }, " *") : null);
  const help = property.description ? h("div", { class: "muted small" }, property.description) : null;
  const type = property.type;
  const single = choices(property);
  const multi = type === "array" ? choices(property.items || {}) : null;
  let control;
  let value;
  if (multi) {
    const chosen = new Set(Array.isArray(property.default) ? property.default : []);
    const boxes = multi.map((option) => h("label", { class: "elicit-choice" },
      h("input", { type: "checkbox", value: String(option.value), checked: chosen.has(option.value) }), option.label));
    control = h("div", { class: "elicit-choices", id, role: "group", "aria-label": title }, boxes);
    value = () => boxes.map((b) => b.firstChild).filter((input) => input.checked).map((input) => input.value);
  } else if (single) {
    control = h("select", { id, name, required },
      required && property.default === undefined ? h("option", { value: "" }, "Choose…") : null,
      !required ? h("option", { value: "" }, "—") : null,
      single.map((option) => h("option", { value: String(option.value), selected: option.value === property.default }, option.label)));
    value = () => {
      if (control.value === "") return undefined;
      const option = single.find((o) => String(o.value) === control.value);
      return option ? option.value : control.value;
    };
  } else if (type === "boolean") {
    control = h("input", { id, name, type: "checkbox", checked: property.default === true });
    value = () => control.checked;
    return { name, el: h("div", { class: "elicit-field elicit-boolean" }, h("label", { class: "elicit-label" }, control, " ", title), help), value };
  } else if (type === "number" || type === "integer") {
    control = h("input", { id, name, type: "number", required, step: type === "integer" ? "1" : "any",
      min: property.minimum, max: property.maximum, value: property.default !== undefined ? String(property.default) : undefined });
    value = () => (control.value === "" ? undefined : type === "integer" ? parseInt(control.value, 10) : Number(control.value));
  } else {
    control = h("input", { id, name, type: FORMATS[property.format] || "text", required,
      minlength: property.minLength, maxlength: property.maxLength,
      value: property.default !== undefined ? String(property.default) : undefined });
    value = () => (control.value === "" && !required ? undefined : control.value);
  }
  return { name, el: h("div", { class: "elicit-field" }, label, control, help), value };
}
