import { useEffect, useState } from "preact/hooks";
import { Link, Route, Switch } from "wouter-preact";
import { api, unwrap, type WhoAmI } from "./api/client";
import { ErrorBox, Loading } from "./components";
import { useLoad } from "./lib/hooks";
import { session } from "./lib/session";
import { holds, type Role, WhoContext } from "./lib/who";
import { AlertsPage } from "./pages/alerts";
import { AuditLogPage } from "./pages/audit-log";
import { CohortsPage } from "./pages/cohorts";
import { CompliancePage } from "./pages/compliance";
import { DashboardPage } from "./pages/dashboard";
import { DatasetPage, DatasetsPage } from "./pages/datasets";
import { ExperimentPage } from "./pages/experiment";
import { KeysPage } from "./pages/keys";
import { KillSwitchPage } from "./pages/kill-switch";
import { RunDetailPage } from "./pages/run-detail";
import { RunsPage } from "./pages/runs";
import { SessionPage } from "./pages/session";
import { SessionsPage } from "./pages/sessions";
import { SettingsPage } from "./pages/settings";
import { UserPage } from "./pages/user";
import { SignIn } from "./pages/sign-in";

export function App() {
  const [key, setKey] = useState(session.key());
  useEffect(() => session.subscribe(() => setKey(session.key())), []);
  if (!key) return <SignIn />;
  return <SignedIn key={key} />;
}

function SignedIn() {
  const who = useLoad(() => unwrap(api.GET("/api/v1/whoami")), []);
  if (who.state === "loading") return <Loading />;
  if (who.state === "error") {
    return (
      <main class="page">
        <ErrorBox error={who.error} />
        <button onClick={() => session.signOut()}>Sign out</button>
      </main>
    );
  }
  return <Shell who={who.data} />;
}

const active = (isActive: boolean) => (isActive ? "active" : "");

/** The pages in the navigation, each shown to keys holding its role. */
const NAV: { href: string; label: string; role: Role }[] = [
  { href: "/runs", label: "Runs", role: "read" },
  { href: "/sessions", label: "Sessions", role: "read" },
  { href: "/dashboard", label: "Dashboard", role: "read" },
  { href: "/alerts", label: "Alerts", role: "read" },
  { href: "/datasets", label: "Datasets", role: "read" },
  { href: "/cohorts", label: "Cohorts", role: "read" },
  { href: "/kill-switch", label: "Kill switch", role: "read" },
  { href: "/compliance", label: "Compliance", role: "audit" },
  { href: "/audit-log", label: "Audit log", role: "audit" },
  { href: "/settings/keys", label: "Keys", role: "admin" },
  { href: "/settings", label: "Settings", role: "read" },
];

function Shell({ who }: { who: WhoAmI }) {
  const reads = holds(who, "read");
  return (
    <WhoContext.Provider value={who}>
      <div class="shell">
        <header class="top">
          <Link href="/runs" class="brand">
            Vigil
          </Link>
          <nav aria-label="Pages">
            {reads &&
              NAV.filter((page) => holds(who, page.role)).map((page) => (
                <Link key={page.href} href={page.href} className={active}>
                  {page.label}
                </Link>
              ))}
          </nav>
          <div class="who">
            <span title={`key ${who.key_id}`}>
              {who.project_id} · {who.roles.join(", ")}
            </span>
            <button onClick={() => session.signOut()}>Sign out</button>
          </div>
        </header>
        <main class="page">{reads ? <Pages /> : <NoReading roles={who.roles} />}</main>
      </div>
    </WhoContext.Provider>
  );
}

function NoReading({ roles }: { roles: string[] }) {
  return (
    <p class="error">
      This key can only send data (roles: {roles.join(", ")}). Sign in with a key holding <code>read</code> to
      see runs.
    </p>
  );
}

function Pages() {
  return (
    <Switch>
      <Route path="/">{() => <RunsPage />}</Route>
      <Route path="/runs">{() => <RunsPage />}</Route>
      <Route path="/runs/:traceId">{(params) => <RunDetailPage traceId={params.traceId} />}</Route>
      <Route path="/dashboard">{() => <DashboardPage />}</Route>
      <Route path="/alerts">{() => <AlertsPage />}</Route>
      <Route path="/datasets">{() => <DatasetsPage />}</Route>
      <Route path="/experiments/:id">{(params) => <ExperimentPage id={params.id} />}</Route>
      <Route path="/datasets/:name">
        {(params) => <DatasetPage name={decodeURIComponent(params.name)} />}
      </Route>
      <Route path="/cohorts">{() => <CohortsPage />}</Route>
      <Route path="/kill-switch">{() => <KillSwitchPage />}</Route>
      <Route path="/settings/keys">{() => <KeysPage />}</Route>
      <Route path="/settings">{() => <SettingsPage />}</Route>
      <Route path="/compliance">{() => <CompliancePage />}</Route>
      <Route path="/audit-log">{() => <AuditLogPage />}</Route>
      <Route path="/sessions">{() => <SessionsPage />}</Route>
      <Route path="/users/:userHash">
        {(params) => <UserPage userHash={decodeURIComponent(params.userHash)} />}
      </Route>
      <Route path="/sessions/:sessionId">
        {(params) => <SessionPage sessionId={decodeURIComponent(params.sessionId)} />}
      </Route>
      <Route>
        <p>
          No page here. <Link href="/runs">Runs</Link>
        </p>
      </Route>
    </Switch>
  );
}
