import { useState } from "preact/hooks";
import { session } from "../lib/session";

/** The key goes to this tab's sessionStorage only; the form is never submitted anywhere. */
export function SignIn() {
  const [key, setKey] = useState("");
  return (
    <main class="sign-in">
      <h1>Vigil</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (key.trim()) session.signIn(key);
        }}
      >
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          placeholder="vk_…"
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          autoFocus
        />
        <button type="submit">Sign in</button>
        <p class="muted">
          Create one with <code>vigil keys create --project default --role read</code>. It is kept in this tab
          only and sent to this server only.
        </p>
      </form>
    </main>
  );
}
