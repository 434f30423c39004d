// The app shell: login, the sidebar with chats, hash routing between views, toasts.
//
// Routes: #/ (new chat), #/chats/<id>, #/workspaces. Hash routing keeps the server to one page.

import { api, onUnauthorized } from "./api.js";
import { ChatView } from "./chatview.js";
import { h, icon, timeAgo } from "./dom.js";
import { returnFromSignIn } from "./signin.js";
import { WorkspacesView } from "./workspaces.js";

const CHAT_PAGE = 50; // the sidebar loads this many chats, then more on "Older chats"
const CHAT_PAGE_MAX = 200; // the server's largest page

class App {
  constructor(root) {
    this.root = root;
    this.user = null;
    this.view = null;
    this.workspaces = [];
    this.chats = [];
    this.chatsCursor = null; // where the next page of older chats starts, null when all are shown
    onUnauthorized(() => this.showLogin("Your session ended. Log in again."));
    window.addEventListener("hashchange", () => this.route());
    this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
    document.body.append(this.toasts);
  }

  async start() {
    try {
      this.user = await api.me();
    } catch (error) {
      // The server answers a used or expired login link with this page at /login.
      const usedLink = location.pathname === "/login"
        ? "That login link was used already or has expired. Run workdock login-url for a new one." : null;
      this.showLogin(error.status === 401 ? usedLink : error.message);
      return;
    }
    if (location.pathname !== "/") history.replaceState(null, "", "/" + location.hash);
    returnFromSignIn();
    this.showShell();
  }

  // ---- login ----------------------------------------------------------------------------------

