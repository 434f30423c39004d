// The chat server's JSON API under /api/v0. The browser's session cookie (HTTP-only, set at
// login) authenticates every call; a pasted token is traded for such a session once.

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(detail ? `${message}: ${detail}` : message);
    this.status = status;
    this.title = message;
    this.detail = detail;
  }
}

const listeners = new Set();

/** Called with no arguments whenever a request answers 401 (the session ended). */
export function onUnauthorized(listener) {
  listeners.add(listener);
}

export async function request(method, path, body, { headers = {}, quiet401 = false } = {}) {
  let response;
  try {
    response = await fetch(`/api/v0${path}`, {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (error) {
    throw new ApiError(0, "the chat server cannot be reached", String(error.message || error));
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!response.ok) {
    if (response.status === 401 && !quiet401) listeners.forEach((listener) => listener());
    const message = data?.message || (typeof data?.detail === "string" ? data.detail : null) || `HTTP ${response.status}`;
    const detail = typeof data?.detail === "string" && data.detail !== message ? data.detail
      : Array.isArray(data?.detail) ? data.detail.map((d) => d.msg).join("; ") : null;
    throw new ApiError(response.status, message, detail);
  }
  return data;
}

export const api = {
  me: () => request("GET", "/me", undefined, { quiet401: true }),
  loginWithCode: (code) => request("POST", "/login", { code }, { quiet401: true }),
  loginWithToken: (token) => request("POST", "/session", {}, { headers: { Authorization: `Bearer ${token}` }, quiet401: true }),
  logout: () => request("POST", "/logout", {}),
  models: () => request("GET", "/models"),
  workspaces: () => request("GET", "/workspaces"),
  workspace: (id) => request("GET", `/workspaces/${id}`),
  createWorkspace: (body) => request("POST", "/workspaces", body),
  deleteWorkspace: (id) => request("DELETE", `/workspaces/${id}`),
  refreshWorkspace: (id) => request("POST", `/workspaces/${id}/refresh`, {}),
  rotateAgentToken: (id) => request("POST", `/workspaces/${id}/agent-token`, {}),
  trustServers: (id, body) => request("POST", `/workspaces/${id}/trust`, body),
  giveInput: (id, body) => request("POST", `/workspaces/${id}/inputs`, body),
  startAdminSignIn: (serverId) => request("POST", `/mcp-servers/${serverId}/signin`, {}),
  signOutAdmin: (serverId) => request("DELETE", `/mcp-servers/${serverId}/signin`),
  startSignIn: (id, server) => request("POST", `/workspaces/${id}/servers/${encodeURIComponent(server)}/sign-in`, {}),
  // A page of chats, newest first: { chats, next_cursor } (cursor: the next_cursor of the page before).
  chats: ({ limit, cursor } = {}) => request("GET", `/chats?${new URLSearchParams({ ...(limit ? { limit } : {}), ...(cursor ? { cursor } : {}) })}`),
  chat: (id) => request("GET", `/chats/${id}`),
  createChat: (body) => request("POST", "/chats", body),
  patchChat: (id, body) => request("PATCH", `/chats/${id}`, body),
  deleteChat: (id) => request("DELETE", `/chats/${id}`),
  messages: (id) => request("GET", `/chats/${id}/messages`),
  send: (id, content, attachments = []) => request("POST", `/chats/${id}/messages`, attachments.length ? { content, attachments } : { content }),
  resources: (id) => request("GET", `/chats/${id}/resources`),
  prompts: (id) => request("GET", `/chats/${id}/prompts`),
  runPrompt: (id, body) => request("POST", `/chats/${id}/prompt`, body),
  unqueue: (id, queuedId) => request("DELETE", `/chats/${id}/queue/${queuedId}`),
  interrupt: (id) => request("POST", `/chats/${id}/interrupt`, {}),
  retry: (id, content) => request("POST", `/chats/${id}/retry`, content === undefined ? {} : { content }),
  tools: (id) => request("GET", `/chats/${id}/tools`),
  answerApproval: (id, callId, body) => request("POST", `/chats/${id}/approvals/${encodeURIComponent(callId)}`, body),
  settings: () => request("GET", "/settings"),
  patchSettings: (body) => request("PATCH", "/settings", body),
  answerElicitation: (id, elicitationId, body) => request("POST", `/chats/${id}/elicitations/${encodeURIComponent(elicitationId)}`, body),
};
