// The typed API client: paths and bodies come from the OpenAPI document (generated/schema.d.ts),
// so a change to the API that the UI does not follow fails `tsc`.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "../../generated/schema";
import { session } from "../lib/session";

export type Schemas = components["schemas"];
export type Run = Schemas["Run"];
export type RunSummary = Schemas["RunSummary"];
export type Span = Schemas["Span"];
export type Score = Schemas["Score"];
export type WhoAmI = Schemas["WhoAmI"];

/** An error answer of the API (`{"error": {code, message, field}}`), or a failed request. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null,
  ) {
    super(message);
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    const key = session.key();
    if (key) request.headers.set("Authorization", `Bearer ${key}`);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(auth);

/** The data of an answer, or the API's error thrown as an {@link ApiError}. */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result;
  try {
    result = await call;
  } catch (e) {
    throw new ApiError(0, "network", `the request failed: ${String(e)}`, null);
  }
  const { data, error, response } = result;
  if (response.status === 401) session.expired();
  if (error !== undefined || data === undefined) {
    const detail = (error as { error?: { code: string; message: string; field: string | null } })?.error;
    throw new ApiError(
      response.status,
      detail?.code ?? "http",
      detail?.message ?? `${response.status} ${response.statusText}`,
      detail?.field ?? null,
    );
  }
  return data;
}