  showLogin(message) {
    this.view?.close();
    this.view = null;
    this.user = null;
    const input = h("input", { id: "login-secret", type: "password", autocomplete: "off", spellcheck: "false",
      placeholder: "Login URL, login code or API token", "aria-label": "Login URL, login code or API token" });
    const error = h("div", { class: "login-error", role: "alert", hidden: !message }, message || "");
    const button = h("button", { class: "btn-primary btn-block", type: "submit" }, "Log in");
    const form = h("form", { class: "login-card" },
      h("div", { class: "brand brand-lg" }, h("img", { src: "/assets/logo.svg", alt: "" }), "workdock"),
      h("p", { class: "muted" }, "Open the one-time login URL that ", h("code", {}, "workdock up"), " or ",
        h("code", {}, "workdock server"), " printed, or paste it here. An API token works too (the local admin's is in ",
        h("code", {}, "admin.token"), " in the server's data dir)."),
      input, error, button,
      h("p", { class: "muted small login-help" }, "A login URL works once and for a day. For a new one, run ",
        h("code", {}, "workdock login-url"), " where the server runs."));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const secret = input.value.trim();
      if (!secret) return;
      button.disabled = true;
      error.hidden = true;
      try {
        const code = loginCode(secret);
        this.user = (code ? await api.loginWithCode(code) : await api.loginWithToken(secret)).user;
        if (location.pathname !== "/") history.replaceState(null, "", "/");
        this.showShell();
      } catch (failure) {
        error.textContent = failure.status === 401
          ? "That login URL or token is not valid (a login URL works once): run workdock login-url for a new one."
          : failure.message;
        error.hidden = false;
        button.disabled = false;
      }
    });
    this.root.replaceChildren(h("main", { class: "login-page" }, form));
    document.title = "Log in · workdock";
    input.focus();
  }

  async logout() {
    try { await api.logout(); } catch { /* logged out either way */ }
    this.showLogin("You are logged out.");
  }

  // ---- shell ----------------------------------------------------------------------------------

  showShell() {
    this.chatList = h("nav", { class: "chat-list", "aria-label": "Chats" });
    this.sidebar = h("aside", { class: "sidebar" },
      h("div", { class: "sidebar-top" },
        h("a", { class: "brand", href: "#/" }, h("img", { src: "/assets/logo.svg", alt: "" }), "workdock"),
        h("a", { class: "btn-primary btn-block new-chat-btn", href: "#/" }, icon("plus"), "New chat")),
      h("div", { class: "sidebar-label" }, "Chats"),
      this.chatList,
      h("div", { class: "sidebar-bottom" },
        h("a", { class: "nav-link", href: "#/workspaces", dataset: { route: "workspaces" } }, icon("server"), "Workspaces"),
        h("div", { class: "user-row" },
          h("span", { class: "avatar" }, (this.user.name || "?").slice(0, 1).toUpperCase()),
          h("span", { class: "user-name" }, this.user.name),
          h("button", { class: "btn-icon", type: "button", title: "Log out", "aria-label": "Log out",
            onclick: () => this.logout() }, icon("logout")))));
    this.scrim = h("div", { class: "scrim", onclick: () => this.toggleSidebar(false) });
    this.content = h("main", { class: "content" });
    this.root.replaceChildren(h("div", { class: "shell" }, this.sidebar, this.scrim, this.content));
    this.loadWorkspaces();
    this.refreshChats();
    this.route();
  }

  toggleSidebar(force) {
    document.body.classList.toggle("sidebar-open", force ?? !document.body.classList.contains("sidebar-open"));
  }

  async loadWorkspaces() {
    try {
      this.setWorkspaces((await api.workspaces()).workspaces);
    } catch { /* shown where it matters */ }
  }

  setWorkspaces(workspaces) {
    this.workspaces = workspaces;
    this.renderChatList();
  }

  workspace(id) {
    return this.workspaces.find((w) => w.id === id);
  }

  workspaceName(id) {
    return this.workspace(id)?.name;
  }

  async refreshChats() {
    clearTimeout(this.chatsTimer);
    this.chatsTimer = setTimeout(async () => {
      try {
        // The first page again, as long as what the sidebar shows (a page the user loaded stays).
        const page = await api.chats({ limit: Math.min(Math.max(this.chats.length, CHAT_PAGE), CHAT_PAGE_MAX) });
        this.chats = page.chats;
        this.chatsCursor = page.next_cursor;
        this.renderChatList();
      } catch { /* 401 is handled globally; anything else shows on the next try */ }
    }, 50); // many events can ask at once: one request
  }

  async moreChats() {
    if (!this.chatsCursor) return;
    try {
      const page = await api.chats({ limit: CHAT_PAGE, cursor: this.chatsCursor });
      const known = new Set(this.chats.map((chat) => chat.id));
      this.chats = [...this.chats, ...page.chats.filter((chat) => !known.has(chat.id))];
      this.chatsCursor = page.next_cursor;
      this.renderChatList();
    } catch (error) {
      this.toast(error.message, "error");
    }
  }

  renderChatList() {
    if (!this.chatList) return;
    const current = this.currentChatId();
    const chats = [...this.chats].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
    const more = this.chatsCursor
      ? [h("button", { class: "btn-link chats-more", type: "button", onclick: () => this.moreChats() }, "Older chats")]
      : [];
    this.chatList.replaceChildren(...(chats.length ? [...chats.map((chat) =>
      h("a", { class: `chat-link${chat.id === current ? " active" : ""}`, href: `#/chats/${chat.id}`,
        dataset: { chatId: chat.id }, "aria-current": chat.id === current ? "page" : null },
      h("span", { class: "chat-link-title" }, chat.running ? h("span", { class: "spinner spinner-xs" }) : null,
        h("span", {}, chat.title)),
      h("span", { class: "chat-link-meta", title: this.workspace(chat.workspace_id)?.path || null },
        [this.workspaceName(chat.workspace_id), timeAgo(chat.updated_at)].filter(Boolean).join(" · ")))), ...more]
      : [h("div", { class: "muted small pad" }, "No chats yet.")]));
  }

  currentChatId() {
    const match = /^#\/chats\/([^/]+)/.exec(location.hash);
    return match ? decodeURIComponent(match[1]) : null;
  }

  route() {
    if (!this.user) return;
    this.toggleSidebar(false);
    this.view?.close();
    const chatId = this.currentChatId();
    if (chatId) this.view = new ChatView(this, chatId);
    else if (location.hash === "#/workspaces") this.view = new WorkspacesView(this);
    else this.view = new NewChatView(this);
    for (const link of this.sidebar.querySelectorAll("[data-route]")) {
      link.classList.toggle("active", location.hash === `#/${link.dataset.route}`);
    }
    this.renderChatList();
    this.content.replaceChildren(this.view.el);
    this.view.open();
  }

  toast(text, kind = "info") {
    const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
    this.toasts.append(el);
    setTimeout(() => el.classList.add("leaving"), 3500);
    setTimeout(() => el.remove(), 4000);
  }
}

