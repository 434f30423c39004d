// Signing in to an OAuth MCP server: the browser goes to the authorization URL the server made,
// whose authorization server sends it back through the chat server's /oauth/callback. Used for
// workspace servers (the Workspaces page) and per-user admin servers (a chat's tools panel).

const RETURN_KEY = "workdock.signin-return";

/** Start a sign-in with `start` (resolving to { authorization_url }) and go there; on failure,
 * say why and let the button be clicked again. Where the user was is remembered for the way back. */
export async function openSignIn(start, name, button, toast) {
  button.disabled = true;
  button.classList.add("busy");
  try {
    const { authorization_url } = await start();
    sessionStorage.setItem(RETURN_KEY, location.hash);
    window.location.assign(authorization_url);
  } catch (error) {
    toast(`Sign-in to ${name} did not start: ${error.message}`, "error");
    button.disabled = false;
    button.classList.remove("busy");
  }
}

/** Back from a per-user server's sign-in (the callback sends the browser to "/"): the page the
 * user started it from. */
export function returnFromSignIn() {
  const back = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  if (back && !location.hash) history.replaceState(null, "", "/" + back);
}
