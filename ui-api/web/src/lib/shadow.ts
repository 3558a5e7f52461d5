import type { Schemas } from "../api/client";

export type ShadowRuns = Schemas["ShadowRuns"];

/** What a query does with shadow runs (`vigil.shadow = true`), as a select offers it. */
export const SHADOW_CHOICES: [ShadowRuns, string][] = [
  ["exclude", "left out"],
  ["include", "counted too"],
  ["only", "alone"],
];

/** A URL parameter as a choice; anything else leaves shadow runs out, as the API does. */
export function shadowOf(value: string | undefined): ShadowRuns {
  return SHADOW_CHOICES.find(([choice]) => choice === value)?.[0] ?? "exclude";
}
