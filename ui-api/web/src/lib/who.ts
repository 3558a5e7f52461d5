import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { WhoAmI } from "../api/client";

export const WhoContext = createContext<WhoAmI | null>(null);

/** Whether the signed-in key holds `role` (`admin` holds every role). */
export function useCan(): (role: WhoAmI["roles"][number]) => boolean {
  const who = useContext(WhoContext);
  return (role) => !!who && (who.roles.includes(role) || who.roles.includes("admin"));
}
