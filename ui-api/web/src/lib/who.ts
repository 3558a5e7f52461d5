import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { WhoAmI } from "../api/client";

export const WhoContext = createContext<WhoAmI | null>(null);

export type Role = WhoAmI["roles"][number];

/** Whether a key holds `role` (`admin` holds every role). */
export function holds(who: WhoAmI | null, role: Role): boolean {
  return !!who && (who.roles.includes(role) || who.roles.includes("admin"));
}

/** Whether the signed-in key holds `role`. */
export function useCan(): (role: Role) => boolean {
  const who = useContext(WhoContext);
  return (role) => holds(who, role);
}
