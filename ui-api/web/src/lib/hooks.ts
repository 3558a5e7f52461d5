import { useEffect, useState } from "preact/hooks";
import { useLocation, useSearch } from "wouter-preact";
import { ApiError } from "../api/client";
import { loadCatalog } from "./catalog";

export type Loaded<T> =
  { state: "loading" } | { state: "error"; error: ApiError } | { state: "ready"; data: T };

/** Loads `load()` again whenever `deps` change (and every `refreshMs` when given). */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], refreshMs?: number): Loaded<T> {
  const [loaded, setLoaded] = useState<Loaded<T>>({ state: "loading" });
  useEffect(() => {
    let live = true;
    const run = (first: boolean) => {
      if (first) setLoaded({ state: "loading" });
      load().then(
        (data) => live && setLoaded({ state: "ready", data }),
        (error) =>
          live &&
          setLoaded({
            state: "error",
            error: error instanceof ApiError ? error : new ApiError(0, "client", String(error), null),
          }),
      );
    };
    run(true);
    const timer = refreshMs ? setInterval(() => run(false), refreshMs) : undefined;
    return () => {
      live = false;
      if (timer) clearInterval(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, refreshMs]);
  return loaded;
}

/** The page's query string as a record, and a setter that replaces some parameters. */
export function useQueryParams(): [Record<string, string>, (changes: Record<string, string | null>) => void] {
  const search = useSearch();
  const [location, navigate] = useLocation();
  const params = Object.fromEntries(new URLSearchParams(search));
  const set = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(search);
    for (const [name, value] of Object.entries(changes)) {
      if (value === null || value === "") next.delete(name);
      else next.set(name, value);
    }
    const query = next.toString();
    navigate(query ? `${location}?${query}` : location);
  };
  return [params, set];
}

/** The API's catalog of names (`loadCatalog`), loaded once. */
export function useCatalog() {
  return useLoad(loadCatalog, []);
}
