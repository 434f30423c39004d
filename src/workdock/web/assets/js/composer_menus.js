// The composer's `@` and `/` menus.
//
// `@` (at the start or after a space) lists the resources of the chat's workspace and of the admin
// servers, filtered by what follows it; picking one attaches it (a chip above the input; it is read
// and sent with the message). `/` at the start of an empty message lists the prompts with their
// arguments; picking one opens a small form for its arguments (or runs it at once when it has
// none), and the prompt's messages become the user's message.

import { api } from "./api.js";
import { h, icon } from "./dom.js";

const MAX_SHOWN = 50;
const AT = /(^|\s)@([^\s@]*)$/;
const SLASH = /^\/(\S*)$/;

export class ComposerMenus {
  constructor(view) {
    this.view = view;
    this.input = view.input;
    this.attached = []; // {uri, server, source, label}
    this.mode = null; // "resource" | "prompt" | null
    this.items = [];
    this.query = ""; // what follows the @ or / now (a list that loads late is filtered by it)
    this.active = 0;
    this.cache = { resources: null, prompts: null };
    this.chips = h("div", { class: "attachment-chips", hidden: true });
    this.list = h("ul", { class: "composer-menu", role: "listbox", hidden: true, "aria-label": "Suggestions" });
    this.form = h("form", { class: "prompt-form", hidden: true });
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.runForm(); });
    this.el = h("div", { class: "composer-extras" }, this.list, this.form, this.chips);
    // Capture: ahead of the composer's own Enter-to-send while a menu is open.
    this.input.addEventListener("keydown", (event) => this.onKey(event), { capture: true });
    this.input.addEventListener("input", () => this.update());
    this.input.addEventListener("blur", () => setTimeout(() => { if (!this.el.contains(document.activeElement)) this.close(); }, 150));
  }

  // ---- what the composer sends --------------------------------------------------------------

  attachments() {
    return this.attached.map(({ uri, server, source }) => ({ uri, server, source }));
  }

  clearAttachments() {
    this.attached = [];
    this.renderChips();
  }

  // ---- the menus ----------------------------------------------------------------------------

  async update() {
    const before = this.input.value.slice(0, this.input.selectionStart ?? this.input.value.length);
    const at = AT.exec(before);
    const slash = SLASH.exec(this.input.value);
    if (at) await this.open("resource", at[2]);
    else if (slash) await this.open("prompt", slash[1]);
    else this.close();
  }

  async load(kind) {
    const key = kind === "resource" ? "resources" : "prompts";
    try {
      const answer = kind === "resource" ? await api.resources(this.view.chatId) : await api.prompts(this.view.chatId);
      this.cache[key] = kind === "resource" ? answer.resources : answer.prompts;
    } catch (error) {
      this.cache[key] = [];
      this.view.app.toast(`Could not list ${key}: ${error.message}`, "error");
    }
    return this.cache[key];
  }

  async open(kind, query) {
    const fresh = this.mode !== kind;
    this.mode = kind;
    this.query = query;
    // Listed afresh each time a menu opens (servers come and go), then filtered as one types.
    const all = fresh || !this.cache[kind === "resource" ? "resources" : "prompts"]
      ? await this.load(kind) : this.cache[kind === "resource" ? "resources" : "prompts"];
    if (this.mode !== kind) return; // closed while loading
    // What is typed by now: keys pressed while the list loaded have filtered it already, and this
    // late answer must not show the list as it was when the menu opened.
    const q = this.query.toLowerCase();
    const text = (item) => kind === "resource"
      ? `${item.uri} ${item.name || ""} ${item.title || ""} ${item.server_name}`.toLowerCase()
      : `${item.name} ${item.title || ""} ${item.description || ""}`.toLowerCase();
    this.items = all.filter((item) => text(item).includes(q)).slice(0, MAX_SHOWN);
    this.active = Math.min(this.active, Math.max(this.items.length - 1, 0));
    if (fresh) this.active = 0;
    this.renderList();
  }

  close() {
    this.mode = null;
    this.items = [];
    this.list.hidden = true;
    this.input.removeAttribute("aria-activedescendant");
  }

  renderList() {
    const kind = this.mode;
    this.list.replaceChildren(...(this.items.length ? this.items.map((item, index) => {
      const main = kind === "resource" ? item.uri : `/${item.name}`;
      const about = kind === "resource"
        ? [item.title || item.name, item.mime_type].filter(Boolean).join(" · ")
        : [item.description, item.arguments.map((a) => (a.required ? `${a.name}*` : a.name)).join(", ")].filter(Boolean).join(" · ");
      const li = h("li", { class: `menu-item${index === this.active ? " active" : ""}`, role: "option", id: `menu-${index}`,
        "aria-selected": index === this.active ? "true" : "false", dataset: { value: main } },
        h("span", { class: "menu-main" }, main),
        h("span", { class: "chip" }, `${item.source} · ${item.server_name}`),
        about ? h("span", { class: "menu-about" }, about) : null);
      li.addEventListener("mousedown", (event) => { event.preventDefault(); this.pick(index); });
      return li;
    }) : [h("li", { class: "menu-empty" }, kind === "resource" ? "No resources match" : "No prompts match")]));
    this.list.hidden = false;
    if (this.items.length) {
      this.input.setAttribute("aria-activedescendant", `menu-${this.active}`);
      this.list.children[this.active]?.scrollIntoView({ block: "nearest" });
    }
  }

  onKey(event) {
    if (!this.mode || this.list.hidden) return;
    const move = { ArrowDown: 1, ArrowUp: -1 }[event.key];
    if (move && this.items.length) {
      this.active = (this.active + move + this.items.length) % this.items.length;
      this.renderList();
    } else if ((event.key === "Enter" || event.key === "Tab") && this.items.length && !event.shiftKey) {
      this.pick(this.active);
    } else if (event.key === "Escape") {
      this.close();
    } else {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
  }

  pick(index) {
    const item = this.items[index];
    if (!item) return;
    if (this.mode === "resource") {
      const caret = this.input.selectionStart ?? this.input.value.length;
      const before = this.input.value.slice(0, caret).replace(/@[^\s@]*$/, "");
      this.input.value = before + this.input.value.slice(caret);
      this.input.setSelectionRange(before.length, before.length);
      if (!this.attached.some((a) => a.uri === item.uri && a.server === item.server_name && a.source === item.source)) {
        this.attached.push({ uri: item.uri, server: item.server_name, source: item.source, label: item.title || item.name || item.uri });
      }
      this.renderChips();
      this.close();
      this.input.focus();
    } else {
      this.close();
      this.input.value = "";
      this.view.autosize();
      if (item.arguments.length) this.openForm(item);
      else this.run(item, {});
    }
  }

  renderChips() {
    this.chips.replaceChildren(...this.attached.map((a, index) => h("span", { class: "attachment-chip", title: `${a.uri} (${a.source} · ${a.server})` },
      icon("file"), h("span", { class: "attachment-name" }, a.uri),
      h("button", { type: "button", class: "btn-icon attachment-remove", "aria-label": `Remove ${a.uri}`,
        onclick: () => { this.attached.splice(index, 1); this.renderChips(); this.input.focus(); } }, icon("x")))));
    this.chips.hidden = this.attached.length === 0;
  }

  // ---- prompts ------------------------------------------------------------------------------

  openForm(prompt) {
    this.prompt = prompt;
    const fields = prompt.arguments.map((arg, index) => {
      const id = `prompt-arg-${index}`;
      return h("div", { class: "prompt-field" },
        h("label", { for: id }, arg.name, arg.required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null),
        h("input", { id, name: arg.name, type: "text", required: Boolean(arg.required), placeholder: arg.description || "",
          "aria-describedby": arg.description ? `${id}-about` : undefined }),
        arg.description ? h("span", { class: "prompt-about", id: `${id}-about` }, arg.description) : null);
    });
    this.form.replaceChildren(
      h("div", { class: "prompt-head" }, h("strong", {}, `/${prompt.name}`),
        prompt.description ? h("span", { class: "menu-about" }, prompt.description) : null),
      ...fields,
      h("div", { class: "prompt-actions" },
        h("button", { type: "button", class: "btn-ghost", onclick: () => this.closeForm() }, "Cancel"),
        h("button", { type: "submit", class: "btn-primary" }, "Run prompt")));
    this.form.hidden = false;
    this.form.querySelector("input")?.focus();
  }

  closeForm() {
    this.form.hidden = true;
    this.prompt = null;
    this.input.focus();
  }

  runForm() {
    const prompt = this.prompt;
    if (!prompt) return;
    const values = {};
    for (const field of this.form.querySelectorAll("input")) if (field.value !== "") values[field.name] = field.value;
    this.run(prompt, values);
  }

  async run(prompt, values) {
    try {
      await api.runPrompt(this.view.chatId, { name: prompt.name, arguments: values, source: prompt.source });
      this.form.hidden = true;
      this.prompt = null;
      this.input.focus();
      this.view.refreshChat();
      this.view.app.refreshChats();
    } catch (error) {
      this.view.app.toast(`Prompt not run: ${error.message}`, "error");
    }
  }
}
