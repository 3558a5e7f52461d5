// Names the API accepts, read from its own OpenAPI document (served, no key needed), so forms
// offer exactly what the server takes, and pages know which filters a metric refuses.
/** Metric and field names of model calls and of tool calls (the rest are of runs). */
interface Calls {
  metrics: string[];
  fields: string[];
}

export interface Catalog {
  metrics: string[];
  fields: string[];
  modelCall: Calls;
  toolCall: Calls;
}

let cached: Promise<Catalog> | null = null;

export function loadCatalog(): Promise<Catalog> {
  cached ??= fetch("/api/v1/openapi.json")
    .then((r) => r.json())
    .then((doc) => {
      const { MetricName: metric, FieldName: field } = doc.components.schemas;
      const calls = (kind: string): Calls => ({ metrics: metric[kind], fields: field[kind] });
      return {
        metrics: metric.enum,
        fields: field.enum,
        modelCall: calls("x-model-call"),
        toolCall: calls("x-tool-call"),
      };
    });
  return cached;
}

/**
 * Of `fields`, those the API refuses to filter or group `metrics` by: a model-call field for a
 * tool-call metric, a tool-call field for a model-call metric.
 */
export function refusedFields(catalog: Catalog, metrics: string[], fields: string[]): string[] {
  const asks = (calls: Calls) => metrics.some((m) => calls.metrics.includes(m));
  return fields.filter(
    (f) =>
      (asks(catalog.toolCall) && catalog.modelCall.fields.includes(f)) ||
      (asks(catalog.modelCall) && catalog.toolCall.fields.includes(f)),
  );
}
