// Names the API accepts, read from its own OpenAPI document (served, no key needed), so forms
// offer exactly what the server takes.
import { useLoad } from "./hooks";

interface Catalog {
  metrics: string[];
  fields: string[];
}

let cached: Promise<Catalog> | null = null;

export function loadCatalog(): Promise<Catalog> {
  cached ??= fetch("/api/v1/openapi.json")
    .then((r) => r.json())
    .then((doc) => ({
      metrics: doc.components.schemas.MetricName.enum as string[],
      fields: doc.components.schemas.FieldName.enum as string[],
    }));
  return cached;
}

export function useCatalog() {
  return useLoad(loadCatalog, []);
}
