// The API key of this tab: kept in sessionStorage (gone when the tab closes), never in a URL.
const KEY = "vigil.apiKey";
const listeners = new Set<() => void>();

export const session = {
  key(): string | null {
    return sessionStorage.getItem(KEY);
  },
  signIn(key: string) {
    sessionStorage.setItem(KEY, key.trim());
    listeners.forEach((l) => l());
  },
  signOut() {
    sessionStorage.removeItem(KEY);
    listeners.forEach((l) => l());
  },
  /** The API refused the key (revoked, or never valid). */
  expired() {
    if (this.key() !== null) this.signOut();
  },
  subscribe(listener: () => void): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