/** A login URL or a login code (`wdl_...`) → the code; anything else is taken as an API token. */
function loginCode(secret) {
  try {
    const url = new URL(secret);
    const code = url.searchParams.get("code");
    if (code) return code;
  } catch { /* not a URL */ }
  return secret.startsWith("wdl_") ? secret : null;
}

// ---- new chat: pick a workspace and a model, type the first message ------------------------------

class NewChatView {
  constructor(app) {
    this.app = app;
    this.workspace = h("select", { "aria-label": "Workspace", id: "new-chat-workspace" });
    this.model = h("select", { "aria-label": "Model", id: "new-chat-model" });
    this.input = h("textarea", { class: "composer-input", rows: 3, placeholder: "What should we do in this workspace?",
      "aria-label": "First message" });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); this.create(true); }
    });
    this.hint = h("div", { class: "muted small" });
    this.workspaceDetail = h("div", { class: "muted small mono picker-detail" });
    this.workspace.addEventListener("change", () => this.showWorkspaceDetail());
    this.el = h("div", { class: "page new-chat-page" },
      h("header", { class: "page-header" },
        h("button", { class: "btn-icon only-mobile", type: "button", "aria-label": "Menu",
          onclick: () => app.toggleSidebar() }, icon("menu"))),
      h("div", { class: "new-chat" },
        h("h1", {}, "New chat"),
        h("p", { class: "muted" }, "Chat with a workspace: its files, its commands and its own MCP servers."),
        h("div", { class: "pickers" }, h("label", {}, "Workspace", this.workspace, this.workspaceDetail),
          h("label", {}, "Model", this.model)),
        h("div", { class: "composer-box" }, this.input,
          h("div", { class: "composer-buttons" },
            h("button", { class: "btn-primary btn-send", type: "button", title: "Start (Enter)", "aria-label": "Start chat",
              onclick: () => this.create(true) }, icon("send")))),
        h("div", { class: "new-chat-foot" }, this.hint,
          h("button", { class: "btn-link", type: "button", onclick: () => this.create(false) }, "Open an empty chat"))));
  }

  async open() {
    document.title = "New chat · workdock";
    this.loaded = this.load();
    this.input.focus();
    await this.loaded;
  }

  async load() {
    try {
      const [{ workspaces }, models] = await Promise.all([api.workspaces(), api.models()]);
      this.app.setWorkspaces(workspaces);
      this.workspace.replaceChildren(...workspaces.map((w) => h("option", { value: w.id, title: w.path || w.agent_url },
        `${w.name}${w.agent.reachable ? "" : " (agent unreachable)"}`)));
      this.showWorkspaceDetail();
      this.model.replaceChildren(...(models.models.length
        ? models.models.map((m) => h("option", { value: m, selected: m === models.default }, m))
        : [h("option", { value: "" }, "no model configured")]));
      this.hint.replaceChildren(!workspaces.length
        ? h("span", {}, "No workspace yet: ", h("a", { href: "#/workspaces" }, "add one"), ".")
        : models.hint ? models.hint : "");
    } catch (error) {
      this.hint.textContent = error.message;
    }
  }

  close() {}

  /** Where the picked workspace is: its path (or its agent's URL), since names can repeat. */
  showWorkspaceDetail() {
    const workspace = this.app.workspace(this.workspace.value);
    this.workspaceDetail.textContent = workspace ? workspace.path || workspace.agent_url : "";
    this.workspaceDetail.title = this.workspaceDetail.textContent;
  }

  async create(withMessage) {
    const content = this.input.value;
    if (withMessage && !content.trim()) { this.input.focus(); return; }
    await this.loaded; // typed faster than the workspaces loaded
    if (!this.workspace.value) { this.app.toast("Add a workspace first.", "error"); return; }
    try {
      const chat = await api.createChat({ workspace_id: this.workspace.value, model: this.model.value || null });
      if (withMessage) await api.send(chat.id, content);
      this.app.refreshChats();
      location.hash = `#/chats/${chat.id}`;
    } catch (error) {
      this.app.toast(error.message, "error");
    }
  }
}

new App(document.getElementById("app")).start();
